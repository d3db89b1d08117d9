//! System call lines: arguments evaluated, the call made, its result checked.
//!
//! Calls are made non-blocking on every stack; a call on a blocking descriptor that would
//! wait becomes *pending* and is retried as the stack makes progress. With `...END` it runs
//! alongside the following events and must return at END; without it the script waits for it
//! (packetdrill makes such calls on its main thread).

use super::call::Call;
use super::sock::{Sock, SockState};
use super::{secs, FdEntry, Runner, Step, Stop};
use crate::compare::Mode;
use crate::consts;
use crate::outcome::TraceEntry;
use crate::script::{Expr, Syscall};
use crate::stack::{Fd, Micros, OptVal, SockOpt, Stack, SysErr};
use std::net::SocketAddr;

/// How long a call without `...` may hold the script before the runner gives up.
const SYNC_LIMIT: Micros = 600_000_000;

#[derive(Debug, Clone)]
enum Res {
    Int(i64),
    Err(i32),
    Opt(OptVal),
    Revents(Vec<i16>),
}

enum Progress {
    Done(Res),
    Blocked(Call),
}

pub(crate) struct Pending {
    call: Call,
    spec: Syscall,
    line: u32,
    start: Micros,
    end: Option<Micros>,
}

impl Pending {
    /// What readiness would let the call make progress.
    pub(crate) fn live_fds(&self) -> Vec<(Fd, i16)> {
        match &self.call {
            Call::Accept { fd } | Call::Read { fd, .. } => vec![(fd.live, libc::POLLIN)],
            Call::Connect { fd, .. } | Call::Write { fd, .. } => vec![(fd.live, libc::POLLOUT)],
            Call::Poll { fds, .. } => fds.iter().map(|(f, e)| (f.live, *e)).collect(),
            _ => Vec::new(),
        }
    }
}

fn is_eagain(e: &SysErr) -> bool {
    matches!(e, SysErr::Errno(n) if *n == libc::EAGAIN || *n == libc::EINPROGRESS)
}

impl<S: Stack> Runner<'_, S> {
    fn blocking(&self, c: &Call) -> bool {
        match c {
            Call::Accept { fd }
            | Call::Connect { fd, .. }
            | Call::Read { fd, .. }
            | Call::Write { fd, .. } => !fd.nonblock,
            Call::Poll { deadline, .. } => deadline.is_none_or(|d| d > self.st.now()),
            _ => false,
        }
    }

    /// Makes the call once, non-blocking.
    fn attempt(&mut self, mut c: Call, line: u32) -> Step<Progress> {
        let blocking = self.blocking(&c);
        let res = |r: Result<i64, SysErr>| -> Step<Res> {
            match r {
                Ok(v) => Ok(Res::Int(v)),
                Err(SysErr::Errno(e)) => Ok(Res::Err(e)),
                Err(SysErr::Unsupported(w)) => Err(Stop::Skip(w, line)),
            }
        };
        let st = &mut self.st;
        let r = match &mut c {
            Call::Socket { v6, .. } => res(st.socket(*v6).map(i64::from))?,
            Call::Bind { fd, addr } => res(st.bind(fd.live, *addr).map(|_| 0))?,
            Call::Listen { fd, backlog } => res(st.listen(fd.live, *backlog).map(|_| 0))?,
            Call::Accept { fd } => match st.accept(fd.live) {
                Err(e) if blocking && is_eagain(&e) => return Ok(Progress::Blocked(c)),
                r => res(r.map(i64::from))?,
            },
            Call::Connect { fd, addr, started } => {
                if *started {
                    match st.connect_result(fd.live) {
                        None => return Ok(Progress::Blocked(c)),
                        Some(r) => res(r.map(|_| 0))?,
                    }
                } else {
                    *started = true;
                    let r = st.connect(fd.live, *addr);
                    let local = st.local_addr(fd.live);
                    let sock = &mut self.socks[fd.sock];
                    sock.state = SockState::Connecting;
                    sock.remote = *addr;
                    if let Some(l) = local {
                        sock.local = l;
                    }
                    self.sut = Some(fd.sock);
                    match r {
                        Err(e) if blocking && is_eagain(&e) => return Ok(Progress::Blocked(c)),
                        r => res(r.map(|_| 0))?,
                    }
                }
            }
            Call::Read { fd, len } => match st.read(fd.live, *len) {
                Err(e) if blocking && is_eagain(&e) => return Ok(Progress::Blocked(c)),
                r => res(r.map(|d| d.len() as i64))?,
            },
            Call::Write { fd, data, done } => match st.write(fd.live, &data[*done..]) {
                Ok(n) => {
                    *done += n;
                    if *done < data.len() && blocking {
                        return Ok(Progress::Blocked(c));
                    }
                    Res::Int(*done as i64)
                }
                Err(e) if blocking && is_eagain(&e) => return Ok(Progress::Blocked(c)),
                Err(_) if *done > 0 => Res::Int(*done as i64),
                Err(e) => res(Err(e))?,
            },
            Call::Close { fd, .. } => res(st.close(fd.live).map(|_| 0))?,
            Call::Shutdown { fd, how } => res(st.shutdown(fd.live, *how).map(|_| 0))?,
            Call::SetOpt { fd, opt, val } => res(st.setsockopt(fd.live, *opt, *val).map(|_| 0))?,
            Call::GetOpt { fd, opt } => match st.getsockopt(fd.live, *opt) {
                Ok(v) => Res::Opt(v),
                Err(e) => res(Err(e))?,
            },
            Call::GetFl { fd } => Res::Int(
                libc::O_RDWR as i64
                    | if fd.nonblock {
                        libc::O_NONBLOCK as i64
                    } else {
                        0
                    },
            ),
            Call::SetFl => Res::Int(0),
            Call::Poll { fds, deadline } => {
                let mut revents = Vec::new();
                for (fd, ev) in fds.iter() {
                    match st.poll(fd.live, *ev) {
                        Ok(r) => revents.push(r),
                        Err(SysErr::Unsupported(w)) => return Err(Stop::Skip(w, line)),
                        Err(SysErr::Errno(_)) => revents.push(libc::POLLNVAL),
                    }
                }
                let ready = revents.iter().any(|r| *r != 0);
                if !ready && deadline.is_none_or(|d| d > st.now()) {
                    return Ok(Progress::Blocked(c));
                }
                Res::Revents(revents)
            }
        };
        Ok(Progress::Done(r))
    }

    pub(super) fn syscall(
        &mut self,
        s: &Syscall,
        line: u32,
        start: Micros,
        end: Option<Micros>,
    ) -> Step {
        let call = self.build(s, line, start)?;
        match self.attempt(call, line)? {
            Progress::Done(r) => self.finish(s, r, line, end),
            Progress::Blocked(c) => {
                self.pending = Some(Pending {
                    call: c,
                    spec: s.clone(),
                    line,
                    start,
                    end,
                });
                if end.is_none() {
                    // Held on the "main thread": nothing else happens until it returns.
                    let limit = self.st.now() + SYNC_LIMIT;
                    self.finish_pending_by(limit, line)?;
                }
                Ok(())
            }
        }
    }

    /// Retries a pending call once.
    pub(super) fn poll_pending(&mut self) -> Step {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        match self.attempt(p.call, p.line)? {
            Progress::Blocked(c) => {
                self.pending = Some(Pending { call: c, ..p });
                Ok(())
            }
            Progress::Done(r) => self.finish(&p.spec, r, p.line, p.end),
        }
    }

    fn finish_pending_by(&mut self, limit: Micros, line: u32) -> Step {
        while self.pending.is_some() {
            if self.st.now() >= limit {
                let p = self.pending.take().expect("pending");
                let when = p
                    .end
                    .map(|e| format!("by {}", secs(e)))
                    .unwrap_or_else(|| "at all".into());
                return Err(self.fail(
                    p.line,
                    format!("the call to return {when}"),
                    format!(
                        "still blocked at {} (started {})",
                        secs(self.st.now()),
                        secs(p.start)
                    ),
                    format!(
                        "{}() did not return (line {line} waits for it)",
                        p.spec.name
                    ),
                ));
            }
            let watch = self.watch();
            self.st.step(limit, &watch);
            self.poll_pending()?;
        }
        Ok(())
    }

    /// packetdrill runs one blocking call at a time: a new call waits for the previous one.
    pub(super) fn finish_pending_before(&mut self, line: u32) -> Step {
        self.poll_pending()?;
        let Some(p) = &self.pending else {
            return Ok(());
        };
        let limit = p
            .end
            .map(|e| e + self.tolerance(e))
            .unwrap_or(self.st.now() + SYNC_LIMIT);
        self.finish_pending_by(limit, line)
    }

    pub(super) fn finish_pending_at_end(&mut self) -> Step {
        let line = self.pending.as_ref().map(|p| p.line).unwrap_or(0);
        self.finish_pending_before(line)
    }

    /// Checks a returned call against its line and records it.
    fn finish(&mut self, s: &Syscall, r: Res, line: u32, end: Option<Micros>) -> Step {
        let now = self.st.now();
        let name = s.name.clone();
        let shown = show_res(&r);
        let want_result = match &s.result {
            Expr::Ellipsis => None,
            e => Some(self.int(e, line)?),
        };
        let expected = format!(
            "= {}{}",
            s.result,
            s.errno
                .as_ref()
                .map(|e| format!(" {e}"))
                .unwrap_or_default()
        );
        let mut key = shown.clone();
        let fail = |me: &Self, why: String| me.fail(line, expected.clone(), shown.clone(), why);
        match &r {
            Res::Err(e) => {
                if want_result.is_some_and(|w| w != -1) {
                    return Err(fail(self, format!("{name}() failed")));
                }
                if let Some(want) = &s.errno {
                    let want_n = consts::errno_value(want)
                        .ok_or_else(|| Stop::Skip(format!("errno {want}"), line))?;
                    if want_n != *e {
                        return Err(fail(self, format!("{name}() failed with another errno")));
                    }
                }
            }
            Res::Int(v) => {
                match name.as_str() {
                    "socket" | "accept" | "accept4" => {
                        let Some(script_fd) = want_result.filter(|w| *w >= 0) else {
                            return Err(fail(self, format!("{name}() succeeded")));
                        };
                        self.new_fd(&name, script_fd as i32, *v as Fd, s, line);
                        key = "= fd".into();
                    }
                    "close" => {
                        if let Some(fdn) = s.args.first().and_then(|a| self.int(a, line).ok()) {
                            self.fds.remove(&(fdn as i32));
                        }
                    }
                    "fcntl" => self.fcntl_applied(s, line)?,
                    "listen" => {
                        if let Ok((_, fd)) = self.fd(&s.args[0], line) {
                            self.socks[fd.sock].state = SockState::Listening;
                        }
                    }
                    "bind" => {
                        if let Ok((_, fd)) = self.fd(&s.args[0], line) {
                            let def = SocketAddr::new(self.cfg.local_ip, self.cfg.bind_port);
                            if let Ok(a) = self.sockaddr(&s.args[1], def, line) {
                                self.socks[fd.sock].local = a;
                            }
                        }
                    }
                    _ => {}
                }
                if let Some(w) = want_result {
                    if !matches!(name.as_str(), "socket" | "accept" | "accept4") && w != *v {
                        return Err(fail(self, format!("{name}() returned another value")));
                    }
                }
                if s.errno.is_some() && want_result == Some(-1) {
                    return Err(fail(self, format!("{name}() succeeded")));
                }
            }
            Res::Opt(v) => {
                if want_result.is_some_and(|w| w != 0) {
                    return Err(fail(self, "getsockopt() succeeded".into()));
                }
                let opt = match (&s.args[1], &s.args[2]) {
                    (Expr::Word(l), Expr::Word(n)) => SockOpt::from_names(l, n),
                    _ => None,
                };
                // Buffer sizes are host policy (Linux doubles what is set, FreeBSD rounds to
                // the MSS): compared only in strict mode.
                let policy = matches!(opt, Some(SockOpt::RcvBuf | SockOpt::SndBuf));
                if policy && self.opts.mode == Mode::Protocol {
                    key = "= 0 [buffer size]".into();
                } else {
                    self.check_opt_value(s, v, line, &expected, &shown)?;
                }
            }
            Res::Revents(rev) => {
                let n = rev.iter().filter(|r| **r != 0).count() as i64;
                if want_result.is_some_and(|w| w != n) {
                    return Err(fail(self, "poll() returned another count".into()));
                }
                if let Some(Expr::List(items)) = s.args.first() {
                    for (it, got) in items.iter().zip(rev) {
                        let Expr::Brace(f) = it else { continue };
                        for e in f {
                            if let Expr::Assign(k, v) = e {
                                if **k == Expr::Word("revents".into()) {
                                    let want = self.int(v, line)? as i16;
                                    if want != *got {
                                        return Err(fail(
                                            self,
                                            format!(
                                                "poll() revents differ: expected {} got {}",
                                                show_poll(want),
                                                show_poll(*got)
                                            ),
                                        ));
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if let Some(e) = end {
            let tol = self.tolerance(e);
            if (now - e).abs() > tol {
                return Err(self.fail(
                    line,
                    format!("{expected} at {}", secs(e)),
                    format!("{shown} at {}", secs(now)),
                    format!(
                        "timing error: the call returned {:.3} s {}",
                        (now - e).abs() as f64 / 1e6,
                        if now < e { "early" } else { "late" }
                    ),
                ));
            }
        }
        self.trace.push(TraceEntry {
            line,
            at: now,
            observed: shown,
            key,
        });
        Ok(())
    }

    fn new_fd(&mut self, name: &str, script_fd: i32, live: Fd, s: &Syscall, line: u32) {
        if name == "socket" {
            let nonblock = s
                .args
                .get(1)
                .and_then(|t| self.int(t, line).ok())
                .is_some_and(|t| t & libc::SOCK_NONBLOCK as i64 != 0);
            let local = SocketAddr::new(self.cfg.local_ip, self.cfg.bind_port);
            let remote = SocketAddr::new(self.cfg.remote_ip, self.take_remote_port());
            let mut sock = Sock::new(SockState::New, local, remote);
            sock.has_fd = true;
            self.socks.push(sock);
            let i = self.socks.len() - 1;
            self.sut = Some(i);
            self.fds.insert(
                script_fd,
                FdEntry {
                    live,
                    sock: i,
                    nonblock,
                },
            );
            return;
        }
        // accept(): the newest child of this listener that has no descriptor yet.
        let listener = s
            .args
            .first()
            .and_then(|a| self.fd(a, line).ok())
            .map(|(_, f)| f.sock);
        let child = (0..self.socks.len())
            .rev()
            .find(|&i| self.socks[i].parent == listener && !self.socks[i].has_fd);
        let i = child.unwrap_or_else(|| {
            // A connection the script never showed (e.g. one that came in before): give it
            // its own entry so the descriptor works.
            let l = listener
                .map(|l| self.socks[l].local)
                .unwrap_or_else(|| SocketAddr::new(self.cfg.local_ip, self.cfg.bind_port));
            self.socks.push(Sock::new(
                SockState::Connected,
                l,
                SocketAddr::new(self.cfg.remote_ip, 0),
            ));
            self.socks.len() - 1
        });
        self.socks[i].has_fd = true;
        self.fds.insert(
            script_fd,
            FdEntry {
                live,
                sock: i,
                nonblock: false,
            },
        );
    }

    fn fcntl_applied(&mut self, s: &Syscall, line: u32) -> Step {
        let (Some(fd), Some(cmd)) = (s.args.first(), s.args.get(1)) else {
            return Ok(());
        };
        if self.int(cmd, line)? as i32 == libc::F_SETFL {
            let n = self.int(fd, line)? as i32;
            let flags = self.int(&s.args[2], line)?;
            if let Some(e) = self.fds.get_mut(&n) {
                e.nonblock = flags & libc::O_NONBLOCK as i64 != 0;
            }
        }
        Ok(())
    }

    fn check_opt_value(
        &self,
        s: &Syscall,
        v: &OptVal,
        line: u32,
        expected: &str,
        shown: &str,
    ) -> Step {
        let Some(want) = s.args.get(3) else {
            return Ok(());
        };
        let ok = match (want, v) {
            (Expr::Ellipsis, _) => true,
            (Expr::Brace(f), OptVal::Linger { onoff, secs }) => {
                let mut ok = true;
                for e in f {
                    if let Expr::Assign(k, val) = e {
                        let n = self.int(val, line)?;
                        match k.as_ref() {
                            Expr::Word(k) if k == "onoff" => ok &= (n != 0) == *onoff,
                            Expr::Word(k) if k == "linger" => ok &= n == *secs as i64,
                            _ => {}
                        }
                    }
                }
                ok
            }
            (e, OptVal::Int(got)) => self.int(e, line)? == *got,
            _ => false,
        };
        if !ok {
            return Err(self.fail(
                line,
                format!("{expected} {want}"),
                shown.to_string(),
                "getsockopt() returned another value".into(),
            ));
        }
        Ok(())
    }
}

fn show_res(r: &Res) -> String {
    match r {
        Res::Int(v) => format!("= {v}"),
        Res::Err(e) => format!("= -1 {}", consts::errno_name(*e)),
        Res::Opt(OptVal::Int(v)) => format!("= 0 [{v}]"),
        Res::Opt(OptVal::Linger { onoff, secs }) => {
            format!("= 0 {{onoff={}, linger={secs}}}", u8::from(*onoff))
        }
        Res::Revents(r) => {
            let n = r.iter().filter(|x| **x != 0).count();
            let ev: Vec<String> = r.iter().map(|x| show_poll(*x)).collect();
            format!("= {n} [revents {}]", ev.join(", "))
        }
    }
}

fn show_poll(r: i16) -> String {
    let names = [
        (libc::POLLIN, "POLLIN"),
        (libc::POLLPRI, "POLLPRI"),
        (libc::POLLOUT, "POLLOUT"),
        (libc::POLLERR, "POLLERR"),
        (libc::POLLHUP, "POLLHUP"),
        (libc::POLLNVAL, "POLLNVAL"),
        (libc::POLLRDHUP, "POLLRDHUP"),
    ];
    let v: Vec<&str> = names
        .iter()
        .filter(|(b, _)| r & *b != 0)
        .map(|(_, n)| *n)
        .collect();
    if v.is_empty() {
        "0".into()
    } else {
        v.join("|")
    }
}
