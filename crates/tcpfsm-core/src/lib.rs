//! A sans-IO TCP (RFC 9293).
//!
//! The [`Endpoint`] owns every connection of one host. It never reads a clock, never does I/O
//! and never spawns: the driver (simulator, TUN device, tests) passes time in and moves bytes.
//!
//! ```text
//! let mut ep = Endpoint::new(config, seed);
//! ep.listen(local_addr, backlog)?;
//! let id = ep.connect(now, local_addr, remote_addr)?;
//! ep.handle_packet(now, &ip_datagram);
//! while let Some(tx) = ep.poll_transmit(now, &mut buf) { /* send buf[..tx.len] */ }
//! ep.poll_timeout(); ep.handle_timeout(now);
//! while let Some(ev) = ep.poll_event() { /* StateChanged, Acceptable, Readable, … */ }
//! ```

pub mod cc;
pub mod config;
pub mod error;
pub mod event;
pub mod stats;
pub mod time;

mod congestion;
mod endpoint;
mod listener;
mod recovery;
mod rtt;
mod secrets;
mod syncookie;
mod tcb;
mod time_wait;
mod tuple;

pub use config::{Config, CongestionAlgorithm, SynCookies, TwReuse};
pub use endpoint::{ConnInfo, Endpoint, ListenOptions, Transmit};
pub use error::Error;
pub use event::{Cause, CloseReason, Event};
pub use stats::Stats;
pub use tcpfsm_states::{Census, Phase, State};
pub use time::{Duration, Instant};

use std::fmt;
use std::net::SocketAddr;

/// A connection handle. Never reused within one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// A listener handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

impl fmt::Display for ListenerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "listener#{}", self.0)
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
/// `tcp_request_sock`: 312), TCB ≤ 512.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryFootprint {
    /// A TCB without its buffers.
    pub tcb: usize,
    /// A TIME_WAIT record with its 4-tuple key, as stored in the table.
    pub time_wait_record: usize,
    /// The TIME_WAIT expiry queue's entry per record.
    pub time_wait_queue_entry: usize,
    /// A half-open (SYN_RECEIVED) entry with its 4-tuple key.
    pub half_open: usize,
    /// Timer heap entry per TCB or half-open entry.
    pub timer_entry: usize,
}

pub fn memory_footprint() -> MemoryFootprint {
    use std::mem::size_of;
    MemoryFootprint {
        tcb: size_of::<tcb::Tcb>(),
        time_wait_record: size_of::<(tuple::CompactTuple, time_wait::TimeWaitRecord)>(),
        time_wait_queue_entry: size_of::<(u32, tuple::CompactTuple)>(),
        half_open: size_of::<(tuple::CompactTuple, listener::HalfOpen)>(),
        timer_entry: endpoint::timer_entry_size(),
    }
}
