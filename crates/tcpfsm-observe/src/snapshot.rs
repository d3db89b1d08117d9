//! A point-in-time sample of a TCP stack, from whatever source can fill it.

use crate::culprits::{ListenerCount, Orphans};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use tcpfsm_states::{Census, Counter, Mib};

/// One sample of a TCP stack. Everything but `time_ms` and `census` is optional: our simulated
/// stack has no processes, file descriptors or sysctls, and an unprivileged host reader cannot
/// attribute other users' sockets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the sample was taken, in milliseconds: since the Unix epoch for the host, since the
    /// start of the run for the simulator. Only differences between samples are used.
    pub time_ms: u64,
    /// Connections by state, all eleven states present.
    pub census: Census,
    /// Who holds the CLOSE_WAIT sockets (the leak suspects), if the source knows processes.
    pub close_wait_by_process: Option<ProcessBreakdown>,
    /// TIME_WAIT sockets grouped by remote address and port, largest first.
    pub time_wait_by_remote: Option<Vec<RemoteCount>>,
    /// Every LISTEN socket with its accept queue.
    pub listeners: Option<Vec<ListenerQueue>>,
    /// The TCP MIB (/proc/net/snmp `Tcp:`, /proc/net/netstat `TcpExt:`, or our engine's).
    pub counters: Option<Mib>,
    /// The kernel's socket gauges (/proc/net/sockstat); our engine has none.
    pub sockstat: Option<Sockstat>,
    /// Kernel settings the rules compare against (each may be unknown).
    pub sysctls: Sysctls,
    /// Open file descriptors against RLIMIT_NOFILE, for processes holding TCP sockets.
    pub fd_usage: Option<Vec<FdUsage>>,
    /// Bytes waiting in socket queues, summed over all sockets (as the node exporter's tcpstat
    /// `rx_queued_bytes` / `tx_queued_bytes`).
    pub queued_bytes: Option<QueuedBytes>,
    /// Orphaned sockets counted one by one (the kernel's sockstat `orphan` misses most).
    pub orphans: Option<Orphans>,
    /// FIN_WAIT_2 sockets by remote, largest first: the peers that do not close.
    pub fin_wait2_by_remote: Option<Vec<RemoteCount>>,
    /// Who holds the FIN_WAIT_2 sockets that are not orphans (half-closed with shutdown()).
    pub fin_wait2_by_process: Option<ProcessBreakdown>,
    /// SYN_RECEIVED connections per listener, largest first, with the listener's owner.
    pub syn_recv_by_listener: Option<Vec<ListenerCount>>,
    /// Programs holding open connections towards the remote with the most TIME_WAIT: they
    /// are the ones opening and closing connections there.
    pub time_wait_remote_holders: Option<Vec<ProcessCount>>,
}

/// Queued bytes over all sockets. Listeners are left out of `tx` (sock_diag reports their
/// backlog in that field, /proc/net/tcp shows 0) and counted in `rx` with their accept-queue
/// length, as /proc/net/tcp does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedBytes {
    /// Received, not yet read by the application.
    pub rx: u64,
    /// Sent, not yet acknowledged by the peer.
    pub tx: u64,
}

impl Snapshot {
    /// A snapshot holding only a census, as a source without processes or sysctls (our
    /// simulated stack) produces; fill `counters` and `sysctls` where the source has them.
    pub fn from_census(time_ms: u64, census: Census) -> Snapshot {
        Snapshot {
            time_ms,
            census,
            ..Snapshot::default()
        }
    }
}

/// A process, as far as /proc tells: pid and `comm` (the short command name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProcessRef {
    pub pid: u32,
    pub comm: String,
}

/// How many sockets (of some kind) one process holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessCount {
    pub pid: u32,
    pub comm: String,
    pub count: u64,
}

/// Sockets attributed to processes, plus those that could not be.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessBreakdown {
    /// Largest count first.
    pub processes: Vec<ProcessCount>,
    /// Sockets with no owner found (no process holds them any more, or the owner's `/proc/<pid>/fd`
    /// was unreadable because it belongs to another user and we are not root), shown as
    /// [`crate::NO_OWNER`].
    pub no_owner: u64,
    /// Why some had no owner: the [`crate::NoOwner::label`]s found, joined by "; ", if known.
    pub no_owner_reason: Option<String>,
}

/// TIME_WAIT sockets towards one remote address and port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteCount {
    pub remote: SocketAddr,
    /// All TIME_WAIT sockets towards `remote`.
    pub count: u64,
    /// Those whose local port lies in the ephemeral range: the ports an outgoing connect() to this
    /// same remote can no longer pick until TIME_WAIT ends. This is what exhausts.
    pub ephemeral_local: u64,
}

/// A listening socket's accept queue. Linux reports, for LISTEN sockets, the number of fully
/// established connections waiting for accept() as the receive queue and the backlog given to
/// listen() (capped by somaxconn) as the send queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerQueue {
    pub local: SocketAddr,
    pub queue_len: u32,
    pub backlog: u32,
    pub owner: Option<ProcessRef>,
}

impl ListenerQueue {
    /// Fill ratio of the accept queue; a zero backlog counts as full as soon as one waits.
    pub fn fill(&self) -> f64 {
        if self.backlog == 0 {
            if self.queue_len > 0 {
                1.0
            } else {
                0.0
            }
        } else {
            self.queue_len as f64 / self.backlog as f64
        }
    }
}

/// The kernel's socket gauges from /proc/net/sockstat(6) `TCP:` lines — levels, not MIB
/// counters. `inuse` and `tw` are the network namespace's; `orphan`, `alloc` and `mem` are the
/// whole host's (Linux keeps one counter for all namespaces). `tw` counts every timewait
/// minisock, and orphaned FIN_WAIT_2 sockets are parked as such minisocks too, so `tw` is
/// TIME_WAIT *plus* those FIN_WAIT_2; `orphan` counts only full orphaned sockets (FIN_WAIT_1,
/// CLOSING, LAST_ACK, and FIN_WAIT_2 not yet turned into a minisock), never the minisocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sockstat {
    /// `inuse`: TCP sockets in use (IPv4 plus sockstat6's IPv6), minisocks excluded.
    pub inuse: u64,
    /// `orphan`: full sockets no process holds any more, host-wide.
    pub orphan: u64,
    /// `tw`: timewait minisocks (TIME_WAIT and orphaned FIN_WAIT_2).
    pub tw: u64,
    /// `alloc`: TCP sockets allocated, host-wide.
    pub alloc: u64,
    /// `mem`: pages used by TCP buffers, host-wide.
    pub mem_pages: u64,
}

/// What changed between two snapshots' counters, and over how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Seconds between the two samples.
    pub secs: f64,
    /// Per counter: the increase (see [`Mib::since`]; gauges hold their latest value).
    pub delta: Mib,
}

impl Rates {
    /// Increase per second of a counter over the interval.
    pub fn per_sec(&self, c: Counter) -> f64 {
        self.delta[c] as f64 / self.secs
    }

    /// Retransmitted segments over segments sent in the interval (None when nothing was sent).
    pub fn retrans_ratio(&self) -> Option<f64> {
        retrans_ratio(
            self.delta[Counter::RetransSegs],
            self.delta[Counter::OutSegs],
        )
    }
}

/// Rates between `prev` and `cur` (None if either lacks counters or no time passed). A counter
/// that went backwards (reboot, namespace change) counts from its reset, never as a huge wrap.
pub fn rates(prev: &Snapshot, cur: &Snapshot) -> Option<Rates> {
    let (a, b) = (prev.counters?, cur.counters?);
    let ms = cur.time_ms.checked_sub(prev.time_ms)?;
    if ms == 0 {
        return None;
    }
    Some(Rates {
        secs: ms as f64 / 1000.0,
        delta: b.since(&a),
    })
}

/// Linux's OutSegs excludes retransmissions, so the share of retransmitted segments among all
/// segments sent is retrans / (out + retrans).
pub fn retrans_ratio(retrans: u64, out: u64) -> Option<f64> {
    let total = out + retrans;
    (total > 0).then(|| retrans as f64 / total as f64)
}

/// Kernel settings the rules compare against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sysctls {
    /// net.ipv4.ip_local_port_range.
    pub ephemeral_ports: Option<PortRange>,
    /// net.ipv4.tcp_max_tw_buckets.
    pub max_tw_buckets: Option<u64>,
    /// net.ipv4.tcp_fin_timeout, seconds (bounds orphaned FIN_WAIT_2).
    pub fin_timeout_secs: Option<u64>,
    /// net.ipv4.tcp_syncookies (0 off, 1 when the SYN queue overflows, 2 always).
    pub syncookies: Option<u8>,
    /// net.ipv4.tcp_max_syn_backlog.
    pub max_syn_backlog: Option<u64>,
    /// net.core.somaxconn (caps every listen() backlog).
    pub somaxconn: Option<u64>,
    /// net.ipv4.tcp_tw_reuse (0 off, 1 on, 2 loopback only).
    pub tw_reuse: Option<u8>,
}

/// An inclusive local port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

impl PortRange {
    /// Number of ports in the range (0 if inverted).
    pub fn size(&self) -> u64 {
        if self.high < self.low {
            0
        } else {
            (self.high - self.low) as u64 + 1
        }
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.low..=self.high).contains(&port)
    }
}

/// A process's open file descriptors against its RLIMIT_NOFILE soft limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdUsage {
    pub pid: u32,
    pub comm: String,
    pub open: u64,
    /// Soft limit; None when unlimited or unreadable.
    pub limit: Option<u64>,
    /// How many of the open descriptors are TCP sockets we saw.
    pub tcp_sockets: u64,
}

impl FdUsage {
    pub fn ratio(&self) -> Option<f64> {
        self.limit
            .filter(|l| *l > 0)
            .map(|l| self.open as f64 / l as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(t: u64, out: u64, retr: u64) -> Snapshot {
        let mut m = Mib::new();
        m[Counter::OutSegs] = out;
        m[Counter::RetransSegs] = retr;
        Snapshot {
            time_ms: t,
            counters: Some(m),
            ..Snapshot::default()
        }
    }

    #[test]
    fn rates_are_per_second_between_samples() {
        let r = rates(&snap(1000, 100, 0), &snap(3000, 1100, 10)).unwrap();
        assert_eq!(r.secs, 2.0);
        assert_eq!(r.per_sec(Counter::OutSegs), 500.0);
        assert_eq!(r.per_sec(Counter::RetransSegs), 5.0);
        let ratio = r.retrans_ratio().unwrap();
        assert!((ratio - 10.0 / 1010.0).abs() < 1e-12);
    }

    #[test]
    fn rates_count_from_a_counter_reset_not_wrap() {
        let r = rates(&snap(0, 1000, 50), &snap(1000, 10, 0)).unwrap();
        assert_eq!(r.per_sec(Counter::OutSegs), 10.0);
        assert_eq!(r.retrans_ratio(), Some(0.0));
    }

    #[test]
    fn rates_need_time_to_pass_and_counters() {
        assert!(rates(&snap(5, 1, 1), &snap(5, 2, 2)).is_none());
        assert!(rates(&Snapshot::default(), &snap(5, 2, 2)).is_none());
    }

    #[test]
    fn port_range_size_is_inclusive() {
        let r = PortRange {
            low: 32768,
            high: 60999,
        };
        assert_eq!(r.size(), 28232);
        assert!(r.contains(32768) && r.contains(60999) && !r.contains(61000));
        assert_eq!(PortRange { low: 5, high: 4 }.size(), 0);
    }

    #[test]
    fn listener_fill_with_zero_backlog() {
        let mut l = ListenerQueue {
            local: "127.0.0.1:80".parse().unwrap(),
            queue_len: 0,
            backlog: 0,
            owner: None,
        };
        assert_eq!(l.fill(), 0.0);
        l.queue_len = 1;
        assert_eq!(l.fill(), 1.0);
    }
}
