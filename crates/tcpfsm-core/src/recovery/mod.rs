//! Loss recovery for the send side: the SACK scoreboard (RFC 6675), RACK-TLP (RFC 8985),
//! Proportional Rate Reduction (RFC 9937, which obsoletes RFC 6937) and undo of spurious
//! reductions (D-SACK, RFC 2883/3708; timestamps, RFC 3522), steering a
//! [`crate::cc::CongestionControl`].
//!
//! Every module is pure: time comes in as [`crate::time::Instant`], nothing does I/O. The
//! pieces can be used alone (each module documents its own calls), but the send side is meant
//! to hold one [`sender::LossRecovery`] per connection, which calls them in the RFCs' order.
//!
//! # How the send side drives [`sender::LossRecovery`]
//! Create it when the connection is established: `LossRecovery::new(cfg, snd_una, smss)` with
//! `cfg.sack` set from the handshake (RFC 2018 SACK-permitted).
//!
//! 1. **Sending.** Loop `while let Some(n) = lr.next_segment(lr.cwnd(cc), new_data_ok)`:
//!    `new_data_ok` means unsent data is queued and the peer's window (and Nagle, SWS
//!    avoidance) allow a segment at SND.NXT. For [`scoreboard::Rule::NewData`] send up to
//!    SMSS from SND.NXT; otherwise retransmit `n.seq .. n.seq + n.len` (cut to SMSS if the MSS
//!    shrank). Report every segment with `lr.on_sent(now, seq, len, why, cc)`: `why = None`
//!    for new data, `Some(Retransmit::NextSeg(n.rule))` in fast recovery,
//!    `Some(Retransmit::Timeout)` in [`sender::Phase::Loss`]. A SYN or FIN occupies sequence
//!    space and is reported like data. The rule `pipe + SMSS ≤ cwnd` is applied inside
//!    `next_segment`, which makes Limited Transmit (RFC 3042) automatic.
//! 2. **Every ACK** that passed RFC 9293's acceptability checks (including old duplicate
//!    ACKs): build an [`sender::AckInput`] with the cumulative ACK, the SACK blocks *in the
//!    order carried*, the RTT sample the RTT estimator took from it (Karn's rule applied),
//!    SRTT, the send time TSecr echoes (map TSecr back through our TSval clock; `None` without
//!    timestamps), `dupack` (RFC 5681 §2 definition) and `cwnd_limited` (RFC 7661). Call
//!    `lr.on_ack(&input, cc)`, then go to step 1. The result says whether the reordering timer
//!    must be (re)armed ([`sender::AckResult::reorder_timer`]), whether recovery started or
//!    ended, and the D-SACK seen (count `TCPDSACKRecv`).
//! 3. **Timers.** Three per connection, next to RTO, persist and keep-alive:
//!    - RACK reordering timer at [`sender::LossRecovery::reorder_timer`]: on expiry
//!      `lr.on_reorder_timer(now, srtt, cc)`, then step 1.
//!    - Probe timeout: after sending new data and after an ACK that advanced SND.UNA, if
//!      [`sender::LossRecovery::pto_deadline`] returns a time, arm the PTO there *instead of*
//!      the RTO. On expiry `lr.on_pto(new_data_ok)`: for `Probe::NewData` send one new segment
//!      (`on_sent(.., None, ..)`) then `on_probe_sent(false)`; for `Probe::RetransmitLast`
//!      retransmit [`sender::LossRecovery::probe_segment`] with `Retransmit::Probe`, then
//!      `on_probe_sent(true)`; then arm the RTO (not the PTO) while data is in flight.
//!    - RTO: on expiry `lr.on_rto(now, srtt, first, clear_sacked, cc)` with `first` false
//!      for a repeated expiry of the same retransmission (RFC 5681 §3.1 holds ssthresh),
//!      `clear_sacked` true only when reneging was detected (RFC 2018 §8); back off the RTO
//!      (RFC 6298 §5.5) and go to step 1.
//! 4. **`info()` and `stats()`.** `cc.cwnd()`/`lr.cwnd(cc)`, `cc.ssthresh()`,
//!    `lr.scoreboard().sacked_segments()/lost_segments()`, `lr.rack().reordering_seen()`,
//!    `lr.phase()`; counters from [`sender::RecoveryCounters`] (TCPSackRecovery,
//!    TCPRenoRecovery, TCPLossProbes, TCPLossProbeRecovery, TCPDSACKUndo, TCPLossUndo …),
//!    [`scoreboard::ScoreboardCounters`] (TCPDSACKRecv, TCPSACKDiscard, TCPDSACKIgnoredOld)
//!    and [`crate::cc::CcCounters`] (TCPHystartDelayDetect, TCPHystartDelayCwnd).
//!
//! The order inside `on_ack` follows RFC 6675 §5 (Update(), then loss detection, then
//! entering recovery with RecoveryPoint = HighData, then (C)'s transmissions), RFC 8985 §6.2
//! (RACK steps 1–5) and §7.4 (TLP), and RFC 9937 §6 (RecoverFS at entry, sndcnt per ACK).

// The send side wires these in; until then only the tests use every item.
#![allow(dead_code)]

pub mod prr;
pub mod rack;
mod ranges;
pub mod sack;
pub mod scoreboard;
pub mod sender;
pub mod tlp;
