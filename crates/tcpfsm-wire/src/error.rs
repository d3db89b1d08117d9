use core::fmt;

/// Why a datagram could not be parsed or emitted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Error {
    /// The buffer is shorter than a header says it should be.
    Truncated,
    /// The IP version nibble is neither 4 nor 6.
    BadIpVersion(u8),
    /// IPv4 IHL below 5 or larger than the total length.
    BadIpHeaderLen,
    /// IPv4 total length / IPv6 payload length disagrees with the buffer.
    BadIpTotalLen,
    /// IPv4 header checksum does not verify.
    BadIpChecksum,
    /// A fragment (IPv4 MF or offset, IPv6 Fragment header); we do not reassemble.
    Fragmented,
    /// The upper-layer protocol is not TCP (6); carries the protocol number found.
    NotTcp(u8),
    /// TCP data offset below 5 words or beyond the segment.
    BadDataOffset,
    /// TCP checksum does not verify.
    BadTcpChecksum,
    /// A TCP option whose length runs past the options area.
    TruncatedOption,
    /// A TCP option with a length its kind does not allow.
    BadOptionLength,
    /// The output buffer is too short for what is being emitted.
    BufferTooSmall,
    /// Source and destination addresses are of different IP families.
    AddressFamilyMismatch,
    /// The options do not fit in the 40 bytes the data offset can describe.
    OptionsTooLong,
    /// The datagram would exceed the 16-bit IP length field.
    DatagramTooLong,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("truncated: buffer shorter than the header says"),
            Error::BadIpVersion(v) => write!(f, "bad IP version {v}"),
            Error::BadIpHeaderLen => f.write_str("bad IPv4 header length"),
            Error::BadIpTotalLen => {
                f.write_str("IP total/payload length does not match the buffer")
            }
            Error::BadIpChecksum => f.write_str("bad IPv4 header checksum"),
            Error::Fragmented => f.write_str("fragmented datagram (not reassembled)"),
            Error::NotTcp(p) => write!(f, "not TCP (protocol {p})"),
            Error::BadDataOffset => f.write_str("bad TCP data offset"),
            Error::BadTcpChecksum => f.write_str("bad TCP checksum"),
            Error::TruncatedOption => f.write_str("TCP option runs past the options area"),
            Error::BadOptionLength => f.write_str("TCP option has an invalid length"),
            Error::BufferTooSmall => f.write_str("output buffer too small"),
            Error::AddressFamilyMismatch => {
                f.write_str("source and destination are different IP families")
            }
            Error::OptionsTooLong => f.write_str("TCP options exceed 40 bytes"),
            Error::DatagramTooLong => f.write_str("datagram exceeds the IP length field"),
        }
    }
}

impl std::error::Error for Error {}
