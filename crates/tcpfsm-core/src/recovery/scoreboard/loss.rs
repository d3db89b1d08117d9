//! Loss marking (RFC 6675 IsLost, RACK, RTO) and NextSeg() (RFC 6675 §4) over the records.

use super::*;

impl Scoreboard {
    /// The octet below which every unSACKed octet satisfies IsLost(): walking the SACKed
    /// ranges from the top, the start of the range at which the SACKed segments above reach
    /// DupThresh or their bytes exceed (DupThresh − 1)·SMSS. IsLost() is monotone, so one
    /// number answers it for every octet.
    pub(super) fn dupthresh_frontier(&self) -> Option<u64> {
        let limit = u64::from(self.dup_thresh - 1) * u64::from(self.mss);
        let (mut bytes, mut segs) = (0u64, 0usize);
        for (s, e) in self.sacked.iter_rev() {
            bytes += e - s;
            segs += self.idx_after(e).saturating_sub(self.idx_after(s));
            if bytes > limit || segs >= self.dup_thresh as usize {
                return Some(s);
            }
        }
        None
    }

    // ------------------------------------------------------------ loss marking

    /// RFC 6675 §4 IsLost() applied to the records: every unSACKed segment with DupThresh
    /// SACKed segments or more than (DupThresh − 1)·SMSS SACKed bytes above it is marked lost.
    /// Returns the number newly marked. IsLost is monotone in the sequence number, so a
    /// frontier moves forward and each record is examined once.
    pub fn mark_dupthresh_losses(&mut self) -> u32 {
        let Some(frontier) = self.dupthresh_frontier() else {
            return 0;
        };
        if frontier <= self.dupthresh_marked {
            return 0;
        }
        let mut marked = 0;
        let mut i = self.idx_after(self.dupthresh_marked);
        while i < self.segs.len() && self.segs[i].start < frontier {
            if !self.segs[i].has(SACKED | LOST) {
                // The original is lost; a retransmission sent before (rule 3) stays in flight.
                self.update(i, |s| s.flags |= LOST);
                marked += 1;
            }
            i += 1;
        }
        self.dupthresh_marked = frontier;
        marked
    }

    /// RACK (RFC 8985 §6.2 step 5): the last transmission of the segment containing `seq` is
    /// lost. Returns false if there is no such unSACKed segment or it was already lost.
    pub fn mark_lost(&mut self, seq: SeqNum) -> bool {
        let a = self.abs(seq);
        if a < self.una_abs || a >= self.nxt_abs {
            return false;
        }
        let i = self.idx_after(a);
        let s = self.segs[i];
        if s.has(SACKED) || (s.has(LOST) && !s.has(RETRANS)) {
            return false;
        }
        self.update(i, |s| s.flags = (s.flags | LOST) & !RETRANS);
        true
    }

    /// A retransmission timeout (RFC 6675 §5.1, RFC 8985 §6.3): the first unSACKed segment is
    /// lost, and so is every other one last sent at or before `sent_before` (`None`: all, as
    /// RFC 5681 assumes). With `clear_sacked` the SACK information is discarded too, since the
    /// receiver may have reneged (RFC 2018 §8). Retransmissions in flight count as lost.
    /// Returns the number of segments newly marked.
    pub fn mark_lost_on_rto(&mut self, sent_before: Option<Instant>, clear_sacked: bool) -> u32 {
        if clear_sacked {
            self.sacked.clear();
        }
        let mut marked = 0;
        let mut first = true;
        for i in 0..self.segs.len() {
            let s = self.segs[i];
            if s.has(SACKED) && !clear_sacked {
                continue;
            }
            let old = sent_before.is_none_or(|t| s.xmit_ts <= t);
            if first || old {
                if !s.has(LOST) || s.has(RETRANS) || s.has(SACKED) {
                    marked += 1;
                }
                self.update(i, |s| s.flags = (s.flags | LOST) & !(RETRANS | SACKED));
            } else if clear_sacked {
                self.update(i, |s| s.flags &= !SACKED);
            }
            first = false;
        }
        self.high_rxt = self.una_abs;
        self.rescue_rxt = None;
        self.dupthresh_marked = self.una_abs;
        self.rxt_hint = self.una_abs;
        marked
    }

    // ------------------------------------------------------------ NextSeg

    /// RFC 6675 §4 NextSeg(). `new_data` says whether unsent data exists and the peer's window
    /// allows it (rule 2). Rule 4 is offered only during recovery.
    ///
    /// Rule 1 treats every record marked lost as a candidate, whoever marked it: with RACK the
    /// lost marks replace IsLost() (RFC 8985 §6.2), and they may lie above the highest SACK.
    pub fn next_seg(&mut self, new_data: bool) -> Option<NextSeg> {
        if let Some(s) = self.rule1() {
            return Some(s);
        }
        if new_data {
            return Some(NextSeg {
                rule: Rule::NewData,
                seq: self.snd_nxt(),
                len: 0,
            });
        }
        if let Some(s) = self.rule3() {
            return Some(s);
        }
        self.rule4()
    }

    /// NextSeg() rule 1 alone: the first segment marked lost and not yet retransmitted.
    /// Outside fast recovery only that rule's answer is used (RFC 6675 §5.1 after an RTO;
    /// nothing when no loss is marked), and rules 3 and 4 only look, so skipping them is the
    /// same and saves their walk after every segment sent.
    pub fn next_lost(&mut self) -> Option<NextSeg> {
        self.rule1()
    }

    fn pick(&self, i: usize, rule: Rule) -> NextSeg {
        let s = self.segs[i];
        NextSeg {
            rule,
            seq: self.wire(s.start),
            len: s.len() as u32,
        }
    }

    /// The count is asked here, inlined into every caller: with the walk in the same
    /// function, the call saved and restored six registers before finding nothing to walk,
    /// about 17 instructions a segment sent.
    #[inline]
    fn rule1(&mut self) -> Option<NextSeg> {
        if self.lost_pending == 0 {
            return None;
        }
        self.rule1_walk()
    }

    /// [`Self::rule1`] with something marked lost: the first such record.
    #[inline(never)]
    fn rule1_walk(&mut self) -> Option<NextSeg> {
        let mut i = self.idx_after(self.rxt_hint);
        while i < self.segs.len() {
            let s = self.segs[i];
            if s.has(SACKED) {
                // Skip the whole SACKed island at once.
                let end = self.sacked.containing(s.start).map_or(s.end, |r| r.1);
                i = self.idx_after(end).max(i + 1);
                continue;
            }
            if s.has(LOST) && !s.has(RETRANS) {
                self.rxt_hint = s.start;
                return Some(self.pick(i, Rule::Lost));
            }
            i += 1;
        }
        debug_assert!(false, "lost_pending > 0 but no candidate");
        None
    }

    fn rule3(&self) -> Option<NextSeg> {
        let high_sacked = self.sacked.highest()?;
        let mut i = self.idx_after(self.high_rxt);
        while i < self.segs.len() && self.segs[i].start < high_sacked {
            let s = self.segs[i];
            if s.has(SACKED) {
                let end = self.sacked.containing(s.start).map_or(s.end, |r| r.1);
                i = self.idx_after(end).max(i + 1);
                continue;
            }
            if !s.has(RETRANS) && s.start >= self.high_rxt {
                return Some(self.pick(i, Rule::Unsacked));
            }
            i += 1;
        }
        None
    }

    fn rule4(&self) -> Option<NextSeg> {
        self.recovery_point?;
        if self.rescue_rxt.is_some_and(|r| self.una_abs <= r) {
            return None;
        }
        // The segment holding the highest outstanding unSACKed octet.
        let mut i = self.segs.len().checked_sub(1)?;
        while self.segs[i].has(SACKED) {
            let island = self.sacked.containing(self.segs[i].start)?.0;
            if island <= self.una_abs {
                return None;
            }
            // The record holding the octet just below the SACKed island.
            i = self.idx_after(island - 1);
        }
        Some(self.pick(i, Rule::Rescue))
    }
}
