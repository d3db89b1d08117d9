//! The blocking sockets do what `std::net` users expect of a kernel socket: non-blocking mode,
//! clones sharing one connection, MSG_PEEK, SO_ERROR, SO_LINGER, `incoming()`,
//! `ToSocketAddrs`, and per-connection options — each checked against the kernel on the
//! other end of the TUN, and where it makes sense against a kernel socket doing the same.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{pattern, read_hash, sha256, Env, Family, STEP};
use tcpfsm_tun::{Direction, State, TcpListener, TcpStream, Verdict};

/// Retries `f` while it says `WouldBlock` (a non-blocking socket's "not yet").
fn retry<T>(what: &str, mut f: impl FnMut() -> std::io::Result<T>) -> T {
    let deadline = Instant::now() + STEP;
    loop {
        match f() {
            Ok(t) => return t,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "{what} never became ready");
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// O_NONBLOCK: accept, read and write return WouldBlock where they would wait — the kind a
/// kernel socket gives in the same place — and the bytes still arrive intact.
fn nonblocking(fam: Family) {
    let env = Env::new(fam);
    let l = TcpListener::bind(&env.stack, env.ours(5000)).unwrap();
    l.set_nonblocking(true).unwrap();
    let err = l.accept().unwrap_err();
    let kl = env.kernel_listen(6000);
    kl.set_nonblocking(true).unwrap();
    let kerr = kl.accept().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err}");
    assert_eq!(err.kind(), kerr.kind(), "as the kernel's accept");

    let mut kern = env.kernel_connect(env.ours(5000)).unwrap();
    let (mut ours, _) = retry("accept", || l.accept());
    ours.set_nonblocking(true).unwrap();
    // A read timeout does not make a non-blocking read wait.
    ours.set_read_timeout(Some(STEP)).unwrap();
    let t0 = Instant::now();
    let err = ours.read(&mut [0u8; 16]).unwrap_err();
    assert!(t0.elapsed() < STEP / 4);
    kern.set_nonblocking(true).unwrap();
    let kerr = kern.read(&mut [0u8; 16]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err}");
    assert_eq!(err.kind(), kerr.kind(), "as the kernel's read");
    let err = ours.peek(&mut [0u8; 16]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "peek too");
    kern.set_nonblocking(false).unwrap();

    kern.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    let n = retry("read", || ours.read(&mut got));
    assert_eq!(&got[..n], &b"ping"[..n]);

    // Writes with a small send buffer and a kernel that does not read yet: some take only
    // part (or say WouldBlock), none waits, and everything arrives once the kernel reads.
    let mut o = ours.options().unwrap();
    o.send_buffer = 8 * 1024;
    ours.set_options(o).unwrap();
    let data = pattern(2 * 1024 * 1024, 3);
    let reader = {
        let kern = kern.try_clone().unwrap();
        let len = data.len();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            read_hash(kern, len).unwrap()
        })
    };
    let mut off = 0;
    let mut would_block = 0;
    let deadline = Instant::now() + STEP;
    while off < data.len() {
        assert!(Instant::now() < deadline, "non-blocking writes stalled");
        let t = Instant::now();
        match ours.write(&data[off..]) {
            Ok(n) => off += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                would_block += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("write: {e}"),
        }
        assert!(t.elapsed() < STEP / 4, "a non-blocking write waited");
    }
    assert!(would_block > 0, "an 8 KiB send buffer filled at some point");
    assert_eq!(reader.join().unwrap(), sha256(&data));
}
both_families!(
    nonblocking_accept_read_write_return_would_block_like_the_kernel,
    super::nonblocking
);

/// try_clone: both handles use one connection, options set through one apply to the other,
/// and only the last drop closes it (the kernel sees our FIN then, not before).
fn try_clone(fam: Family) {
    let env = Env::new(fam);
    let (ours, mut kern, _l) = env.kernel_client_pair(5000);
    let (a, k) = (ours.local_addr().unwrap(), ours.peer_addr().unwrap());
    let mut twin = ours.try_clone().unwrap();
    assert_eq!(twin.id(), ours.id());
    assert_eq!(twin.peer_addr().unwrap(), k);
    twin.set_nonblocking(true).unwrap();
    let err = (&ours).read(&mut [0u8; 4]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "O_NONBLOCK is shared");
    twin.set_nonblocking(false).unwrap();
    twin.set_nodelay(true).unwrap();
    assert!(ours.nodelay().unwrap(), "options are the connection's");

    twin.write_all(b"from the twin").unwrap();
    let mut got = [0u8; 13];
    kern.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"from the twin");
    kern.write_all(b"to the original").unwrap();
    let mut got = [0u8; 15];
    (&ours).read_exact(&mut got).unwrap();
    assert_eq!(&got, b"to the original");

    drop(ours);
    kern.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let err = common::kread(&kern, &mut [0u8; 4]).unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::WouldBlock,
        "no FIN while a clone lives"
    );
    assert_eq!(env.our_state(a, k), Some(State::Established));
    twin.write_all(b"!").unwrap();
    drop(twin);
    kern.set_read_timeout(Some(STEP)).unwrap();
    let mut rest = Vec::new();
    kern.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"!", "the last drop sends FIN after the data");
}
both_families!(
    try_clone_shares_one_connection_and_the_last_drop_closes_it,
    super::try_clone
);

/// MSG_PEEK: peek waits for data like read, returns it without consuming it, and reads 0 at
/// end of stream — as the kernel's peek does.
fn peek(fam: Family) {
    let env = Env::new(fam);
    let (ours, mut kern, _l) = env.kernel_client_pair(5000);
    ours.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let err = ours.peek(&mut [0u8; 8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "timed out like a read");
    ours.set_read_timeout(Some(STEP)).unwrap();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        kern.write_all(b"hello world").unwrap();
        kern.shutdown(std::net::Shutdown::Write).unwrap();
        kern
    });
    let mut buf = [0u8; 5];
    let n = ours.peek(&mut buf).unwrap();
    assert!(n > 0, "peek waited for the data");
    assert_eq!(&buf[..n], &b"hello"[..n]);
    let _kern = writer.join().unwrap();
    // Once everything is in, peeking twice shows the same bytes; reading then consumes them.
    let deadline = Instant::now() + STEP;
    while ours.info().unwrap().recv_queue < 11 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut p1 = [0u8; 32];
    let mut p2 = [0u8; 32];
    let n1 = ours.peek(&mut p1).unwrap();
    let n2 = ours.peek(&mut p2).unwrap();
    assert_eq!(&p1[..n1], b"hello world");
    assert_eq!(&p2[..n2], b"hello world");
    let mut all = Vec::new();
    (&ours).read_to_end(&mut all).unwrap();
    assert_eq!(all, b"hello world");
    assert_eq!(ours.peek(&mut p1).unwrap(), 0, "end of stream peeks as 0");
}
both_families!(peek_returns_data_without_consuming_it_msg_peek, super::peek);

/// SO_ERROR: a reset is reported once by take_error, then reads see end of stream — on our
/// socket exactly as on the kernel's, with the same kind.
fn take_error(fam: Family) {
    let env = Env::new(fam);
    // The kernel resets our connection.
    let (ours, kern, _l) = env.kernel_client_pair(5000);
    assert!(ours.take_error().unwrap().is_none(), "healthy: no error");
    common::kernel_reset(kern);
    let ok = env
        .stack
        .wait_until(STEP, |ep| ep.state(ours.id()) == Some(State::Closed));
    assert!(ok, "the RST arrived");
    let err = ours.take_error().unwrap().expect("SO_ERROR after a reset");
    assert!(ours.take_error().unwrap().is_none(), "reported once");
    assert_eq!(
        (&ours).read(&mut [0u8; 4]).unwrap(),
        0,
        "then end of stream"
    );

    // We reset the kernel's connection; the kernel reports the same.
    let (ours2, kern2) = env.our_client_pair(6000);
    ours2.abort();
    let deadline = Instant::now() + STEP;
    let kerr = loop {
        if let Some(e) = kern2.take_error().unwrap() {
            break e;
        }
        assert!(Instant::now() < deadline, "the kernel got no RST");
        std::thread::sleep(Duration::from_millis(2));
    };
    assert!(kern2.take_error().unwrap().is_none());
    assert_eq!(common::kread(&kern2, &mut [0u8; 4]).unwrap(), 0);
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    assert_eq!(err.kind(), kerr.kind());
}
both_families!(
    take_error_reports_a_reset_once_then_end_of_stream_like_so_error,
    super::take_error
);

/// SO_LINGER {on, 0}: the drop sends RST at once, the kernel's read fails with ECONNRESET, and
/// nobody keeps TIME_WAIT.
fn linger_zero(fam: Family) {
    let env = Env::new(fam);
    let (ours, kern, _l) = env.kernel_client_pair(5000);
    let (a, k) = (ours.local_addr().unwrap(), ours.peer_addr().unwrap());
    ours.set_linger(Some(Duration::ZERO)).unwrap();
    assert_eq!(ours.linger().unwrap(), Some(Duration::ZERO));
    (&ours)
        .write_all(b"discarded or not, the close is an abort")
        .unwrap();
    drop(ours);
    let mut buf = [0u8; 64];
    let err = loop {
        match common::kread(&kern, &mut buf) {
            Ok(n) => assert!(n > 0, "a FIN instead of RST"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    env.wait_kernel_state(k, a, None);
    assert_eq!(env.our_state(a, k), None, "no TIME_WAIT after an abort");
}
both_families!(
    linger_zero_drop_resets_the_connection_without_time_wait,
    super::linger_zero
);

/// SO_LINGER {on, d}: the last drop waits while our FIN is unacknowledged, at most `d`
/// (Linux's `sk_stream_wait_close`); the close then goes on in the background.
fn linger_timed(fam: Family) {
    let env = Env::new(fam);
    let (ours, kern, _l) = env.kernel_client_pair(5000);
    let (a, k) = (ours.local_addr().unwrap(), ours.peer_addr().unwrap());
    // The kernel's ACKs are lost: the drop must wait the whole linger time.
    let lose = Arc::new(AtomicBool::new(true));
    let l2 = lose.clone();
    env.stack.set_packet_filter(move |p| {
        if p.direction == Direction::Inbound && l2.load(Ordering::Relaxed) {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    });
    ours.set_linger(Some(Duration::from_millis(400))).unwrap();
    (&ours).write_all(&pattern(10_000, 1)).unwrap();
    let t0 = Instant::now();
    drop(ours);
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(400), "waited {waited:?}");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    assert_eq!(
        env.our_state(a, k),
        Some(State::FinWait1),
        "still unacknowledged: the close goes on in the background"
    );
    lose.store(false, Ordering::Relaxed);
    env.wait_our_state(a, k, Some(State::FinWait2));
    drop(kern);

    // Now the ACKs come through after 300 ms: the drop returns once our FIN is acknowledged,
    // long before a 20 s linger.
    let (ours, kern, _l2) = env.kernel_client_pair(5001);
    let (a, k) = (ours.local_addr().unwrap(), ours.peer_addr().unwrap());
    lose.store(true, Ordering::Relaxed);
    ours.set_linger(Some(STEP)).unwrap();
    (&ours).write_all(&pattern(10_000, 2)).unwrap();
    let opener = {
        let lose = lose.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            lose.store(false, Ordering::Relaxed);
        })
    };
    let t0 = Instant::now();
    drop(ours);
    let waited = t0.elapsed();
    opener.join().unwrap();
    assert!(waited >= Duration::from_millis(300), "waited {waited:?}");
    assert!(waited < STEP / 2, "waited {waited:?}");
    let st = env.our_state(a, k);
    assert!(
        matches!(st, Some(State::FinWait2 | State::TimeWait)),
        "the drop returned with our FIN acknowledged: {st:?}"
    );
    let mut all = Vec::new();
    (&kern).read_to_end(&mut all).unwrap();
    assert_eq!(sha256(&all), sha256(&pattern(10_000, 2)));
}
both_families!(
    linger_timed_drop_waits_for_the_ack_of_our_fin_up_to_the_linger_time,
    super::linger_timed
);

/// `incoming()` yields each accepted connection in turn.
fn incoming(fam: Family) {
    let env = Env::new(fam);
    let l = TcpListener::bind(&env.stack, env.ours(5000)).unwrap();
    let clients: Vec<_> = (0..3)
        .map(|_| env.kernel_connect(env.ours(5000)).unwrap())
        .collect();
    let mut peers: Vec<SocketAddr> = l
        .incoming()
        .take(3)
        .map(|s| s.unwrap().peer_addr().unwrap())
        .collect();
    let mut want: Vec<SocketAddr> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
    peers.sort();
    want.sort();
    assert_eq!(peers, want);
}
both_families!(incoming_yields_every_accepted_connection, super::incoming);

/// bind and connect take `ToSocketAddrs` and try each address in turn, as std does: the first
/// that works wins, else the last error; nothing to try is InvalidInput, as with std.
fn to_socket_addrs(fam: Family) {
    let env = Env::new(fam);
    let ours = env.ours(5000);
    let not_ours = env.kernels(5000);
    let text = ours.to_string();
    drop(TcpListener::bind(&env.stack, text.as_str()).expect("a string address"));
    drop(TcpListener::bind(&env.stack, (ours.ip(), 5000)).expect("an (ip, port) pair"));
    let l = TcpListener::bind(&env.stack, &[not_ours, ours][..]).expect("the second address");
    assert_eq!(l.local_addr().unwrap(), ours);
    let err = TcpListener::bind(&env.stack, &[not_ours][..]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrNotAvailable, "the last error");
    let none: &[SocketAddr] = &[];
    let err = TcpListener::bind(&env.stack, none).unwrap_err();
    let std_err = std::net::TcpListener::bind(none).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.kind(), std_err.kind());
    let err = TcpStream::connect(&env.stack, none).unwrap_err();
    assert_eq!(err.kind(), std_err.kind());

    // connect: a refused address, then a kernel listener.
    let _kl = env.kernel_listen(6000);
    let s = TcpStream::connect(&env.stack, &[env.kernels(7), env.kernels(6000)][..])
        .expect("the second address");
    assert_eq!(s.peer_addr().unwrap(), env.kernels(6000));
    let err = TcpStream::connect(&env.stack, (env.kernels(7).ip(), 7)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    let s = TcpStream::connect(&env.stack, env.kernels(6000).to_string().as_str()).unwrap();
    assert_eq!(s.state(), State::Established);
}
both_families!(
    bind_and_connect_try_each_address_of_to_socket_addrs_like_std,
    super::to_socket_addrs
);

/// Per-connection options reach the engine: keep-alive probes that go unanswered end the
/// connection with ETIMEDOUT (as the kernel's TCP_KEEPIDLE/INTVL/CNT would); bad values are
/// InvalidInput; a sub-millisecond linger is not mistaken for an abort.
fn options(fam: Family) {
    let env = Env::new(fam);
    let (ours, _kern, _l) = env.kernel_client_pair(5000);
    assert!(!ours.nodelay().unwrap());
    ours.set_nodelay(true).unwrap();
    assert!(ours.nodelay().unwrap());
    ours.set_linger(Some(Duration::from_micros(300))).unwrap();
    assert_eq!(ours.linger().unwrap(), Some(Duration::from_millis(1)));
    ours.set_linger(None).unwrap();
    assert_eq!(ours.linger().unwrap(), None);
    let mut bad = ours.options().unwrap();
    bad.recv_buffer = 0;
    let err = ours.set_options(bad).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");

    let mut o = ours.options().unwrap();
    o.keepalive_interval = Duration::from_millis(100);
    o.keepalive_probes = 2;
    ours.set_options(o).unwrap();
    ours.set_keepalive(Some(Duration::from_millis(200)))
        .unwrap();
    assert_eq!(ours.keepalive().unwrap(), Some(Duration::from_millis(200)));
    // The kernel's answers to our probes are lost.
    env.stack.set_packet_filter(|p| {
        if p.direction == Direction::Inbound {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    });
    let t0 = Instant::now();
    let err = (&ours).read(&mut [0u8; 4]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "idle 200 ms + 2 probes 100 ms apart: {:?}",
        t0.elapsed()
    );
}
both_families!(
    options_reach_the_engine_keepalive_probes_time_out_unanswered,
    super::options
);

/// Kinds of two calls in a row, `Ok(n)` or the error's kind, for comparing with the kernel.
fn two_calls(mut call: impl FnMut() -> std::io::Result<usize>) -> [Result<usize, ErrorKind>; 2] {
    [call().map_err(|e| e.kind()), call().map_err(|e| e.kind())]
}

/// A reset reaches the application once, as Linux's `sock_error` clears SO_ERROR when a
/// call reports it: read gives ECONNRESET then end of stream, write ECONNRESET then EPIPE —
/// on our socket exactly as on the kernel's.
fn reset_reported_once(fam: Family) {
    let env = Env::new(fam);
    let reset_by_kernel = |port: u16| {
        let (ours, kern, _l) = env.kernel_client_pair(port);
        common::kernel_reset(kern);
        let ok = env
            .stack
            .wait_until(STEP, |ep| ep.state(ours.id()) == Some(State::Closed));
        assert!(ok, "the RST arrived");
        ours
    };
    let reset_by_us = |port: u16| {
        let (ours, kern) = env.our_client_pair(port);
        let (a, k) = (ours.local_addr().unwrap(), ours.peer_addr().unwrap());
        ours.abort();
        env.wait_kernel_state(k, a, None);
        kern
    };
    let ours = reset_by_kernel(5000);
    let kern = reset_by_us(6000);
    let our_reads = two_calls(|| (&ours).read(&mut [0u8; 4]));
    let kernel_reads = two_calls(|| common::kread(&kern, &mut [0u8; 4]));
    assert_eq!(our_reads, [Err(ErrorKind::ConnectionReset), Ok(0)]);
    assert_eq!(our_reads, kernel_reads);

    let ours = reset_by_kernel(5001);
    let kern = reset_by_us(6001);
    let our_writes = two_calls(|| (&ours).write(b"x"));
    let kernel_writes = two_calls(|| (&kern).write(b"x"));
    assert_eq!(
        our_writes,
        [Err(ErrorKind::ConnectionReset), Err(ErrorKind::BrokenPipe)]
    );
    assert_eq!(our_writes, kernel_writes);
}
both_families!(
    a_reset_is_reported_once_read_then_eof_write_then_epipe_like_linux,
    super::reset_reported_once
);
