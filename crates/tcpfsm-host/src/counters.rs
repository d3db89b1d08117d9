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
use tcpfsm_observe::{PortRange, Sockstat, Sysctls};
use tcpfsm_states::mib::{Counter, CounterSet, Group, Kind, Mib};

/// One section of /proc/net/snmp or /proc/net/netstat (`Tcp`, `TcpExt`, `IpExt`, …) with its
/// fields in the kernel's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub section: String,
    /// `(field, value)`; negative values (MaxConn's -1) are stored as two's complement, as the
    /// kernel's own `unsigned long`.
    pub fields: Vec<(String, u64)>,
}

/// A /proc number: unsigned, or negative (only MaxConn is, as -1).
fn parse_value(v: &str) -> Option<u64> {
    v.parse::<u64>()
        .ok()
        .or_else(|| v.parse::<i64>().ok().map(|n| n as u64))
}

/// Parses every header-line/value-line pair of /proc/net/snmp or /proc/net/netstat. A value
/// that is not a number is skipped with its field, never fatal; a section whose value line is
/// missing is left out.
pub fn parse_tables(text: &str) -> Vec<Table> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(header) = lines.next() {
        let Some((section, names)) = header.split_once(':') else {
            continue;
        };
        let Some(values) = lines.next() else { break };
        let Some((vsection, values)) = values.split_once(':') else {
            continue;
        };
        if vsection != section {
            continue;
        }
        let fields = names
            .split_whitespace()
            .zip(values.split_whitespace())
            .filter_map(|(k, v)| Some((k.to_string(), parse_value(v)?)))
            .collect();
        out.push(Table {
            section: section.to_string(),
            fields,
        });
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

pub(crate) fn net_dir() -> PathBuf {
    let ts = PathBuf::from("/proc/thread-self/net");
    if ts.exists() {
        ts
    } else {
        PathBuf::from("/proc/net")
    }
}

pub(crate) fn read(path: PathBuf) -> Result<String, HostError> {
    fs::read_to_string(&path).map_err(|source| HostError::Proc {
        path: path.display().to_string(),
        source,
    })
}

/// A TCP field the kernel printed that this build has no [`Counter`] for (a newer kernel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownField {
    pub group: Group,
    pub name: String,
    pub value: u64,
}

/// The kernel's TCP counters and socket gauges, everything it printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawCounters {
    /// /proc/net/snmp `Tcp:` and /proc/net/netstat `TcpExt:`, by Linux name.
    pub mib: Mib,
    /// The counters the kernel printed (an older kernel lacks some TcpExt fields: they are
    /// absent, not zero).
    pub present: CounterSet,
    /// Fields of those two lines this build does not know, in the kernel's order.
    pub unknown: Vec<UnknownField>,
    /// /proc/net/sockstat `TCP:` (inuse, orphan, tw, alloc, mem).
    pub sockstat: BTreeMap<String, i64>,
    /// /proc/net/sockstat6 `TCP6:` (inuse).
    pub sockstat6: BTreeMap<String, i64>,
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
        let mut r = RawCounters {
            sockstat: parse_sockstat(sockstat, "TCP"),
            sockstat6: parse_sockstat(sockstat6, "TCP6"),
            ..RawCounters::default()
        };
        for (text, group) in [(snmp, Group::Tcp), (netstat, Group::TcpExt)] {
            r.add_tables(&parse_tables(text), group);
        }
        r
    }

    /// Takes the section of `group` from parsed tables into the MIB.
    pub fn add_tables(&mut self, tables: &[Table], group: Group) {
        let Some(t) = tables.iter().find(|t| t.section == group.name()) else {
            return;
        };
        for (name, v) in &t.fields {
            match Counter::from_name(name).filter(|c| c.group() == group) {
                Some(c) => {
                    self.mib[c] = *v;
                    self.present.insert(c);
                }
                None => self.unknown.push(UnknownField {
                    group,
                    name: name.clone(),
                    value: *v,
                }),
            }
        }
    }

    /// `(field, value)` of one group as the kernel printed them: the known counters in the
    /// kernel's order, then the unknown ones; values signed as Linux prints them.
    pub fn fields(&self, group: Group) -> impl Iterator<Item = (&str, i128)> + '_ {
        let known = self
            .present
            .iter()
            .filter(move |c| c.group() == group)
            .map(|c| (c.name(), self.mib.signed(c)));
        let unknown = self
            .unknown
            .iter()
            .filter(move |u| u.group == group)
            .map(|u| (u.name.as_str(), u.value as i128));
        known.chain(unknown)
    }

    /// The socket gauges. Missing fields read as 0.
    pub fn sockstat(&self) -> Sockstat {
        let g = |m: &BTreeMap<String, i64>, k: &str| m.get(k).copied().unwrap_or(0).max(0) as u64;
        Sockstat {
            inuse: g(&self.sockstat, "inuse") + g(&self.sockstat6, "inuse"),
            orphan: g(&self.sockstat, "orphan"),
            tw: g(&self.sockstat, "tw"),
            alloc: g(&self.sockstat, "alloc"),
            mem_pages: g(&self.sockstat, "mem"),
        }
    }
}

/// One counter as `nstat` names and shows it: the section and field joined
/// (`TcpExtTCPSackRecovery`, `IpInReceives`, `Ip6InReceives`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedValue {
    pub name: String,
    /// As the kernel's `unsigned long`; see [`NamedValue::signed`].
    pub value: u64,
    /// Counter, gauge or parameter: from the TCP MIB's [`Counter::kind`] for Tcp and TcpExt
    /// fields; IpForwarding and IpDefaultTTL are parameters (nstat leaves them out); every
    /// other field counts.
    pub kind: Kind,
    /// From the TCP MIB ([`Group::Tcp`] or [`Group::TcpExt`]), rather than another protocol.
    pub tcp: bool,
}

impl NamedValue {
    /// The value as the kernel prints it (MaxConn is -1).
    pub fn signed(&self) -> i128 {
        if self.name == Counter::MaxConn.nstat_name() {
            self.value as i64 as i128
        } else {
            self.value as i128
        }
    }
}

/// `nstat`'s view of the three files, in its order: /proc/net/snmp, /proc/net/snmp6 (lines of
/// `Ip6InReceives 1`), /proc/net/netstat. Only the TCP MIB's sections (`Tcp`, `TcpExt`) unless
/// `all_protocols`.
pub fn nstat_values(
    snmp: &str,
    snmp6: &str,
    netstat: &str,
    all_protocols: bool,
) -> Vec<NamedValue> {
    let mut out = Vec::new();
    let mut push = |section: &str, field: &str, value: u64| {
        let group = match section {
            "Tcp" => Some(Group::Tcp),
            "TcpExt" => Some(Group::TcpExt),
            _ => None,
        };
        if group.is_none() && !all_protocols {
            return;
        }
        let name = format!("{section}{field}");
        let kind = match group {
            Some(g) => Counter::from_name(field)
                .filter(|c| c.group() == g)
                .map_or(Kind::Counter, Counter::kind),
            None if name == "IpForwarding" || name == "IpDefaultTTL" => Kind::Parameter,
            None => Kind::Counter,
        };
        out.push(NamedValue {
            name,
            value,
            kind,
            tcp: group.is_some(),
        });
    };
    for t in parse_tables(snmp) {
        for (f, v) in &t.fields {
            push(&t.section, f, *v);
        }
    }
    for line in snmp6.lines() {
        let mut it = line.split_whitespace();
        if let (Some(name), Some(v)) = (it.next(), it.next().and_then(parse_value)) {
            push("", name, v);
        }
    }
    for t in parse_tables(netstat) {
        for (f, v) in &t.fields {
            push(&t.section, f, *v);
        }
    }
    out
}

/// Reads [`nstat_values`] from the calling thread's network namespace (snmp6 is absent when
/// IPv6 is disabled).
pub fn read_nstat(all_protocols: bool) -> Result<Vec<NamedValue>, HostError> {
    let d = net_dir();
    let snmp = read(d.join("snmp"))?;
    let netstat = read(d.join("netstat"))?;
    let snmp6 = if all_protocols {
        read(d.join("snmp6")).unwrap_or_default()
    } else {
        String::new()
    };
    Ok(nstat_values(&snmp, &snmp6, &netstat, all_protocols))
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
    const NETSTAT: &str = "TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed EmbryonicRsts ListenOverflows ListenDrops TCPTimeWaitOverflow TCPFromTheFuture\n\
TcpExt: 11 9 2 0 17 19 3 5\n\
IpExt: InNoRoutes InTruncatedPkts\nIpExt: 0 0\n";
    const SOCKSTAT: &str =
        "sockets: used 171\nTCP: inuse 5 orphan 1 tw 42 alloc 8 mem 3\nUDP: inuse 2 mem 1\n";
    const SOCKSTAT6: &str = "TCP6: inuse 4\nUDP6: inuse 1\n";

    #[test]
    fn snmp_tcp_section_parses_with_negative_maxconn() {
        let t = parse_tables(SNMP);
        let sections: Vec<&str> = t.iter().map(|t| t.section.as_str()).collect();
        assert_eq!(sections, ["Ip", "Tcp", "Udp"]);
        let r = RawCounters::parse(SNMP, NETSTAT, SOCKSTAT, SOCKSTAT6);
        assert_eq!(r.mib.signed(Counter::MaxConn), -1);
        assert_eq!(r.mib[Counter::ActiveOpens], 5120);
        assert!(r.present.contains(Counter::InCsumErrors));
        let tcp: Vec<(&str, i128)> = r.fields(Group::Tcp).collect();
        assert_eq!(tcp[3], ("MaxConn", -1));
        assert_eq!(tcp.len(), 15, "in the kernel's order, none lost");
    }

    #[test]
    fn every_source_field_reaches_the_mib_or_the_gauges() {
        let r = RawCounters::parse(SNMP, NETSTAT, SOCKSTAT, SOCKSTAT6);
        let c = r.mib;
        for (k, v) in [
            (Counter::ActiveOpens, 5120),
            (Counter::PassiveOpens, 3001),
            (Counter::AttemptFails, 12),
            (Counter::EstabResets, 44),
            (Counter::CurrEstab, 7),
            (Counter::InSegs, 987654),
            (Counter::OutSegs, 876543),
            (Counter::RetransSegs, 321),
            (Counter::InErrs, 2),
            (Counter::OutRsts, 98),
            (Counter::SyncookiesSent, 11),
            (Counter::SyncookiesRecv, 9),
            (Counter::SyncookiesFailed, 2),
            (Counter::ListenOverflows, 17),
            (Counter::ListenDrops, 19),
            (Counter::TCPTimeWaitOverflow, 3),
        ] {
            assert_eq!(c[k], v, "{k}");
        }
        assert!(
            !r.present.contains(Counter::TCPSackRecovery),
            "not printed: absent"
        );
        assert_eq!(
            r.unknown,
            [UnknownField {
                group: Group::TcpExt,
                name: "TCPFromTheFuture".into(),
                value: 5
            }]
        );
        let s = r.sockstat();
        assert_eq!(
            (s.orphan, s.tw, s.inuse, s.alloc, s.mem_pages),
            (1, 42, 9, 8, 3)
        );
    }

    #[test]
    fn garbage_input_gives_empty_not_panic() {
        let r = RawCounters::parse(
            "Tcp: a b\n",
            "TcpExt: x\nTcpExt: notanumber\n",
            "TCP: inuse",
            "",
        );
        assert!(r.present.is_empty() && r.unknown.is_empty() && r.sockstat.is_empty());
        assert_eq!(r.mib, Mib::default());
    }

    #[test]
    fn nstat_names_join_section_and_field_in_nstat_order() {
        let snmp6 = "Ip6InReceives                   \t1\nUdp6InDatagrams 4\n";
        let v = nstat_values(SNMP, snmp6, NETSTAT, true);
        let names: Vec<&str> = v.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            &names[..3],
            ["IpForwarding", "IpDefaultTTL", "IpInReceives"]
        );
        let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
        assert!(
            at("TcpInSegs") < at("Ip6InReceives")
                && at("Udp6InDatagrams") < at("TcpExtSyncookiesSent")
        );
        assert!(
            names.contains(&"TcpExtTCPFromTheFuture"),
            "unknown fields are kept"
        );
        let get = |n: &str| v.iter().find(|x| x.name == n).unwrap();
        assert_eq!(get("TcpCurrEstab").kind, Kind::Gauge);
        assert_eq!(get("TcpRtoMin").kind, Kind::Parameter);
        assert_eq!(get("IpDefaultTTL").kind, Kind::Parameter);
        assert_eq!(get("TcpMaxConn").signed(), -1);
        assert_eq!(get("Ip6InReceives").value, 1);
        assert!(get("TcpExtListenOverflows").tcp && !get("IpInReceives").tcp);
        // TCP only: no other protocol.
        let tcp = nstat_values(SNMP, snmp6, NETSTAT, false);
        assert!(tcp.iter().all(|n| n.name.starts_with("Tcp")), "{tcp:?}");
        assert_eq!(tcp.len(), 15 + 8);
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
        assert!(r.present.contains(Counter::ActiveOpens));
        assert!(r.present.contains(Counter::ListenOverflows));
        assert!(r.sockstat.contains_key("tw"));
        assert!(read_sysctls().ephemeral_ports.is_some());
    }

    /// Every Tcp and TcpExt field of the running kernel has its Counter: host parsing loses
    /// nothing (a kernel newer than the list shows up here first).
    #[test]
    fn running_kernel_has_no_tcp_field_we_do_not_know() {
        let r = RawCounters::read().unwrap();
        assert_eq!(r.unknown, [], "fields missing from tcpfsm_states::mib");
        assert_eq!(r.fields(Group::Tcp).count(), 15);
    }
}
