//! Scoreboard rules on hand-built SACK patterns (RFC 6675, RFC 2883), including sequence
//! numbers that wrap, and property tests of its invariants.

use super::*;
use proptest::prelude::*;

const MSS: u32 = 1000;

fn t(ms: u64) -> Instant {
    Instant::from_micros(ms * 1000)
}

/// A scoreboard with `n` segments of `size` bytes sent from `isn` at 0 ms.
fn board(isn: u32, n: u32, size: u32) -> Scoreboard {
    let mut sb = Scoreboard::new(SeqNum(isn), MSS);
    for i in 0..n {
        sb.on_new_data(t(0), SeqNum(isn.wrapping_add(i * size)), size)
            .unwrap();
    }
    sb
}

fn blk(isn: u32, a: u32, b: u32) -> SackBlock {
    SackBlock::new(SeqNum(isn.wrapping_add(a)), SeqNum(isn.wrapping_add(b)))
}

/// An ACK at `isn + ack` with blocks given as offsets from `isn`.
fn ack(sb: &mut Scoreboard, isn: u32, ack: u32, blocks: &[(u32, u32)]) -> AckOutcome {
    let blocks: Vec<_> = blocks.iter().map(|&(a, b)| blk(isn, a, b)).collect();
    let out = sb.on_ack(SeqNum(isn.wrapping_add(ack)), &blocks, |_| {});
    sb.check_invariants();
    out
}

fn retransmit(sb: &mut Scoreboard, n: NextSeg, now: Instant) {
    sb.on_retransmit(now, n.seq, n.len, Retransmit::NextSeg(n.rule))
        .unwrap();
    sb.check_invariants();
}

fn off(isn: u32, s: SeqNum) -> u32 {
    s.0.wrapping_sub(isn)
}

const ISNS: [u32; 3] = [1000, u32::MAX - 4500, u32::MAX];

#[test]
fn is_lost_needs_dupthresh_segments_or_more_than_two_smss_rfc6675_4() {
    for isn in ISNS {
        let mut sb = board(isn, 10, MSS);
        ack(&mut sb, isn, 0, &[(5000, 7000)]);
        assert!(
            !sb.is_lost(SeqNum(isn)),
            "two segments = 2·SMSS bytes: not lost"
        );
        ack(&mut sb, isn, 0, &[(9000, 10_000), (5000, 7000)]);
        assert!(
            sb.is_lost(SeqNum(isn)),
            "three discontiguous SACKed segments above"
        );
        assert!(sb.is_lost(SeqNum(isn.wrapping_add(4999))));
        assert!(
            !sb.is_lost(SeqNum(isn.wrapping_add(7000))),
            "only one SACKed above"
        );

        // Small segments: three of them (300 bytes) above is DupThresh segments.
        let mut sb = board(isn, 10, 100);
        ack(&mut sb, isn, 0, &[(500, 700)]);
        assert!(!sb.is_lost(SeqNum(isn)));
        ack(&mut sb, isn, 0, &[(800, 900), (500, 700)]);
        assert!(sb.is_lost(SeqNum(isn)));

        // Large records: two of 1500 bytes are more than (DupThresh − 1)·SMSS bytes.
        let mut sb = board(isn, 4, 1500);
        ack(&mut sb, isn, 0, &[(3000, 6000)]);
        assert!(sb.is_lost(SeqNum(isn)));
    }
}

#[test]
fn pipe_is_outstanding_minus_sacked_minus_lost_plus_retransmitted_rfc6675_4_setpipe() {
    for isn in ISNS {
        let mut sb = board(isn, 10, MSS);
        assert_eq!(sb.pipe(), 10_000);
        ack(&mut sb, isn, 0, &[(3000, 10_000)]);
        assert_eq!(sb.pipe(), 3000, "seven SACKed");
        assert_eq!(sb.mark_dupthresh_losses(), 3);
        assert_eq!(sb.pipe(), 0, "the three holes are lost");
        sb.enter_recovery();
        let n = sb.next_seg(false).unwrap();
        retransmit(&mut sb, n, t(10));
        assert_eq!(
            sb.pipe(),
            1000,
            "a retransmission in flight counts (SetPipe (b))"
        );
        // The retransmission is cumulatively acknowledged.
        let out = ack(&mut sb, isn, 1000, &[(3000, 10_000)]);
        assert_eq!((out.acked_bytes, out.delivered_bytes), (1000, 1000));
        assert_eq!(sb.pipe(), 0);
    }
}

#[test]
fn rule_3_retransmission_of_an_unlost_segment_counts_twice_rfc6675_4_setpipe() {
    let isn = 5;
    let mut sb = board(isn, 4, MSS);
    ack(&mut sb, isn, 0, &[(3000, 4000)]);
    sb.enter_recovery();
    let n = sb.next_seg(false).unwrap();
    assert_eq!((n.rule, off(isn, n.seq)), (Rule::Unsacked, 0));
    retransmit(&mut sb, n, t(1));
    // Octet 0 is not lost (a) and is at or below HighRxt (b): counted twice.
    assert_eq!(sb.pipe(), 4000);
}

#[test]
fn next_seg_retransmits_lost_holes_in_order_then_new_data_rfc6675_4_rules_1_2() {
    for isn in ISNS {
        let mut sb = board(isn, 10, MSS);
        // Holes at 0, 1, 3 and 4; all have three SACKed segments above them.
        ack(&mut sb, isn, 0, &[(5000, 10_000), (2000, 3000)]);
        assert_eq!(sb.mark_dupthresh_losses(), 4);
        sb.enter_recovery();
        let mut order = vec![];
        while let Some(n) = sb.next_seg(false) {
            if n.rule != Rule::Lost {
                break;
            }
            order.push(off(isn, n.seq));
            retransmit(&mut sb, n, t(20));
        }
        assert_eq!(order, [0, 1000, 3000, 4000]);
        assert_eq!(off(isn, sb.high_rxt()), 5000);
        let n = sb.next_seg(true).unwrap();
        assert_eq!((n.rule, off(isn, n.seq)), (Rule::NewData, 10_000));
        // Rules 3 and 4 find nothing: every hole is retransmitted and RescueRxt is set by
        // the first retransmission (§5 step 4.3), above HighACK.
        assert_eq!(sb.next_seg(false), None);
        assert_eq!(sb.rescue_rxt().map(|s| off(isn, s)), Some(1000));
    }
}

#[test]
fn next_seg_rule_3_sends_unsacked_data_below_the_highest_sack_rfc6675_4() {
    for isn in ISNS {
        let mut sb = board(isn, 10, MSS);
        ack(&mut sb, isn, 0, &[(8000, 9000)]);
        assert_eq!(
            sb.mark_dupthresh_losses(),
            0,
            "one SACKed segment: nothing lost"
        );
        sb.enter_recovery();
        let mut order = vec![];
        while let Some(n) = sb.next_seg(false) {
            if n.rule != Rule::Unsacked {
                break;
            }
            order.push(off(isn, n.seq));
            retransmit(&mut sb, n, t(20));
        }
        assert_eq!(order, (0..8).map(|i| i * 1000).collect::<Vec<_>>());
    }
}

#[test]
fn next_seg_rule_4_rescues_the_highest_unsacked_segment_once_rfc6675_4() {
    for isn in ISNS {
        // Nothing SACKed: rules 1 and 3 cannot apply.
        let mut sb = board(isn, 10, MSS);
        assert_eq!(sb.next_seg(false), None, "no rescue outside recovery");
        sb.enter_recovery();
        let n = sb.next_seg(false).unwrap();
        assert_eq!((n.rule, off(isn, n.seq), n.len), (Rule::Rescue, 9000, 1000));
        retransmit(&mut sb, n, t(1));
        assert_eq!(sb.rescue_rxt(), sb.recovery_point());
        assert_eq!(off(isn, sb.high_rxt()), 0, "rule 4 leaves HighRxt alone");
        assert_eq!(sb.next_seg(false), None, "one rescue per recovery");

        // The highest unSACKed segment lies below a SACKed tail. Rule 3 first offers
        // 0..8000; RescueRxt is the first retransmission's end (§5 step 4.3), so a rescue
        // needs HighACK beyond it.
        let mut sb = board(isn, 10, MSS);
        ack(&mut sb, isn, 0, &[(8000, 10_000)]);
        sb.enter_recovery();
        while let Some(n) = sb.next_seg(false) {
            assert_eq!(n.rule, Rule::Unsacked);
            retransmit(&mut sb, n, t(2));
        }
        ack(&mut sb, isn, 2000, &[(8000, 10_000)]);
        if let Some(n) = sb.next_seg(false) {
            assert_eq!((n.rule, off(isn, n.seq)), (Rule::Rescue, 7000));
            continue;
        }
        panic!("no rescue offered");
    }
}

#[test]
fn blocks_outside_the_window_are_ignored_rfc2018_rfc6675_5() {
    for isn in ISNS {
        let mut sb = board(isn, 5, MSS);
        ack(&mut sb, isn, 1000, &[]);
        // Beyond SND.NXT, below SND.UNA (not a D-SACK: the first block is in window), empty.
        let out = ack(
            &mut sb,
            isn,
            1000,
            &[(2000, 3000), (4000, 6000), (0, 500), (3000, 3000)],
        );
        assert_eq!(out.invalid_blocks, 3);
        assert_eq!(sb.sacked_bytes(), 1000);
        assert_eq!(sb.counters().sack_discard, 3);
    }
}

#[test]
fn delivered_data_is_the_advance_plus_the_change_in_sacked_bytes_rfc9937_6() {
    for isn in ISNS {
        let mut sb = board(isn, 6, MSS);
        let out = ack(&mut sb, isn, 0, &[(2000, 4000)]);
        assert_eq!((out.newly_sacked_bytes, out.delivered_bytes), (2000, 2000));
        // The cumulative ACK covers the SACKed bytes: only the two holes are new.
        let mut seen = vec![];
        let out = sb.on_ack(SeqNum(isn.wrapping_add(5000)), &[], |d| {
            seen.push((off(isn, d.start), d.sacked))
        });
        assert_eq!((out.acked_bytes, out.delivered_bytes), (5000, 3000));
        assert_eq!(seen, [(0, false), (1000, false), (4000, false)]);
        sb.check_invariants();
    }
}

#[test]
fn a_segment_counts_as_sacked_only_once_wholly_covered() {
    for isn in ISNS {
        let mut sb = board(isn, 4, MSS);
        let mut visits = 0;
        let mut go = |sb: &mut Scoreboard, blocks: &[(u32, u32)]| {
            let b: Vec<_> = blocks.iter().map(|&(a, b)| blk(isn, a, b)).collect();
            let out = sb.on_ack(SeqNum(isn), &b, |_| visits += 1);
            sb.check_invariants();
            out
        };
        let out = go(&mut sb, &[(2000, 2500)]);
        assert!(out.new_sack_info);
        assert_eq!(sb.sacked_bytes(), 0, "half a segment");
        let out = go(&mut sb, &[(2500, 3000)]);
        assert_eq!(out.newly_sacked_bytes, 1000);
        // The same block again, as receivers repeat them: nothing new, no visit.
        let out = go(&mut sb, &[(2000, 3000)]);
        assert!(!out.new_sack_info && out.newly_sacked_bytes == 0);
        assert_eq!(visits, 1);
    }
}

// RFC 2883 §4.1.1: ACKs for 3000-3499 and 3500-3999 are lost; the sender retransmits
// 3000-3499 on timeout; the receiver reports it with ACK 4000, SACK=3000-3500.
#[test]
fn dsack_below_snd_una_names_the_spurious_retransmission_rfc2883_4_1_1() {
    for base in [0, u32::MAX - 3500] {
        let isn = base.wrapping_add(3000);
        let mut sb = Scoreboard::new(SeqNum(isn), 500);
        sb.on_new_data(t(0), SeqNum(isn), 500).unwrap();
        sb.on_new_data(t(0), SeqNum(isn.wrapping_add(500)), 500)
            .unwrap();
        sb.mark_lost_on_rto(None, false);
        sb.on_retransmit(t(300), SeqNum(isn), 500, Retransmit::Timeout)
            .unwrap();
        let out = ack(&mut sb, isn, 1000, &[(0, 500)]);
        let d = out.dsack.expect("a D-SACK");
        assert_eq!((off(isn, d.start), off(isn, d.end)), (0, 500));
        let r = d.retransmission.expect("our retransmission");
        assert_eq!(
            (off(isn, r.start), off(isn, r.end), r.xmit_ts),
            (0, 500, t(300))
        );
        assert_eq!(sb.counters().dsack_recv, 1);
        // The same D-SACK again does not name it twice.
        let out = ack(&mut sb, isn, 1000, &[(0, 500)]);
        assert_eq!(out.dsack.unwrap().retransmission, None);
    }
}

// RFC 2883 §4.1.2: a D-SACK for acknowledged data next to an out-of-order block.
#[test]
fn dsack_with_an_out_of_order_block_rfc2883_4_1_2() {
    let isn = 3000;
    let mut sb = Scoreboard::new(SeqNum(isn), 500);
    for i in 0..4 {
        sb.on_new_data(t(0), SeqNum(isn + i * 500), 500).unwrap();
    }
    sb.on_retransmit(t(300), SeqNum(isn), 500, Retransmit::Timeout)
        .unwrap();
    // ACK 4000, SACK=3000-3500, 4500-5000 (offsets from 3000).
    let out = ack(&mut sb, isn, 1000, &[(0, 500), (1500, 2000)]);
    assert_eq!(
        out.dsack.unwrap().retransmission.map(|r| off(isn, r.start)),
        Some(0)
    );
    assert_eq!(
        sb.sacked_bytes(),
        500,
        "the second block is an ordinary SACK"
    );
    assert!(out.new_sack_info);
}

// RFC 2883 §4.1.3: "Reporting a duplicate of an out-of-order segment": ACK 4000,
// SACK=5000-5500, 4500-5500 after 5000-5499 arrived twice.
#[test]
fn dsack_of_a_duplicated_out_of_order_segment_rfc2883_4_1_3() {
    for base in [0, u32::MAX - 4000] {
        let isn = base.wrapping_add(3000);
        let mut sb = Scoreboard::new(SeqNum(isn), 500);
        for i in 0..6 {
            sb.on_new_data(t(0), SeqNum(isn.wrapping_add(i * 500)), 500)
                .unwrap();
        }
        ack(&mut sb, isn, 1000, &[(1500, 2500)]);
        // The network duplicated 5000-5499: no retransmission of ours is involved.
        let out = ack(&mut sb, isn, 1000, &[(2000, 2500), (1500, 2500)]);
        let d = out.dsack.expect("first block inside the second");
        assert_eq!((off(isn, d.start), d.retransmission), (2000, None));
        // Now we retransmit 5000-5499 ourselves and it is reported again.
        sb.on_retransmit(
            t(400),
            SeqNum(isn.wrapping_add(2000)),
            500,
            Retransmit::Probe,
        )
        .unwrap();
        let out = ack(&mut sb, isn, 1000, &[(2000, 2500), (1500, 2500)]);
        let r = out.dsack.unwrap().retransmission.expect("ours this time");
        assert_eq!((off(isn, r.start), r.xmit_ts), (2000, t(400)));
    }
}

#[test]
fn rto_marks_everything_unsacked_lost_or_only_old_segments_for_rack_rfc8985_6_3() {
    for isn in ISNS {
        let mut sb = Scoreboard::new(SeqNum(isn), MSS);
        for i in 0..6u32 {
            let now = t(u64::from(i) * 10);
            sb.on_new_data(now, SeqNum(isn.wrapping_add(i * MSS)), MSS)
                .unwrap();
        }
        ack(&mut sb, isn, 0, &[(2000, 3000)]);
        let mut rack = sb.clone();
        assert_eq!(sb.mark_lost_on_rto(None, false), 5);
        assert_eq!(sb.pipe(), 0);
        // RACK: the first segment, and the others sent at or before 30 ms.
        assert_eq!(rack.mark_lost_on_rto(Some(t(30)), false), 3);
        rack.check_invariants();
        assert_eq!(rack.lost_segments(), 3);
        // Reneging: SACK information is discarded as well.
        assert_eq!(sb.mark_lost_on_rto(None, true), 1);
        sb.check_invariants();
        assert_eq!((sb.sacked_bytes(), sb.lost_segments()), (0, 6));
        let n = sb.next_seg(false).unwrap();
        assert_eq!((n.rule, off(isn, n.seq)), (Rule::Lost, 0));
    }
}

#[test]
fn rack_can_mark_a_retransmission_lost_again_rfc8985_6_2() {
    let isn = u32::MAX - 100;
    let mut sb = board(isn, 5, MSS);
    ack(&mut sb, isn, 0, &[(1000, 5000)]);
    sb.mark_dupthresh_losses();
    sb.enter_recovery();
    let n = sb.next_seg(false).unwrap();
    retransmit(&mut sb, n, t(5));
    assert_eq!(sb.next_seg(false), None);
    assert!(sb.mark_lost(n.seq), "the retransmission is lost too");
    assert!(!sb.mark_lost(n.seq), "already marked");
    assert!(
        !sb.mark_lost(SeqNum(isn.wrapping_add(2000))),
        "SACKed data is never lost"
    );
    assert_eq!(sb.next_seg(false).map(|m| m.seq), Some(n.seq));
}

#[test]
fn a_smaller_retransmission_splits_the_record() {
    for isn in ISNS {
        let mut sb = board(isn, 3, MSS);
        sb.mark_lost_on_rto(None, false);
        sb.on_retransmit(
            t(1),
            SeqNum(isn.wrapping_add(250)),
            500,
            Retransmit::Timeout,
        )
        .unwrap();
        sb.check_invariants();
        assert_eq!(sb.segments(), 5);
        assert_eq!(sb.pipe(), 500);
        let info = sb.segment(SeqNum(isn.wrapping_add(300))).unwrap();
        assert_eq!((off(isn, info.start), off(isn, info.end)), (250, 750));
        assert!(info.retransmitted);
        assert_eq!(
            sb.on_retransmit(
                t(1),
                SeqNum(isn.wrapping_add(2500)),
                1000,
                Retransmit::Timeout
            ),
            Err(TxError::OutsideWindow)
        );
        assert_eq!(
            sb.on_new_data(t(1), SeqNum(isn.wrapping_add(2000)), 100),
            Err(TxError::NotAtSndNxt)
        );
    }
}

// ---------------------------------------------------------------- properties

#[derive(Debug, Clone)]
enum Op {
    Send(u32),
    Sack(Vec<(i64, i64)>),
    Ack(u32),
    OldAck(Vec<(i64, i64)>),
    NextSeg(bool),
    RackLost(u32),
    DupThresh,
    Rto(bool),
    Recovery(bool),
}

fn op() -> impl Strategy<Value = Op> {
    let block = (-3000i64..40_000, 1i64..6000).prop_map(|(a, l)| (a, a + l));
    prop_oneof![
        4 => (1u32..1500).prop_map(Op::Send),
        4 => proptest::collection::vec(block.clone(), 0..4).prop_map(Op::Sack),
        2 => (0u32..6000).prop_map(Op::Ack),
        1 => proptest::collection::vec(block, 1..3).prop_map(Op::OldAck),
        3 => any::<bool>().prop_map(Op::NextSeg),
        1 => (0u32..40_000).prop_map(Op::RackLost),
        2 => Just(Op::DupThresh),
        1 => any::<bool>().prop_map(Op::Rto),
        1 => any::<bool>().prop_map(Op::Recovery),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Random SACK patterns (valid, stale, forged), ACKs, retransmissions and loss marks never
    /// make pipe negative, never mark SACKed data lost or retransmit it, and keep the totals
    /// equal to a recount — with SND.UNA anywhere, including just below 2^32.
    #[test]
    fn scoreboard_invariants_hold_under_random_sack_sequences(
        isn in prop_oneof![any::<u32>(), (u32::MAX - 20_000)..=u32::MAX],
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut sb = Scoreboard::new(SeqNum(isn), MSS);
        let mut now = 0u64;
        for op in ops {
            now += 1;
            let una = sb.snd_una();
            let at = |o: i64| SeqNum(una.0.wrapping_add(o as i32 as u32));
            match op {
                Op::Send(len) => {
                    sb.on_new_data(t(now), sb.snd_nxt(), len).unwrap();
                }
                Op::Sack(blocks) | Op::OldAck(blocks) => {
                    let blocks: Vec<_> =
                        blocks.iter().map(|&(a, b)| SackBlock::new(at(a), at(b))).collect();
                    let before = sb.sacked_bytes();
                    let out = sb.on_ack(una, &blocks, |d| assert!(d.sacked));
                    prop_assert!(sb.sacked_bytes() >= before, "SACKed bytes never shrink");
                    prop_assert_eq!(out.acked_bytes, 0);
                }
                Op::Ack(adv) => {
                    let adv = adv.min(sb.flight_size());
                    let out = sb.on_ack(at(i64::from(adv)), &[], |_| {});
                    prop_assert_eq!(out.acked_bytes, adv);
                    prop_assert!(out.delivered_bytes <= adv);
                }
                Op::NextSeg(new) => {
                    if let Some(n) = sb.next_seg(new) {
                        if n.rule == Rule::NewData {
                            prop_assert_eq!(n.seq, sb.snd_nxt());
                        } else {
                            let info = sb.segment(n.seq).unwrap();
                            prop_assert!(!info.sacked, "NextSeg offered SACKed data");
                            sb.on_retransmit(t(now), n.seq, n.len, Retransmit::NextSeg(n.rule))
                                .unwrap();
                        }
                    }
                }
                Op::RackLost(o) => {
                    let seq = at(i64::from(o));
                    let sacked = sb.segment(seq).map(|i| i.sacked);
                    let marked = sb.mark_lost(seq);
                    prop_assert!(!(marked && sacked == Some(true)), "SACKed data marked lost");
                }
                Op::DupThresh => {
                    sb.mark_dupthresh_losses();
                }
                Op::Rto(clear) => {
                    sb.mark_lost_on_rto(None, clear);
                }
                Op::Recovery(enter) => {
                    if enter { sb.enter_recovery() } else { sb.exit_recovery() }
                }
            }
            sb.check_invariants();
            prop_assert!(sb.pipe() <= sb.flight_size() + sb.flight_size());
        }
    }
}
