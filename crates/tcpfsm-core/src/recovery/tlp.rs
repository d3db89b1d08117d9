//! Tail Loss Probe (RFC 8985 §7): when the tail of a flight is lost there are no further ACKs
//! to trigger RACK, so after a probe timeout (PTO, about two round trips) one segment is sent
//! to solicit an ACK, instead of waiting for the RTO.
//!
//! # How to drive it (RFC 8985 §7)
//! - After sending new data, and after an ACK that advances SND.UNA: if [`may_schedule`]
//!   holds, arm the PTO for [`pto`] from now (it replaces a pending RTO; §7.2). Otherwise
//!   keep the RTO.
//! - Every RTT sample: [`Tlp::on_rtt_sample`].
//! - The PTO fires: [`Tlp::on_pto`] says whether to probe with new data or by retransmitting
//!   the highest-sequence segment; send it, then [`Tlp::on_probe_sent`]. Either way re-arm
//!   the RTO, not the PTO, if data is in flight (§7.3).
//! - Every ACK: [`Tlp::on_ack`] (§7.4). [`TlpOutcome::LossRepaired`] means the probe repaired
//!   a loss: invoke the congestion controller's reduction.
//! - The RTO fires: [`Tlp::on_rto`].

use crate::time::{micros, Duration, Instant};
use tcpfsm_wire::SeqNum;

/// WCDelAckT, the worst-case delayed-ACK time added to the PTO when a single segment is in
/// flight (RFC 8985 §7.2: 200 ms, Linux `TCP_DELACK_MAX`).
pub const WC_DEL_ACK_T: Duration = Duration::from_millis(200);

/// Slack added to 2·SRTT when more than one segment is in flight. RFC 8985 §7.2 leaves the
/// PTO's lower bound to the implementation; Linux (`tcp_schedule_loss_probe`) adds
/// `TCP_TIMEOUT_MIN`, two jiffies, 8 ms at the usual HZ=250. Without it a sub-millisecond
/// SRTT (a local peer, a TUN device) makes the probe race the peer's own ACK, and a probe
/// that re-sends a FIN draws a duplicate ACK after we have closed, which our RST answers —
/// cutting the peer's TIME-WAIT short (RFC 1337 hazard).
pub const PTO_SLACK: Duration = Duration::from_millis(8);

/// RFC 8985 §7.2 TLP_calc_PTO(), as the instant the probe timer fires: 2·SRTT from `now`,
/// plus WCDelAckT when only one segment is in flight (its ACK may be delayed) or
/// [`PTO_SLACK`] otherwise, 1 s without an RTT estimate, and never later than the RTO would
/// fire. In microseconds (`srtt_us`): this runs for every segment sent and every ACK, and
/// `Duration` arithmetic costs divisions and 128-bit products.
pub fn pto_at(
    now: Instant,
    srtt_us: Option<u64>,
    one_segment_in_flight: bool,
    max_ack_delay: Duration,
    rto_expiry: Option<Instant>,
) -> Instant {
    let len = pto_len_us(srtt_us, one_segment_in_flight, micros(max_ack_delay));
    pto_expiry(now, len, rto_expiry)
}

/// [`pto_at`]'s length from `now`, with WCDelAckT (`max_ack_delay_us`) in microseconds: the
/// sender keeps it so, rather than convert a `Duration` (a 128-bit product and a division)
/// for every segment sent.
#[inline]
pub(crate) fn pto_len_us(
    srtt_us: Option<u64>,
    one_segment_in_flight: bool,
    max_ack_delay_us: u64,
) -> u64 {
    let extra_us = if one_segment_in_flight {
        max_ack_delay_us
    } else {
        micros(PTO_SLACK)
    };
    match srtt_us {
        Some(s) => s.saturating_mul(2).saturating_add(extra_us),
        None => 1_000_000,
    }
}

/// [`pto_at`] from the length: `len_us` from `now`, but never later than the RTO.
#[inline]
pub(crate) fn pto_expiry(now: Instant, len_us: u64, rto_expiry: Option<Instant>) -> Instant {
    let at = now.add_micros(len_us);
    match rto_expiry {
        Some(rto) => at.min(rto.max(now)),
        None => at,
    }
}

/// RFC 8985 §7.2: a PTO may be scheduled only if the connection supports SACK, has no SACKed
/// data in its scoreboard, and is not in loss recovery.
pub fn may_schedule(sack: bool, segs_sacked: u32, in_recovery: bool) -> bool {
    sack && segs_sacked == 0 && !in_recovery
}

/// What to send when the PTO fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Send the lowest unsent segment (up to SMSS) from SND.NXT.
    NewData,
    /// Retransmit the highest-sequence segment sent so far.
    RetransmitLast,
    /// No probe now (one still outstanding, or no RTT sample since the last): re-arm the RTO.
    Skip,
}

/// What an ACK says about the outstanding probe (RFC 8985 §7.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlpOutcome {
    /// No probe outstanding, or not yet answered.
    Pending,
    /// The probe was new data and was delivered; RACK handles any loss.
    Delivered,
    /// The probe retransmission was redundant (D-SACKed): nothing was lost.
    Spurious,
    /// The probe repaired a single lost segment: reduce the window.
    LossRepaired,
}

/// Counters, Linux TcpExt names in the docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TlpCounters {
    /// Probes sent (`TCPLossProbes`).
    pub probes: u64,
    /// Losses repaired by a probe (`TCPLossProbeRecovery`).
    pub recoveries: u64,
}

/// TLP state (RFC 8985 §7.1: TLP.end_seq, TLP.is_retrans).
#[derive(Debug, Clone, Default)]
pub struct Tlp {
    end_seq: Option<SeqNum>,
    is_retrans: bool,
    /// An RTT sample arrived since the last probe (or the connection start): §7.3 condition 2.
    rtt_since_probe: bool,
    counters: TlpCounters,
}

impl Tlp {
    pub fn new() -> Tlp {
        Tlp::default()
    }

    pub fn counters(&self) -> TlpCounters {
        self.counters
    }

    /// TLP.end_seq, while a probe is outstanding.
    pub fn outstanding(&self) -> Option<SeqNum> {
        self.end_seq
    }

    pub fn on_rtt_sample(&mut self) {
        self.rtt_since_probe = true;
    }

    /// RFC 8985 §7.3: the PTO fired. At most one probe may be outstanding, and a new RTT
    /// sample must have arrived since the last one. `new_data` says whether unsent data exists
    /// and the receive window allows it.
    pub fn on_pto(&self, new_data: bool) -> Probe {
        if self.end_seq.is_some() || !self.rtt_since_probe {
            return Probe::Skip;
        }
        if new_data {
            Probe::NewData
        } else {
            Probe::RetransmitLast
        }
    }

    /// The probe went out; `snd_nxt` is SND.NXT after it (TLP.end_seq).
    pub fn on_probe_sent(&mut self, snd_nxt: SeqNum, is_retrans: bool) {
        self.end_seq = Some(snd_nxt);
        self.is_retrans = is_retrans;
        self.rtt_since_probe = false;
        self.counters.probes += 1;
    }

    /// RFC 8985 §7.4.2 on each ACK: `dsack` is the ACK's D-SACK block, if any; `has_sack`
    /// whether it carried any SACK block; `dupack` whether it is a duplicate ACK.
    pub fn on_ack(
        &mut self,
        ack: SeqNum,
        dsack: Option<(SeqNum, SeqNum)>,
        has_sack: bool,
        dupack: bool,
    ) -> TlpOutcome {
        let Some(end) = self.end_seq else {
            return TlpOutcome::Pending;
        };
        if ack.lt(end) {
            return TlpOutcome::Pending;
        }
        let outcome = if !self.is_retrans {
            // A probe of new data was delivered.
            TlpOutcome::Delivered
        } else if dsack.is_some_and(|(_, e)| e == end) {
            // Both the original and the probe arrived: no loss.
            TlpOutcome::Spurious
        } else if ack.gt(end) {
            // The ACK moved past the probe without a D-SACK for it: the original was lost and
            // the probe repaired it.
            TlpOutcome::LossRepaired
        } else if dupack && !has_sack {
            // A pure duplicate ACK at TLP.end_seq: the original had already been
            // acknowledged up to there, so the probe arrived as a duplicate (a receiver
            // without D-SACK says so this way) — no loss, as Linux's `tcp_process_tlp_ack`.
            TlpOutcome::Spurious
        } else {
            // ACK == TLP.end_seq advancing SND.UNA: it may answer the original or the probe.
            // Wait: a D-SACK or an ACK beyond the probe will tell.
            return TlpOutcome::Pending;
        };
        self.end_seq = None;
        if outcome == TlpOutcome::LossRepaired {
            self.counters.recoveries += 1;
        }
        outcome
    }

    /// The RTO fired: the probe is irrelevant now.
    pub fn on_rto(&mut self) {
        self.end_seq = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The PTO's length from `now`.
    fn pto(
        now: Instant,
        srtt: Option<Duration>,
        one: bool,
        max_ack_delay: Duration,
        rto: Option<Instant>,
    ) -> Duration {
        let srtt_us = srtt.map(micros);
        pto_at(now, srtt_us, one, max_ack_delay, rto).saturating_since(now)
    }

    #[test]
    fn pto_is_two_srtt_plus_linux_slack_rfc8985_7_2() {
        let now = Instant::from_micros(1_000_000);
        assert_eq!(pto(now, Some(ms(50)), false, WC_DEL_ACK_T, None), ms(108));
    }

    #[test]
    fn pto_on_a_sub_millisecond_path_waits_for_the_slack_rfc8985_7_2() {
        let srtt = Duration::from_micros(40);
        assert_eq!(
            pto(Instant::ZERO, Some(srtt), false, WC_DEL_ACK_T, None),
            Duration::from_micros(8_080)
        );
    }

    #[test]
    fn pto_adds_the_worst_case_delayed_ack_for_a_single_segment_rfc8985_7_2() {
        let now = Instant::ZERO;
        assert_eq!(pto(now, Some(ms(50)), true, WC_DEL_ACK_T, None), ms(300));
    }

    #[test]
    fn pto_without_srtt_is_one_second_rfc8985_7_2() {
        assert_eq!(
            pto(Instant::ZERO, None, false, WC_DEL_ACK_T, None),
            ms(1000)
        );
    }

    #[test]
    fn pto_never_outlasts_the_rto_rfc8985_7_2() {
        let now = Instant::from_micros(10_000_000);
        let rto = now + ms(150);
        assert_eq!(
            pto(now, Some(ms(100)), false, WC_DEL_ACK_T, Some(rto)),
            ms(150)
        );
        assert_eq!(
            pto(now, Some(ms(50)), false, WC_DEL_ACK_T, Some(rto)),
            ms(108)
        );
    }

    #[test]
    fn pto_is_scheduled_only_with_sack_no_sacked_data_and_no_recovery_rfc8985_7_2() {
        assert!(may_schedule(true, 0, false));
        assert!(!may_schedule(false, 0, false));
        assert!(!may_schedule(true, 1, false));
        assert!(!may_schedule(true, 0, true));
    }

    #[test]
    fn probe_prefers_new_data_else_the_last_segment_rfc8985_7_3() {
        let mut t = Tlp::new();
        assert_eq!(t.on_pto(true), Probe::Skip, "no RTT sample yet");
        t.on_rtt_sample();
        assert_eq!(t.on_pto(true), Probe::NewData);
        assert_eq!(t.on_pto(false), Probe::RetransmitLast);
    }

    #[test]
    fn one_probe_at_a_time_and_an_rtt_sample_between_probes_rfc8985_7_3() {
        let mut t = Tlp::new();
        t.on_rtt_sample();
        t.on_probe_sent(SeqNum(5000), true);
        assert_eq!(t.on_pto(false), Probe::Skip, "a probe is outstanding");
        assert_eq!(
            t.on_ack(SeqNum(6000), None, false, false),
            TlpOutcome::LossRepaired
        );
        assert_eq!(
            t.on_pto(false),
            Probe::Skip,
            "no RTT sample since the probe"
        );
        t.on_rtt_sample();
        assert_eq!(t.on_pto(false), Probe::RetransmitLast);
    }

    #[test]
    fn ack_of_a_new_data_probe_ends_the_episode_rfc8985_7_4_2() {
        let mut t = Tlp::new();
        t.on_probe_sent(SeqNum(5000), false);
        assert_eq!(
            t.on_ack(SeqNum(4000), None, false, false),
            TlpOutcome::Pending
        );
        assert_eq!(
            t.on_ack(SeqNum(5000), None, false, false),
            TlpOutcome::Delivered
        );
        assert_eq!(t.outstanding(), None);
    }

    #[test]
    fn dsack_of_the_probe_means_no_loss_rfc8985_7_4_2() {
        let mut t = Tlp::new();
        t.on_probe_sent(SeqNum(5000), true);
        let d = Some((SeqNum(4000), SeqNum(5000)));
        assert_eq!(t.on_ack(SeqNum(5000), d, true, true), TlpOutcome::Spurious);
        assert_eq!(
            t.counters(),
            TlpCounters {
                probes: 1,
                recoveries: 0
            }
        );
    }

    #[test]
    fn ack_for_the_probe_without_dsack_waits_then_beyond_means_repaired_rfc8985_7_4_2() {
        let mut t = Tlp::new();
        t.on_probe_sent(SeqNum(u32::MAX - 10), true);
        // The cumulative ACK reaches the probe's end: the D-SACK could still follow.
        assert_eq!(
            t.on_ack(SeqNum(u32::MAX - 10), None, false, false),
            TlpOutcome::Pending
        );
        // Later data is acknowledged past it with no D-SACK: the probe repaired a loss.
        assert_eq!(
            t.on_ack(SeqNum(100), None, false, false),
            TlpOutcome::LossRepaired
        );
        assert_eq!(t.counters().recoveries, 1);
    }

    #[test]
    fn pure_duplicate_ack_of_the_probe_means_both_copies_arrived_rfc8985_7_4_2() {
        let mut t = Tlp::new();
        t.on_probe_sent(SeqNum(5000), true);
        assert_eq!(
            t.on_ack(SeqNum(5000), None, false, true),
            TlpOutcome::Spurious
        );
        assert_eq!(t.counters().recoveries, 0);
    }

    #[test]
    fn rto_makes_the_probe_irrelevant() {
        let mut t = Tlp::new();
        t.on_probe_sent(SeqNum(5000), true);
        t.on_rto();
        assert_eq!(
            t.on_ack(SeqNum(6000), None, false, false),
            TlpOutcome::Pending
        );
    }
}
