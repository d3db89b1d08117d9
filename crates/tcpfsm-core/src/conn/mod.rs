//! One connection's state machine (RFC 9293 §3.10), from SYN_SENT (or SYN_RECEIVED, once a
//! half-open entry is acknowledged) until CLOSED. On entering TIME_WAIT the endpoint turns it
//! into a compact record (`time_wait.rs`); a connection never handles TIME_WAIT segments.
//!
//! The connection is a send side (`send.rs`), a receive side (`recv.rs`) and a timer table;
//! this module holds what ties them: the state, its one change function, the application's
//! calls, and the options negotiated in the handshake. Segment arrival is `input.rs`, segment
//! building `output.rs`, timers `timeout.rs`, loss detection `loss.rs`.

mod input;
mod output;
pub(crate) mod recv;
pub(crate) mod send;
pub(crate) mod spare;
mod stats;
mod timeout;

use crate::builder::{our_mss, our_wscale, CtlQueue, CtlSegment, PeerSyn};
use crate::cc::CongestionControl;
use crate::ratelimit::{ChallengeBudget, OowStamp};
use crate::recovery::sender::{LossRecovery, RecoveryConfig};
use crate::rtt::RttEstimator;
use crate::secrets::Secrets;
use crate::stats::Counter;
use crate::time::{Duration, Instant};
use crate::timers::{Timer, Timers};
use crate::{
    Cause, CloseReason, Config, ConnError, ConnHandle, ConnOptions, Event, FourTuple,
    ListenerHandle, RecvError, SendError, ShutdownError, SocketHandle, State, Stats,
};
use recv::RecvSide;
use send::SendSide;
use std::collections::VecDeque;
use tcpfsm_wire::checksum::Checksum;
use tcpfsm_wire::{Flags, SeqNum, TcpRepr};

/// What a connection needs from its endpoint while it handles an input.
pub(crate) struct Ctx<'a> {
    pub(crate) now: Instant,
    pub(crate) cfg: &'a Config,
    pub(crate) events: &'a mut VecDeque<Event>,
    pub(crate) stats: &'a mut Stats,
    pub(crate) ctl: &'a mut CtlQueue,
    pub(crate) challenge: &'a mut ChallengeBudget,
    pub(crate) secrets: &'a Secrets,
    pub(crate) spare: &'a mut spare::Spare,
}

/// Who holds the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The application holds a handle.
    App,
    /// Established, waiting in its listener's accept queue.
    AcceptQueue,
    /// The application closed its handle; the connection finishes on its own.
    Orphan,
}

/// RFC 7323 timestamps, when both sides offered them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TsState {
    /// TS.Recent (RFC 7323 §4.3) and when it was recorded (for the 24-day rule, §5.5).
    pub(crate) recent: u32,
    pub(crate) recent_at: Instant,
    /// Our per-connection TSval offset (RFC 7323 §5.4).
    pub(crate) offset: u32,
}

/// [`ConnOptions`] as a connection keeps them: times in milliseconds (the buffer sizes live
/// in the send and receive rings), 20 bytes instead of 80.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SockOpts {
    /// 0: keep-alive off.
    keepalive_ms: u32,
    keepalive_interval_ms: u32,
    pub(crate) keepalive_probes: u32,
    /// `u32::MAX`: no SO_LINGER.
    linger_ms: u32,
    /// 0: no TCP_MAXSEG.
    pub(crate) mss: u16,
    pub(crate) nodelay: bool,
}

fn ms32(d: Duration) -> u32 {
    d.as_millis().min(u32::MAX as u128 - 1) as u32
}

impl SockOpts {
    fn new(o: &ConnOptions) -> SockOpts {
        SockOpts {
            keepalive_ms: o.keepalive.map_or(0, |d| ms32(d).max(1)),
            keepalive_interval_ms: ms32(o.keepalive_interval).max(1),
            keepalive_probes: o.keepalive_probes,
            linger_ms: o.linger.map_or(u32::MAX, ms32),
            mss: o.mss.unwrap_or(0),
            nodelay: o.nodelay,
        }
    }

    pub(crate) fn keepalive(&self) -> Option<Duration> {
        (self.keepalive_ms != 0).then(|| Duration::from_millis(self.keepalive_ms as u64))
    }

    pub(crate) fn keepalive_interval(&self) -> Duration {
        Duration::from_millis(self.keepalive_interval_ms as u64)
    }

    /// SO_LINGER {on, 0}: close aborts.
    pub(crate) fn linger_zero(&self) -> bool {
        self.linger_ms == 0
    }

    fn options(&self, send_buffer: usize, recv_buffer: usize) -> ConnOptions {
        let mut o = ConnOptions::from_parts(send_buffer, recv_buffer);
        o.nodelay = self.nodelay;
        o.keepalive = self.keepalive();
        o.keepalive_interval = self.keepalive_interval();
        o.keepalive_probes = self.keepalive_probes;
        o.linger =
            (self.linger_ms != u32::MAX).then(|| Duration::from_millis(self.linger_ms as u64));
        o.mss = (self.mss != 0).then_some(self.mss);
        o
    }
}

pub(crate) struct Conn {
    pub(crate) id: ConnHandle,
    pub(crate) tuple: FourTuple,
    state: State,
    pub(crate) since: Instant,
    pub(crate) owner: Owner,
    /// The listener a passive connection came from.
    pub(crate) listener: Option<ListenerHandle>,
    pub(crate) snd: SendSide,
    pub(crate) rcv: RecvSide,
    timers: Timers,
    pub(crate) opts: SockOpts,
    pub(crate) ts: Option<TsState>,
    /// SACK permitted in both directions (RFC 2018 §2).
    sack: bool,
    /// The congestion controller, built once, when the handshake fixes the MSS
    /// (`negotiate`): nothing consults one before (SYN_SENT), so building it with the
    /// connection as well cost a second allocation and construction for nothing.
    cc: Option<Box<dyn CongestionControl>>,
    /// Loss recovery (SACK scoreboard, RACK-TLP, PRR), from the handshake's completion on.
    lr: Option<Box<stats::Recovery>>,
    /// The retransmission timer is armed as RACK-TLP's probe timeout (RFC 8985 §7.2).
    pto_armed: bool,
    /// A tail loss probe of new data is due (RFC 8985 §7.3).
    probe_new_data: bool,
    /// A tail loss probe retransmitting the last segment is due.
    probe_last: bool,
    /// Sending was held back by the congestion window since the last ACK (RFC 7661).
    cwnd_limited: bool,
    /// SO_ERROR: how the connection failed.
    pub(crate) error: Option<ConnError>,
    /// RFC 5961 §7: the last out-of-window ACK.
    oow: OowStamp,
    keepalive_sent: u8,
    keepalive_due: bool,
    probe_due: bool,
    /// FIN_WAIT_1 whose FIN the segment being processed acknowledged: held so a FIN in the
    /// same segment goes to TIME_WAIT at once (RFC 9293 §3.10.7.4, eighth step).
    fin_acked_pending: bool,
    /// The application wants a `Writable` when space opens (a send was cut short).
    want_writable: bool,
    /// The endpoint's transmit queue holds this connection.
    pub(crate) in_tx: bool,
    /// `next_segment` just sent a segment after which the next call is sure to find nothing
    /// until the endpoint hands the connection something: the transmit queue drops it at
    /// once.
    pub(crate) tx_idle: bool,
}

impl Conn {
    fn blank(
        id: ConnHandle,
        tuple: FourTuple,
        iss: SeqNum,
        now: Instant,
        cfg: &Config,
        opts: ConnOptions,
    ) -> Conn {
        let mss = our_mss(cfg, opts.mss, &tuple);
        let rtt = RttEstimator::new(cfg.rto_initial, cfg.rto_min, cfg.rto_max);
        Conn {
            id,
            tuple,
            state: State::Closed,
            since: now,
            owner: Owner::App,
            listener: None,
            snd: SendSide::new(iss, opts.send_buffer.max(1), mss, rtt),
            rcv: RecvSide::unsynchronized(opts.recv_buffer.max(mss as usize)),
            timers: Timers::default(),
            opts: SockOpts::new(&opts),
            ts: None,
            sack: false,
            cc: None,
            lr: None,
            pto_armed: false,
            probe_new_data: false,
            probe_last: false,
            cwnd_limited: false,
            error: None,
            oow: OowStamp::default(),
            keepalive_sent: 0,
            keepalive_due: false,
            probe_due: false,
            fin_acked_pending: false,
            want_writable: false,
            in_tx: false,
            tx_idle: false,
        }
    }

    /// Active OPEN (RFC 9293 §3.10.1): CLOSED → SYN_SENT, SYN queued.
    pub(crate) fn connect(
        id: ConnHandle,
        tuple: FourTuple,
        iss: SeqNum,
        opts: ConnOptions,
        ts_offset: Option<u32>,
        ctx: &mut Ctx<'_>,
    ) -> Conn {
        let mut c = Conn::blank(id, tuple, iss, ctx.now, ctx.cfg, opts);
        c.ts = ts_offset.map(|offset| TsState {
            recent: 0,
            recent_at: ctx.now,
            offset,
        });
        c.snd.syn_pending = true;
        c.set_state(State::SynSent, Cause::ActiveOpen, ctx);
        c
    }

    /// A passive connection whose SYN-ACK its half-open entry already sent.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_half_open(
        id: ConnHandle,
        tuple: FourTuple,
        listener: ListenerHandle,
        iss: SeqNum,
        irs: SeqNum,
        peer: PeerSyn,
        ts_offset: u32,
        synack_sent: Option<Instant>,
        now: Instant,
        cfg: &Config,
        opts: ConnOptions,
    ) -> Conn {
        let mut c = Conn::blank(id, tuple, iss, now, cfg, opts);
        if let Some(t) = synack_sent {
            // The SYN-ACK is timed like a data segment (RFC 6298 §2 allows the sample; Linux
            // takes it in tcp_synack_rtt_meas); with timestamps the echo gives it instead.
            c.snd.time_segment(iss, t);
        }
        c.state = State::SynReceived;
        c.listener = Some(listener);
        c.owner = Owner::AcceptQueue;
        c.snd.snd_nxt = iss.wrapping_add(1);
        c.negotiate(irs, peer, ts_offset, now, cfg);
        // The window the SYN-ACK advertised.
        c.rcv.syn_window();
        c.timers.set(Timer::Rtx, c.snd.rtt.rto_from(now));
        c
    }

    /// Applies the peer's SYN (RFC 9293 §3.7.1 MSS, RFC 7323 §2.2 and §3.2, RFC 2018 §2). Our
    /// own SYN offered everything the configuration enables.
    pub(crate) fn negotiate(
        &mut self,
        irs: SeqNum,
        peer: PeerSyn,
        ts_offset: u32,
        now: Instant,
        cfg: &Config,
    ) {
        let peer_mss = peer
            .mss
            .unwrap_or(crate::builder::default_peer_mss(&self.tuple))
            .max(64);
        let mss_opt = (self.opts.mss != 0).then_some(self.opts.mss);
        let mut mss = our_mss(cfg, mss_opt, &self.tuple).min(peer_mss);
        let (snd_ws, rcv_ws) = match peer.wscale {
            // RFC 7323 §2.3: a shift above 14 is treated as 14.
            Some(ws) if cfg.window_scaling => (ws.min(14), our_wscale(self.rcv.buffer())),
            _ => (0, 0),
        };
        self.snd.wscale = snd_ws;
        self.rcv.synchronize(irs, rcv_ws);
        self.sack = peer.sack && cfg.sack;
        self.ts = match peer.tsval {
            Some(tsval) if cfg.timestamps => Some(TsState {
                recent: tsval,
                recent_at: now,
                offset: ts_offset,
            }),
            _ => None,
        };
        if self.ts.is_some() {
            // RFC 7323 §3.2 / RFC 9293 §3.7.1: options in every segment come out of the MSS.
            mss = mss.saturating_sub(12).max(32);
        }
        self.snd.mss = mss;
        self.cc = Some(cfg.congestion.build(mss as u32, cfg));
    }

    /// The handshake completed: loss recovery starts tracking what is sent from now on.
    pub(crate) fn start_recovery(&mut self, cfg: &Config, spare: &mut spare::Spare) {
        let r = RecoveryConfig {
            sack: self.sack,
            rack: cfg.rack,
            tlp: cfg.tail_loss_probe,
            undo: cfg.recovery_undo,
            shortcuts: cfg.recovery_shortcuts,
            ..RecoveryConfig::default()
        };
        self.lr = Some(spare.recovery(stats::Recovery::new(LossRecovery::new(
            r,
            self.snd.snd_una,
            self.snd.mss as u32,
        ))));
    }

    /// Gives buffer memory back, but for unread data.
    fn release_buffers(&mut self) {
        self.snd.release();
        self.rcv.release_if_read();
    }

    /// A finished connection about to be kept (see [`spare::Spare`]): large buffers go now.
    pub(crate) fn trim_for_reuse(&mut self) {
        self.snd.trim_for_reuse();
        self.rcv.trim_for_reuse();
    }

    /// Takes a finished connection's ring storage for this new one (see [`spare::Spare`]).
    pub(crate) fn adopt_storage(&mut self, old: &mut Conn) {
        self.snd.adopt_storage(&mut old.snd);
        self.rcv.adopt_storage(&mut old.rcv);
    }

    /// Copies an arriving segment's text into the receive buffer while `sum` takes it in, if
    /// it is the plain in-order kind this connection will take as it stands (see
    /// [`RecvSide::stage`]): only the states that process segment text (RFC 9293 §3.10.7.4,
    /// "seventh"), never with SYN or RST.
    pub(crate) fn stage_text(&mut self, seg: &TcpRepr<'_>, sum: &mut Checksum) -> bool {
        matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        ) && !seg.flags.intersects(Flags::SYN | Flags::RST)
            && self.rcv.stage(seg.seq, seg.payload, sum)
    }

    // ----- views -----

    /// getsockopt.
    pub(crate) fn options(&self) -> ConnOptions {
        self.opts.options(self.snd.buffer(), self.rcv.buffer())
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// The window in force: PRR's during fast recovery, the controller's otherwise.
    pub(crate) fn cwnd(&self, cfg: &Config) -> u32 {
        self.with_cc(cfg, |cc| match &self.lr {
            Some(lr) => lr.cwnd(cc),
            None => cc.cwnd(),
        })
    }

    /// `f` of the connection's controller, or, before the handshake built one (SYN_SENT), of
    /// the one it would build with the MSS it offers: `info()` says the same either way.
    fn with_cc<R>(&self, cfg: &Config, f: impl FnOnce(&dyn CongestionControl) -> R) -> R {
        match &self.cc {
            Some(cc) => f(cc.as_ref()),
            None => f(cfg.congestion.build(self.snd.mss as u32, cfg).as_ref()),
        }
    }

    pub(crate) fn recovery(&self) -> Option<&LossRecovery> {
        self.lr.as_deref().map(|r| &**r)
    }

    pub(crate) fn congestion_name(&self, cfg: &Config) -> &'static str {
        self.with_cc(cfg, |cc| cc.name())
    }

    pub(crate) fn ssthresh(&self, cfg: &Config) -> u32 {
        self.with_cc(cfg, |cc| cc.ssthresh())
    }

    /// The window field our segments carry now, without moving the advertised edge.
    pub(crate) fn window_field(&self) -> u16 {
        (self.rcv.rcv_wnd() >> self.rcv.wscale).min(65535) as u16
    }

    pub(crate) fn ack_pending(&self) -> bool {
        self.rcv.ack_pending() || self.timers.armed(Timer::DelAck)
    }

    // ----- state changes -----

    /// Every state change goes through here: one event, one place for the MIB counters, the
    /// timers and buffers each state keeps.
    pub(crate) fn set_state(&mut self, to: State, cause: Cause, ctx: &mut Ctx<'_>) {
        let from = self.state;
        if from == to {
            return;
        }
        let s = &mut *ctx.stats;
        let counted = |st: State| matches!(st, State::Established | State::CloseWait);
        if counted(from) && !counted(to) {
            s[Counter::CurrEstab] = s[Counter::CurrEstab].saturating_sub(1);
        }
        if !counted(from) && counted(to) {
            s[Counter::CurrEstab] += 1;
        }
        // RFC 4022 tcpEstabResets / tcpAttemptFails.
        if counted(from) && to == State::Closed {
            s[Counter::EstabResets] += 1;
        }
        if matches!(from, State::SynSent | State::SynReceived)
            && matches!(to, State::Closed | State::Listen)
        {
            s[Counter::AttemptFails] += 1;
        }
        self.state = to;
        self.since = ctx.now;
        ctx.events.push_back(Event::StateChanged {
            socket: SocketHandle::Conn(self.id),
            tuple: self.tuple,
            from,
            to,
            cause,
        });
        match to {
            _ if keepalive_runs(to) && !keepalive_runs(from) => self.restart_keepalive(ctx),
            State::TimeWait => {
                self.timers.clear_all();
                self.snd.syn_pending = false;
                ctx.events.push_back(Event::Closed {
                    conn: self.id,
                    reason: CloseReason::Graceful,
                });
            }
            State::Closed | State::Listen => {
                self.timers.clear_all();
                self.snd.syn_pending = false;
                // What arrived in order stays readable (as Linux keeps its receive queue on
                // RST); only the rest goes.
                self.snd.discard();
                self.rcv.discard_out_of_order();
                if self.owner != Owner::Orphan {
                    // A handle outlives the connection: its buffer memory goes back now. An
                    // orphan is freed at once and leaves the storage to the next connection
                    // (see [`spare::Spare`]).
                    self.release_buffers();
                }
                let reason = match cause {
                    Cause::ResetReceived if from == State::SynSent => CloseReason::Refused,
                    Cause::ResetReceived => CloseReason::Reset,
                    Cause::RetransmitLimit | Cause::KeepaliveTimeout => CloseReason::TimedOut,
                    Cause::AppAbort | Cause::ClosedWithUnreadData | Cause::ListenerClosed => {
                        CloseReason::Aborted
                    }
                    _ => CloseReason::Graceful,
                };
                // A passive connection reset back to LISTEN was never the application's, and
                // one leaving TIME_WAIT said it closed when it entered it.
                if to == State::Closed && from != State::TimeWait {
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
        let at = match self.opts.keepalive() {
            Some(idle) if keepalive_runs(self.state) => Some(ctx.now + idle),
            _ => None,
        };
        self.timers.put(Timer::KeepAlive, at);
    }

    /// Sends the active reset (RST|ACK at SND.NXT) and closes (abort, close with unread data,
    /// data after close).
    fn reset_and_close(&mut self, cause: Cause, ctx: &mut Ctx<'_>) {
        self.send_active_reset(ctx);
        if cause == Cause::AppAbort || cause == Cause::ClosedWithUnreadData {
            // Linux discards what the application had not read: it asked for the abort.
            let mut sink = [0u8; 4096];
            while self.rcv.read(&mut sink) > 0 {}
        }
        self.set_state(State::Closed, cause, ctx);
    }

    /// The reset a connection sends when it gives up on its own (abort, close with unread
    /// data, keep-alive timeout): `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=RST,ACK>`. RFC 9293 §3.10.5
    /// draws a bare RST; Linux's `tcp_send_active_reset` sets ACK too, and the kernel is our
    /// reference. The receiver judges a reset by its sequence number alone (§3.10.7.4), so the
    /// ACK costs nothing and tells Wireshark and the peer where our receive side stood. A
    /// SYN_SENT connection has nothing to reset.
    fn send_active_reset(&mut self, ctx: &mut Ctx<'_>) {
        if self.state == State::SynSent {
            return;
        }
        let rst = CtlSegment::rst_ack(self.tuple, self.snd.snd_nxt, self.rcv.rcv_nxt);
        if ctx.ctl.push(rst) {
            ctx.stats[Counter::OutRsts] += 1;
        }
    }

    // ----- user calls (RFC 9293 §3.10.2–3.10.5) -----

    fn check_send(&self) -> Result<(), SendError> {
        if self.snd.fin_seq.is_some() {
            return Err(SendError::BrokenPipe);
        }
        match self.state {
            State::SynSent | State::SynReceived | State::Established | State::CloseWait => Ok(()),
            State::Closed => Err(self.error.map_or(SendError::BrokenPipe, SendError::Conn)),
            _ => Err(SendError::BrokenPipe),
        }
    }

    /// Queues what fits of `data`; 0 when the buffer is full (a `Writable` event follows).
    pub(crate) fn send(&mut self, data: &[u8]) -> Result<usize, SendError> {
        self.check_send()?;
        let n = self.snd.push(data);
        if n < data.len() {
            self.want_writable = true;
        }
        Ok(n)
    }

    /// Zero-copy send into the buffer's free space.
    pub(crate) fn send_with(
        &mut self,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, SendError> {
        self.check_send()?;
        let n = self.snd.push_with(fill);
        if self.snd.free() == 0 {
            self.want_writable = true;
        }
        Ok(n)
    }

    /// Copies received data out; `Some(0)` is end of stream, `None` nothing yet.
    pub(crate) fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, RecvError> {
        if self.rcv.unread() == 0 || buf.is_empty() {
            return self.recv_status();
        }
        let n = self.rcv.read(buf);
        self.after_read();
        Ok(Some(n))
    }

    /// Zero-copy receive from the first contiguous run of unread bytes.
    pub(crate) fn recv_with(
        &mut self,
        take: impl FnOnce(&[u8]) -> usize,
    ) -> Result<Option<usize>, RecvError> {
        if self.rcv.unread() == 0 {
            return self.recv_status();
        }
        let n = self.rcv.read_with(take);
        self.after_read();
        Ok(Some(n))
    }

    /// MSG_PEEK.
    pub(crate) fn peek(&self, buf: &mut [u8]) -> Result<Option<usize>, RecvError> {
        if self.rcv.unread() == 0 || buf.is_empty() {
            return self.recv_status();
        }
        Ok(Some(self.rcv.peek(buf)))
    }

    /// RFC 9293 §3.8.6.2.2: the application's read may reopen the window far enough to be
    /// worth an ACK of its own (a window update).
    fn after_read(&mut self) {
        if self.state.is_synchronized()
            && self.state != State::TimeWait
            && !self.rcv.fin_consumed()
            && self.rcv.window_update_due(self.snd.mss)
        {
            self.rcv.ack_at_once(crate::TxKind::WindowUpdate);
        }
    }

    /// What a read of an empty receive buffer returns: end of stream after the peer's FIN,
    /// the connection's error after a failure, nothing yet otherwise.
    fn recv_status(&self) -> Result<Option<usize>, RecvError> {
        if self.rcv.fin_consumed() {
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
        if self.snd.fin_seq.is_some() {
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
        self.snd.queue_fin();
        self.set_state(next, Cause::AppShutdown, ctx);
        Ok(())
    }

    /// CLOSE (RFC 9293 §3.10.4). The handle is released; the connection finishes as an orphan.
    pub(crate) fn close(&mut self, ctx: &mut Ctx<'_>) {
        self.owner = Owner::Orphan;
        // Linux (tcp_close): unread received data means the peer's data was lost, so say so
        // with RST instead of a graceful FIN (RFC 2525 §2.17).
        if self.rcv.unread() > 0 && self.state.is_synchronized() && self.state != State::TimeWait {
            ctx.stats[Counter::TCPAbortOnClose] += 1;
            self.reset_and_close(Cause::ClosedWithUnreadData, ctx);
            return;
        }
        match self.state {
            State::SynSent => self.set_state(State::Closed, Cause::AppClose, ctx),
            State::SynReceived | State::Established => {
                self.snd.queue_fin();
                self.set_state(State::FinWait1, Cause::AppClose, ctx);
            }
            State::CloseWait => {
                self.snd.queue_fin();
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
        self.opts = SockOpts::new(&opts);
        self.snd.set_buffer(opts.send_buffer.max(1));
        self.rcv
            .set_buffer(opts.recv_buffer.max(self.snd.mss as usize));
        self.restart_keepalive(ctx);
    }

    fn arm_fin_wait2(&mut self, ctx: &mut Ctx<'_>) {
        if self.owner == Owner::Orphan && self.state == State::FinWait2 {
            self.timers
                .set(Timer::FinWait2, ctx.now + ctx.cfg.fin_timeout);
        }
    }

    /// The error the connection ends with, and the state change that says so.
    fn fail(&mut self, e: ConnError, cause: Cause, ctx: &mut Ctx<'_>) {
        self.error = Some(e);
        self.set_state(State::Closed, cause, ctx);
    }
}

/// The states in which keep-alive watches the peer: every synchronized state but TIME_WAIT, as
/// Linux's `tcp_keepalive_timer` (which skips only CLOSE and SYN_SENT; SYN_RECEIVED has its
/// SYN-ACK retransmissions). A half-closed FIN_WAIT_2 whose peer vanished is found this way.
fn keepalive_runs(state: State) -> bool {
    matches!(
        state,
        State::Established
            | State::CloseWait
            | State::FinWait1
            | State::FinWait2
            | State::Closing
            | State::LastAck
    )
}
