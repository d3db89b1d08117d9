//! tcpfsm-live: the live faces of the Linux host's TCP.
//!
//! - [`trace`]: the kernel's own TCP state transitions, read from the `sock:inet_sock_set_state`
//!   tracepoint through a private tracefs instance's raw per-CPU rings (no kprobes, no perf:
//!   perf silently misses some softirq-context hits on recent kernels), with the time each
//!   socket spent in its previous state, TIME_WAIT filled in from sock_diag ([`timewait`]),
//!   and retransmissions and resets from the `tcp:` tracepoints; printed by [`traceout`].
//! - [`tracefs`], [`ring`], [`tpformat`], [`tpevents`]: tracefs instances, the ring buffer's
//!   page format, tracepoint format files, and the decoding of the TCP tracepoints' records.

pub mod comms;
pub mod conntrack;
pub mod expo;
pub mod exporter;
pub mod metrics;
pub mod owners;
pub mod ring;
pub mod server;
pub mod signal;
pub mod timewait;
pub mod tpevents;
pub mod tpformat;
pub mod trace;
pub mod tracefs;
pub mod traceout;
pub mod watch;
