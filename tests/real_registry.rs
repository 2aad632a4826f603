//! The crate's registry client against a real OCI registry: Debian's `docker-registry`
//! (CNCF distribution 2.8.2), started by each test on its own port.
//!
//! Distribution has no ACR `/acr/v1` API, so these tests cover what a real registry can
//! show: sign-in, catalog paging, manifest bodies, deletions, and a clear failure where
//! the ACR-only API is missing.

use crate::support::oci_push::{Pusher, digest_of};
use crate::support::process::HandlerCommand;
use crate::support::registry_server::{RegistryOptions, RegistryServer};
use acr_purge::model::{DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use acr_purge::registry::{
    ClientOptions, Credentials, DeleteStatus, Endpoint, RegistryClient, RegistryError, RetryPolicy,
    no_check,
};
use std::process::Output;
use std::time::{Duration, Instant};

/// Client options with quick retries (a local registry needs no patience).
fn options() -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy {
            base_delay: Duration::from_millis(20),
            request_timeout: Duration::from_secs(20),
            ..RetryPolicy::default()
        },
        ..ClientOptions::default()
    }
}

async fn connect(
    server: &RegistryServer,
    credentials: Option<Credentials>,
) -> Result<RegistryClient, RegistryError> {
    let endpoint = Endpoint::parse(&server.url()).expect("the registry URL is a valid -r");
    RegistryClient::connect(endpoint, credentials, options()).await
}

async fn anonymous(server: &RegistryServer) -> RegistryClient {
    connect(server, None)
        .await
        .expect("connecting anonymously to the registry")
}

/// Runs the built `handler` binary with `args`; `RUST_LOG` and registry variables from the
/// environment are cleared so that only the arguments count.
fn handler(args: &[&str]) -> Output {
    HandlerCommand::new()
        .args(args)
        .env_remove(&[
            "ACR_DEFAULT_REGISTRY",
            "RUST_LOG",
            "IDENTITY_ENDPOINT",
            "AZURE_FEDERATED_TOKEN_FILE",
        ])
        .output_blocking()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---------------------------------------------------------------------------------------
// 1. Signing in

#[tokio::test]
async fn connects_anonymously_to_an_open_registry() {
    let server = RegistryServer::start();
    let pusher = Pusher::new(&server);
    pusher.oci_image("hello", Some("v1"), "hello").await;

    let client = anonymous(&server).await;
    assert_eq!(client.endpoint().host(), server.host());
    assert_eq!(
        client.catalog(100).await.expect("listing the catalog"),
        ["hello"]
    );
}

#[tokio::test]
async fn signs_in_with_basic_credentials_on_an_htpasswd_registry() {
    let server = RegistryServer::start_with(RegistryOptions::with_user("ci-user", "s3cret!"));
    let pusher = Pusher::new(&server);
    let image = pusher.oci_image("team/app", Some("v1"), "basic").await;

    let credentials = Credentials::from_flags(Some("ci-user"), Some("s3cret!"))
        .expect("-u/-p are valid")
        .expect("-u/-p give credentials");
    assert!(matches!(credentials, Credentials::Basic { .. }));
    let client = connect(&server, Some(credentials))
        .await
        .expect("connecting with -u/-p");
    assert_eq!(
        client.catalog(100).await.expect("listing the catalog"),
        ["team/app"]
    );
    let body = client
        .manifest_body("team/app", &image.digest)
        .await
        .expect("reading a manifest with Basic auth")
        .expect("the manifest exists");
    assert_eq!(body.media_type.as_deref(), Some(OCI_MANIFEST));
}

#[tokio::test]
async fn asks_for_username_and_password_when_the_registry_wants_basic_auth() {
    let server = RegistryServer::start_with(RegistryOptions::with_user("ci-user", "s3cret!"));
    let error = match connect(&server, None).await {
        Ok(_) => panic!("connecting without -u/-p to an htpasswd registry succeeded"),
        Err(error) => error,
    };
    assert!(matches!(error, RegistryError::Auth(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("-u/-p"), "{message}");
    assert!(message.contains(&server.host()), "{message}");
}

#[tokio::test]
async fn a_wrong_password_is_a_permission_error_on_the_first_call() {
    let server = RegistryServer::start_with(RegistryOptions::with_user("ci-user", "s3cret!"));
    let credentials = Credentials::Basic {
        username: "ci-user".to_string(),
        password: "wrong".to_string(),
    };
    let client = connect(&server, Some(credentials))
        .await
        .expect("connect only probes /v2/; it does not check the password");
    let error = client
        .catalog(100)
        .await
        .expect_err("listing the catalog with a wrong password");
    assert!(error.is_denied(), "{error:?}");
    assert!(
        matches!(&error, RegistryError::Denied { status: 401, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("permission denied"), "{error}");
}

#[test]
fn purge_reports_missing_and_wrong_credentials() {
    let server = RegistryServer::start_with(RegistryOptions::with_user("ci-user", "s3cret!"));
    let url = server.url();
    let base = ["purge", "-r", url.as_str(), "-f", "app:.*", "--ago", "1d"];

    let output = handler(&base);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("-u/-p"), "{stderr}");
    assert!(stderr.contains(&server.host()), "{stderr}");

    let mut wrong = base.to_vec();
    wrong.extend(["-u", "ci-user", "-p", "wrong"]);
    let output = handler(&wrong);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
}

// ---------------------------------------------------------------------------------------
// 2. Catalog paging

const REPOSITORIES: [&str; 6] = [
    "zeta",
    "team/app",
    "app",
    "team/app/sidecar",
    "team-x/tool",
    "alpha",
];

#[tokio::test]
async fn catalog_is_complete_and_sorted_for_every_page_size() {
    let server = RegistryServer::start();
    let pusher = Pusher::new(&server);
    for (i, repository) in REPOSITORIES.iter().enumerate() {
        pusher
            .oci_image(repository, Some("v1"), &format!("catalog {i}"))
            .await;
    }
    let mut expected: Vec<String> = REPOSITORIES.iter().map(|r| r.to_string()).collect();
    expected.sort();

    let client = anonymous(&server).await;
    for page_size in [1, 2, 5, 6, 100] {
        let before = catalog_requests(&server).len();
        let names = client
            .catalog(page_size)
            .await
            .unwrap_or_else(|e| panic!("catalog({page_size}): {e}"));
        assert_eq!(names, expected, "catalog({page_size})");
        let pages: Vec<String> = catalog_requests(&server).split_off(before);
        // Every page is a request of its own: ceil(6 / n), plus at most one empty page
        // when the last page is full.
        let full_pages = expected.len().div_ceil(page_size);
        assert!(
            pages.len() == full_pages || pages.len() == full_pages + 1,
            "catalog({page_size}) took {} requests: {pages:?}",
            pages.len()
        );
        assert_eq!(
            pages[0],
            format!("/v2/_catalog?n={page_size}"),
            "first page of catalog({page_size})"
        );
    }
}

#[tokio::test]
async fn catalog_follows_the_registrys_link_header() {
    let server = RegistryServer::start();
    let pusher = Pusher::new(&server);
    for (i, repository) in REPOSITORIES.iter().enumerate() {
        pusher
            .oci_image(repository, Some("v1"), &format!("link {i}"))
            .await;
    }
    let client = anonymous(&server).await;
    let names = client.catalog(1).await.expect("catalog(1)");
    assert_eq!(names.len(), REPOSITORIES.len());

    let pages = catalog_requests(&server);
    // The registry walks repositories directory by directory (`team/app`, `team/app/sidecar`,
    // `team-x/tool`), which is not byte order, and sends `Link: </v2/_catalog?last=<previous,
    // percent-encoded>&n=1>; rel="next"` on every page but the last. Pages 2 to 6 must be
    // those Link targets, verbatim (the client's own fallback would be `?n=1&last=…`).
    assert_eq!(pages[0], "/v2/_catalog?n=1", "{pages:?}");
    let followed: Vec<&String> = pages
        .iter()
        .skip(1)
        .filter(|p| p.starts_with("/v2/_catalog?last="))
        .collect();
    assert_eq!(
        followed.len(),
        REPOSITORIES.len() - 1,
        "the Link headers were not followed: {pages:?}"
    );
    assert!(
        followed.iter().any(|p| p.contains("last=team%2Fapp&n=1")),
        "a name with `/` is passed on percent-encoded: {pages:?}"
    );
    // Each page continues after a different name (the last one may or may not be asked
    // for once more: a full last page without a Link ends with one empty page).
    let continued: Vec<String> = pages
        .iter()
        .skip(1)
        .map(|p| {
            let last = p
                .split(['?', '&'])
                .find_map(|kv| kv.strip_prefix("last="))
                .unwrap_or_else(|| panic!("page {p} has no last="));
            last.replace("%2F", "/")
        })
        .collect();
    let distinct: std::collections::BTreeSet<&str> = continued.iter().map(String::as_str).collect();
    assert_eq!(
        distinct.len(),
        continued.len(),
        "a page was asked twice: {pages:?}"
    );
    assert!(
        distinct.iter().all(|name| REPOSITORIES.contains(name)),
        "{pages:?}"
    );
    assert!(
        pages.len() <= REPOSITORIES.len() + 1,
        "too many requests: {pages:?}"
    );
}

#[tokio::test]
async fn catalog_of_an_empty_registry_is_empty() {
    let server = RegistryServer::start();
    let client = anonymous(&server).await;
    for page_size in [1, 100] {
        assert_eq!(
            client.catalog(page_size).await.expect("catalog"),
            Vec::<String>::new()
        );
    }
}

fn catalog_requests(server: &RegistryServer) -> Vec<String> {
    server.request_uris("GET", "/v2/_catalog")
}

// ---------------------------------------------------------------------------------------
// 3. Manifest bodies

#[tokio::test]
async fn reads_the_children_of_an_oci_index() {
    let server = RegistryServer::start();
    let pusher = Pusher::new(&server);
    let amd64 = pusher.oci_image("multi", None, "amd64").await;
    let arm64 = pusher.oci_image("multi", None, "arm64").await;
    let index = pusher
        .oci_index("multi", Some("latest"), &[&amd64, &arm64])
        .await;

    let client = anonymous(&server).await;
    let body = client
        .manifest_body("multi", &index.digest)
        .await
        .expect("reading the index")
        .expect("the index exists");
    assert_eq!(body.media_type.as_deref(), Some(OCI_INDEX));
    let children: Vec<&str> = body.manifests.iter().map(|d| d.digest.as_str()).collect();
    assert_eq!(children, [amd64.digest.as_str(), arm64.digest.as_str()]);
    assert!(
        body.manifests
            .iter()
            .all(|d| d.media_type.as_deref() == Some(OCI_MANIFEST))
    );
    assert_eq!(body.subject, None);

    // A child is a plain image: no children, no subject.
    let child = client
        .manifest_body("multi", &amd64.digest)
        .await
        .expect("reading a child")
        .expect("the child exists");
    assert_eq!(child.media_type.as_deref(), Some(OCI_MANIFEST));
    assert!(child.manifests.is_empty());
    assert_eq!(child.subject, None);
}

#[tokio::test]
async fn reads_a_docker_schema2_manifest() {
    let server = RegistryServer::start();
    let pusher = Pusher::new(&server);
    let image = pusher.docker_image("legacy", Some("v1"), "docker").await;

    // Distribution 2.8 serves a schema 2 manifest asked for by tag only to a client that
    // accepts schema 2 (otherwise it tries to convert it to schema 1 and fails); by digest
    // it serves the stored bytes whatever the Accept.
    let http = reqwest::Client::new();
    let url = format!("{}/v2/legacy/manifests/v1", server.url());
    let plain = http.get(&url).send().await.expect("GET by tag, no Accept");
    assert_eq!(
        plain.status(),
        reqwest::StatusCode::BAD_REQUEST,
        "GET {url}"
    );
    let accepted = http
        .get(&url)
        .header(reqwest::header::ACCEPT, DOCKER_MANIFEST)
        .send()
        .await
        .expect("GET by tag, Accept schema 2");
    assert_eq!(accepted.status(), reqwest::StatusCode::OK, "GET {url}");

    let client = anonymous(&server).await;
    let body = client
        .manifest_body("legacy", &image.digest)
        .await
        .expect("reading a schema 2 manifest")
        .expect("the manifest exists");
    assert_eq!(body.media_type.as_deref(), Some(DOCKER_MANIFEST));
    assert!(body.manifests.is_empty());
    assert_eq!(body.subject, None);

    // By tag, only a client that sends the schema 2 Accept gets it.
    let by_tag = client
        .manifest_body("legacy", "v1")
        .await
        .expect("reading a schema 2 manifest by tag (needs the right Accept)")
        .expect("the tag exists");
    assert_eq!(by_tag, body);
}

#[tokio::test]
async fn reads_the_subject_of_an_oci_artifact() {
    let server = RegistryServer::start();
    let pusher = Pusher::new(&server);
    let image = pusher.oci_image("signed", Some("v1"), "signed").await;
    let sbom = pusher
        .artifact("signed", None, "application/spdx+json", &image)
        .await;

    let client = anonymous(&server).await;
    let body = client
        .manifest_body("signed", &sbom.digest)
        .await
        .expect("reading the artifact")
        .expect("the artifact exists");
    let subject = body.subject.expect("the artifact has a subject");
    assert_eq!(subject.digest, image.digest);
    assert_eq!(subject.media_type.as_deref(), Some(OCI_MANIFEST));
    assert_eq!(body.artifact_type.as_deref(), Some("application/spdx+json"));
}

#[tokio::test]
async fn an_unknown_manifest_or_repository_reads_as_none() {
    let server = RegistryServer::start();
    let pusher = Pusher::new(&server);
    pusher.oci_image("known", Some("v1"), "known").await;
    let missing = digest_of(b"never pushed");

    let client = anonymous(&server).await;
    let body = client
        .manifest_body("known", &missing)
        .await
        .expect("reading an unknown digest is not an error");
    assert_eq!(body, None);
    let body = client
        .manifest_body("unknown/repo", &missing)
        .await
        .expect("reading from an unknown repository is not an error");
    assert_eq!(body, None);
}

// ---------------------------------------------------------------------------------------
// 4. Deleting manifests

#[tokio::test]
async fn deletes_a_manifest_with_all_its_tags() {
    let server = RegistryServer::start();
    let pusher = Pusher::new(&server);
    let old = pusher.oci_image("team/app", Some("v1"), "old").await;
    pusher
        .manifest("team/app", Some("v1-alias"), &old.media_type, &old.body)
        .await;
    let current = pusher
        .oci_image("team/app", Some("latest"), "current")
        .await;
    assert_eq!(
        pusher.tags("team/app").await.expect("repository exists"),
        ["latest", "v1", "v1-alias"]
    );

    let client = anonymous(&server).await;
    let status = client
        .delete_manifest("team/app", &old.digest, no_check)
        .await
        .expect("deleting a manifest")
        .unwrap_or_else(|never| match never {});
    assert_eq!(status, DeleteStatus::Deleted);
    assert!(!pusher.has_manifest("team/app", &old.digest).await);
    assert!(pusher.has_manifest("team/app", &current.digest).await);
    assert_eq!(
        pusher.tags("team/app").await.expect("repository exists"),
        ["latest"],
        "both tags of the deleted manifest are gone, the other stays"
    );
    assert_eq!(
        client
            .manifest_body("team/app", &old.digest)
            .await
            .expect("reading a deleted manifest"),
        None
    );

    let again = client
        .delete_manifest("team/app", &old.digest, no_check)
        .await
        .expect("deleting it again")
        .unwrap_or_else(|never| match never {});
    assert_eq!(again, DeleteStatus::NotFound);

    // The last manifest: the tag list becomes `null`.
    let status = client
        .delete_manifest("team/app", &current.digest, no_check)
        .await
        .expect("deleting the last manifest")
        .unwrap_or_else(|never| match never {});
    assert_eq!(status, DeleteStatus::Deleted);
    assert_eq!(
        pusher.tags("team/app").await.expect("repository exists"),
        Vec::<String>::new()
    );

    let deletes: Vec<(String, u16)> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| (r.uri, r.status))
        .collect();
    let path = |digest: &str| format!("/v2/team/app/manifests/{digest}");
    assert_eq!(
        deletes,
        [
            (path(&old.digest), 202),
            (path(&old.digest), 404),
            (path(&current.digest), 202)
        ]
    );
}

#[tokio::test]
async fn deleting_an_index_keeps_its_children() {
    let server = RegistryServer::start();
    let pusher = Pusher::new(&server);
    let child = pusher.oci_image("multi", None, "child").await;
    let index = pusher.oci_index("multi", Some("v1"), &[&child]).await;

    let client = anonymous(&server).await;
    let status = client
        .delete_manifest("multi", &index.digest, no_check)
        .await
        .expect("deleting the index")
        .unwrap_or_else(|never| match never {});
    assert_eq!(status, DeleteStatus::Deleted);
    assert!(!pusher.has_manifest("multi", &index.digest).await);
    assert!(pusher.has_manifest("multi", &child.digest).await);
}

#[tokio::test]
async fn a_registry_that_refuses_deletes_reports_not_allowed() {
    let server = RegistryServer::start_with(RegistryOptions::delete_disabled());
    let pusher = Pusher::new(&server);
    let image = pusher.oci_image("app", Some("v1"), "kept").await;

    let client = anonymous(&server).await;
    let status = client
        .delete_manifest("app", &image.digest, no_check)
        .await
        .expect("a refused delete is a status, not an error")
        .unwrap_or_else(|never| match never {});
    assert_eq!(status, DeleteStatus::NotAllowed);
    assert!(pusher.has_manifest("app", &image.digest).await);
    assert_eq!(pusher.tags("app").await.expect("repository exists"), ["v1"]);
}

// ---------------------------------------------------------------------------------------
// 5. The ACR-only API is missing

#[tokio::test]
async fn listing_tags_fails_clearly_without_the_acr_api() {
    let server = RegistryServer::start();
    let pusher = Pusher::new(&server);
    pusher.oci_image("app", Some("v1"), "app").await;

    let client = anonymous(&server).await;
    for repository in ["app", "not/there"] {
        let error = client
            .list_tags(repository)
            .await
            .expect_err("listing tags without /acr/v1 must fail, not report no repository");
        assert!(matches!(error, RegistryError::Protocol { .. }), "{error:?}");
        assert!(!error.is_denied(), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("/acr/v1"), "{message}");
        assert!(message.contains(repository), "{message}");

        let error = client
            .list_manifests(repository)
            .await
            .expect_err("listing manifests without /acr/v1 must fail");
        assert!(error.to_string().contains("/acr/v1"), "{error}");
    }
}

#[tokio::test]
async fn reading_one_tag_fails_clearly_without_the_acr_api() {
    let server = RegistryServer::start();
    let pusher = Pusher::new(&server);
    let image = pusher.oci_image("app", Some("v1"), "app").await;

    let client = anonymous(&server).await;
    let tag = client.tag("app", "v1").await;
    assert!(
        tag.as_ref()
            .is_err_and(|e| e.to_string().contains("/acr/v1")),
        "tag(app, v1) = {tag:?}, but the tag exists"
    );
    let manifest = client.manifest("app", &image.digest).await;
    assert!(
        manifest
            .as_ref()
            .is_err_and(|e| e.to_string().contains("/acr/v1")),
        "manifest(app, {}) = {manifest:?}, but the manifest exists",
        image.digest
    );
}

/// Runs `handler purge -f app:.* --ago 0d` (plus `extra`) against `server`, which has no
/// `/acr/v1` API, and checks that it fails and deletes nothing. Returns stdout and stderr.
async fn purge_without_acr_api(server: &RegistryServer, extra: &[&str]) -> (String, String) {
    let pusher = Pusher::new(server);
    let before = pusher.tags("app").await.expect("the test pushed app");
    let url = server.url();
    let mut args = vec!["purge", "-r", &url, "-f", "app:.*", "--ago", "0d"];
    args.extend(extra);
    // Blocking is fine here: the registry is another process.
    let output = handler(&args);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    let context = format!("purge {extra:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(output.status.code(), Some(1), "{context}");
    assert!(stderr.starts_with("Error: "), "{context}");
    assert!(!stdout.contains("repository not found"), "{context}");
    assert!(
        !stdout
            .lines()
            .any(|l| l.starts_with("Deleting ") || l.starts_with("Deleted ")),
        "{context}"
    );
    assert_eq!(
        pusher.tags("app").await.as_ref(),
        Some(&before),
        "{context}"
    );
    let writes: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE" || r.method == "PATCH")
        .collect();
    assert!(writes.is_empty(), "{context}\nwrites: {writes:?}");
    // It did ask for the ACR API, and got the registry's plain-text 404.
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.uri.starts_with("/acr/v1/app/_tags") && r.status == 404),
        "{context}"
    );
    (stdout, stderr)
}

#[tokio::test]
async fn purge_fails_against_a_registry_without_the_acr_api_and_deletes_nothing() {
    let server = RegistryServer::start();
    let pusher = Pusher::new(&server);
    let v1 = pusher.oci_image("app", Some("v1"), "v1").await;
    let v2 = pusher.oci_image("app", Some("v2"), "v2").await;

    for extra in [&["--dry-run"][..], &[]] {
        let (_, stderr) = purge_without_acr_api(&server, extra).await;
        assert!(stderr.contains("app"), "{stderr}");
    }
    assert!(pusher.has_manifest("app", &v1.digest).await);
    assert!(pusher.has_manifest("app", &v2.digest).await);

    // The JSON report says why the repository failed.
    let (stdout, _) = purge_without_acr_api(&server, &["--dry-run", "--output", "json"]).await;
    let report: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let repositories = report["repositories"].as_array().expect("repositories");
    assert_eq!(repositories.len(), 1, "{report:#}");
    assert_eq!(repositories[0]["repository"], "app", "{report:#}");
    assert_eq!(repositories[0]["status"], "failed", "{report:#}");
    let error = repositories[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("/acr/v1"), "{report:#}");
}

#[tokio::test]
async fn purge_says_on_stderr_that_the_acr_api_is_missing() {
    let server = RegistryServer::start();
    Pusher::new(&server)
        .oci_image("app", Some("v1"), "v1")
        .await;
    for extra in [&["--dry-run"][..], &[]] {
        let (stdout, stderr) = purge_without_acr_api(&server, extra).await;
        assert!(
            stderr.contains("/acr/v1"),
            "purge {extra:?}: stderr does not say why\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 6. An unreachable registry

#[test]
fn purge_names_an_unreachable_registry() {
    // A port that was free a moment ago and has nobody listening now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("finding a free port")
        .port();
    let registry = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let output = handler(&["purge", "-r", &registry, "-f", "a:.*", "--ago", "1d"]);
    let took = started.elapsed();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")),
        "the error does not name the registry:\n{stderr}"
    );
    assert!(stderr.contains("reaching registry"), "{stderr}");
    // 4 attempts with 0.5 s doubling backoff (jittered down to half): at most 3.5 s of waiting.
    assert!(took < Duration::from_secs(10), "took {took:?}");
}
