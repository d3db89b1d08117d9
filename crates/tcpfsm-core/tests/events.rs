//! Events and queues (issue 8, defect 10): `Readable` and `Writable` only when readiness
//! changes, never one per segment; the control queue (RSTs, challenge ACKs, SYN-ACKs) is
//! bounded and every segment it drops is counted.

mod common;
use common::*;
use tcpfsm_core::{Config, Duration, Endpoint, Event, Instant, State};
use tcpfsm_wire::Flags;

fn count(evs: &[Event], f: impl Fn(&Event) -> bool) -> usize {
    evs.iter().filter(|e| f(e)).count()
}

fn readable(evs: &[Event]) -> usize {
    count(evs, |e| matches!(e, Event::Readable { .. }))
}

fn writable(evs: &[Event]) -> usize {
    count(evs, |e| matches!(e, Event::Writable { .. }))
}

#[test]
fn readable_is_signalled_when_the_buffer_becomes_non_empty_not_per_segment() {
    let mut s = Scripted::server(plain(), PeerOpts::default());
    for i in 0..50 {
        s.data(&random_bytes(i, 100));
    }
    assert_eq!(readable(&events(&mut s.ep)), 1, "one edge for 50 segments");
    // Reading part of it changes nothing; more data while unread is no new edge.
    let mut b = [0u8; 1000];
    s.ep.recv(s.now, s.conn, &mut b).unwrap();
    s.data(b"more");
    assert_eq!(readable(&events(&mut s.ep)), 0);
    // Drained, then data again: a new edge.
    let _ = s.read_all();
    s.data(b"again");
    assert_eq!(readable(&events(&mut s.ep)), 1);
    // End of stream is a change of readiness too.
    let _ = s.read_all();
    let fin = s.seg(Flags::FIN | Flags::ACK, s.p, s.y, &[]);
    s.inject(fin);
    assert_eq!(readable(&events(&mut s.ep)), 1);
}

#[test]
fn writable_is_signalled_once_when_a_full_send_buffer_drains() {
    let mut o = plain().conn_options();
    o.send_buffer = 4000;
    o.nodelay = true;
    let mut s = Scripted::server_with(plain(), PeerOpts::default(), Some(o));
    let data = random_bytes(3, 10_000);
    assert_eq!(s.ep.send(s.now, s.conn, &data), Ok(4000), "cut short");
    assert_eq!(s.ep.send(s.now, s.conn, &data[4000..]), Ok(0), "full");
    let segs = s.drain();
    assert_eq!(segs.len(), 3);
    // Each segment acknowledged on its own: space opens three times, one edge.
    for sg in &segs {
        let ack = s.seg(Flags::ACK, s.p, sg.seq + sg.payload.len() as u32, &[]);
        s.inject(ack);
    }
    assert_eq!(writable(&events(&mut s.ep)), 1);
    // A send that fits wants no event.
    assert_eq!(s.ep.send(s.now, s.conn, &data[..100]), Ok(100));
    s.drain();
    s.ack();
    assert_eq!(writable(&events(&mut s.ep)), 0);
}

#[test]
fn control_queue_is_bounded_and_every_drop_is_counted() {
    let cfg = Config {
        max_ctl_queue: 8,
        ..plain()
    };
    let mut ep = Endpoint::new(cfg, 1);
    let now = Instant::from_micros(1_000_000);
    let me = addr(B_IP, 80);
    // 1000 strays to a closed port, each deserving an RST, before the driver polls.
    for i in 0..1000u16 {
        let stray = seg(addr(A_IP, 1024 + i), me, Flags::ACK, 1, 7 + i as u32);
        ep.handle_packet(now, &stray.bytes());
    }
    let out = drain(&mut ep, now);
    assert_eq!(out.len(), 8);
    assert!(out.iter().all(|o| o.has(Flags::RST)));
    assert_eq!(
        ep.stats()[tcpfsm_core::Counter::OutRsts],
        8,
        "only RSTs that went out are OutRsts"
    );
    assert_eq!(
        ep.stats()[tcpfsm_core::Counter::TcpfsmCtlQueueDrops],
        992,
        "drops are counted in stats() (TcpfsmCtlQueueDrops)"
    );
}

#[test]
fn half_open_entries_whose_syn_ack_was_dropped_retransmit_it() {
    let cfg = Config {
        max_ctl_queue: 8,
        ..plain()
    };
    let mut ep = Endpoint::new(cfg, 1);
    let mut now = Instant::from_micros(1_000_000);
    let me = addr(B_IP, 80);
    ep.listen(now, me, 64).unwrap();
    for i in 0..10u16 {
        ep.handle_packet(
            now,
            &seg(addr(A_IP, 2000 + i), me, Flags::SYN, 9, 0).bytes(),
        );
    }
    let mut answered: std::collections::BTreeSet<u16> =
        drain(&mut ep, now).iter().map(|o| o.dst.port()).collect();
    assert_eq!(answered.len(), 8, "the queue holds 8");
    assert_eq!(ep.census().get(State::SynReceived), 10, "no entry is lost");
    // The SYN-ACK timers bring the other two, polled as they fire.
    let end = now + Duration::from_secs(10);
    while let Some(t) = ep.poll_timeout().filter(|t| *t <= end) {
        now = t;
        ep.handle_timeout(now);
        answered.extend(drain(&mut ep, now).iter().map(|o| o.dst.port()));
    }
    assert_eq!(answered.len(), 10, "every peer got a SYN-ACK: {answered:?}");
}
