//! Tokio sockets (feature `tokio`): the same connections as the blocking API, with
//! `AsyncRead`/`AsyncWrite`. A task that must wait leaves its waker in the connection's slot;
//! the driver wakes it on the endpoint's Readable / Writable / StateChanged / Closed events.
//! No tokio reactor is involved, so any executor can poll these futures.

use std::future::poll_fn;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use tcpfsm_core::{ConnHandle, ConnInfo, State};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::socket::{accept_op, connect_op, recv_op, send_op, TcpListener, TcpStream};
use crate::stack::{Key, Stack};

/// An async connection of our stack.
#[derive(Debug)]
pub struct AsyncTcpStream {
    inner: TcpStream,
}

impl AsyncTcpStream {
    /// Active open; resolves once the handshake completes (or fails). Dropping the future
    /// before that abandons the attempt (the SYN_SENT connection is closed).
    pub async fn connect(stack: &Stack, remote: SocketAddr) -> io::Result<AsyncTcpStream> {
        let s = TcpStream::start_connect(stack, None, remote)?;
        let conn = s.conn;
        poll_fn(|cx| {
            s.shared
                .poll_op(Key::Conn(conn), cx.waker(), false, |g, _| {
                    connect_op(g, conn)
                })
        })
        .await?;
        Ok(AsyncTcpStream { inner: s })
    }

    /// Wraps a connected blocking stream (its timeouts no longer apply).
    pub fn from_std(inner: TcpStream) -> AsyncTcpStream {
        AsyncTcpStream { inner }
    }

    pub fn into_std(self) -> TcpStream {
        self.inner
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

    /// Linger-0 close: RST.
    pub fn abort(self) {
        self.inner.abort()
    }
}

impl AsyncRead for AsyncTcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let s = &self.inner;
        if s.read_shut() || buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let conn = s.conn;
        let dst = buf.initialize_unfilled();
        match s
            .shared
            .poll_op(Key::Conn(conn), cx.waker(), true, |g, now| {
                recv_op(g, now, conn, dst)
            }) {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for AsyncTcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let s = &self.inner;
        let conn = s.conn;
        s.shared
            .poll_op(Key::Conn(conn), cx.waker(), false, |g, now| {
                send_op(g, now, conn, buf)
            })
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// shutdown(SHUT_WR): our FIN goes out after the queued data.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.inner.shutdown(Shutdown::Write))
    }
}

/// An async listener of our stack.
#[derive(Debug)]
pub struct AsyncTcpListener {
    inner: TcpListener,
}

impl AsyncTcpListener {
    pub fn bind(stack: &Stack, addr: SocketAddr) -> io::Result<AsyncTcpListener> {
        Ok(AsyncTcpListener {
            inner: TcpListener::bind(stack, addr)?,
        })
    }

    pub fn listen(stack: &Stack, addr: SocketAddr, backlog: u32) -> io::Result<AsyncTcpListener> {
        Ok(AsyncTcpListener {
            inner: TcpListener::listen(stack, addr, backlog)?,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    pub async fn accept(&self) -> io::Result<(AsyncTcpStream, SocketAddr)> {
        let id = self.inner.id();
        let shared = self.inner.shared();
        let (conn, tuple) = poll_fn(|cx: &mut Context<'_>| {
            shared.poll_op(Key::Listener(id), cx.waker(), true, |g, now| {
                accept_op(g, now, id)
            })
        })
        .await?;
        Ok((
            AsyncTcpStream {
                inner: TcpStream::adopt(shared.clone(), conn, tuple),
            },
            tuple.remote,
        ))
    }
}
