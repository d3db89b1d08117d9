//! Whole-connection scenarios between two of our endpoints (RFC 9293 §3.5, §3.6).

mod common;
use common::*;
use tcpfsm_core::{Cause, CloseReason, Config, Duration, Event, State};
use tcpfsm_wire::Flags;

use State::*;

#[test]
fn three_way_handshake_syn_synack_ack() {
    let mut n = Net::default_pair();
    let (c, s) = n.establish();
    let segs: Vec<_> = n.log.iter().map(|l| (l.from_a, l.seg.flags)).collect();
    assert_eq!(
        segs[..3],
        [
            (true, Flags::SYN),
            (false, Flags::SYN | Flags::ACK),
            (true, Flags::ACK)
        ]
    );
    assert_eq!(path_of(&n.ev_a, c), vec![Closed, SynSent, Established]);
    assert_eq!(path_of(&n.ev_b, s), vec![Listen, SynReceived, Established]);
    assert_eq!(n.a.stats()[tcpfsm_core::Counter::ActiveOpens], 1);
    assert_eq!(n.b.stats()[tcpfsm_core::Counter::PassiveOpens], 1);
    assert_eq!(n.a.stats()[tcpfsm_core::Counter::CurrEstab], 1);
}

#[test]
fn syn_carries_mss_wscale_sack_and_timestamps() {
    let mut n = Net::default_pair();
    n.establish();
    let syn = &n.log[0].seg;
    assert_eq!(syn.options.mss, Some(1460));
    assert!(syn.options.window_scale.is_some());
    assert!(syn.options.sack_permitted);
    assert!(syn.options.timestamps.is_some());
    let synack = &n.log[1].seg;
    assert_eq!(synack.ack, syn.seq.wrapping_add(1));
    assert_eq!(
        synack.options.timestamps.unwrap().tsecr,
        syn.options.timestamps.unwrap().tsval
    );
}

#[test]
fn data_flows_both_ways_in_order() {
    let mut n = Net::default_pair();
    let (c, s) = n.establish();
    let msg: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    for _ in 0..200 {
        if sent < msg.len() {
            sent += n.a.send(n.now, c, &msg[sent..]).unwrap_or(0);
        }
        n.run_for(Duration::from_millis(50));
        got.extend(Net::read_all(&mut n.b, s).0);
        if got.len() == msg.len() {
            break;
        }
    }
    assert_eq!(got, msg);
    n.b.send(n.now, s, b"pong").unwrap();
    n.run();
    assert_eq!(Net::read_all(&mut n.a, c).0, b"pong");
}

#[test]
fn client_close_active_and_passive_paths() {
    let mut n = Net::default_pair();
    let (c, s) = n.establish();
    n.a.close(n.now, c).unwrap();
    n.run();
    assert_eq!(n.b.state(s), Some(CloseWait));
    let (_, eof) = Net::read_all(&mut n.b, s);
    assert!(eof, "server reads end-of-stream after the client's FIN");
    n.b.close(n.now, s).unwrap();
    n.run();
    assert_eq!(
        path_of(&n.ev_a, c),
        vec![Closed, SynSent, Established, FinWait1, FinWait2, TimeWait]
    );
    assert_eq!(
        path_of(&n.ev_b, s),
        vec![Listen, SynReceived, Established, CloseWait, LastAck, Closed]
    );
    assert_eq!(n.a.census().get(TimeWait), 1);
    // 2×MSL later the TIME_WAIT record is gone.
    n.run_for(Duration::from_secs(61));
    assert_eq!(n.a.census().get(TimeWait), 0);
    let last = n.ev_a.iter().rev().find_map(|e| match e {
        Event::StateChanged {
            from, to, cause, ..
        } => Some((*from, *to, *cause)),
        _ => None,
    });
    assert_eq!(last, Some((TimeWait, Closed, Cause::TimeWaitExpired)));
}

#[test]
fn time_wait_lasts_two_msl() {
    let cfg = Config {
        msl: Duration::from_secs(5),
        ..Config::default()
    };
    let mut n = Net::new(cfg.clone(), cfg);
    let (c, s) = n.establish();
    n.a.close(n.now, c).unwrap();
    n.run();
    n.b.close(n.now, s).unwrap();
    n.run_for(Duration::from_millis(100));
    assert_eq!(n.a.census().get(TimeWait), 1);
    n.run_for(Duration::from_millis(9_800));
    assert_eq!(
        n.a.census().get(TimeWait),
        1,
        "still in TIME_WAIT just before 2×MSL"
    );
    n.run_for(Duration::from_millis(300));
    assert_eq!(n.a.census().get(TimeWait), 0);
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let mut n = Net::default_pair();
    let (c, s) = n.establish();
    n.a.close(n.now, c).unwrap();
    n.b.close(n.now, s).unwrap();
    n.run();
    assert_eq!(
        path_of(&n.ev_a, c),
        vec![Closed, SynSent, Established, FinWait1, Closing, TimeWait]
    );
    assert_eq!(
        path_of(&n.ev_b, s),
        vec![
            Listen,
            SynReceived,
            Established,
            FinWait1,
            Closing,
            TimeWait
        ]
    );
}

#[test]
fn simultaneous_open_syn_sent_to_syn_received() {
    let mut n = Net::default_pair();
    let c =
        n.a.connect(n.now, addr(A_IP, 5000), addr(B_IP, 6000))
            .unwrap();
    let s =
        n.b.connect(n.now, addr(B_IP, 6000), addr(A_IP, 5000))
            .unwrap();
    n.run();
    assert_eq!(
        path_of(&n.ev_a, c),
        vec![Closed, SynSent, SynReceived, Established]
    );
    assert_eq!(
        path_of(&n.ev_b, s),
        vec![Closed, SynSent, SynReceived, Established]
    );
    n.a.send(n.now, c, b"hi").unwrap();
    n.run();
    assert_eq!(Net::read_all(&mut n.b, s).0, b"hi");
}

#[test]
fn lost_final_ack_last_ack_retransmits_and_time_wait_reacks() {
    let mut n = Net::default_pair();
    let (c, s) = n.establish();
    n.a.close(n.now, c).unwrap();
    n.run();
    n.b.close(n.now, s).unwrap();
    // Drop A's first ACK of B's FIN.
    let mut dropped = false;
    n.drop_when(move |from_a, seg| {
        if from_a && seg.is(Flags::ACK) && !dropped {
            dropped = true;
            return true;
        }
        false
    });
    n.run_for(Duration::from_secs(5));
    let fins_from_b = n
        .segs_from(false)
        .iter()
        .filter(|l| l.seg.has(Flags::FIN))
        .count();
    assert_eq!(fins_from_b, 2, "LAST_ACK retransmits its FIN once");
    assert!(n.log.iter().any(|l| l.dropped));
    assert_eq!(
        path_of(&n.ev_b, s),
        vec![Listen, SynReceived, Established, CloseWait, LastAck, Closed]
    );
    assert_eq!(n.a.census().get(TimeWait), 1);
}

#[test]
fn abort_sends_rst_and_skips_time_wait() {
    let mut n = Net::default_pair();
    let (c, s) = n.establish();
    n.a.send(n.now, c, &[1u8; 10_000]).unwrap();
    n.a.abort(n.now, c).unwrap();
    n.run();
    assert!(n.segs_from(true).iter().any(|l| l.seg.has(Flags::RST)));
    assert_eq!(path_of(&n.ev_a, c).last(), Some(&Closed));
    assert_eq!(n.a.census().get(TimeWait), 0);
    assert_eq!(n.b.state(s), Some(Closed));
    let mut buf = [0u8; 10];
    assert_eq!(
        n.b.recv(n.now, s, &mut buf),
        Err(tcpfsm_core::RecvError::Conn(tcpfsm_core::ConnError::Reset))
    );
    assert!(n.ev_b.iter().any(|e| matches!(
        e,
        Event::Closed {
            reason: CloseReason::Reset,
            ..
        }
    )));
}

#[test]
fn half_close_keeps_reading_after_shutdown_write() {
    let mut n = Net::default_pair();
    let (c, s) = n.establish();
    n.a.send(n.now, c, b"request").unwrap();
    n.a.shutdown_write(n.now, c).unwrap();
    n.run();
    assert_eq!(n.a.state(c), Some(FinWait2));
    let (req, eof) = Net::read_all(&mut n.b, s);
    assert_eq!(req, b"request");
    assert!(eof);
    n.b.send(n.now, s, b"response").unwrap();
    n.b.close(n.now, s).unwrap();
    n.run();
    let (resp, eof) = Net::read_all(&mut n.a, c);
    assert_eq!(resp, b"response");
    assert!(eof);
    assert_eq!(n.a.state(c), Some(TimeWait));
}

#[test]
fn connect_to_closed_port_is_refused() {
    let mut n = Net::default_pair();
    let c = n.a.connect(n.now, addr(A_IP, 0), addr(B_IP, 81)).unwrap();
    n.run();
    assert!(n
        .segs_from(false)
        .iter()
        .any(|l| l.seg.is(Flags::RST | Flags::ACK)));
    assert_eq!(path_of(&n.ev_a, c), vec![Closed, SynSent, Closed]);
    let mut buf = [0u8; 4];
    assert_eq!(
        n.a.recv(n.now, c, &mut buf),
        Err(tcpfsm_core::RecvError::Conn(
            tcpfsm_core::ConnError::Refused
        ))
    );
    assert_eq!(n.a.stats()[tcpfsm_core::Counter::AttemptFails], 1);
}

#[test]
fn syn_retransmits_with_exponential_backoff_then_gives_up() {
    let cfg = Config {
        syn_retries: 3,
        ..Config::default()
    };
    let mut n = Net::new(cfg, Config::default());
    n.drop_when(|from_a, _| from_a);
    let c = n.a.connect(n.now, addr(A_IP, 0), addr(B_IP, 80)).unwrap();
    let t0 = n.now;
    n.run_for(Duration::from_secs(30));
    let times: Vec<u64> = n
        .segs_from(true)
        .iter()
        .filter(|l| l.seg.has(Flags::SYN))
        .map(|l| (l.t - t0).as_millis() as u64)
        .collect();
    assert_eq!(times, vec![0, 1000, 3000, 7000]);
    assert_eq!(n.a.state(c), Some(Closed));
    let mut buf = [0u8; 4];
    assert_eq!(
        n.a.recv(n.now, c, &mut buf),
        Err(tcpfsm_core::RecvError::Conn(
            tcpfsm_core::ConnError::TimedOut
        ))
    );
}

#[test]
fn close_wait_never_times_out_but_orphan_fin_wait_2_does() {
    let cfg = Config {
        fin_timeout: Duration::from_secs(60),
        ..Config::default()
    };
    let mut n = Net::new(cfg.clone(), cfg);
    let (c, s) = n.establish();
    n.a.close(n.now, c).unwrap();
    n.run_for(Duration::from_secs(59));
    assert_eq!(n.a.state(c), Some(FinWait2));
    n.run_for(Duration::from_secs(2));
    assert_eq!(
        n.a.state(c),
        None,
        "orphaned FIN_WAIT_2 is gone after fin_timeout"
    );
    assert!(n.ev_a.iter().any(|e| matches!(
        e,
        Event::StateChanged {
            from: FinWait2,
            to: Closed,
            cause: Cause::FinWait2Timeout,
            ..
        }
    )));
    n.run_for(Duration::from_secs(3600));
    assert_eq!(n.b.state(s), Some(CloseWait), "CLOSE_WAIT has no timeout");
}

#[test]
fn closing_a_handle_already_in_time_wait_frees_it() {
    let mut n = Net::default_pair();
    let (c, s) = n.establish();
    n.a.shutdown_write(n.now, c).unwrap();
    n.run();
    n.b.close(n.now, s).unwrap();
    n.run();
    assert_eq!(
        n.a.state(c),
        Some(TimeWait),
        "the app still holds the handle"
    );
    let (_, eof) = Net::read_all(&mut n.a, c);
    assert!(eof);
    n.a.close(n.now, c).unwrap();
    assert_eq!(n.a.state(c), None, "the handle is released at once");
    assert_eq!(
        n.a.census().get(TimeWait),
        1,
        "the TIME_WAIT record lives on"
    );
    n.run_for(Duration::from_secs(61));
    assert_eq!(n.a.census().get(TimeWait), 0);
}

#[test]
fn time_wait_answers_an_in_window_ack_off_rcv_nxt_linux_tcp_timewait_state_process() {
    let mut s = Scripted::server(plain(), PeerOpts::default());
    s.ep.close(s.now, s.conn).unwrap();
    s.drain();
    let fin = s.seg(Flags::FIN | Flags::ACK, s.p, s.y, &[]);
    s.inject(fin);
    s.p += 1;
    assert_eq!(s.ep.census().get(TimeWait), 1);
    s.now += Duration::from_secs(1);
    // A bare ACK at RCV.NXT: taken silently.
    let exact = s.seg(Flags::ACK, s.p, s.y, &[]);
    assert!(s.inject(exact).is_empty());
    // An ACK inside the window but not at RCV.NXT: RFC 9293 takes it silently too; Linux
    // answers everything not exactly at RCV.NXT with an ACK of where the connection ended.
    let off = s.seg(Flags::ACK, s.p + 100, s.y, &[]);
    let out = s.inject(off);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].is(Flags::ACK));
    assert_eq!((out[0].seq, out[0].ack), (s.y, s.p));
    assert_eq!(s.ep.census().get(TimeWait), 1);
}
