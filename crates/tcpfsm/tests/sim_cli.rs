//! `tcpfsm sim` end to end: listing, formats, --out, --script with line-numbered errors, and
//! exit codes.

use std::process::{Command, Output};

fn tcpfsm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tcpfsm"))
        .args(args)
        .output()
        .expect("run tcpfsm")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 output")
}

const NAMES: [&str; 13] = [
    "handshake",
    "client-close",
    "server-close",
    "simultaneous-open",
    "simultaneous-close",
    "lost-final-ack",
    "abort",
    "half-close",
    "refused",
    "syn-retry",
    "close-wait-leak",
    "syn-flood",
    "time-wait-exhaustion",
];

#[test]
fn sim_list_names_the_13_scenarios_one_line_each() {
    let o = tcpfsm(&["sim", "--list"]);
    assert!(o.status.success());
    let text = stdout(&o);
    let names: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(names, NAMES);
    assert!(
        text.lines().all(|l| l.split_whitespace().count() > 3),
        "{text}"
    );
}

#[test]
fn sim_client_close_draws_the_diagram_and_the_state_paths() {
    let o = tcpfsm(&["sim", "client-close"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = stdout(&o);
    assert!(text.lines().all(|l| l.chars().count() <= 80));
    for want in [
        "FIN_WAIT_1",
        "FIN_WAIT_2",
        "TIME_WAIT",
        "CLOSE_WAIT",
        "LAST_ACK",
        "State paths:",
    ] {
        assert!(text.contains(want), "missing {want}:\n{text}");
    }
}

#[test]
fn sim_json_is_one_object_per_line_and_deterministic() {
    let a = tcpfsm(&["sim", "syn-retry", "--format", "json", "--seed", "5"]);
    let b = tcpfsm(&["sim", "syn-retry", "--format", "json", "--seed", "5"]);
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
    let text = stdout(&a);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        assert!(v["event"].is_string());
    }
    assert!(text.contains(r#""result":"timed out""#));
    // Across processes too: nothing may depend on per-process hash keys or addresses.
    for name in ["syn-flood", "time-wait-exhaustion"] {
        let a = tcpfsm(&["sim", name, "--format", "json"]);
        let b = tcpfsm(&["sim", name, "--format", "json"]);
        assert!(a.status.success(), "{name}");
        assert!(a.stdout == b.stdout, "{name} differs between two runs");
    }
}

#[test]
fn sim_svg_to_file() {
    let path = std::env::temp_dir().join(format!("tcpfsm-sim-{}.svg", std::process::id()));
    let o = tcpfsm(&[
        "sim",
        "half-close",
        "--format",
        "svg",
        "--out",
        path.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert!(o.stdout.is_empty());
    let svg = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).ok();
    assert!(svg.starts_with("<svg"));
    assert_eq!(svg.matches(r#"class="lane""#).count(), 2);
}

#[test]
fn sim_script_runs_a_user_scenario_and_reports_errors_with_line_numbers() {
    let dir = std::env::temp_dir();
    let good = dir.join(format!("tcpfsm-good-{}.tcpfsm", std::process::id()));
    std::fs::write(
        &good,
        "host a 10.0.0.1\nhost b 10.0.0.2\nb listen 80 as l\na connect b:80 as c\nexpect c ESTABLISHED\n",
    )
    .unwrap();
    let o = tcpfsm(&["sim", "--script", good.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("ESTABLISHED"));

    let bad = dir.join(format!("tcpfsm-bad-{}.tcpfsm", std::process::id()));
    std::fs::write(
        &bad,
        "host a 10.0.0.1\nhost b 10.0.0.2\n\na conect b:80 as c\n",
    )
    .unwrap();
    let o = tcpfsm(&["sim", "--script", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("{}:4: unknown action \"conect\"", bad.display())),
        "{err}"
    );

    // A failed expectation is exit 1, with the line named.
    std::fs::write(
        &bad,
        "host a 10.0.0.1\nhost b 10.0.0.2\na connect b:80 as c\nexpect c ESTABLISHED\n",
    )
    .unwrap();
    let o = tcpfsm(&["sim", "--script", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(":4: expect c ESTABLISHED"), "{err}");
    std::fs::remove_file(&good).ok();
    std::fs::remove_file(&bad).ok();
}

#[test]
fn sim_unknown_scenario_lists_the_known_ones() {
    let o = tcpfsm(&["sim", "handshak"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unknown scenario \"handshak\""));
    assert!(err.contains("time-wait-exhaustion"));
}

#[test]
fn sim_show_script_prints_the_builtin_source() {
    let o = tcpfsm(&["sim", "lost-final-ack", "--show-script"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("drop next ACK from client"));
}

/// Runs `tcpfsm sim --script` on `src`; returns the exit code and stderr.
fn script_run(tag: &str, src: &str) -> (Option<i32>, String) {
    let path = std::env::temp_dir().join(format!("tcpfsm-{tag}-{}.tcpfsm", std::process::id()));
    std::fs::write(&path, src).unwrap();
    let o = tcpfsm(&["sim", "--script", path.to_str().unwrap()]);
    std::fs::remove_file(&path).ok();
    let err = String::from_utf8_lossy(&o.stderr).replace(path.to_str().unwrap(), "FILE");
    (o.status.code(), err)
}

#[test]
fn sim_script_mistakes_are_named_before_anything_runs() {
    let hosts = "host client 10.0.0.1\nhost server 10.0.0.2\nserver listen 80 as l\n";
    for (tag, body, want) in [
        (
            "host",
            "clinet connect server:80 as c\n",
            "FILE:4: unknown host or action \"clinet\" (did you mean \"client\"?); hosts: client, server",
        ),
        (
            "dup",
            "client connect server:80 as c\nserver accept l as c\n",
            "FILE:5: socket name \"c\" is already bound at line 4",
        ),
        (
            "wait",
            "client connect server:80 as c\nwait until s ESTABLISHED\n",
            "FILE:5: no socket named \"s\" (create it with listen, accept or connect); sockets: l, c",
        ),
        (
            "port",
            "client connect server:65536 as c\n",
            "FILE:4: port 65536 is outside 0–65535",
        ),
    ] {
        let (code, err) = script_run(tag, &format!("{hosts}{body}"));
        assert_eq!(code, Some(2), "{tag}: {err}");
        assert!(err.contains(want), "{tag}: {err}");
        assert_eq!(err.lines().count(), 1, "{tag}: one line, nothing run: {err}");
    }
}

#[test]
fn sim_close_wait_leak_prints_its_diagnosis_once() {
    let o = tcpfsm(&["sim", "close-wait-leak"]);
    assert!(o.status.success());
    let text = stdout(&o);
    assert_eq!(text.matches("3 CLOSE_WAIT and rising").count(), 1, "{text}");
    assert_eq!(text.matches("close the socket on EOF").count(), 1, "{text}");
    // The diagram still says where the verdict was reached.
    assert!(
        text.contains("⚕ diagnosis of server: CLOSE_WAIT leak: warning"),
        "{text}"
    );
}

#[path = "sim_cli/tshark.rs"]
mod tshark;

#[test]
fn sim_marks_what_a_segment_is_and_shows_the_syn_options() {
    let o = tcpfsm(&["sim", "lost-final-ack"]);
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(
        text.contains("FIN,ACK seq=1 ack=2 [retransmission]"),
        "{text}"
    );
    assert!(text.contains("ACK seq=2 ack=2 [dup ACK 7#1]"), "{text}");
    assert!(
        text.contains("SYN seq=0 <mss 1460,sackOK,TS,wscale 3>"),
        "{text}"
    );
    // Options of non-SYN segments stay in the JSON, not the labels.
    assert!(!text.contains("ack=1 <TS>"), "{text}");
    let o = tcpfsm(&["sim", "lost-final-ack", "--format", "json"]);
    let json = stdout(&o);
    assert!(json.contains(r#""analysis":["retransmission"]"#), "{json}");
    assert!(json.contains(r#""options":{"ts":["#), "{json}");
    // What only the sender knows: the SYN-ACKs that carry a SYN cookie.
    let o = tcpfsm(&["sim", "syn-flood"]);
    assert!(stdout(&o).contains("SYN,ACK [SYN cookie] cookie → spoofed"));
    let o = tcpfsm(&["sim", "syn-flood", "--format", "json"]);
    let json = stdout(&o);
    assert_eq!(json.matches(r#""analysis":["syn_cookie"]"#).count(), 105);
}

#[test]
fn sim_svg_wraps_the_diagnosis_once_inside_the_canvas_and_bands_the_flood() {
    let o = tcpfsm(&["sim", "close-wait-leak", "--format", "svg"]);
    assert!(o.status.success());
    let svg = stdout(&o);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed");
    let width: f64 = doc
        .root_element()
        .attribute("width")
        .unwrap()
        .parse()
        .unwrap();
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.children().filter_map(|c| c.text()).collect())
        .collect();
    let all = texts.join(" ");
    assert_eq!(all.matches("3 CLOSE_WAIT and rising").count(), 1, "{all}");
    // Wrapped: no text line is longer than the canvas holds.
    let widest = texts.iter().map(|t| t.chars().count()).max().unwrap();
    assert!(
        (widest as f64) * 7.25 < width,
        "{widest} chars in {width} px"
    );
    let o = tcpfsm(&["sim", "syn-flood", "--format", "svg"]);
    let svg = stdout(&o);
    assert_eq!(svg.matches(r#"<g class="band">"#).count(), 5);
    assert!(svg.contains("120 SYN spoofed → plain"));
}

/// Runs `tcpfsm ARGS` with its output thrown away; its peak resident memory in KiB.
// The child is reaped by wait4, which gives its rusage (std's wait does not).
#[allow(clippy::zombie_processes)]
fn peak_rss_kib(args: &[&str]) -> (i32, i64) {
    let child = Command::new(env!("CARGO_BIN_EXE_tcpfsm"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run tcpfsm");
    let mut status = 0;
    // SAFETY: wait4 on our own child with valid out-pointers; rusage is plain data.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    (libc::WEXITSTATUS(status), usage.ru_maxrss)
}

#[test]
fn sim_a_million_syn_flood_streams_in_under_200_mb() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tcpfsm-sim/benches/syn-flood-1m.tcpfsm"
    );
    // JSON (every one of the ~2 million segments, half a gigabyte) is written as it happens,
    // and the diagram is summarized as the run goes: neither keeps the run in memory.
    for format in ["json", "ascii"] {
        let (code, kib) = peak_rss_kib(&["sim", "--script", script, "--format", format]);
        assert_eq!(code, 0, "{format}");
        assert!(kib <= 200 * 1024, "{format}: {kib} KiB resident");
    }
}

/// Issue 12 item 7 through the command: one run with a closed window, its probes and its
/// reopening, keep-alives, and a challenge ACK (a SYN spoofed onto the established 4-tuple,
/// RFC 5961 §4) is marked the same in all three formats — ASCII labels, SVG `data-analysis`
/// and JSON `analysis`/`sent_as`.
#[test]
fn sim_marks_zero_window_probes_updates_keepalives_and_challenge_acks_in_every_format() {
    let src = "host a 10.0.0.1\nhost b 10.0.0.2\nlink a <-> b delay 10ms\n\
               set b recv_buffer 4096\nset a mss 1024\nset b mss 1024\n\
               set a timestamps off\nset b timestamps off\n\
               set a keepalive 20s\nset b keepalive 20s\n\
               b listen 80 as l\na connect b:80 from 1024 as c\nb accept l as s\n\
               a send c 20000 bytes\nwait 5s\nb recv s 20000 timeout 1m\n\
               wait 2m\ninject 1 syn from 10.0.0.1 to b:80\nwait 1s\n\
               a close c\nb recv-until-eof s\nb close s\nwait until c CLOSED and s CLOSED\n";
    let path = std::env::temp_dir().join(format!("tcpfsm-marks-{}.tcpfsm", std::process::id()));
    std::fs::write(&path, src).unwrap();
    let p = path.to_str().unwrap();
    let ascii = stdout(&tcpfsm(&["sim", "--script", p, "--full"]));
    let svg = stdout(&tcpfsm(&[
        "sim", "--script", p, "--full", "--format", "svg",
    ]));
    let json = stdout(&tcpfsm(&["sim", "--script", p, "--format", "json"]));
    std::fs::remove_file(&path).ok();
    // (JSON analysis name, the diagram's label: the short form in a lane this narrow, as
    // `tcpfsm sim --help` lists them)
    for (name, label) in [
        ("zero_window", "[zwin]"),
        ("window_update", "[wupd]"),
        ("keep_alive", "[ka]"),
        ("challenge_ack", "[chal]"),
    ] {
        assert!(json.contains(&format!("\"{name}\"")), "JSON lacks {name}");
        assert!(
            svg.contains(&format!("data-analysis=\"{name}\"")),
            "SVG lacks {name}"
        );
        assert!(ascii.contains(label), "ASCII lacks {label}:\n{ascii}");
    }
    // The sender's own word where a capture reads a segment otherwise (a Linux-style window
    // probe is a keep-alive to Wireshark).
    assert!(json.contains("\"sent_as\":\"window_probe\""), "{json}");
    assert!(ascii.contains("(probe)"), "{ascii}");
}
