//! `policy/document.rs`'s unit tests: documents read back, the deletion limits' fields, and
//! `policy.schema.json` agreeing with the parser.

use super::*;
use crate::policy::{DeletionLimit, LimitSetting};
use std::collections::BTreeSet;

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

// The deletion limits: `maxDeletions`, `maxRunDeletions`, count bounds.

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

// policy.schema.json against the parser.

const SCHEMA: &str = include_str!("../../../policy.schema.json");

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
    assert!(PolicyDocument::parse(r#"{"rules":[{"filter":"a:b","ago":"1d"}],"extra":1}"#).is_err());
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
