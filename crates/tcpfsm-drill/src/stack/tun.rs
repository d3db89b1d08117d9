//! The `tun` stack: our TCP as tcpfsm-tun runs it — the endpoint behind a TUN device, driven
//! by its own thread on the wall clock — with the script as the peer.
//!
//! In a private namespace, tcpfsm-tun's stack owns `tun0` and answers for the run's local
//! address; the kernel, with forwarding on, routes between it and `tun1`, the runner's end,
//! behind which the script's remote address lives. An inbound packet written to `tun1` is
//! forwarded into `tun0` and reaches our stack; what our stack sends comes back out of `tun1`.
//! The socket calls go through tcpfsm-tun's `TcpListener`/`TcpStream` (blocking calls are made
//! with a one-microsecond timeout; connect runs on a helper thread).

use super::engine_config::{self, SocketDefaults};
use super::netharness::{self, Wire};
use super::{
    Applied, Fd, Micros, Net, OptVal, Sent, SockOpt, Stack, StateCount, SysErr, SysResult,
};
use crate::outcome::Outcome;
use crate::script::Script;
use crate::DrillOptions;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tcpfsm_core::{Config, ListenOptions, State};
use tcpfsm_tun::{StackConfig, TcpListener, TcpStream, TunAddrs};

/// The kernel's (forwarding) addresses next to our stack's, and on the runner's side.
const ROUTER_V4: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 2);
const ROUTER_V6: Ipv6Addr = Ipv6Addr::new(0xfd3d, 0xfa7b, 0xd17d, 0, 0, 0, 0, 2);
const WIRE_V4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const WIRE_V6: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 1);
/// How long a connect() may take on its helper thread.
const CONNECT_LIMIT: Duration = Duration::from_secs(600);
/// A pending call is retried at least this often (our stack's progress shows no readiness on
/// a descriptor the runner could poll).
const RETRY_EVERY: Micros = 1000;
/// How long a socket call waits for our stack to have read the packets the script sent
/// before it (forwarding through the kernel takes a moment; see [`TunStack::settle`]).
const SETTLE_LIMIT: Duration = Duration::from_millis(200);

/// Runs `script` on our stack over TUN in a fresh namespace (needs root).
pub fn run(script: &Script, dir: &Path, net: Net, opts: &DrillOptions) -> Outcome {
    netharness::in_namespace("tun", || match TunStack::new(net, opts) {
        Ok(st) => crate::runner::run(st, script, dir, &opts.run),
        Err(e) => crate::broken(format!("setting up the TUN devices: {e}")),
    })
}

enum Kind {
    Fresh,
    Listener(TcpListener),
    Connecting(JoinHandle<io::Result<TcpStream>>, Option<SocketAddr>),
    Conn(TcpStream),
    /// A connect that failed: its error, reported once.
    Failed(Option<i32>),
}

struct TSock {
    v6: bool,
    bound: Option<SocketAddr>,
    reuse_addr: bool,
    linger_zero: bool,
    nodelay: bool,
    kind: Kind,
}

/// Our stack over TUN; made and used on a thread inside the namespace.
pub struct TunStack {
    wire: Wire,
    net: Net,
    cfg: Config,
    sockd: SocketDefaults,
    seed: u64,
    stack: Option<Arc<tcpfsm_tun::Stack>>,
    socks: HashMap<Fd, TSock>,
    /// TCP datagrams our stack is to have read once everything the script sent has arrived.
    rx_target: u64,
}

fn io_errno(e: &io::Error) -> i32 {
    if let Some(n) = e.raw_os_error() {
        return n;
    }
    match e.kind() {
        // tcpfsm-tun's read/write timeouts give WouldBlock (as SO_RCVTIMEO does, EAGAIN);
        // TimedOut is the connection's own (retransmissions exhausted).
        io::ErrorKind::WouldBlock => libc::EAGAIN,
        io::ErrorKind::TimedOut => libc::ETIMEDOUT,
        io::ErrorKind::ConnectionReset => libc::ECONNRESET,
        io::ErrorKind::ConnectionRefused => libc::ECONNREFUSED,
        io::ErrorKind::ConnectionAborted => libc::ECONNABORTED,
        io::ErrorKind::BrokenPipe => libc::EPIPE,
        io::ErrorKind::NotConnected => libc::ENOTCONN,
        io::ErrorKind::AddrInUse => libc::EADDRINUSE,
        io::ErrorKind::AddrNotAvailable => libc::EADDRNOTAVAIL,
        io::ErrorKind::InvalidInput => libc::EINVAL,
        _ => libc::EIO,
    }
}

fn errno(n: i32) -> SysErr {
    SysErr::Errno(n)
}

impl TunStack {
    fn new(net: Net, opts: &DrillOptions) -> io::Result<TunStack> {
        // The kernel routes between our stack's device and the runner's.
        for (k, v) in [
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv6.conf.all.forwarding", "1"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
        ] {
            netharness::write_sysctl(k, v).map_err(|e| io::Error::other(format!("{k}: {e}")))?;
        }
        let remote4 = match net.remote {
            IpAddr::V4(r) => r,
            _ => crate::config::V4_REMOTE,
        };
        let remote6 = match net.remote {
            IpAddr::V6(r) => r,
            _ => crate::config::V6_REMOTE,
        };
        let addrs = TunAddrs {
            host_v4: Some(WIRE_V4),
            stack_v4: None,
            prefix_v4: 24,
            host_v6: Some(WIRE_V6),
            stack_v6: None,
            prefix_v6: 64,
        };
        let wire = Wire::open("tun1", net.mtu, &addrs, &[remote4.into(), remote6.into()])?;
        Ok(TunStack {
            wire,
            net,
            cfg: opts.engine_config.clone(),
            sockd: SocketDefaults::default(),
            seed: opts.seed,
            stack: None,
            socks: HashMap::new(),
            rx_target: 0,
        })
    }

    /// Waits until our stack has read every packet the script sent so far. Linux handles a
    /// packet written to a TUN before the write returns, so a socket call after it sees its
    /// effect; here the kernel forwards it to our stack's device and tcpfsm-tun's driver
    /// thread reads it a moment later, and a call must not overtake it.
    fn settle(&self) {
        let Some(stack) = &self.stack else { return };
        wait_for(SETTLE_LIMIT, || {
            stack.driver_stats().rx_packets >= self.rx_target
        });
    }

    fn stack(&self) -> SysResult<&Arc<tcpfsm_tun::Stack>> {
        self.stack
            .as_ref()
            .ok_or_else(|| SysErr::unsupported("the tun stack was used before it started"))
    }

    fn sock(&mut self, fd: Fd) -> SysResult<&mut TSock> {
        self.socks.get_mut(&fd).ok_or(errno(libc::EBADF))
    }

    fn stream(&mut self, fd: Fd) -> SysResult<&TcpStream> {
        self.settle();
        self.finish_connect(fd);
        match &self.sock(fd)?.kind {
            Kind::Conn(s) => Ok(s),
            Kind::Failed(_) => Err(errno(libc::ENOTCONN)),
            _ => Err(errno(libc::ENOTCONN)),
        }
    }

    /// Turns a finished helper-thread connect into the connection (or its error).
    fn finish_connect(&mut self, fd: Fd) {
        let Some(s) = self.socks.get_mut(&fd) else {
            return;
        };
        let Kind::Connecting(h, local) = &s.kind else {
            return;
        };
        if !h.is_finished() {
            // The helper thread returns once the endpoint's connection left SYN-SENT, but it
            // may not have been scheduled yet: a call made after the handshake's segments
            // must not see the connect still in progress (Linux's connect completes as the
            // SYN-ACK is processed). So when the endpoint says the connection moved on, wait
            // for the helper.
            let Some(stack) = &self.stack else { return };
            let moved_on = local.is_some_and(|l| {
                !stack
                    .connections()
                    .iter()
                    .any(|c| c.tuple.local == l && c.state == State::SynSent)
            });
            if !moved_on {
                return;
            }
            if !wait_for(SETTLE_LIMIT, || h.is_finished()) {
                return;
            }
        }
        let Kind::Connecting(h, _) = std::mem::replace(&mut s.kind, Kind::Failed(None)) else {
            return;
        };
        s.kind = match h.join() {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(s.nodelay);
                Kind::Conn(stream)
            }
            Ok(Err(e)) => Kind::Failed(Some(io_errno(&e))),
            Err(_) => Kind::Failed(Some(libc::EIO)),
        };
    }

    fn lowest_free_fd(&self) -> Fd {
        (3..).find(|fd| !self.socks.contains_key(fd)).unwrap_or(3)
    }
}

impl Stack for TunStack {
    fn name(&self) -> &'static str {
        "tun"
    }

    fn apply(&mut self, key: &str, value: &str) -> SysResult<Applied> {
        if self.stack.is_none() {
            return engine_config::apply(&mut self.cfg, &mut self.sockd, key, value);
        }
        Err(SysErr::unsupported(
            "the tun stack's configuration cannot change after the script's first socket or packet",
        ))
    }

    fn start(&mut self) -> SysResult<()> {
        // Setting up takes real time; the script's clock does not run meanwhile.
        let paused_at = self.wire.now();
        let local4 = match self.net.local {
            IpAddr::V4(l) => l,
            _ => crate::config::V4_LOCAL,
        };
        let local6 = match self.net.local {
            IpAddr::V6(l) => l,
            _ => crate::config::V6_LOCAL,
        };
        let stack = tcpfsm_tun::Stack::new(StackConfig {
            tun_name: "tun0".into(),
            mtu: self.net.mtu,
            addrs: TunAddrs {
                host_v4: Some(ROUTER_V4),
                stack_v4: Some(local4),
                prefix_v4: 16,
                host_v6: Some(ROUTER_V6),
                stack_v6: Some(local6),
                prefix_v6: 48,
            },
            netns: None,
            tcp: self.cfg.clone(),
            seed: Some(self.seed),
            // A script states every segment as it crosses the wire: one per datagram.
            offloads: false,
        })
        .map_err(|e| SysErr::Unsupported(format!("starting tcpfsm-tun: {e}")))?;
        self.stack = Some(Arc::new(stack));
        let remote = self.net.remote;
        let (l4, l6): (IpAddr, IpAddr) = (local4.into(), local6.into());
        for (l, r) in [
            (
                l4,
                if remote.is_ipv4() {
                    remote
                } else {
                    crate::config::V4_REMOTE.into()
                },
            ),
            (
                l6,
                if remote.is_ipv6() {
                    remote
                } else {
                    crate::config::V6_REMOTE.into()
                },
            ),
        ] {
            self.wire
                .wait_answering(l, r)
                .map_err(|e| SysErr::Unsupported(format!("{e}")))?;
        }
        self.wire.clear();
        self.rx_target = self.stack()?.driver_stats().rx_packets;
        self.wire.resume_at(paused_at);
        Ok(())
    }

    fn now(&self) -> Micros {
        self.wire.now()
    }

    fn step(&mut self, limit: Micros, watch: &[(Fd, i16)]) -> bool {
        if watch.is_empty() {
            return self.wire.step(limit, &[]);
        }
        let lim = limit.min(self.wire.now() + RETRY_EVERY);
        self.wire.step(lim, &[]) && lim >= limit
    }

    fn sent(&mut self) -> &mut VecDeque<Sent> {
        &mut self.wire.sent
    }

    fn inject(&mut self, datagram: &[u8]) -> SysResult<()> {
        self.wire.inject(datagram)?;
        self.rx_target += 1;
        Ok(())
    }

    fn socket(&mut self, v6: bool) -> SysResult<Fd> {
        let fd = self.lowest_free_fd();
        self.socks.insert(
            fd,
            TSock {
                v6,
                bound: None,
                reuse_addr: false,
                linger_zero: false,
                nodelay: false,
                kind: Kind::Fresh,
            },
        );
        Ok(fd)
    }

    fn bind(&mut self, fd: Fd, addr: SocketAddr) -> SysResult<()> {
        let s = self.sock(fd)?;
        if s.bound.is_some() || !matches!(s.kind, Kind::Fresh) || addr.is_ipv6() != s.v6 {
            return Err(errno(libc::EINVAL));
        }
        s.bound = Some(addr);
        Ok(())
    }

    fn listen(&mut self, fd: Fd, backlog: i32) -> SysResult<()> {
        let stack = self.stack()?.clone();
        let s = self.sock(fd)?;
        let Some(addr) = s.bound else {
            return Err(SysErr::unsupported(
                "listen() on an unbound socket (autobind)",
            ));
        };
        let mut opts = ListenOptions::new(&stack.config(), backlog.max(1) as u32);
        opts.reuse_addr = s.reuse_addr;
        opts.conn.nodelay = s.nodelay;
        let l = TcpListener::bind_with(&stack, addr, opts).map_err(|e| errno(io_errno(&e)))?;
        s.kind = Kind::Listener(l);
        Ok(())
    }

    fn accept(&mut self, fd: Fd) -> SysResult<Fd> {
        self.settle();
        let s = self.sock(fd)?;
        let (v6, linger_zero) = (s.v6, s.linger_zero);
        let Kind::Listener(l) = &s.kind else {
            return Err(errno(libc::EINVAL));
        };
        let (stream, _) = l
            .accept_timeout(Duration::ZERO)
            .map_err(|e| match e.kind() {
                // accept_timeout's own timeout: nothing to accept yet.
                io::ErrorKind::TimedOut => errno(libc::EAGAIN),
                _ => errno(io_errno(&e)),
            })?;
        let new = self.socket(v6)?;
        let n = self.sock(new)?;
        n.linger_zero = linger_zero;
        n.kind = Kind::Conn(stream);
        Ok(new)
    }

    fn connect(&mut self, fd: Fd, addr: SocketAddr) -> SysResult<()> {
        let stack = self.stack()?.clone();
        let s = self.sock(fd)?;
        if !matches!(s.kind, Kind::Fresh) {
            return Err(errno(libc::EISCONN));
        }
        let local = s.bound;
        let h = std::thread::Builder::new()
            .name("drill-tun-connect".into())
            .spawn(move || TcpStream::connect_with(&stack, local, addr, Some(CONNECT_LIMIT)))
            .map_err(|e| errno(io_errno(&e)))?;
        s.kind = Kind::Connecting(h, None);
        // The runner needs the local port now: wait for the connection to exist.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            let found = self.stack()?.connections().into_iter().find(|c| {
                c.tuple.remote == addr
                    && c.state == State::SynSent
                    && local.is_none_or(|l| l.port() == 0 || l == c.tuple.local)
            });
            if let Some(c) = found {
                if let Kind::Connecting(_, l) = &mut self.sock(fd)?.kind {
                    *l = Some(c.tuple.local);
                }
                break;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        Err(errno(libc::EINPROGRESS))
    }

    fn connect_result(&mut self, fd: Fd) -> Option<SysResult<()>> {
        self.settle();
        self.finish_connect(fd);
        match &mut self.socks.get_mut(&fd)?.kind {
            Kind::Connecting(..) => None,
            Kind::Conn(_) => Some(Ok(())),
            Kind::Failed(e) => Some(Err(errno(e.take().unwrap_or(libc::ECONNREFUSED)))),
            _ => Some(Err(errno(libc::EINVAL))),
        }
    }

    fn local_addr(&mut self, fd: Fd) -> Option<SocketAddr> {
        match &self.socks.get(&fd)?.kind {
            Kind::Conn(s) => s.local_addr().ok(),
            Kind::Connecting(_, l) => *l,
            Kind::Listener(l) => l.local_addr().ok(),
            _ => self.socks.get(&fd)?.bound,
        }
    }

    fn read(&mut self, fd: Fd, len: usize) -> SysResult<Vec<u8>> {
        let s = self.stream(fd)?;
        s.set_read_timeout(Some(Duration::from_micros(1)))
            .map_err(|e| errno(io_errno(&e)))?;
        let mut buf = vec![0u8; len];
        let mut r: &TcpStream = s;
        match r.read(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                Ok(buf)
            }
            Err(e) => Err(errno(io_errno(&e))),
        }
    }

    fn write(&mut self, fd: Fd, data: &[u8]) -> SysResult<usize> {
        let s = self.stream(fd)?;
        s.set_write_timeout(Some(Duration::from_micros(1)))
            .map_err(|e| errno(io_errno(&e)))?;
        let mut w: &TcpStream = s;
        w.write(data).map_err(|e| errno(io_errno(&e)))
    }

    fn close(&mut self, fd: Fd) -> SysResult<()> {
        self.settle();
        self.finish_connect(fd);
        let s = self.socks.remove(&fd).ok_or(errno(libc::EBADF))?;
        match s.kind {
            // Dropping a stream closes it gracefully (FIN); SO_LINGER {on, 0} aborts.
            Kind::Conn(stream) if s.linger_zero => stream.abort(),
            Kind::Connecting(..) => {
                return Err(SysErr::unsupported(
                    "close() while connect() is in progress on the tun stack",
                ))
            }
            _ => {}
        }
        Ok(())
    }

    fn shutdown(&mut self, fd: Fd, how: i32) -> SysResult<()> {
        let how = match how {
            libc::SHUT_RD => Shutdown::Read,
            libc::SHUT_WR => Shutdown::Write,
            _ => Shutdown::Both,
        };
        self.stream(fd)?
            .shutdown(how)
            .map_err(|e| errno(io_errno(&e)))
    }

    fn setsockopt(&mut self, fd: Fd, opt: SockOpt, value: OptVal) -> SysResult<()> {
        let s = self.sock(fd)?;
        match (opt, value) {
            (SockOpt::ReuseAddr, OptVal::Int(v)) => s.reuse_addr = v != 0,
            (SockOpt::Linger, OptVal::Linger { onoff, secs }) if !onoff || secs == 0 => {
                s.linger_zero = onoff
            }
            (SockOpt::NoDelay, OptVal::Int(v)) => {
                s.nodelay = v != 0;
                if let Kind::Conn(c) = &s.kind {
                    c.set_nodelay(v != 0).map_err(|e| errno(io_errno(&e)))?;
                }
            }
            (o, _) => {
                return Err(SysErr::Unsupported(format!(
                    "setsockopt {}: tcpfsm-tun's sockets do not offer it",
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
            SockOpt::NoDelay => OptVal::Int(s.nodelay as i64),
            SockOpt::Linger => OptVal::Linger {
                onoff: s.linger_zero,
                secs: 0,
            },
            SockOpt::RcvBuf => OptVal::Int(rcv),
            SockOpt::SndBuf => OptVal::Int(snd),
            o => {
                return Err(SysErr::Unsupported(format!(
                    "getsockopt {}: tcpfsm-tun's sockets do not offer it",
                    o.name()
                )))
            }
        })
    }

    fn poll(&mut self, fd: Fd, events: i16) -> SysResult<i16> {
        self.settle();
        self.finish_connect(fd);
        let conns = self.stack()?.connections();
        let s = self.sock(fd)?;
        let mut r: i16 = 0;
        match &s.kind {
            Kind::Listener(l) => {
                let id = l.id();
                if conns
                    .iter()
                    .any(|c| c.listener_handle == Some(id) && c.recv_queue > 0)
                {
                    r |= libc::POLLIN;
                }
            }
            Kind::Conn(c) => {
                let st = c.state();
                let info = c.info();
                if info.as_ref().is_some_and(|i| i.recv_queue > 0) {
                    r |= libc::POLLIN | libc::POLLRDNORM;
                }
                if matches!(
                    st,
                    State::CloseWait
                        | State::LastAck
                        | State::Closing
                        | State::TimeWait
                        | State::Closed
                ) {
                    r |= libc::POLLIN | libc::POLLRDNORM | libc::POLLRDHUP;
                }
                if st == State::Closed {
                    r |= libc::POLLHUP;
                }
                if matches!(st, State::Established | State::CloseWait) {
                    r |= libc::POLLOUT | libc::POLLWRNORM;
                }
            }
            Kind::Failed(_) => r |= libc::POLLERR | libc::POLLHUP,
            Kind::Fresh | Kind::Connecting(..) => {}
        }
        Ok(r & (events | libc::POLLERR | libc::POLLHUP | libc::POLLNVAL))
    }

    fn fd_state(&mut self, fd: Fd) -> Option<State> {
        self.settle();
        self.finish_connect(fd);
        Some(match &self.socks.get(&fd)?.kind {
            Kind::Fresh | Kind::Failed(_) => State::Closed,
            Kind::Listener(_) => State::Listen,
            Kind::Connecting(..) => State::SynSent,
            Kind::Conn(c) => c.state(),
        })
    }

    fn states(&mut self) -> StateCount {
        self.settle();
        let mut out: Vec<(State, SocketAddr, SocketAddr)> = self
            .stack
            .as_ref()
            .map(|s| {
                s.connections()
                    .into_iter()
                    .map(|c| (c.state, c.tuple.local, c.tuple.remote))
                    .collect()
            })
            .unwrap_or_default();
        for s in self.socks.values() {
            let closed = match &s.kind {
                Kind::Fresh | Kind::Failed(_) => true,
                Kind::Conn(c) => c.state() == State::Closed,
                _ => false,
            };
            if closed {
                let unspec = if s.v6 {
                    SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0)
                } else {
                    SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0)
                };
                out.push((State::Closed, s.bound.unwrap_or(unspec), unspec));
            }
        }
        StateCount(out)
    }
}

/// Polls `done` every 50 µs until it holds (true) or `limit` passed (false): how this stack
/// waits for tcpfsm-tun's threads, which give the runner nothing to block on.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}
