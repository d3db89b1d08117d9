//! CUBIC (RFC 9438), with HyStart++ (RFC 9406) in the initial slow start: Linux's default.
//!
//! Windows are kept in bytes as `f64` so the per-ACK increments of RFC 9438 §4.4–4.5, which are
//! fractions of a segment, accumulate exactly; the formulas of the RFC are in segments and are
//! converted with SMSS. `t` excludes application-limited and idle periods (§5.8).

use super::hystart::{HyStart, HyStartConfig};
use super::newreno::slow_start;
use super::{reduced_ssthresh, AckEvent, CcCounters, CongestionControl, CongestionEvent};
use super::{CongestionKind, Prior};
use crate::time::{Duration, Instant};

/// CUBIC's settings (RFC 9438 §5 and Linux's `tcp_cubic` module parameters).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct CubicConfig {
    /// Initial window in segments (RFC 6928; Linux 10).
    pub initial_window: u32,
    /// C, in segments per second cubed (RFC 9438 §5: 0.4).
    pub c: f64,
    /// β_cubic, the multiplicative decrease factor (RFC 9438 §4.6: 0.7).
    pub beta: f64,
    /// Fast convergence (RFC 9438 §4.7; Linux `fast_convergence=1`).
    pub fast_convergence: bool,
    /// HyStart++ in the initial slow start (`None`: RFC 5681 slow start throughout).
    pub hystart: Option<HyStartConfig>,
    /// RFC 3465 byte-counting limit, in segments, for slow start without HyStart++.
    pub abc_limit: u32,
}

impl Default for CubicConfig {
    fn default() -> Self {
        CubicConfig {
            initial_window: 10,
            c: 0.4,
            beta: 0.7,
            fast_convergence: true,
            hystart: Some(HyStartConfig::default()),
            abc_limit: 2,
        }
    }
}

/// The congestion-avoidance state RFC 9438 §4 names, saved whole for undo (§4.9).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Epoch {
    /// W_max in bytes: the window just before the last reduction (after fast convergence).
    w_max: f64,
    /// cwnd_prior in bytes: the window when ssthresh was last set (for α_cubic, §4.3).
    cwnd_prior: f64,
    /// t_epoch: when the current congestion-avoidance stage began (`None` until it does).
    start: Option<Instant>,
    /// K in seconds (§4.2).
    k: f64,
    /// W_est in bytes (§4.3).
    w_est: f64,
    /// The first congestion-avoidance stage after an RTO: K = 0 and W_max = cwnd (§4.8).
    after_rto: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Saved {
    prior: Prior,
    epoch: Epoch,
}

/// RFC 9438 CUBIC.
#[derive(Debug, Clone)]
pub struct Cubic {
    cfg: CubicConfig,
    cwnd: f64,
    ssthresh: u32,
    epoch: Epoch,
    hystart: Option<HyStart>,
    /// When the last ACK was processed: the gap to the next one is not counted in `t` when the
    /// flow was application-limited or idle (§5.8).
    last_ack: Option<Instant>,
    saved: Option<Saved>,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Cubic {
    pub fn new(cfg: CubicConfig, mss: u32) -> Cubic {
        let cwnd = f64::from(cfg.initial_window.max(1)) * f64::from(mss);
        Cubic {
            cfg,
            cwnd,
            ssthresh: u32::MAX,
            epoch: Epoch {
                w_max: 0.0,
                cwnd_prior: 0.0,
                start: None,
                k: 0.0,
                w_est: 0.0,
                after_rto: false,
            },
            hystart: cfg.hystart.map(HyStart::new),
            last_ack: None,
            saved: None,
        }
    }

    /// α_cubic = 3(1 − β)/(1 + β) (RFC 9438 §4.3): Reno's average rate with CUBIC's β.
    fn alpha_cubic(&self) -> f64 {
        3.0 * (1.0 - self.cfg.beta) / (1.0 + self.cfg.beta)
    }

    /// W_cubic(t) = C·(t − K)³ + W_max (RFC 9438 Figure 1), in bytes, for time `t` since the
    /// start of the current congestion-avoidance stage. `None` before the stage starts.
    pub fn w_cubic(&self, t: Duration, mss: u32) -> Option<f64> {
        self.epoch.start?;
        let d = secs(t) - self.epoch.k;
        Some(self.cfg.c * d * d * d * f64::from(mss) + self.epoch.w_max)
    }

    /// K (RFC 9438 §4.2): the time the window takes to grow back to W_max.
    pub fn k(&self) -> Option<Duration> {
        self.epoch.start?;
        Some(Duration::from_secs_f64(self.epoch.k.max(0.0)))
    }

    /// W_max in bytes.
    pub fn w_max(&self) -> u32 {
        self.epoch.w_max as u32
    }

    /// When the current congestion-avoidance stage began.
    pub fn epoch_start(&self) -> Option<Instant> {
        self.epoch.start
    }

    fn begin_epoch(&mut self, now: Instant, mss: u32) {
        let e = &mut self.epoch;
        e.start = Some(now);
        if e.after_rto || e.w_max <= self.cwnd {
            // §4.8: after a timeout K = 0 and W_max is the window at the start of the stage;
            // likewise when there is no earlier maximum above the window (first stage after
            // slow start), so the curve starts convex at the current window.
            e.w_max = self.cwnd;
            e.k = 0.0;
        } else {
            // §4.2: K = cubic_root((W_max − cwnd_epoch) / C), in segments.
            e.k = ((e.w_max - self.cwnd) / f64::from(mss) / self.cfg.c).cbrt();
        }
        e.after_rto = false;
        // §4.3: W_est starts at cwnd_epoch.
        e.w_est = self.cwnd;
    }

    fn congestion_avoidance(&mut self, ack: &AckEvent) {
        let mss = ack.mss.max(1);
        if self.epoch.start.is_none() {
            self.begin_epoch(ack.now, mss);
        }
        let start = self.epoch.start.unwrap_or(ack.now);
        let t = ack.now.saturating_since(start);
        // §4.2: the target is W_cubic one RTT ahead (the smoothed RTT).
        let rtt = ack.srtt.or(ack.rtt).unwrap_or(Duration::ZERO);
        let delivered = f64::from(ack.delivered);
        let w_t = self.w_cubic(t, mss).unwrap_or(self.cwnd);
        let w_next = self.w_cubic(t + rtt, mss).unwrap_or(self.cwnd);
        // §4.3: W_est grows by α_cubic segments per window of acknowledged segments; α_cubic
        // becomes 1 once W_est has reached the window of the last reduction.
        let alpha = if self.epoch.w_est >= self.epoch.cwnd_prior {
            1.0
        } else {
            self.alpha_cubic()
        };
        self.epoch.w_est += alpha * delivered * f64::from(mss) / self.cwnd.max(1.0);
        if w_t < self.epoch.w_est {
            // §4.3 Reno-friendly region: "cwnd SHOULD be set to W_est".
            self.cwnd = self.cwnd.max(self.epoch.w_est);
            return;
        }
        // §4.2: target = clamp(W_cubic(t + RTT), cwnd, 1.5·cwnd); §4.4 (concave) and §4.5
        // (convex): cwnd += (target − cwnd)/cwnd per acknowledged segment.
        let target = w_next.clamp(self.cwnd, 1.5 * self.cwnd);
        self.cwnd += (target - self.cwnd) / self.cwnd.max(1.0) * delivered;
    }

    /// §4.6 and §4.7: remember W_max (reduced by fast convergence when the window did not
    /// reach the previous maximum), then reduce.
    fn reduce(&mut self, flight: u32, mss: u32) {
        self.saved = Some(Saved {
            prior: Prior {
                cwnd: self.cwnd(),
                ssthresh: self.ssthresh,
            },
            epoch: self.epoch,
        });
        let cwnd = self.cwnd;
        self.epoch.w_max = if self.cfg.fast_convergence && cwnd < self.epoch.w_max {
            cwnd * (1.0 + self.cfg.beta) / 2.0
        } else {
            cwnd
        };
        self.epoch.cwnd_prior = cwnd;
        self.epoch.start = None;
        // §4.6: ssthresh = flight_size · β_cubic, at least 2 segments for a loss.
        self.ssthresh = reduced_ssthresh(flight, cwnd as u32, self.cfg.beta, mss);
        if let Some(h) = &mut self.hystart {
            h.on_congestion();
        }
    }
}

impl CongestionControl for Cubic {
    fn name(&self) -> &'static str {
        "cubic"
    }

    fn cwnd(&self) -> u32 {
        self.cwnd.min(f64::from(u32::MAX)) as u32
    }

    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    fn on_sent(&mut self, now: Instant, _bytes: u32, in_flight_before: u32) {
        // §5.8: an idle period (nothing in flight) is not part of `t`.
        if in_flight_before == 0 {
            if let (Some(start), Some(last)) = (self.epoch.start, self.last_ack) {
                self.epoch.start = Some(start + now.saturating_since(last));
            }
            self.last_ack = Some(now);
        }
    }

    fn on_ack(&mut self, ack: &AckEvent) {
        let since_last = self.last_ack.map(|l| ack.now.saturating_since(l));
        self.last_ack = Some(ack.now);
        if !ack.cwnd_limited {
            // §5.8: no growth while application-limited, and that time is not part of `t`.
            if let (Some(start), Some(gap)) = (self.epoch.start, since_last) {
                self.epoch.start = Some(start + gap);
            }
            return;
        }
        if ack.delivered == 0 {
            return;
        }
        let mss = ack.mss.max(1);
        if self.cwnd() < self.ssthresh {
            let cwnd = self.cwnd();
            if let Some(h) = self.hystart.as_mut().filter(|h| h.active()) {
                let step = h.on_ack(ack, cwnd);
                self.cwnd += f64::from(step.increase);
                if step.exit_to_ca {
                    self.ssthresh = self.cwnd();
                    self.epoch.cwnd_prior = self.cwnd;
                }
                return;
            }
            // RFC 9438 §4.10: standard slow start below ssthresh.
            let limit = self.cfg.abc_limit.max(1).saturating_mul(mss);
            let (grown, left) = slow_start(cwnd, self.ssthresh, ack.delivered, limit);
            self.cwnd = f64::from(grown);
            if left == 0 {
                return;
            }
            let rest = AckEvent {
                delivered: left,
                ..*ack
            };
            return self.congestion_avoidance(&rest);
        }
        self.congestion_avoidance(ack);
    }

    fn on_congestion_event(&mut self, ev: &CongestionEvent) {
        self.reduce(ev.flight_size, ev.mss);
        // §4.6: cwnd = max(ssthresh, 2) on loss, max(ssthresh, 1) on ECE — the level PRR
        // steers the flight to.
        let floor = match ev.kind {
            CongestionKind::Ecn => ev.mss,
            _ => 2 * ev.mss,
        };
        self.cwnd = f64::from(self.ssthresh.max(floor));
    }

    fn on_recovery_exit(&mut self, _now: Instant, _flight: u32, _mss: u32) {
        // RFC 9937: cwnd = ssthresh when recovery ends; congestion avoidance (a new epoch)
        // starts with the next ACK.
        self.cwnd = f64::from(self.ssthresh);
        self.epoch.start = None;
    }

    fn on_rto(&mut self, _now: Instant, flight: u32, mss: u32) {
        self.reduce(flight, mss);
        // §4.8: Reno's response to a timeout (cwnd = 1 SMSS), ssthresh from β_cubic, and the
        // next congestion-avoidance stage starts its curve at the window it then has.
        self.cwnd = f64::from(mss);
        self.epoch.after_rto = true;
    }

    fn on_spurious(&mut self, _now: Instant) {
        // §4.9: restore the state saved before the spurious reduction.
        if let Some(saved) = self.saved.take() {
            let mut cwnd = self.cwnd();
            saved.prior.undo(&mut cwnd, &mut self.ssthresh);
            self.cwnd = f64::from(cwnd);
            self.epoch = saved.epoch;
        }
    }

    fn counters(&self) -> CcCounters {
        CcCounters {
            hystart: self
                .hystart
                .as_ref()
                .map(|h| h.counters())
                .unwrap_or_default(),
        }
    }
}
