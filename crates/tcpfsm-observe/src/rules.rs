//! The diagnosis rules: one verdict per rule over a series of snapshots.

use crate::advice;
use crate::snapshot::{rates, retrans_ratio, Snapshot};
use crate::thresholds::Thresholds;
use serde::{Deserialize, Serialize};
use std::fmt;
use tcpfsm_states::{Counter, State};

/// A diagnosis rule. Each looks at one way TCP state goes wrong on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Sockets in CLOSE_WAIT: the peer closed, the local application never did.
    CloseWaitLeak,
    /// TIME_WAIT against the ephemeral port range and tcp_max_tw_buckets.
    TimeWaitPressure,
    /// Half-open SYN_RECEIVED connections piling up.
    SynRecvFlood,
    /// Accept queues full; handshakes dropped.
    ListenOverflow,
    /// FIN_WAIT_2 sockets whose peer never sends its FIN.
    FinWait2PileUp,
    /// Share of segments retransmitted.
    RetransmitRate,
    /// Processes near their open-file limit.
    FdExhaustion,
}

impl Rule {
    pub const ALL: [Rule; 7] = [
        Rule::CloseWaitLeak,
        Rule::TimeWaitPressure,
        Rule::SynRecvFlood,
        Rule::ListenOverflow,
        Rule::FinWait2PileUp,
        Rule::RetransmitRate,
        Rule::FdExhaustion,
    ];

    /// Machine name (metric label, JSON): `close_wait_leak`, …
    pub const fn name(self) -> &'static str {
        match self {
            Rule::CloseWaitLeak => "close_wait_leak",
            Rule::TimeWaitPressure => "time_wait_pressure",
            Rule::SynRecvFlood => "syn_recv_flood",
            Rule::ListenOverflow => "listen_overflow",
            Rule::FinWait2PileUp => "fin_wait2_pile_up",
            Rule::RetransmitRate => "retransmit_rate",
            Rule::FdExhaustion => "fd_exhaustion",
        }
    }

    /// Human title: "CLOSE_WAIT leak", …
    pub const fn title(self) -> &'static str {
        match self {
            Rule::CloseWaitLeak => "CLOSE_WAIT leak",
            Rule::TimeWaitPressure => "TIME_WAIT pressure",
            Rule::SynRecvFlood => "SYN_RECV flood",
            Rule::ListenOverflow => "listen queue overflow",
            Rule::FinWait2PileUp => "FIN_WAIT_2 pile-up",
            Rule::RetransmitRate => "retransmit rate",
            Rule::FdExhaustion => "file descriptor exhaustion",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}

/// Severity, ordered: `Ok < Warning < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warning,
    Critical,
}

impl Level {
    pub const fn name(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }

    /// Process exit status for scripts: 0 OK, 1 warning, 2 critical.
    pub const fn exit_code(self) -> u8 {
        self as u8
    }

    fn of(value: f64, warn: f64, crit: f64) -> Level {
        if value >= crit {
            Level::Critical
        } else if value >= warn {
            Level::Warning
        } else {
            Level::Ok
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The outcome of one rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub rule: Rule,
    pub level: Level,
    /// One line: what was measured against what.
    pub summary: String,
    /// The facts behind the level: counts, top offenders, rates.
    pub evidence: Vec<String>,
    /// What to do about it (empty advice is never given: even OK verdicts say what to watch).
    pub advice: String,
    /// The number the level was decided on (a count or a ratio), if there was one; for gauges.
    pub value: Option<f64>,
}

/// The most severe level among verdicts (Ok for none).
pub fn worst(verdicts: &[Verdict]) -> Level {
    verdicts.iter().map(|v| v.level).max().unwrap_or(Level::Ok)
}

/// Judges samples (oldest first) against thresholds: one verdict per rule, in [`Rule::ALL`]
/// order. The latest sample gives the counts; the whole series gives growth and rates. With no
/// samples every rule is Ok with "no samples" as summary.
pub fn diagnose(samples: &[Snapshot], th: &Thresholds) -> Vec<Verdict> {
    Rule::ALL
        .iter()
        .map(|&rule| match samples.last() {
            None => Verdict {
                rule,
                level: Level::Ok,
                summary: "no samples".into(),
                evidence: vec![],
                advice: advice::generic(rule, Level::Ok).into(),
                value: None,
            },
            Some(last) => {
                let mut v = match rule {
                    Rule::CloseWaitLeak => close_wait(samples, last, th),
                    Rule::TimeWaitPressure => time_wait(samples, last, th),
                    Rule::SynRecvFlood => syn_recv(samples, last, th),
                    Rule::ListenOverflow => listen_overflow(samples, last, th),
                    Rule::FinWait2PileUp => fin_wait2(samples, last, th),
                    Rule::RetransmitRate => retransmit(samples, last, th),
                    Rule::FdExhaustion => fd(last, th),
                };
                v.advice = advice::advice(rule, v.level, last);
                v
            }
        })
        .collect()
}

fn verdict(
    rule: Rule,
    level: Level,
    summary: String,
    evidence: Vec<String>,
    value: Option<f64>,
) -> Verdict {
    Verdict {
        rule,
        level,
        summary,
        evidence,
        advice: String::new(),
        value,
    }
}

fn series(samples: &[Snapshot], s: State) -> Vec<u64> {
    samples.iter().map(|x| x.census.get(s)).collect()
}

/// True when the last `n` values rise at every step.
fn sustained_growth(values: &[u64], n: usize) -> bool {
    n >= 2 && values.len() >= n && values[values.len() - n..].windows(2).all(|w| w[1] > w[0])
}

fn interval_rates(samples: &[Snapshot]) -> Option<crate::Rates> {
    if samples.len() < 2 {
        return None;
    }
    rates(&samples[0], &samples[samples.len() - 1])
}

fn close_wait(samples: &[Snapshot], last: &Snapshot, th: &Thresholds) -> Verdict {
    let n = last.census.get(State::CloseWait);
    let mut level = Level::of(
        n as f64,
        th.close_wait_warn as f64,
        th.close_wait_crit as f64,
    );
    let mut ev = vec![format!(
        "{n} sockets in CLOSE_WAIT (warning at {}, critical at {})",
        th.close_wait_warn, th.close_wait_crit
    )];
    let values = series(samples, State::CloseWait);
    let growing = sustained_growth(&values, th.close_wait_growth_samples);
    if samples.len() > 1 {
        let shown: Vec<String> = values.iter().map(u64::to_string).collect();
        ev.push(format!(
            "CLOSE_WAIT over {} samples: {}{}",
            values.len(),
            shown.join(" → "),
            if growing {
                " (rising at every sample)"
            } else {
                ""
            }
        ));
    }
    if growing {
        level = level.max(Level::Warning);
    }
    let mut suspects = String::new();
    if let Some(b) = &last.close_wait_by_process {
        for p in b.processes.iter().take(5) {
            ev.push(format!(
                "{} (pid {}) holds {} CLOSE_WAIT",
                p.comm, p.pid, p.count
            ));
        }
        if b.processes.len() > 5 {
            ev.push(format!("… and {} more processes", b.processes.len() - 5));
        }
        if b.no_owner > 0 {
            ev.push(format!(
                "{} CLOSE_WAIT sockets with {}",
                b.no_owner,
                // The reasons are NoOwner labels, which begin with NO_OWNER themselves.
                b.no_owner_reason.as_deref().unwrap_or(crate::NO_OWNER)
            ));
        }
        let top: Vec<String> = b
            .processes
            .iter()
            .take(3)
            .map(|p| format!("{}[{}] {}", p.comm, p.pid, p.count))
            .collect();
        if !top.is_empty() {
            suspects = format!("; held by {}", top.join(", "));
        }
    }
    let summary = if growing && n < th.close_wait_warn {
        format!("{n} CLOSE_WAIT and rising at every sample{suspects}")
    } else {
        format!("{n} CLOSE_WAIT{suspects}")
    };
    verdict(Rule::CloseWaitLeak, level, summary, ev, Some(n as f64))
}

fn time_wait(samples: &[Snapshot], last: &Snapshot, th: &Thresholds) -> Verdict {
    let census_tw = last.census.get(State::TimeWait);
    let kernel_tw = last.sockstat.map(|c| c.tw).unwrap_or(0).max(census_tw);
    let mut ev = vec![format!("{census_tw} sockets in TIME_WAIT")];
    let mut level = Level::Ok;
    let mut worst_ratio: Option<f64> = None;
    let mut summary_parts = Vec::new();
    let (warn, crit) = (th.time_wait_warn_ratio, th.time_wait_crit_ratio);

    if let Some(range) = last.sysctls.ephemeral_ports.filter(|r| r.size() > 0) {
        let size = range.size() as f64;
        // Ports run out per destination: a connect() to remote R may reuse a local port that is
        // busy towards another remote. So the pressure is the largest per-remote count of
        // TIME_WAIT sockets holding an ephemeral local port; without that breakdown, the total is
        // an upper bound.
        let (used, what) = match &last.time_wait_by_remote {
            Some(groups) => {
                // The first of the largest (sources list the groups largest first).
                let top = groups
                    .iter()
                    .fold(None::<&crate::RemoteCount>, |best, g| match best {
                        Some(b) if b.ephemeral_local >= g.ephemeral_local => Some(b),
                        _ => Some(g),
                    });
                match top {
                    Some(g) => (g.ephemeral_local, format!("towards {}", g.remote)),
                    None => (0, "towards any one remote".to_string()),
                }
            }
            None => (census_tw, "in total (no per-remote breakdown)".to_string()),
        };
        let ratio = used as f64 / size;
        ev.push(format!(
            "{used} TIME_WAIT sockets on ephemeral ports {what}: {:.1}% of the {}-{} range ({} ports)",
            ratio * 100.0,
            range.low,
            range.high,
            range.size()
        ));
        level = level.max(Level::of(ratio, warn, crit));
        worst_ratio = Some(ratio);
        summary_parts.push(format!("{:.1}% of ephemeral ports", ratio * 100.0));
    } else {
        ev.push("ephemeral port range unknown: port exhaustion not judged".into());
    }

    if let Some(max) = last.sysctls.max_tw_buckets.filter(|m| *m > 0) {
        // The kernel's table holds every timewait minisocket: TIME_WAIT and orphaned
        // FIN_WAIT_2 alike, so that is what fills tcp_max_tw_buckets (and what sockstat's tw
        // counts), not TIME_WAIT alone.
        let ratio = kernel_tw as f64 / max as f64;
        let others = kernel_tw.saturating_sub(census_tw);
        let made_of = match (others, last.orphans) {
            (0, _) => String::new(),
            (n, Some(o)) if o.fin_wait2_minisocks == n => format!(
                ": {census_tw} TIME_WAIT + {n} orphaned FIN_WAIT_2 (Linux keeps both in this table; sockstat's tw counts both)"
            ),
            (n, _) => format!(
                ": {census_tw} TIME_WAIT + {n} other timewait entries (orphaned FIN_WAIT_2, which Linux keeps in the same table)"
            ),
        };
        ev.push(format!(
            "{kernel_tw} of tcp_max_tw_buckets {max} in use ({:.1}%){made_of}",
            ratio * 100.0
        ));
        level = level.max(Level::of(ratio, warn, crit));
        worst_ratio = Some(worst_ratio.map_or(ratio, |w| w.max(ratio)));
        summary_parts.push(format!(
            "{:.1}% of tcp_max_tw_buckets{}",
            ratio * 100.0,
            if others > 0 {
                format!(" ({kernel_tw} entries with FIN_WAIT_2)")
            } else {
                String::new()
            }
        ));
    }

    if let Some(r) = interval_rates(samples) {
        let tw_overflow = r.per_sec(Counter::TCPTimeWaitOverflow);
        if tw_overflow > 0.0 {
            // The kernel already refused to create TIME_WAIT entries: connections closed without
            // the 2MSL protection (RFC 9293 §3.6.1 purpose of TIME_WAIT is lost).
            ev.push(format!(
                "TIME_WAIT bucket table overflowed {tw_overflow:.1}/s (TCPTimeWaitOverflow)"
            ));
            level = Level::Critical;
        }
    }

    if let Some(groups) = &last.time_wait_by_remote {
        for g in groups.iter().take(5) {
            ev.push(format!(
                "towards {}: {} TIME_WAIT ({} on ephemeral local ports)",
                g.remote, g.count, g.ephemeral_local
            ));
        }
    }
    if let Some(reuse) = last.sysctls.tw_reuse {
        ev.push(format!("net.ipv4.tcp_tw_reuse = {reuse}"));
    }
    let summary = if summary_parts.is_empty() {
        format!("{census_tw} TIME_WAIT (no limits known to compare with)")
    } else {
        format!("{census_tw} TIME_WAIT: {}", summary_parts.join(", "))
    };
    verdict(Rule::TimeWaitPressure, level, summary, ev, worst_ratio)
}

fn syn_recv(samples: &[Snapshot], last: &Snapshot, th: &Thresholds) -> Verdict {
    let n = last.census.get(State::SynReceived);
    let level = Level::of(n as f64, th.syn_recv_warn as f64, th.syn_recv_crit as f64);
    let mut ev = vec![format!(
        "{n} half-open connections in SYN_RECEIVED (warning at {}, critical at {})",
        th.syn_recv_warn, th.syn_recv_crit
    )];
    match last.sysctls.syncookies {
        Some(0) => ev.push("SYN cookies are disabled (net.ipv4.tcp_syncookies = 0)".into()),
        Some(v) => ev.push(format!("net.ipv4.tcp_syncookies = {v}")),
        None => {}
    }
    if let Some(b) = last.sysctls.max_syn_backlog {
        ev.push(format!("net.ipv4.tcp_max_syn_backlog = {b}"));
    }
    if let Some(r) = interval_rates(samples) {
        ev.push(format!(
            "SYN cookies sent {:.1}/s, validated {:.1}/s, failed {:.1}/s over {:.1}s",
            r.per_sec(Counter::SyncookiesSent),
            r.per_sec(Counter::SyncookiesRecv),
            r.per_sec(Counter::SyncookiesFailed),
            r.secs
        ));
    } else if let Some(c) = last.counters {
        ev.push(format!(
            "since boot: SYN cookies sent {}, validated {}, failed {}",
            c[Counter::SyncookiesSent],
            c[Counter::SyncookiesRecv],
            c[Counter::SyncookiesFailed]
        ));
    }
    verdict(
        Rule::SynRecvFlood,
        level,
        format!("{n} SYN_RECEIVED"),
        ev,
        Some(n as f64),
    )
}

fn listen_overflow(samples: &[Snapshot], last: &Snapshot, th: &Thresholds) -> Verdict {
    let mut level = Level::Ok;
    let mut ev = Vec::new();
    let mut value = None;
    let mut summary = Vec::new();
    if let Some(ls) = &last.listeners {
        let mut sorted: Vec<_> = ls.iter().collect();
        sorted.sort_by(|a, b| b.fill().total_cmp(&a.fill()));
        if let Some(top) = sorted.first() {
            let fill = top.fill();
            value = Some(fill);
            level = level.max(Level::of(
                fill,
                th.listen_queue_warn_ratio,
                th.listen_queue_crit_ratio,
            ));
            summary.push(format!(
                "fullest accept queue {} {}/{}",
                top.local, top.queue_len, top.backlog
            ));
        } else {
            summary.push("no listeners".into());
        }
        for l in sorted.iter().take(5).filter(|l| l.queue_len > 0) {
            ev.push(format!(
                "listener {}{}: accept queue {} of backlog {} ({:.0}%)",
                l.local,
                l.owner
                    .as_ref()
                    .map(|o| format!(" ({} pid {})", o.comm, o.pid))
                    .unwrap_or_default(),
                l.queue_len,
                l.backlog,
                l.fill() * 100.0
            ));
        }
        ev.push(format!("{} listening sockets", ls.len()));
    } else {
        ev.push("per-listener accept queues unknown".into());
    }
    if let Some(r) = interval_rates(samples) {
        let overflows = r.per_sec(Counter::ListenOverflows);
        ev.push(format!(
            "ListenOverflows {overflows:.2}/s, ListenDrops {:.2}/s over {:.1}s",
            r.per_sec(Counter::ListenDrops),
            r.secs
        ));
        if overflows > th.listen_overflow_warn_per_sec {
            level = level.max(Level::Warning);
        }
        if overflows >= th.listen_overflow_crit_per_sec && overflows > 0.0 {
            level = Level::Critical;
        }
        summary.push(format!("{overflows:.2} overflows/s"));
    } else if let Some(c) = last.counters {
        ev.push(format!(
            "since boot: ListenOverflows {}, ListenDrops {} (one sample: no rate)",
            c[Counter::ListenOverflows],
            c[Counter::ListenDrops]
        ));
    }
    if let Some(s) = last.sysctls.somaxconn {
        ev.push(format!("net.core.somaxconn = {s}"));
    }
    verdict(Rule::ListenOverflow, level, summary.join(", "), ev, value)
}

fn fin_wait2(samples: &[Snapshot], last: &Snapshot, th: &Thresholds) -> Verdict {
    let n = last.census.get(State::FinWait2);
    let level = Level::of(n as f64, th.fin_wait2_warn as f64, th.fin_wait2_crit as f64);
    let mut ev = vec![format!(
        "{n} sockets in FIN_WAIT_2 (warning at {}, critical at {})",
        th.fin_wait2_warn, th.fin_wait2_crit
    )];
    if samples.len() > 1 {
        let v = series(samples, State::FinWait2);
        let shown: Vec<String> = v.iter().map(u64::to_string).collect();
        ev.push(format!("FIN_WAIT_2 over samples: {}", shown.join(" → ")));
    }
    let timeout = last
        .sysctls
        .fin_timeout_secs
        .map(|t| format!(" after net.ipv4.tcp_fin_timeout = {t}s"))
        .unwrap_or_default();
    let mut summary = format!("{n} FIN_WAIT_2");
    if let Some(o) = last.orphans {
        let orphaned = o.by_state.get(State::FinWait2);
        let held = n.saturating_sub(orphaned);
        summary.push_str(&format!(": {orphaned} orphaned, {held} held by a program"));
        ev.push(format!(
            "{orphaned} orphaned: closed by their program, waiting for the peer's FIN; the kernel drops them{timeout}"
        ));
        ev.push(format!(
            "{held} half-closed by a program that still holds them (shutdown of its sending side): no timeout applies"
        ));
        if o.total() > 0 {
            ev.push(format!(
                "{} orphaned sockets in all ({})",
                o.total(),
                o.describe()
            ));
        }
        if let Some(c) = last.sockstat {
            // The kernel's counter is another number (see Orphans): say why, so the two
            // never read as a contradiction.
            let minisocks = if o.fin_wait2_minisocks > 0 {
                format!(
                    ", and leaves out the {} orphaned FIN_WAIT_2 it already turned into timewait minisockets (sockstat counts those under tw)",
                    o.fin_wait2_minisocks
                )
            } else {
                String::new()
            };
            ev.push(format!(
                "the kernel's orphan count (sockstat orphan) is {}: it counts full orphaned sockets of the whole host, every network namespace{minisocks}",
                c.orphan
            ));
        }
    } else {
        if !timeout.is_empty() {
            ev.push(format!("orphaned FIN_WAIT_2 are dropped{timeout}"));
        }
        if let Some(c) = last.sockstat {
            ev.push(format!(
                "the kernel's orphan count (sockstat orphan) is {}: host-wide, and without orphaned FIN_WAIT_2 minisockets",
                c.orphan
            ));
        }
    }
    if let Some(rs) = &last.fin_wait2_by_remote {
        for r in rs.iter().take(3) {
            ev.push(format!("towards {}: {} FIN_WAIT_2", r.remote, r.count));
        }
    }
    if let Some(b) = &last.fin_wait2_by_process {
        for p in b.processes.iter().take(3) {
            ev.push(format!(
                "{} (pid {}) holds {} half-closed FIN_WAIT_2",
                p.comm, p.pid, p.count
            ));
        }
    }
    verdict(Rule::FinWait2PileUp, level, summary, ev, Some(n as f64))
}

fn retransmit(samples: &[Snapshot], last: &Snapshot, th: &Thresholds) -> Verdict {
    let (retr, out, span) = match (samples.first(), samples.len()) {
        (Some(first), n) if n > 1 && first.counters.is_some() && last.counters.is_some() => {
            let (a, b) = (first.counters.unwrap(), last.counters.unwrap());
            let secs = last.time_ms.saturating_sub(first.time_ms) as f64 / 1000.0;
            let d = b.since(&a);
            (
                d[Counter::RetransSegs],
                d[Counter::OutSegs],
                format!("over {secs:.1}s"),
            )
        }
        _ => match last.counters {
            Some(c) => (
                c[Counter::RetransSegs],
                c[Counter::OutSegs],
                "since boot".to_string(),
            ),
            None => {
                return verdict(
                    Rule::RetransmitRate,
                    Level::Ok,
                    "not judged: no segment counters".into(),
                    vec!["the source supplies no segment counters".into()],
                    None,
                )
            }
        },
    };
    let total = out + retr;
    let ev = vec![format!(
        "{retr} retransmitted of {total} segments sent {span} (warning at {:.1}%, critical at {:.1}%)",
        th.retrans_warn_ratio * 100.0,
        th.retrans_crit_ratio * 100.0
    )];
    if total < th.retrans_min_segments {
        return verdict(
            Rule::RetransmitRate,
            Level::Ok,
            format!(
                "too few segments to judge ({total} < {} {span})",
                th.retrans_min_segments
            ),
            ev,
            retrans_ratio(retr, out),
        );
    }
    let ratio = retrans_ratio(retr, out).unwrap_or(0.0);
    verdict(
        Rule::RetransmitRate,
        Level::of(ratio, th.retrans_warn_ratio, th.retrans_crit_ratio),
        format!("{:.2}% of segments retransmitted {span}", ratio * 100.0),
        ev,
        Some(ratio),
    )
}

fn fd(last: &Snapshot, th: &Thresholds) -> Verdict {
    let Some(list) = &last.fd_usage else {
        return verdict(
            Rule::FdExhaustion,
            Level::Ok,
            "not judged: no per-process descriptor counts".into(),
            vec!["the source supplies no process information".into()],
            None,
        );
    };
    let mut sorted: Vec<_> = list.iter().filter(|u| u.ratio().is_some()).collect();
    sorted.sort_by(|a, b| b.ratio().unwrap().total_cmp(&a.ratio().unwrap()));
    let mut ev: Vec<String> = sorted
        .iter()
        .take(5)
        .map(|u| {
            format!(
                "{} (pid {}): {} of {} descriptors open ({:.0}%), {} TCP sockets",
                u.comm,
                u.pid,
                u.open,
                u.limit.unwrap_or(0),
                u.ratio().unwrap_or(0.0) * 100.0,
                u.tcp_sockets
            )
        })
        .collect();
    ev.push(format!(
        "{} processes holding TCP sockets checked",
        list.len()
    ));
    match sorted.first() {
        Some(top) => {
            let r = top.ratio().unwrap_or(0.0);
            verdict(
                Rule::FdExhaustion,
                Level::of(r, th.fd_warn_ratio, th.fd_crit_ratio),
                format!(
                    "{} (pid {}) uses {:.0}% of its open-file limit",
                    top.comm,
                    top.pid,
                    r * 100.0
                ),
                ev,
                Some(r),
            )
        }
        None => verdict(
            Rule::FdExhaustion,
            Level::Ok,
            "no process with a known open-file limit".into(),
            ev,
            None,
        ),
    }
}
