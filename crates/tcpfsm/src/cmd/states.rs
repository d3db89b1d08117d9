//! `tcpfsm states`: this host's TCP connections by state, from netlink sock_diag.
//!
//! Without filters it prints the eleven counts (zeros included) from the counting fast path.
//! With `--state`, `--port`, `--process`, a filter expression, `--list`, or any of `-o`, `-i`,
//! `-m`, it lists the matching sockets like `ss -tanp` (owners resolved from /proc only for the
//! listed sockets). `--by` groups counts.

mod group;
mod json;
mod listing;

pub(crate) use json::{census_json, v, J};

use anyhow::Context;
use group::{ephemeral_key, GroupBy, PortContext};
use listing::{Ext, Listed, Show};
use std::collections::HashSet;
use std::io::{self, Write};
use std::process::ExitCode;
use tcpfsm_host::{
    attribute, read_sysctls, sockets_of, Attribution, Expr, Extensions, Family, Filter, Owner,
    SockDiag, StateSet,
};
use tcpfsm_states::{Census, State};

#[derive(clap::Args)]
#[command(
    after_help = "FILTER is ss's: [state STATE]... [exclude STATE]... [EXPRESSION]
  EXPRESSION: sport/dport OP PORT (OP: = != < > <= >=, or eq ne lt gt le ge; PORT: :443, :https,
  :8000-8080), src/dst [=|!=] ADDR (10.0.0.1, 10.0.0.0/8, 10.0.0.1:80, [2001:db8::]/32),
  joined by and, or, not and ( ); side by side means and. Quote it for the shell.
  State groups as in ss: all, connected, synchronized, bucket, big.

PROCESS is ss -p's users:((\"nginx\",pid=812,fd=6)), or why no process holds the socket:
  no owner (kernel)             TIME_WAIT, half-open and orphaned sockets, an unaccepted connection
  no owner (hidden: not root)   another user's process; run as root to see it
  no owner (gone: closed meanwhile)
JSON: \"no_owner\": \"kernel\" | \"hidden\" | \"gone\" | null.

Examples:
  tcpfsm states                                   counts of all 11 states, zeros included
  tcpfsm states -o state time-wait                TIME_WAIT sockets with the time each has left
  tcpfsm states -i dport = :443                   rtt, cwnd, retransmits… of connections to 443
  tcpfsm states -m -s established                 socket memory (skmem) of established sockets
  tcpfsm states '( sport = :80 or sport = :443 ) and dst 10.0.0.0/8'
  tcpfsm states --by local-port                   service ports; ephemeral ports as one row
  tcpfsm states --netns blue --state close-wait   another network namespace (ip netns add blue)"
)]
pub struct Args {
    /// Only these states (repeatable or comma-separated; ss spellings work: close-wait, syn-recv, estab)
    #[arg(long, short = 's', value_delimiter = ',')]
    pub state: Vec<State>,
    /// Only sockets whose local or remote port is this
    #[arg(long, short = 'p')]
    pub port: Option<u16>,
    /// Only sockets held by processes whose command (comm) is NAME, or whose pid is NAME
    #[arg(long, value_name = "NAME")]
    pub process: Option<String>,
    /// Group the counts by owning process, local port or remote
    #[arg(long, value_enum)]
    pub by: Option<GroupBy>,
    /// List the sockets even without a filter
    #[arg(long, short = 'l')]
    pub list: bool,
    /// With filters, print only the counts (no socket list)
    #[arg(long, short = 'c', conflicts_with_all = ["list", "by", "timers", "info", "memory"])]
    pub count: bool,
    /// Show each socket's timer, like ss -o: timer:(timewait,59sec,0) is TIME_WAIT's time left;
    /// on (retransmit), keepalive, persist (zero-window probe)
    #[arg(long = "timers", short = 'o')]
    pub timers: bool,
    /// Show TCP internals from the kernel's tcp_info, like ss -i: rtt/rttvar, cwnd, ssthresh,
    /// retransmits, mss, delivery rate, … (asked from the kernel only with this flag)
    #[arg(long = "info", short = 'i')]
    pub info: bool,
    /// Show socket memory, like ss -m: skmem:(r,rb,t,tb,f,w,o,bl,d)
    #[arg(long = "memory", short = 'm')]
    pub memory: bool,
    /// Read the network namespace NAME (/run/netns/NAME, as ip netns names it, or a path such
    /// as /proc/PID/ns/net)
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// Count TIME_WAIT by dumping every socket instead of reading the kernel's own TIME_WAIT
    /// counter (slower; the two agree)
    #[arg(long)]
    pub exact: bool,
    /// Do not resolve owning processes when listing (faster; like ss without -p)
    #[arg(long)]
    pub no_process: bool,
    /// IPv4 only
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// IPv6 only
    #[arg(short = '6')]
    pub ipv6: bool,
    /// JSON output (state names as in the simulator: "TIME_WAIT", ...)
    #[arg(long)]
    pub json: bool,
    /// ss-style filter: [state STATE]... [EXPRESSION] (see below)
    #[arg(value_name = "FILTER")]
    pub filter: Vec<String>,
}

/// `ss`'s state groups.
fn state_group(name: &str) -> Option<StateSet> {
    use State::*;
    let all: Vec<State> = State::ALL.to_vec();
    let without =
        |xs: &[State]| -> StateSet { all.iter().copied().filter(|s| !xs.contains(s)).collect() };
    Some(match name {
        "all" => StateSet::ALL,
        "connected" => without(&[Listen, Closed]),
        "synchronized" => without(&[Listen, Closed, SynSent]),
        "bucket" => StateSet::of(&[SynReceived, TimeWait]),
        "big" => without(&[SynReceived, TimeWait]),
        _ => return None,
    })
}

/// The positional filter: leading `state X` / `exclude X` words, then an expression.
struct Positional {
    include: StateSet,
    exclude: StateSet,
    expr: Option<Expr>,
}

fn positional(words: &[String]) -> anyhow::Result<Positional> {
    let joined = words.join(" ");
    let mut toks: Vec<&str> = joined.split_whitespace().collect();
    let mut p = Positional {
        include: StateSet::EMPTY,
        exclude: StateSet::EMPTY,
        expr: None,
    };
    while let Some(kw @ ("state" | "exclude")) = toks.first().copied() {
        let name = toks
            .get(1)
            .ok_or_else(|| anyhow::anyhow!("bad filter: {kw} needs a state name"))?;
        let set = match state_group(name) {
            Some(g) => g,
            None => StateSet::of(&[name.parse::<State>()?]),
        };
        let target = if kw == "state" {
            &mut p.include
        } else {
            &mut p.exclude
        };
        *target = set.iter().fold(*target, StateSet::with);
        toks.drain(..2);
    }
    if !toks.is_empty() {
        p.expr = Some(toks.join(" ").parse::<Expr>()?);
    }
    Ok(p)
}

fn print_census(out: &mut impl Write, c: &Census) -> io::Result<()> {
    writeln!(out, "{:<13} {:>9}", "STATE", "COUNT")?;
    for (s, n) in c.iter() {
        writeln!(out, "{:<13} {:>9}", s.name(), n)?;
    }
    writeln!(out, "{:<13} {:>9}", "TOTAL", c.total())
}

fn write_counts(out: &mut impl Write, c: &Census, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        serde_json::to_writer(
            &mut *out,
            &J::O(vec![("states", census_json(c)), ("total", v(c.total()))]),
        )?;
        writeln!(out)?;
    } else {
        print_census(out, c)?;
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match run_inner(args) {
        // `tcpfsm states --list | head`: the reader went away; that is not a failure.
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        r => r,
    }
}

/// True when output failed because the reader closed the pipe.
pub(crate) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    let kind = e
        .downcast_ref::<io::Error>()
        .map(io::Error::kind)
        .or_else(|| {
            e.downcast_ref::<serde_json::Error>()
                .and_then(|j| j.io_error_kind())
        });
    kind == Some(io::ErrorKind::BrokenPipe)
}

fn run_inner(args: Args) -> anyhow::Result<ExitCode> {
    let pos = positional(&args.filter)?;
    let mut states: StateSet = args.state.iter().copied().collect();
    states = pos.include.iter().fold(states, StateSet::with);
    if states.is_empty() {
        states = StateSet::ALL;
    }
    states = states
        .iter()
        .filter(|s| !pos.exclude.contains(*s))
        .collect();
    let family = match (args.ipv4, args.ipv6) {
        (true, _) => Family::V4,
        (_, true) => Family::V6,
        _ => Family::Both,
    };
    let filter = Filter {
        states,
        port: args.port,
        family,
    };
    if let Some(ns) = &args.netns {
        tcpfsm_host::netns::enter(ns)?;
    }
    let mut diag = SockDiag::new().context("cannot read the socket table")?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let show = Show {
        timers: args.timers,
        info: args.info,
        memory: args.memory,
    };

    let filtered = states != StateSet::ALL
        || args.port.is_some()
        || args.process.is_some()
        || pos.expr.is_some();
    let detail = show.timers || show.info || show.memory;
    if args.by.is_none()
        && (!filtered || args.count)
        && !args.list
        && !detail
        && args.process.is_none()
        && pos.expr.is_none()
    {
        // The fast path: counts only, one dump for both families, no per-socket work.
        let c = if args.exact {
            diag.census_exact(&filter)?
        } else {
            diag.census(&filter)?
        };
        write_counts(&mut out, &c, args.json)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }

    // --process: resolve the named processes' socket inodes first (only their fd directories
    // are read), then keep the sockets whose inode is among them.
    let by_name: Option<Attribution> = args.process.as_deref().map(|name| {
        let pid = name.parse::<u32>().ok();
        let a = sockets_of(|p| p.comm == name || Some(p.pid) == pid);
        if a.is_empty() && a.denied_pids.is_empty() {
            eprintln!("tcpfsm: no process named {name:?} holds any socket");
        }
        a
    });
    // A TIME_WAIT socket is a kernel minisock that no file refers to, so it never has an owner:
    // when selecting by process, do not ask the kernel for them at all (on a busy host they are
    // most of the table).
    let dump_filter = if by_name.is_some() {
        Filter {
            states: filter
                .states
                .iter()
                .filter(|s| *s != State::TimeWait)
                .collect(),
            ..filter
        }
    } else {
        filter
    };
    let keep = |r: &tcpfsm_host::SocketRow| {
        by_name
            .as_ref()
            .is_none_or(|a| matches!(a.owner(r.inode), Owner::Processes(_)))
            && pos
                .expr
                .as_ref()
                .is_none_or(|e| e.matches(r.local, r.remote))
    };
    let mut rows: Vec<Listed> = Vec::new();
    let ext = Extensions {
        info: show.info,
        memory: show.memory,
    };
    if ext == Extensions::NONE {
        // No extensions asked for: the plain dump, no attribute parsing per socket.
        diag.for_each(&dump_filter, |r| {
            if keep(r) {
                rows.push(Listed { row: *r, ext: None });
            }
        })?;
    } else {
        diag.for_each_ext(&dump_filter, ext, |r, x| {
            if keep(r) {
                let has = x.info.is_some() || x.skmem.is_some();
                rows.push(Listed {
                    row: *r,
                    ext: has.then(|| {
                        Box::new(Ext {
                            info: x.info,
                            cong: x.cong.map(str::to_string),
                            skmem: x.skmem,
                        })
                    }),
                });
            }
        })?;
    }
    rows.sort_by_key(|l| (l.row.state, l.row.local, l.row.remote));
    let census: Census = rows.iter().map(|l| l.row.state).collect();
    if args.count {
        // --process or a filter expression with --count: the counts of the matching sockets.
        write_counts(&mut out, &census, args.json)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }

    let want_owner = !args.no_process || args.by == Some(GroupBy::Process);
    let attribution: Option<Attribution> = if let Some(a) = by_name {
        Some(a)
    } else if want_owner {
        let inodes: HashSet<u64> = rows
            .iter()
            .map(|l| l.row.inode)
            .filter(|i| *i != 0)
            .collect();
        Some(attribute(&inodes))
    } else {
        None
    };
    if let Some(a) = &attribution {
        if !a.denied_pids.is_empty() {
            eprintln!(
                "tcpfsm: {} processes' descriptors are unreadable (not root): their sockets show as \"{}\"",
                a.denied_pids.len(),
                tcpfsm_observe::NoOwner::Hidden.label()
            );
        }
    }

    if let Some(by) = args.by {
        let plain: Vec<tcpfsm_host::SocketRow> = rows.iter().map(|l| l.row).collect();
        let ports = port_context(&mut diag, &plain, by)?;
        let groups = group::group(&plain, by, attribution.as_ref(), &ports);
        if args.json {
            let gs: Vec<J> = groups
                .iter()
                .map(|(k, c)| {
                    J::O(vec![
                        ("key", v(k.clone())),
                        ("total", v(c.total())),
                        ("states", census_json(c)),
                    ])
                })
                .collect();
            let mut o = vec![("by", v(by.name()))];
            if let (GroupBy::LocalPort, Some(r)) = (by, ports.ephemeral) {
                o.push(("ephemeral_key", v(ephemeral_key(r))));
            }
            o.extend([
                ("groups", J::A(gs)),
                ("states", census_json(&census)),
                ("total", v(census.total())),
            ]);
            serde_json::to_writer(&mut out, &J::O(o))?;
            writeln!(out)?;
        } else {
            writeln!(out, "{:<32} {:>8}  STATES", "GROUP", "TOTAL")?;
            for (k, c) in &groups {
                let parts: Vec<String> = c
                    .iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(s, n)| format!("{}={n}", s.name()))
                    .collect();
                writeln!(out, "{:<32} {:>8}  {}", k, c.total(), parts.join(" "))?;
            }
        }
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }

    if args.json {
        let socks: Vec<J> = rows
            .iter()
            .map(|l| listing::json(l, attribution.as_ref(), show))
            .collect();
        serde_json::to_writer(
            &mut out,
            &J::O(vec![
                ("sockets", J::A(socks)),
                ("states", census_json(&census)),
                ("total", v(census.total())),
            ]),
        )?;
        writeln!(out)?;
    } else {
        listing::header(&mut out)?;
        let mut buf = String::with_capacity(256);
        for l in &rows {
            listing::text(&mut out, l, attribution.as_ref(), show, &mut buf)?;
        }
        let parts: Vec<String> = census
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| format!("{}={n}", s.name()))
            .collect();
        let n = census.total();
        if parts.is_empty() {
            writeln!(out, "{n} sockets")?;
        } else {
            writeln!(out, "{n} sockets {}", parts.join(" "))?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The ephemeral range and the listening ports, for `--by local-port` (the listeners are
/// dumped separately when the listing itself left them out).
fn port_context(
    diag: &mut SockDiag,
    rows: &[tcpfsm_host::SocketRow],
    by: GroupBy,
) -> anyhow::Result<PortContext> {
    if by != GroupBy::LocalPort {
        return Ok(PortContext {
            ephemeral: None,
            listening: HashSet::new(),
        });
    }
    let mut listening: HashSet<u16> = rows
        .iter()
        .filter(|r| r.state == State::Listen)
        .map(|r| r.local.port())
        .collect();
    if !rows.iter().any(|r| r.state == State::Listen) {
        listening.extend(diag.listeners()?.iter().map(|r| r.local.port()));
    }
    Ok(PortContext {
        ephemeral: read_sysctls().ephemeral_ports,
        listening,
    })
}
