//! The TCP tracepoints `tcpfsm trace` reads, decoded from raw ring records by their format
//! files: `sock:inet_sock_set_state` (every state change), and on request
//! `tcp:tcp_retransmit_skb`, `tcp:tcp_send_reset` and `tcp:tcp_receive_reset` (what bcc's
//! `tcpretrans` and `tcpdrop` show).

use crate::tpformat::{Field, Format, FormatError};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tcpfsm_states::State;

pub const IPPROTO_TCP: u16 = 6;
const AF_INET: u64 = 2;
const AF_INET6: u64 = 10;
/// Linux's TCP_NEW_SYN_RECV (a request socket): the RFC's SYN-RECEIVED.
const TCP_NEW_SYN_RECV: i64 = 12;

/// One decoded hit.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KernelEvent {
    /// `inet_sock_set_state`. `protocol` is 6 for TCP (kernels without the field only ever
    /// reported TCP).
    SetState {
        skaddr: u64,
        protocol: u16,
        local: SocketAddr,
        remote: SocketAddr,
        from: State,
        to: State,
    },
    /// `tcp_retransmit_skb`: a segment retransmitted (by RTO, fast retransmit, TLP, ...).
    /// `err` (6.12+) is non-zero when the retransmission could not be sent.
    Retransmit {
        skaddr: u64,
        local: SocketAddr,
        remote: SocketAddr,
        state: Option<State>,
        err: Option<i32>,
    },
    /// `tcp_send_reset`: this host sent a RST. `skaddr` is 0 when no socket matched the
    /// segment answered (a closed port). `reason` (6.10+) is the kernel's name for why.
    SendReset {
        skaddr: u64,
        local: SocketAddr,
        remote: SocketAddr,
        state: Option<State>,
        reason: Option<String>,
    },
    /// `tcp_receive_reset`: a socket accepted a RST from its peer.
    ReceiveReset {
        skaddr: u64,
        local: SocketAddr,
        remote: SocketAddr,
        cookie: Option<u64>,
    },
}

/// A decoded hit with its time and task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The ring's clock (we set CLOCK_MONOTONIC), nanoseconds.
    pub ts_ns: u64,
    pub cpu: u32,
    /// The task current when the event fired (0 in softirq on an idle CPU).
    pub pid: u32,
    pub event: KernelEvent,
}

/// Where a tracepoint keeps a connection's ports and addresses.
// Built once per tracepoint when tracing starts; the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Addrs {
    /// `sport`, `dport` (host order), `family`, `saddr[4]`, `daddr[4]`, `saddr_v6[16]`,
    /// `daddr_v6[16]` — most TCP tracepoints.
    Split {
        sport: Field,
        dport: Field,
        family: Option<Field>,
        saddr: Field,
        daddr: Field,
        saddr_v6: Option<Field>,
        daddr_v6: Option<Field>,
    },
    /// `saddr[28]`, `daddr[28]` holding a `struct sockaddr_in` or `sockaddr_in6`
    /// (`tcp_send_reset` since 6.10).
    Sockaddr { saddr: Field, daddr: Field },
}

impl Addrs {
    fn of(f: &Format) -> Result<Addrs, FormatError> {
        let saddr = f.need("saddr")?;
        if saddr.size >= 16 && f.field("sport").is_none() {
            return Ok(Addrs::Sockaddr {
                saddr: saddr.clone(),
                daddr: f.need("daddr")?.clone(),
            });
        }
        Ok(Addrs::Split {
            sport: f.need("sport")?.clone(),
            dport: f.need("dport")?.clone(),
            family: f.field("family").cloned(),
            saddr: saddr.clone(),
            daddr: f.need("daddr")?.clone(),
            saddr_v6: f.field("saddr_v6").cloned(),
            daddr_v6: f.field("daddr_v6").cloned(),
        })
    }

    /// (local, remote) of the record.
    fn read(&self, rec: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
        match self {
            Addrs::Split {
                sport,
                dport,
                family,
                saddr,
                daddr,
                saddr_v6,
                daddr_v6,
            } => {
                let sp = sport.uint(rec)? as u16;
                let dp = dport.uint(rec)? as u16;
                let v6 = |f: &Option<Field>| -> Option<IpAddr> {
                    let b: [u8; 16] = f.as_ref()?.bytes(rec)?.try_into().ok()?;
                    Some(IpAddr::V6(Ipv6Addr::from(b)))
                };
                let v4 = |f: &Field| -> Option<IpAddr> {
                    let b: [u8; 4] = f.bytes(rec)?.try_into().ok()?;
                    Some(IpAddr::V4(Ipv4Addr::from(b)))
                };
                let (s, d) = match family.as_ref().map(|f| f.uint(rec)) {
                    Some(Some(AF_INET6)) => (v6(saddr_v6)?, v6(daddr_v6)?),
                    Some(Some(AF_INET)) => (v4(saddr)?, v4(daddr)?),
                    Some(_) => return None,
                    // No family field (old kernels): IPv4 unless the v6 copy says otherwise.
                    None => match (v6(saddr_v6), v6(daddr_v6)) {
                        (Some(IpAddr::V6(s)), Some(IpAddr::V6(d)))
                            if s.to_ipv4_mapped().is_none() && !s.is_unspecified() =>
                        {
                            (IpAddr::V6(s), IpAddr::V6(d))
                        }
                        _ => (v4(saddr)?, v4(daddr)?),
                    },
                };
                Some((SocketAddr::new(s, sp), SocketAddr::new(d, dp)))
            }
            Addrs::Sockaddr { saddr, daddr } => {
                Some((sockaddr(saddr.bytes(rec)?)?, sockaddr(daddr.bytes(rec)?)?))
            }
        }
    }
}

/// A `struct sockaddr_in` (family, be16 port, 4-byte address) or `sockaddr_in6` (family, be16
/// port, flowinfo, 16-byte address, scope id).
pub fn sockaddr(b: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes(b.get(0..2)?.try_into().ok()?) as u64;
    let port = u16::from_be_bytes(b.get(2..4)?.try_into().ok()?);
    let ip = match family {
        AF_INET => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b.get(4..8)?).ok()?)),
        AF_INET6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b.get(8..24)?).ok()?)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// A Linux TCP state code as an RFC state (TCP_NEW_SYN_RECV is SYN-RECEIVED).
fn state(code: i64) -> Option<State> {
    if code == TCP_NEW_SYN_RECV {
        return Some(State::SynReceived);
    }
    State::from_linux_code(u8::try_from(code).ok()?)
}

/// Which of the optional tracepoints to read besides the state changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extra {
    pub retransmit: bool,
    pub reset: bool,
}

/// The decoder of one tracepoint.
#[derive(Debug, Clone)]
struct Decoder {
    id: u16,
    kind: Kind,
    pid: Field,
    skaddr: Field,
    addrs: Addrs,
    /// oldstate/newstate, or the socket's state.
    a: Option<Field>,
    b: Option<Field>,
    /// protocol, err, reason or sock_cookie.
    extra: Option<Field>,
    reasons: Vec<(i64, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    SetState,
    Retransmit,
    SendReset,
    ReceiveReset,
}

/// The tracepoints, by group/name, with the kernel version that added them.
pub const SET_STATE: (&str, &str) = ("sock/inet_sock_set_state", "Linux 4.16 or later");
pub const RETRANSMIT: (&str, &str) = ("tcp/tcp_retransmit_skb", "Linux 4.15 or later");
pub const SEND_RESET: (&str, &str) = ("tcp/tcp_send_reset", "Linux 4.15 or later");
pub const RECEIVE_RESET: (&str, &str) = ("tcp/tcp_receive_reset", "Linux 4.15 or later");

/// Decoders for the enabled tracepoints, keyed by their event id.
#[derive(Debug, Clone, Default)]
pub struct Decoders {
    list: Vec<Decoder>,
}

impl Decoders {
    /// Adds the decoder of `event` (one of [`SET_STATE`], [`RETRANSMIT`], [`SEND_RESET`],
    /// [`RECEIVE_RESET`]) from its format file, checking the fields it needs.
    pub fn add(&mut self, event: &str, format: &Format) -> Result<(), FormatError> {
        let kind = match event {
            e if e == SET_STATE.0 => Kind::SetState,
            e if e == RETRANSMIT.0 => Kind::Retransmit,
            e if e == SEND_RESET.0 => Kind::SendReset,
            e if e == RECEIVE_RESET.0 => Kind::ReceiveReset,
            _ => return Err(FormatError::MissingField("event")),
        };
        let id = format.id.ok_or(FormatError::MissingField("ID"))? as u16;
        let (a, b, extra) = match kind {
            Kind::SetState => (
                Some(format.need("oldstate")?.clone()),
                Some(format.need("newstate")?.clone()),
                format.field("protocol").cloned(),
            ),
            Kind::Retransmit => (
                format.field("state").cloned(),
                None,
                format.field("err").cloned(),
            ),
            Kind::SendReset => (
                format.field("state").cloned(),
                None,
                format.field("reason").cloned(),
            ),
            Kind::ReceiveReset => (None, None, format.field("sock_cookie").cloned()),
        };
        self.list.push(Decoder {
            id,
            kind,
            pid: format.need("common_pid")?.clone(),
            skaddr: format.need("skaddr")?.clone(),
            addrs: Addrs::of(format)?,
            a,
            b,
            extra,
            reasons: format.symbols("reason"),
        });
        Ok(())
    }

    /// The in-kernel filter for `event`: TCP only (for state changes), and the port when one
    /// is asked for and the event has port fields. Every transition of a socket carries its
    /// ports (a client's CLOSED -> SYN_SENT has source port 0 but the destination port set),
    /// so filtering by port in the kernel never hides a transition that ages a matching
    /// socket.
    pub fn kernel_filter(format: &Format, port: Option<u16>) -> Option<String> {
        let mut parts = Vec::new();
        if format.name == "inet_sock_set_state" && format.field("protocol").is_some() {
            parts.push("protocol == 6".to_string());
        }
        let has_ports = format.field("sport").is_some() && format.field("dport").is_some();
        if let (Some(p), true) = (port, has_ports) {
            parts.push(format!("(sport == {p} || dport == {p})"));
        }
        (!parts.is_empty()).then(|| parts.join(" && "))
    }

    /// Decodes one raw record (`common_type` first); None for records of other events or
    /// too short to hold their fields.
    pub fn decode(&self, ts_ns: u64, cpu: u32, rec: &[u8]) -> Option<Record> {
        let id = u16::from_ne_bytes(rec.get(0..2)?.try_into().ok()?);
        let d = self.list.iter().find(|d| d.id == id)?;
        let pid = d.pid.int(rec)?.max(0) as u32;
        let skaddr = d.skaddr.uint(rec)?;
        let (local, remote) = d.addrs.read(rec)?;
        let event = match d.kind {
            Kind::SetState => KernelEvent::SetState {
                skaddr,
                protocol: match &d.extra {
                    Some(f) => f.uint(rec)? as u16,
                    None => IPPROTO_TCP,
                },
                local,
                remote,
                from: state(d.a.as_ref()?.int(rec)?)?,
                to: state(d.b.as_ref()?.int(rec)?)?,
            },
            Kind::Retransmit => KernelEvent::Retransmit {
                skaddr,
                local,
                remote,
                state: d.a.as_ref().and_then(|f| state(f.int(rec)?)),
                err: d.extra.as_ref().and_then(|f| f.int(rec)).map(|e| e as i32),
            },
            Kind::SendReset => KernelEvent::SendReset {
                skaddr,
                local,
                remote,
                state: d.a.as_ref().and_then(|f| state(f.int(rec)?)),
                reason: d.extra.as_ref().and_then(|f| f.int(rec)).map(|r| {
                    d.reasons
                        .iter()
                        .find(|(v, _)| *v == r)
                        .map(|(_, n)| n.clone())
                        .unwrap_or_else(|| r.to_string())
                }),
            },
            Kind::ReceiveReset => KernelEvent::ReceiveReset {
                skaddr,
                local,
                remote,
                cookie: d.extra.as_ref().and_then(|f| f.uint(rec)),
            },
        };
        Some(Record {
            ts_ns,
            cpu,
            pid,
            event,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET_STATE_FORMAT: &str = crate::tpformat::tests::FORMAT_6X;

    /// tcp_send_reset as Linux 6.10+ describes it (sockaddr addresses, a reason).
    const SEND_RESET_FORMAT: &str = "name: tcp_send_reset
ID: 2280
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:const void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;
\tfield:int state;\toffset:24;\tsize:4;\tsigned:1;
\tfield:enum sk_rst_reason reason;\toffset:28;\tsize:4;\tsigned:0;
\tfield:__u8 saddr[28];\toffset:32;\tsize:28;\tsigned:0;
\tfield:__u8 daddr[28];\toffset:60;\tsize:28;\tsigned:0;

print fmt: \"skbaddr=%p skaddr=%p src=%pISpc dest=%pISpc state=%s reason=%s\", REC->skbaddr, REC->skaddr, REC->saddr, REC->daddr, REC->state ? __print_symbolic(REC->state, { TCP_ESTABLISHED, \"TCP_ESTABLISHED\" }) : \"UNKNOWN\", __print_symbolic(REC->reason, { 0, \"NOT_SPECIFIED\" }, { 1, \"NO_SOCKET\" }, { 12, \"TCP_ABORT_ON_LINGER\" })
";

    fn record(len: usize, id: u16, pid: i32) -> Vec<u8> {
        let mut r = vec![0u8; len];
        r[0..2].copy_from_slice(&id.to_ne_bytes());
        r[4..8].copy_from_slice(&pid.to_ne_bytes());
        r
    }

    fn decoders() -> Decoders {
        let mut d = Decoders::default();
        d.add(SET_STATE.0, &Format::parse(SET_STATE_FORMAT).unwrap())
            .unwrap();
        d.add(SEND_RESET.0, &Format::parse(SEND_RESET_FORMAT).unwrap())
            .unwrap();
        d
    }

    #[test]
    fn set_state_record_gives_socket_address_ports_addresses_and_states() {
        let mut r = record(72, 2287, 4242);
        r[8..16].copy_from_slice(&0xffff_8881_025f_c0c0u64.to_ne_bytes());
        r[16..20].copy_from_slice(&4i32.to_ne_bytes()); // FIN_WAIT1
        r[20..24].copy_from_slice(&5i32.to_ne_bytes()); // FIN_WAIT2
        r[24..26].copy_from_slice(&35262u16.to_ne_bytes());
        r[26..28].copy_from_slice(&443u16.to_ne_bytes());
        r[28..30].copy_from_slice(&2u16.to_ne_bytes());
        r[30..32].copy_from_slice(&6u16.to_ne_bytes());
        r[32..36].copy_from_slice(&[10, 0, 0, 1]);
        r[36..40].copy_from_slice(&[10, 0, 0, 2]);
        let rec = decoders().decode(77, 1, &r).unwrap();
        assert_eq!((rec.ts_ns, rec.cpu, rec.pid), (77, 1, 4242));
        assert_eq!(
            rec.event,
            KernelEvent::SetState {
                skaddr: 0xffff_8881_025f_c0c0,
                protocol: 6,
                local: "10.0.0.1:35262".parse().unwrap(),
                remote: "10.0.0.2:443".parse().unwrap(),
                from: State::FinWait1,
                to: State::FinWait2,
            }
        );
    }

    #[test]
    fn ipv6_set_state_uses_the_v6_fields_and_new_syn_recv_is_syn_received() {
        let mut r = record(72, 2287, 1);
        r[16..20].copy_from_slice(&10i32.to_ne_bytes()); // LISTEN
        r[20..24].copy_from_slice(&12i32.to_ne_bytes()); // NEW_SYN_RECV
        r[28..30].copy_from_slice(&10u16.to_ne_bytes());
        r[30..32].copy_from_slice(&6u16.to_ne_bytes());
        r[40..56].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        r[56..72].copy_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        let KernelEvent::SetState {
            local, from, to, ..
        } = decoders().decode(0, 0, &r).unwrap().event
        else {
            panic!()
        };
        assert_eq!(local, "[2001:db8::1]:0".parse().unwrap());
        assert_eq!((from, to), (State::Listen, State::SynReceived));
    }

    #[test]
    fn send_reset_reads_sockaddr_addresses_and_names_the_reason() {
        let mut r = record(88, 2280, 0);
        r[24..28].copy_from_slice(&0i32.to_ne_bytes()); // no socket
        r[28..32].copy_from_slice(&1u32.to_ne_bytes()); // NO_SOCKET
        r[32..34].copy_from_slice(&2u16.to_ne_bytes());
        r[34..36].copy_from_slice(&5000u16.to_be_bytes());
        r[36..40].copy_from_slice(&[127, 0, 0, 1]);
        r[60..62].copy_from_slice(&10u16.to_ne_bytes());
        r[62..64].copy_from_slice(&40000u16.to_be_bytes());
        r[68..84].copy_from_slice(&Ipv6Addr::LOCALHOST.octets());
        let rec = decoders().decode(0, 0, &r);
        // Each address is read with its own family.
        assert!(matches!(
            rec.unwrap().event,
            KernelEvent::SendReset { ref reason, state: None, skaddr: 0, .. } if reason.as_deref() == Some("NO_SOCKET")
        ));
        r[28..32].copy_from_slice(&99u32.to_ne_bytes());
        let KernelEvent::SendReset { reason, remote, .. } =
            decoders().decode(0, 0, &r).unwrap().event
        else {
            panic!()
        };
        assert_eq!(reason.as_deref(), Some("99"));
        assert_eq!(remote, "[::1]:40000".parse().unwrap());
    }

    #[test]
    fn records_of_other_events_or_too_short_are_skipped() {
        let d = decoders();
        assert_eq!(d.decode(0, 0, &record(72, 9999, 1)), None);
        assert_eq!(d.decode(0, 0, &record(40, 2287, 1)), None);
        assert_eq!(d.decode(0, 0, &[1]), None);
        // Unknown state codes (a future kernel's) are not transitions.
        let mut r = record(72, 2287, 1);
        r[16..20].copy_from_slice(&13i32.to_ne_bytes());
        r[20..24].copy_from_slice(&1i32.to_ne_bytes());
        r[28..30].copy_from_slice(&2u16.to_ne_bytes());
        assert_eq!(d.decode(0, 0, &r), None);
    }

    #[test]
    fn kernel_filter_keeps_tcp_and_the_asked_port_where_the_event_has_ports() {
        let ss = Format::parse(SET_STATE_FORMAT).unwrap();
        assert_eq!(
            Decoders::kernel_filter(&ss, None).as_deref(),
            Some("protocol == 6")
        );
        assert_eq!(
            Decoders::kernel_filter(&ss, Some(80)).as_deref(),
            Some("protocol == 6 && (sport == 80 || dport == 80)")
        );
        let rst = Format::parse(SEND_RESET_FORMAT).unwrap();
        assert_eq!(Decoders::kernel_filter(&rst, Some(80)), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_records_never_panic(mut bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..120), id in 0u16..2) {
            let d = decoders();
            if bytes.len() >= 2 {
                let id = [2287u16, 2280][id as usize];
                bytes[0..2].copy_from_slice(&id.to_ne_bytes());
            }
            let _ = d.decode(0, 0, &bytes);
        }
    }
}
