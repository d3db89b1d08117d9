//! Every other way a connection with the kernel ends: simultaneous close, half-close both
//! ways, resets both ways, refusal; and the `io::ErrorKind` each one reports.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{drain_hash, pattern, read_hash, sha256, Env, Family, MIB, STEP};
use tcpfsm_tun::wire::Flags;
use tcpfsm_tun::{Direction, State, TcpListener, TcpStream, Verdict};

/// Kernel client → our listener, connected (the listener is closed again).
fn kernel_client_pair(env: &Env) -> (TcpStream, std::net::TcpStream) {
    let (s, k, _) = env.kernel_client_pair(5000);
    (s, k)
}

fn our_client_pair(env: &Env) -> (TcpStream, std::net::TcpStream) {
    env.our_client_pair(6000)
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[derive(Default)]
struct Held {
    holding: bool,
    kernel_fin: Option<Vec<u8>>,
    ack_of_our_fin: Option<Vec<u8>>,
    our_fin_end: Option<u32>,
}

/// RFC 9293 §3.6 Figure 13: both FINs cross in flight. The kernel's FIN is held back at the
/// TUN until ours has left, so each side receives the other's FIN in FIN-WAIT-1 and goes
/// through CLOSING; both end in TIME-WAIT.
fn simultaneous_close(fam: Family) {
    let env = Env::new(fam);
    let (ours, kern) = kernel_client_pair(&env);
    let (a, k) = (ours.local_addr().unwrap(), ours.peer_addr().unwrap());
    let held = Arc::new(Mutex::new(Held {
        holding: true,
        ..Held::default()
    }));
    let h2 = held.clone();
    env.stack.set_packet_filter(move |p| {
        let mut h = h2.lock().unwrap();
        let seg = &p.segment.tcp;
        match p.direction {
            Direction::Outbound => {
                if seg.flags.contains(Flags::FIN) {
                    let end = seg.seq.0.wrapping_add(seg.payload.len() as u32 + 1);
                    h.our_fin_end = Some(end);
                }
                Verdict::Pass
            }
            Direction::Inbound if h.holding => {
                if seg.flags.contains(Flags::FIN) && h.kernel_fin.is_none() {
                    h.kernel_fin = Some(p.datagram.to_vec());
                } else if h.our_fin_end.is_some_and(|e| seg.ack.0 == e)
                    && seg.flags.contains(Flags::ACK)
                    && h.ack_of_our_fin.is_none()
                {
                    h.ack_of_our_fin = Some(p.datagram.to_vec());
                }
                Verdict::Drop
            }
            Direction::Inbound => Verdict::Pass,
        }
    });
    drop(kern);
    wait_for("the kernel's FIN", || {
        held.lock().unwrap().kernel_fin.is_some()
    });
    env.wait_kernel_state(k, a, Some(State::FinWait1));
    drop(ours);
    // Our FIN reached the kernel in FIN-WAIT-1: it is CLOSING, its ACK is held.
    env.wait_kernel_state(k, a, Some(State::Closing));
    wait_for("the kernel's ACK of our FIN", || {
        held.lock().unwrap().ack_of_our_fin.is_some()
    });
    assert_eq!(env.our_state(a, k), Some(State::FinWait1));
    // Inbound stays blocked while we replay: a retransmitted FIN of the kernel (it carries the
    // ACK of ours by now) must not overtake the replay.
    let (fin, ack) = {
        let mut h = held.lock().unwrap();
        (
            h.kernel_fin.take().unwrap(),
            h.ack_of_our_fin.take().unwrap(),
        )
    };
    env.stack.inject(&fin).unwrap();
    assert_eq!(
        env.our_state(a, k),
        Some(State::Closing),
        "their FIN without the ACK of ours, in FIN_WAIT_1"
    );
    env.wait_kernel_state(k, a, Some(State::TimeWait));
    env.stack.inject(&ack).unwrap();
    env.wait_our_state(a, k, Some(State::TimeWait));
    held.lock().unwrap().holding = false;
    let seen = env.transitions(k);
    for step in [
        (State::Established, State::FinWait1),
        (State::FinWait1, State::Closing),
        (State::Closing, State::TimeWait),
    ] {
        assert!(seen.contains(&step), "missing {step:?} in {seen:?}");
    }
    assert_eq!(env.kernel_state(k, a), Some(State::TimeWait));
}
both_families!(
    simultaneous_close_passes_through_closing_and_both_hold_time_wait,
    super::simultaneous_close
);

/// We shut down writing; the kernel reads our request to its end and still sends its reply,
/// which we read to the kernel's FIN. We closed first, so we hold TIME_WAIT.
fn we_half_close(fam: Family) {
    let env = Env::new(fam);
    let (mut ours, mut kern) = our_client_pair(&env);
    let (a, k) = (ours.local_addr().unwrap(), ours.peer_addr().unwrap());
    ours.write_all(b"request").unwrap();
    ours.shutdown(Shutdown::Write).unwrap();
    let err = ours.write(b"more").unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::BrokenPipe,
        "write after shutdown(Write)"
    );
    let mut req = Vec::new();
    kern.read_to_end(&mut req).unwrap();
    assert_eq!(req, b"request");
    env.wait_kernel_state(k, a, Some(State::CloseWait));
    env.wait_our_state(a, k, Some(State::FinWait2));
    let reply = pattern(MIB, 7);
    kern.write_all(&reply).unwrap();
    drop(kern);
    let (n, digest) = drain_hash(&ours).unwrap();
    assert_eq!(n, reply.len());
    assert_eq!(
        digest,
        sha256(&reply),
        "the reply after our FIN arrived intact"
    );
    env.wait_our_state(a, k, Some(State::TimeWait));
    env.wait_kernel_state(k, a, None);
    drop(ours);
    assert_eq!(env.our_state(a, k), Some(State::TimeWait));
}
both_families!(
    half_close_by_us_still_reads_the_kernels_reply,
    super::we_half_close
);

/// The kernel shuts down writing; we read its request to end-of-stream (CLOSE_WAIT) and still
/// send our reply, which it reads; the kernel closed first, so it holds TIME-WAIT.
fn kernel_half_closes(fam: Family) {
    let env = Env::new(fam);
    let (mut ours, mut kern) = kernel_client_pair(&env);
    let (a, k) = (ours.local_addr().unwrap(), ours.peer_addr().unwrap());
    kern.write_all(b"request").unwrap();
    kern.shutdown(Shutdown::Write).unwrap();
    let mut req = Vec::new();
    ours.read_to_end(&mut req).unwrap();
    assert_eq!(req, b"request");
    assert_eq!(ours.state(), State::CloseWait);
    env.wait_kernel_state(k, a, Some(State::FinWait2));
    let reply = pattern(MIB, 8);
    // The kernel reads while we write: 1 MiB exceeds what the two buffers hold.
    let got = std::thread::scope(|s| {
        let r = s.spawn(|| read_hash(&kern, reply.len()));
        ours.write_all(&reply).unwrap();
        drop(ours);
        r.join().unwrap()
    })
    .unwrap();
    assert_eq!(
        got,
        sha256(&reply),
        "our reply after the kernel's FIN arrived intact"
    );
    let mut rest = Vec::new();
    kern.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    env.wait_kernel_state(k, a, Some(State::TimeWait));
    env.wait_our_state(a, k, None);
}
both_families!(
    half_close_by_kernel_still_reads_our_reply,
    super::kernel_half_closes
);

/// SO_LINGER {on, 0} on the kernel's socket: close(2) sends RST; we report ConnectionReset.
fn kernel_aborts(fam: Family) {
    let env = Env::new(fam);
    let (mut ours, kern) = our_client_pair(&env);
    let (a, k) = (ours.local_addr().unwrap(), ours.peer_addr().unwrap());
    common::kernel_reset(kern);
    let err = ours.read(&mut [0u8; 16]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    assert_eq!(ours.state(), State::Closed);
    assert!(
        ours.write(b"x").is_err(),
        "writing to a reset connection fails"
    );
    let seen = env.transitions(k);
    assert!(
        seen.contains(&(State::Established, State::Closed)),
        "{seen:?}"
    );
    drop(ours);
    assert_eq!(env.our_state(a, k), None, "no TIME_WAIT after a reset");
}
both_families!(
    kernel_linger_zero_close_is_reported_as_reset,
    super::kernel_aborts
);

/// Our abort (linger 0): the kernel's recv fails with ECONNRESET, nobody holds TIME-WAIT.
fn we_abort(fam: Family) {
    let env = Env::new(fam);
    let (ours, mut kern) = kernel_client_pair(&env);
    let (a, k) = (ours.local_addr().unwrap(), ours.peer_addr().unwrap());
    ours.abort();
    let err = kern.read(&mut [0u8; 16]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    env.wait_kernel_state(k, a, None);
    assert_eq!(env.our_state(a, k), None);
}
both_families!(
    our_abort_makes_the_kernels_recv_fail_with_econnreset,
    super::we_abort
);

/// RST in answer to our SYN: ConnectionRefused, and the reverse through our listener.
fn refused(fam: Family) {
    let env = Env::new(fam);
    let err = TcpStream::connect_timeout(&env.stack, env.kernels(7), STEP).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    let err = env.kernel_connect(env.ours(7)).unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::ConnectionRefused,
        "our endpoint resets a SYN to a closed port"
    );
    assert!(env.stack.connections().is_empty());
}
both_families!(
    connect_to_a_closed_port_is_refused_both_ways,
    super::refused
);

/// Socket-call errors with the kernel's kinds: EADDRINUSE, EADDRNOTAVAIL, ETIMEDOUT, and
/// UnexpectedEof from `read_exact` at end-of-stream.
fn error_kinds(fam: Family) {
    let env = Env::new(fam);
    let _l = TcpListener::bind(&env.stack, env.ours(5000)).unwrap();
    let err = TcpListener::bind(&env.stack, env.ours(5000)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    let err = TcpListener::bind(&env.stack, env.kernels(5001)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrNotAvailable, "not our address");

    // A kernel listener whose SYN-ACKs never reach us: connect times out.
    let _kl = env.kernel_listen(6001);
    env.stack.set_packet_filter(|p| {
        if p.direction == Direction::Inbound && p.segment.tcp.flags.contains(Flags::SYN) {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    });
    let t0 = Instant::now();
    let err = TcpStream::connect_timeout(&env.stack, env.kernels(6001), Duration::from_millis(300))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(t0.elapsed() < Duration::from_secs(5));
    env.stack.clear_packet_filter();

    let mut kern = env.kernel_connect(env.ours(5000)).unwrap();
    let (mut ours, _) = _l.accept_timeout(STEP).unwrap();
    let err = ours.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidInput,
        "a zero timeout, as std refuses it"
    );
    ours.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let err = ours.read(&mut [0u8; 4]).unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::WouldBlock,
        "SO_RCVTIMEO expiry is EAGAIN"
    );
    ours.set_read_timeout(Some(STEP)).unwrap();
    kern.write_all(b"abc").unwrap();
    drop(kern);
    let mut buf = [0u8; 10];
    let err = ours.read_exact(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
}
both_families!(socket_errors_have_the_kernels_kinds, super::error_kinds);
