//! PAWS (issue 8, defect 9): RFC 7323 §5.3 — the timestamp check comes before the sequence
//! check, RSTs are exempt, and §5.5 — TS.Recent is invalid after 24 days of idleness, and
//! the segment that finds it so replaces it (rule R3).

mod common;
use common::*;
use tcpfsm_core::{Config, ConnError, Duration, Endpoint, Instant, RecvError, State};
use tcpfsm_wire::Flags;

const ACK: Flags = Flags::ACK;
const SYN: Flags = Flags::SYN;

/// A server without delayed ACKs, its peer offering timestamps and, with `sack`, SACK.
fn server_with_ts(sack: bool) -> Scripted {
    let cfg = Config {
        delayed_ack: None,
        ..Config::default()
    };
    Scripted::server(
        cfg,
        PeerOpts {
            ts: true,
            sack,
            ..PeerOpts::default()
        },
    )
}

fn ts_server() -> Scripted {
    server_with_ts(false)
}

/// A data segment from the peer at `seq` with TSval `tsval`.
fn at(s: &Scripted, seq: u32, tsval: u32, payload: &[u8]) -> Seg {
    let mut g = s.seg(ACK | Flags::PSH, seq, s.y, payload);
    g.options.timestamps.as_mut().unwrap().tsval = tsval;
    g
}

#[test]
fn paws_rejects_an_old_timestamp_before_the_sequence_check_rfc7323_5_3() {
    let mut s = ts_server();
    s.data(b"fresh");
    let recent = s.tsval();
    s.now += Duration::from_millis(5);
    // In window, old TSval: not acceptable (R1), ACKed and dropped.
    let stale = at(&s, s.p, recent - 100, b"stale");
    let out = s.inject(stale);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, s.p, "the stale bytes are not taken");
    assert_eq!(s.ep.stats()[tcpfsm_core::Counter::PAWSEstab], 1);
    // Out of window *and* old: PAWS decides first, so it is counted as PAWS, not sequence.
    s.now += Duration::from_secs(1);
    let both = at(&s, s.p.wrapping_add(1 << 30), recent - 100, b"x");
    s.inject(both);
    assert_eq!(s.ep.stats()[tcpfsm_core::Counter::PAWSEstab], 2);
    // Within the rate-limit interval the ACK is skipped, and counted as a PAWS skip.
    let again = at(&s, s.p, recent - 100, b"stale");
    assert!(s.inject(again).is_empty());
    assert_eq!(s.ep.stats()[tcpfsm_core::Counter::TCPACKSkippedPAWS], 1);
    assert_eq!(s.ep.stats()[tcpfsm_core::Counter::TCPACKSkippedSeq], 0);
    let (got, _) = s.read_all();
    assert_eq!(got, b"fresh");
}

#[test]
fn paws_lets_a_timestamp_one_tick_older_through_linux_tcp_paws_window() {
    let mut s = ts_server();
    s.data(b"first");
    let recent = s.tsval();
    s.now += Duration::from_millis(5);
    // Reordered behind a segment sent one clock tick later: TSval = TS.Recent - 1, accepted.
    let late = at(&s, s.p, recent - 1, b"late");
    s.inject(late);
    s.p = s.p.wrapping_add(4);
    assert_eq!(s.ep.stats()[tcpfsm_core::Counter::PAWSEstab], 0);
    // Two ticks older is old: rejected by PAWS.
    s.now += Duration::from_millis(5);
    let old = at(&s, s.p, recent - 2, b"old");
    s.inject(old);
    assert_eq!(s.ep.stats()[tcpfsm_core::Counter::PAWSEstab], 1);
    let (got, _) = s.read_all();
    assert_eq!(got, b"firstlate");
}

#[test]
fn rst_is_exempt_from_paws_rfc7323_5_3() {
    let mut s = ts_server();
    s.data(b"abc");
    let recent = s.tsval();
    let mut rst = s.seg(Flags::RST, s.p, 0, &[]);
    rst.options.timestamps.as_mut().unwrap().tsval = recent - 1000;
    s.inject(rst);
    assert_eq!(s.ep.state(s.conn), Some(State::Closed));
    let (got, last) = s.read_all();
    assert_eq!(got, b"abc");
    assert_eq!(last, Err(RecvError::Conn(ConnError::Reset)));
}

#[test]
fn paws_ts_recent_expires_after_24_days_idle_rfc7323_5_5() {
    let mut s = ts_server();
    s.data(b"day one");
    let recent = s.tsval();
    // 23 days idle: an older TSval is still refused.
    s.now += Duration::from_secs(23 * 24 * 3600);
    let old = at(&s, s.p, recent - 2, b"old"); // older than the one-tick PAWS window
    s.inject(old);
    assert_eq!(s.ep.stats()[tcpfsm_core::Counter::PAWSEstab], 1);
    // 25 days idle: the peer's millisecond clock has wrapped its sign bit, so its TSval now
    // compares as older than TS.Recent. TS.Recent is invalid: the segment is accepted.
    s.now += Duration::from_secs(2 * 24 * 3600);
    let wrapped = s.tsval();
    assert!(
        (wrapped.wrapping_sub(recent) as i32) < 0,
        "the test needs a TSval that compares as older"
    );
    s.data(b" and day twenty-five");
    assert_eq!(
        s.ep.stats()[tcpfsm_core::Counter::PAWSEstab],
        1,
        "accepted after 24 days idle"
    );
    let (got, _) = s.read_all();
    assert_eq!(got, b"day one and day twenty-five");
}

#[test]
fn paws_segment_accepted_after_24_days_becomes_ts_recent_rfc7323_5_5() {
    let mut s = ts_server();
    s.data(b"a");
    s.now += Duration::from_secs(25 * 24 * 3600);
    s.data(b"b");
    let fresh = s.tsval();
    // R3: the accepted segment's TSval is TS.Recent now, so a segment older than it is a
    // PAWS reject again — protection resumes.
    s.now += Duration::from_millis(10);
    let older = at(&s, s.p, fresh - 5, b"c");
    s.inject(older);
    assert_eq!(
        s.ep.stats()[tcpfsm_core::Counter::PAWSEstab],
        1,
        "TS.Recent was not replaced by the segment that found it invalid"
    );
    let (got, _) = s.read_all();
    assert_eq!(got, b"ab");
}

/// RFC 7323 §5.4: one TSval clock per connection. The passive side's SYN-ACK, its SYN-ACK
/// retransmission and the connection's later segments all read the same clock (offset plus
/// milliseconds), whether the offset was kept with the half-open entry or hashed again.
#[test]
fn a_passive_connection_keeps_the_synack_s_tsval_clock_rfc7323_5_4() {
    let mut ep = Endpoint::new(Config::default(), 9);
    let me = addr(B_IP, 80);
    let peer = addr(A_IP, 40_001);
    let t0 = Instant::from_micros(1_000_000);
    let l = ep.listen(t0, me, 16).unwrap();
    ep.handle_packet(t0, &with_ts(seg(peer, me, SYN, 100, 0), 1000, 0).bytes());
    let synack = drain(&mut ep, t0).remove(0);
    let ts0 = synack.options.timestamps.unwrap().tsval;
    // The SYN-ACK's retransmission, 1 s later (the initial RTO).
    let t1 = t0 + Duration::from_secs(1);
    ep.handle_timeout(t1);
    let again = drain(&mut ep, t1).remove(0);
    assert!(again.is(SYN | ACK));
    assert_eq!(
        again.options.timestamps.unwrap().tsval,
        ts0.wrapping_add(1000)
    );
    let t2 = t1 + Duration::from_millis(5);
    ep.handle_packet(
        t2,
        &with_ts(seg(peer, me, ACK, 101, synack.seq + 1), 1001, ts0).bytes(),
    );
    let c = ep.accept(t2, l).unwrap().unwrap();
    let t3 = t2 + Duration::from_millis(7);
    ep.send(t3, c, b"x").unwrap();
    let data = drain(&mut ep, t3).remove(0);
    assert_eq!(data.payload, b"x");
    assert_eq!(
        data.options.timestamps.unwrap().tsval,
        ts0.wrapping_add(1012)
    );
}

fn ts_sack_server() -> Scripted {
    server_with_ts(true)
}

/// A segment PAWS rejects is an old duplicate (RFC 7323 §5.3 R1): none of its text is
/// taken, even the part beyond RCV.NXT, which an earlier incarnation's or a stale copy's
/// bytes would otherwise put into the stream. The part below RCV.NXT is reported as a D-SACK
/// (RFC 2883 §4), clipped at RCV.NXT as Linux's `tcp_send_dupack` clips it. Found by the
/// `endpoint` fuzz target: the tail beyond RCV.NXT was accepted.
#[test]
fn a_paws_rejected_segment_adds_none_of_its_text_rfc7323_5_3() {
    let mut s = ts_sack_server();
    s.data(b"fresh");
    let recent = s.tsval();
    s.now += Duration::from_millis(5);
    let nxt = s.p;
    // Three old bytes below RCV.NXT and three beyond it, with an old TSval.
    let stale = at(&s, nxt.wrapping_sub(3), recent - 100, b"shXYZW");
    let out = s.inject(stale);
    assert_eq!(out.len(), 1, "one duplicate ACK: {out:?}");
    assert_eq!(
        out[0].ack, nxt,
        "RCV.NXT did not move: the stale tail is not taken"
    );
    let dsack = out[0].options.sack_blocks[0].expect("a D-SACK block");
    assert_eq!(
        (dsack.left.0, dsack.right.0),
        (nxt.wrapping_sub(3), nxt),
        "the D-SACK covers only the duplicate part, below RCV.NXT"
    );
    assert_eq!(s.ep.stats()[tcpfsm_core::Counter::PAWSEstab], 1);
    // The real bytes at RCV.NXT follow, and the stream is exactly what the peer sent.
    s.now += Duration::from_millis(5);
    s.data(b"next");
    let (got, _) = s.read_all();
    assert_eq!(got, b"freshnext");
}

/// After the peer's FIN, RFC 9293 §3.10.7.4 (seventh, CLOSE-WAIT): "ignore the segment text".
/// A segment overlapping the FIN, stale or fresh, adds nothing after end of stream.
#[test]
fn text_after_the_peer_fin_is_ignored_in_close_wait_rfc9293_3_10_7_4() {
    for stale in [true, false] {
        let mut s = ts_sack_server();
        s.data(b"abc");
        let fin = s.seg(ACK | Flags::FIN, s.p, s.y, &[]);
        s.inject(fin);
        s.p = s.p.wrapping_add(1);
        assert_eq!(s.ep.state(s.conn), Some(State::CloseWait));
        let recent = s.tsval();
        s.now += Duration::from_millis(5);
        let tsval = if stale { recent - 100 } else { s.tsval() };
        // From two bytes below the FIN to four beyond it.
        let late = at(&s, s.p.wrapping_sub(3), tsval, b"bcXYZW");
        let out = s.inject(late);
        assert!(
            out.iter().all(|o| o.ack == s.p),
            "stale={stale}: RCV.NXT stays just past the FIN: {out:?}"
        );
        let (got, last) = s.read_all();
        assert_eq!(got, b"abc", "stale={stale}: nothing after the FIN is read");
        assert_eq!(last, Ok(Some(0)), "stale={stale}: end of stream");
    }
}
