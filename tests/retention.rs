//! Retention by count (`--min-tags`, `--max-tags`, `--min/max-untagged-manifests`) and the
//! blast-radius guard (`--max-deletions`, the policy's `maxDeletions`) through the
//! `handler` binary: the command line and the Functions timer, against the ACR emulator.

use crate::support::host::Handler;
use crate::support::purge::{Registry, set, tagged};
use acr_emulator::{ManifestSeed, RepoSeed, Seed};

/// `app`: ten single-tag images, `v1` a day old and `v2`..`v10` 40 to 48 days old, so a
/// 30-day rule would take away 90% of it. `lib`: four images, one of them old (25%).
/// Together, a 30-day rule takes away 10 of the 14 tagged images (`tests/run_limit.rs`).
pub(crate) fn seed() -> Seed {
    let mut app = RepoSeed::new("app").manifest(tagged("i1", "v1", "1d"));
    for i in 2..=10 {
        app.push(tagged(
            &format!("i{i}"),
            &format!("v{i}"),
            &format!("{}d", 38 + i),
        ));
    }
    Seed::new().repo(app).repo(
        RepoSeed::new("lib")
            .manifest(tagged("l1", "l1", "1d"))
            .manifest(tagged("l2", "l2", "2d"))
            .manifest(tagged("l3", "l3", "3d"))
            .manifest(tagged("l4", "l4", "60d")),
    )
}

fn all_app_tags() -> std::collections::BTreeSet<String> {
    (1..=10).map(|i| format!("v{i}")).collect()
}

/// DELETE requests the registry received for `repo`.
fn deletes_in(registry: &Registry, repo: &str) -> usize {
    registry
        .mutations()
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.contains(&format!("/{repo}/")))
        .count()
}

const TOO_BROAD: &str = r#"{"rules":[{"filter":".*:.*","ago":"30d"}]}"#;

#[tokio::test]
async fn a_scheduled_run_refuses_a_plan_taking_away_most_of_a_repository() {
    let registry = Registry::start(seed()).await;
    let handler = Handler::start(&[
        ("PURGE_REGISTRY", registry.running.url.as_str()),
        ("PURGE_POLICY", TOO_BROAD),
    ])
    .await;
    let answer = handler.timer(false, false).await;
    // A failed invocation: the host records it, and the failed-run alert fires.
    assert_eq!(answer.status, 500, "{:#}", answer.json);
    let logs = answer.json["Logs"].to_string();
    assert!(
        logs.contains(
            "Refused to purge repository app: the plan takes away 9 of its 10 tagged images, over --max-deletions 50%"
        ),
        "{logs}"
    );
    assert!(logs.contains("refused by the deletion limit"), "{logs}");
    assert_eq!(registry.tags("app"), all_app_tags());
    assert_eq!(deletes_in(&registry, "app"), 0, "nothing sent for app");
    // The other repository is within the limit (1 of 4) and is purged.
    assert_eq!(registry.tags("lib"), set(&["l1", "l2", "l3"]));
    assert_eq!(deletes_in(&registry, "lib"), 1);
}

#[tokio::test]
async fn a_scheduled_run_with_the_limit_lifted_deletes() {
    let registry = Registry::start(seed()).await;
    let lifted =
        r#"{"rules":[{"filter":".*:.*","ago":"30d"}],"maxDeletions":null,"maxRunDeletions":null}"#;
    let handler = Handler::start(&[
        ("PURGE_REGISTRY", registry.running.url.as_str()),
        ("PURGE_POLICY", lifted),
    ])
    .await;
    let answer = handler.timer(false, false).await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    assert_eq!(answer.json["ReturnValue"]["summary"]["tagsDeleted"], 10);
    assert_eq!(registry.tags("app"), set(&["v1"]));
    assert_eq!(registry.tags("lib"), set(&["l1", "l2", "l3"]));
}

#[tokio::test]
async fn a_policy_limit_counts_images_and_a_bound_keeps_the_run_within_it() {
    // An absolute limit of 8 refuses a plan taking away 9 images; with minTags 3 the same
    // rule takes away 7, within a limit of 7.
    let registry = Registry::start(seed()).await;
    let counted = r#"{"rules":[{"filter":".*:.*","ago":"30d"}],"maxDeletions":8}"#;
    let handler = Handler::start(&[
        ("PURGE_REGISTRY", registry.running.url.as_str()),
        ("PURGE_POLICY", counted),
    ])
    .await;
    let answer = handler.timer(false, false).await;
    assert_eq!(answer.status, 500, "{:#}", answer.json);
    assert!(
        answer.json["Logs"]
            .to_string()
            .contains("takes away 9 of its 10 tagged images, over --max-deletions 8"),
        "{:#}",
        answer.json
    );
    assert_eq!(registry.tags("app"), all_app_tags());

    let registry = Registry::start(seed()).await;
    let bounded = r#"{"rules":[{"filter":".*:.*","ago":"30d","minTags":3}],"maxDeletions":7,"maxRunDeletions":null}"#;
    let handler = Handler::start(&[
        ("PURGE_REGISTRY", registry.running.url.as_str()),
        ("PURGE_POLICY", bounded),
    ])
    .await;
    let answer = handler.timer(false, false).await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    // v1 is young; minTags 3 keeps v2 and v3, the most recent old ones.
    assert_eq!(registry.tags("app"), set(&["v1", "v2", "v3"]));
    // lib: l1..l3 are young, so minTags 3 is met without l4, which goes.
    assert_eq!(registry.tags("lib"), set(&["l1", "l2", "l3"]));
}

#[tokio::test]
async fn the_command_line_has_no_limit_unless_given_and_a_dry_run_shows_the_refusal() {
    let registry = Registry::start(seed()).await;
    let args = ["--filter", "app:.*", "--ago", "30d", "--dry-run"];
    let limited = [&args[..], &["--max-deletions", "50%"]].concat();
    let run = registry.purge(&limited).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(
            "Refused to purge repository app: the plan takes away 9 of its 10 tagged images, over --max-deletions 50%"
        ),
        "{}",
        run.stdout
    );
    assert!(run.lines("Would delete: ").is_empty(), "{}", run.stdout);
    assert!(
        run.stdout.contains("Number of tags to be deleted: 0"),
        "{}",
        run.stdout
    );

    let lifted = [&args[..], &["--max-deletions", "none"]].concat();
    let run = registry.purge(&lifted).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.lines("Would delete: ").len(), 9, "{}", run.stdout);

    // No flag: acr purge's behaviour, no limit.
    let run = registry
        .purge(&["--filter", "app:.*", "--ago", "30d"])
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(registry.tags("app"), set(&["v1"]));
    assert!(registry.mutations().iter().all(|r| r.method == "DELETE"));
}

#[tokio::test]
async fn json_report_gives_the_guard_and_bound_reasons() {
    let registry = Registry::start(seed()).await;
    let run = registry
        .purge(&[
            "--filter",
            "app:.*",
            "--ago",
            "30d",
            "--max-tags",
            "4",
            "--min-tags",
            "2",
            "--dry-run",
            "--output",
            "json",
        ])
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    let tags = report["repositories"][0]["tags"].as_array().expect("tags");
    let reason = |name: &str| {
        let tag = tags.iter().find(|t| t["name"] == name).expect(name);
        format!(
            "{}:{}",
            tag["decision"].as_str().unwrap_or(""),
            tag["reason"].as_str().unwrap_or("")
        )
    };
    assert_eq!(reason("v1"), "keep:tooYoung");
    // v2 is old, and within --min-tags 2 (ranked second after v1).
    assert_eq!(reason("v2"), "keep:keptByMinTags");
    assert_eq!(reason("v3"), "delete:matched");
    assert_eq!(reason("v10"), "delete:matched");

    let run = registry
        .purge(&[
            "--filter",
            "app:.*",
            "--ago",
            "30d",
            "--max-deletions",
            "3",
            "--dry-run",
            "--output",
            "json",
        ])
        .await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    let tag = &report["repositories"][0]["tags"][1];
    assert_eq!(tag["reason"], "overDeletionLimit", "{tag:#}");
    assert_eq!(
        (
            tag["limit"].as_str(),
            tag["count"].as_u64(),
            tag["total"].as_u64()
        ),
        (Some("3"), Some(9), Some(10))
    );
    assert!(
        report["error"]
            .as_str()
            .unwrap_or_default()
            .contains("app: the plan takes away 9"),
        "{report:#}"
    );
}

#[tokio::test]
async fn max_tags_deletes_young_tags_beyond_the_bound_and_spares_locked_ones() {
    let mut seed = Seed::new();
    let mut ci = RepoSeed::new("ci");
    for i in 1..=6 {
        ci.push(tagged(
            &format!("b{i}"),
            &format!("build-{i}"),
            &format!("{i}h"),
        ));
    }
    ci.push(
        ManifestSeed::image("pinned")
            .age("7h")
            .tag(acr_emulator::TagSeed::new("build-7").age("7h").locked()),
    );
    seed = seed.repo(ci);
    let registry = Registry::start(seed).await;
    let run = registry
        .purge(&["--filter", "ci:^build-", "--ago", "30d", "--max-tags", "3"])
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        registry.tags("ci"),
        set(&["build-1", "build-2", "build-3", "build-7"])
    );

    for bad in [
        vec!["--max-tags", "0"],
        vec!["--min-tags", "4", "--max-tags", "3"],
        vec!["--max-deletions", "150%"],
        vec!["--max-untagged-manifests", "2"],
    ] {
        let args = [&["--filter", "ci:.*", "--ago", "1d"][..], &bad[..]].concat();
        let run = registry.purge(&args).await;
        assert_eq!(run.code, 2, "{bad:?}: {}\n{}", run.stdout, run.stderr);
    }
    assert_eq!(registry.tags("ci").len(), 4, "bad input changes nothing");
}
