//! The Internet checksum alone: tcpfsm-wire's against smoltcp's, over payload-sized buffers.

use std::hint::black_box;

use crate::runner::{Better, Case, Outcome, Run, Stack};
use crate::sys::Timer;

fn run(stack: Stack, len: usize, total: u64) -> anyhow::Result<Outcome> {
    // Odd start offset: frames land at arbitrary alignment.
    let buf: Vec<u8> = (0..len + 1).map(|i| (i * 7 + 3) as u8).collect();
    let data = &buf[1..];
    let iters = (total / len as u64).max(1);
    let mut acc = 0u32;
    let timer = Timer::start();
    for _ in 0..iters {
        acc += match stack {
            Stack::Tcpfsm => tcpfsm_wire::checksum::checksum(black_box(data)),
            Stack::Smoltcp => smoltcp::wire::checksum::data(black_box(data)),
        } as u32;
    }
    let (_, cpu) = timer.stop();
    black_box(acc);
    let bytes = iters as f64 * len as f64;
    Ok(Outcome::Ran(Run::new().metric(
        "throughput",
        "GB/s per CPU-s",
        bytes / cpu / 1e9,
    )))
}

pub fn cases<'a>(total: u64) -> Vec<Case<'a>> {
    [20usize, 1460, 65535]
        .into_iter()
        .map(|len| Case {
            workload: "checksum",
            name: format!("{len} B, odd alignment"),
            better: Better::Higher,
            target: None,
            run: Box::new(move |s| run(s, len, total)),
        })
        .collect()
}
