//! TCP header (RFC 9293 §3.1): a zero-copy view [`TcpPacket`], the option
//! iterator [`TcpOptionIter`], and the owned [`TcpRepr`] used to parse and emit.

use std::net::IpAddr;

use crate::checksum::{self, ChecksumOffload, PROTO_TCP};
use crate::{Error, Flags, SeqNum};

mod options;
pub(crate) use options::Layout;
pub use options::{SackBlock, TcpOption, TcpOptionIter, TcpOptions, Timestamps};

/// Byte offsets of the fixed TCP header fields (RFC 9293 §3.1, Figure 1).
mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// Length of the TCP header without options.
pub const HEADER_LEN: usize = 20;
/// The data offset is 4 bits of 32-bit words: at most 60 bytes of header,
/// hence at most 40 bytes of options.
pub const MAX_OPTIONS_LEN: usize = 40;

/// Option kinds we understand (IANA "TCP Option Kind Numbers").
pub mod kind {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
}

#[inline]
fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

#[inline]
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// A read/write view of a TCP header plus payload in a byte buffer.
///
/// Accessors index the buffer directly; call [`TcpPacket::new_checked`] (or
/// [`TcpPacket::check_len`]) first so that they cannot run out of bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without checking it; field accessors may panic on a
    /// short buffer. Prefer [`TcpPacket::new_checked`].
    pub const fn new_unchecked(buffer: T) -> TcpPacket<T> {
        TcpPacket { buffer }
    }

    /// Wraps a buffer after [`TcpPacket::check_len`].
    pub fn new_checked(buffer: T) -> Result<TcpPacket<T>, Error> {
        let p = TcpPacket::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The buffer holds a fixed header and the data offset lies within
    /// `[20, len]` (RFC 9293 §3.1: the offset counts 32-bit words, at least 5).
    pub fn check_len(&self) -> Result<(), Error> {
        self.checked_header_len().map(|_| ())
    }

    /// [`TcpPacket::check_len`]'s tests, giving the header length they vouched for: slicing
    /// with it then needs no bounds check of its own.
    #[inline(always)]
    fn checked_header_len(&self) -> Result<usize, Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN || hl > len {
            return Err(Error::BadDataOffset);
        }
        Ok(hl)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SRC_PORT])
    }

    pub fn dst_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::DST_PORT])
    }

    pub fn seq_number(&self) -> SeqNum {
        SeqNum(be32(&self.buffer.as_ref()[field::SEQ]))
    }

    pub fn ack_number(&self) -> SeqNum {
        SeqNum(be32(&self.buffer.as_ref()[field::ACK]))
    }

    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::DATA_OFF] >> 4) as usize) * 4
    }

    pub fn flags(&self) -> Flags {
        Flags(self.buffer.as_ref()[field::FLAGS])
    }

    pub fn window_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::WINDOW])
    }

    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    pub fn urgent_at(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::URGENT])
    }

    /// The raw options area (between the fixed header and the data offset).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// Iterates the options area; see [`TcpOptionIter`].
    pub fn options_iter(&self) -> TcpOptionIter<'_> {
        TcpOptionIter::new(self.options())
    }

    /// Everything after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Whether the checksum over pseudo-header + the whole buffer verifies.
    /// The buffer must be exactly the segment (no trailing bytes).
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let data = self.buffer.as_ref();
        let mut c = checksum::pseudo_header(src, dst, PROTO_TCP, data.len() as u32);
        c.add(data);
        c.sum() == 0xffff
    }
}

impl<'a> TcpPacket<&'a [u8]> {
    /// Like [`TcpPacket::payload`] but borrowing from the underlying buffer
    /// rather than from the view, so the payload can outlive the view.
    pub fn payload_slice(&self) -> &'a [u8] {
        let buf: &'a [u8] = self.buffer;
        &buf[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        self.buffer.as_mut()[field::SRC_PORT].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_dst_port(&mut self, v: u16) {
        self.buffer.as_mut()[field::DST_PORT].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_seq_number(&mut self, v: SeqNum) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&v.0.to_be_bytes());
    }

    pub fn set_ack_number(&mut self, v: SeqNum) {
        self.buffer.as_mut()[field::ACK].copy_from_slice(&v.0.to_be_bytes());
    }

    /// Sets the data offset from a byte length (a multiple of 4, 20..=60;
    /// other values are truncated to the 4-bit field rather than panicking).
    /// The reserved bits are cleared: RFC 9293 §3.1 says they MUST be zero
    /// when sent.
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::DATA_OFF] = (((len / 4) & 0x0f) as u8) << 4;
    }

    pub fn set_flags(&mut self, f: Flags) {
        self.buffer.as_mut()[field::FLAGS] = f.bits();
    }

    pub fn set_window_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::WINDOW].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_urgent_at(&mut self, v: u16) {
        self.buffer.as_mut()[field::URGENT].copy_from_slice(&v.to_be_bytes());
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..hl]
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }

    /// Computes and stores the checksum over pseudo-header + whole buffer.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let mut c = checksum::pseudo_header(src, dst, PROTO_TCP, data.len() as u32);
        c.add(data);
        self.set_checksum(c.finish());
    }
}

/// A TCP segment decoded into owned fields, borrowing only its payload.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TcpRepr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: SeqNum,
    /// As found on the wire; meaningful only when `flags` has ACK.
    pub ack: SeqNum,
    pub flags: Flags,
    pub window: u16,
    pub urgent: u16,
    pub options: TcpOptions,
    pub payload: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// Decodes a segment, verifying its checksum against the pseudo-header of
    /// (`src`, `dst`). The view must cover exactly the segment.
    pub fn parse(
        packet: &TcpPacket<&'a [u8]>,
        src: IpAddr,
        dst: IpAddr,
    ) -> Result<TcpRepr<'a>, Error> {
        TcpRepr::parse_with(packet, src, dst, ChecksumOffload::NONE)
    }

    /// [`TcpRepr::parse`], not verifying the checksum when `offload.rx` is set.
    #[inline(always)]
    pub fn parse_with(
        packet: &TcpPacket<&'a [u8]>,
        src: IpAddr,
        dst: IpAddr,
        offload: ChecksumOffload,
    ) -> Result<TcpRepr<'a>, Error> {
        let mut r = TcpRepr::default();
        TcpRepr::parse_into(&mut r, packet, src, dst, offload)?;
        Ok(r)
    }

    /// [`TcpRepr::parse_with`] into `out`, for a caller that keeps the decoded segment in a
    /// place of its own: it is written there field by field instead of being built in a
    /// temporary and moved out through each layer (returned through a call, or through a
    /// `Result`, a segment and its options were moved once per layer, about 25
    /// instructions each). On error `out` holds some valid but meaningless segment.
    #[inline(always)]
    pub fn parse_into(
        out: &mut TcpRepr<'a>,
        packet: &TcpPacket<&'a [u8]>,
        src: IpAddr,
        dst: IpAddr,
        offload: ChecksumOffload,
    ) -> Result<(), Error> {
        let hl = packet.checked_header_len()?;
        if src.is_ipv4() != dst.is_ipv4() {
            return Err(Error::AddressFamilyMismatch);
        }
        if !offload.rx && !packet.verify_checksum(src, dst) {
            return Err(Error::BadTcpChecksum);
        }
        // The options and the payload sliced with the length just checked: through the
        // accessors (calls, each reading the data offset and checking bounds again) they
        // cost about 25 instructions a segment.
        let bytes: &'a [u8] = packet.buffer;
        out.src_port = packet.src_port();
        out.dst_port = packet.dst_port();
        out.seq = packet.seq_number();
        out.ack = packet.ack_number();
        out.flags = packet.flags();
        out.window = packet.window_len();
        out.urgent = packet.urgent_at();
        out.payload = &bytes[hl..];
        TcpOptions::parse_into(&bytes[HEADER_LEN..hl], &mut out.options)
    }

    /// 20 + the encoded options.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.encoded_len()
    }

    /// SEG.LEN (RFC 9293 §3.3.1): payload octets plus one each for SYN and FIN.
    pub fn segment_len(&self) -> u32 {
        self.payload.len() as u32
            + self.flags.contains(Flags::SYN) as u32
            + self.flags.contains(Flags::FIN) as u32
    }

    /// Header plus payload.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Writes header, options and payload to `buf[..buffer_len()]` and fills
    /// the checksum over the pseudo-header of (`src`, `dst`).
    pub fn emit(&self, buf: &mut [u8], src: IpAddr, dst: IpAddr) -> Result<usize, Error> {
        self.emit_with(buf, src, dst, ChecksumOffload::NONE)
    }

    /// [`TcpRepr::emit`], leaving the checksum field zero when `offload.tx` is set.
    ///
    /// The payload is copied and summed in one pass ([`checksum::Checksum::copy_from`]):
    /// building a frame reads the application's bytes once.
    pub fn emit_with(
        &self,
        buf: &mut [u8],
        src: IpAddr,
        dst: IpAddr,
        offload: ChecksumOffload,
    ) -> Result<usize, Error> {
        if src.is_ipv4() != dst.is_ipv4() {
            return Err(Error::AddressFamilyMismatch);
        }
        let layout = self.options.layout();
        if layout.len > MAX_OPTIONS_LEN {
            return Err(Error::OptionsTooLong);
        }
        // The IPv4 pseudo-header carries a 16-bit length; IPv6 a 32-bit one
        // (but without jumbograms the payload length field is 16 bits too).
        if HEADER_LEN + layout.len + self.payload.len() > u16::MAX as usize {
            return Err(Error::DatagramTooLong);
        }
        self.emit_laid_out(buf, src, dst, offload, layout, &[])
    }

    /// [`TcpRepr::emit_with`] with `layout` = `self.options.layout()` already
    /// known (the datagram writer sized the datagram with it), and the segment already
    /// checked by the caller: the address families agree, the options fit, the segment's
    /// length fits 16 bits. (Checked a second time here, they cost about 10 instructions a
    /// datagram.)
    ///
    /// The segment's payload is `self.payload` followed by `tail` (the two halves of a ring
    /// buffer the data wraps around in; empty for a contiguous payload): both are copied and
    /// summed straight into the frame, never joined in a scratch buffer first.
    pub(crate) fn emit_laid_out(
        &self,
        buf: &mut [u8],
        src: IpAddr,
        dst: IpAddr,
        offload: ChecksumOffload,
        layout: Layout,
        tail: &[u8],
    ) -> Result<usize, Error> {
        let opt_len = layout.len;
        let len = HEADER_LEN + opt_len + self.payload.len() + tail.len();
        debug_assert!(src.is_ipv4() == dst.is_ipv4() && opt_len <= MAX_OPTIONS_LEN);
        debug_assert!(len <= u16::MAX as usize);
        if buf.len() < len {
            return Err(Error::BufferTooSmall);
        }
        let hl = HEADER_LEN + opt_len;
        let (header, payload) = buf[..len].split_at_mut(hl);
        let (fixed, options) = header.split_at_mut(HEADER_LEN);
        // The fixed header as ten 16-bit words (RFC 9293 §3.1, Figure 1), summed as values
        // rather than read back after writing (see `Checksum::add_words`). The data offset
        // byte's low bits (reserved) are zero, as they MUST be when sent.
        let (seq, ack) = (self.seq.0, self.ack.0);
        let mut words = [
            self.src_port,
            self.dst_port,
            (seq >> 16) as u16,
            seq as u16,
            (ack >> 16) as u16,
            ack as u16,
            ((hl / 4) as u16) << 12 | self.flags.bits() as u16,
            self.window,
            0, // checksum, filled below
            self.urgent,
        ];
        self.options.emit_laid_out(options, layout)?;
        let (head, rest) = payload.split_at_mut(self.payload.len());
        if offload.tx {
            head.copy_from_slice(self.payload);
            // Nearly always empty (see above): an empty copy still called memcpy.
            if !tail.is_empty() {
                rest.copy_from_slice(tail);
            }
        } else {
            let mut c = checksum::pseudo_header(src, dst, PROTO_TCP, len as u32);
            c.add_words(&words);
            c.add(options);
            c.copy_from(head, self.payload);
            c.copy_from(rest, tail);
            words[8] = c.finish();
        }
        for (b, w) in fixed.chunks_exact_mut(2).zip(words) {
            b.copy_from_slice(&w.to_be_bytes());
        }
        Ok(len)
    }
}

/// tcpdump-like one-line summary, e.g.
/// `40000 > 80 SYN seq=1000 win=65535 len=0 <mss 1460,sackOK,TS 1/0,ws 7>`.
/// `ack=` is shown only when the ACK bit is set (RFC 9293 §3.1: the field is
/// meaningful only then).
impl core::fmt::Display for TcpRepr<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} > {} {} seq={}",
            self.src_port, self.dst_port, self.flags, self.seq
        )?;
        if self.flags.contains(Flags::ACK) {
            write!(f, " ack={}", self.ack)?;
        }
        write!(f, " win={} len={}", self.window, self.payload.len())?;
        if self.flags.contains(Flags::URG) {
            write!(f, " urg={}", self.urgent)?;
        }
        let o = &self.options;
        if *o != TcpOptions::default() {
            let mut sep = " <";
            if let Some(m) = o.mss {
                write!(f, "{sep}mss {m}")?;
                sep = ",";
            }
            if o.sack_permitted {
                write!(f, "{sep}sackOK")?;
                sep = ",";
            }
            if let Some(ts) = o.timestamps {
                write!(f, "{sep}TS {}/{}", ts.tsval, ts.tsecr)?;
                sep = ",";
            }
            if let Some(ws) = o.window_scale {
                write!(f, "{sep}ws {ws}")?;
                sep = ",";
            }
            for b in o.sack_blocks() {
                write!(f, "{sep}sack {}-{}", b.left, b.right)?;
                sep = ",";
            }
            f.write_str(">")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn display_summarises_like_tcpdump() {
        let r = TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq: SeqNum(1000),
            ack: SeqNum(77),
            flags: Flags::SYN,
            window: 65535,
            options: TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamps: Some(Timestamps { tsval: 1, tsecr: 0 }),
                ..TcpOptions::default()
            },
            ..TcpRepr::default()
        };
        assert_eq!(
            r.to_string(),
            "40000 > 80 SYN seq=1000 win=65535 len=0 <mss 1460,sackOK,TS 1/0,ws 7>"
        );
        let a = TcpRepr {
            flags: Flags::ACK | Flags::FIN,
            payload: b"xy",
            ..r.clone()
        };
        let a = TcpRepr {
            options: TcpOptions::default(),
            ..a
        };
        assert_eq!(
            a.to_string(),
            "40000 > 80 FIN,ACK seq=1000 ack=77 win=65535 len=2"
        );
    }

    #[test]
    fn view_setters_and_getters_agree() {
        let mut buf = [0u8; 24];
        let mut p = TcpPacket::new_unchecked(&mut buf[..]);
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_seq_number(SeqNum(3));
        p.set_ack_number(SeqNum(4));
        p.set_header_len(20);
        p.set_flags(Flags::SYN | Flags::ECE | Flags::CWR);
        p.set_window_len(5);
        p.set_urgent_at(6);
        p.payload_mut().copy_from_slice(b"abcd");
        let (s, d) = (
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::BROADCAST),
        );
        p.fill_checksum(s, d);
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (1, 2));
        assert_eq!((p.seq_number(), p.ack_number()), (SeqNum(3), SeqNum(4)));
        assert_eq!(p.flags(), Flags::SYN | Flags::ECE | Flags::CWR);
        assert_eq!((p.window_len(), p.urgent_at(), p.header_len()), (5, 6, 20));
        assert_eq!(p.options(), &[] as &[u8]);
        assert_eq!(p.payload(), b"abcd");
        assert!(p.verify_checksum(s, d));
        // (Swapping src and dst would still verify: the sum is commutative.)
        assert!(!p.verify_checksum(s, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))));
    }

    #[test]
    fn set_header_len_clears_reserved_bits() {
        let mut buf = [0xffu8; 20];
        TcpPacket::new_unchecked(&mut buf[..]).set_header_len(20);
        assert_eq!(buf[12], 0x50);
    }

    #[test]
    fn new_checked_rejects_short_and_bad_offsets() {
        assert_eq!(
            TcpPacket::new_checked(&[0u8; 19][..]),
            Err(Error::Truncated)
        );
        let mut b = [0u8; 20];
        b[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&b[..]).unwrap_err(),
            Error::BadDataOffset
        );
        b[12] = 0x60;
        assert_eq!(
            TcpPacket::new_checked(&b[..]).unwrap_err(),
            Error::BadDataOffset
        );
    }

    #[test]
    fn aligned_layout_puts_32_bit_fields_on_word_boundaries() {
        // Timestamps alone: NOP NOP TS, as Linux sends on data segments.
        let o = TcpOptions {
            timestamps: Some(Timestamps { tsval: 1, tsecr: 2 }),
            ..TcpOptions::default()
        };
        let mut buf = [0u8; 40];
        assert_eq!(o.emit(&mut buf), Ok(12));
        assert_eq!(&buf[..4], &[1, 1, 8, 10]);
        // SACK blocks: NOP NOP SACK.
        let o = TcpOptions {
            sack_blocks: [
                Some(SackBlock {
                    left: SeqNum(1),
                    right: SeqNum(2),
                }),
                None,
                None,
                None,
            ],
            ..TcpOptions::default()
        };
        assert_eq!(o.emit(&mut buf), Ok(12));
        assert_eq!(&buf[..4], &[1, 1, 5, 10]);
    }

    #[test]
    fn timestamps_with_three_sack_blocks_fill_exactly_40_bytes() {
        let b = Some(SackBlock {
            left: SeqNum(1),
            right: SeqNum(2),
        });
        let o = TcpOptions {
            timestamps: Some(Timestamps { tsval: 1, tsecr: 2 }),
            sack_blocks: [b, b, b, None],
            ..TcpOptions::default()
        };
        assert_eq!(o.encoded_len(), 40);
    }

    #[test]
    fn packed_layout_is_used_when_aligned_does_not_fit() {
        // TS(10) + WS(3) + 3 SACK blocks(26) = 39 raw bytes: only fits packed.
        let b = Some(SackBlock {
            left: SeqNum(1),
            right: SeqNum(2),
        });
        let o = TcpOptions {
            window_scale: Some(14),
            timestamps: Some(Timestamps { tsval: 1, tsecr: 2 }),
            sack_blocks: [b, b, b, None],
            ..TcpOptions::default()
        };
        assert_eq!(o.encoded_len(), 40);
        let mut buf = [0u8; 40];
        assert_eq!(o.emit(&mut buf), Ok(40));
        // No NOPs: TS at 0, WS at 10, SACK at 13, one byte of EOL padding.
        assert_eq!(buf[0], kind::TIMESTAMPS);
        assert_eq!(&buf[10..13], &[kind::WINDOW_SCALE, 3, 14]);
        assert_eq!(&buf[13..15], &[kind::SACK, 26]);
        assert_eq!(buf[39], kind::END);
        assert_eq!(TcpOptions::parse(&buf), Ok(o));
    }

    #[test]
    fn sack_blocks_with_gaps_are_emitted_compacted() {
        let b = |l| {
            Some(SackBlock {
                left: SeqNum(l),
                right: SeqNum(l + 1),
            })
        };
        let o = TcpOptions {
            sack_blocks: [None, b(5), None, b(9)],
            ..TcpOptions::default()
        };
        let mut buf = [0u8; 40];
        let n = o.emit(&mut buf).unwrap();
        let back = TcpOptions::parse(&buf[..n]).unwrap();
        assert_eq!(back.sack_blocks, [b(5), b(9), None, None]);
    }

    #[test]
    fn option_emit_rejects_short_buffer() {
        let mut buf = [0u8; 3];
        assert_eq!(TcpOption::Mss(1).emit(&mut buf), Err(Error::BufferTooSmall));
    }

    #[test]
    fn segment_len_counts_syn_and_fin() {
        let mut r = TcpRepr {
            payload: b"abc",
            ..TcpRepr::default()
        };
        assert_eq!(r.segment_len(), 3);
        r.flags = Flags::SYN | Flags::FIN;
        assert_eq!(r.segment_len(), 5);
        r.flags = Flags::ACK | Flags::RST;
        assert_eq!(r.segment_len(), 3);
    }
}
