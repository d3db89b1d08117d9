//! Congestion control behind a public trait: NewReno (RFC 5681, RFC 6582), CUBIC (RFC 9438) with
//! HyStart++ (RFC 9406), or an algorithm of the user's own.
//!
//! # Division of labour
//! An algorithm decides the window *outside* loss recovery and the slow-start threshold when
//! a congestion event happens. Loss detection (SACK scoreboard, RACK-TLP) and the window
//! *during* fast recovery (PRR, RFC 9937) belong to the core's `recovery` module: an algorithm is never
//! asked to inflate or deflate its window per duplicate ACK. This is how Linux splits
//! `tcp_congestion_ops` from `tcp_input.c`, and it lets a user's algorithm stay small.
//!
//! # How the send side drives it
//! Time is always passed in; an algorithm never reads a clock.
//! 1. Every segment (new data or retransmission) handed to IP: [`CongestionControl::on_sent`].
//! 2. Every ACK that delivers data (cumulatively or by SACK) while the connection is *not* in
//!    fast recovery or RTO recovery: [`CongestionControl::on_ack`] with an [`AckEvent`].
//!    During recovery the window is PRR's, so `on_ack` is not called.
//! 3. Loss detected (third duplicate ACK / RFC 6675 `IsLost`, RACK, a TLP-repaired loss) or an
//!    ECN echo, at most once per window of data (RFC 6582's `recover`, RFC 3168 §6.1.2):
//!    [`CongestionControl::on_congestion_event`]. It sets `ssthresh` (RFC 9937's
//!    `CongCtrlAlg()`), which PRR then steers the flight towards.
//! 4. Recovery ends (cumulative ACK at or beyond the recovery point):
//!    [`CongestionControl::on_recovery_exit`]; `cwnd` becomes `ssthresh` (RFC 9937 §6).
//! 5. The retransmission timer fires: [`CongestionControl::on_rto`] (RFC 5681 §3.1: loss
//!    window of one segment).
//! 6. A reduction turns out to have been spurious (all retransmissions of the episode
//!    D-SACKed, RFC 3708; timestamps show the original arrived, RFC 3522; F-RTO, RFC 5682):
//!    [`CongestionControl::on_spurious`] restores the window as Linux's `tcp_undo_cwnd_reduction`.
//!
//! The effective window the send side uses is `recovery`'s PRR window during fast recovery and
//! [`CongestionControl::cwnd`] otherwise.

pub mod cubic;
pub mod hystart;
pub mod newreno;

pub use cubic::{Cubic, CubicConfig};
pub use hystart::{HyStart, HyStartConfig, HyStartCounters};
pub use newreno::{NewReno, NewRenoConfig};

use crate::time::{Duration, Instant};
use std::fmt;
use tcpfsm_wire::SeqNum;

/// What one ACK delivered, for [`CongestionControl::on_ack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AckEvent {
    pub now: Instant,
    /// Bytes newly acknowledged by this ACK, cumulatively or selectively (Linux's
    /// "delivered"). RFC 5681's byte counting uses this N.
    pub delivered: u32,
    /// The RTT sample this ACK yielded (RFC 6298, Karn's rule applied), if any.
    pub rtt: Option<Duration>,
    /// The smoothed RTT after this ACK's sample, if one exists.
    pub srtt: Option<Duration>,
    /// Windowed minimum RTT (RFC 8985 `RACK.min_RTT`), if known.
    pub min_rtt: Option<Duration>,
    /// Bytes in flight (RFC 6675 `pipe`) after this ACK was processed.
    pub in_flight: u32,
    /// Whether the sender was limited by `cwnd` (rather than by the application or the peer's
    /// window) since the previous ACK. RFC 9438 §5.8 and RFC 7661: an application-limited
    /// flow must not grow its window. Linux: `tcp_is_cwnd_limited`.
    pub cwnd_limited: bool,
    /// The sender's maximum segment size (SMSS).
    pub mss: u32,
    /// SND.UNA after this ACK.
    pub snd_una: SeqNum,
    /// SND.NXT when the ACK arrived (HyStart++ rounds end at the SND.NXT of their start).
    pub snd_nxt: SeqNum,
}

impl AckEvent {
    /// An event with the mandatory fields; optional fields start empty, `cwnd_limited` true.
    pub fn new(now: Instant, delivered: u32, mss: u32, snd_una: SeqNum, snd_nxt: SeqNum) -> Self {
        AckEvent {
            now,
            delivered,
            rtt: None,
            srtt: None,
            min_rtt: None,
            in_flight: 0,
            cwnd_limited: true,
            mss,
            snd_una,
            snd_nxt,
        }
    }
}

/// Why the window is being reduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CongestionKind {
    /// Loss detected by duplicate ACKs / SACK (RFC 6675), RACK (RFC 8985) or a loss probe.
    Loss,
    /// ECN-Echo (RFC 3168 §6.1.2); reserved until the engine negotiates ECN.
    Ecn,
}

/// A congestion event, for [`CongestionControl::on_congestion_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CongestionEvent {
    pub now: Instant,
    pub kind: CongestionKind,
    /// FlightSize when the loss was detected: SND.NXT − SND.UNA, without segments sent by
    /// Limited Transmit (RFC 5681 §3.2 step 2, RFC 3042).
    pub flight_size: u32,
    pub mss: u32,
}

impl CongestionEvent {
    pub fn new(now: Instant, kind: CongestionKind, flight_size: u32, mss: u32) -> Self {
        CongestionEvent {
            now,
            kind,
            flight_size,
            mss,
        }
    }
}

/// Counters an algorithm exposes for `stats()`; Linux TcpExt names in the field docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CcCounters {
    /// HyStart++ counters (all zero for algorithms without it).
    pub hystart: HyStartCounters,
}

/// A congestion-control algorithm. Windows are in bytes.
///
/// Implement this to plug in an algorithm of your own; see the module docs for when each
/// method is called.
pub trait CongestionControl: fmt::Debug + Send {
    /// A short lowercase name, as Linux's `tcp_congestion_control` ("cubic", "reno").
    fn name(&self) -> &'static str;

    /// The congestion window in bytes (outside recovery the send side obeys it directly).
    fn cwnd(&self) -> u32;

    /// The slow-start threshold in bytes (`u32::MAX` until the first congestion event).
    fn ssthresh(&self) -> u32;

    /// Slow start (RFC 5681 §3.1: `cwnd < ssthresh`).
    fn in_slow_start(&self) -> bool {
        self.cwnd() < self.ssthresh()
    }

    /// A pacing rate in bytes per second, if the algorithm wants segments spread out.
    fn pacing_rate(&self) -> Option<u64> {
        None
    }

    /// A segment of `bytes` left; `in_flight_before` is the flight just before it. A send
    /// with nothing in flight ends an idle period (RFC 9438 §5.8).
    fn on_sent(&mut self, now: Instant, bytes: u32, in_flight_before: u32) {
        let _ = (now, bytes, in_flight_before);
    }

    /// Data delivered outside recovery: grow the window.
    fn on_ack(&mut self, ack: &AckEvent);

    /// Loss or ECN: set `ssthresh` (and the algorithm's own `cwnd` baseline). Called at most
    /// once per recovery episode.
    fn on_congestion_event(&mut self, event: &CongestionEvent);

    /// Fast recovery is over; `flight` is the data still in flight.
    fn on_recovery_exit(&mut self, now: Instant, flight: u32, mss: u32);

    /// The retransmission timer expired (`flight` before the timeout's retransmission).
    fn on_rto(&mut self, now: Instant, flight: u32, mss: u32);

    /// The last reduction (congestion event or RTO) was spurious: undo it.
    fn on_spurious(&mut self, now: Instant);

    /// Counters for `stats()`.
    fn counters(&self) -> CcCounters {
        CcCounters::default()
    }
}

/// RFC 5681 §3.1 equation (4): `ssthresh = max(FlightSize / 2, 2*SMSS)`, generalised to a
/// multiplicative factor `beta` (0.5 for Reno, 0.7 for CUBIC, RFC 9438 §4.6).
///
/// The basis is the smaller of FlightSize and `cwnd`. FlightSize (SND.NXT − SND.UNA) counts
/// the SACKed data above the first hole, which keeps growing while RACK waits out its
/// reordering window: a trace on the loss grid's 100 Mbit/s, 10 ms link entered recovery with
/// 41 segments SACKed and FlightSize·0.7 above the window (ssthresh 135822 for cwnd 135347),
/// so the "reduction" raised the window. Linux bases it on `cwnd` (`tcp_reno_ssthresh`,
/// `bictcp_recalc_ssthresh`); RFC 9438 §4.6 allows `cwnd` where the window cannot grow
/// while application-limited, which `AckEvent::cwnd_limited` ensures; FlightSize still wins
/// when it is the smaller (an application-limited flow).
pub(crate) fn reduced_ssthresh(flight: u32, cwnd: u32, beta: f64, mss: u32) -> u32 {
    let reduced = (flight.min(cwnd) as f64 * beta) as u32;
    reduced.max(2 * mss)
}

/// The state an algorithm saves at a reduction so [`CongestionControl::on_spurious`] can
/// restore it (Linux: `prior_cwnd`, `prior_ssthresh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prior {
    pub(crate) cwnd: u32,
    pub(crate) ssthresh: u32,
}

impl Prior {
    /// Linux's `tcp_undo_cwnd_reduction`: never shrink on undo, and raise `ssthresh` back so the
    /// connection returns to the phase it was in.
    pub(crate) fn undo(self, cwnd: &mut u32, ssthresh: &mut u32) {
        *cwnd = (*cwnd).max(self.cwnd);
        *ssthresh = (*ssthresh).max(self.ssthresh);
    }
}

#[cfg(test)]
mod tests;
