//! One test per rule, named after it. Segments are hand-built real bytes (see `common`).

mod common;
use common::server::{ts_handshake, Server};
use common::*;
use std::net::SocketAddr;
use tcpfsm_core::{
    Cause, Config, ConnError, ConnectError, Duration, Endpoint, Event, Instant, RecvError, State,
    SynCookies,
};
use tcpfsm_wire::Flags;

use State::*;

const ACK: Flags = Flags::ACK;
const FIN: Flags = Flags::FIN;
const RST: Flags = Flags::RST;
const SYN: Flags = Flags::SYN;
const PSH: Flags = Flags::PSH;

#[test]
fn rst_with_exact_sequence_resets_established() {
    let mut s = Server::new(plain());
    let out = s.send(RST, s.p, 0, b"");
    assert!(out.is_empty());
    assert_eq!(s.ep.state(s.conn), Some(Closed));
    assert_eq!(s.ep.stats()[tcpfsm_core::Counter::EstabResets], 1);
}

#[test]
fn rst_in_window_but_not_exact_gets_challenge_ack_rfc5961_3_2() {
    let mut s = Server::new(plain());
    let out = s.send(RST, s.p + 100, 0, b"");
    assert_eq!(out.len(), 1);
    assert!(out[0].is(ACK));
    assert_eq!(out[0].ack, s.p);
    assert_eq!(s.ep.state(s.conn), Some(Established));
    assert_eq!(s.ep.stats()[tcpfsm_core::Counter::TCPChallengeACK], 1);
}

#[test]
fn rst_outside_window_is_dropped_silently() {
    let mut s = Server::new(plain());
    let out = s.send(RST, s.p.wrapping_add(1 << 30), 0, b"");
    assert!(out.is_empty());
    assert_eq!(s.ep.state(s.conn), Some(Established));
}

#[test]
fn syn_in_established_gets_challenge_ack_rfc5961_4() {
    let mut s = Server::new(plain());
    let out = s.send(SYN, s.p + 5, 0, b"");
    assert_eq!(out.len(), 1);
    assert!(out[0].is(ACK));
    assert_eq!(s.ep.state(s.conn), Some(Established));
}

#[test]
fn ack_of_unsent_data_is_acked_and_dropped() {
    let mut s = Server::new(plain());
    let out = s.send(ACK | PSH, s.p, s.y + 1000, b"data");
    assert_eq!(out.len(), 1);
    assert!(out[0].is(ACK));
    assert_eq!(
        out[0].ack, s.p,
        "the data of a segment with a bad ACK is not taken"
    );
}

#[test]
fn segment_outside_receive_window_is_acked_not_accepted() {
    let mut s = Server::new(plain());
    let out = s.send(ACK | PSH, s.p.wrapping_add(10_000_000), s.y, b"x");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, s.p);
    let mut buf = [0u8; 8];
    assert_eq!(s.ep.recv(s.now, s.conn, &mut buf), Ok(None));
}

#[test]
fn out_of_order_data_is_held_and_delivered_when_hole_fills() {
    let mut s = Server::new(plain());
    let out = s.send(ACK, s.p + 5, s.y, b"world");
    assert_eq!(out[0].ack, s.p, "duplicate ACK for the hole");
    let out = s.send(ACK, s.p, s.y, b"hello");
    assert_eq!(out[0].ack, s.p + 10, "cumulative ACK covers both");
    let mut buf = [0u8; 16];
    let n = s.ep.recv(s.now, s.conn, &mut buf).unwrap().unwrap();
    assert_eq!(&buf[..n], b"helloworld");
}

#[test]
fn sack_blocks_describe_out_of_order_data_rfc2018() {
    let mut ep = Endpoint::new(
        Config {
            sack: true,
            ..plain()
        },
        3,
    );
    let (me, peer, now) = (addr(B_IP, 80), addr(A_IP, 40_000), Instant::from_micros(1));
    let l = ep.listen(now, me, 4).unwrap();
    let mut syn = seg(peer, me, SYN, 500, 0);
    syn.options.sack_permitted = true;
    ep.handle_packet(now, &syn.bytes());
    let synack = drain(&mut ep, now).remove(0);
    assert!(synack.options.sack_permitted);
    ep.handle_packet(now, &seg(peer, me, ACK, 501, synack.seq + 1).bytes());
    ep.accept(now, l).unwrap().unwrap();
    let mut d = seg(peer, me, ACK, 511, synack.seq + 1);
    d.payload = vec![7; 10];
    ep.handle_packet(now, &d.bytes());
    let out = drain(&mut ep, now);
    let block = out[0].options.sack_blocks[0].expect("a SACK block");
    assert_eq!((block.left.0, block.right.0), (511, 521));
}

#[test]
fn fin_wait_1_fin_without_ack_of_ours_goes_closing_then_time_wait() {
    let mut s = Server::new(plain());
    s.ep.close(s.now, s.conn).unwrap();
    let fin = drain(&mut s.ep, s.now).remove(0);
    assert!(fin.has(FIN));
    let out = s.send(FIN | ACK, s.p, fin.seq, b"");
    assert!(out[0].is(ACK));
    assert_eq!(s.ep.state(s.conn), Some(Closing));
    s.send(ACK, s.p + 1, fin.seq + 1, b"");
    assert_eq!(s.ep.census().get(TimeWait), 1);
}

#[test]
fn fin_wait_1_fin_ack_goes_to_time_wait_directly() {
    let mut s = Server::new(plain());
    s.ep.close(s.now, s.conn).unwrap();
    let fin = drain(&mut s.ep, s.now).remove(0);
    events(&mut s.ep);
    s.send(FIN | ACK, s.p, fin.seq + 1, b"");
    let evs = events(&mut s.ep);
    assert_eq!(path_of(&evs, s.conn), vec![FinWait1, TimeWait]);
    let cause = evs.iter().find_map(|e| match e {
        Event::StateChanged { cause, .. } => Some(*cause),
        _ => None,
    });
    assert_eq!(cause, Some(Cause::FinAndAckReceived));
}

#[test]
fn paws_drops_segment_with_old_timestamp_rfc7323_5() {
    let cfg = Config {
        delayed_ack: None,
        ..Config::default()
    };
    let h = ts_handshake(cfg);
    let (mut ep, me, peer, now, c, y) = (h.ep, h.me, h.peer, h.now, h.conn, h.y);
    let mut d = with_ts(seg(peer, me, ACK, 101, y), 500, 1);
    d.payload = b"stale".to_vec();
    ep.handle_packet(now, &d.bytes());
    let out = drain(&mut ep, now);
    assert!(out[0].is(ACK));
    let mut buf = [0u8; 8];
    assert_eq!(ep.recv(now, c, &mut buf), Ok(None));
    assert_eq!(ep.stats()[tcpfsm_core::Counter::PAWSEstab], 1);
}

fn flood_server(
    cookies: SynCookies,
) -> (Endpoint, SocketAddr, Instant, tcpfsm_core::ListenerHandle) {
    let cfg = Config {
        syncookies: cookies,
        max_syn_backlog: 8,
        timestamps: false,
        ..Config::default()
    };
    let mut ep = Endpoint::new(cfg, 11);
    let me = addr(B_IP, 80);
    let now = Instant::from_micros(1_000_000);
    let l = ep.listen(now, me, 128).unwrap();
    for i in 0..50u16 {
        let spoofed = addr("192.0.2.9", 1000 + i);
        ep.handle_packet(now, &seg(spoofed, me, SYN, 7 + i as u32, 0).bytes());
    }
    drain(&mut ep, now);
    (ep, me, now, l)
}

#[test]
fn syn_queue_overflow_without_cookies_drops_syns() {
    let (mut ep, me, now, _) = flood_server(SynCookies::Off);
    assert_eq!(ep.census().get(SynReceived), 8);
    assert_eq!(ep.stats()[tcpfsm_core::Counter::ListenDrops], 42);
    let real = addr(A_IP, 40_000);
    ep.handle_packet(now, &seg(real, me, SYN, 1, 0).bytes());
    assert!(
        drain(&mut ep, now).is_empty(),
        "a real client's SYN is dropped too"
    );
}

#[test]
fn syn_cookies_answer_when_syn_queue_overflows_and_accept_on_ack() {
    let (mut ep, me, now, l) = flood_server(SynCookies::OnOverflow);
    assert_eq!(ep.census().get(SynReceived), 8);
    assert_eq!(ep.stats()[tcpfsm_core::Counter::SyncookiesSent], 42);
    let real = addr(A_IP, 40_000);
    ep.handle_packet(now, &seg(real, me, SYN, 1, 0).bytes());
    let synack = drain(&mut ep, now).remove(0);
    assert!(synack.is(SYN | ACK));
    assert_eq!(
        ep.census().get(SynReceived),
        8,
        "no state kept for a cookie"
    );
    let mut ack = seg(real, me, ACK | PSH, 2, synack.seq + 1);
    ack.payload = b"GET".to_vec();
    ep.handle_packet(now, &ack.bytes());
    assert_eq!(ep.stats()[tcpfsm_core::Counter::SyncookiesRecv], 1);
    let c = ep.accept(now, l).unwrap().unwrap();
    assert_eq!(ep.state(c), Some(Established));
    let mut buf = [0u8; 8];
    assert_eq!(ep.recv(now, c, &mut buf), Ok(Some(3)));
}

#[test]
fn forged_cookie_ack_gets_rst() {
    let (mut ep, me, now, _) = flood_server(SynCookies::OnOverflow);
    let real = addr(A_IP, 40_001);
    ep.handle_packet(now, &seg(real, me, ACK, 2, 123_456).bytes());
    let out = drain(&mut ep, now);
    assert!(out[0].is(RST));
    assert_eq!(ep.stats()[tcpfsm_core::Counter::SyncookiesFailed], 1);
}

#[test]
fn synack_retransmits_then_half_open_is_dropped() {
    let cfg = Config {
        synack_retries: 2,
        ..plain()
    };
    let mut ep = Endpoint::new(cfg, 1);
    let me = addr(B_IP, 80);
    let peer = addr(A_IP, 40_000);
    let mut now = Instant::from_micros(1_000_000);
    ep.listen(now, me, 16).unwrap();
    ep.handle_packet(now, &seg(peer, me, SYN, 1, 0).bytes());
    assert_eq!(drain(&mut ep, now).len(), 1);
    let mut synacks = vec![];
    for _ in 0..10 {
        now = ep.poll_timeout().unwrap();
        ep.handle_timeout(now);
        let n = drain(&mut ep, now).len();
        if n > 0 {
            synacks.push(now.as_micros() / 1000);
        }
        if ep.census().get(SynReceived) == 0 {
            break;
        }
    }
    assert_eq!(
        synacks,
        vec![2000, 4000],
        "SYN-ACK retransmitted at 1 s then 2 s later"
    );
    assert_eq!(ep.census().get(SynReceived), 0);
    assert_eq!(ep.stats()[tcpfsm_core::Counter::AttemptFails], 1);
}

#[test]
fn full_accept_queue_drops_the_final_ack() {
    let mut ep = Endpoint::new(plain(), 1);
    let me = addr(B_IP, 80);
    let now = Instant::from_micros(1_000_000);
    ep.listen(now, me, 1).unwrap();
    for port in [40_000u16, 40_001] {
        let peer = addr(A_IP, port);
        ep.handle_packet(now, &seg(peer, me, SYN, 1, 0).bytes());
        let synack = drain(&mut ep, now).pop();
        if let Some(sa) = synack {
            ep.handle_packet(now, &seg(peer, me, ACK, 2, sa.seq + 1).bytes());
        }
    }
    assert_eq!(ep.census().get(Established), 1);
    assert_eq!(ep.stats()[tcpfsm_core::Counter::ListenOverflows], 1);
}

#[test]
fn close_with_unread_data_sends_rst_like_linux() {
    let mut s = Server::new(plain());
    s.send(ACK | PSH, s.p, s.y, b"unread");
    s.ep.close(s.now, s.conn).unwrap();
    let out = drain(&mut s.ep, s.now);
    // Linux's form (tcp_send_active_reset): RST|ACK (resets.rs checks SEQ and ACK).
    assert!(out.iter().any(|o| o.is(RST | ACK)));
    assert!(!out.iter().any(|o| o.has(FIN)));
    assert_eq!(s.ep.census().get(TimeWait), 0);
}

#[test]
fn abort_discards_unsent_data_and_sends_rst() {
    let mut s = Server::new(Config {
        initial_cwnd: 1,
        ..plain()
    });
    s.ep.send(s.now, s.conn, &[9u8; 50_000]).unwrap();
    let first = drain(&mut s.ep, s.now);
    assert_eq!(first.len(), 1, "cwnd of one segment");
    s.ep.abort(s.now, s.conn).unwrap();
    let out = drain(&mut s.ep, s.now);
    assert_eq!(out.len(), 1);
    assert!(out[0].is(RST | ACK));
    assert_eq!(
        s.ep.state(s.conn),
        None,
        "an aborted connection is gone at once"
    );
}

#[test]
fn zero_window_is_probed_rfc9293_3_8_6_1() {
    let mut s = Server::new(plain());
    // The peer closes its window.
    s.send(ACK, s.p, s.y, b"");
    let mut z = seg(s.peer, s.me, ACK, s.p, s.y);
    z.window = 0;
    s.ep.handle_packet(s.now, &z.bytes());
    s.ep.send(s.now, s.conn, b"blocked").unwrap();
    assert!(
        drain(&mut s.ep, s.now).is_empty(),
        "nothing goes into a zero window"
    );
    let probe = s.advance(Duration::from_secs(2));
    assert_eq!(probe.len(), 1);
    // Linux's form of the probe: no data, SEQ = SND.UNA - 1, which the peer must answer.
    assert!(probe[0].payload.is_empty());
    assert_eq!(probe[0].seq, s.y.wrapping_sub(1));
}

#[test]
fn three_duplicate_acks_trigger_fast_retransmit_rfc5681() {
    let mut s = Server::new(plain());
    set_nodelay(&mut s.ep, s.now, s.conn);
    s.ep.send(s.now, s.conn, &[1u8; 1460 * 6]).unwrap();
    let out = drain(&mut s.ep, s.now);
    assert_eq!(out.len(), 6);
    let before = s.ep.stats()[tcpfsm_core::Counter::RetransSegs];
    let mut rtx = Vec::new();
    for _ in 0..3 {
        rtx.extend(s.send(ACK, s.p, s.y, b""));
    }
    assert_eq!(s.ep.stats()[tcpfsm_core::Counter::RetransSegs], before + 1);
    assert_eq!(
        rtx.iter()
            .filter(|r| r.seq == s.y && r.payload.len() == 1460)
            .count(),
        1
    );
}

#[test]
fn rto_retransmits_unacked_data_with_backoff_rfc6298() {
    let mut s = Server::new(plain());
    s.ep.send(s.now, s.conn, b"x").unwrap();
    assert_eq!(drain(&mut s.ep, s.now).len(), 1);
    let t0 = s.now;
    let mut at = Vec::new();
    for _ in 0..3 {
        s.now = s.ep.poll_timeout().unwrap();
        s.ep.handle_timeout(s.now);
        if !drain(&mut s.ep, s.now).is_empty() {
            at.push((s.now - t0).as_millis());
        }
    }
    // The handshake's RTT sample (its ACK came at once: tests/rtt.rs) leaves the RTO at its
    // 200 ms minimum; each timeout doubles it (RFC 6298 §5.5).
    assert_eq!(at, vec![200, 600, 1400]);
}

#[test]
fn bad_checksum_is_counted_and_dropped() {
    let mut s = Server::new(plain());
    let mut bytes = seg(s.peer, s.me, ACK, s.p, s.y).bytes();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    s.ep.handle_packet(s.now, &bytes);
    s.ep.handle_packet(s.now, &bytes[..10]);
    assert_eq!(s.ep.stats()[tcpfsm_core::Counter::InCsumErrors], 1);
    assert_eq!(s.ep.stats()[tcpfsm_core::Counter::InErrs], 2);
    assert!(drain(&mut s.ep, s.now).is_empty());
}

#[test]
fn ipv6_connection_works_end_to_end() {
    let mut n = Net::default_pair();
    let l = n.b.listen(n.now, addr("fd00::2", 443), 8).unwrap();
    let c =
        n.a.connect(n.now, addr("fd00::1", 0), addr("fd00::2", 443))
            .unwrap();
    n.run();
    let s = n.b.accept(n.now, l).unwrap().unwrap();
    assert_eq!(
        n.log[0].seg.options.mss,
        Some(1440),
        "IPv6 MSS is 20 bytes smaller"
    );
    n.a.send(n.now, c, b"over v6").unwrap();
    n.run();
    assert_eq!(Net::read_all(&mut n.b, s).0, b"over v6");
}

#[test]
fn connect_rejects_mixed_families_and_port_zero() {
    let mut ep = Endpoint::new(Config::default(), 1);
    let now = Instant::ZERO;
    assert_eq!(
        ep.connect(now, addr(A_IP, 0), addr("fd00::2", 80)),
        Err(ConnectError::InvalidAddr)
    );
    assert_eq!(
        ep.connect(now, addr(A_IP, 0), addr(B_IP, 0)),
        Err(ConnectError::InvalidAddr)
    );
}

#[test]
fn send_after_shutdown_write_is_broken_pipe() {
    let mut s = Server::new(plain());
    s.ep.shutdown_write(s.now, s.conn).unwrap();
    assert_eq!(
        s.ep.send(s.now, s.conn, b"late"),
        Err(tcpfsm_core::SendError::BrokenPipe)
    );
}

#[test]
fn handles_are_invalid_after_close() {
    let mut s = Server::new(plain());
    s.ep.close(s.now, s.conn).unwrap();
    assert_eq!(
        s.ep.send(s.now, s.conn, b"x"),
        Err(tcpfsm_core::SendError::InvalidHandle)
    );
    assert_eq!(s.ep.close(s.now, s.conn), Err(tcpfsm_core::InvalidHandle));
}

#[test]
fn keepalive_probes_an_idle_connection_and_gives_up_rfc1122_4_2_3_6() {
    let cfg = Config {
        keepalive: Some(Duration::from_secs(100)),
        keepalive_interval: Duration::from_secs(10),
        keepalive_probes: 3,
        ..plain()
    };
    let mut s = Server::new(cfg);
    assert!(
        s.advance(Duration::from_secs(99)).is_empty(),
        "no probe before the idle time"
    );
    let probe = s.advance(Duration::from_secs(1));
    assert_eq!(probe.len(), 1);
    assert_eq!(probe[0].seq, s.y - 1, "probe sits one below SND.NXT");
    // An answer restarts the idle wait.
    s.send(ACK, s.p, s.y, b"");
    assert!(s.advance(Duration::from_secs(50)).is_empty());
    // Now the peer is silent: 3 probes 10 s apart, then the connection times out with a
    // reset (Linux tcp_keepalive_timer → tcp_send_active_reset).
    let mut sent = Vec::new();
    for _ in 0..10 {
        let d = s.ep.poll_timeout().unwrap() - s.now;
        sent.extend(s.advance(d));
        if s.ep.state(s.conn) == Some(Closed) {
            break;
        }
    }
    assert_eq!(sent.iter().filter(|o| !o.has(RST)).count(), 3);
    assert!(sent.last().is_some_and(|o| o.is(RST | ACK)), "{sent:?}");
    let mut buf = [0u8; 1];
    assert_eq!(
        s.ep.recv(s.now, s.conn, &mut buf),
        Err(RecvError::Conn(ConnError::TimedOut))
    );
}

#[test]
fn sequence_numbers_wrap_around_2_pow_32() {
    let mut ep = Endpoint::new(plain(), 1);
    let (me, peer, now) = (addr(B_IP, 80), addr(A_IP, 40_000), Instant::from_micros(1));
    let l = ep.listen(now, me, 4).unwrap();
    let isn = u32::MAX - 5;
    ep.handle_packet(now, &seg(peer, me, SYN, isn, 0).bytes());
    let synack = drain(&mut ep, now).remove(0);
    ep.handle_packet(
        now,
        &seg(peer, me, ACK, isn.wrapping_add(1), synack.seq + 1).bytes(),
    );
    let c = ep.accept(now, l).unwrap().unwrap();
    let mut d = seg(peer, me, ACK | PSH, isn.wrapping_add(1), synack.seq + 1);
    d.payload = (0..100u8).collect();
    ep.handle_packet(now, &d.bytes());
    let out = drain(&mut ep, now);
    assert_eq!(out[0].ack, isn.wrapping_add(101), "ACK wrapped past zero");
    let mut buf = [0u8; 200];
    assert_eq!(ep.recv(now, c, &mut buf), Ok(Some(100)));
    assert_eq!(&buf[..100], &(0..100u8).collect::<Vec<_>>()[..]);
}

#[test]
fn active_syn_received_rst_goes_to_closed_not_listen() {
    let mut ep = Endpoint::new(plain(), 1);
    let (me, peer, now) = (addr(B_IP, 5000), addr(A_IP, 6000), Instant::from_micros(1));
    let c = ep.connect(now, me, peer).unwrap();
    let syn = drain(&mut ep, now).remove(0);
    // The peer's SYN crosses ours: simultaneous open.
    ep.handle_packet(now, &seg(peer, me, SYN, 700, 0).bytes());
    let synack = drain(&mut ep, now).remove(0);
    assert!(synack.is(SYN | ACK));
    assert_eq!(synack.seq, syn.seq);
    assert_eq!(ep.state(c), Some(SynReceived));
    ep.handle_packet(now, &seg(peer, me, RST, 701, 0).bytes());
    assert_eq!(ep.state(c), Some(Closed));
    let mut buf = [0u8; 1];
    assert_eq!(
        ep.recv(now, c, &mut buf),
        Err(RecvError::Conn(ConnError::Refused))
    );
}

#[test]
fn ipv4_mapped_ipv6_addresses_are_refused() {
    let mut ep = Endpoint::new(plain(), 1);
    let now = Instant::from_micros(1);
    ep.listen(now, addr("::", 80), 4).unwrap();
    let mapped = addr("::ffff:10.0.0.1", 4000);
    ep.handle_packet(now, &seg(mapped, addr("fd00::2", 80), SYN, 1, 0).bytes());
    assert!(drain(&mut ep, now).is_empty());
    assert_eq!(ep.stats()[tcpfsm_core::Counter::InErrs], 1);
    assert_eq!(
        ep.connect(now, addr("fd00::2", 0), mapped),
        Err(ConnectError::InvalidAddr)
    );
}

/// An IPv6 datagram from and to the IPv4-mapped forms of an IPv4 connection's addresses keys
/// like that connection (the table stores IPv4 addresses mapped), but it is refused all the
/// same: an exact RST over it resets nothing.
#[test]
fn ipv4_mapped_ipv6_segment_does_not_reach_the_ipv4_connection() {
    let mut s = Server::new(plain());
    let mapped = |a: SocketAddr| match a.ip() {
        std::net::IpAddr::V4(v4) => SocketAddr::new(v4.to_ipv6_mapped().into(), a.port()),
        std::net::IpAddr::V6(_) => a,
    };
    let errs = s.ep.stats()[tcpfsm_core::Counter::InErrs];
    let rst = seg(mapped(s.peer), mapped(s.me), RST, s.p, 0);
    s.ep.handle_packet(s.now, &rst.bytes());
    assert_eq!(s.ep.stats()[tcpfsm_core::Counter::InErrs], errs + 1);
    assert_eq!(s.ep.state(s.conn), Some(Established));
    // The same RST over IPv4 does reset it.
    s.ep.handle_packet(s.now, &seg(s.peer, s.me, RST, s.p, 0).bytes());
    assert_eq!(s.ep.state(s.conn), Some(Closed));
}

#[test]
fn window_right_edge_never_moves_left_on_out_of_order_data_rfc9293_3_8_6_2_2() {
    let mut s = Server::new(plain());
    let mut wins = Vec::new();
    for k in 1..=5u32 {
        let out = s.send(ACK, s.p + 1000 * k, s.y, &[0u8; 1000]);
        assert_eq!(out[0].ack, s.p, "duplicate ACK for the hole");
        wins.push(out[0].window);
    }
    assert!(
        wins.windows(2).all(|w| w[0] == w[1]),
        "same window on every duplicate ACK: {wins:?}"
    );
}

#[test]
fn lost_segment_is_fast_retransmitted_between_two_of_our_endpoints() {
    let cfg = Config {
        delayed_ack: None,
        ..Config::default()
    };
    let mut n = Net::new(cfg.clone(), cfg);
    let (c, s) = n.establish();
    set_nodelay(&mut n.a, n.now, c);
    let mut first = true;
    n.drop_when(move |from_a, sg| {
        let hit = from_a && !sg.payload.is_empty() && first;
        if hit {
            first = false;
        }
        hit
    });
    let t0 = n.now;
    n.a.send(n.now, c, &[3u8; 10_000]).unwrap();
    n.run_for(Duration::from_millis(100));
    assert_eq!(Net::read_all(&mut n.b, s).0.len(), 10_000);
    let rtx = n
        .log
        .iter()
        .filter(|l| l.from_a && !l.seg.payload.is_empty() && l.t > t0)
        .filter(|l| l.seg.seq == n.log.iter().find(|x| x.dropped).unwrap().seg.seq && !l.dropped)
        .map(|l| (l.t - t0).as_millis())
        .next();
    assert!(
        rtx.is_some_and(|ms| ms < 50),
        "fast retransmit within an RTT or so, not the RTO: {rtx:?}"
    );
}

#[test]
fn data_far_beyond_the_window_is_not_buffered() {
    let mut s = Server::new(plain());
    let cap = Config::default().recv_buffer as u32;
    // In-window out-of-order data is held; data past the buffer is trimmed away.
    let out = s.send(ACK, s.p + cap + 10, s.y, &[1u8; 1000]);
    assert_eq!(out[0].ack, s.p);
    let info = s.ep.info(s.conn).unwrap();
    assert!(
        info.rcv_wnd <= cap,
        "window {} within the {cap}-byte buffer",
        info.rcv_wnd
    );
    // Fill the hole: only what was inside the window can arrive in order.
    s.send(ACK, s.p, s.y, &[2u8; 1000]);
    let mut buf = vec![0u8; 4096];
    assert_eq!(s.ep.recv(s.now, s.conn, &mut buf), Ok(Some(1000)));
}

#[test]
fn syn_timeout_does_not_block_fast_retransmit_rfc6582_4() {
    let cfg = Config {
        delayed_ack: None,
        ..Config::default()
    };
    let mut n = Net::new(cfg.clone(), cfg);
    let (mut synack_lost, mut data_lost) = (false, false);
    n.drop_when(move |from_a, sg| {
        if !from_a && sg.has(SYN) && !synack_lost {
            synack_lost = true;
            return true;
        }
        if from_a && !sg.payload.is_empty() && !data_lost {
            data_lost = true;
            return true;
        }
        false
    });
    let l = n.b.listen(n.now, addr(B_IP, 80), 8).unwrap();
    let c = n.a.connect(n.now, addr(A_IP, 0), addr(B_IP, 80)).unwrap();
    n.run_for(Duration::from_secs(2));
    let s = n.b.accept(n.now, l).unwrap().unwrap();
    set_nodelay(&mut n.a, n.now, c);
    n.a.send(n.now, c, &[5u8; 14_480]).unwrap();
    n.run_for(Duration::from_millis(150));
    assert_eq!(
        Net::read_all(&mut n.b, s).0.len(),
        14_480,
        "recovered by fast retransmit, not RTO"
    );
}

#[test]
fn synack_for_retransmitted_syn_echoes_newest_tsval_rfc7323_4_3() {
    let mut ep = Endpoint::new(Config::default(), 1);
    let (me, peer, now) = (addr(B_IP, 80), addr(A_IP, 40_000), Instant::from_micros(1));
    ep.listen(now, me, 4).unwrap();
    ep.handle_packet(now, &with_ts(seg(peer, me, SYN, 9, 0), 1000, 0).bytes());
    let first = drain(&mut ep, now).remove(0);
    assert_eq!(first.options.timestamps.unwrap().tsecr, 1000);
    ep.handle_packet(now, &with_ts(seg(peer, me, SYN, 9, 0), 2000, 0).bytes());
    let again = drain(&mut ep, now).remove(0);
    assert!(again.is(SYN | ACK));
    assert_eq!(again.options.timestamps.unwrap().tsecr, 2000);
}

#[test]
fn handshake_ack_with_out_of_window_sequence_keeps_the_half_open_entry() {
    let mut ep = Endpoint::new(plain(), 1);
    let (me, peer, now) = (addr(B_IP, 80), addr(A_IP, 40_000), Instant::from_micros(1));
    let l = ep.listen(now, me, 4).unwrap();
    ep.handle_packet(now, &seg(peer, me, SYN, 100, 0).bytes());
    let synack = drain(&mut ep, now).remove(0);
    // Right ACK number, but a sequence number far outside the window: RFC 9293 says ACK it
    // and drop it, and the connection stays SYN_RECEIVED.
    ep.handle_packet(
        now,
        &seg(peer, me, ACK, 100 + (1 << 30), synack.seq + 1).bytes(),
    );
    let out = drain(&mut ep, now);
    assert!(out.len() == 1 && out[0].is(ACK), "{out:?}");
    assert_eq!(ep.census().get(SynReceived), 1);
    assert_eq!(ep.accept(now, l), Ok(None));
    // The real ACK completes the handshake and the connection reaches the accept queue.
    ep.handle_packet(now, &seg(peer, me, ACK, 101, synack.seq + 1).bytes());
    let c = ep
        .accept(now, l)
        .unwrap()
        .expect("established connection is acceptable");
    assert_eq!(ep.state(c), Some(Established));
    assert_eq!(ep.census().get(SynReceived), 0);
}
