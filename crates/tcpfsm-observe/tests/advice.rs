//! The verdicts never contradict each other, and the advice names the program (or peer) to
//! fix whenever the sample knows it — through the public API, from hand-made snapshots.

use tcpfsm_observe::*;

fn verdict(s: &Snapshot, t: &Thresholds, rule: Rule) -> Verdict {
    diagnose(std::slice::from_ref(s), t)
        .into_iter()
        .find(|v| v.rule == rule)
        .unwrap()
}

fn proc_count(pid: u32, comm: &str, count: u64) -> ProcessCount {
    ProcessCount {
        pid,
        comm: comm.into(),
        count,
    }
}

/// The host of issue 12: 220 orphaned FIN_WAIT_2 (minisockets) and 9 TIME_WAIT, which the
/// kernel reports as `orphan 0` and `tw 229`.
fn orphan_host() -> Snapshot {
    let mut s = Snapshot::default();
    s.census.set(State::FinWait2, 220);
    s.census.set(State::TimeWait, 9);
    s.sockstat = Some(Sockstat {
        tw: 229,
        orphan: 0,
        ..Sockstat::default()
    });
    let mut o = Orphans::default();
    o.by_state.set(State::FinWait2, 220);
    o.fin_wait2_minisocks = 220;
    s.orphans = Some(o);
    s.sysctls.max_tw_buckets = Some(262_144);
    s.sysctls.fin_timeout_secs = Some(60);
    s
}

#[test]
fn orphaned_fin_wait2_are_counted_beside_the_kernels_orphan_counter() {
    let v = verdict(&orphan_host(), &Thresholds::default(), Rule::FinWait2PileUp);
    assert_eq!(
        v.summary,
        "220 FIN_WAIT_2: 220 orphaned, 0 held by a program"
    );
    assert!(v.evidence.contains(&"220 orphaned: closed by their program, waiting for the peer's FIN; the kernel drops them after net.ipv4.tcp_fin_timeout = 60s".to_string()), "{:?}", v.evidence);
    assert!(
        v.evidence.iter().any(|e| e
            .starts_with("the kernel's orphan count (sockstat orphan) is 0: ")
            && e.contains("leaves out the 220 orphaned FIN_WAIT_2")),
        "{:?}",
        v.evidence
    );
    assert!(!v.evidence.iter().any(|e| e == "0 orphaned sockets"));
}

#[test]
fn tw_buckets_in_use_are_explained_as_time_wait_plus_fin_wait2_minisockets() {
    let v = verdict(
        &orphan_host(),
        &Thresholds::default(),
        Rule::TimeWaitPressure,
    );
    assert_eq!(v.evidence[0], "9 sockets in TIME_WAIT");
    assert!(v.evidence.contains(&"229 of tcp_max_tw_buckets 262144 in use (0.1%): 9 TIME_WAIT + 220 orphaned FIN_WAIT_2 (Linux keeps both in this table; sockstat's tw counts both)".to_string()), "{:?}", v.evidence);
    assert!(v.summary.starts_with("9 TIME_WAIT: "), "{}", v.summary);
    assert!(
        v.summary.contains("(229 entries with FIN_WAIT_2)"),
        "{}",
        v.summary
    );
}

#[test]
fn advice_names_the_leaking_program_first() {
    let mut s = Snapshot::default();
    s.census.set(State::CloseWait, 300);
    s.close_wait_by_process = Some(ProcessBreakdown {
        processes: vec![proc_count(4242, "nginx", 290), proc_count(7, "php-fpm", 10)],
        no_owner: 0,
        no_owner_reason: None,
    });
    let v = verdict(&s, &Thresholds::default(), Rule::CloseWaitLeak);
    assert!(
        v.advice.starts_with("Fix nginx (pid 4242), which holds 290 of them (also php-fpm (pid 7)). The peer has closed"),
        "{}",
        v.advice
    );
    // An OK verdict names nobody.
    s.census.set(State::CloseWait, 3);
    let v = verdict(&s, &Thresholds::default(), Rule::CloseWaitLeak);
    assert!(
        v.advice.starts_with("CLOSE_WAIT should stay near zero"),
        "{}",
        v.advice
    );
}

#[test]
fn advice_names_the_listener_the_client_program_and_the_fd_hog() {
    let mut s = Snapshot::default();
    let nginx = ProcessRef {
        pid: 12,
        comm: "nginx".into(),
    };
    s.census.set(State::SynReceived, 6000);
    s.syn_recv_by_listener = Some(vec![ListenerCount {
        listener: "0.0.0.0:443".parse().unwrap(),
        count: 6000,
        owner: Some(nginx.clone()),
    }]);
    s.listeners = Some(vec![ListenerQueue {
        local: "0.0.0.0:443".parse().unwrap(),
        queue_len: 128,
        backlog: 128,
        owner: Some(nginx),
    }]);
    s.census.set(State::TimeWait, 900);
    s.sysctls.ephemeral_ports = Some(PortRange {
        low: 40000,
        high: 40999,
    });
    s.time_wait_by_remote = Some(vec![RemoteCount {
        remote: "10.0.0.5:5432".parse().unwrap(),
        count: 900,
        ephemeral_local: 900,
    }]);
    s.time_wait_remote_holders = Some(vec![proc_count(77, "billing", 3)]);
    s.fd_usage = Some(vec![FdUsage {
        pid: 77,
        comm: "billing".into(),
        open: 1000,
        limit: Some(1024),
        tcp_sockets: 900,
    }]);
    let th = Thresholds::default();
    let syn = verdict(&s, &th, Rule::SynRecvFlood).advice;
    assert!(syn.starts_with("The half-open connections wait on 0.0.0.0:443, served by nginx (pid 12) (6000 of them)."), "{syn}");
    let lo = verdict(&s, &th, Rule::ListenOverflow).advice;
    assert!(
        lo.starts_with("nginx (pid 12) accepts too slowly on 0.0.0.0:443 (128 of 128 waiting)."),
        "{lo}"
    );
    let tw = verdict(&s, &th, Rule::TimeWaitPressure).advice;
    assert!(tw.starts_with("Most TIME_WAIT are connections to 10.0.0.5:5432, which billing (pid 77) opens (3 open now): make it reuse them."), "{tw}");
    let fd = verdict(&s, &th, Rule::FdExhaustion).advice;
    assert!(
        fd.starts_with("billing (pid 77) has 1000 of its 1024 descriptors open."),
        "{fd}"
    );
}
