//! Runs a parsed [`Script`] on a [`Network`], recording the application's calls and results.
//!
//! The script is one thread of control over all hosts: a blocking call (`connect`, `accept`,
//! `recv 10`, `recv-until-eof`, `wait until …`) runs the network until it completes or times
//! out, as a blocking socket call would, while every other host keeps running.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tcpfsm_core::{CloseReason, ConnHandle, Instant, InvalidHandle, ListenerHandle};

/// An engine call's failure, as the trace spells it (`connection reset`, `broken pipe`, …).
type TcpError = String;
use tcpfsm_observe::{Level, Snapshot};
use tcpfsm_states::State;

use crate::network::{address_for, AppNotice, Network};
use crate::script::{Action, Cond, Data, RecvMode, Script, ScriptError, Stmt, Target};
use crate::trace::{AppRec, NoteKind, Trace, TraceEvent};

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub trace: Trace,
    /// Expectations that did not hold and waits that timed out, as `file:line: text`.
    pub failures: Vec<String>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

#[derive(Debug, Clone)]
enum SockKind {
    Listener(ListenerHandle),
    /// `None` when connect failed synchronously.
    Conn(Option<ConnHandle>),
}

#[derive(Debug, Clone)]
struct Sock {
    host: usize,
    kind: SockKind,
    last_result: String,
    /// Bytes read so far, for `recv` excerpts.
    received: u64,
}

struct Runner<'s> {
    script: &'s Script,
    net: Network,
    socks: HashMap<String, Sock>,
    /// Which socket name a connection has, to report asynchronous closes.
    names: HashMap<(usize, ConnHandle), String>,
    closed: HashMap<(usize, ConnHandle), CloseReason>,
    failures: Vec<String>,
    samples: HashMap<usize, Vec<Snapshot>>,
    rng: ChaCha8Rng,
    repeat_blocks: u32,
    vars: Vec<(String, u32)>,
    /// Where the record of an immediate call goes: before the state changes and segments the
    /// call caused, so the diagram reads "close → FIN_WAIT_1 → FIN".
    mark: Option<usize>,
    /// The connection a blocking connect waits on: its failure is that call's result, not a
    /// separate notice.
    connecting: Option<(usize, ConnHandle)>,
    /// Data of `send` calls not yet queued in the endpoint, per (host, connection), in order.
    outbox: BTreeMap<(usize, ConnHandle), VecDeque<Pending>>,
}

/// One `send` call still being written, or a `close`/`shutdown` waiting behind writes.
#[derive(Debug)]
struct Pending {
    sock: String,
    conn: ConnHandle,
    op: Op,
    data: Vec<u8>,
    written: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Write,
    Close,
    Shutdown,
}

/// The longest excerpt of sent or received text put in the trace.
const EXCERPT: usize = 40;

/// Runs a script. `seed` overrides the script's own `seed` line (default 1).
pub fn run(script: &Script, seed: Option<u64>) -> Result<Outcome, ScriptError> {
    let seed = seed.or(script.seed).unwrap_or(1);
    let mut net = Network::new(seed);
    net.trace_mut().title = script.name.clone();
    net.set_default_link(script.default_link);
    for h in &script.hosts {
        net.add_host(&h.name, h.addrs.clone(), h.config.clone());
    }
    for (a, b, p) in &script.links {
        net.set_link(*a, *b, *p);
    }
    let mut r = Runner {
        script,
        net,
        socks: HashMap::new(),
        names: HashMap::new(),
        closed: HashMap::new(),
        failures: Vec::new(),
        samples: HashMap::new(),
        rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5350_4f4f_4621),
        repeat_blocks: 0,
        vars: Vec::new(),
        mark: None,
        connecting: None,
        outbox: BTreeMap::new(),
    };
    r.block(&script.stmts)?;
    r.drain_notices();
    for ((host, _), q) in std::mem::take(&mut r.outbox) {
        for p in q {
            if p.op != Op::Write {
                let call = if p.op == Op::Close {
                    "close"
                } else {
                    "shutdown"
                };
                let why = "not reached: writes unfinished at the end of the script";
                r.app(
                    host,
                    call,
                    &p.sock,
                    Some(p.conn),
                    false,
                    why.into(),
                    None,
                    None,
                );
                continue;
            }
            let bytes = Some(p.written as u64);
            let text = text_excerpt(&p.data);
            r.app(
                host,
                "send",
                &p.sock,
                Some(p.conn),
                false,
                "unfinished at the end of the script".into(),
                bytes,
                text,
            );
        }
    }
    if let Some(msg) = r.net.stalled() {
        r.failures.push(format!("{}: {msg}", script.file));
    }
    Ok(Outcome {
        trace: r.net.into_trace(),
        failures: r.failures,
    })
}

fn text_excerpt(data: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(data).ok()?;
    if s.is_empty() || s.chars().any(|c| c.is_control() && c != '\n' && c != '\r') {
        return None;
    }
    let mut out: String = s.chars().take(EXCERPT).collect();
    if s.chars().count() > EXCERPT {
        out.push('…');
    }
    Some(out)
}

/// The bytes `send N bytes` sends: a printable repeating alphabet, so excerpts stay readable.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

fn add_to_ip(ip: IpAddr, k: u32) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::V4(u32::from(a).wrapping_add(k).into()),
        IpAddr::V6(a) => IpAddr::V6(u128::from(a).wrapping_add(u128::from(k)).into()),
    }
}

impl Runner<'_> {
    fn err(&self, line: usize, msg: impl Into<String>) -> ScriptError {
        ScriptError {
            file: self.script.file.clone(),
            line,
            msg: msg.into(),
        }
    }

    fn fail(&mut self, line: usize, msg: String) {
        self.net.note(NoteKind::Check { ok: false }, msg.clone());
        self.failures
            .push(format!("{}:{line}: {msg}", self.script.file));
    }

    fn resolve(&self, name: &crate::script::Name) -> String {
        let mut s = name.0.clone();
        // Longest variable names first so `$ij` is not read as `$i` + "j".
        let mut vars = self.vars.clone();
        vars.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
        for (v, val) in vars {
            s = s.replace(&format!("${v}"), &val.to_string());
        }
        s
    }

    fn sock(
        &self,
        line: usize,
        name: &crate::script::Name,
        host: usize,
    ) -> Result<(String, Sock), ScriptError> {
        let n = self.resolve(name);
        let s = self.socks.get(&n).ok_or_else(|| {
            self.err(
                line,
                format!("no socket named {n:?} (create it with listen, accept or connect)"),
            )
        })?;
        if s.host != host {
            return Err(self.err(
                line,
                format!(
                    "socket {n:?} belongs to host {:?}, not {:?}",
                    self.net.hosts()[s.host].name,
                    self.net.hosts()[host].name
                ),
            ));
        }
        Ok((n, s.clone()))
    }

    fn conn_of(
        &self,
        line: usize,
        name: &crate::script::Name,
        host: usize,
    ) -> Result<(String, Option<ConnHandle>), ScriptError> {
        let (n, s) = self.sock(line, name, host)?;
        match s.kind {
            SockKind::Conn(c) => Ok((n, c)),
            SockKind::Listener(_) => {
                Err(self.err(line, format!("{n:?} is a listener, not a connection")))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn app(
        &mut self,
        host: usize,
        call: &str,
        sock: &str,
        conn: Option<ConnHandle>,
        ok: bool,
        result: String,
        bytes: Option<u64>,
        text: Option<String>,
    ) {
        let conn_s = conn.and_then(|c| self.net.conn_tuple(host, c).map(str::to_string));
        if let Some(s) = self.socks.get_mut(sock) {
            s.last_result = result.clone();
        }
        let t_us = self.net.now().as_micros();
        let rec = TraceEvent::App(AppRec {
            t_us,
            host,
            call: call.to_string(),
            sock: sock.to_string(),
            conn: conn_s,
            ok,
            result,
            bytes,
            text,
        });
        let events = &mut self.net.trace_mut().events;
        match self.mark.take() {
            Some(at) if at <= events.len() && events[at..].iter().all(|e| e.t_us() == t_us) => {
                events.insert(at, rec)
            }
            _ => events.push(rec),
        }
    }

    /// Marks the trace position of an immediate call about to be made.
    fn mark(&mut self) {
        self.mark = Some(self.net.trace().events.len());
    }

    /// Records what endpoints told applications since the last call.
    fn drain_notices(&mut self) {
        for n in self.net.take_notices() {
            if let AppNotice::Closed { host, conn, reason } = n {
                self.closed.insert((host, conn), reason);
                if self.connecting == Some((host, conn)) {
                    continue;
                }
                if let Some(name) = self.names.get(&(host, conn)).cloned() {
                    let ok = reason == CloseReason::Graceful;
                    self.app(
                        host,
                        "closed",
                        &name,
                        Some(conn),
                        ok,
                        reason.name().to_string(),
                        None,
                        None,
                    );
                }
            }
        }
    }

    /// Runs the network until `pred` holds or `deadline`, recording notices as they come.
    fn advance(&mut self, deadline: Instant, mut pred: impl FnMut(&mut Runner) -> bool) -> bool {
        loop {
            self.drain_notices();
            if pred(self) {
                return true;
            }
            if !self.step(deadline) {
                return pred(self);
            }
        }
    }

    fn cond_holds(&self, c: &Cond) -> bool {
        match c {
            Cond::Quiet => self.net.in_flight() == 0,
            Cond::Eof(name) => match self.socks.get(&self.resolve(name)) {
                Some(Sock {
                    host,
                    kind: SockKind::Conn(Some(id)),
                    ..
                }) => {
                    // The states a connection is in once the peer's FIN was received.
                    matches!(
                        self.net.conn_state(*host, *id),
                        Some(State::CloseWait | State::LastAck | State::Closing | State::TimeWait)
                    ) || self.closed.get(&(*host, *id)) == Some(&CloseReason::Graceful)
                }
                _ => false,
            },
            Cond::Closed(name) | Cond::Error(name) => {
                let any = matches!(c, Cond::Closed(_));
                match self.socks.get(&self.resolve(name)) {
                    Some(Sock {
                        host,
                        kind: SockKind::Conn(Some(id)),
                        ..
                    }) => self
                        .closed
                        .get(&(*host, *id))
                        .is_some_and(|r| any || *r != CloseReason::Graceful),
                    // A connect that failed at once is closed, and an error.
                    Some(Sock {
                        kind: SockKind::Conn(None),
                        ..
                    }) => true,
                    _ => false,
                }
            }
            Cond::Count(h, st, n) => self.net.endpoint(*h).census().get(*st) == *n,
            Cond::AtLeast(h, st, n) => self.net.endpoint(*h).census().get(*st) >= *n,
            Cond::Result(name, text) => self
                .socks
                .get(&self.resolve(name))
                .is_some_and(|s| &s.last_result == text),
            Cond::InState(name, st) => match self.socks.get(&self.resolve(name)) {
                None => false,
                Some(s) => match s.kind {
                    SockKind::Listener(_) => *st == State::Listen,
                    SockKind::Conn(None) => *st == State::Closed,
                    SockKind::Conn(Some(c)) => self.net.conn_state(s.host, c) == Some(*st),
                },
            },
        }
    }

    fn cond_text(&self, c: &Cond) -> String {
        let host = |h: &usize| self.net.hosts()[*h].name.clone();
        match c {
            Cond::Quiet => "quiet".into(),
            Cond::Closed(name) => format!("{} closed", self.resolve(name)),
            Cond::Eof(name) => format!("{} eof", self.resolve(name)),
            Cond::Error(name) => format!("{} error", self.resolve(name)),
            Cond::Count(h, st, n) => format!("{} has {n} {st}", host(h)),
            Cond::AtLeast(h, st, n) => format!("{} has at least {n} {st}", host(h)),
            Cond::Result(name, t) => format!("{} result {t:?}", self.resolve(name)),
            Cond::InState(name, st) => format!("{} {st}", self.resolve(name)),
        }
    }

    /// What a condition actually saw, for failure messages.
    fn cond_actual(&self, c: &Cond) -> String {
        match c {
            Cond::Quiet => format!("{} segments in flight", self.net.in_flight()),
            Cond::Eof(name) | Cond::Closed(name) | Cond::Error(name) => {
                match self.socks.get(&self.resolve(name)) {
                    Some(Sock {
                        host,
                        kind: SockKind::Conn(Some(id)),
                        ..
                    }) => match self.closed.get(&(*host, *id)) {
                        Some(r) => format!("closed: {r}"),
                        None => "still open".into(),
                    },
                    Some(_) => "not a connection".into(),
                    None => "no such socket yet".into(),
                }
            }
            Cond::Count(h, st, _) | Cond::AtLeast(h, st, _) => {
                format!("{} {st}", self.net.endpoint(*h).census().get(*st))
            }
            Cond::Result(name, _) => match self.socks.get(&self.resolve(name)) {
                Some(s) => format!("last result {:?}", s.last_result),
                None => "no such socket yet".into(),
            },
            Cond::InState(name, _) => match self.socks.get(&self.resolve(name)) {
                None => "no such socket yet".into(),
                Some(s) => match s.kind {
                    SockKind::Listener(_) => "a listener".into(),
                    SockKind::Conn(None) => "never connected".into(),
                    SockKind::Conn(Some(c)) => match self.net.conn_state(s.host, c) {
                        Some(st) => format!("in {st}"),
                        None => "no state reported yet".into(),
                    },
                },
            },
        }
    }

    fn block(&mut self, stmts: &[Stmt]) -> Result<(), ScriptError> {
        for st in stmts {
            if self.net.stalled().is_some() {
                return Ok(());
            }
            self.stmt(st)?;
        }
        Ok(())
    }

    fn deadline(&self, d: Duration) -> Instant {
        self.net.now() + d
    }

    fn stmt(&mut self, st: &Stmt) -> Result<(), ScriptError> {
        let line = st.line;
        match &st.action {
            Action::Listen {
                host,
                addr,
                port,
                backlog,
                name,
            } => {
                let n = self.resolve(name);
                let ip = match addr {
                    Some(a) => *a,
                    None => self.net.hosts()[*host].addrs[0],
                };
                let local = SocketAddr::new(ip, *port);
                let r = self
                    .net
                    .with_endpoint(*host, |ep, now| ep.listen(now, local, *backlog));
                let (ok, result) = match r {
                    Ok(l) => {
                        self.socks.insert(
                            n.clone(),
                            Sock {
                                host: *host,
                                kind: SockKind::Listener(l),
                                last_result: String::new(),
                                received: 0,
                            },
                        );
                        (true, format!("listening on {local}"))
                    }
                    Err(e) => (false, e.to_string()),
                };
                self.app(*host, "listen", &n, None, ok, result, None, None);
            }
            Action::Accept {
                host,
                listener,
                name,
                wait,
                timeout,
            } => {
                let (ln, s) = self.sock(line, listener, *host)?;
                let SockKind::Listener(l) = s.kind else {
                    return Err(self.err(line, format!("{ln:?} is not a listener")));
                };
                let n = self.resolve(name);
                let deadline = self.deadline(if *wait { *timeout } else { Duration::ZERO });
                let h = *host;
                let mut got: Option<Result<ConnHandle, TcpError>> = None;
                self.advance(deadline, |r| {
                    match r.net.with_endpoint(h, |ep, now| ep.accept(now, l)) {
                        Ok(None) => false,
                        Ok(Some(c)) => {
                            got = Some(Ok(c));
                            true
                        }
                        Err(e) => {
                            got = Some(Err(e.to_string()));
                            true
                        }
                    }
                });
                match got {
                    Some(Ok(c)) => {
                        self.bind_conn(&n, h, Some(c));
                        self.app(
                            h,
                            "accept",
                            &n,
                            Some(c),
                            true,
                            "accepted".into(),
                            None,
                            None,
                        );
                    }
                    Some(Err(e)) => {
                        self.bind_conn(&n, h, None);
                        self.app(h, "accept", &n, None, false, e.to_string(), None, None);
                    }
                    None => {
                        self.bind_conn(&n, h, None);
                        let what = if *wait {
                            "timed out waiting"
                        } else {
                            "nothing to accept"
                        };
                        self.app(h, "accept", &n, None, false, what.into(), None, None);
                        if *wait {
                            self.fail(
                                line,
                                format!("accept on {ln} got no connection within {timeout:?}"),
                            );
                        }
                    }
                }
            }
            Action::Connect {
                host,
                to,
                from,
                name,
                wait,
                timeout,
            } => self.connect(line, *host, to, *from, name, *wait, *timeout)?,
            Action::Send { host, sock, data } => {
                let (n, c) = self.conn_of(line, sock, *host)?;
                let bytes = match data {
                    Data::Text(t) => t.clone(),
                    Data::Bytes(k) => pattern(*k),
                };
                self.send(*host, &n, c, &bytes);
            }
            Action::Recv {
                host,
                sock,
                mode,
                timeout,
            } => {
                let (n, c) = self.conn_of(line, sock, *host)?;
                self.recv(line, *host, &n, c, *mode, *timeout);
            }
            Action::Shutdown { host, sock } => {
                let (n, c) = self.conn_of(line, sock, *host)?;
                if self.defer_behind_writes(*host, &n, c, Op::Shutdown) {
                    return Ok(());
                }
                self.mark();
                let r = self.call(*host, c, |ep, now, c| {
                    ep.shutdown_write(now, c).map_err(|e| e.to_string())
                });
                self.simple_result(*host, "shutdown", &n, c, r);
            }
            Action::Close { host, sock } => {
                let (n, s) = self.sock(line, sock, *host)?;
                match s.kind {
                    SockKind::Listener(l) => {
                        self.mark();
                        let r = self
                            .net
                            .with_endpoint(*host, |ep, now| ep.close_listener(now, l))
                            .map_err(|e| e.to_string());
                        self.simple_result(*host, "close", &n, None, r);
                    }
                    SockKind::Conn(c) => {
                        if self.defer_behind_writes(*host, &n, c, Op::Close) {
                            return Ok(());
                        }
                        self.mark();
                        let r = self.call(*host, c, |ep, now, c| {
                            ep.close(now, c).map_err(|e| e.to_string())
                        });
                        self.simple_result(*host, "close", &n, c, r);
                    }
                }
            }
            Action::Abort { host, sock } => {
                let (n, c) = self.conn_of(line, sock, *host)?;
                // Abort throws away what the writer had not handed over yet, too.
                if let Some(id) = c {
                    let pending = self.outbox.remove(&(*host, id)).unwrap_or_default();
                    for p in pending.into_iter().filter(|p| p.op == Op::Write) {
                        let text = text_excerpt(&p.data);
                        let bytes = Some(p.written as u64);
                        self.app(
                            *host,
                            "send",
                            &p.sock,
                            Some(id),
                            false,
                            "aborted".into(),
                            bytes,
                            text,
                        );
                    }
                }
                self.mark();
                let r = self.call(*host, c, |ep, now, c| {
                    ep.abort(now, c).map_err(|e| e.to_string())
                });
                self.simple_result(*host, "abort", &n, c, r);
            }
            Action::Drop(rule) => self.net.add_drop_rule(rule.clone()),
            Action::Link { from, to, params } => self.net.set_link(*from, *to, *params),
            Action::Wait(d) => {
                let deadline = self.deadline(*d);
                self.advance(deadline, |_| false);
            }
            Action::WaitUntil { conds, timeout } => {
                let deadline = self.deadline(*timeout);
                let ok = self.advance(deadline, |r| conds.iter().all(|c| r.cond_holds(c)));
                if !ok {
                    let unmet: Vec<String> = conds
                        .iter()
                        .filter(|c| !self.cond_holds(c))
                        .map(|c| format!("{} ({})", self.cond_text(c), self.cond_actual(c)))
                        .collect();
                    self.fail(
                        line,
                        format!(
                            "wait until timed out after {timeout:?}: {}",
                            unmet.join(", ")
                        ),
                    );
                }
            }
            Action::Expect(c) => {
                let text = self.cond_text(c);
                if self.cond_holds(c) {
                    self.net
                        .note(NoteKind::Check { ok: true }, format!("expect {text}"));
                } else {
                    let actual = self.cond_actual(c);
                    self.fail(line, format!("expect {text}: {actual}"));
                }
            }
            Action::Repeat { count, var, body } => {
                let block = self.repeat_blocks;
                self.repeat_blocks += 1;
                for k in 0..*count {
                    self.net.note(
                        NoteKind::Iteration {
                            block,
                            n: k,
                            of: *count,
                        },
                        format!("repeat {}/{}", k + 1, count),
                    );
                    self.vars.push((var.clone(), k));
                    let r = self.block(body);
                    self.vars.pop();
                    r?;
                }
                self.net.note(
                    NoteKind::RepeatEnd { block },
                    format!("end of repeat ×{count}"),
                );
            }
            Action::InjectSyn { count, from, to } => {
                let dst = self.target_addr(to, Some(*from)).ok_or_else(|| {
                    self.err(
                        line,
                        "the target host has no address of the source's family",
                    )
                })?;
                for k in 0..*count {
                    let src = SocketAddr::new(add_to_ip(*from, k), 1024 + (k % 60_000) as u16);
                    let seq: u32 = self.rng.gen();
                    match crate::decode::build_syn(src, dst, seq) {
                        Some(d) => self.net.inject(d),
                        None => {
                            return Err(
                                self.err(line, format!("cannot build a SYN from {src} to {dst}"))
                            )
                        }
                    }
                }
            }
            Action::Sample { host } => {
                let s = self.snapshot(*host);
                self.samples.entry(*host).or_default().push(s);
            }
            Action::Diagnose { host } => self.diagnose(*host),
            Action::Say(t) => self.net.note(NoteKind::Say, t.clone()),
        }
        Ok(())
    }

    fn bind_conn(&mut self, name: &str, host: usize, conn: Option<ConnHandle>) {
        if let Some(c) = conn {
            self.names.insert((host, c), name.to_string());
        }
        self.socks.insert(
            name.to_string(),
            Sock {
                host,
                kind: SockKind::Conn(conn),
                last_result: String::new(),
                received: 0,
            },
        );
    }

    fn target_addr(&self, to: &Target, like: Option<IpAddr>) -> Option<SocketAddr> {
        match to {
            Target::Addr(a) => Some(*a),
            Target::Host(h, port) => {
                address_for(&self.net.hosts()[*h].addrs, like).map(|ip| SocketAddr::new(ip, *port))
            }
        }
    }

    fn call(
        &mut self,
        host: usize,
        conn: Option<ConnHandle>,
        f: impl FnOnce(&mut tcpfsm_core::Endpoint, Instant, ConnHandle) -> Result<(), TcpError>,
    ) -> Result<(), TcpError> {
        match conn {
            None => Err(InvalidHandle.to_string()),
            Some(c) => self.net.with_endpoint(host, |ep, now| f(ep, now, c)),
        }
    }

    fn simple_result(
        &mut self,
        host: usize,
        call: &str,
        n: &str,
        c: Option<ConnHandle>,
        r: Result<(), TcpError>,
    ) {
        match r {
            Ok(()) => self.app(host, call, n, c, true, "ok".into(), None, None),
            Err(e) => self.app(host, call, n, c, false, e.to_string(), None, None),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn connect(
        &mut self,
        line: usize,
        host: usize,
        to: &Target,
        from: Option<(Option<IpAddr>, u16)>,
        name: &crate::script::Name,
        wait: bool,
        timeout: Duration,
    ) -> Result<(), ScriptError> {
        let n = self.resolve(name);
        let local_ip_hint = from.and_then(|f| f.0);
        let remote = self
            .target_addr(to, local_ip_hint)
            .ok_or_else(|| self.err(line, "the target host has no address of the right family"))?;
        let local_ip = match local_ip_hint {
            Some(ip) => ip,
            None => {
                address_for(&self.net.hosts()[host].addrs, Some(remote.ip())).ok_or_else(|| {
                    self.err(
                        line,
                        format!("host has no address of the family of {remote}"),
                    )
                })?
            }
        };
        let local = SocketAddr::new(local_ip, from.map_or(0, |f| f.1));
        self.mark();
        let r = self
            .net
            .with_endpoint(host, |ep, now| ep.connect(now, local, remote));
        let c = match r {
            Err(e) => {
                self.bind_conn(&n, host, None);
                self.app(host, "connect", &n, None, false, e.to_string(), None, None);
                return Ok(());
            }
            Ok(c) => c,
        };
        self.bind_conn(&n, host, Some(c));
        if !wait {
            self.app(
                host,
                "connect",
                &n,
                Some(c),
                true,
                "in progress".into(),
                None,
                None,
            );
            return Ok(());
        }
        let deadline = self.deadline(timeout);
        // Blocking connect returns once the handshake completes or the connection dies.
        self.connecting = Some((host, c));
        let done = self.advance(deadline, |r| {
            r.closed.contains_key(&(host, c))
                || r.net
                    .conn_state(host, c)
                    .is_some_and(|s| s.is_synchronized())
        });
        self.connecting = None;
        let (ok, result) = if let Some(reason) = self.closed.get(&(host, c)) {
            (false, reason.name().to_string())
        } else if done {
            (true, "established".to_string())
        } else {
            self.fail(
                line,
                format!("connect {n} did not complete within {timeout:?}"),
            );
            (false, "still connecting".to_string())
        };
        self.app(host, "connect", &n, Some(c), ok, result, None, None);
        Ok(())
    }

    /// `send`: hands the data to the application's writer. What fits in the send buffer is
    /// queued at once; the rest is written as space opens up while the script goes on (as a
    /// writer thread would), so a sender does not deadlock against a receiver the script has
    /// not reached yet. The call's result is recorded when the last byte was queued.
    fn send(&mut self, host: usize, n: &str, c: Option<ConnHandle>, data: &[u8]) {
        let Some(c) = c else {
            self.app(
                host,
                "send",
                n,
                None,
                false,
                InvalidHandle.to_string(),
                None,
                None,
            );
            return;
        };
        self.mark();
        self.outbox
            .entry((host, c))
            .or_default()
            .push_back(Pending {
                sock: n.to_string(),
                conn: c,
                op: Op::Write,
                data: data.to_vec(),
                written: 0,
            });
        self.pump_outbox();
        if self.outbox.contains_key(&(host, c)) {
            // Still writing: its result comes later, at its own time.
            self.mark = None;
        }
    }

    /// Writes pending `send` data wherever the send buffer has room, recording each call's
    /// result once its last byte is queued (or an error stops it).
    fn pump_outbox(&mut self) {
        let keys: Vec<(usize, ConnHandle)> = self.outbox.keys().copied().collect();
        for key in keys {
            let host = key.0;
            while let Some(p) = self.outbox.get_mut(&key).and_then(|q| q.front_mut()) {
                let c = p.conn;
                if p.op != Op::Write {
                    // The writes before it are done: the deferred close or shutdown happens now.
                    let (op, sock) = (p.op, p.sock.clone());
                    self.outbox.get_mut(&key).and_then(|q| q.pop_front());
                    let r = self.net.with_endpoint(host, |ep, now| match op {
                        Op::Close => ep.close(now, c).map_err(|e| e.to_string()),
                        _ => ep.shutdown_write(now, c).map_err(|e| e.to_string()),
                    });
                    let call = if op == Op::Close { "close" } else { "shutdown" };
                    self.simple_result(host, call, &sock, Some(c), r);
                    continue;
                }
                let mut result: Option<Result<(), TcpError>> = None;
                while p.written < p.data.len() {
                    let off = p.written;
                    let r = self
                        .net
                        .with_endpoint(host, |ep, now| ep.send(now, c, &p.data[off..]));
                    match r {
                        Ok(k) if k > 0 => p.written += k,
                        Ok(_) => break,
                        Err(e) => {
                            result = Some(Err(e.to_string()));
                            break;
                        }
                    }
                }
                if result.is_none() && p.written == p.data.len() {
                    result = Some(Ok(()));
                }
                let Some(result) = result else { break };
                let Some(p) = self.outbox.get_mut(&key).and_then(|q| q.pop_front()) else {
                    break;
                };
                let text = text_excerpt(&p.data);
                let bytes = Some(p.written as u64);
                match result {
                    Ok(()) => self.app(
                        host,
                        "send",
                        &p.sock,
                        Some(c),
                        true,
                        "sent".into(),
                        bytes,
                        text,
                    ),
                    Err(e) => self.app(
                        host,
                        "send",
                        &p.sock,
                        Some(c),
                        false,
                        e.to_string(),
                        bytes,
                        text,
                    ),
                }
            }
            if self.outbox.get(&key).is_some_and(|q| q.is_empty()) {
                self.outbox.remove(&key);
            }
        }
    }

    /// Queues a `close` or `shutdown` behind the connection's pending writes, as a writer
    /// thread that writes then closes would; true if it was deferred.
    fn defer_behind_writes(
        &mut self,
        host: usize,
        sock: &str,
        c: Option<ConnHandle>,
        op: Op,
    ) -> bool {
        let Some(c) = c else { return false };
        match self.outbox.get_mut(&(host, c)) {
            Some(q) => {
                q.push_back(Pending {
                    sock: sock.to_string(),
                    conn: c,
                    op,
                    data: Vec::new(),
                    written: 0,
                });
                true
            }
            None => false,
        }
    }

    /// One step of the network, with everything the applications do in the background.
    fn step(&mut self, deadline: Instant) -> bool {
        let progressed = self.net.step(deadline);
        self.drain_notices();
        self.pump_outbox();
        progressed
    }

    fn recv(
        &mut self,
        line: usize,
        host: usize,
        n: &str,
        c: Option<ConnHandle>,
        mode: RecvMode,
        timeout: Duration,
    ) {
        let Some(c) = c else {
            self.app(
                host,
                "recv",
                n,
                None,
                false,
                InvalidHandle.to_string(),
                None,
                None,
            );
            return;
        };
        let mut got: Vec<u8> = Vec::new();
        let mut eof = false;
        let mut error: Option<TcpError> = None;
        let mut buf = vec![0u8; 64 * 1024];
        let deadline = self.deadline(if mode == RecvMode::Available {
            Duration::ZERO
        } else {
            timeout
        });
        let satisfied = |got: &Vec<u8>, eof: bool, error: &Option<TcpError>| {
            eof || error.is_some()
                || match mode {
                    RecvMode::Available => true,
                    RecvMode::Exactly(k) => got.len() >= k,
                    RecvMode::UntilEof => false,
                }
        };
        loop {
            // Read everything there is now.
            loop {
                let want = match mode {
                    RecvMode::Exactly(k) => (k - got.len().min(k)).min(buf.len()),
                    _ => buf.len(),
                };
                if want == 0 {
                    break;
                }
                match self
                    .net
                    .with_endpoint(host, |ep, now| ep.recv(now, c, &mut buf[..want]))
                {
                    Ok(Some(0)) => {
                        eof = true;
                        break;
                    }
                    Ok(Some(k)) => got.extend_from_slice(&buf[..k]),
                    Ok(None) => break,
                    Err(e) => {
                        error = Some(e.to_string());
                        break;
                    }
                }
            }
            self.drain_notices();
            if satisfied(&got, eof, &error) || !self.step(deadline) {
                break;
            }
        }
        if let Some(s) = self.socks.get_mut(n) {
            s.received += got.len() as u64;
        }
        let text = text_excerpt(&got);
        let bytes = Some(got.len() as u64);
        if let Some(e) = error {
            self.app(host, "recv", n, Some(c), false, e.to_string(), bytes, text);
        } else if eof {
            self.app(host, "recv", n, Some(c), true, "eof".into(), bytes, text);
        } else if got.is_empty() && mode == RecvMode::Available {
            self.app(
                host,
                "recv",
                n,
                Some(c),
                true,
                "would block".into(),
                bytes,
                text,
            );
        } else {
            let complete = !matches!(mode, RecvMode::Exactly(k) if got.len() < k)
                && mode != RecvMode::UntilEof;
            self.app(
                host,
                "recv",
                n,
                Some(c),
                complete,
                "data".into(),
                bytes,
                text,
            );
            if !complete {
                let what = match mode {
                    RecvMode::UntilEof => "end-of-stream".to_string(),
                    RecvMode::Exactly(k) => format!("{k} bytes"),
                    RecvMode::Available => String::new(),
                };
                self.fail(
                    line,
                    format!("recv {n} did not get {what} within {timeout:?}"),
                );
            }
        }
    }

    /// A census sample of a host for tcpfsm-observe, with the counters and settings it has.
    fn snapshot(&self, host: usize) -> Snapshot {
        let ep = self.net.endpoint(host);
        let st = ep.stats();
        let cfg = ep.config();
        let census = ep.census();
        let mut s = Snapshot {
            time_ms: self.net.now().as_micros() / 1000,
            census,
            ..Snapshot::default()
        };
        s.counters = Some(tcpfsm_observe::Counters {
            active_opens: st.active_opens,
            passive_opens: st.passive_opens,
            attempt_fails: st.attempt_fails,
            estab_resets: st.estab_resets,
            curr_estab: st.curr_estab,
            in_segs: st.in_segs,
            out_segs: st.out_segs,
            retrans_segs: st.retrans_segs,
            in_errs: st.in_errs,
            out_rsts: st.out_rsts,
            listen_overflows: st.listen_overflows,
            listen_drops: st.listen_drops,
            syncookies_sent: st.syncookies_sent,
            syncookies_recv: st.syncookies_recv,
            syncookies_failed: st.syncookies_failed,
            time_wait: census.get(State::TimeWait),
            ..tcpfsm_observe::Counters::default()
        });
        // TIME_WAIT grouped by remote, counting those holding a port of the ephemeral range
        // (what runs out when one client talks to one server), when the endpoint lists them.
        let mut by_remote: Vec<tcpfsm_observe::RemoteCount> = Vec::new();
        for c in ep
            .connections()
            .iter()
            .filter(|c| c.state == State::TimeWait)
        {
            let eph =
                (cfg.ephemeral_ports.0..=cfg.ephemeral_ports.1).contains(&c.tuple.local.port());
            match by_remote.iter_mut().find(|g| g.remote == c.tuple.remote) {
                Some(g) => {
                    g.count += 1;
                    g.ephemeral_local += u64::from(eph);
                }
                None => by_remote.push(tcpfsm_observe::RemoteCount {
                    remote: c.tuple.remote,
                    count: 1,
                    ephemeral_local: u64::from(eph),
                }),
            }
        }
        if !by_remote.is_empty() {
            by_remote.sort_by(|a, b| b.count.cmp(&a.count).then(a.remote.cmp(&b.remote)));
            s.time_wait_by_remote = Some(by_remote);
        }
        s.sysctls = tcpfsm_observe::Sysctls {
            ephemeral_ports: Some(tcpfsm_observe::PortRange {
                low: cfg.ephemeral_ports.0,
                high: cfg.ephemeral_ports.1,
            }),
            max_tw_buckets: Some(u64::from(cfg.max_tw_buckets)),
            fin_timeout_secs: Some(cfg.fin_timeout.as_secs()),
            syncookies: Some(match cfg.syncookies {
                tcpfsm_core::SynCookies::Off => 0,
                tcpfsm_core::SynCookies::OnOverflow => 1,
                tcpfsm_core::SynCookies::Always => 2,
            }),
            max_syn_backlog: Some(u64::from(cfg.max_syn_backlog)),
            somaxconn: Some(u64::from(cfg.somaxconn)),
            tw_reuse: Some(match cfg.tw_reuse {
                tcpfsm_core::TwReuse::Off => 0,
                tcpfsm_core::TwReuse::On => 1,
                tcpfsm_core::TwReuse::LoopbackOnly => 2,
            }),
        };
        s
    }

    fn diagnose(&mut self, host: usize) {
        let mut samples = self.samples.get(&host).cloned().unwrap_or_default();
        let now = self.snapshot(host);
        if samples.last().map(|s| s.census) != Some(now.census) {
            samples.push(now);
        }
        let verdicts = tcpfsm_observe::diagnose(&samples, &tcpfsm_observe::Thresholds::default());
        let mut any = false;
        for v in verdicts.iter().filter(|v| v.level != Level::Ok) {
            any = true;
            let mut text = format!("{}: {} — {}", v.rule.title(), v.level.name(), v.summary);
            if !v.advice.is_empty() {
                text.push_str(&format!(". {}", v.advice));
            }
            self.net.note(
                NoteKind::Diagnosis {
                    host,
                    rule: v.rule.name().to_string(),
                    severity: v.level.name().to_string(),
                },
                text,
            );
        }
        if !any {
            self.net.note(
                NoteKind::Diagnosis {
                    host,
                    rule: "all".into(),
                    severity: "ok".into(),
                },
                format!("all {} diagnosis rules ok", verdicts.len()),
            );
        }
    }
}
