//! Test harness: two endpoints joined by a link with a fixed one-way delay, a log of every
//! segment, a way to drop chosen ones, and helpers to hand-craft segments as real bytes.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use tcpfsm_core::{Config, ConnHandle, Duration, Endpoint, Event, Instant, SocketHandle, State};
use tcpfsm_wire::{emit_ip_tcp, parse_ip_tcp, Flags, SeqNum, TcpOptions, TcpRepr, Timestamps};

/// Timestamps, SACK and window scaling off and every segment ACKed at once, so hand-built
/// segments need no option bookkeeping and every reply is immediate.
pub fn plain() -> Config {
    Config {
        timestamps: false,
        delayed_ack: None,
        sack: false,
        window_scaling: false,
        ..Config::default()
    }
}

pub const A_IP: &str = "10.0.0.1";
pub const B_IP: &str = "10.0.0.2";

pub fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

/// An owned, parsed segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seg {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub flags: Flags,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    pub options: TcpOptions,
    pub payload: Vec<u8>,
}

impl Seg {
    pub fn parse(bytes: &[u8]) -> Seg {
        let p = parse_ip_tcp(bytes).expect("endpoint emitted a valid datagram");
        Seg {
            src: SocketAddr::new(p.src, p.tcp.src_port),
            dst: SocketAddr::new(p.dst, p.tcp.dst_port),
            flags: p.tcp.flags,
            seq: p.tcp.seq.0,
            ack: p.tcp.ack.0,
            window: p.tcp.window,
            options: p.tcp.options,
            payload: p.tcp.payload.to_vec(),
        }
    }

    pub fn is(&self, f: Flags) -> bool {
        self.flags == f
    }

    pub fn has(&self, f: Flags) -> bool {
        self.flags.contains(f)
    }

    pub fn len(&self) -> u32 {
        self.payload.len() as u32 + self.has(Flags::SYN) as u32 + self.has(Flags::FIN) as u32
    }

    pub fn bytes(&self) -> Vec<u8> {
        let repr = TcpRepr {
            src_port: self.src.port(),
            dst_port: self.dst.port(),
            seq: SeqNum(self.seq),
            ack: SeqNum(self.ack),
            flags: self.flags,
            window: self.window,
            urgent: 0,
            options: self.options,
            payload: &self.payload,
        };
        let mut buf = Vec::new();
        emit_ip_tcp(self.src.ip(), self.dst.ip(), &repr, &mut buf).unwrap();
        buf
    }
}

/// Builds a segment from `src` to `dst`.
pub fn seg(src: SocketAddr, dst: SocketAddr, flags: Flags, seq: u32, ack: u32) -> Seg {
    Seg {
        src,
        dst,
        flags,
        seq,
        ack,
        window: 65535,
        options: TcpOptions::default(),
        payload: Vec::new(),
    }
}

pub fn with_ts(mut s: Seg, tsval: u32, tsecr: u32) -> Seg {
    s.options.timestamps = Some(Timestamps { tsval, tsecr });
    s
}

/// Everything an endpoint wants to send now.
pub fn drain(ep: &mut Endpoint, now: Instant) -> Vec<Seg> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Some(tx) = ep.poll_transmit(now, &mut buf) {
        out.push(Seg::parse(&buf[..tx.len]));
    }
    out
}

pub fn events(ep: &mut Endpoint) -> Vec<Event> {
    std::iter::from_fn(|| ep.poll_event()).collect()
}

/// The (from, to) of every state change of `conn` in `evs`.
pub fn path_of(evs: &[Event], conn: ConnHandle) -> Vec<State> {
    let mut p = Vec::new();
    for e in evs {
        if let Event::StateChanged {
            socket, from, to, ..
        } = e
        {
            if *socket == SocketHandle::Conn(conn) {
                if p.is_empty() {
                    p.push(*from);
                }
                p.push(*to);
            }
        }
    }
    p
}

#[derive(Debug, Clone)]
pub struct Logged {
    pub t: Instant,
    pub from_a: bool,
    pub seg: Seg,
    pub dropped: bool,
}

type DropRule = Box<dyn FnMut(bool, &Seg) -> bool>;

/// Random link faults, drawn from a seeded RNG.
#[derive(Debug, Clone, Copy, Default)]
pub struct Impair {
    pub loss: f64,
    pub dup: f64,
    /// Probability of an extra random delay of up to 5× the base delay (reordering).
    pub reorder: f64,
    pub corrupt: f64,
}

/// Two endpoints, A and B, on a link with one-way delay.
pub struct Net {
    pub a: Endpoint,
    pub b: Endpoint,
    pub now: Instant,
    pub delay: Duration,
    flight: Vec<(Instant, bool, Vec<u8>)>,
    pub log: Vec<Logged>,
    pub ev_a: Vec<Event>,
    pub ev_b: Vec<Event>,
    drop_rule: Option<DropRule>,
    impair: Impair,
    rng: rand::rngs::SmallRng,
}

impl Net {
    pub fn new(ca: Config, cb: Config) -> Net {
        Net {
            a: Endpoint::new(ca, 1),
            b: Endpoint::new(cb, 2),
            now: Instant::from_micros(1_000_000),
            delay: Duration::from_millis(10),
            flight: Vec::new(),
            log: Vec::new(),
            ev_a: Vec::new(),
            ev_b: Vec::new(),
            drop_rule: None,
            impair: Impair::default(),
            rng: rand::SeedableRng::seed_from_u64(0),
        }
    }

    pub fn impair(&mut self, seed: u64, i: Impair) {
        self.impair = i;
        self.rng = rand::SeedableRng::seed_from_u64(seed);
    }

    pub fn default_pair() -> Net {
        Net::new(Config::default(), Config::default())
    }

    /// Drop segments for which `rule(from_a, seg)` is true.
    pub fn drop_when(&mut self, rule: impl FnMut(bool, &Seg) -> bool + 'static) {
        self.drop_rule = Some(Box::new(rule));
    }

    pub fn clear_drop(&mut self) {
        self.drop_rule = None;
    }

    fn pump(&mut self) {
        for from_a in [true, false] {
            let ep = if from_a { &mut self.a } else { &mut self.b };
            let mut buf = Vec::new();
            while let Some(tx) = ep.poll_transmit(self.now, &mut buf) {
                let bytes = buf[..tx.len].to_vec();
                let s = Seg::parse(&bytes);
                let dropped = self.drop_rule.as_mut().is_some_and(|r| r(from_a, &s));
                self.log.push(Logged {
                    t: self.now,
                    from_a,
                    seg: s,
                    dropped,
                });
                if dropped {
                    continue;
                }
                use rand::Rng;
                let i = self.impair;
                if self.rng.gen_bool(i.loss) {
                    continue;
                }
                let copies = if self.rng.gen_bool(i.dup) { 2 } else { 1 };
                for _ in 0..copies {
                    let mut b = bytes.clone();
                    if self.rng.gen_bool(i.corrupt) {
                        let bit = self.rng.gen_range(0..b.len() * 8);
                        b[bit / 8] ^= 1 << (bit % 8);
                    }
                    let mut at = self.now + self.delay;
                    if self.rng.gen_bool(i.reorder) {
                        at += self.delay * self.rng.gen_range(1..=5);
                    }
                    self.flight.push((at, from_a, b));
                }
            }
        }
        self.ev_a.extend(std::iter::from_fn(|| self.a.poll_event()));
        self.ev_b.extend(std::iter::from_fn(|| self.b.poll_event()));
    }

    /// Runs the network until nothing is scheduled before `now + d`.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.pump();
            let next_pkt = self.flight.iter().map(|f| f.0).min();
            let next = [next_pkt, self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|n| *n <= end) else {
                self.now = end;
                self.pump();
                return;
            };
            self.now = self.now.max(next);
            let due: Vec<_> = {
                let (due, rest): (Vec<_>, Vec<_>) =
                    self.flight.drain(..).partition(|f| f.0 <= self.now);
                self.flight = rest;
                due
            };
            // One datagram at a time, each answered before the next, as on a real link.
            for (_, from_a, bytes) in due {
                if from_a {
                    self.b.handle_packet(self.now, &bytes);
                } else {
                    self.a.handle_packet(self.now, &bytes);
                }
                self.pump();
            }
            self.a.handle_timeout(self.now);
            self.b.handle_timeout(self.now);
        }
    }

    pub fn run(&mut self) {
        self.run_for(Duration::from_secs(1));
    }

    /// Listens on B:80 and connects A to it; returns (client conn, server conn) established.
    pub fn establish(&mut self) -> (ConnHandle, ConnHandle) {
        let l = self.b.listen(self.now, addr(B_IP, 80), 128).unwrap();
        let c = self
            .a
            .connect(self.now, addr(A_IP, 0), addr(B_IP, 80))
            .unwrap();
        self.run_for(Duration::from_millis(100));
        let s = self
            .b
            .accept(self.now, l)
            .unwrap()
            .expect("server accepted");
        assert_eq!(self.a.state(c), Some(State::Established));
        assert_eq!(self.b.state(s), Some(State::Established));
        (c, s)
    }

    pub fn segs_from(&self, from_a: bool) -> Vec<&Logged> {
        self.log.iter().filter(|l| l.from_a == from_a).collect()
    }

    pub fn read_all(ep: &mut Endpoint, c: ConnHandle) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match ep.recv(Instant::ZERO, c, &mut buf) {
                Ok(Some(0)) => return (out, true),
                Ok(Some(n)) => out.extend_from_slice(&buf[..n]),
                Ok(None) | Err(_) => return (out, false),
            }
        }
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// TCP_NODELAY on one connection.
pub fn set_nodelay(ep: &mut Endpoint, now: Instant, c: ConnHandle) {
    let mut o = ep.options(c).expect("live connection");
    o.nodelay = true;
    ep.set_options(now, c, o).unwrap();
}
