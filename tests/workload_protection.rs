//! In-use protection and age by last pull through the `handler` binary: the ACR emulator,
//! the Resource Graph and Log Analytics emulators, and the real azure_identity managed
//! identity credential signing in at a local identity endpoint.

use crate::support::identity::{ENTRA_TOKEN, IdentityEndpoint};
use crate::support::purge::{Registry, handler_with_env, set, tagged};
use acr_emulator::{
    GraphFault, GraphResource, LogAnalyticsEmulator, ManifestSeed, RepoSeed, RepositoryEvent,
    ResourceGraphEmulator, RunningServer, Seed,
};
use chrono::{Duration, Utc};
use serde_json::json;

const WORKSPACE: &str = "11111111-2222-3333-4444-555555555555";

fn seed() -> Seed {
    Seed::new().repo(
        RepoSeed::new("app")
            .manifest(tagged("running", "v1", "40d"))
            .manifest(tagged("pinned", "v0", "50d"))
            .manifest(tagged("pulled", "p1", "40d"))
            .manifest(tagged("stale", "old", "40d"))
            .manifest(ManifestSeed::image("untagged").age("45d")),
    )
}

/// Azure around the registry: a Container App running `app:v1`, a container group running
/// `pinned` by digest, pulls of `p1` a week ago, and logs reaching back 60 days.
struct Azure {
    identity: IdentityEndpoint,
    graph: ResourceGraphEmulator,
    graph_server: RunningServer,
    logs: LogAnalyticsEmulator,
    logs_server: RunningServer,
}

async fn azure(registry: &Registry) -> Azure {
    let host = registry.running.host();
    let identity = IdentityEndpoint::start().await;
    let graph = ResourceGraphEmulator::new();
    graph.set_expected_token(Some(ENTRA_TOKEN));
    graph.add(GraphResource::new(
        "sub-1",
        "rg",
        "Microsoft.App/containerApps",
        "web",
        json!({"template": {"containers": [{"name": "web", "image": format!("{host}/app:v1")}]}}),
    ));
    graph.add(GraphResource::new(
        "sub-1",
        "rg",
        "Microsoft.ContainerInstance/containerGroups",
        "batch",
        json!({"containers": [{"name": "batch", "properties": {"image": format!("{host}/app@{}", registry.digest("app", "pinned"))}}]}),
    ));
    // Another registry's image of the same name protects nothing here.
    graph.add(GraphResource::new(
        "sub-1",
        "rg",
        "Microsoft.App/containerApps",
        "elsewhere",
        json!({"template": {"containers": [{"name": "x", "image": "other.azurecr.io/app:old"}]}}),
    ));
    let graph_server = graph.start().await.expect("graph");
    let logs = LogAnalyticsEmulator::new(WORKSPACE);
    logs.set_expected_token(Some(ENTRA_TOKEN));
    logs.set_retention(Duration::days(90));
    let now = Utc::now();
    logs.add(RepositoryEvent::pull(
        now - Duration::days(7),
        &host,
        "app",
        Some("p1"),
        None,
        "team",
    ));
    // The oldest event, well inside the 60 days the coverage query looks back for a 30-day
    // window (exactly 60 days ago, it fell out of that lookback when the query ran even a
    // second later, and every item was then kept as pullsUnknown).
    logs.add(
        RepositoryEvent::pull(
            now - Duration::days(59),
            &host,
            "app",
            Some("old"),
            None,
            "ci",
        )
        .with_operation("Push"),
    );
    // A scanner pulls everything daily: excluded, it keeps nothing.
    for tag in ["old", "v0"] {
        logs.add(RepositoryEvent::pull(
            now - Duration::days(1),
            &host,
            "app",
            Some(tag),
            None,
            "scanner",
        ));
    }
    let logs_server = logs.start().await.expect("logs");
    Azure {
        identity,
        graph,
        graph_server,
        logs,
        logs_server,
    }
}

impl Azure {
    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.identity.env();
        env.push(("PURGE_ARM_ENDPOINT", self.graph_server.url.clone()));
        env.push(("PURGE_LOGS_ENDPOINT", self.logs_server.url.clone()));
        env.push(("PURGE_LOGS_WORKSPACE_ID", WORKSPACE.to_string()));
        env
    }
}

async fn purge(registry: &Registry, azure: &Azure, args: &[&str]) -> crate::support::purge::Run {
    let mut all = vec!["purge", "-r", registry.running.url.as_str()];
    all.extend_from_slice(args);
    let state = registry.state.path().to_string_lossy().into_owned();
    let mut env = azure.env();
    env.push(("PURGE_STATE_DIR", state));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    handler_with_env(&all, &env).await
}

const POLICY: &[&str] = &[
    "--filter",
    "app:.*",
    "--ago",
    "30d",
    "--untagged",
    "--output",
    "json",
];

/// Age by last pull alone: `--ago 0d --not-pulled-for 30d`.
const BY_PULL: &[&str] = &[
    "--filter",
    "app:.*",
    "--ago",
    "0d",
    "--not-pulled-for",
    "30d",
    "--output",
    "json",
];

fn reasons(report: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    report["repositories"][0]["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["decision"] == "keep")
        .map(|m| {
            (
                m["digest"].as_str().unwrap_or_default().to_string(),
                m["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn what_a_workload_runs_is_never_deleted_even_after_its_tag_moved() {
    let registry = Registry::start(seed()).await;
    let azure = azure(&registry).await;
    // Since the container group was deployed by digest, its tag moved on.
    registry
        .emulator()
        .push_tag("app", "v0", &registry.digest("app", "running"))
        .expect("move");
    let mut args = POLICY.to_vec();
    args.extend(["--protect-in-use", "/subscriptions/sub-1"]);
    let run = purge(&registry, &azure, &args).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        registry.has("app", "running"),
        "a Container App runs app:v1"
    );
    assert!(
        registry.has("app", "pinned"),
        "a container group runs it by digest"
    );
    assert!(!registry.has("app", "stale") && !registry.has("app", "pulled"));
    assert!(!registry.has("app", "untagged"));
    assert!(
        registry.tags("app").contains("v1"),
        "the tag a workload runs stays"
    );
    let report = run.json();
    let kept = reasons(&report);
    assert_eq!(
        kept.get(&registry.digest("app", "pinned"))
            .map(String::as_str),
        Some("inUse")
    );
    assert_eq!(
        kept.get(&registry.digest("app", "running"))
            .map(String::as_str),
        Some("inUse")
    );
    let text = report.to_string();
    assert!(
        text.contains("/containerGroups/batch"),
        "the reason names the workload"
    );
    // Signed in for Resource Graph's own audience.
    let audiences: Vec<String> = azure
        .identity
        .requests()
        .iter()
        .filter_map(|q| q.get("resource").cloned())
        .collect();
    // The audience follows PURGE_ARM_ENDPOINT (scheme and host): not management.azure.com.
    assert!(
        audiences.iter().any(|a| a.starts_with("http://127.0.0.1")),
        "{audiences:?}"
    );
    assert!(
        !audiences.iter().any(|a| a.contains("management.azure.com")),
        "{audiences:?}"
    );
}

#[tokio::test]
async fn a_partial_resource_graph_answer_deletes_nothing() {
    let registry = Registry::start(seed()).await;
    let azure = azure(&registry).await;
    azure.graph.inject(GraphFault::Truncate);
    let mut args = POLICY.to_vec();
    args.extend(["--protect-in-use", "sub-1"]);
    let run = purge(&registry, &azure, &args).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("in-use protection could not read"),
        "{}",
        run.stderr
    );
    assert!(registry.mutations().is_empty(), "nothing was deleted");
    assert_eq!(registry.tags("app"), set(&["old", "p1", "v0", "v1"]));
}

#[tokio::test]
async fn a_page_over_the_payload_limit_is_asked_again_smaller() {
    let registry = Registry::start(seed()).await;
    let azure = azure(&registry).await;
    // Three workloads; a page may hold one row.
    azure.graph.inject(GraphFault::PayloadCap { rows: 1 });
    let mut args = POLICY.to_vec();
    args.extend(["--protect-in-use", "sub-1"]);
    let run = purge(&registry, &azure, &args).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(registry.has("app", "running") && registry.has("app", "pinned"));
    assert!(!registry.has("app", "stale"));
    let requests = azure.graph.requests();
    let tops: Vec<u64> = requests
        .iter()
        .filter(|r| r.body["query"] == acr_purge::azure::in_use::IN_USE_QUERY)
        .map(|r| r.body["options"]["$top"].as_u64().unwrap_or(0))
        .collect();
    assert!(
        requests.iter().any(|r| r.status == 400),
        "the cap was hit: {requests:#?}"
    );
    assert_eq!(tops.last(), Some(&1), "halved down to one row: {tops:?}");
}

#[tokio::test]
async fn a_spent_user_quota_is_waited_out_not_run_into() {
    let registry = Registry::start(seed()).await;
    let azure = azure(&registry).await;
    // Two queries per 2-second window, pages of one row: the scope check and three pages of
    // workloads take two windows. Sent at once, the third query would draw a 429.
    azure
        .graph
        .set_user_quota(2, std::time::Duration::from_secs(2));
    azure.graph.set_page_size(1);
    let mut args = POLICY.to_vec();
    args.extend(["--protect-in-use", "sub-1"]);
    let started = std::time::Instant::now();
    let run = purge(&registry, &azure, &args).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(registry.has("app", "running") && registry.has("app", "pinned"));
    assert!(!registry.has("app", "stale"));
    let statuses: Vec<u16> = azure.graph.requests().iter().map(|r| r.status).collect();
    assert!(statuses.len() >= 4, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200),
        "the handler waited for the quota's reset instead of drawing a 429: {statuses:?}"
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "the next window was waited for"
    );
}

#[tokio::test]
async fn a_subscription_the_identity_cannot_read_stops_the_run_naming_it() {
    let registry = Registry::start(seed()).await;
    let azure = azure(&registry).await;
    // sub-2 runs app:old, but the identity has no Reader there: Resource Graph would answer
    // sub-1's workloads alone, with a 200.
    let host = registry.running.host();
    azure.graph.add(GraphResource::new(
        "sub-2",
        "rg",
        "Microsoft.App/containerApps",
        "hidden",
        json!({"template": {"containers": [{"name": "h", "image": format!("{host}/app:old")}]}}),
    ));
    azure.graph.set_unreadable(&["sub-2"]);
    let mut args = POLICY.to_vec();
    args.extend([
        "--protect-in-use",
        "/subscriptions/sub-1",
        "--protect-in-use",
        "/subscriptions/sub-2",
    ]);
    let run = purge(&registry, &azure, &args).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("in-use protection could not read")
            && run.stderr.contains("cannot read subscription sub-2"),
        "{}",
        run.stderr
    );
    assert!(registry.mutations().is_empty(), "nothing was deleted");
    assert_eq!(registry.tags("app"), set(&["old", "p1", "v0", "v1"]));

    // Once readable, its workload keeps app:old.
    azure.graph.set_unreadable(&[]);
    let run = purge(&registry, &azure, &args).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(registry.has("app", "stale") && registry.tags("app").contains("old"));
    assert!(!registry.has("app", "pulled"));
}

#[tokio::test]
async fn a_resource_graph_answer_over_the_size_cap_deletes_nothing() {
    let registry = Registry::start(seed()).await;
    let azure = azure(&registry).await;
    azure
        .graph
        .inject(GraphFault::Oversized(acr_emulator::Oversize {
            bytes: acr_purge::azure::MAX_ANSWER_BYTES + 1,
            chunked: true,
        }));
    let mut args = POLICY.to_vec();
    args.extend(["--protect-in-use", "sub-1"]);
    let run = purge(&registry, &azure, &args).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("in-use protection could not read") && run.stderr.contains("16 MiB"),
        "{}",
        run.stderr
    );
    assert!(registry.mutations().is_empty(), "nothing was deleted");
    assert_eq!(registry.tags("app"), set(&["old", "p1", "v0", "v1"]));
}

#[tokio::test]
async fn a_pull_younger_than_the_window_keeps_the_image_and_scanners_do_not_count() {
    let registry = Registry::start(seed()).await;
    let azure = azure(&registry).await;
    let mut args = BY_PULL.to_vec();
    args.extend(["--exclude-puller", "scanner"]);
    let run = purge(&registry, &azure, &args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    // p1 was pulled a week ago; old and v0 only by the scanner; v1 never.
    assert_eq!(registry.tags("app"), set(&["p1"]), "{}", run.stdout);
    let report = run.json();
    let tag = report["repositories"][0]["tags"]
        .as_array()
        .and_then(|tags| tags.iter().find(|t| t["name"] == "p1"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(tag["reason"], "recentlyPulled", "{tag}");
    let query = azure.logs.requests();
    assert!(
        query.iter().any(|q| format!("{q:?}").contains("scanner")),
        "{query:?}"
    );
}

#[tokio::test]
async fn a_window_longer_than_the_logs_keeps_everything() {
    let registry = Registry::start(seed()).await;
    let azure = azure(&registry).await;
    azure.logs.set_retention(Duration::days(20));
    let run = purge(&registry, &azure, BY_PULL).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        registry.mutations().is_empty(),
        "every item counts as pulled"
    );
    assert!(run.stdout.contains("pullsUnknown"), "{}", run.stdout);
}

#[tokio::test]
async fn the_demo_keeps_what_a_container_app_and_aks_pods_run_and_one_pulled_last_week() {
    let run = crate::support::purge::handler(&["demo"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let line = |needle: &str| {
        run.stdout
            .lines()
            .find(|l| l.contains(needle))
            .map(str::to_string)
    };
    let in_use = line("tag       1.1.0").unwrap_or_default();
    assert!(
        in_use.contains("in use by") && in_use.contains("containerApps/storefront"),
        "{in_use}"
    );
    let pulled = line("tag       build-1202").unwrap_or_default();
    assert!(pulled.contains("within notPulledFor"), "{pulled}");
    // Defender's findings: the superseded 1.0.0 (Critical + High) is deleted, its two
    // findings counted; the running 1.1.0 keeps its High one.
    let findings = line("Defender findings cleared:").unwrap_or_default();
    assert!(
        findings.contains("cleared: 2 (1 Critical, 1 High) on 1 images")
            && findings.contains("images with findings kept: 1 (1 inUse)")
            && findings.contains("within about an hour"),
        "{findings}"
    );
    // The AKS cluster's pods: one by a tag the policy would delete, one whose tag moved
    // since its pull (the untagged 70-day-old manifest it still runs, named by its imageID).
    let pod = line("tag       build-1201").unwrap_or_default();
    assert!(
        pod.starts_with("  PROTECT")
            && pod.contains("in use by")
            && pod.contains("managedClusters/shop-aks"),
        "{pod}"
    );
    let moved: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.contains("manifest") && l.contains("(untagged)"))
        .filter(|l| l.contains("managedClusters/shop-aks"))
        .collect();
    assert_eq!(moved.len(), 1, "{}", run.stdout);
    assert!(
        moved.iter().all(|l| l.starts_with("  PROTECT")),
        "{moved:?}"
    );
    assert!(
        run.stdout.contains("Same plan as the dry run: yes"),
        "{}",
        run.stdout
    );
}

/// The app's policy for the webhook tests: `POLICY` with in-use protection.
/// Takes away most of a repository's tagged images, which the scheduled default
/// `maxDeletions` (50%) refuses: this suite is not about that guard (see `retention`), so
/// the policy lifts it (`null`).
const APP_POLICY: &str = r#"{"rules":[{"filter":["app:.*"],"ago":"30d","untagged":true}],"protectInUse":["/subscriptions/sub-1"],"maxDeletions":null,"maxRunDeletions":null}"#;
const SECRET: &str = "s3cret-webhook";

async fn webhook(
    handler: &crate::support::host::Handler,
    body: &str,
) -> crate::support::host::Answer {
    let signature = acr_purge::functions::webhook::sign(SECRET, body.as_bytes());
    handler
        .request(
            "POST",
            "/api/purge",
            &[("X-Hub-Signature-256", signature.as_str())],
            body.as_bytes().to_vec(),
        )
        .await
}

#[tokio::test]
async fn a_webhook_apply_reads_what_runs_now_keeps_it_and_fails_closed() {
    let registry = Registry::start(seed()).await;
    let azure = azure(&registry).await;
    let mut settings = azure.env();
    settings.extend([
        ("PURGE_REGISTRY", registry.running.url.clone()),
        ("PURGE_POLICY", APP_POLICY.to_string()),
        ("WEBHOOK_SECRET", SECRET.to_string()),
    ]);
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let handler = crate::support::host::Handler::start(&settings).await;
    let answer = webhook(&handler, r#"{"dryRun":true}"#).await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    let digest = answer.json["planDigest"].as_str().expect("planDigest");
    let apply = format!(r#"{{"apply":"{digest}"}}"#);

    // Resource Graph cannot be read: the apply deletes nothing.
    azure.graph.inject(GraphFault::Truncate);
    let before = azure.graph.requests().len();
    let answer = webhook(&handler, &apply).await;
    assert_eq!(answer.status, 500, "{:#}", answer.json);
    assert!(
        answer
            .json
            .to_string()
            .contains("in-use protection could not read"),
        "{:#}",
        answer.json
    );
    assert!(azure.graph.requests().len() > before, "the apply asked");
    assert!(registry.mutations().is_empty(), "nothing was deleted");

    // Since the review, a Container App started running app:old, which the plan deletes.
    azure.graph.clear_faults();
    let host = registry.running.host();
    azure.graph.add(GraphResource::new(
        "sub-1",
        "rg",
        "Microsoft.App/containerApps",
        "rollback",
        json!({"template": {"containers": [{"name": "r", "image": format!("{host}/app:old")}]}}),
    ));
    let before = azure.graph.requests().len();
    let answer = webhook(&handler, &apply).await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    assert!(
        azure.graph.requests().len() > before,
        "the apply asked again"
    );
    assert!(registry.has("app", "stale"), "what runs now is kept");
    assert!(registry.tags("app").contains("old"));
    assert!(registry.has("app", "running") && registry.has("app", "pinned"));
    assert!(!registry.has("app", "pulled") && !registry.has("app", "untagged"));
}

#[tokio::test]
async fn handler_apply_reads_what_runs_now_keeps_it_and_fails_closed() {
    let registry = Registry::start(seed()).await;
    let azure = azure(&registry).await;
    let dir = tempfile::tempdir().expect("dir");
    let plan = dir.path().join("plan.json").to_string_lossy().into_owned();
    let mut args = POLICY.to_vec();
    args.extend([
        "--protect-in-use",
        "sub-1",
        "--dry-run",
        "--plan-out",
        &plan,
    ]);
    let run = purge(&registry, &azure, &args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let apply = || async {
        let url = registry.running.url.clone();
        let state = registry.state.path().to_string_lossy().into_owned();
        let mut env = azure.env();
        env.push(("PURGE_STATE_DIR", state));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        handler_with_env(&["apply", plan.as_str(), "-r", url.as_str()], &env).await
    };

    azure.graph.inject(GraphFault::Truncate);
    let before = azure.graph.requests().len();
    let run = apply().await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("in-use protection could not read"),
        "{}",
        run.stderr
    );
    assert!(azure.graph.requests().len() > before, "the apply asked");
    assert!(registry.mutations().is_empty(), "nothing was deleted");

    azure.graph.clear_faults();
    let host = registry.running.host();
    azure.graph.add(GraphResource::new(
        "sub-1",
        "rg",
        "Microsoft.App/containerApps",
        "rollback",
        json!({"template": {"containers": [{"name": "r", "image": format!("{host}/app:old")}]}}),
    ));
    let before = azure.graph.requests().len();
    let run = apply().await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        azure.graph.requests().len() > before,
        "the apply asked again"
    );
    assert!(registry.has("app", "stale"), "what runs now is kept");
    assert!(registry.has("app", "running") && registry.has("app", "pinned"));
    assert!(!registry.has("app", "pulled") && !registry.has("app", "untagged"));
}

/// What only the resource providers hold: App Service sidecars, a Compose app, older
/// Container Apps revisions still active, and a job execution running an overridden image.
fn provider_seed() -> Seed {
    // `azure()` has workloads running `running` and `pinned`.
    let mut repo = RepoSeed::new("app")
        .manifest(tagged("running", "v1", "40d"))
        .manifest(tagged("pinned", "v0", "50d"));
    for name in ["main", "side", "compose", "rev1", "exec", "gone", "stopped"] {
        repo = repo.manifest(tagged(name, name, "40d"));
    }
    Seed::new().repo(repo)
}

fn provider_estate(registry: &Registry, azure: &Azure) {
    use base64::Engine;
    let host = registry.running.host();
    let image = |tag: &str| format!("{host}/app:{tag}");
    let arm = azure.graph.arm();
    // A sidecar app: Resource Graph holds `sitecontainers`, siteConfig null.
    let site = GraphResource::new(
        "sub-1",
        "rg",
        "Microsoft.Web/sites",
        "sidecars",
        json!({"siteConfig": null, "siteProperties": {"metadata": null, "properties": [
            {"name": "LinuxFxVersion", "value": "sitecontainers"},
            {"name": "WindowsFxVersion", "value": null}
        ]}}),
    );
    let site_id = site.id.clone();
    azure.graph.add(site);
    arm.add_child(
        &site_id,
        "sitecontainers",
        "Microsoft.Web/sites",
        json!({"name": "main", "properties": {"image": image("main"), "targetPort": "80", "isMain": true}}),
    );
    // Its staging slot runs a sidecar of its own.
    let mut slot = GraphResource::new(
        "sub-1",
        "rg",
        "Microsoft.Web/sites/slots",
        "sidecars/staging",
        json!({"siteConfig": null, "siteProperties": {"properties": [{"name": "LinuxFxVersion", "value": "SITECONTAINERS"}]}}),
    );
    slot.id = format!("{site_id}/slots/staging");
    let slot_id = slot.id.clone();
    azure.graph.add(slot);
    arm.add_child(
        &slot_id,
        "sitecontainers",
        "Microsoft.Web/sites",
        json!({"name": "otel", "properties": {"image": image("side"), "isMain": false}}),
    );
    // A Compose app: the value is a base64 Compose file.
    let compose = format!(
        "version: '3'\nservices:\n  web:\n    image: \"{}\"\n  cache:\n    image: redis:7\n",
        image("compose")
    );
    azure.graph.add(GraphResource::new(
        "sub-1",
        "rg",
        "Microsoft.Web/sites",
        "composed",
        json!({"siteConfig": null, "siteProperties": {"properties": [
            {"name": "LinuxFxVersion", "value": format!("COMPOSE|{}", base64::engine::general_purpose::STANDARD.encode(compose))}
        ]}}),
    ));
    // A Container App in multiple-revision mode: revision 1 still takes traffic.
    let app = GraphResource::new(
        "sub-1",
        "rg",
        "Microsoft.App/containerApps",
        "multi",
        json!({"latestRevisionName": "multi--2", "latestReadyRevisionName": "multi--2",
               "configuration": {"activeRevisionsMode": "Multiple", "ingress": {"traffic": [
                   {"revisionName": "multi--1", "weight": 20}, {"latestRevision": true, "weight": 80}]}},
               "template": {"containers": [{"name": "m", "image": image("main")}]}}),
    );
    let app_id = app.id.clone();
    azure.graph.add(app);
    for (name, active, tag) in [
        ("multi--0", false, "gone"),
        ("multi--1", true, "rev1"),
        ("multi--2", true, "main"),
    ] {
        arm.add_child(
            &app_id,
            "revisions",
            "Microsoft.App/containerApps",
            json!({"name": name, "properties": {"active": active, "trafficWeight": if active { 50 } else { 0 },
                   "template": {"containers": [{"name": "m", "image": image(tag)}]}}}),
        );
    }
    // A job whose running execution overrides its image; a finished one does not count.
    let job = GraphResource::new(
        "sub-1",
        "rg",
        "Microsoft.App/jobs",
        "nightly",
        json!({"template": {"containers": [{"name": "j", "image": image("main")}]}}),
    );
    let job_id = job.id.clone();
    azure.graph.add(job);
    for (name, status, tag) in [
        ("nightly-a1", "Running", "exec"),
        ("nightly-a0", "Succeeded", "stopped"),
    ] {
        arm.add_child(
            &job_id,
            "executions",
            "Microsoft.App/jobs",
            json!({"name": name, "properties": {"status": status,
                   "template": {"containers": [{"name": "j", "image": image(tag)}]}}}),
        );
    }
}

#[tokio::test]
async fn sidecars_compose_older_revisions_and_running_executions_keep_their_images() {
    let registry = Registry::start(provider_seed()).await;
    let azure = azure(&registry).await;
    provider_estate(&registry, &azure);
    azure.graph.arm().set_page_size(1);
    let mut args = POLICY.to_vec();
    args.extend(["--protect-in-use", "sub-1"]);
    let run = purge(&registry, &azure, &args).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for kept in ["main", "side", "compose", "rev1", "exec"] {
        assert!(registry.has("app", kept), "{kept} runs");
    }
    assert!(
        !registry.has("app", "gone"),
        "an inactive revision keeps nothing"
    );
    assert!(
        !registry.has("app", "stopped"),
        "a finished execution keeps nothing"
    );
    let text = run.json().to_string();
    assert!(text.contains("/sites/sidecars/slots/staging"), "{text}");
    assert!(text.contains("/containerApps/multi"), "{text}");
    // Read through ARM, signed in, every page of it.
    let reads = azure.graph.arm().requests();
    for child in [
        "sidecars/sitecontainers",
        "staging/sitecontainers",
        "multi/revisions",
        "nightly/executions",
    ] {
        assert!(
            reads
                .iter()
                .any(|r| r.path.ends_with(child) && r.status == 200),
            "{child}: {reads:#?}"
        );
    }
    assert!(reads.iter().all(|r| r.authorization.as_deref()
        == Some(format!("Bearer {}", crate::support::identity::ENTRA_TOKEN).as_str())));
    assert!(
        reads
            .iter()
            .filter(|r| r.path.ends_with("multi/revisions"))
            .count()
            >= 3,
        "one page per revision: {reads:#?}"
    );
}

#[tokio::test]
async fn a_resource_provider_list_that_cannot_be_read_deletes_nothing() {
    let registry = Registry::start(provider_seed()).await;
    let azure = azure(&registry).await;
    provider_estate(&registry, &azure);
    let site = "/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.Web/sites/sidecars/sitecontainers";
    azure.graph.arm().fail(site, 403);
    let mut args = POLICY.to_vec();
    args.extend(["--protect-in-use", "sub-1"]);
    let run = purge(&registry, &azure, &args).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("in-use protection could not read")
            && run.stderr.contains("sites/sidecars")
            && run.stderr.contains("HTTP 403"),
        "{}",
        run.stderr
    );
    assert!(registry.mutations().is_empty(), "nothing was deleted");
}

#[tokio::test]
async fn a_just_pushed_image_survives_within_the_in_use_grace() {
    // No workload runs `fresh` yet: its deployment may be under way, and Resource Graph
    // shows it only later. With --ago 0d nothing but the grace keeps it.
    let seed = Seed::new().repo(
        RepoSeed::new("app")
            .manifest(tagged("running", "v1", "40d"))
            .manifest(tagged("pinned", "v0", "50d"))
            .manifest(tagged("stale", "old", "40d"))
            .manifest(tagged("fresh", "new", "2h"))
            .manifest(ManifestSeed::image("fresh-untagged").age("3h")),
    );
    let registry = Registry::start(seed).await;
    let azure = azure(&registry).await;
    let policy = |grace: Option<&'static str>| {
        let mut args = vec![
            "--filter",
            "app:.*",
            "--ago",
            "0d",
            "--untagged",
            "--output",
            "json",
            "--protect-in-use",
            "sub-1",
            "--dry-run",
        ];
        if let Some(grace) = grace {
            args.extend(["--in-use-grace", grace]);
        }
        args
    };
    let run = purge(&registry, &azure, &policy(None)).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    let kept = reasons(&report);
    for alias in ["fresh", "fresh-untagged"] {
        assert_eq!(
            kept.get(&registry.digest("app", alias)).map(String::as_str),
            Some("inUseGrace"),
            "{alias} is within the default 48h grace"
        );
    }
    let tag_new = report["repositories"][0]["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["name"] == "new")
        .cloned()
        .unwrap_or_default();
    assert_eq!(tag_new["reason"], "inUseGrace", "{tag_new}");
    assert!(tag_new["cutoff"].is_string(), "{tag_new}");
    assert_eq!(
        kept.get(&registry.digest("app", "stale")),
        None,
        "older items are not kept by the grace"
    );
    // A grace of an hour is shorter than their age: the grace alone kept them.
    let run = purge(&registry, &azure, &policy(Some("1h"))).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let kept = reasons(&run.json());
    assert_eq!(kept.get(&registry.digest("app", "fresh")), None);
    assert_eq!(kept.get(&registry.digest("app", "fresh-untagged")), None);
    // For real, with the default grace: they survive, the stale image does not.
    let mut args = policy(None);
    args.retain(|a| *a != "--dry-run");
    let run = purge(&registry, &azure, &args).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(registry.has("app", "fresh") && registry.has("app", "fresh-untagged"));
    assert!(registry.tags("app").contains("new"));
    assert!(!registry.has("app", "stale"));
    // Without in-use protection the grace is refused, naming the flag.
    let run = purge(
        &registry,
        &azure,
        &["--filter", "app:.*", "--ago", "0d", "--in-use-grace", "1h"],
    )
    .await;
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("--in-use-grace"), "{}", run.stderr);
}
