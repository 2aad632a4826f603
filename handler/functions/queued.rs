//! Webhook runs accepted but not begun, in the run store: every instance answers
//! `GET /api/purge/{runId}` for them (`queued`), not only the one that queued them.
//!
//! When the webhook accepts a new run (a purge or an apply) its instance writes a record
//! with status `queued` under the run id it answers, before the run's task starts. When the
//! run begins, its own record (`running`, then how it ended) replaces that one under the
//! same id (or, when it resumed an unfinished run, the id names that run; see
//! [`crate::store::RunStore::resolve`]). A run that ends without beginning (refused apply,
//! task died, shutdown, store unreachable) has its queued record closed as `failed` with
//! why. A queued record whose instance died before either stays `queued`. Its trigger is
//! the webhook's (`webhook`, as its own record says once it begins; records written before
//! this release say `http`).

use crate::store::{RunRecord, RunStatus, RunStore};
use crate::telemetry::Trigger;
use chrono::Utc;

/// The policy digest recorded for a queued run (the run's own record has the real one).
const NOT_BEGUN: &str = "(not begun)";

/// Records run `id` as queued. A failure is logged and not fatal: the run itself needs the
/// store, and fails with its error if it is still unreachable.
pub async fn record(store: &RunStore, id: &str, registry: &str, dry_run: bool) {
    let record = RunRecord {
        id: id.to_string(),
        registry: registry.to_string(),
        trigger: Trigger::Webhook.as_str().to_string(),
        policy_digest: NOT_BEGUN.to_string(),
        dry_run,
        started_at: Utc::now(),
        ended_at: None,
        status: RunStatus::Queued,
        summary: Default::default(),
        error: None,
        held_by: None,
        invocations: Vec::new(),
    };
    if let Err(error) = store.write_record(&record).await {
        tracing::warn!(run_id = id, "the queued run could not be recorded: {error}");
    }
}

/// Closes run `id`'s record as failed with `why` if it is still queued (the run never
/// began). Failures are logged.
pub async fn close(store: &RunStore, id: &str, why: &str) {
    let record = match store.resolve(id).await {
        Ok(Some(record)) if record.status == RunStatus::Queued && record.id == id => record,
        Ok(_) => return,
        Err(error) => {
            tracing::warn!(
                run_id = id,
                "the queued run's record could not be read: {error}"
            );
            return;
        }
    };
    let now = Utc::now();
    let closed = RunRecord {
        status: RunStatus::Failed,
        ended_at: Some(now),
        error: Some(why.to_string()),
        ..record
    };
    if let Err(error) = store.write_record(&closed).await {
        tracing::warn!(
            run_id = id,
            "the queued run's record could not be closed: {error}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreLocation;

    async fn store() -> (tempfile::TempDir, RunStore) {
        let dir = tempfile::tempdir().unwrap();
        let location = StoreLocation::Dir(dir.path().to_path_buf());
        let store = RunStore::open(&location, || Err("no credential".to_string()))
            .await
            .unwrap();
        (dir, store)
    }

    /// A run id as the handler issues them.
    fn id() -> String {
        uuid::Uuid::new_v4().to_string()
    }

    #[tokio::test]
    async fn a_queued_run_is_closed_only_if_it_never_began() {
        let (_dir, store) = store().await;
        let (q1, q2) = (id(), id());
        record(&store, &q1, "r.azurecr.io", false).await;
        let queued = store.resolve(&q1).await.unwrap().unwrap();
        assert_eq!(queued.status, RunStatus::Queued);
        close(&store, &q1, "refused").await;
        let closed = store.resolve(&q1).await.unwrap().unwrap();
        assert_eq!(closed.status, RunStatus::Failed);
        assert_eq!(closed.error.as_deref(), Some("refused"));
        assert!(closed.ended_at.is_some());

        // Begun: its own record replaced the queued one; closing leaves it alone.
        record(&store, &q2, "r.azurecr.io", false).await;
        let began = RunRecord {
            status: RunStatus::Running,
            ..store.resolve(&q2).await.unwrap().unwrap()
        };
        store.write_record(&began).await.unwrap();
        close(&store, &q2, "x").await;
        assert_eq!(
            store.resolve(&q2).await.unwrap().unwrap().status,
            RunStatus::Running
        );
    }

    #[tokio::test]
    async fn a_queued_run_that_resumed_another_names_it() {
        let (_dir, store) = store().await;
        let (q3, old) = (id(), id());
        record(&store, &q3, "r.azurecr.io", false).await;
        let resumed = RunRecord {
            id: old.clone(),
            status: RunStatus::Running,
            ..store.resolve(&q3).await.unwrap().unwrap()
        };
        store.write_record(&resumed).await.unwrap();
        store.write_alias(&q3, &old).await.unwrap();
        assert_eq!(store.resolve(&q3).await.unwrap().unwrap().id, old);
        close(&store, &q3, "x").await;
        assert_eq!(
            store.resolve(&q3).await.unwrap().unwrap().status,
            RunStatus::Running,
            "the resumed run is not closed"
        );
    }
}
