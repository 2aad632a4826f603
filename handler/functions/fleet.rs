//! The registries one app purges: one (`PURGE_REGISTRY` with its policy, the one-setting
//! case) or a fleet (`PURGE_FLEET`, a document, or `PURGE_FLEET_FILE`, a file of the
//! package), each registry with its own policy: the fleet's `default` policy document
//! with the registry's own fields laid over it (a field the registry gives replaces the
//! default's whole), given inline (`policy`) or as a file of the package (`policyFile`).
//!
//! ```json
//! {
//!   "default": {"rules": [{"filter": ".*:.*", "ago": "30d", "keep": 5}]},
//!   "registries": [
//!     {"registry": "contosodev.azurecr.io"},
//!     {"registry": "contosoprod.azurecr.io", "policy": {"dryRun": true}},
//!     {"registry": "contosoqa.azurecr.io", "policyFile": "policies/qa.json"}
//!   ]
//! }
//! ```
//!
//! The whole fleet is validated at start-up; an error names the registry and the field.
//! Every registry keeps its own run records, lease, checkpoints and audit log: the run store
//! is keyed by the registry's login server.

use crate::policy::PolicyDocument;
use crate::registry::Endpoint;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::Path;

/// The most registries one fleet holds (each is one queue message per timer occurrence).
pub const MAX_REGISTRIES: usize = 1_000;

/// One registry of the fleet and its policy.
#[derive(Debug, Clone)]
pub struct Member {
    /// The registry.
    pub registry: Endpoint,
    /// Its policy (the default with its own fields laid over it).
    pub policy: PolicyDocument,
}

/// The fleet document (`PURGE_FLEET`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleet {
    #[serde(default)]
    default: Option<Map<String, Value>>,
    registries: Vec<RawMember>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawMember {
    registry: String,
    #[serde(default)]
    policy: Option<Map<String, Value>>,
    #[serde(default)]
    policy_file: Option<String>,
}

/// Reads a fleet document; `app_root` resolves `policyFile`s. The error says which
/// registry (by its position and name) and which field is wrong.
pub fn parse(text: &str, app_root: &Path) -> Result<Vec<Member>, String> {
    let mut reader = serde_json::Deserializer::from_str(text);
    let raw: RawFleet = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
        format!(
            "{}: {} (expected {{\"default\": {{policy}}, \"registries\": [{{\"registry\": …, \"policy\"|\"policyFile\": …}}]}})",
            e.path(),
            e.inner()
        )
    })?;
    if raw.registries.is_empty() {
        return Err("registries: the fleet names no registry".into());
    }
    if raw.registries.len() > MAX_REGISTRIES {
        return Err(format!(
            "registries: {} registries, at most {MAX_REGISTRIES}",
            raw.registries.len()
        ));
    }
    let default = raw.default.unwrap_or_default();
    let mut members: Vec<Member> = Vec::with_capacity(raw.registries.len());
    for (index, member) in raw.registries.into_iter().enumerate() {
        let at = format!("registries[{index}] ({:?})", member.registry);
        let registry =
            Endpoint::parse(member.registry.trim()).map_err(|e| format!("{at}.registry: {e}"))?;
        if let Some(earlier) = members
            .iter()
            .position(|m| m.registry.host().eq_ignore_ascii_case(registry.host()))
        {
            return Err(format!(
                "{at}.registry: {} is already registries[{earlier}]; one registry has one policy",
                registry.host()
            ));
        }
        let own = match (member.policy, member.policy_file) {
            (Some(_), Some(_)) => {
                return Err(format!("{at}: give policy or policyFile, not both"));
            }
            (Some(policy), None) => policy,
            (None, Some(file)) => {
                let path = app_root.join(&file);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{at}.policyFile: cannot read {}: {e}", path.display()))?;
                match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(map)) => map,
                    Ok(_) => return Err(format!("{at}.policyFile: {file} is not a JSON object")),
                    Err(e) => return Err(format!("{at}.policyFile: {file}: {e}")),
                }
            }
            (None, None) => Map::new(),
        };
        let mut merged = default.clone();
        merged.extend(own);
        let policy = PolicyDocument::parse(&Value::Object(merged).to_string())
            .map_err(|e| format!("{at}.policy: {e}"))?;
        members.push(Member { registry, policy });
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = r#"{"filter":"app:.*","ago":"30d"}"#;

    fn fleet(registries: &str) -> String {
        format!(r#"{{"default":{{"rules":[{RULE}]}},"registries":{registries}}}"#)
    }

    #[test]
    fn lays_each_registrys_fields_over_the_default() {
        let members = parse(
            &fleet(
                r#"[{"registry":"dev.azurecr.io"},
                    {"registry":"prod.azurecr.io","policy":{"dryRun":true,"rules":[{"filter":"web:.*","ago":"90d"},{"filter":"api:.*","ago":"90d"}]}}]"#,
            ),
            Path::new("/nonexistent"),
        )
        .unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].registry.host(), "dev.azurecr.io");
        assert!(!members[0].policy.dry_run);
        assert_eq!(members[0].policy.policy.rules.len(), 1);
        assert!(members[1].policy.dry_run);
        assert_eq!(members[1].policy.policy.rules.len(), 2);
    }

    #[test]
    fn reads_a_policy_file_per_registry() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        std::fs::write(
            dir.path().join("policies/qa.json"),
            r#"{"rules":[{"filter":"qa:.*","ago":"1d"}],"concurrency":2}"#,
        )
        .unwrap();
        let members = parse(
            r#"{"registries":[{"registry":"qa.azurecr.io","policyFile":"policies/qa.json"}]}"#,
            dir.path(),
        )
        .unwrap();
        assert_eq!(members[0].policy.concurrency, 2);
        let err = parse(
            r#"{"registries":[{"registry":"qa.azurecr.io","policyFile":"policies/none.json"}]}"#,
            dir.path(),
        )
        .unwrap_err();
        assert!(
            err.starts_with("registries[0] (\"qa.azurecr.io\").policyFile: cannot read"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_registry_and_the_field() {
        let root = Path::new("/nonexistent");
        let cases = [
            (
                fleet(
                    r#"[{"registry":"a.azurecr.io"},{"registry":"b.azurecr.io","policy":{"rules":[{"filter":"x:.*","ago":"soon"}]}}]"#,
                ),
                "registries[1] (\"b.azurecr.io\").policy: invalid policy: rules[0].ago",
            ),
            (
                fleet(r#"[{"registry":"a.azurecr.io"},{"registry":"A.azurecr.io"}]"#),
                "registries[1] (\"A.azurecr.io\").registry: a.azurecr.io is already registries[0]",
            ),
            (
                fleet(r#"[{"registry":"ftp://a"}]"#),
                "registries[0] (\"ftp://a\").registry:",
            ),
            (fleet("[]"), "registries: the fleet names no registry"),
            (
                fleet(r#"[{"registry":"a","polcy":{}}]"#),
                "registries[0].polcy: unknown field `polcy`",
            ),
            (
                r#"{"registries":[{"registry":"a"}]}"#.to_string(),
                "registries[0] (\"a\").policy:",
            ),
        ];
        for (text, start) in cases {
            let err = parse(&text, root).expect_err(start);
            assert!(
                err.starts_with(start),
                "{err}\nexpected to start with {start}"
            );
        }
    }
}
