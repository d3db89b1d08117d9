//! `tcpfsm trace` beyond the state tracepoint: TIME_WAIT found through sock_diag and
//! followed to its end, retransmissions towards a peer that stopped answering, and resets
//! sent and received — all on real kernel connections in private network namespaces.
//! Needs root (tracefs, netns); skips loudly otherwise.

mod live_support;

use live_support::{
    ip, json_lines, json_trace, netns_inode, pair, path, run_bounded, start_trace, test_port,
    wait_until, Netns,
};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A connection whose client closes first, in `ns`: FIN_WAIT_1, FIN_WAIT_2, then TIME_WAIT
/// when the server's FIN arrives. Returns the client's port.
fn active_close(ns: &Netns, port: u16) -> u16 {
    ns.run(move || {
        let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let cport = c.local_addr().unwrap().port();
        c.shutdown(Shutdown::Write).unwrap();
        let mut b = [0u8; 1];
        assert_eq!(s.read(&mut b).unwrap(), 0);
        drop(s);
        std::thread::sleep(Duration::from_millis(50));
        cport
    })
}

fn ss_time_wait(ns: &Netns, port: u16) -> usize {
    let out = run_bounded(
        ns.command(
            "ss",
            &[
                "-tanH",
                "state",
                "time-wait",
                &format!("( dport = :{port} )"),
            ],
        ),
        Duration::from_secs(10),
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

#[test]
fn active_close_shows_fin_wait_1_fin_wait_2_time_wait_and_closed_when_ss_kills_the_entry() {
    let Some(ns) = Netns::new("active_close_shows_time_wait") else {
        return;
    };
    let port = test_port(11);
    let trace = json_trace(&ns, port, 2, &["--state", "time-wait"]);
    let cport = active_close(&ns, port);
    // The kernel really holds the TIME_WAIT entry (ss sees it) until we kill it.
    assert!(wait_until(Duration::from_secs(5), || ss_time_wait(
        &ns, port
    ) == 1));
    let held = Duration::from_millis(700);
    std::thread::sleep(held);
    let killed_at = Instant::now();
    let out = run_bounded(
        ns.command(
            "ss",
            &[
                "-K",
                "-tan",
                "state",
                "time-wait",
                &format!("( dport = :{port} )"),
            ],
        ),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "ss -K: {out:?}");
    assert_eq!(ss_time_wait(&ns, port), 0, "ss -K removed the entry");
    let (out, _) = trace.finish(Duration::from_secs(30));
    let noticed = killed_at.elapsed();

    let (_, events) = json_lines(&out);
    let client = format!("127.0.0.1:{cport}-127.0.0.1:{port}");
    assert_eq!(
        path(&events, &client),
        ["FIN_WAIT_2>TIME_WAIT", "TIME_WAIT>CLOSED"],
        "{out}"
    );
    let (enter, end) = (&events[0], &events[1]);
    for e in [enter, end] {
        assert_eq!(e["source"], "sock_diag", "{e}");
        assert_eq!(e["netns"], netns_inode(&ns).as_str(), "{e}");
        assert_eq!(e["skaddr"], enter["skaddr"], "one connection: {out}");
    }
    assert!(
        end["cause"]
            .as_str()
            .unwrap()
            .starts_with("removed before its timer"),
        "{end}"
    );
    // Time spent in TIME_WAIT: at least as long as we held it, and the end was noticed
    // within the re-check interval of the kill (not the 60 s timer).
    let ms = end["ms_in_prev"].as_f64().unwrap();
    assert!(
        ms >= held.as_millis() as f64,
        "{ms} ms in TIME_WAIT, held {held:?}"
    );
    assert!(ms < 20_000.0, "{ms}");
    let (seen, t) = (
        end["last_seen_us"].as_u64().unwrap(),
        end["t_us"].as_u64().unwrap(),
    );
    assert!(seen < t && seen >= enter["t_us"].as_u64().unwrap(), "{end}");
    assert!(noticed < Duration::from_secs(10), "{noticed:?}");
}

#[test]
fn full_path_of_an_active_close_reads_fin_wait_1_fin_wait_2_time_wait_closed() {
    let Some(ns) = Netns::new("full_path_of_an_active_close") else {
        return;
    };
    let port = test_port(12);
    // Client: CLOSED>SYN_SENT (port 0), SYN_SENT>EST, EST>FW1, FW1>FW2, FW2>TW, TW>CLOSED;
    // server: 5; listener: open and close. 13 events.
    let trace = json_trace(&ns, port, 13, &[]);
    let cport = active_close(&ns, port);
    assert!(wait_until(Duration::from_secs(5), || ss_time_wait(
        &ns, port
    ) == 1));
    ns.command(
        "ss",
        &[
            "-K",
            "-tan",
            "state",
            "time-wait",
            &format!("( dport = :{port} )"),
        ],
    )
    .output()
    .unwrap();
    let (out, _) = trace.finish(Duration::from_secs(30));
    let (_, events) = json_lines(&out);
    let client = format!("127.0.0.1:{cport}-127.0.0.1:{port}");
    assert_eq!(
        path(&events, &client),
        [
            "SYN_SENT>ESTABLISHED",
            "ESTABLISHED>FIN_WAIT_1",
            "FIN_WAIT_1>FIN_WAIT_2",
            "FIN_WAIT_2>TIME_WAIT",
            "TIME_WAIT>CLOSED"
        ],
        "{out}"
    );
}

#[test]
fn text_output_marks_what_sock_diag_found() {
    let Some(ns) = Netns::new("text_output_marks_what_sock_diag_found") else {
        return;
    };
    let port = test_port(13);
    let p = port.to_string();
    let trace = start_trace(
        &ns,
        &[
            "trace",
            "--port",
            &p,
            "--state",
            "time-wait",
            "--count",
            "1",
            "--duration",
            "20s",
        ],
    );
    let cport = active_close(&ns, port);
    let (out, _) = trace.finish(Duration::from_secs(30));
    let line = out.lines().nth(1).expect("one event line");
    assert!(
        line.contains(&format!("127.0.0.1:{cport} -> 127.0.0.1:{port}")),
        "{out}"
    );
    assert!(line.contains("FIN_WAIT_2   -> TIME_WAIT *"), "{out}");
}

#[test]
fn lookups_off_leave_the_kernels_closed_as_reported() {
    let Some(ns) = Netns::new("lookups_off_leave_the_kernels_closed") else {
        return;
    };
    let port = test_port(14);
    let trace = json_trace(
        &ns,
        port,
        2,
        &["--lookup-rate", "0", "--state", "fin-wait-2"],
    );
    let cport = active_close(&ns, port);
    let (out, _) = trace.finish(Duration::from_secs(30));
    let (_, events) = json_lines(&out);
    let client = format!("127.0.0.1:{cport}-127.0.0.1:{port}");
    assert_eq!(
        path(&events, &client),
        ["FIN_WAIT_1>FIN_WAIT_2", "FIN_WAIT_2>CLOSED"],
        "{out}"
    );
}

#[test]
fn a_time_wait_in_another_namespace_is_not_mistaken_for_ours() {
    // Lookups run in a namespace the connection is not in: the kernel's CLOSED stays, with
    // the reason said.
    let Some(ns) = Netns::new("a_time_wait_in_another_namespace") else {
        return;
    };
    let Some(other) = Netns::new("a_time_wait_in_another_namespace") else {
        return;
    };
    let port = test_port(15);
    let trace = json_trace(
        &ns,
        port,
        2,
        &["--netns", &other.name, "--state", "fin-wait-2"],
    );
    let cport = active_close(&ns, port);
    let (out, _) = trace.finish(Duration::from_secs(30));
    let (header, events) = json_lines(&out);
    assert_eq!(header["lookup_netns"], netns_inode(&other).as_str());
    let client = format!("127.0.0.1:{cport}-127.0.0.1:{port}");
    assert_eq!(
        path(&events, &client),
        ["FIN_WAIT_1>FIN_WAIT_2", "FIN_WAIT_2>CLOSED"],
        "{out}"
    );
    assert_eq!(events[1]["time_wait"], "not found", "{out}");
    assert_eq!(events[1]["netns"], "unknown");
}

#[test]
fn retransmits_towards_a_peer_that_stopped_answering_are_in_the_stream() {
    let Some(p2) = pair("retransmits_towards_a_silent_peer") else {
        return;
    };
    let port = test_port(16);
    let trace = json_trace(&p2.a, port, 8, &["--events", "retransmit"]);
    let b_ip = p2.b_ip.clone();
    let l =
        p2.b.run(move || TcpListener::bind(("0.0.0.0", port)).unwrap());
    let mut c =
        p2.a.run(move || TcpStream::connect((b_ip.as_str(), port)).unwrap());
    let (_s, _) = l.accept().unwrap();
    let local = c.local_addr().unwrap();
    // The peer can no longer answer: its route back to us is a black hole.
    ip(&[
        "-n",
        &p2.b.name,
        "route",
        "add",
        "blackhole",
        &format!("{}/32", p2.a_ip),
    ]);
    c.write_all(&[7u8; 1000]).unwrap();
    let (out, _) = trace.finish(Duration::from_secs(30));
    let (header, events) = json_lines(&out);
    assert_eq!(header["events"], serde_json::json!(["state", "retransmit"]));
    let conn = format!("{local}-{}:{port}", p2.b_ip);
    let rtx: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "retransmit")
        .collect();
    // 8 events: the listener's, the client's 2 and the server's 2 state changes, then
    // retransmissions (RTO 200 ms, 400 ms, ...).
    assert_eq!(rtx.len(), 3, "{out}");
    for r in &rtx {
        assert_eq!(r["conn"], conn.as_str(), "{out}");
        assert_eq!(r["state"], "ESTABLISHED", "{r}");
    }
    // The same socket as the connection's state changes.
    let est = events
        .iter()
        .find(|e| e["conn"] == conn.as_str() && e["to"] == "ESTABLISHED")
        .expect("the client's SYN_SENT -> ESTABLISHED");
    assert_eq!(rtx[0]["skaddr"], est["skaddr"]);
    // RTO backoff: the second retransmission waits longer than the first.
    let t: Vec<u64> = rtx.iter().map(|r| r["t_us"].as_u64().unwrap()).collect();
    assert!(t[2] - t[1] > t[1] - t[0], "{t:?}");
}

#[test]
fn resets_sent_and_received_are_in_the_stream_with_the_kernels_reason() {
    let Some(ns) = Netns::new("resets_sent_and_received") else {
        return;
    };
    let port = test_port(17);
    let trace = json_trace(&ns, port, 3, &["--events", "reset", "--state", "syn-sent"]);
    // Nobody listens on the port: the kernel answers the SYN with a RST.
    let err = ns.run(move || TcpStream::connect(("127.0.0.1", port)).unwrap_err());
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let (out, _) = trace.finish(Duration::from_secs(30));
    let (_, events) = json_lines(&out);
    let resets: Vec<&Value> = events.iter().filter(|e| e["event"] == "reset").collect();
    // --state syn-sent keeps the client's two state changes and the reset it received; the
    // RST the kernel sent belongs to no socket, so it has no state and is filtered out.
    assert_eq!(resets.len(), 1, "{out}");
    let r = resets[0];
    assert_eq!(
        (&r["direction"], &r["state"]),
        (&"received".into(), &"SYN_SENT".into()),
        "{r}"
    );
    let closed = events
        .iter()
        .find(|e| e["to"] == "CLOSED")
        .expect("SYN_SENT -> CLOSED");
    assert_eq!(r["skaddr"], closed["skaddr"]);
    assert_eq!(r["conn"], closed["conn"]);

    // Unfiltered: the RST sent for the closed port, with the kernel's reason (6.10+).
    let port = test_port(18);
    let trace = json_trace(&ns, port, 4, &["--events", "reset"]);
    let _ = ns.run(move || TcpStream::connect(("127.0.0.1", port)));
    let (out, _) = trace.finish(Duration::from_secs(30));
    let (_, events) = json_lines(&out);
    let sent = events
        .iter()
        .find(|e| e["event"] == "reset" && e["direction"] == "sent")
        .unwrap_or_else(|| panic!("no RST sent: {out}"));
    assert!(sent["skaddr"].is_null(), "no socket: {sent}");
    assert!(
        sent["conn"]
            .as_str()
            .unwrap()
            .starts_with(&format!("127.0.0.1:{port}-")),
        "{sent}"
    );
    let has_reason =
        std::fs::read_to_string("/sys/kernel/tracing/events/tcp/tcp_send_reset/format")
            .map(|f| f.contains("reason"))
            .unwrap_or(true);
    if has_reason {
        assert_eq!(sent["reason"], "NO_SOCKET", "{sent}");
    }
}

#[test]
fn abort_with_linger_zero_shows_the_rst_sent_by_one_end_and_received_by_the_other() {
    let Some(ns) = Netns::new("abort_with_linger_zero") else {
        return;
    };
    let port = test_port(19);
    let p = port.to_string();
    let trace = start_trace(
        &ns,
        &[
            "trace",
            "--json",
            "--events",
            "reset",
            "--port",
            &p,
            "--duration",
            "3s",
        ],
    );
    let (cport, server_state_before) = ns.run(move || {
        let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let c = socket2::Socket::from(TcpStream::connect(("127.0.0.1", port)).unwrap());
        let (_s, _) = l.accept().unwrap();
        let cport = c.local_addr().unwrap().as_socket().unwrap().port();
        c.set_linger(Some(Duration::ZERO)).unwrap();
        drop(c);
        std::thread::sleep(Duration::from_millis(50));
        (cport, "ESTABLISHED")
    });
    let (out, _) = trace.finish(Duration::from_secs(30));
    let (_, events) = json_lines(&out);
    let client = format!("127.0.0.1:{cport}-127.0.0.1:{port}");
    let server = format!("127.0.0.1:{port}-127.0.0.1:{cport}");
    let sent = events
        .iter()
        .find(|e| e["event"] == "reset" && e["direction"] == "sent")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(sent["conn"], client.as_str(), "{out}");
    let client_sk = events
        .iter()
        .find(|e| e["conn"] == client.as_str() && e["event"] == "state")
        .unwrap()["skaddr"]
        .clone();
    assert_eq!(sent["skaddr"], client_sk);
    let recv = events
        .iter()
        .find(|e| e["event"] == "reset" && e["direction"] == "received")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(recv["conn"], server.as_str(), "{out}");
    assert_eq!(recv["state"], server_state_before, "{recv}");
    // The server's socket ends on the RST.
    assert_eq!(
        path(&events, &server).last().map(String::as_str),
        Some("ESTABLISHED>CLOSED")
    );
}
