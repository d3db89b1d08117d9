//! `tcpfsm states`: this host's TCP connections by state, from netlink sock_diag.
//!
//! Without filters it prints the eleven counts (zeros included) from the counting fast path.
//! With `--state`, `--port`, `--process` or `--list` it lists the matching sockets like
//! `ss -tanp` (owners resolved from /proc only for the listed sockets). `--by` groups counts.

use anyhow::Context;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use tcpfsm_host::{
    attribute, sockets_of, Attribution, Family, Filter, Owner, SockDiag, SocketRow, StateSet,
};
use tcpfsm_states::{Census, State};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    /// Owning process (pid and command)
    Process,
    /// Local port
    LocalPort,
    /// Remote address and port
    Remote,
    /// Remote address only
    RemoteHost,
}

#[derive(clap::Args)]
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
    #[arg(long, short = 'c', conflicts_with_all = ["list", "by"])]
    pub count: bool,
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
}

/// JSON whose objects keep their keys in the order written (the states in lifecycle order,
/// socket fields in `ss` column order); serde_json's own `Value` would sort them.
enum J {
    V(Value),
    O(Vec<(&'static str, J)>),
    A(Vec<J>),
    /// An object with computed keys (group names, state names).
    K(Vec<(String, J)>),
}

impl serde::Serialize for J {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            J::V(v) => v.serialize(s),
            J::O(kv) => {
                let mut m = s.serialize_map(Some(kv.len()))?;
                for (k, v) in kv {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            J::K(kv) => {
                let mut m = s.serialize_map(Some(kv.len()))?;
                for (k, v) in kv {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            J::A(items) => {
                let mut q = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    q.serialize_element(i)?;
                }
                q.end()
            }
        }
    }
}

fn v(x: impl Into<Value>) -> J {
    J::V(x.into())
}

fn census_json(c: &Census) -> J {
    J::K(
        c.iter()
            .map(|(s, n)| (s.name().to_string(), v(n)))
            .collect(),
    )
}

fn print_census(out: &mut impl Write, c: &Census) -> io::Result<()> {
    writeln!(out, "{:<13} {:>9}", "STATE", "COUNT")?;
    for (s, n) in c.iter() {
        writeln!(out, "{:<13} {:>9}", s.name(), n)?;
    }
    writeln!(out, "{:<13} {:>9}", "TOTAL", c.total())
}

/// Formats an address like ss: `127.0.0.1:80`, `[::1]:80`, `*:*` for the unspecified remote.
fn addr(a: &SocketAddr) -> String {
    if a.ip().is_unspecified() && a.port() == 0 {
        "*:*".into()
    } else if a.ip().is_unspecified() {
        format!("*:{}", a.port())
    } else {
        a.to_string()
    }
}

fn owner_text(a: Option<&Attribution>, inode: u64) -> String {
    match a.map(|a| a.owner(inode)) {
        None => String::new(),
        Some(Owner::Processes(ps)) => ps
            .iter()
            .map(|p| format!("{}[{}]", p.comm, p.pid))
            .collect::<Vec<_>>()
            .join(","),
        Some(Owner::None(why)) => why.label().to_string(),
    }
}

fn owner_json(a: Option<&Attribution>, inode: u64) -> (J, J) {
    match a.map(|a| a.owner(inode)) {
        None => (v(Value::Null), v(Value::Null)),
        Some(Owner::Processes(ps)) => (
            J::A(
                ps.iter()
                    .map(|p| J::O(vec![("pid", v(p.pid)), ("comm", v(p.comm.clone()))]))
                    .collect(),
            ),
            v(Value::Null),
        ),
        Some(Owner::None(why)) => (J::A(vec![]), v(why.key())),
    }
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
    let states = if args.state.is_empty() {
        StateSet::ALL
    } else {
        args.state.iter().copied().collect()
    };
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
    let mut diag = SockDiag::new().context("cannot read the socket table")?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());

    let filtered = !args.state.is_empty() || args.port.is_some() || args.process.is_some();
    if args.by.is_none() && (!filtered || args.count) && !args.list && args.process.is_none() {
        // The fast path: counts only, one dump for both families, no per-socket work.
        let c = if args.exact {
            diag.census_exact(&filter)?
        } else {
            diag.census(&filter)?
        };
        if args.json {
            serde_json::to_writer(
                &mut out,
                &J::O(vec![("states", census_json(&c)), ("total", v(c.total()))]),
            )?;
            writeln!(out)?;
        } else {
            print_census(&mut out, &c)?;
        }
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
    let mut rows: Vec<SocketRow> = Vec::new();
    diag.for_each(&dump_filter, |r| {
        if let Some(a) = &by_name {
            if !matches!(a.owner(r.inode), Owner::Processes(_)) {
                return;
            }
        }
        rows.push(*r);
    })?;
    rows.sort_by_key(|r| (r.state, r.local, r.remote));
    let census: Census = rows.iter().map(|r| r.state).collect();
    if args.count {
        // --process with --count: the counts of that process's sockets, no listing.
        if args.json {
            serde_json::to_writer(
                &mut out,
                &J::O(vec![
                    ("states", census_json(&census)),
                    ("total", v(census.total())),
                ]),
            )?;
            writeln!(out)?;
        } else {
            print_census(&mut out, &census)?;
        }
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }

    let want_owner = !args.no_process || args.by == Some(GroupBy::Process);
    let attribution: Option<Attribution> = if let Some(a) = by_name {
        Some(a)
    } else if want_owner {
        let inodes: HashSet<u64> = rows.iter().map(|r| r.inode).filter(|i| *i != 0).collect();
        Some(attribute(&inodes))
    } else {
        None
    };
    if let Some(a) = &attribution {
        if !a.denied_pids.is_empty() {
            eprintln!(
                "tcpfsm: {} processes' descriptors are unreadable (not root): their sockets show as hidden",
                a.denied_pids.len()
            );
        }
    }

    if let Some(by) = args.by {
        let groups = group(&rows, by, attribution.as_ref());
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
            let by_name = match by {
                GroupBy::Process => "process",
                GroupBy::LocalPort => "local-port",
                GroupBy::Remote => "remote",
                GroupBy::RemoteHost => "remote-host",
            };
            serde_json::to_writer(
                &mut out,
                &J::O(vec![
                    ("by", v(by_name)),
                    ("groups", J::A(gs)),
                    ("states", census_json(&census)),
                    ("total", v(census.total())),
                ]),
            )?;
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
            .map(|r| {
                let (procs, why) = owner_json(attribution.as_ref(), r.inode);
                J::O(vec![
                    ("state", v(r.state.name())),
                    ("recv_q", v(r.rx_queue)),
                    ("send_q", v(r.tx_queue)),
                    ("local", v(r.local.to_string())),
                    ("remote", v(r.remote.to_string())),
                    ("processes", procs),
                    ("unattributed", why),
                    ("inode", v(r.inode)),
                    ("uid", v(r.uid)),
                ])
            })
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
        writeln!(
            out,
            "{:<13} {:>7} {:>7} {:<40} {:<40} PROCESS",
            "STATE", "RECV-Q", "SEND-Q", "LOCAL", "REMOTE"
        )?;
        for r in &rows {
            writeln!(
                out,
                "{:<13} {:>7} {:>7} {:<40} {:<40} {}",
                r.state.name(),
                r.rx_queue,
                r.tx_queue,
                addr(&r.local),
                addr(&r.remote),
                owner_text(attribution.as_ref(), r.inode)
            )?;
        }
        let parts: Vec<String> = census
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| format!("{}={n}", s.name()))
            .collect();
        writeln!(out, "{} sockets {}", census.total(), parts.join(" "))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn group(rows: &[SocketRow], by: GroupBy, a: Option<&Attribution>) -> Vec<(String, Census)> {
    let mut m: BTreeMap<String, Census> = BTreeMap::new();
    for r in rows {
        let key = match by {
            GroupBy::Process => match a.map(|a| a.owner(r.inode)) {
                Some(Owner::Processes(ps)) if !ps.is_empty() => {
                    format!("{}[{}]", ps[0].comm, ps[0].pid)
                }
                Some(Owner::None(why)) => why.label().to_string(),
                _ => "(unknown)".into(),
            },
            GroupBy::LocalPort => r.local.port().to_string(),
            GroupBy::Remote => addr(&r.remote),
            GroupBy::RemoteHost => r.remote.ip().to_string(),
        };
        m.entry(key).or_default().add(r.state, 1);
    }
    let mut v: Vec<(String, Census)> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.total().cmp(&a.1.total()).then(a.0.cmp(&b.0)));
    v
}
