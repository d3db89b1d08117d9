//! Each built-in scenario, run on our TCP in the simulator: the exact state path of every
//! connection and the segments that make the scenario what it is.

use tcpfsm_sim::trace::{AppRec, NoteKind, SegmentRec, StateRec};
use tcpfsm_sim::{is_rfc_transition, run_builtin, Fate, Trace};
use tcpfsm_states::State::{self, *};

fn run(name: &str) -> Trace {
    let out = run_builtin(name, Some(1))
        .expect("built-in exists")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.passed(),
        "{name}: the scenario's own expectations failed: {:?}",
        out.failures
    );
    out.trace
}

fn host(t: &Trace, name: &str) -> usize {
    t.host_index(name).expect("host exists")
}

/// Segments sent by `from` whose flags (ignoring PSH) are exactly `kind`.
fn segs<'a>(t: &'a Trace, from: &str, kind: &str) -> Vec<&'a SegmentRec> {
    let h = host(t, from);
    t.segments()
        .filter(|s| s.src_host == Some(h) && s.kind() == kind)
        .collect()
}

fn app<'a>(t: &'a Trace, sock: &str, call: &str) -> Vec<&'a AppRec> {
    t.apps()
        .filter(|a| a.sock == sock && a.call == call)
        .collect()
}

/// When a host's connection (by index among its non-listener connections) entered `state`.
fn entered(t: &Trace, h: &str, conn: usize, state: State) -> u64 {
    let hi = host(t, h);
    let paths = t.conn_paths();
    let p = paths
        .iter()
        .filter(|p| p.host == hi && p.states.get(1) != Some(&Listen))
        .nth(conn)
        .expect("connection exists");
    t.states()
        .find(|s: &&StateRec| s.host == hi && s.id == p.id && s.conn == p.conn && s.to == state)
        .unwrap_or_else(|| panic!("{h} conn {conn} never entered {state}"))
        .t_us
}

const SEC: u64 = 1_000_000;

#[test]
fn every_builtin_meets_its_expectations_and_stays_on_the_rfc_graph() {
    for b in tcpfsm_sim::builtins() {
        let t = run(b.name);
        for (from, to) in t.transitions() {
            assert!(
                is_rfc_transition(from, to),
                "{}: {from} -> {to} is not an RFC 9293 transition",
                b.name
            );
        }
        assert!(t.segments().count() > 0, "{} sent nothing", b.name);
        // Other seeds change ISNs and ports, never the story.
        for seed in 2..=8 {
            let out = b.run(Some(seed)).unwrap();
            assert!(out.passed(), "{} seed {seed}: {:?}", b.name, out.failures);
        }
    }
}

#[test]
fn handshake_is_syn_synack_ack() {
    let t = run("handshake");
    assert_eq!(
        t.paths_of("client"),
        vec![vec![Closed, SynSent, Established]]
    );
    assert_eq!(
        t.paths_of("server"),
        vec![vec![Listen, SynReceived, Established]]
    );
    let kinds: Vec<(String, Option<usize>)> = t
        .segments()
        .take(3)
        .map(|s| (s.kind(), s.src_host))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("SYN".to_string(), Some(0)),
            ("SYN,ACK".to_string(), Some(1)),
            ("ACK".to_string(), Some(0)),
        ]
    );
    assert!(t.segments().all(|s| s.fate == Fate::Delivered));
}

#[test]
fn client_close_active_closer_holds_time_wait_for_two_msl() {
    let t = run("client-close");
    assert_eq!(
        t.paths_of("client"),
        vec![vec![
            Closed,
            SynSent,
            Established,
            FinWait1,
            FinWait2,
            TimeWait,
            Closed
        ]]
    );
    assert_eq!(
        t.paths_of("server"),
        vec![vec![
            Listen,
            SynReceived,
            Established,
            CloseWait,
            LastAck,
            Closed
        ]]
    );
    // The client's FIN goes first; data went both ways before it.
    let cfin = segs(&t, "client", "FIN,ACK")[0].t_us;
    let sfin = segs(&t, "server", "FIN,ACK")[0].t_us;
    assert!(cfin < sfin);
    assert!(segs(&t, "server", "ACK")
        .iter()
        .any(|s| s.len == 13 && s.t_us < cfin));
    // TIME_WAIT lasts 2×MSL (MSL 30 s by default).
    let tw = entered(&t, "client", 0, TimeWait);
    let closed = t
        .states()
        .filter(|s| s.host == 0 && s.from == TimeWait)
        .map(|s| s.t_us)
        .next()
        .unwrap();
    assert_eq!(closed - tw, 60 * SEC);
}

#[test]
fn server_close_server_holds_time_wait() {
    let t = run("server-close");
    assert_eq!(
        t.paths_of("server"),
        vec![vec![
            Listen,
            SynReceived,
            Established,
            FinWait1,
            FinWait2,
            TimeWait,
            Closed
        ]]
    );
    assert_eq!(
        t.paths_of("client"),
        vec![vec![
            Closed,
            SynSent,
            Established,
            CloseWait,
            LastAck,
            Closed
        ]]
    );
    assert!(segs(&t, "server", "FIN,ACK")[0].t_us < segs(&t, "client", "FIN,ACK")[0].t_us);
    assert_eq!(app(&t, "c", "recv")[0].result, "eof");
}

#[test]
fn simultaneous_open_both_pass_syn_received() {
    let t = run("simultaneous-open");
    let path = vec![vec![Closed, SynSent, SynReceived, Established]];
    assert_eq!(t.paths_of("alice"), path);
    assert_eq!(t.paths_of("bob"), path);
    // Two bare SYNs cross, then each side answers with SYN,ACK.
    assert_eq!(segs(&t, "alice", "SYN").len(), 1);
    assert_eq!(segs(&t, "bob", "SYN").len(), 1);
    assert_eq!(segs(&t, "alice", "SYN,ACK").len(), 1);
    assert_eq!(segs(&t, "bob", "SYN,ACK").len(), 1);
    assert_eq!(
        segs(&t, "alice", "SYN")[0].t_us,
        segs(&t, "bob", "SYN")[0].t_us
    );
}

#[test]
fn simultaneous_open_matches_rfc_9293_figure_8() {
    let t = run("simultaneous-open");
    // Figure 8, lines 2–7: the SYNs cross (each side SYN_RECEIVED), then the SYN-ACKs cross
    // and each one completes the side it reaches. No challenge ACK answers a SYN-ACK (each
    // side may acknowledge the other's SYN-ACK with a plain ACK once ESTABLISHED).
    for (me, peer) in [("alice", "bob"), ("bob", "alice")] {
        let h = host(&t, me);
        let mine: Vec<&SegmentRec> = t.segments().filter(|s| s.src_host == Some(h)).collect();
        let sent: Vec<String> = mine.iter().map(|s| s.kind()).collect();
        assert_eq!(sent[..2], ["SYN", "SYN,ACK"], "{me} sent {sent:?}");
        assert!(sent[2..].iter().all(|k| k == "ACK"), "{me} sent {sent:?}");
        assert!(
            mine.iter().all(|s| !s
                .analysis
                .has(tcpfsm_sim::analysis::Analysis::CHALLENGE_ACK)),
            "{me} sent a challenge ACK"
        );
        let syn = segs(&t, me, "SYN")[0];
        let synack = segs(&t, me, "SYN,ACK")[0];
        let peer_syn = segs(&t, peer, "SYN")[0];
        // <SEQ=100><ACK=301><CTL=SYN,ACK>: our ISN again, acknowledging the peer's SYN.
        assert_eq!(synack.seq, syn.seq);
        assert_eq!(synack.ack, peer_syn.seq.wrapping_add(1));
        assert_eq!(entered(&t, me, 0, SynReceived), 10_000);
        assert_eq!(entered(&t, me, 0, Established), 20_000, "{me}");
    }
    let causes: Vec<&str> = t.states().map(|s| s.cause.as_str()).collect();
    assert_eq!(
        causes,
        [
            "active open",
            "active open",
            "simultaneous open",
            "simultaneous open",
            "SYN acked",
            "SYN acked"
        ]
    );
}

#[test]
fn simultaneous_close_both_pass_closing_to_time_wait() {
    let t = run("simultaneous-close");
    assert_eq!(
        t.paths_of("client"),
        vec![vec![
            Closed,
            SynSent,
            Established,
            FinWait1,
            Closing,
            TimeWait,
            Closed
        ]]
    );
    assert_eq!(
        t.paths_of("server"),
        vec![vec![
            Listen,
            SynReceived,
            Established,
            FinWait1,
            Closing,
            TimeWait,
            Closed
        ]]
    );
    assert_eq!(
        segs(&t, "client", "FIN,ACK")[0].t_us,
        segs(&t, "server", "FIN,ACK")[0].t_us,
        "the FINs leave at the same instant"
    );
}

#[test]
fn lost_final_ack_last_ack_retransmits_fin_and_time_wait_reacks() {
    let t = run("lost-final-ack");
    assert_eq!(
        t.paths_of("client"),
        vec![vec![
            Closed,
            SynSent,
            Established,
            FinWait1,
            FinWait2,
            TimeWait,
            Closed
        ]]
    );
    assert_eq!(
        t.paths_of("server"),
        vec![vec![
            Listen,
            SynReceived,
            Established,
            CloseWait,
            LastAck,
            Closed
        ]]
    );
    let dropped: Vec<_> = t.segments().filter(|s| s.fate == Fate::Dropped).collect();
    assert_eq!(dropped.len(), 1);
    assert_eq!(
        (dropped[0].kind().as_str(), dropped[0].src_host),
        ("ACK", Some(0))
    );
    assert_eq!(dropped[0].why, Some("rule"));
    // LAST_ACK retransmits the same FIN; TIME_WAIT acknowledges it again.
    let fins = segs(&t, "server", "FIN,ACK");
    assert_eq!(fins.len(), 2);
    assert_eq!(fins[0].seq, fins[1].seq);
    let reack = segs(&t, "client", "ACK")
        .into_iter()
        .find(|s| s.t_us > fins[1].t_us)
        .expect("TIME_WAIT re-acknowledges the retransmitted FIN");
    assert_eq!(reack.ack, fins[1].seq.wrapping_add(1));
    assert_eq!(reack.fate, Fate::Delivered);
    assert!(entered(&t, "server", 0, Closed) > reack.t_us);
}

#[test]
fn abort_sends_rst_skips_time_wait_and_peer_sees_reset() {
    let t = run("abort");
    assert_eq!(
        t.paths_of("client"),
        vec![vec![Closed, SynSent, Established, Closed]]
    );
    assert_eq!(
        t.paths_of("server"),
        vec![vec![Listen, SynReceived, Established, Closed]]
    );
    let causes: Vec<&str> = t
        .states()
        .filter(|s| s.to == Closed)
        .map(|s| s.cause.as_str())
        .collect();
    assert_eq!(causes, vec!["app abort (RST sent)", "RST received"]);
    let rst = segs(&t, "client", "RST");
    assert!(!rst.is_empty());
    // Unsent data is discarded: far fewer than the 100000 bytes queued ever left.
    let sent: usize = t
        .segments()
        .filter(|s| s.src_host == Some(0) && s.t_us <= rst[0].t_us)
        .map(|s| s.len)
        .sum();
    assert!(sent < 100_000 / 2, "{sent} bytes were sent before the RST");
    assert_eq!(app(&t, "c", "send")[0].bytes, Some(100_000));
    assert_eq!(app(&t, "s", "recv")[0].result, "connection reset");
}

#[test]
fn abort_peer_reads_what_arrived_before_the_rst() {
    let t = run("abort");
    // Every byte that reached the server before the RST (sent before it on a FIFO link) is
    // read; then the reset is reported.
    let before: u64 = t
        .segments()
        .take_while(|s| !s.has_flag("RST"))
        .filter(|s| s.src_host == Some(0) && s.len > 0 && s.fate != Fate::Dropped)
        .map(|s| s.len as u64)
        .sum();
    assert!(before > 0, "no data reached the server before the RST");
    let recv = app(&t, "s", "recv");
    assert_eq!(recv.len(), 1);
    assert_eq!(recv[0].result, "connection reset");
    assert_eq!(recv[0].bytes, Some(before));
    assert!(recv[0]
        .text
        .as_deref()
        .is_some_and(|x| x.starts_with("abcdef")));
}

#[test]
fn half_close_server_responds_after_fin() {
    let t = run("half-close");
    assert_eq!(
        t.paths_of("client"),
        vec![vec![
            Closed,
            SynSent,
            Established,
            FinWait1,
            FinWait2,
            TimeWait,
            Closed
        ]]
    );
    assert_eq!(
        t.paths_of("server"),
        vec![vec![
            Listen,
            SynReceived,
            Established,
            CloseWait,
            LastAck,
            Closed
        ]]
    );
    let cfin = segs(&t, "client", "FIN,ACK")[0].t_us;
    let response = t
        .segments()
        .find(|s| s.src_host == Some(1) && s.len == 6)
        .expect("server response");
    assert!(
        response.t_us > cfin,
        "the response comes after the client's FIN"
    );
    assert_eq!(app(&t, "s", "recv")[0].result, "eof");
    assert_eq!(
        app(&t, "s", "recv")[0].text.as_deref(),
        Some("SELECT * FROM t")
    );
    let crecv = app(&t, "c", "recv");
    assert_eq!(crecv[0].text.as_deref(), Some("3 rows"));
    assert_eq!(crecv[1].result, "eof");
}

#[test]
fn refused_connect_gets_rst_and_connection_refused() {
    let t = run("refused");
    assert_eq!(t.paths_of("client"), vec![vec![Closed, SynSent, Closed]]);
    assert!(t.paths_of("server").is_empty());
    let rst = segs(&t, "server", "RST,ACK");
    assert_eq!(rst.len(), 1);
    let syn = segs(&t, "client", "SYN")[0];
    assert_eq!(rst[0].ack, syn.seq.wrapping_add(1));
    assert_eq!(app(&t, "c", "connect")[0].result, "connection refused");
    // The blocking connect returns the error; no separate "closed" notice repeats it.
    assert_eq!(t.apps().filter(|a| a.sock == "c").count(), 1);
}

#[test]
fn syn_retry_backs_off_exponentially_then_succeeds_or_gives_up() {
    let t = run("syn-retry");
    assert_eq!(
        t.paths_of("client"),
        vec![
            vec![Closed, SynSent, Established],
            vec![Closed, SynSent, Closed]
        ]
    );
    let syns = segs(&t, "client", "SYN");
    assert_eq!(syns.len(), 8);
    let gaps = |s: &[&SegmentRec]| -> Vec<u64> {
        s.windows(2)
            .map(|w| (w[1].t_us - w[0].t_us) / 1000)
            .collect()
    };
    // RTO 1 s, doubled at each retransmission (RFC 6298 §5.5).
    assert_eq!(gaps(&syns[..4]), vec![1000, 2000, 4000]);
    assert_eq!(gaps(&syns[4..]), vec![1000, 2000, 4000]);
    assert_eq!(
        syns.iter().map(|s| s.fate).collect::<Vec<_>>(),
        [
            [Fate::Dropped; 3].as_slice(),
            &[Fate::Delivered],
            &[Fate::Dropped; 4]
        ]
        .concat()
    );
    // syn_retries 3: the give-up comes 8 s after the last SYN.
    let gave_up = entered(&t, "client", 1, Closed);
    assert_eq!((gave_up - syns[7].t_us) / 1000, 8000);
    assert_eq!(app(&t, "c2", "connect")[0].result, "timed out");
}

#[test]
fn close_wait_leak_stays_in_close_wait_and_orphan_fin_wait_2_times_out() {
    let t = run("close-wait-leak");
    let server = vec![Listen, SynReceived, Established, CloseWait];
    assert_eq!(
        t.paths_of("server"),
        vec![server.clone(), server.clone(), server]
    );
    let client = vec![Closed, SynSent, Established, FinWait1, FinWait2, Closed];
    assert_eq!(
        t.paths_of("client"),
        vec![client.clone(), client.clone(), client]
    );
    for i in 0..3 {
        let fw2 = entered(&t, "client", i, FinWait2);
        let gone = entered(&t, "client", i, Closed);
        assert_eq!(
            (gone - fw2) / SEC,
            60,
            "fin_timeout bounds the orphaned FIN_WAIT_2"
        );
    }
    assert!(t
        .states()
        .filter(|s| s.to == Closed && s.host == 0)
        .all(|s| s.cause == "FIN_WAIT_2 timeout"));
    // The server never sends a FIN.
    assert!(t
        .segments()
        .all(|s| !(s.src_host == Some(1) && s.has_flag("FIN"))));
    let diag: Vec<_> = t
        .notes()
        .filter_map(|n| match &n.kind {
            NoteKind::Diagnosis { rule, severity, .. } => {
                Some((rule.as_str(), severity.as_str(), &n.text))
            }
            _ => None,
        })
        .collect();
    assert!(
        diag.iter().any(|(r, s, text)| *r == "close_wait_leak"
            && *s != "ok"
            && text.contains("3 CLOSE_WAIT")),
        "the diagnosis names the leak: {diag:?}"
    );
}

#[test]
fn syn_flood_fills_syn_queue_and_cookies_let_the_real_client_in() {
    let t = run("syn-flood");
    let half_open = vec![Listen, SynReceived];
    let plain = t.paths_of("plain");
    assert_eq!(
        plain.len(),
        16,
        "the SYN queue holds max_syn_backlog entries"
    );
    assert!(plain.iter().all(|p| *p == half_open));
    let cookie = t.paths_of("cookie");
    assert_eq!(cookie.len(), 17);
    assert!(cookie[..16].iter().all(|p| *p == half_open));
    assert_eq!(cookie[16], vec![Listen, SynReceived, Established]);
    assert!(t
        .states()
        .any(|s| s.host == 2 && s.cause == "SYN cookie acked"));
    assert_eq!(
        t.paths_of("client"),
        vec![
            vec![Closed, SynSent, Closed],
            vec![Closed, SynSent, Established]
        ]
    );
    assert_eq!(app(&t, "c1", "connect")[0].result, "timed out");
    assert_eq!(app(&t, "c2", "connect")[0].result, "established");
    // 240 spoofed SYNs; the SYN-ACKs sent back to the made-up sources go nowhere.
    assert_eq!(t.segments().filter(|s| s.injected).count(), 240);
    assert!(segs(&t, "plain", "SYN,ACK")
        .iter()
        .all(|s| s.fate == Fate::Dropped && s.why == Some("no route")));
    // Without cookies the real client's SYNs got no answer at all.
    let plain_ip = "10.0.0.2".parse::<std::net::IpAddr>().unwrap();
    assert!(segs(&t, "plain", "SYN,ACK")
        .iter()
        .all(|s| s.dst.ip() != "10.0.0.1".parse::<std::net::IpAddr>().unwrap()));
    assert_eq!(
        segs(&t, "client", "SYN")
            .iter()
            .filter(|s| s.dst.ip() == plain_ip)
            .count(),
        4
    );
}

#[test]
fn time_wait_exhaustion_fails_with_address_not_available_until_tw_reuse() {
    let t = run("time-wait-exhaustion");
    let client = t.paths_of("client");
    assert_eq!(client.len(), 16);
    assert!(client
        .iter()
        .all(|p| *p == vec![Closed, SynSent, Established, FinWait1, FinWait2, TimeWait]));
    assert_eq!(app(&t, "c16", "connect")[0].result, "address not available");
    assert!(app(&t, "c16", "connect")[0].conn.is_none());
    assert!(
        t.notes().any(
            |n| matches!(&n.kind, NoteKind::Diagnosis { rule, severity, .. }
            if rule == "time_wait_pressure" && severity == "critical")
                && n.text.contains("100.0% of ephemeral ports")
        ),
        "the diagnosis names the exhausted port range"
    );
    // The reuser keeps going past 16 connections by taking over old TIME_WAITs.
    let reuser = t.paths_of("reuser");
    assert_eq!(reuser.len(), 24);
    assert!(reuser
        .iter()
        .all(|p| p[..6] == [Closed, SynSent, Established, FinWait1, FinWait2, TimeWait]));
    let reused = t
        .states()
        .filter(|s| s.host == 2 && s.cause == "TIME_WAIT reused (tw_reuse)")
        .count();
    assert_eq!(reused, 8);
    assert!(app(&t, "r23", "connect")[0].ok);
    // The passive side never holds TIME_WAIT.
    assert!(t
        .paths_of("server")
        .iter()
        .all(|p| *p == vec![Listen, SynReceived, Established, CloseWait, LastAck, Closed]));
}
