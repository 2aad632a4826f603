//! Every invocation makes progress: a durable run cut into invocations shorter than listing
//! its first repositories (the Standard card, the default, paces every request) still
//! finishes, and ends exactly where one uninterrupted run ends; the same when invocations
//! are killed at random moments.

use crate::support::process::HandlerCommand;
use crate::support::purge::Registry;
use acr_emulator::{ManifestSeed, RepoSeed, Seed, TagSeed};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const REPOS: usize = 12;
const IMAGES: usize = 40;
/// The purge of the scale benchmark, with the client's default rate card (Standard).
const ARGS: &[&str] = &["--filter", ".*:.*", "--ago", "1d", "--untagged"];
/// The most invocations a run of 240 deletions may take at 2 s each.
const MAX_INVOCATIONS: usize = 40;

/// `REPOS` repositories of `IMAGES` single-tag Docker images, every other one 3 days old
/// (stale) and the rest an hour old.
fn seed() -> Seed {
    (0..REPOS).fold(Seed::new(), |seed, r| {
        let mut repo = RepoSeed::new(&format!("repo{r:02}"));
        for i in 0..IMAGES {
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

/// Tags and manifest aliases per repository.
fn state(registry: &Registry) -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    (0..REPOS)
        .map(|r| format!("repo{r:02}"))
        .map(|repo| {
            let aliases = (0..IMAGES)
                .map(|i| format!("i{i}"))
                .filter(|alias| registry.has(&repo, alias))
                .collect();
            (repo.clone(), (registry.tags(&repo), aliases))
        })
        .collect()
}

/// One uninterrupted run's end state: the fresh half of every repository.
async fn reference() -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let registry = Registry::start(seed()).await;
    let run = registry.purge(ARGS).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let end = state(&registry);
    for (tags, aliases) in end.values() {
        assert_eq!((tags.len(), aliases.len()), (IMAGES / 2, IMAGES / 2));
    }
    end
}

/// The audit log's deletions (a tag or a manifest, deleted or already gone), each with how
/// many lines record it. A line torn by a kill is not one.
fn audited(state_dir: &std::path::Path) -> BTreeMap<(String, String), usize> {
    let mut counted = BTreeMap::new();
    let runs = std::fs::read_dir(state_dir.join("runs"));
    for run in runs.into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(run.path().join("audit.jsonl")).unwrap_or_default();
        for line in text.lines() {
            let Ok(line) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if ["deleted", "alreadyGone"].contains(&line["outcome"].as_str().unwrap_or_default()) {
                let item = match line["tag"].as_str() {
                    Some(tag) => format!("tag:{tag}"),
                    None => format!("manifest:{}", line["digest"].as_str().unwrap_or_default()),
                };
                let repository = line["repository"].as_str().unwrap_or_default().to_string();
                *counted.entry((repository, item)).or_insert(0) += 1;
            }
        }
    }
    counted
}

#[tokio::test]
async fn invocations_shorter_than_listing_still_finish_the_run() {
    let expected = reference().await;
    let registry = Registry::start(seed()).await;
    let mut args = ARGS.to_vec();
    args.extend(["--deadline", "2s"]);
    let mut invocations = 0;
    loop {
        invocations += 1;
        assert!(
            invocations <= MAX_INVOCATIONS,
            "not finished after {MAX_INVOCATIONS} invocations"
        );
        let run = registry.purge(&args).await;
        if run.code == 0 {
            break;
        }
        assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    }
    println!("finished in {invocations} invocations of 2 s");
    assert_eq!(state(&registry), expected);
    let audited = audited(registry.state.path());
    assert!(audited.values().all(|&n| n == 1), "{audited:?}");
    assert_eq!(
        audited.len(),
        REPOS * IMAGES,
        "a tag and a manifest per stale image"
    );
}

#[tokio::test]
async fn invocations_killed_at_random_moments_still_finish_the_run() {
    let expected = reference().await;
    let registry = Registry::start(seed()).await;
    let state_dir = registry.state.path().to_string_lossy().into_owned();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x9e0_9e55);
    let (mut invocations, mut kills) = (0, 0);
    loop {
        invocations += 1;
        assert!(
            invocations <= 2 * MAX_INVOCATIONS,
            "not finished after {invocations} invocations ({kills} killed)"
        );
        let mut child = HandlerCommand::new()
            .args(["purge", "-r", registry.running.url.as_str()])
            .args(ARGS)
            .args(["--deadline", "2s"])
            .env("PURGE_STATE_DIR", &state_dir)
            .env_remove(&["PURGE_STATE_URL", "IDENTITY_ENDPOINT"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        // Every other invocation is killed somewhere in its two seconds.
        let kill_after =
            (invocations % 2 == 0).then(|| Duration::from_millis(rng.random_range(300..1800)));
        let status = match kill_after {
            None => child.wait().await,
            Some(after) => match child.wait_timeout(after).await {
                Some(status) => status,
                None => {
                    child.kill().await;
                    kills += 1;
                    continue;
                }
            },
        };
        match status.code() {
            Some(0) => break,
            Some(3) => {}
            other => panic!("invocation {invocations} exited {other:?}"),
        }
    }
    println!("finished in {invocations} invocations, {kills} killed");
    assert!(kills >= 5, "only {kills} invocations were killed");
    assert_eq!(state(&registry), expected);
    let audited = audited(registry.state.path());
    assert!(audited.values().all(|&n| n == 1), "{audited:?}");
    assert_eq!(audited.len(), REPOS * IMAGES);
}
