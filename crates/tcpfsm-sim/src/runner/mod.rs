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
use tcpfsm_observe::Snapshot;

use crate::inject::Injector;
use crate::network::{address_for, AppNotice, Network};
use crate::script::{Action, Data, Script, ScriptError, Stmt, Target};
use crate::trace::{AppRec, NoteKind, Trace, TraceEvent};

mod conds;
mod diagnose;
mod io;

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
    net: Network<'s>,
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
    marked: bool,
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

/// What a streamed run reports besides its events.
#[derive(Debug)]
pub struct Report {
    /// Expectations that did not hold and waits that timed out, as `file:line: text`.
    pub failures: Vec<String>,
    /// Segments put on the wire.
    pub frames: u64,
    /// Events handed to the sink.
    pub events: u64,
    /// Writing to the sink failed (the run stopped there).
    pub output_error: Option<std::io::Error>,
    /// Virtual time at the end.
    pub end_us: u64,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs a script and records its whole trace. `seed` overrides the script's own `seed`
/// line (default 1). For long runs use [`run_with`], which keeps nothing.
pub fn run(script: &Script, seed: Option<u64>) -> Result<Outcome, ScriptError> {
    let mut rec = crate::sink::Recorder::default();
    let report = run_with(script, seed, &mut rec)?;
    Ok(Outcome {
        trace: rec.trace,
        failures: report.failures,
    })
}

/// Runs a script, handing every event to `sink` as it happens.
pub fn run_with(
    script: &Script,
    seed: Option<u64>,
    sink: &mut dyn crate::sink::Sink,
) -> Result<Report, ScriptError> {
    let seed = seed.or(script.seed).unwrap_or(1);
    let mut net = Network::with_sink(seed, Box::new(sink));
    net.set_default_link(script.default_link);
    for h in &script.hosts {
        net.add_host(&h.name, h.addrs.clone(), h.config.clone());
    }
    for (a, b, p) in &script.links {
        net.set_link(*a, *b, *p);
    }
    net.begin(&script.name);
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
        marked: false,
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
    r.net.finish();
    Ok(Report {
        failures: r.failures,
        frames: r.net.frames(),
        events: r.net.events(),
        end_us: r.net.now().as_micros(),
        output_error: r.net.take_output_error(),
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

    /// The name an `as NAME` binds; the parser rules out a name bound twice, this is the
    /// last line of defence (a name held by a socket is never silently rebound).
    fn claim(&self, line: usize, name: &crate::script::Name) -> Result<String, ScriptError> {
        let n = self.resolve(name);
        if self.socks.contains_key(&n) {
            return Err(self.err(line, format!("socket name {n:?} is already in use")));
        }
        Ok(n)
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
        if std::mem::take(&mut self.marked) {
            self.net.push_call(rec);
        } else {
            self.net.push(rec);
        }
    }

    /// An immediate call is about to be made: its record goes before what it causes.
    fn mark(&mut self) {
        self.marked = true;
        self.net.mark_call();
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

    fn block(&mut self, stmts: &[Stmt]) -> Result<(), ScriptError> {
        for st in stmts {
            // A stalled network, or an output that cannot be written (a closed pipe): stop.
            if self.net.stalled().is_some() || self.net.output_error().is_some() {
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
                let n = self.claim(line, name)?;
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
                let n = self.claim(line, name)?;
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
            Action::InjectSyn {
                count,
                from,
                to,
                over,
            } => {
                let dst = self.target_addr(to, Some(*from)).ok_or_else(|| {
                    self.err(
                        line,
                        "the target host has no address of the source's family",
                    )
                })?;
                if crate::decode::build_syn(SocketAddr::new(*from, 1024), dst, 0).is_none() {
                    return Err(self.err(line, format!("cannot build a SYN from {from} to {dst}")));
                }
                let seed: u64 = self.rng.gen();
                let now = self.net.now().as_micros();
                let inj = Injector::new(*from, dst, *count, now, over.as_micros() as u64, seed);
                self.net.add_injector(inj);
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
        let n = self.claim(line, name)?;
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
}
