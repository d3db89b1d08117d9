//! RACK (RFC 8985 §6): time-based loss detection. A segment is lost once a segment sent after
//! it has been delivered and more than RACK.rtt + reo_wnd has passed since it was sent.
//!
//! # How to drive it (RFC 8985 §6)
//! - Every (re)transmission: [`Rack::on_transmit`] (and the scoreboard's own record).
//! - Every RTT sample from RFC 6298 or timestamps (Karn's rule applied): [`Rack::on_rtt_sample`]
//!   (step 1, the windowed `RACK.min_RTT`).
//! - Every ACK: pass [`Rack::on_delivered`] as the scoreboard's visitor (steps 2 and 3), then
//!   [`Rack::end_ack`] with the D-SACK flag (step 4's adaptation), then
//!   [`Rack::detect_loss`] (step 5): it marks losses in the scoreboard and returns the
//!   reordering timer deadline to arm, if any.
//! - The reordering timer fires: [`Rack::detect_loss`] again (§6.3).
//! - The RTO fires: [`Rack::mark_losses_on_rto`] (§6.3).
//! - Fast or RTO recovery ends: [`Rack::on_recovery_exit`] (step 4, `reo_wnd_persist`).
//!
//! Detection walks a log of transmissions in time order (Linux keeps a time-sorted list for
//! the same reason) and stops at the first one sent after RACK.segment; stale log entries
//! (acknowledged, SACKed, retransmitted since) are dropped as they reach the front.

use super::scoreboard::{Delivered, Scoreboard};
use crate::time::{Duration, Instant};
use std::collections::VecDeque;
use tcpfsm_wire::SeqNum;

/// RACK's settings (RFC 8985 §6.2 and Linux's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RackConfig {
    /// DupThresh (3): with no reordering seen, this many SACKed segments zero the window.
    pub dup_thresh: u32,
    /// Recoveries a D-SACK-grown window persists for (16).
    pub reo_wnd_persist: u8,
    /// Window of the min-RTT filter (Linux `tcp_min_rtt_wlen`: 300 s).
    pub min_rtt_window: Duration,
    /// Adapt the reordering window to D-SACKs (RFC 8985 §6.2 step 4; Linux
    /// `tcp_recovery` bit 0x4 clear).
    pub dsack_adaptation: bool,
    /// How long past the latest RACK deadline the reordering timer fires (2 ms). RFC 8985
    /// §6.2 step 5 arms it at the deadline itself; Linux arms it two jiffies later
    /// (`tcp_rack_mark_lost`: `usecs_to_jiffies(timeout) + TCP_TIMEOUT_MIN`, 2–3 ms at
    /// HZ=1000, 8–12 ms at HZ=250). Only losses nothing else reveals wait for the timer — an
    /// arriving ACK still marks at the deadline — and there a segment held back just past the
    /// reordering window gets this long to arrive before it is resent: on a link whose
    /// reordering reaches the window's edge, the loss grid's 2 %/10 %/10 ms cell, it halved
    /// the spurious retransmissions (D-SACKs) without changing goodput.
    pub timer_slack: Duration,
}

impl Default for RackConfig {
    fn default() -> Self {
        RackConfig {
            dup_thresh: 3,
            reo_wnd_persist: 16,
            min_rtt_window: Duration::from_secs(300),
            dsack_adaptation: true,
            timer_slack: Duration::from_millis(2),
        }
    }
}

/// A windowed minimum over (time, value) samples, keeping the best three estimates so the
/// minimum ages out smoothly (Kathleen Nichols' windowed min-max, as Linux's `minmax`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MinFilter {
    s: [(Instant, Duration); 3],
    valid: bool,
}

impl MinFilter {
    pub fn get(&self) -> Option<Duration> {
        self.valid.then_some(self.s[0].1)
    }

    pub fn update(&mut self, now: Instant, v: Duration, window: Duration) {
        let fresh = (now, v);
        if !self.valid || v <= self.s[0].1 || now.saturating_since(self.s[2].0) > window {
            self.s = [fresh; 3];
            self.valid = true;
            return;
        }
        if v <= self.s[1].1 {
            self.s[1] = fresh;
            self.s[2] = fresh;
        } else if v <= self.s[2].1 {
            self.s[2] = fresh;
        }
        // Age the estimates: the best one expires after a window, the others after a
        // quarter and a half of it, so a replacement is always at hand.
        let age = now.saturating_since(self.s[0].0);
        if age > window {
            self.s[0] = self.s[1];
            self.s[1] = self.s[2];
            self.s[2] = fresh;
            if now.saturating_since(self.s[0].0) > window {
                self.s[0] = self.s[1];
                self.s[1] = self.s[2];
                self.s[2] = fresh;
            }
        } else if self.s[1].0 == self.s[0].0 && age > window / 4 {
            self.s[1] = fresh;
            self.s[2] = fresh;
        } else if self.s[2].0 == self.s[1].0 && age > window / 2 {
            self.s[2] = fresh;
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Sent {
    start: SeqNum,
    end: SeqNum,
    ts: Instant,
    order: u32,
}

/// What RACK_detect_loss found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RackLoss {
    /// Segments newly marked lost.
    pub lost: u32,
    /// Arm the reordering timer for this instant (`None`: disarm).
    pub timer: Option<Instant>,
}

/// RACK state for one connection (RFC 8985 §6.1's per-connection variables).
#[derive(Debug, Clone)]
pub struct Rack {
    cfg: RackConfig,
    /// RACK.xmit_ts and RACK.end_seq: the most recently sent segment delivered so far, with
    /// its transmission order.
    latest: Option<(Instant, u32, SeqNum)>,
    rtt: Duration,
    fack: Option<SeqNum>,
    min_rtt: MinFilter,
    reordering_seen: bool,
    /// The largest reordering displacement seen, in bytes: how far below RACK.fack a
    /// never-retransmitted segment was delivered (Linux measures `tp->reordering` so, in
    /// `tcp_check_sack_reordering`).
    reorder_extent: u32,
    reo_wnd_mult: u32,
    reo_wnd_persist: u8,
    dsack_round: Option<SeqNum>,
    log: VecDeque<Sent>,
    /// This ACK's newest valid delivered segment (send time, order, end, and the time it was
    /// delivered: its RTT is taken in `end_ack`, once per ACK rather than for every segment
    /// delivered — a Duration built from microseconds, a division, cost about 12 instructions
    /// a segment acknowledged) and lowest delivered original.
    ack_newest: Option<(Instant, u32, SeqNum, Instant)>,
    ack_lowest_original: Option<SeqNum>,
    ack_highest: Option<SeqNum>,
}

/// RACK_sent_after(t1, seq1, t2, seq2) (RFC 8985 §6.2 step 2). The RFC breaks a tie of
/// transmission times by end sequence number, assuming segments of one instant leave in
/// sequence order; a retransmission sent after new data in the same instant breaks that
/// assumption (and on a virtual clock every burst is one instant), so ties are broken by the
/// scoreboard's transmission order instead, which is what the RFC's rule approximates.
pub(crate) fn sent_after(a: (Instant, u32), b: (Instant, u32)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && (a.1.wrapping_sub(b.1) as i32) > 0)
}

impl Rack {
    /// RFC 8985 §6.1 initialisation.
    pub fn new(cfg: RackConfig) -> Rack {
        Rack {
            cfg,
            latest: None,
            rtt: Duration::ZERO,
            fack: None,
            min_rtt: MinFilter::default(),
            reordering_seen: false,
            reorder_extent: 0,
            reo_wnd_mult: 1,
            reo_wnd_persist: cfg.reo_wnd_persist,
            dsack_round: None,
            log: VecDeque::new(),
            ack_newest: None,
            ack_lowest_original: None,
            ack_highest: None,
        }
    }

    /// Takes a finished connection's transmission log, emptied (see
    /// `Scoreboard::adopt_storage`).
    pub(crate) fn adopt_storage(&mut self, old: &mut Rack) {
        if self.log.capacity() == 0 {
            self.log = std::mem::take(&mut old.log);
            self.log.clear();
        }
    }

    pub(crate) fn storage_is_small(&self) -> bool {
        self.log.capacity() <= super::scoreboard::KEEP_CAPACITY
    }

    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt.get()
    }

    /// RACK.rtt: the RTT of the most recently sent segment delivered.
    pub fn rtt(&self) -> Duration {
        self.rtt
    }

    pub fn reordering_seen(&self) -> bool {
        self.reordering_seen
    }

    /// The reordering degree in segments of `mss` bytes, as Linux's `tcpi_reordering` counts
    /// it: (RACK.fack − the reordered segment's start) / MSS + 1 at the largest displacement
    /// seen; 0 while none has been.
    pub fn reordering_degree(&self, mss: u32) -> u32 {
        if self.reorder_extent == 0 {
            return 0;
        }
        self.reorder_extent / mss.max(1) + 1
    }

    /// RACK.reo_wnd_mult (grows with D-SACK rounds).
    pub fn reo_wnd_mult(&self) -> u32 {
        self.reo_wnd_mult
    }

    /// RACK.xmit_ts and RACK.end_seq.
    pub fn latest_delivered(&self) -> Option<(Instant, SeqNum)> {
        self.latest.map(|(t, _, e)| (t, e))
    }

    /// §6.1: a segment `[start, end)` was (re)transmitted at `now`, as the scoreboard's
    /// transmission number `order`.
    pub fn on_transmit(&mut self, now: Instant, order: u32, start: SeqNum, end: SeqNum) {
        self.log.push_back(Sent {
            start,
            end,
            ts: now,
            order,
        });
    }

    /// Step 1: an RTT sample (RFC 6298 / RFC 7323) updates the windowed RACK.min_RTT.
    pub fn on_rtt_sample(&mut self, now: Instant, rtt: Duration) {
        self.min_rtt.update(now, rtt, self.cfg.min_rtt_window);
    }

    /// Steps 2 and 3 for one newly delivered segment (the scoreboard's visitor). `echo` is the
    /// latest send time the ACK's TSecr can refer to (the end of its timestamp tick), when
    /// timestamps are in use: it tells whether a retransmitted segment's ACK answers the
    /// retransmission.
    pub fn on_delivered(&mut self, d: &Delivered, now: Instant, echo: Option<Instant>) {
        if !d.retransmitted && self.ack_lowest_original.is_none_or(|l| d.end.lt(l)) {
            self.ack_lowest_original = Some(d.end);
        }
        if self.ack_highest.is_none_or(|h| d.end.gt(h)) {
            self.ack_highest = Some(d.end);
        }
        if d.retransmitted {
            // Step 2: a retransmitted segment's ACK may answer the original (RFC 8985 §6.2:
            // ignore it if TSecr predates the retransmission, or if it came back faster
            // than the minimum RTT allows).
            if echo.is_some_and(|e| e <= d.xmit_ts) {
                return;
            }
            let rtt = now.saturating_since(d.xmit_ts);
            if self.min_rtt.get().is_some_and(|m| rtt < m) {
                return;
            }
        }
        let cand = (d.xmit_ts, d.order);
        if self
            .ack_newest
            .is_none_or(|(t, o, _, _)| sent_after(cand, (t, o)))
        {
            self.ack_newest = Some((d.xmit_ts, d.order, d.end, now));
        }
    }

    /// Closes one ACK: applies steps 2–4 (RACK.segment, reordering, D-SACK window growth).
    /// `dsack` says whether the ACK carried a D-SACK; `snd_una`/`snd_nxt` are after the ACK.
    pub fn end_ack(&mut self, dsack: bool, snd_una: SeqNum, snd_nxt: SeqNum) {
        if let Some((ts, order, end, delivered_at)) = self.ack_newest.take() {
            self.rtt = delivered_at.saturating_since(ts);
            if self
                .latest
                .is_none_or(|(lt, lo, _)| sent_after((ts, order), (lt, lo)))
            {
                self.latest = Some((ts, order, end));
            }
        }
        // Step 3: a never-retransmitted segment delivered below RACK.fack arrived out of
        // order. (Processing the ACK's segments in ascending end_seq, only those below the
        // previous RACK.fack can be below it.)
        if let (Some(low), Some(fack)) = (self.ack_lowest_original.take(), self.fack) {
            if low.lt(fack) {
                self.reordering_seen = true;
                self.reorder_extent = self.reorder_extent.max((fack - low) as u32);
            }
        }
        if let Some(high) = self.ack_highest.take() {
            if self.fack.is_none_or(|f| high.gt(f)) {
                self.fack = Some(high);
            }
        }
        self.end_dsack_round(dsack, snd_una, snd_nxt);
    }

    /// [`Self::end_ack`] for an ACK that delivered no segment (no [`Self::on_delivered`] since
    /// the last `end_ack`), where steps 2 and 3 have nothing to close: step 4 alone. Loss
    /// recovery's idle shortcut takes it on every data segment a receiver is sent; the whole
    /// of `end_ack`, a call, cost about 30 instructions there.
    #[inline]
    pub(crate) fn end_idle_ack(&mut self, snd_una: SeqNum, snd_nxt: SeqNum) {
        debug_assert!(
            self.ack_newest.is_none()
                && self.ack_lowest_original.is_none()
                && self.ack_highest.is_none()
        );
        self.end_dsack_round(false, snd_una, snd_nxt);
    }

    /// Step 4: grow the window once per round trip that sees a D-SACK.
    #[inline]
    fn end_dsack_round(&mut self, dsack: bool, snd_una: SeqNum, snd_nxt: SeqNum) {
        if !self.cfg.dsack_adaptation {
            return;
        }
        if self.dsack_round.is_some_and(|r| snd_una.ge(r)) {
            self.dsack_round = None;
        }
        if self.dsack_round.is_none() && dsack {
            self.dsack_round = Some(snd_nxt);
            self.reo_wnd_mult = self.reo_wnd_mult.saturating_add(1);
            self.reo_wnd_persist = self.cfg.reo_wnd_persist;
        }
    }

    /// A D-SACK showed one of our retransmissions unnecessary: the segment was reordered or
    /// delayed, not lost. Count it as reordering seen, so the DupThresh shortcut (a zero
    /// window) stops applying — as Linux does when it undoes a reduction.
    pub fn on_spurious_retransmit(&mut self) {
        self.reordering_seen = true;
    }

    /// Step 4, on leaving fast or RTO recovery: a grown window decays after
    /// `reo_wnd_persist` recoveries without D-SACK.
    pub fn on_recovery_exit(&mut self) {
        self.reo_wnd_persist = self.reo_wnd_persist.saturating_sub(1);
        if self.reo_wnd_persist == 0 {
            self.reo_wnd_mult = 1;
        }
    }

    /// RACK_update_reo_wnd()'s value (step 4): zero while no reordering has been seen and
    /// either recovery is under way or DupThresh segments are SACKed (DupThresh behaviour);
    /// otherwise `reo_wnd_mult · min_RTT / 4`, bounded by SRTT.
    pub fn reo_wnd(&self, in_recovery: bool, segs_sacked: u32, srtt: Option<Duration>) -> Duration {
        if !self.reordering_seen && (in_recovery || segs_sacked >= self.cfg.dup_thresh) {
            return Duration::ZERO;
        }
        let Some(min_rtt) = self.min_rtt.get() else {
            return Duration::ZERO;
        };
        let w = min_rtt.saturating_mul(self.reo_wnd_mult) / 4;
        match srtt {
            Some(s) => w.min(s),
            None => w,
        }
    }

    /// Step 5, RACK_detect_loss(): marks in `sb` every in-flight segment sent before
    /// RACK.segment whose deadline `xmit_ts + RACK.rtt + reo_wnd` has passed, and returns the
    /// reordering timer for the rest (the latest of their deadlines, as the RFC's
    /// `max(remaining)`, plus `RackConfig::timer_slack`).
    ///
    /// The cases with nothing to walk are answered inline, the walk out of line: as one
    /// function, the call saved and restored its registers for them too.
    #[inline]
    pub fn detect_loss(
        &mut self,
        sb: &mut Scoreboard,
        now: Instant,
        in_recovery: bool,
        srtt: Option<Duration>,
    ) -> RackLoss {
        let Some(latest) = self.latest else {
            return RackLoss::default();
        };
        if sb.segments() == 0 {
            // Everything sent is acknowledged (the usual state after an ACK without loss):
            // no entry is live, so the walk below would only drop each one, finding neither a
            // loss nor a timer. Dropping them at once is the same and costs nothing per entry.
            self.log.clear();
            return RackLoss::default();
        }
        self.detect_loss_walk(sb, now, in_recovery, srtt, latest)
    }

    /// [`Self::detect_loss`] with segments in flight and a RACK.segment.
    #[inline(never)]
    fn detect_loss_walk(
        &mut self,
        sb: &mut Scoreboard,
        now: Instant,
        in_recovery: bool,
        srtt: Option<Duration>,
        latest: (Instant, u32, SeqNum),
    ) -> RackLoss {
        let mut out = RackLoss::default();
        let reo = self.reo_wnd(in_recovery, sb.sacked_segments(), srtt);
        let live = |sb: &Scoreboard, e: &Sent| {
            sb.segment(e.start)
                .is_some_and(|i| i.in_flight && i.order == e.order)
        };
        // Entries in transmission order. Every one sent before RACK.segment (RFC 8985 §6.2:
        // earlier xmit_ts, or the same xmit_ts and a lower end) whose deadline has passed is
        // lost; stale ones are dropped. Segments sent at the same instant are not in sequence
        // order (a retransmission of a lower sequence may follow new data), so the ties are
        // judged one by one rather than by the first of them.
        let mut timer: Option<Instant> = None;
        let mut i = 0;
        while i < self.log.len() {
            let e = self.log[i];
            if e.ts > latest.0 {
                break;
            }
            if !live(sb, &e) {
                self.log.remove(i);
                continue;
            }
            if !sent_after((latest.0, latest.1), (e.ts, e.order)) {
                i += 1;
                continue;
            }
            let deadline = e.ts + self.rtt + reo;
            if deadline <= now {
                if sb.mark_lost(e.start) {
                    out.lost += 1;
                }
                self.log.remove(i);
                continue;
            }
            // RFC 8985 §6.2 step 5: the timer covers the latest of the remaining deadlines.
            timer = Some(timer.map_or(deadline, |t| t.max(deadline)));
            i += 1;
        }
        out.timer = timer.map(|t| t + self.cfg.timer_slack);
        out
    }

    /// RFC 8985 §6.3, on RTO: the first unacknowledged segment is lost, and so is every
    /// segment sent at least RACK.rtt + reo_wnd ago. `clear_sacked` discards SACK state
    /// (RFC 2018 §8). Returns the number of segments newly marked.
    pub fn mark_losses_on_rto(
        &mut self,
        sb: &mut Scoreboard,
        now: Instant,
        srtt: Option<Duration>,
        clear_sacked: bool,
    ) -> u32 {
        let reo = self.reo_wnd(true, sb.sacked_segments(), srtt);
        let age = (self.rtt + reo).as_micros().min(u128::from(u64::MAX)) as u64;
        // Sent at or before `now − (RACK.rtt + reo_wnd)`; before the clock's epoch nothing was.
        let cutoff = Instant::from_micros(now.as_micros().saturating_sub(age));
        sb.mark_lost_on_rto(Some(cutoff), clear_sacked)
    }

    /// Log entries kept (for tests and memory accounting).
    pub fn log_len(&self) -> usize {
        self.log.len()
    }
}

#[cfg(test)]
mod tests;
