//! Serving a router over TLS on loopback with a fresh self-signed certificate for
//! `localhost`, and a PEM file of that certificate for clients to trust (`SSL_CERT_FILE`).

use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use std::io::Write;

/// A TLS server on `https://localhost:PORT`.
pub struct TlsServer {
    /// `https://localhost:PORT`.
    pub url: String,
    /// A file holding the certificate (PEM), to trust it.
    pub cert_file: tempfile::NamedTempFile,
    handle: axum_server::Handle<std::net::SocketAddr>,
}

impl TlsServer {
    /// Serves `app` on a free loopback port.
    pub async fn start(app: Router) -> TlsServer {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("self-signed certificate");
        let cert_pem = certified.cert.pem();
        let key_pem = certified.signing_key.serialize_pem();
        let config = RustlsConfig::from_pem(cert_pem.clone().into_bytes(), key_pem.into_bytes())
            .await
            .expect("TLS configuration");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind TLS server");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("local addr").port();
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp_rustls(listener, config)
            .expect("TLS server")
            .handle(handle.clone());
        tokio::spawn(async move {
            let _ = server.serve(app.into_make_service()).await;
        });
        let mut cert_file = tempfile::NamedTempFile::new().expect("temp file");
        cert_file
            .write_all(cert_pem.as_bytes())
            .expect("write certificate");
        TlsServer {
            url: format!("https://localhost:{port}"),
            cert_file,
            handle,
        }
    }

    /// The certificate file's path, as a string.
    pub fn cert_path(&self) -> String {
        self.cert_file.path().to_string_lossy().into_owned()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}
