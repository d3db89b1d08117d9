//! The transmission control block: one connection's state machine (RFC 9293 §3.10).
//!
//! A TCB lives from SYN_SENT (or SYN_RECEIVED, once a passive half-open entry is acknowledged)
//! until CLOSED. On entering TIME_WAIT the endpoint turns it into a compact record
//! (`time_wait.rs`); the TCB itself never handles TIME_WAIT segments.

use crate::congestion::{CongestionControl, NewReno};
use crate::rtt::RttEstimator;
use crate::time::{Duration, Instant};
use crate::timers::{Timer, Timers};
use crate::TxKind;
use crate::{
    Cause, CloseReason, Config, ConnError, ConnHandle, ConnOptions, Event, FourTuple,
    ListenerHandle, RecvError, SendError, ShutdownError, State, Stats,
};
use std::collections::VecDeque;
use tcpfsm_wire::{Flags, SackBlock, SeqNum, TcpOptions, TcpRepr, Timestamps};

/// A segment that belongs to no TCB's send queue: RST replies, SYN-ACKs of half-open entries
/// and SYN cookies, ACKs of TIME_WAIT records. The endpoint sends these first.
#[derive(Debug, Clone)]
pub(crate) struct CtlSegment {
    pub(crate) tuple: FourTuple,
    pub(crate) seq: SeqNum,
    pub(crate) ack: SeqNum,
    pub(crate) flags: Flags,
    pub(crate) window: u16,
    pub(crate) options: TcpOptions,
    pub(crate) kind: TxKind,
}

impl CtlSegment {
    /// RFC 9293 §3.10.7.1: a reset answering `seg`, which arrived for `tuple`.
    pub(crate) fn reset_for(tuple: FourTuple, seg: &TcpRepr<'_>) -> CtlSegment {
        if seg.flags.contains(Flags::ACK) {
            // <SEQ=SEG.ACK><CTL=RST>
            CtlSegment::rst(tuple, seg.ack)
        } else {
            // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
            CtlSegment {
                tuple,
                seq: SeqNum(0),
                ack: seg.seq.wrapping_add(seg.segment_len()),
                flags: Flags::RST | Flags::ACK,
                window: 0,
                options: TcpOptions::default(),
                kind: TxKind::Reset,
            }
        }
    }

    pub(crate) fn rst(tuple: FourTuple, seq: SeqNum) -> CtlSegment {
        CtlSegment {
            tuple,
            seq,
            ack: SeqNum(0),
            flags: Flags::RST,
            window: 0,
            options: TcpOptions::default(),
            kind: TxKind::Reset,
        }
    }
}

/// What a TCB needs from its endpoint while it handles an input.
pub(crate) struct Ctx<'a> {
    pub(crate) now: Instant,
    pub(crate) cfg: &'a Config,
    pub(crate) events: &'a mut VecDeque<Event>,
    pub(crate) stats: &'a mut Stats,
    pub(crate) ctl: &'a mut VecDeque<CtlSegment>,
}

/// Who holds the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The application holds a handle.
    App,
    /// Established, waiting in a listener's accept queue.
    AcceptQueue,
    /// The application closed its handle; the connection finishes on its own.
    Orphan,
}

/// RFC 7323 timestamps, when both sides offered them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TsState {
    /// TS.Recent (RFC 7323 §4.3).
    pub(crate) recent: u32,
    /// Our per-connection TSval offset (RFC 7323 §5.4).
    pub(crate) offset: u32,
}

/// TSval clock: milliseconds (RFC 7323 §5.4 recommends 1 ms to 1 s per tick).
pub(crate) fn ts_clock(now: Instant, offset: u32) -> u32 {
    ((now.as_micros() / 1000) as u32).wrapping_add(offset)
}

/// Options learnt from the peer's SYN.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerSyn {
    pub(crate) mss: Option<u16>,
    pub(crate) wscale: Option<u8>,
    pub(crate) sack: bool,
    pub(crate) tsval: Option<u32>,
}

impl PeerSyn {
    pub(crate) fn from_options(o: &TcpOptions) -> PeerSyn {
        PeerSyn {
            mss: o.mss,
            wscale: o.window_scale,
            sack: o.sack_permitted,
            tsval: o.timestamps.map(|t| t.tsval),
        }
    }
}

/// The MSS we announce: the configured one for IPv4, 20 bytes less for IPv6's larger header,
/// lowered by TCP_MAXSEG.
pub(crate) fn our_mss(cfg: &Config, opts: &ConnOptions, tuple: &FourTuple) -> u16 {
    // Clamped so that even an unvalidated configuration can carry data after options.
    let mss = opts.mss.map_or(cfg.mss, |m| m.min(cfg.mss)).max(88);
    if tuple.local.is_ipv6() {
        mss.saturating_sub(20)
    } else {
        mss
    }
}

/// RFC 9293 §3.7.1: without an MSS option the peer takes 536 bytes (IPv4) or 1220 (IPv6).
pub(crate) fn default_peer_mss(tuple: &FourTuple) -> u16 {
    if tuple.local.is_ipv6() {
        1220
    } else {
        536
    }
}

/// The receive window scale we offer: the smallest shift that lets the buffer be advertised.
pub(crate) fn our_wscale(recv_buffer: usize) -> u8 {
    let mut s = 0u8;
    while (recv_buffer >> s) > 65535 && s < 14 {
        s += 1;
    }
    s
}

pub(crate) struct Tcb {
    pub(crate) id: ConnHandle,
    pub(crate) tuple: FourTuple,
    pub(crate) state: State,
    pub(crate) since: Instant,
    pub(crate) owner: Owner,
    /// The listener this connection came from (passive open), for RFC 9293's "return to LISTEN".
    pub(crate) listener: Option<ListenerHandle>,
    // Send sequence space (RFC 9293 §3.3.1).
    pub(crate) iss: SeqNum,
    pub(crate) snd_una: SeqNum,
    /// Highest sequence number sent + 1 (the RFC's SND.NXT).
    pub(crate) snd_nxt: SeqNum,
    /// Transmission cursor: where the next (re)transmission starts. Equal to `snd_nxt` except
    /// after a retransmission timeout, which rewinds it to `snd_una` (go-back-N).
    snd_cur: SeqNum,
    pub(crate) snd_wnd: u32,
    max_snd_wnd: u32,
    snd_wl1: SeqNum,
    snd_wl2: SeqNum,
    snd_wscale: u8,
    // Receive sequence space.
    irs: SeqNum,
    pub(crate) rcv_nxt: SeqNum,
    rcv_wscale: u8,
    /// Right edge of the window we last advertised (never moved left: RFC 9293 §3.8.6.2.2).
    rcv_adv: SeqNum,
    send_buf: VecDeque<u8>,
    recv_buf: VecDeque<u8>,
    /// Out-of-order segments, sorted and disjoint.
    ooo: Vec<(SeqNum, Vec<u8>)>,
    /// Sequence number of our FIN, once the write side is shut.
    fin_seq: Option<SeqNum>,
    /// Sequence number of the peer's FIN, once seen (perhaps ahead of a hole).
    peer_fin: Option<SeqNum>,
    mss: u16,
    pub(crate) ts: Option<TsState>,
    sack: bool,
    rtt: RttEstimator,
    /// Karn's algorithm: time one unretransmitted segment when timestamps are off.
    rtt_probe: Option<(SeqNum, Instant)>,
    timers: Timers,
    pub(crate) retries: u32,
    pub(crate) retrans_total: u32,
    ack_now: bool,
    /// Why the pending pure ACK goes out, for [`crate::Transmit::kind`].
    ack_kind: TxKind,
    unacked_segs: u8,
    persist_probe: bool,
    keepalive_sent: u8,
    keepalive_probe: bool,
    cc: Box<dyn CongestionControl>,
    dup_acks: u32,
    /// RFC 6582 `recover`; `Some` while in fast recovery.
    recover: Option<SeqNum>,
    /// The highest sequence sent when the last RTO fired (RFC 6582 §4: no fast retransmit for
    /// duplicate ACKs of data sent before it).
    rto_recover: Option<SeqNum>,
    /// Our TSval when the last timeout retransmission went out: an echo older than this is
    /// ambiguous (Karn's rule applied to timestamps) and gives no RTT sample.
    rto_tsval: Option<u32>,
    fast_rtx: bool,
    /// Our SYN (or SYN-ACK) needs to go out.
    syn_pending: bool,
    pub(crate) error: Option<ConnError>,
    pub(crate) opts: ConnOptions,
    want_writable: bool,
    /// FIN_WAIT_1 whose FIN was acknowledged by the segment being processed: held back so a FIN
    /// in the same segment goes to TIME_WAIT directly (RFC 9293 §3.10.7.4, eighth step).
    fin_acked_pending: bool,
    /// The endpoint's timer bookkeeping: the deadline currently queued for this TCB.
    pub(crate) scheduled: Option<Instant>,
    /// The endpoint's transmit queue holds this TCB.
    pub(crate) in_tx: bool,
}

impl Tcb {
    fn blank(
        id: ConnHandle,
        tuple: FourTuple,
        iss: SeqNum,
        now: Instant,
        cfg: &Config,
        opts: ConnOptions,
    ) -> Tcb {
        let mss = our_mss(cfg, &opts, &tuple);
        Tcb {
            id,
            tuple,
            state: State::Closed,
            since: now,
            owner: Owner::App,
            listener: None,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_cur: iss,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: SeqNum(0),
            snd_wl2: iss,
            snd_wscale: 0,
            irs: SeqNum(0),
            rcv_nxt: SeqNum(0),
            rcv_wscale: 0,
            rcv_adv: SeqNum(0),
            send_buf: VecDeque::new(),
            recv_buf: VecDeque::new(),
            ooo: Vec::new(),
            fin_seq: None,
            peer_fin: None,
            mss,
            ts: None,
            sack: false,
            rtt: RttEstimator::new(cfg.rto_initial, cfg.rto_min, cfg.rto_max),
            rtt_probe: None,
            timers: Timers::default(),
            retries: 0,
            retrans_total: 0,
            ack_now: false,
            ack_kind: TxKind::Normal,
            unacked_segs: 0,
            persist_probe: false,
            keepalive_sent: 0,
            keepalive_probe: false,
            cc: Box::new(NewReno::new(cfg.initial_cwnd, mss as u32)),
            dup_acks: 0,
            recover: None,
            rto_recover: None,
            rto_tsval: None,
            fast_rtx: false,
            syn_pending: false,
            error: None,
            opts,
            want_writable: false,
            fin_acked_pending: false,
            scheduled: None,
            in_tx: false,
        }
    }

    /// Active OPEN (RFC 9293 §3.10.1): CLOSED → SYN_SENT, SYN queued.
    pub(crate) fn connect(
        id: ConnHandle,
        tuple: FourTuple,
        iss: SeqNum,
        opts: ConnOptions,
        ctx: &mut Ctx<'_>,
    ) -> Tcb {
        let mut t = Tcb::blank(id, tuple, iss, ctx.now, ctx.cfg, opts);
        t.syn_pending = true;
        t.set_state(State::SynSent, Cause::ActiveOpen, ctx);
        t
    }

    /// A passive connection whose SYN-ACK the half-open entry already sent.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_half_open(
        id: ConnHandle,
        tuple: FourTuple,
        listener: ListenerHandle,
        iss: SeqNum,
        irs: SeqNum,
        peer: PeerSyn,
        ts_offset: u32,
        now: Instant,
        cfg: &Config,
        opts: ConnOptions,
    ) -> Tcb {
        let mut t = Tcb::blank(id, tuple, iss, now, cfg, opts);
        t.state = State::SynReceived;
        t.listener = Some(listener);
        t.owner = Owner::AcceptQueue;
        t.irs = irs;
        t.rcv_nxt = irs.wrapping_add(1);
        t.snd_nxt = iss.wrapping_add(1);
        t.snd_cur = t.snd_nxt;
        t.negotiate(peer, ts_offset, cfg);
        t.rcv_adv = t.rcv_nxt.wrapping_add(t.rcv_space());
        t.timers.set(Timer::Rtx, now + t.rtt.rto());
        t
    }

    /// Applies the options of the peer's SYN (RFC 9293 §3.7.1 MSS, RFC 7323 §2.2 and §3.2,
    /// RFC 2018 §2). Our own SYN offered everything the configuration enables.
    pub(crate) fn negotiate(&mut self, peer: PeerSyn, ts_offset: u32, cfg: &Config) {
        let default_mss = if self.tuple.local.is_ipv6() {
            1220
        } else {
            536
        };
        let peer_mss = peer.mss.unwrap_or(default_mss).max(64);
        self.mss = our_mss(cfg, &self.opts, &self.tuple).min(peer_mss);
        match peer.wscale {
            Some(ws) if cfg.window_scaling => {
                // RFC 7323 §2.3: a shift above 14 is treated as 14.
                self.snd_wscale = ws.min(14);
                self.rcv_wscale = our_wscale(self.recv_cap());
            }
            _ => {
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        self.sack = peer.sack && cfg.sack;
        self.ts = match peer.tsval {
            Some(tsval) if cfg.timestamps => Some(TsState {
                recent: tsval,
                offset: ts_offset,
            }),
            _ => None,
        };
        if self.ts.is_some() {
            // RFC 7323 §3.2 / RFC 9293 §3.7.1: options in every segment come out of the MSS.
            self.mss = self.mss.saturating_sub(12).max(32);
        }
        self.cc = Box::new(NewReno::new(cfg.initial_cwnd, self.mss as u32));
    }

    // ----- derived quantities -----

    fn send_cap(&self) -> usize {
        self.opts.send_buffer.max(1)
    }

    /// The receive buffer holds at least one segment, whatever SO_RCVBUF says.
    fn recv_cap(&self) -> usize {
        self.opts.recv_buffer.max(self.mss as usize)
    }

    /// Free receive buffer space, i.e. the window we can offer. Out-of-order bytes count as
    /// used, so the window never promises more than the buffer can hold.
    fn rcv_space(&self) -> u32 {
        (self
            .recv_cap()
            .saturating_sub(self.recv_buf.len() + self.ooo_bytes())) as u32
    }

    fn ooo_bytes(&self) -> usize {
        self.ooo.iter().map(|(_, d)| d.len()).sum()
    }

    /// RCV.WND: what is left of the advertised window.
    pub(crate) fn rcv_wnd(&self) -> u32 {
        let space = self.rcv_space();
        // What was promised stays promised, but never more than the buffer can ever hold.
        let adv = (self.rcv_adv.diff(self.rcv_nxt).max(0) as u32).min(self.recv_cap() as u32);
        space.max(adv)
    }

    /// Sequence number of the first byte in the send buffer.
    fn buf_seq(&self) -> SeqNum {
        if self.snd_una == self.iss {
            self.iss.wrapping_add(1)
        } else {
            self.snd_una
        }
    }

    fn flight(&self) -> u32 {
        self.snd_cur.diff(self.snd_una).max(0) as u32
    }

    fn our_fin_acked(&self) -> bool {
        self.fin_seq.is_some_and(|f| self.snd_una.gt(f))
    }

    fn peer_fin_consumed(&self) -> bool {
        self.peer_fin.is_some_and(|f| self.rcv_nxt.gt(f))
    }

    pub(crate) fn recv_queue(&self) -> usize {
        self.recv_buf.len()
    }

    pub(crate) fn send_queue(&self) -> usize {
        self.send_buf.len()
    }

    pub(crate) fn srtt(&self) -> Option<Duration> {
        self.rtt.srtt()
    }

    pub(crate) fn rto(&self) -> Duration {
        self.rtt.rto()
    }

    pub(crate) fn cwnd(&self) -> u32 {
        self.cc.cwnd()
    }

    pub(crate) fn ssthresh(&self) -> u32 {
        self.cc.ssthresh()
    }

    /// The window field our segments carry now (scaled).
    pub(crate) fn window_field(&self) -> u16 {
        (self.rcv_wnd() >> self.rcv_wscale).min(65535) as u16
    }

    pub(crate) fn ack_pending(&self) -> bool {
        self.ack_now || self.timers.armed(Timer::DelAck)
    }

    /// The earliest of this TCB's timers.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.next()
    }

    // ----- state changes -----

    /// Every state change goes through here: one event, one place for the MIB counters.
    pub(crate) fn set_state(&mut self, to: State, cause: Cause, ctx: &mut Ctx<'_>) {
        let from = self.state;
        if from == to {
            return;
        }
        let s = &mut *ctx.stats;
        let counted = |st: State| matches!(st, State::Established | State::CloseWait);
        if counted(from) && !counted(to) {
            s.curr_estab = s.curr_estab.saturating_sub(1);
        }
        if !counted(from) && counted(to) {
            s.curr_estab += 1;
        }
        // RFC 4022 tcpEstabResets / tcpAttemptFails.
        if counted(from) && to == State::Closed {
            s.estab_resets += 1;
        }
        if matches!(from, State::SynSent | State::SynReceived)
            && matches!(to, State::Closed | State::Listen)
        {
            s.attempt_fails += 1;
        }
        self.state = to;
        self.since = ctx.now;
        ctx.events.push_back(Event::StateChanged {
            socket: crate::SocketHandle::Conn(self.id),
            tuple: self.tuple,
            from,
            to,
            cause,
        });
        match to {
            State::Established => self.restart_keepalive(ctx),
            State::TimeWait => {
                self.stop_timers();
                ctx.events.push_back(Event::Closed {
                    conn: self.id,
                    reason: CloseReason::Graceful,
                });
            }
            State::Closed | State::Listen => {
                self.stop_timers();
                self.send_buf = VecDeque::new();
                self.ooo = Vec::new();
                let reason = match cause {
                    Cause::ResetReceived if from == State::SynSent => CloseReason::Refused,
                    Cause::ResetReceived => CloseReason::Reset,
                    Cause::RetransmitLimit | Cause::KeepaliveTimeout => CloseReason::TimedOut,
                    Cause::AppAbort | Cause::ClosedWithUnreadData | Cause::ListenerClosed => {
                        CloseReason::Aborted
                    }
                    _ => CloseReason::Graceful,
                };
                // A passive connection reset back to LISTEN was never the application's.
                if to == State::Closed {
                    ctx.events.push_back(Event::Closed {
                        conn: self.id,
                        reason,
                    });
                }
                if self.owner == Owner::App {
                    ctx.events.push_back(Event::Readable { conn: self.id });
                }
            }
            _ => {}
        }
    }

    /// RFC 1122 §4.2.3.6: probe only after the connection has been idle for the keep-alive
    /// time; any segment from the peer starts the wait again.
    fn restart_keepalive(&mut self, ctx: &Ctx<'_>) {
        self.keepalive_sent = 0;
        let at = match (self.opts.keepalive, self.state) {
            (Some(idle), State::Established | State::CloseWait) => Some(ctx.now + idle),
            _ => None,
        };
        self.timers.put(Timer::KeepAlive, at);
    }

    fn stop_timers(&mut self) {
        self.timers.clear_all();
        // `ack_now` survives: the ACK of the FIN that moved us to TIME_WAIT must still go out.
        self.syn_pending = false;
    }

    /// Sends RST <SEQ=SND.NXT> and closes (abort, close with unread data, data after close).
    fn reset_and_close(&mut self, cause: Cause, ctx: &mut Ctx<'_>) {
        if self.state != State::SynSent {
            ctx.ctl.push_back(CtlSegment::rst(self.tuple, self.snd_nxt));
            ctx.stats.out_rsts += 1;
        }
        self.set_state(State::Closed, cause, ctx);
    }

    // ----- user calls (RFC 9293 §3.10.2–3.10.5) -----

    /// Queues what fits of `data`; 0 when the buffer is full (a `Writable` event follows).
    pub(crate) fn send(&mut self, data: &[u8]) -> Result<usize, SendError> {
        self.check_send()?;
        let room = self.send_cap().saturating_sub(self.send_buf.len());
        let n = room.min(data.len());
        self.send_buf.extend(&data[..n]);
        if n < data.len() {
            self.want_writable = true;
        }
        Ok(n)
    }

    fn check_send(&self) -> Result<(), SendError> {
        if self.fin_seq.is_some() {
            return Err(SendError::BrokenPipe);
        }
        match self.state {
            State::SynSent | State::SynReceived | State::Established | State::CloseWait => Ok(()),
            State::Closed => Err(self.error.map_or(SendError::BrokenPipe, SendError::Conn)),
            _ => Err(SendError::BrokenPipe),
        }
    }

    /// Zero-copy send: `fill` writes into the free part of the send buffer (one contiguous
    /// slice, at most `max` bytes) and returns how many bytes it wrote.
    pub(crate) fn send_with(
        &mut self,
        max: usize,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, SendError> {
        self.check_send()?;
        let room = self.send_cap().saturating_sub(self.send_buf.len()).min(max);
        if room == 0 {
            self.want_writable = true;
            return Ok(0);
        }
        let old = self.send_buf.len();
        self.send_buf.resize(old + room, 0);
        let (a, b) = self.send_buf.as_mut_slices();
        // The new bytes are the tail of the ring: contiguous in `b`, or in `a` when `b` is empty.
        let tail = if b.is_empty() {
            let l = a.len();
            &mut a[l - room..]
        } else if b.len() >= room {
            let l = b.len();
            &mut b[l - room..]
        } else {
            self.send_buf.make_contiguous();
            let l = self.send_buf.len();
            &mut self.send_buf.as_mut_slices().0[l - room..]
        };
        let n = fill(tail).min(room);
        self.send_buf.truncate(old + n);
        if n == room && room < max {
            self.want_writable = true;
        }
        Ok(n)
    }

    /// Copies received data out; `Some(0)` is end of stream, `None` nothing yet.
    pub(crate) fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, RecvError> {
        if self.recv_buf.is_empty() || buf.is_empty() {
            return self.recv_status();
        }
        let n = buf.len().min(self.recv_buf.len());
        let (a, b) = self.recv_buf.as_slices();
        let from_a = n.min(a.len());
        buf[..from_a].copy_from_slice(&a[..from_a]);
        buf[from_a..n].copy_from_slice(&b[..n - from_a]);
        self.consume(n);
        Ok(Some(n))
    }

    /// Zero-copy receive: `take` sees the next contiguous chunk of received data and returns
    /// how many bytes it consumed.
    pub(crate) fn recv_with(
        &mut self,
        take: impl FnOnce(&[u8]) -> usize,
    ) -> Result<Option<usize>, RecvError> {
        if self.recv_buf.is_empty() {
            return self.recv_status();
        }
        let (a, _) = self.recv_buf.as_slices();
        let n = take(a).min(a.len());
        self.consume(n);
        Ok(Some(n))
    }

    fn consume(&mut self, n: usize) {
        self.recv_buf.drain(..n);
        // RFC 9293 §3.8.6.2.2 (receiver SWS avoidance): announce the reopened window only
        // once its right edge can move by min(buffer/2, MSS).
        let threshold = (self.recv_cap() as u32 / 2).min(self.mss as u32);
        let could = self.rcv_nxt.wrapping_add(self.rcv_space());
        if self.state.is_synchronized() && could.diff(self.rcv_adv) >= threshold as i32 {
            self.ack_now = true;
            self.ack_kind = TxKind::WindowUpdate;
        }
    }

    /// Copies received data without consuming it (MSG_PEEK).
    pub(crate) fn peek(&self, buf: &mut [u8]) -> Result<Option<usize>, RecvError> {
        if !self.recv_buf.is_empty() {
            let n = buf.len().min(self.recv_buf.len());
            for (d, s) in buf[..n].iter_mut().zip(self.recv_buf.iter()) {
                *d = *s;
            }
            return Ok(Some(n));
        }
        self.recv_status()
    }

    /// What a read of an empty receive buffer returns.
    fn recv_status(&self) -> Result<Option<usize>, RecvError> {
        if self.peer_fin_consumed() {
            return Ok(Some(0));
        }
        if let Some(e) = self.error {
            return Err(RecvError::Conn(e));
        }
        match self.state {
            State::Closed => Ok(Some(0)),
            _ => Ok(None),
        }
    }

    /// shutdown(SHUT_WR): queue a FIN after the data (RFC 9293 §3.10.4, half-close).
    pub(crate) fn shutdown_write(&mut self, ctx: &mut Ctx<'_>) -> Result<(), ShutdownError> {
        if self.fin_seq.is_some() {
            return Ok(());
        }
        let next = match self.state {
            State::SynReceived | State::Established => State::FinWait1,
            State::CloseWait => State::LastAck,
            State::SynSent => return Err(ShutdownError::NotConnected),
            State::Closed => {
                return Err(self
                    .error
                    .map_or(ShutdownError::NotConnected, ShutdownError::Conn))
            }
            _ => return Ok(()),
        };
        self.queue_fin();
        self.set_state(next, Cause::AppShutdown, ctx);
        Ok(())
    }

    fn queue_fin(&mut self) {
        let end = self.buf_seq().wrapping_add(self.send_buf.len() as u32);
        self.fin_seq = Some(end);
    }

    /// CLOSE (RFC 9293 §3.10.4). The handle is released; the connection finishes as an orphan.
    pub(crate) fn close(&mut self, ctx: &mut Ctx<'_>) {
        self.owner = Owner::Orphan;
        // Linux (tcp_close): unread received data means the peer's data was lost, so say so
        // with RST instead of a graceful FIN (RFC 2525 §2.17).
        if !self.recv_buf.is_empty()
            && self.state.is_synchronized()
            && self.state != State::TimeWait
        {
            self.reset_and_close(Cause::ClosedWithUnreadData, ctx);
            return;
        }
        match self.state {
            State::SynSent => self.set_state(State::Closed, Cause::AppClose, ctx),
            State::SynReceived | State::Established => {
                self.queue_fin();
                self.set_state(State::FinWait1, Cause::AppClose, ctx);
            }
            State::CloseWait => {
                self.queue_fin();
                self.set_state(State::LastAck, Cause::AppClose, ctx);
            }
            State::FinWait2 => self.arm_fin_wait2(ctx),
            _ => {}
        }
    }

    /// ABORT (RFC 9293 §3.10.5), also close with SO_LINGER {on, 0}.
    pub(crate) fn abort(&mut self, ctx: &mut Ctx<'_>) {
        self.owner = Owner::Orphan;
        match self.state {
            State::Closed | State::TimeWait | State::Listen => {}
            State::SynSent => self.set_state(State::Closed, Cause::AppAbort, ctx),
            _ => self.reset_and_close(Cause::AppAbort, ctx),
        }
    }

    /// setsockopt: buffers shrink no lower than what they hold; keep-alive restarts its wait.
    pub(crate) fn set_options(&mut self, opts: ConnOptions, ctx: &mut Ctx<'_>) {
        self.opts = opts;
        self.restart_keepalive(ctx);
    }

    fn arm_fin_wait2(&mut self, ctx: &mut Ctx<'_>) {
        if self.owner == Owner::Orphan && self.state == State::FinWait2 {
            self.timers
                .set(Timer::FinWait2, ctx.now + ctx.cfg.fin_timeout);
        }
    }

    // ----- segment arrival (RFC 9293 §3.10.7.3–3.10.7.4) -----

    pub(crate) fn on_segment(&mut self, seg: &TcpRepr<'_>, ctx: &mut Ctx<'_>) {
        match self.state {
            State::SynSent => self.on_segment_syn_sent(seg, ctx),
            State::Closed | State::Listen | State::TimeWait => {}
            _ => self.on_segment_synchronized(seg, ctx),
        }
    }

    fn on_segment_syn_sent(&mut self, seg: &TcpRepr<'_>, ctx: &mut Ctx<'_>) {
        let f = seg.flags;
        // First: check the ACK bit.
        if f.contains(Flags::ACK) && (seg.ack.le(self.iss) || seg.ack.gt(self.snd_nxt)) {
            if !f.contains(Flags::RST) {
                ctx.ctl.push_back(CtlSegment::rst(self.tuple, seg.ack));
                ctx.stats.out_rsts += 1;
            }
            return;
        }
        // Second: the RST bit. Acceptable only with an ACK of our SYN (RFC 5961 §3.2 for
        // SYN-SENT: the ACK check above already vouched for it).
        if f.contains(Flags::RST) {
            if f.contains(Flags::ACK) {
                self.error = Some(ConnError::Refused);
                self.set_state(State::Closed, Cause::ResetReceived, ctx);
            }
            return;
        }
        // Fourth: the SYN bit.
        if !f.contains(Flags::SYN) {
            return;
        }
        self.irs = seg.seq;
        self.rcv_nxt = seg.seq.wrapping_add(1);
        let ts_offset = self.ts.map_or(0, |t| t.offset);
        self.negotiate(PeerSyn::from_options(&seg.options), ts_offset, ctx.cfg);
        self.rcv_adv = self.rcv_nxt.wrapping_add(self.rcv_space());
        if f.contains(Flags::ACK) {
            self.snd_una = seg.ack;
            if self.snd_cur.lt(self.snd_una) {
                self.snd_cur = self.snd_una;
            }
            // RFC 7323 §2.2: the window of a SYN segment is never scaled.
            self.snd_wnd = seg.window as u32;
            self.max_snd_wnd = self.snd_wnd;
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
            self.take_rtt_sample(seg, ctx.now);
            self.timers.clear(Timer::Rtx);
            self.retries = 0;
            self.rtt.reset_backoff();
            self.syn_pending = false;
            self.set_state(State::Established, Cause::HandshakeAcked, ctx);
            self.ack_now = true;
            // RFC 9293: "continue processing at the sixth step below where the URG bit is
            // checked" — data and FIN carried by the SYN-ACK.
            self.process_text_and_fin(seg, ctx);
        } else {
            // Simultaneous open: <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>.
            self.snd_cur = self.iss;
            self.syn_pending = true;
            self.set_state(State::SynReceived, Cause::SimultaneousOpen, ctx);
        }
    }

    fn seq_acceptable(&self, seg: &TcpRepr<'_>) -> bool {
        let len = seg.segment_len();
        let wnd = self.rcv_wnd();
        match (len, wnd) {
            (0, 0) => seg.seq == self.rcv_nxt,
            (0, _) => seg.seq.in_window(self.rcv_nxt, wnd),
            (_, 0) => false,
            _ => {
                seg.seq.in_window(self.rcv_nxt, wnd)
                    || seg.seq.wrapping_add(len - 1).in_window(self.rcv_nxt, wnd)
            }
        }
    }

    fn on_segment_synchronized(&mut self, seg: &TcpRepr<'_>, ctx: &mut Ctx<'_>) {
        let f = seg.flags;
        if self.timers.armed(Timer::KeepAlive) {
            self.restart_keepalive(ctx);
        }
        // A retransmitted SYN in SYN_RECEIVED: our SYN-ACK was lost, send it again.
        if self.state == State::SynReceived
            && f.contains(Flags::SYN)
            && !f.contains(Flags::ACK)
            && seg.seq == self.irs
        {
            self.syn_pending = true;
            self.snd_cur = self.iss;
            return;
        }
        // First: sequence number check.
        if !self.seq_acceptable(seg) {
            // RFC 9293: a zero receive window still takes valid ACKs and RSTs.
            let zero_window_ack = self.rcv_wnd() == 0 && seg.seq == self.rcv_nxt;
            if !zero_window_ack {
                if !f.contains(Flags::RST) {
                    self.ack_now = true;
                }
                return;
            }
        }
        // RFC 7323 §5.3 PAWS: a segment whose TSval is older than TS.Recent is a duplicate.
        if let (Some(ts), Some(seg_ts)) = (self.ts, seg.options.timestamps) {
            if !f.contains(Flags::RST) && (seg_ts.tsval.wrapping_sub(ts.recent) as i32) < 0 {
                ctx.stats.paws_rejected += 1;
                self.ack_now = true;
                return;
            }
        }
        // Second: the RST bit (RFC 5961 §3.2).
        if f.contains(Flags::RST) {
            if seg.seq != self.rcv_nxt {
                ctx.stats.challenge_acks += 1;
                self.ack_now = true;
                self.ack_kind = TxKind::ChallengeAck;
                return;
            }
            self.on_reset(ctx);
            return;
        }
        // Fourth: a SYN in a synchronized state gets a challenge ACK (RFC 5961 §4.2).
        if f.contains(Flags::SYN) {
            ctx.stats.challenge_acks += 1;
            self.ack_now = true;
            self.ack_kind = TxKind::ChallengeAck;
            return;
        }
        // Fifth: the ACK field.
        if !f.contains(Flags::ACK) {
            return;
        }
        if let (Some(ts), Some(seg_ts)) = (self.ts.as_mut(), seg.options.timestamps) {
            // RFC 7323 §4.3: remember the newest TSval of an in-order segment.
            if seg.seq.le(self.rcv_nxt) && (seg_ts.tsval.wrapping_sub(ts.recent) as i32) >= 0 {
                ts.recent = seg_ts.tsval;
            }
        }
        if self.state == State::SynReceived {
            if seg.ack.gt(self.snd_una) && seg.ack.le(self.snd_nxt) {
                self.snd_wnd = (seg.window as u32) << self.snd_wscale;
                self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
                self.snd_wl1 = seg.seq;
                self.snd_wl2 = seg.ack;
                self.syn_pending = false;
                self.set_state(State::Established, Cause::HandshakeAcked, ctx);
            } else {
                // <SEQ=SEG.ACK><CTL=RST>
                ctx.ctl.push_back(CtlSegment::rst(self.tuple, seg.ack));
                ctx.stats.out_rsts += 1;
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

    fn on_reset(&mut self, ctx: &mut Ctx<'_>) {
        match self.state {
            State::SynReceived if self.listener.is_some() => {
                // RFC 9293: a passively opened connection returns to LISTEN.
                self.set_state(State::Listen, Cause::ResetReceived, ctx);
            }
            State::SynReceived => {
                self.error = Some(ConnError::Refused);
                self.set_state(State::Closed, Cause::ResetReceived, ctx);
            }
            _ => {
                self.error = Some(ConnError::Reset);
                // RFC 9293 §3.10.7.4: queued data is flushed on reset.
                self.recv_buf.clear();
                self.set_state(State::Closed, Cause::ResetReceived, ctx);
            }
        }
    }

    /// The fifth step for synchronized states. Returns false when the segment is to be dropped.
    fn process_ack(&mut self, seg: &TcpRepr<'_>, ctx: &mut Ctx<'_>) -> bool {
        let ack = seg.ack;
        if ack.gt(self.snd_nxt) {
            // Acknowledges something not yet sent (RFC 9293; RFC 5961 §5.2).
            self.ack_now = true;
            return false;
        }
        if ack.lt(self.snd_una - self.max_snd_wnd.max(1))
            && ack.lt(self.snd_una)
            && self.max_snd_wnd > 0
        {
            // Older than anything in the window: RFC 5961 §5.2 says ACK and drop.
            ctx.stats.challenge_acks += 1;
            self.ack_now = true;
            self.ack_kind = TxKind::ChallengeAck;
            return false;
        }
        let window = (seg.window as u32) << self.snd_wscale;
        let mss = self.mss as u32;
        if ack.gt(self.snd_una) {
            self.on_new_ack(seg, ctx);
        } else if ack == self.snd_una
            && seg.payload.is_empty()
            && !seg.flags.intersects(Flags::SYN | Flags::FIN)
            && window == self.snd_wnd
            && self.snd_nxt.gt(self.snd_una)
        {
            // RFC 5681 §2 "duplicate acknowledgment".
            self.dup_acks += 1;
            if self.recover.is_some() {
                self.cc.on_dup_ack_in_recovery(mss);
            } else if self.dup_acks == 3 && self.rto_recover.is_none_or(|r| self.snd_una.gt(r)) {
                // RFC 6582 §3.2 step 2: enter fast retransmit / fast recovery.
                self.recover = Some(self.snd_nxt);
                self.cc.on_enter_recovery(self.flight(), mss);
                self.fast_rtx = true;
            }
        }
        // RFC 9293 §3.10.7.4: update the send window only from newer segments.
        if self.snd_wl1.lt(seg.seq) || (self.snd_wl1 == seg.seq && self.snd_wl2.le(ack)) {
            let was_zero = self.snd_wnd == 0;
            self.snd_wnd = window;
            self.max_snd_wnd = self.max_snd_wnd.max(window);
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = ack;
            if self.snd_wnd > 0 {
                self.timers.clear(Timer::Persist);
                if was_zero {
                    self.rtt.reset_backoff();
                }
            }
        }
        if self.our_fin_acked() {
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

    fn on_new_ack(&mut self, seg: &TcpRepr<'_>, ctx: &mut Ctx<'_>) {
        let ack = seg.ack;
        let mss = self.mss as u32;
        let mut acked = ack.diff(self.snd_una) as u32;
        if self.snd_una == self.iss {
            acked -= 1; // our SYN
        }
        if let Some(f) = self.fin_seq {
            if ack.gt(f) {
                acked = acked.saturating_sub(1); // our FIN
            }
        }
        let drained = (acked as usize).min(self.send_buf.len());
        self.send_buf.drain(..drained);
        self.take_rtt_sample(seg, ctx.now);
        self.snd_una = ack;
        if self.snd_cur.lt(ack) {
            self.snd_cur = ack;
        }
        self.retries = 0;
        self.rtt.reset_backoff();
        self.dup_acks = 0;
        match self.recover {
            Some(r) if ack.ge(r) => {
                self.recover = None;
                self.cc.on_exit_recovery(self.flight(), mss);
            }
            Some(_) => {
                // RFC 6582 §3.2 step 5: a partial ACK retransmits the next hole at once.
                self.cc.on_partial_ack(drained as u32, mss);
                self.fast_rtx = true;
            }
            None => self.cc.on_ack(drained as u32, mss),
        }
        // RFC 6298 §5.2–5.3.
        let rtx = if self.snd_una == self.snd_nxt {
            None
        } else {
            Some(ctx.now + self.rtt.rto())
        };
        self.timers.put(Timer::Rtx, rtx);
        if self.want_writable && drained > 0 && self.state != State::Closed {
            self.want_writable = false;
            ctx.events.push_back(Event::Writable { conn: self.id });
        }
    }

    fn take_rtt_sample(&mut self, seg: &TcpRepr<'_>, now: Instant) {
        if let (Some(ts), Some(seg_ts)) = (self.ts, seg.options.timestamps) {
            // RFC 7323 §4.1: RTT from the echoed timestamp. After a timeout the peer may echo
            // an earlier transmission of the data (its TS.Recent only moves on in-window
            // segments), which would inflate SRTT by whole RTOs; such echoes are skipped
            // until the data outstanding at the timeout is acknowledged.
            if let Some(floor) = self.rto_tsval {
                if self.rto_recover.is_some_and(|r| seg.ack.gt(r)) {
                    self.rto_tsval = None;
                } else if (seg_ts.tsecr.wrapping_sub(floor) as i32) < 0 {
                    return;
                }
            }
            if seg_ts.tsecr != 0 {
                let ms = ts_clock(now, ts.offset).wrapping_sub(seg_ts.tsecr);
                if (ms as i32) >= 0 {
                    self.rtt.sample(Duration::from_millis(ms as u64));
                }
            }
            return;
        }
        if let Some((seq, sent)) = self.rtt_probe {
            if seg.ack.gt(seq) {
                self.rtt.sample(now - sent);
                self.rtt_probe = None;
            }
        }
    }

    /// Sixth to eighth steps: segment text and FIN.
    fn process_text_and_fin(&mut self, seg: &TcpRepr<'_>, ctx: &mut Ctx<'_>) {
        let mut seq = seg.seq;
        if seg.flags.contains(Flags::SYN) {
            seq = seq.wrapping_add(1);
        }
        if seg.flags.contains(Flags::FIN) && self.peer_fin.is_none() {
            self.peer_fin = Some(seq.wrapping_add(seg.payload.len() as u32));
        }
        let receiving = matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        );
        if receiving && !seg.payload.is_empty() {
            let new_data = seq.wrapping_add(seg.payload.len() as u32).gt(self.rcv_nxt);
            if self.owner == Owner::Orphan && new_data && self.fin_seq.is_some() {
                // Linux (TCPAbortOnData): the application closed and can never read this.
                self.reset_and_close(Cause::ClosedWithUnreadData, ctx);
                return;
            }
            self.accept_data(seq, seg.payload, ctx);
        }
        self.try_consume_fin(ctx);
        if self.fin_acked_pending {
            self.fin_acked_pending = false;
            if self.state == State::FinWait1 {
                self.set_state(State::FinWait2, Cause::FinAcked, ctx);
                self.arm_fin_wait2(ctx);
            }
        }
    }

    fn accept_data(&mut self, mut seq: SeqNum, mut data: &[u8], ctx: &mut Ctx<'_>) {
        // Trim what we already have.
        let behind = self.rcv_nxt.diff(seq);
        if behind > 0 {
            if behind as usize >= data.len() {
                self.ack_now = true; // a pure duplicate: tell the sender where we are
                return;
            }
            data = &data[behind as usize..];
            seq = self.rcv_nxt;
        }
        // Trim what lies beyond the window.
        let wnd = self.rcv_wnd() as i64;
        let offset = seq.diff(self.rcv_nxt) as i64;
        let fits = (wnd - offset).clamp(0, data.len() as i64) as usize;
        if fits < data.len() {
            self.ack_now = true;
        }
        data = &data[..fits];
        if data.is_empty() {
            return;
        }
        if seq == self.rcv_nxt {
            let filling_hole = !self.ooo.is_empty();
            self.recv_buf.extend(data);
            self.rcv_nxt = self.rcv_nxt.wrapping_add(data.len() as u32);
            self.drain_ooo();
            ctx.events.push_back(Event::Readable { conn: self.id });
            // RFC 9293 §3.8.6.3 / RFC 5681 §4.2: ACK at least every second full segment and at
            // once when a hole is filled; otherwise wait for the delayed-ACK timer.
            self.unacked_segs = self.unacked_segs.saturating_add(1);
            match ctx.cfg.delayed_ack {
                Some(d) if !filling_hole && self.unacked_segs < 2 => {
                    if !self.timers.armed(Timer::DelAck) {
                        self.timers.set(Timer::DelAck, ctx.now + d);
                    }
                }
                _ => self.ack_now = true,
            }
        } else {
            self.insert_ooo(seq, data);
            // RFC 5681 §4.2: an out-of-order segment is acknowledged at once (duplicate ACK).
            self.ack_now = true;
        }
    }

    fn insert_ooo(&mut self, seq: SeqNum, data: &[u8]) {
        let end = seq.wrapping_add(data.len() as u32);
        // Keep only bytes not already held: cut the new segment against every stored one.
        let mut pieces: Vec<(SeqNum, &[u8])> = vec![(seq, data)];
        for (s, d) in &self.ooo {
            let e = s.wrapping_add(d.len() as u32);
            let mut next = Vec::new();
            for (ps, pd) in pieces {
                let pe = ps.wrapping_add(pd.len() as u32);
                if pe.le(*s) || ps.ge(e) {
                    next.push((ps, pd));
                    continue;
                }
                if ps.lt(*s) {
                    next.push((ps, &pd[..s.diff(ps) as usize]));
                }
                if pe.gt(e) {
                    next.push((e, &pd[e.diff(ps) as usize..]));
                }
            }
            pieces = next;
        }
        let _ = end;
        for (ps, pd) in pieces {
            if !pd.is_empty() {
                self.ooo.push((ps, pd.to_vec()));
            }
        }
        let base = self.rcv_nxt;
        self.ooo.sort_by_key(|(s, _)| s.diff(base));
    }

    fn drain_ooo(&mut self) {
        loop {
            let rcv_nxt = self.rcv_nxt;
            let Some(i) = self.ooo.iter().position(|(s, _)| s.le(rcv_nxt)) else {
                break;
            };
            let (s, d) = self.ooo.remove(i);
            let skip = rcv_nxt.diff(s) as usize;
            if skip < d.len() {
                self.recv_buf.extend(&d[skip..]);
                self.rcv_nxt = self.rcv_nxt.wrapping_add((d.len() - skip) as u32);
            }
        }
    }

    fn try_consume_fin(&mut self, ctx: &mut Ctx<'_>) {
        let Some(fin) = self.peer_fin else { return };
        if fin != self.rcv_nxt {
            return;
        }
        self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
        self.ack_now = true;
        self.timers.clear(Timer::DelAck);
        ctx.events.push_back(Event::Readable { conn: self.id });
        match self.state {
            State::SynReceived | State::Established => {
                self.set_state(State::CloseWait, Cause::FinReceived, ctx)
            }
            State::FinWait1 if self.fin_acked_pending || self.our_fin_acked() => {
                self.fin_acked_pending = false;
                self.set_state(State::TimeWait, Cause::FinAndAckReceived, ctx);
            }
            State::FinWait1 => self.set_state(State::Closing, Cause::FinReceived, ctx),
            State::FinWait2 => self.set_state(State::TimeWait, Cause::FinReceived, ctx),
            _ => {}
        }
    }

    // ----- timers -----

    pub(crate) fn handle_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        if self.timers.expired(Timer::FinWait2, now) {
            self.timers.clear(Timer::FinWait2);
            ctx.stats.fin_wait2_timeouts += 1;
            self.set_state(State::Closed, Cause::FinWait2Timeout, ctx);
            return;
        }
        if self.timers.expired(Timer::DelAck, now) {
            self.timers.clear(Timer::DelAck);
            self.ack_now = true;
            ctx.stats.delayed_acks += 1;
        }
        if self.timers.expired(Timer::Persist, now) {
            // RFC 9293 §3.8.6.1: probe a zero window with one byte.
            self.timers.clear(Timer::Persist);
            self.persist_probe = true;
            self.rtt.back_off();
        }
        if self.timers.expired(Timer::Rtx, now) {
            self.on_rto(ctx);
        }
        if self.timers.expired(Timer::KeepAlive, now) {
            self.on_keepalive(ctx);
        }
    }

    fn on_keepalive(&mut self, ctx: &mut Ctx<'_>) {
        if self.snd_una != self.snd_nxt {
            // Data in flight: the retransmission timer watches the peer already.
            self.restart_keepalive(ctx);
            return;
        }
        if self.keepalive_sent as u32 >= self.opts.keepalive_probes {
            self.error = Some(ConnError::TimedOut);
            self.set_state(State::Closed, Cause::KeepaliveTimeout, ctx);
            return;
        }
        self.keepalive_sent = self.keepalive_sent.saturating_add(1);
        self.keepalive_probe = true;
        self.timers
            .set(Timer::KeepAlive, ctx.now + self.opts.keepalive_interval);
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

    fn on_rto(&mut self, ctx: &mut Ctx<'_>) {
        self.timers.clear(Timer::Rtx);
        if self.snd_una == self.snd_nxt && !self.syn_pending {
            return;
        }
        ctx.stats.timeouts += 1;
        if self.retries >= self.retry_limit(ctx.cfg) {
            self.error = Some(ConnError::TimedOut);
            self.set_state(State::Closed, Cause::RetransmitLimit, ctx);
            return;
        }
        self.retries += 1;
        self.rtt.back_off();
        let mss = self.mss as u32;
        self.cc.on_rto(self.flight(), mss);
        // RFC 6582 §4: after a timeout, duplicate ACKs for data sent before it do not start
        // another fast retransmit. A SYN timeout leaves no data behind, so it sets nothing.
        if self.snd_una != self.iss {
            self.rto_recover = Some(self.snd_nxt);
            self.rto_tsval = self.ts.map(|ts| ts_clock(ctx.now, ts.offset));
        }
        self.recover = None;
        self.dup_acks = 0;
        self.rtt_probe = None;
        self.snd_cur = self.snd_una;
        if self.snd_una == self.iss {
            self.syn_pending = true;
        }
        self.timers.set(Timer::Rtx, ctx.now + self.rtt.rto());
    }

    // ----- output -----

    /// The next segment this TCB wants to send, if any; updates the send state as if sent.
    pub(crate) fn next_segment<'b>(
        &'b mut self,
        now: Instant,
        cfg: &Config,
        stats: &mut Stats,
        scratch: &'b mut Vec<u8>,
    ) -> Option<(TcpRepr<'b>, TxKind)> {
        match self.state {
            State::Closed | State::Listen | State::TimeWait => return None,
            State::SynSent | State::SynReceived if self.syn_pending => {
                let rtx = self.snd_nxt != self.iss;
                let kind = if rtx {
                    TxKind::Retransmission
                } else {
                    TxKind::Normal
                };
                return Some((self.syn_segment(now, cfg, stats), kind));
            }
            State::SynSent => return None,
            _ => {}
        }
        if self.state != State::SynReceived {
            if let Some((seq, off, len, fin, kind)) = self.plan_data(now, stats) {
                return Some((
                    self.emit_data(seq, off, len, fin, now, stats, scratch),
                    kind,
                ));
            }
        }
        if self.keepalive_probe {
            // RFC 1122 §4.2.3.6: SEG.SEQ = SND.NXT-1, so the peer must answer with an ACK.
            self.keepalive_probe = false;
            let seq = self.snd_nxt - 1u32;
            let repr = self.finish_segment(seq, Flags::ACK, &[], now, stats);
            return Some((repr, TxKind::KeepAlive));
        }
        if self.ack_now {
            let kind = std::mem::replace(&mut self.ack_kind, TxKind::Normal);
            let seq = self.snd_nxt;
            return Some((self.finish_segment(seq, Flags::ACK, &[], now, stats), kind));
        }
        None
    }

    fn syn_segment(&mut self, now: Instant, cfg: &Config, stats: &mut Stats) -> TcpRepr<'static> {
        let is_synack = self.state == State::SynReceived;
        let mut options = TcpOptions {
            mss: Some(our_mss(cfg, &self.opts, &self.tuple)),
            ..TcpOptions::default()
        };
        // A SYN offers what the configuration enables; a SYN-ACK answers only what the
        // peer offered (RFC 7323 §2.2, §3.2; RFC 2018 §2).
        if cfg.window_scaling && (!is_synack || self.rcv_wscale > 0 || self.snd_wscale > 0) {
            options.window_scale = Some(if is_synack {
                self.rcv_wscale
            } else {
                our_wscale(self.recv_cap())
            });
        }
        options.sack_permitted = cfg.sack && (!is_synack || self.sack);
        let ts_on = cfg.timestamps && (!is_synack || self.ts.is_some());
        if ts_on {
            let offset = self.ts.map_or(0, |t| t.offset);
            options.timestamps = Some(Timestamps {
                tsval: ts_clock(now, offset),
                tsecr: if is_synack {
                    self.ts.map_or(0, |t| t.recent)
                } else {
                    0
                },
            });
        }
        let retransmit = self.snd_nxt != self.iss;
        if retransmit {
            stats.retrans_segs += 1;
            self.retrans_total += 1;
        }
        self.syn_pending = false;
        self.snd_cur = self.iss.wrapping_add(1);
        self.snd_nxt = self.snd_cur;
        if !self.timers.armed(Timer::Rtx) {
            self.timers.set(Timer::Rtx, now + self.rtt.rto());
        }
        if !retransmit && self.ts.is_none() {
            self.rtt_probe = Some((self.iss, now));
        }
        let window = self.rcv_space().min(65535) as u16;
        self.ack_now = false;
        self.timers.clear(Timer::DelAck);
        stats.out_segs += 1;
        TcpRepr {
            src_port: self.tuple.local.port(),
            dst_port: self.tuple.remote.port(),
            seq: self.iss,
            ack: if is_synack { self.rcv_nxt } else { SeqNum(0) },
            flags: if is_synack {
                Flags::SYN | Flags::ACK
            } else {
                Flags::SYN
            },
            window,
            urgent: 0,
            options,
            payload: &[],
        }
    }

    /// Decides the next data and/or FIN segment and advances the send state as if it were
    /// sent: `(seq, offset into the send buffer, length, FIN)`.
    fn plan_data(
        &mut self,
        now: Instant,
        stats: &mut Stats,
    ) -> Option<(SeqNum, usize, u32, bool, TxKind)> {
        let mss = self.mss as u32;
        let buf_seq = self.buf_seq();
        let data_end = buf_seq.wrapping_add(self.send_buf.len() as u32);
        if self.fast_rtx {
            self.fast_rtx = false;
            // Retransmit one segment from SND.UNA without moving the cursor.
            let seq = self.snd_una.max(buf_seq);
            let avail = data_end.diff(seq).max(0) as u32;
            let len = avail.min(mss);
            let fin = self.fin_seq.is_some_and(|f| seq.wrapping_add(len) == f) && len < mss;
            if len > 0 || fin {
                stats.retrans_segs += 1;
                self.retrans_total += 1;
                let off = seq.diff(buf_seq) as usize;
                return Some((seq, off, len, fin, TxKind::Retransmission));
            }
        }
        let cur = self.snd_cur.max(buf_seq);
        let available = data_end.diff(cur).max(0) as u32;
        let flight = self.flight();
        let window = self.snd_wnd.min(self.cc.cwnd());
        let room = window.saturating_sub(flight);
        let mut len = available.min(room).min(mss);
        let is_rtx = cur.lt(self.snd_nxt);
        let mut kind = if is_rtx {
            TxKind::Retransmission
        } else {
            TxKind::Normal
        };
        if len == 0 && available > 0 && self.persist_probe {
            // Zero-window probe: one byte beyond the window.
            len = 1;
            kind = TxKind::WindowProbe;
        }
        self.persist_probe = false;
        let fin_here = self
            .fin_seq
            .is_some_and(|f| cur.wrapping_add(len) == f && f.ge(cur));
        let fin_unsent = fin_here && self.snd_cur.le(self.fin_seq.unwrap_or(cur));
        let send_data = len > 0
            && (is_rtx
                || len == mss
                || len == 1 && room == 0
                || (len == available && (self.opts.nodelay || flight == 0 || fin_here)));
        if send_data || (len == 0 && fin_unsent && available == 0) {
            if is_rtx {
                stats.retrans_segs += 1;
                self.retrans_total += 1;
            }
            let off = cur.diff(buf_seq) as usize;
            let fin = fin_unsent && (len == available);
            self.snd_cur = cur.wrapping_add(len + fin as u32);
            if self.snd_cur.gt(self.snd_nxt) {
                self.snd_nxt = self.snd_cur;
            }
            if !self.timers.armed(Timer::Rtx) {
                self.timers.set(Timer::Rtx, now + self.rtt.rto());
            }
            if !is_rtx && self.ts.is_none() && self.rtt_probe.is_none() {
                self.rtt_probe = Some((cur, now));
            }
            return Some((cur, off, len, fin, kind));
        }
        // RFC 9293 §3.8.6.1: data waits on a zero window with nothing in flight — arm persist.
        if available > 0 && self.snd_wnd == 0 && flight == 0 && !self.timers.armed(Timer::Persist) {
            self.timers.set(Timer::Persist, now + self.rtt.rto());
        }
        None
    }

    /// A data (and/or FIN) segment. The payload is borrowed straight from the send buffer; only
    /// a segment straddling the ring's wrap point (once per buffer cycle) is copied to `scratch`.
    #[allow(clippy::too_many_arguments)]
    fn emit_data<'b>(
        &'b mut self,
        seq: SeqNum,
        off: usize,
        len: u32,
        fin: bool,
        now: Instant,
        stats: &mut Stats,
        scratch: &'b mut Vec<u8>,
    ) -> TcpRepr<'b> {
        let mut flags = Flags::ACK;
        if fin {
            flags |= Flags::FIN;
        }
        let last = seq.wrapping_add(len) == self.buf_seq().wrapping_add(self.send_buf.len() as u32);
        if len > 0 && last {
            flags |= Flags::PSH;
        }
        let mut repr: TcpRepr<'b> = self.finish_segment(seq, flags, &[], now, stats);
        let (a, b) = self.send_buf.as_slices();
        let end = off + len as usize;
        repr.payload = if end <= a.len() {
            &a[off..end]
        } else if off >= a.len() {
            &b[off - a.len()..end - a.len()]
        } else {
            scratch.clear();
            scratch.extend_from_slice(&a[off..]);
            scratch.extend_from_slice(&b[..end - a.len()]);
            scratch
        };
        repr
    }

    /// Fills in ACK, window and options common to every segment of a synchronized connection.
    fn finish_segment<'b>(
        &mut self,
        seq: SeqNum,
        flags: Flags,
        payload: &'b [u8],
        now: Instant,
        stats: &mut Stats,
    ) -> TcpRepr<'b> {
        // RFC 9293 §3.8.6.2.2: never move the right edge left. Out-of-order data fills the
        // buffer but lies inside the window already promised, so duplicate ACKs keep the same
        // window — which RFC 5681 §2 needs for them to count as duplicates.
        let wnd_field = (self.rcv_wnd() >> self.rcv_wscale).min(65535);
        let advertised = wnd_field << self.rcv_wscale;
        let edge = self.rcv_nxt.wrapping_add(advertised);
        if edge.gt(self.rcv_adv) {
            self.rcv_adv = edge;
        }
        let mut options = TcpOptions::default();
        if let Some(ts) = self.ts {
            options.timestamps = Some(Timestamps {
                tsval: ts_clock(now, ts.offset),
                tsecr: ts.recent,
            });
        }
        if self.sack {
            // RFC 2018 §4: most recent block first; three fit beside timestamps.
            let max = if self.ts.is_some() { 3 } else { 4 };
            for (i, (s, d)) in self.ooo.iter().take(max).enumerate() {
                options.sack_blocks[i] = Some(SackBlock {
                    left: *s,
                    right: s.wrapping_add(d.len() as u32),
                });
            }
        }
        self.ack_now = false;
        self.timers.clear(Timer::DelAck);
        self.unacked_segs = 0;
        stats.out_segs += 1;
        TcpRepr {
            src_port: self.tuple.local.port(),
            dst_port: self.tuple.remote.port(),
            seq,
            ack: self.rcv_nxt,
            flags,
            window: wnd_field as u16,
            urgent: 0,
            options,
            payload,
        }
    }
}
