//! Defender for Cloud's findings through the `handler` binary: read from the Resource
//! Graph emulator's `securityresources` rows (both assessment keys, a digest under several
//! tags, a finding on an image that runs, a healthy finding), counted in the report against
//! a reference computed from those rows, and targeted by `--vulnerable-min-severity`.

use crate::support::identity::{ENTRA_TOKEN, IdentityEndpoint};
use crate::support::purge::{Registry, handler_with_env, tagged};
use acr_emulator::{
    ACR_ASSESSMENT_KEY, ACR_ASSESSMENT_KEY_NEW, GraphFault, GraphResource, ManifestSeed, RepoSeed,
    ResourceGraphEmulator, RunningServer, Seed, SubAssessment,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

const SUB: &str = "sub-1";

fn seed() -> Seed {
    Seed::new().repo(
        RepoSeed::new("app")
            .manifest(tagged("running", "v1", "40d"))
            .manifest(
                ManifestSeed::image("superseded")
                    .age("40d")
                    .tags(&["1.0", "1.0.0"]),
            )
            .manifest(tagged("low", "0.9", "40d"))
            .manifest(tagged("healthy", "0.8", "40d"))
            .manifest(tagged("clean", "0.7", "40d"))
            .manifest(tagged("young", "2.0", "5d")),
    )
}

struct Azure {
    identity: IdentityEndpoint,
    graph: ResourceGraphEmulator,
    server: RunningServer,
}

/// A Container App runs `app:v1`; Defender reports `running` (Critical), `superseded`
/// (High and Medium, listed once per tag and under both keys), `low` (Low), `healthy` (a
/// High finding since resolved: `Healthy`), `young` (High), and another registry's image.
async fn azure(registry: &Registry) -> Azure {
    let host = registry.running.host();
    let identity = IdentityEndpoint::start().await;
    let graph = ResourceGraphEmulator::new();
    graph.set_expected_token(Some(ENTRA_TOKEN));
    graph.add(GraphResource::new(
        SUB,
        "rg",
        "Microsoft.App/containerApps",
        "web",
        json!({"template": {"containers": [{"name": "web", "image": format!("{host}/app:v1")}]}}),
    ));
    let finding = |key: &str, alias: &str, tags: &[&str], cve: &str, severity: &str, code: &str| {
        SubAssessment::registry_finding(
            SUB,
            "rg",
            &host,
            key,
            "app",
            &registry.digest("app", alias),
            tags,
            cve,
            severity,
            code,
        )
    };
    for row in [
        finding(
            ACR_ASSESSMENT_KEY,
            "running",
            &["v1"],
            "CVE-2024-0001",
            "Critical",
            "Unhealthy",
        ),
        finding(
            ACR_ASSESSMENT_KEY,
            "superseded",
            &["1.0"],
            "CVE-2024-0002",
            "High",
            "Unhealthy",
        ),
        finding(
            ACR_ASSESSMENT_KEY,
            "superseded",
            &["1.0", "1.0.0"],
            "CVE-2024-0002",
            "High",
            "Unhealthy",
        ),
        finding(
            ACR_ASSESSMENT_KEY_NEW,
            "superseded",
            &["1.0.0"],
            "CVE-2024-0002",
            "High",
            "Unhealthy",
        ),
        finding(
            ACR_ASSESSMENT_KEY_NEW,
            "superseded",
            &["1.0.0"],
            "CVE-2024-0003",
            "Medium",
            "Unhealthy",
        ),
        finding(
            ACR_ASSESSMENT_KEY,
            "low",
            &["0.9"],
            "CVE-2024-0004",
            "Low",
            "Unhealthy",
        ),
        finding(
            ACR_ASSESSMENT_KEY,
            "healthy",
            &["0.8"],
            "CVE-2024-0005",
            "High",
            "Healthy",
        ),
        finding(
            ACR_ASSESSMENT_KEY_NEW,
            "young",
            &["2.0"],
            "CVE-2024-0006",
            "High",
            "Unhealthy",
        ),
    ] {
        graph.add_sub_assessment(row);
    }
    // Another registry's image of the same repository and digest counts for nothing here.
    graph.add_sub_assessment(SubAssessment::registry_finding(
        SUB,
        "rg",
        "other.azurecr.io",
        ACR_ASSESSMENT_KEY,
        "app",
        &registry.digest("app", "clean"),
        &["0.7"],
        "CVE-2024-0007",
        "Critical",
        "Unhealthy",
    ));
    let server = graph.start().await.expect("graph");
    Azure {
        identity,
        graph,
        server,
    }
}

async fn purge(registry: &Registry, azure: &Azure, args: &[&str]) -> crate::support::purge::Run {
    let mut all = vec!["purge", "-r", registry.running.url.as_str()];
    all.extend_from_slice(args);
    let state = registry.state.path().to_string_lossy().into_owned();
    let mut env = azure.identity.env();
    env.push(("PURGE_ARM_ENDPOINT", azure.server.url.clone()));
    env.push(("PURGE_STATE_DIR", state));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    handler_with_env(&all, &env).await
}

/// The reference: from the emulator's rows, the unresolved findings (one per CVE and
/// digest, at its most severe) of this registry under either key, per digest.
fn reference(azure: &Azure, host: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let rank = |s: &str| {
        ["Low", "Medium", "High", "Critical"]
            .iter()
            .position(|x| *x == s)
    };
    let mut by_digest: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for row in azure.graph.sub_assessments() {
        let p = &row.properties;
        let key_ok = [ACR_ASSESSMENT_KEY, ACR_ASSESSMENT_KEY_NEW]
            .iter()
            .any(|k| row.id.contains(&format!("/assessments/{k}/")));
        let artifact = &p["additionalData"]["artifactDetails"];
        if !key_ok
            || artifact["registryHost"] != host
            || p["status"]["code"] != "Unhealthy"
            || p["additionalData"]["assessedResourceType"] != "AzureContainerRegistryVulnerability"
        {
            continue;
        }
        let digest = artifact["digest"].as_str().unwrap_or_default().to_string();
        let cve = p["additionalData"]["vulnerabilityDetails"]["cveId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let severity = p["additionalData"]["vulnerabilityDetails"]["severity"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let entry = by_digest.entry(digest).or_default().entry(cve).or_default();
        if rank(&severity) > rank(entry) {
            *entry = severity;
        }
    }
    by_digest
}

fn counts(report: &Value) -> (u64, u64, BTreeMap<String, u64>, BTreeSet<String>) {
    let f = &report["findings"];
    let by: BTreeMap<String, u64> = f["clearedBySeverity"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or_default()))
        .collect();
    let kept: BTreeSet<String> = f["kept"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            format!(
                "{}={}",
                k["digest"].as_str().unwrap_or_default(),
                k["reason"].as_str().unwrap_or_default()
            )
        })
        .collect();
    (
        f["imagesDeleted"].as_u64().unwrap_or_default(),
        f["findingsCleared"].as_u64().unwrap_or_default(),
        by,
        kept,
    )
}

#[tokio::test]
async fn the_report_counts_the_findings_each_run_clears_as_the_rows_say() {
    for dry_run in [true, false] {
        let registry = Registry::start(seed()).await;
        let azure = azure(&registry).await;
        let mut args = vec![
            "--filter",
            "app:.*",
            "--ago",
            "30d",
            "--untagged",
            "--output",
            "json",
            "--protect-in-use",
            SUB,
            "--findings-scope",
            SUB,
        ];
        if dry_run {
            args.push("--dry-run");
        }
        let run = purge(&registry, &azure, &args).await;
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        let report = run.json();
        assert_eq!(report["findings"]["status"], "read", "{report:#}");
        assert!(
            report["findings"]["note"]
                .as_str()
                .is_some_and(|n| n.contains("within about an hour")),
            "{report:#}"
        );
        // Which images go: the report's decisions (dry run) or the registry (real run).
        let removed: BTreeSet<String> = report["repositories"][0]["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["decision"] != "keep")
            .filter_map(|m| m["digest"].as_str().map(str::to_string))
            .collect();
        if !dry_run {
            for alias in ["superseded", "low", "healthy", "clean"] {
                assert!(!registry.has("app", alias), "{alias} is deleted");
            }
            assert!(registry.has("app", "running") && registry.has("app", "young"));
        }
        let host = registry.running.host();
        let expected = reference(&azure, &host);
        let mut images = 0;
        let mut cleared = 0;
        let mut by: BTreeMap<String, u64> = BTreeMap::new();
        let mut kept = BTreeSet::new();
        for (digest, cves) in &expected {
            if removed.contains(digest) {
                images += 1;
                cleared += cves.len() as u64;
                for severity in cves.values() {
                    *by.entry(severity.clone()).or_default() += 1;
                }
            } else {
                kept.insert(digest.clone());
            }
        }
        let (got_images, got_cleared, got_by, got_kept) = counts(&report);
        assert_eq!(
            (got_images, got_cleared, &got_by),
            (images, cleared, &by),
            "{report:#}"
        );
        // Not vacuous: superseded (High + Medium, once each) and low (Low) go.
        assert_eq!((images, cleared), (2, 3));
        let running = registry.digest("app", "running");
        let young = registry.digest("app", "young");
        assert_eq!(kept, BTreeSet::from([running.clone(), young.clone()]));
        assert_eq!(
            got_kept,
            BTreeSet::from([format!("{running}=inUse"), format!("{young}=tooYoung")])
        );
    }
}

#[tokio::test]
async fn a_vulnerable_rule_deletes_only_superseded_images_with_findings_that_severe() {
    let registry = Registry::start(seed()).await;
    let azure = azure(&registry).await;
    let run = purge(
        &registry,
        &azure,
        &[
            "--filter",
            "app:.*",
            "--ago",
            "30d",
            "--untagged",
            "--output",
            "json",
            "--protect-in-use",
            SUB,
            "--vulnerable-min-severity",
            "High",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        !registry.has("app", "superseded"),
        "High, old, not running: deleted"
    );
    for alias in ["running", "low", "healthy", "clean", "young"] {
        assert!(registry.has("app", alias), "{alias} stays");
    }
    assert_eq!(
        registry.tags("app"),
        crate::support::purge::set(&["0.7", "0.8", "0.9", "2.0", "v1"])
    );
    let report = run.json();
    let (images, cleared, _, _) = counts(&report);
    assert_eq!((images, cleared), (1, 2));
}

#[tokio::test]
async fn findings_that_cannot_be_read_target_nothing_and_the_report_says_why() {
    let registry = Registry::start(seed()).await;
    let azure = azure(&registry).await;
    // Every page of securityresources fails; in-use protection is off, so only the
    // findings are asked for.
    azure.graph.inject(GraphFault::Truncate);
    let run = purge(
        &registry,
        &azure,
        &[
            "--filter",
            "app:.*",
            "--ago",
            "30d",
            "--untagged",
            "--output",
            "json",
            "--findings-scope",
            SUB,
            "--vulnerable-min-severity",
            "Low",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(registry.mutations().is_empty(), "nothing was deleted");
    let report = run.json();
    assert_eq!(report["findings"]["status"], "unknown", "{report:#}");
    assert!(
        report["findings"]["why"]
            .as_str()
            .is_some_and(|w| w.contains("resultTruncated")),
        "{report:#}"
    );
    assert!(
        report["summary"]["protected"]["findingsUnknown"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{report:#}"
    );
}
