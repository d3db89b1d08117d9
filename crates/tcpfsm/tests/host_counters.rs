//! `tcpfsm counters` beside `nstat`, in a fresh network namespace (needs root): the same
//! names and values, absolute and as increments since the last run, with history files of
//! their own; then the interval mode against traffic made while it runs.

#[path = "cli/mod.rs"]
mod cli;
#[path = "../../tcpfsm-host/tests/support/mod.rs"]
mod support;

use cli::tcpfsm_here;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use support::*;

struct Histories {
    dir: PathBuf,
}

impl Histories {
    fn new(test: &str) -> Histories {
        let dir = std::env::temp_dir().join(format!("tcpfsm-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Histories { dir }
    }
    fn ours(&self) -> String {
        self.dir.join("tcpfsm.json").display().to_string()
    }
    fn nstat(&self) -> String {
        self.dir.join("nstat").display().to_string()
    }
}

impl Drop for Histories {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tcpfsm(ns: &Netns, h: &Histories, args: &[&str]) -> String {
    let mut c = ns.command(env!("CARGO_BIN_EXE_tcpfsm"), args);
    c.env("TCPFSM_COUNTERS_HISTORY", h.ours());
    let out = run_bounded(c, Duration::from_secs(30));
    assert!(out.status.success(), "tcpfsm {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn nstat(ns: &Netns, h: &Histories, args: &[&str]) -> String {
    let mut c = ns.command("nstat", args);
    c.env("NSTAT_HISTORY", h.nstat());
    let out = run_bounded(c, Duration::from_secs(30));
    assert!(out.status.success(), "nstat {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// name → value of nstat-format text (`#kernel` header skipped).
fn table(text: &str) -> BTreeMap<String, i64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].parse().unwrap())
        })
        .collect()
}

fn tcp_only(m: BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    m.into_iter()
        .filter(|(k, _)| k.starts_with("Tcp"))
        .collect()
}

/// Some TCP life in the namespace: `n` connections with a little data, closed by the client.
fn traffic(ns: &Netns, n: usize) {
    ns.run(move || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        for _ in 0..n {
            let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (mut s, _) = l.accept().unwrap();
            std::io::Write::write_all(&mut c, b"ping").unwrap();
            let mut b = [0u8; 4];
            std::io::Read::read_exact(&mut s, &mut b).unwrap();
            drop(c);
            let _ = std::io::Read::read(&mut s, &mut b);
        }
        // A refused connect: AttemptFails, OutRsts.
        let _ = TcpStream::connect("127.0.0.1:1");
    });
}

fn which(prog: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn counters_show_nstat_names_and_values_absolute_and_since_the_last_run() {
    if !which("nstat") {
        skipped(
            "needs nstat (apt-get install iproute2)",
            "counters against nstat",
        );
        return;
    }
    let Some(ns) =
        Netns::new("counters_show_nstat_names_and_values_absolute_and_since_the_last_run")
    else {
        return;
    };
    let h = Histories::new("counters-nstat");
    traffic(&ns, 7);
    std::thread::sleep(Duration::from_millis(300)); // let delayed ACKs go out

    // Absolute: every non-zero TCP counter nstat shows, with its value. We also show what
    // nstat leaves out as "useless": the parameters and the CurrEstab gauge.
    let theirs = tcp_only(table(&nstat(&ns, &h, &["-a", "-s"])));
    let ours = table(&tcpfsm(&ns, &h, &["counters", "-a", "-s"]));
    assert!(theirs.len() > 5, "{theirs:?}");
    for (k, v) in &theirs {
        assert_eq!(ours.get(k), Some(v), "{k}: ours {ours:?}");
    }
    let extra: Vec<&String> = ours.keys().filter(|k| !theirs.contains_key(*k)).collect();
    assert_eq!(
        extra,
        ["TcpMaxConn", "TcpRtoAlgorithm", "TcpRtoMax", "TcpRtoMin"],
        "the parameters, which nstat hides"
    );
    assert_eq!(ours["TcpMaxConn"], -1);
    assert_eq!(ours["TcpActiveOpens"], 8, "7 connections and one refused");
    // -z: the same names, zeros included.
    let theirs_z = tcp_only(table(&nstat(&ns, &h, &["-az", "-s"])));
    let ours_z = table(&tcpfsm(&ns, &h, &["counters", "-az", "-s"]));
    for k in theirs_z.keys() {
        assert!(ours_z.contains_key(k), "{k} missing with -z");
    }
    assert_eq!(
        ours_z.len(),
        theirs_z.len() + 5,
        "+ 4 parameters and CurrEstab"
    );

    // Since the last run: both start a history now, then see the same traffic.
    let first_theirs = tcp_only(table(&nstat(&ns, &h, &[])));
    let first_ours = table(&tcpfsm(&ns, &h, &["counters"]));
    assert_eq!(first_ours, first_theirs, "first run: since boot");
    assert_eq!(tcp_only(table(&nstat(&ns, &h, &[]))), BTreeMap::new());
    assert_eq!(
        table(&tcpfsm(&ns, &h, &["counters"])),
        BTreeMap::new(),
        "nothing happened"
    );
    traffic(&ns, 3);
    std::thread::sleep(Duration::from_millis(300));
    // --no-update twice shows the same increments; nstat -s does the same.
    let peek1 = table(&tcpfsm(&ns, &h, &["counters", "--no-update"]));
    let peek2 = table(&tcpfsm(&ns, &h, &["counters", "--no-update"]));
    assert_eq!(peek1, peek2);
    let theirs = tcp_only(table(&nstat(&ns, &h, &[])));
    let ours = table(&tcpfsm(&ns, &h, &["counters"]));
    assert_eq!(ours, theirs, "increments since the last run");
    assert_eq!(ours["TcpActiveOpens"], 4);
    assert_eq!(peek1, ours);
    // Patterns as nstat takes them.
    traffic(&ns, 2);
    let theirs = table(&nstat(&ns, &h, &["TcpExtTCP*", "TcpActiveOpens"]));
    let ours = table(&tcpfsm(
        &ns,
        &h,
        &["counters", "TcpExtTCP*", "TcpActiveOpens"],
    ));
    assert_eq!(ours, theirs);
    assert_eq!(ours["TcpActiveOpens"], 3);
    assert!(ours
        .keys()
        .all(|k| k == "TcpActiveOpens" || k.starts_with("TcpExtTCP")));
    // JSON in nstat's shape.
    traffic(&ns, 1);
    let theirs: Value = serde_json::from_str(&nstat(&ns, &h, &["--json"])).unwrap();
    let ours: Value = serde_json::from_str(&tcpfsm(&ns, &h, &["counters", "--json"])).unwrap();
    let tcp = |v: &Value| -> BTreeMap<String, i64> {
        v["kernel"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with("Tcp"))
            .map(|(k, v)| (k.clone(), v.as_i64().unwrap()))
            .collect()
    };
    assert_eq!(tcp(&ours), tcp(&theirs));
    assert_eq!(tcp(&ours)["TcpActiveOpens"], 2);
    // --reset: since boot again.
    let reset = table(&tcpfsm(&ns, &h, &["counters", "--reset"]));
    assert_eq!(reset["TcpActiveOpens"], 8 + 4 + 3 + 2);
}

#[test]
fn counters_all_protocols_match_nstat_line_for_line() {
    if !which("nstat") {
        skipped(
            "needs nstat (apt-get install iproute2)",
            "counters against nstat",
        );
        return;
    }
    let Some(ns) = Netns::new("counters_all_protocols_match_nstat_line_for_line") else {
        return;
    };
    let h = Histories::new("counters-all");
    traffic(&ns, 2);
    // Everything nstat reads but SCTP, in its order, absolute and with zeros.
    let theirs: Vec<(String, i64)> = nstat(&ns, &h, &["-az", "-s"])
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("Sctp"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].parse().unwrap())
        })
        .collect();
    let ours: Vec<(String, i64)> = tcpfsm(&ns, &h, &["counters", "--all-protocols", "-az", "-s"])
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].parse().unwrap())
        })
        .filter(|(k, _)| {
            // What nstat leaves out as "useless numbers".
            ![
                "IpForwarding",
                "IpDefaultTTL",
                "TcpRtoAlgorithm",
                "TcpRtoMin",
                "TcpRtoMax",
                "TcpMaxConn",
                "TcpCurrEstab",
            ]
            .contains(&k.as_str())
        })
        .collect();
    assert!(theirs.len() > 300, "{}", theirs.len());
    assert_eq!(ours, theirs);
}

#[test]
fn counters_interval_reports_what_happened_in_each_interval() {
    let Some(ns) = Netns::new("counters_interval_reports_what_happened_in_each_interval") else {
        return;
    };
    let h = Histories::new("counters-interval");
    traffic(&ns, 5); // before the run: never reported
    let mut c = ns.command(
        env!("CARGO_BIN_EXE_tcpfsm"),
        &[
            "counters",
            "--interval",
            "1s",
            "--count",
            "3",
            "--json",
            "Tcp*Opens",
        ],
    );
    c.env("TCPFSM_COUNTERS_HISTORY", h.ours());
    let mut child = c.stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    // Right after the first report: 4 connections, well inside the second interval.
    traffic(&ns, 4);
    let second: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let third: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(first["kernel"], serde_json::json!({}), "{first}");
    assert_eq!(
        second["kernel"]["TcpActiveOpens"], 5,
        "4 and a refused one: {second}"
    );
    assert_eq!(second["kernel"]["TcpPassiveOpens"], 4, "{second}");
    assert_eq!(third["kernel"], serde_json::json!({}), "{third}");
    let secs = second["interval_secs"].as_f64().unwrap();
    assert!((0.9..1.5).contains(&secs), "{second}");
    assert!(second["time"].as_str().unwrap().ends_with('Z'), "{second}");
    // The interval mode leaves the history alone.
    assert!(!std::path::Path::new(&h.ours()).exists());
}

#[test]
fn counters_patterns_and_flags_are_checked() {
    let bad = tcpfsm_here(&["counters", "Tcp[Ext"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bad counter pattern \"Tcp[Ext\""));
    let bad = tcpfsm_here(&["counters", "--interval", "1s", "-a"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot be used with"));
}
