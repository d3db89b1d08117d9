//! A connection whose peer has vanished must not wait forever when the application asked to
//! be told (SO_KEEPALIVE): keep-alive probing (RFC 1122 §4.2.3.6) in every synchronized
//! state where nothing is outstanding, as Linux's `tcp_keepalive_timer` does — half-closed
//! connections included.

mod common;
use common::*;
use tcpfsm_core::{Config, ConnError, Duration, RecvError, State, TxKind};
use tcpfsm_wire::Flags;

fn keepalive_cfg() -> Config {
    Config {
        keepalive: Some(Duration::from_secs(100)),
        keepalive_interval: Duration::from_secs(10),
        keepalive_probes: 3,
        ..plain()
    }
}

#[test]
fn keepalive_detects_a_vanished_peer_in_close_wait_rfc1122_4_2_3_6() {
    let mut s = Scripted::server(keepalive_cfg(), PeerOpts::default());
    let fin = s.seg(Flags::FIN | Flags::ACK, s.p, s.y, &[]);
    s.inject(fin);
    assert_eq!(s.ep.state(s.conn), Some(State::CloseWait));
    let probes = s.count_sent(Duration::from_secs(300), TxKind::KeepAlive);
    assert_eq!(probes, 3);
    assert_eq!(s.ep.state(s.conn), Some(State::Closed));
}

#[test]
fn keepalive_detects_a_vanished_peer_while_half_closed_in_fin_wait_2() {
    let mut s = Scripted::server(keepalive_cfg(), PeerOpts::default());
    // The application shuts down writing and waits for the rest of the peer's stream.
    s.ep.shutdown_write(s.now, s.conn).unwrap();
    let fin = s.drain();
    assert!(fin.iter().any(|o| o.has(Flags::FIN)));
    s.ack();
    assert_eq!(s.ep.state(s.conn), Some(State::FinWait2));
    // The peer vanishes (its orphan gave up, or it crashed): nothing ever arrives again.
    let probes = s.count_sent(Duration::from_secs(600), TxKind::KeepAlive);
    assert_eq!(probes, 3, "keep-alive probes in FIN_WAIT_2");
    let mut b = [0u8; 1];
    assert_eq!(
        s.ep.recv(s.now, s.conn, &mut b),
        Err(RecvError::Conn(ConnError::TimedOut)),
        "the application learns the peer is gone"
    );
}

#[test]
fn keepalive_give_up_sends_rst_ack_at_snd_nxt_linux_tcp_keepalive_timer() {
    let mut s = Scripted::server(keepalive_cfg(), PeerOpts::default());
    s.data(b"hello");
    s.advance(Duration::from_secs(1));
    // The peer goes silent; after 3 unanswered probes Linux's tcp_keepalive_timer calls
    // tcp_send_active_reset (RST|ACK, SEQ=SND.NXT, ACK=RCV.NXT) before reporting ETIMEDOUT,
    // so a peer that was only cut off learns the connection is gone.
    let sent = s.advance(Duration::from_secs(300));
    let probes = sent
        .iter()
        .filter(|(_, o)| o.payload.is_empty() && !o.has(Flags::RST))
        .count();
    assert_eq!(probes, 3, "{sent:?}");
    let rsts: Vec<&Seg> = sent
        .iter()
        .map(|(_, o)| o)
        .filter(|o| o.has(Flags::RST))
        .collect();
    assert_eq!(rsts.len(), 1, "one reset on give-up: {sent:?}");
    let rst = rsts[0];
    assert!(rst.is(Flags::RST | Flags::ACK), "RST|ACK: {rst:?}");
    assert_eq!(rst.seq, s.y, "SEQ = SND.NXT");
    assert_eq!(rst.ack, s.p, "ACK = RCV.NXT");
    assert_eq!(s.ep.state(s.conn), Some(State::Closed));
    assert_eq!(s.ep.take_error(s.conn), Ok(Some(ConnError::TimedOut)));
}
