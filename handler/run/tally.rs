//! How each repository ended ([`Ending`]) and, tallied over the run ([`Tally`]), which
//! [`RunError`] the run ends with.

use super::JournalError;
use crate::plan::{KeepReason, Verdict};
use crate::registry::RegistryError;
use crate::report::{
    ListingFailure, Outcome, PlanError, Problem, Progress, Refusal, RepositoryReport,
    RepositoryStatus, RunError, RunRefusal,
};

/// Repositories with permission errors, while nothing was deleted anywhere, that stop the
/// run.
pub const DENIED_REPOSITORIES_TO_STOP: usize = 5;

/// How one repository ended, for the run's verdict.
pub(super) enum Ending {
    /// Planned (and executed, in a real run) to the end.
    Completed,
    /// Not started: the run was stopping.
    NotReached,
    /// Started, but the run stopped before all its deletions were attempted.
    Interrupted,
    /// Listing or planning failed: skipped, nothing deleted in it.
    NotPlanned {
        denied: bool,
        fatal: Option<PlanError>,
    },
    /// Executing hit a permission error (its remaining deletions were not attempted) or
    /// a registry that stopped answering.
    Stopped(RegistryError),
    /// The journal could not record it (nothing in it was deleted if its plan was not
    /// recorded): the run stops.
    Unrecorded(JournalError),
}

/// Tallies how the repositories ended and decides the run's error.
#[derive(Default)]
pub(super) struct Tally {
    completed: Vec<String>,
    remaining: Vec<String>,
    problems: Vec<Problem>,
    listing_failures: Vec<ListingFailure>,
    refusals: Vec<Refusal>,
    /// The run's guard refused every plan (`--max-run-deletions`).
    pub(super) run_refusal: Option<RunRefusal>,
    denied: usize,
    deleted_anything: bool,
    /// The first error that stops the run, with its repository.
    stopper: Option<(String, RunErrorKind, RegistryError)>,
    /// The journal's first failure, which stops the run.
    pub(super) unrecorded: Option<JournalError>,
}

#[derive(Clone, Copy)]
enum RunErrorKind {
    Denied,
    Gone,
}

impl Tally {
    pub(super) fn record(&mut self, repo: &RepositoryReport, ending: Ending, deleted_here: bool) {
        let name = repo.repository.clone();
        self.deleted_anything |= deleted_here;
        if let Some(refusal) = repository_refusal(repo) {
            self.problems
                .push(Problem::OverDeletionLimit(refusal.clone()));
            self.refusals.push(refusal);
        }
        match ending {
            Ending::Completed => {
                let failed = repo
                    .items()
                    .filter(|i| matches!(i.outcome(), Some(Outcome::Failed { .. })))
                    .count() as u64;
                if failed > 0 {
                    self.problems.push(Problem::DeletionsFailed {
                        repository: name.clone(),
                        count: failed,
                    });
                }
                if matches!(repo.status, RepositoryStatus::Done) {
                    self.completed.push(name);
                }
            }
            Ending::NotReached | Ending::Interrupted => self.remaining.push(name),
            Ending::Unrecorded(error) => {
                self.remaining.push(name);
                self.unrecorded.get_or_insert(error);
            }
            Ending::NotPlanned { denied, fatal } => {
                if let RepositoryStatus::Failed { error } = &repo.status {
                    let failure = ListingFailure {
                        repository: name.clone(),
                        error: error.clone(),
                    };
                    self.listing_failures.push(failure.clone());
                    self.problems.push(Problem::ListingFailed(failure));
                }
                if denied {
                    self.denied += 1;
                }
                if let Some(PlanError::Registry(error)) = fatal {
                    self.stop_with(name, RunErrorKind::Gone, error);
                } else if denied && self.too_many_denials() {
                    let error = RegistryError::Auth(
                        "permission denied in every repository tried".to_string(),
                    );
                    self.stop_with(name, RunErrorKind::Denied, error);
                }
            }
            Ending::Stopped(error) => {
                if error.is_denied() {
                    self.denied += 1;
                    self.problems.push(Problem::Denied {
                        repository: name.clone(),
                        error: error.to_string(),
                    });
                    if self.too_many_denials() {
                        self.stop_with(name, RunErrorKind::Denied, error);
                    }
                } else {
                    self.stop_with(name, RunErrorKind::Gone, error);
                }
            }
        }
    }

    fn too_many_denials(&self) -> bool {
        self.denied >= DENIED_REPOSITORIES_TO_STOP && !self.deleted_anything
    }

    fn stop_with(&mut self, repository: String, kind: RunErrorKind, error: RegistryError) {
        if self.stopper.is_none() {
            self.stopper = Some((repository, kind, error));
        }
    }

    pub(super) fn must_stop(&self) -> bool {
        self.stopper.is_some() || self.unrecorded.is_some()
    }

    pub(super) fn error(
        self,
        dry_run: bool,
        total: usize,
        past_deadline: bool,
    ) -> Option<RunError> {
        let mut remaining = self.remaining;
        remaining.sort();
        let mut completed = self.completed;
        completed.sort();
        let progress = Progress {
            completed,
            remaining,
        };
        if let Some((repository, kind, error)) = self.stopper {
            return Some(match kind {
                RunErrorKind::Denied => RunError::Denied {
                    repository,
                    error,
                    progress,
                },
                RunErrorKind::Gone => RunError::RegistryGone {
                    repository,
                    error,
                    progress,
                },
            });
        }
        if let Some(error) = self.unrecorded {
            return Some(RunError::Unrecorded {
                error: error.to_string(),
                progress,
            });
        }
        if let Some(refusal) = self.run_refusal {
            // Nothing at all was deleted: this says why, whatever else went wrong.
            return Some(RunError::OverRunDeletionLimit(refusal));
        }
        if !progress.remaining.is_empty() {
            return Some(if past_deadline {
                RunError::Deadline(progress)
            } else {
                RunError::Shutdown(progress)
            });
        }
        let mut failures = self.listing_failures;
        failures.sort_by(|a, b| a.repository.cmp(&b.repository));
        if !failures.is_empty() && failures.len() == total {
            return Some(RunError::EveryRepositoryFailed(failures));
        }
        let mut refusals = self.refusals;
        refusals.sort_by(|a, b| a.repository.cmp(&b.repository));
        if dry_run {
            // A preview that could not see every repository is incomplete, as a real run
            // would be: it fails the same way (exit 1, HTTP 500). A preview the guard
            // refuses fails as the real run would.
            if !failures.is_empty() {
                return Some(RunError::PartialDryRun(failures));
            }
            return (!refusals.is_empty()).then_some(RunError::OverDeletionLimit(refusals));
        }
        let mut problems = self.problems;
        if problems.len() == refusals.len() && !refusals.is_empty() {
            return Some(RunError::OverDeletionLimit(refusals));
        }
        problems.sort_by_key(problem_repository);
        (!problems.is_empty()).then_some(RunError::Partial(problems))
    }
}

fn problem_repository(problem: &Problem) -> String {
    match problem {
        Problem::ListingFailed(failure) => failure.repository.clone(),
        Problem::Denied { repository, .. } | Problem::DeletionsFailed { repository, .. } => {
            repository.clone()
        }
        Problem::OverDeletionLimit(refusal) => refusal.repository.clone(),
    }
}

/// The guard's refusal of a repository, read from its items.
fn repository_refusal(repo: &RepositoryReport) -> Option<Refusal> {
    repo.items().find_map(|item| match item.verdict() {
        Verdict::Keep { reason } => refusal_of(&repo.repository, reason),
        _ => None,
    })
}

/// The refusal a [`KeepReason::OverDeletionLimit`] stands for.
pub(super) fn refusal_of(repository: &str, reason: &KeepReason) -> Option<Refusal> {
    match reason {
        KeepReason::OverDeletionLimit(over) => Some(Refusal {
            repository: repository.to_string(),
            limit: over.limit.clone(),
            count: over.count,
            total: over.total,
        }),
        _ => None,
    }
}
