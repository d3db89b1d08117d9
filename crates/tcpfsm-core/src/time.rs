//! Time as the core sees it: passed in by the caller, never read from a clock.
//!
//! A plain microsecond count from an arbitrary epoch keeps the simulator deterministic (its
//! virtual clock starts at zero) and lets a real driver map `std::time::Instant` onto it.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};
pub use std::time::Duration;

/// A point in time, in microseconds since the driver's epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    pub const ZERO: Instant = Instant(0);

    pub const fn from_micros(us: u64) -> Instant {
        Instant(us)
    }

    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// `self - earlier`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Instant {
    /// `self` plus `us` microseconds, saturating at the end of time.
    #[inline]
    pub(crate) const fn add_micros(self, us: u64) -> Instant {
        Instant(self.0.saturating_add(us))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Whole seconds and sub-second microseconds in 64 bits: `Duration::as_micros` works in
    /// 128, and this runs several times per segment (every timer armed).
    #[inline]
    fn add(self, d: Duration) -> Instant {
        self.add_micros(micros(d))
    }
}

/// `d` in whole microseconds, saturating, in 64-bit arithmetic.
#[inline]
pub(crate) fn micros(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(d.subsec_micros()))
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_since(earlier)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}
