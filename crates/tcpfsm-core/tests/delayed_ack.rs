//! The delayed-ACK rule (RFC 5681 §4.2, RFC 9293 §3.8.6.3) for segments longer than the MSS:
//! a receive offload (a TUN with TSO, a NIC with LRO/GRO) hands over several of the peer's
//! segments as one, and the rule "ACK at least every second full-sized segment" counts the
//! full-sized segments it stands for, as Linux does (`__tcp_ack_snd_check`: more than one
//! full frame received since the last ACK).

mod common;

use common::{PeerOpts, Scripted};
use tcpfsm_core::Config;
use tcpfsm_wire::Flags;

fn server() -> Scripted {
    let cfg = Config {
        mss: 1460,
        ..Config::default()
    };
    assert!(cfg.delayed_ack.is_some(), "the default delays ACKs");
    Scripted::server(cfg, PeerOpts::default())
}

#[test]
fn one_full_segment_may_wait_for_the_delayed_ack_rfc5681_4_2() {
    let mut s = server();
    let out = s.data(&[7u8; 1460]);
    assert!(
        out.is_empty(),
        "one full-sized segment: the ACK may wait ({out:?})"
    );
}

#[test]
fn a_segment_of_three_mss_is_acked_at_once_rfc5681_4_2() {
    let mut s = server();
    let out = s.data(&vec![7u8; 3 * 1460]);
    let acks: Vec<_> = out.iter().filter(|o| o.has(Flags::ACK)).collect();
    assert_eq!(
        acks.len(),
        1,
        "three full-sized segments in one: ACKed now ({out:?})"
    );
    assert_eq!(acks[0].ack, s.p, "all of it acknowledged");
}

#[test]
fn a_segment_under_two_mss_counts_as_one_full_segment_rfc5681_4_2() {
    let mut s = server();
    let out = s.data(&vec![7u8; 2 * 1460 - 1]);
    assert!(
        out.is_empty(),
        "one full-sized segment's worth and a bit: may wait ({out:?})"
    );
    let out = s.data(&[7u8; 1460]);
    assert_eq!(
        out.len(),
        1,
        "the second full-sized segment: ACK now ({out:?})"
    );
}
