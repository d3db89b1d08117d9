//! Lifecycle: N sequential connections, each a handshake, one byte each way, a close by the
//! client, and TIME_WAIT ended by a virtual clock jump.

use crate::runner::{Better, Case, Outcome, Run, Stack, Target};
use crate::{ours, smol};

pub struct Lifecycle {
    pub wall: f64,
    pub cpu: f64,
    /// Datagrams over the link for all connections, both directions.
    pub segments: u64,
}

fn run(stack: Stack, n: u64) -> anyhow::Result<Outcome> {
    let l = match stack {
        Stack::Tcpfsm => ours::lifecycle(n)?,
        Stack::Smoltcp => smol::lifecycle(n)?,
    };
    Ok(Outcome::Ran(
        Run::new()
            .metric("rate", "conn/s per CPU-s", n as f64 / l.cpu)
            .metric("wall rate", "conn/s", n as f64 / l.wall)
            .metric("segments", "per connection", l.segments as f64 / n as f64),
    ))
}

pub fn cases<'a>(n: u64) -> Vec<Case<'a>> {
    vec![Case {
        workload: "lifecycle",
        name: format!("{n} connections, 1 B each way"),
        better: Better::Higher,
        target: Some(Target::RatioAtLeast(3.0)),
        run: Box::new(move |s| run(s, n)),
    }]
}
