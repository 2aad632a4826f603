//! One purge for a trigger: the configured policy, optionally narrowed to some
//! repositories, through the same engine as `handler purge`.

use super::config::Config;
use super::protocol::LogLines;
use crate::durable;
use crate::launch::{self, Hooks, Invocation, Launch, Launched, Store};
use crate::plan::Scope;
use crate::policy::Policy;
use crate::report::RunReport;
use crate::report::text::Line;
use crate::run::{RunOptions, StopSignal};
use crate::saved::SavedPlan;
use crate::store::{RunStore, StoreError};
use crate::telemetry::RunContext;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// A finished run: its report and acr purge's lines.
#[derive(Debug)]
pub struct RunFinished {
    /// The report.
    pub report: RunReport,
    /// The text lines, in order.
    pub lines: Vec<String>,
}

/// Checks that every named repository is covered by some rule: a webhook may narrow the
/// policy, never widen it. Returns the first repository no rule covers.
pub fn uncovered(policy: &Policy, repositories: &[String]) -> Result<Option<String>, String> {
    let now = chrono::Utc::now();
    for repository in repositories {
        match Scope::new(policy, repository, now) {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(Some(repository.clone())),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(None)
}

/// What a run does.
#[derive(Debug, Clone)]
pub enum Job {
    /// The configured policy, narrowed to `only` when given.
    Purge {
        /// The repositories (`None`: every one the policy covers).
        only: Option<Vec<String>>,
    },
    /// A saved plan (checked for this registry and its age, with its policy).
    Apply {
        /// The plan.
        plan: Arc<SavedPlan>,
        /// Its policy, validated.
        policy: Arc<Policy>,
    },
}

/// What runs on this instance share for durability: the run store (opened once) and the
/// ids of the runs this instance is carrying out now.
#[derive(Default)]
pub struct Durability {
    store: tokio::sync::OnceCell<RunStore>,
    running: Mutex<HashSet<String>>,
}

impl Durability {
    /// The run store of `config`, opened on first use (a failure is retried next time).
    pub async fn store(&self, config: &Config) -> Result<&RunStore, StoreError> {
        self.store
            .get_or_try_init(|| async {
                let client_id = config.store_client_id.clone();
                let credential = move || {
                    let credential = match std::env::var_os(crate::settings::IDENTITY_ENDPOINT) {
                        Some(_) => crate::outbound::managed_identity(client_id),
                        None => crate::outbound::azure_credential(),
                    };
                    credential.map_err(|e| e.to_string())
                };
                RunStore::open(&config.store, credential).await
            })
            .await
    }

    /// Whether this instance is carrying out run `id` now.
    pub fn is_running_here(&self, id: &str) -> bool {
        self.running.lock().is_ok_and(|r| r.contains(id))
    }

    fn mark(&self, id: &str, running: bool) {
        if let Ok(mut set) = self.running.lock() {
            if running {
                set.insert(id.to_string());
            } else {
                set.remove(id);
            }
        }
    }
}

/// Runs `job` on the registry `context` names (the home registry when it is not one of
/// the fleet's), through the one launch path, recorded in the run store. A dry run of the
/// configured policy saves its plan in the store (`planDigest` in the report), for a later
/// `{"apply": digest}`.
pub async fn run(
    config: &Config,
    durability: &Durability,
    job: Job,
    stop: StopSignal,
    context: RunContext,
) -> RunFinished {
    let started = tokio::time::Instant::now();
    let member = config
        .member(&context.registry)
        .cloned()
        .unwrap_or_else(|| config.home());
    let store = match durability.store(config).await {
        Ok(store) => Store::Opened(store),
        Err(error) => Store::Unavailable(error.to_string()),
    };
    let (only, applying, policy) = match job {
        Job::Purge { only } => (only, None, Arc::new(member.policy.policy.clone())),
        Job::Apply { plan, policy } => (None, Some(plan), policy),
    };
    let reference_time = match &applying {
        Some(plan) => plan.reference_time,
        None => chrono::Utc::now(),
    };
    let options = RunOptions {
        dry_run: context.dry_run,
        concurrency: member.policy.concurrency,
        only,
        stop,
        reference_time: Some(reference_time),
        applying,
        deadline: config
            .function_timeout
            .map(|t| durable::stop_at(started, t)),
        max_deletions: member
            .policy
            .max_deletions
            .effective(Some(crate::policy::SCHEDULED_DEFAULT)),
        max_run_deletions: member
            .policy
            .max_run_deletions
            .effective(Some(crate::policy::RUN_SCHEDULED_DEFAULT)),
        ..RunOptions::default()
    };
    let request = Launch {
        trigger: context.trigger,
        endpoint: member.registry.clone(),
        credentials: None,
        policy,
        rate_card: member.policy.rate_card,
        options,
        logs_workspace: None,
        store,
        new_run: false,
        save_plan: true,
        invocation: Invocation {
            invocation_id: context.invocation_id,
            function_name: context.function_name,
            parent: context.parent,
            request_id: context.run_id,
        },
    };
    let mut lines = LogLines::default();
    let mut out = |line: String| {
        tracing::info!(target: crate::telemetry::OUTPUT_TARGET, "{line}");
        lines.push(line);
    };
    let mut run_id = None;
    let mut started_hook = |run: &durable::DurableRun| {
        durability.mark(run.id(), true);
        run_id = Some(run.id().to_string());
        if run.is_resumed() {
            tracing::info!(
                run_id = run.id(),
                invocation = run.invocation(),
                "resuming run"
            );
        }
    };
    let hooks = Hooks {
        connected: &mut |_| None,
        out: &mut out,
        finished: &mut |_| {},
        started: &mut started_hook,
    };
    let launched = launch::launch(request, hooks).await;
    if let Some(id) = &run_id {
        durability.mark(id, false);
    }
    match launched {
        Launched::Refused { report } => {
            let why = report
                .error
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            let line = Line::FailedToComplete(&why).to_string();
            tracing::error!("{line}");
            RunFinished {
                report,
                lines: vec![line],
            }
        }
        Launched::Busy { report, .. } | Launched::Ran { report, .. } => RunFinished {
            report,
            lines: lines.finish(),
        },
    }
}
