//! The RFC 6675 SACK scoreboard: one record per transmitted segment between SND.UNA and
//! SND.NXT with its state (SACKed, lost, retransmission in flight) and last transmission time
//! (for RACK, RFC 8985 §6.1).
//!
//! # How to drive it (RFC 6675 §5)
//! - New data sent: [`Scoreboard::on_new_data`]; a retransmission: [`Scoreboard::on_retransmit`]
//!   with the NextSeg rule that chose it (HighRxt and RescueRxt follow §5 (C.2) and rule 4).
//! - Every ACK: [`Scoreboard::on_ack`] with the cumulative ACK and the SACK blocks as received
//!   (first block first). It validates the blocks, detects a D-SACK (RFC 2883 §4) and which
//!   retransmission it proves spurious, advances SND.UNA and calls the visitor for each segment
//!   newly delivered, which RACK consumes.
//! - Loss marking: either RFC 6675's `IsLost` rule ([`Scoreboard::mark_dupthresh_losses`]) or
//!   RACK ([`Scoreboard::mark_lost`]); an RTO marks with [`Scoreboard::mark_lost_on_rto`].
//! - While `cwnd − pipe ≥ SMSS` ([`Scoreboard::pipe`], SetPipe): [`Scoreboard::next_seg`].
//!
//! Internally sequence numbers are unwrapped to 64 bits relative to the first SND.UNA, so all
//! comparisons are plain integer comparisons; [`SeqNum`] appears only at the interface.
//!
//! Cost: SND.UNA advancing pops records from the front; a SACK block is clipped against the
//! set of already SACKed ranges, so only newly SACKed segments are visited; loss marking by
//! DupThresh moves a frontier forward. In steady state nothing allocates: the record queue,
//! the range set and the scratch buffers keep their capacity.

mod loss;
mod run;

use super::ranges::Ranges;
use super::sack::{self, SackBlock};
use crate::time::Instant;
use std::collections::VecDeque;
use tcpfsm_wire::SeqNum;

const SACKED: u8 = 1;
/// The last transmission (original or retransmission) is considered lost.
const LOST: u8 = 2;
/// A retransmission is in flight (RFC 6675 SetPipe (b): octets at or below HighRxt).
const RETRANS: u8 = 4;
/// Retransmitted at least once (RACK's `Segment.retransmitted`, Karn's rule).
const EVER_RETRANS: u8 = 8;
/// A D-SACK already reported this segment's duplicate.
const DSACKED: u8 = 16;

/// Retransmission records kept after their data is acknowledged, to match D-SACKs that
/// arrive later (RFC 2883 §4.1.1's case).
const HISTORY: usize = 64;

/// Collections up to this many entries are kept from a finished connection for the next one
/// (see `adopt_storage`); larger ones are freed with it.
pub(crate) const KEEP_CAPACITY: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Seg {
    start: u64,
    end: u64,
    xmit_ts: Instant,
    /// Transmission order (wrapping): which of two segments sent in the same instant left
    /// first — sequence order says nothing once retransmissions mix with new data.
    order: u32,
    flags: u8,
}

impl Seg {
    fn len(&self) -> u64 {
        self.end - self.start
    }
    fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
}

/// What NextSeg() chose (RFC 6675 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Rule 1: the lowest lost octet not yet retransmitted.
    Lost,
    /// Rule 2: new data from SND.NXT.
    NewData,
    /// Rule 3: the lowest unSACKed octet above HighRxt below the highest SACK.
    Unsacked,
    /// Rule 4: the rescue retransmission of the highest unSACKed octet.
    Rescue,
}

/// Why a segment is retransmitted, for [`Scoreboard::on_retransmit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retransmit {
    /// By NextSeg() (rules 1, 3 or 4).
    NextSeg(Rule),
    /// After a retransmission timeout.
    Timeout,
    /// A tail loss probe (RFC 8985 §7.3).
    Probe,
}

/// NextSeg()'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextSeg {
    pub rule: Rule,
    /// First octet to send (SND.NXT for [`Rule::NewData`]).
    pub seq: SeqNum,
    /// Octets of the segment record (for new data: 0, the sender picks up to SMSS).
    pub len: u32,
}

/// A segment the peer newly acknowledged, cumulatively or by SACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub start: SeqNum,
    pub end: SeqNum,
    pub xmit_ts: Instant,
    /// Transmission order of its last transmission (see [`SegmentInfo::order`]).
    pub order: u32,
    /// Ever retransmitted (RACK ignores its RTT unless proven unambiguous).
    pub retransmitted: bool,
    /// Delivered by SACK (else by the cumulative ACK).
    pub sacked: bool,
}

/// A retransmission a D-SACK proved unnecessary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpuriousRetransmit {
    pub start: SeqNum,
    pub end: SeqNum,
    /// When it was (last) retransmitted.
    pub xmit_ts: Instant,
}

/// A D-SACK block received (RFC 2883).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dsack {
    pub start: SeqNum,
    pub end: SeqNum,
    /// The retransmission it matches, if any: the duplicate was ours (RFC 3708). `None` means
    /// the network duplicated the segment, or the record is too old.
    pub retransmission: Option<SpuriousRetransmit>,
}

/// What one ACK changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AckOutcome {
    /// How far SND.UNA advanced.
    pub acked_bytes: u32,
    /// Bytes of whole segments newly SACKed.
    pub newly_sacked_bytes: u32,
    /// RFC 9937 DeliveredData: SND.UNA's advance plus the change in SACKed bytes.
    pub delivered_bytes: u32,
    /// Any valid block reported octets not SACKed before (RFC 6675 §2 duplicate ACK).
    pub new_sack_info: bool,
    /// The first block was a D-SACK (RFC 2883 §4).
    pub dsack: Option<Dsack>,
    /// Blocks ignored as invalid.
    pub invalid_blocks: u8,
}

/// Counters for `stats()`, Linux TcpExt names in the docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScoreboardCounters {
    /// Valid D-SACK blocks received (`TCPDSACKRecv`).
    pub dsack_recv: u64,
    /// D-SACK blocks too old or malformed (`TCPDSACKIgnoredOld`).
    pub dsack_ignored_old: u64,
    /// Other SACK blocks discarded as invalid (`TCPSACKDiscard`).
    pub sack_discard: u64,
}

/// The state of the segment containing a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    pub start: SeqNum,
    pub end: SeqNum,
    pub xmit_ts: Instant,
    /// Transmission order of its last transmission, wrapping: every transmission the
    /// scoreboard records gets the next number.
    pub order: u32,
    pub sacked: bool,
    pub lost: bool,
    pub retransmitted: bool,
    /// Its last transmission is still believed in flight (neither SACKed nor marked lost).
    pub in_flight: bool,
}

/// A transmission the scoreboard cannot record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxError {
    /// New data must start at SND.NXT.
    NotAtSndNxt,
    /// A retransmission must lie within [SND.UNA, SND.NXT).
    OutsideWindow,
    /// Empty segment.
    Empty,
}

/// The RFC 6675 scoreboard.
#[derive(Debug, Clone)]
pub struct Scoreboard {
    segs: VecDeque<Seg>,
    una: SeqNum,
    una_abs: u64,
    nxt_abs: u64,
    sacked: Ranges,
    sacked_bytes: u64,
    lost_bytes: u64,
    retrans_bytes: u64,
    sacked_segs: u32,
    lost_segs: u32,
    /// Segments LOST, not SACKED and without a retransmission in flight: NextSeg rule 1.
    lost_pending: u32,
    /// No rule-1 candidate lies below this octet.
    rxt_hint: u64,
    high_rxt: u64,
    rescue_rxt: Option<u64>,
    recovery_point: Option<u64>,
    retransmitted_in_episode: bool,
    /// Segments below this octet have been through the DupThresh rule.
    dupthresh_marked: u64,
    dup_thresh: u32,
    mss: u32,
    history: VecDeque<SpuriousRetransmitAbs>,
    gaps: Vec<(u64, u64)>,
    counters: ScoreboardCounters,
    tx_order: u32,
}

#[derive(Debug, Clone, Copy)]
struct SpuriousRetransmitAbs {
    start: u64,
    end: u64,
    xmit_ts: Instant,
}

/// Where SND.UNA starts in the unwrapped space: room below for D-SACK lookback.
const ORIGIN: u64 = 1 << 40;

impl Scoreboard {
    /// An empty scoreboard at `snd_una` (= SND.NXT). `mss` is SMSS for IsLost's byte rule.
    pub fn new(snd_una: SeqNum, mss: u32) -> Scoreboard {
        Scoreboard {
            segs: VecDeque::new(),
            una: snd_una,
            una_abs: ORIGIN,
            nxt_abs: ORIGIN,
            // Allocated at first use (a connection without SACK or loss never needs them).
            sacked: Ranges::default(),
            sacked_bytes: 0,
            lost_bytes: 0,
            retrans_bytes: 0,
            sacked_segs: 0,
            lost_segs: 0,
            lost_pending: 0,
            rxt_hint: ORIGIN,
            high_rxt: ORIGIN,
            rescue_rxt: None,
            recovery_point: None,
            retransmitted_in_episode: false,
            dupthresh_marked: ORIGIN,
            dup_thresh: 3,
            mss: mss.max(1),
            history: VecDeque::new(),
            gaps: Vec::new(),
            counters: ScoreboardCounters::default(),
            tx_order: 0,
        }
    }

    /// Takes a finished connection's collections, emptied, for this new scoreboard, so a
    /// short connection allocates none of its own (the endpoint keeps finished connections'
    /// recovery state for the next ones).
    pub(crate) fn storage_is_small(&self) -> bool {
        self.segs.capacity() <= KEEP_CAPACITY
            && self.gaps.capacity() <= KEEP_CAPACITY
            && self.sacked.capacity() <= KEEP_CAPACITY
    }

    pub(crate) fn adopt_storage(&mut self, old: &mut Scoreboard) {
        if self.segs.capacity() == 0 {
            self.segs = std::mem::take(&mut old.segs);
            self.segs.clear();
        }
        if self.history.capacity() == 0 {
            self.history = std::mem::take(&mut old.history);
            self.history.clear();
        }
        if self.gaps.capacity() == 0 {
            self.gaps = std::mem::take(&mut old.gaps);
            self.gaps.clear();
        }
        self.sacked.adopt(&mut old.sacked);
    }

    // ------------------------------------------------------------ conversions

    fn abs(&self, s: SeqNum) -> u64 {
        self.una_abs
            .wrapping_add_signed(i64::from(s.diff(self.una)))
    }

    fn wire(&self, a: u64) -> SeqNum {
        SeqNum(self.una.0.wrapping_add(a.wrapping_sub(self.una_abs) as u32))
    }

    /// Index of the first record ending after octet `a`.
    fn idx_after(&self, a: u64) -> usize {
        self.segs.partition_point(|s| s.end <= a)
    }

    // ------------------------------------------------------------ accounting

    fn account(&mut self, s: &Seg, add: bool) {
        fn step<T: std::ops::AddAssign + std::ops::SubAssign>(x: &mut T, v: T, add: bool) {
            if add {
                *x += v
            } else {
                *x -= v
            }
        }
        let len = s.len();
        if s.has(SACKED) {
            step(&mut self.sacked_bytes, len, add);
            step(&mut self.sacked_segs, 1, add);
            return;
        }
        if s.has(LOST) {
            step(&mut self.lost_bytes, len, add);
            step(&mut self.lost_segs, 1, add);
        }
        if s.has(RETRANS) {
            step(&mut self.retrans_bytes, len, add);
        }
        if s.has(LOST) && !s.has(RETRANS) {
            step(&mut self.lost_pending, 1, add);
        }
    }

    /// Changes record `i` through `f`, keeping the totals right.
    fn update(&mut self, i: usize, f: impl FnOnce(&mut Seg)) {
        let mut s = self.segs[i];
        self.account(&s, false);
        f(&mut s);
        self.account(&s, true);
        self.segs[i] = s;
        if s.has(LOST) && !s.has(RETRANS) && !s.has(SACKED) {
            self.rxt_hint = self.rxt_hint.min(s.start);
        }
    }

    /// Splits the record containing `a` so that a record starts at `a` (rare: a retransmission
    /// with a smaller MSS than the original).
    fn split_at(&mut self, a: u64) {
        let i = self.idx_after(a);
        let Some(&s) = self.segs.get(i) else { return };
        if s.start >= a {
            return;
        }
        self.account(&s, false);
        let left = Seg { end: a, ..s };
        let right = Seg { start: a, ..s };
        self.account(&left, true);
        self.account(&right, true);
        self.segs[i] = left;
        self.segs.insert(i + 1, right);
    }

    // ------------------------------------------------------------ queries

    pub fn snd_una(&self) -> SeqNum {
        self.una
    }

    pub fn snd_nxt(&self) -> SeqNum {
        self.wire(self.nxt_abs)
    }

    /// SND.NXT − SND.UNA.
    pub fn flight_size(&self) -> u32 {
        (self.nxt_abs - self.una_abs) as u32
    }

    /// RFC 6675 §4 SetPipe(): octets outstanding that are neither SACKed nor lost, plus
    /// retransmissions in flight. Kept incrementally (Linux: `packets_out − sacked_out −
    /// lost_out + retrans_out`), so reading it is O(1).
    pub fn pipe(&self) -> u32 {
        let out = self.nxt_abs - self.una_abs;
        (out - self.sacked_bytes - self.lost_bytes + self.retrans_bytes) as u32
    }

    pub fn sacked_bytes(&self) -> u32 {
        self.sacked_bytes as u32
    }

    pub fn lost_bytes(&self) -> u32 {
        self.lost_bytes as u32
    }

    /// Retransmitted octets still in flight (Linux `retrans_out`, in bytes).
    pub fn retrans_bytes(&self) -> u32 {
        self.retrans_bytes as u32
    }

    /// Segments SACKed (RACK.segs_sacked; Linux `sacked_out`).
    pub fn sacked_segments(&self) -> u32 {
        self.sacked_segs
    }

    /// Segments marked lost and not SACKed (Linux `lost_out`).
    pub fn lost_segments(&self) -> u32 {
        self.lost_segs
    }

    /// Segments NextSeg rule 1 would offer (lost, not SACKed, no retransmission in flight).
    pub fn lost_pending(&self) -> u32 {
        self.lost_pending
    }

    /// Records between SND.UNA and SND.NXT.
    pub fn segments(&self) -> usize {
        self.segs.len()
    }

    /// The highest octet covered by any received SACK, + 1.
    pub fn high_sacked(&self) -> Option<SeqNum> {
        self.sacked.highest().map(|a| self.wire(a))
    }

    /// RFC 6675 HighRxt + 1 (the end of the highest retransmitted octet).
    pub fn high_rxt(&self) -> SeqNum {
        self.wire(self.high_rxt)
    }

    /// RFC 6675 RescueRxt + 1, if defined.
    pub fn rescue_rxt(&self) -> Option<SeqNum> {
        self.rescue_rxt.map(|a| self.wire(a))
    }

    pub fn counters(&self) -> ScoreboardCounters {
        self.counters
    }

    /// RFC 6675 DupThresh (3); raise it when reordering is measured (Linux `tp->reordering`).
    pub fn set_dup_thresh(&mut self, n: u32) {
        self.dup_thresh = n.max(1);
    }

    /// The record containing `seq`.
    pub fn segment(&self, seq: SeqNum) -> Option<SegmentInfo> {
        let a = self.abs(seq);
        if a < self.una_abs || a >= self.nxt_abs {
            return None;
        }
        let s = *self.segs.get(self.idx_after(a))?;
        Some(SegmentInfo {
            start: self.wire(s.start),
            end: self.wire(s.end),
            xmit_ts: s.xmit_ts,
            order: s.order,
            sacked: s.has(SACKED),
            lost: s.has(LOST),
            retransmitted: s.has(EVER_RETRANS),
            in_flight: !s.has(SACKED) && (!s.has(LOST) || s.has(RETRANS)),
        })
    }

    /// RFC 6675 §4 IsLost(SeqNum) for an unSACKed octet: true when DupThresh discontiguous
    /// SACKed segments, or more than (DupThresh − 1)·SMSS SACKed bytes, lie above it.
    pub fn is_lost(&self, seq: SeqNum) -> bool {
        self.dupthresh_frontier().is_some_and(|f| self.abs(seq) < f)
    }

    // ------------------------------------------------------------ transmissions

    fn next_order(&mut self) -> u32 {
        self.tx_order = self.tx_order.wrapping_add(1);
        self.tx_order
    }

    /// New data `[seq, seq + len)` left at `now`; `seq` must be SND.NXT. Returns the
    /// transmission's order number.
    pub fn on_new_data(&mut self, now: Instant, seq: SeqNum, len: u32) -> Result<u32, TxError> {
        if len == 0 {
            return Err(TxError::Empty);
        }
        if self.abs(seq) != self.nxt_abs {
            return Err(TxError::NotAtSndNxt);
        }
        let order = self.next_order();
        let s = Seg {
            start: self.nxt_abs,
            end: self.nxt_abs + u64::from(len),
            xmit_ts: now,
            order,
            flags: 0,
        };
        self.nxt_abs = s.end;
        self.segs.push_back(s);
        Ok(order)
    }

    /// `[seq, seq + len)` was retransmitted at `now`. SACKed parts stay SACKed.
    /// RFC 6675 §5 (C.2): HighRxt advances unless rule 4 chose it, which sets RescueRxt to
    /// RecoveryPoint; (4.3): the first retransmission of an episode also sets RescueRxt.
    pub fn on_retransmit(
        &mut self,
        now: Instant,
        seq: SeqNum,
        len: u32,
        why: Retransmit,
    ) -> Result<u32, TxError> {
        let a = self.abs(seq);
        let b = a + u64::from(len);
        if len == 0 {
            return Err(TxError::Empty);
        }
        if a < self.una_abs || b > self.nxt_abs {
            return Err(TxError::OutsideWindow);
        }
        self.split_at(a);
        self.split_at(b);
        let order = self.next_order();
        let mut i = self.idx_after(a);
        while i < self.segs.len() && self.segs[i].start < b {
            if self.segs[i].has(SACKED) {
                // Not in flight for SetPipe, but a later D-SACK of it is ours (RFC 3708).
                let s = &mut self.segs[i];
                s.flags = (s.flags | EVER_RETRANS) & !DSACKED;
                s.xmit_ts = now;
                s.order = order;
            } else {
                self.update(i, |s| {
                    s.flags = (s.flags | RETRANS | EVER_RETRANS) & !DSACKED;
                    s.xmit_ts = now;
                    s.order = order;
                });
            }
            i += 1;
        }
        match why {
            Retransmit::NextSeg(Rule::Rescue) => self.rescue_rxt = self.recovery_point,
            Retransmit::Probe => {}
            _ => {
                self.high_rxt = self.high_rxt.max(b);
                if self.recovery_point.is_some() && !self.retransmitted_in_episode {
                    self.rescue_rxt = Some(b);
                }
            }
        }
        if self.recovery_point.is_some() {
            self.retransmitted_in_episode = true;
        }
        Ok(order)
    }

    // ------------------------------------------------------------ recovery episode

    /// RFC 6675 §5 step (4): loss recovery starts; RecoveryPoint = HighData. HighRxt starts at
    /// HighACK (3.1) and RescueRxt is undefined until the first retransmission (4.3).
    pub fn enter_recovery(&mut self) {
        self.recovery_point = Some(self.nxt_abs);
        self.high_rxt = self.una_abs;
        self.rescue_rxt = None;
        self.retransmitted_in_episode = false;
    }

    /// Recovery is over (§5 (A)). SACK information above SND.UNA is kept.
    pub fn exit_recovery(&mut self) {
        self.recovery_point = None;
    }

    pub fn recovery_point(&self) -> Option<SeqNum> {
        self.recovery_point.map(|a| self.wire(a))
    }

    // ------------------------------------------------------------ ACKs

    /// Processes one ACK: cumulative acknowledgement `ack` and the SACK `blocks` in the order
    /// they were carried. `visit` sees the segments newly delivered, cumulative ones first (of
    /// a run of originals each sent after the one before, the first and last only: `run`).
    pub fn on_ack(
        &mut self,
        ack: SeqNum,
        blocks: &[SackBlock],
        mut visit: impl FnMut(&Delivered),
    ) -> AckOutcome {
        let mut out = AckOutcome::default();
        let dsack = sack::is_dsack(ack, blocks);
        let ack_abs = self.abs(ack);
        if ack_abs > self.una_abs && ack_abs <= self.nxt_abs {
            out.acked_bytes = (ack_abs - self.una_abs) as u32;
            // Bytes SACKed earlier and now cumulatively acknowledged were delivered before.
            let resacked = self.advance_una(ack_abs, &mut visit);
            out.delivered_bytes = out.acked_bytes - resacked as u32;
        }
        let before = self.sacked_bytes;
        for (i, &block) in blocks.iter().enumerate() {
            let is_d = dsack && i == 0;
            if sack::validate(block, is_d, self.una, self.snd_nxt()).is_err() {
                out.invalid_blocks += 1;
                if is_d {
                    self.counters.dsack_ignored_old += 1;
                } else {
                    self.counters.sack_discard += 1;
                }
                continue;
            }
            let (a, b) = (self.abs(block.start), self.abs(block.end));
            if is_d {
                self.counters.dsack_recv += 1;
                out.dsack = Some(self.match_dsack(a, b));
            }
            if b > self.una_abs && self.sack_range(a.max(self.una_abs), b, &mut visit) {
                out.new_sack_info |= !is_d;
            }
        }
        let gained = self.sacked_bytes.saturating_sub(before);
        out.newly_sacked_bytes = gained as u32;
        out.delivered_bytes = out.delivered_bytes.saturating_add(gained as u32);
        out
    }

    /// Moves SND.UNA to `ack_abs`; returns how many of the acknowledged bytes were SACKed.
    fn advance_una(&mut self, ack_abs: u64, visit: &mut impl FnMut(&Delivered)) -> u64 {
        let mut sacked_removed = 0u64;
        // Each record taken off the front and the one that stays put back (the deque has the
        // room): a look at the front before each pop cost about 8 instructions per segment
        // acknowledged.
        while let Some(s) = self.segs.pop_front() {
            if s.start >= ack_abs {
                self.segs.push_front(s);
                break;
            }
            self.account(&s, false);
            if s.end <= ack_abs {
                if s.has(SACKED) {
                    sacked_removed += s.len();
                } else {
                    visit(&self.delivered(&s));
                    if !s.has(EVER_RETRANS) && self.segs.front().is_some_and(|f| f.end <= ack_abs) {
                        self.skip_run(&s, ack_abs, visit);
                    }
                }
                if s.has(EVER_RETRANS) && !s.has(DSACKED) {
                    if self.history.len() == HISTORY {
                        self.history.pop_front();
                    }
                    self.history.push_back(SpuriousRetransmitAbs {
                        start: s.start,
                        end: s.end,
                        xmit_ts: s.xmit_ts,
                    });
                }
            } else {
                // A partial ACK of a segment: its head is delivered, the rest stays.
                let rest = Seg {
                    start: ack_abs,
                    ..s
                };
                if s.has(SACKED) {
                    sacked_removed += ack_abs - s.start;
                }
                self.account(&rest, true);
                self.segs.push_front(rest);
                break;
            }
        }
        self.una = self.wire(ack_abs);
        self.una_abs = ack_abs;
        self.sacked.remove_below(ack_abs);
        self.rxt_hint = self.rxt_hint.max(ack_abs);
        self.high_rxt = self.high_rxt.max(ack_abs);
        self.dupthresh_marked = self.dupthresh_marked.max(ack_abs);
        sacked_removed
    }

    /// Adds `[a, b)` to the SACKed set and marks the records it completes. Returns whether the
    /// block covered anything new.
    fn sack_range(&mut self, a: u64, b: u64, visit: &mut impl FnMut(&Delivered)) -> bool {
        let mut gaps = std::mem::take(&mut self.gaps);
        gaps.clear();
        self.sacked.insert(a, b, &mut gaps);
        let new = !gaps.is_empty();
        for &(ga, gb) in &gaps {
            let mut i = self.idx_after(ga);
            while i < self.segs.len() && self.segs[i].start < gb {
                let s = self.segs[i];
                // RFC 6675 lets a block mark octets; records are marked only once wholly
                // covered (possibly across several ACKs), which errs towards retransmitting.
                if !s.has(SACKED) && self.sacked.covers(s.start, s.end) {
                    self.update(i, |s| s.flags = (s.flags | SACKED) & !(LOST | RETRANS));
                    visit(&Delivered {
                        start: self.wire(s.start),
                        end: self.wire(s.end),
                        xmit_ts: s.xmit_ts,
                        order: s.order,
                        retransmitted: s.has(EVER_RETRANS),
                        sacked: true,
                    });
                }
                i += 1;
            }
        }
        self.gaps = gaps;
        new
    }

    /// RFC 2883 / RFC 3708: which retransmission a D-SACK reports as duplicated.
    fn match_dsack(&mut self, a: u64, b: u64) -> Dsack {
        let mut found = None;
        // Below SND.UNA: the acknowledged retransmissions still remembered.
        if a < self.una_abs {
            if let Some(k) = self.history.iter().position(|r| r.start < b && a < r.end) {
                let r = self.history.remove(k).expect("index from position");
                found = Some(SpuriousRetransmit {
                    start: self.wire(r.start),
                    end: self.wire(r.end),
                    xmit_ts: r.xmit_ts,
                });
            }
        }
        // In the window: a retransmitted segment the receiver now holds twice.
        if found.is_none() && b > self.una_abs {
            let mut i = self.idx_after(a.max(self.una_abs));
            while i < self.segs.len() && self.segs[i].start < b {
                let s = self.segs[i];
                if s.has(EVER_RETRANS) && !s.has(DSACKED) {
                    self.segs[i].flags |= DSACKED;
                    found = Some(SpuriousRetransmit {
                        start: self.wire(s.start),
                        end: self.wire(s.end),
                        xmit_ts: s.xmit_ts,
                    });
                    break;
                }
                i += 1;
            }
        }
        Dsack {
            start: self.wire(a),
            end: self.wire(b),
            retransmission: found,
        }
    }
}

impl Scoreboard {
    /// Recomputes every total from the records and checks the structural invariants.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let (mut sacked, mut lost, mut retrans, mut pending) = (0u64, 0u64, 0u64, 0u32);
        let mut at = self.una_abs;
        for s in &self.segs {
            assert_eq!(s.start, at, "records are contiguous from SND.UNA");
            assert!(s.end > s.start);
            at = s.end;
            if s.has(SACKED) {
                sacked += s.len();
                assert!(
                    self.sacked.covers(s.start, s.end),
                    "SACKED record not covered"
                );
            } else {
                if s.has(LOST) {
                    lost += s.len();
                }
                if s.has(RETRANS) {
                    retrans += s.len();
                }
                if s.has(LOST) && !s.has(RETRANS) {
                    pending += 1;
                    assert!(s.start >= self.rxt_hint, "rule-1 hint above a candidate");
                }
            }
        }
        assert_eq!(at, self.nxt_abs, "records end at SND.NXT");
        assert_eq!(
            (sacked, lost, retrans, pending),
            (
                self.sacked_bytes,
                self.lost_bytes,
                self.retrans_bytes,
                self.lost_pending
            )
        );
        let out = self.nxt_abs - self.una_abs;
        assert!(sacked + lost <= out + retrans, "pipe would be negative");
        if let Some((s, _)) = self.sacked.iter().next() {
            assert!(s >= self.una_abs, "SACK ranges below SND.UNA");
        }
        if let Some(h) = self.sacked.highest() {
            assert!(h <= self.nxt_abs, "SACK ranges beyond SND.NXT");
        }
    }
}

#[cfg(test)]
mod tests;
