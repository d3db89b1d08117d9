//! What one direction of an impaired link does to the packets crossing it.
//!
//! The stages, in the order a packet meets them (the same order as Linux's netem):
//!
//! 1. **loss** — Bernoulli or Gilbert–Elliott ([`Loss`]); a lost packet goes no further;
//! 2. **rate limit** — a serializer at `rate` bits/s fed by a drop-tail queue ([`QueueLimit`]);
//! 3. **corruption** — one bit of the transport header or payload flipped;
//! 4. **duplication** — a second, intact copy follows the original (never a corrupted one); it
//!    takes its own turn on the serializer;
//! 5. **propagation** — `delay` plus uniform `jitter`, in order unless `jitter_reorders`;
//! 6. **reordering** — a chosen packet is held back ([`ReorderHold`]) so later ones overtake it.
//!
//! So a packet's one-way delay is propagation + serialization + queueing (+ jitter, + hold).

use std::time::Duration;

use thiserror::Error;

/// How packets are lost.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub enum Loss {
    /// Nothing is lost.
    #[default]
    None,
    /// Each packet is lost independently with this probability.
    Bernoulli(f64),
    /// Bursty loss from a two-state Markov chain.
    GilbertElliott(GilbertElliott),
}

impl Loss {
    /// The long-run fraction of packets lost.
    pub fn mean_loss(&self) -> f64 {
        match *self {
            Loss::None => 0.0,
            Loss::Bernoulli(p) => p,
            Loss::GilbertElliott(ge) => ge.mean_loss(),
        }
    }
}

/// The Gilbert–Elliott model (Gilbert 1960, Elliott 1963; parameter names as in Hasslinger &
/// Hohlfeld, "The Gilbert-Elliott Model for Packet Loss in Real Time Services on the
/// Internet", 2008, and RFC 3611 §4.7.2's burst metrics).
///
/// The link is in a *good* or a *bad* state. Each packet is lost with probability `1 − k` in
/// the good state and `1 − h` in the bad state; after each packet the state moves good → bad
/// with probability `p` and bad → good with probability `r`. So:
///
/// - the link is bad a fraction `p / (p + r)` of the time and a bad period lasts `1 / r`
///   packets on average;
/// - with the defaults `h = 0`, `k = 1` (Gilbert's simple model: everything is lost in the bad
///   state, nothing in the good one) a loss burst lasts `1 / r` packets on average and the loss
///   rate is `p / (p + r)`.
///
/// `h` and `k` are probabilities of getting *through*; Linux's `netem loss gemodel p r 1-h
/// 1-k` takes their complements.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct GilbertElliott {
    /// P(good → bad) after a packet.
    pub p: f64,
    /// P(bad → good) after a packet.
    pub r: f64,
    /// P(a packet gets through | bad).
    pub h: f64,
    /// P(a packet gets through | good).
    pub k: f64,
}

impl GilbertElliott {
    /// Gilbert's simple model: `h = 0`, `k = 1`.
    pub fn new(p: f64, r: f64) -> GilbertElliott {
        GilbertElliott {
            p,
            r,
            h: 0.0,
            k: 1.0,
        }
    }

    pub fn with_h_k(p: f64, r: f64, h: f64, k: f64) -> GilbertElliott {
        GilbertElliott { p, r, h, k }
    }

    /// Fraction of time (of packets) in the bad state.
    pub fn bad_fraction(&self) -> f64 {
        if self.p + self.r == 0.0 {
            0.0
        } else {
            self.p / (self.p + self.r)
        }
    }

    /// The long-run loss rate: `π_G (1 − k) + π_B (1 − h)`.
    pub fn mean_loss(&self) -> f64 {
        let bad = self.bad_fraction();
        (1.0 - bad) * (1.0 - self.k) + bad * (1.0 - self.h)
    }

    /// Mean length of a bad period in packets, `1 / r` (a loss burst's mean length when
    /// `h = 0` and `k = 1`).
    pub fn mean_bad_run(&self) -> f64 {
        1.0 / self.r
    }
}

/// How far a packet chosen for reordering is held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ReorderHold {
    /// An extra delay drawn uniformly from `(0, max(delay, 1 ms)]`: up to one more
    /// propagation delay.
    #[default]
    UpToDelay,
    /// An extra delay drawn uniformly from `(0, D]`.
    Delay(Duration),
    /// Until this many later packets have been delivered; a packet never waits more than
    /// `max(delay, 1 ms)` past its normal arrival (a sender that stops does not strand it).
    Packets(u32),
}

/// The drop-tail limit of the rate limiter's queue. It counts every packet accepted and not yet
/// fully serialized, the one being sent included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueLimit {
    Packets(u32),
    Bytes(u64),
}

impl Default for QueueLimit {
    /// 1000 packets: Linux's default `txqueuelen` and netem's default `limit`.
    fn default() -> QueueLimit {
        QueueLimit::Packets(1000)
    }
}

/// One direction's impairments. [`Impairment::default`] is a perfect link: no delay, nothing
/// lost. Build one by assigning fields or by parsing a spec (`"delay 25ms loss 1%"`, see
/// [`crate::spec`]).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct Impairment {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Up to this much extra delay, drawn uniformly per packet.
    pub jitter: Duration,
    /// Whether jitter may reorder packets. When false (the default, like a FIFO wire) a packet
    /// never arrives before one sent ahead of it; jitter then only stretches gaps.
    pub jitter_reorders: bool,
    pub loss: Loss,
    /// Probability a packet arrives twice.
    pub duplicate: f64,
    /// Probability a packet is held back so that later ones overtake it.
    pub reorder: f64,
    /// How far such a packet is held back.
    pub reorder_hold: ReorderHold,
    /// Probability one bit of the transport header or payload is flipped (the IP header is
    /// left alone, so the packet still reaches its destination, whose checksum must reject it).
    pub corrupt: f64,
    /// Bottleneck rate in bits per second; `None` is unlimited (no serialization, no queue).
    pub rate: Option<u64>,
    /// The rate limiter's queue limit (ignored without a rate).
    pub queue: QueueLimit,
}

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct ConfigError(pub(crate) String);

fn check_prob(name: &str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(ConfigError(format!("{name} {v} is outside 0..1")))
    }
}

impl Impairment {
    /// Checks every field; the engine refuses a configuration that fails.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.loss {
            Loss::None => {}
            Loss::Bernoulli(p) => check_prob("loss", p)?,
            Loss::GilbertElliott(ge) => {
                check_prob("gilbert p", ge.p)?;
                check_prob("gilbert r", ge.r)?;
                check_prob("gilbert h", ge.h)?;
                check_prob("gilbert k", ge.k)?;
                if ge.r == 0.0 && ge.p > 0.0 {
                    return Err(ConfigError(
                        "gilbert r is 0: once bad, the link would stay bad forever".into(),
                    ));
                }
            }
        }
        check_prob("dup", self.duplicate)?;
        check_prob("reorder", self.reorder)?;
        check_prob("corrupt", self.corrupt)?;
        if self.rate == Some(0) {
            return Err(ConfigError("rate 0 would never send anything".into()));
        }
        match self.queue {
            QueueLimit::Packets(0) | QueueLimit::Bytes(0) => {
                return Err(ConfigError("a queue limit of 0 drops everything".into()))
            }
            _ => {}
        }
        match self.reorder_hold {
            ReorderHold::Packets(0) => {
                return Err(ConfigError(
                    "reorder-packets 0 would hold nothing back".into(),
                ))
            }
            ReorderHold::Delay(d) if d.is_zero() => {
                return Err(ConfigError(
                    "reorder-delay 0 would hold nothing back".into(),
                ))
            }
            _ => {}
        }
        Ok(())
    }
}
