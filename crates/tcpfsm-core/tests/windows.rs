//! Small and zero windows (issue 8, defects 1 and 2): RFC 9293 §3.8.6.1 zero-window probing,
//! §3.8.6.2.1 sender-side silly window avoidance, and what happens when a window update is
//! lost. The peer is scripted (real segment bytes), so every window it offers is chosen.

mod common;
use common::*;
use tcpfsm_core::{Duration, Instant, State, TxKind};
use tcpfsm_wire::Flags;

/// The scripted peer as a receiver of the endpoint's stream.
struct Rx {
    /// Sequence number of the stream's first byte.
    start: u32,
    got: Vec<u8>,
}

impl Rx {
    fn next(&self) -> u32 {
        self.start.wrapping_add(self.got.len() as u32)
    }

    /// Takes the in-order data of `segs` and, if any arrived, answers with one ACK carrying
    /// the peer's current window. Returns the endpoint's answer.
    fn take_and_ack(&mut self, s: &mut Scripted, segs: &[Seg]) -> Vec<Seg> {
        let mut took = false;
        for o in segs {
            if o.dst == s.peer && !o.payload.is_empty() && o.seq == self.next() {
                self.got.extend_from_slice(&o.payload);
                took = true;
            }
        }
        if !took {
            return Vec::new();
        }
        let ack = s.seg(Flags::ACK, s.p, self.next(), &[]);
        s.inject(ack)
    }

    /// Runs virtual time for `d`: the peer takes every data segment and ACKs it at once.
    /// Returns when the stream reached `want` bytes, or `None` if it did not.
    fn run(&mut self, s: &mut Scripted, d: Duration, want: usize) -> Option<Instant> {
        let end = s.now + d;
        loop {
            if self.got.len() >= want {
                return Some(s.now);
            }
            let Some(t) = s.ep.poll_timeout().filter(|t| *t <= end) else {
                s.now = end;
                return None;
            };
            s.now = s.now.max(t);
            s.ep.handle_timeout(s.now);
            let mut out = s.drain();
            while !out.is_empty() {
                out = self.take_and_ack(s, &out);
            }
        }
    }
}

/// A scripted client whose server endpoint is about to send `len` random bytes.
fn sender(seed: u64, len: usize) -> (Scripted, Rx, Vec<u8>) {
    let mut s = Scripted::server(plain(), PeerOpts::default());
    let data = random_bytes(seed, len);
    assert_eq!(s.ep.send(s.now, s.conn, &data), Ok(len));
    let rx = Rx {
        start: s.y,
        got: Vec::new(),
    };
    (s, rx, data)
}

#[test]
fn sub_mss_window_with_lost_update_does_not_stall_rfc9293_3_8_6_2_1() {
    let (mut s, mut rx, data) = sender(1, 20_000);
    // The peer's application is slow: it takes the first flight but offers 500 bytes only.
    s.window = 500;
    let first = s.drain();
    assert!(!first.is_empty());
    let answer = rx.take_and_ack(&mut s, &first);
    assert!(
        answer.iter().all(|o| o.payload.is_empty()),
        "500 bytes is below min(MSS, max window / 2): the sender waits (SWS avoidance)"
    );
    assert!(
        s.ep.poll_timeout().is_some(),
        "data waits with nothing in flight: a timer must run"
    );
    // The application reads; the peer's window update is lost, so it says nothing more.
    s.window = 65535;
    let lost_at = s.now;
    let done = rx.run(&mut s, Duration::from_secs(60), data.len());
    let done = done.unwrap_or_else(|| {
        panic!(
            "stalled: {} of {} bytes after 60 s (info {:?})",
            rx.got.len(),
            data.len(),
            s.ep.info(s.conn)
        )
    });
    assert_eq!(rx.got, data);
    assert!(
        done - lost_at <= Duration::from_secs(3),
        "the override timer (one RTO) must resend within seconds, took {:?}",
        done - lost_at
    );
}

#[test]
fn sub_mss_window_that_stays_small_is_still_filled_rfc9293_3_8_6_2_1() {
    let (mut s, mut rx, data) = sender(2, 12_000);
    s.window = 300;
    let first = s.drain();
    rx.take_and_ack(&mut s, &first);
    // The peer never opens beyond 300 bytes: every segment from now on is below the SWS
    // threshold, so only the override timer moves data.
    let done = rx.run(&mut s, Duration::from_secs(120), data.len());
    assert!(
        done.is_some(),
        "stalled at {} of {} bytes",
        rx.got.len(),
        data.len()
    );
    assert_eq!(rx.got, data);
    assert_eq!(s.ep.state(s.conn), Some(State::Established));
}

/// Drives a sender into a zero window and answers each probe with window 0 for `d`.
/// Returns the times of the probes.
fn hold_window_shut(s: &mut Scripted, d: Duration) -> Vec<Instant> {
    let end = s.now + d;
    let mut probes = Vec::new();
    while let Some(t) = s.ep.poll_timeout().filter(|t| *t <= end) {
        s.now = s.now.max(t);
        s.ep.handle_timeout(s.now);
        let out = drain_kinds(&mut s.ep, s.now);
        for (o, kind) in &out {
            assert!(
                o.payload.is_empty(),
                "data sent into a zero window: {o:?} ({kind:?})"
            );
            if *kind == TxKind::WindowProbe {
                probes.push(s.now);
                // RFC 9293 §3.8.6.1: the receiver answers the probe, window still 0.
                s.ack();
            }
        }
        if s.ep.state(s.conn) != Some(State::Established) {
            break;
        }
    }
    s.now = s.now.max(end);
    probes
}

fn zero_window_sender() -> (Scripted, Rx, Vec<u8>) {
    let (mut s, mut rx, data) = sender(3, 30_000);
    s.window = 0;
    let first = s.drain();
    let answer = rx.take_and_ack(&mut s, &first);
    assert!(answer.iter().all(|o| o.payload.is_empty()));
    (s, rx, data)
}

#[test]
fn zero_window_probes_acked_keep_the_connection_open_past_retries2_rfc9293_3_8_6_1() {
    let (mut s, mut rx, data) = zero_window_sender();
    // retries2 (15) with the RTO backing off to 120 s gives up after about 15 minutes; the
    // peer keeps answering for two hours.
    let probes = hold_window_shut(&mut s, Duration::from_secs(2 * 3600));
    assert_eq!(
        s.ep.state(s.conn),
        Some(State::Established),
        "RFC 9293 §3.8.6.1: MUST keep the connection open while probes are acknowledged"
    );
    assert!(
        probes.len() >= 16,
        "more probes than retries2 allows retransmissions: {}",
        probes.len()
    );
    // The window opens: the rest goes at once.
    s.window = 65535;
    let before = rx.got.len();
    let out = s.ack();
    assert!(
        out.iter().any(|o| !o.payload.is_empty()),
        "no data right after the window opened"
    );
    rx.take_and_ack(&mut s, &out);
    assert!(rx.got.len() > before);
    rx.run(&mut s, Duration::from_secs(30), data.len());
    assert_eq!(rx.got, data);
}

#[test]
fn window_opening_after_two_probes_resumes_transmission_at_once_rfc9293_3_8_6_1() {
    let (mut s, mut rx, data) = zero_window_sender();
    let mut probes = 0;
    while probes < 2 {
        let t = s.ep.poll_timeout().expect("a persist timer runs");
        s.now = t;
        s.ep.handle_timeout(s.now);
        for (_, kind) in drain_kinds(&mut s.ep, s.now) {
            if kind == TxKind::WindowProbe {
                probes += 1;
                if probes < 2 {
                    s.ack();
                }
            }
        }
    }
    // The second probe's answer carries the opened window: data must follow in the same
    // instant, not at the next timer.
    s.window = 65535;
    let out = s.ack();
    assert!(
        out.iter().any(|o| !o.payload.is_empty()),
        "window opened after {probes} probes, but nothing was sent: {out:?}"
    );
    rx.take_and_ack(&mut s, &out);
    rx.run(&mut s, Duration::from_secs(30), data.len());
    assert_eq!(rx.got, data);
}

#[test]
fn spontaneous_window_update_after_probes_resumes_at_once_rfc9293_3_8_6_1() {
    let (mut s, _, _) = zero_window_sender();
    let probes = hold_window_shut(&mut s, Duration::from_secs(20));
    assert!(probes.len() >= 2, "{probes:?}");
    // Between probes, the peer's application reads and the peer sends a window update.
    s.now += Duration::from_millis(1);
    s.window = 65535;
    let out = s.ack();
    assert!(
        out.iter().any(|o| !o.payload.is_empty()),
        "window update after {} probes was not acted on: {out:?}",
        probes.len()
    );
}

#[test]
fn zero_window_probe_interval_grows_while_the_window_stays_shut_rfc9293_3_8_6_1() {
    let (mut s, _, _) = zero_window_sender();
    let probes = hold_window_shut(&mut s, Duration::from_secs(3600));
    let gaps: Vec<u64> = probes
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis() as u64)
        .collect();
    // RFC 9293 §3.8.6.1: the interval SHOULD increase exponentially (Linux doubles it up to
    // TCP_RTO_MAX even while the probes are answered, resetting only when the window opens).
    assert!(
        gaps.windows(2).all(|g| g[1] >= g[0]),
        "probe intervals shrink: {gaps:?}"
    );
    assert!(
        gaps.last().is_some_and(|&g| g >= 60_000),
        "after an hour the interval should have backed off to a minute or more: {} probes, \
         last gaps {:?}",
        probes.len(),
        &gaps[gaps.len().saturating_sub(5)..]
    );
}

#[test]
fn unanswered_zero_window_probes_give_up_like_retransmissions() {
    let (mut s, _, _) = zero_window_sender();
    // The peer vanishes: probes go unanswered and the connection must end with an error
    // (Linux tcp_probe_timer: tcp_retries2 unanswered probes), not probe forever.
    let probes = s.count_sent(Duration::from_secs(4 * 3600), TxKind::WindowProbe);
    assert_eq!(s.ep.state(s.conn), Some(State::Closed), "{probes} probes");
    let mut b = [0u8; 1];
    assert_eq!(
        s.ep.recv(s.now, s.conn, &mut b),
        Err(tcpfsm_core::RecvError::Conn(
            tcpfsm_core::ConnError::TimedOut
        ))
    );
}

#[test]
fn read_sends_no_window_update_that_repeats_the_window_linux_tcp_cleanup_rbuf() {
    // 256 KiB of buffer but no window scaling: every ACK already says 65535, the most the
    // field can. Reading frees space the field cannot show, so an "update" would only repeat
    // the window (a duplicate ACK to the peer); Linux sends none.
    let mut s = Scripted::server(plain(), PeerOpts::default());
    let data = random_bytes(7, 500);
    let acks = s.data(&data);
    assert!(
        acks.iter().any(|o| o.ack == s.p && o.window == 65535),
        "{acks:?}"
    );
    let (got, _) = s.read_all();
    assert_eq!(got, data);
    let out = s.drain();
    assert!(out.is_empty(), "window update repeating 65535: {out:?}");
}

#[test]
fn read_that_opens_a_small_window_sends_an_update_rfc9293_3_8_6_2_2() {
    // The counterpart: a 2-segment buffer filled and then read moves the edge by a full
    // buffer, which the field can say — that update goes out at once.
    let mut o = plain().conn_options();
    o.recv_buffer = 2 * 1460;
    let mut s = Scripted::server_with(plain(), PeerOpts::default(), Some(o));
    let data = random_bytes(8, 2 * 1460);
    let mut acks = s.data(&data[..1460]);
    acks.extend(s.data(&data[1460..]));
    assert!(
        acks.iter().any(|o| o.ack == s.p && o.window == 0),
        "{acks:?}"
    );
    let (got, _) = s.read_all();
    assert_eq!(got, data);
    let out = s.drain();
    assert!(
        out.iter()
            .any(|o| o.ack == s.p && o.window as usize >= 1460),
        "no window update after the read: {out:?}"
    );
}
