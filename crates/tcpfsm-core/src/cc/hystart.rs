//! HyStart++ (RFC 9406): leave slow start on a sustained RTT increase, through a Conservative
//! Slow Start (CSS) phase that can resume slow start when the increase was only noise.
//!
//! # How an algorithm drives it
//! While `cwnd < ssthresh` and [`HyStart::active`], call [`HyStart::on_ack`] for each ACK that
//! delivers data instead of growing the window itself; add the returned
//! [`HyStartStep::increase`] to `cwnd`, and when [`HyStartStep::exit_to_ca`] is set, set
//! `ssthresh = cwnd` (RFC 9406 §4.2, "enter congestion avoidance by setting the ssthresh to
//! the current cwnd"). On a loss or ECN mark during slow start or CSS call
//! [`HyStart::on_congestion`]: the algorithm's own reduction applies and HyStart++ is over.
//! RFC 9406 §4.3 recommends HyStart++ only for the initial slow start; later slow starts use
//! the discovered `ssthresh` and plain RFC 5681 growth.
//!
//! # ACK-train detection (Linux, not RFC 9406)
//! Linux's CUBIC leaves slow start on either of two signals (`tcp_cubic.c`,
//! `hystart_detect=3`): the delay increase RFC 9406 also uses, and an *ACK train*: when the
//! closely spaced ACKs of one round span more than half the minimum RTT, the flight has
//! reached about one bandwidth-delay product, and slow start ends there (`ssthresh = cwnd`).
//! The delay signal alone fires only once a standing queue of several milliseconds exists —
//! with a queue of one BDP, by then the doubling has put up to twice the path's capacity in
//! flight and the queue overflows. [`HyStartConfig::ack_train`] turns the second signal on
//! (the default, as Linux).

use super::AckEvent;
use crate::time::{Duration, Instant};
use tcpfsm_wire::SeqNum;

/// RFC 9406 §4.3 constants, all overridable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HyStartConfig {
    /// MIN_RTT_THRESH: 4 ms.
    pub min_rtt_thresh: Duration,
    /// MAX_RTT_THRESH: 16 ms.
    pub max_rtt_thresh: Duration,
    /// MIN_RTT_DIVISOR: 8.
    pub min_rtt_divisor: u32,
    /// N_RTT_SAMPLE: 8 RTT samples per round before a decision.
    pub n_rtt_sample: u32,
    /// CSS_GROWTH_DIVISOR: 4.
    pub css_growth_divisor: u32,
    /// CSS_ROUNDS: 5.
    pub css_rounds: u32,
    /// L, in segments: the most one ACK may grow the window. RFC 9406 §4.3: infinity when the
    /// sender paces (`None`), 8 when it does not.
    pub limit_segments: Option<u32>,
    /// Also leave slow start on an ACK train spanning half the minimum RTT (Linux
    /// `hystart_detect` bit `HYSTART_ACK_TRAIN`; see the module docs).
    pub ack_train: bool,
    /// ACKs at most this far apart belong to one train (Linux `hystart_ack_delta_us`: 2 ms).
    pub ack_train_delta: Duration,
    /// No ACK-train exit below this window, in segments (Linux `hystart_low_window`: 16).
    pub low_window: u32,
}

impl Default for HyStartConfig {
    fn default() -> Self {
        HyStartConfig {
            min_rtt_thresh: Duration::from_millis(4),
            max_rtt_thresh: Duration::from_millis(16),
            min_rtt_divisor: 8,
            n_rtt_sample: 8,
            css_growth_divisor: 4,
            css_rounds: 5,
            limit_segments: Some(8),
            ack_train: true,
            ack_train_delta: Duration::from_millis(2),
            low_window: 16,
        }
    }
}

/// What happened in HyStart++, counted the way Linux counts HyStart in TcpExt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HyStartCounters {
    /// Slow start left for CSS on an RTT increase (Linux `TCPHystartDelayDetect`).
    pub delay_detect: u64,
    /// Sum of the windows, in segments, at those detections (Linux `TCPHystartDelayCwnd`).
    pub delay_cwnd: u64,
    /// CSS found the increase spurious and resumed slow start.
    pub css_resumed: u64,
    /// CSS completed its rounds and entered congestion avoidance.
    pub css_exit: u64,
    /// Slow start left on an ACK train (Linux `TCPHystartTrainDetect`).
    pub train_detect: u64,
    /// Sum of the windows, in segments, at those exits (Linux `TCPHystartTrainCwnd`).
    pub train_cwnd: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    SlowStart,
    Css { baseline: Duration, rounds: u32 },
    Done,
}

/// The window change HyStart++ asks for on one ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HyStartStep {
    /// Bytes to add to `cwnd`.
    pub increase: u32,
    /// CSS is complete: set `ssthresh = cwnd` (after adding `increase`) and enter congestion
    /// avoidance.
    pub exit_to_ca: bool,
}

/// HyStart++ state for one connection.
#[derive(Debug, Clone)]
pub struct HyStart {
    cfg: HyStartConfig,
    phase: Phase,
    /// The SND.NXT at the start of the current round; the round ends when it is acknowledged.
    window_end: Option<SeqNum>,
    last_round_min_rtt: Option<Duration>,
    current_round_min_rtt: Option<Duration>,
    rtt_sample_count: u32,
    /// When the current ACK train's first ACK arrived (at the latest the round's first), and
    /// its last ACK.
    round_start: Option<Instant>,
    train_last: Option<Instant>,
    counters: HyStartCounters,
}

impl HyStart {
    pub fn new(cfg: HyStartConfig) -> HyStart {
        HyStart {
            cfg,
            phase: Phase::SlowStart,
            window_end: None,
            last_round_min_rtt: None,
            current_round_min_rtt: None,
            rtt_sample_count: 0,
            round_start: None,
            train_last: None,
            counters: HyStartCounters::default(),
        }
    }

    /// Still steering slow start (not yet in congestion avoidance, no loss seen).
    pub fn active(&self) -> bool {
        self.phase != Phase::Done
    }

    /// In Conservative Slow Start.
    pub fn in_css(&self) -> bool {
        matches!(self.phase, Phase::Css { .. })
    }

    pub fn counters(&self) -> HyStartCounters {
        self.counters
    }

    /// Loss or ECN during slow start or CSS: RFC 9406 §4.2 hands over to the algorithm's
    /// reduction, and §4.3 keeps HyStart++ off for later slow starts.
    pub fn on_congestion(&mut self) {
        self.phase = Phase::Done;
    }

    /// RFC 9406 §4.2, per ACK in slow start or CSS. `cwnd` is the window before this ACK.
    pub fn on_ack(&mut self, ack: &AckEvent, cwnd: u32) -> HyStartStep {
        let mut step = HyStartStep {
            increase: 0,
            exit_to_ca: false,
        };
        if self.phase == Phase::Done {
            return step;
        }
        match self.window_end {
            None => {
                self.window_end = Some(ack.snd_nxt);
                self.round_start = Some(ack.now);
                self.train_last = Some(ack.now);
            }
            Some(end) if ack.snd_una.ge(end) => {
                self.round_start = Some(ack.now);
                self.train_last = Some(ack.now);
                // "At the start of each round ... initialize the variables used to compute the
                // last round's and current round's minimum RTT."
                self.last_round_min_rtt = self.current_round_min_rtt;
                self.current_round_min_rtt = None;
                self.rtt_sample_count = 0;
                self.window_end = Some(ack.snd_nxt);
                if let Phase::Css { baseline, rounds } = self.phase {
                    let rounds = rounds + 1;
                    self.phase = Phase::Css { baseline, rounds };
                    if rounds >= self.cfg.css_rounds {
                        // "If CSS_ROUNDS rounds are complete, enter congestion avoidance".
                        self.phase = Phase::Done;
                        self.counters.css_exit += 1;
                        step.exit_to_ca = true;
                        return step;
                    }
                }
            }
            Some(_) => {}
        }
        let mss = ack.mss.max(1);
        if self.ack_train_ends(ack, cwnd) {
            self.phase = Phase::Done;
            self.counters.train_detect += 1;
            self.counters.train_cwnd += u64::from(cwnd / mss);
            step.exit_to_ca = true;
            return step;
        }
        let limit = match self.cfg.limit_segments {
            Some(l) => l.saturating_mul(mss),
            None => u32::MAX,
        };
        let grow = ack.delivered.min(limit);
        if let Some(rtt) = ack.rtt {
            self.current_round_min_rtt = Some(match self.current_round_min_rtt {
                Some(m) => m.min(rtt),
                None => rtt,
            });
            self.rtt_sample_count += 1;
        }
        let enough = self.rtt_sample_count >= self.cfg.n_rtt_sample;
        match self.phase {
            Phase::SlowStart => {
                step.increase = grow;
                if let (true, Some(current), Some(last)) =
                    (enough, self.current_round_min_rtt, self.last_round_min_rtt)
                {
                    let thresh = (last / self.cfg.min_rtt_divisor.max(1))
                        .min(self.cfg.max_rtt_thresh)
                        .max(self.cfg.min_rtt_thresh);
                    if current >= last + thresh {
                        self.phase = Phase::Css {
                            baseline: current,
                            rounds: 0,
                        };
                        self.counters.delay_detect += 1;
                        self.counters.delay_cwnd += u64::from(cwnd.saturating_add(grow) / mss);
                    }
                }
            }
            Phase::Css { baseline, .. } => {
                step.increase = grow / self.cfg.css_growth_divisor.max(1);
                if let (true, Some(current)) = (enough, self.current_round_min_rtt) {
                    if current < baseline {
                        // The RTT increase was not sustained: "resume slow start".
                        self.phase = Phase::SlowStart;
                        self.counters.css_resumed += 1;
                    }
                }
            }
            Phase::Done => {}
        }
        step
    }

    /// Linux `hystart_update`'s ACK-train test: this ACK follows the previous one of the
    /// train closely, and the train now spans more than half the minimum RTT.
    ///
    /// Unlike Linux, a gap does not end the train test for the rest of the round: the next
    /// ACK starts a new train. A round (until SND.UNA reaches the SND.NXT of its start) holds
    /// the tail of the previous round's burst, an idle gap while the window was full, and
    /// then the burst the doubling produced; Linux measures from the round's first ACK, so
    /// the gap breaks its train every round and only the delay signal is left once the
    /// flight outgrows the ACK clock (a trace on a 100 Mbit/s, 10 ms path: the train then
    /// fired at 177 segments, past the 172 that path and its queue hold). A continuous train
    /// of more than min_RTT/2 means the bottleneck was busy that long, whatever the round.
    fn ack_train_ends(&mut self, ack: &AckEvent, cwnd: u32) -> bool {
        if !self.cfg.ack_train || cwnd < self.cfg.low_window.saturating_mul(ack.mss.max(1)) {
            return false;
        }
        let (Some(start), Some(last)) = (self.round_start, self.train_last) else {
            return false;
        };
        let Some(min_rtt) = ack.min_rtt.or(ack.rtt) else {
            return false;
        };
        self.train_last = Some(ack.now);
        if ack.now.saturating_since(last) > self.cfg.ack_train_delta {
            self.round_start = Some(ack.now);
            return false;
        }
        ack.now.saturating_since(start) > min_rtt / 2
    }
}
