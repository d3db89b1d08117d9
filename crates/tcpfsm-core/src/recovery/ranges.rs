//! A set of disjoint byte ranges over unwrapped (64-bit) sequence numbers: the octets the peer
//! has reported by SACK. Adjacent ranges merge, so its length is the number of SACKed islands
//! (one more than the holes), which stays small; insertion reports only the newly covered
//! parts, so a block the receiver repeats on every ACK costs a binary search, not a walk over
//! the segments it covers.

#[derive(Debug, Clone, Default)]
pub(crate) struct Ranges {
    /// Sorted, disjoint, non-adjacent `[start, end)` pairs.
    v: Vec<(u64, u64)>,
}

impl Ranges {
    pub(crate) fn with_capacity(n: usize) -> Ranges {
        Ranges {
            v: Vec::with_capacity(n),
        }
    }

    /// Takes `old`'s storage, emptied, if this set has none (see `Scoreboard::adopt_storage`).
    pub(crate) fn adopt(&mut self, old: &mut Ranges) {
        if self.v.capacity() == 0 {
            self.v = std::mem::take(&mut old.v);
            self.v.clear();
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.v.capacity()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.v.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.v.len()
    }

    pub(crate) fn clear(&mut self) {
        self.v.clear();
    }

    /// The highest covered octet + 1.
    pub(crate) fn highest(&self) -> Option<u64> {
        self.v.last().map(|r| r.1)
    }

    /// Ranges from the top down.
    pub(crate) fn iter_rev(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.v.iter().rev().copied()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.v.iter().copied()
    }

    /// The range containing octet `x`, if any.
    pub(crate) fn containing(&self, x: u64) -> Option<(u64, u64)> {
        let i = self.v.partition_point(|r| r.1 <= x);
        self.v.get(i).copied().filter(|r| r.0 <= x)
    }

    /// Whether `[a, b)` is entirely covered.
    pub(crate) fn covers(&self, a: u64, b: u64) -> bool {
        a >= b || self.containing(a).is_some_and(|r| b <= r.1)
    }

    /// Adds `[a, b)`; pushes onto `gaps` each sub-range that was not covered before.
    pub(crate) fn insert(&mut self, a: u64, b: u64, gaps: &mut Vec<(u64, u64)>) {
        if a >= b {
            return;
        }
        // Ranges i..j overlap or touch [a, b].
        let i = self.v.partition_point(|r| r.1 < a);
        let j = self.v.partition_point(|r| r.0 <= b);
        let mut cursor = a;
        for &(s, e) in &self.v[i..j] {
            if s > cursor {
                gaps.push((cursor, s.min(b)));
            }
            cursor = cursor.max(e);
        }
        if cursor < b {
            gaps.push((cursor, b));
        }
        if i < j {
            let merged = (a.min(self.v[i].0), b.max(self.v[j - 1].1));
            self.v[i] = merged;
            self.v.drain(i + 1..j);
        } else {
            self.v.insert(i, (a, b));
        }
    }

    /// Forgets everything below `x` (a cumulative ACK).
    pub(crate) fn remove_below(&mut self, x: u64) {
        let n = self.v.partition_point(|r| r.1 <= x);
        self.v.drain(..n);
        if let Some(first) = self.v.first_mut() {
            first.0 = first.0.max(x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(r: &mut Ranges, a: u64, b: u64) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        r.insert(a, b, &mut gaps);
        gaps
    }

    #[test]
    fn insert_reports_only_new_coverage_and_merges() {
        let mut r = Ranges::default();
        assert_eq!(insert(&mut r, 10, 20), vec![(10, 20)]);
        assert_eq!(insert(&mut r, 30, 40), vec![(30, 40)]);
        assert_eq!(insert(&mut r, 10, 20), vec![]);
        assert_eq!(insert(&mut r, 15, 35), vec![(20, 30)]);
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![(10, 40)]);
        assert_eq!(insert(&mut r, 40, 50), vec![(40, 50)]);
        assert_eq!(r.len(), 1, "adjacent ranges merge");
        assert_eq!(insert(&mut r, 60, 70), vec![(60, 70)]);
        assert_eq!(insert(&mut r, 0, 100), vec![(0, 10), (50, 60), (70, 100)]);
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![(0, 100)]);
    }

    #[test]
    fn covers_and_remove_below() {
        let mut r = Ranges::default();
        insert(&mut r, 10, 20);
        insert(&mut r, 30, 40);
        assert!(r.covers(12, 20) && !r.covers(12, 21) && !r.covers(20, 30));
        assert_eq!(r.containing(35), Some((30, 40)));
        assert_eq!(r.containing(25), None);
        r.remove_below(15);
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![(15, 20), (30, 40)]);
        r.remove_below(40);
        assert!(r.is_empty());
    }
}
