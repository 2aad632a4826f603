//! The ACR and OCI payloads the engine reads, leniently typed: unknown fields are ignored
//! and every field the service may omit is optional. Only the fields the engine uses are
//! kept (a listing of a million tags is held while its repository is planned), so
//! `createdTime`, `architecture`, `os` and `configMediaType` are not read, and what is kept
//! is compact: digests and tag names shared ([`Shared`]), times as integers
//! ([`Timestamp`]), media types as an enum ([`MediaType`]), each written back exactly as
//! received. The registry client parses these; the planner reads them without the client.

mod blob_digest;
mod lists;
mod media;
mod shared;
mod shrinking;
mod time;

pub use blob_digest::{BlobDigest, BlobKey};
pub use lists::{RareList, TagList};
pub use media::MediaType;
pub use shared::{Digest, Interner, Shared, TagName};
pub use shrinking::filter_map_shrinking;
pub use time::Timestamp;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker manifest list media type.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI artifact manifest media type (OCI 1.1 release candidates).
pub const OCI_ARTIFACT: &str = "application/vnd.oci.artifact.manifest.v1+json";
/// Docker image manifest (schema 2) media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The `Accept` header sent when reading manifests.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.artifact.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, */*";

/// Whether a media type lists child manifests (OCI index or Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// Whether a listed manifest could be a referrer, as far as its listed media type tells:
/// only the Docker schema 2 types certainly cannot carry a `subject`; an OCI type, an
/// unknown type or no type at all may.
pub fn could_be_referrer(media_type: Option<&str>) -> bool {
    !matches!(media_type, Some(DOCKER_MANIFEST | DOCKER_LIST))
}

/// Whether a manifest of this media type may carry an OCI 1.1 `subject`.
pub fn may_have_subject(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == OCI_INDEX || media_type == OCI_ARTIFACT
}

/// Parses an ACR timestamp exactly as ACR writes it: RFC 3339 with an uppercase `T`, seconds
/// 00–59, 0 to 9 fractional digits and `Z` or `±HH:MM`
/// (`2018-09-06T06:17:20.9983915Z`). Anything else (surrounding spaces, a space or
/// lowercase `t` for `T`, lowercase `z`, a leap second) is `None`: an age that cannot be
/// read for certain keeps its item, as acr purge (which cannot read it either) would.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if !is_acr_timestamp(text.as_bytes()) {
        return None;
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The strict shape check behind [`parse_time`]; chrono then checks the calendar.
fn is_acr_timestamp(text: &[u8]) -> bool {
    let digits = |range: std::ops::Range<usize>| {
        text.get(range)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let shape = digits(0..4)
        && text.get(4) == Some(&b'-')
        && digits(5..7)
        && text.get(7) == Some(&b'-')
        && digits(8..10)
        && text.get(10) == Some(&b'T')
        && digits(11..13)
        && text.get(13) == Some(&b':')
        && digits(14..16)
        && text.get(16) == Some(&b':')
        && digits(17..19)
        && text.get(17).is_some_and(|tens| *tens <= b'5');
    if !shape {
        return false;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let count = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=9).contains(&count) {
            return false;
        }
        rest = &fraction[count..];
    }
    match rest {
        b"Z" => true,
        [sign, h1, h2, b':', m1, m2] => {
            matches!(sign, b'+' | b'-') && [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit())
        }
        _ => false,
    }
}

/// `changeableAttributes` of a tag or manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeableAttributes {
    /// False when the item cannot be deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_enabled: Option<bool>,
    /// False when the item cannot be overwritten (also blocks deletion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_enabled: Option<bool>,
    /// False when the item cannot be pulled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_enabled: Option<bool>,
    /// False when the item is hidden from listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_enabled: Option<bool>,
}

impl ChangeableAttributes {
    /// Locked: deletion is refused (`deleteEnabled` or `writeEnabled` false). An absent
    /// attribute counts as enabled, ACR's default.
    pub fn is_locked(&self) -> bool {
        self.delete_enabled == Some(false) || self.write_enabled == Some(false)
    }
}

/// One tag from `GET /acr/v1/{repo}/_tags`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagAttributes {
    /// The tag name.
    pub name: TagName,
    /// The manifest digest it points to.
    #[serde(default)]
    pub digest: Digest,
    /// When the tag was last pushed or moved; this is what `--ago` compares.
    #[serde(default)]
    pub last_update_time: Option<Timestamp>,
    /// Lock attributes.
    #[serde(default)]
    pub changeable_attributes: ChangeableAttributes,
}

/// One manifest from `GET /acr/v1/{repo}/_manifests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestAttributes {
    /// The manifest digest (`sha256:…`).
    #[serde(default)]
    pub digest: Option<Digest>,
    /// Size in bytes of the image.
    #[serde(default)]
    pub image_size: Option<u64>,
    /// When the manifest was last updated; `--ago` for untagged manifests compares this.
    #[serde(default)]
    pub last_update_time: Option<Timestamp>,
    /// The manifest media type; absent on some old manifests.
    #[serde(default)]
    pub media_type: Option<MediaType>,
    /// Tags on the manifest; absent or null when untagged.
    #[serde(default)]
    pub tags: Option<Vec<TagName>>,
    /// Lock attributes.
    #[serde(default)]
    pub changeable_attributes: ChangeableAttributes,
}

impl ManifestAttributes {
    /// The manifest's tags (empty when untagged).
    pub fn tag_names(&self) -> &[TagName] {
        self.tags.as_deref().unwrap_or(&[])
    }
}

/// Shares the digests and names a tag listing repeats (several tags on one image) and
/// returns them, for the manifest listing to share ([`share_manifest`]).
pub fn share_tags(tags: &mut [TagAttributes]) -> Interner {
    let mut shared = Interner::default();
    for tag in tags {
        shared.share(&mut tag.digest);
        shared.share(&mut tag.name);
    }
    shared
}

/// Makes a listed manifest hold the digest and tag names `shared` already holds (those of
/// its tags) instead of copies of its own, and its tag list no longer than it is (read
/// from JSON, a one-tag list has room for four).
pub fn share_manifest(shared: &mut Interner, manifest: &mut ManifestAttributes) {
    if let Some(digest) = manifest.digest.as_mut() {
        shared.share(digest);
    }
    if let Some(tags) = manifest.tags.as_mut() {
        tags.shrink_to_fit();
        for name in tags {
            shared.share(name);
        }
    }
}

/// A descriptor inside a manifest body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    #[serde(default)]
    pub media_type: Option<String>,
    /// Digest of the referenced content.
    pub digest: String,
    /// Artifact type, for referrers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Size in bytes of the referenced content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// The parts of a manifest body that decide deletions: children and subject.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestBody {
    /// The body's own media type field.
    #[serde(default)]
    pub media_type: Option<String>,
    /// Child manifests, for an index or manifest list.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (signatures, SBOMs, attestations).
    #[serde(default)]
    pub subject: Option<Descriptor>,
    /// The artifact type of a referrer.
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// The image's config blob.
    #[serde(default)]
    pub config: Option<Descriptor>,
    /// The image's layer blobs.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// An OCI artifact's blobs.
    #[serde(default)]
    pub blobs: Vec<Descriptor>,
}

impl ManifestBody {
    /// The blobs this manifest references (config, layers, artifact blobs), with their
    /// sizes (0 when the descriptor gives none); an index references none.
    pub fn blob_sizes(&self) -> impl Iterator<Item = (&str, u64)> {
        self.config
            .iter()
            .chain(&self.layers)
            .chain(&self.blobs)
            .map(|d| (d.digest.as_str(), d.size.unwrap_or(0)))
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct TagPage {
    #[serde(default)]
    pub tags: Option<Vec<TagAttributes>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ManifestPage {
    #[serde(default)]
    pub manifests: Option<Vec<ManifestAttributes>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CatalogPage {
    #[serde(default)]
    pub repositories: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SingleTag {
    pub tag: TagAttributes,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SingleManifest {
    pub manifest: ManifestAttributes,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_acr_timestamps_leniently() {
        assert!(parse_time("2018-09-06T06:17:20.9983915Z").is_some());
        assert!(parse_time("2024-01-01T00:00:00+02:00").is_some());
        assert!(parse_time("2024-01-01T00:00:00-05:30").is_some());
        assert!(parse_time("2024-01-01T00:00:00.123456789Z").is_some());
        assert!(parse_time("date").is_none());
        assert!(parse_time("").is_none());
        // Read as strictly as ACR writes: what acr purge cannot read is not a date here.
        for lenient in [
            " 2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00Z ",
            "2024-01-01 00:00:00Z",
            "2024-01-01t00:00:00Z",
            "2024-01-01T00:00:00z",
            "2016-12-31T23:59:60Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00.1234567890Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00+0200",
            "2024-02-30T00:00:00Z",
            "2024-01-01T24:00:00Z",
        ] {
            assert!(parse_time(lenient).is_none(), "{lenient:?}");
        }
    }

    #[test]
    fn a_listed_item_writes_back_as_it_was_received() {
        let odd = [
            (
                "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "2018-09-06T06:17:20.9983915Z",
            ),
            ("sha256:ABC", "2024-01-01T00:00:00+02:00"),
            ("sha512:a b\"c", "2024-01-01T00:00:00.100-05:30"),
            ("", "not a time"),
        ];
        for (digest, time) in odd {
            let json = serde_json::json!({
                "name": "v1",
                "digest": digest,
                "lastUpdateTime": time,
                "changeableAttributes": {"deleteEnabled": true},
            });
            let tag: TagAttributes = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(serde_json::to_value(&tag).unwrap(), json);
            let json = serde_json::json!({
                "digest": digest,
                "imageSize": 7,
                "lastUpdateTime": time,
                "mediaType": DOCKER_MANIFEST,
                "tags": ["v1", "odd tag"],
                "changeableAttributes": {},
            });
            let manifest: ManifestAttributes = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(serde_json::to_value(&manifest).unwrap(), json);
        }
    }

    #[test]
    fn untagged_manifests_have_no_tags() {
        let m: ManifestAttributes =
            serde_json::from_str(r#"{"digest":"sha256:a","tags":null}"#).unwrap();
        assert!(m.tag_names().is_empty());
        assert!(!m.changeable_attributes.is_locked());
        let locked: ChangeableAttributes =
            serde_json::from_str(r#"{"deleteEnabled":true,"writeEnabled":false}"#).unwrap();
        assert!(locked.is_locked());
    }
}
