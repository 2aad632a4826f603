//! `handler purge --dry-run --plan-out` then `handler apply`: the registry changes between
//! the two, and only what is still exactly as planned is deleted; edited, foreign and old
//! plans are refused before any request; and the storage a purge frees equals a reference
//! computed from the emulator's state before and after.

use crate::support::purge::{Registry, set, tagged};
use acr_emulator::{ManifestSeed, RepoSeed, Seed, Snapshot, TagSeed};
use std::collections::{BTreeMap, BTreeSet};

const POLICY: &[&str] = &["--filter", "r:.*", "--ago", "30d", "--untagged"];

fn seed() -> Seed {
    let repo = RepoSeed::new("r")
        .manifest(tagged("a", "a", "40d"))
        .manifest(tagged("b", "b", "40d"))
        .manifest(tagged("c", "c", "40d"))
        .manifest(tagged("d", "d", "40d"))
        .manifest(ManifestSeed::image("u").age("40d"))
        .manifest(tagged("new", "new", "1h"));
    Seed::new().repo(repo)
}

/// Writes the dry run's plan to `dir/plan.json`.
async fn plan(registry: &Registry, dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("plan.json");
    let mut args = POLICY.to_vec();
    let out = path.to_string_lossy().into_owned();
    args.extend(["--dry-run", "--plan-out", out.as_str()]);
    let run = registry.purge(&args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("Plan sha256:"), "{}", run.stderr);
    path
}

fn remaining(registry: &Registry) -> BTreeSet<String> {
    let snapshot = registry.emulator().snapshot();
    ["a", "b", "c", "d", "u", "new"]
        .into_iter()
        .filter(|alias| snapshot.has_manifest("r", &registry.digest("r", alias)))
        .map(str::to_string)
        .collect()
}

async fn lock_manifest(registry: &Registry, digest: &str) {
    let url = format!("{}/acr/v1/r/_manifests/{digest}", registry.running.url);
    let answer = reqwest::Client::new()
        .patch(url)
        .json(&serde_json::json!({"deleteEnabled": false}))
        .send()
        .await
        .expect("patch");
    assert!(answer.status().is_success(), "{}", answer.status());
}

#[tokio::test]
async fn an_applied_plan_deletes_only_what_is_still_exactly_as_planned() {
    let registry = Registry::start(seed()).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = plan(&registry, dir.path()).await;
    assert!(
        registry.mutations().is_empty(),
        "a dry run sends no mutation"
    );
    let emulator = registry.emulator();
    // Since the plan was made: a tag pushed onto a planned image, a tag moved to another
    // image, a tag pushed again (newer), a new lock.
    emulator
        .push_tag("r", "hotfix", &registry.digest("r", "a"))
        .expect("push");
    emulator
        .push_tag("r", "c", &registry.digest("r", "new"))
        .expect("move");
    emulator
        .push_tag("r", "d", &registry.digest("r", "d"))
        .expect("re-push");
    lock_manifest(&registry, &registry.digest("r", "u")).await;
    emulator.clear_requests();

    let run = registry.apply(&path, &["--output", "json"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // a: its tag is deleted as planned, its image stays (tagged hotfix since).
    // b: deleted whole, as planned. c: its tag moved (stays), its image is untagged and
    // stale as planned (deleted). d: pushed again (stays). u: locked since (stays).
    assert_eq!(remaining(&registry), set(&["a", "d", "u", "new"]));
    assert_eq!(registry.tags("r"), set(&["c", "d", "hotfix", "new"]));
    assert_eq!(
        registry.emulator().snapshot().repositories["r"].tags["c"].digest,
        registry.digest("r", "new"),
        "the moved tag still points where it was moved"
    );
    let report = run.json();
    let drift = report["summary"]["protected"]["drift"]
        .as_u64()
        .unwrap_or(0);
    assert!(drift >= 4, "{}", report["summary"]);
    assert!(
        report["planDigest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:"))
    );
    // Nothing was listed but the planned repository, and no catalog was read.
    assert_eq!(registry.count("/acr/v1/_catalog"), 0);
}

#[tokio::test]
async fn applying_an_unchanged_plan_deletes_what_the_dry_run_showed() {
    let registry = Registry::start(seed()).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = plan(&registry, dir.path()).await;
    let text = std::fs::read_to_string(&path).expect("plan");
    let saved: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(saved["format"], "acr-purge/plan/v1");
    assert_eq!(saved["registry"], registry.running.host());
    let run = registry.apply(&path, &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(remaining(&registry), set(&["new"]));
    assert!(
        run.stdout.contains("Number of deleted tags: 4"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("Number of deleted manifests: 5"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn edited_foreign_and_old_plans_are_refused_before_any_request() {
    let registry = Registry::start(seed()).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = plan(&registry, dir.path()).await;
    let text = std::fs::read_to_string(&path).expect("plan");
    registry.emulator().clear_requests();

    // By hand: keep `new`'s tag out of the plan's keeps and into its deletions.
    let edited_path = dir.path().join("edited.json");
    let edited = text.replacen("\"decision\": \"keep\"", "\"decision\": \"delete\"", 1);
    assert_ne!(edited, text);
    std::fs::write(&edited_path, edited).expect("write");
    let run = registry.apply(&edited_path, &[]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("changed after it was made") || run.stderr.contains("not a saved plan"),
        "{}",
        run.stderr
    );

    let other = Registry::start(seed()).await;
    let run = other.apply(&path, &[]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("is for registry"), "{}", run.stderr);
    assert!(other.emulator().requests().is_empty());

    let run = registry.apply(&path, &["--max-age", "0s"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("raise --max-age"), "{}", run.stderr);

    assert!(
        registry.emulator().requests().is_empty(),
        "nothing was contacted"
    );
    assert_eq!(remaining(&registry).len(), 6);
}

#[tokio::test]
async fn an_incomplete_dry_run_writes_no_plan() {
    let registry = Registry::start(seed()).await;
    registry
        .emulator()
        .inject(acr_emulator::Fault::status(500).path_contains("/_tags"));
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("plan.json");
    let out = path.to_string_lossy().into_owned();
    let mut args = POLICY.to_vec();
    args.extend(["--dry-run", "--plan-out", out.as_str()]);
    let run = registry.purge(&args).await;
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("no plan was written"), "{}", run.stderr);
    assert!(!path.exists());
}

/// Per repository, the blobs its manifests reference: digest → size.
fn blobs(snapshot: &Snapshot) -> BTreeMap<String, BTreeMap<String, u64>> {
    snapshot
        .repositories
        .iter()
        .map(|(name, repo)| {
            let blobs = repo
                .manifests
                .values()
                .flat_map(|m| m.blobs.clone())
                .collect();
            (name.clone(), blobs)
        })
        .collect()
}

/// Bytes freed: blobs referenced before and not after, per repository (shared blobs of
/// other repositories counted as freed) and registry-wide (exact).
fn reference(before: &Snapshot, after: &Snapshot) -> (u64, u64) {
    let (before, after) = (blobs(before), blobs(after));
    let empty = BTreeMap::new();
    let per_repository = before
        .iter()
        .map(|(repo, blobs)| {
            let left = after.get(repo).unwrap_or(&empty);
            blobs
                .iter()
                .filter(|(d, _)| !left.contains_key(*d))
                .map(|(_, s)| s)
                .sum::<u64>()
        })
        .sum();
    let all_before: BTreeMap<&String, u64> =
        before.values().flatten().map(|(d, s)| (d, *s)).collect();
    let all_after: BTreeSet<&String> = after.values().flat_map(|b| b.keys()).collect();
    let exact = all_before
        .iter()
        .filter(|(d, _)| !all_after.contains(*d))
        .map(|(_, s)| s)
        .sum();
    (per_repository, exact)
}

/// Images on shared base layers, a multi-arch index, a signature referrer, and another
/// repository sharing layers with the purged one.
fn layered() -> Seed {
    let app = RepoSeed::new("app")
        .manifest(
            ManifestSeed::image("v1")
                .age("40d")
                .tag(TagSeed::new("v1").age("40d"))
                .layers(&[("base", 1_000_000), ("app-v1", 10_000), ("shared", 7_000)]),
        )
        .manifest(
            ManifestSeed::image("v2")
                .age("40d")
                .tag(TagSeed::new("v2").age("40d"))
                .layers(&[("base", 1_000_000), ("app-v2", 20_000)]),
        )
        .manifest(
            ManifestSeed::artifact("v2-sig", "application/vnd.dev.cosign.artifact.sig.v1+json")
                .age("40d")
                .subject("v2")
                .layers(&[("sig-v2", 500)]),
        )
        .manifest(
            ManifestSeed::image("v3")
                .age("1h")
                .tag(TagSeed::new("v3").age("1h"))
                .layers(&[("base", 1_000_000), ("app-v3", 30_000)]),
        )
        .manifest(
            ManifestSeed::image("amd64")
                .age("40d")
                .layers(&[("base", 1_000_000), ("amd64", 40_000)]),
        )
        .manifest(
            ManifestSeed::image("arm64")
                .age("40d")
                .layers(&[("base-arm", 900_000), ("arm64", 50_000)]),
        )
        .manifest(
            ManifestSeed::index("multi")
                .age("40d")
                .tag(TagSeed::new("multi").age("40d"))
                .child("amd64")
                .child("arm64"),
        );
    let other = RepoSeed::new("other").manifest(
        ManifestSeed::image("o1")
            .age("1h")
            .tag(TagSeed::new("o1").age("1h"))
            .layers(&[("base-arm", 900_000), ("shared", 7_000)]),
    );
    Seed::new().repo(app).repo(other)
}

const LAYERED_POLICY: &[&str] = &["--filter", "app:.*", "--ago", "30d", "--untagged"];

async fn storage_of(registry: &Registry, extra: &[&str]) -> (serde_json::Value, u64) {
    let mut args = LAYERED_POLICY.to_vec();
    args.extend_from_slice(extra);
    args.extend(["--output", "json"]);
    let run = registry.purge(&args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    let storage = report["summary"]["storage"].clone();
    let freed = storage["freedBytes"].as_u64().expect("freedBytes");
    (storage, freed)
}

#[tokio::test]
async fn storage_freed_equals_the_reference_with_shared_layers_indexes_and_referrers() {
    let registry = Registry::start(layered()).await;
    let before = registry.emulator().snapshot();
    let (planned, would_free) = storage_of(&registry, &["--dry-run"]).await;
    assert_eq!(planned["exact"], false);
    let (done, freed) = storage_of(&registry, &[]).await;
    let after = registry.emulator().snapshot();
    let (per_repository, exact) = reference(&before, &after);
    assert_eq!(freed, per_repository, "{done}");
    assert_eq!(would_free, freed, "the dry run says what the run frees");
    // The base layer stays (v3 uses it); base-arm and `shared` stay for `other`.
    assert!(exact < per_repository, "{exact} < {per_repository}");
    let at_most = done["atMostBytes"].as_u64().expect("atMostBytes");
    assert!(at_most >= freed, "{at_most} >= {freed}");

    let exact_registry = Registry::start(layered()).await;
    let before = exact_registry.emulator().snapshot();
    let (planned, would_free) =
        storage_of(&exact_registry, &["--dry-run", "--exact-storage"]).await;
    assert_eq!(planned["exact"], true);
    let (_, freed) = storage_of(&exact_registry, &["--exact-storage"]).await;
    let (_, exact) = reference(&before, &exact_registry.emulator().snapshot());
    assert_eq!(freed, exact);
    assert_eq!(would_free, exact);
}

/// Docker images (no body read to plan them) on two shared bases: the stale ones share a
/// base with images that stay, and one has a layer of its own.
fn docker_layered() -> Seed {
    let image = |alias: &str, age: &str, layers: &[(&str, u64)]| {
        ManifestSeed::docker(alias)
            .age(age)
            .tag(TagSeed::new(alias).age(age))
            .layers(layers)
    };
    let app = RepoSeed::new("app")
        .manifest(image(
            "v1",
            "90d",
            &[("base-a", 1_000_000), ("v1-own", 3_000)],
        ))
        .manifest(image(
            "v2",
            "60d",
            &[("base-a", 1_000_000), ("base-b", 500)],
        ))
        .manifest(image("v3", "1d", &[("base-a", 1_000_000), ("v3-own", 40)]))
        .manifest(image("v4", "1d", &[("base-b", 500), ("v4-own", 7)]));
    Seed::new().repo(app)
}

#[tokio::test]
async fn what_stays_is_counted_by_what_it_shares_on_a_first_and_a_second_run() {
    // The first run reads what stays after its deletions; the second run (after a dry run
    // remembered every list) reads nothing and counts what stays from the remembered lists.
    for dry_run_first in [false, true] {
        let registry = Registry::start(docker_layered()).await;
        let before = registry.emulator().snapshot();
        let would_free = match dry_run_first {
            true => Some(storage_of(&registry, &["--dry-run"]).await.1),
            false => None,
        };
        let (done, freed) = storage_of(&registry, &[]).await;
        let (per_repository, _) = reference(&before, &registry.emulator().snapshot());
        // v1 and v2 deleted: v1's own layer and their configs freed, the bases still in use.
        assert!(
            (3_000..10_000).contains(&per_repository),
            "{per_repository}"
        );
        assert_eq!(
            freed, per_repository,
            "dry run first: {dry_run_first}: {done}"
        );
        if let Some(would_free) = would_free {
            assert_eq!(would_free, freed, "the dry run says what the run frees");
        }
    }
}

#[tokio::test]
async fn the_text_summary_says_what_is_freed() {
    let registry = Registry::start(layered()).await;
    let mut args = LAYERED_POLICY.to_vec();
    args.push("--dry-run");
    let run = registry.purge(&args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("Storage to be freed: "))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(line.contains(" of at most "), "{line}");
    assert!(line.contains("--exact-storage"), "{line}");
}
