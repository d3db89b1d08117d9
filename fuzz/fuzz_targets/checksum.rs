//! Fuzz the Internet checksum: on any bytes, split anywhere, at any alignment, the fast
//! kernels (AVX2 when the CPU has it, the portable loop otherwise) must give RFC 1071's
//! result, `Checksum` over the pieces must equal the whole, and `copy_from` must copy exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tcpfsm_wire::checksum::{checksum, Checksum};

/// RFC 1071 §1, word by word with the end-around carry at every step.
fn reference(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for w in data.chunks(2) {
        sum += ((w[0] as u32) << 8) | *w.get(1).unwrap_or(&0) as u32;
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fuzz_target!(|input: &[u8]| {
    // First byte: alignment offset of the data; next two: split points (as fractions).
    let [off, a, b, rest @ ..] = input else { return };
    let off = (*off as usize) % 8;
    let mut padded = vec![0u8; off];
    padded.extend_from_slice(rest);
    let data = &padded[off..];
    let expect = reference(data);
    assert_eq!(checksum(data), expect);

    let (x, y) = (
        data.len() * *a as usize / 255,
        data.len() * *b as usize / 255,
    );
    let (lo, hi) = (x.min(y), x.max(y));
    let mut c = Checksum::new();
    c.add(&data[..lo]);
    let mut out = vec![0u8; hi - lo];
    c.copy_from(&mut out, &data[lo..hi]);
    assert_eq!(out, &data[lo..hi]);
    let mut tail = Checksum::new();
    tail.add(&data[hi..]);
    c.append(tail);
    assert_eq!(c.finish(), expect);
});
