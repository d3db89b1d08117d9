//! Test fixture: a private network namespace with real kernel sockets in known states.
//!
//! Shared by the tcpfsm-host library tests and the CLI tests in crates/tcpfsm/tests/host_*.rs
//! (included there by path). Needs root; [`Netns::new`] returns None with a loud SKIPPED line
//! otherwise. The namespace is deleted on drop, also when a test panics.
#![allow(dead_code)]

use socket2::{Domain, Socket, Type};
use std::io::{BufRead, BufReader, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The 11 state names exactly as every tcpfsm output must spell them — written out literally,
/// as an oracle independent of `tcpfsm_states::State::name`.
pub const ALL_NAMES: [&str; 11] = [
    "CLOSED",
    "LISTEN",
    "SYN_SENT",
    "SYN_RECEIVED",
    "ESTABLISHED",
    "FIN_WAIT_1",
    "FIN_WAIT_2",
    "CLOSING",
    "TIME_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
];

/// Says loudly that a test was skipped (through tcpfsm-testkit, which writes past libtest's
/// output capture).
pub fn skipped(reason: &str, what: &str) {
    tcpfsm_testkit::skip(reason, what);
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `tcpfsm-t-<pid>-<n>-<nanos>` with loopback up. None (and a loud message) if not root.
    pub fn new(test: &str) -> Option<Netns> {
        if !tcpfsm_testkit::require_root(&format!("{test} creates a network namespace")) {
            return None;
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "tcpfsm-t-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip netns add")
            .success();
        assert!(ok, "ip netns add {name} failed");
        let ns = Netns { name };
        let ok = Command::new("ip")
            .args(["-n", &ns.name, "link", "set", "lo", "up"])
            .status()
            .expect("run ip link")
            .success();
        assert!(ok, "bringing lo up in {} failed", ns.name);
        Some(ns)
    }

    /// Runs `f` on a thread that has entered this namespace; sockets it creates live there.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open netns file");
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("setns into test namespace");
            f()
        })
        .join()
        .expect("netns thread panicked")
    }

    /// A command run inside the namespace (`ip netns exec NAME prog args…`).
    pub fn command(&self, prog: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, prog]).args(args);
        c
    }

    /// Counts `ss -tanH state <state>` lines in the namespace (ss's spelling of the state).
    pub fn ss_count(&self, ss_state: &str) -> u64 {
        let out = run_bounded(
            self.command("ss", &["-tanH", "state", ss_state]),
            Duration::from_secs(20),
        );
        assert!(out.status.success(), "ss failed: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count() as u64
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs a command, killing it if it outlives `limit`, so a hang fails the test instead of
/// stalling the suite.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn command");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("command {cmd:?} took longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

/// Polls `cond` every 20 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process that holds CLOSE_WAIT sockets: it accepts connections and never closes
/// them. Killed on drop.
pub struct Holder {
    pub child: Child,
    pub port: u16,
}

impl Holder {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    pub fn comm(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/comm", self.pid()))
            .unwrap()
            .trim()
            .to_string()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the test binary itself as the holder, inside `ns`: `holder_main` must be called by an
/// ignored test named `holder_test_name` in the same test binary.
pub fn spawn_holder(ns: &Netns, holder_test_name: &str) -> Holder {
    spawn_holder_with(ns, holder_test_name, &[])
}

/// [`spawn_holder`] with extra environment for the holder.
pub fn spawn_holder_with(ns: &Netns, holder_test_name: &str, env: &[(&str, &str)]) -> Holder {
    let exe = std::env::current_exe().unwrap();
    let mut child = ns
        .command(
            exe.to_str().unwrap(),
            &[
                holder_test_name,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ],
        )
        .env("TCPFSM_TEST_HOLDER", "1")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn holder");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints "test <name> ... " on the same line before our output.
            if let Some(i) = line.find("HOLDER_PORT ") {
                let p = line[i + "HOLDER_PORT ".len()..].trim();
                let _ = tx.send(p.parse::<u16>().expect("holder port"));
            }
        }
    });
    // Owned by a Holder before waiting, so a timeout still kills the child.
    let mut holder = Holder { child, port: 0 };
    holder.port = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("holder did not report its port");
    holder
}

/// The holder's command name.
pub const HOLDER_COMM: &str = "tcpfsm-leaker";

/// Body of the holder process: listen, accept forever, keep every connection open.
pub fn holder_main() {
    if std::env::var_os("TCPFSM_TEST_HOLDER").is_none() {
        return;
    }
    // A command name of its own, so name lookups cannot confuse it with the test process
    // (same executable). /proc/self/comm names the thread-group leader, which is what
    // /proc/<pid>/comm shows.
    std::fs::write("/proc/self/comm", HOLDER_COMM).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    // TCPFSM_TEST_HOLDER_SPARE_FDS=n: lower our open-file limit to what is open now plus n, so
    // that accepting connections brings us near RLIMIT_NOFILE.
    if let Some(spare) = std::env::var("TCPFSM_TEST_HOLDER_SPARE_FDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
        let lim = open + spare;
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, lim, lim)
            .unwrap();
    }
    println!("HOLDER_PORT {}", l.local_addr().unwrap().port());
    let mut kept = Vec::new();
    // Bounded: the parent kills us; if it dies without doing so, stop after 5 minutes.
    let stop = Instant::now() + Duration::from_secs(300);
    l.set_nonblocking(true).unwrap();
    while Instant::now() < stop {
        match l.accept() {
            Ok((s, _)) => kept.push(s),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Sockets put into known states inside a namespace. Dropping it closes them.
pub struct Scene {
    pub established: Vec<(TcpStream, TcpStream)>,
    /// Clients that shut down their sending side towards the holder: FIN_WAIT_2 here,
    /// CLOSE_WAIT in the holder.
    pub half_closed: Vec<TcpStream>,
    pub listener: TcpListener,
    pub overflow_listener: Socket,
    pub overflow_clients: Vec<Socket>,
    pub overflow_addr: SocketAddr,
}

/// Expected counts for a scene built with [`build_scene`].
pub struct Expected {
    pub listen: u64,
    pub established: u64,
    pub close_wait: u64,
    pub fin_wait2: u64,
    pub time_wait: u64,
    pub syn_sent: u64,
}

/// `overflow_connects` clients towards a listener with backlog 1: Linux admits backlog + 1 = 2
/// into the accept queue, and drops the SYNs of the rest (they stay in SYN_SENT).
pub const OVERFLOW_ADMITTED: u64 = 2;

pub fn expected(n: u64, m: u64, k: u64, overflow_connects: u64, holder: bool) -> Expected {
    Expected {
        listen: 2 + holder as u64,
        established: 2 * n + 2 * OVERFLOW_ADMITTED,
        close_wait: m,
        fin_wait2: m,
        time_wait: k,
        syn_sent: overflow_connects - OVERFLOW_ADMITTED,
    }
}

/// In the namespace (call through [`Netns::run`]): `n` established pairs, `m` half-closed
/// connections to the holder on `holder_port` (0: none), `k` TIME_WAIT (we close first, the
/// server closes after EOF), and `overflow_connects` non-blocking connects to a backlog-1
/// listener nobody accepts from.
pub fn build_scene(
    n: usize,
    m: usize,
    k: usize,
    holder_port: u16,
    overflow_connects: usize,
) -> Scene {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let laddr = listener.local_addr().unwrap();
    let mut established = Vec::new();
    for _ in 0..n {
        let c = TcpStream::connect(laddr).unwrap();
        let (s, _) = listener.accept().unwrap();
        established.push((c, s));
    }
    for _ in 0..k {
        let c = TcpStream::connect(laddr).unwrap();
        let (mut s, _) = listener.accept().unwrap();
        drop(c); // active close: this side ends in TIME_WAIT
        let mut b = [0u8; 1];
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(s.read(&mut b).unwrap(), 0, "server sees EOF");
        drop(s); // passive close: LAST_ACK, then CLOSED on the final ACK
    }
    let mut half_closed = Vec::new();
    if holder_port != 0 {
        for _ in 0..m {
            let c = TcpStream::connect(("127.0.0.1", holder_port)).unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            half_closed.push(c);
        }
    }
    let ol = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    ol.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    ol.listen(1).unwrap();
    let overflow_addr = ol.local_addr().unwrap().as_socket().unwrap();
    let mut overflow_clients = Vec::new();
    for _ in 0..overflow_connects {
        let c = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        c.set_nonblocking(true).unwrap();
        let _ = c.connect(&overflow_addr.into()); // EINPROGRESS
        overflow_clients.push(c);
        // Loopback handshakes complete in the connecting context; a short pause keeps the
        // order (and so which clients are admitted) deterministic.
        std::thread::sleep(Duration::from_millis(20));
    }
    Scene {
        established,
        half_closed,
        listener,
        overflow_listener: ol,
        overflow_clients,
        overflow_addr,
    }
}

/// Waits until the half-closed connections to the holder have settled: `m` CLOSE_WAIT sockets,
/// all accepted by the holder (an inode, so an owner), and `m` FIN_WAIT_2 on our side. Linux
/// ACKs a FIN in delayed-ACK ("pingpong") mode, so our side sits in FIN_WAIT_1 for up to the
/// delayed-ACK timeout first; and the holder accepts asynchronously.
pub fn wait_half_closed_settled(ns: &Netns, m: u64) {
    use tcpfsm_host::{Filter, SockDiag, State, StateSet};
    let mut seen = Vec::new();
    let ok = wait_until(Duration::from_secs(10), || {
        seen = ns.run(|| {
            SockDiag::new()
                .unwrap()
                .sockets(&Filter::states(StateSet::of(&[
                    State::CloseWait,
                    State::FinWait1,
                    State::FinWait2,
                ])))
                .unwrap()
        });
        let cw: Vec<_> = seen
            .iter()
            .filter(|r| r.state == State::CloseWait)
            .collect();
        let fw2 = seen.iter().filter(|r| r.state == State::FinWait2).count() as u64;
        cw.len() as u64 == m && cw.iter().all(|r| r.inode != 0) && fw2 == m
    });
    assert!(ok, "half-closed connections never settled: {seen:#?}");
}
