//! What tracefs tells us about `sock:inet_sock_set_state`: its `format` file (which fields
//! the running kernel has, so the in-kernel filter only names fields that exist), and the
//! text lines `trace_pipe` prints for each hit.
//!
//! The tracepoint gained `protocol` in 4.16 (when it moved from `tcp:tcp_set_state`), so the
//! format is read at run time rather than assumed. Lines are parsed from the text the kernel
//! renders with the event's own `print fmt`, which names states and protocols symbolically
//! (`oldstate=TCP_FIN_WAIT1`, `protocol=IPPROTO_TCP`).

use std::net::{IpAddr, SocketAddr};
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

/// The fields the kernel filter and the line parser rely on; checked up front so a kernel
/// whose tracepoint differs fails with a named field instead of printing nothing.
pub fn check_set_state_format(f: &Format) -> Result<(), FormatError> {
    for name in [
        "sport", "dport", "family", "oldstate", "newstate", "saddr", "daddr",
    ] {
        f.field(name).ok_or(FormatError::MissingField(name))?;
    }
    Ok(())
}

pub const IPPROTO_TCP: u16 = 6;

/// One `inet_sock_set_state` hit as `trace_pipe` printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTransition {
    /// The task current when the kernel changed the state, as ftrace recorded it.
    pub comm: String,
    pub pid: u32,
    pub cpu: u32,
    /// The event's timestamp in the instance's `trace_clock` (we set `mono`), in ns.
    /// ftrace prints microseconds, so the last three digits are always zero.
    pub time_ns: u64,
    /// IP protocol number (6 for TCP). Kernels whose tracepoint has no `protocol` field
    /// only ever reported TCP.
    pub protocol: u16,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub from: State,
    pub to: State,
}

/// What one line of `trace_pipe` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipeLine {
    Transition(RawTransition),
    /// `CPU:1 [LOST 42 EVENTS]`: the ring of that CPU overflowed before we read it.
    Lost {
        cpu: u32,
        events: u64,
    },
    /// Anything else (another event, a state this build has no name for, a mangled line).
    Other,
}

/// The kernel's `tcp_state_name` symbols (include/trace/events/sock.h) to our states.
/// A request socket's TCP_NEW_SYN_RECV is the RFC's SYN-RECEIVED as much as TCP_SYN_RECV is.
pub fn state_from_kernel_name(name: &str) -> Option<State> {
    Some(match name {
        "TCP_ESTABLISHED" => State::Established,
        "TCP_SYN_SENT" => State::SynSent,
        "TCP_SYN_RECV" | "TCP_NEW_SYN_RECV" => State::SynReceived,
        "TCP_FIN_WAIT1" => State::FinWait1,
        "TCP_FIN_WAIT2" => State::FinWait2,
        "TCP_TIME_WAIT" => State::TimeWait,
        "TCP_CLOSE" => State::Closed,
        "TCP_CLOSE_WAIT" => State::CloseWait,
        "TCP_LAST_ACK" => State::LastAck,
        "TCP_LISTEN" => State::Listen,
        "TCP_CLOSING" => State::Closing,
        _ => return None,
    })
}

/// The tracepoint's protocol symbols; anything else (printed as hex) is not TCP.
fn protocol_from_kernel_name(name: &str) -> Option<u16> {
    Some(match name {
        "IPPROTO_TCP" => IPPROTO_TCP,
        "IPPROTO_DCCP" => 33,
        "IPPROTO_SCTP" => 132,
        "IPPROTO_MPTCP" => 262,
        _ => return None,
    })
}

/// Parses one line of `trace_pipe`:
///
/// `<comm>-<pid> [(<tgid>)] [<cpu>] <flags> <secs>.<usecs>: inet_sock_set_state: family=AF_INET
/// protocol=IPPROTO_TCP sport=N dport=N saddr=A daddr=A saddrv6=X daddrv6=X oldstate=TCP_Y
/// newstate=TCP_Z`
///
/// The comm may contain spaces and dashes (`lto cgu.02-30789`), so the header is taken apart
/// from the right. Never panics: whatever does not parse is [`PipeLine::Other`].
pub fn parse_line(line: &str) -> PipeLine {
    if let Some(lost) = parse_lost(line) {
        return lost;
    }
    parse_transition(line).map_or(PipeLine::Other, PipeLine::Transition)
}

fn parse_lost(line: &str) -> Option<PipeLine> {
    let rest = line.trim().strip_prefix("CPU:")?;
    let (cpu, rest) = rest.split_once(' ')?;
    let n = rest.strip_prefix("[LOST ")?.strip_suffix(" EVENTS]")?;
    Some(PipeLine::Lost {
        cpu: cpu.parse().ok()?,
        events: n.parse().ok()?,
    })
}

fn parse_transition(line: &str) -> Option<RawTransition> {
    let (header, fields) = line.split_once(": inet_sock_set_state: ")?;
    // Header, right to left: timestamp, flags, [cpu], optional (tgid), comm-pid.
    let header = header.trim_end();
    let (header, ts) = header.rsplit_once(char::is_whitespace)?;
    let time_ns = parse_timestamp(ts)?;
    let open = header.rfind(" [")?;
    let (who, cpu_part) = header.split_at(open);
    let cpu = cpu_part.trim_start().strip_prefix('[')?.split_once(']')?.0;
    let cpu: u32 = cpu.trim().parse().ok()?;
    let mut who = who.trim();
    // With options/record-tgid the kernel inserts `(  1977)` (or `(-------)`) here.
    if who.ends_with(')') {
        who = who[..who.rfind('(')?].trim_end();
    }
    let (comm, pid) = who.rsplit_once('-')?;
    let pid: u32 = pid.parse().ok()?;
    let comm = comm.trim_start().to_string();

    let mut family = None;
    let mut protocol = IPPROTO_TCP;
    let (mut sport, mut dport) = (None, None);
    let (mut saddr, mut daddr, mut saddr6, mut daddr6) = (None, None, None, None);
    let (mut from, mut to) = (None, None);
    for kv in fields.split_ascii_whitespace() {
        let Some((k, v)) = kv.split_once('=') else {
            continue;
        };
        match k {
            "family" => family = Some(v),
            "protocol" => protocol = protocol_from_kernel_name(v)?,
            "sport" => sport = v.parse::<u16>().ok(),
            "dport" => dport = v.parse::<u16>().ok(),
            "saddr" => saddr = v.parse::<IpAddr>().ok(),
            "daddr" => daddr = v.parse::<IpAddr>().ok(),
            "saddrv6" => saddr6 = v.parse::<IpAddr>().ok(),
            "daddrv6" => daddr6 = v.parse::<IpAddr>().ok(),
            "oldstate" => from = state_from_kernel_name(v),
            "newstate" => to = state_from_kernel_name(v),
            _ => {}
        }
    }
    let (sip, dip) = match family? {
        "AF_INET" => (saddr?, daddr?),
        "AF_INET6" => (saddr6?, daddr6?),
        _ => return None,
    };
    Some(RawTransition {
        comm,
        pid,
        cpu,
        time_ns,
        protocol,
        local: SocketAddr::new(sip, sport?),
        remote: SocketAddr::new(dip, dport?),
        from: from?,
        to: to?,
    })
}

/// `5319.391048` (seconds.microseconds, as ftrace prints every clock but the raw counters).
fn parse_timestamp(ts: &str) -> Option<u64> {
    let ts = ts.strip_suffix(':').unwrap_or(ts);
    let (secs, frac) = ts.split_once('.')?;
    if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    let frac_ns: u64 = frac.parse::<u64>().ok()? * 10u64.pow(9 - frac.len() as u32);
    secs.checked_mul(1_000_000_000)?.checked_add(frac_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The format file of a 6.x kernel, as tracefs prints it.
    const FORMAT_6X: &str = "name: inet_sock_set_state
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

    /// Lines as a 6.18 kernel printed them (comm with a space and a dash, softirq flags).
    const LINE_V4: &str =
        "      lto cgu.02-30789   [001] ..s1.  5319.396071: inet_sock_set_state: \
family=AF_INET protocol=IPPROTO_TCP sport=35262 dport=45123 saddr=127.0.0.1 daddr=127.0.0.1 \
saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:127.0.0.1 oldstate=TCP_FIN_WAIT1 newstate=TCP_FIN_WAIT2";

    fn transition(line: &str) -> RawTransition {
        match parse_line(line) {
            PipeLine::Transition(t) => t,
            other => panic!("not a transition: {other:?} from {line:?}"),
        }
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
        assert_eq!(check_set_state_format(&f), Ok(()));
    }

    #[test]
    fn format_without_a_needed_field_is_a_typed_error() {
        let f = Format::parse(&FORMAT_6X.replace("sport", "xport")).unwrap();
        assert_eq!(
            check_set_state_format(&f),
            Err(FormatError::MissingField("sport"))
        );
    }

    #[test]
    fn ipv4_line_gives_task_cpu_time_ports_addresses_and_states() {
        let t = transition(LINE_V4);
        assert_eq!(t.comm, "lto cgu.02");
        assert_eq!(t.pid, 30789);
        assert_eq!(t.cpu, 1);
        assert_eq!(t.time_ns, 5_319_396_071_000);
        assert_eq!(t.protocol, IPPROTO_TCP);
        assert_eq!(t.local, "127.0.0.1:35262".parse().unwrap());
        assert_eq!(t.remote, "127.0.0.1:45123".parse().unwrap());
        assert_eq!((t.from, t.to), (State::FinWait1, State::FinWait2));
    }

    #[test]
    fn ipv6_line_uses_the_v6_address_fields() {
        let line = "curl-77 [000] ..... 12.000001: inet_sock_set_state: family=AF_INET6 \
protocol=IPPROTO_TCP sport=0 dport=443 saddr=0.0.0.0 daddr=0.0.0.0 saddrv6=2001:db8::1 \
daddrv6=2001:db8::2 oldstate=TCP_CLOSE newstate=TCP_SYN_SENT";
        let t = transition(line);
        assert_eq!(t.local, "[2001:db8::1]:0".parse().unwrap());
        assert_eq!(t.remote, "[2001:db8::2]:443".parse().unwrap());
        assert_eq!((t.from, t.to), (State::Closed, State::SynSent));
        assert_eq!(t.time_ns, 12_000_001_000);
    }

    #[test]
    fn idle_task_dashed_comm_and_tgid_column_are_taken_apart_from_the_right() {
        let idle = LINE_V4.replace("      lto cgu.02-30789", "<idle>-0");
        let t = transition(&idle);
        assert_eq!((t.comm.as_str(), t.pid), ("<idle>", 0));
        let tgid = LINE_V4.replace("lto cgu.02-30789  ", "kworker/u8:3-x-412 (    400)");
        let t = transition(&tgid);
        assert_eq!((t.comm.as_str(), t.pid), ("kworker/u8:3-x", 412));
    }

    #[test]
    fn every_kernel_state_name_maps_and_new_syn_recv_is_syn_received() {
        for code in 1u8..=12 {
            let name = [
                "TCP_ESTABLISHED",
                "TCP_SYN_SENT",
                "TCP_SYN_RECV",
                "TCP_FIN_WAIT1",
                "TCP_FIN_WAIT2",
                "TCP_TIME_WAIT",
                "TCP_CLOSE",
                "TCP_CLOSE_WAIT",
                "TCP_LAST_ACK",
                "TCP_LISTEN",
                "TCP_CLOSING",
                "TCP_NEW_SYN_RECV",
            ][code as usize - 1];
            // The names follow the kernel's numbering (include/net/tcp_states.h).
            assert_eq!(
                state_from_kernel_name(name),
                State::from_linux_code(code),
                "{name}"
            );
        }
        assert_eq!(state_from_kernel_name("TCP_BOUND_INACTIVE"), None);
    }

    #[test]
    fn other_protocols_and_unknown_states_are_not_tcp_transitions() {
        let sctp = LINE_V4.replace("IPPROTO_TCP", "IPPROTO_SCTP");
        assert_eq!(transition(&sctp).protocol, 132);
        let odd = LINE_V4.replace("IPPROTO_TCP", "0x99");
        assert_eq!(parse_line(&odd), PipeLine::Other);
        let unk = LINE_V4.replace("TCP_FIN_WAIT2", "0xd");
        assert_eq!(parse_line(&unk), PipeLine::Other);
    }

    #[test]
    fn lost_events_line_is_recognised() {
        assert_eq!(
            parse_line("CPU:3 [LOST 128 EVENTS]"),
            PipeLine::Lost {
                cpu: 3,
                events: 128
            }
        );
    }

    #[test]
    fn truncated_or_foreign_lines_never_panic_and_parse_as_other() {
        for n in 0..LINE_V4.len() {
            if LINE_V4.is_char_boundary(n) {
                let _ = parse_line(&LINE_V4[..n]);
            }
        }
        assert_eq!(parse_line(&LINE_V4[..LINE_V4.len() - 30]), PipeLine::Other);
        assert_eq!(parse_line(""), PipeLine::Other);
        assert_eq!(
            parse_line("bash-1 [000] ..... 1.000000: sched_switch: prev_comm=bash"),
            PipeLine::Other
        );
        assert_eq!(
            parse_line("x-1 [000] ..... 1.0000000000: inet_sock_set_state: family=AF_INET"),
            PipeLine::Other
        );
    }
}
