//! Beginning, resuming, abandoning and refusing runs, on a directory store.

use super::*;
use crate::report::Progress;

async fn store(dir: &tempfile::TempDir) -> RunStore {
    RunStore::open(&crate::store::StoreLocation::Dir(dir.path().into()), || {
        Err("no credential needed".into())
    })
    .await
    .expect("store opens")
}

fn request(digest: &str) -> RunRequest {
    RunRequest {
        registry: "r.example.io".into(),
        policy_digest: digest.into(),
        dry_run: false,
        trigger: Trigger::Cli,
        new_run: false,
        request_id: None,
    }
}

async fn started(store: &RunStore, request: RunRequest) -> DurableRun {
    match begin(store, request).await.expect("begins") {
        Begun::Started(run) => *run,
        Begun::Busy { holder, .. } => panic!("busy: {holder:?}"),
    }
}

fn deadline() -> RunError {
    RunError::Deadline(Progress {
        completed: Vec::new(),
        remaining: vec!["app".into()],
    })
}

fn report(error: Option<RunError>) -> RunReport {
    let mut report = RunReport::failed("r.example.io", false, deadline());
    report.error = error;
    report
}

#[tokio::test]
async fn a_second_real_run_is_refused_while_the_first_holds_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let first = started(&store, request("p")).await;
    let Begun::Busy { record, holder } = begin(&store, request("p")).await.unwrap() else {
        panic!("a second run started alongside the first");
    };
    assert_eq!(holder.map(|h| h.run_id).as_deref(), Some(first.id()));
    assert_eq!(record.status, RunStatus::Skipped);
    assert_ne!(record.id, first.id());
    let skipped = store.record(&record.id).await.unwrap().expect("recorded");
    assert_eq!(skipped.status, RunStatus::Skipped);
    // Dry runs delete nothing and take no lease.
    let dry = RunRequest {
        dry_run: true,
        ..request("p")
    };
    assert!(matches!(
        begin(&store, dry).await.unwrap(),
        Begun::Started(_)
    ));
    first.finish(&report(None)).await.unwrap();
    let third = started(&store, request("p")).await;
    assert!(
        !third.is_resumed(),
        "a succeeded run leaves nothing to resume"
    );
}

#[tokio::test]
async fn a_run_stopped_at_its_deadline_is_resumed_by_the_same_policy_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let first = started(&store, request("p")).await;
    let id = first.id().to_string();
    let record = first.finish(&report(Some(deadline()))).await.unwrap();
    assert_eq!(record.status, RunStatus::Incomplete);
    assert!(store.checkpoint("r.example.io").await.unwrap().is_some());

    let again = started(&store, request("p")).await;
    assert!(again.is_resumed());
    assert_eq!((again.id(), again.invocation()), (id.as_str(), 2));
    let record = again.finish(&report(Some(deadline()))).await.unwrap();
    assert_eq!(record.invocations.len(), 2);

    // Another policy starts over; the unfinished run is recorded as abandoned.
    let other = started(&store, request("q")).await;
    assert!(!other.is_resumed());
    assert_ne!(other.id(), id);
    let old = store.record(&id).await.unwrap().expect("old record");
    assert_eq!(old.status, RunStatus::Failed);
    assert!(old.error.unwrap_or_default().contains("abandoned"));
    other.finish(&report(None)).await.unwrap();
    assert!(store.checkpoint("r.example.io").await.unwrap().is_none());
}

#[tokio::test]
async fn new_run_starts_over_and_a_failed_run_is_not_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let first = started(&store, request("p")).await;
    let id = first.id().to_string();
    first.finish(&report(Some(deadline()))).await.unwrap();
    let fresh = started(
        &store,
        RunRequest {
            new_run: true,
            ..request("p")
        },
    )
    .await;
    assert!(!fresh.is_resumed());
    assert_ne!(fresh.id(), id);
    let failed = fresh
        .finish(&report(Some(RunError::StoreUnavailable("x".into()))))
        .await
        .unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    assert!(!started(&store, request("p")).await.is_resumed());
}

#[test]
fn the_stop_margin_is_a_tenth_within_bounds() {
    use std::time::Duration;
    assert_eq!(stop_margin(Duration::from_secs(2)), Duration::from_secs(1));
    assert_eq!(
        stop_margin(Duration::from_secs(300)),
        Duration::from_secs(30)
    );
    assert_eq!(
        stop_margin(Duration::from_secs(7200)),
        Duration::from_secs(120)
    );
}

/// An audit line of run `run` recorded by invocation `invocation`.
fn audited(
    run: &str,
    invocation: u32,
    tag: Option<&str>,
    outcome: &str,
) -> crate::store::AuditLine {
    crate::store::AuditLine {
        time: Utc::now(),
        run: run.into(),
        invocation,
        repository: "app".into(),
        kind: if tag.is_some() { "tag" } else { "manifest" }.into(),
        tag: tag.map(str::to_string),
        digest: format!("sha256:{}", tag.unwrap_or("m")),
        tags: Vec::new(),
        rule: Some(1),
        reason: "matched".into(),
        outcome: outcome.into(),
        detail: None,
        reconciled: false,
    }
}

#[tokio::test]
async fn a_dead_invocation_shows_interrupted_and_its_deletions_count_when_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let first = started(&store, request("p")).await;
    let id = first.id().to_string();
    // The first invocation deletes and records three items, then dies (no finish: its
    // process is gone, and with it the lock on the registry).
    let lines = [
        audited(&id, 1, Some("v1"), "deleted"),
        audited(&id, 1, Some("v2"), "alreadyGone"),
        audited(&id, 1, None, "deleted"),
        audited(&id, 1, Some("v3"), "failed"),
    ];
    store.append_audit(&id, &lines).await.unwrap();
    drop(first);
    // The aborted renewal task lets go of the lock file when the runtime drops it.
    for _ in 0..100 {
        if store.holder("r.example.io").await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Before it is resumed: shown interrupted, not running, by every reader.
    let raw = store.record(&id).await.unwrap().expect("recorded");
    assert_eq!(
        raw.status,
        RunStatus::Running,
        "the file is as the dead run left it"
    );
    let shown = store.current(&id).await.unwrap().expect("shown");
    assert_eq!(shown.status, RunStatus::Interrupted);
    assert_eq!(shown.invocations[0].status, RunStatus::Interrupted);
    let listed = store.records().await.unwrap().records;
    assert_eq!(listed[0].status, RunStatus::Interrupted);
    // A live run is shown running.
    let again = started(&store, request("p")).await;
    assert!(again.is_resumed());
    let live = store.current(&id).await.unwrap().expect("shown");
    assert_eq!(live.status, RunStatus::Running);
    // Resumed: the dead invocation is recorded interrupted, with what the log says it did.
    assert_eq!(live.invocations[0].status, RunStatus::Interrupted);
    let dead = &live.invocations[0].counts;
    assert_eq!(
        (dead.tags_deleted, dead.manifests_deleted, dead.failed),
        (2, 1, 1)
    );
    assert_eq!(
        (live.summary.tags_deleted, live.summary.manifests_deleted),
        (2, 1)
    );
    // This invocation ends having deleted nothing itself: the record still counts what the
    // dead one did (before, the run's counts were the sum of the reports, the dead one's lost).
    let record = again.finish(&report(None)).await.unwrap();
    assert_eq!(record.status, RunStatus::Succeeded);
    assert_eq!(record.invocations[0].status, RunStatus::Interrupted);
    assert_eq!(
        (
            record.summary.tags_deleted,
            record.summary.manifests_deleted
        ),
        (2, 1)
    );
    assert!(
        record
            .invocations
            .iter()
            .all(|i| i.status != RunStatus::Running),
        "{record:?}"
    );
}
