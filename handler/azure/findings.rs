//! Microsoft Defender for Cloud's vulnerability findings on the registry's images, from
//! Azure Resource Graph's `securityresources` table (through [`InUseClient::query_rows`]:
//! the same scopes check, paging, size cap and fail-closed answers as the in-use lookup).
//!
//! Where the fields are ("Container vulnerability assessments REST API",
//! learn.microsoft.com/azure/defender-for-cloud/subassessment-rest-api, its ARG query and
//! "Query Result"; and "Azure Resource Graph sample queries for Azure Container Registry",
//! learn.microsoft.com/azure/container-registry/resource-graph-samples):
//!
//! - rows of type `microsoft.security/assessments/subassessments` whose
//!   `properties.additionalData.assessedResourceType` is `AzureContainerRegistryVulnerability`;
//! - the assessment key is the segment after `providers/Microsoft.Security/assessments/` of
//!   the row's `id` (the docs' `extract(@"(?i)providers/Microsoft.Security/assessments/([^/]*)", 1, id)`);
//!   both [`ASSESSMENT_KEYS`] are read;
//! - the image: `properties.additionalData.artifactDetails.{registryHost, repositoryName,
//!   digest, tags}`;
//! - the CVE: `properties.additionalData.vulnerabilityDetails.cveId`, else `properties.id`;
//! - the severity: `properties.additionalData.vulnerabilityDetails.severity`, else
//!   `properties.status.severity`;
//! - the status: `properties.status.code`; only `Unhealthy` is an unresolved finding
//!   (`Healthy` and `NotApplicable` are not counted).
//!
//! One finding is one CVE on one digest: a digest listed under several tags, or under both
//! assessment keys, counts each CVE once (at its most severe grading).
//!
//! Fails closed: besides the in-use lookup's errors, a row of the registry without a
//! repository, digest, CVE, status or known severity is an error, never a row left out.

use super::in_use::{InUseClient, InUseError, InUseScope};
use crate::policy::Severity;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The assessment keys read: the registry-image vulnerability assessment powered by
/// Microsoft Defender Vulnerability Management (`c0b7cfc6-…`, the documented key), and the
/// newer key of "\[Preview\] Container images in Azure registry should have vulnerability
/// findings resolved" (`33422d8f-…`, Defender for Cloud's "Container recommendations"
/// reference, learn.microsoft.com/azure/defender-for-cloud/recommendations-reference-container,
/// which names it the successor of `c0b7cfc6-…`).
pub const ASSESSMENT_KEYS: &[&str] = &[
    "c0b7cfc6-3172-465a-b378-53c7ff2cc0d5",
    "33422d8f-ab1e-42be-bc9a-38685bb567b9",
];

/// The query sent, for the registry `login_server` (ordered by `id`, which paging needs).
/// The assessment key is checked on each row's `id` (see the module documentation).
pub fn findings_query(login_server: &str) -> String {
    let host = login_server.replace('\\', "\\\\").replace('\'', "\\'");
    format!(
        "securityresources | where type == 'microsoft.security/assessments/subassessments' | where properties.additionalData.assessedResourceType == 'AzureContainerRegistryVulnerability' | where properties.additionalData.artifactDetails.registryHost =~ '{host}' | project id, properties | order by id asc"
    )
}

/// One unresolved finding: a CVE on an image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// The repository.
    pub repository: String,
    /// The image's digest.
    pub digest: String,
    /// The CVE (or Defender's vulnerability id).
    pub cve: String,
    /// Its severity.
    pub severity: Severity,
}

/// The unresolved findings of a registry, one per CVE and digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// (repository, digest) → CVE → severity.
    pub by_image: BTreeMap<(String, String), BTreeMap<String, Severity>>,
}

impl Findings {
    /// Every finding, sorted.
    pub fn iter(&self) -> impl Iterator<Item = Finding> + '_ {
        self.by_image
            .iter()
            .flat_map(|((repository, digest), cves)| {
                cves.iter().map(|(cve, severity)| Finding {
                    repository: repository.clone(),
                    digest: digest.clone(),
                    cve: cve.clone(),
                    severity: *severity,
                })
            })
    }
}

/// Why the findings are not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FindingsError {
    /// The Resource Graph lookup failed (scopes, paging, status, size).
    #[error("Defender findings: {0}")]
    Lookup(InUseError),
    /// A row that is not what the documentation describes.
    #[error("Defender findings: unreadable row {id}: {detail}")]
    Row {
        /// The row's id.
        id: String,
        /// What was wrong.
        detail: String,
    },
}

/// Reads the unresolved findings on `login_server`'s images in `scopes`.
pub async fn read(
    client: &InUseClient,
    login_server: &str,
    scopes: &[InUseScope],
) -> Result<Findings, FindingsError> {
    let host = login_server
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_ascii_lowercase();
    let rows = client
        .query_rows(scopes, &findings_query(&host))
        .await
        .map_err(FindingsError::Lookup)?;
    let mut findings = Findings::default();
    for row in &rows {
        if let Some(finding) = finding_of(row, &host)? {
            let cves = findings
                .by_image
                .entry((finding.repository, finding.digest))
                .or_default();
            let worst = cves.entry(finding.cve).or_insert(finding.severity);
            *worst = (*worst).max(finding.severity);
        }
    }
    Ok(findings)
}

/// The assessment key in a sub-assessment's id.
fn assessment_key(id: &str) -> Option<&str> {
    let lower = id.to_ascii_lowercase();
    let marker = "/providers/microsoft.security/assessments/";
    let start = lower.find(marker)? + marker.len();
    id[start..].split('/').next()
}

/// The finding a row holds; `None` for another assessment, another registry or a finding
/// that is resolved (`Healthy`) or not applicable.
fn finding_of(row: &Map<String, Value>, host: &str) -> Result<Option<Finding>, FindingsError> {
    let id = row.get("id").and_then(Value::as_str).unwrap_or_default();
    let bad = |detail: &str| FindingsError::Row {
        id: id.to_string(),
        detail: detail.to_string(),
    };
    let key = assessment_key(id).ok_or_else(|| bad("no assessment key in its id"))?;
    if !ASSESSMENT_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key)) {
        return Ok(None);
    }
    let properties = row.get("properties").ok_or_else(|| bad("no properties"))?;
    let text = |pointer: &str| {
        properties
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let registry = text("/additionalData/artifactDetails/registryHost")
        .ok_or_else(|| bad("no additionalData.artifactDetails.registryHost"))?;
    if !registry.eq_ignore_ascii_case(host) {
        return Ok(None);
    }
    let code = text("/status/code").ok_or_else(|| bad("no status.code"))?;
    if !code.eq_ignore_ascii_case("Unhealthy") {
        return Ok(None);
    }
    let repository = text("/additionalData/artifactDetails/repositoryName")
        .ok_or_else(|| bad("no additionalData.artifactDetails.repositoryName"))?;
    let digest = text("/additionalData/artifactDetails/digest")
        .filter(|d| d.starts_with("sha256:"))
        .ok_or_else(|| bad("no sha256 additionalData.artifactDetails.digest"))?;
    let cve = text("/additionalData/vulnerabilityDetails/cveId")
        .or_else(|| text("/id"))
        .ok_or_else(|| bad("no vulnerabilityDetails.cveId nor id"))?;
    let severity = text("/additionalData/vulnerabilityDetails/severity")
        .or_else(|| text("/status/severity"))
        .ok_or_else(|| bad("no severity"))?;
    let severity = Severity::parse(severity).map_err(|e| bad(&e.to_string()))?;
    Ok(Some(Finding {
        repository: repository.to_string(),
        digest: digest.to_string(),
        cve: cve.to_string(),
        severity,
    }))
}

/// The repositories of `findings`, for logs.
pub fn repositories(findings: &Findings) -> BTreeSet<&str> {
    findings.by_image.keys().map(|(r, _)| r.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(key: &str, host: &str, code: &str, severity: &str) -> Map<String, Value> {
        let value = json!({
            "id": format!("/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r/providers/Microsoft.Security/assessments/{key}/subassessments/x"),
            "properties": {
                "id": "CVE-1",
                "additionalData": {
                    "assessedResourceType": "AzureContainerRegistryVulnerability",
                    "vulnerabilityDetails": {"severity": severity, "cveId": "CVE-1"},
                    "artifactDetails": {"registryHost": host, "repositoryName": "app", "digest": "sha256:ab", "tags": ["v1"]}
                },
                "status": {"code": code, "severity": severity}
            }
        });
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn rows_are_read_by_key_registry_and_status() {
        let host = "r.azurecr.io";
        let found = finding_of(&row(ASSESSMENT_KEYS[0], host, "Unhealthy", "High"), host)
            .expect("readable")
            .expect("a finding");
        assert_eq!(found.severity, Severity::High);
        assert_eq!(
            (found.repository.as_str(), found.digest.as_str()),
            ("app", "sha256:ab")
        );
        assert!(
            finding_of(&row(ASSESSMENT_KEYS[1], host, "Unhealthy", "Low"), host)
                .expect("readable")
                .is_some()
        );
        for (key, registry, code) in [
            ("dbd0cb49-b563-45e7-9724-889e799fa648", host, "Unhealthy"),
            (ASSESSMENT_KEYS[0], "other.azurecr.io", "Unhealthy"),
            (ASSESSMENT_KEYS[0], host, "Healthy"),
            (ASSESSMENT_KEYS[0], host, "NotApplicable"),
        ] {
            assert_eq!(
                finding_of(&row(key, registry, code, "High"), host),
                Ok(None)
            );
        }
        assert!(finding_of(&row(ASSESSMENT_KEYS[0], host, "Unhealthy", "Dire"), host).is_err());
    }

    #[test]
    fn the_query_escapes_the_host() {
        assert!(findings_query("a'b").contains("=~ 'a\\'b'"));
    }
}
