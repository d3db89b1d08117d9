//! Sysctl settings named in scripts, brought to Linux's names.
//!
//! Linux keys (`net.ipv4.tcp_*`, `net.core.somaxconn`, `net.ipv4.ip_local_port_range`) pass
//! through. FreeBSD keys (`net.inet.tcp.*`, `kern.ipc.maxsockbuf`) become the Linux setting
//! with the same effect where one exists; where Linux (and so our engine, which follows it)
//! always behaves the way the FreeBSD value asks, the setting is reported as matching; where
//! no equivalent exists it is reported as ignored. Each stack then applies the Linux keys its
//! own way (the engine maps them onto its `Config`, the `linux` stack writes them in its
//! network namespace).

/// What a script's setting becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Translation {
    /// Linux sysctls to set, in order.
    Linux(Vec<(String, String)>),
    /// Nothing to do: Linux and the engine already behave that way.
    Matches(String),
    /// No equivalent; reported, not applied.
    Ignored(String),
}

/// Linux's defaults for the buffer triples, which FreeBSD's single values edit.
const RMEM: [u64; 3] = [4096, 131_072, 6_291_456];
const WMEM: [u64; 3] = [4096, 16_384, 4_194_304];

/// Translates settings one at a time; FreeBSD's separate buffer keys edit Linux's triples,
/// so the translator remembers them across a script.
#[derive(Debug, Clone)]
pub struct Translator {
    rmem: [u64; 3],
    wmem: [u64; 3],
}

impl Default for Translator {
    fn default() -> Translator {
        Translator {
            rmem: RMEM,
            wmem: WMEM,
        }
    }
}

fn triple(v: [u64; 3]) -> String {
    format!("{} {} {}", v[0], v[1], v[2])
}

fn int(key: &str, value: &str) -> Result<u64, String> {
    value
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("{key}={value}: not a number"))
}

fn linux(pairs: &[(&str, String)]) -> Translation {
    Translation::Linux(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

impl Translator {
    /// A setting as written (`/proc/sys/…` paths already turned into dotted keys).
    pub fn translate(&mut self, key: &str, value: &str) -> Result<Translation, String> {
        let key = key.trim_start_matches('.');
        if key.starts_with("net.ipv4.")
            || key.starts_with("net.ipv6.")
            || key.starts_with("net.core.")
        {
            return Ok(Translation::Linux(vec![(
                key.to_string(),
                value.to_string(),
            )]));
        }
        if key.starts_with("net.inet.") || key.starts_with("net.inet6.") || key.starts_with("kern.")
        {
            return self.freebsd(key, value);
        }
        Ok(Translation::Ignored(format!(
            "{key} is not a TCP/IP setting"
        )))
    }

    fn freebsd(&mut self, key: &str, value: &str) -> Result<Translation, String> {
        let on = |v: u64| if v != 0 { "1" } else { "0" }.to_string();
        Ok(match key {
            // RFC 1323 extensions: 1 both, 2 window scaling only, 3 timestamps only.
            "net.inet.tcp.rfc1323" => {
                let v = int(key, value)?;
                let (ws, ts) = match v {
                    0 => (0, 0),
                    1 => (1, 1),
                    2 => (1, 0),
                    3 => (0, 1),
                    _ => return Err(format!("{key}={value}: expected 0 to 3")),
                };
                linux(&[
                    ("net.ipv4.tcp_window_scaling", on(ws)),
                    ("net.ipv4.tcp_timestamps", on(ts)),
                ])
            }
            "net.inet.tcp.sack.enable" => linux(&[("net.ipv4.tcp_sack", on(int(key, value)?))]),
            // FreeBSD's 2 ("answer ECN, never ask") is Linux's 2.
            "net.inet.tcp.ecn.enable" => {
                let v = int(key, value)?;
                if v > 2 {
                    return Err(format!("{key}={value}: expected 0 to 2"));
                }
                linux(&[("net.ipv4.tcp_ecn", v.to_string())])
            }
            // The default receive buffer (Linux's tcp_rmem middle value); the largest buffer
            // (kern.ipc.maxsockbuf ~ tcp_rmem[2]) is what both kernels derive the window scale
            // from.
            "net.inet.tcp.recvspace" => {
                self.rmem[1] = int(key, value)?;
                linux(&[("net.ipv4.tcp_rmem", triple(self.rmem))])
            }
            "net.inet.tcp.sendspace" => {
                self.wmem[1] = int(key, value)?;
                linux(&[("net.ipv4.tcp_wmem", triple(self.wmem))])
            }
            "kern.ipc.maxsockbuf" => {
                let v = int(key, value)?;
                self.rmem[2] = v.max(self.rmem[1]);
                self.wmem[2] = v.max(self.wmem[1]);
                linux(&[
                    ("net.ipv4.tcp_rmem", triple(self.rmem)),
                    ("net.ipv4.tcp_wmem", triple(self.wmem)),
                ])
            }
            "net.inet.tcp.syncookies" => {
                linux(&[("net.ipv4.tcp_syncookies", on(int(key, value)?))])
            }
            "net.inet.tcp.finwait2_timeout" => linux(&[(
                "net.ipv4.tcp_fin_timeout",
                (int(key, value)? / 1000).max(1).to_string(),
            )]),
            "net.inet.tcp.keepidle" => linux(&[(
                "net.ipv4.tcp_keepalive_time",
                (int(key, value)? / 1000).max(1).to_string(),
            )]),
            "net.inet.tcp.keepintvl" => linux(&[(
                "net.ipv4.tcp_keepalive_intvl",
                (int(key, value)? / 1000).max(1).to_string(),
            )]),
            "net.inet.tcp.keepcnt" => linux(&[(
                "net.ipv4.tcp_keepalive_probes",
                int(key, value)?.to_string(),
            )]),
            "net.inet.tcp.blackhole" if int(key, value)? == 0 => {
                Translation::Matches("a segment for a closed port is answered with RST".into())
            }
            "net.inet.tcp.hostcache.purgenow" => Translation::Matches(
                "every script starts on a fresh stack, with no cached metrics".into(),
            ),
            // RFC 5961: Linux answers an in-window SYN or inexact RST with a challenge ACK,
            // always; it has no "insecure" RFC 793 mode.
            "net.inet.tcp.insecure_rst" | "net.inet.tcp.insecure_syn" => {
                if int(key, value)? == 0 {
                    Translation::Matches("Linux applies RFC 5961's challenge ACKs".into())
                } else {
                    Translation::Ignored(
                        "Linux has no RFC 793 (pre-RFC 5961) SYN/RST handling".into(),
                    )
                }
            }
            // Linux drops SYN+FIN in LISTEN (tcp_rcv_state_process).
            "net.inet.tcp.drop_synfin" => {
                if int(key, value)? == 1 {
                    Translation::Matches("Linux drops a SYN+FIN at a listener".into())
                } else {
                    Translation::Ignored("Linux always drops a SYN+FIN at a listener".into())
                }
            }
            // Linux's initial RTO is the constant TCP_TIMEOUT_INIT, 1 s.
            "net.inet.tcp.rexmit_initial" => {
                if int(key, value)? == 1000 {
                    Translation::Matches("Linux's initial RTO is 1 s".into())
                } else {
                    Translation::Ignored("Linux's initial RTO is fixed at 1 s".into())
                }
            }
            "net.inet.tcp.delayed_ack" if int(key, value)? == 1 => {
                Translation::Matches("Linux delays ACKs".into())
            }
            _ => Translation::Ignored(format!("{key} has no Linux equivalent")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(k: &str, v: &str) -> Translation {
        Translator::default().translate(k, v).unwrap()
    }

    #[test]
    fn linux_keys_pass_through() {
        assert_eq!(
            t("net.ipv4.tcp_syn_retries", "3"),
            Translation::Linux(vec![("net.ipv4.tcp_syn_retries".into(), "3".into())])
        );
    }

    #[test]
    fn freebsd_rfc1323_sets_timestamps_and_window_scaling() {
        assert_eq!(
            t("net.inet.tcp.rfc1323", "3"),
            Translation::Linux(vec![
                ("net.ipv4.tcp_window_scaling".into(), "0".into()),
                ("net.ipv4.tcp_timestamps".into(), "1".into())
            ])
        );
    }

    #[test]
    fn freebsd_buffer_keys_edit_the_linux_triples() {
        let mut x = Translator::default();
        x.translate("kern.ipc.maxsockbuf", "2097152").unwrap();
        assert_eq!(
            x.translate("net.inet.tcp.recvspace", "65536").unwrap(),
            Translation::Linux(vec![(
                "net.ipv4.tcp_rmem".into(),
                "4096 65536 2097152".into()
            )])
        );
    }

    #[test]
    fn freebsd_values_linux_always_has_match_and_others_are_ignored() {
        assert!(matches!(
            t("net.inet.tcp.insecure_rst", "0"),
            Translation::Matches(_)
        ));
        assert!(matches!(
            t("net.inet.tcp.insecure_rst", "1"),
            Translation::Ignored(_)
        ));
        assert!(matches!(
            t("net.inet.tcp.blackhole", "2"),
            Translation::Ignored(_)
        ));
        assert!(matches!(t("vm.swappiness", "1"), Translation::Ignored(_)));
    }

    #[test]
    fn bad_values_are_errors() {
        assert_eq!(
            Translator::default()
                .translate("net.inet.tcp.rfc1323", "x")
                .unwrap_err(),
            "net.inet.tcp.rfc1323=x: not a number"
        );
    }
}
