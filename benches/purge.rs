//! Throughput figures: `cargo bench --bench purge` (set `BENCH_SCALE=N` to multiply sizes).
//!
//! 1. The planner alone, in memory: one repository of multi-arch images, as they are, with
//!    in-use protection on, and all signed with cosign.
//! 2. Whole runs against the ACR emulator over loopback HTTP with a simulated round trip,
//!    at several `--concurrency` values: wall time, requests sent, items deleted per second.

use acr_emulator::{Emulator, ManifestSeed, RepoSeed, Seed, TagSeed};
use acr_purge::plan::evidence::{Evidence, InUse};
use acr_purge::plan::fixture::{Listing, Manifest, Snapshot, cosign_tag_of};
use acr_purge::plan::{Draft, Scope};
use acr_purge::policy::{Ago, Filter, Policy, Rule};
use acr_purge::registry::{ClientOptions, Endpoint, RateCard, RegistryClient};
use acr_purge::run::{self, RunOptions};
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
            not_pulled_for: None,
            vulnerable_min: None,
            bounds: Default::default(),
        }],
        ..Policy::default()
    }
}

/// What a planner benchmark adds to its multi-arch images.
#[derive(Clone, Copy, PartialEq)]
enum Extra {
    Nothing,
    /// In-use protection on: a workload runs the newest image by its tag.
    InUse,
    /// Every image signed with cosign (a `sha256-<hex>.sig` tag on a signature manifest).
    Signed,
}

/// Planner throughput over `images` multi-arch images (an index and two children each).
fn bench_planner(images: usize, extra: Extra) {
    let now = chrono::Utc::now();
    let mut listing = Listing::new(now);
    for i in 0..images {
        let age = (1 + i % 90) as i64 * 24 * 60;
        let (amd64, arm64) = (format!("i{i}-amd64"), format!("i{i}-arm64"));
        listing.push(Manifest::image(&amd64).age(age));
        listing.push(Manifest::image(&arm64).age(age));
        listing.push(
            Manifest::index(&format!("i{i}"), &[&amd64, &arm64])
                .age(age)
                .tag(&format!("build-{i}"), age),
        );
        if extra == Extra::Signed {
            let signature = Manifest::image(&format!("i{i}-sig")).age(age);
            listing.push(signature.tag(&cosign_tag_of(&format!("i{i}")), age));
        }
    }
    let Snapshot {
        tags,
        manifests,
        bodies,
        referrers,
    } = listing.snapshot();
    let policy = policy(true);
    // Timed: the planner itself, from the listings to the plan (reading bodies and
    // referrers is I/O in a run, so they are ready here, as the registry would serve them).
    let started = Instant::now();
    let mut scope = Scope::new(&policy, "app", now)
        .expect("filters evaluate")
        .expect("covered");
    if extra == Extra::InUse {
        let workload = "/subscriptions/s/resourceGroups/g/providers/Microsoft.App/containerApps/a";
        let tag = format!("build-{}", images - 1);
        scope = scope.with_evidence(Evidence {
            in_use: Some(InUse {
                tags: [(tag, workload.to_string())].into(),
                ..InUse::default()
            }),
            ..Evidence::default()
        });
    }
    let draft = Draft::new("app", scope, tags, Some(manifests)).expect("draft");
    // What a run asks the draft before it reads (the bodies and referrers it needs).
    let wanted = draft.bodies_needed().len();
    let source = draft.referrer_source(20.0);
    let plan = draft.finish(&bodies, &referrers);
    let elapsed = started.elapsed();
    std::hint::black_box((wanted, source));
    let deleted = plan.manifests_to_delete().count();
    println!(
        "planner{}: {} manifests ({images} multi-arch images) planned in {:.1} ms ({:.0} manifests/s); {} to delete",
        match extra {
            Extra::Nothing => "",
            Extra::InUse => " (in-use protection on)",
            Extra::Signed => " (every image signed)",
        },
        plan.manifests.len(),
        elapsed.as_secs_f64() * 1e3,
        plan.manifests.len() as f64 / elapsed.as_secs_f64(),
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
    // No pacing: this measures the engine at a latency (`benches/scale.rs` measures it
    // under rate cards).
    let options = ClientOptions {
        concurrency,
        rate_card: RateCard::UNLIMITED,
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
    bench_planner(20_000 * scale, Extra::Nothing);
    bench_planner(20_000 * scale, Extra::InUse);
    bench_planner(20_000 * scale, Extra::Signed);
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
