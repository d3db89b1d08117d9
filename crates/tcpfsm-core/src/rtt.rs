//! RFC 6298 retransmission timer computation.

use crate::time::Duration;

/// Kept in microseconds as `u32` (71 minutes of range, far above the 120 s RTO cap): six
/// `Duration`s would cost 64 more bytes in every TCB.
#[derive(Debug, Clone)]
pub(crate) struct RttEstimator {
    /// Smoothed RTT; 0 until the first sample.
    srtt_us: u32,
    rttvar_us: u32,
    /// Base RTO before backoff.
    rto_us: u32,
    min_us: u32,
    max_us: u32,
    /// Number of doublings applied since the last new ACK (RFC 6298 §5.5).
    backoff: u8,
    /// SRTT or the RTO may have changed since [`Self::seen`] (true for a new estimator): the
    /// connection keeps the probe timeout's length computed from them while this is false
    /// (see `LossRecovery::pto_len_kept`). Every method that writes a field sets it.
    changed: bool,
}

fn us(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

impl RttEstimator {
    pub(crate) fn new(initial: Duration, min: Duration, max: Duration) -> RttEstimator {
        RttEstimator {
            srtt_us: 0,
            rttvar_us: 0,
            rto_us: us(initial),
            min_us: us(min),
            max_us: us(max),
            backoff: 0,
            changed: true,
        }
    }

    /// RFC 6298 §2.2–2.3. The clock granularity G (1 ms) is the floor of the variance term.
    pub(crate) fn sample(&mut self, r: Duration) {
        self.changed = true;
        let r = us(r).max(1);
        if self.srtt_us == 0 {
            self.srtt_us = r;
            self.rttvar_us = r / 2;
        } else {
            let delta = self.srtt_us.abs_diff(r);
            // RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R'|; SRTT <- 7/8 SRTT + 1/8 R'
            self.rttvar_us = (self.rttvar_us as u64 * 3 / 4 + delta as u64 / 4) as u32;
            self.srtt_us = (self.srtt_us as u64 * 7 / 8 + r as u64 / 8) as u32;
        }
        let var = (self.rttvar_us as u64 * 4).max(1000);
        self.rto_us =
            (self.srtt_us as u64 + var).clamp(self.min_us as u64, self.max_us as u64) as u32;
    }

    /// The RTO in force, with exponential backoff (RFC 6298 §5.5), capped at the maximum.
    pub(crate) fn rto(&self) -> Duration {
        Duration::from_micros(self.rto_us())
    }

    /// [`Self::rto`] in microseconds: timers are armed in them, and the round trip through
    /// `Duration` (a division and a 128-bit multiplication) ran for every segment sent.
    pub(crate) fn rto_us(&self) -> u64 {
        let r = (self.rto_us as u64) << self.backoff.min(32);
        r.min(self.max_us as u64)
    }

    /// When a retransmission timer started at `now` expires.
    pub(crate) fn rto_from(&self, now: crate::Instant) -> crate::Instant {
        now.add_micros(self.rto_us())
    }

    pub(crate) fn back_off(&mut self) {
        self.changed = true;
        self.backoff = self.backoff.saturating_add(1).min(30);
    }

    /// RFC 6298 §5.7 keeps the backed-off value until a new sample; a new ACK of data resets
    /// the backoff (Linux does the same once an ACK advances SND.UNA).
    pub(crate) fn reset_backoff(&mut self) {
        self.changed = true;
        self.backoff = 0;
    }

    /// Whether SRTT or the RTO may have changed since the last call.
    pub(crate) fn changed(&self) -> bool {
        self.changed
    }

    /// What the estimator says now has been taken: [`Self::changed`] is false until it moves.
    pub(crate) fn seen(&mut self) {
        self.changed = false;
    }

    /// The RTO ceiling.
    pub(crate) fn max(&self) -> Duration {
        Duration::from_micros(self.max_us as u64)
    }

    pub(crate) fn rttvar(&self) -> Duration {
        Duration::from_micros(self.rttvar_us as u64)
    }

    /// [`Self::srtt`] in microseconds.
    pub(crate) fn srtt_us(&self) -> Option<u64> {
        (self.srtt_us != 0).then_some(self.srtt_us as u64)
    }

    pub(crate) fn srtt(&self) -> Option<Duration> {
        (self.srtt_us != 0).then(|| Duration::from_micros(self.srtt_us as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est() -> RttEstimator {
        RttEstimator::new(
            Duration::from_secs(1),
            Duration::from_millis(200),
            Duration::from_secs(120),
        )
    }

    #[test]
    fn rto_starts_at_one_second_rfc6298_2_1() {
        assert_eq!(est().rto(), Duration::from_secs(1));
    }

    #[test]
    fn first_sample_sets_srtt_and_half_rttvar_rfc6298_2_2() {
        let mut e = est();
        e.sample(Duration::from_millis(100));
        assert_eq!(e.srtt(), Some(Duration::from_millis(100)));
        // RTO = 100 + 4*50 = 300 ms
        assert_eq!(e.rto(), Duration::from_millis(300));
    }

    #[test]
    fn rto_is_floored_at_min_rfc6298_2_4() {
        let mut e = est();
        e.sample(Duration::from_millis(1));
        assert_eq!(e.rto(), Duration::from_millis(200));
    }

    #[test]
    fn backoff_doubles_and_caps_rfc6298_5_5() {
        let mut e = est();
        e.back_off();
        assert_eq!(e.rto(), Duration::from_secs(2));
        for _ in 0..20 {
            e.back_off();
        }
        assert_eq!(e.rto(), Duration::from_secs(120));
        e.reset_backoff();
        assert_eq!(e.rto(), Duration::from_secs(1));
    }
}
