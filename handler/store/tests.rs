use super::*;
use chrono::Utc;

async fn store(dir: &tempfile::TempDir) -> RunStore {
    RunStore::open(&StoreLocation::Dir(dir.path().join("state")), || {
        Err("no credential needed".into())
    })
    .await
    .expect("store opens")
}

fn holder(run: &str) -> Holder {
    Holder {
        run_id: run.into(),
        trigger: "cli".into(),
        since: Utc::now(),
    }
}

fn line(repository: &str, tag: Option<&str>, digest: &str) -> AuditLine {
    AuditLine {
        time: Utc::now(),
        run: "r".into(),
        invocation: 1,
        repository: repository.into(),
        kind: if tag.is_some() { "tag" } else { "manifest" }.into(),
        tag: tag.map(str::to_string),
        digest: digest.into(),
        tags: Vec::new(),
        rule: Some(1),
        reason: "matched".into(),
        outcome: "deleted".into(),
        detail: None,
        reconciled: false,
    }
}

#[tokio::test]
async fn a_held_lease_names_its_holder_and_frees_on_release() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let first = store.acquire("r.azurecr.io", &holder("one")).await.unwrap();
    let Ok(lease) = first else {
        panic!("the first acquire wins");
    };
    let second = store.acquire("r.azurecr.io", &holder("two")).await.unwrap();
    let busy = second.err().expect("the second is refused");
    assert_eq!(busy.map(|h| h.run_id), Some("one".to_string()));
    let seen = store.holder("r.azurecr.io").await.unwrap();
    assert_eq!(seen.flatten().map(|h| h.run_id), Some("one".to_string()));
    // Another registry is independent.
    assert!(
        store
            .acquire("other.azurecr.io", &holder("three"))
            .await
            .unwrap()
            .is_ok()
    );
    lease.release().await.unwrap();
    assert_eq!(store.holder("r.azurecr.io").await.unwrap(), None);
    assert!(
        store
            .acquire("r.azurecr.io", &holder("four"))
            .await
            .unwrap()
            .is_ok()
    );
}

#[tokio::test]
async fn plans_records_and_audit_lines_round_trip_with_odd_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let repo = "team/app%1";
    store
        .write_plan("run-1", repo, &serde_json::json!({"x": 1}))
        .await
        .unwrap();
    let plan: Option<serde_json::Value> = store.plan("run-1", repo).await.unwrap();
    assert_eq!(plan, Some(serde_json::json!({"x": 1})));
    assert_eq!(
        store
            .plan::<serde_json::Value>("run-1", "team/app")
            .await
            .unwrap(),
        None
    );
    let lines = vec![
        line(repo, Some("v1"), "sha256:a"),
        line(repo, None, "sha256:b"),
    ];
    store.append_audit("run-1", &lines[..1]).await.unwrap();
    store.append_audit("run-1", &lines[1..]).await.unwrap();
    assert_eq!(store.audit("run-1").await.unwrap(), lines);
    assert!(store.audit("run-2").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_torn_last_audit_line_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    store
        .append_audit("r", &[line("a", Some("t"), "sha256:1")])
        .await
        .unwrap();
    let path = dir.path().join("state/runs/r/audit.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"time\":\"2026-");
    std::fs::write(&path, text).unwrap();
    assert_eq!(store.audit("r").await.unwrap().len(), 1);
}

#[tokio::test]
async fn records_list_newest_first_and_checkpoints_clear() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let record = |id: &str, minutes: i64| RunRecord {
        id: id.into(),
        registry: "r".into(),
        trigger: "cli".into(),
        policy_digest: "p".into(),
        dry_run: false,
        started_at: Utc::now() - chrono::Duration::minutes(minutes),
        ended_at: None,
        status: RunStatus::Running,
        summary: Counts::default(),
        error: None,
        held_by: None,
        invocations: Vec::new(),
    };
    store.write_record(&record("old", 10)).await.unwrap();
    store.write_record(&record("new", 1)).await.unwrap();
    let ids: Vec<String> = store
        .records()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["new", "old"]);
    let checkpoint = Checkpoint {
        run_id: "new".into(),
        policy_digest: "p".into(),
        reference_time: Utc::now(),
        completed: ["a".to_string()].into(),
        written_at: Utc::now(),
    };
    store.write_checkpoint("r", &checkpoint).await.unwrap();
    assert_eq!(store.checkpoint("r").await.unwrap(), Some(checkpoint));
    store.clear_checkpoint("r").await.unwrap();
    assert_eq!(store.checkpoint("r").await.unwrap(), None);
}
