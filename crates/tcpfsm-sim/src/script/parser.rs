//! The parser: script text to [`Script`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tcpfsm_core::Config;
use tcpfsm_states::State;

use super::lex::{tokenize, Line, Tok};
use super::names;
use super::settings::apply_setting;
use super::values::{
    parse_duration, parse_flags, parse_local, parse_num, parse_port, parse_socket_addr,
};
use super::*;
use crate::link::LinkParams;

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
    names::check(&stmts).map_err(|(line, m)| p.err(line, m))?;
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
        let port = parse_port(port)?;
        if let Ok(ip) = h.trim_start_matches('[').trim_end_matches(']').parse() {
            return Ok(Target::Addr(SocketAddr::new(ip, port)));
        }
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
                let over = if l.eat("over") {
                    parse_duration(l.word("duration")?)?
                } else {
                    Duration::ZERO
                };
                l.end()?;
                Action::InjectSyn {
                    count,
                    from,
                    to,
                    over,
                }
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
                            self.unknown_word(word)
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

    /// A line starting with neither a keyword nor a host: most likely a misspelled host.
    fn unknown_word(&self, word: &str) -> String {
        let hosts: Vec<&str> = self.script.hosts.iter().map(|h| h.name.as_str()).collect();
        let near = hosts
            .iter()
            .chain(KEYWORDS.iter().filter(|k| **k != "}"))
            .copied()
            .filter(|c| strsim::levenshtein(c, word) <= 2.min(c.len() / 2).max(1))
            .min_by_key(|c| strsim::levenshtein(c, word));
        let mut msg = format!("unknown host or action {word:?}");
        if let Some(n) = near {
            msg.push_str(&format!(" (did you mean {n:?}?)"));
        }
        if hosts.is_empty() {
            msg.push_str("; no host is declared yet");
        } else {
            msg.push_str(&format!("; hosts: {}", hosts.join(", ")));
        }
        msg
    }

    fn app(&self, host: usize, verb: &str, l: &mut Line) -> Result<Action, String> {
        let action = match verb {
            "listen" => {
                let w = l.word("port or ADDRESS:PORT")?;
                let (addr, port) = parse_local(w)?;
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
                    Some(parse_local(w)?)
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
#[path = "parser_tests.rs"]
mod tests;
