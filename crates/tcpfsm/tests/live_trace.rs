//! `tcpfsm trace` (the built binary) reports the kernel's own state transitions of connections
//! opened and closed during the test, inside a private network namespace.
//! Needs root (tracefs, netns); skips loudly otherwise.

mod live_support;

use live_support::{
    json_lines, json_trace, netns_inode, path, run_bounded, start_trace, test_port, Netns,
};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

/// Opens a connection to `port` in the namespace, sends a byte, has the client shut down its
/// sending side first, lets the server sit in CLOSE_WAIT for `linger`, then closes the
/// server, and the client last. Returns the client's ephemeral port.
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
        drop(s); // CLOSE_WAIT -> LAST_ACK -> CLOSED; the client goes TIME_WAIT
        std::thread::sleep(Duration::from_millis(50));
        drop(c);
        drop(l);
        cport
    })
}

#[test]
fn trace_json_reports_a_connections_transitions_with_wall_times_socket_addresses_and_netns() {
    let Some(ns) = Netns::new("trace_json_reports_a_connections_transitions") else {
        return;
    };
    let port = test_port(1);
    // 12 events for listener + both ends (see below); --duration is a safety net.
    let trace = json_trace(&ns, port, 12, &[]);
    let before = std::time::SystemTime::now();
    let linger = Duration::from_millis(150);
    let cport = one_connection(&ns, port, linger);
    let (out, _) = trace.finish(Duration::from_secs(30));

    let (header, events) = json_lines(&out);
    assert_eq!(
        header["lookup_netns"],
        netns_inode(&ns).as_str(),
        "{header}"
    );
    assert!(
        header["note"].as_str().unwrap().contains("unknown"),
        "{header}"
    );
    assert_eq!(events.len(), 12, "{out}");
    let mut last_t = 0;
    for e in &events {
        assert_eq!(e["event"], "state");
        assert!(e["host"].as_str().is_some_and(|h| !h.is_empty()));
        let t = e["t_us"].as_u64().expect("t_us");
        assert!(t >= last_t, "events out of time order: {out}");
        last_t = t;
        // RFC 3339 wall-clock time, within the test's run.
        let wall = humantime::parse_rfc3339(e["time"].as_str().unwrap()).expect("RFC 3339");
        assert!(
            wall >= before - Duration::from_secs(1) && wall <= std::time::SystemTime::now(),
            "{e}"
        );
        // What the tracepoint reported has no namespace; what sock_diag found has ours.
        match e["source"].as_str().unwrap() {
            "tracepoint" => {
                assert_eq!(e["cause"], "kernel");
                assert_eq!(e["netns"], "unknown");
            }
            "sock_diag" => assert_eq!(e["netns"], netns_inode(&ns).as_str(), "{e}"),
            other => panic!("source {other}"),
        }
    }
    let client = format!("127.0.0.1:{cport}-127.0.0.1:{port}");
    let server = format!("127.0.0.1:{port}-127.0.0.1:{cport}");
    // The client's CLOSED -> SYN_SENT happens before connect() binds its port (conn shows
    // port 0). Linux hands the client to a TIME_WAIT minisock when the server's FIN comes,
    // reporting FIN_WAIT_2 -> CLOSED; sock_diag finds the minisock.
    assert_eq!(
        path(&events, &client),
        [
            "SYN_SENT>ESTABLISHED",
            "ESTABLISHED>FIN_WAIT_1",
            "FIN_WAIT_1>FIN_WAIT_2",
            "FIN_WAIT_2>TIME_WAIT"
        ],
        "{out}"
    );
    let tw = events.iter().find(|e| e["to"] == "TIME_WAIT").unwrap();
    assert_eq!(
        (&tw["source"], &tw["cause"]),
        (&"sock_diag".into(), &"FIN received".into())
    );
    assert_eq!(
        path(&events, &server),
        [
            "LISTEN>SYN_RECEIVED",
            "SYN_RECEIVED>ESTABLISHED",
            "ESTABLISHED>CLOSE_WAIT",
            "CLOSE_WAIT>LAST_ACK",
            "LAST_ACK>CLOSED"
        ],
        "{out}"
    );
    let listener = format!("127.0.0.1:{port}-0.0.0.0:0");
    assert_eq!(
        path(&events, &listener),
        ["CLOSED>LISTEN", "LISTEN>CLOSED"],
        "{out}"
    );
    // skaddr ties one socket's lines together: the client's port-0 SYN_SENT is the same
    // socket as its later lines, and the server's child is another socket.
    let sk = |conn: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["conn"] == conn)
            .map(|e| e["skaddr"].as_str().unwrap().to_string())
            .collect()
    };
    let client_sk = sk(&client);
    assert!(client_sk.iter().all(|s| *s == client_sk[0]), "{out}");
    assert!(u64::from_str_radix(&client_sk[0], 16).is_ok_and(|a| a != 0));
    let syn = events
        .iter()
        .find(|e| e["to"] == "SYN_SENT")
        .expect("CLOSED -> SYN_SENT");
    assert_eq!(
        syn["conn"],
        format!("127.0.0.1:0-127.0.0.1:{port}").as_str()
    );
    assert_eq!(syn["skaddr"], client_sk[0].as_str());
    // ...so its SYN_SENT has a known age even though the port was 0 then.
    let est = events
        .iter()
        .find(|e| e["conn"] == client.as_str() && e["from"] == "SYN_SENT")
        .unwrap();
    assert!(est["ms_in_prev"].as_f64().is_some(), "{est}");
    assert_ne!(sk(&server)[0], client_sk[0]);
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
    let trace = start_trace(
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
    let (out, err) = trace.finish(Duration::from_secs(30));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "header + 2 transitions:\n{out}");
    assert!(lines[0].contains("OLDSTATE") && lines[0].contains("SKADDR"));
    let conn = format!("127.0.0.1:{port} -> 127.0.0.1:{cport}");
    assert!(lines[1].contains(&conn), "{out}");
    assert!(lines[1].contains("ESTABLISHED  -> CLOSE_WAIT"), "{out}");
    assert!(lines[2].contains("CLOSE_WAIT   -> LAST_ACK"), "{out}");
    // The namespace caveat is said where a person sees it.
    assert!(err.contains("carry no network namespace"), "{err}");
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
    let trace = json_trace(&ns, port, 3, &["--state", "established"]);
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
    let (out, _) = trace.finish(Duration::from_secs(30));
    let (_, events) = json_lines(&out);
    let conns: Vec<(String, String, String)> = events
        .iter()
        .map(|v| {
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
/// per 40 connections without any loss record. Every transition the kernel reports must be
/// delivered: 10 per connection (5 per end) plus the listener's open and close. (Lookups
/// off, so the kernel's own reports are counted, not what sock_diag adds.)
#[test]
fn trace_reports_every_transition_of_40_connections_including_softirq_fin_waits() {
    let Some(ns) = Netns::new("trace_reports_every_transition_of_40") else {
        return;
    };
    let port = test_port(5);
    let p = port.to_string();
    const N: usize = 40;
    let expected = 10 * N + 2;
    let trace = start_trace(
        &ns,
        &[
            "trace",
            "--json",
            "--lookup-rate",
            "0",
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
    let (out, _) = trace.finish(Duration::from_secs(40));
    let (header, events) = json_lines(&out);
    assert!(header["lookup_netns"].is_null(), "lookups off: {header}");
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
