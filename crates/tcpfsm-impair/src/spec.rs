//! The impairment language shared by the simulator's `link` statement and `tcpfsm link`:
//! `KEY VALUE` pairs separated by spaces, e.g. `delay 25ms jitter 5ms loss 1% rate 100mbit`.
//!
//! | key | value | meaning |
//! |---|---|---|
//! | `delay` | duration | one-way propagation delay |
//! | `jitter` | duration | extra delay, uniform in `[0, D]` per packet |
//! | `jitter-reorders` | `on`/`off` | whether jitter may reorder (default off: FIFO) |
//! | `loss` | probability | Bernoulli loss (replaces a `gilbert` model) |
//! | `gilbert` | `p,r[,h[,k]]` | Gilbert–Elliott loss ([`GilbertElliott`]; replaces `loss`) |
//! | `dup` (`duplicate`) | probability | a second copy follows the packet |
//! | `reorder` | probability | the packet is held back so later ones overtake it |
//! | `reorder-delay` | duration | … by an extra delay uniform in `(0, D]` (default: up to `max(delay, 1ms)`) |
//! | `reorder-packets` | count | … until N later packets have passed (at most `max(delay, 1ms)` longer) |
//! | `corrupt` | probability | one bit of the transport header or payload flipped |
//! | `rate` | rate or `off` | serializer at this many bits/s: `100mbit`, `1.5gbit`, `512kbit` |
//! | `queue` | count, size | drop-tail limit of the rate limiter: `100` packets or `64kb`, `1mib` bytes (default 1000 packets) |
//!
//! Durations: `ns`, `us`, `ms`, `s`, `m`, `h` (`2.5ms`). Probabilities: `0.01` or `1%`. Rates
//! use tc's units `bit`, `kbit`, `mbit`, `gbit`, `tbit` (powers of 1000); `mbps` and friends are
//! refused because tc reads them as *bytes* per second while most people mean bits.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

use crate::config::{GilbertElliott, Impairment, Loss, QueueLimit, ReorderHold};

/// Every key the language knows, for error messages and completion.
pub const KEYS: &[&str] = &[
    "delay",
    "jitter",
    "jitter-reorders",
    "loss",
    "gilbert",
    "dup",
    "reorder",
    "reorder-delay",
    "reorder-packets",
    "corrupt",
    "rate",
    "queue",
];

/// A spec that does not parse; the message names the key and the value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct SpecError(pub String);

/// `10ms`, `1.5s`, `250us`, `2m`, `1h`, `500ns`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("duration {s:?} needs a unit (ns, us, ms, s, m, h)"))?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?} (expected e.g. 10ms, 1.5s)"))?;
    let ns_per = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        _ => {
            return Err(format!(
                "unknown duration unit {unit:?} in {s:?} (ns, us, ms, s, m, h)"
            ))
        }
    };
    let ns = v * ns_per;
    if !ns.is_finite() || ns > 1e18 {
        return Err(format!("duration {s:?} is out of range"));
    }
    Ok(Duration::from_nanos(ns.round() as u64))
}

/// `0.05` or `5%`, within `0..=1`.
pub fn parse_probability(s: &str) -> Result<f64, String> {
    let v = if let Some(p) = s.strip_suffix('%') {
        // Shifting the exponent keeps `99.9%` exactly 0.999 (dividing by 100 would not).
        if p.contains(['e', 'E']) {
            p.parse::<f64>().map(|v| v / 100.0)
        } else {
            format!("{p}e-2").parse::<f64>()
        }
    } else {
        s.parse::<f64>()
    }
    .map_err(|_| format!("bad probability {s:?} (expected e.g. 0.1 or 10%)"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("probability {s:?} is outside 0..1"));
    }
    Ok(v)
}

/// Splits `12.5mbit` into `(12.5, "mbit")`.
fn number_unit<'a>(s: &'a str, what: &str, example: &str) -> Result<(f64, &'a str), String> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("bad {what} {s:?} (expected e.g. {example})"))?;
    if !v.is_finite() {
        return Err(format!("bad {what} {s:?}"));
    }
    Ok((v, unit))
}

/// Bits per second from tc's notation: `100mbit`, `1.5gbit`, `64kbit`, `9600bit`.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let (v, unit) = number_unit(s, "rate", "100mbit")?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "tbit" => 1e12,
        "" => return Err(format!("rate {s:?} needs a unit (bit, kbit, mbit, gbit)")),
        u @ ("bps" | "kbps" | "mbps" | "gbps" | "tbps") => {
            return Err(format!(
                "rate unit {u:?} is ambiguous (tc reads it as bytes per second); write {}{}bit \
                 for bits per second",
                &s[..s.len() - unit.len()],
                &u[..u.len() - 3]
            ))
        }
        _ => {
            return Err(format!(
                "unknown rate unit {unit:?} in {s:?} (bit, kbit, mbit, gbit, tbit)"
            ))
        }
    };
    let bits = v * mult;
    if !(1.0..=1e15).contains(&bits) {
        return Err(format!("rate {s:?} is out of range (1bit to 1000tbit)"));
    }
    Ok(bits.round() as u64)
}

/// `100` (packets) or a byte size: `64kb`, `1.5mb` (powers of 1000), `64kib`, `1mib` (of 1024),
/// `1500b`.
pub fn parse_queue(s: &str) -> Result<QueueLimit, String> {
    let (v, unit) = number_unit(s, "queue limit", "100 (packets) or 64kb")?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "p" | "pkt" | "pkts" | "packets" => {
            if v.fract() != 0.0 || !(1.0..=u32::MAX as f64).contains(&v) {
                return Err(format!(
                    "queue limit {s:?} must be a whole number of packets, at least 1"
                ));
            }
            return Ok(QueueLimit::Packets(v as u32));
        }
        "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "unknown queue unit {unit:?} in {s:?} (a packet count, or b, kb, mb, kib, mib)"
            ))
        }
    };
    let bytes = (v * mult).round();
    if !(1.0..=1e15).contains(&bytes) {
        return Err(format!("queue limit {s:?} is out of range"));
    }
    Ok(QueueLimit::Bytes(bytes as u64))
}

/// `p,r`, `p,r,h` or `p,r,h,k`, each a probability (`1%,25%`).
pub fn parse_gilbert(s: &str) -> Result<GilbertElliott, String> {
    let parts: Vec<&str> = s.split(',').collect();
    if !(2..=4).contains(&parts.len()) {
        return Err(format!(
            "gilbert takes p,r[,h[,k]] (e.g. 1%,25%), found {s:?}"
        ));
    }
    let mut v = [0.0, 0.0, 0.0, 1.0];
    for (slot, part) in v.iter_mut().zip(&parts) {
        *slot = parse_probability(part.trim())?;
    }
    let ge = GilbertElliott::with_h_k(v[0], v[1], v[2], v[3]);
    if ge.r == 0.0 && ge.p > 0.0 {
        return Err(format!(
            "gilbert {s:?}: r is 0, so the bad state would never end"
        ));
    }
    Ok(ge)
}

fn parse_switch(s: &str) -> Result<bool, String> {
    match s {
        "on" | "yes" | "true" | "1" => Ok(true),
        "off" | "no" | "false" | "0" => Ok(false),
        _ => Err(format!("expected on or off, found {s:?}")),
    }
}

impl Impairment {
    /// Sets one property from its spec key and value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), SpecError> {
        let err = |e: String| SpecError(format!("{key} {value}: {e}"));
        match key {
            "delay" => self.delay = parse_duration(value).map_err(err)?,
            "jitter" => self.jitter = parse_duration(value).map_err(err)?,
            "jitter-reorders" => self.jitter_reorders = parse_switch(value).map_err(err)?,
            "loss" => {
                let p = parse_probability(value).map_err(err)?;
                self.loss = if p == 0.0 {
                    Loss::None
                } else {
                    Loss::Bernoulli(p)
                };
            }
            "gilbert" => {
                self.loss = Loss::GilbertElliott(parse_gilbert(value).map_err(err)?);
            }
            "dup" | "duplicate" => self.duplicate = parse_probability(value).map_err(err)?,
            "reorder" => self.reorder = parse_probability(value).map_err(err)?,
            "reorder-delay" => {
                let d = parse_duration(value).map_err(err)?;
                if d.is_zero() {
                    return Err(err("must be more than 0".into()));
                }
                self.reorder_hold = ReorderHold::Delay(d);
            }
            "reorder-packets" => {
                let n: u32 = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| err("expected a packet count of at least 1".into()))?;
                self.reorder_hold = ReorderHold::Packets(n);
            }
            "corrupt" => self.corrupt = parse_probability(value).map_err(err)?,
            "rate" => {
                self.rate = match value {
                    "off" | "none" | "unlimited" => None,
                    v => Some(parse_rate(v).map_err(err)?),
                }
            }
            "queue" => self.queue = parse_queue(value).map_err(err)?,
            _ => {
                return Err(SpecError(format!(
                    "unknown link property {key:?} ({})",
                    KEYS.join(", ")
                )))
            }
        }
        Ok(())
    }

    /// Applies a whole spec (`"delay 25ms loss 1%"`) on top of this configuration. `none`
    /// alone changes nothing.
    pub fn apply_spec(&mut self, spec: &str) -> Result<(), SpecError> {
        let words: Vec<&str> = spec.split_whitespace().collect();
        if words == ["none"] {
            return Ok(());
        }
        for pair in words.chunks(2) {
            match pair {
                [k, v] => self.set(k, v)?,
                [k] => return Err(SpecError(format!("{k:?} needs a value"))),
                _ => unreachable!("chunks of two"),
            }
        }
        self.validate().map_err(|e| SpecError(e.to_string()))
    }
}

impl FromStr for Impairment {
    type Err = SpecError;
    /// Parses a spec over a perfect link.
    fn from_str(s: &str) -> Result<Impairment, SpecError> {
        let mut imp = Impairment::default();
        imp.apply_spec(s)?;
        Ok(imp)
    }
}

/// A probability as the shortest percentage that reads back exactly enough (`1%`, `0.5%`).
struct Pct(f64);

impl fmt::Display for Pct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = format!("{:.9}", self.0 * 100.0);
        let s = s.trim_end_matches('0').trim_end_matches('.');
        write!(f, "{s}%")
    }
}

/// A duration in the largest unit that shows it whole (`25ms`, `250us`, `1500ns`).
pub struct ShowDuration(pub Duration);

impl fmt::Display for ShowDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos();
        for (unit, per) in [("s", 1_000_000_000u128), ("ms", 1_000_000), ("us", 1_000)] {
            if ns >= per && (ns / per) * per == ns {
                return write!(f, "{}{unit}", ns / per);
            }
        }
        if ns == 0 {
            return f.write_str("0ms");
        }
        write!(f, "{ns}ns")
    }
}

/// A rate in tc's units (`100mbit`).
pub struct ShowRate(pub u64);

impl fmt::Display for ShowRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, per) in [("tbit", 1e12), ("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3)] {
            let v = self.0 as f64 / per;
            if v >= 1.0 {
                let s = format!("{v:.3}");
                let s = s.trim_end_matches('0').trim_end_matches('.');
                return write!(f, "{s}{unit}");
            }
        }
        write!(f, "{}bit", self.0)
    }
}

impl fmt::Display for Impairment {
    /// The spec that builds this configuration (`none` for a perfect link).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if !self.delay.is_zero() {
            parts.push(format!("delay {}", ShowDuration(self.delay)));
        }
        if !self.jitter.is_zero() {
            parts.push(format!("jitter {}", ShowDuration(self.jitter)));
        }
        if self.jitter_reorders {
            parts.push("jitter-reorders on".into());
        }
        match self.loss {
            Loss::None => {}
            Loss::Bernoulli(p) => parts.push(format!("loss {}", Pct(p))),
            Loss::GilbertElliott(g) => parts.push(format!(
                "gilbert {},{},{},{}",
                Pct(g.p),
                Pct(g.r),
                Pct(g.h),
                Pct(g.k)
            )),
        }
        if self.duplicate > 0.0 {
            parts.push(format!("dup {}", Pct(self.duplicate)));
        }
        if self.reorder > 0.0 {
            parts.push(format!("reorder {}", Pct(self.reorder)));
        }
        match self.reorder_hold {
            ReorderHold::UpToDelay => {}
            ReorderHold::Delay(d) => parts.push(format!("reorder-delay {}", ShowDuration(d))),
            ReorderHold::Packets(n) => parts.push(format!("reorder-packets {n}")),
        }
        if self.corrupt > 0.0 {
            parts.push(format!("corrupt {}", Pct(self.corrupt)));
        }
        if let Some(r) = self.rate {
            parts.push(format!("rate {}", ShowRate(r)));
        }
        match self.queue {
            q if q == QueueLimit::default() => {}
            QueueLimit::Packets(n) => parts.push(format!("queue {n}")),
            QueueLimit::Bytes(b) => parts.push(format!("queue {b}b")),
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(" "))
        }
    }
}
