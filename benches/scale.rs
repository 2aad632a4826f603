//! Purges at scale: `cargo bench --bench scale` (`BENCH_ONLY=<label part>` runs only the
//! scenarios whose label contains it; `BENCH_QUICK=1` runs the small ones; `BENCH_NO_STATE=1`
//! runs without the run store, `BENCH_NO_STORAGE=1` without the storage figures' body reads,
//! to compare; `BENCH_WRAPPER="heaptrack -o /tmp/purge"` runs the handler under a profiler).
//!
//! The `dry run` scenarios list and plan one large repository (`--dry-run`): what the plan
//! costs in memory, printed as peak RSS per listed item (a tag or a manifest), then again
//! with the run store the first wrote (the blobs of every manifest remembered). The
//! `second run` scenario purges the same registry three times, each on a fresh copy: with
//! the storage figures and a new run store, again with that run store (every manifest's
//! blobs were seen), and with `--no-storage`; it prints the reads the figures add to each.
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
    /// `--dry-run`: list and plan only.
    dry_run: bool,
    /// Also measure a second run's storage reads (see the module's comment).
    second_run: bool,
}

/// acr purge's figures measured in issue 26 against the same emulated registries: its
/// wall time on 20×50 at 20 ms with no limits, and its peak RSS for a dry run of one
/// repository of 50,000 single-tag images.
const ACR_PURGE_20X50_20MS_SECONDS: f64 = 4.8;
const ACR_PURGE_50K_DRY_RUN_MB: f64 = 46.0;

/// `repositories` × `images` single-tag Docker images, the first `old_fraction` of each
/// repository's images stale (the first half of them three days old, the rest two days),
/// the others an hour old: what the issue measured.
fn registry(repositories: usize, images: usize, old_fraction: f64) -> Seed {
    let old = (images as f64 * old_fraction).round() as usize;
    (1..=repositories).fold(Seed::new(), |seed, r| {
        let mut repo = RepoSeed::new(&format!("repo-{r:04}"));
        for i in 0..images {
            let age = match i {
                i if i < old / 2 => "3d",
                i if i < old => "2d",
                _ => "1h",
            };
            repo.push(
                ManifestSeed::docker(&format!("i{i}"))
                    .age(age)
                    .tag(TagSeed::new(&format!("v{i:06}")).age(age)),
            );
        }
        seed.repo(repo)
    })
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
            dry_run: false,
            second_run: false,
        },
        Scenario {
            label: "20x50 premium x10",
            repositories: 20,
            images: 50,
            old_fraction: 0.5,
            latency: ms(0),
            card: premium10(),
            dry_run: false,
            second_run: false,
        },
        Scenario {
            label: "20x50 20ms no limits",
            repositories: 20,
            images: 50,
            old_fraction: 0.5,
            latency: ms(20),
            card: None,
            dry_run: false,
            second_run: true,
        },
        Scenario {
            label: "50x200 standard x10 5ms",
            repositories: 50,
            images: 200,
            old_fraction: 0.5,
            latency: ms(5),
            card: standard10(),
            dry_run: false,
            second_run: false,
        },
        Scenario {
            label: "2000x10 premium x10 5ms",
            repositories: 2000,
            images: 10,
            old_fraction: 0.5,
            latency: ms(5),
            card: premium10(),
            dry_run: false,
            second_run: false,
        },
        Scenario {
            label: "1x100000 premium x10",
            repositories: 1,
            images: 100_000,
            old_fraction: 0.1,
            latency: ms(0),
            card: premium10(),
            dry_run: false,
            second_run: false,
        },
        Scenario {
            label: "100x10000 (1M tags) premium x10",
            repositories: 100,
            images: 10_000,
            old_fraction: 0.02,
            latency: ms(0),
            card: premium10(),
            dry_run: false,
            second_run: false,
        },
        dry_run("1x50000 dry run", 50_000),
        dry_run("1x100000 dry run", 100_000),
        dry_run("1x1000000 dry run", 1_000_000),
    ]
}

/// A dry run of one repository of `images` single-tag images, a tenth of them stale, with
/// no rate card.
fn dry_run(label: &'static str, images: usize) -> Scenario {
    Scenario {
        label,
        repositories: 1,
        images,
        old_fraction: 0.1,
        latency: Duration::ZERO,
        card: None,
        dry_run: true,
        second_run: false,
    }
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

/// One `handler purge` against the scenario's registry.
struct Outcome {
    ok: bool,
    rss: f64,
    wall: f64,
    loaded: Duration,
    stats: acr_emulator::RateStats,
    deleted: usize,
}

/// A generated registry served by the emulator.
struct Served {
    emulator: Emulator,
    running: acr_emulator::RunningEmulator,
    loaded: Duration,
}

impl Served {
    fn new(scenario: &Scenario, runtime: &tokio::runtime::Runtime) -> Served {
        let seed = registry(
            scenario.repositories,
            scenario.images,
            scenario.old_fraction,
        );
        let loading = Instant::now();
        let emulator = Emulator::new(seed).expect("generated registry");
        let loaded = loading.elapsed();
        emulator.set_recording(false);
        emulator.set_latency(scenario.latency);
        emulator.set_rate_card(scenario.card.as_ref().map(|(card, _)| card.clone()));
        let running = runtime.block_on(emulator.start()).expect("emulator starts");
        Served {
            emulator,
            running,
            loaded,
        }
    }

    /// Runs `handler purge --ago <ago>`; the requests counted are this run's.
    fn purge(
        &self,
        scenario: &Scenario,
        ago: &str,
        state: Option<&std::path::Path>,
        no_storage: bool,
    ) -> Outcome {
        let tags = |served: &Served| -> usize {
            let left = served.emulator.snapshot();
            (1..=scenario.repositories)
                .map(|r| left.tag_names(&format!("repo-{r:04}")).len())
                .sum()
        };
        let before = (self.emulator.rate_stats(), tags(self));
        let card = scenario
            .card
            .as_ref()
            .map_or("unlimited".to_string(), |(_, text)| text.clone());
        let started = Instant::now();
        // BENCH_WRAPPER="heaptrack -o /tmp/purge" runs the handler under a profiler.
        let mut command = match std::env::var("BENCH_WRAPPER") {
            Ok(wrapper) => {
                let mut words = wrapper.split_whitespace();
                let mut command = std::process::Command::new(words.next().unwrap_or("env"));
                command.args(words).arg(env!("CARGO_BIN_EXE_handler"));
                command
            }
            Err(_) => std::process::Command::new(env!("CARGO_BIN_EXE_handler")),
        };
        if let Some(state) = state {
            command.env("PURGE_STATE_DIR", state);
        }
        let child = command
            .args([
                "purge",
                "-r",
                &self.running.url,
                "--filter",
                ".*:.*",
                "--ago",
                ago,
            ])
            .args(["--untagged", "--concurrency", "8", "--rate-card", &card])
            .args(state.is_none().then_some("--no-state"))
            .args(no_storage.then_some("--no-storage"))
            .args(scenario.dry_run.then_some("--dry-run"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("handler starts");
        let (ok, rss) = wait_with_rss(child);
        let wall = started.elapsed().as_secs_f64();
        let stats = since(&before.0, &self.emulator.rate_stats());
        Outcome {
            ok,
            rss,
            wall,
            loaded: self.loaded,
            stats,
            deleted: before.1 - tags(self),
        }
    }

    fn shutdown(self, runtime: &tokio::runtime::Runtime) {
        runtime.block_on(self.running.shutdown());
    }
}

/// The requests counted between `before` and `after`.
fn since(
    before: &acr_emulator::RateStats,
    after: &acr_emulator::RateStats,
) -> acr_emulator::RateStats {
    let minus = |a: &acr_emulator::CategoryStats, b: &acr_emulator::CategoryStats| {
        acr_emulator::CategoryStats {
            allowed: a.allowed - b.allowed,
            throttled: a.throttled - b.throttled,
            ..*a
        }
    };
    acr_emulator::RateStats {
        read: minus(&after.read, &before.read),
        write: minus(&after.write, &before.write),
        delete: minus(&after.delete, &before.delete),
        referrers: minus(&after.referrers, &before.referrers),
    }
}

fn reads(stats: &acr_emulator::RateStats) -> u64 {
    stats.read.allowed + stats.read.throttled + stats.referrers.allowed + stats.referrers.throttled
}

fn run(scenario: &Scenario, runtime: &tokio::runtime::Runtime) {
    let stale =
        (scenario.images as f64 * scenario.old_fraction).round() as usize * scenario.repositories;
    let tags = scenario.repositories * scenario.images;
    // Each run records in a run store of its own (a directory), as `handler purge` does by
    // default; BENCH_NO_STATE=1 runs without one, to measure what recording costs.
    let state = tempfile::tempdir().expect("state dir");
    let no_state = std::env::var("BENCH_NO_STATE").is_ok();
    // The storage figures read every manifest body of a purged repository (reads).
    let no_storage = std::env::var("BENCH_NO_STORAGE").is_ok();
    // A dry run is run again on the same registry with the run store the first one wrote
    // (its blobs are remembered by registry and repository).
    let again_too = scenario.dry_run && !no_state && !no_storage;
    let served = Served::new(scenario, runtime);
    let run = served.purge(
        scenario,
        "1d",
        (!no_state).then_some(state.path()),
        no_storage,
    );
    let again = again_too.then(|| served.purge(scenario, "1d", Some(state.path()), false));
    served.shutdown(runtime);
    let (ok, rss, wall, stats, deleted) = (run.ok, run.rss, run.wall, &run.stats, run.deleted);
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
    let deletions = if scenario.dry_run { 0 } else { 2 * stale };
    let acr_purge = 1 + scenario.repositories * (pages + pages + 1) + deletions;
    let total = reads(stats)
        + stats.write.allowed
        + stats.write.throttled
        + stats.delete.allowed
        + stats.delete.throttled;
    // Items listed at once: a tag and a manifest per image of each repository in flight
    // (eight side by side). On the one-repository scenarios this is what the plan costs.
    let in_flight = 2 * scenario.images * scenario.repositories.min(8);
    let bytes_per_item = rss * 1024.0 * 1024.0 / in_flight as f64;
    let expected = if scenario.dry_run { 0 } else { stale };
    println!("{}: {tags} tags, {stale} stale images", scenario.label);
    println!("  peak RSS per listed item in flight: {bytes_per_item:.0} bytes ({in_flight} items)");
    println!(
        "  emulator loaded in {:.1} s; handler {}: {wall:.2} s, peak RSS {rss:.0} MB, {deleted} tags deleted (expected {expected})",
        run.loaded.as_secs_f64(),
        if ok { "exit 0" } else { "FAILED" },
    );
    if scenario.dry_run && scenario.images == 50_000 {
        println!(
            "  acr purge --dry-run peaked at {ACR_PURGE_50K_DRY_RUN_MB:.0} MB here (issue 26): {:.2}x",
            rss / ACR_PURGE_50K_DRY_RUN_MB
        );
    }
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
    if scenario.latency == Duration::from_millis(20) && scenario.card.is_none() {
        println!(
            "  acr purge took {ACR_PURGE_20X50_20MS_SECONDS} s here (issue 26): {:.2}x its wall time",
            wall / ACR_PURGE_20X50_20MS_SECONDS
        );
    }
    if scenario.second_run && !no_state && !no_storage {
        second_run(scenario, runtime);
    }
    if let Some(again) = again {
        // Every manifest's blobs are remembered: the figures read no body and hold the
        // remembered lists instead.
        println!(
            "  again with the blobs remembered: {}, peak RSS {:.0} MB ({:.0} bytes per item), {} reads",
            if again.ok { "exit 0" } else { "FAILED" },
            again.rss,
            again.rss * 1024.0 * 1024.0 / in_flight as f64,
            reads(&again.stats)
        );
    }
}

/// The reads the storage figures add to a scheduled purge, on its first run and on the
/// next, once the registry's kept manifests were seen: each on one registry, a first run
/// `--ago 60h` (deleting the oldest stale images, reading the blobs of every other) and a
/// second `--ago 1d` (deleting the images the first kept that have aged since), against the
/// same two runs with `--no-storage` on a fresh copy.
fn second_run(scenario: &Scenario, runtime: &tokio::runtime::Runtime) {
    let (state, base_state) = (
        tempfile::tempdir().expect("state dir"),
        tempfile::tempdir().expect("state dir"),
    );
    let served = Served::new(scenario, runtime);
    let first = served.purge(scenario, "60h", Some(state.path()), false);
    let second = served.purge(scenario, "1d", Some(state.path()), false);
    served.shutdown(runtime);
    let base = Served::new(scenario, runtime);
    let base_first = base.purge(scenario, "60h", Some(base_state.path()), true);
    let base_second = base.purge(scenario, "1d", Some(base_state.path()), true);
    base.shutdown(runtime);
    let extra = |run: &Outcome, base: &Outcome| {
        let extra = reads(&run.stats).saturating_sub(reads(&base.stats));
        let share = 100.0 * extra as f64 / reads(&base.stats).max(1) as f64;
        format!(
            "{extra} extra reads ({share:.0}% of {} without the figures; {:.2} s against {:.2} s)",
            reads(&base.stats),
            run.wall,
            base.wall
        )
    };
    let all_ok = [&first, &second, &base_first, &base_second]
        .iter()
        .all(|r| r.ok && r.deleted > 0);
    println!(
        "  storage figures, first run: {}; second run: {}{}",
        extra(&first, &base_first),
        extra(&second, &base_second),
        if all_ok { "" } else { " FAILED" },
    );
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
