//! Output and time: bookkeeping after a connection handled anything, `poll_transmit`,
//! `poll_timeout` and `handle_timeout` (connection timers and half-open SYN-ACK retries).

use super::{Endpoint, Transmit, TxKind};
use crate::conn::Owner;
use crate::stats::Counter;
use crate::table::Entry;
use crate::{wire, Cause, Instant, State};
use std::net::IpAddr;
use tcpfsm_wire::TcpRepr;

impl Endpoint {
    /// Bookkeeping after a connection handled anything: TIME_WAIT conversion, removal of closed
    /// connections, its deadline in the timer queue, and a place in the transmit queue.
    ///
    /// Inlined for a connection that stays (every segment), the rest out of line: as one
    /// function, the call saved six registers and a large frame for the TIME_WAIT path.
    #[inline]
    pub(crate) fn after_conn(&mut self, slot: u32) {
        let Some(c) = self.table.conn_mut(slot) else {
            return;
        };
        if matches!(c.state(), State::TimeWait | State::Closed | State::Listen) {
            self.after_conn_leaving(slot);
            return;
        }
        let at = c.take_deadline();
        let in_tx = c.in_tx;
        c.in_tx = true;
        if self.timers.get(slot) != at {
            self.timers.set(slot, at);
        }
        if !in_tx {
            // One taken off the head early goes back there: it would still be at the head,
            // had it waited for the call that finds it has nothing.
            if slot == self.tx_early {
                self.tx_queue.push_front(slot);
            } else {
                self.tx_queue.push_back(slot);
            }
        }
    }

    /// [`Endpoint::after_conn`] for a connection in TIME_WAIT, CLOSED or LISTEN.
    #[inline(never)]
    fn after_conn_leaving(&mut self, slot: u32) {
        let Some(c) = self.table.conn_mut(slot) else {
            return;
        };
        if c.state() == State::TimeWait {
            if self.table.slot(slot).indexed() {
                self.enter_time_wait(slot);
            } else if self.table.conn(slot).is_some_and(|c| c.owner != Owner::App) {
                // Already a record; this slot only kept the application's handle.
                self.free_slot(slot);
            }
            // The queue may have dropped the slot's deadline (see `transmit_queued`).
            if let Some(c) = self.table.conn_mut(slot) {
                c.deadline_untaken();
            }
            return;
        }
        // Only established connections are queued for accept (see `promote`), and a queued
        // one that is reset stays queued: accept returns it, recv reports it.
        let keep = match c.owner {
            Owner::App => true,
            Owner::AcceptQueue => c.state() != State::Listen,
            Owner::Orphan => false,
        };
        c.deadline_untaken();
        self.timers.set(slot, None);
        if keep {
            self.table.unindex(slot);
        } else {
            self.free_slot(slot);
        }
    }

    /// Writes the next datagram to send at the start of `buf`: the datagram is
    /// `buf[..tx.len]` (the buffer may be longer; it is reused, not cleared). Call until `None`.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        self.last_now = now;
        // This is the call that would have found `tx_early` with nothing to send.
        self.tx_early = u32::MAX;
        // Nothing queued, as for every driver's last call: answered before the body, whose
        // stack frame and saved registers cost such a call about 30 instructions. (`pop`
        // returns an emptied control queue's memory at once, so skipping it skips nothing.)
        if self.ctl.is_empty() && self.tx_queue.is_empty() {
            return None;
        }
        self.transmit_queued(now, buf)
    }

    /// `poll_transmit` with something queued.
    #[inline(never)]
    fn transmit_queued(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        if let Some(c) = self.ctl.pop() {
            let repr = TcpRepr {
                src_port: c.tuple.local.port(),
                dst_port: c.tuple.remote.port(),
                seq: c.seq,
                ack: c.ack,
                flags: c.flags,
                window: c.window,
                urgent: 0,
                options: c.options,
                payload: &[],
            };
            return Some(emit(
                (c.tuple.local.ip(), c.tuple.remote.ip()),
                &repr,
                &[],
                c.kind,
                self.config.checksum_offload,
                buf,
            ));
        }
        while let Some(&slot) = self.tx_queue.front() {
            let Some(c) = self.table.conn_mut(slot) else {
                self.tx_queue.pop_front();
                continue;
            };
            let offload = self.config.checksum_offload;
            let sent = c.next_segment(
                now,
                &self.config,
                &mut self.stats,
                |tuple, repr, tail, kind| {
                    // The addresses only: copying the whole `FourTuple` cost about 20
                    // instructions.
                    let (src, dst) = (tuple.local.ip(), tuple.remote.ip());
                    emit((src, dst), repr, tail, kind, offload, buf)
                },
            );
            // Sending (or deciding not to) can arm timers: retransmission, persist. Only a
            // deadline that changed is looked at: the queue holds the one taken last, and
            // every change to the queue besides is followed by `deadline_untaken`.
            if sent.is_none() {
                c.in_tx = false;
            }
            if let Some(at) = c.moved_deadline() {
                if self.timers.get(slot) != at {
                    self.timers.set(slot, at);
                }
            }
            if sent.is_some() {
                if std::mem::take(&mut c.tx_idle) {
                    // Nothing can follow this segment (see `Conn::tx_idle`): the connection
                    // leaves the queue now, not on the next call, which then answers from
                    // an empty queue (most connections send one segment per wake-up, and
                    // that call cost about 120 instructions).
                    c.in_tx = false;
                    self.tx_queue.pop_front();
                    self.tx_early = slot;
                }
                return sent;
            }
            self.tx_queue.pop_front();
        }
        None
    }

    /// When [`Endpoint::handle_timeout`] should next be called. May be early, never late.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let heap = self.timers.peek();
        let tw = self.time_wait.next_deadline(self.last_now);
        match (heap, tw) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        while let Some(slot) = self.timers.pop_due(now) {
            match &self.table.slot(slot).entry {
                Entry::Conn(_) => {
                    let (mut ctx, table) = self.ctx(now);
                    if let Some(c) = table.conn_mut(slot) {
                        c.handle_timeout(&mut ctx);
                    }
                    self.after_conn(slot);
                    // A handler that re-armed a timer at or before `now` would have this loop
                    // spin forever; such a deadline waits one microsecond instead. (None
                    // should: this is the backstop that keeps a bug from becoming a hang.)
                    if self.timers.get(slot).is_some_and(|at| at <= now) {
                        let later = now + crate::Duration::from_micros(1);
                        self.timers.set(slot, Some(later));
                        if let Some(c) = self.table.conn_mut(slot) {
                            c.deadline_untaken();
                        }
                    }
                }
                Entry::HalfOpen(_) => self.half_open_timeout(now, slot),
                Entry::Free => {}
            }
        }
        while let Some(rec) = self.time_wait.pop_expired(now) {
            self.time_wait_closed(rec, Cause::TimeWaitExpired);
        }
        self.sync_ctl_drops();
    }

    /// SYN-ACK retransmission for a half-open entry, with the backoff of RFC 6298 §5.5 and the
    /// `synack_retries` limit.
    fn half_open_timeout(&mut self, now: Instant, slot: u32) {
        let limit = self.config.synack_retries;
        let Some(h) = self.table.half_open_mut(slot) else {
            return;
        };
        if h.retries as u32 >= limit {
            self.drop_half_open(slot, State::Closed, Cause::RetransmitLimit);
            return;
        }
        h.retries += 1;
        let h = *h;
        let backoff = self
            .config
            .rto_initial
            .saturating_mul(1 << h.retries.min(20))
            .min(self.config.rto_max);
        self.timers.set(slot, Some(now + backoff));
        let key = self.table.slot(slot).key;
        if let Some(li) = self.listeners.iter().position(|l| l.id == h.listener) {
            self.send_synack(
                now,
                key.expand(),
                &key,
                li,
                &h,
                TxKind::Retransmission,
                None,
            );
            self.stats[Counter::RetransSegs] += 1;
        }
        self.stats[Counter::TCPTimeouts] += 1;
    }
}

/// Writes the datagram at the start of `buf`, growing it only when too short: re-zeroing a
/// whole datagram per packet showed up in profiles, and the caller reads `buf[..len]` anyway.
/// `tail`: the rest of the payload when it wraps around the send ring.
fn emit(
    (src, dst): (IpAddr, IpAddr),
    repr: &TcpRepr<'_>,
    tail: &[u8],
    kind: TxKind,
    offload: wire::ChecksumOffload,
    buf: &mut Vec<u8>,
) -> Transmit {
    // The result first, the datagram into it: the addresses are lent to the wire from where
    // they are returned, not copied once as arguments and again into the result (bulk −3.4k
    // instructions/MiB, lifecycle −93 per connection).
    let mut t = Transmit {
        src,
        dst,
        len: 0,
        kind,
    };
    // Our own segments always fit: a failure here is a bug, not bad input.
    t.len = wire::emit_ip_tcp_split_ref(&t.src, &t.dst, repr, tail, buf, offload)
        .expect("emitting our own segment");
    t
}
