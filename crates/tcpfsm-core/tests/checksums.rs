//! TCP checksums at the endpoint: verification of received text (fused with the copy into the
//! receive buffer) and `Config::checksum_offload`, what the engine leaves to the device
//! (ethtool `rx`/`tx` checksumming). Segments are real bytes.

mod common;
use common::*;
use tcpfsm_core::{ChecksumOffload, Config, ConnHandle, Counter, Endpoint, Instant};
use tcpfsm_wire::{parse_ip_tcp, parse_ip_tcp_with, Flags};

/// Offset of the TCP checksum in an IPv4 datagram with a 20-byte header (RFC 9293 §3.1).
const TCP_CSUM: usize = 20 + 16;

/// A server endpoint with one accepted connection from a scripted peer; returns our
/// SND.NXT too.
fn server(offload: ChecksumOffload) -> (Endpoint, Instant, ConnHandle, u32) {
    let cfg = Config {
        checksum_offload: offload,
        ..plain()
    };
    let mut ep = Endpoint::new(cfg, 9);
    let now = Instant::from_micros(1_000_000);
    let (me, peer) = (addr(B_IP, 80), addr(A_IP, 40_000));
    let l = ep.listen(now, me, 4).unwrap();
    let mut syn = seg(peer, me, Flags::SYN, 100, 0);
    syn.options.mss = Some(1460);
    ep.handle_packet(now, &syn.bytes());
    let mut buf = Vec::new();
    let tx = ep.poll_transmit(now, &mut buf).expect("a SYN-ACK");
    let synack = parse_ip_tcp_with(&buf[..tx.len], ChecksumOffload::ALL).unwrap();
    let y = synack.tcp.seq.0 + 1;
    ep.handle_packet(now, &seg(peer, me, Flags::ACK, 101, y).bytes());
    let c = ep.accept(now, l).unwrap().expect("established");
    (ep, now, c, y)
}

/// A data segment whose checksum is wrong.
fn corrupt_data(y: u32) -> Vec<u8> {
    let mut d = seg(addr(A_IP, 40_000), addr(B_IP, 80), Flags::ACK, 101, y);
    d.payload = b"hello".to_vec();
    let mut bytes = d.bytes();
    bytes[TCP_CSUM] ^= 0x5a;
    bytes
}

#[test]
fn tx_offload_leaves_the_tcp_checksum_to_the_device() {
    let (mut ep, now, _, _) = server(ChecksumOffload::ALL);
    let mut buf = Vec::new();
    ep.connect(now, addr(B_IP, 0), addr(A_IP, 9)).unwrap();
    let tx = ep.poll_transmit(now, &mut buf).expect("a SYN");
    let bytes = &buf[..tx.len];
    assert_eq!(&bytes[TCP_CSUM..TCP_CSUM + 2], &[0, 0]);
    assert!(
        parse_ip_tcp(bytes).is_err(),
        "a zero checksum does not verify"
    );
    assert!(parse_ip_tcp_with(bytes, ChecksumOffload::ALL).is_ok());
}

#[test]
fn no_offload_computes_every_checksum_by_default() {
    let (mut ep, now, _, _) = server(ChecksumOffload::NONE);
    let mut buf = Vec::new();
    ep.connect(now, addr(B_IP, 0), addr(A_IP, 9)).unwrap();
    let tx = ep.poll_transmit(now, &mut buf).expect("a SYN");
    assert!(parse_ip_tcp(&buf[..tx.len]).is_ok());
}

#[test]
fn rx_offload_accepts_what_the_device_verified() {
    let (mut ep, now, c, y) = server(ChecksumOffload::ALL);
    ep.handle_packet(now, &corrupt_data(y));
    assert_eq!(ep.stats()[Counter::InCsumErrors], 0);
    let mut got = [0u8; 16];
    assert_eq!(ep.recv(now, c, &mut got).unwrap(), Some(5));
    assert_eq!(&got[..5], b"hello");
}

#[test]
fn without_rx_offload_a_bad_checksum_is_dropped() {
    let (mut ep, now, c, y) = server(ChecksumOffload::NONE);
    ep.handle_packet(now, &corrupt_data(y));
    assert_eq!(ep.stats()[Counter::InCsumErrors], 1);
    assert_eq!(ep.recv(now, c, &mut [0u8; 16]).unwrap(), None);
}

/// In-order text is verified inside the copy into the receive buffer: a segment whose payload
/// was damaged in flight must leave nothing readable, and the intact retransmission that
/// follows must deliver its own bytes, not the damaged copy (RFC 9293 §3.1: a segment with a
/// bad checksum is discarded).
#[test]
fn damaged_in_order_payload_is_dropped_and_the_retransmission_delivered_rfc9293_3_1() {
    let (mut ep, now, c, y) = server(ChecksumOffload::NONE);
    let mut d = seg(addr(A_IP, 40_000), addr(B_IP, 80), Flags::ACK, 101, y);
    d.payload = (0..1000u32).map(|i| (i * 7) as u8).collect();
    let good = d.bytes();
    for at in [40, 41, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x81;
        ep.handle_packet(now, &bad);
        assert_eq!(
            ep.recv(now, c, &mut [0u8; 2000]).unwrap(),
            None,
            "damage at {at}"
        );
    }
    assert_eq!(ep.stats()[Counter::InCsumErrors], 4);
    ep.handle_packet(now, &good);
    let mut got = vec![0u8; 2000];
    assert_eq!(ep.recv(now, c, &mut got).unwrap(), Some(1000));
    assert_eq!(&got[..1000], &d.payload[..]);
}

/// The same through reassembly: text after a hole is verified separately, and a damaged copy
/// of the segment that fills the hole changes nothing.
#[test]
fn damaged_hole_filler_is_dropped_and_reassembly_stays_intact() {
    let (mut ep, now, c, y) = server(ChecksumOffload::NONE);
    let (peer, me) = (addr(A_IP, 40_000), addr(B_IP, 80));
    let mut first = seg(peer, me, Flags::ACK, 101, y);
    first.payload = vec![b'a'; 500];
    let mut second = seg(peer, me, Flags::ACK, 601, y);
    second.payload = vec![b'b'; 500];
    ep.handle_packet(now, &second.bytes());
    let mut bad = first.bytes();
    let last = bad.len() - 1;
    bad[last] = b'x';
    ep.handle_packet(now, &bad);
    assert_eq!(ep.recv(now, c, &mut [0u8; 2000]).unwrap(), None);
    ep.handle_packet(now, &first.bytes());
    let mut got = vec![0u8; 2000];
    assert_eq!(ep.recv(now, c, &mut got).unwrap(), Some(1000));
    assert!(got[..500].iter().all(|&b| b == b'a'));
    assert!(got[500..1000].iter().all(|&b| b == b'b'));
}
