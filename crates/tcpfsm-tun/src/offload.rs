//! TUN offloads: the `virtio_net_hdr` in front of each datagram (`IFF_VNET_HDR`).
//!
//! Without offloads every TCP segment crosses the TUN as its own `write(2)` or `read(2)`,
//! and the kernel's TCP handles each one: at MTU 1500 that is 45 syscalls and 45 trips
//! through `tcp_v4_rcv` per 64 KiB, which dominate a bulk transfer's cost. With the header,
//! one datagram may stand for many segments, as between a virtio-net guest and its host:
//!
//! - **Receive** (`TUNSETOFFLOAD` with `TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6`): the kernel
//!   hands us its TSO super-segments whole (up to 64 KiB, `gso_size` = its MSS) and leaves
//!   the TCP checksum partial (`VIRTIO_NET_HDR_F_NEEDS_CSUM`: the field holds the
//!   pseudo-header sum, the device is to add the rest). [`complete_checksum`] finishes it,
//!   so the engine sees an ordinary, verifiable segment that is longer than one MSS, which
//!   RFC 9293 §3.7.1 allows a receiver to accept (the MSS bounds what the peer *sends* on
//!   the wire, and on the wire the kernel's segments are MSS-sized).
//! - **Send**: consecutive data segments of one connection, as the engine emitted them,
//!   go out as one super-segment ([`Coalescer`]): one header (the first's, with the total
//!   length), the payloads one after another, `gso_size` = the segments' size. It is what
//!   Linux's GRO builds from the same segments, and the same rules decide what may merge
//!   (`tcp_gro_receive`): same addresses, ports, ACK, window and options, contiguous
//!   sequence numbers, every segment but the last exactly `gso_size` long, no flag but ACK
//!   (PSH ends a run, as in GRO). The kernel's TCP takes such a datagram as the segments it
//!   stands for (it counts `gso_segs` for its ACK policy); nothing else on the path
//!   changes, so the stream is the same bytes in the same order.

use std::net::IpAddr;

use tcpfsm_wire::checksum::{pseudo_header, Checksum};

/// `sizeof(struct virtio_net_hdr)`, the TUN default (`TUNSETVNETHDRSZ` not set).
pub(crate) const VNET_HDR_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum at `csum_start + csum_offset` is partial.
const F_NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
/// Offset of the checksum within the TCP header (RFC 9293 §3.1).
const TCP_CSUM_OFFSET: u16 = 16;
/// The most a datagram with a 16-bit length field can carry.
const MAX_DATAGRAM: usize = 65535;
/// Segments per super-segment at most, as Linux's GRO (`MAX_GRO_SKBS` is 8 frags of 8;
/// its `gso_max_segs` allows more, but 64 × 1 KiB already fills the datagram).
pub(crate) const MAX_SEGS: usize = 64;
/// Flags a merged segment may carry: ACK, and PSH on the last one.
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

/// `struct virtio_net_hdr` (legacy layout, host byte order: the TUN's default on a
/// little-endian host, where it equals virtio's little-endian).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct VnetHdr {
    pub(crate) flags: u8,
    pub(crate) gso_type: u8,
    pub(crate) hdr_len: u16,
    pub(crate) gso_size: u16,
    pub(crate) csum_start: u16,
    pub(crate) csum_offset: u16,
}

impl VnetHdr {
    pub(crate) fn to_bytes(self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    pub(crate) fn from_bytes(b: &[u8; VNET_HDR_LEN]) -> VnetHdr {
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        }
    }

    /// Whether the datagram stands for several segments.
    pub(crate) fn is_gso(&self) -> bool {
        self.gso_type & 0x7f != GSO_NONE
    }
}

/// What the device did to a received datagram before we could hand it to the engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RxOffload {
    /// A super-segment (several of the sender's segments in one datagram).
    pub(crate) gso: bool,
    /// Its checksum was partial and [`complete_checksum`] finished it.
    pub(crate) completed: bool,
}

/// Finishes a partial checksum (`VIRTIO_NET_HDR_F_NEEDS_CSUM`): the Internet checksum of
/// `pkt[csum_start..]`, whose checksum field already holds the pseudo-header sum, is
/// written at `csum_start + csum_offset` — what a NIC does on transmit. Returns what was
/// done, or `Err` when the header points outside the datagram (the datagram is then given
/// to the engine unchanged, which counts and drops it if its checksum is wrong).
pub(crate) fn complete_checksum(hdr: &VnetHdr, pkt: &mut [u8]) -> Result<RxOffload, ()> {
    let mut done = RxOffload {
        gso: hdr.is_gso(),
        completed: false,
    };
    if hdr.flags & F_NEEDS_CSUM == 0 {
        return Ok(done);
    }
    let start = hdr.csum_start as usize;
    let field = start + hdr.csum_offset as usize;
    if field + 2 > pkt.len() {
        return Err(());
    }
    let mut c = Checksum::new();
    c.add(&pkt[start..]);
    pkt[field..field + 2].copy_from_slice(&c.finish().to_be_bytes());
    done.completed = true;
    Ok(done)
}

/// The fields of one emitted datagram that decide whether it can join a super-segment.
#[derive(Clone, Copy, Debug)]
struct Seg {
    v6: bool,
    /// IP header length (20 for IPv4 without options, 40 for IPv6 without extensions).
    ip: usize,
    /// IP + TCP header length.
    hdr: usize,
    payload: usize,
    seq: u32,
    flags: u8,
}

impl Seg {
    /// `None` when the datagram cannot be part of a super-segment: not plain TCP over
    /// IPv4 without options or fragments, or IPv6 without extension headers; no payload;
    /// or a flag other than ACK and PSH (SYN, FIN, RST, URG, ECE, CWR end or start nothing).
    fn of(pkt: &[u8]) -> Option<Seg> {
        let (v6, ip, ip_total) = match pkt.first()? >> 4 {
            4 if pkt.len() >= 20 && pkt[0] == 0x45 && pkt[9] == 6 => {
                let frag = u16::from_be_bytes([pkt[6], pkt[7]]);
                if frag & 0x3fff != 0 {
                    return None; // MF set or a fragment offset
                }
                (false, 20, u16::from_be_bytes([pkt[2], pkt[3]]) as usize)
            }
            6 if pkt.len() >= 40 && pkt[6] == 6 => {
                (true, 40, 40 + u16::from_be_bytes([pkt[4], pkt[5]]) as usize)
            }
            _ => return None,
        };
        if ip_total != pkt.len() || pkt.len() < ip + 20 {
            return None;
        }
        let t = &pkt[ip..];
        let tcp_len = (t[12] >> 4) as usize * 4;
        let flags = t[13];
        if tcp_len < 20 || ip + tcp_len > pkt.len() || flags & !(ACK | PSH) != 0 || flags & ACK == 0
        {
            return None;
        }
        let payload = pkt.len() - ip - tcp_len;
        (payload > 0).then(|| Seg {
            v6,
            ip,
            hdr: ip + tcp_len,
            payload,
            seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
            flags,
        })
    }
}

/// Whether `next` continues the run that `first` starts and `prev` (its latest member)
/// ends, `total` payload bytes so far.
fn continues(first: (&[u8], Seg), prev: Seg, next: (&[u8], Seg), total: usize) -> bool {
    let ((a, fa), (b, nb)) = (first, next);
    let same = |r: std::ops::Range<usize>| a[r.clone()] == b[r];
    let ip_same = if fa.v6 {
        // version, traffic class, flow label; next header, hop limit, addresses
        same(0..4) && same(6..40)
    } else {
        // version/IHL, TOS; flags/fragment, TTL, protocol; addresses
        same(0..2) && same(6..10) && same(12..20)
    };
    let t = fa.ip;
    nb.v6 == fa.v6
        && nb.hdr == fa.hdr
        && prev.flags & PSH == 0
        && prev.payload == fa.payload
        && nb.payload <= fa.payload
        && nb.seq == prev.seq.wrapping_add(prev.payload as u32)
        && fa.hdr + total + nb.payload <= MAX_DATAGRAM + if fa.v6 { 40 } else { 0 }
        && ip_same
        // ports; ACK number; data offset; window; urgent pointer; options (timestamps)
        && same(t..t + 4)
        && same(t + 8..t + 13)
        && same(t + 14..t + 16)
        && same(t + 18..fa.hdr)
}

/// One write to the TUN: a datagram as it is, or a super-segment of several.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Write {
    /// `pkts[i]` unchanged (with an empty virtio header).
    One(usize),
    /// `pkts[range]` merged: `hdr` is the virtio header, `head` the merged IP and TCP
    /// header (`head_len` bytes), then each datagram's payload in order.
    Merged {
        range: std::ops::Range<usize>,
        vnet: VnetHdr,
        head: [u8; 120],
        head_len: usize,
    },
}

impl Write {
    /// The pieces this write puts on the TUN after the virtio header, in order: the whole
    /// datagram, or the merged header and then each segment's payload.
    pub(crate) fn pieces<'a>(
        &'a self,
        pkts: &'a [(Vec<u8>, usize)],
    ) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (head, body): (&[u8], &[(Vec<u8>, usize)]) = match self {
            Write::One(i) => (&pkts[*i].0[..pkts[*i].1], &[]),
            Write::Merged {
                range,
                head,
                head_len,
                ..
            } => (&head[..*head_len], &pkts[range.clone()]),
        };
        let skip = head.len();
        std::iter::once(head).chain(body.iter().map(move |(b, l)| &b[skip..*l]))
    }
}

/// Groups datagrams, in order, into the writes that carry them (see the module docs).
pub(crate) struct Coalescer;

impl Coalescer {
    /// The writes for `pkts` (each `buf[..len]`), in order; every datagram is in exactly
    /// one of them. With `merge == false` (a device without offloads) each is its own.
    pub(crate) fn plan(pkts: &[(Vec<u8>, usize)], merge: bool) -> impl Iterator<Item = Write> + '_ {
        let mut i = 0;
        std::iter::from_fn(move || {
            let (buf, len) = pkts.get(i)?;
            let start = i;
            i += 1;
            let first = &buf[..*len];
            let Some(fa) = Seg::of(first).filter(|_| merge) else {
                return Some(Write::One(start));
            };
            let (mut prev, mut total) = (fa, fa.payload);
            while i - start < MAX_SEGS {
                let Some((b, l)) = pkts.get(i) else { break };
                let next = &b[..*l];
                match Seg::of(next) {
                    Some(nb) if continues((first, fa), prev, (next, nb), total) => {
                        total += nb.payload;
                        prev = nb;
                        i += 1;
                    }
                    _ => break,
                }
            }
            if i - start == 1 {
                return Some(Write::One(start));
            }
            Some(merged_header(first, fa, prev.flags, total, start..i))
        })
    }
}

/// The first datagram's header made to cover `total` payload bytes: IP length fields (and
/// the IPv4 header checksum) for the whole, the last segment's PSH, and the TCP checksum
/// left partial (the pseudo-header sum over the whole length) for the kernel to skip, as it
/// does for any `CHECKSUM_PARTIAL` packet delivered locally.
fn merged_header(
    first: &[u8],
    fa: Seg,
    last_flags: u8,
    total: usize,
    range: std::ops::Range<usize>,
) -> Write {
    let mut head = [0u8; 120];
    head[..fa.hdr].copy_from_slice(&first[..fa.hdr]);
    let tcp_len = fa.hdr - fa.ip + total;
    let (src, dst): (IpAddr, IpAddr) = if fa.v6 {
        let s: [u8; 16] = head[8..24].try_into().expect("16 bytes");
        let d: [u8; 16] = head[24..40].try_into().expect("16 bytes");
        head[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
        (s.into(), d.into())
    } else {
        let s: [u8; 4] = head[12..16].try_into().expect("4 bytes");
        let d: [u8; 4] = head[16..20].try_into().expect("4 bytes");
        head[2..4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
        head[10..12].fill(0);
        let mut c = Checksum::new();
        c.add(&head[..20]);
        head[10..12].copy_from_slice(&c.finish().to_be_bytes());
        (s.into(), d.into())
    };
    let t = fa.ip;
    head[t + 13] = (head[t + 13] & !PSH) | (last_flags & PSH);
    let partial = pseudo_header(src, dst, 6, tcp_len as u32).sum();
    head[t + 16..t + 18].copy_from_slice(&partial.to_be_bytes());
    Write::Merged {
        range,
        vnet: VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: if fa.v6 { GSO_TCPV6 } else { GSO_TCPV4 },
            hdr_len: fa.hdr as u16,
            gso_size: fa.payload as u16,
            csum_start: fa.ip as u16,
            csum_offset: TCP_CSUM_OFFSET,
        },
        head,
        head_len: fa.hdr,
    }
}

#[cfg(test)]
#[path = "offload_tests.rs"]
mod tests;
