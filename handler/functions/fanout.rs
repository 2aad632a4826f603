//! Fan-out over the fleet queue: `PurgeTimer` returns one message per registry due through
//! its queue output binding, `PurgeQueue` (queue trigger) purges the one registry its
//! message names, and a run that stops before its deadline returns its own continuation
//! through the same binding, so it goes on at once on whichever instance dequeues it.
//!
//! The handler never talks to the queue: the Functions host reads and writes it (custom
//! handlers return `Outputs`, learn the message's `DequeueCount` from `Metadata`, and fail
//! an invocation by answering non-2xx, after which the host makes the message visible
//! again after `visibilityTimeout` and moves it to `acr-purge-fleet-poison` after
//! `maxDequeueCount` attempts; see host.json).

use super::config::Config;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The fleet queue (`PurgeQueue/function.json`, `PurgeTimer/function.json`, infra).
pub const QUEUE_NAME: &str = "acr-purge-fleet";
/// Where the host moves a message after `maxDequeueCount` failed attempts.
pub const POISON_QUEUE_NAME: &str = "acr-purge-fleet-poison";
/// The name of the queue output binding of `PurgeTimer` and `PurgeQueue`.
pub const OUTPUT_BINDING: &str = "purges";
/// The name of `PurgeQueue`'s trigger binding (its message in `Data`).
pub const TRIGGER_BINDING: &str = "message";

/// One message of the fleet queue: purge this registry (with its policy in the fleet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Message {
    /// The registry's login server.
    pub registry: String,
    /// Whether it continues a run that stopped before its deadline.
    #[serde(default)]
    pub continuation: bool,
}

/// The host's request for a queue-trigger invocation.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueueInvocation {
    /// Binding data: the message under [`TRIGGER_BINDING`].
    #[serde(default)]
    pub data: Map<String, Value>,
    /// Trigger metadata: `DequeueCount`, `Id`, `InsertionTime`, `NextVisibleTime`, …
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

impl QueueInvocation {
    /// The message, as JSON text (what the host passes for a string message) or an object.
    pub fn message(&self) -> Result<Message, String> {
        let value = self
            .data
            .get(TRIGGER_BINDING)
            .ok_or_else(|| format!("no Data.{TRIGGER_BINDING} in the invocation"))?;
        let parsed = match value {
            Value::String(text) => serde_json::from_str(text),
            other => serde_json::from_value(other.clone()),
        };
        parsed.map_err(|e| format!("not a fleet message ({{\"registry\": …}}): {e}"))
    }

    /// How many times the queue has handed this message out (1 the first time).
    pub fn dequeue_count(&self) -> u64 {
        match self.metadata.get("DequeueCount") {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(1),
            Some(Value::String(s)) => s.trim().parse().unwrap_or(1),
            _ => 1,
        }
    }

    /// The message id, for the logs.
    pub fn id(&self) -> Option<&str> {
        self.metadata.get("Id").and_then(Value::as_str)
    }
}

/// The messages of one timer occurrence: one per registry of the fleet, in its order.
pub fn due(config: &Config) -> Vec<Message> {
    config
        .fleet
        .iter()
        .map(|m| Message {
            registry: m.registry.host().to_string(),
            continuation: false,
        })
        .collect()
}

/// `Outputs` writing `messages` to the fleet queue (none: no output).
pub fn outputs(messages: &[Message]) -> Map<String, Value> {
    let mut outputs = Map::new();
    if !messages.is_empty() {
        // Objects, not strings: the host base64-decodes string outputs that happen to be
        // valid base64 (azure-functions-host, `GetBindingValue`).
        let values = messages.iter().filter_map(|m| serde_json::to_value(m).ok());
        outputs.insert(OUTPUT_BINDING.to_string(), Value::Array(values.collect()));
    }
    outputs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation(text: &str) -> QueueInvocation {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn reads_the_message_as_text_or_object_and_its_dequeue_count() {
        let text = invocation(
            r#"{"Data":{"message":"{\"registry\":\"a.azurecr.io\"}"},"Metadata":{"DequeueCount":2,"Id":"6f1f","sys":{"MethodName":"PurgeQueue"}}}"#,
        );
        assert_eq!(text.message().unwrap().registry, "a.azurecr.io");
        assert!(!text.message().unwrap().continuation);
        assert_eq!(text.dequeue_count(), 2);
        assert_eq!(text.id(), Some("6f1f"));
        let object = invocation(
            r#"{"Data":{"message":{"registry":"b","continuation":true}},"Metadata":{"DequeueCount":"3"}}"#,
        );
        assert!(object.message().unwrap().continuation);
        assert_eq!(object.dequeue_count(), 3);
    }

    #[test]
    fn refuses_what_is_not_a_fleet_message() {
        for data in [
            r#"{}"#,
            r#"{"message":"purge everything"}"#,
            r#"{"message":{"registry":"a","extra":1}}"#,
            r#"{"message":{"continuation":true}}"#,
        ] {
            let inv = invocation(&format!(r#"{{"Data":{data}}}"#));
            assert!(inv.message().is_err(), "{data}");
        }
    }

    #[test]
    fn outputs_objects_under_the_binding_and_nothing_for_none() {
        let out = outputs(&[Message {
            registry: "a".into(),
            continuation: true,
        }]);
        assert_eq!(
            Value::Object(out),
            serde_json::json!({"purges": [{"registry": "a", "continuation": true}]})
        );
        assert!(outputs(&[]).is_empty());
    }
}
