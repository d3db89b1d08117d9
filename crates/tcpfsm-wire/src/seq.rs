//! TCP sequence numbers with RFC 9293 §3.4 modular (mod 2^32) arithmetic.

use core::fmt;
use core::ops::{Add, Sub};

/// A 32-bit TCP sequence number.
///
/// Sequence space wraps at 2^32, so "less than" is only meaningful for numbers
/// less than 2^31 apart (RFC 9293 §3.4). That is why this type deliberately has
/// no `Ord`/`PartialOrd`: a total order would silently give wrong answers across
/// the wrap. Use [`SeqNum::lt`] and friends, which compare via the signed
/// difference.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// `self + n` modulo 2^32.
    #[inline]
    pub fn wrapping_add(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(n))
    }

    /// `(self - other)` interpreted as a signed 32-bit distance.
    #[inline]
    pub fn diff(self, other: SeqNum) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// Modular `self < o`.
    #[inline]
    pub fn lt(self, o: SeqNum) -> bool {
        self.diff(o) < 0
    }

    /// Modular `self <= o`.
    #[inline]
    pub fn le(self, o: SeqNum) -> bool {
        self.diff(o) <= 0
    }

    /// Modular `self > o`.
    #[inline]
    pub fn gt(self, o: SeqNum) -> bool {
        self.diff(o) > 0
    }

    /// Modular `self >= o`.
    #[inline]
    pub fn ge(self, o: SeqNum) -> bool {
        self.diff(o) >= 0
    }

    /// The modularly larger of the two.
    #[inline]
    pub fn max(self, o: SeqNum) -> SeqNum {
        if self.ge(o) {
            self
        } else {
            o
        }
    }

    /// The modularly smaller of the two.
    #[inline]
    pub fn min(self, o: SeqNum) -> SeqNum {
        if self.le(o) {
            self
        } else {
            o
        }
    }

    /// `start <= self < start + len` in sequence space. An empty window
    /// contains nothing (RFC 9293 §3.10.7.4 treats zero windows separately).
    #[inline]
    pub fn in_window(self, start: SeqNum, len: u32) -> bool {
        // Distance from `start` as unsigned: this is correct for any len up to
        // 2^32 - 1 without having to reason about sign.
        len != 0 && self.0.wrapping_sub(start.0) < len
    }
}

impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<u32> for SeqNum {
    fn from(v: u32) -> Self {
        SeqNum(v)
    }
}

impl Add<u32> for SeqNum {
    type Output = SeqNum;
    #[inline]
    fn add(self, n: u32) -> SeqNum {
        self.wrapping_add(n)
    }
}

impl Sub<u32> for SeqNum {
    type Output = SeqNum;
    #[inline]
    fn sub(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_sub(n))
    }
}

impl Sub<SeqNum> for SeqNum {
    type Output = i32;
    #[inline]
    fn sub(self, o: SeqNum) -> i32 {
        self.diff(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_comparison_wraps_around_2_pow_32() {
        let a = SeqNum(u32::MAX - 5);
        let b = a + 10; // wraps to 4
        assert_eq!(b, SeqNum(4));
        assert!(a.lt(b));
        assert!(b.gt(a));
        assert!(a.le(b) && !a.ge(b));
        assert_eq!(b - a, 10);
        assert_eq!(a - b, -10);
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
    }

    #[test]
    fn seq_equal_is_le_and_ge_not_lt_or_gt() {
        let a = SeqNum(7);
        assert!(a.le(a) && a.ge(a));
        assert!(!a.lt(a) && !a.gt(a));
    }

    #[test]
    fn seq_sub_u32_wraps_below_zero() {
        assert_eq!(SeqNum(3) - 5u32, SeqNum(u32::MAX - 1));
    }

    #[test]
    fn in_window_is_half_open_and_wraps() {
        let start = SeqNum(u32::MAX - 1);
        assert!(start.in_window(start, 4));
        assert!(SeqNum(1).in_window(start, 4));
        assert!(!SeqNum(2).in_window(start, 4)); // start+4 is excluded
        assert!(!SeqNum(u32::MAX - 2).in_window(start, 4));
    }

    #[test]
    fn in_window_with_zero_len_is_always_false() {
        assert!(!SeqNum(5).in_window(SeqNum(5), 0));
    }

    #[test]
    fn display_is_decimal() {
        assert_eq!(SeqNum(4_000_000_000).to_string(), "4000000000");
    }
}
