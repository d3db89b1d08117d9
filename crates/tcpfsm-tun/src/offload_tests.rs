//! The super-segment rules on real datagrams built by the wire crate.

use super::*;
use tcpfsm_wire::{emit_ip_tcp, parse_ip_tcp, Flags, SeqNum, TcpOptions, TcpRepr, Timestamps};

const A4: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 77, 0, 2));
const B4: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 77, 0, 1));

fn v6() -> (IpAddr, IpAddr) {
    ("fd77::2".parse().unwrap(), "fd77::1".parse().unwrap())
}

/// Deterministic "random" bytes: a stream no position of which repeats the next.
fn bytes(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

struct Seg {
    seq: u32,
    flags: Flags,
    ack: u32,
    window: u16,
    tsval: u32,
    payload: Vec<u8>,
}

fn seg(seq: u32, payload: Vec<u8>) -> Seg {
    Seg {
        seq,
        flags: Flags::ACK,
        ack: 7_000,
        window: 512,
        tsval: 99,
        payload,
    }
}

fn emit(src: IpAddr, dst: IpAddr, s: &Seg) -> (Vec<u8>, usize) {
    let repr = TcpRepr {
        src_port: 40_000,
        dst_port: 80,
        seq: SeqNum(s.seq),
        ack: SeqNum(s.ack),
        flags: s.flags,
        window: s.window,
        urgent: 0,
        options: TcpOptions {
            timestamps: Some(Timestamps {
                tsval: s.tsval,
                tsecr: 5,
            }),
            ..TcpOptions::default()
        },
        payload: &s.payload,
    };
    let mut buf = Vec::new();
    let n = emit_ip_tcp(src, dst, &repr, &mut buf).expect("emit");
    (buf, n)
}

/// The bytes a write puts on the TUN after its virtio header, and that header.
fn wire_bytes(w: &Write, pkts: &[(Vec<u8>, usize)]) -> (VnetHdr, Vec<u8>) {
    let vnet = match w {
        Write::One(_) => VnetHdr::default(),
        Write::Merged { vnet, .. } => *vnet,
    };
    (vnet, w.pieces(pkts).flatten().copied().collect())
}

fn plan(pkts: &[(Vec<u8>, usize)]) -> Vec<Write> {
    Coalescer::plan(pkts, true).collect()
}

/// Which datagrams each write carries: `[0..3, 3..4]` as `[(0, 3), (3, 4)]`.
fn shape(ws: &[Write]) -> Vec<(usize, usize)> {
    ws.iter()
        .map(|w| match w {
            Write::One(i) => (*i, i + 1),
            Write::Merged { range, .. } => (range.start, range.end),
        })
        .collect()
}

fn check_merge_is_the_big_segment(src: IpAddr, dst: IpAddr, start_seq: u32) {
    let sizes = [1000, 1000, 1000, 400];
    let mut segs = Vec::new();
    let mut seq = start_seq;
    for (i, &n) in sizes.iter().enumerate() {
        segs.push(seg(seq, bytes(n, i as u32 + 1)));
        seq = seq.wrapping_add(n as u32);
    }
    segs[3].flags = Flags::ACK | Flags::PSH;
    let pkts: Vec<_> = segs.iter().map(|s| emit(src, dst, s)).collect();
    let ws = plan(&pkts);
    assert_eq!(shape(&ws), vec![(0, 4)]);
    let (vnet, mut merged) = wire_bytes(&ws[0], &pkts);
    assert!(vnet.is_gso());
    assert_eq!(vnet.gso_size, 1000);
    assert_eq!(vnet.hdr_len as usize, merged.len() - 3400);
    // What the kernel's receive path makes of it: the partial checksum completed.
    complete_checksum(&vnet, &mut merged).expect("in range");
    let big = Seg {
        flags: Flags::ACK | Flags::PSH,
        ..seg(
            start_seq,
            segs.iter().flat_map(|s| s.payload.clone()).collect(),
        )
    };
    let (want, n) = emit(src, dst, &big);
    assert_eq!(
        merged,
        want[..n],
        "the merged datagram is the one big segment"
    );
    let p = parse_ip_tcp(&merged).expect("verifies");
    assert_eq!(p.tcp.seq, SeqNum(start_seq));
    assert_eq!(p.tcp.payload, &big.payload[..]);
}

#[test]
fn merged_segments_are_the_one_big_segment_ipv4() {
    check_merge_is_the_big_segment(A4, B4, 1_000_000);
}

#[test]
fn merged_segments_are_the_one_big_segment_ipv6() {
    let (a, b) = v6();
    check_merge_is_the_big_segment(a, b, 1_000_000);
}

#[test]
fn merging_follows_sequence_numbers_across_the_wrap_rfc9293_3_4() {
    check_merge_is_the_big_segment(A4, B4, u32::MAX - 1500);
}

/// Two full segments and a variation of the second: `(0, 1), (1, 2)` when the variation
/// may not join.
fn alone_when(change: impl Fn(&mut Seg)) -> Vec<(usize, usize)> {
    let a = seg(100, bytes(1000, 1));
    let mut b = seg(1100, bytes(1000, 2));
    change(&mut b);
    let pkts = vec![emit(A4, B4, &a), emit(A4, B4, &b)];
    shape(&plan(&pkts))
}

#[test]
fn what_differs_is_not_merged() {
    let apart = vec![(0, 1), (1, 2)];
    assert_eq!(alone_when(|_| {}), vec![(0, 2)], "the control merges");
    assert_eq!(
        alone_when(|b| b.seq += 1),
        apart,
        "a gap in sequence numbers"
    );
    assert_eq!(alone_when(|b| b.seq -= 1), apart, "an overlap");
    assert_eq!(alone_when(|b| b.ack += 1), apart, "another ACK number");
    assert_eq!(alone_when(|b| b.window += 1), apart, "another window");
    assert_eq!(alone_when(|b| b.tsval += 1), apart, "other options (TSval)");
    assert_eq!(alone_when(|b| b.flags |= Flags::FIN), apart, "FIN");
    assert_eq!(alone_when(|b| b.flags |= Flags::CWR), apart, "CWR");
    assert_eq!(alone_when(|b| b.flags = Flags::RST), apart, "RST");
    assert_eq!(
        alone_when(|b| b.payload = bytes(1001, 2)),
        apart,
        "longer than gso_size"
    );
    assert_eq!(alone_when(|b| b.payload.clear()), apart, "a bare ACK");
}

#[test]
fn other_connections_and_families_are_not_merged() {
    let a = emit(A4, B4, &seg(100, bytes(1000, 1)));
    let other_dst = emit(A4, "10.77.0.9".parse().unwrap(), &seg(1100, bytes(1000, 2)));
    let (s6, d6) = v6();
    let other_family = emit(s6, d6, &seg(1100, bytes(1000, 2)));
    assert_eq!(shape(&plan(&[a.clone(), other_dst])), vec![(0, 1), (1, 2)]);
    assert_eq!(shape(&plan(&[a, other_family])), vec![(0, 1), (1, 2)]);
}

#[test]
fn psh_ends_a_run_and_a_short_segment_is_its_last() {
    let mut s: Vec<Seg> = (0..5).map(|i| seg(i * 1000, bytes(1000, i + 1))).collect();
    s[1].flags = Flags::ACK | Flags::PSH;
    s[3].payload.truncate(10);
    s[4].seq = 3010;
    let pkts: Vec<_> = s.iter().map(|x| emit(A4, B4, x)).collect();
    // [0, 1(PSH)] then [2, 3(short)] then [4]: after a short segment nothing follows.
    assert_eq!(shape(&plan(&pkts)), vec![(0, 2), (2, 4), (4, 5)]);
}

#[test]
fn a_super_segment_never_exceeds_the_ip_length_field() {
    // 50 × 1448 bytes is more than one IPv4 datagram can hold.
    let pkts: Vec<_> = (0..50u32)
        .map(|i| emit(A4, B4, &seg(i * 1448, bytes(1448, i + 1))))
        .collect();
    let ws = plan(&pkts);
    let runs = shape(&ws);
    assert_eq!(
        runs.first(),
        Some(&(0, 45)),
        "20 + 32 + 45 × 1448 = 65212 fits, 46 do not"
    );
    assert_eq!(
        runs.last().map(|r| r.1),
        Some(50),
        "every datagram is written"
    );
    for w in &ws {
        let (_, b) = wire_bytes(w, &pkts);
        assert!(b.len() <= 65535);
    }
}

#[test]
fn every_datagram_is_written_once_in_order() {
    // A mix: SYN-less data of two connections, bare ACKs, FINs, in random order.
    let mut x = 7u32;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    for _ in 0..200 {
        let mut pkts = Vec::new();
        let mut seq = next();
        for i in 0..(next() % 30) {
            let mut s = seg(
                seq,
                bytes([0, 1, 1000, 1000, 1000, 600][next() as usize % 6], i),
            );
            if next() % 7 == 0 {
                s.flags |= Flags::FIN;
            }
            if next() % 9 == 0 {
                s.ack += 1;
            }
            seq = seq.wrapping_add(s.payload.len() as u32);
            let dst = if next() % 5 == 0 { A4 } else { B4 };
            pkts.push(emit(A4, dst, &s));
        }
        let runs = shape(&plan(&pkts));
        let mut at = 0;
        for (a, b) in runs {
            assert_eq!(a, at, "in order, none skipped");
            assert!(b > a);
            at = b;
        }
        assert_eq!(at, pkts.len());
        let alone: Vec<_> = (0..pkts.len()).map(|i| (i, i + 1)).collect();
        let unmerged: Vec<_> = Coalescer::plan(&pkts, false).collect();
        assert_eq!(
            shape(&unmerged),
            alone,
            "without offloads each is its own write"
        );
    }
}

#[test]
fn a_partial_checksum_is_completed_to_the_real_one() {
    let (mut pkt, n) = emit(A4, B4, &seg(5, bytes(777, 3)));
    pkt.truncate(n);
    let original = pkt.clone();
    // What the kernel leaves for the device: the pseudo-header sum, not complemented.
    let partial = pseudo_header(A4, B4, 6, (n - 20) as u32).sum();
    pkt[36..38].copy_from_slice(&partial.to_be_bytes());
    assert_ne!(pkt, original);
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        csum_start: 20,
        csum_offset: 16,
        ..VnetHdr::default()
    };
    let done = complete_checksum(&hdr, &mut pkt).expect("in range");
    assert!(done.completed && !done.gso);
    assert_eq!(pkt, original);
}

#[test]
fn a_checksum_offset_outside_the_datagram_is_refused_and_nothing_changes() {
    let (mut pkt, n) = emit(A4, B4, &seg(5, bytes(10, 3)));
    pkt.truncate(n);
    let original = pkt.clone();
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        csum_start: n as u16 - 1,
        csum_offset: 16,
        ..VnetHdr::default()
    };
    assert!(complete_checksum(&hdr, &mut pkt).is_err());
    assert_eq!(pkt, original);
    let plain = VnetHdr::default();
    assert_eq!(
        complete_checksum(&plain, &mut pkt),
        Ok(RxOffload::default())
    );
    assert_eq!(pkt, original);
}

#[test]
fn the_virtio_header_round_trips() {
    let h = VnetHdr {
        flags: 1,
        gso_type: GSO_TCPV6,
        hdr_len: 72,
        gso_size: 1428,
        csum_start: 40,
        csum_offset: 16,
    };
    assert_eq!(VnetHdr::from_bytes(&h.to_bytes()), h);
    assert!(h.is_gso());
    assert!(!VnetHdr::default().is_gso());
}
