//! Router-level tests of the server: requests sent in-process to `router(state)`, with the
//! purge itself replaced by a controllable runner where a test needs a run to block or die.

use super::*;
use crate::functions::applies::{MAX_APPLIES, MAX_PLAN_BYTES};
use crate::functions::proof::sign;
use crate::functions::webhook::MAX_BODY;
use crate::report::{RunReport, Summary};
use crate::saved::SavedPlan;
use crate::settings::*;
use crate::telemetry::Trigger;
use axum::body::{Body, Bytes};
use axum::http::Request as HttpRequest;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::Semaphore;
use tower::ServiceExt;

const SECRET: &str = "s3cret-webhook";
const POLICY: &str = r#"{"rules":[{"filter":["app:^v","tools/.*:.*"],"ago":"7d"}]}"#;

fn config(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut map: HashMap<String, String> = [
        (PURGE_REGISTRY, "http://127.0.0.1:9"),
        (PURGE_POLICY, POLICY),
        (WEBHOOK_SECRET, SECRET),
        (PURGE_HTTP_DEADLINE_SECONDS, "1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        map.insert(k.to_string(), v.to_string());
    }
    Config::from_lookup(
        |name| map.get(name).cloned(),
        std::path::Path::new("/nonexistent"),
    )
}

/// One call of the test runner: repositories, dry run, trigger.
type Call = (Option<Vec<String>>, bool, Trigger);

/// A runner that records its calls and waits for a permit of `gate` before finishing; it
/// panics on the calls whose index is in `panics`.
#[derive(Clone)]
struct TestRunner {
    calls: Arc<Mutex<Vec<Call>>>,
    gate: Arc<Semaphore>,
    panics: Arc<Mutex<Vec<usize>>>,
}

impl Default for TestRunner {
    fn default() -> TestRunner {
        TestRunner {
            calls: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
            panics: Arc::default(),
        }
    }
}

impl TestRunner {
    fn open() -> TestRunner {
        let runner = TestRunner::default();
        runner.gate.add_permits(Semaphore::MAX_PERMITS / 2);
        runner
    }

    fn runner(&self) -> Runner {
        let this = self.clone();
        Arc::new(move |config, job, _stop, context| {
            let this = this.clone();
            let only = match job {
                Job::Purge { only } => only,
                Job::Apply { .. } => Some(vec!["(apply)".to_string()]),
            };
            Box::pin(async move {
                let index = {
                    let mut calls = this.calls.lock().unwrap();
                    calls.push((only, context.dry_run, context.trigger));
                    calls.len() - 1
                };
                if let Ok(permit) = this.gate.acquire().await {
                    permit.forget();
                }
                if this.panics.lock().unwrap().contains(&index) {
                    panic!("the run died");
                }
                let now = chrono::Utc::now();
                RunFinished {
                    report: RunReport {
                        registry: config.registry.host().to_string(),
                        dry_run: context.dry_run,
                        started_at: now,
                        finished_at: now,
                        repositories: Vec::new(),
                        summary: Summary::default(),
                        error: None,
                        plan_digest: None,
                        findings: None,
                    },
                    lines: vec!["Number of deleted tags: 0".to_string()],
                }
            })
        })
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    async fn wait_for_calls(&self, n: usize) {
        for _ in 0..500 {
            if self.calls.lock().unwrap().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{n} calls expected, got {:?}", self.calls());
    }
}

fn state_with(runner: &TestRunner, extra: &[(&str, &str)]) -> AppState {
    AppState::new(config(extra)).with_runner(runner.runner())
}

async fn send(state: AppState, request: HttpRequest<Body>) -> (StatusCode, serde_json::Value) {
    let response = router(state)
        .oneshot(request)
        .await
        .unwrap_or_else(|e| match e {});
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

fn signed(body: &str) -> HttpRequest<Body> {
    HttpRequest::post("/api/purge")
        .header("x-hub-signature-256", sign(SECRET, body.as_bytes()))
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn status_request(url: &str) -> HttpRequest<Body> {
    HttpRequest::get(url)
        .header("authorization", format!("Bearer {SECRET}"))
        .body(Body::empty())
        .unwrap()
}

fn timer_request() -> HttpRequest<Body> {
    HttpRequest::post("/PurgeTimer")
        .body(Body::from(
            r#"{"Data":{"timer":{"IsPastDue":false}},"Metadata":{}}"#,
        ))
        .unwrap()
}

#[tokio::test]
async fn a_webhook_run_that_dies_is_failed_and_frees_the_queue() {
    let runner = TestRunner::open();
    runner.panics.lock().unwrap().push(0);
    let state = state_with(&runner, &[]);
    let (status, json) = send(state.clone(), signed(r#"{"repositories":["app"]}"#)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{json:#}");
    assert_eq!(json["error"], RUN_DIED);
    let id = json["runId"].as_str().unwrap().to_string();
    let (status, json) = send(state.clone(), status_request(&format!("/api/purge/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["status"], "failed", "{json:#}");
    // The next run gets the turn.
    let (status, json) = send(state.clone(), signed(r#"{"repositories":["app"]}"#)).await;
    assert_eq!(status, StatusCode::OK, "{json:#}");
    assert_eq!(runner.calls().len(), 2);
}

#[tokio::test]
async fn a_webhook_run_answered_202_that_dies_shows_failed() {
    let runner = TestRunner::default();
    runner.panics.lock().unwrap().push(0);
    let state = state_with(&runner, &[]);
    let (status, json) = send(state.clone(), signed(r#"{"repositories":["app"]}"#)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{json:#}");
    assert_eq!(json["status"], "running");
    let url = json["statusUrl"].as_str().unwrap().to_string();
    runner.wait_for_calls(1).await;
    runner.gate.add_permits(1);
    let mut last = serde_json::Value::Null;
    for _ in 0..200 {
        let (_, json) = send(state.clone(), status_request(&url)).await;
        last = json;
        if last["status"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(last["status"], "failed", "{last:#}");
    assert_eq!(last["error"], RUN_DIED);
}

#[tokio::test]
async fn a_timer_run_that_dies_answers_the_host_500_with_the_envelope() {
    let runner = TestRunner::open();
    runner.panics.lock().unwrap().push(0);
    let state = state_with(&runner, &[]);
    let (status, json) = send(state.clone(), timer_request()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{json:#}");
    assert_eq!(json["Outputs"], json!({}));
    assert!(json["Logs"].to_string().contains(RUN_DIED), "{json:#}");
    assert_eq!(json["ReturnValue"]["error"], RUN_DIED);
    // The turn came back: the next timer runs.
    let (status, json) = send(state.clone(), timer_request()).await;
    assert_eq!(status, StatusCode::OK, "{json:#}");
}

#[tokio::test]
async fn configuration_errors_never_reach_callers() {
    let runner = TestRunner::open();
    let bad_registry = config(&[(PURGE_REGISTRY, "ftp://user:hunter22@r.azurecr.io")]);
    let bad_policy = config(&[(
        PURGE_POLICY,
        r#"{"rules":[{"filter":"app:[SECRETPATTERN","ago":"7d"}]}"#,
    )]);
    let bad_vault = config(&[
        (KEY_VAULT_URL, "https://user:hunter22@v.vault.azure.net/"),
        (WEBHOOK_SECRET_NAME, "hook"),
    ]);
    let bad_secret = config(&[(WEBHOOK_SECRET, "hunter22\n")]);
    for config in [bad_registry, bad_policy, bad_vault, bad_secret] {
        let state = AppState::new(config).with_runner(runner.runner());
        for request in [
            HttpRequest::post("/api/purge")
                .body(Body::from("{}"))
                .unwrap(),
            signed("{}"),
            HttpRequest::get("/api/purge/x")
                .body(Body::empty())
                .unwrap(),
            status_request("/api/purge/x"),
        ] {
            let (status, json) = send(state.clone(), request).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{json:#}");
            assert_eq!(json["error"], INVALID_CONFIGURATION, "{json:#}");
            let text = json.to_string();
            for leak in ["hunter22", "SECRETPATTERN", "PURGE_", "vault.azure.net"] {
                assert!(!text.contains(leak), "{text}");
            }
        }
    }
    assert!(runner.calls().is_empty());
}

#[tokio::test]
async fn webhook_runs_coalesce_per_dry_run_flag_and_the_timer_goes_first() {
    let runner = TestRunner::default();
    let state = state_with(&runner, &[]);
    let first = tokio::spawn(send(state.clone(), signed(r#"{"repositories":["app"]}"#)));
    runner.wait_for_calls(1).await;
    let bodies = [
        r#"{"repositories":["tools/a"]}"#,
        r#"{"repositories":["tools/b","tools/a"]}"#,
        r#"{"repositories":["app"],"dryRun":true}"#,
    ];
    let mut answers = Vec::new();
    for body in bodies {
        answers.push(tokio::spawn(send(state.clone(), signed(body))));
    }
    let mut ids = Vec::new();
    for answer in answers {
        let (status, json) = answer.await.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "{json:#}");
        assert_eq!(json["status"], "queued", "{json:#}");
        ids.push(json["runId"].as_str().unwrap().to_string());
    }
    assert_eq!(ids[0], ids[1], "real runs coalesce");
    assert_ne!(ids[0], ids[2], "a dry run is never merged with a real one");
    let timer = tokio::spawn(send(state.clone(), timer_request()));
    for _ in 0..500 {
        if state.queue.timers_waiting() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(state.queue.timers_waiting(), 1);
    runner.gate.add_permits(4);
    let (status, _) = timer.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let (status, _) = first.await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED);
    runner.wait_for_calls(4).await;
    let calls = runner.calls();
    assert_eq!(
        calls[0],
        (Some(vec!["app".to_string()]), false, Trigger::Webhook)
    );
    assert_eq!(
        calls[1],
        (None, false, Trigger::Timer),
        "the timer goes first"
    );
    let rest: Vec<&Call> = calls[2..].iter().collect();
    assert!(
        rest.contains(&&(
            Some(vec!["tools/a".to_string(), "tools/b".to_string()]),
            false,
            Trigger::Webhook
        )),
        "{calls:?}"
    );
    assert!(
        rest.contains(&&(Some(vec!["app".to_string()]), true, Trigger::Webhook)),
        "{calls:?}"
    );
    for id in &ids {
        for _ in 0..200 {
            let (_, json) = send(state.clone(), status_request(&format!("/api/purge/{id}"))).await;
            if json["status"] == "finished" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (_, json) = send(state.clone(), status_request(&format!("/api/purge/{id}"))).await;
        assert_eq!(json["status"], "finished", "{json:#}");
    }
}

#[tokio::test]
async fn a_full_queue_answers_429() {
    let runner = TestRunner::default();
    let state = state_with(&runner, &[]);
    let first = tokio::spawn(send(state.clone(), signed(r#"{"repositories":["app"]}"#)));
    runner.wait_for_calls(1).await;
    let names = |from: usize| {
        let names: Vec<String> = (from..from + 600).map(|i| format!("tools/{i}")).collect();
        json!({ "repositories": names }).to_string()
    };
    let pending = tokio::spawn(send(state.clone(), signed(&names(0))));
    // Wait until the first batch is pending, then the second would overflow the union.
    let (status, json) = pending.await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{json:#}");
    let (status, json) = send(state.clone(), signed(&names(10_000))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{json:#}");
    assert_eq!(json["status"], 429);
    assert!(json["error"].as_str().unwrap().contains("queue is full"));
    runner.gate.add_permits(2);
    let _ = first.await;
}

#[tokio::test]
async fn proofs_are_read_strictly() {
    let runner = TestRunner::open();
    let state = state_with(&runner, &[]);
    let body = r#"{"repositories":["app"]}"#;
    let good = sign(SECRET, body.as_bytes());
    let upper = format!("sha256={}", good["sha256=".len()..].to_uppercase());
    let cases: Vec<(Vec<(&str, String)>, StatusCode)> = vec![
        (
            vec![
                ("x-hub-signature-256", good.clone()),
                ("x-hub-signature-256", good.clone()),
            ],
            StatusCode::BAD_REQUEST,
        ),
        (
            vec![
                ("authorization", format!("Bearer {SECRET}")),
                ("authorization", format!("Bearer {SECRET}")),
            ],
            StatusCode::BAD_REQUEST,
        ),
        (
            vec![("x-hub-signature-256", upper)],
            StatusCode::UNAUTHORIZED,
        ),
        (
            vec![("authorization", format!("Bearer {SECRET}x"))],
            StatusCode::UNAUTHORIZED,
        ),
        (vec![("x-hub-signature-256", good)], StatusCode::OK),
    ];
    for (headers, expected) in cases {
        let mut request = HttpRequest::post("/api/purge");
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        let (status, json) = send(state.clone(), request.body(Body::from(body)).unwrap()).await;
        assert_eq!(status, expected, "{headers:?}: {json:#}");
    }
    assert_eq!(runner.calls().len(), 1);
}

#[tokio::test]
async fn a_wrong_bearer_token_is_refused_before_the_body_is_read() {
    let state = state_with(&TestRunner::open(), &[]);
    let endless = futures::stream::pending::<Result<Bytes, std::io::Error>>();
    let request = HttpRequest::post("/api/purge")
        .header("authorization", "Bearer wrong")
        .body(Body::from_stream(endless))
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), send(state.clone(), request)).await;
    let (status, _) = answer.expect("answered without reading the body");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn ignored_events_start_no_run_and_event_bodies_honour_dry_run() {
    let runner = TestRunner::open();
    let state = state_with(&runner, &[]);
    let delete = r#"{"action":"delete","target":{"repository":"app","tag":"v1"}}"#;
    let (status, json) = send(state.clone(), signed(delete)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        json["ignored"].as_str().unwrap().contains("delete"),
        "{json:#}"
    );
    let push =
        r#"{"action":"push","target":{"repository":"tools/builder","tag":"x"},"dryRun":true}"#;
    let (status, json) = send(state.clone(), signed(push)).await;
    assert_eq!(status, StatusCode::OK, "{json:#}");
    assert_eq!(json["dryRun"], true);
    assert_eq!(
        runner.calls(),
        [(
            Some(vec!["tools/builder".to_string()]),
            true,
            Trigger::Webhook
        )]
    );
}

#[tokio::test]
async fn answers_do_not_echo_huge_names() {
    let state = state_with(&TestRunner::open(), &[]);
    let name = format!("other/{}", "x".repeat(100_000));
    let body = json!({ "repositories": [name] }).to_string();
    let (status, json) = send(state.clone(), signed(&body)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(json.to_string().len() < 500, "{}", json.to_string().len());
}

#[tokio::test]
async fn shutdown_is_bounded_while_a_timer_request_is_in_flight() {
    let runner = TestRunner::default();
    let state = state_with(&runner, &[]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (signal, signalled) = tokio::sync::oneshot::channel::<()>();
    let grace = Duration::from_millis(500);
    let server = tokio::spawn(serve_until(
        listener,
        state,
        async move {
            let _ = signalled.await;
        },
        grace,
    ));
    let timer = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{url}/PurgeTimer"))
            .body(r#"{"Data":{},"Metadata":{}}"#)
            .send()
            .await
    });
    runner.wait_for_calls(1).await;
    let _ = signal.send(());
    let stopped = tokio::time::timeout(Duration::from_secs(10), server).await;
    assert!(stopped.is_ok(), "shutdown waited past its grace period");
    timer.abort();
}

#[tokio::test]
async fn a_body_over_1_mib_is_refused_even_without_a_declared_length() {
    let runner = TestRunner::open();
    let state = state_with(&runner, &[]);
    let big = vec![b' '; MAX_BODY + 10];
    let chunks: Vec<Result<Bytes, std::io::Error>> = big
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let request = HttpRequest::post("/api/purge")
        .header("x-hub-signature-256", sign(SECRET, &big))
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap();
    let (status, json) = send(state.clone(), request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{json:#}");
    assert!(runner.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn bodies_are_read_within_a_bound_and_a_few_at_a_time() {
    let state = state_with(&TestRunner::open(), &[]);
    let endless = || {
        let request = HttpRequest::post("/api/purge")
            .header("x-hub-signature-256", sign(SECRET, b"{}"))
            .body(Body::from_stream(futures::stream::pending::<
                Result<Bytes, std::io::Error>,
            >()))
            .unwrap();
        tokio::spawn(send(state.clone(), request))
    };
    // A body that never completes is answered 408 after BODY_READ_TIMEOUT.
    let started = tokio::time::Instant::now();
    let (status, json) = endless().await.unwrap();
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{json:#}");
    assert!(started.elapsed() >= BODY_READ_TIMEOUT);
    // While every read slot is taken, a further body waits for one.
    let stuck: Vec<_> = (0..MAX_CONCURRENT_BODY_READS).map(|_| endless()).collect();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(state.body_reads.available_permits(), 0);
    let waiting = tokio::spawn(send(state.clone(), signed("{}")));
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(!waiting.is_finished(), "no slot, no read");
    for answer in stuck {
        assert_eq!(answer.await.unwrap().0, StatusCode::REQUEST_TIMEOUT);
    }
    // The slots came back: the waiting body is read.
    assert_eq!(waiting.await.unwrap().0, StatusCode::OK);
    assert_eq!(
        state.body_reads.available_permits(),
        MAX_CONCURRENT_BODY_READS
    );
}

#[tokio::test]
async fn a_status_request_for_an_id_the_handler_never_issues_is_refused_and_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state").to_string_lossy().into_owned();
    // A record where `..` from `runs/` would lead: the store root itself.
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("state/record.json"), "{}").unwrap();
    let runner = TestRunner::open();
    let state = state_with(&runner, &[(PURGE_STATE_DIR, state_dir.as_str())]);
    let long = "a".repeat(5000);
    for id in ["%2e%2e", "..", ".", "x%2F..", long.as_str()] {
        let (status, json) = send(state.clone(), status_request(&format!("/api/purge/{id}"))).await;
        // The route refuses it before the store (which refuses it too: store/tests.rs).
        assert_eq!(status, StatusCode::BAD_REQUEST, "{id}: {json:#}");
        assert!(json.to_string().len() < 300, "{json}");
    }
}

/// Saves a plan of the app's policy (or, `other_policy`, of one that includes locked
/// images) in the run store of `state`, and returns its digest.
async fn save_plan(state: &AppState, repository: &str, other_policy: bool) -> String {
    let config = state.config.as_ref().unwrap().clone();
    let mut policy = config.policy.policy.clone();
    if other_policy {
        policy.protect.clear();
        policy.rules[0].include_locked = true;
    }
    let plan = SavedPlan::seal(
        config.registry.host(),
        chrono::Utc::now(),
        &policy,
        None,
        vec![crate::saved::SavedRepository {
            repository: repository.to_string(),
            tags: Vec::new(),
            manifests: Vec::new(),
        }],
    );
    let store = state.durability.store(&config).await.unwrap();
    store.write_saved_plan(&plan).await.unwrap();
    plan.digest().to_string()
}

fn apply_body(digest: &str) -> String {
    format!(r#"{{"apply":"{digest}"}}"#)
}

#[tokio::test]
async fn applies_of_one_plan_coalesce_and_at_most_four_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_string_lossy().into_owned();
    let runner = TestRunner::default();
    let state = state_with(
        &runner,
        &[(PURGE_STATE_DIR, &path), (PURGE_DRY_RUN, "true")],
    );
    let mut digests = Vec::new();
    for i in 0..=MAX_APPLIES {
        digests.push(save_plan(&state, &format!("app{i}"), false).await);
    }
    // Thirty identical requests: one apply, one run, one run id.
    let requests: Vec<_> = (0..30)
        .map(|_| tokio::spawn(send(state.clone(), signed(&apply_body(&digests[0])))))
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for request in requests {
        let (status, json) = request.await.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "{json:#}");
        ids.insert(json["runId"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    runner.wait_for_calls(1).await;
    assert_eq!(state.applies.len(), 1);
    // Three other plans are accepted and wait; a fifth apply is one too many.
    for digest in &digests[1..MAX_APPLIES] {
        let (status, json) = send(state.clone(), signed(&apply_body(digest))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{json:#}");
        assert_eq!(json["status"], "queued", "{json:#}");
    }
    let (status, json) = send(state.clone(), signed(&apply_body(&digests[MAX_APPLIES]))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{json:#}");
    assert!(json["error"].as_str().unwrap().contains("at most 4"));
    // Joining one under way is still accepted.
    let (status, _) = send(state.clone(), signed(&apply_body(&digests[1]))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(runner.calls().len(), 1, "one run at a time");
    // They run one after the other; then a new apply of the first plan is a new run.
    runner.gate.add_permits(MAX_APPLIES);
    runner.wait_for_calls(MAX_APPLIES).await;
    for _ in 0..200 {
        if state.applies.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(state.applies.is_empty());
    runner.gate.add_permits(1);
    let (status, json) = send(state.clone(), signed(&apply_body(&digests[0]))).await;
    assert_eq!(status, StatusCode::OK, "{json:#}");
    assert_eq!(runner.calls().len(), MAX_APPLIES + 1);
    let first = ids.first().unwrap();
    let (_, json) = send(
        state.clone(),
        status_request(&format!("/api/purge/{first}")),
    )
    .await;
    assert_eq!(json["status"], "finished", "{json:#}");
}

#[tokio::test]
async fn a_plan_of_another_policy_is_refused_and_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_string_lossy().into_owned();
    let runner = TestRunner::open();
    let state = state_with(
        &runner,
        &[(PURGE_STATE_DIR, &path), (PURGE_DRY_RUN, "true")],
    );
    let wider = save_plan(&state, "app", true).await;
    let (status, json) = send(state.clone(), signed(&apply_body(&wider))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json:#}");
    let message = json["error"].as_str().unwrap();
    assert!(
        message.contains("another policy than this app's"),
        "{message}"
    );
    assert!(message.contains("rules"), "{message}");
    assert!(runner.calls().is_empty());
    // Too large to be applied by the webhook: refused by its size.
    let hex = "7".repeat(64);
    let huge = vec![b' '; MAX_PLAN_BYTES + 1];
    std::fs::create_dir_all(dir.path().join("saved-plans")).unwrap();
    std::fs::write(dir.path().join(format!("saved-plans/{hex}.json")), huge).unwrap();
    let (status, json) = send(state.clone(), signed(&apply_body(&format!("sha256:{hex}")))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json:#}");
    assert!(
        json["error"].as_str().unwrap().contains("64 MiB"),
        "{json:#}"
    );
    assert!(runner.calls().is_empty());
    let own = save_plan(&state, "app", false).await;
    let (status, json) = send(state.clone(), signed(&apply_body(&own))).await;
    assert_eq!(status, StatusCode::OK, "{json:#}");
    assert_eq!(runner.calls().len(), 1);
}

#[tokio::test]
async fn a_queued_run_is_recorded_in_the_store_for_every_instance() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_string_lossy().into_owned();
    let runner = TestRunner::default();
    let settings = [(PURGE_STATE_DIR, path.as_str()), (PURGE_DRY_RUN, "true")];
    let here = state_with(&runner, &settings);
    let elsewhere = state_with(&runner, &settings);
    let first = tokio::spawn(send(here.clone(), signed(r#"{"repositories":["app"]}"#)));
    runner.wait_for_calls(1).await;
    let (status, json) = send(here.clone(), signed(r#"{"repositories":["tools/ci"]}"#)).await;
    // Queued behind the first: another instance knows it from the store.
    assert_eq!(status, StatusCode::ACCEPTED, "{json:#}");
    let url = json["statusUrl"].as_str().unwrap().to_string();
    let (status, json) = send(elsewhere.clone(), status_request(&url)).await;
    assert_eq!(status, StatusCode::OK, "{json:#}");
    assert_eq!(json["status"], "queued", "{json:#}");
    // The trigger its own record will have once it begins (no longer the old `http`).
    assert_eq!(json["record"]["trigger"], "webhook");
    runner.gate.add_permits(2);
    let _ = first.await;
}

#[test]
fn run_ids_are_the_handlers_uuids_only() {
    let id = uuid::Uuid::new_v4().to_string();
    assert!(is_run_id(&id));
    for not in [
        id.to_uppercase(),
        id.replace('-', ""),
        format!("{{{id}}}"),
        format!("urn:uuid:{id}"),
        "a".repeat(5000),
        String::new(),
    ] {
        assert!(!is_run_id(&not), "{not:.80}");
    }
}
