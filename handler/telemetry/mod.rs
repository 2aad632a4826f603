//! Telemetry: OpenTelemetry traces and metrics to Application Insights and/or OTLP, and
//! logs on standard output or error, with the trace id of the run.
//!
//! The engine only uses `tracing`: spans per run, repository and registry request, and
//! events per deletion; this module bridges them to OpenTelemetry and records the metrics.
//! On a serverless instance the process may be frozen right after an answer, so the
//! Functions handler calls [`flush`] before answering every invocation.

mod context;
pub mod exporters;
mod metrics;
mod run;

pub use context::{RunContext, Trigger};
pub use run::{finish_run, record_durable, record_plan_digest, record_run_status, run_span};

/// Deletion events per run, at most (the span-event limit is set to fit them).
pub const MAX_DELETION_EVENTS: usize = 1000;

/// A count as a span or event attribute. The OpenTelemetry layer exports `u64` and `usize`
/// fields as strings, `i64` as integers; counts beyond `i64::MAX` saturate.
pub fn int(count: impl TryInto<i64>) -> i64 {
    count.try_into().unwrap_or(i64::MAX)
}

use anyhow::Context as _;
use exporters::{ExportClient, ExportConfig};
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::OnceLock;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The log target of acr purge's text lines: they go to the logs, not to the traces (where
/// they would crowd out the capped deletion events on the repository spans).
pub const OUTPUT_TARGET: &str = "acr_purge::output";

/// How long a flush may take before the answer goes out anyway.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logs {
    /// Human-readable, on standard error (the command line), `warn` unless `RUST_LOG` says.
    Text,
    /// JSON lines on standard output (the Functions host collects them), `info` by default.
    Json,
}

struct Providers {
    tracer: SdkTracerProvider,
    meter: Option<SdkMeterProvider>,
}

static PROVIDERS: OnceLock<Providers> = OnceLock::new();

/// Sets up logging and the exporters the environment asks for (see [`ExportConfig`]).
/// Must run inside the Tokio runtime; later calls do nothing. Exporter problems are logged,
/// never fatal.
pub fn init(logs: Logs) {
    if PROVIDERS.get().is_some() {
        return;
    }
    let config = ExportConfig::from_env();
    let (providers, problems) = build_providers(&config);
    let tracer = providers.tracer.tracer("acr-purge");
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    if let Some(meter) = &providers.meter {
        opentelemetry::global::set_meter_provider(meter.clone());
    }
    let default_level = match logs {
        Logs::Text => "warn",
        Logs::Json => "info",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let fmt = match logs {
        Logs::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        Logs::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_span_list(true)
            .with_current_span(false)
            .with_writer(std::io::stdout)
            .with_filter(filter)
            .boxed(),
    };
    let otel_filter = tracing_subscriber::filter::Targets::new()
        .with_default(tracing_subscriber::filter::LevelFilter::INFO)
        .with_target(OUTPUT_TARGET, tracing_subscriber::filter::LevelFilter::OFF);
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(otel_filter);
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init();
    for problem in problems {
        tracing::warn!("telemetry: {problem}");
    }
    let _ = PROVIDERS.set(providers);
}

fn build_providers(config: &ExportConfig) -> (Providers, Vec<String>) {
    let resource = Resource::builder()
        .with_service_name(
            std::env::var(crate::settings::OTEL_SERVICE_NAME)
                .unwrap_or_else(|_| "acr-purge".to_string()),
        )
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("cloud.provider", "azure"),
        ])
        .build();
    let mut problems = Vec::new();
    // Room for every itemised deletion event of a run on one span (the default is 128).
    let max_events = MAX_DELETION_EVENTS as u32 + 16;
    let mut tracer = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_max_events_per_span(max_events);
    let mut meter = SdkMeterProvider::builder().with_resource(resource);
    let mut has_metrics = false;
    if let Some(connection) = &config.app_insights {
        match app_insights(connection, config.entra_client_id.as_deref()) {
            Ok((spans, metrics)) => {
                tracer = tracer.with_span_processor(batch(spans));
                meter = meter.with_reader(periodic(metrics));
                has_metrics = true;
            }
            Err(e) => problems.push(format!("Application Insights exporter: {e:#}")),
        }
    }
    if config.otlp {
        match otlp() {
            Ok((spans, metrics)) => {
                tracer = tracer.with_span_processor(batch(spans));
                meter = meter.with_reader(periodic(metrics));
                has_metrics = true;
            }
            Err(e) => problems.push(format!("OTLP exporter: {e:#}")),
        }
    }
    let providers = Providers {
        tracer: tracer.build(),
        meter: has_metrics.then(|| meter.build()),
    };
    (providers, problems)
}

type AppInsights = opentelemetry_application_insights::Exporter<ExportClient>;

fn app_insights(
    connection: &str,
    entra_client_id: Option<&str>,
) -> anyhow::Result<(AppInsights, AppInsights)> {
    let client = ExportClient::new(entra_client_id)?;
    let make = || {
        AppInsights::new_from_connection_string(connection, client.clone())
            .map_err(|e| anyhow::anyhow!(e))
            .context("invalid APPLICATIONINSIGHTS_CONNECTION_STRING")
    };
    Ok((make()?, make()?))
}

fn otlp() -> anyhow::Result<(
    opentelemetry_otlp::SpanExporter,
    opentelemetry_otlp::MetricExporter,
)> {
    use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
    let client = ExportClient::new(None)?;
    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client.clone())
        .with_protocol(Protocol::HttpBinary)
        .build()?;
    let metrics = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .build()?;
    Ok((spans, metrics))
}

fn batch<E>(
    exporter: E,
) -> opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor<Tokio>
where
    E: opentelemetry_sdk::trace::SpanExporter + 'static,
{
    opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
        exporter, Tokio,
    )
    .build()
}

fn periodic<E>(
    exporter: E,
) -> opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader<E>
where
    E: opentelemetry_sdk::metrics::exporter::PushMetricExporter,
{
    opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader::builder(
        exporter, Tokio,
    )
    .with_interval(Duration::from_secs(60))
    .build()
}

/// Sends everything recorded so far (spans, metrics), waiting at most [`FLUSH_TIMEOUT`].
pub async fn flush() {
    let Some(providers) = PROVIDERS.get() else {
        return;
    };
    let tracer = providers.tracer.clone();
    let meter = providers.meter.clone();
    let work = tokio::task::spawn_blocking(move || {
        if let Err(e) = tracer.force_flush() {
            tracing::debug!("telemetry: flushing spans: {e}");
        }
        if let Some(meter) = meter
            && let Err(e) = meter.force_flush()
        {
            tracing::debug!("telemetry: flushing metrics: {e}");
        }
    });
    if tokio::time::timeout(FLUSH_TIMEOUT, work).await.is_err() {
        tracing::warn!("telemetry: flush took longer than {FLUSH_TIMEOUT:?}");
    }
}

/// Flushes and stops the exporters (at process exit).
pub async fn shutdown() {
    flush().await;
    if let Some(providers) = PROVIDERS.get() {
        let tracer = providers.tracer.clone();
        let meter = providers.meter.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let _ = tracer.shutdown_with_timeout(FLUSH_TIMEOUT);
            if let Some(meter) = meter {
                let _ = meter.shutdown_with_timeout(FLUSH_TIMEOUT);
            }
        })
        .await;
    }
}
