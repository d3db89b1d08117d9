//! One module per subcommand.
pub mod counters;
pub mod diagnose;
pub mod drill;
pub mod export;
pub mod link;
pub mod net;
pub mod sim;
pub mod states;
pub mod trace;
pub mod watch;
