//! Per-packet cost of the hot paths, measured without a benchmark framework (the crate keeps
//! zero dependencies). Run: `cargo bench -p tcpfsm-wire`.
//!
//! Prints the median ns per operation over rounds that visit every operation in turn (so a
//! noisy neighbour slows them all alike), and checksum throughput. The side-by-side suite
//! against smoltcp is `crates/tcpfsm-bench`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use tcpfsm_wire::*;

const ROUNDS: usize = 31;

fn repr(payload: &[u8]) -> TcpRepr<'_> {
    TcpRepr {
        src_port: 40000,
        dst_port: 443,
        seq: SeqNum(1),
        ack: SeqNum(2),
        flags: Flags::ACK | Flags::PSH,
        window: 512,
        urgent: 0,
        options: TcpOptions {
            timestamps: Some(Timestamps { tsval: 1, tsecr: 2 }),
            ..TcpOptions::default()
        },
        payload,
    }
}

type Op<'a> = (String, u32, Box<dyn FnMut() + 'a>);

fn main() {
    let v4 = (
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
    );
    let v6 = (
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)),
    );
    let mss_payload = vec![0x5au8; 1448];
    let big = vec![0xa5u8; 65536];
    let mut ops: Vec<Op<'_>> = Vec::new();
    for (fam, (src, dst)) in [("ipv4", v4), ("ipv6", v6)] {
        for (what, payload) in [("ack (0 B)", &[][..]), ("data (1448 B)", &mss_payload[..])] {
            let r = repr(payload);
            let mut buf = Vec::with_capacity(1600);
            emit_ip_tcp(src, dst, &r, &mut buf).unwrap();
            let dgram = buf.clone();
            ops.push((
                format!("emit_ip_tcp {fam} {what}"),
                20_000,
                Box::new(move || {
                    emit_ip_tcp(src, dst, black_box(&r), &mut buf).unwrap();
                }),
            ));
            ops.push((
                format!("parse_ip_tcp {fam} {what}"),
                20_000,
                Box::new(move || {
                    black_box(parse_ip_tcp(black_box(&dgram)).unwrap());
                }),
            ));
        }
    }
    let data = &big;
    ops.push((
        "checksum 64 KiB".into(),
        200,
        Box::new(move || {
            black_box(checksum::checksum(black_box(data)));
        }),
    ));
    let mut samples = vec![Vec::with_capacity(ROUNDS); ops.len()];
    for _ in 0..ROUNDS {
        for (i, (_, iters, f)) in ops.iter_mut().enumerate() {
            let t = Instant::now();
            for _ in 0..*iters {
                f();
            }
            samples[i].push(t.elapsed().as_nanos() as f64 / *iters as f64);
        }
    }
    println!(
        "{:<34} {:>10}  (median of {ROUNDS} interleaved rounds)",
        "operation", "ns/op"
    );
    for ((name, _, _), s) in ops.iter().zip(&mut samples) {
        s.sort_by(f64::total_cmp);
        let ns = s[s.len() / 2];
        if name.starts_with("checksum") {
            println!("{name:<34} {ns:>10.1}  ({:.2} GB/s)", big.len() as f64 / ns);
        } else {
            println!("{name:<34} {ns:>10.1}");
        }
    }
}
