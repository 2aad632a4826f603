//! Throughput figures: `cargo bench --bench purge` (set `BENCH_SCALE=N` to multiply sizes).
//!
//! 1. The planner alone, in memory: one repository of multi-arch images.
//! 2. Whole runs against the ACR emulator over loopback HTTP with a simulated round trip,
//!    at several `--concurrency` values: wall time, requests sent, items deleted per second.

use acr_purge::emulator::{Emulator, ManifestSeed, RepoSeed, Seed, TagSeed};
use acr_purge::plan::{Body, Draft, Scope};
use acr_purge::policy::{Ago, Filter, Policy, Rule};
use acr_purge::registry::model::{
    ChangeableAttributes, Descriptor, ManifestAttributes, ManifestBody, OCI_INDEX, OCI_MANIFEST,
    TagAttributes,
};
use acr_purge::registry::{ClientOptions, Endpoint, RegistryClient};
use acr_purge::run::{self, RunOptions};
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn scale() -> usize {
    std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n: &usize| *n > 0)
        .unwrap_or(1)
}

fn policy(untagged: bool) -> Policy {
    Policy {
        rules: vec![Rule {
            filters: vec![Filter::parse(".*:^build-").expect("filter")],
            ago: Ago::parse("30d").expect("ago"),
            keep: 10,
            untagged,
            untagged_only: false,
            include_locked: false,
        }],
        protect: vec![],
    }
}

/// Planner throughput over `images` multi-arch images (an index and two children each).
fn bench_planner(images: usize) {
    let now = chrono::Utc::now();
    let mut tags = Vec::new();
    let mut manifests = Vec::new();
    let mut bodies = HashMap::new();
    let time = |days: usize| (now - chrono::TimeDelta::days(days as i64)).to_rfc3339();
    for i in 0..images {
        let age = 1 + i % 90;
        let index = format!("sha256:{:064x}", 3 * i);
        let children: Vec<String> = (1..=2)
            .map(|c| format!("sha256:{:064x}", 3 * i + c))
            .collect();
        let tag = format!("build-{i}");
        tags.push(TagAttributes {
            name: tag.clone(),
            digest: index.clone(),
            created_time: None,
            last_update_time: Some(time(age)),
            changeable_attributes: ChangeableAttributes::default(),
        });
        let listed = |digest: &str, media: &str, tags: Option<Vec<String>>| ManifestAttributes {
            digest: Some(digest.to_string()),
            image_size: None,
            created_time: None,
            last_update_time: Some(time(age)),
            architecture: None,
            os: None,
            media_type: Some(media.to_string()),
            config_media_type: None,
            tags,
            changeable_attributes: ChangeableAttributes::default(),
        };
        manifests.push(listed(&index, OCI_INDEX, Some(vec![tag])));
        let body = ManifestBody {
            manifests: children
                .iter()
                .map(|d| Descriptor {
                    media_type: Some(OCI_MANIFEST.into()),
                    digest: d.clone(),
                    artifact_type: None,
                })
                .collect(),
            ..ManifestBody::default()
        };
        bodies.insert(index.clone(), Body::Found(body));
        for child in children {
            manifests.push(listed(&child, OCI_MANIFEST, None));
            bodies.insert(child, Body::Found(ManifestBody::default()));
        }
    }
    tags.sort_by(|a, b| b.last_update_time.cmp(&a.last_update_time));
    manifests.sort_by(|a, b| a.digest.cmp(&b.digest));
    let policy = policy(true);
    let started = Instant::now();
    let scope = Scope::new(&policy, "app", now)
        .expect("scope")
        .expect("covered");
    let draft = Draft::new("app", scope, tags, Some(manifests)).expect("draft");
    let referrers: HashMap<String, Vec<String>> = draft
        .referrers_needed()
        .into_iter()
        .map(|d| (d, Vec::new()))
        .collect();
    let plan = draft.finish(&bodies, &referrers);
    let elapsed = started.elapsed();
    let deleted = plan.manifests_to_delete().count();
    println!(
        "planner: {} manifests ({images} multi-arch images) planned in {:.1} ms ({:.0} manifests/s); {} to delete",
        3 * images,
        elapsed.as_secs_f64() * 1e3,
        (3 * images) as f64 / elapsed.as_secs_f64(),
        deleted
    );
}

fn registry_seed(repositories: usize, images: usize) -> Seed {
    (0..repositories).fold(Seed::new(), |seed, r| {
        let mut repo = RepoSeed::new(&format!("team/app{r}"));
        for i in 0..images {
            let age = format!("{}d", 1 + (i * 97) % 120);
            repo.push(
                ManifestSeed::image(&format!("img{i}"))
                    .age(&age)
                    .tag(TagSeed::new(&format!("build-{i}")).age(&age)),
            );
        }
        seed.repo(repo)
    })
}

async fn bench_run(
    label: &str,
    repositories: usize,
    images: usize,
    latency: Duration,
    concurrency: usize,
) {
    let emulator = Emulator::new(registry_seed(repositories, images)).expect("seed");
    emulator.set_latency(latency);
    let running = emulator.start().await.expect("start emulator");
    let endpoint = Endpoint::parse(&running.url).expect("endpoint");
    let options = ClientOptions {
        concurrency,
        ..ClientOptions::default()
    };
    let client = RegistryClient::connect(endpoint, None, options)
        .await
        .expect("connect");
    let run_options = RunOptions {
        concurrency,
        ..RunOptions::default()
    };
    let started = Instant::now();
    let report = run::run(&client, &policy(true), &run_options, &mut |_| {}).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert!(report.error.is_none(), "{:?}", report.error);
    let s = &report.summary;
    let deleted = s.tags_deleted + s.manifests_deleted;
    println!(
        "{label}: {repositories} repos x {images} images, {:?} round trip, concurrency {concurrency:>2}: {elapsed:>6.2} s, {} requests ({:.1} per deleted item), {deleted} deleted, {:.0} deletions/s",
        latency,
        s.requests.requests,
        s.requests.requests as f64 / deleted.max(1) as f64,
        deleted as f64 / elapsed
    );
}

fn main() {
    let scale = scale();
    bench_planner(20_000 * scale);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let latency = Duration::from_millis(5);
        for concurrency in [1, 8, 32] {
            bench_run("one big repository", 1, 400 * scale, latency, concurrency).await;
        }
        for concurrency in [1, 8, 32] {
            bench_run("many repositories ", 40, 40 * scale, latency, concurrency).await;
        }
    });
}
