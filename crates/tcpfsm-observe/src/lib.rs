//! tcpfsm-observe (being built).
