//! The driver hand-off: blocked application threads poll the TUN themselves, the driver takes
//! the TUN back when they leave, and outbound datagrams are written after the lock is
//! released, in the order the endpoint emitted them.

mod common;

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{pattern, Env, Family, STEP};
use tcpfsm_tun::{ConnOptions, TcpStream};

/// Kernel client → our listener on `port`, with `data` sent by the kernel after `delay`.
fn kernel_sends_later(k: &std::net::TcpStream, data: Vec<u8>, delay: Duration) {
    let mut k = k.try_clone().unwrap();
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        k.write_all(&data).unwrap();
    });
}

/// A read that polled the TUN and returned leaves the TUN to the driver again: data the
/// kernel sends afterwards is received (acknowledged, queued) although nobody reads.
fn driver_takes_back(fam: Family) {
    let env = Env::new(fam);
    let (mut ours, k, _l) = env.kernel_client_pair(5000);
    kernel_sends_later(&k, b"x".to_vec(), Duration::from_millis(50));
    let mut one = [0u8; 1];
    assert_eq!(
        ours.read(&mut one).unwrap(),
        1,
        "the blocked read got the byte"
    );
    // The reader is gone; only the driver can take these in.
    let later = pattern(20_000, 3);
    kernel_sends_later(&k, later.clone(), Duration::from_millis(20));
    let conn = ours.id();
    assert!(
        env.stack.wait_until(STEP, |ep| ep
            .info(conn)
            .is_some_and(|i| i.recv_queue == later.len())),
        "data sent while nobody reads was received by the driver"
    );
    let mut got = vec![0u8; later.len()];
    ours.read_exact(&mut got).unwrap();
    assert_eq!(got, later);
}
both_families!(
    after_a_reader_leaves_the_driver_takes_the_tun_back,
    super::driver_takes_back
);

/// A reader polling the TUN is woken by an event another thread causes (the connection
/// aborted through a clone), not only by datagrams.
fn abort_wakes_poller(fam: Family) {
    let env = Env::new(fam);
    let (ours, _k, _l) = env.kernel_client_pair(5000);
    let clone = ours.try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        let t0 = Instant::now();
        let r = (&ours).read(&mut [0u8; 16]);
        (r.map_err(|e| e.kind()), t0.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    clone.abort();
    let (r, waited) = reader.join().unwrap();
    assert!(r.is_err(), "the read fails after the abort: {r:?}");
    // Nothing else would wake it soon: the kernel does not answer our RST (a missed wakeup
    // showed as a read released seconds later, by unrelated traffic).
    assert!(
        waited < Duration::from_secs(1),
        "the read was released at once ({waited:?})"
    );
}
both_families!(
    a_reader_polling_the_tun_is_released_by_an_abort_on_another_thread,
    super::abort_wakes_poller
);

/// A small receive buffer wraps its ring every few kilobytes; reads of odd sizes across the
/// wrap return exactly the bytes sent, in order.
fn ring_wrap(fam: Family) {
    let env = Env::new(fam);
    let kl = env.kernel_listen(5001);
    let mut opts: ConnOptions = env.stack.config().conn_options();
    opts.recv_buffer = 5000;
    let mut ours =
        TcpStream::connect_with_options(&env.stack, env.kernels(5001), opts, Some(STEP)).unwrap();
    ours.set_read_timeout(Some(STEP)).unwrap();
    let (k, _) = common::kernel_accept(&kl);
    let data = pattern(300_000, 7);
    kernel_sends_later(&k, data.clone(), Duration::ZERO);
    let mut got = Vec::with_capacity(data.len());
    let sizes = [1usize, 777, 4096, 3001, 4999, 5000, 13];
    let mut buf = vec![0u8; 5000];
    let mut i = 0;
    while got.len() < data.len() {
        let want = sizes[i % sizes.len()];
        i += 1;
        let n = ours.read(&mut buf[..want]).unwrap();
        assert!(n > 0, "end of stream after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the bytes read differ from the bytes sent");
}
both_families!(
    reads_across_the_receive_ring_wrap_return_the_exact_bytes,
    super::ring_wrap
);

/// The kernel's count of segments it had to queue out of order (`TCPOFOQueue`), read in the
/// namespace.
fn kernel_ofo_queued(env: &Env) -> u64 {
    let text = env.kernel(|| std::fs::read_to_string("/proc/thread-self/net/netstat").unwrap());
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if !names.starts_with("TcpExt:") {
            continue;
        }
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            if n == "TCPOFOQueue" {
                return v.parse().unwrap();
            }
        }
    }
    panic!("no TCPOFOQueue in /proc/net/netstat");
}

/// Two threads write many small pieces (TCP_NODELAY: a segment each) on one stream, taking
/// turns under a mutex so the stream's bytes are defined; while the driver writes
/// acknowledged-data segments of its own, every segment reaches the kernel in order.
fn two_writers(fam: Family) {
    let env = Env::new(fam);
    let (ours, k, _l) = env.kernel_client_pair(5000);
    ours.set_nodelay(true).unwrap();
    const PIECES: u32 = 3000;
    const PIECE: usize = 100;
    let next = Arc::new(Mutex::new(0u32));
    let ours = Arc::new(ours);
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let (ours, next) = (ours.clone(), next.clone());
            std::thread::spawn(move || loop {
                let mut n = next.lock().unwrap();
                if *n == PIECES {
                    return;
                }
                (&*ours).write_all(&piece(*n, PIECE)).unwrap();
                *n += 1;
            })
        })
        .collect();
    let mut want = Vec::new();
    for i in 0..PIECES {
        want.extend_from_slice(&piece(i, PIECE));
    }
    let mut got = vec![0u8; want.len()];
    (&k).read_exact(&mut got).unwrap();
    for w in writers {
        w.join().unwrap();
    }
    assert!(got == want, "the kernel read the pieces out of order");
    assert_eq!(
        kernel_ofo_queued(&env),
        0,
        "no segment reached the kernel out of order"
    );
}
both_families!(
    two_threads_writing_small_pieces_reach_the_kernel_in_order,
    super::two_writers
);

/// Piece `i` of the two-writer stream: its number, then filler derived from it.
fn piece(i: u32, len: usize) -> Vec<u8> {
    let mut p = pattern(len, i as u64);
    p[..4].copy_from_slice(&i.to_be_bytes());
    p
}
