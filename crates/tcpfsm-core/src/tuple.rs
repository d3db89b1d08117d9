//! The compact 4-tuple used as the demultiplexing key.
//!
//! `FourTuple` holds two `SocketAddr`s (64 bytes). The tables that hold one entry per TIME_WAIT
//! or half-open connection key on this 36-byte form instead (IPv4 stored v4-mapped), which is what
//! lets a TIME_WAIT record stay within 64 bytes.

use crate::FourTuple;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct CompactTuple {
    local_ip: [u8; 16],
    remote_ip: [u8; 16],
    local_port: u16,
    remote_port: u16,
}

fn ip_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        // ::ffff:a.b.c.d (RFC 4291 §2.5.5.2) as one 128-bit value: `to_ipv6_mapped().octets()`
        // built it byte by byte, about 30 instructions an address on every segment's lookup.
        // Built in native byte order, the address's octets kept in theirs: as a big-endian
        // value it was byte-swapped twice (into a number, and back).
        IpAddr::V4(v4) => {
            const PREFIX: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0];
            // Where the last four bytes sit in a native-order u128.
            let at = if cfg!(target_endian = "little") {
                96
            } else {
                0
            };
            let octets = u32::from_ne_bytes(v4.octets()) as u128;
            (u128::from_ne_bytes(PREFIX) | octets << at).to_ne_bytes()
        }
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The inverse of [`ip_bytes`], tested as one 128-bit value for the same reason (through
/// `Ipv6Addr::to_ipv4_mapped` it was about 70 instructions an address, paid for every event
/// a TIME_WAIT record or a half-open entry reports).
fn ip_from(bytes: [u8; 16]) -> IpAddr {
    let v = u128::from_be_bytes(bytes);
    if v >> 32 == 0xffff {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

impl CompactTuple {
    pub(crate) fn new(t: &FourTuple) -> CompactTuple {
        CompactTuple::from_parts(
            (t.local.ip(), t.local.port()),
            (t.remote.ip(), t.remote.port()),
        )
    }

    /// The key of (`local`, `remote`) as address and port: a parsed segment's lookup key
    /// without building the two `SocketAddr`s of a `FourTuple` first (that cost about 80
    /// instructions a segment, and a segment for a connection never needs them).
    pub(crate) fn from_parts(local: (IpAddr, u16), remote: (IpAddr, u16)) -> CompactTuple {
        CompactTuple {
            local_ip: ip_bytes(local.0),
            remote_ip: ip_bytes(remote.0),
            local_port: local.1,
            remote_port: remote.1,
        }
    }

    pub(crate) fn expand(&self) -> FourTuple {
        FourTuple {
            local: SocketAddr::new(ip_from(self.local_ip), self.local_port),
            remote: SocketAddr::new(ip_from(self.remote_ip), self.remote_port),
        }
    }

    pub(crate) fn hash_input(&self) -> [u8; 36] {
        let mut b = [0u8; 36];
        b[..16].copy_from_slice(&self.local_ip);
        b[16..32].copy_from_slice(&self.remote_ip);
        b[32..34].copy_from_slice(&self.local_port.to_be_bytes());
        b[34..36].copy_from_slice(&self.remote_port.to_be_bytes());
        b
    }
}

/// Three words instead of the derived field-by-field hash (two length-prefixed byte arrays
/// and two ports): the key is hashed on every lookup that misses `Table`'s last-hit cache and
/// in the TIME_WAIT table.
impl std::hash::Hash for CompactTuple {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u128(u128::from_ne_bytes(self.local_ip));
        h.write_u128(u128::from_ne_bytes(self.remote_ip));
        h.write_u32((self.local_port as u32) << 16 | self.remote_port as u32);
    }
}

/// The unspecified remote of a listener's tuple (listeners have no peer).
pub(crate) fn unspecified_like(ip: IpAddr) -> SocketAddr {
    match ip {
        IpAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        IpAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

pub(crate) fn is_loopback(t: &FourTuple) -> bool {
    t.local.ip().is_loopback() || t.remote.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key built from a parsed segment's parts is the key of its `FourTuple`, and expands
    /// back to it (IPv4, IPv6; a v4-mapped IPv6 address keys like its IPv4 form, as before).
    #[test]
    fn an_ipv4_address_is_stored_v4_mapped() {
        for a in ["10.0.0.1", "0.0.0.0", "255.255.255.255", "192.0.2.128"] {
            let v4: Ipv4Addr = a.parse().unwrap();
            assert_eq!(
                ip_bytes(IpAddr::V4(v4)),
                v4.to_ipv6_mapped().octets(),
                "{a}"
            );
        }
    }

    /// `ip_from` answers as std's `to_ipv4_mapped` (RFC 4291 §2.5.5.2: only ::ffff:0:0/96 is
    /// an IPv4 address; the deprecated v4-compatible ::a.b.c.d stays IPv6), on the edges of
    /// the mapped prefix and on pseudo-random addresses near and far from it.
    #[test]
    fn ip_from_is_std_to_ipv4_mapped() {
        let reference = |b: [u8; 16]| {
            let v6 = Ipv6Addr::from(b);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        };
        let mut edges: Vec<u128> = vec![0, 1, u128::MAX, 0xffff << 32, (0xffff << 32) - 1];
        edges.extend([
            (0x1_0000 << 32) - 1,
            0x1_0000 << 32,
            0xfffe << 32,
            0x0102_0304,
        ]);
        let mut x = 0x9e37_79b9_7f4a_7c15_u128;
        for i in 0..20_000u128 {
            x = x.wrapping_mul(0x2545_f491_4f6c_dd1d).wrapping_add(i) ^ (x >> 67);
            edges.push(x);
            edges.push(0xffff << 32 | (x & 0xffff_ffff));
            edges.push((x & 0xffff_ffff_ffff) << 32 | (x >> 96));
        }
        for v in edges {
            assert_eq!(
                ip_from(v.to_be_bytes()),
                reference(v.to_be_bytes()),
                "{v:#x}"
            );
        }
    }

    #[test]
    fn from_parts_is_the_four_tuples_key() {
        let cases = [
            ("10.0.0.2:80", "10.0.0.1:40000"),
            ("[2001:db8::2]:443", "[2001:db8::1]:50000"),
            ("[::ffff:10.0.0.2]:80", "[::ffff:10.0.0.1]:40000"),
        ];
        for (l, r) in cases {
            let (local, remote): (SocketAddr, SocketAddr) =
                (l.parse().unwrap(), r.parse().unwrap());
            let t = FourTuple { local, remote };
            let k =
                CompactTuple::from_parts((local.ip(), local.port()), (remote.ip(), remote.port()));
            assert_eq!(k, CompactTuple::new(&t));
            assert_eq!((k.local_port, k.remote_port), (local.port(), remote.port()));
            assert_eq!(ip_from(k.local_ip), ip_from(ip_bytes(local.ip())));
            assert_eq!(ip_from(k.remote_ip), ip_from(ip_bytes(remote.ip())));
            assert_eq!(CompactTuple::new(&k.expand()), k);
        }
    }
}
