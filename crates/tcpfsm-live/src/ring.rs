//! The binary pages of an ftrace ring buffer, as `per_cpu/cpuN/trace_pipe_raw` hands them out.
//!
//! Reading the raw ring instead of `trace_pipe` text gives every field of every event exactly
//! (the socket address `skaddr`, IPv6 addresses, the reset reason), nanosecond timestamps, and
//! spares the kernel from formatting text for each hit. The format is the kernel's
//! (kernel/trace/ring_buffer.c, described by `events/header_page` and `events/header_event`):
//!
//! - a page header: a 64-bit timestamp, then `commit` (a `local_t`: the length of the data,
//!   with bit 31 set when events were lost before this page and bit 30 when their number is
//!   stored after the data), then the data;
//! - events, each a 32-bit header (`type_len`: 5 bits, `time_delta`: 27 bits) followed by its
//!   body: `type_len` 1–28 is a record of `type_len * 4` bytes; 0 a record whose length is in
//!   the next word; 29 padding (a discarded record, or with delta 0 the end of the page); 30 a
//!   time extension (delta = next word << 27 | time_delta); 31 an absolute timestamp.
//!
//! Timestamps are reconstructed as the kernel's own reader does (`rb_update_read_stamp`):
//! page time, plus each record's or extension's delta; padding adds nothing.

/// Where the fields of a page header are (from `events/header_page`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLayout {
    pub commit_offset: usize,
    pub commit_size: usize,
    pub data_offset: usize,
}

impl PageLayout {
    /// The layout of every 64-bit kernel: timestamp at 0, an 8-byte commit at 8, data at 16.
    pub const LP64: PageLayout = PageLayout {
        commit_offset: 8,
        commit_size: 8,
        data_offset: 16,
    };

    /// Parses `events/header_page`:
    /// `field: local_t commit; offset:8; size:8; signed:1;` … `field: char data; offset:16; …`
    pub fn parse(text: &str) -> Option<PageLayout> {
        let mut commit = None;
        let mut data = None;
        for line in text.lines() {
            let line = line.trim();
            let Some(decl) = line.strip_prefix("field:") else {
                continue;
            };
            let num = |key: &str| -> Option<usize> {
                let rest = &decl[decl.find(key)? + key.len()..];
                rest[..rest.find(';')?].trim().parse().ok()
            };
            let name = decl.split(';').next()?.split_whitespace().last()?;
            match name {
                "commit" => commit = Some((num("offset:")?, num("size:")?)),
                "data" => data = num("offset:"),
                _ => {}
            }
        }
        let (commit_offset, commit_size) = commit?;
        if !matches!(commit_size, 4 | 8) {
            return None;
        }
        Some(PageLayout {
            commit_offset,
            commit_size,
            data_offset: data?,
        })
    }
}

const RB_MISSED_EVENTS: u64 = 1 << 31;
const RB_MISSED_STORED: u64 = 1 << 30;
const COMMIT_LEN_MASK: u64 = (1 << 30) - 1;
const TYPE_PADDING: u32 = 29;
const TYPE_TIME_EXTEND: u32 = 30;
const TYPE_TIME_STAMP: u32 = 31;
const TS_SHIFT: u32 = 27;
/// Absolute timestamps carry 59 bits; the top bits come from the running time.
const TS_MSB: u64 = !((1u64 << 59) - 1);

/// What a page said about loss before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageInfo {
    /// Events were lost (overwritten or dropped) between the previous page and this one.
    pub missed: bool,
    /// How many, when the kernel had room to store the number.
    pub missed_count: Option<u64>,
    /// Records delivered from this page.
    pub records: usize,
}

/// Why a page could not be read to its end (what came before was delivered).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("ring page shorter than its header ({0} bytes)")]
    Short(usize),
    #[error("ring page data length {len} beyond the page ({page} bytes)")]
    BadLength { len: usize, page: usize },
    #[error("ring event at offset {0} runs past the page's data")]
    Truncated(usize),
}

fn read_u32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn read_uint(b: &[u8], off: usize, size: usize) -> Option<u64> {
    match size {
        4 => read_u32(b, off).map(u64::from),
        8 => Some(u64::from_ne_bytes(b.get(off..off + 8)?.try_into().ok()?)),
        _ => None,
    }
}

/// The two parts of an event header word. Bit-fields are laid out from the low bits on
/// little-endian machines and from the high bits on big-endian ones.
fn split_header(word: u32) -> (u32, u32) {
    if cfg!(target_endian = "little") {
        (word & 0x1f, word >> 5)
    } else {
        (word >> 27, word & ((1 << 27) - 1))
    }
}

/// Calls `f(timestamp, record)` for each record of one page, in order. `record` starts with
/// the event's common fields (`common_type` first).
pub fn parse_page<'a>(
    page: &'a [u8],
    layout: &PageLayout,
    mut f: impl FnMut(u64, &'a [u8]),
) -> Result<PageInfo, PageError> {
    if page.len() < layout.data_offset || page.len() < 8 {
        return Err(PageError::Short(page.len()));
    }
    let mut ts = u64::from_ne_bytes(page[0..8].try_into().expect("8 bytes"));
    let commit = read_uint(page, layout.commit_offset, layout.commit_size)
        .ok_or(PageError::Short(page.len()))?;
    let len = (commit & COMMIT_LEN_MASK) as usize;
    let data = &page[layout.data_offset..];
    if len > data.len() {
        return Err(PageError::BadLength {
            len,
            page: page.len(),
        });
    }
    let mut info = PageInfo {
        missed: commit & RB_MISSED_EVENTS != 0,
        missed_count: None,
        records: 0,
    };
    if commit & RB_MISSED_STORED != 0 {
        info.missed_count = read_uint(data, len, layout.commit_size);
    }
    let data = &data[..len];
    let mut off = 0;
    while off + 4 <= len {
        let (type_len, delta) = split_header(read_u32(data, off).expect("in bounds"));
        let body = off + 4;
        let word = || read_u32(data, body).ok_or(PageError::Truncated(off));
        match type_len {
            TYPE_PADDING => {
                if delta == 0 {
                    break; // the rest of the page is empty
                }
                off = body + word()? as usize;
            }
            TYPE_TIME_EXTEND => {
                ts = ts.wrapping_add((u64::from(word()?) << TS_SHIFT) | u64::from(delta));
                off = body + 4;
            }
            TYPE_TIME_STAMP => {
                let mut abs = (u64::from(word()?) << TS_SHIFT) | u64::from(delta);
                if ts & TS_MSB != 0 {
                    abs |= ts & TS_MSB;
                    if abs < ts {
                        abs = abs.wrapping_add(1 << 59);
                    }
                }
                ts = abs;
                off = body + 4;
            }
            0 => {
                // The length word counts itself; the record follows it, 4-byte aligned.
                let n = (word()? as usize)
                    .checked_sub(4)
                    .ok_or(PageError::Truncated(off))?;
                let start = body + 4;
                let rec = data
                    .get(start..start + n)
                    .ok_or(PageError::Truncated(off))?;
                ts = ts.wrapping_add(u64::from(delta));
                f(ts, rec);
                info.records += 1;
                off = start + ((n + 3) & !3);
            }
            n => {
                let n = n as usize * 4;
                let rec = data.get(body..body + n).ok_or(PageError::Truncated(off))?;
                ts = ts.wrapping_add(u64::from(delta));
                f(ts, rec);
                info.records += 1;
                off = body + n;
            }
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER_PAGE: &str = "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;
\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;
\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;
\tfield: char data;\toffset:16;\tsize:4080;\tsigned:0;
";

    fn header(type_len: u32, delta: u32) -> [u8; 4] {
        let w = if cfg!(target_endian = "little") {
            type_len | delta << 5
        } else {
            type_len << 27 | delta
        };
        w.to_ne_bytes()
    }

    /// A page with the given events (already encoded) and commit flags.
    fn page(ts: u64, events: &[u8], flags: u64, tail: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&ts.to_ne_bytes());
        p.extend_from_slice(&(events.len() as u64 | flags).to_ne_bytes());
        p.extend_from_slice(events);
        p.extend_from_slice(tail);
        p.resize(4096, 0);
        p
    }

    fn small(delta: u32, body: &[u8]) -> Vec<u8> {
        assert_eq!(body.len() % 4, 0);
        let mut v = header(body.len() as u32 / 4, delta).to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn header_page_of_a_64_bit_kernel_parses() {
        assert_eq!(PageLayout::parse(HEADER_PAGE), Some(PageLayout::LP64));
        assert_eq!(PageLayout::parse("nonsense"), None);
        let bad = HEADER_PAGE.replace("size:8;\tsigned:1", "size:3;\tsigned:1");
        assert_eq!(PageLayout::parse(&bad), None);
    }

    #[test]
    fn records_get_the_page_time_plus_running_deltas_and_extensions() {
        let mut ev = small(5, &[1, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd]);
        // Time extension: delta (3 << 27) | 7.
        ev.extend_from_slice(&header(TYPE_TIME_EXTEND, 7));
        ev.extend_from_slice(&3u32.to_ne_bytes());
        ev.extend(small(2, &[2, 0, 0, 0]));
        // A discarded record (padding with a delta) is skipped and adds no time.
        ev.extend_from_slice(&header(TYPE_PADDING, 9));
        ev.extend_from_slice(&8u32.to_ne_bytes());
        ev.extend_from_slice(&[0xee; 4]);
        // A long record: type 0, length word counting itself (4 + 120).
        ev.extend_from_slice(&header(0, 1));
        ev.extend_from_slice(&124u32.to_ne_bytes());
        ev.extend_from_slice(&[3u8; 120]);
        let p = page(1000, &ev, 0, &[]);
        let mut got = Vec::new();
        let info = parse_page(&p, &PageLayout::LP64, |ts, r| got.push((ts, r.to_vec()))).unwrap();
        assert_eq!(info.records, 3);
        assert!(!info.missed);
        assert_eq!(got[0], (1005, vec![1, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd]));
        let t1 = 1005 + (3u64 << 27 | 7) + 2;
        assert_eq!(got[1], (t1, vec![2, 0, 0, 0]));
        assert_eq!(got[2].0, t1 + 1);
        assert_eq!(got[2].1, vec![3u8; 120]);
    }

    #[test]
    fn absolute_timestamp_replaces_the_running_time() {
        let mut ev = Vec::new();
        ev.extend_from_slice(&header(TYPE_TIME_STAMP, 11));
        ev.extend_from_slice(&2u32.to_ne_bytes());
        ev.extend(small(4, &[9, 0, 0, 0]));
        let p = page(5_000_000_000_000, &ev, 0, &[]);
        let mut got = Vec::new();
        parse_page(&p, &PageLayout::LP64, |ts, _| got.push(ts)).unwrap();
        assert_eq!(got, vec![(2u64 << 27 | 11) + 4]);
    }

    #[test]
    fn null_padding_ends_the_page_and_lost_events_are_reported() {
        let mut ev = small(1, &[1, 0, 0, 0]);
        ev.extend_from_slice(&header(TYPE_PADDING, 0));
        ev.extend_from_slice(&[0u8; 4]);
        ev.extend(small(1, &[2, 0, 0, 0])); // after the end marker: never read
        let p = page(
            0,
            &ev,
            RB_MISSED_EVENTS | RB_MISSED_STORED,
            &42u64.to_ne_bytes(),
        );
        let mut n = 0;
        let info = parse_page(&p, &PageLayout::LP64, |_, _| n += 1).unwrap();
        assert_eq!(n, 1);
        assert!(info.missed);
        assert_eq!(info.missed_count, Some(42));
    }

    #[test]
    fn corrupt_pages_are_errors_after_delivering_what_was_whole() {
        assert_eq!(
            parse_page(&[0u8; 10], &PageLayout::LP64, |_, _| {}),
            Err(PageError::Short(10))
        );
        let p = page(0, &[], 5000, &[]);
        assert!(matches!(
            parse_page(&p, &PageLayout::LP64, |_, _| {}),
            Err(PageError::BadLength { .. })
        ));
        // A record claiming 28 words where only 2 remain.
        let mut ev = small(1, &[1, 0, 0, 0]);
        ev.extend_from_slice(&header(28, 1));
        ev.extend_from_slice(&[0u8; 4]);
        let p = page(0, &ev, 0, &[]);
        let mut n = 0;
        assert!(matches!(
            parse_page(&p, &PageLayout::LP64, |_, _| n += 1),
            Err(PageError::Truncated(8))
        ));
        assert_eq!(n, 1);
        // A type-0 record whose length word is below 4.
        let mut ev = header(0, 0).to_vec();
        ev.extend_from_slice(&2u32.to_ne_bytes());
        assert!(parse_page(&page(0, &ev, 0, &[]), &PageLayout::LP64, |_, _| {}).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_pages_never_panic(mut bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = parse_page(&bytes, &PageLayout::LP64, |_, _| {});
            // With a commit that fits, so the event walk itself meets the garbage.
            if bytes.len() >= 16 {
                let len = (bytes.len() - 16) as u64;
                bytes[8..16].copy_from_slice(&len.to_ne_bytes());
                let mut total = 0;
                let _ = parse_page(&bytes, &PageLayout::LP64, |_, r| total += r.len());
                proptest::prop_assert!(total <= bytes.len());
            }
        }
    }
}
