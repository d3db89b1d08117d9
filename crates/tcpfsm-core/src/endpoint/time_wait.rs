//! TIME_WAIT at the endpoint: turning a connection into a record, segments arriving for a
//! record (RFC 9293 §3.10.7.4 through the shared arrival steps, RFC 6191 for new SYNs), and the
//! record's end.

use super::Endpoint;
use crate::arrival::{gate, ts_before, Gate, RcvView, Unacceptable};
use crate::builder::{ts_clock, CtlSegment};
use crate::conn::Owner;
use crate::stats::Counter;
use crate::time_wait::TimeWaitRecord;
use crate::{Cause, Event, FourTuple, Instant, SocketHandle, State, TxKind};
use tcpfsm_wire::{Flags, SeqNum, TcpRepr, Timestamps};

impl Endpoint {
    /// An ACK from a record; `ts_offset` is the connection's TSval offset when the caller
    /// has it (it is a keyed hash of the tuple, recomputed otherwise).
    fn time_wait_ack(
        &self,
        now: Instant,
        rec: &TimeWaitRecord,
        kind: TxKind,
        ts_offset: Option<u32>,
    ) -> CtlSegment {
        let ts = rec.ts_recent().map(|tsecr| Timestamps {
            tsval: ts_clock(
                now,
                ts_offset.unwrap_or_else(|| self.secrets.ts_offset(&rec.key)),
            ),
            tsecr,
        });
        CtlSegment::ack(
            rec.key.expand(),
            SeqNum(rec.snd_nxt),
            SeqNum(rec.rcv_nxt),
            rec.window,
            ts,
            kind,
        )
    }

    /// A connection just entered TIME_WAIT: it becomes a record in the TIME_WAIT table (or,
    /// with the table full, skips TIME_WAIT as Linux's `TCPTimeWaitOverflow`).
    pub(super) fn enter_time_wait(&mut self, slot: u32) {
        let now = self.last_now;
        let Some(c) = self.table.conn(slot) else {
            return;
        };
        let key = self.table.slot(slot).key;
        let rec = TimeWaitRecord::new(
            key,
            c.id,
            c.rcv.rcv_nxt.0,
            c.snd.snd_nxt.0,
            c.ts.map(|ts| ts.recent),
            c.window_field(),
            now + self.config.time_wait_duration(),
        );
        let needs_ack = c.ack_pending();
        let keep = c.owner == Owner::App;
        let ts_offset = c.ts.map(|ts| ts.offset);
        self.table.unindex(slot);
        self.timers.set(slot, None);
        if needs_ack {
            // The ACK of the FIN that brought us here.
            let ack = self.time_wait_ack(now, &rec, TxKind::Normal, ts_offset);
            if self.ctl.push(ack) {
                self.stats[Counter::OutSegs] += 1;
            }
        }
        if self.time_wait.len() as u64 >= self.config.max_tw_buckets as u64 {
            self.stats[Counter::TWKilled] += 1;
            self.stats[Counter::TCPTimeWaitOverflow] += 1;
            self.time_wait_closed(rec, Cause::TimeWaitOverflow);
        } else {
            self.time_wait.insert(rec);
        }
        if !keep {
            self.free_slot(slot);
        }
    }

    /// TIME_WAIT ends for `rec`: its handle, if the application still holds it, reads CLOSED.
    pub(super) fn time_wait_closed(&mut self, rec: TimeWaitRecord, cause: Cause) {
        let now = self.last_now;
        let slot = self.table.slot_of(rec.id());
        let (mut ctx, table) = self.ctx(now);
        match slot.and_then(|s| table.conn_mut(s)) {
            Some(c) if c.state() == State::TimeWait => c.set_state(State::Closed, cause, &mut ctx),
            _ => ctx.events.push_back(Event::StateChanged {
                socket: SocketHandle::Conn(rec.id()),
                tuple: rec.key.expand(),
                from: State::TimeWait,
                to: State::Closed,
                cause,
            }),
        }
    }

    /// RFC 9293 §3.10.7.4 in TIME_WAIT, RFC 6191 and RFC 5961. Returns `Some(isn)` when a SYN
    /// legitimately reopens the 4-tuple and should go on to the listener.
    pub(super) fn on_time_wait_segment(
        &mut self,
        now: Instant,
        slot: u32,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
    ) -> Option<SeqNum> {
        let rec = *self.time_wait.get(slot);
        let f = seg.flags;
        let rcv_nxt = SeqNum(rec.rcv_nxt);
        if f.contains(Flags::SYN) && !f.intersects(Flags::ACK | Flags::RST) {
            // RFC 6191 §2: a newer timestamp, or without timestamps a higher sequence number
            // (RFC 1122 §4.2.2.13), proves the SYN is not an old duplicate.
            let newer = match (rec.ts_recent(), seg.options.timestamps) {
                (Some(recent), Some(ts)) => ts_before(recent, ts.tsval),
                _ => seg.seq.gt(rcv_nxt),
            };
            let listening = self.listeners.iter().any(|l| l.matches(tuple.local));
            if newer && listening {
                self.time_wait.remove(slot);
                self.time_wait_closed(rec, Cause::TimeWaitReopened);
                return Some(SeqNum(rec.snd_nxt.wrapping_add(65537)));
            }
        }
        let view = RcvView {
            rcv_nxt,
            rcv_wnd: rec.window as u32,
            ts_recent: rec.ts_recent().map(|t| (t, now)),
        };
        match gate(seg, &view, now, false) {
            Gate::Reset => {
                // Linux without tcp_rfc1337: an exact RST ends TIME_WAIT ("assassination").
                self.time_wait.remove(slot);
                self.stats[Counter::TWKilled] += 1;
                self.time_wait_closed(rec, Cause::ResetReceived);
            }
            // Linux answers every other non-RST segment in TIME_WAIT with an ACK (rate
            // limited), a bare FIN included: the peer learns where the connection ended.
            Gate::Drop if !f.contains(Flags::RST) => self.time_wait_oow_ack(now, slot, seg),
            Gate::Drop => {}
            Gate::Challenge => {
                if f.contains(Flags::SYN) {
                    self.stats[Counter::TCPSYNChallenge] += 1;
                }
                let limited = !self
                    .time_wait
                    .get_mut(slot)
                    .oow
                    .allow(now, self.config.invalid_ratelimit);
                if limited {
                    self.stats[Counter::TCPACKSkippedTimeWait] += 1;
                } else if self
                    .challenge
                    .take(now, self.config.challenge_ack_limit, &self.secrets)
                {
                    self.stats[Counter::TCPChallengeACK] += 1;
                    let ack = self.time_wait_ack(now, &rec, TxKind::ChallengeAck, None);
                    self.ctl.push(ack);
                } else {
                    self.stats[Counter::TcpfsmChallengeACKLimited] += 1;
                }
            }
            Gate::Ack(why) => {
                if why == Unacceptable::Paws {
                    self.stats[Counter::PAWSEstab] += 1;
                }
                let end = seg.seq.wrapping_add(seg.segment_len());
                if f.contains(Flags::FIN) && end == rcv_nxt && why == Unacceptable::Seq {
                    // The peer's FIN again: our ACK was lost. Restart 2 MSL and ACK again.
                    self.time_wait
                        .restart(slot, now + self.config.time_wait_duration());
                }
                self.time_wait_oow_ack(now, slot, seg);
            }
            Gate::Continue => {
                if seg.seq == rcv_nxt && seg.segment_len() == 0 {
                    // The only segment TIME_WAIT takes silently: a bare ACK at RCV.NXT.
                    if let Some(ts) = seg.options.timestamps {
                        self.time_wait.get_mut(slot).set_ts_recent(ts.tsval);
                    }
                } else {
                    // Data or a FIN after the peer's FIN cannot be, and an ACK elsewhere in
                    // the window is stale: tell the peer where we are. RFC 9293 accepts the
                    // in-window ACK silently; Linux's tcp_timewait_state_process treats
                    // everything not exactly at RCV.NXT as out of window and answers it
                    // (rate limited), which costs one ACK and lets a confused peer resync.
                    self.time_wait_oow_ack(now, slot, seg);
                }
            }
        }
        None
    }

    /// An ACK from a TIME_WAIT record, rate limited per record (Linux
    /// `TCPACKSkippedTimeWait`).
    fn time_wait_oow_ack(&mut self, now: Instant, slot: u32, seg: &TcpRepr<'_>) {
        let limit = self.config.invalid_ratelimit;
        let rec = self.time_wait.get(slot);
        let (rcv_nxt, span) = (SeqNum(rec.rcv_nxt), rec.window as u32);
        if !crate::ratelimit::exempt(seg, rcv_nxt, span)
            && !self.time_wait.get_mut(slot).oow.allow(now, limit)
        {
            self.stats[Counter::TCPACKSkippedTimeWait] += 1;
            return;
        }
        let rec = *self.time_wait.get(slot);
        let ack = self.time_wait_ack(now, &rec, TxKind::Normal, None);
        self.ctl.push(ack);
    }
}
