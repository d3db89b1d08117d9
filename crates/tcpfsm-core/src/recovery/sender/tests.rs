//! End-to-end rules of [`LossRecovery`] with a congestion controller, against a small
//! discrete-event model of a path (fixed RTT, a bottleneck that serialises segments, chosen
//! losses and delays) and a receiver that SACKs like RFC 2018 §4 / RFC 2883 require.

use super::*;
use crate::cc::{Cubic, CubicConfig};
use crate::recovery::tlp::Probe;
use proptest::prelude::*;

const MSS: u32 = 1000;
const RTT_US: u64 = 100_000;
/// Bottleneck serialisation time per segment (10 Mbit/s-ish).
const TX_US: u64 = 1000;

/// What happens to the `n`-th transmission of the segment at offset `off`.
type Fate = Box<dyn FnMut(u32, u32) -> Option<u64>>;

/// The receiver: cumulative point, out-of-order ranges (most recent first for SACK order).
#[derive(Default)]
struct Receiver {
    rcv_nxt: u32,
    ooo: Vec<(u32, u32)>,
    recent: Vec<(u32, u32)>,
}

impl Receiver {
    /// A segment arrives; returns the ACK (cumulative, blocks) it triggers.
    fn on_data(&mut self, off: u32, len: u32) -> (u32, Vec<(u32, u32)>) {
        let end = off + len;
        let mut dsack = None;
        let dup = end <= self.rcv_nxt || self.ooo.iter().any(|&(a, b)| a <= off && end <= b);
        if dup {
            dsack = Some((off, end));
        } else if off <= self.rcv_nxt {
            self.rcv_nxt = end;
        } else {
            self.ooo.push((off, end));
        }
        // Coalesce and pull in what became contiguous.
        self.ooo.sort_unstable();
        let mut merged: Vec<(u32, u32)> = vec![];
        for &(a, b) in &self.ooo {
            match merged.last_mut() {
                Some(l) if a <= l.1 => l.1 = l.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        while let Some(&(a, b)) = merged.first() {
            if a <= self.rcv_nxt {
                self.rcv_nxt = self.rcv_nxt.max(b);
                merged.remove(0);
            } else {
                break;
            }
        }
        self.ooo = merged;
        // RFC 2018 §4: the first block holds the most recently received segment, then the
        // most recently reported others; RFC 2883: a D-SACK goes first.
        if !dup && off > self.rcv_nxt {
            let holder = *self
                .ooo
                .iter()
                .find(|&&(a, b)| a <= off && end <= b)
                .unwrap();
            self.recent
                .retain(|r| !(holder.0 <= r.0 && r.1 <= holder.1));
            self.recent.insert(0, holder);
        }
        let rcv = self.rcv_nxt;
        self.recent.retain(|r| r.0 > rcv);
        let mut blocks = vec![];
        if let Some(d) = dsack {
            blocks.push(d);
        }
        for r in &self.recent {
            if let Some(&cur) = self.ooo.iter().find(|&&(a, b)| a <= r.0 && r.1 <= b) {
                if !blocks.contains(&cur) {
                    blocks.push(cur);
                }
            }
        }
        blocks.truncate(3);
        (self.rcv_nxt, blocks)
    }
}

/// (arrival time, ack offset, blocks, echo = send time of the segment that triggered it)
type PendingAck = (u64, u32, Vec<(u32, u32)>, u64);

struct Sim {
    now: u64,
    isn: u32,
    total: u32,
    lr: LossRecovery,
    cc: Box<dyn CongestionControl>,
    rx: Receiver,
    fate: Fate,
    tx_count: std::collections::HashMap<u32, u32>,
    /// (arrival time, offset, len, send time)
    data: Vec<(u64, u32, u32, u64)>,
    /// ACKs echo the send time of the segment that triggered them (RFC 7323 timestamps).
    timestamps: bool,
    acks: Vec<PendingAck>,
    bottleneck_free: u64,
    rto: Option<u64>,
    rto_backoff: u32,
    /// The backoff an ACK of new data returns to (RFC 6298 §5.7 keeps it until a sample).
    rto_base: u32,
    pto: Option<u64>,
    /// (time, offset, retransmission?, phase)
    sends: Vec<(u64, u32, bool, Phase)>,
    rtos: u32,
    /// The window the sender used right after each ACK, with the phase.
    windows: Vec<(u64, u32, Phase)>,
}

impl Sim {
    fn new(isn: u32, segments: u32, cc: Box<dyn CongestionControl>, fate: Fate) -> Sim {
        Sim {
            now: 0,
            isn,
            total: segments * MSS,
            lr: LossRecovery::new(RecoveryConfig::default(), SeqNum(isn), MSS),
            cc,
            rx: Receiver::default(),
            fate,
            tx_count: Default::default(),
            data: vec![],
            timestamps: true,
            acks: vec![],
            bottleneck_free: 0,
            rto: None,
            rto_backoff: 0,
            rto_base: 0,
            pto: None,
            sends: vec![],
            rtos: 0,
            windows: vec![],
        }
    }

    fn off(&self, s: SeqNum) -> u32 {
        s.0.wrapping_sub(self.isn)
    }

    fn at(&self) -> Instant {
        Instant::from_micros(self.now)
    }

    fn srtt(&self) -> Option<Duration> {
        Some(Duration::from_micros(RTT_US))
    }

    /// RFC 6298 with RTTVAR settled near RTT/2: SRTT + 4·RTTVAR = 3·RTT.
    fn rto_len(&self) -> u64 {
        ((3 * RTT_US).max(200_000) << self.rto_backoff.min(9)).min(120_000_000)
    }

    fn transmit(&mut self, off: u32, len: u32, why: Option<Retransmit>) {
        let seq = SeqNum(self.isn.wrapping_add(off));
        let now = self.at();
        self.lr.on_sent(now, seq, len, why, self.cc.as_mut());
        let n = self.tx_count.entry(off).or_insert(0);
        *n += 1;
        let n = *n;
        self.sends
            .push((self.now, off, why.is_some(), self.lr.phase()));
        if let Some(extra) = (self.fate)(off, n) {
            let leave = self.bottleneck_free.max(self.now) + TX_US;
            self.bottleneck_free = leave;
            self.data
                .push((leave + RTT_US / 2 + extra, off, len, self.now));
        }
    }

    fn snd_nxt_off(&self) -> u32 {
        self.off(self.lr.scoreboard().snd_nxt())
    }

    fn pump(&mut self) {
        loop {
            let cwnd = self.lr.cwnd(self.cc.as_ref());
            let new_data = self.snd_nxt_off() < self.total;
            let Some(n) = self.lr.next_segment(cwnd, new_data) else {
                break;
            };
            if n.rule == Rule::NewData {
                let off = self.snd_nxt_off();
                self.transmit(off, MSS.min(self.total - off), None);
            } else {
                let why = if self.lr.phase() == Phase::Loss {
                    Retransmit::Timeout
                } else {
                    Retransmit::NextSeg(n.rule)
                };
                self.transmit(self.off(n.seq), n.len, Some(why));
            }
        }
        self.arm_timers();
    }

    fn arm_timers(&mut self) {
        if self.lr.scoreboard().flight_size() == 0 {
            self.rto = None;
            self.pto = None;
            return;
        }
        if self.rto.is_none() {
            self.rto = Some(self.now + self.rto_len());
        }
        let rto = self.rto.map(Instant::from_micros);
        self.pto = self
            .lr
            .pto_deadline(self.at(), self.srtt().map(crate::time::micros), rto)
            .map(|t| t.as_micros());
    }

    fn deliver_ack(&mut self, ack: u32, blocks: Vec<(u32, u32)>, echo: u64) {
        let seq = |o: u32| SeqNum(self.isn.wrapping_add(o));
        let blocks: Vec<_> = blocks
            .iter()
            .map(|&(a, b)| SackBlock::new(seq(a), seq(b)))
            .collect();
        let una = self.off(self.lr.scoreboard().snd_una());
        let mut input = AckInput::new(self.at(), seq(ack), &blocks);
        input.srtt = self.srtt();
        input.rtt = (ack > una).then(|| Duration::from_micros(self.now.saturating_sub(echo)));
        input.echo = self.timestamps.then(|| Instant::from_micros(echo));
        input.dupack = ack == una && self.snd_nxt_off() > una;
        let r = self.lr.on_ack(&input, self.cc.as_mut());
        if r.acked_bytes > 0 {
            self.rto = None;
            self.rto_backoff = self.rto_base;
        }
        self.pump();
        self.windows
            .push((self.now, self.lr.cwnd(self.cc.as_ref()), self.lr.phase()));
    }

    /// Runs until everything is acknowledged; panics on a stall.
    fn run(&mut self) -> u64 {
        self.pump();
        while self.off(self.lr.scoreboard().snd_una()) < self.total {
            assert!(self.now < 300_000_000, "stalled at {}", self.now);
            let next_data = self.data.iter().map(|d| d.0).min();
            let next_ack = self.acks.iter().map(|a| a.0).min();
            let reo = self.lr.reorder_timer().map(|t| t.as_micros());
            let t = [next_data, next_ack, self.rto, self.pto, reo]
                .into_iter()
                .flatten()
                .min()
                .expect("something pending");
            self.now = self.now.max(t);
            if next_data == Some(t) {
                let i = self.data.iter().position(|d| d.0 == t).unwrap();
                let (_, off, len, sent) = self.data.remove(i);
                let (ack, blocks) = self.rx.on_data(off, len);
                self.acks.push((t + RTT_US / 2, ack, blocks, sent));
            } else if next_ack == Some(t) {
                let i = self.acks.iter().position(|a| a.0 == t).unwrap();
                let (_, ack, blocks, echo) = self.acks.remove(i);
                self.deliver_ack(ack, blocks, echo);
            } else if self.pto == Some(t) {
                self.pto = None;
                let new_data = self.snd_nxt_off() < self.total;
                match self.lr.on_pto(new_data) {
                    Probe::NewData => {
                        let off = self.snd_nxt_off();
                        self.transmit(off, MSS.min(self.total - off), None);
                        self.lr.on_probe_sent(false);
                    }
                    Probe::RetransmitLast => {
                        let (s, len) = self.lr.probe_segment().unwrap();
                        self.transmit(self.off(s), len, Some(Retransmit::Probe));
                        self.lr.on_probe_sent(true);
                    }
                    Probe::Skip => {}
                }
                // RFC 8985 §7.3: re-arm the RTO, not the PTO.
                self.rto = Some(self.now + self.rto_len());
            } else if self.rto == Some(t) {
                self.rtos += 1;
                let first = self.lr.phase() != Phase::Loss;
                self.rto_backoff += 1;
                self.rto = None;
                let now = self.at();
                self.lr
                    .on_rto(now, self.srtt(), first, false, self.cc.as_mut());
                self.pump();
            } else {
                let now = self.at();
                let srtt = self.srtt();
                self.lr.on_reorder_timer(now, srtt, self.cc.as_mut());
                self.pump();
            }
        }
        self.now
    }

    fn retransmissions_of(&self, off: u32) -> usize {
        self.sends.iter().filter(|s| s.1 == off && s.2).count()
    }

    fn retransmissions(&self) -> usize {
        self.sends.iter().filter(|s| s.2).count()
    }
}

fn cubic() -> Box<dyn CongestionControl> {
    Box::new(Cubic::new(CubicConfig::default(), MSS))
}

/// Drops the first transmission of the given segments, delivers everything else.
fn drop_first(segs: &'static [u32]) -> Fate {
    Box::new(move |off, n| (!(n == 1 && segs.contains(&(off / MSS)))).then_some(0))
}

const ISNS: [u32; 2] = [1, u32::MAX - 50_000];

#[test]
fn a_single_lost_segment_is_repaired_by_fast_retransmit_not_rto() {
    for isn in ISNS {
        let mut sim = Sim::new(isn, 100, cubic(), drop_first(&[20]));
        sim.run();
        assert_eq!(sim.rtos, 0);
        assert_eq!(sim.retransmissions_of(20 * MSS), 1);
        assert_eq!(sim.retransmissions(), 1);
        assert_eq!(sim.lr.counters().sack_recovery, 1);
        sim.lr.scoreboard().check_invariants();
    }
}

#[test]
fn multiple_losses_in_one_window_are_repaired_in_one_recovery_episode() {
    for isn in ISNS {
        let mut sim = Sim::new(isn, 120, cubic(), drop_first(&[30, 33, 37, 40, 41]));
        sim.run();
        assert_eq!(sim.rtos, 0);
        assert_eq!(
            sim.lr.counters().sack_recovery,
            1,
            "one episode, one reduction"
        );
        for s in [30, 33, 37, 40, 41] {
            assert_eq!(sim.retransmissions_of(s * MSS), 1, "segment {s}");
        }
        assert_eq!(sim.retransmissions(), 5);
    }
}

#[test]
fn a_lost_tail_segment_is_repaired_by_a_loss_probe_in_about_two_rtt() {
    for isn in ISNS {
        let mut sim = Sim::new(isn, 10, cubic(), drop_first(&[9]));
        // A larger RTO (RTTVAR still high) so the PTO is not capped by it (§7.2).
        sim.rto_base = 1;
        sim.rto_backoff = 1;
        let done = sim.run();
        assert_eq!(sim.rtos, 0, "no RTO");
        let c = sim.lr.counters();
        // The probe's ACK reaches TLP.end_seq exactly: it cannot tell the original from the
        // probe, so no reduction is made (RFC 8985 §7.4.2, as Linux).
        assert_eq!((c.loss_probes, c.loss_probe_recovery), (1, 0));
        let probe = sim.sends.iter().rfind(|s| s.1 == 9 * MSS).unwrap().0;
        // The PTO runs from the last ACK that advanced SND.UNA: 2·SRTT, plus the worst-case
        // delayed ACK because one segment was then in flight (RFC 8985 §7.2).
        let last_ack = sim.windows.iter().rfind(|w| w.0 < probe).unwrap().0;
        assert_eq!(probe - last_ack, 2 * RTT_US + 200_000);
        // Repaired one round trip after the probe, well before the RTO (600 ms after the
        // last ACK here) would even have fired.
        assert_eq!(done, probe + RTT_US + TX_US);
        assert!(done < last_ack + 600_000);
    }
}

/// Delays the first transmission of `seg` by `by` µs, delivers everything.
fn delay(seg: u32, by: u64) -> Fate {
    Box::new(move |off, n| Some(if n == 1 && off / MSS == seg { by } else { 0 }))
}

#[test]
fn reordering_within_the_rack_window_causes_no_retransmission() {
    // One segment overtakes the delayed one: fewer than DupThresh SACKed, so RACK waits
    // min_RTT/4 (25 ms) and the late segment arrives after 1.5 ms.
    let mut sim = Sim::new(7, 100, cubic(), delay(40, 1500));
    sim.run();
    assert_eq!(sim.retransmissions(), 0);
    assert!(sim.lr.rack().reordering_seen());
    assert_eq!(sim.lr.counters().sack_recovery, 0);
}

#[test]
fn a_dsack_undoes_a_spurious_reduction_and_widens_the_window() {
    // Segment 40 arrives 10 ms late: ten segments overtake it and, with no reordering seen
    // yet, RACK retransmits it (DupThresh behaviour). The receiver then D-SACKs the
    // retransmission: the reduction is undone and the next reordering is tolerated.
    let fate: Fate = Box::new(|off, n| {
        Some(if n == 1 && (off / MSS == 40 || off / MSS == 120) {
            10_000
        } else {
            0
        })
    });
    let mut sim = Sim::new(9, 200, cubic(), fate);
    sim.timestamps = false;
    sim.run();
    let c = sim.lr.counters();
    assert_eq!(sim.retransmissions_of(40 * MSS), 1);
    assert_eq!((c.dsack_undo, c.ts_undo), (1, 0));
    assert_eq!(
        sim.retransmissions_of(120 * MSS),
        0,
        "the second reordering is tolerated"
    );
    assert!(sim.lr.rack().reo_wnd_mult() >= 2);
    // The window after the undo is the one before the reduction, not β times it.
    let before = sim
        .windows
        .iter()
        .take_while(|w| w.2 == Phase::Open)
        .last()
        .unwrap()
        .1;
    let undone = sim.cc.cwnd();
    assert!(
        undone >= before,
        "cwnd {undone} after undo, {before} before the reduction"
    );
}

#[test]
fn timestamps_undo_a_spurious_fast_retransmit_at_the_first_ack_rfc3522() {
    // As above, but the late original's ACK echoes a timestamp older than the
    // retransmission: the reduction is undone before any D-SACK arrives (Eifel).
    let mut sim = Sim::new(9, 200, cubic(), delay(40, 10_000));
    sim.run();
    let c = sim.lr.counters();
    assert_eq!(sim.retransmissions_of(40 * MSS), 1);
    assert_eq!((c.ts_undo, c.dsack_undo), (1, 0));
}

#[test]
fn prr_paces_sending_during_recovery_and_ends_at_ssthresh() {
    let mut sim = Sim::new(3, 400, cubic(), drop_first(&[150, 152, 154, 156]));
    sim.run();
    let rec: Vec<_> = sim
        .sends
        .iter()
        .filter(|s| s.3 == Phase::Recovery)
        .collect();
    assert!(rec.len() > 10);
    // No bursts: at most two segments leave at the same instant during recovery.
    let mut per_instant = std::collections::HashMap::new();
    for s in &rec {
        *per_instant.entry(s.0).or_insert(0) += 1;
    }
    assert!(per_instant.values().all(|&n| n <= 2), "{per_instant:?}");
    // At the end of recovery the window is ssthresh (RFC 9937) and the flight is near it.
    let exit = sim
        .windows
        .windows(2)
        .find(|w| w[0].2 == Phase::Recovery && w[1].2 == Phase::Open)
        .expect("recovery ended");
    let ssthresh = sim.cc.ssthresh();
    assert!(
        exit[1].1.abs_diff(ssthresh) <= 2 * MSS,
        "{} vs {ssthresh}",
        exit[1].1
    );
    assert_eq!(sim.rtos, 0);
}

#[test]
fn newreno_without_sack_recovers_one_loss_per_round_trip_rfc6582() {
    let mut sim = Sim::new(11, 100, cubic(), drop_first(&[20, 22]));
    sim.lr = LossRecovery::new(
        RecoveryConfig {
            sack: false,
            ..RecoveryConfig::default()
        },
        SeqNum(11),
        MSS,
    );
    sim.cc = Box::new(crate::cc::NewReno::new(Default::default(), MSS));
    // The receiver still sends SACK blocks in this model; a non-SACK sender ignores them.
    sim.run();
    assert_eq!(sim.lr.counters().reno_recovery, 1);
    assert_eq!(sim.retransmissions_of(20 * MSS), 1);
    assert_eq!(
        sim.retransmissions_of(22 * MSS),
        1,
        "repaired after the partial ACK"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Under random loss up to 30% (retransmissions too) and random small delays, the
    /// transfer completes without a stall, each segment retransmitted a bounded number of
    /// times, and the scoreboard stays consistent.
    #[test]
    fn transfer_completes_under_random_loss_and_reordering(
        seed in any::<u64>(),
        loss in 0u32..30,
        isn in any::<u32>(),
    ) {
        let mut state = seed | 1;
        let fate: Fate = Box::new(move |_, _| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if (state % 100) < u64::from(loss) {
                None
            } else {
                Some((state >> 32) % 3000)
            }
        });
        let mut sim = Sim::new(isn, 150, cubic(), fate);
        sim.run();
        sim.lr.scoreboard().check_invariants();
        prop_assert_eq!(sim.rx.rcv_nxt, 150 * MSS);
    }
}

/// Cost per ACK with a large window: 5000 segments in flight, every tenth lost, each ACK
/// SACKing one more segment and repeating the receiver's three most recent blocks. Prints
/// the time per ACK; asserts only the outcome (timings belong to benchmarks). Run with
/// `cargo test --release -p tcpfsm-core --lib per_ack_cost -- --ignored --nocapture`.
#[test]
#[ignore]
fn per_ack_cost_with_thousands_of_segments_in_flight() {
    for isn in [0u32, u32::MAX - 1_000_000] {
        let n = 5000u32;
        let mut cc: Box<dyn CongestionControl> = cubic();
        let mut lr = LossRecovery::new(RecoveryConfig::default(), SeqNum(isn), MSS);
        let seq = |o: u32| SeqNum(isn.wrapping_add(o));
        for i in 0..n {
            lr.on_sent(
                Instant::from_micros(u64::from(i)),
                seq(i * MSS),
                MSS,
                None,
                cc.as_mut(),
            );
        }
        let start = std::time::Instant::now();
        let mut acks = 0u32;
        let mut islands: Vec<(u32, u32)> = vec![];
        for i in 1..n {
            if i % 10 == 0 {
                continue; // lost
            }
            let (a, b) = (i * MSS, (i + 1) * MSS);
            match islands.last_mut() {
                Some(l) if l.1 == a => l.1 = b,
                _ => islands.push((a, b)),
            }
            let blocks: Vec<_> = islands
                .iter()
                .rev()
                .take(3)
                .map(|&(a, b)| SackBlock::new(seq(a), seq(b)))
                .collect();
            let now = Instant::from_micros(100_000 + u64::from(i));
            let mut input = AckInput::new(now, seq(0), &blocks);
            input.srtt = Some(Duration::from_millis(100));
            lr.on_ack(&input, cc.as_mut());
            while let Some(s) = lr.next_segment(lr.cwnd(cc.as_ref()), false) {
                let why = Some(Retransmit::NextSeg(s.rule));
                lr.on_sent(now, s.seq, s.len, why, cc.as_mut());
            }
            acks += 1;
        }
        let per_ack = start.elapsed() / acks;
        lr.scoreboard().check_invariants();
        // Segments 1..n except the multiples of ten.
        assert_eq!(lr.scoreboard().sacked_segments(), (n - 1) - (n / 10 - 1));
        eprintln!("{acks} ACKs with up to {n} segments in flight: {per_ack:?} per ACK");
    }
}

#[test]
fn with_rack_only_lost_segments_are_retransmitted_no_rule_3_or_4_linux() {
    // Segment 20 is lost; segments 25 and 29 arrive 30 ms late (reordering, not loss). In
    // recovery with no new data left, RFC 6675's rule 3 would resend 25 (unSACKed below the
    // highest SACK) and rule 4 the tail 29 (rescue); Linux with RACK resends only what it
    // marked lost, and RACK's reordering window covers the late ones once reordering is seen.
    for isn in ISNS {
        let fate: Fate = Box::new(|off, n| {
            let seg = off / MSS;
            Some(if n == 1 && (seg == 5 || seg == 25 || seg == 29) {
                30_000
            } else {
                0
            })
            .filter(|_| !(n == 1 && seg == 20))
        });
        let mut sim = Sim::new(isn, 30, cubic(), fate);
        sim.run();
        assert_eq!(sim.rtos, 0);
        assert_eq!(sim.retransmissions_of(20 * MSS), 1);
        assert_eq!(
            sim.retransmissions(),
            sim.retransmissions_of(20 * MSS) + sim.retransmissions_of(5 * MSS),
            "only the lost segment (and the first reordering, before it was known) went again: {:?}",
            sim.sends.iter().filter(|s| s.2).collect::<Vec<_>>()
        );
        assert_eq!(sim.retransmissions_of(25 * MSS), 0);
        assert_eq!(sim.retransmissions_of(29 * MSS), 0);
    }
}

#[test]
fn a_late_original_does_not_undo_while_another_retransmission_is_out_rfc3522_linux() {
    // Segment 20 is 30 ms late (reordering: RACK retransmits it, no reordering seen yet) and
    // segment 22 is really lost. The late original fills the hole at SND.UNA and its ACK
    // echoes a send time before the first retransmission — Eifel's sign of a spurious
    // retransmission, but 22's retransmission is still out and its loss was real: Linux's
    // tcp_try_undo_partial undoes only with no retransmission in flight.
    for isn in ISNS {
        let fate: Fate = Box::new(|off, n| {
            let seg = off / MSS;
            match (n, seg) {
                (1, 20) => Some(30_000),
                (1, 22) => None,
                _ => Some(0),
            }
        });
        let mut sim = Sim::new(isn, 100, cubic(), fate);
        sim.run();
        assert_eq!(sim.retransmissions_of(22 * MSS), 1);
        assert_eq!(
            sim.retransmissions_of(20 * MSS),
            1,
            "RACK took the late one for lost"
        );
        let c = sim.lr.counters();
        assert_eq!(
            (c.ts_undo, c.dsack_undo),
            (0, 0),
            "the real loss was undone"
        );
        assert!(sim.cc.ssthresh() < u32::MAX);
    }
}
