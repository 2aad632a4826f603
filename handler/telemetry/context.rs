//! Who runs a purge, for its root span and its metrics' dimensions.

/// What started the run. One value gives both names a run is known by: the trigger its
/// record in the run store keeps ([`Trigger::as_str`], also the span's `purge.trigger`) and
/// the OpenTelemetry `faas.trigger` class of its span and metrics ([`Trigger::faas`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `handler purge` / `handler apply`.
    Cli,
    /// `PurgeTimer`.
    Timer,
    /// `PurgeHttp` (the release webhook).
    Webhook,
    /// `PurgeQueue` (one registry's message of the fleet queue).
    Queue,
}

impl Trigger {
    /// The name recorded in the run store and on the span (`purge.trigger`).
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Cli => "cli",
            Trigger::Timer => "timer",
            Trigger::Webhook => "webhook",
            Trigger::Queue => "queue",
        }
    }

    /// The OpenTelemetry `faas.trigger` value (semantic conventions: `http`, `pubsub`,
    /// `timer`, `datasource`, `other`).
    pub fn faas(self) -> &'static str {
        match self {
            Trigger::Cli => "other",
            Trigger::Timer => "timer",
            Trigger::Webhook => "http",
            Trigger::Queue => "pubsub",
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

#[cfg(test)]
mod tests {
    use super::Trigger;

    #[test]
    fn each_trigger_has_its_own_record_name_and_a_faas_class() {
        let all = [
            Trigger::Cli,
            Trigger::Timer,
            Trigger::Webhook,
            Trigger::Queue,
        ];
        let names: std::collections::BTreeSet<_> = all.iter().map(|t| t.as_str()).collect();
        assert_eq!(names.len(), all.len());
        let faas = ["http", "pubsub", "timer", "datasource", "other"];
        assert!(all.iter().all(|t| faas.contains(&t.faas())));
        assert_eq!(Trigger::Queue.faas(), "pubsub");
        assert_eq!(Trigger::Webhook.faas(), "http");
    }
}
