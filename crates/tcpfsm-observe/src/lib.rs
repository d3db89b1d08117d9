//! tcpfsm-observe: the diagnosis layer shared by the live Linux host and our own simulated stack.
//!
//! A source (the host via `tcpfsm-host`, or an `Endpoint` of our own TCP) fills in a
//! [`Snapshot`]: a census of the eleven states plus whatever else it can supply (per-process
//! CLOSE_WAIT counts, TIME_WAIT grouped by remote, per-listener accept queues, /proc-style
//! counters, sysctls, file-descriptor usage). Fields a source cannot supply are `None` and the
//! rules that need them say so instead of guessing.
//!
//! [`diagnose`] takes one or more snapshots (oldest first) and [`Thresholds`], and returns one
//! [`Verdict`] per [`Rule`], in [`Rule::ALL`] order. Rates and growth are computed between
//! samples; with a single sample, counter-based rules fall back to totals since boot.
//!
//! ```
//! use tcpfsm_observe::{diagnose, Level, Snapshot, Thresholds};
//! use tcpfsm_states::State;
//! let mut s = Snapshot::default();
//! s.census.set(State::CloseWait, 150);
//! let verdicts = diagnose(&[s], &Thresholds::default());
//! assert_eq!(verdicts.len(), 7);
//! assert_eq!(tcpfsm_observe::worst(&verdicts), Level::Warning);
//! ```
//!
//! Public API (stable for the CLI, `watch` and `export`):
//! - snapshot data: [`Snapshot`], [`Mib`] (the TCP MIB, shared with the engine), [`Sockstat`],
//!   [`Rates`], [`Sysctls`], [`PortRange`],
//!   [`ProcessRef`], [`ProcessCount`], [`ProcessBreakdown`], [`RemoteCount`], [`ListenerQueue`],
//!   [`FdUsage`], [`QueuedBytes`]; [`rates`] computes per-second rates between two snapshots.
//! - thresholds: [`Thresholds`] (defaults from the reference table; [`Thresholds::from_toml_str`],
//!   [`Thresholds::load`], [`Thresholds::validate`]).
//! - verdicts: [`Rule`], [`Level`], [`Verdict`], [`diagnose`], [`worst`].
//! - owners: [`NO_OWNER`] and [`NoOwner`] — the one spelling, everywhere, of a socket with no
//!   process, and why.

mod advice;
mod culprits;
mod owner;
mod rules;
mod snapshot;
mod thresholds;

pub use culprits::{ListenerCount, Orphans};
pub use owner::{NoOwner, NO_OWNER};
pub use rules::{diagnose, worst, Level, Rule, Verdict};
pub use snapshot::{
    rates, retrans_ratio, FdUsage, ListenerQueue, PortRange, ProcessBreakdown, ProcessCount,
    ProcessRef, QueuedBytes, Rates, RemoteCount, Snapshot, Sockstat, Sysctls,
};
pub use tcpfsm_states::{Census, Counter, Mib, State};
pub use thresholds::{ConfigError, Thresholds};
