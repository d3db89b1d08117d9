//! Header prediction (the ESTABLISHED fast path, Linux `tcp_rcv_established`) must be exactly
//! the full RFC 9293 §3.10.7.4 steps for the segments it takes. Two copies of the same pair of
//! endpoints — one with `header_prediction`, one without — get the same random history of
//! application calls, deliveries (in order, reordered, duplicated, dropped, corrupted, and
//! rewritten near the prediction's edges: SEG.SEQ and SEG.ACK one off, another window, extra
//! flags, an older or newer TSval, SACK blocks) and clock steps, as real datagrams; after every
//! step everything observable must be equal: each datagram sent (bytes and kind), each event,
//! what each read returned, `info()` of every connection, `connections()`, and `stats()`.
//! The same harness holds loss recovery's shortcuts (`Config::recovery_shortcuts`) equal to
//! its full steps, and the output path's shortcut (`Config::output_shortcut`) equal to the
//! full choice of the next segment.

use std::net::SocketAddr;
use tcpfsm_core::{
    Config, ConnHandle, ConnInfo, Duration, Endpoint, Event, Instant, ListenerHandle, Stats, TxKind,
};
use tcpfsm_wire::{emit_ip_tcp, parse_ip_tcp, Flags, SackBlock, SeqNum};

/// SplitMix64: a seeded, dependency-free generator (both worlds see the same choices).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const CLIENT: &str = "10.0.0.1:40000";
const SERVER: &str = "10.0.0.2:80";

/// Everything a driver can see after one step.
#[derive(Debug, PartialEq)]
struct Seen {
    sent: Vec<(usize, Vec<u8>, TxKind)>,
    events: Vec<(usize, Event)>,
    reads: Vec<String>,
    infos: Vec<Option<ConnInfo>>,
    listings: Vec<Vec<ConnInfo>>,
    stats: Vec<Stats>,
}

struct World {
    now: Instant,
    eps: [Endpoint; 2],
    listener: ListenerHandle,
    conns: [Option<ConnHandle>; 2],
    /// In flight: (destination endpoint, datagram).
    wire: Vec<(usize, Vec<u8>)>,
}

impl World {
    fn new(cfg: Config) -> World {
        let now = Instant::from_micros(1_000_000);
        let mut client = Endpoint::new(cfg.clone(), 1);
        let mut server = Endpoint::new(cfg, 2);
        let server_addr: SocketAddr = SERVER.parse().unwrap();
        let listener = server.listen(now, server_addr, 16).unwrap();
        let c = client
            .connect(now, CLIENT.parse().unwrap(), server_addr)
            .unwrap();
        World {
            now,
            eps: [client, server],
            listener,
            conns: [Some(c), None],
            wire: Vec::new(),
        }
    }

    /// Sends, events (accepting what the listener offers), connection state.
    fn observe(&mut self, reads: Vec<String>) -> Seen {
        let mut sent = Vec::new();
        let mut events = Vec::new();
        let mut buf = Vec::new();
        for i in 0..2 {
            while let Some(tx) = self.eps[i].poll_transmit(self.now, &mut buf) {
                let d = buf[..tx.len].to_vec();
                sent.push((i, d.clone(), tx.kind));
                self.wire.push((1 - i, d));
            }
            while let Some(e) = self.eps[i].poll_event() {
                if let Event::Acceptable { .. } = e {
                    if let Ok(Some(c)) = self.eps[1].accept(self.now, self.listener) {
                        self.conns[1] = Some(c);
                    }
                }
                events.push((i, e));
            }
        }
        let infos = (0..2)
            .map(|i| self.conns[i].and_then(|c| self.eps[i].info(c)))
            .collect();
        let listings = self.eps.iter().map(|e| e.connections()).collect();
        let stats = self.eps.iter().map(|e| *e.stats()).collect();
        Seen {
            sent,
            events,
            reads,
            infos,
            listings,
            stats,
        }
    }

    fn deliver(&mut self, to: usize, d: &[u8]) {
        self.eps[to].handle_packet(self.now, d);
    }

    /// One step, chosen by `r` (the same draws in both worlds).
    fn step(&mut self, r: &mut Rng, data: &[u8]) -> Seen {
        let mut reads = Vec::new();
        match r.below(100) {
            0..=14 => {
                let i = r.below(2) as usize;
                let n = r.below(4000) as usize;
                let at = r.below(data.len() as u64 - n as u64) as usize;
                if let Some(c) = self.conns[i] {
                    let res = self.eps[i].send(self.now, c, &data[at..at + n]);
                    reads.push(format!("send {i} {res:?}"));
                }
            }
            15..=24 => {
                let i = r.below(2) as usize;
                let mut buf = vec![0u8; 1 + r.below(6000) as usize];
                if let Some(c) = self.conns[i] {
                    let res = self.eps[i].recv(self.now, c, &mut buf);
                    let got = match res {
                        Ok(Some(n)) => buf[..n].to_vec(),
                        _ => Vec::new(),
                    };
                    reads.push(format!("recv {i} {res:?} {got:?}"));
                }
            }
            25..=69 if !self.wire.is_empty() => {
                // Mostly in order; sometimes another one first (reordering).
                let k = if r.chance(80) {
                    0
                } else {
                    r.below(self.wire.len() as u64) as usize
                };
                let (to, d) = self.wire.remove(k);
                self.deliver(to, &d);
            }
            70..=74 if !self.wire.is_empty() => {
                // A duplicate.
                let k = r.below(self.wire.len() as u64) as usize;
                let (to, d) = self.wire[k].clone();
                self.deliver(to, &d);
            }
            75..=77 if !self.wire.is_empty() => {
                let k = r.below(self.wire.len() as u64) as usize;
                self.wire.remove(k);
            }
            78..=89 if !self.wire.is_empty() => {
                let k = r.below(self.wire.len() as u64) as usize;
                let (to, d) = self.wire[k].clone();
                if let Some(m) = rewrite(&d, r) {
                    self.deliver(to, &m);
                }
            }
            90..=91 if !self.wire.is_empty() => {
                // Damage: a bad checksum (or a bad header).
                let k = r.below(self.wire.len() as u64) as usize;
                let (to, mut d) = self.wire[k].clone();
                let at = r.below(d.len() as u64) as usize;
                d[at] ^= 1 << r.below(8);
                self.deliver(to, &d);
            }
            92 if r.chance(30) => {
                let i = r.below(2) as usize;
                if let Some(c) = self.conns[i] {
                    let res = self.eps[i].close(self.now, c);
                    reads.push(format!("close {i} {res:?}"));
                }
            }
            _ => {
                self.now += Duration::from_micros(r.below(250_000));
                for ep in &mut self.eps {
                    if ep.poll_timeout().is_some_and(|t| t <= self.now) {
                        ep.handle_timeout(self.now);
                    }
                }
            }
        }
        self.observe(reads)
    }
}

/// A copy of datagram `d` changed near the edges header prediction tests, re-emitted with a
/// valid checksum.
fn rewrite(d: &[u8], r: &mut Rng) -> Option<Vec<u8>> {
    let p = parse_ip_tcp(d).ok()?;
    let mut t = p.tcp.clone();
    let delta = |r: &mut Rng| -> u32 {
        match r.below(4) {
            0 => 1,
            1 => u32::MAX, // -1
            2 => r.below(3000) as u32,
            _ => (r.below(3000) as u32).wrapping_neg(),
        }
    };
    match r.below(9) {
        0 => t.seq = t.seq.wrapping_add(delta(r)),
        1 => t.ack = t.ack.wrapping_add(delta(r)),
        2 => t.window = t.window.wrapping_add(delta(r) as u16),
        3 => {
            let extra = [
                Flags::PSH,
                Flags::URG,
                Flags::ECE,
                Flags::CWR,
                Flags::FIN,
                Flags::RST,
                Flags::SYN,
            ];
            t.flags.insert(extra[r.below(extra.len() as u64) as usize]);
        }
        4 => t.flags.remove(Flags::ACK),
        5 => {
            if let Some(ts) = t.options.timestamps.as_mut() {
                ts.tsval = ts.tsval.wrapping_add(delta(r));
            }
        }
        6 => {
            if let Some(ts) = t.options.timestamps.as_mut() {
                ts.tsecr = ts.tsecr.wrapping_add(delta(r));
            }
        }
        7 => {
            // A SACK block somewhere around what the receiver of `d` sent.
            let left = t.ack.wrapping_add(delta(r));
            let len = 1 + r.below(3000) as u32;
            t.options.sack_blocks[0] = Some(SackBlock {
                left,
                right: SeqNum(left.0.wrapping_add(len)),
            });
        }
        _ => {
            let n = r.below(t.payload.len() as u64 + 1) as usize;
            t.payload = &t.payload[..n];
        }
    }
    let mut out = Vec::new();
    emit_ip_tcp(p.src, p.dst, &t, &mut out).ok()?;
    Some(out)
}

fn config(r: &mut Rng) -> Config {
    let small = r.chance(40);
    let buffer = if small {
        2048 + r.below(6000) as usize
    } else {
        Config::default().recv_buffer
    };
    Config {
        timestamps: r.chance(70),
        sack: r.chance(70),
        window_scaling: r.chance(70),
        delayed_ack: if r.chance(50) {
            None
        } else {
            Config::default().delayed_ack
        },
        mss: [536, 1000, 1460][r.below(3) as usize],
        recv_buffer: buffer,
        send_buffer: if r.chance(50) {
            buffer
        } else {
            Config::default().send_buffer
        },
        ..Config::default()
    }
}

/// Runs one seed with the shortcut under test on (`fast`) and off (`slow`).
fn run(seed: u64, steps: usize, shortcut: fn(&mut Config, bool)) {
    let mut r = Rng(seed);
    let cfg = config(&mut r);
    let data: Vec<u8> = (0..16384).map(|_| r.next() as u8).collect();
    let world = |on: bool| {
        let mut c = cfg.clone();
        shortcut(&mut c, on);
        World::new(c)
    };
    let (mut fast, mut slow) = (world(true), world(false));
    assert_eq!(fast.observe(Vec::new()), slow.observe(Vec::new()));
    for step in 0..steps {
        let mut rs = Rng(r.0);
        let a = fast.step(&mut r, &data);
        let b = slow.step(&mut rs, &data);
        assert_eq!(
            r.0, rs.0,
            "seed {seed} step {step}: the worlds drew differently"
        );
        assert_eq!(a, b, "seed {seed} step {step} ({cfg:?})");
    }
}

#[test]
fn header_prediction_is_the_full_arrival_steps() {
    for seed in 0..400 {
        run(seed, 1000, |c, on| c.header_prediction = on);
    }
}

/// The same for loss recovery's shortcuts (`Config::recovery_shortcuts`: ACKs that provably
/// change nothing skip the recovery steps and the counter sync), against the full steps.
#[test]
fn recovery_shortcuts_are_the_full_ack_steps() {
    for seed in 0..400 {
        run(seed, 1000, |c, on| c.recovery_shortcuts = on);
    }
}

/// The same for the output path's shortcut (`Config::output_shortcut`: a connection with no
/// data, FIN, loss probe or lost segment waiting skips choosing), against the full choice.
#[test]
fn output_shortcut_is_the_full_choice() {
    for seed in 0..400 {
        run(seed, 1000, |c, on| c.output_shortcut = on);
    }
}
