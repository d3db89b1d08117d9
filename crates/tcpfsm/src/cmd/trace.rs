//! `tcpfsm trace`: the kernel's TCP state transitions as they happen, like bcc's `tcpstates`
//! but from stable tracepoints read through a private tracefs instance (no BPF toolchain, no
//! kprobes; not perf events, which silently miss some softirq-context hits on recent kernels),
//! with TIME_WAIT found through sock_diag, and retransmissions and resets on request.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tcpfsm_live::timewait::Limits;
use tcpfsm_live::tpevents::Extra;
use tcpfsm_live::trace::{hostname, Event, Filter, Options, Tracer};
use tcpfsm_live::traceout::{netns_name, netns_note, text_header, write_text, JsonHeader};
use tcpfsm_states::State;

#[derive(clap::Args)]
#[command(after_help = "\
Each line: time, the task current when the kernel acted (often unrelated, or ksoftirqd/swapper, \
when a segment arrival caused it), the socket's kernel address (SKADDR, as bcc's tcpstates \
prints it: it ties one socket's lines together), local -> remote, old -> new state and \
milliseconds spent in the old state (- when the socket was first seen during this trace).

TIME_WAIT: Linux hands an active closer's socket to a TIME_WAIT mini-socket and reports only \
FIN_WAIT_2 -> CLOSED (or CLOSING -> CLOSED) for it. trace then looks the 4-tuple up through \
sock_diag and, when the kernel holds a TIME_WAIT entry for it, prints FIN_WAIT_2 -> TIME_WAIT \
instead, and TIME_WAIT -> CLOSED when the entry is gone (its 60 s timer ran out, it was killed \
by ss -K, or the 4-tuple was reused), with the time spent in TIME_WAIT. Such lines are marked * \
in text and \"source\":\"sock_diag\" in JSON; a disappearance is noticed by looking again, so \
it happened between \"last_seen_us\" and \"t_us\". An orphaned FIN_WAIT_2 (closed before the \
peer's FIN) is shown as FIN_WAIT_2 -> FIN_WAIT_2: a minisock holds it from then on.

Network namespaces: the tracepoints fire for every namespace of the host and carry none, so \
their lines say \"netns\":\"unknown\". TIME_WAIT is looked up in one namespace (yours, or \
--netns); lines found there carry its inode (\"net:[4026531840]\").

Other Linux details: a client's CLOSED -> SYN_SENT comes before connect() picks the local \
port, so it shows port 0 (SKADDR still ties it to the connection); an accepted socket starts \
as LISTEN -> SYN_RECEIVED (the child inherits its listener's state).

Examples:
  tcpfsm trace --port 443 --json                  # one connection's life, as JSON lines
  tcpfsm trace --state time-wait                  # entries into and out of TIME_WAIT
  tcpfsm trace --events retransmit,reset          # what tcpretrans shows, with the states
  tcpfsm trace --netns demo --port 80             # TIME_WAIT looked up in netns \"demo\"
  tcpfsm trace --lookup-rate 0                    # no sock_diag: the kernel's CLOSED as is
  tcpfsm trace --duration 30s --count 1000        # stop after 30 s or 1000 events

Needs root (tracefs): reads the tracepoints through a private tracefs instance \
(instances/tcpfsm-<pid>-<n>, removed on exit, Ctrl-C or SIGTERM); mounts tracefs at \
/sys/kernel/tracing if missing.")]
pub struct Args {
    /// Only events where either end uses this port
    #[arg(long)]
    pub port: Option<u16>,
    /// Only transitions into or out of this state (close-wait, TIME_WAIT, syn-recv, ...), and
    /// retransmits/resets of sockets in it
    #[arg(long)]
    pub state: Option<State>,
    /// Also report these, in the same stream: retransmit (tcp:tcp_retransmit_skb), reset
    /// (tcp:tcp_send_reset and tcp:tcp_receive_reset). E.g. --events retransmit,reset
    #[arg(long, value_delimiter = ',', value_parser = ["retransmit", "reset"])]
    pub events: Vec<String>,
    /// Look TIME_WAIT up in this network namespace (a name under /run/netns, or a path such
    /// as /proc/PID/ns/net) instead of our own
    #[arg(long)]
    pub netns: Option<String>,
    /// sock_diag lookups per second at most, to find TIME_WAIT (0: none; closes beyond the
    /// rate are printed as the kernel reported them, and counted)
    #[arg(long, default_value_t = Limits::default().rate)]
    pub lookup_rate: u32,
    /// Stop after this many events
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this long (e.g. 10s, 2m)
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// One JSON object per line (a first line describes the trace; then one per event)
    #[arg(long)]
    pub json: bool,
}

/// Passes over the rings after a stop signal (each reads up to 4 MiB).
const DRAIN_PASSES: u32 = 16;

fn netns_path(arg: &str) -> PathBuf {
    if arg.contains('/') {
        PathBuf::from(arg)
    } else {
        PathBuf::from("/run/netns").join(arg)
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    tcpfsm_live::signal::install();
    let extra = Extra {
        retransmit: args.events.iter().any(|e| e == "retransmit"),
        reset: args.events.iter().any(|e| e == "reset"),
    };
    let lookup_netns = args.netns.as_deref().map(netns_path);
    if let Some(p) = &lookup_netns {
        anyhow::ensure!(
            p.exists(),
            "--netns {}: no such network namespace ({} does not exist)",
            args.netns.as_deref().unwrap_or_default(),
            p.display()
        );
        anyhow::ensure!(
            args.lookup_rate > 0,
            "--netns needs lookups (--lookup-rate > 0)"
        );
    }
    let mut tracer = Tracer::open(Options {
        filter: Filter {
            port: args.port,
            state: args.state,
        },
        extra,
        lookups: (args.lookup_rate > 0).then(|| Limits {
            rate: args.lookup_rate,
            ..Limits::default()
        }),
        lookup_netns,
    })?;
    let host = hostname();
    let note = netns_note(&tracer);
    // Tell whoever waits on us (a person, or a test) that events from now on are captured.
    eprintln!("tcpfsm: tracing TCP state transitions (sock:inet_sock_set_state); Ctrl-C to stop");
    if !args.json {
        eprintln!("tcpfsm: {note}");
    }
    // Rust's stdout is line-buffered: one write(2) per event would make the reader the
    // bottleneck at high rates. Buffer, and flush once per batch so output stays live.
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let header = if args.json {
        let mut events = vec!["state"];
        if extra.retransmit {
            events.push("retransmit");
        }
        if extra.reset {
            events.push("reset");
        }
        let h = JsonHeader {
            event: "trace",
            host: &host,
            time: humantime::format_rfc3339_micros(tracer.start_wall).to_string(),
            events,
            lookup_netns: tracer.lookup_netns().map(|n| netns_name(Some(n))),
            note,
        };
        serde_json::to_writer(&mut out, &h)
            .map_err(io::Error::from)
            .and_then(|_| out.write_all(b"\n"))
    } else {
        text_header(&mut out)
    };
    if let Err(e) = header.and_then(|_| out.flush()) {
        return closed_or(e);
    }
    let started = Instant::now();
    let mut seen = 0u64;
    let mut batch: Vec<Event> = Vec::new();
    // After Ctrl-C/SIGTERM, what the kernel recorded before the signal is still read: a few
    // passes without waiting, until the rings are empty.
    let mut draining = 0;
    'outer: loop {
        if tcpfsm_live::signal::stop_requested() {
            draining += 1;
            if draining > DRAIN_PASSES {
                break;
            }
        }
        let wait = match args.duration {
            Some(d) => match d.checked_sub(started.elapsed()) {
                Some(left) => left.min(Duration::from_millis(100)),
                None => break,
            },
            None => Duration::from_millis(100),
        };
        let wait = if draining > 0 { Duration::ZERO } else { wait };
        batch.clear();
        tracer.poll(wait, &mut batch)?;
        if draining > 0 && batch.is_empty() {
            break;
        }
        for e in &batch {
            if args.count.is_some_and(|n| seen >= n) {
                break 'outer;
            }
            let written = if args.json {
                serde_json::to_writer(&mut out, &e.json(&tracer, &host))
                    .map_err(io::Error::from)
                    .and_then(|_| out.write_all(b"\n"))
            } else {
                write_text(&mut out, &tracer, e)
            };
            if let Err(e) = written {
                return closed_or(e);
            }
            seen += 1;
        }
        if let Err(e) = out.flush() {
            return closed_or(e);
        }
        if args.count.is_some_and(|n| seen >= n) {
            break;
        }
    }
    let _ = out.flush();
    summary(&tracer);
    Ok(ExitCode::SUCCESS)
}

/// The reader went away (`| head`): a normal end, not an error.
fn closed_or(e: io::Error) -> anyhow::Result<ExitCode> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(e.into())
    }
}

/// What the trace could not deliver, on stderr.
fn summary(tracer: &Tracer) {
    if tracer.lost() > 0 {
        eprintln!(
            "tcpfsm: the kernel dropped {} events (trace ring buffer full)",
            tracer.lost()
        );
    }
    if tracer.corrupt_pages() > 0 {
        eprintln!(
            "tcpfsm: {} ring pages could not be read to their end",
            tracer.corrupt_pages()
        );
    }
    if let Some(s) = tracer.lookup_stats() {
        if s.skipped > 0 {
            eprintln!(
                "tcpfsm: {} closes were not looked up for TIME_WAIT (over --lookup-rate)",
                s.skipped
            );
        }
        if s.untracked > 0 {
            eprintln!(
                "tcpfsm: {} TIME_WAIT entries were not followed to their end (too many at once)",
                s.untracked
            );
        }
        if s.errors > 0 {
            eprintln!("tcpfsm: {} sock_diag lookups failed", s.errors);
        }
    }
}
