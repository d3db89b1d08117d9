//! Values in scripts: durations, probabilities, counts, ports, flags.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::flag;

/// `250us`, `10ms`, `1.5s`, `2m`, `1h` (the impairment language's durations).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    tcpfsm_impair::spec::parse_duration(s)
}

pub(super) fn parse_num<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("bad {what} {s:?} (expected a whole number)"))
}

pub(super) fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "on" | "yes" | "true" | "1" => Ok(true),
        "off" | "no" | "false" | "0" => Ok(false),
        _ => Err(format!("expected on or off, found {s:?}")),
    }
}

/// `10.0.0.1:80`, `[fd00::1]:80`.
pub(super) fn parse_socket_addr(s: &str) -> Option<SocketAddr> {
    s.parse().ok()
}

pub(super) fn parse_flags(s: &str) -> Result<u8, String> {
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

/// A TCP port, 0–65535; a number outside that range says so.
pub(super) fn parse_port(s: &str) -> Result<u16, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u16>()
            .map_err(|_| format!("port {s} is outside 0–65535"));
    }
    Err(format!("bad port {s:?} (expected a number 0–65535)"))
}

/// `PORT` or `ADDRESS:PORT` (`[fd00::1]:80` for IPv6).
pub(super) fn parse_local(s: &str) -> Result<(Option<IpAddr>, u16), String> {
    if let Some(a) = parse_socket_addr(s) {
        return Ok((Some(a.ip()), a.port()));
    }
    match s.rsplit_once(':') {
        Some((ip, port)) => {
            let ip: IpAddr = ip
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| format!("bad address {ip:?} in {s:?}"))?;
            Ok((Some(ip), parse_port(port)?))
        }
        None => Ok((None, parse_port(s)?)),
    }
}
