//! tcpfsm-sim (being built).
