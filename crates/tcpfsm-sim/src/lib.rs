//! A deterministic simulated network for tcpfsm's TCP.
//!
//! Hosts run the sans-IO [`tcpfsm_core::Endpoint`]; links between them delay, jitter, lose,
//! duplicate, reorder and corrupt segments from seeded RNG streams; a virtual clock jumps to
//! the next deadline. Scenarios are written in a small script language ([`script`], see
//! `SCRIPT.md`); the trace they leave (segments with fate, application calls, state changes)
//! is drawn as an ASCII sequence diagram, JSON lines or SVG ([`render`]).
//!
//! ```
//! let out = tcpfsm_sim::run_builtin("handshake", Some(1)).unwrap().unwrap();
//! assert!(out.passed());
//! let diagram = tcpfsm_sim::render::ascii(&out.trace, &Default::default());
//! assert!(diagram.contains("SYN_SENT"));
//! ```

pub mod analysis;
pub mod bulk;
mod decode;
pub mod inject;
pub mod link;
pub mod network;
pub mod pcap;
pub mod render;
mod rfc;
pub mod runner;
pub mod scenarios;
pub mod script;
pub mod sink;
pub mod trace;

pub use link::LinkParams;
pub use network::Network;
pub use rfc::is_rfc_transition;
pub use runner::{run, run_with, Outcome, Report};
pub use scenarios::{builtin, builtins, run_builtin, Builtin};
pub use script::{parse, Script, ScriptError};
pub use trace::{ConnPath, Fate, Trace, TraceEvent};

/// Parses and runs a script in one go.
pub fn run_source(file: &str, src: &str, seed: Option<u64>) -> Result<Outcome, ScriptError> {
    let script = parse(file, src)?;
    run(&script, seed)
}
