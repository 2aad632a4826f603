//! Shared text for what a listing repeats: a digest is named by its tag, its manifest,
//! the plan's maps and reasons; a tag name by its tag and its manifest. Each is one
//! reference-counted allocation that every holder shares (16 bytes a holder instead of a
//! `String` copy of 24 bytes plus the text), read as a `&str` and written to JSON exactly
//! as the string it was received as.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// Text shared by every holder: a manifest digest ([`Digest`]) or a tag name ([`TagName`]).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Shared(Arc<str>);

/// A manifest digest (`sha256:…`) as received; clones share one allocation.
pub type Digest = Shared;

/// A tag name as received; clones share one allocation.
pub type TagName = Shared;

impl Shared {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Shared {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Shared {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Shared {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for Shared {
    fn from(text: &str) -> Shared {
        Shared(Arc::from(text))
    }
}

impl From<String> for Shared {
    fn from(text: String) -> Shared {
        Shared(Arc::from(text))
    }
}

impl From<&String> for Shared {
    fn from(text: &String) -> Shared {
        Shared(Arc::from(text.as_str()))
    }
}

impl From<Shared> for String {
    fn from(text: Shared) -> String {
        text.0.to_string()
    }
}

impl PartialEq<str> for Shared {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Shared {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Shared {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<Shared> for String {
    fn eq(&self, other: &Shared) -> bool {
        **self == *other.0
    }
}

impl PartialEq<Shared> for &str {
    fn eq(&self, other: &Shared) -> bool {
        **self == *other.0
    }
}

impl Serialize for Shared {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Shared {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Shared, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(Shared::from(&*text))
    }
}

/// Hands out one [`Shared`] per distinct text: a text seen before comes back as the
/// earlier allocation, so the copies a listing repeats are freed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interner(HashSet<Shared>);

impl Interner {
    /// The shared text equal to `text`, remembering it when new.
    pub fn intern(&mut self, text: Shared) -> Shared {
        match self.0.get(text.as_str()) {
            Some(known) => known.clone(),
            None => {
                self.0.insert(text.clone());
                text
            }
        }
    }

    /// Replaces `text` in place by the shared copy.
    pub fn share(&mut self, text: &mut Shared) {
        *text = self.intern(std::mem::take(text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_as_the_received_string() {
        for text in ["sha256:abc", "odd digest \u{e9}\"\\", ""] {
            let json = serde_json::to_string(text).unwrap();
            let shared: Shared = serde_json::from_str(&json).unwrap();
            assert_eq!(shared, text);
            assert_eq!(serde_json::to_string(&shared).unwrap(), json);
            assert_eq!(format!("{shared:?}"), format!("{text:?}"));
        }
    }

    #[test]
    fn an_interner_hands_out_one_allocation_per_text() {
        let mut interner = Interner::default();
        let first = interner.intern(Shared::from("sha256:a"));
        let mut again = Shared::from("sha256:a");
        interner.share(&mut again);
        assert!(Arc::ptr_eq(&first.0, &again.0));
        let other = interner.intern(Shared::from("sha256:b"));
        assert!(!Arc::ptr_eq(&first.0, &other.0));
    }
}
