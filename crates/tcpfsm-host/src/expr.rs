//! `ss`-style filter expressions over sockets: `sport`/`dport` compared with `= != < > <= >=`
//! (or `eq ne lt gt le ge`) against a port, a service name from /etc/services, or a range
//! `A-B`; `src`/`dst` against an address or prefix (`10.0.0.0/8`, `[2001:db8::]/32`,
//! `10.0.0.1:80`, `[::1]:443`); joined with `and`/`&&`, `or`/`||`, `not`/`!` and parentheses.
//! As in `ss`, two conditions side by side mean `and`, and `and` binds tighter than `or`.
//!
//! ```
//! use tcpfsm_host::expr::Expr;
//! let e: Expr = "( dport = :https or sport >= :8000 ) and dst 10.0.0.0/8".parse().unwrap();
//! let local = "10.1.1.1:40000".parse().unwrap();
//! assert!(e.matches(local, "10.2.3.4:443".parse().unwrap()));
//! assert!(!e.matches(local, "192.168.1.1:443".parse().unwrap()));
//! ```
//!
//! An IPv4 condition also matches the IPv4-mapped IPv6 address a dual-stack socket reports
//! (`::ffff:10.0.0.1`), because it is the same peer.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Port(Side, Cmp, PortSpec),
    Addr(Side, bool, HostSpec),
}

/// Which end of the socket a condition looks at: `s…` the local (source) end, `d…` the
/// remote (destination) end, as `ss` means them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Local,
    Remote,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

/// A port or an inclusive range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpec {
    pub low: u16,
    pub high: u16,
}

/// An address prefix, optionally with a port (`10.0.0.0/8`, `[::1]:80`); `*` is any address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostSpec {
    pub net: Option<(IpAddr, u8)>,
    pub port: Option<u16>,
}

/// A filter that cannot be read, with the token it stopped at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError(pub String);

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad filter: {}", self.0)
    }
}

impl std::error::Error for ExprError {}

impl Expr {
    /// Does a socket with these ends pass the filter?
    pub fn matches(&self, local: SocketAddr, remote: SocketAddr) -> bool {
        let end = |s: Side| if s == Side::Local { local } else { remote };
        match self {
            Expr::And(a, b) => a.matches(local, remote) && b.matches(local, remote),
            Expr::Or(a, b) => a.matches(local, remote) || b.matches(local, remote),
            Expr::Not(a) => !a.matches(local, remote),
            Expr::Port(side, cmp, spec) => spec.compare(end(*side).port(), *cmp),
            Expr::Addr(side, eq, host) => host.contains(end(*side)) == *eq,
        }
    }
}

impl PortSpec {
    fn compare(&self, p: u16, cmp: Cmp) -> bool {
        let inside = (self.low..=self.high).contains(&p);
        match cmp {
            Cmp::Eq => inside,
            Cmp::Ne => !inside,
            Cmp::Lt => p < self.low,
            Cmp::Gt => p > self.high,
            Cmp::Le => p <= self.high,
            Cmp::Ge => p >= self.low,
        }
    }
}

/// The IPv4 address inside an IPv4-mapped IPv6 address.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

impl HostSpec {
    fn contains(&self, a: SocketAddr) -> bool {
        if self.port.is_some_and(|p| p != a.port()) {
            return false;
        }
        let Some((net, len)) = self.net else {
            return true;
        };
        match (unmapped(net), unmapped(a.ip())) {
            (IpAddr::V4(n), IpAddr::V4(x)) => {
                let mask = u32::MAX.checked_shl(32 - len as u32).unwrap_or(0);
                u32::from(n) & mask == u32::from(x) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(x)) => {
                let mask = u128::MAX.checked_shl(128 - len as u32).unwrap_or(0);
                u128::from(n) & mask == u128::from(x) & mask
            }
            _ => false,
        }
    }
}

/// Splits a filter into tokens: words, and `( ) ! = == != < > <= >= & && | ||`, whether or
/// not they are separated by spaces (`(dport>=:1024)` is five tokens).
fn tokenize(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    let flush = |w: &mut String, out: &mut Vec<String>| {
        if !w.is_empty() {
            out.push(std::mem::take(w));
        }
    };
    while i < cs.len() {
        let c = cs[i];
        let next = cs.get(i + 1).copied();
        let two = |a: char, b: char| c == a && next == Some(b);
        let op = if two('&', '&')
            || two('|', '|')
            || two('=', '=')
            || two('!', '=')
            || two('<', '=')
            || two('>', '=')
        {
            Some(2)
        } else if "()!=<>&|".contains(c) {
            Some(1)
        } else {
            None
        };
        if c.is_whitespace() {
            flush(&mut word, &mut out);
            i += 1;
        } else if let Some(n) = op {
            flush(&mut word, &mut out);
            out.push(cs[i..i + n].iter().collect());
            i += n;
        } else {
            word.push(c);
            i += 1;
        }
    }
    flush(&mut word, &mut out);
    out
}

struct Parser {
    toks: Vec<String>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.toks.get(self.pos).map(String::as_str)
    }
    fn next(&mut self) -> Option<String> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += t.is_some() as usize;
        t
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.and()?;
        while matches!(self.peek(), Some("or" | "||" | "|")) {
            self.pos += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.factor()?;
        loop {
            match self.peek() {
                Some("and" | "&&" | "&") => self.pos += 1,
                // Juxtaposition is `and`, as in ss.
                Some(t) if t != ")" && !matches!(t, "or" | "||" | "|") => {}
                _ => return Ok(e),
            }
            e = Expr::And(Box::new(e), Box::new(self.factor()?));
        }
    }

    fn factor(&mut self) -> Result<Expr, ExprError> {
        match self.next().as_deref() {
            Some("not" | "!") => Ok(Expr::Not(Box::new(self.factor()?))),
            Some("(") => {
                let e = self.or()?;
                match self.next().as_deref() {
                    Some(")") => Ok(e),
                    Some(t) => Err(ExprError(format!("expected \")\", found {t:?}"))),
                    None => Err(ExprError("missing \")\"".into())),
                }
            }
            Some(kw @ ("sport" | "dport")) => {
                let side = if kw == "sport" { Side::Local } else { Side::Remote };
                let cmp = self.cmp(kw)?.unwrap_or(Cmp::Eq);
                let v = self
                    .next()
                    .ok_or_else(|| ExprError(format!("{kw}: a port is missing")))?;
                Ok(Expr::Port(side, cmp, parse_port_spec(&v)?))
            }
            Some(kw @ ("src" | "dst")) => {
                let side = if kw == "src" { Side::Local } else { Side::Remote };
                let eq = match self.cmp(kw)? {
                    None | Some(Cmp::Eq) => true,
                    Some(Cmp::Ne) => false,
                    Some(_) => {
                        return Err(ExprError(format!(
                            "{kw} takes = or != (ordering addresses means nothing)"
                        )))
                    }
                };
                let v = self
                    .next()
                    .ok_or_else(|| ExprError(format!("{kw}: an address is missing")))?;
                Ok(Expr::Addr(side, eq, parse_host(&v)?))
            }
            Some(
                kw @ ("dev" | "fwmark" | "cgroup" | "autobound" | "inet" | "inode" | "state"
                | "exclude"),
            ) => Err(ExprError(format!(
                "{kw:?} is not supported here (tcpfsm filters on sport, dport, src, dst; states with --state)"
            ))),
            Some(t) => Err(ExprError(format!(
                "unexpected {t:?} (expected sport, dport, src, dst, not or \"(\")"
            ))),
            None => Err(ExprError("the filter ends too early".into())),
        }
    }

    /// An optional comparison operator after `kw`.
    fn cmp(&mut self, kw: &str) -> Result<Option<Cmp>, ExprError> {
        let c = match self.peek() {
            Some("=" | "==" | "eq") => Cmp::Eq,
            Some("!=" | "ne" | "neq") => Cmp::Ne,
            Some("<" | "lt") => Cmp::Lt,
            Some(">" | "gt") => Cmp::Gt,
            Some("<=" | "le") => Cmp::Le,
            Some(">=" | "ge") => Cmp::Ge,
            Some("!") => return Err(ExprError(format!("{kw} !: did you mean !=?"))),
            _ => return Ok(None),
        };
        self.pos += 1;
        Ok(Some(c))
    }
}

/// A port as `ss` writes it: `:22`, `22`, `:ssh`, or a range `:8000-8080`.
fn parse_port_spec(v: &str) -> Result<PortSpec, ExprError> {
    let v = v.strip_prefix(':').unwrap_or(v);
    if let Some((a, b)) = v.split_once('-') {
        let (low, high) = (port_number(a)?, port_number(b)?);
        if low > high {
            return Err(ExprError(format!("port range {v:?} runs backwards")));
        }
        return Ok(PortSpec { low, high });
    }
    let p = port_number(v)?;
    Ok(PortSpec { low: p, high: p })
}

fn port_number(v: &str) -> Result<u16, ExprError> {
    if v.is_empty() {
        return Err(ExprError("empty port".into()));
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return v
            .parse::<u16>()
            .map_err(|_| ExprError(format!("port {v} is outside 0-65535")));
    }
    service_port(v)
        .ok_or_else(|| ExprError(format!("unknown service name {v:?} (not in /etc/services)")))
}

/// The TCP port of a service name, from /etc/services.
fn service_port(name: &str) -> Option<u16> {
    let text = std::fs::read_to_string("/etc/services").ok()?;
    parse_services(&text, name)
}

/// Finds `name` (or an alias) with protocol tcp in an /etc/services text.
pub fn parse_services(text: &str, name: &str) -> Option<u16> {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut it = line.split_whitespace();
        let (Some(svc), Some(pp)) = (it.next(), it.next()) else {
            continue;
        };
        let Some((port, proto)) = pp.split_once('/') else {
            continue;
        };
        if proto == "tcp" && (svc == name || it.any(|alias| alias == name)) {
            return port.parse().ok();
        }
    }
    None
}

/// An address as `ss` takes it: `*`, `10.0.0.1`, `10.0.0.0/8`, `10.0.0.1:80`, `*:80`,
/// `[2001:db8::1]`, `[2001:db8::]/32`, `[::1]:443`, or a bare IPv6 address or prefix.
fn parse_host(v: &str) -> Result<HostSpec, ExprError> {
    let bad = || ExprError(format!("cannot read address {v:?}"));
    if v == "*" {
        return Ok(HostSpec {
            net: None,
            port: None,
        });
    }
    // Split off a port: after "]" for bracketed IPv6, after the only ":" for IPv4 or "*".
    let (addr, port) = if let Some(rest) = v.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or_else(bad)?;
        let (prefix, port) = match after.split_once(':') {
            Some((p, port)) => (p, Some(port)),
            None => (after, None),
        };
        (format!("{inside}{prefix}"), port)
    } else if v.matches(':').count() == 1 {
        let (a, p) = v.split_once(':').ok_or_else(bad)?;
        (a.to_string(), Some(p))
    } else {
        (v.to_string(), None)
    };
    let port = match port {
        None | Some("*") => None,
        Some(p) => Some(port_number(p)?),
    };
    if addr == "*" || addr.is_empty() {
        return Ok(HostSpec { net: None, port });
    }
    let (ip_text, len) = match addr.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (addr.as_str(), None),
    };
    let ip: IpAddr = ip_text
        .parse::<Ipv4Addr>()
        .map(IpAddr::V4)
        .or_else(|_| ip_text.parse::<Ipv6Addr>().map(IpAddr::V6))
        .map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| ExprError(format!("prefix length in {v:?} must be 0-{max}")))?,
    };
    Ok(HostSpec {
        net: Some((ip, len)),
        port,
    })
}

impl FromStr for Expr {
    type Err = ExprError;

    fn from_str(s: &str) -> Result<Expr, ExprError> {
        let mut p = Parser {
            toks: tokenize(s),
            pos: 0,
        };
        if p.toks.is_empty() {
            return Err(ExprError("empty filter".into()));
        }
        let e = p.or()?;
        match p.next() {
            None => Ok(e),
            Some(t) => Err(ExprError(format!(
                "unexpected {t:?} after a complete filter"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(e: &str, local: &str, remote: &str) -> bool {
        let e: Expr = e.parse().unwrap_or_else(|err| panic!("{e}: {err}"));
        e.matches(local.parse().unwrap(), remote.parse().unwrap())
    }

    const L: &str = "10.0.0.1:40000";

    #[test]
    fn port_comparisons_and_ranges() {
        assert!(m("dport = :443", L, "1.2.3.4:443"));
        assert!(m("dport == 443", L, "1.2.3.4:443"));
        assert!(!m("dport != :443", L, "1.2.3.4:443"));
        assert!(m("sport > :1024", L, "1.2.3.4:443"));
        assert!(m("sport gt 39999", L, "1.2.3.4:443"));
        assert!(!m("sport gt 40000", L, "1.2.3.4:443"));
        assert!(m("sport >= :40000", L, "1.2.3.4:443"));
        assert!(m("sport <= :40000 and sport ge 40000", L, "1.2.3.4:443"));
        assert!(!m("dport < :443", L, "1.2.3.4:443"));
        assert!(m("dport = :400-500", L, "1.2.3.4:443"));
        assert!(!m("dport != :400-500", L, "1.2.3.4:443"));
        assert!(m("dport > :100-442", L, "1.2.3.4:443"));
    }

    #[test]
    fn addresses_prefixes_ports_and_ipv6() {
        assert!(m("dst 1.2.3.0/24", L, "1.2.3.4:443"));
        assert!(!m("dst 1.2.4.0/24", L, "1.2.3.4:443"));
        assert!(m("dst 1.2.3.4:443", L, "1.2.3.4:443"));
        assert!(!m("dst 1.2.3.4:80", L, "1.2.3.4:443"));
        assert!(m("src 10.0.0.0/8 and dst *:443", L, "1.2.3.4:443"));
        assert!(m("dst 0.0.0.0/0", L, "1.2.3.4:443"));
        assert!(m("dst != 9.9.9.9", L, "1.2.3.4:443"));
        let (l6, r6) = ("[2001:db8::1]:443", "[2001:db8:1::7]:50000");
        assert!(m("dst [2001:db8::]/32", l6, r6));
        assert!(m("dst 2001:db8:1::/48", l6, r6));
        assert!(!m("dst 2001:db8:2::/48", l6, r6));
        assert!(m("src [2001:db8::1]:443", l6, r6));
        assert!(m("src [2001:db8::1]", l6, r6));
        assert!(
            !m("src 10.0.0.0/8", l6, r6),
            "families never match each other"
        );
        // A dual-stack socket's IPv4 peer, reported mapped.
        assert!(m(
            "dst 192.0.2.0/24",
            "[::ffff:10.0.0.1]:80",
            "[::ffff:192.0.2.9]:5000"
        ));
    }

    #[test]
    fn logic_precedence_and_juxtaposition_follow_ss() {
        // and binds tighter than or.
        assert!(m(
            "dport = :1 or dport = :443 and sport = :40000",
            L,
            "1.2.3.4:443"
        ));
        assert!(!m(
            "( dport = :1 or dport = :443 ) and sport = :2",
            L,
            "1.2.3.4:443"
        ));
        // Side by side means and.
        assert!(m("dport = :443 sport = :40000", L, "1.2.3.4:443"));
        assert!(!m("dport = :443 sport = :1", L, "1.2.3.4:443"));
        assert!(m("not dport = :80", L, "1.2.3.4:443"));
        assert!(m("! ( dport = :80 || dport = :81 )", L, "1.2.3.4:443"));
        assert!(m("(dport>=:400&&dport<=:500)", L, "1.2.3.4:443"));
    }

    #[test]
    fn service_names_come_from_etc_services() {
        let text = "# comment\nssh\t\t22/tcp\nhttps 443/tcp http-secure # TLS\nhttps 443/udp\n";
        assert_eq!(parse_services(text, "ssh"), Some(22));
        assert_eq!(parse_services(text, "http-secure"), Some(443));
        assert_eq!(parse_services(text, "nope"), None);
    }

    #[test]
    fn bad_filters_say_what_is_wrong() {
        let err = |s: &str| s.parse::<Expr>().unwrap_err().to_string();
        assert!(err("dport = :70000").contains("outside 0-65535"));
        assert!(err("dport = :frobnicate-not-a-service").contains("unknown service"));
        assert!(err("( dport = :1").contains("missing \")\""));
        assert!(err("dport = :1 )").contains("unexpected \")\""));
        assert!(err("dst 10.0.0.0/40").contains("prefix length"));
        assert!(err("dst banana").contains("cannot read address"));
        assert!(err("dev eth0").contains("not supported"));
        assert!(err("dport").contains("port is missing"));
        assert!(err("dst < 1.2.3.4").contains("= or !="));
        assert!(err("dport = :9-1").contains("backwards"));
        assert!(err("").contains("empty"));
        assert!(err("and").contains("unexpected"));
    }
}
