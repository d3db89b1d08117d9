//! The `linux` stack: the host kernel's TCP, the way packetdrill tests it.
//!
//! Each script gets a private network namespace (tcpfsm-tun's [`NetNs`]) holding a TUN
//! device `tun0` with the run's local address, and a route to the script's remote address
//! through it. Real kernel sockets are made with libc inside the namespace; the script's
//! inbound packets are written to the TUN, and what the kernel sends to the remote address is
//! read from it. Settings are written to `/proc/sys` from inside the namespace, so they change
//! only its `net.*` values (the kernel offers only per-namespace keys there). The clock is the
//! wall clock.
//!
//! All descriptors are non-blocking; the runner provides blocking semantics.

use super::netharness::{self, Wire};
use super::{
    Applied, Fd, Micros, Net, OptVal, Sent, SockOpt, Stack, StateCount, SysErr, SysResult,
};
use crate::outcome::Outcome;
use crate::runner::RunOptions;
use crate::script::Script;
use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::Path;
use std::process::Command;
use tcpfsm_core::State;
use tcpfsm_host::Filter;
use tcpfsm_tun::TunAddrs;

/// `TCP_CLOSE` of include/net/tcp_states.h, as `tcpi_state` reports it.
const TCP_CLOSE: u8 = 7;

/// Runs `script` on the kernel in a fresh namespace (needs root).
pub fn run(script: &Script, dir: &Path, net: Net, opts: &RunOptions) -> Outcome {
    netharness::in_namespace("linux", || match LinuxStack::new(net) {
        Ok(st) => crate::runner::run(st, script, dir, opts),
        Err(e) => crate::broken(format!("setting up the TUN device: {e}")),
    })
}

/// The kernel behind a TUN device; must be created and used on a thread inside the
/// namespace.
pub struct LinuxStack {
    wire: Wire,
    open: BTreeSet<Fd>,
}

fn last_errno() -> SysErr {
    SysErr::Errno(
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

fn check(r: libc::c_int) -> SysResult<libc::c_int> {
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r)
    }
}

/// A `sockaddr_storage` for `addr`, and its length.
fn to_sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large enough and suitably aligned for sockaddr_in.
            let sin = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn from_sockaddr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                0,
                0,
            )))
        }
        _ => None,
    }
}

impl LinuxStack {
    /// Opens and configures `tun0` in the calling thread's namespace: the run's local
    /// addresses on it (both families) and host routes to the remote ones through it.
    pub fn new(net: Net) -> io::Result<LinuxStack> {
        let (local4, remote4) = match (net.local, net.remote) {
            (IpAddr::V4(l), IpAddr::V4(r)) => (l, r),
            _ => (crate::config::V4_LOCAL, crate::config::V4_REMOTE),
        };
        let (local6, remote6) = match (net.local, net.remote) {
            (IpAddr::V6(l), IpAddr::V6(r)) => (l, r),
            _ => (crate::config::V6_LOCAL, crate::config::V6_REMOTE),
        };
        let addrs = TunAddrs {
            host_v4: Some(local4),
            stack_v4: None,
            prefix_v4: 16,
            host_v6: Some(local6),
            stack_v6: None,
            prefix_v6: 48,
        };
        let mut wire = Wire::open("tun0", net.mtu, &addrs, &[remote4.into(), remote6.into()])?;
        wire.wait_answering(local4.into(), remote4.into())?;
        wire.wait_answering(local6.into(), remote6.into())?;
        wire.restart_clock();
        Ok(LinuxStack {
            wire,
            open: BTreeSet::new(),
        })
    }

    fn fd_ok(&self, fd: Fd) -> SysResult<()> {
        if self.open.contains(&fd) {
            Ok(())
        } else {
            Err(SysErr::Errno(libc::EBADF))
        }
    }

    fn set_int(&self, fd: Fd, level: i32, name: i32, v: i32) -> SysResult<()> {
        // SAFETY: a valid pointer to an int and its size.
        check(unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                &v as *const i32 as *const libc::c_void,
                size_of::<i32>() as libc::socklen_t,
            )
        })?;
        Ok(())
    }

    fn get_int(&self, fd: Fd, level: i32, name: i32) -> SysResult<i32> {
        let mut v: i32 = 0;
        let mut len = size_of::<i32>() as libc::socklen_t;
        // SAFETY: a valid buffer for an int and its length.
        check(unsafe {
            libc::getsockopt(
                fd,
                level,
                name,
                &mut v as *mut i32 as *mut libc::c_void,
                &mut len,
            )
        })?;
        Ok(v)
    }

    fn sockname(&self, fd: Fd) -> Option<SocketAddr> {
        // SAFETY: an all-zero storage is valid; getsockname writes at most `len` bytes.
        let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let r =
            unsafe { libc::getsockname(fd, &mut ss as *mut _ as *mut libc::sockaddr, &mut len) };
        (r == 0).then(|| from_sockaddr(&ss)).flatten()
    }

    /// tcpi_state of a socket the script holds.
    fn tcp_state(&self, fd: Fd) -> Option<u8> {
        // SAFETY: an all-zero tcp_info is valid; getsockopt writes at most `len` bytes.
        let mut info: libc::tcp_info = unsafe { zeroed() };
        let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                &mut info as *mut _ as *mut libc::c_void,
                &mut len,
            )
        };
        (r == 0).then_some(info.tcpi_state)
    }
}

impl Drop for LinuxStack {
    fn drop(&mut self) {
        for fd in &self.open {
            // SAFETY: descriptors this stack opened and still owns.
            unsafe { libc::close(*fd) };
        }
    }
}

impl Stack for LinuxStack {
    fn name(&self) -> &'static str {
        "linux"
    }

    fn apply(&mut self, key: &str, value: &str) -> SysResult<Applied> {
        netharness::write_sysctl(key, value)
    }

    fn start(&mut self) -> SysResult<()> {
        self.wire.clear();
        Ok(())
    }

    fn now(&self) -> Micros {
        self.wire.now()
    }

    fn step(&mut self, limit: Micros, watch: &[(Fd, i16)]) -> bool {
        self.wire.step(limit, watch)
    }

    fn sent(&mut self) -> &mut VecDeque<Sent> {
        &mut self.wire.sent
    }

    fn inject(&mut self, datagram: &[u8]) -> SysResult<()> {
        self.wire.inject(datagram)
    }

    fn socket(&mut self, v6: bool) -> SysResult<Fd> {
        let domain = if v6 { libc::AF_INET6 } else { libc::AF_INET };
        // SAFETY: plain arguments.
        let fd = check(unsafe {
            libc::socket(
                domain,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::IPPROTO_TCP,
            )
        })?;
        self.open.insert(fd);
        Ok(fd)
    }

    fn bind(&mut self, fd: Fd, addr: SocketAddr) -> SysResult<()> {
        self.fd_ok(fd)?;
        let (ss, len) = to_sockaddr(addr);
        // SAFETY: a valid sockaddr of `len` bytes.
        check(unsafe { libc::bind(fd, &ss as *const _ as *const libc::sockaddr, len) })?;
        Ok(())
    }

    fn listen(&mut self, fd: Fd, backlog: i32) -> SysResult<()> {
        self.fd_ok(fd)?;
        // SAFETY: plain arguments.
        check(unsafe { libc::listen(fd, backlog) })?;
        Ok(())
    }

    fn accept(&mut self, fd: Fd) -> SysResult<Fd> {
        self.fd_ok(fd)?;
        // SAFETY: null address pointers are allowed.
        let n = check(unsafe {
            libc::accept4(
                fd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        })?;
        self.open.insert(n);
        Ok(n)
    }

    fn connect(&mut self, fd: Fd, addr: SocketAddr) -> SysResult<()> {
        self.fd_ok(fd)?;
        let (ss, len) = to_sockaddr(addr);
        // SAFETY: a valid sockaddr of `len` bytes.
        let r = check(unsafe { libc::connect(fd, &ss as *const _ as *const libc::sockaddr, len) });
        self.wire.drain();
        r.map(|_| ())
    }

    fn connect_result(&mut self, fd: Fd) -> Option<SysResult<()>> {
        if self.poll(fd, libc::POLLOUT).ok()? == 0 {
            return None;
        }
        Some(match self.get_int(fd, libc::SOL_SOCKET, libc::SO_ERROR) {
            Ok(0) => Ok(()),
            Ok(e) => Err(SysErr::Errno(e)),
            Err(e) => Err(e),
        })
    }

    fn local_addr(&mut self, fd: Fd) -> Option<SocketAddr> {
        self.sockname(fd)
    }

    fn read(&mut self, fd: Fd, len: usize) -> SysResult<Vec<u8>> {
        self.fd_ok(fd)?;
        let mut buf = vec![0u8; len];
        // SAFETY: `buf` is valid for `len` bytes.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), len, 0) };
        self.wire.drain();
        if n < 0 {
            return Err(last_errno());
        }
        buf.truncate(n as usize);
        Ok(buf)
    }

    fn write(&mut self, fd: Fd, data: &[u8]) -> SysResult<usize> {
        self.fd_ok(fd)?;
        // SAFETY: `data` is valid for its length.
        let n = unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) };
        self.wire.drain();
        if n < 0 {
            return Err(last_errno());
        }
        Ok(n as usize)
    }

    fn close(&mut self, fd: Fd) -> SysResult<()> {
        if !self.open.remove(&fd) {
            return Err(SysErr::Errno(libc::EBADF));
        }
        // SAFETY: a descriptor this stack owned; it is forgotten above.
        check(unsafe { libc::close(fd) })?;
        self.wire.drain();
        Ok(())
    }

    fn shutdown(&mut self, fd: Fd, how: i32) -> SysResult<()> {
        self.fd_ok(fd)?;
        // SAFETY: plain arguments.
        check(unsafe { libc::shutdown(fd, how) })?;
        self.wire.drain();
        Ok(())
    }

    fn setsockopt(&mut self, fd: Fd, opt: SockOpt, value: OptVal) -> SysResult<()> {
        self.fd_ok(fd)?;
        let (level, name) = opt.linux();
        match value {
            OptVal::Int(v) => self.set_int(fd, level, name, v as i32)?,
            OptVal::Linger { onoff, secs } => {
                let l = libc::linger {
                    l_onoff: onoff as i32,
                    l_linger: secs,
                };
                // SAFETY: a valid linger struct and its size.
                check(unsafe {
                    libc::setsockopt(
                        fd,
                        level,
                        name,
                        &l as *const libc::linger as *const libc::c_void,
                        size_of::<libc::linger>() as libc::socklen_t,
                    )
                })?;
            }
        }
        self.wire.drain();
        Ok(())
    }

    fn getsockopt(&mut self, fd: Fd, opt: SockOpt) -> SysResult<OptVal> {
        self.fd_ok(fd)?;
        let (level, name) = opt.linux();
        if opt == SockOpt::Linger {
            // SAFETY: an all-zero linger is valid; getsockopt writes at most `len` bytes.
            let mut l: libc::linger = unsafe { zeroed() };
            let mut len = size_of::<libc::linger>() as libc::socklen_t;
            check(unsafe {
                libc::getsockopt(
                    fd,
                    level,
                    name,
                    &mut l as *mut _ as *mut libc::c_void,
                    &mut len,
                )
            })?;
            return Ok(OptVal::Linger {
                onoff: l.l_onoff != 0,
                secs: l.l_linger,
            });
        }
        Ok(OptVal::Int(self.get_int(fd, level, name)? as i64))
    }

    fn poll(&mut self, fd: Fd, events: i16) -> SysResult<i16> {
        self.fd_ok(fd)?;
        let mut p = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no waiting.
        check(unsafe { libc::poll(&mut p, 1, 0) })?;
        Ok(p.revents)
    }

    fn fd_state(&mut self, fd: Fd) -> Option<State> {
        // TCP_CLOSE and the codes with no RFC state (TCP_BOUND_INACTIVE) count as CLOSED.
        Some(State::from_linux_code(self.tcp_state(fd)?).unwrap_or(State::Closed))
    }

    fn states(&mut self) -> StateCount {
        let mut out = Vec::new();
        // sock_diag in this thread's namespace: listeners, request sockets, connections,
        // TIME_WAIT and FIN_WAIT_2 minisocks, both families in one dump.
        match tcpfsm_host::SockDiag::new().and_then(|mut d| d.sockets(&Filter::default())) {
            Ok(rows) => out.extend(rows.iter().map(|r| (r.state, r.local, r.remote))),
            Err(e) => eprintln!("tcpfsm drill: sock_diag in the namespace failed: {e}"),
        }
        // Sockets the script holds whose connection is over are unhashed, so not dumped;
        // FreeBSD's sockstat lists them as CLOSED.
        for fd in &self.open {
            if self.tcp_state(*fd) == Some(TCP_CLOSE) {
                let l = self
                    .sockname(*fd)
                    .unwrap_or(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0));
                let unspec = SocketAddr::new(
                    if l.is_ipv6() {
                        Ipv6Addr::UNSPECIFIED.into()
                    } else {
                        Ipv4Addr::UNSPECIFIED.into()
                    },
                    0,
                );
                out.push((State::Closed, l, unspec));
            }
        }
        StateCount(out)
    }

    fn shell(&mut self, command: &str) -> SysResult<i32> {
        let status = Command::new("sh")
            .arg("-c")
            .arg(command)
            .status()
            .map_err(|e| SysErr::Unsupported(format!("cannot run sh: {e}")))?;
        self.wire.drain();
        Ok(status.code().unwrap_or(128))
    }
}
