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

/// A run id as the handler issues them.
fn id() -> String {
    uuid::Uuid::new_v4().to_string()
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
    let one = id();
    let first = store.acquire("r.azurecr.io", &holder(&one)).await.unwrap();
    let Ok(lease) = first else {
        panic!("the first acquire wins");
    };
    let second = store.acquire("r.azurecr.io", &holder(&id())).await.unwrap();
    let busy = second.err().expect("the second is refused");
    assert_eq!(busy.map(|h| h.run_id), Some(one.clone()));
    let seen = store.holder("r.azurecr.io").await.unwrap();
    assert_eq!(seen.flatten().map(|h| h.run_id), Some(one.clone()));
    // Another registry is independent.
    assert!(
        store
            .acquire("other.azurecr.io", &holder(&id()))
            .await
            .unwrap()
            .is_ok()
    );
    lease.release().await.unwrap();
    assert_eq!(store.holder("r.azurecr.io").await.unwrap(), None);
    assert!(
        store
            .acquire("r.azurecr.io", &holder(&id()))
            .await
            .unwrap()
            .is_ok()
    );
}

#[tokio::test]
async fn plans_records_and_audit_lines_round_trip_with_odd_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let (run1, run2) = (id(), id());
    let repo = "team/app%1";
    store
        .write_plan(&run1, repo, &serde_json::json!({"x": 1}))
        .await
        .unwrap();
    let plan: Option<serde_json::Value> = store.plan(&run1, repo).await.unwrap();
    assert_eq!(plan, Some(serde_json::json!({"x": 1})));
    assert_eq!(
        store
            .plan::<serde_json::Value>(&run1, "team/app")
            .await
            .unwrap(),
        None
    );
    let lines = vec![
        line(repo, Some("v1"), "sha256:a"),
        line(repo, None, "sha256:b"),
    ];
    store.append_audit(&run1, &lines[..1]).await.unwrap();
    store.append_audit(&run1, &lines[1..]).await.unwrap();
    assert_eq!(store.audit(&run1).await.unwrap(), lines);
    assert!(store.audit(&run2).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_torn_last_audit_line_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let r = id();
    store
        .append_audit(&r, &[line("a", Some("t"), "sha256:1")])
        .await
        .unwrap();
    let path = dir.path().join(format!("state/runs/{r}/audit.jsonl"));
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"time\":\"2026-");
    std::fs::write(&path, text).unwrap();
    assert_eq!(store.audit(&r).await.unwrap().len(), 1);
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
    let (old, new) = (id(), id());
    store.write_record(&record(&old, 10)).await.unwrap();
    store.write_record(&record(&new, 1)).await.unwrap();
    let ids: Vec<String> = store
        .records()
        .await
        .unwrap()
        .records
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, [new.clone(), old]);
    let checkpoint = Checkpoint {
        run_id: new.clone(),
        policy_digest: "p".into(),
        reference_time: Utc::now(),
        completed: ["a".to_string()].into(),
        written_at: Utc::now(),
        run_images: None,
    };
    store.write_checkpoint("r", &checkpoint).await.unwrap();
    assert_eq!(store.checkpoint("r").await.unwrap(), Some(checkpoint));
    store.clear_checkpoint("r").await.unwrap();
    assert_eq!(store.checkpoint("r").await.unwrap(), None);
}

#[tokio::test]
async fn every_operation_on_a_run_refuses_ids_the_handler_never_issues() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    // What `..` would reach from `runs/`: the store's root.
    std::fs::write(dir.path().join("state/record.json"), "{}").unwrap();
    let long = "x".repeat(5000);
    let refused = |result: Result<(), StoreError>, id: &str| {
        let error = result.expect_err(id);
        assert_eq!(error.kind, StoreErrorKind::InvalidRunId, "{id}: {error}");
        assert!(error.to_string().contains("not a run id"), "{error}");
        assert!(error.to_string().len() < 300, "{error}");
    };
    for bad in ["..", ".", "", "a/../b", long.as_str()] {
        refused(store.record(bad).await.map(drop), bad);
        refused(store.resolve(bad).await.map(drop), bad);
        refused(store.audit(bad).await.map(drop), bad);
        refused(
            store
                .append_audit(bad, &[line("a", None, "sha256:1")])
                .await,
            bad,
        );
        refused(store.write_plan(bad, "a", &1).await, bad);
        refused(store.plan::<u8>(bad, "a").await.map(drop), bad);
        refused(store.write_alias(bad, &id()).await, bad);
        refused(store.write_alias(&id(), bad).await, bad);
        refused(store.acquire("r", &holder(bad)).await.map(drop), bad);
        let record = RunRecord {
            id: bad.into(),
            registry: "r".into(),
            trigger: "cli".into(),
            policy_digest: "p".into(),
            dry_run: false,
            started_at: Utc::now(),
            ended_at: None,
            status: RunStatus::Running,
            summary: Counts::default(),
            error: None,
            held_by: None,
            invocations: Vec::new(),
        };
        refused(store.write_record(&record).await, bad);
        let checkpoint = Checkpoint {
            run_id: bad.into(),
            policy_digest: "p".into(),
            reference_time: Utc::now(),
            completed: Default::default(),
            written_at: Utc::now(),
            run_images: None,
        };
        refused(store.write_checkpoint("r", &checkpoint).await, bad);
    }
    // A checkpoint file naming such a run is refused when read.
    let folder = dir.path().join("state/registries/r");
    std::fs::create_dir_all(&folder).unwrap();
    let planted = serde_json::json!({
        "runId": "..", "policyDigest": "p", "referenceTime": Utc::now(),
        "completed": [], "writtenAt": Utc::now()
    });
    std::fs::write(folder.join("checkpoint.json"), planted.to_string()).unwrap();
    refused(store.checkpoint("r").await.map(drop), "checkpoint");
    // Nothing was written outside a run's folder.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("state/record.json")).unwrap(),
        "{}"
    );
}
