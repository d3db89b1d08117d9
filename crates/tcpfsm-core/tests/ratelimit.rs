//! RFC 5961 §7 (issue 8, defect 5): the ACKs a blind attacker can provoke are limited per
//! connection (Linux `tcp_invalid_ratelimit`, 500 ms) and endpoint-wide (Linux
//! `tcp_challenge_ack_limit`), both configurable, and every ACK held back is counted.

mod common;
use common::*;
use tcpfsm_core::{Config, Duration, Endpoint, Instant, State, TxKind};
use tcpfsm_wire::Flags;

const ACK: Flags = Flags::ACK;
const RST: Flags = Flags::RST;

/// Sends `make(i)` every 10 ms for 10 s; returns the ACKs the endpoint answered with, and
/// when.
fn flood(
    s: &mut Scripted,
    mut make: impl FnMut(&Scripted, u32) -> Seg,
) -> Vec<(Seg, TxKind, Instant)> {
    let mut acks = Vec::new();
    for i in 0..1000 {
        let sg = make(s, i);
        s.ep.handle_packet(s.now, &sg.bytes());
        let now = s.now;
        acks.extend(
            drain_kinds(&mut s.ep, s.now)
                .into_iter()
                .map(|(o, k)| (o, k, now)),
        );
        s.now += Duration::from_millis(10);
    }
    acks
}

#[test]
fn challenge_acks_are_limited_per_connection_rfc5961_7() {
    let mut s = Scripted::server(plain(), PeerOpts::default());
    // In-window RSTs that are not exact: each deserves a challenge ACK (RFC 5961 §3.2).
    let acks = flood(&mut s, |s, i| s.seg(RST, s.p + 1 + i, 0, &[]));
    assert_eq!(s.ep.state(s.conn), Some(State::Established));
    let n = acks.len() as u64;
    assert!(
        acks.iter().all(|(_, k, _)| *k == TxKind::ChallengeAck),
        "{acks:?}"
    );
    // One per 500 ms over 10 s.
    assert!((19..=21).contains(&n), "{n} challenge ACKs in 10 s");
    let st = s.ep.stats();
    assert_eq!(st[tcpfsm_core::Counter::TCPChallengeACK], n);
    assert_eq!(st[tcpfsm_core::Counter::TCPACKSkippedChallenge], 1000 - n);
}

#[test]
fn out_of_window_acks_are_limited_per_connection_rfc5961_7() {
    let mut s = Scripted::server(plain(), PeerOpts::default());
    let acks = flood(&mut s, |s, i| {
        s.seg(ACK, s.p.wrapping_add(1 << 30).wrapping_add(i), s.y, b"x")
    });
    let n = acks.len() as u64;
    assert!((19..=21).contains(&n), "{n} duplicate ACKs in 10 s");
    assert_eq!(
        s.ep.stats()[tcpfsm_core::Counter::TCPACKSkippedSeq],
        1000 - n
    );
    let mut b = [0u8; 4];
    assert_eq!(
        s.ep.recv(s.now, s.conn, &mut b),
        Ok(None),
        "nothing injected"
    );
}

#[test]
fn acks_of_unsent_data_are_limited_per_connection_rfc5961_5_2() {
    let mut s = Scripted::server(plain(), PeerOpts::default());
    let acks = flood(&mut s, |s, i| s.seg(ACK, s.p, s.y + 10_000 + i, b"y"));
    let n = acks.len() as u64;
    assert!((19..=21).contains(&n), "{n} ACKs in 10 s");
    let mut b = [0u8; 4];
    assert_eq!(s.ep.recv(s.now, s.conn, &mut b), Ok(None));
}

#[test]
fn the_per_connection_interval_is_a_knob() {
    let cfg = Config {
        invalid_ratelimit: Duration::from_millis(100),
        ..plain()
    };
    let mut s = Scripted::server(cfg, PeerOpts::default());
    let acks = flood(&mut s, |s, i| s.seg(RST, s.p + 1 + i, 0, &[]));
    let n = acks.len();
    assert!(
        (99..=101).contains(&n),
        "{n} challenge ACKs with a 100 ms limit"
    );
}

#[test]
fn challenge_acks_are_limited_endpoint_wide_rfc5961_7() {
    let cfg = Config {
        challenge_ack_limit: 20,
        ..plain()
    };
    let mut ep = Endpoint::new(cfg, 3);
    let mut now = Instant::from_micros(100_000_000);
    let me = addr(B_IP, 80);
    let l = ep.listen(now, me, 1024).unwrap();
    // 300 established connections, each with its own peer.
    let mut peers = Vec::new();
    for i in 0..300u16 {
        let peer = addr(A_IP, 20_000 + i);
        ep.handle_packet(now, &seg(peer, me, Flags::SYN, 1000, 0).bytes());
        let synack = drain(&mut ep, now).remove(0);
        ep.handle_packet(now, &seg(peer, me, ACK, 1001, synack.seq + 1).bytes());
        ep.accept(now, l).unwrap().unwrap();
        peers.push(peer);
    }
    drain(&mut ep, now);
    // Within one second, one in-window RST for each: the per-connection limit allows each
    // one ACK, the endpoint-wide budget (limit/2 ..= 3·limit/2 per second) far fewer.
    now = Instant::from_micros(200_000_000);
    let mut acks = 0u64;
    for &peer in &peers {
        ep.handle_packet(now, &seg(peer, me, RST, 1500, 0).bytes());
        acks += drain(&mut ep, now).len() as u64;
        now += Duration::from_millis(1);
    }
    assert!(
        (10..=30).contains(&acks),
        "{acks} challenge ACKs in one second"
    );
    let st = ep.stats();
    assert_eq!(st[tcpfsm_core::Counter::TCPChallengeACK], acks);
    assert_eq!(
        st[tcpfsm_core::Counter::TcpfsmChallengeACKLimited],
        300 - acks
    );
    assert_eq!(ep.census().get(State::Established), 300);
    // The next second brings a new budget.
    now = Instant::from_micros(202_000_000);
    ep.handle_packet(now, &seg(peers[0], me, RST, 1500, 0).bytes());
    assert_eq!(drain(&mut ep, now).len(), 1);
}

#[test]
fn time_wait_acks_are_limited_to_one_per_interval_rfc5961_7() {
    let mut s = Scripted::server(plain(), PeerOpts::default());
    s.ep.close(s.now, s.conn).unwrap();
    s.drain();
    let fin = s.seg(Flags::FIN | ACK, s.p, s.y, &[]);
    s.inject(fin);
    s.p += 1;
    assert_eq!(s.ep.census().get(State::TimeWait), 1);
    // Out-of-window segments and in-window RSTs each deserve an ACK from TIME_WAIT.
    let acks = flood(&mut s, |s, i| {
        if i % 2 == 0 {
            s.seg(ACK, s.p.wrapping_add(1 << 30), s.y, b"z")
        } else {
            s.seg(RST, s.p + 1 + i, 0, &[])
        }
    });
    assert_eq!(s.ep.census().get(State::TimeWait), 1);
    let gaps: Vec<u128> = acks
        .windows(2)
        .map(|w| (w[1].2 - w[0].2).as_millis())
        .collect();
    // Linux: at most one per tcp_invalid_ratelimit (500 ms), so 21 in 10 s.
    assert!(
        acks.len() <= 21 && gaps.iter().all(|&g| g >= 500),
        "{} ACKs from one TIME_WAIT record in 10 s, gaps {gaps:?} ms",
        acks.len()
    );
}

#[test]
fn syn_challenge_is_counted_for_an_established_connection_linux_tcpsynchallenge() {
    let mut s = Scripted::server(plain(), PeerOpts::default());
    let syn = s.seg(Flags::SYN, s.p + 10, 0, &[]);
    let out = s.inject(syn);
    assert_eq!(out.len(), 1);
    assert_eq!(s.ep.stats()[tcpfsm_core::Counter::TCPChallengeACK], 1);
    assert_eq!(s.ep.stats()[tcpfsm_core::Counter::TCPSYNChallenge], 1);
}
