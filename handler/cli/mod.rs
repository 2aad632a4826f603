//! The command line: `handler purge` (acr purge's flags, verbatim), `handler demo`,
//! `handler emulator`, `handler serve`. This module holds the flags and their validation;
//! [`commands`] the subcommands' thin bodies; `demo` the sample run (only with the
//! `emulators` feature); `output` standard output that survives a closed pipe.

pub mod commands;
#[cfg(feature = "emulators")]
mod demo;
pub mod json;
mod output;
mod progress;
mod runs;

use crate::policy::{
    AgoError, Filter, FilterError, Policy, Rule, RuleError, RuleSpec, RuleSpecError, WorkloadScope,
};
use crate::registry::{Concurrency, Credentials, Endpoint, EndpointError, RateCard, RateCardError};
use crate::run::RunOptions;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit code for bad arguments (nothing was contacted), shared by every subcommand
/// ([`commands`] and `runs`, which depend on this module, not on each other).
pub const EXIT_USAGE: u8 = 2;

/// acr-purge: keeps Azure Container Registries clean.
#[derive(Debug, Parser)]
#[command(name = "handler", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum Command {
    /// Serve the Azure Functions custom handler (the default without a subcommand) on
    /// 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT (8080 when unset).
    Serve,
    /// Delete stale tags and manifests, like `acr purge` (same flags).
    Purge(PurgeArgs),
    /// Run a purge against a built-in sample registry (no Azure account needed; builds with
    /// the default `emulators` feature only).
    Demo,
    /// Serve the ACR emulator standalone (builds with the default `emulators` feature only).
    Emulator(EmulatorArgs),
    /// Show recorded runs: `runs list`, `runs show ID`, `runs audit ID`.
    Runs(RunsArgs),
    /// Apply a plan saved by `purge --dry-run --plan-out`: delete exactly what it deletes,
    /// skipping (and reporting) whatever changed since.
    Apply(ApplyArgs),
}

/// Where runs are recorded (`handler purge` and `handler runs`).
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory of the run store (records, plans, audit logs, checkpoints, leases);
    /// default: $XDG_STATE_HOME/acr-purge, else ~/.local/state/acr-purge.
    #[arg(long, env = "PURGE_STATE_DIR", global = true)]
    pub state_dir: Option<std::path::PathBuf>,
    /// A Blob Storage container for the run store instead of a directory
    /// (https://ACCOUNT.blob.core.windows.net/CONTAINER, signed in as the Azure identity):
    /// the one the function app uses, so its runs and the command line's share leases.
    #[arg(
        long,
        env = "PURGE_STATE_URL",
        conflicts_with = "state_dir",
        global = true
    )]
    pub state_url: Option<String>,
}

impl StoreArgs {
    /// Where the store is.
    pub fn location(&self) -> Result<crate::store::StoreLocation, UsageError> {
        use crate::store::StoreLocation;
        if let Some(url) = &self.state_url {
            let parsed = url::Url::parse(url)
                .ok()
                .filter(|u| u.scheme() == "https" && !u.path().trim_matches('/').is_empty())
                .ok_or_else(|| {
                    UsageError::Store(format!(
                        "--state-url {url:?} is not an https:// URL of a blob container"
                    ))
                })?;
            return Ok(StoreLocation::Blob(parsed));
        }
        if let Some(dir) = &self.state_dir {
            return Ok(StoreLocation::Dir(dir.clone()));
        }
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let base = var("XDG_STATE_HOME")
            .map(std::path::PathBuf::from)
            .or_else(|| var("HOME").map(|h| std::path::PathBuf::from(h).join(".local/state")))
            .unwrap_or_else(std::env::temp_dir);
        Ok(StoreLocation::Dir(base.join("acr-purge")))
    }
}

/// `handler runs` flags.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// What to show.
    #[command(subcommand)]
    pub what: RunsCommand,
    /// Where runs are recorded.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `handler runs` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum RunsCommand {
    /// Every recorded run, newest first: id, status, registry, start, trigger, counts.
    List,
    /// One run's record, as JSON.
    Show {
        /// The run id.
        id: String,
    },
    /// One run's audit log: a JSON line per deletion attempt.
    Audit {
        /// The run id.
        id: String,
    },
}

/// `handler emulator` flags.
#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Seed file (JSON); the demo's sample registry when absent.
    #[arg(long)]
    pub data: Option<std::path::PathBuf>,
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 5000)]
    pub port: u16,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// acr purge's lines.
    Text,
    /// The whole plan and report as JSON, with a reason for every decision.
    Json,
}

/// `handler purge` flags: acr purge's, plus `--output`, `--protect` and `--verbose`.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// The registry and how to sign in.
    #[command(flatten)]
    pub target: TargetArgs,
    /// <repository-regex>:<tag-regex>; repeatable.
    #[arg(short = 'f', long = "filter")]
    pub filters: Vec<String>,
    /// Only items last updated longer ago than this are deleted: 30d, 1d3h, 15m.
    #[arg(long)]
    pub ago: Option<String>,
    /// Keep this many of the most recent items that would otherwise be deleted.
    #[arg(long, default_value_t = 0)]
    pub keep: usize,
    /// Also delete manifests left without tags.
    #[arg(long)]
    pub untagged: bool,
    /// Only delete manifests without tags.
    #[arg(long)]
    pub untagged_only: bool,
    /// Show what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Unlock and delete locked tags and manifests too.
    #[arg(long)]
    pub include_locked: bool,
    /// Accepted for compatibility; regexes run under a backtrack budget instead.
    #[arg(long, hide = true)]
    pub filter_timeout_seconds: Option<i64>,
    /// <repository-regex>:<tag-regex> whose tags are never deleted; repeatable.
    #[arg(long = "protect")]
    pub protect: Vec<String>,
    /// Never delete what Azure workloads in this scope run (a subscription id,
    /// /subscriptions/ID or /providers/Microsoft.Management/managementGroups/ID), found
    /// with Azure Resource Graph; repeatable.
    #[arg(long = "protect-in-use", value_name = "SCOPE")]
    pub protect_in_use: Vec<String>,
    /// Also keep the N most recently deployed digests per repository, after their
    /// workloads moved on (the run store remembers deployments).
    #[arg(long, default_value_t = 0)]
    pub keep_deployed: usize,
    /// With --protect-in-use: keep tags and manifests updated within this window (a
    /// deployment may be about to run them); default 48h, 0h turns it off.
    #[arg(long, value_name = "DURATION")]
    pub in_use_grace: Option<String>,
    /// With --protect-in-use: do not read this AKS cluster's pods (its resource id); a
    /// cluster that cannot be read otherwise stops the run. Repeatable.
    #[arg(long = "in-use-exclude-cluster", value_name = "CLUSTER_ID")]
    pub in_use_exclude_clusters: Vec<String>,
    /// Only delete items whose last pull is older than this (30d, 90d), from the registry's
    /// pull logs in Log Analytics; unknown pulls count as recent.
    #[arg(long)]
    pub not_pulled_for: Option<String>,
    /// Pulls by this identity do not count (a scanner, CI); repeatable.
    #[arg(long = "exclude-puller", value_name = "IDENTITY")]
    pub exclude_pullers: Vec<String>,
    /// Only delete images carrying a Microsoft Defender for Cloud vulnerability finding at
    /// least this severe (Low, Medium, High, Critical), read from Azure Resource Graph;
    /// findings that cannot be read make nothing eligible.
    #[arg(long, value_name = "SEVERITY")]
    pub vulnerable_min_severity: Option<String>,
    /// Read Defender's findings in this scope (a subscription id, /subscriptions/ID or a
    /// management group; the registry's subscription at least); default: the
    /// --protect-in-use scopes. Repeatable.
    #[arg(long = "findings-scope", value_name = "SCOPE")]
    pub findings_scope: Vec<String>,
    /// Never leave fewer than the N most recent tags the filter matches per repository,
    /// however old.
    #[arg(long, value_name = "N")]
    pub min_tags: Option<usize>,
    /// Delete the tags beyond the N most recent the filter matches per repository, even
    /// younger than --ago (protections still win).
    #[arg(long, value_name = "N")]
    pub max_tags: Option<usize>,
    /// With --untagged/--untagged-only: never leave fewer than the N most recent untagged
    /// manifests per repository, however old.
    #[arg(long, value_name = "N")]
    pub min_untagged_manifests: Option<usize>,
    /// With --untagged/--untagged-only: delete the untagged manifests beyond the N most
    /// recent per repository, even younger than --ago (protections still win).
    #[arg(long, value_name = "N")]
    pub max_untagged_manifests: Option<usize>,
    /// Write the plan (with --dry-run) to this file for review, to be applied exactly
    /// later by `handler apply FILE`.
    #[arg(long, requires = "dry_run", value_name = "FILE")]
    pub plan_out: Option<std::path::PathBuf>,
    /// How to run and report (shared with `handler apply`).
    #[command(flatten)]
    pub run: RunFlags,
}

/// `handler apply` flags: a plan saved by `handler purge --dry-run --plan-out`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The saved plan (JSON).
    pub plan: std::path::PathBuf,
    /// The registry to apply it to (it must be the plan's) and how to sign in.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Refuse a plan made longer ago than this (30m, 24h, 2d).
    #[arg(long, default_value = "24h")]
    pub max_age: String,
    /// Show what applying the plan would delete now, and the drift; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How to run and report.
    #[command(flatten)]
    pub run: RunFlags,
}

/// `-r`, `-u`, `-p`.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Registry: a name (gets .azurecr.io), host[:port] (https), or an http(s):// URL.
    #[arg(short = 'r', long, env = "ACR_DEFAULT_REGISTRY")]
    pub registry: String,
    /// Username (with an empty value or the zero GUID, the password is a refresh token).
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password or ACR refresh token.
    #[arg(short = 'p', long)]
    pub password: Option<Secret>,
}

impl TargetArgs {
    /// The endpoint and credentials, checked.
    fn check(&self) -> Result<(Endpoint, Option<Credentials>), UsageError> {
        let endpoint = Endpoint::parse(&self.registry)?;
        let credentials = Credentials::from_flags(
            self.username.as_deref(),
            self.password.as_ref().map(Secret::expose),
        )
        .map_err(UsageError::Credentials)?;
        Ok((endpoint, credentials))
    }
}

/// How a purge or an apply runs and reports.
#[derive(Debug, Args)]
pub struct RunFlags {
    /// Requests of each kind (reads, deletes, …) in flight at most (1-32).
    #[arg(long, allow_negative_numbers = true)]
    pub concurrency: Option<i64>,
    /// ACR's per-identity request budgets to pace to: basic, standard, premium, unlimited,
    /// or read=N,write=N,delete=N,referrers=N (requests per minute).
    #[arg(long, default_value = "standard")]
    pub rate_card: String,
    /// Catalog page size.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub repository_page_size: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Also print why each kept item is kept.
    #[arg(long)]
    pub verbose: bool,
    /// No progress display on standard error (it is shown only on a terminal anyway).
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Count as freed only the blobs no repository of the registry references any more:
    /// reads every other repository's manifests (one read per manifest).
    #[arg(long, conflicts_with = "no_storage")]
    pub exact_storage: bool,
    /// Do not count the storage freed: saves one read per manifest of each repository
    /// where manifests are deleted (acr purge's requests exactly).
    #[arg(long)]
    pub no_storage: bool,
    /// Stop cleanly before this much time has passed (30s, 10m, 1h30m): exit code 3, and
    /// the same command again resumes the run.
    #[arg(long)]
    pub deadline: Option<String>,
    /// Start a new run even if an unfinished run of the same policy could be resumed.
    #[arg(long)]
    pub new_run: bool,
    /// Record nothing: no run store, no lease, no checkpoint (acr purge's behaviour).
    /// Overrides PURGE_STATE_DIR / PURGE_STATE_URL from the environment.
    #[arg(long, conflicts_with_all = ["new_run", "deadline"])]
    pub no_state: bool,
    /// Refuse a repository's plan that takes away more than N of its tagged images, or P%
    /// of them (N, P% or none; default none on the command line): nothing in it is
    /// deleted, and the run fails (exit 1).
    #[arg(long, value_name = "N|P%|none")]
    pub max_deletions: Option<String>,
    /// Refuse the whole run when its plans together take away more than N of the tagged
    /// images it covers, or P% of them (N, P% or none; default none on the command line):
    /// every repository is planned first, nothing at all is deleted, and the run fails
    /// (exit 1).
    #[arg(long, value_name = "N|P%|none")]
    pub max_run_deletions: Option<String>,
    /// The Log Analytics workspace (its customer id) holding the registry's pull logs,
    /// for `--not-pulled-for`.
    #[arg(long, env = "PURGE_LOGS_WORKSPACE_ID")]
    pub logs_workspace: Option<String>,
    /// Where runs are recorded.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// A flag value that must never be printed: `Debug` shows `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(text.to_string()))
    }
}

/// A `handler purge` invocation that cannot run (exit code 2, nothing contacted).
#[derive(Debug, Clone, thiserror::Error)]
pub enum UsageError {
    /// `-r/--registry`.
    #[error(transparent)]
    Registry(#[from] EndpointError),
    /// `-u/-p`.
    #[error("{0}")]
    Credentials(String),
    /// A `--filter`.
    #[error(transparent)]
    Filter(FilterError),
    /// `--ago`.
    #[error(transparent)]
    Ago(AgoError),
    /// `--ago` missing.
    #[error("--ago is required when not using --untagged-only")]
    AgoMissing,
    /// Contradicting flags.
    #[error(transparent)]
    Rule(RuleError),
    /// A `--protect` pattern.
    #[error("--protect: {0}")]
    Protect(FilterError),
    /// `--rate-card`.
    #[error("--rate-card: {0}")]
    RateCard(RateCardError),
    /// `--deadline`.
    #[error("--deadline: {0}")]
    Deadline(String),
    /// `--state-dir` / `--state-url`.
    #[error("{0}")]
    Store(String),
    /// `--max-age`.
    #[error("--max-age: {0}")]
    MaxAge(String),
    /// `--protect-in-use`, `--keep-deployed`, `--in-use-grace`, `--not-pulled-for`.
    #[error("{0}")]
    InUse(String),
    /// `--max-deletions`, `--max-run-deletions`.
    #[error(transparent)]
    MaxDeletions(crate::policy::LimitError),
}

impl From<RuleSpecError> for UsageError {
    fn from(error: RuleSpecError) -> UsageError {
        match error {
            RuleSpecError::Filter { error, .. } => UsageError::Filter(error),
            RuleSpecError::Ago(error) => UsageError::Ago(error),
            RuleSpecError::NotPulledFor(error) => {
                UsageError::InUse(format!("--not-pulled-for: {error}"))
            }
            RuleSpecError::Vulnerable(error) => {
                UsageError::InUse(format!("--vulnerable-min-severity: {error}"))
            }
            RuleSpecError::AgoMissing => UsageError::AgoMissing,
            RuleSpecError::Flags(error) => UsageError::Rule(error),
        }
    }
}

/// A validated `handler purge` invocation.
#[derive(Debug)]
pub struct PurgeRequest {
    /// Where.
    pub endpoint: Endpoint,
    /// `-u/-p`, when given.
    pub credentials: Option<Credentials>,
    /// What.
    pub policy: Policy,
    /// How.
    pub options: RunOptions,
    /// The request budgets to pace to.
    pub rate_card: RateCard,
    /// Notes for stderr (capped values).
    pub warnings: Vec<String>,
    /// `--deadline`.
    pub deadline: Option<std::time::Duration>,
    /// The run store, unless `--no-state`.
    pub store: Option<crate::store::StoreLocation>,
}

impl PurgeArgs {
    /// Validates everything that can be checked without a network request.
    pub fn validate(&self) -> Result<PurgeRequest, UsageError> {
        let mut warnings = Vec::new();
        let (endpoint, credentials) = self.target.check()?;
        let rule = Rule::build(RuleSpec {
            filters: &self.filters,
            ago: self.ago.as_deref(),
            keep: self.keep,
            untagged: self.untagged,
            untagged_only: self.untagged_only,
            include_locked: self.include_locked,
            not_pulled_for: self.not_pulled_for.as_deref(),
            vulnerable_min: self.vulnerable_min_severity.as_deref(),
            bounds: crate::policy::Bounds {
                min_tags: self.min_tags,
                max_tags: self.max_tags,
                min_untagged: self.min_untagged_manifests,
                max_untagged: self.max_untagged_manifests,
            },
        })?;
        if rule.ago.capped {
            warnings.push(
                "Warning: ago value exceeds maximum duration of 150 years, using 150 years"
                    .to_string(),
            );
        }
        let protect = self
            .protect
            .iter()
            .map(|f| Filter::parse(f).map_err(UsageError::Protect))
            .collect::<Result<Vec<_>, _>>()?;
        let protect_in_use = self
            .protect_in_use
            .iter()
            .map(|s| {
                WorkloadScope::parse(s)
                    .map_err(|e| UsageError::InUse(format!("--protect-in-use: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if self.keep_deployed > 0 && protect_in_use.is_empty() {
            return Err(UsageError::InUse(
                "--keep-deployed needs --protect-in-use (the scopes where deployments are found)"
                    .to_string(),
            ));
        }
        let in_use_grace = match &self.in_use_grace {
            None => None,
            Some(_) if protect_in_use.is_empty() => {
                return Err(UsageError::InUse(
                    "--in-use-grace needs --protect-in-use".to_string(),
                ));
            }
            Some(text) => {
                let grace = crate::policy::Ago::parse(text)
                    .map_err(|e| UsageError::InUse(format!("--in-use-grace: {e}")))?;
                if grace.capped {
                    return Err(UsageError::InUse(
                        "--in-use-grace: longer than 150 years".to_string(),
                    ));
                }
                Some(grace)
            }
        };
        if !self.in_use_exclude_clusters.is_empty() && protect_in_use.is_empty() {
            return Err(UsageError::InUse(
                "--in-use-exclude-cluster needs --protect-in-use".to_string(),
            ));
        }
        for id in &self.in_use_exclude_clusters {
            crate::policy::check_cluster_id(id)
                .map_err(|e| UsageError::InUse(format!("--in-use-exclude-cluster: {e}")))?;
        }
        let policy = Policy {
            rules: vec![rule],
            protect,
            protect_in_use,
            keep_deployed: self.keep_deployed,
            in_use_grace,
            in_use_exclude_clusters: self.in_use_exclude_clusters.clone(),
            exclude_pullers: self.exclude_pullers.clone(),
            findings_scope: self
                .findings_scope
                .iter()
                .map(|s| {
                    WorkloadScope::parse(s)
                        .map_err(|e| UsageError::InUse(format!("--findings-scope: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        if self.plan_out.is_some() && self.run.deadline.is_some() {
            return Err(UsageError::Deadline(
                "a plan saved with --plan-out must be whole: it cannot stop at a deadline"
                    .to_string(),
            ));
        }
        self.run
            .request(endpoint, credentials, policy, self.dry_run, warnings)
    }
}

/// What [`RunFlags`] settle.
struct RunSettings {
    concurrency: usize,
    rate_card: RateCard,
    deadline: Option<std::time::Duration>,
    store: Option<crate::store::StoreLocation>,
}

impl RunFlags {
    /// Checks the flags; capped values add a warning.
    fn settings(&self, warnings: &mut Vec<String>) -> Result<RunSettings, UsageError> {
        let (default, max) = (Concurrency::DEFAULT.get(), Concurrency::MAX.get());
        // acr purge's behaviour: out-of-range values are replaced, with a warning.
        let concurrency = match self.concurrency {
            None => default,
            Some(n) if n <= 0 => {
                warnings.push(format!(
                    "Specified concurrency value invalid. Set to default value: {default}"
                ));
                default
            }
            Some(n) => match usize::try_from(n).ok().and_then(Concurrency::new) {
                Some(c) => c.get(),
                None => {
                    warnings.push(format!(
                        "Specified concurrency value too large. Set to maximum value: {max}"
                    ));
                    max
                }
            },
        };
        let rate_card = RateCard::parse(&self.rate_card).map_err(UsageError::RateCard)?;
        let deadline = self.deadline.as_deref().map(parse_deadline).transpose()?;
        let store = match self.no_state {
            true => None,
            false => Some(self.store.location()?),
        };
        Ok(RunSettings {
            concurrency,
            rate_card,
            deadline,
            store,
        })
    }

    /// The request these flags run: `policy` against `endpoint`.
    fn request(
        &self,
        endpoint: Endpoint,
        credentials: Option<Credentials>,
        policy: Policy,
        dry_run: bool,
        mut warnings: Vec<String>,
    ) -> Result<PurgeRequest, UsageError> {
        let flags = self.settings(&mut warnings)?;
        let max_deletions = match &self.max_deletions {
            None => None,
            Some(text) => crate::policy::LimitSetting::parse(text)
                .map_err(UsageError::MaxDeletions)?
                .effective(None),
        };
        let max_run_deletions = match &self.max_run_deletions {
            None => None,
            Some(text) => crate::policy::LimitSetting::parse_for("--max-run-deletions", text)
                .map_err(UsageError::MaxDeletions)?
                .effective(None),
        };
        Ok(PurgeRequest {
            endpoint,
            credentials,
            policy,
            options: RunOptions {
                dry_run,
                concurrency: flags.concurrency,
                repository_page_size: self.repository_page_size as usize,
                exact_storage: self.exact_storage,
                count_storage: !self.no_storage,
                max_deletions,
                max_run_deletions,
                ..RunOptions::default()
            },
            rate_card: flags.rate_card,
            warnings,
            deadline: flags.deadline,
            store: flags.store,
        })
    }
}

impl ApplyArgs {
    /// Validates the flags (the plan itself is read by the command): the request runs the
    /// plan's policy, set by the caller.
    pub fn validate(&self) -> Result<(PurgeRequest, chrono::TimeDelta), UsageError> {
        let (endpoint, credentials) = self.target.check()?;
        let max_age = crate::policy::Ago::parse(&self.max_age)
            .map_err(|e| UsageError::MaxAge(e.to_string()))?
            .duration;
        let policy = Policy::default();
        let request = self
            .run
            .request(endpoint, credentials, policy, self.dry_run, Vec::new())?;
        Ok((request, max_age))
    }
}

/// A `--deadline`: a positive duration in acr purge's `--ago` syntax.
fn parse_deadline(text: &str) -> Result<std::time::Duration, UsageError> {
    let bad = |why: String| UsageError::Deadline(format!("{text:?}: {why}"));
    let ago = crate::policy::Ago::parse(text).map_err(|e| bad(e.to_string()))?;
    match ago.duration.to_std() {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(bad("must be longer than zero".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let cli = Cli::parse_from(["handler", "purge", "-r", "r", "-u", "u", "-p", "hunter2"]);
        let text = format!("{cli:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
        let Some(Command::Purge(args)) = cli.command else {
            panic!("purge");
        };
        assert_eq!(
            args.target.password.as_ref().map(Secret::expose),
            Some("hunter2")
        );
    }
}
