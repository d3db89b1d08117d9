//! Fuzz the sans-IO endpoint through its public API: the input is a script
//! of peer segments (mostly well-formed replies to what the endpoint last
//! sent, so handshakes and closes are reachable), raw datagrams, time jumps
//! and application calls. Invariants: no panic; everything the endpoint
//! transmits is a valid datagram by our own parser; state changes are between
//! distinct states.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tcpfsm_core::{Config, ConnHandle, Endpoint, Event, Instant};
use tcpfsm_wire::{emit_ip_tcp, parse_ip_tcp, Flags, SeqNum, TcpOptions, TcpRepr, Timestamps};

const US4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const PEER4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
const US6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1));
const PEER6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2));

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

struct World {
    us: IpAddr,
    peer: IpAddr,
    ep: Endpoint,
    now: Instant,
    conns: Vec<ConnHandle>,
    last: Option<LastTx>,
    buf: Vec<u8>,
}

impl World {
    fn drain(&mut self) {
        let mut out = Vec::new();
        for _ in 0..10_000 {
            let Some(tx) = self.ep.poll_transmit(self.now, &mut out) else {
                break;
            };
            let d = &out[..tx.len];
            let p = parse_ip_tcp(d)
                .unwrap_or_else(|e| panic!("endpoint emitted an invalid datagram: {e}"));
            assert_eq!((p.src, p.dst), (tx.src, tx.dst));
            self.last = Some(LastTx {
                local_port: p.tcp.src_port,
                remote_port: p.tcp.dst_port,
                ack: p.tcp.ack,
                end: p.tcp.seq + p.tcp.segment_len(),
                tsval: p.tcp.options.timestamps.map(|t| t.tsval),
            });
        }
        while let Some(ev) = self.ep.poll_event() {
            match ev {
                Event::StateChanged { from, to, .. } => {
                    assert_ne!(from, to, "self-transition reported")
                }
                Event::Acceptable { listener, .. } => {
                    if let Ok(Some(c)) = self.ep.accept(self.now, listener) {
                        self.conns.push(c);
                    }
                }
                _ => {}
            }
        }
    }

    fn deliver(&mut self, repr: &TcpRepr<'_>) {
        if emit_ip_tcp(self.peer, self.us, repr, &mut self.buf).is_ok() {
            let d = std::mem::take(&mut self.buf);
            self.ep.handle_packet(self.now, &d);
            self.buf = d;
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

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    // The first byte picks the address family.
    let (us, peer) = match inp.u8() {
        Some(b) if b & 1 == 1 => (US6, PEER6),
        _ => (US4, PEER4),
    };
    let mut w = World {
        us,
        peer,
        ep: Endpoint::new(Config::default(), 1),
        now: Instant::from_micros(1_000_000),
        conns: Vec::new(),
        last: None,
        buf: Vec::new(),
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
        match op % 10 {
            // A reply to the last thing the endpoint sent, with fuzzed flags
            // and small offsets around the "right" numbers.
            0..=2 => {
                let Some(l) = w.last else { continue };
                let (Some(f), Some(dseq), Some(dack), Some(len)) =
                    (inp.u8(), inp.u8(), inp.u8(), inp.u8())
                else {
                    break;
                };
                let payload = inp.bytes(len as usize % 64).to_vec();
                let repr = TcpRepr {
                    src_port: l.remote_port,
                    dst_port: l.local_port,
                    seq: l.ack + (dseq as i8 as i32) as u32,
                    ack: l.end + (dack as i8 as i32) as u32,
                    flags: flags_from(f),
                    window: 65535,
                    urgent: 0,
                    options: TcpOptions {
                        mss: (f & 0x40 != 0).then_some(1460),
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
            // Raw bytes: mostly rejected by the wire layer, never a panic.
            4 => {
                let Some(len) = inp.u8() else { break };
                let raw = inp.bytes(len as usize).to_vec();
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
                let mut b = [0u8; 512];
                for &c in &w.conns.clone() {
                    let _ = w.ep.recv(w.now, c, &mut b);
                }
            }
            _ => {
                let Some(n) = inp.u8() else { break };
                let _ = w.ep.connect(
                    w.now,
                    SocketAddr::new(us, 0),
                    SocketAddr::new(peer, 1000 + n as u16),
                );
            }
        }
        // Fire due timers, as a driver would.
        if let Some(t) = w.ep.poll_timeout() {
            if t <= w.now {
                w.ep.handle_timeout(w.now);
            }
        }
        w.drain();
        let _ = w.ep.census();
    }
});
