//! NewReno: RFC 5681 slow start and congestion avoidance, with RFC 6582's single reduction per
//! window of data.
//!
//! RFC 6582's fast-recovery bookkeeping (the `recover` point, a retransmission per partial
//! ACK, leaving recovery on a full ACK) lives in the core's `recovery` module, which serves every
//! algorithm; the window during recovery is PRR's (RFC 9937). What is left here is the
//! window outside recovery and the RFC 5681 §3.1/§3.2 reductions.

use super::{reduced_ssthresh, AckEvent, CongestionControl, CongestionEvent, Prior};
use crate::time::Instant;

/// NewReno's settings, with Linux's behaviour as the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewRenoConfig {
    /// Initial window in segments (RFC 6928 and Linux: 10).
    pub initial_window: u32,
    /// RFC 3465 appropriate byte counting limit L, in segments: slow start grows by at most
    /// L·SMSS per ACK. 2 (RFC 3465's recommendation) doubles the window per round trip even
    /// against a receiver that ACKs every other segment, as Linux's slow start does.
    pub abc_limit: u32,
}

impl Default for NewRenoConfig {
    fn default() -> Self {
        NewRenoConfig {
            initial_window: 10,
            abc_limit: 2,
        }
    }
}

/// RFC 5681 / RFC 6582 NewReno.
#[derive(Debug, Clone)]
pub struct NewReno {
    cfg: NewRenoConfig,
    cwnd: u32,
    ssthresh: u32,
    /// Bytes acknowledged towards the next congestion-avoidance increment (RFC 5681 §3.1,
    /// the byte-counting variant of equation 3).
    acked_accum: u32,
    prior: Option<Prior>,
}

impl NewReno {
    pub fn new(cfg: NewRenoConfig, mss: u32) -> NewReno {
        NewReno {
            cfg,
            cwnd: cfg.initial_window.max(1).saturating_mul(mss),
            // RFC 5681 §3.1: "The initial value of ssthresh SHOULD be set arbitrarily high".
            ssthresh: u32::MAX,
            acked_accum: 0,
            prior: None,
        }
    }

    fn save_prior(&mut self) {
        self.prior = Some(Prior {
            cwnd: self.cwnd,
            ssthresh: self.ssthresh,
        });
    }
}

/// RFC 5681 §3.1 slow start with RFC 3465's limit: grow by `min(N, L·SMSS)` but not beyond
/// `ssthresh`. Returns the new window and the bytes left over once `ssthresh` is reached,
/// which count towards congestion avoidance (as Linux's `tcp_slow_start` hands them on).
pub(crate) fn slow_start(cwnd: u32, ssthresh: u32, delivered: u32, limit: u32) -> (u32, u32) {
    let grown = cwnd.saturating_add(delivered.min(limit));
    if grown > ssthresh {
        (ssthresh.max(cwnd), grown - ssthresh.max(cwnd))
    } else {
        (grown, 0)
    }
}

impl CongestionControl for NewReno {
    fn name(&self) -> &'static str {
        "reno"
    }

    fn cwnd(&self) -> u32 {
        self.cwnd
    }

    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    fn on_ack(&mut self, ack: &AckEvent) {
        // RFC 7661 §4.3 / Linux `tcp_is_cwnd_limited`: a window the sender does not use is not
        // validated by the ACKs, so it must not grow.
        if !ack.cwnd_limited || ack.delivered == 0 {
            return;
        }
        let mss = ack.mss.max(1);
        let mut delivered = ack.delivered;
        if self.cwnd < self.ssthresh {
            let limit = self.cfg.abc_limit.max(1).saturating_mul(mss);
            let (cwnd, left) = slow_start(self.cwnd, self.ssthresh, delivered, limit);
            self.cwnd = cwnd;
            delivered = left;
        }
        if delivered == 0 || self.cwnd < self.ssthresh {
            return;
        }
        // RFC 5681 §3.1 (3.3) with byte counting (RFC 3465 §2.1): one SMSS per cwnd of
        // acknowledged bytes, i.e. about one SMSS per round trip.
        self.acked_accum = self.acked_accum.saturating_add(delivered);
        while self.acked_accum >= self.cwnd {
            self.acked_accum -= self.cwnd;
            self.cwnd = self.cwnd.saturating_add(mss);
        }
    }

    fn on_congestion_event(&mut self, ev: &CongestionEvent) {
        self.save_prior();
        // RFC 5681 §3.2 step 2 (equation 4): ssthresh = max(FlightSize / 2, 2*SMSS). The
        // window during recovery is PRR's; this is the level it converges to.
        self.ssthresh = reduced_ssthresh(ev.flight_size, self.cwnd, 0.5, ev.mss);
        self.cwnd = self.ssthresh;
        self.acked_accum = 0;
    }

    fn on_recovery_exit(&mut self, _now: Instant, _flight: u32, _mss: u32) {
        // RFC 6582 §3.2 step 6 option 2 and RFC 9937: leave recovery with cwnd = ssthresh
        // (PRR has already brought the flight down to it).
        self.cwnd = self.ssthresh;
        self.acked_accum = 0;
    }

    fn on_rto(&mut self, _now: Instant, flight: u32, mss: u32) {
        self.save_prior();
        // RFC 5681 §3.1 equation (4) and the loss window LW = 1 SMSS.
        self.ssthresh = reduced_ssthresh(flight, self.cwnd, 0.5, mss);
        self.cwnd = mss;
        self.acked_accum = 0;
    }

    fn on_spurious(&mut self, _now: Instant) {
        if let Some(prior) = self.prior.take() {
            prior.undo(&mut self.cwnd, &mut self.ssthresh);
            self.acked_accum = 0;
        }
    }
}
