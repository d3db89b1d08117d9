//! Reading segments for the trace and building spoofed ones, on top of tcpfsm-wire.

use std::net::{IpAddr, SocketAddr};

use crate::trace::SegOptions;

/// The fields of a segment the trace and the drop rules need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seg {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// `SYN,ACK`
    pub flags: String,
    /// Flag bits, see [`crate::script::flag`].
    pub bits: u8,
    pub seq: u32,
    pub ack: u32,
    pub len: usize,
    pub window: u16,
    pub options: SegOptions,
}

/// Decodes a whole IP datagram carrying TCP; `None` if it is not one.
pub fn decode(datagram: &[u8]) -> Option<Seg> {
    let p = tcpfsm_wire::parse_ip_tcp(datagram).ok()?;
    let flags = p.tcp.flags.to_string();
    let bits = crate::script::flag::bits_of(&flags);
    Some(Seg {
        src: SocketAddr::new(p.src, p.tcp.src_port),
        dst: SocketAddr::new(p.dst, p.tcp.dst_port),
        flags,
        bits,
        seq: p.tcp.seq.0,
        ack: p.tcp.ack.0,
        len: p.tcp.payload.len(),
        window: p.tcp.window,
        options: options(&p.tcp.options),
    })
}

fn options(o: &tcpfsm_wire::TcpOptions) -> SegOptions {
    SegOptions {
        mss: o.mss,
        wscale: o.window_scale,
        sack_permitted: o.sack_permitted,
        timestamps: o.timestamps.map(|t| (t.tsval, t.tsecr)),
        sack: o
            .sack_blocks
            .iter()
            .flatten()
            .map(|b| (b.left.0, b.right.0))
            .collect(),
    }
}

/// A SYN from a made-up source, as a flooder would send: MSS option only, a valid checksum.
pub fn build_syn(src: SocketAddr, dst: SocketAddr, seq: u32) -> Option<Vec<u8>> {
    if matches!(
        (src.ip(), dst.ip()),
        (IpAddr::V4(_), IpAddr::V6(_)) | (IpAddr::V6(_), IpAddr::V4(_))
    ) {
        return None;
    }
    let mut repr = tcpfsm_wire::TcpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
        seq: tcpfsm_wire::SeqNum(seq),
        flags: tcpfsm_wire::Flags::SYN,
        window: 64240,
        ..Default::default()
    };
    repr.options.mss = Some(1460);
    let mut out = Vec::new();
    tcpfsm_wire::emit_ip_tcp(src.ip(), dst.ip(), &repr, &mut out).ok()?;
    Some(out)
}
