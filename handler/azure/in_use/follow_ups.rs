//! The lists a resource provider holds and Resource Graph does not, read through ARM for a
//! workload: an App Service app's sidecars, a Container App's serving revisions, a job's
//! running executions ([`FollowUp`]).

use super::rows::fx_values;
use super::{InUseClient, InUseError};
use crate::azure::arm::{APP_API_VERSION, WEB_API_VERSION};
use serde_json::Value;

impl InUseClient {
    /// The image strings of the lists read besides the row of the workload `resource_id`.
    pub(super) async fn follow_up_images(
        &self,
        resource_id: &str,
        resource_type: &str,
        properties: &Value,
    ) -> Result<Vec<String>, InUseError> {
        let mut images = Vec::new();
        for follow_up in follow_ups(resource_type, properties) {
            let (child, version) = match follow_up {
                FollowUp::SiteContainers => ("sitecontainers", WEB_API_VERSION),
                FollowUp::Revisions => ("revisions", APP_API_VERSION),
                FollowUp::Executions => ("executions", APP_API_VERSION),
            };
            let items = self
                .arm
                .list(&format!("{resource_id}/{child}"), version)
                .await
                .map_err(|error| InUseError::Arm {
                    resource_id: resource_id.to_string(),
                    error,
                })?;
            for item in &items {
                match follow_up {
                    FollowUp::SiteContainers => images.extend(
                        item.pointer("/properties/image")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    ),
                    FollowUp::Revisions if revision_serves(item) => {
                        images.extend(template_images(item.pointer("/properties/template")))
                    }
                    FollowUp::Executions if execution_runs(item) => {
                        images.extend(template_images(item.pointer("/properties/template")))
                    }
                    FollowUp::Revisions | FollowUp::Executions => {}
                }
            }
        }
        Ok(images)
    }
}

/// A list a resource provider holds and Resource Graph does not, read for one workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FollowUp {
    /// An App Service app or slot running sidecars (`LinuxFxVersion` `sitecontainers`).
    SiteContainers,
    /// A Container App that may serve more than its latest template.
    Revisions,
    /// A Container Apps job: running executions may run an overridden image.
    Executions,
}

/// What must be read besides the row for this workload.
fn follow_ups(resource_type: &str, properties: &Value) -> Vec<FollowUp> {
    match resource_type {
        "microsoft.web/sites" | "microsoft.web/sites/slots" => fx_values(properties)
            .iter()
            .any(|v| v.trim().eq_ignore_ascii_case("sitecontainers"))
            .then_some(FollowUp::SiteContainers)
            .into_iter()
            .collect(),
        "microsoft.app/containerapps" => may_serve_older_revisions(properties)
            .then_some(FollowUp::Revisions)
            .into_iter()
            .collect(),
        "microsoft.app/jobs" => vec![FollowUp::Executions],
        _ => Vec::new(),
    }
}

/// Whether a Container App may serve more than its latest template: multiple-revision
/// mode, traffic sent by revision name or label, or a latest revision that is not the
/// latest ready one (traffic then stays on an older revision).
pub(super) fn may_serve_older_revisions(properties: &Value) -> bool {
    let text = |path: &str| properties.pointer(path).and_then(Value::as_str);
    let multiple = text("/configuration/activeRevisionsMode")
        .is_some_and(|m| !m.eq_ignore_ascii_case("single"));
    let by_revision = properties
        .pointer("/configuration/ingress/traffic")
        .and_then(Value::as_array)
        .is_some_and(|traffic| {
            traffic.iter().any(|t| {
                ["revisionName", "label"].iter().any(|k| {
                    t.get(*k)
                        .and_then(Value::as_str)
                        .is_some_and(|v| !v.is_empty())
                })
            })
        });
    let not_ready = text("/latestRevisionName") != text("/latestReadyRevisionName");
    multiple || by_revision || not_ready
}

/// The images of a template's `containers[]` and `initContainers[]`.
fn template_images(template: Option<&Value>) -> Vec<String> {
    ["containers", "initContainers"]
        .iter()
        .filter_map(|k| template?.get(*k)?.as_array())
        .flatten()
        .filter_map(|c| c.get("image").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// Whether a revision may serve: active, or given traffic (an item that says neither is
/// taken as serving).
fn revision_serves(revision: &Value) -> bool {
    let active = revision
        .pointer("/properties/active")
        .and_then(Value::as_bool);
    let weight = revision
        .pointer("/properties/trafficWeight")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    active != Some(false) || weight > 0
}

/// Whether a job execution may still run (not `Succeeded`, `Failed` or `Stopped`).
fn execution_runs(execution: &Value) -> bool {
    let status = execution
        .pointer("/properties/status")
        .and_then(Value::as_str)
        .unwrap_or("");
    !["Succeeded", "Failed", "Stopped"]
        .iter()
        .any(|done| status.eq_ignore_ascii_case(done))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn what_is_read_besides_the_row() {
        let site = |fx: &str| json!({"siteConfig": null, "siteProperties": {"properties": [{"name": "LinuxFxVersion", "value": fx}]}});
        assert_eq!(
            follow_ups("microsoft.web/sites", &site("sitecontainers")),
            [FollowUp::SiteContainers]
        );
        assert_eq!(
            follow_ups("microsoft.web/sites/slots", &site("SITECONTAINERS")),
            [FollowUp::SiteContainers]
        );
        assert!(follow_ups("microsoft.web/sites", &site("DOCKER|x/y:1")).is_empty());
        let single = json!({"latestRevisionName": "a--2", "latestReadyRevisionName": "a--2",
            "configuration": {"activeRevisionsMode": "Single", "ingress": {"traffic": [{"latestRevision": true, "weight": 100}]}}});
        assert!(follow_ups("microsoft.app/containerapps", &single).is_empty());
        let mut multiple = single.clone();
        multiple["configuration"]["activeRevisionsMode"] = json!("Multiple");
        let mut by_name = single.clone();
        by_name["configuration"]["ingress"]["traffic"] =
            json!([{"revisionName": "a--1", "weight": 100}]);
        let mut by_label = single.clone();
        by_label["configuration"]["ingress"]["traffic"] =
            json!([{"label": "blue", "latestRevision": true, "weight": 100}]);
        let mut failed = single.clone();
        failed["latestRevisionName"] = json!("a--3");
        for app in [multiple, by_name, by_label, failed] {
            assert_eq!(
                follow_ups("microsoft.app/containerapps", &app),
                [FollowUp::Revisions],
                "{app}"
            );
        }
        assert_eq!(
            follow_ups("microsoft.app/jobs", &json!({})),
            [FollowUp::Executions]
        );
        assert!(revision_serves(
            &json!({"properties": {"active": true, "trafficWeight": 0}})
        ));
        assert!(revision_serves(
            &json!({"properties": {"active": false, "trafficWeight": 10}})
        ));
        assert!(!revision_serves(&json!({"properties": {"active": false}})));
        assert!(
            revision_serves(&json!({"properties": {}})),
            "unknown counts as serving"
        );
        assert!(execution_runs(
            &json!({"properties": {"status": "Running"}})
        ));
        assert!(!execution_runs(
            &json!({"properties": {"status": "Succeeded"}})
        ));
    }
}
