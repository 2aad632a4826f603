//! Seed: the initial content of an emulated registry, read from JSON or built in Rust.
//!
//! The types here are plain data; [`crate::Emulator::new`] validates them
//! (media types, ages, references, duplicates) and reports errors naming the
//! repository and manifest.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest (schema 2) media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI artifact manifest media type (OCI 1.1 release candidate, still served by ACR).
pub const OCI_ARTIFACT: &str = "application/vnd.oci.artifact.manifest.v1+json";
/// The OCI empty config media type, used by OCI 1.1 artifacts.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The media types a seed may use.
pub const MEDIA_TYPES: [&str; 5] = [
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_LIST,
    OCI_ARTIFACT,
];

/// The whole seed: authentication mode and repositories.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seed {
    /// How clients must authenticate (default: anonymous).
    #[serde(default)]
    pub auth: AuthMode,
    /// The repositories, each with its manifests.
    #[serde(default)]
    pub repositories: Vec<RepoSeed>,
}

/// One repository.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RepoSeed {
    /// Repository name, e.g. `team/app`.
    pub name: String,
    /// Its manifests; a repository needs at least one to appear in the catalog.
    #[serde(default)]
    pub manifests: Vec<ManifestSeed>,
}

/// A timestamp in a seed.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum TimeSpec {
    /// Not given: inherited (tag from its manifest, manifest from `age` or now).
    #[default]
    Inherit,
    /// Served as JSON `null`.
    Null,
    /// Served verbatim (may be deliberately invalid, e.g. `"date"`).
    At(String),
    /// An age such as `40d`, `3h`, `15m`, `1d12h`, resolved against now at load time.
    Age(String),
}

/// A manifest. Its body is synthesized from these fields unless `body` is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestSeed {
    /// Local name, unique in the repository; used by `subject`, `children` and
    /// [`Seed::digest`], and mixed into the body so equal specs get distinct digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Media type; `None` models a manifest whose media type the service does not report.
    #[serde(default)]
    pub media_type: Option<String>,
    /// Age shorthand for both timestamps (e.g. `40d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age: Option<String>,
    /// `createdTime`.
    #[serde(default, skip_serializing_if = "TimeSpec::is_inherit")]
    pub created_time: TimeSpec,
    /// `lastUpdateTime`.
    #[serde(default, skip_serializing_if = "TimeSpec::is_inherit")]
    pub last_update_time: TimeSpec,
    /// Lock attribute `deleteEnabled`.
    #[serde(default = "yes")]
    pub delete_enabled: bool,
    /// Lock attribute `writeEnabled`.
    #[serde(default = "yes")]
    pub write_enabled: bool,
    /// Attribute `readEnabled`.
    #[serde(default = "yes")]
    pub read_enabled: bool,
    /// Attribute `listEnabled`.
    #[serde(default = "yes")]
    pub list_enabled: bool,
    /// Tags; in JSON each is a name string or a tag object.
    #[serde(
        default,
        deserialize_with = "de_tags",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tags: Vec<TagSeed>,
    /// Alias or digest of the manifest this one refers to (OCI 1.1 referrer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// `artifactType` of an OCI 1.1 artifact (signature, SBOM, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Children of an index; in JSON each is an alias/digest string or a child object.
    #[serde(
        default,
        deserialize_with = "de_children",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub children: Vec<ChildSeed>,
    /// Config media type (images only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_media_type: Option<String>,
    /// Architecture reported by the list API (images only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Operating system reported by the list API (images only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// `imageSize` (default: derived from the body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<u64>,
    /// Raw body: a JSON string is served as exact bytes, any other JSON value compactly
    /// serialized. Subject and children are then read from the body and not validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// Named layers (blobs of an artifact) instead of the one synthetic layer: a name is
    /// one blob registry-wide (`sha256` of `layer NAME`), so manifests naming the same
    /// layer share it, as images built on one base image do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerSeed>,
}

/// A named layer of a manifest (see [`ManifestSeed::layers`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LayerSeed {
    /// The layer's name; equal names are one blob.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A tag of a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TagSeed {
    /// Tag name.
    pub name: String,
    /// Age shorthand for both timestamps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age: Option<String>,
    /// `createdTime` (default: the manifest's).
    #[serde(default, skip_serializing_if = "TimeSpec::is_inherit")]
    pub created_time: TimeSpec,
    /// `lastUpdateTime` (default: the manifest's).
    #[serde(default, skip_serializing_if = "TimeSpec::is_inherit")]
    pub last_update_time: TimeSpec,
    /// Lock attribute `deleteEnabled`.
    #[serde(default = "yes")]
    pub delete_enabled: bool,
    /// Lock attribute `writeEnabled`.
    #[serde(default = "yes")]
    pub write_enabled: bool,
    /// Attribute `readEnabled`.
    #[serde(default = "yes")]
    pub read_enabled: bool,
    /// Attribute `listEnabled`.
    #[serde(default = "yes")]
    pub list_enabled: bool,
}

/// A child of an index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChildSeed {
    /// Alias or digest of the child manifest (same repository).
    pub manifest: String,
    /// Platform of the descriptor (default: the child's `os`/`architecture`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// An OCI platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Platform {
    /// CPU architecture, e.g. `amd64`.
    pub architecture: String,
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// Variant, e.g. `v8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// Authentication mode of the emulator. JSON: `{"mode": "anonymous" | "basic" | "token", ...}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "camelCase")]
pub enum AuthMode {
    /// No authentication.
    #[default]
    Anonymous,
    /// HTTP Basic on every call.
    Basic {
        /// Expected user name.
        username: String,
        /// Expected password.
        password: String,
    },
    /// The ACR bearer flow (`/oauth2/exchange`, `/oauth2/token`).
    Token(TokenAuth),
}

/// Options of the ACR token flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TokenAuth {
    /// ABAC registry: `repository:*:*` is ignored, refresh tokens carry `aad_identity`.
    pub abac: bool,
    /// Access token lifetime (0 = already expired when issued).
    pub access_token_ttl_seconds: u64,
    /// Refresh token lifetime (0 = already expired when issued).
    pub refresh_token_ttl_seconds: u64,
    /// Repositories whose scopes are never granted.
    pub deny_repositories: Vec<String>,
    /// If set, `/oauth2/exchange` only accepts this Entra access token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_access_token: Option<String>,
}

impl Default for TokenAuth {
    fn default() -> Self {
        TokenAuth {
            abac: false,
            access_token_ttl_seconds: 75 * 60,
            refresh_token_ttl_seconds: 3 * 3600,
            deny_repositories: Vec::new(),
            required_access_token: None,
        }
    }
}

fn yes() -> bool {
    true
}

impl TimeSpec {
    /// A relative age such as `40d`.
    pub fn age(age: &str) -> TimeSpec {
        TimeSpec::Age(age.to_string())
    }

    /// A timestamp served verbatim.
    pub fn at(text: &str) -> TimeSpec {
        TimeSpec::At(text.to_string())
    }

    /// True for [`TimeSpec::Inherit`].
    pub fn is_inherit(&self) -> bool {
        matches!(self, TimeSpec::Inherit)
    }
}

impl Serialize for TimeSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            TimeSpec::Inherit | TimeSpec::Null => serializer.serialize_none(),
            TimeSpec::At(text) => serializer.serialize_str(text),
            TimeSpec::Age(age) => AgeObject { age: age.clone() }.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for TimeSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Age(AgeObject),
        }
        Ok(match Option::<Repr>::deserialize(deserializer)? {
            None => TimeSpec::Null,
            Some(Repr::Text(text)) => TimeSpec::At(text),
            Some(Repr::Age(obj)) => TimeSpec::Age(obj.age),
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgeObject {
    age: String,
}

fn de_tags<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<TagSeed>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Name(String),
        Full(TagSeed),
    }
    let items = Vec::<Repr>::deserialize(deserializer)?;
    Ok(items
        .into_iter()
        .map(|item| match item {
            Repr::Name(name) => TagSeed::new(&name),
            Repr::Full(tag) => tag,
        })
        .collect())
}

fn de_children<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<ChildSeed>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Ref(String),
        Full(ChildSeed),
    }
    let items = Vec::<Repr>::deserialize(deserializer)?;
    Ok(items
        .into_iter()
        .map(|item| match item {
            Repr::Ref(manifest) => ChildSeed {
                manifest,
                platform: None,
            },
            Repr::Full(child) => child,
        })
        .collect())
}

impl Seed {
    /// An empty, anonymous seed.
    pub fn new() -> Seed {
        Seed::default()
    }

    /// Parses the JSON seed format (no validation; see `Emulator::new`).
    pub fn from_json(text: &str) -> anyhow::Result<Seed> {
        serde_json::from_str(text).map_err(|e| anyhow::anyhow!("invalid seed JSON: {e}"))
    }

    /// Serializes to the JSON seed format.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Sets the authentication mode.
    pub fn with_auth(mut self, auth: AuthMode) -> Seed {
        self.auth = auth;
        self
    }

    /// Adds a repository.
    pub fn repo(mut self, repo: RepoSeed) -> Seed {
        self.repositories.push(repo);
        self
    }
}

impl RepoSeed {
    /// An empty repository.
    pub fn new(name: &str) -> RepoSeed {
        RepoSeed {
            name: name.to_string(),
            manifests: Vec::new(),
        }
    }

    /// Adds a manifest.
    pub fn manifest(mut self, manifest: ManifestSeed) -> RepoSeed {
        self.manifests.push(manifest);
        self
    }

    /// Adds a manifest in place (for generated seeds).
    pub fn push(&mut self, manifest: ManifestSeed) {
        self.manifests.push(manifest);
    }
}

impl ManifestSeed {
    /// A manifest of the given media type (`None`: not reported) with default fields.
    pub fn new(alias: &str, media_type: Option<&str>) -> ManifestSeed {
        ManifestSeed {
            alias: Some(alias.to_string()),
            media_type: media_type.map(str::to_string),
            age: None,
            created_time: TimeSpec::Inherit,
            last_update_time: TimeSpec::Inherit,
            delete_enabled: true,
            write_enabled: true,
            read_enabled: true,
            list_enabled: true,
            tags: Vec::new(),
            subject: None,
            artifact_type: None,
            children: Vec::new(),
            config_media_type: None,
            architecture: None,
            os: None,
            image_size: None,
            body: None,
            layers: Vec::new(),
        }
    }

    /// An OCI image manifest for linux/amd64.
    pub fn image(alias: &str) -> ManifestSeed {
        ManifestSeed::new(alias, Some(OCI_MANIFEST)).platform("linux", "amd64")
    }

    /// A Docker v2 image manifest for linux/amd64.
    pub fn docker(alias: &str) -> ManifestSeed {
        ManifestSeed::new(alias, Some(DOCKER_MANIFEST)).platform("linux", "amd64")
    }

    /// An OCI image index (add children with [`ManifestSeed::child`]).
    pub fn index(alias: &str) -> ManifestSeed {
        ManifestSeed::new(alias, Some(OCI_INDEX))
    }

    /// A Docker manifest list.
    pub fn docker_list(alias: &str) -> ManifestSeed {
        ManifestSeed::new(alias, Some(DOCKER_LIST))
    }

    /// An OCI 1.1 artifact (image manifest with `artifactType` and an empty config),
    /// typically made a referrer with [`ManifestSeed::subject`].
    pub fn artifact(alias: &str, artifact_type: &str) -> ManifestSeed {
        let mut m = ManifestSeed::new(alias, Some(OCI_MANIFEST));
        m.artifact_type = Some(artifact_type.to_string());
        m.config_media_type = Some(OCI_EMPTY.to_string());
        m
    }

    /// An `application/vnd.oci.artifact.manifest.v1+json` manifest.
    pub fn oci_artifact_manifest(alias: &str, artifact_type: &str) -> ManifestSeed {
        let mut m = ManifestSeed::new(alias, Some(OCI_ARTIFACT));
        m.artifact_type = Some(artifact_type.to_string());
        m
    }

    /// A manifest whose media type the service does not report.
    pub fn untyped(alias: &str) -> ManifestSeed {
        ManifestSeed::new(alias, None)
    }

    /// Sets both timestamps to an age such as `40d`.
    pub fn age(mut self, age: &str) -> ManifestSeed {
        self.age = Some(age.to_string());
        self
    }

    /// Sets `createdTime`.
    pub fn created(mut self, time: TimeSpec) -> ManifestSeed {
        self.created_time = time;
        self
    }

    /// Sets `lastUpdateTime`.
    pub fn updated(mut self, time: TimeSpec) -> ManifestSeed {
        self.last_update_time = time;
        self
    }

    /// Adds a tag (a name or a [`TagSeed`]).
    pub fn tag(mut self, tag: impl Into<TagSeed>) -> ManifestSeed {
        self.tags.push(tag.into());
        self
    }

    /// Adds several tags by name.
    pub fn tags(mut self, names: &[&str]) -> ManifestSeed {
        self.tags.extend(names.iter().map(|n| TagSeed::new(n)));
        self
    }

    /// Locks the manifest (`deleteEnabled: false`).
    pub fn locked(mut self) -> ManifestSeed {
        self.delete_enabled = false;
        self
    }

    /// Sets `deleteEnabled`.
    pub fn delete_enabled(mut self, value: bool) -> ManifestSeed {
        self.delete_enabled = value;
        self
    }

    /// Sets `writeEnabled`.
    pub fn write_enabled(mut self, value: bool) -> ManifestSeed {
        self.write_enabled = value;
        self
    }

    /// Makes this manifest a referrer of `alias_or_digest`.
    pub fn subject(mut self, alias_or_digest: &str) -> ManifestSeed {
        self.subject = Some(alias_or_digest.to_string());
        self
    }

    /// Sets `artifactType`.
    pub fn artifact_type(mut self, artifact_type: &str) -> ManifestSeed {
        self.artifact_type = Some(artifact_type.to_string());
        self
    }

    /// Adds an index child (platform taken from the child).
    pub fn child(mut self, alias_or_digest: &str) -> ManifestSeed {
        self.children.push(ChildSeed {
            manifest: alias_or_digest.to_string(),
            platform: None,
        });
        self
    }

    /// Adds an index child with an explicit platform.
    pub fn child_on(mut self, alias_or_digest: &str, os: &str, architecture: &str) -> ManifestSeed {
        self.children.push(ChildSeed {
            manifest: alias_or_digest.to_string(),
            platform: Some(Platform {
                architecture: architecture.to_string(),
                os: os.to_string(),
                variant: None,
            }),
        });
        self
    }

    /// Sets `os` and `architecture`.
    pub fn platform(mut self, os: &str, architecture: &str) -> ManifestSeed {
        self.os = Some(os.to_string());
        self.architecture = Some(architecture.to_string());
        self
    }

    /// Sets `configMediaType`.
    pub fn config_media_type(mut self, media_type: &str) -> ManifestSeed {
        self.config_media_type = Some(media_type.to_string());
        self
    }

    /// Sets `imageSize`.
    pub fn image_size(mut self, size: u64) -> ManifestSeed {
        self.image_size = Some(size);
        self
    }

    /// Gives it these named layers (shared by every manifest naming them).
    pub fn layers(mut self, layers: &[(&str, u64)]) -> ManifestSeed {
        self.layers = layers
            .iter()
            .map(|(name, size)| LayerSeed {
                name: name.to_string(),
                size: *size,
            })
            .collect();
        self
    }

    /// Serves exactly these bytes as the body.
    pub fn raw_body(mut self, text: &str) -> ManifestSeed {
        self.body = Some(serde_json::Value::String(text.to_string()));
        self
    }
}

impl TagSeed {
    /// An unlocked tag inheriting the manifest's timestamps.
    pub fn new(name: &str) -> TagSeed {
        TagSeed {
            name: name.to_string(),
            age: None,
            created_time: TimeSpec::Inherit,
            last_update_time: TimeSpec::Inherit,
            delete_enabled: true,
            write_enabled: true,
            read_enabled: true,
            list_enabled: true,
        }
    }

    /// Sets both timestamps to an age such as `3d`.
    pub fn age(mut self, age: &str) -> TagSeed {
        self.age = Some(age.to_string());
        self
    }

    /// Sets `createdTime`.
    pub fn created(mut self, time: TimeSpec) -> TagSeed {
        self.created_time = time;
        self
    }

    /// Sets `lastUpdateTime`.
    pub fn updated(mut self, time: TimeSpec) -> TagSeed {
        self.last_update_time = time;
        self
    }

    /// Locks the tag (`deleteEnabled: false`).
    pub fn locked(mut self) -> TagSeed {
        self.delete_enabled = false;
        self
    }

    /// Sets `deleteEnabled`.
    pub fn delete_enabled(mut self, value: bool) -> TagSeed {
        self.delete_enabled = value;
        self
    }

    /// Sets `writeEnabled`.
    pub fn write_enabled(mut self, value: bool) -> TagSeed {
        self.write_enabled = value;
        self
    }
}

impl From<&str> for TagSeed {
    fn from(name: &str) -> TagSeed {
        TagSeed::new(name)
    }
}

impl AuthMode {
    /// Basic authentication with these credentials.
    pub fn basic(username: &str, password: &str) -> AuthMode {
        AuthMode::Basic {
            username: username.to_string(),
            password: password.to_string(),
        }
    }

    /// The ACR token flow with default options.
    pub fn token() -> AuthMode {
        AuthMode::Token(TokenAuth::default())
    }

    /// The ACR token flow on an ABAC registry.
    pub fn abac() -> AuthMode {
        AuthMode::Token(TokenAuth {
            abac: true,
            ..TokenAuth::default()
        })
    }
}
