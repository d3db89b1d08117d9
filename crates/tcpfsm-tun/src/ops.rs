//! The one place the sockets call the engine: each function is one attempt of a socket call
//! against the locked endpoint. `None` means "would block" (the caller sleeps on the slot's
//! condition variable or leaves a waker); `Some` is the call's result, with the
//! `io::ErrorKind` the Linux kernel gives for the same case.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use tcpfsm_core::{
    CloseReason, ConnHandle, ConnOptions, FourTuple, Instant, ListenerHandle, RecvError, SendError,
    State,
};

use crate::stack::{Inner, Key};

/// One attempt to accept; registers the connection's wait slot.
pub(crate) fn accept_op(
    g: &mut Inner,
    now: Instant,
    id: ListenerHandle,
) -> Option<io::Result<(ConnHandle, FourTuple)>> {
    match g.ep.accept(now, id) {
        Ok(Some(conn)) => {
            let Some(info) = g.ep.info(conn) else {
                return Some(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "accepted connection vanished",
                )));
            };
            let slot = g.slots.entry(Key::Conn(conn)).or_default();
            slot.established = true;
            Some(Ok((conn, info.tuple)))
        }
        Ok(None) => None,
        Err(e) => Some(Err(e.into())),
    }
}

/// One attempt to read: data, end-of-stream (0), an error, or `None` to wait.
pub(crate) fn recv_op(
    g: &mut Inner,
    now: Instant,
    conn: ConnHandle,
    buf: &mut [u8],
) -> Option<io::Result<usize>> {
    match g.ep.recv(now, conn, buf) {
        Ok(Some(n)) => Some(Ok(n)),
        Ok(None) => None,
        Err(e) => Some(Err(report_recv(g, conn, e))),
    }
}

/// One attempt at a zero-copy read: `Some(Ok(Some(r)))` once `take` has seen received bytes
/// (it runs at most once: `take` is emptied when it does), `Some(Ok(None))` at end of stream,
/// an error, or `None` to wait.
pub(crate) fn recv_with_op<R>(
    g: &mut Inner,
    now: Instant,
    conn: ConnHandle,
    take: &mut Option<impl FnOnce(&[u8]) -> (usize, R)>,
) -> Option<io::Result<Option<R>>> {
    let mut out = None;
    let r = g.ep.recv_with(now, conn, |data: &[u8]| {
        // The engine calls this only with bytes to read, and the wait stops at the first
        // answer, so `take` is still there.
        let Some(f) = take.take() else { return 0 };
        let (n, v) = f(data);
        out = Some(v);
        // Consuming more than was offered would be a caller's bug; it consumes what there is.
        n.min(data.len())
    });
    match r {
        Ok(Some(_)) => Some(Ok(out)),
        Ok(None) => None,
        Err(e) => Some(Err(report_recv(g, conn, e))),
    }
}

#[cfg(feature = "tokio")]
/// As [`recv_op`], into memory that may be uninitialised (tokio's `ReadBuf::unfilled_mut`):
/// the engine's zero-copy `recv_with` copies straight from the receive buffer, so nothing is
/// zeroed first. The receive buffer is a ring, so a read takes up to two runs.
pub(crate) fn recv_uninit_op(
    g: &mut Inner,
    now: Instant,
    conn: ConnHandle,
    dst: &mut [std::mem::MaybeUninit<u8>],
) -> Option<io::Result<usize>> {
    let mut filled = 0;
    while filled < dst.len() {
        let rest = &mut dst[filled..];
        let r = g.ep.recv_with(now, conn, |data: &[u8]| {
            let n = data.len().min(rest.len());
            rest[..n].write_copy_of_slice(&data[..n]);
            n
        });
        match r {
            Ok(Some(n)) if n > 0 => filled += n,
            // End of stream, nothing more yet, or an error: report what was read first.
            _ if filled > 0 => break,
            Ok(Some(_)) => return Some(Ok(0)),
            Ok(None) => return None,
            Err(e) => return Some(Err(report_recv(g, conn, e))),
        }
    }
    Some(Ok(filled))
}

/// One attempt to peek (MSG_PEEK): as [`recv_op`], without consuming data (an error it
/// reports is consumed, as Linux's peek does).
pub(crate) fn peek_op(
    g: &mut Inner,
    conn: ConnHandle,
    buf: &mut [u8],
) -> Option<io::Result<usize>> {
    match g.ep.peek(conn, buf) {
        Ok(Some(n)) => Some(Ok(n)),
        Ok(None) => None,
        Err(e) => Some(Err(report_recv(g, conn, e))),
    }
}

#[cfg(feature = "tokio")]
/// Whether a read would return at once (data, end of stream or an error): poll(2)'s POLLIN.
pub(crate) fn read_ready_op(g: &Inner, conn: ConnHandle) -> Option<io::Result<()>> {
    // A probe, not a read: it must leave a pending error for the read to report.
    match g.ep.peek(conn, &mut [0u8; 1]) {
        Ok(None) => None,
        _ => Some(Ok(())),
    }
}

/// A connection's error reaches the application once: Linux's `sock_error` clears `sk_err`
/// when a read, peek or write reports it, so the next read sees end of stream and the next
/// write EPIPE. The engine keeps the error until `take_error`, so it is taken here.
fn report_recv(g: &mut Inner, conn: ConnHandle, e: RecvError) -> io::Error {
    if matches!(e, RecvError::Conn(_)) {
        let _ = g.ep.take_error(conn);
    }
    e.into()
}

/// One attempt to queue data: bytes taken, an error, or `None` to wait for buffer space.
pub(crate) fn send_op(
    g: &mut Inner,
    now: Instant,
    conn: ConnHandle,
    buf: &[u8],
) -> Option<io::Result<usize>> {
    match g.ep.send(now, conn, buf) {
        Ok(0) if !buf.is_empty() => None,
        Ok(n) => Some(Ok(n)),
        Err(e) => {
            if matches!(e, SendError::Conn(_)) {
                let _ = g.ep.take_error(conn);
            }
            Some(Err(e.into()))
        }
    }
}

#[cfg(feature = "tokio")]
/// Whether a write would return at once (room in the send buffer, or an error): POLLOUT.
pub(crate) fn write_ready_op(
    g: &mut Inner,
    now: Instant,
    conn: ConnHandle,
) -> Option<io::Result<()>> {
    let (Some(opts), Some(info)) = (g.ep.options(conn), g.ep.info(conn)) else {
        return Some(Ok(())); // gone: a write reports it at once
    };
    if opts.send_buffer > info.send_queue {
        return Some(Ok(()));
    }
    // Full. An empty zero-copy send asks the engine for a `Writable` event when room opens
    // (and fails at once if the write side is shut or the connection failed).
    match g.ep.send_with(now, conn, |_| 0) {
        Ok(_) => None,
        Err(_) => Some(Ok(())),
    }
}

/// Whether the handshake of an active open finished: `None` while in SYN_SENT.
pub(crate) fn connect_op(g: &mut Inner, conn: ConnHandle) -> Option<io::Result<()>> {
    let slot = g.slots.get(&Key::Conn(conn));
    if slot.is_some_and(|s| s.established) {
        return Some(Ok(()));
    }
    match g.ep.state(conn) {
        Some(State::SynSent) => None,
        Some(State::Closed) | None => Some(Err(close_error(slot.and_then(|s| s.closed)))),
        Some(_) => Some(Ok(())),
    }
}

/// The active open itself: the SYN is queued, the wait slot registered.
pub(crate) fn start_connect_op(
    g: &mut Inner,
    now: Instant,
    local: SocketAddr,
    remote: SocketAddr,
    opts: Option<ConnOptions>,
) -> io::Result<(ConnHandle, FourTuple)> {
    let opts = opts.unwrap_or_else(|| g.ep.config().conn_options());
    let conn =
        g.ep.connect_with(now, local, remote, opts)
            .map_err(|e| with_context(e, &format!("connect to {remote}")))?;
    g.slots.insert(Key::Conn(conn), Default::default());
    let tuple =
        g.ep.info(conn)
            .map(|i| i.tuple)
            .unwrap_or(FourTuple { local, remote });
    Ok((conn, tuple))
}

/// getsockopt: the connection's options (`NotConnected` once the handle is gone).
pub(crate) fn options_op(g: &Inner, conn: ConnHandle) -> io::Result<ConnOptions> {
    g.ep.options(conn)
        .ok_or_else(|| tcpfsm_core::InvalidHandle.into())
}

/// setsockopt: changes the connection's options with `f`; bad values are `InvalidInput`, as
/// setsockopt(2)'s EINVAL.
pub(crate) fn set_options_op(
    g: &mut Inner,
    now: Instant,
    conn: ConnHandle,
    f: impl FnOnce(&mut ConnOptions),
) -> io::Result<()> {
    let mut o = options_op(g, conn)?;
    f(&mut o);
    g.ep.set_options(now, conn, o).map_err(|e| match e {
        tcpfsm_core::OptionsError::InvalidHandle => tcpfsm_core::InvalidHandle.into(),
        e => io::Error::new(io::ErrorKind::InvalidInput, e),
    })
}

/// SO_ERROR: the connection's failure, reported once.
pub(crate) fn take_error_op(g: &mut Inner, conn: ConnHandle) -> io::Result<Option<io::Error>> {
    Ok(g.ep.take_error(conn)?.map(io::Error::from))
}

/// SO_LINGER as Linux applies it on close(2): with a non-zero linger time the caller waits
/// (up to that time) while our FIN is unacknowledged (`sk_stream_wait_close`: FIN_WAIT_1,
/// CLOSING, LAST_ACK). Zero needs no wait: the engine turns that close into an abort.
pub(crate) fn close_linger(g: &Inner, conn: ConnHandle) -> Option<Duration> {
    g.ep.options(conn)
        .and_then(|o| o.linger)
        .filter(|d| !d.is_zero())
}

/// Whether a closed connection still has data or a FIN the peer has not acknowledged.
pub(crate) fn still_closing(g: &Inner, conn: ConnHandle) -> bool {
    matches!(
        g.ep.state(conn),
        Some(State::FinWait1 | State::Closing | State::LastAck)
    )
}

/// The error a failed connect reports, from how the connection ended.
fn close_error(reason: Option<CloseReason>) -> io::Error {
    let kind = match reason {
        Some(CloseReason::Refused) => io::ErrorKind::ConnectionRefused,
        Some(CloseReason::TimedOut) => io::ErrorKind::TimedOut,
        Some(CloseReason::Reset) => io::ErrorKind::ConnectionReset,
        Some(CloseReason::Aborted) => io::ErrorKind::ConnectionAborted,
        Some(_) | None => io::ErrorKind::NotConnected,
    };
    io::Error::new(
        kind,
        reason.map_or("connection closed", |r| r.name()).to_string(),
    )
}

pub(crate) fn with_context(e: impl Into<io::Error>, what: &str) -> io::Error {
    let e: io::Error = e.into();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Tries `f` on each address `addr` resolves to, in order, as `std::net` does for `bind` and
/// `connect`: the first success, else the last error (or `InvalidInput` when it resolved to
/// nothing). Names resolve with std's resolver, on the calling thread.
pub(crate) fn each_addr<T>(
    addr: impl ToSocketAddrs,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match f(a) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(no_addresses))
}

pub(crate) fn no_addresses() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "could not resolve to any addresses",
    )
}

/// `WouldBlock` for a non-blocking socket's call that would wait (EAGAIN).
pub(crate) fn would_block() -> io::Error {
    io::Error::new(io::ErrorKind::WouldBlock, "operation would block")
}
