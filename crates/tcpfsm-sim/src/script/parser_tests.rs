//! The parser's own rules: values, blocks, declarations, error lines.

use super::*;
use tcpfsm_core::SynCookies;

const BASE: &str = "host a 10.0.0.1\nhost b 10.0.0.2\n";

fn parse_err(src: &str) -> String {
    parse("t.tcpfsm", src).unwrap_err().to_string()
}

#[test]
fn durations_take_units() {
    assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
    assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
    assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    assert!(parse_duration("10").is_err());
    assert!(parse_duration("10parsecs").is_err());
}

#[test]
fn quoted_strings_keep_spaces_and_escapes() {
    let t = tokenize(r#"a send c "GET / \"x\"\n" # comment"#).unwrap();
    assert_eq!(t.len(), 4);
    assert_eq!(t[3].text, "GET / \"x\"\n");
    assert!(tokenize(r#"say "open"#).is_err());
}

#[test]
fn a_full_script_parses() {
    let s = parse(
        "t.tcpfsm",
        &format!(
            "{BASE}set b syncookies off\nset a ephemeral_ports 50000-50015\n\
             link a <-> b delay 5ms loss 1%\n\
             b listen 80 as l\na connect b:80 as c\nb accept l as s\n\
             a send c \"hi\"\nb recv s 2\ndrop nth 2 ACK from a\n\
             repeat 3 as k {{\n  a connect b:80 as c$k nowait\n}}\n\
             wait until c ESTABLISHED and quiet timeout 5s\nexpect b has 1 LISTEN\n"
        ),
    )
    .unwrap();
    assert_eq!(s.hosts[1].config.syncookies, SynCookies::Off);
    assert_eq!(s.hosts[0].config.ephemeral_ports, (50000, 50015));
    assert_eq!(s.links.len(), 2);
    assert_eq!(s.links[0].2.loss, tcpfsm_impair::Loss::Bernoulli(0.01));
    assert_eq!(s.stmts.len(), 9);
    assert!(matches!(
        s.stmts[5].action,
        Action::Drop(DropRule {
            skip: 1,
            count: 1,
            flags: FlagMatch::Exact(flag::ACK),
            ..
        })
    ));
    match &s.stmts[6].action {
        Action::Repeat { count, var, body } => {
            assert_eq!((*count, var.as_str(), body.len()), (3, "k", 1));
            assert_eq!(body[0].line, 13);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_action_is_reported_with_its_line() {
    assert_eq!(
        parse_err(&format!("{BASE}\n# x\na conect b:80 as c\n")),
        "t.tcpfsm:5: unknown action \"conect\" (expected one of: listen, accept, connect, send, recv, recv-until-eof, shutdown, close, abort)"
    );
    assert_eq!(
        parse_err(&format!("{BASE}conect a\n")),
        "t.tcpfsm:3: unknown host or action \"conect\"; hosts: a, b"
    );
}

#[test]
fn unknown_host_and_setting_are_reported() {
    assert!(parse_err(&format!("{BASE}c listen 80 as l\n"))
        .starts_with("t.tcpfsm:3: unknown host or action \"c\""));
    assert!(parse_err(&format!("{BASE}a connect z:80 as c\n"))
        .starts_with("t.tcpfsm:3: unknown host \"z\""));
    assert!(parse_err(&format!("{BASE}set a mls 1s\n"))
        .starts_with("t.tcpfsm:3: unknown setting \"mls\""));
    assert!(parse_err(&format!("{BASE}set a ephemeral_ports 9-2\n")).starts_with("t.tcpfsm:3:"));
}

#[test]
fn blocks_must_balance() {
    assert_eq!(
        parse_err(&format!("{BASE}repeat 2 {{\nwait 1s\n")),
        "t.tcpfsm:3: `repeat` block is never closed with `}`"
    );
    assert_eq!(
        parse_err(&format!("{BASE}}}\n")),
        "t.tcpfsm:3: `}` without a matching `repeat … {`"
    );
}

#[test]
fn variables_must_come_from_a_repeat() {
    assert!(parse_err(&format!("{BASE}a connect b:80 as c$i\n"))
        .contains("$i in \"c$i\" is not the variable of an enclosing repeat"));
}

#[test]
fn declarations_come_first() {
    assert_eq!(
        parse_err(&format!("{BASE}wait 1s\nhost c 10.0.0.3\n")),
        "t.tcpfsm:4: `host` must come before the first action"
    );
}

#[test]
fn bad_values_are_reported_not_panicked() {
    for (src, needle) in [
        ("link a <-> b loss 2\n", "outside 0..1"),
        ("link a <-> b speed 2\n", "unknown link property"),
        ("drop FOO from a\n", "unknown TCP flag"),
        ("drop nth 0 ACK from a\n", "nth counts from 1"),
        ("a send c\n", "missing data"),
        ("a send c 12\n", "expected \"bytes\""),
        ("wait until c BOGUS\n", "unknown TCP state"),
        ("host a2 10.0.0.1\n", "already belongs"),
        ("host a3 banana\n", "bad IP address"),
        ("a listen 99999 as l\n", "port 99999 is outside 0–65535"),
        ("a listen 8x as l\n", "bad port \"8x\""),
        ("say \"x\n", "unterminated string"),
    ] {
        let e = parse_err(&format!("{BASE}{src}"));
        assert!(e.starts_with("t.tcpfsm:3: "), "{e}");
        assert!(e.contains(needle), "{e} lacks {needle}");
    }
    assert_eq!(
        parse_err(""),
        "t.tcpfsm: the script declares no host (add e.g. `host client 10.0.0.1`)"
    );
}

#[test]
fn flag_matching_exact_ignores_psh_and_contains_is_a_subset() {
    assert!(FlagMatch::Exact(flag::ACK).matches(flag::ACK | flag::PSH));
    assert!(!FlagMatch::Exact(flag::ACK).matches(flag::ACK | flag::FIN));
    assert!(FlagMatch::Contains(flag::FIN).matches(flag::ACK | flag::FIN));
    assert!(!FlagMatch::Contains(flag::FIN).matches(flag::ACK));
    assert_eq!(flag::bits_of("SYN,ACK"), flag::SYN | flag::ACK);
}
