//! `tcpfsm listen` / `tcpfsm connect` against the kernel, each in its own network namespace:
//! bytes relayed both ways (stdin → connection → stdout) and every state change on stderr.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tcpfsm_tun::netns::NetNs;

const STEP: Duration = Duration::from_secs(20);

fn skip_unless_root(test: &str) -> bool {
    !tcpfsm_testkit::require_root(&format!(
        "{test} creates a network namespace and a TUN device"
    ))
}

fn netns() -> NetNs {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "tcpfsm-cli-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    NetNs::create(&name).expect("ip netns add")
}

/// The CLI child, killed if the test fails before it exits.
struct Cli {
    child: Child,
    stderr: mpsc::Receiver<String>,
    lines: Vec<String>,
}

impl Cli {
    fn spawn(args: &[&str]) -> Cli {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tcpfsm"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tcpfsm");
        let err = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Cli {
            child,
            stderr: rx,
            lines: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `needle`.
    fn wait_stderr(&mut self, needle: &str) {
        let deadline = Instant::now() + STEP;
        while !self.lines.iter().any(|l| l.contains(needle)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(l) => self.lines.push(l),
                Err(_) => panic!("no stderr line with {needle:?}; got {:#?}", self.lines),
            }
        }
    }

    /// Waits for exit; returns (exit code, stdout, all stderr lines).
    fn finish(mut self) -> (i32, Vec<u8>, Vec<String>) {
        let deadline = Instant::now() + STEP;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "tcpfsm did not exit: {:#?}",
                self.lines
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut out = Vec::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        // The stderr reader ends with the pipe.
        while let Ok(l) = self.stderr.recv_timeout(Duration::from_secs(2)) {
            self.lines.push(l);
        }
        (
            status.code().unwrap_or(-1),
            out,
            std::mem::take(&mut self.lines),
        )
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `accept` on a kernel listener that gives up after [`STEP`] instead of hanging the test.
fn accept_bounded(l: &std::net::TcpListener) -> std::net::TcpStream {
    l.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + STEP;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(STEP)).unwrap();
                return s;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "tcpfsm connect never arrived");
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("kernel accept: {e}"),
        }
    }
}

fn has_line(lines: &[String], parts: &[&str]) -> bool {
    lines.iter().any(|l| parts.iter().all(|p| l.contains(p)))
}

fn listen_relays(v6: bool) {
    let ns = netns();
    let mut cli = Cli::spawn(&["listen", "5000", "--netns", ns.name()]);
    cli.wait_stderr("CLOSED -> LISTEN");
    let ours: IpAddr = if v6 { "fd77::2" } else { "10.77.0.2" }.parse().unwrap();
    let addr = SocketAddr::new(ours, 5000);
    let mut k = ns
        .run(|| std::net::TcpStream::connect_timeout(&addr, STEP))
        .unwrap()
        .expect("kernel connects to `tcpfsm listen`");
    k.set_read_timeout(Some(STEP)).unwrap();
    k.write_all(b"hello from the kernel\n").unwrap();
    cli.wait_stderr("ESTABLISHED");
    {
        let mut stdin = cli.child.stdin.take().unwrap();
        stdin.write_all(b"hello from tcpfsm\n").unwrap();
    } // end of stdin: the CLI half-closes
    let mut got = Vec::new();
    k.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"hello from tcpfsm\n");
    drop(k);
    let (code, out, lines) = cli.finish();
    assert_eq!(code, 0, "{lines:#?}");
    assert_eq!(out, b"hello from the kernel\n");
    let tuple_start = format!(
        "{}-",
        if v6 {
            "[fd77::2]:5000"
        } else {
            "10.77.0.2:5000"
        }
    );
    for step in [
        "LISTEN -> SYN_RECEIVED (SYN received)",
        "SYN_RECEIVED -> ESTABLISHED (SYN acked)",
        "ESTABLISHED -> FIN_WAIT_1 (app shutdown(write))",
        "-> TIME_WAIT",
    ] {
        assert!(
            has_line(&lines, &["[tcpfsm] ", &tuple_start, step]),
            "no {step:?} line in {lines:#?}"
        );
    }
}

#[test]
fn listen_relays_both_ways_and_prints_each_state_change_ipv4() {
    if !skip_unless_root("listen_relays_both_ways_and_prints_each_state_change_ipv4") {
        listen_relays(false)
    }
}

#[test]
fn listen_relays_both_ways_and_prints_each_state_change_ipv6() {
    if !skip_unless_root("listen_relays_both_ways_and_prints_each_state_change_ipv6") {
        listen_relays(true)
    }
}

fn connect_relays(v6: bool) {
    let ns = netns();
    let tcp_cli = std::thread::scope(|s| {
        let host: IpAddr = if v6 { "fd77::1" } else { "10.77.0.1" }.parse().unwrap();
        // The kernel listener lives in the namespace; the TUN (and its address) comes with
        // the CLI, so bind to the wildcard.
        let wildcard: IpAddr = if v6 { "::" } else { "0.0.0.0" }.parse().unwrap();
        let kl = ns
            .run(|| std::net::TcpListener::bind(SocketAddr::new(wildcard, 6000)))
            .unwrap()
            .unwrap();
        let server = s.spawn(move || {
            let mut k = accept_bounded(&kl);
            let mut req = Vec::new();
            k.read_to_end(&mut req).unwrap();
            k.write_all(b"reply\n").unwrap();
            req
        });
        let host_s = host.to_string();
        let mut cli = Cli::spawn(&["connect", &host_s, "6000", "--netns", ns.name()]);
        {
            let mut stdin = cli.child.stdin.take().unwrap();
            stdin.write_all(b"request\n").unwrap();
        }
        let req = server.join().unwrap();
        assert_eq!(req, b"request\n");
        cli.finish()
    });
    let (code, out, lines) = tcp_cli;
    assert_eq!(code, 0, "{lines:#?}");
    assert_eq!(out, b"reply\n");
    for step in [
        "CLOSED -> SYN_SENT (active open)",
        "SYN_SENT -> ESTABLISHED (SYN acked)",
        "FIN_WAIT_2 -> TIME_WAIT (FIN received)",
    ] {
        assert!(has_line(&lines, &[step]), "no {step:?} line in {lines:#?}");
    }
}

#[test]
fn connect_relays_both_ways_and_prints_each_state_change_ipv4() {
    if !skip_unless_root("connect_relays_both_ways_and_prints_each_state_change_ipv4") {
        connect_relays(false)
    }
}

#[test]
fn connect_relays_both_ways_and_prints_each_state_change_ipv6() {
    if !skip_unless_root("connect_relays_both_ways_and_prints_each_state_change_ipv6") {
        connect_relays(true)
    }
}

#[test]
fn connect_to_a_closed_kernel_port_says_refused_and_exits_1() {
    if skip_unless_root("connect_to_a_closed_kernel_port_says_refused_and_exits_1") {
        return;
    }
    let ns = netns();
    let cli = Cli::spawn(&["connect", "10.77.0.1", "9", "--netns", ns.name()]);
    let (code, out, lines) = cli.finish();
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        has_line(&lines, &["connection refused"]),
        "no refusal in {lines:#?}"
    );
    assert!(
        has_line(&lines, &["SYN_SENT -> CLOSED (RST received)"]),
        "{lines:#?}"
    );
}
