//! tcpfsm's engine against smoltcp, side by side in one binary, built with one profile.
//!
//! ```text
//! cargo run --profile bench-lto -p tcpfsm-bench -- all            # the full suite
//! cargo run --profile bench-lto -p tcpfsm-bench -- all --quick    # tiny sizes (CI smoke)
//! cargo run --profile bench-lto -p tcpfsm-bench -- bulk --rounds 7 --json out.jsonl
//! ```
//!
//! Each case runs in interleaved rounds (tcpfsm then smoltcp, then smoltcp then tcpfsm, …);
//! the table shows per-stack medians and the median of the per-round ratios. See
//! BENCHMARKS.md at the repository root for what each workload does and the latest figures.

mod bulk;
mod checksum;
mod lifecycle;
mod memory;
mod ours;
mod pattern;
mod report;
mod runner;
mod smol;
mod sys;
mod tun;

use std::io::Write;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use pattern::Verify;
use runner::{Case, Stack};

#[derive(Parser)]
#[command(about = "tcpfsm vs smoltcp: bulk, lifecycle, memory and TUN benchmarks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Every workload: checksum, bulk, lifecycle, memory, TUN.
    All(Opts),
    /// The Internet checksum alone.
    Checksum(Opts),
    /// 1 GiB one way in memory, MTU 1500 and 65535, checksums on and off.
    Bulk(Opts),
    /// Sequential connections: handshake, 1 byte each way, close, TIME_WAIT expired.
    Lifecycle(Opts),
    /// Resident memory of 1,000,000 TIME_WAIT connections, and record sizes.
    Memory(Opts),
    /// Bulk both directions against the Linux kernel over a TUN device (root).
    Tun(Opts),
    /// (internal) one memory measurement in a fresh process.
    #[command(hide = true)]
    MemoryChild {
        #[arg(long, value_parser = parse_stack)]
        stack: Stack,
        #[arg(long, value_enum)]
        creation: memory::Creation,
        #[arg(long)]
        conns: u64,
    },
}

#[derive(Args, Clone)]
struct Opts {
    /// Tiny sizes and two rounds: checks that every workload still runs (CI smoke test).
    #[arg(long)]
    quick: bool,
    /// Interleaved rounds per case (default 5, or 2 with --quick).
    #[arg(long)]
    rounds: Option<usize>,
    /// Also write the results as JSON lines to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Bytes per bulk transfer (default 1 GiB).
    #[arg(long)]
    bulk_bytes: Option<u64>,
    /// Connections per lifecycle run (default 100,000).
    #[arg(long)]
    lifecycle_conns: Option<u64>,
    /// TIME_WAIT connections for tcpfsm's memory runs (default 1,000,000).
    #[arg(long)]
    memory_conns: Option<u64>,
    /// TIME_WAIT connections for smoltcp's memory runs (default 5,000; it is O(N²)).
    #[arg(long)]
    smoltcp_memory_conns: Option<u64>,
    /// Bytes per TUN transfer and direction (default 256 MiB).
    #[arg(long)]
    tun_bytes: Option<u64>,
    /// Run only the cases whose name contains this (e.g. "MTU 1500, checksums on").
    #[arg(long)]
    case: Option<String>,
    /// Run one stack only (for profiling one with `perf record`); no ratios then.
    #[arg(long, value_parser = parse_stack)]
    only: Option<Stack>,
}

fn parse_stack(s: &str) -> Result<Stack, String> {
    Stack::BOTH
        .into_iter()
        .find(|k| k.name() == s)
        .ok_or_else(|| format!("unknown stack {s:?} (tcpfsm or smoltcp)"))
}

/// The sizes a run uses.
struct Sizes {
    rounds: usize,
    verify: Verify,
    checksum_bytes: u64,
    bulk_bytes: u64,
    lifecycle_conns: u64,
    memory_conns: u64,
    smoltcp_memory_conns: u64,
    tun_bytes: u64,
}

impl Sizes {
    fn from(o: &Opts) -> Sizes {
        let q = o.quick;
        Sizes {
            rounds: o.rounds.unwrap_or(if q { 2 } else { 5 }).max(1),
            verify: if q { Verify::Every } else { Verify::Ends },
            checksum_bytes: if q { 1 << 20 } else { 4 << 30 },
            bulk_bytes: o.bulk_bytes.unwrap_or(if q { 4 << 20 } else { 1 << 30 }),
            lifecycle_conns: o.lifecycle_conns.unwrap_or(if q { 200 } else { 100_000 }),
            memory_conns: o.memory_conns.unwrap_or(if q { 2_000 } else { 1_000_000 }),
            smoltcp_memory_conns: o
                .smoltcp_memory_conns
                .unwrap_or(if q { 200 } else { 5_000 }),
            tun_bytes: o.tun_bytes.unwrap_or(if q { 4 << 20 } else { 256 << 20 }),
        }
    }
}

fn cases<'a>(cmd: &Cmd, z: &Sizes) -> Vec<Case<'a>> {
    let mut v = Vec::new();
    let all = matches!(cmd, Cmd::All(_));
    if all || matches!(cmd, Cmd::Checksum(_)) {
        v.extend(checksum::cases(z.checksum_bytes));
    }
    if all || matches!(cmd, Cmd::Bulk(_)) {
        v.extend(bulk::cases(z.bulk_bytes, z.verify));
    }
    if all || matches!(cmd, Cmd::Lifecycle(_)) {
        v.extend(lifecycle::cases(z.lifecycle_conns));
    }
    if all || matches!(cmd, Cmd::Memory(_)) {
        v.extend(memory::cases(z.memory_conns, z.smoltcp_memory_conns));
    }
    if all || matches!(cmd, Cmd::Tun(_)) {
        v.extend(tun::cases(z.tun_bytes, z.verify));
    }
    v
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let opts = match &cli.cmd {
        Cmd::MemoryChild {
            stack,
            creation,
            conns,
        } => return memory::child(*stack, *creation, *conns),
        Cmd::All(o)
        | Cmd::Checksum(o)
        | Cmd::Bulk(o)
        | Cmd::Lifecycle(o)
        | Cmd::Memory(o)
        | Cmd::Tun(o) => o.clone(),
    };
    let z = Sizes::from(&opts);
    let header = sys::describe_machine();
    if cfg!(debug_assertions) {
        eprintln!("WARNING: built without optimisations; use --profile bench-lto");
    }
    println!("{header}");
    let mut results = Vec::new();
    for mut case in cases(&cli.cmd, &z) {
        if opts
            .case
            .as_ref()
            .is_some_and(|f| !case.name.contains(f.as_str()))
        {
            continue;
        }
        eprintln!("{} / {}", case.workload, case.name);
        results.push(runner::run_case(&mut case, z.rounds, opts.only)?);
    }
    let summaries: Vec<_> = results.iter().map(report::summarise).collect();
    print!("{}", report::table(&summaries));
    if matches!(cli.cmd, Cmd::All(_) | Cmd::Memory(_)) {
        println!("\nrecord sizes (size_of):");
        for (s, what, n) in memory::record_sizes() {
            println!("  {:<8} {what:<60} {n:>7} B", s.name());
        }
    }
    if let Some(path) = &opts.json {
        let mut f =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        writeln!(
            f,
            "{}",
            serde_json::json!({ "suite": "tcpfsm-bench", "machine": header, "rounds": z.rounds, "quick": opts.quick })
        )?;
        for s in &summaries {
            writeln!(f, "{}", report::json_line(s))?;
        }
        let sizes: Vec<_> = memory::record_sizes()
            .into_iter()
            .map(
                |(s, what, n)| serde_json::json!({ "stack": s.name(), "record": what, "bytes": n }),
            )
            .collect();
        writeln!(
            f,
            "{}",
            serde_json::json!({ "workload": "record sizes", "sizes": sizes })
        )?;
    }
    Ok(())
}
