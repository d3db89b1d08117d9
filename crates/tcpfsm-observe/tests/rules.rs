//! Each diagnosis rule at and around its level boundaries, through the public API.

use std::net::SocketAddr;
use tcpfsm_observe::*;

fn th() -> Thresholds {
    Thresholds::default()
}

fn mib(values: &[(Counter, u64)]) -> Mib {
    let mut m = Mib::new();
    for (c, v) in values {
        m[*c] = *v;
    }
    m
}

fn with_state(s: State, n: u64) -> Snapshot {
    let mut x = Snapshot::default();
    x.census.set(s, n);
    x
}

fn verdict(samples: &[Snapshot], t: &Thresholds, rule: Rule) -> Verdict {
    diagnose(samples, t)
        .into_iter()
        .find(|v| v.rule == rule)
        .expect("one verdict per rule")
}

fn level(samples: &[Snapshot], rule: Rule) -> Level {
    verdict(samples, &th(), rule).level
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn diagnose_gives_one_verdict_per_rule_in_order() {
    let v = diagnose(&[Snapshot::default()], &th());
    assert_eq!(v.iter().map(|v| v.rule).collect::<Vec<_>>(), Rule::ALL);
    assert!(v
        .iter()
        .all(|v| v.level == Level::Ok && !v.advice.is_empty()));
    let none = diagnose(&[], &th());
    assert_eq!(none.len(), 7);
    assert_eq!(worst(&none), Level::Ok);
}

#[test]
fn levels_order_and_exit_codes() {
    assert!(Level::Ok < Level::Warning && Level::Warning < Level::Critical);
    assert_eq!(
        [Level::Ok, Level::Warning, Level::Critical].map(Level::exit_code),
        [0, 1, 2]
    );
}

#[test]
fn close_wait_leak_count_boundaries() {
    let r = Rule::CloseWaitLeak;
    assert_eq!(level(&[with_state(State::CloseWait, 99)], r), Level::Ok);
    assert_eq!(
        level(&[with_state(State::CloseWait, 100)], r),
        Level::Warning
    );
    assert_eq!(
        level(&[with_state(State::CloseWait, 999)], r),
        Level::Warning
    );
    assert_eq!(
        level(&[with_state(State::CloseWait, 1000)], r),
        Level::Critical
    );
}

#[test]
fn close_wait_leak_sustained_growth_warns_below_the_count() {
    let r = Rule::CloseWaitLeak;
    let s = |v: &[u64]| -> Vec<Snapshot> {
        v.iter().map(|n| with_state(State::CloseWait, *n)).collect()
    };
    assert_eq!(level(&s(&[1, 2, 3]), r), Level::Warning);
    assert_eq!(
        level(&s(&[5, 1, 2, 3]), r),
        Level::Warning,
        "last three rise"
    );
    assert_eq!(
        level(&s(&[1, 2, 2]), r),
        Level::Ok,
        "a flat step is not growth"
    );
    assert_eq!(level(&s(&[3, 2, 1]), r), Level::Ok);
    assert_eq!(
        level(&s(&[1, 2]), r),
        Level::Ok,
        "two samples are not sustained"
    );
    let mut t = th();
    t.close_wait_growth_samples = 2;
    assert_eq!(verdict(&s(&[1, 2]), &t, r).level, Level::Warning);
    // Growth never lowers a critical count.
    assert_eq!(level(&s(&[1000, 1001, 1002]), r), Level::Critical);
}

#[test]
fn close_wait_leak_names_the_processes() {
    let mut s = with_state(State::CloseWait, 150);
    s.close_wait_by_process = Some(ProcessBreakdown {
        processes: vec![
            ProcessCount {
                pid: 4242,
                comm: "leaky".into(),
                count: 140,
            },
            ProcessCount {
                pid: 7,
                comm: "other".into(),
                count: 8,
            },
        ],
        no_owner: 2,
        no_owner_reason: Some(tcpfsm_observe::NoOwner::Hidden.label().into()),
    });
    let v = verdict(&[s], &th(), Rule::CloseWaitLeak);
    assert_eq!(v.level, Level::Warning);
    assert!(v.summary.contains("leaky[4242]"), "{}", v.summary);
    assert!(v
        .evidence
        .iter()
        .any(|e| e.contains("leaky (pid 4242) holds 140")));
    assert!(v
        .evidence
        .iter()
        .any(|e| e.contains("2 CLOSE_WAIT sockets with no owner (hidden: not root)")));
    assert!(v.advice.contains("close()"));
}

fn tw_snapshot(ephemeral_towards_one: u64, total: u64) -> Snapshot {
    let mut s = with_state(State::TimeWait, total);
    s.sysctls.ephemeral_ports = Some(PortRange {
        low: 1000,
        high: 1999,
    });
    s.time_wait_by_remote = Some(vec![RemoteCount {
        remote: addr("10.0.0.1:80"),
        count: total,
        ephemeral_local: ephemeral_towards_one,
    }]);
    s
}

#[test]
fn time_wait_pressure_against_ephemeral_range_boundaries() {
    let r = Rule::TimeWaitPressure;
    assert_eq!(level(&[tw_snapshot(499, 499)], r), Level::Ok);
    assert_eq!(level(&[tw_snapshot(500, 500)], r), Level::Warning);
    assert_eq!(level(&[tw_snapshot(799, 799)], r), Level::Warning);
    assert_eq!(level(&[tw_snapshot(800, 800)], r), Level::Critical);
}

#[test]
fn time_wait_pressure_ignores_server_side_time_wait_for_ports() {
    // 900 TIME_WAIT sockets whose local port is a server port do not consume ephemeral ports.
    let v = verdict(&[tw_snapshot(0, 900)], &th(), Rule::TimeWaitPressure);
    assert_eq!(v.level, Level::Ok, "{v:?}");
}

#[test]
fn time_wait_pressure_without_breakdown_uses_the_total() {
    let mut s = tw_snapshot(0, 600);
    s.time_wait_by_remote = None;
    assert_eq!(level(&[s], Rule::TimeWaitPressure), Level::Warning);
}

#[test]
fn time_wait_pressure_against_max_tw_buckets() {
    let mut s = with_state(State::TimeWait, 49);
    s.sysctls.max_tw_buckets = Some(100);
    assert_eq!(level(&[s.clone()], Rule::TimeWaitPressure), Level::Ok);
    s.census.set(State::TimeWait, 50);
    assert_eq!(level(&[s.clone()], Rule::TimeWaitPressure), Level::Warning);
    s.census.set(State::TimeWait, 80);
    assert_eq!(level(&[s], Rule::TimeWaitPressure), Level::Critical);
}

#[test]
fn time_wait_pressure_bucket_overflow_is_critical() {
    let mk = |t: u64, ovf: u64| Snapshot {
        time_ms: t,
        counters: Some(mib(&[(Counter::TCPTimeWaitOverflow, ovf)])),
        ..Snapshot::default()
    };
    assert_eq!(
        level(&[mk(0, 5), mk(1000, 5)], Rule::TimeWaitPressure),
        Level::Ok
    );
    assert_eq!(
        level(&[mk(0, 5), mk(1000, 6)], Rule::TimeWaitPressure),
        Level::Critical
    );
}

#[test]
fn syn_recv_flood_boundaries() {
    let r = Rule::SynRecvFlood;
    assert_eq!(level(&[with_state(State::SynReceived, 999)], r), Level::Ok);
    assert_eq!(
        level(&[with_state(State::SynReceived, 1000)], r),
        Level::Warning
    );
    assert_eq!(
        level(&[with_state(State::SynReceived, 4999)], r),
        Level::Warning
    );
    assert_eq!(
        level(&[with_state(State::SynReceived, 5000)], r),
        Level::Critical
    );
}

#[test]
fn syn_recv_flood_reports_disabled_syncookies() {
    let mut s = with_state(State::SynReceived, 2000);
    s.sysctls.syncookies = Some(0);
    let v = verdict(&[s], &th(), Rule::SynRecvFlood);
    assert!(v.evidence.iter().any(|e| e.contains("disabled")));
    assert!(v.advice.contains("tcp_syncookies"));
}

fn listener(q: u32, b: u32) -> Snapshot {
    Snapshot {
        listeners: Some(vec![
            ListenerQueue {
                local: addr("0.0.0.0:80"),
                queue_len: q,
                backlog: b,
                owner: Some(ProcessRef {
                    pid: 9,
                    comm: "srv".into(),
                }),
            },
            ListenerQueue {
                local: addr("0.0.0.0:22"),
                queue_len: 0,
                backlog: 128,
                owner: None,
            },
        ]),
        ..Snapshot::default()
    }
}

#[test]
fn listen_overflow_accept_queue_boundaries() {
    let r = Rule::ListenOverflow;
    assert_eq!(level(&[listener(7, 10)], r), Level::Ok);
    assert_eq!(level(&[listener(8, 10)], r), Level::Warning);
    assert_eq!(level(&[listener(10, 10)], r), Level::Critical);
    // Linux lets the queue reach backlog + 1 before it drops.
    assert_eq!(level(&[listener(11, 10)], r), Level::Critical);
    let v = verdict(&[listener(10, 10)], &th(), r);
    assert!(v.summary.contains("0.0.0.0:80 10/10"), "{}", v.summary);
    assert!(v.evidence.iter().any(|e| e.contains("srv pid 9")));
}

#[test]
fn listen_overflow_counter_rate_boundaries() {
    let mk = |t: u64, ovf: u64| Snapshot {
        time_ms: t,
        counters: Some(mib(&[(Counter::ListenOverflows, ovf)])),
        ..Snapshot::default()
    };
    let r = Rule::ListenOverflow;
    assert_eq!(level(&[mk(0, 100), mk(10_000, 100)], r), Level::Ok);
    assert_eq!(level(&[mk(0, 100), mk(10_000, 101)], r), Level::Warning);
    assert_eq!(level(&[mk(0, 100), mk(10_000, 199)], r), Level::Warning);
    assert_eq!(level(&[mk(0, 100), mk(10_000, 200)], r), Level::Critical);
    // One sample: a since-boot total is not a rate and does not alarm.
    assert_eq!(level(&[mk(0, 1_000_000)], r), Level::Ok);
}

#[test]
fn fin_wait2_pile_up_boundaries() {
    let r = Rule::FinWait2PileUp;
    assert_eq!(level(&[with_state(State::FinWait2, 499)], r), Level::Ok);
    assert_eq!(
        level(&[with_state(State::FinWait2, 500)], r),
        Level::Warning
    );
    assert_eq!(
        level(&[with_state(State::FinWait2, 5000)], r),
        Level::Critical
    );
}

fn segs(t: u64, out: u64, retr: u64) -> Snapshot {
    Snapshot {
        time_ms: t,
        counters: Some(mib(&[
            (Counter::OutSegs, out),
            (Counter::RetransSegs, retr),
        ])),
        ..Snapshot::default()
    }
}

#[test]
fn retransmit_rate_boundaries_since_boot() {
    let r = Rule::RetransmitRate;
    // Share of all segments sent: retrans / (out + retrans).
    assert_eq!(level(&[segs(0, 9901, 99)], r), Level::Ok);
    assert_eq!(level(&[segs(0, 9900, 100)], r), Level::Warning);
    assert_eq!(level(&[segs(0, 9501, 499)], r), Level::Warning);
    assert_eq!(level(&[segs(0, 9500, 500)], r), Level::Critical);
}

#[test]
fn retransmit_rate_uses_the_interval_between_samples() {
    let r = Rule::RetransmitRate;
    // Since boot 50% retransmitted, but in the interval only 0.5%.
    let a = segs(0, 100_000, 100_000);
    let b = segs(5000, 119_900, 100_100);
    assert_eq!(level(&[a.clone(), b], r), Level::Ok);
    let c = segs(5000, 119_000, 101_000);
    assert_eq!(level(&[a, c], r), Level::Critical);
}

#[test]
fn retransmit_rate_needs_enough_segments() {
    let v = verdict(&[segs(0, 500, 400)], &th(), Rule::RetransmitRate);
    assert_eq!(v.level, Level::Ok);
    assert!(v.summary.contains("too few"));
    let none = verdict(&[Snapshot::default()], &th(), Rule::RetransmitRate);
    assert!(none.summary.contains("not judged"));
}

fn fds(open: u64, limit: Option<u64>) -> Snapshot {
    Snapshot {
        fd_usage: Some(vec![FdUsage {
            pid: 31,
            comm: "busy".into(),
            open,
            limit,
            tcp_sockets: open / 2,
        }]),
        ..Snapshot::default()
    }
}

#[test]
fn fd_exhaustion_boundaries() {
    let r = Rule::FdExhaustion;
    assert_eq!(level(&[fds(79, Some(100))], r), Level::Ok);
    assert_eq!(level(&[fds(80, Some(100))], r), Level::Warning);
    assert_eq!(level(&[fds(94, Some(100))], r), Level::Warning);
    assert_eq!(level(&[fds(95, Some(100))], r), Level::Critical);
    assert_eq!(level(&[fds(1_000_000, None)], r), Level::Ok, "unlimited");
    let v = verdict(&[fds(95, Some(100))], &th(), r);
    assert!(v.summary.contains("busy (pid 31)"));
}

#[test]
fn thresholds_change_the_verdicts() {
    let mut t = th();
    t.close_wait_warn = 5;
    t.close_wait_crit = 10;
    assert_eq!(
        verdict(&[with_state(State::CloseWait, 5)], &t, Rule::CloseWaitLeak).level,
        Level::Warning
    );
    assert_eq!(
        verdict(&[with_state(State::CloseWait, 10)], &t, Rule::CloseWaitLeak).level,
        Level::Critical
    );
}

#[test]
fn verdict_json_uses_snake_case_names() {
    let v = verdict(
        &[with_state(State::CloseWait, 100)],
        &th(),
        Rule::CloseWaitLeak,
    );
    let j = serde_json::to_value(&v).unwrap();
    assert_eq!(j["rule"], "close_wait_leak");
    assert_eq!(j["level"], "warning");
    assert_eq!(j["value"], 100.0);
}

#[test]
fn a_census_only_source_is_judged_on_counts_and_says_what_it_lacks() {
    // What our simulated stack can give: a census, no processes, sysctls or counters.
    let mut c = Census::new();
    c.set(State::CloseWait, 1000);
    c.set(State::FinWait2, 600);
    let v = diagnose(&[Snapshot::from_census(0, c)], &th());
    let lv = |r: Rule| v.iter().find(|x| x.rule == r).unwrap();
    assert_eq!(lv(Rule::CloseWaitLeak).level, Level::Critical);
    assert_eq!(lv(Rule::FinWait2PileUp).level, Level::Warning);
    assert!(lv(Rule::RetransmitRate).summary.contains("not judged"));
    assert!(lv(Rule::FdExhaustion).summary.contains("not judged"));
    assert!(lv(Rule::TimeWaitPressure)
        .summary
        .contains("no limits known"));
    assert_eq!(worst(&v), Level::Critical);
}
