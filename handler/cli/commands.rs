//! The subcommands' bodies: thin glue between the command line and the engine.

use super::EXIT_USAGE;
use super::json::JsonStream;
use super::output::{self, say};
use super::{ApplyArgs, EmulatorArgs, OutputFormat, PurgeArgs, RunFlags, RunsArgs};
use crate::durable;
use crate::launch::{self, Hooks, Invocation, Launch, Launched, Store, Trigger};
use crate::registry::RegistryClient;
use crate::report::RepositoryReport;
use crate::report::{EXIT_RESUMABLE, RunError, RunReport};
use crate::saved::SavedPlan;
use crate::settings;
use crate::store::RunStore;
use anyhow::Context as _;
use std::process::ExitCode;

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

/// Runs a validated purge or apply through the one launch path (connects, records the run
/// unless `--no-state`, drives it) and renders what happened: acr purge's lines, the JSON
/// stream, the saved plan, the exit code.
async fn run_request(
    request: super::PurgeRequest,
    how: How<'_>,
    started: tokio::time::Instant,
) -> ExitCode {
    for warning in &request.warnings {
        eprintln!("{warning}");
    }
    let store = match &request.store {
        None => None,
        Some(location) => {
            let credential = || crate::outbound::azure_credential().map_err(|e| e.to_string());
            match RunStore::open(location, credential).await {
                Ok(opened) => Some(opened),
                Err(error) => {
                    eprintln!(
                        "Error: {error}; nothing was purged (--no-state runs without a store)"
                    );
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let json = how.flags.output == OutputFormat::Json;
    let host = request.endpoint.host().to_string();
    let dry_run = request.options.dry_run;
    let progress: std::sync::OnceLock<super::progress::Display> = std::sync::OnceLock::new();
    let mut connected = |client: &RegistryClient| {
        let display =
            progress.get_or_init(|| super::progress::Display::start(how.flags.quiet, client));
        Some(display.tracker())
    };
    let suspend = |f: &mut dyn FnMut()| match progress.get() {
        Some(display) => display.suspend(f),
        None => f(),
    };
    let mut print = |line: String| {
        if !json {
            suspend(&mut || say!("{line}"));
        }
    };
    let mut stream = json.then(|| JsonStream::new(&host, dry_run));
    let verbose = how.flags.verbose;
    let mut finished = |repo: &RepositoryReport| match &mut stream {
        Some(stream) => stream.repository(repo),
        None if verbose => suspend(&mut || print_kept(&host, repo)),
        None => {}
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
    let mut options = request.options;
    options.deadline = request.deadline.map(|d| durable::stop_at(started, d));
    let launch = Launch {
        trigger: Trigger::Cli,
        endpoint: request.endpoint,
        credentials: request.credentials,
        policy: std::sync::Arc::new(request.policy),
        rate_card: request.rate_card,
        options,
        logs_workspace: how.flags.logs_workspace.clone(),
        store: store.as_ref().map_or(Store::Stateless, Store::Opened),
        new_run: how.flags.new_run,
        save_plan: how.plan_out.is_some(),
        invocation: Invocation::default(),
    };
    let hooks = Hooks {
        connected: &mut connected,
        out: &mut print,
        finished: &mut finished,
        started: &mut announce,
    };
    let launched = launch::launch(launch, hooks).await;
    if let Some(display) = progress.get() {
        display.finish();
    }
    let (report, plan) = match launched {
        Launched::Refused { report } => {
            let error = report
                .error
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            match report.error {
                Some(RunError::StoreUnavailable(_)) => {
                    eprintln!("Error: {error}; nothing was purged");
                }
                _ => eprintln!("Error: {error}"),
            }
            return ExitCode::FAILURE;
        }
        Launched::Busy { record, holder, .. } => {
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
        Launched::Ran {
            report,
            run_id,
            record_error,
            plan,
            plan_error,
        } => {
            if let Some(error) = record_error {
                eprintln!("Warning: the run's record is incomplete: {error}");
            }
            if let Some(error) = plan_error {
                eprintln!("Warning: the plan was not recorded in the run store: {error}");
            }
            if let Some(run_id) = run_id {
                note_resumable(&report, &run_id);
            }
            (report, plan)
        }
    };
    let mut failed_plan = false;
    if let Some(path) = how.plan_out
        && let Err(error) = write_plan(path, &report, plan)
    {
        eprintln!("Error: {error:#}");
        failed_plan = true;
    }
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

/// Writes the sealed plan of the dry run to `path` (the launch saved it in the run store,
/// for the webhook's `{"apply": digest}`). An incomplete dry run writes nothing: a partial
/// plan must not be applied as if it were whole.
fn write_plan(
    path: &std::path::Path,
    report: &RunReport,
    plan: Option<SavedPlan>,
) -> anyhow::Result<String> {
    if let Some(error) = &report.error {
        anyhow::bail!(
            "the dry run is incomplete ({error}), so no plan was written to {}",
            path.display()
        );
    }
    let Some(plan) = plan else {
        anyhow::bail!(
            "the dry run sealed no plan, so none was written to {}",
            path.display()
        );
    };
    let temporary = path.with_extension("json.partial");
    std::fs::write(&temporary, plan.to_json())
        .and_then(|()| std::fs::rename(&temporary, path))
        .with_context(|| format!("writing the plan to {}", path.display()))?;
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
#[cfg(feature = "emulators")]
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
#[cfg(feature = "emulators")]
pub async fn emulator(args: EmulatorArgs) -> ExitCode {
    match acr_emulator::run_standalone(args.data.as_deref(), args.port).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `handler demo` in a build without the emulators (the deployment package's): says so.
#[cfg(not(feature = "emulators"))]
pub async fn demo() -> ExitCode {
    without_emulators("demo")
}

/// `handler emulator` in a build without the emulators (the deployment package's): says so.
#[cfg(not(feature = "emulators"))]
pub async fn emulator(_args: EmulatorArgs) -> ExitCode {
    without_emulators("emulator")
}

/// The usage error of a subcommand that needs the `emulators` feature.
#[cfg(not(feature = "emulators"))]
fn without_emulators(command: &str) -> ExitCode {
    eprintln!(
        "Error: `handler {command}` needs the emulators, and this build has none (it was built \
         with --no-default-features, as the deployment package is); build with the default \
         features (`cargo build`) to run it"
    );
    ExitCode::from(EXIT_USAGE)
}
