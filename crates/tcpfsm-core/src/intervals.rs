//! A coalescing set of byte ranges: which out-of-order stream bytes a receiver holds.
//!
//! Ranges are 64-bit stream offsets (bytes since the peer's ISN + 1), so they never wrap: the
//! 32-bit sequence space of RFC 9293 §3.4 is mapped in and out at the edges. Adjacent and
//! overlapping ranges merge on insert, so a hole filled piece by piece stays one range — what
//! RFC 2018 §4 asks SACK blocks to report.

/// The most separate ranges kept. A peer that sends every other byte of a large window would
/// otherwise make each insert linear in the number of holes; beyond this, new disjoint pieces
/// are refused (and retransmitted later), as Linux prunes its out-of-order queue.
pub(crate) const MAX_RANGES: usize = 256;

#[derive(Debug, Default, Clone)]
pub(crate) struct IntervalSet {
    /// Sorted, disjoint and non-adjacent `[start, end)` ranges.
    v: Vec<(u64, u64)>,
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Inserted {
    /// The range that now contains the inserted bytes.
    pub(crate) merged: (u64, u64),
    /// Bytes of the insert that were not held before.
    pub(crate) new_bytes: u64,
}

impl IntervalSet {
    pub(crate) fn is_empty(&self) -> bool {
        self.v.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.v.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.v.iter().copied()
    }

    /// Total bytes held.
    pub(crate) fn bytes(&self) -> u64 {
        self.v.iter().map(|(s, e)| e - s).sum()
    }

    /// The range containing offset `x`, if any.
    pub(crate) fn containing(&self, x: u64) -> Option<(u64, u64)> {
        let i = self.v.partition_point(|&(_, e)| e <= x);
        self.v.get(i).copied().filter(|&(s, _)| s <= x)
    }

    /// Whether `[s, e)` is held entirely.
    pub(crate) fn covers(&self, s: u64, e: u64) -> bool {
        s >= e || self.containing(s).is_some_and(|(_, ce)| ce >= e)
    }

    /// Adds `[s, e)`, merging with neighbours. `None` when it would be one range too many.
    pub(crate) fn insert(&mut self, s: u64, e: u64) -> Option<Inserted> {
        if s >= e {
            return None;
        }
        // First range that ends at or after s (touching counts: it merges).
        let i = self.v.partition_point(|&(_, re)| re < s);
        // One past the last range that starts at or before e.
        let j = self.v.partition_point(|&(rs, _)| rs <= e);
        if i == j {
            if self.v.len() >= MAX_RANGES {
                return None;
            }
            self.v.insert(i, (s, e));
            return Some(Inserted {
                merged: (s, e),
                new_bytes: e - s,
            });
        }
        let held: u64 = self.v[i..j]
            .iter()
            .map(|&(rs, re)| re.min(e).saturating_sub(rs.max(s)))
            .sum();
        let ms = s.min(self.v[i].0);
        let me = e.max(self.v[j - 1].1);
        self.v.drain(i + 1..j);
        self.v[i] = (ms, me);
        Some(Inserted {
            merged: (ms, me),
            new_bytes: (e - s) - held,
        })
    }

    /// Removes and returns the range starting at or before `x` that reaches beyond it (the
    /// piece that a cumulative advance to `x` makes in order). Ranges wholly below `x` are
    /// dropped.
    pub(crate) fn take_from(&mut self, x: u64) -> Option<(u64, u64)> {
        while let Some(&(s, e)) = self.v.first() {
            if e <= x {
                self.v.remove(0);
                continue;
            }
            if s <= x {
                self.v.remove(0);
                return Some((s, e));
            }
            return None;
        }
        None
    }

    pub(crate) fn clear(&mut self) {
        self.v = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_pieces_coalesce_into_one_range() {
        let mut s = IntervalSet::default();
        s.insert(30, 40);
        s.insert(10, 20);
        let r = s.insert(20, 30).unwrap();
        assert_eq!(r.merged, (10, 40));
        assert_eq!(r.new_bytes, 10);
        assert_eq!(s.iter().collect::<Vec<_>>(), [(10, 40)]);
    }

    #[test]
    fn overlap_counts_only_new_bytes() {
        let mut s = IntervalSet::default();
        s.insert(10, 20);
        s.insert(30, 40);
        let r = s.insert(15, 35).unwrap();
        assert_eq!(r.new_bytes, 10);
        assert_eq!(r.merged, (10, 40));
        assert!(s.covers(12, 38));
        assert!(!s.covers(5, 12));
    }

    #[test]
    fn duplicate_insert_adds_nothing() {
        let mut s = IntervalSet::default();
        s.insert(10, 20);
        assert_eq!(s.insert(12, 18).unwrap().new_bytes, 0);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn take_from_returns_the_range_made_in_order() {
        let mut s = IntervalSet::default();
        s.insert(5, 8);
        s.insert(10, 20);
        s.insert(30, 40);
        assert_eq!(s.take_from(12), Some((10, 20)));
        assert_eq!(s.take_from(25), None);
        assert_eq!(s.iter().collect::<Vec<_>>(), [(30, 40)]);
    }

    #[test]
    fn too_many_ranges_are_refused() {
        let mut s = IntervalSet::default();
        for i in 0..MAX_RANGES as u64 {
            assert!(s.insert(i * 10, i * 10 + 1).is_some());
        }
        assert!(s.insert(1_000_000, 1_000_001).is_none());
        // Merging into an existing range is still fine.
        assert!(s.insert(1, 2).is_some());
    }
}
