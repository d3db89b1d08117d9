//! Property tests for the paths issue 8 found broken: receive buffers of 1 to 4 MSS, slow and
//! bursty readers (random virtual times, random amounts, long pauses), sub-MSS and zero
//! windows, lost window updates, loss, duplication and reordering up to 30 %, random
//! payloads, and sequence numbers that wrap (ISN near 2^32).
//!
//! The exchange is request/response with half-close between two of our endpoints. Whatever
//! happens, TCP's guarantees must hold:
//! - each stream arrives byte-exact, or the application gets an explicit error — a read that
//!   returns end-of-stream has seen every byte;
//! - no stall: both applications finish and both endpoints are empty within a virtual-time
//!   bound — two hours beyond what the readers' own pace needs (keep-alive is on, so a
//!   vanished peer is noticed);
//! - every state path is legal (RFC 9293 graph, each change starting where the last ended),
//!   nothing closes prematurely (no abort cause these applications never asked for; a
//!   graceful close means the data was delivered), and TIME_WAIT lasts exactly 2×MSL from its
//!   entry or from the last FIN that restarted it, unless an RST ends it.
//!
//! CI runs a few dozen cases per property; the long run is `PROPTEST_CASES=10000` (see
//! tests/README.md).

mod common;
use common::*;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use tcpfsm_core::{
    Cause, CloseReason, Config, ConnHandle, Duration, Endpoint, Event, Instant, ListenOptions,
    SocketHandle, State,
};
use tcpfsm_wire::Flags;

const MSS: usize = 1460;
const MSL: Duration = Duration::from_secs(2);
/// No case may take longer than this much virtual time beyond what its readers need.
const BOUND: Duration = Duration::from_secs(2 * 3600);

/// A generous estimate of the time a reader needs for `bytes` at its own pace: every read
/// taking half its chunk after the longest gap, each with its chance of the longest pause.
/// A 3-byte reader with 130 ms gaps needs hours for 40 KB by itself; the bound is about the
/// engine, not the application, so it comes on top.
fn reading_time(bytes: usize, r: &Reader) -> Duration {
    let reads = bytes.div_ceil((r.chunk / 2).max(1)) as f64;
    let per_read_ms = r.gap_ms as f64 + r.pause * 8000.0;
    Duration::from_millis((reads * per_read_ms) as u64)
}

/// A generous estimate of the time a sender with a `sbuf`-byte send buffer needs for `bytes`
/// on this link: at most a buffer-full per round trip, and two seconds per round (a round
/// here takes 60 ms, or an RTO of 200 ms or more when its segment or ACK is lost). A 1-byte
/// buffer is stop-and-wait, one byte per round: at 20 % loss 40 KB take hours (measured
/// 0.34 s per byte), and like the reader's pace this comes on top of the engine's bound.
fn sending_time(bytes: usize, sbuf: usize) -> Duration {
    Duration::from_secs(2 * bytes.div_ceil(sbuf.max(1)) as u64)
}

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// When and how much an application reads.
#[derive(Debug, Clone, Copy)]
struct Reader {
    /// Longest gap between two reads.
    gap_ms: u64,
    /// Most bytes one read takes.
    chunk: usize,
    /// Chance that a read is followed by a long pause (zero window for seconds).
    pause: f64,
}

fn reader() -> impl Strategy<Value = Reader> {
    (1u64..400, 1usize..3 * 4 * MSS, 0.0..0.1f64).prop_map(|(gap_ms, chunk, pause)| Reader {
        gap_ms,
        chunk,
        pause,
    })
}

/// Where the initial sequence numbers lie.
#[derive(Debug, Clone, Copy)]
enum Isn {
    /// As the endpoints choose them.
    Natural,
    /// The client's ISN this many bytes below 2^32: the request wraps.
    ClientWraps(u32),
    /// The server's ISN this many bytes below 2^32: the response wraps.
    ServerWraps(u32),
}

#[derive(Debug, Clone)]
struct Case {
    seed: u64,
    imp: Impair,
    /// Chance that a window update (a pure ACK that opens the window) is lost.
    update_loss: f64,
    rbuf: (usize, usize),
    sbuf: (usize, usize),
    /// TCP_MAXSEG for both, lowering the MSS (a buffer of k MSS is then k of the smaller).
    maxseg: Option<u16>,
    up: usize,
    down: usize,
    readers: (Reader, Reader),
    isn: Isn,
    timestamps: bool,
    sack: bool,
}

fn case() -> impl Strategy<Value = Case> {
    let imp = (0.0..0.3f64, 0.0..0.3f64, 0.0..0.3f64, 0.0..0.02f64).prop_map(
        |(loss, dup, reorder, corrupt)| Impair {
            loss,
            dup,
            reorder,
            corrupt,
        },
    );
    let isn = prop_oneof![
        Just(Isn::Natural),
        (1u32..20_000).prop_map(Isn::ClientWraps),
        (1u32..20_000).prop_map(Isn::ServerWraps),
    ];
    (
        (any::<u64>(), imp, 0.0..1.0f64),
        (
            MSS..=4 * MSS,
            MSS..=4 * MSS,
            1usize..=64 * 1024,
            1usize..=64 * 1024,
        ),
        (
            prop::option::weighted(0.3, 536u16..1460),
            1usize..60_000,
            1usize..60_000,
        ),
        (reader(), reader(), isn, any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(
                (seed, imp, update_loss),
                (ra, rb, sa, sb),
                (maxseg, up, down),
                (r1, r2, isn, timestamps, sack),
            )| Case {
                seed,
                imp,
                update_loss,
                rbuf: (ra, rb),
                sbuf: (sa, sb),
                maxseg,
                up,
                down,
                readers: (r1, r2),
                isn,
                timestamps,
                sack,
            },
        )
}

fn config(c: &Case) -> Config {
    Config {
        msl: MSL,
        timestamps: c.timestamps,
        sack: c.sack,
        keepalive: Some(Duration::from_secs(60)),
        keepalive_interval: Duration::from_secs(10),
        keepalive_probes: 3,
        ..Config::default()
    }
}

const CLIENT: (&str, u16) = (A_IP, 40_000);
const SERVER: (&str, u16) = (B_IP, 80);

/// The connect time that puts the chosen ISN where the case wants it: ISNs are RFC 6528's
/// M + F(4-tuple), with M a 4 µs clock, so moving the start moves the ISN.
fn start_time(c: &Case, cfg: &Config) -> Instant {
    let t0 = Instant::from_micros(1_000_000);
    let isn_at = |ep: &mut Endpoint, server: bool, t: Instant| -> u32 {
        if server {
            ep.listen(t, addr(SERVER.0, SERVER.1), 8).unwrap();
            let syn = seg(
                addr(CLIENT.0, CLIENT.1),
                addr(SERVER.0, SERVER.1),
                Flags::SYN,
                1,
                0,
            );
            ep.handle_packet(t, &syn.bytes());
        } else {
            ep.connect(t, addr(CLIENT.0, CLIENT.1), addr(SERVER.0, SERVER.1))
                .unwrap();
        }
        drain(ep, t)[0].seq
    };
    let (server, below) = match c.isn {
        Isn::Natural => return t0,
        Isn::ClientWraps(k) => (false, k),
        Isn::ServerWraps(k) => (true, k),
    };
    // The server's SYN-ACK answers a SYN that arrives one link delay after the connect.
    let delay = Duration::from_millis(10);
    let mut probe = Endpoint::new(cfg.clone(), if server { 2 } else { 1 });
    let at = if server { t0 + delay } else { t0 };
    let isn0 = isn_at(&mut probe, server, at);
    let ticks = 0u32.wrapping_sub(below).wrapping_sub(isn0);
    t0 + Duration::from_micros(4 * ticks as u64)
}

/// Drops window updates: pure ACKs from `from_a` whose window is larger than the last one
/// that direction carried.
fn lose_window_updates(n: &mut Net, seed: u64, p: f64) {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed ^ 0x5eed);
    let mut last: [Option<u16>; 2] = [None, None];
    n.drop_when(move |from_a, s| {
        let pure =
            s.payload.is_empty() && !s.flags.intersects(Flags::SYN | Flags::FIN | Flags::RST);
        let slot = &mut last[from_a as usize];
        let opens = pure && slot.is_some_and(|w| s.window > w);
        *slot = Some(s.window);
        opens && rng.gen_bool(p)
    });
}

/// One application's view of its incoming stream.
#[derive(Debug, Default)]
struct Inbox {
    got: Vec<u8>,
    eof: bool,
    error: Option<String>,
    next_read: Instant,
}

impl Inbox {
    /// One read of at most `r.chunk` bytes when it is time; returns true if it did anything.
    fn read(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        c: ConnHandle,
        r: &Reader,
        rng: &mut impl Rng,
    ) {
        if now < self.next_read || self.eof || self.error.is_some() {
            return;
        }
        let mut buf = vec![0u8; rng.gen_range(1..=r.chunk)];
        match ep.recv(now, c, &mut buf) {
            Ok(Some(0)) => self.eof = true,
            Ok(Some(k)) => self.got.extend_from_slice(&buf[..k]),
            Ok(None) => {}
            Err(e) => self.error = Some(format!("recv: {e}")),
        }
        let mut gap = Duration::from_millis(rng.gen_range(0..=r.gap_ms));
        if rng.gen_bool(r.pause) {
            gap += Duration::from_millis(rng.gen_range(1000..8000));
        }
        self.next_read = now + gap;
    }

    fn done(&self) -> bool {
        self.eof || self.error.is_some()
    }

    /// The stream so far is a prefix of `sent`, and all of it if the reader saw its end.
    fn check(&self, what: &str, sent: &[u8]) -> Result<(), String> {
        if self.got.len() > sent.len() || self.got[..] != sent[..self.got.len()] {
            return Err(format!(
                "{what}: bytes differ from what was sent (duplicated, reordered or corrupted)"
            ));
        }
        if self.eof && self.got.len() != sent.len() {
            return Err(format!(
                "{what}: clean end of stream after {} of {} bytes — a silent short stream",
                self.got.len(),
                sent.len()
            ));
        }
        Ok(())
    }
}

/// Runs one case; `Ok` carries a one-line summary for the long-run log.
fn run(c: &Case) -> Result<String, String> {
    let cfg = config(c);
    let mut n = Net::new(cfg.clone(), cfg.clone());
    n.now = start_time(c, &cfg);
    n.record_deliveries = true;
    n.impair(c.seed, c.imp);
    lose_window_updates(&mut n, c.seed, c.update_loss);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(c.seed ^ 0xa99);
    let opts = |rbuf: usize, sbuf: usize| {
        let mut o = cfg.conn_options();
        o.recv_buffer = rbuf;
        o.send_buffer = sbuf;
        o.mss = c.maxseg;
        o
    };
    let mut lo = ListenOptions::new(&cfg, 8);
    lo.conn = opts(c.rbuf.1, c.sbuf.1);
    let l =
        n.b.listen_with(n.now, addr(SERVER.0, SERVER.1), lo)
            .unwrap();
    let start = n.now;
    let bound = BOUND
        + reading_time(c.down, &c.readers.0)
        + reading_time(c.up, &c.readers.1)
        + sending_time(c.up, c.sbuf.0)
        + sending_time(c.down, c.sbuf.1);
    let a =
        n.a.connect_with(
            n.now,
            addr(CLIENT.0, CLIENT.1),
            addr(SERVER.0, SERVER.1),
            opts(c.rbuf.0, c.sbuf.0),
        )
        .map_err(|e| e.to_string())?;
    let req = random_bytes(c.seed, c.up);
    let resp = random_bytes(!c.seed, c.down);
    let (mut a_in, mut b_in) = (Inbox::default(), Inbox::default());
    let (mut sent_up, mut sent_down) = (0, 0);
    let (mut a_err, mut b_err): (Option<String>, Option<String>) = (None, None);
    let (mut a_shut, mut a_closed, mut b_closed) = (false, false, false);
    let mut b = None;
    loop {
        n.run_for(Duration::from_millis(rng.gen_range(1..100)));
        let now = n.now;
        if now - start > bound {
            return Err(format!(
                "stalled for {bound:?}: client {:?} read {}/{} eof {} err {:?}; server {:?} read {}/{} \
                 eof {} err {:?}; A {:?} B {:?}",
                n.a.state(a),
                a_in.got.len(),
                resp.len(),
                a_in.eof,
                a_err.as_ref().or(a_in.error.as_ref()),
                b.and_then(|s| n.b.state(s)),
                b_in.got.len(),
                req.len(),
                b_in.eof,
                b_err.as_ref().or(b_in.error.as_ref()),
                n.a.connections(),
                n.b.connections()
            ));
        }
        // The client: send the request, half-close, read the response, close.
        if !a_closed {
            let established = !matches!(n.a.state(a), Some(State::SynSent) | None);
            if established && a_err.is_none() && sent_up < req.len() {
                match n.a.send(now, a, &req[sent_up..]) {
                    Ok(k) => sent_up += k,
                    Err(e) => a_err = Some(format!("send: {e}")),
                }
            }
            if established && a_err.is_none() && sent_up == req.len() && !a_shut {
                match n.a.shutdown_write(now, a) {
                    Ok(()) => a_shut = true,
                    Err(e) => a_err = Some(format!("shutdown: {e}")),
                }
            }
            a_in.read(&mut n.a, now, a, &c.readers.0, &mut rng);
            if a_in.done() || a_err.is_some() {
                n.a.close(now, a).map_err(|e| e.to_string())?;
                a_closed = true;
            }
        }
        // The server: accept, read the request to its end, respond, close.
        if b.is_none() {
            b = n.b.accept(now, l).map_err(|e| e.to_string())?;
        }
        if let (Some(s), false) = (b, b_closed) {
            b_in.read(&mut n.b, now, s, &c.readers.1, &mut rng);
            if b_in.eof && b_err.is_none() && sent_down < resp.len() {
                match n.b.send(now, s, &resp[sent_down..]) {
                    Ok(k) => sent_down += k,
                    Err(e) => b_err = Some(format!("send: {e}")),
                }
            }
            if b_in.error.is_some() || b_err.is_some() || (b_in.eof && sent_down == resp.len()) {
                n.b.close(now, s).map_err(|e| e.to_string())?;
                b_closed = true;
            }
        }
        let a_failed = a_err.is_some() || a_in.error.is_some();
        // A server that never got its connection is done if the client failed to open it.
        let b_done = b_closed || (b.is_none() && a_failed);
        if a_closed && b_done && n.a.census().total() == 0 && n.b.census().total() == 1 {
            break;
        }
    }
    a_in.check("response", &resp)?;
    b_in.check("request", &req)?;
    check_paths(&n, a, b, true)?;
    // A graceful end means the data got there: the server's FIN was acknowledged only after
    // all of its response, so the client must have read it all; the client reached TIME_WAIT
    // only after the server took its FIN, so the server must have read the whole request.
    let graceful = |evs: &[Event], h: ConnHandle| {
        evs.iter().any(
            |e| matches!(e, Event::Closed { conn, reason: CloseReason::Graceful } if *conn == h),
        )
    };
    if let Some(s) = b {
        if graceful(&n.ev_b, s) && !a_in.eof {
            return Err(format!(
                "server closed gracefully but the client read {} of {} bytes ({:?})",
                a_in.got.len(),
                resp.len(),
                a_in.error
            ));
        }
    }
    if graceful(&n.ev_a, a) && !b_in.eof {
        return Err(format!(
            "client closed gracefully but the server read {} of {} bytes",
            b_in.got.len(),
            req.len()
        ));
    }
    let outcome = |eof: bool, e1: &Option<String>, e2: &Option<String>| match (
        eof,
        e1.as_ref().or(e2.as_ref()),
    ) {
        (true, _) => "complete".to_string(),
        (false, Some(e)) => e.clone(),
        (false, None) => "never opened".to_string(),
    };
    Ok(format!(
        "{:.0}s client {} server {}",
        (n.now - start).as_secs_f64(),
        outcome(a_in.eof, &a_in.error, &a_err),
        outcome(b_in.eof, &b_in.error, &b_err)
    ))
}

/// Every state change legal and continuous; no close cause these applications never asked
/// for; TIME_WAIT exactly 2×MSL (from entry or a restarting FIN) unless an RST ends it.
fn check_paths(
    n: &Net,
    a: ConnHandle,
    _b: Option<ConnHandle>,
    finished: bool,
) -> Result<(), String> {
    let mut state: HashMap<(bool, SocketHandle), State> = HashMap::new();
    let mut tw_enter: HashMap<(bool, SocketHandle), Instant> = HashMap::new();
    for (t, on_a, e) in &n.timed {
        let Event::StateChanged {
            socket,
            from,
            to,
            cause,
            tuple,
        } = e
        else {
            continue;
        };
        let key = (*on_a, *socket);
        if !from.can_transition_to(*to) {
            return Err(format!("{socket}: illegal {from} -> {to} ({cause})"));
        }
        if let Some(prev) = state.insert(key, *to) {
            if prev != *from {
                return Err(format!("{socket}: {from} -> {to} but it was {prev}"));
            }
        }
        if *to == State::Closed
            && matches!(
                cause,
                Cause::ClosedWithUnreadData | Cause::AppAbort | Cause::FinWait2Timeout
            )
        {
            return Err(format!(
                "{socket}: premature close {from} -> CLOSED ({cause})"
            ));
        }
        if *to == State::TimeWait {
            tw_enter.insert(key, *t);
        }
        if *from == State::TimeWait {
            let entered = tw_enter[&key];
            match cause {
                Cause::TimeWaitExpired => {
                    // Restarts: the peer's FIN arriving again (our ACK was lost).
                    let mut refs = vec![entered];
                    refs.extend(n.deliveries.iter().filter_map(|(at, to_a, s)| {
                        (*to_a == *on_a
                            && *at >= entered
                            && s.has(Flags::FIN)
                            && s.dst == tuple.local
                            && s.src == tuple.remote)
                            .then_some(*at)
                    }));
                    let exact = refs.iter().any(|r| {
                        let due = *r + MSL * 2;
                        let diff = if *t > due { *t - due } else { due - *t };
                        diff <= Duration::from_millis(2)
                    });
                    if *t + Duration::from_millis(2) < entered + MSL * 2 || !exact {
                        return Err(format!(
                            "{socket}: TIME_WAIT from {entered} to {t}, not 2×MSL from entry or a FIN ({refs:?})"
                        ));
                    }
                }
                // RFC 1337's hazard, as Linux allows it: an exact RST ends TIME_WAIT.
                Cause::ResetReceived => {}
                other => return Err(format!("{socket}: TIME_WAIT ended by {other}")),
            }
        }
    }
    if finished && state.get(&(true, SocketHandle::Conn(a))) != Some(&State::Closed) {
        return Err(format!(
            "client ended in {:?}",
            state.get(&(true, SocketHandle::Conn(a)))
        ));
    }
    Ok(())
}

/// Prints a case's summary when `TCPFSM_CASE_LOG` is set (for the long run's tallies).
fn log_case(c: &Case, r: &Result<String, String>) {
    if std::env::var_os("TCPFSM_CASE_LOG").is_some() {
        match r {
            Ok(s) => eprintln!("case: {s}"),
            Err(e) => eprintln!("case failed: {e}: {c:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(40), ..ProptestConfig::default() })]

    /// Byte-exact or a loud error, and no stall: a client left half-closed in FIN_WAIT_2
    /// after its server's orphan gave up finds out through keep-alive (liveness.rs).
    #[test]
    fn small_buffers_slow_readers_and_lossy_links_never_stall_with_keepalive(c in case()) {
        let r = run(&c);
        log_case(&c, &r);
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

/// A fixed set of hard cases, each exercising one path named in its message.
#[test]
fn isn_near_2_pow_32_wraps_during_the_transfer() {
    for (isn, from_a) in [
        (Isn::ClientWraps(3000), true),
        (Isn::ServerWraps(3000), false),
    ] {
        let c = Case {
            seed: 11,
            imp: Impair::default(),
            update_loss: 0.0,
            rbuf: (2 * MSS, 2 * MSS),
            sbuf: (8000, 8000),
            maxseg: None,
            up: 20_000,
            down: 20_000,
            readers: (
                Reader {
                    gap_ms: 50,
                    chunk: 2000,
                    pause: 0.0,
                },
                Reader {
                    gap_ms: 50,
                    chunk: 2000,
                    pause: 0.0,
                },
            ),
            isn,
            timestamps: true,
            sack: true,
        };
        let cfg = config(&c);
        let t = start_time(&c, &cfg);
        let mut n = Net::new(cfg.clone(), cfg);
        n.now = t;
        n.b.listen(n.now, addr(SERVER.0, SERVER.1), 8).unwrap();
        n.a.connect(n.now, addr(CLIENT.0, CLIENT.1), addr(SERVER.0, SERVER.1))
            .unwrap();
        n.run_for(Duration::from_millis(100));
        let syn = n
            .log
            .iter()
            .find(|l| l.from_a == from_a && l.seg.has(Flags::SYN))
            .unwrap();
        assert_eq!(syn.seg.seq, 0u32.wrapping_sub(3000), "{isn:?}");
        run(&c).unwrap_or_else(|e| panic!("{isn:?}: {e}"));
    }
}

#[test]
fn one_mss_buffers_with_every_window_update_lost_complete() {
    let c = Case {
        seed: 12,
        imp: Impair {
            loss: 0.05,
            dup: 0.05,
            reorder: 0.1,
            corrupt: 0.0,
        },
        update_loss: 1.0,
        rbuf: (MSS, MSS),
        sbuf: (3000, 3000),
        maxseg: None,
        up: 30_000,
        down: 30_000,
        readers: (
            Reader {
                gap_ms: 300,
                chunk: 700,
                pause: 0.05,
            },
            Reader {
                gap_ms: 300,
                chunk: 700,
                pause: 0.05,
            },
        ),
        isn: Isn::Natural,
        timestamps: false,
        sack: false,
    };
    let r = run(&c).unwrap();
    assert!(r.contains("client complete server complete"), "{r}");
}

#[test]
fn thirty_percent_loss_duplication_and_reordering_deliver_or_fail_loudly() {
    for seed in 0..6 {
        let c = Case {
            seed,
            imp: Impair {
                loss: 0.3,
                dup: 0.3,
                reorder: 0.3,
                corrupt: 0.01,
            },
            update_loss: 0.5,
            rbuf: (3 * MSS, 2 * MSS),
            sbuf: (10_000, 10_000),
            maxseg: Some(1000),
            up: 20_000,
            down: 20_000,
            readers: (
                Reader {
                    gap_ms: 100,
                    chunk: 3000,
                    pause: 0.02,
                },
                Reader {
                    gap_ms: 100,
                    chunk: 3000,
                    pause: 0.02,
                },
            ),
            isn: Isn::Natural,
            timestamps: seed % 2 == 0,
            sack: seed % 3 != 0,
        };
        let r = run(&c).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        eprintln!("seed {seed}: {r}");
    }
}
