//! Congestion control behind a small trait, so CUBIC or SACK-based recovery can follow.
//!
//! Loss detection (duplicate ACK counting, the RFC 6582 `recover` point) stays in the TCB; an
//! algorithm only decides the window.

use std::fmt;

pub(crate) trait CongestionControl: fmt::Debug + Send {
    /// The congestion window in bytes.
    fn cwnd(&self) -> u32;
    fn ssthresh(&self) -> u32;
    /// New data acknowledged outside recovery.
    fn on_ack(&mut self, bytes_acked: u32, mss: u32);
    /// Third duplicate ACK: entering fast recovery.
    fn on_enter_recovery(&mut self, flight: u32, mss: u32);
    /// Each further duplicate ACK during recovery.
    fn on_dup_ack_in_recovery(&mut self, mss: u32);
    /// An ACK below `recover` during recovery.
    fn on_partial_ack(&mut self, bytes_acked: u32, mss: u32);
    /// An ACK at or beyond `recover`: recovery ends.
    fn on_exit_recovery(&mut self, flight: u32, mss: u32);
    /// The retransmission timer fired.
    fn on_rto(&mut self, flight: u32, mss: u32);
}

/// RFC 5681 slow start and congestion avoidance with RFC 6582 NewReno fast recovery.
#[derive(Debug, Clone)]
pub(crate) struct NewReno {
    cwnd: u32,
    ssthresh: u32,
    /// Bytes acknowledged towards the next congestion-avoidance increment (RFC 5681 §3.1, the
    /// byte-counting variant).
    acked_accum: u32,
}

impl NewReno {
    pub(crate) fn new(initial_segments: u32, mss: u32) -> NewReno {
        NewReno {
            cwnd: initial_segments.max(1).saturating_mul(mss),
            // RFC 5681 §3.1: "ssthresh SHOULD be set arbitrarily high".
            ssthresh: u32::MAX,
            acked_accum: 0,
        }
    }
}

impl CongestionControl for NewReno {
    fn cwnd(&self) -> u32 {
        self.cwnd
    }

    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    fn on_ack(&mut self, bytes_acked: u32, mss: u32) {
        if self.cwnd < self.ssthresh {
            // RFC 5681 §3.1 (3.2): slow start grows by at most one SMSS per ACK.
            self.cwnd = self.cwnd.saturating_add(bytes_acked.min(mss));
        } else {
            // RFC 5681 §3.1 (3.3): about one SMSS per RTT.
            self.acked_accum = self.acked_accum.saturating_add(bytes_acked);
            if self.acked_accum >= self.cwnd {
                self.acked_accum -= self.cwnd;
                self.cwnd = self.cwnd.saturating_add(mss);
            }
        }
    }

    fn on_enter_recovery(&mut self, flight: u32, mss: u32) {
        // RFC 5681 §3.2 (4) and step 3: ssthresh = max(FlightSize/2, 2*SMSS); cwnd = ssthresh + 3*SMSS.
        self.ssthresh = (flight / 2).max(2 * mss);
        self.cwnd = self.ssthresh + 3 * mss;
    }

    fn on_dup_ack_in_recovery(&mut self, mss: u32) {
        self.cwnd = self.cwnd.saturating_add(mss);
    }

    fn on_partial_ack(&mut self, bytes_acked: u32, mss: u32) {
        // RFC 6582 §3.2 step 5: deflate by the amount acknowledged, add back one SMSS.
        self.cwnd = self
            .cwnd
            .saturating_sub(bytes_acked)
            .saturating_add(mss)
            .max(mss);
    }

    fn on_exit_recovery(&mut self, flight: u32, mss: u32) {
        // RFC 6582 §3.2 step 6, option 1: cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS).
        self.cwnd = self.ssthresh.min(flight.max(mss) + mss);
        self.acked_accum = 0;
    }

    fn on_rto(&mut self, flight: u32, mss: u32) {
        // RFC 5681 §3.1 (4) and loss window LW = 1 SMSS.
        self.ssthresh = (flight / 2).max(2 * mss);
        self.cwnd = mss;
        self.acked_accum = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_adds_one_mss_per_ack_rfc5681_3_1() {
        let mut c = NewReno::new(10, 1000);
        c.on_ack(1000, 1000);
        assert_eq!(c.cwnd(), 11_000);
        c.on_ack(5000, 1000);
        assert_eq!(c.cwnd(), 12_000);
    }

    #[test]
    fn congestion_avoidance_adds_one_mss_per_window_rfc5681_3_1() {
        let mut c = NewReno::new(10, 1000);
        c.on_rto(20_000, 1000); // ssthresh 10000, cwnd 1000
        while c.cwnd() < c.ssthresh() {
            c.on_ack(1000, 1000);
        }
        let w = c.cwnd();
        for _ in 0..(w / 1000) {
            c.on_ack(1000, 1000);
        }
        assert_eq!(c.cwnd(), w + 1000);
    }

    #[test]
    fn fast_recovery_halves_and_inflates_rfc6582() {
        let mut c = NewReno::new(10, 1000);
        c.on_enter_recovery(10_000, 1000);
        assert_eq!(c.ssthresh(), 5000);
        assert_eq!(c.cwnd(), 8000);
        c.on_dup_ack_in_recovery(1000);
        assert_eq!(c.cwnd(), 9000);
        c.on_partial_ack(3000, 1000);
        assert_eq!(c.cwnd(), 7000);
        c.on_exit_recovery(4000, 1000);
        assert_eq!(c.cwnd(), 5000);
    }

    #[test]
    fn rto_collapses_to_loss_window_rfc5681_3_1() {
        let mut c = NewReno::new(10, 1000);
        c.on_rto(8000, 1000);
        assert_eq!(c.cwnd(), 1000);
        assert_eq!(c.ssthresh(), 4000);
    }
}
