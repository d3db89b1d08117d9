//! Renderers: determinism of the trace, the JSON schema, SVG well-formedness and lanes, and
//! the ASCII diagram's width.

use tcpfsm_sim::render::{self, Options};
use tcpfsm_sim::{builtins, run_builtin, run_source};
use tcpfsm_states::State;

fn json_of(name: &str, seed: u64) -> String {
    let out = run_builtin(name, Some(seed)).unwrap().unwrap();
    render::json(&out.trace)
}

#[test]
fn same_seed_gives_byte_identical_json() {
    for b in builtins() {
        assert_eq!(json_of(b.name, 42), json_of(b.name, 42), "{}", b.name);
    }
}

#[test]
fn same_seed_is_identical_under_impairments_and_different_seeds_differ() {
    let src = "host a 10.0.0.1\nhost b 10.0.0.2\n\
               link a <-> b delay 20ms jitter 15ms loss 10% dup 5% reorder 10% corrupt 2%\n\
               b listen 80 as l\na connect b:80 as c\nb accept l as s\n\
               a send c 60000 bytes\nb recv s 60000\na close c\nb recv-until-eof s\nb close s\n\
               wait until c CLOSED and s CLOSED\n";
    let run = |seed| render::json(&run_source("imp.tcpfsm", src, Some(seed)).unwrap().trace);
    let first = run(9);
    assert_eq!(first, run(9));
    assert_ne!(first, run(10));
    assert!(
        first.contains(r#""fate":"dropped""#),
        "10% loss dropped nothing"
    );
}

#[test]
fn json_lines_follow_the_documented_schema() {
    let text = json_of("lost-final-ack", 1);
    let mut kinds = std::collections::BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {i}: {e}"));
        let ev = v["event"].as_str().expect("every line has an event");
        kinds.insert(ev.to_string());
        match ev {
            "scenario" => assert_eq!(i, 0),
            "state" => {
                for k in ["t_us", "host", "conn", "from", "to", "cause"] {
                    assert!(!v[k].is_null(), "state lacks {k}: {line}");
                }
                for k in ["from", "to"] {
                    let name = v[k].as_str().unwrap();
                    assert!(State::ALL.iter().any(|s| s.name() == name), "{name}");
                }
                let conn = v["conn"].as_str().unwrap();
                assert!(conn.contains("10.0.0."), "{conn}");
            }
            "segment" => {
                for k in [
                    "t_us", "frame", "src", "dst", "flags", "seq", "ack", "len", "fate",
                ] {
                    assert!(!v[k].is_null(), "segment lacks {k}: {line}");
                }
                // Options and analysis are always there, empty or not.
                assert!(v["options"].is_object(), "{line}");
                assert!(v["analysis"].is_array(), "{line}");
                if v["flags"].as_str().unwrap().contains("SYN") {
                    assert_eq!(v["options"]["mss"], 1460, "{line}");
                    assert_eq!(v["options"]["sack_permitted"], true, "{line}");
                }
                let fate = v["fate"].as_str().unwrap();
                assert!(["delivered", "dropped", "duplicated", "corrupted"].contains(&fate));
            }
            "app" => {
                for k in ["t_us", "host", "call", "sock", "ok", "result"] {
                    assert!(!v[k].is_null(), "app lacks {k}: {line}");
                }
            }
            "note" => assert!(v["kind"].is_string() && v["text"].is_string()),
            other => panic!("unknown event {other}"),
        }
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["app", "note", "scenario", "segment", "state"]
    );
    // A state change exactly as the README shows it.
    assert!(text
        .lines()
        .any(|l| l.starts_with(r#"{"event":"state","t_us":"#)
            && l.contains(r#""host":"client","conn":"10.0.0.1:"#)
            && l.contains(r#""from":"SYN_SENT","to":"ESTABLISHED","cause":"SYN acked"}"#)));
    assert!(text.contains(r#""flags":"SYN,ACK""#));
    assert!(text.contains(r#""fate":"dropped""#));
    // LAST_ACK's second FIN and TIME_WAIT's answer, as Wireshark names them.
    assert!(text.contains(r#""analysis":["retransmission"]"#), "{text}");
    assert!(
        text.contains(r#""analysis":["dup_ack 1"],"dup_ack_of":7"#),
        "{text}"
    );
    // Frames are numbered 1, 2, … in the order sent.
    let frames: Vec<u64> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["frame"].as_u64())
        .collect();
    assert_eq!(frames, (1..=frames.len() as u64).collect::<Vec<_>>());
}

#[test]
fn svg_is_well_formed_with_one_lane_per_host() {
    for name in ["client-close", "syn-flood", "time-wait-exhaustion"] {
        let out = run_builtin(name, Some(1)).unwrap().unwrap();
        let svg = render::svg(&out.trace, &Options::default());
        let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{name}: {e}"));
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        let lanes: Vec<&str> = root
            .descendants()
            .filter(|n| n.attribute("class") == Some("lane"))
            .filter_map(|n| n.attribute("data-host"))
            .collect();
        let hosts: Vec<&str> = out.trace.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(lanes, hosts, "{name}");
        // Every state box is coloured by its phase.
        let states = root
            .descendants()
            .filter(|n| n.attribute("class") == Some("state"))
            .count();
        assert!(states > 0);
        for n in root
            .descendants()
            .filter(|n| n.attribute("class") == Some("state"))
        {
            let st: State = n.attribute("data-state").unwrap().parse().unwrap();
            let rect = n
                .children()
                .find(|c| c.tag_name().name() == "rect")
                .unwrap();
            assert_eq!(
                rect.attribute("fill"),
                Some(render::phase_colour(st.phase())),
                "{name}: {st}"
            );
        }
    }
    let out = run_builtin("lost-final-ack", Some(1)).unwrap().unwrap();
    let svg = render::svg(&out.trace, &Options::default());
    let doc = roxmltree::Document::parse(&svg).unwrap();
    assert_eq!(
        doc.descendants()
            .filter(|n| n.attribute("data-fate") == Some("dropped"))
            .count(),
        1
    );
}

#[test]
fn ascii_fits_80_columns_and_marks_the_lost_segment() {
    for b in builtins() {
        let out = run_builtin(b.name, Some(1)).unwrap().unwrap();
        for relative_seq in [true, false] {
            let opts = Options {
                relative_seq,
                ..Options::default()
            };
            let text = render::ascii(&out.trace, &opts);
            for line in text.lines() {
                assert!(line.chars().count() <= 80, "{}: {line:?}", b.name);
            }
            assert!(text.contains("State paths:"));
        }
    }
    let out = run_builtin("lost-final-ack", Some(1)).unwrap().unwrap();
    let text = render::ascii(&out.trace, &Options::default());
    let lost: Vec<&str> = text.lines().filter(|l| l.contains("─X")).collect();
    assert_eq!(lost.len(), 1, "{text}");
    assert!(
        lost[0].contains("ACK seq=2 ack=2"),
        "relative numbers: {}",
        lost[0]
    );
    assert!(text.contains("LAST_ACK → CLOSED"));
    let abs = render::ascii(
        &out.trace,
        &Options {
            relative_seq: false,
            ..Options::default()
        },
    );
    assert!(
        !abs.contains("SYN seq=0 "),
        "absolute numbers are not all zero"
    );
}

#[test]
fn long_repeats_and_floods_are_summarized_in_the_diagram() {
    let out = run_builtin("time-wait-exhaustion", Some(1))
        .unwrap()
        .unwrap();
    let text = render::ascii(&out.trace, &Options::default());
    assert!(text.contains("iterations 2–15 hidden"), "{text}");
    assert!(text.lines().count() < 200);
    let out = run_builtin("syn-flood", Some(1)).unwrap().unwrap();
    let text = render::ascii(&out.trace, &Options::default());
    // The flood and the servers' answers into the void: one band per burst, in 80 columns,
    // with the real clients' segments drawn between the bands.
    let one_line = text.replace("\n            ", " ");
    assert!(
        one_line.contains("▒ spoofed-source traffic, 0.000s–0.010s, 408 events: 120 SYN spoofed → plain; 120 SYN spoofed → cookie; plain: 16 → SYN_RECEIVED (SYN received); 16 SYN,ACK plain → spoofed (no route)"),
        "{text}"
    );
    assert_eq!(
        text.matches("▒ spoofed-source traffic").count(),
        5,
        "{text}"
    );
    assert!(text.lines().count() < 70, "{text}");
    assert!(text.lines().all(|l| l.chars().count() <= 80));
    assert!(text.contains("│── SYN 0 [rtx] ─▶│"), "{text}");
    let full = render::ascii(
        &out.trace,
        &Options {
            collapse_after: usize::MAX / 2,
            ..Options::default()
        },
    );
    assert!(full.lines().count() > text.lines().count() + 200);
}

#[test]
fn every_lost_segment_is_drawn_with_an_x_in_either_direction() {
    let src = "host a 10.0.0.1\nhost b 10.0.0.2\n\
               link a <-> b delay 20ms loss 15%\n\
               b listen 80 as l\na connect b:80 as c\nb accept l as s\n\
               b send s 30000 bytes\na recv c 30000 timeout 5m\na send c 30000 bytes\nb recv s 30000 timeout 5m\n";
    let out = run_source("loss.tcpfsm", src, Some(11)).unwrap();
    let dropped = out
        .trace
        .segments()
        .filter(|s| s.fate == tcpfsm_sim::Fate::Dropped)
        .count();
    assert!(dropped > 2);
    let text = render::ascii(
        &out.trace,
        &Options {
            collapse_after: usize::MAX / 2,
            ..Options::default()
        },
    );
    let right = text.lines().filter(|l| l.contains("─X")).count();
    let left = text.lines().filter(|l| l.contains("X─")).count();
    assert!(right > 0 && left > 0, "{text}");
    assert_eq!(right + left, dropped, "{text}");
}

#[test]
fn a_host_connecting_to_itself_is_drawn_as_a_loop() {
    let out = run_source(
        "self.tcpfsm",
        "host a 10.0.0.1\nhost b 10.0.0.2\na listen 80 as l\na connect a:80 as c\na accept l as s\n",
        None,
    )
    .unwrap();
    assert!(out.passed(), "{:?}", out.failures);
    let text = render::ascii(&out.trace, &Options::default());
    assert!(text.contains("↺ SYN seq=0"), "{text}");
    let svg = render::svg(&out.trace, &Options::default());
    assert!(roxmltree::Document::parse(&svg).is_ok());
}

/// At 80 columns nothing a reader needs is cut short: a state's cause, an application call's
/// result ("listening on 10.0.0.2:80"), a summary's counts. The only ellipses left are the
/// deliberate ones in a quoted data preview ("abcdefgh…).
#[test]
fn ascii_at_80_columns_cuts_only_data_previews() {
    for b in builtins() {
        let out = run_builtin(b.name, Some(1)).unwrap().unwrap();
        let text = render::ascii(&out.trace, &Options::default());
        for line in text.lines().filter(|l| l.contains('…')) {
            let before = &line[..line.find('…').unwrap()];
            assert!(
                before.matches('"').count() % 2 == 1,
                "{}: cut short: {line:?}",
                b.name
            );
        }
    }
    let out = run_builtin("time-wait-exhaustion", Some(1))
        .unwrap()
        .unwrap();
    let text = render::ascii(&out.trace, &Options::default());
    assert!(text.contains("listening on 10.0.0.2:80"), "{text}");
    let out = run_builtin("syn-flood", Some(1)).unwrap().unwrap();
    let text = render::ascii(&out.trace, &Options::default());
    assert!(text.contains("(SYN cookie acked)"), "{text}");
}
