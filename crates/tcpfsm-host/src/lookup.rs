//! Exact sock_diag lookups of given 4-tuples, many per system call.
//!
//! A dump walks the whole socket table; looking up one connection by its 4-tuple is a hash
//! lookup in the kernel (`inet_diag_find_one_icsk`, the request without `NLM_F_DUMP`), and
//! finds the connection whatever holds it: a full socket, a request socket, or a TIME_WAIT /
//! FIN_WAIT_2 minisock. Many requests go out in one `send` (the kernel's `netlink_rcv_skb`
//! handles every message in the datagram in turn) and each gets exactly one reply: the
//! socket's `inet_diag_msg`, or an error (`ENOENT` when no socket has the tuple).
//!
//! Used by `tcpfsm trace` to tell whether an active closer's socket became a TIME_WAIT
//! minisock, and when that minisock goes away: the tracepoint reports only the full socket's
//! end (FIN_WAIT_2 -> CLOSE).

use crate::HostError;
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr as NlAddr};
use std::net::{IpAddr, SocketAddr};
use tcpfsm_states::State;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
/// sizeof(struct inet_diag_req_v2).
const REQ_LEN: usize = 56;
/// sizeof(struct inet_diag_msg).
const MSG_LEN: usize = 72;
const AF_INET: u8 = libc::AF_INET as u8;
const AF_INET6: u8 = libc::AF_INET6 as u8;
const IPPROTO_TCP: u8 = 6;
/// `idiag_timer` of a TIME_WAIT or FIN_WAIT_2 minisock (inet_twsk_diag_fill).
const TIMER_TIMEWAIT: u8 = 3;
/// Linux's TCP_NEW_SYN_RECV (a request socket).
const TCP_NEW_SYN_RECV: u8 = 12;
/// Requests per datagram: their replies (one skb each, 1-2 KiB of buffer apiece) fit the
/// receive buffer, even the 208 KiB default when we cannot raise it.
pub const BATCH: usize = 64;
/// Receive buffer asked for.
const RCVBUF: libc::c_int = 1 << 20;

/// What the kernel holds for one 4-tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Found {
    /// The RFC state; for a minisock its sub-state (FIN_WAIT_2 or TIME_WAIT).
    pub state: State,
    /// The kernel's own state code (12 = TCP_NEW_SYN_RECV request socket).
    pub linux_state: u8,
    /// A TIME_WAIT / FIN_WAIT_2 minisock rather than a full socket.
    pub minisock: bool,
    /// Milliseconds until the socket's pending timer fires (for a minisock: until it is
    /// destroyed); 0 when no timer is pending.
    pub expires_ms: u32,
    /// The socket's cookie (`SO_COOKIE`, `idiag_cookie`): a minisock keeps the cookie of the
    /// socket it replaced, and no two sockets alive at once share one.
    pub cookie: u64,
}

impl Found {
    pub fn new(
        state: State,
        linux_state: u8,
        minisock: bool,
        expires_ms: u32,
        cookie: u64,
    ) -> Found {
        Found {
            state,
            linux_state,
            minisock,
            expires_ms,
            cookie,
        }
    }
}

/// One NETLINK_SOCK_DIAG socket for exact lookups, in the network namespace of the thread
/// that opened it.
pub struct SocketLookup {
    sock: Socket,
    req: Vec<u8>,
    buf: Vec<u8>,
    seq: u32,
    netns: Option<u64>,
}

impl SocketLookup {
    pub fn new() -> Result<SocketLookup, HostError> {
        let netlink = |what| move |source| HostError::Netlink { what, source };
        let mut sock = Socket::new(NETLINK_SOCK_DIAG).map_err(netlink("open NETLINK_SOCK_DIAG"))?;
        sock.bind_auto().map_err(netlink("bind netlink socket"))?;
        sock.connect(&NlAddr::new(0, 0))
            .map_err(netlink("connect netlink socket"))?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
        let set = |level, name, value: libc::c_int| {
            // SAFETY: a valid socket and a pointer to an int of the size given.
            unsafe {
                libc::setsockopt(
                    fd,
                    level,
                    name,
                    &value as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            }
        };
        // Error replies carry only the header of the failed request, not all of it.
        set(libc::SOL_NETLINK, libc::NETLINK_CAP_ACK, 1);
        // Each reply is its own skb, charged at its full size (about 1-2 KiB): room for a
        // batch's replies with margin (SO_RCVBUFFORCE needs CAP_NET_ADMIN; else the
        // rmem_max-capped SO_RCVBUF).
        if set(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RCVBUF) != 0 {
            set(libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF);
        }
        use std::os::unix::fs::MetadataExt;
        let netns = std::fs::metadata("/proc/thread-self/ns/net")
            .ok()
            .map(|m| m.ino());
        Ok(SocketLookup {
            sock,
            req: Vec::with_capacity(BATCH * (NLMSG_HDRLEN + REQ_LEN)),
            buf: vec![0; 64 * 1024],
            seq: 0,
            netns,
        })
    }

    /// Inode of the network namespace the lookups see (as in `net:[INODE]`).
    pub fn netns(&self) -> Option<u64> {
        self.netns
    }

    /// Looks up each (local, remote) pair, any state. The answer has one entry per pair, in
    /// order: what the kernel holds, or `None` when no socket has that tuple.
    pub fn lookup(
        &mut self,
        tuples: &[(SocketAddr, SocketAddr)],
    ) -> Result<Vec<Option<Found>>, HostError> {
        let mut out = vec![None; tuples.len()];
        for (chunk_no, chunk) in tuples.chunks(BATCH).enumerate() {
            let base = chunk_no * BATCH;
            let mut todo: Vec<usize> = (0..chunk.len())
                // Mixed families: no socket can have this tuple.
                .filter(|&i| family_of(chunk[i].0, chunk[i].1).is_some())
                .collect();
            // A reply the kernel could not queue is asked for again, once.
            for _attempt in 0..2 {
                if todo.is_empty() {
                    break;
                }
                let answers = self.ask(chunk, &todo)?;
                let mut left = Vec::new();
                for (i, a) in todo.iter().zip(answers) {
                    match a {
                        Some(found) => out[base + i] = found,
                        None => left.push(*i),
                    }
                }
                todo = left;
            }
            if !todo.is_empty() {
                return Err(HostError::Protocol(format!(
                    "{} sock_diag replies lost (netlink receive buffer full)",
                    todo.len()
                )));
            }
        }
        Ok(out)
    }

    /// Sends one datagram of requests for `chunk[i]`, `i` in `which`, and collects the
    /// replies: per request, `Some(answer)`, or `None` when its reply was dropped.
    fn ask(
        &mut self,
        chunk: &[(SocketAddr, SocketAddr)],
        which: &[usize],
    ) -> Result<Vec<Option<Option<Found>>>, HostError> {
        let first_seq = self.seq.wrapping_add(1);
        self.seq = first_seq.wrapping_add(which.len() as u32);
        self.req.clear();
        for (k, &i) in which.iter().enumerate() {
            let (local, remote) = chunk[i];
            let family = family_of(local, remote).expect("filtered by the caller");
            encode_request(
                &mut self.req,
                first_seq.wrapping_add(k as u32),
                family,
                local,
                remote,
            );
        }
        self.sock
            .send(&self.req, 0)
            .map_err(|source| HostError::Netlink {
                what: "send sock_diag lookups",
                source,
            })?;
        // The kernel runs netlink requests in the sender's context: by the time send returns,
        // every reply is queued, so reading stops at the first EAGAIN. A reply missing then
        // was dropped because the receive buffer was full (the kernel also flags ENOBUFS).
        let mut answers: Vec<Option<Option<Found>>> = vec![None; which.len()];
        let mut pending = which.len();
        while pending > 0 {
            let n = match self.sock.recv(&mut &mut self.buf[..], libc::MSG_DONTWAIT) {
                Ok(0) => return Err(HostError::Protocol("netlink socket closed".into())),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(HostError::Netlink {
                        what: "receive sock_diag lookups",
                        source,
                    })
                }
            };
            for (seq, reply) in parse_replies(&self.buf[..n])? {
                let k = seq.wrapping_sub(first_seq) as usize;
                // A reply to an earlier, abandoned request is not ours.
                if k < answers.len() && answers[k].is_none() {
                    answers[k] = Some(reply?);
                    pending -= 1;
                }
            }
        }
        Ok(answers)
    }
}

/// The address family both ends share (an IPv4-mapped IPv6 pair is looked up as IPv6; the
/// kernel then searches the IPv4 table, as for a dual-stack socket).
fn family_of(local: SocketAddr, remote: SocketAddr) -> Option<u8> {
    match (local.ip(), remote.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => Some(AF_INET),
        (IpAddr::V6(_), IpAddr::V6(_)) => Some(AF_INET6),
        _ => None,
    }
}

/// Appends one `SOCK_DIAG_BY_FAMILY` request (`nlmsghdr` + `inet_diag_req_v2`) for an exact
/// lookup: all states, no extensions, any interface, no cookie check.
pub fn encode_request(
    out: &mut Vec<u8>,
    seq: u32,
    family: u8,
    local: SocketAddr,
    remote: SocketAddr,
) {
    let len = NLMSG_HDRLEN + REQ_LEN;
    let start = out.len();
    out.resize(start + len, 0);
    let r = &mut out[start..];
    r[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
    r[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    r[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    r[8..12].copy_from_slice(&seq.to_ne_bytes());
    let p = &mut r[NLMSG_HDRLEN..];
    p[0] = family;
    p[1] = IPPROTO_TCP;
    // idiag_ext 0, pad 0; idiag_states: every state (an exact lookup ignores it).
    p[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
    // inet_diag_sockid: sport, dport (big-endian), src[16], dst[16], if, cookie[2].
    p[8..10].copy_from_slice(&local.port().to_be_bytes());
    p[10..12].copy_from_slice(&remote.port().to_be_bytes());
    put_addr(&mut p[12..28], local.ip());
    put_addr(&mut p[28..44], remote.ip());
    // INET_DIAG_NOCOOKIE: both words all ones, so the kernel skips the cookie check.
    p[48..56].fill(0xff);
}

fn put_addr(dst: &mut [u8], ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => dst[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => dst.copy_from_slice(&a.octets()),
    }
}

/// One reply per request: the sequence number and what it says (`Ok(None)` for "no such
/// socket"). Malformed input is an error, never a panic.
pub type Reply = (u32, Result<Option<Found>, HostError>);

/// Walks the netlink messages of one received datagram of lookup replies.
pub fn parse_replies(buf: &[u8]) -> Result<Vec<Reply>, HostError> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + NLMSG_HDRLEN <= buf.len() {
        let b = &buf[off..];
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let ty = u16::from_ne_bytes([b[4], b[5]]);
        let seq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
        if len < NLMSG_HDRLEN || len > b.len() {
            return Err(HostError::Protocol(format!(
                "netlink message length {len} out of bounds ({} bytes left)",
                b.len()
            )));
        }
        match ty {
            NLMSG_ERROR => {
                let errno = if len >= NLMSG_HDRLEN + 4 {
                    i32::from_ne_bytes([b[16], b[17], b[18], b[19]])
                } else {
                    0
                };
                let r = match errno.checked_neg() {
                    // No socket has the tuple (ENOENT), or the kernel cannot look up this
                    // family (EINVAL for a family without a handler): either way, nothing.
                    Some(libc::ENOENT) | Some(libc::EINVAL) | Some(0) => Ok(None),
                    e => Err(HostError::Netlink {
                        what: "sock_diag lookup",
                        source: std::io::Error::from_raw_os_error(e.unwrap_or(libc::EIO)),
                    }),
                };
                out.push((seq, r));
            }
            SOCK_DIAG_BY_FAMILY => out.push((seq, Ok(parse_found(&b[NLMSG_HDRLEN..len])))),
            _ => {}
        }
        off += (len + 3) & !3;
    }
    Ok(out)
}

/// The parts of an `inet_diag_msg` a lookup needs: state (1), timer (2), cookie (44..52),
/// expires (52..56).
fn parse_found(p: &[u8]) -> Option<Found> {
    if p.len() < MSG_LEN {
        return None;
    }
    let ne32 = |o: usize| u32::from_ne_bytes([p[o], p[o + 1], p[o + 2], p[o + 3]]);
    let linux_state = p[1];
    let state = State::from_linux_code(if linux_state == TCP_NEW_SYN_RECV {
        State::SynReceived.linux_code()
    } else {
        linux_state
    })?;
    // The cookie is two host-order u32, low word first (sock_diag_save_cookie).
    let cookie = ne32(44) as u64 | (ne32(48) as u64) << 32;
    Some(Found {
        state,
        linux_state,
        minisock: p[2] == TIMER_TIMEWAIT,
        expires_ms: ne32(52),
        cookie,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
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
    fn request_is_an_exact_lookup_of_the_tuple_without_cookie_check() {
        let mut v = Vec::new();
        encode_request(&mut v, 9, AF_INET, sa("10.0.0.1:40000"), sa("10.0.0.2:80"));
        assert_eq!(v.len(), 72);
        assert_eq!(
            u16::from_ne_bytes([v[6], v[7]]),
            NLM_F_REQUEST,
            "no NLM_F_DUMP"
        );
        let p = &v[16..];
        assert_eq!((p[0], p[1]), (AF_INET, 6));
        assert_eq!(&p[8..12], &[0x9c, 0x40, 0, 80]);
        assert_eq!(&p[12..16], &[10, 0, 0, 1]);
        assert_eq!(&p[28..32], &[10, 0, 0, 2]);
        assert_eq!(&p[48..56], &[0xff; 8]);
        encode_request(&mut v, 10, AF_INET6, sa("[::1]:1"), sa("[::1]:2"));
        assert_eq!(v.len(), 144);
        assert_eq!(v[72 + 16 + 12 + 15], 1);
    }

    #[test]
    fn replies_are_matched_by_sequence_and_enoent_means_no_socket() {
        let mut msg = [0u8; 72];
        msg[0] = AF_INET;
        msg[1] = 6; // TCP_TIME_WAIT
        msg[2] = TIMER_TIMEWAIT;
        msg[44..48].copy_from_slice(&7u32.to_ne_bytes());
        msg[48..52].copy_from_slice(&1u32.to_ne_bytes());
        msg[52..56].copy_from_slice(&59_000u32.to_ne_bytes());
        let mut buf = nlmsg(SOCK_DIAG_BY_FAMILY, 5, &msg);
        buf.extend(nlmsg(NLMSG_ERROR, 6, &(-libc::ENOENT).to_ne_bytes()));
        buf.extend(nlmsg(NLMSG_ERROR, 7, &(-libc::EPERM).to_ne_bytes()));
        let r = parse_replies(&buf).unwrap();
        assert_eq!(r.len(), 3);
        let found = r[0].1.as_ref().unwrap().unwrap();
        assert_eq!(r[0].0, 5);
        assert_eq!(found.state, State::TimeWait);
        assert!(found.minisock);
        assert_eq!(found.expires_ms, 59_000);
        assert_eq!(found.cookie, 1 << 32 | 7);
        assert!(matches!(r[1], (6, Ok(None))));
        assert!(matches!(r[2], (7, Err(_))));
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        let mut long = nlmsg(SOCK_DIAG_BY_FAMILY, 1, &[0u8; 72]);
        long[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(parse_replies(&long).is_err());
        let weird = nlmsg(NLMSG_ERROR, 1, &i32::MIN.to_ne_bytes());
        assert!(matches!(parse_replies(&weird).unwrap()[0], (1, Err(_))));
        // Too short to be an inet_diag_msg: no socket, not a crash.
        let short = nlmsg(SOCK_DIAG_BY_FAMILY, 2, &[0u8; 40]);
        assert!(matches!(parse_replies(&short).unwrap()[0], (2, Ok(None))));
        assert!(parse_replies(&[1, 2, 3]).unwrap().is_empty());
    }

    #[test]
    fn own_listener_is_found_and_a_free_tuple_is_not() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        let mut lk = SocketLookup::new().unwrap();
        let mine = (c.local_addr().unwrap(), c.peer_addr().unwrap());
        let theirs = (s.local_addr().unwrap(), s.peer_addr().unwrap());
        let nobody = (sa("127.0.0.1:1"), sa("127.0.0.1:2"));
        let r = lk
            .lookup(&[mine, nobody, theirs, (sa("127.0.0.1:3"), sa("[::1]:4"))])
            .unwrap();
        assert_eq!(r[0].unwrap().state, State::Established);
        assert!(!r[0].unwrap().minisock);
        assert_eq!(r[1], None);
        assert_eq!(r[2].unwrap().state, State::Established);
        assert_ne!(r[0].unwrap().cookie, r[2].unwrap().cookie);
        assert_eq!(r[3], None);
    }
}
