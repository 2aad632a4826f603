//! Purges at scale: `cargo bench --bench scale` (`BENCH_ONLY=<label part>` runs only the
//! scenarios whose label contains it; `BENCH_QUICK=1` runs the small ones; `BENCH_NO_STATE=1`
//! runs without the run store, `BENCH_NO_STORAGE=1` without the storage figures' body reads,
//! to compare).
//!
//! Each scenario runs the real `handler purge` binary, as a user would, against the ACR
//! emulator (in this process) serving a generated registry, with a simulated round trip
//! and the emulator enforcing a rate card (per-identity token buckets per category, 429
//! with a counting-down `Retry-After`). Rate cards are compressed in time (×10: ten times
//! the rates, a tenth of the penalty) so that a run that takes minutes on ACR takes
//! seconds here; the client is given the same compressed card.
//!
//! Printed per scenario: wall time; requests per category as the emulator counted them
//! (throttled ones in brackets); deletions per second against the delete budget; the
//! **floor** the budgets allow (for each category, its requests divided by its rate; the
//! largest) and wall time over floor; peak RSS of the `handler` process (its `VmHWM`); and the requests
//! acr purge would send for the same purge (its documented algorithm: the catalog, the tag
//! pages, the manifest pages up to an empty one, an untag and a manifest DELETE per stale
//! image).

use acr_emulator::{Emulator, ManifestSeed, RateCard, RepoSeed, Seed, TagSeed};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// One benchmark scenario.
struct Scenario {
    label: &'static str,
    repositories: usize,
    images: usize,
    old_fraction: f64,
    latency: Duration,
    /// The emulator's card and the client's `--rate-card` value; `None`: no limits.
    card: Option<(RateCard, String)>,
}

/// `repositories` × `images` single-tag Docker images, the first `old_fraction` of each
/// repository's images two days old, the others an hour: what the issue measured.
fn registry(repositories: usize, images: usize, old_fraction: f64) -> (Seed, usize) {
    let old = (images as f64 * old_fraction).round() as usize;
    let seed = (1..=repositories).fold(Seed::new(), |seed, r| {
        let mut repo = RepoSeed::new(&format!("repo-{r:04}"));
        for i in 0..images {
            let age = if i < old { "2d" } else { "1h" };
            repo.push(
                ManifestSeed::docker(&format!("i{i}"))
                    .age(age)
                    .tag(TagSeed::new(&format!("v{i:06}")).age(age)),
            );
        }
        seed.repo(repo)
    });
    (seed, old * repositories)
}

fn client_card(card: &RateCard) -> String {
    format!(
        "read={},write={},delete={},referrers={}",
        card.read, card.write, card.delete, card.referrers
    )
}

fn limited(card: RateCard) -> Option<(RateCard, String)> {
    let text = client_card(&card);
    Some((card, text))
}

fn scenarios() -> Vec<Scenario> {
    let ms = Duration::from_millis;
    let standard10 = || limited(RateCard::standard().compressed(10.0));
    let premium10 = || limited(RateCard::premium().compressed(10.0));
    vec![
        Scenario {
            label: "20x50 standard x10",
            repositories: 20,
            images: 50,
            old_fraction: 0.5,
            latency: ms(0),
            card: standard10(),
        },
        Scenario {
            label: "20x50 premium x10",
            repositories: 20,
            images: 50,
            old_fraction: 0.5,
            latency: ms(0),
            card: premium10(),
        },
        Scenario {
            label: "20x50 20ms no limits",
            repositories: 20,
            images: 50,
            old_fraction: 0.5,
            latency: ms(20),
            card: None,
        },
        Scenario {
            label: "50x200 standard x10 5ms",
            repositories: 50,
            images: 200,
            old_fraction: 0.5,
            latency: ms(5),
            card: standard10(),
        },
        Scenario {
            label: "2000x10 premium x10 5ms",
            repositories: 2000,
            images: 10,
            old_fraction: 0.5,
            latency: ms(5),
            card: premium10(),
        },
        Scenario {
            label: "1x100000 premium x10",
            repositories: 1,
            images: 100_000,
            old_fraction: 0.1,
            latency: ms(0),
            card: premium10(),
        },
        Scenario {
            label: "100x10000 (1M tags) premium x10",
            repositories: 100,
            images: 10_000,
            old_fraction: 0.02,
            latency: ms(0),
            card: premium10(),
        },
    ]
}

/// Waits for `child`; returns whether it exited 0 and its peak RSS in MB (`VmHWM` of
/// `/proc/<pid>/status`, read every 20 ms: it covers the process after `exec` only, where
/// `getrusage` would also count the pages it shared with this process before).
fn wait_with_rss(mut child: std::process::Child) -> (bool, f64) {
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_path)
            && let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        match child.try_wait() {
            Ok(Some(status)) => return (status.success(), peak_kb as f64 / 1024.0),
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(error) => panic!("waiting for the handler: {error}"),
        }
    }
}

fn run(scenario: &Scenario, runtime: &tokio::runtime::Runtime) {
    let (seed, stale) = registry(
        scenario.repositories,
        scenario.images,
        scenario.old_fraction,
    );
    let tags = scenario.repositories * scenario.images;
    let loading = Instant::now();
    let emulator = Emulator::new(seed).expect("generated registry");
    let loaded = loading.elapsed();
    emulator.set_recording(false);
    emulator.set_latency(scenario.latency);
    emulator.set_rate_card(scenario.card.as_ref().map(|(card, _)| card.clone()));
    let running = runtime.block_on(emulator.start()).expect("emulator starts");
    let card = scenario
        .card
        .as_ref()
        .map_or("unlimited".to_string(), |(_, text)| text.clone());
    // Each run records in a run store of its own (a directory), as `handler purge` does by
    // default; BENCH_NO_STATE=1 runs without one, to measure what recording costs.
    let state = tempfile::tempdir().expect("state dir");
    let no_state = std::env::var("BENCH_NO_STATE").is_ok();
    // The storage figures read every manifest body of a purged repository (reads).
    let no_storage = std::env::var("BENCH_NO_STORAGE").is_ok();
    let started = Instant::now();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_handler"))
        .args([
            "purge",
            "-r",
            &running.url,
            "--filter",
            ".*:.*",
            "--ago",
            "1d",
        ])
        .args(["--untagged", "--concurrency", "8", "--rate-card", &card])
        .args(no_state.then_some("--no-state"))
        .args(no_storage.then_some("--no-storage"))
        .env("PURGE_STATE_DIR", state.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("handler starts");
    let (ok, rss) = wait_with_rss(child);
    let wall = started.elapsed().as_secs_f64();
    let stats = emulator.rate_stats();
    let left = emulator.snapshot();
    let remaining: usize = (1..=scenario.repositories)
        .map(|r| left.tag_names(&format!("repo-{r:04}")).len())
        .sum();
    let deleted = tags - remaining;
    let per =
        |c: &acr_emulator::CategoryStats| format!("{} ({})", c.allowed + c.throttled, c.throttled);
    let floor = scenario.card.as_ref().map(|(card, _)| {
        [
            (stats.read.allowed + stats.referrers.allowed, card.read),
            (stats.write.allowed, card.write),
            (stats.delete.allowed, card.delete),
            (stats.referrers.allowed, card.referrers),
        ]
        .iter()
        .map(|(n, per_minute)| *n as f64 / (per_minute / 60.0))
        .fold(0.0, f64::max)
    });
    let delete_rate = stats.delete.allowed as f64 / wall;
    // acr purge: the catalog; per repository its tag pages (it follows `Link`) and its
    // manifest pages up to an empty one; an untag and a manifest DELETE per stale image.
    let pages = scenario.images.div_ceil(100);
    let acr_purge = 1 + scenario.repositories * (pages + pages + 1) + 2 * stale;
    let total = stats.read.allowed
        + stats.read.throttled
        + stats.write.allowed
        + stats.write.throttled
        + stats.delete.allowed
        + stats.delete.throttled
        + stats.referrers.allowed
        + stats.referrers.throttled;
    // Items listed at once: a tag and a manifest per image of each repository in flight
    // (eight side by side). On the one-repository scenarios this is what the plan costs.
    let in_flight = 2 * scenario.images * scenario.repositories.min(8);
    let bytes_per_item = rss * 1e6 / in_flight as f64;
    println!("{}: {tags} tags, {stale} stale images", scenario.label);
    println!("  peak RSS per listed item in flight: {bytes_per_item:.0} bytes ({in_flight} items)");
    println!(
        "  emulator loaded in {:.1} s; handler {}: {wall:.2} s, peak RSS {rss:.0} MB, {deleted} tags deleted (expected {stale})",
        loaded.as_secs_f64(),
        if ok { "exit 0" } else { "FAILED" },
    );
    println!(
        "  requests {total} (acr purge: {acr_purge}): read {}, write {}, delete {}, referrers {} [throttled in brackets]",
        per(&stats.read),
        per(&stats.write),
        per(&stats.delete),
        per(&stats.referrers)
    );
    match (floor, &scenario.card) {
        (Some(floor), Some((card, _))) => println!(
            "  {delete_rate:.0} deletes/s against a delete budget of {:.0}/s; floor {floor:.2} s; wall/floor {:.2}",
            card.delete / 60.0,
            wall / floor
        ),
        _ => println!("  {delete_rate:.0} deletes/s, no rate card"),
    }
    runtime.block_on(running.shutdown());
}

fn main() {
    let only = std::env::var("BENCH_ONLY").ok();
    let quick = std::env::var("BENCH_QUICK").is_ok();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for scenario in scenarios() {
        if only
            .as_ref()
            .is_some_and(|o| !scenario.label.contains(o.as_str()))
        {
            continue;
        }
        if quick && scenario.repositories * scenario.images > 10_000 {
            continue;
        }
        run(&scenario, &runtime);
    }
}
