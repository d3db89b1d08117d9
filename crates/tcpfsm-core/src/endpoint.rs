//! The endpoint: every connection and listener of one host, demultiplexed by 4-tuple.
//!
//! Lookup order for an arriving segment follows Linux: established TCBs, then half-open
//! entries, then TIME_WAIT records, then listeners, and finally the RFC 9293 §3.10.7.1 reset.

use crate::config::ConfigError;
use crate::listener::{HalfOpen, Listener};
use crate::secrets::Secrets;
use crate::tcb::{
    default_peer_mss, our_mss, our_wscale, ts_clock, CtlSegment, Ctx, Owner, PeerSyn, Tcb, TsState,
};
use crate::time_wait::{TimeWaitRecord, TimeWaitTable};
use crate::tuple::{is_loopback, unspecified_like, CompactTuple};
use crate::{
    syncookie, Cause, Census, Config, ConnError, ConnHandle, ConnOptions, ConnectError, Duration,
    Event, FourTuple, Instant, InvalidHandle, ListenError, ListenerHandle, RecvError, SendError,
    ShutdownError, SocketHandle, State, Stats, SynCookies, TwReuse,
};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

/// Maps keyed by our own connection ids: nobody outside chooses them, so the fast unkeyed
/// FxHash is safe there.
type IdMap<V> = HashMap<ConnHandle, V, rustc_hash::FxBuildHasher>;
/// Maps keyed by 4-tuples, which the network chooses: a keyed hash (aHash, seeded from the
/// endpoint's seed) keeps hash-flooding out while costing a fraction of SipHash.
pub(crate) type TupleMap<V> = HashMap<CompactTuple, V, ahash::RandomState>;

pub(crate) fn tuple_map<V>(seed: u64) -> TupleMap<V> {
    HashMap::with_hasher(ahash::RandomState::with_seeds(
        seed,
        seed.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15,
        seed.rotate_left(31) ^ 0xc2b2_ae3d_27d4_eb4f,
        seed.rotate_left(47) ^ 0x1656_67b1_9e37_79f9,
    ))
}
use std::net::{IpAddr, SocketAddr};
use tcpfsm_wire::{self as wire, Flags, SeqNum, TcpOptions, TcpRepr, Timestamps};

/// One datagram written by [`Endpoint::poll_transmit`] into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transmit {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Bytes written at the start of the buffer: a whole IPv4 or IPv6 datagram carrying TCP.
    pub len: usize,
    /// Why the engine sent it, where the wire alone cannot tell (a challenge ACK looks like
    /// any ACK; a SYN-cookie SYN-ACK like any SYN-ACK).
    pub kind: TxKind,
}

/// What a transmitted segment is, in the words of Wireshark's `tcp.analysis` flags where they
/// exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TxKind {
    /// New data, a SYN, a FIN or an ACK with nothing special about it.
    Normal,
    /// Data, SYN, SYN-ACK or FIN sent again (timeout, fast retransmit, or a half-open entry's
    /// SYN-ACK retry).
    Retransmission,
    /// RFC 9293 §3.8.6.1 zero-window probe.
    WindowProbe,
    /// A pure ACK sent because the application's read reopened the window.
    WindowUpdate,
    /// RFC 1122 §4.2.3.6 keep-alive probe.
    KeepAlive,
    /// RFC 5961 challenge ACK (for an in-window RST or SYN, or an out-of-window ACK).
    ChallengeAck,
    /// A SYN-ACK whose ISN is a SYN cookie (no half-open entry kept).
    SynCookie,
    /// An RST.
    Reset,
}

/// A snapshot of one connection, for census tables, `ss`-like listings and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnInfo {
    pub id: ConnHandle,
    pub tuple: FourTuple,
    pub state: State,
    /// The application closed it (or never accepted it); it lives on as an orphan.
    pub orphan: bool,
    pub listener: Option<ListenerHandle>,
    pub snd_una: u32,
    pub snd_nxt: u32,
    pub rcv_nxt: u32,
    pub snd_wnd: u32,
    pub rcv_wnd: u32,
    /// Bytes queued to send, not yet acknowledged.
    pub send_queue: usize,
    /// Bytes received, not yet read by the application.
    pub recv_queue: usize,
    pub srtt: Option<Duration>,
    pub rto: Duration,
    pub cwnd: u32,
    pub ssthresh: u32,
    pub retransmits: u64,
    /// When it entered its current state (for TIME_WAIT records: unknown, the query time).
    pub since: Instant,
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Conn(ConnHandle),
    HalfOpen(CompactTuple),
}

pub struct Endpoint {
    config: Config,
    secrets: Secrets,
    stats: Stats,
    next_id: u64,
    conns: IdMap<Box<Tcb>>,
    by_tuple: TupleMap<ConnHandle>,
    half_open: TupleMap<HalfOpen>,
    time_wait: TimeWaitTable,
    listeners: Vec<Listener>,
    events: VecDeque<Event>,
    ctl: VecDeque<CtlSegment>,
    tx_queue: VecDeque<ConnHandle>,
    timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    scratch: Vec<u8>,
    /// RFC 6056 Algorithm 3's `next_ephemeral` counter.
    port_counter: u32,
    /// The latest time passed in, for TIME_WAIT deadlines kept as millisecond clocks.
    last_now: Instant,
}

/// The handle is not (or no longer) the application's to use.
fn app_tcb(conns: &mut IdMap<Box<Tcb>>, id: ConnHandle) -> Result<&mut Tcb, InvalidHandle> {
    match conns.get_mut(&id) {
        Some(t) if t.owner == Owner::App => Ok(t),
        _ => Err(InvalidHandle),
    }
}

impl Endpoint {
    pub fn new(config: Config, seed: u64) -> Endpoint {
        Endpoint {
            config,
            secrets: Secrets::from_seed(seed),
            stats: Stats::default(),
            next_id: 1,
            conns: IdMap::default(),
            by_tuple: tuple_map(seed),
            half_open: tuple_map(seed ^ 1),
            time_wait: TimeWaitTable::new(seed ^ 2),
            listeners: Vec::new(),
            events: VecDeque::new(),
            ctl: VecDeque::new(),
            tx_queue: VecDeque::new(),
            timers: BinaryHeap::new(),
            scratch: Vec::with_capacity(2048),
            port_counter: 0,
            last_now: Instant::ZERO,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn ctx(&mut self, now: Instant) -> (Ctx<'_>, &mut IdMap<Box<Tcb>>) {
        (
            Ctx {
                now,
                cfg: &self.config,
                events: &mut self.events,
                stats: &mut self.stats,
                ctl: &mut self.ctl,
            },
            &mut self.conns,
        )
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
                .map(|(t, _)| t.expand().local)
                .chain(
                    self.conns
                        .values()
                        .filter(|t| t.state != State::Closed)
                        .map(|t| t.tuple.local),
                )
                .any(|a| overlaps(&a));
            if used {
                return Err(ListenError::AddrInUse);
            }
        }
        let id = ListenerHandle(self.alloc_id());
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
        let dropped: Vec<CompactTuple> = self
            .half_open
            .iter()
            .filter(|(_, h)| h.listener == listener)
            .map(|(k, _)| *k)
            .collect();
        for k in dropped {
            if let Some(h) = self.half_open.remove(&k) {
                self.stats.attempt_fails += 1;
                self.events.push_back(Event::StateChanged {
                    socket: SocketHandle::Conn(h.id),
                    tuple: k.expand(),
                    from: State::SynReceived,
                    to: State::Closed,
                    cause: Cause::ListenerClosed,
                });
            }
        }
        for id in l.accept_queue {
            let (mut ctx, conns) = self.ctx(now);
            if let Some(t) = conns.get_mut(&id) {
                t.abort(&mut ctx);
            }
            self.after_tcb(id);
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
        if let Some(t) = self.conns.get_mut(&id) {
            t.owner = Owner::App;
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
            self.stats.tw_recycled += 1;
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
        let iss = match reused {
            Some(rec) => SeqNum(rec.snd_nxt.wrapping_add(65537)),
            None => SeqNum(self.secrets.isn(&key, now)),
        };
        let id = ConnHandle(self.alloc_id());
        let ts_offset = self.secrets.ts_offset(&key);
        let timestamps = self.config.timestamps;
        let (mut ctx, conns) = self.ctx(now);
        let mut tcb = Tcb::connect(id, tuple, iss, opts, &mut ctx);
        if timestamps {
            tcb.ts = Some(TsState {
                recent: 0,
                offset: ts_offset,
            });
        }
        conns.insert(id, Box::new(tcb));
        self.by_tuple.insert(key, id);
        self.stats.active_opens += 1;
        self.after_tcb(id);
        Ok(id)
    }

    /// Whether `tuple` can carry a new connection: `Some(None)` free, `Some(Some(rec))` free by
    /// taking over a TIME_WAIT record under tw_reuse, `None` in use.
    fn tuple_free(&mut self, now: Instant, tuple: &FourTuple) -> Option<Option<TimeWaitRecord>> {
        let key = CompactTuple::new(tuple);
        if self.by_tuple.contains_key(&key) || self.half_open.contains_key(&key) {
            return None;
        }
        let Some(rec) = self.time_wait.get(&key) else {
            return Some(None);
        };
        // Linux tcp_twsk_unique(): reuse needs timestamps on the old connection, the sysctl,
        // and a TIME_WAIT at least one second old, so the new TSval is surely larger and
        // the peer's PAWS rejects old duplicates.
        let allowed = match self.config.tw_reuse {
            TwReuse::Off => false,
            TwReuse::On => true,
            TwReuse::LoopbackOnly => is_loopback(tuple),
        };
        let age = self
            .config
            .time_wait_duration()
            .saturating_sub(rec.remaining(now));
        if allowed
            && self.config.timestamps
            && rec.ts_recent().is_some()
            && age >= Duration::from_secs(1)
        {
            let rec = self.time_wait.remove(&key)?;
            return Some(Some(rec));
        }
        None
    }

    /// RFC 6056 §3.3.3 Algorithm 3: start at a keyed hash of the destination plus a counter,
    /// then search the range linearly.
    fn pick_ephemeral(
        &mut self,
        now: Instant,
        local_ip: IpAddr,
        remote: SocketAddr,
    ) -> Result<(FourTuple, Option<TimeWaitRecord>), ConnectError> {
        let (lo, hi) = self.config.ephemeral_ports;
        if lo == 0 || hi < lo {
            return Err(ConnectError::AddrNotAvailable);
        }
        let n = (hi - lo) as u32 + 1;
        let lbytes = CompactTuple::new(&FourTuple {
            local: SocketAddr::new(local_ip, 0),
            remote,
        })
        .hash_input();
        let offset = self
            .secrets
            .port_offset(&lbytes[..16], &lbytes[16..32], remote.port());
        for i in 0..n {
            let port = lo + ((offset.wrapping_add(self.port_counter).wrapping_add(i)) % n) as u16;
            let local = SocketAddr::new(local_ip, port);
            // A port bound by a listener is not ephemeral.
            if self.listeners.iter().any(|l| l.matches(local)) {
                continue;
            }
            let tuple = FourTuple { local, remote };
            if let Some(reused) = self.tuple_free(now, &tuple) {
                self.port_counter = self.port_counter.wrapping_add(i + 1);
                return Ok((tuple, reused));
            }
        }
        Err(ConnectError::AddrNotAvailable)
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
        self.last_now = now;
        let n = app_tcb(&mut self.conns, conn)?.send(data)?;
        self.after_tcb(conn);
        Ok(n)
    }

    /// Zero-copy send: `fill` writes straight into the send buffer's free space (one contiguous
    /// slice, possibly empty) and returns how many bytes it wrote.
    pub fn send_with(
        &mut self,
        now: Instant,
        conn: ConnHandle,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, SendError> {
        self.last_now = now;
        let n = app_tcb(&mut self.conns, conn)?.send_with(usize::MAX, fill)?;
        self.after_tcb(conn);
        Ok(n)
    }

    /// Reads received data: `Some(n)` bytes, `Some(0)` at end of stream, `None` when nothing
    /// has arrived yet. Data received before a reset is read first; the reset comes after it.
    pub fn recv(
        &mut self,
        now: Instant,
        conn: ConnHandle,
        buf: &mut [u8],
    ) -> Result<Option<usize>, RecvError> {
        self.last_now = now;
        let r = app_tcb(&mut self.conns, conn)?.recv(buf);
        self.after_tcb(conn);
        r
    }

    /// Zero-copy receive: `take` sees the next contiguous run of received bytes and returns how
    /// many it consumed. Results as for [`Endpoint::recv`].
    pub fn recv_with(
        &mut self,
        now: Instant,
        conn: ConnHandle,
        take: impl FnOnce(&[u8]) -> usize,
    ) -> Result<Option<usize>, RecvError> {
        self.last_now = now;
        let r = app_tcb(&mut self.conns, conn)?.recv_with(take);
        self.after_tcb(conn);
        r
    }

    /// Copies received data without consuming it (MSG_PEEK).
    pub fn peek(&mut self, conn: ConnHandle, buf: &mut [u8]) -> Result<Option<usize>, RecvError> {
        app_tcb(&mut self.conns, conn)?.peek(buf)
    }

    /// shutdown(SHUT_WR): a FIN follows the queued data; reading goes on (half-close).
    pub fn shutdown_write(&mut self, now: Instant, conn: ConnHandle) -> Result<(), ShutdownError> {
        self.last_now = now;
        let (mut ctx, conns) = self.ctx(now);
        let r = app_tcb(conns, conn)?.shutdown_write(&mut ctx);
        self.after_tcb(conn);
        r
    }

    /// CLOSE: releases the handle. The connection goes on (FIN, TIME_WAIT…) as an orphan; with
    /// SO_LINGER {on, 0} it is aborted instead.
    pub fn close(&mut self, now: Instant, conn: ConnHandle) -> Result<(), InvalidHandle> {
        self.last_now = now;
        let (mut ctx, conns) = self.ctx(now);
        let t = app_tcb(conns, conn)?;
        if t.opts.linger == Some(Duration::ZERO) {
            t.abort(&mut ctx);
        } else {
            t.close(&mut ctx);
        }
        self.after_tcb(conn);
        Ok(())
    }

    /// ABORT (RFC 9293 §3.10.5): RST, unsent data discarded, no TIME_WAIT; the handle is
    /// released.
    pub fn abort(&mut self, now: Instant, conn: ConnHandle) -> Result<(), InvalidHandle> {
        self.last_now = now;
        let (mut ctx, conns) = self.ctx(now);
        app_tcb(conns, conn)?.abort(&mut ctx);
        self.after_tcb(conn);
        Ok(())
    }

    /// setsockopt for one connection.
    pub fn set_options(
        &mut self,
        now: Instant,
        conn: ConnHandle,
        opts: ConnOptions,
    ) -> Result<(), OptionsError> {
        self.last_now = now;
        opts.validate().map_err(OptionsError::Invalid)?;
        let (mut ctx, conns) = self.ctx(now);
        app_tcb(conns, conn)
            .map_err(|_| OptionsError::InvalidHandle)?
            .set_options(opts, &mut ctx);
        self.after_tcb(conn);
        Ok(())
    }

    /// getsockopt for one connection.
    pub fn options(&self, conn: ConnHandle) -> Option<ConnOptions> {
        self.conns.get(&conn).map(|t| t.opts)
    }

    /// SO_ERROR: the connection's failure, if any, reported once (later reads see end of
    /// stream, as on Linux).
    pub fn take_error(&mut self, conn: ConnHandle) -> Result<Option<ConnError>, InvalidHandle> {
        Ok(app_tcb(&mut self.conns, conn)?.error.take())
    }

    pub fn state(&self, conn: ConnHandle) -> Option<State> {
        self.conns.get(&conn).map(|t| t.state)
    }

    pub fn info(&self, conn: ConnHandle) -> Option<ConnInfo> {
        self.conns.get(&conn).map(|t| tcb_info(t))
    }

    /// Every connection this endpoint knows: listeners, half-open entries, TCBs and TIME_WAIT
    /// records. CLOSED TCBs still held by the application are left out.
    pub fn connections(&self) -> Vec<ConnInfo> {
        let now = self.last_now;
        let mut v: Vec<ConnInfo> = Vec::new();
        for l in &self.listeners {
            v.push(ConnInfo {
                recv_queue: l.accept_queue.len(),
                send_queue: l.backlog as usize,
                ..bare_info(
                    ConnHandle(l.id.0),
                    FourTuple {
                        local: l.local,
                        remote: unspecified_like(l.local.ip()),
                    },
                    State::Listen,
                    now,
                )
            });
        }
        for (k, h) in &self.half_open {
            v.push(ConnInfo {
                listener: Some(h.listener),
                snd_una: h.iss,
                snd_nxt: h.iss.wrapping_add(1),
                rcv_nxt: h.irs.wrapping_add(1),
                retransmits: h.retries as u64,
                ..bare_info(h.id, k.expand(), State::SynReceived, now)
            });
        }
        for t in self.conns.values() {
            if !matches!(t.state, State::Closed | State::TimeWait) {
                v.push(tcb_info(t));
            }
        }
        for (k, r) in self.time_wait.iter() {
            v.push(ConnInfo {
                orphan: true,
                snd_una: r.snd_nxt,
                snd_nxt: r.snd_nxt,
                rcv_nxt: r.rcv_nxt,
                ..bare_info(r.id(), k.expand(), State::TimeWait, now)
            });
        }
        v.sort_by_key(|c| c.id);
        v
    }

    /// Counts by state; all eleven are present.
    pub fn census(&self) -> Census {
        let mut c = Census::new();
        c.add(State::Listen, self.listeners.len() as u64);
        c.add(State::SynReceived, self.half_open.len() as u64);
        c.add(State::TimeWait, self.time_wait.len() as u64);
        for t in self.conns.values() {
            if !matches!(t.state, State::Closed | State::TimeWait | State::Listen) {
                c.add(t.state, 1);
            }
        }
        c
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    // ----- input -----

    /// Handles one IPv4 or IPv6 datagram carrying TCP. Malformed input is counted (InErrs,
    /// InCsumErrors) and dropped.
    pub fn handle_packet(&mut self, now: Instant, datagram: &[u8]) {
        self.last_now = now;
        let parsed = match wire::parse_ip_tcp(datagram) {
            Ok(p) => p,
            Err(e) => {
                self.stats.in_errs += 1;
                if e == wire::Error::BadTcpChecksum {
                    self.stats.in_csum_errors += 1;
                }
                return;
            }
        };
        self.stats.in_segs += 1;
        let seg = parsed.tcp;
        let tuple = FourTuple {
            local: SocketAddr::new(parsed.dst, seg.dst_port),
            remote: SocketAddr::new(parsed.src, seg.src_port),
        };
        // RFC 9293 §3.9.1 / RFC 1122 §4.2.3.10: no connections to or from broadcast,
        // multicast or unspecified addresses; port 0 is never valid.
        if seg.src_port == 0
            || seg.dst_port == 0
            || is_non_unicast(parsed.src)
            || is_non_unicast(parsed.dst)
        {
            self.stats.in_errs += 1;
            return;
        }
        let key = CompactTuple::new(&tuple);
        if let Some(&id) = self.by_tuple.get(&key) {
            let (mut ctx, conns) = self.ctx(now);
            if let Some(t) = conns.get_mut(&id) {
                t.on_segment(&seg, &mut ctx);
            }
            self.after_tcb(id);
            return;
        }
        if self.half_open.contains_key(&key) {
            self.on_half_open_segment(now, key, tuple, &seg);
            return;
        }
        let mut isn_floor = None;
        if self.time_wait.get(&key).is_some() {
            match self.on_time_wait_segment(now, key, tuple, &seg) {
                Some(floor) => isn_floor = Some(floor),
                None => return,
            }
        }
        if let Some(li) = self.listeners.iter().position(|l| l.matches(tuple.local)) {
            self.on_listen_segment(now, li, key, tuple, &seg, isn_floor);
            return;
        }
        self.reply_reset(tuple, &seg);
    }

    /// RFC 9293 §3.10.7.1: a segment for no connection is answered with RST (unless it is one).
    fn reply_reset(&mut self, tuple: FourTuple, seg: &TcpRepr<'_>) {
        if !seg.flags.contains(Flags::RST) {
            self.ctl.push_back(CtlSegment::reset_for(tuple, seg));
            self.stats.out_rsts += 1;
        }
    }

    /// RFC 9293 §3.10.7.2, plus SYN cookies and the Linux queue limits.
    fn on_listen_segment(
        &mut self,
        now: Instant,
        li: usize,
        key: CompactTuple,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
        isn_floor: Option<SeqNum>,
    ) {
        let f = seg.flags;
        if f.contains(Flags::RST) {
            return;
        }
        if f.contains(Flags::ACK) && !f.contains(Flags::SYN) {
            if self.config.syncookies != SynCookies::Off {
                if self.try_syn_cookie(now, li, key, tuple, seg) {
                    return;
                }
                self.stats.syncookies_failed += 1;
            }
            self.reply_reset(tuple, seg);
            return;
        }
        if !f.contains(Flags::SYN) {
            return;
        }
        if f.contains(Flags::ACK) {
            self.reply_reset(tuple, seg);
            return;
        }
        if f.contains(Flags::FIN) {
            // SYN+FIN is never legitimate; Linux drops it at a listener.
            return;
        }
        let l = &self.listeners[li];
        let lid = l.id;
        if l.accept_queue_full() {
            // Linux drops SYNs while the accept queue is full (ListenOverflows).
            self.stats.listen_overflows += 1;
            self.stats.listen_drops += 1;
            return;
        }
        let use_cookie = match self.config.syncookies {
            SynCookies::Always => true,
            SynCookies::OnOverflow => l.syn_queue_full(),
            SynCookies::Off => false,
        };
        let mut peer = PeerSyn::from_options(&seg.options);
        if use_cookie {
            if peer.tsval.is_none() || !self.config.timestamps {
                // Without timestamps the cookie cannot carry window scale or SACK.
                peer.wscale = None;
                peer.sack = false;
            }
            let mss = peer.mss.unwrap_or(default_peer_mss(&tuple)).min(our_mss(
                &self.config,
                &l.conn_opts,
                &tuple,
            ));
            let cookie = syncookie::encode(&self.secrets, &key, seg.seq.0, mss, now);
            self.stats.syncookies_sent += 1;
            let opts = l.conn_opts;
            self.queue_synack(
                now,
                tuple,
                key,
                cookie,
                seg.seq.0.wrapping_add(1),
                peer,
                &opts,
                TxKind::SynCookie,
            );
            return;
        }
        if l.syn_queue_full() {
            self.stats.listen_drops += 1;
            return;
        }
        let id = self.new_passive(tuple, Cause::SynReceived);
        let iss = match isn_floor {
            Some(f) => f.0,
            None => self.secrets.isn(&key, now),
        };
        let rtx_at = now + self.config.rto_initial;
        let h = HalfOpen::new(id, lid, iss, seg.seq.0, peer, rtx_at);
        self.half_open.insert(key, h);
        self.listeners[li].syn_queue_len += 1;
        let opts = self.listeners[li].conn_opts;
        self.queue_synack(
            now,
            tuple,
            key,
            iss,
            seg.seq.0.wrapping_add(1),
            peer,
            &opts,
            TxKind::Normal,
        );
        self.timers.push(Reverse((rtx_at, TimerKey::HalfOpen(key))));
    }

    #[allow(clippy::too_many_arguments)]
    fn queue_synack(
        &mut self,
        now: Instant,
        tuple: FourTuple,
        key: CompactTuple,
        iss: u32,
        ack: u32,
        peer: PeerSyn,
        opts: &ConnOptions,
        kind: TxKind,
    ) {
        let synack = self.synack(now, tuple, &key, iss, ack, peer, opts, kind);
        self.ctl.push_back(synack);
    }

    /// The SYN-ACK of a half-open entry or a SYN cookie: it answers only the options the peer
    /// offered (RFC 7323 §2.2, §3.2; RFC 2018 §2).
    #[allow(clippy::too_many_arguments)]
    fn synack(
        &self,
        now: Instant,
        tuple: FourTuple,
        key: &CompactTuple,
        iss: u32,
        ack: u32,
        peer: PeerSyn,
        opts: &ConnOptions,
        kind: TxKind,
    ) -> CtlSegment {
        let cfg = &self.config;
        let cookie = kind == TxKind::SynCookie;
        let mut options = TcpOptions {
            mss: Some(our_mss(cfg, opts, &tuple)),
            ..TcpOptions::default()
        };
        let wscale =
            (cfg.window_scaling && peer.wscale.is_some()).then(|| our_wscale(opts.recv_buffer));
        options.window_scale = wscale;
        options.sack_permitted = cfg.sack && peer.sack;
        if let (true, Some(tsval)) = (cfg.timestamps, peer.tsval) {
            let mut ours = ts_clock(now, self.secrets.ts_offset(key));
            if cookie {
                ours = syncookie::encode_ts_options(ours, peer.wscale, options.sack_permitted);
            }
            options.timestamps = Some(Timestamps {
                tsval: ours,
                tsecr: tsval,
            });
        }
        CtlSegment {
            tuple,
            seq: SeqNum(iss),
            ack: SeqNum(ack),
            flags: Flags::SYN | Flags::ACK,
            window: opts.recv_buffer.min(65535) as u16,
            options,
            kind,
        }
    }

    /// A new passively opened connection: LISTEN → SYN_RECEIVED (RFC 4022 tcpPassiveOpens).
    fn new_passive(&mut self, tuple: FourTuple, cause: Cause) -> ConnHandle {
        let id = ConnHandle(self.alloc_id());
        self.stats.passive_opens += 1;
        self.events.push_back(Event::StateChanged {
            socket: SocketHandle::Conn(id),
            tuple,
            from: State::Listen,
            to: State::SynReceived,
            cause,
        });
        id
    }

    /// An ACK at a listener: does it carry one of our SYN cookies?
    fn try_syn_cookie(
        &mut self,
        now: Instant,
        li: usize,
        key: CompactTuple,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
    ) -> bool {
        let irs = seg.seq - 1u32;
        let iss = seg.ack - 1u32;
        let Some(mss) = syncookie::decode(&self.secrets, &key, irs.0, iss.0, now) else {
            return false;
        };
        if self.listeners[li].accept_queue_full() {
            self.stats.listen_overflows += 1;
            self.stats.listen_drops += 1;
            return true;
        }
        self.stats.syncookies_recv += 1;
        let (wscale, sack, tsval) = match seg.options.timestamps {
            Some(ts) if self.config.timestamps => {
                let (ws, sack) = syncookie::decode_ts_options(ts.tsecr);
                (ws, sack, Some(ts.tsval))
            }
            _ => (None, false, None),
        };
        let peer = PeerSyn {
            mss: Some(mss),
            wscale,
            sack,
            tsval,
        };
        let id = self.new_passive(tuple, Cause::SynCookieAcked);
        let lid = self.listeners[li].id;
        let h = HalfOpen::new(id, lid, iss.0, irs.0, peer, now);
        self.promote(now, li, key, tuple, h, seg);
        true
    }

    /// The handshake's ACK for a half-open entry: build the TCB and queue it for accept.
    ///
    /// Returns false, keeping no TCB, when the segment does not establish the connection (its
    /// sequence number is outside the window): the entry stays half-open, in its compact form,
    /// and only the ACK RFC 9293 asks for goes out.
    fn promote(
        &mut self,
        now: Instant,
        li: usize,
        key: CompactTuple,
        tuple: FourTuple,
        h: HalfOpen,
        seg: &TcpRepr<'_>,
    ) -> bool {
        let ts_offset = self.secrets.ts_offset(&key);
        let lid = self.listeners[li].id;
        let mut tcb = Tcb::from_half_open(
            h.id,
            tuple,
            lid,
            SeqNum(h.iss),
            SeqNum(h.irs),
            h.peer(),
            ts_offset,
            now,
            &self.config,
            self.listeners[li].conn_opts,
        );
        let (mut ctx, conns) = self.ctx(now);
        tcb.on_segment(seg, &mut ctx);
        if tcb.state == State::SynReceived {
            if tcb.ack_pending() {
                self.ctl.push_back(CtlSegment {
                    tuple,
                    seq: SeqNum(h.iss.wrapping_add(1)),
                    ack: SeqNum(h.irs.wrapping_add(1)),
                    flags: Flags::ACK,
                    window: tcb.window_field(),
                    options: TcpOptions::default(),
                    kind: TxKind::Normal,
                });
            }
            return false;
        }
        let id = tcb.id;
        conns.insert(id, Box::new(tcb));
        self.by_tuple.insert(key, id);
        self.listeners[li].accept_queue.push_back(id);
        self.events.push_back(Event::Acceptable {
            listener: lid,
            conn: id,
        });
        self.after_tcb(id);
        true
    }

    /// RFC 9293 §3.10.7.4 for a passively opened SYN_RECEIVED connection kept as a half-open
    /// entry.
    fn on_half_open_segment(
        &mut self,
        now: Instant,
        key: CompactTuple,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
    ) {
        let Some(h) = self.half_open.get(&key).copied() else {
            return;
        };
        let f = seg.flags;
        let rcv_nxt = SeqNum(h.irs.wrapping_add(1));
        let li = self.listeners.iter().position(|l| l.id == h.listener);
        if f.contains(Flags::RST) {
            // RFC 5961 §3.2: only an exact RST resets; the entry returns to LISTEN.
            if seg.seq == rcv_nxt {
                self.drop_half_open(&key, State::Listen, Cause::ResetReceived);
            }
            return;
        }
        if f.contains(Flags::SYN) {
            if !f.contains(Flags::ACK) && seg.seq.0 == h.irs {
                // A retransmitted SYN: our SYN-ACK may have been lost. Echo the newest TSval
                // (RFC 7323 §4.3), or the peer's first RTT sample spans its SYN timeout.
                if let (Some(ts), Some(h)) = (seg.options.timestamps, self.half_open.get_mut(&key))
                {
                    h.peer_tsval = ts.tsval;
                }
                let h = self.half_open[&key];
                self.resend_synack(now, key, &h);
                return;
            }
            // RFC 9293 §3.10.7.4, fourth step: any other SYN returns a passively opened
            // connection to LISTEN (Linux answers it with RST: "embryonic reset").
            self.reply_reset(tuple, seg);
            self.drop_half_open(&key, State::Listen, Cause::UnexpectedSyn);
            return;
        }
        if !f.contains(Flags::ACK) {
            return;
        }
        if seg.ack.0 != h.iss.wrapping_add(1) {
            // RFC 9293: an unacceptable ACK in SYN-RECEIVED gets <SEQ=SEG.ACK><CTL=RST>.
            self.reply_reset(tuple, seg);
            return;
        }
        let Some(li) = li else { return };
        if self.listeners[li].accept_queue_full() {
            // Linux drops the ACK and lets the SYN-ACK retransmission try again.
            self.stats.listen_overflows += 1;
            self.stats.listen_drops += 1;
            return;
        }
        if self.promote(now, li, key, tuple, h, seg) {
            self.half_open.remove(&key);
            self.listeners[li].syn_queue_len = self.listeners[li].syn_queue_len.saturating_sub(1);
        }
    }

    fn drop_half_open(&mut self, key: &CompactTuple, to: State, cause: Cause) {
        let Some(h) = self.half_open.remove(key) else {
            return;
        };
        if let Some(l) = self.listeners.iter_mut().find(|l| l.id == h.listener) {
            l.syn_queue_len = l.syn_queue_len.saturating_sub(1);
        }
        self.stats.attempt_fails += 1;
        self.events.push_back(Event::StateChanged {
            socket: SocketHandle::Conn(h.id),
            tuple: key.expand(),
            from: State::SynReceived,
            to,
            cause,
        });
    }

    fn time_wait_ack(&self, now: Instant, key: &CompactTuple, rec: &TimeWaitRecord) -> CtlSegment {
        let mut options = TcpOptions::default();
        if let Some(recent) = rec.ts_recent() {
            options.timestamps = Some(Timestamps {
                tsval: ts_clock(now, self.secrets.ts_offset(key)),
                tsecr: recent,
            });
        }
        CtlSegment {
            tuple: key.expand(),
            seq: SeqNum(rec.snd_nxt),
            ack: SeqNum(rec.rcv_nxt),
            flags: Flags::ACK,
            window: rec.window,
            options,
            kind: TxKind::Normal,
        }
    }

    /// TIME_WAIT (RFC 9293 §3.10.7.4, RFC 6191, RFC 5961). Returns `Some(isn)` when a SYN
    /// legitimately reopens the 4-tuple and should go on to the listener.
    fn on_time_wait_segment(
        &mut self,
        now: Instant,
        key: CompactTuple,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
    ) -> Option<SeqNum> {
        let rec = *self.time_wait.get(&key)?;
        let f = seg.flags;
        let rcv_nxt = SeqNum(rec.rcv_nxt);
        if f.contains(Flags::RST) {
            if seg.seq == rcv_nxt {
                self.time_wait.remove(&key);
                self.stats.tw_killed += 1;
                self.tw_closed(rec, tuple, Cause::ResetReceived);
            }
            return None;
        }
        let seg_ts = seg.options.timestamps;
        if f.contains(Flags::SYN) && !f.contains(Flags::ACK) {
            // RFC 6191 §2: a newer timestamp, or without timestamps a higher sequence number
            // (RFC 1122 §4.2.2.13), proves the SYN is not an old duplicate.
            let newer = match (rec.ts_recent(), seg_ts) {
                (Some(recent), Some(ts)) => (ts.tsval.wrapping_sub(recent) as i32) > 0,
                _ => seg.seq.gt(rcv_nxt),
            };
            let listening = self.listeners.iter().any(|l| l.matches(tuple.local));
            if newer && listening {
                self.time_wait.remove(&key);
                self.tw_closed(rec, tuple, Cause::TimeWaitReopened);
                return Some(SeqNum(rec.snd_nxt.wrapping_add(65537)));
            }
            self.stats.challenge_acks += 1;
            let mut ack = self.time_wait_ack(now, &key, &rec);
            ack.kind = TxKind::ChallengeAck;
            self.ctl.push_back(ack);
            return None;
        }
        if let (Some(recent), Some(ts)) = (rec.ts_recent(), seg_ts) {
            if (ts.tsval.wrapping_sub(recent) as i32) < 0 {
                // RFC 7323 §5.3 PAWS.
                self.stats.paws_rejected += 1;
                self.ctl.push_back(self.time_wait_ack(now, &key, &rec));
                return None;
            }
            if let Some(r) = self.time_wait.get_mut(&key) {
                r.set_ts_recent(ts.tsval);
            }
        }
        let end = seg.seq.wrapping_add(seg.segment_len());
        if f.contains(Flags::FIN) && end == rcv_nxt {
            // The peer's FIN again: our ACK was lost. ACK again and restart 2 MSL.
            self.time_wait
                .restart(&key, now + self.config.time_wait_duration());
            let rec = *self.time_wait.get(&key)?;
            self.ctl.push_back(self.time_wait_ack(now, &key, &rec));
            return None;
        }
        if seg.segment_len() > 0 || f.contains(Flags::SYN) {
            // Anything else that occupies sequence space is unacceptable: ACK it.
            self.ctl.push_back(self.time_wait_ack(now, &key, &rec));
        }
        None
    }

    fn tw_closed(&mut self, rec: TimeWaitRecord, tuple: FourTuple, cause: Cause) {
        self.events.push_back(Event::StateChanged {
            socket: SocketHandle::Conn(rec.id()),
            tuple,
            from: State::TimeWait,
            to: State::Closed,
            cause,
        });
        if let Some(t) = self.conns.get_mut(&rec.id()) {
            t.state = State::Closed;
        }
    }

    /// Bookkeeping after a TCB handled anything: TIME_WAIT conversion, removal of closed
    /// connections, timer and transmit scheduling.
    fn after_tcb(&mut self, id: ConnHandle) {
        let Some(t) = self.conns.get_mut(&id) else {
            return;
        };
        match t.state {
            State::TimeWait => {
                if !self.by_tuple.contains_key(&CompactTuple::new(&t.tuple)) {
                    // Already a TIME_WAIT record; this TCB only kept the application's handle,
                    // which is now released.
                    if t.owner != Owner::App {
                        self.conns.remove(&id);
                    }
                    return;
                }
                let key = CompactTuple::new(&t.tuple);
                self.by_tuple.remove(&key);
                let now = self.last_now;
                let rec = TimeWaitRecord::new(
                    id,
                    t.rcv_nxt.0,
                    t.snd_nxt.0,
                    t.ts.map(|ts| ts.recent),
                    t.window_field(),
                    now + self.config.time_wait_duration(),
                );
                let needs_ack = t.ack_pending();
                let tuple = t.tuple;
                let keep = t.owner == Owner::App;
                if needs_ack {
                    let ack = self.time_wait_ack(now, &key, &rec);
                    self.ctl.push_back(ack);
                    self.stats.out_segs += 1;
                }
                if self.time_wait.len() as u64 >= self.config.max_tw_buckets as u64 {
                    // Linux "TCPTimeWaitOverflow": the table is full, skip TIME_WAIT.
                    self.stats.tw_killed += 1;
                    self.tw_closed(rec, tuple, Cause::TimeWaitOverflow);
                } else {
                    self.time_wait.insert(key, rec);
                }
                if !keep {
                    self.conns.remove(&id);
                }
            }
            State::Closed | State::Listen => {
                let key = CompactTuple::new(&t.tuple);
                if self.by_tuple.get(&key) == Some(&id) {
                    self.by_tuple.remove(&key);
                }
                // Only established connections are queued for accept (see `promote`), and a
                // queued one that is reset stays queued: accept returns it, recv reports it.
                let keep = match t.owner {
                    Owner::App => true,
                    Owner::AcceptQueue => t.state != State::Listen,
                    Owner::Orphan => false,
                };
                if !keep {
                    self.conns.remove(&id);
                }
            }
            _ => {
                schedule(&mut self.timers, t);
                if !t.in_tx {
                    t.in_tx = true;
                    self.tx_queue.push_back(id);
                }
            }
        }
    }

    // ----- output and timers -----

    /// Writes the next datagram to send at the start of `buf`: the datagram is
    /// `buf[..tx.len]` (the buffer may be longer; it is reused, not cleared). Call until `None`.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        self.last_now = now;
        if let Some(c) = self.ctl.pop_front() {
            let repr = TcpRepr {
                src_port: c.tuple.local.port(),
                dst_port: c.tuple.remote.port(),
                seq: c.seq,
                ack: c.ack,
                flags: c.flags,
                window: c.window,
                urgent: 0,
                options: c.options,
                payload: &[],
            };
            return emit(&c.tuple, &repr, c.kind, buf);
        }
        while let Some(&id) = self.tx_queue.front() {
            let Some(t) = self.conns.get_mut(&id) else {
                self.tx_queue.pop_front();
                continue;
            };
            let tuple = t.tuple;
            let sent = match t.next_segment(now, &self.config, &mut self.stats, &mut self.scratch) {
                Some((repr, kind)) => emit(&tuple, &repr, kind, buf),
                None => None,
            };
            // Sending (or deciding not to) can arm timers: retransmission, persist.
            schedule(&mut self.timers, t);
            if sent.is_some() {
                return sent;
            }
            t.in_tx = false;
            self.tx_queue.pop_front();
        }
        None
    }

    /// When [`Endpoint::handle_timeout`] should next be called. May be early, never late.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let heap = self.timers.peek().map(|Reverse((t, _))| *t);
        let tw = self.time_wait.next_deadline(self.last_now);
        match (heap, tw) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        while let Some(Reverse((t, key))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            match key {
                TimerKey::Conn(id) => {
                    let (mut ctx, conns) = self.ctx(now);
                    let Some(tcb) = conns.get_mut(&id) else {
                        continue;
                    };
                    if tcb.scheduled != Some(t) {
                        continue; // superseded by an earlier deadline
                    }
                    tcb.scheduled = None;
                    tcb.handle_timeout(&mut ctx);
                    self.after_tcb(id);
                }
                TimerKey::HalfOpen(k) => self.half_open_timeout(now, t, k),
            }
        }
        let mut expired = Vec::new();
        self.time_wait.expire(now, &mut expired);
        for (k, rec) in expired {
            self.tw_closed(rec, k.expand(), Cause::TimeWaitExpired);
        }
    }

    /// SYN-ACK retransmission for a half-open entry, with the backoff of RFC 6298 §5.5 and the
    /// `synack_retries` limit.
    fn half_open_timeout(&mut self, now: Instant, t: Instant, key: CompactTuple) {
        let Some(h) = self.half_open.get_mut(&key) else {
            return;
        };
        if h.rtx_at != t {
            return;
        }
        if h.retries as u32 >= self.config.synack_retries {
            self.drop_half_open(&key, State::Closed, Cause::RetransmitLimit);
            return;
        }
        h.retries += 1;
        let backoff = self
            .config
            .rto_initial
            .saturating_mul(1 << h.retries.min(20))
            .min(self.config.rto_max);
        h.rtx_at = now + backoff;
        let h = *h;
        self.timers
            .push(Reverse((h.rtx_at, TimerKey::HalfOpen(key))));
        self.resend_synack(now, key, &h);
        self.stats.timeouts += 1;
    }

    /// A half-open entry's SYN-ACK again (lost, or the peer's SYN was retransmitted).
    fn resend_synack(&mut self, now: Instant, key: CompactTuple, h: &HalfOpen) {
        let (iss, ack, peer) = (h.iss, h.irs.wrapping_add(1), h.peer());
        let Some(opts) = self
            .listeners
            .iter()
            .find(|l| l.id == h.listener)
            .map(|l| l.conn_opts)
        else {
            return;
        };
        self.queue_synack(
            now,
            key.expand(),
            key,
            iss,
            ack,
            peer,
            &opts,
            TxKind::Retransmission,
        );
        self.stats.retrans_segs += 1;
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

/// Queues a TCB's earliest deadline unless an earlier entry for it is already queued; a later
/// queued entry becomes stale and is skipped when it comes up (`scheduled` no longer matches).
fn schedule(timers: &mut BinaryHeap<Reverse<(Instant, TimerKey)>>, t: &mut Tcb) {
    if let Some(d) = t.next_deadline() {
        if t.scheduled.is_none_or(|s| d < s) {
            t.scheduled = Some(d);
            timers.push(Reverse((d, TimerKey::Conn(t.id))));
        }
    }
}

/// Writes the datagram at the start of `buf`, growing it only when too short: re-zeroing a
/// whole datagram per packet showed up in profiles, and the caller reads `buf[..len]` anyway.
fn emit(
    tuple: &FourTuple,
    repr: &TcpRepr<'_>,
    kind: TxKind,
    buf: &mut Vec<u8>,
) -> Option<Transmit> {
    let (src, dst) = (tuple.local.ip(), tuple.remote.ip());
    // Our own segments always fit: a failure here is a bug, not bad input.
    let n = wire::datagram_len(src, dst, repr).expect("sizing our own segment");
    if buf.len() < n {
        buf.resize(n, 0);
    }
    let len =
        wire::emit_ip_tcp_into(src, dst, repr, &mut buf[..n]).expect("emitting our own segment");
    Some(Transmit {
        src,
        dst,
        len,
        kind,
    })
}

/// Addresses no connection may use. IPv4-mapped IPv6 addresses never appear on the wire
/// (RFC 4038 §4.2) and would alias the IPv4 connection of the same address in our tables.
/// A listener may bind the unspecified address, never a broadcast or multicast one.
fn is_non_unicast_bind(ip: IpAddr) -> bool {
    !ip.is_unspecified() && is_non_unicast(ip)
}

fn is_non_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_broadcast() || v4.is_multicast() || v4.is_unspecified(),
        IpAddr::V6(v6) => v6.is_multicast() || v6.is_unspecified() || v6.to_ipv4_mapped().is_some(),
    }
}

fn bare_info(id: ConnHandle, tuple: FourTuple, state: State, now: Instant) -> ConnInfo {
    ConnInfo {
        id,
        tuple,
        state,
        orphan: false,
        listener: None,
        snd_una: 0,
        snd_nxt: 0,
        rcv_nxt: 0,
        snd_wnd: 0,
        rcv_wnd: 0,
        send_queue: 0,
        recv_queue: 0,
        srtt: None,
        rto: Duration::ZERO,
        cwnd: 0,
        ssthresh: 0,
        retransmits: 0,
        since: now,
    }
}

fn tcb_info(t: &Tcb) -> ConnInfo {
    ConnInfo {
        id: t.id,
        tuple: t.tuple,
        state: t.state,
        orphan: t.owner != Owner::App,
        listener: t.listener,
        snd_una: t.snd_una.0,
        snd_nxt: t.snd_nxt.0,
        rcv_nxt: t.rcv_nxt.0,
        snd_wnd: t.snd_wnd,
        rcv_wnd: t.rcv_wnd(),
        send_queue: t.send_queue(),
        recv_queue: t.recv_queue(),
        srtt: t.srtt(),
        rto: t.rto(),
        cwnd: t.cwnd(),
        ssthresh: t.ssthresh(),
        retransmits: t.retrans_total as u64,
        since: t.since,
    }
}

pub(crate) fn timer_entry_size() -> usize {
    std::mem::size_of::<Reverse<(Instant, TimerKey)>>()
}
