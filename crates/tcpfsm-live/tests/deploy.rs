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

/// Every PromQL name (`[a-zA-Z_:][a-zA-Z0-9_:]*`) in a text that is one of ours: a metric
/// starting with `node_` or `tcpfsm_`, or a recording rule (`level:metric:ops`, a colon).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let is_id = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if is_id(bytes[i]) && (i == 0 || !is_id(bytes[i - 1])) && !bytes[i].is_ascii_digit() {
            let end = (i..bytes.len())
                .find(|&j| !is_id(bytes[j]))
                .unwrap_or(bytes.len());
            let name = &text[i..end];
            let ours =
                name.starts_with("node_") || name.starts_with("tcpfsm_") || name.contains(':');
            // `node_*` in prose is not a metric; `$__rate_interval]` and `5m:` are not names.
            if ours && !name.ends_with('_') && !name.ends_with(':') && name.len() > 3 {
                out.insert(name.to_string());
            }
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// The recording rules rules.yml defines, and the text of their expressions.
fn recording_rules() -> (BTreeSet<String>, String) {
    let text = deploy("prometheus/rules.yml");
    let mut names = BTreeSet::new();
    let mut exprs = String::new();
    let mut in_expr = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') {
            continue;
        }
        if let Some(n) = t.strip_prefix("- record:") {
            names.insert(n.trim().to_string());
            in_expr = false;
        } else if let Some(e) = t.strip_prefix("expr:") {
            exprs.push_str(e);
            exprs.push('\n');
            in_expr = true;
        } else if in_expr && !t.is_empty() {
            exprs.push_str(t);
            exprs.push('\n');
        }
    }
    (names, exprs)
}

/// What a name used in a query refers to is there: an emitted family or a defined rule.
fn check_defined(what: &str, used: &BTreeSet<String>) {
    let have = emitted();
    let (rules, _) = recording_rules();
    let missing: Vec<_> = used
        .iter()
        .filter(|n| {
            if n.contains(':') {
                !rules.contains(*n)
            } else {
                !have.contains(*n)
            }
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{what} uses names neither exported nor recorded: {missing:?}"
    );
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
            no_owner: 0,
            no_owner_reason: None,
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
fn recording_and_alert_rules_query_only_emitted_metrics_and_defined_rules() {
    let (names, exprs) = recording_rules();
    assert!(names.len() >= 5, "{names:?}");
    check_defined("rules.yml", &metric_names(&exprs));
    let alerts: String = deploy("prometheus/alerts.yml")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let used = metric_names(&alerts);
    assert!(used.len() >= 10, "{used:?}");
    check_defined("alerts.yml", &used);
    // No ratio is computed in an alert expression: they use the recorded ones.
    let mut in_expr = false;
    for line in alerts.lines() {
        let t = line.trim();
        if t.starts_with("expr:") {
            in_expr = true;
        } else if t.ends_with(':') || t.starts_with("for:") || t.starts_with("- ") {
            in_expr = false;
        }
        assert!(
            !(in_expr && t.contains(" / ")),
            "a ratio computed in alerts.yml instead of rules.yml: {t}"
        );
    }
}

#[test]
fn grafana_dashboard_is_json_and_queries_only_emitted_metrics_and_defined_rules() {
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
    check_defined("the dashboard", &used);
    // The panels the issue asks for.
    for want in [
        "node_tcp_connection_states",
        "tcpfsm_close_wait_sockets",
        "remote:tcpfsm_time_wait_ephemeral_ports:ratio",
        "instance:tcpfsm_retransmit_ratio:rate5m",
    ] {
        assert!(used.contains(want), "no panel uses {want}");
    }
    assert!(panels.iter().any(|p| p["type"] == "alertlist"));
}

/// A panel's unit and its queries.
fn panel_queries(p: &serde_json::Value) -> (String, Vec<String>) {
    let unit = p["fieldConfig"]["defaults"]["unit"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let exprs = p["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    (unit, exprs)
}

#[test]
fn no_panel_mixes_counts_rates_bytes_or_ratios_on_one_axis_and_only_counts_of_sockets_stack() {
    let v: serde_json::Value = serde_json::from_str(&deploy("grafana/tcpfsm.json")).unwrap();
    for p in v["panels"].as_array().unwrap() {
        if p["type"] != "timeseries" {
            continue;
        }
        let title = p["title"].as_str().unwrap();
        let (unit, exprs) = panel_queries(p);
        // One unit for the whole panel: no per-series unit or axis overrides.
        assert_eq!(
            p["fieldConfig"]["overrides"].as_array().map(Vec::len),
            Some(0),
            "{title}: overrides"
        );
        for e in &exprs {
            let is_rate = e.contains("rate(");
            let is_ratio = e.contains(":ratio") || e.contains("_ratio:");
            let is_bytes = e.contains("=~\".*_queued_bytes\"") || e.contains("_bytes{");
            let kind = match (is_rate, is_ratio, is_bytes) {
                (_, true, _) => "percentunit",
                (true, false, _) => "ops",
                (false, false, true) => "bytes",
                _ => {
                    if e.contains("_seconds") {
                        "s"
                    } else {
                        "short"
                    }
                }
            };
            assert_eq!(unit, kind, "{title}: {e} on a {unit} axis");
        }
        let stacked = p["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal";
        if stacked {
            assert_eq!(unit, "short", "{title}: only socket counts stack");
            for e in &exprs {
                assert!(
                    e.contains("state!~\".*_queued_bytes\""),
                    "{title}: stacks {e}, which includes the queued-bytes pseudo-states"
                );
            }
        }
    }
}

/// "No owner" has one spelling, `tcpfsm_observe::NO_OWNER`: the exporter's label value for
/// CLOSE_WAIT sockets and listeners without a process, the alert that must not page anyone
/// about them, and the dashboard's explanation all use it, so no matcher silently misses.
#[test]
fn exporter_alerts_and_dashboard_spell_no_owner_from_the_one_definition() {
    use tcpfsm_observe::NO_OWNER;
    let snap = Snapshot {
        close_wait_by_process: Some(ProcessBreakdown {
            processes: vec![],
            no_owner: 3,
            no_owner_reason: Some(tcpfsm_observe::NoOwner::Gone.label().into()),
        }),
        listeners: Some(vec![ListenerQueue {
            local: "0.0.0.0:80".parse().unwrap(),
            queue_len: 0,
            backlog: 128,
            owner: None,
        }]),
        ..Snapshot::default()
    };
    let raw = RawCounters::parse("", "", "", "");
    let page = render(&Input {
        snapshot: &snap,
        verdicts: &[],
        tables: &raw,
        top_n: 10,
        scrape_seconds: 0.0,
        owner_scan: None,
    });
    let want_cw = format!("tcpfsm_close_wait_sockets{{process=\"{NO_OWNER}\",pid=\"\"}} 3\n");
    assert!(page.contains(&want_cw), "{page}");
    let want_l = format!("tcpfsm_listen_backlog{{local=\"0.0.0.0:80\",process=\"{NO_OWNER}\"}}");
    assert!(page.contains(&want_l), "{page}");

    // The per-process alert excludes exactly the two placeholders the exporter emits.
    let alerts = deploy("prometheus/alerts.yml");
    let expr = alerts
        .lines()
        .find(|l| l.contains("tcpfsm_close_wait_sockets{process!~"))
        .expect("the per-process CLOSE_WAIT alert");
    let matcher = expr.split("process!~\"").nth(1).unwrap();
    let alts: BTreeSet<&str> = matcher[..matcher.find('"').unwrap()].split('|').collect();
    assert_eq!(alts, BTreeSet::from(["other", NO_OWNER]), "{expr}");

    for (file, text) in [
        ("alerts.yml", alerts.as_str()),
        ("rules.yml", &deploy("prometheus/rules.yml")),
        ("tcpfsm.json", &deploy("grafana/tcpfsm.json")),
        ("README.md", &deploy("README.md")),
    ] {
        assert!(
            !text.contains("unattributed"),
            "{file} spells no owner another way"
        );
    }
    assert!(deploy("grafana/tcpfsm.json").contains(&format!("`{NO_OWNER}`")));
}
