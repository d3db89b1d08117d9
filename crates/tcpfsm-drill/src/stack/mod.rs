//! The stacks a script runs against, behind one interface the runner drives.
//!
//! Every operation is non-blocking: a socket call that would wait returns `EAGAIN` (or
//! `EINPROGRESS` for connect), and the runner gives the script's blocking semantics by calling
//! again as the stack makes progress. Time is the stack's own: virtual for the engine, the
//! wall clock for the TUN-based stacks; both count microseconds from the script's start.

pub mod engine;
mod engine_config;
pub mod linux;
mod netharness;
pub mod tun;

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Microseconds since the script started.
pub type Micros = i64;

/// A descriptor as the stack numbers it.
pub type Fd = i32;

/// A datagram the stack sent, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub at: Micros,
    pub bytes: Vec<u8>,
}

/// How a socket call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SysErr {
    /// The call failed with this errno (Linux numbering).
    Errno(i32),
    /// The stack cannot do what the call asks: the script is skipped with this reason.
    Unsupported(String),
}

impl SysErr {
    pub fn unsupported(s: impl Into<String>) -> SysErr {
        SysErr::Unsupported(s.into())
    }
}

pub type SysResult<T> = Result<T, SysErr>;

/// The socket options the runner understands (`SOL_SOCKET` and `IPPROTO_TCP` levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SockOpt {
    ReuseAddr,
    Linger,
    Error,
    RcvBuf,
    SndBuf,
    KeepAlive,
    NoDelay,
    MaxSeg,
    KeepIdle,
    KeepIntvl,
    KeepCnt,
}

impl SockOpt {
    pub fn name(self) -> &'static str {
        match self {
            SockOpt::ReuseAddr => "SO_REUSEADDR",
            SockOpt::Linger => "SO_LINGER",
            SockOpt::Error => "SO_ERROR",
            SockOpt::RcvBuf => "SO_RCVBUF",
            SockOpt::SndBuf => "SO_SNDBUF",
            SockOpt::KeepAlive => "SO_KEEPALIVE",
            SockOpt::NoDelay => "TCP_NODELAY",
            SockOpt::MaxSeg => "TCP_MAXSEG",
            SockOpt::KeepIdle => "TCP_KEEPIDLE",
            SockOpt::KeepIntvl => "TCP_KEEPINTVL",
            SockOpt::KeepCnt => "TCP_KEEPCNT",
        }
    }

    /// (level, optname) for setsockopt(2) on Linux.
    pub fn linux(self) -> (i32, i32) {
        use libc::*;
        match self {
            SockOpt::ReuseAddr => (SOL_SOCKET, SO_REUSEADDR),
            SockOpt::Linger => (SOL_SOCKET, SO_LINGER),
            SockOpt::Error => (SOL_SOCKET, SO_ERROR),
            SockOpt::RcvBuf => (SOL_SOCKET, SO_RCVBUF),
            SockOpt::SndBuf => (SOL_SOCKET, SO_SNDBUF),
            SockOpt::KeepAlive => (SOL_SOCKET, SO_KEEPALIVE),
            SockOpt::NoDelay => (IPPROTO_TCP, TCP_NODELAY),
            SockOpt::MaxSeg => (IPPROTO_TCP, TCP_MAXSEG),
            SockOpt::KeepIdle => (IPPROTO_TCP, TCP_KEEPIDLE),
            SockOpt::KeepIntvl => (IPPROTO_TCP, TCP_KEEPINTVL),
            SockOpt::KeepCnt => (IPPROTO_TCP, TCP_KEEPCNT),
        }
    }

    /// The option named by `(level, optname)` words of a script.
    pub fn from_names(level: &str, name: &str) -> Option<SockOpt> {
        let tcp = matches!(level, "IPPROTO_TCP" | "SOL_TCP");
        let sock = level == "SOL_SOCKET";
        Some(match name {
            "SO_REUSEADDR" if sock => SockOpt::ReuseAddr,
            "SO_LINGER" if sock => SockOpt::Linger,
            "SO_ERROR" if sock => SockOpt::Error,
            "SO_RCVBUF" if sock => SockOpt::RcvBuf,
            "SO_SNDBUF" if sock => SockOpt::SndBuf,
            "SO_KEEPALIVE" if sock => SockOpt::KeepAlive,
            "TCP_NODELAY" if tcp => SockOpt::NoDelay,
            "TCP_MAXSEG" if tcp => SockOpt::MaxSeg,
            "TCP_KEEPIDLE" if tcp => SockOpt::KeepIdle,
            "TCP_KEEPINTVL" if tcp => SockOpt::KeepIntvl,
            "TCP_KEEPCNT" if tcp => SockOpt::KeepCnt,
            _ => return None,
        })
    }
}

/// A socket option's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptVal {
    Int(i64),
    Linger { onoff: bool, secs: i32 },
}

/// What happened to a setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Set,
    /// Not applied, with the reason (reported, the script still runs).
    Ignored(String),
}

/// A TCP state as the FreeBSD tcp-testsuite's `sockstat` checks name it.
pub use tcpfsm_core::State;

/// The addresses of a run: the stack under test owns `local`, the script plays `remote`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    pub local: IpAddr,
    pub remote: IpAddr,
    pub mtu: u32,
}

/// Sockets of a stack counted by state, for [`StateQuery`] checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateCount(pub Vec<(State, SocketAddr, SocketAddr)>);

/// A stack under test.
pub trait Stack {
    fn name(&self) -> &'static str;

    /// Applies a Linux sysctl (`net.ipv4.tcp_syn_retries` = `3`). FreeBSD keys arrive already
    /// translated. Called before [`Stack::start`] for the script's setup and later for
    /// settings in the middle of a script.
    fn apply(&mut self, key: &str, value: &str) -> SysResult<Applied>;

    /// Starts the clock; settings applied before take effect from here.
    fn start(&mut self) -> SysResult<()>;

    fn now(&self) -> Micros;

    /// Lets the stack make progress until `limit`: returns early (with `false`) when something
    /// happened that the runner may care about — a timer fired, a datagram was sent, or one
    /// of `watch` (descriptor, poll events) may have become ready. Returns `true` once
    /// `limit` is reached.
    fn step(&mut self, limit: Micros, watch: &[(Fd, i16)]) -> bool;

    /// Datagrams sent and not yet looked at, oldest first.
    fn sent(&mut self) -> &mut VecDeque<Sent>;

    /// Delivers a datagram from the script to the stack, now.
    fn inject(&mut self, datagram: &[u8]) -> SysResult<()>;

    fn socket(&mut self, v6: bool) -> SysResult<Fd>;
    fn bind(&mut self, fd: Fd, addr: SocketAddr) -> SysResult<()>;
    fn listen(&mut self, fd: Fd, backlog: i32) -> SysResult<()>;
    /// `EAGAIN` when no connection is ready.
    fn accept(&mut self, fd: Fd) -> SysResult<Fd>;
    /// `EINPROGRESS` once the SYN is on its way.
    fn connect(&mut self, fd: Fd, addr: SocketAddr) -> SysResult<()>;
    /// For a connect in progress: `None` while the handshake runs, then its outcome.
    fn connect_result(&mut self, fd: Fd) -> Option<SysResult<()>>;
    fn local_addr(&mut self, fd: Fd) -> Option<SocketAddr>;
    /// `EAGAIN` when nothing can be read; an empty vector is end of stream.
    fn read(&mut self, fd: Fd, len: usize) -> SysResult<Vec<u8>>;
    /// `EAGAIN` when no byte fits.
    fn write(&mut self, fd: Fd, data: &[u8]) -> SysResult<usize>;
    fn close(&mut self, fd: Fd) -> SysResult<()>;
    fn shutdown(&mut self, fd: Fd, how: i32) -> SysResult<()>;
    fn setsockopt(&mut self, fd: Fd, opt: SockOpt, value: OptVal) -> SysResult<()>;
    fn getsockopt(&mut self, fd: Fd, opt: SockOpt) -> SysResult<OptVal>;
    /// The `revents` for `events` (POLLIN, POLLOUT, …), without waiting.
    fn poll(&mut self, fd: Fd, events: i16) -> SysResult<i16>;

    /// Every socket with a connection state: listeners, half-open entries, connections,
    /// TIME_WAIT records, and sockets the script holds that are CLOSED.
    fn states(&mut self) -> StateCount;

    /// The TCP state of a socket the script holds, as `TCP_INFO`'s `tcpi_state` reports it.
    fn fd_state(&mut self, fd: Fd) -> Option<State>;

    /// Runs a shell command where the stack lives (`--allow-shell`); its exit status.
    fn shell(&mut self, command: &str) -> SysResult<i32> {
        let _ = command;
        Err(SysErr::unsupported(format!(
            "the {} stack cannot run shell commands",
            self.name()
        )))
    }
}

impl fmt::Display for SysErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SysErr::Errno(e) => f.write_str(crate::consts::errno_name(*e)),
            SysErr::Unsupported(s) => write!(f, "unsupported: {s}"),
        }
    }
}
