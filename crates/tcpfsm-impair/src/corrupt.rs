//! The corruption stage: one flipped bit past the IP header.

/// Flips one bit of the transport header or payload of an IP datagram (not of the IP header:
/// a flipped TTL or DSCP bit would pass unnoticed, while every single-bit error inside TCP's,
/// UDP's or ICMP's checksum coverage is caught by the one's-complement sum, RFC 1071 §2).
/// A buffer that is not IPv4/IPv6 has any of its bits flipped. `pick` chooses the bit.
/// Returns false when there is nothing past the IP header to flip.
pub(crate) fn flip_bit(bytes: &mut [u8], pick: u64) -> bool {
    let start = match bytes.first().map(|b| b >> 4) {
        Some(4) => usize::from(bytes[0] & 0x0f) * 4,
        Some(6) => 40,
        _ => 0,
    };
    if bytes.len() <= start {
        return false;
    }
    let span = (bytes.len() - start) as u64 * 8;
    let bit = pick % span;
    bytes[start + (bit / 8) as usize] ^= 1 << (bit % 8);
    true
}
