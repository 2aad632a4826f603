//! The subcommands' bodies: thin glue between the command line and the engine.

use super::EXIT_USAGE;
use super::json::JsonStream;
use super::output::{self, say};
use super::{ApplyArgs, EmulatorArgs, OutputFormat, PurgeArgs, RunFlags, RunsArgs};
use crate::durable::{self, Driven};
use crate::registry::{ClientOptions, RegistryClient};
use crate::report::RepositoryReport;
use crate::report::{EXIT_RESUMABLE, RunError, RunReport};
use crate::run;
use crate::run::evidence::Sources;
use crate::saved::{SavedPlan, SavedRepository};
use crate::settings;
use crate::store::RunStore;
use crate::telemetry;
use crate::telemetry::{RunContext, Trigger, finish_run, run_span};
use std::process::ExitCode;
use tracing::Instrument;

/// `handler purge`.
pub async fn purge(args: PurgeArgs) -> ExitCode {
    let started = tokio::time::Instant::now();
    let mut request = match args.validate() {
        Ok(request) => request,
        Err(error) => {
            eprintln!("Error: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if args.plan_out.is_some() {
        request.options.reference_time = Some(chrono::Utc::now());
    }
    let how = How {
        flags: &args.run,
        plan_out: args.plan_out.as_deref(),
    };
    run_request(request, how, started).await
}

/// `handler apply`.
pub async fn apply(args: ApplyArgs) -> ExitCode {
    let started = tokio::time::Instant::now();
    let (mut request, max_age) = match args.validate() {
        Ok(validated) => validated,
        Err(error) => {
            eprintln!("Error: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let path = args.plan.display();
    let refused = |why: String| {
        eprintln!("Error: plan {path}: {why}; nothing was deleted");
        ExitCode::from(EXIT_USAGE)
    };
    let text = match std::fs::read_to_string(&args.plan) {
        Ok(text) => text,
        Err(error) => return refused(format!("cannot be read: {error}")),
    };
    let saved = match SavedPlan::parse(&text) {
        Ok(saved) => saved,
        Err(error) => return refused(error.to_string()),
    };
    let host = request.endpoint.host().to_string();
    request.policy = match saved.check(&host, max_age, chrono::Utc::now()) {
        Ok(policy) => policy,
        Err(error) => return refused(error.to_string()),
    };
    eprintln!(
        "Applying plan {} made at {} for {}",
        saved.digest(),
        saved.created_at.format("%Y-%m-%dT%H:%M:%SZ"),
        saved.registry
    );
    request.options.reference_time = Some(saved.reference_time);
    request.options.applying = Some(std::sync::Arc::new(saved));
    let how = How {
        flags: &args.run,
        plan_out: None,
    };
    run_request(request, how, started).await
}

/// How a validated request is run and reported.
struct How<'a> {
    flags: &'a RunFlags,
    /// `--plan-out`.
    plan_out: Option<&'a std::path::Path>,
}

/// Runs a validated purge or apply: connects, records the run (unless `--no-state`),
/// reports, and writes the saved plan.
async fn run_request(
    request: super::PurgeRequest,
    how: How<'_>,
    started: tokio::time::Instant,
) -> ExitCode {
    for warning in &request.warnings {
        eprintln!("{warning}");
    }
    let options = ClientOptions {
        concurrency: request.options.concurrency,
        abac_batch_size: settings::abac_batch_size(ClientOptions::default().abac_batch_size),
        rate_card: request.rate_card,
        ..ClientOptions::default()
    };
    let client = match RegistryClient::connect(request.endpoint, request.credentials, options).await
    {
        Ok(client) => client,
        Err(error) => {
            eprintln!("Error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let json = how.flags.output == OutputFormat::Json;
    let progress = super::progress::Display::start(how.flags.quiet, &client);
    let mut print = |line: String| {
        if !json {
            progress.suspend(|| say!("{line}"));
        }
    };
    let context = RunContext {
        trigger: Trigger::Other,
        invocation_id: None,
        function_name: None,
        registry: client.endpoint().host().to_string(),
        dry_run: request.options.dry_run,
        parent: None,
        run_id: None,
    };
    let span = run_span(&context);
    let mut stream =
        json.then(|| JsonStream::new(client.endpoint().host(), request.options.dry_run));
    let host = client.endpoint().host().to_string();
    let mut collected: Option<Vec<SavedRepository>> = how.plan_out.map(|_| Vec::new());
    let verbose = how.flags.verbose;
    let mut finished = |repo: &RepositoryReport| {
        if let Some(collected) = &mut collected {
            collected.push(SavedRepository::from_report(repo));
        }
        match &mut stream {
            Some(stream) => stream.repository(repo),
            None if verbose => progress.suspend(|| print_kept(&host, repo)),
            None => {}
        }
    };
    let mut options = request.options;
    options.deadline = request.deadline.map(|d| durable::stop_at(started, d));
    options.tracker = progress.tracker();
    options.sources = match Sources::for_run(&request.policy, how.flags.logs_workspace.as_deref()) {
        Ok(sources) => sources,
        Err(error) => {
            progress.finish();
            eprintln!("Error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let reference_time = options.reference_time;
    let applying = options.applying.clone();
    if let Some(saved) = &applying {
        telemetry::record_plan_digest(&span, saved.digest());
    }
    let mut store = None;
    let report = match &request.store {
        None => {
            run::run_with(
                &client,
                &request.policy,
                &options,
                &mut print,
                &mut finished,
            )
            .instrument(span.clone())
            .await
        }
        Some(location) => {
            let credential = || crate::outbound::azure_credential().map_err(|e| e.to_string());
            let opened = match RunStore::open(location, credential).await {
                Ok(opened) => opened,
                Err(error) => {
                    eprintln!(
                        "Error: {error}; nothing was purged (--no-state runs without a store)"
                    );
                    return ExitCode::FAILURE;
                }
            };
            let policy_key = applying
                .as_ref()
                .map(|saved| vec![saved.digest().to_string()]);
            let durable_request = durable::Request {
                registry: host.clone(),
                policy_digest: durable::policy_digest(
                    &request.policy,
                    policy_key.as_deref(),
                    options.dry_run,
                ),
                dry_run: options.dry_run,
                trigger: "cli".into(),
                new_run: how.flags.new_run,
                request_id: None,
            };
            let mut announce = |run: &durable::DurableRun| {
                if run.is_resumed() {
                    eprintln!(
                        "Resuming run {} (invocation {}) from {}",
                        run.id(),
                        run.invocation(),
                        run.store().location()
                    );
                }
            };
            let driven = durable::drive(
                &opened,
                durable_request,
                &client,
                &request.policy,
                options,
                durable::Hooks {
                    out: &mut print,
                    finished: &mut finished,
                    started: &mut announce,
                },
            )
            .instrument(span.clone())
            .await;
            store = Some(opened);
            match driven {
                Err(error) => {
                    progress.finish();
                    eprintln!("Error: {error}; nothing was purged");
                    return ExitCode::FAILURE;
                }
                Ok(Driven::Busy { record, holder }) => {
                    progress.finish();
                    let by = holder.map_or_else(
                        || "another run".to_string(),
                        |h| format!("run {} ({}, since {})", h.run_id, h.trigger, h.since),
                    );
                    eprintln!(
                        "Error: {by} is purging {} now; nothing was done (recorded as run {})",
                        record.registry, record.id
                    );
                    return ExitCode::FAILURE;
                }
                Ok(Driven::Ran {
                    report,
                    run_id,
                    record,
                    ..
                }) => {
                    if let Err(error) = record {
                        eprintln!("Warning: the run's record is incomplete: {error}");
                    }
                    note_resumable(&report, &run_id);
                    report
                }
            }
        }
    };
    progress.finish();
    let mut failed_plan = false;
    if let (Some(path), Some(repositories), Some(reference_time)) =
        (how.plan_out, collected, reference_time)
    {
        let written = write_plan(
            path,
            &report,
            &request.policy,
            reference_time,
            repositories,
            store.as_ref(),
        )
        .await;
        match written {
            Ok(digest) => telemetry::record_plan_digest(&span, &digest),
            Err(error) => {
                eprintln!("Error: {error}");
                failed_plan = true;
            }
        }
    }
    finish_run(&span, &context, &report);
    drop(span);
    if let Some(stream) = stream {
        stream.finish(&report);
    }
    output::flush();
    match &report.error {
        None if failed_plan => ExitCode::FAILURE,
        None => ExitCode::SUCCESS,
        Some(error) => {
            eprintln!("Error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// Seals the dry run's plan and writes it to `path` (and to the run store, for the
/// webhook's `{"apply": digest}`). An incomplete dry run writes nothing: a partial plan
/// must not be applied as if it were whole.
async fn write_plan(
    path: &std::path::Path,
    report: &RunReport,
    policy: &crate::policy::Policy,
    reference_time: chrono::DateTime<chrono::Utc>,
    repositories: Vec<SavedRepository>,
    store: Option<&RunStore>,
) -> Result<String, String> {
    if let Some(error) = &report.error {
        return Err(format!(
            "the dry run is incomplete ({error}), so no plan was written to {}",
            path.display()
        ));
    }
    let plan = SavedPlan::seal(
        &report.registry,
        reference_time,
        policy,
        Some(report.summary.storage),
        repositories,
    );
    let temporary = path.with_extension("json.partial");
    std::fs::write(&temporary, plan.to_json())
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| format!("writing the plan to {}: {e}", path.display()))?;
    if let Some(store) = store
        && let Err(error) = store.write_saved_plan(&plan).await
    {
        eprintln!("Warning: the plan was not recorded in the run store: {error}");
    }
    eprintln!(
        "Plan {} written to {}: {} tags and {} manifests to delete; review it, then run: handler apply {} -r {}",
        plan.digest(),
        path.display(),
        report.summary.tags_deleted,
        report.summary.manifests_deleted,
        path.display(),
        report.registry
    );
    Ok(plan.digest().to_string())
}

/// Says how to resume a run that stopped at its deadline.
fn note_resumable(report: &RunReport, run_id: &str) {
    if matches!(report.error, Some(RunError::Deadline(_))) {
        eprintln!(
            "Run {run_id} stopped before its deadline (exit code {EXIT_RESUMABLE}); run the same command again to resume it"
        );
    }
}

/// `handler runs`.
pub async fn runs(args: RunsArgs) -> ExitCode {
    super::runs::runs(args).await
}

/// Prints why each kept item of a finished repository is kept (`--verbose`).
fn print_kept(host: &str, repo: &RepositoryReport) {
    for item in repo.items().filter(|i| !i.verdict().is_removed()) {
        let reference = item.reference(host, &repo.repository);
        say!("Kept {reference}: {}", item.verdict().explain());
    }
}

/// `handler` / `handler serve`: the Functions custom handler.
pub async fn serve() -> ExitCode {
    let port = match std::env::var(settings::FUNCTIONS_CUSTOMHANDLER_PORT)
        .or_else(|_| std::env::var(settings::FUNCTIONS_HTTPWORKER_PORT))
    {
        Err(_) => 8080,
        Ok(text) => match text.trim().parse::<u16>() {
            Ok(port) => port,
            Err(_) => {
                eprintln!("Error: FUNCTIONS_CUSTOMHANDLER_PORT {text:?} is not a port number");
                return ExitCode::from(EXIT_USAGE);
            }
        },
    };
    match crate::functions::serve(port).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `handler demo`.
pub async fn demo() -> ExitCode {
    match super::demo::run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `handler emulator`.
pub async fn emulator(args: EmulatorArgs) -> ExitCode {
    match acr_emulator::run_standalone(args.data.as_deref(), args.port).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
