//! Each listed manifest's state while the manifest decisions are worked out, held by its
//! position in the listing with a look-up by digest ([`ByDigest`]): a vector of states and
//! the positions sorted by digest (8 bytes a manifest), where a map keyed by digest took 86 MB at a
//! million manifests, and a set of the digests present 36 MB more.
//!
//! A digest listed more than once (a listing that repeats an entry) is decided once, at its
//! last position, as the last entry of a map would have been.

use super::manifests::State;
use crate::model::{Digest, ManifestAttributes};

/// A listing's manifests by digest: their positions sorted by digest (8 bytes a manifest,
/// where a set of their digests took 36 bytes at a million).
pub(super) struct ByDigest<'m> {
    listing: &'m [ManifestAttributes],
    /// The positions decided (the last of each digest), sorted by digest.
    positions: Vec<usize>,
}

impl<'m> ByDigest<'m> {
    /// Indexes `listing`.
    pub(super) fn new(listing: &'m [ManifestAttributes]) -> ByDigest<'m> {
        let digest = |p: &usize| listing[*p].digest.as_deref();
        let mut positions: Vec<usize> = (0..listing.len())
            .filter(|&p| listing[p].digest.is_some())
            .collect();
        // Sorted by digest, the last position of a digest first; then that one is kept.
        // In place: positions are distinct, so the order is total without a stable sort's
        // scratch space.
        positions.sort_unstable_by(|a, b| digest(a).cmp(&digest(b)).then(b.cmp(a)));
        positions.dedup_by(|later, first| digest(later) == digest(first));
        ByDigest { listing, positions }
    }

    /// Where the manifest with `digest` is decided.
    pub(super) fn position(&self, digest: &str) -> Option<usize> {
        let found = self
            .positions
            .binary_search_by(|&p| self.digest_at(p).cmp(digest))
            .ok()?;
        self.positions.get(found).copied()
    }

    /// Whether a manifest with `digest` is listed.
    pub(super) fn contains(&self, digest: &str) -> bool {
        self.position(digest).is_some()
    }

    /// Whether the manifest at `position` is decided there (it has a digest, not listed
    /// again later).
    pub(super) fn decides_at(&self, position: usize) -> bool {
        let listing = self.listing;
        let digest = listing.get(position).and_then(|m| m.digest.as_deref());
        digest.and_then(|d| self.position(d)) == Some(position)
    }

    /// The digests of the manifests decided, in listing order.
    pub(super) fn digests(&self) -> impl Iterator<Item = &'m str> + '_ {
        let listing = self.listing;
        (0..listing.len())
            .filter(|&p| self.decides_at(p))
            .map(move |p| listing[p].digest.as_deref().unwrap_or_default())
    }

    fn digest_at(&self, position: usize) -> &'m str {
        let listing = self.listing;
        listing[position].digest.as_deref().unwrap_or_default()
    }
}

/// The states of a listing's manifests (see the module docs).
pub(super) struct States<'m> {
    /// The look-up by digest.
    pub(super) by_digest: ByDigest<'m>,
    /// By listing position; `None` until decided, and for good for an entry without a
    /// digest or listed again later.
    states: Vec<Option<State>>,
}

impl<'m> States<'m> {
    /// No state yet for any manifest of `listing`.
    pub(super) fn new(listing: &'m [ManifestAttributes]) -> States<'m> {
        let mut states = Vec::new();
        states.resize_with(listing.len(), || None);
        States {
            by_digest: ByDigest::new(listing),
            states,
        }
    }

    /// Sets the state of the manifest at `position`.
    pub(super) fn set(&mut self, position: usize, state: State) {
        if let Some(slot) = self.states.get_mut(position) {
            *slot = Some(state);
        }
    }

    /// The state of the manifest with `digest`, once decided.
    pub(super) fn get(&self, digest: &str) -> Option<&State> {
        self.states.get(self.by_digest.position(digest)?)?.as_ref()
    }

    /// The state of the manifest with `digest`, once decided, to change.
    pub(super) fn get_mut(&mut self, digest: &str) -> Option<&mut State> {
        let position = self.by_digest.position(digest)?;
        self.states.get_mut(position)?.as_mut()
    }

    /// Every decided manifest's digest and state, in listing order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&'m Digest, &State)> + '_ {
        let listing = self.by_digest.listing;
        self.states
            .iter()
            .zip(listing)
            .filter_map(|(state, m)| Some((m.digest.as_ref()?, state.as_ref()?)))
    }

    /// The states by listing position, for the decisions.
    pub(super) fn into_vec(self) -> Vec<Option<State>> {
        self.states
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::KeepReason;

    fn listing(digests: &[Option<&str>]) -> Vec<ManifestAttributes> {
        digests
            .iter()
            .map(|d| ManifestAttributes {
                digest: d.map(Digest::from),
                image_size: None,
                last_update_time: None,
                media_type: None,
                tags: None,
                changeable_attributes: Default::default(),
            })
            .collect()
    }

    #[test]
    fn a_digest_listed_twice_is_decided_once_at_its_last_position() {
        let listing = listing(&[Some("b"), Some("a"), Some("b"), None, Some("c")]);
        let mut states = States::new(&listing);
        let by_digest = &states.by_digest;
        assert_eq!(by_digest.position("b"), Some(2));
        assert_eq!(by_digest.position("a"), Some(1));
        assert_eq!(by_digest.position("c"), Some(4));
        assert!(!by_digest.contains("d"));
        let decided: Vec<bool> = (0..6).map(|p| by_digest.decides_at(p)).collect();
        assert_eq!(decided, [false, true, true, false, true, false]);
        assert_eq!(by_digest.digests().collect::<Vec<_>>(), ["a", "b", "c"]);
        states.set(2, State::Keep(KeepReason::NoMediaType));
        assert!(states.get("a").is_none(), "not decided yet");
        assert!(matches!(states.get("b"), Some(State::Keep(_))));
        if let Some(state) = states.get_mut("b") {
            *state = State::Keep(KeepReason::BodyUnavailable);
        }
        let all: Vec<(&str, bool)> = states
            .iter()
            .map(|(d, s)| {
                (
                    d.as_str(),
                    matches!(s, State::Keep(KeepReason::BodyUnavailable)),
                )
            })
            .collect();
        assert_eq!(all, [("b", true)]);
        let by_position = states.into_vec();
        assert_eq!(by_position.len(), 5);
        assert!(by_position[2].is_some() && by_position[0].is_none());
    }
}
