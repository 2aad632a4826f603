//! A tiny OCI distribution client for tests: pushes blobs and manifests (OCI image, Docker
//! schema 2, OCI index, OCI 1.1 artifact with a `subject`) and reads back tags and manifest
//! existence, independently of the crate's own client.

use super::registry_server::RegistryServer;
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI 1.1 empty descriptor media type (`{}`), the config of artifacts.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// What `Accept` must say for distribution 2.8 to serve every kind of manifest as stored
/// (without it, a schema 2 manifest is refused with 400 MANIFEST_INVALID).
pub const ACCEPT_ALL: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// `sha256:` and the hex SHA-256 of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Something pushed: its descriptor fields and exact bytes.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// `sha256:…` of `body`.
    pub digest: String,
    /// Media type it was pushed with.
    pub media_type: String,
    /// Length of `body`.
    pub size: usize,
    /// The exact bytes.
    pub body: Vec<u8>,
}

impl Pushed {
    /// An OCI descriptor of this content.
    pub fn descriptor(&self) -> serde_json::Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// Pushes to and reads from one registry.
#[derive(Debug, Clone)]
pub struct Pusher {
    http: reqwest::Client,
    base: String,
    user: Option<(String, String)>,
}

impl Pusher {
    /// A pusher for `server`, signed in as its htpasswd user if it has one.
    pub fn new(server: &RegistryServer) -> Pusher {
        Pusher::for_url(
            &server.url(),
            server.user().map(|(u, p)| (u.to_string(), p.to_string())),
        )
    }

    /// A pusher for the registry at `base` (`http://host:port`), with optional Basic auth.
    pub fn for_url(base: &str, user: Option<(String, String)>) -> Pusher {
        Pusher {
            http: reqwest::Client::builder()
                .build()
                .expect("building the test HTTP client"),
            base: base.trim_end_matches('/').to_string(),
            user,
        }
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.user {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }

    /// Uploads a blob (monolithic: POST an upload session, then PUT the bytes with their
    /// digest) and returns it.
    pub async fn blob(&self, repository: &str, media_type: &str, bytes: &[u8]) -> Pushed {
        let digest = digest_of(bytes);
        let start = format!("{}/v2/{repository}/blobs/uploads/", self.base);
        let response = self
            .request(reqwest::Method::POST, &start)
            .send()
            .await
            .expect("starting a blob upload");
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let location = match (status, location) {
            (StatusCode::ACCEPTED, Some(location)) => location,
            (status, _) => panic!(
                "POST {start}: expected 202 with a Location, got {status}: {}",
                response.text().await.unwrap_or_default()
            ),
        };
        // The Location may be absolute or relative, and may already carry a query.
        let upload = reqwest::Url::parse(&format!("{}/", self.base))
            .and_then(|base| base.join(&location))
            .expect("resolving the upload Location");
        let separator = if upload.query().is_some() { '&' } else { '?' };
        let put = format!("{upload}{separator}digest={digest}");
        let response = self
            .request(reqwest::Method::PUT, &put)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("uploading a blob");
        let status = response.status();
        assert_eq!(
            status,
            StatusCode::CREATED,
            "PUT blob {digest} to {repository}: {}",
            response.text().await.unwrap_or_default()
        );
        Pushed {
            digest,
            media_type: media_type.to_string(),
            size: bytes.len(),
            body: bytes.to_vec(),
        }
    }

    /// PUTs a manifest by `reference` (a tag, or `None` for its digest) and returns it. The
    /// registry's `Docker-Content-Digest` must match the digest of the bytes.
    pub async fn manifest(
        &self,
        repository: &str,
        reference: Option<&str>,
        media_type: &str,
        body: &[u8],
    ) -> Pushed {
        let digest = digest_of(body);
        let reference = reference.unwrap_or(&digest);
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let response = self
            .request(reqwest::Method::PUT, &url)
            .header(reqwest::header::CONTENT_TYPE, media_type)
            .body(body.to_vec())
            .send()
            .await
            .expect("pushing a manifest");
        let status = response.status();
        let echoed = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        assert_eq!(
            status,
            StatusCode::CREATED,
            "PUT {url} ({media_type}): {}",
            response.text().await.unwrap_or_default()
        );
        assert_eq!(echoed.as_deref(), Some(digest.as_str()), "PUT {url}");
        Pushed {
            digest,
            media_type: media_type.to_string(),
            size: body.len(),
            body: body.to_vec(),
        }
    }

    /// An OCI image (config and one layer derived from `seed`, so different seeds give
    /// different digests), tagged `tag` or pushed by digest.
    pub async fn oci_image(&self, repository: &str, tag: Option<&str>, seed: &str) -> Pushed {
        let config = self.blob(repository, OCI_CONFIG, &image_config(seed)).await;
        let layer = self
            .blob(repository, OCI_LAYER, format!("layer of {seed}").as_bytes())
            .await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer.descriptor()],
        });
        self.manifest(repository, tag, OCI_MANIFEST, &to_bytes(&manifest))
            .await
    }

    /// A Docker schema 2 image derived from `seed`.
    pub async fn docker_image(&self, repository: &str, tag: Option<&str>, seed: &str) -> Pushed {
        let config = self
            .blob(
                repository,
                "application/vnd.docker.container.image.v1+json",
                &image_config(seed),
            )
            .await;
        let layer = self
            .blob(
                repository,
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                format!("docker layer of {seed}").as_bytes(),
            )
            .await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer.descriptor()],
        });
        self.manifest(repository, tag, DOCKER_MANIFEST, &to_bytes(&manifest))
            .await
    }

    /// An OCI image index of `children` (which must already be in `repository`), each with
    /// a distinct linux platform.
    pub async fn oci_index(
        &self,
        repository: &str,
        tag: Option<&str>,
        children: &[&Pushed],
    ) -> Pushed {
        const ARCHES: [&str; 4] = ["amd64", "arm64", "s390x", "ppc64le"];
        let manifests: Vec<serde_json::Value> = children
            .iter()
            .enumerate()
            .map(|(i, child)| {
                let mut descriptor = child.descriptor();
                descriptor["platform"] =
                    json!({"architecture": ARCHES[i % ARCHES.len()], "os": "linux"});
                descriptor
            })
            .collect();
        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        });
        self.manifest(repository, tag, OCI_INDEX, &to_bytes(&index))
            .await
    }

    /// An OCI 1.1 artifact (an image manifest with `artifactType`, the empty config and
    /// `subject`) referring to `subject`, pushed by digest unless `tag` is given.
    pub async fn artifact(
        &self,
        repository: &str,
        tag: Option<&str>,
        artifact_type: &str,
        subject: &Pushed,
    ) -> Pushed {
        let empty = self.blob(repository, OCI_EMPTY, b"{}").await;
        let payload = self
            .blob(
                repository,
                "application/octet-stream",
                format!("{artifact_type} for {}", subject.digest).as_bytes(),
            )
            .await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": empty.descriptor(),
            "layers": [payload.descriptor()],
            "subject": subject.descriptor(),
            "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
        });
        self.manifest(repository, tag, OCI_MANIFEST, &to_bytes(&manifest))
            .await
    }

    /// `GET /v2/<repository>/tags/list`: the tags, sorted (`null` reads as empty); `None`
    /// when the repository is unknown (404).
    pub async fn tags(&self, repository: &str) -> Option<Vec<String>> {
        let url = format!("{}/v2/{repository}/tags/list", self.base);
        let response = self
            .request(reqwest::Method::GET, &url)
            .send()
            .await
            .expect("listing tags");
        if response.status() == StatusCode::NOT_FOUND {
            return None;
        }
        assert!(response.status().is_success(), "GET {url}: {response:?}");
        let body: serde_json::Value = response.json().await.expect("decoding the tag list");
        let mut tags: Vec<String> = match &body["tags"] {
            serde_json::Value::Null => Vec::new(),
            serde_json::Value::Array(items) => items
                .iter()
                .map(|t| t.as_str().expect("a tag is a string").to_string())
                .collect(),
            other => panic!("GET {url}: unexpected tags {other}"),
        };
        tags.sort();
        Some(tags)
    }

    /// Whether `HEAD /v2/<repository>/manifests/<reference>` finds the manifest.
    pub async fn has_manifest(&self, repository: &str, reference: &str) -> bool {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let response = self
            .request(reqwest::Method::HEAD, &url)
            .header(reqwest::header::ACCEPT, ACCEPT_ALL)
            .send()
            .await
            .expect("checking a manifest");
        match response.status() {
            StatusCode::OK => true,
            StatusCode::NOT_FOUND => false,
            other => panic!("HEAD {url}: unexpected {other}"),
        }
    }
}

fn image_config(seed: &str) -> Vec<u8> {
    to_bytes(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"seed": seed}},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(seed.as_bytes())]},
    }))
}

fn to_bytes(value: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("encoding JSON")
}
