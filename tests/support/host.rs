//! Playing the Azure Functions host: start the `handler` binary as the host does (its port
//! in `FUNCTIONS_CUSTOMHANDLER_PORT`, the app settings in the environment), wait for
//! readiness by polling `GET /` every 25 ms, then send the host's requests.

use crate::support::process::{HandlerCommand, Running};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A running handler process.
pub struct Handler {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    child: Running,
    stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    http: reqwest::Client,
    /// How long readiness took.
    pub ready_after: Duration,
    /// Its own run store, unless the settings name one (`PURGE_STATE_DIR`).
    _state: tempfile::TempDir,
}

/// An answer: status and JSON body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body as JSON (`Null` when not JSON).
    pub json: serde_json::Value,
}

impl Handler {
    /// Starts `handler` with these app settings and waits until it answers.
    pub async fn start(settings: &[(&str, &str)]) -> Handler {
        let port = free_port();
        let root = std::env::temp_dir();
        let state = tempfile::tempdir().expect("state dir");
        let mut child = HandlerCommand::new()
            .env_remove(&[
                "IDENTITY_ENDPOINT",
                "IDENTITY_HEADER",
                "AZURE_CLIENT_ID",
                "SSL_CERT_FILE",
            ])
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", "test-worker")
            .env("FUNCTIONS_APP_ROOT_PATH", root)
            .env("PURGE_STATE_DIR", state.path())
            .envs(settings.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
        if let Some(pipe) = child.take_stdout() {
            let lines = stdout.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let mut reader = tokio::io::BufReader::new(pipe).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if let Ok(mut all) = lines.lock() {
                        all.push(line);
                    }
                }
            });
        }
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if http.get(format!("{url}/")).send().await.is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "handler not ready after 20 s"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Handler {
            url,
            child,
            stdout,
            http,
            ready_after: started.elapsed(),
            _state: state,
        }
    }

    /// The lines the handler wrote on standard output so far (its JSON logs).
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// `POST /PurgeTimer` with the host's timer payload.
    pub async fn timer(&self, schedule_status: bool, past_due: bool) -> Answer {
        let status = if schedule_status {
            serde_json::json!({"Last": "2026-11-20T03:00:00+00:00", "Next": "2026-11-21T03:00:00+00:00", "LastUpdated": "2026-11-20T03:00:00+00:00"})
        } else {
            serde_json::Value::Null
        };
        let body = serde_json::json!({
            "Data": {"timer": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": status, "IsPastDue": past_due}},
            "Metadata": {"sys": {"MethodName": "PurgeTimer", "UtcNow": "2026-11-21T03:00:00Z", "RandGuid": "0f8fad5b-d9cb-469f-a165-70867728950e"}}
        });
        let response = self
            .http
            .post(format!("{}/PurgeTimer", self.url))
            .header(
                "X-Azure-Functions-InvocationId",
                "5b0f1c1e-0000-4000-8000-000000000001",
            )
            .header("User-Agent", "Azure-Functions-Host/4.1040.0")
            .json(&body)
            .send()
            .await
            .expect("timer request");
        answer(response).await
    }

    /// A forwarded request to `/api/purge` (or another path), raw body and headers.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        answer(request.send().await.expect("request")).await
    }

    /// `kill -9`: SIGKILL, no clean stop, and waits for the process to be gone.
    pub async fn kill(mut self) {
        self.child.kill().await;
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit code.
    pub async fn terminate(mut self) -> Option<i32> {
        self.child.terminate(Duration::from_secs(90)).await?.code()
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    Answer {
        status,
        json: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
