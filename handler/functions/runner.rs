//! One purge for a trigger: the configured policy, optionally narrowed to some
//! repositories, through the same engine as `handler purge`.

use super::config::Config;
use super::protocol::LogLines;
use crate::plan::Scope;
use crate::registry::{ClientOptions, RegistryClient};
use crate::report::text::Line;
use crate::report::{RunError, RunReport};
use crate::run::{self, RunOptions, StopSignal};
use crate::telemetry::{RunContext, finish_run, run_span};
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

/// Runs the configured policy (narrowed to `only` when given) under the run's root span.
pub async fn run(
    config: &Config,
    only: Option<Vec<String>>,
    stop: StopSignal,
    context: RunContext,
) -> Finished {
    let span = run_span(&context);
    let finished = run_in_span(config, only, context.dry_run, stop)
        .instrument(span.clone())
        .await;
    finish_run(&span, &context, &finished.report);
    finished
}

async fn run_in_span(
    config: &Config,
    only: Option<Vec<String>>,
    dry_run: bool,
    stop: StopSignal,
) -> Finished {
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
        Err(error) => {
            let error = RunError::Connect(error);
            let line = Line::FailedToComplete(&error.to_string()).to_string();
            tracing::error!("{line}");
            return Finished {
                report: RunReport::failed(config.registry.host(), dry_run, error),
                lines: vec![line],
            };
        }
    };
    let options = RunOptions {
        dry_run,
        concurrency,
        only,
        stop,
        ..RunOptions::default()
    };
    let mut lines = LogLines::default();
    let report = run::run(&client, &config.policy.policy, &options, &mut |line| {
        tracing::info!(target: crate::telemetry::OUTPUT_TARGET, "{line}");
        lines.push(line);
    })
    .await;
    Finished {
        report,
        lines: lines.finish(),
    }
}
