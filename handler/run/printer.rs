//! acr purge's lines of repositories run side by side, each repository's together
//! ([`Printer`]), and the lines of a saved plan's drift and of a dry run.

use super::Lines;
use crate::plan::{KeepReason, Verdict};
use crate::report::RepositoryReport;
use crate::report::text::{Kind, Line};
use std::collections::{BTreeMap, HashSet};

/// Keeps each repository's lines together while repositories run side by side: the first
/// repository to print streams its lines; the others' lines wait, and come out whole, in
/// turn, as the streaming one finishes.
pub(super) struct Printer<'o> {
    out: Lines<'o>,
    active: Option<usize>,
    waiting: BTreeMap<usize, Vec<String>>,
    finished: HashSet<usize>,
}

impl<'o> Printer<'o> {
    pub(super) fn new(out: Lines<'o>) -> Printer<'o> {
        Printer {
            out,
            active: None,
            waiting: BTreeMap::new(),
            finished: HashSet::new(),
        }
    }

    /// A line of no repository (banner, summary).
    pub(super) fn direct(&mut self, line: String) {
        (self.out)(line);
    }

    pub(super) fn line(&mut self, repository: usize, line: String) {
        match self.active {
            None => {
                self.active = Some(repository);
                (self.out)(line);
            }
            Some(active) if active == repository => (self.out)(line),
            Some(_) => self.waiting.entry(repository).or_default().push(line),
        }
    }

    pub(super) fn finish(&mut self, repository: usize) {
        if self.active != Some(repository) {
            self.finished.insert(repository);
            return;
        }
        self.active = None;
        while let Some((next, lines)) = self.waiting.pop_first() {
            for line in lines {
                (self.out)(line);
            }
            if !self.finished.remove(&next) {
                self.active = Some(next);
                return;
            }
        }
    }
}

/// One line per item a saved plan deletes that is kept because it changed.
pub(super) fn print_drift(host: &str, repo: &RepositoryReport, out: Lines<'_>) {
    for item in repo.items() {
        if let Verdict::Keep {
            reason: KeepReason::Drift { detail },
        } = item.verdict()
        {
            let reference = item.reference(host, &repo.repository);
            out(Line::Skipped(reference, &format!("drift: {detail}")).to_string());
        }
    }
}

pub(super) fn print_dry_run(host: &str, repo: &RepositoryReport, out: Lines<'_>) {
    let name = &repo.repository;
    for kind in [Kind::Tags, Kind::Manifests] {
        let mut deleted = repo
            .items()
            .filter(|i| i.kind() == kind && i.verdict().is_delete())
            .peekable();
        if deleted.peek().is_some() {
            out(Line::WouldDeleteIn(kind, name).to_string());
        }
        for item in deleted {
            out(Line::WouldDelete(item.reference(host, name)).to_string());
        }
    }
}
