//! The TCP control bits (RFC 9293 §3.1, plus ECE/CWR from RFC 3168 §6.1).

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign};

/// The eight control bits in byte 13 of the TCP header.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Flags(pub u8);

impl Flags {
    pub const FIN: Flags = Flags(0x01);
    pub const SYN: Flags = Flags(0x02);
    pub const RST: Flags = Flags(0x04);
    pub const PSH: Flags = Flags(0x08);
    pub const ACK: Flags = Flags(0x10);
    pub const URG: Flags = Flags(0x20);
    pub const ECE: Flags = Flags(0x40);
    pub const CWR: Flags = Flags(0x80);

    /// No bits set.
    pub const fn empty() -> Flags {
        Flags(0)
    }

    /// True when every bit of `f` is set in `self`.
    #[inline]
    pub fn contains(self, f: Flags) -> bool {
        self.0 & f.0 == f.0
    }

    /// True when any bit of `f` is set in `self`.
    #[inline]
    pub fn intersects(self, f: Flags) -> bool {
        self.0 & f.0 != 0
    }

    #[inline]
    pub fn insert(&mut self, f: Flags) {
        self.0 |= f.0;
    }

    #[inline]
    pub fn remove(&mut self, f: Flags) {
        self.0 &= !f.0;
    }

    #[inline]
    pub fn bits(self) -> u8 {
        self.0
    }

    #[inline]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, o: Flags) -> Flags {
        Flags(self.0 | o.0)
    }
}

impl BitOrAssign for Flags {
    fn bitor_assign(&mut self, o: Flags) {
        self.0 |= o.0;
    }
}

impl BitAnd for Flags {
    type Output = Flags;
    fn bitand(self, o: Flags) -> Flags {
        Flags(self.0 & o.0)
    }
}

/// Bit order, lowest first: the order the bits sit in the header.
const NAMES: [(Flags, &str); 8] = [
    (Flags::FIN, "FIN"),
    (Flags::SYN, "SYN"),
    (Flags::RST, "RST"),
    (Flags::PSH, "PSH"),
    (Flags::ACK, "ACK"),
    (Flags::URG, "URG"),
    (Flags::ECE, "ECE"),
    (Flags::CWR, "CWR"),
];

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("none");
        }
        let mut first = true;
        for (bit, name) in NAMES {
            if self.contains(bit) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// The flag name was not one of FIN, SYN, RST, PSH, ACK, URG, ECE, CWR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseFlagsError(pub String);

impl fmt::Display for ParseFlagsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown TCP flag {:?}", self.0)
    }
}

impl std::error::Error for ParseFlagsError {}

/// Parses the [`Display`](fmt::Display) form back: names joined by `,`
/// (any order, case-insensitive, `|` and `+` also accepted), or `none`.
impl core::str::FromStr for Flags {
    type Err = ParseFlagsError;

    fn from_str(s: &str) -> Result<Flags, ParseFlagsError> {
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("none") {
            return Ok(Flags::empty());
        }
        let mut out = Flags::empty();
        for part in s.split([',', '|', '+']) {
            let part = part.trim();
            let bit = NAMES
                .iter()
                .find(|(_, n)| n.eq_ignore_ascii_case(part))
                .map(|(b, _)| *b)
                .ok_or_else(|| ParseFlagsError(part.to_string()))?;
            out.insert(bit);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_lists_names_in_bit_order() {
        assert_eq!((Flags::ACK | Flags::SYN).to_string(), "SYN,ACK");
        assert_eq!(
            (Flags::ACK | Flags::FIN | Flags::PSH).to_string(),
            "FIN,PSH,ACK"
        );
        assert_eq!(Flags(0xff).to_string(), "FIN,SYN,RST,PSH,ACK,URG,ECE,CWR");
    }

    #[test]
    fn from_str_inverts_display_for_every_combination() {
        for b in 0..=255u8 {
            assert_eq!(Flags(b).to_string().parse::<Flags>(), Ok(Flags(b)));
        }
        assert_eq!("ack|syn".parse::<Flags>(), Ok(Flags::SYN | Flags::ACK));
        assert!("SYN,BOGUS".parse::<Flags>().is_err());
    }

    #[test]
    fn display_of_empty_is_none() {
        assert_eq!(Flags::empty().to_string(), "none");
    }

    #[test]
    fn contains_requires_all_bits_intersects_any() {
        let f = Flags::SYN | Flags::ACK;
        assert!(f.contains(Flags::SYN));
        assert!(f.contains(Flags::SYN | Flags::ACK));
        assert!(!f.contains(Flags::SYN | Flags::FIN));
        assert!(f.intersects(Flags::SYN | Flags::FIN));
        assert!(!f.intersects(Flags::RST | Flags::FIN));
    }

    #[test]
    fn insert_and_remove_toggle_bits() {
        let mut f = Flags::empty();
        f.insert(Flags::RST);
        f |= Flags::ACK;
        assert_eq!(f.bits(), 0x14);
        f.remove(Flags::RST);
        assert_eq!(f, Flags::ACK);
        assert_eq!(f & Flags::RST, Flags::empty());
    }
}
