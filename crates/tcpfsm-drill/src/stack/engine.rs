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
use std::time::Duration;
use tcpfsm_core::{
    Config, ConnError, ConnHandle, ConnOptions, ConnectError, Endpoint, Instant, InvalidHandle,
    ListenError, ListenOptions, ListenerHandle, RecvError, SendError, ShutdownError, State,
};

/// The virtual clock's epoch: script time 0 is the endpoint's time 0, as when tcpfsm-tun or
/// the simulator starts an endpoint (so a defect of the endpoint's first second shows here).
const EPOCH_US: u64 = 0;
/// A deadline that keeps coming back without the clock moving means the endpoint is stuck;
/// after this many the adapter stops asking (the script then fails on what it expects).
const STUCK_AFTER: u32 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fresh,
    Listener(ListenerHandle),
    Conn(ConnHandle),
}

#[derive(Debug, Clone)]
struct ESock {
    v6: bool,
    bound: Option<SocketAddr>,
    kind: Kind,
    reuse_addr: bool,
    /// setsockopt values: applied at connect/listen, and to the connection afterwards.
    opts: ConnOptions,
    /// SO_KEEPALIVE as set, and TCP_KEEPIDLE (the idle time it uses).
    keepalive: bool,
    keep_idle: Duration,
    /// A failure taken from the endpoint (for poll) and not yet reported to the application.
    error: Option<ConnError>,
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

    /// Moves what the endpoint sent into the queue (events are not needed: the adapter asks
    /// the endpoint for state, queues and errors directly).
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
        while ep.poll_event().is_some() {}
    }

    fn conn(&mut self, fd: Fd) -> SysResult<ConnHandle> {
        match self.sock(fd)?.kind {
            Kind::Conn(c) => Ok(c),
            _ => Err(SysErr::Errno(libc::ENOTCONN)),
        }
    }

    fn conn_state(&self, c: ConnHandle) -> State {
        self.ep
            .as_ref()
            .and_then(|ep| ep.state(c))
            .unwrap_or(State::Closed)
    }

    /// The connection's failure, fetched from the endpoint once and kept until reported.
    fn pending_error(&mut self, fd: Fd) -> Option<ConnError> {
        let s = self.socks.get(&fd)?;
        if s.error.is_some() {
            return s.error;
        }
        let Kind::Conn(c) = s.kind else { return None };
        let e = self.ep.as_mut()?.take_error(c).ok().flatten();
        self.socks.get_mut(&fd)?.error = e;
        e
    }

    /// Reports (and so clears) the failure, as Linux's `sock_error()` does.
    fn report_error(&mut self, fd: Fd) -> Option<i32> {
        let e = self.pending_error(fd)?;
        self.socks.get_mut(&fd)?.error = None;
        Some(conn_errno(e))
    }

    fn lowest_free_fd(&self) -> Fd {
        (3..).find(|fd| !self.socks.contains_key(fd)).unwrap_or(3)
    }

    /// Hands changed options to a live connection.
    fn push_options(&mut self, fd: Fd) -> SysResult<()> {
        let s = self.sock(fd)?.clone();
        if let Kind::Conn(c) = s.kind {
            let now = self.instant();
            self.ep()?
                .set_options(now, c, s.opts)
                .map_err(|e| SysErr::Unsupported(format!("setsockopt: {e}")))?;
            self.drain();
        }
        Ok(())
    }
}

/// The errno Linux gives for a connection's failure.
fn conn_errno(e: ConnError) -> i32 {
    match e {
        ConnError::Reset => libc::ECONNRESET,
        ConnError::Refused => libc::ECONNREFUSED,
        ConnError::TimedOut => libc::ETIMEDOUT,
        ConnError::Aborted => libc::ECONNABORTED,
        _ => libc::EIO,
    }
}

fn errno(e: i32) -> SysErr {
    SysErr::Errno(e)
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
        let opts = self.ep()?.config().conn_options();
        let fd = self.lowest_free_fd();
        self.socks.insert(
            fd,
            ESock {
                v6,
                bound: None,
                kind: Kind::Fresh,
                reuse_addr: false,
                opts,
                keepalive: false,
                keep_idle: self.sockd.keepalive_time,
                error: None,
                shut_rd: false,
                shut_wr: false,
            },
        );
        Ok(fd)
    }

    fn bind(&mut self, fd: Fd, addr: SocketAddr) -> SysResult<()> {
        let s = self.sock(fd)?;
        if s.bound.is_some() || s.kind != Kind::Fresh || addr.is_ipv6() != s.v6 {
            return Err(errno(libc::EINVAL));
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
        let now = self.instant();
        let ep = self.ep()?;
        let mut opts = ListenOptions::new(ep.config(), backlog.max(1) as u32);
        opts.reuse_addr = s.reuse_addr;
        opts.conn = s.opts;
        let l = ep.listen_with(now, addr, opts).map_err(|e| {
            errno(match e {
                ListenError::AddrInUse => libc::EADDRINUSE,
                _ => libc::EINVAL,
            })
        })?;
        self.sock(fd)?.kind = Kind::Listener(l);
        self.drain();
        Ok(())
    }

    fn accept(&mut self, fd: Fd) -> SysResult<Fd> {
        let s = self.sock(fd)?.clone();
        let Kind::Listener(l) = s.kind else {
            return Err(errno(libc::EINVAL));
        };
        let now = self.instant();
        let c = match self.ep()?.accept(now, l) {
            Ok(Some(c)) => c,
            Ok(None) => return Err(errno(libc::EAGAIN)),
            Err(InvalidHandle) => return Err(errno(libc::EINVAL)),
        };
        let new = self.socket(s.v6)?;
        let opts = self.ep()?.options(c).unwrap_or(s.opts);
        let n = self.sock(new)?;
        n.kind = Kind::Conn(c);
        n.opts = opts;
        n.keepalive = s.keepalive;
        n.keep_idle = s.keep_idle;
        self.drain();
        Ok(new)
    }

    fn connect(&mut self, fd: Fd, addr: SocketAddr) -> SysResult<()> {
        let s = self.sock(fd)?.clone();
        match s.kind {
            Kind::Conn(c) => {
                return Err(errno(match self.conn_state(c) {
                    State::SynSent | State::SynReceived => libc::EALREADY,
                    _ => libc::EISCONN,
                }))
            }
            Kind::Listener(_) => return Err(errno(libc::EISCONN)),
            Kind::Fresh => {}
        }
        if addr.is_ipv6() != s.v6 {
            return Err(errno(libc::EAFNOSUPPORT));
        }
        // Without bind, the address the route to `addr` would pick: the run's local one.
        let local = s.bound.unwrap_or(SocketAddr::new(self.net.local, 0));
        let now = self.instant();
        let c = self
            .ep()?
            .connect_with(now, local, addr, s.opts)
            .map_err(|e| {
                errno(match e {
                    ConnectError::AddrNotAvailable => libc::EADDRNOTAVAIL,
                    _ => libc::EINVAL,
                })
            })?;
        self.sock(fd)?.kind = Kind::Conn(c);
        self.drain();
        Err(errno(libc::EINPROGRESS))
    }

    fn connect_result(&mut self, fd: Fd) -> Option<SysResult<()>> {
        let c = match self.conn(fd) {
            Ok(c) => c,
            Err(e) => return Some(Err(e)),
        };
        match self.conn_state(c) {
            State::SynSent | State::SynReceived => None,
            State::Closed => Some(Err(errno(
                self.report_error(fd).unwrap_or(libc::ECONNREFUSED),
            ))),
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
        let now = self.instant();
        let mut buf = vec![0u8; len];
        let r = self.ep()?.recv(now, c, &mut buf);
        self.drain();
        match r {
            Ok(Some(n)) => {
                buf.truncate(n);
                Ok(buf)
            }
            Ok(None) if self.sock(fd)?.shut_rd => Ok(Vec::new()),
            Ok(None) => Err(errno(libc::EAGAIN)),
            // The failure is reported once (Linux's sock_error clears it); reads after it
            // see the end of the stream.
            Err(RecvError::Conn(_)) => match self.report_error(fd) {
                Some(e) => Err(errno(e)),
                None => Ok(Vec::new()),
            },
            Err(_) => Err(errno(libc::EBADF)),
        }
    }

    fn write(&mut self, fd: Fd, data: &[u8]) -> SysResult<usize> {
        let c = self.conn(fd)?;
        if let Some(e) = self.report_error(fd) {
            return Err(errno(e));
        }
        let now = self.instant();
        let r = self.ep()?.send(now, c, data);
        self.drain();
        match r {
            Ok(0) if !data.is_empty() => Err(errno(libc::EAGAIN)),
            Ok(n) => Ok(n),
            Err(SendError::BrokenPipe) => Err(errno(libc::EPIPE)),
            Err(SendError::Conn(e)) => Err(errno(conn_errno(e))),
            Err(_) => Err(errno(libc::EBADF)),
        }
    }

    fn close(&mut self, fd: Fd) -> SysResult<()> {
        let s = self.socks.get(&fd).cloned().ok_or(errno(libc::EBADF))?;
        if let (Kind::Conn(_), Some(l)) = (s.kind, s.opts.linger) {
            if !l.is_zero() {
                return Err(SysErr::unsupported(
                    "SO_LINGER with a timeout (the engine's close does not wait)",
                ));
            }
        }
        self.socks.remove(&fd);
        let now = self.instant();
        match s.kind {
            Kind::Fresh => {}
            Kind::Listener(l) => {
                // Gone already is fine: close() still releases the descriptor.
                let _ = self.ep()?.close_listener(now, l);
            }
            Kind::Conn(c) => {
                // SO_LINGER {on, 0} makes this an abort (the endpoint reads the option).
                let _ = self.ep()?.close(now, c);
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
            let now = self.instant();
            let r = self.ep()?.shutdown_write(now, c);
            self.drain();
            match r {
                Ok(()) => {}
                Err(ShutdownError::Conn(e)) => return Err(errno(conn_errno(e))),
                Err(_) => return Err(errno(libc::ENOTCONN)),
            }
        }
        Ok(())
    }

    fn setsockopt(&mut self, fd: Fd, opt: SockOpt, value: OptVal) -> SysResult<()> {
        let int = |v: OptVal| match v {
            OptVal::Int(i) => Ok(i),
            OptVal::Linger { .. } => Err(errno(libc::EINVAL)),
        };
        let s = self.sock(fd)?;
        match opt {
            SockOpt::ReuseAddr => {
                s.reuse_addr = int(value)? != 0;
                return Ok(());
            }
            SockOpt::Error => return Err(errno(libc::ENOPROTOOPT)),
            SockOpt::Linger => match value {
                OptVal::Linger { onoff, secs } => {
                    s.opts.linger = onoff.then(|| Duration::from_secs(secs.max(0) as u64))
                }
                OptVal::Int(_) => return Err(errno(libc::EINVAL)),
            },
            SockOpt::NoDelay => s.opts.nodelay = int(value)? != 0,
            // Linux sizes the buffer at twice the value (half for overhead); the engine's
            // buffer is the data it holds, so it takes the value itself.
            SockOpt::RcvBuf => s.opts.recv_buffer = int(value)?.max(1) as usize,
            SockOpt::SndBuf => s.opts.send_buffer = int(value)?.max(1) as usize,
            SockOpt::MaxSeg => s.opts.mss = Some(int(value)?.clamp(88, 65535) as u16),
            SockOpt::KeepAlive => s.keepalive = int(value)? != 0,
            SockOpt::KeepIdle => s.keep_idle = Duration::from_secs(int(value)?.max(1) as u64),
            SockOpt::KeepIntvl => {
                s.opts.keepalive_interval = Duration::from_secs(int(value)?.max(1) as u64)
            }
            SockOpt::KeepCnt => s.opts.keepalive_probes = int(value)?.max(1) as u32,
        }
        s.opts.keepalive = s.keepalive.then_some(s.keep_idle);
        self.push_options(fd)
    }

    fn getsockopt(&mut self, fd: Fd, opt: SockOpt) -> SysResult<OptVal> {
        if opt == SockOpt::Error {
            return Ok(OptVal::Int(self.report_error(fd).unwrap_or(0) as i64));
        }
        let s = self.sock(fd)?;
        Ok(match opt {
            SockOpt::ReuseAddr => OptVal::Int(s.reuse_addr as i64),
            SockOpt::Linger => OptVal::Linger {
                onoff: s.opts.linger.is_some(),
                secs: s.opts.linger.map(|d| d.as_secs() as i32).unwrap_or(0),
            },
            SockOpt::RcvBuf => OptVal::Int(s.opts.recv_buffer as i64),
            SockOpt::SndBuf => OptVal::Int(s.opts.send_buffer as i64),
            SockOpt::NoDelay => OptVal::Int(s.opts.nodelay as i64),
            SockOpt::KeepAlive => OptVal::Int(s.keepalive as i64),
            SockOpt::KeepIdle => OptVal::Int(s.keep_idle.as_secs() as i64),
            SockOpt::KeepIntvl => OptVal::Int(s.opts.keepalive_interval.as_secs() as i64),
            SockOpt::KeepCnt => OptVal::Int(s.opts.keepalive_probes as i64),
            SockOpt::MaxSeg => {
                let (kind, mss) = (s.kind, s.opts.mss);
                let c = match kind {
                    Kind::Conn(c) => c,
                    _ => return Ok(OptVal::Int(mss.unwrap_or(536) as i64)),
                };
                let info = self.ep.as_ref().and_then(|ep| ep.info(c));
                OptVal::Int(info.map(|i| i.mss as i64).unwrap_or(536))
            }
            o => {
                return Err(SysErr::Unsupported(format!(
                    "getsockopt {} is not modelled by the engine",
                    o.name()
                )))
            }
        })
    }

    fn poll(&mut self, fd: Fd, events: i16) -> SysResult<i16> {
        let s = self.sock(fd)?.clone();
        let failed = self.pending_error(fd).is_some();
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
                    .any(|c| c.listener_handle == Some(l) && c.recv_queue > 0);
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
                if failed {
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
                if (sending && sq < s.opts.send_buffer) || closed {
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
