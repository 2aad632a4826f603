//! Mapping a listing-sized vector into another without holding both whole: a repository's
//! items take tens of megabytes, and each step from listing to plan to report maps them.

/// `items` mapped in order through `f` (dropping those it maps to `None`). The items are
/// taken from the back (`f` sees the last item first, which callers that walk a parallel
/// vector rely on) and the source is shrunk as it empties, so the memory of both is about
/// that of the larger, not their sum.
pub fn filter_map_shrinking<T, U>(mut items: Vec<T>, mut f: impl FnMut(T) -> Option<U>) -> Vec<U> {
    /// How many taken items the source may keep room for before it is shrunk.
    const STEP: usize = 4096;
    let mut mapped = Vec::with_capacity(items.len());
    while let Some(item) = items.pop() {
        mapped.extend(f(item));
        if items.capacity() - items.len() >= STEP {
            items.shrink_to_fit();
        }
    }
    mapped.reverse();
    mapped.shrink_to_fit();
    mapped
}

#[cfg(test)]
mod tests {
    use super::filter_map_shrinking;

    #[test]
    fn maps_in_order_and_drops_nones() {
        let items: Vec<u32> = (0..10_000).collect();
        let mapped = filter_map_shrinking(items, |i| (i % 3 != 0).then(|| u64::from(i) * 2));
        let want: Vec<u64> = (0..10_000u32)
            .filter(|i| i % 3 != 0)
            .map(|i| u64::from(i) * 2)
            .collect();
        assert_eq!(mapped, want);
        assert!(filter_map_shrinking(Vec::<u8>::new(), Some).is_empty());
        let mut seen = Vec::new();
        filter_map_shrinking(vec![1, 2, 3], |i| {
            seen.push(i);
            Some(i)
        });
        assert_eq!(seen, [3, 2, 1], "the last item first");
    }
}
