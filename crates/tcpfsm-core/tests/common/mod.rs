//! Test harness: two endpoints joined by a link with a fixed one-way delay, a log of every
//! segment, a way to drop chosen ones, and helpers to hand-craft segments as real bytes.
#![allow(dead_code)]

pub mod server;

use std::net::{IpAddr, SocketAddr};
use tcpfsm_core::{
    Config, ConnHandle, ConnOptions, Duration, Endpoint, Event, Instant, ListenOptions,
    ListenerHandle, RecvError, SocketHandle, State, TxKind,
};
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
    /// Every event of both endpoints with the virtual time it was polled (`true`: A's).
    pub timed: Vec<(Instant, bool, Event)>,
    /// With `record_deliveries` set: every datagram handed to an endpoint that parses, with
    /// its arrival time (`true`: delivered to A).
    pub deliveries: Vec<(Instant, bool, Seg)>,
    pub record_deliveries: bool,
    drop_rule: Option<DropRule>,
    impair: Impair,
    rng: rand::rngs::SmallRng,
}

impl Net {
    pub fn new(ca: Config, cb: Config) -> Net {
        Net::with_seeds(ca, cb, 1, 2)
    }

    /// Endpoints with chosen seeds (their ISNs, ports and timestamp offsets follow from them).
    pub fn with_seeds(ca: Config, cb: Config, seed_a: u64, seed_b: u64) -> Net {
        Net {
            a: Endpoint::new(ca, seed_a),
            b: Endpoint::new(cb, seed_b),
            now: Instant::from_micros(1_000_000),
            delay: Duration::from_millis(10),
            flight: Vec::new(),
            log: Vec::new(),
            ev_a: Vec::new(),
            ev_b: Vec::new(),
            timed: Vec::new(),
            deliveries: Vec::new(),
            record_deliveries: false,
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
        while let Some(e) = self.a.poll_event() {
            self.timed.push((self.now, true, e.clone()));
            self.ev_a.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.timed.push((self.now, false, e.clone()));
            self.ev_b.push(e);
        }
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
                if self.record_deliveries && parse_ip_tcp(&bytes).is_ok() {
                    self.deliveries
                        .push((self.now, !from_a, Seg::parse(&bytes)));
                }
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

/// Everything an endpoint wants to send now, with the kind the engine gave each.
pub fn drain_kinds(ep: &mut Endpoint, now: Instant) -> Vec<(Seg, TxKind)> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Some(tx) = ep.poll_transmit(now, &mut buf) {
        out.push((Seg::parse(&buf[..tx.len]), tx.kind));
    }
    out
}

/// What a scripted peer offers in its SYN or SYN-ACK.
#[derive(Debug, Clone, Copy)]
pub struct PeerOpts {
    pub isn: u32,
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack: bool,
    /// Timestamps, with the peer's clock at `ts_base` + milliseconds of virtual time.
    pub ts: bool,
    pub ts_base: u32,
    pub window: u16,
}

impl Default for PeerOpts {
    fn default() -> PeerOpts {
        PeerOpts {
            isn: 1000,
            mss: Some(1460),
            wscale: None,
            sack: false,
            ts: false,
            ts_base: 7_000_000,
            window: 65535,
        }
    }
}

/// One endpoint with one connection to a hand-written peer: every segment the peer sends is
/// built here as real bytes, with the options the handshake agreed.
pub struct Scripted {
    pub ep: Endpoint,
    pub now: Instant,
    /// The endpoint's address.
    pub me: SocketAddr,
    /// The scripted peer's address.
    pub peer: SocketAddr,
    pub conn: ConnHandle,
    pub listener: Option<ListenerHandle>,
    /// The peer's next sequence number (the endpoint's RCV.NXT once it has taken it all).
    pub p: u32,
    /// The endpoint's highest sequence number seen (its SND.NXT).
    pub y: u32,
    pub opts: PeerOpts,
    /// The endpoint's last TSval, echoed by the peer.
    pub echo: u32,
    /// The window the peer advertises.
    pub window: u16,
}

impl Scripted {
    /// The endpoint listens and the peer connects to it.
    pub fn server(cfg: Config, opts: PeerOpts) -> Scripted {
        Scripted::server_with(cfg, opts, None)
    }

    /// As `server`, with the listener's options for the accepted connection.
    pub fn server_with(cfg: Config, opts: PeerOpts, conn: Option<ConnOptions>) -> Scripted {
        let mut ep = Endpoint::new(cfg, 9);
        let now = Instant::from_micros(10_000_000);
        let me = addr(B_IP, 80);
        let peer = addr(A_IP, 40_000);
        let mut lo = ListenOptions::new(ep.config(), 64);
        if let Some(c) = conn {
            lo.conn = c;
        }
        let l = ep.listen_with(now, me, lo).unwrap();
        let mut syn = seg(peer, me, Flags::SYN, opts.isn, 0);
        syn.window = opts.window;
        syn.options.mss = opts.mss;
        syn.options.window_scale = opts.wscale;
        syn.options.sack_permitted = opts.sack;
        if opts.ts {
            let tsval = opts.ts_base.wrapping_add((now.as_micros() / 1000) as u32);
            syn = with_ts(syn, tsval, 0);
        }
        ep.handle_packet(now, &syn.bytes());
        let synack = drain(&mut ep, now)
            .into_iter()
            .find(|o| o.is(Flags::SYN | Flags::ACK))
            .expect("SYN-ACK");
        let echo = synack.options.timestamps.map_or(0, |t| t.tsval);
        let y = synack.seq.wrapping_add(1);
        let mut ack = seg(peer, me, Flags::ACK, opts.isn.wrapping_add(1), y);
        ack.window = opts.window;
        if opts.ts {
            let tsval = opts.ts_base.wrapping_add((now.as_micros() / 1000) as u32);
            ack = with_ts(ack, tsval, echo);
        }
        ep.handle_packet(now, &ack.bytes());
        let conn = ep.accept(now, l).unwrap().expect("accepted");
        drain(&mut ep, now);
        events(&mut ep);
        Scripted {
            ep,
            now,
            me,
            peer,
            conn,
            listener: Some(l),
            p: opts.isn.wrapping_add(1),
            y,
            opts,
            echo,
            window: opts.window,
        }
    }

    /// The endpoint connects (with `conn` options, if given) and the peer answers.
    pub fn client(cfg: Config, opts: PeerOpts, conn: Option<ConnOptions>) -> Scripted {
        let mut ep = Endpoint::new(cfg, 9);
        let now = Instant::from_micros(10_000_000);
        let me = addr(A_IP, 40_000);
        let peer = addr(B_IP, 80);
        let co = conn.unwrap_or_else(|| ep.config().conn_options());
        let c = ep.connect_with(now, me, peer, co).unwrap();
        let mut s = Scripted {
            ep,
            now,
            me,
            peer,
            conn: c,
            listener: None,
            p: opts.isn,
            y: 0,
            opts,
            echo: 0,
            window: opts.window,
        };
        let syn = s.drain().into_iter().find(|o| o.is(Flags::SYN)).unwrap();
        s.y = syn.seq.wrapping_add(1);
        let mut synack = s.seg(Flags::SYN | Flags::ACK, opts.isn, s.y, &[]);
        s.syn_options(&mut synack);
        s.p = opts.isn.wrapping_add(1);
        s.inject(synack);
        assert_eq!(s.ep.state(c), Some(State::Established));
        events(&mut s.ep);
        s
    }

    fn syn_options(&self, s: &mut Seg) {
        s.options.mss = self.opts.mss;
        s.options.window_scale = self.opts.wscale;
        s.options.sack_permitted = self.opts.sack;
    }

    /// The peer's TSval now.
    pub fn tsval(&self) -> u32 {
        self.opts
            .ts_base
            .wrapping_add((self.now.as_micros() / 1000) as u32)
    }

    /// A segment from the peer, with its window and (if agreed) timestamps.
    pub fn seg(&self, flags: Flags, seq: u32, ack: u32, payload: &[u8]) -> Seg {
        let mut s = seg(self.peer, self.me, flags, seq, ack);
        s.window = self.window;
        s.payload = payload.to_vec();
        if self.opts.ts {
            s = with_ts(s, self.tsval(), self.echo);
        }
        s
    }

    /// Everything the endpoint sends now; remembers its SND.NXT and TSval.
    pub fn drain(&mut self) -> Vec<Seg> {
        let out = drain(&mut self.ep, self.now);
        self.note(&out);
        out
    }

    fn note(&mut self, out: &[Seg]) {
        for o in out {
            if o.dst != self.peer || o.has(Flags::RST) {
                continue;
            }
            if let Some(ts) = o.options.timestamps {
                self.echo = ts.tsval;
            }
            let end = o.seq.wrapping_add(o.len());
            if self.y == 0 || (end.wrapping_sub(self.y) as i32) > 0 {
                self.y = end;
            }
        }
    }

    /// Delivers `s` and returns what the endpoint answers.
    pub fn inject(&mut self, s: Seg) -> Vec<Seg> {
        self.ep.handle_packet(self.now, &s.bytes());
        self.drain()
    }

    /// In-order data from the peer (ACKing everything the endpoint sent).
    pub fn data(&mut self, payload: &[u8]) -> Vec<Seg> {
        let s = self.seg(Flags::ACK | Flags::PSH, self.p, self.y, payload);
        self.p = self.p.wrapping_add(payload.len() as u32);
        self.inject(s)
    }

    /// A pure ACK of everything the endpoint sent, with the peer's current window.
    pub fn ack(&mut self) -> Vec<Seg> {
        let s = self.seg(Flags::ACK, self.p, self.y, &[]);
        self.inject(s)
    }

    /// Lets virtual time pass to `now + d`, firing every timer on the way; returns what the
    /// endpoint sent, each with its time.
    pub fn advance(&mut self, d: Duration) -> Vec<(Instant, Seg)> {
        let end = self.now + d;
        let mut out = Vec::new();
        while let Some(t) = self.ep.poll_timeout().filter(|t| *t <= end) {
            self.now = self.now.max(t);
            self.ep.handle_timeout(self.now);
            let segs = self.drain();
            out.extend(segs.into_iter().map(|s| (self.now, s)));
        }
        self.now = end;
        out
    }

    /// Lets virtual time pass to `now + d` with a silent peer, firing every timer on the way;
    /// returns how many segments of `kind` the endpoint sent.
    pub fn count_sent(&mut self, d: Duration, kind: TxKind) -> usize {
        let end = self.now + d;
        let mut n = 0;
        while let Some(t) = self.ep.poll_timeout().filter(|t| *t <= end) {
            self.now = self.now.max(t);
            self.ep.handle_timeout(self.now);
            n += drain_kinds(&mut self.ep, self.now)
                .iter()
                .filter(|(_, k)| *k == kind)
                .count();
        }
        self.now = end;
        n
    }

    /// Reads everything readable now: (bytes, what the last call returned).
    pub fn read_all(&mut self) -> (Vec<u8>, Result<Option<usize>, RecvError>) {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            match self.ep.recv(self.now, self.conn, &mut buf) {
                Ok(Some(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                r => return (got, r),
            }
        }
    }
}

/// Random bytes (not a repeating pattern), reproducible from `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut v = vec![0u8; len];
    rand::rngs::SmallRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}
