//! The scenario script: a small line-oriented language (documented in SCRIPT.md).
//!
//! Parsing checks everything that can be checked before running (syntax, known hosts, known
//! settings, value ranges) and reports the first problem as `file:line: message`. Socket
//! names may contain `$var` from an enclosing `repeat … as var`, so they are resolved when the
//! statement runs.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tcpfsm_core::Config;
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
        /// Spread over this long (zero: all at once).
        over: Duration,
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

mod lex;
mod names;
mod parser;
mod settings;
mod values;

pub use parser::{parse, MAX_INJECT, MAX_REPEAT, MAX_SEND};
pub use settings::{apply_setting, SETTINGS};
pub use values::parse_duration;
