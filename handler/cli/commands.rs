//! The subcommands' bodies: thin glue between the command line and the engine.

use super::json::JsonStream;
use super::output::{self, say};
use super::{EmulatorArgs, OutputFormat, PurgeArgs, RunsArgs};
use crate::durable::{self, Driven};
use crate::registry::{ClientOptions, RegistryClient};
use crate::report::RepositoryReport;
use crate::report::{EXIT_RESUMABLE, RunError, RunReport};
use crate::run;
use crate::settings;
use crate::store::RunStore;
use crate::telemetry::{RunContext, Trigger, finish_run, run_span};
use std::process::ExitCode;
use tracing::Instrument;

/// Exit code for bad arguments (nothing was contacted).
pub const EXIT_USAGE: u8 = 2;

/// `handler purge`.
pub async fn purge(args: PurgeArgs) -> ExitCode {
    let started = tokio::time::Instant::now();
    let request = match args.validate() {
        Ok(request) => request,
        Err(error) => {
            eprintln!("Error: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
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
    let json = args.output == OutputFormat::Json;
    let mut print = |line: String| {
        if !json {
            say!("{line}");
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
    let mut finished = |repo: &RepositoryReport| match &mut stream {
        Some(stream) => stream.repository(repo),
        None if args.verbose => print_kept(&host, repo),
        None => {}
    };
    let mut options = request.options;
    options.deadline = request.deadline.map(|d| durable::stop_at(started, d));
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
            let store = match RunStore::open(location, credential).await {
                Ok(store) => store,
                Err(error) => {
                    eprintln!(
                        "Error: {error}; nothing was purged (--no-state runs without a store)"
                    );
                    return ExitCode::FAILURE;
                }
            };
            let durable_request = durable::Request {
                registry: host.clone(),
                policy_digest: durable::policy_digest(&request.policy, None, options.dry_run),
                dry_run: options.dry_run,
                trigger: "cli".into(),
                new_run: args.new_run,
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
                &store,
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
            match driven {
                Err(error) => {
                    eprintln!("Error: {error}; nothing was purged");
                    return ExitCode::FAILURE;
                }
                Ok(Driven::Busy { record, holder }) => {
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
    finish_run(&span, &context, &report);
    drop(span);
    if let Some(stream) = stream {
        stream.finish(&report);
    }
    output::flush();
    match &report.error {
        None => ExitCode::SUCCESS,
        Some(error) => {
            eprintln!("Error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
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
