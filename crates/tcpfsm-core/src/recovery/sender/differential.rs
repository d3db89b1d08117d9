//! The shortcuts of [`LossRecovery`] (`RecoveryConfig::shortcuts`) must be exactly the full
//! steps. Two copies, one with the shortcuts and one without, each with its own congestion
//! controller, get the same random history — new data, retransmissions, ACKs (idle ones, old
//! ones, partial and full cumulative ACKs, SACK and D-SACK blocks, duplicate-ACK flags, RTT
//! samples, echoes), clock steps, the reordering timer, loss probes and RTOs — under random
//! settings (SACK, RACK, TLP, undo, PRR bound, CUBIC or NewReno). After every call the
//! answers and the whole state of both (loss recovery and controller, by `Debug`) must be
//! equal; only the `shortcuts` setting itself and `AckResult::idle` may differ, and an ACK
//! reported idle must not have moved a counter in the full steps (the caller skips the
//! counter sync for it).

use super::*;
use crate::cc::{Cubic, CubicConfig, NewReno, NewRenoConfig};
use crate::recovery::tlp::Probe;
use rand::rngs::StdRng;
use rand::{Rng as _, RngCore, SeedableRng};

/// The seeded generator the crate's other tests use (`rand`'s `StdRng`), with the two draws
/// this test makes.
struct Rng(StdRng);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(StdRng::seed_from_u64(seed))
    }
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0.gen_range(0..n.max(1))
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const MSS: u32 = 1000;

struct Side {
    lr: LossRecovery,
    cc: Box<dyn CongestionControl>,
}

struct Twin {
    fast: Side,
    slow: Side,
    now: u64,
    /// Sequence numbers ever sent: [isn, top).
    isn: SeqNum,
    /// Bytes of data the "application" has (new data stops there for a while).
    limit: u32,
    /// How many idle ACKs the fast copy took (the test must exercise the shortcut).
    idle: u32,
    calls: u32,
}

impl Twin {
    fn new(rng: &mut Rng) -> Twin {
        let cfg = RecoveryConfig {
            sack: rng.chance(80),
            rack: rng.chance(80),
            tlp: rng.chance(80),
            undo: rng.chance(80),
            prr_bound: match rng.below(3) {
                0 => Bound::Rfc9937,
                1 => Bound::Conservative,
                _ => Bound::SlowStart,
            },
            ..RecoveryConfig::default()
        };
        let isn = SeqNum(rng.next() as u32);
        let reno = rng.chance(30);
        let side = |shortcuts: bool| Side {
            lr: LossRecovery::new(RecoveryConfig { shortcuts, ..cfg }, isn, MSS),
            cc: if reno {
                Box::new(NewReno::new(NewRenoConfig::default(), MSS))
            } else {
                Box::new(Cubic::new(CubicConfig::default(), MSS))
            },
        };
        Twin {
            fast: side(true),
            slow: side(false),
            now: 1_000_000,
            isn,
            limit: rng.below(200_000) as u32,
            idle: 0,
            calls: 0,
        }
    }

    fn at(&self) -> Instant {
        Instant::from_micros(self.now)
    }

    fn sb(&self) -> &Scoreboard {
        self.slow.lr.scoreboard()
    }

    /// Runs `f` on both copies and insists on equal answers and equal states.
    fn both<T: PartialEq + std::fmt::Debug>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&mut LossRecovery, &mut dyn CongestionControl) -> T,
    ) -> T {
        self.calls += 1;
        let a = f(&mut self.fast.lr, self.fast.cc.as_mut());
        let b = f(&mut self.slow.lr, self.slow.cc.as_mut());
        assert_eq!(a, b, "{what}: answers differ");
        self.same(what);
        a
    }

    fn same(&self, what: &str) {
        let fast = format!("{:?}", self.fast.lr).replace("shortcuts: true", "shortcuts: false");
        assert_eq!(fast, format!("{:?}", self.slow.lr), "{what}: states differ");
        assert_eq!(
            format!("{:?}", self.fast.cc),
            format!("{:?}", self.slow.cc),
            "{what}: controllers differ"
        );
        self.slow.lr.scoreboard().check_invariants();
    }

    fn send_new(&mut self, rng: &mut Rng) {
        let nxt = self.sb().snd_nxt();
        let sent = nxt.diff(self.isn) as u32;
        if sent >= self.limit {
            return;
        }
        let len = if rng.chance(70) {
            MSS
        } else {
            1 + rng.below(u64::from(MSS)) as u32
        }
        .min(self.limit - sent);
        let now = self.at();
        self.both("on_sent new", |lr, cc| lr.on_sent(now, nxt, len, None, cc));
    }

    fn retransmit(&mut self, rng: &mut Rng) {
        let (una, nxt) = (self.sb().snd_una(), self.sb().snd_nxt());
        if una == nxt {
            return;
        }
        let cwnd = if rng.chance(50) { u32::MAX } else { MSS * 10 };
        let new_data = rng.chance(50);
        let next = self.both("next_segment", |lr, _| lr.next_segment(cwnd, new_data));
        let (seq, len, why) = match next {
            Some(n) if n.rule != Rule::NewData => {
                let why = if self.slow.lr.phase() == Phase::Loss {
                    Retransmit::Timeout
                } else {
                    Retransmit::NextSeg(n.rule)
                };
                (n.seq, n.len, why)
            }
            _ => {
                // Any segment, for any reason.
                let off = rng.below(nxt.diff(una) as u64) as u32;
                let Some(s) = self.sb().segment(una + off) else {
                    return;
                };
                let why = match rng.below(3) {
                    0 => Retransmit::Timeout,
                    1 => Retransmit::Probe,
                    _ => Retransmit::NextSeg(Rule::Lost),
                };
                (s.start, s.end.diff(s.start) as u32, why)
            }
        };
        let now = self.at();
        self.both("on_sent rtx", |lr, cc| {
            lr.on_sent(now, seq, len, Some(why), cc)
        });
    }

    /// A sequence number in [una, nxt], often at a segment boundary.
    fn point(&self, rng: &mut Rng) -> SeqNum {
        let (una, nxt) = (self.sb().snd_una(), self.sb().snd_nxt());
        let span = nxt.diff(una) as u64;
        let p = una + rng.below(span + 1) as u32;
        match self.sb().segment(p) {
            Some(s) if rng.chance(70) => {
                if rng.chance(50) {
                    s.start
                } else {
                    s.end
                }
            }
            _ => p,
        }
    }

    fn ack(&mut self, rng: &mut Rng) {
        let (una, nxt) = (self.sb().snd_una(), self.sb().snd_nxt());
        let ack = match rng.below(10) {
            0..=3 => una,
            4..=5 => nxt,
            6 => una - rng.below(3000) as u32,
            _ => self.point(rng),
        };
        let mut blocks = vec![];
        if rng.chance(40) {
            for _ in 0..1 + rng.below(4) {
                let (a, b) = (self.point(rng), self.point(rng));
                let (a, b) = if a.lt(b) { (a, b) } else { (b, a) };
                let b = if rng.chance(10) { b + 1 } else { b };
                blocks.push(SackBlock::new(a, b));
            }
            if rng.chance(15) {
                // A D-SACK below SND.UNA.
                let end = una - rng.below(2000) as u32;
                blocks.insert(0, SackBlock::new(end - MSS, end));
            }
        }
        let now = self.at();
        let mut input = AckInput::new(now, ack, &blocks);
        let advances = ack.gt(una) && ack.le(nxt);
        if advances || rng.chance(5) {
            input.rtt = Some(Duration::from_micros(1000 + rng.below(200_000)));
        }
        input.srtt = rng
            .chance(80)
            .then(|| Duration::from_micros(1000 + rng.below(200_000)));
        if rng.chance(70) {
            input.echo = Some(Instant::from_micros(
                self.now.saturating_sub(rng.below(400_000)),
            ));
        }
        input.dupack = if rng.chance(90) {
            ack == una && una != nxt && blocks.is_empty() == rng.chance(50)
        } else {
            rng.chance(50)
        };
        input.cwnd_limited = rng.chance(70);
        self.calls += 1;
        let counts = |s: &Side| {
            (
                s.lr.counters(),
                s.lr.scoreboard().counters(),
                s.cc.counters(),
            )
        };
        let before = counts(&self.slow);
        let a = self.fast.lr.on_ack(&input, self.fast.cc.as_mut());
        let b = self.slow.lr.on_ack(&input, self.slow.cc.as_mut());
        assert!(!b.idle, "the full steps never report the shortcut");
        if a.idle {
            // The caller skips the counter sync for it.
            assert_eq!(before, counts(&self.slow), "a counter moved on an idle ACK");
        }
        self.idle += u32::from(a.idle);
        assert_eq!(AckResult { idle: false, ..a }, b, "on_ack: answers differ");
        self.same("on_ack");
    }

    fn step(&mut self, rng: &mut Rng) {
        match rng.below(100) {
            0..=29 => self.send_new(rng),
            30..=34 => self.retransmit(rng),
            35..=74 => self.ack(rng),
            75..=84 => self.now += rng.below(300_000),
            85..=87 => {
                let now = self.at();
                let srtt = rng.chance(80).then(|| Duration::from_millis(50));
                self.both("on_reorder_timer", |lr, cc| {
                    lr.on_reorder_timer(now, srtt, cc)
                });
            }
            88..=91 => {
                let now = self.at();
                let srtt = rng.chance(80).then_some(50_000);
                let rto = rng
                    .chance(50)
                    .then(|| Instant::from_micros(self.now + 300_000));
                self.both("pto_deadline", |lr, _| lr.pto_deadline(now, srtt, rto));
                let new_data = rng.chance(50);
                match self.both("on_pto", |lr, _| lr.on_pto(new_data)) {
                    Probe::NewData => {
                        self.send_new(rng);
                        self.both("on_probe_sent", |lr, _| lr.on_probe_sent(false));
                    }
                    Probe::RetransmitLast => {
                        if let Some((seq, len)) =
                            self.both("probe_segment", |lr, _| lr.probe_segment())
                        {
                            let now = self.at();
                            self.both("on_sent probe", |lr, cc| {
                                lr.on_sent(now, seq, len, Some(Retransmit::Probe), cc)
                            });
                            self.both("on_probe_sent", |lr, _| lr.on_probe_sent(true));
                        }
                    }
                    Probe::Skip => {}
                }
            }
            92..=93 => {
                let now = self.at();
                let first = rng.chance(70);
                let clear = rng.chance(10);
                self.both("on_rto", |lr, cc| {
                    lr.on_rto(now, Some(Duration::from_millis(50)), first, clear, cc)
                });
            }
            94..=96 => {
                // A burst of data in the same instant (a virtual clock's burst).
                for _ in 0..rng.below(20) {
                    self.send_new(rng);
                }
            }
            _ => {
                self.limit = self.limit.saturating_add(rng.below(50_000) as u32);
            }
        }
        self.both("queries", |lr, cc| {
            (
                lr.pipe(),
                lr.cwnd(cc),
                lr.phase(),
                lr.reorder_timer(),
                lr.counters(),
            )
        });
    }
}

#[test]
fn the_shortcuts_are_the_full_steps() {
    let (mut idle, mut calls) = (0, 0);
    for seed in 0..300 {
        let mut rng = Rng::new(seed);
        let mut t = Twin::new(&mut rng);
        for _ in 0..600 {
            t.step(&mut rng);
        }
        idle += t.idle;
        calls += t.calls;
    }
    // The history must reach the shortcuts often enough to mean something.
    assert!(idle > 2000, "only {idle} idle ACKs in {calls} calls");
}
