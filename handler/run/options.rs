//! How to run ([`RunOptions`]).

use super::{StopSignal, Tracker, gather};
use crate::saved::SavedPlan;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::sync::Arc;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Plan only; send no DELETE or PATCH.
    pub dry_run: bool,
    /// Requests of each kind in flight at most (`--concurrency`); also how many repositories are
    /// processed side by side.
    pub concurrency: usize,
    /// Catalog page size (`--repository-page-size`).
    pub repository_page_size: usize,
    /// Only these repositories (the webhook narrows runs this way); `None` for all.
    pub only: Option<Vec<String>>,
    /// Stops the run cleanly: nothing new starts.
    pub stop: StopSignal,
    /// When the run must have stopped: from then on nothing new starts, and a listing
    /// under way is abandoned. The run then ends with
    /// [`RunError::Deadline`](crate::report::RunError::Deadline).
    pub deadline: Option<tokio::time::Instant>,
    /// Repositories an earlier invocation of this run completed: not listed again.
    pub done: BTreeSet<String>,
    /// The time ages are measured from (`None`: now). A resumed run passes its first
    /// invocation's.
    pub reference_time: Option<DateTime<Utc>>,
    /// A saved plan to apply: only its repositories with deletions are read, and only what
    /// it deletes exactly as planned is deleted ([`crate::saved::reconcile`]). The policy
    /// and reference time passed with it must be the plan's.
    pub applying: Option<Arc<SavedPlan>>,
    /// Read the bodies of every manifest of a repository where manifests are removed, to
    /// count the storage freed ([`crate::report::storage`]); off: `--no-storage`, acr
    /// purge's requests exactly.
    pub count_storage: bool,
    /// Count as freed only the blobs no repository of the registry references any more
    /// (`--exact-storage`): every other repository's manifests are read as well.
    pub exact_storage: bool,
    /// Progress counters, for a progress display.
    pub tracker: Tracker,
    /// One repository at a time instead of `concurrency` side by side, each finished
    /// (listed, planned, its deletions done) before the next is listed: a durable run whose
    /// previous invocation made no progress narrows to this, so that every invocation ends
    /// with more done than it started with, however short.
    pub focus: bool,
    /// Where in-use images and pulls are read, when the policy needs them.
    pub sources: Option<Arc<gather::Sources>>,
    /// The deployment history `keepDeployed` ranks by, as read before the run; the run
    /// returns it updated with what is in use now ([`super::RunOutput`]).
    pub deploy_history: Arc<gather::DeployHistory>,
    /// The blast-radius guard (`--max-deletions`): a repository whose plan takes away more
    /// tagged images than this deletes nothing, and the run fails naming it
    /// ([`crate::plan::guard`]). `None`: no limit.
    pub max_deletions: Option<crate::policy::DeletionLimit>,
    /// The guard over the whole run (`--max-run-deletions`): when set, every repository is
    /// planned before anything is deleted, and a run whose plans together take away more
    /// tagged images than this deletes nothing at all ([`crate::plan::guard::over_run_limit`]).
    /// `None`: no limit, and repositories are pipelined.
    pub max_run_deletions: Option<crate::policy::DeletionLimit>,
    /// Tagged images earlier invocations of a resumed run took away (from its audit log):
    /// counted against `max_run_deletions`.
    pub taken_before: u64,
    /// The tagged images a resumed run covered when its first invocation decided
    /// `max_run_deletions` (from its checkpoint): a share is measured against it.
    pub run_images: Option<u64>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            dry_run: false,
            concurrency: crate::registry::Concurrency::DEFAULT.get(),
            repository_page_size: 100,
            only: None,
            stop: StopSignal::default(),
            deadline: None,
            done: BTreeSet::new(),
            reference_time: None,
            applying: None,
            count_storage: true,
            exact_storage: false,
            tracker: Tracker::default(),
            focus: false,
            sources: None,
            deploy_history: Arc::default(),
            max_deletions: None,
            max_run_deletions: None,
            taken_before: 0,
            run_images: None,
        }
    }
}
