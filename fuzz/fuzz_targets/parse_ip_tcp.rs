//! Fuzz `parse_ip_tcp`: it must never panic, and whatever it accepts must
//! re-emit and re-parse to the same addresses and segment.
//!
//! Random bytes almost never carry valid checksums, so each input is tried
//! twice: as is (exercising rejection), and with the IPv4 header and TCP
//! checksums repaired (so the fuzzer reaches options and extension headers).
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use tcpfsm_wire::{emit_ip_tcp, parse_ip_tcp, Ipv4Packet, Ipv6Packet, TcpPacket};

fn check(data: &[u8]) {
    let Ok(p) = parse_ip_tcp(data) else { return };
    let mut buf = Vec::new();
    // Anything parsed from a real datagram fits again: the options came from
    // at most 40 bytes and the segment from at most one IP datagram.
    let n = emit_ip_tcp(p.src, p.dst, &p.tcp, &mut buf).expect("re-emit of a parsed segment");
    assert_eq!(n, buf.len());
    let q = parse_ip_tcp(&buf).expect("re-parse of our own emission");
    assert_eq!((q.src, q.dst, &q.tcp), (p.src, p.dst, &p.tcp));
    assert_eq!(q.ttl, 64);
}

/// Repairs checksums where the layout lets us find them (IPv4, or IPv6 with
/// TCP directly after the fixed header).
fn repair(data: &mut [u8]) {
    match data.first().map(|b| b >> 4) {
        Some(4) => {
            let Ok(mut ip) = Ipv4Packet::new_checked(&mut data[..]) else {
                return;
            };
            ip.fill_checksum();
            let (src, dst) = (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()));
            let seg = ip.payload_mut();
            if seg.len() >= 20 {
                TcpPacket::new_unchecked(seg).fill_checksum(src, dst);
            }
        }
        Some(6) => {
            let Ok(mut ip) = Ipv6Packet::new_checked(&mut data[..]) else {
                return;
            };
            if ip.next_header() != 6 {
                return;
            }
            let (src, dst) = (IpAddr::V6(ip.src_addr()), IpAddr::V6(ip.dst_addr()));
            let seg = ip.payload_mut();
            if seg.len() >= 20 {
                TcpPacket::new_unchecked(seg).fill_checksum(src, dst);
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut fixed = data.to_vec();
    repair(&mut fixed);
    check(&fixed);
});
