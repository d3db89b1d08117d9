//! Rule tests for the congestion-control algorithms, each against its RFC's text or formula.

use super::*;
use crate::time::{Duration, Instant};
use tcpfsm_wire::SeqNum;

const MSS: u32 = 1000;

fn at(ms: u64) -> Instant {
    Instant::from_micros(ms * 1000)
}

fn ack(now: Instant, delivered: u32) -> AckEvent {
    AckEvent::new(now, delivered, MSS, SeqNum(0), SeqNum(0))
}

fn loss(now: Instant, flight: u32) -> CongestionEvent {
    CongestionEvent::new(now, CongestionKind::Loss, flight, MSS)
}

// ---------------------------------------------------------------- NewReno

fn reno() -> NewReno {
    NewReno::new(NewRenoConfig::default(), MSS)
}

/// NewReno whose window starts at `segments`, so a flight of that size is cwnd-limited.
fn reno_at(segments: u32) -> NewReno {
    let cfg = NewRenoConfig {
        initial_window: segments,
        ..NewRenoConfig::default()
    };
    NewReno::new(cfg, MSS)
}

#[test]
fn initial_window_is_ten_segments_rfc6928() {
    assert_eq!(reno().cwnd(), 10 * MSS);
    assert_eq!(Cubic::new(CubicConfig::default(), MSS).cwnd(), 10 * MSS);
    assert_eq!(reno().ssthresh(), u32::MAX);
}

#[test]
fn slow_start_grows_by_delivered_up_to_abc_limit_rfc3465_2_2() {
    let mut c = reno();
    c.on_ack(&ack(at(0), MSS));
    assert_eq!(c.cwnd(), 11 * MSS);
    // A stretch ACK of five segments grows by L = 2 SMSS only.
    c.on_ack(&ack(at(1), 5 * MSS));
    assert_eq!(c.cwnd(), 13 * MSS);
    assert!(c.in_slow_start());
}

#[test]
fn slow_start_stops_at_ssthresh_and_the_rest_counts_to_avoidance_rfc5681_3_1() {
    let mut c = reno_at(24);
    c.on_rto(at(0), 24 * MSS, MSS); // ssthresh 12 segments, cwnd 1
    for i in 0..10 {
        c.on_ack(&ack(at(i), MSS));
    }
    assert_eq!(c.cwnd(), 11 * MSS);
    c.on_ack(&ack(at(20), 2 * MSS));
    assert_eq!(c.cwnd(), 12 * MSS, "capped at ssthresh");
    assert!(!c.in_slow_start());
}

#[test]
fn congestion_avoidance_adds_one_smss_per_window_rfc5681_3_1() {
    let mut c = reno_at(20);
    c.on_congestion_event(&loss(at(0), 20 * MSS));
    c.on_recovery_exit(at(1), 10 * MSS, MSS);
    assert_eq!(c.cwnd(), 10 * MSS);
    for i in 0..9 {
        c.on_ack(&ack(at(2 + i), MSS));
    }
    assert_eq!(
        c.cwnd(),
        10 * MSS,
        "nine segments of a ten-segment window: no increase yet"
    );
    c.on_ack(&ack(at(20), MSS));
    assert_eq!(c.cwnd(), 11 * MSS);
}

#[test]
fn loss_sets_ssthresh_to_half_the_flight_at_least_two_smss_rfc5681_3_2() {
    let mut c = reno();
    c.on_congestion_event(&loss(at(0), 10 * MSS));
    assert_eq!(c.ssthresh(), 5 * MSS);
    assert_eq!(c.cwnd(), 5 * MSS);
    c.on_congestion_event(&loss(at(1), MSS));
    assert_eq!(c.ssthresh(), 2 * MSS);
}

#[test]
fn rto_collapses_to_the_loss_window_rfc5681_3_1() {
    let mut c = reno();
    c.on_rto(at(0), 8 * MSS, MSS);
    assert_eq!(c.cwnd(), MSS);
    assert_eq!(c.ssthresh(), 4 * MSS);
}

#[test]
fn application_limited_ack_does_not_grow_the_window_rfc7661_4_3() {
    let mut c = reno();
    let mut a = ack(at(0), MSS);
    a.cwnd_limited = false;
    c.on_ack(&a);
    assert_eq!(c.cwnd(), 10 * MSS);
    let mut c = Cubic::new(CubicConfig::default(), MSS);
    c.on_ack(&a);
    assert_eq!(c.cwnd(), 10 * MSS);
}

#[test]
fn spurious_reduction_is_undone_linux_tcp_undo_cwnd_reduction() {
    let mut c = reno();
    for i in 0..10 {
        c.on_ack(&ack(at(i), MSS));
    }
    assert_eq!(c.cwnd(), 20 * MSS);
    c.on_congestion_event(&loss(at(20), 20 * MSS));
    assert_eq!((c.cwnd(), c.ssthresh()), (10 * MSS, 10 * MSS));
    c.on_spurious(at(30));
    assert_eq!((c.cwnd(), c.ssthresh()), (20 * MSS, u32::MAX));
    // Only the last reduction is undone, once.
    c.on_spurious(at(31));
    assert_eq!(c.cwnd(), 20 * MSS);
}

// ---------------------------------------------------------------- CUBIC

fn cubic_without_hystart() -> Cubic {
    let cfg = CubicConfig {
        hystart: None,
        ..CubicConfig::default()
    };
    Cubic::new(cfg, MSS)
}

/// Grows a CUBIC window to `segments` in slow start, then takes a loss and leaves recovery.
fn cubic_after_loss_at(segments: u32, cfg: CubicConfig) -> Cubic {
    let mut c = Cubic::new(cfg, MSS);
    let mut now = 0;
    while c.cwnd() < segments * MSS {
        now += 1;
        c.on_ack(&ack(at(now), MSS));
    }
    assert_eq!(c.cwnd(), segments * MSS);
    c.on_congestion_event(&loss(at(now), segments * MSS));
    c.on_recovery_exit(at(now), c.ssthresh(), MSS);
    c
}

/// One round trip of ACKs, one per SMSS of the window at the round's start, spread evenly.
/// Returns the time at the end of the round.
fn cubic_round(c: &mut Cubic, start_us: u64, rtt: Duration) -> u64 {
    let n = (c.cwnd() / MSS).max(1) as u64;
    let rtt_us = rtt.as_micros() as u64;
    for i in 1..=n {
        let mut a = ack(Instant::from_micros(start_us + rtt_us * i / n), MSS);
        a.srtt = Some(rtt);
        a.rtt = Some(rtt);
        c.on_ack(&a);
    }
    start_us + rtt_us
}

#[test]
fn loss_sets_ssthresh_to_beta_times_flight_rfc9438_4_6() {
    let c = cubic_after_loss_at(100, CubicConfig::default());
    assert_eq!(c.ssthresh(), 70 * MSS);
    assert_eq!(c.cwnd(), 70 * MSS);
    assert_eq!(c.w_max(), 100 * MSS);
}

#[test]
fn k_is_the_cube_root_of_the_reduction_over_c_rfc9438_4_2() {
    let mut c = cubic_after_loss_at(100, CubicConfig::default());
    assert_eq!(c.k(), None, "no congestion-avoidance stage yet");
    c.on_ack(&ack(at(10_000), MSS));
    // K = cubic_root((W_max − cwnd_epoch)/C) = cubic_root(30/0.4)
    let k = c.k().unwrap().as_secs_f64();
    assert!((k - 75f64.cbrt()).abs() < 1e-6, "K = {k}");
}

#[test]
fn window_growth_follows_w_cubic_rfc9438_4_2() {
    // W_max = 1000 segments keeps the Reno-friendly estimate (§4.3) far below the curve, so
    // the window is W_cubic alone: K = cubic_root(300/0.4) ≈ 9.1 s.
    let mut c = cubic_after_loss_at(1000, CubicConfig::default());
    let rtt = Duration::from_millis(100);
    let mut now = 20_000_000u64;
    // The first ACK starts the epoch; the curve is then sampled each round trip through the
    // concave region, the plateau around K and the convex region up to t = 16 s.
    now = cubic_round(&mut c, now, rtt);
    let epoch = c.epoch_start().unwrap();
    let mut checked = 0;
    while Instant::from_micros(now).saturating_since(epoch) < Duration::from_secs(16) {
        now = cubic_round(&mut c, now, rtt);
        let t = Instant::from_micros(now).saturating_since(epoch);
        let expected = c.w_cubic(t, MSS).unwrap();
        let got = f64::from(c.cwnd());
        // Each round's ACKs aim at W_cubic one RTT ahead of the round's start, i.e. at W_cubic
        // of the round's end; the per-ACK steps undershoot by at most about a segment.
        assert!(
            (got - expected).abs() <= 1.5 * f64::from(MSS) + 0.01 * expected,
            "t = {t:?}: cwnd {got} vs W_cubic {expected}"
        );
        checked += 1;
    }
    assert!(checked >= 150);
    assert!(c.cwnd() > 1100 * MSS, "convex region beyond W_max");
}

#[test]
fn window_plateaus_near_w_max_around_k_rfc9438_4_4() {
    let mut c = cubic_after_loss_at(100, CubicConfig::default());
    let rtt = Duration::from_millis(100);
    let mut now = cubic_round(&mut c, 20_000_000, rtt);
    let epoch = c.epoch_start().unwrap();
    let k = c.k().unwrap();
    let mut at_k = 0;
    while Instant::from_micros(now).saturating_since(epoch) < k {
        now = cubic_round(&mut c, now, rtt);
        at_k = c.cwnd();
    }
    // Concave: it got close to W_max without overshooting by more than a segment.
    assert!((98 * MSS..=101 * MSS).contains(&at_k), "cwnd at K: {at_k}");
}

#[test]
fn reno_friendly_region_follows_w_est_rfc9438_4_3() {
    // With a 1 ms RTT, W_cubic barely moves in 150 round trips while Reno would add about
    // α_cubic segments per round trip: CUBIC must be at least as fast as Reno.
    let mut c = cubic_after_loss_at(100, CubicConfig::default());
    let rtt = Duration::from_millis(1);
    let mut now = cubic_round(&mut c, 20_000_000, rtt);
    let epoch = c.epoch_start().unwrap();
    let alpha = 3.0 * 0.3 / 1.7;
    // W_est grows α_cubic per round trip until it reaches cwnd_prior (100), then 1.
    let mut w_est = 70.0 + alpha; // the first round
    for _ in 0..150 {
        now = cubic_round(&mut c, now, rtt);
        w_est += if w_est >= 100.0 { 1.0 } else { alpha };
    }
    let got = f64::from(c.cwnd()) / f64::from(MSS);
    let t = Instant::from_micros(now).saturating_since(epoch);
    let cubic = c.w_cubic(t, MSS).unwrap() / f64::from(MSS);
    assert!(
        cubic < 80.0,
        "the cubic curve alone would still be at {cubic}"
    );
    assert!(
        (got - w_est).abs() < 2.0,
        "cwnd {got} segments vs W_est {w_est}"
    );
}

#[test]
fn fast_convergence_releases_bandwidth_rfc9438_4_7() {
    let mut c = cubic_after_loss_at(100, CubicConfig::default());
    // Grow back to 80 segments only, then lose again: W_max = 80·(1 + β)/2 = 68.
    let rtt = Duration::from_millis(100);
    let mut now = 20_000_000;
    while c.cwnd() < 80 * MSS {
        now = cubic_round(&mut c, now, rtt);
    }
    let w = c.cwnd();
    c.on_congestion_event(&loss(Instant::from_micros(now), w));
    assert_eq!(c.w_max(), (f64::from(w) * 0.85) as u32);

    let cfg = CubicConfig {
        fast_convergence: false,
        ..CubicConfig::default()
    };
    let mut c = cubic_after_loss_at(100, cfg);
    let mut now = 20_000_000;
    while c.cwnd() < 80 * MSS {
        now = cubic_round(&mut c, now, rtt);
    }
    let w = c.cwnd();
    c.on_congestion_event(&loss(Instant::from_micros(now), w));
    assert_eq!(c.w_max(), w);
}

#[test]
fn after_rto_the_first_stage_starts_with_k_zero_at_the_current_window_rfc9438_4_8() {
    let mut c = cubic_after_loss_at(100, CubicConfig::default());
    c.on_rto(at(30_000), 70 * MSS, MSS);
    assert_eq!(c.cwnd(), MSS);
    assert_eq!(c.ssthresh(), 49 * MSS);
    let mut now = 30_000;
    while c.in_slow_start() {
        now += 1;
        c.on_ack(&ack(at(now), MSS));
    }
    assert_eq!(c.cwnd(), 49 * MSS);
    c.on_ack(&ack(at(now + 1), MSS));
    assert_eq!(c.k(), Some(Duration::ZERO));
    assert_eq!(c.w_max(), 49 * MSS);
}

#[test]
fn spurious_reduction_restores_cubic_state_rfc9438_4_9() {
    let mut c = cubic_after_loss_at(100, CubicConfig::default());
    let rtt = Duration::from_millis(100);
    let mut now = cubic_round(&mut c, 20_000_000, rtt);
    for _ in 0..10 {
        now = cubic_round(&mut c, now, rtt);
    }
    let (cwnd, ssthresh, w_max, k) = (c.cwnd(), c.ssthresh(), c.w_max(), c.k());
    c.on_congestion_event(&loss(Instant::from_micros(now), cwnd));
    assert!(c.cwnd() < cwnd);
    c.on_spurious(Instant::from_micros(now + 1000));
    assert_eq!(
        (c.cwnd(), c.ssthresh(), c.w_max(), c.k()),
        (cwnd, ssthresh, w_max, k)
    );
}

#[test]
fn application_limited_time_is_not_part_of_t_rfc9438_5_8() {
    let rtt = Duration::from_millis(100);
    let mut busy = cubic_after_loss_at(100, CubicConfig::default());
    let mut idle = busy.clone();
    let mut now = 20_000_000;
    for _ in 0..5 {
        now = cubic_round(&mut busy, now, rtt);
    }
    let mut now_idle = 20_000_000;
    for _ in 0..5 {
        now_idle = cubic_round(&mut idle, now_idle, rtt);
    }
    // Ten seconds of application-limited ACKs, then an idle gap and a send that restarts.
    for i in 0..100 {
        let mut a = ack(Instant::from_micros(now_idle + i * 100_000), MSS);
        a.cwnd_limited = false;
        idle.on_ack(&a);
    }
    now_idle += 10_000_000;
    idle.on_sent(Instant::from_micros(now_idle + 5_000_000), MSS, 0);
    now_idle += 5_000_000;
    assert_eq!(
        idle.cwnd(),
        busy.cwnd(),
        "no growth while application-limited"
    );
    for _ in 0..5 {
        now = cubic_round(&mut busy, now, rtt);
        now_idle = cubic_round(&mut idle, now_idle, rtt);
    }
    let (a, b) = (f64::from(busy.cwnd()), f64::from(idle.cwnd()));
    assert!((a - b).abs() <= f64::from(MSS), "busy {a} vs resumed {b}");
}

#[test]
fn cubic_slow_start_exits_through_hystart_on_rtt_increase_rfc9438_4_10() {
    let cfg = CubicConfig {
        hystart: Some(delay_only()),
        ..CubicConfig::default()
    };
    let mut c = Cubic::new(cfg, MSS);
    let mut flow = Flow::new(10);
    while c.ssthresh() == u32::MAX && flow.round < 30 {
        let rtt = |round| Duration::from_millis(if round < 3 { 100 } else { 130 });
        let a = flow.ack(rtt, c.cwnd());
        c.on_ack(&a);
    }
    assert_eq!(c.counters().hystart.delay_detect, 1);
    assert_eq!(c.counters().hystart.css_exit, 1);
    assert_eq!(c.ssthresh(), c.cwnd());
    assert!(!c.in_slow_start());
}

// ---------------------------------------------------------------- HyStart++

/// RFC 9406's delay rule alone: the model flow below ACKs evenly all the time, which Linux's
/// ACK-train rule (tested on its own further down) reads as a full pipe.
fn delay_only() -> HyStartConfig {
    HyStartConfig {
        ack_train: false,
        ..HyStartConfig::default()
    }
}

/// A slow-start flow: each ACK acknowledges one segment; SND.NXT runs one window ahead.
/// `round` mirrors HyStart++'s rounds (a round ends when its starting SND.NXT is acked).
struct Flow {
    una: u32,
    nxt: u32,
    end: Option<u32>,
    round: u32,
    now_us: u64,
}

impl Flow {
    fn new(window: u32) -> Flow {
        Flow {
            una: 0,
            nxt: window * MSS,
            end: None,
            round: 0,
            now_us: 0,
        }
    }

    /// The next ACK; `rtt` gets the round it belongs to.
    fn ack(&mut self, rtt: impl FnOnce(u32) -> Duration, cwnd: u32) -> AckEvent {
        self.una += MSS;
        self.now_us += 1000;
        match self.end {
            None => self.end = Some(self.nxt),
            Some(e) if self.una >= e => {
                self.end = Some(self.nxt);
                self.round += 1;
            }
            _ => {}
        }
        let mut a = AckEvent::new(
            Instant::from_micros(self.now_us),
            MSS,
            MSS,
            SeqNum(self.una),
            SeqNum(self.nxt),
        );
        a.rtt = Some(rtt(self.round));
        self.nxt = self.una + cwnd + MSS;
        a
    }
}

/// Runs HyStart++ over `rounds` rounds with the per-round RTT from `rtt_of`, applying its
/// growth to a window; returns the window and the step that first asked for CA, if any.
fn drive(h: &mut HyStart, rounds: u32, rtt_of: impl Fn(u32, u32) -> u64) -> (u32, Option<u32>) {
    let mut cwnd = 10 * MSS;
    let mut flow = Flow::new(10);
    let mut i = 0;
    while flow.round < rounds {
        let a = flow.ack(|round| Duration::from_micros(rtt_of(round, i)), cwnd);
        let step = h.on_ack(&a, cwnd);
        cwnd += step.increase;
        if step.exit_to_ca {
            return (cwnd, Some(flow.round));
        }
        i += 1;
    }
    (cwnd, None)
}

#[test]
fn rtt_increase_beyond_threshold_leaves_slow_start_for_css_rfc9406_4_2() {
    let mut h = HyStart::new(delay_only());
    // RttThresh = clamp(100 ms / 8, 4 ms, 16 ms) = 12.5 ms; round 2 is 13 ms slower.
    drive(
        &mut h,
        3,
        |round, _| if round < 2 { 100_000 } else { 113_000 },
    );
    assert!(h.in_css());
    assert_eq!(h.counters().delay_detect, 1);
    assert!(h.counters().delay_cwnd > 0);
}

#[test]
fn rtt_noise_below_threshold_stays_in_slow_start_rfc9406_4_2() {
    let mut h = HyStart::new(delay_only());
    // Jitter up to 24 ms, but each round's minimum rises by 12 ms at most (< 12.5 ms).
    let (cwnd, exit) = drive(&mut h, 6, |round, i| {
        let min = 100_000 + u64::from(round.min(1)) * 12_000;
        min + u64::from(i % 7) * 4000
    });
    assert!(!h.in_css() && h.active() && exit.is_none());
    assert_eq!(h.counters().delay_detect, 0);
    assert!(
        cwnd >= 320 * MSS,
        "plain slow start doubled the window each round: {cwnd}"
    );
}

#[test]
fn threshold_is_clamped_between_min_and_max_rtt_thresh_rfc9406_4_3() {
    // A 400 ms path: lastRoundMinRTT/8 = 50 ms is clamped to MAX_RTT_THRESH = 16 ms.
    let mut h = HyStart::new(delay_only());
    drive(
        &mut h,
        3,
        |round, _| if round < 2 { 400_000 } else { 416_000 },
    );
    assert!(h.in_css());
    let mut h = HyStart::new(delay_only());
    drive(
        &mut h,
        3,
        |round, _| if round < 2 { 400_000 } else { 415_000 },
    );
    assert!(!h.in_css());
    // A 10 ms path: 1.25 ms is raised to MIN_RTT_THRESH = 4 ms.
    let mut h = HyStart::new(delay_only());
    drive(
        &mut h,
        3,
        |round, _| if round < 2 { 10_000 } else { 13_000 },
    );
    assert!(!h.in_css());
    let mut h = HyStart::new(delay_only());
    drive(
        &mut h,
        3,
        |round, _| if round < 2 { 10_000 } else { 14_000 },
    );
    assert!(h.in_css());
}

#[test]
fn no_decision_before_n_rtt_sample_samples_rfc9406_4_2() {
    let mut h = HyStart::new(delay_only());
    let mut flow = Flow::new(10);
    let mut cwnd = 10 * MSS;
    let rtt = |round| Duration::from_millis(if round < 2 { 100 } else { 200 });
    // Two rounds at 100 ms, then the third round's samples at 200 ms: the N_RTT_SAMPLE-th
    // sample of the round decides, not an earlier one.
    let mut slow = 0;
    while slow < 8 {
        let a = flow.ack(rtt, cwnd);
        cwnd += h.on_ack(&a, cwnd).increase;
        if flow.round == 2 {
            slow += 1;
            assert_eq!(h.in_css(), slow == 8, "after {slow} samples of the round");
        }
    }
}

#[test]
fn css_grows_a_quarter_as_fast_rfc9406_4_2() {
    let mut h = HyStart::new(delay_only());
    drive(
        &mut h,
        3,
        |round, _| if round < 2 { 100_000 } else { 120_000 },
    );
    assert!(h.in_css());
    let mut a = AckEvent::new(at(10_000), 4 * MSS, MSS, SeqNum(1), SeqNum(2));
    a.rtt = Some(Duration::from_millis(120));
    assert_eq!(h.on_ack(&a, 100 * MSS).increase, MSS);
}

#[test]
fn css_resumes_slow_start_when_the_rtt_falls_back_rfc9406_4_2() {
    let mut h = HyStart::new(delay_only());
    let (_, exit) = drive(&mut h, 5, |round, _| match round {
        0 | 1 => 100_000,
        2 => 120_000,
        _ => 105_000, // below the CSS baseline of 120 ms
    });
    assert_eq!(exit, None);
    assert!(h.active() && !h.in_css());
    assert_eq!(h.counters().css_resumed, 1);
}

#[test]
fn css_rounds_complete_enters_congestion_avoidance_rfc9406_4_2() {
    let mut h = HyStart::new(delay_only());
    let (_, exit) = drive(
        &mut h,
        20,
        |round, _| if round < 2 { 100_000 } else { 120_000 },
    );
    // CSS starts in round 2 and lasts CSS_ROUNDS = 5 rounds.
    assert_eq!(exit, Some(7));
    assert!(!h.active());
    assert_eq!(h.counters().css_exit, 1);
}

#[test]
fn growth_per_ack_is_limited_to_l_segments_rfc9406_4_3() {
    let mut a = AckEvent::new(at(1), 20 * MSS, MSS, SeqNum(0), SeqNum(40_000));
    a.rtt = Some(Duration::from_millis(50));
    let mut h = HyStart::new(delay_only());
    assert_eq!(h.on_ack(&a, 10 * MSS).increase, 8 * MSS, "not paced: L = 8");
    let paced = HyStartConfig {
        limit_segments: None,
        ..HyStartConfig::default()
    };
    let mut h = HyStart::new(paced);
    assert_eq!(
        h.on_ack(&a, 10 * MSS).increase,
        20 * MSS,
        "paced: L = infinity"
    );
}

#[test]
fn loss_in_slow_start_ends_hystart_rfc9406_4_2() {
    let mut c = Cubic::new(CubicConfig::default(), MSS);
    c.on_congestion_event(&loss(at(5), 10 * MSS));
    c.on_recovery_exit(at(6), 7 * MSS, MSS);
    c.on_rto(at(7), 7 * MSS, MSS);
    // The slow start after the RTO is plain RFC 5681 growth, no HyStart++ rounds.
    let mut flow = Flow::new(1);
    for _ in 0..3 {
        let a = flow.ack(|_| Duration::from_millis(100), c.cwnd());
        c.on_ack(&a);
    }
    assert_eq!(c.cwnd(), 4 * MSS);
    assert_eq!(c.counters().hystart, HyStartCounters::default());
}

#[test]
fn trait_objects_report_their_linux_names() {
    let algos: Vec<Box<dyn CongestionControl>> =
        vec![Box::new(reno()), Box::new(cubic_without_hystart())];
    let names: Vec<_> = algos.iter().map(|a| a.name()).collect();
    assert_eq!(names, ["reno", "cubic"]);
}

/// ACKs `gap_us` apart from `start_us`, one segment each. SND.NXT stays far ahead, so all
/// of them fall in HyStart's first round (a round ends when its starting SND.NXT is acked).
fn train_ack(i: u32, start_us: u64, gap_us: u64) -> AckEvent {
    let una = (i + 1) * MSS;
    let mut a = AckEvent::new(
        Instant::from_micros(start_us + u64::from(i) * gap_us),
        MSS,
        MSS,
        SeqNum(una),
        SeqNum(10_000 * MSS),
    );
    a.rtt = Some(Duration::from_millis(10));
    a.min_rtt = Some(Duration::from_millis(10));
    a
}

#[test]
fn an_ack_train_over_half_the_min_rtt_ends_slow_start_linux_hystart_ack_train() {
    // 100 Mbit/s-like ACK spacing (0.12 ms), min_RTT 10 ms: the train passes 5 ms at its
    // 43rd ACK (i = 42); the window then equals ssthresh, and the RTTs never rose (no delay
    // signal).
    let mut c = Cubic::new(CubicConfig::default(), MSS);
    let mut exit_at = None;
    for i in 0..200 {
        let a = train_ack(i, 1_000_000, 120);
        c.on_ack(&a);
        if c.ssthresh() != u32::MAX {
            exit_at = Some(i);
            break;
        }
    }
    let i = exit_at.expect("the ACK train ended slow start");
    assert_eq!(i, 42, "5 ms of ACKs 0.12 ms apart");
    assert_eq!(c.ssthresh(), c.cwnd());
    assert!(!c.in_slow_start());
    let h = c.counters().hystart;
    assert_eq!((h.train_detect, h.delay_detect), (1, 0));
    assert_eq!(h.train_cwnd, u64::from(c.cwnd() / MSS));
}

#[test]
fn acks_further_apart_than_the_train_delta_keep_slow_start_linux_hystart_ack_train() {
    // ACKs 3 ms apart (a slow path, not a full pipe): no train, plain slow start.
    let mut c = Cubic::new(CubicConfig::default(), MSS);
    for i in 0..200 {
        let a = train_ack(i, 1_000_000, 3000);
        c.on_ack(&a);
    }
    assert!(c.in_slow_start());
    assert_eq!(c.counters().hystart.train_detect, 0);
    // Below Linux's hystart_low_window (16 segments) a train does not count either.
    let small = HyStartConfig {
        low_window: 1000,
        ..HyStartConfig::default()
    };
    let cfg = CubicConfig {
        hystart: Some(small),
        ..CubicConfig::default()
    };
    let mut c = Cubic::new(cfg, MSS);
    for i in 0..100 {
        c.on_ack(&train_ack(i, 1_000_000, 120));
    }
    assert_eq!(c.counters().hystart.train_detect, 0);
}

#[test]
fn a_gap_starts_a_new_ack_train_rfc9406_rounds_hold_idle_gaps() {
    // Within one round: 30 closely spaced ACKs (3.6 ms), a 4 ms gap (the window was full),
    // then the burst's ACKs: the exit comes 5 ms into the second train. Linux measures from
    // the round's first ACK and, the train broken, would not exit in this round at all.
    let mut c = Cubic::new(CubicConfig::default(), MSS);
    for i in 0..30 {
        c.on_ack(&train_ack(i, 1_000_000, 120));
    }
    assert!(c.in_slow_start());
    let second = 1_000_000 + 29 * 120 + 4000;
    let mut exit_at = None;
    for i in 30..300 {
        let a = train_ack(i, second - 30 * 120, 120);
        c.on_ack(&a);
        if !c.in_slow_start() {
            exit_at = Some(i - 30);
            break;
        }
    }
    assert_eq!(exit_at, Some(42), "5 ms into the second train");
}

#[test]
fn ssthresh_uses_cwnd_when_sacked_data_makes_the_flight_larger_linux_tcp_reno_ssthresh() {
    // FlightSize 20 segments (SACKed data above the hole included), cwnd 10: the reduction
    // is from the window, as Linux's bictcp_recalc_ssthresh and tcp_reno_ssthresh do —
    // 0.7·FlightSize would be 14 segments, a raise.
    let mut c = Cubic::new(CubicConfig::default(), MSS);
    c.on_congestion_event(&loss(at(0), 20 * MSS));
    assert_eq!(c.ssthresh(), 7 * MSS);
    let mut r = reno();
    r.on_congestion_event(&loss(at(0), 20 * MSS));
    assert_eq!(r.ssthresh(), 5 * MSS);
    // An application-limited flight smaller than the window still wins (RFC 5681 eq. 4).
    let mut c = Cubic::new(CubicConfig::default(), MSS);
    c.on_congestion_event(&loss(at(0), 4 * MSS));
    assert_eq!(c.ssthresh(), 2800);
}
