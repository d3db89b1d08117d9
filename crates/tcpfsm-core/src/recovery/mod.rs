//! Loss recovery for the send side: the SACK scoreboard (RFC 6675), RACK-TLP (RFC 8985) and
//! Proportional Rate Reduction (RFC 9937, which obsoletes RFC 6937).
// The send side wires these in; until then only the tests use them.
#![allow(dead_code)]

pub mod prr;
pub mod rack;
mod ranges;
pub mod sack;
pub mod scoreboard;
pub mod sender;
pub mod tlp;
