//! The subcommands' bodies: thin glue between the command line and the engine.

use super::json::JsonStream;
use super::output::{self, say};
use super::{EmulatorArgs, OutputFormat, PurgeArgs};
use crate::registry::{ClientOptions, RegistryClient};
use crate::report::RepositoryReport;
use crate::run;
use crate::settings;
use crate::telemetry::{RunContext, Trigger, finish_run, run_span};
use std::process::ExitCode;
use tracing::Instrument;

/// Exit code for bad arguments (nothing was contacted).
pub const EXIT_USAGE: u8 = 2;

/// `handler purge`.
pub async fn purge(args: PurgeArgs) -> ExitCode {
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
    let report = run::run_with(
        &client,
        &request.policy,
        &request.options,
        &mut print,
        &mut finished,
    )
    .instrument(span.clone())
    .await;
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
