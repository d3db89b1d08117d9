//! The `engine` stack: tcpfsm-core's sans-IO [`Endpoint`] on a virtual clock, behind a small
//! BSD-socket layer (descriptors, bind/listen/accept/connect, errno, SO_ERROR, poll).
//!
//! Every call into the endpoint is in this module, so a change of the core's API touches one
//! file. Time only moves when the runner asks: [`Stack::step`] jumps to the endpoint's next
//! deadline, so a 60-second TIME_WAIT costs nothing.

use super::engine_config::{self, SocketDefaults};
use super::{
    Applied, Fd, Micros, Net, OptVal, Sent, SockOpt, Stack, StateCount, SysErr, SysResult,
};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use tcpfsm_core::{
    CloseReason, Config, ConnId, Endpoint, Error, Event, Instant, ListenOptions, ListenerId, State,
};

/// The virtual clock's epoch: script time 0 is one second into the endpoint's time.
const EPOCH_US: u64 = 1_000_000;
/// A deadline that keeps coming back without the clock moving means the endpoint is stuck;
/// after this many the adapter stops asking (the script then fails on what it expects).
const STUCK_AFTER: u32 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fresh,
    Listener(ListenerId),
    Conn(ConnId),
}

#[derive(Debug, Clone)]
struct ESock {
    v6: bool,
    bound: Option<SocketAddr>,
    kind: Kind,
    reuse_addr: bool,
    linger: Option<i32>,
    nodelay: bool,
    /// SO_ERROR: the connection's failure, until reported once.
    error: Option<i32>,
    /// The failure was reported (by SO_ERROR or a read): later reads see end of stream, as on
    /// Linux where `sock_error()` clears `sk_err`.
    error_reported: bool,
    shut_rd: bool,
    shut_wr: bool,
}

/// The engine stack. Construct with [`EngineStack::new`]; the endpoint is created by
/// [`Stack::start`] with the settings applied so far.
pub struct EngineStack {
    cfg: Config,
    net: Net,
    sockd: SocketDefaults,
    seed: u64,
    ep: Option<Endpoint>,
    now: Micros,
    sent: VecDeque<Sent>,
    buf: Vec<u8>,
    socks: HashMap<Fd, ESock>,
    by_conn: HashMap<ConnId, Fd>,
    states: HashMap<ConnId, State>,
    last_deadline: Option<Instant>,
    repeats: u32,
}

impl EngineStack {
    /// An engine with `config` (Linux defaults: [`Config::default`]) and `seed` (ISNs, ports),
    /// owning `net.local`.
    pub fn new(config: Config, seed: u64, net: Net) -> EngineStack {
        EngineStack {
            cfg: config,
            net,
            sockd: SocketDefaults::default(),
            seed,
            ep: None,
            now: 0,
            sent: VecDeque::new(),
            buf: Vec::with_capacity(2048),
            socks: HashMap::new(),
            by_conn: HashMap::new(),
            states: HashMap::new(),
            last_deadline: None,
            repeats: 0,
        }
    }

    fn instant(&self) -> Instant {
        Instant::from_micros(EPOCH_US + self.now.max(0) as u64)
    }

    fn ep(&mut self) -> SysResult<&mut Endpoint> {
        self.ep
            .as_mut()
            .ok_or_else(|| SysErr::unsupported("the engine was used before it started"))
    }

    fn sock(&mut self, fd: Fd) -> SysResult<&mut ESock> {
        self.socks.get_mut(&fd).ok_or(SysErr::Errno(libc::EBADF))
    }

    /// Moves what the endpoint produced into the sent queue and the socket table.
    fn drain(&mut self) {
        let now = self.instant();
        let at = self.now;
        let Some(ep) = self.ep.as_mut() else { return };
        while let Some(tx) = ep.poll_transmit(now, &mut self.buf) {
            self.sent.push_back(Sent {
                at,
                bytes: self.buf[..tx.len].to_vec(),
            });
        }
        while let Some(ev) = ep.poll_event() {
            match ev {
                Event::StateChanged { conn, to, .. } => {
                    self.states.insert(conn, to);
                }
                Event::Closed { conn, reason } => {
                    let errno = match reason {
                        CloseReason::Reset => Some(libc::ECONNRESET),
                        CloseReason::Refused => Some(libc::ECONNREFUSED),
                        CloseReason::TimedOut => Some(libc::ETIMEDOUT),
                        CloseReason::Graceful | CloseReason::Aborted => None,
                    };
                    if let Some(s) = self
                        .by_conn
                        .get(&conn)
                        .and_then(|fd| self.socks.get_mut(fd))
                    {
                        if s.error.is_none() && !s.error_reported {
                            s.error = errno;
                        }
                    }
                }
                Event::Acceptable { .. } | Event::Readable { .. } | Event::Writable { .. } => {}
            }
        }
    }

    fn conn(&mut self, fd: Fd) -> SysResult<ConnId> {
        match self.sock(fd)?.kind {
            Kind::Conn(c) => Ok(c),
            _ => Err(SysErr::Errno(libc::ENOTCONN)),
        }
    }

    fn conn_state(&self, c: ConnId) -> State {
        self.ep
            .as_ref()
            .and_then(|ep| ep.state(c))
            .unwrap_or(State::Closed)
    }

    fn lowest_free_fd(&self) -> Fd {
        (3..).find(|fd| !self.socks.contains_key(fd)).unwrap_or(3)
    }
}

/// The errno Linux gives for what the endpoint reports.
fn errno(e: Error) -> SysErr {
    SysErr::Errno(match e {
        Error::InvalidHandle => libc::EBADF,
        Error::WouldBlock => libc::EAGAIN,
        Error::InvalidState => libc::ENOTCONN,
        Error::ConnectionReset => libc::ECONNRESET,
        Error::ConnectionRefused => libc::ECONNREFUSED,
        Error::TimedOut => libc::ETIMEDOUT,
        Error::BrokenPipe => libc::EPIPE,
        Error::AddrInUse => libc::EADDRINUSE,
        Error::AddrNotAvailable => libc::EADDRNOTAVAIL,
        Error::Aborted => libc::ECONNABORTED,
        Error::InvalidInput => libc::EINVAL,
    })
}

impl Stack for EngineStack {
    fn name(&self) -> &'static str {
        "engine"
    }

    fn apply(&mut self, key: &str, value: &str) -> SysResult<Applied> {
        if self.ep.is_none() {
            return engine_config::apply(&mut self.cfg, &mut self.sockd, key, value);
        }
        // The endpoint's configuration is fixed once it runs; a setting that changes nothing
        // is fine, one that would change something cannot be honoured.
        let (mut c, mut s) = (self.cfg.clone(), self.sockd.clone());
        let r = engine_config::apply(&mut c, &mut s, key, value)?;
        if format!("{c:?}") == format!("{:?}", self.cfg) && s == self.sockd {
            return Ok(r);
        }
        Err(SysErr::unsupported(
            "the engine's configuration cannot change after the script's first socket or packet",
        ))
    }

    fn start(&mut self) -> SysResult<()> {
        self.cfg
            .validate()
            .map_err(|e| SysErr::Unsupported(format!("invalid engine configuration: {e}")))?;
        self.ep = Some(Endpoint::new(self.cfg.clone(), self.seed));
        Ok(())
    }

    fn now(&self) -> Micros {
        self.now
    }

    fn step(&mut self, limit: Micros, _watch: &[(Fd, i16)]) -> bool {
        let lim = Instant::from_micros(EPOCH_US + limit.max(0) as u64);
        let next = self.ep.as_ref().and_then(|ep| ep.poll_timeout());
        match next {
            Some(t) if t <= lim && self.repeats < STUCK_AFTER => {
                if self.last_deadline == Some(t) {
                    self.repeats += 1;
                } else {
                    self.repeats = 0;
                    self.last_deadline = Some(t);
                }
                let t = t.max(self.instant());
                self.now = t.as_micros() as i64 - EPOCH_US as i64;
                if let Some(ep) = self.ep.as_mut() {
                    ep.handle_timeout(t);
                }
                self.drain();
                false
            }
            _ => {
                self.now = self.now.max(limit);
                true
            }
        }
    }

    fn sent(&mut self) -> &mut VecDeque<Sent> {
        &mut self.sent
    }

    fn inject(&mut self, datagram: &[u8]) -> SysResult<()> {
        let now = self.instant();
        self.ep()?.handle_packet(now, datagram);
        self.drain();
        Ok(())
    }

    fn socket(&mut self, v6: bool) -> SysResult<Fd> {
        let fd = self.lowest_free_fd();
        self.socks.insert(
            fd,
            ESock {
                v6,
                bound: None,
                kind: Kind::Fresh,
                reuse_addr: false,
                linger: None,
                nodelay: false,
                error: None,
                error_reported: false,
                shut_rd: false,
                shut_wr: false,
            },
        );
        Ok(fd)
    }

    fn bind(&mut self, fd: Fd, addr: SocketAddr) -> SysResult<()> {
        let s = self.sock(fd)?;
        if s.bound.is_some() || s.kind != Kind::Fresh {
            return Err(SysErr::Errno(libc::EINVAL));
        }
        if addr.is_ipv6() != s.v6 {
            return Err(SysErr::Errno(libc::EINVAL));
        }
        s.bound = Some(addr);
        Ok(())
    }

    fn listen(&mut self, fd: Fd, backlog: i32) -> SysResult<()> {
        let s = self.sock(fd)?.clone();
        if let Kind::Listener(_) = s.kind {
            return Ok(());
        }
        let Some(addr) = s.bound else {
            return Err(SysErr::unsupported(
                "listen() on an unbound socket (autobind)",
            ));
        };
        let opts = ListenOptions {
            backlog: backlog.max(1) as u32,
            reuse_addr: s.reuse_addr,
        };
        let l = self.ep()?.listen_with(addr, opts).map_err(errno)?;
        self.sock(fd)?.kind = Kind::Listener(l);
        self.drain();
        Ok(())
    }

    fn accept(&mut self, fd: Fd) -> SysResult<Fd> {
        let Kind::Listener(l) = self.sock(fd)?.kind else {
            return Err(SysErr::Errno(libc::EINVAL));
        };
        let (v6, nodelay) = {
            let s = self.sock(fd)?;
            (s.v6, s.nodelay)
        };
        let c = self.ep()?.accept(l).map_err(errno)?;
        if nodelay {
            self.ep()?.set_nodelay(c, true).map_err(errno)?;
        }
        let new = self.socket(v6)?;
        let s = self.sock(new)?;
        s.kind = Kind::Conn(c);
        s.nodelay = nodelay;
        self.by_conn.insert(c, new);
        // A connection reset while it waited in the queue is reported by the first call.
        if self.conn_state(c) == State::Closed {
            self.sock(new)?.error = Some(libc::ECONNRESET);
        }
        self.drain();
        Ok(new)
    }

    fn connect(&mut self, fd: Fd, addr: SocketAddr) -> SysResult<()> {
        let s = self.sock(fd)?.clone();
        match s.kind {
            Kind::Conn(c) => {
                return Err(SysErr::Errno(match self.conn_state(c) {
                    State::SynSent | State::SynReceived => libc::EALREADY,
                    _ => libc::EISCONN,
                }))
            }
            Kind::Listener(_) => return Err(SysErr::Errno(libc::EISCONN)),
            Kind::Fresh => {}
        }
        if addr.is_ipv6() != s.v6 {
            return Err(SysErr::Errno(libc::EAFNOSUPPORT));
        }
        // Without bind, the address the route to `addr` would pick: the run's local one.
        let local = s.bound.unwrap_or(SocketAddr::new(self.net.local, 0));
        let now = self.instant();
        let c = self.ep()?.connect(now, local, addr).map_err(errno)?;
        if s.nodelay {
            self.ep()?.set_nodelay(c, true).map_err(errno)?;
        }
        self.sock(fd)?.kind = Kind::Conn(c);
        self.by_conn.insert(c, fd);
        self.drain();
        Err(SysErr::Errno(libc::EINPROGRESS))
    }

    fn connect_result(&mut self, fd: Fd) -> Option<SysResult<()>> {
        let c = match self.conn(fd) {
            Ok(c) => c,
            Err(e) => return Some(Err(e)),
        };
        match self.conn_state(c) {
            State::SynSent | State::SynReceived => None,
            State::Closed => {
                let s = self.socks.get_mut(&fd)?;
                let e = s.error.take().unwrap_or(libc::ECONNREFUSED);
                s.error_reported = true;
                Some(Err(SysErr::Errno(e)))
            }
            _ => Some(Ok(())),
        }
    }

    fn local_addr(&mut self, fd: Fd) -> Option<SocketAddr> {
        let s = self.socks.get(&fd)?;
        match s.kind {
            Kind::Conn(c) => self.ep.as_ref()?.info(c).map(|i| i.tuple.local),
            _ => s.bound,
        }
    }

    fn read(&mut self, fd: Fd, len: usize) -> SysResult<Vec<u8>> {
        let c = self.conn(fd)?;
        let mut buf = vec![0u8; len];
        let r = self.ep()?.recv(c, &mut buf);
        self.drain();
        let s = self.sock(fd)?;
        match r {
            Ok(n) => {
                buf.truncate(n);
                Ok(buf)
            }
            Err(Error::WouldBlock) if s.shut_rd => Ok(Vec::new()),
            Err(Error::WouldBlock) => Err(SysErr::Errno(libc::EAGAIN)),
            Err(e) => {
                if s.error_reported {
                    return Ok(Vec::new());
                }
                s.error_reported = true;
                Err(SysErr::Errno(s.error.take().unwrap_or(match errno(e) {
                    SysErr::Errno(n) => n,
                    SysErr::Unsupported(_) => libc::EIO,
                })))
            }
        }
    }

    fn write(&mut self, fd: Fd, data: &[u8]) -> SysResult<usize> {
        let c = self.conn(fd)?;
        if let Some(e) = self.sock(fd)?.error.take() {
            self.sock(fd)?.error_reported = true;
            return Err(SysErr::Errno(e));
        }
        let r = self.ep()?.send(c, data);
        self.drain();
        match r {
            Ok(n) => Ok(n),
            Err(Error::WouldBlock) => Err(SysErr::Errno(libc::EAGAIN)),
            Err(e) => Err(errno(e)),
        }
    }

    fn close(&mut self, fd: Fd) -> SysResult<()> {
        let s = self.socks.remove(&fd).ok_or(SysErr::Errno(libc::EBADF))?;
        match s.kind {
            Kind::Fresh => {}
            Kind::Listener(l) => self.ep()?.close_listener(l).map_err(errno)?,
            Kind::Conn(c) => {
                self.by_conn.remove(&c);
                let r = match s.linger {
                    Some(0) => self.ep()?.abort(c),
                    Some(_) => {
                        return Err(SysErr::unsupported(
                            "SO_LINGER with a timeout (the engine's close does not wait)",
                        ))
                    }
                    None => self.ep()?.close(c),
                };
                // A connection already gone: close() still releases the descriptor.
                if let Err(e) = r {
                    if e != Error::InvalidHandle {
                        return Err(errno(e));
                    }
                }
            }
        }
        self.drain();
        Ok(())
    }

    fn shutdown(&mut self, fd: Fd, how: i32) -> SysResult<()> {
        let c = self.conn(fd)?;
        if how == libc::SHUT_RD || how == libc::SHUT_RDWR {
            self.sock(fd)?.shut_rd = true;
        }
        if how == libc::SHUT_WR || how == libc::SHUT_RDWR {
            self.sock(fd)?.shut_wr = true;
            let r = self.ep()?.shutdown_write(c);
            self.drain();
            r.map_err(errno)?;
        }
        Ok(())
    }

    fn setsockopt(&mut self, fd: Fd, opt: SockOpt, value: OptVal) -> SysResult<()> {
        let kind = self.sock(fd)?.kind;
        match (opt, value) {
            (SockOpt::ReuseAddr, OptVal::Int(v)) => self.sock(fd)?.reuse_addr = v != 0,
            (SockOpt::Linger, OptVal::Linger { onoff, secs }) => {
                self.sock(fd)?.linger = onoff.then_some(secs)
            }
            (SockOpt::NoDelay, OptVal::Int(v)) => {
                self.sock(fd)?.nodelay = v != 0;
                if let Kind::Conn(c) = kind {
                    self.ep()?.set_nodelay(c, v != 0).map_err(errno)?;
                    self.drain();
                }
            }
            (SockOpt::Error, _) => return Err(SysErr::Errno(libc::ENOPROTOOPT)),
            (o, _) => {
                return Err(SysErr::Unsupported(format!(
                    "setsockopt {}: the engine has no per-connection {} yet",
                    o.name(),
                    o.name()
                )))
            }
        }
        Ok(())
    }

    fn getsockopt(&mut self, fd: Fd, opt: SockOpt) -> SysResult<OptVal> {
        let (rcv, snd) = (self.cfg.recv_buffer as i64, self.cfg.send_buffer as i64);
        let s = self.sock(fd)?;
        Ok(match opt {
            SockOpt::ReuseAddr => OptVal::Int(s.reuse_addr as i64),
            SockOpt::Linger => OptVal::Linger {
                onoff: s.linger.is_some(),
                secs: s.linger.unwrap_or(0),
            },
            SockOpt::Error => {
                let e = s.error.take().unwrap_or(0);
                if e != 0 {
                    s.error_reported = true;
                }
                OptVal::Int(e as i64)
            }
            SockOpt::RcvBuf => OptVal::Int(rcv),
            SockOpt::SndBuf => OptVal::Int(snd),
            SockOpt::NoDelay => OptVal::Int(s.nodelay as i64),
            SockOpt::KeepAlive => OptVal::Int(0),
            o => {
                return Err(SysErr::Unsupported(format!(
                    "getsockopt {}: not modelled by the engine",
                    o.name()
                )))
            }
        })
    }

    fn poll(&mut self, fd: Fd, events: i16) -> SysResult<i16> {
        let s = self.sock(fd)?.clone();
        let mut r: i16 = 0;
        let Some(ep) = self.ep.as_ref() else {
            return Ok(0);
        };
        match s.kind {
            Kind::Fresh => r |= libc::POLLOUT | libc::POLLHUP,
            Kind::Listener(l) => {
                let queued = ep
                    .connections()
                    .iter()
                    .any(|c| c.listener == Some(l) && c.orphan && c.state == State::Established);
                if queued {
                    r |= libc::POLLIN;
                }
            }
            Kind::Conn(c) => {
                // Linux tcp_poll().
                let st = ep.state(c).unwrap_or(State::Closed);
                let info = ep.info(c);
                let rq = info.as_ref().map(|i| i.recv_queue).unwrap_or(0);
                let sq = info.as_ref().map(|i| i.send_queue).unwrap_or(0);
                let peer_fin = matches!(
                    st,
                    State::CloseWait | State::LastAck | State::Closing | State::TimeWait
                );
                let closed = st == State::Closed;
                if s.error.is_some() {
                    r |= libc::POLLERR;
                }
                if closed || (s.shut_wr && (peer_fin || s.shut_rd)) {
                    r |= libc::POLLHUP;
                }
                if peer_fin || s.shut_rd || closed {
                    r |= libc::POLLIN | libc::POLLRDNORM | libc::POLLRDHUP;
                }
                if rq > 0 {
                    r |= libc::POLLIN | libc::POLLRDNORM;
                }
                let sending = matches!(st, State::Established | State::CloseWait) && !s.shut_wr;
                if sending && sq < self.cfg.send_buffer {
                    r |= libc::POLLOUT | libc::POLLWRNORM;
                }
                if closed {
                    r |= libc::POLLOUT | libc::POLLWRNORM;
                }
            }
        }
        // POLLERR, POLLHUP and POLLNVAL are reported whether asked for or not.
        Ok(r & (events | libc::POLLERR | libc::POLLHUP | libc::POLLNVAL))
    }

    fn fd_state(&mut self, fd: Fd) -> Option<State> {
        Some(match self.socks.get(&fd)?.kind {
            Kind::Fresh => State::Closed,
            Kind::Listener(_) => State::Listen,
            Kind::Conn(c) => self.conn_state(c),
        })
    }

    fn states(&mut self) -> StateCount {
        let mut out = Vec::new();
        if let Some(ep) = self.ep.as_ref() {
            for c in ep.connections() {
                out.push((c.state, c.tuple.local, c.tuple.remote));
            }
        }
        for s in self.socks.values() {
            let closed = match s.kind {
                Kind::Fresh => true,
                Kind::Listener(_) => false,
                Kind::Conn(c) => self.conn_state(c) == State::Closed,
            };
            if closed {
                let unspec = if s.v6 {
                    SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 0)
                } else {
                    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0)
                };
                out.push((State::Closed, s.bound.unwrap_or(unspec), unspec));
            }
        }
        StateCount(out)
    }
}
