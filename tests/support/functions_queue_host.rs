//! Playing the Azure Functions host for `PurgeQueue`'s queue trigger, against Azurite's
//! real queue service: one [`Instance`] is one Functions instance (its host's queue
//! listener and the `handler` process it started), and several instances consume one queue.
//!
//! What the host does, and so what an instance does here (Azure WebJobs Storage Queues
//! extension, `QueueListener` and `QueueProcessor`; "Azure Queue storage trigger" and
//! "host.json settings" on learn.microsoft.com):
//! - it polls the queue, backing off from 100 ms to `maxPollingInterval` while it is empty;
//!   when the messages it is processing fall to `newBatchThreshold`, it gets up to
//!   `batchSize` messages with Get Messages, each invisible for the listener's own
//!   visibility timeout (10 minutes on the host, [`QueueHost::lease`] here), renewed at half
//!   of it with Update Message while the invocation runs;
//! - a message dequeued more than `maxDequeueCount` times (its processing crashed every
//!   time) goes to the poison queue without an invocation;
//! - each message is one invocation: `POST /PurgeQueue` with the custom handler's request
//!   payload, `{"Data": {"message": <the message text>}, "Metadata": {"DequeueCount",
//!   "ExpirationTime", "Id", "InsertionTime", "NextVisibleTime", "PopReceipt", "sys"}}`: the
//!   trigger's binding data less `QueueTrigger` (keys ending in "trigger" are dropped), times
//!   as ISO 8601 with their offset (learn "Azure Functions custom handlers", *Request
//!   payload*, its queue example; the Functions host's `ScriptInvocationContextExtensions`
//!   (Azure/azure-functions-host) for `sys` and the filtering);
//! - a 2xx answer: each element of `Outputs.purges` (the queue output binding on the same
//!   queue) is written as a new message (an object as its JSON text: `messageEncoding:
//!   none`), then the message is deleted;
//! - anything else (a non-2xx answer, a connection error because the handler died): the
//!   message is a failed invocation. Dequeued `maxDequeueCount` times, it is copied to
//!   `<queue>-poison` and deleted; before that it is released with Update Message, invisible
//!   for `visibilityTimeout`, and comes back with its `DequeueCount` raised.
//!
//! The settings are read from the app's `host.json` (`extensions.queues`); a test may
//! shorten the two waits, `visibilityTimeout` and the listener's lease, to keep its wall time.

use crate::support::host::Handler;
use crate::support::queue_service::{Dequeued, Queue, iso};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The queue trigger's function and binding names (`PurgeQueue/function.json`).
const FUNCTION: &str = "PurgeQueue";
const TRIGGER_BINDING: &str = "message";
const OUTPUT_BINDING: &str = "purges";
/// The host's shortest poll interval (`QueuePollingIntervals.Minimum`).
const MIN_POLL: Duration = Duration::from_millis(100);

/// `host.json`'s `extensions.queues`.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// Messages one instance gets at once.
    pub batch_size: usize,
    /// In-flight messages at or below which it gets another batch.
    pub new_batch_threshold: usize,
    /// Deliveries before the poison queue.
    pub max_dequeue_count: u32,
    /// How long a failed message stays invisible before it is retried.
    pub visibility_timeout: Duration,
    /// The longest wait between polls of an empty queue.
    pub max_polling_interval: Duration,
}

impl QueueSettings {
    /// The app's `host.json` (the repository's).
    pub fn from_host_json() -> QueueSettings {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/host.json");
        let text = std::fs::read_to_string(path).expect("host.json");
        let host: serde_json::Value = serde_json::from_str(&text).expect("host.json is JSON");
        let queues = &host["extensions"]["queues"];
        assert_eq!(
            queues["messageEncoding"], "none",
            "the test writes plain text messages"
        );
        let number = |name: &str| {
            queues[name]
                .as_u64()
                .unwrap_or_else(|| panic!("host.json extensions.queues.{name}"))
        };
        let span = |name: &str| {
            let text = queues[name]
                .as_str()
                .unwrap_or_else(|| panic!("host.json extensions.queues.{name}"));
            let parts: Vec<u64> = text.split(':').filter_map(|p| p.parse().ok()).collect();
            assert_eq!(parts.len(), 3, "{name}: hh:mm:ss, got {text}");
            Duration::from_secs(parts[0] * 3600 + parts[1] * 60 + parts[2])
        };
        QueueSettings {
            batch_size: number("batchSize") as usize,
            new_batch_threshold: number("newBatchThreshold") as usize,
            max_dequeue_count: number("maxDequeueCount") as u32,
            visibility_timeout: span("visibilityTimeout"),
            max_polling_interval: span("maxPollingInterval"),
        }
    }
}

/// One invocation of `PurgeQueue`, as the host saw it.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The instance (index) that ran it.
    pub instance: usize,
    /// The message's id.
    pub id: String,
    /// Its `DequeueCount`.
    pub dequeue_count: u32,
    /// The message text.
    pub text: String,
    /// When the POST was sent.
    pub started: Instant,
    /// When the answer came (`None`: not yet, or never: the instance died).
    pub ended: Option<Instant>,
    /// The answer's status (0: no answer, the connection failed).
    pub status: u16,
    /// The answer's body.
    pub json: serde_json::Value,
    /// The messages its `Outputs.purges` wrote, and when.
    pub outputs: Vec<(String, Instant)>,
    /// Its instance was killed while it ran: no answer, nothing completed.
    pub died: bool,
}

impl Invocation {
    /// The registry its message names.
    pub fn registry(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.text)
            .ok()
            .and_then(|m| m["registry"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Whether the handler found another run holding the registry (and so purged nothing).
    pub fn skipped_busy(&self) -> bool {
        self.json["ReturnValue"]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("skipped:"))
    }
}

/// The queue trigger of one function app: its queue, its settings, and what its instances
/// did.
#[derive(Clone)]
pub struct QueueHost {
    /// The trigger's queue (and its output binding's).
    pub queue: Queue,
    /// `<queue>-poison`.
    pub poison: Queue,
    /// `host.json`'s queue settings (as the test may have shortened them).
    pub settings: QueueSettings,
    /// The listener's visibility timeout for a dequeued message, renewed at half of it
    /// while the invocation runs (10 minutes on the host).
    pub lease: Duration,
    /// Every invocation, in the order they started.
    pub log: Arc<Mutex<Vec<Invocation>>>,
}

/// A Functions instance: a queue listener and its `handler` process.
pub struct Instance {
    /// Its index in the app.
    pub index: usize,
    /// Its handler process.
    pub handler: Option<Handler>,
    listener: tokio::task::JoinHandle<()>,
    log: Arc<Mutex<Vec<Invocation>>>,
}

impl Instance {
    /// The instance dies at once (`kill -9`): its listener stops with nothing released or
    /// deleted, its handler process is killed; what it had dequeued comes back when the
    /// listener's visibility timeout ([`QueueHost::lease`]) runs out.
    pub async fn kill(&mut self) {
        self.listener.abort();
        if let Some(handler) = self.handler.take() {
            handler.kill().await;
        }
        if let Ok(mut log) = self.log.lock() {
            for entry in log.iter_mut() {
                if entry.instance == self.index && entry.ended.is_none() {
                    entry.died = true;
                    entry.ended = Some(Instant::now());
                }
            }
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl QueueHost {
    /// The trigger on `queue`, with `host.json`'s settings.
    pub fn new(queue: Queue, poison: Queue, settings: QueueSettings, lease: Duration) -> Self {
        QueueHost {
            queue,
            poison,
            settings,
            lease,
            log: Arc::default(),
        }
    }

    /// Every invocation so far.
    pub fn invocations(&self) -> Vec<Invocation> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Starts instance `index`: its listener on the queue, invoking `handler`.
    pub fn instance(&self, index: usize, handler: Handler) -> Instance {
        let host = self.clone();
        let url = handler.url.clone();
        let listener = tokio::spawn(async move { host.listen(index, url).await });
        Instance {
            index,
            handler: Some(handler),
            listener,
            log: self.log.clone(),
        }
    }

    /// Writes an invocation's `Outputs.purges` to the queue, as the host flushes the output
    /// binding; returns the texts written.
    pub async fn write_outputs(&self, answer: &serde_json::Value) -> Vec<String> {
        let mut written = Vec::new();
        let Some(outputs) = answer["Outputs"][OUTPUT_BINDING].as_array() else {
            return written;
        };
        for output in outputs {
            let text = match output {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            self.queue.put(&text).await.expect("Put Message (output)");
            written.push(text);
        }
        written
    }

    /// Waits until the queue holds no message, visible or not, and no invocation is under
    /// way; panics after `limit`.
    pub async fn drained(&self, limit: Duration) {
        let started = Instant::now();
        loop {
            let count = self.queue.approximate_count().await.expect("queue count");
            let running = self.invocations().iter().any(|i| i.ended.is_none());
            if count == 0 && !running {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "the queue still holds {count} messages after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The listener of one instance.
    async fn listen(self, index: usize, url: String) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
            .expect("http client");
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // Dropped (aborted) with the listener: the instance's invocations die with it.
        let mut invocations = tokio::task::JoinSet::new();
        let mut wait = MIN_POLL;
        loop {
            while invocations.try_join_next().is_some() {}
            let busy = in_flight.load(std::sync::atomic::Ordering::SeqCst);
            if busy > self.settings.new_batch_threshold {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            let messages = match self.queue.get(self.settings.batch_size, self.lease).await {
                Ok(messages) => messages,
                Err(e) => {
                    eprintln!("instance {index}: {e}");
                    Vec::new()
                }
            };
            if messages.is_empty() {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(self.settings.max_polling_interval);
                continue;
            }
            // Messages found: the next poll comes after the shortest interval (and once the
            // batch has fallen to newBatchThreshold).
            wait = MIN_POLL;
            for message in messages {
                in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let host = self.clone();
                let http = http.clone();
                let url = url.clone();
                let in_flight = in_flight.clone();
                invocations.spawn(async move {
                    host.process(index, &http, &url, message).await;
                    in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
            tokio::time::sleep(MIN_POLL).await;
        }
    }

    /// One message: poison check, invocation with its visibility renewed, then complete.
    async fn process(&self, index: usize, http: &reqwest::Client, url: &str, message: Dequeued) {
        if message.dequeue_count > self.settings.max_dequeue_count {
            self.to_poison(&message, &message.pop_receipt).await;
            return;
        }
        let receipt = Arc::new(Mutex::new(message.pop_receipt.clone()));
        let renewal = {
            let queue = self.queue.clone();
            let message = message.clone();
            let receipt = receipt.clone();
            let every = self.lease / 2;
            let lease = self.lease;
            AbortOnDrop(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let current = receipt.lock().map(|r| r.clone()).unwrap_or_default();
                    if let Ok(next) = queue.update(&message, &current, lease).await
                        && let Ok(mut r) = receipt.lock()
                    {
                        *r = next;
                    }
                }
            }))
        };
        let slot = self.begin(index, &message);
        let answer = self.invoke(http, url, &message).await;
        drop(renewal);
        let receipt = receipt.lock().map(|r| r.clone()).unwrap_or_default();
        let (status, json) = answer.unwrap_or((0, serde_json::Value::Null));
        let mut outputs = Vec::new();
        if (200..300).contains(&status) {
            for text in self.write_outputs(&json).await {
                outputs.push((text, Instant::now()));
            }
            self.queue
                .delete(&message.id, &receipt)
                .await
                .expect("Delete Message");
        } else if message.dequeue_count >= self.settings.max_dequeue_count {
            self.to_poison(&message, &receipt).await;
        } else {
            self.queue
                .update(&message, &receipt, self.settings.visibility_timeout)
                .await
                .expect("Update Message (release)");
        }
        if let Ok(mut log) = self.log.lock()
            && let Some(entry) = log.get_mut(slot)
            && !entry.died
        {
            entry.ended = Some(Instant::now());
            entry.status = status;
            entry.json = json;
            entry.outputs = outputs;
        }
    }

    fn begin(&self, instance: usize, message: &Dequeued) -> usize {
        let mut log = self.log.lock().expect("invocation log");
        log.push(Invocation {
            instance,
            id: message.id.clone(),
            dequeue_count: message.dequeue_count,
            text: message.text.clone(),
            started: Instant::now(),
            ended: None,
            status: 0,
            json: serde_json::Value::Null,
            outputs: Vec::new(),
            died: false,
        });
        log.len() - 1
    }

    /// `POST /PurgeQueue` with the host's payload; `None` when no answer came.
    async fn invoke(
        &self,
        http: &reqwest::Client,
        url: &str,
        message: &Dequeued,
    ) -> Option<(u16, serde_json::Value)> {
        let payload = serde_json::json!({
            "Data": {TRIGGER_BINDING: message.text},
            "Metadata": {
                "DequeueCount": message.dequeue_count,
                "ExpirationTime": iso(&message.expiration_time),
                "Id": message.id,
                "InsertionTime": iso(&message.insertion_time),
                "NextVisibleTime": iso(&message.next_visible),
                "PopReceipt": message.pop_receipt,
                "sys": {
                    "MethodName": FUNCTION,
                    "UtcNow": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "RandGuid": uuid::Uuid::new_v4().to_string(),
                }
            }
        });
        let response = http
            .post(format!("{url}/{FUNCTION}"))
            .header(
                "X-Azure-Functions-InvocationId",
                uuid::Uuid::new_v4().to_string(),
            )
            .header("User-Agent", "Azure-Functions-Host/4.1040.0")
            .json(&payload)
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Some((
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        ))
    }

    async fn to_poison(&self, message: &Dequeued, receipt: &str) {
        self.poison
            .put(&message.text)
            .await
            .expect("Put Message (poison)");
        self.queue
            .delete(&message.id, receipt)
            .await
            .expect("Delete Message (poison)");
    }
}

/// A task aborted when its handle is dropped (the renewal of a message dies with its
/// invocation, and so with its instance).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
