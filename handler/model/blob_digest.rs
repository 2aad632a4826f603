//! A blob digest held as its 32 bytes: the storage figures hold every blob of a repository
//! (two or more per image), and `sha256:` with 64 lowercase hex digits (every digest ACR
//! stores) takes 32 bytes inline where its text took a 71-byte allocation. Any other text is
//! kept as it came. Either way it is written back as the very text it was read from.
//!
//! Where only sameness counts (the storage figures' index), a blob is held as its
//! [`BlobKey`]: a 64-bit fingerprint, 8 bytes.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt::{self, Write};

/// A blob (config, layer) digest: 32 bytes for a lowercase `sha256:` digest, the text
/// otherwise. Two digests are equal when their texts are; the order is only for look-ups.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BlobDigest {
    /// `sha256:` and these bytes as 64 lowercase hex digits.
    Sha256([u8; 32]),
    /// Any other text, as received.
    Other(Box<str>),
}

impl BlobDigest {
    /// Reads `text`: compact when it is a lowercase `sha256:` digest, kept as text otherwise.
    pub fn new(text: &str) -> BlobDigest {
        match sha256_bytes(text) {
            Some(bytes) => BlobDigest::Sha256(bytes),
            None => BlobDigest::Other(text.into()),
        }
    }
}

/// A blob digest's 64-bit fingerprint, for the storage figures' index (8 bytes where a
/// [`BlobDigest`] takes 40): a fixed 64-bit hash of a lowercase `sha256:` digest's 32 bytes,
/// or of any other text (all of it: a made-up digest, such as a zero-padded counter,
/// differs only at its end).
///
/// The trade: the storage figures are a report, never a deletion decision, and two
/// different blobs sharing a fingerprint (a chance of about n²/2⁶⁵ among n blobs, under one
/// in a million for millions of blobs) could only make one removed blob count as shared
/// (not freed). Fingerprints are never persisted: they are computed anew from the text each
/// run, so the hash of other text need only be the same within one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobKey(u64);

impl BlobKey {
    /// The fingerprint of the digest `text` (the same as of [`BlobDigest::new`]`(text)`).
    pub fn new(text: &str) -> BlobKey {
        match sha256_bytes(text) {
            Some(bytes) => BlobKey::of_sha256(&bytes),
            None => BlobKey::of_other(text),
        }
    }

    /// All 32 bytes are hashed, not only the first 8: digests made up by hand (test
    /// fixtures, `sha256:000…0001`) differ only at their end.
    fn of_sha256(bytes: &[u8; 32]) -> BlobKey {
        BlobKey::hashed(0, bytes)
    }

    fn of_other(text: &str) -> BlobKey {
        BlobKey::hashed(1, text.as_bytes())
    }

    /// A keyless hash (`new`, not `RandomState`: the same text gives the same fingerprint
    /// throughout the run) of `kind` then `bytes`.
    fn hashed(kind: u8, bytes: &[u8]) -> BlobKey {
        use std::hash::Hasher;
        let mut hasher = std::hash::DefaultHasher::new();
        hasher.write_u8(kind);
        hasher.write(bytes);
        BlobKey(hasher.finish())
    }
}

impl From<&BlobDigest> for BlobKey {
    fn from(digest: &BlobDigest) -> BlobKey {
        match digest {
            BlobDigest::Sha256(bytes) => BlobKey::of_sha256(bytes),
            BlobDigest::Other(text) => BlobKey::of_other(text),
        }
    }
}

/// The 32 bytes of `sha256:<64 lowercase hex digits>`; `None` for any other text (an
/// uppercase digit would not write back as received).
fn sha256_bytes(text: &str) -> Option<[u8; 32]> {
    let hex = text.strip_prefix("sha256:")?.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let nibble = |digit: u8| match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    };
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(bytes)
}

impl fmt::Display for BlobDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobDigest::Sha256(bytes) => {
                f.write_str("sha256:")?;
                bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
            BlobDigest::Other(text) => f.write_str(text),
        }
    }
}

impl fmt::Debug for BlobDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        fmt::Display::fmt(self, f)?;
        f.write_char('"')
    }
}

impl From<&str> for BlobDigest {
    fn from(text: &str) -> BlobDigest {
        BlobDigest::new(text)
    }
}

impl Serialize for BlobDigest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BlobDigest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<BlobDigest, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(BlobDigest::new(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::{BlobDigest, BlobKey};

    const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_lowercase_sha256_digest_takes_32_bytes_and_writes_back_as_read() {
        let digest = BlobDigest::new(SHA);
        assert!(matches!(digest, BlobDigest::Sha256(_)));
        assert_eq!(digest.to_string(), SHA);
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(json, format!("\"{SHA}\""));
        assert_eq!(serde_json::from_str::<BlobDigest>(&json).unwrap(), digest);
        assert_eq!(std::mem::size_of::<BlobDigest>(), 40);
    }

    #[test]
    fn any_other_text_is_kept_as_text_and_never_equals_a_different_one() {
        let upper = SHA.to_uppercase().replace("SHA256", "sha256");
        for text in [
            upper.as_str(),
            "sha512:abc",
            "sha256:0123",
            &SHA[..SHA.len() - 1],
            "",
        ] {
            let digest = BlobDigest::new(text);
            assert!(matches!(digest, BlobDigest::Other(_)), "{text}");
            assert_eq!(digest.to_string(), text);
            assert_ne!(digest, BlobDigest::new(SHA));
        }
        assert_eq!(BlobDigest::new(SHA), BlobDigest::from(SHA));
    }

    #[test]
    fn a_fingerprint_hashes_the_whole_digest() {
        // Zero-padded counters differ only in their last bytes.
        let counter = |n: u32| format!("sha256:{n:064x}");
        let keys: std::collections::HashSet<BlobKey> =
            (0..1000).map(|n| BlobKey::new(&counter(n))).collect();
        assert_eq!(keys.len(), 1000);
        let upper = SHA.to_uppercase().replace("SHA256", "sha256");
        for text in [SHA, upper.as_str(), "sha512:abc", "odd:blob", ""] {
            assert_eq!(
                BlobKey::new(text),
                BlobKey::from(&BlobDigest::new(text)),
                "{text}"
            );
            assert_eq!(BlobKey::new(text), BlobKey::new(text), "{text}");
        }
        assert_ne!(BlobKey::new(&upper), BlobKey::new(SHA));
        assert_ne!(BlobKey::new("odd:a"), BlobKey::new("odd:b"));
        assert_eq!(std::mem::size_of::<BlobKey>(), 8);
    }
}
