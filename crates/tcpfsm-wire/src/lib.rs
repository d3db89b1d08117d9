//! TCP segments inside IPv4 and IPv6 datagrams, as real bytes.
//!
//! Two layers, in the style of smoltcp's `wire` module:
//! - zero-copy views over byte buffers ([`TcpPacket`], [`Ipv4Packet`],
//!   [`Ipv6Packet`]) with checked constructors, getters and setters;
//! - owned representations ([`TcpRepr`], [`TcpOptions`], [`IpTcp`]) that
//!   parse from and emit to those views, borrowing only the payload.
//!
//! [`parse_ip_tcp`] / [`emit_ip_tcp`] are the per-packet entry points used by
//! the TCP core. Parsing never allocates and never panics on any input.
//! Sequence numbers ([`SeqNum`]) use RFC 9293 §3.4 modular arithmetic.

pub mod checksum;
mod error;
mod flags;
mod ip;
mod seq;
mod tcp;

pub use error::Error;
pub use flags::Flags;
pub use ip::{
    datagram_len, emit_ip_tcp, emit_ip_tcp_into, ip_header_len, parse_ip_tcp, IpTcp, Ipv4Packet,
    Ipv6Packet, DEFAULT_TTL, IPV4_HEADER_LEN, IPV6_HEADER_LEN,
};
pub use seq::SeqNum;
pub use tcp::{
    kind as option_kind, SackBlock, TcpOption, TcpOptionIter, TcpOptions, TcpPacket, TcpRepr,
    Timestamps, HEADER_LEN as TCP_HEADER_LEN, MAX_OPTIONS_LEN,
};
