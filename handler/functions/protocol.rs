//! The custom-handler protocol for non-HTTP triggers: the host POSTs
//! `{"Data": {...}, "Metadata": {...}}` to `/{FunctionName}` and expects
//! `{"Outputs": {...}, "Logs": [...], "ReturnValue": ...}`; a non-2xx answer records a failed
//! invocation.

use serde::{Deserialize, Serialize};

/// The most log lines returned to the host per invocation.
pub const MAX_LOG_LINES: usize = 500;

/// The host's request for a timer invocation.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TimerInvocation {
    /// Binding data; the timer binding is named `timer`.
    #[serde(default)]
    pub data: TimerData,
}

/// `Data` of a timer invocation.
#[derive(Debug, Default, Deserialize)]
pub struct TimerData {
    /// The timer binding's value.
    #[serde(default)]
    pub timer: Option<TimerInfo>,
}

/// The timer binding's value (`TimerInfo`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TimerInfo {
    /// Whether this run fires later than scheduled (missed while the app was down).
    #[serde(default)]
    pub is_past_due: bool,
    /// Last and next occurrences; null when `useMonitor` is off or not yet persisted.
    #[serde(default)]
    pub schedule_status: Option<ScheduleStatus>,
}

/// `ScheduleStatus` of a timer.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduleStatus {
    /// The previous occurrence.
    #[serde(default)]
    pub last: Option<String>,
    /// The occurrence now being run.
    #[serde(default)]
    pub next: Option<String>,
}

/// The handler's answer to the host.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvocationResult<T: Serialize> {
    /// Output bindings (none).
    pub outputs: serde_json::Map<String, serde_json::Value>,
    /// Lines the host logs under the function.
    pub logs: Vec<String>,
    /// The run report.
    pub return_value: Option<T>,
}

impl<T: Serialize> InvocationResult<T> {
    /// An answer with `logs` (capped at [`MAX_LOG_LINES`]) and `value`.
    pub fn new(mut logs: Vec<String>, value: Option<T>) -> Self {
        if logs.len() > MAX_LOG_LINES {
            let dropped = logs.len() - MAX_LOG_LINES;
            logs.truncate(MAX_LOG_LINES);
            logs.push(format!("… {dropped} more lines (see the report)"));
        }
        InvocationResult {
            outputs: serde_json::Map::new(),
            logs,
            return_value: value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_timer_payloads_with_and_without_status() {
        let with: TimerInvocation = serde_json::from_str(
            r#"{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":"2026-11-20T03:00:00+00:00","Next":"2026-11-21T03:00:00+00:00","LastUpdated":"2026-11-20T03:00:00+00:00"},"IsPastDue":true}},"Metadata":{"sys":{"MethodName":"PurgeTimer","UtcNow":"2026-11-21T03:00:00Z","RandGuid":"x"}}}"#,
        )
        .unwrap();
        let timer = with.data.timer.unwrap();
        assert!(timer.is_past_due);
        assert_eq!(
            timer.schedule_status.unwrap().next.as_deref(),
            Some("2026-11-21T03:00:00+00:00")
        );
        let without: TimerInvocation = serde_json::from_str(
            r#"{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{}}"#,
        )
        .unwrap();
        assert!(without.data.timer.unwrap().schedule_status.is_none());
    }

    #[test]
    fn caps_logs_and_always_answers_an_object() {
        let result = InvocationResult::<()>::new(vec!["x".into(); 600], None);
        assert_eq!(result.logs.len(), MAX_LOG_LINES + 1);
        let json = serde_json::to_value(&result).unwrap();
        assert!(json["Outputs"].is_object());
        assert!(json["ReturnValue"].is_null());
    }
}
