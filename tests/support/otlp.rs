//! An OTLP/HTTP receiver in the test process: `POST /v1/traces` and `/v1/metrics`,
//! protobuf bodies decoded with opentelemetry-proto, raw bodies kept for searching.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Received {
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
    raw: Vec<Vec<u8>>,
}

/// A running receiver.
pub struct Receiver {
    /// `http://127.0.0.1:PORT` (the `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub url: String,
    received: Arc<Mutex<Received>>,
    _server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver on a free loopback port.
    pub async fn start() -> Receiver {
        let received: Arc<Mutex<Received>> = Arc::default();
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .route("/v1/metrics", post(metrics))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}"),
            received,
            _server: server,
        }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        let received = self.received.lock().expect("lock");
        received
            .traces
            .iter()
            .flat_map(|r| r.resource_spans.iter())
            .flat_map(|r| r.scope_spans.iter())
            .flat_map(|s| s.spans.iter().cloned())
            .collect()
    }

    /// The resource attributes of the first batch of spans.
    pub fn resource(&self) -> Vec<KeyValue> {
        let received = self.received.lock().expect("lock");
        received
            .traces
            .first()
            .and_then(|r| r.resource_spans.first())
            .and_then(|r| r.resource.clone())
            .map(|r| r.attributes)
            .unwrap_or_default()
    }

    /// Names of every metric received so far.
    pub fn metric_names(&self) -> Vec<String> {
        let received = self.received.lock().expect("lock");
        received
            .metrics
            .iter()
            .flat_map(|r| r.resource_metrics.iter())
            .flat_map(|r| r.scope_metrics.iter())
            .flat_map(|s| s.metrics.iter().map(|m| m.name.clone()))
            .collect()
    }

    /// Every body received, as lossy text, for searching.
    pub fn raw_text(&self) -> String {
        let received = self.received.lock().expect("lock");
        received
            .raw
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

async fn traces(State(received): State<Arc<Mutex<Received>>>, body: Bytes) -> &'static str {
    if let Ok(request) = ExportTraceServiceRequest::decode(&body[..])
        && let Ok(mut r) = received.lock()
    {
        r.traces.push(request);
        r.raw.push(body.to_vec());
    }
    ""
}

async fn metrics(State(received): State<Arc<Mutex<Received>>>, body: Bytes) -> &'static str {
    if let Ok(request) = ExportMetricsServiceRequest::decode(&body[..])
        && let Ok(mut r) = received.lock()
    {
        r.metrics.push(request);
        r.raw.push(body.to_vec());
    }
    ""
}

/// The value of attribute `key`, as text.
pub fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .map(text)
}

/// The value of attribute `key` when it is exported as an integer (`None` for a string).
pub fn int_attribute(attributes: &[KeyValue], key: &str) -> Option<i64> {
    match attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
    {
        Some(any_value::Value::IntValue(i)) => Some(i),
        _ => None,
    }
}

fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}
