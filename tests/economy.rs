//! Request economy and pipelining: what a purge sends, counted at the emulator, against what
//! acr purge would send for the same registry; and that deleting an image whole keeps every
//! safety check.

use crate::support::purge::{Registry, Run, tagged};
use acr_emulator::{Fault, ManifestSeed, RateCard, RecordedRequest, RepoSeed, Seed, TagSeed};
use std::collections::BTreeSet;

/// `repos` repositories of `images` single-tag Docker images, every other one older than a
/// day: the issue's benchmark registry, small.
fn docker_registry(repos: usize, images: usize) -> Seed {
    (0..repos).fold(Seed::new(), |seed, r| {
        let mut repo = RepoSeed::new(&format!("repo{r:02}"));
        for i in 0..images {
            let age = if i % 2 == 0 { "3d" } else { "1h" };
            repo.push(
                ManifestSeed::docker(&format!("i{i}"))
                    .age(age)
                    .tag(TagSeed::new(&format!("v{i:03}")).age(age)),
            );
        }
        seed.repo(repo)
    })
}

fn data_plane(requests: &[RecordedRequest]) -> Vec<&RecordedRequest> {
    requests
        .iter()
        .filter(|r| !r.path.starts_with("/oauth2/"))
        .collect()
}

fn count(requests: &[&RecordedRequest], method: &str, path_part: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.method == method && r.path.contains(path_part))
        .count()
}

#[tokio::test]
async fn stale_images_cost_one_read_and_one_delete_each_and_fewer_requests_than_acr_purge() {
    let (repos, images) = (4, 10);
    let registry = Registry::start(docker_registry(repos, images)).await;
    // The purge's own requests; the storage figures' body reads are counted in
    // `storage_figures_cost_one_read_per_manifest_of_a_purged_repository`.
    let run = registry
        .purge(&[
            "--filter",
            ".*:.*",
            "--ago",
            "1d",
            "--untagged",
            "--no-storage",
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let stale = repos * images / 2;
    assert!(
        run.stdout
            .contains(&format!("Number of deleted tags: {stale}")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("Number of deleted manifests: {stale}")),
        "{}",
        run.stdout
    );
    // Every stale tag is still named as deleted, under its repository's tag section.
    let deleted = run.lines("Deleted ");
    for r in 0..repos {
        let p = registry.prefix(&format!("repo{r:02}"));
        for i in (0..images).step_by(2) {
            assert!(deleted.contains(&format!("{p}:v{i:03}")), "{deleted:?}");
        }
    }
    let all = registry.emulator().requests();
    let requests = data_plane(&all);
    assert_eq!(count(&requests, "DELETE", "/manifests/"), stale);
    assert_eq!(
        count(&requests, "DELETE", "/_tags/"),
        0,
        "no untagging first"
    );
    assert_eq!(
        count(&requests, "GET", "/referrers/"),
        0,
        "the listing decides"
    );
    let verifications = requests
        .iter()
        .filter(|r| r.method == "GET" && r.query.contains("digest="))
        .count();
    assert_eq!(verifications, stale, "one verifying read per image");
    // acr purge: the catalog; per repository a tag page, and manifest pages up to an empty
    // one (two); an untag and a manifest DELETE per stale image (Docker manifests are not
    // read). We also count our /v2/ probe.
    let acr_purge = 1 + repos * 3 + stale * 2;
    assert!(
        requests.len() <= acr_purge,
        "{} requests, acr purge sends {acr_purge}",
        requests.len()
    );
    // Every young image is intact.
    for r in 0..repos {
        let tags = registry.tags(&format!("repo{r:02}"));
        let young: BTreeSet<String> = (1..images).step_by(2).map(|i| format!("v{i:03}")).collect();
        assert_eq!(tags, young);
    }
}

#[tokio::test]
async fn the_dry_run_names_exactly_what_the_real_run_deletes() {
    // Images deleted whole, tags untagged only (the manifest keeps another tag), an index
    // with its children, and a locked image.
    let repo = RepoSeed::new("r")
        .manifest(tagged("whole", "old-1", "3d"))
        .manifest(
            ManifestSeed::image("shared")
                .age("3d")
                .tag(TagSeed::new("old-2").age("3d"))
                .tag(TagSeed::new("stays").age("1h")),
        )
        .manifest(ManifestSeed::image("amd64").age("3d"))
        .manifest(ManifestSeed::image("arm64").age("3d"))
        .manifest(
            ManifestSeed::index("multi")
                .age("3d")
                .child("amd64")
                .child("arm64")
                .tag(TagSeed::new("old-3").age("3d")),
        )
        .manifest(
            ManifestSeed::image("locked")
                .age("3d")
                .tag(TagSeed::new("old-4").age("3d").locked()),
        )
        .manifest(ManifestSeed::image("loose").age("3d"));
    let seed = Seed::new().repo(repo);
    let args = ["--filter", "r:.*", "--ago", "1d", "--untagged"];
    let preview = Registry::start(seed.clone()).await;
    let dry = preview.purge(&[&args[..], &["--dry-run"]].concat()).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(preview.mutations().is_empty());
    let real_registry = Registry::start(seed).await;
    let real = real_registry.purge(&args).await;
    assert_eq!(real.code, 0, "{}", real.stderr);
    // Both registries print the same host, so the lines compare as they are.
    let strip = |run: &Run, prefix: &str| -> BTreeSet<String> {
        run.lines(prefix)
            .into_iter()
            .map(|l| l.replace(&real_registry.running.host(), "HOST"))
            .map(|l| l.replace(&preview.running.host(), "HOST"))
            .collect()
    };
    let would = strip(&dry, "Would delete: ");
    let done = strip(&real, "Deleted ");
    assert_eq!(would, done);
    assert!(would.contains("HOST/r:old-1") && would.contains("HOST/r:old-2"));
    assert!(!would.iter().any(|l| l.ends_with(":old-4")), "locked stays");
    let left = real_registry.emulator().snapshot();
    assert!(left.has_manifest("r", &real_registry.digest("r", "shared")));
    assert!(!left.has_manifest("r", &real_registry.digest("r", "amd64")));
    assert_eq!(
        real_registry.tags("r"),
        ["old-4", "stays"].map(String::from).into()
    );
}

#[tokio::test]
async fn an_image_locked_while_its_tags_are_verified_is_kept_whole() {
    let repo = RepoSeed::new("r")
        .manifest(tagged("a", "v1", "2d"))
        .manifest(tagged("b", "v2", "2d"));
    let registry = Registry::start(Seed::new().repo(repo)).await;
    let a = registry.digest("r", "a");
    // Hold the verifying read of image a, and lock its tag meanwhile.
    registry.emulator().inject(
        Fault::delay(std::time::Duration::from_millis(1500))
            .method("GET")
            .path_contains("/_tags")
            .query_contains(&a)
            .times(1),
    );
    let url = format!("{}/acr/v1/r/_tags/v1", registry.running.url);
    let (run, locked) = tokio::join!(
        registry.purge(&["--filter", "r:.*", "--ago", "1d", "--untagged"]),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            reqwest::Client::new()
                .patch(&url)
                .json(&serde_json::json!({"deleteEnabled": false}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    );
    assert_eq!(locked.ok(), Some(200));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("its tag v1 was locked since it was listed"),
        "{}",
        run.stdout
    );
    assert_eq!(registry.tags("r"), ["v1".to_string()].into());
    assert!(registry.has("r", "a"), "the image stays whole");
    assert!(!registry.has("r", "b"));
}

#[tokio::test]
async fn deletions_start_before_the_last_repository_is_listed() {
    let registry = Registry::start(docker_registry(6, 4)).await;
    registry
        .emulator()
        .set_latency(std::time::Duration::from_millis(30));
    let run = registry
        .purge(&["--filter", ".*:.*", "--ago", "1d", "--concurrency", "2"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let requests = registry.emulator().requests();
    let first_delete = requests
        .iter()
        .position(|r| r.method == "DELETE")
        .expect("deletions");
    let last_listing = requests
        .iter()
        .rposition(|r| r.path.ends_with("/_tags") && r.query.contains("orderby"))
        .expect("listings");
    assert!(
        first_delete < last_listing,
        "the first DELETE (request {first_delete}) comes before the last listing \
         (request {last_listing})"
    );
    // Each repository's lines still come out together.
    let headers: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Deleting tags for repository: "))
        .collect();
    let mut sorted = headers.clone();
    sorted.dedup();
    assert_eq!(headers.len(), 6);
    assert_eq!(sorted.len(), 6, "{headers:?}");
    for repo in headers {
        let lines: Vec<usize> = run
            .stdout
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains(&format!("/{repo}:")))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            lines.last().unwrap() - lines.first().unwrap() + 1,
            lines.len(),
            "{repo}'s lines are together:\n{}",
            run.stdout
        );
    }
}

/// A small card: 10 deletes a second, bursts of half a second's worth, a 3 s penalty.
fn small_card() -> RateCard {
    RateCard {
        read: 6000.0,
        write: 600.0,
        delete: 600.0,
        referrers: 300.0,
        burst_seconds: 0.5,
        penalty_seconds: 3.0,
    }
}

#[tokio::test]
async fn under_a_small_rate_card_nothing_fails_and_deletes_run_at_the_bucket_rate() {
    let registry = Registry::start(docker_registry(2, 120)).await;
    let card = small_card();
    registry.emulator().set_rate_card(Some(card.clone()));
    let run = registry
        .purge(&[
            "--filter",
            ".*:.*",
            "--ago",
            "1d",
            "--untagged",
            "--rate-card",
            "read=6000,write=600,delete=600,referrers=300",
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("Number of deleted manifests: 120"),
        "{}",
        run.stdout
    );
    let stats = registry.emulator().rate_stats();
    assert_eq!(stats.delete.allowed, 120);
    assert_eq!(
        stats.delete.throttled, 0,
        "paced under the bucket: {stats:?}"
    );
    assert_eq!(stats.read.throttled, 0, "{stats:?}");
    // The delete rate past the initial burst, as the emulator saw it (reported, and held
    // to within 10% of the bucket: the pacer aims at 97% of the card).
    let (first, last) = (
        stats.delete.first_allowed.expect("deletes"),
        stats.delete.last_allowed.expect("deletes"),
    );
    let burst = (card.delete / 60.0 * card.burst_seconds) as u64;
    let seconds = (last - first).as_secs_f64();
    let rate = (stats.delete.allowed - burst) as f64 / seconds;
    let bucket = card.delete / 60.0;
    println!("delete rate {rate:.2}/s against a bucket of {bucket:.2}/s over {seconds:.1} s");
    assert!(
        rate >= 0.9 * bucket && rate <= 1.02 * bucket,
        "{rate:.2}/s against {bucket:.2}/s"
    );
}

#[tokio::test]
async fn a_registry_stricter_than_the_card_throttles_the_run_but_fails_nothing() {
    let registry = Registry::start(docker_registry(2, 40)).await;
    registry.emulator().set_rate_card(Some(small_card()));
    // The client believes in five times the delete budget.
    let run = registry
        .purge(&[
            "--filter",
            ".*:.*",
            "--ago",
            "1d",
            "--untagged",
            "--rate-card",
            "read=6000,write=600,delete=3000,referrers=300",
            "--output",
            "json",
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["summary"]["manifestsDeleted"], 40);
    assert_eq!(report["summary"]["failed"], 0);
    let stats = registry.emulator().rate_stats();
    assert!(
        stats.delete.throttled > 0,
        "the registry pushed back: {stats:?}"
    );
    assert_eq!(
        report["summary"]["requests"]["byCategory"]["delete"]["throttled"],
        stats.delete.throttled
    );
    assert_eq!(stats.delete.allowed, 40);
    for r in 0..2 {
        assert_eq!(registry.tags(&format!("repo{r:02}")).len(), 20);
    }
}

#[tokio::test]
async fn storage_figures_cost_one_read_per_manifest_of_a_purged_repository() {
    let (repos, images) = (2, 10);
    let registry = Registry::start(docker_registry(repos, images)).await;
    let run = registry
        .purge(&["--filter", ".*:.*", "--ago", "1d", "--untagged"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let all = registry.emulator().requests();
    let requests = data_plane(&all);
    let stale = repos * images / 2;
    // Without --no-storage: every manifest's body once, besides the verifying reads.
    let bodies = count(&requests, "GET", "/v2/repo");
    assert_eq!(bodies, repos * images, "one body read per manifest");
    assert_eq!(count(&requests, "DELETE", "/manifests/"), stale);
    assert!(run.stdout.contains("Storage freed: "), "{}", run.stdout);
}

#[tokio::test]
async fn storage_reads_never_hold_up_the_first_delete_and_a_second_run_reads_none_again() {
    let (repos, images) = (2, 40);
    let registry = Registry::start(docker_registry(repos, images)).await;
    let args = ["--filter", ".*:.*", "--ago", "1d", "--untagged"];
    // A dry run reads every body once, after its plan, and remembers their blobs.
    let mut dry_args = args.to_vec();
    dry_args.push("--dry-run");
    let dry = registry.purge(&dry_args).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let all = registry.emulator().requests();
    assert_eq!(count(&data_plane(&all), "GET", "/v2/repo"), repos * images);
    // The real run reads no body again, and finds the same figure.
    registry.emulator().clear_requests();
    let run = registry.purge(&args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let all = registry.emulator().requests();
    let requests = data_plane(&all);
    assert_eq!(
        count(&requests, "GET", "/v2/repo"),
        0,
        "every body was seen before"
    );
    assert_eq!(
        count(&requests, "DELETE", "/manifests/"),
        repos * images / 2
    );
    let figure = |stdout: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with("Storage"))
            .and_then(|l| l.split_once(": ").map(|(_, figure)| figure.to_string()))
    };
    assert_eq!(figure(&run.stdout), figure(&dry.stdout), "{}", run.stdout);
    assert!(figure(&run.stdout).is_some(), "{}", run.stdout);

    // On a registry never seen, bodies are read beside the deletions: before the first
    // DELETE, at most one per deletion under way (twice the concurrency in each of the two
    // repositories), not the 80 of every manifest.
    let fresh = Registry::start(docker_registry(repos, images)).await;
    let run = fresh.purge(&args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let all = fresh.emulator().requests();
    let requests = data_plane(&all);
    let first_delete = requests
        .iter()
        .position(|r| r.method == "DELETE")
        .expect("a DELETE");
    let before = count(&requests[..first_delete], "GET", "/v2/repo");
    assert!(
        before <= 2 * 16,
        "{before} body reads before the first DELETE"
    );
    assert_eq!(count(&requests, "GET", "/v2/repo"), repos * images);
    assert_eq!(figure(&run.stdout), figure(&dry.stdout), "{}", run.stdout);
}
