//! Classic libpcap capture files of IP datagrams, so that segments our stack
//! emits or receives (in the simulator or over TUN) open in Wireshark/tcpdump.
//!
//! Writing uses nanosecond timestamps and `LINKTYPE_RAW` (each record is a
//! bare IPv4 or IPv6 datagram, told apart by its version nibble). Reading
//! accepts either byte order, micro- or nanosecond files, and the link types
//! a capture of IP traffic usually has (raw, IPv4, IPv6, Ethernet, Linux
//! cooked), yielding the IP datagram of each record without copying.

use std::fmt;
use std::io::{self, Write};
use std::time::Duration;

/// Magic number of a nanosecond-resolution pcap file.
const MAGIC_NS: u32 = 0xa1b2_3c4d;
/// Magic number of a microsecond-resolution pcap file.
const MAGIC_US: u32 = 0xa1b2_c3d4;
const GLOBAL_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;

/// Link-layer header types (tcpdump.org "LINK-LAYER HEADER TYPES").
pub mod linktype {
    pub const ETHERNET: u32 = 1;
    pub const RAW: u32 = 101;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
}

/// Largest record we write or accept; also the snaplen we advertise.
pub const SNAPLEN: u32 = 262_144;

/// Writes a pcap stream: the global header on creation, then one record per
/// [`PcapWriter::write_packet`].
pub struct PcapWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(mut out: W) -> io::Result<PcapWriter<W>> {
        let mut h = [0u8; GLOBAL_HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC_NS.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes()); // version 2.4
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone = 0 and sigfigs = 0 (bytes 8..16).
        h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        h[20..24].copy_from_slice(&linktype::RAW.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out })
    }

    /// Appends one IP datagram captured at `ts` (time since any epoch; the
    /// simulator's virtual clock is fine). Seconds beyond `u32` wrap, as the
    /// format cannot hold them.
    pub fn write_packet(&mut self, ts: Duration, datagram: &[u8]) -> io::Result<()> {
        let len = u32::try_from(datagram.len())
            .ok()
            .filter(|&l| l <= SNAPLEN)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "packet exceeds snaplen"))?;
        let mut h = [0u8; RECORD_HEADER_LEN];
        h[0..4].copy_from_slice(&(ts.as_secs() as u32).to_le_bytes());
        h[4..8].copy_from_slice(&ts.subsec_nanos().to_le_bytes());
        h[8..12].copy_from_slice(&len.to_le_bytes());
        h[12..16].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(datagram)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Why a capture could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PcapError {
    /// Not a classic pcap file (pcapng is not supported).
    BadMagic,
    /// A header or record runs past the end of the data.
    Truncated,
    /// A link type we cannot strip down to the IP datagram.
    UnsupportedLinkType(u32),
}

impl fmt::Display for PcapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PcapError::BadMagic => f.write_str("not a pcap file (bad magic number)"),
            PcapError::Truncated => f.write_str("pcap file truncated"),
            PcapError::UnsupportedLinkType(t) => write!(f, "unsupported pcap link type {t}"),
        }
    }
}

impl std::error::Error for PcapError {}

/// One record: when, and the IP datagram it carries (`None` when the link
/// layer says it is not IP, e.g. an ARP frame in an Ethernet capture).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcapRecord<'a> {
    pub ts: Duration,
    pub datagram: Option<&'a [u8]>,
}

/// Iterates the records of a whole pcap file held in memory.
#[derive(Clone, Debug)]
pub struct PcapReader<'a> {
    rest: &'a [u8],
    big_endian: bool,
    nanos: bool,
    linktype: u32,
}

impl<'a> PcapReader<'a> {
    pub fn new(file: &'a [u8]) -> Result<PcapReader<'a>, PcapError> {
        let h = file.get(..GLOBAL_HEADER_LEN).ok_or(PcapError::Truncated)?;
        let magic = [h[0], h[1], h[2], h[3]];
        let (big_endian, nanos) = match (u32::from_le_bytes(magic), u32::from_be_bytes(magic)) {
            (MAGIC_NS, _) => (false, true),
            (MAGIC_US, _) => (false, false),
            (_, MAGIC_NS) => (true, true),
            (_, MAGIC_US) => (true, false),
            _ => return Err(PcapError::BadMagic),
        };
        let mut r = PcapReader {
            rest: &file[GLOBAL_HEADER_LEN..],
            big_endian,
            nanos,
            linktype: 0,
        };
        // The low 16 bits are the link type; the high bits may hold FCS info.
        let linktype = r.u32_at(&h[20..24]) & 0xffff;
        match linktype {
            linktype::ETHERNET
            | linktype::RAW
            | linktype::LINUX_SLL
            | linktype::IPV4
            | linktype::IPV6 => {}
            other => return Err(PcapError::UnsupportedLinkType(other)),
        }
        r.linktype = linktype;
        Ok(r)
    }

    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    fn u32_at(&self, b: &[u8]) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        if self.big_endian {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    }

    /// Strips the link-layer header down to the IP datagram, if it is one.
    fn ip_of(&self, frame: &'a [u8]) -> Option<&'a [u8]> {
        let (proto, payload) = match self.linktype {
            linktype::RAW | linktype::IPV4 | linktype::IPV6 => return Some(frame),
            linktype::ETHERNET => (frame.get(12..14)?, frame.get(14..)?),
            // Linux "cooked" v1: 16-byte header, protocol in the last two.
            _ => (frame.get(14..16)?, frame.get(16..)?),
        };
        match u16::from_be_bytes([proto[0], proto[1]]) {
            0x0800 | 0x86dd => Some(payload),
            _ => None,
        }
    }
}

impl<'a> Iterator for PcapReader<'a> {
    type Item = Result<PcapRecord<'a>, PcapError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let Some(h) = self.rest.get(..RECORD_HEADER_LEN) else {
            self.rest = &[];
            return Some(Err(PcapError::Truncated));
        };
        let secs = self.u32_at(&h[0..4]) as u64;
        let frac = self.u32_at(&h[4..8]);
        let incl = self.u32_at(&h[8..12]) as usize;
        let Some(frame) = self.rest.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + incl) else {
            self.rest = &[];
            return Some(Err(PcapError::Truncated));
        };
        self.rest = &self.rest[RECORD_HEADER_LEN + incl..];
        let nanos = if self.nanos {
            frac as u64
        } else {
            frac as u64 * 1000
        };
        let ts = Duration::from_secs(secs) + Duration::from_nanos(nanos);
        Some(Ok(PcapRecord {
            ts,
            datagram: self.ip_of(frame),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_emits_nanosecond_raw_ip_headers_byte_for_byte() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_packet(Duration::new(3, 5), &[0x45, 1, 2]).unwrap();
        let out = w.into_inner();
        let expected: Vec<u8> = [
            &[0x4d, 0x3c, 0xb2, 0xa1, 2, 0, 4, 0][..],
            &[0; 8],
            &SNAPLEN.to_le_bytes(),
            &[101, 0, 0, 0],
            &[3, 0, 0, 0, 5, 0, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0],
            &[0x45, 1, 2],
        ]
        .concat();
        assert_eq!(out, expected);
    }

    #[test]
    fn reader_reads_back_what_writer_wrote() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_packet(Duration::from_millis(1500), b"\x45first")
            .unwrap();
        w.write_packet(Duration::from_nanos(7), b"\x60second")
            .unwrap();
        let file = w.into_inner();
        let recs: Vec<_> = PcapReader::new(&file)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            recs,
            vec![
                PcapRecord {
                    ts: Duration::from_millis(1500),
                    datagram: Some(&b"\x45first"[..])
                },
                PcapRecord {
                    ts: Duration::from_nanos(7),
                    datagram: Some(&b"\x60second"[..])
                },
            ]
        );
    }

    #[test]
    fn reader_handles_big_endian_microsecond_ethernet_files() {
        let mut f = Vec::new();
        f.extend_from_slice(&MAGIC_US.to_be_bytes());
        f.extend_from_slice(&[
            0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 1,
        ]);
        let frame: Vec<u8> = [&[0u8; 12][..], &[0x08, 0x00], b"\x45ip"].concat();
        let arp: Vec<u8> = [&[0u8; 12][..], &[0x08, 0x06], b"arp"].concat();
        for (usec, fr) in [(250u32, &frame), (1, &arp)] {
            f.extend_from_slice(&1u32.to_be_bytes());
            f.extend_from_slice(&usec.to_be_bytes());
            f.extend_from_slice(&(fr.len() as u32).to_be_bytes());
            f.extend_from_slice(&(fr.len() as u32).to_be_bytes());
            f.extend_from_slice(fr);
        }
        let r = PcapReader::new(&f).unwrap();
        assert_eq!(r.linktype(), linktype::ETHERNET);
        let recs: Vec<_> = r.collect::<Result<_, _>>().unwrap();
        assert_eq!(recs[0].ts, Duration::from_micros(1_000_250));
        assert_eq!(recs[0].datagram, Some(&b"\x45ip"[..]));
        assert_eq!(recs[1].datagram, None, "ARP is not IP");
    }

    #[test]
    fn reader_rejects_bad_magic_truncation_and_unknown_linktypes() {
        assert_eq!(
            PcapReader::new(&[0u8; 10]).unwrap_err(),
            PcapError::Truncated
        );
        assert_eq!(
            PcapReader::new(&[0u8; 24]).unwrap_err(),
            PcapError::BadMagic
        );
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_packet(Duration::ZERO, b"\x45abc").unwrap();
        let mut file = w.into_inner();
        file.pop();
        let mut r = PcapReader::new(&file).unwrap();
        assert_eq!(r.next(), Some(Err(PcapError::Truncated)));
        assert_eq!(r.next(), None);
        file[20] = 147; // a user-defined DLT
        assert_eq!(
            PcapReader::new(&file).unwrap_err(),
            PcapError::UnsupportedLinkType(147)
        );
    }
}
