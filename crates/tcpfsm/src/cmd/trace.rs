//! `tcpfsm trace`: the kernel's TCP state transitions as they happen, like bcc's `tcpstates`
//! but from the stable `sock:inet_sock_set_state` tracepoint read through a private tracefs
//! instance (no BPF toolchain, no kprobes; not perf events, which silently miss some
//! softirq-context hits on recent kernels).

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant, UNIX_EPOCH};
use tcpfsm_live::trace::{hostname, Filter, Tracer, Transition};
use tcpfsm_states::State;

#[derive(clap::Args)]
#[command(after_help = "\
Each line: time, the task current when the kernel changed the state (often unrelated, or \
ksoftirqd/swapper, when a segment arrival caused it), local -> remote, old -> new state and \
milliseconds spent in the old state (- when the socket was first seen during this trace).

How Linux reports some changes: an active closer's socket is handed to a TIME_WAIT \
mini-socket, so its last line reads FIN_WAIT_2 -> CLOSED (or FIN_WAIT_1 or CLOSING -> CLOSED); a client's \
CLOSED -> SYN_SENT comes before connect() picks the local port, so it shows port 0; an \
accepted socket starts as LISTEN -> SYN_RECEIVED (the child inherits its listener's state).

Needs root (tracefs): reads the tracepoint through a private tracefs instance \
(instances/tcpfsm-<pid>-<n>, removed on exit, Ctrl-C or SIGTERM); mounts tracefs at \
/sys/kernel/tracing if missing.")]
pub struct Args {
    /// Only transitions where either end uses this port
    #[arg(long)]
    pub port: Option<u16>,
    /// Only transitions into or out of this state (close-wait, TIME_WAIT, syn-recv, ...)
    #[arg(long)]
    pub state: Option<State>,
    /// Stop after this many transitions
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this long (e.g. 10s, 2m)
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// One JSON object per line, in the simulator's event schema
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    tcpfsm_live::signal::install();
    let mut tracer = Tracer::open(Filter {
        port: args.port,
        state: args.state,
    })?;
    let host = hostname();
    // Tell whoever waits on us (a person, or a test) that events from now on are captured.
    eprintln!("tcpfsm: tracing TCP state transitions (sock:inet_sock_set_state); Ctrl-C to stop");
    // Rust's stdout is line-buffered: one write(2) per transition would make the reader the
    // bottleneck at high rates. Buffer, and flush once per batch so output stays live.
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    if !args.json {
        writeln!(
            out,
            "{:<15} {:>7} {:<15} {:<45} {:<12}    {:<12} {:>10}",
            "TIME(UTC)", "PID", "COMM", "LOCAL -> REMOTE", "OLDSTATE", "NEWSTATE", "MS"
        )?;
    }
    let started = Instant::now();
    let mut seen = 0u64;
    let mut batch: Vec<Transition> = Vec::new();
    'outer: loop {
        if tcpfsm_live::signal::stop_requested() {
            break;
        }
        let wait = match args.duration {
            Some(d) => match d.checked_sub(started.elapsed()) {
                Some(left) => left.min(Duration::from_millis(100)),
                None => break,
            },
            None => Duration::from_millis(100),
        };
        batch.clear();
        tracer.poll(wait, &mut batch)?;
        for t in &batch {
            if args.count.is_some_and(|n| seen >= n) {
                break 'outer;
            }
            let written = if args.json {
                let ev = t.json(tracer.t_us(t), &host);
                serde_json::to_writer(&mut out, &ev)
                    .map_err(io::Error::from)
                    .and_then(|_| out.write_all(b"\n"))
            } else {
                write_text(&mut out, &tracer, t)
            };
            match written {
                Ok(()) => {}
                // The reader went away (`| head`): a normal end, not an error.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
                Err(e) => return Err(e.into()),
            }
            seen += 1;
        }
        if let Err(e) = out.flush() {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return Ok(ExitCode::SUCCESS);
            }
            return Err(e.into());
        }
        if args.count.is_some_and(|n| seen >= n) {
            break;
        }
    }
    let _ = out.flush();
    if tracer.lost() > 0 {
        eprintln!(
            "tcpfsm: the kernel dropped {} transitions (trace ring buffer full)",
            tracer.lost()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn write_text(out: &mut impl Write, tracer: &Tracer, t: &Transition) -> io::Result<()> {
    let wall = tracer
        .wall(t)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = wall.as_secs() % 86_400;
    let clock = format!(
        "{:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        wall.subsec_micros()
    );
    let ms = match t.ms_in_prev {
        Some(ms) => format!("{ms:.3}"),
        None => "-".to_string(),
    };
    let conn = format!("{} -> {}", t.local, t.remote);
    writeln!(
        out,
        "{clock:<15} {:>7} {:<15} {conn:<45} {:<12} -> {:<12} {ms:>10}",
        t.pid,
        t.comm,
        t.from.name(),
        t.to.name()
    )
}
