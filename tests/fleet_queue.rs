//! A fleet on Azurite's real queue service, the Functions host's queue trigger played by
//! `support::functions_queue_host` (dequeue with a visibility timeout, the custom handler's
//! payload, delete or release, `Outputs` written back, the poison queue): three instances
//! share one queue and six registries; an instance killed mid-run has its message
//! redelivered to another, which resumes the run; a run cut by its deadline goes on through
//! its own continuation message within seconds.
//!
//! The instances share one run directory: its lease is a file lock, freed the moment its
//! holder dies, so a redelivery resumes at once (a Blob Storage lease lapses 60 s after its
//! holder died, within host.json's 90 s `visibilityTimeout`).

use crate::support::functions_queue_host::{Instance, Invocation, QueueHost, QueueSettings};
use crate::support::host::Handler;
use crate::support::purge::{Registry, tagged};
use crate::support::queue_service::QueueService;
use acr_emulator::{Fault, ManifestSeed, RepoSeed, Seed};
use acr_purge::functions::fanout::{POISON_QUEUE_NAME, QUEUE_NAME};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

const REPOS: usize = 4;
/// The fleet's default policy, and the same as `handler purge` arguments.
const DEFAULT_POLICY: &str =
    r#"{"rules":[{"filter":"team/.*:^v","ago":"7d","keep":2,"untagged":true}]}"#;
const DEFAULT_ARGS: &[&str] = &[
    "--filter",
    "team/.*:^v",
    "--ago",
    "7d",
    "--keep",
    "2",
    "--untagged",
];
/// The override of every other registry.
const OVERRIDE_POLICY: &str = r#"{"rules":[{"filter":"team/.*:^v","ago":"17d"}]}"#;
const OVERRIDE_ARGS: &[&str] = &["--filter", "team/.*:^v", "--ago", "17d"];
const AGES: [u32; 6] = [30, 25, 20, 15, 10, 8];

/// Repositories of old `v` tags (30 to 8 days), a fresh and an unfiltered tag, two
/// dangling manifests.
fn seed() -> Seed {
    let mut seed = Seed::new();
    for r in 0..REPOS {
        let mut repo = RepoSeed::new(&format!("team/app{r}"));
        for (v, age) in AGES.iter().enumerate() {
            repo = repo.manifest(tagged(
                &format!("old{v}"),
                &format!("v{v}"),
                &format!("{age}d"),
            ));
        }
        repo = repo
            .manifest(tagged("fresh", "v100", "1h"))
            .manifest(tagged("prod", "prod", "90d"))
            .manifest(ManifestSeed::image("dangling1").age("30d"))
            .manifest(ManifestSeed::image("dangling2").age("31d"));
        seed = seed.repo(repo);
    }
    seed
}

const ALIASES: [&str; 10] = [
    "old0",
    "old1",
    "old2",
    "old3",
    "old4",
    "old5",
    "fresh",
    "prod",
    "dangling1",
    "dangling2",
];

/// Tags and surviving manifests (by alias) per repository.
type State = BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>;

fn state(registry: &Registry) -> State {
    (0..REPOS)
        .map(|r| format!("team/app{r}"))
        .map(|repo| {
            let manifests = ALIASES
                .iter()
                .filter(|a| registry.has(&repo, a))
                .map(|a| a.to_string())
                .collect();
            (repo.clone(), (registry.tags(&repo), manifests))
        })
        .collect()
}

/// The state one uninterrupted `handler purge` with `args` leaves, on a registry of its own.
async fn reference(args: &[&str]) -> State {
    let registry = Registry::start(seed()).await;
    let run = registry.purge(args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let reached = state(&registry);
    assert_ne!(reached, state(&Registry::start(seed()).await), "it deletes");
    reached
}

/// A registry whose DELETEs take `delete_ms`.
async fn slow_registry(delete_ms: u64) -> Registry {
    let registry = Registry::start(seed()).await;
    registry
        .emulator()
        .inject(Fault::delay(Duration::from_millis(delete_ms)).method("DELETE"));
    registry
}

/// The audit lines of the runs of `host` in a shared run directory, each (repository,
/// tag or digest), with how many times each is recorded.
fn audited(state_dir: &Path, host: &str) -> BTreeMap<(String, String), usize> {
    let mut counted = BTreeMap::new();
    for run in std::fs::read_dir(state_dir.join("runs"))
        .expect("runs")
        .flatten()
    {
        let Ok(record) = std::fs::read_to_string(run.path().join("record.json")) else {
            continue;
        };
        let record: serde_json::Value = serde_json::from_str(&record).expect("record");
        if record["registry"] != host {
            continue;
        }
        let audit = std::fs::read_to_string(run.path().join("audit.jsonl")).unwrap_or_default();
        for line in audit
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        {
            let outcome = line["outcome"].as_str().unwrap_or_default();
            assert!(
                ["deleted", "alreadyGone"].contains(&outcome),
                "{host}: {line}"
            );
            let item = match line["tag"].as_str() {
                Some(tag) => format!("tag:{tag}"),
                None => format!("manifest:{}", line["digest"].as_str().unwrap_or_default()),
            };
            let repo = line["repository"].as_str().unwrap_or_default().to_string();
            *counted.entry((repo, item)).or_insert(0) += 1;
        }
    }
    counted
}

/// Every item the registry lost is in its audit log exactly once, and nothing else is;
/// no path was deleted twice at the registry (a second DELETE would answer 404).
fn assert_audited_once(registry: &Registry, state_dir: &Path) {
    let counted = audited(state_dir, &registry.running.host());
    let twice: Vec<_> = counted.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "recorded more than once: {twice:?}");
    let end = state(registry);
    let mut gone = BTreeSet::new();
    for r in 0..REPOS {
        let repo = format!("team/app{r}");
        let (tags, manifests) = &end[&repo];
        for tag in (0..AGES.len())
            .map(|v| format!("v{v}"))
            .chain(["v100", "prod"].map(String::from))
        {
            if !tags.contains(&tag) {
                gone.insert((repo.clone(), format!("tag:{tag}")));
            }
        }
        for alias in ALIASES.iter().filter(|a| !manifests.contains(**a)) {
            gone.insert((
                repo.clone(),
                format!("manifest:{}", registry.digest(&repo, alias)),
            ));
        }
    }
    assert!(!gone.is_empty());
    assert_eq!(counted.into_keys().collect::<BTreeSet<_>>(), gone);
    let mut deleted = BTreeMap::new();
    for request in registry.emulator().requests() {
        if request.method == "DELETE" && (200..300).contains(&request.status) {
            *deleted.entry(request.path).or_insert(0) += 1;
        }
    }
    let twice: Vec<_> = deleted.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "deleted twice: {twice:?}");
}

/// The DELETEs the registry answered 2xx.
fn successful_deletes(registry: &Registry) -> usize {
    registry
        .emulator()
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE" && (200..300).contains(&r.status))
        .count()
}

/// The queue, its poison queue and the host's settings from host.json, with the two waits
/// shortened: a failed message is retried after `retry`, and a dequeued message is
/// invisible for `lease` (renewed at half of it while its invocation runs).
async fn queue_host(service: &QueueService, retry: Duration, lease: Duration) -> QueueHost {
    let mut settings = QueueSettings::from_host_json();
    assert!(settings.visibility_timeout >= retry);
    settings.visibility_timeout = retry;
    let queue = service.queue(QUEUE_NAME).await;
    let poison = service.queue(POISON_QUEUE_NAME).await;
    QueueHost::new(queue, poison, settings, lease)
}

/// A handler process of the fleet app, its runs recorded in `state_dir`.
async fn fleet_handler(fleet: &str, state_dir: &Path, extra: &[(&str, &str)]) -> Handler {
    let mut settings = vec![
        ("PURGE_FLEET", fleet),
        ("PURGE_STATE_DIR", state_dir.to_str().expect("utf-8 path")),
        ("WEBHOOK_SECRET", "s"),
    ];
    settings.extend_from_slice(extra);
    Handler::start(&settings).await
}

/// Whether two invocations overlapped in time.
fn overlap(a: &Invocation, b: &Invocation) -> bool {
    let (Some(a_end), Some(b_end)) = (a.ended, b.ended) else {
        return true;
    };
    a.started < b_end && b.started < a_end
}

#[tokio::test]
async fn three_instances_share_one_queue_and_purge_six_registries_each_as_one_run_of_its_policy() {
    let (expected_default, expected_override) =
        tokio::join!(reference(DEFAULT_ARGS), reference(OVERRIDE_ARGS));
    assert_ne!(expected_default, expected_override);
    let service = QueueService::start().await;
    let host = queue_host(&service, Duration::from_secs(1), Duration::from_secs(4)).await;
    let mut registries = Vec::new();
    for _ in 0..6 {
        registries.push(slow_registry(30).await);
    }
    let members: Vec<serde_json::Value> = registries
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if i % 2 == 1 {
                let policy: serde_json::Value = serde_json::from_str(OVERRIDE_POLICY).unwrap();
                serde_json::json!({"registry": r.running.url, "policy": policy})
            } else {
                serde_json::json!({"registry": r.running.url})
            }
        })
        .collect();
    let default: serde_json::Value = serde_json::from_str(DEFAULT_POLICY).unwrap();
    let fleet = serde_json::json!({"default": default, "registries": members}).to_string();
    let store = tempfile::tempdir().unwrap();
    let mut handlers = Vec::new();
    for _ in 0..3 {
        handlers.push(fleet_handler(&fleet, store.path(), &[]).await);
    }

    // Two timer occurrences (the second a past-due one) on the timer's instance: twelve
    // messages, two per registry, written by the timer's output binding as the host does.
    for past_due in [false, true] {
        let answer = handlers[0].timer(false, past_due).await;
        assert_eq!(answer.status, 200, "{:#}", answer.json);
        assert_eq!(host.write_outputs(&answer.json).await.len(), 6);
    }
    // And a message the fleet refuses, for the poison queue.
    let stranger = r#"{"registry":"stranger.azurecr.io"}"#;
    host.queue.put(stranger).await.expect("Put Message");
    assert_eq!(host.queue.approximate_count().await, Ok(13));

    let started = std::time::Instant::now();
    let instances: Vec<Instance> = handlers
        .into_iter()
        .enumerate()
        .map(|(i, h)| host.instance(i, h))
        .collect();
    host.drained(Duration::from_secs(90)).await;
    eprintln!("queue drained in {:?}", started.elapsed());
    let invocations = host.invocations();

    for (i, registry) in registries.iter().enumerate() {
        let expected = if i % 2 == 1 {
            &expected_override
        } else {
            &expected_default
        };
        assert_eq!(&state(registry), expected, "registry {i}");
        assert_audited_once(registry, store.path());
        // Never two purges of one registry at once: the invocations that ran it (not the
        // ones told another run holds it) never overlapped.
        let ran: Vec<&Invocation> = invocations
            .iter()
            .filter(|v| v.registry() == registry.running.host() && !v.skipped_busy())
            .collect();
        for (n, a) in ran.iter().enumerate() {
            assert_eq!(a.status, 200, "{:#}", a.json);
            for b in &ran[n + 1..] {
                assert!(
                    !overlap(a, b),
                    "registry {i} purged by instances {} and {} at once",
                    a.instance,
                    b.instance
                );
            }
        }
    }
    let by_instance = |i: usize| {
        invocations
            .iter()
            .filter(|v| v.instance == i && v.registry() != "stranger.azurecr.io")
            .count()
    };
    let spread: Vec<usize> = (0..instances.len()).map(by_instance).collect();
    let busy = invocations.iter().filter(|v| v.skipped_busy()).count();
    eprintln!(
        "fleet messages per instance: {spread:?}; {busy} deliveries found their registry held by another run and were dropped"
    );
    assert_eq!(spread.iter().sum::<usize>(), 12);
    assert!(
        spread.iter().filter(|n| **n > 0).count() >= 2,
        "the work spread over instances: {spread:?}"
    );

    // The refused message: delivered maxDequeueCount times, each a failed invocation, then
    // moved to the poison queue.
    let refused: Vec<&Invocation> = invocations
        .iter()
        .filter(|v| v.registry() == "stranger.azurecr.io")
        .collect();
    let counts: Vec<u32> = refused.iter().map(|v| v.dequeue_count).collect();
    let max = host.settings.max_dequeue_count;
    assert_eq!(counts, (1..=max).collect::<Vec<_>>());
    assert!(refused.iter().all(|v| v.status == 500));
    let poisoned = host.poison.peek().await.expect("Peek Messages");
    assert_eq!(
        poisoned.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        [stranger]
    );
}

#[tokio::test]
async fn an_instance_killed_mid_run_has_its_message_redelivered_and_the_run_resumed_elsewhere() {
    let expected = reference(DEFAULT_ARGS).await;
    let service = QueueService::start().await;
    // The listener's visibility timeout, short: the killed instance's message comes back
    // after it (the host's is 10 minutes).
    let host = queue_host(&service, Duration::from_secs(1), Duration::from_secs(3)).await;
    let registry = slow_registry(80).await;
    let default: serde_json::Value = serde_json::from_str(DEFAULT_POLICY).unwrap();
    let fleet =
        serde_json::json!({"default": default, "registries": [{"registry": registry.running.url}]})
            .to_string();
    let store = tempfile::tempdir().unwrap();
    let message = serde_json::json!({"registry": registry.running.host()}).to_string();
    host.queue.put(&message).await.expect("Put Message");
    let mut instances = Vec::new();
    for i in 0..2 {
        instances.push(host.instance(i, fleet_handler(&fleet, store.path(), &[]).await));
    }

    // Mid-run: some deletions done, more to come.
    let started = std::time::Instant::now();
    let victim = loop {
        let deletes = registry
            .mutations()
            .iter()
            .filter(|r| r.status != 0)
            .count();
        let running = host.invocations().into_iter().find(|v| v.ended.is_none());
        if deletes >= 8
            && let Some(running) = running
        {
            break running.instance;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no run under way"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    instances[victim].kill().await;
    let deleted_before = successful_deletes(&registry);
    let killed_at = std::time::Instant::now();
    host.drained(Duration::from_secs(60)).await;

    let invocations = host.invocations();
    assert_eq!(invocations.len(), 2, "{invocations:#?}");
    let (first, second) = (&invocations[0], &invocations[1]);
    assert!(first.died && first.instance == victim);
    assert_eq!(
        (second.dequeue_count, second.status),
        (2, 200),
        "{:#}",
        second.json
    );
    assert_ne!(second.instance, victim, "redelivered to another instance");
    eprintln!(
        "killed after {deleted_before} deletions; redelivered to instance {} after {:?}",
        second.instance,
        second.started - killed_at
    );
    assert_eq!(state(&registry), expected);
    assert_audited_once(&registry, store.path());
    // One run, resumed: its record has both invocations, the second resumed from the
    // checkpoint and deleting only what the first had not.
    let runs: Vec<_> = std::fs::read_dir(store.path().join("runs"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(runs.len(), 1, "the redelivery resumed the run, no new run");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runs[0].path().join("record.json")).unwrap())
            .unwrap();
    let steps = record["invocations"].as_array().expect("invocations");
    assert_eq!(steps.len(), 2, "{record:#}");
    assert_eq!(steps[0]["trigger"], "queue");
    assert_ne!(steps[0]["status"], "succeeded", "{record:#}");
    assert_eq!(steps[1]["status"], "succeeded", "{record:#}");
    assert!(steps[1]["resumedFrom"].is_string(), "{record:#}");
    let total = successful_deletes(&registry);
    assert!(
        deleted_before > 0 && deleted_before < total,
        "killed mid-run: {deleted_before} of {total} deletions done"
    );
    assert_eq!(record["status"], "succeeded");
}

#[tokio::test]
async fn a_run_cut_by_its_deadline_goes_on_through_its_continuation_within_seconds() {
    let expected = reference(DEFAULT_ARGS).await;
    let service = QueueService::start().await;
    let host = queue_host(&service, Duration::from_secs(1), Duration::from_secs(10)).await;
    let registry = slow_registry(70).await;
    let default: serde_json::Value = serde_json::from_str(DEFAULT_POLICY).unwrap();
    let fleet =
        serde_json::json!({"default": default, "registries": [{"registry": registry.running.url}]})
            .to_string();
    // The app's host.json with a 2 s functionTimeout: each run stops 1 s in.
    let app_root = tempfile::tempdir().unwrap();
    let mut host_json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/host.json")).unwrap(),
    )
    .unwrap();
    host_json["functionTimeout"] = "00:00:02".into();
    std::fs::write(app_root.path().join("host.json"), host_json.to_string()).unwrap();
    let root = app_root.path().to_str().unwrap();
    let store = tempfile::tempdir().unwrap();
    let mut instances = Vec::new();
    for i in 0..2 {
        let handler =
            fleet_handler(&fleet, store.path(), &[("FUNCTIONS_APP_ROOT_PATH", root)]).await;
        instances.push(host.instance(i, handler));
    }
    let message = serde_json::json!({"registry": registry.running.host()}).to_string();
    host.queue.put(&message).await.expect("Put Message");
    host.drained(Duration::from_secs(60)).await;

    let invocations = host.invocations();
    assert!(
        invocations.len() >= 2,
        "the run was cut by its deadline: {invocations:#?}"
    );
    let mut delays = Vec::new();
    for (n, invocation) in invocations.iter().enumerate() {
        assert_eq!(invocation.status, 200, "{:#}", invocation.json);
        let last = n + 1 == invocations.len();
        assert_eq!(
            invocation.outputs.len(),
            usize::from(!last),
            "one continuation per cut run: {:#}",
            invocation.json
        );
        if let Some((text, written)) = invocation.outputs.first() {
            let continuation: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(continuation["continuation"], true);
            assert_eq!(continuation["registry"], registry.running.host());
            let next = &invocations[n + 1];
            assert_eq!(&next.text, text, "the next invocation is the continuation");
            delays.push(next.started - *written);
        }
    }
    eprintln!(
        "{} invocations; each continuation ran {:?} after it was enqueued",
        invocations.len(),
        delays
    );
    let max_poll = host.settings.max_polling_interval;
    assert!(
        delays
            .iter()
            .all(|d| *d < max_poll + Duration::from_secs(2)),
        "a continuation waited longer than a poll: {delays:?}"
    );
    assert_eq!(state(&registry), expected);
    assert_audited_once(&registry, store.path());
    drop(instances);
}
