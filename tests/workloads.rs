//! The in-use and pull-log clients (`acr_purge::azure`) against the Resource Graph and
//! Log Analytics emulators over real HTTP, signed in by the real azure_identity managed
//! identity credential at the local identity endpoint.
//!
//! That credential reads `IDENTITY_ENDPOINT` / `IDENTITY_HEADER` from the process
//! environment, which a test must not change in this shared test binary, so each case runs
//! the clients in a child process (this binary again, the ignored test
//! [`child_process`]) with that environment, as the other suites run `handler`.

use crate::support::identity::{ENTRA_TOKEN, IDENTITY_HEADER, IdentityEndpoint};
use acr_emulator::{
    GraphFault, GraphResource, LogAnalyticsEmulator, LogsFault, Oversize, RepositoryEvent,
    ResourceGraphEmulator,
};
use acr_purge::azure::in_use::{ImageReference, InUseClient, InUseScope, ResultFormat};
use acr_purge::azure::pulls::PullLog;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

const CHILD_SPEC: &str = "ACR_PURGE_WORKLOADS_CHILD";
const RESULT: &str = "WORKLOADS_RESULT ";
const LS: &str = "myreg.azurecr.io";
const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// Runs one client call described by `$ACR_PURGE_WORKLOADS_CHILD` and prints its result;
/// does nothing without it (run by the cases below, not on its own).
#[tokio::test]
#[ignore = "run by the workloads cases in a child process"]
async fn child_process() {
    let Ok(spec) = std::env::var(CHILD_SPEC) else {
        return;
    };
    let spec: Value = serde_json::from_str(&spec).expect("child spec");
    let credential = acr_purge::outbound::managed_identity(None).expect("credential");
    let http = reqwest::Client::new();
    let text = |k: &str| spec[k].as_str().unwrap_or_default().to_string();
    let result = match spec["kind"].as_str() {
        Some("images") => {
            let mut client = InUseClient::new(text("endpoint").parse().unwrap(), credential, http);
            if spec["format"] == "table" {
                client = client.with_result_format(ResultFormat::Table);
            }
            let scopes: Vec<InUseScope> = spec["scopes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| match s[0].as_str() {
                    Some("sub") => InUseScope::Subscription(s[1].as_str().unwrap().into()),
                    _ => InUseScope::ManagementGroup(s[1].as_str().unwrap().into()),
                })
                .collect();
            match client.images(&text("login_server"), &scopes).await {
                Ok(images) => json!({ "ok": images.iter().map(|i| json!([
                    i.repository,
                    match &i.reference {
                        ImageReference::Digest(d) => format!("@{d}"),
                        ImageReference::Tag(t) => format!(":{t}"),
                    },
                    i.resource_id,
                    i.resource_type,
                ])).collect::<Vec<_>>() }),
                Err(e) => json!({ "err": e.to_string() }),
            }
        }
        _ => {
            let log = PullLog::new(
                text("endpoint").parse().unwrap(),
                text("workspace"),
                credential,
                http,
            );
            let now: DateTime<Utc> = text("now").parse().unwrap();
            let exclude: Vec<String> = serde_json::from_value(spec["exclude"].clone()).unwrap();
            let window = Duration::days(spec["window_days"].as_i64().unwrap());
            match log
                .last_pulls(&text("login_server"), window, now, &exclude)
                .await
            {
                Ok(p) => json!({ "ok": {
                    "by_digest": p.by_digest.iter().map(|((r, d), t)| json!([r, d, t.to_rfc3339()])).collect::<Vec<_>>(),
                    "by_tag": p.by_tag.iter().map(|((r, d), t)| json!([r, d, t.to_rfc3339()])).collect::<Vec<_>>(),
                    "covered_since": p.covered_since.map(|t| t.to_rfc3339()),
                    "covers": p.covers_window(Duration::days(1)),
                }}),
                Err(e) => json!({ "err": e.to_string() }),
            }
        }
    };
    println!("{RESULT}{result}");
}

/// Runs [`child_process`] with `spec` and the identity endpoint's environment.
async fn in_child(identity: &IdentityEndpoint, spec: Value) -> Result<Value, String> {
    let exe = std::env::current_exe().expect("test binary");
    let output = tokio::process::Command::new(exe)
        .args([
            "--exact",
            "workloads::child_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_remove("AZURE_CLIENT_ID")
        .env("IDENTITY_ENDPOINT", &identity.url)
        .env("IDENTITY_HEADER", IDENTITY_HEADER)
        .env(CHILD_SPEC, spec.to_string())
        .kill_on_drop(true)
        .output()
        .await
        .expect("child runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.find(RESULT).map(|at| &l[at + RESULT.len()..]))
        .unwrap_or_else(|| {
            panic!(
                "no result from the child: {stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let result: Value = serde_json::from_str(line).expect("result JSON");
    match result.get("err") {
        Some(e) => Err(e.as_str().unwrap_or_default().to_string()),
        None => Ok(result["ok"].clone()),
    }
}

fn app(sub: &str, name: &str, images: &[&str], init: &[&str]) -> GraphResource {
    let containers = |list: &[&str]| -> Vec<Value> {
        list.iter()
            .map(|i| json!({"name": "c", "image": i}))
            .collect()
    };
    GraphResource::new(
        sub,
        "rg",
        "Microsoft.App/containerApps",
        name,
        json!({"template": {"containers": containers(images), "initContainers": containers(init)}}),
    )
}

fn id(sub: &str, provider_type: &str, name: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/rg/providers/{provider_type}/{name}")
}

/// A registry of workloads in s1 and s2 (and one in s3, outside the scope).
fn workloads() -> ResourceGraphEmulator {
    let graph = ResourceGraphEmulator::new();
    graph.set_expected_token(Some(ENTRA_TOKEN));
    graph.add(app(
        "s1",
        "web",
        &[&format!("{LS}/web:v1")],
        &[&format!("{LS}/migrate@{D1}")],
    ));
    graph.add(app(
        "s1",
        "api",
        &[&format!("MYREG.azurecr.io/team/api:v2@{D2}"), "nginx:1.27"],
        &[],
    ));
    graph.add(app(
        "s2",
        "other",
        &[
            "other.azurecr.io/web:v1",
            "mcr.microsoft.com/k8se/quickstart",
        ],
        &[],
    ));
    graph.add(GraphResource::new(
        "s2",
        "rg",
        "Microsoft.App/jobs",
        "nightly",
        json!({"template": {"containers": [{"image": format!("{LS}/jobs/nightly")}]}}),
    ));
    graph.add(GraphResource::new(
        "s2",
        "rg",
        "Microsoft.ContainerInstance/containerGroups",
        "batch",
        json!({"containers": [{"name": "b", "properties": {"image": format!("{LS}/batch:3")}}],
               "initContainers": [{"name": "i", "properties": {"image": format!("{LS}/batch-init:1")}}]}),
    ));
    graph.add(GraphResource::new(
        "s1",
        "rg",
        "Microsoft.Web/sites",
        "site",
        json!({"siteConfig": {"linuxFxVersion": format!("DOCKER|{LS}/site:2024.1")}}),
    ));
    graph.add(GraphResource::new(
        "s1",
        "rg",
        "Microsoft.Web/sites/slots",
        "site/staging",
        json!({"siteProperties": {"properties": [{"name": "LinuxFxVersion", "value": format!("DOCKER|{LS}/site:2024.2")}]}}),
    ));
    graph.add(GraphResource::new(
        "s1",
        "rg",
        "Microsoft.Web/sites",
        "node",
        json!({"siteConfig": {"linuxFxVersion": "NODE|20-lts"}}),
    ));
    graph.add(GraphResource::new(
        "s1",
        "rg",
        "Microsoft.Storage/storageAccounts",
        "st",
        json!({}),
    ));
    graph.add(app(
        "s3",
        "elsewhere",
        &[&format!("{LS}/elsewhere:v1")],
        &[],
    ));
    graph.set_management_group("platform", &["s3"]);
    graph
}

fn expected_images() -> Vec<Value> {
    let apps = "Microsoft.App/containerApps";
    let mut rows = vec![
        json!([
            "batch",
            ":3",
            id("s2", "Microsoft.ContainerInstance/containerGroups", "batch"),
            "microsoft.containerinstance/containergroups"
        ]),
        json!([
            "batch-init",
            ":1",
            id("s2", "Microsoft.ContainerInstance/containerGroups", "batch"),
            "microsoft.containerinstance/containergroups"
        ]),
        json!([
            "jobs/nightly",
            ":latest",
            id("s2", "Microsoft.App/jobs", "nightly"),
            "microsoft.app/jobs"
        ]),
        json!([
            "migrate",
            format!("@{D1}"),
            id("s1", apps, "web"),
            "microsoft.app/containerapps"
        ]),
        json!([
            "site",
            ":2024.1",
            id("s1", "Microsoft.Web/sites", "site"),
            "microsoft.web/sites"
        ]),
        json!([
            "site",
            ":2024.2",
            id("s1", "Microsoft.Web/sites/slots", "site/staging"),
            "microsoft.web/sites/slots"
        ]),
        json!([
            "team/api",
            format!("@{D2}"),
            id("s1", apps, "api"),
            "microsoft.app/containerapps"
        ]),
        json!([
            "web",
            ":v1",
            id("s1", apps, "web"),
            "microsoft.app/containerapps"
        ]),
    ];
    rows.sort_by_key(|r| r.to_string());
    rows
}

fn sorted(value: Value) -> Vec<Value> {
    let mut rows = value.as_array().cloned().unwrap_or_default();
    rows.sort_by_key(|r| r.to_string());
    rows
}

#[tokio::test]
async fn in_use_images_of_every_page_in_both_formats() {
    let identity = IdentityEndpoint::start().await;
    let graph = workloads();
    graph.set_page_size(2);
    let server = graph.start().await.unwrap();
    // `localhost`, so that the audience asked for is told apart from the Logs endpoint's.
    let endpoint = format!("http://localhost:{}", server.addr.port());
    for format in ["objectArray", "table"] {
        let spec = json!({"kind": "images", "endpoint": endpoint, "login_server": LS, "format": format,
                          "scopes": [["sub", "s1"], ["sub", "s2"]]});
        let images = in_child(&identity, spec).await.unwrap();
        assert_eq!(sorted(images), expected_images(), "{format}");
    }
    let all = graph.requests();
    // Each lookup first confirms the subscriptions are readable (one page).
    let checks: Vec<_> = all
        .iter()
        .filter(|r| r.body["query"] == acr_purge::azure::in_use::SUBSCRIPTIONS_QUERY)
        .collect();
    assert_eq!(checks.len(), 2, "{all:#?}");
    assert!(
        checks
            .iter()
            .all(|r| r.body["subscriptions"] == json!(["s1", "s2"]))
    );
    let requests: Vec<_> = all
        .iter()
        .filter(|r| r.body["query"] != acr_purge::azure::in_use::SUBSCRIPTIONS_QUERY)
        .collect();
    // 8 workloads in s1 and s2 (the storage account is not one): 4 pages of 2, twice.
    assert_eq!(requests.len(), 8, "{requests:#?}");
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(r.status, 200);
        assert_eq!(r.api_version.as_deref(), Some("2022-10-01"));
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {ENTRA_TOKEN}").as_str())
        );
        assert_eq!(r.body["subscriptions"], json!(["s1", "s2"]));
        assert_eq!(r.body["query"], acr_purge::azure::in_use::IN_USE_QUERY);
        // Pages as large as the service gives (its default without `$top` is 100 rows).
        assert_eq!(
            r.body["options"]["$top"],
            acr_purge::azure::in_use::PAGE_ROWS
        );
        assert_eq!(
            r.body["options"].get("$skipToken").is_some(),
            i % 4 != 0,
            "request {i}"
        );
    }
    assert_eq!(requests[4].body["options"]["resultFormat"], "table");
    let audiences: Vec<String> = identity
        .requests()
        .iter()
        .map(|q| q["resource"].clone())
        .collect();
    assert_eq!(audiences, ["http://localhost", "http://localhost"]);

    // A management group is a scope of its own.
    let spec = json!({"kind": "images", "endpoint": endpoint, "login_server": LS,
                      "scopes": [["mg", "platform"]]});
    let images = in_child(&identity, spec).await.unwrap();
    assert_eq!(
        images,
        json!([[
            "elsewhere",
            ":v1",
            id("s3", "Microsoft.App/containerApps", "elsewhere"),
            "microsoft.app/containerapps"
        ]])
    );
    assert_eq!(
        graph.requests().last().unwrap().body["managementGroups"],
        json!(["platform"])
    );
}

#[tokio::test]
async fn in_use_fails_closed() {
    let identity = IdentityEndpoint::start().await;
    let graph = workloads();
    graph.set_page_size(3);
    let server = graph.start().await.unwrap();
    let spec = json!({"kind": "images", "endpoint": server.url, "login_server": LS,
                      "scopes": [["sub", "s1"], ["sub", "s2"]]});

    graph.inject(GraphFault::Truncate);
    let error = in_child(&identity, spec.clone()).await.unwrap_err();
    assert!(error.contains("resultTruncated"), "{error}");
    graph.clear_faults();

    graph.inject(GraphFault::FailPage {
        page: 3,
        status: 500,
    });
    let error = in_child(&identity, spec.clone()).await.unwrap_err();
    assert!(
        error.contains("page 3") && error.contains("HTTP 500"),
        "{error}"
    );
    assert!(error.contains("ServiceError"), "{error}");
    graph.clear_faults();

    // A throttled page is asked again after Retry-After.
    graph.inject(GraphFault::Throttle {
        count: 1,
        retry_after_seconds: 0,
    });
    let images = in_child(&identity, spec.clone()).await.unwrap();
    assert_eq!(sorted(images), expected_images());
    assert_eq!(
        graph.requests().iter().filter(|r| r.status == 429).count(),
        1
    );

    // A wrong token is a 401, an error, not an empty list.
    graph.set_expected_token(Some("another-token"));
    let error = in_child(&identity, spec.clone()).await.unwrap_err();
    assert!(
        error.contains("HTTP 401") && error.contains("AuthenticationFailed"),
        "{error}"
    );
    graph.set_expected_token(Some(ENTRA_TOKEN));

    let error = in_child(
        &identity,
        json!({"kind": "images", "endpoint": server.url, "login_server": LS, "scopes": []}),
    )
    .await
    .unwrap_err();
    assert!(
        error.contains("no subscription or management group"),
        "{error}"
    );
    let error = in_child(&identity, json!({"kind": "images", "endpoint": server.url, "login_server": LS, "scopes": [["mg", "unknown"]]}))
        .await
        .unwrap_err();
    assert!(
        error.contains("HTTP 400") && error.contains("unknown"),
        "{error}"
    );
}

/// Every Azure client asks a failing answer (5xx) again, three requests in all, before it
/// fails with the last answer; an answer that no retry can change (404) is asked once.
#[tokio::test]
async fn failing_answers_are_asked_again_before_the_lookup_fails() {
    let identity = IdentityEndpoint::start().await;
    let graph = workloads();
    let server = graph.start().await.unwrap();
    let spec = json!({"kind": "images", "endpoint": server.url, "login_server": LS,
                      "scopes": [["sub", "s1"]]});
    // The first page of the first query (the scopes check): (status, requests sent).
    for (status, asked) in [(503, 3), (404, 1)] {
        graph.clear_faults();
        graph.inject(GraphFault::FailPage { page: 1, status });
        let error = in_child(&identity, spec.clone()).await.unwrap_err();
        assert!(error.contains(&format!("HTTP {status}")), "{error}");
        let sent = graph
            .requests()
            .iter()
            .filter(|r| r.status == status)
            .count();
        assert_eq!(sent, asked, "HTTP {status}");
    }

    let logs = LogAnalyticsEmulator::new("11111111-2222-3333-4444-555555555555");
    logs.set_expected_token(Some(ENTRA_TOKEN));
    let server = logs.start().await.unwrap();
    logs.inject(LogsFault::Fail { status: 500 });
    let spec = json!({"kind": "pulls", "endpoint": server.url, "workspace": "11111111-2222-3333-4444-555555555555",
                      "login_server": LS, "window_days": 90, "now": Utc::now().to_rfc3339(),
                      "exclude": []});
    let error = in_child(&identity, spec).await.unwrap_err();
    assert!(error.contains("HTTP 500"), "{error}");
    assert_eq!(
        logs.requests().iter().filter(|r| r.status == 500).count(),
        3,
        "the pull log's failing query, asked three times"
    );
}

#[tokio::test]
async fn in_use_stops_on_an_unreadable_scope_and_batches_subscriptions() {
    let identity = IdentityEndpoint::start().await;
    let graph = workloads();
    let server = graph.start().await.unwrap();
    let spec = |scopes: Value| json!({"kind": "images", "endpoint": server.url, "login_server": LS, "scopes": scopes});

    // s2 is unreadable: Resource Graph would answer s1's rows alone, without an error.
    graph.set_unreadable(&["s2"]);
    let error = in_child(&identity, spec(json!([["sub", "s1"], ["sub", "s2"]])))
        .await
        .unwrap_err();
    assert!(
        error.contains("cannot read subscription s2") && !error.contains("subscription s1"),
        "{error}"
    );
    assert!(
        graph
            .requests()
            .iter()
            .all(|r| r.body["query"] != acr_purge::azure::in_use::IN_USE_QUERY),
        "no workload is read before every scope is confirmed"
    );
    // None readable: the service's 403 names them all the same.
    let error = in_child(&identity, spec(json!([["sub", "s2"], ["sub", "nowhere"]])))
        .await
        .unwrap_err();
    assert!(
        error.contains("subscription s2") && error.contains("subscription nowhere"),
        "{error}"
    );
    // A management group none of whose subscriptions is readable.
    graph.set_unreadable(&["s3"]);
    let error = in_child(&identity, spec(json!([["mg", "platform"]])))
        .await
        .unwrap_err();
    assert!(error.contains("management group platform"), "{error}");
    graph.set_unreadable(&[]);

    // 1,500 readable subscriptions: batches of at most 1,000, every row read.
    let mut scopes = vec![json!(["sub", "s1"]), json!(["sub", "s2"])];
    for i in 0..1498 {
        let sub = format!("extra-{i:04}");
        graph.add_subscription(&sub);
        scopes.push(json!(["sub", sub]));
    }
    let before = graph.requests().len();
    let images = in_child(&identity, spec(Value::Array(scopes)))
        .await
        .unwrap();
    assert_eq!(sorted(images), expected_images());
    let sent = &graph.requests()[before..];
    assert!(sent.iter().all(|r| r.status == 200), "{sent:#?}");
    let sizes: Vec<usize> = sent
        .iter()
        .filter(|r| r.body["options"].get("$skipToken").is_none())
        .map(|r| r.body["subscriptions"].as_array().map_or(0, Vec::len))
        .collect();
    // Two batches to confirm the scopes, two to read the workloads.
    assert_eq!(sizes, [1000, 500, 1000, 500]);

    // The service says it queried only part of the tenant's subscriptions: fail closed.
    graph.inject(GraphFault::SubscriptionLimitHit);
    let error = in_child(&identity, spec(json!([["sub", "s1"]])))
        .await
        .unwrap_err();
    assert!(
        error.contains("x-ms-tenant-subscription-limit-hit"),
        "{error}"
    );
}

fn pull(
    now: DateTime<Utc>,
    days: i64,
    repo: &str,
    tag: Option<&str>,
    digest: Option<&str>,
    who: &str,
) -> RepositoryEvent {
    RepositoryEvent::pull(now - Duration::days(days), LS, repo, tag, digest, who)
}

fn at(now: DateTime<Utc>, days: i64) -> String {
    (now - Duration::days(days)).to_rfc3339()
}

#[tokio::test]
async fn last_pulls_respect_window_pullers_and_retention() {
    let identity = IdentityEndpoint::start().await;
    let logs = LogAnalyticsEmulator::new("11111111-2222-3333-4444-555555555555");
    logs.set_expected_token(Some(ENTRA_TOKEN));
    logs.set_retention(Duration::days(120));
    let now = Utc::now();
    logs.add(pull(now, 100, "app", Some("v0"), Some(D2), "ci")); // before the window
    logs.add(pull(now, 89, "app", None, Some(D2), "ci").with_operation("Push"));
    logs.add(pull(now, 30, "app", Some("v1"), Some(D1), "ci"));
    logs.add(pull(now, 10, "app", Some("v1"), Some(D1), "ci"));
    logs.add(pull(now, 2, "app", None, Some(D2), "Scanner")); // excluded puller
    logs.add(pull(now, 1, "app", Some("v2"), Some(D2), "ci").with_operation("Push"));
    logs.add(RepositoryEvent::pull(
        now - Duration::days(1),
        "other.azurecr.io",
        "app",
        Some("v2"),
        Some(D2),
        "ci",
    ));
    let server = logs.start().await.unwrap();
    let spec = json!({"kind": "pulls", "endpoint": server.url, "workspace": "11111111-2222-3333-4444-555555555555",
                      "login_server": "MYREG.azurecr.io", "window_days": 90, "now": now.to_rfc3339(),
                      "exclude": ["scanner"]});
    let pulls = in_child(&identity, spec.clone()).await.unwrap();
    assert_eq!(pulls["by_digest"], json!([["app", D1, at(now, 10)]]));
    assert_eq!(pulls["by_tag"], json!([["app", "v1", at(now, 10)]]));
    // Coverage looks back twice the window: the pull 100 days ago is the oldest event.
    assert_eq!(pulls["covered_since"], json!(at(now, 100)));
    assert_eq!(pulls["covers"], true);

    let requests = logs.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].path,
        "/v1/workspaces/11111111-2222-3333-4444-555555555555/query"
    );
    assert_eq!(
        requests[0].body["query"],
        "ContainerRegistryRepositoryEvents | where OperationName == \"Pull\" | where LoginServer =~ \"MYREG.azurecr.io\" | where Identity !in~ (\"scanner\") | summarize LastPull = max(TimeGenerated) by Repository, Tag, Digest"
    );
    assert_eq!(
        requests[1].body["query"],
        "ContainerRegistryRepositoryEvents | where LoginServer =~ \"MYREG.azurecr.io\" | summarize OldestEvent = min(TimeGenerated)"
    );
    let span = requests[0].body["timespan"].as_str().unwrap();
    assert!(
        span.ends_with(&now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        "{span}"
    );
    assert!(
        requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some(format!("Bearer {ENTRA_TOKEN}").as_str()))
    );
    assert_eq!(identity.requests()[0]["resource"], "http://127.0.0.1");

    // Without the exclusion the scanner's pull counts.
    let mut all = spec.clone();
    all["exclude"] = json!([]);
    let pulls = in_child(&identity, all).await.unwrap();
    assert_eq!(
        pulls["by_digest"],
        json!([["app", D1, at(now, 10)], ["app", D2, at(now, 2)]])
    );

    // A retention shorter than the window: the logs reach back 30 days, not 90.
    logs.set_retention(Duration::days(45));
    let pulls = in_child(&identity, spec.clone()).await.unwrap();
    assert_eq!(pulls["covered_since"], json!(at(now, 30)));
    assert_eq!(pulls["covers"], false);

    logs.inject(LogsFault::Partial {
        message: "a shard did not answer".into(),
    });
    let error = in_child(&identity, spec.clone()).await.unwrap_err();
    assert!(
        error.contains("partial answer") && error.contains("a shard did not answer"),
        "{error}"
    );
    logs.clear_faults();
    logs.inject(LogsFault::Fail { status: 503 });
    let error = in_child(&identity, spec.clone()).await.unwrap_err();
    assert!(error.contains("HTTP 503"), "{error}");
    logs.clear_faults();
    let mut wrong = spec.clone();
    wrong["workspace"] = json!("another-workspace");
    let error = in_child(&identity, wrong).await.unwrap_err();
    assert!(
        error.contains("HTTP 404") && error.contains("WorkspaceNotFoundError"),
        "{error}"
    );
}

/// Answers just past the cap on one answer, sent with and without `Content-Length`.
fn oversizes() -> [Oversize; 2] {
    let bytes = acr_purge::azure::MAX_ANSWER_BYTES + 1024;
    [
        Oversize {
            bytes,
            chunked: false,
        },
        Oversize {
            bytes,
            chunked: true,
        },
    ]
}

#[tokio::test]
async fn an_answer_over_the_size_cap_is_an_error_naming_its_size_and_source() {
    let identity = IdentityEndpoint::start().await;
    let graph = workloads();
    graph.set_page_size(3);
    let server = graph.start().await.unwrap();
    let spec = json!({"kind": "images", "endpoint": server.url, "login_server": LS,
                      "scopes": [["sub", "s1"], ["sub", "s2"]]});
    // Under the cap, padding changes nothing.
    graph.inject(GraphFault::Oversized(Oversize {
        bytes: 1024 * 1024,
        chunked: true,
    }));
    let images = in_child(&identity, spec.clone()).await.unwrap();
    assert_eq!(sorted(images), expected_images());
    for oversize in oversizes() {
        graph.clear_faults();
        graph.inject(GraphFault::Oversized(oversize));
        let error = in_child(&identity, spec.clone()).await.unwrap_err();
        let size = match oversize.chunked {
            true => "over 16777216 bytes".to_string(),
            false => format!("{} bytes (Content-Length)", oversize.bytes),
        };
        assert!(
            error.contains("in-use lookup, page 1")
                && error.contains(&size)
                && error.contains("16 MiB"),
            "{error}"
        );
    }

    let logs = LogAnalyticsEmulator::new("11111111-2222-3333-4444-555555555555");
    logs.set_expected_token(Some(ENTRA_TOKEN));
    let now = Utc::now();
    logs.add(pull(now, 3, "app", Some("v1"), Some(D1), "ci"));
    let logs_server = logs.start().await.unwrap();
    let spec = json!({"kind": "pulls", "endpoint": logs_server.url, "workspace": "11111111-2222-3333-4444-555555555555",
                      "login_server": LS, "now": now.to_rfc3339(), "window_days": 30, "exclude": []});
    assert!(in_child(&identity, spec.clone()).await.is_ok());
    for oversize in oversizes() {
        logs.clear_faults();
        logs.inject(LogsFault::Oversized(oversize));
        let error = in_child(&identity, spec.clone()).await.unwrap_err();
        assert!(
            error.contains("pull log query of workspace 11111111-2222-3333-4444-555555555555")
                && error.contains("more than the 16 MiB read of one answer"),
            "{error}"
        );
    }
}
