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
    // Known only while running: which host a socket belongs to.
    let src = "host a 10.0.0.1\nhost b 10.0.0.2\nb listen 80 as l\n# comment\na close l\n";
    let e = run_source("r.tcpfsm", src, None).unwrap_err();
    assert_eq!(e.line, 5);
    assert!(e.msg.contains("belongs to host \"b\""), "{e}");
}

#[test]
fn a_socket_never_created_is_caught_when_the_script_is_read() {
    let src =
        "host a 10.0.0.1\nhost b 10.0.0.2\nb listen 80 as l\n# comment\na send nosuch \"x\"\n";
    let e = parse("r.tcpfsm", src).unwrap_err();
    assert_eq!(
        e.to_string(),
        "r.tcpfsm:5: no socket named \"nosuch\" (create it with listen, accept or connect); sockets: l"
    );
    // `wait until` on a name no statement creates would only time out after 10 minutes.
    let src = "host a 10.0.0.1\nhost b 10.0.0.2\nb listen 80 as l\na connect b:80 as c\nwait until cc ESTABLISHED\n";
    let e = parse("w.tcpfsm", src).unwrap_err();
    assert_eq!(e.line, 5, "{e}");
    assert!(e.msg.starts_with("no socket named \"cc\""), "{e}");
    assert!(e.msg.ends_with("sockets: l, c"), "{e}");
    // … and a name created only further down is named as such.
    let src = "host a 10.0.0.1\nhost b 10.0.0.2\nb listen 80 as l\nexpect c ESTABLISHED\na connect b:80 as c\n";
    let e = parse("w.tcpfsm", src).unwrap_err();
    assert_eq!(e.line, 4, "{e}");
    assert!(e.msg.contains("created only at line 5"), "{e}");
    // Names made in a repeat exist for its iterations only: r0 … r23.
    let ok = "host a 10.0.0.1\nhost b 10.0.0.2\nb listen 80 as l\nrepeat 24 {\n  a connect b:80 as r$i\n}\nexpect r23 ESTABLISHED\n";
    assert!(parse("r.tcpfsm", ok).is_ok());
    let e = parse("r.tcpfsm", &ok.replace("r23", "r24")).unwrap_err();
    assert_eq!(e.line, 7, "{e}");
}

#[test]
fn errors_inside_repeat_blocks_point_at_the_inner_line() {
    let src = "host a 10.0.0.1\nhost b 10.0.0.2\nrepeat 2 {\n  wait 1s\n  a shutdown c$i\n}\n";
    let e = run_source("r.tcpfsm", src, None).unwrap_err();
    assert_eq!(e.line, 5);
    assert!(e.msg.contains("\"c$i\""), "{e}");
}

#[test]
fn a_duplicate_as_name_is_an_error() {
    let src = "host a 10.0.0.1\nhost b 10.0.0.2\nb listen 80 as l\na connect b:80 as c\nb accept l as c\n";
    let e = parse("d.tcpfsm", src).unwrap_err();
    assert_eq!(
        e.to_string(),
        "d.tcpfsm:5: socket name \"c\" is already bound at line 4 (`as NAME` needs a name of its own)"
    );
    // c$i in a repeat 3 is c0, c1, c2: a later c2 collides, c3 does not.
    let base = "host a 10.0.0.1\nhost b 10.0.0.2\nb listen 80 as l\nrepeat 3 {\n  a connect b:80 as c$i\n}\n";
    let e = parse("d.tcpfsm", &format!("{base}a connect b:80 as c2\n")).unwrap_err();
    assert_eq!(e.line, 7, "{e}");
    assert!(e.msg.contains("already bound at line 5"), "{e}");
    assert!(parse("d.tcpfsm", &format!("{base}a connect b:80 as c3\n")).is_ok());
    // A name without the repeat's variable would be bound again by every iteration.
    let src = "host a 10.0.0.1\nhost b 10.0.0.2\nb listen 80 as l\nrepeat 3 {\n  a connect b:80 as c\n}\n";
    let e = parse("d.tcpfsm", src).unwrap_err();
    assert_eq!(e.line, 5, "{e}");
    assert!(
        e.msg
            .contains("every iteration of the repeat at line 4; put $i in it"),
        "{e}"
    );
}

#[test]
fn a_misspelled_host_says_unknown_host_or_action() {
    let src = "host client 10.0.0.1\nhost server 10.0.0.2\nsever listen 80 as l\n";
    let e = parse("h.tcpfsm", src).unwrap_err();
    assert_eq!(
        e.to_string(),
        "h.tcpfsm:3: unknown host or action \"sever\" (did you mean \"server\"?); hosts: client, server"
    );
    let e = parse("h.tcpfsm", "host a 10.0.0.1\nwiat 1s\n").unwrap_err();
    assert!(e.msg.contains("did you mean \"wait\""), "{e}");
}

#[test]
fn a_port_outside_0_to_65535_says_so() {
    for (stmt, port) in [
        ("b listen 65536 as l", "65536"),
        ("a connect b:70000 as c", "70000"),
        ("a connect 10.0.0.2:99999 as c", "99999"),
        ("a connect b:80 from 123456 as c", "123456"),
        (
            "b listen 10.0.0.2:99999999999999999999 as l",
            "99999999999999999999",
        ),
    ] {
        let src = format!("host a 10.0.0.1\nhost b 10.0.0.2\n{stmt}\n");
        let e = parse("p.tcpfsm", &src).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("p.tcpfsm:3: port {port} is outside 0–65535"),
            "{stmt}"
        );
    }
    let src = "host a 10.0.0.1\nhost b 10.0.0.2\nb listen 65535 as l\na connect b:65535 as c\n";
    assert!(parse("p.tcpfsm", src).is_ok());
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
