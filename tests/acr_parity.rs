//! The acceptance cases of acr purge (shared/research/acr-cli.md §5), run with the `handler`
//! binary against the ACR emulator over HTTP. Each asserts what is deleted and what stays.

use crate::support::purge::{Registry, set, tagged};
use acr_emulator::{Fault, ManifestSeed, RepoSeed, Seed, TagSeed};

fn case1_repo() -> RepoSeed {
    RepoSeed::new("r")
        .manifest(tagged("a", "v1-a", "15m"))
        .manifest(tagged("b", "v1-b", "1d"))
        .manifest(tagged("c", "v1-c", "2d"))
        .manifest(tagged("v2", "v2", "3d"))
}

async fn case1() -> Registry {
    Registry::start(Seed::new().repo(case1_repo())).await
}

#[tokio::test]
async fn case01_lookahead_and_lookbehind_filters() {
    for filter in ["r:v1(?!-a)", "r:v1-*[abc]+(?<!-[a])"] {
        let registry = case1().await;
        let run = registry.purge(&["--filter", filter, "--ago", "0d"]).await;
        assert_eq!(run.code, 0, "{filter}: {}", run.stderr);
        let p = registry.prefix("r");
        assert_eq!(
            run.lines("Deleted "),
            set(&[&format!("{p}:v1-b"), &format!("{p}:v1-c")])
        );
        assert_eq!(registry.tags("r"), set(&["v1-a", "v2"]), "{filter}");
        assert!(run.stdout.contains("Number of deleted tags: 2"));
    }
}

#[tokio::test]
async fn case02_tag_regex_is_an_unanchored_search() {
    let registry = Registry::start(Seed::new().repo(case1_repo().manifest(tagged(
        "local",
        "v1-c-local.test",
        "3d",
    ))))
    .await;
    let run = registry
        .purge(&["--filter", "r:.*-?local[.].+", "--ago", "0d"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(registry.tags("r"), set(&["v1-a", "v1-b", "v1-c", "v2"]));
}

#[tokio::test]
async fn case03_keep_counts_in_timedesc_order() {
    let repo = RepoSeed::new("r")
        .manifest(tagged("1", "v1", "15m"))
        .manifest(tagged("2", "v2", "16m"))
        .manifest(tagged("3", "v3", "17m"))
        .manifest(tagged("4", "v4", "18m"));
    let registry = Registry::start(Seed::new().repo(repo)).await;
    let run = registry
        .purge(&["--filter", "r:.*", "--ago", "0d", "--keep", "1"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(registry.tags("r"), set(&["v1"]));
}

#[tokio::test]
async fn case04_keep_counts_only_eligible_tags() {
    let registry = case1().await;
    registry
        .purge(&["--filter", "r:v1-.*", "--ago", "0d", "--keep", "1"])
        .await;
    assert_eq!(registry.tags("r"), set(&["v1-a", "v2"]));

    let registry = case1().await;
    let run = registry
        .purge(&["--filter", "r:v1-.*", "--ago", "30m", "--keep", "1"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(registry.tags("r"), set(&["v1-a", "v1-b", "v2"]));
}

#[tokio::test]
async fn case05_nothing_old_enough_or_matching_and_bad_regex() {
    let seed = Seed::new().repo(RepoSeed::new("r").manifest(tagged("t", "latest", "15m")));
    let registry = Registry::start(seed.clone()).await;
    let run = registry.purge(&["--filter", "r:.*", "--ago", "1d"]).await;
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("Number of deleted tags: 0"));
    let run = registry
        .purge(&["--filter", "r:^hello.*", "--ago", "0d"])
        .await;
    assert!(run.stdout.contains("Number of deleted tags: 0"));
    assert_eq!(registry.tags("r"), set(&["latest"]));

    // Difference: a bad regex is a usage error (exit 2) found before any request.
    let registry = Registry::start(seed).await;
    let run = registry.purge(&["--filter", "r:[", "--ago", "0d"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("invalid filter \"r:[\""),
        "{}",
        run.stderr
    );
    assert!(registry.emulator().requests().is_empty());
}

#[tokio::test]
async fn case06_locked_tags_and_include_locked() {
    let locked = |delete: bool, write: bool| {
        Seed::new().repo(
            RepoSeed::new("r").manifest(
                ManifestSeed::image("m").age("2d").tag(
                    TagSeed::new("v1")
                        .age("2d")
                        .delete_enabled(delete)
                        .write_enabled(write),
                ),
            ),
        )
    };
    for (delete, write) in [(false, true), (true, false)] {
        let registry = Registry::start(locked(delete, write)).await;
        let run = registry.purge(&["--filter", "r:.*", "--ago", "0d"]).await;
        assert_eq!(run.code, 0);
        assert!(run.stdout.contains("Number of deleted tags: 0"));
        assert_eq!(registry.tags("r"), set(&["v1"]));
        assert!(registry.mutations().is_empty());

        let run = registry
            .purge(&["--filter", "r:.*", "--ago", "0d", "--include-locked"])
            .await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(
            run.stdout.contains("Number of deleted tags: 1"),
            "{}",
            run.stdout
        );
        let methods: Vec<String> = registry.mutations().into_iter().map(|r| r.method).collect();
        assert_eq!(methods, ["PATCH", "DELETE"]);
        assert!(registry.tags("r").is_empty());
    }

    // A failed unlock still attempts the delete (the registry refuses: skipped, not counted).
    let registry = Registry::start(locked(false, true)).await;
    registry
        .emulator()
        .inject(Fault::status(500).method("PATCH"));
    let run = registry
        .purge(&["--filter", "r:.*", "--ago", "0d", "--include-locked"])
        .await;
    assert!(
        run.stdout.contains("Warning: Failed to unlock"),
        "{}",
        run.stdout
    );
    assert!(registry.mutations().iter().any(|r| r.method == "DELETE"));
    assert!(
        run.stdout
            .contains("operation not allowed, HTTP status: 405"),
        "{}",
        run.stdout
    );

    // Dry run with --include-locked: counted, nothing sent.
    let registry = Registry::start(locked(false, true)).await;
    let run = registry
        .purge(&[
            "--filter",
            "r:.*",
            "--ago",
            "0d",
            "--include-locked",
            "--dry-run",
        ])
        .await;
    assert!(
        run.stdout.contains("Number of tags to be deleted: 1"),
        "{}",
        run.stdout
    );
    assert!(registry.mutations().is_empty());
}

#[tokio::test]
async fn case07_unparseable_tag_time_is_kept_not_fatal() {
    let seed = Seed::new().repo(
        RepoSeed::new("r")
            .manifest(
                ManifestSeed::image("bad")
                    .age("3d")
                    .tag(TagSeed::new("weird").updated(acr_emulator::TimeSpec::at("date"))),
            )
            .manifest(tagged("ok", "old", "3d")),
    );
    let registry = Registry::start(seed).await;
    let run = registry
        .purge(&["--filter", "r:.*", "--ago", "1d", "--output", "json"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(registry.tags("r"), set(&["weird"]));
    let report = run.json();
    let weird = &report["repositories"][0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "weird")
        .cloned()
        .unwrap();
    assert_eq!(weird["decision"], "keep");
    assert_eq!(weird["reason"], "timestampUnreadable");
    assert_eq!(weird["value"], "date");
}

#[tokio::test]
async fn case08_tag_paging_follows_link_and_a_failed_page_fails_the_run() {
    let mut repo = RepoSeed::new("r");
    for i in 0..150 {
        repo.push(tagged(
            &format!("m{i}"),
            &format!("t{i:03}"),
            &format!("{}m", 60 + i),
        ));
    }
    let seed = Seed::new().repo(repo);
    let registry = Registry::start(seed.clone()).await;
    let run = registry.purge(&["--filter", "r:.*", "--ago", "0d"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("Number of deleted tags: 150"));
    let listings: Vec<_> = registry
        .emulator()
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == "/acr/v1/r/_tags")
        .collect();
    assert_eq!(listings.len(), 2, "{listings:?}");
    assert!(listings[1].query.contains("last=t099"), "{:?}", listings[1]);

    let registry = Registry::start(seed).await;
    registry.emulator().inject(
        Fault::status(500)
            .path_prefix("/acr/v1/r/_tags")
            .query_contains("last="),
    );
    let run = registry.purge(&["--filter", "r:.*", "--ago", "0d"]).await;
    assert_eq!(run.code, 1);
    assert!(
        registry.mutations().is_empty(),
        "nothing is deleted when a listing fails"
    );
    assert_eq!(registry.tags("r").len(), 150);
}

#[tokio::test]
async fn case09_delete_answers_404_405_and_errors() {
    let seed = Seed::new().repo(
        RepoSeed::new("r")
            .manifest(tagged("a", "gone", "2d"))
            .manifest(tagged("b", "refused", "2d"))
            .manifest(tagged("c", "broken", "2d"))
            .manifest(tagged("d", "fine", "2d")),
    );
    let registry = Registry::start(seed).await;
    let e = registry.emulator();
    e.inject(
        Fault::status(404)
            .method("DELETE")
            .path_contains("_tags/gone"),
    );
    e.inject(
        Fault::status(405)
            .method("DELETE")
            .path_contains("_tags/refused"),
    );
    e.inject(
        Fault::status(500)
            .method("DELETE")
            .path_contains("_tags/broken"),
    );
    let run = registry.purge(&["--filter", "r:.*", "--ago", "0d"]).await;
    let p = registry.prefix("r");
    assert!(
        run.stdout
            .contains(&format!("Skipped {p}:gone, HTTP status: 404"))
    );
    assert!(run.stdout.contains(&format!(
        "Skipped {p}:refused, operation not allowed, HTTP status: 405"
    )));
    assert!(run.stdout.contains(&format!("Failed to delete {p}:broken")));
    assert!(run.stdout.contains(&format!("Deleted {p}:fine")));
    // 404 counts as deleted, 405 and the failure do not; the failure fails the run.
    assert!(
        run.stdout.contains("Number of deleted tags: 2"),
        "{}",
        run.stdout
    );
    assert_eq!(run.code, 1);
    // The 500 was retried before giving up.
    let attempts = e
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.ends_with("_tags/broken"))
        .count();
    assert_eq!(attempts, 4);
}

#[tokio::test]
async fn case10_unknown_repositories() {
    let registry =
        Registry::start(Seed::new().repo(RepoSeed::new("r").manifest(tagged("a", "v1", "2d"))))
            .await;
    let run = registry
        .purge(&["--filter", "nonexistent:.*", "--ago", "0d"])
        .await;
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("Number of deleted tags: 0"));

    registry
        .emulator()
        .inject(Fault::status(404).path_prefix("/acr/v1/r/_tags"));
    let run = registry.purge(&["--filter", "r:.*", "--ago", "0d"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("r repository not found"),
        "{}",
        run.stdout
    );
    assert_eq!(registry.tags("r"), set(&["v1"]));
}

#[tokio::test]
async fn case11_untagged_docker_manifests_across_pages() {
    let mut repo = RepoSeed::new("r").manifest(tagged("m0", "latest", "2d"));
    for i in 0..120 {
        repo.push(ManifestSeed::docker(&format!("u{i}")).age("2d"));
    }
    let registry = Registry::start(Seed::new().repo(repo)).await;
    // --no-storage: acr purge's requests exactly (the storage figures read every body).
    let run = registry
        .purge(&[
            "--filter",
            "r:^$",
            "--ago",
            "0d",
            "--untagged",
            "--no-storage",
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("Number of deleted manifests: 120"),
        "{}",
        run.stdout
    );
    assert_eq!(registry.emulator().snapshot().digests("r").len(), 1);
    assert!(registry.has("r", "m0"));
    // Docker v2 manifests cannot carry a subject: their bodies are never read. The one
    // OCI image could be a referrer of the 120: one read of its body settles that, instead
    // of 120 referrers calls.
    let requests = registry.emulator().requests();
    let bodies: Vec<&str> = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/v2/r/manifests/"))
        .map(|r| r.path.as_str())
        .collect();
    let m0 = registry.digest("r", "m0");
    assert_eq!(bodies, [format!("/v2/r/manifests/{m0}")], "{bodies:?}");
    assert!(!requests.iter().any(|r| r.path.contains("/referrers/")));
    // Each untagged manifest: one verifying read and one DELETE.
    assert_eq!(registry.mutations().len(), 120);
}

#[tokio::test]
async fn case12_children_of_a_tagged_index_stay() {
    for index in [ManifestSeed::docker_list("v3"), ManifestSeed::index("v3")] {
        let repo = RepoSeed::new("r")
            .manifest(ManifestSeed::docker("m1").age("2d"))
            .manifest(ManifestSeed::docker("m2").age("2d"))
            .manifest(
                index
                    .age("2d")
                    .child("m1")
                    .tag(TagSeed::new("v3").age("1h")),
            );
        let registry = Registry::start(Seed::new().repo(repo)).await;
        let run = registry
            .purge(&["--filter", "r:^$", "--ago", "0d", "--untagged"])
            .await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(registry.has("r", "m1"), "child of the tagged index");
        assert!(!registry.has("r", "m2"));
        assert!(registry.has("r", "v3"));
    }
}

#[tokio::test]
async fn case13_referrers_and_their_children_stay_with_their_subject() {
    let repo = RepoSeed::new("r")
        .manifest(tagged("app", "v1", "1h"))
        .manifest(
            ManifestSeed::artifact("sig", "application/vnd.dev.cosign.artifact.sig.v1+json")
                .age("2d")
                .subject("app"),
        )
        .manifest(ManifestSeed::image("att-child").age("2d"))
        .manifest(
            ManifestSeed::index("att")
                .age("2d")
                .subject("app")
                .child("att-child"),
        )
        .manifest(ManifestSeed::image("plain").age("2d"));
    let registry = Registry::start(Seed::new().repo(repo)).await;
    let run = registry
        .purge(&["--filter", "r:^$", "--ago", "0d", "--untagged"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    for alias in ["app", "sig", "att", "att-child"] {
        assert!(registry.has("r", alias), "{alias} must stay");
    }
    assert!(!registry.has("r", "plain"));
}

#[tokio::test]
async fn case14_locked_untagged_manifests() {
    let seed =
        Seed::new().repo(RepoSeed::new("r").manifest(ManifestSeed::image("m").age("2d").locked()));
    let registry = Registry::start(seed).await;
    registry.purge(&["--untagged-only"]).await;
    assert!(registry.has("r", "m"));
    assert!(registry.mutations().is_empty());
    let run = registry
        .purge(&["--untagged-only", "--include-locked"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!registry.has("r", "m"));
    let methods: Vec<String> = registry.mutations().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["PATCH", "DELETE"]);
}

#[tokio::test]
async fn case15_untagged_age_and_missing_times() {
    let repo = RepoSeed::new("r")
        .manifest(ManifestSeed::image("young").age("15m"))
        .manifest(ManifestSeed::image("old").age("48h"))
        .manifest(ManifestSeed::image("timeless").updated(acr_emulator::TimeSpec::Null))
        .manifest(tagged("tagged", "v1", "30d"));
    let registry = Registry::start(Seed::new().repo(repo)).await;
    let run = registry.purge(&["--untagged-only", "--ago", "24h"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!registry.has("r", "old"));
    for alias in ["young", "timeless", "tagged"] {
        assert!(registry.has("r", alias), "{alias}");
    }
    let run = registry.purge(&["--untagged-only", "--ago", "1h"]).await;
    assert_eq!(run.code, 0);
    assert!(registry.has("r", "young"));
}

fn five_untagged() -> RepoSeed {
    ["400d", "300d", "200d", "100d", "50d"]
        .iter()
        .enumerate()
        .fold(RepoSeed::new("r"), |repo, (i, age)| {
            repo.manifest(ManifestSeed::image(&format!("m{i}")).age(age))
        })
}

#[tokio::test]
async fn case16_untagged_only_with_keep_and_ago() {
    let registry = Registry::start(Seed::new().repo(five_untagged())).await;
    registry.purge(&["--untagged-only", "--keep", "2"]).await;
    let left: Vec<bool> = (0..5)
        .map(|i| registry.has("r", &format!("m{i}")))
        .collect();
    assert_eq!(left, [false, false, false, true, true]);

    let registry = Registry::start(Seed::new().repo(five_untagged())).await;
    registry.purge(&["--untagged-only", "--keep", "5"]).await;
    assert_eq!(registry.emulator().snapshot().digests("r").len(), 5);

    let registry = Registry::start(Seed::new().repo(five_untagged())).await;
    registry
        .purge(&["--untagged-only", "--ago", "150d", "--keep", "1"])
        .await;
    let left: Vec<bool> = (0..5)
        .map(|i| registry.has("r", &format!("m{i}")))
        .collect();
    assert_eq!(left, [false, false, true, true, true]);

    let registry = Registry::start(Seed::new().repo(five_untagged())).await;
    let run = registry.purge(&["--untagged-only", "--dry-run"]).await;
    assert!(
        run.stdout.contains("Number of manifests to be deleted: 5"),
        "{}",
        run.stdout
    );
    assert!(registry.mutations().is_empty());
}

#[tokio::test]
async fn case17_dry_run_lists_manifests_whose_tags_all_go() {
    let repo = RepoSeed::new("r")
        .manifest(
            ManifestSeed::image("one")
                .age("3d")
                .tag(TagSeed::new("old-1").age("3d")),
        )
        .manifest(
            ManifestSeed::image("two")
                .age("3d")
                .tag(TagSeed::new("old-2").age("3d"))
                .tag(TagSeed::new("keepme").age("3d")),
        );
    let registry = Registry::start(Seed::new().repo(repo)).await;
    let run = registry
        .purge(&[
            "--filter",
            "r:^old",
            "--ago",
            "1d",
            "--untagged",
            "--dry-run",
        ])
        .await;
    let p = registry.prefix("r");
    let would = run.lines("Would delete: ");
    let one = format!("r@{}", registry.digest("r", "one"));
    assert!(would.contains(&format!("{p}:old-1")));
    assert!(would.contains(&format!("{p}:old-2")));
    assert!(would.iter().any(|l| l.ends_with(&one)), "{would:?}");
    assert!(
        !would
            .iter()
            .any(|l| l.ends_with(&registry.digest("r", "two")))
    );
    assert!(registry.mutations().is_empty());
}

#[tokio::test]
async fn case18_filters_select_repositories() {
    let seed = ["bar", "foo", "baz", "foo/bar"]
        .iter()
        .fold(Seed::new(), |seed, name| {
            seed.repo(RepoSeed::new(name).manifest(tagged("m", "x", "2d")))
        });
    let deleted = |run: &crate::support::purge::Run| {
        run.stdout
            .lines()
            .find_map(|l| l.strip_prefix("Number of tags to be deleted: "))
            .map(|n| n.parse::<u32>().unwrap())
    };
    let registry = Registry::start(seed).await;
    for (filter, expected) in [("ba:.*", 0), (".+:x", 4), ("foo/bar(?:.*)?:(?:.*)", 1)] {
        let run = registry
            .purge(&["--filter", filter, "--ago", "0d", "--dry-run"])
            .await;
        assert_eq!(deleted(&run), Some(expected), "{filter}: {}", run.stdout);
    }
    for bad in ["foo:bar:zzz", ":.*", "repo.*:"] {
        let run = registry.purge(&["--filter", bad, "--ago", "0d"]).await;
        assert_eq!(run.code, 2, "{bad}");
    }

    // Two filters on one repository are OR-ed.
    let registry = Registry::start(Seed::new().repo(case1_repo())).await;
    registry
        .purge(&["--filter", "r:^v2$", "--filter", "r:-c$", "--ago", "0d"])
        .await;
    assert_eq!(registry.tags("r"), set(&["v1-a", "v1-b"]));
}

#[tokio::test]
async fn case19_keep_applies_to_tags_and_again_to_manifests() {
    let mut repo = RepoSeed::new("r");
    for i in 0..50 {
        repo.push(tagged(
            &format!("m{i}"),
            &format!("t{i}"),
            &format!("{}h", 24 + i),
        ));
    }
    let registry = Registry::start(Seed::new().repo(repo)).await;
    let run = registry
        .purge(&[
            "--filter",
            "r:.*",
            "--ago",
            "1h",
            "--untagged",
            "--keep",
            "10",
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(registry.tags("r").len(), 10);
    assert_eq!(registry.emulator().snapshot().digests("r").len(), 20);
}

#[tokio::test]
async fn case20_ago_is_parsed_strictly_before_any_request() {
    let registry = Registry::start(Seed::new().repo(case1_repo())).await;
    for ago in ["3h2d", "d5h", "15", "15p", "-1d"] {
        let ago_flag = format!("--ago={ago}");
        let run = registry.purge(&["--filter", "r:.*", &ago_flag]).await;
        assert_eq!(run.code, 2, "{ago}");
        assert!(
            run.stderr.contains("invalid --ago value"),
            "{ago}: {}",
            run.stderr
        );
    }
    let run = registry
        .purge(&["--filter", "r:.*", "--ago", "999999d", "--dry-run"])
        .await;
    assert_eq!(run.code, 0);
    assert!(run.stderr.contains("exceeds maximum duration of 150 years"));
    assert!(run.stdout.contains("Number of tags to be deleted: 0"));
    assert_eq!(
        registry
            .emulator()
            .requests()
            .iter()
            .filter(|r| r.method != "GET")
            .count(),
        0
    );
}
