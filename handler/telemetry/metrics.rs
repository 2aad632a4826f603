//! Run metrics: `purge.deleted` (by `kind`; real runs only), `purge.protected` (by `reason`),
//! `purge.throttled`, `purge.failures`, `purge.findings.cleared` (Defender findings on the
//! images a run deletes, dry runs too, by `purge.severity`; Defender drops them within about
//! an hour, rarely three days), `purge.storage.freed` (bytes; real runs only) and the `purge.run.duration` histogram (seconds),
//! each with `faas.trigger` and `purge.dry_run`.

use super::context::RunContext;
use crate::report::RunReport;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};
use std::sync::OnceLock;

struct Instruments {
    deleted: Counter<u64>,
    protected: Counter<u64>,
    throttled: Counter<u64>,
    failures: Counter<u64>,
    storage_freed: Counter<u64>,
    findings_cleared: Counter<u64>,
    duration: Histogram<f64>,
}

fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = opentelemetry::global::meter("acr-purge");
        Instruments {
            deleted: meter
                .u64_counter("purge.deleted")
                .with_description("Tags and manifests deleted")
                .build(),
            protected: meter
                .u64_counter("purge.protected")
                .with_description("Items kept for safety, by reason")
                .build(),
            throttled: meter
                .u64_counter("purge.throttled")
                .with_description("Registry answers 429 Too Many Requests")
                .build(),
            failures: meter
                .u64_counter("purge.failures")
                .with_description("Failed deletions and failed runs")
                .build(),
            storage_freed: meter
                .u64_counter("purge.storage.freed")
                .with_unit("By")
                .with_description("Bytes of blobs freed by deleted manifests")
                .build(),
            findings_cleared: meter
                .u64_counter("purge.findings.cleared")
                .with_description("Defender for Cloud findings on the images deleted (dry run: to be deleted), by severity; Defender removes them within about an hour, rarely up to three days")
                .build(),
            duration: meter
                .f64_histogram("purge.run.duration")
                .with_unit("s")
                .with_description("Duration of purge runs")
                .build(),
        }
    })
}

/// Records one finished run.
pub fn record(report: &RunReport, seconds: f64, context: &RunContext) {
    let m = instruments();
    let common = [
        KeyValue::new("faas.trigger", context.trigger.faas()),
        KeyValue::new("purge.dry_run", report.dry_run),
    ];
    let with = |key: &'static str, value: String| {
        let mut attributes = common.to_vec();
        attributes.push(KeyValue::new(key, value));
        attributes
    };
    let s = &report.summary;
    // A dry run deletes nothing: its planned deletions are on the span and in the events.
    if !report.dry_run {
        m.deleted.add(s.tags_deleted, &with("kind", "tag".into()));
        m.deleted
            .add(s.manifests_deleted, &with("kind", "manifest".into()));
        m.storage_freed.add(s.storage.freed_bytes, &common);
    }
    if let Some(findings) = &report.findings {
        for severity in crate::policy::Severity::ALL {
            m.findings_cleared.add(
                findings.cleared(severity),
                &with("purge.severity", severity.name().into()),
            );
        }
    }
    for (reason, count) in &s.protected {
        m.protected.add(*count, &with("reason", reason.clone()));
    }
    // Per rate-card category; 429s on token requests (not metered by the card) as `token`.
    let mut categorized = 0;
    for category in crate::registry::Category::ALL {
        let throttled = s.requests.by_category.get(category).throttled;
        categorized += throttled;
        m.throttled
            .add(throttled, &with("purge.category", category.name().into()));
    }
    let token = s.requests.throttled.saturating_sub(categorized);
    if token > 0 {
        m.throttled
            .add(token, &with("purge.category", "token".into()));
    }
    let run_failed = report.error.as_ref().map_or(0, |e| e.run_failures());
    m.failures.add(s.failed + run_failed, &common);
    m.duration.record(
        seconds,
        &with(
            "outcome",
            if report.succeeded() {
                "success"
            } else {
                "failure"
            }
            .into(),
        ),
    );
}
