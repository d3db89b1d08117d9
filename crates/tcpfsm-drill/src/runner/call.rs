//! A system call line's arguments evaluated into a [`Call`] the runner can make (and retry).

use super::{FdEntry, Runner, Step, Stop};
use crate::consts;
use crate::script::{Expr, Syscall};
use crate::stack::{Micros, OptVal, SockOpt, Stack};
use std::net::{IpAddr, SocketAddr};

/// A call, its arguments evaluated; a pending call keeps its progress here.
#[derive(Debug, Clone)]
pub(super) enum Call {
    Socket {
        v6: bool,
    },
    Bind {
        fd: FdEntry,
        addr: SocketAddr,
    },
    Listen {
        fd: FdEntry,
        backlog: i32,
    },
    Accept {
        fd: FdEntry,
    },
    Connect {
        fd: FdEntry,
        addr: SocketAddr,
        started: bool,
    },
    Read {
        fd: FdEntry,
        len: usize,
    },
    Write {
        fd: FdEntry,
        data: Vec<u8>,
        done: usize,
    },
    Close {
        fd: FdEntry,
    },
    Shutdown {
        fd: FdEntry,
        how: i32,
    },
    SetOpt {
        fd: FdEntry,
        opt: SockOpt,
        val: OptVal,
    },
    GetOpt {
        fd: FdEntry,
        opt: SockOpt,
    },
    GetFl {
        fd: FdEntry,
    },
    /// O_NONBLOCK is the runner's to keep (every stack is driven non-blocking).
    SetFl,
    Poll {
        fds: Vec<(FdEntry, i16)>,
        deadline: Option<Micros>,
    },
}

impl<S: Stack> Runner<'_, S> {
    pub(super) fn bad(&self, line: u32, why: String) -> Stop {
        self.fail(line, String::new(), String::new(), why)
    }

    pub(super) fn int(&self, e: &Expr, line: u32) -> Step<i64> {
        match e {
            Expr::Int(i) => Ok(*i),
            Expr::Word(w) => consts::value(w)
                .ok_or_else(|| Stop::Skip(format!("constant {w} is not known"), line)),
            Expr::Or(a, b) => Ok(self.int(a, line)? | self.int(b, line)?),
            Expr::List(v) if v.len() == 1 => self.int(&v[0], line),
            other => Err(self.bad(line, format!("expected a number, found {other}"))),
        }
    }

    pub(super) fn fd(&self, e: &Expr, line: u32) -> Step<(i32, FdEntry)> {
        let n = self.int(e, line)? as i32;
        self.fds
            .get(&n)
            .map(|f| (n, *f))
            .ok_or_else(|| self.bad(line, format!("no socket has script fd {n}")))
    }

    pub(super) fn sockaddr(&self, e: &Expr, default: SocketAddr, line: u32) -> Step<SocketAddr> {
        let Expr::Brace(fields) = e else {
            return match e {
                Expr::Ellipsis => Ok(default),
                other => Err(self.bad(line, format!("expected a socket address, found {other}"))),
            };
        };
        let mut addr = default;
        for f in fields {
            let Expr::Assign(k, v) = f else { continue };
            let (Expr::Word(k), v) = (k.as_ref(), v.as_ref()) else {
                continue;
            };
            match (k.as_str(), v) {
                ("sin_port" | "sin6_port", Expr::Call(f, a)) if f == "htons" && a.len() == 1 => {
                    addr.set_port(self.int(&a[0], line)? as u16)
                }
                ("sin_addr" | "sin6_addr", Expr::Call(f, a))
                    if (f == "inet_addr" || f == "inet6_addr") && a.len() == 1 =>
                {
                    let Expr::Str { text, .. } = &a[0] else {
                        return Err(self.bad(line, "inet_addr needs a string".into()));
                    };
                    let ip: IpAddr = text
                        .parse()
                        .map_err(|_| self.bad(line, format!("\"{text}\" is not an address")))?;
                    addr.set_ip(ip);
                }
                _ => {}
            }
        }
        Ok(addr)
    }

    fn arg<'e>(&self, s: &'e Syscall, i: usize, line: u32) -> Step<&'e Expr> {
        s.args.get(i).ok_or_else(|| {
            self.bad(
                line,
                format!("{} needs at least {} arguments", s.name, i + 1),
            )
        })
    }

    pub(super) fn build(&mut self, s: &Syscall, line: u32, start: Micros) -> Step<Call> {
        let a = |i| self.arg(s, i, line);
        Ok(match s.name.as_str() {
            "socket" => {
                let domain = match a(0)? {
                    Expr::Ellipsis => None,
                    e => Some(self.int(e, line)?),
                };
                let ty = self.int(a(1)?, line)?;
                if ty & 0xf != libc::SOCK_STREAM as i64 {
                    return Err(Stop::Skip(
                        "only SOCK_STREAM sockets are supported".into(),
                        line,
                    ));
                }
                let v6 = match domain {
                    None => self.cfg.v6,
                    Some(d) if d == libc::AF_INET6 as i64 => true,
                    Some(d) if d == libc::AF_INET as i64 => false,
                    Some(d) => return Err(Stop::Skip(format!("socket domain {d}"), line)),
                };
                Call::Socket { v6 }
            }
            "bind" => {
                let (_, fd) = self.fd(a(0)?, line)?;
                let def = SocketAddr::new(self.cfg.local_ip, self.cfg.bind_port);
                Call::Bind {
                    fd,
                    addr: self.sockaddr(a(1)?, def, line)?,
                }
            }
            "listen" => Call::Listen {
                fd: self.fd(a(0)?, line)?.1,
                backlog: self.int(a(1)?, line)? as i32,
            },
            "accept" | "accept4" => Call::Accept {
                fd: self.fd(a(0)?, line)?.1,
            },
            "connect" => {
                let (_, fd) = self.fd(a(0)?, line)?;
                let def = SocketAddr::new(self.cfg.remote_ip, self.cfg.connect_port);
                Call::Connect {
                    fd,
                    addr: self.sockaddr(a(1)?, def, line)?,
                    started: false,
                }
            }
            "read" | "recv" | "recvfrom" => Call::Read {
                fd: self.fd(a(0)?, line)?.1,
                len: self.int(a(2)?, line)?.max(0) as usize,
            },
            "readv" => Call::Read {
                fd: self.fd(a(0)?, line)?.1,
                len: self.iov_len(a(1)?, line)?,
            },
            "write" | "send" | "sendto" => {
                let fd = self.fd(a(0)?, line)?.1;
                let len = self.int(a(2)?, line)?.max(0) as usize;
                let mut data = vec![0u8; len];
                if let Expr::Str { text, .. } = a(1)? {
                    let b = text.as_bytes();
                    data[..b.len().min(len)].copy_from_slice(&b[..b.len().min(len)]);
                }
                if let Some(flags) = s.args.get(3) {
                    if self.int(flags, line)? & !(libc::MSG_NOSIGNAL as i64) != 0 {
                        return Err(Stop::Skip(format!("{} flags {flags}", s.name), line));
                    }
                }
                Call::Write { fd, data, done: 0 }
            }
            "writev" => {
                let fd = self.fd(a(0)?, line)?.1;
                let len = self.iov_len(a(1)?, line)?;
                Call::Write {
                    fd,
                    data: vec![0; len],
                    done: 0,
                }
            }
            "close" => Call::Close {
                fd: self.fd(a(0)?, line)?.1,
            },
            "shutdown" => Call::Shutdown {
                fd: self.fd(a(0)?, line)?.1,
                how: self.int(a(1)?, line)? as i32,
            },
            "setsockopt" | "getsockopt" => {
                let fd = self.fd(a(0)?, line)?.1;
                let (Expr::Word(level), Expr::Word(name)) = (a(1)?, a(2)?) else {
                    return Err(self.bad(line, "socket option level and name must be names".into()));
                };
                let opt = SockOpt::from_names(level, name)
                    .ok_or_else(|| Stop::Skip(format!("socket option {level}/{name}"), line))?;
                if s.name == "getsockopt" {
                    Call::GetOpt { fd, opt }
                } else {
                    let val = match a(3)? {
                        Expr::Brace(f) => {
                            let field = |n: &str| {
                                f.iter().find_map(|e| match e {
                                    Expr::Assign(k, v) if **k == Expr::Word(n.into()) => {
                                        Some(v.as_ref().clone())
                                    }
                                    _ => None,
                                })
                            };
                            let (Some(on), Some(l)) = (field("onoff"), field("linger")) else {
                                return Err(
                                    self.bad(line, "SO_LINGER needs {onoff=…, linger=…}".into())
                                );
                            };
                            OptVal::Linger {
                                onoff: self.int(&on, line)? != 0,
                                secs: self.int(&l, line)? as i32,
                            }
                        }
                        e => OptVal::Int(self.int(e, line)?),
                    };
                    Call::SetOpt { fd, opt, val }
                }
            }
            "fcntl" => {
                let fd = self.fd(a(0)?, line)?.1;
                match self.int(a(1)?, line)? as i32 {
                    libc::F_GETFL => Call::GetFl { fd },
                    libc::F_SETFL => {
                        self.int(a(2)?, line)?;
                        Call::SetFl
                    }
                    cmd => return Err(Stop::Skip(format!("fcntl command {cmd}"), line)),
                }
            }
            "poll" => {
                let Expr::List(items) = a(0)? else {
                    return Err(self.bad(line, "poll needs a [{fd=…, events=…}] list".into()));
                };
                let mut fds = Vec::new();
                for it in items {
                    let Expr::Brace(f) = it else {
                        return Err(
                            self.bad(line, format!("expected {{fd=…, events=…}}, found {it}"))
                        );
                    };
                    let mut fd = None;
                    let mut events = 0i16;
                    for e in f {
                        if let Expr::Assign(k, v) = e {
                            match k.as_ref() {
                                Expr::Word(k) if k == "fd" => fd = Some(self.fd(v, line)?.1),
                                Expr::Word(k) if k == "events" => {
                                    events = self.int(v, line)? as i16
                                }
                                _ => {}
                            }
                        }
                    }
                    let fd = fd.ok_or_else(|| self.bad(line, "poll entry without fd".into()))?;
                    fds.push((fd, events));
                }
                let timeout = self.int(a(2)?, line)?;
                Call::Poll {
                    fds,
                    deadline: (timeout >= 0).then(|| start + timeout * 1000),
                }
            }
            other => return Err(Stop::Skip(format!("system call {other}()"), line)),
        })
    }

    pub(super) fn iov_len(&self, e: &Expr, line: u32) -> Step<usize> {
        let Expr::List(items) = e else {
            return Err(self.bad(line, format!("expected an iovec list, found {e}")));
        };
        let mut n = 0;
        for it in items {
            match it {
                Expr::Brace(f) if f.len() == 2 => n += self.int(&f[1], line)?.max(0) as usize,
                other => {
                    return Err(self.bad(line, format!("expected {{..., LEN}}, found {other}")))
                }
            }
        }
        Ok(n)
    }
}
