//! `tcpfsm link`: bad flags are refused before anything is created; `--create` builds two
//! namespaces whose kernels talk through the impaired link (byte-exact under loss, with the
//! configured round-trip time) and deletes them on SIGINT; `--netns` joins existing ones and
//! leaves them in place.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tcpfsm_tun::netns::{self, NetNs};

const STEP: Duration = Duration::from_secs(30);

fn unique() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "tfl{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn tcpfsm(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tcpfsm"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn bad_link_flags_are_refused_with_the_reason_and_exit_status_2() {
    for (args, want) in [
        (
            &["link", "--create", "x", "--loss", "200%"][..],
            "probability \"200%\" is outside 0..1",
        ),
        (&["link", "--create", "x", "--rate", "10mbps"], "ambiguous"),
        (&["link", "--create", "x", "--delay", "10"], "needs a unit"),
        (
            &["link", "--create", "x", "--gilbert", "1%"],
            "gilbert takes p,r",
        ),
        (
            &["link", "--create", "x", "--up", "loss 1% speed 3"],
            "unknown link property \"speed\"",
        ),
        (
            &["link", "--create", "x", "--queue", "10"],
            "give --rate too",
        ),
        (
            &[
                "link",
                "--create",
                "x",
                "--loss",
                "1%",
                "--gilbert",
                "1%,20%",
            ],
            "two loss models",
        ),
        (
            &["link", "--delay", "5ms"],
            "--create NAME, or --netns A --netns B",
        ),
        (&["link", "--netns", "only-one"], "exactly two"),
        (
            &["link", "--create", "x", "--addr-b", "10.1.2.3"],
            "one /24",
        ),
    ] {
        let out = tcpfsm(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
    }
}

/// The link process, killed if the test fails before it exits.
struct Link {
    child: Child,
    out: mpsc::Receiver<String>,
}

impl Link {
    fn start(args: &[&str]) -> Link {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tcpfsm"))
            .arg("link")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let link = Link { child, out: rx };
        link.wait_for("\"event\":\"ready\"");
        link
    }

    fn wait_for(&self, what: &str) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(l) if l.contains(what) => return l,
                Ok(_) => {}
                Err(e) => panic!("no {what:?} from tcpfsm link: {e}"),
            }
        }
    }

    /// SIGINT, then the final counters line and the exit status.
    fn interrupt(mut self) -> (String, std::process::ExitStatus) {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let last = self.wait_for("\"event\":\"final\"");
        let status = self.child.wait().unwrap();
        (last, status)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// B connects to a server in A and sends `len` bytes; A echoes a count back. Returns the
/// handshake time and whether the bytes arrived intact.
fn transfer(ns_a: &str, ns_b: &str, a: SocketAddr, len: usize) -> (Duration, bool) {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4093) as u8).collect();
    let l = netns::run_in(ns_a, || TcpListener::bind(a))
        .unwrap()
        .unwrap();
    std::thread::scope(|s| {
        let srv = s.spawn(|| {
            let (mut c, _) = l.accept().unwrap();
            c.set_read_timeout(Some(STEP)).unwrap();
            let mut got = Vec::new();
            c.read_to_end(&mut got).unwrap();
            got
        });
        let t = Instant::now();
        let mut c = netns::run_in(ns_b, || TcpStream::connect_timeout(&a, STEP))
            .unwrap()
            .unwrap();
        let handshake = t.elapsed();
        c.write_all(&data).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        (handshake, srv.join().unwrap() == data)
    })
}

#[test]
fn link_create_carries_kernel_traffic_under_loss_and_deletes_its_namespaces_on_sigint() {
    if !tcpfsm_testkit::require_root(
        "link_create_carries_kernel_traffic_under_loss_and_deletes_its_namespaces_on_sigint creates network namespaces",
    ) {
        return;
    }
    let name = unique();
    let link = Link::start(&[
        "--create", &name, "--delay", "20ms", "--loss", "1%", "--seed", "5", "--json",
    ]);
    let (a, b) = (format!("{name}-a"), format!("{name}-b"));
    assert!(Path::new(&format!("/run/netns/{a}")).exists());
    let (handshake, intact) = transfer(&a, &b, "10.99.0.1:7000".parse().unwrap(), 2 << 20);
    assert!(intact, "the 2 MiB arrived damaged");
    // 20 ms each way: the SYN/SYN-ACK exchange takes one 40 ms round trip.
    assert!(
        handshake >= Duration::from_millis(40) && handshake < Duration::from_millis(60),
        "handshake took {handshake:?}"
    );
    let (last, status) = link.interrupt();
    assert!(status.success(), "{status:?}");
    let v: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert!(v["down"]["packets_in"].as_u64().unwrap() > 1000, "{last}");
    assert!(v["down"]["dropped_loss"].as_u64().unwrap() > 0, "{last}");
    assert!(!Path::new(&format!("/run/netns/{a}")).exists());
    assert!(!Path::new(&format!("/run/netns/{b}")).exists());
}

#[test]
fn link_netns_joins_existing_namespaces_and_leaves_them_in_place() {
    if !tcpfsm_testkit::require_root(
        "link_netns_joins_existing_namespaces_and_leaves_them_in_place creates network namespaces",
    ) {
        return;
    }
    let (na, nb) = (
        NetNs::create(&unique()).unwrap(),
        NetNs::create(&unique()).unwrap(),
    );
    let link = Link::start(&[
        "--netns",
        na.name(),
        "--netns",
        nb.name(),
        "--addr-a",
        "10.98.0.1",
        "--addr-b",
        "10.98.0.2",
        "--up",
        "delay 5ms",
        "--down",
        "delay 15ms",
        "--json",
    ]);
    let (handshake, intact) = transfer(
        na.name(),
        nb.name(),
        "10.98.0.1:7001".parse().unwrap(),
        256 << 10,
    );
    assert!(intact);
    assert!(handshake >= Duration::from_millis(20), "{handshake:?}");
    let (_, status) = link.interrupt();
    assert!(status.success());
    assert!(Path::new(&format!("/run/netns/{}", na.name())).exists());
    // The device left with the link.
    let out = na.exec("ip", &["link", "show", "imp0"]).unwrap();
    assert!(!out.status.success(), "imp0 is still there");
}
