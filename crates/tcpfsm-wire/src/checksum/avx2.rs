//! AVX2 checksum kernels (x86-64), chosen at run time by `is_x86_feature_detected!`.
//!
//! Why `unsafe` and explicit intrinsics: the binary targets baseline x86-64 (SSE2), where the
//! portable loop peaks at about half of what 256-bit registers sum per cycle, and the fused
//! copy-and-sum loop does not vectorise at all without them (measured: 9 GB/s portable vs
//! 56 GB/s here on 1460-byte payloads). Written with intrinsics rather than by compiling the
//! portable loop under `#[target_feature]` so the speed does not hinge on the vectoriser.
//!
//! Each 32-byte load is split into the low and high 32-bit halves of its four 64-bit lanes
//! (mask and shift), added into 64-bit accumulators: the native-endian 32-bit word sum of
//! the portable kernel, so both fold the same way. A lane takes one u32 per 64-byte step,
//! far from overflow within a block of `BLOCK` bytes (see `reduce`).

use std::arch::x86_64::*;

use super::portable;

/// The most bytes one pass sums before `reduce` (see there); longer slices go in blocks,
/// each folded (an even length, so every block starts at an even offset). Unit tests use
/// 1 KiB blocks, so that their slices (to 2 KiB) take the blocked path too.
const BLOCK: usize = if cfg!(test) { 1 << 10 } else { 1 << 30 };

/// Unfolded native-endian sum of `data` (see `portable::sum`).
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn sum(data: &[u8]) -> u64 {
    if data.len() > BLOCK {
        // SAFETY: as for this call.
        return data
            .chunks(BLOCK)
            .map(|b| super::fold(unsafe { sum(b) }) as u64)
            .sum();
    }
    let lo32 = _mm256_set1_epi64x(0xffff_ffff);
    let mut acc = [_mm256_setzero_si256(); 4];
    let mut chunks = data.chunks_exact(64);
    for c in &mut chunks {
        let p = c.as_ptr() as *const __m256i;
        // SAFETY: `c` is 64 readable bytes; loadu has no alignment requirement.
        let (a, b) = unsafe { (_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1))) };
        add_halves(&mut acc, a, b, lo32);
    }
    reduce(acc) + portable::tail(chunks.remainder())
}

/// Copies `src` into `dst` and returns the unfolded native-endian sum of `src`.
///
/// # Safety
/// The CPU must support AVX2, and `dst.len() == src.len()`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn copy_sum(dst: &mut [u8], src: &[u8]) -> u64 {
    debug_assert_eq!(dst.len(), src.len());
    if src.len() > BLOCK {
        // SAFETY: as for this call (equal chunking of equal lengths).
        return dst
            .chunks_mut(BLOCK)
            .zip(src.chunks(BLOCK))
            .map(|(d, s)| super::fold(unsafe { copy_sum(d, s) }) as u64)
            .sum();
    }
    let lo32 = _mm256_set1_epi64x(0xffff_ffff);
    let mut acc = [_mm256_setzero_si256(); 4];
    let n = src.len();
    // 128 bytes a turn: the loop's own counting and branching is a sixth of a 64-byte turn.
    let mut dc = dst.chunks_exact_mut(128);
    let mut sc = src.chunks_exact(128);
    for (d, s) in (&mut dc).zip(&mut sc) {
        // SAFETY: `s` is 128 readable and `d` 128 writable bytes (equal chunking of equal
        // lengths).
        unsafe {
            copy_add64(&mut acc, s.as_ptr(), d.as_mut_ptr(), lo32);
            copy_add64(&mut acc, s.as_ptr().add(64), d.as_mut_ptr().add(64), lo32);
        }
    }
    let (mut d, mut s) = (dc.into_remainder(), sc.remainder());
    if s.len() >= 64 {
        // SAFETY: both are at least 64 bytes long (equal lengths).
        unsafe { copy_add64(&mut acc, s.as_ptr(), d.as_mut_ptr(), lo32) };
        (d, s) = (&mut d[64..], &s[64..]);
    }
    let rest = portable::tail(s);
    if n >= 64 {
        // The last bytes (under 64) by copying the slice's last 64 bytes again, over bytes
        // just stored with the same values: two loads and two stores instead of a call to
        // memcpy (which also spilled the accumulators).
        // SAFETY: `src` and `dst` are `n >= 64` bytes long.
        unsafe {
            let sp = src.as_ptr().add(n - 64) as *const __m256i;
            let dp = dst.as_mut_ptr().add(n - 64) as *mut __m256i;
            let (a, b) = (_mm256_loadu_si256(sp), _mm256_loadu_si256(sp.add(1)));
            _mm256_storeu_si256(dp, a);
            _mm256_storeu_si256(dp.add(1), b);
        }
    } else {
        d.copy_from_slice(s);
    }
    reduce(acc) + rest
}

/// Copies the 64 bytes at `sp` to `dp` and adds them to `acc` (see `add_halves`).
///
/// # Safety
/// `sp` must be 64 readable bytes and `dp` 64 writable ones (AVX2 present: only inlined
/// into `copy_sum`).
#[inline(always)]
unsafe fn copy_add64(acc: &mut [__m256i; 4], sp: *const u8, dp: *mut u8, lo32: __m256i) {
    let (sp, dp) = (sp as *const __m256i, dp as *mut __m256i);
    // SAFETY: the caller's; loadu/storeu have no alignment requirement.
    let (a, b) = unsafe {
        let a = _mm256_loadu_si256(sp);
        let b = _mm256_loadu_si256(sp.add(1));
        _mm256_storeu_si256(dp, a);
        _mm256_storeu_si256(dp.add(1), b);
        (a, b)
    };
    add_halves(acc, a, b, lo32);
}

#[inline(always)]
fn add_halves(acc: &mut [__m256i; 4], a: __m256i, b: __m256i, lo32: __m256i) {
    // SAFETY: register-only AVX2 arithmetic; only inlined into the AVX2 functions above.
    unsafe {
        acc[0] = _mm256_add_epi64(acc[0], _mm256_and_si256(a, lo32));
        acc[1] = _mm256_add_epi64(acc[1], _mm256_srli_epi64::<32>(a));
        acc[2] = _mm256_add_epi64(acc[2], _mm256_and_si256(b, lo32));
        acc[3] = _mm256_add_epi64(acc[3], _mm256_srli_epi64::<32>(b));
    }
}

/// Sum of the 16 u64 lanes: the four accumulators added lane by lane, then the four lanes
/// folded and added. Each lane holds less than 2^32 per 64-byte step, so four of them less
/// than 2^34 per step: exact below 2^30 steps (64 GiB), and the callers hand over at most
/// `BLOCK` bytes at a time. Folding all sixteen lanes one by one cost about 25 more
/// instructions per call (two calls per bulk segment: sending and receiving it).
#[inline(always)]
fn reduce(acc: [__m256i; 4]) -> u64 {
    // SAFETY: register-only AVX2 arithmetic, then a store to 32 writable bytes (storeu has
    // no alignment requirement); only inlined into the AVX2 functions above.
    let lanes = unsafe {
        let v = _mm256_add_epi64(
            _mm256_add_epi64(acc[0], acc[1]),
            _mm256_add_epi64(acc[2], acc[3]),
        );
        let mut lanes = [0u64; 4];
        _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, v);
        lanes
    };
    lanes.iter().map(|&l| super::fold(l) as u64).sum()
}
