//! A real OCI registry for tests: Debian's `docker-registry` (CNCF distribution 2.8.2) run
//! as a child process on a free port of 127.0.0.1, with its storage in a temporary
//! directory. The process is killed when the [`RegistryServer`] is dropped.
//!
//! The binary is `docker-registry` from `PATH`, or `$DOCKER_REGISTRY_BIN`. It is required,
//! not optional: CI installs it with
//! `apt-get install -y --no-install-recommends docker-registry`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the registry may take to print its port and answer `/v2/`.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How to configure a [`RegistryServer`].
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// `storage.delete.enabled`: when false, manifest DELETEs get 405 UNSUPPORTED.
    pub delete_enabled: bool,
    /// Protect the registry with htpasswd (HTTP Basic) for this user and password.
    pub htpasswd: Option<(String, String)>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            delete_enabled: true,
            htpasswd: None,
        }
    }
}

impl RegistryOptions {
    /// Deletion disabled (`storage.delete.enabled: false`).
    pub fn delete_disabled() -> Self {
        RegistryOptions {
            delete_enabled: false,
            ..Default::default()
        }
    }

    /// htpasswd-protected, with one user.
    pub fn with_user(user: &str, password: &str) -> Self {
        RegistryOptions {
            htpasswd: Some((user.to_string(), password.to_string())),
            ..Default::default()
        }
    }
}

/// A running `docker-registry serve` process.
pub struct RegistryServer {
    child: Child,
    port: u16,
    user: Option<(String, String)>,
    log: Arc<Mutex<String>>,
    access_log: Arc<Mutex<String>>,
    // Removed after the process is killed (fields drop after `Drop::drop`).
    _dir: tempfile::TempDir,
}

impl RegistryServer {
    /// An anonymous registry with deletion enabled.
    pub fn start() -> RegistryServer {
        RegistryServer::start_with(RegistryOptions::default())
    }

    /// A registry configured by `options`; panics (with the registry's log) if it does not
    /// come up.
    pub fn start_with(options: RegistryOptions) -> RegistryServer {
        let dir = tempfile::Builder::new()
            .prefix("acr-purge-registry-")
            .tempdir()
            .expect("creating a temporary directory for the registry");
        let mut config = serde_json::json!({
            "version": "0.1",
            "log": {"level": "info", "formatter": "text"},
            "storage": {
                "filesystem": {"rootdirectory": dir.path().join("data")},
                "delete": {"enabled": options.delete_enabled},
                "maintenance": {"uploadpurging": {"enabled": false}},
            },
            "http": {"addr": "127.0.0.1:0", "secret": "acr-purge-tests"},
        });
        if let Some((user, password)) = &options.htpasswd {
            let path = dir.path().join("htpasswd");
            // Cost 4 (bcrypt's minimum): the registry checks the hash on every request.
            let hash = bcrypt::hash(password, 4).expect("hashing the htpasswd password");
            std::fs::write(&path, format!("{user}:{hash}\n")).expect("writing the htpasswd file");
            config["auth"] = serde_json::json!({
                "htpasswd": {"realm": "acr-purge-tests", "path": path}
            });
        }
        // JSON is YAML, and serde_json quotes the paths correctly.
        let config_path = dir.path().join("config.yml");
        let text = serde_json::to_string_pretty(&config).expect("encoding the registry config");
        std::fs::write(&config_path, text).expect("writing the registry config");

        let binary = registry_binary();
        let mut command = Command::new(&binary);
        command
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // REGISTRY_* variables override the config file; keep the test's config authoritative.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("REGISTRY_") {
                command.env_remove(name);
            }
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
                "cannot run {}: not installed. These tests need a real OCI registry: install \
                 it with `sudo apt-get install -y --no-install-recommends docker-registry` \
                 (Debian/Ubuntu), or point DOCKER_REGISTRY_BIN at a distribution 2.x binary",
                binary.display()
            ),
            Err(error) => panic!("cannot start {}: {error}", binary.display()),
        };

        // The application log goes to stderr, the access log (one line per request) to stdout.
        let log = Arc::new(Mutex::new(String::new()));
        let access_log = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("the registry's stderr is piped");
        let stdout = child.stdout.take().expect("the registry's stdout is piped");
        spawn_log_reader(stderr, Arc::clone(&log), Some(port_tx));
        spawn_log_reader(stdout, Arc::clone(&access_log), None);

        let mut server = RegistryServer {
            child,
            port: 0,
            user: options.htpasswd.clone(),
            log,
            access_log,
            _dir: dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        server.port = match port_rx.recv_timeout(START_TIMEOUT) {
            Ok(port) => port,
            Err(error) => server.fail(&format!("no `listening on` line in its log ({error})")),
        };
        server.wait_until_ready(deadline);
        server
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, as the client prints the registry.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT` (no trailing slash), for `-r` and URLs.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The htpasswd user and password, when the registry has one.
    pub fn user(&self) -> Option<(&str, &str)> {
        self.user.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The registry's application log so far (its stderr).
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Every request the registry has answered, in order, from its access log (stdout).
    /// The access log trails the responses slightly, so this first waits until it has been
    /// quiet for 150 ms (at most 3 s).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        let read = || {
            self.access_log
                .lock()
                .map(|l| l.clone())
                .unwrap_or_default()
        };
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut text = read();
        loop {
            std::thread::sleep(Duration::from_millis(150));
            let now = read();
            if now.len() == text.len() || Instant::now() > deadline {
                break;
            }
            text = now;
        }
        text.lines().filter_map(LoggedRequest::parse).collect()
    }

    /// The URIs of the requests with `method` whose path starts with `prefix`.
    pub fn request_uris(&self, method: &str, prefix: &str) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.uri.starts_with(prefix))
            .map(|r| r.uri)
            .collect()
    }

    /// Polls `GET /v2/` until the registry answers with any HTTP status.
    fn wait_until_ready(&mut self, deadline: Instant) {
        loop {
            if let Some(status) = http_status(self.port, "/v2/") {
                let expected = if self.user.is_some() { 401 } else { 200 };
                if status != expected {
                    self.fail(&format!("GET /v2/ answered {status}, expected {expected}"));
                }
                return;
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                self.fail(&format!("it exited ({exit})"));
            }
            if Instant::now() > deadline {
                self.fail("GET /v2/ did not answer in time");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn fail(&mut self, problem: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Let the log readers catch the last lines.
        std::thread::sleep(Duration::from_millis(100));
        panic!(
            "docker-registry did not start: {problem}\n--- registry log ---\n{}",
            self.log()
        );
    }
}

impl Drop for RegistryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One line of the registry's access log (combined log format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// `GET`, `DELETE`, …
    pub method: String,
    /// Path and query, as sent.
    pub uri: String,
    /// The answer's status code.
    pub status: u16,
}

impl LoggedRequest {
    /// Parses `127.0.0.1 - - [date] "GET /v2/ HTTP/1.1" 200 2 "" "agent"`.
    fn parse(line: &str) -> Option<LoggedRequest> {
        let (_, rest) = line.split_once("] \"")?;
        let (request, rest) = rest.split_once('"')?;
        let mut parts = request.split(' ');
        let method = parts.next()?.to_string();
        let uri = parts.next()?.to_string();
        let status = rest.split_whitespace().next()?.parse().ok()?;
        Some(LoggedRequest {
            method,
            uri,
            status,
        })
    }
}

fn registry_binary() -> PathBuf {
    std::env::var_os("DOCKER_REGISTRY_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("docker-registry"))
}

/// Copies a log stream into `log`; the first `listening on 127.0.0.1:PORT` goes to `port`.
fn spawn_log_reader(
    stream: impl Read + Send + 'static,
    log: Arc<Mutex<String>>,
    mut port: Option<mpsc::Sender<u16>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Some(found) = listening_port(&line)
                && let Some(sender) = port.take()
            {
                let _ = sender.send(found);
            }
            if let Ok(mut log) = log.lock() {
                log.push_str(&line);
                log.push('\n');
            }
        }
    });
}

/// The port of a `msg="listening on 127.0.0.1:PORT"` log line.
fn listening_port(line: &str) -> Option<u16> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let address = rest.split(['"', ' ']).next()?;
    address.rsplit_once(':')?.1.parse().ok()
}

/// The status code of a plain `GET path` on 127.0.0.1:port, or `None` if nothing answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut status_line = String::new();
    BufReader::new(stream).read_line(&mut status_line).ok()?;
    status_line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn parses_the_registry_logs() {
    let line = r#"127.0.0.1 - - [21/Nov/2026:22:27:53 +0000] "DELETE /v2/x/manifests/sha256:00 HTTP/1.1" 404 70 "" "curl/7.88.1""#;
    assert_eq!(
        LoggedRequest::parse(line),
        Some(LoggedRequest {
            method: "DELETE".to_string(),
            uri: "/v2/x/manifests/sha256:00".to_string(),
            status: 404,
        })
    );
    assert_eq!(LoggedRequest::parse("level=info msg=x"), None);

    let line = r#"time="2026-11-21T22:24:29Z" level=info msg="listening on 127.0.0.1:46575" go.version=go1.19.8"#;
    assert_eq!(listening_port(line), Some(46575));
    assert_eq!(
        listening_port("level=info msg=\"redis not configured\""),
        None
    );
}
