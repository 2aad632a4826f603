//! Running the `handler` binary against an in-process ACR emulator, as a user would.

use crate::support::process::HandlerCommand;
use acr_emulator::{Emulator, ManifestSeed, RecordedRequest, RunningEmulator, Seed, TagSeed};
use std::collections::BTreeSet;

/// What one `handler` invocation produced.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// The standard output parsed as the JSON report.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// Lines of standard output that start with `prefix`, with the prefix removed.
    pub fn lines(&self, prefix: &str) -> BTreeSet<String> {
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(str::to_string)
            .collect()
    }
}

/// A started emulator.
pub struct Registry {
    /// The running server.
    pub running: RunningEmulator,
    /// The seed it was started from.
    pub seed: Seed,
    /// The run store of `handler purge` runs against it.
    pub state: tempfile::TempDir,
}

impl Registry {
    /// Starts an emulator with `seed`.
    pub async fn start(seed: Seed) -> Registry {
        let emulator = Emulator::new(seed.clone()).expect("seed loads");
        let running = emulator.start().await.expect("emulator starts");
        let state = tempfile::tempdir().expect("state dir");
        Registry {
            running,
            seed,
            state,
        }
    }

    /// The emulator.
    pub fn emulator(&self) -> &Emulator {
        self.running.emulator()
    }

    /// Runs `handler purge -r <emulator> ARGS`.
    pub async fn purge(&self, args: &[&str]) -> Run {
        self.purge_with_env(args, &[]).await
    }

    /// Runs `handler purge -r <emulator> ARGS` with extra environment variables.
    pub async fn purge_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut all = vec!["purge", "-r", self.running.url.as_str()];
        all.extend_from_slice(args);
        let state = self.state.path().to_string_lossy().into_owned();
        let mut env_with_state = vec![("PURGE_STATE_DIR", state.as_str())];
        env_with_state.extend_from_slice(env);
        handler_with_env(&all, &env_with_state).await
    }

    /// Runs `handler apply PLAN -r <emulator> ARGS`, recording in this registry's store.
    pub async fn apply(&self, plan: &std::path::Path, args: &[&str]) -> Run {
        let plan = plan.to_string_lossy().into_owned();
        let mut all = vec!["apply", plan.as_str(), "-r", self.running.url.as_str()];
        all.extend_from_slice(args);
        let state = self.state.path().to_string_lossy().into_owned();
        handler_with_env(&all, &[("PURGE_STATE_DIR", state.as_str())]).await
    }

    /// Recorded requests whose path is `path`.
    pub fn count(&self, path: &str) -> usize {
        self.emulator()
            .requests()
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// `host/` as printed in output lines.
    pub fn prefix(&self, repo: &str) -> String {
        format!("{}/{repo}", self.running.host())
    }

    /// Tags of `repo` now.
    pub fn tags(&self, repo: &str) -> BTreeSet<String> {
        self.emulator()
            .snapshot()
            .tag_names(repo)
            .into_iter()
            .collect()
    }

    /// Whether the manifest with `alias` still exists in `repo`.
    pub fn has(&self, repo: &str, alias: &str) -> bool {
        let digest = self.seed.digest(repo, alias);
        self.emulator().snapshot().has_manifest(repo, &digest)
    }

    /// The digest of `alias`.
    pub fn digest(&self, repo: &str, alias: &str) -> String {
        self.seed.digest(repo, alias)
    }

    /// Requests received that mutate state (DELETE, PATCH, PUT, POST outside /oauth2).
    pub fn mutations(&self) -> Vec<RecordedRequest> {
        self.emulator()
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET" && r.method != "HEAD" && !r.path.starts_with("/oauth2/"))
            .collect()
    }
}

/// Runs the `handler` binary with `args`.
pub async fn handler(args: &[&str]) -> Run {
    handler_with_env(args, &[]).await
}

/// Runs the `handler` binary with `args` and extra environment variables (the Azure
/// identity variables of the calling environment are removed first).
pub async fn handler_with_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = HandlerCommand::new()
        .env_remove(&[
            "ACR_DEFAULT_REGISTRY",
            "IDENTITY_ENDPOINT",
            "IDENTITY_HEADER",
            "AZURE_CLIENT_ID",
            "AZURE_FEDERATED_TOKEN_FILE",
            "ABAC_BATCH_SIZE",
            "PURGE_STATE_DIR",
            "PURGE_STATE_URL",
        ])
        // Runs not against a Registry above record in a shared scratch store, not the home folder.
        .env(
            "XDG_STATE_HOME",
            std::env::temp_dir().join("acr-purge-tests-state"),
        )
        .args(args)
        .envs(env.iter().copied())
        .output()
        .await;
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A manifest with one tag, both `age` old.
pub fn tagged(alias: &str, tag: &str, age: &str) -> ManifestSeed {
    ManifestSeed::image(alias)
        .age(age)
        .tag(TagSeed::new(tag).age(age))
}

/// A set of strings.
pub fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}
