//! Synthesis of manifest bodies (OCI / Docker schema 2 JSON) and their digests.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::seed::{DOCKER_LIST, DOCKER_MANIFEST, OCI_ARTIFACT, OCI_INDEX, OCI_MANIFEST, Platform};

/// Annotation carrying the seed identity, which keeps equal specs distinct.
pub const ID_ANNOTATION: &str = "dev.acr-purge.emulator.id";

/// A content descriptor of another manifest.
#[derive(Debug, Clone)]
pub(crate) struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: usize,
    pub platform: Option<Platform>,
}

/// What a synthesized body is made of.
#[derive(Debug, Clone, Default)]
pub(crate) struct BodySpec<'a> {
    /// `repo/alias`, unique in the registry.
    pub id: &'a str,
    pub media_type: Option<&'a str>,
    pub config_media_type: Option<&'a str>,
    pub artifact_type: Option<&'a str>,
    pub layer_size: u64,
    /// Named, shared layers (replace the synthetic one when given).
    pub layers: &'a [(String, u64)],
    pub subject: Option<Descriptor>,
    pub children: Vec<Descriptor>,
}

/// `sha256:` + hex sha256 of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for b in hash {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Whether a media type is an index or list (a manifest with `manifests[]`).
pub fn is_index(media_type: Option<&str>) -> bool {
    matches!(media_type, Some(OCI_INDEX) | Some(DOCKER_LIST))
}

/// The `Content-Type` to serve for a manifest whose media type may be unreported.
pub(crate) fn content_type(media_type: Option<&str>, has_children: bool) -> &str {
    match media_type {
        Some(mt) => mt,
        None if has_children => OCI_INDEX,
        None => OCI_MANIFEST,
    }
}

/// Synthesizes the exact body bytes.
pub(crate) fn synthesize(spec: &BodySpec<'_>) -> Vec<u8> {
    let value = match spec.media_type {
        Some(OCI_INDEX) | Some(DOCKER_LIST) => index_body(spec),
        None if !spec.children.is_empty() => index_body(spec),
        Some(OCI_ARTIFACT) => artifact_body(spec),
        _ => image_body(spec),
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

fn descriptor_json(d: &Descriptor) -> Value {
    let mut obj = Map::new();
    obj.insert("mediaType".into(), json!(d.media_type));
    obj.insert("digest".into(), json!(d.digest));
    obj.insert("size".into(), json!(d.size));
    if let Some(p) = &d.platform {
        obj.insert("platform".into(), json!(p));
    }
    Value::Object(obj)
}

/// The digest of the shared layer named `name`.
pub fn layer_digest(name: &str) -> String {
    sha256_digest(format!("layer {name}").as_bytes())
}

fn layers_json(spec: &BodySpec<'_>, kind: &str, media_type: &str) -> Value {
    if spec.layers.is_empty() {
        return json!([blob(spec.id, kind, media_type, spec.layer_size)]);
    }
    let layers: Vec<Value> = spec
        .layers
        .iter()
        .map(|(name, size)| json!({"mediaType": media_type, "digest": layer_digest(name), "size": size}))
        .collect();
    Value::Array(layers)
}

fn blob(id: &str, kind: &str, media_type: &str, size: u64) -> Value {
    json!({
        "mediaType": media_type,
        "digest": sha256_digest(format!("{id} {kind}").as_bytes()),
        "size": size,
    })
}

fn common(spec: &BodySpec<'_>, obj: &mut Map<String, Value>) {
    if let Some(mt) = spec.media_type {
        obj.insert("mediaType".into(), json!(mt));
    }
    if let Some(at) = spec.artifact_type {
        obj.insert("artifactType".into(), json!(at));
    }
    if let Some(subject) = &spec.subject {
        obj.insert("subject".into(), descriptor_json(subject));
    }
    if spec.media_type != Some(DOCKER_MANIFEST) {
        obj.insert("annotations".into(), json!({ ID_ANNOTATION: spec.id }));
    }
}

fn image_body(spec: &BodySpec<'_>) -> Value {
    let docker = spec.media_type == Some(DOCKER_MANIFEST);
    let (default_config, layer_type) = if docker {
        (
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        )
    } else {
        (
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        )
    };
    let config_type = spec.config_media_type.unwrap_or(default_config);
    let mut obj = Map::new();
    obj.insert("schemaVersion".into(), json!(2));
    obj.insert("config".into(), blob(spec.id, "config", config_type, 512));
    obj.insert("layers".into(), layers_json(spec, "layer", layer_type));
    common(spec, &mut obj);
    Value::Object(obj)
}

fn index_body(spec: &BodySpec<'_>) -> Value {
    let mut obj = Map::new();
    obj.insert("schemaVersion".into(), json!(2));
    let children: Vec<Value> = spec.children.iter().map(descriptor_json).collect();
    obj.insert("manifests".into(), Value::Array(children));
    common(spec, &mut obj);
    Value::Object(obj)
}

fn artifact_body(spec: &BodySpec<'_>) -> Value {
    let mut obj = Map::new();
    obj.insert(
        "blobs".into(),
        layers_json(spec, "blob", "application/octet-stream"),
    );
    common(spec, &mut obj);
    Value::Object(obj)
}

/// Subject digest and child digests read from a raw body (if it is JSON).
pub(crate) fn references_in(body: &[u8]) -> (Option<String>, Vec<String>) {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return (None, Vec::new());
    };
    let subject = value
        .pointer("/subject/digest")
        .and_then(Value::as_str)
        .map(str::to_string);
    let children = value
        .get("manifests")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|d| d.get("digest").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    (subject, children)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_of_bytes() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn index_body_lists_children_with_platform() {
        let spec = BodySpec {
            id: "app/multi",
            media_type: Some(OCI_INDEX),
            children: vec![Descriptor {
                media_type: OCI_MANIFEST.into(),
                digest: "sha256:aa".into(),
                size: 10,
                platform: Some(Platform {
                    architecture: "arm64".into(),
                    os: "linux".into(),
                    variant: None,
                }),
            }],
            ..BodySpec::default()
        };
        let body: Value = serde_json::from_slice(&synthesize(&spec)).unwrap();
        assert_eq!(body["schemaVersion"], 2);
        assert_eq!(body["mediaType"], OCI_INDEX);
        assert_eq!(body["manifests"][0]["digest"], "sha256:aa");
        assert_eq!(body["manifests"][0]["platform"]["architecture"], "arm64");
        let (subject, children) = references_in(&synthesize(&spec));
        assert_eq!(subject, None);
        assert_eq!(children, vec!["sha256:aa".to_string()]);
    }

    #[test]
    fn distinct_ids_give_distinct_bodies() {
        let a = BodySpec {
            id: "app/a",
            media_type: Some(DOCKER_MANIFEST),
            ..BodySpec::default()
        };
        let b = BodySpec {
            id: "app/b",
            ..a.clone()
        };
        assert_ne!(synthesize(&a), synthesize(&b));
    }
}
