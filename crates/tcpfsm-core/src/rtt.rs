//! RFC 6298 retransmission timer computation.

use crate::time::Duration;

#[derive(Debug, Clone)]
pub(crate) struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    /// Base RTO before backoff.
    rto: Duration,
    /// Number of doublings applied since the last new ACK (RFC 6298 §5.5).
    backoff: u8,
    min: Duration,
    max: Duration,
}

impl RttEstimator {
    pub(crate) fn new(initial: Duration, min: Duration, max: Duration) -> RttEstimator {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            rto: initial,
            backoff: 0,
            min,
            max,
        }
    }

    /// RFC 6298 §2.2–2.3. The clock granularity G is folded into the RTO floor.
    pub(crate) fn sample(&mut self, r: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(r);
                // RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R'|; SRTT <- 7/8 SRTT + 1/8 R'
                self.rttvar = self.rttvar * 3 / 4 + delta / 4;
                self.srtt = Some(srtt * 7 / 8 + r / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        self.rto =
            (srtt + (self.rttvar * 4).max(Duration::from_millis(1))).clamp(self.min, self.max);
    }

    /// The RTO in force, with exponential backoff (RFC 6298 §5.5), capped at the maximum.
    pub(crate) fn rto(&self) -> Duration {
        let mut r = self.rto;
        for _ in 0..self.backoff {
            r = r.saturating_mul(2);
            if r >= self.max {
                return self.max;
            }
        }
        r.min(self.max)
    }

    pub(crate) fn back_off(&mut self) {
        self.backoff = self.backoff.saturating_add(1).min(30);
    }

    /// RFC 6298 §5.7 keeps the backed-off value until a new sample; a new ACK of data resets
    /// the backoff (Linux does the same once an ACK advances SND.UNA).
    pub(crate) fn reset_backoff(&mut self) {
        self.backoff = 0;
    }

    pub(crate) fn srtt(&self) -> Option<Duration> {
        self.srtt
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
