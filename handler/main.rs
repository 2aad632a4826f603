//! The `handler` binary: see `acr_purge::cli`.

use acr_purge::cli::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;

/// jemalloc, not glibc's malloc: a dry run of a million images holds millions of small,
/// long-lived allocations (digests, tag names) between short-lived ones (listing pages,
/// manifest bodies), and glibc's heap kept the holes those left: 607 MB peak RSS against
/// 527 MB with jemalloc, the same code (82 against 83 MB at 100,000 images; 52 against 62
/// at 50,000, the pages jemalloc kept after they were freed: see [`JEMALLOC_CONF`]).
/// mimalloc was tried before and held more (README).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (its `malloc_conf`, read before `main`): pages freed go back to the
/// system at once, where jemalloc's default keeps them for ten seconds. A dry run's listing
/// pages and manifest bodies are freed within seconds of their reading, and the kept pages
/// counted in the peak: 61 → 45 MB at 50,000 images, 83 → 70 MB at 100,000, 527 → 521 MB at
/// a million, for about 5% more time at 50,000 (`cargo bench --bench scale`).
/// `_RJEM_MALLOC_CONF` in the environment still overrides it.
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_CONF: &[u8; 34] = b"dirty_decay_ms:0,muzzy_decay_ms:0\0";

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
