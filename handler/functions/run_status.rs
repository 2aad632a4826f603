//! The status of the runs started by the webhook that outlive its answer: `202` with a run id, then
//! `GET /api/purge/{runId}` for the status. Kept in memory per instance, with their full
//! report; a run this instance does not know is answered from the run store (its record),
//! which every instance shares (see `crate::durable`).
//!
//! A run is `queued`, then `running`, then `finished` (with its report, which says whether
//! the run succeeded) or `failed` (the run stopped without a report: its task died, or the
//! instance shut down before it started). At most [`MAX_KEPT_RUNS`] ended runs are
//! remembered; a queued or running run is never forgotten (there are at most seven: one
//! running and one pending per dry-run flag, see `queue`, and four applies, see `applies`).

use crate::report::RunReport;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

/// How many runs are remembered (ended runs are forgotten oldest first beyond this).
pub const MAX_KEPT_RUNS: usize = 50;

/// A run's state.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum RunState {
    /// Waiting for the run in flight to end.
    Queued,
    /// Going.
    Running,
    /// Done; the run succeeded or failed as the report says.
    Finished {
        /// The report.
        report: Box<RunReport>,
    },
    /// Stopped without a report.
    Failed {
        /// Why (details are in the logs).
        error: String,
    },
}

impl RunState {
    /// Whether the run is still queued or running.
    pub fn is_live(&self) -> bool {
        matches!(self, RunState::Queued | RunState::Running)
    }
}

/// The remembered runs.
#[derive(Debug, Default)]
pub struct RunStatuses {
    runs: Mutex<VecDeque<(String, RunState)>>,
}

impl RunStatuses {
    /// Registers a new queued run and returns its id.
    pub fn queue(&self) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let mut runs = self.lock();
        while runs.len() >= MAX_KEPT_RUNS {
            let Some(ended) = runs.iter().position(|(_, state)| !state.is_live()) else {
                break;
            };
            runs.remove(ended);
        }
        runs.push_back((id.clone(), RunState::Queued));
        id
    }

    /// Records a run's new state.
    pub fn set(&self, id: &str, state: RunState) {
        if let Some(entry) = self.lock().iter_mut().find(|(i, _)| i == id) {
            entry.1 = state;
        }
    }

    /// A run's state, if remembered.
    pub fn get(&self, id: &str) -> Option<RunState> {
        self.lock()
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, s)| s.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(String, RunState)>> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_runs_are_never_forgotten() {
        let runs = RunStatuses::default();
        let queued = runs.queue();
        let running = runs.queue();
        runs.set(&running, RunState::Running);
        let mut ended = Vec::new();
        for _ in 0..3 * MAX_KEPT_RUNS {
            let id = runs.queue();
            runs.set(
                &id,
                RunState::Failed {
                    error: "x".to_string(),
                },
            );
            ended.push(id);
        }
        assert!(matches!(runs.get(&queued), Some(RunState::Queued)));
        assert!(matches!(runs.get(&running), Some(RunState::Running)));
        assert!(runs.get(&ended[0]).is_none(), "old ended runs go");
        let last = ended.last().map(String::as_str).unwrap_or_default();
        assert!(runs.get(last).is_some());
        assert_eq!(runs.lock().len(), MAX_KEPT_RUNS);
    }

    #[test]
    fn states_serialise_with_their_status() {
        let json = |state: RunState| serde_json::to_value(state).unwrap();
        assert_eq!(json(RunState::Queued)["status"], "queued");
        assert_eq!(json(RunState::Running)["status"], "running");
        let failed = json(RunState::Failed {
            error: "boom".into(),
        });
        assert_eq!(failed["status"], "failed");
        assert_eq!(failed["error"], "boom");
    }
}
