//! tcpfsm-live: the live faces of the Linux host's TCP.
//!
//! - [`trace`]: the kernel's own TCP state transitions, read from the `sock:inet_sock_set_state`
//!   tracepoint through perf events (no kprobes), with the time each socket spent in its
//!   previous state.
//! - [`tpformat`]: the tracepoint `format` file parser and raw-record decoder used by `trace`;
//!   offsets are read at run time because they differ between kernel versions.

pub mod expo;
pub mod exporter;
pub mod metrics;
pub mod server;
pub mod signal;
pub mod tpformat;
pub mod trace;
pub mod watch;
