//! TCP options (RFC 9293 §3.1, §3.2): the option iterator [`TcpOptionIter`], the decoded
//! [`TcpOptions`] a segment carries, and their canonical encoding.

use super::{be16, be32, kind, MAX_OPTIONS_LEN};
use crate::{Error, SeqNum};

/// One SACK block (RFC 2018 §3): `left` is the first sequence number of a
/// received block, `right` the one just after it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct SackBlock {
    pub left: SeqNum,
    pub right: SeqNum,
}

/// The TCP Timestamps option (RFC 7323 §3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Timestamps {
    pub tsval: u32,
    pub tsecr: u32,
}

/// One option as found in the options area.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TcpOption<'a> {
    EndOfList,
    NoOp,
    Mss(u16),
    WindowScale(u8),
    SackPermitted,
    /// Between 1 and 4 blocks, packed at the front.
    Sack([Option<SackBlock>; 4]),
    Timestamps {
        tsval: u32,
        tsecr: u32,
    },
    /// A kind we do not interpret; `data` excludes the kind and length bytes.
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

impl TcpOption<'_> {
    /// Bytes this option occupies on the wire.
    pub fn buffer_len(&self) -> usize {
        match self {
            TcpOption::EndOfList | TcpOption::NoOp => 1,
            TcpOption::Mss(_) => 4,
            TcpOption::WindowScale(_) => 3,
            TcpOption::SackPermitted => 2,
            TcpOption::Sack(b) => 2 + 8 * b.iter().flatten().count(),
            TcpOption::Timestamps { .. } => 10,
            TcpOption::Unknown { data, .. } => 2 + data.len(),
        }
    }

    /// Writes the option at the start of `buf`, returning its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let len = self.buffer_len();
        if buf.len() < len {
            return Err(Error::BufferTooSmall);
        }
        if len > u8::MAX as usize {
            return Err(Error::BadOptionLength);
        }
        let buf = &mut buf[..len];
        match *self {
            TcpOption::EndOfList => buf[0] = kind::END,
            TcpOption::NoOp => buf[0] = kind::NOP,
            TcpOption::Mss(v) => {
                buf[..2].copy_from_slice(&[kind::MSS, 4]);
                buf[2..4].copy_from_slice(&v.to_be_bytes());
            }
            TcpOption::WindowScale(s) => buf.copy_from_slice(&[kind::WINDOW_SCALE, 3, s]),
            TcpOption::SackPermitted => buf.copy_from_slice(&[kind::SACK_PERMITTED, 2]),
            TcpOption::Sack(blocks) => {
                buf[..2].copy_from_slice(&[kind::SACK, len as u8]);
                for (chunk, b) in buf[2..].chunks_exact_mut(8).zip(blocks.iter().flatten()) {
                    chunk[..4].copy_from_slice(&b.left.0.to_be_bytes());
                    chunk[4..].copy_from_slice(&b.right.0.to_be_bytes());
                }
            }
            TcpOption::Timestamps { tsval, tsecr } => {
                buf[..2].copy_from_slice(&[kind::TIMESTAMPS, 10]);
                buf[2..6].copy_from_slice(&tsval.to_be_bytes());
                buf[6..10].copy_from_slice(&tsecr.to_be_bytes());
            }
            TcpOption::Unknown { kind, data } => {
                buf[0] = kind;
                buf[1] = len as u8;
                buf[2..].copy_from_slice(data);
            }
        }
        Ok(len)
    }
}

/// Iterates the options area. Yields `EndOfList` once and then stops
/// (RFC 9293 §3.2: End of Option List marks the end of all options); after an
/// error it yields nothing more.
///
/// Per RFC 9293 §3.1 (MUST-6/MUST-7) any option kind may carry a length byte
/// and unknown kinds must be skipped by that length, so only the kinds we
/// interpret get their length checked against their definition.
#[derive(Clone, Debug)]
pub struct TcpOptionIter<'a> {
    rest: &'a [u8],
}

impl<'a> TcpOptionIter<'a> {
    pub fn new(options: &'a [u8]) -> TcpOptionIter<'a> {
        TcpOptionIter { rest: options }
    }
}

impl<'a> Iterator for TcpOptionIter<'a> {
    type Item = Result<TcpOption<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest;
        let (&k, after_kind) = rest.split_first()?;
        match k {
            kind::END => {
                self.rest = &[];
                return Some(Ok(TcpOption::EndOfList));
            }
            kind::NOP => {
                self.rest = after_kind;
                return Some(Ok(TcpOption::NoOp));
            }
            _ => {}
        }
        // Every other kind has a length byte counting kind and length too.
        self.rest = &[];
        let Some(&len) = after_kind.first() else {
            return Some(Err(Error::TruncatedOption));
        };
        let len = len as usize;
        if len < 2 {
            return Some(Err(Error::BadOptionLength));
        }
        if len > rest.len() {
            return Some(Err(Error::TruncatedOption));
        }
        let data = &rest[2..len];
        let opt = match (k, len) {
            (kind::MSS, 4) => TcpOption::Mss(be16(data)),
            (kind::WINDOW_SCALE, 3) => TcpOption::WindowScale(data[0]),
            (kind::SACK_PERMITTED, 2) => TcpOption::SackPermitted,
            // RFC 2018 §3: 8n+2 bytes; n <= 4 is all that fits in 40 bytes.
            (kind::SACK, l) if l >= 10 && (l - 2) % 8 == 0 && l <= 34 => {
                let mut blocks = [None; 4];
                for (slot, c) in blocks.iter_mut().zip(data.chunks_exact(8)) {
                    *slot = Some(SackBlock {
                        left: SeqNum(be32(&c[..4])),
                        right: SeqNum(be32(&c[4..])),
                    });
                }
                TcpOption::Sack(blocks)
            }
            (kind::TIMESTAMPS, 10) => TcpOption::Timestamps {
                tsval: be32(&data[..4]),
                tsecr: be32(&data[4..]),
            },
            (
                kind::MSS
                | kind::WINDOW_SCALE
                | kind::SACK_PERMITTED
                | kind::SACK
                | kind::TIMESTAMPS,
                _,
            ) => {
                return Some(Err(Error::BadOptionLength));
            }
            (k, _) => TcpOption::Unknown { kind: k, data },
        };
        self.rest = &rest[len..];
        Some(Ok(opt))
    }
}

/// The options this stack understands, decoded. Unknown options are dropped
/// on parse; on emit the layout is canonical (see [`TcpOptions::emit`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct TcpOptions {
    /// Maximum Segment Size (RFC 9293 §3.7.1).
    pub mss: Option<u16>,
    /// Window scale shift as sent; emitted as-is. RFC 7323 §2.3 clamping to
    /// 14 is the TCP's job, not the wire's.
    pub window_scale: Option<u8>,
    /// SACK-Permitted (RFC 2018 §2).
    pub sack_permitted: bool,
    /// SACK blocks (RFC 2018 §3). Emitted in array order, skipping `None`;
    /// parse fills them from the front.
    pub sack_blocks: [Option<SackBlock>; 4],
    /// Timestamps (RFC 7323 §3).
    pub timestamps: Option<Timestamps>,
}

impl TcpOptions {
    /// Decodes an options area. Unknown kinds are skipped; a malformed known
    /// option is an error. A repeated option overrides the earlier one.
    ///
    /// The two layouts nearly every segment of an established connection
    /// carries — none, or Timestamps after two NOPs (RFC 7323 Appendix A, the
    /// layout Linux sends) — are recognised by their bytes, as Linux's
    /// `tcp_fast_parse_options` does; anything else goes through the general
    /// parser ([`TcpOptions::parse_general`]), which gives the same result on
    /// those two.
    ///
    /// Always inlined (and the general parser never): as a call, the decoded options were
    /// built in its frame and moved out, about 30 instructions a segment.
    #[inline(always)]
    pub fn parse(raw: &[u8]) -> Result<TcpOptions, Error> {
        let mut o = TcpOptions::default();
        TcpOptions::parse_into(raw, &mut o)?;
        Ok(o)
    }

    /// [`TcpOptions::parse`] into `out`, for a caller that keeps the decoded segment in a
    /// place of its own: the options are written there, not built in a temporary and moved
    /// (a segment's header went through three such moves on the way to the endpoint, about
    /// 40 instructions). On error `out` holds some valid but meaningless options.
    #[inline(always)]
    pub fn parse_into(raw: &[u8], out: &mut TcpOptions) -> Result<(), Error> {
        match raw {
            [] => *out = TcpOptions::default(),
            [kind::NOP, kind::NOP, kind::TIMESTAMPS, 10, ts @ ..] if ts.len() == 8 => {
                *out = TcpOptions {
                    timestamps: Some(Timestamps {
                        tsval: be32(&ts[..4]),
                        tsecr: be32(&ts[4..]),
                    }),
                    ..TcpOptions::default()
                }
            }
            // Returned, not written through `out`: a call given a pointer into the caller's
            // datagram record kept the record's initialisation alive on every path.
            _ => *out = TcpOptions::parse_uncommon(raw)?,
        }
        Ok(())
    }

    /// The areas `parse` does not recognise inline. The SYN layout of Linux and of this stack
    /// (MSS, SACK-Permitted, Timestamps, NOP, Window Scale: RFC 7323 Appendix A's alignment)
    /// is recognised by its bytes too — walked option by option it cost about 280
    /// instructions, twice per connection (SYN and SYN-ACK) — and anything else goes to the
    /// general parser, which gives the same result on it. Out of line: few segments come
    /// here.
    #[inline(never)]
    fn parse_uncommon(raw: &[u8]) -> Result<TcpOptions, Error> {
        if let Ok(a) = <&[u8; 20]>::try_from(raw) {
            if a[..2] == [kind::MSS, 4]
                && a[4..8] == [kind::SACK_PERMITTED, 2, kind::TIMESTAMPS, 10]
                && a[16..19] == [kind::NOP, kind::WINDOW_SCALE, 3]
            {
                return Ok(TcpOptions {
                    mss: Some(be16(&a[2..4])),
                    window_scale: Some(a[19]),
                    sack_permitted: true,
                    sack_blocks: [None; 4],
                    timestamps: Some(Timestamps {
                        tsval: be32(&a[8..12]),
                        tsecr: be32(&a[12..16]),
                    }),
                });
            }
        }
        TcpOptions::parse_general(raw)
    }

    /// [`TcpOptions::parse`] for any layout: every option walked in order.
    pub fn parse_general(raw: &[u8]) -> Result<TcpOptions, Error> {
        let mut o = TcpOptions::default();
        for opt in TcpOptionIter::new(raw) {
            match opt? {
                TcpOption::EndOfList => break,
                TcpOption::NoOp | TcpOption::Unknown { .. } => {}
                TcpOption::Mss(v) => o.mss = Some(v),
                TcpOption::WindowScale(s) => o.window_scale = Some(s),
                TcpOption::SackPermitted => o.sack_permitted = true,
                TcpOption::Sack(b) => o.sack_blocks = b,
                TcpOption::Timestamps { tsval, tsecr } => {
                    o.timestamps = Some(Timestamps { tsval, tsecr })
                }
            }
        }
        Ok(o)
    }

    /// The SACK blocks present, in order.
    pub fn sack_blocks(&self) -> impl Iterator<Item = SackBlock> + '_ {
        // By reference: iterating a copy of the array (`into_iter`) cost about 20 more
        // instructions per segment.
        self.sack_blocks.iter().flatten().copied()
    }

    fn sack_count(&self) -> usize {
        // Summed flag by flag rather than `flatten().count()`, which compiled to a branch
        // per slot (about 10 instructions a segment, counted twice per emitted segment).
        self.sack_blocks.iter().map(|b| b.is_some() as usize).sum()
    }

    /// Length of the word-aligned layout Linux uses (NOPs before the
    /// odd-sized options so that 32-bit fields sit on 32-bit boundaries).
    fn aligned_len(&self) -> usize {
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        // SACK-Permitted (2) shares a word-pair with Timestamps (10), else
        // each is padded with two NOPs.
        n += match (self.sack_permitted, self.timestamps.is_some()) {
            (_, true) => 12,
            (true, false) => 4,
            (false, false) => 0,
        };
        if self.window_scale.is_some() {
            n += 4;
        }
        let s = self.sack_count();
        if s > 0 {
            n += 4 + 8 * s;
        }
        n
    }

    /// Length with no alignment NOPs, rounded up to a word.
    fn packed_len(&self) -> usize {
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        if self.sack_permitted {
            n += 2;
        }
        if self.timestamps.is_some() {
            n += 10;
        }
        if self.window_scale.is_some() {
            n += 3;
        }
        let s = self.sack_count();
        if s > 0 {
            n += 2 + 8 * s;
        }
        (n + 3) & !3
    }

    /// Bytes [`TcpOptions::emit`] writes: a multiple of 4. Uses the aligned
    /// layout when it fits in 40 bytes, else the packed one (so anything that
    /// was parsed from a real header can always be emitted again). May exceed
    /// 40, in which case emitting fails with [`Error::OptionsTooLong`].
    pub fn encoded_len(&self) -> usize {
        self.layout().len
    }

    /// The length and layout [`TcpOptions::emit`] uses, computed once for a
    /// datagram (sizing, the TCP header and the options all need it).
    pub(crate) fn layout(&self) -> Layout {
        let a = self.aligned_len();
        if a <= MAX_OPTIONS_LEN {
            Layout {
                len: a,
                aligned: true,
            }
        } else {
            Layout {
                len: self.packed_len(),
                aligned: false,
            }
        }
    }

    /// Writes the options into `buf[..encoded_len()]` in the order MSS,
    /// SACK-Permitted, Timestamps, Window Scale, SACK, returning the length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        self.emit_laid_out(buf, self.layout())
    }

    /// [`TcpOptions::emit`] with `layout` = `self.layout()` already known.
    pub(super) fn emit_laid_out(&self, buf: &mut [u8], layout: Layout) -> Result<usize, Error> {
        let Layout { len, aligned } = layout;
        if len > MAX_OPTIONS_LEN {
            return Err(Error::OptionsTooLong);
        }
        if buf.len() < len {
            return Err(Error::BufferTooSmall);
        }
        let buf = &mut buf[..len];
        match self.timestamps {
            // What every segment of an established connection with timestamps carries (RFC
            // 7323 Appendix A's layout), written directly rather than option by option.
            // With Timestamps present, the aligned length is 12 exactly when there is no MSS,
            // Window Scale or SACK block (a packed layout is never 12: it is only chosen past
            // 40 aligned bytes); SACK-Permitted shares those 12 and is asked separately. Read
            // off the layout instead of comparing the whole options struct with
            // `timestamps_only(ts)`: about 20 instructions a segment.
            Some(ts) if len == 12 && !self.sack_permitted => {
                debug_assert!(*self == TcpOptions::timestamps_only(ts));
                buf[..4].copy_from_slice(&[kind::NOP, kind::NOP, kind::TIMESTAMPS, 10]);
                buf[4..8].copy_from_slice(&ts.tsval.to_be_bytes());
                buf[8..12].copy_from_slice(&ts.tsecr.to_be_bytes());
                Ok(len)
            }
            _ => self.emit_general(buf, aligned),
        }
    }

    fn timestamps_only(ts: Timestamps) -> TcpOptions {
        TcpOptions {
            timestamps: Some(ts),
            ..TcpOptions::default()
        }
    }

    /// Every option in turn into `buf`, exactly the encoded length long.
    fn emit_general(&self, buf: &mut [u8], aligned: bool) -> Result<usize, Error> {
        let len = buf.len();
        // Alignment NOPs only in the aligned layout.
        let pad = if aligned { 1 } else { 0 };
        let mut at = 0;
        let mut put = |opt: TcpOption<'_>, nops: usize| {
            for _ in 0..nops * pad {
                buf[at] = kind::NOP;
                at += 1;
            }
            // Cannot fail: `len` was computed from these very options.
            at += opt.emit(&mut buf[at..]).unwrap_or(0);
        };
        if let Some(m) = self.mss {
            put(TcpOption::Mss(m), 0);
        }
        match (self.sack_permitted, self.timestamps) {
            (true, Some(ts)) => {
                put(TcpOption::SackPermitted, 0);
                put(
                    TcpOption::Timestamps {
                        tsval: ts.tsval,
                        tsecr: ts.tsecr,
                    },
                    0,
                );
            }
            (false, Some(ts)) => put(
                TcpOption::Timestamps {
                    tsval: ts.tsval,
                    tsecr: ts.tsecr,
                },
                2,
            ),
            (true, None) => put(TcpOption::SackPermitted, 2),
            (false, None) => {}
        }
        if let Some(s) = self.window_scale {
            put(TcpOption::WindowScale(s), 1);
        }
        if self.sack_count() > 0 {
            let mut blocks = [None; 4];
            for (slot, b) in blocks.iter_mut().zip(self.sack_blocks()) {
                *slot = Some(b);
            }
            put(TcpOption::Sack(blocks), 2);
        }
        // Padding: End of Option List then zeros (RFC 9293 §3.1: the header
        // is padded with zeros to a 32-bit boundary).
        buf[at..].fill(0);
        Ok(len)
    }
}

/// How a [`TcpOptions`] is laid out on the wire: its encoded length, and
/// whether that is the aligned layout (else the packed one).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub(crate) len: usize,
    aligned: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `parse` recognises the SYN layout by its bytes; on that layout and on every near miss
    /// of it (one byte changed, cut short or followed by more) it agrees with the general
    /// parser.
    #[test]
    fn syn_layout_parse_agrees_with_the_general_parser() {
        let syn = TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            sack_blocks: [None; 4],
            timestamps: Some(Timestamps {
                tsval: 0x0102_0304,
                tsecr: 0xa0b0_c0d0,
            }),
        };
        let mut area = [0u8; 40];
        let n = syn.emit(&mut area).unwrap();
        assert_eq!(n, 20);
        let area = &area[..n];
        assert_eq!(TcpOptions::parse(area), Ok(syn));
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..n {
            for _ in 0..64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let mut changed = area.to_vec();
                changed[i] = x as u8;
                let parsed = TcpOptions::parse(&changed);
                assert_eq!(parsed, TcpOptions::parse_general(&changed), "{changed:?}");
            }
            let cut = &area[..i];
            assert_eq!(TcpOptions::parse(cut), TcpOptions::parse_general(cut));
            let mut longer = area.to_vec();
            longer.extend_from_slice(&[1, 1, 1, 1][..i % 4 + 1]);
            assert_eq!(
                TcpOptions::parse(&longer),
                TcpOptions::parse_general(&longer)
            );
        }
    }

    /// The direct Timestamps-only writer and the option-by-option one write the same bytes;
    /// options that are not Timestamps alone never take the direct one.
    #[test]
    fn timestamps_only_emit_matches_the_general_writer() {
        let mut x = 0x1234_5678_9abc_def0u64;
        for i in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ts = Timestamps {
                tsval: x as u32,
                tsecr: (x >> 32) as u32,
            };
            let mut o = TcpOptions::timestamps_only(ts);
            match i % 5 {
                1 => o.mss = Some(x as u16),
                2 => o.sack_permitted = true,
                3 => o.window_scale = Some(x as u8 % 15),
                4 => {
                    o.sack_blocks[(x % 4) as usize] = Some(SackBlock {
                        left: SeqNum(x as u32),
                        right: SeqNum((x >> 16) as u32),
                    })
                }
                _ => {}
            }
            let layout = o.layout();
            let (mut fast, mut general) = ([0xa5u8; 40], [0x5au8; 40]);
            let n = o.emit(&mut fast).unwrap();
            assert_eq!(n, layout.len);
            let m = o
                .emit_general(&mut general[..layout.len], layout.aligned)
                .unwrap();
            assert_eq!((n, &fast[..n]), (m, &general[..m]), "{o:?}");
            // Parsing fills SACK blocks from the front.
            let mut packed = o;
            packed.sack_blocks = [None; 4];
            for (slot, b) in packed.sack_blocks.iter_mut().zip(o.sack_blocks()) {
                *slot = Some(b);
            }
            assert_eq!(TcpOptions::parse(&fast[..n]), Ok(packed));
        }
    }
}
