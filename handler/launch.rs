//! One launch path for every trigger: the command line (`handler purge`, `handler apply`),
//! the timer, the webhook and the fleet queue all hand a typed [`Launch`] to [`launch`],
//! which connects, gathers the evidence sources, records the run in the run store (its
//! durable request and key), drives the engine under the run's root span, seals a dry run's
//! plan, and returns what happened as a [`Launched`]. The adapters only render it.
//!
//! The run's [`Trigger`] is given once: the run store records [`Trigger::as_str`] and the
//! span carries the same name (`purge.trigger`) next to its `faas.trigger` class.

use crate::durable::{self, Driven, DurableRun};
use crate::policy::Policy;
use crate::registry::{ClientOptions, Credentials, Endpoint, RegistryClient};
use crate::report::{RepositoryReport, RunError, RunReport};
use crate::run::{RunOptions, Tracker};
use crate::saved::{SavedPlan, SavedRepository};
use crate::store::Holder;
use crate::store::{RunRecord, RunStore};
use crate::telemetry::{self, RunContext, finish_run, run_span};
use std::sync::Arc;
use tracing::Instrument;

pub use crate::telemetry::Trigger;

/// Who asked for the run, for its span (all optional: the command line has none of them).
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// The host's invocation id.
    pub invocation_id: Option<String>,
    /// The function (`PurgeTimer`, `PurgeHttp`, `PurgeQueue`).
    pub function_name: Option<String>,
    /// An incoming W3C trace context to continue.
    pub parent: Option<opentelemetry::Context>,
    /// The id the caller already knows the run by (the webhook's `runId`).
    pub request_id: Option<String>,
}

/// Where the run is recorded.
pub enum Store<'a> {
    /// Nowhere (`--no-state`): no lease, no resumption.
    Stateless,
    /// This run store.
    Opened(&'a RunStore),
    /// The run store could not be opened: nothing is purged.
    Unavailable(String),
}

/// A typed request to purge one registry.
pub struct Launch<'a> {
    /// What started it.
    pub trigger: Trigger,
    /// The registry.
    pub endpoint: Endpoint,
    /// `-u/-p`, when given (else the registry's challenge decides).
    pub credentials: Option<Credentials>,
    /// The policy (a saved plan's own policy when applying).
    pub policy: Arc<Policy>,
    /// The request budgets to pace to.
    pub rate_card: crate::registry::RateCard,
    /// How the engine runs (dry run, concurrency, scope, deadline, stop signal, applying).
    pub options: RunOptions,
    /// A Log Analytics workspace for pull ages, overriding the policy's.
    pub logs_workspace: Option<String>,
    /// The run store.
    pub store: Store<'a>,
    /// Start a new run even if a checkpoint of the same policy could be resumed.
    pub new_run: bool,
    /// Seal the plan of a complete dry run (and save it in the run store).
    pub save_plan: bool,
    /// The caller, for the span.
    pub invocation: Invocation,
}

/// What the adapter hears while the run goes.
pub struct Hooks<'a> {
    /// The client is connected: the adapter may return a progress tracker.
    pub connected: &'a mut (dyn FnMut(&RegistryClient) -> Option<Tracker> + Send),
    /// acr purge's lines.
    pub out: crate::run::Lines<'a>,
    /// Each repository's full report as it finishes.
    pub finished: crate::run::OnRepositoryDone<'a>,
    /// The durable run (its id, whether it resumed) before the engine starts.
    pub started: &'a mut (dyn FnMut(&DurableRun) + Send),
}

/// How a launch ended.
#[derive(Debug)]
pub enum Launched {
    /// Nothing ran: the registry, the evidence sources or the run store could not be used.
    Refused {
        /// The report saying why (its `error`).
        report: RunReport,
    },
    /// Another run holds the registry; nothing was done.
    Busy {
        /// The skipped run's record.
        record: Box<RunRecord>,
        /// Who holds the registry.
        holder: Option<Holder>,
        /// The report saying so.
        report: RunReport,
    },
    /// The engine ran (to its end, its deadline, or a failure).
    Ran {
        /// The engine's report (with `planDigest` when a plan was saved in the store).
        report: RunReport,
        /// The durable run's id (`None` without a store).
        run_id: Option<String>,
        /// Why the run's record could not be written, if it could not.
        record_error: Option<String>,
        /// The sealed plan of a complete dry run, when asked for.
        plan: Option<SavedPlan>,
        /// Why the sealed plan could not be saved in the run store, if it could not.
        plan_error: Option<String>,
    },
}

impl Launched {
    /// The run's report.
    pub fn report(&self) -> &RunReport {
        match self {
            Launched::Refused { report, .. }
            | Launched::Busy { report, .. }
            | Launched::Ran { report, .. } => report,
        }
    }

    /// The run's report, taken.
    pub fn into_report(self) -> RunReport {
        match self {
            Launched::Refused { report, .. }
            | Launched::Busy { report, .. }
            | Launched::Ran { report, .. } => report,
        }
    }
}

/// The span context of a launch: its trigger, registry and dry-run flag come from the
/// request, so the span and the run store cannot disagree.
pub fn context(request: &Launch<'_>) -> RunContext {
    RunContext {
        trigger: request.trigger,
        invocation_id: request.invocation.invocation_id.clone(),
        function_name: request.invocation.function_name.clone(),
        registry: request.endpoint.host().to_string(),
        dry_run: request.options.dry_run,
        parent: request.invocation.parent.clone(),
        run_id: request.invocation.request_id.clone(),
    }
}

/// Runs `request` under the run's root span and returns how it ended.
pub async fn launch(request: Launch<'_>, hooks: Hooks<'_>) -> Launched {
    let context = context(&request);
    let span = run_span(&context);
    let launched = run_in_span(request, hooks).instrument(span.clone()).await;
    finish_run(&span, &context, launched.report());
    launched
}

fn refused(host: &str, dry_run: bool, error: RunError) -> Launched {
    Launched::Refused {
        report: RunReport::failed(host, dry_run, error),
    }
}

async fn run_in_span(request: Launch<'_>, hooks: Hooks<'_>) -> Launched {
    let Launch {
        trigger,
        endpoint,
        credentials,
        policy,
        rate_card,
        mut options,
        logs_workspace,
        store,
        new_run,
        save_plan,
        invocation,
    } = request;
    let Hooks {
        connected,
        out,
        finished,
        started,
    } = hooks;
    let host = endpoint.host().to_string();
    let dry_run = options.dry_run;
    let client_options = ClientOptions {
        concurrency: options.concurrency,
        abac_batch_size: crate::settings::abac_batch_size(ClientOptions::default().abac_batch_size),
        rate_card,
        ..ClientOptions::default()
    };
    let client = match RegistryClient::connect(endpoint, credentials, client_options).await {
        Ok(client) => client,
        Err(error) => return refused(&host, dry_run, RunError::Connect(error)),
    };
    if let Some(tracker) = connected(&client) {
        options.tracker = tracker;
    }
    options.sources = match crate::run::gather::Sources::for_run(&policy, logs_workspace.as_deref())
    {
        Ok(sources) => sources,
        Err(error) => return refused(&host, dry_run, *error),
    };
    let applying = options.applying.clone();
    if let Some(plan) = &applying {
        telemetry::record_plan_digest(&tracing::Span::current(), plan.digest());
    }
    let saving = save_plan && dry_run && applying.is_none();
    let reference_time = match &applying {
        Some(plan) => plan.reference_time,
        // A saved plan is judged at the time it was made: the engine must use the same.
        None if saving => *options.reference_time.get_or_insert_with(chrono::Utc::now),
        None => options.reference_time.unwrap_or_else(chrono::Utc::now),
    };
    let mut collected = Vec::new();
    let mut collect = |repo: &RepositoryReport| {
        if saving {
            collected.push(SavedRepository::from_report(repo));
        }
        finished(repo);
    };
    let store = match store {
        Store::Unavailable(why) => {
            return refused(&host, dry_run, RunError::StoreUnavailable(why));
        }
        Store::Stateless => None,
        Store::Opened(store) => Some(store),
    };
    let (report, run_id, record_error) = match store {
        None => {
            let report = crate::run::run_with(&client, &policy, &options, out, &mut collect).await;
            (report, None, None)
        }
        Some(store) => {
            let key = match &applying {
                Some(plan) => Some(vec![plan.digest().to_string()]),
                None => options.only.clone(),
            };
            let durable_request = durable::RunRequest {
                registry: client.endpoint().host().to_string(),
                policy_digest: durable::policy_digest(policy.as_ref(), key.as_deref(), dry_run),
                dry_run,
                trigger,
                new_run,
                request_id: invocation.request_id.clone(),
            };
            let hooks = durable::Hooks {
                out,
                finished: &mut collect,
                started,
            };
            match durable::drive(store, durable_request, &client, &policy, options, hooks).await {
                Err(error) => {
                    return refused(
                        &host,
                        dry_run,
                        RunError::StoreUnavailable(error.to_string()),
                    );
                }
                Ok(Driven::Busy { record, holder }) => {
                    let error = RunError::Busy {
                        registry: record.registry.clone(),
                        holder: holder.as_ref().map(|h| h.run_id.clone()),
                    };
                    tracing::warn!(run_id = record.id, "{error}");
                    return Launched::Busy {
                        report: RunReport::failed(&host, dry_run, error),
                        record: Box::new(record),
                        holder,
                    };
                }
                Ok(Driven::Ran {
                    report,
                    record,
                    run_id,
                    ..
                }) => {
                    let record_error = record.err().map(|e| e.to_string());
                    if let Some(error) = &record_error {
                        tracing::error!(run_id, "the run's record could not be written: {error}");
                    }
                    (report, Some(run_id), record_error)
                }
            }
        }
    };
    let mut report = report;
    let (mut plan, mut plan_error) = (None, None);
    if saving && report.error.is_none() {
        let sealed = SavedPlan::seal(
            &report.registry,
            reference_time,
            &policy,
            Some(report.summary.storage),
            collected,
        );
        telemetry::record_plan_digest(&tracing::Span::current(), sealed.digest());
        if let Some(store) = store {
            match store.write_saved_plan(&sealed).await {
                Ok(()) => report.plan_digest = Some(sealed.digest().to_string()),
                Err(error) => {
                    tracing::error!(?run_id, "the plan could not be saved: {error}");
                    plan_error = Some(error.to_string());
                }
            }
        }
        plan = Some(sealed);
    }
    Launched::Ran {
        report,
        run_id,
        record_error,
        plan,
        plan_error,
    }
}
