//! tcpfsm-live: the live faces of the Linux host's TCP.
//!
//! - [`trace`]: the kernel's own TCP state transitions, read from the `sock:inet_sock_set_state`
//!   tracepoint through a private tracefs instance's `trace_pipe` (no kprobes, no perf: perf
//!   silently misses some softirq-context hits on recent kernels), with the time each socket
//!   spent in its previous state.
//! - [`tpformat`]: the tracepoint `format` file parser (which fields this kernel has) and the
//!   parser of the `trace_pipe` lines `trace` reads.

pub mod expo;
pub mod exporter;
pub mod metrics;
pub mod server;
pub mod signal;
pub mod tpformat;
pub mod trace;
pub mod watch;

/// How every view spells a socket no process could be found for (a CLOSE_WAIT whose owner
/// exited or is unreadable, a listener of another user). One place, so the exporter's label
/// values, `watch` and `trace` agree.
pub const NO_OWNER: &str = "unattributed";
