//! The Internet checksum (RFC 1071): 16-bit one's-complement sum.
//!
//! Hand-written rather than taken from a crate because it runs over every
//! byte of every segment we send or receive (it is the per-packet hot path),
//! and the crate must stay dependency-free. The trick that makes it fast:
//! one's-complement addition is end-around-carry addition, and since
//! 2^16 ≡ 1 (mod 2^16 - 1) we may add big-endian 32-bit words into a 64-bit
//! accumulator with ordinary integer adds and fold the high halves back in at
//! the end. That is 4 bytes per add instead of 2 with no per-step carry
//! handling; the loop over fixed-size chunks auto-vectorises well.

use std::net::IpAddr;

/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;

/// Adds `data` (taken as big-endian 16-bit words, an odd final byte padded
/// with zero on the right, RFC 1071 §1) to the running sum `acc`.
///
/// Only call this with an odd-length slice as the *last* piece of a
/// checksummed region: a further piece would otherwise be misaligned.
#[inline]
pub fn add(mut acc: u64, data: &[u8]) -> u64 {
    // 16 bytes per iteration: four u32 adds into u64 cannot overflow until
    // 2^32 iterations, far beyond any IP datagram.
    let mut chunks = data.chunks_exact(16);
    for c in &mut chunks {
        acc += u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64
            + u32::from_be_bytes([c[4], c[5], c[6], c[7]]) as u64
            + u32::from_be_bytes([c[8], c[9], c[10], c[11]]) as u64
            + u32::from_be_bytes([c[12], c[13], c[14], c[15]]) as u64;
    }
    let rest = chunks.remainder();
    let mut words = rest.chunks_exact(2);
    for w in &mut words {
        acc += u16::from_be_bytes([w[0], w[1]]) as u64;
    }
    if let [last] = words.remainder() {
        acc += (*last as u64) << 8;
    }
    acc
}

/// Folds a running sum to 16 bits with end-around carry (not complemented).
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The Internet checksum of `data` alone: the complement of the folded sum.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(add(0, data))
}

/// Running sum of the TCP/UDP pseudo-header.
///
/// IPv4 (RFC 9293 §3.1): src, dst, zero, protocol, 16-bit TCP length.
/// IPv6 (RFC 8200 §8.1): src, dst, 32-bit upper-layer length, 3 zero bytes, next header.
/// Mixed families cannot occur on the wire; callers reject them first, and
/// here the IPv4 address is simply taken in its IPv6-mapped form.
pub fn pseudo_header(src: IpAddr, dst: IpAddr, proto: u8, len: u32) -> u64 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut acc = add(0, &s.octets());
            acc = add(acc, &d.octets());
            // Adding `len` whole equals adding its 16-bit field (callers never
            // pass more than 65535 for IPv4: the IP length field is 16 bits).
            acc + proto as u64 + len as u64
        }
        _ => {
            let s = to_v6(src);
            let d = to_v6(dst);
            let mut acc = add(0, &s);
            acc = add(acc, &d);
            acc + (len >> 16) as u64 + (len & 0xffff) as u64 + proto as u64
        }
    }
}

fn to_v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 §3's worked example: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
    #[test]
    fn rfc1071_example_sums_to_ddf2() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(add(0, &data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    /// Naive reference: 16 bits at a time with end-around carry each step.
    fn naive(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        let mut i = 0;
        while i < data.len() {
            let hi = data[i] as u32;
            let lo = if i + 1 < data.len() {
                data[i + 1] as u32
            } else {
                0
            };
            sum += (hi << 8) | lo;
            sum = (sum & 0xffff) + (sum >> 16);
            i += 2;
        }
        !(sum as u16)
    }

    #[test]
    fn fast_sum_matches_naive_for_every_length_up_to_100() {
        let data: Vec<u8> = (0..100u32).map(|i| (i * 151 + 7) as u8 | 0x80).collect();
        for n in 0..=data.len() {
            assert_eq!(checksum(&data[..n]), naive(&data[..n]), "len {n}");
        }
    }

    #[test]
    fn all_ones_data_does_not_overflow_and_folds() {
        let data = vec![0xffu8; 65535];
        assert_eq!(checksum(&data), naive(&data));
    }
}
