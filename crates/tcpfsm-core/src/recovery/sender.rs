//! [`LossRecovery`]: the scoreboard, RACK-TLP, PRR and a congestion controller wired together
//! in the order the RFCs prescribe, so the send side holds one object and calls it at five
//! points (see the module docs of [`crate::recovery`]).
//!
//! Phases follow Linux's `tcp_ca_state`: `Open` (nothing outstanding is suspect), `Recovery`
//! (fast recovery, RFC 6675 §5 with PRR), `Loss` (after an RTO, RFC 6675 §5.1).

use super::prr::{Bound, Prr};
use super::rack::{Rack, RackConfig};
use super::sack::SackBlock;
use super::scoreboard::{Dsack, NextSeg, Retransmit, Rule, Scoreboard};
use super::tlp::{self, Tlp, TlpOutcome};
use crate::cc::{AckEvent, CongestionControl, CongestionEvent, CongestionKind};
use crate::time::{micros, Duration, Instant};
use tcpfsm_wire::SeqNum;

/// Loss-recovery settings, Linux's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryConfig {
    /// The peer agreed to SACK (RFC 2018). Without it, duplicate ACKs are counted (RFC 5681
    /// §3.2) and each stands for one delivered segment, as Linux's Reno emulation.
    pub sack: bool,
    /// RACK marks losses (RFC 8985, Linux `tcp_recovery=1`); otherwise RFC 6675 IsLost().
    pub rack: bool,
    /// Tail loss probes (RFC 8985 §7; Linux `tcp_early_retrans=3`).
    pub tlp: bool,
    pub prr_bound: Bound,
    /// Undo a reduction shown spurious by D-SACK (RFC 3708) or timestamps (RFC 3522).
    pub undo: bool,
    pub rack_config: RackConfig,
    /// WCDelAckT for the PTO (RFC 8985 §7.2).
    pub max_ack_delay: Duration,
    /// Let [`LossRecovery::on_ack`] skip the steps an ACK provably leaves unchanged (see
    /// `is_idle_ack`). On by default; only the differential tests that hold the shortcut equal
    /// to the full steps turn it off. Not a tuning knob.
    #[doc(hidden)]
    pub shortcuts: bool,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            sack: true,
            rack: true,
            tlp: true,
            prr_bound: Bound::Rfc9937,
            undo: true,
            rack_config: RackConfig::default(),
            max_ack_delay: tlp::WC_DEL_ACK_T,
            shortcuts: true,
        }
    }
}

/// Where the connection is in loss recovery (Linux `tcp_ca_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Open,
    /// Fast recovery (RFC 6675 §5, RFC 9937).
    Recovery,
    /// RTO recovery (RFC 6675 §5.1).
    Loss,
}

/// Counters for `stats()`, with Linux's TcpExt names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RecoveryCounters {
    /// Fast recoveries with SACK (`TCPSackRecovery`).
    pub sack_recovery: u64,
    /// Fast recoveries without SACK (`TCPRenoRecovery`).
    pub reno_recovery: u64,
    /// Loss probes sent (`TCPLossProbes`).
    pub loss_probes: u64,
    /// Losses repaired by a probe (`TCPLossProbeRecovery`).
    pub loss_probe_recovery: u64,
    /// Fast recoveries undone by D-SACK (`TCPDSACKUndo`).
    pub dsack_undo: u64,
    /// Recoveries undone by timestamps (`TCPPartialUndo`/`TCPFullUndo` in Linux).
    pub ts_undo: u64,
    /// RTO recoveries undone (`TCPLossUndo`); each is a spurious RTO (`TCPSpuriousRTOs`).
    pub loss_undo: u64,
    /// Fast retransmissions (`TCPFastRetrans`).
    pub fast_retrans: u64,
    /// Retransmissions after an RTO (`TCPLossRetrans`... Linux `TCPSlowStartRetrans`).
    pub timeout_retrans: u64,
    /// Reordering detected by RACK (`TCPSACKReorder`).
    pub reordering: u64,
}

/// One ACK as the send side parsed it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AckInput<'a> {
    pub now: Instant,
    pub ack: SeqNum,
    /// SACK blocks in the order carried.
    pub blocks: &'a [SackBlock],
    /// The RTT sample from this ACK (RFC 6298 with Karn's rule, or RFC 7323), if any.
    pub rtt: Option<Duration>,
    /// SRTT after the sample.
    pub srtt: Option<Duration>,
    /// The send time the ACK's TSecr echoes, with timestamps on: the start of the TSval
    /// clock tick it names, so the echoed segment left in `[echo, echo + echo_tick)`.
    pub echo: Option<Instant>,
    /// The TSval clock's granularity (the engine's: 1 ms). Comparisons of `echo` with a send
    /// time count as "before" only when the whole tick is, as Linux compares TSecr with
    /// `retrans_stamp` in timestamp units (`tcp_packet_delayed`): otherwise an echo of the
    /// retransmission itself, read back with up to a tick of rounding, would look older.
    pub echo_tick: Duration,
    /// A duplicate ACK by RFC 5681 §2 (no data, same window, SND.UNA unchanged, data out).
    pub dupack: bool,
    /// The sender was cwnd-limited since the last ACK (RFC 7661).
    pub cwnd_limited: bool,
}

impl<'a> AckInput<'a> {
    pub fn new(now: Instant, ack: SeqNum, blocks: &'a [SackBlock]) -> AckInput<'a> {
        AckInput {
            now,
            ack,
            blocks,
            rtt: None,
            srtt: None,
            echo: None,
            echo_tick: Duration::from_millis(1),
            dupack: false,
            cwnd_limited: true,
        }
    }
}

/// What an ACK (or the reordering timer) changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AckResult {
    pub acked_bytes: u32,
    pub delivered_bytes: u32,
    pub entered_recovery: bool,
    pub exited_recovery: bool,
    /// A reduction was undone.
    pub undone: bool,
    pub dsack: Option<Dsack>,
    /// Segments newly marked lost.
    pub lost: u32,
    /// Arm (or disarm, `None`) the RACK reordering timer.
    pub reorder_timer: Option<Instant>,
    /// The ACK took the idle shortcut: no counter moved and the congestion controller was
    /// not called, so the caller need not look for new counts.
    pub(crate) idle: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Undo {
    /// Retransmissions sent in this episode not yet shown spurious (RFC 3708).
    retrans: u32,
    any_retrans: bool,
    /// When the episode began: only D-SACKs of retransmissions sent since then count
    /// towards its undo (Linux counts a D-SACK only above `undo_marker`).
    since: Option<Instant>,
    /// When the oldest retransmission still outstanding left, whichever phase sent it
    /// (RFC 3522's comparison point; Linux `retrans_stamp`, kept until no retransmission
    /// is outstanding). Were it reset at each episode, a cumulative ACK for a hole that a
    /// retransmission sent before the episode filled would echo an "older" timestamp and
    /// undo a real reduction.
    first_rtx: Option<Instant>,
}

/// Loss recovery for one connection's send side.
#[derive(Debug, Clone)]
pub struct LossRecovery {
    cfg: RecoveryConfig,
    /// `cfg.max_ack_delay` in microseconds, for the PTO of every segment sent.
    max_ack_delay_us: u64,
    mss: u32,
    sb: Scoreboard,
    rack: Rack,
    tlp: Tlp,
    prr: Option<Prr>,
    phase: Phase,
    undo: Undo,
    /// RFC 6675 §5.1: after an RTO no new recovery starts before HighACK reaches this.
    rto_point: Option<SeqNum>,
    dupacks: u32,
    /// Non-SACK: bytes the duplicate ACKs stand for (Linux `tcp_add_reno_sack`).
    reno_sacked: u32,
    reorder_timer: Option<Instant>,
    counters: RecoveryCounters,
    /// The probe timeout's length as last computed for the connection (by
    /// [`Self::pto_len_us_kept`], capped at the RTO), while nothing it depends on here has
    /// moved: every method that can change the flight size, the segment count, the SACKed
    /// count or the phase drops it — all but `on_sent` of new data, which only adds a
    /// segment to a flight it keeps non-empty (the length is kept only with more than one
    /// segment out, so the one-segment rule cannot flip). `next_segment`, the idle ACK
    /// shortcut and `on_probe_sent` change none of them.
    /// The connection re-arms the probe timer for every segment sent (RFC 8985 §7.2), and
    /// recomputing it cost about 60 instructions a segment in bulk transfer.
    pto_kept: Option<u32>,
}

impl LossRecovery {
    pub fn new(cfg: RecoveryConfig, snd_una: SeqNum, mss: u32) -> LossRecovery {
        LossRecovery {
            cfg,
            max_ack_delay_us: micros(cfg.max_ack_delay),
            mss: mss.max(1),
            sb: Scoreboard::new(snd_una, mss),
            rack: Rack::new(cfg.rack_config),
            tlp: Tlp::new(),
            prr: None,
            phase: Phase::Open,
            undo: Undo::default(),
            rto_point: None,
            dupacks: 0,
            reno_sacked: 0,
            reorder_timer: None,
            counters: RecoveryCounters::default(),
            pto_kept: None,
        }
    }

    /// Takes a finished connection's collections for this new state, so a short connection
    /// allocates none (the endpoint keeps finished connections' recovery state).
    pub(crate) fn adopt_storage(&mut self, old: &mut LossRecovery) {
        self.pto_kept = None;
        self.sb.adopt_storage(&mut old.sb);
        self.rack.adopt_storage(&mut old.rack);
    }

    /// Whether the collections are small enough to keep for a new connection (a bulk
    /// connection's scoreboard can hold thousands of segments).
    pub(crate) fn storage_is_small(&self) -> bool {
        self.sb.storage_is_small() && self.rack.storage_is_small()
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn scoreboard(&self) -> &Scoreboard {
        &self.sb
    }

    pub fn rack(&self) -> &Rack {
        &self.rack
    }

    pub fn counters(&self) -> RecoveryCounters {
        let t = self.tlp.counters();
        RecoveryCounters {
            loss_probes: t.probes,
            loss_probe_recovery: t.recoveries,
            ..self.counters
        }
    }

    /// RFC 6675 pipe, less what non-SACK duplicate ACKs stand for. The send side may send
    /// while `pipe() + SMSS ≤ cwnd(cc)` — which is also Limited Transmit (RFC 3042).
    pub fn pipe(&self) -> u32 {
        self.sb.pipe().saturating_sub(self.reno_sacked)
    }

    /// The window in force: PRR's during fast recovery, the controller's otherwise.
    pub fn cwnd(&self, cc: &dyn CongestionControl) -> u32 {
        match (&self.prr, self.phase) {
            (Some(p), Phase::Recovery) if p.cwnd() > 0 => p.cwnd(),
            _ => cc.cwnd(),
        }
    }

    /// The reordering timer to arm, if any.
    pub fn reorder_timer(&self) -> Option<Instant> {
        self.reorder_timer
    }

    fn in_recovery(&self) -> bool {
        self.phase != Phase::Open
    }

    // ------------------------------------------------------------ transmissions

    /// What to send next, given the window and whether unsent data may go (peer window,
    /// Nagle): RFC 6675 NextSeg() during fast recovery; lost segments first, then new data,
    /// after an RTO; new data otherwise.
    pub fn next_segment(&mut self, cwnd: u32, new_data: bool) -> Option<NextSeg> {
        if self.pipe().saturating_add(self.mss) > cwnd {
            return None;
        }
        match self.phase {
            // With RACK, only segments marked lost are retransmitted, as Linux's
            // `tcp_xmit_retransmit_queue`: RFC 6675's rule 3 (any unSACKed segment when no new
            // data may go) and rule 4 (the rescue retransmission) guess, and RACK's timer and
            // the loss probe cover what they were for. A trace with the peer's window full
            // showed rule 3 resending segments still queued at the bottleneck.
            Phase::Recovery => match self.sb.next_seg(new_data) {
                Some(n) if self.cfg.rack && matches!(n.rule, Rule::Unsacked | Rule::Rescue) => None,
                n => n,
            },
            _ => match self.sb.next_lost() {
                Some(n) => Some(n),
                _ if new_data => Some(NextSeg {
                    rule: Rule::NewData,
                    seq: self.sb.snd_nxt(),
                    len: 0,
                }),
                _ => None,
            },
        }
    }

    /// Whether `next_segment(_, false)` is sure to offer nothing: outside fast recovery it
    /// offers only NextSeg rule 1 (a segment marked lost and not yet resent), and none is.
    /// During recovery rules 3 and 4 may offer one, so this says no.
    pub fn nothing_to_resend(&self) -> bool {
        self.phase != Phase::Recovery && self.sb.lost_pending() == 0
    }

    /// A segment left: new data at SND.NXT, or a retransmission (`why`).
    ///
    /// Inlined into its callers (one per kind of segment sent): as a call, entering and
    /// leaving it was a quarter of its 82 instructions per segment in bulk transfer.
    #[inline(always)]
    pub fn on_sent(
        &mut self,
        now: Instant,
        seq: SeqNum,
        len: u32,
        why: Option<Retransmit>,
        cc: &mut dyn CongestionControl,
    ) {
        cc.on_sent(now, len, self.sb.flight_size());
        let order = match why {
            None => self.sb.on_new_data(now, seq, len),
            Some(w) => self.sb.on_retransmit(now, seq, len, w),
        };
        let Ok(order) = order else {
            return;
        };
        self.rack.on_transmit(now, order, seq, seq + len);
        if let Some(p) = &mut self.prr {
            p.on_sent(len);
        }
        if let Some(w) = why {
            // A retransmission may split segments (see `pto_kept`).
            self.pto_kept = None;
            if self.in_recovery() {
                self.undo.retrans += 1;
                self.undo.any_retrans = true;
            }
            self.undo.first_rtx.get_or_insert(now);
            match w {
                Retransmit::Timeout => self.counters.timeout_retrans += 1,
                Retransmit::NextSeg(_) => self.counters.fast_retrans += 1,
                Retransmit::Probe => {}
            }
        }
    }

    // ------------------------------------------------------------ ACKs

    /// Processes one ACK: RFC 6675 §5 Update(), RACK steps 1–5, TLP §7.4, D-SACK and
    /// timestamp undo, entering and leaving recovery, PRR or window growth.
    pub fn on_ack(&mut self, a: &AckInput<'_>, cc: &mut dyn CongestionControl) -> AckResult {
        self.pto_kept = None;
        let has_blocks = !a.blocks.is_empty();
        if let Some(r) = self.try_idle_ack(a.ack, has_blocks, a.rtt.is_some(), a.dupack) {
            return r;
        }
        self.on_ack_steps(a, cc)
    }

    /// [`Self::on_ack`]'s idle shortcut alone, from the few fields of the ACK it looks at:
    /// `Some` when it applies (and was taken), `None` when the caller must build the
    /// [`AckInput`] and call `on_ack`. A receiver calls this for every data segment, and
    /// building the input first (the SACK blocks copied, the echoed send time computed) was
    /// about 70 of the ~300 instructions its ACK field cost per segment in bulk transfer.
    #[inline]
    pub(crate) fn try_idle_ack(
        &mut self,
        ack: SeqNum,
        has_blocks: bool,
        has_rtt: bool,
        dupack: bool,
    ) -> Option<AckResult> {
        (self.cfg.shortcuts && self.is_idle_ack(ack, has_blocks, has_rtt, dupack))
            .then(|| self.on_idle_ack())
    }

    /// An ACK that acknowledges nothing, carries no SACK block (or SACK is off), yields no RTT
    /// sample and is no duplicate ACK, while nothing is outstanding, the phase is Open, no
    /// loss probe is out and no reordering timer runs: what a receiver sees on every data
    /// segment it is sent, and a sender on a window update. Every step of
    /// [`Self::on_ack_steps`] is then a no-op but two, which [`Self::on_idle_ack`] performs:
    /// - Update() (RFC 6675 §5): SND.UNA does not move and there is no block to apply, so no
    ///   segment is delivered and RACK steps 1–3 see nothing; DeliveredData is 0.
    /// - RACK step 4 (`Rack::end_ack`) may still close a D-SACK round that SND.UNA passed:
    ///   that is kept.
    /// - Without SACK: not a duplicate ACK and nothing acknowledged, so the counts stand.
    /// - TLP §7.4: no probe outstanding, nothing to judge.
    /// - Undo: both rules need a D-SACK or acknowledged bytes.
    /// - Loss marking: RACK (step 5) and IsLost find no segment, so the reordering timer
    ///   stays disarmed; the third-duplicate-ACK rule's `mark_lost` finds none either.
    /// - Recovery exit needs phase Recovery or Loss; entry needs a segment marked lost.
    /// - No retransmission is outstanding in Open, so RFC 3522's comparison point is
    ///   cleared (kept, though the ACK that emptied the flight already cleared it).
    /// - The window grows only on delivered data: the controller is not called.
    #[inline]
    fn is_idle_ack(&self, ack: SeqNum, has_blocks: bool, has_rtt: bool, dupack: bool) -> bool {
        self.sb.flight_size() == 0
            && ack == self.sb.snd_una()
            && (!has_blocks || !self.cfg.sack)
            && !has_rtt
            && !dupack
            && self.phase == Phase::Open
            && self.rto_point.is_none()
            && self.tlp.outstanding().is_none()
            && self.reorder_timer.is_none()
    }

    /// What [`Self::on_ack_steps`] changes for an ACK [`Self::is_idle_ack`] accepts.
    #[inline]
    fn on_idle_ack(&mut self) -> AckResult {
        // Only `on_ack_steps` delivers segments to RACK, and it always ends the ACK.
        self.rack.end_idle_ack(self.sb.snd_una(), self.sb.snd_nxt());
        self.undo.first_rtx = None;
        AckResult {
            idle: true,
            ..AckResult::default()
        }
    }

    /// [`Self::on_ack`]'s steps in full.
    fn on_ack_steps(&mut self, a: &AckInput<'_>, cc: &mut dyn CongestionControl) -> AckResult {
        let mut r = AckResult::default();
        if let Some(rtt) = a.rtt {
            self.rack.on_rtt_sample(a.now, rtt);
            self.tlp.on_rtt_sample();
        }
        let was_una = self.sb.snd_una();
        let rack = &mut self.rack;
        // The latest the echoed segment can have left (see `AckInput::echo_tick`).
        let (now, echo) = (a.now, a.echo.map(|e| e + a.echo_tick));
        // Without SACK negotiated, blocks are not to be trusted (RFC 2018 §2).
        let blocks = if self.cfg.sack { a.blocks } else { &[] };
        let out = self
            .sb
            .on_ack(a.ack, blocks, |d| rack.on_delivered(d, now, echo));
        let reordering = self.rack.reordering_seen();
        self.rack
            .end_ack(out.dsack.is_some(), self.sb.snd_una(), self.sb.snd_nxt());
        if self.rack.reordering_seen() && !reordering {
            self.counters.reordering += 1;
        }
        if out.dsack.is_some_and(|d| d.retransmission.is_some()) {
            // Our retransmission was a duplicate: the "loss" was reordering or delay.
            self.rack.on_spurious_retransmit();
        }
        r.acked_bytes = out.acked_bytes;
        r.delivered_bytes = out.delivered_bytes;
        r.dsack = out.dsack;
        let mss = self.mss;

        // Non-SACK: duplicate ACKs stand for delivered segments (RFC 5681 §3.2).
        if !self.cfg.sack {
            if out.acked_bytes > 0 {
                self.dupacks = 0;
                self.reno_sacked = self
                    .reno_sacked
                    .saturating_sub(out.acked_bytes.saturating_sub(mss));
            } else if a.dupack {
                self.dupacks += 1;
                let cap = self.sb.flight_size().saturating_sub(mss);
                self.reno_sacked = (self.reno_sacked + mss).min(cap);
                r.delivered_bytes = mss;
            }
        }

        // RFC 8985 §7.4: what the ACK says about an outstanding loss probe.
        let dsack_range = out.dsack.map(|d| (d.start, d.end));
        let has_sack = !blocks.is_empty();
        match self.tlp.on_ack(a.ack, dsack_range, has_sack, a.dupack) {
            TlpOutcome::LossRepaired if self.phase == Phase::Open => {
                // The probe repaired a tail loss: reduce as for any loss, no recovery needed.
                let ev = CongestionEvent::new(
                    a.now,
                    CongestionKind::Loss,
                    self.sb.flight_size() + out.acked_bytes,
                    mss,
                );
                cc.on_congestion_event(&ev);
                cc.on_recovery_exit(a.now, self.sb.flight_size(), mss);
            }
            _ => {}
        }

        // Undo (RFC 3708: every retransmission of the episode D-SACKed, which may arrive
        // after recovery ended; RFC 3522: the ACK covering the first retransmission echoes a
        // timestamp older than it). The record lasts until the next episode.
        if self.cfg.undo && self.undo.any_retrans {
            let ours = out
                .dsack
                .and_then(|d| d.retransmission)
                .is_some_and(|r| self.undo.since.is_some_and(|s| r.xmit_ts >= s));
            if ours {
                self.undo.retrans = self.undo.retrans.saturating_sub(1);
            }
            let by_dsack = ours && self.undo.retrans == 0;
            // The echoed segment left before the first retransmission even at the end of its
            // timestamp tick, and no retransmission is still in flight: a hole filled by a
            // delayed original says nothing about the other holes whose retransmissions are
            // out (Linux `tcp_try_undo_partial` undoes only with `retrans_out == 0`). Without
            // that, an original delayed by reordering undid the reduction of a real loss.
            let by_ts = self.in_recovery()
                && out.acked_bytes > 0
                && self.sb.retrans_bytes() == 0
                && matches!((a.echo, self.undo.first_rtx), (Some(e), Some(f)) if e + a.echo_tick <= f);
            if by_dsack || by_ts {
                self.undo_reduction(a.now, by_dsack, cc);
                r.undone = true;
            }
        }

        // Loss marking: RACK step 5, or RFC 6675 IsLost; without SACK the third duplicate
        // ACK, and during NewReno recovery each partial ACK (RFC 6582 §3.2 step 5).
        let in_rec = self.in_recovery();
        if self.cfg.rack && self.cfg.sack {
            let loss = self.rack.detect_loss(&mut self.sb, a.now, in_rec, a.srtt);
            r.lost += loss.lost;
            self.reorder_timer = loss.timer;
        } else if self.cfg.sack {
            r.lost += self.sb.mark_dupthresh_losses();
        } else {
            // A partial ACK: SND.UNA advanced but not to the recovery point.
            let partial = self.phase == Phase::Recovery
                && out.acked_bytes > 0
                && self
                    .sb
                    .recovery_point()
                    .is_some_and(|p| self.sb.snd_una().lt(p));
            if (self.dupacks == 3 && self.phase == Phase::Open) || partial {
                r.lost += u32::from(self.sb.mark_lost(self.sb.snd_una()));
            }
        }
        r.reorder_timer = self.reorder_timer;

        // Leaving recovery (RFC 6675 §5 (A), §5.1).
        let una = self.sb.snd_una();
        match self.phase {
            Phase::Recovery if self.sb.recovery_point().is_some_and(|p| una.ge(p)) => {
                self.exit_recovery(a.now, cc);
                r.exited_recovery = true;
            }
            Phase::Loss if self.rto_point.is_some_and(|p| una.ge(p)) => {
                self.phase = Phase::Open;
                self.rack.on_recovery_exit();
                r.exited_recovery = true;
            }
            _ => {}
        }
        if self.rto_point.is_some_and(|p| una.ge(p)) {
            self.rto_point = None;
        }
        if self.phase == Phase::Open && self.sb.retrans_bytes() == 0 {
            // No retransmission outstanding: the next one starts a new comparison point
            // (Linux clears `retrans_stamp` in `tcp_try_to_open`).
            self.undo.first_rtx = None;
        }

        // Entering fast recovery on a detected loss (RFC 6675 §5 step 4).
        if self.phase == Phase::Open
            && self.rto_point.is_none()
            && self.sb.lost_segments() > 0
            && !r.undone
        {
            self.enter_recovery(a.now, out.newly_sacked_bytes, out.acked_bytes, cc);
            r.entered_recovery = true;
        }

        match self.phase {
            Phase::Recovery => {
                // RFC 9937 §6.2. SafeACK: SND.UNA advanced and no further loss was marked.
                let safe = una.gt(was_una) && r.lost == 0;
                let pipe = self.pipe();
                if let Some(p) = &mut self.prr {
                    p.on_ack(r.delivered_bytes, pipe, safe);
                }
            }
            // RTO recovery grows the window too: slow start from the loss window.
            Phase::Open | Phase::Loss if r.delivered_bytes > 0 && !r.exited_recovery => {
                let mut ev = AckEvent::new(a.now, r.delivered_bytes, mss, una, self.sb.snd_nxt());
                ev.rtt = a.rtt;
                ev.srtt = a.srtt;
                ev.min_rtt = self.rack.min_rtt();
                ev.in_flight = self.pipe();
                ev.cwnd_limited = a.cwnd_limited;
                cc.on_ack(&ev);
            }
            _ => {}
        }
        r
    }

    fn enter_recovery(
        &mut self,
        now: Instant,
        newly_sacked: u32,
        newly_acked: u32,
        cc: &mut dyn CongestionControl,
    ) {
        let flight = self.sb.flight_size();
        cc.on_congestion_event(&CongestionEvent::new(
            now,
            CongestionKind::Loss,
            flight,
            self.mss,
        ));
        self.sb.enter_recovery();
        self.phase = Phase::Recovery;
        self.undo = Undo {
            retrans: 0,
            any_retrans: false,
            since: Some(now),
            first_rtx: self.undo.first_rtx,
        };
        self.prr = Some(Prr::start(
            self.cfg.prr_bound,
            cc.ssthresh(),
            flight,
            self.sb.sacked_bytes(),
            newly_sacked,
            newly_acked,
            self.mss,
        ));
        self.tlp.on_rto();
        if self.cfg.sack {
            self.counters.sack_recovery += 1;
        } else {
            self.counters.reno_recovery += 1;
        }
    }

    fn exit_recovery(&mut self, now: Instant, cc: &mut dyn CongestionControl) {
        self.phase = Phase::Open;
        self.prr = None;
        self.sb.exit_recovery();
        self.rack.on_recovery_exit();
        cc.on_recovery_exit(now, self.pipe(), self.mss);
    }

    fn undo_reduction(&mut self, now: Instant, by_dsack: bool, cc: &mut dyn CongestionControl) {
        cc.on_spurious(now);
        if self.phase == Phase::Recovery {
            self.rack.on_recovery_exit();
        }
        match (self.phase, by_dsack) {
            (Phase::Loss, _) => self.counters.loss_undo += 1,
            (Phase::Open, _) => self.counters.dsack_undo += 1,
            (_, true) => self.counters.dsack_undo += 1,
            (_, false) => self.counters.ts_undo += 1,
        }
        // The episode is over; segments still marked lost will be retransmitted as usual.
        self.phase = Phase::Open;
        self.prr = None;
        self.sb.exit_recovery();
        self.rto_point = None;
        self.undo = Undo {
            first_rtx: self.undo.first_rtx,
            ..Undo::default()
        };
    }

    // ------------------------------------------------------------ timers

    /// The RACK reordering timer fired (RFC 8985 §6.3): detect losses again; a loss starts
    /// fast recovery.
    pub fn on_reorder_timer(
        &mut self,
        now: Instant,
        srtt: Option<Duration>,
        cc: &mut dyn CongestionControl,
    ) -> AckResult {
        self.pto_kept = None;
        let in_rec = self.in_recovery();
        let loss = self.rack.detect_loss(&mut self.sb, now, in_rec, srtt);
        self.reorder_timer = loss.timer;
        let mut r = AckResult {
            lost: loss.lost,
            reorder_timer: loss.timer,
            ..AckResult::default()
        };
        if loss.lost > 0 && self.phase == Phase::Open && self.rto_point.is_none() {
            self.enter_recovery(now, 0, 0, cc);
            // No ACK delivered anything: the first PRR share still allows the retransmission.
            let pipe = self.pipe();
            if let Some(p) = &mut self.prr {
                p.on_ack(self.mss, pipe, false);
            }
            r.entered_recovery = true;
        }
        r
    }

    /// The retransmission timer fired (RFC 6298 §5.4–5.7, RFC 6675 §5.1, RFC 8985 §6.3).
    /// `first` is false for a repeated timeout of the same retransmission: ssthresh is then
    /// held (RFC 5681 §3.1). `clear_sacked` discards SACK state (RFC 2018 §8 reneging).
    pub fn on_rto(
        &mut self,
        now: Instant,
        srtt: Option<Duration>,
        first: bool,
        clear_sacked: bool,
        cc: &mut dyn CongestionControl,
    ) {
        self.pto_kept = None;
        if first {
            cc.on_rto(now, self.sb.flight_size(), self.mss);
        }
        if self.cfg.rack && self.cfg.sack {
            self.rack
                .mark_losses_on_rto(&mut self.sb, now, srtt, clear_sacked);
        } else {
            self.sb.mark_lost_on_rto(None, clear_sacked);
        }
        self.sb.exit_recovery();
        self.prr = None;
        self.tlp.on_rto();
        self.reorder_timer = None;
        self.reno_sacked = 0;
        self.dupacks = 0;
        if self.phase != Phase::Loss {
            self.undo = Undo {
                since: Some(now),
                first_rtx: self.undo.first_rtx,
                ..Undo::default()
            };
        }
        self.phase = Phase::Loss;
        self.rto_point = Some(self.sb.snd_nxt());
    }
}

#[cfg(test)]
mod differential;
mod probe;
#[cfg(test)]
mod tests;
