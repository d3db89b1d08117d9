//! One direction of a simulated link: the [`tcpfsm_impair`] engine on the virtual clock.
//!
//! Each direction owns its own ChaCha stream, seeded from the run's seed and the two host
//! names, so adding a host or a link elsewhere never changes what happens on this one. Every
//! segment consumes exactly the same number of random draws whatever the impairments are, so
//! turning loss up does not reshuffle the jitter of the segments that survive. The engine is
//! the same one `tcpfsm link` runs on real packets.

use tcpfsm_impair::{Delivery, DropCause, Impairer, Payload, Time, Verdict};

use crate::trace::Fate;

/// Impairments of one link direction (delay, jitter, loss or Gilbert–Elliott loss,
/// duplication, reordering, corruption, rate and queue): the engine's configuration.
pub use tcpfsm_impair::Impairment as LinkParams;

/// The simulator's link when a script says nothing: 10 ms one way, nothing lost.
pub fn default_params() -> LinkParams {
    let mut p = LinkParams::default();
    p.delay = std::time::Duration::from_millis(10);
    p
}

/// A datagram on a simulated link, with what the network needs to put it back in order.
#[derive(Debug, Clone)]
pub(crate) struct SimPacket {
    /// The network's send order, to break ties between links deterministically.
    pub(crate) order: u64,
    /// Destination host.
    pub(crate) dst: usize,
    pub(crate) bytes: Vec<u8>,
}

impl Payload for SimPacket {
    fn len(&self) -> usize {
        self.bytes.len()
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

/// One direction of a link between two hosts.
pub(crate) struct Link {
    engine: Impairer<SimPacket>,
}

/// FNV-1a, to derive a stable per-link stream number from host names (std's hasher is not
/// guaranteed stable across releases).
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

impl Link {
    /// A link direction `from → to` whose random stream depends only on `seed` and the names.
    /// `params` must be valid ([`LinkParams::validate`]); invalid ones are replaced by the
    /// default link, which the network reports.
    pub(crate) fn new(params: LinkParams, seed: u64, from: &str, to: &str) -> Link {
        let stream = fnv1a(&[from, to]);
        let engine = Impairer::new(params, seed, stream)
            .or_else(|_| Impairer::new(default_params(), seed, stream))
            .expect("the default link is valid");
        Link { engine }
    }

    /// Changes the impairments; the random stream and the packets inside carry on.
    pub(crate) fn set_params(&mut self, params: LinkParams) {
        // Validated by the caller; a refused change keeps the old parameters.
        let _ = self.engine.set_config(params);
    }

    /// Puts a datagram on the link at `now_us`; returns what the trace records of it: its
    /// fate, why it was dropped, and its first arrival (µs) — unknown (`None`) for one held
    /// back until later ones pass (`reorder-packets`): trace records go out as they happen.
    pub(crate) fn send(
        &mut self,
        now_us: u64,
        order: u64,
        dst: usize,
        bytes: Vec<u8>,
    ) -> (Fate, Option<&'static str>, Option<u64>) {
        let packet = SimPacket { order, dst, bytes };
        trace_view(&self.engine.push(Time::from_micros(now_us), packet))
    }

    /// When the next datagram arrives, in whole microseconds (rounded up).
    pub(crate) fn next_due_us(&self) -> Option<u64> {
        self.engine.next_deadline().map(Time::as_micros_ceil)
    }

    /// The next datagram that has arrived by `now_us`.
    pub(crate) fn poll(&mut self, now_us: u64) -> Option<Delivery<SimPacket>> {
        self.engine.poll(Time::from_micros(now_us))
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.engine.in_flight()
    }
}

/// The trace's view of what the link decided.
fn trace_view(v: &Verdict) -> (Fate, Option<&'static str>, Option<u64>) {
    let fate = match v.dropped {
        Some(_) => Fate::Dropped,
        None if v.corrupted => Fate::Corrupted,
        None if v.duplicated => Fate::Duplicated,
        None => Fate::Delivered,
    };
    let arrive = v.arrives.map(Time::as_micros_ceil);
    (fate, v.dropped.map(DropCause::name), arrive)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(l: &mut Link, now_us: u64) -> Fate {
        let mut bytes = vec![0u8; 40];
        bytes[0] = 0x45;
        l.send(now_us, now_us, 1, bytes).0
    }

    fn fates(seed: u64, from: &str, to: &str) -> Vec<bool> {
        let mut p = default_params();
        p.loss = tcpfsm_impair::Loss::Bernoulli(0.5);
        let mut l = Link::new(p, seed, from, to);
        (0..64).map(|i| send(&mut l, i) == Fate::Dropped).collect()
    }

    #[test]
    fn a_direction_stream_depends_only_on_the_seed_and_the_two_names() {
        assert_eq!(fates(7, "a", "b"), fates(7, "a", "b"));
        assert_ne!(fates(7, "a", "b"), fates(8, "a", "b"));
        assert_ne!(fates(7, "a", "b"), fates(7, "b", "a"));
    }

    #[test]
    fn arrival_times_round_up_to_the_virtual_clock_microsecond() {
        let mut p = default_params();
        // 1 Gbit/s: a 40-byte datagram takes 320 ns, so it is due at 10 000.32 µs.
        p.rate = Some(1_000_000_000);
        let mut l = Link::new(p, 1, "a", "b");
        send(&mut l, 0);
        assert_eq!(l.next_due_us(), Some(10_001));
        assert!(l.poll(10_000).is_none());
        assert!(l.poll(10_001).is_some());
    }
}
