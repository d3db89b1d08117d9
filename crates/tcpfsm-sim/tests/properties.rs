//! Property: under random loss, duplication, reordering, jitter and corruption, TCP delivers
//! each stream exactly once and in order, or tells the application it could not.
//!
//! What TCP guarantees here, and no more:
//! - every byte read is the byte sent, in order, once (always, errors included);
//! - a reader that sees end-of-stream has every byte (never a clean short stream);
//! - an orphan (the client after `close`) may give up retransmitting (`orphan_retries`, as
//!   Linux's `tcp_orphan_retries`), and then nobody is left to tell: its peer learns of it
//!   only by an error — the RST that answers its next segment, or its keep-alive probe —
//!   after reading whatever arrived in order. Under heavy loss the peer's keep-alive may
//!   also give up first. So a short stream is allowed only with an error, and only when the
//!   other side did not close gracefully;
//! - both sides reach CLOSED (the active closer through TIME_WAIT unless, as an orphan, it
//!   gave up or was reset), and no transition leaves the RFC 9293 graph.
//!
//! Keep-alive is on (SO_KEEPALIVE, 60 s): without it nothing in TCP lets a server waiting for
//! the rest of a request learn that the client's orphan gave up.
//!
//! The long run: `PROPTEST_CASES=100000 cargo test --release -p tcpfsm-sim --test properties`.

use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;
use rand::{RngCore, SeedableRng};
use tcpfsm_core::{Config, ConnError, ConnHandle, Instant, ListenerHandle, RecvError};
use tcpfsm_impair::Loss;
use tcpfsm_sim::{is_rfc_transition, LinkParams, Network};
use tcpfsm_states::State;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn params() -> impl Strategy<Value = LinkParams> {
    (
        1u64..50,
        0u64..10,
        0.0..0.2f64,
        0.0..0.1f64,
        0.0..0.2f64,
        0.0..0.05f64,
    )
        .prop_map(|(delay, jitter, loss, duplicate, reorder, corrupt)| {
            let mut p = LinkParams::default();
            p.delay = Duration::from_millis(delay);
            p.jitter = Duration::from_millis(jitter);
            p.loss = Loss::Bernoulli(loss);
            p.duplicate = duplicate;
            p.reorder = reorder;
            p.corrupt = corrupt;
            p
        })
}

/// One connection's state changes, with their causes.
#[derive(Debug, Default)]
struct Path {
    states: Vec<State>,
    causes: Vec<String>,
}

impl Path {
    fn last_cause(&self) -> Option<&str> {
        self.causes.last().map(String::as_str)
    }

    /// The connection gave up retransmitting (or its FIN_WAIT_2 wait ran out) as an orphan.
    fn gave_up(&self) -> bool {
        matches!(
            self.last_cause(),
            Some("retransmission limit" | "FIN_WAIT_2 timeout" | "keepalive timeout")
        )
    }
}

#[derive(Debug, Default)]
struct Run {
    /// What the server read of the client's request, and how its reading ended.
    received: Vec<u8>,
    server_eof: bool,
    server_err: Option<String>,
    accepted: bool,
    /// What the client read of the server's response, and how its reading ended.
    response: Vec<u8>,
    client_eof_early: bool,
    client_err: Option<String>,
    client_path: Path,
    server_path: Path,
    transitions: Vec<(State, State)>,
    corrupted: usize,
}

/// The endpoints' configuration: Linux defaults with SO_KEEPALIVE (60 s idle, 3 probes 10 s
/// apart).
fn config() -> Config {
    Config {
        keepalive: Some(Duration::from_secs(60)),
        keepalive_interval: Duration::from_secs(10),
        keepalive_probes: 3,
        ..Config::default()
    }
}

/// A client host (10.0.0.1) connecting to a server host (10.0.0.2) listening on port 80, over
/// links `ab` (client to server) and `ba`: (network, client, server, listener, connection).
fn client_server(
    seed: u64,
    client_cfg: Config,
    server_cfg: Config,
    ab: LinkParams,
    ba: LinkParams,
) -> (Network<'static>, usize, usize, ListenerHandle, ConnHandle) {
    let mut net = Network::new(seed);
    let c = net.add_host("client", vec!["10.0.0.1".parse().unwrap()], client_cfg);
    let s = net.add_host("server", vec!["10.0.0.2".parse().unwrap()], server_cfg);
    net.set_link(c, s, ab);
    net.set_link(s, c, ba);
    let srv: SocketAddr = "10.0.0.2:80".parse().unwrap();
    let l = net
        .with_endpoint(s, |ep, now| ep.listen(now, srv, 16))
        .unwrap();
    let cc = net
        .with_endpoint(c, |ep, now| {
            ep.connect(now, "10.0.0.1:0".parse().unwrap(), srv)
        })
        .unwrap();
    (net, c, s, l, cc)
}

/// The client sends `len` bytes while the server sends `back` bytes; the client closes once it
/// has sent everything and read the whole response, the server once it read end-of-stream and
/// sent its reply. Either closes at once on an error.
fn transfer(
    seed: u64,
    len: usize,
    back: usize,
    ab: LinkParams,
    ba: LinkParams,
) -> (Vec<u8>, Vec<u8>, Run) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut data = vec![0u8; len];
    rng.fill_bytes(&mut data);
    let mut reply = vec![0u8; back];
    rng.fill_bytes(&mut reply);
    let cfg = Config {
        msl: Duration::from_secs(5),
        ..config()
    };
    let (mut net, c, s, l, cc) = client_server(seed, cfg.clone(), cfg, ab, ba);
    let mut run = Run::default();
    let mut sc = None;
    let mut sent = 0usize;
    let mut client_closed = false;
    let mut replied = 0usize;
    let mut server_closed = false;
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = Instant::ZERO + Duration::from_secs(3600);
    let mut established = false;
    let done = net.run_until_pred(deadline, |net| {
        // Like a blocking connect: the application writes once the handshake is done (a
        // close in SYN_SENT would just delete the connection, RFC 9293 §3.10.4).
        let state = net.conn_state(c, cc);
        established |= state == Some(State::Established);
        if !client_closed {
            if state == Some(State::Closed) && !established && run.client_err.is_none() {
                run.client_err = Some("connect failed".into());
            }
            if established && sent < data.len() && run.client_err.is_none() {
                match net.with_endpoint(c, |ep, now| ep.send(now, cc, &data[sent..])) {
                    Ok(n) => sent += n,
                    Err(e) => run.client_err = Some(format!("send: {e}")),
                }
            }
            while established && run.response.len() < reply.len() && run.client_err.is_none() {
                match net.with_endpoint(c, |ep, now| ep.recv(now, cc, &mut buf)) {
                    Ok(Some(0)) => {
                        run.client_eof_early = true;
                        break;
                    }
                    Ok(Some(n)) => run.response.extend_from_slice(&buf[..n]),
                    Ok(None) => break,
                    Err(e) => run.client_err = Some(format!("recv: {e}")),
                }
            }
            // Closing with unread data would send RST (as Linux does), so read first.
            let finished = established && sent == data.len() && run.response.len() == reply.len();
            if finished || run.client_err.is_some() || run.client_eof_early {
                net.with_endpoint(c, |ep, now| ep.close(now, cc)).unwrap();
                client_closed = true;
            }
        }
        if sc.is_none() {
            match net.with_endpoint(s, |ep, now| ep.accept(now, l)) {
                Ok(id) => sc = id,
                Err(e) => panic!("accept failed: {e}"),
            }
            run.accepted = sc.is_some();
        }
        if let (Some(id), false) = (sc, server_closed) {
            if replied < reply.len() && run.server_err.is_none() {
                match net.with_endpoint(s, |ep, now| ep.send(now, id, &reply[replied..])) {
                    Ok(n) => replied += n,
                    Err(e) => run.server_err = Some(format!("send: {e}")),
                }
            }
            while !run.server_eof && run.server_err.is_none() {
                match net.with_endpoint(s, |ep, now| ep.recv(now, id, &mut buf)) {
                    Ok(Some(0)) => run.server_eof = true,
                    Ok(Some(n)) => run.received.extend_from_slice(&buf[..n]),
                    Ok(None) => break,
                    Err(e) => run.server_err = Some(format!("recv: {e}")),
                }
            }
            if (run.server_eof && replied == reply.len()) || run.server_err.is_some() {
                net.with_endpoint(s, |ep, now| ep.close(now, id)).unwrap();
                server_closed = true;
            }
        }
        let client_done = client_closed && net.conn_state(c, cc) == Some(State::Closed);
        // A server that never got its connection is done if the client failed to open it.
        let server_done = match sc {
            Some(id) => server_closed && net.conn_state(s, id) == Some(State::Closed),
            None => run.client_err.is_some(),
        };
        client_done && server_done
    });
    assert!(
        done,
        "connection did not finish within an hour of virtual time: {run:?}"
    );
    let t = net.trace().expect("Network::new records");
    for st in t.states() {
        let (host, id) = match (st.host, sc) {
            (h, _) if h == c && st.id == cc.id() => (c, cc.id()),
            (h, Some(id)) if h == s && st.id == id.id() => (s, id.id()),
            _ => continue,
        };
        let p = if host == c {
            &mut run.client_path
        } else {
            &mut run.server_path
        };
        let _ = id;
        if p.states.is_empty() {
            p.states.push(st.from);
        }
        p.states.push(st.to);
        p.causes.push(st.cause.clone());
    }
    run.transitions = t.transitions().collect();
    run.corrupted = t
        .segments()
        .filter(|s| s.fate == tcpfsm_sim::Fate::Corrupted)
        .count();
    (data, reply, run)
}

/// TCP's guarantees for one run (see the module documentation).
fn check(data: &[u8], reply: &[u8], run: &Run) -> Result<(), String> {
    let prefix = |got: &[u8], sent: &[u8]| got.len() <= sent.len() && got == &sent[..got.len()];
    if !prefix(&run.received, data) {
        return Err("request bytes differ (duplicated, reordered or corrupted)".into());
    }
    if !prefix(&run.response, reply) {
        return Err("response bytes differ (duplicated, reordered or corrupted)".into());
    }
    if run.server_eof && run.received.len() != data.len() {
        return Err(format!(
            "server saw a clean end of stream after {} of {} bytes",
            run.received.len(),
            data.len()
        ));
    }
    if run.client_eof_early {
        return Err(format!(
            "client saw a clean end of stream after {} of {} response bytes",
            run.response.len(),
            reply.len()
        ));
    }
    let client_gave_up = run.client_err.is_some() || run.client_path.gave_up();
    if run.accepted && !run.server_eof {
        // A short request: only with an error. Its cause may be the client's orphan giving up,
        // or the server's own keep-alive giving up on a client that was still retransmitting
        // into heavy loss (Linux's tcp_keepalive_timer does the same); either way the client
        // cannot have closed gracefully, which needs its FIN — after all its data — taken.
        if run.server_err.is_none() {
            return Err(format!(
                "server read {} of {} bytes and no error",
                run.received.len(),
                data.len()
            ));
        }
        if run.client_path.states.contains(&State::TimeWait) {
            return Err(format!(
                "server failed ({:?}) after {} of {} bytes, yet the client closed gracefully: \
                 {:?}",
                run.server_err,
                run.received.len(),
                data.len(),
                run.client_path
            ));
        }
    }
    if !run.accepted && run.client_err.is_none() {
        return Err("the server never accepted, yet the client did not fail".into());
    }
    if run.response.len() != reply.len() && run.client_err.is_none() {
        return Err(format!(
            "client read {} of {} response bytes and no error",
            run.response.len(),
            reply.len()
        ));
    }
    for (from, to) in &run.transitions {
        if !is_rfc_transition(*from, *to) {
            return Err(format!("illegal transition {from} -> {to}"));
        }
    }
    let cp = &run.client_path.states;
    if cp.last() != Some(&State::Closed) {
        return Err(format!("client ended in {:?}", cp.last()));
    }
    // The client closed first, so it holds TIME_WAIT — unless it gave up, failed, or was reset
    // (an RST from a server that had already given up on it).
    let reset = run.client_path.last_cause() == Some("RST received");
    if !cp.contains(&State::TimeWait) && !client_gave_up && !reset {
        return Err(format!("client skipped TIME_WAIT: {:?}", run.client_path));
    }
    let sp = &run.server_path.states;
    if run.accepted && sp.last() != Some(&State::Closed) {
        return Err(format!("server ended in {:?}", sp.last()));
    }
    if sp.contains(&State::TimeWait) {
        return Err(format!(
            "server went through TIME_WAIT: {:?}",
            run.server_path
        ));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(32), ..ProptestConfig::default() })]

    #[test]
    fn every_byte_arrives_once_in_order_or_a_short_stream_ends_in_an_error(
        seed in any::<u64>(),
        len in 1usize..150_000,
        back in 0usize..60_000,
        ab in params(),
        ba in params(),
    ) {
        let (data, reply, run) = transfer(seed, len, back, ab, ba);
        let r = check(&data, &reply, &run);
        if std::env::var_os("TCPFSM_CASE_LOG").is_some() {
            let how = |eof: bool, e: &Option<String>| match (eof, e) {
                (true, _) => "complete".to_string(),
                (false, Some(e)) => e.clone(),
                (false, None) => "open".to_string(),
            };
            eprintln!(
                "case: server {} client {} client-path-end {:?}",
                how(run.server_eof, &run.server_err),
                how(run.response.len() == reply.len(), &run.client_err),
                run.client_path.last_cause()
            );
        }
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

#[test]
fn corrupted_segments_are_rejected_and_repaired_by_retransmission() {
    let mut p = tcpfsm_sim::link::default_params();
    p.corrupt = 0.2;
    let (data, reply, run) = transfer(7, 50_000, 20_000, p, p);
    assert!(run.corrupted > 0, "the link corrupted nothing");
    check(&data, &reply, &run).unwrap();
    assert!(run.received == data);
    assert!(run.response == reply);
}

#[test]
fn an_orphan_that_gives_up_leaves_its_peer_an_error_not_a_short_stream() {
    // The client closes with most of its request unacknowledged and the link then drops
    // everything it sends: its orphan gives up after `orphan_retries`, and the server, which
    // read a prefix, must learn of it through an error (keep-alive, then the RST).
    let ab = tcpfsm_sim::link::default_params();
    // The orphan gives up after three retransmissions, long before the server's keep-alive.
    let client_cfg = Config {
        orphan_retries: 3,
        ..config()
    };
    let (mut net, c, s, l, cc) = client_server(3, client_cfg, config(), ab, ab);
    net.run_until(Instant::ZERO + Duration::from_millis(200));
    let sc = net
        .with_endpoint(s, |ep, now| ep.accept(now, l))
        .unwrap()
        .expect("accepted");
    let mut payload = vec![0u8; 40_000];
    rand_chacha::ChaCha8Rng::seed_from_u64(5).fill_bytes(&mut payload);
    net.with_endpoint(c, |ep, now| ep.send(now, cc, &payload[..1000]))
        .unwrap();
    net.run_until(Instant::ZERO + Duration::from_millis(400));
    // From now on the client's segments are lost: the rest of the request never arrives.
    let mut lossy = tcpfsm_sim::link::default_params();
    lossy.loss = Loss::Bernoulli(1.0);
    net.set_link(c, s, lossy);
    net.with_endpoint(c, |ep, now| ep.send(now, cc, &payload[1000..]))
        .unwrap();
    net.with_endpoint(c, |ep, now| ep.close(now, cc)).unwrap();
    let gone = net.run_until_pred(Instant::ZERO + Duration::from_secs(600), |net| {
        net.endpoint(c).census().total() == 0
    });
    assert!(gone, "the orphan gives up");
    assert_eq!(
        net.endpoint(c).stats()[tcpfsm_core::Counter::TCPAbortOnTimeout],
        1
    );
    // The link heals; the server still waits for the rest of the request.
    net.set_link(c, s, ab);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    let mut outcome = None;
    net.run_until_pred(Instant::ZERO + Duration::from_secs(3600), |net| {
        loop {
            match net.with_endpoint(s, |ep, now| ep.recv(now, sc, &mut buf)) {
                Ok(Some(0)) => outcome = Some(Ok(())),
                Ok(Some(n)) => {
                    got.extend_from_slice(&buf[..n]);
                    continue;
                }
                Ok(None) => {}
                Err(e) => outcome = Some(Err(e)),
            }
            break;
        }
        outcome.is_some()
    });
    assert_eq!(got, payload[..1000], "the prefix that arrived, byte-exact");
    // The server's keep-alive probe reaches a client that has forgotten the connection: the
    // RST that answers it is the error.
    assert_eq!(
        outcome,
        Some(Err(RecvError::Conn(ConnError::Reset))),
        "a short stream must end in an error"
    );
}
