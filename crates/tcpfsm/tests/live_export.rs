//! `tcpfsm export` (the built binary) inside a private network namespace: `/metrics` is valid
//! Prometheus text with the counts of sockets the test put into known states, and the server
//! answers 404/400 and keeps serving while a client stalls. Needs root; skips loudly otherwise.

mod live_support;

use live_support::exporter::{
    http, http_raw, parse_exposition, scrape, start_exporter, NODE_STATES,
};
use live_support::{wait_until, Netns};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// [`live_support::sockets`] in the namespace, and the listener's address.
fn make_sockets(
    ns: &Netns,
    established: usize,
    close_wait: usize,
) -> (Vec<TcpStream>, TcpListener, SocketAddr) {
    let (keep, l) = ns.run(move || live_support::sockets(established, close_wait));
    let addr = l.local_addr().unwrap();
    (keep, l, addr)
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
    for s in NODE_STATES {
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
fn export_landing_page_links_to_metrics_other_paths_are_404_and_garbage_400() {
    let Some(ns) = Netns::new("export_answers_404_and_400") else {
        return;
    };
    let exp = start_exporter(&ns);
    let r = http(
        &ns,
        exp.addr,
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains("content-type: text/html"), "{r}");
    assert!(r.contains("<a href=\"/metrics\">"), "{r}");
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

#[test]
fn export_gzips_the_page_when_the_client_accepts_gzip_and_only_then() {
    let Some(ns) = Netns::new("export_gzips_the_page") else {
        return;
    };
    let exp = start_exporter(&ns);
    let (head, body) = http_raw(
        &ns,
        exp.addr,
        b"GET /metrics HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    );
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(head.contains("vary: accept-encoding"), "{head}");
    let mut page = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut page)
        .expect("a gzip stream");
    let zipped = parse_exposition(&page);
    assert!(zipped.contains_key("node_tcp_connection_states{state=\"established\"}"));
    assert!(
        body.len() * 3 < page.len(),
        "{} bytes for {}",
        body.len(),
        page.len()
    );
    // Refused with q=0, or not asked for: plain text.
    for req in [
        &b"GET /metrics HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip;q=0, identity\r\nConnection: close\r\n\r\n"[..],
        &b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"[..],
    ] {
        let (head, body) = http_raw(&ns, exp.addr, req);
        assert!(!head.contains("content-encoding"), "{head}");
        let plain = parse_exposition(std::str::from_utf8(&body).unwrap());
        assert_eq!(
            plain.keys().filter(|k| k.starts_with("node_tcp_connection_states")).count(),
            zipped.keys().filter(|k| k.starts_with("node_tcp_connection_states")).count()
        );
    }
}

#[test]
fn export_has_build_info_and_raw_counters_but_no_ratio_since_the_previous_scrape() {
    let Some(ns) = Netns::new("export_has_build_info_and_raw_counters") else {
        return;
    };
    let exp = start_exporter(&ns);
    let m = parse_exposition(&scrape(&ns, exp.addr));
    let build = format!(
        "tcpfsm_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(m.get(&build), Some(&1.0), "{m:#?}");
    assert!(
        !m.keys()
            .any(|k| k.split('{').next().unwrap().ends_with("_ratio")),
        "{m:#?}"
    );
    for k in ["node_netstat_Tcp_RetransSegs", "node_netstat_Tcp_OutSegs"] {
        assert!(m.contains_key(k), "{k}");
    }
    // The owner walk runs in the background; the page says how old it is.
    assert!(m["tcpfsm_owner_scan_age_seconds"] >= 0.0);
    assert!(m["tcpfsm_owner_scan_duration_seconds"] >= 0.0);
}

/// A `sleep` child holding, besides its stdio, the descriptors passed (inherited across exec).
fn sleeper_holding(fds: &[std::os::fd::BorrowedFd<'_>]) -> std::process::Child {
    use std::os::fd::AsRawFd;
    for fd in fds {
        // Clear FD_CLOEXEC so the child inherits it.
        let raw = fd.as_raw_fd();
        unsafe { libc::fcntl(raw, libc::F_SETFD, 0) };
    }
    let child = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("spawn sleep");
    for fd in fds {
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    child
}

#[test]
fn export_per_process_series_cover_only_processes_holding_tcp_sockets() {
    use std::os::fd::AsFd;
    let Some(ns) = Netns::new("export_per_process_series_only_tcp") else {
        return;
    };
    // One process holds only a UDP socket and a Unix socket; another a TCP listener.
    let (udp, tcp) = ns.run(|| {
        (
            std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
            TcpListener::bind("127.0.0.1:0").unwrap(),
        )
    });
    let (unix, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut no_tcp = sleeper_holding(&[udp.as_fd(), unix.as_fd()]);
    let mut with_tcp = sleeper_holding(&[tcp.as_fd()]);
    let exp = start_exporter(&ns);
    let m = parse_exposition(&scrape(&ns, exp.addr));
    let fds = |pid: u32| {
        m.iter()
            .filter(|(k, _)| {
                k.starts_with("tcpfsm_process_open_fds{") && k.contains(&format!("pid=\"{pid}\""))
            })
            .count()
    };
    assert_eq!(fds(with_tcp.id()), 1, "{m:#?}");
    assert_eq!(fds(no_tcp.id()), 0, "{m:#?}");
    let _ = no_tcp.kill();
    let _ = with_tcp.kill();
    let _ = no_tcp.wait();
    let _ = with_tcp.wait();
}

#[test]
fn export_names_the_owner_of_a_close_wait_that_appears_after_the_last_owner_walk() {
    let Some(ns) = Netns::new("export_names_the_owner_of_a_new_close_wait") else {
        return;
    };
    let exp = start_exporter(&ns);
    let _ = scrape(&ns, exp.addr);
    // New CLOSE_WAIT sockets, younger than the walk the exporter did at start.
    let (_keep, _l, _) = make_sockets(&ns, 0, 4);
    let me = comm_of_self();
    let key = format!(
        "tcpfsm_close_wait_sockets{{process=\"{me}\",pid=\"{}\"}}",
        std::process::id()
    );
    let t = Instant::now();
    let mut m = BTreeMap::new();
    // Until a walk sees them they have no owner; meeting them asks for a walk, which may
    // come 5 s after the previous one at the earliest.
    let named = wait_until(Duration::from_secs(15), || {
        m = parse_exposition(&scrape(&ns, exp.addr));
        m.get(&key) == Some(&4.0)
    });
    assert!(named, "owner never named: {m:#?}");
    assert!(t.elapsed() < Duration::from_secs(12), "{:?}", t.elapsed());
}

/// A CLOSE_WAIT still in an accept queue has no file, so no process: the exporter labels it
/// `process="no owner"` — `tcpfsm_observe::NO_OWNER`, the spelling `states`, `watch` and the
/// per-process alert's matcher (`process!~"other|no owner"`) use.
#[test]
fn export_labels_a_close_wait_nobody_accepted_with_the_one_no_owner_spelling() {
    let Some(ns) = Netns::new("export_labels_a_close_wait_nobody_accepted") else {
        return;
    };
    let _queued = ns.run(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        (l, c)
    });
    assert!(
        wait_until(Duration::from_secs(5), || ns.ss_count("close-wait") == 1),
        "no CLOSE_WAIT"
    );
    let exp = start_exporter(&ns);
    let key = format!(
        "tcpfsm_close_wait_sockets{{process=\"{}\",pid=\"\"}}",
        tcpfsm_observe::NO_OWNER
    );
    let mut m = BTreeMap::new();
    let seen = wait_until(Duration::from_secs(10), || {
        m = parse_exposition(&scrape(&ns, exp.addr));
        m.get(&key) == Some(&1.0)
    });
    assert!(seen, "{key} not 1: {m:#?}");
    assert!(
        !m.keys().any(|k| k.contains("unattributed")),
        "another spelling: {m:#?}"
    );
}
