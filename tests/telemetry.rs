//! Telemetry of real runs: spans, metrics and events reach a real OTLP/HTTP receiver and a
//! fake Application Insights ingestion endpoint before the invocation is answered, with the
//! expected tree and attributes, and no secret ever appears in them.

use crate::support::appinsights::Ingestion;
use crate::support::host::Handler;
use crate::support::identity::{ENTRA_TOKEN, IdentityEndpoint};
use crate::support::otlp::{Receiver, attribute, int_attribute};
use crate::support::purge::{Registry, handler_with_env, tagged};
use acr_emulator::{ManifestSeed, RepoSeed, Seed};
use acr_purge::functions::webhook::sign;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

/// Takes away most of a repository's tagged images, which the scheduled default
/// `maxDeletions` (50%) refuses: this suite is not about that guard (see `retention`), so
/// the policy lifts it (`null`).
const POLICY: &str = r#"{"rules":[{"filter":"app:^v","ago":"7d","untagged":true}],"maxDeletions":null,"maxRunDeletions":null}"#;
const SECRET: &str = "telemetry-test-webhook-secret";
const INVOCATION: &str = "5b0f1c1e-0000-4000-8000-000000000001";

fn seed() -> Seed {
    Seed::new().repo(
        RepoSeed::new("app")
            .manifest(tagged("a", "v1", "30d"))
            .manifest(tagged("b", "v2", "20d"))
            .manifest(tagged("c", "v3", "1d"))
            .manifest(ManifestSeed::image("d").age("60d")),
    )
}

#[tokio::test]
async fn timer_run_spans_reach_otlp_before_the_answer() {
    let receiver = Receiver::start().await;
    let registry = Registry::start(seed()).await;
    let handler = Handler::start(&[
        ("PURGE_REGISTRY", registry.running.url.as_str()),
        ("PURGE_POLICY", POLICY),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.as_str()),
    ])
    .await;
    let answer = handler.timer(true, false).await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);

    // No waiting: the handler flushed before answering.
    let spans = receiver.spans();
    let root = spans
        .iter()
        .find(|s| s.name == "purge")
        .expect("a root span named purge");
    assert_eq!(root.kind, SpanKind::Server as i32);
    assert!(root.parent_span_id.is_empty());
    let attr = |key: &str| attribute(&root.attributes, key);
    assert_eq!(attr("faas.trigger").as_deref(), Some("timer"));
    assert_eq!(attr("faas.invocation_id").as_deref(), Some(INVOCATION));
    assert_eq!(attr("faas.name").as_deref(), Some("PurgeTimer"));
    assert_eq!(attr("cloud.provider").as_deref(), Some("azure"));
    assert_eq!(attr("purge.registry"), Some(registry.running.host()));
    assert_eq!(attr("purge.dry_run").as_deref(), Some("false"));
    // The durable run it was: its id (as the run store names it), invocation and status.
    let run_id = attr("purge.run_id").expect("purge.run_id");
    assert_eq!(run_id.len(), 36, "{run_id}");
    assert_eq!(attr("purge.run_status").as_deref(), Some("succeeded"));
    // Counts are integers, not strings.
    let int = |key: &str| int_attribute(&root.attributes, key);
    assert_eq!(int("purge.invocation"), Some(1));
    assert_eq!(int("purge.tags_deleted"), Some(2));
    assert_eq!(int("purge.manifests_deleted"), Some(3));
    assert_eq!(int("purge.failed"), Some(0));
    assert_eq!(int("purge.throttled"), Some(0));
    // Per rate-card category: one DELETE per deleted manifest (both tags went with theirs).
    assert_eq!(int("purge.requests.delete"), Some(3));
    assert_eq!(int("purge.throttled.delete"), Some(0));
    assert_eq!(root.status.as_ref().map(|s| s.code), Some(1), "status OK");

    // Children: one plan and one purge span per repository, under the root.
    for name in ["plan repository", "purge repository"] {
        let child = spans.iter().find(|s| s.name == name).expect(name);
        assert_eq!(child.parent_span_id, root.span_id, "{name}");
        assert_eq!(child.trace_id, root.trace_id);
        assert_eq!(
            attribute(&child.attributes, "purge.repository").as_deref(),
            Some("app")
        );
    }
    // Client spans for registry requests: low-cardinality names, route templates.
    let requests: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Client as i32)
        .collect();
    assert!(requests.len() >= 8, "{}", requests.len());
    for span in &requests {
        assert!(
            !span.name.contains("sha256"),
            "digest in span name {}",
            span.name
        );
        assert!(
            !span.name.contains("/app/"),
            "repository in span name {}",
            span.name
        );
        assert!(
            attribute(&span.attributes, "http.response.status_code").is_some(),
            "{}",
            span.name
        );
        assert_eq!(span.trace_id, root.trace_id);
    }
    // Both tagged images go whole (one manifest DELETE each, after one read of their
    // tags): no untag request, yet both tags are counted above.
    assert!(
        requests
            .iter()
            .any(|s| s.name == "GET /acr/v1/{repository}/_tags")
    );
    assert!(
        !requests
            .iter()
            .any(|s| s.name == "DELETE /acr/v1/{repository}/_tags/{tag}")
    );
    assert!(
        requests
            .iter()
            .any(|s| s.name == "DELETE /v2/{repository}/manifests/{reference}")
    );
    // Deletion events on the repository span: one per deletion, with the rule and reason.
    let purge_span = spans.iter().find(|s| s.name == "purge repository").unwrap();
    let deletions: Vec<_> = purge_span
        .events
        .iter()
        .filter(|e| e.name == "deletion")
        .collect();
    assert_eq!(deletions.len(), 5, "{:?}", purge_span.events);
    let first = &deletions[0].attributes;
    assert_eq!(attribute(first, "purge.repository").as_deref(), Some("app"));
    assert_eq!(
        attribute(first, "purge.outcome").as_deref(),
        Some("deleted")
    );
    assert!(
        attribute(first, "purge.digest")
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(int_attribute(first, "purge.rule"), Some(1));
    // acr purge's text lines are logs, not span events.
    assert!(
        !spans
            .iter()
            .flat_map(|s| s.events.iter())
            .any(|e| e.name.starts_with("Deleted ")),
        "text lines must not crowd the spans' events"
    );

    // Metrics were flushed too.
    let metrics = receiver.metric_names();
    for name in [
        "purge.deleted",
        "purge.run.duration",
        "purge.throttled",
        "purge.failures",
    ] {
        assert!(metrics.iter().any(|m| m == name), "{name} in {metrics:?}");
    }
    assert_eq!(
        attribute(&receiver.resource(), "service.name").as_deref(),
        Some("acr-purge")
    );

    // Standard output carries JSON logs with the run's trace id.
    let trace_id = hex(&root.trace_id);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let logs = handler.stdout();
    let deleted: Vec<serde_json::Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Deleted "))
        })
        .collect();
    assert_eq!(deleted.len(), 5, "{logs:#?}");
    for line in &deleted {
        let spans = line["spans"].as_array().expect("span list");
        assert!(
            spans.iter().any(|s| s["trace_id"] == trace_id.as_str()),
            "{line}"
        );
    }
}

#[tokio::test]
async fn webhook_runs_continue_the_callers_trace_and_never_leak_secrets() {
    let receiver = Receiver::start().await;
    let registry = Registry::start(seed()).await;
    let handler = Handler::start(&[
        ("PURGE_REGISTRY", registry.running.url.as_str()),
        ("PURGE_POLICY", POLICY),
        ("WEBHOOK_SECRET", SECRET),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.as_str()),
    ])
    .await;
    let body = r#"{"repositories":["app"],"dryRun":true}"#;
    let signature = sign(SECRET, body.as_bytes());
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let answer = handler
        .request(
            "POST",
            "/api/purge",
            &[
                ("X-Hub-Signature-256", signature.as_str()),
                ("traceparent", traceparent),
            ],
            body.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    let bearer = format!("Bearer {SECRET}");
    let answer = handler
        .request(
            "POST",
            "/api/purge",
            &[("Authorization", bearer.as_str())],
            body.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(answer.status, 200);

    let spans = receiver.spans();
    let roots: Vec<_> = spans.iter().filter(|s| s.name == "purge").collect();
    assert_eq!(roots.len(), 2);
    let continued = roots
        .iter()
        .find(|s| hex(&s.trace_id) == "4bf92f3577b34da6a3ce929d0e0e4736")
        .expect("the traceparent's trace continues");
    assert_eq!(hex(&continued.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(
        attribute(&continued.attributes, "faas.trigger").as_deref(),
        Some("http")
    );
    assert_eq!(
        attribute(&continued.attributes, "purge.dry_run").as_deref(),
        Some("true")
    );
    // Planned deletions are events too in a dry run.
    let planned = spans
        .iter()
        .flat_map(|s| s.events.iter())
        .filter(|e| attribute(&e.attributes, "purge.outcome").as_deref() == Some("planned"))
        .count();
    assert_eq!(planned, 10, "two dry runs of five deletions");

    let payloads = receiver.raw_text();
    for secret in [
        SECRET,
        signature.as_str(),
        "Bearer",
        "authorization",
        "Authorization",
    ] {
        assert!(!payloads.contains(secret), "{secret} leaked into telemetry");
    }
}

#[tokio::test]
async fn deletion_events_are_capped_per_run() {
    let mut repo = RepoSeed::new("app");
    for i in 0..1100 {
        repo.push(tagged(&format!("m{i}"), &format!("v{i}"), "30d"));
    }
    let receiver = Receiver::start().await;
    let registry = Registry::start(Seed::new().repo(repo)).await;
    let run = registry
        .purge_with_env(
            &["--filter", "app:.*", "--ago", "1d", "--dry-run"],
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.as_str())],
        )
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let spans = receiver.spans();
    let root = spans.iter().find(|s| s.name == "purge").expect("root span");
    assert_eq!(
        root.kind,
        SpanKind::Internal as i32,
        "the command line is not a request"
    );
    assert_eq!(
        attribute(&root.attributes, "faas.trigger").as_deref(),
        Some("other")
    );
    let events: Vec<_> = spans.iter().flat_map(|s| s.events.iter()).collect();
    let itemised = events.iter().filter(|e| e.name == "deletion").count();
    assert_eq!(itemised, 1000);
    let summary = events
        .iter()
        .find(|e| attribute(&e.attributes, "purge.suppressed").is_some())
        .expect("a summary event");
    assert_eq!(
        int_attribute(&summary.attributes, "purge.suppressed"),
        Some(100)
    );
}

#[tokio::test]
async fn application_insights_gets_requests_dependencies_events_and_metrics() {
    let ingestion = Ingestion::start().await;
    let registry = Registry::start(seed()).await;
    let connection = ingestion.connection_string();
    let cert = ingestion.cert_path();
    let handler = Handler::start(&[
        ("PURGE_REGISTRY", registry.running.url.as_str()),
        ("PURGE_POLICY", POLICY),
        ("APPLICATIONINSIGHTS_CONNECTION_STRING", connection.as_str()),
        ("SSL_CERT_FILE", cert.as_str()),
    ])
    .await;
    let answer = handler.timer(false, false).await;
    assert_eq!(answer.status, 200, "{:#}", answer.json);
    let envelopes = ingestion.envelopes();
    let of = |base: &str| -> Vec<&serde_json::Value> {
        envelopes
            .iter()
            .filter(|e| e["data"]["baseType"] == base)
            .collect()
    };
    let requests = of("RequestData");
    assert_eq!(requests.len(), 1, "{envelopes:#?}");
    let request = &requests[0]["data"]["baseData"];
    assert_eq!(request["name"], "purge");
    assert_eq!(request["success"], true);
    assert_eq!(request["properties"]["purge.tags_deleted"], "2");
    assert_eq!(request["properties"]["purge.run_status"], "succeeded");
    assert_eq!(request["properties"]["purge.invocation"], "1");
    assert_eq!(request["properties"]["faas.trigger"], "timer");
    assert_eq!(requests[0]["iKey"], "00000000-0000-0000-0000-0000000000aa");
    let dependencies = of("RemoteDependencyData");
    assert!(
        dependencies
            .iter()
            .any(|d| d["data"]["baseData"]["name"]
                == "DELETE /v2/{repository}/manifests/{reference}")
    );
    let messages = of("MessageData");
    assert!(
        messages
            .iter()
            .filter(|m| m["data"]["baseData"]["message"] == "deletion")
            .count()
            >= 5,
        "{messages:#?}"
    );
    let metrics = of("MetricData");
    let names: Vec<String> = metrics
        .iter()
        .flat_map(|m| {
            m["data"]["baseData"]["metrics"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|m| m["name"].as_str().map(str::to_string))
        .collect();
    assert!(names.iter().any(|n| n == "purge.deleted"), "{names:?}");
    assert!(
        ingestion.authorizations().iter().all(Option::is_none),
        "ikey ingestion carries no token"
    );
}

#[tokio::test]
async fn entra_authenticated_ingestion_uses_the_managed_identity() {
    let ingestion = Ingestion::start().await;
    let identity = IdentityEndpoint::start().await;
    let registry = Registry::start(seed()).await;
    let connection = ingestion.connection_string();
    let cert = ingestion.cert_path();
    let run = handler_with_env(
        &[
            "purge",
            "-r",
            registry.running.url.as_str(),
            "-f",
            "app:^v",
            "--ago",
            "7d",
            "--dry-run",
        ],
        &[
            ("APPLICATIONINSIGHTS_CONNECTION_STRING", connection.as_str()),
            (
                "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
                "ClientId=cccccccc-0000-0000-0000-000000000001;Authorization=AAD",
            ),
            ("IDENTITY_ENDPOINT", identity.url.as_str()),
            ("IDENTITY_HEADER", crate::support::identity::IDENTITY_HEADER),
            ("SSL_CERT_FILE", cert.as_str()),
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let authorizations = ingestion.authorizations();
    assert!(!authorizations.is_empty());
    let expected = format!("Bearer {ENTRA_TOKEN}");
    assert!(
        authorizations
            .iter()
            .all(|a| a.as_deref() == Some(expected.as_str())),
        "{authorizations:?}"
    );
    let asked = identity.requests();
    assert!(
        asked
            .iter()
            .any(|q| q["resource"] == "https://monitor.azure.com"
                && q["client_id"] == "cccccccc-0000-0000-0000-000000000001"),
        "{asked:?}"
    );
    assert!(
        !ingestion.raw_text().contains(ENTRA_TOKEN),
        "the token stays in the header"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn both_exporters_at_once() {
    let ingestion = Ingestion::start().await;
    let receiver = Receiver::start().await;
    let registry = Registry::start(seed()).await;
    let connection = ingestion.connection_string();
    let cert = ingestion.cert_path();
    let run = handler_with_env(
        &[
            "purge",
            "-r",
            registry.running.url.as_str(),
            "-f",
            "app:^v",
            "--ago",
            "7d",
        ],
        &[
            ("APPLICATIONINSIGHTS_CONNECTION_STRING", connection.as_str()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.as_str()),
            ("SSL_CERT_FILE", cert.as_str()),
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(receiver.spans().iter().any(|s| s.name == "purge"));
    assert!(
        ingestion
            .envelopes()
            .iter()
            .any(|e| e["data"]["baseData"]["name"] == "purge"),
        "{:#?}",
        ingestion.envelopes()
    );
}
