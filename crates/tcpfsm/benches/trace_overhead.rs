//! What `tcpfsm trace` costs the traced host, and whether it keeps up.
//!
//! Churns loopback connections (connect, accept, close both; 10 kernel transitions each) in
//! four ways, interleaved over several rounds (the order reverses every round, so drift
//! and noise from other load fall on every mode alike):
//!
//! - `untraced`;
//! - `--port` : traced, filtered in the kernel to the churn's port, TIME_WAIT lookups on;
//! - `all`    : traced unfiltered, TIME_WAIT lookups on (the default);
//! - `all, no lookups`: traced unfiltered with `--lookup-rate 0`.
//!
//! It reports the median connections per second of each mode, the median of the per-round
//! ratios to the untraced run of the same round, and how many of the kernel's transitions
//! each traced run delivered (lines the tracepoint produced, or rewrote from sock_diag, for
//! the churn's port), plus the TIME_WAIT entries sock_diag found. Needs root (tracefs). Run:
//!
//!     cargo bench -p tcpfsm --bench trace_overhead            # 10 000 connections, 3 rounds
//!     TCPFSM_BENCH_CONNS=50000 TCPFSM_BENCH_ROUNDS=5 cargo bench -p tcpfsm --bench trace_overhead

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Untraced,
    Port,
    All,
    AllNoLookups,
}

const MODES: [Mode; 4] = [Mode::Untraced, Mode::Port, Mode::All, Mode::AllNoLookups];

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Untraced => "untraced",
            Mode::Port => "traced --port",
            Mode::All => "traced, all",
            Mode::AllNoLookups => "traced, all, --lookup-rate 0",
        }
    }
}

/// What the tracer printed for the churn's port.
#[derive(Default, Clone, Copy)]
struct Seen {
    /// Lines for a kernel transition (as reported, or rewritten from sock_diag).
    kernel: usize,
    /// Of those, the FIN_WAIT_2/CLOSING -> TIME_WAIT found through sock_diag.
    time_wait: usize,
}

fn churn(l: &TcpListener, n: usize) -> f64 {
    let port = l.local_addr().unwrap().port();
    let t = Instant::now();
    for _ in 0..n {
        let c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (s, _) = l.accept().expect("accept");
        drop(c);
        drop(s);
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// One run: connections/s and, when traced, what the tracer delivered.
fn run(mode: Mode, n: usize) -> (f64, Option<Seen>) {
    if mode == Mode::Untraced {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let rate = churn(&l, n);
        return (rate, None);
    }
    // The listener's port must be known before tracing starts to filter on it.
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().unwrap().port();
    drop(l);
    let mut args = vec!["trace".to_string(), "--json".to_string()];
    match mode {
        Mode::Port => args.extend(["--port".to_string(), port.to_string()]),
        Mode::AllNoLookups => args.extend(["--lookup-rate".to_string(), "0".to_string()]),
        _ => {}
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_tcpfsm"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tcpfsm trace");
    // Wait for "tracing …" on stderr: the tracepoint is enabled from then on.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while err.read_line(&mut line).unwrap_or(0) > 0 && !line.contains("tracing") {
        line.clear();
    }
    let stdout = child.stdout.take().unwrap();
    // The port ends either side of a "local-remote" tuple.
    let (as_local, as_remote) = (format!(":{port}-"), format!(":{port}\""));
    let counter = std::thread::spawn(move || {
        let mut seen = Seen::default();
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !(l.contains(&as_local) || l.contains(&as_remote)) {
                continue;
            }
            // What sock_diag noticed on its own (a minisock's later change) has no task.
            if l.contains("\"pid\":null") {
                continue;
            }
            seen.kernel += 1;
            if l.contains("\"to\":\"TIME_WAIT\"") {
                seen.time_wait += 1;
            }
        }
        seen
    });
    let l = TcpListener::bind(("127.0.0.1", port)).expect("rebind");
    let rate = churn(&l, n);
    drop(l);
    std::thread::sleep(Duration::from_millis(500));
    // SIGINT: the tracer drains, removes its tracefs instance and exits.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let _ = child.wait();
    (rate, Some(counter.join().unwrap_or_default()))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn main() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "SKIPPED (needs root): trace_overhead reads the kernel's tracepoints via tracefs"
        );
        return;
    }
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let n = env("TCPFSM_BENCH_CONNS", 10_000);
    let rounds = env("TCPFSM_BENCH_ROUNDS", 3).max(1);
    let expected = n * 10 + 2; // ten per connection, plus the listener's open and close
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); MODES.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); MODES.len()];
    let mut seen: Vec<Vec<Seen>> = vec![Vec::new(); MODES.len()];
    for r in 0..rounds {
        let mut order: Vec<usize> = (0..MODES.len()).collect();
        if r % 2 == 1 {
            order.reverse();
        }
        let mut this = vec![0.0; MODES.len()];
        for i in order {
            let (rate, s) = run(MODES[i], n);
            this[i] = rate;
            rates[i].push(rate);
            if let Some(s) = s {
                seen[i].push(s);
            }
        }
        for i in 0..MODES.len() {
            ratios[i].push(this[i] / this[0]);
        }
    }
    println!(
        "loopback churn: {n} connections per run ({expected} kernel transitions), {rounds} \
         interleaved rounds; medians"
    );
    for (i, m) in MODES.iter().enumerate() {
        let rate = median(rates[i].clone());
        let ratio = median(ratios[i].clone());
        let delivered = seen[i]
            .iter()
            .map(|s| format!("{}/{expected}", s.kernel))
            .collect::<Vec<_>>()
            .join(", ");
        let tw = seen[i]
            .iter()
            .map(|s| s.time_wait.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        if *m == Mode::Untraced {
            println!("  {:<30}: {rate:8.0} connections/s", m.name());
        } else {
            println!(
                "  {:<30}: {rate:8.0} connections/s, {:.0}% of untraced (paired); \
                 transitions delivered per round: {delivered}; TIME_WAIT found: {tw}",
                m.name(),
                100.0 * ratio
            );
        }
    }
}
