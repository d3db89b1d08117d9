//! What the live-host CLI tests share: starting `tcpfsm trace` in a namespace and reading
//! its JSON lines, a port unlikely to collide, two namespaces joined by a veth, and the
//! exporter helpers ([`exporter`]).
#![allow(dead_code)]

#[path = "../../../tcpfsm-host/tests/support/mod.rs"]
pub mod support;

pub mod exporter;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
#[allow(unused_imports)]
pub use support::{run_bounded, wait_until, Netns};

/// A port unlikely to be used by anything else on the host (the tracepoint sees every
/// namespace, so a test's connections are picked out by port).
pub fn test_port(salt: u16) -> u16 {
    20000
        + ((std::process::id() as u16)
            .wrapping_mul(7)
            .wrapping_add(salt.wrapping_mul(131)))
            % 20000
}

/// A running `tcpfsm trace` and the thread collecting its stderr.
pub struct Trace {
    pub child: Child,
    err: std::thread::JoinHandle<String>,
}

/// Starts `tcpfsm trace` in the namespace and waits until it says it is tracing.
pub fn start_trace(ns: &Netns, args: &[&str]) -> Trace {
    let mut child = ns
        .command(env!("CARGO_BIN_EXE_tcpfsm"), args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tcpfsm trace");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let err = std::thread::spawn(move || {
        let mut all = String::new();
        let mut r = BufReader::new(stderr);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            if line.contains("tracing TCP state transitions") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            line.clear();
        }
        all
    });
    if rx.recv_timeout(Duration::from_secs(20)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("trace never started: {}", err.join().unwrap());
    }
    Trace { child, err }
}

/// `tcpfsm trace --json --port PORT --count COUNT --duration 30s EXTRA…` in `ns` (the
/// duration is a safety net: each test expects its count).
pub fn json_trace(ns: &Netns, port: u16, count: usize, extra: &[&str]) -> Trace {
    let (p, n) = (port.to_string(), count.to_string());
    let mut args = vec![
        "trace",
        "--json",
        "--port",
        &p,
        "--count",
        &n,
        "--duration",
        "30s",
    ];
    args.extend_from_slice(extra);
    start_trace(ns, &args)
}

/// In a thread inside a namespace (call through `Netns::run`): `established` connected
/// pairs, and `close_wait` connections whose client shut down its sending side while the
/// server (this process) never closes — CLOSE_WAIT here, FIN_WAIT_2 at the client (kept
/// open, so not orphaned). The listener stays open (one LISTEN socket).
pub fn sockets(
    established: usize,
    close_wait: usize,
) -> (Vec<std::net::TcpStream>, std::net::TcpListener) {
    use std::net::{Shutdown, TcpListener, TcpStream};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let mut keep = Vec::new();
    for i in 0..established + close_wait {
        let c = TcpStream::connect(addr).unwrap();
        let (s, _) = l.accept().unwrap();
        if i >= established {
            c.shutdown(Shutdown::Write).unwrap();
        }
        keep.push(c);
        keep.push(s);
    }
    (keep, l)
}

impl Trace {
    /// Collects stdout until the tracer exits by itself (`--count`, `--duration`); kills it
    /// and fails if it outlives `limit`. Returns (stdout, stderr).
    pub fn finish(mut self, limit: Duration) -> (String, String) {
        let mut stdout = self.child.stdout.take().unwrap();
        let out_t = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let out = out_t.join().unwrap();
                let err = self.err.join().unwrap();
                assert!(status.success(), "trace failed: {status:?}\n{err}\n{out}");
                return (out, err);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "trace did not stop by itself within {limit:?}; stdout so far:\n{}\nstderr:\n{}",
                    out_t.join().unwrap(),
                    self.err.join().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The JSON lines of a `--json` trace: the header, then the events.
pub fn json_lines(out: &str) -> (Value, Vec<Value>) {
    let mut lines = out.lines().map(|l| {
        serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("bad JSON {l:?}: {e}"))
    });
    let header = lines.next().expect("a header line");
    assert_eq!(header["event"], "trace", "{out}");
    (header, lines.collect())
}

/// `from>to` of each state event of `conn`, in order.
pub fn path(events: &[Value], conn: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "state" && e["conn"] == conn)
        .map(|e| {
            format!(
                "{}>{}",
                e["from"].as_str().unwrap(),
                e["to"].as_str().unwrap()
            )
        })
        .collect()
}

/// The inode of a named namespace, as trace prints it (`net:[N]`).
pub fn netns_inode(ns: &Netns) -> String {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(format!("/run/netns/{}", ns.name))
        .unwrap()
        .ino();
    format!("net:[{ino}]")
}

/// Runs `ip ARGS`, failing the test if it fails.
pub fn ip(args: &[&str]) {
    let out = run_bounded(
        {
            let mut c = Command::new("ip");
            c.args(args);
            c
        },
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "ip {args:?}: {out:?}");
}

/// Two namespaces joined by a veth pair: `a` is 10.201.N.1, `b` is 10.201.N.2.
pub struct Pair {
    pub a: Netns,
    pub b: Netns,
    pub a_ip: String,
    pub b_ip: String,
}

pub fn pair(test: &str) -> Option<Pair> {
    let a = Netns::new(test)?;
    let b = Netns::new(test)?;
    static PAIRS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let k = PAIRS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let n = ((std::process::id() + k * 37) % 200) as u8 + 20;
    let (va, vb) = (
        format!("ta{}-{k}", std::process::id()),
        format!("tb{}-{k}", std::process::id()),
    );
    ip(&[
        "link", "add", &va, "netns", &a.name, "type", "veth", "peer", "name", &vb, "netns", &b.name,
    ]);
    let (a_ip, b_ip) = (format!("10.201.{n}.1"), format!("10.201.{n}.2"));
    ip(&[
        "-n",
        &a.name,
        "addr",
        "add",
        &format!("{a_ip}/24"),
        "dev",
        &va,
    ]);
    ip(&[
        "-n",
        &b.name,
        "addr",
        "add",
        &format!("{b_ip}/24"),
        "dev",
        &vb,
    ]);
    ip(&["-n", &a.name, "link", "set", &va, "up"]);
    ip(&["-n", &b.name, "link", "set", &vb, "up"]);
    Some(Pair { a, b, a_ip, b_ip })
}
