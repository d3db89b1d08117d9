//! The Internet checksum (RFC 1071): the 16-bit one's-complement sum.
//!
//! Hand-written rather than taken from a crate because it runs over every byte of every
//! segment we send or receive (it is the per-packet hot path), and the crate must stay
//! dependency-free. Two properties of one's-complement addition (RFC 1071 §2) make it fast:
//!
//! - **Byte-order independence** (§2(B)): summing byte-swapped 16-bit words gives the
//!   byte-swapped sum. So we add the data as *native-endian* words (no per-word byte swap)
//!   and swap once at the end on little-endian machines.
//! - **Deferred carries** (§2(C)): since 2^16 ≡ 1 (mod 2^16 − 1), 32-bit words added into
//!   64-bit accumulators with plain integer adds give the same residue; the carries are
//!   folded back once at the end. Eight independent accumulators let the compiler
//!   vectorise the loop with baseline SSE2; on x86-64 with AVX2 (detected at run time)
//!   an explicit 256-bit loop doubles that again (see `avx2.rs`).
//!
//! [`Checksum`] is the running sum. It accepts pieces of any length at any offset: a piece
//! that starts at an odd offset of the whole contributes its byte-swapped sum (§2(B) again),
//! so checksumming split buffers equals checksumming their concatenation.
//! [`Checksum::copy_from`] copies and sums in one pass, for building frames and for copying
//! payload out of received ones.

use std::net::{IpAddr, Ipv6Addr};

#[cfg(target_arch = "x86_64")]
mod avx2;

/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;

/// Which TCP checksums a device computes and verifies for us, as Linux's ethtool offload
/// flags name them (`rx-checksumming`, `tx-checksumming`): `true` means the device does it,
/// so the stack skips it. The default, nothing offloaded, computes and verifies every
/// checksum. The IPv4 header checksum (20 bytes) is always computed and verified, as Linux
/// does in software.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ChecksumOffload {
    /// Received segments arrive already verified: parsing does not check the TCP checksum.
    pub rx: bool,
    /// The device fills the checksum of sent segments: emitting leaves the field zero.
    pub tx: bool,
}

impl ChecksumOffload {
    /// Both directions computed in software (the default).
    pub const NONE: ChecksumOffload = ChecksumOffload {
        rx: false,
        tx: false,
    };
    /// Both directions offloaded: no TCP checksum is computed or verified (for in-memory
    /// links and benchmarks; smoltcp's `ChecksumCapabilities::ignored()`).
    pub const ALL: ChecksumOffload = ChecksumOffload { rx: true, tx: true };
}

/// A running Internet checksum over a sequence of byte pieces.
///
/// ```
/// use tcpfsm_wire::checksum::{checksum, Checksum};
/// let data = b"odd-length pieces are fine";
/// let mut c = Checksum::new();
/// c.add(&data[..3]);
/// c.add(&data[3..]);
/// assert_eq!(c.finish(), checksum(data));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checksum {
    /// Sum of native-endian 16-bit words (RFC 1071 §2(B)), unfolded: each piece adds at
    /// most 2^33, so 2^31 pieces before this could overflow. Folding and the one byte swap
    /// wait for `sum()`, keeping a segment's several pieces off one long dependency chain.
    acc: u64,
    /// Whether an odd number of bytes has been added, i.e. the next byte is the low-order
    /// byte of a 16-bit word.
    odd: bool,
}

impl Checksum {
    pub const fn new() -> Checksum {
        Checksum { acc: 0, odd: false }
    }

    /// Adds the next `data.len()` bytes of the checksummed region.
    #[inline(always)]
    pub fn add(&mut self, data: &[u8]) {
        self.push(native_sum(data), data.len());
    }

    /// [`Checksum::add`] for a received TCP header: one carrying Timestamps alone (20 + 12
    /// bytes, nearly every segment from Linux or from us) is summed as eight words straight,
    /// where the loops for short pieces with their remainder dispatch took about 30
    /// instructions for it. Only the receive parser asks for this test.
    #[inline(always)]
    pub(crate) fn add_tcp_header(&mut self, header: &[u8]) {
        match <&[u8; 32]>::try_from(header) {
            Ok(h) => {
                let (a, b) = h.split_at(20);
                let raw =
                    portable::sum20(a.try_into().unwrap()) + portable::sum12(b.try_into().unwrap());
                self.push(raw, 32);
            }
            Err(_) => self.add(header),
        }
    }

    /// Copies `src` into `dst` and adds `src` to the sum, reading it once.
    ///
    /// # Panics
    /// When the lengths differ (like [`slice::copy_from_slice`]).
    #[inline(always)]
    pub fn copy_from(&mut self, dst: &mut [u8], src: &[u8]) {
        assert_eq!(dst.len(), src.len(), "Checksum::copy_from: length mismatch");
        // An empty piece adds nothing and keeps the parity; most segments bring one (a bare
        // ACK's payload, the second half of a payload that does not wrap the ring), and the
        // copy-and-sum call for it cost about 77 instructions. Tested here, inlined, so that
        // such a piece does not even enter the call (its saved registers were 20 more).
        if src.is_empty() {
            return;
        }
        self.copy_nonempty(dst, src);
    }

    #[inline(never)]
    fn copy_nonempty(&mut self, dst: &mut [u8], src: &[u8]) {
        self.push(copy_native_sum(dst, src), src.len());
    }

    /// Adds 16-bit words given as values (as they go on the wire, big-endian), e.g. header
    /// fields about to be written. Summing the values rather than reading back the bytes
    /// just stored avoids a load that spans several narrower stores: the CPU cannot forward
    /// such a load from its store buffer and stalls (it showed in the lifecycle profile).
    #[inline]
    pub fn add_words(&mut self, words: &[u16]) {
        // `to_be` gives each value's bytes read back in native order.
        let s: u64 = words.iter().map(|&w| w.to_be() as u64).sum();
        self.push(s, words.len() * 2);
    }

    /// Appends a checksum taken over the bytes that follow the ones already added.
    pub fn append(&mut self, next: Checksum) {
        // `next.acc` sums `next`'s bytes as if they started at an even offset.
        self.push_at_parity(next.acc);
        self.odd ^= next.odd;
    }

    /// The folded sum (not complemented): 0xffff when a region including its checksum
    /// field verifies.
    #[inline]
    pub fn sum(&self) -> u16 {
        native_to_be(fold(self.acc))
    }

    /// The value for a checksum field: the complement of the folded sum.
    #[inline]
    pub fn finish(&self) -> u16 {
        !self.sum()
    }

    /// Adds a native-endian piece sum (`raw`, unfolded) of `len` bytes.
    #[inline(always)]
    fn push(&mut self, raw: u64, len: usize) {
        self.push_at_parity(raw);
        self.odd ^= len & 1 == 1;
    }

    #[inline(always)]
    fn push_at_parity(&mut self, raw: u64) {
        if self.odd {
            // A piece starting at an odd offset has its words shifted by one byte: its
            // contribution is the byte-swapped sum (RFC 1071 §2(B)). Rare (callers split
            // at odd offsets only by choice), so the fold it needs stays off the fast path.
            self.acc += fold(raw).swap_bytes() as u64;
        } else {
            // 2^32 ≡ 1 (mod 2^16 - 1): folding the high half in keeps the residue.
            self.acc += (raw >> 32) + (raw & 0xffff_ffff);
        }
    }
}

/// The Internet checksum of `data` alone: the complement of its folded sum.
pub fn checksum(data: &[u8]) -> u16 {
    let mut c = Checksum::new();
    c.add(data);
    c.finish()
}

/// Whether `data` alone sums to 0xffff (a header that includes its checksum verifies), as
/// `Checksum::new()`, `add(data)`, `sum() == 0xffff` says, without the running sum's steps: the
/// piece's sum folded straight (4 instructions fewer on every IPv4 header received). 0xffff
/// is its own byte swap, so the fold of the native-endian words is compared as it is.
#[inline(always)]
pub(crate) fn verifies(data: &[u8]) -> bool {
    fold(native_sum(data)) == 0xffff
}

/// Running sum of the TCP/UDP pseudo-header.
///
/// IPv4 (RFC 9293 §3.1): src, dst, zero, protocol, 16-bit TCP length.
/// IPv6 (RFC 8200 §8.1): src, dst, 32-bit upper-layer length, 3 zero bytes, next header.
/// Mixed families cannot occur on the wire; callers reject them first, and here the IPv4
/// address is simply taken in its IPv6-mapped form. For IPv4 `len` must fit 16 bits (the IP
/// total length field does); only its low 16 bits are used.
///
/// Never inlined: inlined into `emit_ip_tcp_split`'s callers it made the bulk send path
/// about 13k instructions/MiB dearer, though bulk runs with checksums off.
#[inline(never)]
pub fn pseudo_header(src: IpAddr, dst: IpAddr, proto: u8, len: u32) -> Checksum {
    pseudo_header_inline(src, dst, proto, len)
}

/// [`pseudo_header`] inlined, for the receive parser: there the address family is known
/// where the addresses are read, so only the IPv4 arm (three adds) remains, where the call
/// with its two addresses copied out for it cost about 25 instructions a datagram.
#[inline(always)]
pub(crate) fn pseudo_header_inline(src: IpAddr, dst: IpAddr, proto: u8, len: u32) -> Checksum {
    let mut c = Checksum::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            // The 12 bytes taken as three native 32-bit words, as `add` sums any data: split
            // into six big-endian 16-bit words (each swapped back) it cost about 13 more
            // instructions, nine times per connection in the lifecycle profile.
            let ph = [0, proto, (len >> 8) as u8, len as u8];
            let raw = u32::from_ne_bytes(s.octets()) as u64
                + u32::from_ne_bytes(d.octets()) as u64
                + u32::from_ne_bytes(ph) as u64;
            c.push(raw, 12);
        }
        _ => {
            c.add_words(&to_v6(src).segments());
            c.add_words(&to_v6(dst).segments());
            c.add_words(&[(len >> 16) as u16, len as u16, 0, proto as u16]);
        }
    }
    c
}

fn to_v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Folds a sum of 16-bit values to 16 bits with end-around carry.
#[inline]
fn fold(acc: u64) -> u16 {
    // Two halvings, each adding the carry out back in (end-around carry, RFC 1071 §2(C)):
    // an add and an add-with-carry apiece, where four shift-and-add steps on the wide value
    // took about 16 instructions (a received datagram folds twice, a sent one twice).
    // Neither carry-in overflows: with a carry out the sum of the halves is at most
    // 2^33 - 2 (2^17 - 2), so its low half is at most 2^32 - 2 (2^16 - 2). Each step keeps
    // a nonzero sum nonzero, so the result is RFC 1071's (0xffff, never 0, for a nonzero
    // multiple of 0xffff).
    let (x, c) = (acc as u32).overflowing_add((acc >> 32) as u32);
    let x = x + c as u32;
    let (y, c) = (x as u16).overflowing_add((x >> 16) as u16);
    y + c as u16
}

/// Converts a fold of native-endian words to the big-endian sum RFC 1071 defines (§2(B)).
#[inline]
fn native_to_be(sum: u16) -> u16 {
    if cfg!(target_endian = "little") {
        sum.swap_bytes()
    } else {
        sum
    }
}

/// Below this many bytes the AVX2 loop's set-up and lane reduction cost more than they save.
#[cfg(target_arch = "x86_64")]
const AVX2_MIN_LEN: usize = 128;

/// Below this many bytes (headers, pseudo-headers) a plain inlined loop over 32-bit words
/// beats calling the unrolled kernels: parsing a bare ACK sums 20 + 12 + 32 bytes.
const SHORT_LEN: usize = 64;

/// The unfolded native-endian sum of `data`, as if it started at an even offset.
#[inline(always)]
fn native_sum(data: &[u8]) -> u64 {
    // An IPv4 header without options (verified on every datagram received) or a TCP header
    // without them: five words added straight, where the loops of `tail` took about 45
    // instructions for these 20 bytes.
    if let Ok(h) = <&[u8; 20]>::try_from(data) {
        return portable::sum20(h);
    }
    if data.len() < SHORT_LEN {
        return portable::tail(data);
    }
    long_native_sum(data)
}

#[inline(never)]
fn long_native_sum(data: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if data.len() >= AVX2_MIN_LEN && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { avx2::sum(data) };
    }
    portable::sum(data)
}

/// [`native_sum`] of `src` while copying it into `dst` (same length).
#[inline]
fn copy_native_sum(dst: &mut [u8], src: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if src.len() >= AVX2_MIN_LEN && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above); the lengths are equal (the
        // caller asserts it).
        return unsafe { avx2::copy_sum(dst, src) };
    }
    // Without explicit SIMD a fused loop defeats the vectoriser; copy, then sum the copy
    // while it is hot in L1.
    dst.copy_from_slice(src);
    native_sum(dst)
}

/// Safe, vectorisable fallback kernel.
mod portable {
    /// Unfolded sum of `data` as native-endian 32-bit words (the last one zero-padded on
    /// the right, which keeps every byte at its offset).
    pub(super) fn sum(data: &[u8]) -> u64 {
        // Each lane takes one u32 per 32-byte chunk, so 2^32 chunks (128 GiB) before a lane
        // could overflow; blocks of 1 GiB keep any slice length exact.
        const BLOCK: usize = 1 << 30;
        if data.len() <= BLOCK {
            return block_sum(data);
        }
        data.chunks(BLOCK)
            .map(|b| super::fold(block_sum(b)) as u64)
            .sum()
    }

    #[inline(always)]
    fn block_sum(data: &[u8]) -> u64 {
        let mut lanes = [0u64; 8];
        let mut chunks = data.chunks_exact(32);
        for c in &mut chunks {
            for (i, lane) in lanes.iter_mut().enumerate() {
                *lane += word(&c[i * 4..i * 4 + 4]) as u64;
            }
        }
        lanes.iter().sum::<u64>() + tail(chunks.remainder())
    }

    /// [`tail`] of exactly 20 bytes, unrolled.
    #[inline(always)]
    pub(super) fn sum20(h: &[u8; 20]) -> u64 {
        (word(&h[..4]) as u64 + word(&h[4..8]) as u64)
            + (word(&h[8..12]) as u64 + word(&h[12..16]) as u64)
            + word(&h[16..]) as u64
    }

    /// [`tail`] of exactly 12 bytes, unrolled.
    #[inline(always)]
    pub(super) fn sum12(h: &[u8; 12]) -> u64 {
        word(&h[..4]) as u64 + word(&h[4..8]) as u64 + word(&h[8..]) as u64
    }

    /// Unfolded sum of a short slice (the part after the last whole chunk): 32-bit
    /// words, the last zero-padded on the right.
    #[inline(always)]
    pub(super) fn tail(rest: &[u8]) -> u64 {
        let mut acc = 0u64;
        // Four words per step as a tree of adds, not one chain: headers are 20-60 bytes.
        let mut quads = rest.chunks_exact(16);
        for q in &mut quads {
            acc += (word(&q[..4]) as u64 + word(&q[4..8]) as u64)
                + (word(&q[8..12]) as u64 + word(&q[12..]) as u64);
        }
        let mut words = quads.remainder().chunks_exact(4);
        for w in &mut words {
            acc += word(w) as u64;
        }
        // Spelled out rather than copied into a padded array: a variable-length copy
        // becomes a memcpy call, which showed up on header-sized inputs.
        let pad = match *words.remainder() {
            [a] => [a, 0, 0, 0],
            [a, b] => [a, b, 0, 0],
            [a, b, c] => [a, b, c, 0],
            _ => [0; 4],
        };
        acc + u32::from_ne_bytes(pad) as u64
    }

    #[inline(always)]
    fn word(b: &[u8]) -> u32 {
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The next state of xorshift64 from `x`.
    fn xorshift(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// `n` pseudo-random bytes from the state `x`.
    fn xorshift_bytes(x: &mut u64, n: usize) -> Vec<u8> {
        (0..n).map(|_| xorshift(x) as u8).collect()
    }

    /// `verifies` says what the running sum says, on verifying and failing headers of
    /// every IPv4 length.
    #[test]
    fn verifies_agrees_with_the_running_sum() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in (20..=60).step_by(4) {
            for _ in 0..2000 {
                let mut h = xorshift_bytes(&mut x, len);
                if x & 1 == 0 {
                    h[10] = 0;
                    h[11] = 0;
                    let c = checksum(&h);
                    h[10..12].copy_from_slice(&c.to_be_bytes());
                }
                let mut c = Checksum::new();
                c.add(&h);
                assert_eq!(verifies(&h), c.sum() == 0xffff, "{h:02x?}");
            }
        }
        assert!(verifies(&[0xff; 20]) && !verifies(&[0; 20]));
    }

    /// `add_tcp_header` adds what `add` adds, for the 32-byte header it unrolls and the rest,
    /// after an even or an odd number of bytes.
    #[test]
    fn add_tcp_header_agrees_with_add() {
        let mut x = 0x853c_49e6_748f_ea9bu64;
        for len in [0, 1, 20, 24, 31, 32, 33, 40, 60] {
            for lead in [0usize, 1, 12] {
                let bytes = xorshift_bytes(&mut x, lead + len);
                let (mut a, mut b) = (Checksum::new(), Checksum::new());
                a.add(&bytes[..lead]);
                b.add(&bytes[..lead]);
                a.add(&bytes[lead..]);
                b.add_tcp_header(&bytes[lead..]);
                assert_eq!(a, b, "len {len} after {lead}");
            }
        }
    }

    /// `fold` against the plain shift-and-add folding it replaced, at the edges (zero,
    /// multiples of 0xffff, carries out of either half) and on a spread of values.
    #[test]
    fn fold_agrees_with_shift_and_add_folding() {
        fn plain(acc: u64) -> u16 {
            let x = (acc >> 32) + (acc & 0xffff_ffff);
            let x = (x >> 16) + (x & 0xffff);
            let x = (x >> 16) + (x & 0xffff);
            let x = (x >> 16) + (x & 0xffff);
            x as u16
        }
        let mut cases = vec![
            0,
            1,
            0xffff,
            0x1_0000,
            0xffff_ffff,
            0x1_0000_0000,
            0xffff_fffe_0001,
            0xffff_ffff_0000_0001,
            0xffff_ffff_ffff_ffff,
            0x8000_0000_8000_0000,
            0x0001_fffe,
            0xfffe_0001_ffff,
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            xorshift(&mut x);
            cases.extend([x, x >> 16, x >> 31, x & 0xffff_0000_ffff]);
        }
        for acc in cases {
            assert_eq!(fold(acc), plain(acc), "{acc:#x}");
        }
    }

    /// RFC 1071 §1's algorithm, word by word with the carry added back at every step.
    fn reference(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for w in data.chunks(2) {
            let word = ((w[0] as u32) << 8) | *w.get(1).unwrap_or(&0) as u32;
            sum += word;
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
        // xorshift64*: the kernels are private, so this test cannot borrow the integration
        // tests' RNG; the data only needs to be irregular.
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    }

    /// RFC 1071 §3's worked example: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
    #[test]
    fn rfc1071_example_sums_to_ddf2() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        let mut c = Checksum::new();
        c.add(&data);
        assert_eq!(c.sum(), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn portable_kernel_matches_rfc1071_for_every_length_and_alignment() {
        let buf = random_bytes(2048 + 8, 1);
        for off in 0..8 {
            for len in 0..=2048 {
                let d = &buf[off..off + len];
                assert_eq!(
                    native_to_be(fold(portable::sum(d))),
                    reference(d),
                    "len {len} offset {off}"
                );
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_kernels_match_rfc1071_for_every_length_and_alignment() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("SKIPPED: this CPU has no AVX2");
            return;
        }
        let buf = random_bytes(2048 + 8, 2);
        let mut out = vec![0u8; 2048 + 8];
        for off in 0..8 {
            for len in 0..=2048 {
                let d = &buf[off..off + len];
                // SAFETY: AVX2 is present (checked above).
                let s = native_to_be(fold(unsafe { avx2::sum(d) }));
                assert_eq!(s, reference(d), "sum len {len} offset {off}");
                // Destination at a different alignment from the source.
                let dst_off = 7 - off;
                out.fill(0xee);
                let dst = &mut out[dst_off..dst_off + len];
                // SAFETY: AVX2 is present; equal lengths.
                let s = native_to_be(fold(unsafe { avx2::copy_sum(dst, d) }));
                assert_eq!(s, reference(d), "copy_sum len {len} offset {off}");
                assert_eq!(&out[dst_off..dst_off + len], d, "copied bytes");
                assert!(
                    out[..dst_off].iter().all(|&b| b == 0xee),
                    "wrote before dst"
                );
                assert!(
                    out[dst_off + len..].iter().all(|&b| b == 0xee),
                    "wrote after dst"
                );
            }
        }
    }

    #[test]
    fn all_ones_data_does_not_overflow_and_folds() {
        let data = vec![0xffu8; 65535];
        assert_eq!(checksum(&data), !reference(&data));
    }

    /// A sum that is a nonzero multiple of 0xffff folds to 0xffff, never to 0 (one's
    /// complement has two zeros; a nonzero sum is "negative zero", as RFC 1071 computes).
    #[test]
    fn nonzero_multiple_of_ffff_folds_to_ffff_and_all_zero_to_zero() {
        let data = [0x12, 0x34, 0xed, 0xcb];
        assert_eq!(reference(&data), 0xffff);
        let mut c = Checksum::new();
        c.add(&data);
        assert_eq!(c.sum(), 0xffff);
        let mut z = Checksum::new();
        z.add(&[0u8; 300]);
        assert_eq!(z.sum(), 0);
    }
}
