//! TCP counters from /proc/net/snmp (`Tcp:`), /proc/net/netstat (`TcpExt:`) and
//! /proc/net/sockstat(6), and the sysctls the diagnosis compares against.
//!
//! A small parser instead of the `procfs` crate: procfs exposes a fixed subset of these fields,
//! while the exporter must re-publish *every* `Tcp_*`/`TcpExt_*` field the node exporter does
//! (and future kernels add fields). The files are header-line/value-line pairs, trivial to read.
//!
//! Paths go through /proc/thread-self/net when it exists: /proc/net follows the *process*'s
//! network namespace, while a thread that entered another namespace with setns() must read
//! its own.

use crate::HostError;
use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use tcpfsm_observe::{Counters, PortRange, Sysctls};

/// Every field of the TCP sections, by name, as the kernel prints them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RawCounters {
    /// /proc/net/snmp `Tcp:` (e.g. "ActiveOpens"; MaxConn is -1, hence i64).
    pub tcp: BTreeMap<String, i64>,
    /// /proc/net/netstat `TcpExt:` (e.g. "ListenOverflows").
    pub tcp_ext: BTreeMap<String, i64>,
    /// /proc/net/sockstat `TCP:` (inuse, orphan, tw, alloc, mem).
    pub sockstat: BTreeMap<String, i64>,
    /// /proc/net/sockstat6 `TCP6:` (inuse).
    pub sockstat6: BTreeMap<String, i64>,
}

/// Parses the header/value line pairs of /proc/net/snmp or /proc/net/netstat for one section
/// (`"Tcp"`, `"TcpExt"`). Unparseable values are skipped, not fatal.
pub fn parse_paired(text: &str, section: &str) -> BTreeMap<String, i64> {
    let prefix = format!("{section}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    let mut out = BTreeMap::new();
    if let (Some(h), Some(v)) = (lines.next(), lines.next()) {
        for (k, v) in h
            .split_whitespace()
            .skip(1)
            .zip(v.split_whitespace().skip(1))
        {
            if let Ok(n) = v.parse::<i64>() {
                out.insert(k.to_string(), n);
            }
        }
    }
    out
}

/// Parses a sockstat line `TCP: inuse 5 orphan 0 tw 3 alloc 7 mem 1` (name/value pairs).
pub fn parse_sockstat(text: &str, section: &str) -> BTreeMap<String, i64> {
    let prefix = format!("{section}:");
    let mut out = BTreeMap::new();
    if let Some(l) = text.lines().find(|l| l.starts_with(&prefix)) {
        let mut it = l.split_whitespace().skip(1);
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            if let Ok(n) = v.parse::<i64>() {
                out.insert(k.to_string(), n);
            }
        }
    }
    out
}

fn net_dir() -> PathBuf {
    let ts = PathBuf::from("/proc/thread-self/net");
    if ts.exists() {
        ts
    } else {
        PathBuf::from("/proc/net")
    }
}

fn read(path: PathBuf) -> Result<String, HostError> {
    fs::read_to_string(&path).map_err(|source| HostError::Proc {
        path: path.display().to_string(),
        source,
    })
}

impl RawCounters {
    /// Reads all four files of the current (thread's) network namespace.
    pub fn read() -> Result<RawCounters, HostError> {
        let d = net_dir();
        let snmp = read(d.join("snmp"))?;
        let netstat = read(d.join("netstat"))?;
        let sockstat = read(d.join("sockstat"))?;
        // sockstat6 is absent when IPv6 is disabled.
        let sockstat6 = read(d.join("sockstat6")).unwrap_or_default();
        Ok(RawCounters::parse(&snmp, &netstat, &sockstat, &sockstat6))
    }

    /// Builds from the texts of the four files.
    pub fn parse(snmp: &str, netstat: &str, sockstat: &str, sockstat6: &str) -> RawCounters {
        RawCounters {
            tcp: parse_paired(snmp, "Tcp"),
            tcp_ext: parse_paired(netstat, "TcpExt"),
            sockstat: parse_sockstat(sockstat, "TCP"),
            sockstat6: parse_sockstat(sockstat6, "TCP6"),
        }
    }

    /// The subset the diagnosis uses. Missing fields read as 0.
    pub fn counters(&self) -> Counters {
        let g = |m: &BTreeMap<String, i64>, k: &str| m.get(k).copied().unwrap_or(0).max(0) as u64;
        Counters {
            active_opens: g(&self.tcp, "ActiveOpens"),
            passive_opens: g(&self.tcp, "PassiveOpens"),
            attempt_fails: g(&self.tcp, "AttemptFails"),
            estab_resets: g(&self.tcp, "EstabResets"),
            curr_estab: g(&self.tcp, "CurrEstab"),
            in_segs: g(&self.tcp, "InSegs"),
            out_segs: g(&self.tcp, "OutSegs"),
            retrans_segs: g(&self.tcp, "RetransSegs"),
            in_errs: g(&self.tcp, "InErrs"),
            out_rsts: g(&self.tcp, "OutRsts"),
            listen_overflows: g(&self.tcp_ext, "ListenOverflows"),
            listen_drops: g(&self.tcp_ext, "ListenDrops"),
            syncookies_sent: g(&self.tcp_ext, "SyncookiesSent"),
            syncookies_recv: g(&self.tcp_ext, "SyncookiesRecv"),
            syncookies_failed: g(&self.tcp_ext, "SyncookiesFailed"),
            tw_overflow: g(&self.tcp_ext, "TCPTimeWaitOverflow"),
            orphans: g(&self.sockstat, "orphan"),
            time_wait: g(&self.sockstat, "tw"),
            sockets_inuse: g(&self.sockstat, "inuse") + g(&self.sockstat6, "inuse"),
            sockets_alloc: g(&self.sockstat, "alloc"),
            mem_pages: g(&self.sockstat, "mem"),
        }
    }
}

/// Reads the counters of the current (thread's) network namespace.
pub fn read_counters() -> Result<Counters, HostError> {
    Ok(RawCounters::read()?.counters())
}

fn sysctl(name: &str) -> Option<String> {
    fs::read_to_string(format!("/proc/sys/{}", name.replace('.', "/"))).ok()
}

/// Parses `ip_local_port_range` ("32768\t60999").
pub fn parse_port_range(s: &str) -> Option<PortRange> {
    let mut it = s.split_whitespace().map(|x| x.parse::<u16>());
    match (it.next(), it.next()) {
        (Some(Ok(low)), Some(Ok(high))) => Some(PortRange { low, high }),
        _ => None,
    }
}

/// Reads the sysctls the rules use; an unreadable one is None.
pub fn read_sysctls() -> Sysctls {
    let num = |n: &str| sysctl(n).and_then(|s| s.trim().parse::<u64>().ok());
    Sysctls {
        ephemeral_ports: sysctl("net.ipv4.ip_local_port_range").and_then(|s| parse_port_range(&s)),
        max_tw_buckets: num("net.ipv4.tcp_max_tw_buckets"),
        fin_timeout_secs: num("net.ipv4.tcp_fin_timeout"),
        syncookies: num("net.ipv4.tcp_syncookies").map(|v| v.min(255) as u8),
        max_syn_backlog: num("net.ipv4.tcp_max_syn_backlog"),
        somaxconn: num("net.core.somaxconn"),
        tw_reuse: num("net.ipv4.tcp_tw_reuse").map(|v| v.min(255) as u8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from a Linux 6.x host (trimmed to the TCP-relevant sections).
    const SNMP: &str = "Ip: Forwarding DefaultTTL InReceives\nIp: 1 64 12345\n\
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\n\
Tcp: 1 200 120000 -1 5120 3001 12 44 7 987654 876543 321 2 98 0\n\
Udp: InDatagrams NoPorts\nUdp: 10 0\n";
    const NETSTAT: &str = "TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed EmbryonicRsts ListenOverflows ListenDrops TCPTimeWaitOverflow\n\
TcpExt: 11 9 2 0 17 19 3\n\
IpExt: InNoRoutes InTruncatedPkts\nIpExt: 0 0\n";
    const SOCKSTAT: &str =
        "sockets: used 171\nTCP: inuse 5 orphan 1 tw 42 alloc 8 mem 3\nUDP: inuse 2 mem 1\n";
    const SOCKSTAT6: &str = "TCP6: inuse 4\nUDP6: inuse 1\n";

    #[test]
    fn snmp_tcp_section_parses_with_negative_maxconn() {
        let m = parse_paired(SNMP, "Tcp");
        assert_eq!(m["MaxConn"], -1);
        assert_eq!(m["ActiveOpens"], 5120);
        assert_eq!(m["InCsumErrors"], 0);
        assert!(!m.contains_key("InDatagrams"));
    }

    #[test]
    fn counters_map_every_source_field() {
        let c = RawCounters::parse(SNMP, NETSTAT, SOCKSTAT, SOCKSTAT6).counters();
        assert_eq!(c.active_opens, 5120);
        assert_eq!(c.passive_opens, 3001);
        assert_eq!(c.attempt_fails, 12);
        assert_eq!(c.estab_resets, 44);
        assert_eq!(c.curr_estab, 7);
        assert_eq!(c.in_segs, 987654);
        assert_eq!(c.out_segs, 876543);
        assert_eq!(c.retrans_segs, 321);
        assert_eq!(c.in_errs, 2);
        assert_eq!(c.out_rsts, 98);
        assert_eq!(c.syncookies_sent, 11);
        assert_eq!(c.syncookies_recv, 9);
        assert_eq!(c.syncookies_failed, 2);
        assert_eq!(c.listen_overflows, 17);
        assert_eq!(c.listen_drops, 19);
        assert_eq!(c.tw_overflow, 3);
        assert_eq!(c.orphans, 1);
        assert_eq!(c.time_wait, 42);
        assert_eq!(c.sockets_inuse, 9);
        assert_eq!(c.sockets_alloc, 8);
        assert_eq!(c.mem_pages, 3);
    }

    #[test]
    fn garbage_input_gives_empty_not_panic() {
        let r = RawCounters::parse(
            "Tcp: a b\n",
            "TcpExt: x\nTcpExt: notanumber\n",
            "TCP: inuse",
            "",
        );
        assert!(r.tcp.is_empty() && r.tcp_ext.is_empty() && r.sockstat.is_empty());
        assert_eq!(r.counters(), Counters::default());
    }

    #[test]
    fn port_range_parses() {
        assert_eq!(
            parse_port_range("32768\t60999\n"),
            Some(PortRange {
                low: 32768,
                high: 60999
            })
        );
        assert_eq!(parse_port_range("x"), None);
    }

    #[test]
    fn live_counters_are_readable() {
        let r = RawCounters::read().unwrap();
        assert!(r.tcp.contains_key("ActiveOpens"));
        assert!(r.tcp_ext.contains_key("ListenOverflows"));
        assert!(r.sockstat.contains_key("tw"));
        assert!(read_sysctls().ephemeral_ports.is_some());
    }
}
