//! Linux sysctls mapped onto the engine's [`Config`]: the knob with the same meaning, where
//! the engine has one.

use super::{Applied, SysErr, SysResult};
use std::time::Duration;
use tcpfsm_core::{Config, SynCookies, TwReuse};

/// Knobs kept by the socket layer rather than the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SocketDefaults {
    /// `tcp_keepalive_time`: the idle time SO_KEEPALIVE would use.
    pub keepalive_time: Duration,
}

impl Default for SocketDefaults {
    fn default() -> SocketDefaults {
        SocketDefaults {
            keepalive_time: Duration::from_secs(7200),
        }
    }
}

fn num(key: &str, v: &str) -> SysResult<u64> {
    v.trim()
        .parse::<u64>()
        .map_err(|_| SysErr::Unsupported(format!("{key}={v}: the engine expects a number")))
}

fn u32v(key: &str, v: &str) -> SysResult<u32> {
    u32::try_from(num(key, v)?).map_err(|_| SysErr::Unsupported(format!("{key}={v}: out of range")))
}

/// The middle value of a `min default max` triple.
fn triple_default(key: &str, v: &str) -> SysResult<usize> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    if parts.len() != 3 {
        return Err(SysErr::Unsupported(format!(
            "{key}={v}: expected three numbers"
        )));
    }
    Ok(num(key, parts[1])? as usize)
}

fn ignored(why: &str) -> SysResult<Applied> {
    Ok(Applied::Ignored(why.to_string()))
}

/// Applies `key = value` to `cfg` (or `sock`).
pub(crate) fn apply(
    cfg: &mut Config,
    sock: &mut SocketDefaults,
    key: &str,
    value: &str,
) -> SysResult<Applied> {
    let name = key
        .strip_prefix("net.ipv4.")
        .or_else(|| key.strip_prefix("net.ipv6."))
        .or_else(|| key.strip_prefix("net.core."))
        .unwrap_or(key);
    match name {
        "tcp_timestamps" => cfg.timestamps = num(key, value)? != 0,
        "tcp_window_scaling" => cfg.window_scaling = num(key, value)? != 0,
        "tcp_sack" => cfg.sack = num(key, value)? != 0,
        "tcp_syncookies" => {
            cfg.syncookies = match num(key, value)? {
                0 => SynCookies::Off,
                1 => SynCookies::OnOverflow,
                _ => SynCookies::Always,
            }
        }
        "tcp_syn_retries" => cfg.syn_retries = u32v(key, value)?,
        "tcp_synack_retries" => cfg.synack_retries = u32v(key, value)?,
        "tcp_retries2" => cfg.retries2 = u32v(key, value)?,
        "tcp_orphan_retries" => cfg.orphan_retries = u32v(key, value)?,
        "tcp_fin_timeout" => cfg.fin_timeout = Duration::from_secs(num(key, value)?),
        "tcp_tw_reuse" => {
            cfg.tw_reuse = match num(key, value)? {
                0 => TwReuse::Off,
                1 => TwReuse::On,
                _ => TwReuse::LoopbackOnly,
            }
        }
        "tcp_max_tw_buckets" => cfg.max_tw_buckets = u32v(key, value)?,
        "tcp_max_syn_backlog" => cfg.max_syn_backlog = u32v(key, value)?,
        "somaxconn" => cfg.somaxconn = u32v(key, value)?,
        "ip_local_port_range" => {
            let p: Vec<&str> = value.split_whitespace().collect();
            let port = |s: &str| {
                s.parse::<u16>()
                    .map_err(|_| SysErr::Unsupported(format!("{key}={value}: expected two ports")))
            };
            if p.len() != 2 {
                return Err(SysErr::Unsupported(format!(
                    "{key}={value}: expected two ports"
                )));
            }
            cfg.ephemeral_ports = (port(p[0])?, port(p[1])?);
        }
        "tcp_keepalive_time" => sock.keepalive_time = Duration::from_secs(num(key, value)?),
        "tcp_keepalive_intvl" => cfg.keepalive_interval = Duration::from_secs(num(key, value)?),
        "tcp_keepalive_probes" => cfg.keepalive_probes = u32v(key, value)?,
        "tcp_rmem" => cfg.recv_buffer = triple_default(key, value)?,
        "tcp_wmem" => cfg.send_buffer = triple_default(key, value)?,
        "tcp_rto_min_us" => cfg.rto_min = Duration::from_micros(num(key, value)?),
        "tcp_invalid_ratelimit" => cfg.invalid_ratelimit = Duration::from_millis(num(key, value)?),
        "tcp_challenge_ack_limit" => cfg.challenge_ack_limit = u32v(key, value)?,
        "tcp_ecn" if num(key, value)? == 0 => {}
        "tcp_ecn" => return ignored("the engine does not negotiate ECN"),
        // Linux's default: an RST ends TIME_WAIT (no RFC 1337 protection), as in the engine.
        "tcp_rfc1337" if num(key, value)? == 0 => {}
        "tcp_rfc1337" => return ignored("the engine always lets an RST end TIME_WAIT"),
        // Linux 6.x retransmits the first SYNs at linear 1 s intervals by default; the
        // engine always backs off exponentially (RFC 6298 section 5.5), i.e. 0 here.
        "tcp_syn_linear_timeouts" if num(key, value)? == 0 => {}
        "tcp_syn_linear_timeouts" => {
            return ignored("the engine backs SYN retransmissions off exponentially")
        }
        "tcp_congestion_control" if value == "reno" => {}
        "tcp_congestion_control" => {
            return ignored("the engine has NewReno congestion control only")
        }
        _ => return ignored("no engine equivalent"),
    }
    Ok(Applied::Set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_knobs_reach_the_config() {
        let mut c = Config::default();
        let mut s = SocketDefaults::default();
        assert_eq!(
            apply(&mut c, &mut s, "net.ipv4.tcp_syn_retries", "3"),
            Ok(Applied::Set)
        );
        apply(&mut c, &mut s, "net.ipv4.tcp_rmem", "4096 65536 2097152").unwrap();
        apply(
            &mut c,
            &mut s,
            "net.ipv4.ip_local_port_range",
            "40000 40010",
        )
        .unwrap();
        assert_eq!(c.syn_retries, 3);
        assert_eq!(c.recv_buffer, 65536);
        assert_eq!(c.ephemeral_ports, (40000, 40010));
        assert!(matches!(
            apply(&mut c, &mut s, "net.ipv4.tcp_frto", "2"),
            Ok(Applied::Ignored(_))
        ));
        assert!(apply(&mut c, &mut s, "net.ipv4.tcp_sack", "yes").is_err());
    }
}
