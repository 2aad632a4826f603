//! The `handler` binary: see `acr_purge::cli`.

use acr_purge::cli::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;

/// jemalloc, not glibc's malloc: a dry run of a million images holds millions of small,
/// long-lived allocations (digests, tag names) between short-lived ones (listing pages,
/// manifest bodies), and glibc's heap kept the holes those left (650–700 MB peak RSS
/// against 594–610 MB with jemalloc, same code; the same at 50,000 and 100,000 images).
/// mimalloc was tried before and held more (README, Memory).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    runtime.block_on(async {
        let logs = match cli.command {
            Some(Command::Serve) | None => acr_purge::telemetry::Logs::Json,
            _ => acr_purge::telemetry::Logs::Text,
        };
        acr_purge::telemetry::init(logs);
        let code = match cli.command {
            Some(Command::Purge(args)) => acr_purge::cli::commands::purge(args).await,
            Some(Command::Demo) => acr_purge::cli::commands::demo().await,
            Some(Command::Emulator(args)) => acr_purge::cli::commands::emulator(args).await,
            Some(Command::Runs(args)) => acr_purge::cli::commands::runs(args).await,
            Some(Command::Apply(args)) => acr_purge::cli::commands::apply(args).await,
            Some(Command::Serve) | None => acr_purge::cli::commands::serve().await,
        };
        acr_purge::telemetry::shutdown().await;
        code
    })
}
