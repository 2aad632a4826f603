//! The `handler` binary: see `acr_purge::cli`.

use acr_purge::cli::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    init_logging();
    runtime.block_on(async {
        match cli.command {
            Some(Command::Purge(args)) => acr_purge::commands::purge(args).await,
            Some(Command::Demo) => acr_purge::commands::demo().await,
            Some(Command::Emulator(args)) => acr_purge::commands::emulator(args).await,
            Some(Command::Serve) | None => acr_purge::commands::serve().await,
        }
    })
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
