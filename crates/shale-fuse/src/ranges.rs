//! Sets of byte ranges: what was written to a file since a point.

/// Ranges kept per file before they are merged into one.
const MAX_RANGES: usize = 256;

/// Adds `start..end` to sorted, disjoint `ranges`, merging what touches;
/// past [`MAX_RANGES`] they become one range over them all (for ranges
/// that may grow: what to look at again, never what is held).
pub fn add_range(ranges: &mut Vec<(u64, u64)>, start: u64, end: u64) {
    insert_range(ranges, start, end);
    if ranges.len() > MAX_RANGES {
        let whole = (ranges[0].0, ranges[ranges.len() - 1].1);
        *ranges = vec![whole];
    }
}

/// Adds `start..end` to sorted, disjoint `ranges`, merging what touches.
pub fn insert_range(ranges: &mut Vec<(u64, u64)>, start: u64, end: u64) {
    // The common case: appending to the last range (a file written in order).
    if let Some(last) = ranges.last_mut() {
        if last.0 <= start && start <= last.1 {
            last.1 = last.1.max(end);
            return;
        }
    }
    let first = ranges.partition_point(|r| r.1 < start);
    let last = ranges.partition_point(|r| r.0 <= end);
    let (mut s, mut e) = (start, end);
    if first < last {
        s = s.min(ranges[first].0);
        e = e.max(ranges[last - 1].1);
    }
    ranges.splice(first..last, [(s, e)]);
}

/// Cuts `ranges` at `end`: what lies past it goes.
pub fn clip(ranges: &mut Vec<(u64, u64)>, end: u64) {
    ranges.retain(|r| r.0 < end);
    if let Some(last) = ranges.last_mut() {
        last.1 = last.1.min(end);
    }
}

/// Whether any of sorted, disjoint `ranges` overlaps `start..end`.
pub fn touches(ranges: &[(u64, u64)], start: u64, end: u64) -> bool {
    let i = ranges.partition_point(|r| r.1 <= start);
    ranges.get(i).is_some_and(|r| r.0 < end)
}

/// How many bytes of `start..end` sorted, disjoint `ranges` cover.
pub fn covered(ranges: &[(u64, u64)], start: u64, end: u64) -> u64 {
    let i = ranges.partition_point(|r| r.1 <= start);
    ranges[i..]
        .iter()
        .take_while(|r| r.0 < end)
        .map(|r| r.1.min(end) - r.0.max(start))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covered_counts_the_overlap() {
        let r = vec![(10, 20), (30, 40), (50, 60)];
        assert_eq!(covered(&r, 0, 100), 30);
        assert_eq!(covered(&r, 15, 35), 10);
        assert_eq!(covered(&r, 20, 30), 0);
        assert_eq!(covered(&r, 55, 56), 1);
        assert_eq!(covered(&[], 0, 10), 0);
    }

    #[test]
    fn ranges_merge_where_they_touch() {
        let mut r = Vec::new();
        add_range(&mut r, 10, 20);
        add_range(&mut r, 20, 30);
        assert_eq!(r, vec![(10, 30)]);
        add_range(&mut r, 0, 5);
        add_range(&mut r, 40, 50);
        assert_eq!(r, vec![(0, 5), (10, 30), (40, 50)]);
        add_range(&mut r, 4, 41);
        assert_eq!(r, vec![(0, 50)]);
        add_range(&mut r, 60, 61);
        add_range(&mut r, 55, 56);
        assert_eq!(r, vec![(0, 50), (55, 56), (60, 61)]);
    }

    #[test]
    fn ranges_are_cut_at_an_end() {
        let mut r = vec![(0, 10), (20, 30), (40, 50)];
        clip(&mut r, 25);
        assert_eq!(r, vec![(0, 10), (20, 25)]);
        clip(&mut r, 20);
        assert_eq!(r, vec![(0, 10)]);
        clip(&mut r, 0);
        assert!(r.is_empty());
    }

    #[test]
    fn many_ranges_become_one_only_where_allowed() {
        let (mut merged, mut kept) = (Vec::new(), Vec::new());
        for i in 0..=MAX_RANGES as u64 {
            add_range(&mut merged, i * 10, i * 10 + 1);
            insert_range(&mut kept, i * 10, i * 10 + 1);
        }
        assert_eq!(merged, vec![(0, MAX_RANGES as u64 * 10 + 1)]);
        assert_eq!(kept.len(), MAX_RANGES + 1);
    }

    #[test]
    fn touches_means_overlaps() {
        let r = vec![(10, 20), (30, 40)];
        assert!(!touches(&r, 0, 10));
        assert!(touches(&r, 0, 11));
        assert!(touches(&r, 19, 25));
        assert!(!touches(&r, 20, 30));
        assert!(touches(&r, 20, 31));
        assert!(touches(&r, 35, 36));
        assert!(!touches(&r, 40, 100));
        assert!(!touches(&[], 0, 100));
    }
}
