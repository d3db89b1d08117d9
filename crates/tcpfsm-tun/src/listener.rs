//! The listening socket, shaped like `std::net::TcpListener`.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tcpfsm_core::{ListenOptions, ListenerHandle};

use crate::ops::{accept_op, each_addr, with_context, would_block};
use crate::socket::TcpStream;
use crate::stack::{local_ip, Key, Shared, Stack};

/// A listening socket of our stack. Clones made with [`TcpListener::try_clone`] share it (as
/// dup(2) does); it stops listening when the last one is dropped.
pub struct TcpListener {
    inner: Arc<ListenerInner>,
}

struct ListenerInner {
    shared: Arc<Shared>,
    id: ListenerHandle,
    local: SocketAddr,
    /// O_NONBLOCK: shared by every clone, as the flag of one open file description is.
    nonblocking: AtomicBool,
}

impl TcpListener {
    /// `bind` + `listen(128)` with SO_REUSEADDR, as servers do. Each address `addr` resolves
    /// to is tried in turn, as `std::net::TcpListener::bind` does.
    pub fn bind(stack: &Stack, addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        TcpListener::listen(stack, addr, 128)
    }

    /// `bind` + `listen(backlog)` with SO_REUSEADDR.
    pub fn listen(
        stack: &Stack,
        addr: impl ToSocketAddrs,
        backlog: u32,
    ) -> io::Result<TcpListener> {
        let opts = ListenOptions::new(&stack.config(), backlog);
        TcpListener::bind_with(stack, addr, opts)
    }

    /// Binds and listens with explicit options (those of the connections it accepts
    /// included). The address must be one of the stack's or the unspecified address (else
    /// `AddrNotAvailable`, as bind(2) says EADDRNOTAVAIL).
    pub fn bind_with(
        stack: &Stack,
        addr: impl ToSocketAddrs,
        opts: ListenOptions,
    ) -> io::Result<TcpListener> {
        each_addr(addr, |a| TcpListener::bind_one(stack, a, opts))
    }

    fn bind_one(stack: &Stack, addr: SocketAddr, opts: ListenOptions) -> io::Result<TcpListener> {
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
            inner: Arc::new(ListenerInner {
                shared,
                id,
                local: addr,
                nonblocking: AtomicBool::new(false),
            }),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.inner.local)
    }

    pub fn id(&self) -> ListenerHandle {
        self.inner.id
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// Waits for a connection that finished its handshake (`WouldBlock` at once when
    /// non-blocking and none is queued).
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.accept_deadline(None)
    }

    /// As [`TcpListener::accept`], giving up with `TimedOut` after `timeout`.
    pub fn accept_timeout(&self, timeout: Duration) -> io::Result<(TcpStream, SocketAddr)> {
        self.accept_deadline(Some(std::time::Instant::now() + timeout))
    }

    /// An endless iterator of accepted connections, as `std::net::TcpListener::incoming`:
    /// each `next` is an [`accept`](TcpListener::accept).
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// O_NONBLOCK: `accept` returns `WouldBlock` instead of waiting. Shared with clones.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.nonblocking.store(nonblocking, Ordering::Relaxed);
        Ok(())
    }

    /// Another handle on the same listener (dup(2)).
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(TcpListener {
            inner: self.inner.clone(),
        })
    }

    /// SO_ERROR of a listening socket: it never fails on its own, so always `None`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        Ok(None)
    }

    fn accept_deadline(
        &self,
        deadline: Option<std::time::Instant>,
    ) -> io::Result<(TcpStream, SocketAddr)> {
        let nonblocking = self.inner.nonblocking.load(Ordering::Relaxed);
        let id = self.inner.id;
        let shared = &self.inner.shared;
        let deadline = if nonblocking {
            Some(std::time::Instant::now())
        } else {
            deadline
        };
        match shared.block_on(Key::Listener(id), deadline, |g, now| accept_op(g, now, id)) {
            None if nonblocking => Err(would_block()),
            None => Err(io::Error::new(io::ErrorKind::TimedOut, "accept timed out")),
            Some(r) => {
                let (conn, tuple) = r?;
                Ok((TcpStream::adopt(shared.clone(), conn, tuple), tuple.remote))
            }
        }
    }
}

impl Drop for ListenerInner {
    fn drop(&mut self) {
        let mut g = self.shared.lock();
        if let Ok(now) = self.shared.begin(&mut g) {
            let _ = g.ep.close_listener(now, self.id);
            self.shared.finish(&mut g, now);
        }
        self.shared.forget(&mut g, Key::Listener(self.id));
    }
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("id", &self.inner.id)
            .field("local", &self.inner.local)
            .finish()
    }
}

/// The iterator of [`TcpListener::incoming`]; it never returns `None`.
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

impl std::iter::FusedIterator for Incoming<'_> {}
