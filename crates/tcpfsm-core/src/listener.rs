//! Passive opens: listeners, their SYN queue of compact half-open entries, and accept queues.

use crate::builder::PeerSyn;
use crate::config::ConnOptions;
use crate::ratelimit::OowStamp;
use crate::{ConnHandle, Instant, ListenerHandle};
use std::collections::VecDeque;
use std::net::SocketAddr;

#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) id: ListenerHandle,
    pub(crate) local: SocketAddr,
    /// Accept queue limit (`listen(2)` backlog, capped by somaxconn).
    pub(crate) backlog: u32,
    /// SYN queue limit: min(backlog, tcp_max_syn_backlog).
    pub(crate) syn_backlog: u32,
    pub(crate) syn_queue_len: u32,
    pub(crate) accept_queue: VecDeque<ConnHandle>,
    /// Options of the connections it accepts.
    pub(crate) conn_opts: ConnOptions,
}

impl Listener {
    pub(crate) fn accept_queue_full(&self) -> bool {
        self.accept_queue.len() as u32 >= self.backlog
    }

    pub(crate) fn syn_queue_full(&self) -> bool {
        self.syn_queue_len >= self.syn_backlog
    }

    /// Does this listener take segments addressed to `dst`?
    pub(crate) fn matches(&self, dst: SocketAddr) -> bool {
        self.local.port() == dst.port()
            && self.local.is_ipv4() == dst.is_ipv4()
            && (self.local.ip().is_unspecified() || self.local.ip() == dst.ip())
    }
}

/// A passively opened connection in SYN_RECEIVED: what is needed to retransmit the SYN-ACK, to
/// judge segments (RFC 9293 §3.10.7.4 through the shared arrival steps) and to build the
/// connection when the handshake's ACK arrives — 40 bytes beside its 36-byte key, where
/// Linux's request sock is 312. Its handle is its table slot's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HalfOpen {
    pub(crate) listener: ListenerHandle,
    pub(crate) iss: u32,
    pub(crate) irs: u32,
    pub(crate) peer_tsval: u32,
    /// Our TSval offset (RFC 7323 §5.4), computed with the ISN from one keyed hash when the
    /// SYN arrived (`OFFSET` set): the connection this entry becomes takes it instead of
    /// hashing the 4-tuple again. A SYN cookie's entry has none (nothing was kept).
    ts_offset: u32,
    /// When the first SYN-ACK went out, in microseconds + 1 modulo 2^32 (0: not known, as for
    /// a SYN cookie); the entry lives far less than the 71 minutes that wraps.
    synack_us: u32,
    /// RFC 5961 §7: the last out-of-window ACK (Linux `last_oow_ack_time`).
    pub(crate) oow: OowStamp,
    pub(crate) peer_mss: u16,
    /// Peer's window scale, 0xff when not offered.
    peer_wscale: u8,
    flags: u8,
    pub(crate) retries: u8,
}

const SACK: u8 = 1;
const TS: u8 = 2;
const MSS: u8 = 4;
const OFFSET: u8 = 8;

impl HalfOpen {
    pub(crate) fn new(listener: ListenerHandle, iss: u32, irs: u32, peer: PeerSyn) -> HalfOpen {
        let mut flags = 0;
        if peer.sack {
            flags |= SACK;
        }
        if peer.tsval.is_some() {
            flags |= TS;
        }
        if peer.mss.is_some() {
            flags |= MSS;
        }
        HalfOpen {
            listener,
            iss,
            irs,
            peer_tsval: peer.tsval.unwrap_or(0),
            ts_offset: 0,
            synack_us: 0,
            oow: OowStamp::default(),
            peer_mss: peer.mss.unwrap_or(0),
            peer_wscale: peer.wscale.unwrap_or(0xff),
            flags,
            retries: 0,
        }
    }

    /// Keeps our TSval offset for the connection (see the field).
    pub(crate) fn set_ts_offset(&mut self, offset: u32) {
        self.ts_offset = offset;
        self.flags |= OFFSET;
    }

    pub(crate) fn ts_offset(&self) -> Option<u32> {
        (self.flags & OFFSET != 0).then_some(self.ts_offset)
    }

    /// The first SYN-ACK goes out now.
    pub(crate) fn synack_sent(&mut self, now: Instant) {
        self.synack_us = (now.as_micros() as u32).wrapping_add(1).max(1);
    }

    /// When the SYN-ACK that the handshake's ACK answers went out, when that is unambiguous:
    /// it was sent once (Karn, RFC 6298 §3) by this entry (not a SYN cookie). Linux times the
    /// handshake the same way (tcp_synack_rtt_meas), so that a passive open starts with an RTO
    /// of about 3 × RTT instead of the 1 s initial one.
    pub(crate) fn synack_timed(&self, now: Instant) -> Option<Instant> {
        if self.retries != 0 || self.synack_us == 0 {
            return None;
        }
        let ago = (now.as_micros() as u32)
            .wrapping_add(1)
            .wrapping_sub(self.synack_us);
        Some(Instant::from_micros(
            now.as_micros().saturating_sub(ago as u64),
        ))
    }

    pub(crate) fn peer(&self) -> PeerSyn {
        PeerSyn {
            mss: (self.flags & MSS != 0).then_some(self.peer_mss),
            wscale: (self.peer_wscale != 0xff).then_some(self.peer_wscale),
            sack: self.flags & SACK != 0,
            tsval: (self.flags & TS != 0).then_some(self.peer_tsval),
        }
    }
}
