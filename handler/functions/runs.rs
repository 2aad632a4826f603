//! Runs started by the webhook that outlive its answer: `202` with a run id, then
//! `GET /api/purge/{runId}` for the status. Kept in memory per instance (a Flex instance
//! may be recycled; the report also goes to the logs and telemetry), at most
//! [`MAX_KEPT_RUNS`] of them.

use crate::report::RunReport;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;

/// How many finished or running runs are remembered.
pub const MAX_KEPT_RUNS: usize = 50;

/// A run's state.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum RunState {
    /// Still going.
    Running,
    /// Done; the run succeeded or failed as the report says.
    Finished {
        /// The report.
        report: Box<RunReport>,
    },
}

/// The remembered runs.
#[derive(Debug, Default)]
pub struct Runs {
    runs: Mutex<VecDeque<(String, RunState)>>,
}

impl Runs {
    /// Registers a new running run and returns its id.
    pub fn start(&self) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        if let Ok(mut runs) = self.runs.lock() {
            if runs.len() >= MAX_KEPT_RUNS {
                runs.pop_front();
            }
            runs.push_back((id.clone(), RunState::Running));
        }
        id
    }

    /// Records a run's report.
    pub fn finish(&self, id: &str, report: RunReport) {
        if let Ok(mut runs) = self.runs.lock()
            && let Some(entry) = runs.iter_mut().find(|(i, _)| i == id)
        {
            entry.1 = RunState::Finished {
                report: Box::new(report),
            };
        }
    }

    /// A run's state, if remembered.
    pub fn get(&self, id: &str) -> Option<RunState> {
        self.runs
            .lock()
            .ok()?
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, s)| s.clone())
    }
}
