//! `TcpStream::read_with`, the zero-copy read, against the Linux kernel over TUN: the stream is
//! byte-exact however much each call consumes, end of stream and a reset are reported as
//! `read` reports them (data that arrived before a reset is read first), and the blocking
//! mode and read timeout apply as they do to `read`.

mod common;

use std::io::{ErrorKind, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::{kernel_reset, pattern, Env, Family, MIB, STEP};
use tcpfsm_tun::{State, TcpStream};

/// Reads to end of stream with `read_with`, consuming at most `most` bytes per call.
fn drain(s: &TcpStream, most: usize) -> Vec<u8> {
    let mut got = Vec::new();
    loop {
        let r = s.read_with(|run| {
            assert!(!run.is_empty(), "take only sees bytes to read");
            let n = run.len().min(most);
            got.extend_from_slice(&run[..n]);
            (n, n)
        });
        match r.expect("read_with") {
            Some(n) => assert!(n <= most),
            None => return got,
        }
    }
}

/// The kernel sends 3 MiB (more than our receive buffer, so the ring wraps many times) and
/// closes; taking 777 bytes per call, or whole runs, gives back exactly its stream, then end of
/// stream, twice.
fn stream_is_byte_exact_then_end_of_stream(fam: Family) {
    let env = Env::new(fam);
    for (port, most) in [(7100, 777), (7101, usize::MAX)] {
        let (s, mut k, _l) = env.kernel_client_pair(port);
        let data = pattern(3 * MIB, port.into());
        let sent = data.clone();
        let w = std::thread::spawn(move || {
            k.write_all(&sent).unwrap();
            k.shutdown(Shutdown::Write).unwrap();
            k
        });
        let got = drain(&s, most);
        assert!(
            got == data,
            "read_with gave back the kernel's 3 MiB exactly"
        );
        assert!(
            s.read_with(|_| -> (usize, ()) { panic!("no data after end of stream") })
                .unwrap()
                .is_none(),
            "end of stream stays end of stream"
        );
        drop(w.join().unwrap());
    }
}

/// Data the kernel sent before resetting is read first; the reset comes after it, as an error.
fn data_before_a_reset_is_read_then_the_reset(fam: Family) {
    let env = Env::new(fam);
    let (s, mut k, _l) = env.kernel_client_pair(7110);
    let data = pattern(5000, 7);
    k.write_all(&data).unwrap();
    // All of it has arrived (peek sees 5000 bytes) before the kernel resets.
    let deadline = Instant::now() + STEP;
    let mut buf = vec![0u8; 8192];
    while s.peek(&mut buf).unwrap() < data.len() {
        assert!(Instant::now() < deadline, "the kernel's 5000 bytes arrived");
        std::thread::sleep(Duration::from_millis(2));
    }
    kernel_reset(k);
    while s.state() != State::Closed {
        assert!(Instant::now() < deadline, "the kernel's RST arrived");
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut got = Vec::new();
    let err = loop {
        match s.read_with(|run| {
            got.extend_from_slice(run);
            (run.len(), ())
        }) {
            Ok(Some(())) => {}
            Ok(None) => panic!("a reset is an error, not end of stream"),
            Err(e) => break e,
        }
    };
    assert!(got == data, "the 5000 bytes before the reset were read");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
}

/// Non-blocking with nothing to read: `WouldBlock` without calling `take`; with a read timeout:
/// `WouldBlock` after it; after `shutdown(Read)`: end of stream.
fn blocking_mode_timeout_and_shutdown_apply(fam: Family) {
    let env = Env::new(fam);
    let (s, mut k, _l) = env.kernel_client_pair(7120);
    let never = |_: &[u8]| -> (usize, ()) { panic!("nothing to read") };
    s.set_nonblocking(true).unwrap();
    let e = s.read_with(never).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let t0 = Instant::now();
    let e = s.read_with(never).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "timed out: {e}");
    assert!(t0.elapsed() >= Duration::from_millis(200));
    // A blocked read_with returns when data arrives.
    s.set_read_timeout(Some(STEP)).unwrap();
    k.write_all(b"x").unwrap();
    let n = s.read_with(|run| (run.len(), run.to_vec())).unwrap();
    assert_eq!(n.as_deref(), Some(&b"x"[..]));
    s.shutdown(Shutdown::Read).unwrap();
    assert!(s.read_with(never).unwrap().is_none());
}

both_families!(
    read_with_stream_is_byte_exact_then_end_of_stream,
    super::stream_is_byte_exact_then_end_of_stream
);
both_families!(
    read_with_reads_data_before_a_reset_then_reports_it,
    super::data_before_a_reset_is_read_then_the_reset
);
both_families!(
    read_with_obeys_blocking_mode_timeout_and_shutdown,
    super::blocking_mode_timeout_and_shutdown_apply
);
