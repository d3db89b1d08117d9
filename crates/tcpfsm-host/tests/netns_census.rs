//! The host reader against real kernel sockets in a private network namespace (needs root).

mod support;

use std::collections::HashSet;
use std::time::Duration;
use support::*;
use tcpfsm_host::{
    attribute, snapshot, Family, Filter, Owner, SnapshotOptions, SockDiag, State, StateSet,
};
use tcpfsm_states::Counter;

const N: usize = 5;
const M: usize = 4;
const K: usize = 3;
const OVF: usize = 5;

#[test]
#[ignore = "helper process for the netns tests, started by them"]
fn holder_process() {
    holder_main();
}

fn census_in(ns: &Netns, filter: Filter) -> tcpfsm_host::Census {
    ns.run(move || SockDiag::new().unwrap().census(&filter).unwrap())
}

#[test]
fn census_counts_exactly_the_sockets_put_in_each_state() {
    let Some(ns) = Netns::new("census_counts_exactly_the_sockets_put_in_each_state") else {
        return;
    };
    let holder = spawn_holder(&ns, "holder_process");
    let port = holder.port;
    let _scene = ns.run(move || build_scene(N, M, K, port, OVF));
    let e = expected(N as u64, M as u64, K as u64, OVF as u64, true);
    let want = |c: &tcpfsm_host::Census| {
        c.get(State::Listen) == e.listen
            && c.get(State::Established) == e.established
            && c.get(State::CloseWait) == e.close_wait
            && c.get(State::FinWait2) == e.fin_wait2
            && c.get(State::TimeWait) == e.time_wait
            && c.get(State::SynSent) == e.syn_sent
    };
    let mut last = None;
    let settled = wait_until(Duration::from_secs(10), || {
        let c = census_in(&ns, Filter::default());
        let ok = want(&c);
        last = Some(c);
        ok
    });
    let c = last.unwrap();
    assert!(settled, "census never reached the expected counts: {c:?}");
    assert_eq!(
        c.total(),
        e.listen + e.established + e.close_wait + e.fin_wait2 + e.time_wait + e.syn_sent
    );
    for s in [
        State::SynReceived,
        State::FinWait1,
        State::Closing,
        State::LastAck,
        State::Closed,
    ] {
        assert_eq!(c.get(s), 0, "{s}");
    }
    // The same as ss reads, state by state.
    for (s, ss) in [
        (State::Listen, "listening"),
        (State::Established, "established"),
        (State::CloseWait, "close-wait"),
        (State::FinWait2, "fin-wait-2"),
        (State::TimeWait, "time-wait"),
        (State::SynSent, "syn-sent"),
    ] {
        assert_eq!(c.get(s), ns.ss_count(ss), "{s} vs ss state {ss}");
    }
}

#[test]
fn census_state_and_port_filters_select_in_the_kernel() {
    let Some(ns) = Netns::new("census_state_and_port_filters_select_in_the_kernel") else {
        return;
    };
    let holder = spawn_holder(&ns, "holder_process");
    let port = holder.port;
    let _scene = ns.run(move || build_scene(2, M, 0, port, 0));
    wait_half_closed_settled(&ns, M as u64);
    let only_cw = census_in(&ns, Filter::states(StateSet::of(&[State::CloseWait])));
    assert_eq!(only_cw.get(State::CloseWait), M as u64);
    assert_eq!(
        only_cw.total(),
        M as u64,
        "other states not returned: {only_cw:?}"
    );
    let by_port = census_in(
        &ns,
        Filter {
            port: Some(port),
            ..Filter::default()
        },
    );
    // The holder's listener, its M CLOSE_WAIT and our M FIN_WAIT_2 all involve its port.
    assert_eq!(by_port.get(State::Listen), 1);
    assert_eq!(by_port.get(State::CloseWait), M as u64);
    assert_eq!(by_port.get(State::FinWait2), M as u64);
    assert_eq!(by_port.get(State::Established), 0);
}

#[test]
fn ipv4_and_ipv6_sockets_are_counted_and_family_filter_applies() {
    let Some(ns) = Netns::new("ipv4_and_ipv6_sockets_are_counted_and_family_filter_applies") else {
        return;
    };
    let kept = ns.run(|| {
        let l = std::net::TcpListener::bind("[::1]:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (l, c, s)
    });
    let v6 = census_in(
        &ns,
        Filter {
            family: Family::V6,
            ..Filter::default()
        },
    );
    assert_eq!(v6.get(State::Listen), 1);
    assert_eq!(v6.get(State::Established), 2);
    let v4 = census_in(
        &ns,
        Filter {
            family: Family::V4,
            ..Filter::default()
        },
    );
    assert_eq!(v4.total(), 0);
    let rows = ns.run(|| {
        SockDiag::new()
            .unwrap()
            .sockets(&Filter::default())
            .unwrap()
    });
    assert!(rows.iter().all(|r| r.local.is_ipv6()));
    assert!(rows
        .iter()
        .any(|r| r.local == kept.0.local_addr().unwrap() && r.state == State::Listen));
    drop(kept);
}

#[test]
fn listeners_report_accept_queue_length_and_backlog() {
    let Some(ns) = Netns::new("listeners_report_accept_queue_length_and_backlog") else {
        return;
    };
    let scene = ns.run(|| build_scene(0, 0, 0, 0, OVF));
    let addr = scene.overflow_addr;
    let mut row = None;
    let ok = wait_until(Duration::from_secs(10), || {
        let ls = ns.run(|| SockDiag::new().unwrap().listeners().unwrap());
        row = ls.into_iter().find(|r| r.local == addr);
        row.is_some_and(|r| r.rx_queue as u64 == OVERFLOW_ADMITTED)
    });
    let r = row.expect("overflow listener listed");
    assert!(ok, "accept queue never reached {OVERFLOW_ADMITTED}: {r:?}");
    assert_eq!(r.tx_queue, 1, "backlog given to listen()");
    // The kernel counted the dropped handshakes in this namespace's counters.
    let c = ns.run(|| tcpfsm_host::RawCounters::read().unwrap().mib);
    assert!(c[Counter::ListenOverflows] > 0, "{c:?}");
    // And the diagnosis calls the full queue critical.
    let snap = ns.run(|| {
        snapshot(
            &mut SockDiag::new().unwrap(),
            &SnapshotOptions {
                fd_usage: false,
                ..SnapshotOptions::default()
            },
        )
        .unwrap()
    });
    let v = tcpfsm_observe::diagnose(&[snap], &tcpfsm_observe::Thresholds::default());
    let lo = v
        .iter()
        .find(|v| v.rule == tcpfsm_observe::Rule::ListenOverflow)
        .unwrap();
    assert_eq!(lo.level, tcpfsm_observe::Level::Critical, "{lo:?}");
    drop(scene);
}

#[test]
fn close_wait_sockets_are_attributed_to_the_holding_process() {
    let Some(ns) = Netns::new("close_wait_sockets_are_attributed_to_the_holding_process") else {
        return;
    };
    let holder = spawn_holder(&ns, "holder_process");
    let port = holder.port;
    let _scene = ns.run(move || build_scene(1, M, 2, port, 0));
    wait_half_closed_settled(&ns, M as u64);
    let rows = ns.run(|| {
        SockDiag::new()
            .unwrap()
            .sockets(&Filter::states(StateSet::of(&[
                State::CloseWait,
                State::TimeWait,
            ])))
            .unwrap()
    });
    let inodes: HashSet<u64> = rows.iter().map(|r| r.inode).collect();
    let a = attribute(&inodes);
    for r in &rows {
        match (r.state, a.owner(r.inode)) {
            (State::CloseWait, Owner::Processes(ps)) => {
                assert!(ps.iter().any(|p| p.pid == holder.pid()), "{ps:?}")
            }
            (State::TimeWait, Owner::None(why)) => {
                assert_eq!(why, tcpfsm_host::NoOwner::Kernel)
            }
            other => panic!("unexpected attribution {other:?} for {r:?}"),
        }
    }
    // The snapshot's breakdown names the holder with all M sockets, and the fd check sees it.
    let snap =
        ns.run(|| snapshot(&mut SockDiag::new().unwrap(), &SnapshotOptions::default()).unwrap());
    let b = snap.close_wait_by_process.unwrap();
    assert_eq!(b.processes.len(), 1, "{b:?}");
    assert_eq!(b.processes[0].pid, holder.pid());
    assert_eq!(b.processes[0].comm, holder.comm());
    assert_eq!(b.processes[0].count, M as u64);
    assert_eq!(b.no_owner, 0);
    let fds = snap.fd_usage.unwrap();
    let h = fds
        .iter()
        .find(|u| u.pid == holder.pid())
        .expect("holder in fd usage");
    assert!(
        h.tcp_sockets > M as u64 && h.open >= h.tcp_sockets && h.limit.is_some(),
        "{h:?}"
    );
    let census = snap.census;
    let tw: u64 = snap
        .time_wait_by_remote
        .unwrap()
        .iter()
        .map(|g| g.count)
        .sum();
    assert_eq!(tw, 2);
    // A light sample (no TIME_WAIT grouping, no fd scan) has the same census and owners.
    let light = ns.run(|| {
        snapshot(
            &mut SockDiag::new().unwrap(),
            &SnapshotOptions {
                top_remotes: 0,
                fd_usage: false,
                ..SnapshotOptions::default()
            },
        )
        .unwrap()
    });
    assert_eq!(light.census, census);
    assert!(light.time_wait_by_remote.is_none() && light.fd_usage.is_none());
    let lb = light.close_wait_by_process.unwrap();
    assert_eq!(lb.processes[0].pid, holder.pid());
    assert_eq!(lb.processes[0].count, M as u64);
}

#[test]
fn census_time_wait_from_kernel_counter_matches_a_full_dump() {
    let Some(ns) = Netns::new("census_time_wait_from_kernel_counter_matches_a_full_dump") else {
        return;
    };
    let holder = spawn_holder(&ns, "holder_process");
    let port = holder.port;
    // K TIME_WAIT, M half-closed (full FIN_WAIT_2 sockets we hold), and ORPHANS connections we
    // close completely while the holder never answers: orphaned FIN_WAIT_2, which Linux keeps
    // as timewait minisocks and counts in sockstat's `tw`.
    const ORPHANS: usize = 6;
    let _scene = ns.run(move || {
        let scene = build_scene(1, M, K, port, 0);
        for _ in 0..ORPHANS {
            let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            drop(c);
        }
        scene
    });
    let fw2 = (M + ORPHANS) as u64;
    let mut seen = None;
    let ok = wait_until(Duration::from_secs(10), || {
        let c = ns.run(|| {
            SockDiag::new()
                .unwrap()
                .census_exact(&Filter::default())
                .unwrap()
        });
        let done = c.get(State::FinWait2) == fw2 && c.get(State::FinWait1) == 0;
        seen = Some(c);
        done
    });
    let exact = seen.unwrap();
    assert!(ok, "never settled: {exact:?}");
    let fast = ns.run(|| SockDiag::new().unwrap().census(&Filter::default()).unwrap());
    assert_eq!(fast, exact);
    assert_eq!(fast.get(State::TimeWait), K as u64);
    assert_eq!(fast.get(State::FinWait2), fw2);
    assert_eq!(fast.get(State::TimeWait), ns.ss_count("time-wait"));
    assert_eq!(fast.get(State::FinWait2), ns.ss_count("fin-wait-2"));
    // The kernel's own counter really does include the orphaned FIN_WAIT_2 minisocks.
    let tw_counter = ns.run(|| tcpfsm_host::RawCounters::read().unwrap().sockstat().tw);
    assert_eq!(tw_counter, (K + ORPHANS) as u64);
    // Only TIME_WAIT asked for: the subtraction still happens.
    let only_tw = ns.run(|| {
        SockDiag::new()
            .unwrap()
            .census(&Filter::states(StateSet::of(&[State::TimeWait])))
            .unwrap()
    });
    assert_eq!(only_tw.get(State::TimeWait), K as u64);
    assert_eq!(only_tw.total(), K as u64);
}

#[test]
fn snapshot_sums_queued_bytes_without_listener_backlogs() {
    let Some(ns) = Netns::new("snapshot_sums_queued_bytes_without_listener_backlogs") else {
        return;
    };
    // One pair with 1000 bytes the server has not read; the listener's backlog (128, reported
    // in the same field as a send queue) must not count as queued bytes.
    let kept = ns.run(|| {
        use std::io::Write;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        c.write_all(&[7u8; 1000]).unwrap();
        (l, c, s)
    });
    let mut q = None;
    let ok = wait_until(Duration::from_secs(10), || {
        let snap = ns.run(|| {
            snapshot(
                &mut SockDiag::new().unwrap(),
                &SnapshotOptions {
                    fd_usage: false,
                    ..SnapshotOptions::default()
                },
            )
            .unwrap()
        });
        q = snap.queued_bytes;
        q == Some(tcpfsm_observe::QueuedBytes { rx: 1000, tx: 0 })
    });
    assert!(ok, "{q:?}");
    drop(kept);
}
