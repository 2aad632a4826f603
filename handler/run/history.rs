//! The deployment history `keepDeployed` ranks by, updated with what a run saw in use.

use super::gather;
use crate::plan::{KeepReason, Verdict};
use crate::report::RepositoryReport;
use chrono::{DateTime, Utc};

/// Adds the digests kept as in use to the deployment history.
pub(super) fn record_in_use(
    history: &mut gather::DeployHistory,
    repo: &RepositoryReport,
    in_use_tags: &[&str],
    now: DateTime<Utc>,
) {
    for manifest in &repo.manifests {
        if let Verdict::Keep {
            reason: KeepReason::InUse { .. },
        } = &manifest.decision.verdict
        {
            let digest = &manifest.decision.digest;
            let via: Vec<&str> = repo
                .tags
                .iter()
                .filter(|t| t.decision.digest == *digest)
                .map(|t| t.decision.name.as_str())
                .filter(|t| in_use_tags.contains(t))
                .collect();
            history.seen(&repo.repository, digest, &via, now);
        }
    }
}
