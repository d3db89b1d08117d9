//! Random scripts built from the language's own vocabulary: the parser and runner answer with
//! a trace or a line-numbered error, never a panic, and every trace renders and stays on the
//! RFC 9293 graph.

use proptest::prelude::*;
use tcpfsm_sim::render::{self, Options};
use tcpfsm_sim::{is_rfc_transition, run_source};

fn line() -> impl Strategy<Value = String> {
    let host = prop_oneof![Just("a"), Just("b"), Just("zz")];
    let sock = prop_oneof![Just("l"), Just("c"), Just("s"), Just("x")];
    let port = prop_oneof![Just(80u32), Just(81), Just(0), Just(70000)];
    let state = prop_oneof![
        Just("ESTABLISHED"),
        Just("TIME_WAIT"),
        Just("CLOSED"),
        Just("close-wait"),
        Just("BOGUS")
    ];
    let flags = prop_oneof![
        Just("ACK"),
        Just("with FIN"),
        Just("SYN"),
        Just("any"),
        Just("RST,ACK")
    ];
    (host, sock, port, state, flags, 0u32..5000, 0u32..4).prop_flat_map(|(h, s, p, st, f, n, k)| {
        prop_oneof![
            Just(format!("{h} listen {p} as {s}")),
            Just(format!("{h} connect b:{p} as {s}")),
            Just(format!("{h} connect b:{p} as {s} nowait")),
            Just(format!("{h} accept {s} as {s}{k} timeout 2s")),
            Just(format!("{h} send {s} {n} bytes")),
            Just(format!("{h} send {s} \"hello\"")),
            Just(format!("{h} recv {s}")),
            Just(format!("{h} recv {s} {n} timeout 1s")),
            Just(format!("{h} recv-until-eof {s} timeout 3s")),
            Just(format!("{h} shutdown {s}")),
            Just(format!("{h} close {s}")),
            Just(format!("{h} abort {s}")),
            Just(format!("drop {k} {f} from {h}")),
            Just(format!("wait {n}ms")),
            Just(format!("wait until {s} {st} timeout 3s")),
            Just(format!("expect {s} {st}")),
            Just(format!("link a -> b loss {k}0% delay {n}us")),
            Just(format!("inject {n} syn from 192.0.2.1 to {h}:{p}")),
            Just(format!("repeat {k} {{\n{h} connect b:80 as r$i nowait\n}}")),
            Just(format!("diagnose {h}")),
            Just(format!("{h} frobnicate {s}")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_scripts_never_panic_and_stay_on_the_rfc_graph(
        lines in proptest::collection::vec(line(), 1..14),
        seed in 0u64..1000,
    ) {
        let src = format!(
            "host a 10.0.0.1\nhost b 10.0.0.2\nlink a <-> b loss 5% dup 5% reorder 5% jitter 3ms\n{}\n",
            lines.join("\n")
        );
        let again = run_source("fuzz.tcpfsm", &src, Some(seed)).map(|o| render::json(&o.trace));
        match run_source("fuzz.tcpfsm", &src, Some(seed)) {
            Err(e) => prop_assert!(e.to_string().starts_with("fuzz.tcpfsm:"), "{}", e),
            Ok(out) => {
                for (from, to) in out.trace.transitions() {
                    prop_assert!(is_rfc_transition(from, to), "{} -> {}\n{}", from, to, src);
                }
                let opts = Options::default();
                prop_assert!(render::ascii(&out.trace, &opts).lines().all(|l| l.chars().count() <= 80));
                prop_assert_eq!(Ok(render::json(&out.trace)), again, "same seed, same trace");
                prop_assert!(render::svg(&out.trace, &opts).ends_with("</svg>\n"));
            }
        }
    }
}
