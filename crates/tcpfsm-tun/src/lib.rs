//! tcpfsm-tun (being built).
