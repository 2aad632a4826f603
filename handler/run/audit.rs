//! The audit trail: one structured event per deletion (planned, in a dry run), with the
//! repository, digest, tags, rule, reason and outcome — at most a cap per run, so a run
//! that deletes 100,000 items does not flood the exporters; beyond the cap one summary
//! event counts the rest. They are `tracing` events on target `acr_purge::deletion`, so they
//! reach the JSON logs and, as span events, the traces.

use crate::plan::Verdict;
use crate::report::text::Kind;
use crate::report::{Item, RepositoryReport};

pub use crate::telemetry::MAX_DELETION_EVENTS;

/// Counts the events of one run.
#[derive(Debug)]
pub struct DeletionEvents {
    cap: usize,
    emitted: usize,
    suppressed: usize,
}

impl DeletionEvents {
    /// A budget of `cap` events.
    pub fn new(cap: usize) -> DeletionEvents {
        DeletionEvents {
            cap,
            emitted: 0,
            suppressed: 0,
        }
    }

    /// Emits the events of one repository (its attempted deletions, or planned ones in a
    /// dry run).
    pub fn repository(&mut self, repo: &RepositoryReport, dry_run: bool) {
        for item in repo.items() {
            self.item(&repo.repository, item, dry_run);
        }
    }

    fn item(&mut self, repository: &str, item: Item<'_>, dry_run: bool) {
        let Verdict::Delete { reason } = item.verdict() else {
            return;
        };
        let kind = match item.kind() {
            Kind::Tags => "tag",
            Kind::Manifests => "manifest",
        };
        let outcome = match (item.outcome(), dry_run) {
            (_, true) => "planned",
            (None, false) => return,
            (Some(o), false) => o.name(),
        };
        if self.emitted >= self.cap {
            self.suppressed += 1;
            return;
        }
        self.emitted += 1;
        // Rule 0: swept with another item rather than selected by a rule.
        let rule = reason.rule().unwrap_or(0);
        tracing::event!(
            target: "acr_purge::deletion",
            tracing::Level::INFO,
            purge.repository = repository,
            purge.kind = kind,
            purge.digest = item.digest(),
            purge.tags = item.tags().join(",").as_str(),
            purge.rule = crate::telemetry::int(rule),
            purge.reason = reason.name(),
            purge.outcome = outcome,
            "deletion"
        );
    }

    /// Emits the summary of the events left out, if any.
    pub fn finish(&self) {
        if self.suppressed > 0 {
            tracing::event!(
                target: "acr_purge::deletion",
                tracing::Level::INFO,
                purge.suppressed = crate::telemetry::int(self.suppressed),
                purge.cap = crate::telemetry::int(self.cap),
                "{} more deletions not itemised (cap {} per run; the report lists them all)",
                self.suppressed,
                self.cap
            );
        }
    }

    /// How many events were left out.
    pub fn suppressed(&self) -> usize {
        self.suppressed
    }
}
