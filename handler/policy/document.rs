//! The policy as a JSON document (`PURGE_POLICY`, `PURGE_POLICY_FILE`), described by
//! `policy.schema.json` at the repository root:
//!
//! ```json
//! {"rules": [{"filter": ["app:.*"], "ago": "30d", "keep": 5, "untagged": true}],
//!  "protect": ["app:^(latest|prod)$"], "dryRun": false, "concurrency": 8,
//!  "rateCard": "standard"}
//! ```
//!
//! Each rule's fields mirror `acr purge`'s flags and are validated exactly as the command
//! line validates them; unknown fields are errors, and every error names where it is.

use super::{
    Ago, Bounds, Filter, LimitSetting, Policy, Rule, RuleSpec, RuleSpecError, WorkloadScope,
};
use crate::registry::{Concurrency, RateCard};
use serde::Deserialize;

/// A validated policy document.
#[derive(Debug, Clone)]
pub struct PolicyDocument {
    /// The rules and protect patterns.
    pub policy: Policy,
    /// Whether every run of this policy is a dry run.
    pub dry_run: bool,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// ACR's per-identity request budgets to pace to (default Standard).
    pub rate_card: RateCard,
    /// `maxDeletions`: the blast-radius guard (absent: the scheduled default, 50%; `null`:
    /// none).
    pub max_deletions: LimitSetting,
    /// `maxRunDeletions`: the guard over a whole run (absent: the scheduled default, 50% of
    /// the tagged images the run covers; `null`: none).
    pub max_run_deletions: LimitSetting,
}

/// What is wrong with a policy document, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy: {0}")]
pub struct PolicyError(String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPolicy {
    rules: Vec<RawRule>,
    #[serde(default)]
    protect: Vec<String>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    concurrency: Option<usize>,
    #[serde(default)]
    rate_card: Option<String>,
    #[serde(default)]
    protect_in_use: Vec<String>,
    #[serde(default)]
    keep_deployed: usize,
    #[serde(default)]
    in_use_grace: Option<String>,
    #[serde(default)]
    in_use_exclude_clusters: Vec<String>,
    #[serde(default)]
    exclude_pullers: Vec<String>,
    #[serde(default)]
    findings_scope: Vec<String>,
    /// Absent: `None`; `null`: `Some(Null)`.
    #[serde(default, deserialize_with = "present")]
    max_deletions: Option<serde_json::Value>,
    /// Absent: `None`; `null`: `Some(Null)`.
    #[serde(default, deserialize_with = "present")]
    max_run_deletions: Option<serde_json::Value>,
}

/// Deserializes a field that is present (even `null`) as `Some`.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(deserializer).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRule {
    #[serde(default)]
    filter: OneOrMany,
    #[serde(default)]
    ago: Option<String>,
    #[serde(default)]
    keep: usize,
    #[serde(default)]
    untagged: bool,
    #[serde(default)]
    untagged_only: bool,
    #[serde(default)]
    include_locked: bool,
    #[serde(default)]
    not_pulled_for: Option<String>,
    #[serde(default)]
    vulnerable: Option<RawVulnerable>,
    #[serde(default)]
    min_tags: Option<usize>,
    #[serde(default)]
    max_tags: Option<usize>,
    #[serde(default)]
    min_untagged_manifests: Option<usize>,
    #[serde(default)]
    max_untagged_manifests: Option<usize>,
}

/// `vulnerable: {"minSeverity": "High"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawVulnerable {
    min_severity: String,
}

#[derive(Deserialize, Default)]
#[serde(untagged)]
enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::None => Vec::new(),
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

impl PolicyDocument {
    /// Parses and validates a policy document.
    pub fn parse(text: &str) -> Result<PolicyDocument, PolicyError> {
        let mut reader = serde_json::Deserializer::from_str(text);
        let raw: RawPolicy = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
            let path = e.path().to_string();
            let place = if path == "." {
                String::new()
            } else {
                format!("{path}: ")
            };
            PolicyError(format!(
                "{place}{} (see policy.schema.json for the expected shape)",
                e.inner()
            ))
        })?;
        if raw.rules.is_empty() {
            return Err(PolicyError(
                "rules: at least one rule is needed".to_string(),
            ));
        }
        let mut rules = Vec::with_capacity(raw.rules.len());
        for (i, rule) in raw.rules.into_iter().enumerate() {
            rules.push(rule_from(i, rule)?);
        }
        let protect = raw
            .protect
            .iter()
            .enumerate()
            .map(|(i, p)| Filter::parse(p).map_err(|e| PolicyError(format!("protect[{i}]: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let concurrency = match raw.concurrency {
            None => Concurrency::DEFAULT.get(),
            Some(n) if Concurrency::new(n).is_some() => n,
            Some(n) => {
                return Err(PolicyError(format!(
                    "concurrency: {n} is outside 1..={}",
                    Concurrency::MAX.get()
                )));
            }
        };
        let rate_card = match raw.rate_card {
            None => RateCard::default(),
            Some(text) => {
                RateCard::parse(&text).map_err(|e| PolicyError(format!("rateCard: {e}")))?
            }
        };
        let protect_in_use = raw
            .protect_in_use
            .iter()
            .enumerate()
            .map(|(i, s)| {
                WorkloadScope::parse(s).map_err(|e| PolicyError(format!("protectInUse[{i}]: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if raw.keep_deployed > 0 && protect_in_use.is_empty() {
            return Err(PolicyError(
                "keepDeployed: needs protectInUse (the scopes where deployments are found)"
                    .to_string(),
            ));
        }
        let in_use_grace = match raw.in_use_grace {
            None => None,
            Some(_) if protect_in_use.is_empty() => {
                return Err(PolicyError(
                    "inUseGrace: needs protectInUse (the grace keeps fresh images while in-use protection is on)"
                        .to_string(),
                ));
            }
            Some(text) => {
                let grace =
                    Ago::parse(&text).map_err(|e| PolicyError(format!("inUseGrace: {e}")))?;
                if grace.capped {
                    return Err(PolicyError("inUseGrace: longer than 150 years".to_string()));
                }
                Some(grace)
            }
        };
        if !raw.in_use_exclude_clusters.is_empty() && protect_in_use.is_empty() {
            return Err(PolicyError(
                "inUseExcludeClusters: needs protectInUse".to_string(),
            ));
        }
        for (i, id) in raw.in_use_exclude_clusters.iter().enumerate() {
            super::check_cluster_id(id)
                .map_err(|e| PolicyError(format!("inUseExcludeClusters[{i}]: {e}")))?;
        }
        let findings_scope = raw
            .findings_scope
            .iter()
            .enumerate()
            .map(|(i, s)| {
                WorkloadScope::parse(s).map_err(|e| PolicyError(format!("findingsScope[{i}]: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(i) = raw.exclude_pullers.iter().position(|p| p.trim().is_empty()) {
            return Err(PolicyError(format!("excludePullers[{i}]: empty")));
        }
        let max_deletions = limit_field("maxDeletions", "--max-deletions", &raw.max_deletions)?;
        let max_run_deletions = limit_field(
            "maxRunDeletions",
            "--max-run-deletions",
            &raw.max_run_deletions,
        )?;
        Ok(PolicyDocument {
            policy: Policy {
                rules,
                protect,
                protect_in_use,
                keep_deployed: raw.keep_deployed,
                in_use_grace,
                in_use_exclude_clusters: raw.in_use_exclude_clusters,
                exclude_pullers: raw.exclude_pullers,
                findings_scope,
            },
            dry_run: raw.dry_run,
            concurrency,
            rate_card,
            max_deletions,
            max_run_deletions,
        })
    }
}

/// A limit field (`maxDeletions`, `maxRunDeletions`): absent, `null` (none), a count, or a
/// string `N` / `P%`.
fn limit_field(
    field: &str,
    flag: &'static str,
    value: &Option<serde_json::Value>,
) -> Result<LimitSetting, PolicyError> {
    let parse = |text: &str| {
        LimitSetting::parse_for(flag, text).map_err(|e| PolicyError(format!("{field}: {e}")))
    };
    match value {
        None => Ok(LimitSetting::Default),
        Some(serde_json::Value::Null) => Ok(LimitSetting::Lifted),
        Some(serde_json::Value::Number(n)) => parse(&n.to_string()),
        Some(serde_json::Value::String(text)) if !text.trim().eq_ignore_ascii_case("none") => {
            parse(text)
        }
        Some(other) => Err(PolicyError(format!(
            "{field}: {other} is not a count, a share (\"50%\") or null (no limit)"
        ))),
    }
}

impl Policy {
    /// This policy as a policy document's `rules` and `protect` (the shape
    /// [`PolicyDocument::parse`] reads back to an equal policy): saved plans carry it so
    /// that `handler apply` decides by exactly the rules that made the plan.
    pub fn to_document(&self) -> serde_json::Value {
        let rules: Vec<serde_json::Value> = self
            .rules
            .iter()
            .map(|rule| {
                let mut value = serde_json::json!({
                    "filter": rule.filters.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "ago": rule.ago.to_string(),
                    "keep": rule.keep,
                    "untagged": rule.untagged,
                    "untaggedOnly": rule.untagged_only,
                    "includeLocked": rule.include_locked,
                });
                if let (Some(window), Some(object)) = (rule.not_pulled_for, value.as_object_mut()) {
                    object.insert("notPulledFor".into(), window.to_string().into());
                }
                if let (Some(min), Some(object)) = (rule.vulnerable_min, value.as_object_mut()) {
                    object.insert(
                        "vulnerable".into(),
                        serde_json::json!({ "minSeverity": min.name() }),
                    );
                }
                let b = rule.bounds;
                for (field, bound) in [
                    ("minTags", b.min_tags),
                    ("maxTags", b.max_tags),
                    ("minUntaggedManifests", b.min_untagged),
                    ("maxUntaggedManifests", b.max_untagged),
                ] {
                    if let (Some(n), Some(object)) = (bound, value.as_object_mut()) {
                        object.insert(field.into(), n.into());
                    }
                }
                value
            })
            .collect();
        let protect: Vec<String> = self.protect.iter().map(ToString::to_string).collect();
        let in_use: Vec<String> = self
            .protect_in_use
            .iter()
            .map(WorkloadScope::resource_id)
            .collect();
        let mut document = serde_json::json!({
            "rules": rules,
            "protect": protect,
            "protectInUse": in_use,
            "keepDeployed": self.keep_deployed,
            "excludePullers": self.exclude_pullers,
        });
        if let (Some(grace), Some(object)) = (self.in_use_grace, document.as_object_mut()) {
            object.insert("inUseGrace".into(), grace.to_string().into());
        }
        if let (false, Some(object)) = (
            self.in_use_exclude_clusters.is_empty(),
            document.as_object_mut(),
        ) {
            object.insert(
                "inUseExcludeClusters".into(),
                self.in_use_exclude_clusters.clone().into(),
            );
        }
        if let (false, Some(object)) = (self.findings_scope.is_empty(), document.as_object_mut()) {
            let scopes: Vec<String> = self
                .findings_scope
                .iter()
                .map(WorkloadScope::resource_id)
                .collect();
            object.insert("findingsScope".into(), scopes.into());
        }
        document
    }
}

fn rule_from(index: usize, raw: RawRule) -> Result<Rule, PolicyError> {
    let at =
        |field: &str, problem: String| PolicyError(format!("rules[{index}].{field}: {problem}"));
    let filters = raw.filter.into_vec();
    let rule = Rule::build(RuleSpec {
        filters: &filters,
        ago: raw.ago.as_deref(),
        keep: raw.keep,
        untagged: raw.untagged,
        untagged_only: raw.untagged_only,
        include_locked: raw.include_locked,
        not_pulled_for: raw.not_pulled_for.as_deref(),
        vulnerable_min: raw.vulnerable.as_ref().map(|v| v.min_severity.as_str()),
        bounds: Bounds {
            min_tags: raw.min_tags,
            max_tags: raw.max_tags,
            min_untagged: raw.min_untagged_manifests,
            max_untagged: raw.max_untagged_manifests,
        },
    })
    .map_err(|e| match e {
        RuleSpecError::Filter { index: j, error } => at(&format!("filter[{j}]"), error.to_string()),
        RuleSpecError::Ago(error) => at("ago", error.to_string()),
        RuleSpecError::NotPulledFor(error) => at("notPulledFor", error.to_string()),
        RuleSpecError::Vulnerable(error) => at("vulnerable.minSeverity", error.to_string()),
        RuleSpecError::AgoMissing => at("ago", "required unless untaggedOnly is true".to_string()),
        RuleSpecError::Flags(error) => PolicyError(format!("rules[{index}]: {error}")),
    })?;
    if rule.ago.capped || rule.not_pulled_for.is_some_and(|a| a.capped) {
        return Err(at("ago", "longer than 150 years".to_string()));
    }
    Ok(rule)
}

#[cfg(test)]
mod tests;
