//! A byte ring for a connection's send and receive buffers.
//!
//! Storage grows on demand (doubling, up to the socket buffer size) so that an idle connection
//! costs no buffer memory, and never moves data during steady operation. Besides appending at
//! the tail, bytes may be written *beyond* the tail (out-of-order data, RFC 9293 §3.10.7.4
//! "segment text" kept until the hole fills) and later made part of the filled region by
//! [`Ring::extend_filled`] — the reassembler keeps track of which ranges are there.

use crate::wire::checksum::Checksum;

#[derive(Debug, Default)]
pub(crate) struct Ring {
    buf: Vec<u8>,
    /// Index of the first filled byte. (`u32`s: a socket buffer is at most 1 GiB, and every
    /// connection carries two rings.)
    head: u32,
    /// Filled bytes, from `head`.
    len: u32,
    /// The most the ring may ever hold (the socket buffer size).
    max: u32,
}

/// Smallest storage allocated at first use: one typical segment plus headroom.
const MIN_ALLOC: usize = 2048;

/// Largest storage a new connection takes over from a finished one (see [`Ring::adopt`]):
/// what a short connection grew to, so kept connections hold little memory.
const ADOPT_MAX: usize = 16 * 1024;

impl Ring {
    pub(crate) fn new(max: usize) -> Ring {
        Ring {
            buf: Vec::new(),
            head: 0,
            len: 0,
            max: max.clamp(1, u32::MAX as usize) as u32,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn max(&self) -> usize {
        self.max as usize
    }

    /// Room left before the ring holds `max` bytes.
    pub(crate) fn free(&self) -> usize {
        self.max.saturating_sub(self.len) as usize
    }

    /// A new limit; never below what is already held (the data stays).
    pub(crate) fn set_max(&mut self, max: usize) {
        self.max = (max.clamp(1, u32::MAX as usize) as u32).max(self.len);
    }

    /// Makes the storage hold at least `need` bytes from `head`, keeping every byte that was
    /// stored (filled or written beyond the tail) at its logical offset.
    ///
    /// The test inlined, the growth not: as a call the test alone cost about 20 instructions
    /// on every segment received (storage grows a few times per connection at most).
    #[inline(always)]
    fn reserve(&mut self, need: usize) {
        if need > self.buf.len() {
            self.grow(need);
        }
    }

    #[inline(never)]
    fn grow(&mut self, need: usize) {
        let cap = self.buf.len();
        let new_cap = need.next_power_of_two().max(MIN_ALLOC);
        let mut nb = vec![0u8; new_cap];
        if cap > 0 {
            let (a, b) = self.buf.split_at(self.head as usize);
            nb[..b.len()].copy_from_slice(b);
            nb[b.len()..cap].copy_from_slice(a);
        }
        self.buf = nb;
        self.head = 0;
    }

    fn pos(&self, off: usize) -> usize {
        let cap = self.buf.len();
        let p = self.head as usize + off;
        if p >= cap {
            p - cap
        } else {
            p
        }
    }

    /// Copies `data` to logical offset `off` (from the first filled byte). Bytes at or beyond
    /// the tail do not become filled: see [`Ring::extend_filled`]. Returns how many fitted
    /// under `max`.
    pub(crate) fn write_at(&mut self, off: usize, data: &[u8]) -> usize {
        let n = data.len().min((self.max as usize).saturating_sub(off));
        if n == 0 {
            return 0;
        }
        self.reserve(off + n);
        let cap = self.buf.len();
        let p = self.pos(off);
        let first = n.min(cap - p);
        self.buf[p..p + first].copy_from_slice(&data[..first]);
        // Most writes do not wrap; an empty copy would still be a call into `memcpy`.
        if first < n {
            self.buf[..n - first].copy_from_slice(&data[first..n]);
        }
        n
    }

    /// Copies `data` just beyond the tail, adding it to `sum` as it goes (one pass over the
    /// bytes for the copy and the checksum), without filling it: commit with
    /// [`Ring::extend_filled`]. The caller makes sure it fits (`data.len() <= free()`).
    pub(crate) fn stage_summed(&mut self, data: &[u8], sum: &mut Checksum) {
        let n = data.len();
        debug_assert!(n <= self.free());
        self.reserve(self.len as usize + n);
        let cap = self.buf.len();
        let p = self.pos(self.len as usize);
        let first = n.min(cap - p);
        sum.copy_from(&mut self.buf[p..p + first], &data[..first]);
        sum.copy_from(&mut self.buf[..n - first], &data[first..]);
    }

    /// Appends at the tail; returns how much fitted.
    pub(crate) fn push(&mut self, data: &[u8]) -> usize {
        self.push_inlined(data)
    }

    /// [`Ring::push`], always inlined: for the receive side's in-order text, where the call
    /// (registers saved around the copy) cost about 15 of its 55 instructions a segment.
    /// Other callers keep the call, which is smaller code where it does not pay.
    #[inline(always)]
    pub(crate) fn push_inlined(&mut self, data: &[u8]) -> usize {
        let n = self.write_at(self.len as usize, data);
        self.len += n as u32;
        n
    }

    /// The bytes already written beyond the tail become filled.
    pub(crate) fn extend_filled(&mut self, n: usize) {
        debug_assert!(self.len as usize + n <= self.buf.len());
        self.len += n as u32;
    }

    /// The free space after the tail as one contiguous slice of at most `want` bytes (for
    /// zero-copy writes); commit what was written with [`Ring::extend_filled`].
    pub(crate) fn tail_mut(&mut self, want: usize) -> &mut [u8] {
        let n = want.min(self.free());
        if n == 0 {
            return &mut [];
        }
        self.reserve(self.len as usize + n);
        let cap = self.buf.len();
        let p = self.pos(self.len as usize);
        let contiguous = n.min(cap - p);
        &mut self.buf[p..p + contiguous]
    }

    /// The filled bytes `[off, off + len)` as at most two slices.
    pub(crate) fn slices(&self, off: usize, len: usize) -> (&[u8], &[u8]) {
        debug_assert!(off + len <= self.len as usize);
        if len == 0 {
            return (&[], &[]);
        }
        let cap = self.buf.len();
        let p = self.pos(off);
        let first = len.min(cap - p);
        (&self.buf[p..p + first], &self.buf[..len - first])
    }

    /// The first contiguous run of filled bytes.
    pub(crate) fn front(&self) -> &[u8] {
        self.slices(0, self.len as usize).0
    }

    /// Copies filled bytes from offset 0 into `out`; returns how many.
    pub(crate) fn peek(&self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len as usize);
        let (a, b) = self.slices(0, n);
        out[..a.len()].copy_from_slice(a);
        out[a.len()..n].copy_from_slice(b);
        n
    }

    /// Drops `n` bytes from the front.
    pub(crate) fn consume(&mut self, n: usize) {
        let n = n.min(self.len as usize);
        if n == 0 {
            return;
        }
        // Bytes written beyond the tail keep their logical offset relative to the new head.
        self.head = self.pos(n) as u32;
        self.len -= n as u32;
    }

    /// Releases all storage (the connection is done with this direction).
    pub(crate) fn release(&mut self) {
        *self = Ring::new(self.max as usize);
    }

    /// Drops every byte, filled or written beyond the tail, and keeps the storage.
    pub(crate) fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }

    /// A finished ring about to be kept for a new connection: storage too large to adopt goes
    /// now, so kept connections hold little memory.
    pub(crate) fn trim_for_reuse(&mut self) {
        if self.buf.len() > ADOPT_MAX {
            self.buf = Vec::new();
        }
    }

    /// Takes a finished ring's storage for this unused one, if it is small (at most
    /// [`ADOPT_MAX`]) and no larger than this ring could grow to: its old bytes are never read,
    /// as only what is written here becomes filled.
    pub(crate) fn adopt(&mut self, old: &mut Ring) {
        let cap = old.buf.len();
        let most = (self.max as usize).next_power_of_two().max(MIN_ALLOC);
        if self.buf.is_empty() && self.len == 0 && cap <= ADOPT_MAX && cap <= most {
            self.buf = std::mem::take(&mut old.buf);
            self.head = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_grows_keeping_order() {
        let mut r = Ring::new(10_000);
        let data: Vec<u8> = (0..7000u32).map(|i| i as u8).collect();
        assert_eq!(r.push(&data[..1500]), 1500);
        r.consume(1000);
        assert_eq!(r.push(&data[1500..7000]), 5500);
        let (a, b) = r.slices(0, r.len());
        let got: Vec<u8> = a.iter().chain(b).copied().collect();
        assert_eq!(got, &data[1000..7000]);
    }

    #[test]
    fn bytes_written_beyond_the_tail_survive_growth() {
        let mut r = Ring::new(100_000);
        r.push(b"abc");
        r.write_at(10, b"XYZ");
        let mut big = vec![7u8; 5000];
        r.write_at(20, &big);
        r.write_at(3, b"defghij");
        r.extend_filled(7 + 3);
        let mut out = [0u8; 13];
        assert_eq!(r.peek(&mut out), 13);
        assert_eq!(&out, b"abcdefghijXYZ");
        big.clear();
    }

    #[test]
    fn never_exceeds_max() {
        let mut r = Ring::new(100);
        assert_eq!(r.push(&[1u8; 150]), 100);
        assert_eq!(r.free(), 0);
        assert_eq!(r.write_at(90, &[2u8; 20]), 10);
        assert!(r.tail_mut(10).is_empty());
    }

    #[test]
    fn tail_mut_is_contiguous_and_commits() {
        let mut r = Ring::new(4096);
        r.push(&[0u8; 2000]);
        r.consume(2000);
        let t = r.tail_mut(3000);
        let n = t.len();
        t.fill(9);
        r.extend_filled(n);
        assert_eq!(r.len(), n);
        assert!(r.front().iter().all(|&b| b == 9));
    }
}
