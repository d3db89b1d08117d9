//! The application's calls: listen, accept, connect, send, receive, shut down, close, abort,
//! options. Each takes `now` (it may arm a timer) and returns its own error type.

use super::{is_non_unicast, Endpoint};
use crate::config::ConfigError;
use crate::conn::{Conn, Owner};
use crate::listener::Listener;
use crate::stats::Counter;
use crate::table::Entry;
use crate::tuple::{unspecified_like, CompactTuple};
use crate::{
    Cause, Config, ConnError, ConnHandle, ConnOptions, ConnectError, Event, FourTuple, Instant,
    InvalidHandle, ListenError, ListenerHandle, RecvError, SendError, ShutdownError, SocketHandle,
    State,
};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use tcpfsm_wire::SeqNum;

/// Options of a listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenOptions {
    pub backlog: u32,
    /// SO_REUSEADDR: may bind while TIME_WAIT connections still use the local port.
    pub reuse_addr: bool,
    /// Options of the connections it accepts (set on the listening socket, as with Linux).
    pub conn: ConnOptions,
}

impl ListenOptions {
    /// A listener with SO_REUSEADDR set (what servers do) and the endpoint's defaults.
    pub fn new(config: &Config, backlog: u32) -> ListenOptions {
        ListenOptions {
            backlog,
            reuse_addr: true,
            conn: config.conn_options(),
        }
    }
}

/// Why `set_options` failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OptionsError {
    InvalidHandle,
    Invalid(ConfigError),
}

impl std::fmt::Display for OptionsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptionsError::InvalidHandle => InvalidHandle.fmt(f),
            OptionsError::Invalid(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for OptionsError {}

/// A listener may bind the unspecified address, never a broadcast or multicast one.
fn is_non_unicast_bind(ip: IpAddr) -> bool {
    !ip.is_unspecified() && is_non_unicast(ip)
}

impl Endpoint {
    /// Runs `f` on the application's connection, then does the bookkeeping its effects need.
    fn with_app_conn<R>(
        &mut self,
        now: Instant,
        conn: ConnHandle,
        f: impl FnOnce(&mut Conn, &mut crate::conn::Ctx<'_>) -> R,
    ) -> Result<R, InvalidHandle> {
        self.last_now = now;
        let slot = self.app_slot(conn).ok_or(InvalidHandle)?;
        let (mut ctx, table) = self.ctx(now);
        let c = table.conn_mut(slot).ok_or(InvalidHandle)?;
        let r = f(c, &mut ctx);
        self.after_conn(slot);
        self.sync_ctl_drops();
        Ok(r)
    }

    // ----- listeners -----

    /// Passive open with SO_REUSEADDR set (what servers do).
    pub fn listen(
        &mut self,
        now: Instant,
        local: SocketAddr,
        backlog: u32,
    ) -> Result<ListenerHandle, ListenError> {
        let opts = ListenOptions::new(&self.config, backlog);
        self.listen_with(now, local, opts)
    }

    pub fn listen_with(
        &mut self,
        now: Instant,
        local: SocketAddr,
        opts: ListenOptions,
    ) -> Result<ListenerHandle, ListenError> {
        self.last_now = now;
        if local.port() == 0 || is_non_unicast_bind(local.ip()) || opts.conn.validate().is_err() {
            return Err(ListenError::InvalidAddr);
        }
        let overlaps = |a: &SocketAddr| {
            a.port() == local.port()
                && a.is_ipv4() == local.is_ipv4()
                && (a.ip() == local.ip() || a.ip().is_unspecified() || local.ip().is_unspecified())
        };
        if self.listeners.iter().any(|l| overlaps(&l.local)) {
            return Err(ListenError::AddrInUse);
        }
        // Without SO_REUSEADDR a port still used by a connection (TIME_WAIT included) cannot
        // be bound: the protection TIME_WAIT exists for.
        if !opts.reuse_addr {
            let used = self
                .time_wait
                .iter()
                .map(|r| r.key.expand().local)
                .chain(self.table.iter().filter_map(|(_, s)| match &s.entry {
                    Entry::Conn(c) if c.state() != State::Closed => Some(c.tuple.local),
                    _ => None,
                }))
                .any(|a| overlaps(&a));
            if used {
                return Err(ListenError::AddrInUse);
            }
        }
        let id = self.alloc_listener();
        let backlog = opts.backlog.clamp(1, self.config.somaxconn.max(1));
        self.listeners.push(Listener {
            id,
            local,
            backlog,
            syn_backlog: backlog.min(self.config.max_syn_backlog.max(1)),
            syn_queue_len: 0,
            accept_queue: VecDeque::new(),
            conn_opts: opts.conn,
        });
        self.events.push_back(Event::StateChanged {
            socket: SocketHandle::Listener(id),
            tuple: FourTuple {
                local,
                remote: unspecified_like(local.ip()),
            },
            from: State::Closed,
            to: State::Listen,
            cause: Cause::PassiveOpen,
        });
        Ok(id)
    }

    /// Closes a listener: half-open entries are dropped and connections never accepted are
    /// reset, as Linux does.
    pub fn close_listener(
        &mut self,
        now: Instant,
        listener: ListenerHandle,
    ) -> Result<(), InvalidHandle> {
        self.last_now = now;
        let pos = self
            .listeners
            .iter()
            .position(|l| l.id == listener)
            .ok_or(InvalidHandle)?;
        let l = self.listeners.remove(pos);
        let dropped: Vec<u32> = self
            .table
            .iter()
            .filter(|(_, s)| matches!(&s.entry, Entry::HalfOpen(h) if h.listener == listener))
            .map(|(slot, _)| slot)
            .collect();
        for slot in dropped {
            self.drop_half_open(slot, State::Closed, Cause::ListenerClosed);
        }
        for id in l.accept_queue {
            if let Some(slot) = self.table.slot_of(id) {
                let (mut ctx, table) = self.ctx(now);
                if let Some(c) = table.conn_mut(slot) {
                    c.abort(&mut ctx);
                }
                self.after_conn(slot);
            }
        }
        self.events.push_back(Event::StateChanged {
            socket: SocketHandle::Listener(listener),
            tuple: FourTuple {
                local: l.local,
                remote: unspecified_like(l.local.ip()),
            },
            from: State::Listen,
            to: State::Closed,
            cause: Cause::ListenerClosed,
        });
        Ok(())
    }

    /// Takes the oldest established connection from the accept queue; `None` if there is none.
    pub fn accept(
        &mut self,
        now: Instant,
        listener: ListenerHandle,
    ) -> Result<Option<ConnHandle>, InvalidHandle> {
        self.last_now = now;
        let l = self
            .listeners
            .iter_mut()
            .find(|l| l.id == listener)
            .ok_or(InvalidHandle)?;
        let Some(id) = l.accept_queue.pop_front() else {
            return Ok(None);
        };
        if let Some(c) = self.table.slot_of(id).and_then(|s| self.table.conn_mut(s)) {
            c.owner = Owner::App;
        }
        Ok(Some(id))
    }

    // ----- active open -----

    /// Active open. A local port of 0 picks an ephemeral port (RFC 6056).
    pub fn connect(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<ConnHandle, ConnectError> {
        let opts = self.config.conn_options();
        self.connect_with(now, local, remote, opts)
    }

    /// Active open with socket options set before connect (SO_RCVBUF, TCP_MAXSEG, …).
    pub fn connect_with(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        opts: ConnOptions,
    ) -> Result<ConnHandle, ConnectError> {
        self.last_now = now;
        if opts.validate().is_err()
            || remote.port() == 0
            || remote.ip().is_unspecified()
            || local.is_ipv4() != remote.is_ipv4()
            || local.ip().is_unspecified()
            || is_non_unicast(local.ip())
            || is_non_unicast(remote.ip())
        {
            return Err(ConnectError::InvalidAddr);
        }
        let (tuple, reused) = if local.port() == 0 {
            self.pick_ephemeral(now, local.ip(), remote)?
        } else {
            let tuple = FourTuple { local, remote };
            match self.tuple_free(now, &tuple) {
                Some(reused) => (tuple, reused),
                None => return Err(ConnectError::AddrNotAvailable),
            }
        };
        let key = CompactTuple::new(&tuple);
        if let Some(rec) = reused {
            self.stats[Counter::TWRecycled] += 1;
            self.events.push_back(Event::StateChanged {
                socket: SocketHandle::Conn(rec.id()),
                tuple,
                from: State::TimeWait,
                to: State::Closed,
                cause: Cause::TimeWaitReused,
            });
        }
        // A reused TIME_WAIT tuple starts beyond the old sequence space (as Linux:
        // tw_snd_nxt + 65535 + 2), so old duplicates cannot fall in the new window.
        let (isn, ts_offset) = self.secrets.isn_and_ts_offset(&key, now);
        let iss = match reused {
            Some(rec) => SeqNum(rec.snd_nxt.wrapping_add(65537)),
            None => SeqNum(isn),
        };
        let ts_offset = self.config.timestamps.then_some(ts_offset);
        let (mut ctx, table) = self.ctx(now);
        let id = table.insert_with(key, |id| {
            let c = Conn::connect(id, tuple, iss, opts, ts_offset, &mut ctx);
            Entry::Conn(ctx.spare.boxed(c))
        });
        self.stats[Counter::ActiveOpens] += 1;
        let slot = self.table.slot_of(id).expect("just inserted");
        self.after_conn(slot);
        Ok(id)
    }

    // ----- application calls on a connection -----

    /// Queues what fits of `data` and returns how much that was: 0 when the send buffer is
    /// full, in which case a [`Event::Writable`] follows once it drains.
    pub fn send(
        &mut self,
        now: Instant,
        conn: ConnHandle,
        data: &[u8],
    ) -> Result<usize, SendError> {
        self.with_app_conn(now, conn, |c, _| c.send(data))?
    }

    /// Zero-copy send: `fill` writes straight into the send buffer's free space (one contiguous
    /// slice, possibly empty) and returns how many bytes it wrote.
    pub fn send_with(
        &mut self,
        now: Instant,
        conn: ConnHandle,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, SendError> {
        self.with_app_conn(now, conn, |c, _| c.send_with(fill))?
    }

    /// Reads received data: `Some(n)` bytes, `Some(0)` at end of stream, `None` when nothing
    /// has arrived yet. Data received before a reset is read first; the reset comes after it.
    pub fn recv(
        &mut self,
        now: Instant,
        conn: ConnHandle,
        buf: &mut [u8],
    ) -> Result<Option<usize>, RecvError> {
        self.with_app_conn(now, conn, |c, _| c.recv(buf))?
    }

    /// Zero-copy receive: `take` sees the next contiguous run of received bytes and returns how
    /// many it consumed. Results as for [`Endpoint::recv`].
    pub fn recv_with(
        &mut self,
        now: Instant,
        conn: ConnHandle,
        take: impl FnOnce(&[u8]) -> usize,
    ) -> Result<Option<usize>, RecvError> {
        self.with_app_conn(now, conn, |c, _| c.recv_with(take))?
    }

    /// Copies received data without consuming it (MSG_PEEK).
    pub fn peek(&self, conn: ConnHandle, buf: &mut [u8]) -> Result<Option<usize>, RecvError> {
        let slot = self.app_slot(conn).ok_or(RecvError::InvalidHandle)?;
        let c = self.table.conn(slot).ok_or(RecvError::InvalidHandle)?;
        c.peek(buf)
    }

    /// shutdown(SHUT_WR): a FIN follows the queued data; reading goes on (half-close).
    pub fn shutdown_write(&mut self, now: Instant, conn: ConnHandle) -> Result<(), ShutdownError> {
        self.with_app_conn(now, conn, |c, ctx| c.shutdown_write(ctx))?
    }

    /// CLOSE: releases the handle. The connection goes on (FIN, TIME_WAIT…) as an orphan; with
    /// SO_LINGER {on, 0} it is aborted instead.
    pub fn close(&mut self, now: Instant, conn: ConnHandle) -> Result<(), InvalidHandle> {
        self.with_app_conn(now, conn, |c, ctx| {
            if c.opts.linger_zero() {
                c.abort(ctx);
            } else {
                c.close(ctx);
            }
        })
    }

    /// ABORT (RFC 9293 §3.10.5): RST, unsent data discarded, no TIME_WAIT; the handle is
    /// released.
    pub fn abort(&mut self, now: Instant, conn: ConnHandle) -> Result<(), InvalidHandle> {
        self.with_app_conn(now, conn, |c, ctx| c.abort(ctx))
    }

    /// setsockopt for one connection.
    pub fn set_options(
        &mut self,
        now: Instant,
        conn: ConnHandle,
        opts: ConnOptions,
    ) -> Result<(), OptionsError> {
        opts.validate().map_err(OptionsError::Invalid)?;
        self.with_app_conn(now, conn, |c, ctx| c.set_options(opts, ctx))
            .map_err(|_| OptionsError::InvalidHandle)
    }

    /// SO_ERROR: the connection's failure, if any, reported once (later reads see end of
    /// stream, as on Linux).
    pub fn take_error(&mut self, conn: ConnHandle) -> Result<Option<ConnError>, InvalidHandle> {
        let slot = self.app_slot(conn).ok_or(InvalidHandle)?;
        Ok(self.table.conn_mut(slot).and_then(|c| c.error.take()))
    }
}
