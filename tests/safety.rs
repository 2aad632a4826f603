//! Where acr-purge deliberately differs from acr purge to stay safe (README "Safety"), and
//! what it does with bad input, throttling, failures and changes during a run.

use crate::support::process::HandlerCommand;
use crate::support::purge::{Registry, handler, set, tagged};
use acr_emulator::{Fault, ManifestSeed, RepoSeed, Seed, TagSeed, TimeSpec};

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
            .any(
                |r| (r.path.ends_with("/_tags") && !r.query.contains("digest="))
                    || r.path.ends_with("/_manifests")
            ),
        "no listing page is read after deleting started (the tags of one manifest, read to \
         verify it before it goes, are no page of the listing)"
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

#[tokio::test]
async fn a_nonsense_retry_after_neither_panics_nor_parks_the_run() {
    let mut repo = RepoSeed::new("r");
    for i in 0..4 {
        repo.push(tagged(&format!("m{i}"), &format!("t{i}"), "2d"));
    }
    let registry = Registry::start(Seed::new().repo(repo)).await;
    // Values a registry (or something in front of it) may send: each is ignored, and the
    // backoff applies instead.
    for value in ["1e30", "-1", "NaN", "soon"] {
        registry.emulator().inject(
            Fault::status(429)
                .retry_after_value(value)
                .method("DELETE")
                .times(1),
        );
    }
    registry
        .emulator()
        .inject(Fault::status(503).retry_after_value("1e30").times(1));
    let run = registry
        .purge(&["--filter", "r:.*", "--ago", "1d", "--output", "json"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(registry.tags("r").is_empty());
    let report = run.json();
    assert_eq!(report["summary"]["tagsDeleted"], 4);
    assert_eq!(report["summary"]["requests"]["throttled"], 4);
}

#[tokio::test]
async fn a_registry_that_goes_away_stops_the_run_instead_of_failing_every_item() {
    let mut a = RepoSeed::new("a");
    for i in 0..60 {
        a.push(ManifestSeed::image(&format!("m{i}")).age("2d"));
    }
    let b = RepoSeed::new("b").manifest(ManifestSeed::image("kept").age("2d"));
    let Registry { running, seed, .. } = Registry::start(Seed::new().repo(a).repo(b)).await;
    // Deletes are slow, so the registry can disappear while the run is deleting.
    running
        .emulator()
        .inject(Fault::delay(std::time::Duration::from_millis(300)).method("DELETE"));
    let url = running.url.clone();
    let run = tokio::spawn(async move {
        // One repository at a time, so that b is certainly not reached.
        let args = ["purge", "-r", &url, "--untagged-only", "--output", "json"];
        handler(&[&args[..], &["--concurrency", "1"]].concat()).await
    });
    let emulator = running.emulator().clone();
    while !emulator.requests().iter().any(|r| r.method == "DELETE") {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    running.shutdown().await;
    let run = run.await.expect("the run ends");
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("stopped answering"), "{}", run.stderr);
    assert!(run.stderr.contains("remaining: [b]"), "{}", run.stderr);
    let report = run.json();
    let b = &report["repositories"][1];
    assert_eq!(b["repository"], "b");
    assert_eq!(b["status"], "notReached");
    // Without the breaker every item would be tried four times; with it, once the
    // breaker is open, the items in flight fail at once and the rest are not attempted.
    let outcomes: Vec<String> = report["repositories"][0]["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["outcome"].to_string())
        .collect();
    let fast = outcomes
        .iter()
        .filter(|e| e.contains("stopped answering") || e.contains("not attempted"))
        .count();
    assert!(
        fast >= 30,
        "{fast} of {} stopped fast: {outcomes:?}",
        outcomes.len()
    );
    assert!(
        emulator
            .snapshot()
            .has_manifest("b", &seed.digest("b", "kept"))
    );
}

#[tokio::test]
async fn a_dry_run_that_could_not_list_a_repository_fails() {
    let seed = Seed::new()
        .repo(RepoSeed::new("bad").manifest(tagged("x", "v1", "2d")))
        .repo(RepoSeed::new("good").manifest(tagged("y", "v1", "2d")));
    let registry = Registry::start(seed).await;
    registry
        .emulator()
        .inject(Fault::status(500).path_prefix("/acr/v1/bad/_tags"));
    let run = registry
        .purge(&["--filter", ".*:.*", "--ago", "1d", "--dry-run"])
        .await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains(&format!("Would delete: {}:v1", registry.prefix("good"))),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("partial dry run: bad:"),
        "{}",
        run.stderr
    );
    assert!(registry.mutations().is_empty());
}

/// An untagged OCI signature whose subject is not in the repository.
fn orphan_signature(alias: &str, age: &str) -> ManifestSeed {
    let absent = format!("sha256:{}", "0".repeat(64));
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "size": 2
        },
        "layers": [],
        "subject": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": absent,
            "size": 100
        }
    });
    ManifestSeed::image(alias)
        .age(age)
        .raw_body(&body.to_string())
}

#[tokio::test]
async fn keep_never_counts_referrers_and_orphans_are_swept_as_untagged() {
    let repo = RepoSeed::new("r")
        .manifest(orphan_signature("orphan", "2h"))
        .manifest(ManifestSeed::image("a").age("3h"))
        .manifest(ManifestSeed::image("b").age("5h"))
        .manifest(
            ManifestSeed::artifact("b-sbom", "application/spdx+json")
                .age("5h")
                .subject("b"),
        )
        .manifest(
            ManifestSeed::artifact("b-vuln", "application/sarif+json")
                .age("5h")
                .subject("b"),
        )
        .manifest(ManifestSeed::image("c").age("9h"));
    let registry = Registry::start(Seed::new().repo(repo)).await;
    let run = registry
        .purge(&[
            "--untagged-only",
            "--ago",
            "1h",
            "--keep",
            "2",
            "--output",
            "json",
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    // acr purge keeps the two most recent images, a and b (and b's referrers with it).
    for alias in ["a", "b", "b-sbom", "b-vuln"] {
        assert!(registry.has("r", alias), "{alias}");
    }
    assert!(!registry.has("r", "c"));
    assert!(!registry.has("r", "orphan"));
    let report = run.json();
    let orphan = report["repositories"][0]["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["digest"] == registry.digest("r", "orphan"))
        .unwrap()
        .clone();
    assert_eq!(orphan["decision"], "delete");
    assert_eq!(orphan["reason"], "orphanReferrer");
}

#[tokio::test]
async fn a_locked_cosign_signature_tag_is_never_deleted_and_keeps_its_image() {
    let image = ManifestSeed::image("img").age("90d");
    let digest = Seed::new()
        .repo(RepoSeed::new("r").manifest(image.clone()))
        .digest("r", "img");
    let sig_tag = format!("{}.sig", digest.replace(':', "-"));
    for lock in [
        TagSeed::new(&sig_tag).age("90d").delete_enabled(false),
        TagSeed::new(&sig_tag).age("90d").write_enabled(false),
    ] {
        let repo = RepoSeed::new("r")
            .manifest(image.clone())
            .manifest(ManifestSeed::image("img-sig").age("90d").tag(lock));
        let registry = Registry::start(Seed::new().repo(repo)).await;
        let run = registry
            .purge(&[
                "--filter",
                "r:^nomatch$",
                "--ago",
                "1d",
                "--untagged",
                "--output",
                "json",
            ])
            .await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(registry.tags("r"), set(&[&sig_tag]));
        assert!(registry.has("r", "img") && registry.has("r", "img-sig"));
        assert!(
            registry.mutations().is_empty(),
            "{:?}",
            registry.mutations()
        );
        let report = run.json();
        let img = report["repositories"][0]["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["digest"] == digest)
            .unwrap()
            .clone();
        assert_eq!(img["reason"], "signatureLocked", "{img}");
    }
}

#[tokio::test]
async fn timestamps_are_read_as_strictly_as_acr_writes_them() {
    let mut repo = RepoSeed::new("r").manifest(tagged("fine", "fine", "90d"));
    let lenient = [
        "2020-01-01 00:00:00Z",
        "2020-01-01t00:00:00Z",
        "2020-01-01T00:00:00z",
        " 2020-01-01T00:00:00Z",
        "2016-12-31T23:59:60Z",
    ];
    for (i, text) in lenient.iter().enumerate() {
        repo.push(
            ManifestSeed::image(&format!("m{i}"))
                .updated(TimeSpec::at(text))
                .tag(TagSeed::new(&format!("t{i}")).updated(TimeSpec::at(text))),
        );
    }
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
    assert_eq!(registry.tags("r"), set(&["t0", "t1", "t2", "t3", "t4"]));
    let report = run.json();
    let unreadable = report["repositories"][0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["reason"] == "timestampUnreadable")
        .count();
    assert_eq!(unreadable, lenient.len());
}

#[tokio::test]
async fn a_closed_pipe_ends_the_output_quietly() {
    use tokio::io::AsyncBufReadExt;
    for args in [vec!["demo"], vec!["purge", "--untagged-only", "--dry-run"]] {
        let registry = Registry::start(Seed::new().repo({
            let mut repo = RepoSeed::new("r");
            for i in 0..2000 {
                repo.push(ManifestSeed::image(&format!("m{i}")).age("2d"));
            }
            repo
        }))
        .await;
        let mut all = args.clone();
        if args[0] == "purge" {
            all.extend(["-r", registry.running.url.as_str()]);
        }
        let mut child = HandlerCommand::new()
            .args(&all)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        // Read one line, then close the pipe, as `| head -1` does.
        let stdout = child.take_stdout().expect("stdout");
        let mut first = String::new();
        tokio::io::BufReader::new(stdout)
            .read_line(&mut first)
            .await
            .expect("a first line");
        let output = child.wait_with_output().await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// `repos` repositories of `images` single-tag (`build-N`) Docker images, all 3 days old.
fn build_images(repos: usize, images: usize) -> Seed {
    (0..repos).fold(Seed::new(), |seed, r| {
        let mut repo = RepoSeed::new(&format!("app{r}"));
        for i in 0..images {
            repo.push(
                ManifestSeed::docker(&format!("i{i}"))
                    .age("3d")
                    .tag(TagSeed::new(&format!("build-{i}")).age("3d")),
            );
        }
        seed.repo(repo)
    })
}

/// Purges `build-` images under `card` while an adversary tags a random image still doomed
/// (it has its `build-` tag and nothing else) every `every`, as someone tagging an old image
/// `prod` for a rollback during the timer's run would. Returns the pushes and how many of
/// their tags the purge deleted.
async fn purge_under_pushes(card: &str, every: std::time::Duration) -> (usize, usize) {
    use rand::{Rng, SeedableRng};
    let registry = Registry::start(build_images(3, 40)).await;
    let done = std::sync::atomic::AtomicBool::new(false);
    let purge = async {
        let run = registry
            .purge(&[
                "--filter",
                ".*:^build-",
                "--ago",
                "1d",
                "--untagged",
                "--concurrency",
                "8",
                "--rate-card",
                card,
            ])
            .await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        run
    };
    let pusher = async {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x0b5e_55ed);
        let mut pushed = Vec::new();
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(every).await;
            let snapshot = registry.emulator().snapshot();
            let doomed: Vec<(&String, &String)> = snapshot
                .repositories
                .iter()
                .flat_map(|(name, repo)| repo.manifests.values().map(move |m| (name, m)))
                .filter(|(_, m)| m.tags.len() == 1 && m.tags[0].starts_with("build-"))
                .map(|(name, m)| (name, &m.digest))
                .collect();
            if doomed.is_empty() {
                continue;
            }
            let (repo, digest) = doomed[rng.random_range(0..doomed.len())];
            let tag = format!("prod-{}", pushed.len());
            if registry.emulator().push_tag(repo, &tag, digest).is_ok() {
                pushed.push((repo.clone(), tag));
            }
        }
        pushed
    };
    let (run, pushed) = tokio::join!(purge, pusher);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let left = registry.emulator().snapshot();
    let lost = pushed
        .iter()
        .filter(|(repo, tag)| !left.has_tag(repo, tag))
        .count();
    (pushed.len(), lost)
}

#[tokio::test]
async fn tags_pushed_during_a_paced_purge_are_not_deleted_with_their_image() {
    // 120 doomed images, 20 deletes a second: about 6 s of purge, a push every 100 ms.
    // Before the fix, a job verified its image and then waited up to 2N/rate (0.8 s) for a
    // delete slot, and about a fifth of the pushes were deleted.
    let every = std::time::Duration::from_millis(100);
    let (pushes, lost) = purge_under_pushes("read=12000,write=1200,delete=1200", every).await;
    println!("paced: {lost} of {pushes} pushes lost");
    assert!(pushes >= 20, "the adversary pushed only {pushes} times");
    assert!(
        lost * 100 <= pushes * 5,
        "{lost} of {pushes} pushes were deleted with their image"
    );
}

/// The registry of a randomized differential run where the real run, once in twelve, kept
/// an image the dry run deleted: an index referring to an image (its `subject`), both
/// tagged, the tags listed one per page.
fn referrer_index_registry() -> Seed {
    let repo = RepoSeed::new("app-legacy")
        .manifest(
            ManifestSeed::docker("m1")
                .age("14d")
                .tags(&["prod", "dev-1"]),
        )
        .manifest(ManifestSeed::image("m2").age("3d"))
        .manifest(ManifestSeed::image("m3").age("3d"))
        .manifest(
            ManifestSeed::index("x4")
                .age("3d")
                .child("m2")
                .child("m3")
                .tags(&["v1.1"])
                .subject("m1"),
        );
    Seed::new().repo(repo)
}

const REFERRER_RACE_ARGS: [&str; 7] = [
    "--filter",
    ".*:latest",
    "--filter",
    "app-legacy:^(?!sha256-).*",
    "--ago",
    "1d",
    "--untagged",
];

/// Runs the referrer race's purge on a fresh registry and checks it deleted exactly what
/// the dry run plans: the three tags, `m1`, and `x4` with it; `m2` and `m3` stay.
async fn purge_the_referrer_race(hold_tag_job: bool) {
    let registry = Registry::start(referrer_index_registry()).await;
    registry.emulator().set_max_page_size(Some(1));
    if hold_tag_job {
        // The image job verifies m1's tags while the tag job has not deleted v1.1 yet.
        registry.emulator().inject(
            Fault::delay(std::time::Duration::from_millis(700))
                .method("GET")
                .path_contains("/_tags/v1.1")
                .times(1),
        );
    }
    let run = registry.purge(&REFERRER_RACE_ARGS).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        !run.stdout.contains("Skipped") || run.stdout.contains("HTTP status: 404"),
        "{}",
        run.stdout
    );
    assert_eq!(registry.tags("app-legacy"), set(&[]), "{}", run.stdout);
    assert!(!registry.has("app-legacy", "m1"), "{}", run.stdout);
    assert!(!registry.has("app-legacy", "x4"), "{}", run.stdout);
    assert!(registry.has("app-legacy", "m2") && registry.has("app-legacy", "m3"));
}

#[tokio::test]
async fn a_tag_job_never_changes_what_an_image_job_verifies() {
    // The dry run names the plan every real run below must carry out.
    let registry = Registry::start(referrer_index_registry()).await;
    registry.emulator().set_max_page_size(Some(1));
    let mut args = REFERRER_RACE_ARGS.to_vec();
    args.push("--dry-run");
    let dry = registry.purge(&args).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let host = registry.prefix("app-legacy");
    assert_eq!(
        dry.lines("Would delete: "),
        set(&[
            &format!("{host}:prod"),
            &format!("{host}:dev-1"),
            &format!("{host}:v1.1"),
            &format!("{host}@{}", registry.digest("app-legacy", "m1")),
        ]),
        "{}",
        dry.stdout
    );
    // The ordering that broke it, forced; then the plan run many times as it comes.
    purge_the_referrer_race(true).await;
    for _ in 0..12 {
        purge_the_referrer_race(false).await;
    }
}
