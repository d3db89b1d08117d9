//! `tcpfsm drill` end to end: verdict lines, failure details in packetdrill syntax, the summary
//! line, JSON, skips naming the feature, expectations, parse errors with file:line:column, exit
//! codes, and (as root) the side-by-side differential view.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tcpfsm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tcpfsm"))
        .args(args)
        .output()
        .expect("run tcpfsm")
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("utf-8 output")
}

/// A fresh directory with the given scripts (name, body).
fn scripts(tag: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("drill-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, body) in files {
        std::fs::write(dir.join(name), body).unwrap();
    }
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A segment for a port nobody listens on draws RST (RFC 9293 section 3.10.7.1).
const CLOSED_PORT_RST: &str = "0 < . 1000:1000(0) ack 77 win 100\n+0 > R 77:77(0)\n";

#[test]
fn drill_pass_exits_0_and_ends_with_the_summary_line() {
    let d = scripts("pass", &[("rst.pkt", CLOSED_PORT_RST)]);
    let o = tcpfsm(&["drill", s(&d)]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.starts_with("PASS  "), "{out}");
    assert_eq!(out.lines().last(), Some("1 passed, 0 failed, 0 skipped"));
}

#[test]
fn drill_failure_names_the_line_what_was_expected_and_what_the_stack_did() {
    let d = scripts(
        "fail",
        &[(
            "wrong.pkt",
            "0 < . 1000:1000(0) ack 77 win 100\n+0 > R. 77:77(0) ack 1000\n",
        )],
    );
    let o = tcpfsm(&["drill", s(&d)]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let file = d.join("wrong.pkt");
    assert!(
        out.contains(&format!("{}:2: +0 > R. 77:77(0) ack 1000", file.display())),
        "{out}"
    );
    assert!(out.contains("expected: > R. 77:77(0) ack 1000"), "{out}");
    assert!(
        out.contains("actual:   > R 77:77(0) win 0 at 0.000000"),
        "{out}"
    );
    assert!(
        out.contains("why:      flags: expected R. but sent R"),
        "{out}"
    );
    assert_eq!(out.lines().last(), Some("0 passed, 1 failed, 0 skipped"));
}

#[test]
fn drill_parse_error_names_file_line_and_column_and_exits_2() {
    let d = scripts(
        "parse",
        &[("bad.pkt", "0 < . 1:1(0) win 1\n+0 > SX 0:0(0)\n")],
    );
    let file = d.join("bad.pkt");
    let o = tcpfsm(&["drill", s(&file)]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!("{}:2:7: unknown TCP flag 'X'", file.display())),
        "{err}"
    );
}

#[test]
fn drill_usage_errors_exit_2() {
    let d = scripts("usage", &[("rst.pkt", CLOSED_PORT_RST)]);
    let o = tcpfsm(&["drill", "--stack", "bsd", s(&d)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("unknown stack \"bsd\""));
    let o = tcpfsm(&["drill", "--stack", "engine,engine", s(&d)]);
    assert_eq!(o.status.code(), Some(2));
    let o = tcpfsm(&["drill", s(&d.join("missing.pkt"))]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("no such file or directory"));
}

#[test]
fn drill_json_gives_one_object_per_script() {
    let d = scripts(
        "json",
        &[("a.pkt", CLOSED_PORT_RST), ("b.pkt", "0 < udp (100)\n")],
    );
    let o = tcpfsm(&["drill", "--json", s(&d)]);
    assert_eq!(o.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["status"], "pass");
    assert_eq!(lines[0]["stack"], "engine");
    assert!(lines[0]["script"].as_str().unwrap().ends_with("a.pkt"));
    assert_eq!(lines[1]["status"], "skip");
    assert_eq!(
        lines[1]["verdict"]["reason"],
        "UDP packets are not supported"
    );
    assert!(text(&o.stderr).contains("1 passed, 0 failed, 1 skipped"));
}

#[test]
fn drill_skips_a_script_naming_the_unsupported_feature() {
    let d = scripts(
        "skip",
        &[(
            "shell.pkt",
            "0 `nc -l 8080`\n+0 < . 1000:1000(0) ack 77 win 100\n+0 > R 77:77(0)\n",
        )],
    );
    let o = tcpfsm(&["drill", s(&d)]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("command `nc -l 8080` is not interpreted (--allow-shell runs it on the linux stack) (line 1)"),
        "{out}"
    );
    assert!(out.ends_with("0 passed, 0 failed, 1 skipped\n"), "{out}");
}

#[test]
fn drill_expectations_turn_a_failure_into_xfail_and_a_pass_into_a_stale_entry() {
    let d = scripts(
        "expect",
        &[
            (
                "wrong.pkt",
                "0 < . 1000:1000(0) ack 77 win 100\n+0 > R. 77:77(0) ack 1000\n",
            ),
            ("right.pkt", CLOSED_PORT_RST),
        ],
    );
    std::fs::write(
        d.join("drill-expectations.toml"),
        "[[expect]]\nscript = \"wrong.pkt\"\nstacks = [\"engine\"]\nreason = \"bare RST\"\n",
    )
    .unwrap();
    let o = tcpfsm(&["drill", s(&d)]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("XFAIL"), "{out}");
    assert!(out.contains("1 expected failures"), "{out}");
    assert_eq!(out.lines().last(), Some("1 passed, 0 failed, 0 skipped"));

    std::fs::write(
        d.join("drill-expectations.toml"),
        "[[expect]]\nscript = \"right.pkt\"\nstacks = [\"engine\"]\nreason = \"stale\"\n",
    )
    .unwrap();
    let o = tcpfsm(&["drill", s(&d.join("right.pkt"))]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("XPASS"), "{out}");
    assert!(out.contains("remove its entry"), "{out}");

    let o = tcpfsm(&["drill", "--no-expect", s(&d.join("wrong.pkt"))]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn drill_differential_shows_where_engine_and_linux_disagree() {
    if !tcpfsm_testkit::require_root("tcpfsm drill --stack engine,linux (netns + TUN)") {
        return;
    }
    // Linux acknowledges at once at the start of a connection; the engine delays the ACK.
    let d = scripts(
        "diff",
        &[(
            "quickack.pkt",
            " 0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n\
             +0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0\n\
             +0 bind(3, ..., ...) = 0\n\
             +0 listen(3, 1) = 0\n\
             +0 < S 0:0(0) win 65535 <mss 1000>\n\
             +0 > S. 0:0(0) ack 1 <mss 1460>\n\
             +.1 < . 1:1(0) ack 1 win 65535\n\
             +0 accept(3, ..., ...) = 4\n\
             +.1 < . 1:1001(1000) ack 1 win 65535\n\
             +0 > . 1:1(0) ack 1001\n",
        )],
    );
    let o = tcpfsm(&[
        "drill",
        "--stack",
        "engine,linux",
        "--tolerance-usecs",
        "20000",
        s(&d),
    ]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("DIFF  "), "{out}");
    assert!(out.contains("engine FAIL, linux PASS"), "{out}");
    let row = out
        .lines()
        .find(|l| l.trim_start().starts_with("10 "))
        .unwrap_or_else(|| panic!("a row for line 10:\n{out}"));
    // The engine ACKs after its 40 ms delayed-ACK timer, Linux at once (0.2 s).
    assert!(row.contains("@0.240"), "{row}");
    assert_eq!(row.matches("@0.2").count(), 2, "{row}");
    assert!(
        out.contains("1 of 1 scripts behave differently on engine and linux"),
        "{out}"
    );
}
