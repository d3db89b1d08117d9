//! RACK rules (RFC 8985 §6) driven through the scoreboard.

use super::*;
use crate::recovery::sack::SackBlock;
use crate::recovery::scoreboard::{Retransmit, Scoreboard};

const MSS: u32 = 1000;

fn t(ms: u64) -> Instant {
    Instant::from_micros(ms * 1000)
}

struct Flow {
    isn: u32,
    sb: Scoreboard,
    rack: Rack,
}

impl Flow {
    /// `n` segments, segment i sent at i ms; RACK.min_RTT primed with `min_rtt_ms`.
    /// The rules as RFC 8985 states them: the timer at the deadline itself.
    fn new(isn: u32, n: u32, min_rtt_ms: u64) -> Flow {
        let exact = RackConfig {
            timer_slack: Duration::ZERO,
            ..RackConfig::default()
        };
        Flow::with(isn, n, min_rtt_ms, exact)
    }

    fn with(isn: u32, n: u32, min_rtt_ms: u64, cfg: RackConfig) -> Flow {
        let mut f = Flow {
            isn,
            sb: Scoreboard::new(SeqNum(isn), MSS),
            rack: Rack::new(cfg),
        };
        f.rack
            .on_rtt_sample(t(0), Duration::from_millis(min_rtt_ms));
        for i in 0..n {
            let s = f.seq(i * MSS);
            let o = f.sb.on_new_data(t(u64::from(i)), s, MSS).unwrap();
            f.rack.on_transmit(t(u64::from(i)), o, s, s + MSS);
        }
        f
    }

    fn seq(&self, off: u32) -> SeqNum {
        SeqNum(self.isn.wrapping_add(off))
    }

    /// An ACK at `now`: cumulative `ack` and SACKed segment indexes.
    fn ack(&mut self, now: Instant, ack: u32, sacked: &[(u32, u32)], srtt_ms: u64) -> RackLoss {
        let blocks: Vec<_> = sacked
            .iter()
            .map(|&(a, b)| SackBlock::new(self.seq(a * MSS), self.seq(b * MSS)))
            .collect();
        let ack = self.seq(ack * MSS);
        let rack = &mut self.rack;
        let out = self
            .sb
            .on_ack(ack, &blocks, |d| rack.on_delivered(d, now, None));
        self.rack
            .end_ack(out.dsack.is_some(), self.sb.snd_una(), self.sb.snd_nxt());
        let srtt = Some(Duration::from_millis(srtt_ms));
        let loss = self.rack.detect_loss(&mut self.sb, now, false, srtt);
        self.sb.check_invariants();
        loss
    }

    fn lost(&self, i: u32) -> bool {
        self.sb.segment(self.seq(i * MSS)).unwrap().lost
    }
}

const ISNS: [u32; 2] = [7, u32::MAX - 2500];

#[test]
fn reordering_within_the_window_causes_no_loss_rfc8985_6_2() {
    for isn in ISNS {
        let mut f = Flow::new(isn, 5, 100);
        // Segment 1 (sent at 1 ms) is SACKed at 101 ms: RACK.rtt = 100 ms. Segment 0 is not
        // lost before 0 + 100 + min_RTT/4 = 125 ms.
        let loss = f.ack(t(101), 0, &[(1, 2)], 100);
        assert_eq!(loss.lost, 0);
        assert_eq!(loss.timer, Some(t(125)));
        assert!(!f.lost(0));
        // Segment 0 arrives late but within the window: still no loss, reordering noted.
        let loss = f.ack(t(110), 2, &[], 100);
        assert_eq!(loss, RackLoss::default());
        assert!(f.rack.reordering_seen());
    }
}

#[test]
fn reordering_timer_fires_two_ms_past_the_deadline_by_default_linux_tcp_timeout_min() {
    for isn in ISNS {
        let mut f = Flow::with(isn, 5, 100, RackConfig::default());
        // The deadline of segment 0 is 0 + 100 + min_RTT/4 = 125 ms; the timer 127 ms.
        let loss = f.ack(t(101), 0, &[(1, 2)], 100);
        assert_eq!(loss.timer, Some(t(127)));
        // Detection run past the deadline (as an arriving ACK runs it) still marks at once:
        // the slack is only the timer's.
        let srtt = Some(Duration::from_millis(100));
        let loss = f.rack.detect_loss(&mut f.sb, t(126), false, srtt);
        assert_eq!(loss.lost, 1);
        assert!(f.lost(0));
    }
}

#[test]
fn loss_beyond_the_reordering_window_is_detected_by_the_timer_rfc8985_6_2() {
    for isn in ISNS {
        let mut f = Flow::new(isn, 5, 100);
        let loss = f.ack(t(101), 0, &[(1, 2)], 100);
        let timer = loss.timer.unwrap();
        // Nothing happens before the deadline...
        let early = f.rack.detect_loss(
            &mut f.sb,
            Instant::from_micros(timer.as_micros() - 1),
            false,
            None,
        );
        assert_eq!(early.lost, 0);
        // ...and at it, segment 0 is lost (RFC 8985 §6.3: the timer runs RACK_detect_loss).
        let at = f
            .rack
            .detect_loss(&mut f.sb, timer, false, Some(Duration::from_millis(100)));
        assert_eq!((at.lost, at.timer), (1, None));
        assert!(
            f.lost(0) && !f.lost(2),
            "segment 2 was sent after RACK.segment"
        );
    }
}

#[test]
fn without_reordering_dupthresh_sacked_segments_zero_the_window_rfc8985_6_2() {
    for isn in ISNS {
        let mut f = Flow::new(isn, 6, 100);
        assert_eq!(f.ack(t(102), 0, &[(1, 3)], 100).lost, 0);
        // The third SACKed segment: reo_wnd = 0, segment 0 is lost at once.
        let loss = f.ack(t(103), 0, &[(1, 4)], 100);
        assert_eq!(loss.lost, 1);
        assert!(f.lost(0));
    }
}

#[test]
fn once_reordering_was_seen_dupthresh_no_longer_zeroes_the_window_rfc8985_6_2() {
    let isn = 1;
    let mut f = Flow::new(isn, 12, 100);
    // Reordering: 1 is SACKed, then 0 arrives.
    f.ack(t(101), 0, &[(1, 2)], 100);
    f.ack(t(102), 2, &[], 100);
    assert!(f.rack.reordering_seen());
    let loss = f.ack(t(106), 2, &[(3, 6)], 100);
    assert_eq!(loss.lost, 0, "three SACKed, but reordering was seen");
    assert_eq!(f.rack.reo_wnd(false, 3, None), Duration::from_millis(25));
    assert_eq!(f.rack.reo_wnd(true, 3, None), Duration::from_millis(25));
}

#[test]
fn reordering_window_is_bounded_by_srtt_rfc8985_6_2() {
    let mut rack = Rack::new(RackConfig::default());
    rack.on_rtt_sample(t(0), Duration::from_millis(100));
    assert_eq!(rack.reo_wnd(false, 0, None), Duration::from_millis(25));
    for _ in 0..10 {
        rack.dsack_round = None;
        rack.end_ack(true, SeqNum(0), SeqNum(1));
    }
    assert_eq!(rack.reo_wnd_mult(), 11);
    assert_eq!(
        rack.reo_wnd(false, 0, Some(Duration::from_millis(150))),
        Duration::from_millis(150)
    );
}

#[test]
fn dsack_grows_the_window_once_per_round_and_it_decays_after_16_recoveries_rfc8985_6_2() {
    let mut rack = Rack::new(RackConfig::default());
    rack.on_rtt_sample(t(0), Duration::from_millis(100));
    rack.end_ack(true, SeqNum(1000), SeqNum(5000));
    assert_eq!(rack.reo_wnd_mult(), 2);
    // More D-SACKs in the same round trip (SND.UNA below 5000) do not grow it again.
    rack.end_ack(true, SeqNum(3000), SeqNum(6000));
    assert_eq!(rack.reo_wnd_mult(), 2);
    // A D-SACK in the next round does.
    rack.end_ack(true, SeqNum(5000), SeqNum(9000));
    assert_eq!(rack.reo_wnd_mult(), 3);
    assert_eq!(rack.reo_wnd(false, 0, None), Duration::from_millis(75));
    for _ in 0..15 {
        rack.on_recovery_exit();
    }
    assert_eq!(rack.reo_wnd_mult(), 3);
    rack.on_recovery_exit();
    assert_eq!(rack.reo_wnd_mult(), 1, "16 D-SACK-free recoveries reset it");
}

#[test]
fn ambiguous_ack_of_a_retransmission_does_not_move_rack_segment_rfc8985_6_2() {
    let isn = 100;
    let mut f = Flow::new(isn, 4, 100);
    f.sb.mark_lost_on_rto(None, false);
    let s0 = f.seq(0);
    let o =
        f.sb.on_retransmit(t(300), s0, MSS, Retransmit::Timeout)
            .unwrap();
    f.rack.on_transmit(t(300), o, s0, s0 + MSS);
    // Acknowledged 10 ms after the retransmission: faster than min_RTT, so the ACK is for
    // the original; RACK.segment must not become the retransmission.
    f.ack(t(310), 1, &[], 100);
    assert_eq!(f.rack.latest_delivered(), None);
    // Segment 1 (an original) is delivered normally.
    f.ack(t(320), 2, &[], 100);
    assert_eq!(f.rack.latest_delivered(), Some((t(1), f.seq(2 * MSS))));
    assert_eq!(f.rack.rtt(), Duration::from_millis(319));
}

#[test]
fn timestamps_exclude_a_retransmission_acked_for_its_original_rfc8985_6_2() {
    let mut rack = Rack::new(RackConfig::default());
    let d = Delivered {
        start: SeqNum(0),
        end: SeqNum(1000),
        xmit_ts: t(300),
        order: 1,
        retransmitted: true,
        sacked: false,
    };
    // TSecr echoes the original's send time (the 1 ms tick from 0 ms: `echo` is the tick's
    // end), before the retransmission at 300 ms.
    rack.on_delivered(&d, t(500), Some(t(1)));
    rack.end_ack(false, SeqNum(1000), SeqNum(1000));
    assert_eq!(rack.latest_delivered(), None);
    // The tick ending at 300 ms still lies wholly before the retransmission.
    rack.on_delivered(&d, t(500), Some(t(300)));
    rack.end_ack(false, SeqNum(1000), SeqNum(1000));
    assert_eq!(rack.latest_delivered(), None);
    // TSecr echoes the retransmission's own tick (300–301 ms).
    rack.on_delivered(&d, t(500), Some(t(301)));
    rack.end_ack(false, SeqNum(1000), SeqNum(1000));
    assert_eq!(rack.latest_delivered(), Some((t(300), SeqNum(1000))));
}

#[test]
fn rto_marks_the_first_segment_and_those_older_than_rtt_plus_window_rfc8985_6_3() {
    let isn = u32::MAX - 10;
    let mut f = Flow::new(isn, 5, 100);
    f.ack(t(101), 0, &[(1, 2)], 100); // RACK.rtt = 100 ms; segment 0 pending the timer
                                      // RTO at 103 ms in recovery: reo_wnd 0 (no reordering seen), cutoff 3 ms.
    let marked = f.rack.mark_losses_on_rto(&mut f.sb, t(103), None, false);
    assert_eq!(marked, 3, "segments 0, 2 and 3");
    assert!(f.lost(0) && f.lost(2) && f.lost(3) && !f.lost(4));
}

#[test]
fn the_transmission_log_is_trimmed_as_data_is_acknowledged() {
    let mut f = Flow::new(0, 100, 10);
    for i in 1..=100 {
        f.ack(t(10 + i), i as u32, &[], 10);
    }
    assert_eq!(f.rack.log_len(), 0);
}

#[test]
fn min_rtt_filter_tracks_the_windowed_minimum_linux_tcp_min_rtt_wlen() {
    let w = Duration::from_secs(300);
    let mut m = MinFilter::default();
    assert_eq!(m.get(), None);
    m.update(t(0), Duration::from_millis(50), w);
    m.update(t(1000), Duration::from_millis(80), w);
    assert_eq!(m.get(), Some(Duration::from_millis(50)));
    m.update(t(2000), Duration::from_millis(40), w);
    assert_eq!(m.get(), Some(Duration::from_millis(40)));
    // After a window without the minimum, a longer path's RTT takes over.
    for s in 1..=40 {
        m.update(t(2000 + s * 10_000), Duration::from_millis(90), w);
    }
    assert_eq!(m.get(), Some(Duration::from_millis(90)));
}

/// Found by the engine's property tests: segments sent in one instant — new data, a
/// retransmission of a lower sequence, more new data — must be judged in transmission order
/// (RFC 8985 breaks ties by end sequence, which assumes sequence order; a retransmission
/// breaks that), and a timer must never be left armed for a deadline that has passed (the
/// endpoint would spin on it).
#[test]
fn same_instant_transmissions_are_judged_in_sending_order_and_never_leave_a_past_timer() {
    let mut f = Flow::new(u32::MAX - 3000, 6, 20);
    // At 10 ms, in one instant: new segment 6, a retransmission of segment 1, new segment 7.
    let send_new = |f: &mut Flow, i: u32| {
        let s = f.seq(i * MSS);
        let o = f.sb.on_new_data(t(10), s, MSS).unwrap();
        f.rack.on_transmit(t(10), o, s, s + MSS);
    };
    send_new(&mut f, 6);
    let s1 = f.seq(MSS);
    let o =
        f.sb.on_retransmit(t(10), s1, MSS, Retransmit::Timeout)
            .unwrap();
    f.rack.on_transmit(t(10), o, s1, s1 + MSS);
    send_new(&mut f, 7);
    // At 30 ms segment 7 is SACKed: it left last, so segment 6 and the retransmission of 1
    // left before it. RACK.rtt is 20 ms; their deadline 10 + 20 + reo_wnd (5) = 35 ms.
    let loss = f.ack(t(30), 0, &[(7, 8)], 20);
    assert!(!f.lost(1) && !f.lost(6));
    assert_eq!(loss.timer, Some(t(35)));
    // The reordering timer fires at 35 ms: both are lost, and no timer is left in the past.
    let loss = f
        .rack
        .detect_loss(&mut f.sb, t(35), false, Some(Duration::from_millis(20)));
    assert!(
        f.lost(1),
        "the same-instant retransmission is lost at its deadline"
    );
    assert!(f.lost(6));
    assert!(loss.timer.is_none_or(|at| at > t(35)), "{:?}", loss.timer);
}
