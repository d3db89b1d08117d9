//! A sans-IO TCP (RFC 9293).
//!
//! The [`Endpoint`] owns every connection of one host. It never reads a clock, never does I/O
//! and never spawns: the driver (simulator, TUN device, tests) passes time in and moves bytes.
//!
//! Two endpoints, a client and a server, joined by a "link" that moves datagrams between them:
//!
//! ```
//! use tcpfsm_core::{Config, Endpoint, Event, Instant, State};
//!
//! let mut client = Endpoint::new(Config::default(), 1); // Linux's defaults
//! let mut server = Endpoint::new(Config::default(), 2);
//! let mut now = Instant::ZERO;
//! let listener = server.listen(now, "10.0.0.2:80".parse()?, 128)?;
//! // Port 0 picks an ephemeral port (RFC 6056).
//! let conn = client.connect(now, "10.0.0.1:0".parse()?, "10.0.0.2:80".parse()?)?;
//! client.send(now, conn, b"hello")?; // queued until the handshake completes
//!
//! let (mut buf, mut accepted, mut got) = (Vec::new(), None, Vec::new());
//! for _ in 0..20 {
//!     // The link: every datagram one endpoint transmits is handed to the other.
//!     while let Some(tx) = client.poll_transmit(now, &mut buf) {
//!         server.handle_packet(now, &buf[..tx.len]);
//!     }
//!     while let Some(tx) = server.poll_transmit(now, &mut buf) {
//!         client.handle_packet(now, &buf[..tx.len]);
//!     }
//!     while let Some(ev) = server.poll_event() {
//!         match ev {
//!             // Every state change, with its cause: SYN_RECEIVED -> ESTABLISHED, "ACK of SYN".
//!             Event::StateChanged { from, to, cause, .. } => println!("{from} -> {to} ({cause})"),
//!             Event::Acceptable { .. } => accepted = server.accept(now, listener)?,
//!             _ => {}
//!         }
//!     }
//!     if let Some(c) = accepted {
//!         let mut chunk = [0u8; 64];
//!         // Some(n): n bytes; Some(0): end of stream; None: nothing yet (would block).
//!         while let Some(n) = server.recv(now, c, &mut chunk)?.filter(|&n| n > 0) {
//!             got.extend_from_slice(&chunk[..n]);
//!         }
//!     }
//!     // The driver owns the clock: sleep until the next deadline, then hand it in.
//!     if let Some(t) = client.poll_timeout().into_iter().chain(server.poll_timeout()).min() {
//!         now = t.max(now);
//!         client.handle_timeout(now);
//!         server.handle_timeout(now);
//!     }
//! }
//! assert_eq!(got, b"hello");
//! assert_eq!(client.state(conn), Some(State::Established));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Handles are opaque, every operation has its own error type (would-block is `Ok(0)` or
//! `Ok(None)`, never an error), and every call that can arm a timer takes `now`.

pub mod cc;
pub mod config;
pub mod error;
pub mod event;
pub mod stats;
pub mod time;

mod arrival;
mod builder;
mod conn;
mod endpoint;
mod intervals;
mod listener;
mod ratelimit;
mod recovery;
mod ring;
mod rtt;
mod sack;
mod secrets;
mod syncookie;
mod table;
mod time_wait;
mod timerq;
mod timers;
mod tuple;

pub(crate) use tcpfsm_wire as wire;
pub use tcpfsm_wire::ChecksumOffload;

pub use config::{
    CcFactory, Config, ConfigError, CongestionAlgorithm, ConnOptions, SynCookies, TwReuse,
};
pub use endpoint::{ConnInfo, Endpoint, ListenOptions, OptionsError, Transmit, TxKind};
pub use error::{
    ConnError, ConnectError, InvalidHandle, ListenError, RecvError, SendError, ShutdownError,
};
pub use event::{Cause, CloseReason, Event};
pub use stats::{Counter, Mib, Stats};
pub use tcpfsm_states::{Census, Phase, State};
pub use time::{Duration, Instant};

use std::fmt;
use std::net::SocketAddr;

/// An opaque connection handle, as quinn-proto's `ConnectionHandle`: never reused within one
/// endpoint, so a stale handle can only name a connection that is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnHandle(pub(crate) u64);

/// An opaque listener handle. Its number never equals a connection's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerHandle(pub(crate) u64);

/// What a state change happened to: a connection (from its first SYN to CLOSED, TIME_WAIT
/// included) or a listener (CLOSED → LISTEN → CLOSED).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SocketHandle {
    Conn(ConnHandle),
    Listener(ListenerHandle),
}

impl ConnHandle {
    /// The handle's number, for logs and traces; handles cannot be made from numbers.
    pub const fn id(self) -> u64 {
        self.0
    }
}

impl ListenerHandle {
    /// The handle's number, for logs and traces; handles cannot be made from numbers.
    pub const fn id(self) -> u64 {
        self.0
    }
}

impl SocketHandle {
    /// The handle's number, for logs and traces (connections and listeners never share one).
    pub const fn id(self) -> u64 {
        match self {
            SocketHandle::Conn(c) => c.0,
            SocketHandle::Listener(l) => l.0,
        }
    }
}

impl fmt::Display for ConnHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

impl fmt::Display for ListenerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "listener#{}", self.0)
    }
}

impl fmt::Display for SocketHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketHandle::Conn(c) => c.fmt(f),
            SocketHandle::Listener(l) => l.fmt(f),
        }
    }
}

/// A connection's identity: local and remote socket addresses (RFC 9293 §3.3.1 "socket pair").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FourTuple {
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

impl fmt::Display for FourTuple {
    /// `10.0.0.1:49152-10.0.0.2:80`, the spelling of the simulator's JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.local, self.remote)
    }
}

/// Sizes, in bytes, of the per-connection records (without heap buffers), for the memory
/// targets: TIME_WAIT ≤ 64 (Linux `tcp_timewait_sock`: 248), half-open ≤ 128 (Linux
/// `tcp_request_sock`: 312).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryFootprint {
    /// A connection without its buffers.
    pub conn: usize,
    /// A TIME_WAIT record with its 4-tuple key, as stored in the table.
    pub time_wait_record: usize,
    /// What the TIME_WAIT table adds per record beside it: a 4-byte index entry (at the
    /// hash table's load factor, 5 bytes with its control byte) and an 8-byte expiry entry.
    pub time_wait_overhead: usize,
    /// A half-open (SYN_RECEIVED) entry with its 4-tuple key and table slot.
    pub half_open: usize,
    /// Timer queue cost per armed connection or half-open entry.
    pub timer_entry: usize,
}

pub fn memory_footprint() -> MemoryFootprint {
    use std::mem::size_of;
    MemoryFootprint {
        conn: size_of::<conn::Conn>(),
        time_wait_record: size_of::<time_wait::TimeWaitRecord>(),
        time_wait_overhead: 5 + 8,
        half_open: size_of::<table::Slot>(),
        timer_entry: endpoint::timer_entry_size(),
    }
}
