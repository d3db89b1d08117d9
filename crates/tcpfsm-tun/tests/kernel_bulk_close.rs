//! Our TCP against the Linux kernel's over TUN: handshake both ways, 10 MiB each way at the
//! same time verified by SHA-256, then both close orders, with the kernel's states read by
//! `ss` at each step. RFC 9293 §3.6: the side that closes first ends in TIME-WAIT, the other
//! goes through CLOSE-WAIT and LAST-ACK and leaves nothing behind.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;

use common::{pattern, read_hash, sha256, Env, Family, MIB, STEP};
use tcpfsm_tun::{State, TcpListener, TcpStream};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Kernel,
    Ours,
}

/// A connected pair: our stream and the kernel's.
fn connect(env: &Env, client: Side) -> (TcpStream, std::net::TcpStream) {
    let (ours, kern) = match client {
        Side::Kernel => {
            let l = TcpListener::bind(&env.stack, env.ours(5000)).unwrap();
            let k = env.kernel_connect(env.ours(5000)).unwrap();
            let (s, peer) = l.accept_timeout(STEP).unwrap();
            assert_eq!(
                peer,
                k.local_addr().unwrap(),
                "accept reports the kernel's address"
            );
            (s, k)
        }
        Side::Ours => {
            let kl = env.kernel_listen(6000);
            let s = TcpStream::connect_timeout(&env.stack, env.kernels(6000), STEP).unwrap();
            let (k, peer) = common::kernel_accept(&kl);
            assert_eq!(peer, s.local_addr().unwrap());
            k.set_read_timeout(Some(STEP)).unwrap();
            k.set_write_timeout(Some(STEP)).unwrap();
            (s, k)
        }
    };
    ours.set_read_timeout(Some(STEP)).unwrap();
    ours.set_write_timeout(Some(STEP)).unwrap();
    (ours, kern)
}

/// 10 MiB each way, both directions at once, verified by digest.
fn bulk_both_ways(ours: &TcpStream, kern: &std::net::TcpStream) {
    let up = pattern(10 * MIB, 1);
    let down = pattern(10 * MIB, 2);
    std::thread::scope(|s| {
        let w1 = s.spawn(|| (&*ours).write_all(&up));
        let w2 = s.spawn(|| (&*kern).write_all(&down));
        let r1 = s.spawn(|| read_hash(kern, up.len()));
        let got_down = read_hash(ours, down.len()).expect("we read the kernel's 10 MiB");
        let got_up = r1.join().unwrap().expect("the kernel reads our 10 MiB");
        w1.join().unwrap().expect("we write 10 MiB");
        w2.join().unwrap().expect("the kernel writes 10 MiB");
        assert_eq!(
            got_up,
            sha256(&up),
            "our 10 MiB arrived intact at the kernel"
        );
        assert_eq!(
            got_down,
            sha256(&down),
            "the kernel's 10 MiB arrived intact at us"
        );
    });
}

fn scenario(fam: Family, client: Side, first_closer: Side) {
    let env = Env::new(fam);
    let (mut ours, mut kern) = connect(&env, client);
    let (a, k) = (ours.local_addr().unwrap(), ours.peer_addr().unwrap());
    assert_eq!(ours.state(), State::Established);
    env.wait_kernel_state(k, a, Some(State::Established));

    bulk_both_ways(&ours, &kern);
    assert_eq!(ours.state(), State::Established);

    let mut byte = [0u8; 1];
    match first_closer {
        Side::Kernel => {
            drop(kern);
            // The kernel's FIN: we read end-of-stream and sit in CLOSE_WAIT.
            assert_eq!(
                ours.read(&mut byte).unwrap(),
                0,
                "end-of-stream after the FIN"
            );
            assert_eq!(ours.state(), State::CloseWait);
            env.wait_kernel_state(k, a, Some(State::FinWait2));
            drop(ours);
            env.wait_kernel_state(k, a, Some(State::TimeWait));
            env.wait_our_state(a, k, None);
            let ours_seen = env.transitions(k);
            assert!(
                ours_seen.contains(&(State::CloseWait, State::LastAck))
                    && ours_seen.contains(&(State::LastAck, State::Closed)),
                "we closed second: CLOSE_WAIT -> LAST_ACK -> CLOSED, got {ours_seen:?}"
            );
            assert!(
                !ours_seen.iter().any(|&(_, to)| to == State::TimeWait),
                "the side closing second never enters TIME_WAIT: {ours_seen:?}"
            );
        }
        Side::Ours => {
            ours.shutdown(Shutdown::Write).unwrap();
            assert_eq!(kern.read(&mut byte).unwrap(), 0, "the kernel reads our FIN");
            env.wait_kernel_state(k, a, Some(State::CloseWait));
            env.wait_our_state(a, k, Some(State::FinWait2));
            drop(ours);
            drop(kern);
            env.wait_our_state(a, k, Some(State::TimeWait));
            // The kernel went CLOSE-WAIT -> LAST-ACK -> gone: no TIME-WAIT on its side.
            env.wait_kernel_state(k, a, None);
            let ours_seen = env.transitions(k);
            assert!(
                ours_seen.contains(&(State::FinWait2, State::TimeWait)),
                "we closed first and hold TIME_WAIT: {ours_seen:?}"
            );
        }
    }
}

fn kernel_client_kernel_closes_first(f: Family) {
    scenario(f, Side::Kernel, Side::Kernel)
}
fn kernel_client_we_close_first(f: Family) {
    scenario(f, Side::Kernel, Side::Ours)
}
fn our_client_kernel_closes_first(f: Family) {
    scenario(f, Side::Ours, Side::Kernel)
}
fn our_client_we_close_first(f: Family) {
    scenario(f, Side::Ours, Side::Ours)
}

both_families!(
    kernel_client_bulk_then_kernel_closes_first_and_holds_time_wait,
    super::kernel_client_kernel_closes_first
);
both_families!(
    kernel_client_bulk_then_we_close_first_and_hold_time_wait,
    super::kernel_client_we_close_first
);
both_families!(
    our_client_bulk_then_kernel_closes_first_and_holds_time_wait,
    super::our_client_kernel_closes_first
);
both_families!(
    our_client_bulk_then_we_close_first_and_hold_time_wait,
    super::our_client_we_close_first
);
