//! Script errors name the file and line; bad input never panics.

use tcpfsm_sim::{parse, run_source};

#[test]
fn misspelled_action_is_reported_with_file_and_line() {
    let src = "host client 10.0.0.1\nhost server 10.0.0.2\n\nserver listen 80 as l\nclient conect server:80 as c\n";
    let e = parse("script.tcpfsm", src).unwrap_err();
    assert_eq!(e.line, 5);
    assert!(
        e.to_string()
            .starts_with("script.tcpfsm:5: unknown action \"conect\""),
        "{e}"
    );
}

#[test]
fn runtime_errors_carry_the_line_too() {
    let src =
        "host a 10.0.0.1\nhost b 10.0.0.2\nb listen 80 as l\n# comment\na send nosuch \"x\"\n";
    let e = run_source("r.tcpfsm", src, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "r.tcpfsm:5: no socket named \"nosuch\" (create it with listen, accept or connect)"
    );
    let src = "host a 10.0.0.1\nhost b 10.0.0.2\nb listen 80 as l\na close l\n";
    let e = run_source("r.tcpfsm", src, None).unwrap_err();
    assert_eq!(e.line, 4);
    assert!(e.msg.contains("belongs to host \"b\""), "{e}");
}

#[test]
fn errors_inside_repeat_blocks_point_at_the_inner_line() {
    let src = "host a 10.0.0.1\nhost b 10.0.0.2\nrepeat 2 {\n  wait 1s\n  a shutdown c$i\n}\n";
    let e = run_source("r.tcpfsm", src, None).unwrap_err();
    assert_eq!(e.line, 5);
    assert!(e.msg.contains("\"c0\""), "{e}");
}

#[test]
fn failed_expectations_are_failures_not_errors() {
    let src = "host a 10.0.0.1\nhost b 10.0.0.2\nb listen 80 as l\na connect b:80 as c\nexpect c TIME_WAIT\nwait until c CLOSED timeout 1s\n";
    let out = run_source("x.tcpfsm", src, None).unwrap();
    assert_eq!(out.failures.len(), 2);
    assert!(
        out.failures[0].starts_with("x.tcpfsm:5: expect c TIME_WAIT: in ESTABLISHED"),
        "{:?}",
        out.failures
    );
    assert!(
        out.failures[1].starts_with("x.tcpfsm:6: wait until timed out after 1s"),
        "{:?}",
        out.failures
    );
}

#[test]
fn garbage_never_panics() {
    let junk = [
        "",
        "\"",
        "}",
        "repeat",
        "repeat x {",
        "host",
        "host a",
        "host a 1.2.3.4.5",
        "host a 10.0.0.1\na",
        "host a 10.0.0.1\na listen",
        "host a 10.0.0.1\na listen 80 as",
        "host a 10.0.0.1\nlink a <-> a",
        "host a 10.0.0.1\ndrop",
        "host a 10.0.0.1\ndrop 3",
        "host a 10.0.0.1\nwait until",
        "host a 10.0.0.1\nwait until a has",
        "host a 10.0.0.1\ninject 5 syn from x to a:80",
        "host a 10.0.0.1\nset a msl -1s",
        "host a 10.0.0.1\nset a msl 1e400s",
        "host a 10.0.0.1\na connect a:99999 as c",
        "host a 10.0.0.1\nhost b ::1\na connect b:80 as c",
        "host a 10.0.0.1\ninject 3 syn from ::1 to a:80",
        "host a 10.0.0.1\nexpect",
        "host a 10.0.0.1\nsay",
        "host a 10.0.0.1\nhost b 10.0.0.2\nb listen 80 as l\na connect b:80 as c\na send c 99999999999999 bytes",
        "host a 10.0.0.1\nrepeat 4294967295 {\n}",
        "host a 10.0.0.1\ninject 4000000000 syn from 1.2.3.4 to a:80",
        "host a 10.0.0.1\na recv",
        "\u{0}\u{1}\u{2}",
    ];
    for src in junk {
        // Either a clear error or a run; never a panic.
        match run_source("j.tcpfsm", src, None) {
            Ok(_) => {}
            Err(e) => assert!(e.to_string().starts_with("j.tcpfsm"), "{e}"),
        }
    }
}

#[test]
fn a_nonsense_setting_is_reported_at_its_set_line() {
    let src = "host client 10.0.0.1\nhost server 10.0.0.2\nset client msl 1s\nset client mss 10\nserver listen 80 as l\n";
    let err = tcpfsm_sim::script::parse("bad.tcpfsm", src).unwrap_err();
    assert_eq!(err.line, 4, "{err}");
    assert!(err.to_string().contains("mss"), "{err}");
}
