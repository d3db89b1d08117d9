//! SACK generation (issue 8, defect 6: RFC 2018 §4, RFC 2883) and Karn's rule on fast
//! retransmit without timestamps (defect 7: RFC 6298 §3).

mod common;
use common::*;
use tcpfsm_core::{Config, Duration};
use tcpfsm_wire::Flags;

const ACK: Flags = Flags::ACK;

fn sack_server(timestamps: bool) -> Scripted {
    let cfg = Config {
        sack: true,
        timestamps,
        ..plain()
    };
    Scripted::server(
        cfg,
        PeerOpts {
            sack: true,
            ts: timestamps,
            ..PeerOpts::default()
        },
    )
}

/// The blocks of the endpoint's one answer, relative to the peer's RCV.NXT (`s.p`).
fn blocks_after(s: &mut Scripted, off: u32, len: usize) -> Vec<(i64, i64)> {
    let g = s.seg(
        ACK,
        s.p.wrapping_add(off),
        s.y,
        &random_bytes(off as u64, len),
    );
    let out = s.inject(g);
    assert_eq!(
        out.len(),
        1,
        "one ACK at once for out-of-order data: {out:?}"
    );
    assert_eq!(out[0].ack, s.p);
    out[0]
        .options
        .sack_blocks
        .iter()
        .flatten()
        .map(|b| {
            (
                b.left.0.wrapping_sub(s.p) as i32 as i64,
                b.right.0.wrapping_sub(s.p) as i32 as i64,
            )
        })
        .collect()
}

#[test]
fn sack_blocks_coalesce_adjacent_pieces_rfc2018_4() {
    let mut s = sack_server(false);
    assert_eq!(blocks_after(&mut s, 300, 100), [(300, 400)]);
    assert_eq!(blocks_after(&mut s, 100, 100), [(100, 200), (300, 400)]);
    // +30, +10, +20 (in hundreds): one block, not three.
    assert_eq!(blocks_after(&mut s, 200, 100), [(100, 400)]);
}

/// Five disjoint 100-byte pieces at +100, +300, … +900; each answer's first block must be
/// the newest piece. Returns the last answer's blocks.
fn five_pieces(s: &mut Scripted) -> Vec<(i64, i64)> {
    let mut last = Vec::new();
    for off in [100, 300, 500, 700, 900] {
        last = blocks_after(s, off, 100);
        assert_eq!(last[0], (off as i64, off as i64 + 100), "{last:?}");
    }
    last
}

#[test]
fn first_sack_block_holds_the_latest_segment_rfc2018_4() {
    let mut s = sack_server(false);
    let last = five_pieces(&mut s);
    // Without timestamps four blocks fit, the most recent first.
    assert_eq!(last, [(900, 1000), (700, 800), (500, 600), (300, 400)]);
    // A segment that extends an older range makes that range the first block.
    let b = blocks_after(&mut s, 200, 50);
    assert_eq!(b[0], (100, 250), "{b:?}");
}

#[test]
fn three_sack_blocks_beside_timestamps_rfc2018_3() {
    let mut s = sack_server(true);
    let last = five_pieces(&mut s);
    assert_eq!(last, [(900, 1000), (700, 800), (500, 600)]);
}

#[test]
fn dsack_reports_a_duplicate_below_the_cumulative_ack_first_rfc2883_4() {
    let mut s = sack_server(false);
    let data = random_bytes(1, 300);
    let first = s.p;
    s.data(&data);
    // A spurious retransmission of the first 200 bytes: D-SACK, reported once.
    let dup = s.seg(ACK, first, s.y, &data[..200]);
    let out = s.inject(dup);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, s.p);
    let b = out[0].options.sack_blocks[0].expect("a D-SACK block");
    assert_eq!((b.left.0, b.right.0), (first, first + 200));
    assert!(out[0].options.sack_blocks[1].is_none());
    let later = blocks_after(&mut s, 500, 10);
    assert_eq!(later, [(500, 510)], "the D-SACK is not repeated");
}

#[test]
fn dsack_reports_the_old_part_of_a_partly_duplicate_segment_rfc2883_4() {
    let mut s = sack_server(false);
    let data = random_bytes(2, 400);
    let first = s.p;
    s.data(&data[..300]);
    // 200 old bytes and 100 new ones: the new ones are taken, the old part is D-SACKed.
    let overlap = s.seg(ACK, first + 100, s.y, &data[100..]);
    let out = s.inject(overlap);
    s.p = first + 400;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, s.p);
    let b = out[0].options.sack_blocks[0].expect("a D-SACK block");
    assert_eq!((b.left.0, b.right.0), (first + 100, first + 300));
    let (got, _) = s.read_all();
    assert!(got == data);
}

#[test]
fn dsack_inside_an_out_of_order_range_is_followed_by_that_range_rfc2883_4() {
    let mut s = sack_server(false);
    blocks_after(&mut s, 100, 100);
    blocks_after(&mut s, 300, 100);
    // A duplicate of part of the older range: D-SACK first, then the range containing it
    // (RFC 2883 §4: "the second SACK block ... should specify that (possibly larger) block").
    let b = blocks_after(&mut s, 120, 30);
    assert_eq!(b, [(120, 150), (100, 200), (300, 400)]);
}

#[test]
fn karn_no_rtt_sample_from_a_fast_retransmitted_segment_without_timestamps_rfc6298_3() {
    let mut s = Scripted::server(plain(), PeerOpts::default());
    set_nodelay(&mut s.ep, s.now, s.conn);
    // The handshake (answered at once) and one clean round trip of 20 ms give SRTT 2.5 ms
    // (RFC 6298 §2.3: 0 + (20 - 0) / 8).
    s.ep.send(s.now, s.conn, &random_bytes(1, 1000)).unwrap();
    s.drain();
    s.now += Duration::from_millis(20);
    s.ack();
    let srtt = s.ep.info(s.conn).unwrap().srtt;
    assert_eq!(srtt, Some(Duration::from_micros(2500)));
    // Six segments; the first is lost. Three duplicate ACKs 150 ms later (below the 200 ms
    // RTO) bring a fast retransmit, which the peer acknowledges 1 ms after.
    let una = s.y;
    s.ep.send(s.now, s.conn, &random_bytes(2, 6 * 1460))
        .unwrap();
    let flight = s.drain();
    assert_eq!(flight.len(), 6);
    s.now += Duration::from_millis(150);
    let mut rtx = Vec::new();
    for _ in 0..3 {
        let dup = s.seg(ACK, s.p, una, &[]);
        rtx.extend(s.inject(dup));
    }
    assert!(
        rtx.iter().any(|o| o.seq == una && !o.payload.is_empty()),
        "fast retransmit: {rtx:?}"
    );
    s.now += Duration::from_millis(1);
    s.ack();
    // Karn: the ACK covers a retransmitted segment, so it is no sample at all — neither
    // 151 ms (from the first transmission) nor 1 ms (from the retransmission).
    assert_eq!(s.ep.info(s.conn).unwrap().srtt, srtt);
}
