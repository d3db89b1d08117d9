//! TIME_WAIT connections as compact records (RFC 9293 §3.6.1 "2 MSL").
//!
//! A connection entering TIME_WAIT has sent and received everything; all it must still do is
//! re-ACK a retransmitted FIN, hold its 4-tuple against reuse, and judge new SYNs by RFC 6191.
//! So it drops its buffers and connection state and keeps only what those duties need: 64
//! bytes with its key (Linux's `tcp_timewait_sock` is 248).
//!
//! Memory per record is what a million of them cost, so the table is built for it: records in
//! fixed-size chunks (no doubling waste), an index of 4-byte slot numbers hashed by the
//! records' own keys, and an expiry FIFO of 8-byte entries — every record lives 2×MSL from
//! its entry or last restart, so insertion order is expiry order and no heap is needed.

use crate::ratelimit::TinyStamp;
use crate::time::{Duration, Instant};
use crate::tuple::CompactTuple;
use crate::ConnHandle;
use hashbrown::HashTable;
use std::collections::VecDeque;

/// Expiry kept in milliseconds modulo 2^32 (49 days): TIME_WAIT lasts minutes, so a modular
/// comparison against "now" is unambiguous and the record stays small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeWaitRecord {
    pub(crate) key: CompactTuple,
    id: [u32; 2],
    pub(crate) rcv_nxt: u32,
    pub(crate) snd_nxt: u32,
    ts_recent: u32,
    /// Millisecond clock at which 2×MSL ends.
    expires_ms: u32,
    /// The window field of our last segment, repeated in re-ACKs.
    pub(crate) window: u16,
    flags: u8,
    /// RFC 5961 §7: the last out-of-window ACK.
    pub(crate) oow: TinyStamp,
}

const HAS_TIMESTAMPS: u8 = 1;
const LIVE: u8 = 2;

pub(crate) fn ms_clock(now: Instant) -> u32 {
    (now.as_micros() / 1000) as u32
}

impl TimeWaitRecord {
    pub(crate) fn new(
        key: CompactTuple,
        id: ConnHandle,
        rcv_nxt: u32,
        snd_nxt: u32,
        ts_recent: Option<u32>,
        window: u16,
        expires: Instant,
    ) -> TimeWaitRecord {
        let raw = id.id();
        TimeWaitRecord {
            key,
            id: [raw as u32, (raw >> 32) as u32],
            rcv_nxt,
            snd_nxt,
            ts_recent: ts_recent.unwrap_or(0),
            expires_ms: ms_clock(expires),
            window,
            flags: LIVE
                | if ts_recent.is_some() {
                    HAS_TIMESTAMPS
                } else {
                    0
                },
            oow: TinyStamp::default(),
        }
    }

    pub(crate) fn id(&self) -> ConnHandle {
        ConnHandle(self.id[0] as u64 | ((self.id[1] as u64) << 32))
    }

    pub(crate) fn ts_recent(&self) -> Option<u32> {
        (self.flags & HAS_TIMESTAMPS != 0).then_some(self.ts_recent)
    }

    pub(crate) fn set_ts_recent(&mut self, ts: u32) {
        if self.flags & HAS_TIMESTAMPS != 0 {
            self.ts_recent = ts;
        }
    }

    pub(crate) fn expired(&self, now: Instant) -> bool {
        (ms_clock(now).wrapping_sub(self.expires_ms) as i32) >= 0
    }

    /// Time until expiry (0 if expired).
    pub(crate) fn remaining(&self, now: Instant) -> Duration {
        let left = self.expires_ms.wrapping_sub(ms_clock(now)) as i32;
        Duration::from_millis(left.max(0) as u64)
    }

    fn live(&self) -> bool {
        self.flags & LIVE != 0
    }
}

/// Records per chunk: 256 KiB each.
const CHUNK: usize = 4096;

/// All TIME_WAIT records of an endpoint.
pub(crate) struct TimeWaitTable {
    chunks: Vec<Vec<TimeWaitRecord>>,
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: ahash::RandomState,
    /// `(slot, expiry)` in expiry order; an entry whose expiry no longer matches its slot's
    /// record (restarted, removed, reused) is skipped.
    order: VecDeque<(u32, u32)>,
    len: usize,
}

impl TimeWaitTable {
    pub(crate) fn new(hasher: ahash::RandomState) -> TimeWaitTable {
        TimeWaitTable {
            chunks: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            hasher,
            order: VecDeque::new(),
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn rec(&self, slot: u32) -> &TimeWaitRecord {
        &self.chunks[slot as usize / CHUNK][slot as usize % CHUNK]
    }

    fn rec_mut(&mut self, slot: u32) -> &mut TimeWaitRecord {
        &mut self.chunks[slot as usize / CHUNK][slot as usize % CHUNK]
    }

    fn hash(&self, key: &CompactTuple) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The slot of the record for `key`.
    pub(crate) fn find(&self, key: &CompactTuple) -> Option<u32> {
        let h = self.hash(key);
        self.index.find(h, |&s| self.rec(s).key == *key).copied()
    }

    pub(crate) fn get(&self, slot: u32) -> &TimeWaitRecord {
        self.rec(slot)
    }

    pub(crate) fn get_mut(&mut self, slot: u32) -> &mut TimeWaitRecord {
        self.rec_mut(slot)
    }

    pub(crate) fn insert(&mut self, r: TimeWaitRecord) -> u32 {
        let slot = match self.free.pop() {
            Some(s) => {
                *self.rec_mut(s) = r;
                s
            }
            None => {
                if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
                    self.chunks.push(Vec::with_capacity(CHUNK));
                }
                let ci = self.chunks.len() - 1;
                let slot = (ci * CHUNK + self.chunks[ci].len()) as u32;
                self.chunks[ci].push(r);
                slot
            }
        };
        let h = self.hash(&r.key);
        let (chunks, hasher) = (&self.chunks, &self.hasher);
        self.index.insert_unique(h, slot, |&s| {
            hasher.hash_one(chunks[s as usize / CHUNK][s as usize % CHUNK].key)
        });
        self.order.push_back((slot, r.expires_ms));
        self.len += 1;
        slot
    }

    /// RFC 9293 §3.10.7.4: a retransmitted FIN restarts the 2 MSL timeout.
    pub(crate) fn restart(&mut self, slot: u32, expires: Instant) {
        let e = ms_clock(expires);
        self.rec_mut(slot).expires_ms = e;
        self.order.push_back((slot, e));
    }

    /// Removes a record early (RFC 6191 reopen, tw_reuse, RST) or at expiry.
    pub(crate) fn remove(&mut self, slot: u32) -> TimeWaitRecord {
        let r = *self.rec(slot);
        let h = self.hash(&r.key);
        if let Ok(e) = self.index.find_entry(h, |&s| s == slot) {
            e.remove();
        }
        self.rec_mut(slot).flags &= !LIVE;
        self.free.push(slot);
        self.len -= 1;
        if self.len == 0 {
            self.empty_out();
        }
        r
    }

    /// The last record left. An idle table gives its memory back after a burst (a million
    /// records are 64 MiB), but keeps one chunk and the index and FIFO that size needs, cleared:
    /// one connection at a time would otherwise allocate and free a 256 KiB chunk, the index
    /// and the FIFO for each TIME_WAIT (four allocations, and fresh pages to fault in, per
    /// connection in the lifecycle benchmark). Slots restart at 0 either way.
    fn empty_out(&mut self) {
        let small = self.chunks.len() <= 1
            && self.index.capacity() <= CHUNK
            && self.order.capacity() <= CHUNK
            && self.free.capacity() <= CHUNK;
        if !small {
            *self = TimeWaitTable::new(self.hasher.clone());
            return;
        }
        if let Some(c) = self.chunks.first_mut() {
            c.clear();
        }
        self.free.clear();
        self.index.clear();
        self.order.clear();
    }

    fn is_live(&self, (slot, expires): (u32, u32)) -> bool {
        let r = self.rec(slot);
        r.live() && r.expires_ms == expires
    }

    /// The earliest expiry of a live record.
    pub(crate) fn next_deadline(&self, now: Instant) -> Option<Instant> {
        self.order
            .iter()
            .find(|&&e| self.is_live(e))
            .map(|&(s, _)| now + self.rec(s).remaining(now))
    }

    /// Removes and returns the earliest record whose 2×MSL has run out, if any: one at a time,
    /// so that expiring needs no list (an allocation on each `handle_timeout` that expires).
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<TimeWaitRecord> {
        while let Some(&entry) = self.order.front() {
            if !self.is_live(entry) {
                self.order.pop_front();
                continue;
            }
            if !self.rec(entry.0).expired(now) {
                return None;
            }
            self.order.pop_front();
            return Some(self.remove(entry.0));
        }
        None
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &TimeWaitRecord> {
        self.chunks.iter().flatten().filter(|r| r.live())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FourTuple;

    fn record(port: u16, expires_ms: u64) -> TimeWaitRecord {
        let t = FourTuple {
            local: "10.0.0.1:80".parse().unwrap(),
            remote: std::net::SocketAddr::new("10.0.0.2".parse().unwrap(), port),
        };
        let at = Instant::from_micros(expires_ms * 1000);
        TimeWaitRecord::new(
            CompactTuple::new(&t),
            ConnHandle(port as u64),
            1,
            2,
            None,
            3,
            at,
        )
    }

    fn table() -> TimeWaitTable {
        TimeWaitTable::new(ahash::RandomState::with_seeds(1, 2, 3, 4))
    }

    #[test]
    fn one_record_at_a_time_reuses_the_storage_and_behaves_as_a_fresh_table() {
        let mut t = table();
        for port in 1..100u16 {
            let r = record(port, 10);
            let slot = t.insert(r);
            assert_eq!(slot, 0, "slots restart at 0 as in a fresh table");
            assert_eq!(t.find(&r.key), Some(0));
            assert_eq!(t.find(&record(port + 1, 10).key), None);
            let at = Instant::from_micros(10_000);
            assert_eq!(t.pop_expired(at), Some(r));
            assert_eq!(t.pop_expired(at), None);
            assert_eq!((t.len(), t.find(&r.key)), (0, None));
            assert_eq!(t.next_deadline(Instant::ZERO), None);
            // The one chunk is kept, cleared.
            assert_eq!(t.chunks.len(), 1);
            assert_eq!(t.chunks[0].capacity(), CHUNK);
        }
    }

    #[test]
    fn an_emptied_table_gives_a_burst_s_memory_back() {
        let mut t = table();
        let n = CHUNK + 1;
        for i in 0..n {
            t.insert(record(i as u16 + 1, 10));
        }
        assert_eq!(t.chunks.len(), 2);
        let at = Instant::from_micros(10_000);
        let expired = std::iter::from_fn(|| t.pop_expired(at)).count();
        assert_eq!((expired, t.len()), (n, 0));
        assert_eq!(t.chunks.len(), 0);
        assert_eq!((t.index.capacity(), t.order.capacity()), (0, 0));
    }
}
