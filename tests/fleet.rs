//! A fleet through the `handler` binary, the Functions host played by the test: the timer
//! returns one queue message per registry in `Outputs`, `PurgeQueue` runs each with its own
//! policy (the default, overridden per registry), and a message the fleet cannot run is a
//! failed invocation (for the host's retry and poison queue) that touches nothing.

use crate::support::host::{Answer, Handler};
use crate::support::purge::{Registry, set, tagged};
use acr_emulator::{RepoSeed, Seed};

fn seed() -> Seed {
    Seed::new().repo(
        RepoSeed::new("app")
            .manifest(tagged("old", "v1", "30d"))
            .manifest(tagged("new", "v2", "1d")),
    )
}

/// The queue trigger's request as the host sends it: the message text in `Data.message`,
/// the queue's metadata in `Metadata`.
async fn deliver(handler: &Handler, message: &serde_json::Value, dequeue_count: u32) -> Answer {
    let body = serde_json::json!({
        "Data": {"message": message.to_string()},
        "Metadata": {
            "DequeueCount": dequeue_count,
            "Id": "b7f2a3a4-1c0e-4f57-9d0e-3f6f1c2d9e01",
            "PopReceipt": "AgAAAAMAAAAAAAAA",
            "InsertionTime": "2026-11-21T03:00:00+00:00",
            "NextVisibleTime": "2026-11-21T03:01:30+00:00",
            "sys": {"MethodName": "PurgeQueue", "UtcNow": "2026-11-21T03:00:01Z", "RandGuid": "0f8fad5b-d9cb-469f-a165-70867728950e"}
        }
    });
    handler
        .request(
            "POST",
            "/PurgeQueue",
            &[
                ("Content-Type", "application/json"),
                (
                    "X-Azure-Functions-InvocationId",
                    "5b0f1c1e-0000-4000-8000-000000000002",
                ),
            ],
            body.to_string().into_bytes(),
        )
        .await
}

#[tokio::test]
async fn the_timer_enqueues_each_registry_and_the_queue_runs_each_with_its_policy() {
    let dev = Registry::start(seed()).await;
    let prod = Registry::start(seed()).await;
    let state = tempfile::tempdir().unwrap();
    let fleet = serde_json::json!({
        "default": {"rules": [{"filter": "app:.*", "ago": "7d"}]},
        "registries": [
            {"registry": dev.running.url},
            {"registry": prod.running.url, "policy": {"dryRun": true}}
        ]
    })
    .to_string();
    let handler = Handler::start(&[
        ("PURGE_FLEET", fleet.as_str()),
        ("PURGE_STATE_DIR", state.path().to_str().unwrap()),
        ("WEBHOOK_SECRET", "s"),
    ])
    .await;

    let answer = handler.timer(false, false).await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    let messages = answer.json["Outputs"]["purges"]
        .as_array()
        .expect("Outputs.purges")
        .clone();
    let hosts: Vec<&str> = messages
        .iter()
        .map(|m| m["registry"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, [dev.running.host(), prod.running.host()]);
    // The timer only enqueues: nothing is deleted yet.
    assert_eq!(dev.tags("app"), set(&["v1", "v2"]));

    for message in &messages {
        let answer = deliver(&handler, message, 1).await;
        assert_eq!(answer.status, 200, "{:#}", answer.json);
        assert_eq!(
            answer.json["Outputs"],
            serde_json::json!({}),
            "no continuation"
        );
        assert_eq!(answer.json["ReturnValue"]["registry"], message["registry"]);
    }
    assert_eq!(dev.tags("app"), set(&["v2"]), "the default policy");
    assert_eq!(
        prod.tags("app"),
        set(&["v1", "v2"]),
        "prod's override: a dry run"
    );
    // Each registry has its own records, recorded with the queue trigger.
    let runs = std::fs::read_dir(state.path().join("runs"))
        .unwrap()
        .count();
    assert_eq!(runs, 2);

    // A registry outside the fleet, or no fleet message at all: failed invocations (the host
    // retries them and then moves them to the poison queue), nothing touched.
    let stranger = serde_json::json!({"registry": "stranger.azurecr.io"});
    let answer = deliver(&handler, &stranger, 1).await;
    assert_eq!(answer.status, 500, "{:#}", answer.json);
    assert!(
        answer.json["Logs"]
            .to_string()
            .contains("not one of the fleet's")
    );
    let answer = deliver(&handler, &serde_json::json!("purge everything"), 5).await;
    assert_eq!(answer.status, 500, "{:#}", answer.json);
    assert_eq!(prod.tags("app"), set(&["v1", "v2"]));
}

#[tokio::test]
async fn a_fleet_with_a_wrong_registry_policy_fails_every_invocation_naming_it() {
    let dev = Registry::start(seed()).await;
    let fleet = serde_json::json!({
        "default": {"rules": [{"filter": "app:.*", "ago": "7d"}]},
        "registries": [
            {"registry": dev.running.url},
            {"registry": "prod.azurecr.io", "policy": {"rules": [{"filter": "app:.*", "ago": "soon"}]}}
        ]
    })
    .to_string();
    let handler = Handler::start(&[("PURGE_FLEET", fleet.as_str()), ("WEBHOOK_SECRET", "s")]).await;
    let answer = handler.timer(false, false).await;
    assert_eq!(answer.status, 500, "{:#}", answer.json);
    let logs = answer.json["Logs"].to_string();
    assert!(
        logs.contains("PURGE_FLEET")
            && logs.contains("prod.azurecr.io")
            && logs.contains("rules[0].ago"),
        "{logs}"
    );
    let answer = deliver(
        &handler,
        &serde_json::json!({"registry": dev.running.host()}),
        1,
    )
    .await;
    assert_eq!(answer.status, 500);
    assert_eq!(dev.tags("app"), set(&["v1", "v2"]));
}

/// A webhook request with the bearer token ACR webhooks send.
async fn webhook(handler: &Handler, path: &str, body: &str, headers: &[(&str, &str)]) -> Answer {
    let mut all = vec![("Authorization", "Bearer s")];
    all.extend_from_slice(headers);
    handler
        .request("POST", path, &all, body.as_bytes().to_vec())
        .await
}

/// An ACR push event as ACR sends it: `request.host` is the registry's login server.
fn acr_push(host: &str) -> String {
    serde_json::json!({
        "id": "cb8c3971", "timestamp": "2026-11-21T02:00:00Z", "action": "push",
        "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                   "digest": "sha256:fea8", "repository": "app", "tag": "v3"},
        "request": {"id": "3cbb6949", "host": host, "method": "PUT", "useragent": "docker/20"}
    })
    .to_string()
}

#[tokio::test]
async fn webhooks_purge_the_registry_they_name_with_its_policy() {
    let dev = Registry::start(seed()).await;
    let prod = Registry::start(seed()).await;
    let qa = Registry::start(seed()).await;
    let state = tempfile::tempdir().unwrap();
    // prod keeps what is younger than 60 days: its own policy, not the default's.
    let fleet = serde_json::json!({
        "default": {"rules": [{"filter": "app:.*", "ago": "7d"}]},
        "registries": [
            {"registry": dev.running.url},
            {"registry": prod.running.url, "policy": {"rules": [{"filter": "app:.*", "ago": "60d"}]}},
            {"registry": qa.running.url}
        ]
    })
    .to_string();
    let handler = Handler::start(&[
        ("PURGE_FLEET", fleet.as_str()),
        ("PURGE_STATE_DIR", state.path().to_str().unwrap()),
        ("WEBHOOK_SECRET", "s"),
    ])
    .await;
    let untouched = set(&["v1", "v2"]);

    // A registry outside the fleet, by event or by URL: 422, nothing run anywhere.
    let answer = webhook(
        &handler,
        "/api/purge",
        &acr_push("stranger.azurecr.io"),
        &[],
    )
    .await;
    assert_eq!(answer.status, 422, "{:#}", answer.json);
    let message = answer.json["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("\"stranger.azurecr.io\" is not one of this app's registries"),
        "{message}"
    );
    let release =
        r#"{"action":"published","release":{"tag_name":"v3"},"repository":{"name":"app"}}"#;
    let github = [("X-GitHub-Event", "release")];
    let answer = webhook(
        &handler,
        "/api/purge?registry=nope.azurecr.io",
        release,
        &github,
    )
    .await;
    assert_eq!(answer.status, 422, "{:#}", answer.json);
    // A URL and an event naming two registries: refused, whichever is right.
    let both = format!("/api/purge?registry={}", dev.running.host());
    let answer = webhook(&handler, &both, &acr_push(&qa.running.host()), &[]).await;
    assert_eq!(answer.status, 422, "{:#}", answer.json);
    assert!(
        answer.json["error"].to_string().contains("names registry"),
        "{:#}",
        answer.json
    );
    for registry in [&dev, &prod, &qa] {
        assert_eq!(registry.tags("app"), untouched);
        assert!(registry.mutations().is_empty());
    }

    // An ACR push from prod purges prod with prod's policy (v1 is 30 days old: kept).
    let answer = webhook(&handler, "/api/purge", &acr_push(&prod.running.host()), &[]).await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    assert_eq!(answer.json["registry"], prod.running.host());
    assert_eq!(answer.json["summary"]["tagsDeleted"], 0);
    // The same from qa (any case) purges qa with the default policy; dev is not touched.
    let shouting = qa.running.host().to_uppercase();
    let answer = webhook(&handler, "/api/purge", &acr_push(&shouting), &[]).await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    assert_eq!(answer.json["registry"], qa.running.host());
    assert_eq!(qa.tags("app"), set(&["v2"]));
    assert_eq!(dev.tags("app"), untouched);
    assert!(dev.mutations().is_empty());
    assert_eq!(prod.tags("app"), untouched);

    // A GitHub release names its registry in the URL.
    let path = format!("/api/purge?registry={}", dev.running.host());
    let answer = webhook(&handler, &path, release, &github).await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    assert_eq!(answer.json["registry"], dev.running.host());
    assert_eq!(dev.tags("app"), set(&["v2"]));
    assert_eq!(prod.tags("app"), untouched);
}
