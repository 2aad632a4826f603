//! The `handler` binary as the Azure Functions host runs it: readiness, the timer payloads,
//! the forwarded webhook with each body kind and each rejection, the 202 path, Key Vault
//! through the managed identity, and shutdown — against the ACR emulator.

use crate::support::host::Handler;
use crate::support::identity::{ENTRA_TOKEN, IdentityEndpoint};
use crate::support::keyvault::{KeyVault, Mode};
use crate::support::purge::{Registry, set, tagged};
use acr_emulator::{AuthMode, Fault, ManifestSeed, RepoSeed, Seed, TokenAuth};
use acr_purge::functions::listener::HEADER_READ_TIMEOUT;
use acr_purge::functions::secret::{READ_TIMEOUT, REREAD_INTERVAL};
use acr_purge::functions::webhook::sign;
use std::time::Duration;

/// Empties `tools/ci` (its one image), which the scheduled default `maxDeletions` (50%)
/// refuses: these tests are about the host, so the policy lifts the limit (`null`); the
/// guard has its own tests (`retention`).
const POLICY: &str = r#"{"rules":[{"filter":["app:^v","tools/.*:.*"],"ago":"7d","untagged":true}],"protect":["app:^v0$"],"maxDeletions":null,"maxRunDeletions":null}"#;
const SECRET: &str = "s3cret-webhook";

fn seed() -> Seed {
    Seed::new()
        .repo(
            RepoSeed::new("app")
                .manifest(tagged("old1", "v1", "30d"))
                .manifest(tagged("old2", "v2", "20d"))
                .manifest(tagged("new", "v3", "1d"))
                .manifest(tagged("zero", "v0", "90d"))
                .manifest(tagged("latest", "latest", "60d"))
                .manifest(ManifestSeed::image("dangling").age("60d")),
        )
        .repo(RepoSeed::new("tools/ci").manifest(tagged("t", "build-1", "30d")))
        .repo(RepoSeed::new("other").manifest(tagged("o", "v1", "30d")))
}

async fn setup(extra: &[(&str, &str)]) -> (Registry, Handler) {
    let registry = Registry::start(seed()).await;
    let mut settings = vec![
        ("PURGE_REGISTRY", registry.running.url.as_str()),
        ("PURGE_POLICY", POLICY),
        ("WEBHOOK_SECRET", SECRET),
    ];
    settings.extend_from_slice(extra);
    let handler = Handler::start(&settings).await;
    (registry, handler)
}

async fn signed(
    handler: &Handler,
    body: &str,
    extra: &[(&str, &str)],
) -> crate::support::host::Answer {
    let signature = sign(SECRET, body.as_bytes());
    let mut headers = vec![
        ("X-Hub-Signature-256", signature.as_str()),
        ("Content-Type", "application/json"),
    ];
    headers.extend_from_slice(extra);
    handler
        .request("POST", "/api/purge", &headers, body.as_bytes().to_vec())
        .await
}

#[tokio::test]
async fn timer_runs_the_policy_with_and_without_schedule_status() {
    let (registry, handler) = setup(&[]).await;
    assert!(handler.ready_after < std::time::Duration::from_secs(5));
    let answer = handler.timer(false, false).await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    assert_eq!(answer.json["Outputs"], serde_json::json!({}));
    let logs: Vec<String> = serde_json::from_value(answer.json["Logs"].clone()).unwrap();
    let host = registry.running.host();
    assert!(logs.contains(&format!("Deleted {host}/app:v1")), "{logs:?}");
    assert!(
        logs.contains(&"Number of deleted tags: 3".to_string()),
        "{logs:?}"
    );
    let report = &answer.json["ReturnValue"];
    assert_eq!(report["summary"]["tagsDeleted"], 3);
    assert_eq!(report["dryRun"], false);
    assert_eq!(registry.tags("app"), set(&["latest", "v0", "v3"]));
    assert!(registry.tags("tools/ci").is_empty());
    assert_eq!(registry.tags("other"), set(&["v1"]));
    assert!(!registry.has("app", "dangling") && !registry.has("app", "old1"));

    let answer = handler.timer(true, true).await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    let logs = answer.json["Logs"].to_string();
    assert!(logs.contains("past due"), "{logs}");
    assert!(logs.contains("2026-11-21T03:00:00+00:00"), "{logs}");
    assert_eq!(answer.json["ReturnValue"]["summary"]["tagsDeleted"], 0);
}

#[tokio::test]
async fn purge_dry_run_setting_forces_dry_runs() {
    let (registry, handler) = setup(&[("PURGE_DRY_RUN", "true")]).await;
    let answer = handler.timer(true, false).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json["ReturnValue"]["dryRun"], true);
    assert_eq!(answer.json["ReturnValue"]["summary"]["tagsDeleted"], 3);
    let answer = signed(&handler, r#"{"repositories":["app"],"dryRun":false}"#, &[]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.json["dryRun"], true,
        "a webhook cannot turn a forced dry run off"
    );
    assert!(registry.mutations().is_empty());
    assert_eq!(registry.tags("app").len(), 5);
}

#[tokio::test]
async fn invalid_configuration_fails_every_invocation_and_touches_nothing() {
    let registry = Registry::start(seed()).await;
    let handler = Handler::start(&[
        ("PURGE_REGISTRY", registry.running.url.as_str()),
        (
            "PURGE_POLICY",
            r#"{"rules":[{"filter":"app:[","ago":"7d"}]}"#,
        ),
        ("WEBHOOK_SECRET", SECRET),
    ])
    .await;
    let answer = handler.timer(false, false).await;
    assert_eq!(answer.status, 500);
    let logs = answer.json["Logs"].to_string();
    assert!(logs.contains("app setting PURGE_POLICY"), "{logs}");
    assert!(logs.contains("rules[0].filter[0]"), "{logs}");
    let answer = signed(&handler, "{}", &[]).await;
    assert_eq!(answer.status, 500);
    assert_eq!(
        answer.json["error"], "invalid configuration (see the logs)",
        "callers never see the configuration error"
    );
    assert!(registry.emulator().requests().is_empty());
}

#[tokio::test]
async fn configuration_errors_reach_the_logs_never_a_caller_nor_a_password() {
    let handler = Handler::start(&[
        ("PURGE_REGISTRY", "http://purger:hunter22-pw@127.0.0.1:1"),
        ("PURGE_POLICY", POLICY),
        ("WEBHOOK_SECRET", SECRET),
    ])
    .await;
    let bearer = format!("Bearer {SECRET}");
    for (method, path, headers) in [
        ("POST", "/api/purge", vec![]),
        ("GET", "/api/purge/x", vec![]),
        (
            "POST",
            "/api/purge",
            vec![("Authorization", bearer.as_str())],
        ),
        (
            "GET",
            "/api/purge/x",
            vec![("Authorization", bearer.as_str())],
        ),
    ] {
        let answer = handler
            .request(method, path, &headers, b"{}".to_vec())
            .await;
        assert_eq!(answer.status, 500, "{method} {path}");
        assert_eq!(answer.json["error"], "invalid configuration (see the logs)");
        assert!(!answer.json.to_string().contains("hunter22"));
    }
    let answer = handler.timer(false, false).await;
    assert_eq!(answer.status, 500);
    let logs = answer.json["Logs"].to_string();
    assert!(logs.contains("app setting PURGE_REGISTRY"), "{logs}");
    assert!(!logs.contains("hunter22"), "{logs}");
    let stdout = handler.stdout().join("\n");
    assert!(stdout.contains("PURGE_REGISTRY"), "{stdout}");
    assert!(!stdout.contains("hunter22"), "{stdout}");
}

#[tokio::test]
async fn unreachable_registry_is_a_failed_invocation() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{closed}");
    let handler =
        Handler::start(&[("PURGE_REGISTRY", url.as_str()), ("PURGE_POLICY", POLICY)]).await;
    let answer = handler.timer(false, false).await;
    assert_eq!(answer.status, 500);
    let error = answer.json["ReturnValue"]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("reaching registry"), "{error}");
}

#[tokio::test]
async fn webhook_bodies_narrow_the_policy() {
    let (registry, handler) = setup(&[]).await;
    // Generic body, GitHub-style signature.
    let answer = signed(&handler, r#"{"repositories":["tools/ci"]}"#, &[]).await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    assert_eq!(answer.json["summary"]["tagsDeleted"], 1);
    assert!(registry.tags("tools/ci").is_empty());
    assert_eq!(registry.tags("app").len(), 5, "app was not named");

    // An ACR push event, with the static bearer header ACR webhooks send.
    // `request.host` is the registry's login server: an event from another registry is
    // refused (see `fleet`).
    let acr = r#"{"id":"cb8c3971","timestamp":"2026-11-21T02:00:00Z","action":"push","target":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":708,"digest":"sha256:fea8","length":708,"repository":"app","tag":"v3"},"request":{"id":"3cbb6949","host":"HOST","method":"PUT","useragent":"docker/20"}}"#
        .replace("HOST", &registry.running.host());
    let bearer = format!("Bearer {SECRET}");
    let answer = handler
        .request(
            "POST",
            "/api/purge",
            &[("Authorization", bearer.as_str())],
            acr.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    assert_eq!(registry.tags("app"), set(&["latest", "v0", "v3"]));
    assert_eq!(registry.tags("other"), set(&["v1"]));
}

#[tokio::test]
async fn event_bodies_honour_dry_run() {
    let (registry, handler) = setup(&[]).await;
    // The body from the issue: a signed ACR push asking for a dry run ran a real purge.
    let acr = r#"{"action":"push","target":{"repository":"tools/ci","tag":"x"},"dryRun":true}"#;
    let answer = signed(&handler, acr, &[]).await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    assert_eq!(answer.json["dryRun"], true);
    assert_eq!(answer.json["summary"]["tagsDeleted"], 1);
    let release = r#"{"action":"published","release":{"tag_name":"v4"},"repository":{"name":"app"},"dryRun":true}"#;
    let answer = signed(&handler, release, &[("X-GitHub-Event", "release")]).await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    assert_eq!(answer.json["dryRun"], true);
    assert!(registry.mutations().is_empty(), "dry runs delete nothing");
    assert_eq!(registry.tags("tools/ci"), set(&["build-1"]));
    let bad = r#"{"action":"push","target":{"repository":"tools/ci"},"dryRun":"true"}"#;
    let answer = signed(&handler, bad, &[]).await;
    assert_eq!(answer.status, 400, "{:#}", answer.json);
    assert!(registry.mutations().is_empty());
}

#[tokio::test]
async fn only_acr_pushes_and_github_releases_start_runs() {
    let (registry, handler) = setup(&[]).await;
    for action in ["delete", "quarantine", "chart_push"] {
        let body = format!(r#"{{"action":"{action}","target":{{"repository":"app","tag":"v1"}}}}"#);
        let answer = signed(&handler, &body, &[]).await;
        assert_eq!(answer.status, 200, "{:#}", answer.json);
        assert!(answer.json["ignored"].is_string(), "{:#}", answer.json);
    }
    let push = r#"{"ref":"refs/heads/main","repository":{"name":"app"}}"#;
    for headers in [vec![("X-GitHub-Event", "push")], vec![]] {
        let answer = signed(&handler, push, &headers).await;
        assert_eq!(answer.status, 200, "{:#}", answer.json);
        assert!(answer.json["ignored"].is_string(), "{:#}", answer.json);
    }
    assert!(
        registry.emulator().requests().is_empty(),
        "no run was started"
    );
}

#[tokio::test]
async fn github_release_and_ping_events() {
    let (registry, handler) = setup(&[]).await;
    let ping = r#"{"zen":"Design for failure.","hook_id":1}"#;
    let answer = signed(&handler, ping, &[("X-GitHub-Event", "ping")]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json["pong"], true);
    assert!(registry.emulator().requests().is_empty());

    let release = r#"{"action":"published","release":{"tag_name":"v4","name":"v4"},"repository":{"id":1,"name":"app","full_name":"org/app"},"sender":{"login":"dev"}}"#;
    let answer = signed(&handler, release, &[("X-GitHub-Event", "release")]).await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    assert_eq!(answer.json["summary"]["tagsDeleted"], 2);
    assert_eq!(registry.tags("tools/ci"), set(&["build-1"]));
}

/// A request and the status it must get: method, path, headers, body, status.
type Case<'a> = (&'a str, &'a str, Headers<'a>, Vec<u8>, u16);
type Headers<'a> = Vec<(&'a str, String)>;

#[tokio::test]
async fn webhook_rejections_touch_nothing() {
    let (registry, handler) = setup(&[]).await;
    let body = r#"{"repositories":["app"]}"#;
    let wrong = sign("not-the-secret", body.as_bytes());
    let cases: Vec<Case> = vec![
        ("POST", "/api/purge", vec![], body.into(), 401),
        (
            "POST",
            "/api/purge",
            vec![("X-Hub-Signature-256", wrong)],
            body.into(),
            401,
        ),
        (
            "POST",
            "/api/purge",
            vec![("X-Hub-Signature-256", "sha256=00".into())],
            body.into(),
            401,
        ),
        (
            "POST",
            "/api/purge",
            vec![("Authorization", "Bearer nope".into())],
            body.into(),
            401,
        ),
        (
            "POST",
            "/api/purge",
            vec![(
                "X-Hub-Signature-256",
                sign(SECRET, body.as_bytes())
                    .to_uppercase()
                    .replace("SHA256=", "sha256="),
            )],
            body.into(),
            401,
        ),
        (
            "POST",
            "/api/purge",
            vec![
                ("X-Hub-Signature-256", sign(SECRET, body.as_bytes())),
                ("X-Hub-Signature-256", sign(SECRET, body.as_bytes())),
            ],
            body.into(),
            400,
        ),
        (
            "POST",
            "/api/purge",
            vec![
                ("Authorization", format!("Bearer {SECRET}")),
                ("Authorization", "Bearer nope".into()),
            ],
            body.into(),
            400,
        ),
        (
            "POST",
            "/api/purge",
            vec![("X-Hub-Signature-256", sign(SECRET, b"{not json"))],
            b"{not json".to_vec(),
            400,
        ),
        (
            "POST",
            "/api/purge",
            vec![("X-Hub-Signature-256", sign(SECRET, br#"{"hello":1}"#))],
            br#"{"hello":1}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/api/purge",
            vec![(
                "X-Hub-Signature-256",
                sign(SECRET, br#"{"repositories":["other"]}"#),
            )],
            br#"{"repositories":["other"]}"#.to_vec(),
            422,
        ),
        ("GET", "/api/purge", vec![], vec![], 405),
        (
            "PUT",
            "/api/purge",
            vec![("X-Hub-Signature-256", sign(SECRET, body.as_bytes()))],
            body.into(),
            405,
        ),
        ("DELETE", "/api/purge/abc", vec![], vec![], 405),
    ];
    for (method, path, headers, body, expected) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let answer = handler.request(method, path, &headers, body).await;
        assert_eq!(
            answer.status, expected,
            "{method} {path} {headers:?}: {:#}",
            answer.json
        );
        assert_eq!(answer.json["status"], expected, "JSON error body");
        assert!(answer.json["error"].is_string());
    }
    // A body declared larger than 1 MiB is refused before it is read. Sent by hand: a client
    // still writing the body when the refusal closes the connection sees a broken pipe
    // instead of the answer, so only the headers are sent.
    let answer = raw_request(
        &handler,
        &format!(
            "POST /api/purge HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nX-Hub-Signature-256: {}\r\n\r\n",
            1024 * 1024 + 10,
            sign(SECRET, b"")
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""status":413"#), "{answer}");
    assert!(
        registry.emulator().requests().is_empty(),
        "{:?}",
        registry.emulator().requests()
    );
    assert_eq!(registry.tags("app").len(), 5);
}

/// Sends `request` as is on a fresh connection and reads the answer until the server closes
/// the connection or stops sending.
async fn raw_request(handler: &Handler, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = handler.url.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(Ok(n)) =
        tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buffer)).await
    {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..n]);
        if String::from_utf8_lossy(&answer).contains(r#""status":413}"#) {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn long_runs_answer_202_and_report_their_status() {
    let (registry, handler) = setup(&[("PURGE_HTTP_DEADLINE_SECONDS", "1")]).await;
    registry
        .emulator()
        .set_latency(std::time::Duration::from_millis(150));
    let answer = signed(&handler, r#"{"repositories":["app"]}"#, &[]).await;
    assert_eq!(answer.status, 202, "{:#}", answer.json);
    let url = answer.json["statusUrl"].as_str().unwrap().to_string();
    assert_eq!(answer.json["status"], "running");
    let bearer = format!("Bearer {SECRET}");
    let unauthenticated = handler.request("GET", &url, &[], vec![]).await;
    assert_eq!(unauthenticated.status, 401);
    let report = loop {
        let status = handler
            .request("GET", &url, &[("Authorization", bearer.as_str())], vec![])
            .await;
        assert_eq!(status.status, 200, "{:#}", status.json);
        if status.json["status"] == "finished" {
            break status.json["report"].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(report["summary"]["tagsDeleted"], 2);
    assert_eq!(registry.tags("app"), set(&["latest", "v0", "v3"]));
    let missing = handler
        .request(
            "GET",
            "/api/purge/0b7e5d6c-1c2a-4f3e-9a8b-7c6d5e4f3a2b",
            &[("Authorization", bearer.as_str())],
            vec![],
        )
        .await;
    assert_eq!(missing.status, 404, "{:#}", missing.json);
}

#[tokio::test]
async fn run_ids_not_of_the_handlers_form_are_answered_400_and_logged_at_most_clipped() {
    let (_registry, handler) = setup(&[]).await;
    let bearer = format!("Bearer {SECRET}");
    let long = "a".repeat(5000);
    for id in [
        long.as_str(),
        "nope",
        "0B7E5D6C-1C2A-4F3E-9A8B-7C6D5E4F3A2B",
    ] {
        let started = std::time::Instant::now();
        let answer = handler
            .request(
                "GET",
                &format!("/api/purge/{id}"),
                &[("Authorization", bearer.as_str())],
                vec![],
            )
            .await;
        assert_eq!(answer.status, 400, "{id}: {:#}", answer.json);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(!answer.json.to_string().contains("aaaa"), "not echoed");
    }
    // A repository name of 100,000 characters that no rule covers: refused, never logged whole.
    let name = format!("uncovered/{}", "b".repeat(100_000));
    let body = serde_json::json!({ "repositories": [name] }).to_string();
    let answer = signed(&handler, &body, &[]).await;
    assert_eq!(answer.status, 422, "{:#}", answer.json);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for line in handler.stdout() {
        assert!(!line.contains(&"a".repeat(101)), "{line:.300}");
        assert!(!line.contains(&"b".repeat(200)), "{line:.300}");
    }
}

#[tokio::test]
async fn a_webhook_refuses_a_wider_command_line_plan_in_its_store_and_deletes_nothing() {
    let registry = Registry::start(seed()).await;
    let state = registry.state.path().to_string_lossy().into_owned();
    let handler = Handler::start(&[
        ("PURGE_REGISTRY", registry.running.url.as_str()),
        ("PURGE_POLICY", POLICY),
        ("WEBHOOK_SECRET", SECRET),
        ("PURGE_STATE_DIR", state.as_str()),
    ])
    .await;
    // A dry run on the command line, into the app's own store, with a wider policy.
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("p.json").to_string_lossy().into_owned();
    let run = registry
        .purge(&[
            "--filter",
            "app:.*",
            "--filter",
            "tools/.*:.*",
            "--ago",
            "0d",
            "--include-locked",
            "--untagged",
            "--dry-run",
            "--plan-out",
            out.as_str(),
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("plan")).expect("json");
    let digest = plan["digest"].as_str().expect("digest").to_string();
    registry.emulator().clear_requests();

    let body = format!(r#"{{"apply":"{digest}"}}"#);
    let answer = signed(&handler, &body, &[]).await;
    assert_eq!(answer.status, 422, "{:#}", answer.json);
    let message = answer.json["error"].as_str().unwrap_or_default();
    assert!(message.contains("another policy"), "{message}");
    assert!(
        message.contains("rules") && message.contains("protect"),
        "{message}"
    );
    assert!(message.contains("nothing was deleted"), "{message}");
    assert!(
        registry.emulator().requests().is_empty(),
        "nothing contacted"
    );
    assert_eq!(registry.tags("app").len(), 5);
    assert!(registry.has("app", "zero") && registry.has("app", "dangling"));

    // The app's own plan, made by its webhook, applies.
    let answer = signed(&handler, r#"{"dryRun":true}"#, &[]).await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    let own = answer.json["planDigest"].as_str().expect("planDigest");
    let answer = signed(&handler, &format!(r#"{{"apply":"{own}"}}"#), &[]).await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    assert_eq!(registry.tags("app"), set(&["latest", "v0", "v3"]));
}

#[tokio::test]
async fn a_stored_plan_that_does_not_read_is_422_and_an_unreadable_store_503() {
    let registry = Registry::start(seed()).await;
    let state = registry.state.path().to_string_lossy().into_owned();
    let handler = Handler::start(&[
        ("PURGE_REGISTRY", registry.running.url.as_str()),
        ("PURGE_POLICY", POLICY),
        ("WEBHOOK_SECRET", SECRET),
        ("PURGE_STATE_DIR", state.as_str()),
    ])
    .await;
    let saved = registry.state.path().join("saved-plans");
    std::fs::create_dir_all(&saved).expect("dir");
    let cases: [(&str, &[u8], &str); 3] = [
        ("1", b"\xff\xfe not text", "not UTF-8"),
        ("2", b"{\"format\": 1", "not a saved plan"),
        ("3", b"{}", "not a saved plan"),
    ];
    for (n, bytes, why) in cases {
        let hex = n.repeat(64);
        std::fs::write(saved.join(format!("{hex}.json")), bytes).expect("write");
        let answer = signed(&handler, &format!(r#"{{"apply":"sha256:{hex}"}}"#), &[]).await;
        assert_eq!(answer.status, 422, "{:#}", answer.json);
        let message = answer.json["error"].as_str().unwrap_or_default();
        assert!(message.contains(why), "{message}");
    }
    // Another plan's content under this digest: refused as not the plan asked for.
    let own = signed(&handler, r#"{"dryRun":true}"#, &[]).await;
    let own = own.json["planDigest"]
        .as_str()
        .expect("planDigest")
        .to_string();
    let text = std::fs::read(saved.join(format!("{}.json", &own[7..]))).expect("own plan");
    let hex = "4".repeat(64);
    std::fs::write(saved.join(format!("{hex}.json")), text).expect("write");
    let answer = signed(&handler, &format!(r#"{{"apply":"sha256:{hex}"}}"#), &[]).await;
    assert_eq!(answer.status, 422, "{:#}", answer.json);
    assert!(registry.mutations().is_empty());

    // A store that cannot be read at all is the store's fault: 503.
    let file = tempfile::NamedTempFile::new().expect("file");
    let not_a_dir = file.path().join("store").to_string_lossy().into_owned();
    let broken = Handler::start(&[
        ("PURGE_REGISTRY", registry.running.url.as_str()),
        ("PURGE_POLICY", POLICY),
        ("WEBHOOK_SECRET", SECRET),
        ("PURGE_STATE_DIR", not_a_dir.as_str()),
    ])
    .await;
    let answer = signed(
        &broken,
        &format!(r#"{{"apply":"{own}","dryRun":true}}"#),
        &[],
    )
    .await;
    assert_eq!(answer.status, 503, "{:#}", answer.json);
    assert!(registry.mutations().is_empty());
}

/// A handler reading its webhook secret from `vault` through the managed identity.
async fn with_vault(vault: &KeyVault, identity: &IdentityEndpoint, registry: &Registry) -> Handler {
    let vault_url = vault.url();
    let cert = vault.cert_path();
    Handler::start(&[
        ("PURGE_REGISTRY", registry.running.url.as_str()),
        ("PURGE_POLICY", POLICY),
        ("KEY_VAULT_URL", vault_url.as_str()),
        ("WEBHOOK_SECRET_NAME", "webhook-secret"),
        ("IDENTITY_ENDPOINT", identity.url.as_str()),
        ("IDENTITY_HEADER", crate::support::identity::IDENTITY_HEADER),
        ("AZURE_CLIENT_ID", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"),
        ("SSL_CERT_FILE", cert.as_str()),
    ])
    .await
}

/// A signed GitHub ping: authenticated, answered without a run.
async fn ping(handler: &Handler, secret: &str) -> crate::support::host::Answer {
    let body = r#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let signature = sign(secret, body.as_bytes());
    handler
        .request(
            "POST",
            "/api/purge",
            &[
                ("X-Hub-Signature-256", signature.as_str()),
                ("X-GitHub-Event", "ping"),
            ],
            body.as_bytes().to_vec(),
        )
        .await
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(20), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_degraded_key_vault_never_blocks_a_valid_request() {
    let identity = IdentityEndpoint::start().await;
    let vault = KeyVault::start("webhook-secret", "the-secret").await;
    let registry = Registry::start(seed()).await;
    let handler = std::sync::Arc::new(with_vault(&vault, &identity, &registry).await);
    assert_eq!(ping(&handler, "the-secret").await.status, 200);
    assert_eq!(vault.attempts(), 1);
    let prompt = Duration::from_secs(5);

    // The vault hangs: a wrong proof starts a re-read that never gets an answer.
    vault.set_mode(Mode::Hanging);
    tokio::time::sleep(REREAD_INTERVAL + Duration::from_millis(300)).await;
    let wrong = {
        let handler = handler.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            (
                ping(&handler, "not-the-secret").await.status,
                started.elapsed(),
            )
        })
    };
    wait_until("the re-read reached the vault", || vault.attempts() == 2).await;
    let valid = tokio::time::timeout(prompt, ping(&handler, "the-secret")).await;
    assert_eq!(valid.expect("a valid request answers promptly").status, 200);
    assert!(
        !wrong.is_finished(),
        "the wrong proof still waits for the vault"
    );
    let (status, took) = wrong.await.unwrap();
    assert_eq!(status, 503, "the re-read timed out");
    assert!(
        took < READ_TIMEOUT + prompt,
        "the read is bounded: {took:?}"
    );
    // Backing off: wrong proofs are refused at once, without reading again.
    for _ in 0..5 {
        let answer = tokio::time::timeout(prompt, ping(&handler, "not-the-secret")).await;
        assert_eq!(answer.expect("prompt 401").status, 401);
    }
    assert_eq!(vault.attempts(), 2, "no re-read while backing off");

    // The vault answers 500: same story.
    vault.set_mode(Mode::Failing);
    tokio::time::sleep(REREAD_INTERVAL + Duration::from_millis(300)).await;
    let wrong = {
        let handler = handler.clone();
        tokio::spawn(async move { ping(&handler, "not-the-secret").await.status })
    };
    wait_until("the re-read reached the vault", || vault.attempts() > 2).await;
    let valid = tokio::time::timeout(prompt, ping(&handler, "the-secret")).await;
    assert_eq!(valid.expect("a valid request answers promptly").status, 200);
    assert_eq!(wrong.await.unwrap(), 503);
    let attempts = vault.attempts();
    for _ in 0..5 {
        let answer = tokio::time::timeout(prompt, ping(&handler, "not-the-secret")).await;
        assert_eq!(answer.expect("prompt 401").status, 401);
    }
    assert_eq!(
        vault.attempts(),
        attempts,
        "failed reads are rate-limited too"
    );
    let body = handler.stdout().join("\n");
    assert!(
        body.contains("cannot read the webhook secret"),
        "the logs say why"
    );
}

#[tokio::test]
async fn with_no_secret_ever_read_nothing_is_accepted() {
    let identity = IdentityEndpoint::start().await;
    let vault = KeyVault::start("webhook-secret", "the-secret").await;
    vault.set_mode(Mode::Failing);
    let registry = Registry::start(seed()).await;
    let handler = with_vault(&vault, &identity, &registry).await;
    let answer = ping(&handler, "the-secret").await;
    assert_eq!(answer.status, 503, "{:#}", answer.json);
    let text = answer.json.to_string();
    assert!(
        !text.contains("webhook-secret") && !text.contains("localhost"),
        "{text}"
    );
    let attempts = vault.attempts();
    for secret in ["the-secret", "other"] {
        let answer = ping(&handler, secret).await;
        assert_eq!(answer.status, 503, "fail-closed");
    }
    assert_eq!(vault.attempts(), attempts, "no re-read while backing off");
    vault.set_mode(Mode::Healthy);
    tokio::time::sleep(REREAD_INTERVAL + Duration::from_millis(300)).await;
    assert_eq!(ping(&handler, "other").await.status, 401);
    assert_eq!(ping(&handler, "the-secret").await.status, 200);
    assert!(registry.emulator().requests().is_empty());
}

#[tokio::test]
async fn idle_connections_do_not_stop_the_handler() {
    let (_registry, handler) = setup(&[]).await;
    let address = handler.url.trim_start_matches("http://").to_string();
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    let ready = tokio::time::timeout(
        Duration::from_secs(5),
        handler.request("GET", "/", &[], vec![]),
    )
    .await;
    assert_eq!(ready.expect("GET / answers").status, 200);
    // An idle connection is closed once the header read timeout passes.
    use tokio::io::AsyncReadExt;
    let mut buffer = [0u8; 16];
    let closed = tokio::time::timeout(
        HEADER_READ_TIMEOUT + Duration::from_secs(5),
        idle[0].read(&mut buffer),
    )
    .await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
}

#[tokio::test]
async fn managed_identity_key_vault_and_rotation() {
    let identity = IdentityEndpoint::start().await;
    let vault = KeyVault::start("webhook-secret", "first-secret").await;
    let seed = seed().with_auth(AuthMode::Token(TokenAuth {
        required_access_token: Some(ENTRA_TOKEN.to_string()),
        ..TokenAuth::default()
    }));
    let registry = Registry::start(seed).await;
    let vault_url = vault.url();
    let cert = vault.cert_path();
    let handler = Handler::start(&[
        ("PURGE_REGISTRY", registry.running.url.as_str()),
        ("PURGE_POLICY", POLICY),
        ("KEY_VAULT_URL", vault_url.as_str()),
        ("WEBHOOK_SECRET_NAME", "webhook-secret"),
        ("IDENTITY_ENDPOINT", identity.url.as_str()),
        ("IDENTITY_HEADER", crate::support::identity::IDENTITY_HEADER),
        ("AZURE_CLIENT_ID", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"),
        ("SSL_CERT_FILE", cert.as_str()),
    ])
    .await;
    let body = r#"{"repositories":["tools/ci"],"dryRun":true}"#;
    let send = |secret: &'static str| {
        let signature = sign(secret, body.as_bytes());
        let handler = &handler;
        async move {
            handler
                .request(
                    "POST",
                    "/api/purge",
                    &[("X-Hub-Signature-256", signature.as_str())],
                    body.as_bytes().to_vec(),
                )
                .await
        }
    };
    let answer = send("first-secret").await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    assert_eq!(answer.json["summary"]["tagsDeleted"], 1);
    assert_eq!(vault.reads(), 1);
    // The identity endpoint was asked for Key Vault and ACR tokens, for the user-assigned id.
    let resources: Vec<String> = identity
        .requests()
        .iter()
        .map(|q| q["resource"].clone())
        .collect();
    assert!(
        resources.contains(&"https://vault.azure.net".to_string()),
        "{resources:?}"
    );
    assert!(
        resources.contains(&"https://containerregistry.azure.net".to_string()),
        "{resources:?}"
    );
    assert!(
        identity
            .requests()
            .iter()
            .all(|q| q["client_id"] == "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
    );

    // Rotation: the old secret stops working and the new one works without a restart.
    vault.set("webhook-secret", "second-secret");
    tokio::time::sleep(
        acr_purge::functions::secret::REREAD_INTERVAL + std::time::Duration::from_millis(300),
    )
    .await;
    let answer = send("second-secret").await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    assert_eq!(vault.reads(), 2);
    let answer = send("first-secret").await;
    assert_eq!(answer.status, 401);
    assert_eq!(vault.reads(), 2, "re-reads are rate-limited");
    assert!(registry.mutations().is_empty(), "dry runs only");
}

#[tokio::test]
async fn a_failing_run_is_a_failed_invocation_and_sigterm_stops_cleanly() {
    let (registry, handler) = setup(&[]).await;
    registry
        .emulator()
        .inject(Fault::status(500).path_prefix("/acr/v1/app/_tags"));
    let answer = handler.timer(false, false).await;
    assert_eq!(answer.status, 500, "{:#}", answer.json);
    assert!(answer.json["ReturnValue"]["error"].is_string());
    assert_eq!(registry.tags("app").len(), 5);
    assert_eq!(handler.terminate().await, Some(0));
}

#[tokio::test]
async fn a_webhook_dry_run_saves_its_plan_and_apply_deletes_only_what_is_unchanged() {
    let (registry, handler) = setup(&[]).await;
    let answer = signed(&handler, r#"{"dryRun":true}"#, &[]).await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    let digest = answer.json["planDigest"]
        .as_str()
        .unwrap_or_else(|| panic!("{:#}", answer.json))
        .to_string();
    assert!(registry.mutations().is_empty(), "a dry run deletes nothing");
    // Since the review: old1 got a new tag.
    registry
        .emulator()
        .push_tag("app", "hotfix", &registry.digest("app", "old1"))
        .expect("push");

    let unknown = format!(r#"{{"apply":"sha256:{}"}}"#, "0".repeat(64));
    let answer = signed(&handler, &unknown, &[]).await;
    assert_eq!(answer.status, 404, "{:#}", answer.json);
    let answer = signed(&handler, r#"{"apply":"latest"}"#, &[]).await;
    assert_eq!(answer.status, 400, "{:#}", answer.json);
    assert!(registry.mutations().is_empty());

    let body = format!(r#"{{"apply":"{digest}"}}"#);
    let answer = signed(&handler, &body, &[]).await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    assert_eq!(answer.json["planDigest"], digest.as_str());
    assert!(registry.has("app", "old1"), "tagged since the plan: kept");
    assert!(!registry.has("app", "old2") && !registry.has("app", "dangling"));
    assert_eq!(registry.tags("app"), set(&["hotfix", "latest", "v0", "v3"]));
    assert!(
        registry.tags("tools/ci").is_empty(),
        "the rest of the plan applies"
    );
    assert_eq!(registry.tags("other"), set(&["v1"]));
}
