//! Property tests (proptest) over the public API.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::*;
use proptest::prelude::*;
use proptest::sample::Index;
use tcpfsm_wire::*;

#[derive(Clone, Debug)]
struct Parts {
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    urgent: u16,
    options: TcpOptions,
    payload: Vec<u8>,
}

impl Parts {
    fn repr(&self) -> TcpRepr<'_> {
        TcpRepr {
            src_port: self.src_port,
            dst_port: self.dst_port,
            seq: SeqNum(self.seq),
            ack: SeqNum(self.ack),
            flags: Flags(self.flags),
            window: self.window,
            urgent: self.urgent,
            options: self.options,
            payload: &self.payload,
        }
    }
}

fn arb_options() -> impl Strategy<Value = TcpOptions> {
    (
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<u8>()),
        any::<bool>(),
        0usize..=4,
        any::<[(u32, u32); 4]>(),
        proptest::option::of(any::<(u32, u32)>()),
    )
        .prop_map(|(mss, ws, sack_permitted, n, blocks, ts)| {
            let mut sack_blocks = [None; 4];
            for (slot, (l, r)) in sack_blocks.iter_mut().zip(blocks).take(n) {
                *slot = Some(SackBlock {
                    left: SeqNum(l),
                    right: SeqNum(r),
                });
            }
            TcpOptions {
                mss,
                window_scale: ws,
                sack_permitted,
                sack_blocks,
                timestamps: ts.map(|(tsval, tsecr)| Timestamps { tsval, tsecr }),
            }
        })
}

fn arb_parts() -> impl Strategy<Value = Parts> {
    (
        any::<(u16, u16, u32, u32, u8, u16, u16)>(),
        arb_options(),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(
            |((src_port, dst_port, seq, ack, flags, window, urgent), options, payload)| Parts {
                src_port,
                dst_port,
                seq,
                ack,
                flags,
                window,
                urgent,
                options,
                payload,
            },
        )
}

/// A same-family address pair.
fn arb_addrs() -> impl Strategy<Value = (IpAddr, IpAddr)> {
    prop_oneof![
        any::<([u8; 4], [u8; 4])>()
            .prop_map(|(s, d)| (IpAddr::V4(Ipv4Addr::from(s)), IpAddr::V4(Ipv4Addr::from(d)))),
        any::<([u8; 16], [u8; 16])>()
            .prop_map(|(s, d)| (IpAddr::V6(Ipv6Addr::from(s)), IpAddr::V6(Ipv6Addr::from(d)))),
    ]
}

/// Parts whose options fit (so emit succeeds).
fn arb_fitting_parts() -> impl Strategy<Value = Parts> {
    arb_parts().prop_filter("options fit in 40 bytes", |p| p.options.encoded_len() <= 40)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn emit_then_parse_round_trips_any_repr((src, dst) in arb_addrs(), parts in arb_parts()) {
        let repr = parts.repr();
        let mut buf = Vec::new();
        match emit_ip_tcp(src, dst, &repr, &mut buf) {
            Ok(n) => {
                prop_assert_eq!(n, buf.len());
                prop_assert_eq!(n, ip_header_len(src) + repr.buffer_len());
                prop_assert_eq!(repr.header_len() % 4, 0);
                let p = parse_ip_tcp(&buf).unwrap();
                prop_assert_eq!(p.src, src);
                prop_assert_eq!(p.dst, dst);
                prop_assert_eq!(p.ttl, 64);
                prop_assert_eq!(p.tcp, repr);
            }
            Err(e) => {
                // The only reason a same-family repr may not be emitted.
                prop_assert_eq!(e, Error::OptionsTooLong);
                prop_assert!(repr.options.encoded_len() > 40);
                prop_assert!(buf.is_empty());
            }
        }
    }

    /// The transmit path's writer (sized once, into a reused buffer that is neither cleared
    /// nor re-zeroed) writes exactly the bytes `emit_ip_tcp` does, whatever was in the
    /// buffer before and however long it was, with and without checksum offload.
    #[test]
    fn emit_into_a_reused_buffer_matches_emit_ip_tcp(
        (src, dst) in arb_addrs(),
        parts in arb_parts(),
        old in proptest::collection::vec(any::<u8>(), 0..1600),
        tx_offload in any::<bool>(),
    ) {
        let repr = parts.repr();
        let offload = if tx_offload { ChecksumOffload::ALL } else { ChecksumOffload::NONE };
        let mut want = vec![0u8; 65536];
        let expect = emit_ip_tcp_into_with(src, dst, &repr, &mut want, offload);
        let mut buf = old.clone();
        let got = emit_ip_tcp_reusing(src, dst, &repr, &mut buf, offload);
        prop_assert_eq!(got, expect);
        prop_assert_eq!(got, datagram_len(src, dst, &repr));
        if let Ok(n) = got {
            prop_assert_eq!(&buf[..n], &want[..n]);
            prop_assert_eq!(buf.len(), old.len().max(n));
        } else {
            prop_assert_eq!(buf, old);
        }
    }

    /// A payload in two pieces (a segment straddling a ring buffer's wrap point), split
    /// anywhere, odd offsets included, gives the same datagram as the joined payload —
    /// header, checksum and bytes — with and without checksum offload.
    #[test]
    fn emit_split_payload_matches_the_joined_payload(
        (src, dst) in arb_addrs(),
        parts in arb_parts(),
        split in any::<Index>(),
        old in proptest::collection::vec(any::<u8>(), 0..1600),
        tx_offload in any::<bool>(),
    ) {
        let joined = parts.repr();
        let offload = if tx_offload { ChecksumOffload::ALL } else { ChecksumOffload::NONE };
        let mut want = old.clone();
        let expect = emit_ip_tcp_reusing(src, dst, &joined, &mut want, offload);
        let k = split.index(parts.payload.len() + 1);
        let head = TcpRepr { payload: &parts.payload[..k], ..joined.clone() };
        let mut buf = old.clone();
        let got = emit_ip_tcp_split(src, dst, &head, &parts.payload[k..], &mut buf, offload);
        prop_assert_eq!(got, expect);
        prop_assert_eq!(buf, want);
    }

    #[test]
    fn emitted_checksums_match_naive_reference((src, dst) in arb_addrs(), parts in arb_fitting_parts()) {
        let repr = parts.repr();
        let d = { let mut b = Vec::new(); emit_ip_tcp(src, dst, &repr, &mut b).unwrap(); b };
        let hl = ip_header_len(src);
        let mut check = d.clone();
        fix_tcp_checksum(&mut check, hl, d.len(), src, dst);
        if src.is_ipv4() {
            fix_ipv4_checksum(&mut check);
        }
        prop_assert_eq!(check, d);
    }

    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_ip_tcp(&bytes);
    }

    #[test]
    fn parse_never_panics_with_plausible_version_nibble(
        v6 in any::<bool>(),
        mut bytes in proptest::collection::vec(any::<u8>(), 1..200),
    ) {
        bytes[0] = (bytes[0] & 0x0f) | if v6 { 0x60 } else { 0x40 };
        let _ = parse_ip_tcp(&bytes);
    }

    /// Corrupt a valid datagram, then repair both checksums so the parser
    /// must walk the damaged structure. Whatever it accepts must survive a
    /// re-emit/re-parse unchanged.
    #[test]
    fn mutated_datagram_with_fixed_checksums_parses_or_errors_cleanly(
        (src, dst) in arb_addrs(),
        parts in arb_fitting_parts(),
        edits in proptest::collection::vec((any::<Index>(), any::<u8>()), 1..6),
    ) {
        let repr = parts.repr();
        let mut d = Vec::new();
        emit_ip_tcp(src, dst, &repr, &mut d).unwrap();
        for (i, b) in &edits {
            let at = i.index(d.len());
            d[at] = *b;
        }
        let hl = ip_header_len(src);
        let n = d.len();
        fix_tcp_checksum(&mut d, hl, n, src, dst);
        // An IHL mutated past the datagram's end leaves no header to sum (the parser
        // refuses it whatever its checksum).
        let ihl = (d[0] & 0x0f) as usize * 4;
        if src.is_ipv4() && ihl >= 20 && ihl <= n {
            fix_ipv4_checksum(&mut d);
        }
        if let Ok(p) = parse_ip_tcp(&d) {
            let mut again = Vec::new();
            emit_ip_tcp(p.src, p.dst, &p.tcp, &mut again).unwrap();
            let q = parse_ip_tcp(&again).unwrap();
            prop_assert_eq!((q.src, q.dst, &q.tcp), (p.src, p.dst, &p.tcp));
        }
    }

    /// The Internet checksum detects every single-bit error in the bytes it
    /// covers (a flip changes the sum by ±2^k, never ≡ 0 mod 2^16-1), and for
    /// IPv4 it covers every byte. IPv6 has no header checksum: traffic class,
    /// flow label and hop limit are unprotected but do not change the segment
    /// we report; a smaller payload length is covered only through the
    /// pseudo-header, where dropping 2^k trailing bytes whose sum cancels the
    /// length change goes unnoticed (inherent to the protocol), so there the
    /// only acceptable "Ok" is the same segment with a truncated payload.
    #[test]
    fn single_bit_flip_is_detected_or_harmless(
        (src, dst) in arb_addrs(),
        parts in arb_fitting_parts(),
        at in any::<Index>(),
        bit in 0u8..8,
    ) {
        let repr = parts.repr();
        let mut d = Vec::new();
        emit_ip_tcp(src, dst, &repr, &mut d).unwrap();
        let i = at.index(d.len());
        d[i] ^= 1 << bit;
        match parse_ip_tcp(&d) {
            Err(_) => {}
            Ok(p) => {
                prop_assert!(src.is_ipv6(), "IPv4 flip at byte {} bit {} went undetected", i, bit);
                prop_assert_eq!((p.src, p.dst), (src, dst));
                if i == 4 || i == 5 {
                    prop_assert!(repr.payload.starts_with(p.tcp.payload));
                    prop_assert!(p.tcp.payload.len() < repr.payload.len());
                    prop_assert_eq!(&p.tcp, &TcpRepr { payload: p.tcp.payload, ..repr.clone() });
                } else {
                    prop_assert!(i < 4 || i == 7, "IPv6 flip at byte {} bit {} went undetected", i, bit);
                    prop_assert_eq!(&p.tcp, &repr);
                }
            }
        }
    }

    /// `parse_ip_tcp_deferred` plus the payload summed (whole, or copied in two pieces split
    /// anywhere, as the receive ring does) accepts exactly what `parse_ip_tcp` accepts, with
    /// the same segment and the same error, on intact and bit-flipped datagrams.
    #[test]
    fn deferred_checksum_agrees_with_parse_ip_tcp(
        (src, dst) in arb_addrs(),
        parts in arb_fitting_parts(),
        flip in proptest::option::of((any::<Index>(), 0u8..8)),
        split in any::<Index>(),
    ) {
        let mut d = Vec::new();
        emit_ip_tcp(src, dst, &parts.repr(), &mut d).unwrap();
        if let Some((at, bit)) = flip {
            let i = at.index(d.len());
            d[i] ^= 1 << bit;
        }
        let whole = parse_ip_tcp(&d);
        match parse_ip_tcp_deferred(&d, ChecksumOffload::NONE) {
            Err(e) => prop_assert_eq!(Err(e), whole),
            Ok((p, sum)) => {
                let mut sum = sum.expect("nothing offloaded: a sum to finish");
                let payload = p.tcp.payload;
                let mut copy = vec![0u8; payload.len()];
                let k = split.index(payload.len() + 1);
                let (a, b) = copy.split_at_mut(k);
                sum.copy_from(a, &payload[..k]);
                sum.copy_from(b, &payload[k..]);
                prop_assert_eq!(&copy[..], payload);
                if sum.sum() == 0xffff {
                    prop_assert_eq!(Ok(p), whole);
                } else {
                    prop_assert_eq!(Err(Error::BadTcpChecksum), whole);
                }
            }
        }
        if flip.is_none() {
            let (_, none) = parse_ip_tcp_deferred(&d, ChecksumOffload::ALL).unwrap();
            prop_assert!(none.is_none(), "rx offloaded: nothing left to verify");
        }
    }

    /// `parse_ip_tcp_deferred_into` overwrites every field: parsed into a slot that still
    /// holds another datagram (its options, its family, its payload), it gives what the
    /// by-value parse gives; and the same error when that one fails.
    #[test]
    fn deferred_into_a_used_slot_agrees_with_the_by_value_parse(
        (src, dst) in arb_addrs(),
        parts in arb_fitting_parts(),
        (src0, dst0) in arb_addrs(),
        parts0 in arb_fitting_parts(),
        flip in proptest::option::of((any::<Index>(), 0u8..8)),
    ) {
        let (mut d0, mut d) = (Vec::new(), Vec::new());
        emit_ip_tcp(src0, dst0, &parts0.repr(), &mut d0).unwrap();
        emit_ip_tcp(src, dst, &parts.repr(), &mut d).unwrap();
        if let Some((at, bit)) = flip {
            let i = at.index(d.len());
            d[i] ^= 1 << bit;
        }
        for offload in [ChecksumOffload::NONE, ChecksumOffload::ALL] {
            let mut slot = IpTcp::default();
            parse_ip_tcp_deferred_into(&mut slot, &d0, offload).unwrap();
            let into = parse_ip_tcp_deferred_into(&mut slot, &d, offload);
            match parse_ip_tcp_deferred(&d, offload) {
                Ok((p, sum)) => {
                    prop_assert_eq!(into, Ok(sum));
                    prop_assert_eq!(&slot, &p);
                }
                Err(e) => prop_assert_eq!(into, Err(e)),
            }
        }
    }

    #[test]
    fn options_parse_of_arbitrary_area_reemits_identically(area in proptest::collection::vec(any::<u8>(), 0..=40)) {
        if let Ok(o) = TcpOptions::parse(&area) {
            // Anything that came from ≤ 40 bytes fits again (packed layout fallback).
            let n = o.encoded_len();
            prop_assert!(n <= 40 && n % 4 == 0);
            let mut buf = [0u8; 40];
            prop_assert_eq!(o.emit(&mut buf), Ok(n));
            prop_assert_eq!(TcpOptions::parse(&buf[..n]), Ok(o));
        }
    }

    /// `TcpOptions::parse` recognises the empty area and NOP NOP Timestamps by their bytes;
    /// on every area — those layouts, near misses of them (one byte changed, one byte more
    /// or less, Timestamps followed by more options) and arbitrary bytes — it must agree
    /// with the general parser.
    #[test]
    fn options_fast_parse_agrees_with_the_general_parser(
        tsval in any::<u32>(),
        tsecr in any::<u32>(),
        shape in 0u8..5,
        at in any::<Index>(),
        byte in any::<u8>(),
        tail in proptest::collection::vec(any::<u8>(), 0..=28),
    ) {
        let mut area = vec![1u8, 1, 8, 10];
        area.extend_from_slice(&tsval.to_be_bytes());
        area.extend_from_slice(&tsecr.to_be_bytes());
        match shape {
            0 => {}
            1 => { let i = at.index(area.len()); area[i] = byte; }
            2 => { area.truncate(at.index(area.len() + 1)); }
            3 => area.extend_from_slice(&tail),
            _ => area = tail,
        }
        prop_assert_eq!(TcpOptions::parse(&area), TcpOptions::parse_general(&area));
    }

    #[test]
    fn option_iter_items_reemit_to_their_own_bytes(area in proptest::collection::vec(any::<u8>(), 0..=40)) {
        let mut rest = &area[..];
        for item in TcpOptionIter::new(&area) {
            let Ok(opt) = item else { break };
            let n = opt.buffer_len();
            let mut out = vec![0u8; n];
            prop_assert_eq!(opt.emit(&mut out), Ok(n));
            prop_assert_eq!(&out[..], &rest[..n]);
            rest = &rest[n..];
        }
    }

    #[test]
    fn pcap_reader_never_panics_on_arbitrary_bytes(
        magic in prop_oneof![Just(0xa1b2_3c4du32), Just(0xa1b2_c3d4), any::<u32>()],
        linktype in prop_oneof![Just(1u32), Just(101), Just(113), any::<u32>()],
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut file = magic.to_le_bytes().to_vec();
        file.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0]);
        file.extend_from_slice(&linktype.to_le_bytes());
        file.extend_from_slice(&body);
        if let Ok(r) = pcap::PcapReader::new(&file) {
            for rec in r {
                if let Ok(pcap::PcapRecord { datagram: Some(d), .. }) = rec {
                    let _ = parse_ip_tcp(d);
                }
            }
        }
    }

    #[test]
    fn pcap_round_trips_emitted_datagrams(
        (src, dst) in arb_addrs(),
        parts in proptest::collection::vec(arb_fitting_parts(), 1..5),
    ) {
        let mut w = pcap::PcapWriter::new(Vec::new()).unwrap();
        let mut sent = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let mut d = Vec::new();
            emit_ip_tcp(src, dst, &p.repr(), &mut d).unwrap();
            w.write_packet(std::time::Duration::from_micros(i as u64 * 1500), &d).unwrap();
            sent.push(d);
        }
        let file = w.into_inner();
        let got: Vec<_> = pcap::PcapReader::new(&file).unwrap().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(got.len(), parts.len());
        for ((rec, d), p) in got.iter().zip(&sent).zip(&parts) {
            prop_assert_eq!(rec.datagram, Some(&d[..]));
            prop_assert_eq!(parse_ip_tcp(rec.datagram.unwrap()).unwrap().tcp, p.repr());
        }
    }

    #[test]
    fn seq_add_then_diff_recovers_offset(a in any::<u32>(), n in 0u32..(1 << 31)) {
        let s = SeqNum(a);
        let t = s + n;
        prop_assert_eq!(t - s, n as i32);
        prop_assert_eq!(t - n, s);
        prop_assert!(s.le(t));
        prop_assert_eq!(n == 0, s.ge(t));
    }

    #[test]
    fn seq_lt_is_antisymmetric_except_at_half_range(a in any::<u32>(), b in any::<u32>()) {
        let (x, y) = (SeqNum(a), SeqNum(b));
        if a.wrapping_sub(b) != 1 << 31 {
            prop_assert_eq!(x.lt(y), y.gt(x));
            prop_assert!(!(x.lt(y) && y.lt(x)));
            prop_assert_eq!(x.max(y), y.max(x));
            prop_assert_eq!(x.min(y), y.min(x));
        }
    }

    #[test]
    fn seq_in_window_matches_offset_definition(s in any::<u32>(), start in any::<u32>(), len in any::<u32>()) {
        let inside = SeqNum(s).in_window(SeqNum(start), len);
        let off = s.wrapping_sub(start) as u64;
        prop_assert_eq!(inside, off < len as u64);
    }
}
