//! The `/metrics` page: a drop-in superset of the node exporter's TCP collectors (`tcpstat`,
//! `netstat`, `sockstat`) plus our own `tcpfsm_*` namespace, rendered from one host
//! [`Snapshot`], its diagnosis, and the kernel's counter tables.
//!
//! The `node_netstat_*` and `node_sockstat_*` families are passed through from
//! `/proc/net/{snmp,netstat,sockstat,sockstat6}` ([`RawCounters`], every field by the kernel's
//! own name) under the names the node exporter derives from those names, so every TCP field of
//! its default set appears here with the same name and value.

use crate::expo::{Exposition, Kind};
use tcpfsm_host::RawCounters;
use tcpfsm_observe::{Snapshot, Verdict};
use tcpfsm_states::mib::Group;
use tcpfsm_states::State;

/// The node exporter's spelling of each state in `node_tcp_connection_states{state=…}`
/// (`tcpstat` collector): Linux's `tcp_states.h` names, lower-cased.
pub const fn node_state_label(s: State) -> &'static str {
    match s {
        State::Established => "established",
        State::SynSent => "syn_sent",
        State::SynReceived => "syn_recv",
        State::FinWait1 => "fin_wait1",
        State::FinWait2 => "fin_wait2",
        State::TimeWait => "time_wait",
        State::Closed => "close",
        State::CloseWait => "close_wait",
        State::LastAck => "last_ack",
        State::Listen => "listen",
        State::Closing => "closing",
    }
}

/// The TCP part of the node exporter's default `--collector.netstat.fields` pattern:
/// `Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)`,
/// `.*_(InErrors|InErrs)` and `TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts|
/// TCPOFOQueue|TCPRcvQDrop)`.
pub fn node_netstat_default(proto: &str, field: &str) -> bool {
    match proto {
        "Tcp" => matches!(
            field,
            "ActiveOpens"
                | "InSegs"
                | "OutSegs"
                | "OutRsts"
                | "PassiveOpens"
                | "RetransSegs"
                | "CurrEstab"
                | "InErrs"
                | "InErrors"
        ),
        "TcpExt" => {
            field.starts_with("Listen")
                || field.starts_with("Syncookies")
                || matches!(
                    field,
                    "TCPSynRetrans" | "TCPTimeouts" | "TCPOFOQueue" | "TCPRcvQDrop"
                )
                || field.ends_with("InErrors")
                || field.ends_with("InErrs")
        }
        _ => false,
    }
}

/// Everything one scrape renders.
pub struct Input<'a> {
    pub snapshot: &'a Snapshot,
    pub verdicts: &'a [Verdict],
    pub tables: &'a RawCounters,
    /// Labelled series per family are capped at this many (largest first); the rest are
    /// summed into one `other` series so totals still add up.
    pub top_n: usize,
    /// Time the scrape took so far, seconds.
    pub scrape_seconds: f64,
    /// The owner walk the per-process series come from, when they come from a background
    /// walk ([`crate::owners`]).
    pub owner_scan: Option<OwnerScan>,
}

/// How old and how long the owner walk behind the per-process series was.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OwnerScan {
    pub age_seconds: f64,
    pub duration_seconds: f64,
}

/// Renders the full page.
pub fn render(inp: &Input<'_>) -> String {
    let mut e = Exposition::new();
    let snap = inp.snapshot;

    // --- node exporter: tcpstat ---
    {
        let mut f = e.family(
            "node_tcp_connection_states",
            "Number of connection states.",
            Kind::Gauge,
        );
        for (s, n) in snap.census.iter() {
            f.sample(&[("state", node_state_label(s))], n as f64);
        }
        // Newer node exporters put the queue totals in the same family as pseudo-states,
        // summed the way they sum /proc/net/tcp{,6} (listeners count their accept queue as
        // receive queue and nothing as send queue).
        if let Some(q) = snap.queued_bytes {
            f.sample(&[("state", "rx_queued_bytes")], q.rx as f64);
            f.sample(&[("state", "tx_queued_bytes")], q.tx as f64);
        }
    }

    // --- node exporter: netstat (TCP fields of its default set), names from the kernel ---
    for group in [Group::Tcp, Group::TcpExt] {
        let proto = group.name();
        for (field, v) in inp.tables.fields(group) {
            if node_netstat_default(proto, field) {
                e.family(
                    &format!("node_netstat_{proto}_{field}"),
                    &format!("Statistic {proto}{field}."),
                    Kind::Untyped,
                )
                .value(v as f64);
            }
        }
    }

    // --- node exporter: sockstat (TCP and TCP6 rows) ---
    let page = page_size() as f64;
    for (proto, map) in [
        ("TCP", &inp.tables.sockstat),
        ("TCP6", &inp.tables.sockstat6),
    ] {
        for (field, v) in map {
            e.family(
                &format!("node_sockstat_{proto}_{field}"),
                &format!("Number of {proto} sockets in state {field}."),
                Kind::Gauge,
            )
            .value(*v as f64);
            if field == "mem" {
                e.family(
                    &format!("node_sockstat_{proto}_mem_bytes"),
                    &format!("Number of {proto} sockets in state mem_bytes."),
                    Kind::Gauge,
                )
                .value(*v as f64 * page);
            }
        }
    }

    // --- tcpfsm: listeners ---
    if let Some(listeners) = &snap.listeners {
        let mut ls: Vec<_> = listeners.iter().collect();
        ls.sort_by(|a, b| b.fill().total_cmp(&a.fill()).then(a.local.cmp(&b.local)));
        ls.truncate(inp.top_n);
        let label = |l: &tcpfsm_observe::ListenerQueue| {
            (
                l.local.to_string(),
                l.owner
                    .as_ref()
                    .map(|o| o.comm.clone())
                    .unwrap_or_else(|| tcpfsm_observe::NO_OWNER.into()),
            )
        };
        let labels: Vec<(String, String)> = ls.iter().map(|l| label(l)).collect();
        let mut f = e.family(
            "tcpfsm_listen_queue_length",
            "Connections completed and waiting in a listener's accept queue.",
            Kind::Gauge,
        );
        for (l, (local, proc_)) in ls.iter().zip(&labels) {
            f.sample(&[("local", local), ("process", proc_)], l.queue_len as f64);
        }
        let mut f = e.family(
            "tcpfsm_listen_backlog",
            "A listener's accept queue limit (listen() backlog, capped by net.core.somaxconn).",
            Kind::Gauge,
        );
        for (l, (local, proc_)) in ls.iter().zip(&labels) {
            f.sample(&[("local", local), ("process", proc_)], l.backlog as f64);
        }
    }

    // --- tcpfsm: CLOSE_WAIT per process ---
    if let Some(b) = &snap.close_wait_by_process {
        let mut ps: Vec<_> = b.processes.iter().collect();
        ps.sort_by(|a, b| b.count.cmp(&a.count).then(a.pid.cmp(&b.pid)));
        let rest: u64 = ps.iter().skip(inp.top_n).map(|p| p.count).sum();
        let mut f = e.family(
            "tcpfsm_close_wait_sockets",
            "CLOSE_WAIT sockets by owning process: the peer closed, this process never did.",
            Kind::Gauge,
        );
        for p in ps.iter().take(inp.top_n) {
            f.sample(
                &[("process", &p.comm), ("pid", &p.pid.to_string())],
                p.count as f64,
            );
        }
        if rest > 0 {
            f.sample(&[("process", "other"), ("pid", "")], rest as f64);
        }
        if b.no_owner > 0 {
            f.sample(
                &[("process", tcpfsm_observe::NO_OWNER), ("pid", "")],
                b.no_owner as f64,
            );
        }
    }

    // --- tcpfsm: TIME_WAIT per remote ---
    if let Some(rs) = &snap.time_wait_by_remote {
        let mut rs: Vec<_> = rs.iter().collect();
        rs.sort_by(|a, b| b.count.cmp(&a.count).then(a.remote.cmp(&b.remote)));
        let rest: u64 = rs.iter().skip(inp.top_n).map(|r| r.count).sum();
        let rest_eph: u64 = rs.iter().skip(inp.top_n).map(|r| r.ephemeral_local).sum();
        let names: Vec<String> = rs
            .iter()
            .take(inp.top_n)
            .map(|r| r.remote.to_string())
            .collect();
        let mut f = e.family(
            "tcpfsm_time_wait_sockets",
            "TIME_WAIT sockets by remote address and port.",
            Kind::Gauge,
        );
        for (r, n) in rs.iter().zip(&names) {
            f.sample(&[("remote", n)], r.count as f64);
        }
        if rest > 0 {
            f.sample(&[("remote", "other")], rest as f64);
        }
        let mut f = e.family(
            "tcpfsm_time_wait_ephemeral_sockets",
            "TIME_WAIT sockets whose local port is in the ephemeral range, by remote: \
             each holds one of the ports this host can use towards that remote.",
            Kind::Gauge,
        );
        for (r, n) in rs.iter().zip(&names) {
            f.sample(&[("remote", n)], r.ephemeral_local as f64);
        }
        if rest_eph > 0 {
            f.sample(&[("remote", "other")], rest_eph as f64);
        }
    }

    // --- tcpfsm: sysctls the alert rules divide by ---
    if let Some(r) = snap.sysctls.ephemeral_ports {
        e.family(
            "tcpfsm_ephemeral_port_range_size",
            "Ports in net.ipv4.ip_local_port_range.",
            Kind::Gauge,
        )
        .value(r.size() as f64);
    }
    if let Some(m) = snap.sysctls.max_tw_buckets {
        e.family(
            "tcpfsm_max_tw_buckets",
            "net.ipv4.tcp_max_tw_buckets: TIME_WAIT sockets beyond this are destroyed early.",
            Kind::Gauge,
        )
        .value(m as f64);
    }

    // --- tcpfsm: open files per process (sockets are files) ---
    if let Some(fds) = &snap.fd_usage {
        let mut fs: Vec<_> = fds.iter().filter(|f| f.limit.is_some()).collect();
        fs.sort_by(|a, b| {
            b.ratio()
                .unwrap_or(0.0)
                .total_cmp(&a.ratio().unwrap_or(0.0))
                .then(a.pid.cmp(&b.pid))
        });
        fs.truncate(inp.top_n);
        let ids: Vec<String> = fs.iter().map(|f| f.pid.to_string()).collect();
        let mut f = e.family(
            "tcpfsm_process_open_fds",
            "Open file descriptors of processes owning TCP sockets.",
            Kind::Gauge,
        );
        for (u, pid) in fs.iter().zip(&ids) {
            f.sample(&[("process", &u.comm), ("pid", pid)], u.open as f64);
        }
        let mut f = e.family(
            "tcpfsm_process_max_fds",
            "RLIMIT_NOFILE soft limit of processes owning TCP sockets.",
            Kind::Gauge,
        );
        for (u, pid) in fs.iter().zip(&ids) {
            f.sample(
                &[("process", &u.comm), ("pid", pid)],
                u.limit.unwrap_or(0) as f64,
            );
        }
    }

    // --- tcpfsm: diagnosis ---
    // Ratios and rates are not exported: a ratio "since the previous scrape" depends on who
    // scraped last (two Prometheus servers would each see a different window). The counters
    // they come from are exported raw (node_netstat_*), and deploy/prometheus/rules.yml
    // computes the ratios as recording rules.
    {
        let mut f = e.family(
            "tcpfsm_diagnosis_status",
            "Verdict per diagnosis rule: 0 ok, 1 warning, 2 critical.",
            Kind::Gauge,
        );
        for v in inp.verdicts {
            f.sample(&[("rule", v.rule.name())], v.level.exit_code() as f64);
        }
    }
    {
        let mut f = e.family(
            "tcpfsm_diagnosis_value",
            "The number each diagnosis rule judged (a count or a ratio).",
            Kind::Gauge,
        );
        for v in inp.verdicts {
            if let Some(x) = v.value {
                f.sample(&[("rule", v.rule.name())], x);
            }
        }
    }
    if let Some(o) = inp.owner_scan {
        e.family(
            "tcpfsm_owner_scan_age_seconds",
            "Age of the /proc walk the per-process series come from (owners are found in the \
             background, not in each scrape).",
            Kind::Gauge,
        )
        .value(o.age_seconds);
        e.family(
            "tcpfsm_owner_scan_duration_seconds",
            "Time that /proc walk took.",
            Kind::Gauge,
        )
        .value(o.duration_seconds);
    }
    e.family(
        "tcpfsm_build_info",
        "A constant 1, labelled with the version of tcpfsm that serves this page.",
        Kind::Gauge,
    )
    .sample(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    e.family(
        "tcpfsm_scrape_duration_seconds",
        "Time this scrape took to read the kernel.",
        Kind::Gauge,
    )
    .value(inp.scrape_seconds);
    e.finish()
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

#[cfg(test)]
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;
    use tcpfsm_observe::{Level, ListenerQueue, ProcessBreakdown, ProcessCount, RemoteCount, Rule};

    const SNMP: &str = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\n\
Tcp: 1 200 120000 -1 12 7 0 1 3 500 480 5 0 2 0\n";
    const NETSTAT: &str = "TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed ListenOverflows ListenDrops TCPTimeouts TCPSynRetrans TW\n\
TcpExt: 0 0 0 4 4 9 1 33\n";
    const SOCKSTAT: &str =
        "sockets: used 120\nTCP: inuse 5 orphan 0 tw 2 alloc 7 mem 3\nUDP: inuse 1 mem 0\n";

    fn tables() -> RawCounters {
        RawCounters::parse(SNMP, NETSTAT, SOCKSTAT, "TCP6: inuse 2\nUDP6: inuse 0\n")
    }

    fn render_snap(snap: &Snapshot, verdicts: &[Verdict], top_n: usize) -> String {
        render(&Input {
            snapshot: snap,
            verdicts,
            tables: &tables(),
            top_n,
            scrape_seconds: 0.002,
            owner_scan: None,
        })
    }

    #[test]
    fn all_eleven_states_are_exported_with_node_exporter_labels_zeros_included() {
        let mut snap = Snapshot::default();
        snap.census.set(State::CloseWait, 3);
        snap.queued_bytes = Some(tcpfsm_observe::QueuedBytes { rx: 5, tx: 7 });
        let page = render_snap(&snap, &[], 10);
        let lines: Vec<&str> = page
            .lines()
            .filter(|l| l.starts_with("node_tcp_connection_states{"))
            .collect();
        assert_eq!(lines.len(), 13, "11 states + 2 queue totals");
        assert!(page.contains("node_tcp_connection_states{state=\"close_wait\"} 3\n"));
        assert!(page.contains("node_tcp_connection_states{state=\"syn_recv\"} 0\n"));
        assert!(page.contains("node_tcp_connection_states{state=\"fin_wait1\"} 0\n"));
        assert!(page.contains("node_tcp_connection_states{state=\"close\"} 0\n"));
        assert!(page.contains("node_tcp_connection_states{state=\"rx_queued_bytes\"} 5\n"));
        assert!(page.contains("node_tcp_connection_states{state=\"tx_queued_bytes\"} 7\n"));
    }

    #[test]
    fn netstat_fields_follow_the_node_exporter_default_set() {
        let page = render_snap(&Snapshot::default(), &[], 10);
        for want in [
            "node_netstat_Tcp_ActiveOpens 12\n",
            "node_netstat_Tcp_PassiveOpens 7\n",
            "node_netstat_Tcp_CurrEstab 3\n",
            "node_netstat_Tcp_RetransSegs 5\n",
            "node_netstat_Tcp_InErrs 0\n",
            "node_netstat_TcpExt_ListenOverflows 4\n",
            "node_netstat_TcpExt_SyncookiesFailed 0\n",
            "node_netstat_TcpExt_TCPTimeouts 9\n",
            "node_netstat_TcpExt_TCPSynRetrans 1\n",
            "# TYPE node_netstat_Tcp_OutSegs untyped\n",
        ] {
            assert!(page.contains(want), "missing {want:?} in\n{page}");
        }
        assert!(!page.contains("node_netstat_Tcp_RtoMin"));
        assert!(!page.contains("node_netstat_TcpExt_TW "));
        assert!(!page.contains("node_netstat_Ip_"));
    }

    #[test]
    fn sockstat_tcp_rows_and_mem_bytes_are_exported() {
        let page = render_snap(&Snapshot::default(), &[], 10);
        assert!(page.contains("node_sockstat_TCP_inuse 5\n"));
        assert!(page.contains("node_sockstat_TCP_tw 2\n"));
        assert!(page.contains("node_sockstat_TCP_alloc 7\n"));
        assert!(page.contains("node_sockstat_TCP_orphan 0\n"));
        assert!(page.contains(&format!(
            "node_sockstat_TCP_mem_bytes {}\n",
            3 * page_size()
        )));
        assert!(page.contains("node_sockstat_TCP6_inuse 2\n"));
        assert!(!page.contains("node_sockstat_UDP"));
    }

    #[test]
    fn per_process_and_per_remote_series_are_capped_with_an_other_bucket() {
        let mut snap = Snapshot::default();
        snap.close_wait_by_process = Some(ProcessBreakdown {
            processes: (1..=5)
                .map(|i| ProcessCount {
                    pid: 100 + i,
                    comm: format!("p{i}"),
                    count: i as u64,
                })
                .collect(),
            no_owner: 4,
            no_owner_reason: None,
        });
        snap.time_wait_by_remote = Some(
            (1..=4)
                .map(|i| RemoteCount {
                    remote: format!("10.0.0.{i}:80").parse().unwrap(),
                    count: i * 10,
                    ephemeral_local: i,
                })
                .collect(),
        );
        let page = render_snap(&snap, &[], 2);
        assert!(page.contains("tcpfsm_close_wait_sockets{process=\"p5\",pid=\"105\"} 5\n"));
        assert!(page.contains("tcpfsm_close_wait_sockets{process=\"p4\",pid=\"104\"} 4\n"));
        assert!(!page.contains("process=\"p3\""));
        assert!(page.contains("tcpfsm_close_wait_sockets{process=\"other\",pid=\"\"} 6\n"));
        assert!(page.contains("tcpfsm_close_wait_sockets{process=\"no owner\",pid=\"\"} 4\n"));
        assert!(page.contains("tcpfsm_time_wait_sockets{remote=\"10.0.0.4:80\"} 40\n"));
        assert!(page.contains("tcpfsm_time_wait_sockets{remote=\"other\"} 30\n"));
        assert!(page.contains("tcpfsm_time_wait_ephemeral_sockets{remote=\"other\"} 3\n"));
    }

    #[test]
    fn listener_queue_and_diagnosis_status_are_exported() {
        let mut snap = Snapshot::default();
        snap.listeners = Some(vec![ListenerQueue {
            local: "0.0.0.0:8080".parse().unwrap(),
            queue_len: 3,
            backlog: 4,
            owner: None,
        }]);
        let verdicts = vec![Verdict {
            rule: Rule::CloseWaitLeak,
            level: Level::Critical,
            summary: String::new(),
            evidence: vec![],
            advice: String::new(),
            value: Some(1500.0),
        }];
        let page = render_snap(&snap, &verdicts, 10);
        assert!(page.contains(
            "tcpfsm_listen_queue_length{local=\"0.0.0.0:8080\",process=\"no owner\"} 3\n"
        ));
        assert!(
            page.contains("tcpfsm_listen_backlog{local=\"0.0.0.0:8080\",process=\"no owner\"} 4\n")
        );
        assert!(page.contains("tcpfsm_diagnosis_status{rule=\"close_wait_leak\"} 2\n"));
        assert!(page.contains("tcpfsm_diagnosis_value{rule=\"close_wait_leak\"} 1500\n"));
        assert!(
            !page.contains("tcpfsm_retransmit_ratio"),
            "rates are Prometheus's job"
        );
        assert!(page.contains(&format!(
            "tcpfsm_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
        assert!(page.contains("tcpfsm_scrape_duration_seconds 0.002\n"));
    }
}
