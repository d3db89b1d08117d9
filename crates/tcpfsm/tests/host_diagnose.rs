//! `tcpfsm diagnose` against live namespaces: TIME_WAIT against a narrowed ephemeral range, and
//! a process near its open-file limit (needs root).

#[path = "cli/mod.rs"]
mod cli;
#[path = "../../tcpfsm-host/tests/support/mod.rs"]
mod support;

use cli::verdict;
use serde_json::Value;
use std::time::Duration;
use support::*;

#[test]
#[ignore = "helper process for the netns tests, started by them"]
fn holder_process() {
    holder_main();
}

fn diagnose(ns: &Netns, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["diagnose", "--json"];
    args.extend_from_slice(extra);
    let out = run_bounded(
        ns.command(env!("CARGO_BIN_EXE_tcpfsm"), &args),
        Duration::from_secs(30),
    );
    let v =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"));
    (out.status.code(), v)
}

#[test]
fn diagnose_time_wait_pressure_against_the_ephemeral_range_by_remote() {
    let Some(ns) = Netns::new("diagnose_time_wait_pressure_against_the_ephemeral_range_by_remote")
    else {
        return;
    };
    // 100 ephemeral ports; 60 connections to one listener closed by us: 60 TIME_WAIT sockets
    // holding 60% of the ports towards that remote.
    let listener = ns.run(|| {
        std::fs::write("/proc/sys/net/ipv4/ip_local_port_range", "40000 40099").unwrap();
        std::fs::write("/proc/sys/net/ipv4/tcp_tw_reuse", "0").unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        for _ in 0..60 {
            let c = std::net::TcpStream::connect(addr).unwrap();
            let (mut s, _) = l.accept().unwrap();
            drop(c);
            let mut b = [0u8; 1];
            let _ = std::io::Read::read(&mut s, &mut b);
        }
        l
    });
    let remote = listener.local_addr().unwrap().to_string();
    let (code, v) = diagnose(&ns, &["--no-fd"]);
    let tw = verdict(&v, "time_wait_pressure");
    assert_eq!(tw["level"], "warning", "{tw}");
    assert_eq!(code, Some(1));
    assert!((tw["value"].as_f64().unwrap() - 0.6).abs() < 1e-9, "{tw}");
    let ev: Vec<&str> = tw["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        ev.iter().any(|e| e.contains(&format!(
            "towards {remote}: 60 TIME_WAIT (60 on ephemeral local ports)"
        ))),
        "{ev:#?}"
    );
    assert!(ev.iter().any(|e| e.contains("40000-40099")), "{ev:#?}");
    // Critical from 80%: lower the critical threshold below 60%.
    let (code, v) = diagnose(
        &ns,
        &[
            "--no-fd",
            "--time-wait-warn",
            "0.3",
            "--time-wait-crit",
            "0.55",
        ],
    );
    assert_eq!(verdict(&v, "time_wait_pressure")["level"], "critical");
    assert_eq!(code, Some(2));
    drop(listener);
}

#[test]
fn diagnose_names_a_process_near_its_open_file_limit() {
    let Some(ns) = Netns::new("diagnose_names_a_process_near_its_open_file_limit") else {
        return;
    };
    const M: usize = 6;
    // The holder's limit is what it has open (after binding) plus 7; after accepting M = 6
    // connections it has one descriptor left: above 80% for any base count below 35.
    let holder = spawn_holder_with(
        &ns,
        "holder_process",
        &[("TCPFSM_TEST_HOLDER_SPARE_FDS", "7")],
    );
    let port = holder.port;
    let _scene = ns.run(move || build_scene(0, M, 0, port, 0));
    wait_half_closed_settled(&ns, M as u64);
    let (code, v) = diagnose(&ns, &[]);
    let fd = verdict(&v, "fd_exhaustion");
    assert!(
        fd["level"] == "warning" || fd["level"] == "critical",
        "{fd}"
    );
    assert!(code == Some(1) || code == Some(2));
    let who = format!("{} (pid {})", holder.comm(), holder.pid());
    assert!(fd["summary"].as_str().unwrap().contains(&who), "{fd}");
    // The ratio is the holder's own: open descriptors over its soft limit, as /proc shows them.
    let open = std::fs::read_dir(format!("/proc/{}/fd", holder.pid()))
        .unwrap()
        .count() as f64;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", holder.pid())).unwrap();
    let soft: f64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap()
        .parse()
        .unwrap();
    let ratio = fd["value"].as_f64().unwrap();
    assert!(
        (ratio - open / soft).abs() < 1e-9,
        "{fd} open={open} soft={soft}"
    );
    assert!(
        fd["evidence"][0].as_str().unwrap().starts_with(&who),
        "{fd}"
    );
}
