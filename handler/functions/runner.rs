//! One purge for a trigger: the configured policy, optionally narrowed to some
//! repositories, through the same engine as `handler purge`.

use super::config::Config;
use super::protocol::LogLines;
use crate::durable::{self, Driven};
use crate::plan::Scope;
use crate::policy::Policy;
use crate::registry::{ClientOptions, RegistryClient};
use crate::report::text::Line;
use crate::report::{RunError, RunReport};
use crate::run::{RunOptions, StopSignal};
use crate::saved::{SavedPlan, SavedRepository};
use crate::store::{RunStore, StoreError};
use crate::telemetry::{RunContext, finish_run, run_span};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tracing::Instrument;

/// A finished run: its report and acr purge's lines.
#[derive(Debug)]
pub struct Finished {
    /// The report.
    pub report: RunReport,
    /// The text lines, in order.
    pub lines: Vec<String>,
}

/// Checks that every named repository is covered by some rule: a webhook may narrow the
/// policy, never widen it. Returns the first repository no rule covers.
pub fn uncovered(config: &Config, repositories: &[String]) -> Result<Option<String>, String> {
    let now = chrono::Utc::now();
    for repository in repositories {
        match Scope::new(&config.policy.policy, repository, now) {
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

/// Runs `job` under the run's root span, recorded in the run store. A dry run of the
/// configured policy saves its plan in the store (`planDigest` in the report), for a later
/// `{"apply": digest}`.
pub async fn run(
    config: &Config,
    durability: &Durability,
    job: Job,
    stop: StopSignal,
    context: RunContext,
) -> Finished {
    let started = tokio::time::Instant::now();
    let span = run_span(&context);
    let finished = run_in_span(config, durability, job, stop, &context, started)
        .instrument(span.clone())
        .await;
    finish_run(&span, &context, &finished.report);
    finished
}

fn failed(config: &Config, dry_run: bool, error: RunError) -> Finished {
    let line = Line::FailedToComplete(&error.to_string()).to_string();
    tracing::error!("{line}");
    Finished {
        report: RunReport::failed(config.registry.host(), dry_run, error),
        lines: vec![line],
    }
}

async fn run_in_span(
    config: &Config,
    durability: &Durability,
    job: Job,
    stop: StopSignal,
    context: &RunContext,
    started: tokio::time::Instant,
) -> Finished {
    let dry_run = context.dry_run;
    let concurrency = config.policy.concurrency;
    let client_options = ClientOptions {
        concurrency,
        abac_batch_size: crate::settings::abac_batch_size(ClientOptions::default().abac_batch_size),
        rate_card: config.policy.rate_card,
        ..ClientOptions::default()
    };
    let client = match RegistryClient::connect(config.registry.clone(), None, client_options).await
    {
        Ok(client) => client,
        Err(error) => return failed(config, dry_run, RunError::Connect(error)),
    };
    let store = match durability.store(config).await {
        Ok(store) => store,
        Err(error) => {
            return failed(
                config,
                dry_run,
                RunError::StoreUnavailable(error.to_string()),
            );
        }
    };
    let (only, applying, policy) = match job {
        Job::Purge { only } => (only, None, Arc::new(config.policy.policy.clone())),
        Job::Apply { plan, policy } => (None, Some(plan), policy),
    };
    let key = match &applying {
        Some(plan) => Some(vec![plan.digest().to_string()]),
        None => only.clone(),
    };
    let request = durable::Request {
        registry: client.endpoint().host().to_string(),
        policy_digest: durable::policy_digest(policy.as_ref(), key.as_deref(), dry_run),
        dry_run,
        trigger: context.trigger.as_str().to_string(),
        new_run: false,
        request_id: context.run_id.clone(),
    };
    let reference_time = match &applying {
        Some(plan) => plan.reference_time,
        None => chrono::Utc::now(),
    };
    if let Some(plan) = &applying {
        crate::telemetry::record_plan_digest(&tracing::Span::current(), plan.digest());
    }
    let saving = dry_run && applying.is_none();
    let sources = match crate::run::evidence::Sources::for_run(&policy, None) {
        Ok(sources) => sources,
        Err(error) => return failed(config, dry_run, *error),
    };
    let options = RunOptions {
        dry_run,
        concurrency,
        only,
        stop,
        reference_time: Some(reference_time),
        applying,
        sources,
        deadline: config
            .function_timeout
            .map(|t| durable::stop_at(started, t)),
        max_deletions: config
            .policy
            .max_deletions
            .effective(Some(crate::policy::SCHEDULED_DEFAULT)),
        ..RunOptions::default()
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
    let mut collected = Vec::new();
    let mut collect = |repo: &crate::report::RepositoryReport| {
        if saving {
            collected.push(SavedRepository::from_report(repo));
        }
    };
    let hooks = durable::Hooks {
        out: &mut out,
        finished: &mut collect,
        started: &mut started_hook,
    };
    let driven = durable::drive(store, request, &client, &policy, options, hooks).await;
    if let Some(id) = &run_id {
        durability.mark(id, false);
    }
    match driven {
        Err(error) => failed(
            config,
            dry_run,
            RunError::StoreUnavailable(error.to_string()),
        ),
        Ok(Driven::Busy { record, holder }) => {
            let error = RunError::Busy {
                registry: record.registry.clone(),
                holder: holder.map(|h| h.run_id),
            };
            tracing::warn!(run_id = record.id, "{error}");
            Finished {
                report: RunReport::failed(config.registry.host(), dry_run, error),
                lines: lines.finish(),
            }
        }
        Ok(Driven::Ran {
            mut report,
            record,
            run_id,
            ..
        }) => {
            if let Err(error) = record {
                tracing::error!(run_id, "the run's record could not be written: {error}");
            }
            if saving && report.error.is_none() {
                let plan = SavedPlan::seal(
                    &report.registry,
                    reference_time,
                    &policy,
                    Some(report.summary.storage),
                    collected,
                );
                match store.write_saved_plan(&plan).await {
                    Ok(()) => {
                        crate::telemetry::record_plan_digest(
                            &tracing::Span::current(),
                            plan.digest(),
                        );
                        report.plan_digest = Some(plan.digest().to_string());
                    }
                    Err(error) => tracing::error!(run_id, "the plan could not be saved: {error}"),
                }
            }
            Finished {
                report,
                lines: lines.finish(),
            }
        }
    }
}
