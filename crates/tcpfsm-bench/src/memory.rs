//! Memory: resident bytes of one endpoint holding N connections in TIME_WAIT, each made by a
//! real handshake and close. Every measurement runs in a fresh child process (this binary
//! re-executed), so one measurement's heap never flatters or burdens the next.

use std::process::Command;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::runner::{Better, Case, Outcome, Run, Stack, Target};
use crate::sys::{self, Timer};
use crate::{ours, smol};

/// How the connections come to exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Creation {
    /// One after another on a virtual clock that advances between them, with every timer
    /// that falls due firing (delayed ACKs, retransmission timers being cancelled…).
    Spread,
    /// All at one instant: no timer fires while they are made.
    Instant,
}

impl Creation {
    fn label(self) -> &'static str {
        match self {
            Creation::Spread => "timers firing",
            Creation::Instant => "all at one instant",
        }
    }
}

/// What a child reports on stdout, one JSON line.
#[derive(Serialize, Deserialize, Debug)]
pub struct ChildReport {
    pub conns: u64,
    pub rss_before: u64,
    pub rss_after: u64,
    pub build_cpu_seconds: f64,
}

/// The child's job: build, measure, report.
pub fn child(stack: Stack, how: Creation, conns: u64) -> anyhow::Result<()> {
    let rss_before = sys::resident_bytes()?;
    let timer = Timer::start();
    let report = |held: &dyn std::any::Any| -> anyhow::Result<ChildReport> {
        let (_, cpu) = timer.stop();
        std::hint::black_box(held);
        Ok(ChildReport {
            conns,
            rss_before,
            rss_after: sys::resident_bytes()?,
            build_cpu_seconds: cpu,
        })
    };
    let r = match stack {
        Stack::Tcpfsm => report(&ours::fill_time_wait(conns, how)?)?,
        Stack::Smoltcp => report(&smol::fill_time_wait(conns, how)?)?,
    };
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}

fn spawn_child(stack: Stack, how: Creation, conns: u64) -> anyhow::Result<ChildReport> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let out = Command::new(exe)
        .args(["memory-child", "--stack", stack.name(), "--creation"])
        .arg(match how {
            Creation::Spread => "spread",
            Creation::Instant => "instant",
        })
        .args(["--conns", &conns.to_string()])
        .output()
        .context("running the memory child")?;
    if !out.status.success() {
        bail!(
            "memory child failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let line = String::from_utf8(out.stdout)?;
    serde_json::from_str(line.trim()).with_context(|| format!("child said {line:?}"))
}

const MILLION: f64 = 1_000_000.0;

fn run(stack: Stack, how: Creation, ours_n: u64, smol_n: u64) -> anyhow::Result<Outcome> {
    let n = match stack {
        Stack::Tcpfsm => ours_n,
        Stack::Smoltcp => smol_n,
    };
    let r = spawn_child(stack, how, n)?;
    let per_conn = r.rss_after.saturating_sub(r.rss_before) as f64 / n as f64;
    let mut run = Run::new()
        .metric("resident", "B per connection", per_conn)
        .metric(
            "resident for 1M",
            "MiB",
            per_conn * MILLION / (1 << 20) as f64,
        )
        .metric(
            "build rate",
            "conn/s per CPU-s",
            n as f64 / r.build_cpu_seconds,
        );
    if n as f64 != MILLION {
        run = run.note(format!(
            "measured with {n} connections; the 1M figure is extrapolated"
        ));
    }
    Ok(Outcome::Ran(run))
}

/// `smol_n` is smaller than `ours_n`: smoltcp walks every socket on each poll, so building N
/// connections costs it O(N²) and a million would take hours; its per-connection cost does
/// not depend on N.
pub fn cases<'a>(ours_n: u64, smol_n: u64) -> Vec<Case<'a>> {
    [Creation::Spread, Creation::Instant]
        .into_iter()
        .map(|how| Case {
            workload: "memory",
            name: format!("TIME_WAIT, {}", how.label()),
            better: Better::Lower,
            target: Some(Target::OursAtMost("resident for 1M", 100.0)),
            run: Box::new(move |s| run(s, how, ours_n, smol_n)),
        })
        .collect()
}

/// `size_of` of each stack's per-connection records, and what a smoltcp socket holds.
pub fn record_sizes() -> Vec<(Stack, &'static str, usize)> {
    let mut v: Vec<(Stack, &'static str, usize)> = ours::record_sizes()
        .into_iter()
        .map(|(k, n)| (Stack::Tcpfsm, k, n))
        .collect();
    v.extend(
        smol::record_sizes()
            .into_iter()
            .map(|(k, n)| (Stack::Smoltcp, k, n)),
    );
    v.push((
        Stack::Smoltcp,
        "socket buffers (this suite: 2 x 65,535; kept in TIME_WAIT)",
        smol::BUFFERS_PER_SOCKET,
    ));
    v
}
