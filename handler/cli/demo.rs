//! `handler demo`: a whole purge against the in-process emulator's sample registry, with
//! the plan and the reason behind every decision. No Azure account, no network: Resource
//! Graph, Log Analytics and an AKS cluster's Kubernetes API server (over TLS, with a
//! certificate made for the run) are emulated on the loopback interface too.

use super::PurgeArgs;
use super::output::say;
use crate::azure::in_use::InUseClient;
use crate::azure::pulls::PullLog;
use crate::registry::{ClientOptions, RegistryClient};
use crate::report::{RepositoryReport, RunReport};
use crate::run;
use crate::run::gather::Sources;
use acr_emulator::{
    ACR_ASSESSMENT_KEY, Emulator, GraphResource, KubernetesEmulator, LogAnalyticsEmulator,
    RepositoryEvent, ResourceGraphEmulator, RunningKubernetes, SubAssessment, sample_registry,
};
use anyhow::Context;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use clap::Parser;
use std::sync::Arc;

/// The demo's policy, as `handler purge` arguments (the registry is added at run time).
pub const DEMO_ARGS: &[&str] = &[
    "--filter",
    ".*:.*",
    "--ago",
    "30d",
    "--untagged",
    "--protect",
    ".*:^(latest|stable)$",
    "--protect-in-use",
    DEMO_SUBSCRIPTION,
    "--not-pulled-for",
    "30d",
    "--findings-scope",
    DEMO_SUBSCRIPTION,
];

/// The subscription the demo's emulated Azure holds its workloads in.
const DEMO_SUBSCRIPTION: &str = "/subscriptions/00000000-0000-0000-0000-00000000d3m0";

/// The token the demo's emulated Azure APIs expect.
const DEMO_TOKEN: &str = "demo-entra-token";

/// The demo's Log Analytics workspace.
const DEMO_WORKSPACE: &str = "00000000-0000-0000-0000-0000000000a1";

#[derive(Parser)]
struct DemoPurge {
    #[command(flatten)]
    args: PurgeArgs,
}

/// Runs the demo, printing to stdout.
pub async fn run() -> anyhow::Result<()> {
    let emulator = Emulator::new(sample_registry()).context("loading the sample registry")?;
    let running = emulator.start().await.context("starting the emulator")?;
    let mut argv = vec!["purge", "--registry", running.url.as_str()];
    argv.extend_from_slice(DEMO_ARGS);
    let args = DemoPurge::try_parse_from(&argv)
        .context("the demo's own arguments")?
        .args;
    say!(
        "acr-purge demo: a sample registry emulated in-process at {}",
        running.url
    );
    say!("(ACR's API, no Azure account, no network). The policy:\n");
    say!(
        "  handler purge -r {} {}\n",
        running.url,
        shell_words(DEMO_ARGS)
    );

    let mut request = args.validate().map_err(anyhow::Error::msg)?;
    let azure = DemoAzure::start(&running.host()).await?;
    say!("Azure around it, emulated too: Resource Graph, where a Container App runs");
    say!("web/frontend:1.1.0 and which lists the AKS cluster {DEMO_CLUSTER}, whose API");
    say!("server (TLS) has pod shop/checkout running web/frontend:build-1201 and pod");
    say!("shop/worker running web/frontend:latest, pulled when `latest` named an image");
    say!("untagged since (its imageID says which); the registry's pull logs in Log");
    say!("Analytics, where web/frontend:build-1202 was pulled last week; and Microsoft");
    say!("Defender for Cloud's findings: the superseded web/frontend:1.0.0 carries a");
    say!("Critical and a High finding, the running 1.1.0 a High one.\n");
    request.options.sources = Some(std::sync::Arc::new(azure.sources()?));
    let client = RegistryClient::connect(
        request.endpoint.clone(),
        request.credentials.take(),
        ClientOptions::default(),
    )
    .await?;

    say!("== 1. Dry run: every tag and manifest, with the reason for its fate ==\n");
    request.options.dry_run = true;
    let plan = run::run(&client, &request.policy, &request.options, &mut |_| {}).await;
    print_plan(&plan);

    say!("\n== 2. The purge (acr purge's output) ==\n");
    request.options.dry_run = false;
    let done = run::run(&client, &request.policy, &request.options, &mut |line| {
        say!("{line}")
    })
    .await;

    say!("\n== 3. What the registry holds now ==\n");
    let snapshot = emulator.snapshot();
    for name in snapshot.repository_names() {
        let tags = snapshot.tag_names(&name);
        say!(
            "  {name}: {} manifests; tags {}",
            snapshot.digests(&name).len(),
            tags.join(", ")
        );
    }
    say!("\nKept by the policy, by reason:");
    for (reason, count) in &done.summary.kept {
        say!("  {reason}: {count}");
    }
    say!("Protected for safety, by reason:");
    for (reason, count) in &done.summary.protected {
        say!("  {reason}: {count}");
    }
    if let Some(findings) = &done.findings {
        say!("\n{}", findings.line(false));
    }
    if let Some(error) = &done.error {
        anyhow::bail!("the demo purge failed: {error}");
    }
    say!(
        "\nSame plan as the dry run: {}",
        if same_deletions(&plan, &done) {
            "yes"
        } else {
            "NO"
        }
    );
    Ok(())
}

/// The demo's AKS cluster (in the demo subscription, resource group `shop`).
const DEMO_CLUSTER: &str = "shop-aks";

/// Resource Graph, Log Analytics and an AKS cluster's API server around the demo registry.
struct DemoAzure {
    graph: acr_emulator::RunningServer,
    logs: acr_emulator::RunningServer,
    cluster: RunningKubernetes,
}

impl DemoAzure {
    async fn start(login_server: &str) -> anyhow::Result<DemoAzure> {
        let graph = ResourceGraphEmulator::new();
        graph.set_expected_token(Some(DEMO_TOKEN));
        let subscription = DEMO_SUBSCRIPTION.trim_start_matches("/subscriptions/");
        let cluster = demo_cluster(login_server).await?;
        graph.add(GraphResource::managed_cluster(
            subscription,
            "shop",
            DEMO_CLUSTER,
            &cluster.fqdn,
        ));
        graph.add(GraphResource::new(
            subscription,
            "shop",
            "Microsoft.App/containerApps",
            "storefront",
            serde_json::json!({"template": {"containers": [
                {"name": "web", "image": format!("{login_server}/web/frontend:1.1.0")}
            ]}}),
        ));
        // Defender's findings (the documented sub-assessment shape): the superseded 1.0.0,
        // which the purge deletes, and the running 1.1.0, which stays.
        let sample = sample_registry();
        let finding = |alias: &str, tag: &str, cve: &str, severity: &str| -> anyhow::Result<_> {
            Ok(SubAssessment::registry_finding(
                subscription,
                "registry",
                login_server,
                ACR_ASSESSMENT_KEY,
                "web/frontend",
                &sample.try_digest("web/frontend", alias)?,
                &[tag],
                cve,
                severity,
                "Unhealthy",
            ))
        };
        graph.add_sub_assessment(finding("r100", "1.0.0", "CVE-2023-44487", "Critical")?);
        graph.add_sub_assessment(finding("r100", "1.0.0", "CVE-2024-6387", "High")?);
        graph.add_sub_assessment(finding("r110", "1.1.0", "CVE-2024-6387", "High")?);
        let logs = LogAnalyticsEmulator::new(DEMO_WORKSPACE);
        logs.set_expected_token(Some(DEMO_TOKEN));
        logs.set_retention(chrono::Duration::days(90));
        let now = chrono::Utc::now();
        let pull = |days: i64, repository: &str, tag: &str, operation: &str| {
            RepositoryEvent::pull(
                now - chrono::Duration::days(days),
                login_server,
                repository,
                Some(tag),
                None,
                "release-pipeline",
            )
            .with_operation(operation)
        };
        logs.add(pull(7, "web/frontend", "build-1202", "Pull"));
        logs.add(pull(45, "web/frontend", "1.0.0", "Push"));
        Ok(DemoAzure {
            graph: graph.start().await.context("starting Resource Graph")?,
            logs: logs.start().await.context("starting Log Analytics")?,
            cluster,
        })
    }

    fn sources(&self) -> anyhow::Result<Sources> {
        let credential: Arc<dyn TokenCredential> = Arc::new(DemoCredential);
        // Trusts the emulated API server's certificate, made for this run.
        let certificate = reqwest::Certificate::from_pem(self.cluster.cert_pem.as_bytes())
            .context("the emulated AKS API server's certificate")?;
        let http = reqwest::Client::builder()
            .add_root_certificate(certificate)
            .build()
            .context("an HTTP client trusting the emulated AKS API server")?;
        Ok(Sources {
            in_use: Some(InUseClient::new(
                self.graph.url.parse()?,
                credential.clone(),
                http.clone(),
            )),
            findings: Some(InUseClient::new(
                self.graph.url.parse()?,
                credential.clone(),
                http.clone(),
            )),
            pulls: Some(PullLog::new(
                self.logs.url.parse()?,
                DEMO_WORKSPACE,
                credential,
                http,
            )),
        })
    }
}

/// The demo's AKS cluster: its API server, emulated over TLS, with two pods of
/// `web/frontend` (one by a tag the policy would delete, one by a tag that moved since its
/// pull, so only the digest it runs names its image).
async fn demo_cluster(login_server: &str) -> anyhow::Result<RunningKubernetes> {
    let seed = sample_registry();
    let digest = |alias: &str| {
        seed.try_digest("web/frontend", alias)
            .context("the sample registry's web/frontend")
    };
    let kube = KubernetesEmulator::new();
    kube.set_expected_token(Some(DEMO_TOKEN));
    kube.add_pod(
        "shop",
        "checkout",
        &[(
            "checkout",
            &format!("{login_server}/web/frontend:build-1201"),
            Some(&format!("{login_server}/web/frontend@{}", digest("b1201")?)),
        )],
    );
    kube.add_pod(
        "shop",
        "worker",
        &[(
            "worker",
            &format!("{login_server}/web/frontend:latest"),
            Some(&format!(
                "docker-pullable://{login_server}/web/frontend@{}",
                digest("dangling-70d")?
            )),
        )],
    );
    kube.start_tls()
        .await
        .context("starting the AKS cluster's API server")
}

/// The emulated Azure's sign-in: a fixed token.
#[derive(Debug)]
struct DemoCredential;

#[async_trait::async_trait]
impl TokenCredential for DemoCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let expires =
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1);
        Ok(AccessToken::new(DEMO_TOKEN.to_string(), expires))
    }
}

fn print_plan(report: &RunReport) {
    for repo in &report.repositories {
        say!("{}", repo.repository);
        print_repository(repo);
    }
    let s = &report.summary;
    say!(
        "\nPlanned: {} tags and {} manifests to delete; {} items protected for safety.",
        s.tags_deleted,
        s.manifests_deleted,
        s.protected.values().sum::<u64>()
    );
}

fn print_repository(repo: &RepositoryReport) {
    for tag in &repo.tags {
        let verdict = &tag.decision.verdict;
        say!(
            "  {:<7} tag       {:<24} {}",
            word(verdict),
            short(&tag.decision.name),
            verdict.explain()
        );
    }
    for manifest in &repo.manifests {
        let verdict = &manifest.decision.verdict;
        let tags = if manifest.decision.tags.is_empty() {
            "(untagged)".to_string()
        } else {
            manifest.decision.tags.join(",")
        };
        say!(
            "  {:<7} manifest  {:<24} {} {}",
            word(verdict),
            short(&manifest.decision.digest),
            short(&tags),
            verdict.explain()
        );
    }
}

fn word(verdict: &crate::plan::Verdict) -> &'static str {
    match verdict {
        crate::plan::Verdict::Delete { .. } => "DELETE",
        crate::plan::Verdict::Cascade { .. } => "GOES",
        crate::plan::Verdict::Keep { reason } => {
            if reason.is_protection() {
                "PROTECT"
            } else {
                "keep"
            }
        }
    }
}

/// Shortens long names (digests, cosign tags) for display.
fn short(text: &str) -> String {
    const WIDTH: usize = 24;
    if text.chars().count() <= WIDTH {
        return text.to_string();
    }
    let head: String = text.chars().take(WIDTH - 1).collect();
    format!("{head}…")
}

fn same_deletions(plan: &RunReport, done: &RunReport) -> bool {
    let deleted = |r: &RunReport, dry: bool| {
        let mut items: Vec<String> = r
            .repositories
            .iter()
            .flat_map(|repo| {
                let tags = repo.tags.iter().filter(move |t| {
                    if dry {
                        t.decision.verdict.is_delete()
                    } else {
                        t.outcome.as_ref().is_some_and(|o| o.is_gone())
                    }
                });
                let manifests = repo.manifests.iter().filter(move |m| {
                    if dry {
                        m.decision.verdict.is_delete()
                    } else {
                        m.outcome.as_ref().is_some_and(|o| o.is_gone())
                    }
                });
                tags.map(move |t| format!("{}:{}", repo.repository, t.decision.name))
                    .chain(
                        manifests
                            .map(move |m| format!("{}@{}", repo.repository, m.decision.digest)),
                    )
            })
            .collect();
        items.sort();
        items
    };
    deleted(plan, true) == deleted(done, false)
}

fn shell_words(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                a.to_string()
            } else {
                format!("'{a}'")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
