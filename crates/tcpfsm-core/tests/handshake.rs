//! Simultaneous open (issue 8, defect 8): RFC 9293 §3.5 Figure 8 — two SYNs cross, each side
//! answers with SYN-ACK, and each SYN-ACK completes the handshake it meets, with no extra
//! round trip; every other SYN in SYN_RECEIVED stays under RFC 5961 §4.

mod common;
use common::*;
use tcpfsm_core::{Config, Duration, Event, Instant, SocketHandle, State};
use tcpfsm_wire::Flags;

use State::*;

fn established_at(n: &Net, a_side: bool) -> Option<Instant> {
    n.timed.iter().find_map(|(t, a, e)| match e {
        Event::StateChanged {
            socket: SocketHandle::Conn(_),
            to: Established,
            ..
        } if *a == a_side => Some(*t),
        _ => None,
    })
}

fn simultaneous(cfg: Config) -> Net {
    let mut n = Net::new(cfg.clone(), cfg);
    let t0 = n.now;
    let ca = n.a.connect(t0, addr(A_IP, 5000), addr(B_IP, 6000)).unwrap();
    let cb = n.b.connect(t0, addr(B_IP, 6000), addr(A_IP, 5000)).unwrap();
    n.run_for(Duration::from_millis(200));
    assert_eq!(n.a.state(ca), Some(Established));
    assert_eq!(n.b.state(cb), Some(Established));
    assert_eq!(
        path_of(&n.ev_a, ca),
        [Closed, SynSent, SynReceived, Established]
    );
    assert_eq!(
        path_of(&n.ev_b, cb),
        [Closed, SynSent, SynReceived, Established]
    );
    // Figure 8: SYNs cross at one delay, SYN-ACKs at two; both are ESTABLISHED then.
    let two_delays = t0 + n.delay * 2;
    assert_eq!(established_at(&n, true), Some(two_delays));
    assert_eq!(established_at(&n, false), Some(two_delays));
    for ep in [&n.a, &n.b] {
        assert_eq!(
            ep.stats()[tcpfsm_core::Counter::TCPChallengeACK],
            0,
            "no challenge ACK for the crossing SYN-ACK"
        );
        assert_eq!(ep.stats()[tcpfsm_core::Counter::TCPSYNChallenge], 0);
        assert_eq!(ep.stats()[tcpfsm_core::Counter::OutRsts], 0);
    }
    // Each side sends its SYN, its SYN-ACK, and nothing else with SYN.
    for from_a in [true, false] {
        let syns: Vec<_> = n
            .segs_from(from_a)
            .iter()
            .filter(|l| l.seg.has(Flags::SYN))
            .map(|l| l.seg.flags)
            .collect();
        assert_eq!(syns, [Flags::SYN, Flags::SYN | Flags::ACK]);
    }
    n
}

#[test]
fn simultaneous_open_completes_in_figure_8_exchange_rfc9293_3_5() {
    simultaneous(plain());
}

#[test]
fn simultaneous_open_with_timestamps_and_sack_completes_rfc9293_3_5() {
    simultaneous(Config::default());
}

#[test]
fn simultaneous_open_carries_data_both_ways() {
    let mut n = Net::new(Config::default(), Config::default());
    let t0 = n.now;
    let ca = n.a.connect(t0, addr(A_IP, 5000), addr(B_IP, 6000)).unwrap();
    let cb = n.b.connect(t0, addr(B_IP, 6000), addr(A_IP, 5000)).unwrap();
    n.run_for(Duration::from_millis(100));
    let (x, y) = (random_bytes(20, 30_000), random_bytes(21, 30_000));
    n.a.send(n.now, ca, &x).unwrap();
    n.b.send(n.now, cb, &y).unwrap();
    n.run_for(Duration::from_secs(2));
    assert!(Net::read_all(&mut n.b, cb).0 == x);
    assert!(Net::read_all(&mut n.a, ca).0 == y);
}

#[test]
fn syn_ack_with_a_wrong_sequence_in_syn_received_is_challenged_rfc5961_4() {
    let mut ep = tcpfsm_core::Endpoint::new(plain(), 1);
    let (me, peer, now) = (addr(B_IP, 5000), addr(A_IP, 6000), Instant::from_micros(1));
    let c = ep.connect(now, me, peer).unwrap();
    let syn = drain(&mut ep, now).remove(0);
    ep.handle_packet(now, &seg(peer, me, Flags::SYN, 700, 0).bytes());
    drain(&mut ep, now);
    assert_eq!(ep.state(c), Some(SynReceived));
    // Right ACK, but not the peer's ISN: not the crossing SYN-ACK of Figure 8.
    let other = seg(peer, me, Flags::SYN | Flags::ACK, 750, syn.seq + 1);
    ep.handle_packet(now, &other.bytes());
    let out = drain(&mut ep, now);
    assert_eq!(ep.state(c), Some(SynReceived), "{out:?}");
    assert!(out.iter().all(|o| o.is(Flags::ACK)), "{out:?}");
    // The real one completes it.
    let real = seg(peer, me, Flags::SYN | Flags::ACK, 700, syn.seq + 1);
    ep.handle_packet(now, &real.bytes());
    assert_eq!(ep.state(c), Some(Established));
}

#[test]
fn crossing_syn_ack_window_is_not_scaled_rfc7323_2_2() {
    let cfg = Config {
        delayed_ack: None,
        ..Config::default()
    };
    let mut ep = tcpfsm_core::Endpoint::new(cfg, 1);
    let (me, peer, now) = (addr(B_IP, 5000), addr(A_IP, 6000), Instant::from_micros(1));
    let c = ep.connect(now, me, peer).unwrap();
    let syn = drain(&mut ep, now).remove(0);
    // The peer's SYN crosses ours; it offers window scaling with a shift of 7.
    let mut theirs = seg(peer, me, Flags::SYN, 700, 0);
    theirs.options.mss = Some(1460);
    theirs.options.window_scale = Some(7);
    ep.handle_packet(now, &theirs.bytes());
    drain(&mut ep, now);
    // Its SYN-ACK offers 1000 bytes: unscaled, because it is a SYN segment.
    let mut synack = seg(peer, me, Flags::SYN | Flags::ACK, 700, syn.seq + 1);
    synack.window = 1000;
    synack.options.mss = Some(1460);
    synack.options.window_scale = Some(7);
    ep.handle_packet(now, &synack.bytes());
    assert_eq!(ep.state(c), Some(Established));
    assert_eq!(ep.info(c).unwrap().snd_wnd, 1000);
    ep.send(now, c, &random_bytes(1, 10_000)).unwrap();
    let sent: usize = drain(&mut ep, now).iter().map(|o| o.payload.len()).sum();
    assert!(sent <= 1000, "{sent} bytes into a 1000-byte window");
}
