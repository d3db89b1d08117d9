//! `tcpfsm diagnose` never contradicts itself, on real kernel sockets in a private network
//! namespace (needs root): orphans counted one by one beside the kernel's counter, the
//! TIME_WAIT table explained, advice that names the program to fix, and threshold errors said
//! once, in plain words.

#[path = "cli/mod.rs"]
mod cli;
#[path = "../../tcpfsm-host/tests/support/mod.rs"]
mod support;

use cli::{tcpfsm_here, verdict};
use serde_json::Value;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;
use support::*;

#[test]
#[ignore = "helper process for the netns tests, started by them"]
fn holder_process() {
    holder_main();
}

fn diagnose(ns: &Netns, extra: &[&str]) -> (Option<i32>, Value, String) {
    let mut args = vec!["diagnose", "--no-fd"];
    args.extend_from_slice(extra);
    let out = run_bounded(
        ns.command(env!("CARGO_BIN_EXE_tcpfsm"), &args),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = if extra.contains(&"--json") {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
    } else {
        Value::Null
    };
    (out.status.code(), v, text)
}

fn evidence(v: &Value) -> Vec<String> {
    v["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect()
}

/// A field of this namespace's /proc/net/sockstat `TCP:` line.
fn sockstat(ns: &Netns, field: &str) -> u64 {
    let text = ns.run(|| std::fs::read_to_string("/proc/thread-self/net/sockstat").unwrap());
    let line = text.lines().find(|l| l.starts_with("TCP:")).unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    let i = f.iter().position(|x| *x == field).unwrap();
    f[i + 1].parse().unwrap()
}

const ORPHANS: usize = 5;
const HALF_CLOSED: usize = 2;
const TW: usize = 3;

/// `ORPHANS` orphaned FIN_WAIT_2 (we close, the server keeps its end open and never closes),
/// `HALF_CLOSED` FIN_WAIT_2 that this process keeps after shutdown(SHUT_WR), `TW` TIME_WAIT.
struct Scene {
    _servers: Vec<TcpStream>,
    _half: Vec<TcpStream>,
    _listeners: (TcpListener, TcpListener),
    orphan_peer: std::net::SocketAddr,
}

fn fin_wait2_scene() -> Scene {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let l2 = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut servers = Vec::new();
    for _ in 0..ORPHANS {
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        drop(c); // orphaned after close(): FIN_WAIT_1, then FIN_WAIT_2 when the FIN is ACKed
        servers.push(s);
    }
    let mut half = Vec::new();
    for _ in 0..HALF_CLOSED {
        let c = TcpStream::connect(l2.local_addr().unwrap()).unwrap();
        let (s, _) = l2.accept().unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        half.push(c);
        servers.push(s);
    }
    for _ in 0..TW {
        let c = TcpStream::connect(l2.local_addr().unwrap()).unwrap();
        let (mut s, _) = l2.accept().unwrap();
        drop(c);
        let _ = std::io::Read::read(&mut s, &mut [0u8; 1]);
    }
    Scene {
        _servers: servers,
        _half: half,
        orphan_peer: l.local_addr().unwrap(),
        _listeners: (l, l2),
    }
}

#[test]
fn diagnose_counts_orphaned_fin_wait2_and_explains_the_kernels_tw_counter() {
    let Some(ns) =
        Netns::new("diagnose_counts_orphaned_fin_wait2_and_explains_the_kernels_tw_counter")
    else {
        return;
    };
    let scene = ns.run(fin_wait2_scene);
    let fw2 = (ORPHANS + HALF_CLOSED) as u64;
    assert!(
        wait_until(Duration::from_secs(10), || ns.ss_count("fin-wait-2") == fw2),
        "FIN_WAIT_2 never reached {fw2}"
    );
    // What the kernel's own counters say: TIME_WAIT plus the orphans as this namespace's tw;
    // `orphan` is host-wide (other namespaces' orphans are in it) and leaves these out.
    assert_eq!(sockstat(&ns, "tw"), (TW + ORPHANS) as u64);

    let (code, v, _) = diagnose(&ns, &["--json", "--set", "fin_wait2_warn=3"]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["states"]["FIN_WAIT_2"], fw2);
    assert_eq!(v["states"]["TIME_WAIT"], TW as u64);
    let f = verdict(&v, "fin_wait2_pile_up");
    assert_eq!(
        f["summary"],
        format!("{fw2} FIN_WAIT_2: {ORPHANS} orphaned, {HALF_CLOSED} held by a program")
    );
    let ev = evidence(f);
    assert!(
        ev.iter()
            .any(|e| e.starts_with(&format!("{ORPHANS} orphaned: closed by their program"))),
        "{ev:?}"
    );
    assert!(
        ev.iter()
            .any(|e| e.starts_with(&format!("{HALF_CLOSED} half-closed by a program"))),
        "{ev:?}"
    );
    assert!(
        ev.iter().any(|e| e.starts_with("the kernel's orphan count (sockstat orphan) is ")
            && e.ends_with(&format!(
                ": it counts full orphaned sockets of the whole host, every network namespace, and leaves out the {ORPHANS} orphaned FIN_WAIT_2 it already turned into timewait minisockets (sockstat counts those under tw)"
            ))),
        "{ev:?}"
    );
    assert!(
        ev.contains(&format!(
            "{ORPHANS} orphaned sockets in all (FIN_WAIT_2 {ORPHANS})"
        )),
        "{ev:?}"
    );
    assert!(
        !ev.iter().any(|e| e == "0 orphaned sockets"),
        "the contradiction is gone: {ev:?}"
    );
    // The advice names the peer that does not close and the program holding half-closed ones.
    let advice = f["advice"].as_str().unwrap();
    assert!(
        advice.starts_with(&format!(
            "The peer at {} has not closed {ORPHANS} of them",
            scene.orphan_peer
        )),
        "{advice}"
    );
    assert!(
        advice.contains(&format!(
            "(pid {}) holds {HALF_CLOSED} half-closed",
            std::process::id()
        )),
        "{advice}"
    );

    let t = verdict(&v, "time_wait_pressure");
    let max = ns.run(|| {
        std::fs::read_to_string("/proc/sys/net/ipv4/tcp_max_tw_buckets")
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    });
    let kernel_tw = (TW + ORPHANS) as u64;
    let ev = evidence(t);
    assert_eq!(ev[0], format!("{TW} sockets in TIME_WAIT"));
    assert!(
        ev.iter().any(|e| e.starts_with(&format!("{kernel_tw} of tcp_max_tw_buckets {max} in use"))
            && e.ends_with(&format!(": {TW} TIME_WAIT + {ORPHANS} orphaned FIN_WAIT_2 (Linux keeps both in this table; sockstat's tw counts both)"))),
        "{ev:?}"
    );
    drop(scene);
}

#[test]
fn diagnose_advice_names_the_program_to_fix() {
    let Some(ns) = Netns::new("diagnose_advice_names_the_program_to_fix") else {
        return;
    };
    let holder = spawn_holder(&ns, "holder_process");
    let port = holder.port;
    let _scene = ns.run(move || build_scene(0, 4, 0, port, 5));
    wait_half_closed_settled(&ns, 4);
    let (_, v, text) = diagnose(
        &ns,
        &[
            "--json",
            "--set",
            "close_wait_warn=2",
            "--set",
            "listen_queue_warn_ratio=0.5",
        ],
    );
    let cw = verdict(&v, "close_wait_leak");
    assert_eq!(cw["level"], "warning");
    let advice = cw["advice"].as_str().unwrap();
    assert!(
        advice.starts_with(&format!(
            "Fix {} (pid {}), which holds 4 of them.",
            holder.comm(),
            holder.pid()
        )),
        "{advice}"
    );
    // The backlog-1 listener nobody accepts from: full, and owned by this test process.
    let lo = verdict(&v, "listen_overflow");
    assert_ne!(lo["level"], "ok", "{lo}");
    let advice = lo["advice"].as_str().unwrap();
    assert!(
        advice.contains(&format!(
            "(pid {}) accepts too slowly on 127.0.0.1:",
            std::process::id()
        )),
        "{advice}"
    );
    assert!(text.is_empty() || text.starts_with('{'));
    // The text output carries the same advice.
    let (_, _, text) = diagnose(&ns, &["--set", "close_wait_warn=2"]);
    assert!(
        text.contains(&format!(
            "    advice: Fix {} (pid {}), which holds 4 of them.",
            holder.comm(),
            holder.pid()
        )),
        "{text}"
    );
}

#[test]
fn threshold_errors_are_printed_once_naming_the_key_and_the_expected_type() {
    let run = |args: &[&str]| {
        let out = tcpfsm_here(args);
        assert_eq!(out.status.code(), Some(3), "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    assert_eq!(
        run(&["diagnose", "--set", "close_wait_warn=lots"]),
        "tcpfsm diagnose: error: --set close_wait_warn=lots: close_wait_warn must be a whole number (a count of sockets), not the text \"lots\"\n"
    );
    assert_eq!(
        run(&["diagnose", "--set", "retrans_warn_ratio=1%"]),
        "tcpfsm diagnose: error: --set retrans_warn_ratio=1%: retrans_warn_ratio must be a number (a share: 0.5 means 50%), not the text \"1%\"\n"
    );
    assert_eq!(
        run(&["diagnose", "--set", "close_wait_warn"]),
        "tcpfsm diagnose: error: --set close_wait_warn: expected KEY=VALUE, e.g. --set close_wait_warn=200\n"
    );
    let unknown = run(&["diagnose", "--set", "close_wiat_warn=5"]);
    assert!(
        unknown.starts_with("tcpfsm diagnose: error: --set close_wiat_warn=5: unknown threshold \"close_wiat_warn\" (did you mean close_wait_warn?) (known: close_wait_crit, "),
        "{unknown}"
    );
    assert_eq!(unknown.lines().count(), 1, "{unknown}");
    assert_eq!(
        run(&["diagnose", "--set", "close_wait_warn=5000"]),
        "tcpfsm diagnose: error: --set close_wait_warn=5000: close_wait_warn (5000) must not be above close_wait_crit (1000)\n"
    );
    let dir = std::env::temp_dir().join(format!("tcpfsm-th-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("th.toml");
    let c = cfg.to_str().unwrap();
    std::fs::write(
        &cfg,
        "# mine\nclose_wait_warn = 10\nfd_warn_ratio = \"high\"\n",
    )
    .unwrap();
    assert_eq!(
        run(&["diagnose", "--config", c]),
        format!("tcpfsm diagnose: error: {c} line 3: fd_warn_ratio must be a number (a share: 0.5 means 50%), not the text \"high\"\n")
    );
    std::fs::write(&cfg, "close_wait_warn = 1.5\n").unwrap();
    assert_eq!(
        run(&["diagnose", "--config", c]),
        format!("tcpfsm diagnose: error: {c} line 1: close_wait_warn must be a whole number (a count of sockets), not 1.5\n")
    );
    std::fs::write(&cfg, "close_wait_warn = [\n").unwrap();
    let syntax = run(&["diagnose", "--config", c]);
    assert!(
        syntax.starts_with(&format!(
            "tcpfsm diagnose: error: {c} line 1: not valid TOML: "
        )),
        "{syntax}"
    );
    assert_eq!(
        syntax.lines().count(),
        1,
        "one line, not the parser's multi-line report: {syntax}"
    );
    let missing = dir.join("absent.toml");
    let m = missing.to_str().unwrap();
    assert_eq!(
        run(&["diagnose", "--config", m]),
        format!("tcpfsm diagnose: error: cannot read threshold file {m}: No such file or directory (os error 2)\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
