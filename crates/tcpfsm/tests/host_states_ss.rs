//! `tcpfsm states` beside `ss`, on real kernel sockets in a private network namespace (needs
//! root): timers (`-o`), tcp_info (`-i`), socket memory (`-m`), owners with fd numbers, ss
//! filter expressions, `--netns`, and `--by local-port` with the ephemeral range in one row.
//! `ss` itself is the oracle wherever it shows the same thing.

#[path = "cli/mod.rs"]
mod cli;
#[path = "../../tcpfsm-host/tests/support/mod.rs"]
mod support;

use cli::{json, tcpfsm, tcpfsm_here};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;
use support::*;

#[test]
#[ignore = "helper process for the netns tests, started by them"]
fn holder_process() {
    holder_main();
}

fn ss(ns: &Netns, args: &[&str]) -> String {
    let out = run_bounded(ns.command("ss", args), Duration::from_secs(20));
    assert!(out.status.success(), "ss {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The socket in a `tcpfsm states --json` listing with this local and remote address.
fn socket(v: &Value, local: SocketAddr, remote: SocketAddr) -> &Value {
    v["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["local"] == local.to_string() && s["remote"] == remote.to_string())
        .unwrap_or_else(|| panic!("no socket {local} -> {remote} in {v}"))
}

/// `(local, remote)` of every socket in a `tcpfsm states --json` listing.
fn pairs(v: &Value) -> BTreeSet<(String, String)> {
    v["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["local"].as_str().unwrap().to_string(),
                s["remote"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `(local, remote)` of every line of `ss -tanH …`, in std's SocketAddr spelling.
fn ss_pairs(text: &str) -> BTreeSet<(String, String)> {
    let norm = |a: &str| {
        let a = a.replace("%lo", "");
        match a.strip_suffix(":*") {
            Some(host) => format!("{host}:0"),
            None => a,
        }
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (norm(f[3]), norm(f[4]))
        })
        .collect()
}

/// `name:VALUE` from an ss line (`timer:(…)`, `mss:1448`).
/// The line of a listing for the socket `local -> remote` (not its peer, whose line holds the
/// same two addresses the other way round).
fn line_of(text: &str, local: SocketAddr, remote: SocketAddr) -> Option<(usize, &str)> {
    let (l, r) = (local.to_string(), remote.to_string());
    text.lines().enumerate().find(|(_, line)| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = |a: &str| words.iter().position(|w| *w == a);
        matches!((at(&l), at(&r)), (Some(i), Some(j)) if i < j)
    })
}

fn ss_field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}:")))
}

/// Routes 10.9.0.0/24 into a veth whose peer has no such address (the neighbour entry for
/// 10.9.0.2 is static, so nothing answers): a connect() to [`DEAD`] retransmits its SYN.
fn blackhole(ns: &Netns) {
    for args in [
        vec!["link", "add", "v0", "type", "veth", "peer", "name", "v1"],
        vec!["addr", "add", "10.9.0.1/24", "dev", "v0"],
        vec!["link", "set", "v0", "up"],
        vec!["link", "set", "v1", "up"],
        vec![
            "neigh",
            "add",
            "10.9.0.2",
            "lladdr",
            "02:00:00:00:00:01",
            "dev",
            "v0",
        ],
    ] {
        let mut a = vec!["-n", ns.name.as_str()];
        a.extend(args);
        let ok = std::process::Command::new("ip").args(&a).status().unwrap();
        assert!(ok.success(), "ip {a:?}");
    }
}

const DEAD: &str = "10.9.0.2:80";

/// A non-blocking connect() towards [`DEAD`], from inside the namespace.
fn unanswered_connect() -> socket2::Socket {
    let syn = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    syn.set_nonblocking(true).unwrap();
    let _ = syn.connect(&DEAD.parse::<SocketAddr>().unwrap().into());
    syn
}

#[test]
fn timers_show_time_wait_left_keepalive_and_syn_retransmits_like_ss_o() {
    let Some(ns) = Netns::new("timers_show_time_wait_left_keepalive_and_syn_retransmits_like_ss_o")
    else {
        return;
    };
    blackhole(&ns);
    let scene = ns.run(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        // TIME_WAIT: we close first.
        let c = TcpStream::connect(addr).unwrap();
        let tw_local = c.local_addr().unwrap();
        let (mut s, _) = l.accept().unwrap();
        drop(c);
        let _ = std::io::Read::read(&mut s, &mut [0u8; 1]);
        drop(s);
        // Keepalive after 100 s idle.
        let k = TcpStream::connect(addr).unwrap();
        let (ks, _) = l.accept().unwrap();
        socket2::SockRef::from(&k)
            .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(Duration::from_secs(100)))
            .unwrap();
        // A SYN that is never answered.
        (l, addr, tw_local, k, ks, unanswered_connect())
    });
    let (_l, addr, tw_local, k, _ks, syn) = scene;
    let k_local = k.local_addr().unwrap();
    let syn_local = syn.local_addr().unwrap().as_socket().unwrap();
    let dead: SocketAddr = DEAD.parse().unwrap();
    // The first SYN retransmission comes after the initial RTO of 1 s.
    std::thread::sleep(Duration::from_millis(1400));

    let v = json(&tcpfsm(&ns, &["states", "-o", "--json"]));
    let tw = &socket(&v, tw_local, addr)["timer"];
    assert_eq!(tw["kind"], "timewait", "{tw}");
    let left = tw["expires_ms"].as_u64().unwrap();
    assert!(
        (50_000..=60_000).contains(&left),
        "TIME_WAIT left {left} ms"
    );
    let ka = &socket(&v, k_local, addr)["timer"];
    assert_eq!(ka["kind"], "keepalive", "{ka}");
    let ka_ms = ka["expires_ms"].as_u64().unwrap();
    assert!(
        (90_000..=100_000).contains(&ka_ms),
        "keepalive in {ka_ms} ms"
    );
    let rt = &socket(&v, syn_local, dead)["timer"];
    assert_eq!(rt["kind"], "on", "retransmit timer, as ss names it: {rt}");
    assert!(rt["retrans"].as_u64().unwrap() >= 1, "{rt}");

    // The text is ss -o's: same timer name and retransmission count, times within a second.
    let text = String::from_utf8(tcpfsm(&ns, &["states", "-o"]).stdout).unwrap();
    let reference = ss(&ns, &["-tanoH"]);
    for (local, remote) in [(tw_local, addr), (k_local, addr), (syn_local, dead)] {
        let (_, ours) =
            line_of(&text, local, remote).unwrap_or_else(|| panic!("{local} missing from\n{text}"));
        let (_, theirs) = line_of(&reference, local, remote)
            .unwrap_or_else(|| panic!("{local} missing from ss\n{reference}"));
        let (o, t) = (
            ss_field(ours, "timer").unwrap(),
            ss_field(theirs, "timer").unwrap(),
        );
        let parts = |s: &str| -> Vec<String> {
            s.trim_matches(|c| c == '(' || c == ')')
                .split(',')
                .map(String::from)
                .collect()
        };
        let (o, t) = (parts(o), parts(t));
        assert_eq!(o[0], t[0], "timer name: ours {o:?} ss {t:?}");
        assert_eq!(o[2], t[2], "retransmissions: ours {o:?} ss {t:?}");
        assert!(
            o[1].ends_with("sec") || o[1].ends_with("min") || o[1].ends_with("ms"),
            "{o:?}"
        );
    }
}

#[test]
fn info_reports_rtt_cwnd_mss_and_retransmits_from_tcp_info_like_ss_i() {
    let Some(ns) = Netns::new("info_reports_rtt_cwnd_mss_and_retransmits_from_tcp_info_like_ss_i")
    else {
        return;
    };
    blackhole(&ns);
    let (l, c, mut s, syn) = ns.run(|| {
        let syn = unanswered_connect();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        std::io::Write::write_all(&mut c, &[7u8; 50_000]).unwrap();
        let mut buf = vec![0u8; 50_000];
        std::io::Read::read_exact(&mut s, &mut buf).unwrap();
        (l, c, s, syn)
    });
    let _ = &mut s;
    let (local, remote) = (c.local_addr().unwrap(), l.local_addr().unwrap());
    let v = json(&tcpfsm(
        &ns,
        &["states", "-i", "--json", "-s", "established"],
    ));
    let info = &socket(&v, local, remote)["info"];
    assert!(info["rtt_ms"].as_f64().unwrap() > 0.0, "{info}");
    assert!(info["rttvar_ms"].as_f64().is_some(), "{info}");
    assert!(info["snd_cwnd"].as_u64().unwrap() >= 1, "{info}");
    assert!(info["snd_mss"].as_u64().unwrap() > 0, "{info}");
    assert_eq!(info["bytes_acked"].as_u64().unwrap(), 50_001, "{info}");
    assert_eq!(info["total_retrans"], 0, "{info}");
    assert!(
        info["cong"].as_str().is_some_and(|c| !c.is_empty()),
        "{info}"
    );
    assert!(info["delivery_rate"].as_u64().is_some(), "{info}");

    // The text line carries ss -i's figures for an idle connection: mss, cwnd, rcvmss, advmss,
    // bytes_acked are the same numbers ss prints.
    let text =
        String::from_utf8(tcpfsm(&ns, &["states", "-i", "-s", "established"]).stdout).unwrap();
    let reference = ss(&ns, &["-tinH", "state", "established"]);
    let following = |t: &str| -> String {
        let (i, _) = line_of(t, local, remote)
            .unwrap_or_else(|| panic!("{local} -> {remote} missing from\n{t}"));
        t.lines().nth(i + 1).unwrap_or("").to_string()
    };
    let (ours, theirs) = (following(&text), following(&reference));
    for f in ["mss", "cwnd", "rcvmss", "advmss", "bytes_acked", "wscale"] {
        assert_eq!(
            ss_field(&ours, f),
            ss_field(&theirs, f),
            "{f}: ours {ours:?}\nss {theirs:?}"
        );
    }
    assert!(
        ours.starts_with('\t'),
        "continuation line as ss prints it: {ours:?}"
    );
    // The unanswered SYN has been retransmitted (initial RTO 1 s): tcp_info counts it, and
    // the text says retrans:outstanding/total as ss does.
    std::thread::sleep(Duration::from_millis(1400));
    let syn_local = syn.local_addr().unwrap().as_socket().unwrap();
    let dead: SocketAddr = DEAD.parse().unwrap();
    let v = json(&tcpfsm(&ns, &["states", "-i", "--json", "-s", "syn-sent"]));
    let info = &socket(&v, syn_local, dead)["info"];
    assert!(info["retransmits"].as_u64().unwrap() >= 1, "{info}");
    assert!(info["total_retrans"].as_u64().unwrap() >= 1, "{info}");
    let text = String::from_utf8(tcpfsm(&ns, &["states", "-i", "-s", "syn-sent"]).stdout).unwrap();
    let reference = ss(&ns, &["-tinH", "state", "syn-sent"]);
    let (syn_ours, syn_theirs) = {
        let next = |t: &str| {
            let (i, _) = line_of(t, syn_local, dead).unwrap_or_else(|| panic!("{t}"));
            t.lines().nth(i + 1).unwrap_or("").to_string()
        };
        (next(&text), next(&reference))
    };
    assert!(ss_field(&syn_ours, "retrans").is_some(), "{syn_ours}");
    assert_eq!(
        ss_field(&syn_ours, "retrans"),
        ss_field(&syn_theirs, "retrans"),
        "ours {syn_ours:?}\nss {syn_theirs:?}"
    );
    // Without -i nothing is asked of the kernel beyond the header: no info in the JSON.
    let plain = json(&tcpfsm(&ns, &["states", "--json", "-s", "established"]));
    assert!(socket(&plain, local, remote).get("info").is_none());
}

#[test]
fn memory_shows_skmem_like_ss_m() {
    let Some(ns) = Netns::new("memory_shows_skmem_like_ss_m") else {
        return;
    };
    let (l, c, _s) = ns.run(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (l, c, s)
    });
    let (local, remote) = (c.local_addr().unwrap(), l.local_addr().unwrap());
    let v = json(&tcpfsm(&ns, &["states", "-m", "--json"]));
    let m = &socket(&v, local, remote)["skmem"];
    for k in [
        "rmem_alloc",
        "rcvbuf",
        "wmem_alloc",
        "sndbuf",
        "fwd_alloc",
        "wmem_queued",
        "optmem",
        "backlog",
        "drops",
    ] {
        assert!(m[k].as_u64().is_some(), "{k} missing: {m}");
    }
    let text = String::from_utf8(tcpfsm(&ns, &["states", "-m"]).stdout).unwrap();
    let reference = ss(&ns, &["-tamH"]);
    let skmem_after = |t: &str| -> String {
        let (i, _) =
            line_of(t, local, remote).unwrap_or_else(|| panic!("{local} missing from\n{t}"));
        let next = t.lines().nth(i + 1).unwrap_or("");
        ss_field(next, "skmem").unwrap_or("").to_string()
    };
    // An idle socket's memory does not move between the two reads.
    assert_eq!(skmem_after(&text), skmem_after(&reference));
}

#[test]
fn owners_carry_fd_numbers_exactly_as_ss_p_prints_them() {
    let Some(ns) = Netns::new("owners_carry_fd_numbers_exactly_as_ss_p_prints_them") else {
        return;
    };
    let holder = spawn_holder(&ns, "holder_process");
    let port = holder.port;
    let _scene = ns.run(move || build_scene(0, 3, 2, port, 0));
    wait_half_closed_settled(&ns, 3);
    let text = String::from_utf8(tcpfsm(&ns, &["states", "-s", "close-wait"]).stdout).unwrap();
    let reference = ss(&ns, &["-tanpH", "state", "close-wait"]);
    // "local|users:(…)" per socket; ss leaves the state column out when one state is asked.
    let users = |t: &str, local_col: usize| -> BTreeSet<String> {
        t.lines()
            .filter_map(|l| {
                let local = l.split_whitespace().nth(local_col)?;
                Some(format!("{local}|{}", ss_field(l, "users")?))
            })
            .collect()
    };
    let ours = users(&text, 3);
    assert_eq!(ours.len(), 3, "{text}");
    assert_eq!(
        ours,
        users(&reference, 2),
        "ours:\n{text}\nss:\n{reference}"
    );
    let v = json(&tcpfsm(&ns, &["states", "-s", "close-wait", "--json"]));
    for s in v["sockets"].as_array().unwrap() {
        let p = &s["processes"][0];
        assert_eq!(p["pid"], holder.pid());
        assert!(p["fd"].as_u64().unwrap() > 2, "{s}");
    }
    // Sockets without a process say so, in the one spelling.
    let text = String::from_utf8(tcpfsm(&ns, &["states", "-s", "time-wait"]).stdout).unwrap();
    let tw: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("TIME_WAIT"))
        .collect();
    assert_eq!(tw.len(), 2, "{text}");
    assert!(
        tw.iter().all(|l| l.ends_with("no owner (kernel)")),
        "{text}"
    );
}

#[test]
fn filter_expressions_select_what_ss_selects() {
    let Some(ns) = Netns::new("filter_expressions_select_what_ss_selects") else {
        return;
    };
    let (ls, _conns) = ns.run(|| {
        let ls: Vec<TcpListener> = ["127.0.0.1:0", "127.0.0.1:0", "[::1]:0"]
            .iter()
            .map(|a| TcpListener::bind(a).unwrap())
            .collect();
        let mut conns = Vec::new();
        for (i, l) in ls.iter().enumerate() {
            for _ in 0..=i {
                let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
                let (s, _) = l.accept().unwrap();
                conns.push((c, s));
            }
        }
        (ls, conns)
    });
    let p: Vec<u16> = ls.iter().map(|l| l.local_addr().unwrap().port()).collect();
    let (lo, hi) = (p[0].min(p[1]), p[0].max(p[1]));
    let exprs = [
        format!("sport = :{}", p[0]),
        format!("dport = :{}", p[1]),
        format!("dport != :{}", p[1]),
        format!("sport > :{lo}"),
        format!("sport >= :{lo} and sport <= :{hi}"),
        format!("( sport = :{} or dport = :{} )", p[0], p[2]),
        format!("sport = :{} dst 127.0.0.1", p[0]),
        format!("not sport = :{}", p[2]),
        "dst 127.0.0.0/8".to_string(),
        "src 127.0.0.1".to_string(),
        "dst [::1]".to_string(),
        format!("src [::1]:{}", p[2]),
        format!("dst 127.0.0.1:{}", p[1]),
        format!("! ( dport = :{} or sport = :{} )", p[0], p[0]),
    ];
    for e in &exprs {
        let ours = pairs(&json(&tcpfsm(&ns, &["states", "--json", e])));
        let theirs = ss_pairs(&ss(&ns, &["-tanH", e]));
        assert!(
            !theirs.is_empty() || e.starts_with("not"),
            "{e} selects nothing in ss"
        );
        assert_eq!(ours, theirs, "filter {e:?}");
    }
    // Our range shorthand selects what ss's pair of comparisons selects.
    let range = pairs(&json(&tcpfsm(
        &ns,
        &["states", "--json", &format!("sport = :{lo}-{hi}")],
    )));
    let theirs = ss_pairs(&ss(
        &ns,
        &["-tanH", &format!("sport >= :{lo} and sport <= :{hi}")],
    ));
    assert_eq!(range, theirs);
    // Options may follow the filter, and --count counts what it selects.
    let v = json(&tcpfsm(
        &ns,
        &["states", &format!("sport = :{}", p[2]), "--count", "--json"],
    ));
    assert_eq!(
        v["total"],
        1 + 3,
        "the IPv6 listener and its 3 accepted connections: {v}"
    );
    // A bad filter is an error that says what is wrong, and nothing is printed on stdout.
    let out = tcpfsm(&ns, &["states", "dport = :99999"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("port 99999 is outside 0-65535"), "{err}");
}

#[test]
fn netns_flag_reads_the_named_namespace_and_names_a_missing_one() {
    let Some(ns) = Netns::new("netns_flag_reads_the_named_namespace_and_names_a_missing_one")
    else {
        return;
    };
    let _scene = ns.run(|| build_scene(3, 0, 2, 0, 0));
    let run = tcpfsm_here;
    let outside = json(&run(&["states", "--netns", &ns.name, "--json"]));
    let inside = json(&tcpfsm(&ns, &["states", "--json"]));
    assert_eq!(outside, inside);
    assert_eq!(outside["states"]["ESTABLISHED"], 6);
    assert_eq!(outside["states"]["TIME_WAIT"], 2);
    let listed = json(&run(&[
        "states",
        "--netns",
        &ns.name,
        "-s",
        "time-wait",
        "-o",
        "--json",
    ]));
    assert_eq!(listed["sockets"].as_array().unwrap().len(), 2);
    let out = run(&["states", "--netns", "tcpfsm-no-such-ns"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tcpfsm-no-such-ns") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn by_local_port_puts_ephemeral_ports_in_one_row_but_keeps_listening_ones() {
    let Some(ns) =
        Netns::new("by_local_port_puts_ephemeral_ports_in_one_row_but_keeps_listening_ones")
    else {
        return;
    };
    let _scene = ns.run(|| {
        std::fs::write("/proc/sys/net/ipv4/ip_local_port_range", "40000 40099").unwrap();
        // A service inside the ephemeral range keeps its row; one outside it too.
        let inside = TcpListener::bind("127.0.0.1:40050").unwrap();
        let outside = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut conns = Vec::new();
        for l in [&inside, &outside] {
            for _ in 0..10 {
                let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
                let (s, _) = l.accept().unwrap();
                conns.push((c, s));
            }
        }
        (inside, outside, conns)
    });
    let v = json(&tcpfsm(&ns, &["states", "--by", "local-port", "--json"]));
    assert_eq!(v["ephemeral_key"], "ephemeral (40000-40099)");
    let groups = v["groups"].as_array().unwrap();
    let g = |k: &str| {
        groups
            .iter()
            .find(|g| g["key"] == k)
            .unwrap_or_else(|| panic!("no group {k}: {v}"))
    };
    assert_eq!(g("ephemeral (40000-40099)")["states"]["ESTABLISHED"], 20);
    assert_eq!(g("40050")["states"]["LISTEN"], 1);
    assert_eq!(g("40050")["states"]["ESTABLISHED"], 10);
    assert_eq!(
        groups.len(),
        3,
        "two service ports and one ephemeral row: {v}"
    );
    // Also when the listing leaves the listeners out.
    let v = json(&tcpfsm(
        &ns,
        &[
            "states",
            "--by",
            "local-port",
            "-s",
            "established",
            "--json",
        ],
    ));
    let keys: BTreeSet<&str> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains("40050") && keys.contains("ephemeral (40000-40099)"),
        "{v}"
    );
    assert_eq!(keys.len(), 3, "{v}");
}

/// `states --help` explains the owner column with the very words the listing prints
/// (`tcpfsm_observe::NoOwner::label`) and the JSON keys (`NoOwner::key`). No root needed.
#[test]
fn states_help_spells_each_no_owner_reason_as_the_listing_does() {
    let out = tcpfsm_here(&["states", "--help"]);
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    for why in tcpfsm_observe::NoOwner::ALL {
        assert!(
            help.contains(why.label()),
            "{} missing:\n{help}",
            why.label()
        );
        assert!(
            help.contains(&format!("\"{}\"", why.key())),
            "{}",
            why.key()
        );
    }
}
