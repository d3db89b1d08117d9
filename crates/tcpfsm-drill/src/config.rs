//! A script's run settings: its header options over packetdrill's defaults.

use crate::script::Script;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// packetdrill's defaults (`config.c`): 192.168.0.1 / fd3d:fa7b:d17d::1 for the stack under
/// test, 192.0.2.1 / 2001:db8::1 for the script's remote end, port 8080 both ways, a
/// 4 ms tolerance plus 12.5 % of the time since the previous event.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptConfig {
    pub v6: bool,
    pub local_ip: IpAddr,
    pub remote_ip: IpAddr,
    pub bind_port: u16,
    pub connect_port: u16,
    pub tolerance_usecs: i64,
    pub tolerance_percent: f64,
    pub mtu: u32,
    pub mss: Option<u16>,
    pub ts_tick_usecs: Option<i64>,
    /// `--strict_segments`: a `>` line must match one segment, never several.
    pub strict_segments: bool,
}

pub const V4_LOCAL: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 1);
pub const V4_REMOTE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const V6_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfd3d, 0xfa7b, 0xd17d, 0, 0, 0, 0, 1);
pub const V6_REMOTE: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

/// Why a script's header cannot run: a bad value (the script is wrong) or an option for a
/// feature not modelled (the script is skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    Bad { line: u32, message: String },
    Unsupported(String),
}

impl ScriptConfig {
    pub fn from_script(s: &Script) -> Result<ScriptConfig, HeaderError> {
        let mut c = ScriptConfig {
            v6: false,
            local_ip: V4_LOCAL.into(),
            remote_ip: V4_REMOTE.into(),
            bind_port: 8080,
            connect_port: 8080,
            tolerance_usecs: 4000,
            tolerance_percent: 12.5,
            mtu: 1500,
            mss: None,
            ts_tick_usecs: None,
            strict_segments: false,
        };
        let (mut local, mut remote) = (None, None);
        for o in &s.options {
            let v = o.value.as_deref().unwrap_or("");
            let bad = |m: String| HeaderError::Bad {
                line: o.pos.line,
                message: m,
            };
            let num = |what: &str| -> Result<i64, HeaderError> {
                v.parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| bad(format!("--{what}={v}: expected a non-negative number")))
            };
            match o.name.as_str() {
                "ip_version" => match v {
                    "ipv4" => c.v6 = false,
                    "ipv6" => c.v6 = true,
                    "ipv4-mapped-ipv6" => {
                        return Err(HeaderError::Unsupported(
                            "--ip_version=ipv4-mapped-ipv6".into(),
                        ))
                    }
                    _ => return Err(bad(format!("--ip_version={v}: expected ipv4 or ipv6"))),
                },
                "tolerance_usecs" => c.tolerance_usecs = num("tolerance_usecs")?,
                "tolerance_percent" => {
                    c.tolerance_percent =
                        v.parse::<f64>().ok().filter(|p| *p >= 0.0).ok_or_else(|| {
                            bad(format!("--tolerance_percent={v}: expected a percentage"))
                        })?
                }
                "bind_port" => {
                    c.bind_port = port(num("bind_port")?)
                        .ok_or_else(|| bad(format!("--bind_port={v}: not a port")))?
                }
                "connect_port" => {
                    c.connect_port = port(num("connect_port")?)
                        .ok_or_else(|| bad(format!("--connect_port={v}: not a port")))?
                }
                "mtu" => c.mtu = num("mtu")?.clamp(576, 65535) as u32,
                "mss" => c.mss = Some(num("mss")?.clamp(1, 65535) as u16),
                "tcp_ts_tick_usecs" => c.ts_tick_usecs = Some(num("tcp_ts_tick_usecs")?),
                "local_ip" => {
                    local =
                        Some(ip(v).ok_or_else(|| bad(format!("--local_ip={v}: not an address")))?)
                }
                "remote_ip" => {
                    remote =
                        Some(ip(v).ok_or_else(|| bad(format!("--remote_ip={v}: not an address")))?)
                }
                "strict_segments" => c.strict_segments = true,
                // Presentation, or host plumbing the runner does itself.
                "define" | "D" | "verbose" | "debug" | "gateway_ip" | "netmask_ip" | "speed"
                | "tun_dev" | "persistent_tun_dev" | "tcp_ts_ecr_scaled" => {}
                other => return Err(HeaderError::Unsupported(format!("header option --{other}"))),
            }
        }
        if c.v6 {
            c.local_ip = V6_LOCAL.into();
            c.remote_ip = V6_REMOTE.into();
        }
        if let Some(l) = local {
            c.local_ip = l;
        }
        if let Some(r) = remote {
            c.remote_ip = r;
        }
        if c.local_ip.is_ipv6() != c.v6 || c.remote_ip.is_ipv6() != c.v6 {
            return Err(HeaderError::Bad {
                line: 1,
                message: "--local_ip and --remote_ip must match --ip_version".into(),
            });
        }
        Ok(c)
    }

    /// packetdrill's tolerance for an event expected at `expected`, `since` after the
    /// previous one.
    pub fn tolerance(&self, since: i64) -> i64 {
        let dynamic = (self.tolerance_percent / 100.0 * since.max(0) as f64) as i64;
        self.tolerance_usecs.max(dynamic)
    }
}

fn port(n: i64) -> Option<u16> {
    u16::try_from(n).ok().filter(|p| *p != 0)
}

/// An address, without a `/prefix` if one is given.
fn ip(v: &str) -> Option<IpAddr> {
    v.split('/').next()?.parse().ok()
}
