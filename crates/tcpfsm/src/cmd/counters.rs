//! `tcpfsm counters`: the kernel's TCP MIB the way `nstat` shows it — the snmp `Tcp:` and
//! netstat `TcpExt:` counters under nstat's names (`TcpExtTCPSackRecovery`), as increments
//! since the last run (a history file, like nstat's), over an interval, or absolute.
//!
//! Gauges and parameters (TcpCurrEstab, TcpRtoMin, TcpMaxConn, …) have no increments: like
//! nstat, the increment views leave them out; `-a` shows them with the counters.

mod history;

use super::states::{v, J};
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tcpfsm_host::NamedValue;
use tcpfsm_states::mib::Kind;

#[derive(clap::Args)]
#[command(after_help = "Examples:
  tcpfsm counters                         what changed since the last run (first run: since boot)
  tcpfsm counters -a TcpExtTCPSynRetrans  one counter's value since boot
  tcpfsm counters '*Retrans*' 'TcpExtTCPSack*' -z
  tcpfsm counters --interval 5s           increments and rates every 5 s, until interrupted
  tcpfsm counters --all-protocols --json  also Ip, Icmp, Udp, IPv6…, as nstat --json
  tcpfsm counters --interval 1s --count 3 three one-second reports, then exit
  tcpfsm counters -s                      since the last run, without moving the mark
  tcpfsm counters -r                      since boot, and start the history afresh
  tcpfsm counters --netns blue            another namespace (its own history)

History: $TCPFSM_COUNTERS_HISTORY, else $XDG_RUNTIME_DIR/tcpfsm-counters.json, else
/tmp/tcpfsm-counters.<uid>; kept per network namespace.")]
pub struct Args {
    /// Only counters whose nstat name matches one of these shell patterns, in any case
    /// (TcpExtTCPSack*, *retrans*); patterns naming other protocols (Ip*, Udp*) select those too
    #[arg(value_name = "PATTERN")]
    pub patterns: Vec<String>,
    /// Absolute values since boot, gauges and parameters included (like nstat -a)
    #[arg(short = 'a', long)]
    pub absolute: bool,
    /// Show counters that are zero too (like nstat -z)
    #[arg(short = 'z', long)]
    pub zeros: bool,
    /// Forget the history: show values since boot, then remember this run (like nstat -r)
    #[arg(short = 'r', long)]
    pub reset: bool,
    /// Leave the history as it is (like nstat -s)
    #[arg(short = 's', long = "no-update")]
    pub no_update: bool,
    /// Report the increments every DURATION (5s, 500ms) until interrupted; the history is
    /// neither read nor written
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION",
          conflicts_with_all = ["absolute", "reset", "no_update"])]
    pub interval: Option<Duration>,
    /// With --interval: stop after N reports
    #[arg(long, requires = "interval", value_name = "N")]
    pub count: Option<u64>,
    /// Every protocol nstat shows (Ip, Icmp, Udp, UdpLite, IPv6, MPTcp), not only TCP
    #[arg(long)]
    pub all_protocols: bool,
    /// Read the network namespace NAME (/run/netns/NAME, or a path such as /proc/PID/ns/net)
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// JSON output: {"kernel":{"TcpInSegs":…}}, as nstat --json writes it
    #[arg(long, short = 'j')]
    pub json: bool,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Which counters the patterns select (all when there are none).
struct Select {
    patterns: Vec<glob::Pattern>,
}

impl Select {
    fn new(raw: &[String]) -> anyhow::Result<Select> {
        let patterns = raw
            .iter()
            .map(|p| {
                glob::Pattern::new(p)
                    .map_err(|e| anyhow::anyhow!("bad counter pattern {p:?}: {}", e.msg))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Select { patterns })
    }

    /// nstat matches with fnmatch(…, FNM_CASEFOLD): case does not matter.
    fn matches(&self, name: &str) -> bool {
        let opts = glob::MatchOptions {
            case_sensitive: false,
            ..glob::MatchOptions::new()
        };
        self.patterns.is_empty() || self.patterns.iter().any(|p| p.matches_with(name, opts))
    }

    /// Patterns may name non-TCP counters: then every protocol must be read.
    fn needs_all_protocols(&self) -> bool {
        self.patterns
            .iter()
            .any(|p| !p.as_str().to_ascii_lowercase().starts_with("tcp"))
    }
}

/// One line of output.
struct Line {
    name: String,
    value: i128,
    rate: f64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match run_inner(&args) {
        Err(e) if super::states::is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        r => r,
    }
}

fn run_inner(args: &Args) -> anyhow::Result<ExitCode> {
    let select = Select::new(&args.patterns)?;
    let all = args.all_protocols || select.needs_all_protocols();
    if let Some(ns) = &args.netns {
        tcpfsm_host::netns::enter(ns)?;
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    if let Some(every) = args.interval {
        return interval(&mut out, args, &select, all, every);
    }

    let cur = tcpfsm_host::read_nstat(all)?;
    let t = now_ms();
    let path = history::path(|k| std::env::var(k).ok(), uid());
    let (mut hist, warning) = history::load(&path, uid());
    if let Some(w) = warning {
        eprintln!("tcpfsm counters: {w}");
    }
    let key = history::netns_key();
    let boot = history::boot_id();
    let prev = hist
        .namespaces
        .get(&key)
        .filter(|_| !args.reset && !args.absolute)
        .filter(|s| {
            let same = s.boot_id == boot;
            if !same {
                eprintln!("tcpfsm counters: history is from another boot, ignoring it");
            }
            same
        })
        .cloned();
    let lines: Vec<Line> = match &prev {
        _ if args.absolute => cur
            .iter()
            .filter(|n| select.matches(&n.name))
            .map(|n| Line {
                name: n.name.clone(),
                value: n.signed(),
                rate: 0.0,
            })
            .collect(),
        p => increments(&cur, p.as_ref(), t, &select),
    };
    write_report(&mut out, &lines, args.zeros, args.json, None)?;
    out.flush()?;

    if !args.no_update {
        // Only the counters this run selected move on, as with nstat: `tcpfsm counters
        // TcpExtTCPSynRetrans` takes that one counter's increment and leaves the others
        // (and other protocols, when not read) to the next run.
        let entry = hist.namespaces.entry(key).or_default();
        if entry.boot_id != boot {
            entry.values.clear();
        }
        entry.boot_id = boot;
        entry.time_ms = t;
        for n in cur.iter().filter(|n| select.matches(&n.name)) {
            entry.values.insert(n.name.clone(), n.value);
        }
        hist.version = 1;
        if let Err(e) = history::save(&path, &hist) {
            eprintln!(
                "tcpfsm counters: cannot update the history {}: {e}",
                path.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Increments since `prev` (or since boot without one): counters only, a counter that went
/// down counts from its reset; rates over the time since `prev`.
fn increments(
    cur: &[NamedValue],
    prev: Option<&history::Sample>,
    t_ms: u64,
    select: &Select,
) -> Vec<Line> {
    let secs = prev
        .map(|p| t_ms.saturating_sub(p.time_ms) as f64 / 1000.0)
        .filter(|s| *s > 0.0);
    cur.iter()
        .filter(|n| n.kind == Kind::Counter && select.matches(&n.name))
        .map(|n| {
            let old = prev.and_then(|p| p.values.get(&n.name)).copied();
            let d = match old {
                Some(o) if n.value >= o => n.value - o,
                _ => n.value,
            };
            Line {
                name: n.name.clone(),
                value: d as i128,
                rate: secs.map_or(0.0, |s| d as f64 / s),
            }
        })
        .collect()
}

/// nstat's text (`#kernel`, then name, value and rate per line) or JSON.
fn write_report(
    out: &mut impl Write,
    lines: &[Line],
    zeros: bool,
    json: bool,
    when: Option<(u64, f64)>,
) -> anyhow::Result<()> {
    let shown = lines.iter().filter(|l| zeros || l.value != 0);
    if json {
        let kernel = J::K(shown.map(|l| (l.name.clone(), v(l.value as i64))).collect());
        let mut o = Vec::new();
        if let Some((t, secs)) = when {
            o.push(("time", v(rfc3339(t))));
            o.push(("interval_secs", v(secs)));
        }
        o.push(("kernel", kernel));
        serde_json::to_writer(&mut *out, &J::O(o))?;
        writeln!(out)?;
        return Ok(());
    }
    match when {
        Some((t, secs)) => writeln!(out, "#kernel {} ({secs:.1}s)", rfc3339(t))?,
        None => writeln!(out, "#kernel")?,
    }
    for l in shown {
        // nstat's columns: %-32s%-16llu%6.1f (with a space after an over-long name).
        let name = if l.name.len() >= 32 {
            format!("{} ", l.name)
        } else {
            format!("{:<32}", l.name)
        };
        writeln!(out, "{name}{:<16}{:>6.1}", l.value, l.rate)?;
    }
    Ok(())
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// `--interval`: a report of the increments at each tick, from a first read at the start.
fn interval(
    out: &mut impl Write,
    args: &Args,
    select: &Select,
    all: bool,
    every: Duration,
) -> anyhow::Result<ExitCode> {
    if every.is_zero() {
        anyhow::bail!("--interval must be longer than 0");
    }
    let start = Instant::now();
    let mut last = tcpfsm_host::read_nstat(all)?;
    let mut last_t = now_ms();
    let mut n = 0u64;
    while args.count.is_none_or(|c| n < c) {
        n += 1;
        // Sleep to the n-th tick, so reading and printing do not stretch the interval.
        if let Some(left) = (every * n as u32).checked_sub(start.elapsed()) {
            std::thread::sleep(left);
        }
        let cur = tcpfsm_host::read_nstat(all)?;
        let t = now_ms();
        let prev = history::Sample {
            boot_id: String::new(),
            time_ms: last_t,
            values: last.iter().map(|x| (x.name.clone(), x.value)).collect(),
        };
        let lines = increments(&cur, Some(&prev), t, select);
        let secs = t.saturating_sub(last_t) as f64 / 1000.0;
        write_report(out, &lines, args.zeros, args.json, Some((t, secs)))?;
        out.flush()?;
        last = cur;
        last_t = t;
    }
    Ok(ExitCode::SUCCESS)
}
