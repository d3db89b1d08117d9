//! tcpfsm-host: the Linux kernel's TCP, read the way `ss` reads it, for the same `Census` and
//! diagnosis types our own stack uses (`tcpfsm-observe`).
//!
//! Everything reads the network namespace of the *calling thread*.
//!
//! Public API (used by `tcpfsm states`, `diagnose`, `watch`, `export`):
//! - [`diag`]: [`SockDiag`] — one reusable NETLINK_SOCK_DIAG socket.
//!   - `SockDiag::new()?`
//!   - `census(&Filter) -> Census` — fast count (state bitmask in the request, no tcp_info).
//!   - `sockets(&Filter) -> Vec<SocketRow>`, `for_each(&Filter, |&SocketRow|)` — per-socket rows
//!     (local, remote, state, rx/tx queue, inode, uid), filtered by [`StateSet`] and port.
//!   - `listeners() -> Vec<SocketRow>` — for LISTEN rows `rx_queue` = accept queue length,
//!     `tx_queue` = backlog.
//! - [`procs`]: inode → process attribution from `/proc/<pid>/fd`: [`attribute`] (only the inodes
//!   asked, stops early), [`attribute_all`] (full scan with per-process fd counts),
//!   [`sockets_of_processes`] / [`sockets_of`] (only processes whose comm/pid matches), [`Attribution::owner`] →
//!   [`Owner`] (holders or a `tcpfsm_observe::NoOwner` reason), [`fd_usage`], [`comm_of`].
//! - [`counters`]: [`RawCounters`] — the `Tcp:`/`TcpExt:` lines as a `tcpfsm_states::Mib`
//!   (plus any field this build does not know, so nothing is lost) and the sockstat gauges
//!   (`RawCounters::sockstat` → `tcpfsm_observe::Sockstat`); [`parse_tables`] for any
//!   /proc/net/snmp-style file; [`read_sysctls`] → `tcpfsm_observe::Sysctls`.
//! - [`snapshot`](mod@snapshot): [`snapshot()`](fn@snapshot) and [`Sampler`] build a
//!   `tcpfsm_observe::Snapshot` (census, CLOSE_WAIT by process, TIME_WAIT by remote, listener
//!   queues, counters, sysctls, fd usage); feed a series to `tcpfsm_observe::diagnose`.

pub mod counters;
pub mod diag;
pub mod expr;
pub mod lookup;
pub mod netns;
pub mod procs;
pub mod snapshot;
pub mod sockinfo;

pub use counters::{
    nstat_values, parse_tables, read_nstat, read_sysctls, NamedValue, RawCounters, Table,
    UnknownField,
};
pub use diag::{Family, Filter, SockDiag, SocketRow, StateSet};
pub use expr::{Expr, ExprError};
pub use lookup::{Found, SocketLookup};
pub use procs::{
    attribute, attribute_all, comm_of, fd_usage, sockets_of, sockets_of_processes, Attribution,
    Holder, Owner,
};
pub use snapshot::{breakdown, snapshot, Sampler, SnapshotOptions};
pub use sockinfo::{Extensions, Extras, SkMemInfo, SocketTimer, TcpInfo, TimerKind};
pub use tcpfsm_observe as observe;
pub use tcpfsm_observe::NoOwner;
pub use tcpfsm_states::{Census, State};

/// Errors from reading the host.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("netlink: {what}: {source}")]
    Netlink {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("netlink protocol error: {0}")]
    Protocol(String),
    #[error("cannot read {path}: {source}")]
    Proc {
        path: String,
        source: std::io::Error,
    },
    #[error("network namespace {name:?}: {why}")]
    Netns { name: String, why: String },
}
