//! Counters in the style of RFC 4022's tcpGroup and Linux's /proc/net/snmp `Tcp:` line, plus
//! the TcpExt counters the diagnoses need.

/// Cumulative counters of one endpoint. `curr_estab` is a gauge, as in the MIB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub active_opens: u64,
    pub passive_opens: u64,
    pub attempt_fails: u64,
    pub estab_resets: u64,
    pub curr_estab: u64,
    pub in_segs: u64,
    pub out_segs: u64,
    pub retrans_segs: u64,
    /// Malformed or bad-checksum segments.
    pub in_errs: u64,
    pub in_csum_errors: u64,
    pub out_rsts: u64,
    // TcpExt-style counters.
    pub listen_overflows: u64,
    pub listen_drops: u64,
    pub syncookies_sent: u64,
    pub syncookies_recv: u64,
    pub syncookies_failed: u64,
    pub tw_recycled: u64,
    pub tw_killed: u64,
    pub timeouts: u64,
    pub challenge_acks: u64,
    pub paws_rejected: u64,
    pub fin_wait2_timeouts: u64,
    pub delayed_acks: u64,
}

impl Stats {
    /// `(name, value)` in /proc/net/snmp and /proc/net/netstat spelling.
    pub fn fields(&self) -> [(&'static str, u64); 23] {
        [
            ("ActiveOpens", self.active_opens),
            ("PassiveOpens", self.passive_opens),
            ("AttemptFails", self.attempt_fails),
            ("EstabResets", self.estab_resets),
            ("CurrEstab", self.curr_estab),
            ("InSegs", self.in_segs),
            ("OutSegs", self.out_segs),
            ("RetransSegs", self.retrans_segs),
            ("InErrs", self.in_errs),
            ("InCsumErrors", self.in_csum_errors),
            ("OutRsts", self.out_rsts),
            ("ListenOverflows", self.listen_overflows),
            ("ListenDrops", self.listen_drops),
            ("SyncookiesSent", self.syncookies_sent),
            ("SyncookiesRecv", self.syncookies_recv),
            ("SyncookiesFailed", self.syncookies_failed),
            ("TWRecycled", self.tw_recycled),
            ("TWKilled", self.tw_killed),
            ("TCPTimeouts", self.timeouts),
            ("TCPChallengeACK", self.challenge_acks),
            ("PAWSEstab", self.paws_rejected),
            ("TCPFinWait2Timeouts", self.fin_wait2_timeouts),
            ("DelayedACKs", self.delayed_acks),
        ]
    }
}
