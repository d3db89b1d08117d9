//! A connection's receive side (RFC 9293 §3.3.1 receive sequence space): the reassembly
//! buffer, RCV.NXT and the window we offer, SACK generation, and when to acknowledge.
//!
//! In-order unread bytes and out-of-order bytes share one ring: a byte of stream offset `x`
//! lies `x - nxt_off` past the unread bytes, and an [`IntervalSet`] records which out-of-order
//! ranges are there. Filling a hole is therefore just moving RCV.NXT — no copy, no allocation
//! per segment.

use crate::intervals::IntervalSet;
use crate::ring::Ring;
use crate::sack::SackGen;
use crate::TxKind;
use tcpfsm_wire::checksum::Checksum;
use tcpfsm_wire::{SackBlock, SeqNum};

#[derive(Debug)]
pub(crate) struct RecvSide {
    pub(crate) irs: SeqNum,
    pub(crate) rcv_nxt: SeqNum,
    /// Stream offset (bytes since IRS + 1) of RCV.NXT; 64-bit, so it never wraps.
    nxt_off: u64,
    /// Our window scale (RFC 7323 §2.2), 0 when not negotiated.
    pub(crate) wscale: u8,
    /// Right edge of the window last advertised; never moves left (RFC 9293 §3.8.6.2.2).
    rcv_adv: SeqNum,
    ring: Ring,
    ooo: IntervalSet,
    /// Allocated when the first SACK or D-SACK is to be reported: most connections never need
    /// one.
    sack: Option<Box<SackGen>>,
    /// Where the peer's FIN sits (after its last data byte), once seen.
    peer_fin: Option<SeqNum>,
    fin_consumed: bool,
    // When to acknowledge (RFC 9293 §3.8.6.3, RFC 5681 §4.2).
    ack_now: bool,
    ack_kind: TxKind,
    /// Full-sized segments received since our last ACK.
    unacked_segs: u8,
    /// The segment (SEG.SEQ, length) whose text `stage` already copied beyond the ring's tail
    /// while its checksum was verified; valid only while that one segment is processed.
    staged: Option<(SeqNum, u32)>,
}

/// What arriving text did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Text {
    /// Bytes that became readable in order.
    pub(crate) in_order: usize,
    /// The segment went to the out-of-order set (or was refused there).
    pub(crate) out_of_order: bool,
    /// The segment filled (part of) a hole: out-of-order data became readable with it.
    pub(crate) filled_hole: bool,
    /// Some bytes were beyond the window or the buffer and were dropped.
    pub(crate) trimmed: bool,
    /// Every byte was a duplicate.
    pub(crate) duplicate: bool,
    /// The out-of-order set was full and the segment was dropped.
    pub(crate) refused: bool,
}

impl Text {
    /// All `n` bytes became readable in order, and nothing else happened.
    #[inline(always)]
    pub(crate) fn in_order(n: usize) -> Text {
        Text {
            in_order: n,
            ..Text::default()
        }
    }
}

impl RecvSide {
    pub(crate) fn new(irs: SeqNum, buffer: usize, wscale: u8) -> RecvSide {
        let rcv_nxt = irs.wrapping_add(1);
        RecvSide {
            irs,
            rcv_nxt,
            nxt_off: 0,
            wscale,
            rcv_adv: rcv_nxt,
            ring: Ring::new(buffer),
            ooo: IntervalSet::default(),
            sack: None,
            peer_fin: None,
            fin_consumed: false,
            ack_now: false,
            ack_kind: TxKind::Normal,
            unacked_segs: 0,
            staged: None,
        }
    }

    /// A placeholder before the peer's SYN is known (SYN_SENT).
    pub(crate) fn unsynchronized(buffer: usize) -> RecvSide {
        RecvSide::new(SeqNum(0), buffer, 0)
    }

    /// Learns the peer's ISN from its SYN.
    pub(crate) fn synchronize(&mut self, irs: SeqNum, wscale: u8) {
        let buffer = self.ring.max();
        let mut old = std::mem::take(&mut self.ring);
        *self = RecvSide::new(irs, buffer, wscale);
        // Nothing is buffered before the SYN; keep storage the connection adopted.
        self.ring.adopt(&mut old);
    }

    pub(crate) fn trim_for_reuse(&mut self) {
        self.ring.trim_for_reuse();
    }

    /// Takes a finished connection's buffer storage (see [`crate::ring::Ring::adopt`]).
    pub(crate) fn adopt_storage(&mut self, old: &mut RecvSide) {
        self.ring.adopt(&mut old.ring);
    }

    fn base(&self) -> SeqNum {
        self.irs.wrapping_add(1)
    }

    /// Free buffer space: the most the window could reach to the right of RCV.NXT.
    fn space(&self) -> u32 {
        self.ring.free().min(u32::MAX as usize) as u32
    }

    /// RCV.WND: what remains of the window we advertised.
    pub(crate) fn rcv_wnd(&self) -> u32 {
        self.rcv_adv.diff(self.rcv_nxt).max(0) as u32
    }

    pub(crate) fn unread(&self) -> usize {
        self.ring.len()
    }

    pub(crate) fn buffer(&self) -> usize {
        self.ring.max()
    }

    pub(crate) fn set_buffer(&mut self, bytes: usize) {
        self.ring.set_max(bytes);
    }

    pub(crate) fn out_of_order_bytes(&self) -> u64 {
        self.ooo.bytes()
    }

    /// The window for our SYN or SYN-ACK (RFC 7323 §2.2: never scaled).
    pub(crate) fn syn_window(&mut self) -> u16 {
        let w = self.space().min(65535);
        self.rcv_adv = self.rcv_nxt.wrapping_add(w);
        w as u16
    }

    /// The window field for a segment we send now, moving the advertised right edge as
    /// receiver-side silly window avoidance allows (RFC 9293 §3.8.6.2.2): the edge moves only
    /// when it can move by min(buffer/2, MSS); it never moves left.
    pub(crate) fn advertise(&mut self, mss: u16) -> u16 {
        let space = self.space();
        let cur = self.rcv_wnd();
        let threshold = (self.ring.max() as u32 / 2).min(mss as u32).max(1);
        let ws = self.wscale;
        let field = if space > cur && space - cur >= threshold {
            (space >> ws).min(65535)
        } else {
            // Keep the promised edge; rounding up keeps it from moving left by the scale's
            // granularity (as Linux does).
            cur.div_ceil(1 << ws).min(65535)
        };
        let edge = self.rcv_nxt.wrapping_add(field << ws);
        if edge.gt(self.rcv_adv) {
            self.rcv_adv = edge;
        }
        field as u16
    }

    /// Whether the window could now move far enough right to be worth an update of its own
    /// (after the application read).
    pub(crate) fn window_update_due(&self, mss: u16) -> bool {
        let threshold = (self.ring.max() as u32 / 2).min(mss as u32).max(1);
        // Only as far as the window field can say: a buffer larger than 65535 << scale would
        // otherwise bring updates that repeat the window already advertised (Linux's
        // __tcp_cleanup_rbuf announces a window only when it grows).
        let most = 65535u32 << self.wscale;
        let could = self.rcv_nxt.wrapping_add(self.space().min(most));
        could.diff(self.rcv_adv) >= threshold as i32
    }

    /// RFC 9293 §3.10.7.4 sixth and seventh steps: text of an acceptable segment starting at
    /// `seq`. `sack` says whether the peer gets SACK and D-SACK blocks.
    /// The fast path for verifying a received checksum (Linux folds it into the copy to user
    /// space, `skb_copy_and_csum_datagram`): text that will go straight in at RCV.NXT — in
    /// order, nothing out of order beyond the tail for it to overwrite, all of it inside the
    /// window and the buffer — is copied just beyond the ring's tail while `sum` takes it in,
    /// instead of summed first and copied later. The copy only becomes data when `on_text`
    /// sees this same segment; a segment whose sum fails leaves the ring as it was. Returns
    /// whether it took the text (if not, the caller sums it).
    pub(crate) fn stage(&mut self, seq: SeqNum, data: &[u8], sum: &mut Checksum) -> bool {
        self.staged = None;
        if !self.in_order_fits(seq, data.len()) {
            return false;
        }
        let n = data.len();
        self.ring.stage_summed(data, sum);
        self.staged = Some((seq, n as u32));
        true
    }

    /// Text of `n` bytes at `seq` goes straight in at RCV.NXT: in order, nothing out of order
    /// beyond the tail for it to overwrite or join, no FIN waiting behind a hole, and all of
    /// it inside the window and the buffer (so nothing is trimmed).
    pub(crate) fn in_order_fits(&self, seq: SeqNum, n: usize) -> bool {
        n > 0
            && seq == self.rcv_nxt
            && self.ooo.is_empty()
            && self.peer_fin.is_none()
            && n as u64 <= (self.rcv_wnd() as u64).min(self.space() as u64)
    }

    /// The peer's FIN has been seen (consumed, or waiting behind a hole).
    pub(crate) fn peer_fin_seen(&self) -> bool {
        self.peer_fin.is_some()
    }

    /// Forgets a staged copy (its segment failed verification or has been processed).
    pub(crate) fn unstage(&mut self) {
        self.staged = None;
    }

    /// RFC 9293 §3.10.7.4 sixth and seventh steps: text of an acceptable segment starting at
    /// `seq`; `sack` says whether the peer gets SACK and D-SACK blocks.
    pub(crate) fn on_text(&mut self, seq: SeqNum, data: &[u8], sack: bool) -> Text {
        let staged = self.take_staged(seq, data);
        if self.take_in_order(seq, data, staged) {
            return Text::in_order(data.len());
        }
        self.on_text_steps(seq, data, staged, sack)
    }

    /// Whether `stage` already put exactly this text beyond the tail (forgotten either way).
    #[inline(always)]
    pub(crate) fn take_staged(&mut self, seq: SeqNum, data: &[u8]) -> bool {
        self.staged.take() == Some((seq, data.len() as u32))
    }

    /// [`Self::on_text`]'s first case, nearly every segment of a transfer: text that goes
    /// straight in at RCV.NXT ([`Self::in_order_fits`]) is taken, all of it in order, and
    /// true returned; otherwise nothing is done. What `on_text_steps` does with such text,
    /// with the tests it is known to pass left out (not below RCV.NXT, nothing to trim,
    /// offset 0 from the tail, no out-of-order range to join): through them it cost about
    /// 130 instructions a segment in bulk transfer, besides the copy. Inlined, the general
    /// steps not, so that a caller knows the outcome of this case (see `accept_text`).
    #[inline(always)]
    pub(crate) fn take_in_order(&mut self, seq: SeqNum, data: &[u8], staged: bool) -> bool {
        if !self.in_order_fits(seq, data.len()) {
            return false;
        }
        if staged {
            self.ring.extend_filled(data.len());
        } else {
            self.ring.push_inlined(data);
        }
        self.advance(self.nxt_off + data.len() as u64);
        true
    }

    /// [`Self::on_text`] for any text; `staged`: `stage` put exactly this text beyond the
    /// tail.
    #[inline(never)]
    pub(crate) fn on_text_steps(
        &mut self,
        seq: SeqNum,
        data: &[u8],
        staged: bool,
        sack: bool,
    ) -> Text {
        let whole = data.len();
        let mut t = Text::default();
        if data.is_empty() {
            return t;
        }
        // Stream offsets of the segment.
        let rel = seq.diff(self.rcv_nxt) as i64;
        let s = self.nxt_off as i64 + rel;
        let e = s + data.len() as i64;
        if e <= self.nxt_off as i64 {
            // Entirely below RCV.NXT: a duplicate (RFC 2883 §4 case 1).
            t.duplicate = true;
            if sack {
                self.sack_gen().on_duplicate(s.max(0) as u64, e as u64);
            }
            return t;
        }
        let mut s = s;
        let mut data = data;
        if s < self.nxt_off as i64 {
            let behind = (self.nxt_off as i64 - s) as usize;
            if sack {
                let nxt = self.nxt_off;
                self.sack_gen().on_duplicate(s.max(0) as u64, nxt);
            }
            data = &data[behind..];
            s = self.nxt_off as i64;
        }
        let s = s as u64;
        // Trim to the window we advertised and to what the buffer can hold.
        let limit = (self.rcv_wnd() as u64).min(self.space() as u64);
        let off = s - self.nxt_off;
        let fits = limit.saturating_sub(off).min(data.len() as u64) as usize;
        if fits < data.len() {
            t.trimmed = true;
            data = &data[..fits];
        }
        if data.is_empty() {
            return t;
        }
        let e = s + data.len() as u64;
        let unread = self.ring.len();
        if off == 0 {
            // Staged text went to exactly this place (offset 0 from the tail) unless trimmed.
            if staged && data.len() == whole {
                self.ring.extend_filled(data.len());
            } else {
                self.ring.push(data);
            }
            let mut new_nxt = e;
            // The hole is filled: out-of-order ranges now in order join the unread data.
            while let Some((_, re)) = self.ooo.take_from(new_nxt) {
                if re > new_nxt {
                    t.filled_hole = true;
                    self.ring.extend_filled((re - new_nxt) as usize);
                    new_nxt = re;
                }
            }
            t.in_order = (new_nxt - self.nxt_off) as usize;
            self.advance(new_nxt);
            return t;
        }
        t.out_of_order = true;
        if self.ooo.covers(s, e) {
            t.duplicate = true;
            if sack {
                self.sack_gen().on_duplicate(s, e);
            }
            return t;
        }
        // Partly held already: the first overlap is a duplicate (RFC 2883 §4 case 3).
        let overlap = self
            .ooo
            .iter()
            .find(|&(rs, re)| rs < e && re > s)
            .map(|(rs, re)| (rs.max(s), re.min(e)));
        match self.ooo.insert(s, e) {
            Some(ins) => {
                self.ring.write_at(unread + off as usize, data);
                if let (Some((hs, he)), true) = (overlap, sack) {
                    self.sack_gen().on_duplicate(hs, he);
                }
                if sack {
                    self.sack_gen().on_out_of_order(ins.merged);
                }
            }
            None => t.refused = true,
        }
        t
    }

    fn advance(&mut self, new_off: u64) {
        let n = new_off - self.nxt_off;
        self.nxt_off = new_off;
        self.rcv_nxt = self.rcv_nxt.wrapping_add(n as u32);
        if self.rcv_adv.lt(self.rcv_nxt) {
            self.rcv_adv = self.rcv_nxt;
        }
    }

    /// The peer's FIN occupies the sequence number after `seq` + `len` (RFC 9293 §3.10.7.4
    /// eighth step). Returns true when it is now in order and consumed.
    pub(crate) fn on_fin(&mut self, fin_at: SeqNum) -> bool {
        if self.peer_fin.is_none() {
            self.peer_fin = Some(fin_at);
        }
        self.try_consume_fin()
    }

    /// Consumes a FIN that has become in order (its data arrived).
    pub(crate) fn try_consume_fin(&mut self) -> bool {
        match self.peer_fin {
            Some(f) if !self.fin_consumed && f == self.rcv_nxt => {
                self.fin_consumed = true;
                self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
                self.nxt_off += 1;
                if self.rcv_adv.lt(self.rcv_nxt) {
                    self.rcv_adv = self.rcv_nxt;
                }
                // The FIN takes no buffer space; data after it cannot come.
                self.ooo.clear();
                self.sack = None;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn fin_consumed(&self) -> bool {
        self.fin_consumed
    }

    /// Reads into `buf`; returns how many bytes.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = self.ring.peek(buf);
        self.ring.consume(n);
        n
    }

    /// Lets `take` consume from the first contiguous run of unread bytes.
    pub(crate) fn read_with(&mut self, take: impl FnOnce(&[u8]) -> usize) -> usize {
        let front = self.ring.front();
        let n = take(front).min(front.len());
        self.ring.consume(n);
        n
    }

    pub(crate) fn peek(&self, buf: &mut [u8]) -> usize {
        self.ring.peek(buf)
    }

    /// SACK blocks for the next segment (consumes a pending D-SACK) into `out`, which holds
    /// none yet; left as it is when there are none to report.
    ///
    /// Always inlined, the generator's work never: nearly every segment has no SACK state
    /// (the generator is dropped once nothing is left to report), and as a call returning
    /// the blocks, four empty slots were built in its frame and copied over the segment's
    /// (lifecycle −168 instructions per connection, bulk −21k/MiB).
    #[inline(always)]
    pub(crate) fn sack_blocks(&mut self, max: usize, out: &mut [Option<SackBlock>; 4]) {
        if self.sack.is_some() {
            *out = self.generate_sack_blocks(max);
        }
    }

    #[inline(never)]
    fn generate_sack_blocks(&mut self, max: usize) -> [Option<SackBlock>; 4] {
        let base = self.base();
        match self.sack.as_mut() {
            Some(g) => {
                let b = g.blocks(&self.ooo, base, max);
                if self.ooo.is_empty() && !g.dsack_pending() {
                    // Nothing left to report: give the generator back.
                    self.sack = None;
                }
                b
            }
            None => [None; 4],
        }
    }

    fn sack_gen(&mut self) -> &mut SackGen {
        self.sack.get_or_insert_with(Default::default)
    }

    /// Drops everything not yet in order (the connection closed; only reading what arrived
    /// is left). The storage goes with [`RecvSide::release_if_read`].
    pub(crate) fn discard_out_of_order(&mut self) {
        self.ooo.clear();
        self.sack = None;
    }

    /// Releases the buffer if nothing is left to read (the connection is closed).
    pub(crate) fn release_if_read(&mut self) {
        if self.ring.is_empty() {
            self.ring.release();
        }
    }

    // ----- acknowledgement policy -----

    pub(crate) fn ack_pending(&self) -> bool {
        self.ack_now
    }

    /// An ACK must go out with the next segment, and at once if there is none.
    pub(crate) fn ack_at_once(&mut self, kind: TxKind) {
        if !self.ack_now || self.ack_kind == TxKind::Normal {
            self.ack_kind = kind;
        }
        self.ack_now = true;
    }

    /// RFC 9293 §3.8.6.3 / RFC 5681 §4.2: after in-order data, ACK at least every second
    /// full-sized segment; otherwise the delayed-ACK timer may wait. `full_segments` is how
    /// many full-sized segments the text just taken amounts to (more than one only for a
    /// segment longer than the MSS). Returns true if the ACK may be delayed.
    pub(crate) fn may_delay_ack(&mut self, full_segments: usize) -> bool {
        let n = full_segments.min(u8::MAX as usize) as u8;
        self.unacked_segs = self.unacked_segs.saturating_add(n);
        self.unacked_segs < 2
    }

    /// Why the pending ACK goes out.
    pub(crate) fn pending_ack_kind(&self) -> TxKind {
        self.ack_kind
    }

    /// An ACK (any segment we send carries one) went out.
    pub(crate) fn acked(&mut self) -> TxKind {
        self.ack_now = false;
        self.unacked_segs = 0;
        std::mem::replace(&mut self.ack_kind, TxKind::Normal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rx() -> RecvSide {
        let mut r = RecvSide::new(SeqNum(u32::MAX - 100), 10_000, 0);
        r.advertise(1000);
        r
    }

    #[test]
    fn in_order_then_hole_fill_across_the_sequence_wrap() {
        let mut r = rx();
        let base = r.rcv_nxt;
        let t = r.on_text(base.wrapping_add(200), &[2u8; 100], true);
        assert!(t.out_of_order);
        let t = r.on_text(base, &[1u8; 200], true);
        assert_eq!(t.in_order, 300);
        assert!(t.filled_hole);
        assert_eq!(r.rcv_nxt, base.wrapping_add(300));
        let mut buf = [0u8; 400];
        assert_eq!(r.read(&mut buf), 300);
        assert!(buf[..200].iter().all(|&b| b == 1));
        assert!(buf[200..300].iter().all(|&b| b == 2));
    }

    #[test]
    fn text_beyond_the_window_is_trimmed() {
        let mut r = RecvSide::new(SeqNum(0), 1000, 0);
        r.advertise(500);
        let t = r.on_text(SeqNum(1), &[0u8; 1500], false);
        assert!(t.trimmed);
        assert_eq!(t.in_order, 1000);
        assert_eq!(r.rcv_wnd(), 0);
    }

    #[test]
    fn window_edge_never_moves_left_and_reopens_by_mss_rfc9293_3_8_6_2_2() {
        let mut r = RecvSide::new(SeqNum(0), 4000, 0);
        assert_eq!(r.advertise(1000), 4000);
        r.on_text(SeqNum(1), &[0u8; 3000], false);
        assert_eq!(r.advertise(1000), 1000);
        let mut b = [0u8; 500];
        r.read(&mut b);
        // 500 bytes freed: less than min(buffer/2, MSS) = 1000, no move.
        assert!(!r.window_update_due(1000));
        assert_eq!(r.advertise(1000), 1000);
        r.read(&mut b);
        assert!(r.window_update_due(1000));
        assert_eq!(r.advertise(1000), 2000);
    }

    #[test]
    fn duplicate_below_rcv_nxt_is_reported_as_dsack_rfc2883() {
        let mut r = rx();
        let base = r.rcv_nxt;
        r.on_text(base, &[0u8; 100], true);
        let t = r.on_text(base, &[0u8; 50], true);
        assert!(t.duplicate);
        let mut b = [None; 4];
        r.sack_blocks(3, &mut b);
        assert_eq!(b[0].unwrap().left, base);
        assert_eq!(b[0].unwrap().right, base.wrapping_add(50));
    }

    #[test]
    fn fin_after_a_hole_waits_for_the_data() {
        let mut r = rx();
        let base = r.rcv_nxt;
        r.on_text(base.wrapping_add(10), &[0u8; 10], false);
        assert!(!r.on_fin(base.wrapping_add(20)));
        r.on_text(base, &[0u8; 10], false);
        assert!(r.try_consume_fin());
        assert_eq!(r.rcv_nxt, base.wrapping_add(21));
    }
}
