//! RFC 9293 §3.10.7.3 (SYN-SENT) and §3.10.7.4 (synchronized states) for a connection. The
//! shared first steps — PAWS, sequence, RST, SYN — are `arrival::gate`.

use super::recv::Text;
use super::{Conn, Ctx, Owner};
use crate::arrival::{gate, paws_rejects, ts_recent_update, Gate, RcvView, Unacceptable};
use crate::builder::{ts_clock, CtlSegment, PeerSyn};
use crate::ratelimit::exempt;
use crate::recovery::sack::SackBlock;
use crate::recovery::sender::AckInput;
use crate::stats::Counter;
use crate::time::Duration;
use crate::timers::Timer;
use crate::{Cause, ConnError, Event, State, TxKind};
use tcpfsm_wire::{Flags, SeqNum, TcpRepr};

impl Conn {
    pub(crate) fn on_segment(&mut self, seg: &TcpRepr<'_>, ctx: &mut Ctx<'_>) {
        match self.state {
            State::Established if ctx.cfg.header_prediction => {
                if let Some(window) = self.predicted(seg, ctx.now) {
                    self.on_segment_predicted(seg, window, ctx);
                } else {
                    self.on_segment_synchronized(seg, ctx);
                }
            }
            State::SynSent => self.on_segment_syn_sent(seg, ctx),
            State::Closed | State::Listen | State::TimeWait => {}
            _ => self.on_segment_synchronized(seg, ctx),
        }
    }

    fn on_segment_syn_sent(&mut self, seg: &TcpRepr<'_>, ctx: &mut Ctx<'_>) {
        let f = seg.flags;
        let iss = self.snd.iss;
        // First: check the ACK bit.
        if f.contains(Flags::ACK) && (seg.ack.le(iss) || seg.ack.gt(self.snd.snd_nxt)) {
            if !f.contains(Flags::RST) && ctx.ctl.push(CtlSegment::rst(self.tuple, seg.ack)) {
                ctx.stats[Counter::OutRsts] += 1;
            }
            return;
        }
        // Second: the RST bit. Acceptable only with an ACK of our SYN (RFC 5961 §3.2 for
        // SYN-SENT: the ACK check above already vouched for it).
        if f.contains(Flags::RST) {
            if f.contains(Flags::ACK) {
                self.fail(ConnError::Refused, Cause::ResetReceived, ctx);
            }
            return;
        }
        // Fourth: the SYN bit.
        if !f.contains(Flags::SYN) {
            return;
        }
        let ts_offset = self.ts.map_or(0, |t| t.offset);
        self.negotiate(
            seg.seq,
            PeerSyn::from_options(&seg.options),
            ts_offset,
            ctx.now,
            ctx.cfg,
        );
        if f.contains(Flags::ACK) {
            self.snd.snd_una = seg.ack;
            self.snd.snd_wnd = self.snd.offered_window(seg);
            self.snd.max_snd_wnd = self.snd.snd_wnd;
            self.snd.snd_wl1 = seg.seq;
            self.snd.snd_wl2 = seg.ack;
            self.take_rtt_sample(seg, ctx);
            self.handshake_done(ctx);
            self.rcv.ack_at_once(TxKind::Normal);
            // RFC 9293: "continue processing at the sixth step below where the URG bit is
            // checked" — data and FIN carried by the SYN-ACK.
            self.process_text_and_fin(seg, ctx);
        } else {
            // Simultaneous open: <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>.
            self.snd.syn_pending = true;
            self.set_state(State::SynReceived, Cause::SimultaneousOpen, ctx);
        }
    }

    /// Our SYN is acknowledged: stop its timer and become ESTABLISHED.
    fn handshake_done(&mut self, ctx: &mut Ctx<'_>) {
        self.timers.clear(Timer::Rtx);
        self.start_recovery(ctx.cfg, ctx.spare);
        self.snd.retries = 0;
        self.snd.rtt.reset_backoff();
        self.snd.syn_pending = false;
        self.set_state(State::Established, Cause::HandshakeAcked, ctx);
    }

    fn view(&self) -> RcvView {
        RcvView {
            rcv_nxt: self.rcv.rcv_nxt,
            rcv_wnd: self.rcv.rcv_wnd(),
            ts_recent: self.ts.map(|t| (t.recent, t.recent_at)),
        }
    }

    /// Header prediction (Linux `tcp_rcv_established`, after Van Jacobson): in ESTABLISHED,
    /// the segment the connection expects — only ACK (PSH allowed), SEG.SEQ = RCV.NXT,
    /// SND.UNA ≤ SEG.ACK ≤ SND.NXT, a timestamp PAWS lets through, and no FIN from the peer
    /// yet (ours is not queued either: CLOSE and SHUTDOWN leave ESTABLISHED). For such a
    /// segment every check of RFC 9293 §3.10.7.4 before the ACK field is known to pass (the
    /// sequence test — SEG.SEQ = RCV.NXT is acceptable whatever the window, and a zero window
    /// lets it through for its ACK — RST, SYN, the RFC 5961 §5.2 ACK tests), and nothing
    /// after the text applies (FIN, FIN_WAIT_1's ACK of our FIN). Unlike Linux's, this path
    /// runs the same ACK-field and text helpers as the full one, so it need not also require
    /// an unchanged window, no SACK blocks or text that fits: those helpers handle them.
    /// Returns the window the segment offers, or None to take the full steps.
    fn predicted(&self, seg: &TcpRepr<'_>, now: crate::Instant) -> Option<u32> {
        let (snd, rcv) = (&self.snd, &self.rcv);
        let mut flags = seg.flags;
        flags.remove(Flags::PSH);
        if flags != Flags::ACK
            || seg.seq != rcv.rcv_nxt
            || seg.ack.lt(snd.snd_una)
            || seg.ack.gt(snd.snd_nxt)
            || rcv.peer_fin_seen()
            || paws_rejects(seg, self.ts.map(|t| (t.recent, t.recent_at)), now)
        {
            return None;
        }
        Some(snd.offered_window(seg))
    }

    /// The predicted segment: what `on_segment_synchronized` would do with it, without the
    /// checks `predicted` proved passing — the same helpers, in the same order.
    fn on_segment_predicted(&mut self, seg: &TcpRepr<'_>, window: u32, ctx: &mut Ctx<'_>) {
        if self.timers.armed(Timer::KeepAlive) {
            self.restart_keepalive(ctx);
        }
        self.update_ts_recent(seg, ctx);
        self.ack_acceptable(seg, window, ctx);
        if !seg.payload.is_empty() && self.state != State::Closed {
            self.accept_text(seg.seq, seg.payload, ctx);
        }
    }

    /// RFC 7323 §4.3: TS.Recent after an acceptable segment.
    fn update_ts_recent(&mut self, seg: &TcpRepr<'_>, ctx: &Ctx<'_>) {
        if let Some(ts) = self.ts.as_mut() {
            if let Some((recent, at)) = ts_recent_update(
                seg,
                self.rcv.rcv_nxt,
                Some((ts.recent, ts.recent_at)),
                ctx.now,
            ) {
                ts.recent = recent;
                ts.recent_at = at;
            }
        }
    }

    fn on_segment_synchronized(&mut self, seg: &TcpRepr<'_>, ctx: &mut Ctx<'_>) {
        let f = seg.flags;
        if self.timers.armed(Timer::KeepAlive) {
            self.restart_keepalive(ctx);
        }
        let irs = self.rcv.irs;
        if self.state == State::SynReceived
            && f.contains(Flags::SYN)
            && !f.contains(Flags::ACK)
            && seg.seq == irs
        {
            // A retransmitted SYN: our SYN-ACK was lost; send it again.
            self.snd.syn_pending = true;
            return;
        }
        // RFC 9293 Figure 8 (simultaneous open, line 5): the peer's SYN-ACK crossing ours
        // completes the handshake. Linux accepts exactly this SYN: its sequence number is the
        // peer's ISN and it acknowledges our SYN. Every other SYN stays under RFC 5961 §4.
        let crossing = self.state == State::SynReceived
            && f.contains(Flags::SYN | Flags::ACK)
            && seg.seq == irs
            && seg.ack == self.snd.iss.wrapping_add(1);
        let verdict = if crossing {
            Gate::Continue
        } else {
            gate(seg, &self.view(), ctx.now, false)
        };
        match verdict {
            Gate::Continue => {}
            Gate::Drop => return,
            Gate::Ack(why) => {
                if seg.seq.lt(self.rcv.rcv_nxt) {
                    // An old duplicate (out of window, or an old timestamp): say so with a
                    // D-SACK (RFC 2883 §4), as Linux's tcp_send_dupack does for both — for
                    // the part below RCV.NXT only. An unacceptable segment's text is never
                    // taken (RFC 7323 §5.3 R1, RFC 9293 §3.10.7.4 first check), and the part
                    // beyond RCV.NXT of a stale copy is exactly what PAWS keeps out.
                    let seq = seg.seq.wrapping_add(f.contains(Flags::SYN) as u32);
                    let below = self.rcv.rcv_nxt.diff(seq).max(0) as usize;
                    let dup = &seg.payload[..seg.payload.len().min(below)];
                    self.rcv.on_text(seq, dup, self.sack);
                }
                self.oow_ack(why, seg, ctx);
                return;
            }
            Gate::Challenge => {
                if f.contains(Flags::SYN) {
                    ctx.stats[Counter::TCPSYNChallenge] += 1;
                }
                self.challenge_ack(ctx);
                return;
            }
            Gate::Reset => {
                self.on_reset(ctx);
                return;
            }
        }
        self.update_ts_recent(seg, ctx);
        // Fifth: the ACK field.
        if self.state == State::SynReceived {
            if seg.ack.gt(self.snd.snd_una) && seg.ack.le(self.snd.snd_nxt) {
                self.snd.snd_una = seg.ack;
                self.snd.snd_wnd = self.snd.offered_window(seg);
                self.snd.max_snd_wnd = self.snd.max_snd_wnd.max(self.snd.snd_wnd);
                self.snd.snd_wl1 = seg.seq;
                self.snd.snd_wl2 = seg.ack;
                self.take_rtt_sample(seg, ctx);
                self.handshake_done(ctx);
                if crossing {
                    // Its SYN was the one we already acknowledged: nothing more in it.
                    self.rcv.ack_at_once(TxKind::Normal);
                    return;
                }
            } else {
                // <SEQ=SEG.ACK><CTL=RST>
                if ctx.ctl.push(CtlSegment::rst(self.tuple, seg.ack)) {
                    ctx.stats[Counter::OutRsts] += 1;
                }
                return;
            }
        }
        if !self.process_ack(seg, ctx) {
            return;
        }
        if self.state == State::Closed {
            return;
        }
        self.process_text_and_fin(seg, ctx);
    }

    /// An ACK answering an unacceptable segment (RFC 9293 §3.10.7.4 first check), at most one
    /// per `invalid_ratelimit` (RFC 5961 §7).
    pub(crate) fn oow_ack(&mut self, why: Unacceptable, seg: &TcpRepr<'_>, ctx: &mut Ctx<'_>) {
        if why == Unacceptable::Paws {
            ctx.stats[Counter::PAWSEstab] += 1;
        }
        let span = self.rcv.buffer() as u32;
        if exempt(seg, self.rcv.rcv_nxt, span) || self.oow.allow(ctx.now, ctx.cfg.invalid_ratelimit)
        {
            self.rcv.ack_at_once(TxKind::Normal);
        } else {
            match why {
                Unacceptable::Paws => ctx.stats[Counter::TCPACKSkippedPAWS] += 1,
                Unacceptable::Seq if self.state == State::FinWait2 => {
                    ctx.stats[Counter::TCPACKSkippedFinWait2] += 1
                }
                Unacceptable::Seq => ctx.stats[Counter::TCPACKSkippedSeq] += 1,
            }
        }
    }

    /// RFC 5961 §3.2, §4.2, §5.2 challenge ACK, limited per connection and endpoint-wide (§7).
    pub(crate) fn challenge_ack(&mut self, ctx: &mut Ctx<'_>) {
        if !self.oow.allow(ctx.now, ctx.cfg.invalid_ratelimit) {
            ctx.stats[Counter::TCPACKSkippedChallenge] += 1;
            return;
        }
        if !ctx
            .challenge
            .take(ctx.now, ctx.cfg.challenge_ack_limit, ctx.secrets)
        {
            ctx.stats[Counter::TcpfsmChallengeACKLimited] += 1;
            return;
        }
        ctx.stats[Counter::TCPChallengeACK] += 1;
        self.rcv.ack_at_once(TxKind::ChallengeAck);
    }

    fn on_reset(&mut self, ctx: &mut Ctx<'_>) {
        match self.state {
            State::SynReceived if self.listener.is_some() => {
                // RFC 9293: a passively opened connection returns to LISTEN.
                self.set_state(State::Listen, Cause::ResetReceived, ctx);
            }
            State::SynReceived => self.fail(ConnError::Refused, Cause::ResetReceived, ctx),
            // RFC 9293 §3.10.7.4 says queues are flushed; Linux keeps what arrived in order
            // readable before the error, so an application never sees a clean end of stream
            // that hides missing bytes, nor loses bytes it was already sent.
            _ => self.fail(ConnError::Reset, Cause::ResetReceived, ctx),
        }
    }

    /// The fifth step for synchronized states. Returns false when the segment is to be dropped.
    fn process_ack(&mut self, seg: &TcpRepr<'_>, ctx: &mut Ctx<'_>) -> bool {
        let ack = seg.ack;
        let snd = &self.snd;
        if ack.gt(snd.snd_nxt) {
            // RFC 5961 §5.2: acknowledges something not yet sent — ACK and drop.
            self.oow_ack(Unacceptable::Seq, seg, ctx);
            return false;
        }
        if snd.max_snd_wnd > 0
            && ack.lt(snd.snd_una)
            && ack.lt(snd.snd_una - snd.max_snd_wnd.max(1))
        {
            // RFC 5961 §5.2: older than anything in the window — a blind injection.
            self.challenge_ack(ctx);
            return false;
        }
        let window = self.snd.offered_window(seg);
        self.ack_acceptable(seg, window, ctx);
        if self.snd.fin_acked() {
            match self.state {
                State::FinWait1 => {
                    if seg.flags.contains(Flags::FIN) {
                        self.fin_acked_pending = true;
                    } else {
                        self.set_state(State::FinWait2, Cause::FinAcked, ctx);
                        self.arm_fin_wait2(ctx);
                    }
                }
                State::Closing => {
                    self.set_state(State::TimeWait, Cause::FinAcked, ctx);
                    return false;
                }
                State::LastAck => {
                    self.set_state(State::Closed, Cause::FinAcked, ctx);
                    return false;
                }
                _ => {}
            }
        }
        true
    }

    /// The fifth step for an ACK within SND.UNA..=SND.NXT offering `window`: SND.UNA, RTT,
    /// timers, loss recovery and congestion control, the send window.
    fn ack_acceptable(&mut self, seg: &TcpRepr<'_>, window: u32, ctx: &mut Ctx<'_>) {
        let ack = seg.ack;
        // The peer answered: unanswered-probe count restarts (RFC 9293 §3.8.6.1).
        self.snd.probes = 0;
        // RFC 5681 §2 "duplicate acknowledgment".
        let dupack = ack == self.snd.snd_una
            && seg.payload.is_empty()
            && !seg.flags.intersects(Flags::SYN | Flags::FIN)
            && window == self.snd.snd_wnd
            && self.snd.outstanding();
        let advanced = ack.gt(self.snd.snd_una);
        let rtt = if advanced {
            self.on_new_ack(seg, ctx)
        } else {
            None
        };
        self.recovery_on_ack(seg, rtt, dupack, advanced, ctx);
        self.update_window(seg, window);
    }

    /// RFC 9293 §3.10.7.4: the send window follows only newer segments (SND.WL1/WL2).
    fn update_window(&mut self, seg: &TcpRepr<'_>, window: u32) {
        let s = &mut self.snd;
        if s.snd_wl1.lt(seg.seq) || (s.snd_wl1 == seg.seq && s.snd_wl2.le(seg.ack)) {
            s.snd_wnd = window;
            s.max_snd_wnd = s.max_snd_wnd.max(window);
            s.snd_wl1 = seg.seq;
            s.snd_wl2 = seg.ack;
            if window > 0 {
                // Linux `tcp_ack_probe`: an open window ends the persist backoff.
                s.persist_backoff = 0;
            }
            if window > 0 && self.timers.armed(Timer::Persist) {
                // The window opened: stop probing and send at once (the endpoint polls this
                // connection after every input).
                self.timers.clear(Timer::Persist);
                s.persist_fired = false;
            }
        }
    }

    /// SND.UNA advances: the buffer drains, the RTT is sampled, the retransmission timer
    /// restarts (RFC 6298 §5.2–5.3). Returns the RTT sample.
    fn on_new_ack(&mut self, seg: &TcpRepr<'_>, ctx: &mut Ctx<'_>) -> Option<Duration> {
        let drained = self.snd.on_new_ack(seg.ack);
        let rtt = self.take_rtt_sample(seg, ctx);
        self.snd.retries = 0;
        self.snd.rtt.reset_backoff();
        self.pto_armed = false;
        let rtx = self
            .snd
            .outstanding()
            .then(|| self.snd.rtt.rto_from(ctx.now));
        self.timers.put(Timer::Rtx, rtx);
        if self.want_writable && drained > 0 && self.snd.free() > 0 {
            self.want_writable = false;
            ctx.events.push_back(Event::Writable { conn: self.id });
        }
        rtt
    }

    /// RFC 6675 §5 / RFC 8985 §6.2, §7.4 / RFC 9937 for one acceptable ACK: the scoreboard,
    /// RACK and TLP, entering and leaving recovery, undo, the window.
    fn recovery_on_ack(
        &mut self,
        seg: &TcpRepr<'_>,
        rtt: Option<Duration>,
        dupack: bool,
        advanced: bool,
        ctx: &mut Ctx<'_>,
    ) {
        let ts = self.ts;
        let (Some(lr), Some(cc)) = (self.lr.as_mut(), self.cc.as_deref_mut()) else {
            return;
        };
        let cwnd_limited = std::mem::take(&mut self.cwnd_limited);
        // The parser fills the SACK blocks from the front.
        let has_blocks = seg.options.sack_blocks[0].is_some();
        let r = match lr.try_idle_ack(seg.ack, has_blocks, rtt.is_some(), dupack) {
            Some(r) => r,
            None => {
                let mut blocks = [SackBlock::new(SeqNum(0), SeqNum(0)); 4];
                let mut n = 0;
                for b in seg.options.sack_blocks() {
                    blocks[n] = SackBlock::new(b.left, b.right);
                    n += 1;
                }
                let mut input = AckInput::new(ctx.now, seg.ack, &blocks[..n]);
                input.rtt = rtt;
                input.srtt = self.snd.rtt.srtt();
                input.echo = Self::echo_time(ts, seg, ctx.now);
                input.dupack = dupack;
                input.cwnd_limited = cwnd_limited;
                lr.on_ack(&input, cc)
            }
        };
        if !r.idle {
            lr.sync(cc, ctx.stats);
        }
        self.timers.put(Timer::Reorder, r.reorder_timer);
        if advanced {
            // RFC 8985 §7.2: an ACK that advances SND.UNA re-arms the probe timeout.
            self.arm_pto_or_rto(ctx.now);
        }
    }

    /// The send time an ACK's TSecr echoes, read back through our TSval clock `ts` (RFC 7323
    /// §4.1; RFC 3522 and RACK need it).
    fn echo_time(
        ts: Option<super::TsState>,
        seg: &TcpRepr<'_>,
        now: crate::Instant,
    ) -> Option<crate::Instant> {
        let (ts, seg_ts) = (ts?, seg.options.timestamps?);
        if seg_ts.tsecr == 0 {
            return None;
        }
        let ago = ts_clock(now, ts.offset).wrapping_sub(seg_ts.tsecr);
        if (ago as i32) < 0 {
            return None;
        }
        // The start of the millisecond tick that TSval named (`AckInput::echo_tick` long):
        // the echoed segment left somewhere inside it, not `ago` ms before `now`.
        let tick_start = now.as_micros() - now.as_micros() % 1000;
        Some(crate::Instant::from_micros(
            tick_start.saturating_sub(ago as u64 * 1000),
        ))
    }

    pub(crate) fn take_rtt_sample(&mut self, seg: &TcpRepr<'_>, ctx: &Ctx<'_>) -> Option<Duration> {
        if let (Some(ts), Some(seg_ts)) = (self.ts, seg.options.timestamps) {
            // RFC 7323 §4.1: RTT from the echoed timestamp. After a timeout the peer may echo
            // an earlier transmission of the data (its TS.Recent only moves on in-window
            // segments), which would inflate SRTT by whole RTOs; such echoes are skipped
            // until the data outstanding at the timeout is acknowledged.
            if self.snd.rto_echo_ambiguous(seg.ack, seg_ts.tsecr) {
                return None;
            }
            if seg_ts.tsecr != 0 {
                let ms = ts_clock(ctx.now, ts.offset).wrapping_sub(seg_ts.tsecr);
                if (ms as i32) >= 0 {
                    let rtt = Duration::from_millis(ms as u64);
                    self.snd.rtt.sample(rtt);
                    return Some(rtt);
                }
            }
            return None;
        }
        let rtt = self.snd.take_probe_sample(seg.ack, ctx.now)?;
        self.snd.rtt.sample(rtt);
        Some(rtt)
    }

    /// Sixth to eighth steps: segment text and FIN.
    pub(crate) fn process_text_and_fin(&mut self, seg: &TcpRepr<'_>, ctx: &mut Ctx<'_>) {
        let mut seq = seg.seq;
        if seg.flags.contains(Flags::SYN) {
            seq = seq.wrapping_add(1);
        }
        let receiving = matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        );
        let mut trimmed = false;
        if receiving && !seg.payload.is_empty() {
            let end = seq.wrapping_add(seg.payload.len() as u32);
            if self.owner == Owner::Orphan && self.snd.fin_seq.is_some() && end.gt(self.rcv.rcv_nxt)
            {
                // Linux (TCPAbortOnData): the application closed and can never read this.
                ctx.stats[Counter::TCPAbortOnData] += 1;
                self.reset_and_close(Cause::ClosedWithUnreadData, ctx);
                return;
            }
            trimmed = self.accept_text(seq, seg.payload, ctx);
        }
        let mut fin_now = false;
        if seg.flags.contains(Flags::FIN) && receiving && !trimmed {
            let fin_at = seq.wrapping_add(seg.payload.len() as u32);
            fin_now = self.rcv.on_fin(fin_at);
        }
        // A FIN that came out of order is consumed once the hole before it fills.
        if receiving && self.rcv.try_consume_fin() {
            fin_now = true;
        }
        if fin_now {
            self.on_fin_consumed(ctx);
        }
        if self.fin_acked_pending {
            self.fin_acked_pending = false;
            if self.state == State::FinWait1 {
                self.set_state(State::FinWait2, Cause::FinAcked, ctx);
                self.arm_fin_wait2(ctx);
            }
        }
    }

    /// Queues text and decides how soon to acknowledge it. Returns true if some of it did
    /// not fit the window (a FIN after it is then not accepted either).
    fn accept_text(&mut self, seq: SeqNum, data: &[u8], ctx: &mut Ctx<'_>) -> bool {
        let was_empty = self.rcv.unread() == 0;
        // `RecvSide::on_text` taken apart so that `text_taken` is inlined once for its
        // in-order case, whose outcome is then known here: its tests of the other outcomes
        // fold away (about 25 instructions a segment in bulk transfer).
        let staged = self.rcv.take_staged(seq, data);
        if self.rcv.take_in_order(seq, data, staged) {
            return self.text_taken(Text::in_order(data.len()), was_empty, ctx);
        }
        let t = self.rcv.on_text_steps(seq, data, staged, self.sack);
        self.text_taken(t, was_empty, ctx)
    }

    /// Counters, the Readable event and the ACK decision for what text `t` did; `was_empty`:
    /// nothing was readable before it.
    #[inline(always)]
    fn text_taken(&mut self, t: Text, was_empty: bool, ctx: &mut Ctx<'_>) -> bool {
        if t.refused {
            ctx.stats[Counter::TCPOFODrop] += 1;
        }
        if t.out_of_order && !t.duplicate && !t.refused {
            ctx.stats[Counter::TCPOFOQueue] += 1;
        }
        if t.trimmed && self.rcv.rcv_wnd() == 0 {
            ctx.stats[Counter::TCPZeroWindowDrop] += 1;
        }
        if t.in_order > 0 && was_empty && self.owner != Owner::Orphan {
            ctx.events.push_back(Event::Readable { conn: self.id });
        }
        // RFC 5681 §4.2: out-of-order data, a filled hole and a duplicate are acknowledged at
        // once (the duplicate ACK tells the sender where we are); so is text we trimmed.
        if t.out_of_order || t.filled_hole || t.duplicate || t.trimmed || t.refused {
            self.rcv.ack_at_once(TxKind::Normal);
        } else if t.in_order > 0 {
            // A segment longer than the MSS (a TSO super-segment handed over whole by a
            // device's receive offload) stands for as many full-sized segments.
            let full = t.in_order / self.snd.mss.max(1) as usize;
            match ctx.cfg.delayed_ack {
                Some(d) if self.rcv.may_delay_ack(full) => {
                    if !self.timers.armed(Timer::DelAck) {
                        self.timers.set(Timer::DelAck, ctx.now + d);
                    }
                }
                _ => self.rcv.ack_at_once(TxKind::Normal),
            }
        }
        t.trimmed
    }

    /// RFC 9293 §3.10.7.4 eighth step: the peer's FIN is in order.
    fn on_fin_consumed(&mut self, ctx: &mut Ctx<'_>) {
        self.rcv.ack_at_once(TxKind::Normal);
        self.timers.clear(Timer::DelAck);
        if self.owner != Owner::Orphan {
            ctx.events.push_back(Event::Readable { conn: self.id });
        }
        match self.state {
            State::SynReceived | State::Established => {
                self.set_state(State::CloseWait, Cause::FinReceived, ctx)
            }
            State::FinWait1 if self.fin_acked_pending || self.snd.fin_acked() => {
                self.fin_acked_pending = false;
                self.set_state(State::TimeWait, Cause::FinAndAckReceived, ctx);
            }
            State::FinWait1 => self.set_state(State::Closing, Cause::FinReceived, ctx),
            State::FinWait2 => self.set_state(State::TimeWait, Cause::FinReceived, ctx),
            _ => {}
        }
    }
}
