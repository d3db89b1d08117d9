//! tcpfsm-host (being built).
