//! The shipped Prometheus rules and Grafana dashboard query only metrics the exporter emits:
//! a renamed metric would otherwise silently turn an alert into one that never fires.

use std::collections::BTreeSet;
use std::path::PathBuf;
use tcpfsm_host::RawCounters;
use tcpfsm_live::metrics::{render, Input, OwnerScan};
use tcpfsm_observe::{
    FdUsage, ListenerQueue, PortRange, ProcessBreakdown, ProcessCount, RemoteCount, Snapshot,
};

fn deploy(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every identifier starting with `node_` or `tcpfsm_` in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let is_id = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        if (i == 0 || !is_id(bytes[i - 1]))
            && (text[i..].starts_with("node_") || text[i..].starts_with("tcpfsm_"))
        {
            let end = (i..bytes.len())
                .find(|&j| !is_id(bytes[j]))
                .unwrap_or(bytes.len());
            let name = &text[i..end];
            // `node_*` in prose is not a metric.
            if !name.ends_with('_') {
                out.insert(name.to_string());
            }
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// A page with every family present.
fn full_page() -> String {
    let snap = Snapshot {
        close_wait_by_process: Some(ProcessBreakdown {
            processes: vec![ProcessCount {
                pid: 1,
                comm: "a".into(),
                count: 1,
            }],
            unattributed: 0,
            unattributed_reason: None,
        }),
        time_wait_by_remote: Some(vec![RemoteCount {
            remote: "10.0.0.2:80".parse().unwrap(),
            count: 1,
            ephemeral_local: 1,
        }]),
        listeners: Some(vec![ListenerQueue {
            local: "0.0.0.0:80".parse().unwrap(),
            queue_len: 0,
            backlog: 128,
            owner: None,
        }]),
        fd_usage: Some(vec![FdUsage {
            pid: 1,
            comm: "a".into(),
            open: 10,
            limit: Some(1024),
            tcp_sockets: 1,
        }]),
        sysctls: tcpfsm_observe::Sysctls {
            ephemeral_ports: Some(PortRange {
                low: 32768,
                high: 60999,
            }),
            max_tw_buckets: Some(262144),
            ..Default::default()
        },
        ..Snapshot::default()
    };
    let snmp =
        "Tcp: ActiveOpens PassiveOpens CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts\n\
                Tcp: 1 1 1 1 1 1 1 1\n";
    let netstat = "TcpExt: ListenOverflows ListenDrops SyncookiesSent SyncookiesRecv SyncookiesFailed TCPTimeouts TCPSynRetrans\n\
                   TcpExt: 0 0 0 0 0 0 0\n";
    let raw = RawCounters::parse(
        snmp,
        netstat,
        "TCP: inuse 1 orphan 0 tw 0 alloc 1 mem 1\n",
        "TCP6: inuse 0\n",
    );
    let verdicts = tcpfsm_observe::diagnose(std::slice::from_ref(&snap), &Default::default());
    render(&Input {
        snapshot: &snap,
        verdicts: &verdicts,
        tables: &raw,
        top_n: 10,
        scrape_seconds: 0.0,
        owner_scan: Some(OwnerScan {
            age_seconds: 1.0,
            duration_seconds: 0.1,
        }),
    })
}

fn emitted() -> BTreeSet<String> {
    full_page()
        .lines()
        .filter(|l| l.starts_with("# TYPE "))
        .map(|l| l.split_whitespace().nth(2).unwrap().to_string())
        .collect()
}

#[test]
fn alert_rules_query_only_emitted_metrics() {
    let rules: String = deploy("prometheus/alerts.yml")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let used = metric_names(&rules);
    assert!(used.len() >= 10, "{used:?}");
    let have = emitted();
    let missing: Vec<_> = used.difference(&have).collect();
    assert!(
        missing.is_empty(),
        "alerts.yml uses metrics the exporter lacks: {missing:?}"
    );
}

#[test]
fn grafana_dashboard_is_json_and_queries_only_emitted_metrics() {
    let text = deploy("grafana/tcpfsm.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("dashboard is valid JSON");
    let panels = v["panels"].as_array().expect("panels");
    assert!(panels.len() >= 6);
    let mut exprs = String::new();
    for p in panels {
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push_str(t["expr"].as_str().expect("expr"));
            exprs.push('\n');
        }
    }
    let used = metric_names(&exprs);
    let have = emitted();
    let missing: Vec<_> = used.difference(&have).collect();
    assert!(
        missing.is_empty(),
        "dashboard uses metrics the exporter lacks: {missing:?}"
    );
    // The panels the issue asks for.
    for want in [
        "node_tcp_connection_states",
        "tcpfsm_close_wait_sockets",
        "tcpfsm_ephemeral_port_range_size",
        "node_netstat_Tcp_RetransSegs",
    ] {
        assert!(used.contains(want), "no panel uses {want}");
    }
    assert!(panels.iter().any(|p| p["type"] == "alertlist"));
}
