//! What a connection sends next, and the segment that carries it: SYN or SYN-ACK, a
//! retransmission, new data or FIN, a zero-window probe, a keep-alive, or a pure ACK — with
//! the ACK number, window and options every synchronized segment carries.

use super::send::{Held, Plan, Unsent};
use super::Conn;
use crate::builder::{syn_options, ts_clock};
use crate::recovery::scoreboard::{Retransmit, Rule};
use crate::recovery::sender::Phase;
use crate::recovery::tlp;
use crate::stats::Counter;
use crate::time::Instant;
use crate::timers::Timer;
use crate::FourTuple;
use crate::{Config, State, Stats, TxKind};
use tcpfsm_wire::{Flags, SeqNum, TcpOptions, TcpRepr, Timestamps};

impl Conn {
    /// The next segment this connection wants to send, if any; the send state moves on as if
    /// it were sent.
    /// The next segment to send, with the rest of its payload when the data wraps around the
    /// send ring (the repr's payload is the first piece; see `wire::emit_ip_tcp_split`).
    ///
    /// The segment is handed to `emit` where it was built rather than returned: returned by
    /// value, the segment (its options with four SACK slots, the payload's two pieces) was
    /// moved twice more on its way to the frame writer. With it goes the connection's
    /// `FourTuple`, for the addresses: read before the choice, they were kept (spilled)
    /// across it.
    #[inline(always)]
    pub(crate) fn next_segment<R>(
        &mut self,
        now: Instant,
        cfg: &Config,
        stats: &mut Stats,
        emit: impl FnOnce(&FourTuple, &TcpRepr<'_>, &[u8], TxKind) -> R,
    ) -> Option<R> {
        match self.state {
            State::Closed | State::Listen | State::TimeWait => return None,
            State::SynSent | State::SynReceived if self.snd.syn_pending => {
                let (repr, kind) = self.syn_segment(now, cfg, stats);
                // Nothing follows a SYN before the SYN-ACK.
                self.tx_idle = self.state == State::SynSent;
                return Some(emit(&self.tuple, &repr, &[], kind));
            }
            State::SynSent => return None,
            _ => {}
        }
        // Whether the choice was skipped (or never made): see the pure ACK below.
        let mut skipped = true;
        if self.state != State::SynReceived {
            // Asked once for both the shortcut and the choice.
            let unsent = self.snd.unsent();
            let plan = if !unsent.waiting() && cfg.output_shortcut && self.plan_idle() {
                None
            } else {
                skipped = false;
                self.plan(now, unsent, stats)
            };
            if let Some(plan) = plan {
                return Some(self.data_segment(plan, now, stats, emit));
            }
        }
        if self.probe_due {
            self.probe_due = false;
            let seq = self.snd.probe_seq();
            let repr = self.finish_segment(seq, Flags::ACK, now, stats);
            return Some(emit(&self.tuple, &repr, &[], TxKind::WindowProbe));
        }
        if self.keepalive_due {
            // RFC 1122 §4.2.3.6: SEG.SEQ = SND.NXT-1, so the peer must answer with an ACK.
            self.keepalive_due = false;
            let seq = self.snd.snd_nxt - 1u32;
            let repr = self.finish_segment(seq, Flags::ACK, now, stats);
            return Some(emit(&self.tuple, &repr, &[], TxKind::KeepAlive));
        }
        if self.rcv.ack_pending() {
            let kind = self.rcv.pending_ack_kind();
            let seq = self.snd.snd_nxt;
            let repr = self.finish_segment(seq, Flags::ACK, now, stats);
            // With the choice skipped, the next call would skip it again (sending an ACK
            // changes nothing it looks at), find no probe or keep-alive due and no ACK
            // pending: nothing, whatever the time, until the endpoint hands the connection
            // something (and queues it again).
            self.tx_idle = skipped;
            return Some(emit(&self.tuple, &repr, &[], kind));
        }
        None
    }

    /// What loss recovery sends next: a lost or unSACKed segment again (RFC 6675 NextSeg,
    /// after a timeout the lost ones first), a tail loss probe, or new data if the peer's
    /// window, Nagle and SWS avoidance let it go; arms the persist timer when data waits
    /// that nothing in flight will ever unblock.
    ///
    /// `unsent`: what waits to be sent (`SendSide::unsent`), as it is now.
    fn plan(&mut self, now: Instant, unsent: Unsent, stats: &mut Stats) -> Option<Plan> {
        // Choosing moves a recovery counter only when it sends a retransmission (`on_sent`
        // with a reason) or a loss probe (`on_probe_sent`); ACKs and timeouts sync on their own.
        // Syncing after every plain new segment cost 3–6% of bulk and lifecycle.
        let probing = self.probe_last || self.probe_new_data;
        let plan = self.choose(now, unsent);
        let moved = probing || plan.as_ref().is_some_and(|p| p.kind != TxKind::Normal);
        if moved {
            if let (Some(lr), Some(cc)) = (self.lr.as_mut(), self.cc.as_deref()) {
                lr.sync(cc, stats);
            }
        }
        plan
    }

    /// With no new data or FIN waiting (the caller asks; then `plan_new` says `Held::Idle`:
    /// no persist timer, no cwnd-limited mark), whether `plan` is sure to return `None` and
    /// change nothing, checked without choosing: no loss probe is due and loss recovery has
    /// nothing to resend. Every datagram sent is followed by one more call that finds nothing
    /// (the connection stays at the head of the transmit queue), and that call ran the whole
    /// choice: about a fifth of a lifecycle connection's `choose` instructions.
    fn plan_idle(&self) -> bool {
        if self.probe_last || self.probe_new_data {
            return false;
        }
        match (&self.lr, &self.cc) {
            (Some(lr), Some(_)) => lr.nothing_to_resend(),
            // `choose` has nothing to choose with.
            _ => true,
        }
    }

    fn choose(&mut self, now: Instant, unsent: Unsent) -> Option<Plan> {
        let lr = self.lr.as_mut()?;
        let cc = self.cc.as_deref_mut()?;
        let cwnd = lr.cwnd(cc);
        let pipe = lr.pipe();
        if unsent.waiting() && pipe.saturating_add(self.snd.mss as u32) > cwnd {
            // Data waits for the congestion window (RFC 7661: the window may grow).
            self.cwnd_limited = true;
        }
        let fresh =
            self.snd
                .plan_new_from(unsent, cwnd.saturating_sub(pipe), pipe, self.opts.nodelay);
        if std::mem::take(&mut self.probe_last) {
            if let Some(p) = lr
                .probe_segment()
                .and_then(|(seq, len)| self.snd.plan_retransmit(seq, len))
            {
                lr.on_sent(
                    now,
                    p.seq,
                    p.len + p.fin as u32,
                    Some(Retransmit::Probe),
                    cc,
                );
                lr.on_probe_sent(true);
                self.arm_rto(now);
                return Some(p);
            }
        }
        if self.probe_new_data {
            // RFC 8985 §7.3: the probe is one new segment, whatever the congestion window.
            self.probe_new_data = false;
            if let Ok(p) = self.snd.plan_new(u32::MAX, 0, true) {
                self.snd.commit_new(&p);
                lr.on_sent(now, p.seq, p.len + p.fin as u32, None, cc);
                lr.on_probe_sent(false);
                self.arm_rto(now);
                return Some(Plan {
                    kind: TxKind::Normal,
                    ..p
                });
            }
        }
        let next = lr.next_segment(cwnd, fresh.is_ok());
        let plan = match next {
            Some(n) if n.rule == Rule::NewData => {
                let p = fresh.as_ref().ok().copied()?;
                self.snd.commit_new(&p);
                if self.ts.is_none() && p.len > 0 {
                    self.snd.time_segment(p.seq, now);
                }
                lr.on_sent(now, p.seq, p.len + p.fin as u32, None, cc);
                p
            }
            Some(n) => {
                let p = self.snd.plan_retransmit(n.seq, n.len)?;
                let why = if lr.phase() == Phase::Loss {
                    Retransmit::Timeout
                } else {
                    Retransmit::NextSeg(n.rule)
                };
                lr.on_sent(now, p.seq, p.len + p.fin as u32, Some(why), cc);
                p
            }
            None => {
                if let Err(Held::Stalled) = fresh {
                    // RFC 9293 §3.8.6.1 / §3.8.6.2.1: a persist (or SWS override) timer
                    // runs whenever data waits and nothing is in flight.
                    if !self.timers.armed(Timer::Persist) {
                        let at = now + self.persist_interval();
                        self.timers.set(Timer::Persist, at);
                    }
                }
                return None;
            }
        };
        if plan.kind == TxKind::Normal {
            // RFC 8985 §7.2: after new data the probe timeout replaces the RTO.
            self.arm_pto_or_rto(now);
        } else if !self.timers.armed(Timer::Rtx) || self.pto_armed {
            self.arm_rto(now);
        }
        Some(plan)
    }

    /// The retransmission timer, at the RTO.
    pub(crate) fn arm_rto(&mut self, now: Instant) {
        if !self.snd.outstanding() {
            self.timers.clear(Timer::Rtx);
            self.pto_armed = false;
            return;
        }
        if self.pto_armed || !self.timers.armed(Timer::Rtx) {
            self.timers.set(Timer::Rtx, self.snd.rtt.rto_from(now));
        }
        self.pto_armed = false;
    }

    /// RFC 8985 §7.2: the probe timeout when TLP may probe, the RTO otherwise.
    ///
    /// Inlined, with the full computation out of line: the kept length is the case of
    /// nearly every segment of a burst, and the call around it was a fifth of its cost.
    #[inline]
    pub(crate) fn arm_pto_or_rto(&mut self, now: Instant) {
        if !self.snd.outstanding() {
            self.timers.clear(Timer::Rtx);
            self.pto_armed = false;
            return;
        }
        // While the probe timer is the one armed, the RTO that caps it runs from now too,
        // so the deadline is now + min(PTO, RTO): a length the recovery state keeps while
        // neither it nor the RTT estimate moved — the case of every segment after the first
        // in a burst of new data.
        if self.pto_armed && !self.snd.rtt.changed() {
            if let Some(len) = self.lr.as_ref().and_then(|lr| lr.pto_len_kept()) {
                let at = now.add_micros(len as u64);
                debug_assert_eq!(
                    Some(at),
                    self.lr.as_ref().and_then(|lr| lr.pto_deadline(
                        now,
                        self.snd.rtt.srtt_us(),
                        Some(self.snd.rtt.rto_from(now))
                    ))
                );
                self.timers.set(Timer::Rtx, at);
                return;
            }
        }
        self.arm_pto_or_rto_computed(now);
    }

    /// [`Self::arm_pto_or_rto`] with data in flight, computed and kept.
    #[inline(never)]
    fn arm_pto_or_rto_computed(&mut self, now: Instant) {
        let rto_us = self.snd.rtt.rto_us();
        let rto_at = self
            .timers
            .get(Timer::Rtx)
            .filter(|_| !self.pto_armed)
            .unwrap_or(now.add_micros(rto_us));
        let srtt_us = self.snd.rtt.srtt_us();
        self.snd.rtt.seen();
        let pto = self
            .lr
            .as_mut()
            .and_then(|lr| lr.pto_len_us_kept(srtt_us, rto_us));
        match pto {
            Some(len) => {
                self.timers
                    .set(Timer::Rtx, tlp::pto_expiry(now, len, Some(rto_at)));
                self.pto_armed = true;
            }
            None => {
                self.timers.set(Timer::Rtx, rto_at);
                self.pto_armed = false;
            }
        }
    }

    /// The earliest deadline, for the endpoint's timer queue, which from now on holds it.
    pub(crate) fn take_deadline(&mut self) -> Option<Instant> {
        self.timers.take_moved();
        self.next_deadline()
    }

    /// [`Conn::take_deadline`] if a deadline changed since it was last taken; `None` when
    /// none did (the queue still holds the earliest).
    pub(crate) fn moved_deadline(&mut self) -> Option<Option<Instant>> {
        self.timers.take_moved().then(|| self.next_deadline())
    }

    /// The endpoint's queue no longer holds [`Conn::take_deadline`]'s answer: the next
    /// [`Conn::moved_deadline`] gives it again.
    pub(crate) fn deadline_untaken(&mut self) {
        self.timers.mark_moved();
    }

    /// The persist interval: the RTO, doubled per probe sent while the window stays shut,
    /// capped at the RTO maximum (RFC 9293 §3.8.6.1 "increase exponentially").
    pub(crate) fn persist_interval(&self) -> crate::Duration {
        let base = self.snd.rtt.rto();
        let shift = self.snd.persist_backoff.min(16);
        base.saturating_mul(1 << shift).min(self.snd.rtt.max())
    }

    /// Hands the segment to `emit` (see `next_segment`): returned, it was moved once more.
    #[inline(always)]
    fn data_segment<R>(
        &mut self,
        plan: Plan,
        now: Instant,
        stats: &mut Stats,
        emit: impl FnOnce(&FourTuple, &TcpRepr<'_>, &[u8], TxKind) -> R,
    ) -> R {
        if plan.kind == TxKind::Retransmission {
            stats[Counter::RetransSegs] += 1;
        }
        let mut flags = Flags::ACK;
        if plan.fin {
            flags |= Flags::FIN;
        }
        let end = plan.seq.wrapping_add(plan.len);
        if plan.len > 0 && end == self.snd.data_end() {
            flags |= Flags::PSH;
        }
        let mut repr = self.finish_segment(plan.seq, flags, now, stats);
        // `b` is non-empty when the segment straddles the ring's wrap point: the frame is
        // built from both pieces, never from a joined copy.
        let (a, b) = self.snd.payload(plan.seq, plan.len);
        repr.payload = a;
        emit(&self.tuple, &repr, b, plan.kind)
    }

    fn syn_segment(
        &mut self,
        now: Instant,
        cfg: &Config,
        stats: &mut Stats,
    ) -> (TcpRepr<'static>, TxKind) {
        let is_synack = self.state == State::SynReceived;
        let retransmit = self.snd.snd_nxt != self.snd.iss;
        let offset = self.ts.map_or(0, |t| t.offset);
        let tsecr = if is_synack {
            self.ts.map_or(0, |t| t.recent)
        } else {
            0
        };
        // A connection's SYN-ACK is a simultaneous open's: it repeats the SYN's options, as
        // Linux does (a listener's SYN-ACKs come from its half-open entries).
        let maxseg = (self.opts.mss != 0).then_some(self.opts.mss);
        let options = syn_options(
            cfg,
            maxseg,
            self.rcv.buffer(),
            &self.tuple,
            None,
            ts_clock(now, offset),
            tsecr,
        );
        if retransmit {
            stats[Counter::RetransSegs] += 1;
            self.snd
                .retransmitting(self.snd.iss, self.snd.iss.wrapping_add(1));
        } else if self.ts.is_none() {
            self.snd.time_segment(self.snd.iss, now);
        }
        self.snd.syn_pending = false;
        self.snd.snd_nxt = self.snd.iss.wrapping_add(1);
        if !self.timers.armed(Timer::Rtx) {
            self.timers.set(Timer::Rtx, self.snd.rtt.rto_from(now));
        }
        let window = self.rcv.syn_window();
        self.rcv.acked();
        self.timers.clear(Timer::DelAck);
        stats[Counter::OutSegs] += 1;
        let repr = TcpRepr {
            src_port: self.tuple.local.port(),
            dst_port: self.tuple.remote.port(),
            seq: self.snd.iss,
            ack: if is_synack {
                self.rcv.rcv_nxt
            } else {
                SeqNum(0)
            },
            flags: if is_synack {
                Flags::SYN | Flags::ACK
            } else {
                Flags::SYN
            },
            window,
            urgent: 0,
            options,
            payload: &[],
        };
        let kind = if retransmit {
            TxKind::Retransmission
        } else {
            TxKind::Normal
        };
        (repr, kind)
    }

    /// Fills in ACK, window and options common to every segment of a synchronized connection.
    #[inline(always)]
    fn finish_segment(
        &mut self,
        seq: SeqNum,
        flags: Flags,
        now: Instant,
        stats: &mut Stats,
    ) -> TcpRepr<'static> {
        let window = self.rcv.advertise(self.snd.mss);
        // The segment first, the bookkeeping after: built in one go, the SACK blocks are
        // written straight into it rather than into a local options copied over later
        // (about 40 instructions a data segment; bulk −1.8%).
        let mut repr = TcpRepr {
            src_port: self.tuple.local.port(),
            dst_port: self.tuple.remote.port(),
            seq,
            ack: self.rcv.rcv_nxt,
            flags,
            window,
            urgent: 0,
            options: TcpOptions {
                timestamps: self.ts.map(|ts| Timestamps {
                    tsval: ts_clock(now, ts.offset),
                    tsecr: ts.recent,
                }),
                ..TcpOptions::default()
            },
            payload: &[],
        };
        if self.sack {
            // RFC 2018 §3: four blocks fit in the option space, three beside timestamps.
            let max = if self.ts.is_some() { 3 } else { 4 };
            self.rcv.sack_blocks(max, &mut repr.options.sack_blocks);
        }
        self.rcv.acked();
        self.timers.clear(Timer::DelAck);
        stats[Counter::OutSegs] += 1;
        repr
    }
}
