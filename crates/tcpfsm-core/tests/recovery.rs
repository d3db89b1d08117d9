//! Loss recovery through the public API (issue 10's per-rule tests): one sender, one receiver,
//! a link with a fixed delay, and a hook that drops or delays chosen data segments.
//!
//! Each test names the rule: fast retransmit rather than a timeout (RFC 6675 / RFC 5681 §3.2),
//! one recovery episode for several losses (RFC 6675 §5), a tail loss probe (RFC 8985 §7), no
//! retransmission for reordering inside RACK's window (RFC 8985 §6.2), undo of a spurious
//! reduction on D-SACK (RFC 2883, RFC 3708), PRR's pace (RFC 9937) and CUBIC's growth
//! (RFC 9438 §4.2).

use std::net::SocketAddr;
use tcpfsm_core::{Config, ConnHandle, Duration, Endpoint, Instant, State};
use tcpfsm_wire::parse_ip_tcp;

/// What the link does with one A→B data segment (numbered from 0 in sending order).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Deliver,
    Drop,
    Delay(Duration),
}

struct Link {
    a: Endpoint,
    b: Endpoint,
    now: Instant,
    delay: Duration,
    /// (arrival, to_b, bytes)
    flight: Vec<(Instant, bool, Vec<u8>)>,
    data_sent: usize,
    /// (time, seq, len) of every A→B data segment, retransmissions included.
    sent: Vec<(Instant, u32, usize)>,
    fate: Box<dyn FnMut(usize, u32, usize) -> Fate>,
    /// Per ACK A processed: the data segments it let out and loss recovery's phase after it.
    acks: Vec<(usize, &'static str)>,
    client: Option<ConnHandle>,
}

const A: &str = "10.1.0.1";
const B: &str = "10.1.0.2";

fn cfg() -> Config {
    Config {
        msl: Duration::from_secs(1),
        ..Config::default()
    }
}

impl Link {
    fn new(delay: Duration, fate: impl FnMut(usize, u32, usize) -> Fate + 'static) -> Link {
        Link {
            a: Endpoint::new(cfg(), 11),
            b: Endpoint::new(cfg(), 12),
            now: Instant::from_micros(1_000_000),
            delay,
            flight: Vec::new(),
            data_sent: 0,
            sent: Vec::new(),
            fate: Box::new(fate),
            acks: Vec::new(),
            client: None,
        }
    }

    fn pump(&mut self) {
        let mut buf = Vec::new();
        while let Some(tx) = self.a.poll_transmit(self.now, &mut buf) {
            let bytes = buf[..tx.len].to_vec();
            let p = parse_ip_tcp(&bytes).unwrap();
            let mut at = self.now + self.delay;
            if !p.tcp.payload.is_empty() {
                let (seq, len) = (p.tcp.seq.0, p.tcp.payload.len());
                self.sent.push((self.now, seq, len));
                let f = (self.fate)(self.data_sent, seq, len);
                self.data_sent += 1;
                match f {
                    Fate::Drop => continue,
                    Fate::Delay(d) => at += d,
                    Fate::Deliver => {}
                }
            }
            self.flight.push((at, true, bytes));
        }
        while let Some(tx) = self.b.poll_transmit(self.now, &mut buf) {
            self.flight
                .push((self.now + self.delay, false, buf[..tx.len].to_vec()));
        }
    }

    /// Runs until `done` holds or `limit` of virtual time passes; returns whether it held.
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Link) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            self.pump();
            if done(self) {
                return true;
            }
            // What `done` queued goes out now.
            self.pump();
            let next = self
                .flight
                .iter()
                .map(|f| f.0)
                .chain(self.a.poll_timeout())
                .chain(self.b.poll_timeout())
                .min();
            let Some(next) = next.filter(|t| *t <= end) else {
                return false;
            };
            self.now = self.now.max(next);
            let mut due: Vec<_> = Vec::new();
            self.flight.retain(|f| {
                if f.0 <= self.now {
                    due.push(f.clone());
                    false
                } else {
                    true
                }
            });
            due.sort_by_key(|f| f.0);
            for (_, to_b, bytes) in due {
                if to_b {
                    self.b.handle_packet(self.now, &bytes);
                    self.pump();
                } else {
                    self.a.handle_packet(self.now, &bytes);
                    let before = self.sent.len();
                    self.pump();
                    let phase = self
                        .client
                        .and_then(|c| self.a.info(c))
                        .map_or("", |i| i.recovery);
                    self.acks.push((self.sent.len() - before, phase));
                }
            }
            self.a.handle_timeout(self.now);
            self.b.handle_timeout(self.now);
        }
    }

    /// Connects A to B:80 and returns (client, server) once established.
    fn establish(&mut self) -> (ConnHandle, ConnHandle) {
        let l = self.b.listen(self.now, addr(B, 80), 16).unwrap();
        let c = self.a.connect(self.now, addr(A, 0), addr(B, 80)).unwrap();
        let mut s = None;
        let ok = self.run_until(Duration::from_secs(5), |n| {
            s = s.or_else(|| n.b.accept(n.now, l).unwrap());
            s.is_some() && n.a.state(c) == Some(State::Established)
        });
        assert!(ok, "handshake");
        self.client = Some(c);
        (c, s.unwrap())
    }

    /// Sends `data` from A and reads it all at B; returns the bytes B received and the time it
    /// took (from the first send to the last byte read).
    fn transfer(&mut self, c: ConnHandle, s: ConnHandle, data: &[u8]) -> (Vec<u8>, Duration) {
        let start = self.now;
        let mut sent = 0;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        let ok = self.run_until(Duration::from_secs(120), |n| {
            if sent < data.len() {
                sent += n.a.send(n.now, c, &data[sent..]).unwrap();
            }
            while let Some(k) = n.b.recv(n.now, s, &mut buf).unwrap() {
                if k == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..k]);
            }
            got.len() == data.len()
        });
        assert!(
            ok,
            "transfer stalled at {} of {} bytes",
            got.len(),
            data.len()
        );
        (got, self.now - start)
    }
}

fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

fn payload(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

const RTT: Duration = Duration::from_millis(40);

#[test]
fn a_single_lost_segment_is_repaired_by_fast_retransmit_not_rto_rfc6675_5() {
    let mut lost_seq = None;
    let mut n = Link::new(RTT / 2, move |i, seq, _| {
        if i == 4 && lost_seq.is_none() {
            lost_seq = Some(seq);
            return Fate::Drop;
        }
        Fate::Deliver
    });
    let (c, s) = n.establish();
    let data = payload(40 * 1448);
    let (got, _) = n.transfer(c, s, &data);
    assert!(got == data);
    let st = n.a.stats();
    assert_eq!(
        st[tcpfsm_core::Counter::TCPTimeouts],
        0,
        "no retransmission timeout"
    );
    assert!(st[tcpfsm_core::Counter::TCPFastRetrans] >= 1);
    assert_eq!(
        st[tcpfsm_core::Counter::RetransSegs],
        1,
        "exactly the lost segment is sent again"
    );
    assert_eq!(st[tcpfsm_core::Counter::TCPSackRecovery], 1);
}

#[test]
fn several_losses_in_one_window_are_repaired_in_one_recovery_episode_rfc6675_5() {
    let mut n = Link::new(RTT / 2, |i, _, _| {
        if [3, 5, 7].contains(&i) {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    let (c, s) = n.establish();
    let data = payload(60 * 1448);
    let (got, _) = n.transfer(c, s, &data);
    assert!(got == data);
    let st = n.a.stats();
    assert_eq!(st[tcpfsm_core::Counter::TCPTimeouts], 0);
    assert_eq!(
        st[tcpfsm_core::Counter::TCPSackRecovery],
        1,
        "one episode for three holes"
    );
    assert_eq!(st[tcpfsm_core::Counter::RetransSegs], 3);
}

#[test]
fn a_lost_tail_segment_is_repaired_by_a_loss_probe_in_about_two_rtt_rfc8985_7() {
    // Ten segments, the last one lost: no duplicate ACK can ever announce it.
    let mut n = Link::new(
        RTT / 2,
        |i, _, _| if i == 9 { Fate::Drop } else { Fate::Deliver },
    );
    let (c, s) = n.establish();
    let data = payload(10 * 1448);
    let t0 = n.now;
    let (got, _) = n.transfer(c, s, &data);
    assert!(got == data);
    let st = n.a.stats();
    assert_eq!(
        st[tcpfsm_core::Counter::TCPTimeouts],
        0,
        "repaired before the RTO"
    );
    assert!(st[tcpfsm_core::Counter::TCPLossProbes] >= 1);
    // The probe leaves PTO = 2·SRTT after the last ACK (plus the delayed-ACK allowance for a
    // single segment in flight): far sooner than the 1 s initial RTO.
    let last = n.sent.last().unwrap().0;
    let waited = last - t0;
    assert!(
        waited < Duration::from_millis(400),
        "the probe left {waited:?} after the first send"
    );
}

#[test]
fn on_a_sub_millisecond_path_the_probe_waits_out_a_late_ack_rfc8985_7_2() {
    // SRTT of 40 µs, then the flight's last two segments arrive 4 ms late (a busy peer, a
    // TUN device's thread scheduled late). 2·SRTT alone would fire the probe long before
    // their ACK; with the slack Linux adds (PTO_SLACK, 8 ms) nothing is re-sent.
    let mut n = Link::new(Duration::from_micros(20), |i, _, _| {
        if i >= 8 {
            Fate::Delay(Duration::from_millis(4))
        } else {
            Fate::Deliver
        }
    });
    let (c, s) = n.establish();
    let data = payload(10 * 1448);
    let (got, _) = n.transfer(c, s, &data);
    assert!(got == data);
    let st = n.a.stats();
    assert_eq!(st[tcpfsm_core::Counter::TCPLossProbes], 0, "no probe fired");
    assert_eq!(st[tcpfsm_core::Counter::RetransSegs], 0, "nothing re-sent");
}

/// The reordering tests' link: data segment 2 arrives 1 ms late, segment 9 5 ms late. Runs
/// the handshake, `established` (to look before any data), a one-segment and a three-segment
/// transfer (segment 2 is the second of those three), and lets the ACKs reach the sender.
fn mildly_reordered(established: impl FnOnce(&Link)) -> (Link, ConnHandle, ConnHandle) {
    let mut n = Link::new(RTT / 2, |i, _, _| match i {
        2 => Fate::Delay(Duration::from_millis(1)),
        9 => Fate::Delay(Duration::from_millis(5)),
        _ => Fate::Deliver,
    });
    let (c, s) = n.establish();
    established(&n);
    n.transfer(c, s, &payload(1448));
    n.transfer(c, s, &payload(3 * 1448));
    n.run_until(RTT * 2, |_| false);
    (n, c, s)
}

#[test]
fn reordering_within_the_rack_window_causes_no_retransmission_rfc8985_6_2() {
    // First a mild reordering that RACK notices (a segment delivered below RACK.fack sets
    // RACK.reordering_seen, §6.2 step 3) without any retransmission: one of three segments
    // arrives 1 ms late. Then a segment arrives 5 ms late behind more than DupThresh later
    // ones — duplicate-ACK counting would retransmit, but RACK's reordering window
    // (min_RTT/4 = 10 ms) covers the delay: no retransmission.
    let (mut n, c, s) = mildly_reordered(|_| {});
    assert_eq!(n.a.stats()[tcpfsm_core::Counter::RetransSegs], 0);
    assert!(
        n.a.info(c).unwrap().reordering,
        "RACK saw the first reordering"
    );
    let data = payload(30 * 1448);
    let (got, _) = n.transfer(c, s, &data);
    assert!(got == data);
    let st = n.a.stats();
    assert_eq!(
        st[tcpfsm_core::Counter::RetransSegs],
        0,
        "reordering is not loss"
    );
    assert_eq!(st[tcpfsm_core::Counter::TCPTimeouts], 0);
    assert_eq!(st[tcpfsm_core::Counter::TCPSackRecovery], 0);
}

#[test]
fn reordering_degree_counts_the_segments_that_overtook_linux_tcpi_reordering() {
    // Segment 2 of a three-segment flight arrives 1 ms late, behind segment 3: one segment
    // overtook it, a displacement of two segments as Linux counts it ((fack − start) / MSS).
    // Then segment 9 arrives 5 ms late (inside RACK's window, so not retransmitted): every
    // data segment sent within those 5 ms after it overtakes it.
    let (mut n, c, s) = mildly_reordered(|n| {
        let c = n.client.unwrap();
        assert_eq!(n.a.info(c).unwrap().reordering_degree, 0, "none seen yet");
    });
    assert_eq!(n.a.info(c).unwrap().reordering_degree, 2);
    n.transfer(c, s, &payload(30 * 1448));
    n.run_until(RTT * 2, |_| false);
    assert_eq!(n.a.stats()[tcpfsm_core::Counter::RetransSegs], 0);
    let (t9, _, _) = n.sent[9];
    let overtook = n.sent[10..]
        .iter()
        .filter(|(t, _, _)| *t < t9 + Duration::from_millis(5))
        .count() as u32;
    assert!(
        overtook > 3,
        "the test needs more than DupThresh overtaking ({overtook})"
    );
    assert_eq!(n.a.info(c).unwrap().reordering_degree, overtook + 1);
}

#[test]
fn reordering_timer_gives_a_late_segment_linux_timer_slack_before_resending_it() {
    // RTT 40 ms, so RACK's window is min_RTT/4 = 10 ms. The first segment of a three-segment
    // flight arrives 11 ms late, after the other two were SACKed and with nothing else in
    // flight to bring an ACK: RACK's deadline for it passes 1 ms before its own ACK arrives.
    // Linux arms the reordering timer two jiffies past the deadline (tcp_rack_mark_lost), so
    // the late original's ACK comes first and nothing is resent; a timer at the exact
    // deadline would resend it spuriously.
    let mut n = Link::new(RTT / 2, |i, _, _| match i {
        1 => Fate::Delay(Duration::from_millis(11)),
        _ => Fate::Deliver,
    });
    let (c, s) = n.establish();
    n.transfer(c, s, &payload(1448));
    n.run_until(RTT * 2, |_| false);
    let (got, _) = n.transfer(c, s, &payload(3 * 1448));
    assert!(got == payload(3 * 1448));
    n.run_until(RTT * 4, |_| false);
    let st = n.a.stats();
    assert_eq!(
        st[tcpfsm_core::Counter::RetransSegs],
        0,
        "the late segment was resent"
    );
    assert_eq!(st[tcpfsm_core::Counter::TCPSackRecovery], 0);
}

#[test]
fn a_dsack_undoes_a_spurious_window_reduction_rfc3708() {
    // Segment 5 is delayed by a whole RTT: RACK decides it is lost and retransmits, then the
    // original arrives, the receiver reports the duplicate with a D-SACK (RFC 2883), and the
    // sender undoes the reduction.
    let mut n = Link::new(RTT / 2, |i, _, _| {
        if i == 5 {
            Fate::Delay(RTT * 2)
        } else {
            Fate::Deliver
        }
    });
    let (c, s) = n.establish();
    n.transfer(c, s, &payload(1448));
    let data = payload(40 * 1448);
    let (got, _) = n.transfer(c, s, &data);
    assert!(got == data);
    let st = n.a.stats();
    assert!(
        st[tcpfsm_core::Counter::RetransSegs] >= 1,
        "the late segment looked lost"
    );
    assert!(n.b.stats()[tcpfsm_core::Counter::OutSegs] > 0);
    assert!(
        st[tcpfsm_core::Counter::TCPDSACKRecv] >= 1,
        "the receiver reported the duplicate"
    );
    assert!(
        st[tcpfsm_core::Counter::TCPDSACKUndo] + st[tcpfsm_core::Counter::TCPLossUndo] >= 1,
        "the reduction was undone: {st:?}"
    );
}

#[test]
fn prr_paces_retransmissions_and_leaves_recovery_at_ssthresh_rfc9937() {
    // Drop one segment of a large flight. During recovery PRR lets out about β segments per
    // segment the ACKs deliver (CUBIC: β = 0.7) — never a burst — and recovery ends with the
    // window at ssthresh.
    let mut n = Link::new(
        RTT / 2,
        |i, _, _| if i == 40 { Fate::Drop } else { Fate::Deliver },
    );
    let (c, s) = n.establish();
    let data = payload(200 * 1448);
    let (got, _) = n.transfer(c, s, &data);
    assert!(got == data);
    let st = n.a.stats();
    assert_eq!(st[tcpfsm_core::Counter::TCPSackRecovery], 1);
    assert_eq!(st[tcpfsm_core::Counter::TCPTimeouts], 0);
    let in_recovery: Vec<usize> = n
        .acks
        .iter()
        .filter(|a| a.1 == "recovery")
        .map(|a| a.0)
        .collect();
    assert!(
        in_recovery.len() >= 10,
        "{} ACKs in recovery",
        in_recovery.len()
    );
    let worst = in_recovery.iter().max().copied().unwrap_or(0);
    assert!(worst <= 2, "PRR let {worst} segments out on one ACK");
    // Each duplicate ACK here delivers one segment (the receiver ACKs every out-of-order
    // segment at once): PRR's sending rate is the ratio.
    let rate = in_recovery.iter().sum::<usize>() as f64 / in_recovery.len() as f64;
    assert!(
        (0.5..=0.9).contains(&rate),
        "PRR sent {rate:.2} segments per ACK"
    );
    let info = n.a.info(c).unwrap();
    assert_eq!(info.recovery, "open");
}

#[test]
fn cubic_grows_along_w_cubic_after_a_loss_rfc9438_4_2() {
    // One loss, then a long clean run: the window follows max(W_cubic(t), W_est(t)) with
    // W_cubic(t) = C·(t − K)³ + W_max (§4.2) and the Reno-friendly W_est growing by α_cubic
    // segments per RTT (§4.3). A 200 ms RTT keeps W_est below W_cubic around K.
    let rtt = Duration::from_millis(200);
    let mut n = Link::new(
        rtt / 2,
        |i, _, _| {
            if i == 60 {
                Fate::Drop
            } else {
                Fate::Deliver
            }
        },
    );
    let (c, s) = n.establish();
    let mut samples = Vec::new();
    let data = payload(12 * 1024 * 1024);
    let mut sent = 0;
    let mut got = 0usize;
    let mut buf = vec![0u8; 65536];
    n.run_until(Duration::from_secs(20), |n| {
        if sent < data.len() {
            sent += n.a.send(n.now, c, &data[sent..]).unwrap();
        }
        while let Some(k) = n.b.recv(n.now, s, &mut buf).unwrap() {
            if k == 0 {
                break;
            }
            got += k;
        }
        let i = n.a.info(c).unwrap();
        samples.push((n.now, i.cwnd, i.ssthresh, i.recovery));
        got == data.len()
    });
    let st = n.a.stats();
    assert_eq!(st[tcpfsm_core::Counter::TCPSackRecovery], 1, "{st:?}");
    // The first sample after recovery: cwnd = ssthresh = β·W_max.
    let exit = samples
        .iter()
        .position(|s| s.3 == "open" && s.2 != u32::MAX)
        .expect("recovery ended");
    let (t_exit, w0, ssthresh, _) = samples[exit];

    let w_max = ssthresh as f64 / 0.7;
    let mss = 1448.0;
    let k = ((w_max - w0 as f64) / mss / 0.4).cbrt();
    let alpha = 3.0 * (1.0 - 0.7) / (1.0 + 0.7);
    // Compare at a few later instants (segments; CUBIC's window is C in segments/s³).
    let mut compared = 0;
    for frac in [0.5, 1.0, 1.5] {
        let t = t_exit + Duration::from_secs_f64(k * frac);
        let Some(&(_, w, _, _)) = samples.iter().find(|s| s.0 >= t) else {
            break;
        };
        compared += 1;
        let dt = k * frac - k;
        let w_cubic = (0.4 * dt * dt * dt) * mss + w_max;
        let w_est = w0 as f64 + alpha * mss * (k * frac) / rtt.as_secs_f64();
        let want = w_cubic.max(w_est);
        let err = (w as f64 - want).abs() / want;
        assert!(
            err < 0.1,
            "at {frac}·K: cwnd {w} vs W_cubic {w_cubic:.0} / W_est {w_est:.0} (K = {k:.2} s)"
        );
    }
    assert_eq!(compared, 3, "the run reached 1.5·K after recovery");
}

#[test]
fn a_real_loss_is_not_undone_by_timestamp_rounding_rfc3522_linux_tcp_packet_delayed() {
    // One segment lost and repaired by its retransmission: the ACK for the retransmission
    // echoes the retransmission's own TSval, so the reduction must stand (RFC 3522 undoes
    // only when the echo predates the first retransmission). The link's one-way delay has a
    // sub-millisecond part, so the send times fall anywhere inside the 1 ms TSval ticks.
    for extra_us in [100, 300, 500, 700, 900] {
        let mut n = Link::new(RTT / 2 + Duration::from_micros(extra_us), |i, _, _| {
            if i == 30 {
                Fate::Drop
            } else {
                Fate::Deliver
            }
        });
        let (c, s) = n.establish();
        let data = payload(120 * 1448);
        let (got, _) = n.transfer(c, s, &data);
        assert!(got == data);
        let st = n.a.stats();
        assert_eq!(st[tcpfsm_core::Counter::RetransSegs], 1, "{extra_us} µs");
        assert_eq!(
            st[tcpfsm_core::Counter::TCPSackRecovery],
            1,
            "{extra_us} µs"
        );
        assert_eq!(
            st[tcpfsm_core::Counter::TCPFullUndo] + st[tcpfsm_core::Counter::TCPDSACKUndo],
            0,
            "a real loss was undone ({extra_us} µs extra delay): {st:?}"
        );
        let info = n.a.info(c).unwrap();
        assert!(
            info.ssthresh < u32::MAX,
            "ssthresh back to infinity after a real loss ({extra_us} µs)"
        );
    }
}

/// Runs `bursts` loss-free transfers of `segs` segments each, idle a second after each (so the
/// scoreboard, RACK's transmission log and every timer empty out between them), then one more
/// burst in which the link drops the chosen data segments of that burst. Returns the link and
/// the counters as they stood before the lossy burst.
fn loss_after_quiet_bursts(
    bursts: usize,
    drop: &'static [usize],
    segs: usize,
) -> (Link, ConnHandle, tcpfsm_core::Stats) {
    use std::cell::Cell;
    use std::rc::Rc;
    let armed: Rc<Cell<Option<usize>>> = Rc::new(Cell::new(None));
    let arm = armed.clone();
    let mut n = Link::new(RTT / 2, move |i, _, _| match arm.get() {
        Some(first) if drop.contains(&(i - first)) => Fate::Drop,
        _ => Fate::Deliver,
    });
    let (c, s) = n.establish();
    for _ in 0..bursts {
        let data = payload(segs * 1448);
        let (got, _) = n.transfer(c, s, &data);
        assert!(got == data);
        n.run_until(Duration::from_secs(1), |_| false);
    }
    let quiet = *n.a.stats();
    assert_eq!(
        quiet[tcpfsm_core::Counter::RetransSegs],
        0,
        "loss-free so far"
    );
    armed.set(Some(n.data_sent));
    let data = payload(segs * 1448);
    let (got, _) = n.transfer(c, s, &data);
    assert!(got == data);
    // The last ACKs reach A.
    n.run_until(Duration::from_secs(1), |_| false);
    (n, c, quiet)
}

#[test]
fn a_first_loss_after_a_long_loss_free_period_is_repaired_by_one_fast_recovery_rfc8985_6_2() {
    // Holes 4 and 9 of the sixth burst: recovery state that only started tracking late, or
    // whose transmission log was trimmed wrongly while nothing was in flight, would miss them
    // and leave the repair to the RTO.
    let (n, c, quiet) = loss_after_quiet_bursts(5, &[4, 9], 30);
    let st = n.a.stats();
    let d = |k: tcpfsm_core::Counter| st[k] - quiet[k];
    use tcpfsm_core::Counter::*;
    assert_eq!(d(TCPTimeouts), 0, "no retransmission timeout");
    assert_eq!(d(RetransSegs), 2, "exactly the two lost segments again");
    assert_eq!(d(TCPFastRetrans), 2);
    assert_eq!(d(TCPSackRecovery), 1, "one episode for both holes");
    assert_eq!(d(TCPLossProbes), 0);
    let i = n.a.info(c).unwrap();
    assert_eq!(i.recovery, "open");
    assert_eq!((i.sacked_segments, i.lost_segments, i.in_flight), (0, 0, 0));
    assert!(i.ssthresh < u32::MAX, "the loss reduced the window");
}

#[test]
fn a_tail_loss_after_a_long_loss_free_period_is_probed_within_about_two_rtt_rfc8985_7() {
    let (n, _, quiet) = loss_after_quiet_bursts(5, &[9], 10);
    let st = n.a.stats();
    use tcpfsm_core::Counter::*;
    assert_eq!(
        st[TCPTimeouts] - quiet[TCPTimeouts],
        0,
        "repaired before the RTO"
    );
    assert_eq!(st[TCPLossProbes] - quiet[TCPLossProbes], 1);
    assert_eq!(st[RetransSegs] - quiet[RetransSegs], 1);
    // The probe left one PTO after the last ACK, which left the lost segment alone in
    // flight: 2·SRTT plus WCDelAckT (200 ms, RFC 8985 §7.2), about 280 ms after the last
    // original here; the RTO (1 s initial, never under 200 ms) would come well after.
    let probe = n.sent.last().unwrap().0;
    let last_original = n.sent[n.sent.len() - 2].0;
    assert!(
        probe - last_original < Duration::from_millis(300),
        "the probe left {:?} after the last original",
        probe - last_original
    );
}
