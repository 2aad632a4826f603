//! `--output json`: the run's report as one JSON document, streamed. Each repository is
//! written as it finishes (with every item), so the command never holds the registry's
//! whole report; the run-level fields follow the `repositories` array:
//!
//! ```text
//! {"registry": …, "dryRun": …, "repositories": [{…}, {…}],
//!  "startedAt": …, "finishedAt": …, "summary": {…}, "error": …}
//! ```
//!
//! Repositories appear in the order they finished (the run processes several at once).

use super::output::{self, say};
use crate::report::{RepositoryReport, RunReport};

/// Writes one run's report as it happens.
#[derive(Debug)]
pub struct JsonStream {
    registry: String,
    dry_run: bool,
    opened: bool,
    repositories: usize,
}

impl JsonStream {
    /// A stream for a run against `registry`.
    pub fn new(registry: &str, dry_run: bool) -> JsonStream {
        JsonStream {
            registry: registry.to_string(),
            dry_run,
            opened: false,
            repositories: 0,
        }
    }

    fn open(&mut self) {
        if !self.opened {
            let registry = serde_json::Value::from(self.registry.as_str());
            say!(
                "{{\n  \"registry\": {registry},\n  \"dryRun\": {},\n  \"repositories\": [",
                self.dry_run
            );
            self.opened = true;
        }
    }

    /// Writes one finished repository.
    pub fn repository(&mut self, repo: &RepositoryReport) {
        self.open();
        if self.repositories > 0 {
            say!(",");
        }
        output::json(repo);
        self.repositories += 1;
    }

    /// Writes the run-level fields and closes the document.
    pub fn finish(mut self, report: &RunReport) {
        self.open();
        say!("\n  ],");
        let mut value = match serde_json::to_value(report) {
            Ok(value) => value,
            Err(error) => {
                eprintln!("Error: cannot encode the report: {error}");
                say!("  \"error\": \"the report could not be encoded\"\n}}");
                return;
            }
        };
        if let Some(fields) = value.as_object_mut() {
            for key in ["registry", "dryRun", "repositories"] {
                fields.remove(key);
            }
        }
        let rest = serde_json::to_string_pretty(&value).unwrap_or_else(|_| "{}".to_string());
        // `rest` is `{\n  "startedAt": …\n}`: its inside continues this document.
        let inner = rest
            .strip_prefix("{\n")
            .and_then(|r| r.strip_suffix("\n}"))
            .unwrap_or_default();
        say!("{inner}\n}}");
    }
}
