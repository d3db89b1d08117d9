//! Blocking sockets on our stack, shaped like `std::net`.
//!
//! Errors carry the `std::io::ErrorKind` the Linux kernel's sockets give in the same case
//! (ECONNREFUSED, ECONNRESET, ETIMEDOUT, EADDRNOTAVAIL, EADDRINUSE, EPIPE); read and write
//! timeouts give `WouldBlock` as `SO_RCVTIMEO`/`SO_SNDTIMEO` do (EAGAIN), and `read_exact`
//! hitting the end of the stream gives `UnexpectedEof` (std's `Read` does that for us).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tcpfsm_core::{
    CloseReason, ConnHandle, ConnInfo, FourTuple, Instant, ListenOptions, ListenerHandle, State,
};

use crate::stack::{local_ip, Inner, Key, Shared, Stack};

/// A listening socket of our stack.
pub struct TcpListener {
    shared: Arc<Shared>,
    id: ListenerHandle,
    local: SocketAddr,
}

impl TcpListener {
    /// `bind` + `listen(128)` with SO_REUSEADDR, as servers do.
    pub fn bind(stack: &Stack, addr: SocketAddr) -> io::Result<TcpListener> {
        TcpListener::listen(stack, addr, 128)
    }

    /// `bind` + `listen(backlog)` with SO_REUSEADDR.
    pub fn listen(stack: &Stack, addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
        let opts = ListenOptions::new(&stack.config(), backlog);
        TcpListener::bind_with(stack, addr, opts)
    }

    /// Binds and listens with explicit options. The address must be one of the stack's or
    /// the unspecified address (else `AddrNotAvailable`, as bind(2) says EADDRNOTAVAIL).
    pub fn bind_with(
        stack: &Stack,
        addr: SocketAddr,
        opts: ListenOptions,
    ) -> io::Result<TcpListener> {
        let shared = stack.shared.clone();
        if !addr.ip().is_unspecified() && Some(addr.ip()) != local_ip(&shared.addrs, addr.is_ipv6())
        {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("{} is not an address of this stack", addr.ip()),
            ));
        }
        let id = {
            let mut g = shared.lock();
            let now = shared.begin(&mut g)?;
            let r = g.ep.listen_with(now, addr, opts);
            shared.finish(&mut g, now);
            let id = r.map_err(|e| with_context(e, &format!("listen on {addr}")))?;
            g.slots.insert(Key::Listener(id), Default::default());
            id
        };
        Ok(TcpListener {
            shared,
            id,
            local: addr,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    pub fn id(&self) -> ListenerHandle {
        self.id
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Waits for a connection that finished its handshake.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.accept_deadline(None)
    }

    /// As [`TcpListener::accept`], giving up with `TimedOut` after `timeout`.
    pub fn accept_timeout(&self, timeout: Duration) -> io::Result<(TcpStream, SocketAddr)> {
        self.accept_deadline(Some(std::time::Instant::now() + timeout))
    }

    fn accept_deadline(
        &self,
        deadline: Option<std::time::Instant>,
    ) -> io::Result<(TcpStream, SocketAddr)> {
        let id = self.id;
        match self
            .shared
            .block_on(Key::Listener(id), deadline, |g, now| accept_op(g, now, id))
        {
            None => Err(io::Error::new(io::ErrorKind::TimedOut, "accept timed out")),
            Some(r) => {
                let (conn, tuple) = r?;
                Ok((
                    TcpStream::adopt(self.shared.clone(), conn, tuple),
                    tuple.remote,
                ))
            }
        }
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let mut g = self.shared.lock();
        if let Ok(now) = self.shared.begin(&mut g) {
            let _ = g.ep.close_listener(now, self.id);
            self.shared.finish(&mut g, now);
        }
        self.shared.forget(&mut g, Key::Listener(self.id));
    }
}

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

/// A connection of our stack. `&TcpStream` reads and writes too, so one thread may read
/// while another writes. Dropping it closes gracefully (FIN), like close(2) without linger.
pub struct TcpStream {
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn: ConnHandle,
    tuple: FourTuple,
    /// Microseconds; 0 = none.
    read_timeout: AtomicU64,
    write_timeout: AtomicU64,
    read_shut: AtomicBool,
    released: AtomicBool,
}

impl TcpStream {
    pub(crate) fn adopt(shared: Arc<Shared>, conn: ConnHandle, tuple: FourTuple) -> TcpStream {
        TcpStream {
            shared,
            conn,
            tuple,
            read_timeout: AtomicU64::new(0),
            write_timeout: AtomicU64::new(0),
            read_shut: AtomicBool::new(false),
            released: AtomicBool::new(false),
        }
    }

    /// Active open from our address of the remote's family and an ephemeral port; waits for
    /// the handshake as long as the SYN retransmissions last (`syn_retries`).
    pub fn connect(stack: &Stack, remote: SocketAddr) -> io::Result<TcpStream> {
        TcpStream::connect_with(stack, None, remote, None)
    }

    /// As [`TcpStream::connect`], giving up with `TimedOut` after `timeout`.
    pub fn connect_timeout(
        stack: &Stack,
        remote: SocketAddr,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        TcpStream::connect_with(stack, None, remote, Some(timeout))
    }

    /// Active open from an explicit local address (port 0 = ephemeral).
    pub fn connect_with(
        stack: &Stack,
        local: Option<SocketAddr>,
        remote: SocketAddr,
        timeout: Option<Duration>,
    ) -> io::Result<TcpStream> {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        let s = TcpStream::start_connect(stack, local, remote)?;
        let conn = s.conn;
        match s
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
            let r = g.ep.connect(now, local, remote);
            let conn = match r {
                Ok(c) => c,
                Err(e) => {
                    shared.finish(&mut g, now);
                    return Err(with_context(e, &format!("connect to {remote}")));
                }
            };
            g.slots.insert(Key::Conn(conn), Default::default());
            let tuple =
                g.ep.info(conn)
                    .map(|i| i.tuple)
                    .unwrap_or(FourTuple { local, remote });
            shared.finish(&mut g, now);
            (conn, tuple)
        };
        Ok(TcpStream::adopt(shared, conn, tuple))
    }

    pub fn id(&self) -> ConnHandle {
        self.conn
    }

    pub fn tuple(&self) -> FourTuple {
        self.tuple
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.tuple.local)
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.tuple.remote)
    }

    /// The connection's RFC 9293 state (CLOSED once it is gone).
    pub fn state(&self) -> State {
        self.shared
            .lock()
            .ep
            .state(self.conn)
            .unwrap_or(State::Closed)
    }

    /// Sequence numbers, windows, queues, RTT and congestion state.
    pub fn info(&self) -> Option<ConnInfo> {
        self.shared.lock().ep.info(self.conn)
    }

    /// TCP_NODELAY.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.call(|g, now, conn| {
            let mut o = g.ep.options(conn).ok_or(tcpfsm_core::InvalidHandle)?;
            o.nodelay = nodelay;
            g.ep.set_options(now, conn, o).map_err(io::Error::other)
        })
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.read_timeout
            .store(timeout_micros(t)?, Ordering::Relaxed);
        Ok(())
    }

    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.write_timeout
            .store(timeout_micros(t)?, Ordering::Relaxed);
        Ok(())
    }

    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(micros_timeout(self.read_timeout.load(Ordering::Relaxed)))
    }

    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(micros_timeout(self.write_timeout.load(Ordering::Relaxed)))
    }

    /// `Write` sends our FIN after the queued data (half-close: reading goes on); `Read`
    /// makes further reads return end-of-stream, as Linux does; `Both` does both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            self.read_shut.store(true, Ordering::Relaxed);
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            self.call(|g, now, conn| Ok(g.ep.shutdown_write(now, conn)?))?;
        }
        Ok(())
    }

    /// Close with SO_LINGER {on, 0}: RST to the peer, unsent data discarded, no TIME_WAIT.
    pub fn abort(self) {
        let _ = self.call(|g, now, conn| Ok(g.ep.abort(now, conn)?));
        self.released.store(true, Ordering::Relaxed);
    }

    fn call(
        &self,
        f: impl FnOnce(&mut Inner, Instant, ConnHandle) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut g = self.shared.lock();
        let now = self.shared.begin(&mut g)?;
        let r = f(&mut g, now, self.conn);
        self.shared.finish(&mut g, now);
        r
    }

    pub(crate) fn read_shut(&self) -> bool {
        self.read_shut.load(Ordering::Relaxed)
    }

    fn read_inner(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.read_shut() {
            return Ok(0);
        }
        let conn = self.conn;
        let deadline = deadline_after(self.read_timeout.load(Ordering::Relaxed));
        self.shared
            .block_on(Key::Conn(conn), deadline, |g, now| {
                recv_op(g, now, conn, buf)
            })
            .unwrap_or_else(|| Err(io::Error::new(io::ErrorKind::WouldBlock, "read timed out")))
    }

    fn write_inner(&self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let conn = self.conn;
        let deadline = deadline_after(self.write_timeout.load(Ordering::Relaxed));
        self.shared
            .block_on(Key::Conn(conn), deadline, |g, now| {
                send_op(g, now, conn, buf)
            })
            .unwrap_or_else(|| Err(io::Error::new(io::ErrorKind::WouldBlock, "write timed out")))
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let mut g = self.shared.lock();
        if !self.released.load(Ordering::Relaxed) {
            if let Ok(now) = self.shared.begin(&mut g) {
                let _ = g.ep.close(now, self.conn);
                self.shared.finish(&mut g, now);
            }
        }
        self.shared.forget(&mut g, Key::Conn(self.conn));
    }
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("conn", &self.conn)
            .field("tuple", &self.tuple)
            .finish()
    }
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("id", &self.id)
            .field("local", &self.local)
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
        Err(e) => Some(Err(e.into())),
    }
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
        Err(e) => Some(Err(e.into())),
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

fn with_context(e: impl Into<io::Error>, what: &str) -> io::Error {
    let e: io::Error = e.into();
    io::Error::new(e.kind(), format!("{what}: {e}"))
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

fn deadline_after(us: u64) -> Option<std::time::Instant> {
    micros_timeout(us).map(|d| std::time::Instant::now() + d)
}
