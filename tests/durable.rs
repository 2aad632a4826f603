//! Durable runs: a run that stops at its deadline or is killed resumes to the state one
//! uninterrupted run reaches, its audit log says once what it deleted, two processes never
//! purge one registry at once, and a run never purges without its store — against the ACR
//! emulator, a run directory, and Azurite (the real `azure_storage_blob` client).

use crate::support::azurite::Azurite;
use crate::support::host::Handler;
use crate::support::identity::IdentityEndpoint;
use crate::support::process::HandlerCommand;
use crate::support::purge::{Registry, handler_with_env, tagged};
use acr_emulator::{Fault, ManifestSeed, RepoSeed, Seed, TagSeed};
use acr_purge::functions::webhook::sign;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

const REPOS: usize = 6;
const ARGS: &[&str] = &[
    "--filter",
    "team/.*:^v",
    "--ago",
    "7d",
    "--keep",
    "2",
    "--untagged",
    "--concurrency",
    "2",
];
/// Takes away most of a repository's tagged images, which the scheduled default
/// `maxDeletions` (50%) refuses: this suite is not about that guard (see `retention`), so
/// the policy lifts it (`null`).
const POLICY: &str = r#"{"rules":[{"filter":"team/.*:^v","ago":"7d","keep":2,"untagged":true}],"maxDeletions":null,"maxRunDeletions":null}"#;
const SECRET: &str = "s3cret-webhook";

/// Six repositories that each need a dozen deletions: old `v` tags, the two newest kept,
/// a fresh tag, a locked one, a tag outside the filter and two dangling manifests.
fn seed() -> Seed {
    let mut seed = Seed::new();
    for r in 0..REPOS {
        let mut repo = RepoSeed::new(&format!("team/app{r}"));
        for v in 0..8 {
            repo = repo.manifest(tagged(
                &format!("old{v}"),
                &format!("v{v}"),
                &format!("{}d", 20 - v),
            ));
        }
        repo = repo
            .manifest(tagged("fresh", "v100", "1h"))
            .manifest(
                ManifestSeed::image("locked")
                    .age("40d")
                    .tag(TagSeed::new("v-locked").age("40d").locked())
                    .locked(),
            )
            .manifest(tagged("prod", "prod", "90d"))
            .manifest(ManifestSeed::image("dangling1").age("30d"))
            .manifest(ManifestSeed::image("dangling2").age("31d"));
        seed = seed.repo(repo);
    }
    seed
}

/// Every (repository, alias) of the seed.
fn aliases() -> Vec<(String, String)> {
    let mut all = Vec::new();
    for r in 0..REPOS {
        let repo = format!("team/app{r}");
        let names = (0..8).map(|v| format!("old{v}"));
        let names =
            names.chain(["fresh", "locked", "prod", "dangling1", "dangling2"].map(String::from));
        all.extend(names.map(|a| (repo.clone(), a)));
    }
    all
}

/// What a registry holds: tags and surviving manifests (by alias) per repository.
#[derive(Debug, PartialEq, Eq)]
struct State {
    tags: BTreeMap<String, BTreeSet<String>>,
    manifests: BTreeSet<(String, String)>,
}

fn state(registry: &Registry) -> State {
    let tags = (0..REPOS)
        .map(|r| format!("team/app{r}"))
        .map(|repo| (repo.clone(), registry.tags(&repo)))
        .collect();
    let manifests = aliases()
        .into_iter()
        .filter(|(repo, alias)| registry.has(repo, alias))
        .collect();
    State { tags, manifests }
}

/// The state one uninterrupted run reaches, on a registry of its own.
async fn reference() -> State {
    let registry = Registry::start(seed()).await;
    let run = registry.purge(ARGS).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let reached = state(&registry);
    assert_protected(&registry);
    // Per repository: v0..v5 go, and four manifests with them plus the two dangling ones
    // (`--keep 2` keeps v6 and v7 among the tags, old4 and old5 among the untagged).
    for r in 0..REPOS {
        let repo = format!("team/app{r}");
        assert_eq!(
            reached.tags[&repo],
            ["prod", "v-locked", "v100", "v6", "v7"]
                .map(String::from)
                .into(),
            "{repo}"
        );
    }
    assert_eq!(
        reached.manifests.len(),
        aliases().len() - 6 * REPOS,
        "{reached:?}"
    );
    reached
}

/// What no run may delete: the fresh, locked and unfiltered images, and the two kept.
fn assert_protected(registry: &Registry) {
    for r in 0..REPOS {
        let repo = format!("team/app{r}");
        for alias in ["fresh", "locked", "prod", "old7", "old6"] {
            assert!(registry.has(&repo, alias), "{repo} {alias} was deleted");
        }
        let tags = registry.tags(&repo);
        for tag in ["v100", "v-locked", "prod", "v7", "v6"] {
            assert!(tags.contains(tag), "{repo}:{tag} was deleted");
        }
    }
}

/// The audit lines of every run in a run directory.
fn audit(state_dir: &Path) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    let Ok(runs) = std::fs::read_dir(state_dir.join("runs")) else {
        return lines;
    };
    for run in runs.flatten() {
        let Ok(text) = std::fs::read_to_string(run.path().join("audit.jsonl")) else {
            continue;
        };
        lines.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()),
        );
    }
    lines
}

/// The deletions the audit log records, with how many final outcomes each has.
fn deletions(lines: &[serde_json::Value]) -> BTreeMap<(String, String), usize> {
    let mut counted = BTreeMap::new();
    for line in lines {
        let outcome = line["outcome"].as_str().unwrap_or_default();
        assert!(
            ["deleted", "alreadyGone"].contains(&outcome),
            "an attempt that is not a deletion, in a run without faults: {line}"
        );
        let repo = line["repository"].as_str().unwrap_or_default().to_string();
        let key = match line["tag"].as_str() {
            Some(tag) => format!("tag:{tag}"),
            None => format!("manifest:{}", line["digest"].as_str().unwrap_or_default()),
        };
        *counted.entry((repo, key)).or_insert(0) += 1;
    }
    counted
}

/// What the audit log must list: every tag and manifest gone since the seed.
fn expected_deletions(registry: &Registry, end: &State) -> BTreeSet<(String, String)> {
    let mut gone = BTreeSet::new();
    for r in 0..REPOS {
        let repo = format!("team/app{r}");
        let before: BTreeSet<String> = (0..8)
            .map(|v| format!("v{v}"))
            .chain(["v100", "v-locked", "prod"].map(String::from))
            .collect();
        for tag in before.difference(&end.tags[&repo]) {
            gone.insert((repo.clone(), format!("tag:{tag}")));
        }
    }
    for (repo, alias) in aliases() {
        if !end.manifests.contains(&(repo.clone(), alias.clone())) {
            gone.insert((
                repo.clone(),
                format!("manifest:{}", registry.digest(&repo, &alias)),
            ));
        }
    }
    gone
}

fn assert_exactly_once(registry: &Registry, end: &State) {
    let counted = deletions(&audit(registry.state.path()));
    let twice: Vec<_> = counted.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "recorded more than once: {twice:?}");
    let recorded: BTreeSet<_> = counted.into_keys().collect();
    assert_eq!(recorded, expected_deletions(registry, end));
}

#[tokio::test]
async fn a_run_past_its_deadline_resumes_to_the_uninterrupted_end_state() {
    let expected = reference().await;
    let registry = Registry::start(seed()).await;
    registry
        .emulator()
        .inject(Fault::delay(Duration::from_millis(80)).method("DELETE"));
    let mut args = ARGS.to_vec();
    args.extend(["--deadline", "2s"]);
    let mut invocations = 0;
    let mut listed_again = Vec::new();
    let mut completed_before: BTreeSet<String> = BTreeSet::new();
    loop {
        invocations += 1;
        assert!(invocations <= 20, "not finished after 20 invocations");
        registry.emulator().clear_requests();
        let run = registry.purge(&args).await;
        // Repositories the checkpoint called completed are never listed again.
        for repo in &completed_before {
            if registry.count(&format!("/acr/v1/{repo}/_tags")) > 0 {
                listed_again.push(repo.clone());
            }
        }
        if run.code == 0 {
            break;
        }
        assert_eq!(
            run.code, 3,
            "stdout:\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        );
        assert!(
            run.stderr
                .contains("stopped before its deadline (exit code 3)")
                && run
                    .stderr
                    .contains("run the same command again to resume it"),
            "{}",
            run.stderr
        );
        completed_before = checkpoint_completed(registry.state.path());
    }
    assert!(
        invocations >= 3,
        "the registry needs several invocations, took {invocations}"
    );
    assert!(
        listed_again.is_empty(),
        "listed again after completion: {listed_again:?}"
    );
    let end = state(&registry);
    assert_eq!(end, expected);
    assert_protected(&registry);
    assert_exactly_once(&registry, &end);
    let runs: Vec<_> = std::fs::read_dir(registry.state.path().join("runs"))
        .expect("runs")
        .flatten()
        .collect();
    assert_eq!(runs.len(), 1, "one run, resumed");
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(runs[0].path().join("record.json")).expect("record"),
    )
    .expect("record JSON");
    assert_eq!(record["status"], "succeeded", "{record:#}");
    assert_eq!(
        record["invocations"].as_array().map(Vec::len),
        Some(invocations)
    );
    // The checkpoint is gone with the run: the next command starts a new run.
    assert!(checkpoint_completed(registry.state.path()).is_empty());
    let again = registry.purge(&args).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(!again.stderr.contains("Resuming"), "{}", again.stderr);
}

/// `handler runs list` shows no run `running` (none is: every process has exited).
async fn assert_nothing_listed_running(state_dir: &str) {
    let listed = crate::support::purge::handler(&["runs", "list", "--state-dir", state_dir]).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    for row in listed.stdout.lines().skip(1) {
        assert_ne!(
            row.split_whitespace().nth(1),
            Some("running"),
            "{}",
            listed.stdout
        );
    }
}

/// Checks each run's record against its audit log (the truth of what was deleted): its
/// deletion counts are the log's, and no invocation is left `running`. Returns how many
/// invocations are recorded `interrupted`.
fn assert_records_match_audit(state_dir: &Path) -> usize {
    let mut interrupted = 0;
    for run in std::fs::read_dir(state_dir.join("runs"))
        .expect("runs")
        .flatten()
    {
        let Ok(text) = std::fs::read_to_string(run.path().join("record.json")) else {
            continue;
        };
        let record: serde_json::Value = serde_json::from_str(&text).expect("record JSON");
        let log = std::fs::read_to_string(run.path().join("audit.jsonl")).unwrap_or_default();
        let (mut tags, mut manifests) = (0, 0);
        for line in log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        {
            if ["deleted", "alreadyGone"].contains(&line["outcome"].as_str().unwrap_or_default()) {
                match line["kind"].as_str() {
                    Some("tag") => tags += 1,
                    _ => manifests += 1,
                }
            }
        }
        let summary = &record["summary"];
        assert_eq!(
            (
                summary["tagsDeleted"].as_u64(),
                summary["manifestsDeleted"].as_u64()
            ),
            (Some(tags), Some(manifests)),
            "the record counts what its audit log says: {record:#}"
        );
        for invocation in record["invocations"].as_array().into_iter().flatten() {
            assert_ne!(invocation["status"], "running", "{record:#}");
            interrupted += usize::from(invocation["status"] == "interrupted");
        }
    }
    interrupted
}

/// The repositories the registry's checkpoint lists as completed.
fn checkpoint_completed(state_dir: &Path) -> BTreeSet<String> {
    let Ok(registries) = std::fs::read_dir(state_dir.join("registries")) else {
        return BTreeSet::new();
    };
    let mut completed = BTreeSet::new();
    for registry in registries.flatten() {
        if let Ok(text) = std::fs::read_to_string(registry.path().join("checkpoint.json")) {
            let checkpoint: serde_json::Value = serde_json::from_str(&text).expect("checkpoint");
            completed.extend(
                checkpoint["completed"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.as_str().map(String::from)),
            );
        }
    }
    completed
}

#[tokio::test]
async fn killed_runs_resume_to_the_uninterrupted_end_state_and_audit_each_deletion_once() {
    let expected = reference().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0011);
    let mut kills = 0;
    let mut rounds = 0;
    let mut reconciled = 0;
    let mut interrupted = 0;
    while kills < 30 {
        rounds += 1;
        assert!(
            rounds <= 12,
            "30 kills not reached in 12 rounds ({kills} kills)"
        );
        let registry = Registry::start(seed()).await;
        registry
            .emulator()
            .inject(Fault::delay(Duration::from_millis(60)).method("DELETE"));
        let state_dir = registry.state.path().to_string_lossy().into_owned();
        let stderr_file = registry.state.path().join("stderr.txt");
        let mut attempts = 0;
        loop {
            attempts += 1;
            assert!(
                attempts <= 60,
                "round {rounds} not finished after 60 attempts"
            );
            let mut child = HandlerCommand::new()
                .args(["purge", "-r", registry.running.url.as_str()])
                .args(ARGS)
                .env("PURGE_STATE_DIR", &state_dir)
                .env_remove(&["PURGE_STATE_URL", "IDENTITY_ENDPOINT"])
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(&stderr_file).expect("stderr file"))
                .spawn();
            let after = Duration::from_millis(rng.random_range(150..900));
            match child.wait_timeout(after).await {
                Some(status) => {
                    assert_eq!(
                        status.code(),
                        Some(0),
                        "round {rounds}, attempt {attempts}: {}",
                        std::fs::read_to_string(&stderr_file).unwrap_or_default()
                    );
                    break;
                }
                None => {
                    // SIGKILL: no clean stop, no release, no last words.
                    child.kill().await;
                    kills += 1;
                    // Before it is resumed, the dead run is listed as not running.
                    if attempts == 1 {
                        assert_nothing_listed_running(&state_dir).await;
                    }
                }
            }
        }
        let lines = audit(registry.state.path());
        reconciled += lines.iter().filter(|l| l["reconciled"] == true).count();
        eprintln!(
            "round {rounds}: {attempts} invocations, {kills} kills so far, {reconciled} deletions reconciled so far"
        );
        let end = state(&registry);
        assert_eq!(end, expected, "round {rounds}");
        assert_protected(&registry);
        assert_exactly_once(&registry, &end);
        interrupted += assert_records_match_audit(registry.state.path());
    }
    assert!(
        interrupted > 0,
        "no killed invocation was recorded interrupted"
    );
    // Kills between a deletion and its audit line happened, and were reconciled.
    assert!(
        reconciled > 0,
        "no kill fell between a deletion and its record"
    );
}

/// A handler process as the Functions host starts it, its run store in Azurite.
async fn functions_handler(
    registry: &Registry,
    azurite: &Azurite,
    identity: &IdentityEndpoint,
    extra: &[(&str, &str)],
) -> Handler {
    let cert = azurite.cert_path();
    let mut settings = vec![
        ("PURGE_REGISTRY", registry.running.url.clone()),
        ("PURGE_POLICY", POLICY.to_string()),
        ("WEBHOOK_SECRET", SECRET.to_string()),
        (
            "AzureWebJobsStorage__blobServiceUri",
            azurite.blob_service.clone(),
        ),
        ("SSL_CERT_FILE", cert),
    ];
    settings.extend(identity.env());
    let mut settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    settings.extend_from_slice(extra);
    Handler::start(&settings).await
}

/// Two Functions instances sharing one Azurite store, on a registry whose DELETEs take
/// `delete_ms`.
async fn two_instances(
    delete_ms: u64,
    extra: &[(&str, &str)],
) -> (Azurite, IdentityEndpoint, Registry, Handler, Handler) {
    let azurite = Azurite::start().await;
    let identity = IdentityEndpoint::start().await;
    let registry = Registry::start(seed()).await;
    registry
        .emulator()
        .inject(Fault::delay(Duration::from_millis(delete_ms)).method("DELETE"));
    let a = functions_handler(&registry, &azurite, &identity, extra).await;
    let b = functions_handler(&registry, &azurite, &identity, extra).await;
    (azurite, identity, registry, a, b)
}

async fn webhook(handler: &Handler, body: &str) -> crate::support::host::Answer {
    let signature = sign(SECRET, body.as_bytes());
    handler
        .request(
            "POST",
            "/api/purge",
            &[
                ("X-Hub-Signature-256", signature.as_str()),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes().to_vec(),
        )
        .await
}

async fn status(handler: &Handler, url: &str) -> crate::support::host::Answer {
    let bearer = format!("Bearer {SECRET}");
    handler
        .request("GET", url, &[("Authorization", bearer.as_str())], vec![])
        .await
}

#[tokio::test]
async fn a_second_instance_answers_for_the_first_and_never_purges_alongside_it() {
    let (_azurite, _identity, registry, a, b) =
        two_instances(100, &[("PURGE_HTTP_DEADLINE_SECONDS", "1")]).await;

    let started = webhook(&a, "{}").await;
    assert_eq!(started.status, 202, "{:#}", started.json);
    let url = started.json["statusUrl"]
        .as_str()
        .expect("statusUrl")
        .to_string();

    // B knows A's run from the store, refuses a second purge and skips its timer.
    let seen = status(&b, &url).await;
    assert_eq!(seen.status, 200, "{:#}", seen.json);
    assert_eq!(seen.json["status"], "running", "{:#}", seen.json);
    let run_id = seen.json["runId"].as_str().expect("runId").to_string();
    let refused = webhook(&b, "{}").await;
    assert_eq!(refused.status, 409, "{:#}", refused.json);
    assert_eq!(refused.json["runId"], run_id.as_str());
    assert_eq!(refused.json["statusUrl"], format!("/api/purge/{run_id}"));
    let skipped = b.timer(false, false).await;
    assert_eq!(skipped.status, 200, "{:#}", skipped.json);
    assert!(
        skipped.json["Logs"]
            .to_string()
            .contains("PurgeTimer occurrence skipped"),
        "{:#}",
        skipped.json
    );
    assert_eq!(skipped.json["ReturnValue"]["summary"]["tagsDeleted"], 0);

    // A's run ends; B reports it finished, from the store.
    let record = loop {
        let seen = status(&b, &format!("/api/purge/{run_id}")).await;
        assert_eq!(seen.status, 200, "{:#}", seen.json);
        if seen.json["status"] != "running" {
            break seen.json["record"].clone();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(record["status"], "succeeded", "{record:#}");
    assert_eq!(record["trigger"], "webhook");
    assert_protected(&registry);
    let expected = reference().await;
    assert_eq!(state(&registry), expected);
    assert_no_deletion_twice(&registry);
}

#[tokio::test]
async fn a_run_queued_on_one_instance_is_known_to_the_other() {
    let (_azurite, _identity, _registry, a, b) =
        two_instances(100, &[("PURGE_HTTP_DEADLINE_SECONDS", "1")]).await;
    let running = webhook(&a, "{}").await;
    assert_eq!(running.status, 202, "{:#}", running.json);
    // A runs one at a time: this dry run waits for the purge in flight.
    let queued = webhook(&a, r#"{"dryRun":true}"#).await;
    assert_eq!(queued.status, 202, "{:#}", queued.json);
    assert_eq!(queued.json["status"], "queued", "{:#}", queued.json);
    let url = queued.json["statusUrl"]
        .as_str()
        .expect("statusUrl")
        .to_string();
    let seen = status(&b, &url).await;
    assert_eq!(seen.status, 200, "{:#}", seen.json);
    assert_eq!(seen.json["status"], "queued", "{:#}", seen.json);
    assert_eq!(seen.json["record"]["dryRun"], true);
    // It runs, then ends; B follows it from the store under the same id.
    let mut statuses = vec!["queued".to_string()];
    let started = std::time::Instant::now();
    loop {
        let seen = status(&b, &url).await;
        assert_eq!(seen.status, 200, "{:#}", seen.json);
        let now = seen.json["status"].as_str().unwrap_or_default().to_string();
        if statuses.last() != Some(&now) {
            statuses.push(now.clone());
        }
        if now != "queued" && now != "running" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "{statuses:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("succeeded"),
        "{statuses:?}"
    );
    // A, which ran it, says so once its run's task has settled (just after the record).
    let mut answer = status(&a, &url).await;
    for _ in 0..50 {
        if answer.json["status"] == "finished" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        answer = status(&a, &url).await;
    }
    assert_eq!(answer.json["status"], "finished", "{:#}", answer.json);
}

#[tokio::test]
async fn simultaneous_timers_on_two_instances_purge_once() {
    let (_azurite, _identity, registry, a, b) = two_instances(40, &[]).await;
    let (one, two) = tokio::join!(a.timer(false, false), b.timer(false, false));
    assert_eq!(
        (one.status, two.status),
        (200, 200),
        "{:#}\n{:#}",
        one.json,
        two.json
    );
    let deleted = |answer: &crate::support::host::Answer| {
        answer.json["ReturnValue"]["summary"]["tagsDeleted"]
            .as_u64()
            .unwrap_or(0)
    };
    let skipped = |answer: &crate::support::host::Answer| {
        answer.json["Logs"]
            .to_string()
            .contains("PurgeTimer occurrence skipped")
    };
    assert!(
        (skipped(&one) && deleted(&one) == 0 && deleted(&two) > 0)
            || (skipped(&two) && deleted(&two) == 0 && deleted(&one) > 0),
        "exactly one purges:\n{:#}\n{:#}",
        one.json,
        two.json
    );
    assert_eq!(state(&registry), reference().await);
    assert_no_deletion_twice(&registry);
}

/// No DELETE request was sent twice for one path.
fn assert_no_deletion_twice(registry: &Registry) {
    let mut seen = BTreeMap::new();
    for request in registry.mutations() {
        assert_eq!(request.method, "DELETE", "{request:?}");
        *seen.entry(request.path).or_insert(0) += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "deleted twice: {twice:?}");
    assert!(!seen.is_empty());
}

#[tokio::test]
async fn no_store_no_purge() {
    let registry = Registry::start(seed()).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let nowhere = format!("https://localhost:{}/devstoreaccount1", closed.port());
    let identity = IdentityEndpoint::start().await;

    // The Functions handler: the timer fails, the webhook is refused, nothing is deleted.
    let mut settings: Vec<(&str, String)> = vec![
        ("PURGE_REGISTRY", registry.running.url.clone()),
        ("PURGE_POLICY", POLICY.to_string()),
        ("WEBHOOK_SECRET", SECRET.to_string()),
        ("AzureWebJobsStorage__blobServiceUri", nowhere.clone()),
    ];
    settings.extend(identity.env());
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let handler = Handler::start(&settings).await;
    let timer = handler.timer(false, false).await;
    assert_eq!(timer.status, 500, "{:#}", timer.json);
    let logs = timer.json["Logs"].to_string();
    assert!(
        logs.contains("the run store is unavailable, so nothing was purged"),
        "{logs}"
    );
    let refused = webhook(&handler, "{}").await;
    assert_eq!(refused.status, 503, "{:#}", refused.json);
    assert!(
        refused.json["error"]
            .as_str()
            .unwrap_or_default()
            .contains("run store is unavailable"),
        "{:#}",
        refused.json
    );

    // The command line.
    let url = format!("{nowhere}/acr-purge-runs");
    let run = purge_recorded_at(&registry, &url, &identity.env()).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("nothing was purged"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("localhost:{}", closed.port())),
        "{}",
        run.stderr
    );
    assert!(
        registry.mutations().is_empty(),
        "{:?}",
        registry.mutations()
    );
    assert_eq!(state(&registry).manifests.len(), aliases().len());
}

/// `handler purge` of the test's policy, recorded in the container at `url`.
async fn purge_recorded_at(
    registry: &Registry,
    url: &str,
    env: &[(&str, String)],
) -> crate::support::purge::Run {
    let mut args = vec![
        "purge",
        "-r",
        registry.running.url.as_str(),
        "--state-url",
        url,
    ];
    args.extend_from_slice(ARGS);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    handler_with_env(&args, &env).await
}

#[tokio::test]
async fn command_line_runs_are_recorded_in_blob_storage_and_listed_from_it() {
    let azurite = Azurite::start().await;
    let identity = IdentityEndpoint::start().await;
    let registry = Registry::start(seed()).await;
    let url = azurite.container("acr-purge-runs");
    let cert = azurite.cert_path();
    let mut env: Vec<(&str, String)> = identity.env();
    env.push(("SSL_CERT_FILE", cert));
    let run = purge_recorded_at(&registry, &url, &env).await;
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(state(&registry), reference().await);

    let listed = handler_with_env(&["runs", "list", "--state-url", url.as_str()], &env).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let rows: Vec<&str> = listed.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{}", listed.stdout);
    assert!(
        rows[0].contains("succeeded") && rows[0].contains("cli"),
        "{}",
        rows[0]
    );
    let id = rows[0].split_whitespace().next().expect("run id");

    let shown = handler_with_env(&["runs", "audit", id, "--state-url", url.as_str()], &env).await;
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let lines: Vec<serde_json::Value> = shown
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let end = state(&registry);
    let counted = deletions(&lines);
    assert!(counted.values().all(|n| *n == 1), "{counted:?}");
    assert_eq!(
        counted.into_keys().collect::<BTreeSet<_>>(),
        expected_deletions(&registry, &end)
    );
    for line in &lines {
        assert_eq!(line["run"], id);
        assert!(
            !line["reason"].as_str().unwrap_or_default().is_empty(),
            "{line}"
        );
    }
}

#[tokio::test]
async fn no_state_records_nothing_and_cannot_take_a_deadline() {
    let registry = Registry::start(seed()).await;
    let mut args = ARGS.to_vec();
    args.extend(["--no-state", "--deadline", "10s"]);
    let refused = registry.purge(&args).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("--deadline"), "{}", refused.stderr);
    assert!(registry.mutations().is_empty());

    // PURGE_STATE_DIR is set (Registry::purge sets it): --no-state overrides it.
    args.truncate(ARGS.len() + 1);
    let run = registry.purge(&args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(state(&registry), reference().await);
    let recorded = std::fs::read_dir(registry.state.path())
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(recorded, 0, "the store was written");
}

#[tokio::test]
async fn runs_show_and_audit_refuse_ids_the_handler_never_issues() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    // What `runs/..` would reach: the store's root.
    std::fs::write(state.join("record.json"), r#"{"id":"planted"}"#).expect("planted");
    let state = state.to_string_lossy().into_owned();
    let long = "r".repeat(5000);
    for what in ["show", "audit"] {
        for id in ["..", ".", "../runs", long.as_str()] {
            let run =
                crate::support::purge::handler(&["runs", what, id, "--state-dir", &state]).await;
            assert_eq!(run.code, 2, "runs {what} {id:.20}: {}", run.stderr);
            assert!(run.stderr.contains("not a run id"), "{}", run.stderr);
            assert!(
                run.stderr.len() < 300,
                "echoed whole: {} bytes",
                run.stderr.len()
            );
            assert!(!run.stdout.contains("planted"), "{}", run.stdout);
        }
    }
}

/// An audit line of run `run` (as the store writes them).
fn audit_line(run: &str, n: usize) -> acr_purge::store::AuditLine {
    acr_purge::store::AuditLine {
        time: chrono::Utc::now(),
        run: run.to_string(),
        invocation: 1,
        repository: "team/app".into(),
        kind: "tag".into(),
        tag: Some(format!("v{n}")),
        digest: format!("sha256:{n:064x}"),
        tags: vec![format!("v{n}"); 20],
        rule: Some(1),
        reason: "matched rule 1: older than 7d".repeat(8),
        outcome: "deleted".into(),
        detail: None,
        reconciled: false,
    }
}

/// The audit reader on `backend`: a log over several chunks is read whole, a corrupt middle
/// line and an over-long one are counted as corrupt, torn lines (a dead writer's, in the
/// middle and at the end) as torn, and every other line is read; a corrupt record leaves the
/// other runs listed.
async fn audit_and_records_read_around_damage(
    backend: std::sync::Arc<dyn acr_purge::store::Backend>,
) {
    use acr_purge::store::{RunStore, StoreErrorKind};
    let store = RunStore::with_backend(backend.clone())
        .await
        .expect("store");
    let run = uuid::Uuid::new_v4().to_string();
    let log = format!("runs/{run}/audit.jsonl");
    let raw = |bytes: &str| {
        let (backend, log) = (backend.clone(), log.clone());
        let bytes = bytes.as_bytes().to_vec();
        async move { backend.append(&log, bytes).await.expect("append") }
    };
    // Enough lines for several chunks (each line is about a kilobyte).
    let first: Vec<_> = (0..3000).map(|n| audit_line(&run, n)).collect();
    store.append_audit(&run, &first).await.expect("append");
    raw("this is not JSON\n").await;
    raw(&format!(
        "{}\n",
        "x".repeat(acr_purge::store::audit::MAX_LINE + 10)
    ))
    .await;
    raw("{\"time\":\"2026-01-").await; // a writer died mid-line...
    store
        .append_audit(&run, &[audit_line(&run, 5000)])
        .await
        .expect("append"); // ...and the next batch started on a line of its own
    raw("{\"time\":\"2026-02-").await; // and the last writer died mid-line too
    let mut read = Vec::new();
    let reading = store
        .audit_each(&run, |line| read.push(line.tag.unwrap_or_default()))
        .await
        .expect("audit");
    assert_eq!(read.len(), 3001, "{reading:?}");
    assert_eq!(read[2999], "v2999");
    assert_eq!(read[3000], "v5000");
    assert_eq!(
        (reading.lines, reading.corrupt, reading.torn),
        (3001, 2, 2),
        "{reading:?}"
    );
    let said = reading.left_out().expect("says what it left out");
    assert!(
        said.contains("2 corrupt line(s)") && said.contains("2 line(s) cut short"),
        "{said}"
    );

    // Records: one corrupt, the others listed.
    let record = |id: &str| acr_purge::store::RunRecord {
        id: id.to_string(),
        registry: "r.azurecr.io".into(),
        trigger: "cli".into(),
        policy_digest: "p".into(),
        dry_run: true,
        started_at: chrono::Utc::now(),
        ended_at: Some(chrono::Utc::now()),
        status: acr_purge::store::RunStatus::Succeeded,
        summary: Default::default(),
        error: None,
        held_by: None,
        invocations: Vec::new(),
    };
    let (good, bad) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    store.write_record(&record(&good)).await.expect("record");
    store.write_record(&record(&run)).await.expect("record");
    let bad_name = format!("runs/{bad}/record.json");
    backend
        .write(&bad_name, b"{\"id\": tru".to_vec())
        .await
        .expect("write");
    let listing = store
        .records()
        .await
        .expect("records listed despite a corrupt one");
    let mut ids: Vec<_> = listing.records.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    let mut expected = vec![good.clone(), run.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(listing.unreadable.len(), 1);
    assert_eq!(listing.unreadable[0].kind, StoreErrorKind::Corrupt);
    assert!(
        listing.unreadable[0].to_string().contains(&bad_name),
        "{}",
        listing.unreadable[0]
    );
}

#[tokio::test]
async fn the_audit_reader_counts_damage_and_records_list_around_a_corrupt_one_in_a_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = acr_purge::store::dir::DirBackend::new(dir.path().join("state"));
    audit_and_records_read_around_damage(std::sync::Arc::new(backend)).await;
}

#[tokio::test]
async fn the_audit_reader_counts_damage_and_records_list_around_a_corrupt_one_in_blob_storage() {
    let azurite = Azurite::start().await;
    audit_and_records_read_around_damage(azurite.backend("acr-purge-runs")).await;
}

/// Writes an object of several 4 MiB blocks through `write_from`, then a small one over it:
/// each reads back byte for byte (Blob Storage stages the large one in blocks and commits
/// them in order).
async fn streamed_objects_read_back_whole(backend: std::sync::Arc<dyn acr_purge::store::Backend>) {
    let large: Vec<u8> = (0..300_000u32)
        .flat_map(|n| format!("line {n:08} of a streamed object\n").into_bytes())
        .collect();
    assert!(large.len() > 2 * 4 * 1024 * 1024, "{}", large.len());
    backend.prepare().await.expect("store prepared");
    for object in [large, b"small\n".to_vec()] {
        let write = |out: &mut dyn std::io::Write| out.write_all(&object);
        backend
            .write_from("registries/r/blobs/big.jsonl", &write)
            .await
            .expect("written");
        let read = backend
            .read("registries/r/blobs/big.jsonl")
            .await
            .expect("read")
            .expect("there");
        assert_eq!(read.len(), object.len());
        assert!(read == object, "the object reads back as written");
    }
}

#[tokio::test]
async fn a_streamed_object_larger_than_a_block_reads_back_whole_in_blob_storage() {
    let azurite = Azurite::start().await;
    streamed_objects_read_back_whole(azurite.backend("acr-purge-runs")).await;
}

#[tokio::test]
async fn a_streamed_object_reads_back_whole_in_a_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = acr_purge::store::dir::DirBackend::new(dir.path().join("state"));
    streamed_objects_read_back_whole(std::sync::Arc::new(backend)).await;
}

#[tokio::test]
async fn runs_list_and_audit_warn_about_what_they_leave_out() {
    let registry = Registry::start(seed()).await;
    let run = registry.purge(ARGS).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let state = registry.state.path();
    let id = std::fs::read_dir(state.join("runs"))
        .expect("runs")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .expect("a run");
    let bad = uuid::Uuid::new_v4().to_string();
    std::fs::create_dir_all(state.join("runs").join(&bad)).expect("dir");
    std::fs::write(state.join(format!("runs/{bad}/record.json")), "{oops").expect("write");
    let log = state.join(format!("runs/{id}/audit.jsonl"));
    let text = std::fs::read_to_string(&log).expect("audit");
    let mut lines: Vec<&str> = text.lines().collect();
    let kept = lines.iter().filter(|l| !l.trim().is_empty()).count();
    lines.insert(2, "garbage in the middle");
    std::fs::write(&log, lines.join("\n") + "\n{\"time\":\"20").expect("write");
    let dir = state.to_string_lossy().into_owned();
    let listed = crate::support::purge::handler(&["runs", "list", "--state-dir", &dir]).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(listed.stdout.contains(&id), "{}", listed.stdout);
    assert!(
        listed.stderr.contains("Warning")
            && listed.stderr.contains(&format!("runs/{bad}/record.json")),
        "{}",
        listed.stderr
    );
    let audited =
        crate::support::purge::handler(&["runs", "audit", &id, "--state-dir", &dir]).await;
    assert_eq!(audited.code, 0, "{}", audited.stderr);
    assert_eq!(audited.stdout.lines().count(), kept, "{}", audited.stdout);
    assert!(
        audited.stderr.contains("Warning")
            && audited.stderr.contains("1 corrupt line(s) (line 3)")
            && audited.stderr.contains("1 line(s) cut short"),
        "{}",
        audited.stderr
    );
}
