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
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use tcpfsm_wire::*;
//!
//! let (src, dst) = (IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
//! let syn = TcpRepr {
//!     src_port: 40000,
//!     dst_port: 80,
//!     seq: SeqNum(1000),
//!     flags: Flags::SYN,
//!     window: 65535,
//!     options: TcpOptions { mss: Some(1460), window_scale: Some(7), ..Default::default() },
//!     ..Default::default()
//! };
//! let mut buf = Vec::new();
//! let n = emit_ip_tcp(src, dst, &syn, &mut buf)?;
//! assert_eq!(n, 20 + 28);
//!
//! let parsed = parse_ip_tcp(&buf)?;
//! assert_eq!(parsed.tcp, syn);
//! assert_eq!(parsed.tcp.flags.to_string(), "SYN");
//! assert_eq!(parsed.tcp.segment_len(), 1);
//!
//! // The zero-copy view reads the same bytes in place.
//! let view = TcpPacket::new_checked(&buf[ip_header_len(src)..])?;
//! assert_eq!(view.seq_number(), SeqNum(1000));
//! assert!(view.options_iter().any(|o| o == Ok(TcpOption::Mss(1460))));
//! # Ok::<(), tcpfsm_wire::Error>(())
//! ```

pub mod checksum;
mod error;
mod flags;
mod ip;
pub mod pcap;
mod seq;
mod tcp;

pub use checksum::ChecksumOffload;
pub use error::Error;
pub use flags::{Flags, ParseFlagsError};
pub use ip::{
    datagram_len, emit_ip_tcp, emit_ip_tcp_into, emit_ip_tcp_into_with, emit_ip_tcp_reusing,
    emit_ip_tcp_split, emit_ip_tcp_split_ref, ip_header_len, parse_ip_tcp, parse_ip_tcp_deferred,
    parse_ip_tcp_deferred_into, parse_ip_tcp_with, IpTcp, Ipv4Packet, Ipv6Packet, DEFAULT_TTL,
    IPV4_HEADER_LEN, IPV6_HEADER_LEN,
};
pub use seq::SeqNum;
pub use tcp::{
    kind as option_kind, SackBlock, TcpOption, TcpOptionIter, TcpOptions, TcpPacket, TcpRepr,
    Timestamps, HEADER_LEN as TCP_HEADER_LEN, MAX_OPTIONS_LEN,
};
