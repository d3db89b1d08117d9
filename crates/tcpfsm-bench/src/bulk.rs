//! Bulk: one-way transfer over an in-memory link, timed from the first byte queued to the
//! receiver seeing the FIN that follows the last one.

use crate::pattern::Verify;
use crate::runner::{Better, Case, Outcome, Run, Stack, Target};
use crate::{ours, smol};

#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub bytes: u64,
    /// IP MTU of the link: each stack's MSS is this minus 40.
    pub mtu: usize,
    /// Send and receive buffer of each socket, bytes.
    pub buffer: usize,
    /// Compute and verify TCP checksums (off: neither side computes nor checks them).
    pub checksums: bool,
    pub verify: Verify,
}

/// What one stack measured moving `Params::bytes`.
pub struct Transfer {
    pub wall: f64,
    /// CPU seconds of the (single) thread that ran both endpoints and both applications.
    pub cpu: f64,
    /// Datagrams over the link, both directions.
    pub segments: u64,
    pub note: Option<&'static str>,
}

/// `None`: the stack cannot run this variant (the reason is in the `Err` of the adapter).
fn run(stack: Stack, p: &Params) -> anyhow::Result<Outcome> {
    let t = match stack {
        Stack::Tcpfsm => match ours::bulk(p)? {
            Ok(t) => t,
            Err(why) => return Ok(Outcome::Skipped(why)),
        },
        Stack::Smoltcp => smol::bulk(p)?,
    };
    let bits = p.bytes as f64 * 8.0;
    let mut r = Run::new()
        .metric("throughput", "Gbit/s per CPU-s", bits / t.cpu / 1e9)
        .metric("wall throughput", "Gbit/s", bits / t.wall / 1e9)
        .metric(
            "segments",
            "per MiB",
            t.segments as f64 / (p.bytes as f64 / (1 << 20) as f64),
        );
    if let Some(n) = t.note {
        r = r.note(n);
    }
    Ok(Outcome::Ran(r))
}

pub fn cases<'a>(bytes: u64, verify: Verify) -> Vec<Case<'a>> {
    let mut v = Vec::new();
    for checksums in [true, false] {
        for mtu in [1500usize, 65535] {
            let p = Params {
                bytes,
                mtu,
                buffer: 65535,
                checksums,
                verify,
            };
            v.push(Case {
                workload: "bulk",
                name: format!(
                    "{}, MTU {mtu}, checksums {}",
                    human_bytes(bytes),
                    if checksums { "on" } else { "off" }
                ),
                better: Better::Higher,
                target: Some(Target::RatioAtLeast(if checksums { 1.5 } else { 1.0 })),
                run: Box::new(move |s| run(s, &p)),
            });
        }
    }
    v
}

pub fn human_bytes(b: u64) -> String {
    if b >= 1 << 30 && b.is_multiple_of(1 << 30) {
        format!("{} GiB", b >> 30)
    } else if b >= 1 << 20 {
        format!("{} MiB", b >> 20)
    } else {
        format!("{} KiB", b >> 10)
    }
}
