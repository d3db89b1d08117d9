//! Received SACK blocks: D-SACK detection (RFC 2883 §4) and validation against the send window
//! (RFC 2018 §3, RFC 6675 §5, and Linux's `tcp_is_sackblock_valid`).

use tcpfsm_wire::SeqNum;

/// One SACK block as carried by the option: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SackBlock {
    pub start: SeqNum,
    pub end: SeqNum,
}

impl SackBlock {
    pub fn new(start: SeqNum, end: SeqNum) -> SackBlock {
        SackBlock { start, end }
    }

    /// Non-empty and shorter than half the sequence space (anything else cannot be compared).
    fn well_formed(self) -> bool {
        self.start.lt(self.end)
    }

    /// `self ⊆ other`.
    fn within(self, other: SackBlock) -> bool {
        other.start.le(self.start) && self.end.le(other.end)
    }
}

/// RFC 2883 §4: the first block of an ACK reports a duplicate (D-SACK) when it lies below the
/// cumulative acknowledgement, or when it is contained in the second block (a duplicate of
/// data above a hole, reported ahead of the block that holds it).
pub fn is_dsack(ack: SeqNum, blocks: &[SackBlock]) -> bool {
    let Some(&first) = blocks.first() else {
        return false;
    };
    if !first.well_formed() {
        return false;
    }
    if first.start.lt(ack) {
        return true;
    }
    matches!(blocks.get(1), Some(&second) if second.well_formed() && first.within(second))
}

/// Why a block was not used (Linux counts these as `TCPSACKDiscard` and
/// `TCPDSACKIgnoredOld`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Empty, reversed, or reaching beyond SND.NXT: never sent, so never received.
    Malformed,
    /// An ordinary block below SND.UNA (already acknowledged: stale or forged).
    BelowUna,
    /// A D-SACK block older than the lookback the scoreboard keeps.
    TooOld,
}

/// How far below SND.UNA a D-SACK block may lie and still be matched with a retransmission
/// (Linux accepts D-SACKs back to `undo_marker`; we keep retransmission records for about a
/// window, so a megabyte of lookback is ample and bounds forged blocks).
pub const DSACK_LOOKBACK: u32 = 1 << 20;

/// Checks one block against `[snd_una, snd_nxt]`. An ordinary block must lie inside it; a
/// D-SACK block may lie below SND.UNA (it reports data already acknowledged), within
/// [`DSACK_LOOKBACK`].
pub fn validate(
    block: SackBlock,
    dsack: bool,
    snd_una: SeqNum,
    snd_nxt: SeqNum,
) -> Result<(), Invalid> {
    let window = snd_nxt.diff(snd_una).max(0) as u32;
    // Both edges measured from SND.UNA, as unsigned distances: a block is inside the window
    // iff both are at most `window`, with start < end.
    let start = block.start.0.wrapping_sub(snd_una.0);
    let end = block.end.0.wrapping_sub(snd_una.0);
    if !block.well_formed() {
        return Err(Invalid::Malformed);
    }
    if start <= window && end <= window {
        return Ok(());
    }
    if block.end.gt(snd_nxt) {
        return Err(Invalid::Malformed);
    }
    // The block starts below SND.UNA.
    if !dsack {
        return Err(Invalid::BelowUna);
    }
    if snd_una.diff(block.start) as u32 > DSACK_LOOKBACK {
        return Err(Invalid::TooOld);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: u32, e: u32) -> SackBlock {
        SackBlock::new(SeqNum(s), SeqNum(e))
    }

    // RFC 2883 §4.1.1: "Reporting a duplicate segment" — ACKs for 3000-3499 and 3500-3999 are
    // lost, 3000-3499 is retransmitted and the receiver answers ACK 4000, SACK=3000-3500.
    #[test]
    fn duplicate_below_the_cumulative_ack_is_a_dsack_rfc2883_4_1_1() {
        assert!(is_dsack(SeqNum(4000), &[b(3000, 3500)]));
    }

    // RFC 2883 §4.1.2: a duplicate of acknowledged data reported with an out-of-order block:
    // ACK 4000, SACK=3000-3500, 4500-5000.
    #[test]
    fn duplicate_reported_before_an_out_of_order_block_rfc2883_4_1_2() {
        assert!(is_dsack(SeqNum(4000), &[b(3000, 3500), b(4500, 5000)]));
    }

    // RFC 2883 §4.1.3: "Reporting a duplicate of an out-of-order segment" — ACK 4000,
    // SACK=5000-5500, 4500-5500: the first block lies inside the second.
    #[test]
    fn duplicate_of_out_of_order_data_is_contained_in_the_second_block_rfc2883_4_1_3() {
        assert!(is_dsack(SeqNum(4000), &[b(5000, 5500), b(4500, 5500)]));
    }

    // RFC 2883 §4.2 (packet reordering): ACK 1500, SACK=2000-3000 is an ordinary SACK; so is
    // a first block merely adjacent to the second.
    #[test]
    fn ordinary_blocks_are_not_dsack_rfc2883_4_2() {
        assert!(!is_dsack(SeqNum(1500), &[b(2000, 3000)]));
        assert!(!is_dsack(SeqNum(4000), &[b(5500, 6000), b(4500, 5500)]));
        assert!(!is_dsack(SeqNum(4000), &[b(4500, 6000), b(5000, 5500)]));
        assert!(!is_dsack(SeqNum(4000), &[]));
    }

    #[test]
    fn dsack_detection_works_across_the_wrap() {
        let ack = SeqNum(10);
        assert!(is_dsack(ack, &[b(u32::MAX - 100, 5)]));
        assert!(is_dsack(
            SeqNum(u32::MAX - 1000),
            &[b(20, 30), b(u32::MAX - 10, 40)]
        ));
        assert!(!is_dsack(ack, &[b(20, 30)]));
    }

    #[test]
    fn blocks_outside_the_window_are_rejected_rfc2018_3() {
        let (una, nxt) = (SeqNum(1000), SeqNum(5000));
        assert_eq!(validate(b(1000, 2000), false, una, nxt), Ok(()));
        assert_eq!(validate(b(4000, 5000), false, una, nxt), Ok(()));
        assert_eq!(
            validate(b(4000, 5001), false, una, nxt),
            Err(Invalid::Malformed)
        );
        assert_eq!(
            validate(b(2000, 2000), false, una, nxt),
            Err(Invalid::Malformed)
        );
        assert_eq!(
            validate(b(3000, 2000), false, una, nxt),
            Err(Invalid::Malformed)
        );
        assert_eq!(
            validate(b(500, 1500), false, una, nxt),
            Err(Invalid::BelowUna)
        );
        assert_eq!(
            validate(b(500, 900), false, una, nxt),
            Err(Invalid::BelowUna)
        );
        // A D-SACK may report already acknowledged data, but not from far back.
        assert_eq!(validate(b(500, 900), true, una, nxt), Ok(()));
        let old = 1000u32.wrapping_sub(DSACK_LOOKBACK + 1);
        assert_eq!(validate(b(old, 900), true, una, nxt), Err(Invalid::TooOld));
        // Forged blocks half the sequence space away.
        assert_eq!(
            validate(b(1000 + (1 << 31), 1001 + (1 << 31)), true, una, nxt),
            Err(Invalid::Malformed)
        );
    }

    #[test]
    fn validation_works_across_the_wrap() {
        let (una, nxt) = (SeqNum(u32::MAX - 999), SeqNum(3000));
        assert_eq!(validate(b(u32::MAX - 499, 500), false, una, nxt), Ok(()));
        assert_eq!(validate(b(2000, 3000), false, una, nxt), Ok(()));
        assert_eq!(
            validate(b(2000, 3001), false, una, nxt),
            Err(Invalid::Malformed)
        );
        assert_eq!(
            validate(b(u32::MAX - 1499, u32::MAX - 1099), false, una, nxt),
            Err(Invalid::BelowUna)
        );
    }
}
