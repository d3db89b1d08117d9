//! The tracefs `format` file of a tracepoint, and a decoder for `sock:inet_sock_set_state`
//! raw records built from it.
//!
//! A tracepoint's raw record is a C struct whose layout the kernel publishes in
//! `events/<system>/<event>/format`. The layout has changed between kernel versions (the
//! `protocol` field arrived in 4.16 when the tracepoint moved from `tcp:tcp_set_state`), so
//! the offsets are never hard-coded: we read them from the running kernel.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tcpfsm_states::State;

/// One `field:` line of a format file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The C declaration without the name (`const void *`, `__u8`, `int`).
    pub ty: String,
    /// The field name, array suffix removed (`saddr` for `__u8 saddr[4]`).
    pub name: String,
    pub offset: usize,
    pub size: usize,
    pub signed: bool,
}

/// A parsed format file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub name: String,
    pub id: Option<u32>,
    pub fields: Vec<Field>,
}

/// Why a format file or a record could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("malformed format line {line}: {text:?}")]
    Malformed { line: usize, text: String },
    #[error("tracepoint format has no field {0:?}")]
    MissingField(&'static str),
    #[error("field {name:?} has size {size}, expected {expected}")]
    BadSize {
        name: &'static str,
        size: usize,
        expected: &'static str,
    },
}

impl Format {
    /// Parses the text of a tracefs `format` file.
    pub fn parse(text: &str) -> Result<Format, FormatError> {
        let mut name = String::new();
        let mut id = None;
        let mut fields = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if let Some(rest) = line.strip_prefix("name:") {
                name = rest.trim().to_string();
            } else if let Some(rest) = line.strip_prefix("ID:") {
                id = rest.trim().parse().ok();
            } else if line.starts_with("field:") {
                fields.push(parse_field(line).ok_or_else(|| FormatError::Malformed {
                    line: i + 1,
                    text: raw.to_string(),
                })?);
            }
        }
        Ok(Format { name, id, fields })
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// `field:__u8 saddr[4]; offset:32; size:4; signed:0;` (fields separated by tabs)
fn parse_field(line: &str) -> Option<Field> {
    let mut decl = None;
    let mut offset = None;
    let mut size = None;
    let mut signed = false;
    for part in line.split(';') {
        let part = part.trim();
        if let Some(d) = part.strip_prefix("field:") {
            decl = Some(d.trim());
        } else if let Some(v) = part.strip_prefix("offset:") {
            offset = v.trim().parse().ok();
        } else if let Some(v) = part.strip_prefix("size:") {
            size = v.trim().parse().ok();
        } else if let Some(v) = part.strip_prefix("signed:") {
            signed = v.trim() == "1";
        }
    }
    let decl = decl?;
    // The name is the last identifier of the declaration, before any `[N]` suffix.
    let without_array = match decl.find('[') {
        Some(i) => &decl[..i],
        None => decl,
    };
    let split = without_array.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
    let name = without_array[split + 1..].to_string();
    if name.is_empty() {
        return None;
    }
    let ty = without_array[..split + 1].trim().to_string();
    Some(Field {
        ty,
        name,
        offset: offset?,
        size: size?,
        signed,
    })
}

/// Where each field of `sock:inet_sock_set_state` sits in a raw record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetStateLayout {
    skaddr: (usize, usize),
    oldstate: (usize, usize),
    newstate: (usize, usize),
    sport: usize,
    dport: usize,
    family: usize,
    /// Absent on kernels whose tracepoint was TCP-only.
    protocol: Option<usize>,
    saddr: usize,
    daddr: usize,
    saddr_v6: usize,
    daddr_v6: usize,
}

/// One decoded record: a socket changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawTransition {
    /// Kernel address of the socket: a key that is stable for the socket's life.
    pub skaddr: u64,
    /// Linux state codes (`include/net/tcp_states.h`).
    pub oldstate: i32,
    pub newstate: i32,
    pub protocol: u16,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

impl RawTransition {
    pub fn from_state(&self) -> Option<State> {
        u8::try_from(self.oldstate)
            .ok()
            .and_then(State::from_linux_code)
    }
    pub fn to_state(&self) -> Option<State> {
        u8::try_from(self.newstate)
            .ok()
            .and_then(State::from_linux_code)
    }
}

pub const IPPROTO_TCP: u16 = 6;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

impl SetStateLayout {
    /// Resolves the fields the decoder needs, checking their sizes.
    pub fn from_format(f: &Format) -> Result<SetStateLayout, FormatError> {
        fn get<'a>(f: &'a Format, name: &'static str) -> Result<&'a Field, FormatError> {
            f.field(name).ok_or(FormatError::MissingField(name))
        }
        fn sized(
            f: &Format,
            name: &'static str,
            ok: &[usize],
            expected: &'static str,
        ) -> Result<(usize, usize), FormatError> {
            let fl = get(f, name)?;
            if ok.contains(&fl.size) {
                Ok((fl.offset, fl.size))
            } else {
                Err(FormatError::BadSize {
                    name,
                    size: fl.size,
                    expected,
                })
            }
        }
        let u16f = |name| sized(f, name, &[2], "2").map(|x| x.0);
        let protocol = match f.field("protocol") {
            Some(_) => Some(u16f("protocol")?),
            None => None,
        };
        Ok(SetStateLayout {
            skaddr: sized(f, "skaddr", &[4, 8], "4 or 8")?,
            oldstate: sized(f, "oldstate", &[1, 2, 4], "1, 2 or 4")?,
            newstate: sized(f, "newstate", &[1, 2, 4], "1, 2 or 4")?,
            sport: u16f("sport")?,
            dport: u16f("dport")?,
            family: u16f("family")?,
            protocol,
            saddr: sized(f, "saddr", &[4], "4")?.0,
            daddr: sized(f, "daddr", &[4], "4")?.0,
            saddr_v6: sized(f, "saddr_v6", &[16], "16")?.0,
            daddr_v6: sized(f, "daddr_v6", &[16], "16")?.0,
        })
    }

    /// Decodes one raw record. `None` if the record is too short or of an unknown family —
    /// a truncated record must never panic the tracer.
    pub fn decode(&self, raw: &[u8]) -> Option<RawTransition> {
        let u16_at = |o: usize| -> Option<u16> {
            raw.get(o..o + 2).map(|b| u16::from_ne_bytes([b[0], b[1]]))
        };
        let int_at = |(o, n): (usize, usize)| -> Option<i64> {
            let b = raw.get(o..o + n)?;
            Some(match n {
                1 => b[0] as i8 as i64,
                2 => i16::from_ne_bytes([b[0], b[1]]) as i64,
                4 => i32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as i64,
                8 => i64::from_ne_bytes(b.try_into().ok()?),
                _ => return None,
            })
        };
        let skaddr = int_at(self.skaddr)? as u64;
        let skaddr = if self.skaddr.1 == 4 {
            skaddr & 0xffff_ffff
        } else {
            skaddr
        };
        let oldstate = int_at(self.oldstate)? as i32;
        let newstate = int_at(self.newstate)? as i32;
        // The kernel stores ports already converted to host order (ntohs in TP_fast_assign).
        let sport = u16_at(self.sport)?;
        let dport = u16_at(self.dport)?;
        let family = u16_at(self.family)?;
        let protocol = match self.protocol {
            Some(o) => u16_at(o)?,
            None => IPPROTO_TCP,
        };
        let (sip, dip): (IpAddr, IpAddr) = match family {
            AF_INET => {
                let s: [u8; 4] = raw.get(self.saddr..self.saddr + 4)?.try_into().ok()?;
                let d: [u8; 4] = raw.get(self.daddr..self.daddr + 4)?.try_into().ok()?;
                (Ipv4Addr::from(s).into(), Ipv4Addr::from(d).into())
            }
            AF_INET6 => {
                let s: [u8; 16] = raw
                    .get(self.saddr_v6..self.saddr_v6 + 16)?
                    .try_into()
                    .ok()?;
                let d: [u8; 16] = raw
                    .get(self.daddr_v6..self.daddr_v6 + 16)?
                    .try_into()
                    .ok()?;
                (Ipv6Addr::from(s).into(), Ipv6Addr::from(d).into())
            }
            _ => return None,
        };
        Some(RawTransition {
            skaddr,
            oldstate,
            newstate,
            protocol,
            local: SocketAddr::new(sip, sport),
            remote: SocketAddr::new(dip, dport),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The format file of a 6.x kernel, as tracefs prints it.
    pub(crate) const FORMAT_6X: &str = "name: inet_sock_set_state
ID: 2287
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;
\tfield:int newstate;\toffset:20;\tsize:4;\tsigned:1;
\tfield:__u16 sport;\toffset:24;\tsize:2;\tsigned:0;
\tfield:__u16 dport;\toffset:26;\tsize:2;\tsigned:0;
\tfield:__u16 family;\toffset:28;\tsize:2;\tsigned:0;
\tfield:__u16 protocol;\toffset:30;\tsize:2;\tsigned:0;
\tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;
\tfield:__u8 daddr[4];\toffset:36;\tsize:4;\tsigned:0;
\tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;
\tfield:__u8 daddr_v6[16];\toffset:56;\tsize:16;\tsigned:0;

print fmt: \"family=%s ...\"
";

    fn record(layout_text: &str, family: u16, old: i32, new: i32) -> Vec<u8> {
        let f = Format::parse(layout_text).unwrap();
        let mut r = vec![0u8; 72];
        let put = |r: &mut Vec<u8>, name: &str, bytes: &[u8]| {
            let fl = f.field(name).unwrap();
            r[fl.offset..fl.offset + bytes.len()].copy_from_slice(bytes);
        };
        put(&mut r, "skaddr", &0xffff_8880_1234_5678u64.to_ne_bytes());
        put(&mut r, "oldstate", &old.to_ne_bytes());
        put(&mut r, "newstate", &new.to_ne_bytes());
        put(&mut r, "sport", &49152u16.to_ne_bytes());
        put(&mut r, "dport", &80u16.to_ne_bytes());
        put(&mut r, "family", &family.to_ne_bytes());
        put(&mut r, "protocol", &6u16.to_ne_bytes());
        put(&mut r, "saddr", &[10, 0, 0, 1]);
        put(&mut r, "daddr", &[10, 0, 0, 2]);
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        put(&mut r, "saddr_v6", &v6);
        v6[15] = 2;
        put(&mut r, "daddr_v6", &v6);
        r
    }

    #[test]
    fn format_file_fields_are_parsed_with_offsets_and_array_names() {
        let f = Format::parse(FORMAT_6X).unwrap();
        assert_eq!(f.name, "inet_sock_set_state");
        assert_eq!(f.id, Some(2287));
        let saddr = f.field("saddr").unwrap();
        assert_eq!(
            (saddr.offset, saddr.size, saddr.ty.as_str()),
            (32, 4, "__u8")
        );
        let sk = f.field("skaddr").unwrap();
        assert_eq!((sk.offset, sk.size, sk.ty.as_str()), (8, 8, "const void *"));
        assert!(f.field("common_pid").unwrap().signed);
    }

    #[test]
    fn ipv4_record_decodes_to_ports_addresses_and_states() {
        let layout = SetStateLayout::from_format(&Format::parse(FORMAT_6X).unwrap()).unwrap();
        let t = layout.decode(&record(FORMAT_6X, 2, 2, 1)).unwrap();
        assert_eq!(t.local, "10.0.0.1:49152".parse().unwrap());
        assert_eq!(t.remote, "10.0.0.2:80".parse().unwrap());
        assert_eq!(t.from_state(), Some(State::SynSent));
        assert_eq!(t.to_state(), Some(State::Established));
        assert_eq!(t.skaddr, 0xffff_8880_1234_5678);
        assert_eq!(t.protocol, IPPROTO_TCP);
    }

    #[test]
    fn ipv6_record_uses_the_v6_address_fields() {
        let layout = SetStateLayout::from_format(&Format::parse(FORMAT_6X).unwrap()).unwrap();
        let t = layout.decode(&record(FORMAT_6X, 10, 1, 4)).unwrap();
        assert_eq!(t.local, "[::1]:49152".parse().unwrap());
        assert_eq!(t.remote, "[::2]:80".parse().unwrap());
        assert_eq!(t.to_state(), Some(State::FinWait1));
    }

    #[test]
    fn offsets_come_from_the_format_file_not_from_constants() {
        // Same fields, shifted by 8 bytes (as if the common header had grown).
        let shifted: String = FORMAT_6X
            .lines()
            .map(|l| {
                if l.contains("field:") && !l.contains("common_") {
                    let start = l.find("offset:").unwrap() + 7;
                    let end = start + l[start..].find(';').unwrap();
                    let off: usize = l[start..end].parse().unwrap();
                    format!("{}{}{}\n", &l[..start], off + 8, &l[end..])
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        let f = Format::parse(&shifted).unwrap();
        let layout = SetStateLayout::from_format(&f).unwrap();
        let mut r = vec![0u8; 8];
        r.extend(record(FORMAT_6X, 2, 1, 8));
        let t = layout.decode(&r).unwrap();
        assert_eq!(t.to_state(), Some(State::CloseWait));
        assert_eq!(t.remote.port(), 80);
    }

    #[test]
    fn truncated_record_is_rejected_without_panic() {
        let layout = SetStateLayout::from_format(&Format::parse(FORMAT_6X).unwrap()).unwrap();
        let r = record(FORMAT_6X, 2, 2, 1);
        for n in 0..r.len() {
            let _ = layout.decode(&r[..n]);
        }
        assert!(layout.decode(&r[..30]).is_none());
    }

    #[test]
    fn missing_field_is_a_typed_error() {
        let text = FORMAT_6X.replace("sport", "xport");
        let f = Format::parse(&text).unwrap();
        assert_eq!(
            SetStateLayout::from_format(&f),
            Err(FormatError::MissingField("sport"))
        );
    }

    #[test]
    fn unknown_family_is_skipped() {
        let layout = SetStateLayout::from_format(&Format::parse(FORMAT_6X).unwrap()).unwrap();
        assert!(layout.decode(&record(FORMAT_6X, 1, 2, 1)).is_none());
    }
}
