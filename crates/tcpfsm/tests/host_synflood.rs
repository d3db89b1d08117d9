//! `tcpfsm diagnose` (the built binary) against a real SYN flood on the Linux kernel, inside a
//! private network namespace (needs root).
//!
//! A kernel listener in the namespace receives spoofed SYNs written into a TUN device, from
//! many source addresses inside the TUN's prefix. The kernel answers each with a SYN-ACK, which
//! it routes back into the TUN, where nobody ever sends the final ACK (RFC 9293 §3.5: the
//! listener's connection sits in SYN-RECEIVED until the handshake completes or it gives up).
//! With SYN cookies off each SYN leaves a request socket in SYN_RECEIVED; with SYN cookies
//! forced on (`tcp_syncookies = 2`) the kernel keeps no state at all and encodes it in the
//! SYN-ACK's sequence number instead. Between them the two tests tell a real half-open flood
//! from a flood the host is already absorbing.
//!
//! Both stay well inside the kernel's first SYN-ACK retransmission timeout backoff (1 s, 2 s,
//! 4 s … for `tcp_synack_retries` = 5, about a minute in all), so no half-open entry expires
//! while they count.

#[path = "cli/mod.rs"]
mod cli;
#[path = "../../tcpfsm-host/tests/support/mod.rs"]
mod support;

use cli::{json, tcpfsm, verdict};
use serde_json::Value;
use socket2::{Domain, Socket, Type};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use support::*;
use tcpfsm_tun::wire::{emit_ip_tcp, parse_ip_tcp, Flags, SeqNum, TcpOptions, TcpRepr};
use tcpfsm_tun::{TunAddrs, TunDevice};

/// Spoofed SYNs per test.
const FLOOD: usize = 300;
/// The kernel's address on the TUN; the spoofed sources share its /16.
const KERNEL: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// Backlog and SYN-queue limits set in the namespace, far above [`FLOOD`]: with SYN cookies off
/// Linux drops new SYNs once the SYN queue is three quarters of `tcp_max_syn_backlog`, and
/// once it reaches the listener's `listen()` backlog (capped by `somaxconn`).
const BACKLOG: i32 = 4096;

/// The `i`-th spoofed source: 10.99.1.1, 10.99.1.2, … — never the kernel's own address, the
/// network or the broadcast address of the /16.
fn spoofed(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 99, 1 + (i / 200) as u8, 1 + (i % 200) as u8)
}

fn isn(i: usize) -> u32 {
    0x1000_0000u32.wrapping_add((i as u32).wrapping_mul(7919))
}

/// A TUN device and a kernel listener inside a namespace.
struct Target {
    tun: TunDevice,
    _listener: Socket,
    port: u16,
}

/// Sets the SYN-handling sysctls of the namespace (all per network namespace).
fn set_syn_sysctls(ns: &Netns, syncookies: u8) {
    let cookies = format!("net.ipv4.tcp_syncookies={syncookies}");
    let backlog = format!("net.ipv4.tcp_max_syn_backlog={BACKLOG}");
    let somaxconn = format!("net.core.somaxconn={BACKLOG}");
    let out = run_bounded(
        ns.command("sysctl", &["-w", &cookies, &backlog, &somaxconn]),
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "sysctl failed: {out:?}");
}

/// In the namespace: a TUN holding 10.99.0.1/16 (its connected route sends every spoofed
/// source's SYN-ACK into the TUN) and a listener on 0.0.0.0 with a large backlog.
fn build_target(ns: &Netns) -> Target {
    ns.run(|| {
        let tun = TunDevice::open("synflood0").expect("open TUN");
        let addrs = TunAddrs {
            host_v4: Some(KERNEL),
            stack_v4: None,
            prefix_v4: 16,
            host_v6: None,
            stack_v6: None,
            prefix_v6: 64,
        };
        tun.configure(1500, &addrs).expect("configure TUN");
        let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        l.bind(&"0.0.0.0:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        l.listen(BACKLOG).unwrap();
        let port = l.local_addr().unwrap().as_socket().unwrap().port();
        Target {
            tun,
            _listener: l,
            port,
        }
    })
}

/// Writes [`FLOOD`] SYNs from distinct spoofed sources to the listener.
fn flood(t: &Target) {
    let mut buf = Vec::new();
    for i in 0..FLOOD {
        let syn = TcpRepr {
            src_port: 40_000 + (i % 20_000) as u16,
            dst_port: t.port,
            seq: SeqNum(isn(i)),
            flags: Flags::SYN,
            window: 64_240,
            options: TcpOptions {
                mss: Some(1460),
                ..TcpOptions::default()
            },
            ..TcpRepr::default()
        };
        emit_ip_tcp(IpAddr::V4(spoofed(i)), IpAddr::V4(KERNEL), &syn, &mut buf).unwrap();
        let n = t.tun.send(&buf).expect("write SYN into the TUN");
        assert_eq!(n, buf.len(), "short TUN write");
    }
}

/// Reads the TUN until every spoofed source has had a SYN-ACK acknowledging its own SYN (so
/// the kernel really took each SYN) and returns the sources answered. Nothing is ever sent
/// back: these handshakes stay half-open.
fn collect_syn_acks(t: &Target) -> HashSet<Ipv4Addr> {
    let mut answered = HashSet::new();
    let mut buf = vec![0u8; 2048];
    wait_until(Duration::from_secs(10), || {
        while let Ok(n) = t.tun.recv(&mut buf) {
            let Ok(seg) = parse_ip_tcp(&buf[..n]) else {
                continue;
            };
            let (IpAddr::V4(src), IpAddr::V4(dst)) = (seg.src, seg.dst) else {
                continue;
            };
            let Some(i) = (0..FLOOD).find(|&i| spoofed(i) == dst) else {
                continue;
            };
            if src == KERNEL
                && seg.tcp.src_port == t.port
                && seg.tcp.flags.contains(Flags::SYN | Flags::ACK)
                && seg.tcp.ack == SeqNum(isn(i)) + 1
            {
                answered.insert(dst);
            }
        }
        answered.len() == FLOOD
    });
    answered
}

/// Rules whose level is not "ok".
fn raised(diag: &Value) -> Vec<String> {
    diag["verdicts"]
        .as_array()
        .expect("verdicts array")
        .iter()
        .filter(|v| v["level"] != "ok")
        .map(|v| {
            format!(
                "{}={}",
                v["rule"].as_str().unwrap(),
                v["level"].as_str().unwrap()
            )
        })
        .collect()
}

/// A TcpExt counter of the namespace, from its /proc/net/netstat (a header line of names,
/// then a line of values).
fn tcp_ext(ns: &Netns, name: &str) -> u64 {
    let out = run_bounded(
        ns.command("cat", &["/proc/net/netstat"]),
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    assert_eq!(rows.len(), 2, "TcpExt header and values: {text}");
    let names = rows[0].split_whitespace().skip(1);
    let values = rows[1].split_whitespace().skip(1);
    names
        .zip(values)
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no TcpExt {name}"))
        .1
        .parse()
        .unwrap()
}

#[test]
fn diagnose_flags_a_real_syn_recv_flood_on_the_kernel() {
    let Some(ns) = Netns::new("diagnose_flags_a_real_syn_recv_flood_on_the_kernel") else {
        return;
    };
    set_syn_sysctls(&ns, 0);
    let target = build_target(&ns);
    flood(&target);

    let answered = collect_syn_acks(&target);
    assert_eq!(
        answered.len(),
        FLOOD,
        "the kernel answered only {} of {FLOOD} spoofed SYNs",
        answered.len()
    );
    let settled = wait_until(Duration::from_secs(10), || {
        ns.ss_count("syn-recv") == FLOOD as u64
    });
    assert!(
        settled,
        "ss never saw {FLOOD} SYN-RECV: {}",
        ns.ss_count("syn-recv")
    );

    let out = tcpfsm(&ns, &["states", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let states = json(&out);
    assert_eq!(states["states"]["SYN_RECEIVED"], FLOOD as u64, "{states}");
    assert_eq!(states["states"]["LISTEN"], 1, "{states}");
    assert_eq!(
        states["states"]["SYN_RECEIVED"],
        ns.ss_count("syn-recv"),
        "tcpfsm states vs ss state syn-recv"
    );

    // --no-fd: the open-file rule would scan every process on the host (the namespace shares
    // the PID namespace), which says nothing about this flood. The retransmit rule is kept
    // from judging: each half-open entry's SYN-ACK is retransmitted after 1 s, 3 s, 7 s…, so
    // within seconds the flood itself makes most segments sent in this namespace
    // retransmissions, which is true but not the rule under test.
    let out = tcpfsm(
        &ns,
        &[
            "diagnose",
            "--json",
            "--no-fd",
            "--set",
            "syn_recv_warn=100",
            "--set",
            "syn_recv_crit=1000",
            "--set",
            "retrans_min_segments=1000000",
        ],
    );
    let diag = json(&out);
    assert_eq!(out.status.code(), Some(1), "exit 1 (warning): {diag}");
    assert_eq!(diag["overall"], "warning", "{diag}");
    assert_eq!(diag["exit_code"], 1, "{diag}");
    let v = verdict(&diag, "syn_recv_flood");
    eprintln!("flood, no cookies: {v}");
    assert_eq!(v["level"], "warning", "{v}");
    assert_eq!(v["value"], FLOOD as f64, "{v}");
    assert_eq!(v["summary"], format!("{FLOOD} SYN_RECEIVED"), "{v}");
    let evidence: Vec<&str> = v["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(
        evidence[0],
        format!("{FLOOD} half-open connections in SYN_RECEIVED (warning at 100, critical at 1000)")
    );
    assert!(
        evidence.contains(&"SYN cookies are disabled (net.ipv4.tcp_syncookies = 0)"),
        "{evidence:?}"
    );
    assert!(
        evidence.contains(&format!("net.ipv4.tcp_max_syn_backlog = {BACKLOG}").as_str()),
        "{evidence:?}"
    );
    // Issue 4: the flood is told apart from TIME_WAIT pressure and from a slow acceptor —
    // only the SYN_RECV rule is raised.
    assert_eq!(
        raised(&diag),
        vec!["syn_recv_flood=warning".to_string()],
        "{diag}"
    );
    assert_eq!(diag["states"]["SYN_RECEIVED"], FLOOD as u64, "{diag}");
}

#[test]
fn diagnose_stays_ok_when_syn_cookies_absorb_the_flood() {
    let Some(ns) = Netns::new("diagnose_stays_ok_when_syn_cookies_absorb_the_flood") else {
        return;
    };
    // 2: answer every SYN with a cookie, keeping no request socket (Linux ip-sysctl docs).
    set_syn_sysctls(&ns, 2);
    let target = build_target(&ns);
    let cookies_before = tcp_ext(&ns, "SyncookiesSent");
    flood(&target);

    // Every SYN was answered (with a cookie SYN-ACK), so the flood reached the listener…
    let answered = collect_syn_acks(&target);
    assert_eq!(
        answered.len(),
        FLOOD,
        "the kernel answered only {} of {FLOOD} spoofed SYNs",
        answered.len()
    );
    let cookies = tcp_ext(&ns, "SyncookiesSent") - cookies_before;
    assert_eq!(cookies, FLOOD as u64, "one SYN cookie per spoofed SYN");
    // …yet it left no half-open state behind.
    assert_eq!(ns.ss_count("syn-recv"), 0);

    let out = tcpfsm(
        &ns,
        &[
            "diagnose",
            "--json",
            "--no-fd",
            "--set",
            "syn_recv_warn=100",
            "--set",
            "syn_recv_crit=1000",
        ],
    );
    let diag = json(&out);
    assert_eq!(out.status.code(), Some(0), "exit 0 (ok): {diag}");
    assert_eq!(diag["overall"], "ok", "{diag}");
    assert_eq!(diag["states"]["SYN_RECEIVED"], 0, "{diag}");
    let v = verdict(&diag, "syn_recv_flood");
    eprintln!("flood, cookies always: {v}");
    assert_eq!(v["level"], "ok", "{v}");
    assert_eq!(v["value"], 0.0, "{v}");
    let evidence: Vec<&str> = v["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        evidence.contains(&"net.ipv4.tcp_syncookies = 2"),
        "{evidence:?}"
    );
    // The namespace's counters start at zero, so "since boot" is this flood.
    let sent = format!(
        "since boot: SYN cookies sent {}, validated 0, failed 0",
        cookies_before + FLOOD as u64
    );
    assert!(evidence.contains(&sent.as_str()), "{evidence:?}");
    assert!(raised(&diag).is_empty(), "{diag}");
}
