//! Tokio sockets (feature `tokio`): the same connections as the blocking API, with
//! `AsyncRead`/`AsyncWrite`, readiness (`readable`/`writable` + `try_read`/`try_write`) and
//! split halves, as `tokio::net::TcpStream` offers. A task that must wait leaves its waker in
//! the connection's slot; the driver wakes it on the endpoint's Readable / Writable /
//! StateChanged / Closed events. No tokio reactor is involved, so any executor can poll these
//! futures.

mod split;

use std::future::poll_fn;
use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::task::{Context, Poll};
use std::time::Duration;

use tcpfsm_core::{ConnHandle, ConnInfo, ConnOptions, State};
use tokio::io::ReadBuf;

pub use split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, ReuniteError, WriteHalf};

use crate::listener::TcpListener;
use crate::ops::{
    accept_op, connect_op, no_addresses, peek_op, read_ready_op, recv_op, recv_uninit_op, send_op,
    would_block, write_ready_op,
};
use crate::socket::{StreamInner, TcpStream};
use crate::stack::{Key, Stack};

/// An async connection of our stack.
#[derive(Debug)]
pub struct AsyncTcpStream {
    inner: TcpStream,
}

impl AsyncTcpStream {
    /// Active open; resolves once the handshake completes (or fails). Each address `addr`
    /// resolves to is tried in turn, as tokio does; names resolve with std's resolver on the
    /// calling thread (give an address to never block). Dropping the future before the
    /// handshake ends abandons the attempt (the SYN_SENT connection is closed).
    pub async fn connect(stack: &Stack, addr: impl ToSocketAddrs) -> io::Result<AsyncTcpStream> {
        let mut last = None;
        for a in addr.to_socket_addrs()? {
            match AsyncTcpStream::connect_one(stack, a, None).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(no_addresses))
    }

    /// Active open with socket options set before the SYN (see
    /// [`TcpStream::connect_with_options`]).
    pub async fn connect_with_options(
        stack: &Stack,
        remote: SocketAddr,
        opts: ConnOptions,
    ) -> io::Result<AsyncTcpStream> {
        AsyncTcpStream::connect_one(stack, remote, Some(opts)).await
    }

    async fn connect_one(
        stack: &Stack,
        remote: SocketAddr,
        opts: Option<ConnOptions>,
    ) -> io::Result<AsyncTcpStream> {
        let s = TcpStream::start_connect(stack, None, remote, opts)?;
        let inner = s.inner().clone();
        let conn = inner.conn;
        poll_fn(|cx| {
            inner
                .shared
                .poll_op(Key::Conn(conn), cx.waker(), false, |g, _| {
                    connect_op(g, conn)
                })
        })
        .await?;
        Ok(AsyncTcpStream { inner: s })
    }

    /// Wraps a connected blocking stream (its timeouts and blocking mode no longer apply).
    pub fn from_std(inner: TcpStream) -> AsyncTcpStream {
        AsyncTcpStream { inner }
    }

    pub fn into_std(self) -> TcpStream {
        self.inner
    }

    fn s(&self) -> &StreamInner {
        self.inner.inner()
    }

    pub fn id(&self) -> ConnHandle {
        self.inner.id()
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    pub fn state(&self) -> State {
        self.inner.state()
    }

    pub fn info(&self) -> Option<ConnInfo> {
        self.inner.info()
    }

    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.set_nodelay(nodelay)
    }

    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.nodelay()
    }

    /// SO_LINGER, as [`TcpStream::set_linger`]. As with tokio's `TcpStream::set_linger`, a
    /// non-zero time makes the drop block the thread that runs it (up to that time);
    /// `Some(Duration::ZERO)` (abort on drop) never blocks.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.inner.set_linger(linger)
    }

    pub fn linger(&self) -> io::Result<Option<Duration>> {
        self.inner.linger()
    }

    /// SO_KEEPALIVE with TCP_KEEPIDLE (see [`TcpStream::set_keepalive`]).
    pub fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        self.inner.set_keepalive(idle)
    }

    pub fn keepalive(&self) -> io::Result<Option<Duration>> {
        self.inner.keepalive()
    }

    pub fn options(&self) -> io::Result<ConnOptions> {
        self.inner.options()
    }

    pub fn set_options(&self, opts: ConnOptions) -> io::Result<()> {
        self.inner.set_options(opts)
    }

    /// SO_ERROR, reported once (see [`TcpStream::take_error`]).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    /// Waits until a read would not block: data, end of stream, or an error. Several tasks
    /// may wait at once; the readiness may be gone by the time one calls [`try_read`], which
    /// then says `WouldBlock`.
    ///
    /// [`try_read`]: AsyncTcpStream::try_read
    pub async fn readable(&self) -> io::Result<()> {
        readable(self.s()).await
    }

    /// Waits until a write would not block: room in the send buffer, or an error.
    pub async fn writable(&self) -> io::Result<()> {
        writable(self.s()).await
    }

    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_read_ready(self.s(), cx)
    }

    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_write_ready(self.s(), cx)
    }

    /// Reads what has arrived without waiting: `WouldBlock` when nothing has.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        try_read(self.s(), buf)
    }

    /// Queues what fits without waiting: `WouldBlock` when the send buffer is full.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        try_write(self.s(), buf)
    }

    /// Receives data without removing it (MSG_PEEK), waiting until some has arrived.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        peek(self.s(), buf).await
    }

    /// Borrowed halves: reading and writing from two places of one task (`tokio::join!`).
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        split::split(self)
    }

    /// Owned halves for two tasks. Dropping the write half shuts the write side down (our
    /// FIN), as tokio's `OwnedWriteHalf` does; the connection closes when both are dropped.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        split::into_split(self.inner)
    }

    /// Linger-0 close: RST.
    pub fn abort(self) {
        self.inner.abort()
    }
}

/// `AsyncRead` through [`poll_read`], for the stream and its read halves (each has `s()`).
macro_rules! async_read {
    ($($t:ty),*) => {$(
        impl ::tokio::io::AsyncRead for $t {
            fn poll_read(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &mut ::tokio::io::ReadBuf<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                $crate::async_io::poll_read(self.s(), cx, buf)
            }
        }
    )*};
}

/// `AsyncWrite` through [`poll_write`], for the stream and its write halves (each has `s()`
/// and `shutdown_write(&mut self)`). Flushing has nothing to do: data handed to TCP is as
/// flushed as a kernel socket's.
macro_rules! async_write {
    ($($t:ty),*) => {$(
        impl ::tokio::io::AsyncWrite for $t {
            fn poll_write(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &[u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                $crate::async_io::poll_write(self.s(), cx, buf)
            }
            fn poll_flush(
                self: ::std::pin::Pin<&mut Self>,
                _cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                ::std::task::Poll::Ready(Ok(()))
            }
            /// shutdown(SHUT_WR): our FIN goes out after the queued data.
            fn poll_shutdown(
                self: ::std::pin::Pin<&mut Self>,
                _cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                ::std::task::Poll::Ready(self.get_mut().shutdown_write())
            }
        }
    )*};
}
pub(super) use {async_read, async_write};

async_read!(AsyncTcpStream);
async_write!(AsyncTcpStream);

impl AsyncTcpStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.s().shutdown(Shutdown::Write)
    }
}

// ----- the operations every async type shares (stream and halves) -----

/// `AsyncRead::poll_read` straight into the caller's unfilled (possibly uninitialised)
/// buffer: nothing is zeroed first, whatever `ReadBuf` the caller built.
fn poll_read(s: &StreamInner, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
    if s.read_shut() || buf.remaining() == 0 {
        return Poll::Ready(Ok(()));
    }
    let conn = s.conn;
    // SAFETY: `recv_uninit_op` only writes initialised bytes into the slice (never
    // de-initialises any) and returns how many it wrote, from the front.
    let dst = unsafe { buf.unfilled_mut() };
    match s
        .shared
        .poll_op(Key::Conn(conn), cx.waker(), true, |g, now| {
            recv_uninit_op(g, now, conn, dst)
        }) {
        Poll::Ready(Ok(n)) => {
            // SAFETY: the first `n` unfilled bytes were just written.
            unsafe { buf.assume_init(n) };
            buf.advance(n);
            Poll::Ready(Ok(()))
        }
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    }
}

fn poll_write(s: &StreamInner, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
    if buf.is_empty() {
        return Poll::Ready(Ok(0));
    }
    let conn = s.conn;
    s.shared
        .poll_op(Key::Conn(conn), cx.waker(), false, |g, now| {
            send_op(g, now, conn, buf)
        })
}

fn poll_read_ready(s: &StreamInner, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    if s.read_shut() {
        return Poll::Ready(Ok(()));
    }
    let conn = s.conn;
    s.shared.poll_op(Key::Conn(conn), cx.waker(), true, |g, _| {
        read_ready_op(g, conn)
    })
}

fn poll_write_ready(s: &StreamInner, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    let conn = s.conn;
    s.shared
        .poll_op(Key::Conn(conn), cx.waker(), false, |g, now| {
            write_ready_op(g, now, conn)
        })
}

async fn readable(s: &StreamInner) -> io::Result<()> {
    poll_fn(|cx| poll_read_ready(s, cx)).await
}

async fn writable(s: &StreamInner) -> io::Result<()> {
    poll_fn(|cx| poll_write_ready(s, cx)).await
}

fn try_read(s: &StreamInner, buf: &mut [u8]) -> io::Result<usize> {
    if buf.is_empty() || s.read_shut() {
        return Ok(0);
    }
    s.locked(|g, now, conn| recv_op(g, now, conn, buf).unwrap_or_else(|| Err(would_block())))
}

fn try_write(s: &StreamInner, buf: &[u8]) -> io::Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    s.locked(|g, now, conn| send_op(g, now, conn, buf).unwrap_or_else(|| Err(would_block())))
}

async fn peek(s: &StreamInner, buf: &mut [u8]) -> io::Result<usize> {
    if buf.is_empty() || s.read_shut() {
        return Ok(0);
    }
    let conn = s.conn;
    poll_fn(|cx| {
        s.shared.poll_op(Key::Conn(conn), cx.waker(), true, |g, _| {
            peek_op(g, conn, buf)
        })
    })
    .await
}

/// An async listener of our stack.
#[derive(Debug)]
pub struct AsyncTcpListener {
    inner: TcpListener,
}

impl AsyncTcpListener {
    /// `bind` + `listen(128)`; each address `addr` resolves to is tried in turn.
    pub fn bind(stack: &Stack, addr: impl ToSocketAddrs) -> io::Result<AsyncTcpListener> {
        Ok(AsyncTcpListener {
            inner: TcpListener::bind(stack, addr)?,
        })
    }

    pub fn listen(
        stack: &Stack,
        addr: impl ToSocketAddrs,
        backlog: u32,
    ) -> io::Result<AsyncTcpListener> {
        Ok(AsyncTcpListener {
            inner: TcpListener::listen(stack, addr, backlog)?,
        })
    }

    /// Wraps a blocking listener (its blocking mode no longer applies).
    pub fn from_std(inner: TcpListener) -> AsyncTcpListener {
        AsyncTcpListener { inner }
    }

    pub fn into_std(self) -> TcpListener {
        self.inner
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    pub async fn accept(&self) -> io::Result<(AsyncTcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls for a connection that finished its handshake, as tokio's `poll_accept`.
    pub fn poll_accept(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(AsyncTcpStream, SocketAddr)>> {
        let id = self.inner.id();
        let shared = self.inner.shared();
        shared
            .poll_op(Key::Listener(id), cx.waker(), true, |g, now| {
                accept_op(g, now, id)
            })
            .map_ok(|(conn, tuple)| {
                (
                    AsyncTcpStream {
                        inner: TcpStream::adopt(shared.clone(), conn, tuple),
                    },
                    tuple.remote,
                )
            })
    }
}
