//! A listed manifest's media type: one byte for the five types the engine knows, the text
//! for any other, read as the `&str` it was received as.

use super::{DOCKER_LIST, DOCKER_MANIFEST, OCI_ARTIFACT, OCI_INDEX, OCI_MANIFEST};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::ops::Deref;

/// A media type as received.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum MediaType {
    /// [`OCI_INDEX`].
    OciIndex,
    /// [`DOCKER_LIST`].
    DockerList,
    /// [`OCI_MANIFEST`].
    OciManifest,
    /// [`OCI_ARTIFACT`].
    OciArtifact,
    /// [`DOCKER_MANIFEST`].
    DockerManifest,
    /// Any other text, exactly as received (behind one thin pointer: 16 bytes with the
    /// known types, `Option` included).
    Other(Box<Box<str>>),
}

impl MediaType {
    /// The media type's text.
    pub fn as_str(&self) -> &str {
        match self {
            MediaType::OciIndex => OCI_INDEX,
            MediaType::DockerList => DOCKER_LIST,
            MediaType::OciManifest => OCI_MANIFEST,
            MediaType::OciArtifact => OCI_ARTIFACT,
            MediaType::DockerManifest => DOCKER_MANIFEST,
            MediaType::Other(text) => text,
        }
    }
}

impl From<&str> for MediaType {
    fn from(text: &str) -> MediaType {
        match text {
            OCI_INDEX => MediaType::OciIndex,
            DOCKER_LIST => MediaType::DockerList,
            OCI_MANIFEST => MediaType::OciManifest,
            OCI_ARTIFACT => MediaType::OciArtifact,
            DOCKER_MANIFEST => MediaType::DockerManifest,
            other => MediaType::Other(Box::new(other.into())),
        }
    }
}

impl Deref for MediaType {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for MediaType {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for MediaType {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for MediaType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MediaType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<MediaType, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(MediaType::from(&*text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_media_type_is_16_bytes_known_other_or_absent() {
        assert_eq!(std::mem::size_of::<Option<MediaType>>(), 16);
    }

    #[test]
    fn known_and_odd_types_read_back_as_received() {
        for text in [
            OCI_INDEX,
            DOCKER_LIST,
            OCI_MANIFEST,
            OCI_ARTIFACT,
            DOCKER_MANIFEST,
            "application/vnd.oci.image.manifest.v1+json ",
            "",
        ] {
            let json = serde_json::to_string(text).unwrap();
            let media: MediaType = serde_json::from_str(&json).unwrap();
            assert_eq!(media.as_str(), text);
            assert_eq!(serde_json::to_string(&media).unwrap(), json);
        }
        assert_eq!(MediaType::from(OCI_INDEX), MediaType::OciIndex);
    }
}
