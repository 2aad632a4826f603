//! Azurite's queue service (npm `azurite`, the same package as the blob service), over TLS
//! with Entra (OAuth) sign-in, and a small client of the real Queue Storage REST protocol:
//! create a queue, put, get (dequeue with a visibility timeout), update (visibility), delete
//! and peek messages, and the approximate count.
//!
//! `scripts/test` installs it; `AZURITE_QUEUE` names the `azurite-queue` script (default:
//! `target/azurite/node_modules/.bin/azurite-queue`, else beside `AZURITE_BLOB`).
//!
//! The protocol is the Queue service REST API ("Put Message", "Get Messages", "Update
//! Message", "Delete Message", "Peek Messages", "Get Queue Metadata" on learn.microsoft.com,
//! REST API version 2021-12-02): messages are XML (`QueueMessagesList`), times RFC 1123.

use std::time::Duration;

/// The REST API version sent (Azurite also runs with `--skipApiVersionCheck`).
const API_VERSION: &str = "2021-12-02";

/// A running Azurite queue service.
pub struct QueueService {
    /// `https://localhost:PORT/devstoreaccount1`, the account's queue endpoint.
    pub endpoint: String,
    _cert_file: tempfile::NamedTempFile,
    _key_file: tempfile::NamedTempFile,
    http: reqwest::Client,
    child: tokio::process::Child,
}

/// A message as Get Messages returns it.
#[derive(Debug, Clone)]
pub struct Dequeued {
    /// `MessageId`.
    pub id: String,
    /// `PopReceipt`: needed to update or delete it.
    pub pop_receipt: String,
    /// `DequeueCount`: 1 the first time it is handed out.
    pub dequeue_count: u32,
    /// `InsertionTime`, RFC 1123.
    pub insertion_time: String,
    /// `ExpirationTime`, RFC 1123.
    pub expiration_time: String,
    /// `TimeNextVisible`, RFC 1123.
    pub next_visible: String,
    /// `MessageText`, unescaped.
    pub text: String,
}

fn script() -> String {
    if let Ok(script) = std::env::var("AZURITE_QUEUE") {
        return script;
    }
    if let Ok(blob) = std::env::var("AZURITE_BLOB") {
        return blob.replace("azurite-blob", "azurite-queue");
    }
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/azurite/node_modules/.bin/azurite-queue"
    )
    .to_string()
}

impl QueueService {
    /// Starts Azurite's queue service on a free port and waits until it accepts connections.
    pub async fn start() -> QueueService {
        let script = script();
        assert!(
            std::path::Path::new(&script).exists(),
            "Azurite is not installed at {script}: run scripts/test (npm install azurite@3), or set AZURITE_QUEUE"
        );
        let service = super::azurite::Service::start(&script, "queue").await;
        let pem = std::fs::read(service.cert_file.path()).expect("certificate");
        let http = acr_purge::outbound::http_client_builder(&[pem])
            .expect("http client")
            .build()
            .expect("http client");
        QueueService {
            endpoint: format!("https://localhost:{}/devstoreaccount1", service.port),
            _cert_file: service.cert_file,
            _key_file: service.key_file,
            http,
            child: service.child,
        }
    }

    /// A client of queue `name` (created if missing).
    pub async fn queue(&self, name: &str) -> Queue {
        let queue = Queue {
            url: format!("{}/{name}", self.endpoint),
            http: self.http.clone(),
        };
        let response = queue
            .send(queue.http.put(&queue.url))
            .await
            .expect("Create Queue");
        let status = response.status().as_u16();
        assert!(
            status == 201 || status == 204,
            "Create Queue {name}: {status} {}",
            response.text().await.unwrap_or_default()
        );
        queue
    }
}

impl Drop for QueueService {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// One queue of the account, signed in with a token Azurite's OAuth check accepts.
#[derive(Clone)]
pub struct Queue {
    url: String,
    http: reqwest::Client,
}

/// A failed queue operation: which, and what the service answered.
pub type QueueResult<T> = Result<T, String>;

impl Queue {
    async fn send(&self, request: reqwest::RequestBuilder) -> QueueResult<reqwest::Response> {
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        request
            .bearer_auth(crate::support::identity::storage_token())
            .header("x-ms-version", API_VERSION)
            .header("x-ms-date", date)
            .send()
            .await
            .map_err(|e| format!("{}: {e}", self.url))
    }

    async fn expect(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
        status: u16,
    ) -> QueueResult<reqwest::Response> {
        let response = self.send(request).await?;
        if response.status().as_u16() != status {
            let got = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            return Err(format!("{what} on {}: {got} {body}", self.url));
        }
        Ok(response)
    }

    /// Put Message: `text` as it is (`messageEncoding: none`).
    pub async fn put(&self, text: &str) -> QueueResult<()> {
        let body = format!(
            "<QueueMessage><MessageText>{}</MessageText></QueueMessage>",
            escape(text)
        );
        let request = self
            .http
            .post(format!("{}/messages", self.url))
            .header("Content-Type", "application/xml")
            .body(body);
        self.expect("Put Message", request, 201).await.map(drop)
    }

    /// Get Messages: up to `count` (1..=32) visible messages, each made invisible for
    /// `visibility` (whole seconds, at least 1) and its `DequeueCount` raised.
    pub async fn get(&self, count: usize, visibility: Duration) -> QueueResult<Vec<Dequeued>> {
        let request = self.http.get(format!("{}/messages", self.url)).query(&[
            ("numofmessages", count.clamp(1, 32).to_string()),
            ("visibilitytimeout", seconds(visibility).to_string()),
        ]);
        let response = self.expect("Get Messages", request, 200).await?;
        let text = response.text().await.map_err(|e| e.to_string())?;
        Ok(parse_messages(&text))
    }

    /// Peek Messages: the visible messages' texts, without dequeuing them.
    pub async fn peek(&self) -> QueueResult<Vec<Dequeued>> {
        let request = self
            .http
            .get(format!("{}/messages", self.url))
            .query(&[("peekonly", "true"), ("numofmessages", "32")]);
        let response = self.expect("Peek Messages", request, 200).await?;
        let text = response.text().await.map_err(|e| e.to_string())?;
        Ok(parse_messages(&text))
    }

    /// Update Message: invisible for `visibility` from now (0: visible at once); the new
    /// pop receipt.
    pub async fn update(
        &self,
        message: &Dequeued,
        pop_receipt: &str,
        visibility: Duration,
    ) -> QueueResult<String> {
        let body = format!(
            "<QueueMessage><MessageText>{}</MessageText></QueueMessage>",
            escape(&message.text)
        );
        let request = self
            .http
            .put(format!("{}/messages/{}", self.url, message.id))
            .query(&[
                ("popreceipt", pop_receipt.to_string()),
                ("visibilitytimeout", seconds(visibility).to_string()),
            ])
            .header("Content-Type", "application/xml")
            .body(body);
        let response = self.expect("Update Message", request, 204).await?;
        response
            .headers()
            .get("x-ms-popreceipt")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| "Update Message: no x-ms-popreceipt".to_string())
    }

    /// Delete Message.
    pub async fn delete(&self, id: &str, pop_receipt: &str) -> QueueResult<()> {
        let request = self
            .http
            .delete(format!("{}/messages/{id}", self.url))
            .query(&[("popreceipt", pop_receipt)]);
        self.expect("Delete Message", request, 204).await.map(drop)
    }

    /// Get Queue Metadata's `x-ms-approximate-messages-count`: visible and invisible.
    pub async fn approximate_count(&self) -> QueueResult<usize> {
        let request = self.http.get(&self.url).query(&[("comp", "metadata")]);
        let response = self.expect("Get Queue Metadata", request, 200).await?;
        response
            .headers()
            .get("x-ms-approximate-messages-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| "no x-ms-approximate-messages-count".to_string())
    }
}

fn seconds(duration: Duration) -> u64 {
    duration.as_secs()
}

/// The `QueueMessage` elements of a `QueueMessagesList`.
fn parse_messages(xml: &str) -> Vec<Dequeued> {
    xml.split("<QueueMessage>")
        .skip(1)
        .map(|item| Dequeued {
            id: element(item, "MessageId"),
            pop_receipt: element(item, "PopReceipt"),
            dequeue_count: element(item, "DequeueCount").parse().unwrap_or(0),
            insertion_time: element(item, "InsertionTime"),
            expiration_time: element(item, "ExpirationTime"),
            next_visible: element(item, "TimeNextVisible"),
            text: unescape(&element(item, "MessageText")),
        })
        .collect()
}

fn element(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    xml.split_once(&open)
        .and_then(|(_, rest)| rest.split_once(&close))
        .map(|(value, _)| value.to_string())
        .unwrap_or_default()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// An RFC 1123 time of the queue service as the Functions host passes it in `Metadata`
/// (ISO 8601 with its offset, e.g. `2019-10-09T17:58:31+00:00`).
pub fn iso(rfc1123: &str) -> String {
    chrono::DateTime::parse_from_rfc2822(rfc1123)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string())
        .unwrap_or_else(|_| rfc1123.to_string())
}
