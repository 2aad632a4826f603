//! Why a run failed or is partial, as a type: the exit code, the HTTP status given to the
//! Functions host, the span status and the `purge.failures` metric all come from the
//! variant; the text (`Display`) is made once, for a person, and is what the JSON report's
//! `error` holds.

use crate::policy::MatchError;
use crate::registry::RegistryError;
use serde::{Serialize, Serializer};
use std::fmt;

/// Why a repository could not be planned.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PlanError {
    /// A registry request failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A filter could not be evaluated (backtrack budget exhausted).
    #[error(transparent)]
    Match(#[from] MatchError),
}

impl PlanError {
    /// Whether the error must stop the whole run: only a registry that stopped answering
    /// (the circuit breaker). A permission error or a filter that cannot be evaluated
    /// concerns just the repository being planned: it is skipped and reported.
    pub fn is_fatal(&self) -> bool {
        match self {
            PlanError::Registry(e) => matches!(e, RegistryError::Unavailable { .. }),
            PlanError::Match(_) => false,
        }
    }

    /// Whether the identity lacks permission on the repository.
    pub fn is_denied(&self) -> bool {
        matches!(self, PlanError::Registry(e) if e.is_denied())
    }
}

/// A repository and why listing it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingFailure {
    /// The repository.
    pub repository: String,
    /// The error, as reported for the repository.
    pub error: String,
}

impl fmt::Display for ListingFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.repository, self.error)
    }
}

/// A repository whose plan the blast-radius guard refused (`--max-deletions`): nothing in
/// it was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The repository.
    pub repository: String,
    /// The limit (`5`, `50%`).
    pub limit: String,
    /// Tagged images the plan would have taken away.
    pub count: u64,
    /// Tagged images in the repository.
    pub total: u64,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: the plan takes away {} of its {} tagged images, over --max-deletions {}; nothing in it was deleted (--max-deletions none, or maxDeletions null, lifts the limit)",
            self.repository, self.count, self.total, self.limit
        )
    }
}

/// A run whose plans together the run's guard refused (`--max-run-deletions`): nothing in
/// it was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRefusal {
    /// The limit (`5`, `50%`).
    pub limit: String,
    /// Tagged images the run's plans would have taken away (with what earlier invocations
    /// of a resumed run took away).
    pub count: u64,
    /// Tagged images the run covers.
    pub total: u64,
}

impl fmt::Display for RunRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the run's plans take away {} of the {} tagged images it covers, over --max-run-deletions {}; nothing was deleted (--max-run-deletions none, or maxRunDeletions null, lifts the limit)",
            self.count, self.total, self.limit
        )
    }
}

/// What made a completed run partial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A repository could not be listed; nothing was deleted in it.
    ListingFailed(ListingFailure),
    /// The identity may not delete in a repository (an ABAC registry or a scope-map token
    /// without that repository); its remaining deletions were not attempted.
    Denied {
        /// The repository.
        repository: String,
        /// The error.
        error: String,
    },
    /// Some deletions in a repository failed.
    DeletionsFailed {
        /// The repository.
        repository: String,
        /// How many.
        count: u64,
    },
    /// The blast-radius guard refused a repository's plan.
    OverDeletionLimit(Refusal),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::ListingFailed(failure) => failure.fmt(f),
            Problem::Denied { repository, error } => {
                write!(f, "{repository}: insufficient permissions: {error}")
            }
            Problem::DeletionsFailed { repository, count } => {
                write!(f, "{repository}: {count} deletion(s) failed")
            }
            Problem::OverDeletionLimit(refusal) => refusal.fmt(f),
        }
    }
}

/// Where a run stopped: the repositories done and those left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Repositories completely executed.
    pub completed: Vec<String>,
    /// Repositories not executed.
    pub remaining: Vec<String>,
}

/// Why a run failed or is partial.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunError {
    /// Connecting or signing in failed before anything was listed.
    #[error("{0}")]
    Connect(RegistryError),
    /// The catalog could not be listed.
    #[error("{0}")]
    Catalog(RegistryError),
    /// A repository regex could not be evaluated against a repository name.
    #[error("{0}")]
    Filter(MatchError),
    /// No repository could be listed.
    #[error("every repository failed to list: {}", join(.0))]
    EveryRepositoryFailed(Vec<ListingFailure>),
    /// Permission errors in repository after repository, with nothing deleted anywhere,
    /// stopped the run: the identity lacks the rights the purge needs.
    #[error(
        "insufficient permissions to purge repository {repository:?}: {error}; completed: [{}]; remaining: [{}]",
        progress.completed.join(", "),
        progress.remaining.join(", ")
    )]
    Denied {
        /// The repository being purged.
        repository: String,
        /// The error.
        error: RegistryError,
        /// What was done and what was left.
        progress: Progress,
    },
    /// The registry stopped answering while deleting (the circuit breaker opened).
    #[error(
        "stopped while purging repository {repository:?}: {error}; completed: [{}]; remaining: [{}]",
        progress.completed.join(", "),
        progress.remaining.join(", ")
    )]
    RegistryGone {
        /// The repository being purged.
        repository: String,
        /// The error.
        error: RegistryError,
        /// What was done and what was left.
        progress: Progress,
    },
    /// Shutdown (SIGTERM) stopped the run between repositories.
    #[error(
        "stopped before completion (shutting down); completed: [{}]; not reached: [{}]",
        .0.completed.join(", "),
        .0.remaining.join(", ")
    )]
    Shutdown(Progress),
    /// The run reached its deadline (`--deadline`, the host's `functionTimeout`) and
    /// stopped cleanly before it; a durable run resumes from its checkpoint.
    #[error(
        "stopped before its deadline, to be resumed; completed: [{}]; not reached: [{}]",
        .0.completed.join(", "),
        .0.remaining.join(", ")
    )]
    Deadline(Progress),
    /// The run store could not record the run's progress, so it stopped.
    #[error(
        "stopped: the run store failed ({error}); completed: [{}]; not reached: [{}]",
        progress.completed.join(", "),
        progress.remaining.join(", ")
    )]
    Unrecorded {
        /// The store's error.
        error: String,
        /// What was done and what was left.
        progress: Progress,
    },
    /// In-use protection is on, but the workloads could not be read (fully): nothing was
    /// deleted, as deleting an image a workload runs cannot be ruled out.
    #[error(
        "in-use protection could not read which images Azure workloads run, so nothing was deleted: {0}"
    )]
    InUseUnknown(String),
    /// The run store could not be opened or the run could not begin in it, so nothing was
    /// purged (a real run never purges without its lease and its records).
    #[error("the run store is unavailable, so nothing was purged: {0}")]
    StoreUnavailable(String),
    /// Another run holds the registry's lease: this one did nothing.
    #[error("skipped: {} is purging {registry} now", holder.as_ref().map_or_else(|| "another run".to_string(), |h| format!("run {h}")))]
    Busy {
        /// The registry.
        registry: String,
        /// The run holding it, if known.
        holder: Option<String>,
    },
    /// The run completed, but some repositories or deletions failed.
    #[error("partial purge: {}", join(.0))]
    Partial(Vec<Problem>),
    /// A dry run could not list some repositories, so its plan is incomplete.
    #[error("partial dry run: {}", join(.0))]
    PartialDryRun(Vec<ListingFailure>),
    /// The blast-radius guard refused some repositories' plans (`--max-deletions`), and
    /// nothing else went wrong: the rest was purged (or, in a dry run, planned).
    #[error("refused by the deletion limit: {}", join(.0))]
    OverDeletionLimit(Vec<Refusal>),
    /// The run's guard refused the run's plans together (`--max-run-deletions`): nothing
    /// at all was deleted.
    #[error("refused by the run's deletion limit: {0}")]
    OverRunDeletionLimit(RunRefusal),
}

fn join(items: &[impl fmt::Display]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// How much of its plan a failed run carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// It stopped: nothing, or only the repositories it reports completed, was done.
    Stopped,
    /// It went through, but some repositories or deletions failed.
    Partial,
    /// It stopped cleanly at its deadline, with what it did recorded: the next run of the
    /// same policy carries on.
    Resumable,
}

/// The exit code of a run that stopped at its deadline and can be resumed.
pub const EXIT_RESUMABLE: u8 = 3;

impl RunError {
    /// How much of the run was carried out; the exit code and the HTTP status follow.
    pub fn extent(&self) -> Extent {
        match self {
            RunError::Connect(_)
            | RunError::Catalog(_)
            | RunError::Filter(_)
            | RunError::EveryRepositoryFailed(_)
            | RunError::Denied { .. }
            | RunError::RegistryGone { .. }
            | RunError::Shutdown(_)
            | RunError::Unrecorded { .. }
            | RunError::StoreUnavailable(_)
            | RunError::InUseUnknown(_)
            | RunError::OverRunDeletionLimit(_)
            | RunError::Busy { .. } => Extent::Stopped,
            RunError::Deadline(_) => Extent::Resumable,
            RunError::Partial(_) | RunError::PartialDryRun(_) | RunError::OverDeletionLimit(_) => {
                Extent::Partial
            }
        }
    }

    /// The command line's exit code: 1, failed or partial, as acr purge (2 is for bad
    /// arguments, which never reach a run); 3, incomplete and resumable.
    pub fn exit_code(&self) -> u8 {
        match self.extent() {
            Extent::Stopped | Extent::Partial => 1,
            Extent::Resumable => EXIT_RESUMABLE,
        }
    }

    /// The HTTP status answered to the Functions host: 500, a failed invocation, so that
    /// the host's retries and alerts see it, whether the run stopped or was partial; 200
    /// for a run that stopped at its deadline as planned (its record says `incomplete`);
    /// 409 for a run skipped because another run holds the registry.
    pub fn http_status(&self) -> u16 {
        if matches!(self, RunError::Busy { .. }) {
            return 409;
        }
        match self.extent() {
            Extent::Stopped | Extent::Partial => 500,
            Extent::Resumable => 200,
        }
    }

    /// What `purge.failures` counts for the run itself beyond its failed items: 0 when
    /// failed deletions alone explain it (they are counted one by one), else 1.
    pub fn run_failures(&self) -> u64 {
        match self {
            RunError::Partial(problems) => u64::from(problems.iter().any(|p| {
                matches!(
                    p,
                    Problem::ListingFailed(_)
                        | Problem::Denied { .. }
                        | Problem::OverDeletionLimit(_)
                )
            })),
            RunError::Connect(_)
            | RunError::Catalog(_)
            | RunError::Filter(_)
            | RunError::EveryRepositoryFailed(_)
            | RunError::Denied { .. }
            | RunError::RegistryGone { .. }
            | RunError::Shutdown(_)
            | RunError::Deadline(_)
            | RunError::Unrecorded { .. }
            | RunError::InUseUnknown(_)
            | RunError::StoreUnavailable(_)
            | RunError::Busy { .. }
            | RunError::PartialDryRun(_)
            | RunError::OverDeletionLimit(_)
            | RunError::OverRunDeletionLimit(_) => 1,
        }
    }
}

/// The JSON report's `error` is the text.
impl Serialize for RunError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_fails_the_run_names_the_repository_and_reads_as_a_line() {
        let refusal = Refusal {
            repository: "app".into(),
            limit: "50%".into(),
            count: 9,
            total: 10,
        };
        let alone = RunError::OverDeletionLimit(vec![refusal.clone()]);
        assert_eq!(
            alone.to_string(),
            "refused by the deletion limit: app: the plan takes away 9 of its 10 tagged images, over --max-deletions 50%; nothing in it was deleted (--max-deletions none, or maxDeletions null, lifts the limit)"
        );
        // Exit 1 and HTTP 500 (a failed invocation, so the failed-run alert fires), and a
        // run failure of its own for `purge.failures`.
        assert_eq!((alone.exit_code(), alone.http_status()), (1, 500));
        assert_eq!(alone.run_failures(), 1);
        let mixed = RunError::Partial(vec![
            Problem::DeletionsFailed {
                repository: "lib".into(),
                count: 2,
            },
            Problem::OverDeletionLimit(refusal.clone()),
        ]);
        assert_eq!((mixed.exit_code(), mixed.http_status()), (1, 500));
        assert_eq!(mixed.run_failures(), 1);
        assert_eq!(
            crate::report::text::Line::Refused(&refusal).to_string(),
            format!("Refused to purge repository {refusal}")
        );
    }

    #[test]
    fn a_run_refusal_fails_the_run_and_names_the_limit_and_the_count() {
        let refusal = RunRefusal {
            limit: "50%".into(),
            count: 12,
            total: 20,
        };
        let error = RunError::OverRunDeletionLimit(refusal);
        assert_eq!(
            error.to_string(),
            "refused by the run's deletion limit: the run's plans take away 12 of the 20 tagged images it covers, over --max-run-deletions 50%; nothing was deleted (--max-run-deletions none, or maxRunDeletions null, lifts the limit)"
        );
        assert_eq!((error.exit_code(), error.http_status()), (1, 500));
        assert_eq!(error.run_failures(), 1);
    }

    #[test]
    fn texts_stay_as_they_were() {
        let progress = Progress {
            completed: vec!["a".into()],
            remaining: vec!["c".into(), "d".into()],
        };
        let denied = RunError::Denied {
            repository: "b".into(),
            error: RegistryError::Denied {
                context: "deleting tag b:v1".into(),
                status: 403,
            },
            progress: progress.clone(),
        };
        assert_eq!(
            denied.to_string(),
            "insufficient permissions to purge repository \"b\": deleting tag b:v1: permission denied (HTTP 403); completed: [a]; remaining: [c, d]"
        );
        assert_eq!(
            RunError::Shutdown(progress).to_string(),
            "stopped before completion (shutting down); completed: [a]; not reached: [c, d]"
        );
        let partial = RunError::Partial(vec![
            Problem::ListingFailed(ListingFailure {
                repository: "x".into(),
                error: "HTTP 500".into(),
            }),
            Problem::DeletionsFailed {
                repository: "y".into(),
                count: 2,
            },
        ]);
        assert_eq!(
            partial.to_string(),
            "partial purge: x: HTTP 500; y: 2 deletion(s) failed"
        );
        assert_eq!(serde_json::to_value(&partial).unwrap(), partial.to_string());
    }

    #[test]
    fn failed_items_alone_do_not_count_the_run_as_a_failure_again() {
        let items = RunError::Partial(vec![Problem::DeletionsFailed {
            repository: "y".into(),
            count: 2,
        }]);
        assert_eq!(items.run_failures(), 0);
        let listing = RunError::PartialDryRun(vec![ListingFailure {
            repository: "x".into(),
            error: "e".into(),
        }]);
        assert_eq!(listing.run_failures(), 1);
        assert_eq!((listing.exit_code(), listing.http_status()), (1, 500));
    }
}
