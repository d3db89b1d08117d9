//! The simulated network under scripts: IPv6 hosts, drop rules (exact, containing, nth,
//! count), per-link impairments, the virtual clock.

use tcpfsm_sim::{run_source, Fate, Trace};
use tcpfsm_states::State::*;

fn run(src: &str) -> Trace {
    let out = run_source("t.tcpfsm", src, Some(3)).unwrap_or_else(|e| panic!("{e}"));
    assert!(out.passed(), "{:?}", out.failures);
    out.trace
}

const ECHO: &str = "server listen 80 as l\nclient connect server:80 as c\nserver accept l as s\n";

#[test]
fn ipv6_hosts_handshake_and_close() {
    let t = run(&format!(
        "host client fd00::1\nhost server fd00::2\n{ECHO}\
         client send c \"hi\"\nserver recv s 2\nclient close c\nserver recv-until-eof s\nserver close s\n\
         wait until c CLOSED and s CLOSED\n"
    ));
    assert_eq!(t.paths_of("client")[0].last(), Some(&Closed));
    let first = t.segments().next().unwrap();
    assert!(first.src.is_ipv6() && first.dst.is_ipv6());
    assert!(t.states().any(|s| s.conn.starts_with("[fd00::1]:")));
}

#[test]
fn a_host_with_two_families_connects_with_the_matching_one() {
    let t = run(&format!(
        "host client 10.0.0.1 fd00::1\nhost server fd00::2\n{ECHO}expect c ESTABLISHED\n"
    ));
    assert!(t.segments().all(|s| s.src.is_ipv6()));
}

#[test]
fn drop_nth_lets_earlier_matches_through() {
    // Pure ACKs from the client after the rule: the ACK of "one" is the 1st, of "two" the 2nd.
    let t = run(&format!(
        "host client 10.0.0.1\nhost server 10.0.0.2\nset client delayed_ack off\n{ECHO}\
         drop nth 2 ACK from client\n\
         server send s \"one\"\nclient recv c 3\nserver send s \"two\"\nclient recv c 3\nwait 5s\n"
    ));
    let acks: Vec<_> = t
        .segments()
        .filter(|s| s.src_host == Some(0) && s.kind() == "ACK" && s.len == 0)
        .collect();
    assert!(
        acks.len() >= 4,
        "handshake ACK, ACK of one, ACK of two, its retransmission's"
    );
    assert_eq!(acks[0].fate, Fate::Delivered, "before the rule");
    assert_eq!(acks[1].fate, Fate::Delivered, "1st match is let through");
    assert_eq!(acks[2].fate, Fate::Dropped, "2nd match is dropped");
    assert_eq!(acks[2].why, Some("rule"));
    assert!(acks[3..].iter().all(|s| s.fate == Fate::Delivered));
}

#[test]
fn drop_with_flags_matches_containing_and_counts() {
    let t = run(&format!(
        "host client 10.0.0.1\nhost server 10.0.0.2\n{ECHO}\
         drop 2 with FIN from client\nclient close c\nserver recv-until-eof s timeout 30s\n\
         server close s\nwait until c CLOSED timeout 5m\n"
    ));
    let fins: Vec<_> = t
        .segments()
        .filter(|s| s.src_host == Some(0) && s.has_flag("FIN"))
        .collect();
    assert_eq!(fins.len(), 3, "two FINs dropped, the third gets through");
    assert_eq!(
        fins.iter().map(|s| s.fate).collect::<Vec<_>>(),
        vec![Fate::Dropped, Fate::Dropped, Fate::Delivered]
    );
    assert_eq!(fins[0].seq, fins[2].seq, "a retransmission of the same FIN");
}

#[test]
fn drop_rule_can_name_the_receiver() {
    let t = run("host client 10.0.0.1\nhost a 10.0.0.2\nhost b 10.0.0.3\n\
         a listen 80 as la\nb listen 80 as lb\ndrop any from client to b\n\
         client connect a:80 as ca\nclient connect b:80 as cb\nexpect cb ESTABLISHED\n");
    let to_b: Vec<_> = t.segments().filter(|s| s.dst_host == Some(2)).collect();
    assert_eq!(to_b[0].fate, Fate::Dropped);
    assert!(t
        .segments()
        .filter(|s| s.dst_host == Some(1))
        .all(|s| s.fate == Fate::Delivered));
}

#[test]
fn link_delay_sets_arrival_time_and_the_clock_jumps() {
    let t = run(&format!(
        "host client 10.0.0.1\nhost server 10.0.0.2\nlink client -> server delay 25ms\n\
         link server -> client delay 5ms\n{ECHO}wait 10m\n"
    ));
    let syn = t.segments().next().unwrap();
    assert_eq!(syn.arrive_us, Some(syn.t_us + 25_000));
    let synack = t.segments().nth(1).unwrap();
    assert_eq!(synack.t_us, 25_000);
    assert_eq!(synack.arrive_us, Some(30_000));
}

#[test]
fn mid_run_link_change_makes_a_link_lossy() {
    let t = run(&format!(
        "host client 10.0.0.1\nhost server 10.0.0.2\n{ECHO}\
         link client -> server loss 100%\nclient send c \"lost\"\nwait 500ms\n\
         link client -> server loss 0\nserver recv s 4 timeout 30s\n"
    ));
    let data: Vec<_> = t.segments().filter(|s| s.len == 4).collect();
    assert_eq!(data[0].fate, Fate::Dropped);
    assert_eq!(data[0].why, Some("loss"));
    assert_eq!(data.last().unwrap().fate, Fate::Delivered);
}

#[test]
fn duplicated_and_corrupted_segments_are_recorded_and_survived() {
    let t = run(&format!(
        "host client 10.0.0.1\nhost server 10.0.0.2\n{ECHO}\
         link client -> server dup 30% corrupt 20%\n\
         client send c 40000 bytes\nserver recv s 40000 timeout 5m\n"
    ));
    assert!(t.segments().any(|s| s.fate == Fate::Duplicated));
    assert!(t.segments().any(|s| s.fate == Fate::Corrupted));
}

#[test]
fn wait_until_closed_and_error_follow_the_endpoints_notices() {
    let t = run(&format!(
        "host client 10.0.0.1\nhost server 10.0.0.2\n{ECHO}\
         client abort c\nwait until s error timeout 1s\nexpect s closed\nexpect s result \"connection reset\"\n\
         client connect server:81 as r nowait\nwait until r error timeout 5s\nexpect r result \"connection refused\"\n"
    ));
    assert!(t
        .apps()
        .any(|a| a.sock == "s" && a.call == "closed" && a.result == "connection reset"));
}

#[test]
fn an_idle_extra_host_does_not_change_other_links_fates() {
    let body = "link a <-> b delay 15ms jitter 5ms loss 20% dup 10% reorder 10%\n\
                b listen 80 as l\na connect b:80 as c\nb accept l as s\n\
                a send c 30000 bytes\nb recv s 30000 timeout 5m\n";
    let two = run(&format!("host a 10.0.0.1\nhost b 10.0.0.2\n{body}"));
    let three = run(&format!(
        "host a 10.0.0.1\nhost b 10.0.0.2\nhost c 10.0.0.3\nlink c <-> b loss 50%\n{body}"
    ));
    let fates = |t: &Trace| {
        t.segments()
            .map(|s| (s.t_us, s.seq, s.fate))
            .collect::<Vec<_>>()
    };
    assert_eq!(fates(&two), fates(&three));
    assert!(fates(&two).iter().any(|f| f.2 == Fate::Dropped));
}

#[test]
fn wait_until_eof_sees_the_peers_fin_before_any_read() {
    let t = run(&format!(
        "host client 10.0.0.1\nhost server 10.0.0.2\n{ECHO}\
         client send c \"bye\"\nclient shutdown c\nwait until s eof timeout 1s\nexpect s CLOSE_WAIT\n\
         server recv-until-eof s\nexpect s result \"eof\"\n"
    ));
    assert_eq!(
        t.apps()
            .filter(|a| a.sock == "s" && a.call == "recv")
            .count(),
        1
    );
}

#[test]
fn a_lost_segment_is_fast_retransmitted_on_duplicate_acks() {
    // RFC 5681 §3.2: the third duplicate ACK (same ack, same window) triggers a retransmission
    // well before the 200 ms minimum RTO.
    let t = run(&format!(
        "host client 10.0.0.1\nhost server 10.0.0.2\n{ECHO}wait until quiet\n\
         drop next ACK from client\nclient send c 10000 bytes\nserver recv s 10000 timeout 30s\n"
    ));
    let lost = t.segments().find(|s| s.fate == Fate::Dropped).unwrap();
    let resent = t
        .segments()
        .find(|s| s.src_host == Some(0) && s.seq == lost.seq && s.len > 0 && s.t_us > lost.t_us)
        .expect("retransmitted");
    assert!(
        resent.t_us - lost.t_us < 100_000,
        "{} µs later",
        resent.t_us - lost.t_us
    );
    let dups: Vec<_> = t
        .segments()
        .filter(|s| s.src_host == Some(1) && s.ack == lost.seq && s.len == 0 && s.t_us > lost.t_us)
        .collect();
    assert!(dups.len() >= 3);
    assert!(
        dups.iter().all(|d| d.window == dups[0].window),
        "the receiver never shrinks its window"
    );
}

#[test]
fn a_send_larger_than_the_buffers_completes_while_the_receiver_reads() {
    // 2 MB is far more than the 256 KB send and receive buffers: the writer keeps going in the
    // background while the script moves on to the reader.
    let t = run(&format!(
        "host client 10.0.0.1\nhost server 10.0.0.2\n{ECHO}\
         client send c 2000000 bytes\nserver recv s 2000000 timeout 10m\n"
    ));
    let send = t.apps().find(|a| a.call == "send").unwrap();
    assert!(send.ok && send.bytes == Some(2_000_000), "{send:?}");
    let recv = t.apps().find(|a| a.call == "recv").unwrap();
    assert_eq!(recv.bytes, Some(2_000_000));
    assert!(
        send.t_us > 30_000,
        "the send finished later than it was called"
    );
    let payload: usize = t
        .segments()
        .filter(|s| s.src_host == Some(0) && s.fate != Fate::Dropped)
        .map(|s| s.len)
        .sum();
    assert!(payload >= 2_000_000);
}

#[test]
fn close_happens_behind_pending_writes_and_abort_discards_them() {
    let t = run(&format!(
        "host client 10.0.0.1\nhost server 10.0.0.2\n{ECHO}\
         client send c 1000000 bytes\nclient close c\nserver recv-until-eof s timeout 10m\n\
         expect s result \"eof\"\n"
    ));
    let recv = t
        .apps()
        .find(|a| a.sock == "s" && a.call == "recv")
        .unwrap();
    assert_eq!(recv.bytes, Some(1_000_000), "every byte before the FIN");
    let close = t.apps().find(|a| a.call == "close").unwrap();
    let send = t.apps().find(|a| a.call == "send").unwrap();
    assert!(close.t_us >= send.t_us);

    let t = run(&format!(
        "host client 10.0.0.1\nhost server 10.0.0.2\n{ECHO}\
         client send c 1000000 bytes\nclient abort c\nwait until s error timeout 1s\n"
    ));
    let send = t.apps().find(|a| a.call == "send").unwrap();
    assert!(!send.ok);
    assert_eq!(send.result, "aborted");
    assert!(send.bytes.unwrap() < 1_000_000);
}

/// RFC 5961 §4: a SYN on an established connection's 4-tuple is answered with a challenge
/// ACK; the trace marks it as such (only the sender can tell), and the SYN-cookie SYN-ACKs
/// of a flood likewise.
#[test]
fn a_syn_on_an_established_tuple_draws_a_challenge_ack_marked_in_the_trace() {
    use std::net::SocketAddr;
    use tcpfsm_core::{Config, Duration, Instant};
    use tcpfsm_sim::analysis::Analysis;
    use tcpfsm_sim::Network;

    let mut net = Network::new(5);
    let c = net.add_host(
        "client",
        vec!["10.0.0.1".parse().unwrap()],
        Config::default(),
    );
    let s = net.add_host(
        "server",
        vec!["10.0.0.2".parse().unwrap()],
        Config::default(),
    );
    net.begin("challenge");
    let srv: SocketAddr = "10.0.0.2:80".parse().unwrap();
    let cli: SocketAddr = "10.0.0.1:5000".parse().unwrap();
    net.with_endpoint(s, |ep, now| ep.listen(now, srv, 16))
        .unwrap();
    net.with_endpoint(c, |ep, now| ep.connect(now, cli, srv))
        .unwrap();
    net.run_until(Instant::ZERO + Duration::from_secs(1));
    // A SYN with the client's 4-tuple, in the server's receive window (RFC 5961 §4.2), as an
    // attacker guessing the tuple would send it.
    let client_isn = net.trace().unwrap().segments().next().unwrap().seq;
    let mut syn = tcpfsm_wire::TcpRepr {
        src_port: cli.port(),
        dst_port: srv.port(),
        seq: tcpfsm_wire::SeqNum(client_isn.wrapping_add(100)),
        flags: tcpfsm_wire::Flags::SYN,
        window: 64240,
        ..Default::default()
    };
    syn.options.mss = Some(1460);
    let mut bytes = Vec::new();
    tcpfsm_wire::emit_ip_tcp(cli.ip(), srv.ip(), &syn, &mut bytes).unwrap();
    net.inject(bytes);
    net.run_until(Instant::ZERO + Duration::from_millis(1100));
    net.finish();
    let t = net.trace().unwrap();
    let marked: Vec<_> = t
        .segments()
        .filter(|x| x.analysis.has(Analysis::CHALLENGE_ACK))
        .collect();
    let all: Vec<String> = t
        .segments()
        .map(|x| {
            format!(
                "{} {:?} {} {:?}",
                x.t_us,
                x.src_host,
                x.flags,
                x.analysis.names()
            )
        })
        .collect();
    assert_eq!(marked.len(), 1, "{all:#?}");
    assert_eq!(
        (marked[0].src_host, marked[0].kind().as_str()),
        (Some(s), "ACK")
    );
    assert_eq!(marked[0].analysis.names(), ["challenge_ack"]);
}

#[test]
fn syn_cookie_syn_acks_are_marked_and_plain_ones_are_not() {
    use tcpfsm_sim::analysis::Analysis;
    let out = tcpfsm_sim::run_builtin("syn-flood", Some(1))
        .unwrap()
        .unwrap();
    let t = out.trace;
    let (plain, cookie) = (t.host_index("plain"), t.host_index("cookie"));
    let cookies = |h| {
        t.segments()
            .filter(|s| s.src_host == h && s.analysis.has(Analysis::SYN_COOKIE))
            .count()
    };
    // 120 SYNs, 16 fit the queue: the other 104 are answered with cookies, and so is the
    // real client, whose SYN comes while the queue is still full.
    assert_eq!(cookies(cookie), 105);
    assert_eq!(cookies(plain), 0);
    let text = tcpfsm_sim::render::ascii(&t, &Default::default());
    assert!(
        text.contains("104 SYN,ACK [SYN cookie] cookie → spoofed"),
        "{text}"
    );
}
