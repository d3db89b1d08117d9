//! TIME_WAIT connections as compact records (RFC 9293 §3.6.1 "2 MSL").
//!
//! A connection entering TIME_WAIT has sent and received everything; all it must still do is
//! re-ACK a retransmitted FIN, hold its 4-tuple against reuse, and judge new SYNs by RFC 6191.
//! So it drops its buffers and TCB and keeps only what those duties need: 28 bytes beside its
//! 36-byte key, 64 in all (Linux's `tcp_timewait_sock` is 248 bytes).

use crate::endpoint::{tuple_map, TupleMap};
use crate::time::{Duration, Instant};
use crate::tuple::CompactTuple;
use crate::ConnHandle;
use std::collections::VecDeque;

/// Expiry kept in milliseconds modulo 2^32 (49 days): TIME_WAIT lasts minutes, so a modular
/// comparison against "now" is unambiguous and the record stays small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeWaitRecord {
    id: [u32; 2],
    pub(crate) rcv_nxt: u32,
    pub(crate) snd_nxt: u32,
    pub(crate) ts_recent: u32,
    /// Millisecond clock at which 2×MSL ends.
    expires_ms: u32,
    /// The window field of our last segment, repeated in re-ACKs.
    pub(crate) window: u16,
    flags: u8,
}

const HAS_TIMESTAMPS: u8 = 1;

pub(crate) fn ms_clock(now: Instant) -> u32 {
    (now.as_micros() / 1000) as u32
}

impl TimeWaitRecord {
    pub(crate) fn new(
        id: ConnHandle,
        rcv_nxt: u32,
        snd_nxt: u32,
        ts_recent: Option<u32>,
        window: u16,
        expires: Instant,
    ) -> TimeWaitRecord {
        TimeWaitRecord {
            id: [id.0 as u32, (id.0 >> 32) as u32],
            rcv_nxt,
            snd_nxt,
            ts_recent: ts_recent.unwrap_or(0),
            expires_ms: ms_clock(expires),
            window,
            flags: if ts_recent.is_some() {
                HAS_TIMESTAMPS
            } else {
                0
            },
        }
    }

    pub(crate) fn id(&self) -> ConnHandle {
        ConnHandle(self.id[0] as u64 | ((self.id[1] as u64) << 32))
    }

    pub(crate) fn ts_recent(&self) -> Option<u32> {
        (self.flags & HAS_TIMESTAMPS != 0).then_some(self.ts_recent)
    }

    pub(crate) fn expired(&self, now: Instant) -> bool {
        (ms_clock(now).wrapping_sub(self.expires_ms) as i32) >= 0
    }

    /// Milliseconds until expiry (0 if expired).
    pub(crate) fn remaining(&self, now: Instant) -> Duration {
        let left = self.expires_ms.wrapping_sub(ms_clock(now)) as i32;
        Duration::from_millis(left.max(0) as u64)
    }

    pub(crate) fn set_ts_recent(&mut self, ts: u32) {
        if self.flags & HAS_TIMESTAMPS != 0 {
            self.ts_recent = ts;
        }
    }
}

/// All TIME_WAIT records of an endpoint, with expiry in insertion order.
///
/// Every record lives 2×MSL from its entry (or its last restart), so the order of those events is
/// expiry order: a FIFO of `(expiry, tuple)` replaces a timer heap. A restart queues the tuple
/// again; the older entry no longer matches the record's expiry and is skipped.
#[derive(Debug)]
pub(crate) struct TimeWaitTable {
    records: TupleMap<TimeWaitRecord>,
    order: VecDeque<(u32, CompactTuple)>,
}

impl TimeWaitTable {
    pub(crate) fn new(seed: u64) -> TimeWaitTable {
        TimeWaitTable {
            records: tuple_map(seed),
            order: VecDeque::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    pub(crate) fn insert(&mut self, t: CompactTuple, r: TimeWaitRecord) {
        self.order.push_back((r.expires_ms, t));
        self.records.insert(t, r);
    }

    pub(crate) fn get(&self, t: &CompactTuple) -> Option<&TimeWaitRecord> {
        self.records.get(t)
    }

    pub(crate) fn get_mut(&mut self, t: &CompactTuple) -> Option<&mut TimeWaitRecord> {
        self.records.get_mut(t)
    }

    /// RFC 9293 §3.10.7.4: a retransmitted FIN restarts the 2 MSL timeout.
    pub(crate) fn restart(&mut self, t: &CompactTuple, expires: Instant) {
        if let Some(r) = self.records.get_mut(t) {
            r.expires_ms = ms_clock(expires);
            self.order.push_back((r.expires_ms, *t));
        }
    }

    /// Removes a record early (RFC 6191 reopen, tw_reuse, RST). Its queue entry is skipped later.
    pub(crate) fn remove(&mut self, t: &CompactTuple) -> Option<TimeWaitRecord> {
        self.records.remove(t)
    }

    fn is_live(&self, entry: &(u32, CompactTuple)) -> bool {
        self.records
            .get(&entry.1)
            .is_some_and(|r| r.expires_ms == entry.0)
    }

    /// The earliest expiry of a live record.
    pub(crate) fn next_deadline(&self, now: Instant) -> Option<Instant> {
        self.order
            .iter()
            .find(|e| self.is_live(e))
            .map(|e| now + self.records[&e.1].remaining(now))
    }

    /// Removes and returns every record whose 2×MSL has run out.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<(CompactTuple, TimeWaitRecord)>) {
        while let Some(entry) = self.order.front().copied() {
            if !self.is_live(&entry) {
                self.order.pop_front();
                continue;
            }
            if !self.records[&entry.1].expired(now) {
                break;
            }
            self.order.pop_front();
            if let Some(r) = self.records.remove(&entry.1) {
                out.push((entry.1, r));
            }
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&CompactTuple, &TimeWaitRecord)> {
        self.records.iter()
    }
}
