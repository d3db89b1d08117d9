//! One direction of an impaired link, sans-IO: `push(now, packet)`, `poll(now)`,
//! `next_deadline()`.
//!
//! Every random choice comes from the direction's own ChaCha stream, and every packet consumes
//! the same nine draws whatever the configuration, in a fixed order. So the same seed and the
//! same pushes give the same deliveries, and turning one impairment up does not reshuffle the
//! others (more loss does not change which of the surviving packets get jitter).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{ConfigError, Impairment, ReorderHold};
use crate::corrupt::flip_bit;
use crate::loss::LossProcess;
use crate::queue::Serializer;
use crate::time::Time;

/// What the engine carries: a whole packet it may copy (duplication) and alter (corruption).
pub trait Payload: Clone {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn bytes_mut(&mut self) -> &mut [u8];
}

impl Payload for Vec<u8> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        self
    }
}

/// Why a packet never arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropCause {
    /// The loss model (Bernoulli or Gilbert–Elliott).
    Loss,
    /// The rate limiter's queue was full (drop-tail).
    Queue,
}

impl DropCause {
    pub const fn name(self) -> &'static str {
        match self {
            DropCause::Loss => "loss",
            DropCause::Queue => "queue",
        }
    }
}

/// What the link decided for a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verdict {
    /// The packet's number on this direction (0, 1, 2, … in push order); its copies carry it.
    pub id: u64,
    /// Set when the packet will never arrive.
    pub dropped: Option<DropCause>,
    /// A bit of it was flipped.
    pub corrupted: bool,
    /// A second copy follows it (it was made and the queue took it).
    pub duplicated: bool,
    /// It is held back so later packets overtake it.
    pub reordered: bool,
    /// When it will arrive; `None` when dropped, or when it is held back until later packets
    /// have passed (then only the future tells).
    pub arrives: Option<Time>,
}

/// Which copy of a packet a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Copy {
    Original,
    Duplicate,
}

/// A packet leaving the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<P> {
    pub id: u64,
    pub copy: Copy,
    pub packet: P,
    /// When it was pushed.
    pub sent: Time,
    /// When it was due out (a real-time driver polling late sees `due < now`).
    pub due: Time,
}

/// Per-direction counters. Byte counts are whole packets as pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Counters {
    /// Packets and bytes pushed in.
    pub packets_in: u64,
    pub bytes_in: u64,
    /// Packets and bytes delivered (duplicates included).
    pub packets_out: u64,
    pub bytes_out: u64,
    /// Lost by the loss model.
    pub dropped_loss: u64,
    /// Dropped by the full rate-limiter queue (copies included).
    pub dropped_queue: u64,
    /// Second copies made (a copy the full queue then drops counts here and in
    /// `dropped_queue`), so `packets_out = packets_in + duplicated − dropped()` once drained.
    pub duplicated: u64,
    /// Packets held back so later ones overtake them.
    pub reordered: u64,
    /// Packets with a flipped bit.
    pub corrupted: u64,
    /// Now in the rate limiter's queue (the one being serialized included).
    pub queued_packets: u64,
    pub queued_bytes: u64,
    /// The most bytes the queue ever held.
    pub queue_peak_bytes: u64,
    /// Accepted and not yet delivered (queue, propagation, holds).
    pub in_flight: u64,
}

impl Counters {
    pub fn dropped(&self) -> u64 {
        self.dropped_loss + self.dropped_queue
    }
}

/// The nine draws every packet consumes, in this order.
struct Draws {
    loss: f64,
    dup: f64,
    corrupt: f64,
    reorder: f64,
    jitter: f64,
    hold: f64,
    dup_gap: f64,
    bit: u64,
    ge_step: f64,
}

impl Draws {
    fn take(rng: &mut ChaCha8Rng) -> Draws {
        Draws {
            loss: rng.gen(),
            dup: rng.gen(),
            corrupt: rng.gen(),
            reorder: rng.gen(),
            jitter: rng.gen(),
            hold: rng.gen(),
            dup_gap: rng.gen(),
            bit: rng.gen(),
            ge_step: rng.gen(),
        }
    }
}

/// A packet scheduled to leave at `due`; ties leave in push order.
struct Scheduled<P> {
    due: Time,
    order: u64,
    delivery: Delivery<P>,
}

impl<P> PartialEq for Scheduled<P> {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.order) == (o.due, o.order)
    }
}
impl<P> Eq for Scheduled<P> {}
impl<P> PartialOrd for Scheduled<P> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<P> Ord for Scheduled<P> {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.due, self.order).cmp(&(o.due, o.order))
    }
}

/// A packet held until `remaining` later packets have been delivered, or until `deadline`.
struct Held<P> {
    remaining: u32,
    deadline: Time,
    order: u64,
    delivery: Delivery<P>,
}

/// `d × frac`, for uniform draws of a duration.
fn scale(d: Duration, frac: f64) -> Duration {
    Duration::from_nanos((d.as_nanos() as f64 * frac) as u64)
}

/// One direction of an impaired link. See the crate documentation for the model.
pub struct Impairer<P = Vec<u8>> {
    cfg: Impairment,
    rng: ChaCha8Rng,
    loss: LossProcess,
    queue: Serializer,
    /// Latest arrival of an in-order packet: with FIFO jitter nothing arrives before it.
    fifo_mark: Time,
    line: BinaryHeap<Reverse<Scheduled<P>>>,
    held: VecDeque<Held<P>>,
    next_id: u64,
    /// Push order of every scheduled item (copies get their own), for tie-breaking.
    next_order: u64,
    counters: Counters,
}

impl<P: Payload> Impairer<P> {
    /// A direction drawing from ChaCha8 seeded with `seed`, on stream `stream` (give each
    /// direction of a link its own stream).
    pub fn new(cfg: Impairment, seed: u64, stream: u64) -> Result<Impairer<P>, ConfigError> {
        cfg.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Ok(Impairer {
            cfg,
            rng,
            loss: LossProcess::default(),
            queue: Serializer::default(),
            fifo_mark: Time::ZERO,
            line: BinaryHeap::new(),
            held: VecDeque::new(),
            next_id: 0,
            next_order: 0,
            counters: Counters::default(),
        })
    }

    pub fn config(&self) -> &Impairment {
        &self.cfg
    }

    /// Changes the impairments from now on; packets already inside keep their schedule and the
    /// random stream continues.
    pub fn set_config(&mut self, cfg: Impairment) -> Result<(), ConfigError> {
        cfg.validate()?;
        self.cfg = cfg;
        Ok(())
    }

    /// Counters as of the last `push` or `poll`.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Packets accepted and not yet delivered.
    pub fn in_flight(&self) -> usize {
        self.line.len() + self.held.len()
    }

    /// The next time `poll` has something to deliver.
    pub fn next_deadline(&self) -> Option<Time> {
        let line = self.line.peek().map(|Reverse(s)| s.due);
        let held = self.held.iter().map(|h| h.deadline).min();
        match (line, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn advance(&mut self, now: Time) {
        self.queue.advance(now);
        self.counters.queued_packets = self.queue.packets() as u64;
        self.counters.queued_bytes = self.queue.bytes();
    }

    /// Offers a packet to the link at `now`.
    pub fn push(&mut self, now: Time, packet: P) -> Verdict {
        self.advance(now);
        let d = Draws::take(&mut self.rng);
        let cfg = self.cfg;
        let id = self.next_id;
        self.next_id += 1;
        let len = packet.len();
        self.counters.packets_in += 1;
        self.counters.bytes_in += len as u64;
        let mut v = Verdict {
            id,
            dropped: None,
            corrupted: false,
            duplicated: false,
            reordered: false,
            arrives: None,
        };
        if self.loss.lose(&cfg.loss, d.loss, d.ge_step) {
            self.counters.dropped_loss += 1;
            v.dropped = Some(DropCause::Loss);
            return v;
        }
        let Some(out) = self.serialize(now, len) else {
            v.dropped = Some(DropCause::Queue);
            return v;
        };
        let mut packet = packet;
        if d.corrupt < cfg.corrupt && flip_bit(packet.bytes_mut(), d.bit) {
            self.counters.corrupted += 1;
            v.corrupted = true;
        }
        // A corrupted packet is not also duplicated: its one fate is "rejected on arrival".
        let copy = (!v.corrupted && d.dup < cfg.duplicate).then(|| packet.clone());
        let mut arrive = out + cfg.delay + scale(cfg.jitter, d.jitter);
        let delivery = Delivery {
            id,
            copy: Copy::Original,
            packet,
            sent: now,
            due: arrive,
        };
        v.reordered = d.reorder < cfg.reorder;
        if v.reordered {
            self.counters.reordered += 1;
        }
        // A held-back packet lets later ones overtake it, so it does not move the FIFO mark.
        match (v.reordered, cfg.reorder_hold) {
            (true, ReorderHold::Packets(n)) => {
                let order = self.order();
                self.held.push_back(Held {
                    remaining: n,
                    deadline: arrive + cfg.delay.max(Duration::from_millis(1)),
                    order,
                    delivery,
                });
            }
            (true, hold) => {
                let most = match hold {
                    ReorderHold::Delay(most) => most,
                    _ => cfg.delay.max(Duration::from_millis(1)),
                };
                arrive += Duration::from_nanos(1) + scale(most, d.hold);
                v.arrives = Some(arrive);
                self.schedule(arrive, delivery);
            }
            (false, _) => {
                if !cfg.jitter_reorders {
                    arrive = arrive.max(self.fifo_mark);
                    self.fifo_mark = arrive;
                }
                v.arrives = Some(arrive);
                self.schedule(arrive, delivery);
            }
        }
        if let Some(copy) = copy {
            // The copy needs the wire too; it follows the original closely (as a link-layer
            // retransmission would) and, on a FIFO link, before anything sent later.
            self.counters.duplicated += 1;
            if let Some(out2) = self.serialize(now, len) {
                v.duplicated = true;
                let gap = Duration::from_nanos(1)
                    + scale(cfg.jitter.max(Duration::from_micros(100)), d.dup_gap);
                let mut after = arrive.max(out2 + cfg.delay) + gap;
                if !v.reordered && !cfg.jitter_reorders {
                    after = after.max(self.fifo_mark);
                    self.fifo_mark = after;
                }
                self.schedule(
                    after,
                    Delivery {
                        id,
                        copy: Copy::Duplicate,
                        packet: copy,
                        sent: now,
                        due: after,
                    },
                );
            }
        }
        self.counters.in_flight = self.in_flight() as u64;
        v
    }

    /// Passes `len` bytes through the rate limiter: when they are out, or `None` if the queue
    /// is full.
    fn serialize(&mut self, now: Time, len: usize) -> Option<Time> {
        let Some(rate) = self.cfg.rate else {
            return Some(now);
        };
        match self.queue.admit(now, len, rate, self.cfg.queue) {
            Some(t) => {
                self.counters.queued_packets = self.queue.packets() as u64;
                self.counters.queued_bytes = self.queue.bytes();
                self.counters.queue_peak_bytes =
                    self.counters.queue_peak_bytes.max(self.queue.bytes());
                Some(t)
            }
            None => {
                self.counters.dropped_queue += 1;
                None
            }
        }
    }

    fn order(&mut self) -> u64 {
        self.next_order += 1;
        self.next_order
    }

    fn schedule(&mut self, due: Time, delivery: Delivery<P>) {
        let order = self.order();
        self.line.push(Reverse(Scheduled {
            due,
            order,
            delivery: Delivery { due, ..delivery },
        }));
    }

    /// A held packet joins the line, due at `due`, in its own push order.
    fn release(&mut self, h: Held<P>, due: Time) {
        self.line.push(Reverse(Scheduled {
            due,
            order: h.order,
            delivery: Delivery { due, ..h.delivery },
        }));
    }

    /// The next packet due by `now`, in arrival order.
    pub fn poll(&mut self, now: Time) -> Option<Delivery<P>> {
        self.advance(now);
        // Holds that ran out of time join the line at their deadline.
        while let Some(i) = self.held.iter().position(|h| h.deadline <= now) {
            let Some(h) = self.held.remove(i) else { break };
            let due = h.deadline;
            self.release(h, due);
        }
        if self.line.peek().is_none_or(|Reverse(s)| s.due > now) {
            return None;
        }
        let Reverse(s) = self.line.pop()?;
        // Every delivery of a packet pushed after a held one counts towards its release.
        let mut i = 0;
        while i < self.held.len() {
            let h = &mut self.held[i];
            if h.delivery.id < s.delivery.id {
                h.remaining -= 1;
                if h.remaining == 0 {
                    let Some(h) = self.held.remove(i) else { break };
                    self.release(h, s.due);
                    continue;
                }
            }
            i += 1;
        }
        let d = s.delivery;
        self.counters.packets_out += 1;
        self.counters.bytes_out += d.packet.len() as u64;
        self.counters.in_flight = self.in_flight() as u64;
        Some(d)
    }
}
