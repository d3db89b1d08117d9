//! The RTT sample of a passive open (RFC 6298 §2 allows it; Linux's tcp_synack_rtt_meas takes
//! it): the SYN-ACK is timed like a data segment, so the first RTO after the handshake is
//! about 3 × RTT instead of the 1 s initial RTO — unless the SYN-ACK was retransmitted
//! (Karn, RFC 6298 §3).

mod common;
use common::*;
use tcpfsm_core::{Config, Duration, Endpoint, Instant, TxKind};
use tcpfsm_wire::Flags;

/// A listener answers a SYN; the handshake's ACK arrives `rtt` after the last SYN-ACK, which
/// went out `synacks` times. Returns the endpoint, the accepted connection and the time.
fn passive_open(rtt: Duration, synacks: usize) -> (Endpoint, tcpfsm_core::ConnHandle, Instant) {
    let mut ep = Endpoint::new(plain(), 5);
    let mut now = Instant::from_micros(10_000_000);
    let me = addr(B_IP, 80);
    let peer = addr(A_IP, 40_000);
    let l = ep.listen(now, me, 8).unwrap();
    let mut syn = seg(peer, me, Flags::SYN, 1000, 0);
    syn.options.mss = Some(1460);
    ep.handle_packet(now, &syn.bytes());
    let mut synack = drain(&mut ep, now).remove(0);
    for _ in 1..synacks {
        now = ep.poll_timeout().unwrap();
        ep.handle_timeout(now);
        let again = drain_kinds(&mut ep, now);
        assert!(again.iter().any(|(_, k)| *k == TxKind::Retransmission));
        synack = again.into_iter().next().unwrap().0;
    }
    now += rtt;
    ep.handle_packet(
        now,
        &seg(peer, me, Flags::ACK, 1001, synack.seq + 1).bytes(),
    );
    let c = ep.accept(now, l).unwrap().expect("established");
    drain(&mut ep, now);
    (ep, c, now)
}

#[test]
fn passive_open_samples_the_rtt_from_syn_ack_to_ack_linux_tcp_synack_rtt_meas() {
    let (mut ep, c, now) = passive_open(Duration::from_millis(80), 1);
    let info = ep.info(c).unwrap();
    assert_eq!(info.srtt, Some(Duration::from_millis(80)));
    // RFC 6298 §2.2: RTO = SRTT + 4 × SRTT/2 = 3 × RTT.
    assert_eq!(info.rto, Duration::from_millis(240));
    // The first data segment, unanswered, is retransmitted after that RTO, not after 1 s.
    ep.send(now, c, &random_bytes(1, 500)).unwrap();
    assert_eq!(drain(&mut ep, now).len(), 1);
    assert_eq!(ep.poll_timeout(), Some(now + Duration::from_millis(240)));
}

#[test]
fn retransmitted_syn_ack_gives_no_rtt_sample_rfc6298_3() {
    let (ep, c, _) = passive_open(Duration::from_millis(80), 2);
    let info = ep.info(c).unwrap();
    assert_eq!(info.srtt, None, "Karn: the ACK may answer either SYN-ACK");
}

#[test]
fn passive_open_with_timestamps_samples_from_the_echo_rfc7323_4_1() {
    // With timestamps the SYN-ACK's TSval comes back in the ACK's TSecr.
    let cfg = Config {
        timestamps: true,
        ..plain()
    };
    let opts = PeerOpts {
        ts: true,
        ..PeerOpts::default()
    };
    let s = Scripted::server(cfg, opts);
    // Scripted answers the SYN-ACK at once: a 0 ms sample, floored by the RTO minimum.
    assert!(s.ep.info(s.conn).unwrap().srtt.is_some());
}
