//! TCP segments as bytes: the datagrams a script injects, and the ones a stack sent.
//!
//! Inbound packets are real IPv4/IPv6 datagrams with real checksums, built by tcpfsm-wire,
//! with the options in exactly the order the script wrote them (packetdrill sends what is
//! written, padding included). Outbound datagrams are parsed (checksums verified) into a
//! [`Seg`] whose options keep their wire order, so both comparison modes can use them.

use crate::script::{Ecn, TcpOpt};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use tcpfsm_wire::{self as wire, Ipv4Packet, Ipv6Packet, SackBlock, SeqNum, TcpOption};

/// An option as found on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireOpt {
    Opt(TcpOpt),
    /// A kind this runner does not name (shown as `kind N` with its bytes).
    Other {
        kind: u8,
        data: Vec<u8>,
    },
}

impl fmt::Display for WireOpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireOpt::Opt(o) => write!(f, "{o}"),
            WireOpt::Other { kind, data } => {
                write!(f, "kind {kind}")?;
                for b in data {
                    write!(f, " {b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// A parsed TCP segment with its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seg {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub win: u16,
    pub urg: u16,
    pub options: Vec<WireOpt>,
    pub payload: Vec<u8>,
    /// The IP ECN codepoint (0 not-ECT, 1 ECT(1), 2 ECT(0), 3 CE).
    pub ecn: u8,
}

impl Seg {
    /// Parses an IPv4/IPv6 datagram carrying TCP; `Err` says why it is not one (or why its
    /// checksums are wrong).
    pub fn parse(bytes: &[u8]) -> Result<Seg, String> {
        let p = wire::parse_ip_tcp(bytes).map_err(|e| format!("{e:?}"))?;
        let (ecn, tcp_off) = match p.src {
            IpAddr::V4(_) => {
                let ip = Ipv4Packet::new_unchecked(bytes);
                (ip.dscp_ecn() & 3, ip.header_len())
            }
            IpAddr::V6(_) => {
                let ip = Ipv6Packet::new_unchecked(bytes);
                (ip.traffic_class() & 3, wire::IPV6_HEADER_LEN)
            }
        };
        let raw = wire::TcpPacket::new_unchecked(&bytes[tcp_off..]);
        Ok(Seg {
            src: SocketAddr::new(p.src, p.tcp.src_port),
            dst: SocketAddr::new(p.dst, p.tcp.dst_port),
            flags: p.tcp.flags.bits(),
            seq: p.tcp.seq.0,
            ack: p.tcp.ack.0,
            win: p.tcp.window,
            urg: p.tcp.urgent,
            options: wire_options(raw.options()),
            payload: p.tcp.payload.to_vec(),
            ecn,
        })
    }

    /// SEG.LEN: payload plus one each for SYN and FIN.
    pub fn seg_len(&self) -> u32 {
        self.payload.len() as u32
            + u32::from(self.flags & crate::script::Flags::SYN != 0)
            + u32::from(self.flags & crate::script::Flags::FIN != 0)
    }

    /// The timestamps option, if any.
    pub fn timestamps(&self) -> Option<(u32, u32)> {
        self.options.iter().find_map(|o| match o {
            WireOpt::Opt(TcpOpt::Timestamp { val, ecr }) => Some((*val, *ecr)),
            _ => None,
        })
    }
}

/// The options in wire order. Like packetdrill, every zero byte after an End of Option List
/// is another `eol` (the padding it writes).
fn wire_options(raw: &[u8]) -> Vec<WireOpt> {
    let mut out = Vec::new();
    let mut used = 0;
    for opt in wire::TcpOptionIter::new(raw) {
        let Ok(opt) = opt else {
            // Malformed: show what is left as an unknown option.
            out.push(WireOpt::Other {
                kind: raw.get(used).copied().unwrap_or(0),
                data: raw.get(used + 1..).unwrap_or(&[]).to_vec(),
            });
            return out;
        };
        used += opt.buffer_len();
        let item = match opt {
            TcpOption::EndOfList => {
                out.push(WireOpt::Opt(TcpOpt::Eol));
                for _ in raw[used..].iter().take_while(|b| **b == 0) {
                    out.push(WireOpt::Opt(TcpOpt::Eol));
                }
                return out;
            }
            TcpOption::NoOp => WireOpt::Opt(TcpOpt::Nop),
            TcpOption::Mss(m) => WireOpt::Opt(TcpOpt::Mss(m)),
            TcpOption::WindowScale(s) => WireOpt::Opt(TcpOpt::WScale(s)),
            TcpOption::SackPermitted => WireOpt::Opt(TcpOpt::SackOk),
            TcpOption::Sack(b) => WireOpt::Opt(TcpOpt::Sack(
                b.iter().flatten().map(|s| (s.left.0, s.right.0)).collect(),
            )),
            TcpOption::Timestamps { tsval, tsecr } => WireOpt::Opt(TcpOpt::Timestamp {
                val: tsval,
                ecr: tsecr,
            }),
            TcpOption::Unknown { kind, data } => WireOpt::Other {
                kind,
                data: data.to_vec(),
            },
        };
        out.push(item);
    }
    out
}

/// What an inbound packet carries, already in live (wire) numbers.
#[derive(Debug, Clone)]
pub struct Inbound<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub win: u16,
    pub urg: u16,
    pub options: &'a [TcpOpt],
    pub payload_len: usize,
    pub ecn: Option<Ecn>,
}

/// Builds the datagram: a zero payload as packetdrill sends, the options verbatim.
pub fn build(p: &Inbound<'_>) -> Result<Vec<u8>, String> {
    let mut opts = [0u8; 40];
    let mut olen = 0;
    for o in p.options {
        let n = match o {
            TcpOpt::Nop => TcpOption::NoOp.emit(&mut opts[olen..]),
            TcpOpt::Eol => TcpOption::EndOfList.emit(&mut opts[olen..]),
            TcpOpt::Mss(m) => TcpOption::Mss(*m).emit(&mut opts[olen..]),
            TcpOpt::WScale(s) => TcpOption::WindowScale(*s).emit(&mut opts[olen..]),
            TcpOpt::SackOk => TcpOption::SackPermitted.emit(&mut opts[olen..]),
            TcpOpt::Sack(blocks) => {
                let mut b = [None; 4];
                for (slot, (l, r)) in b.iter_mut().zip(blocks) {
                    *slot = Some(SackBlock {
                        left: SeqNum(*l),
                        right: SeqNum(*r),
                    });
                }
                TcpOption::Sack(b).emit(&mut opts[olen..])
            }
            TcpOpt::Timestamp { val, ecr } => TcpOption::Timestamps {
                tsval: *val,
                tsecr: *ecr,
            }
            .emit(&mut opts[olen..]),
        };
        olen += n.map_err(|e| format!("TCP options do not fit: {e:?}"))?;
    }
    // The options travel at the front of the "payload"; the data offset is then moved past
    // them and the checksum recomputed (it covers the same bytes).
    let mut body = vec![0u8; olen + p.payload_len];
    body[..olen].copy_from_slice(&opts[..olen]);
    let repr = wire::TcpRepr {
        src_port: p.src.port(),
        dst_port: p.dst.port(),
        seq: SeqNum(p.seq),
        ack: SeqNum(p.ack),
        flags: wire::Flags(p.flags),
        window: p.win,
        urgent: p.urg,
        options: wire::TcpOptions::default(),
        payload: &body,
    };
    let mut buf = Vec::new();
    wire::emit_ip_tcp(p.src.ip(), p.dst.ip(), &repr, &mut buf)
        .map_err(|e| format!("cannot build the datagram: {e:?}"))?;
    let hl = wire::ip_header_len(p.src.ip());
    {
        let mut tcp = wire::TcpPacket::new_unchecked(&mut buf[hl..]);
        tcp.set_header_len(wire::TCP_HEADER_LEN + olen);
        tcp.fill_checksum(p.src.ip(), p.dst.ip());
    }
    let ecn = match p.ecn {
        None | Some(Ecn::NotEct) | Some(Ecn::Ect01) => 0,
        Some(Ecn::Ect1) => 1,
        Some(Ecn::Ect0) => 2,
        Some(Ecn::Ce) => 3,
    };
    if ecn != 0 {
        match p.src.ip() {
            IpAddr::V4(_) => {
                let mut ip = Ipv4Packet::new_unchecked(&mut buf[..]);
                ip.set_dscp_ecn(ecn);
                ip.fill_checksum();
            }
            IpAddr::V6(_) => {
                let mut ip = Ipv6Packet::new_unchecked(&mut buf[..]);
                ip.set_version_class_flow(ecn, 0);
            }
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn inbound_packets_keep_option_order_and_real_checksums() {
        let opts = [TcpOpt::Mss(1460), TcpOpt::SackOk, TcpOpt::Eol, TcpOpt::Eol];
        let bytes = build(&Inbound {
            src: addr("192.0.2.1:40000"),
            dst: addr("192.168.0.1:8080"),
            flags: crate::script::Flags::SYN,
            seq: 7,
            ack: 0,
            win: 32767,
            urg: 0,
            options: &opts,
            payload_len: 3,
            ecn: Some(Ecn::Ect0),
        })
        .unwrap();
        let s = Seg::parse(&bytes).unwrap();
        assert_eq!(s.seq, 7);
        assert_eq!(s.win, 32767);
        assert_eq!(s.payload, vec![0, 0, 0]);
        assert_eq!(s.ecn, 2);
        assert_eq!(
            s.options,
            opts.iter().cloned().map(WireOpt::Opt).collect::<Vec<_>>()
        );
    }

    #[test]
    fn ipv6_and_timestamps_round_trip() {
        let opts = [
            TcpOpt::Nop,
            TcpOpt::Nop,
            TcpOpt::Timestamp { val: 5, ecr: 9 },
        ];
        let bytes = build(&Inbound {
            src: addr("[2001:db8::1]:40000"),
            dst: addr("[fd3d:fa7b:d17d::1]:8080"),
            flags: crate::script::Flags::ACK,
            seq: 1,
            ack: 2,
            win: 100,
            urg: 0,
            options: &opts,
            payload_len: 0,
            ecn: None,
        })
        .unwrap();
        let s = Seg::parse(&bytes).unwrap();
        assert_eq!(s.timestamps(), Some((5, 9)));
        assert_eq!(s.ack, 2);
    }

    #[test]
    fn corrupt_datagrams_are_refused() {
        let mut bytes = build(&Inbound {
            src: addr("192.0.2.1:40000"),
            dst: addr("192.168.0.1:8080"),
            flags: 0,
            seq: 1,
            ack: 0,
            win: 1,
            urg: 0,
            options: &[],
            payload_len: 4,
            ecn: None,
        })
        .unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 1;
        assert!(Seg::parse(&bytes).is_err());
    }
}
