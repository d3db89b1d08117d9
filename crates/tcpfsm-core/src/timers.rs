//! A connection's timer table: one deadline per timer (RFC 9293 §3.8 retransmission, RFC 1122
//! §4.2.3.2 delayed ACK, RFC 9293 §3.8.6.1 persist, FIN_WAIT_2, keep-alive and RACK's
//! reordering timer), 8 bytes each instead of an `Option<Instant>`'s 16.

use crate::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Retransmission (RFC 6298), which also carries the tail loss probe.
    Rtx = 0,
    /// Delayed ACK (RFC 9293 §3.8.6.3).
    DelAck = 1,
    /// Zero-window probe / sender SWS override (RFC 9293 §3.8.6.1, §3.8.6.2.1).
    Persist = 2,
    /// An orphaned FIN_WAIT_2's wait for the peer's FIN (Linux `tcp_fin_timeout`).
    FinWait2 = 3,
    /// Keep-alive (RFC 1122 §4.2.3.6).
    KeepAlive = 4,
    /// RACK's reordering window (RFC 8985 §6.3).
    Reorder = 5,
}

const N: usize = 6;

const UNARMED: u64 = u64::MAX;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Timers {
    at: [u64; N],
    /// Whether a deadline changed since [`Timers::take_moved`] last said (true for a new
    /// table): the endpoint copies the earliest into its timer queue only then. A burst of
    /// segments sent at one instant re-arms the retransmission timer to the same deadline
    /// for every segment, and recomputing the earliest and looking up the queue after each
    /// cost about 30 instructions.
    moved: bool,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            at: [UNARMED; N],
            moved: true,
        }
    }
}

impl Timers {
    pub(crate) fn set(&mut self, t: Timer, at: Instant) {
        // An instant at the very end of time would read as unarmed; one microsecond earlier
        // is indistinguishable for any driver.
        self.put_raw(t, at.as_micros().min(UNARMED - 1));
    }

    fn put_raw(&mut self, t: Timer, at: u64) {
        let slot = &mut self.at[t as usize];
        if *slot != at {
            *slot = at;
            self.moved = true;
        }
    }

    /// Whether a deadline changed since the last call.
    pub(crate) fn take_moved(&mut self) -> bool {
        std::mem::replace(&mut self.moved, false)
    }

    /// As if a deadline changed: the next [`Timers::take_moved`] says true.
    pub(crate) fn mark_moved(&mut self) {
        self.moved = true;
    }

    pub(crate) fn put(&mut self, t: Timer, at: Option<Instant>) {
        match at {
            Some(at) => self.set(t, at),
            None => self.clear(t),
        }
    }

    pub(crate) fn clear(&mut self, t: Timer) {
        self.put_raw(t, UNARMED);
    }

    pub(crate) fn get(&self, t: Timer) -> Option<Instant> {
        let at = self.at[t as usize];
        (at != UNARMED).then(|| Instant::from_micros(at))
    }

    pub(crate) fn armed(&self, t: Timer) -> bool {
        self.at[t as usize] != UNARMED
    }

    pub(crate) fn expired(&self, t: Timer, now: Instant) -> bool {
        self.at[t as usize] <= now.as_micros()
    }

    /// The earliest armed deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        // By value: `iter().min()` tracked a reference to the least element, about 30
        // instructions where a chain of `min`s takes a dozen (this runs after every
        // segment sent or received, and after every application call).
        let m = self.at.iter().fold(UNARMED, |m, &t| m.min(t));
        (m != UNARMED).then(|| Instant::from_micros(m))
    }

    pub(crate) fn clear_all(&mut self) {
        self.at = [UNARMED; N];
        self.moved = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Timer; N] = [
        Timer::Rtx,
        Timer::DelAck,
        Timer::Persist,
        Timer::FinWait2,
        Timer::KeepAlive,
        Timer::Reorder,
    ];

    /// `next` is the least armed deadline, `None` with none armed, whichever timers hold them.
    #[test]
    fn next_is_the_earliest_armed_deadline() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut t = Timers::default();
        assert_eq!(t.next(), None);
        assert!(t.take_moved());
        let mut last = ALL.map(|w| t.get(w));
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let which = ALL[(x % N as u64) as usize];
            if x >> 60 < 5 {
                t.clear(which);
            } else {
                t.set(which, Instant::from_micros((x >> 8) % 1_000_000));
            }
            let want = ALL.iter().filter_map(|&w| t.get(w)).min();
            assert_eq!(t.next(), want);
            // `moved` says whether any deadline changed.
            let before = last;
            last = ALL.map(|w| t.get(w));
            assert_eq!(t.take_moved(), before != last);
        }
        t.clear_all();
        assert_eq!(t.next(), None);
    }
}
