//! Runs a parsed script against a [`Stack`]: packetdrill's event loop.
//!
//! Events run in order at their times. An inbound packet is injected at its time; an outbound
//! packet is looked for among what the stack sent, waiting (virtual or real time) until the end
//! of its time window plus tolerance; a system call runs at its time, and one that would block
//! is retried as the stack makes progress until it returns (`...END` calls run alongside later
//! events, as on packetdrill's system-call thread; others hold the script until they return,
//! as on its main thread). Relative times count from when the previous event finished, except
//! that consecutive inbound packets are spaced from each other's scheduled times.

mod call;
mod packets;
mod sock;
mod syscall;

use crate::compare::Mode;
use crate::config::{HeaderError, ScriptConfig};
use crate::outcome::{Failure, Outcome, TraceEntry, Verdict};
use crate::script::{Action, Direction, Event, EventTime, Script};
use crate::shell::{self, ShellAction};
use crate::stack::{Applied, Fd, Micros, Stack, SysErr};
use crate::sysctl::{Translation, Translator};
use sock::{Sock, SockState};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

pub use sock::SockState as SocketState;

/// How to run scripts.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub mode: Mode,
    /// Run commands the runner does not interpret (stacks that can: `linux`).
    pub allow_shell: bool,
    /// A lower bound on every script's `--tolerance_usecs` (for busy machines).
    pub tolerance_floor_usecs: i64,
}

/// Why a script stopped early.
pub(crate) enum Stop {
    Fail(Failure),
    Skip(String, u32),
}

type Step<T = ()> = Result<T, Stop>;

/// A script descriptor's entry.
#[derive(Debug, Clone, Copy)]
struct FdEntry {
    live: Fd,
    sock: usize,
    nonblock: bool,
}

pub(crate) struct Runner<'a, S: Stack> {
    st: S,
    script: &'a Script,
    cfg: ScriptConfig,
    opts: &'a RunOptions,
    dir: &'a Path,
    socks: Vec<Sock>,
    fds: BTreeMap<i32, FdEntry>,
    sut: Option<usize>,
    next_remote_port: u16,
    pending: Option<syscall::Pending>,
    trace: Vec<TraceEntry>,
    notes: Vec<String>,
    started: bool,
    xlat: Translator,
    /// Scheduled time of the previous event, and whether it was an inbound packet.
    last_time: Micros,
    last_inbound: bool,
    /// When the previous event's action happened (a packet was injected or seen sent, a
    /// call returned or started blocking): the base of the next relative time. Taken at the
    /// action rather than when the next event is read, so that a real-time run's
    /// bookkeeping (or a slow state check) does not shift the script.
    last_done: Micros,
}

/// Runs `script` (whose file lives in `dir`) on `stack`.
pub fn run<S: Stack>(stack: S, script: &Script, dir: &Path, opts: &RunOptions) -> Outcome {
    let cfg = match ScriptConfig::from_script(script) {
        Ok(mut c) => {
            c.tolerance_usecs = c.tolerance_usecs.max(opts.tolerance_floor_usecs);
            c
        }
        Err(HeaderError::Unsupported(what)) => {
            return Outcome {
                verdict: Verdict::Skip {
                    reason: format!("{what} is not supported"),
                    line: 1,
                },
                notes: Vec::new(),
                trace: Vec::new(),
                script_time_us: 0,
            }
        }
        Err(HeaderError::Bad { line, message }) => {
            return Outcome {
                verdict: Verdict::Fail(Failure {
                    line,
                    source: script.line(line).to_string(),
                    expected: String::new(),
                    actual: String::new(),
                    why: message,
                }),
                notes: Vec::new(),
                trace: Vec::new(),
                script_time_us: 0,
            }
        }
    };
    let mut r = Runner {
        st: stack,
        script,
        cfg,
        opts,
        dir,
        socks: Vec::new(),
        fds: BTreeMap::new(),
        sut: None,
        next_remote_port: 40_000,
        pending: None,
        trace: Vec::new(),
        notes: Vec::new(),
        started: false,
        xlat: Translator::default(),
        last_time: 0,
        last_inbound: false,
        last_done: 0,
    };
    let verdict = match r.run_all() {
        Ok(()) => Verdict::Pass,
        Err(Stop::Fail(f)) => Verdict::Fail(f),
        Err(Stop::Skip(reason, line)) => Verdict::Skip { reason, line },
    };
    Outcome {
        verdict,
        notes: r.notes,
        trace: r.trace,
        script_time_us: r.st.now(),
    }
}

impl<'a, S: Stack> Runner<'a, S> {
    fn fail(&self, line: u32, expected: String, actual: String, why: String) -> Stop {
        Stop::Fail(Failure {
            line,
            source: self.script.line(line).to_string(),
            expected,
            actual,
            why,
        })
    }

    fn sys_err(&self, line: u32, e: SysErr, what: &str) -> Stop {
        match e {
            SysErr::Unsupported(why) => Stop::Skip(format!("{what}: {why}"), line),
            SysErr::Errno(n) => self.fail(
                line,
                String::new(),
                crate::consts::errno_name(n).to_string(),
                format!("{what} failed"),
            ),
        }
    }

    fn ensure_started(&mut self, line: u32) -> Step {
        if !self.started {
            self.started = true;
            self.st
                .start()
                .map_err(|e| self.sys_err(line, e, "starting the stack"))?;
        }
        Ok(())
    }

    fn run_all(&mut self) -> Step {
        let script = self.script;
        if let Some(c) = &script.init_command {
            self.command(&c.text, c.pos.line)?;
        }
        for ev in &script.events {
            self.event(ev)?;
        }
        self.finish_pending_at_end()?;
        if let Some(c) = &script.cleanup_command {
            self.command(&c.text, c.pos.line)?;
        }
        Ok(())
    }

    /// The scheduled start and end (for ranges) of an event.
    fn schedule(&self, ev: &Event) -> (Micros, Micros) {
        let inbound = matches!(&ev.action, Action::Packet(p) if p.direction == Direction::Inbound);
        let base = if self.last_inbound && inbound {
            self.last_time
        } else {
            self.last_done
        };
        match ev.time {
            EventTime::Absolute(t) => (t, t),
            EventTime::Relative(t) => (base + t, base + t),
            EventTime::AbsoluteRange(a, b) => (a, b),
            EventTime::RelativeRange(a, b) => (base + a, base + b),
            EventTime::Any => (base, base),
        }
    }

    fn tolerance(&self, expected: Micros) -> Micros {
        self.cfg.tolerance(expected - self.last_time)
    }

    fn event(&mut self, ev: &Event) -> Step {
        let line = ev.pos.line;
        let (start, end) = self.schedule(ev);
        let inbound = matches!(&ev.action, Action::Packet(p) if p.direction == Direction::Inbound);
        match &ev.action {
            Action::Code(code) => {
                self.ensure_started(line)?;
                self.wait_until(start, line)?;
                self.last_done = self.st.now();
                self.code(code, line)?;
            }
            Action::Packet(p) if p.unsupported.is_some() => {
                let what = p.unsupported.clone().unwrap_or_default();
                return Err(Stop::Skip(format!("{what} are not supported"), line));
            }
            Action::Command(c) => {
                self.wait_until(start, line)?;
                // A command takes no script time (its interpretation is instantaneous).
                let before = self.st.now();
                self.command(&c.text, line)?;
                self.last_done = before;
            }
            Action::Packet(p) => {
                self.ensure_started(line)?;
                match p.direction {
                    Direction::Inbound => {
                        self.wait_until(start, line)?;
                        self.last_done = self.st.now();
                        self.inbound(p, line)?;
                    }
                    Direction::Outbound => {
                        let any = ev.time == EventTime::Any;
                        self.last_done = self.outbound(p, line, start, end, any)?;
                    }
                }
            }
            Action::Syscall(s) => {
                self.ensure_started(line)?;
                self.finish_pending_before(line)?;
                self.wait_until(start, line)?;
                let end = s.end.map(|e| match ev.time {
                    EventTime::Relative(t) => start - t + e,
                    _ => e,
                });
                self.last_done = self.st.now();
                self.syscall(s, line, start, end)?;
                if self.pending.is_none() {
                    self.last_done = self.st.now();
                }
            }
        }
        self.last_time = start;
        self.last_inbound = inbound;
        Ok(())
    }

    /// Lets the stack run until `t` (retrying a blocked call on the way), then checks that
    /// the runner is not late (a real-time stack on a busy machine can be).
    fn wait_until(&mut self, t: Micros, line: u32) -> Step {
        loop {
            self.poll_pending()?;
            if self.st.now() >= t {
                break;
            }
            let watch = self.watch();
            if self.st.step(t, &watch) {
                self.poll_pending()?;
                break;
            }
        }
        let late = self.st.now() - t;
        let tol = self.tolerance(t);
        if late > tol {
            return Err(self.fail(
                line,
                format!("at {}", secs(t)),
                format!("at {}", secs(self.st.now())),
                format!(
                    "timing error: the runner reached this line {:.3} s late (tolerance {:.3} s); the machine is too busy for real time",
                    late as f64 / 1e6,
                    tol as f64 / 1e6
                ),
            ));
        }
        Ok(())
    }

    fn watch(&self) -> Vec<(Fd, i16)> {
        self.pending
            .as_ref()
            .map(|p| p.live_fds())
            .unwrap_or_default()
    }

    fn note(&mut self, line: u32, text: String) {
        self.notes.push(format!("line {line}: {text}"));
    }

    fn command(&mut self, text: &str, line: u32) -> Step {
        for it in shell::interpret(text, self.dir) {
            let at = if it.origin.is_empty() {
                String::new()
            } else {
                format!(" ({})", it.origin)
            };
            match it.action {
                ShellAction::Set { key, value } => self.setting(&key, &value, line, &at)?,
                ShellAction::Ignored { what, reason } => {
                    self.note(line, format!("ignored `{what}`{at}: {reason}"))
                }
                ShellAction::CheckStates {
                    v6,
                    port,
                    pattern,
                    expect,
                } => {
                    self.ensure_started(line)?;
                    let all = self.st.states();
                    let n = all
                        .0
                        .iter()
                        .filter(|(s, l, r)| {
                            v6.is_none_or(|v6| l.is_ipv6() == v6)
                                && port.is_none_or(|p| l.port() == p || r.port() == p)
                                && freebsd_state_name(*s).contains(pattern.as_str())
                        })
                        .count();
                    self.trace.push(TraceEntry {
                        line,
                        at: self.st.now(),
                        observed: format!("{n} in {pattern}"),
                        key: format!("{n} in {pattern}"),
                    });
                    if !n.to_string().contains(expect.as_str()) {
                        let listing: Vec<String> = all
                            .0
                            .iter()
                            .map(|(s, l, r)| format!("{} {l} {r}", freebsd_state_name(*s)))
                            .collect();
                        return Err(self.fail(
                            line,
                            format!("{expect} connection(s) in {pattern}"),
                            format!("{n} [{}]", listing.join("; ")),
                            "state check failed".into(),
                        ));
                    }
                }
                ShellAction::Other { command } => {
                    if self.opts.allow_shell {
                        self.ensure_started(line)?;
                        match self.st.shell(&command) {
                            Ok(0) => continue,
                            Ok(code) => {
                                return Err(self.fail(
                                    line,
                                    "exit status 0".into(),
                                    format!("exit status {code}"),
                                    format!("command `{command}` failed"),
                                ))
                            }
                            Err(SysErr::Unsupported(why)) => {
                                return Err(Stop::Skip(
                                    format!("command `{command}`{at}: {why}"),
                                    line,
                                ))
                            }
                            Err(e) => return Err(self.sys_err(line, e, "running a command")),
                        }
                    }
                    return Err(Stop::Skip(
                        format!(
                            "command `{command}`{at} is not interpreted (--allow-shell runs it on the linux stack)"
                        ),
                        line,
                    ));
                }
            }
        }
        Ok(())
    }

    /// `%{ assert tcpi_state == TCP_ESTABLISHED }%`: the one kind of code block interpreted
    /// (packetdrill evaluates it against the socket under test's TCP_INFO); others are
    /// Python to run, and skip the script.
    fn code(&mut self, code: &str, line: u32) -> Step {
        let skip = || Stop::Skip("%{ python }% code blocks are not run".into(), line);
        let c = code.trim().trim_end_matches(';');
        let Some(rest) = c.strip_prefix("assert") else {
            return Err(skip());
        };
        let rest = rest.split(',').next().unwrap_or("").trim();
        let Some((lhs, rhs)) = rest.split_once("==") else {
            return Err(skip());
        };
        if lhs.trim() != "tcpi_state" {
            return Err(skip());
        }
        let want = tcpi_state_name(rhs.trim()).ok_or_else(skip)?;
        let sock = self.sut_index();
        let fd = self.fds.values().find(|f| f.sock == sock).map(|f| f.live);
        let got = fd.and_then(|fd| self.st.fd_state(fd));
        let shown = got.map(freebsd_state_name).unwrap_or("no socket");
        self.trace.push(TraceEntry {
            line,
            at: self.st.now(),
            observed: format!("tcpi_state {shown}"),
            key: format!("tcpi_state {shown}"),
        });
        if got != Some(want) {
            return Err(self.fail(
                line,
                format!("tcpi_state {}", freebsd_state_name(want)),
                format!("tcpi_state {shown}"),
                "state check failed".into(),
            ));
        }
        Ok(())
    }

    fn setting(&mut self, key: &str, value: &str, line: u32, at: &str) -> Step {
        match self.xlat.translate(key, value) {
            Err(m) => Err(self.fail(line, String::new(), String::new(), m)),
            Ok(Translation::Matches(why)) => {
                self.note(line, format!("{key}={value}{at}: already so ({why})"));
                Ok(())
            }
            Ok(Translation::Ignored(why)) => {
                self.note(line, format!("ignored {key}={value}{at}: {why}"));
                Ok(())
            }
            Ok(Translation::Linux(pairs)) => {
                for (k, v) in pairs {
                    match self.st.apply(&k, &v) {
                        Ok(Applied::Set) => {}
                        Ok(Applied::Ignored(why)) => {
                            self.note(line, format!("ignored {k}={v}{at}: {why}"))
                        }
                        Err(SysErr::Unsupported(why)) => {
                            return Err(Stop::Skip(format!("{k}={v}{at}: {why}"), line))
                        }
                        Err(SysErr::Errno(e)) => {
                            return Err(self.fail(
                                line,
                                String::new(),
                                crate::consts::errno_name(e).into(),
                                format!("setting {k}={v}{at} failed"),
                            ))
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// The socket under test, created on first use for scripts that start with packets.
    fn sut_index(&mut self) -> usize {
        if let Some(i) = self.sut {
            return i;
        }
        let local = SocketAddr::new(self.cfg.local_ip, self.cfg.bind_port);
        let remote = SocketAddr::new(self.cfg.remote_ip, self.take_remote_port());
        self.socks.push(Sock::new(SockState::New, local, remote));
        self.sut = Some(self.socks.len() - 1);
        self.socks.len() - 1
    }

    fn take_remote_port(&mut self) -> u16 {
        let p = self.next_remote_port;
        self.next_remote_port = self.next_remote_port.wrapping_add(1).max(40_000);
        p
    }
}

/// A `tcpi_state` constant: Linux's `TCP_*` names, FreeBSD's `TCPI_*`, or the number.
fn tcpi_state_name(s: &str) -> Option<tcpfsm_core::State> {
    use tcpfsm_core::State::*;
    let n = s
        .strip_prefix("TCPI_")
        .or_else(|| s.strip_prefix("TCP_"))
        .unwrap_or(s);
    Some(match n {
        "ESTABLISHED" | "1" => Established,
        "SYN_SENT" | "2" => SynSent,
        "SYN_RECV" | "SYN_RECEIVED" | "3" => SynReceived,
        "FIN_WAIT1" | "FIN_WAIT_1" | "4" => FinWait1,
        "FIN_WAIT2" | "FIN_WAIT_2" | "5" => FinWait2,
        "TIME_WAIT" | "6" => TimeWait,
        "CLOSE" | "CLOSED" | "7" => Closed,
        "CLOSE_WAIT" | "8" => CloseWait,
        "LAST_ACK" | "9" => LastAck,
        "LISTEN" | "10" => Listen,
        "CLOSING" | "11" => Closing,
        _ => return None,
    })
}

/// State names as FreeBSD's `sockstat -s` prints them.
pub fn freebsd_state_name(s: tcpfsm_core::State) -> &'static str {
    use tcpfsm_core::State::*;
    match s {
        Closed => "CLOSED",
        Listen => "LISTEN",
        SynSent => "SYN_SENT",
        SynReceived => "SYN_RCVD",
        Established => "ESTABLISHED",
        CloseWait => "CLOSE_WAIT",
        FinWait1 => "FIN_WAIT_1",
        Closing => "CLOSING",
        LastAck => "LAST_ACK",
        FinWait2 => "FIN_WAIT_2",
        TimeWait => "TIME_WAIT",
    }
}

/// `1.250000` seconds.
pub(crate) fn secs(us: Micros) -> String {
    format!("{:.6}", us as f64 / 1e6)
}

/// `0.140` seconds, for tables.
pub(crate) fn secs_short(us: Micros) -> String {
    format!("{:.3}", us as f64 / 1e6)
}
