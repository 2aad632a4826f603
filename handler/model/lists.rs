//! Lists that a plan holds once per manifest, kept small: a manifest's tags in one shared
//! allocation ([`TagList`], which its `keptTags` reuses when it keeps them all), and a list
//! that is nearly always empty behind one thin pointer ([`RareList`]). Both read and write
//! as the JSON arrays they replace.

use super::TagName;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// Tag names in one reference-counted allocation (none when empty): 16 bytes a holder, and
/// clones share the allocation.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TagList(Option<Arc<[TagName]>>);

impl TagList {
    /// Whether `self` and `other` hold the same allocation (or are both empty).
    pub fn shares(&self, other: &TagList) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl Deref for TagList {
    type Target = [TagName];
    fn deref(&self) -> &[TagName] {
        self.0.as_deref().unwrap_or(&[])
    }
}

impl From<Vec<TagName>> for TagList {
    fn from(tags: Vec<TagName>) -> TagList {
        TagList((!tags.is_empty()).then(|| Arc::from(tags)))
    }
}

impl From<Option<Vec<TagName>>> for TagList {
    fn from(tags: Option<Vec<TagName>>) -> TagList {
        tags.map(TagList::from).unwrap_or_default()
    }
}

impl FromIterator<TagName> for TagList {
    fn from_iter<I: IntoIterator<Item = TagName>>(tags: I) -> TagList {
        TagList::from(tags.into_iter().collect::<Vec<_>>())
    }
}

impl<'a> IntoIterator for &'a TagList {
    type Item = &'a TagName;
    type IntoIter = std::slice::Iter<'a, TagName>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Debug for TagList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl Serialize for TagList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for TagList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TagList, D::Error> {
        Vec::<TagName>::deserialize(deserializer).map(TagList::from)
    }
}

/// A list that is nearly always empty: 8 bytes and no allocation while empty, a boxed
/// vector otherwise. Reads as a slice; [`RareList::push`] and [`RareList::clear`] change it.
#[derive(Clone, PartialEq, Eq)]
#[allow(clippy::box_collection)] // the point: a thin pointer, 8 bytes where a `Vec` takes 24
pub struct RareList<T>(Option<Box<Vec<T>>>);

impl<T> RareList<T> {
    /// Appends `item`.
    pub fn push(&mut self, item: T) {
        self.0.get_or_insert_with(Box::default).push(item);
    }

    /// Empties the list (freeing it).
    pub fn clear(&mut self) {
        self.0 = None;
    }
}

impl<T> Default for RareList<T> {
    fn default() -> RareList<T> {
        RareList(None)
    }
}

impl<T> Deref for RareList<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl<T> DerefMut for RareList<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.0.as_deref_mut().map_or(&mut [], Vec::as_mut_slice)
    }
}

impl<T> From<Vec<T>> for RareList<T> {
    fn from(items: Vec<T>) -> RareList<T> {
        RareList((!items.is_empty()).then(|| Box::new(items)))
    }
}

impl<'a, T> IntoIterator for &'a RareList<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T: fmt::Debug> fmt::Debug for RareList<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: Serialize> Serialize for RareList<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for RareList<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RareList<T>, D::Error> {
        Vec::<T>::deserialize(deserializer).map(RareList::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    #[test]
    fn tag_lists_read_and_write_as_arrays_and_share_on_clone() {
        for json in ["[]", r#"["v1"]"#, r#"["v1","odd \"tag\""]"#] {
            let tags: TagList = serde_json::from_str(json).unwrap();
            assert_eq!(serde_json::to_string(&tags).unwrap(), json);
            let want: Vec<TagName> = serde_json::from_str(json).unwrap();
            assert_eq!(&*tags, want.as_slice());
            assert_eq!(format!("{tags:?}"), format!("{want:?}"));
            assert!(tags.clone().shares(&tags));
        }
        let one = TagList::from(vec![TagName::from("v1")]);
        let equal = TagList::from(vec![TagName::from("v1")]);
        assert_eq!(one, equal);
        assert!(!one.shares(&equal));
        assert!(!one.shares(&TagList::default()));
        assert!(TagList::from(None).is_empty());
        assert_eq!(size_of::<TagList>(), 16);
    }

    #[test]
    fn rare_lists_read_write_and_change_as_vectors() {
        let mut list: RareList<u32> = serde_json::from_str("[3,1]").unwrap();
        list.push(2);
        list.sort();
        assert_eq!(&*list, &[1, 2, 3]);
        assert_eq!(serde_json::to_string(&list).unwrap(), "[1,2,3]");
        assert_eq!(format!("{list:?}"), "[1, 2, 3]");
        list.clear();
        assert!(list.is_empty());
        assert_eq!(list, RareList::default());
        assert_eq!(serde_json::to_string(&list).unwrap(), "[]");
        let empty: RareList<u32> = serde_json::from_str("[]").unwrap();
        assert_eq!(empty, RareList::from(Vec::new()));
        assert_eq!(size_of::<RareList<TagName>>(), 8);
    }
}
