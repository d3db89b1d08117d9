//! A connection's timers firing: FIN_WAIT_2 give-up, delayed ACK, persist (zero-window probe
//! or sender SWS override), retransmission (RFC 6298 §5) and keep-alive (RFC 1122 §4.2.3.6).

use super::{Conn, Ctx, Owner};
use crate::builder::ts_clock;
use crate::recovery::tlp::Probe;
use crate::stats::Counter;
use crate::timers::Timer;
use crate::{Cause, Config, ConnError, State};

impl Conn {
    pub(crate) fn handle_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        if self.timers.expired(Timer::FinWait2, now) {
            self.timers.clear(Timer::FinWait2);
            ctx.stats[Counter::TcpfsmFinWait2Timeouts] += 1;
            self.set_state(State::Closed, Cause::FinWait2Timeout, ctx);
            return;
        }
        if self.timers.expired(Timer::DelAck, now) {
            self.timers.clear(Timer::DelAck);
            self.rcv.ack_at_once(crate::TxKind::Normal);
            ctx.stats[Counter::DelayedACKs] += 1;
        }
        if self.timers.expired(Timer::Persist, now) {
            self.timers.clear(Timer::Persist);
            self.on_persist(ctx);
            if self.state == State::Closed {
                return;
            }
        }
        if self.timers.expired(Timer::Reorder, now) {
            self.timers.clear(Timer::Reorder);
            self.on_reorder_timer(ctx);
        }
        if self.timers.expired(Timer::Rtx, now) {
            if self.pto_armed {
                self.on_pto(ctx);
            } else {
                self.on_rto(ctx);
            }
            if self.state == State::Closed {
                return;
            }
        }
        if self.timers.expired(Timer::KeepAlive, now) {
            self.on_keepalive(ctx);
        }
    }

    /// RFC 9293 §3.8.6.1 and §3.8.6.2.1. A window too small for the SWS rule gets what it can
    /// take; a zero window gets a probe. Probes the peer answers never end the connection (the
    /// MUST of §3.8.6.1): only `max_probes` unanswered ones in a row do, as Linux's
    /// `tcp_probe_timer`.
    fn on_persist(&mut self, ctx: &mut Ctx<'_>) {
        if self.snd.outstanding() || !self.snd.waiting() {
            // Something in flight will bring an ACK, or nothing waits any more.
            return;
        }
        let room = self
            .snd
            .snd_una
            .wrapping_add(self.snd.snd_wnd)
            .diff(self.snd.snd_nxt);
        if room > 0 {
            self.snd.persist_fired = true;
        } else {
            if self.snd.probes >= self.retry_limit(ctx.cfg) {
                self.fail(ConnError::TimedOut, Cause::RetransmitLimit, ctx);
                return;
            }
            self.snd.probes += 1;
            self.snd.persist_backoff = self.snd.persist_backoff.saturating_add(1);
            self.probe_due = true;
            ctx.stats[Counter::TCPWinProbe] += 1;
        }
        let at = ctx.now + self.persist_interval();
        self.timers.set(Timer::Persist, at);
    }

    fn on_keepalive(&mut self, ctx: &mut Ctx<'_>) {
        if self.snd.outstanding() {
            // Data in flight: the retransmission timer watches the peer already.
            self.restart_keepalive(ctx);
            return;
        }
        if self.keepalive_sent as u32 >= self.opts.keepalive_probes {
            // Linux tcp_keepalive_timer: tcp_send_active_reset, then the error, so that a
            // peer alive after all (only the path was down) learns the connection is gone.
            self.send_active_reset(ctx);
            self.fail(ConnError::TimedOut, Cause::KeepaliveTimeout, ctx);
            return;
        }
        self.keepalive_sent = self.keepalive_sent.saturating_add(1);
        self.keepalive_due = true;
        self.timers
            .set(Timer::KeepAlive, ctx.now + self.opts.keepalive_interval());
    }

    fn retry_limit(&self, cfg: &Config) -> u32 {
        match self.state {
            State::SynSent => cfg.syn_retries,
            State::SynReceived => cfg.synack_retries,
            _ if self.owner == Owner::Orphan => {
                if cfg.orphan_retries == 0 {
                    8
                } else {
                    cfg.orphan_retries
                }
            }
            _ => cfg.retries2,
        }
    }

    /// RFC 8985 §6.3: RACK's reordering window ran out; losses found start recovery.
    fn on_reorder_timer(&mut self, ctx: &mut Ctx<'_>) {
        let srtt = self.snd.rtt.srtt();
        let (Some(lr), Some(cc)) = (self.lr.as_mut(), self.cc.as_deref_mut()) else {
            return;
        };
        let r = lr.on_reorder_timer(ctx.now, srtt, cc);
        lr.sync(cc, ctx.stats);
        self.timers.put(Timer::Reorder, r.reorder_timer);
    }

    /// RFC 8985 §7.3: the probe timeout fired — send one new segment if the window allows, else
    /// the last segment again, and fall back to the RTO.
    fn on_pto(&mut self, ctx: &mut Ctx<'_>) {
        self.pto_armed = false;
        self.timers.clear(Timer::Rtx);
        if !self.snd.outstanding() {
            return;
        }
        let new_ok = self.snd.waiting()
            && self
                .snd
                .snd_una
                .wrapping_add(self.snd.snd_wnd)
                .gt(self.snd.snd_nxt);
        let Some(lr) = self.lr.as_mut() else {
            self.arm_rto(ctx.now);
            return;
        };
        match lr.on_pto(new_ok) {
            Probe::NewData => self.probe_new_data = true,
            _ => self.probe_last = true,
        }
        self.arm_rto(ctx.now);
    }

    fn on_rto(&mut self, ctx: &mut Ctx<'_>) {
        self.timers.clear(Timer::Rtx);
        if !self.snd.outstanding() && !self.snd.syn_pending {
            return;
        }
        ctx.stats[Counter::TCPTimeouts] += 1;
        if self.snd.retries >= self.retry_limit(ctx.cfg) {
            if self.owner == Owner::Orphan {
                ctx.stats[Counter::TCPAbortOnTimeout] += 1;
            }
            self.fail(ConnError::TimedOut, Cause::RetransmitLimit, ctx);
            return;
        }
        let first = self.snd.retries == 0;
        self.snd.retries += 1;
        self.snd.rtt.back_off();
        let tsval = self.ts.map(|ts| ts_clock(ctx.now, ts.offset));
        self.snd.rewind(tsval);
        let srtt = self.snd.rtt.srtt();
        if let (Some(lr), Some(cc)) = (self.lr.as_mut(), self.cc.as_deref_mut()) {
            lr.on_rto(ctx.now, srtt, first, false, cc);
            lr.sync(cc, ctx.stats);
        }
        self.timers.clear(Timer::Reorder);
        self.timers.set(Timer::Rtx, self.snd.rtt.rto_from(ctx.now));
    }
}
