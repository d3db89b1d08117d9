//! The kernel's socket table through netlink sock_diag, the way `ss` reads it.
//!
//! One [`SockDiag`] owns one NETLINK_SOCK_DIAG socket and one receive buffer, reused for every
//! dump. Requests carry the wanted states as the kernel-side bitmask (`idiag_states`), so the
//! kernel skips other sockets itself, and ask for no INET_DIAG extensions: counting needs only
//! the fixed `inet_diag_msg` header, never `tcp_info`.
//!
//! Requests are built with `netlink-packet-sock-diag`'s typed `InetRequest`. Replies are read by
//! hand ([`parse_inet_diag_msg`]): the crate's typed parse boxes every `InetResponse` and decodes
//! its attributes, one heap allocation per socket, which at 100,000 sockets costs more than the
//! kernel's own work. The hand parser reads the fixed 72-byte header in place; a unit test checks
//! it against the crate's parse of the same bytes.

use crate::sockinfo::{Extensions, Extras, SocketTimer};
use crate::HostError;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::{
    inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
    SockDiagMessage, AF_INET, AF_INET6, IPPROTO_TCP,
};
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr as NlAddr};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tcpfsm_states::{Census, State};

/// Linux's TCP_NEW_SYN_RECV: a request socket (half-open, SYN_RECEIVED) since Linux 4.4.
const TCP_NEW_SYN_RECV: u8 = 12;
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// The original inet_diag request type (linux/inet_diag.h), still served by the kernel.
const TCPDIAG_GETSOCK: u16 = 18;
/// sizeof(struct inet_diag_msg).
const INET_DIAG_MSG_LEN: usize = 72;
/// The kernel caps one dump skb at 32 KiB (SKB_WITH_OVERHEAD(32768)); a bit more avoids MSG_TRUNC.
const RECV_BUF_LEN: usize = 64 * 1024;

/// A set of RFC states, as a bitmask over [`State::index`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct StateSet(u16);

impl StateSet {
    pub const EMPTY: StateSet = StateSet(0);
    pub const ALL: StateSet = StateSet((1 << 11) - 1);

    pub fn of(states: &[State]) -> StateSet {
        states.iter().fold(StateSet::EMPTY, |s, st| s.with(*st))
    }
    pub fn with(self, s: State) -> StateSet {
        StateSet(self.0 | 1 << s.index())
    }
    pub fn contains(self, s: State) -> bool {
        self.0 & (1 << s.index()) != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = State> {
        State::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// The kernel's `idiag_states` bitmask (bit = Linux state code). SYN_RECEIVED also selects
    /// TCP_NEW_SYN_RECV request sockets, which is where half-open connections live since 4.4.
    pub fn kernel_mask(self) -> u32 {
        let mut m = 0u32;
        for s in self.iter() {
            m |= 1 << s.linux_code();
            if s == State::SynReceived {
                m |= 1 << TCP_NEW_SYN_RECV;
            }
        }
        m
    }
}

impl FromIterator<State> for StateSet {
    fn from_iter<I: IntoIterator<Item = State>>(iter: I) -> StateSet {
        iter.into_iter().fold(StateSet::EMPTY, |s, st| s.with(st))
    }
}

/// Which address families to dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Family {
    V4,
    V6,
    /// Both (IPv4-mapped sockets on dual-stack listeners are reported once, as IPv6).
    #[default]
    Both,
}

impl Family {
    fn afs(self) -> &'static [u8] {
        match self {
            Family::V4 => &[AF_INET],
            Family::V6 => &[AF_INET6],
            Family::Both => &[AF_INET, AF_INET6],
        }
    }
}

/// What to select from the socket table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// States to ask the kernel for.
    pub states: StateSet,
    /// Keep only sockets whose local or remote port is this.
    pub port: Option<u16>,
    pub family: Family,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            states: StateSet::ALL,
            port: None,
            family: Family::Both,
        }
    }
}

impl Filter {
    pub fn states(states: StateSet) -> Filter {
        Filter {
            states,
            ..Filter::default()
        }
    }
}

/// One TCP socket, as `ss -tan` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SocketRow {
    pub state: State,
    /// The kernel's own state code (12 = TCP_NEW_SYN_RECV request socket, shown as SYN_RECEIVED).
    pub linux_state: u8,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Bytes not yet read by the application; for LISTEN: connections waiting in the accept queue.
    pub rx_queue: u32,
    /// Bytes not yet acknowledged by the peer; for LISTEN: the backlog (max accept queue).
    pub tx_queue: u32,
    /// The socket's inode (the `socket:[N]` in `/proc/<pid>/fd`); 0 when no file holds it
    /// (TIME_WAIT, request sockets, orphans).
    pub inode: u64,
    pub uid: u32,
    /// The pending timer (retransmit, keepalive, TIME_WAIT, persist), if any.
    pub timer: Option<SocketTimer>,
}

/// The fixed part of one `inet_diag_msg`, read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawDiagMsg {
    pub family: u8,
    pub state: u8,
    pub timer: u8,
    pub retrans: u8,
    pub sport: u16,
    pub dport: u16,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Milliseconds until `timer` fires.
    pub expires: u32,
    pub rqueue: u32,
    pub wqueue: u32,
    pub uid: u32,
    pub inode: u32,
}

/// Reads an `inet_diag_msg` (the payload after the nlmsghdr). Layout (linux/inet_diag.h):
/// `family u8, state u8, timer u8, retrans u8, sockid { sport be16, dport be16, src be32[4],
/// dst be32[4], if u32, cookie u32[2] }, expires u32, rqueue u32, wqueue u32, uid u32, inode u32`.
pub fn parse_inet_diag_msg(p: &[u8]) -> Option<RawDiagMsg> {
    if p.len() < INET_DIAG_MSG_LEN {
        return None;
    }
    let ne32 = |o: usize| u32::from_ne_bytes([p[o], p[o + 1], p[o + 2], p[o + 3]]);
    let addr = |o: usize, fam: u8| -> Option<IpAddr> {
        if fam == AF_INET {
            Some(IpAddr::V4(Ipv4Addr::new(
                p[o],
                p[o + 1],
                p[o + 2],
                p[o + 3],
            )))
        } else if fam == AF_INET6 {
            let mut b = [0u8; 16];
            b.copy_from_slice(&p[o..o + 16]);
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        } else {
            None
        }
    };
    let family = p[0];
    Some(RawDiagMsg {
        family,
        state: p[1],
        timer: p[2],
        retrans: p[3],
        sport: u16::from_be_bytes([p[4], p[5]]),
        dport: u16::from_be_bytes([p[6], p[7]]),
        src: addr(8, family)?,
        dst: addr(24, family)?,
        expires: ne32(52),
        rqueue: ne32(56),
        wqueue: ne32(60),
        uid: ne32(64),
        inode: ne32(68),
    })
}

impl RawDiagMsg {
    pub fn row(&self) -> Option<SocketRow> {
        Some(SocketRow {
            state: State::from_linux_code(self.state)?,
            linux_state: self.state,
            local: SocketAddr::new(self.src, self.sport),
            remote: SocketAddr::new(self.dst, self.dport),
            rx_queue: self.rqueue,
            tx_queue: self.wqueue,
            inode: self.inode as u64,
            uid: self.uid,
            timer: SocketTimer::from_header(self.timer, self.expires, self.retrans),
        })
    }
}

/// A reusable sock_diag reader for the network namespace it was created in.
pub struct SockDiag {
    sock: Socket,
    buf: Vec<u8>,
    req: Vec<u8>,
    seq: u32,
    /// Inode of the network namespace the socket was opened in.
    netns: Option<u64>,
    /// The kernel accepts the legacy both-families request.
    compat_ok: bool,
    /// `idiag_ext` of the next request (set only for the duration of a for_each_ext dump).
    ext: u8,
}

fn census_of(counts: &[u64; 11]) -> Census {
    let mut c = Census::new();
    for s in State::ALL {
        c.set(s, counts[s.index()]);
    }
    c
}

/// The calling thread's network namespace (inode of /proc/thread-self/ns/net).
fn current_netns() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net")
        .ok()
        .map(|m| m.ino())
}

/// The kernel's TIME_WAIT minisock count for the calling thread's namespace.
fn read_sockstat_tw() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/net/sockstat").ok()?;
    let tw = crate::counters::parse_sockstat(&text, "TCP")
        .get("tw")
        .copied()?;
    u64::try_from(tw).ok()
}

impl SockDiag {
    /// Opens the netlink socket (in the calling thread's network namespace).
    pub fn new() -> Result<SockDiag, HostError> {
        let mut sock = Socket::new(NETLINK_SOCK_DIAG).map_err(|e| HostError::Netlink {
            what: "open NETLINK_SOCK_DIAG socket",
            source: e,
        })?;
        sock.bind_auto().map_err(|e| HostError::Netlink {
            what: "bind netlink socket",
            source: e,
        })?;
        sock.connect(&NlAddr::new(0, 0))
            .map_err(|e| HostError::Netlink {
                what: "connect netlink socket to the kernel",
                source: e,
            })?;
        Ok(SockDiag {
            sock,
            buf: vec![0; RECV_BUF_LEN],
            req: Vec::with_capacity(128),
            seq: 0,
            netns: current_netns(),
            compat_ok: true,
            ext: 0,
        })
    }

    /// Counts sockets by state: the fast path. Only the header's state byte (and ports, when
    /// filtering by port) is read per socket.
    ///
    /// TIME_WAIT, usually the bulk of a busy host's sockets, is not dumped one by one: the kernel
    /// keeps an exact per-namespace count of its TIME_WAIT minisocks (the `tw` of
    /// /proc/net/sockstat, which `ss -s` shows). That count also includes orphaned FIN_WAIT_2
    /// sockets, which Linux parks as minisocks too (`tw_substate` FIN_WAIT2, reported by
    /// sock_diag with timer code 3); they are dumped (FIN_WAIT_2 is always requested) and
    /// subtracted. Used when no port filter is set, both families are wanted, and this thread is
    /// in the namespace the netlink socket was opened in; otherwise [`SockDiag::census_exact`].
    pub fn census(&mut self, filter: &Filter) -> Result<Census, HostError> {
        if filter.port.is_none()
            && filter.family == Family::Both
            && filter.states.contains(State::TimeWait)
            && current_netns() == self.netns
        {
            if let Some(c) = self.census_tw_counter(filter) {
                return Ok(c);
            }
        }
        self.census_exact(filter)
    }

    /// Counts sockets by state, dumping every selected socket (TIME_WAIT included).
    pub fn census_exact(&mut self, filter: &Filter) -> Result<Census, HostError> {
        let mut counts = [0u64; 11];
        let port = filter.port;
        self.dump(filter.states.kernel_mask(), filter.family, |p| {
            // Offsets from parse_inet_diag_msg's layout: state at 1, sport at 4, dport at 6.
            if let Some(pt) = port {
                let sp = u16::from_be_bytes([p[4], p[5]]);
                let dp = u16::from_be_bytes([p[6], p[7]]);
                if sp != pt && dp != pt {
                    return;
                }
            }
            if let Some(s) = State::from_linux_code(p[1]) {
                counts[s.index()] += 1;
            }
        })?;
        Ok(census_of(&counts))
    }

    fn census_tw_counter(&mut self, filter: &Filter) -> Option<Census> {
        let without_tw: StateSet = filter
            .states
            .iter()
            .filter(|s| *s != State::TimeWait)
            .collect();
        let mask = without_tw.kernel_mask() | 1 << State::FinWait2.linux_code();
        let mut counts = [0u64; 11];
        let mut fw2_minisocks = 0u64;
        let states = filter.states;
        self.dump(mask, Family::Both, |p| {
            let Some(s) = State::from_linux_code(p[1]) else {
                return;
            };
            // idiag_timer (byte 2) is 3 only for timewait minisocks.
            if s == State::FinWait2 && p[2] == 3 {
                fw2_minisocks += 1;
            }
            if states.contains(s) {
                counts[s.index()] += 1;
            }
        })
        .ok()?;
        let tw = read_sockstat_tw()?;
        counts[State::TimeWait.index()] = tw.saturating_sub(fw2_minisocks);
        Some(census_of(&counts))
    }

    /// Calls `f` for each selected socket, without collecting them.
    pub fn for_each(
        &mut self,
        filter: &Filter,
        mut f: impl FnMut(&SocketRow),
    ) -> Result<(), HostError> {
        let port = filter.port;
        self.dump(filter.states.kernel_mask(), filter.family, |p| {
            if let Some(row) = parse_inet_diag_msg(p).and_then(|m| m.row()) {
                if port.is_none_or(|pt| row.local.port() == pt || row.remote.port() == pt) {
                    f(&row);
                }
            }
        })
    }

    /// [`SockDiag::for_each`] with INET_DIAG extensions: `f` also gets the `tcp_info`,
    /// congestion control and socket memory the kernel attached. Minisockets (TIME_WAIT,
    /// request sockets) carry none. Ask only for what is shown: each extension is kernel work
    /// and reply bytes per socket.
    pub fn for_each_ext(
        &mut self,
        filter: &Filter,
        ext: Extensions,
        mut f: impl FnMut(&SocketRow, &Extras<'_>),
    ) -> Result<(), HostError> {
        let port = filter.port;
        self.ext = ext.mask();
        let r = self.dump(filter.states.kernel_mask(), filter.family, |p| {
            if let Some(row) = parse_inet_diag_msg(p).and_then(|m| m.row()) {
                if port.is_none_or(|pt| row.local.port() == pt || row.remote.port() == pt) {
                    f(&row, &Extras::parse(&p[INET_DIAG_MSG_LEN..]));
                }
            }
        });
        self.ext = 0;
        r
    }

    /// The selected sockets as rows.
    pub fn sockets(&mut self, filter: &Filter) -> Result<Vec<SocketRow>, HostError> {
        let mut v = Vec::new();
        self.for_each(filter, |r| v.push(*r))?;
        Ok(v)
    }

    /// Every LISTEN socket; for these, `rx_queue` is the accept queue length and `tx_queue` the
    /// backlog.
    pub fn listeners(&mut self) -> Result<Vec<SocketRow>, HostError> {
        self.sockets(&Filter::states(StateSet::of(&[State::Listen])))
    }

    fn build_request(&mut self, family: u8, states: u32) {
        let mut hdr = NetlinkHeader::default();
        hdr.flags = NLM_F_REQUEST | NLM_F_DUMP;
        hdr.sequence_number = self.seq;
        let socket_id = if family == AF_INET {
            SocketId::new_v4()
        } else {
            SocketId::new_v6()
        };
        let mut msg = NetlinkMessage::new(
            hdr,
            NetlinkPayload::from(SockDiagMessage::InetRequest(InetRequest {
                family,
                protocol: IPPROTO_TCP,
                // Only what for_each_ext asked for: counting and listing need none.
                extensions: ExtensionFlags::from_bits_retain(self.ext),
                states: StateFlags::from_bits_retain(states),
                socket_id,
            })),
        );
        msg.finalize();
        self.req.clear();
        self.req.resize(msg.buffer_len(), 0);
        msg.serialize(&mut self.req);
    }

    /// The legacy TCPDIAG_GETSOCK request (`struct inet_diag_req`, 60 bytes), which the kernel
    /// runs with family AF_UNSPEC: one walk of the established hash returns IPv4 and IPv6
    /// together. The typed crate only builds SOCK_DIAG_BY_FAMILY requests, which must name one
    /// family, so a both-families dump would walk every socket twice — the second walk touching
    /// each IPv4 socket (a cache miss apiece) only to skip it. That second walk is about half of
    /// the whole cost at 100,000 sockets (ss pays it too).
    fn build_compat_request(&mut self, states: u32) {
        let len = NLMSG_HDRLEN + 60;
        self.req.clear();
        self.req.resize(len, 0);
        let r = &mut self.req;
        r[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
        r[4..6].copy_from_slice(&TCPDIAG_GETSOCK.to_ne_bytes());
        r[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        r[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        // Payload: family, src_len, dst_len (0), ext (what for_each_ext asked for; 0 otherwise),
        // sockid (48 zero bytes: wildcard), idiag_states, idiag_dbs.
        let p = NLMSG_HDRLEN;
        r[p + 3] = self.ext;
        r[p + 52..p + 56].copy_from_slice(&states.to_ne_bytes());
    }

    /// Runs the dump(s) for `family`, calling `f` with each inet_diag_msg payload (at least 72
    /// bytes). Both families go through one legacy request when the kernel accepts it.
    fn dump(
        &mut self,
        mask: u32,
        family: Family,
        mut f: impl FnMut(&[u8]),
    ) -> Result<(), HostError> {
        if mask == 0 {
            return Ok(());
        }
        if family == Family::Both && self.compat_ok {
            self.seq = self.seq.wrapping_add(1);
            self.build_compat_request(mask);
            match self.run_dump(&mut f) {
                Ok(()) => return Ok(()),
                // A kernel without the legacy interface refuses it before sending anything.
                Err(HostError::Netlink {
                    what: "sock_diag dump",
                    ..
                }) => self.compat_ok = false,
                Err(e) => return Err(e),
            }
        }
        for &af in family.afs() {
            self.seq = self.seq.wrapping_add(1);
            self.build_request(af, mask);
            self.run_dump(&mut f)?;
        }
        Ok(())
    }

    /// Sends the request in `self.req` and reads the dump to its end.
    fn run_dump(&mut self, f: &mut impl FnMut(&[u8])) -> Result<(), HostError> {
        self.sock
            .send(&self.req, 0)
            .map_err(|e| HostError::Netlink {
                what: "send sock_diag request",
                source: e,
            })?;
        loop {
            let n = self
                .sock
                .recv(&mut &mut self.buf[..], 0)
                .map_err(|e| HostError::Netlink {
                    what: "receive sock_diag reply",
                    source: e,
                })?;
            if n == 0 {
                return Err(HostError::Protocol(
                    "netlink socket closed during dump".into(),
                ));
            }
            if parse_batch(&self.buf[..n], self.seq, f)? {
                return Ok(());
            }
        }
    }
}

/// Walks the netlink messages of one received datagram, calling `f` with each inet_diag_msg
/// payload of the dump numbered `seq`. Returns true when the dump's end (NLMSG_DONE) was seen.
/// Malformed input is an error, never a panic.
pub fn parse_batch(buf: &[u8], seq: u32, f: &mut impl FnMut(&[u8])) -> Result<bool, HostError> {
    let mut off = 0;
    while off + NLMSG_HDRLEN <= buf.len() {
        let b = &buf[off..];
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let ty = u16::from_ne_bytes([b[4], b[5]]);
        let msg_seq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
        if len < NLMSG_HDRLEN || len > b.len() {
            return Err(HostError::Protocol(format!(
                "netlink message length {len} out of bounds ({} bytes left)",
                b.len()
            )));
        }
        // Messages of another (earlier, abandoned) dump are skipped.
        if msg_seq == seq {
            match ty {
                NLMSG_DONE => return Ok(true),
                NLMSG_ERROR => {
                    let errno = if len >= NLMSG_HDRLEN + 4 {
                        i32::from_ne_bytes([b[16], b[17], b[18], b[19]])
                    } else {
                        0
                    };
                    if errno == 0 {
                        return Ok(true);
                    }
                    return Err(HostError::Netlink {
                        what: "sock_diag dump",
                        source: std::io::Error::from_raw_os_error(errno.wrapping_neg()),
                    });
                }
                SOCK_DIAG_BY_FAMILY | TCPDIAG_GETSOCK
                    if len >= NLMSG_HDRLEN + INET_DIAG_MSG_LEN =>
                {
                    f(&b[NLMSG_HDRLEN..len]);
                }
                _ => {}
            }
        }
        // NLMSG_ALIGN(len)
        off += (len + 3) & !3;
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, Parseable};
    use netlink_packet_sock_diag::inet::{InetResponse, InetResponseHeader};

    #[test]
    fn hand_parser_agrees_with_the_crate_parser() {
        for (src, dst) in [
            ("10.1.2.3:443", "10.9.8.7:55000"),
            ("[2001:db8::1]:80", "[2001:db8::2]:1234"),
        ] {
            let src: SocketAddr = src.parse().unwrap();
            let dst: SocketAddr = dst.parse().unwrap();
            let resp = InetResponse {
                header: InetResponseHeader {
                    family: if src.is_ipv4() { AF_INET } else { AF_INET6 },
                    state: 8,
                    timer: Some(netlink_packet_sock_diag::inet::Timer::Retransmit(
                        std::time::Duration::from_millis(1234),
                        3,
                    )),
                    socket_id: SocketId {
                        source_port: src.port(),
                        destination_port: dst.port(),
                        source_address: src.ip(),
                        destination_address: dst.ip(),
                        interface_id: 0,
                        cookie: [0; 8],
                    },
                    recv_queue: 17,
                    send_queue: 4096,
                    uid: 1000,
                    inode: 0xdead_beef,
                },
                nlas: Default::default(),
            };
            let mut buf = vec![0u8; resp.buffer_len()];
            resp.emit(&mut buf);
            let typed = InetResponse::parse(&buf[..]).unwrap();
            let raw = parse_inet_diag_msg(&buf).unwrap();
            assert_eq!(raw.state, typed.header.state);
            assert_eq!(raw.sport, typed.header.socket_id.source_port);
            assert_eq!(raw.dport, typed.header.socket_id.destination_port);
            assert_eq!(raw.src, typed.header.socket_id.source_address);
            assert_eq!(raw.dst, typed.header.socket_id.destination_address);
            assert_eq!(raw.rqueue, typed.header.recv_queue);
            assert_eq!(raw.wqueue, typed.header.send_queue);
            assert_eq!(raw.uid, typed.header.uid);
            assert_eq!(raw.inode, typed.header.inode);
            let row = raw.row().unwrap();
            assert_eq!(
                row.timer,
                SocketTimer::from_header(1, 1234, 3),
                "timer, expires and retrans at the crate's offsets"
            );
            assert_eq!(row.state, State::CloseWait);
            assert_eq!(row.local, src);
            assert_eq!(row.remote, dst);
        }
    }

    fn nlmsg(ty: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDRLEN + payload.len();
        let mut v = Vec::new();
        v.extend_from_slice(&(len as u32).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&0u16.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn batch_delivers_messages_of_this_dump_until_done() {
        let mut msg = [0u8; 72];
        msg[0] = AF_INET;
        msg[1] = 6;
        let mut buf = nlmsg(SOCK_DIAG_BY_FAMILY, 7, &msg);
        buf.extend(nlmsg(TCPDIAG_GETSOCK, 7, &msg));
        buf.extend(nlmsg(SOCK_DIAG_BY_FAMILY, 6, &msg)); // an older dump's leftover
        buf.extend(nlmsg(SOCK_DIAG_BY_FAMILY, 7, &msg[..40])); // too short to be one
        let mut n = 0;
        assert!(!parse_batch(&buf, 7, &mut |_| n += 1).unwrap());
        assert_eq!(n, 2);
        buf.extend(nlmsg(NLMSG_DONE, 7, &0i32.to_ne_bytes()));
        assert!(parse_batch(&buf, 7, &mut |_| {}).unwrap());
    }

    #[test]
    fn batch_reports_kernel_errors_and_rejects_bad_lengths() {
        let err = nlmsg(NLMSG_ERROR, 1, &(-libc::EINVAL).to_ne_bytes());
        match parse_batch(&err, 1, &mut |_| {}) {
            Err(HostError::Netlink { source, .. }) => {
                assert_eq!(source.raw_os_error(), Some(libc::EINVAL))
            }
            other => panic!("{other:?}"),
        }
        // errno i32::MIN must not overflow.
        let weird = nlmsg(NLMSG_ERROR, 1, &i32::MIN.to_ne_bytes());
        assert!(parse_batch(&weird, 1, &mut |_| {}).is_err());
        // An ACK (errno 0) ends the exchange.
        let ack = nlmsg(NLMSG_ERROR, 1, &0i32.to_ne_bytes());
        assert!(parse_batch(&ack, 1, &mut |_| {}).unwrap());
        // Length field larger than the datagram, or smaller than a header.
        let mut long = nlmsg(SOCK_DIAG_BY_FAMILY, 1, &[0u8; 72]);
        long[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(matches!(
            parse_batch(&long, 1, &mut |_| {}),
            Err(HostError::Protocol(_))
        ));
        let mut short = nlmsg(SOCK_DIAG_BY_FAMILY, 1, &[0u8; 72]);
        short[0..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(parse_batch(&short, 1, &mut |_| {}).is_err());
        // Trailing bytes shorter than a header are ignored, not read past.
        assert!(!parse_batch(&[1, 2, 3], 1, &mut |_| {}).unwrap());
    }

    #[test]
    fn hand_parser_rejects_short_and_unknown_family() {
        assert!(parse_inet_diag_msg(&[0u8; 71]).is_none());
        let mut b = [0u8; 72];
        b[0] = 99;
        assert!(parse_inet_diag_msg(&b).is_none());
    }

    #[test]
    fn syn_received_selects_new_syn_recv_request_sockets() {
        let m = StateSet::of(&[State::SynReceived]).kernel_mask();
        assert_eq!(m, 1 << 3 | 1 << 12);
        let all = StateSet::ALL.kernel_mask();
        for s in State::ALL {
            assert_ne!(all & (1 << s.linux_code()), 0, "{s}");
        }
    }

    #[test]
    fn state_set_round_trips() {
        let s: StateSet = [State::TimeWait, State::CloseWait].into_iter().collect();
        assert!(s.contains(State::TimeWait) && !s.contains(State::Listen));
        assert_eq!(s.iter().count(), 2);
        assert_eq!(StateSet::ALL.iter().count(), 11);
    }
}
