//! `tcpfsm drill`: packetdrill-dialect scripts run against tcpfsm's sans-IO TCP on a virtual
//! clock (`engine`), our TCP over a TUN device in real time (`tun`), or the Linux kernel in a
//! private network namespace (`linux`), with a differential mode that shows where two stacks
//! disagree.

pub mod script;
