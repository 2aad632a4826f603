//! In-use protection of what AKS pods run, through the `handler` binary: the ACR emulator,
//! the Resource Graph emulator holding a `managedClusters` row whose `fqdn` is a
//! Kubernetes API emulator served over TLS (trusted through `SSL_CERT_FILE`), and the real
//! azure_identity managed identity credential signing in at a local identity endpoint.

use crate::support::identity::{ENTRA_TOKEN, IdentityEndpoint};
use crate::support::purge::{Registry, tagged};
use acr_emulator::{
    GraphResource, KubernetesEmulator, ManifestSeed, RepoSeed, ResourceGraphEmulator,
    RunningKubernetes, RunningServer, Seed,
};
use std::io::Write;

/// The AKS Entra server application, the audience the identity endpoint is asked for.
const AKS_APP: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";

fn seed() -> Seed {
    Seed::new().repo(
        RepoSeed::new("app")
            .manifest(tagged("by-tag", "v1", "40d"))
            // `prod` moved to `current`; a pod started before still runs `previous`.
            .manifest(tagged("current", "prod", "35d"))
            .manifest(ManifestSeed::image("previous").age("45d"))
            .manifest(tagged("stale", "old", "40d")),
    )
}

struct Aks {
    identity: IdentityEndpoint,
    graph: ResourceGraphEmulator,
    _graph_server: RunningServer,
    graph_url: String,
    kube: KubernetesEmulator,
    running: RunningKubernetes,
    cert_file: tempfile::NamedTempFile,
}

const CLUSTER: &str = "/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks";

async fn aks(registry: &Registry) -> Aks {
    let host = registry.running.host();
    let identity = IdentityEndpoint::start().await;
    let kube = KubernetesEmulator::new();
    kube.set_expected_token(Some(ENTRA_TOKEN));
    // Pages of one pod: three pages, followed with `continue`.
    kube.set_page_size(1);
    kube.add_pod(
        "default",
        "web-1",
        &[(
            "web",
            &format!("{host}/app:v1"),
            Some(&format!(
                "docker-pullable://{host}/app@{}",
                registry.digest("app", "by-tag")
            )),
        )],
    );
    kube.add_pod(
        "shop",
        "api-7f9",
        &[(
            "api",
            &format!("{host}/app:prod"),
            Some(&format!(
                "{host}/app@{}",
                registry.digest("app", "previous")
            )),
        )],
    );
    kube.add_pod(
        "kube-system",
        "coredns",
        &[(
            "coredns",
            "mcr.microsoft.com/oss/kubernetes/coredns:v1.11",
            Some("mcr.microsoft.com/oss/kubernetes/coredns@sha256:00"),
        )],
    );
    let running = kube.start_tls().await.expect("kubernetes emulator");
    let mut cert_file = tempfile::NamedTempFile::new().expect("temp file");
    cert_file
        .write_all(running.cert_pem.as_bytes())
        .expect("certificate");
    let graph = ResourceGraphEmulator::new();
    graph.set_expected_token(Some(ENTRA_TOKEN));
    graph.add(GraphResource::managed_cluster(
        "sub-1",
        "rg",
        "aks",
        &running.fqdn,
    ));
    let graph_server = graph.start().await.expect("graph");
    Aks {
        identity,
        graph_url: graph_server.url.clone(),
        graph,
        _graph_server: graph_server,
        kube,
        running,
        cert_file,
    }
}

async fn purge(registry: &Registry, aks: &Aks, extra: &[&str]) -> crate::support::purge::Run {
    let mut args = vec![
        "--filter",
        "app:.*",
        "--ago",
        "30d",
        "--untagged",
        "--output",
        "json",
        "--protect-in-use",
        "sub-1",
    ];
    args.extend_from_slice(extra);
    let mut env = aks.identity.env();
    env.push(("PURGE_ARM_ENDPOINT", aks.graph_url.clone()));
    env.push((
        "SSL_CERT_FILE",
        aks.cert_file.path().to_string_lossy().into_owned(),
    ));
    env.push((
        "PURGE_STATE_DIR",
        registry.state.path().to_string_lossy().into_owned(),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    registry.purge_with_env(&args, &env).await
}

#[tokio::test]
async fn pods_keep_the_image_of_their_tag_and_the_digest_they_run() {
    let registry = Registry::start(seed()).await;
    let aks = aks(&registry).await;
    let run = purge(&registry, &aks, &[]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(registry.has("app", "by-tag"), "a pod runs app:v1");
    assert!(registry.tags("app").contains("v1"));
    assert!(
        registry.has("app", "current"),
        "a pod refers to app:prod, which points to it now"
    );
    assert!(
        registry.has("app", "previous"),
        "the pod runs the digest prod pointed to when it started (imageID)"
    );
    assert!(!registry.has("app", "stale"), "no pod runs it");
    let text = run.json().to_string();
    assert!(
        text.contains("managedClusters/aks"),
        "the reason names the cluster"
    );
    // Every page read with the Entra token, through `continue`.
    let requests = aks.kube.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(requests.iter().all(|r| r.status == 200));
    assert!(
        requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {ENTRA_TOKEN}")))
    );
    assert_eq!(requests[0].continue_token, None);
    assert!(requests[1..].iter().all(|r| r.continue_token.is_some()));
    let audiences: Vec<String> = aks
        .identity
        .requests()
        .iter()
        .filter_map(|q| q.get("resource").cloned())
        .collect();
    assert!(audiences.iter().any(|a| a == AKS_APP), "{audiences:?}");
    assert!(aks.running.url.starts_with("https://"));
}

#[tokio::test]
async fn a_cluster_that_cannot_be_read_stops_the_run_unless_excluded() {
    let registry = Registry::start(seed()).await;
    let aks = aks(&registry).await;
    aks.kube.set_failing(Some(403));
    let run = purge(&registry, &aks, &[]).await;
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(run.stderr.contains(CLUSTER), "{}", run.stderr);
    assert!(run.stderr.contains("403"), "{}", run.stderr);
    assert!(registry.mutations().is_empty(), "nothing was deleted");
    assert!(registry.has("app", "stale"));
    // A cluster whose API server is not trusted (TLS) stops it the same way.
    aks.kube.set_failing(None);
    let mut env_less = aks.identity.env();
    env_less.push(("PURGE_ARM_ENDPOINT", aks.graph_url.clone()));
    let env: Vec<(&str, &str)> = env_less.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = registry
        .purge_with_env(
            &[
                "--filter",
                "app:.*",
                "--ago",
                "30d",
                "--untagged",
                "--protect-in-use",
                "sub-1",
                "--no-state",
            ],
            &env,
        )
        .await;
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(run.stderr.contains(CLUSTER), "{}", run.stderr);
    assert!(registry.mutations().is_empty(), "nothing was deleted");
    // Excluded, it is not read, and the run goes on (its pods' images are not protected).
    aks.kube.set_failing(Some(403));
    let before = aks.kube.requests().len();
    let run = purge(&registry, &aks, &["--in-use-exclude-cluster", CLUSTER]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        aks.kube.requests().len(),
        before,
        "the excluded cluster is not asked"
    );
    assert!(!registry.has("app", "stale"));
    assert!(
        !registry.has("app", "previous"),
        "only the excluded cluster ran it"
    );
    assert!(aks.graph.requests().len() > 1);
}
