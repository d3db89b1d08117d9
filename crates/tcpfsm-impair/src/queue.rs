//! The rate-limit stage: a serializer at `rate` bits/s behind a drop-tail queue.
//!
//! It is a token bucket one packet deep, the model of a bottleneck link (netem's `rate`): a
//! packet starts when the one ahead of it has finished and takes `len × 8 / rate` seconds to
//! go out. Because service is first-in first-out, a packet's finishing time is known the
//! moment it is accepted, so the queue is only bookkeeping of what is still waiting at `now`.

use std::collections::VecDeque;
use std::time::Duration;

use crate::config::QueueLimit;
use crate::time::Time;

#[derive(Debug, Clone, Default)]
pub(crate) struct Serializer {
    /// When the last accepted packet has finished going out.
    free_at: Time,
    /// Finishing time and length of every packet accepted and not yet finished.
    backlog: VecDeque<(Time, u32)>,
    bytes: u64,
}

/// How long `len` bytes take to go out at `rate` bits/s.
pub fn serialization(len: usize, rate: u64) -> Duration {
    let ns = (len as u128 * 8 * 1_000_000_000) / u128::from(rate.max(1));
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

impl Serializer {
    /// Forgets the packets that have finished by `now`.
    pub(crate) fn advance(&mut self, now: Time) {
        while let Some(&(done, len)) = self.backlog.front() {
            if done > now {
                break;
            }
            self.backlog.pop_front();
            self.bytes -= u64::from(len);
        }
    }

    /// Accepts a packet of `len` bytes at `now` and returns when it has finished going out,
    /// or `None` when the queue is full (drop-tail). `advance(now)` must have been called.
    pub(crate) fn admit(
        &mut self,
        now: Time,
        len: usize,
        rate: u64,
        limit: QueueLimit,
    ) -> Option<Time> {
        let full = match limit {
            QueueLimit::Packets(n) => self.backlog.len() >= n as usize,
            QueueLimit::Bytes(b) => self.bytes + len as u64 > b,
        };
        if full {
            return None;
        }
        let done = self.free_at.max(now) + serialization(len, rate);
        self.free_at = done;
        let len32 = u32::try_from(len).unwrap_or(u32::MAX);
        self.backlog.push_back((done, len32));
        self.bytes += u64::from(len32);
        Some(done)
    }

    pub(crate) fn packets(&self) -> usize {
        self.backlog.len()
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }
}
