//! The blast-radius guard over a whole run (`--max-run-deletions`, the policy's
//! `maxRunDeletions`) through the `handler` binary: every repository is planned before any
//! is purged, and a run whose plans together take away too much deletes nothing at all.

use crate::retention::seed;
use crate::support::host::Handler;
use crate::support::purge::{Registry, set};

fn all(prefix: &str, n: usize) -> std::collections::BTreeSet<String> {
    (1..=n).map(|i| format!("{prefix}{i}")).collect()
}

fn deletes(registry: &Registry) -> usize {
    registry
        .mutations()
        .iter()
        .filter(|r| r.method == "DELETE")
        .count()
}

const REFUSED: &str = "Refused to purge: the run's plans take away 10 of the 14 tagged images it covers, over --max-run-deletions 50%";

#[tokio::test]
async fn a_scheduled_run_over_the_default_run_limit_deletes_nothing_anywhere() {
    // Each repository's own limit lifted: only the run's default (50%) stands.
    let registry = Registry::start(seed()).await;
    let policy = r#"{"rules":[{"filter":".*:.*","ago":"30d"}],"maxDeletions":null}"#;
    let handler = Handler::start(&[
        ("PURGE_REGISTRY", registry.running.url.as_str()),
        ("PURGE_POLICY", policy),
    ])
    .await;
    let answer = handler.timer(false, false).await;
    assert_eq!(answer.status, 500, "{:#}", answer.json);
    let logs = answer.json["Logs"].to_string();
    assert!(logs.contains(REFUSED), "{logs}");
    assert!(
        logs.contains("refused by the run's deletion limit"),
        "{logs}"
    );
    // lib alone (1 of 4) would be within any limit: the run deletes nothing at all.
    assert_eq!(registry.tags("app"), all("v", 10));
    assert_eq!(registry.tags("lib"), set(&["l1", "l2", "l3", "l4"]));
    assert_eq!(deletes(&registry), 0);
    let report = &answer.json["ReturnValue"];
    assert_eq!(report["summary"]["tagsDeleted"], 0, "{report:#}");

    // The same policy with a run limit of 10 images goes through.
    let registry = Registry::start(seed()).await;
    let allowed =
        r#"{"rules":[{"filter":".*:.*","ago":"30d"}],"maxDeletions":null,"maxRunDeletions":10}"#;
    let handler = Handler::start(&[
        ("PURGE_REGISTRY", registry.running.url.as_str()),
        ("PURGE_POLICY", allowed),
    ])
    .await;
    let answer = handler.timer(false, false).await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    assert_eq!(registry.tags("app"), set(&["v1"]));
    assert_eq!(registry.tags("lib"), set(&["l1", "l2", "l3"]));
}

#[tokio::test]
async fn the_command_line_has_no_run_limit_unless_given_and_a_dry_run_shows_the_refusal() {
    let registry = Registry::start(seed()).await;
    let args = ["--filter", ".*:.*", "--ago", "30d"];
    let dry = [&args[..], &["--dry-run", "--max-run-deletions", "71%"]].concat();
    // 71% of 14 is 9 (rounded down): 10 is over it.
    let run = registry.purge(&dry).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("Refused to purge: the run's plans take away 10 of the 14 tagged images it covers, over --max-run-deletions 71%"),
        "{}",
        run.stdout
    );
    assert!(run.lines("Would delete: ").is_empty(), "{}", run.stdout);

    let dry = [&args[..], &["--dry-run", "--max-run-deletions", "72%"]].concat();
    let run = registry.purge(&dry).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.lines("Would delete: ").len(), 10, "{}", run.stdout);

    let bad = [&args[..], &["--max-run-deletions", "101%"]].concat();
    let run = registry.purge(&bad).await;
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("invalid --max-run-deletions value \"101%\""),
        "{}",
        run.stderr
    );

    // A real run over a count limit: nothing deleted, exit 1.
    let real = [&args[..], &["--max-run-deletions", "9"]].concat();
    let run = registry.purge(&real).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("over --max-run-deletions 9"),
        "{}",
        run.stdout
    );
    assert_eq!(deletes(&registry), 0);
    assert_eq!(registry.tags("app"), all("v", 10));

    // No flag: acr purge's behaviour, no limit.
    let run = registry.purge(&args).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(registry.tags("app"), set(&["v1"]));
    assert_eq!(registry.tags("lib"), set(&["l1", "l2", "l3"]));
}
