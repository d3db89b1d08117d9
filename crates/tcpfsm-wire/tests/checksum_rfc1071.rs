//! The fast Internet checksum against RFC 1071's plain algorithm (`common::naive_checksum`):
//! random inputs, every length up to 2048 at every alignment, split buffers, the fused copy,
//! and the offload switches of parse and emit.

mod common;

use common::*;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use tcpfsm_wire::checksum::{checksum, Checksum};
use tcpfsm_wire::*;

fn random_bytes(rng: &mut SmallRng, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill_bytes(&mut v);
    v
}

/// Random bytes of a random length below `max`.
fn random_vec(rng: &mut SmallRng, max: usize) -> Vec<u8> {
    let n = rng.gen_range(0..max);
    random_bytes(rng, n)
}

#[test]
fn checksum_equals_rfc1071_for_every_length_to_2048_at_every_alignment() {
    let mut rng = SmallRng::seed_from_u64(0x1071);
    let buf = random_bytes(&mut rng, 2048 + 8);
    for off in 0..8 {
        for len in 0..=2048 {
            let d = &buf[off..off + len];
            assert_eq!(checksum(d), naive_checksum(d), "len {len} offset {off}");
        }
    }
}

/// Bytes that make every intermediate sum carry: runs of 0xff and 0xfe.
#[test]
fn checksum_equals_rfc1071_on_carry_heavy_inputs() {
    let mut rng = SmallRng::seed_from_u64(7);
    for len in [0usize, 1, 63, 64, 65, 127, 128, 129, 1500, 9000, 65535] {
        let d: Vec<u8> = (0..len).map(|_| 0xfe | rng.gen_range(0..2u8)).collect();
        assert_eq!(checksum(&d), naive_checksum(&d), "len {len}");
    }
}

#[test]
fn pieces_of_any_length_sum_to_the_whole_rfc1071_2b() {
    let mut rng = SmallRng::seed_from_u64(2);
    let whole = random_bytes(&mut rng, 3000);
    let expect = naive_checksum(&whole);
    // Every two-way split, odd and even.
    for cut in 0..=whole.len() {
        let mut c = Checksum::new();
        c.add(&whole[..cut]);
        c.add(&whole[cut..]);
        assert_eq!(c.finish(), expect, "cut at {cut}");
    }
    // Many random splits into up to 12 pieces, mostly odd lengths.
    for _ in 0..2000 {
        let n = rng.gen_range(0..whole.len());
        let mut c = Checksum::new();
        let mut at = 0;
        while at < n {
            let step = (rng.gen_range(0..400usize) | 1).min(n - at);
            c.add(&whole[at..at + step]);
            at += step;
        }
        assert_eq!(c.finish(), naive_checksum(&whole[..n]), "prefix {n}");
    }
}

#[test]
fn appended_checksums_equal_the_checksum_of_the_concatenation() {
    let mut rng = SmallRng::seed_from_u64(3);
    for _ in 0..3000 {
        let a = random_vec(&mut rng, 300);
        let b = random_vec(&mut rng, 300);
        let c2 = random_vec(&mut rng, 300);
        let (mut x, mut y, mut z) = (Checksum::new(), Checksum::new(), Checksum::new());
        x.add(&a);
        y.add(&b);
        z.add(&c2);
        x.append(y);
        x.append(z);
        let all = [a, b, c2].concat();
        assert_eq!(
            x.finish(),
            naive_checksum(&all),
            "lengths sum {}",
            all.len()
        );
    }
}

#[test]
fn copy_from_copies_exactly_and_sums_like_rfc1071_at_every_alignment() {
    let mut rng = SmallRng::seed_from_u64(4);
    let src_buf = random_bytes(&mut rng, 2048 + 8);
    let mut dst_buf = vec![0u8; 2048 + 16];
    for src_off in 0..8 {
        for len in 0..=2048 {
            let dst_off = (src_off * 3 + len) % 8;
            dst_buf.fill(0xa5);
            let src = &src_buf[src_off..src_off + len];
            let mut c = Checksum::new();
            c.copy_from(&mut dst_buf[dst_off..dst_off + len], src);
            assert_eq!(
                c.finish(),
                naive_checksum(src),
                "len {len} src offset {src_off}"
            );
            assert_eq!(&dst_buf[dst_off..dst_off + len], src);
            assert!(dst_buf[..dst_off].iter().all(|&b| b == 0xa5));
            assert!(dst_buf[dst_off + len..].iter().all(|&b| b == 0xa5));
        }
    }
}

#[test]
fn copy_from_after_an_odd_prefix_continues_the_sum() {
    let mut rng = SmallRng::seed_from_u64(5);
    for _ in 0..500 {
        let head = {
            let n = rng.gen_range(0..30) * 2 + 1;
            random_bytes(&mut rng, n)
        };
        let body = random_vec(&mut rng, 3000);
        let mut out = vec![0u8; body.len()];
        let mut c = Checksum::new();
        c.add(&head);
        c.copy_from(&mut out, &body);
        assert_eq!(c.finish(), naive_checksum(&[&head[..], &body[..]].concat()));
        assert_eq!(out, body);
    }
}

/// Short and empty pieces (a bare ACK's payload, a payload that does not wrap the ring) in
/// any order, at odd and even offsets: the sum and the copy are the whole's.
#[test]
fn copy_from_in_short_and_empty_pieces_is_the_whole() {
    let mut rng = SmallRng::seed_from_u64(6);
    for _ in 0..2000 {
        let pieces: Vec<Vec<u8>> = (0..rng.gen_range(1..8))
            .map(|_| {
                let n = [0, 0, 1, 2, 3][rng.gen_range(0..5)];
                random_bytes(&mut rng, n)
            })
            .collect();
        let whole = pieces.concat();
        let mut out = vec![0u8; whole.len()];
        let mut c = Checksum::new();
        let mut at = 0;
        for p in &pieces {
            c.copy_from(&mut out[at..at + p.len()], p);
            at += p.len();
        }
        assert_eq!(c.finish(), naive_checksum(&whole), "pieces {pieces:?}");
        assert_eq!(out, whole);
    }
}

#[test]
#[should_panic(expected = "length mismatch")]
fn copy_from_refuses_unequal_lengths() {
    Checksum::new().copy_from(&mut [0u8; 3], &[1, 2]);
}

#[test]
fn emitted_segments_carry_the_rfc1071_checksum_for_random_payloads() {
    let mut rng = SmallRng::seed_from_u64(6);
    for len in (0..=1500).step_by(7).chain([65_495]) {
        let payload = random_bytes(&mut rng, len);
        for (src, dst) in [(V4_SRC, V4_DST), (V6_SRC, V6_DST)] {
            let repr = sample_repr(&payload);
            let d = emit(src, dst, &repr);
            let tcp = &d[ip_header_len(src)..];
            let mut all = pseudo_header(src, dst, tcp.len());
            all.extend_from_slice(tcp);
            // A segment including its correct checksum sums to 0xffff: its complement is 0.
            assert_eq!(naive_checksum(&all), 0, "len {len} {src}");
            assert_eq!(parse_ip_tcp(&d).unwrap().tcp, repr);
        }
    }
}

#[test]
fn tx_offload_leaves_the_tcp_checksum_zero_and_rx_offload_skips_verification() {
    let payload = [9u8; 100];
    let repr = sample_repr(&payload);
    let mut buf = vec![0u8; 400];
    let n = emit_ip_tcp_into_with(V4_SRC, V4_DST, &repr, &mut buf, ChecksumOffload::ALL).unwrap();
    let d = &buf[..n];
    assert_eq!(
        &d[20 + 16..20 + 18],
        &[0, 0],
        "checksum field left for the device"
    );
    // The IPv4 header checksum is still ours to fill (as in Linux).
    assert!(Ipv4Packet::new_checked(d).unwrap().verify_checksum());
    assert_eq!(parse_ip_tcp(d), Err(Error::BadTcpChecksum));
    assert_eq!(
        parse_ip_tcp_with(d, ChecksumOffload::ALL).unwrap().tcp,
        repr
    );
    let mut rx_only = ChecksumOffload::NONE;
    rx_only.rx = true;
    assert_eq!(parse_ip_tcp_with(d, rx_only).unwrap().tcp, repr);
}
