//! One direction of a link: a fixed delay plus impairments drawn from a seeded RNG.
//!
//! Each direction owns its own ChaCha stream, seeded from the run's seed and the two host
//! names, so adding a host or a link elsewhere never changes what happens on this one. Every
//! segment consumes exactly the same number of random draws whatever the probabilities are,
//! so turning loss up does not reshuffle the jitter of the segments that survive.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

use crate::trace::Fate;

/// Impairments of one link direction. Probabilities are in `0.0..=1.0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkParams {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Up to this much extra delay, uniformly drawn per segment. Jitter alone never reorders:
    /// a segment is not delivered before the one sent before it (a FIFO queue).
    pub jitter: Duration,
    /// Probability a segment is lost.
    pub loss: f64,
    /// Probability a segment arrives twice.
    pub duplicate: f64,
    /// Probability a segment is held back by up to one extra delay, letting later ones
    /// overtake it.
    pub reorder: f64,
    /// Probability one random bit of the TCP header or payload is flipped.
    pub corrupt: f64,
}

impl Default for LinkParams {
    fn default() -> LinkParams {
        LinkParams {
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            corrupt: 0.0,
        }
    }
}

/// Where and when a copy of a segment arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Microseconds after the send time.
    pub after_us: u64,
    pub bytes: Vec<u8>,
}

/// What the link did with one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub fate: Fate,
    /// Copies that will arrive, in arrival order (empty when lost, two when duplicated).
    pub deliveries: Vec<Delivery>,
}

/// One direction of a link between two hosts.
#[derive(Debug, Clone)]
pub struct Link {
    pub params: LinkParams,
    rng: ChaCha8Rng,
    /// Latest arrival time (absolute µs) of an in-order segment, to keep jitter FIFO.
    last_arrival_us: u64,
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
    pub fn new(params: LinkParams, seed: u64, from: &str, to: &str) -> Link {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(fnv1a(&[from, to]));
        Link {
            params,
            rng,
            last_arrival_us: 0,
        }
    }

    /// Decides the fate of `datagram` (a whole IP datagram) sent at `now_us`.
    pub fn transmit(&mut self, now_us: u64, datagram: &[u8]) -> Outcome {
        // Fixed number of draws per segment, in a fixed order (see module docs).
        let p_loss: f64 = self.rng.gen();
        let p_dup: f64 = self.rng.gen();
        let p_corrupt: f64 = self.rng.gen();
        let p_reorder: f64 = self.rng.gen();
        let jitter_frac: f64 = self.rng.gen();
        let reorder_frac: f64 = self.rng.gen();
        let dup_frac: f64 = self.rng.gen();
        let bit_pick: u64 = self.rng.gen();

        let p = self.params;
        if p_loss < p.loss {
            return Outcome {
                fate: Fate::Dropped,
                deliveries: Vec::new(),
            };
        }
        let delay_us = p.delay.as_micros() as u64;
        let jitter_us = (p.jitter.as_micros() as f64 * jitter_frac) as u64;
        let mut arrival = now_us + delay_us + jitter_us;
        if p_reorder < p.reorder {
            // Held back: later segments may overtake it. It does not move the FIFO mark.
            arrival += 1 + (delay_us.max(1_000) as f64 * reorder_frac) as u64;
        } else {
            arrival = arrival.max(self.last_arrival_us);
            self.last_arrival_us = arrival;
        }
        let mut bytes = datagram.to_vec();
        let mut fate = Fate::Delivered;
        if p_corrupt < p.corrupt && flip_tcp_bit(&mut bytes, bit_pick) {
            fate = Fate::Corrupted;
        }
        let mut deliveries = vec![Delivery {
            after_us: arrival - now_us,
            bytes,
        }];
        if fate == Fate::Delivered && p_dup < p.duplicate {
            fate = Fate::Duplicated;
            let extra = 1 + (p.jitter.as_micros().max(100) as f64 * dup_frac) as u64;
            deliveries.push(Delivery {
                after_us: arrival + extra - now_us,
                bytes: datagram.to_vec(),
            });
        }
        Outcome { fate, deliveries }
    }
}

/// Flips one bit of the TCP header or payload (not the IP header: a flipped TTL would pass
/// unnoticed, while every single-bit error inside the TCP checksum's coverage is caught by
/// the one's-complement sum, RFC 1071). Returns false if the datagram is too short to tell.
fn flip_tcp_bit(bytes: &mut [u8], pick: u64) -> bool {
    let ip_header = match bytes.first().map(|b| b >> 4) {
        Some(4) => usize::from(bytes[0] & 0x0f) * 4,
        Some(6) => 40,
        _ => return false,
    };
    if bytes.len() <= ip_header {
        return false;
    }
    let span = (bytes.len() - ip_header) as u64 * 8;
    let bit = pick % span;
    let idx = ip_header + (bit / 8) as usize;
    bytes[idx] ^= 1 << (bit % 8);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_packet(payload: usize) -> Vec<u8> {
        let mut p = vec![0u8; 20 + 20 + payload];
        p[0] = 0x45;
        p
    }

    #[test]
    fn same_seed_and_names_give_the_same_fates() {
        let params = LinkParams {
            loss: 0.3,
            duplicate: 0.2,
            reorder: 0.2,
            corrupt: 0.1,
            jitter: Duration::from_millis(5),
            ..LinkParams::default()
        };
        let run = |seed| {
            let mut l = Link::new(params, seed, "a", "b");
            (0..200)
                .map(|i| l.transmit(i * 1000, &v4_packet(10)))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn each_direction_has_its_own_stream() {
        let params = LinkParams {
            loss: 0.5,
            ..LinkParams::default()
        };
        let mut ab = Link::new(params, 1, "a", "b");
        let mut ba = Link::new(params, 1, "b", "a");
        let fa: Vec<_> = (0..64)
            .map(|i| ab.transmit(i, &v4_packet(0)).fate)
            .collect();
        let fb: Vec<_> = (0..64)
            .map(|i| ba.transmit(i, &v4_packet(0)).fate)
            .collect();
        assert_ne!(fa, fb);
    }

    #[test]
    fn loss_rate_is_roughly_the_probability() {
        let mut l = Link::new(
            LinkParams {
                loss: 0.25,
                ..LinkParams::default()
            },
            3,
            "a",
            "b",
        );
        let lost = (0..4000)
            .filter(|i| l.transmit(*i, &v4_packet(0)).fate == Fate::Dropped)
            .count();
        assert!((800..1200).contains(&lost), "lost {lost} of 4000");
    }

    #[test]
    fn jitter_without_reorder_keeps_fifo_order() {
        let mut l = Link::new(
            LinkParams {
                jitter: Duration::from_millis(50),
                ..LinkParams::default()
            },
            9,
            "a",
            "b",
        );
        let mut last = 0;
        for i in 0..500u64 {
            let t = i * 100;
            let o = l.transmit(t, &v4_packet(0));
            let at = t + o.deliveries[0].after_us;
            assert!(at >= last, "segment {i} overtook its predecessor");
            last = at;
        }
    }

    #[test]
    fn corruption_flips_exactly_one_bit_outside_the_ip_header() {
        let mut l = Link::new(
            LinkParams {
                corrupt: 1.0,
                ..LinkParams::default()
            },
            5,
            "a",
            "b",
        );
        for _ in 0..100 {
            let orig = v4_packet(30);
            let o = l.transmit(0, &orig);
            assert_eq!(o.fate, Fate::Corrupted);
            let got = &o.deliveries[0].bytes;
            assert_eq!(&got[..20], &orig[..20]);
            let flipped: u32 = got
                .iter()
                .zip(&orig)
                .map(|(a, b)| (a ^ b).count_ones())
                .sum();
            assert_eq!(flipped, 1);
        }
    }

    #[test]
    fn duplicate_arrives_twice_after_the_first() {
        let mut l = Link::new(
            LinkParams {
                duplicate: 1.0,
                ..LinkParams::default()
            },
            5,
            "a",
            "b",
        );
        let o = l.transmit(0, &v4_packet(1));
        assert_eq!(o.fate, Fate::Duplicated);
        assert_eq!(o.deliveries.len(), 2);
        assert!(o.deliveries[1].after_us > o.deliveries[0].after_us);
        assert_eq!(o.deliveries[0].after_us, 10_000);
    }
}
