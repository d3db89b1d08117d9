//! `set HOST KEY VALUE`: the per-host TCP settings a script can change.

use tcpfsm_core::{Config, SynCookies, TwReuse};

use super::values::{parse_bool, parse_duration, parse_num};

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
