//! The endpoint's counters are the shared MIB of `tcpfsm-states` — the same type the live host
//! parses `/proc/net/snmp` and `/proc/net/netstat` into and the exporter prints — indexed by
//! Linux's names (`stats[Counter::InSegs]`); counters Linux lacks are in its `Tcpfsm` group.

pub use tcpfsm_states::mib::{Counter, Mib};

/// The endpoint's counters (`Endpoint::stats`): the shared [`Mib`].
pub type Stats = Mib;
