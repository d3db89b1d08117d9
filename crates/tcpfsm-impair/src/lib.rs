//! A seeded, deterministic, sans-IO impaired link — netem's job without the kernel module.
//!
//! Each direction is an [`Impairer`]: `push(now, packet)` offers a packet, `poll(now)` hands
//! out the packets due, `next_deadline()` says when to poll next. It never reads a clock and
//! never does I/O, so the simulator drives it on virtual time and a relay on real time, with
//! the same results for the same seed and the same pushes.
//!
//! A packet meets, in order: loss (Bernoulli or bursty Gilbert–Elliott), a rate limit (a
//! serializer at a bit rate behind a drop-tail queue), corruption (one bit flipped past the IP
//! header), duplication, propagation delay with jitter (FIFO unless jitter may reorder), and
//! reordering (held back by a delay or by N packets). Its one-way delay is therefore
//! propagation + serialization + queueing. See [`Impairment`] for the parameters and
//! [`spec`] for the text form used by `tcpfsm link` and the simulator's scripts.
//!
//! ```
//! use std::time::Duration;
//! use tcpfsm_impair::{Impairer, Impairment, Time};
//!
//! let cfg: Impairment = "delay 25ms loss 1% rate 100mbit queue 100".parse().unwrap();
//! let mut link: Impairer = Impairer::new(cfg, 42, 0).unwrap();
//! let v = link.push(Time::ZERO, vec![0x45; 1500]);
//! if v.dropped.is_none() {
//!     // 1500 bytes at 100 Mbit/s take 120 µs, then 25 ms on the wire.
//!     assert_eq!(v.arrives, Some(Time::ZERO + Duration::from_micros(25_120)));
//!     let t = link.next_deadline().unwrap();
//!     assert!(link.poll(t).is_some());
//! }
//! ```

mod config;
mod corrupt;
mod engine;
mod loss;
mod queue;
pub mod spec;
mod time;

pub use config::{ConfigError, GilbertElliott, Impairment, Loss, QueueLimit, ReorderHold};
pub use engine::{Copy, Counters, Delivery, DropCause, Impairer, Payload, Verdict};
pub use queue::serialization;
pub use spec::SpecError;
pub use time::Time;

/// Both directions of a link, each on its own random stream of one seed: `up` on stream 0,
/// `down` on stream 1.
pub struct Duplex<P = Vec<u8>> {
    pub up: Impairer<P>,
    pub down: Impairer<P>,
}

impl<P: Payload> Duplex<P> {
    pub fn new(up: Impairment, down: Impairment, seed: u64) -> Result<Duplex<P>, ConfigError> {
        Ok(Duplex {
            up: Impairer::new(up, seed, 0)?,
            down: Impairer::new(down, seed, 1)?,
        })
    }

    /// The earlier of the two directions' deadlines.
    pub fn next_deadline(&self) -> Option<Time> {
        match (self.up.next_deadline(), self.down.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
