//! What a connection sends next, and the segment that carries it: SYN or SYN-ACK, a
//! retransmission, new data or FIN, a zero-window probe, a keep-alive, or a pure ACK — with
//! the ACK number, window and options every synchronized segment carries.

use super::send::{Held, Plan};
use super::Conn;
use crate::builder::{syn_options, ts_clock};
use crate::time::Instant;
use crate::timers::Timer;
use crate::{Config, State, Stats, TxKind};
use tcpfsm_wire::{Flags, SeqNum, TcpOptions, TcpRepr, Timestamps};

impl Conn {
    /// The next segment this connection wants to send, if any; the send state moves on as if
    /// it were sent.
    pub(crate) fn next_segment<'b>(
        &'b mut self,
        now: Instant,
        cfg: &Config,
        stats: &mut Stats,
        scratch: &'b mut Vec<u8>,
    ) -> Option<(TcpRepr<'b>, TxKind)> {
        match self.state {
            State::Closed | State::Listen | State::TimeWait => return None,
            State::SynSent | State::SynReceived if self.snd.syn_pending => {
                return Some(self.syn_segment(now, cfg, stats));
            }
            State::SynSent => return None,
            _ => {}
        }
        if self.state != State::SynReceived {
            if let Some(plan) = self.plan(now) {
                return Some(self.data_segment(plan, now, stats, scratch));
            }
        }
        if self.probe_due {
            self.probe_due = false;
            let seq = self.snd.probe_seq();
            let repr = self.finish_segment(seq, Flags::ACK, now, stats);
            return Some((repr, TxKind::WindowProbe));
        }
        if self.keepalive_due {
            // RFC 1122 §4.2.3.6: SEG.SEQ = SND.NXT-1, so the peer must answer with an ACK.
            self.keepalive_due = false;
            let seq = self.snd.snd_nxt - 1u32;
            let repr = self.finish_segment(seq, Flags::ACK, now, stats);
            return Some((repr, TxKind::KeepAlive));
        }
        if self.rcv.ack_pending() {
            let kind = self.rcv.pending_ack_kind();
            let seq = self.snd.snd_nxt;
            return Some((self.finish_segment(seq, Flags::ACK, now, stats), kind));
        }
        None
    }

    /// Retransmissions first, then new data; arms the persist timer when data waits that
    /// nothing in flight will ever unblock.
    fn plan(&mut self, now: Instant) -> Option<Plan> {
        let cwnd = self.cc.cwnd();
        let mss = self.snd.mss as u32;
        let planned = if self.loss.fast_rtx {
            self.loss.fast_rtx = false;
            self.snd.plan_fast_retransmit()
        } else {
            None
        };
        let planned = planned.or_else(|| self.snd.plan_rewound(cwnd));
        let plan = match planned {
            Some(p) => p,
            None => {
                let extra = self.loss.limited_transmit_allowance(mss);
                match self
                    .snd
                    .plan_new(cwnd.saturating_add(extra), self.opts.nodelay)
                {
                    Ok(p) => {
                        if self.ts.is_none() && p.len > 0 {
                            self.snd.time_segment(p.seq, now);
                        }
                        p
                    }
                    Err(Held::Stalled) => {
                        // RFC 9293 §3.8.6.1 / §3.8.6.2.1: a persist (or SWS override) timer
                        // runs whenever data waits and nothing is in flight.
                        if !self.timers.armed(Timer::Persist) {
                            let at = now + self.persist_interval();
                            self.timers.set(Timer::Persist, at);
                        }
                        return None;
                    }
                    Err(_) => return None,
                }
            }
        };
        if !self.timers.armed(Timer::Rtx) {
            self.timers.set(Timer::Rtx, now + self.snd.rtt.rto());
        }
        Some(plan)
    }

    /// The persist interval: the RTO, doubled per unanswered probe, capped at the RTO maximum
    /// (RFC 9293 §3.8.6.1 "increase exponentially").
    pub(crate) fn persist_interval(&self) -> crate::Duration {
        let base = self.snd.rtt.rto();
        let shift = self.snd.probes.min(16);
        base.saturating_mul(1 << shift).min(self.snd.rtt.max())
    }

    fn data_segment<'b>(
        &'b mut self,
        plan: Plan,
        now: Instant,
        stats: &mut Stats,
        scratch: &'b mut Vec<u8>,
    ) -> (TcpRepr<'b>, TxKind) {
        if plan.kind == TxKind::Retransmission {
            stats.retrans_segs += 1;
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
        let (a, b) = self.snd.payload(plan.seq, plan.len);
        repr.payload = if b.is_empty() {
            a
        } else {
            // The segment straddles the ring's wrap point (once per buffer cycle).
            scratch.clear();
            scratch.extend_from_slice(a);
            scratch.extend_from_slice(b);
            scratch
        };
        (repr, plan.kind)
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
            stats.retrans_segs += 1;
            self.snd
                .retransmitting(self.snd.iss, self.snd.iss.wrapping_add(1));
        } else if self.ts.is_none() {
            self.snd.time_segment(self.snd.iss, now);
        }
        self.snd.syn_pending = false;
        self.snd.snd_nxt = self.snd.iss.wrapping_add(1);
        if !self.timers.armed(Timer::Rtx) {
            self.timers.set(Timer::Rtx, now + self.snd.rtt.rto());
        }
        let window = self.rcv.syn_window();
        self.rcv.acked();
        self.timers.clear(Timer::DelAck);
        stats.out_segs += 1;
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
    fn finish_segment(
        &mut self,
        seq: SeqNum,
        flags: Flags,
        now: Instant,
        stats: &mut Stats,
    ) -> TcpRepr<'static> {
        let window = self.rcv.advertise(self.snd.mss);
        let mut options = TcpOptions::default();
        if let Some(ts) = self.ts {
            options.timestamps = Some(Timestamps {
                tsval: ts_clock(now, ts.offset),
                tsecr: ts.recent,
            });
        }
        if self.sack {
            // RFC 2018 §3: four blocks fit in the option space, three beside timestamps.
            let max = if self.ts.is_some() { 3 } else { 4 };
            options.sack_blocks = self.rcv.sack_blocks(max);
        }
        self.rcv.acked();
        self.timers.clear(Timer::DelAck);
        stats.out_segs += 1;
        TcpRepr {
            src_port: self.tuple.local.port(),
            dst_port: self.tuple.remote.port(),
            seq,
            ack: self.rcv.rcv_nxt,
            flags,
            window,
            urgent: 0,
            options,
            payload: &[],
        }
    }
}
