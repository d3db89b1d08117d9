//! Which SACK blocks a receiver reports (RFC 2018 §4) and when it reports a D-SACK (RFC 2883).
//!
//! RFC 2018 §4: the first block MUST be the range containing the segment that triggered the
//! ACK (unless that segment advanced the cumulative ACK); the rest repeat the most recently
//! reported ranges, none a subset of one already listed. RFC 2883 §4: a duplicate segment is
//! reported once, as the first block; when it lies inside an out-of-order range, that range
//! follows it as the second block.

use crate::intervals::IntervalSet;
use tcpfsm_wire::{SackBlock, SeqNum};

/// At most four blocks fit in the 40-byte option space; three beside timestamps.
const MAX_BLOCKS: usize = 4;

#[derive(Debug, Default, Clone)]
pub(crate) struct SackGen {
    /// Where the most recently reported ranges start, most recent first (stream offsets; the
    /// ranges themselves are looked up in the receiver's set, which may have grown them).
    recent: [u64; MAX_BLOCKS],
    n: u8,
    /// A duplicate to report in the next ACK: start and length.
    dsack: Option<(u64, u32)>,
}

impl SackGen {
    /// An out-of-order segment arrived and now lies in `merged`: that range goes first.
    pub(crate) fn on_out_of_order(&mut self, merged: (u64, u64)) {
        let (ms, me) = merged;
        let mut next = [0; MAX_BLOCKS];
        next[0] = ms;
        let mut k = 1;
        for &s in &self.recent[..self.n as usize] {
            // Ranges swallowed by the merge are the same data; drop them.
            if (ms..me).contains(&s) || k == MAX_BLOCKS {
                continue;
            }
            next[k] = s;
            k += 1;
        }
        self.recent = next;
        self.n = k as u8;
    }

    /// A duplicate of `[s, e)` arrived (RFC 2883 §4). Only the first duplicate since the
    /// last ACK is reported: the RFC's D-SACK carries one.
    pub(crate) fn on_duplicate(&mut self, s: u64, e: u64) {
        if self.dsack.is_none() && s < e {
            self.dsack = Some((s, (e - s).min(u32::MAX as u64) as u32));
        }
    }

    pub(crate) fn dsack_pending(&self) -> bool {
        self.dsack.is_some()
    }

    /// The blocks for the next ACK, at most `max`. `held` is the receiver's out-of-order set
    /// and `base` the sequence number of stream offset 0. Reported D-SACK is consumed.
    pub(crate) fn blocks(
        &mut self,
        held: &IntervalSet,
        base: SeqNum,
        max: usize,
    ) -> [Option<SackBlock>; MAX_BLOCKS] {
        let max = max.min(MAX_BLOCKS);
        let dsack = self.dsack.take();
        if let Some(r) = dsack.and_then(|(s, _)| held.containing(s)) {
            // RFC 2883 §4: a duplicate inside an out-of-order range is followed by that
            // (possibly larger) range; like Linux's tcp_sack_new_ofo_skb, it becomes the most
            // recent one.
            self.on_out_of_order(r);
        }
        // Ranges may have grown or been delivered since they were reported: report what the
        // receiver holds now.
        let mut cur = [(0u64, 0u64); MAX_BLOCKS];
        let mut k = 0;
        for &s in &self.recent[..self.n as usize] {
            if let Some(r) = held.containing(s) {
                if !cur[..k].contains(&r) {
                    cur[k] = r;
                    k += 1;
                }
            }
        }
        for (i, r) in cur[..k].iter().enumerate() {
            self.recent[i] = r.0;
        }
        self.n = k as u8;
        let block = |(s, e): (u64, u64)| {
            Some(SackBlock {
                left: base.wrapping_add(s as u32),
                right: base.wrapping_add(e as u32),
            })
        };
        let mut out = [None; MAX_BLOCKS];
        let mut i = 0;
        if let Some((s, len)) = dsack {
            out[0] = block((s, s + len as u64));
            i = 1;
        }
        for &r in &cur[..k] {
            if i >= max {
                break;
            }
            out[i] = block(r);
            i += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ranges: &[(u64, u64)]) -> IntervalSet {
        let mut s = IntervalSet::default();
        for &(a, b) in ranges {
            s.insert(a, b);
        }
        s
    }

    fn lefts(b: &[Option<SackBlock>; 4]) -> Vec<(u32, u32)> {
        b.iter().flatten().map(|b| (b.left.0, b.right.0)).collect()
    }

    #[test]
    fn most_recent_range_first_rfc2018_4() {
        let mut g = SackGen::default();
        let held = set(&[(10, 20), (30, 40), (50, 60)]);
        g.on_out_of_order((30, 40));
        g.on_out_of_order((10, 20));
        g.on_out_of_order((50, 60));
        assert_eq!(
            lefts(&g.blocks(&held, SeqNum(0), 3)),
            [(50, 60), (10, 20), (30, 40)]
        );
    }

    #[test]
    fn merged_ranges_are_reported_once() {
        let mut g = SackGen::default();
        let mut held = IntervalSet::default();
        for (s, e) in [(30, 40), (10, 20), (20, 30)] {
            let m = held.insert(s, e).unwrap().merged;
            g.on_out_of_order(m);
        }
        assert_eq!(lefts(&g.blocks(&held, SeqNum(100), 3)), [(110, 140)]);
    }

    #[test]
    fn dsack_goes_first_once_rfc2883_4() {
        let mut g = SackGen::default();
        let held = set(&[(30, 40)]);
        g.on_out_of_order((30, 40));
        g.on_duplicate(32, 34);
        assert_eq!(lefts(&g.blocks(&held, SeqNum(0), 3)), [(32, 34), (30, 40)]);
        assert_eq!(lefts(&g.blocks(&held, SeqNum(0), 3)), [(30, 40)]);
    }

    #[test]
    fn dsack_is_followed_by_the_range_holding_it_rfc2883_4() {
        let mut g = SackGen::default();
        let held = set(&[(10, 20), (30, 40), (50, 60)]);
        g.on_out_of_order((10, 20));
        g.on_out_of_order((30, 40));
        g.on_out_of_order((50, 60));
        g.on_duplicate(12, 15);
        assert_eq!(
            lefts(&g.blocks(&held, SeqNum(0), 4)),
            [(12, 15), (10, 20), (50, 60), (30, 40)]
        );
    }

    #[test]
    fn delivered_ranges_disappear_and_wrap_is_handled() {
        let mut g = SackGen::default();
        g.on_out_of_order((10, 20));
        g.on_out_of_order((30, 40));
        let held = set(&[(30, 40)]);
        let b = g.blocks(&held, SeqNum(u32::MAX - 5), 4);
        assert_eq!(lefts(&b), [(24, 34)]);
    }

    #[test]
    fn no_more_blocks_than_asked() {
        let mut g = SackGen::default();
        let held = set(&[(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]);
        for r in [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)] {
            g.on_out_of_order(r);
        }
        assert_eq!(g.blocks(&held, SeqNum(0), 3).iter().flatten().count(), 3);
        assert_eq!(g.blocks(&held, SeqNum(0), 4).iter().flatten().count(), 4);
    }
}
