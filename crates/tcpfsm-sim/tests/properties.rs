//! Property: under random loss, duplication, reordering, jitter and corruption, every byte
//! sent arrives exactly once and in order, both sides reach CLOSED (the active closer after
//! TIME_WAIT), and no transition outside the RFC 9293 state graph ever happens.

use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;
use rand::{RngCore, SeedableRng};
use tcpfsm_core::{Config, Instant};
use tcpfsm_impair::Loss;
use tcpfsm_sim::{is_rfc_transition, LinkParams, Network};
use tcpfsm_states::State;

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

struct Run {
    received: Vec<u8>,
    /// What the client read of the server's response.
    response: Vec<u8>,
    client_path: Vec<State>,
    server_path: Vec<State>,
    transitions: Vec<(State, State)>,
    corrupted: usize,
}

/// The client sends `len` bytes while the server sends `back` bytes; the client closes once it
/// has sent everything and read the whole response, the server once it read end-of-stream.
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
    let mut net = Network::new(seed);
    let cfg = Config {
        msl: Duration::from_secs(5),
        ..Config::default()
    };
    let c = net.add_host("client", vec!["10.0.0.1".parse().unwrap()], cfg.clone());
    let s = net.add_host("server", vec!["10.0.0.2".parse().unwrap()], cfg);
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
    let mut sc = None;
    let mut sent = 0usize;
    let mut client_closed = false;
    let mut received = Vec::new();
    let mut response = Vec::new();
    let mut replied = 0usize;
    let mut eof = false;
    let mut server_closed = false;
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = Instant::ZERO + Duration::from_secs(3600);
    let mut established = false;
    let done = net.run_until_pred(deadline, |net| {
        // Like a blocking connect: the application writes once the handshake is done (a
        // close in SYN_SENT would just delete the connection, RFC 9293 §3.10.4).
        established |= net.conn_state(c, cc) == Some(State::Established);
        if established && sent < data.len() {
            match net.with_endpoint(c, |ep, now| ep.send(now, cc, &data[sent..])) {
                Ok(n) => sent += n,
                Err(e) => panic!("client send failed: {e}"),
            }
        }
        while established && response.len() < reply.len() {
            match net.with_endpoint(c, |ep, now| ep.recv(now, cc, &mut buf)) {
                Ok(Some(0)) => panic!("client saw end-of-stream before the whole response"),
                Ok(Some(n)) => response.extend_from_slice(&buf[..n]),
                Ok(None) => break,
                Err(e) => panic!("client recv failed after {} bytes: {e}", response.len()),
            }
        }
        // Closing with unread data would send RST (as Linux does), so read first.
        if established && sent == data.len() && response.len() == reply.len() && !client_closed {
            net.with_endpoint(c, |ep, now| ep.close(now, cc)).unwrap();
            client_closed = true;
        }
        if sc.is_none() {
            match net.with_endpoint(s, |ep, now| ep.accept(now, l)) {
                Ok(id) => sc = id,
                Err(e) => panic!("accept failed: {e}"),
            }
        }
        if let Some(id) = sc {
            if replied < reply.len() {
                match net.with_endpoint(s, |ep, now| ep.send(now, id, &reply[replied..])) {
                    Ok(n) => replied += n,
                    Err(e) => panic!("server send failed: {e}"),
                }
            }
            while !eof {
                match net.with_endpoint(s, |ep, now| ep.recv(now, id, &mut buf)) {
                    Ok(Some(0)) => eof = true,
                    Ok(Some(n)) => received.extend_from_slice(&buf[..n]),
                    Ok(None) => break,
                    Err(e) => panic!("server recv failed after {} bytes: {e}", received.len()),
                }
            }
            if eof && replied == reply.len() && !server_closed {
                net.with_endpoint(s, |ep, now| ep.close(now, id)).unwrap();
                server_closed = true;
            }
        }
        server_closed
            && net.conn_state(c, cc) == Some(State::Closed)
            && sc.is_some_and(|id| net.conn_state(s, id) == Some(State::Closed))
    });
    assert!(
        done,
        "connection did not finish within an hour of virtual time"
    );
    let t = net.trace().expect("Network::new records");
    let mut paths = t
        .conn_paths()
        .into_iter()
        .filter(|p| p.states[1] != State::Listen);
    let client_path = paths.next().map(|p| p.states).unwrap_or_default();
    let server_path = paths.next().map(|p| p.states).unwrap_or_default();
    let run = Run {
        received,
        response,
        client_path,
        server_path,
        transitions: t.transitions().collect(),
        corrupted: t
            .segments()
            .filter(|s| s.fate == tcpfsm_sim::Fate::Corrupted)
            .count(),
    };
    (data, reply, run)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn bytes_arrive_once_in_order_and_both_sides_close_under_impairments(
        seed in any::<u64>(),
        len in 1usize..150_000,
        back in 0usize..60_000,
        ab in params(),
        ba in params(),
    ) {
        let (data, reply, run) = transfer(seed, len, back, ab, ba);
        prop_assert_eq!(run.received.len(), data.len());
        prop_assert!(run.received == data, "payload differs");
        prop_assert_eq!(run.response.len(), reply.len());
        prop_assert!(run.response == reply, "response differs");
        for (from, to) in &run.transitions {
            prop_assert!(is_rfc_transition(*from, *to), "{} -> {}", from, to);
        }
        prop_assert_eq!(run.client_path.last(), Some(&State::Closed));
        prop_assert_eq!(run.server_path.last(), Some(&State::Closed));
        // The client closed first, so it is the one that held TIME_WAIT.
        prop_assert!(run.client_path.contains(&State::TimeWait), "{:?}", run.client_path);
        prop_assert!(!run.server_path.contains(&State::TimeWait), "{:?}", run.server_path);
    }
}

#[test]
fn corrupted_segments_are_rejected_and_repaired_by_retransmission() {
    let mut p = tcpfsm_sim::link::default_params();
    p.corrupt = 0.2;
    let (data, reply, run) = transfer(7, 50_000, 20_000, p, p);
    assert!(run.corrupted > 0, "the link corrupted nothing");
    assert!(run.received == data);
    assert!(run.response == reply);
}
