//! The one TCP counter set: Linux's TCP MIB, by Linux's names.
//!
//! Our engine counts, the live host reads `/proc/net/snmp` and `/proc/net/netstat`, the
//! diagnosis and the exporter compare — all with this one type, so no counter is renamed or
//! lost between them. A [`Counter`] names one field exactly as the kernel prints it
//! (`InSegs` on the snmp `Tcp:` line, `TCPSackRecovery` on the netstat `TcpExt:` line, in the
//! kernel's own order); [`Mib`] holds one value per counter in a fixed array, so counting is
//! `mib[Counter::InSegs] += 1` with no allocation and no lookup.
//!
//! Counters our engine keeps that Linux has no field for are in their own group,
//! [`Group::Tcpfsm`], and their names start with `Tcpfsm`: they are never passed off as
//! kernel counters.
//!
//! ```
//! use tcpfsm_states::mib::{Counter, Group, Kind, Mib};
//! let mut mib = Mib::new();
//! mib[Counter::InSegs] += 1;
//! assert_eq!(Counter::from_name("TCPSackRecovery"), Some(Counter::TCPSackRecovery));
//! assert_eq!(Counter::TCPSackRecovery.nstat_name(), "TcpExtTCPSackRecovery");
//! assert_eq!(Counter::InSegs.group(), Group::Tcp);
//! assert_eq!(Counter::CurrEstab.kind(), Kind::Gauge);
//! assert_eq!(mib.iter().filter(|(_, v)| *v > 0).count(), 1);
//! ```

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::ops::{Index, IndexMut};

/// Where a counter comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Group {
    /// The `Tcp:` line of /proc/net/snmp (RFC 4022's TCP-MIB, as Linux keeps it).
    Tcp,
    /// The `TcpExt:` line of /proc/net/netstat (Linux's own extensions).
    TcpExt,
    /// Counters of tcpfsm's engine that Linux does not keep.
    Tcpfsm,
}

impl Group {
    pub const ALL: [Group; 3] = [Group::Tcp, Group::TcpExt, Group::Tcpfsm];

    /// The section name as the kernel writes it before the colon (`Tcp`, `TcpExt`), and
    /// `Tcpfsm` for ours.
    pub const fn name(self) -> &'static str {
        match self {
            Group::Tcp => "Tcp",
            Group::TcpExt => "TcpExt",
            Group::Tcpfsm => "Tcpfsm",
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a value means over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Kind {
    /// Only grows (until reboot); differences between samples are events.
    Counter,
    /// A current level that goes up and down (CurrEstab).
    Gauge,
    /// A property of the stack, not a measurement (RtoMin, MaxConn, …).
    Parameter,
}

macro_rules! mib {
    ($( $group:ident $prefix:literal {
        $( $name:ident $kind:ident $desc:literal, )*
    } )*) => {
        /// One counter of the TCP MIB, named exactly as Linux names it (see the module docs).
        /// The order is the kernel's: the order of the fields in /proc.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(clippy::upper_case_acronyms)]
        #[non_exhaustive]
        #[repr(u16)]
        pub enum Counter {
            $($( #[doc = $desc] $name, )*)*
        }

        const INFO: &[Info] = &[
            $($( Info {
                name: stringify!($name),
                nstat: concat!($prefix, stringify!($name)),
                group: Group::$group,
                kind: Kind::$kind,
                description: $desc,
            }, )*)*
        ];

        impl Counter {
            /// Every counter, in the kernel's order (Tcp, then TcpExt, then ours).
            pub const ALL: [Counter; INFO.len()] = [$($( Counter::$name, )*)*];

            /// The counter whose [`name`](Counter::name) is `name` (exact, case-sensitive: the
            /// kernel's spelling).
            pub fn from_name(name: &str) -> Option<Counter> {
                match name {
                    $($( stringify!($name) => Some(Counter::$name), )*)*
                    _ => None,
                }
            }

            /// The counter whose [`nstat_name`](Counter::nstat_name) is `name`
            /// (`TcpExtTCPSackRecovery`, `TcpInSegs`).
            pub fn from_nstat_name(name: &str) -> Option<Counter> {
                match name {
                    $($( concat!($prefix, stringify!($name)) => Some(Counter::$name), )*)*
                    _ => None,
                }
            }
        }
    };
}

struct Info {
    name: &'static str,
    nstat: &'static str,
    group: Group,
    kind: Kind,
    description: &'static str,
}

mib! {
    // /proc/net/snmp `Tcp:`, in the kernel's order (snmp4_tcp_list).
    Tcp "Tcp" {
        RtoAlgorithm Parameter "Retransmission timeout algorithm (RFC 4022; Linux reports 1, \"other\").",
        RtoMin Parameter "Smallest retransmission timeout, in milliseconds.",
        RtoMax Parameter "Largest retransmission timeout, in milliseconds.",
        MaxConn Parameter "Limit on connections; -1 means none (Linux prints it signed).",
        ActiveOpens Counter "Active opens: CLOSED to SYN_SENT (connect() sent a SYN).",
        PassiveOpens Counter "Passive opens: connections created from a listener.",
        AttemptFails Counter "Opens that failed: SYN_SENT or SYN_RECEIVED to CLOSED, or SYN_RECEIVED back to LISTEN.",
        EstabResets Counter "Resets in ESTABLISHED or CLOSE_WAIT (to CLOSED).",
        CurrEstab Gauge "Connections now in ESTABLISHED or CLOSE_WAIT.",
        InSegs Counter "Segments received, those in error included.",
        OutSegs Counter "Segments sent, retransmissions excluded.",
        RetransSegs Counter "Segments retransmitted.",
        InErrs Counter "Segments received in error (bad checksum, malformed).",
        OutRsts Counter "Segments sent with RST.",
        InCsumErrors Counter "Segments received with a bad checksum.",
    }
    // /proc/net/netstat `TcpExt:`, in the kernel's order (snmp4_net_list), complete as of Linux 6.18.
    TcpExt "TcpExt" {
        SyncookiesSent Counter "SYN cookies sent (SYN queue full, or tcp_syncookies = 2).",
        SyncookiesRecv Counter "ACKs that carried a valid SYN cookie.",
        SyncookiesFailed Counter "ACKs to a listener whose SYN cookie did not validate.",
        EmbryonicRsts Counter "Resets received for half-open (SYN_RECEIVED) connections.",
        PruneCalled Counter "Receive queues pruned to free memory.",
        RcvPruned Counter "Segments dropped because pruning the receive queue did not free enough.",
        OfoPruned Counter "Out-of-order queues dropped to free memory.",
        OutOfWindowIcmps Counter "ICMP errors ignored: the quoted sequence lay outside the window.",
        LockDroppedIcmps Counter "ICMP errors dropped because the socket was busy.",
        ArpFilter Counter "Packets dropped by the ARP filter.",
        TW Counter "TIME_WAIT entries that ended when their 2MSL timer expired.",
        TWRecycled Counter "TIME_WAIT entries reused by a new connection (timestamps).",
        TWKilled Counter "TIME_WAIT entries ended early (by a reset or a new connection).",
        PAWSActive Counter "SYN-ACKs dropped by PAWS in SYN_SENT.",
        PAWSEstab Counter "Segments dropped by PAWS (RFC 7323 §5) on synchronized connections.",
        BeyondWindow Counter "Segments dropped: sequence beyond the receive window.",
        TSEcrRejected Counter "Segments dropped: invalid timestamp echo reply.",
        PAWSOldAck Counter "Segments dropped by PAWS that acknowledged old data.",
        PAWSTimewait Counter "Segments dropped by PAWS in TIME_WAIT.",
        DelayedACKs Counter "Delayed ACKs sent when the delayed-ACK timer fired.",
        DelayedACKLocked Counter "Delayed ACKs postponed: the socket was busy when the timer fired.",
        DelayedACKLost Counter "Duplicate data received (an earlier ACK was presumably lost); ACKed at once.",
        ListenOverflows Counter "Handshakes completed while the accept queue was full.",
        ListenDrops Counter "SYNs and handshake ACKs dropped at a listener (ListenOverflows included).",
        TCPHPHits Counter "Data segments taken by the header-prediction fast path.",
        TCPPureAcks Counter "Pure ACKs received on the slow path.",
        TCPHPAcks Counter "Pure ACKs taken by the fast path.",
        TCPRenoRecovery Counter "Fast recoveries without SACK (NewReno, RFC 6582).",
        TCPSackRecovery Counter "Fast recoveries with SACK.",
        TCPSACKReneging Counter "The peer discarded data it had SACKed.",
        TCPSACKReorder Counter "Reordering detected through SACK.",
        TCPRenoReorder Counter "Reordering detected through duplicate ACKs (no SACK).",
        TCPTSReorder Counter "Reordering detected through timestamps.",
        TCPFullUndo Counter "Congestion-window reductions fully undone (the retransmission was spurious).",
        TCPPartialUndo Counter "Congestion-window reductions partially undone.",
        TCPDSACKUndo Counter "Congestion-window reductions undone by D-SACK (RFC 2883).",
        TCPLossUndo Counter "Reductions after a retransmission timeout undone.",
        TCPLostRetransmit Counter "Retransmissions that were lost again.",
        TCPRenoFailures Counter "Retransmission timeouts during NewReno fast recovery.",
        TCPSackFailures Counter "Retransmission timeouts during SACK fast recovery.",
        TCPLossFailures Counter "Retransmission timeouts while already recovering from a timeout.",
        TCPFastRetrans Counter "Segments fast-retransmitted.",
        TCPSlowStartRetrans Counter "Segments retransmitted in slow start after a timeout.",
        TCPTimeouts Counter "Retransmission timer expirations (RFC 6298), SYN timeouts included.",
        TCPLossProbes Counter "Tail loss probes sent (RACK-TLP, RFC 8985).",
        TCPLossProbeRecovery Counter "Losses repaired by a tail loss probe.",
        TCPRenoRecoveryFail Counter "NewReno recoveries that ended in a timeout.",
        TCPSackRecoveryFail Counter "SACK recoveries that ended in a timeout.",
        TCPRcvCollapsed Counter "Segments merged in the receive queue to save memory.",
        TCPBacklogCoalesce Counter "Segments coalesced in the socket backlog.",
        TCPDSACKOldSent Counter "D-SACKs sent for old duplicate data.",
        TCPDSACKOfoSent Counter "D-SACKs sent for duplicate out-of-order data.",
        TCPDSACKRecv Counter "D-SACKs received.",
        TCPDSACKOfoRecv Counter "D-SACKs received for out-of-order data.",
        TCPAbortOnData Counter "Resets sent: data arrived after close(), or close() with SO_LINGER 0.",
        TCPAbortOnClose Counter "Resets sent: close() with unread data.",
        TCPAbortOnMemory Counter "Connections reset for lack of memory (too many orphans).",
        TCPAbortOnTimeout Counter "Connections given up after their retries ran out (retransmission, keepalive, orphan).",
        TCPAbortOnLinger Counter "Orphans in FIN_WAIT_2 reset at once (TCP_LINGER2 negative).",
        TCPAbortFailed Counter "Resets that could not be sent.",
        TCPMemoryPressures Counter "Times TCP entered memory pressure.",
        TCPMemoryPressuresChrono Counter "Milliseconds spent under memory pressure.",
        TCPSACKDiscard Counter "Invalid SACK blocks ignored.",
        TCPDSACKIgnoredOld Counter "D-SACK blocks ignored: older than the undo point.",
        TCPDSACKIgnoredNoUndo Counter "D-SACK blocks ignored: nothing to undo.",
        TCPSpuriousRTOs Counter "Retransmission timeouts found spurious (F-RTO, RFC 5682).",
        TCPMD5NotFound Counter "Segments without the expected MD5 signature (RFC 2385).",
        TCPMD5Unexpected Counter "Segments with an MD5 signature none was configured for.",
        TCPMD5Failure Counter "Segments whose MD5 signature was wrong.",
        TCPSackShifted Counter "SACKed segments shifted in the retransmit queue.",
        TCPSackMerged Counter "SACKed segments merged in the retransmit queue.",
        TCPSackShiftFallback Counter "SACK processing that could not shift or merge.",
        TCPBacklogDrop Counter "Segments dropped: socket backlog full.",
        PFMemallocDrop Counter "Segments dropped: emergency-memory buffer for an ordinary socket.",
        TCPMinTTLDrop Counter "Segments dropped: TTL below IP_MINTTL.",
        TCPDeferAcceptDrop Counter "Handshake ACKs without data dropped (TCP_DEFER_ACCEPT).",
        IPReversePathFilter Counter "Packets dropped by the reverse-path filter.",
        TCPTimeWaitOverflow Counter "TIME_WAIT entries not created: tcp_max_tw_buckets reached.",
        TCPReqQFullDoCookies Counter "SYN queue full: SYN answered with a SYN cookie.",
        TCPReqQFullDrop Counter "SYN queue full: SYN dropped.",
        TCPRetransFail Counter "Retransmissions that could not be sent (local error).",
        TCPRcvCoalesce Counter "Segments coalesced into the previous one in the receive queue.",
        TCPOFOQueue Counter "Segments queued out of order.",
        TCPOFODrop Counter "Out-of-order segments dropped (no memory).",
        TCPOFOMerge Counter "Out-of-order segments overlapping data already queued.",
        TCPChallengeACK Counter "Challenge ACKs sent (RFC 5961).",
        TCPSYNChallenge Counter "Challenge ACKs sent in answer to a SYN (RFC 5961 §4).",
        TCPFastOpenActive Counter "TCP Fast Open SYNs with data accepted by the peer (RFC 7413).",
        TCPFastOpenActiveFail Counter "TCP Fast Open SYN data not acknowledged by the peer.",
        TCPFastOpenPassive Counter "TCP Fast Open SYNs with data accepted.",
        TCPFastOpenPassiveFail Counter "TCP Fast Open SYNs with an invalid cookie.",
        TCPFastOpenListenOverflow Counter "TCP Fast Open SYNs refused: Fast Open queue full.",
        TCPFastOpenCookieReqd Counter "TCP Fast Open cookie requests received.",
        TCPFastOpenBlackhole Counter "TCP Fast Open disabled after a suspected middlebox blackhole.",
        TCPSpuriousRtxHostQueues Counter "Retransmissions skipped: the original was still in a host queue.",
        BusyPollRxPackets Counter "Packets received by busy polling.",
        TCPAutoCorking Counter "Sends held back by autocorking.",
        TCPFromZeroWindowAdv Counter "Windows advertised that opened from zero.",
        TCPToZeroWindowAdv Counter "Windows advertised that shrank to zero.",
        TCPWantZeroWindowAdv Counter "Times the computed receive window was zero.",
        TCPSynRetrans Counter "SYN and SYN-ACK retransmissions.",
        TCPOrigDataSent Counter "Segments sent with new data (retransmissions excluded).",
        TCPHystartTrainDetect Counter "Slow-start exits by HyStart ACK-train detection.",
        TCPHystartTrainCwnd Counter "Sum of the congestion windows at HyStart ACK-train exits.",
        TCPHystartDelayDetect Counter "Slow-start exits by HyStart delay detection.",
        TCPHystartDelayCwnd Counter "Sum of the congestion windows at HyStart delay exits.",
        TCPACKSkippedSynRecv Counter "ACKs not sent in SYN_RECEIVED: rate limit (tcp_invalid_ratelimit).",
        TCPACKSkippedPAWS Counter "ACKs not sent for PAWS drops: rate limit.",
        TCPACKSkippedSeq Counter "ACKs not sent for out-of-window segments: rate limit.",
        TCPACKSkippedFinWait2 Counter "ACKs not sent in FIN_WAIT_2: rate limit.",
        TCPACKSkippedTimeWait Counter "ACKs not sent in TIME_WAIT: rate limit.",
        TCPACKSkippedChallenge Counter "Challenge ACKs not sent: per-connection rate limit.",
        TCPWinProbe Counter "Zero-window probes sent.",
        TCPKeepAlive Counter "Keep-alive probes sent.",
        TCPMTUPFail Counter "Path MTU probes that failed.",
        TCPMTUPSuccess Counter "Path MTU probes that succeeded.",
        TCPDelivered Counter "Segments delivered to the peer (acknowledged or SACKed).",
        TCPDeliveredCE Counter "Delivered segments that carried an ECN CE mark.",
        TCPAckCompressed Counter "ACKs compressed (held back and sent as one).",
        TCPZeroWindowDrop Counter "Segments dropped: the receive window was zero.",
        TCPRcvQDrop Counter "Segments dropped: the receive buffer was full.",
        TCPWqueueTooBig Counter "Segment splits refused: the write queue was too big.",
        TCPFastOpenPassiveAltKey Counter "TCP Fast Open cookies accepted with the backup key.",
        TcpTimeoutRehash Counter "Flow label rehashed after a retransmission timeout.",
        TcpDuplicateDataRehash Counter "Flow label rehashed after duplicate data.",
        TCPDSACKRecvSegs Counter "Segments covered by received D-SACKs.",
        TCPDSACKIgnoredDubious Counter "D-SACKs ignored as dubious.",
        TCPMigrateReqSuccess Counter "Request sockets moved to another SO_REUSEPORT listener.",
        TCPMigrateReqFailure Counter "Request sockets that could not be moved to another listener.",
        TCPPLBRehash Counter "Protective load balancing rehashes.",
        TCPAORequired Counter "Segments dropped: TCP-AO required but absent (RFC 5925).",
        TCPAOBad Counter "Segments dropped: TCP-AO signature wrong.",
        TCPAOKeyNotFound Counter "Segments dropped: no TCP-AO key matched.",
        TCPAOGood Counter "Segments with a valid TCP-AO signature.",
        TCPAODroppedIcmps Counter "ICMP errors dropped on TCP-AO connections.",
    }
    // tcpfsm's engine only: Linux keeps no counter for these. The names carry the prefix
    // themselves, so nstat-style names add none.
    Tcpfsm "" {
        TcpfsmFinWait2Timeouts Counter "Orphaned FIN_WAIT_2 connections closed when fin_timeout expired (Linux counts none).",
        TcpfsmCtlQueueDrops Counter "Control segments (RST, challenge ACK, SYN-ACK) dropped: the control queue was full.",
        TcpfsmChallengeACKLimited Counter "Challenge ACKs not sent: endpoint-wide limit (tcp_challenge_ack_limit; Linux counts none).",
    }
}

impl Counter {
    /// Number of counters.
    pub const COUNT: usize = INFO.len();

    fn info(self) -> &'static Info {
        &INFO[self as usize]
    }

    /// Position in [`Counter::ALL`] and in a [`Mib`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The field name as the kernel prints it (`InSegs`, `TCPSackRecovery`), or our
    /// `Tcpfsm…` name.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The name `nstat` prints: group and field joined (`TcpInSegs`, `TcpExtTCPSackRecovery`;
    /// ours keep their own `Tcpfsm…` name).
    pub fn nstat_name(self) -> &'static str {
        self.info().nstat
    }

    pub fn group(self) -> Group {
        self.info().group
    }

    pub fn kind(self) -> Kind {
        self.info().kind
    }

    /// One sentence: what the kernel (or our engine) counts.
    pub fn description(self) -> &'static str {
        self.info().description
    }

    /// Linux prints MaxConn as a signed number (-1); every other field is unsigned.
    pub fn is_signed(self) -> bool {
        self == Counter::MaxConn
    }

    /// The counters of one group, in order.
    pub fn of_group(group: Group) -> impl Iterator<Item = Counter> {
        Counter::ALL.into_iter().filter(move |c| c.group() == group)
    }
}

impl fmt::Display for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One value per [`Counter`], in a fixed array: `mib[Counter::InSegs] += 1`. Values are u64 as
/// in the kernel (`unsigned long`); MaxConn's -1 is stored as its two's complement (read it
/// with [`Mib::signed`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mib {
    values: [u64; Counter::COUNT],
}

impl Default for Mib {
    fn default() -> Self {
        Mib {
            values: [0; Counter::COUNT],
        }
    }
}

impl Mib {
    pub fn new() -> Mib {
        Mib::default()
    }

    /// `(counter, value)` for every counter, in [`Counter::ALL`] order, zeros included.
    pub fn iter(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        Counter::ALL
            .into_iter()
            .map(move |c| (c, self.values[c.index()]))
    }

    /// The value as Linux prints it: signed for [`Counter::is_signed`], else unsigned.
    pub fn signed(&self, c: Counter) -> i128 {
        let v = self[c];
        if c.is_signed() {
            v as i64 as i128
        } else {
            v as i128
        }
    }

    /// What happened between `earlier` and `self`: for counters the difference — or, when the
    /// value went down (a reboot, another namespace), the value itself, counted since that
    /// reset, as nstat does; gauges and parameters keep their current value.
    pub fn since(&self, earlier: &Mib) -> Mib {
        let mut d = *self;
        for c in Counter::ALL {
            if c.kind() == Kind::Counter {
                let (now, then) = (self[c], earlier[c]);
                d[c] = if now >= then { now - then } else { now };
            }
        }
        d
    }

    /// Adds another set's counters to these (gauges too: two stacks' levels add up);
    /// parameters are kept.
    pub fn merge(&mut self, other: &Mib) {
        for c in Counter::ALL {
            if c.kind() != Kind::Parameter {
                self[c] = self[c].wrapping_add(other[c]);
            }
        }
    }
}

impl Index<Counter> for Mib {
    type Output = u64;
    fn index(&self, c: Counter) -> &u64 {
        &self.values[c.index()]
    }
}

impl IndexMut<Counter> for Mib {
    fn index_mut(&mut self, c: Counter) -> &mut u64 {
        &mut self.values[c.index()]
    }
}

impl fmt::Debug for Mib {
    /// Only the non-zero values: 150 zeros hide what matters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .filter(|(_, v)| *v != 0)
                    .map(|(c, _)| (c.name(), self.signed(c))),
            )
            .finish()
    }
}

impl Serialize for Mib {
    /// A map from [`Counter::name`] to value, every counter in kernel order; MaxConn signed.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(Counter::COUNT))?;
        for (c, v) in self.iter() {
            if c.is_signed() {
                m.serialize_entry(c.name(), &(v as i64))?;
            } else {
                m.serialize_entry(c.name(), &v)?;
            }
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Mib {
    /// Reads the map [`Serialize`] writes. Names this build does not know (a newer writer's)
    /// are skipped; absent ones are zero.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Mib, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Mib;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of TCP counter names to integers")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Mib, A::Error> {
                let mut mib = Mib::new();
                while let Some(k) = map.next_key::<String>()? {
                    let v: Num = map.next_value()?;
                    if let Some(c) = Counter::from_name(&k) {
                        mib[c] = v.0;
                    }
                }
                Ok(mib)
            }
        }
        d.deserialize_map(V)
    }
}

/// An integer that may arrive signed (MaxConn's -1) or unsigned.
struct Num(u64);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Num, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Num, E> {
                Ok(Num(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Num, E> {
                Ok(Num(v as u64))
            }
        }
        d.deserialize_any(V)
    }
}

/// A set of counters, as a bitmask (which fields a kernel printed, which a source fills).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CounterSet {
    bits: [u64; Counter::COUNT.div_ceil(64)],
}

impl CounterSet {
    pub fn new() -> CounterSet {
        CounterSet::default()
    }

    /// Every counter.
    pub fn all() -> CounterSet {
        Counter::ALL.into_iter().collect()
    }

    pub fn insert(&mut self, c: Counter) {
        self.bits[c.index() / 64] |= 1 << (c.index() % 64);
    }

    pub fn contains(&self, c: Counter) -> bool {
        self.bits[c.index() / 64] & (1 << (c.index() % 64)) != 0
    }

    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Members in [`Counter::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = Counter> + '_ {
        Counter::ALL.into_iter().filter(move |c| self.contains(*c))
    }
}

impl FromIterator<Counter> for CounterSet {
    fn from_iter<I: IntoIterator<Item = Counter>>(iter: I) -> CounterSet {
        let mut s = CounterSet::new();
        for c in iter {
            s.insert(c);
        }
        s
    }
}

impl fmt::Debug for CounterSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Counter::name))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_order_is_the_declaration_order() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
        assert_eq!(Counter::ALL[0], Counter::RtoAlgorithm);
    }

    #[test]
    fn names_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for c in Counter::ALL {
            assert!(seen.insert(c.name()), "duplicate {}", c.name());
            assert_eq!(Counter::from_name(c.name()), Some(c));
            assert_eq!(Counter::from_nstat_name(c.nstat_name()), Some(c));
        }
        assert_eq!(Counter::from_name("insegs"), None, "names are exact");
        assert_eq!(Counter::from_name("TcpExtTW"), None);
    }

    #[test]
    fn nstat_names_join_group_and_field() {
        assert_eq!(Counter::InSegs.nstat_name(), "TcpInSegs");
        assert_eq!(
            Counter::TCPSackRecovery.nstat_name(),
            "TcpExtTCPSackRecovery"
        );
        assert_eq!(Counter::TW.nstat_name(), "TcpExtTW");
        assert_eq!(
            Counter::TcpfsmFinWait2Timeouts.nstat_name(),
            "TcpfsmFinWait2Timeouts"
        );
    }

    #[test]
    fn tcpfsm_counters_are_a_separate_prefixed_group() {
        for c in Counter::ALL {
            assert_eq!(
                c.group() == Group::Tcpfsm,
                c.name().starts_with("Tcpfsm"),
                "{c}"
            );
        }
        assert_eq!(Counter::of_group(Group::Tcp).count(), 15);
        assert_eq!(Counter::of_group(Group::TcpExt).count(), 135);
    }

    #[test]
    fn curr_estab_is_a_gauge_and_rto_min_a_parameter() {
        assert_eq!(Counter::CurrEstab.kind(), Kind::Gauge);
        assert_eq!(Counter::RtoMin.kind(), Kind::Parameter);
        assert_eq!(Counter::InSegs.kind(), Kind::Counter);
        let gauges: Vec<_> = Counter::ALL
            .into_iter()
            .filter(|c| c.kind() == Kind::Gauge)
            .collect();
        assert_eq!(gauges, [Counter::CurrEstab]);
    }

    #[test]
    fn counting_indexes_a_fixed_array() {
        let mut m = Mib::new();
        m[Counter::InSegs] += 1;
        m[Counter::InSegs] += 1;
        m[Counter::TCPSackRecovery] = 7;
        assert_eq!(m[Counter::InSegs], 2);
        let nonzero: Vec<_> = m.iter().filter(|(_, v)| *v > 0).collect();
        assert_eq!(
            nonzero,
            [(Counter::InSegs, 2), (Counter::TCPSackRecovery, 7)]
        );
        assert_eq!(m.iter().count(), Counter::COUNT);
    }

    #[test]
    fn since_subtracts_counters_keeps_gauges_and_restarts_after_a_reset() {
        let mut a = Mib::new();
        let mut b = Mib::new();
        a[Counter::OutSegs] = 100;
        b[Counter::OutSegs] = 150;
        a[Counter::CurrEstab] = 9;
        b[Counter::CurrEstab] = 4;
        a[Counter::RetransSegs] = 50;
        b[Counter::RetransSegs] = 3; // went down: a reset
        let d = b.since(&a);
        assert_eq!(d[Counter::OutSegs], 50);
        assert_eq!(d[Counter::CurrEstab], 4);
        assert_eq!(d[Counter::RetransSegs], 3);
    }

    #[test]
    fn serde_writes_names_and_signed_max_conn_and_skips_unknown_names() {
        let mut m = Mib::new();
        m[Counter::MaxConn] = -1i64 as u64;
        m[Counter::TCPTimeouts] = 5;
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.starts_with("{\"RtoAlgorithm\":0,"), "{json}");
        assert!(json.contains("\"MaxConn\":-1,"));
        assert!(json.contains("\"TCPTimeouts\":5,"));
        assert_eq!(serde_json::from_str::<Mib>(&json).unwrap(), m);
        let m2: Mib = serde_json::from_str("{\"InSegs\":3,\"TCPFromTheFuture\":1}").unwrap();
        assert_eq!(m2[Counter::InSegs], 3);
        assert_eq!(m.signed(Counter::MaxConn), -1);
    }

    #[test]
    fn counter_set_members() {
        let s: CounterSet = [Counter::TW, Counter::InSegs].into_iter().collect();
        assert!(s.contains(Counter::TW) && !s.contains(Counter::OutSegs));
        assert_eq!(s.iter().collect::<Vec<_>>(), [Counter::InSegs, Counter::TW]);
        assert_eq!(CounterSet::all().len(), Counter::COUNT);
        let last = Counter::ALL[Counter::COUNT - 1];
        assert!(CounterSet::all().contains(last));
    }
}
