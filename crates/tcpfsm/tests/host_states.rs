//! `tcpfsm states` and `tcpfsm diagnose` (the built binary) against real kernel sockets in a
//! private network namespace (needs root).

#[path = "cli/mod.rs"]
mod cli;
#[path = "../../tcpfsm-host/tests/support/mod.rs"]
mod support;

use cli::{json, tcpfsm};
use serde_json::Value;
use std::time::Duration;
use support::*;

const N: usize = 6;
const M: usize = 5;
const K: usize = 4;
const OVF: usize = 5;

#[test]
#[ignore = "helper process for the netns tests, started by them"]
fn holder_process() {
    holder_main();
}

#[test]
fn states_json_gives_exact_counts_and_agrees_with_ss() {
    let Some(ns) = Netns::new("states_json_gives_exact_counts_and_agrees_with_ss") else {
        return;
    };
    let holder = spawn_holder(&ns, "holder_process");
    let port = holder.port;
    let _scene = ns.run(move || build_scene(N, M, K, port, OVF));
    let e = expected(N as u64, M as u64, K as u64, OVF as u64, true);
    let want = [
        ("LISTEN", e.listen, "listening"),
        ("ESTABLISHED", e.established, "established"),
        ("CLOSE_WAIT", e.close_wait, "close-wait"),
        ("FIN_WAIT_2", e.fin_wait2, "fin-wait-2"),
        ("TIME_WAIT", e.time_wait, "time-wait"),
        ("SYN_SENT", e.syn_sent, "syn-sent"),
    ];
    let mut last = Value::Null;
    let settled = wait_until(Duration::from_secs(10), || {
        let out = tcpfsm(&ns, &["states", "--json"]);
        assert!(out.status.success(), "{out:?}");
        last = json(&out);
        want.iter().all(|(k, n, _)| last["states"][k] == *n)
    });
    assert!(settled, "counts never matched: {last}");
    let states = last["states"].as_object().unwrap();
    assert_eq!(states.len(), 11, "all eleven states, zeros included");
    for name in ALL_NAMES {
        let expect = want.iter().find(|w| w.0 == name).map_or(0, |w| w.1);
        assert_eq!(states[name], expect, "{name}");
    }
    assert_eq!(last["total"], want.iter().map(|w| w.1).sum::<u64>());
    for (name, _, ss) in want {
        assert_eq!(states[name], ns.ss_count(ss), "{name} vs ss state {ss}");
    }
    // The states come in lifecycle order (State::ALL), as the simulator lists them.
    let raw = String::from_utf8(tcpfsm(&ns, &["states", "--json"]).stdout).unwrap();
    let pos: Vec<usize> = ALL_NAMES
        .iter()
        .map(|n| raw.find(&format!("\"{n}\"")).unwrap())
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{raw}");
    // --exact dumps TIME_WAIT one by one instead of reading the kernel's counter: same counts.
    let exact = json(&tcpfsm(&ns, &["states", "--exact", "--json"]));
    assert_eq!(exact, last);
}

#[test]
fn states_filters_list_sockets_with_owning_process() {
    let Some(ns) = Netns::new("states_filters_list_sockets_with_owning_process") else {
        return;
    };
    let holder = spawn_holder(&ns, "holder_process");
    let port = holder.port;
    let _scene = ns.run(move || build_scene(2, M, 2, port, 0));
    wait_half_closed_settled(&ns, M as u64);

    // --state close-wait: exactly the holder's sockets, each attributed to it.
    let out = tcpfsm(&ns, &["states", "--state", "close-wait", "--json"]);
    let v = json(&out);
    let socks = v["sockets"].as_array().unwrap();
    assert_eq!(socks.len(), M);
    for s in socks {
        assert_eq!(s["state"], "CLOSE_WAIT");
        assert_eq!(s["local"], format!("127.0.0.1:{port}"));
        let procs = s["processes"].as_array().unwrap();
        assert!(
            procs
                .iter()
                .any(|p| p["pid"] == holder.pid() && p["comm"] == holder.comm()),
            "{s}"
        );
    }

    // Comma lists and ss spellings; TIME_WAIT is reported as ownerless, not silently dropped.
    let v = json(&tcpfsm(
        &ns,
        &["states", "-s", "time-wait,close-wait", "--json"],
    ));
    assert_eq!(v["total"], (M + 2) as u64);
    let tw: Vec<&Value> = v["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "TIME_WAIT")
        .collect();
    assert_eq!(tw.len(), 2);
    assert!(tw.iter().all(|s| s["no_owner"] == "kernel"));

    // --port: the holder's listener, its CLOSE_WAITs and our FIN_WAIT_2s.
    let v = json(&tcpfsm(
        &ns,
        &["states", "--port", &port.to_string(), "--json"],
    ));
    assert_eq!(v["states"]["LISTEN"], 1);
    assert_eq!(v["states"]["CLOSE_WAIT"], M as u64);
    assert_eq!(v["states"]["FIN_WAIT_2"], M as u64);
    assert_eq!(v["total"], (2 * M + 1) as u64);

    // --process by name and by pid: the holder's listener and CLOSE_WAIT sockets only.
    assert_eq!(holder.comm(), HOLDER_COMM);
    for sel in [holder.comm(), holder.pid().to_string()] {
        let v = json(&tcpfsm(&ns, &["states", "--process", &sel, "--json"]));
        assert_eq!(v["states"]["LISTEN"], 1, "{sel}: {v}");
        assert_eq!(v["states"]["CLOSE_WAIT"], M as u64, "{sel}: {v}");
        assert_eq!(v["total"], (M + 1) as u64, "{sel}: {v}");
    }

    // --count: only the counts, for a state filter (fast path) and for a process.
    let v = json(&tcpfsm(
        &ns,
        &["states", "-s", "close-wait", "--count", "--json"],
    ));
    assert!(v.get("sockets").is_none(), "{v}");
    assert_eq!(v["states"]["CLOSE_WAIT"], M as u64);
    assert_eq!(v["total"], M as u64);
    let v = json(&tcpfsm(
        &ns,
        &["states", "--process", HOLDER_COMM, "--count", "--json"],
    ));
    assert!(v.get("sockets").is_none(), "{v}");
    assert_eq!(v["total"], (M + 1) as u64);

    // Text listing looks like ss -tanp: state, queues, addresses, users:(("comm",pid=N,fd=N)).
    let out = tcpfsm(&ns, &["states", "--state", "close-wait"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let users = format!("users:((\"{}\",pid={},fd=", holder.comm(), holder.pid());
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("CLOSE_WAIT") && l.contains(&users))
            .count(),
        M,
        "{text}"
    );
    let owner = format!("{}[{}]", holder.comm(), holder.pid());

    // --by process groups the holder's sockets together.
    let v = json(&tcpfsm(&ns, &["states", "--by", "process", "--json"]));
    let g = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == owner)
        .unwrap_or_else(|| panic!("no group {owner}: {v}"));
    assert_eq!(g["states"]["CLOSE_WAIT"], M as u64);
    assert_eq!(g["states"]["LISTEN"], 1);
    // --by local-port: the holder's port carries its listener and CLOSE_WAITs.
    let port_key = port.to_string();
    let v = json(&tcpfsm(&ns, &["states", "--by", "local-port", "--json"]));
    let g = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"].as_str() == Some(port_key.as_str()))
        .unwrap();
    assert_eq!(g["total"], (M + 1) as u64);
}

#[test]
fn states_rejects_unknown_state_names() {
    // No namespace needed: argument parsing fails before any socket is read.
    let out = run_bounded(
        {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_tcpfsm"));
            c.args(["states", "--state", "close-wiat"]);
            c
        },
        Duration::from_secs(10),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown TCP state"), "{err}");
}

#[test]
fn diagnose_names_the_leaking_process_and_exits_by_level() {
    let Some(ns) = Netns::new("diagnose_names_the_leaking_process_and_exits_by_level") else {
        return;
    };
    let holder = spawn_holder(&ns, "holder_process");
    let port = holder.port;
    let _scene = ns.run(move || build_scene(1, M, 0, port, 0));
    wait_half_closed_settled(&ns, M as u64);
    // With defaults (warn at 100) the few CLOSE_WAIT are OK: exit 0.
    let out = tcpfsm(&ns, &["diagnose", "--json"]);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["overall"], "ok");
    assert_eq!(v["verdicts"].as_array().unwrap().len(), 7);

    // Lower the threshold: a warning naming the holder, exit 1.
    let out = tcpfsm(&ns, &["diagnose", "--close-wait-warn", "3", "--json"]);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(1), "{v}");
    let cw = &v["verdicts"][0];
    assert_eq!(cw["rule"], "close_wait_leak");
    assert_eq!(cw["level"], "warning");
    let owner = format!("{}[{}]", holder.comm(), holder.pid());
    assert!(cw["summary"].as_str().unwrap().contains(&owner), "{cw}");
    assert!(cw["evidence"].as_array().unwrap().iter().any(|e| e
        .as_str()
        .unwrap()
        .contains(&format!("holds {M} CLOSE_WAIT"))));

    // Critical via a threshold file, exit 2; the text output names the process too.
    let dir = std::env::temp_dir().join(format!("tcpfsm-diag-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("th.toml");
    std::fs::write(&cfg, "close_wait_warn = 2\nclose_wait_crit = 4\n").unwrap();
    let out = tcpfsm(&ns, &["diagnose", "--config", cfg.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("[CRITICAL] CLOSE_WAIT leak"), "{text}");
    assert!(text.contains(&owner), "{text}");
    assert!(text.contains("advice:"), "{text}");

    // A broken threshold file is an error (3), not a verdict.
    std::fs::write(&cfg, "close_wait_warn = \"many\"\n").unwrap();
    let out = tcpfsm(&ns, &["diagnose", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn diagnose_sees_close_wait_growth_across_samples() {
    let Some(ns) = Netns::new("diagnose_sees_close_wait_growth_across_samples") else {
        return;
    };
    let holder = spawn_holder(&ns, "holder_process");
    let port = holder.port;
    // diagnose takes 3 samples 1 s apart and reports each on stderr ("sample k/3"); after
    // samples 1 and 2 we leak one more connection, so CLOSE_WAIT reads 0, 1, 2.
    let mut child = ns
        .command(
            env!("CARGO_BIN_EXE_tcpfsm"),
            &["diagnose", "--samples", "3", "--interval", "1s", "--no-fd"],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = std::thread::spawn({
        let done = done.clone();
        move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if std::time::Instant::now() > deadline {
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    });
    let mut stdout = child.stdout.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut v);
        v
    });
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let mut kept = Vec::new();
    let mut byte = [0u8; 1];
    while std::io::Read::read(&mut stderr, &mut byte).unwrap_or(0) == 1 {
        seen.push(byte[0] as char);
        let leaked = kept.len();
        if leaked < 2 && seen.contains(&format!("sample {}/3", leaked + 1)) {
            kept.push(ns.run(move || build_scene(0, 1, 0, port, 0)));
        }
    }
    let status = child.wait().unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    watchdog.join().unwrap();
    let text = out_reader.join().unwrap();
    assert_eq!(kept.len(), 2, "stderr: {seen:?}");
    let line = text
        .lines()
        .find(|l| l.contains("CLOSE_WAIT leak"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.starts_with("[WARNING ]"), "{text}");
    assert!(
        line.contains("2 CLOSE_WAIT and rising at every sample"),
        "{text}"
    );
    assert!(
        line.contains(&format!("{}[{}]", holder.comm(), holder.pid())),
        "{text}"
    );
    assert!(
        text.contains("CLOSE_WAIT over 3 samples: 0 → 1 → 2"),
        "{text}"
    );
    assert_eq!(status.code(), Some(1), "{text}");
}

#[test]
fn states_says_when_owners_are_hidden_from_an_unprivileged_user() {
    let Some(ns) = Netns::new("states_says_when_owners_are_hidden_from_an_unprivileged_user")
    else {
        return;
    };
    if std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_err()
    {
        skipped(
            "needs setpriv from util-linux",
            "states_says_when_owners_are_hidden_from_an_unprivileged_user",
        );
        return;
    }
    let runs_as_nobody = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_tcpfsm"))
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !runs_as_nobody {
        skipped(
            "user nobody cannot execute the built binary from this directory",
            "states_says_when_owners_are_hidden_from_an_unprivileged_user",
        );
        return;
    }
    let holder = spawn_holder(&ns, "holder_process");
    let port = holder.port;
    let _scene = ns.run(move || build_scene(0, M, 0, port, 0));
    wait_half_closed_settled(&ns, M as u64);
    // The same query as user nobody: the counts are the same (sock_diag needs no privilege) but
    // root's processes cannot be inspected, and each socket says so.
    let out = run_bounded(
        ns.command(
            "setpriv",
            &[
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                env!("CARGO_BIN_EXE_tcpfsm"),
                "states",
                "--state",
                "close-wait",
                "--json",
            ],
        ),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{out:?}");
    let v = json(&out);
    let socks = v["sockets"].as_array().unwrap();
    assert_eq!(socks.len(), M);
    for s in socks {
        assert_eq!(s["processes"], serde_json::json!([]), "{s}");
        assert_eq!(s["no_owner"], "hidden", "{s}");
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unreadable (not root)"), "{err}");
}
