//! Blocking connections on our stack, shaped like `std::net::TcpStream`.
//!
//! Errors carry the `std::io::ErrorKind` the Linux kernel's sockets give in the same case
//! (ECONNREFUSED, ECONNRESET, ETIMEDOUT, EADDRNOTAVAIL, EADDRINUSE, EPIPE); read and write
//! timeouts give `WouldBlock` as `SO_RCVTIMEO`/`SO_SNDTIMEO` do (EAGAIN), so does a
//! non-blocking socket's call that would wait, and `read_exact` hitting the end of the stream
//! gives `UnexpectedEof` (std's `Read` does that for us).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tcpfsm_core::{ConnHandle, ConnInfo, ConnOptions, FourTuple, Instant, State};

use crate::ops::{
    close_linger, connect_op, each_addr, options_op, peek_op, recv_op, recv_with_op, send_op,
    set_options_op, start_connect_op, still_closing, take_error_op, would_block,
};
use crate::stack::{local_ip, Inner, Key, Shared, Stack};

/// A connection of our stack. `&TcpStream` reads and writes too, so one thread may read
/// while another writes. Clones made with [`TcpStream::try_clone`] share the connection and
/// its options (as dup(2) does); dropping the last one closes it gracefully (FIN), or as
/// SO_LINGER says (see [`TcpStream::set_linger`]).
pub struct TcpStream {
    inner: Arc<StreamInner>,
}

/// What every clone of one connection shares: its socket options live here, as they live in
/// the one socket all of a process's descriptors for it point to.
pub(crate) struct StreamInner {
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn: ConnHandle,
    tuple: FourTuple,
    /// Microseconds; 0 = none.
    read_timeout: AtomicU64,
    write_timeout: AtomicU64,
    /// O_NONBLOCK.
    nonblocking: AtomicBool,
    read_shut: AtomicBool,
    /// Aborted: the handle is already given back to the engine.
    released: AtomicBool,
}

impl TcpStream {
    pub(crate) fn adopt(shared: Arc<Shared>, conn: ConnHandle, tuple: FourTuple) -> TcpStream {
        TcpStream {
            inner: Arc::new(StreamInner {
                shared,
                conn,
                tuple,
                read_timeout: AtomicU64::new(0),
                write_timeout: AtomicU64::new(0),
                nonblocking: AtomicBool::new(false),
                read_shut: AtomicBool::new(false),
                released: AtomicBool::new(false),
            }),
        }
    }

    /// Active open from our address of the remote's family and an ephemeral port; waits for
    /// the handshake as long as the SYN retransmissions last (`syn_retries`). Each address
    /// `addr` resolves to is tried in turn, as `std::net::TcpStream::connect` does.
    pub fn connect(stack: &Stack, addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        each_addr(addr, |a| {
            TcpStream::connect_inner(stack, None, a, None, None)
        })
    }

    /// As [`TcpStream::connect`] to one address, giving up with `TimedOut` after `timeout`.
    pub fn connect_timeout(
        stack: &Stack,
        remote: SocketAddr,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        TcpStream::connect_inner(stack, None, remote, None, Some(timeout))
    }

    /// Active open from an explicit local address (port 0 = ephemeral).
    pub fn connect_with(
        stack: &Stack,
        local: Option<SocketAddr>,
        remote: SocketAddr,
        timeout: Option<Duration>,
    ) -> io::Result<TcpStream> {
        TcpStream::connect_inner(stack, local, remote, None, timeout)
    }

    /// Active open with socket options set before the SYN goes out (as setsockopt before
    /// connect(2)): a large `recv_buffer` gets its window scale only this way.
    pub fn connect_with_options(
        stack: &Stack,
        remote: SocketAddr,
        opts: ConnOptions,
        timeout: Option<Duration>,
    ) -> io::Result<TcpStream> {
        TcpStream::connect_inner(stack, None, remote, Some(opts), timeout)
    }

    fn connect_inner(
        stack: &Stack,
        local: Option<SocketAddr>,
        remote: SocketAddr,
        opts: Option<ConnOptions>,
        timeout: Option<Duration>,
    ) -> io::Result<TcpStream> {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        let s = TcpStream::start_connect(stack, local, remote, opts)?;
        let conn = s.inner.conn;
        match s
            .inner
            .shared
            .block_on(Key::Conn(conn), deadline, |g, _| connect_op(g, conn))
        {
            None => {
                s.abort();
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect to {remote} timed out"),
                ))
            }
            Some(Err(e)) => Err(e),
            Some(Ok(())) => Ok(s),
        }
    }

    /// Sends the SYN and returns the handle at once (for the async connect).
    pub(crate) fn start_connect(
        stack: &Stack,
        local: Option<SocketAddr>,
        remote: SocketAddr,
        opts: Option<ConnOptions>,
    ) -> io::Result<TcpStream> {
        let shared = stack.shared.clone();
        let local = match local {
            Some(l) => l,
            None => {
                let ip = local_ip(&shared.addrs, remote.is_ipv6()).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::AddrNotAvailable,
                        format!(
                            "the stack has no IPv{} address",
                            if remote.is_ipv6() { 6 } else { 4 }
                        ),
                    )
                })?;
                SocketAddr::new(ip, 0)
            }
        };
        let (conn, tuple) = {
            let mut g = shared.lock();
            let now = shared.begin(&mut g)?;
            let r = start_connect_op(&mut g, now, local, remote, opts);
            shared.finish(&mut g, now);
            r?
        };
        Ok(TcpStream::adopt(shared, conn, tuple))
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn inner(&self) -> &Arc<StreamInner> {
        &self.inner
    }

    pub fn id(&self) -> ConnHandle {
        self.inner.conn
    }

    pub fn tuple(&self) -> FourTuple {
        self.inner.tuple
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.inner.tuple.local)
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.inner.tuple.remote)
    }

    /// The connection's RFC 9293 state (CLOSED once it is gone).
    pub fn state(&self) -> State {
        self.inner
            .shared
            .lock()
            .ep
            .state(self.inner.conn)
            .unwrap_or(State::Closed)
    }

    /// Sequence numbers, windows, queues, RTT and congestion state.
    pub fn info(&self) -> Option<ConnInfo> {
        self.inner.shared.lock().ep.info(self.inner.conn)
    }

    /// Another handle on the same connection (dup(2)): both read and write it, options set
    /// through one apply to both, and the connection closes when the last is dropped.
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream {
            inner: self.inner.clone(),
        })
    }

    /// O_NONBLOCK: `read`, `write` and `peek` return `WouldBlock` instead of waiting.
    /// Shared with clones.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.nonblocking.store(nonblocking, Ordering::Relaxed);
        Ok(())
    }

    /// Receives data without removing it from the receive queue (MSG_PEEK); waits like
    /// `read`.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.inner.read_shut() {
            return Ok(0);
        }
        let conn = self.inner.conn;
        self.inner.wait(&self.inner.read_timeout, "peek", |g, _| {
            peek_op(g, conn, buf)
        })
    }

    /// SO_ERROR: the error that ended the connection (reset, refused, timed out), returned
    /// once; `None` while it is healthy or after it has been taken.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.locked(|g, _, conn| take_error_op(g, conn))
    }

    /// TCP_NODELAY.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.set_options_with(|o| o.nodelay = nodelay)
    }

    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(self.options()?.nodelay)
    }

    /// SO_LINGER, as on Linux: `Some(ZERO)` makes close (the last drop) an abort — RST,
    /// unsent data discarded, no TIME_WAIT; `Some(d)` makes the last drop wait up to `d` while
    /// queued data or our FIN is unacknowledged (then the close goes on in the background);
    /// `None` (the default) closes in the background at once. Times are kept in milliseconds;
    /// a non-zero time below 1 ms counts as 1 ms, never as an abort.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        let linger = linger.map(|d| {
            if d.is_zero() {
                d
            } else {
                d.max(Duration::from_millis(1))
            }
        });
        self.set_options_with(|o| o.linger = linger)
    }

    pub fn linger(&self) -> io::Result<Option<Duration>> {
        Ok(self.options()?.linger)
    }

    /// SO_KEEPALIVE with TCP_KEEPIDLE: probe after `idle` without traffic (`None`: off). The
    /// probe interval and count are in [`TcpStream::set_options`].
    pub fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        self.set_options_with(|o| o.keepalive = idle)
    }

    pub fn keepalive(&self) -> io::Result<Option<Duration>> {
        Ok(self.options()?.keepalive)
    }

    /// Every per-connection option (getsockopt): buffers, MSS, keep-alive, linger, nodelay.
    pub fn options(&self) -> io::Result<ConnOptions> {
        self.inner.locked(|g, _, conn| options_op(g, conn))
    }

    /// setsockopt for all of them at once; an invalid value is `InvalidInput`.
    pub fn set_options(&self, opts: ConnOptions) -> io::Result<()> {
        self.set_options_with(|o| *o = opts)
    }

    fn set_options_with(&self, f: impl FnOnce(&mut ConnOptions)) -> io::Result<()> {
        self.inner
            .locked(|g, now, conn| set_options_op(g, now, conn, f))
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.inner
            .read_timeout
            .store(timeout_micros(t)?, Ordering::Relaxed);
        Ok(())
    }

    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.inner
            .write_timeout
            .store(timeout_micros(t)?, Ordering::Relaxed);
        Ok(())
    }

    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(micros_timeout(
            self.inner.read_timeout.load(Ordering::Relaxed),
        ))
    }

    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(micros_timeout(
            self.inner.write_timeout.load(Ordering::Relaxed),
        ))
    }

    /// `Write` sends our FIN after the queued data (half-close: reading goes on); `Read`
    /// makes further reads return end-of-stream, as Linux does; `Both` does both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// Close with SO_LINGER {on, 0} at once, whatever clones exist: RST to the peer, unsent
    /// data discarded, no TIME_WAIT. The handle is given back to the engine, so calls through
    /// clones fail with `NotConnected`.
    pub fn abort(self) {
        let _ = self.inner.locked(|g, now, conn| Ok(g.ep.abort(now, conn)?));
        self.inner.released.store(true, Ordering::Relaxed);
    }

    /// Zero-copy read: waits as [`Read::read`] does (blocking mode, read timeout), then calls
    /// `take` once with the next contiguous run of received bytes, straight from the
    /// connection's receive buffer, and consumes as many as `take` says (at most the run).
    /// `Ok(Some(r))` is `take`'s answer; `Ok(None)` is end of stream (the peer's FIN, or after
    /// `shutdown(Read)`), where `read` returns 0; errors as `read` reports them, after any data
    /// that arrived before them. A run may be shorter than what is buffered (the buffer is a
    /// ring): call again for the rest.
    ///
    /// `take` runs with the stack locked, so it must be short and must not call into this
    /// stack (that would deadlock); it saves the copy into a `read` buffer, as smoltcp's
    /// `recv` closure does.
    pub fn read_with<R>(&self, take: impl FnOnce(&[u8]) -> (usize, R)) -> io::Result<Option<R>> {
        if self.inner.read_shut() {
            return Ok(None);
        }
        let conn = self.inner.conn;
        let mut take = Some(take);
        self.inner.wait(&self.inner.read_timeout, "read", |g, now| {
            recv_with_op(g, now, conn, &mut take)
        })
    }

    fn read_inner(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.inner.read_shut() {
            return Ok(0);
        }
        let conn = self.inner.conn;
        self.inner.wait(&self.inner.read_timeout, "read", |g, now| {
            recv_op(g, now, conn, buf)
        })
    }

    fn write_inner(&self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let conn = self.inner.conn;
        self.inner
            .wait(&self.inner.write_timeout, "write", |g, now| {
                send_op(g, now, conn, buf)
            })
    }
}

impl StreamInner {
    /// One call under the lock, with the endpoint's clock brought up to now.
    pub(crate) fn locked<T>(
        &self,
        f: impl FnOnce(&mut Inner, Instant, ConnHandle) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut g = self.shared.lock();
        let now = self.shared.begin(&mut g)?;
        let r = f(&mut g, now, self.conn);
        self.shared.finish(&mut g, now);
        r
    }

    /// Runs `op` until it yields, as the socket's blocking mode says: once when non-blocking
    /// (`WouldBlock` if it would wait), else up to the `timeout` (`WouldBlock` after it, as
    /// SO_RCVTIMEO/SO_SNDTIMEO give EAGAIN) or forever.
    fn wait<T>(
        &self,
        timeout: &AtomicU64,
        what: &str,
        op: impl FnMut(&mut Inner, Instant) -> Option<io::Result<T>>,
    ) -> io::Result<T> {
        let nonblocking = self.nonblocking.load(Ordering::Relaxed);
        let deadline = if nonblocking {
            Some(std::time::Instant::now())
        } else {
            micros_timeout(timeout.load(Ordering::Relaxed)).map(|d| std::time::Instant::now() + d)
        };
        match self.shared.block_on(Key::Conn(self.conn), deadline, op) {
            Some(r) => r,
            None if nonblocking => Err(would_block()),
            None => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{what} timed out"),
            )),
        }
    }

    pub(crate) fn read_shut(&self) -> bool {
        self.read_shut.load(Ordering::Relaxed)
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            self.read_shut.store(true, Ordering::Relaxed);
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            self.locked(|g, now, conn| Ok(g.ep.shutdown_write(now, conn)?))?;
        }
        Ok(())
    }
}

impl Drop for StreamInner {
    /// close(2) of the last handle: FIN (RST with linger 0 or unread data), then with a
    /// non-zero SO_LINGER the wait for the peer's acknowledgement.
    fn drop(&mut self) {
        let conn = self.conn;
        let mut linger = None;
        if !self.released.load(Ordering::Relaxed) {
            let mut g = self.shared.lock();
            if let Ok(now) = self.shared.begin(&mut g) {
                linger = close_linger(&g, conn);
                let _ = g.ep.close(now, conn);
                self.shared.finish(&mut g, now);
            }
        }
        if let Some(d) = linger {
            let deadline = std::time::Instant::now() + d;
            let _ = self
                .shared
                .block_on(Key::Conn(conn), Some(deadline), |g, _| {
                    (!still_closing(g, conn)).then_some(Ok(()))
                });
        }
        let mut g = self.shared.lock();
        self.shared.forget(&mut g, Key::Conn(conn));
    }
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("conn", &self.inner.conn)
            .field("tuple", &self.inner.tuple)
            .finish()
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_inner(buf)
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_inner(buf)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_inner(buf)
    }
    /// Data handed to TCP is as flushed as a kernel socket's.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_inner(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn timeout_micros(t: Option<Duration>) -> io::Result<u64> {
    match t {
        None => Ok(0),
        // std::net refuses a zero timeout the same way.
        Some(d) if d.is_zero() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        )),
        Some(d) => Ok((d.as_micros().min(u64::MAX as u128) as u64).max(1)),
    }
}

fn micros_timeout(us: u64) -> Option<Duration> {
    (us != 0).then(|| Duration::from_micros(us))
}
