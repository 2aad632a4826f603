//! The registry over TLS: `host:port` means https, the system roots plus `SSL_CERT_FILE` are
//! trusted, and an untrusted certificate fails the run before anything is deleted.

use crate::support::purge::{handler_with_env, tagged};
use crate::support::tls::TlsServer;
use acr_emulator::{Emulator, RepoSeed, Seed};

#[tokio::test]
async fn registry_over_tls_with_ssl_cert_file() {
    let seed = Seed::new().repo(RepoSeed::new("app").manifest(tagged("a", "v1", "30d")));
    let emulator = Emulator::new(seed).expect("seed");
    let server = TlsServer::start(emulator.router()).await;
    let host = server.url.trim_start_matches("https://").to_string();
    let args = ["purge", "-r", host.as_str(), "-f", "app:.*", "--ago", "1d"];

    let untrusted = handler_with_env(&args, &[]).await;
    assert_eq!(untrusted.code, 1, "{}", untrusted.stderr);
    assert!(
        untrusted.stderr.contains("reaching registry"),
        "{}",
        untrusted.stderr
    );
    assert_eq!(emulator.snapshot().tag_names("app"), ["v1"]);

    let cert = server.cert_path();
    let trusted = handler_with_env(&args, &[("SSL_CERT_FILE", cert.as_str())]).await;
    assert_eq!(trusted.code, 0, "{}", trusted.stderr);
    assert!(
        trusted.stdout.contains(&format!("Deleted {host}/app:v1")),
        "{}",
        trusted.stdout
    );
    assert!(emulator.snapshot().tag_names("app").is_empty());
}
