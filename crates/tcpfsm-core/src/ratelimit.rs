//! RFC 5961 §7 rate limits on the ACKs a blind attacker can provoke.
//!
//! Two layers, as Linux has them:
//! - per connection, at most one "out-of-window" ACK (answer to an unacceptable segment, a PAWS
//!   reject or a challenge) per `invalid_ratelimit` (Linux `tcp_invalid_ratelimit`, 500 ms);
//! - endpoint-wide, at most about `challenge_ack_limit` challenge ACKs per second (Linux
//!   `tcp_challenge_ack_limit`). The per-second budget is randomised around the limit: a fixed
//!   global counter is itself a side channel that lets an off-path attacker learn whether a
//!   guess hit a connection (CVE-2016-5696).

use crate::secrets::Secrets;
use crate::time::{Duration, Instant};

/// Segments exempt from the per-connection limit: data (no SYN) that starts within `span`
/// bytes below RCV.NXT — a retransmission of what we already hold, whose sender needs the
/// answer (and its D-SACK) to recover. Linux exempts every data segment
/// (`tcp_oow_rate_limited`); a blind attacker's random sequence numbers would then draw one
/// ACK each (RFC 5961 §7), so only plausible duplicates are exempt here: a blind guess lands
/// in that span with probability span / 2^32.
pub(crate) fn exempt(
    seg: &tcpfsm_wire::TcpRepr<'_>,
    rcv_nxt: tcpfsm_wire::SeqNum,
    span: u32,
) -> bool {
    !seg.payload.is_empty()
        && !seg.flags.contains(tcpfsm_wire::Flags::SYN)
        && seg.seq.lt(rcv_nxt)
        && rcv_nxt.diff(seg.seq) as u32 <= span
}

/// When a connection last sent an out-of-window ACK, in milliseconds + 1 (0: never), modulo
/// 2^32 — 49 days, far beyond any rate-limit interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OowStamp(u32);

fn ms(now: Instant) -> u32 {
    (now.as_micros() / 1000) as u32
}

impl OowStamp {
    /// True (and the stamp moves to `now`) if an ACK may go out now.
    pub(crate) fn allow(&mut self, now: Instant, limit: Duration) -> bool {
        let t = ms(now).wrapping_add(1).max(1);
        if self.0 != 0 && (t.wrapping_sub(self.0) as u64) < limit.as_millis() as u64 {
            return false;
        }
        self.0 = t;
        true
    }
}

/// The same stamp in one byte, for TIME_WAIT records, whose 64-byte budget has no room for
/// more: 64 ms ticks, wrapping every 16.4 s (a wrap can at worst suppress one ACK that the
/// limit would have let through). The tick is small enough that with 500 ms the gap between
/// two ACKs stays within 513–576 ms, so an answer Linux gives 600 ms later is given too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TinyStamp(u8);

const TINY_TICK_MS: u64 = 64;

impl TinyStamp {
    pub(crate) fn allow(&mut self, now: Instant, limit: Duration) -> bool {
        let t = ((now.as_micros() / 1000 / TINY_TICK_MS) as u8)
            .wrapping_add(1)
            .max(1);
        // Both stamps are rounded down to a tick, so `n` ticks apart may be as little as
        // (n - 1) ticks of real time: round the limit up and add one tick, so that two ACKs
        // are never closer than `limit` (RFC 5961 §7, Linux `tcp_invalid_ratelimit`); the
        // gap is then at most `limit` + 2 ticks.
        let ms = limit.as_millis() as u64;
        let ticks = if ms == 0 {
            0
        } else {
            // A byte of ticks spans 16.3 s: longer limits (up to the 60 s the configuration
            // allows) are cut to that, rather than silencing the record for good.
            (ms.div_ceil(TINY_TICK_MS) + 1).min(255)
        };
        if self.0 != 0 && (t.wrapping_sub(self.0) as u64) < ticks {
            return false;
        }
        self.0 = t;
        true
    }
}

/// The endpoint-wide challenge ACK budget.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChallengeBudget {
    /// The second the budget is for (`None` before the first challenge ACK).
    second: Option<u64>,
    left: u32,
}

impl ChallengeBudget {
    /// True if one more challenge ACK may go out this second.
    pub(crate) fn take(&mut self, now: Instant, limit: u32, secrets: &Secrets) -> bool {
        let second = now.as_micros() / 1_000_000;
        if self.second != Some(second) {
            self.second = Some(second);
            // limit/2 + a keyed-random share of limit: between half and one and a half times
            // the limit, unpredictable to an attacker who cannot see the secret.
            let r = secrets.mix(second) as u64;
            self.left = (limit as u64 / 2 + r % (limit as u64 + 1)).min(u32::MAX as u64 - 1) as u32;
        }
        if self.left == 0 {
            return false;
        }
        self.left -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_oow_ack_per_interval() {
        let mut s = OowStamp::default();
        let lim = Duration::from_millis(500);
        let t = Instant::from_micros(10_000_000);
        assert!(s.allow(t, lim));
        assert!(!s.allow(t + Duration::from_millis(499), lim));
        assert!(s.allow(t + Duration::from_millis(500), lim));
    }

    #[test]
    fn tiny_stamp_limits_too() {
        let mut s = TinyStamp::default();
        let lim = Duration::from_millis(500);
        let t = Instant::from_micros(10_000_000);
        assert!(s.allow(t, lim));
        assert!(!s.allow(t + Duration::from_millis(300), lim));
        assert!(!s.allow(t + Duration::from_millis(499), lim));
        assert!(s.allow(t + Duration::from_millis(700), lim));
        // Never closer than the limit, wherever in a tick the stamps fall.
        for start in 0..128u64 {
            let mut s = TinyStamp::default();
            let t0 = Instant::from_micros(10_000_000 + start * 1000);
            assert!(s.allow(t0, lim));
            assert!(!s.allow(t0 + Duration::from_millis(499), lim), "{start}");
            assert!(s.allow(t0 + Duration::from_millis(600), lim), "{start}");
        }
    }

    #[test]
    fn the_first_challenge_ack_is_never_held_back() {
        // Not even in the endpoint's first second (a budget must not start empty).
        let secrets = Secrets::from_seed(1);
        assert!(ChallengeBudget::default().take(Instant::from_micros(200_000), 1000, &secrets));
        assert!(OowStamp::default().allow(Instant::ZERO, Duration::from_millis(500)));
    }

    #[test]
    fn challenge_budget_is_bounded_per_second() {
        let secrets = Secrets::from_seed(7);
        let mut b = ChallengeBudget::default();
        let t = Instant::from_micros(5_000_000);
        let n = (0..10_000).filter(|_| b.take(t, 1000, &secrets)).count();
        assert!((500..=1500).contains(&n), "{n}");
        assert!(b.take(t + Duration::from_secs(1), 1000, &secrets));
    }
}
