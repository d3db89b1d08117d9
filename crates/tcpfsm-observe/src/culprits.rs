//! Who is behind a rule's numbers: orphaned sockets counted one by one, and the programs and
//! peers the advice must name.

use crate::snapshot::{ProcessCount, ProcessRef};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use tcpfsm_states::{Census, State};

/// Orphaned sockets — closed by their program, still finishing the close — counted from the
/// socket table (sockets no file refers to, in FIN_WAIT_1, FIN_WAIT_2, CLOSING, LAST_ACK).
///
/// The kernel's own `orphan` count (sockstat) is not this number. Once an orphan reaches
/// FIN_WAIT_2, Linux replaces the full socket by a timewait minisocket (`tcp_time_wait(sk,
/// TCP_FIN_WAIT2, …)`, whenever tcp_fin_timeout is at most 60 s), which sockstat counts under
/// `tw` and no longer under `orphan`: a host with 220 orphaned FIN_WAIT_2 can show `orphan 0`
/// and `tw 229` for 9 TIME_WAIT. And `orphan` is one counter for the whole host, every network
/// namespace together, while this census is the namespace's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orphans {
    /// By state; only the four closing states are ever non-zero.
    pub by_state: Census,
    /// Of the FIN_WAIT_2 orphans, those already turned into timewait minisockets (in the
    /// kernel's TIME_WAIT table, limited by tcp_max_tw_buckets together with TIME_WAIT).
    pub fin_wait2_minisocks: u64,
}

impl Orphans {
    /// The states an orphan can be in.
    pub const STATES: [State; 4] = [
        State::FinWait1,
        State::FinWait2,
        State::Closing,
        State::LastAck,
    ];

    pub fn total(&self) -> u64 {
        self.by_state.total()
    }

    /// `FIN_WAIT_2 220, LAST_ACK 3` (non-zero states only).
    pub fn describe(&self) -> String {
        let parts: Vec<String> = Orphans::STATES
            .iter()
            .filter(|s| self.by_state.get(**s) > 0)
            .map(|s| format!("{} {}", s.name(), self.by_state.get(*s)))
            .collect();
        parts.join(", ")
    }
}

/// Half-open (SYN_RECEIVED) connections waiting on one listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerCount {
    /// The listener's own address (e.g. `0.0.0.0:443`).
    pub listener: SocketAddr,
    pub count: u64,
    pub owner: Option<ProcessRef>,
}

/// `nginx (pid 4242)`.
pub fn program(p: &ProcessRef) -> String {
    format!("{} (pid {})", p.comm, p.pid)
}

/// `nginx (pid 4242)` for a count's process.
pub fn program_of(p: &ProcessCount) -> String {
    format!("{} (pid {})", p.comm, p.pid)
}
