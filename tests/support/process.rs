//! Starting the built `handler` binary from a test: one builder for its arguments,
//! environment and standard streams; a started process is killed when dropped, and waited
//! for with or without a time limit.

use std::ffi::OsStr;
use std::process::{ExitStatus, Output, Stdio};
use std::time::Duration;

/// The `handler` binary to run: arguments, environment and streams, set by chained calls.
/// Standard input is closed; the other streams follow `std::process::Command` (captured by
/// [`output`](Self::output), inherited by [`spawn`](Self::spawn)) unless set.
pub struct HandlerCommand {
    command: std::process::Command,
}

impl Default for HandlerCommand {
    fn default() -> Self {
        Self::new()
    }
}

impl HandlerCommand {
    /// The binary cargo built for these tests, with the test's environment.
    pub fn new() -> Self {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_handler"));
        command.stdin(Stdio::null());
        HandlerCommand { command }
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.command.env(name, value);
        self
    }

    /// Sets environment variables.
    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.command.envs(vars);
        self
    }

    /// Removes these variables of the test's environment (Azure identities, registries...).
    pub fn env_remove(mut self, names: &[&str]) -> Self {
        for name in names {
            self.command.env_remove(name);
        }
        self
    }

    /// Where standard output goes.
    pub fn stdout(mut self, stdout: impl Into<Stdio>) -> Self {
        self.command.stdout(stdout);
        self
    }

    /// Where standard error goes.
    pub fn stderr(mut self, stderr: impl Into<Stdio>) -> Self {
        self.command.stderr(stderr);
        self
    }

    /// Runs it to its end, blocking the thread; standard output and error captured.
    pub fn output_blocking(mut self) -> Output {
        self.command.output().expect("running the handler binary")
    }

    /// Runs it to its end; standard output and error captured. Killed if the test gives up.
    pub async fn output(self) -> Output {
        let mut command = tokio::process::Command::from(self.command);
        command
            .kill_on_drop(true)
            .output()
            .await
            .expect("running the handler binary")
    }

    /// Starts it.
    pub fn spawn(self) -> Running {
        let mut command = tokio::process::Command::from(self.command);
        let child = command.kill_on_drop(true).spawn().expect("handler starts");
        Running { child }
    }
}

/// A started `handler` process, killed (SIGKILL) when dropped.
pub struct Running {
    child: tokio::process::Child,
}

impl Running {
    /// Its process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Its standard output, when piped (once).
    pub fn take_stdout(&mut self) -> Option<tokio::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Waits for it to exit.
    pub async fn wait(&mut self) -> ExitStatus {
        self.child.wait().await.expect("handler exits")
    }

    /// Waits at most `limit` for it to exit: `None` when it still runs.
    pub async fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        let status = tokio::time::timeout(limit, self.child.wait()).await.ok()?;
        Some(status.expect("handler exits"))
    }

    /// `kill -9`: SIGKILL, no clean stop; waits for the process to be gone (at once when it
    /// already is).
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Sends SIGTERM and waits at most `limit` for it to exit: `None` when it still runs.
    pub async fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        if let Some(pid) = self.child.id() {
            let _ = tokio::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()?
            .ok()
    }

    /// Waits for it to exit and collects the standard streams that were piped.
    pub async fn wait_with_output(self) -> Output {
        self.child.wait_with_output().await.expect("handler ends")
    }
}
