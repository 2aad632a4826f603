//! What a durable run records as the engine goes (its [`Journal`]): plans stored before
//! deletions, attempts appended to the audit log after, the checkpoint advanced, and the
//! deletions of a killed invocation reconciled (see the parent module). A step that cannot
//! be recorded is a [`JournalError`]: the lease may be lost, or the store refused.

use super::DurableRun;
use crate::report::{Item, Outcome, RepositoryReport, RepositoryStatus};
use crate::run::inventory::{KnownBlobs, Staying};
use crate::run::{Journal, JournalError};
use crate::store::AuditLine;
use async_trait::async_trait;
use chrono::Utc;
use serde::Deserialize;
use std::collections::HashSet;

/// What reconciliation reads of a stored plan (the JSON report's repository).
#[derive(Deserialize)]
struct StoredPlan {
    #[serde(default)]
    tags: Vec<StoredItem>,
    #[serde(default)]
    manifests: Vec<StoredItem>,
}

#[derive(Deserialize)]
struct StoredItem {
    #[serde(default)]
    name: Option<String>,
    digest: String,
    #[serde(default)]
    tags: Vec<String>,
    decision: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    rule: Option<usize>,
}

#[async_trait]
impl Journal for DurableRun {
    async fn planned(&self, repo: &RepositoryReport) -> Result<(), JournalError> {
        if let Some(why) = self.lease.as_ref().and_then(|l| l.lost()) {
            return Err(JournalError::LeaseLost(why));
        }
        if self.resuming {
            let lines = self
                .reconcile(repo)
                .await
                .map_err(JournalError::unwritten)?;
            self.append(lines).await?;
        }
        self.store
            .write_plan(self.id(), &repo.repository, repo)
            .await
            .map_err(JournalError::unwritten)
    }

    async fn ended(&self, repo: &RepositoryReport, completed: bool) -> Result<(), JournalError> {
        let now = Utc::now();
        let lines: Vec<AuditLine> = repo
            .items()
            .filter_map(|item| self.attempt(repo, item, now))
            .collect();
        self.append(lines).await?;
        if completed && let Some(checkpoint) = &self.checkpoint {
            let mut checkpoint = checkpoint.lock().await;
            checkpoint.completed.insert(repo.repository.clone());
            checkpoint.written_at = now;
            self.store
                .write_checkpoint(&self.record.registry, &checkpoint)
                .await
                .map_err(JournalError::unwritten)?;
        }
        Ok(())
    }

    async fn decided(&self, run_images: u64) -> Result<(), JournalError> {
        let Some(checkpoint) = &self.checkpoint else {
            return Ok(());
        };
        let mut checkpoint = checkpoint.lock().await;
        if checkpoint.run_images.is_some() {
            return Ok(());
        }
        checkpoint.run_images = Some(run_images);
        checkpoint.written_at = Utc::now();
        self.store
            .write_checkpoint(&self.record.registry, &checkpoint)
            .await
            .map_err(JournalError::unwritten)
    }

    async fn known_blobs(&self, repository: &str) -> KnownBlobs {
        let registry = &self.record.registry;
        match self.store.known_blobs(registry, repository).await {
            Ok(known) => known.unwrap_or_default(),
            Err(error) => {
                tracing::warn!(%error, repository, "the blobs an earlier run read could not be read; reading the bodies again");
                KnownBlobs::new()
            }
        }
    }

    async fn remember_blobs(&self, repository: &str, blobs: Staying<'_>) {
        let registry = &self.record.registry;
        if let Err(error) = self
            .store
            .write_known_blobs(registry, repository, &blobs)
            .await
        {
            tracing::warn!(%error, repository, "the blobs read for the storage figures could not be remembered");
        }
    }
}

impl DurableRun {
    async fn append(&self, lines: Vec<AuditLine>) -> Result<(), JournalError> {
        if lines.is_empty() {
            return Ok(());
        }
        self.store
            .append_audit(self.id(), &lines)
            .await
            .map_err(JournalError::unwritten)?;
        if let Ok(mut audited) = self.audited.lock() {
            lines.iter().for_each(|line| audited.add_audit(line));
        }
        if self.resuming
            && let Ok(mut recorded) = self.recorded.lock()
        {
            recorded.extend(lines.iter().map(AuditLine::key));
        }
        Ok(())
    }

    /// The audit line of an attempted item (`None`: not attempted).
    fn attempt(
        &self,
        repo: &RepositoryReport,
        item: Item<'_>,
        time: chrono::DateTime<Utc>,
    ) -> Option<AuditLine> {
        let outcome = item.outcome()?;
        let detail = match outcome {
            Outcome::Stopped => return None,
            Outcome::Skipped { why } => Some(String::clone(why)),
            Outcome::Failed { error } => Some(String::clone(error)),
            Outcome::Deleted | Outcome::AlreadyGone | Outcome::NotAllowed => None,
        };
        let (kind, tag) = match item {
            Item::Tag(t) => ("tag", Some(t.decision.name.to_string())),
            Item::Manifest(_) => ("manifest", None),
        };
        let verdict = item.verdict();
        let rule = match verdict {
            crate::plan::Verdict::Delete { reason } => reason.rule(),
            crate::plan::Verdict::Keep { .. } | crate::plan::Verdict::Cascade { .. } => None,
        };
        Some(AuditLine {
            time,
            run: self.id().to_string(),
            invocation: self.invocation,
            repository: repo.repository.clone(),
            kind: kind.into(),
            tag,
            digest: item.digest().to_string(),
            tags: item.tags().iter().map(|t| t.to_string()).collect(),
            rule,
            reason: verdict.explain(),
            outcome: outcome.name().into(),
            detail,
            reconciled: false,
        })
    }

    /// The deletions of the stored plan of `repo` that no line records and that the new
    /// listing no longer shows: an earlier invocation deleted them and died before saying so.
    async fn reconcile(
        &self,
        repo: &RepositoryReport,
    ) -> Result<Vec<AuditLine>, crate::store::StoreError> {
        let name = &repo.repository;
        let Some(old) = self.store.plan::<StoredPlan>(self.id(), name).await? else {
            return Ok(Vec::new());
        };
        let gone_repository = matches!(repo.status, RepositoryStatus::NotFound);
        let tags: HashSet<(&str, &str)> = repo
            .tags
            .iter()
            .map(|t| (t.decision.name.as_str(), t.decision.digest.as_str()))
            .collect();
        let tag_names: HashSet<&str> = repo.tags.iter().map(|t| t.decision.name.as_str()).collect();
        let manifests: HashSet<&str> = repo
            .manifests
            .iter()
            .map(|m| m.decision.digest.as_str())
            .chain(repo.tags.iter().map(|t| t.decision.digest.as_str()))
            .collect();
        let recorded = self.recorded.lock().map(|r| r.clone()).unwrap_or_default();
        let now = Utc::now();
        let mut lines = Vec::new();
        let deletions = old.tags.iter().map(|i| (i, true));
        let deletions = deletions.chain(old.manifests.iter().map(|i| (i, false)));
        for (item, is_tag) in deletions.filter(|(i, _)| i.decision == "delete") {
            let tag = if is_tag { item.name.clone() } else { None };
            let key = match &tag {
                Some(t) => format!("tag:{t}"),
                None => format!("manifest:{}", item.digest),
            };
            if recorded.contains(&(name.clone(), key)) {
                continue;
            }
            let gone = gone_repository
                || match &tag {
                    // A tag of that name on another digest was pushed again since: not ours
                    // to claim.
                    Some(t) => {
                        !tags.contains(&(t.as_str(), item.digest.as_str()))
                            && !tag_names.contains(t.as_str())
                    }
                    None => !manifests.contains(item.digest.as_str()),
                };
            if !gone {
                continue;
            }
            lines.push(AuditLine {
                time: now,
                run: self.id().to_string(),
                invocation: self.invocation,
                repository: name.clone(),
                kind: if is_tag { "tag" } else { "manifest" }.into(),
                tags: if is_tag { vec![tag.clone().unwrap_or_default()] } else { item.tags.clone() },
                tag,
                digest: item.digest.clone(),
                rule: item.rule,
                reason: item.reason.clone().unwrap_or_else(|| "planned for deletion".into()),
                outcome: "deleted".into(),
                detail: Some(
                    "recorded on resumption: the invocation that deleted it stopped before recording it"
                        .into(),
                ),
                reconciled: true,
            });
        }
        Ok(lines)
    }
}
