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
const TCPFSM: &str = env!("CARGO_BIN_EXE_tcpfsm");

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
        let mut child = Command::new(TCPFSM)
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

    /// Whether a stderr line containing `needle` has come, waiting at most `wait`.
    fn saw_stderr(&mut self, needle: &str, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            if self.lines.iter().any(|l| l.contains(needle)) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(l) => self.lines.push(l),
                Err(_) => return false,
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

/// Our stack's IPv4 listening address in the `listen` tests.
const OURS_V4: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(10, 77, 0, 2)), 5000);

/// A kernel client in `ns` connected to `tcpfsm listen` at `addr`, with a read timeout.
fn kernel_client(ns: &NetNs, addr: SocketAddr) -> std::net::TcpStream {
    let k = ns
        .run(|| std::net::TcpStream::connect_timeout(&addr, STEP))
        .unwrap()
        .expect("the kernel connects to `tcpfsm listen`");
    k.set_read_timeout(Some(STEP)).unwrap();
    k
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
    // Not the first "CLOSED -> LISTEN": that is the IPv4 listener's, and a kernel SYN to
    // [fd77::2]:5000 sent before the IPv6 one exists is refused (RST) — what made the IPv6
    // test fail on a loaded machine.
    cli.wait_stderr("listening on 0.0.0.0:5000 and [::]:5000");
    let ours: IpAddr = if v6 { "fd77::2" } else { "10.77.0.2" }.parse().unwrap();
    let mut k = kernel_client(&ns, SocketAddr::new(ours, 5000));
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

/// Netcat's half-close: the peer's FIN ends what we print, not what we send. Our side stays
/// in CLOSE_WAIT while stdin is open, sends what stdin still brings, and closes at its end.
#[test]
fn peer_fin_does_not_close_our_side_while_stdin_is_open_netcat_half_close() {
    if skip_unless_root("peer_fin_does_not_close_our_side_while_stdin_is_open_netcat_half_close") {
        return;
    }
    let ns = netns();
    let mut cli = Cli::spawn(&[
        "listen",
        "5000",
        "--addr",
        "10.77.0.2",
        "--netns",
        ns.name(),
    ]);
    cli.wait_stderr("listening on 10.77.0.2:5000");
    let mut k = kernel_client(&ns, OURS_V4);
    k.write_all(b"question\n").unwrap();
    k.shutdown(std::net::Shutdown::Write).unwrap();
    cli.wait_stderr("ESTABLISHED -> CLOSE_WAIT (FIN received)");
    assert!(
        !cli.saw_stderr("LAST_ACK", Duration::from_millis(500)),
        "our FIN went out while stdin is open: {:#?}",
        cli.lines
    );
    assert!(cli.child.try_wait().unwrap().is_none(), "still running");
    {
        let mut stdin = cli.child.stdin.take().unwrap();
        stdin.write_all(b"answer\n").unwrap();
    } // end of stdin: now our FIN
    let mut got = Vec::new();
    k.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"answer\n", "sent after the peer's FIN");
    let (code, out, lines) = cli.finish();
    assert_eq!(code, 0, "{lines:#?}");
    assert_eq!(out, b"question\n");
    for step in [
        "CLOSE_WAIT -> LAST_ACK (app shutdown(write))",
        "LAST_ACK -> CLOSED (FIN acked)",
    ] {
        assert!(has_line(&lines, &[step]), "no {step:?} in {lines:#?}");
    }
}

/// `-d` never reads stdin (here: a pipe with data, left open) and closes after the peer, as
/// `nc -d` does.
#[test]
fn no_stdin_flag_never_reads_stdin_and_closes_after_the_peer_like_nc_d() {
    if skip_unless_root("no_stdin_flag_never_reads_stdin_and_closes_after_the_peer_like_nc_d") {
        return;
    }
    let ns = netns();
    let mut cli = Cli::spawn(&[
        "listen",
        "5000",
        "-d",
        "--addr",
        "10.77.0.2",
        "--netns",
        ns.name(),
    ]);
    let mut stdin = cli.child.stdin.take().unwrap();
    stdin.write_all(b"must not be sent\n").unwrap();
    cli.wait_stderr("listening on 10.77.0.2:5000");
    let mut k = kernel_client(&ns, OURS_V4);
    k.write_all(b"data\n").unwrap();
    k.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    k.read_to_end(&mut got).unwrap();
    assert!(got.is_empty(), "stdin was sent: {got:?}");
    let (code, out, lines) = cli.finish();
    drop(stdin);
    assert_eq!(code, 0, "{lines:#?}");
    assert_eq!(out, b"data\n");
    assert!(
        has_line(&lines, &["CLOSE_WAIT -> LAST_ACK (app close)"]),
        "{lines:#?}"
    );
}

/// `--linger-time-wait` keeps the process (and its TIME_WAIT, which can still resend the last
/// ACK) until 2×MSL have passed; `--msl 1s` makes that 2 s.
#[test]
fn linger_time_wait_keeps_the_process_until_time_wait_ends() {
    if skip_unless_root("linger_time_wait_keeps_the_process_until_time_wait_ends") {
        return;
    }
    let ns = netns();
    let kl = ns
        .run(|| std::net::TcpListener::bind("0.0.0.0:6000"))
        .unwrap()
        .unwrap();
    let server = std::thread::spawn(move || {
        let mut k = accept_bounded(&kl);
        let mut req = Vec::new();
        k.read_to_end(&mut req).unwrap();
        k.write_all(b"reply\n").unwrap();
        req
    });
    let mut cli = Cli::spawn(&[
        "connect",
        "10.77.0.1",
        "6000",
        "--netns",
        ns.name(),
        "--msl",
        "1s",
        "--linger-time-wait",
    ]);
    {
        let mut stdin = cli.child.stdin.take().unwrap();
        stdin.write_all(b"request\n").unwrap();
    }
    assert_eq!(server.join().unwrap(), b"request\n");
    cli.wait_stderr("FIN_WAIT_2 -> TIME_WAIT (FIN received)");
    let in_tw = Instant::now();
    cli.wait_stderr("staying until TIME_WAIT ends (2s = 2×MSL)");
    std::thread::sleep(Duration::from_millis(1200));
    assert!(
        cli.child.try_wait().unwrap().is_none(),
        "exited during TIME_WAIT: {:#?}",
        cli.lines
    );
    cli.wait_stderr("TIME_WAIT -> CLOSED (2MSL expired)");
    let (code, out, lines) = cli.finish();
    assert!(in_tw.elapsed() >= Duration::from_millis(1900), "{lines:#?}");
    assert_eq!(code, 0, "{lines:#?}");
    assert_eq!(out, b"reply\n");
}

#[test]
fn a_zero_msl_is_refused_naming_the_knob() {
    if skip_unless_root("a_zero_msl_is_refused_naming_the_knob") {
        return;
    }
    let ns = netns();
    let cli = Cli::spawn(&["listen", "5000", "--msl", "0s", "--netns", ns.name()]);
    let (code, _, lines) = cli.finish();
    assert_eq!(code, 2);
    assert!(has_line(&lines, &["--msl", "msl"]), "{lines:#?}");
}

/// A job started with `&` in an interactive shell, its terminal as stdin (the README's demo):
/// job control must not stop it — a stopped process freezes its TCP — so it relays the peer's
/// data while in the background without reading the terminal; brought back with `fg`, it reads
/// what is typed and its end (Ctrl-D) sends our FIN. The shell is `bash -m` on a fresh pty
/// that `setsid --ctty` makes its controlling terminal, as a terminal emulator would.
#[test]
fn a_background_job_with_the_terminal_as_stdin_is_never_stopped_and_reads_it_after_fg() {
    if skip_unless_root(
        "a_background_job_with_the_terminal_as_stdin_is_never_stopped_and_reads_it_after_fg",
    ) {
        return;
    }
    let ns = netns();
    let dir = Scratch::new();
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let script = r#"
"$0" "$@" >"$DIR/out" 2>"$DIR/err" &
echo $! >"$DIR/pid"
while [ ! -e "$DIR/fg" ]; do sleep 0.05; done
fg %1
echo $? >"$DIR/exit"
"#;
    let slave = std::fs::File::from(pty.slave);
    let mut shell = Command::new("setsid")
        .args(["--ctty", "bash", "-mc", script, TCPFSM])
        .args([
            "listen",
            "5000",
            "--addr",
            "10.77.0.2",
            "--netns",
            ns.name(),
        ])
        .env("DIR", dir.path())
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .expect("setsid --ctty bash -m");
    let _reap = Reap(&mut shell);
    let pid: u32 = dir.wait_for("pid", |t| t.trim().parse().ok());
    let _kill = KillPid(pid);
    dir.wait_for("err", |t| t.contains("listening on").then_some(()));

    let mut k = kernel_client(&ns, OURS_V4);
    dir.wait_for("err", |t| t.contains("-> ESTABLISHED").then_some(()));
    std::thread::sleep(Duration::from_millis(300));
    assert_ne!(proc_state(pid), 'T', "stopped by job control");
    // Not frozen: the peer's data still comes through.
    k.write_all(b"from the kernel\n").unwrap();
    dir.wait_for("out", |t| (t == "from the kernel\n").then_some(()));
    assert!(
        dir.read("err").contains("not reading it"),
        "says why it does not read"
    );
    // The peer's FIN: our side stays open, since the terminal is.
    k.shutdown(std::net::Shutdown::Write).unwrap();
    dir.wait_for("err", |t| t.contains("-> CLOSE_WAIT").then_some(()));
    std::thread::sleep(Duration::from_millis(300));
    assert_ne!(proc_state(pid), 'T');
    assert!(!dir.read("err").contains("LAST_ACK"));

    // fg: now the terminal is ours to read.
    std::fs::write(dir.path().join("fg"), b"").unwrap();
    let master = std::fs::File::from(pty.master);
    std::thread::sleep(Duration::from_millis(300));
    (&master).write_all(b"typed after fg\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    (&master).write_all(b"\x04").unwrap(); // Ctrl-D at the start of a line: end of input
    let mut got = Vec::new();
    k.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"typed after fg\n");
    let code = dir.wait_for("exit", |t| t.trim().parse::<i32>().ok());
    let err = dir.read("err");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("LAST_ACK -> CLOSED"), "{err}");
}

/// The one-letter process state from /proc/PID/stat (`T`: stopped).
fn proc_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        .unwrap_or('?')
}

/// A scratch directory, removed on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "tcpfsm-net-cli-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.0.join(name)).unwrap_or_default()
    }

    /// Polls file `name` until `f` accepts its text.
    fn wait_for<T>(&self, name: &str, mut f: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(t) = f(&self.read(name)) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: {:?}; err: {}",
                self.read(name),
                self.read("err")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills a process we did not spawn directly (the shell's job) if the test ends early.
struct KillPid(u32);

impl Drop for KillPid {
    fn drop(&mut self) {
        // Only a failed test leaves it running; after a clean exit the pid may be reused.
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", self.0)).unwrap_or_default();
        if !std::thread::panicking() || comm.trim() != "tcpfsm" {
            return;
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0 as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

struct Reap<'a>(&'a mut Child);

impl Drop for Reap<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
