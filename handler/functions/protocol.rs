//! The custom-handler protocol for non-HTTP triggers: the host POSTs
//! `{"Data": {...}, "Metadata": {...}}` to `/{FunctionName}` and expects
//! `{"Outputs": {...}, "Logs": [...], "ReturnValue": ...}`; a non-2xx answer records a failed
//! invocation.
//!
//! The host keeps the `Logs` of an invocation, so they are capped at [`MAX_LOG_LINES`]: the
//! first [`HEAD_LINES`] and the last [`TAIL_LINES`] lines are kept, and from the lines in
//! between those that matter after the fact (summary, failure and warning lines, at most
//! [`KEY_LINES`] of them), with one line saying how many were left out.

use serde::{Deserialize, Serialize};

/// The most log lines returned to the host per invocation (plus one line saying how many
/// were left out).
pub const MAX_LOG_LINES: usize = HEAD_LINES + KEY_LINES + TAIL_LINES;
/// How many of the first lines are always kept.
pub const HEAD_LINES: usize = 200;
/// How many of the last lines are always kept (the summary is there).
pub const TAIL_LINES: usize = 200;
/// How many summary, failure and warning lines are kept from between head and tail.
pub const KEY_LINES: usize = 100;

/// Whether a line says how the run went: a summary, a failure or a warning.
fn is_key_line(line: &str) -> bool {
    ["Number of ", "Failed to ", "Warning: ", "Skipped "]
        .iter()
        .any(|start| line.starts_with(start))
        || line.contains("error")
}

/// `lines` capped at [`MAX_LOG_LINES`]: head, key lines of the middle, a note, tail.
pub fn cap_lines(lines: Vec<String>) -> Vec<String> {
    let mut capped = LogLines::default();
    for line in lines {
        capped.push(line);
    }
    capped.finish()
}

/// A run's log lines as they come, capped as [`cap_lines`] caps them while holding at most
/// [`MAX_LOG_LINES`] of them: a run over a million tags must not keep a million lines for
/// the host.
#[derive(Debug, Default)]
pub struct LogLines {
    head: Vec<String>,
    /// Lines that fell out of the tail: all of them while they fit in [`KEY_LINES`]
    /// (then nothing is left out), afterwards only the first key lines.
    middle: Vec<String>,
    /// Whether `middle` holds only key lines.
    only_key: bool,
    /// Every line after the head: the last [`TAIL_LINES`] of them.
    tail: std::collections::VecDeque<String>,
    /// Lines that fell out of the tail.
    passed: usize,
}

impl LogLines {
    /// Takes one line.
    pub fn push(&mut self, line: String) {
        if self.head.len() < HEAD_LINES {
            self.head.push(line);
            return;
        }
        self.tail.push_back(line);
        if self.tail.len() <= TAIL_LINES {
            return;
        }
        let Some(line) = self.tail.pop_front() else {
            return;
        };
        self.passed += 1;
        if self.passed > KEY_LINES && !self.only_key {
            self.middle.retain(|l| is_key_line(l));
            self.only_key = true;
        }
        if !self.only_key || (is_key_line(&line) && self.middle.len() < KEY_LINES) {
            self.middle.push(line);
        }
    }

    /// The capped lines.
    pub fn finish(self) -> Vec<String> {
        let mut lines = self.head;
        let dropped = self.passed - self.middle.len();
        lines.extend(self.middle);
        if dropped > 0 {
            lines.push(format!(
                "… {dropped} more lines left out here (the report and the handler's logs have everything)"
            ));
        }
        lines.extend(self.tail);
        lines
    }
}

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
    /// Output bindings (the fleet queue's messages, under `purges`).
    pub outputs: serde_json::Map<String, serde_json::Value>,
    /// Lines the host logs under the function.
    pub logs: Vec<String>,
    /// The run report.
    pub return_value: Option<T>,
}

impl<T: Serialize> InvocationResult<T> {
    /// An answer with `logs` (capped by [`cap_lines`]) and `value`.
    pub fn new(logs: Vec<String>, value: Option<T>) -> Self {
        InvocationResult {
            outputs: serde_json::Map::new(),
            logs: cap_lines(logs),
            return_value: value,
        }
    }

    /// The same answer with these output bindings.
    pub fn with_outputs(mut self, outputs: serde_json::Map<String, serde_json::Value>) -> Self {
        self.outputs = outputs;
        self
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
        assert_eq!(result.logs.len(), HEAD_LINES + 1 + TAIL_LINES);
        let json = serde_json::to_value(&result).unwrap();
        assert!(json["Outputs"].is_object());
        assert!(json["ReturnValue"].is_null());
        let short = InvocationResult::<()>::new(vec!["x".into(); MAX_LOG_LINES], None);
        assert_eq!(short.logs.len(), MAX_LOG_LINES);
    }

    #[test]
    fn keeps_the_head_the_tail_and_the_failures_in_between() {
        let mut lines: Vec<String> = vec!["PurgeTimer occurrence 2026-11-21".to_string()];
        for i in 0..5_000 {
            lines.push(format!("Deleted r/app:v{i}"));
            if i == 2_500 {
                lines.push("Failed to delete r/app:v2500, error: 500".to_string());
            }
        }
        lines.push("Number of deleted tags: 4999".to_string());
        lines.push("Failed to complete purge: listing tools failed".to_string());
        let kept = cap_lines(lines);
        assert!(kept.len() <= MAX_LOG_LINES + 1);
        assert_eq!(kept[0], "PurgeTimer occurrence 2026-11-21");
        assert!(kept.contains(&"Failed to delete r/app:v2500, error: 500".to_string()));
        assert!(kept.iter().any(|l| l.contains("more lines left out")));
        let end = &kept[kept.len() - 2..];
        assert_eq!(end[0], "Number of deleted tags: 4999");
        assert_eq!(end[1], "Failed to complete purge: listing tools failed");
        // A flood of failures keeps at most KEY_LINES of them from the middle.
        let flood: Vec<String> = (0..10_000)
            .map(|i| format!("Failed to delete {i}"))
            .collect();
        assert_eq!(cap_lines(flood).len(), MAX_LOG_LINES + 1);
    }
}
