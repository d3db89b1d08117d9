//! Property test of the receive side against a hand-written peer whose ISN is chosen near
//! 2^32, so every stream wraps the sequence space: the peer sends random pieces of a random
//! stream — overlapping, duplicated, out of order, beyond the window — into a receive buffer
//! of 1 to 4 MSS read by a slow, bursty application.
//!
//! Every answer of the engine is checked as it comes (RFC 9293 §3.4, §3.8.6.2.2, RFC 2018):
//! the ACK only grows and never covers a byte that was not sent, the window's right edge
//! never moves left, every SACK block covers bytes that were sent (and, but for a D-SACK,
//! lies above the ACK). The application reads exactly the stream, and everything arrives
//! within a bounded number of steps.

mod common;
use common::*;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use tcpfsm_core::{Config, Duration, State};
use tcpfsm_wire::Flags;

const MSS: usize = 1460;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone)]
struct Case {
    seed: u64,
    /// The peer's ISN is this far below 2^32.
    below_wrap: u32,
    len: usize,
    rbuf: usize,
    sack: bool,
    ts: bool,
    /// Chances per step: the application reads; time passes.
    read_p: f64,
    idle_p: f64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        0u32..100_000,
        1usize..50_000,
        MSS..=4 * MSS,
        any::<bool>(),
        any::<bool>(),
        0.02..0.4f64,
        0.0..0.2f64,
    )
        .prop_map(
            |(seed, below_wrap, len, rbuf, sack, ts, read_p, idle_p)| Case {
                seed,
                below_wrap,
                len,
                rbuf,
                sack,
                ts,
                read_p,
                idle_p,
            },
        )
}

/// What the peer knows and what the checks remember.
struct Peer {
    stream: Vec<u8>,
    sent: Vec<bool>,
    /// Highest ACK seen, as a stream offset.
    acked: usize,
    /// Highest right window edge seen, as a stream offset.
    edge: usize,
    read: Vec<u8>,
    fin_sent: bool,
}

impl Peer {
    fn base(&self, s: &Scripted) -> u32 {
        s.opts.isn.wrapping_add(1)
    }

    fn check(&mut self, s: &Scripted, out: &[Seg]) -> Result<(), String> {
        let base = self.base(s);
        let fin_off = self.stream.len() + 1;
        for o in out.iter().filter(|o| o.dst == s.peer) {
            if o.has(Flags::RST) {
                return Err(format!("the engine reset: {o:?}"));
            }
            let ack = o.ack.wrapping_sub(base) as usize;
            let limit = if self.fin_sent {
                fin_off
            } else {
                self.stream.len()
            };
            if ack > limit
                || (ack > 0 && !self.sent[..ack.min(self.stream.len())].iter().all(|&b| b))
            {
                return Err(format!("ACK {ack} covers bytes never sent"));
            }
            if ack < self.acked {
                return Err(format!("ACK went back from {} to {ack}", self.acked));
            }
            self.acked = ack;
            let edge = ack + o.window as usize;
            if edge < self.edge {
                return Err(format!(
                    "window edge moved left from {} to {edge}",
                    self.edge
                ));
            }
            self.edge = edge;
            for (i, b) in o.options.sack_blocks.iter().flatten().enumerate() {
                let (l, r) = (
                    b.left.0.wrapping_sub(base) as usize,
                    b.right.0.wrapping_sub(base) as usize,
                );
                if l >= r || r > self.stream.len() || !self.sent[l..r].iter().all(|&x| x) {
                    return Err(format!("SACK block {l}..{r} covers bytes never sent"));
                }
                let dsack = i == 0 && l < ack;
                if !dsack && l < ack {
                    return Err(format!("SACK block {l}..{r} below the ACK {ack}"));
                }
            }
        }
        Ok(())
    }

    /// A random piece near the window: sometimes old, sometimes beyond the edge.
    fn piece(&self, rng: &mut impl Rng) -> (usize, usize) {
        let len = self.stream.len();
        let start = if rng.gen_bool(0.15) {
            self.acked
        } else {
            let lo = self.acked.saturating_sub(2 * MSS);
            let hi = (self.edge + MSS).min(len.saturating_sub(1)).max(lo);
            rng.gen_range(lo..=hi)
        };
        let start = start.min(len - 1);
        let end = (start + rng.gen_range(1..=MSS)).min(len);
        (start, end)
    }
}

fn run(c: &Case) -> Result<(), String> {
    let cfg = Config {
        sack: c.sack,
        timestamps: c.ts,
        window_scaling: false,
        ..Config::default()
    };
    let mut o = cfg.conn_options();
    o.recv_buffer = c.rbuf;
    let opts = PeerOpts {
        isn: 0u32.wrapping_sub(c.below_wrap),
        sack: c.sack,
        ts: c.ts,
        ..PeerOpts::default()
    };
    let mut s = Scripted::server_with(cfg, opts, Some(o));
    let mut rng = rand::rngs::SmallRng::seed_from_u64(c.seed);
    let stream = random_bytes(c.seed ^ 1, c.len);
    let mut p = Peer {
        sent: vec![false; stream.len()],
        stream,
        acked: 0,
        edge: c.rbuf,
        read: Vec::new(),
        fin_sent: false,
    };
    let base = p.base(&s);
    let mut buf = vec![0u8; 4 * MSS];
    for _ in 0..50_000 {
        if rng.gen_bool(c.read_p) {
            let want = rng.gen_range(1..=buf.len());
            match s.ep.recv(s.now, s.conn, &mut buf[..want]) {
                Ok(Some(0)) => {
                    if p.read != p.stream {
                        return Err(format!(
                            "EOF after {} of {} bytes",
                            p.read.len(),
                            p.stream.len()
                        ));
                    }
                    return Ok(());
                }
                Ok(Some(k)) => p.read.extend_from_slice(&buf[..k]),
                Ok(None) => {}
                Err(e) => return Err(format!("recv: {e}")),
            }
            if p.read[..] != p.stream[..p.read.len().min(p.stream.len())] {
                return Err(format!(
                    "read bytes differ from the stream at {}",
                    p.read.len()
                ));
            }
            let out = s.drain();
            p.check(&s, &out)?;
        }
        if rng.gen_bool(c.idle_p) {
            let out: Vec<Seg> = s
                .advance(Duration::from_millis(rng.gen_range(1..600)))
                .into_iter()
                .map(|(_, o)| o)
                .collect();
            p.check(&s, &out)?;
        }
        let g = if p.acked >= p.stream.len() {
            // Everything acknowledged: the FIN.
            p.fin_sent = true;
            s.seg(
                Flags::FIN | Flags::ACK,
                base.wrapping_add(p.stream.len() as u32),
                s.y,
                &[],
            )
        } else {
            let (a, b) = p.piece(&mut rng);
            p.sent[a..b].iter_mut().for_each(|x| *x = true);
            s.seg(
                Flags::ACK | Flags::PSH,
                base.wrapping_add(a as u32),
                s.y,
                &p.stream[a..b],
            )
        };
        let out = s.inject(g);
        p.check(&s, &out)?;
        if s.ep.state(s.conn) != Some(State::Established) && !p.fin_sent {
            return Err(format!("left ESTABLISHED: {:?}", s.ep.state(s.conn)));
        }
    }
    Err(format!(
        "stalled: {} of {} read, {} acknowledged, edge {}",
        p.read.len(),
        p.stream.len(),
        p.acked,
        p.edge
    ))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), ..ProptestConfig::default() })]

    #[test]
    fn overlapping_reordered_pieces_across_the_wrap_reassemble_byte_exact(c in case()) {
        let r = run(&c);
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

#[test]
fn a_stream_starting_one_byte_below_the_wrap_reassembles() {
    for (sack, ts) in [(false, false), (true, true)] {
        let c = Case {
            seed: 3,
            below_wrap: 1,
            len: 20_000,
            rbuf: 2 * MSS,
            sack,
            ts,
            read_p: 0.2,
            idle_p: 0.05,
        };
        run(&c).unwrap_or_else(|e| panic!("sack {sack} ts {ts}: {e}"));
    }
}
