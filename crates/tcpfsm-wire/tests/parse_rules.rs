//! Per-rule tests of parse_ip_tcp / emit_ip_tcp through the public API.

mod common;

use std::net::{IpAddr, Ipv6Addr};

use common::*;
use tcpfsm_wire::*;

/// A Linux-style IPv4 SYN (MSS 1460, SACK-Permitted, Timestamps, WS 7),
/// written byte by byte from the RFC 791 / RFC 9293 §3.1 layouts. Both
/// checksums were computed independently (outside this crate) and are
/// cross-checked with the naive reference here.
const SYN_V4: [u8; 60] = [
    // IPv4: ver/IHL, TOS, total len 60, id 0, DF, TTL 64, proto 6, csum 0xb768
    0x45, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0xb7, 0x68, 192, 168, 1, 2, 192,
    168, 1, 1,
    // TCP: 54321 -> 80, seq 0x12345678, ack 0, doff 10, SYN, win 64240, csum 0xaa4b, urg 0
    0xd4, 0x31, 0x00, 0x50, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0,
    0xaa, 0x4b, 0x00, 0x00, // options: MSS 1460 | SACK-Perm | TS 123456/0 | NOP WS 7
    0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x01, 0xe2, 0x40, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x03, 0x03, 0x07,
];

fn syn_repr() -> TcpRepr<'static> {
    TcpRepr {
        src_port: 54321,
        dst_port: 80,
        seq: SeqNum(0x1234_5678),
        ack: SeqNum(0),
        flags: Flags::SYN,
        window: 64240,
        urgent: 0,
        options: TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            sack_blocks: [None; 4],
            timestamps: Some(Timestamps {
                tsval: 123_456,
                tsecr: 0,
            }),
        },
        payload: &[],
    }
}

#[test]
fn known_answer_syn_checksums_match_naive_reference() {
    let mut ip = SYN_V4[..20].to_vec();
    ip[10] = 0;
    ip[11] = 0;
    assert_eq!(naive_checksum(&ip), 0xb768);
    let mut seg = pseudo_header(V4_SRC, V4_DST, 40);
    seg.extend_from_slice(&SYN_V4[20..]);
    seg[12 + 16] = 0;
    seg[12 + 17] = 0;
    assert_eq!(naive_checksum(&seg), 0xaa4b);
}

#[test]
fn known_answer_syn_parses_to_expected_fields() {
    let p = parse_ip_tcp(&SYN_V4).expect("valid SYN");
    assert_eq!(p.src, V4_SRC);
    assert_eq!(p.dst, V4_DST);
    assert_eq!(p.ttl, 64);
    assert_eq!(p.tcp, syn_repr());
    assert_eq!(p.tcp.segment_len(), 1, "SYN occupies one sequence number");
}

#[test]
fn known_answer_syn_is_emitted_byte_for_byte() {
    assert_eq!(emit(V4_SRC, V4_DST, &syn_repr()), SYN_V4.to_vec());
}

/// The IPv4 header example commonly used to teach the checksum (a UDP
/// datagram, 192.168.0.1 -> 192.168.0.199) has checksum 0xb861.
#[test]
fn ipv4_header_checksum_known_answer() {
    let hdr: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];
    let mut buf = hdr.to_vec();
    buf.resize(0x73, 0);
    let ip = Ipv4Packet::new_checked(&buf[..]).unwrap();
    assert!(ip.verify_checksum());
    let mut copy = buf.clone();
    let mut v = Ipv4Packet::new_unchecked(&mut copy[..]);
    v.fill_checksum();
    assert_eq!(v.checksum(), 0xb861);
    // And the parser says "not TCP" only after the header checked out.
    assert_eq!(parse_ip_tcp(&buf), Err(Error::NotTcp(17)));
}

#[test]
fn ipv6_syn_checksum_matches_independent_value() {
    let mut buf = Vec::new();
    emit_ip_tcp(V6_SRC, V6_DST, &syn_repr(), &mut buf).unwrap();
    assert_eq!(buf.len(), 80);
    assert_eq!(&buf[40..], {
        let mut seg = SYN_V4[20..].to_vec();
        seg[16..18].copy_from_slice(&0xd22au16.to_be_bytes());
        seg
    });
}

#[test]
fn emit_then_parse_round_trips_ipv4_with_all_options() {
    let payload = b"hello, world";
    let mut r = sample_repr(payload);
    r.options = all_options();
    r.urgent = 7;
    r.flags |= Flags::URG | Flags::ECE | Flags::CWR | Flags::FIN;
    let d = emit(V4_SRC, V4_DST, &r);
    let p = parse_ip_tcp(&d).unwrap();
    assert_eq!((p.src, p.dst, p.ttl), (V4_SRC, V4_DST, 64));
    assert_eq!(p.tcp, r);
}

#[test]
fn emit_then_parse_round_trips_ipv6_with_all_options() {
    let payload = b"x";
    let mut r = sample_repr(payload);
    r.options = all_options();
    let d = emit(V6_SRC, V6_DST, &r);
    let p = parse_ip_tcp(&d).unwrap();
    assert_eq!((p.src, p.dst, p.ttl), (V6_SRC, V6_DST, 64));
    assert_eq!(p.tcp, r);
}

#[test]
fn emit_ipv4_header_has_ttl_64_df_id_0() {
    let d = emit(V4_SRC, V4_DST, &sample_repr(b"abc"));
    let ip = Ipv4Packet::new_checked(&d[..]).unwrap();
    assert_eq!(ip.version(), 4);
    assert_eq!(ip.header_len(), 20);
    assert_eq!(ip.total_len() as usize, d.len());
    assert_eq!(ip.ttl(), 64);
    assert!(ip.dont_frag() && !ip.more_frags());
    assert_eq!(ip.ident(), 0);
    assert_eq!(ip.protocol(), 6);
    assert!(ip.verify_checksum());
    assert_eq!(ip_header_len(V4_SRC), 20);
}

#[test]
fn emit_ipv6_header_has_hop_limit_64_and_payload_len() {
    let d = emit(V6_SRC, V6_DST, &sample_repr(b"abc"));
    let ip = Ipv6Packet::new_checked(&d[..]).unwrap();
    assert_eq!(ip.version(), 6);
    assert_eq!(ip.hop_limit(), 64);
    assert_eq!(ip.next_header(), 6);
    assert_eq!(ip.payload_len() as usize, d.len() - 40);
    assert_eq!(ip_header_len(V6_SRC), 40);
}

#[test]
fn emit_ip_tcp_replaces_previous_buffer_contents() {
    let mut buf = vec![0xaa; 500];
    let n = emit_ip_tcp(V4_SRC, V4_DST, &sample_repr(b""), &mut buf).unwrap();
    assert_eq!(n, 40);
    assert_eq!(buf.len(), 40);
}

#[test]
fn emit_rejects_mixed_address_families() {
    let mut buf = Vec::new();
    let r = sample_repr(b"");
    assert_eq!(
        emit_ip_tcp(V4_SRC, V6_DST, &r, &mut buf),
        Err(Error::AddressFamilyMismatch)
    );
    assert!(buf.is_empty());
    let mut seg = [0u8; 64];
    assert_eq!(
        r.emit(&mut seg, V6_SRC, V4_DST),
        Err(Error::AddressFamilyMismatch)
    );
}

#[test]
fn tcp_emit_rejects_short_buffer() {
    let r = sample_repr(b"abcdef");
    let mut seg = vec![0u8; r.buffer_len() - 1];
    assert_eq!(r.emit(&mut seg, V4_SRC, V4_DST), Err(Error::BufferTooSmall));
    let mut d = vec![0u8; 40];
    assert_eq!(
        emit_ip_tcp_into(V4_SRC, V4_DST, &r, &mut d),
        Err(Error::BufferTooSmall)
    );
}

#[test]
fn emit_rejects_options_over_40_bytes() {
    let mut r = sample_repr(b"");
    let b = Some(SackBlock {
        left: SeqNum(1),
        right: SeqNum(2),
    });
    r.options = TcpOptions {
        mss: Some(1),
        timestamps: Some(Timestamps { tsval: 1, tsecr: 2 }),
        sack_blocks: [b; 4],
        ..TcpOptions::default()
    };
    assert!(r.options.encoded_len() > 40);
    let mut buf = Vec::new();
    assert_eq!(
        emit_ip_tcp(V4_SRC, V4_DST, &r, &mut buf),
        Err(Error::OptionsTooLong)
    );
}

#[test]
fn emit_rejects_ipv4_datagram_over_65535() {
    let big = vec![0u8; 65535 - 40 + 1];
    let r = sample_repr(&big);
    let mut buf = Vec::new();
    assert_eq!(
        emit_ip_tcp(V4_SRC, V4_DST, &r, &mut buf),
        Err(Error::DatagramTooLong)
    );
    let ok = vec![0u8; 65535 - 40];
    assert!(emit_ip_tcp(V4_SRC, V4_DST, &sample_repr(&ok), &mut buf).is_ok());
}

#[test]
fn parse_rejects_empty_and_short_input_as_truncated() {
    assert_eq!(parse_ip_tcp(&[]), Err(Error::Truncated));
    assert_eq!(parse_ip_tcp(&SYN_V4[..19]), Err(Error::Truncated));
    let d = emit(V6_SRC, V6_DST, &sample_repr(b""));
    assert_eq!(parse_ip_tcp(&d[..39]), Err(Error::Truncated));
}

#[test]
fn parse_rejects_unknown_ip_version() {
    let mut d = SYN_V4;
    d[0] = 0x55;
    assert_eq!(parse_ip_tcp(&d), Err(Error::BadIpVersion(5)));
}

#[test]
fn parse_rejects_ihl_below_5() {
    let mut d = SYN_V4;
    d[0] = 0x44;
    fix_ipv4_checksum(&mut d);
    assert_eq!(parse_ip_tcp(&d), Err(Error::BadIpHeaderLen));
}

#[test]
fn parse_rejects_ihl_beyond_total_length() {
    let mut d = SYN_V4.to_vec();
    d[0] = 0x4f; // 60-byte header
    d[3] = 40; // total length 40
               // Checksum over the claimed 60 bytes would need them present; the length
               // rule must fire before the checksum is even looked at.
    assert_eq!(parse_ip_tcp(&d), Err(Error::BadIpHeaderLen));
}

#[test]
fn parse_rejects_total_length_beyond_buffer() {
    let mut d = SYN_V4;
    d[3] = 61;
    fix_ipv4_checksum(&mut d);
    assert_eq!(parse_ip_tcp(&d), Err(Error::BadIpTotalLen));
    let mut d6 = emit(V6_SRC, V6_DST, &sample_repr(b"abc"));
    d6[5] += 1;
    assert_eq!(parse_ip_tcp(&d6), Err(Error::BadIpTotalLen));
}

#[test]
fn parse_rejects_bad_ipv4_header_checksum() {
    let mut d = SYN_V4;
    d[8] = 63; // TTL changed, checksum not updated
    assert_eq!(parse_ip_tcp(&d), Err(Error::BadIpChecksum));
}

#[test]
fn ipv4_fragment_is_rejected() {
    // More Fragments set.
    let mut d = SYN_V4;
    d[6] = 0x20;
    fix_ipv4_checksum(&mut d);
    assert_eq!(parse_ip_tcp(&d), Err(Error::Fragmented));
    // Non-zero offset, MF clear (the last fragment).
    let mut d = SYN_V4;
    d[6] = 0x00;
    d[7] = 0x01;
    fix_ipv4_checksum(&mut d);
    assert_eq!(parse_ip_tcp(&d), Err(Error::Fragmented));
}

#[test]
fn parse_rejects_non_tcp_protocol() {
    let mut d = SYN_V4;
    d[9] = 17;
    fix_ipv4_checksum(&mut d);
    assert_eq!(parse_ip_tcp(&d), Err(Error::NotTcp(17)));
}

#[test]
fn trailing_padding_is_ignored() {
    // A 40-byte datagram padded to Ethernet's 46-byte minimum payload.
    let mut d = emit(V4_SRC, V4_DST, &sample_repr(b""));
    let len = d.len();
    d.extend_from_slice(&[0xee; 6]);
    let p = parse_ip_tcp(&d).unwrap();
    assert_eq!(p.tcp, sample_repr(b""));
    assert_eq!(len, 40);
    let mut d6 = emit(V6_SRC, V6_DST, &sample_repr(b"pay"));
    d6.extend_from_slice(&[1, 2, 3]);
    assert_eq!(parse_ip_tcp(&d6).unwrap().tcp.payload, b"pay");
}

#[test]
fn parse_rejects_data_offset_below_5() {
    let mut d = emit(V4_SRC, V4_DST, &sample_repr(b"abcdefgh"));
    d[20 + 12] = 4 << 4;
    fix_tcp_checksum(&mut d, 20, 48, V4_SRC, V4_DST);
    assert_eq!(parse_ip_tcp(&d), Err(Error::BadDataOffset));
}

#[test]
fn parse_rejects_data_offset_beyond_segment() {
    let mut d = emit(V4_SRC, V4_DST, &sample_repr(b""));
    d[20 + 12] = 6 << 4; // 24-byte header in a 20-byte segment
    fix_tcp_checksum(&mut d, 20, 40, V4_SRC, V4_DST);
    assert_eq!(parse_ip_tcp(&d), Err(Error::BadDataOffset));
}

#[test]
fn parse_rejects_segment_shorter_than_tcp_header() {
    let mut d = emit(V4_SRC, V4_DST, &sample_repr(b""));
    d.truncate(39);
    d[3] = 39;
    fix_ipv4_checksum(&mut d);
    assert_eq!(parse_ip_tcp(&d), Err(Error::Truncated));
}

#[test]
fn parse_rejects_bad_tcp_checksum_ipv4() {
    let mut d = emit(V4_SRC, V4_DST, &sample_repr(b"data"));
    let last = d.len() - 1;
    d[last] ^= 0x01;
    assert_eq!(parse_ip_tcp(&d), Err(Error::BadTcpChecksum));
}

#[test]
fn parse_rejects_bad_tcp_checksum_ipv6() {
    let mut d = emit(V6_SRC, V6_DST, &sample_repr(b"data"));
    d[40 + 4] ^= 0x80; // sequence number
    assert_eq!(parse_ip_tcp(&d), Err(Error::BadTcpChecksum));
}

#[test]
fn tcp_checksum_covers_the_pseudo_header_addresses() {
    // Same segment, different destination: the checksum must no longer verify.
    let mut d = emit(V6_SRC, V6_DST, &sample_repr(b"data"));
    d[39] ^= 0x02;
    assert_eq!(parse_ip_tcp(&d), Err(Error::BadTcpChecksum));
    let mut d = emit(V4_SRC, V4_DST, &sample_repr(b"data"));
    d[19] ^= 0x02;
    fix_ipv4_checksum(&mut d);
    assert_eq!(parse_ip_tcp(&d), Err(Error::BadTcpChecksum));
}

/// Builds an IPv6 datagram carrying `exts` (each: (next-header-type, body
/// incl. its own first two bytes placeholder)) before a TCP segment.
fn v6_with_ext_headers(exts: &[(u8, Vec<u8>)], dst_for_checksum: IpAddr) -> Vec<u8> {
    let seg_repr = sample_repr(b"ext!");
    let mut seg = vec![0u8; seg_repr.buffer_len()];
    seg_repr.emit(&mut seg, V6_SRC, dst_for_checksum).unwrap();
    let plain = emit(V6_SRC, V6_DST, &seg_repr);
    let mut d = plain[..40].to_vec();
    d[6] = exts.first().map(|e| e.0).unwrap_or(6);
    for (i, (_, body)) in exts.iter().enumerate() {
        let mut body = body.clone();
        body[0] = exts.get(i + 1).map(|e| e.0).unwrap_or(6);
        body[1] = (body.len() / 8 - 1) as u8;
        d.extend_from_slice(&body);
    }
    d.extend_from_slice(&seg);
    let pl = (d.len() - 40) as u16;
    d[4..6].copy_from_slice(&pl.to_be_bytes());
    d
}

#[test]
fn ipv6_extension_headers_are_skipped() {
    let d = v6_with_ext_headers(
        &[
            (0, vec![0u8; 8]),
            (60, vec![0u8; 16]),
            (43, vec![0, 0, 0, 0, 0, 0, 0, 0]),
        ],
        V6_DST,
    );
    let p = parse_ip_tcp(&d).unwrap();
    assert_eq!(p.tcp, sample_repr(b"ext!"));
    assert_eq!(p.dst, V6_DST);
}

#[test]
fn ipv6_routing_header_with_segments_left_uses_final_destination() {
    // Segment Routing Header (type 4), one segment, Segments Left 1:
    // Segment List[0] is the final destination (RFC 8754 §2, RFC 8200 §8.1).
    let final_dst = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x99);
    let mut srh = vec![0u8, 0, 4, 1, 0, 0, 0, 0];
    srh.extend_from_slice(&final_dst.octets());
    let d = v6_with_ext_headers(&[(43, srh)], IpAddr::V6(final_dst));
    let p = parse_ip_tcp(&d).unwrap();
    assert_eq!(p.dst, IpAddr::V6(final_dst));
    assert_eq!(p.tcp.payload, b"ext!");
}

#[test]
fn ipv6_fragment_header_is_rejected() {
    let d = v6_with_ext_headers(&[(44, vec![0u8; 8])], V6_DST);
    assert_eq!(parse_ip_tcp(&d), Err(Error::Fragmented));
}

#[test]
fn ipv6_unknown_next_header_is_not_tcp() {
    let d = v6_with_ext_headers(&[(0, vec![0u8; 8])], V6_DST);
    let mut d2 = d.clone();
    d2[40] = 17; // hop-by-hop says UDP follows
    assert_eq!(parse_ip_tcp(&d2), Err(Error::NotTcp(17)));
    let mut d3 = d;
    d3[6] = 59; // No Next Header
    assert_eq!(parse_ip_tcp(&d3), Err(Error::NotTcp(59)));
}

#[test]
fn ipv6_extension_header_running_past_payload_is_truncated() {
    let mut d = v6_with_ext_headers(&[(60, vec![0u8; 8])], V6_DST);
    d[41] = 200; // claims 1608 bytes
    assert_eq!(parse_ip_tcp(&d), Err(Error::Truncated));
}

/// Replaces the options of an emitted plain IPv4 segment with `opts`
/// (already padded to a multiple of 4) and fixes both checksums.
fn v4_with_raw_options(opts: &[u8], payload: &[u8]) -> Vec<u8> {
    assert_eq!(opts.len() % 4, 0);
    let mut d = emit(V4_SRC, V4_DST, &sample_repr(b""));
    d.extend_from_slice(opts);
    d.extend_from_slice(payload);
    let total = d.len();
    d[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    d[32] = (((20 + opts.len()) / 4) as u8) << 4;
    fix_ipv4_checksum(&mut d);
    fix_tcp_checksum(&mut d, 20, total, V4_SRC, V4_DST);
    d
}

#[test]
fn unknown_option_is_skipped() {
    // Kind 254 (RFC 6994 experimental) with 4 data bytes, then MSS.
    let d = v4_with_raw_options(&[254, 6, 1, 2, 3, 4, 2, 4, 0x05, 0xdc, 0, 0], b"p");
    let p = parse_ip_tcp(&d).unwrap();
    assert_eq!(p.tcp.options.mss, Some(1500));
    assert_eq!(p.tcp.payload, b"p");
    let tcp = TcpPacket::new_checked(&d[20..]).unwrap();
    let opts: Vec<_> = tcp.options_iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(
        opts,
        vec![
            TcpOption::Unknown {
                kind: 254,
                data: &[1, 2, 3, 4]
            },
            TcpOption::Mss(1500),
            TcpOption::EndOfList
        ]
    );
}

#[test]
fn options_after_end_of_list_are_ignored() {
    // EOL then bytes that would be a malformed MSS: never looked at.
    let d = v4_with_raw_options(&[1, 0, 2, 9], b"");
    assert_eq!(parse_ip_tcp(&d).unwrap().tcp.options, TcpOptions::default());
}

#[test]
fn parse_rejects_truncated_option() {
    // MSS claims 4 bytes but only 2 remain in the options area.
    let d = v4_with_raw_options(&[1, 1, 2, 4], b"");
    assert_eq!(parse_ip_tcp(&d), Err(Error::TruncatedOption));
    // A kind byte with no room for its length byte.
    let d = v4_with_raw_options(&[1, 1, 1, 8], b"");
    assert_eq!(parse_ip_tcp(&d), Err(Error::TruncatedOption));
    // An unknown option running past the area is equally malformed.
    let d = v4_with_raw_options(&[253, 8, 0, 0], b"");
    assert_eq!(parse_ip_tcp(&d), Err(Error::TruncatedOption));
}

#[test]
fn parse_rejects_bad_option_lengths() {
    let cases: &[&[u8]] = &[
        &[2, 3, 5, 0],                          // MSS len 3
        &[3, 4, 7, 0],                          // WS len 4
        &[4, 3, 0, 0],                          // SACK-Perm len 3
        &[8, 8, 0, 0, 0, 0, 0, 0],              // TS len 8
        &[5, 2, 0, 0],                          // SACK with no blocks
        &[5, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], // SACK len not 2+8n
        &[253, 1, 0, 0],                        // any option with len < 2
        &[253, 0, 0, 0],
    ];
    for opts in cases {
        let d = v4_with_raw_options(opts, b"");
        assert_eq!(parse_ip_tcp(&d), Err(Error::BadOptionLength), "{opts:?}");
    }
}

#[test]
fn sack_blocks_parse_in_order() {
    let mut opts = vec![1, 1, 5, 26];
    for (l, r) in [(10u32, 20u32), (30, 40), (50, 60)] {
        opts.extend_from_slice(&l.to_be_bytes());
        opts.extend_from_slice(&r.to_be_bytes());
    }
    let d = v4_with_raw_options(&opts, b"");
    let p = parse_ip_tcp(&d).unwrap();
    let blocks: Vec<_> = p
        .tcp
        .options
        .sack_blocks()
        .map(|b| (b.left.0, b.right.0))
        .collect();
    assert_eq!(blocks, vec![(10, 20), (30, 40), (50, 60)]);
}

#[test]
fn ipv4_options_are_skipped() {
    // IHL 6: one word of IPv4 options (NOP NOP NOP EOL) before TCP.
    let plain = emit(V4_SRC, V4_DST, &sample_repr(b"v4opt"));
    let mut d = plain[..20].to_vec();
    d[0] = 0x46;
    d.extend_from_slice(&[1, 1, 1, 0]);
    d.extend_from_slice(&plain[20..]);
    let total = d.len() as u16;
    d[2..4].copy_from_slice(&total.to_be_bytes());
    fix_ipv4_checksum(&mut d);
    assert_eq!(parse_ip_tcp(&d).unwrap().tcp.payload, b"v4opt");
}

/// The exception in the single-bit-flip property is real: IPv6 has no header
/// checksum, and a payload length that loses 2 (one bit flip: 26 -> 24) while
/// the dropped bytes are ff fd changes the TCP sum by -(2 + 0xfffd) = -0xffff,
/// i.e. not at all in one's-complement arithmetic.
#[test]
fn ipv6_length_bit_flip_can_cancel_in_the_checksum() {
    let payload = [0x11, 0x22, 0x33, 0x44, 0xff, 0xfd];
    let r = TcpRepr {
        options: TcpOptions::default(),
        ..sample_repr(&payload)
    };
    let mut d = emit(V6_SRC, V6_DST, &r);
    assert_eq!(u16::from_be_bytes([d[4], d[5]]), 26);
    d[5] ^= 0x02;
    let p = parse_ip_tcp(&d).expect("the truncation goes unnoticed");
    assert_eq!(p.tcp.payload, &payload[..4]);
}

/// RFC 9293 §3.1: the reserved bits "must be zero" when sent; a receiver does
/// not reject a segment for them (they have since been given meanings, e.g.
/// RFC 3540's NS and AccECN's AE).
#[test]
fn reserved_header_bits_are_ignored_on_receive() {
    let mut d = emit(V4_SRC, V4_DST, &sample_repr(b"r"));
    d[20 + 12] |= 0x0f;
    let n = d.len();
    fix_tcp_checksum(&mut d, 20, n, V4_SRC, V4_DST);
    assert_eq!(parse_ip_tcp(&d).unwrap().tcp, sample_repr(b"r"));
}

#[test]
fn repeated_option_last_one_wins() {
    let d = v4_with_raw_options(&[2, 4, 0x02, 0x18, 2, 4, 0x05, 0xb4], b"");
    assert_eq!(parse_ip_tcp(&d).unwrap().tcp.options.mss, Some(1460));
}

#[test]
fn ipv6_type0_routing_header_uses_last_address_as_final_destination() {
    // Deprecated RH0 (RFC 5095) still defines where the final destination is.
    let hop = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
    let last = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x20);
    let mut rh0 = vec![0u8, 0, 0, 2, 0, 0, 0, 0];
    rh0.extend_from_slice(&hop.octets());
    rh0.extend_from_slice(&last.octets());
    let d = v6_with_ext_headers(&[(43, rh0)], IpAddr::V6(last));
    assert_eq!(parse_ip_tcp(&d).unwrap().dst, IpAddr::V6(last));
}

#[test]
fn ipv6_routing_header_with_no_segments_left_keeps_header_destination() {
    let other = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x77);
    let mut srh = vec![0u8, 0, 4, 0, 0, 0, 0, 0];
    srh.extend_from_slice(&other.octets());
    let d = v6_with_ext_headers(&[(43, srh)], V6_DST);
    assert_eq!(parse_ip_tcp(&d).unwrap().dst, V6_DST);
}

#[test]
fn error_messages_are_human_readable() {
    assert_eq!(Error::NotTcp(17).to_string(), "not TCP (protocol 17)");
    assert_eq!(Error::BadIpVersion(5).to_string(), "bad IP version 5");
    let e: Box<dyn std::error::Error> = Box::new(Error::BadTcpChecksum);
    assert_eq!(e.to_string(), "bad TCP checksum");
}
