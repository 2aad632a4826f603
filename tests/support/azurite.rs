//! Azurite, the official Azure Storage emulator (npm `azurite`), serving Blob Storage over
//! TLS with Entra (OAuth) sign-in, as the run store's real `azure_storage_blob` client
//! reaches a storage account. `scripts/test` installs it; `AZURITE_BLOB` names the
//! `azurite-blob` script (default: `target/azurite/node_modules/.bin/azurite-blob`).

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A running Azurite blob service.
pub struct Azurite {
    /// `https://localhost:PORT/devstoreaccount1`, the account's blob endpoint.
    pub blob_service: String,
    /// The certificate it serves (PEM), to trust through `SSL_CERT_FILE`.
    pub cert_file: tempfile::NamedTempFile,
    _key_file: tempfile::NamedTempFile,
    child: tokio::process::Child,
}

impl Azurite {
    /// Starts Azurite on a free port and waits until it accepts connections.
    pub async fn start() -> Azurite {
        let script = std::env::var("AZURITE_BLOB").unwrap_or_else(|_| {
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/target/azurite/node_modules/.bin/azurite-blob"
            )
            .to_string()
        });
        assert!(
            std::path::Path::new(&script).exists(),
            "Azurite is not installed at {script}: run scripts/test (npm install azurite@3), or set AZURITE_BLOB"
        );
        let service = Service::start(&script, "blob").await;
        Azurite {
            blob_service: format!("https://localhost:{}/devstoreaccount1", service.port),
            cert_file: service.cert_file,
            _key_file: service.key_file,
            child: service.child,
        }
    }

    /// The certificate file's path.
    pub fn cert_path(&self) -> String {
        self.cert_file.path().to_string_lossy().into_owned()
    }

    /// A container URL for `handler purge --state-url`.
    pub fn container(&self, name: &str) -> String {
        format!("{}/{name}", self.blob_service)
    }
}

/// One Azurite service (`blob` or `queue`) started from `script` on a free port over TLS
/// with a fresh self-signed certificate, Entra sign-in (`--oauth basic`) and in-memory
/// storage, once it accepts connections.
pub struct Service {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The certificate it serves (PEM).
    pub cert_file: tempfile::NamedTempFile,
    /// The certificate's key.
    pub key_file: tempfile::NamedTempFile,
    /// The process.
    pub child: tokio::process::Child,
}

impl Service {
    /// Starts Azurite's `service` (`blob` or `queue`) from `script`.
    pub async fn start(script: &str, service: &str) -> Service {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("self-signed certificate");
        let mut cert_file = tempfile::NamedTempFile::new().expect("temp file");
        cert_file
            .write_all(certified.cert.pem().as_bytes())
            .expect("write certificate");
        let mut key_file = tempfile::NamedTempFile::new().expect("temp file");
        key_file
            .write_all(certified.signing_key.serialize_pem().as_bytes())
            .expect("write key");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut child = tokio::process::Command::new(script)
            .args([
                "--silent",
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--loose",
            ])
            .args(["--oauth", "basic", "--inMemoryPersistence"])
            .arg(format!("--{service}Host"))
            .arg("127.0.0.1")
            .arg(format!("--{service}Port"))
            .arg(port.to_string())
            .arg("--cert")
            .arg(cert_file.path())
            .arg("--key")
            .arg(key_file.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("azurite-{service} starts: {e}"));
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "Azurite's {service} service not up after 30 s"
            );
            if let Ok(Some(status)) = child.try_wait() {
                panic!("azurite-{service} exited at start ({status}); its error is above");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Service {
            port,
            cert_file,
            key_file,
            child,
        }
    }
}

impl Azurite {
    /// The backend of container `name`, in-process: the real `azure_storage_blob` client,
    /// signed in with a token Azurite accepts, trusting Azurite's certificate.
    pub fn backend(&self, name: &str) -> std::sync::Arc<acr_purge::store::blob::BlobBackend> {
        let pem = std::fs::read(self.cert_file.path()).expect("certificate");
        let http = acr_purge::outbound::http_client_builder(&[pem])
            .expect("http client")
            .build()
            .expect("http client");
        let url = url::Url::parse(&self.container(name)).expect("container URL");
        let backend =
            acr_purge::store::blob::BlobBackend::new(&url, std::sync::Arc::new(StorageToken), http)
                .expect("blob backend");
        std::sync::Arc::new(backend)
    }
}

/// Signs in to Azurite (its OAuth check reads the claims, not a signature).
#[derive(Debug)]
struct StorageToken;

#[async_trait::async_trait]
impl azure_core::credentials::TokenCredential for StorageToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        let expires =
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1);
        Ok(azure_core::credentials::AccessToken::new(
            crate::support::identity::storage_token(),
            expires,
        ))
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
