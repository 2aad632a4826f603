//! Where acr-purge deliberately differs from acr purge to stay safe (README "Safety"), and
//! what it does with bad input, throttling, failures and changes during a run.

mod support;

use acr_purge::emulator::{Fault, ManifestSeed, RepoSeed, Seed, TagSeed, TimeSpec};
use support::purge::{Registry, handler, set, tagged};

#[tokio::test]
async fn referrers_stay_while_their_subject_stays_and_go_with_it() {
    let repo = RepoSeed::new("r")
        .manifest(tagged("kept", "v1", "1h"))
        .manifest(
            ManifestSeed::artifact("kept-sbom", "application/spdx+json")
                .age("90d")
                .subject("kept"),
        )
        .manifest(ManifestSeed::image("gone").age("90d"))
        .manifest(
            ManifestSeed::artifact("gone-sbom", "application/spdx+json")
                .age("1h")
                .subject("gone"),
        );
    let registry = Registry::start(Seed::new().repo(repo)).await;
    let run = registry
        .purge(&["--untagged-only", "--output", "json"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(registry.has("r", "kept") && registry.has("r", "kept-sbom"));
    assert!(!registry.has("r", "gone") && !registry.has("r", "gone-sbom"));
    // Only the subject is deleted by us; the registry removes its referrer with it.
    let deletes: Vec<String> = registry
        .mutations()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path)
        .collect();
    assert_eq!(
        deletes,
        [format!("/v2/r/manifests/{}", registry.digest("r", "gone"))]
    );
    let report = run.json();
    let manifests = report["repositories"][0]["manifests"].as_array().unwrap();
    let sbom = manifests
        .iter()
        .find(|m| m["digest"] == registry.digest("r", "gone-sbom"))
        .unwrap();
    assert_eq!(sbom["decision"], "cascade");
    let kept = manifests
        .iter()
        .find(|m| m["digest"] == registry.digest("r", "kept-sbom"))
        .unwrap();
    assert_eq!(kept["reason"], "referrer");
}

#[tokio::test]
async fn a_locked_index_protects_its_children() {
    let repo = RepoSeed::new("r")
        .manifest(ManifestSeed::image("amd64").age("90d"))
        .manifest(ManifestSeed::image("arm64").age("90d"))
        .manifest(
            ManifestSeed::index("multi")
                .age("90d")
                .child("amd64")
                .child("arm64")
                .locked()
                .tag(TagSeed::new("v1").age("90d")),
        )
        .manifest(ManifestSeed::image("loose").age("90d"));
    let registry = Registry::start(Seed::new().repo(repo)).await;
    let run = registry
        .purge(&["--filter", "r:.*", "--ago", "1d", "--untagged"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        registry.tags("r").is_empty(),
        "the tag itself is not locked"
    );
    for alias in ["multi", "amd64", "arm64"] {
        assert!(registry.has("r", alias), "{alias}");
    }
    assert!(!registry.has("r", "loose"));
}

#[tokio::test]
async fn an_index_kept_by_keep_protects_its_children() {
    let repo = RepoSeed::new("r")
        .manifest(ManifestSeed::image("child").age("60d"))
        .manifest(ManifestSeed::index("index").age("30d").child("child"))
        .manifest(ManifestSeed::image("older").age("90d"));
    let registry = Registry::start(Seed::new().repo(repo)).await;
    registry.purge(&["--untagged-only", "--keep", "1"]).await;
    assert!(registry.has("r", "index") && registry.has("r", "child"));
    assert!(!registry.has("r", "older"));
}

#[tokio::test]
async fn missing_or_unreadable_times_are_never_deleted() {
    let repo = RepoSeed::new("r")
        .manifest(
            ManifestSeed::image("a")
                .age("90d")
                .tag(TagSeed::new("null-time").updated(TimeSpec::Null)),
        )
        .manifest(
            ManifestSeed::image("b")
                .age("90d")
                .tag(TagSeed::new("bad-time").updated(TimeSpec::at("yesterday"))),
        )
        .manifest(ManifestSeed::image("c").updated(TimeSpec::at("2024-13-45T99:00:00Z")))
        .manifest(ManifestSeed::image("d").updated(TimeSpec::Null))
        .manifest(tagged("e", "fine", "90d"));
    let registry = Registry::start(Seed::new().repo(repo)).await;
    let run = registry
        .purge(&[
            "--filter",
            "r:.*",
            "--ago",
            "1d",
            "--untagged",
            "--output",
            "json",
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(registry.tags("r"), set(&["bad-time", "null-time"]));
    for alias in ["a", "b", "c", "d"] {
        assert!(registry.has("r", alias), "{alias}");
    }
    assert!(!registry.has("r", "e"));
    let report = run.json();
    let reasons: Vec<String> = report["repositories"][0]["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["decision"] == "keep")
        .map(|m| m["reason"].as_str().unwrap().to_string())
        .collect();
    assert!(
        reasons.contains(&"timestampUnreadable".to_string()),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"timestampMissing".to_string()),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn throttling_slows_the_run_but_never_aborts_it() {
    let mut repo = RepoSeed::new("r");
    for i in 0..6 {
        repo.push(tagged(&format!("m{i}"), &format!("t{i}"), "2d"));
    }
    let registry = Registry::start(Seed::new().repo(repo)).await;
    registry
        .emulator()
        .inject(Fault::throttle(1).method("DELETE").times(3));
    let run = registry
        .purge(&["--filter", "r:.*", "--ago", "1d", "--output", "json"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(registry.tags("r").is_empty());
    let report = run.json();
    assert_eq!(report["summary"]["tagsDeleted"], 6);
    assert_eq!(report["summary"]["requests"]["throttled"], 3);
}

#[tokio::test]
async fn a_failing_item_fails_alone_and_the_run_goes_on() {
    let repo = RepoSeed::new("r")
        .manifest(ManifestSeed::image("bad").age("2d"))
        .manifest(ManifestSeed::image("good1").age("2d"))
        .manifest(ManifestSeed::image("good2").age("2d"));
    let registry = Registry::start(Seed::new().repo(repo)).await;
    let bad = registry.digest("r", "bad");
    registry
        .emulator()
        .inject(Fault::status(503).method("DELETE").path_contains(&bad));
    let run = registry.purge(&["--untagged-only"]).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .contains(&format!("Failed to delete {}@{bad}", registry.prefix("r")))
    );
    assert!(
        run.stdout.contains("Number of deleted manifests: 2"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("partial purge"), "{}", run.stderr);
    assert!(registry.has("r", "bad"));
    assert!(!registry.has("r", "good1") && !registry.has("r", "good2"));
}

#[tokio::test]
async fn listings_are_complete_before_anything_is_deleted() {
    let mut repo = RepoSeed::new("r");
    for i in 0..250 {
        repo.push(tagged(
            &format!("m{i}"),
            &format!("t{i:03}"),
            &format!("{}m", 100 + i),
        ));
    }
    let registry = Registry::start(Seed::new().repo(repo)).await;
    let run = registry
        .purge(&["--filter", "r:.*", "--ago", "1m", "--untagged"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(registry.tags("r").is_empty());
    assert!(registry.emulator().snapshot().digests("r").is_empty());
    let requests = registry.emulator().requests();
    let first_delete = requests.iter().position(|r| r.method == "DELETE").unwrap();
    assert!(
        !requests[first_delete..]
            .iter()
            .any(|r| r.path.ends_with("/_tags") || r.path.ends_with("/_manifests")),
        "no listing page is read after deleting started"
    );
}

#[tokio::test]
async fn cosign_signatures_follow_their_image() {
    let seed = Seed::new().repo(
        RepoSeed::new("r")
            .manifest(tagged("live", "v2", "1h"))
            .manifest(
                ManifestSeed::image("old")
                    .age("90d")
                    .tag(TagSeed::new("v1").age("90d")),
            ),
    );
    let sig = |alias: &str| format!("{}.sig", seed.digest("r", alias).replace(':', "-"));
    let seed = Seed::new().repo(
        RepoSeed::new("r")
            .manifest(tagged("live", "v2", "1h"))
            .manifest(
                ManifestSeed::image("old")
                    .age("90d")
                    .tag(TagSeed::new("v1").age("90d")),
            )
            .manifest(
                ManifestSeed::image("live-sig")
                    .age("90d")
                    .tag(TagSeed::new(sig("live").as_str()).age("90d")),
            )
            .manifest(
                ManifestSeed::image("old-sig")
                    .age("90d")
                    .tag(TagSeed::new(sig("old").as_str()).age("90d")),
            ),
    );
    // Tags only: the filter matches both signatures, but both images stay, so do they.
    let registry = Registry::start(seed.clone()).await;
    let run = registry
        .purge(&["--filter", "r:^sha256-", "--ago", "1d"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(registry.tags("r").len(), 4);

    // With --untagged, the old image goes and its signature follows, after it.
    let registry = Registry::start(seed).await;
    let run = registry
        .purge(&["--filter", "r:.*", "--ago", "1d", "--untagged"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(registry.tags("r"), set(&["v2", &sig("live")]));
    assert!(!registry.has("r", "old") && !registry.has("r", "old-sig"));
    assert!(registry.has("r", "live-sig"));
    let deletes: Vec<String> = registry
        .mutations()
        .into_iter()
        .filter(|r| r.method == "DELETE" && r.path.contains("/manifests/"))
        .map(|r| r.path)
        .collect();
    let position = |alias: &str| {
        let digest = registry.digest("r", alias);
        deletes.iter().position(|p| p.ends_with(&digest)).unwrap()
    };
    assert!(position("old") < position("old-sig"), "{deletes:?}");
}

#[tokio::test]
async fn a_deleted_index_goes_before_its_children() {
    let repo = RepoSeed::new("r")
        .manifest(ManifestSeed::image("amd64").age("90d"))
        .manifest(ManifestSeed::image("arm64").age("90d"))
        .manifest(
            ManifestSeed::index("multi")
                .age("90d")
                .child("amd64")
                .child("arm64"),
        );
    let registry = Registry::start(Seed::new().repo(repo)).await;
    // The index's delete fails: its children must then stay.
    let multi = registry.digest("r", "multi");
    registry
        .emulator()
        .inject(Fault::status(500).method("DELETE").path_contains(&multi));
    let run = registry.purge(&["--untagged-only"]).await;
    assert_eq!(run.code, 1);
    for alias in ["multi", "amd64", "arm64"] {
        assert!(registry.has("r", alias), "{alias}");
    }
    assert!(
        run.stdout.contains(&format!("{multi} was not deleted")),
        "{}",
        run.stdout
    );

    registry.emulator().clear_faults();
    let run = registry.purge(&["--untagged-only"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(registry.emulator().snapshot().digests("r").is_empty());
}

#[tokio::test]
async fn an_item_locked_during_the_run_is_skipped() {
    let repo = RepoSeed::new("r")
        .manifest(tagged("a", "v1", "2d"))
        .manifest(tagged("b", "v2", "2d"));
    let registry = Registry::start(Seed::new().repo(repo)).await;
    // Hold the pre-delete check of v1 for a moment, and lock v1 meanwhile.
    registry.emulator().inject(
        Fault::delay(std::time::Duration::from_millis(1500))
            .method("GET")
            .path_contains("/_tags/v1"),
    );
    let url = format!("{}/acr/v1/r/_tags/v1", registry.running.url);
    let (run, locked) = tokio::join!(
        registry.purge(&["--filter", "r:.*", "--ago", "1d"]),
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
        run.stdout.contains("it was locked since it was listed"),
        "{}",
        run.stdout
    );
    assert_eq!(registry.tags("r"), set(&["v1"]));
}

#[tokio::test]
async fn bad_input_is_rejected_before_any_request() {
    let registry =
        Registry::start(Seed::new().repo(RepoSeed::new("r").manifest(tagged("a", "v1", "2d"))))
            .await;
    let cases: &[&[&str]] = &[
        &[
            "--filter",
            "r:.*",
            "--ago",
            "1d",
            "--untagged",
            "--untagged-only",
        ],
        &["--filter", "r:.*"],
        &["--ago", "1d"],
        &["--filter", "r:(", "--ago", "1d"],
        &["--filter", "r:.*", "--ago", "1d", "--protect", "nope"],
        &["--filter", "r:.*", "--ago", "1d", "-u", "admin"],
        &["--filter", "r:.*", "--ago", "1d", "--keep", "-1"],
        &[
            "--filter",
            "r:.*",
            "--ago",
            "1d",
            "--repository-page-size",
            "0",
        ],
    ];
    for args in cases {
        let run = registry.purge(args).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(!run.stderr.trim().is_empty(), "{args:?} says what is wrong");
    }
    let run = handler(&[
        "purge",
        "-r",
        "https://host/path",
        "-f",
        "r:.*",
        "--ago",
        "1d",
    ])
    .await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("invalid registry"), "{}", run.stderr);
    assert!(registry.emulator().requests().is_empty());
    assert_eq!(registry.tags("r"), set(&["v1"]));
}

#[tokio::test]
async fn a_pathological_filter_fails_cleanly_and_deletes_nothing() {
    let repo = RepoSeed::new("r")
        .manifest(tagged("a", "keep-going", "2d"))
        .manifest(tagged("b", &format!("{}-", "a".repeat(40)), "2d"));
    let registry = Registry::start(Seed::new().repo(repo)).await;
    let started = std::time::Instant::now();
    let run = registry
        .purge(&["--filter", "r:^(\\w+\\.?)*$(?<=x)|going", "--ago", "1d"])
        .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains("could not be evaluated"),
        "{}",
        run.stderr
    );
    assert!(registry.mutations().is_empty());
    assert_eq!(registry.tags("r").len(), 2);
}

#[tokio::test]
async fn protect_patterns_keep_tags_without_using_keep_slots() {
    let repo = RepoSeed::new("r")
        .manifest(tagged("a", "prod", "5d"))
        .manifest(tagged("b", "v3", "6d"))
        .manifest(tagged("c", "v2", "7d"))
        .manifest(tagged("d", "v1", "8d"));
    let registry = Registry::start(Seed::new().repo(repo)).await;
    let run = registry
        .purge(&[
            "--filter",
            "r:.*",
            "--ago",
            "1d",
            "--keep",
            "1",
            "--protect",
            "r:^prod$",
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(registry.tags("r"), set(&["prod", "v3"]));
}
