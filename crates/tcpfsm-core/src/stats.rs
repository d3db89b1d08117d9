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
    /// RFC 5961 §7 per-connection limit: ACKs not sent (Linux `TCPACKSkipped*`).
    pub ack_skipped_seq: u64,
    pub ack_skipped_paws: u64,
    pub ack_skipped_syn_recv: u64,
    pub ack_skipped_fin_wait2: u64,
    pub ack_skipped_time_wait: u64,
    pub ack_skipped_challenge: u64,
    /// Challenge ACKs held back by the endpoint-wide limit (`tcp_challenge_ack_limit`).
    pub challenge_ack_limited: u64,
    /// SYNs answered with a challenge ACK (Linux `TCPSYNChallenge`).
    pub syn_challenges: u64,
    /// Connections reset because data arrived after the application closed (`TCPAbortOnData`).
    pub abort_on_data: u64,
    /// Connections reset because the application closed with unread data (`TCPAbortOnClose`).
    pub abort_on_close: u64,
    /// Orphans that gave up retransmitting (`TCPAbortOnTimeout`).
    pub abort_on_timeout: u64,
    /// Out-of-order segments queued / refused (`TCPOFOQueue`, `TCPOFODrop`).
    pub ofo_queue: u64,
    pub ofo_drop: u64,
    /// Data dropped because the window was zero (`TCPZeroWindowDrop`).
    pub zero_window_drop: u64,
    /// Zero-window probes sent (`TCPWinProbe`).
    pub window_probes: u64,
    /// Control segments (RSTs, challenge ACKs, SYN-ACKs) dropped because the control queue
    /// was full (tcpfsm's own; Linux has no such queue).
    pub ctl_dropped: u64,
    /// SYNs answered with a cookie because the SYN queue was full (`TCPReqQFullDoCookies`).
    pub req_q_full_do_cookies: u64,
    /// SYNs dropped because the SYN queue was full (`TCPReqQFullDrop`).
    pub req_q_full_drop: u64,
    /// Connections that skipped TIME_WAIT, the table being full (`TCPTimeWaitOverflow`).
    pub tw_overflow: u64,
    // Loss recovery (RFC 6675, RFC 8985, RFC 9937) and congestion control, TcpExt names.
    pub sack_recovery: u64,
    pub reno_recovery: u64,
    pub loss_probes: u64,
    pub loss_probe_recovery: u64,
    pub dsack_undo: u64,
    /// Recoveries undone by timestamps (Linux splits these into TCPFullUndo/TCPPartialUndo).
    pub ts_undo: u64,
    pub loss_undo: u64,
    pub spurious_rtos: u64,
    pub fast_retrans: u64,
    pub slow_start_retrans: u64,
    pub sack_reorder: u64,
    pub dsack_recv: u64,
    pub dsack_ignored_old: u64,
    pub sack_discard: u64,
    pub hystart_delay_detect: u64,
    pub hystart_delay_cwnd: u64,
}

impl Stats {
    /// `(name, value)` in /proc/net/snmp and /proc/net/netstat spelling.
    pub fn fields(&self) -> [(&'static str, u64); 58] {
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
            ("TcpfsmFinWait2Timeouts", self.fin_wait2_timeouts),
            ("DelayedACKs", self.delayed_acks),
            ("TCPACKSkippedSeq", self.ack_skipped_seq),
            ("TCPACKSkippedPAWS", self.ack_skipped_paws),
            ("TCPACKSkippedSynRecv", self.ack_skipped_syn_recv),
            ("TCPACKSkippedFinWait2", self.ack_skipped_fin_wait2),
            ("TCPACKSkippedTimeWait", self.ack_skipped_time_wait),
            ("TCPACKSkippedChallenge", self.ack_skipped_challenge),
            ("TcpfsmChallengeACKLimited", self.challenge_ack_limited),
            ("TCPSYNChallenge", self.syn_challenges),
            ("TCPAbortOnData", self.abort_on_data),
            ("TCPAbortOnClose", self.abort_on_close),
            ("TCPAbortOnTimeout", self.abort_on_timeout),
            ("TCPOFOQueue", self.ofo_queue),
            ("TCPOFODrop", self.ofo_drop),
            ("TCPZeroWindowDrop", self.zero_window_drop),
            ("TCPWinProbe", self.window_probes),
            ("TcpfsmCtlQueueDrops", self.ctl_dropped),
            ("TCPReqQFullDoCookies", self.req_q_full_do_cookies),
            ("TCPReqQFullDrop", self.req_q_full_drop),
            ("TCPTimeWaitOverflow", self.tw_overflow),
            ("TCPSackRecovery", self.sack_recovery),
            ("TCPRenoRecovery", self.reno_recovery),
            ("TCPLossProbes", self.loss_probes),
            ("TCPLossProbeRecovery", self.loss_probe_recovery),
            ("TCPDSACKUndo", self.dsack_undo),
            ("TCPFullUndo", self.ts_undo),
            ("TCPLossUndo", self.loss_undo),
            ("TCPSpuriousRTOs", self.spurious_rtos),
            ("TCPFastRetrans", self.fast_retrans),
            ("TCPSlowStartRetrans", self.slow_start_retrans),
            ("TCPSACKReorder", self.sack_reorder),
            ("TCPDSACKRecv", self.dsack_recv),
            ("TCPDSACKIgnoredOld", self.dsack_ignored_old),
            ("TCPSACKDiscard", self.sack_discard),
            ("TCPHystartDelayDetect", self.hystart_delay_detect),
            ("TCPHystartDelayCwnd", self.hystart_delay_cwnd),
        ]
    }
}
