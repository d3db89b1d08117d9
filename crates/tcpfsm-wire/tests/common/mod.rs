#![allow(dead_code)]
//! Helpers shared by the integration tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tcpfsm_wire::*;

pub const V4_SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2));
pub const V4_DST: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1));
pub const V6_SRC: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));
pub const V6_DST: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));

/// Deliberately naive RFC 1071 checksum, independent of the crate's fast one:
/// 16 bits at a time with the end-around carry applied at every step.
pub fn naive_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        let word = ((pair[0] as u32) << 8) | pair.get(1).copied().unwrap_or(0) as u32;
        sum += word;
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Naive pseudo-header bytes (RFC 9293 §3.1 / RFC 8200 §8.1).
pub fn pseudo_header(src: IpAddr, dst: IpAddr, tcp_len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            v.extend_from_slice(&s.octets());
            v.extend_from_slice(&d.octets());
            v.extend_from_slice(&[0, 6]);
            v.extend_from_slice(&(tcp_len as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            v.extend_from_slice(&s.octets());
            v.extend_from_slice(&d.octets());
            v.extend_from_slice(&(tcp_len as u32).to_be_bytes());
            v.extend_from_slice(&[0, 0, 0, 6]);
        }
        _ => panic!("mixed families"),
    }
    v
}

/// Recomputes the TCP checksum at `tcp_off` naively (after a test has edited
/// the segment), so only the property under test makes the datagram invalid.
pub fn fix_tcp_checksum(
    dgram: &mut [u8],
    tcp_off: usize,
    tcp_end: usize,
    src: IpAddr,
    dst: IpAddr,
) {
    dgram[tcp_off + 16] = 0;
    dgram[tcp_off + 17] = 0;
    let mut all = pseudo_header(src, dst, tcp_end - tcp_off);
    all.extend_from_slice(&dgram[tcp_off..tcp_end]);
    let c = naive_checksum(&all);
    dgram[tcp_off + 16..tcp_off + 18].copy_from_slice(&c.to_be_bytes());
}

/// Recomputes an IPv4 header checksum naively.
pub fn fix_ipv4_checksum(dgram: &mut [u8]) {
    let hl = ((dgram[0] & 0x0f) as usize) * 4;
    dgram[10] = 0;
    dgram[11] = 0;
    let c = naive_checksum(&dgram[..hl]);
    dgram[10..12].copy_from_slice(&c.to_be_bytes());
}

pub fn all_options() -> TcpOptions {
    TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        sack_blocks: [
            Some(SackBlock {
                left: SeqNum(1000),
                right: SeqNum(2000),
            }),
            Some(SackBlock {
                left: SeqNum(u32::MAX - 10),
                right: SeqNum(20),
            }),
            None,
            None,
        ],
        timestamps: Some(Timestamps {
            tsval: 0xdead_beef,
            tsecr: 42,
        }),
    }
}

pub fn sample_repr(payload: &[u8]) -> TcpRepr<'_> {
    TcpRepr {
        src_port: 54321,
        dst_port: 80,
        seq: SeqNum(0x1234_5678),
        ack: SeqNum(0x8765_4321),
        flags: Flags::ACK | Flags::PSH,
        window: 64240,
        urgent: 0,
        options: TcpOptions::default(),
        payload,
    }
}

pub fn emit(src: IpAddr, dst: IpAddr, repr: &TcpRepr<'_>) -> Vec<u8> {
    let mut buf = Vec::new();
    emit_ip_tcp(src, dst, repr, &mut buf).expect("emit");
    buf
}
