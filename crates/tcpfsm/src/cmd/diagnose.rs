//! `tcpfsm diagnose`: sample this host, judge each rule, print verdicts with evidence and advice.
//!
//! Exit status: 0 all OK, 1 at least one warning, 2 at least one critical, 3 the host could not
//! be read (or the thresholds are invalid) — distinct from "critical" so scripts can tell a
//! sick host from a failed check.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tcpfsm_host::{Sampler, SnapshotOptions};
use tcpfsm_observe::{diagnose, worst, Level, Snapshot, Thresholds, Verdict};

/// Exit status when the check itself failed.
const EXIT_ERROR: u8 = 3;

#[derive(clap::Args)]
#[command(
    after_help = "Exit status: 0 OK, 1 warning, 2 critical, 3 error (host unreadable, bad thresholds).\n\
Threshold file: TOML, keys as printed by --print-config; flags and --set override it.\n\n\
Examples:\n  \
tcpfsm diagnose                                   one sample, a verdict per rule\n  \
tcpfsm diagnose --samples 3 --interval 5s         rates and growth over 10 s\n  \
tcpfsm diagnose --set fin_wait2_warn=200 --config thresholds.toml\n  \
tcpfsm diagnose --netns blue --json               another network namespace, for scripts\n  \
tcpfsm diagnose --close-wait-warn 10 --no-fd      one threshold by its flag; skip the /proc walk\n  \
tcpfsm diagnose --print-config > thresholds.toml  the effective thresholds, to edit"
)]
pub struct Args {
    /// Time between samples (e.g. 5s, 500ms, 1m)
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub interval: Duration,
    /// Number of samples (rates and growth need at least 2; CLOSE_WAIT growth needs 3 by default)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub samples: u32,
    /// TOML file with thresholds (missing keys keep their defaults)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Set any threshold by its TOML key, e.g. --set fin_wait2_warn=200 (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// CLOSE_WAIT count for a warning (default 100)
    #[arg(long)]
    pub close_wait_warn: Option<u64>,
    /// CLOSE_WAIT count for critical (default 1000)
    #[arg(long)]
    pub close_wait_crit: Option<u64>,
    /// TIME_WAIT share of the ephemeral range / tcp_max_tw_buckets for a warning (default 0.5)
    #[arg(long)]
    pub time_wait_warn: Option<f64>,
    /// ... for critical (default 0.8)
    #[arg(long)]
    pub time_wait_crit: Option<f64>,
    /// SYN_RECEIVED count for a warning (default 1000)
    #[arg(long)]
    pub syn_recv_warn: Option<u64>,
    /// SYN_RECEIVED count for critical (default 5000)
    #[arg(long)]
    pub syn_recv_crit: Option<u64>,
    /// FIN_WAIT_2 count for a warning (default 500)
    #[arg(long)]
    pub fin_wait2_warn: Option<u64>,
    /// FIN_WAIT_2 count for critical (default 5000)
    #[arg(long)]
    pub fin_wait2_crit: Option<u64>,
    /// Retransmitted share of segments for a warning (default 0.01)
    #[arg(long)]
    pub retrans_warn: Option<f64>,
    /// ... for critical (default 0.05)
    #[arg(long)]
    pub retrans_crit: Option<f64>,
    /// Open descriptors over RLIMIT_NOFILE for a warning (default 0.8)
    #[arg(long)]
    pub fd_warn: Option<f64>,
    /// ... for critical (default 0.95)
    #[arg(long)]
    pub fd_crit: Option<f64>,
    /// Skip the per-process open-file check (avoids reading every process's descriptors)
    #[arg(long)]
    pub no_fd: bool,
    /// Diagnose the network namespace NAME (/run/netns/NAME, or a path such as /proc/PID/ns/net)
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// Print the effective thresholds as TOML and exit
    #[arg(long)]
    pub print_config: bool,
    /// JSON output
    #[arg(long)]
    pub json: bool,
}

fn thresholds(args: &Args) -> anyhow::Result<Thresholds> {
    let mut t = match &args.config {
        Some(p) => Thresholds::load(p)?,
        None => Thresholds::default(),
    };
    macro_rules! flag {
        ($($f:ident => $k:ident),*) => {$(
            if let Some(v) = args.$f { t.$k = v; }
        )*};
    }
    flag!(close_wait_warn => close_wait_warn, close_wait_crit => close_wait_crit,
          time_wait_warn => time_wait_warn_ratio, time_wait_crit => time_wait_crit_ratio,
          syn_recv_warn => syn_recv_warn, syn_recv_crit => syn_recv_crit,
          fin_wait2_warn => fin_wait2_warn, fin_wait2_crit => fin_wait2_crit,
          retrans_warn => retrans_warn_ratio, retrans_crit => retrans_crit_ratio,
          fd_warn => fd_warn_ratio, fd_crit => fd_crit_ratio);
    for kv in &args.set {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            anyhow::anyhow!("--set {kv}: expected KEY=VALUE, e.g. --set close_wait_warn=200")
        })?;
        t = t.with_override(k.trim(), v.trim())?;
    }
    t.validate()?;
    Ok(t)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match run_inner(&args) {
        Ok(code) => Ok(code),
        Err(e) if super::states::is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("tcpfsm diagnose: error: {e:#}");
            Ok(ExitCode::from(EXIT_ERROR))
        }
    }
}

fn run_inner(args: &Args) -> anyhow::Result<ExitCode> {
    let th = thresholds(args)?;
    if args.print_config {
        print!("{}", th.to_toml_string());
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(ns) = &args.netns {
        tcpfsm_host::netns::enter(ns)?;
    }
    let mut sampler = Sampler::new(SnapshotOptions {
        fd_usage: !args.no_fd,
        ..SnapshotOptions::default()
    })?;
    let mut samples: Vec<Snapshot> = Vec::with_capacity(args.samples as usize);
    let start = Instant::now();
    for i in 0..args.samples {
        if i > 0 {
            // Sleep to the i-th tick, so sampling time does not stretch the interval.
            let due = args.interval * i;
            if let Some(left) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(left);
            }
        }
        samples.push(sampler.sample()?);
        if !args.json && args.samples > 1 {
            eprint!("\rsample {}/{}", i + 1, args.samples);
        }
    }
    if !args.json && args.samples > 1 {
        eprintln!();
    }
    let verdicts = diagnose(&samples, &th);
    let overall = worst(&verdicts);
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    if args.json {
        let last = samples.last().expect("at least one sample");
        serde_json::to_writer(
            &mut out,
            &Report {
                overall,
                exit_code: overall.exit_code(),
                samples: samples.len(),
                interval_ms: args.interval.as_millis() as u64,
                states: OrderedCensus(&last.census),
                verdicts: &verdicts,
            },
        )?;
        writeln!(out)?;
    } else {
        print_text(&mut out, &samples, &verdicts, overall, args)?;
    }
    out.flush()?;
    Ok(ExitCode::from(overall.exit_code()))
}

/// The JSON report: fields and states in a fixed, readable order.
#[derive(serde::Serialize)]
struct Report<'a> {
    overall: Level,
    exit_code: u8,
    samples: usize,
    interval_ms: u64,
    states: OrderedCensus<'a>,
    verdicts: &'a [Verdict],
}

/// A census as a JSON object keyed by state name, in lifecycle order.
struct OrderedCensus<'a>(&'a tcpfsm_states::Census);

impl serde::Serialize for OrderedCensus<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(11))?;
        for (st, n) in self.0.iter() {
            m.serialize_entry(st.name(), &n)?;
        }
        m.end()
    }
}

fn tag(l: Level) -> &'static str {
    match l {
        Level::Ok => "OK",
        Level::Warning => "WARNING",
        Level::Critical => "CRITICAL",
    }
}

fn print_text(
    out: &mut impl Write,
    samples: &[Snapshot],
    verdicts: &[Verdict],
    overall: Level,
    args: &Args,
) -> io::Result<()> {
    let span = if samples.len() > 1 {
        format!(
            "{} samples every {}",
            samples.len(),
            humantime::format_duration(args.interval)
        )
    } else {
        "1 sample (use --samples N for rates and growth)".to_string()
    };
    writeln!(out, "tcpfsm diagnose: {span} — overall {}", tag(overall))?;
    if let Some(last) = samples.last() {
        let parts: Vec<String> = last
            .census
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| format!("{}={n}", s.name()))
            .collect();
        writeln!(
            out,
            "states: {}",
            if parts.is_empty() {
                "none".into()
            } else {
                parts.join(" ")
            }
        )?;
    }
    for v in verdicts {
        writeln!(out)?;
        writeln!(
            out,
            "[{:<8}] {}: {}",
            tag(v.level),
            v.rule.title(),
            v.summary
        )?;
        for e in &v.evidence {
            writeln!(out, "    - {e}")?;
        }
        writeln!(out, "    advice: {}", v.advice)?;
    }
    Ok(())
}
