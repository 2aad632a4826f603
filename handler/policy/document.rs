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
mod tests {
    use super::*;

    #[test]
    fn a_policy_reads_back_from_its_document() {
        let text = r#"{"rules":[{"filter":["app:.*","b:^v1$"],"ago":"1d3h15m","keep":2,"untagged":true,"includeLocked":true,"notPulledFor":"90d"},{"untaggedOnly":true}],"protect":["app:^prod$"],"protectInUse":["/subscriptions/0000-1","/providers/Microsoft.Management/managementGroups/corp"],"keepDeployed":3,"inUseGrace":"12h","inUseExcludeClusters":["/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/private"],"excludePullers":["scanner"]}"#;
        let policy = PolicyDocument::parse(text).unwrap().policy;
        let again = PolicyDocument::parse(&policy.to_document().to_string())
            .unwrap()
            .policy;
        assert_eq!(format!("{policy:?}"), format!("{again:?}"));
        assert_eq!(policy.to_document(), again.to_document());
    }

    #[test]
    fn parses_the_documented_example() {
        let doc = PolicyDocument::parse(
            r#"{"rules":[{"filter":["app:.*"],"ago":"30d","keep":5,"untagged":true,"untaggedOnly":false,"includeLocked":false}],"protect":["app:^(latest|prod)$"],"dryRun":false,"concurrency":8}"#,
        )
        .unwrap();
        assert_eq!(doc.policy.rules.len(), 1);
        assert_eq!(doc.policy.rules[0].keep, 5);
        assert!(doc.policy.rules[0].untagged);
        assert_eq!(doc.policy.protect.len(), 1);
        assert_eq!(doc.concurrency, 8);
        assert!(!doc.dry_run);
    }

    #[test]
    fn accepts_a_single_filter_and_untagged_only_without_ago() {
        let doc = PolicyDocument::parse(
            r#"{"rules":[{"filter":"app:.*","ago":"1d"},{"untaggedOnly":true}]}"#,
        )
        .unwrap();
        assert_eq!(doc.policy.rules[0].filters.len(), 1);
        assert!(doc.policy.rules[1].filters.is_empty());
        assert_eq!(doc.concurrency, Concurrency::DEFAULT.get());
    }

    #[test]
    fn errors_say_where() {
        for (text, place) in [
            ("{", "EOF"),
            (r#"{"rules":[]}"#, "rules:"),
            (
                r#"{"rules":[{"filter":["app:["],"ago":"1d"}]}"#,
                "rules[0].filter[0]",
            ),
            (
                r#"{"rules":[{"filter":"a:b","ago":"3h2d"}]}"#,
                "rules[0].ago",
            ),
            (r#"{"rules":[{"filter":"a:b"}]}"#, "rules[0].ago: required"),
            (
                r#"{"rules":[{"ago":"1d"}]}"#,
                "rules[0]: --filter is required",
            ),
            (
                r#"{"rules":[{"filter":"a:b","ago":"1d","untagged":true,"untaggedOnly":true}]}"#,
                "rules[0]: --untagged and --untagged-only",
            ),
            (
                r#"{"rules":[{"filter":"a:b","ago":"1d","agoo":"1d"}]}"#,
                "unknown field `agoo`",
            ),
            (
                r#"{"rules":[{"filter":"a:b","ago":"1d"}],"protect":["x"]}"#,
                "protect[0]",
            ),
            (
                r#"{"rules":[{"filter":"a:b","ago":"1d"}],"concurrency":0}"#,
                "concurrency",
            ),
            (
                r#"{"rules":[{"filter":"a:b","ago":"1d","keep":-1}]}"#,
                "rules[0].keep: invalid value",
            ),
            (
                r#"{"rules":[{"filter":"a:b","ago":"1d","minTags":3,"maxTags":2}]}"#,
                "rules[0]: --min-tags/--min-untagged-manifests cannot be above",
            ),
            (
                r#"{"rules":[{"filter":"a:b","ago":"1d","maxTags":0}]}"#,
                "rules[0]: --max-tags and --max-untagged-manifests must be at least 1",
            ),
            (
                r#"{"rules":[{"untaggedOnly":true,"minTags":1}]}"#,
                "rules[0]: --min-tags and --max-tags cannot be used with --untagged-only",
            ),
            (
                r#"{"rules":[{"filter":"a:b","ago":"1d","maxUntaggedManifests":3}]}"#,
                "rules[0]: --min-untagged-manifests and --max-untagged-manifests need --untagged",
            ),
            (
                r#"{"rules":[{"filter":"a:b","ago":"1d","minTags":-1}]}"#,
                "rules[0].minTags: invalid value",
            ),
            (
                r#"{"rules":[{"filter":"a:b","ago":"1d"}],"maxDeletions":"half"}"#,
                "maxDeletions: invalid --max-deletions value \"half\"",
            ),
            (
                r#"{"rules":[{"filter":"a:b","ago":"1d"}],"maxDeletions":"none"}"#,
                "maxDeletions: \"none\" is not a count",
            ),
            (
                r#"{"rules":[{"filter":"a:b","ago":"1d"}],"maxDeletions":-3}"#,
                "maxDeletions: invalid --max-deletions value \"-3\"",
            ),
            (
                r#"{"rules":[{"filter":"a:b","ago":"1d"}],"maxDeletions":"150%"}"#,
                "at most 100%",
            ),
            (
                r#"{"rules":[{"filter":"a:b","ago":"1d"}],"inUseGrace":"48h"}"#,
                "inUseGrace: needs protectInUse",
            ),
            (
                r#"{"rules":[{"filter":"a:b","ago":"1d"}],"protectInUse":["s"],"inUseGrace":"2 days"}"#,
                "inUseGrace: invalid",
            ),
            (
                r#"{"rules":[{"filter":"a:b","ago":"1d"}],"protectInUse":["s"],"inUseExcludeClusters":["/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/x"]}"#,
                "inUseExcludeClusters[0]",
            ),
            (
                r#"{"rules":[{"filter":"a:b","ago":"1d"}],"inUseExcludeClusters":["/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c"]}"#,
                "inUseExcludeClusters: needs protectInUse",
            ),
        ] {
            let err = PolicyDocument::parse(text).expect_err(text).to_string();
            assert!(err.contains(place), "{text}: {err}");
        }
    }
}

#[cfg(test)]
mod limit_tests {
    use super::PolicyDocument;
    use crate::policy::{DeletionLimit, LimitSetting};

    fn limit(extra: &str) -> LimitSetting {
        let text = format!(r#"{{"rules":[{{"filter":"a:b","ago":"1d"}}]{extra}}}"#);
        PolicyDocument::parse(&text).expect(&text).max_deletions
    }

    #[test]
    fn max_deletions_absent_null_count_and_share() {
        assert_eq!(limit(""), LimitSetting::Default);
        assert_eq!(limit(r#","maxDeletions":null"#), LimitSetting::Lifted);
        assert_eq!(
            limit(r#","maxDeletions":7"#),
            LimitSetting::Limit(DeletionLimit::Count(7))
        );
        assert_eq!(
            limit(r#","maxDeletions":"7""#),
            LimitSetting::Limit(DeletionLimit::Count(7))
        );
        assert_eq!(
            limit(r#","maxDeletions":"30%""#),
            LimitSetting::Limit(DeletionLimit::Percent(30))
        );
    }

    #[test]
    fn max_run_deletions_is_its_own_field_with_the_same_grammar() {
        let run = |extra: &str| {
            let text = format!(r#"{{"rules":[{{"filter":"a:b","ago":"1d"}}]{extra}}}"#);
            PolicyDocument::parse(&text).map(|d| (d.max_deletions, d.max_run_deletions))
        };
        assert_eq!(run(""), Ok((LimitSetting::Default, LimitSetting::Default)));
        assert_eq!(
            run(r#","maxDeletions":null,"maxRunDeletions":"20%""#),
            Ok((
                LimitSetting::Lifted,
                LimitSetting::Limit(DeletionLimit::Percent(20))
            ))
        );
        assert_eq!(
            run(r#","maxRunDeletions":null"#),
            Ok((LimitSetting::Default, LimitSetting::Lifted))
        );
        let error = run(r#","maxRunDeletions":"150%""#).expect_err("over 100%");
        assert!(
            error
                .to_string()
                .contains("maxRunDeletions: invalid --max-run-deletions value \"150%\""),
            "{error}"
        );
        assert!(run(r#","maxRunDeletions":true"#).is_err());
    }

    #[test]
    fn bounds_read_back_from_the_document() {
        let text = r#"{"rules":[{"filter":"a:.*","ago":"1d","untagged":true,"minTags":2,"maxTags":9,"minUntaggedManifests":1,"maxUntaggedManifests":4}]}"#;
        let policy = PolicyDocument::parse(text).unwrap().policy;
        let again = PolicyDocument::parse(&policy.to_document().to_string())
            .unwrap()
            .policy;
        assert_eq!(again.rules[0].bounds, policy.rules[0].bounds);
        assert_eq!(policy.rules[0].bounds.max_untagged, Some(4));
        // A rule without bounds writes none (documents of existing policies are unchanged).
        let plain = PolicyDocument::parse(r#"{"rules":[{"filter":"a:.*","ago":"1d"}]}"#)
            .unwrap()
            .policy
            .to_document();
        assert!(plain["rules"][0].get("minTags").is_none(), "{plain}");
    }
}

#[cfg(test)]
mod schema_tests {
    use super::PolicyDocument;
    use std::collections::BTreeSet;

    const SCHEMA: &str = include_str!("../../policy.schema.json");

    fn keys(value: &serde_json::Value) -> BTreeSet<String> {
        value
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The published schema and the parser accept the same fields.
    #[test]
    fn schema_and_parser_agree_on_fields() {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        let top = keys(&schema["properties"]);
        let rule = keys(&schema["$defs"]["rule"]["properties"]);
        assert_eq!(
            top,
            [
                "concurrency",
                "dryRun",
                "excludePullers",
                "findingsScope",
                "inUseExcludeClusters",
                "inUseGrace",
                "keepDeployed",
                "maxDeletions",
                "maxRunDeletions",
                "protect",
                "protectInUse",
                "rateCard",
                "rules"
            ]
            .map(String::from)
            .into()
        );
        assert_eq!(
            rule,
            [
                "ago",
                "filter",
                "includeLocked",
                "keep",
                "maxTags",
                "maxUntaggedManifests",
                "minTags",
                "minUntaggedManifests",
                "notPulledFor",
                "untagged",
                "untaggedOnly",
                "vulnerable"
            ]
            .map(String::from)
            .into()
        );
        let full = r#"{"rules":[{"filter":["a:.*"],"ago":"1d","keep":1,"untagged":true,"untaggedOnly":false,"includeLocked":true,"notPulledFor":"30d","minTags":1,"maxTags":5,"minUntaggedManifests":0,"maxUntaggedManifests":9,"vulnerable":{"minSeverity":"High"}}],"findingsScope":["/subscriptions/sub"],"protect":["a:x"],"dryRun":true,"concurrency":4,"protectInUse":["sub"],"keepDeployed":2,"inUseGrace":"1d12h","inUseExcludeClusters":["/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c"],"excludePullers":["scanner"],"maxDeletions":"25%","maxRunDeletions":40}"#;
        PolicyDocument::parse(full).unwrap();
        assert!(
            PolicyDocument::parse(r#"{"rules":[{"filter":"a:b","ago":"1d"}],"extra":1}"#).is_err()
        );
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["$defs"]["rule"]["additionalProperties"], false);
    }

    /// The schema's `maxDeletions` string pattern accepts what the parser accepts.
    #[test]
    fn schema_max_deletions_pattern_matches_the_grammar() {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        let pattern = schema["properties"]["maxDeletions"]["oneOf"][1]["pattern"]
            .as_str()
            .unwrap();
        assert_eq!(
            schema["properties"]["maxRunDeletions"]["oneOf"],
            schema["properties"]["maxDeletions"]["oneOf"],
            "both limits take the same grammar"
        );
        let re = fancy_regex::Regex::new(pattern).unwrap();
        for good in ["0", "12", "0%", "7%", "50%", "100%", " 5 "] {
            assert!(re.is_match(good).unwrap(), "{good}");
            crate::policy::LimitSetting::parse(good).unwrap();
        }
        for bad in ["101%", "150%", "-1", "1.5", "50 %", "half", "", "%"] {
            assert!(!re.is_match(bad).unwrap(), "{bad}");
            assert!(crate::policy::LimitSetting::parse(bad).is_err(), "{bad}");
        }
    }

    /// The schema's `ago` pattern accepts what the parser accepts, and rejects `3h2d`.
    #[test]
    fn schema_ago_pattern_matches_the_grammar() {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        let pattern = schema["$defs"]["rule"]["properties"]["ago"]["pattern"]
            .as_str()
            .unwrap();
        let re = fancy_regex::Regex::new(pattern).unwrap();
        for good in ["30d", "1d3h6m", "15m", "0d", "1.5h", "2h45m30.5s"] {
            assert!(re.is_match(good).unwrap(), "{good}");
            crate::policy::Ago::parse(good).unwrap();
        }
        for bad in ["3h2d", "d5h", "15", "-1d", "1w"] {
            assert!(!re.is_match(bad).unwrap(), "{bad}");
            assert!(crate::policy::Ago::parse(bad).is_err(), "{bad}");
        }
    }
}
