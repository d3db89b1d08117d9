//! The scenario script: a small line-oriented language (documented in SCRIPT.md).
//!
//! Parsing checks everything that can be checked before running (syntax, known hosts, known
//! settings, value ranges) and reports the first problem as `file:line: message`. Socket
//! names may contain `$var` from an enclosing `repeat … as var`, so they are resolved when the
//! statement runs.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tcpfsm_core::{Config, SynCookies, TwReuse};
use tcpfsm_states::State;

use crate::link::LinkParams;

/// A script problem, with the line it is on (1-based; 0 when it concerns the whole file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScriptError {
    pub file: String,
    pub line: usize,
    pub msg: String,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.msg)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.msg)
        }
    }
}

/// A socket name, possibly with `$var` references filled in at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(pub String);

/// Where to connect or inject to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A declared host's first address (of the family asked for by `ADDR`), and a port.
    Host(usize, u16),
    Addr(SocketAddr),
}

/// What `send` sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    Text(Vec<u8>),
    /// N bytes of a fixed pattern.
    Bytes(usize),
}

/// How much `recv` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvMode {
    /// What has arrived, without waiting.
    Available,
    /// Until this many bytes were read (or end-of-stream, or an error).
    Exactly(usize),
    /// Until end-of-stream (or an error).
    UntilEof,
}

/// Which segments a drop rule matches by flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagMatch {
    Any,
    /// Exactly these flags, ignoring PSH, ECE and CWR (`drop ACK` = pure ACK kinds only).
    Exact(u8),
    /// At least these flags (`drop with FIN`).
    Contains(u8),
}

/// Bits used for flag matching (TCP header order).
pub mod flag {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
    pub const NAMES: [(&str, u8); 8] = [
        ("FIN", FIN),
        ("SYN", SYN),
        ("RST", RST),
        ("PSH", PSH),
        ("ACK", ACK),
        ("URG", URG),
        ("ECE", ECE),
        ("CWR", CWR),
    ];

    /// Bits of a comma-separated flag list as the trace writes it (`SYN,ACK`).
    pub fn bits_of(list: &str) -> u8 {
        list.split(',')
            .filter_map(|n| NAMES.iter().find(|(k, _)| *k == n).map(|(_, b)| *b))
            .fold(0, |a, b| a | b)
    }
}

impl FlagMatch {
    pub fn matches(self, bits: u8) -> bool {
        let ignore = flag::PSH | flag::ECE | flag::CWR;
        match self {
            FlagMatch::Any => true,
            FlagMatch::Exact(f) => bits & !ignore == f & !ignore,
            FlagMatch::Contains(f) => bits & f == f,
        }
    }
}

/// "Drop the next segment from HOST matching FLAGS", with an optional skip and count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropRule {
    pub from: usize,
    pub to: Option<usize>,
    pub flags: FlagMatch,
    /// Matching segments to let through first (`nth 3` skips 2).
    pub skip: u32,
    /// Matching segments to drop.
    pub count: u32,
}

/// A condition for `wait until` and `expect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// The socket's connection is in this state (CLOSED once it is gone).
    InState(Name, State),
    /// The socket's last application result (e.g. `connection refused`).
    Result(Name, String),
    /// The endpoint told the application the socket's connection is over (any reason).
    Closed(Name),
    /// … and not gracefully (reset, refused, timed out, aborted).
    Error(Name),
    /// The peer's FIN has arrived: reading would return end-of-stream once the data is read.
    Eof(Name),
    /// No segment in flight.
    Quiet,
    /// The host has exactly N connections in this state (its census).
    Count(usize, State, u64),
    /// The host has at least N connections in this state.
    AtLeast(usize, State, u64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Listen {
        host: usize,
        addr: Option<IpAddr>,
        port: u16,
        backlog: u32,
        name: Name,
    },
    Accept {
        host: usize,
        listener: Name,
        name: Name,
        wait: bool,
        timeout: Duration,
    },
    Connect {
        host: usize,
        to: Target,
        from: Option<(Option<IpAddr>, u16)>,
        name: Name,
        wait: bool,
        timeout: Duration,
    },
    Send {
        host: usize,
        sock: Name,
        data: Data,
    },
    Recv {
        host: usize,
        sock: Name,
        mode: RecvMode,
        timeout: Duration,
    },
    Shutdown {
        host: usize,
        sock: Name,
    },
    Close {
        host: usize,
        sock: Name,
    },
    Abort {
        host: usize,
        sock: Name,
    },
    Drop(DropRule),
    /// Change a link direction's impairments mid-run (the random stream continues).
    Link {
        from: usize,
        to: usize,
        params: LinkParams,
    },
    Wait(Duration),
    WaitUntil {
        conds: Vec<Cond>,
        timeout: Duration,
    },
    Expect(Cond),
    Repeat {
        count: u32,
        var: String,
        body: Vec<Stmt>,
    },
    /// Spoofed SYNs from `count` made-up sources starting at `from`.
    InjectSyn {
        count: u32,
        from: IpAddr,
        to: Target,
    },
    /// Take a census sample of a host for later diagnosis.
    Sample {
        host: usize,
    },
    /// Judge a host's samples (and its state now) with tcpfsm-observe's rules.
    Diagnose {
        host: usize,
    },
    Say(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub line: usize,
    pub action: Action,
}

/// A declared host.
#[derive(Debug, Clone)]
pub struct HostDecl {
    pub name: String,
    pub addrs: Vec<IpAddr>,
    pub config: Config,
}

/// A parsed script, ready to run.
#[derive(Debug, Clone)]
pub struct Script {
    pub file: String,
    pub name: String,
    pub summary: String,
    pub seed: Option<u64>,
    pub hosts: Vec<HostDecl>,
    /// Initial link parameters per direction `(from, to)`; directions not listed use
    /// `default_link`.
    pub links: Vec<(usize, usize, LinkParams)>,
    pub default_link: LinkParams,
    pub stmts: Vec<Stmt>,
}

impl Script {
    pub fn host(&self, name: &str) -> Option<usize> {
        self.hosts.iter().position(|h| h.name == name)
    }
}

// ---------------------------------------------------------------------------------------
// Lexing

#[derive(Debug, Clone)]
struct Tok {
    text: String,
    quoted: bool,
}

fn tokenize(line: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '#' {
            break;
        } else if c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    None => return Err("unterminated string (missing closing \")".into()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('n') => s.push('\n'),
                        Some('r') => s.push('\r'),
                        Some('t') => s.push('\t'),
                        Some('\\') => s.push('\\'),
                        Some('"') => s.push('"'),
                        Some(o) => return Err(format!("unknown escape \\{o} in string")),
                        None => return Err("unterminated string (missing closing \")".into()),
                    },
                    Some(o) => s.push(o),
                }
            }
            toks.push(Tok {
                text: s,
                quoted: true,
            });
        } else {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '"' || c == '#' {
                    break;
                }
                s.push(c);
                chars.next();
            }
            toks.push(Tok {
                text: s,
                quoted: false,
            });
        }
    }
    Ok(toks)
}

// ---------------------------------------------------------------------------------------
// Values

/// `250us`, `10ms`, `1.5s`, `2m`, `1h` (the impairment language's durations).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    tcpfsm_impair::spec::parse_duration(s)
}

fn parse_num<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("bad {what} {s:?} (expected a whole number)"))
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "on" | "yes" | "true" | "1" => Ok(true),
        "off" | "no" | "false" | "0" => Ok(false),
        _ => Err(format!("expected on or off, found {s:?}")),
    }
}

/// `10.0.0.1:80`, `[fd00::1]:80`.
fn parse_socket_addr(s: &str) -> Option<SocketAddr> {
    s.parse().ok()
}

fn parse_flags(s: &str) -> Result<u8, String> {
    let mut bits = 0;
    for part in s.split([',', '+']) {
        let up = part.to_ascii_uppercase();
        match flag::NAMES.iter().find(|(n, _)| *n == up) {
            Some((_, b)) => bits |= b,
            None => {
                return Err(format!(
                    "unknown TCP flag {part:?} (expected SYN, ACK, FIN, RST, PSH, URG, ECE, CWR)"
                ))
            }
        }
    }
    Ok(bits)
}

/// The settings `set HOST KEY VALUE` understands, for error messages and docs.
pub const SETTINGS: &[&str] = &[
    "msl",
    "fin_timeout",
    "syncookies",
    "max_syn_backlog",
    "somaxconn",
    "synack_retries",
    "syn_retries",
    "retries2",
    "orphan_retries",
    "tw_reuse",
    "max_tw_buckets",
    "ephemeral_ports",
    "timestamps",
    "window_scaling",
    "sack",
    "mss",
    "recv_buffer",
    "send_buffer",
    "nagle",
    "delayed_ack",
    "rto_initial",
    "rto_min",
    "rto_max",
    "initial_cwnd",
    "keepalive",
];

/// Applies one `set` line to a host's configuration.
pub fn apply_setting(cfg: &mut Config, key: &str, value: &str) -> Result<(), String> {
    match key {
        "msl" => cfg.msl = parse_duration(value)?,
        "fin_timeout" => cfg.fin_timeout = parse_duration(value)?,
        "syncookies" => {
            cfg.syncookies = match value {
                "off" | "0" => SynCookies::Off,
                "on" | "overflow" | "1" => SynCookies::OnOverflow,
                "always" | "2" => SynCookies::Always,
                _ => return Err(format!("syncookies is off, on or always, not {value:?}")),
            }
        }
        "max_syn_backlog" => cfg.max_syn_backlog = parse_num(value, "count")?,
        "somaxconn" => cfg.somaxconn = parse_num(value, "count")?,
        "synack_retries" => cfg.synack_retries = parse_num(value, "count")?,
        "syn_retries" => cfg.syn_retries = parse_num(value, "count")?,
        "retries2" => cfg.retries2 = parse_num(value, "count")?,
        "orphan_retries" => cfg.orphan_retries = parse_num(value, "count")?,
        "tw_reuse" => {
            cfg.tw_reuse = match value {
                "off" | "0" => TwReuse::Off,
                "on" | "1" => TwReuse::On,
                "loopback" | "2" => TwReuse::LoopbackOnly,
                _ => return Err(format!("tw_reuse is off, on or loopback, not {value:?}")),
            }
        }
        "max_tw_buckets" => cfg.max_tw_buckets = parse_num(value, "count")?,
        "ephemeral_ports" => {
            let (a, b) = value
                .split_once('-')
                .ok_or_else(|| format!("ephemeral_ports is LOW-HIGH, not {value:?}"))?;
            let (a, b): (u16, u16) = (parse_num(a, "port")?, parse_num(b, "port")?);
            if a == 0 || a > b {
                return Err(format!(
                    "ephemeral_ports {value:?} is not a range 1 ≤ LOW ≤ HIGH"
                ));
            }
            cfg.ephemeral_ports = (a, b);
        }
        "timestamps" => cfg.timestamps = parse_bool(value)?,
        "window_scaling" => cfg.window_scaling = parse_bool(value)?,
        "sack" => cfg.sack = parse_bool(value)?,
        "mss" => cfg.mss = parse_num(value, "size")?,
        "recv_buffer" => cfg.recv_buffer = parse_num(value, "size")?,
        "send_buffer" => cfg.send_buffer = parse_num(value, "size")?,
        "nagle" => cfg.nagle = parse_bool(value)?,
        "delayed_ack" => {
            cfg.delayed_ack = match value {
                "off" | "0" => None,
                d => Some(parse_duration(d)?),
            }
        }
        "rto_initial" => cfg.rto_initial = parse_duration(value)?,
        "rto_min" => cfg.rto_min = parse_duration(value)?,
        "rto_max" => cfg.rto_max = parse_duration(value)?,
        "initial_cwnd" => cfg.initial_cwnd = parse_num(value, "count")?,
        "keepalive" => {
            cfg.keepalive = match value {
                "off" | "0" => None,
                d => Some(parse_duration(d)?),
            }
        }
        _ => {
            return Err(format!(
                "unknown setting {key:?} (known: {})",
                SETTINGS.join(", ")
            ))
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Parsing

const KEYWORDS: &[&str] = &[
    "scenario", "seed", "host", "set", "link", "drop", "wait", "expect", "repeat", "inject",
    "diagnose", "sample", "say", "default", "}",
];

const APP_VERBS: &[&str] = &[
    "listen",
    "accept",
    "connect",
    "send",
    "recv",
    "recv-until-eof",
    "shutdown",
    "close",
    "abort",
];

/// Limits that keep a script from asking for more memory or time than a simulation should take.
pub const MAX_REPEAT: u32 = 100_000;
pub const MAX_INJECT: u32 = 1_000_000;
pub const MAX_SEND: usize = 64 * 1024 * 1024;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(600);

struct Parser<'a> {
    file: &'a str,
    script: Script,
    /// Whether an action has been seen (host and set must come before).
    started: bool,
    /// Variables of enclosing `repeat` blocks.
    vars: Vec<String>,
}

/// A cursor over one line's tokens.
struct Line<'t> {
    toks: &'t [Tok],
    pos: usize,
}

impl<'t> Line<'t> {
    fn peek(&self) -> Option<&'t str> {
        self.toks.get(self.pos).map(|t| t.text.as_str())
    }
    fn next(&mut self, what: &str) -> Result<&'t Tok, String> {
        let t = self
            .toks
            .get(self.pos)
            .ok_or_else(|| format!("missing {what}"))?;
        self.pos += 1;
        Ok(t)
    }
    fn word(&mut self, what: &str) -> Result<&'t str, String> {
        let t = self.next(what)?;
        if t.quoted {
            return Err(format!("expected {what}, found a quoted string"));
        }
        Ok(&t.text)
    }
    fn eat(&mut self, word: &str) -> bool {
        if self.peek() == Some(word) && !self.toks[self.pos].quoted {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, word: &str) -> Result<(), String> {
        match self.toks.get(self.pos) {
            Some(t) if t.text == word && !t.quoted => {
                self.pos += 1;
                Ok(())
            }
            Some(t) => Err(format!("expected {word:?}, found {:?}", t.text)),
            None => Err(format!("expected {word:?} at end of line")),
        }
    }
    fn end(&self) -> Result<(), String> {
        match self.toks.get(self.pos) {
            None => Ok(()),
            Some(t) => Err(format!("unexpected {:?} at end of line", t.text)),
        }
    }
}

/// Parses a script. `file` is only used in error messages.
pub fn parse(file: &str, src: &str) -> Result<Script, ScriptError> {
    let mut p = Parser {
        file,
        script: Script {
            file: file.to_string(),
            name: file
                .rsplit('/')
                .next()
                .unwrap_or(file)
                .trim_end_matches(".tcpfsm")
                .to_string(),
            summary: String::new(),
            seed: None,
            hosts: Vec::new(),
            links: Vec::new(),
            default_link: crate::link::default_params(),
            stmts: Vec::new(),
        },
        started: false,
        vars: Vec::new(),
    };
    let lines: Vec<(usize, Vec<Tok>)> = src
        .lines()
        .enumerate()
        .map(|(i, l)| tokenize(l).map(|t| (i + 1, t)).map_err(|m| p.err(i + 1, m)))
        .collect::<Result<_, _>>()?;
    let lines: Vec<(usize, Vec<Tok>)> = lines.into_iter().filter(|(_, t)| !t.is_empty()).collect();
    let mut idx = 0;
    let stmts = p.block(&lines, &mut idx, None)?;
    p.script.stmts = stmts;
    // Settings are checked together (some bound others, e.g. rto_min ≤ rto_max), and a bad one
    // is reported at the `set` line that gave it, or else at the host's declaration.
    for h in &p.script.hosts {
        if let Err(e) = h.config.validate() {
            let words = |t: &[Tok], w: &[&str]| {
                t.len() >= w.len() && t.iter().zip(w).all(|(a, b)| a.text == *b)
            };
            let line = lines
                .iter()
                .rev()
                .find(|(_, t)| words(t, &["set", &h.name, e.field]))
                .or_else(|| lines.iter().find(|(_, t)| words(t, &["host", &h.name])))
                .map_or(0, |(ln, _)| *ln);
            return Err(p.err(line, format!("host {:?}: {e}", h.name)));
        }
    }
    if p.script.hosts.is_empty() {
        return Err(p.err(
            0,
            "the script declares no host (add e.g. `host client 10.0.0.1`)",
        ));
    }
    Ok(p.script)
}

impl Parser<'_> {
    fn err(&self, line: usize, msg: impl Into<String>) -> ScriptError {
        ScriptError {
            file: self.file.to_string(),
            line,
            msg: msg.into(),
        }
    }

    /// Parses statements until the end or, inside `repeat`, the closing brace.
    fn block(
        &mut self,
        lines: &[(usize, Vec<Tok>)],
        idx: &mut usize,
        opened_at: Option<usize>,
    ) -> Result<Vec<Stmt>, ScriptError> {
        let mut out = Vec::new();
        while *idx < lines.len() {
            let (ln, toks) = &lines[*idx];
            *idx += 1;
            if toks[0].text == "}" && !toks[0].quoted {
                if opened_at.is_none() {
                    return Err(self.err(*ln, "`}` without a matching `repeat … {`"));
                }
                if toks.len() > 1 {
                    return Err(self.err(*ln, format!("unexpected {:?} after `}}`", toks[1].text)));
                }
                return Ok(out);
            }
            let mut l = Line { toks, pos: 0 };
            if toks[0].text == "repeat" {
                let (count, var) = self.repeat_head(&mut l).map_err(|m| self.err(*ln, m))?;
                self.started = true;
                self.vars.push(var.clone());
                let body = self.block(lines, idx, Some(*ln))?;
                self.vars.pop();
                out.push(Stmt {
                    line: *ln,
                    action: Action::Repeat { count, var, body },
                });
                continue;
            }
            if let Some(action) = self.stmt(&mut l).map_err(|m| self.err(*ln, m))? {
                out.push(Stmt { line: *ln, action });
            }
        }
        if let Some(open) = opened_at {
            return Err(self.err(open, "`repeat` block is never closed with `}`"));
        }
        Ok(out)
    }

    fn repeat_head(&mut self, l: &mut Line) -> Result<(u32, String), String> {
        l.expect("repeat")?;
        let count: u32 = parse_num(l.word("repeat count")?, "repeat count")?;
        if count > MAX_REPEAT {
            return Err(format!(
                "repeat count {count} is over the limit of {MAX_REPEAT}"
            ));
        }
        let var = if l.eat("as") {
            let v = l.word("variable name")?;
            if !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("bad variable name {v:?}"));
            }
            v.to_string()
        } else {
            "i".to_string()
        };
        l.expect("{")?;
        l.end()?;
        Ok((count, var))
    }

    fn host_ref(&self, name: &str) -> Result<usize, String> {
        self.script.host(name).ok_or_else(|| {
            if self.script.hosts.is_empty() {
                format!("unknown host {name:?} (no host declared yet)")
            } else {
                format!(
                    "unknown host {name:?} (declared: {})",
                    self.script
                        .hosts
                        .iter()
                        .map(|h| h.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        })
    }

    fn name(&self, s: &str) -> Result<Name, String> {
        if s.is_empty()
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$' | '.'))
        {
            return Err(format!(
                "bad socket name {s:?} (letters, digits, _ - . and $var)"
            ));
        }
        // Every `$var` must belong to an enclosing repeat.
        let mut rest = s;
        while let Some(at) = rest.find('$') {
            let after = &rest[at + 1..];
            let var: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !self.vars.contains(&var) {
                return Err(format!(
                    "${var} in {s:?} is not the variable of an enclosing repeat"
                ));
            }
            rest = &after[var.len()..];
        }
        Ok(Name(s.to_string()))
    }

    fn target(&self, s: &str) -> Result<Target, String> {
        if let Some(a) = parse_socket_addr(s) {
            return Ok(Target::Addr(a));
        }
        let (h, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("expected HOST:PORT or ADDRESS:PORT, found {s:?}"))?;
        let port: u16 = parse_num(port, "port")?;
        Ok(Target::Host(self.host_ref(h)?, port))
    }

    fn timeout(&self, l: &mut Line, default: Duration) -> Result<Duration, String> {
        if l.eat("timeout") {
            parse_duration(l.word("timeout duration")?)
        } else {
            Ok(default)
        }
    }

    /// Link properties are the impairment engine's spec language (`SCRIPT.md`, "Links").
    fn link_params(&self, l: &mut Line, base: LinkParams) -> Result<LinkParams, String> {
        let mut p = base;
        while let Some(k) = l.peek() {
            l.pos += 1;
            let v = l.word(&format!("value for {k}"))?;
            p.set(k, v).map_err(|e| e.to_string())?;
        }
        p.validate().map_err(|e| e.to_string())?;
        Ok(p)
    }

    fn link_base(&self, from: usize, to: usize) -> LinkParams {
        self.script
            .links
            .iter()
            .rev()
            .find(|(a, b, _)| *a == from && *b == to)
            .map(|(_, _, p)| *p)
            .unwrap_or(self.script.default_link)
    }

    fn cond(&self, l: &mut Line) -> Result<Cond, String> {
        let first = l.word("condition")?;
        if first == "quiet" {
            return Ok(Cond::Quiet);
        }
        if let Ok(h) = self.host_ref(first) {
            // HOST has [at least] N STATE
            l.expect("has")?;
            let at_least = if l.eat("at") {
                l.expect("least")?;
                true
            } else {
                false
            };
            let n: u64 = parse_num(l.word("count")?, "count")?;
            let st = l.word("state")?;
            let st: State = st
                .parse()
                .map_err(|e: tcpfsm_states::UnknownState| e.to_string())?;
            return Ok(if at_least {
                Cond::AtLeast(h, st, n)
            } else {
                Cond::Count(h, st, n)
            });
        }
        let sock = self.name(first)?;
        let what = l.next("state, `closed`, `error`, `eof` or `result \"…\"`")?;
        if !what.quoted && what.text == "closed" {
            return Ok(Cond::Closed(sock));
        }
        if !what.quoted && what.text == "error" {
            return Ok(Cond::Error(sock));
        }
        if !what.quoted && what.text == "eof" {
            return Ok(Cond::Eof(sock));
        }
        if what.text == "result" && !what.quoted {
            let t = l.next("expected result text")?;
            return Ok(Cond::Result(sock, t.text.clone()));
        }
        let st: State = what
            .text
            .parse()
            .map_err(|e: tcpfsm_states::UnknownState| e.to_string())?;
        Ok(Cond::InState(sock, st))
    }

    fn declaration_allowed(&self, what: &str) -> Result<(), String> {
        if self.started {
            Err(format!("`{what}` must come before the first action"))
        } else {
            Ok(())
        }
    }

    fn stmt(&mut self, l: &mut Line) -> Result<Option<Action>, String> {
        let head = l.toks[0].clone();
        if head.quoted {
            return Err(format!(
                "a line cannot start with a string ({:?})",
                head.text
            ));
        }
        let word = head.text.as_str();
        l.pos = 1;
        let action = match word {
            "scenario" => {
                self.declaration_allowed("scenario")?;
                self.script.name = l.word("scenario name")?.to_string();
                if let Some(t) = l.toks.get(l.pos) {
                    self.script.summary = t.text.clone();
                    l.pos += 1;
                }
                l.end()?;
                return Ok(None);
            }
            "seed" => {
                self.declaration_allowed("seed")?;
                self.script.seed = Some(parse_num(l.word("seed")?, "seed")?);
                l.end()?;
                return Ok(None);
            }
            "host" => {
                self.declaration_allowed("host")?;
                let name = l.word("host name")?;
                if KEYWORDS.contains(&name) || APP_VERBS.contains(&name) || name == "quiet" {
                    return Err(format!("{name:?} is a keyword and cannot name a host"));
                }
                if !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(format!("bad host name {name:?} (letters, digits, _ and -)"));
                }
                if self.script.host(name).is_some() {
                    return Err(format!("host {name:?} is declared twice"));
                }
                let mut addrs = Vec::new();
                while l.peek().is_some() {
                    let a = l.word("address")?;
                    let ip: IpAddr = a
                        .parse()
                        .map_err(|_| format!("bad IP address {a:?} for host {name:?}"))?;
                    if let Some(other) = self.script.hosts.iter().find(|h| h.addrs.contains(&ip)) {
                        return Err(format!(
                            "address {ip} already belongs to host {:?}",
                            other.name
                        ));
                    }
                    addrs.push(ip);
                }
                if addrs.is_empty() {
                    return Err(format!("host {name:?} needs at least one address"));
                }
                self.script.hosts.push(HostDecl {
                    name: name.to_string(),
                    addrs,
                    config: Config::default(),
                });
                return Ok(None);
            }
            "set" => {
                self.declaration_allowed("set")?;
                let h = self.host_ref(l.word("host name")?)?;
                let key = l.word("setting name")?;
                let value = l.word(&format!("value for {key}"))?;
                l.end()?;
                apply_setting(&mut self.script.hosts[h].config, key, value)?;
                return Ok(None);
            }
            "link" => {
                let first = l.word("host name or `default`")?;
                if first == "default" {
                    self.declaration_allowed("link default")?;
                    self.script.default_link = self.link_params(l, self.script.default_link)?;
                    return Ok(None);
                }
                let a = self.host_ref(first)?;
                let arrow = l.word("`<->` or `->`")?;
                let both = match arrow {
                    "<->" => true,
                    "->" => false,
                    _ => return Err(format!("expected `<->` or `->`, found {arrow:?}")),
                };
                let b = self.host_ref(l.word("host name")?)?;
                if a == b {
                    return Err("a link joins two different hosts".into());
                }
                let pos = l.pos;
                let ab = self.link_params(l, self.link_base(a, b))?;
                l.pos = pos;
                let ba = self.link_params(l, self.link_base(b, a))?;
                if !self.started {
                    self.script.links.push((a, b, ab));
                    if both {
                        self.script.links.push((b, a, ba));
                    }
                    return Ok(None);
                }
                // After the start, link changes are actions at their point in time.
                if both {
                    return Err(
                        "mid-run link changes are one direction at a time (`->`); write two lines"
                            .into(),
                    );
                }
                Action::Link {
                    from: a,
                    to: b,
                    params: ab,
                }
            }
            "drop" => {
                let mut count = 1;
                let mut skip = 0;
                l.eat("next");
                if let Some(n) = l.peek().and_then(|w| w.parse::<u32>().ok()) {
                    l.pos += 1;
                    count = n;
                }
                if l.eat("nth") {
                    let n: u32 = parse_num(l.word("N")?, "N")?;
                    if n == 0 {
                        return Err("nth counts from 1".into());
                    }
                    skip = n - 1;
                }
                let m = l.word("flags, `with FLAGS` or `any`")?;
                let flags = match m {
                    "any" => FlagMatch::Any,
                    "with" => FlagMatch::Contains(parse_flags(l.word("flags")?)?),
                    f => FlagMatch::Exact(parse_flags(f)?),
                };
                l.expect("from")?;
                let from = self.host_ref(l.word("host name")?)?;
                let to = if l.eat("to") {
                    Some(self.host_ref(l.word("host name")?)?)
                } else {
                    None
                };
                l.end()?;
                Action::Drop(DropRule {
                    from,
                    to,
                    flags,
                    skip,
                    count,
                })
            }
            "wait" => {
                if l.eat("until") {
                    let mut conds = vec![self.cond(l)?];
                    while l.eat("and") {
                        conds.push(self.cond(l)?);
                    }
                    let timeout = self.timeout(l, DEFAULT_WAIT_TIMEOUT)?;
                    l.end()?;
                    Action::WaitUntil { conds, timeout }
                } else {
                    let d = parse_duration(l.word("duration or `until`")?)?;
                    l.end()?;
                    Action::Wait(d)
                }
            }
            "expect" => {
                let c = self.cond(l)?;
                l.end()?;
                Action::Expect(c)
            }
            "inject" => {
                let count: u32 = parse_num(l.word("count")?, "count")?;
                if count > MAX_INJECT {
                    return Err(format!(
                        "inject count {count} is over the limit of {MAX_INJECT}"
                    ));
                }
                let kind = l.word("segment kind")?;
                if !kind.eq_ignore_ascii_case("syn") {
                    return Err(format!("only `syn` can be injected, not {kind:?}"));
                }
                l.expect("from")?;
                let from_s = l.word("source address")?;
                let from: IpAddr = from_s
                    .parse()
                    .map_err(|_| format!("bad source address {from_s:?}"))?;
                l.expect("to")?;
                let to = self.target(l.word("HOST:PORT")?)?;
                l.end()?;
                Action::InjectSyn { count, from, to }
            }
            "diagnose" => {
                let host = self.host_ref(l.word("host name")?)?;
                l.end()?;
                Action::Diagnose { host }
            }
            "sample" => {
                let host = self.host_ref(l.word("host name")?)?;
                l.end()?;
                Action::Sample { host }
            }
            "say" => {
                let t = l.next("text")?;
                let text = t.text.clone();
                l.end()?;
                Action::Say(text)
            }
            "}" => unreachable!("handled by block()"),
            _ => {
                let host = match self.script.host(word) {
                    Some(h) => h,
                    None => {
                        return Err(if APP_VERBS.contains(&word) {
                            format!("{word:?} needs a host first: `HOST {word} …`")
                        } else {
                            format!("unknown action {word:?}")
                        })
                    }
                };
                let verb = l.word("action")?;
                self.app(host, verb, l)?
            }
        };
        self.started = true;
        Ok(Some(action))
    }

    fn app(&self, host: usize, verb: &str, l: &mut Line) -> Result<Action, String> {
        let action = match verb {
            "listen" => {
                let w = l.word("port or ADDRESS:PORT")?;
                let (addr, port) = if let Some(a) = parse_socket_addr(w) {
                    (Some(a.ip()), a.port())
                } else {
                    (None, parse_num(w, "port")?)
                };
                let backlog = if l.eat("backlog") {
                    parse_num(l.word("backlog")?, "backlog")?
                } else {
                    128
                };
                l.expect("as")?;
                let name = self.name(l.word("listener name")?)?;
                Action::Listen {
                    host,
                    addr,
                    port,
                    backlog,
                    name,
                }
            }
            "accept" => {
                let listener = self.name(l.word("listener name")?)?;
                l.expect("as")?;
                let name = self.name(l.word("socket name")?)?;
                let wait = !l.eat("nowait");
                let timeout = self.timeout(l, DEFAULT_TIMEOUT)?;
                Action::Accept {
                    host,
                    listener,
                    name,
                    wait,
                    timeout,
                }
            }
            "connect" => {
                let to = self.target(l.word("HOST:PORT")?)?;
                let from = if l.eat("from") {
                    let w = l.word("local PORT or ADDRESS:PORT")?;
                    Some(if let Some(a) = parse_socket_addr(w) {
                        (Some(a.ip()), a.port())
                    } else {
                        (None, parse_num(w, "port")?)
                    })
                } else {
                    None
                };
                l.expect("as")?;
                let name = self.name(l.word("socket name")?)?;
                let wait = !l.eat("nowait");
                let timeout = self.timeout(l, DEFAULT_CONNECT_TIMEOUT)?;
                Action::Connect {
                    host,
                    to,
                    from,
                    name,
                    wait,
                    timeout,
                }
            }
            "send" => {
                let sock = self.name(l.word("socket name")?)?;
                let t = l.next("data: \"text\" or N bytes")?;
                let data = if t.quoted {
                    Data::Text(t.text.as_bytes().to_vec())
                } else {
                    let n: usize = parse_num(&t.text, "byte count")?;
                    if n > MAX_SEND {
                        return Err(format!("send of {n} bytes is over the limit of {MAX_SEND}"));
                    }
                    l.expect("bytes")?;
                    Data::Bytes(n)
                };
                Action::Send { host, sock, data }
            }
            "recv" => {
                let sock = self.name(l.word("socket name")?)?;
                let mode = match l.peek() {
                    Some(w) if w.parse::<usize>().is_ok() => {
                        l.pos += 1;
                        Some(RecvMode::Exactly(w.parse().unwrap_or(0)))
                    }
                    _ => None,
                };
                let timeout = self.timeout(l, DEFAULT_TIMEOUT)?;
                Action::Recv {
                    host,
                    sock,
                    mode: mode.unwrap_or(RecvMode::Available),
                    timeout,
                }
            }
            "recv-until-eof" => {
                let sock = self.name(l.word("socket name")?)?;
                let timeout = self.timeout(l, DEFAULT_TIMEOUT)?;
                Action::Recv {
                    host,
                    sock,
                    mode: RecvMode::UntilEof,
                    timeout,
                }
            }
            "shutdown" => Action::Shutdown {
                host,
                sock: self.name(l.word("socket name")?)?,
            },
            "close" => Action::Close {
                host,
                sock: self.name(l.word("socket name")?)?,
            },
            "abort" => Action::Abort {
                host,
                sock: self.name(l.word("socket name")?)?,
            },
            _ => {
                return Err(format!(
                    "unknown action {verb:?} (expected one of: {})",
                    APP_VERBS.join(", ")
                ))
            }
        };
        l.end()?;
        Ok(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "host a 10.0.0.1\nhost b 10.0.0.2\n";

    fn parse_err(src: &str) -> String {
        parse("t.tcpfsm", src).unwrap_err().to_string()
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("10parsecs").is_err());
    }

    #[test]
    fn quoted_strings_keep_spaces_and_escapes() {
        let t = tokenize(r#"a send c "GET / \"x\"\n" # comment"#).unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(t[3].text, "GET / \"x\"\n");
        assert!(tokenize(r#"say "open"#).is_err());
    }

    #[test]
    fn a_full_script_parses() {
        let s = parse(
            "t.tcpfsm",
            &format!(
                "{BASE}set b syncookies off\nset a ephemeral_ports 50000-50015\n\
                 link a <-> b delay 5ms loss 1%\n\
                 b listen 80 as l\na connect b:80 as c\nb accept l as s\n\
                 a send c \"hi\"\nb recv s 2\ndrop nth 2 ACK from a\n\
                 repeat 3 as k {{\n  a connect b:80 as c$k nowait\n}}\n\
                 wait until c ESTABLISHED and quiet timeout 5s\nexpect b has 1 LISTEN\n"
            ),
        )
        .unwrap();
        assert_eq!(s.hosts[1].config.syncookies, SynCookies::Off);
        assert_eq!(s.hosts[0].config.ephemeral_ports, (50000, 50015));
        assert_eq!(s.links.len(), 2);
        assert_eq!(s.links[0].2.loss, tcpfsm_impair::Loss::Bernoulli(0.01));
        assert_eq!(s.stmts.len(), 9);
        assert!(matches!(
            s.stmts[5].action,
            Action::Drop(DropRule {
                skip: 1,
                count: 1,
                flags: FlagMatch::Exact(flag::ACK),
                ..
            })
        ));
        match &s.stmts[6].action {
            Action::Repeat { count, var, body } => {
                assert_eq!((*count, var.as_str(), body.len()), (3, "k", 1));
                assert_eq!(body[0].line, 13);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_action_is_reported_with_its_line() {
        assert_eq!(
            parse_err(&format!("{BASE}\n# x\na conect b:80 as c\n")),
            "t.tcpfsm:5: unknown action \"conect\" (expected one of: listen, accept, connect, send, recv, recv-until-eof, shutdown, close, abort)"
        );
        assert_eq!(
            parse_err(&format!("{BASE}conect a\n")),
            "t.tcpfsm:3: unknown action \"conect\""
        );
    }

    #[test]
    fn unknown_host_and_setting_are_reported() {
        assert!(parse_err(&format!("{BASE}c listen 80 as l\n"))
            .starts_with("t.tcpfsm:3: unknown action \"c\""));
        assert!(parse_err(&format!("{BASE}a connect z:80 as c\n"))
            .starts_with("t.tcpfsm:3: unknown host \"z\""));
        assert!(parse_err(&format!("{BASE}set a mls 1s\n"))
            .starts_with("t.tcpfsm:3: unknown setting \"mls\""));
        assert!(parse_err(&format!("{BASE}set a ephemeral_ports 9-2\n")).starts_with("t.tcpfsm:3:"));
    }

    #[test]
    fn blocks_must_balance() {
        assert_eq!(
            parse_err(&format!("{BASE}repeat 2 {{\nwait 1s\n")),
            "t.tcpfsm:3: `repeat` block is never closed with `}`"
        );
        assert_eq!(
            parse_err(&format!("{BASE}}}\n")),
            "t.tcpfsm:3: `}` without a matching `repeat … {`"
        );
    }

    #[test]
    fn variables_must_come_from_a_repeat() {
        assert!(parse_err(&format!("{BASE}a connect b:80 as c$i\n"))
            .contains("$i in \"c$i\" is not the variable of an enclosing repeat"));
    }

    #[test]
    fn declarations_come_first() {
        assert_eq!(
            parse_err(&format!("{BASE}wait 1s\nhost c 10.0.0.3\n")),
            "t.tcpfsm:4: `host` must come before the first action"
        );
    }

    #[test]
    fn bad_values_are_reported_not_panicked() {
        for (src, needle) in [
            ("link a <-> b loss 2\n", "outside 0..1"),
            ("link a <-> b speed 2\n", "unknown link property"),
            ("drop FOO from a\n", "unknown TCP flag"),
            ("drop nth 0 ACK from a\n", "nth counts from 1"),
            ("a send c\n", "missing data"),
            ("a send c 12\n", "expected \"bytes\""),
            ("wait until c BOGUS\n", "unknown TCP state"),
            ("host a2 10.0.0.1\n", "already belongs"),
            ("host a3 banana\n", "bad IP address"),
            ("a listen 99999 as l\n", "bad port"),
            ("say \"x\n", "unterminated string"),
        ] {
            let e = parse_err(&format!("{BASE}{src}"));
            assert!(e.starts_with("t.tcpfsm:3: "), "{e}");
            assert!(e.contains(needle), "{e} lacks {needle}");
        }
        assert_eq!(
            parse_err(""),
            "t.tcpfsm: the script declares no host (add e.g. `host client 10.0.0.1`)"
        );
    }

    #[test]
    fn flag_matching_exact_ignores_psh_and_contains_is_a_subset() {
        assert!(FlagMatch::Exact(flag::ACK).matches(flag::ACK | flag::PSH));
        assert!(!FlagMatch::Exact(flag::ACK).matches(flag::ACK | flag::FIN));
        assert!(FlagMatch::Contains(flag::FIN).matches(flag::ACK | flag::FIN));
        assert!(!FlagMatch::Contains(flag::FIN).matches(flag::ACK));
        assert_eq!(flag::bits_of("SYN,ACK"), flag::SYN | flag::ACK);
    }
}
