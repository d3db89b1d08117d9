//! What `tcpfsm trace` costs the traced host, and whether it keeps up.
//!
//! Churns loopback connections (connect, accept, close both; 10 transitions each) three ways:
//! untraced, traced with `--port` (filtered in the kernel), and traced unfiltered. It reports
//! connections per second and how many of the expected transitions the tracer delivered.
//! Needs root (tracefs). Run:
//!
//!     cargo bench -p tcpfsm --bench trace_overhead            # 10 000 connections per run
//!     TCPFSM_BENCH_CONNS=50000 cargo bench -p tcpfsm --bench trace_overhead

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn churn(n: usize) -> (u16, f64) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().unwrap().port();
    let t = Instant::now();
    for _ in 0..n {
        let c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (s, _) = l.accept().expect("accept");
        drop(c);
        drop(s);
    }
    (port, n as f64 / t.elapsed().as_secs_f64())
}

/// Runs `churn` while `tcpfsm trace` runs (optionally filtered to the churn's port); returns
/// connections/s and the transitions the tracer reported for that port.
fn traced(n: usize, filtered: bool) -> (f64, usize) {
    // The listener's port must be known before tracing starts to filter on it.
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().unwrap().port();
    drop(l);
    let mut args = vec!["trace".to_string(), "--json".to_string()];
    if filtered {
        args.extend(["--port".to_string(), port.to_string()]);
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
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.contains(&as_local) || l.contains(&as_remote))
            .count()
    });
    let l = TcpListener::bind(("127.0.0.1", port)).expect("rebind");
    let t = Instant::now();
    for _ in 0..n {
        let c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (s, _) = l.accept().expect("accept");
        drop(c);
        drop(s);
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    drop(l);
    std::thread::sleep(Duration::from_millis(500));
    // SIGINT: the tracer drains, removes its tracefs instance and exits.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let _ = child.wait();
    (rate, counter.join().unwrap_or(0))
}

fn main() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED (needs root): trace_overhead reads the kernel's tracepoint via tracefs");
        return;
    }
    let n: usize = std::env::var("TCPFSM_BENCH_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let expected = n * 10 + 2; // ten per connection, plus the listener's open and close
    let (_, base) = churn(n);
    let (f_rate, f_seen) = traced(n, true);
    let (u_rate, u_seen) = traced(n, false);
    let (_, base2) = churn(n);
    let base = (base + base2) / 2.0;
    println!("loopback churn, {n} connections ({expected} transitions per traced run)");
    println!("  untraced           : {base:8.0} connections/s");
    println!(
        "  traced --port      : {f_rate:8.0} connections/s ({:.0}% of untraced), {f_seen}/{expected} transitions",
        100.0 * f_rate / base
    );
    println!(
        "  traced, unfiltered : {u_rate:8.0} connections/s ({:.0}% of untraced), {u_seen}/{expected} transitions",
        100.0 * u_rate / base
    );
}
