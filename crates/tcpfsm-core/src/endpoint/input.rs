//! Segment input: demultiplexing, listeners (RFC 9293 §3.10.7.2 with SYN cookies and Linux's
//! queue limits) and half-open entries (§3.10.7.4 for a passive SYN_RECEIVED, through the
//! shared arrival steps).

use super::{is_non_unicast, Endpoint};
use crate::arrival::{gate, Gate, RcvView};
use crate::builder::{
    default_peer_mss, our_mss, syn_options, syn_window, ts_clock, CtlSegment, PeerSyn,
};
use crate::conn::Conn;
use crate::listener::HalfOpen;
use crate::stats::Counter;
use crate::table::Entry;
use crate::tuple::CompactTuple;
use crate::{
    syncookie, wire, Cause, Event, FourTuple, Instant, SocketHandle, State, SynCookies, TxKind,
};
use std::net::SocketAddr;
use tcpfsm_wire::{Flags, SeqNum, TcpRepr, Timestamps};

impl Endpoint {
    /// Handles one IPv4 or IPv6 datagram carrying TCP. Malformed input is counted (InErrs,
    /// InCsumErrors) and dropped.
    pub fn handle_packet(&mut self, now: Instant, datagram: &[u8]) {
        self.last_now = now;
        // Decoded in place and borrowed from there: returned by value, the decoded segment
        // (header, options) was moved out of the parser's result and again out of the
        // datagram's record, about 40 instructions a datagram.
        let mut parsed = wire::IpTcp::default();
        let sum = match wire::parse_ip_tcp_deferred_into(
            &mut parsed,
            datagram,
            self.config.checksum_offload,
        ) {
            Ok(sum) => sum,
            Err(e) => return self.count_bad_segment(e),
        };
        let parsed = &parsed;
        let seg = &parsed.tcp;
        // The payload's share of the checksum: summed in the copy into the receive buffer when
        // the text goes straight in at RCV.NXT (one pass over the bytes, not two), else here.
        // Either way nothing acts on the segment before it verifies.
        // One lookup serves both this and `dispatch`: nothing changes the table in between.
        let key = CompactTuple::from_parts((parsed.dst, seg.dst_port), (parsed.src, seg.src_port));
        let found = self.table.find(&key);
        let mut staged = None;
        if let Some(mut sum) = sum {
            if let Some(slot) = found.filter(|_| !seg.payload.is_empty()) {
                if let Some(c) = self.table.conn_mut(slot) {
                    if c.stage_text(seg, &mut sum) {
                        staged = Some(slot);
                    }
                }
            }
            // A bare ACK has nothing to add, and the short-piece summing cost it about 25
            // instructions to find that out.
            if staged.is_none() && !seg.payload.is_empty() {
                sum.add(seg.payload);
            }
            if sum.sum() != 0xffff {
                if let Some(c) = staged.and_then(|s| self.table.conn_mut(s)) {
                    c.rcv.unstage();
                }
                return self.count_bad_segment(wire::Error::BadTcpChecksum);
            }
        }
        self.stats[Counter::InSegs] += 1;
        // RFC 9293 §3.9.1 / RFC 1122 §4.2.3.10: no connections to or from broadcast,
        // multicast or unspecified addresses; port 0 is never valid. An IPv4 segment that
        // found its entry has that entry's ports and addresses, and they passed these tests
        // when it was made (`connect_with`, or the segment that opened it, here): testing
        // them again cost about 20 instructions a segment. Not so over IPv6: an IPv4-mapped
        // address (refused below) keys like the IPv4 address it maps.
        let vouched = found.is_some() && parsed.src.is_ipv4();
        let invalid = || {
            seg.src_port == 0
                || seg.dst_port == 0
                || is_non_unicast(parsed.src)
                || is_non_unicast(parsed.dst)
        };
        debug_assert!(
            !(vouched && invalid()),
            "an indexed entry with an invalid tuple"
        );
        if !vouched && invalid() {
            self.stats[Counter::InErrs] += 1;
            if let Some(c) = staged.and_then(|s| self.table.conn_mut(s)) {
                c.rcv.unstage();
            }
            return;
        }
        self.dispatch(now, parsed, &key, found);
        if let Some(c) = staged.and_then(|s| self.table.conn_mut(s)) {
            // A segment the connection did not take (out of window, a bad ACK) leaves its
            // staged copy beyond the tail; it must not stand for a later segment.
            c.rcv.unstage();
        }
        self.sync_ctl_drops();
    }

    /// A datagram that failed to parse or verify: counted (InErrs, InCsumErrors), dropped.
    fn count_bad_segment(&mut self, e: wire::Error) {
        self.stats[Counter::InErrs] += 1;
        if e == wire::Error::BadTcpChecksum {
            self.stats[Counter::InCsumErrors] += 1;
        }
    }

    /// Hands the segment to what owns its tuple; `found` is the table's slot for `key`.
    /// The datagram and its key are lent, not passed by value: a connection's segment reads
    /// neither its addresses nor the key here, and their copies cost about 10 instructions
    /// a segment (the tuple is built only for what is not a connection).
    fn dispatch(
        &mut self,
        now: Instant,
        parsed: &wire::IpTcp<'_>,
        key: &CompactTuple,
        found: Option<u32>,
    ) {
        let seg = &parsed.tcp;
        let tuple = || FourTuple {
            local: SocketAddr::new(parsed.dst, seg.dst_port),
            remote: SocketAddr::new(parsed.src, seg.src_port),
        };
        if let Some(slot) = found {
            // The connection looked up once, through the borrow `on_segment` needs: asking the
            // slot what it holds first and then for the connection cost a second bounds and
            // variant check.
            let (mut ctx, table) = self.ctx(now);
            if let Some(c) = table.conn_mut(slot) {
                c.on_segment(seg, &mut ctx);
                self.after_conn(slot);
            } else if matches!(self.table.slot(slot).entry, Entry::HalfOpen(_)) {
                self.on_half_open_segment(now, slot, tuple(), seg);
            }
            return;
        }
        let tuple = tuple();
        let mut isn_floor = None;
        if let Some(slot) = self.time_wait.find(key) {
            match self.on_time_wait_segment(now, slot, tuple, seg) {
                Some(floor) => isn_floor = Some(floor),
                None => return,
            }
        }
        if let Some(li) = self.listeners.iter().position(|l| l.matches(tuple.local)) {
            self.on_listen_segment(now, li, *key, tuple, seg, isn_floor);
            return;
        }
        self.reply_reset(tuple, seg);
    }

    /// The control queue counts what it had to drop; the MIB says so.
    pub(super) fn sync_ctl_drops(&mut self) {
        self.stats[Counter::TcpfsmCtlQueueDrops] = self.ctl.dropped;
    }

    /// RFC 9293 §3.10.7.1: a segment for no connection is answered with RST (unless it is one).
    pub(super) fn reply_reset(&mut self, tuple: FourTuple, seg: &TcpRepr<'_>) {
        if !seg.flags.contains(Flags::RST) && self.ctl.push(CtlSegment::reset_for(tuple, seg)) {
            self.stats[Counter::OutRsts] += 1;
        }
    }

    /// RFC 9293 §3.10.7.2, plus SYN cookies and the Linux queue limits.
    fn on_listen_segment(
        &mut self,
        now: Instant,
        li: usize,
        key: CompactTuple,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
        isn_floor: Option<SeqNum>,
    ) {
        let f = seg.flags;
        if f.contains(Flags::RST) {
            return;
        }
        if f.contains(Flags::ACK) && !f.contains(Flags::SYN) {
            if self.config.syncookies != SynCookies::Off {
                if self.try_syn_cookie(now, li, key, tuple, seg) {
                    return;
                }
                self.stats[Counter::SyncookiesFailed] += 1;
            }
            self.reply_reset(tuple, seg);
            return;
        }
        if !f.contains(Flags::SYN) {
            return;
        }
        if f.contains(Flags::ACK) {
            self.reply_reset(tuple, seg);
            return;
        }
        if f.contains(Flags::FIN) {
            // SYN+FIN is never legitimate; Linux drops it at a listener.
            return;
        }
        let l = &self.listeners[li];
        let lid = l.id;
        if l.accept_queue_full() {
            // Linux drops SYNs while the accept queue is full (ListenOverflows).
            self.stats[Counter::ListenOverflows] += 1;
            self.stats[Counter::ListenDrops] += 1;
            return;
        }
        let use_cookie = match self.config.syncookies {
            SynCookies::Always => true,
            SynCookies::OnOverflow => l.syn_queue_full(),
            SynCookies::Off => false,
        };
        let mut peer = PeerSyn::from_options(&seg.options);
        if use_cookie {
            if peer.tsval.is_none() || !self.config.timestamps {
                // Without timestamps the cookie cannot carry window scale or SACK.
                peer.wscale = None;
                peer.sack = false;
            }
            let mss = peer.mss.unwrap_or(default_peer_mss(&tuple)).min(our_mss(
                &self.config,
                l.conn_opts.mss,
                &tuple,
            ));
            let cookie = syncookie::encode(&self.secrets, &key, seg.seq.0, mss, now);
            self.stats[Counter::SyncookiesSent] += 1;
            self.stats[Counter::TCPReqQFullDoCookies] += l.syn_queue_full() as u64;
            let h = HalfOpen::new(lid, cookie, seg.seq.0, peer);
            self.send_synack(now, tuple, &key, li, &h, TxKind::SynCookie, None);
            return;
        }
        if l.syn_queue_full() {
            self.stats[Counter::ListenDrops] += 1;
            self.stats[Counter::TCPReqQFullDrop] += 1;
            return;
        }
        let (isn, ts_offset) = self.secrets.isn_and_ts_offset(&key, now);
        let iss = match isn_floor {
            Some(f) => f.0,
            None => isn,
        };
        let mut h = HalfOpen::new(lid, iss, seg.seq.0, peer);
        h.set_ts_offset(ts_offset);
        h.synack_sent(now);
        let id = self.table.insert_with(key, |_| Entry::HalfOpen(h));
        self.listeners[li].syn_queue_len += 1;
        self.stats[Counter::PassiveOpens] += 1;
        self.events.push_back(Event::StateChanged {
            socket: SocketHandle::Conn(id),
            tuple,
            from: State::Listen,
            to: State::SynReceived,
            cause: Cause::SynReceived,
        });
        self.send_synack(now, tuple, &key, li, &h, TxKind::Normal, Some(ts_offset));
        let slot = self.table.slot_of(id).expect("just inserted");
        self.timers.set(slot, Some(now + self.config.rto_initial));
    }

    /// The SYN-ACK of a half-open entry or a SYN cookie: it answers only the options the peer
    /// offered (RFC 7323 §2.2, §3.2; RFC 2018 §2). `ts_offset`: the connection's TSval
    /// offset if the caller has it (else the keyed hash is computed).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_synack(
        &mut self,
        now: Instant,
        tuple: FourTuple,
        key: &CompactTuple,
        li: usize,
        h: &HalfOpen,
        kind: TxKind,
        ts_offset: Option<u32>,
    ) {
        let opts = self.listeners[li].conn_opts;
        let peer = h.peer();
        let ts_offset = ts_offset
            .or(h.ts_offset())
            .unwrap_or_else(|| self.secrets.ts_offset(key));
        let mut tsval = ts_clock(now, ts_offset);
        if kind == TxKind::SynCookie {
            let sack = self.config.sack && peer.sack;
            let ws = peer.wscale.filter(|_| self.config.window_scaling);
            tsval = syncookie::encode_ts_options(tsval, ws, sack);
        }
        let options = syn_options(
            &self.config,
            opts.mss,
            opts.recv_buffer,
            &tuple,
            Some(&peer),
            tsval,
            peer.tsval.unwrap_or(0),
        );
        self.ctl.push(CtlSegment {
            tuple,
            seq: SeqNum(h.iss),
            ack: SeqNum(h.irs.wrapping_add(1)),
            flags: Flags::SYN | Flags::ACK,
            window: syn_window(opts.recv_buffer),
            options,
            kind,
        });
    }

    /// An ACK at a listener: does it carry one of our SYN cookies?
    fn try_syn_cookie(
        &mut self,
        now: Instant,
        li: usize,
        key: CompactTuple,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
    ) -> bool {
        let irs = seg.seq - 1u32;
        let iss = seg.ack - 1u32;
        let Some(mss) = syncookie::decode(&self.secrets, &key, irs.0, iss.0, now) else {
            return false;
        };
        if self.listeners[li].accept_queue_full() {
            self.stats[Counter::ListenOverflows] += 1;
            self.stats[Counter::ListenDrops] += 1;
            return true;
        }
        self.stats[Counter::SyncookiesRecv] += 1;
        let (wscale, sack, tsval) = match seg.options.timestamps {
            Some(ts) if self.config.timestamps => {
                let (ws, sack) = syncookie::decode_ts_options(ts.tsecr);
                (ws, sack, Some(ts.tsval))
            }
            _ => (None, false, None),
        };
        let peer = PeerSyn {
            mss: Some(mss),
            wscale,
            sack,
            tsval,
        };
        let h = HalfOpen::new(self.listeners[li].id, iss.0, irs.0, peer);
        self.stats[Counter::PassiveOpens] += 1;
        self.promote(now, li, key, tuple, h, seg, None);
        true
    }

    /// The handshake's ACK for a half-open entry (or a valid SYN cookie): build the connection
    /// and queue it for accept. `slot` is the half-open entry's, whose handle the connection
    /// keeps. Returns false when the connection could not be established by this segment (the
    /// entry stays half-open).
    #[allow(clippy::too_many_arguments)]
    fn promote(
        &mut self,
        now: Instant,
        li: usize,
        key: CompactTuple,
        tuple: FourTuple,
        h: HalfOpen,
        seg: &TcpRepr<'_>,
        slot: Option<u32>,
    ) -> bool {
        // A half-open entry kept the offset hashed with its ISN; a SYN cookie kept nothing.
        let ts_offset = h
            .ts_offset()
            .unwrap_or_else(|| self.secrets.ts_offset(&key));
        let lid = self.listeners[li].id;
        let opts = self.listeners[li].conn_opts;
        let cfg = &self.config;
        let spare = &mut self.spare;
        let mut build = |id| {
            Entry::Conn(spare.boxed(Conn::from_half_open(
                id,
                tuple,
                lid,
                SeqNum(h.iss),
                SeqNum(h.irs),
                h.peer(),
                ts_offset,
                h.synack_timed(now),
                now,
                cfg,
                opts,
            )))
        };
        let (slot, half_open) = match slot {
            Some(s) => {
                let id = self.table.handle_of(s);
                (s, Some(self.table.replace(s, build(id))))
            }
            None => {
                // A cookie: the connection is new to the table.
                let id = self.table.insert_with(key, build);
                self.events.push_back(Event::StateChanged {
                    socket: SocketHandle::Conn(id),
                    tuple,
                    from: State::Listen,
                    to: State::SynReceived,
                    cause: Cause::SynCookieAcked,
                });
                (self.table.slot_of(id).expect("just inserted"), None)
            }
        };
        let id = self.table.handle_of(slot);
        let (mut ctx, table) = self.ctx(now);
        let established = match table.conn_mut(slot) {
            Some(c) => {
                c.on_segment(seg, &mut ctx);
                c.state() != State::SynReceived
            }
            None => false,
        };
        if !established {
            // The entry stays what it was: half-open, or (a cookie) nothing.
            match half_open {
                Some(old) => {
                    let conn = self.table.replace(slot, old);
                    self.spare.free(conn);
                }
                None => self.free_slot(slot),
            }
            return false;
        }
        if half_open.is_some() {
            let l = &mut self.listeners[li];
            l.syn_queue_len = l.syn_queue_len.saturating_sub(1);
            self.timers.set(slot, None);
        }
        self.listeners[li].accept_queue.push_back(id);
        self.events.push_back(Event::Acceptable {
            listener: lid,
            conn: id,
        });
        self.after_conn(slot);
        true
    }

    /// RFC 9293 §3.10.7.4 for a passively opened SYN_RECEIVED connection kept as a half-open
    /// entry: the shared arrival steps first (PAWS, sequence, RST, SYN), so a blind segment can
    /// neither reset nor replace it.
    fn on_half_open_segment(
        &mut self,
        now: Instant,
        slot: u32,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
    ) {
        let Some(h) = self.table.half_open_mut(slot).map(|h| *h) else {
            return;
        };
        let f = seg.flags;
        let key = self.table.slot(slot).key;
        let Some(li) = self.listeners.iter().position(|l| l.id == h.listener) else {
            return;
        };
        if f.contains(Flags::SYN) && !f.contains(Flags::ACK) && seg.seq.0 == h.irs {
            // A retransmitted SYN: our SYN-ACK may have been lost. Echo the newest TSval
            // (RFC 7323 §4.3), or the peer's first RTT sample spans its SYN timeout; at most
            // one answer per rate-limit interval (Linux: TCPACKSkippedSynRecv).
            let limit = self.config.invalid_ratelimit;
            let Some(hm) = self.table.half_open_mut(slot) else {
                return;
            };
            if let Some(ts) = seg.options.timestamps {
                hm.peer_tsval = ts.tsval;
            }
            if hm.oow.allow(now, limit) {
                let h = *hm;
                self.send_synack(now, tuple, &key, li, &h, TxKind::Retransmission, None);
                self.stats[Counter::RetransSegs] += 1;
            } else {
                self.stats[Counter::TCPACKSkippedSynRecv] += 1;
            }
            return;
        }
        let view = RcvView {
            rcv_nxt: SeqNum(h.irs.wrapping_add(1)),
            rcv_wnd: syn_window(self.listeners[li].conn_opts.recv_buffer) as u32,
            ts_recent: h.peer().tsval.map(|t| (t, now)),
        };
        match gate(seg, &view, now, false) {
            Gate::Continue => {}
            Gate::Drop => return,
            Gate::Ack(why) => {
                if why == crate::arrival::Unacceptable::Paws {
                    self.stats[Counter::PAWSEstab] += 1;
                }
                self.half_open_ack(now, slot, tuple, TxKind::Normal);
                return;
            }
            Gate::Challenge => {
                if f.contains(Flags::SYN) {
                    self.stats[Counter::TCPSYNChallenge] += 1;
                }
                if self
                    .challenge
                    .take(now, self.config.challenge_ack_limit, &self.secrets)
                {
                    self.stats[Counter::TCPChallengeACK] += 1;
                    self.half_open_ack(now, slot, tuple, TxKind::ChallengeAck);
                } else {
                    self.stats[Counter::TcpfsmChallengeACKLimited] += 1;
                }
                return;
            }
            Gate::Reset => {
                // RFC 9293: a passively opened connection returns to LISTEN.
                self.drop_half_open(slot, State::Listen, Cause::ResetReceived);
                return;
            }
        }
        if seg.ack.0 != h.iss.wrapping_add(1) {
            // RFC 9293: an unacceptable ACK in SYN-RECEIVED gets <SEQ=SEG.ACK><CTL=RST>.
            self.reply_reset(tuple, seg);
            return;
        }
        if self.listeners[li].accept_queue_full() {
            // Linux drops the ACK and lets the SYN-ACK retransmission try again.
            self.stats[Counter::ListenOverflows] += 1;
            self.stats[Counter::ListenDrops] += 1;
            return;
        }
        self.promote(now, li, key, tuple, h, seg, Some(slot));
    }

    /// `<SEQ=ISS+1><ACK=IRS+1><CTL=ACK>` from a half-open entry, rate limited per entry.
    fn half_open_ack(&mut self, now: Instant, slot: u32, tuple: FourTuple, kind: TxKind) {
        let limit = self.config.invalid_ratelimit;
        let key = self.table.slot(slot).key;
        let Some(h) = self.table.half_open_mut(slot) else {
            return;
        };
        // Nothing lies below a half-open entry's RCV.NXT but the SYN: no segment is exempt.
        if !h.oow.allow(now, limit) {
            self.stats[Counter::TCPACKSkippedSynRecv] += 1;
            return;
        }
        let h = *h;
        let ts = h.peer().tsval.map(|tsecr| Timestamps {
            tsval: ts_clock(
                now,
                h.ts_offset()
                    .unwrap_or_else(|| self.secrets.ts_offset(&key)),
            ),
            tsecr,
        });
        let li = self.listeners.iter().position(|l| l.id == h.listener);
        let window = li.map_or(0, |i| syn_window(self.listeners[i].conn_opts.recv_buffer));
        self.ctl.push(CtlSegment::ack(
            tuple,
            SeqNum(h.iss.wrapping_add(1)),
            SeqNum(h.irs.wrapping_add(1)),
            window,
            ts,
            kind,
        ));
    }

    pub(super) fn drop_half_open(&mut self, slot: u32, to: State, cause: Cause) {
        let id = self.table.handle_of(slot);
        let key = self.table.slot(slot).key;
        let Entry::HalfOpen(h) = self.table.remove(slot) else {
            return;
        };
        self.timers.set(slot, None);
        if let Some(l) = self.listeners.iter_mut().find(|l| l.id == h.listener) {
            l.syn_queue_len = l.syn_queue_len.saturating_sub(1);
        }
        self.stats[Counter::AttemptFails] += 1;
        self.events.push_back(Event::StateChanged {
            socket: SocketHandle::Conn(id),
            tuple: key.expand(),
            from: State::SynReceived,
            to,
            cause,
        });
    }
}
