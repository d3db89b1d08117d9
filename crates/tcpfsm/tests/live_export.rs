//! `tcpfsm export` (the built binary) inside a private network namespace: `/metrics` is valid
//! Prometheus text with the counts of sockets the test put into known states, and the server
//! answers 404/400 and keeps serving while a client stalls. Needs root; skips loudly otherwise.

#[path = "../../tcpfsm-host/tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::{wait_until, Netns};

/// The exporter running in a namespace; killed on drop.
struct Exporter {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_exporter(ns: &Netns) -> Exporter {
    let mut child = ns
        .command(
            env!("CARGO_BIN_EXE_tcpfsm"),
            &[
                "export",
                "--listen",
                "127.0.0.1:0",
                "--header-timeout",
                "2s",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tcpfsm export");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stderr);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(rest) = line.trim().strip_prefix("tcpfsm: serving http://") {
                let addr = rest.trim_end_matches("/metrics").to_string();
                let _ = tx.send(addr);
            } else {
                eprint!("export: {line}");
            }
            line.clear();
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(a) => a.parse().expect("address"),
        Err(_) => {
            let _ = child.kill();
            panic!("exporter never said where it listens");
        }
    };
    Exporter { child, addr }
}

/// One HTTP exchange from inside the namespace; returns the raw response.
fn http(ns: &Netns, addr: SocketAddr, request: &'static [u8]) -> String {
    ns.run(move || {
        let mut s = TcpStream::connect(addr).expect("connect to exporter");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
}

fn scrape(ns: &Netns, addr: SocketAddr) -> String {
    let r = http(
        ns,
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains("content-type: text/plain; version=0.0.4"), "{r}");
    r.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// A strict reader of the text exposition format: every sample belongs to a family declared
/// by `# TYPE` before it, families are contiguous and declared once, names and label names are
/// valid, label values are quoted and escaped, values parse as floats. Returns
/// `series -> value` with series written `name{k="v",…}` as on the wire.
fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let valid = |n: &str, colon: bool| {
        let mut cs = n.chars();
        matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
            && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
    };
    let mut declared = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut series = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line:?}", i + 1);
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut w = rest.split(' ');
            let name = w.next().unwrap();
            let kind = w.next().unwrap_or("");
            assert!(valid(name, true), "bad name {}", at());
            assert!(
                ["counter", "gauge", "untyped", "histogram", "summary"].contains(&kind),
                "bad type {}",
                at()
            );
            assert!(declared.insert(name.to_string()), "family twice {}", at());
            current = Some(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        assert!(!line.starts_with('#'), "stray comment {}", at());
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value {}", at()));
        let name = &line[..name_end];
        assert_eq!(
            Some(name),
            current.as_deref(),
            "sample outside its family {}",
            at()
        );
        let mut rest = &line[name_end..];
        let mut key = name.to_string();
        if rest.starts_with('{') {
            // Labels: k="v" pairs, comma separated, with \\ \" \n escapes in values.
            let bytes = rest.as_bytes();
            let mut j = 1;
            let mut labels = Vec::new();
            while bytes[j] != b'}' {
                let eq = rest[j..]
                    .find('=')
                    .unwrap_or_else(|| panic!("label {}", at()))
                    + j;
                let lname = &rest[j..eq];
                assert!(valid(lname, false), "bad label name {}", at());
                assert_eq!(bytes[eq + 1], b'"', "unquoted label {}", at());
                let mut k = eq + 2;
                let mut value = String::new();
                loop {
                    match bytes[k] {
                        b'\\' => {
                            match bytes[k + 1] {
                                b'\\' => value.push('\\'),
                                b'"' => value.push('"'),
                                b'n' => value.push('\n'),
                                _ => panic!("bad escape {}", at()),
                            }
                            k += 2;
                        }
                        b'"' => break,
                        _ => {
                            let ch = rest[k..].chars().next().unwrap();
                            value.push(ch);
                            k += ch.len_utf8();
                        }
                    }
                }
                labels.push(format!("{lname}=\"{value}\""));
                j = k + 1;
                if bytes[j] == b',' {
                    j += 1;
                }
            }
            key = format!("{name}{{{}}}", labels.join(","));
            rest = &rest[j + 1..];
        }
        let value = rest.trim();
        let v: f64 = match value {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value {}", at())),
        };
        assert!(series.insert(key, v).is_none(), "duplicate series {}", at());
    }
    series
}

/// In the namespace: `established` connected pairs, and `close_wait` connections whose client
/// closed while the server (this process) never does. Returned sockets keep them alive.
fn make_sockets(
    ns: &Netns,
    established: usize,
    close_wait: usize,
) -> (Vec<TcpStream>, TcpListener, SocketAddr) {
    ns.run(move || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut keep = Vec::new();
        for _ in 0..established {
            let c = TcpStream::connect(addr).unwrap();
            let (s, _) = l.accept().unwrap();
            keep.push(c);
            keep.push(s);
        }
        for _ in 0..close_wait {
            let c = TcpStream::connect(addr).unwrap();
            let (s, _) = l.accept().unwrap();
            // The client sends FIN: server -> CLOSE_WAIT, client -> FIN_WAIT_2 (kept open, so
            // it stays there rather than being orphaned).
            c.shutdown(Shutdown::Write).unwrap();
            keep.push(c);
            keep.push(s);
        }
        // The listener stays open too (one LISTEN socket).
        (keep, l, addr)
    })
}

fn comm_of_self() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn export_metrics_parse_and_count_the_sockets_in_the_namespace() {
    let Some(ns) = Netns::new("export_metrics_parse_and_count_the_sockets") else {
        return;
    };
    let (_keep, _listener, listen_addr) = make_sockets(&ns, 2, 3);
    let exp = start_exporter(&ns);
    let mut m = BTreeMap::new();
    let cw = "node_tcp_connection_states{state=\"close_wait\"}";
    let fw2 = "node_tcp_connection_states{state=\"fin_wait2\"}";
    let settled = wait_until(Duration::from_secs(10), || {
        m = parse_exposition(&scrape(&ns, exp.addr));
        m.get(cw) == Some(&3.0) && m.get(fw2) == Some(&3.0)
    });
    assert!(settled, "CLOSE_WAIT/FIN_WAIT_2 never reached 3: {m:#?}");
    let state = |s: &str| m[&format!("node_tcp_connection_states{{state=\"{s}\"}}")];
    // All eleven states, with the node exporter's label spelling, zeros included.
    for s in [
        "established",
        "syn_sent",
        "syn_recv",
        "fin_wait1",
        "fin_wait2",
        "time_wait",
        "close",
        "close_wait",
        "last_ack",
        "listen",
        "closing",
    ] {
        assert!(
            m.contains_key(&format!("node_tcp_connection_states{{state=\"{s}\"}}")),
            "{s}"
        );
    }
    // Both ends of the 2 open pairs, plus both ends of the scrape's own connection; the 3
    // half-closed pairs are CLOSE_WAIT / FIN_WAIT_2, not ESTABLISHED.
    assert_eq!(state("established"), 2.0 * 2.0 + 2.0);
    // Our listener and the exporter's.
    assert_eq!(state("listen"), 2.0);
    // Each CLOSE_WAIT socket holds its peer's unread FIN (one sequence number) in its receive
    // queue, as /proc/net/tcp shows and the node exporter sums; nothing else has unread data.
    assert_eq!(state("rx_queued_bytes"), 3.0);
    assert!(m.contains_key("node_tcp_connection_states{state=\"tx_queued_bytes\"}"));
    assert_eq!(state("syn_recv"), 0.0);
    // The owner of the CLOSE_WAIT sockets is this test process.
    let me = comm_of_self();
    let pid = std::process::id();
    let key = format!("tcpfsm_close_wait_sockets{{process=\"{me}\",pid=\"{pid}\"}}");
    assert_eq!(m.get(&key), Some(&3.0), "{key} in {m:#?}");
    // Our listener's accept queue is empty and its backlog is std's 128 (under somaxconn).
    let lkey = |f: &str| format!("{f}{{local=\"{listen_addr}\",process=\"{me}\"}}");
    assert_eq!(
        m.get(&lkey("tcpfsm_listen_queue_length")),
        Some(&0.0),
        "{m:#?}"
    );
    assert_eq!(m.get(&lkey("tcpfsm_listen_backlog")), Some(&128.0));
    // node exporter netstat/sockstat families are present with the kernel's field names.
    for k in [
        "node_netstat_Tcp_ActiveOpens",
        "node_netstat_Tcp_PassiveOpens",
        "node_netstat_Tcp_CurrEstab",
        "node_netstat_Tcp_RetransSegs",
        "node_netstat_TcpExt_ListenOverflows",
        "node_netstat_TcpExt_SyncookiesSent",
        "node_sockstat_TCP_inuse",
        "node_sockstat_TCP_tw",
        "node_sockstat_TCP_mem_bytes",
        "tcpfsm_ephemeral_port_range_size",
        "tcpfsm_scrape_duration_seconds",
    ] {
        assert!(m.contains_key(k), "{k} missing");
    }
    // In a fresh namespace the counters are the namespace's own: exactly our connects (the
    // scrapes add theirs, so at least 5).
    assert!(m["node_netstat_Tcp_ActiveOpens"] >= 5.0);
    assert_eq!(
        m["tcpfsm_diagnosis_status{rule=\"close_wait_leak\"}"], 0.0,
        "3 CLOSE_WAIT is below the warning threshold"
    );
}

#[test]
fn export_answers_404_for_other_paths_and_400_for_garbage() {
    let Some(ns) = Netns::new("export_answers_404_and_400") else {
        return;
    };
    let exp = start_exporter(&ns);
    let r = http(
        &ns,
        exp.addr,
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    let r = http(
        &ns,
        exp.addr,
        b"GET /metrics/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    let r = http(&ns, exp.addr, b"\x00\x01garbage\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    // Still serving afterwards.
    parse_exposition(&scrape(&ns, exp.addr));
}

#[test]
fn export_stalled_client_does_not_block_another_scrape() {
    let Some(ns) = Netns::new("export_stalled_client_does_not_block_another_scrape") else {
        return;
    };
    let exp = start_exporter(&ns);
    let addr = exp.addr;
    // Clients that send half a request and go silent.
    let stalled: Vec<TcpStream> = ns.run(move || {
        (0..6)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"GET /metr").unwrap();
                s
            })
            .collect()
    });
    let t = Instant::now();
    let page = scrape(&ns, addr);
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "scrape waited {took:?} behind stalled clients"
    );
    assert!(
        parse_exposition(&page).contains_key("node_tcp_connection_states{state=\"established\"}")
    );
    // The header timeout (2s here) then drops the stalled clients.
    let mut first = stalled.into_iter().next().unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 256];
    let n = first.read(&mut buf).unwrap_or(0);
    let got = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "stalled client held {:?}",
        t.elapsed()
    );
}

#[test]
fn export_diagnosis_status_turns_warning_past_100_close_wait() {
    let Some(ns) = Netns::new("export_diagnosis_status_turns_warning") else {
        return;
    };
    let (_keep, _listener, _) = make_sockets(&ns, 0, 120);
    let exp = start_exporter(&ns);
    let mut m = BTreeMap::new();
    let settled = wait_until(Duration::from_secs(10), || {
        m = parse_exposition(&scrape(&ns, exp.addr));
        m.get("node_tcp_connection_states{state=\"close_wait\"}") == Some(&120.0)
    });
    assert!(settled, "CLOSE_WAIT never reached 120");
    // The texts' table: over 100 CLOSE_WAIT is a warning (1), not yet critical (2).
    assert_eq!(m["tcpfsm_diagnosis_status{rule=\"close_wait_leak\"}"], 1.0);
    assert_eq!(m["tcpfsm_diagnosis_value{rule=\"close_wait_leak\"}"], 120.0);
    let me = comm_of_self();
    let pid = std::process::id();
    assert_eq!(
        m[&format!("tcpfsm_close_wait_sockets{{process=\"{me}\",pid=\"{pid}\"}}")],
        120.0
    );
}
