//! A connection's send side (RFC 9293 §3.3.1 send sequence space): the send buffer, SND.UNA,
//! SND.NXT, the peer's window, what new data may go (Nagle, silly window avoidance, persist),
//! the segments retransmissions carry, and RTT sampling.
//!
//! Which segment to retransmit and how much may be in flight is loss recovery's
//! ([`crate::recovery`]: SACK scoreboard, RACK-TLP, PRR) and congestion control's
//! ([`crate::cc`]).

use crate::ring::Ring;
use crate::rtt::RttEstimator;
use crate::time::Instant;
use crate::TxKind;
use tcpfsm_wire::{Flags, SeqNum, TcpRepr};

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
    pub(crate) rtt: RttEstimator,
    /// Karn's algorithm without timestamps: one segment timed at a time, never a retransmitted
    /// one (RFC 6298 §3): when it was sent, if one is timed, and its sequence number. Two
    /// fields, not an `Option` of the pair: that took 24 bytes, where the sequence number
    /// packs beside the other 32-bit fields, and the connection's 512-byte target needs the
    /// 8 saved (they pay for `Timers::moved`).
    rtt_probe_at: Option<Instant>,
    rtt_probe_seq: SeqNum,
    /// Consecutive retransmission timeouts without progress.
    pub(crate) retries: u32,
    /// Unanswered zero-window probes (RFC 9293 §3.8.6.1; an answered probe resets this).
    pub(crate) probes: u32,
    /// Doublings of the persist interval (RFC 9293 §3.8.6.1 "increase exponentially"). Like
    /// Linux's `icsk_backoff` in `tcp_probe_timer` it grows with every zero-window probe,
    /// answered or not, and restarts only when the window opens (`tcp_ack_probe`); `probes`,
    /// which an answer resets, decides the give-up instead.
    pub(crate) persist_backoff: u8,
    /// Every retransmitted segment, for `info()`.
    pub(crate) retrans_total: u32,
    /// SND.NXT and our TSval when the last retransmission timeout fired: until data beyond it
    /// is acknowledged, an echo older than the TSval is ambiguous (Karn's rule for timestamps)
    /// and gives no RTT sample.
    rto_mark: Option<(SeqNum, u32)>,
    /// Our SYN (or SYN-ACK) is to be sent (again).
    pub(crate) syn_pending: bool,
    /// The persist timer fired: send what the window allows even below the SWS threshold,
    /// or a probe when it allows nothing.
    pub(crate) persist_fired: bool,
}

/// What is queued beyond what was sent ([`SendSide::unsent`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unsent {
    /// Where new data starts: SND.NXT, or the first byte after the SYN.
    cur: SeqNum,
    /// Queued bytes from `cur` on.
    avail: u32,
    /// The FIN is queued right after them and not yet sent.
    fin_due: bool,
}

impl Unsent {
    /// Whether data or a FIN waits to be sent.
    pub(crate) fn waiting(&self) -> bool {
        self.avail > 0 || self.fin_due
    }
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
            rtt,
            rtt_probe_at: None,
            rtt_probe_seq: SeqNum(0),
            retries: 0,
            probes: 0,
            persist_backoff: 0,
            retrans_total: 0,
            rto_mark: None,
            syn_pending: false,
            persist_fired: false,
        }
    }

    /// The window `seg` offers, in bytes: scaled by the peer's shift, except in a SYN (RFC 7323
    /// §2.2: "The window field in a segment where the SYN bit is set MUST NOT be scaled"),
    /// such as the SYN-ACK that completes a simultaneous open in SYN_RECEIVED.
    pub(crate) fn offered_window(&self, seg: &TcpRepr<'_>) -> u32 {
        if seg.flags.contains(Flags::SYN) {
            seg.window as u32
        } else {
            (seg.window as u32) << self.wscale
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
        self.unsent().waiting()
    }

    /// What is queued and not yet sent, worked out once for both [`Unsent::waiting`] and
    /// [`SendSide::plan_new_from`]: the send path asks both for every segment, and working
    /// it out twice cost about 12 instructions a segment.
    pub(crate) fn unsent(&self) -> Unsent {
        let cur = self.snd_nxt.max(self.buf_seq());
        let data_end = self.data_end();
        Unsent {
            cur,
            avail: data_end.diff(cur).max(0) as u32,
            fin_due: self.fin_seq == Some(data_end) && !self.fin_sent(),
        }
    }

    /// Drops what is buffered (the connection is closed); the storage stays until
    /// [`SendSide::release`] or until a new connection adopts it.
    pub(crate) fn discard(&mut self) {
        self.ring.clear();
    }

    /// Gives the send buffer's memory back (the connection is closed).
    pub(crate) fn release(&mut self) {
        self.ring.release();
    }

    pub(crate) fn trim_for_reuse(&mut self) {
        self.ring.trim_for_reuse();
    }

    /// Takes a finished connection's buffer storage (see [`crate::ring::Ring::adopt`]).
    pub(crate) fn adopt_storage(&mut self, old: &mut SendSide) {
        self.ring.adopt(&mut old.ring);
    }

    pub(crate) fn outstanding(&self) -> bool {
        self.snd_nxt != self.snd_una
    }

    /// Karn: starts timing `seq` if nothing is timed.
    pub(crate) fn time_segment(&mut self, seq: SeqNum, now: Instant) {
        if self.rtt_probe_at.is_none() {
            self.rtt_probe_at = Some(now);
            self.rtt_probe_seq = seq;
        }
    }

    /// Karn (RFC 6298 §3): a retransmission of the timed segment makes its sample ambiguous.
    pub(crate) fn retransmitting(&mut self, seq: SeqNum, end: SeqNum) {
        if self.rtt_probe_at.is_some() {
            let p = self.rtt_probe_seq;
            if p.ge(seq) && p.lt(end) || p == seq {
                self.rtt_probe_at = None;
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
        let sent = self.rtt_probe_at?;
        if ack.gt(self.rtt_probe_seq) {
            self.rtt_probe_at = None;
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
        drained as u32
    }

    /// The retransmission timer fired: the SYN goes again if it was not acknowledged (data is
    /// retransmitted as loss recovery marks it lost). `tsval` is our timestamp now.
    pub(crate) fn rewind(&mut self, tsval: Option<u32>) {
        self.rtt_probe_at = None;
        if self.snd_una == self.iss {
            self.syn_pending = true;
            return;
        }
        self.rto_mark = tsval.map(|t| (self.snd_nxt, t));
    }

    /// Whether an ACK echoing `tsecr` may be answering a transmission from before the last
    /// timeout (RFC 7323 §4.1 with Karn's rule, RFC 6298 §3).
    pub(crate) fn rto_echo_ambiguous(&mut self, ack: SeqNum, tsecr: u32) -> bool {
        let Some((nxt, tsval)) = self.rto_mark else {
            return false;
        };
        if ack.gt(nxt) {
            self.rto_mark = None;
            return false;
        }
        crate::arrival::ts_before(tsecr, tsval)
    }

    /// The segment that retransmits `[seq, seq + len)` (a scoreboard record): its payload is
    /// what is still queued there, with the FIN if the range reaches it.
    pub(crate) fn plan_retransmit(&mut self, seq: SeqNum, len: u32) -> Option<Plan> {
        let seq = seq.max(self.buf_seq());
        let end = seq.wrapping_add(len).min(self.snd_nxt);
        let data_end = self.data_end().min(end);
        let data = (data_end.diff(seq).max(0) as u32).min(self.mss as u32);
        let fin = self
            .fin_seq
            .is_some_and(|f| seq.wrapping_add(data) == f && end.gt(f));
        if data == 0 && !fin {
            return None;
        }
        self.retransmitting(seq, seq.wrapping_add(data + fin as u32));
        Some(Plan {
            seq,
            len: data,
            fin,
            kind: TxKind::Retransmission,
        })
    }

    /// New data (and the FIN) under the peer's window, the congestion window's room
    /// `cwnd_room` and Nagle's algorithm, with sender-side silly window avoidance (RFC 9293
    /// §3.8.6.2.1): a segment shorter than the MSS goes out only if it carries all queued data
    /// (and Nagle allows it), or if it is at least min(MSS, Max(SND.WND)/2) — or when the
    /// persist timer has fired. `flight` is what loss recovery counts in flight. `Err` says why
    /// nothing goes. Nothing changes until [`SendSide::commit_new`].
    pub(crate) fn plan_new(
        &self,
        cwnd_room: u32,
        flight: u32,
        nodelay: bool,
    ) -> Result<Plan, Held> {
        self.plan_new_from(self.unsent(), cwnd_room, flight, nodelay)
    }

    /// [`SendSide::plan_new`] with `unsent` = [`SendSide::unsent`] already known.
    pub(crate) fn plan_new_from(
        &self,
        unsent: Unsent,
        cwnd_room: u32,
        flight: u32,
        nodelay: bool,
    ) -> Result<Plan, Held> {
        let mss = self.mss as u32;
        let Unsent {
            cur,
            avail,
            fin_due,
        } = unsent;
        if avail == 0 && !fin_due {
            return Err(Held::Idle);
        }
        let wnd_room = self.snd_una.wrapping_add(self.snd_wnd).diff(cur).max(0) as u32;
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
            return Err(if !self.outstanding() {
                Held::Stalled
            } else {
                Held::Waiting
            });
        }
        Ok(Plan {
            seq: cur,
            len,
            fin,
            kind: TxKind::Normal,
        })
    }

    /// `plan` (from [`SendSide::plan_new`]) goes out: SND.NXT moves past it.
    pub(crate) fn commit_new(&mut self, plan: &Plan) {
        self.persist_fired = false;
        let end = plan.seq.wrapping_add(plan.len + plan.fin as u32);
        if end.gt(self.snd_nxt) {
            self.snd_nxt = end;
        }
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
        let p = send_new(&mut s, false);
        assert_eq!(p.len, 1000);
        assert_eq!(
            s.plan_new(100_000, s.flight_size(), false),
            Err(Held::Waiting)
        );
        assert_eq!(s.plan_new(100_000, s.flight_size(), true).unwrap().len, 500);
    }

    #[test]
    fn sub_mss_window_below_half_the_max_waits_for_the_persist_timer_rfc9293_3_8_6_2_1() {
        let mut s = side();
        s.push(&[0u8; 5000]);
        s.snd_wnd = 300;
        assert_eq!(
            s.plan_new(100_000, s.flight_size(), false),
            Err(Held::Stalled)
        );
        s.persist_fired = true;
        let p = s.plan_new(100_000, s.flight_size(), false).unwrap();
        assert_eq!(p.len, 300);
    }

    #[test]
    fn sub_mss_window_of_half_the_max_is_used_at_once() {
        let mut s = side();
        s.push(&[0u8; 5000]);
        s.max_snd_wnd = 1200;
        s.snd_wnd = 600;
        assert_eq!(
            s.plan_new(100_000, s.flight_size(), false).unwrap().len,
            600
        );
    }

    #[test]
    fn fin_needs_one_byte_of_window() {
        let mut s = side();
        s.push(&[0u8; 10]);
        s.queue_fin();
        s.snd_wnd = 10;
        let p = s.plan_new(100_000, s.flight_size(), false).unwrap();
        assert_eq!((p.len, p.fin), (10, false));
        s.commit_new(&p);
        s.snd_wnd = 11;
        let p = s.plan_new(100_000, s.flight_size(), false).unwrap();
        assert_eq!((p.len, p.fin), (0, true));
    }

    /// Plans and commits one new segment.
    fn send_new(s: &mut SendSide, nodelay: bool) -> Plan {
        let p = s.plan_new(100_000, s.flight_size(), nodelay).unwrap();
        s.commit_new(&p);
        p
    }

    #[test]
    fn karn_drops_the_sample_of_a_retransmitted_segment_rfc6298_3() {
        let mut s = side();
        s.push(&[0u8; 3000]);
        let t0 = Instant::from_micros(1_000_000);
        let p = send_new(&mut s, true);
        s.time_segment(p.seq, t0);
        send_new(&mut s, true);
        let una = s.snd_una;
        s.plan_retransmit(una, 1000).unwrap();
        let ack = s.snd_una.wrapping_add(2000);
        assert_eq!(
            s.take_probe_sample(ack, t0 + Duration::from_millis(50)),
            None
        );
    }

    #[test]
    fn a_retransmission_carries_what_is_queued_and_the_fin() {
        let mut s = side();
        s.push(&[7u8; 1500]);
        s.queue_fin();
        send_new(&mut s, true);
        let last = send_new(&mut s, true);
        assert_eq!((last.len, last.fin), (500, true));
        let una = s.snd_una;
        let r = s.plan_retransmit(una.wrapping_add(1000), 501).unwrap();
        assert_eq!((r.seq, r.len, r.fin), (una.wrapping_add(1000), 500, true));
        assert_eq!(r.kind, TxKind::Retransmission);
    }
}
