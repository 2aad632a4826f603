//! The Function App's configuration, read from app settings (environment variables) at
//! start-up without any network call. Invalid configuration never purges anything: every
//! invocation then fails. The message naming the setting and what is wrong goes to the logs
//! (and the timer's `Logs`); it never echoes credentials (user information in a URL is
//! redacted) and callers of the webhook only get a generic answer.
//!
//! Settings are trimmed, except `WEBHOOK_SECRET`: a secret is used exactly as given, and one
//! with leading or trailing whitespace (a pasted newline, usually) is a configuration error
//! naming the setting rather than a secret that silently differs from the senders'.

use super::fleet::{self, Member};
use crate::policy::PolicyDocument;
use crate::registry::Endpoint;
use crate::settings::*;
use crate::store::{DEFAULT_CONTAINER, StoreLocation};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The policy file read when neither `PURGE_POLICY` nor `PURGE_POLICY_FILE` is set (a
/// `policy.json` shipped in the deployment package).
pub const DEFAULT_POLICY_FILE: &str = "policy.json";
/// The default of `PURGE_HTTP_DEADLINE_SECONDS`.
pub const DEFAULT_HTTP_DEADLINE: Duration = Duration::from_secs(200);
/// The largest `PURGE_HTTP_DEADLINE_SECONDS`: Azure's front end cuts HTTP at 230 s.
pub const MAX_HTTP_DEADLINE: Duration = Duration::from_secs(225);

/// A setting that is missing or wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("app setting {setting}: {problem}")]
pub struct ConfigError {
    /// The setting's name.
    pub setting: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

fn error(setting: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        problem: problem.into(),
    }
}

/// Where the webhook secret comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A Key Vault secret, read with the managed identity.
    KeyVault {
        /// The vault URL.
        vault_url: String,
        /// The secret's name.
        name: String,
    },
    /// The value itself (`WEBHOOK_SECRET`, e.g. filled by a Key Vault reference).
    Plain(String),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::KeyVault { vault_url, name } => {
                write!(f, "KeyVault({vault_url}, {name})")
            }
            SecretSource::Plain(_) => f.write_str("Plain(<redacted>)"),
        }
    }
}

/// Everything the triggers need to run a purge.
#[derive(Debug, Clone)]
pub struct Config {
    /// The home registry: `PURGE_REGISTRY`, or the fleet's first. The webhook purges it.
    pub registry: Endpoint,
    /// Its policy: `PURGE_POLICY` or `PURGE_POLICY_FILE`, or the fleet's first.
    pub policy: PolicyDocument,
    /// Every registry the app purges with its policy (the home registry first); one
    /// without `PURGE_FLEET`.
    pub fleet: Vec<Member>,
    /// Whether the registries come from `PURGE_FLEET` / `PURGE_FLEET_FILE`: the timer then
    /// enqueues one message per registry instead of purging itself.
    pub is_fleet: bool,
    /// `PURGE_DRY_RUN`: every run is a dry run.
    pub force_dry_run: bool,
    /// `PURGE_HTTP_DEADLINE_SECONDS`.
    pub http_deadline: Duration,
    /// The webhook secret's source, or why it is not configured.
    pub webhook_secret: Result<SecretSource, ConfigError>,
    /// Where runs are recorded: the storage account's blob container, else a directory.
    pub store: StoreLocation,
    /// The client id of the identity for the store (`AzureWebJobsStorage__clientId`, else
    /// `AZURE_CLIENT_ID`).
    pub store_client_id: Option<String>,
    /// `functionTimeout` of `host.json`: the deadline of every run (`None`: unbounded).
    pub function_timeout: Option<Duration>,
}

impl Config {
    /// The home registry and its policy (the webhook's; the fleet's first).
    pub fn home(&self) -> Member {
        Member {
            registry: self.registry.clone(),
            policy: self.policy.clone(),
        }
    }

    /// The fleet's registry whose login server is `host` (any case).
    pub fn member(&self, host: &str) -> Option<&Member> {
        self.fleet
            .iter()
            .find(|m| m.registry.host().eq_ignore_ascii_case(host))
    }

    /// Reads the configuration from the environment; relative paths are resolved against
    /// `FUNCTIONS_APP_ROOT_PATH` (set by the host), else the working directory.
    pub fn from_env() -> Result<Config, ConfigError> {
        let root = std::env::var_os(FUNCTIONS_APP_ROOT_PATH)
            .map(PathBuf::from)
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_default();
        Config::from_lookup(|name| std::env::var(name).ok(), &root)
    }

    /// Reads the configuration through `lookup` (for tests).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        app_root: &Path,
    ) -> Result<Config, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let fleet_text = match (get(PURGE_FLEET), get(PURGE_FLEET_FILE)) {
            (None, None) => None,
            (Some(text), _) => Some((PURGE_FLEET, text)),
            (None, Some(file)) => {
                let path = app_root.join(&file);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    error(
                        PURGE_FLEET_FILE,
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                Some((PURGE_FLEET_FILE, text))
            }
        };
        let (fleet, is_fleet) = match fleet_text {
            None => (vec![single(&get, app_root)?], false),
            Some(_) if get(PURGE_REGISTRY).is_some() => {
                return Err(error(
                    PURGE_REGISTRY,
                    "set together with PURGE_FLEET or PURGE_FLEET_FILE: a fleet names its registries itself; remove one",
                ));
            }
            Some((setting, text)) => (
                fleet::parse(&text, app_root).map_err(|e| error(setting, e))?,
                true,
            ),
        };
        let Some(home) = fleet.first() else {
            return Err(error(PURGE_FLEET, "the fleet names no registry"));
        };
        let (registry, policy) = (home.registry.clone(), home.policy.clone());
        let force_dry_run = match get(PURGE_DRY_RUN).as_deref().map(str::to_ascii_lowercase) {
            None => false,
            Some(v) if v == "true" || v == "1" => true,
            Some(v) if v == "false" || v == "0" => false,
            Some(v) => {
                return Err(error(
                    PURGE_DRY_RUN,
                    format!("{v:?} is neither true nor false"),
                ));
            }
        };
        let http_deadline = match get(PURGE_HTTP_DEADLINE_SECONDS) {
            None => DEFAULT_HTTP_DEADLINE,
            Some(v) => match v.parse::<u64>() {
                Ok(secs) if (1..=MAX_HTTP_DEADLINE.as_secs()).contains(&secs) => {
                    Duration::from_secs(secs)
                }
                _ => {
                    return Err(error(
                        PURGE_HTTP_DEADLINE_SECONDS,
                        format!(
                            "{v:?} is not a number of seconds from 1 to {}",
                            MAX_HTTP_DEADLINE.as_secs()
                        ),
                    ));
                }
            },
        };
        let plain_secret = lookup(WEBHOOK_SECRET).filter(|v| !v.is_empty());
        let webhook_secret = match (get(KEY_VAULT_URL), get(WEBHOOK_SECRET_NAME), plain_secret) {
            (Some(url), Some(name), _) => key_vault(url, name),
            (Some(_), None, _) => Err(error(
                WEBHOOK_SECRET_NAME,
                "not set, but KEY_VAULT_URL is: name the secret to read",
            )),
            (None, _, Some(secret)) if secret.trim() != secret => Err(error(
                WEBHOOK_SECRET,
                "has leading or trailing whitespace; the secret is used exactly as given, so remove it (here and in the senders if it belongs there)",
            )),
            (None, _, Some(secret)) => Ok(SecretSource::Plain(secret)),
            (None, _, None) => Err(error(
                KEY_VAULT_URL,
                "the webhook has no secret: set KEY_VAULT_URL and WEBHOOK_SECRET_NAME, or WEBHOOK_SECRET",
            )),
        };
        let store = store_location(&get)?;
        let store_client_id = get(STORAGE_CLIENT_ID).or_else(|| get(AZURE_CLIENT_ID));
        let function_timeout = function_timeout(app_root)?;
        Ok(Config {
            registry,
            policy,
            fleet,
            is_fleet,
            force_dry_run,
            http_deadline,
            webhook_secret,
            store,
            store_client_id,
            function_timeout,
        })
    }
}

/// The one-setting case: `PURGE_REGISTRY` with `PURGE_POLICY`, `PURGE_POLICY_FILE` or the
/// packaged `policy.json`.
fn single(get: &impl Fn(&str) -> Option<String>, app_root: &Path) -> Result<Member, ConfigError> {
    let registry = get(PURGE_REGISTRY)
        .ok_or_else(|| error(PURGE_REGISTRY, "not set; give the registry's login server"))?;
    let registry = Endpoint::parse(&registry)
        .map_err(|e| error(PURGE_REGISTRY, redact_userinfo(&registry, &e.to_string())))?;
    let policy = match (get(PURGE_POLICY), get(PURGE_POLICY_FILE)) {
        (Some(text), _) => {
            PolicyDocument::parse(&text).map_err(|e| error(PURGE_POLICY, e.to_string()))?
        }
        (None, Some(file)) => {
            let path = app_root.join(&file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                error(
                    PURGE_POLICY_FILE,
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            PolicyDocument::parse(&text)
                .map_err(|e| error(PURGE_POLICY_FILE, format!("{}: {e}", path.display())))?
        }
        (None, None) => {
            let path = app_root.join(DEFAULT_POLICY_FILE);
            let Ok(text) = std::fs::read_to_string(&path) else {
                return Err(error(
                    PURGE_POLICY,
                    format!(
                        "neither PURGE_POLICY nor PURGE_POLICY_FILE is set, and there is no {}",
                        path.display()
                    ),
                ));
            };
            PolicyDocument::parse(&text)
                .map_err(|e| error(PURGE_POLICY_FILE, format!("{}: {e}", path.display())))?
        }
    };
    Ok(Member { registry, policy })
}

/// The run store: `AzureWebJobsStorage__blobServiceUri` or `__accountName` with
/// `PURGE_RUNS_CONTAINER`, else `PURGE_STATE_DIR`, else a folder of the temporary directory.
fn store_location(get: &impl Fn(&str) -> Option<String>) -> Result<StoreLocation, ConfigError> {
    let container = get(PURGE_RUNS_CONTAINER).unwrap_or_else(|| DEFAULT_CONTAINER.to_string());
    let valid = container.len() >= 3
        && container.len() <= 63
        && container
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !container.starts_with('-');
    if !valid {
        return Err(error(
            PURGE_RUNS_CONTAINER,
            format!(
                "{container:?} is not a blob container name (3-63 lowercase letters, digits, hyphens)"
            ),
        ));
    }
    let service = match (get(STORAGE_BLOB_SERVICE_URI), get(STORAGE_ACCOUNT_NAME)) {
        (Some(uri), _) => Some((STORAGE_BLOB_SERVICE_URI, uri)),
        (None, Some(account)) => Some((
            STORAGE_ACCOUNT_NAME,
            format!("https://{account}.blob.core.windows.net/"),
        )),
        (None, None) => None,
    };
    match service {
        Some((setting, uri)) => {
            let mut url = url::Url::parse(&uri)
                .ok()
                .filter(|u| u.scheme() == "https")
                .ok_or_else(|| {
                    error(
                        setting,
                        format!("{uri:?} does not make an https:// blob endpoint"),
                    )
                })?;
            let path = format!("{}/{container}", url.path().trim_end_matches('/'));
            url.set_path(&path);
            Ok(StoreLocation::Blob(url))
        }
        None => Ok(StoreLocation::Dir(
            get(PURGE_STATE_DIR)
                .map(PathBuf::from)
                .unwrap_or_else(|| std::env::temp_dir().join("acr-purge-state")),
        )),
    }
}

/// `functionTimeout` from the app's `host.json` (`hh:mm:ss`, or `-1` / absent: none).
fn function_timeout(app_root: &Path) -> Result<Option<Duration>, ConfigError> {
    let path = app_root.join("host.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let fail = |why: String| error("functionTimeout", format!("{}: {why}", path.display()));
    let host: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| fail(format!("not JSON: {e}")))?;
    let Some(value) = host.get("functionTimeout").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let text = value.as_str().ok_or_else(|| fail("not a string".into()))?;
    if text.trim() == "-1" {
        return Ok(None);
    }
    parse_timespan(text)
        .map(Some)
        .ok_or_else(|| fail(format!("{text:?} is not [d.]hh:mm:ss")))
}

/// A .NET `TimeSpan` as host.json writes it: `[d.]hh:mm:ss[.fff]`.
fn parse_timespan(text: &str) -> Option<Duration> {
    let (days, rest) = match text.split_once('.') {
        Some((d, rest)) if !d.contains(':') => (d.parse::<u64>().ok()?, rest),
        _ => (0, text),
    };
    let mut parts = rest.split(':');
    let hours: u64 = parts.next()?.parse().ok()?;
    let minutes: u64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || minutes > 59 || !(0.0..60.0).contains(&seconds) {
        return None;
    }
    let whole = days * 86_400 + hours * 3_600 + minutes * 60;
    Some(Duration::from_secs(whole) + Duration::from_secs_f64(seconds))
}

/// The Key Vault source, if `url` is a plain https URL (no user information).
fn key_vault(url: String, name: String) -> Result<SecretSource, ConfigError> {
    match url::Url::parse(&url) {
        Ok(parsed) if parsed.scheme() == "https" => {
            if !parsed.username().is_empty() || parsed.password().is_some() {
                return Err(error(
                    KEY_VAULT_URL,
                    "must not carry user information (user:password@); the vault is read with the managed identity",
                ));
            }
            Ok(SecretSource::KeyVault {
                vault_url: url,
                name,
            })
        }
        _ => Err(error(
            KEY_VAULT_URL,
            format!(
                "{} is not an https URL",
                redact_userinfo(&url, &format!("{url:?}"))
            ),
        )),
    }
}

/// `message` with the user information of `input` (a URL, maybe malformed) replaced by `***`
/// wherever `input` or its user information appears.
fn redact_userinfo(input: &str, message: &str) -> String {
    let after_scheme = input.find("://").map_or(0, |i| i + 3);
    let rest = &input[after_scheme..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return message.to_string();
    };
    let userinfo = &authority[..at];
    let mut redacted_input = String::with_capacity(input.len());
    redacted_input.push_str(&input[..after_scheme]);
    redacted_input.push_str("***");
    redacted_input.push_str(&input[after_scheme + at..]);
    let mut message = message.replace(input, &redacted_input);
    if !userinfo.is_empty() {
        message = message.replace(userinfo, "***");
        for part in userinfo.split(':').filter(|p| p.len() >= 3) {
            message = message.replace(part, "***");
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const POLICY: &str = r#"{"rules":[{"filter":"app:.*","ago":"30d"}]}"#;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned(), Path::new("/nonexistent"))
    }

    #[test]
    fn reads_a_complete_configuration() {
        let config = load(&[
            (PURGE_REGISTRY, "myreg.azurecr.io"),
            (PURGE_POLICY, POLICY),
            (PURGE_DRY_RUN, "true"),
            (KEY_VAULT_URL, "https://v.vault.azure.net/"),
            (WEBHOOK_SECRET_NAME, "hook"),
        ])
        .unwrap();
        assert_eq!(config.registry.host(), "myreg.azurecr.io");
        assert!(config.force_dry_run);
        assert_eq!(config.http_deadline, DEFAULT_HTTP_DEADLINE);
        assert!(matches!(
            config.webhook_secret,
            Ok(SecretSource::KeyVault { .. })
        ));
    }

    #[test]
    fn names_the_setting_that_is_wrong() {
        let base = [(PURGE_REGISTRY, "r.azurecr.io"), (PURGE_POLICY, POLICY)];
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![(PURGE_POLICY, POLICY)], PURGE_REGISTRY),
            (vec![(PURGE_REGISTRY, "r")], PURGE_POLICY),
            (
                vec![(PURGE_REGISTRY, "r"), (PURGE_POLICY, "{")],
                PURGE_POLICY,
            ),
            (
                vec![(PURGE_REGISTRY, "r"), (PURGE_POLICY_FILE, "missing.json")],
                PURGE_POLICY_FILE,
            ),
            (
                vec![base[0], base[1], (PURGE_DRY_RUN, "yes")],
                PURGE_DRY_RUN,
            ),
            (
                vec![base[0], base[1], (PURGE_HTTP_DEADLINE_SECONDS, "600")],
                PURGE_HTTP_DEADLINE_SECONDS,
            ),
            (
                vec![(PURGE_REGISTRY, "ftp://x"), (PURGE_POLICY, POLICY)],
                PURGE_REGISTRY,
            ),
        ];
        for (pairs, setting) in cases {
            let err = load(&pairs).expect_err(setting);
            assert_eq!(err.setting, setting, "{err}");
            assert!(
                err.to_string()
                    .starts_with(&format!("app setting {setting}:"))
            );
        }
    }

    #[test]
    fn falls_back_to_a_packaged_policy_json() {
        let dir = tempfile::tempdir().unwrap();
        let lookup = |name: &str| (name == PURGE_REGISTRY).then(|| "r".to_string());
        let err = Config::from_lookup(lookup, dir.path()).unwrap_err();
        assert_eq!(err.setting, PURGE_POLICY);
        assert!(err.problem.contains("policy.json"), "{err}");
        std::fs::write(dir.path().join("policy.json"), POLICY).unwrap();
        let config = Config::from_lookup(lookup, dir.path()).unwrap();
        assert_eq!(config.policy.policy.rules.len(), 1);
        std::fs::write(dir.path().join("policy.json"), "{").unwrap();
        let err = Config::from_lookup(lookup, dir.path()).unwrap_err();
        assert_eq!(err.setting, PURGE_POLICY_FILE);
    }

    #[test]
    fn webhook_secret_problems_do_not_block_the_timer() {
        let config = load(&[(PURGE_REGISTRY, "r"), (PURGE_POLICY, POLICY)]).unwrap();
        assert_eq!(config.webhook_secret.unwrap_err().setting, KEY_VAULT_URL);
        let config = load(&[
            (PURGE_REGISTRY, "r"),
            (PURGE_POLICY, POLICY),
            (KEY_VAULT_URL, "https://v.vault.azure.net/"),
        ])
        .unwrap();
        assert_eq!(
            config.webhook_secret.unwrap_err().setting,
            WEBHOOK_SECRET_NAME
        );
        let config = load(&[
            (PURGE_REGISTRY, "r"),
            (PURGE_POLICY, POLICY),
            (WEBHOOK_SECRET, "s"),
        ])
        .unwrap();
        assert_eq!(
            config.webhook_secret.unwrap(),
            SecretSource::Plain("s".into())
        );
    }

    #[test]
    fn webhook_secret_is_used_exactly_as_given() {
        let base = [(PURGE_REGISTRY, "r"), (PURGE_POLICY, POLICY)];
        for padded in [" s3cret", "s3cret\n", "\ts3cret "] {
            let config = load(&[base[0], base[1], (WEBHOOK_SECRET, padded)]).unwrap();
            let err = config.webhook_secret.unwrap_err();
            assert_eq!(err.setting, WEBHOOK_SECRET, "{err}");
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
        let config = load(&[base[0], base[1], (WEBHOOK_SECRET, "s3 cr3t")]).unwrap();
        assert_eq!(
            config.webhook_secret.unwrap(),
            SecretSource::Plain("s3 cr3t".into())
        );
    }

    #[test]
    fn errors_do_not_echo_credentials() {
        let config = load(&[
            (PURGE_REGISTRY, "r"),
            (PURGE_POLICY, POLICY),
            (
                KEY_VAULT_URL,
                "http://vaultuser:vaultpass@v.vault.azure.net/",
            ),
            (WEBHOOK_SECRET_NAME, "hook"),
        ])
        .unwrap();
        let err = config.webhook_secret.unwrap_err().to_string();
        assert!(err.starts_with("app setting KEY_VAULT_URL:"), "{err}");
        assert!(
            !err.contains("vaultpass") && !err.contains("vaultuser"),
            "{err}"
        );
        let config = load(&[
            (PURGE_REGISTRY, "r"),
            (PURGE_POLICY, POLICY),
            (
                KEY_VAULT_URL,
                "https://vaultuser:vaultpass@v.vault.azure.net/",
            ),
            (WEBHOOK_SECRET_NAME, "hook"),
        ])
        .unwrap();
        let err = config.webhook_secret.unwrap_err().to_string();
        assert!(
            !err.contains("vaultpass") && !err.contains("vaultuser"),
            "{err}"
        );
        for registry in [
            "ftp://user:hunter22@r.azurecr.io",
            "http://user:hunter22@",
            "http://user:hunter22@host:99999",
        ] {
            let Err(err) = load(&[(PURGE_REGISTRY, registry), (PURGE_POLICY, POLICY)]) else {
                continue;
            };
            let text = err.to_string();
            assert_eq!(err.setting, PURGE_REGISTRY);
            assert!(!text.contains("hunter22"), "{text}");
        }
    }

    #[test]
    fn redacts_user_information() {
        assert_eq!(
            redact_userinfo("http://u:p4ss@h/x", "bad URL \"http://u:p4ss@h/x\": port"),
            "bad URL \"http://***@h/x\": port"
        );
        assert_eq!(redact_userinfo("http://h/x", "same"), "same");
        assert_eq!(
            redact_userinfo("user:longpass@h", "see longpass"),
            "see ***"
        );
    }
}
