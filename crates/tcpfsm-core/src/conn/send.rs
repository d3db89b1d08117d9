//! A connection's send side (RFC 9293 §3.3.1 send sequence space): the send buffer, SND.UNA,
//! SND.NXT, the peer's window, what to send next (Nagle, silly window avoidance, persist),
//! retransmission after a timeout, and RTT sampling.
//!
//! Loss recovery decisions (fast retransmit, the RFC 6582 `recover` point) live beside it in
//! `recovery`; the window arithmetic of congestion control behind the [`crate::cc`] trait.

use crate::ring::Ring;
use crate::rtt::RttEstimator;
use crate::time::Instant;
use crate::TxKind;
use tcpfsm_wire::SeqNum;

#[derive(Debug)]
pub(crate) struct SendSide {
    pub(crate) iss: SeqNum,
    /// Oldest unacknowledged sequence number.
    pub(crate) snd_una: SeqNum,
    /// Next new sequence number to send (everything before it has been sent at least once).
    pub(crate) snd_nxt: SeqNum,
    /// SND.WND, scaled.
    pub(crate) snd_wnd: u32,
    /// The largest window the peer ever offered (RFC 9293 §3.8.6.2.1 Max(SND.WND)).
    pub(crate) max_snd_wnd: u32,
    pub(crate) snd_wl1: SeqNum,
    pub(crate) snd_wl2: SeqNum,
    /// The peer's window scale.
    pub(crate) wscale: u8,
    /// Queued bytes from the first unacknowledged data byte on.
    ring: Ring,
    /// Our FIN's sequence number, once the write side is shut.
    pub(crate) fin_seq: Option<SeqNum>,
    /// Effective send MSS: the peer's MSS less our per-segment options (RFC 9293 §3.7.1).
    pub(crate) mss: u16,
    /// After a retransmission timeout, the next sequence number to send again (go-back-N in
    /// the order of the queue, paced by the congestion window).
    pub(crate) rtx_next: Option<SeqNum>,
    pub(crate) rtt: RttEstimator,
    /// Karn's algorithm without timestamps: one segment timed at a time, never a retransmitted
    /// one (RFC 6298 §3).
    rtt_probe: Option<(SeqNum, Instant)>,
    /// Consecutive retransmission timeouts without progress.
    pub(crate) retries: u32,
    /// Unanswered zero-window probes (RFC 9293 §3.8.6.1; an answered probe resets this).
    pub(crate) probes: u32,
    /// Every retransmitted segment, for `info()`.
    pub(crate) retrans_total: u32,
    /// Our SYN (or SYN-ACK) is to be sent (again).
    pub(crate) syn_pending: bool,
    /// The persist timer fired: send what the window allows even below the SWS threshold,
    /// or a probe when it allows nothing.
    pub(crate) persist_fired: bool,
}

/// What to send next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) seq: SeqNum,
    /// Payload bytes.
    pub(crate) len: u32,
    pub(crate) fin: bool,
    pub(crate) kind: TxKind,
}

/// Why [`SendSide::plan_new`] sends nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Held {
    /// Nothing queued.
    Idle,
    /// Waiting for ACKs (Nagle, congestion window, or data in flight will open the window).
    Waiting,
    /// Data waits and nothing is in flight that would bring an ACK: the window is zero or too
    /// small to use (RFC 9293 §3.8.6.1 persist, §3.8.6.2.1 SWS override timer).
    Stalled,
}

impl SendSide {
    pub(crate) fn new(iss: SeqNum, buffer: usize, mss: u16, rtt: RttEstimator) -> SendSide {
        SendSide {
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: SeqNum(0),
            snd_wl2: iss,
            wscale: 0,
            ring: Ring::new(buffer),
            fin_seq: None,
            mss,
            rtx_next: None,
            rtt,
            rtt_probe: None,
            retries: 0,
            probes: 0,
            retrans_total: 0,
            syn_pending: false,
            persist_fired: false,
        }
    }

    /// Sequence number of the first byte in the send buffer.
    pub(crate) fn buf_seq(&self) -> SeqNum {
        if self.snd_una == self.iss {
            self.iss.wrapping_add(1)
        } else {
            self.snd_una
        }
    }

    /// Sequence number after the last queued data byte.
    pub(crate) fn data_end(&self) -> SeqNum {
        self.buf_seq().wrapping_add(self.ring.len() as u32)
    }

    pub(crate) fn queued(&self) -> usize {
        self.ring.len()
    }

    pub(crate) fn free(&self) -> usize {
        self.ring.free()
    }

    pub(crate) fn buffer(&self) -> usize {
        self.ring.max()
    }

    pub(crate) fn set_buffer(&mut self, bytes: usize) {
        self.ring.set_max(bytes);
    }

    pub(crate) fn push(&mut self, data: &[u8]) -> usize {
        self.ring.push(data)
    }

    pub(crate) fn push_with(&mut self, fill: impl FnOnce(&mut [u8]) -> usize) -> usize {
        let tail = self.ring.tail_mut(usize::MAX);
        let room = tail.len();
        let n = fill(tail).min(room);
        self.ring.extend_filled(n);
        n
    }

    /// The queued bytes of `[seq, seq + len)` (at most two slices, the ring may wrap).
    pub(crate) fn payload(&self, seq: SeqNum, len: u32) -> (&[u8], &[u8]) {
        let off = seq.diff(self.buf_seq()).max(0) as usize;
        self.ring.slices(off, len as usize)
    }

    /// Bytes sent and not yet acknowledged (RFC 5681 FlightSize), counting SYN and FIN.
    pub(crate) fn flight_size(&self) -> u32 {
        self.snd_nxt.diff(self.snd_una).max(0) as u32
    }

    /// Bytes believed in the network: after a timeout only what was sent again since.
    pub(crate) fn in_flight(&self) -> u32 {
        match self.rtx_next {
            Some(r) => r.diff(self.snd_una).max(0) as u32,
            None => self.flight_size(),
        }
    }

    pub(crate) fn fin_acked(&self) -> bool {
        self.fin_seq.is_some_and(|f| self.snd_una.gt(f))
    }

    pub(crate) fn queue_fin(&mut self) {
        if self.fin_seq.is_none() {
            self.fin_seq = Some(self.data_end());
        }
    }

    /// Whether the FIN has been sent at least once.
    pub(crate) fn fin_sent(&self) -> bool {
        self.fin_seq.is_some_and(|f| self.snd_nxt.gt(f))
    }

    /// Data or a FIN waits to be sent for the first time.
    pub(crate) fn waiting(&self) -> bool {
        let cur = self.snd_nxt.max(self.buf_seq());
        self.data_end().gt(cur) || self.fin_seq == Some(self.data_end()) && !self.fin_sent()
    }

    /// Gives the send buffer's memory back (the connection is closed).
    pub(crate) fn release(&mut self) {
        self.ring.release();
    }

    pub(crate) fn outstanding(&self) -> bool {
        self.snd_nxt != self.snd_una
    }

    /// Karn: starts timing `seq` if nothing is timed.
    pub(crate) fn time_segment(&mut self, seq: SeqNum, now: Instant) {
        if self.rtt_probe.is_none() {
            self.rtt_probe = Some((seq, now));
        }
    }

    /// Karn (RFC 6298 §3): a retransmission of the timed segment makes its sample ambiguous.
    pub(crate) fn retransmitting(&mut self, seq: SeqNum, end: SeqNum) {
        if let Some((p, _)) = self.rtt_probe {
            if p.ge(seq) && p.lt(end) || p == seq {
                self.rtt_probe = None;
            }
        }
        self.retrans_total += 1;
    }

    /// The RTT sample of a cumulative ACK without timestamps, if it covers the timed segment.
    pub(crate) fn take_probe_sample(
        &mut self,
        ack: SeqNum,
        now: Instant,
    ) -> Option<crate::Duration> {
        let (seq, sent) = self.rtt_probe?;
        if ack.gt(seq) {
            self.rtt_probe = None;
            return Some(now - sent);
        }
        None
    }

    /// New data acknowledged up to `ack`: drains the buffer and returns the data bytes
    /// acknowledged (SYN and FIN excluded).
    pub(crate) fn on_new_ack(&mut self, ack: SeqNum) -> u32 {
        let mut acked = ack.diff(self.snd_una).max(0) as u32;
        if self.snd_una == self.iss && acked > 0 {
            acked -= 1; // our SYN
        }
        if self.fin_seq.is_some_and(|f| ack.gt(f)) {
            acked = acked.saturating_sub(1); // our FIN
        }
        let drained = (acked as usize).min(self.ring.len());
        self.ring.consume(drained);
        self.snd_una = ack;
        if self.snd_nxt.lt(ack) {
            // A window probe's byte may have been acknowledged beyond what we count as sent.
            self.snd_nxt = ack;
        }
        // The go-back-N cursor never points below SND.UNA, and is done at SND.NXT.
        if let Some(r) = self.rtx_next {
            let r = r.max(ack);
            self.rtx_next = r.lt(self.snd_nxt).then_some(r);
        }
        drained as u32
    }

    /// The retransmission timer fired: go back to SND.UNA (RFC 6298 §5.4, as Linux marks the
    /// whole flight lost).
    pub(crate) fn rewind(&mut self) {
        self.rtt_probe = None;
        if self.snd_una == self.iss {
            self.syn_pending = true;
            return;
        }
        self.rtx_next = Some(self.snd_una);
    }

    /// The next go-back-N retransmission after a timeout, if the congestion window has room.
    pub(crate) fn plan_rewound(&mut self, cwnd: u32) -> Option<Plan> {
        let r = self.rtx_next?;
        if r.ge(self.snd_nxt) {
            self.rtx_next = None;
            return None;
        }
        let in_flight = r.diff(self.snd_una).max(0) as u32;
        if in_flight > 0 && in_flight >= cwnd {
            return None;
        }
        let seq = r.max(self.buf_seq());
        let data_end = self.data_end().min(self.snd_nxt);
        let len = (data_end.diff(seq).max(0) as u32).min(self.mss as u32);
        let fin = self
            .fin_seq
            .is_some_and(|f| seq.wrapping_add(len) == f && self.snd_nxt.gt(f));
        if len == 0 && !fin {
            self.rtx_next = None;
            return None;
        }
        let end = seq.wrapping_add(len + fin as u32);
        self.rtx_next = Some(end).filter(|e| e.lt(self.snd_nxt));
        self.retransmitting(seq, end);
        Some(Plan {
            seq,
            len,
            fin,
            kind: TxKind::Retransmission,
        })
    }

    /// One segment from SND.UNA again (fast retransmit, RFC 5681 §3.2 step 4).
    pub(crate) fn plan_fast_retransmit(&mut self) -> Option<Plan> {
        let seq = self.snd_una.max(self.buf_seq());
        let data_end = self.data_end().min(self.snd_nxt);
        let len = (data_end.diff(seq).max(0) as u32).min(self.mss as u32);
        let fin = self
            .fin_seq
            .is_some_and(|f| seq.wrapping_add(len) == f && self.snd_nxt.gt(f));
        if len == 0 && !fin {
            return None;
        }
        let end = seq.wrapping_add(len + fin as u32);
        self.retransmitting(seq, end);
        Some(Plan {
            seq,
            len,
            fin,
            kind: TxKind::Retransmission,
        })
    }

    /// New data (and the FIN) under the peer's window, the congestion window `cwnd` and
    /// Nagle's algorithm, with sender-side silly window avoidance (RFC 9293 §3.8.6.2.1): a
    /// segment shorter than the MSS goes out only if it carries all queued data (and Nagle
    /// allows it), or if it is at least min(MSS, Max(SND.WND)/2) — or when the persist timer
    /// has fired. `Err` says why nothing goes.
    pub(crate) fn plan_new(&mut self, cwnd: u32, nodelay: bool) -> Result<Plan, Held> {
        let mss = self.mss as u32;
        let cur = self.snd_nxt.max(self.buf_seq());
        let data_end = self.data_end();
        let avail = data_end.diff(cur).max(0) as u32;
        let fin_due = self.fin_seq == Some(data_end) && !self.fin_sent();
        if avail == 0 && !fin_due {
            return Err(Held::Idle);
        }
        let flight = self.in_flight();
        let wnd_room = self.snd_una.wrapping_add(self.snd_wnd).diff(cur).max(0) as u32;
        let cwnd_room = cwnd.saturating_sub(flight);
        let room = wnd_room.min(cwnd_room);
        let len = avail.min(room).min(mss);
        let all_fits = len == avail;
        // The FIN occupies a sequence number, so it too needs one byte of window.
        let fin = fin_due && all_fits && wnd_room > len;
        let send = if len == mss {
            true
        } else if len > 0 {
            let sws_ok = len >= mss.min(self.max_snd_wnd / 2).max(1);
            let nagle_ok = nodelay || flight == 0 || fin_due;
            if all_fits {
                nagle_ok
            } else if wnd_room < cwnd_room {
                // Limited by the peer's window.
                (sws_ok && nagle_ok) || (self.persist_fired && flight == 0)
            } else {
                // Limited by the congestion window: ACKs in flight will open it.
                false
            }
        } else {
            fin
        };
        if !send {
            return Err(if flight == 0 && self.rtx_next.is_none() {
                Held::Stalled
            } else {
                Held::Waiting
            });
        }
        self.persist_fired = false;
        let end = cur.wrapping_add(len + fin as u32);
        if end.gt(self.snd_nxt) {
            self.snd_nxt = end;
        }
        Ok(Plan {
            seq: cur,
            len,
            fin,
            kind: TxKind::Normal,
        })
    }

    /// A zero-window probe (RFC 9293 §3.8.6.1), in Linux's form: no data, SEQ = SND.UNA − 1,
    /// which the peer must answer with an ACK carrying its current window. Unlike a byte of new
    /// data it never enters the flight, so it cannot be retransmitted into a give-up.
    pub(crate) fn probe_seq(&self) -> SeqNum {
        self.snd_una - 1u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    fn side() -> SendSide {
        let rtt = RttEstimator::new(
            Duration::from_secs(1),
            Duration::from_millis(200),
            Duration::from_secs(120),
        );
        let mut s = SendSide::new(SeqNum(u32::MAX - 2), 100_000, 1000, rtt);
        // Handshake done: our SYN acknowledged.
        s.snd_nxt = s.iss.wrapping_add(1);
        s.snd_una = s.snd_nxt;
        s.snd_wnd = 10_000;
        s.max_snd_wnd = 10_000;
        s
    }

    #[test]
    fn nagle_holds_a_small_segment_while_data_is_in_flight_rfc9293_3_7_4() {
        let mut s = side();
        s.push(&[0u8; 1500]);
        let p = s.plan_new(100_000, false).unwrap();
        assert_eq!(p.len, 1000);
        assert_eq!(s.plan_new(100_000, false), Err(Held::Waiting));
        assert_eq!(s.plan_new(100_000, true).unwrap().len, 500);
    }

    #[test]
    fn sub_mss_window_below_half_the_max_waits_for_the_persist_timer_rfc9293_3_8_6_2_1() {
        let mut s = side();
        s.push(&[0u8; 5000]);
        s.snd_wnd = 300;
        assert_eq!(s.plan_new(100_000, false), Err(Held::Stalled));
        s.persist_fired = true;
        let p = s.plan_new(100_000, false).unwrap();
        assert_eq!(p.len, 300);
    }

    #[test]
    fn sub_mss_window_of_half_the_max_is_used_at_once() {
        let mut s = side();
        s.push(&[0u8; 5000]);
        s.max_snd_wnd = 1200;
        s.snd_wnd = 600;
        assert_eq!(s.plan_new(100_000, false).unwrap().len, 600);
    }

    #[test]
    fn fin_needs_one_byte_of_window() {
        let mut s = side();
        s.push(&[0u8; 10]);
        s.queue_fin();
        s.snd_wnd = 10;
        let p = s.plan_new(100_000, false).unwrap();
        assert_eq!((p.len, p.fin), (10, false));
        s.snd_wnd = 11;
        let p = s.plan_new(100_000, false).unwrap();
        assert_eq!((p.len, p.fin), (0, true));
    }

    #[test]
    fn karn_drops_the_sample_of_a_retransmitted_segment_rfc6298_3() {
        let mut s = side();
        s.push(&[0u8; 3000]);
        let t0 = Instant::from_micros(1_000_000);
        let p = s.plan_new(100_000, true).unwrap();
        s.time_segment(p.seq, t0);
        s.plan_new(100_000, true).unwrap();
        s.plan_fast_retransmit().unwrap();
        let ack = s.snd_una.wrapping_add(2000);
        assert_eq!(
            s.take_probe_sample(ack, t0 + Duration::from_millis(50)),
            None
        );
    }

    #[test]
    fn rewind_resends_in_order_paced_by_cwnd() {
        let mut s = side();
        s.push(&[0u8; 3000]);
        for _ in 0..3 {
            s.plan_new(100_000, true).unwrap();
        }
        s.rewind();
        let a = s.plan_rewound(1000).unwrap();
        assert_eq!((a.seq, a.len), (s.snd_una, 1000));
        assert_eq!(s.plan_rewound(1000), None, "cwnd of one segment");
        let acked = s.snd_una.wrapping_add(1000);
        s.on_new_ack(acked);
        let b = s.plan_rewound(1000).unwrap();
        assert_eq!(b.seq, acked);
    }
}
