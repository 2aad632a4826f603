//! What Azure knows of the registry's images, gathered once per run before any repository
//! is planned: the images Azure workloads run (Azure Resource Graph, for in-use protection
//! and `keepDeployed`) and the last pulls (Log Analytics, for `notPulledFor`). The planner
//! reads it per repository ([`Gathered::for_repository`]).
//!
//! Fails closed: with in-use protection on, a query that fails or answers partially stops
//! the run before anything is deleted ([`RunError::InUseUnknown`]). Pulls that cannot be
//! read are not an error: every item under a `notPulledFor` rule then counts as pulled and
//! is kept, with the reason.

use crate::azure::in_use::{ImageReference, InUseClient, InUseScope};
use crate::azure::pulls::PullLog;
use crate::azure::setup::SetupError;
pub use crate::plan::evidence::DeployHistory;
use crate::plan::evidence::{Evidence, Findings, InUse, Pulls};
use crate::policy::{Policy, WorkloadScope};
use crate::report::RunError;
use crate::settings;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// The clients to ask, built from the settings for what the policy needs.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Resource Graph, when the policy protects what is in use.
    pub in_use: Option<InUseClient>,
    /// The pull logs, when a rule has `notPulledFor` and a workspace is configured.
    pub pulls: Option<PullLog>,
    /// Resource Graph for Defender's findings, when the policy reads them
    /// ([`Policy::wants_findings`]).
    pub findings: Option<InUseClient>,
}

impl Sources {
    /// The clients `policy` needs, at `PURGE_ARM_ENDPOINT` / `PURGE_LOGS_ENDPOINT` (the
    /// public cloud's by default), the workspace `workspace` (else
    /// `PURGE_LOGS_WORKSPACE_ID`), signed in as the environment's Azure identity. `None`
    /// when the policy needs neither.
    pub fn for_policy(
        policy: &Policy,
        workspace: Option<&str>,
    ) -> Result<Option<Sources>, SetupError> {
        let wants_in_use = !policy.protect_in_use.is_empty();
        let wants_pulls = policy.longest_pull_window().is_some();
        let wants_findings = policy.wants_findings();
        if !wants_in_use && !wants_pulls && !wants_findings {
            return Ok(None);
        }
        let credential = crate::outbound::azure_credential()?;
        let http = crate::outbound::http_client_builder(&[]).and_then(|b| {
            b.timeout(std::time::Duration::from_secs(60))
                .build()
                .map_err(|e| crate::outbound::OutboundError::Tls(e.to_string()))
        })?;
        let endpoint = crate::azure::setup::endpoint;
        let in_use = match wants_in_use {
            false => None,
            true => {
                let arm = endpoint(settings::PURGE_ARM_ENDPOINT, settings::DEFAULT_ARM_ENDPOINT)?;
                Some(
                    InUseClient::new(arm, credential.clone(), http.clone()).with_excluded_clusters(
                        policy.in_use_exclude_clusters.iter().map(String::as_str),
                    ),
                )
            }
        };
        let findings = match wants_findings {
            false => None,
            true => {
                let arm = endpoint(settings::PURGE_ARM_ENDPOINT, settings::DEFAULT_ARM_ENDPOINT)?;
                Some(InUseClient::new(arm, credential.clone(), http.clone()))
            }
        };
        let workspace = workspace
            .map(str::to_string)
            .or_else(|| std::env::var(settings::PURGE_LOGS_WORKSPACE_ID).ok())
            .filter(|w| !w.trim().is_empty());
        let pulls = match (wants_pulls, workspace) {
            (true, Some(workspace)) => {
                let logs = endpoint(
                    settings::PURGE_LOGS_ENDPOINT,
                    settings::DEFAULT_LOGS_ENDPOINT,
                )?;
                Some(PullLog::new(logs, workspace.trim(), credential, http))
            }
            _ => None,
        };
        Ok(Some(Sources {
            in_use,
            pulls,
            findings,
        }))
    }
}

impl Sources {
    /// [`Sources::for_policy`] for a run: a set-up failure stops a run that protects what
    /// is in use (nothing may be deleted unseen); it only leaves pulls unknown otherwise.
    pub fn for_run(
        policy: &Policy,
        workspace: Option<&str>,
    ) -> Result<Option<std::sync::Arc<Sources>>, Box<RunError>> {
        match Sources::for_policy(policy, workspace) {
            Ok(sources) => Ok(sources.map(std::sync::Arc::new)),
            Err(error) if !policy.protect_in_use.is_empty() => {
                Err(Box::new(RunError::InUseUnknown(error.to_string())))
            }
            Err(error) => {
                tracing::warn!(%error, "the pull logs cannot be read: every item under notPulledFor counts as pulled");
                Ok(None)
            }
        }
    }
}

/// What was gathered for a run.
#[derive(Debug, Default)]
pub struct Gathered {
    in_use: Option<HashMap<String, InUse>>,
    pulls: Option<PullsByRepository>,
    history: Arc<DeployHistory>,
    keep_deployed: usize,
    fresh_after: Option<DateTime<Utc>>,
    findings: Option<FindingsRead>,
}

/// Defender's findings as read for the run.
#[derive(Debug, Clone)]
pub enum FindingsRead {
    /// Read: (repository, digest) → CVE → severity.
    Known(crate::azure::findings::Findings),
    /// Not read, and why.
    Unknown(String),
}

/// Last pulls by digest and by tag, of one repository.
type RepositoryPulls = (
    HashMap<String, DateTime<Utc>>,
    HashMap<String, DateTime<Utc>>,
);

#[derive(Debug)]
enum PullsByRepository {
    Known {
        since: Option<DateTime<Utc>>,
        by_repository: HashMap<String, RepositoryPulls>,
    },
    Unknown(String),
}

impl Gathered {
    /// The evidence about one repository.
    pub fn for_repository(&self, repository: &str) -> Evidence {
        let in_use = self
            .in_use
            .as_ref()
            .map(|all| all.get(repository).cloned().unwrap_or_default());
        let pulls = self.pulls.as_ref().map(|pulls| match pulls {
            PullsByRepository::Unknown(why) => Pulls::Unknown(why.clone()),
            PullsByRepository::Known {
                since,
                by_repository,
            } => {
                let (by_digest, by_tag) =
                    by_repository.get(repository).cloned().unwrap_or_default();
                Pulls::Known {
                    since: *since,
                    by_digest,
                    by_tag,
                }
            }
        });
        let history = self.history.repositories.get(repository);
        let seen = || history.into_iter().flatten();
        Evidence {
            in_use,
            deployed_at: seen().map(|(d, s)| (d.clone(), s.last_seen)).collect(),
            deployed_via: seen()
                .map(|(d, s)| (d.clone(), s.via_tags.iter().cloned().collect()))
                .collect(),
            keep_deployed: self.keep_deployed,
            pulls,
            fresh_after: self.fresh_after,
            findings: self.findings.as_ref().map(|f| match f {
                FindingsRead::Unknown(why) => Findings::Unknown(why.clone()),
                FindingsRead::Known(all) => Findings::Known(
                    all.by_image
                        .range((repository.to_string(), String::new())..)
                        .take_while(|((r, _), _)| r == repository)
                        .filter_map(|((_, digest), cves)| {
                            cves.values().max().map(|worst| (digest.clone(), *worst))
                        })
                        .collect(),
                ),
            }),
        }
    }

    /// The severities of the unresolved findings on each digest of `repository` (empty when
    /// none were read).
    pub fn findings_by_digest(
        &self,
        repository: &str,
    ) -> std::collections::BTreeMap<String, Vec<crate::policy::Severity>> {
        match &self.findings {
            Some(FindingsRead::Known(all)) => all
                .by_image
                .range((repository.to_string(), String::new())..)
                .take_while(|((r, _), _)| r == repository)
                .map(|((_, digest), cves)| (digest.clone(), cves.values().copied().collect()))
                .collect(),
            _ => std::collections::BTreeMap::new(),
        }
    }

    /// Defender's findings as read for the run, when the policy reads them.
    pub fn findings(&self) -> Option<&FindingsRead> {
        self.findings.as_ref()
    }

    /// With in-use protection on, the tags workloads refer to in `repository` (its
    /// findings go into the deployment history); `None` when it is off.
    pub fn in_use_tags(&self, repository: &str) -> Option<Vec<&str>> {
        let all = self.in_use.as_ref()?;
        Some(
            all.get(repository)
                .map(|u| u.tags.keys().map(String::as_str).collect())
                .unwrap_or_default(),
        )
    }
}

/// Asks the sources what `policy` needs about the registry `login_server`.
pub async fn gather(
    login_server: &str,
    policy: &Policy,
    sources: Option<&Sources>,
    history: Arc<DeployHistory>,
    now: DateTime<Utc>,
) -> Result<Gathered, RunError> {
    let mut gathered = Gathered {
        history,
        keep_deployed: policy.keep_deployed,
        fresh_after: policy
            .in_use_grace()
            .filter(|grace| *grace > chrono::TimeDelta::zero())
            .map(|grace| now - grace),
        ..Gathered::default()
    };
    if !policy.protect_in_use.is_empty() {
        let client = sources.and_then(|s| s.in_use.as_ref()).ok_or_else(|| {
            RunError::InUseUnknown("no Resource Graph client is configured".to_string())
        })?;
        let scopes: Vec<InUseScope> = policy
            .protect_in_use
            .iter()
            .map(|s| match s {
                WorkloadScope::Subscription(id) => InUseScope::Subscription(id.clone()),
                WorkloadScope::ManagementGroup(id) => InUseScope::ManagementGroup(id.clone()),
            })
            .collect();
        let images = client
            .images(login_server, &scopes)
            .await
            .map_err(|e| RunError::InUseUnknown(e.to_string()))?;
        let mut by_repository: HashMap<String, InUse> = HashMap::new();
        for image in images {
            let entry = by_repository.entry(image.repository).or_default();
            match image.reference {
                ImageReference::Digest(digest) => {
                    entry.digests.entry(digest).or_insert(image.resource_id);
                }
                ImageReference::Tag(tag) => {
                    entry.tags.entry(tag).or_insert(image.resource_id);
                }
            }
        }
        tracing::info!(
            repositories = by_repository.len(),
            "in-use images read from Resource Graph"
        );
        gathered.in_use = Some(by_repository);
    }
    if policy.wants_findings() {
        gathered.findings = Some(read_findings(login_server, policy, sources).await);
    }
    if let Some(window) = policy.longest_pull_window() {
        gathered.pulls = Some(match sources.and_then(|s| s.pulls.as_ref()) {
            None => PullsByRepository::Unknown(
                "no Log Analytics workspace is configured (PURGE_LOGS_WORKSPACE_ID, --logs-workspace)"
                    .to_string(),
            ),
            Some(log) => match log
                .last_pulls(login_server, window, now, &policy.exclude_pullers)
                .await
            {
                Err(error) => {
                    tracing::warn!(%error, "the pull logs could not be read: every item under notPulledFor counts as pulled");
                    PullsByRepository::Unknown(format!("the pull logs could not be read: {error}"))
                }
                Ok(pulls) => {
                    let mut by_repository: HashMap<String, RepositoryPulls> = HashMap::new();
                    for ((repository, digest), at) in pulls.by_digest {
                        by_repository.entry(repository).or_default().0.insert(digest, at);
                    }
                    for ((repository, tag), at) in pulls.by_tag {
                        by_repository.entry(repository).or_default().1.insert(tag, at);
                    }
                    PullsByRepository::Known {
                        since: pulls.covered_since,
                        by_repository,
                    }
                }
            },
        });
    }
    Ok(gathered)
}

/// Reads Defender's findings over `findingsScope` (else `protectInUse`); a failure is not a
/// run error: the report says why, and every `vulnerable` rule selects nothing.
async fn read_findings(
    login_server: &str,
    policy: &Policy,
    sources: Option<&Sources>,
) -> FindingsRead {
    let Some(client) = sources.and_then(|s| s.findings.as_ref()) else {
        return FindingsRead::Unknown("no Resource Graph client is configured".to_string());
    };
    let scopes: Vec<InUseScope> = policy
        .findings_scopes()
        .iter()
        .map(|s| match s {
            WorkloadScope::Subscription(id) => InUseScope::Subscription(id.clone()),
            WorkloadScope::ManagementGroup(id) => InUseScope::ManagementGroup(id.clone()),
        })
        .collect();
    if scopes.is_empty() {
        return FindingsRead::Unknown(
            "no scope to read Defender's findings in (findingsScope, --findings-scope, or protectInUse)"
                .to_string(),
        );
    }
    match crate::azure::findings::read(client, login_server, &scopes).await {
        Ok(findings) => {
            tracing::info!(
                images = findings.by_image.len(),
                "Defender findings read from Resource Graph"
            );
            FindingsRead::Known(findings)
        }
        Err(error) => {
            tracing::warn!(%error, "Defender's findings could not be read: vulnerable rules select nothing");
            FindingsRead::Unknown(error.to_string())
        }
    }
}
