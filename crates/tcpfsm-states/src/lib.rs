//! The one state vocabulary of tcpfsm.
//!
//! RFC 9293 §3.3.2 names eleven connection states. Our own TCP, the simulator, the live-host
//! monitor, the exporter and the diagrams all speak of connections with this one enum, so a
//! count from the Linux kernel and a count from our stack can be put side by side.
//!
//! [`mib`] is the counter vocabulary in the same spirit: one [`Mib`] of Linux-named
//! [`Counter`]s shared by our engine, the host reader, the diagnosis and the exporter.

pub mod mib;

pub use mib::{Counter, CounterSet, Mib};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A TCP connection state (RFC 9293 §3.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum State {
    Closed,
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    Closing,
    TimeWait,
    CloseWait,
    LastAck,
}

/// Where in the lifecycle a state sits; used to colour diagrams and group counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// CLOSED: no connection exists.
    Baseline,
    /// LISTEN, SYN_SENT, SYN_RECEIVED.
    Establishment,
    /// ESTABLISHED.
    Transfer,
    /// FIN_WAIT_1, FIN_WAIT_2, CLOSING, TIME_WAIT: the side that sent the first FIN.
    ActiveClose,
    /// CLOSE_WAIT, LAST_ACK: the side that received the first FIN.
    PassiveClose,
}

impl State {
    /// All eleven states, in the order of RFC 9293's list.
    pub const ALL: [State; 11] = [
        State::Closed,
        State::Listen,
        State::SynSent,
        State::SynReceived,
        State::Established,
        State::FinWait1,
        State::FinWait2,
        State::Closing,
        State::TimeWait,
        State::CloseWait,
        State::LastAck,
    ];

    /// The canonical name, as written in every tcpfsm output (`SYN_RECEIVED`, `FIN_WAIT_1`, …).
    pub const fn name(self) -> &'static str {
        match self {
            State::Closed => "CLOSED",
            State::Listen => "LISTEN",
            State::SynSent => "SYN_SENT",
            State::SynReceived => "SYN_RECEIVED",
            State::Established => "ESTABLISHED",
            State::FinWait1 => "FIN_WAIT_1",
            State::FinWait2 => "FIN_WAIT_2",
            State::Closing => "CLOSING",
            State::TimeWait => "TIME_WAIT",
            State::CloseWait => "CLOSE_WAIT",
            State::LastAck => "LAST_ACK",
        }
    }

    /// Position in [`State::ALL`]; handy as an array index.
    pub const fn index(self) -> usize {
        self as usize
    }

    pub const fn phase(self) -> Phase {
        match self {
            State::Closed => Phase::Baseline,
            State::Listen | State::SynSent | State::SynReceived => Phase::Establishment,
            State::Established => Phase::Transfer,
            State::FinWait1 | State::FinWait2 | State::Closing | State::TimeWait => {
                Phase::ActiveClose
            }
            State::CloseWait | State::LastAck => Phase::PassiveClose,
        }
    }

    /// RFC 9293 §3.3.2: "SYNCHRONIZED" states are those past the handshake.
    pub const fn is_synchronized(self) -> bool {
        !matches!(
            self,
            State::Closed | State::Listen | State::SynSent | State::SynReceived
        )
    }

    /// Is `self → to` an edge of the RFC 9293 state graph (§3.3.2, Figure 5, with the §3.10
    /// event-processing rules)? Besides the diagram's arrows this admits what §3.10 adds:
    /// SYN_RECEIVED back to LISTEN (reset of a passive open), SYN_RECEIVED → CLOSE_WAIT (a FIN
    /// with the handshake's ACK), SYN_RECEIVED → FIN_WAIT_1 (close before the ACK), and any
    /// state to CLOSED by reset, abort or timeout.
    pub const fn can_transition_to(self, to: State) -> bool {
        use State::*;
        matches!(
            (self, to),
            (Closed, Listen | SynSent)
                | (Listen, SynReceived | SynSent | Closed)
                | (SynSent, SynReceived | Established | Closed)
                | (
                    SynReceived,
                    Established | FinWait1 | CloseWait | Listen | Closed
                )
                | (Established, FinWait1 | CloseWait | Closed)
                | (FinWait1, FinWait2 | Closing | TimeWait | Closed)
                | (FinWait2, TimeWait | Closed)
                | (Closing, TimeWait | Closed)
                | (TimeWait, Closed)
                | (CloseWait, LastAck | Closed)
                | (LastAck, Closed)
        )
    }

    /// The number the Linux kernel uses for this state (`include/net/tcp_states.h`), as found
    /// in sock_diag replies and the `sock:inet_sock_set_state` tracepoint.
    pub const fn linux_code(self) -> u8 {
        match self {
            State::Established => 1,
            State::SynSent => 2,
            State::SynReceived => 3,
            State::FinWait1 => 4,
            State::FinWait2 => 5,
            State::TimeWait => 6,
            State::Closed => 7,
            State::CloseWait => 8,
            State::LastAck => 9,
            State::Listen => 10,
            State::Closing => 11,
        }
    }

    /// Inverse of [`State::linux_code`]. Linux's TCP_NEW_SYN_RECV (12) is a SYN_RECEIVED
    /// request socket, so it maps to `SynReceived`; other codes have no RFC state.
    pub const fn from_linux_code(code: u8) -> Option<State> {
        Some(match code {
            1 => State::Established,
            2 => State::SynSent,
            3 | 12 => State::SynReceived,
            4 => State::FinWait1,
            5 => State::FinWait2,
            6 => State::TimeWait,
            7 => State::Closed,
            8 => State::CloseWait,
            9 => State::LastAck,
            10 => State::Listen,
            11 => State::Closing,
            _ => return None,
        })
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A state name that is none of the eleven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownState(pub String);

impl fmt::Display for UnknownState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown TCP state {:?} (expected one of: {})",
            self.0,
            State::ALL.map(State::name).join(", ")
        )
    }
}

impl std::error::Error for UnknownState {}

impl FromStr for State {
    type Err = UnknownState;

    /// Accepts the canonical names and the spellings of `ss` and `netstat`, in any case, with
    /// `-` or `_`: `close-wait`, `SYN-RECV`, `ESTAB`, `time_wait`, `FIN-WAIT-1`, `fin-wait1`.
    fn from_str(s: &str) -> Result<State, UnknownState> {
        let norm: String = s
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        Ok(match norm.as_str() {
            "CLOSED" | "CLOSE" | "UNCONN" | "UNCONNECTED" => State::Closed,
            "LISTEN" | "LISTENING" => State::Listen,
            "SYNSENT" => State::SynSent,
            "SYNRECEIVED" | "SYNRECV" | "SYNRCVD" => State::SynReceived,
            "ESTABLISHED" | "ESTAB" => State::Established,
            "FINWAIT1" => State::FinWait1,
            "FINWAIT2" => State::FinWait2,
            "CLOSING" => State::Closing,
            "TIMEWAIT" => State::TimeWait,
            "CLOSEWAIT" => State::CloseWait,
            "LASTACK" => State::LastAck,
            _ => return Err(UnknownState(s.to_string())),
        })
    }
}

/// Counts of connections by state. All eleven are always present, zeros included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Census {
    counts: [u64; 11],
}

impl Census {
    pub fn new() -> Census {
        Census::default()
    }

    pub fn add(&mut self, state: State, n: u64) {
        self.counts[state.index()] += n;
    }

    pub fn get(&self, state: State) -> u64 {
        self.counts[state.index()]
    }

    pub fn set(&mut self, state: State, n: u64) {
        self.counts[state.index()] = n;
    }

    /// All connections counted, LISTEN included.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(state, count)` for all eleven states, in [`State::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (State, u64)> + '_ {
        State::ALL.iter().map(move |s| (*s, self.counts[s.index()]))
    }

    /// Adds another census to this one.
    pub fn merge(&mut self, other: &Census) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
    }
}

impl FromIterator<State> for Census {
    fn from_iter<I: IntoIterator<Item = State>>(iter: I) -> Census {
        let mut c = Census::new();
        for s in iter {
            c.add(s, 1);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_from_str() {
        for s in State::ALL {
            assert_eq!(s.name().parse::<State>().unwrap(), s);
        }
    }

    #[test]
    fn ss_spellings_parse() {
        assert_eq!("close-wait".parse::<State>().unwrap(), State::CloseWait);
        assert_eq!("SYN-RECV".parse::<State>().unwrap(), State::SynReceived);
        assert_eq!("ESTAB".parse::<State>().unwrap(), State::Established);
        assert_eq!("fin-wait-1".parse::<State>().unwrap(), State::FinWait1);
        assert!("bogus".parse::<State>().is_err());
    }

    #[test]
    fn linux_codes_round_trip() {
        for s in State::ALL {
            assert_eq!(State::from_linux_code(s.linux_code()), Some(s));
        }
        assert_eq!(State::from_linux_code(12), Some(State::SynReceived));
        assert_eq!(State::from_linux_code(0), None);
        assert_eq!(State::from_linux_code(13), None);
    }

    #[test]
    fn census_counts_every_state_with_zeros() {
        let c: Census = [State::TimeWait, State::TimeWait, State::Listen]
            .into_iter()
            .collect();
        assert_eq!(c.iter().count(), 11);
        assert_eq!(c.get(State::TimeWait), 2);
        assert_eq!(c.get(State::CloseWait), 0);
        assert_eq!(c.total(), 3);
    }

    #[test]
    fn transition_graph_has_the_rfc_edges_and_no_others() {
        use State::*;
        let edges: usize = State::ALL
            .iter()
            .map(|a| {
                State::ALL
                    .iter()
                    .filter(|b| a.can_transition_to(**b))
                    .count()
            })
            .sum();
        assert_eq!(edges, 28);
        assert!(FinWait1.can_transition_to(TimeWait));
        assert!(SynReceived.can_transition_to(Listen));
        assert!(
            !CloseWait.can_transition_to(TimeWait),
            "the passive closer never waits"
        );
        assert!(!TimeWait.can_transition_to(Established));
        assert!(!Closed.can_transition_to(Established));
    }

    #[test]
    fn synchronized_states_are_those_past_the_handshake() {
        assert!(!State::SynReceived.is_synchronized());
        assert!(State::Established.is_synchronized());
        assert!(State::TimeWait.is_synchronized());
    }
}
