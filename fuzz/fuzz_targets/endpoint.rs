//! Fuzz the sans-IO endpoint through its public API: the input is a script
//! of peer segments (mostly well-formed replies to what the endpoint last
//! sent, so handshakes and closes are reachable), bursts of strays, raw
//! datagrams, time jumps and application calls.
//!
//! Invariants checked after every step, not just "no panic":
//! - everything the endpoint transmits is a valid datagram by our own parser;
//! - every state change is an edge of the RFC 9293 graph
//!   (`State::can_transition_to`) and starts where the socket's previous one
//!   ended (no jumps, no self-transitions);
//! - SND.UNA ≤ SND.NXT (modulo 2^32), and the flight never exceeds what the
//!   send queue holds plus SYN and FIN;
//! - no byte is delivered twice or out of order: the peer's payload byte at
//!   sequence number `s` is always `pattern(s)`, so every read must continue
//!   exactly where the previous one ended and carry the pattern of the
//!   sequence numbers it claims;
//! - queues stay bounded: receive queue plus out-of-order bytes within the
//!   receive buffer, send queue within the send buffer, at most
//!   `max_ctl_queue` RSTs out of one drain however many segments deserved
//!   one, and a bounded number of events per step.
#![no_main]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tcpfsm_core::{Config, ConnHandle, Endpoint, Event, Instant, SocketHandle, State};
use tcpfsm_wire::{emit_ip_tcp, parse_ip_tcp, Flags, SeqNum, TcpOptions, TcpRepr, Timestamps};

const US4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const PEER4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
const US6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1));
const PEER6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2));

/// The control queue is kept small so that bursts reach its limit.
const MAX_CTL: usize = 16;

/// The peer's byte at sequence number `s`: a hash, so a byte delivered at
/// the wrong place (twice, out of order, shifted) shows.
fn pattern(s: SeqNum) -> u8 {
    (s.0.wrapping_mul(0x9E37_79B1) >> 24) as u8
}

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes([
            self.u8()?,
            self.u8()?,
            self.u8()?,
            self.u8()?,
        ]))
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

/// What the endpoint last sent on one 4-tuple, to build plausible replies.
#[derive(Clone, Copy)]
struct LastTx {
    local_port: u16,
    remote_port: u16,
    ack: SeqNum,
    end: SeqNum,
    tsval: Option<u32>,
}

/// What the harness knows of one connection's receive stream.
#[derive(Default)]
struct Stream {
    /// Sequence number right after the last byte read.
    next: Option<SeqNum>,
    /// The peer's FIN was consumed (CLOSE_WAIT, CLOSING or TIME_WAIT seen).
    fin: bool,
}

struct World {
    us: IpAddr,
    peer: IpAddr,
    ep: Endpoint,
    now: Instant,
    conns: Vec<ConnHandle>,
    last: Option<LastTx>,
    buf: Vec<u8>,
    /// Every socket's current state, as the events told it.
    states: HashMap<SocketHandle, State>,
    streams: HashMap<ConnHandle, Stream>,
}

impl World {
    fn drain(&mut self) {
        let mut out = Vec::new();
        let mut rsts = 0;
        for _ in 0..10_000 {
            let Some(tx) = self.ep.poll_transmit(self.now, &mut out) else {
                break;
            };
            let d = &out[..tx.len];
            let p = parse_ip_tcp(d)
                .unwrap_or_else(|e| panic!("endpoint emitted an invalid datagram: {e}"));
            assert_eq!((p.src, p.dst), (tx.src, tx.dst));
            rsts += p.tcp.flags.contains(Flags::RST) as usize;
            self.last = Some(LastTx {
                local_port: p.tcp.src_port,
                remote_port: p.tcp.dst_port,
                ack: p.tcp.ack,
                end: p.tcp.seq + p.tcp.segment_len(),
                tsval: p.tcp.options.timestamps.map(|t| t.tsval),
            });
        }
        // Every RST goes through the control queue, which holds at most MAX_CTL.
        assert!(rsts <= MAX_CTL, "{rsts} RSTs out of one drain");
        let mut seen = Vec::new();
        while let Some(ev) = self.ep.poll_event() {
            seen.push(ev.clone());
            match ev {
                Event::StateChanged {
                    socket, from, to, ..
                } => {
                    assert!(
                        from.can_transition_to(to),
                        "{socket}: illegal transition {from} -> {to}"
                    );
                    if let Some(prev) = self.states.insert(socket, to) {
                        assert_eq!(prev, from, "{socket}: {from} -> {to} after {prev}");
                    }
                    if let SocketHandle::Conn(c) = socket {
                        if matches!(to, State::CloseWait | State::Closing | State::TimeWait) {
                            self.streams.entry(c).or_default().fin = true;
                        }
                    }
                }
                Event::Acceptable { listener, .. } => {
                    if let Ok(Some(c)) = self.ep.accept(self.now, listener) {
                        self.conns.push(c);
                    }
                }
                _ => {}
            }
        }
        // A step may end every connection the application ever had (a long time jump), each
        // with a few events, and every record the endpoint still holds.
        let bound = 16 * (self.conns.len() + self.ep.connections().len() + 8);
        assert!(
            seen.len() <= bound,
            "{} events in one step: {seen:#?}",
            seen.len()
        );
    }

    fn deliver(&mut self, repr: &TcpRepr<'_>) {
        if emit_ip_tcp(self.peer, self.us, repr, &mut self.buf).is_ok() {
            let d = std::mem::take(&mut self.buf);
            self.ep.handle_packet(self.now, &d);
            self.buf = d;
        }
    }

    /// Reads up to `max` bytes of `c` and checks they continue the stream.
    fn read(&mut self, c: ConnHandle, max: usize, zero_copy: bool) {
        let Some(info) = self.ep.info(c) else { return };
        let fin = self.streams.get(&c).is_some_and(|s| s.fin);
        // The unread bytes end at RCV.NXT (less the FIN, once consumed).
        let start = SeqNum(info.rcv_nxt) - (info.recv_queue as u32 + fin as u32);
        let mut b = [0u8; 512];
        let max = max.clamp(1, b.len());
        let mut got = Vec::new();
        let r = if zero_copy {
            self.ep.recv_with(self.now, c, |d| {
                let n = d.len().min(max);
                got.extend_from_slice(&d[..n]);
                n
            })
        } else {
            let r = self.ep.recv(self.now, c, &mut b[..max]);
            if let Ok(Some(n)) = r {
                got.extend_from_slice(&b[..n]);
            }
            r
        };
        let Ok(Some(n)) = r else { return };
        assert_eq!(n, got.len());
        if n == 0 {
            return;
        }
        let st = self.streams.entry(c).or_default();
        if let Some(next) = st.next {
            assert_eq!(start, next, "{c}: read resumed at {start:?}, not {next:?}");
        }
        for (i, &byte) in got.iter().enumerate() {
            let s = start + i as u32;
            assert_eq!(byte, pattern(s), "{c}: byte at {s:?} delivered wrongly");
        }
        st.next = Some(start + n as u32);
    }

    /// Per-connection invariants, from `info()`.
    fn check_conns(&self) {
        for &c in &self.conns {
            let (Some(i), Some(o)) = (self.ep.info(c), self.ep.options(c)) else {
                continue;
            };
            let flight = SeqNum(i.snd_nxt).diff(SeqNum(i.snd_una));
            assert!(
                flight >= 0,
                "{c}: snd_una {} > snd_nxt {}",
                i.snd_una,
                i.snd_nxt
            );
            if !matches!(i.state, State::Closed | State::TimeWait) {
                assert!(
                    flight as usize <= i.send_queue + 2,
                    "{c}: {flight} bytes in flight, {} queued",
                    i.send_queue
                );
            }
            assert!(i.send_queue <= o.send_buffer, "{c}: send queue overflow");
            assert!(
                i.recv_queue as u64 + i.out_of_order <= o.recv_buffer as u64,
                "{c}: {} unread + {} out of order > buffer {}",
                i.recv_queue,
                i.out_of_order,
                o.recv_buffer
            );
        }
    }
}

fn flags_from(b: u8) -> Flags {
    // Bias towards the segment kinds of the RFC 9293 §3.10 rules.
    const KINDS: [u8; 8] = [0x10, 0x11, 0x01, 0x04, 0x14, 0x02, 0x12, 0x03];
    if b & 0x80 != 0 {
        Flags(b << 1 | b >> 7)
    } else {
        Flags(KINDS[(b & 7) as usize] | if b & 0x08 != 0 { 0x08 } else { 0 })
    }
}

/// Windows that reach the hard paths: zero, below one segment, full.
fn window_from(b: u8) -> u16 {
    match b {
        0..=47 => 0,
        48..=127 => b as u16 * 8,
        _ => 65535,
    }
}

fn config_from(b: u8) -> Config {
    let mut cfg = Config {
        max_ctl_queue: MAX_CTL,
        ..Config::default()
    };
    if b & 2 != 0 {
        // Buffers of a few segments: zero and sub-MSS windows, full send queues.
        cfg.recv_buffer = 3000;
        cfg.send_buffer = 5000;
    }
    cfg.timestamps = b & 4 == 0;
    cfg.sack = b & 8 == 0;
    if b & 16 != 0 {
        cfg.delayed_ack = None;
    }
    cfg
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    // The first byte picks the address family and the configuration.
    let first = inp.u8().unwrap_or(0);
    let (us, peer) = if first & 1 == 1 {
        (US6, PEER6)
    } else {
        (US4, PEER4)
    };
    let mut w = World {
        us,
        peer,
        ep: Endpoint::new(config_from(first), 1),
        now: Instant::from_micros(1_000_000),
        conns: Vec::new(),
        last: None,
        buf: Vec::new(),
        states: HashMap::new(),
        streams: HashMap::new(),
    };
    let Ok(_listener) = w.ep.listen(w.now, SocketAddr::new(us, 80), 4) else {
        return;
    };
    if let Ok(c) =
        w.ep.connect(w.now, SocketAddr::new(us, 0), SocketAddr::new(peer, 443))
    {
        w.conns.push(c);
    }
    w.drain();
    let mut steps = 0;
    while let Some(op) = inp.u8() {
        steps += 1;
        if steps > 200 {
            break;
        }
        match op % 12 {
            // A reply to the last thing the endpoint sent, with fuzzed flags,
            // window and small offsets around the "right" numbers.
            0..=2 => {
                let Some(l) = w.last else { continue };
                let (Some(f), Some(dseq), Some(dack), Some(len), Some(win)) =
                    (inp.u8(), inp.u8(), inp.u8(), inp.u8(), inp.u8())
                else {
                    break;
                };
                let seq = l.ack + (dseq as i8 as i32) as u32;
                let flags = flags_from(f);
                let first_data = seq + flags.contains(Flags::SYN) as u32;
                let payload: Vec<u8> = (0..(len as usize % 64) * (1 + (op as usize >> 6)))
                    .map(|i| pattern(first_data + i as u32))
                    .collect();
                let repr = TcpRepr {
                    src_port: l.remote_port,
                    dst_port: l.local_port,
                    seq,
                    ack: l.end + (dack as i8 as i32) as u32,
                    flags,
                    window: window_from(win),
                    urgent: 0,
                    options: TcpOptions {
                        mss: (f & 0x40 != 0).then_some(1460),
                        sack_permitted: f & 0x20 != 0,
                        timestamps: l.tsval.map(|t| Timestamps {
                            tsval: w.now.as_micros() as u32 / 1000,
                            tsecr: t,
                        }),
                        ..TcpOptions::default()
                    },
                    payload: &payload,
                };
                w.deliver(&repr);
            }
            // A fresh segment to the listener (SYNs, strays) with fuzzed fields.
            3 => {
                let (Some(sport), Some(seq), Some(ack), Some(f), Some(win)) =
                    (inp.u16(), inp.u32(), inp.u32(), inp.u8(), inp.u16())
                else {
                    break;
                };
                let repr = TcpRepr {
                    src_port: sport,
                    dst_port: if f & 0x40 != 0 { 80 } else { sport ^ 0x5a5a },
                    seq: SeqNum(seq),
                    ack: SeqNum(ack),
                    flags: flags_from(f),
                    window: win,
                    urgent: 0,
                    options: TcpOptions {
                        mss: Some(536),
                        window_scale: Some(f & 15),
                        sack_permitted: true,
                        ..TcpOptions::default()
                    },
                    payload: &[],
                };
                w.deliver(&repr);
            }
            // Raw bytes: mostly rejected by the wire layer, never a panic. A
            // raw datagram that parses with a payload is not delivered: its
            // bytes would not follow `pattern`.
            4 => {
                let Some(len) = inp.u8() else { break };
                let raw = inp.bytes(len as usize).to_vec();
                if parse_ip_tcp(&raw).is_ok_and(|p| !p.tcp.payload.is_empty()) {
                    continue;
                }
                w.ep.handle_packet(w.now, &raw);
            }
            5 => {
                let Some(ms) = inp.u16() else { break };
                w.now += Duration::from_millis(ms as u64 * 16);
            }
            6 => {
                let Some(n) = inp.u8() else { break };
                if let Some(&c) = w.conns.get(n as usize % w.conns.len().max(1)) {
                    let _ = w.ep.send(w.now, c, &vec![0x61; n as usize * 7]);
                }
            }
            7 => {
                let Some(n) = inp.u8() else { break };
                if let Some(&c) = w.conns.get(n as usize % w.conns.len().max(1)) {
                    let now = w.now;
                    match n % 4 {
                        0 => drop(w.ep.close(now, c)),
                        1 => drop(w.ep.shutdown_write(now, c)),
                        2 => drop(w.ep.abort(now, c)),
                        _ => {
                            if let Some(mut o) = w.ep.options(c) {
                                o.nodelay = true;
                                let _ = w.ep.set_options(now, c, o);
                            }
                        }
                    }
                }
            }
            8 => {
                let Some(n) = inp.u8() else { break };
                for c in w.conns.clone() {
                    w.read(c, n as usize * 2 + 1, n & 1 == 1);
                }
            }
            // A burst of strays that each deserve an RST (or a SYN-ACK),
            // delivered before anything is polled: the control queue must
            // stay bounded.
            9 => {
                let (Some(k), Some(f)) = (inp.u8(), inp.u8()) else {
                    break;
                };
                for i in 0..k as u16 {
                    let repr = TcpRepr {
                        src_port: 2000 + i,
                        dst_port: if f & 1 == 0 { 81 } else { 80 },
                        seq: SeqNum(i as u32 * 7919),
                        ack: SeqNum(i as u32 * 104_729),
                        flags: if f & 2 == 0 { Flags::ACK } else { Flags::SYN },
                        window: 1000,
                        urgent: 0,
                        options: TcpOptions::default(),
                        payload: &[],
                    };
                    w.deliver(&repr);
                }
            }
            10 => {
                let Some(n) = inp.u8() else { break };
                let mut b = [0u8; 64];
                if let Some(&c) = w.conns.get(n as usize % w.conns.len().max(1)) {
                    let _ = w.ep.peek(c, &mut b);
                    let _ = w.ep.take_error(c);
                }
            }
            _ => {
                let Some(n) = inp.u8() else { break };
                if let Ok(c) = w.ep.connect(
                    w.now,
                    SocketAddr::new(us, 0),
                    SocketAddr::new(peer, 1000 + n as u16),
                ) {
                    w.conns.push(c);
                }
            }
        }
        // Fire due timers, as a driver would.
        if let Some(t) = w.ep.poll_timeout() {
            if t <= w.now {
                w.ep.handle_timeout(w.now);
            }
        }
        w.drain();
        w.check_conns();
        let _ = w.ep.census();
    }
});
