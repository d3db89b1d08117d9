//! The fuzz seed corpus (fuzz/seeds/parse_ip_tcp) must stay valid input, so
//! the fuzzer starts from datagrams that reach the deep parsing paths.

use std::path::Path;

use tcpfsm_wire::{emit_ip_tcp, parse_ip_tcp};

#[test]
fn fuzz_seeds_parse_and_round_trip() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/parse_ip_tcp");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("seed dir exists") {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let p = parse_ip_tcp(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut again = Vec::new();
        emit_ip_tcp(p.src, p.dst, &p.tcp, &mut again).unwrap();
        let q = parse_ip_tcp(&again).unwrap();
        assert_eq!(
            (q.src, q.dst, &q.tcp),
            (p.src, p.dst, &p.tcp),
            "{}",
            path.display()
        );
        n += 1;
    }
    assert!(n >= 4, "expected at least 4 seeds, found {n}");
}
