//! Recursive-descent parser for the packetdrill grammar (`gtests/net/packetdrill/parser.y`),
//! restricted to TCP over IPv4/IPv6. Constructs of the grammar this runner does not model
//! (UDP, ICMP, GRE, MPLS, PSP, MD5, Fast Open, AccECN) parse into a packet marked
//! `unsupported`, so the script is skipped with a reason rather than rejected.

use super::lexer::{Lexer, Pos, Tok, Token};
use super::*;
use std::collections::{BTreeMap, VecDeque};

/// Parses a whole script. `defines` are the `-D NAME[=VALUE]` definitions in force (they
/// select `#ifdef` blocks and replace words); the script's own `--define` options add to them.
pub fn parse(
    path: &str,
    src: &str,
    defines: &BTreeMap<String, Option<String>>,
) -> Result<Script, ParseError> {
    let mut p = Parser {
        lex: Lexer::new(path, src, defines.clone()),
        ahead: VecDeque::new(),
        file: path,
        last: Pos::default(),
    };
    let script = p.script(src)?;
    validate(&script)?;
    Ok(script)
}

struct Parser<'a> {
    lex: Lexer<'a>,
    ahead: VecDeque<Token>,
    file: &'a str,
    /// Position of the last token taken.
    last: Pos,
}

fn us_from_secs(f: f64) -> i64 {
    (f * 1e6).round() as i64
}

impl<'a> Parser<'a> {
    fn peek_n(&mut self, n: usize) -> Result<&Token, ParseError> {
        while self.ahead.len() <= n {
            let t = self.lex.next_token()?;
            self.ahead.push_back(t);
        }
        Ok(&self.ahead[n])
    }

    fn peek(&mut self) -> Result<&Tok, ParseError> {
        Ok(&self.peek_n(0)?.tok)
    }

    fn next(&mut self) -> Result<Token, ParseError> {
        self.peek_n(0)?;
        let t = self.ahead.pop_front().expect("peeked");
        self.last = t.pos;
        Ok(t)
    }

    fn err_at(&self, pos: Pos, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.file, pos, msg)
    }

    fn unexpected(&mut self, wanted: &str) -> ParseError {
        match self.peek_n(0) {
            Ok(t) => {
                let (pos, what) = (t.pos, t.tok.describe());
                self.err_at(pos, format!("expected {wanted}, found {what}"))
            }
            Err(e) => e,
        }
    }

    fn is_punct(&mut self, c: char) -> Result<bool, ParseError> {
        Ok(*self.peek()? == Tok::Punct(c))
    }

    fn eat_punct(&mut self, c: char) -> Result<bool, ParseError> {
        if self.is_punct(c)? {
            self.next()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn expect_punct(&mut self, c: char) -> Result<Pos, ParseError> {
        if self.is_punct(c)? {
            return Ok(self.next()?.pos);
        }
        Err(self.unexpected(&format!("\"{c}\"")))
    }

    fn is_word(&mut self, w: &str) -> Result<bool, ParseError> {
        Ok(matches!(self.peek()?, Tok::Word(x) if x == w))
    }

    fn expect_word(&mut self, w: &str) -> Result<(), ParseError> {
        if self.is_word(w)? {
            self.next()?;
            return Ok(());
        }
        Err(self.unexpected(&format!("\"{w}\"")))
    }

    /// An integer literal (decimal or hex) with its position.
    fn integer(&mut self, what: &str) -> Result<(i64, Pos), ParseError> {
        match self.peek()?.clone() {
            Tok::Int(i) | Tok::Hex(i) => Ok((i, self.next()?.pos)),
            _ => Err(self.unexpected(what)),
        }
    }

    fn ranged<T: TryFrom<i64>>(&mut self, what: &str, err: &str) -> Result<T, ParseError> {
        let (v, pos) = self.integer(what)?;
        T::try_from(v).map_err(|_| self.err_at(pos, err))
    }

    /// Skips the tokens left on `line` (used after a construct we do not model).
    fn skip_line(&mut self, line: u32) -> Result<(), ParseError> {
        loop {
            let t = self.peek_n(0)?;
            if t.tok == Tok::Eof || t.pos.line != line {
                return Ok(());
            }
            self.next()?;
        }
    }

    fn script(&mut self, src: &str) -> Result<Script, ParseError> {
        let mut options = Vec::new();
        while let Tok::Option { name, value } = self.peek()?.clone() {
            let pos = self.next()?.pos;
            if name == "define" || name == "D" {
                let Some(v) = value.clone() else {
                    return Err(self.err_at(pos, "--define needs NAME or NAME=VALUE"));
                };
                let (k, val) = match v.split_once('=') {
                    Some((k, val)) => (k.to_string(), Some(val.to_string())),
                    None => (v, None),
                };
                self.lex.defines.insert(k, val);
            }
            options.push(HeaderOption { name, value, pos });
        }
        let mut init_command = None;
        if let Tok::Backquoted(text) = self.peek()?.clone() {
            let pos = self.next()?.pos;
            init_command = Some(Command { text, pos });
        }
        let mut events = Vec::new();
        let mut cleanup_command = None;
        loop {
            match self.peek()?.clone() {
                Tok::Eof => break,
                Tok::Backquoted(text) => {
                    let pos = self.next()?.pos;
                    cleanup_command = Some(Command { text, pos });
                    if *self.peek()? != Tok::Eof {
                        let t = self.peek_n(0)?.pos;
                        return Err(self.err_at(
                            t,
                            "a command without a time must be the first or the last line",
                        ));
                    }
                    break;
                }
                Tok::Option { name, .. } => {
                    let pos = self.next()?.pos;
                    return Err(self.err_at(
                        pos,
                        format!("option --{name} must come before the first event"),
                    ));
                }
                _ => events.push(self.event()?),
            }
        }
        Ok(Script {
            path: self.file.to_string(),
            options,
            init_command,
            events,
            cleanup_command,
            lines: src.lines().map(str::to_string).collect(),
        })
    }

    fn time(&mut self) -> Result<i64, ParseError> {
        let t = self.next()?;
        let us = match t.tok {
            Tok::Float(f) => us_from_secs(f),
            Tok::Int(i) => i.saturating_mul(1_000_000),
            other => {
                return Err(self.err_at(
                    t.pos,
                    format!("expected a time, found {}", other.describe()),
                ))
            }
        };
        if us < 0 {
            return Err(self.err_at(t.pos, "negative time"));
        }
        Ok(us)
    }

    fn event_time(&mut self) -> Result<(Pos, EventTime), ParseError> {
        let pos = self.peek_n(0)?.pos;
        match self.peek()?.clone() {
            Tok::Punct('*') => {
                self.next()?;
                Ok((pos, EventTime::Any))
            }
            Tok::Punct('+') => {
                self.next()?;
                let t = self.time()?;
                if self.eat_punct('~')? {
                    self.expect_punct('+')?;
                    let end = self.time()?;
                    return Ok((pos, EventTime::RelativeRange(t, end)));
                }
                Ok((pos, EventTime::Relative(t)))
            }
            Tok::Float(_) | Tok::Int(_) => {
                let t = self.time()?;
                if self.eat_punct('~')? {
                    let end = self.time()?;
                    return Ok((pos, EventTime::AbsoluteRange(t, end)));
                }
                Ok((pos, EventTime::Absolute(t)))
            }
            _ => Err(self.unexpected("an event time (e.g. 0, +0.1, 1.5~2.0 or *)")),
        }
    }

    fn event(&mut self) -> Result<Event, ParseError> {
        let (pos, time) = self.event_time()?;
        let action = match self.peek()?.clone() {
            Tok::Punct('<') => Action::Packet(self.packet(Direction::Inbound)?),
            Tok::Punct('>') => Action::Packet(self.packet(Direction::Outbound)?),
            Tok::Backquoted(text) => {
                let pos = self.next()?.pos;
                Action::Command(Command { text, pos })
            }
            Tok::Code(code) => {
                self.next()?;
                Action::Code(code)
            }
            Tok::Ellipsis | Tok::Word(_) => Action::Syscall(self.syscall()?),
            _ => {
                return Err(self.unexpected(
                    "a packet (< or >), a system call, a `command` or a %{ code }% block",
                ))
            }
        };
        Ok(Event { pos, time, action })
    }

    // ----- packets -----

    fn packet(&mut self, direction: Direction) -> Result<Packet, ParseError> {
        let dir_pos = self.next()?.pos;
        let mut pkt = Packet {
            direction,
            ecn: None,
            ports: None,
            flags: Flags(0),
            seq: SeqSpec {
                start: 0,
                len: 0,
                any: false,
                absolute: false,
            },
            ack: None,
            win: None,
            urg: None,
            options: Some(Vec::new()),
            unsupported: None,
        };
        if let Tok::Word(w) = self.peek()?.clone() {
            let kind = match w.as_str() {
                "udp" => Some("UDP packets"),
                "icmp" => Some("ICMP packets"),
                "ipv4" | "ipv6" => Some("explicit IP headers (ipv4/ipv6 a > b:)"),
                "gre" | "GREv0" => Some("GRE encapsulation"),
                "mpls" => Some("MPLS labels"),
                "encap" => Some("PSP encapsulation"),
                _ => None,
            };
            if let Some(kind) = kind {
                pkt.unsupported = Some(kind.to_string());
                self.skip_line(dir_pos.line)?;
                return Ok(pkt);
            }
        }
        if self.is_punct('(')? || self.is_punct('[')? {
            pkt.ecn = self.ip_info(direction)?;
        }
        if let Tok::Int(_) = self.peek()? {
            let src: u16 = self.ranged("a source port", "src port out of range")?;
            self.expect_punct('>')?;
            let dst: u16 = self.ranged("a destination port", "dst port out of range")?;
            pkt.ports = Some((src, dst));
        }
        self.flags(&mut pkt)?;
        self.seq(&mut pkt)?;
        if self.is_word("ack")? {
            self.next()?;
            pkt.ack = Some(self.ranged("an ack number", "TCP ack sequence number out of range")?);
        }
        if self.is_word("win")? {
            self.next()?;
            pkt.win = Some(self.ranged("a window", "TCP window value out of range")?);
        }
        if self.is_word("urg")? {
            self.next()?;
            pkt.urg = Some(self.ranged("an urgent pointer", "urg_ptr value out of range")?);
        }
        if direction == Direction::Inbound && pkt.win.is_none() && pkt.unsupported.is_none() {
            let pos = self.last;
            return Err(self.err_at(pos, "window must be specified for inbound packets"));
        }
        if self.is_punct('<')? {
            let lt = self.next()?.pos;
            if *self.peek()? == Tok::Ellipsis {
                self.next()?;
                self.expect_punct('>')?;
                if direction == Direction::Inbound {
                    return Err(self.err_at(
                        lt,
                        "<...> for TCP options can only be used with outbound packets",
                    ));
                }
                pkt.options = None;
            } else {
                pkt.options = Some(self.tcp_options(&mut pkt, lt)?);
            }
        }
        Ok(pkt)
    }

    fn ip_info(&mut self, direction: Direction) -> Result<Option<Ecn>, ParseError> {
        let close = if self.eat_punct('(')? {
            ')'
        } else {
            self.expect_punct('[')?;
            ']'
        };
        let mut ecn = None;
        loop {
            let t = self.next()?;
            match &t.tok {
                Tok::Word(w) => match w.as_str() {
                    "noecn" => ecn = Some(Ecn::NotEct),
                    "ect0" => ecn = Some(Ecn::Ect0),
                    "ect1" => ecn = Some(Ecn::Ect1),
                    "ce" => ecn = Some(Ecn::Ce),
                    "ect01" => {
                        if direction == Direction::Inbound {
                            return Err(self.err_at(
                                t.pos,
                                "[ect01] can only be used with outbound packets",
                            ));
                        }
                        ecn = Some(Ecn::Ect01)
                    }
                    "tos" => {
                        let (v, pos) = self.integer("a TOS value")?;
                        if !(0..=255).contains(&v) {
                            return Err(self.err_at(pos, "tos out of range for 8 bits"));
                        }
                        ecn = Some(match v & 3 {
                            0 => Ecn::NotEct,
                            1 => Ecn::Ect1,
                            2 => Ecn::Ect0,
                            _ => Ecn::Ce,
                        });
                    }
                    "flowlabel" | "ttl" => {
                        self.integer("a number")?;
                    }
                    other => {
                        return Err(self.err_at(
                            t.pos,
                            format!("unknown IP information \"{other}\" (expected noecn, ect0, ect1, ce, ect01, tos, flowlabel or ttl)"),
                        ))
                    }
                },
                Tok::Punct(',') => {}
                Tok::Punct(c) if *c == close => return Ok(ecn),
                other => {
                    return Err(self.err_at(
                        t.pos,
                        format!("expected IP information, found {}", other.describe()),
                    ))
                }
            }
        }
    }

    fn flags(&mut self, pkt: &mut Packet) -> Result<(), ParseError> {
        let t = self.next()?;
        let letters = match &t.tok {
            Tok::Punct('.') => {
                pkt.flags = Flags(Flags::ACK);
                return Ok(());
            }
            Tok::Punct('-') => return Ok(()),
            Tok::Word(w) => w.clone(),
            other => {
                return Err(self.err_at(
                    t.pos,
                    format!(
                        "expected TCP flags (e.g. S, S., F., R, ., or -), found {}",
                        other.describe()
                    ),
                ))
            }
        };
        let mut bits = 0u8;
        for (i, c) in letters.chars().enumerate() {
            bits |= match c {
                'F' => Flags::FIN,
                'S' => Flags::SYN,
                'R' => Flags::RST,
                'P' => Flags::PSH,
                'U' => Flags::URG,
                'E' => Flags::ECE,
                'W' => Flags::CWR,
                'A' => {
                    pkt.unsupported = Some("the AE (AccECN) flag".into());
                    0
                }
                _ => {
                    let pos = Pos {
                        line: t.pos.line,
                        col: t.pos.col + i as u32,
                    };
                    return Err(self.err_at(pos, format!("unknown TCP flag '{c}'")));
                }
            };
        }
        if self.is_punct('.')? {
            self.next()?;
            bits |= Flags::ACK;
        }
        pkt.flags = Flags(bits);
        Ok(())
    }

    fn seq(&mut self, pkt: &mut Packet) -> Result<(), ParseError> {
        if *self.peek()? == Tok::Ellipsis {
            self.next()?;
            self.expect_punct('(')?;
            pkt.seq.len = self.ranged("a payload length", "TCP payload size out of range")?;
            self.expect_punct(')')?;
            pkt.seq.any = true;
            return Ok(());
        }
        let (start, spos) = self.integer("a sequence range start:end(length)")?;
        self.expect_punct(':')?;
        let (end, epos) = self.integer("the end of the sequence range")?;
        self.expect_punct('(')?;
        let (len, lpos) = self.integer("a payload length")?;
        self.expect_punct(')')?;
        if u32::try_from(start).is_err() {
            return Err(self.err_at(spos, "TCP start sequence number out of range"));
        }
        if u32::try_from(end).is_err() {
            return Err(self.err_at(epos, "TCP end sequence number out of range"));
        }
        if u16::try_from(len).is_err() {
            return Err(self.err_at(lpos, "TCP payload size out of range"));
        }
        if end != start + len {
            return Err(self.err_at(spos, "inconsistent TCP sequence numbers and payload size"));
        }
        pkt.seq.start = start as u32;
        pkt.seq.len = len as u16;
        if self.eat_punct('!')? {
            pkt.seq.absolute = true;
        }
        Ok(())
    }

    fn tcp_options(&mut self, pkt: &mut Packet, lt: Pos) -> Result<Vec<TcpOpt>, ParseError> {
        let mut opts = Vec::new();
        let mut bytes = 0usize;
        loop {
            let t = self.next()?;
            let Tok::Word(w) = &t.tok else {
                return Err(self.err_at(
                    t.pos,
                    format!("expected a TCP option, found {}", t.tok.describe()),
                ));
            };
            let opt = match w.as_str() {
                "nop" => Some(TcpOpt::Nop),
                "eol" => Some(TcpOpt::Eol),
                "mss" => Some(TcpOpt::Mss(
                    self.ranged("an MSS value", "mss value out of range")?,
                )),
                "wscale" => {
                    let (v, pos) = self.integer("a window scale shift")?;
                    let v = u8::try_from(v)
                        .map_err(|_| self.err_at(pos, "window scale shift count out of range"))?;
                    Some(TcpOpt::WScale(v))
                }
                "sackOK" => Some(TcpOpt::SackOk),
                "sack" => {
                    let mut blocks = Vec::new();
                    while let Tok::Int(_) = self.peek()? {
                        let l: u32 = self
                            .ranged("a SACK block", "TCP SACK left sequence number out of range")?;
                        self.expect_punct(':')?;
                        let r: u32 = self.ranged(
                            "the right edge of a SACK block",
                            "TCP SACK right sequence number out of range",
                        )?;
                        blocks.push((l, r));
                    }
                    if blocks.is_empty() {
                        return Err(self.unexpected("a SACK block left:right"));
                    }
                    Some(TcpOpt::Sack(blocks))
                }
                "TS" => {
                    self.expect_word("val")?;
                    let val = self.ranged("a TS val", "ts val out of range")?;
                    self.expect_word("ecr")?;
                    let ecr = self.ranged("a TS ecr", "ecr val out of range")?;
                    Some(TcpOpt::Timestamp { val, ecr })
                }
                "md5" | "FO" | "FOEXP" | "ECN" => {
                    let what = match w.as_str() {
                        "md5" => "the TCP MD5 signature option",
                        "ECN" => "the AccECN option",
                        _ => "the TCP Fast Open option",
                    };
                    pkt.unsupported = Some(what.into());
                    // Skip its arguments, up to the next option or the end of the list.
                    while !matches!(self.peek()?, Tok::Punct(',') | Tok::Punct('>') | Tok::Eof) {
                        self.next()?;
                    }
                    None
                }
                other => return Err(self.err_at(t.pos, format!("unknown TCP option \"{other}\""))),
            };
            if let Some(o) = opt {
                bytes += match &o {
                    TcpOpt::Nop | TcpOpt::Eol => 1,
                    TcpOpt::Mss(_) => 4,
                    TcpOpt::WScale(_) => 3,
                    TcpOpt::SackOk => 2,
                    TcpOpt::Sack(b) => 2 + 8 * b.len(),
                    TcpOpt::Timestamp { .. } => 10,
                };
                opts.push(o);
            }
            if self.eat_punct(',')? {
                continue;
            }
            self.expect_punct('>')?;
            break;
        }
        if bytes > 40 {
            return Err(self.err_at(lt, "TCP option list too long"));
        }
        if !bytes.is_multiple_of(4) && pkt.unsupported.is_none() {
            return Err(self.err_at(
                lt,
                format!(
                    "TCP options are not padded correctly to ensure TCP header is a multiple of 4 bytes: {} excess bytes",
                    bytes % 4
                ),
            ));
        }
        Ok(opts)
    }

    // ----- system calls -----

    fn syscall(&mut self) -> Result<Syscall, ParseError> {
        let mut end = None;
        if *self.peek()? == Tok::Ellipsis {
            self.next()?;
            end = Some(self.time()?);
        }
        let name = match self.next()? {
            Token {
                tok: Tok::Word(w), ..
            } => w,
            t => {
                return Err(self.err_at(
                    t.pos,
                    format!("expected a system call name, found {}", t.tok.describe()),
                ))
            }
        };
        self.expect_punct('(')?;
        let mut args = Vec::new();
        if !self.eat_punct(')')? {
            args = self.expr_list()?;
            self.expect_punct(')')?;
        }
        self.expect_punct('=')?;
        let result = self.expr()?;
        let mut errno = None;
        if let Tok::Word(w) = self.peek()?.clone() {
            self.next()?;
            errno = Some(w);
        }
        let note = if self.is_punct('(')? {
            Some(self.note()?)
        } else {
            None
        };
        Ok(Syscall {
            name,
            args,
            result,
            errno,
            note,
            end,
        })
    }

    /// `( free text )`, returned as the words inside.
    fn note(&mut self) -> Result<String, ParseError> {
        let open = self.expect_punct('(')?;
        let mut words: Vec<String> = Vec::new();
        let mut depth = 1;
        loop {
            let t = self.next()?;
            match t.tok {
                Tok::Eof => return Err(self.err_at(open, "unterminated ( note )")),
                Tok::Punct('(') => depth += 1,
                Tok::Punct(')') => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(words.join(" "));
                    }
                }
                Tok::Word(w) => words.push(w),
                Tok::Int(i) => words.push(i.to_string()),
                Tok::Hex(i) => words.push(format!("{i:#x}")),
                Tok::Str(s) => words.push(s),
                Tok::Punct(c) => words.push(c.to_string()),
                other => words.push(other.describe()),
            }
        }
    }

    fn expr_list(&mut self) -> Result<Vec<Expr>, ParseError> {
        let mut v = vec![self.expr()?];
        while self.eat_punct(',')? {
            v.push(self.expr()?);
        }
        Ok(v)
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.primary()?;
        loop {
            if self.eat_punct('|')? {
                let rhs = self.primary()?;
                e = Expr::Or(Box::new(e), Box::new(rhs));
            } else if self.is_punct('=')? && matches!(e, Expr::Word(_) | Expr::Call(..)) {
                // `name = value` inside structures; a syscall's own `=` follows `)`, never a
                // bare word, so this cannot swallow it.
                self.next()?;
                let rhs = self.expr()?;
                e = Expr::Assign(Box::new(e), Box::new(rhs));
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let t = self.next()?;
        match t.tok {
            Tok::Ellipsis => Ok(Expr::Ellipsis),
            Tok::Int(i) | Tok::Hex(i) => Ok(Expr::Int(i)),
            Tok::Word(w) => {
                if self.is_punct('(')? {
                    self.next()?;
                    let mut args = Vec::new();
                    if !self.eat_punct(')')? {
                        args = self.expr_list()?;
                        self.expect_punct(')')?;
                    }
                    return Ok(Expr::Call(w, args));
                }
                Ok(Expr::Word(w))
            }
            Tok::Str(mut s) => {
                // Adjacent strings concatenate, as in C.
                while let Tok::Str(more) = self.peek()?.clone() {
                    self.next()?;
                    s.push_str(&more);
                }
                let ellipsis = if *self.peek()? == Tok::Ellipsis {
                    self.next()?;
                    true
                } else {
                    false
                };
                Ok(Expr::Str { text: s, ellipsis })
            }
            Tok::Punct('[') => {
                if self.eat_punct(']')? {
                    return Ok(Expr::List(Vec::new()));
                }
                let v = self.expr_list()?;
                self.expect_punct(']')?;
                Ok(Expr::List(v))
            }
            Tok::Punct('{') => {
                let v = self.expr_list()?;
                self.expect_punct('}')?;
                Ok(Expr::Brace(v))
            }
            other => Err(self.err_at(
                t.pos,
                format!("expected an expression, found {}", other.describe()),
            )),
        }
    }
}

/// Checks packetdrill's semantic rules that span a whole event.
fn validate(script: &Script) -> Result<(), ParseError> {
    let err = |pos: Pos, m: &str| Err(ParseError::new(&script.path, pos, m));
    for (i, e) in script.events.iter().enumerate() {
        let outbound = matches!(&e.action, Action::Packet(p) if p.direction == Direction::Outbound);
        match e.time {
            EventTime::AbsoluteRange(a, b) | EventTime::RelativeRange(a, b) => {
                if b < a {
                    return err(e.pos, "time range is backwards");
                }
                if !outbound {
                    return err(
                        e.pos,
                        "event time range can only be used with outbound packets",
                    );
                }
            }
            EventTime::Any if !outbound => {
                return err(e.pos, "event time * can only be used with outbound packets");
            }
            EventTime::Absolute(t) | EventTime::Relative(t) if i == 0 && t != 0 => {
                return err(e.pos, "first event should be at time 0");
            }
            _ => {}
        }
        if let Action::Syscall(s) = &e.action {
            // Ranges and `*` were refused above, so a syscall's time is a plain one.
            if let (Some(end), EventTime::Absolute(t) | EventTime::Relative(t)) = (s.end, e.time) {
                if end < t {
                    return err(e.pos, "a blocking call cannot return before it starts");
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "parser_tests.rs"]
mod tests;
