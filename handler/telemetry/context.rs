//! Who runs a purge, for its root span and its metrics' dimensions.

/// What started the run (`faas.trigger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `PurgeTimer`.
    Timer,
    /// `PurgeHttp`.
    Http,
    /// The command line.
    Other,
}

impl Trigger {
    /// The `faas.trigger` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Timer => "timer",
            Trigger::Http => "http",
            Trigger::Other => "other",
        }
    }
}

/// Who runs the purge, for the root span.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// What started it.
    pub trigger: Trigger,
    /// `X-Azure-Functions-InvocationId`.
    pub invocation_id: Option<String>,
    /// The function (`PurgeTimer`, `PurgeHttp`).
    pub function_name: Option<String>,
    /// The registry's login server.
    pub registry: String,
    /// Whether it is a dry run.
    pub dry_run: bool,
    /// An incoming W3C trace context (`traceparent`), to continue the caller's trace.
    pub parent: Option<opentelemetry::Context>,
    /// The id the caller knows the run by (the webhook's `runId`), when it has one.
    pub run_id: Option<String>,
}
