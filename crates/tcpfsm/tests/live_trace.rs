//! `tcpfsm trace` (the built binary) reports the kernel's own state transitions of a
//! connection opened and closed during the test, inside a private network namespace.
//! Needs root (tracefs, netns); skips loudly otherwise.

#[path = "../../tcpfsm-host/tests/support/mod.rs"]
mod support;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use support::{run_bounded, Netns};

/// A port unlikely to be used by anything else on the host (the tracepoint sees every
/// namespace, so the test's connection is picked out by port).
fn test_port(salt: u16) -> u16 {
    20000
        + ((std::process::id() as u16)
            .wrapping_mul(7)
            .wrapping_add(salt))
            % 20000
}

/// Starts `tcpfsm trace` in the namespace and waits until it says it is tracing.
fn start_trace(ns: &Netns, args: &[&str]) -> (Child, std::thread::JoinHandle<String>) {
    let mut child = ns
        .command(env!("CARGO_BIN_EXE_tcpfsm"), args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tcpfsm trace");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let err_thread = std::thread::spawn(move || {
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
        panic!("trace never started: {}", err_thread.join().unwrap());
    }
    (child, err_thread)
}

/// Collects the child's stdout, killing it if it outlives `limit`.
fn finish(mut child: Child, err: std::thread::JoinHandle<String>, limit: Duration) -> String {
    let mut stdout = child.stdout.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = out_t.join().unwrap();
            let err = err.join().unwrap();
            assert!(status.success(), "trace failed: {status:?}\n{err}\n{out}");
            return out;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "trace did not stop by itself within {limit:?}; stdout so far:\n{}",
                out_t.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Opens a connection to `port` in the namespace, sends a byte, has the client close first,
/// lets the server sit in CLOSE_WAIT for `linger`, then closes the server. Returns the client's
/// ephemeral port.
fn one_connection(ns: &Netns, port: u16, linger: Duration) -> u16 {
    ns.run(move || {
        let l = TcpListener::bind(("127.0.0.1", port)).expect("bind test port");
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let cport = c.local_addr().unwrap().port();
        c.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        // Active close by the client: FIN_WAIT_1 -> FIN_WAIT_2 on its side, CLOSE_WAIT here.
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(s.read(&mut b).unwrap(), 0, "server sees EOF");
        std::thread::sleep(linger);
        drop(s); // CLOSE_WAIT -> LAST_ACK -> CLOSED
        std::thread::sleep(Duration::from_millis(50));
        drop(c);
        drop(l);
        cport
    })
}

#[test]
fn trace_json_reports_the_kernel_transitions_of_a_connection_with_ports_and_times() {
    let Some(ns) = Netns::new("trace_json_reports_the_kernel_transitions") else {
        return;
    };
    let port = test_port(1);
    let p = port.to_string();
    // 12 transitions for listener + both ends (see below); --duration is a safety net.
    let (child, err) = start_trace(
        &ns,
        &[
            "trace",
            "--json",
            "--port",
            &p,
            "--count",
            "12",
            "--duration",
            "20s",
        ],
    );
    let linger = Duration::from_millis(150);
    let cport = one_connection(&ns, port, linger);
    let out = finish(child, err, Duration::from_secs(30));

    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect();
    assert_eq!(events.len(), 12, "{out}");
    let mut last_t = 0;
    for e in &events {
        assert_eq!(e["event"], "state");
        assert_eq!(e["cause"], "kernel");
        assert!(e["host"].as_str().is_some_and(|h| !h.is_empty()));
        let t = e["t_us"].as_u64().expect("t_us");
        assert!(t >= last_t, "events out of time order: {out}");
        last_t = t;
    }
    let client = format!("127.0.0.1:{cport}-127.0.0.1:{port}");
    let server = format!("127.0.0.1:{port}-127.0.0.1:{cport}");
    let path = |conn: &str| -> Vec<(String, String)> {
        events
            .iter()
            .filter(|e| e["conn"] == conn)
            .map(|e| {
                (
                    e["from"].as_str().unwrap().to_string(),
                    e["to"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    // The client's CLOSED -> SYN_SENT happens before connect() binds its port (conn shows
    // port 0), so its own path starts at SYN_SENT -> ESTABLISHED. Linux hands a FIN_WAIT_2
    // socket to a TIME_WAIT mini-socket and reports the full socket's end as -> CLOSED.
    assert_eq!(
        path(&client),
        pairs(&[
            ("SYN_SENT", "ESTABLISHED"),
            ("ESTABLISHED", "FIN_WAIT_1"),
            ("FIN_WAIT_1", "FIN_WAIT_2"),
            ("FIN_WAIT_2", "CLOSED"),
        ]),
        "{out}"
    );
    assert_eq!(
        path(&server),
        pairs(&[
            ("LISTEN", "SYN_RECEIVED"),
            ("SYN_RECEIVED", "ESTABLISHED"),
            ("ESTABLISHED", "CLOSE_WAIT"),
            ("CLOSE_WAIT", "LAST_ACK"),
            ("LAST_ACK", "CLOSED"),
        ]),
        "{out}"
    );
    let listener = format!("127.0.0.1:{port}-0.0.0.0:0");
    assert_eq!(
        path(&listener),
        pairs(&[("CLOSED", "LISTEN"), ("LISTEN", "CLOSED")]),
        "{out}"
    );
    // Time in the previous state: the server sat in CLOSE_WAIT for `linger`.
    let cw = events
        .iter()
        .find(|e| e["conn"] == server.as_str() && e["from"] == "CLOSE_WAIT")
        .unwrap();
    let ms = cw["ms_in_prev"]
        .as_f64()
        .expect("ms_in_prev known for CLOSE_WAIT");
    assert!(
        ms >= linger.as_millis() as f64 && ms < 5000.0,
        "CLOSE_WAIT lasted {ms} ms, slept {linger:?}"
    );
    // A socket seen for the first time has no known age.
    let first = events.iter().find(|e| e["to"] == "LISTEN").unwrap();
    assert!(first["ms_in_prev"].is_null());
}

#[test]
fn trace_state_filter_and_text_output_show_only_matching_transitions() {
    let Some(ns) = Netns::new("trace_state_filter_and_text_output") else {
        return;
    };
    let port = test_port(2);
    let p = port.to_string();
    let (child, err) = start_trace(
        &ns,
        &[
            "trace",
            "--port",
            &p,
            "--state",
            "close-wait",
            "--count",
            "2",
            "--duration",
            "20s",
        ],
    );
    let cport = one_connection(&ns, port, Duration::from_millis(20));
    let out = finish(child, err, Duration::from_secs(30));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "header + 2 transitions:\n{out}");
    assert!(lines[0].contains("OLDSTATE") && lines[0].contains("NEWSTATE"));
    let conn = format!("127.0.0.1:{port} -> 127.0.0.1:{cport}");
    assert!(lines[1].contains(&conn), "{out}");
    assert!(lines[1].contains("ESTABLISHED  -> CLOSE_WAIT"), "{out}");
    assert!(lines[2].contains("CLOSE_WAIT   -> LAST_ACK"), "{out}");
}

#[test]
fn trace_without_root_fails_with_a_clear_error() {
    let Some(ns) = Netns::new("trace_without_root_fails_with_a_clear_error") else {
        return;
    };
    // Inside `ip netns exec` /sys is a fresh sysfs without tracefs; as an unprivileged user
    // the tracer can neither find nor mount it.
    let out = run_bounded(
        {
            let mut c = Command::new("ip");
            c.args([
                "netns",
                "exec",
                &ns.name,
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
            ])
            .args([
                "--clear-groups",
                env!("CARGO_BIN_EXE_tcpfsm"),
                "trace",
                "--count",
                "1",
            ]);
            c
        },
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("root"),
        "error should say root is needed: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn trace_decodes_ipv6_connections_from_the_v6_address_fields() {
    let Some(ns) = Netns::new("trace_decodes_ipv6_connections") else {
        return;
    };
    let port = test_port(3);
    let p = port.to_string();
    let (child, err) = start_trace(
        &ns,
        &[
            "trace",
            "--json",
            "--port",
            &p,
            "--state",
            "established",
            "--count",
            "3",
            "--duration",
            "20s",
        ],
    );
    let cport = ns.run(move || {
        let l = TcpListener::bind(("::1", port)).expect("bind [::1] (IPv6 loopback in the netns)");
        let c = TcpStream::connect(("::1", port)).unwrap();
        let (s, _) = l.accept().unwrap();
        let cport = c.local_addr().unwrap().port();
        drop(c);
        std::thread::sleep(Duration::from_millis(50));
        drop(s);
        cport
    });
    let out = finish(child, err, Duration::from_secs(30));
    let conns: Vec<(String, String, String)> = out
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["conn"].as_str().unwrap().to_string(),
                v["from"].as_str().unwrap().to_string(),
                v["to"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let client = format!("[::1]:{cport}-[::1]:{port}");
    let server = format!("[::1]:{port}-[::1]:{cport}");
    assert!(
        conns.contains(&(client.clone(), "SYN_SENT".into(), "ESTABLISHED".into())),
        "{out}"
    );
    assert!(
        conns.contains(&(server, "SYN_RECEIVED".into(), "ESTABLISHED".into())),
        "{out}"
    );
    assert!(
        conns.contains(&(client, "ESTABLISHED".into(), "FIN_WAIT_1".into())),
        "{out}"
    );
}

#[test]
fn trace_duration_ends_the_trace_when_nothing_happens() {
    let Some(ns) = Netns::new("trace_duration_ends_the_trace") else {
        return;
    };
    let port = test_port(4).to_string();
    let t = std::time::Instant::now();
    let out = run_bounded(
        ns.command(
            env!("CARGO_BIN_EXE_tcpfsm"),
            &["trace", "--port", &port, "--duration", "700ms"],
        ),
        Duration::from_secs(20),
    );
    let took = t.elapsed();
    assert!(out.status.success(), "{out:?}");
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(10),
        "{took:?}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "only the header: {text}");
}

/// Regression: the client's FIN_WAIT_1 -> FIN_WAIT_2 -> CLOSED happen in softirq context
/// when the server's ACK arrives, and reading the tracepoint through perf lost a few of those
/// per 40 connections without any loss record. Every transition of every connection must be
/// reported: 10 per connection (5 per end) plus the listener's open and close.
#[test]
fn trace_reports_every_transition_of_40_connections_including_softirq_fin_waits() {
    let Some(ns) = Netns::new("trace_reports_every_transition_of_40") else {
        return;
    };
    let port = test_port(5);
    let p = port.to_string();
    const N: usize = 40;
    let expected = 10 * N + 2;
    let (child, err) = start_trace(
        &ns,
        &[
            "trace",
            "--json",
            "--port",
            &p,
            "--count",
            &expected.to_string(),
            "--duration",
            "30s",
        ],
    );
    ns.run(move || {
        let l = TcpListener::bind(("127.0.0.1", port)).expect("bind test port");
        for _ in 0..N {
            let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let (s, _) = l.accept().unwrap();
            // The client closes first; the server follows once the client sits in FIN_WAIT_2.
            drop(c);
            std::thread::sleep(Duration::from_millis(50));
            drop(s);
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(l);
    });
    let out = finish(child, err, Duration::from_secs(40));
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect();
    assert_eq!(events.len(), expected, "{out}");
    let count = |from: &str, to: &str| {
        events
            .iter()
            .filter(|e| e["from"] == from && e["to"] == to)
            .count()
    };
    assert_eq!(count("FIN_WAIT_1", "FIN_WAIT_2"), N, "{out}");
    assert_eq!(count("FIN_WAIT_2", "CLOSED"), N, "{out}");
    assert_eq!(count("CLOSED", "SYN_SENT"), N, "{out}");
    assert_eq!(count("LAST_ACK", "CLOSED"), N, "{out}");
    // Each end of each connection has its whole path, in order.
    let mut paths: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for e in &events {
        let conn = e["conn"].as_str().unwrap().to_string();
        paths.entry(conn).or_default().push(format!(
            "{}>{}",
            e["from"].as_str().unwrap(),
            e["to"].as_str().unwrap()
        ));
    }
    let client_path = "SYN_SENT>ESTABLISHED ESTABLISHED>FIN_WAIT_1 FIN_WAIT_1>FIN_WAIT_2 \
                       FIN_WAIT_2>CLOSED";
    let server_path = "LISTEN>SYN_RECEIVED SYN_RECEIVED>ESTABLISHED ESTABLISHED>CLOSE_WAIT \
                       CLOSE_WAIT>LAST_ACK LAST_ACK>CLOSED";
    let clients = paths
        .iter()
        .filter(|(c, _)| c.ends_with(&format!("-127.0.0.1:{port}")) && !c.contains(":0-"))
        .inspect(|(c, p)| assert_eq!(p.join(" "), client_path, "client {c}: {out}"))
        .count();
    let servers = paths
        .iter()
        .filter(|(c, _)| c.starts_with(&format!("127.0.0.1:{port}-127.0.0.1:")))
        .inspect(|(c, p)| assert_eq!(p.join(" "), server_path, "server {c}: {out}"))
        .count();
    assert_eq!((clients, servers), (N, N), "{out}");
}
