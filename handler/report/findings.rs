//! What a run does to Microsoft Defender for Cloud's vulnerability findings: the images
//! with unresolved findings it deletes (dry run: would delete) and the findings that clears,
//! by severity, and the images with findings it keeps, with the reason. Counted per
//! repository as it finishes, from its decisions (and, in a real run, their outcomes).

use super::{Outcome, RepositoryReport};
use crate::plan::{KeepReason, Verdict};
use crate::policy::Severity;
use serde::Serialize;
use std::collections::BTreeMap;

/// Said wherever the number of cleared findings is shown: Defender does not drop them at
/// once.
pub const DEFENDER_DELAY: &str = "Defender for Cloud removes the findings of deleted images within about an hour (rarely up to three days)";

/// The most kept images listed one by one (all are counted).
pub const MAX_KEPT_LISTED: usize = 1_000;

/// The run's effect on Defender's findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingsReport {
    /// `read`, or `unknown` when the findings could not be read (see `why`).
    pub status: &'static str,
    /// Why the findings are unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// Images with unresolved findings deleted (dry run: to be deleted).
    pub images_deleted: u64,
    /// Their findings (one per CVE and image): what the run clears.
    pub findings_cleared: u64,
    /// The cleared findings by severity (`Critical`, `High`, `Medium`, `Low`).
    pub cleared_by_severity: BTreeMap<String, u64>,
    /// Images with unresolved findings the run keeps.
    pub images_kept: u64,
    /// Those kept images by reason (`inUse`, `protected`, `tooYoung`, …).
    pub kept_by_reason: BTreeMap<String, u64>,
    /// The kept images, at most [`MAX_KEPT_LISTED`].
    pub kept: Vec<KeptImage>,
    /// [`DEFENDER_DELAY`].
    pub note: &'static str,
}

/// An image with unresolved findings the run keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeptImage {
    /// The repository.
    pub repository: String,
    /// The digest.
    pub digest: String,
    /// Its tags in the listing.
    pub tags: Vec<String>,
    /// Why it stays (a keep reason's name, `failed`/`skipped` for a deletion that did not
    /// happen, `untaggedNotDeleted` when its tags go but no rule deletes untagged manifests).
    pub reason: String,
    /// Its findings by severity.
    pub by_severity: BTreeMap<String, u64>,
}

impl FindingsReport {
    /// A report of findings that were read.
    pub fn read() -> FindingsReport {
        FindingsReport {
            status: "read",
            why: None,
            images_deleted: 0,
            findings_cleared: 0,
            cleared_by_severity: BTreeMap::new(),
            images_kept: 0,
            kept_by_reason: BTreeMap::new(),
            kept: Vec::new(),
            note: DEFENDER_DELAY,
        }
    }

    /// A report of findings that could not be read.
    pub fn unknown(why: &str) -> FindingsReport {
        FindingsReport {
            status: "unknown",
            why: Some(why.to_string()),
            ..FindingsReport::read()
        }
    }

    /// Cleared findings of `severity`.
    pub fn cleared(&self, severity: Severity) -> u64 {
        self.cleared_by_severity
            .get(severity.name())
            .copied()
            .unwrap_or(0)
    }

    /// Counts one finished repository in: `findings` holds, per digest of it, the severity
    /// of each unresolved finding. A digest the repository's report does not show is not
    /// counted (not listed, or the repository failed).
    pub fn add(
        &mut self,
        repo: &RepositoryReport,
        findings: &BTreeMap<String, Vec<Severity>>,
        dry_run: bool,
    ) {
        for (digest, severities) in findings {
            let Some(fate) = fate(repo, digest, dry_run) else {
                continue;
            };
            let mut by_severity = BTreeMap::new();
            for severity in severities {
                *by_severity.entry(severity.name().to_string()).or_default() += 1;
            }
            match fate {
                Fate::Removed => {
                    self.images_deleted += 1;
                    self.findings_cleared += severities.len() as u64;
                    for (severity, n) in by_severity {
                        *self.cleared_by_severity.entry(severity).or_default() += n;
                    }
                }
                Fate::Kept { reason, tags } => {
                    self.images_kept += 1;
                    *self.kept_by_reason.entry(reason.clone()).or_default() += 1;
                    if self.kept.len() < MAX_KEPT_LISTED {
                        self.kept.push(KeptImage {
                            repository: repo.repository.clone(),
                            digest: digest.clone(),
                            tags,
                            reason,
                            by_severity,
                        });
                    }
                }
            }
        }
    }

    /// The kept images carrying High or Critical findings, at most `limit`, as a JSON array
    /// of `{repository, digest, reason, critical, high}` (the span attribute the workbook's
    /// table reads).
    pub fn kept_severe_json(&self, limit: usize) -> String {
        let count =
            |image: &KeptImage, s: Severity| image.by_severity.get(s.name()).copied().unwrap_or(0);
        let severe: Vec<serde_json::Value> = self
            .kept
            .iter()
            .filter(|k| count(k, Severity::Critical) + count(k, Severity::High) > 0)
            .take(limit)
            .map(|k| {
                serde_json::json!({
                    "repository": k.repository,
                    "digest": k.digest,
                    "reason": k.reason,
                    "critical": count(k, Severity::Critical),
                    "high": count(k, Severity::High),
                })
            })
            .collect();
        serde_json::Value::Array(severe).to_string()
    }

    /// The summary line: `Defender findings cleared: …` (`to be cleared` in a dry run).
    pub fn line(&self, dry_run: bool) -> String {
        if let Some(why) = &self.why {
            return format!("Defender findings: unknown ({why}); no image was selected for them");
        }
        let what = match dry_run {
            true => "to be cleared",
            false => "cleared",
        };
        let severities: Vec<String> = Severity::ALL
            .iter()
            .map(|s| (s, self.cleared(*s)))
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        let by = match severities.is_empty() {
            true => String::new(),
            false => format!(" ({})", severities.join(", ")),
        };
        let kept: Vec<String> = self
            .kept_by_reason
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        let kept = match kept.is_empty() {
            true => String::new(),
            false => format!(" ({})", kept.join(", ")),
        };
        format!(
            "Defender findings {what}: {}{by} on {} images; images with findings kept: {}{kept}. {DEFENDER_DELAY}.",
            self.findings_cleared, self.images_deleted, self.images_kept
        )
    }
}

enum Fate {
    Removed,
    Kept { reason: String, tags: Vec<String> },
}

/// Whether the image `digest` goes (its manifest is removed) or stays, and why.
fn fate(repo: &RepositoryReport, digest: &str, dry_run: bool) -> Option<Fate> {
    let gone = |verdict: &Verdict, outcome: Option<&Outcome>| match dry_run {
        true => verdict.is_removed(),
        false => outcome.is_some_and(Outcome::is_gone),
    };
    let tags: Vec<String> = repo
        .tags
        .iter()
        .filter(|t| t.decision.digest == digest)
        .map(|t| t.decision.name.to_string())
        .collect();
    if let Some(manifest) = repo.manifests.iter().find(|m| m.decision.digest == digest) {
        let verdict = &manifest.decision.verdict;
        let removed = match verdict {
            // Removed with another manifest: gone when that one is.
            Verdict::Cascade { via } if !dry_run => repo.manifests.iter().any(|m| {
                &m.decision.digest == via && m.outcome.as_ref().is_some_and(Outcome::is_gone)
            }),
            Verdict::Cascade { .. } | Verdict::Delete { .. } | Verdict::Keep { .. } => {
                gone(verdict, manifest.outcome.as_ref())
            }
        };
        let tags = match tags.is_empty() {
            true => manifest
                .decision
                .tags
                .iter()
                .map(|t| t.to_string())
                .collect(),
            false => tags,
        };
        return Some(match (removed, verdict, &manifest.outcome) {
            (true, _, _) => Fate::Removed,
            // Kept because a tag stays: the tag's reason is the telling one.
            (
                false,
                Verdict::Keep {
                    reason: KeepReason::Tagged { .. },
                },
                _,
            ) => Fate::Kept {
                reason: kept_tag_reason(repo, digest).unwrap_or_else(|| "tagged".to_string()),
                tags,
            },
            (false, Verdict::Keep { reason }, _) => Fate::Kept {
                reason: reason.name().to_string(),
                tags,
            },
            (false, _, Some(outcome)) => Fate::Kept {
                reason: outcome.name().to_string(),
                tags,
            },
            (false, _, None) => Fate::Kept {
                reason: "skipped".to_string(),
                tags,
            },
        });
    }
    // No manifest listed: the tags tell.
    if tags.is_empty() {
        return None;
    }
    Some(Fate::Kept {
        reason: kept_tag_reason(repo, digest).unwrap_or_else(|| "untaggedNotDeleted".to_string()),
        tags,
    })
}

/// The keep reason of the first kept tag on `digest`.
fn kept_tag_reason(repo: &RepositoryReport, digest: &str) -> Option<String> {
    repo.tags
        .iter()
        .filter(|t| t.decision.digest == digest)
        .find_map(|t| match &t.decision.verdict {
            Verdict::Keep { reason } => Some(reason.name().to_string()),
            Verdict::Delete { .. } | Verdict::Cascade { .. } => None,
        })
}
