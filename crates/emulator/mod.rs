//! A stateful Azure Container Registry emulator over real HTTP.
//!
//! It serves the parts of the ACR data plane that `acr purge` uses: `/v2/` (ping,
//! catalog, manifests GET/HEAD/DELETE, tags list, referrers), `/acr/v1/` (catalog,
//! repository attributes/delete, tag and manifest listings with `orderby` and `Link`
//! paging, attribute GET/PATCH, tag DELETE) and the OAuth2 endpoints
//! (`/oauth2/exchange`, `/oauth2/token`). Mutations change the state: deleting a tag only
//! untags; deleting a manifest removes its tags and, recursively, its referrers
//! (manifests whose `subject` is it), but never an index's children; a repository
//! leaves the catalog with its last manifest. Locked items (`deleteEnabled` or
//! `writeEnabled` false) answer 405 to DELETE.
//!
//! Paging notes: `last` is the name (tags) or digest (manifests) of the last item of
//! the previous page. In a time order (`timedesc`/`timeasc`, by `lastUpdateTime`, ties
//! by name; `timedesc` is the exact reverse of `timeasc`, unparseable times sort as
//! oldest), a `last` naming a tag or manifest that no longer exists answers an **empty
//! page**: the server cannot place a deleted cursor, which is why a client must not
//! page with a cursor it has just deleted. Unknown `orderby` values mean the default
//! order. Manifests are not pushed (no PUT); `Accept` is not negotiated.
//!
//! # Seed format (JSON)
//!
//! ```json
//! {
//!   "auth": { "mode": "token", "abac": true, "accessTokenTtlSeconds": 4500,
//!             "refreshTokenTtlSeconds": 10800, "denyRepositories": ["secret"] },
//!   "repositories": [
//!     { "name": "team/app", "manifests": [
//!       { "alias": "amd64", "mediaType": "application/vnd.oci.image.manifest.v1+json",
//!         "age": "40d", "os": "linux", "architecture": "amd64" },
//!       { "alias": "multi", "mediaType": "application/vnd.oci.image.index.v1+json",
//!         "age": "40d", "children": ["amd64"],
//!         "tags": ["v1", { "name": "latest", "age": "15m", "deleteEnabled": false }] },
//!       { "alias": "sbom", "mediaType": "application/vnd.oci.image.manifest.v1+json",
//!         "artifactType": "application/spdx+json", "subject": "multi" },
//!       { "alias": "odd", "mediaType": null, "lastUpdateTime": "date", "createdTime": null }
//!     ] }
//!   ]
//! }
//! ```
//!
//! * `auth.mode`: `anonymous` (default), `basic` (`username`, `password`) or `token`
//!   (`abac`, `accessTokenTtlSeconds` (default 4500), `refreshTokenTtlSeconds` (default
//!   10800), `denyRepositories`, `requiredAccessToken`).
//! * Manifest fields: `alias` (local name, unique per repository, mixed into the body so
//!   equal specs get distinct digests), `mediaType` (one of the five OCI/Docker types, or
//!   null/absent = not reported), `age`, `createdTime`, `lastUpdateTime`, `deleteEnabled`,
//!   `writeEnabled`, `readEnabled`, `listEnabled` (default true), `tags`, `subject`
//!   (alias or digest), `artifactType`, `children` (alias/digest strings or
//!   `{"manifest", "platform": {"os", "architecture", "variant"?}}`; platform defaults to
//!   the child's), `configMediaType`, `architecture`, `os`, `imageSize`, `body` (raw: a
//!   JSON string is served byte for byte, another JSON value compactly; subject and
//!   children are then read from it and not validated).
//! * Tags: a name, or `{"name", "age", "createdTime", "lastUpdateTime", "deleteEnabled",
//!   "writeEnabled", "readEnabled", "listEnabled"}`; timestamps default to the manifest's.
//! * Timestamps: a string is served verbatim (even an invalid one), `null` is served
//!   as null, `{"age": "40d"}` (units d, h, m, s, combinable: `1d12h`) is resolved at load
//!   time to RFC 3339 with 7 fractional digits. Manifests without times are "now".
//! * The digest of a manifest is `sha256:` + hex SHA-256 of its exact body bytes.
//!
//! In Rust, build the same with [`Seed`], [`RepoSeed`], [`ManifestSeed`], [`TagSeed`] and
//! get digests with [`Seed::digest`].
//!
//! # Azure API emulators
//!
//! Two more servers, for what a purge asks Azure besides the registry:
//! [`ResourceGraphEmulator`] (Azure Resource Graph, the workloads that run images) and
//! [`LogAnalyticsEmulator`] (the Logs query API over the registry's
//! `ContainerRegistryRepositoryEvents`, the pulls). Each requires a bearer token, records
//! what it receives, evaluates a small documented KQL subset and answers 400 for the rest.
//! [`KubernetesEmulator`] is an AKS cluster's API server (its pods, over TLS), whose
//! address a `managedClusters` row of the Resource Graph emulator names.

#![warn(missing_docs)]

mod arm;
mod auth;
mod body;
mod faults;
mod http;
mod kql;
mod kubernetes;
mod load;
mod log_analytics;
mod oversize;
mod rates;
mod resource_graph;
mod routes_acr;
mod routes_v2;
mod sample;
mod seed;
mod serve;
mod snapshot;
mod state;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::routing::{any, post};

pub use arm::{ArmEmulator, ArmRequest};
pub use body::sha256_digest;
pub use faults::{Fault, FaultAction, PathMatch, RecordedRequest};
pub use kubernetes::{KubeRequest, KubernetesEmulator, RunningKubernetes};
pub use load::format_time;
pub use log_analytics::{
    LogAnalyticsEmulator, LogsFault, LogsRequest, REPOSITORY_EVENTS_TABLE, RepositoryEvent,
};
pub use oversize::Oversize;
pub use rates::{CategoryStats, RateCard, RateStats};
pub use resource_graph::{
    ACR_ASSESSMENT_KEY, ACR_ASSESSMENT_KEY_NEW, GraphFault, GraphRequest, GraphResource,
    MAX_SUBSCRIPTIONS_PER_REQUEST, RESOURCE_GRAPH_API_VERSIONS, ResourceGraphEmulator,
    SubAssessment,
};
pub use sample::sample_registry;
pub use seed::{
    AuthMode, ChildSeed, DOCKER_LIST, DOCKER_MANIFEST, ManifestSeed, OCI_ARTIFACT, OCI_EMPTY,
    OCI_INDEX, OCI_MANIFEST, Platform, RepoSeed, Seed, TagSeed, TimeSpec, TokenAuth,
};
pub use serve::RunningServer;
pub use snapshot::{ManifestSnapshot, RepoSnapshot, Snapshot, TagSnapshot};
pub use state::Attributes;

use state::Registry;

/// State shared by all handlers.
pub(crate) struct Shared {
    registry: RwLock<Registry>,
    auth: RwLock<AuthMode>,
    faults: Mutex<Vec<Fault>>,
    requests: Mutex<Vec<RecordedRequest>>,
    recording: AtomicBool,
    latency: Mutex<Duration>,
    max_page_size: Mutex<Option<usize>>,
    limits: Mutex<rates::Limits>,
    secret: String,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn registry_read(&self) -> RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn registry_write(&self) -> RwLockWriteGuard<'_, Registry> {
        self.registry
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn auth(&self) -> AuthMode {
        self.auth
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn latency(&self) -> Duration {
        *lock(&self.latency)
    }

    /// The page size served for a request that asked for `n` items: a server may return
    /// fewer than asked, and a client must follow the Link header (OCI distribution spec,
    /// "Listing Tags": the response MAY hold fewer than `n`; ACR's `_tags` and `_manifests`
    /// page the same way).
    pub(crate) fn page_size(&self, n: usize) -> usize {
        lock(&self.max_page_size).map_or(n, |max| n.min(max.max(1)))
    }

    /// Meters a request against the rate card; `Some(retry_after)` when it is throttled.
    pub(crate) fn admit(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
    ) -> Option<u64> {
        lock(&self.limits).admit(method, path, authorization)
    }

    pub(crate) fn evaluate_faults(&self, method: &str, path: &str, query: &str) -> faults::Verdict {
        faults::evaluate(&mut lock(&self.faults), method, path, query)
    }

    pub(crate) fn recording(&self) -> bool {
        self.recording.load(Ordering::Relaxed)
    }

    pub(crate) fn record_start(&self, request: RecordedRequest) -> usize {
        let mut requests = lock(&self.requests);
        requests.push(request);
        requests.len() - 1
    }

    pub(crate) fn record_status(&self, index: usize, status: u16) {
        if let Some(r) = lock(&self.requests).get_mut(index) {
            r.status = status;
        }
    }
}

/// A registry emulator; cheap to clone (all clones share the state).
#[derive(Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator").finish_non_exhaustive()
    }
}

impl Emulator {
    /// Validates the seed and builds the emulator (ages resolved against now).
    pub fn new(seed: Seed) -> anyhow::Result<Emulator> {
        let registry = load::load(&seed, chrono::Utc::now())?;
        let secret = format!("{:032x}", rand::random::<u128>());
        Ok(Emulator {
            shared: Arc::new(Shared {
                registry: RwLock::new(registry),
                auth: RwLock::new(seed.auth),
                faults: Mutex::new(Vec::new()),
                requests: Mutex::new(Vec::new()),
                recording: AtomicBool::new(true),
                latency: Mutex::new(Duration::ZERO),
                max_page_size: Mutex::new(None),
                limits: Mutex::default(),
                secret,
            }),
        })
    }

    /// Parses and validates a JSON seed (see the module docs).
    pub fn from_json(text: &str) -> anyhow::Result<Emulator> {
        Emulator::new(Seed::from_json(text)?)
    }

    /// The axum router serving the API.
    pub fn router(&self) -> Router {
        let shared = self.shared.clone();
        Router::new()
            .route("/v2/", any(routes_v2::ping))
            .route("/v2", any(routes_v2::ping))
            .route("/v2/{*rest}", any(routes_v2::handle))
            .route("/acr/v1/{*rest}", any(routes_acr::handle))
            .route("/oauth2/exchange", post(auth::exchange))
            .route("/oauth2/token", post(auth::token))
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(
                shared.clone(),
                faults::middleware,
            ))
            .with_state(shared)
    }

    /// Serves on `127.0.0.1` with an ephemeral port.
    pub async fn start(&self) -> anyhow::Result<RunningEmulator> {
        self.start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Serves on `addr`.
    pub async fn start_on(&self, addr: SocketAddr) -> anyhow::Result<RunningEmulator> {
        let server = serve::serve_on(self.router(), addr, "registry").await?;
        Ok(RunningEmulator {
            url: server.url.clone(),
            addr: server.addr,
            emulator: self.clone(),
            server,
        })
    }

    /// Enforces ACR's per-identity rate limits from `card` (`None`: unlimited, the default);
    /// resets the buckets. See the `rates` module for the model.
    pub fn set_rate_card(&self, card: Option<RateCard>) {
        lock(&self.shared.limits).set_card(card);
    }

    /// Requests allowed and throttled per rate-card category so far.
    pub fn rate_stats(&self) -> RateStats {
        lock(&self.shared.limits).stats()
    }

    /// Clears the counters of [`Emulator::rate_stats`].
    pub fn reset_rate_stats(&self) {
        lock(&self.shared.limits).reset_stats();
    }

    /// Adds a fault rule (checked in insertion order before normal handling).
    pub fn inject(&self, fault: Fault) {
        lock(&self.shared.faults).push(fault);
    }

    /// Removes all fault rules.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Serves at most `max` items per page of the ACR tag and manifest listings, whatever
    /// the client asks for (`None`: as many as asked).
    pub fn set_max_page_size(&self, max: Option<usize>) {
        *lock(&self.shared.max_page_size) = max;
    }

    /// Sets a latency added to every request (models network round trips).
    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.shared.latency) = latency;
    }

    /// Turns request recording on (the default) or off. Each recorded request keeps its
    /// method, path and query, so a benchmark sending millions of requests turns it off;
    /// requests received meanwhile are not recorded (those recorded stay).
    pub fn set_recording(&self, on: bool) {
        self.shared.recording.store(on, Ordering::Relaxed);
    }

    /// Every request received while recording was on, in arrival order, with its status
    /// (0 while in flight).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::of(&self.shared.registry_read())
    }

    /// Pushes tag `tag` onto the existing manifest `digest` of `repository` (what `docker
    /// push` of an image already there does): the tag is created or moved, updated now.
    pub fn push_tag(&self, repository: &str, tag: &str, digest: &str) -> anyhow::Result<()> {
        let now = load::format_time(chrono::Utc::now());
        let mut registry = self.shared.registry_write();
        let repo = registry
            .repos
            .get_mut(repository)
            .with_context(|| format!("no repository {repository}"))?;
        repo.push_tag(tag, digest, &now)
            .map_err(|_| anyhow::anyhow!("no manifest {digest} in {repository}"))
    }

    /// Changes the authentication mode (already issued tokens stay valid).
    pub fn set_auth(&self, mode: AuthMode) {
        *self
            .shared
            .auth
            .write()
            .unwrap_or_else(PoisonError::into_inner) = mode;
    }
}

async fn not_found(uri: axum::http::Uri) -> http::ApiError {
    http::ApiError::not_found(uri.path())
}

/// A served emulator; stops when dropped or on [`RunningEmulator::shutdown`].
#[derive(Debug)]
pub struct RunningEmulator {
    /// Base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// Bound address.
    pub addr: SocketAddr,
    emulator: Emulator,
    server: RunningServer,
}

impl RunningEmulator {
    /// The emulator being served (for faults, snapshots, recorded requests).
    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    /// The registry host name clients use (`127.0.0.1:PORT`).
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Stops serving and waits (up to 5 s) for the server to finish.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// Loads a JSON seed file (the sample registry when `None`), serves it on `127.0.0.1:port`,
/// prints the URL and runs until Ctrl-C.
pub async fn run_standalone(data_path: Option<&Path>, port: u16) -> anyhow::Result<()> {
    let emulator = match data_path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read seed file {}", path.display()))?;
            Emulator::from_json(&text)
                .with_context(|| format!("invalid seed file {}", path.display()))?
        }
        None => Emulator::new(sample_registry())?,
    };
    let running = emulator
        .start_on(SocketAddr::from(([127, 0, 0, 1], port)))
        .await?;
    println!("ACR emulator listening on {}", running.url);
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    running.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the module docs, kept in sync here.
    const DOC_EXAMPLE: &str = r#"{
      "auth": { "mode": "token", "abac": true, "accessTokenTtlSeconds": 4500,
                "refreshTokenTtlSeconds": 10800, "denyRepositories": ["secret"] },
      "repositories": [
        { "name": "team/app", "manifests": [
          { "alias": "amd64", "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "age": "40d", "os": "linux", "architecture": "amd64" },
          { "alias": "multi", "mediaType": "application/vnd.oci.image.index.v1+json",
            "age": "40d", "children": ["amd64"],
            "tags": ["v1", { "name": "latest", "age": "15m", "deleteEnabled": false }] },
          { "alias": "sbom", "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/spdx+json", "subject": "multi" },
          { "alias": "odd", "mediaType": null, "lastUpdateTime": "date", "createdTime": null }
        ] }
      ]
    }"#;

    #[test]
    fn doc_example_loads() {
        let seed = Seed::from_json(DOC_EXAMPLE).unwrap();
        assert!(
            matches!(&seed.auth, AuthMode::Token(t) if t.abac && t.deny_repositories == ["secret"])
        );
        let snap = Emulator::new(seed.clone()).unwrap().snapshot();
        let multi = snap.manifest_by_alias("team/app", "multi").unwrap();
        assert_eq!(multi.tags, vec!["latest", "v1"]);
        assert_eq!(multi.children, vec![seed.digest("team/app", "amd64")]);
        let latest = &snap.repositories["team/app"].tags["latest"];
        assert!(!latest.attributes.delete_enabled);
        let odd = snap.manifest_by_alias("team/app", "odd").unwrap();
        assert_eq!(odd.last_update_time.as_deref(), Some("date"));
        assert_eq!(odd.created_time, None);
    }
}
