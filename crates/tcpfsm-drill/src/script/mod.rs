//! The packetdrill script language: syntax tree and parser.
//!
//! A script is a header of `--options`, an optional init command, a list of timed events
//! (packets, system calls, `` `commands` ``, `%{ code }%`) and an optional cleanup command.
//! [`parse`] turns text into a [`Script`]; a [`ParseError`] names `file:line:column`.

mod lexer;
mod parser;

pub use lexer::Pos;
pub use parser::parse;

use std::fmt;

/// A syntax or semantic error in a script, at `file:line:column`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{}:{}: {message}", pos.line, pos.col)]
pub struct ParseError {
    pub file: String,
    pub pos: Pos,
    pub message: String,
}

impl ParseError {
    pub fn new(file: &str, pos: Pos, message: impl Into<String>) -> ParseError {
        ParseError {
            file: file.to_string(),
            pos,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// The file name used in messages.
    pub path: String,
    pub options: Vec<HeaderOption>,
    /// A command before the first event (packetdrill's init command, e.g. `` `./defaults.sh` ``).
    pub init_command: Option<Command>,
    pub events: Vec<Event>,
    /// A command after the last event.
    pub cleanup_command: Option<Command>,
    /// The source lines, for messages.
    pub lines: Vec<String>,
}

impl Script {
    /// The source text of a 1-based line, trimmed.
    pub fn line(&self, n: u32) -> &str {
        self.lines
            .get((n as usize).wrapping_sub(1))
            .map(|l| l.trim())
            .unwrap_or("")
    }
}

/// `--name[=value]` in the script header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderOption {
    pub name: String,
    pub value: Option<String>,
    pub pos: Pos,
}

/// When an event happens, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventTime {
    /// `0.100`: since the start of the script.
    Absolute(i64),
    /// `+0.1`: after the previous event.
    Relative(i64),
    /// `*`: any time (outbound packets only).
    Any,
    /// `0.1~0.2`.
    AbsoluteRange(i64, i64),
    /// `+0.1~+0.2`.
    RelativeRange(i64, i64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Where the event's time stamp starts.
    pub pos: Pos,
    pub time: EventTime,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Packet(Packet),
    Syscall(Syscall),
    Command(Command),
    /// `%{ python }%`: never run; a script with one is skipped.
    Code(String),
}

/// A `` `shell command` `` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub text: String,
    pub pos: Pos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `<`: the script sends it to the stack under test.
    Inbound,
    /// `>`: the stack under test must send it.
    Outbound,
}

/// The IP-level ECN codepoint of a packet (`[ect0]`, `[ce]`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ecn {
    NotEct,
    Ect1,
    Ect0,
    Ce,
    /// `[ect01]`: either ECT codepoint (outbound only).
    Ect01,
}

/// TCP control bits as written, e.g. `S.` or `F.` or `-`.
use tcpfsm_wire::Flags as W;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags(pub u8);

impl Flags {
    // The bits as tcpfsm-wire defines them; this type adds packetdrill's notation.
    pub const FIN: u8 = W::FIN.0;
    pub const SYN: u8 = W::SYN.0;
    pub const RST: u8 = W::RST.0;
    pub const PSH: u8 = W::PSH.0;
    pub const ACK: u8 = W::ACK.0;
    pub const URG: u8 = W::URG.0;
    pub const ECE: u8 = W::ECE.0;
    pub const CWR: u8 = W::CWR.0;

    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
}

impl fmt::Display for Flags {
    /// packetdrill's spelling: `F S R P . U E W` in that order, `-` for none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("-");
        }
        for (bit, c) in [
            (Flags::FIN, 'F'),
            (Flags::SYN, 'S'),
            (Flags::RST, 'R'),
            (Flags::PSH, 'P'),
            (Flags::ACK, '.'),
            (Flags::URG, 'U'),
            (Flags::ECE, 'E'),
            (Flags::CWR, 'W'),
        ] {
            if self.has(bit) {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// `start:end(len)`, `...(len)` (any sequence number) or `start:end(len)!` (absolute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqSpec {
    pub start: u32,
    pub len: u16,
    /// `...(len)`: the sequence number is not checked.
    pub any: bool,
    /// `!`: the number is absolute, not relative to the ISN.
    pub absolute: bool,
}

/// One TCP option as written in `<…>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpOpt {
    Nop,
    Eol,
    Mss(u16),
    WScale(u8),
    SackOk,
    Sack(Vec<(u32, u32)>),
    Timestamp { val: u32, ecr: u32 },
}

impl fmt::Display for TcpOpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TcpOpt::Nop => f.write_str("nop"),
            TcpOpt::Eol => f.write_str("eol"),
            TcpOpt::Mss(m) => write!(f, "mss {m}"),
            TcpOpt::WScale(w) => write!(f, "wscale {w}"),
            TcpOpt::SackOk => f.write_str("sackOK"),
            TcpOpt::Sack(blocks) => {
                f.write_str("sack")?;
                for (l, r) in blocks {
                    write!(f, " {l}:{r}")?;
                }
                Ok(())
            }
            TcpOpt::Timestamp { val, ecr } => write!(f, "TS val {val} ecr {ecr}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub direction: Direction,
    /// `[ect0]` / `(tos 0x…)` style IP information, when given.
    pub ecn: Option<Ecn>,
    /// Explicit `src>dst` ports.
    pub ports: Option<(u16, u16)>,
    pub flags: Flags,
    pub seq: SeqSpec,
    pub ack: Option<u32>,
    pub win: Option<u16>,
    pub urg: Option<u16>,
    /// `None` for `<...>`: options are not checked.
    pub options: Option<Vec<TcpOpt>>,
    /// A packet kind or field this runner does not model (UDP, ICMP, GRE, MPLS, MD5, Fast
    /// Open, AccECN, …): the script is skipped, naming it.
    pub unsupported: Option<String>,
}

/// An expression in a system call's arguments or result.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `...`: whatever the runner uses.
    Ellipsis,
    Int(i64),
    Word(String),
    Str {
        text: String,
        ellipsis: bool,
    },
    /// `a | b`.
    Or(Box<Expr>, Box<Expr>),
    /// `name = value` (inside `{}`).
    Assign(Box<Expr>, Box<Expr>),
    /// `[a, b]`.
    List(Vec<Expr>),
    /// `{a, b}`: a structure (linger, pollfd, iovec, sockaddr, …).
    Brace(Vec<Expr>),
    /// `htons(8080)`, `inet_addr("1.2.3.4")`.
    Call(String, Vec<Expr>),
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list(f: &mut fmt::Formatter<'_>, v: &[Expr]) -> fmt::Result {
            for (i, e) in v.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{e}")?;
            }
            Ok(())
        }
        match self {
            Expr::Ellipsis => f.write_str("..."),
            Expr::Int(i) => write!(f, "{i}"),
            Expr::Word(w) => f.write_str(w),
            Expr::Str { text, ellipsis } => {
                write!(f, "\"{text}\"{}", if *ellipsis { "..." } else { "" })
            }
            Expr::Or(a, b) => write!(f, "{a}|{b}"),
            Expr::Assign(a, b) => write!(f, "{a}={b}"),
            Expr::List(v) => {
                f.write_str("[")?;
                list(f, v)?;
                f.write_str("]")
            }
            Expr::Brace(v) => {
                f.write_str("{")?;
                list(f, v)?;
                f.write_str("}")
            }
            Expr::Call(n, v) => {
                write!(f, "{n}(")?;
                list(f, v)?;
                f.write_str(")")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Syscall {
    pub name: String,
    pub args: Vec<Expr>,
    pub result: Expr,
    /// `EINPROGRESS` in `= -1 EINPROGRESS (Operation now in progress)`.
    pub errno: Option<String>,
    /// The parenthesised note, free text.
    pub note: Option<String>,
    /// `...END` after the time: a blocking call that returns at END (same time frame as the
    /// event's own time), in microseconds.
    pub end: Option<i64>,
}
