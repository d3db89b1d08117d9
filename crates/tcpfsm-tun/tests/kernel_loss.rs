//! Loss on the TUN link: chosen segments are dropped by the stack's packet filter and the
//! connection still completes, through our retransmissions and the kernel's.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use common::{drain_hash, pattern, read_hash, sha256, Env, Family, MIB, STEP};
use tcpfsm_tun::wire::Flags;
use tcpfsm_tun::{Direction, State, TcpListener, TcpStream, Verdict};

fn our_client_pair(env: &Env) -> (TcpStream, std::net::TcpStream) {
    let kl = env.kernel_listen(6000);
    let s = TcpStream::connect_timeout(&env.stack, env.kernels(6000), STEP).unwrap();
    let (k, _) = common::kernel_accept(&kl);
    k.set_read_timeout(Some(STEP)).unwrap();
    k.set_write_timeout(Some(STEP)).unwrap();
    s.set_read_timeout(Some(STEP)).unwrap();
    s.set_write_timeout(Some(STEP)).unwrap();
    (s, k)
}

/// The kernel's `Tcp: RetransSegs` counter in the namespace (/proc/net/snmp).
fn kernel_retrans_segs(env: &Env) -> u64 {
    let out = env.ns.exec("cat", &["/proc/net/snmp"]).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next().unwrap(), tcp.next().unwrap());
    let i = names
        .split_whitespace()
        .position(|n| n == "RetransSegs")
        .unwrap();
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

/// We close first; the ACK of the kernel's FIN is lost, so the kernel (LAST-ACK) retransmits
/// its FIN and our TIME_WAIT answers it again (RFC 9293 §3.10.7.4, TIME-WAIT: "acknowledge
/// it, and restart the 2 MSL timeout"); the kernel then closes.
fn final_ack_lost(fam: Family) {
    let env = Env::new(fam);
    let (mut ours, mut kern) = our_client_pair(&env);
    let (a, k) = (ours.local_addr().unwrap(), ours.peer_addr().unwrap());
    let kernel_fin_end = Arc::new(AtomicU64::new(u64::MAX));
    // Our ACKs of the kernel's FIN are lost until the test has seen the kernel in LAST-ACK.
    let losing = Arc::new(AtomicBool::new(true));
    let (lost, passed) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let (fe, lo, ls, ps) = (
        kernel_fin_end.clone(),
        losing.clone(),
        lost.clone(),
        passed.clone(),
    );
    env.stack.set_packet_filter(move |p| {
        let seg = &p.segment.tcp;
        match p.direction {
            Direction::Inbound if seg.flags.contains(Flags::FIN) => {
                let end = seg.seq.0.wrapping_add(seg.payload.len() as u32 + 1);
                fe.store(end as u64, Ordering::SeqCst);
                Verdict::Pass
            }
            Direction::Outbound
                if !seg.flags.contains(Flags::FIN)
                    && seg.ack.0 as u64 == fe.load(Ordering::SeqCst) =>
            {
                if lo.load(Ordering::SeqCst) {
                    ls.fetch_add(1, Ordering::SeqCst);
                    Verdict::Drop
                } else {
                    ps.fetch_add(1, Ordering::SeqCst);
                    Verdict::Pass
                }
            }
            _ => Verdict::Pass,
        }
    });
    ours.shutdown(Shutdown::Write).unwrap();
    assert_eq!(kern.read(&mut [0u8; 8]).unwrap(), 0);
    let retrans_before = kernel_retrans_segs(&env);
    drop(kern);
    assert_eq!(
        ours.read(&mut [0u8; 8]).unwrap(),
        0,
        "the kernel's FIN arrives"
    );
    env.wait_our_state(a, k, Some(State::TimeWait));
    // Our ACK was lost: the kernel waits in LAST-ACK…
    env.wait_kernel_state(k, a, Some(State::LastAck));
    assert!(lost.load(Ordering::SeqCst) >= 1);
    losing.store(false, Ordering::SeqCst);
    // …until its retransmitted FIN is acknowledged again from TIME_WAIT.
    env.wait_kernel_state(k, a, None);
    assert!(
        passed.load(Ordering::SeqCst) >= 1,
        "TIME_WAIT ACKed the retransmitted FIN"
    );
    assert!(
        kernel_retrans_segs(&env) > retrans_before,
        "the kernel retransmitted its FIN"
    );
    assert_eq!(env.our_state(a, k), Some(State::TimeWait));
}
both_families!(
    lost_final_ack_is_repeated_from_time_wait_when_the_kernel_retransmits_its_fin,
    super::final_ack_lost
);

/// The ACK completing our active open is lost: the kernel's connection stays in SYN-RECV
/// until our first data segment (which carries the same ACK) completes its handshake.
fn handshake_ack_lost(fam: Family) {
    let env = Env::new(fam);
    let kl = env.kernel_listen(6000);
    let dropped = Arc::new(AtomicU32::new(0));
    let dr = dropped.clone();
    env.stack.set_packet_filter(move |p| {
        let seg = &p.segment.tcp;
        let pure_ack = seg.flags == Flags::ACK && seg.payload.is_empty();
        // Every pure ACK of ours is lost (the handshake's and any repeat of it); data passes.
        if p.direction == Direction::Outbound && pure_ack {
            dr.fetch_add(1, Ordering::SeqCst);
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    });
    let mut ours = TcpStream::connect_timeout(&env.stack, env.kernels(6000), STEP).unwrap();
    let (a, k) = (ours.local_addr().unwrap(), ours.peer_addr().unwrap());
    assert_eq!(ours.state(), State::Established);
    assert_eq!(env.kernel_state(k, a), Some(State::SynReceived));
    assert!(dropped.load(Ordering::SeqCst) >= 1);
    ours.write_all(b"hello").unwrap();
    let (mut kern, _) = common::kernel_accept(&kl);
    kern.set_read_timeout(Some(STEP)).unwrap();
    let mut buf = [0u8; 5];
    kern.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    assert_eq!(env.kernel_state(k, a), Some(State::Established));
}
both_families!(
    lost_handshake_ack_is_recovered_by_our_first_data_segment,
    super::handshake_ack_lost
);

/// The kernel's FIN is lost once: the kernel retransmits it and we still see end-of-stream.
fn kernel_fin_lost(fam: Family) {
    let env = Env::new(fam);
    let (ours, mut kern) = our_client_pair(&env);
    let (a, k) = (ours.local_addr().unwrap(), ours.peer_addr().unwrap());
    let dropped = Arc::new(AtomicU32::new(0));
    let dr = dropped.clone();
    env.stack.set_packet_filter(move |p| {
        if p.direction == Direction::Inbound
            && p.segment.tcp.flags.contains(Flags::FIN)
            && dr.fetch_add(1, Ordering::SeqCst) == 0
        {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    });
    let data = pattern(100_000, 3);
    kern.write_all(&data).unwrap();
    drop(kern);
    let (n, digest) = drain_hash(&ours).unwrap();
    assert_eq!((n, digest), (data.len(), sha256(&data)));
    assert!(dropped.load(Ordering::SeqCst) >= 2, "the FIN came twice");
    assert_eq!(ours.state(), State::CloseWait);
    drop(ours);
    env.wait_kernel_state(k, a, Some(State::TimeWait));
    env.wait_our_state(a, k, None);
}
both_families!(
    lost_kernel_fin_is_retransmitted_and_we_still_read_end_of_stream,
    super::kernel_fin_lost
);

/// One of our data segments and one of the kernel's are lost mid-transfer (2 MiB each way);
/// both sides retransmit and every byte arrives once, in order.
fn data_lost(fam: Family) {
    let env = Env::new(fam);
    let l = TcpListener::bind(&env.stack, env.ours(5000)).unwrap();
    let kern = env.kernel_connect(env.ours(5000)).unwrap();
    let (ours, _) = l.accept_timeout(STEP).unwrap();
    ours.set_read_timeout(Some(STEP)).unwrap();
    ours.set_write_timeout(Some(STEP)).unwrap();
    let (out_n, in_n) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let (o, i) = (out_n.clone(), in_n.clone());
    env.stack.set_packet_filter(move |p| {
        if p.segment.tcp.payload.is_empty() {
            return Verdict::Pass;
        }
        let n = match p.direction {
            Direction::Outbound => o.fetch_add(1, Ordering::SeqCst),
            Direction::Inbound => i.fetch_add(1, Ordering::SeqCst),
        };
        if n == 300 {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    });
    let kernel_before = kernel_retrans_segs(&env);
    let up = pattern(2 * MIB, 4);
    let down = pattern(2 * MIB, 5);
    std::thread::scope(|s| {
        let w1 = s.spawn(|| (&ours).write_all(&up));
        let w2 = s.spawn(|| (&kern).write_all(&down));
        let r = s.spawn(|| read_hash(&kern, up.len()));
        assert_eq!(read_hash(&ours, down.len()).unwrap(), sha256(&down));
        assert_eq!(r.join().unwrap().unwrap(), sha256(&up));
        w1.join().unwrap().unwrap();
        w2.join().unwrap().unwrap();
    });
    let ds = env.stack.driver_stats();
    assert_eq!((ds.tx_filtered, ds.rx_filtered), (1, 1));
    assert!(
        env.stack.stats()[tcpfsm_core::Counter::RetransSegs] >= 1,
        "we retransmitted"
    );
    assert!(
        kernel_retrans_segs(&env) > kernel_before,
        "the kernel retransmitted"
    );
}
both_families!(
    lost_data_segments_both_ways_are_retransmitted_and_the_stream_is_intact,
    super::data_lost
);
