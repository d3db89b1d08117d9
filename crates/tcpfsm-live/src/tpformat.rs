//! Tracepoint `format` files: which fields the running kernel's events have and where, so
//! records read from the raw ring are decoded by the kernel's own description (and the
//! in-kernel filter names only fields that exist), never by a layout assumed at build time.
//! Fields come and go between kernel versions (`inet_sock_set_state` gained `protocol` in
//! 4.16; `tcp_retransmit_skb` gained `err` in 6.12; `tcp_send_reset` replaced its ports and
//! addresses by two `struct sockaddr` in 6.10).

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
    /// The `print fmt:` line, for the symbolic names of enum values.
    pub print_fmt: String,
}

/// Why a format file or a record could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("malformed format line {line}: {text:?}")]
    Malformed { line: usize, text: String },
    #[error("tracepoint format has no field {0:?}")]
    MissingField(&'static str),
}

impl Format {
    /// Parses the text of a tracefs `format` file.
    pub fn parse(text: &str) -> Result<Format, FormatError> {
        let mut name = String::new();
        let mut id = None;
        let mut fields = Vec::new();
        let mut print_fmt = String::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if let Some(rest) = line.strip_prefix("print fmt:") {
                print_fmt = rest.trim().to_string();
            } else if let Some(rest) = line.strip_prefix("name:") {
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
        Ok(Format {
            name,
            id,
            fields,
            print_fmt,
        })
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

impl Field {
    /// The field as an unsigned integer (1, 2, 4 or 8 bytes, host byte order, as the kernel
    /// stored it), or None if the record is too short.
    pub fn uint(&self, rec: &[u8]) -> Option<u64> {
        let b = rec.get(self.offset..self.offset + self.size)?;
        Some(match self.size {
            1 => b[0] as u64,
            2 => u16::from_ne_bytes(b.try_into().ok()?) as u64,
            4 => u32::from_ne_bytes(b.try_into().ok()?) as u64,
            8 => u64::from_ne_bytes(b.try_into().ok()?),
            _ => return None,
        })
    }

    /// The field as a signed integer (sign-extended from its size).
    pub fn int(&self, rec: &[u8]) -> Option<i64> {
        let u = self.uint(rec)?;
        let bits = self.size as u32 * 8;
        Some(if bits >= 64 {
            u as i64
        } else {
            ((u << (64 - bits)) as i64) >> (64 - bits)
        })
    }

    /// The field's raw bytes (arrays: addresses, `struct sockaddr`).
    pub fn bytes<'r>(&self, rec: &'r [u8]) -> Option<&'r [u8]> {
        rec.get(self.offset..self.offset + self.size)
    }
}

impl Format {
    /// A field that must exist, as a typed error naming it.
    pub fn need(&self, name: &'static str) -> Result<&Field, FormatError> {
        self.field(name).ok_or(FormatError::MissingField(name))
    }

    /// The `{ value, "NAME" }` pairs of `__print_symbolic(REC->field, ...)` in the print
    /// format: the kernel's own names for an enum field (the reset reasons of
    /// `tcp_send_reset`), read from this kernel rather than assumed.
    pub fn symbols(&self, field: &str) -> Vec<(i64, String)> {
        let key = format!("__print_symbolic(REC->{field},");
        let Some(start) = self.print_fmt.find(&key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut rest = &self.print_fmt[start + key.len()..];
        // Pairs until the closing parenthesis of __print_symbolic.
        while let Some(open) = rest.find('{') {
            if rest[..open].contains(')') {
                break;
            }
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            let pair = &rest[open + 1..open + close];
            rest = &rest[open + close + 1..];
            let Some((v, name)) = pair.split_once(',') else {
                continue;
            };
            let name = name.trim().trim_matches('"');
            if let Ok(v) = v.trim().parse::<i64>() {
                out.push((v, name.to_string()));
            }
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The format file of a 6.x kernel, as tracefs prints it.
    pub const FORMAT_6X: &str = "name: inet_sock_set_state
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

print fmt: \"family=%s protocol=%s\", __print_symbolic(REC->family, { 2, \"AF_INET\" }, { 10, \"AF_INET6\" }), __print_symbolic(REC->protocol, { 6, \"IPPROTO_TCP\" })
";

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
        assert!(f.need("sport").is_ok());
        assert_eq!(f.need("xport"), Err(FormatError::MissingField("xport")));
    }

    #[test]
    fn fields_read_integers_of_their_size_and_sign_and_raw_bytes() {
        let f = Format::parse(FORMAT_6X).unwrap();
        let mut rec = vec![0u8; 72];
        rec[4..8].copy_from_slice(&(-5i32).to_ne_bytes());
        rec[24..26].copy_from_slice(&443u16.to_ne_bytes());
        rec[32..36].copy_from_slice(&[10, 0, 0, 1]);
        assert_eq!(f.need("common_pid").unwrap().int(&rec), Some(-5));
        assert_eq!(f.need("sport").unwrap().uint(&rec), Some(443));
        assert_eq!(
            f.need("saddr").unwrap().bytes(&rec),
            Some(&[10, 0, 0, 1][..])
        );
        // A record too short for the field.
        assert_eq!(f.need("daddr_v6").unwrap().bytes(&rec[..60]), None);
        assert_eq!(f.need("skaddr").unwrap().uint(&rec[..12]), None);
    }

    #[test]
    fn symbolic_names_of_an_enum_field_come_from_the_print_format() {
        let f = Format::parse(FORMAT_6X).unwrap();
        assert_eq!(
            f.symbols("family"),
            vec![(2, "AF_INET".to_string()), (10, "AF_INET6".to_string())]
        );
        assert_eq!(f.symbols("protocol"), vec![(6, "IPPROTO_TCP".to_string())]);
        assert!(f.symbols("reason").is_empty());
    }

    #[test]
    fn malformed_format_lines_are_errors_with_the_line_number() {
        let bad = FORMAT_6X.replace("offset:24;", "offset:x;");
        assert!(matches!(
            Format::parse(&bad),
            Err(FormatError::Malformed { line: 12, .. })
        ));
    }
}
