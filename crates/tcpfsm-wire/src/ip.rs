//! IPv4 (RFC 791) and IPv6 (RFC 8200) headers as zero-copy views, and the
//! whole-datagram entry points [`parse_ip_tcp`] / [`emit_ip_tcp`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::checksum::{self, Checksum, ChecksumOffload, PROTO_TCP};
use crate::tcp::{Layout, TcpPacket, TcpRepr};
use crate::Error;

#[inline]
fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;
/// IPv6 fixed header.
pub const IPV6_HEADER_LEN: usize = 40;
/// The hop limit / TTL we send with: RFC 1700's recommended default, also Linux's.
pub const DEFAULT_TTL: u8 = 64;

/// A view of an IPv4 header + payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    /// Wraps after [`Ipv4Packet::check_len`] (lengths only; the version and
    /// checksum are the caller's to check).
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>, Error> {
        let p = Ipv4Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// 20 bytes present, 20 <= IHL×4 <= total length <= buffer length.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < IPV4_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len();
        if hl < IPV4_HEADER_LEN {
            return Err(Error::BadIpHeaderLen);
        }
        let total = self.total_len() as usize;
        if total > len {
            return Err(Error::BadIpTotalLen);
        }
        if hl > total {
            return Err(Error::BadIpHeaderLen);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// IHL × 4.
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[0] & 0x0f) as usize) * 4
    }

    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    pub fn total_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[2..4])
    }

    pub fn ident(&self) -> u16 {
        be16(&self.buffer.as_ref()[4..6])
    }

    pub fn dont_frag(&self) -> bool {
        self.buffer.as_ref()[6] & 0x40 != 0
    }

    pub fn more_frags(&self) -> bool {
        self.buffer.as_ref()[6] & 0x20 != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (be16(&self.buffer.as_ref()[6..8]) & 0x1fff) << 3
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[8]
    }

    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[9]
    }

    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[10..12])
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[12..16];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[16..20];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Header checksum (RFC 791 §3.1) over IHL×4 bytes verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::verifies(&self.buffer.as_ref()[..self.header_len()])
    }

    /// Bytes from the end of the header to the total length (trailing bytes
    /// such as Ethernet padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len() as usize]
    }
}

impl<'a> Ipv4Packet<&'a [u8]> {
    /// Like [`Ipv4Packet::payload`] but borrowing from the underlying buffer.
    pub fn payload_slice(&self) -> &'a [u8] {
        let buf: &'a [u8] = self.buffer;
        &buf[self.header_len()..self.total_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version 4 and the IHL from a byte length (multiple of 4).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[0] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[1] = v;
    }

    pub fn set_total_len(&mut self, v: u16) {
        self.buffer.as_mut()[2..4].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_ident(&mut self, v: u16) {
        self.buffer.as_mut()[4..6].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets DF/MF and the fragment offset (in bytes, multiple of 8).
    pub fn set_frag(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let v =
            (u16::from(dont_frag) << 14) | (u16::from(more_frags) << 13) | ((offset >> 3) & 0x1fff);
        self.buffer.as_mut()[6..8].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[8] = v;
    }

    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[9] = v;
    }

    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[10..12].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[12..16].copy_from_slice(&a.octets());
    }

    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[16..20].copy_from_slice(&a.octets());
    }

    /// Computes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let sum = checksum::checksum(&self.buffer.as_ref()[..hl]);
        self.set_checksum(sum);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, total) = (self.header_len(), self.total_len() as usize);
        &mut self.buffer.as_mut()[hl..total]
    }
}

/// A view of an IPv6 fixed header + payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Ipv6Packet<T> {
        Ipv6Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Ipv6Packet<T>, Error> {
        let p = Ipv6Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// 40 bytes present and 40 + payload length <= buffer length.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < IPV6_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if IPV6_HEADER_LEN + self.payload_len() as usize > len {
            return Err(Error::BadIpTotalLen);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }

    pub fn flow_label(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([0, b[1] & 0x0f, b[2], b[3]])
    }

    pub fn payload_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[4..6])
    }

    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[6]
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[7]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[8..24]);
        Ipv6Addr::from(a)
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[24..40]);
        Ipv6Addr::from(a)
    }

    /// The payload-length bytes after the fixed header (extension headers
    /// included; trailing bytes excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[IPV6_HEADER_LEN..IPV6_HEADER_LEN + self.payload_len() as usize]
    }
}

impl<'a> Ipv6Packet<&'a [u8]> {
    /// Like [`Ipv6Packet::payload`] but borrowing from the underlying buffer.
    pub fn payload_slice(&self) -> &'a [u8] {
        let buf: &'a [u8] = self.buffer;
        &buf[IPV6_HEADER_LEN..IPV6_HEADER_LEN + self.payload_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets version 6, traffic class and flow label in the first word.
    pub fn set_version_class_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let w = (6u32 << 28) | ((traffic_class as u32) << 20) | (flow_label & 0x000f_ffff);
        self.buffer.as_mut()[0..4].copy_from_slice(&w.to_be_bytes());
    }

    pub fn set_payload_len(&mut self, v: u16) {
        self.buffer.as_mut()[4..6].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[6] = v;
    }

    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[7] = v;
    }

    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[8..24].copy_from_slice(&a.octets());
    }

    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[24..40].copy_from_slice(&a.octets());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let n = self.payload_len() as usize;
        &mut self.buffer.as_mut()[IPV6_HEADER_LEN..IPV6_HEADER_LEN + n]
    }
}

/// IPv6 extension header numbers we step over or refuse (IANA; RFC 8200 §4).
mod ext {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const DEST_OPTS: u8 = 60;
}

/// A parsed datagram: addresses + the TCP segment, borrowing the payload from the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpTcp<'a> {
    pub src: IpAddr,
    /// The destination the TCP checksum covers: the final destination
    /// (RFC 8200 §8.1) when an IPv6 routing header still has segments left.
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    pub tcp: TcpRepr<'a>,
}

/// An empty datagram to parse into ([`parse_ip_tcp_deferred_into`]): unspecified IPv4
/// addresses, TTL 0, an all-zero segment with no options and no payload.
impl Default for IpTcp<'_> {
    fn default() -> Self {
        IpTcp {
            src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ttl: 0,
            tcp: TcpRepr::default(),
        }
    }
}

/// Parse one IPv4 or IPv6 datagram carrying TCP; verifies the IPv4 header
/// checksum and the TCP checksum (pseudo-header: RFC 9293 §3.1 for IPv4,
/// RFC 8200 §8.1 for IPv6). Trailing bytes after the IP total length (e.g.
/// Ethernet padding) are ignored. Unknown TCP options are skipped (RFC 9293
/// §3.1 MUST-6/7). Never allocates.
pub fn parse_ip_tcp(datagram: &[u8]) -> Result<IpTcp<'_>, Error> {
    parse_ip_tcp_with(datagram, ChecksumOffload::NONE)
}

/// [`parse_ip_tcp`], skipping the TCP checksum when `offload.rx` says the device verified it.
pub fn parse_ip_tcp_with(datagram: &[u8], offload: ChecksumOffload) -> Result<IpTcp<'_>, Error> {
    let mut p = IpTcp::default();
    parse_any(&mut p, datagram, offload, false)?;
    Ok(p)
}

/// [`parse_ip_tcp_with`], leaving the payload's share of the TCP checksum to the caller, who
/// can then sum the payload while copying it where it goes ([`Checksum::copy_from`]) instead
/// of reading it twice. The returned sum covers the pseudo-header and the TCP header; add the
/// payload (`ip.tcp.payload`, which starts at an even offset) and accept the segment only if
/// [`Checksum::sum`] is then `0xffff`. `None` when `offload.rx` says there is nothing to check.
/// Everything else (IP header checksum, lengths, options) is checked as by `parse_ip_tcp`.
#[inline]
pub fn parse_ip_tcp_deferred(
    datagram: &[u8],
    offload: ChecksumOffload,
) -> Result<(IpTcp<'_>, Option<Checksum>), Error> {
    let mut p = IpTcp::default();
    let sum = parse_ip_tcp_deferred_into(&mut p, datagram, offload)?;
    Ok((p, sum))
}

/// [`parse_ip_tcp_deferred`] into `out` (e.g. an [`IpTcp::default`] the caller keeps): the
/// decoded datagram is written where the caller reads it, never built in a temporary and
/// moved out through the result (twice, about 60 instructions a datagram). Returns the
/// deferred sum. On error `out` holds some valid but meaningless datagram.
///
/// Always inlined, as are the layers below it, so that the writes land in the caller's
/// place directly.
#[inline(always)]
pub fn parse_ip_tcp_deferred_into<'a>(
    out: &mut IpTcp<'a>,
    datagram: &'a [u8],
    offload: ChecksumOffload,
) -> Result<Option<Checksum>, Error> {
    parse_any(out, datagram, offload, true)
}

/// The datagram into `out`; the deferred sum when `defer` (see `parse_tcp`).
#[inline(always)]
fn parse_any<'a>(
    out: &mut IpTcp<'a>,
    datagram: &'a [u8],
    offload: ChecksumOffload,
    defer: bool,
) -> Result<Option<Checksum>, Error> {
    let first = *datagram.first().ok_or(Error::Truncated)?;
    match first >> 4 {
        4 => parse_v4(out, datagram, offload, defer),
        6 => parse_v6(out, datagram, offload, defer),
        v => Err(Error::BadIpVersion(v)),
    }
}

/// The TCP segment `bytes` into `out`, verified whole, or (`defer`) with the sum over
/// everything but the payload returned.
#[inline(always)]
fn parse_tcp<'a>(
    out: &mut TcpRepr<'a>,
    bytes: &'a [u8],
    src: IpAddr,
    dst: IpAddr,
    offload: ChecksumOffload,
    defer: bool,
) -> Result<Option<Checksum>, Error> {
    // `parse_into` checks the lengths first; `new_checked` would test them twice.
    let packet = TcpPacket::new_unchecked(bytes);
    if !defer || offload.rx {
        TcpRepr::parse_into(out, &packet, src, dst, offload)?;
        return Ok(None);
    }
    let skip = ChecksumOffload {
        rx: true,
        ..offload
    };
    if let Err(e) = TcpRepr::parse_into(out, &packet, src, dst, skip) {
        // The same error `parse_ip_tcp` would give: a bad checksum is reported first.
        if packet.check_len().is_ok() && !packet.verify_checksum(src, dst) {
            return Err(Error::BadTcpChecksum);
        }
        return Err(e);
    }
    let mut c = checksum::pseudo_header_inline(src, dst, PROTO_TCP, bytes.len() as u32);
    c.add_tcp_header(&bytes[..bytes.len() - out.payload.len()]);
    Ok(Some(c))
}

#[inline(always)]
fn parse_v4<'a>(
    out: &mut IpTcp<'a>,
    datagram: &'a [u8],
    offload: ChecksumOffload,
    defer: bool,
) -> Result<Option<Checksum>, Error> {
    let ip = Ipv4Packet::new_checked(datagram)?;
    if !ip.verify_checksum() {
        return Err(Error::BadIpChecksum);
    }
    // A non-first fragment has no TCP header and a first fragment only part
    // of the segment; we do not reassemble, so refuse both.
    if ip.more_frags() || ip.frag_offset() != 0 {
        return Err(Error::Fragmented);
    }
    if ip.protocol() != PROTO_TCP {
        return Err(Error::NotTcp(ip.protocol()));
    }
    // Each written as itself: `out.src = src` copied all 17 bytes of the enum through a
    // temporary.
    out.src = IpAddr::V4(ip.src_addr());
    out.dst = IpAddr::V4(ip.dst_addr());
    out.ttl = ip.ttl();
    // `check_len` vouched for the IHL and the total length (a call to `payload_slice`
    // read and checked both again).
    let segment = &datagram[ip.header_len()..ip.total_len() as usize];
    let (src, dst) = (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()));
    parse_tcp(&mut out.tcp, segment, src, dst, offload, defer)
}

fn parse_v6<'a>(
    out: &mut IpTcp<'a>,
    datagram: &'a [u8],
    offload: ChecksumOffload,
    defer: bool,
) -> Result<Option<Checksum>, Error> {
    let ip = Ipv6Packet::new_checked(datagram)?;
    let payload = ip.payload_slice();
    let mut dst = ip.dst_addr();
    let mut next = ip.next_header();
    let mut off = 0usize;
    // Walk the extension header chain (RFC 8200 §4). Each header is at least
    // 8 bytes, so the loop ends within payload_len / 8 steps.
    while next != PROTO_TCP {
        match next {
            ext::HOP_BY_HOP | ext::ROUTING | ext::DEST_OPTS => {
                let hdr = payload.get(off..off + 2).ok_or(Error::Truncated)?;
                // Hdr Ext Len counts 8-octet units beyond the first 8.
                let len = (hdr[1] as usize + 1) * 8;
                let hdr = payload.get(off..off + len).ok_or(Error::Truncated)?;
                if next == ext::ROUTING {
                    if let Some(final_dst) = routing_final_destination(hdr) {
                        dst = final_dst;
                    }
                }
                next = hdr[0];
                off += len;
            }
            ext::FRAGMENT => return Err(Error::Fragmented),
            other => return Err(Error::NotTcp(other)),
        }
    }
    let src = IpAddr::V6(ip.src_addr());
    let dst = IpAddr::V6(dst);
    out.src = src;
    out.dst = dst;
    out.ttl = ip.hop_limit();
    parse_tcp(&mut out.tcp, &payload[off..], src, dst, offload, defer)
}

/// RFC 8200 §8.1: with a routing header, the pseudo-header carries the final
/// destination. While Segments Left > 0 that address is in the routing header:
/// the last entry for the (deprecated) type 0, Segment List[0] for a Segment
/// Routing Header (type 4, RFC 8754 §2). For other types, or when no segments
/// are left, the IPv6 destination field is already the final destination.
fn routing_final_destination(hdr: &[u8]) -> Option<Ipv6Addr> {
    let (rtype, segments_left) = (hdr[2], hdr[3]);
    if segments_left == 0 {
        return None;
    }
    let addrs = &hdr[8..];
    let n = addrs.len() / 16;
    if n == 0 {
        return None;
    }
    let idx = match rtype {
        0 => n - 1,
        4 => 0,
        _ => return None,
    };
    let mut a = [0u8; 16];
    a.copy_from_slice(&addrs[idx * 16..idx * 16 + 16]);
    Some(Ipv6Addr::from(a))
}

/// The IP header length [`emit_ip_tcp`] uses for this family (20 or 40).
pub fn ip_header_len(addr: IpAddr) -> usize {
    match addr {
        IpAddr::V4(_) => IPV4_HEADER_LEN,
        IpAddr::V6(_) => IPV6_HEADER_LEN,
    }
}

/// Emit a whole datagram: IPv4 (20-byte header, TTL 64, DF set, id 0, header
/// checksum) or IPv6 (hop limit 64), then the TCP segment with checksum.
/// Clears `buf` then writes (it only resizes the Vec); returns the length.
/// On error `buf` is left empty.
pub fn emit_ip_tcp(
    src: IpAddr,
    dst: IpAddr,
    tcp: &TcpRepr<'_>,
    buf: &mut Vec<u8>,
) -> Result<usize, Error> {
    buf.clear();
    let total = datagram_len(src, dst, tcp)?;
    buf.resize(total, 0);
    match emit_ip_tcp_into(src, dst, tcp, buf) {
        Ok(n) => Ok(n),
        Err(e) => {
            buf.clear();
            Err(e)
        }
    }
}

/// Length of the datagram [`emit_ip_tcp`] would produce, or why it cannot.
pub fn datagram_len(src: IpAddr, dst: IpAddr, tcp: &TcpRepr<'_>) -> Result<usize, Error> {
    sized(src, dst, tcp, 0).map(|(total, _)| total)
}

/// [`datagram_len`] and the options' layout, which the writer reuses rather than computing
/// the options' length again for the TCP header and the options area.
/// `tail` bytes of payload follow `tcp.payload` ([`emit_ip_tcp_split`]).
fn sized(
    src: IpAddr,
    dst: IpAddr,
    tcp: &TcpRepr<'_>,
    tail: usize,
) -> Result<(usize, Layout), Error> {
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(Error::AddressFamilyMismatch);
    }
    let layout = tcp.options.layout();
    if layout.len > crate::tcp::MAX_OPTIONS_LEN {
        return Err(Error::OptionsTooLong);
    }
    let hl = ip_header_len(src);
    let seg = crate::tcp::HEADER_LEN + layout.len + tcp.payload.len() + tail;
    // IPv4 total length and IPv6 payload length are both 16-bit fields
    // (we never emit IPv6 jumbograms).
    let limit = match src {
        IpAddr::V4(_) => u16::MAX as usize - hl,
        IpAddr::V6(_) => u16::MAX as usize,
    };
    if seg > limit {
        return Err(Error::DatagramTooLong);
    }
    Ok((hl + seg, layout))
}

/// Writes the datagram at the start of `buf`, growing it only when it is too short (a
/// reused transmit buffer is neither cleared nor re-zeroed: the caller reads `buf[..n]`).
/// Returns `n`. The same bytes as [`emit_ip_tcp_into_with`], sized once.
pub fn emit_ip_tcp_reusing(
    src: IpAddr,
    dst: IpAddr,
    tcp: &TcpRepr<'_>,
    buf: &mut Vec<u8>,
    offload: ChecksumOffload,
) -> Result<usize, Error> {
    emit_ip_tcp_split(src, dst, tcp, &[], buf, offload)
}

/// [`emit_ip_tcp_reusing`] for a payload in two pieces, `tcp.payload` then `tail` — a
/// segment that straddles the wrap point of a ring buffer. Both are copied (and summed)
/// straight into the frame: joining them in a scratch buffer first would read every byte of
/// such a segment twice, and with a segment nearly as large as its ring (MTU 65535 and a
/// 64 KiB send buffer) nearly every segment straddles. The same datagram as
/// [`emit_ip_tcp_reusing`] with the two pieces joined.
pub fn emit_ip_tcp_split(
    src: IpAddr,
    dst: IpAddr,
    tcp: &TcpRepr<'_>,
    tail: &[u8],
    buf: &mut Vec<u8>,
    offload: ChecksumOffload,
) -> Result<usize, Error> {
    emit_ip_tcp_split_ref(&src, &dst, tcp, tail, buf, offload)
}

/// [`emit_ip_tcp_split`] with the addresses by reference. A 17-byte `IpAddr` goes by value
/// as a copy on the caller's stack; a caller that keeps the addresses anyway (a TCP
/// endpoint returns them beside the datagram) lends them instead (lifecycle −93 instructions
/// per connection of about ten segments).
pub fn emit_ip_tcp_split_ref(
    src: &IpAddr,
    dst: &IpAddr,
    tcp: &TcpRepr<'_>,
    tail: &[u8],
    buf: &mut Vec<u8>,
    offload: ChecksumOffload,
) -> Result<usize, Error> {
    let (src, dst) = (*src, *dst);
    let (total, layout) = sized(src, dst, tcp, tail.len())?;
    if buf.len() < total {
        buf.resize(total, 0);
    }
    write_datagram(src, dst, tcp, tail, &mut buf[..total], offload, layout)?;
    Ok(total)
}

/// Like [`emit_ip_tcp`] but into a caller-provided slice (e.g. a TUN or
/// socket buffer): writes `buf[..n]` and returns `n`.
pub fn emit_ip_tcp_into(
    src: IpAddr,
    dst: IpAddr,
    tcp: &TcpRepr<'_>,
    buf: &mut [u8],
) -> Result<usize, Error> {
    emit_ip_tcp_into_with(src, dst, tcp, buf, ChecksumOffload::NONE)
}

/// [`emit_ip_tcp_into`], leaving the TCP checksum field zero when `offload.tx` says the
/// device fills it.
pub fn emit_ip_tcp_into_with(
    src: IpAddr,
    dst: IpAddr,
    tcp: &TcpRepr<'_>,
    buf: &mut [u8],
    offload: ChecksumOffload,
) -> Result<usize, Error> {
    let (total, layout) = sized(src, dst, tcp, 0)?;
    if buf.len() < total {
        return Err(Error::BufferTooSmall);
    }
    write_datagram(src, dst, tcp, &[], &mut buf[..total], offload, layout)?;
    Ok(total)
}

/// The IP header and the TCP segment into `buf`, exactly the datagram's length as `sized`
/// found it with `layout`.
fn write_datagram(
    src: IpAddr,
    dst: IpAddr,
    tcp: &TcpRepr<'_>,
    tail: &[u8],
    buf: &mut [u8],
    offload: ChecksumOffload,
    layout: Layout,
) -> Result<(), Error> {
    let total = buf.len();
    let hl = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            // The header as ten 16-bit words (RFC 791 §3.1), summed as values rather than
            // read back after writing (see `Checksum::add_words`).
            let (s, d) = (u32::from(s), u32::from(d));
            let mut words = [
                0x4500, // version 4, IHL 5 (IPV4_HEADER_LEN = 20 bytes), DSCP/ECN 0
                total as u16,
                0, // identification
                // DF: we do path-MTU discovery by MSS, never fragment (RFC 9293 §3.7.2).
                0x4000,
                (DEFAULT_TTL as u16) << 8 | PROTO_TCP as u16,
                0, // header checksum, filled below
                (s >> 16) as u16,
                s as u16,
                (d >> 16) as u16,
                d as u16,
            ];
            let mut c = Checksum::new();
            c.add_words(&words);
            words[5] = c.finish();
            for (b, w) in buf[..IPV4_HEADER_LEN].chunks_exact_mut(2).zip(words) {
                b.copy_from_slice(&w.to_be_bytes());
            }
            IPV4_HEADER_LEN
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut ip = Ipv6Packet::new_unchecked(&mut buf[..]);
            ip.set_version_class_flow(0, 0);
            ip.set_payload_len((total - IPV6_HEADER_LEN) as u16);
            ip.set_next_header(PROTO_TCP);
            ip.set_hop_limit(DEFAULT_TTL);
            ip.set_src_addr(s);
            ip.set_dst_addr(d);
            IPV6_HEADER_LEN
        }
        _ => return Err(Error::AddressFamilyMismatch),
    };
    tcp.emit_laid_out(&mut buf[hl..], src, dst, offload, layout, tail)?;
    Ok(())
}
