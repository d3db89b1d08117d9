//! tcpfsm-wire (being built).
