//! Resets and blind SYNs (issue 8, defects 3 and 4): data the engine acknowledged stays
//! readable after a reset (as Linux keeps its receive queue), and a half-open entry survives
//! SYNs that are not its peer's (RFC 9293 §3.10.7.4 sequence check before the SYN check,
//! RFC 5961 §4).

mod common;
use common::*;
use rand::{Rng, SeedableRng};
use tcpfsm_core::{
    CloseReason, Config, ConnError, Duration, Endpoint, Event, Instant, RecvError, State,
};
use tcpfsm_wire::Flags;

const ACK: Flags = Flags::ACK;
const RST: Flags = Flags::RST;
const SYN: Flags = Flags::SYN;
const FIN: Flags = Flags::FIN;

#[test]
fn rst_with_unread_data_keeps_every_acknowledged_byte_readable_rfc9293_3_10_7_4() {
    let mut s = Scripted::server(plain(), PeerOpts::default());
    let data = random_bytes(10, 3000);
    for chunk in data.chunks(1000) {
        let out = s.data(chunk);
        assert_eq!(out.last().unwrap().ack, s.p, "acknowledged");
    }
    // Out of order, never acknowledged: it may go.
    let hole = s.seg(ACK, s.p + 500, s.y, &random_bytes(11, 200));
    s.inject(hole);
    // The peer resets with the exact sequence number.
    let rst = s.seg(RST, s.p, 0, &[]);
    s.inject(rst);
    assert_eq!(s.ep.state(s.conn), Some(State::Closed));
    let evs = events(&mut s.ep);
    assert!(evs.contains(&Event::Closed {
        conn: s.conn,
        reason: CloseReason::Reset
    }));
    let mut peeked = [0u8; 10];
    assert_eq!(s.ep.peek(s.conn, &mut peeked), Ok(Some(10)));
    assert_eq!(peeked, data[..10]);
    // Every acknowledged byte first, in small reads, then the error — never a clean EOF.
    let mut got = Vec::new();
    let mut buf = [0u8; 700];
    let last = loop {
        match s.ep.recv(s.now, s.conn, &mut buf) {
            Ok(Some(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            r => break r,
        }
    };
    assert_eq!(got, data);
    assert_eq!(last, Err(RecvError::Conn(ConnError::Reset)));
    assert_eq!(
        s.ep.recv(s.now, s.conn, &mut buf),
        Err(RecvError::Conn(ConnError::Reset)),
        "the error stays until taken"
    );
}

#[test]
fn rst_in_close_wait_with_unread_data_keeps_the_whole_stream_readable() {
    let mut s = Scripted::server(plain(), PeerOpts::default());
    let data = random_bytes(12, 2500);
    s.data(&data);
    let fin = s.seg(FIN | ACK, s.p, s.y, &[]);
    s.inject(fin);
    s.p += 1;
    assert_eq!(s.ep.state(s.conn), Some(State::CloseWait));
    let rst = s.seg(RST, s.p, 0, &[]);
    s.inject(rst);
    assert_eq!(s.ep.state(s.conn), Some(State::Closed));
    let (got, last) = s.read_all();
    assert_eq!(
        got, data,
        "the stream was complete: every byte of it is read"
    );
    assert!(
        matches!(last, Ok(Some(0)) | Err(RecvError::Conn(ConnError::Reset))),
        "{last:?}"
    );
}

/// The story behind defect 3: a server sends a response larger than the client's small
/// receive buffer and closes; its orphaned FIN_WAIT_2 times out while the client's slow
/// reader still has acknowledged data unread; the client's next segment draws a reset.
#[test]
fn slow_reader_keeps_its_data_after_the_orphans_fin_wait_2_timeout_and_reset() {
    let server_cfg = Config {
        fin_timeout: Duration::from_secs(5),
        ..Config::default()
    };
    let mut n = Net::new(Config::default(), server_cfg);
    let l = n.b.listen(n.now, addr(B_IP, 80), 8).unwrap();
    let mut o = n.a.config().conn_options();
    o.recv_buffer = 4 * 1460;
    let c =
        n.a.connect_with(n.now, addr(A_IP, 40_000), addr(B_IP, 80), o)
            .unwrap();
    n.run_for(Duration::from_millis(100));
    let srv = n.b.accept(n.now, l).unwrap().unwrap();
    let data = random_bytes(13, 40_000);
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = [0u8; 500];
    let mut reset_with_unread = None;
    for _ in 0..400 {
        if sent < data.len() {
            sent += n.b.send(n.now, srv, &data[sent..]).unwrap();
            if sent == data.len() {
                n.b.close(n.now, srv).unwrap();
            }
        }
        n.run_for(Duration::from_secs(1));
        // The slow reader: 500 bytes a second.
        match n.a.recv(n.now, c, &mut buf) {
            Ok(Some(k)) if k > 0 => got.extend_from_slice(&buf[..k]),
            Ok(None) => {}
            _ => break,
        }
        let server_gone = sent == data.len() && n.b.census().total() == 1;
        let unread = n.a.info(c).map_or(0, |i| i.recv_queue);
        if server_gone && unread > 0 && reset_with_unread.is_none() {
            // The client says something; the server has forgotten the connection.
            assert_eq!(n.a.state(c), Some(State::CloseWait));
            n.a.send(n.now, c, b"bye").unwrap();
            n.run_for(Duration::from_millis(100));
            assert_eq!(n.a.state(c), Some(State::Closed), "the RST arrived");
            reset_with_unread = n.a.info(c).map(|i| i.recv_queue);
        }
    }
    assert!(
        reset_with_unread.is_some_and(|u| u > 0),
        "the scenario must reset the client while data is unread: {reset_with_unread:?}"
    );
    assert_eq!(n.b.stats()[tcpfsm_core::Counter::TcpfsmFinWait2Timeouts], 1);
    let (rest, eof) = Net::read_all(&mut n.a, c);
    got.extend(rest);
    assert_eq!(
        got.len(),
        data.len(),
        "no byte the client acknowledged is lost"
    );
    assert!(got == data);
    let mut b = [0u8; 1];
    let last = n.a.recv(n.now, c, &mut b);
    assert!(
        eof || last == Err(RecvError::Conn(ConnError::Reset)),
        "{last:?}"
    );
}

/// A listener on B:80 and one peer SYN: returns the endpoint, the SYN-ACK and the peer.
fn half_open(cfg: Config) -> (Endpoint, Seg, std::net::SocketAddr, Instant) {
    let mut ep = Endpoint::new(cfg, 4);
    let now = Instant::from_micros(5_000_000);
    let (me, peer) = (addr(B_IP, 80), addr(A_IP, 40_000));
    ep.listen(now, me, 2048).unwrap();
    ep.handle_packet(now, &seg(peer, me, SYN, 5000, 0).bytes());
    let synack = drain(&mut ep, now).remove(0);
    assert!(synack.is(SYN | ACK));
    (ep, synack, peer, now)
}

#[test]
fn blind_syns_do_not_destroy_a_half_open_entry_rfc5961_4() {
    let (mut ep, synack, peer, mut now) = half_open(plain());
    let me = addr(B_IP, 80);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let mut answers = 0;
    for _ in 0..20_000 {
        let seq: u32 = rng.gen();
        if seq == 5000 {
            continue; // the peer's own SYN: a retransmission, answered by design
        }
        ep.handle_packet(now, &seg(peer, me, SYN, seq, 0).bytes());
        answers += drain(&mut ep, now).len();
        now += Duration::from_micros(100);
    }
    assert_eq!(ep.census().get(State::SynReceived), 1, "the entry survives");
    assert_eq!(ep.stats()[tcpfsm_core::Counter::AttemptFails], 0);
    // Two seconds of attack: at most one answer per 500 ms (RFC 5961 §7), plus the SYN-ACK
    // retransmission timer's.
    assert!(answers <= 6, "{answers} answers to blind SYNs");
    // The real handshake completes.
    ep.handle_packet(now, &seg(peer, me, ACK, 5001, synack.seq + 1).bytes());
    assert_eq!(ep.census().get(State::Established), 1);
}

#[test]
fn a_thousand_handshakes_survive_blind_syns_rfc9293_3_10_7_4() {
    let cfg = Config {
        max_syn_backlog: 2048,
        ..plain()
    };
    let mut ep = Endpoint::new(cfg, 5);
    let mut now = Instant::from_micros(5_000_000);
    let me = addr(B_IP, 80);
    let l = ep.listen(now, me, 2048).unwrap();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(8);
    let mut synacks = Vec::new();
    for i in 0..1000u16 {
        let peer = addr(A_IP, 10_000 + i);
        ep.handle_packet(now, &seg(peer, me, SYN, 77 + i as u32, 0).bytes());
        let sa = drain(&mut ep, now).remove(0);
        synacks.push((peer, sa.seq));
    }
    // Twenty blind SYNs (and SYN-ACKs) for each entry, random sequence numbers.
    for _ in 0..20 {
        for (i, &(peer, _)) in synacks.iter().enumerate() {
            let mut seq: u32 = rng.gen();
            if seq == 77 + i as u32 {
                seq ^= 1;
            }
            let flags = if rng.gen_bool(0.5) { SYN } else { SYN | ACK };
            ep.handle_packet(now, &seg(peer, me, flags, seq, rng.gen()).bytes());
        }
        drain(&mut ep, now);
        now += Duration::from_millis(10);
    }
    assert_eq!(ep.census().get(State::SynReceived), 1000);
    for (i, &(peer, iss)) in synacks.iter().enumerate() {
        let ack = seg(peer, me, ACK, 78 + i as u32, iss + 1);
        ep.handle_packet(now, &ack.bytes());
    }
    drain(&mut ep, now);
    let mut accepted = 0;
    while let Ok(Some(_)) = ep.accept(now, l) {
        accepted += 1;
    }
    assert_eq!(accepted, 1000, "every real handshake completes");
}

#[test]
fn blind_syn_in_a_simultaneous_open_is_challenged_not_obeyed_rfc5961_4() {
    let mut ep = Endpoint::new(plain(), 1);
    let (me, peer, now) = (addr(B_IP, 5000), addr(A_IP, 6000), Instant::from_micros(1));
    let c = ep.connect(now, me, peer).unwrap();
    drain(&mut ep, now);
    ep.handle_packet(now, &seg(peer, me, SYN, 700, 0).bytes());
    drain(&mut ep, now);
    assert_eq!(ep.state(c), Some(State::SynReceived));
    let mut rng = rand::rngs::SmallRng::seed_from_u64(9);
    for _ in 0..5000 {
        let seq: u32 = rng.gen();
        if seq == 700 {
            continue;
        }
        ep.handle_packet(now, &seg(peer, me, SYN, seq, 0).bytes());
        let out = drain(&mut ep, now);
        assert!(out.iter().all(|o| !o.has(RST)), "{out:?}");
    }
    assert_eq!(ep.state(c), Some(State::SynReceived));
}

/// The reset a connection sends when it gives up on its own: Linux's tcp_send_active_reset
/// form, `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=RST,ACK>` (RFC 9293 §3.10.5 draws a bare RST; §3.4
/// allows ACK on every synchronized segment, and the kernel is our reference).
fn assert_active_reset(out: &[Seg], snd_nxt: u32, rcv_nxt: u32) {
    let rsts: Vec<&Seg> = out.iter().filter(|o| o.has(RST)).collect();
    assert_eq!(rsts.len(), 1, "one reset: {out:?}");
    assert!(rsts[0].is(RST | ACK), "RST|ACK: {:?}", rsts[0]);
    assert_eq!(rsts[0].seq, snd_nxt, "SEQ = SND.NXT");
    assert_eq!(rsts[0].ack, rcv_nxt, "ACK = RCV.NXT");
    assert!(rsts[0].payload.is_empty());
}

/// A server with 300 bytes from the peer read and 2000 of its own sent but unacknowledged.
fn busy_server() -> Scripted {
    let mut s = Scripted::server(plain(), PeerOpts::default());
    s.data(&random_bytes(1, 300));
    let (got, _) = s.read_all();
    assert_eq!(got.len(), 300);
    s.ep.send(s.now, s.conn, &random_bytes(2, 2000)).unwrap();
    let sent = s.drain();
    assert!(sent.iter().any(|o| !o.payload.is_empty()));
    s
}

#[test]
fn abort_sends_rst_ack_at_snd_nxt_and_rcv_nxt_linux_tcp_send_active_reset() {
    let mut s = busy_server();
    s.ep.abort(s.now, s.conn).unwrap();
    let out = s.drain();
    assert_active_reset(&out, s.y, s.p);
    assert_eq!(s.ep.state(s.conn), None);
}

#[test]
fn close_with_linger_zero_sends_rst_ack_linux_tcp_send_active_reset() {
    let mut s = busy_server();
    let mut o = s.ep.options(s.conn).unwrap();
    o.linger = Some(Duration::ZERO);
    s.ep.set_options(s.now, s.conn, o).unwrap();
    s.ep.close(s.now, s.conn).unwrap();
    let out = s.drain();
    assert!(!out.iter().any(|o| o.has(FIN)), "no FIN: {out:?}");
    assert_active_reset(&out, s.y, s.p);
}

#[test]
fn close_with_unread_data_sends_rst_ack_covering_it_linux_tcp_close() {
    let mut s = Scripted::server(plain(), PeerOpts::default());
    s.data(&random_bytes(3, 700));
    // The application closes without reading: RFC 2525 §2.17 / Linux tcp_close reset, whose
    // ACK covers the bytes it acknowledged (and throws away).
    s.ep.close(s.now, s.conn).unwrap();
    let out = s.drain();
    assert!(!out.iter().any(|o| o.has(FIN)), "no FIN: {out:?}");
    assert_active_reset(&out, s.y, s.p);
    assert_eq!(s.ep.census().get(State::TimeWait), 0);
}
