//! Every segment that belongs to no send queue — RSTs, SYN-ACKs of half-open entries and SYN
//! cookies, ACKs of half-open entries and TIME_WAIT records — is built here, and so are the
//! options of every SYN and SYN-ACK, for full connections too: one place decides what a
//! handshake offers and which window it carries.

use crate::config::Config;
use crate::time::Instant;
use crate::{FourTuple, TxKind};
use std::collections::VecDeque;
use tcpfsm_wire::{Flags, SeqNum, TcpOptions, TcpRepr, Timestamps};

/// A segment built outside a connection's send path.
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
            CtlSegment::rst_ack(tuple, SeqNum(0), seg.seq.wrapping_add(seg.segment_len()))
        }
    }

    /// `<SEQ=seq><ACK=ack><CTL=RST,ACK>`.
    pub(crate) fn rst_ack(tuple: FourTuple, seq: SeqNum, ack: SeqNum) -> CtlSegment {
        CtlSegment {
            flags: Flags::RST | Flags::ACK,
            ack,
            ..CtlSegment::rst(tuple, seq)
        }
    }

    /// `<SEQ=seq><CTL=RST>`.
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

    /// `<SEQ=seq><ACK=ack><CTL=ACK>` with the timestamps of the connection, if it uses them.
    pub(crate) fn ack(
        tuple: FourTuple,
        seq: SeqNum,
        ack: SeqNum,
        window: u16,
        timestamps: Option<Timestamps>,
        kind: TxKind,
    ) -> CtlSegment {
        CtlSegment {
            tuple,
            seq,
            ack,
            flags: Flags::ACK,
            window,
            options: TcpOptions {
                timestamps,
                ..TcpOptions::default()
            },
            kind,
        }
    }
}

/// The control queue: bounded, so that a flood of segments that each deserve an answer cannot
/// grow memory without limit when the driver stops polling. Every drop is counted.
#[derive(Debug, Default)]
pub(crate) struct CtlQueue {
    q: VecDeque<CtlSegment>,
    limit: usize,
    pub(crate) dropped: u64,
}

impl CtlQueue {
    pub(crate) fn new(limit: usize) -> CtlQueue {
        CtlQueue {
            q: VecDeque::new(),
            limit: limit.max(1),
            dropped: 0,
        }
    }

    /// Queues `c`; false (and counted) when the queue is full.
    pub(crate) fn push(&mut self, c: CtlSegment) -> bool {
        if self.q.len() >= self.limit {
            self.dropped += 1;
            return false;
        }
        self.q.push_back(c);
        true
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    #[inline]
    pub(crate) fn pop(&mut self) -> Option<CtlSegment> {
        // Asked first: nearly every call finds nothing, and a pop from the empty queue still
        // built the (large) empty result and looked at the capacity (lifecycle about 176
        // instructions per connection, bulk 9.6k per MiB).
        if self.q.is_empty() {
            return None;
        }
        let c = self.q.pop_front();
        if self.q.is_empty() && self.q.capacity() > 4096 {
            // After a burst, give the memory back.
            self.q = VecDeque::new();
        }
        c
    }
}

/// TSval clock: milliseconds (RFC 7323 §5.4 recommends 1 ms to 1 s per tick).
pub(crate) fn ts_clock(now: Instant, offset: u32) -> u32 {
    ((now.as_micros() / 1000) as u32).wrapping_add(offset)
}

/// The MSS we announce: the configured one for IPv4, 20 bytes less for IPv6's larger header,
/// lowered by TCP_MAXSEG.
pub(crate) fn our_mss(cfg: &Config, maxseg: Option<u16>, tuple: &FourTuple) -> u16 {
    // Clamped so that even an unvalidated configuration can carry data after options.
    let mss = maxseg.map_or(cfg.mss, |m| m.min(cfg.mss)).max(88);
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

/// The window of a SYN or SYN-ACK: the free buffer, unscaled (RFC 7323 §2.2).
pub(crate) fn syn_window(space: usize) -> u16 {
    space.min(65535) as u16
}

/// What the peer's SYN offered, as far as the SYN-ACK must answer it.
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

/// The options of our SYN (`peer` None: offer what the configuration enables) or of a
/// listener's SYN-ACK (answer only what the peer offered: RFC 7323 §2.2, §3.2; RFC 2018 §2).
/// `tsval` is our timestamp (with the connection's offset, or a SYN cookie's encoding) and
/// `tsecr` the echo (0 in a SYN). A simultaneous open's SYN-ACK repeats the SYN's options, as
/// Linux does, so it passes `peer` None.
pub(crate) fn syn_options(
    cfg: &Config,
    maxseg: Option<u16>,
    recv_buffer: usize,
    tuple: &FourTuple,
    peer: Option<&PeerSyn>,
    tsval: u32,
    tsecr: u32,
) -> TcpOptions {
    let mut o = TcpOptions {
        mss: Some(our_mss(cfg, maxseg, tuple)),
        ..TcpOptions::default()
    };
    let offer = |ours: bool, theirs: bool| ours && peer.is_none_or(|_| theirs);
    if offer(cfg.window_scaling, peer.is_some_and(|p| p.wscale.is_some())) {
        o.window_scale = Some(our_wscale(recv_buffer));
    }
    o.sack_permitted = offer(cfg.sack, peer.is_some_and(|p| p.sack));
    if offer(cfg.timestamps, peer.is_some_and(|p| p.tsval.is_some())) {
        o.timestamps = Some(Timestamps { tsval, tsecr });
    }
    o
}
