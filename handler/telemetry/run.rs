//! The root span of a run (`purge`) and what is recorded on it when the run ends.

use super::context::{RunContext, Trigger};
use super::metrics;
use crate::report::{RunError, RunReport};
use opentelemetry::trace::TraceContextExt;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The root span of a run: `purge`, kind Server for triggered runs (App Insights shows it
/// as a request), with the run's attributes; outcome attributes are filled by [`finish_run`].
pub fn run_span(context: &RunContext) -> tracing::Span {
    let kind = match context.trigger {
        Trigger::Cli => "internal",
        _ => "server",
    };
    let span = tracing::info_span!(
        "purge",
        otel.name = "purge",
        otel.kind = kind,
        otel.status_code = Empty,
        otel.status_description = Empty,
        faas.trigger = context.trigger.faas(),
        purge.trigger = context.trigger.as_str(),
        faas.invocation_id = context.invocation_id.as_deref().unwrap_or_default(),
        faas.name = context.function_name.as_deref().unwrap_or("handler purge"),
        cloud.provider = "azure",
        purge.registry = context.registry.as_str(),
        purge.dry_run = context.dry_run,
        purge.run_id = Empty,
        purge.invocation = Empty,
        purge.run_status = Empty,
        purge.tags_deleted = Empty,
        purge.manifests_deleted = Empty,
        purge.storage.freed_bytes = Empty,
        purge.storage.at_most_bytes = Empty,
        purge.storage.exact = Empty,
        purge.plan_digest = Empty,
        purge.protected = Empty,
        purge.failed = Empty,
        purge.throttled = Empty,
        purge.throttled.read = Empty,
        purge.throttled.write = Empty,
        purge.throttled.delete = Empty,
        purge.throttled.referrers = Empty,
        purge.requests.read = Empty,
        purge.requests.write = Empty,
        purge.requests.delete = Empty,
        purge.requests.referrers = Empty,
        purge.findings.status = Empty,
        purge.findings.images_deleted = Empty,
        purge.findings.cleared = Empty,
        purge.findings.cleared.critical = Empty,
        purge.findings.cleared.high = Empty,
        purge.findings.cleared.medium = Empty,
        purge.findings.cleared.low = Empty,
        purge.findings.images_kept = Empty,
        purge.findings.kept_severe = Empty,
        trace_id = Empty,
    );
    if let Some(parent) = &context.parent {
        let _ = span.set_parent(parent.clone());
    }
    let trace_id = span.context().span().span_context().trace_id();
    if trace_id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", trace_id.to_string());
    }
    span
}

/// Records which durable run (and which of its invocations) the span is, as soon as it is
/// known, so that a run's invocations can be grouped. Each field is recorded once (a field
/// recorded twice is exported twice).
pub fn record_durable(span: &tracing::Span, run_id: &str, invocation: u32) {
    span.record("purge.run_id", run_id);
    span.record("purge.invocation", i64::from(invocation));
}

/// Records the digest of the saved plan the run wrote (dry run) or applied.
pub fn record_plan_digest(span: &tracing::Span, digest: &str) {
    span.record("purge.plan_digest", digest);
}

/// Records the run's status once this invocation ended (`succeeded`, `failed`,
/// `incomplete`: to be resumed, `skipped`: another run held the registry).
pub fn record_run_status(span: &tracing::Span, status: &str) {
    span.record("purge.run_status", status);
}

/// Records the outcome on the run's span and in the metrics.
pub fn finish_run(span: &tracing::Span, context: &RunContext, report: &RunReport) {
    let s = &report.summary;
    let protected: u64 = s.protected.values().sum();
    span.record("purge.tags_deleted", super::int(s.tags_deleted));
    span.record("purge.manifests_deleted", super::int(s.manifests_deleted));
    span.record("purge.protected", super::int(protected));
    span.record(
        "purge.storage.freed_bytes",
        super::int(s.storage.freed_bytes),
    );
    span.record(
        "purge.storage.at_most_bytes",
        super::int(s.storage.at_most_bytes),
    );
    span.record("purge.storage.exact", s.storage.exact);
    span.record("purge.failed", super::int(s.failed));
    span.record("purge.throttled", super::int(s.requests.throttled));
    let by = &s.requests.by_category;
    for (category, counts) in [
        ("read", by.read),
        ("write", by.write),
        ("delete", by.delete),
        ("referrers", by.referrers),
    ] {
        span.record(
            format!("purge.throttled.{category}").as_str(),
            super::int(counts.throttled),
        );
        span.record(
            format!("purge.requests.{category}").as_str(),
            super::int(counts.requests),
        );
    }
    // Defender drops the findings of deleted images within about an hour (rarely three
    // days): the cleared count is what the run removed, not yet what Defender shows.
    if let Some(findings) = &report.findings {
        span.record("purge.findings.status", findings.status);
        span.record(
            "purge.findings.images_deleted",
            super::int(findings.images_deleted),
        );
        span.record(
            "purge.findings.cleared",
            super::int(findings.findings_cleared),
        );
        for severity in crate::policy::Severity::ALL {
            span.record(
                format!(
                    "purge.findings.cleared.{}",
                    severity.name().to_ascii_lowercase()
                )
                .as_str(),
                super::int(findings.cleared(severity)),
            );
        }
        span.record(
            "purge.findings.images_kept",
            super::int(findings.images_kept),
        );
        span.record(
            "purge.findings.kept_severe",
            findings.kept_severe_json(40).as_str(),
        );
    }
    match &report.error {
        None => {
            span.record("otel.status_code", "ok");
        }
        // Not failures: a run stopped before its deadline or a shutdown (it resumes), and
        // an occurrence skipped because another run holds the registry. `purge.run_status`
        // says which (`incomplete`, `skipped`), and the failed-run alert stays quiet.
        Some(RunError::Deadline(_) | RunError::Shutdown(_) | RunError::Busy { .. }) => {}
        Some(error) => {
            span.record("otel.status_code", "error");
            span.record("otel.status_description", error.to_string());
        }
    }
    let seconds = (report.finished_at - report.started_at)
        .to_std()
        .unwrap_or_default()
        .as_secs_f64();
    metrics::record(report, seconds, context);
}
