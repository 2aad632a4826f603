//! `handler runs`: the recorded runs, read from the run store (the same one `handler
//! purge` and the function app write), so any machine can answer what a run did.

use super::RunsArgs;
use super::RunsCommand;
use super::output::say;
use crate::store::RunStore;
use std::process::ExitCode;

/// `handler runs list|show|audit`.
pub async fn runs(args: RunsArgs) -> ExitCode {
    let location = match args.store.location() {
        Ok(location) => location,
        Err(error) => {
            eprintln!("Error: {error}");
            return ExitCode::from(super::EXIT_USAGE);
        }
    };
    // A run id the handler never issues names no run: refused before the store is opened.
    if let RunsCommand::Show { id } | RunsCommand::Audit { id } = &args.what
        && let Err(error) = crate::store::run_id::check(id)
    {
        eprintln!("Error: {error}");
        return ExitCode::from(super::EXIT_USAGE);
    }
    let credential = || crate::outbound::azure_credential().map_err(|e| e.to_string());
    let store = match RunStore::open(&location, credential).await {
        Ok(store) => store,
        Err(error) => {
            eprintln!("Error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let shown = match &args.what {
        RunsCommand::List => list(&store).await,
        RunsCommand::Show { id } => show(&store, id).await,
        RunsCommand::Audit { id } => audit(&store, id).await,
    };
    super::output::flush();
    match shown {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn list(store: &RunStore) -> anyhow::Result<()> {
    let listing = store.records().await?;
    for error in &listing.unreadable {
        eprintln!("Warning: {error}; that run is left out");
    }
    let records = listing.records;
    say!(
        "{:<36}  {:<10}  {:<20}  {:<30}  {:<7}  {:>5}  {:>9}  {:>6}",
        "RUN",
        "STATUS",
        "STARTED",
        "REGISTRY",
        "TRIGGER",
        "TAGS",
        "MANIFESTS",
        "FAILED"
    );
    for r in records {
        say!(
            "{:<36}  {:<10}  {:<20}  {:<30}  {:<7}  {:>5}  {:>9}  {:>6}",
            r.id,
            r.status.name(),
            r.started_at.format("%Y-%m-%d %H:%M:%S"),
            r.registry,
            r.trigger,
            r.summary.tags_deleted,
            r.summary.manifests_deleted,
            r.summary.failed
        );
    }
    Ok(())
}

async fn show(store: &RunStore, id: &str) -> anyhow::Result<()> {
    let record = store.current(id).await?;
    let record = record.ok_or_else(|| {
        anyhow::anyhow!(
            "no run {} in {}",
            crate::store::run_id::shown(id),
            store.location()
        )
    })?;
    let text = serde_json::to_string_pretty(&record)?;
    say!("{text}");
    Ok(())
}

async fn audit(store: &RunStore, id: &str) -> anyhow::Result<()> {
    if store.record(id).await?.is_none() {
        anyhow::bail!(
            "no run {} in {}",
            crate::store::run_id::shown(id),
            store.location()
        );
    }
    let mut unwritable = None;
    let reading = store
        .audit_each(id, |line| match serde_json::to_string(&line) {
            Ok(text) => say!("{text}"),
            Err(e) => unwritable = Some(e),
        })
        .await?;
    if let Some(left_out) = reading.left_out() {
        let level = if reading.corrupt > 0 {
            "Warning"
        } else {
            "Note"
        };
        eprintln!("{level}: run {id}'s audit log: {left_out}");
    }
    unwritable.map_or(Ok(()), |e| Err(e.into()))
}
