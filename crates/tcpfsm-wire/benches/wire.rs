//! Per-packet cost of the hot paths, measured without a benchmark framework
//! (the crate keeps zero dependencies). Run: `cargo bench -p tcpfsm-wire`.
//! Prints ns per operation (best of several rounds) and checksum throughput.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use tcpfsm_wire::*;

fn best_ns_per_iter(iters: u32, mut f: impl FnMut()) -> f64 {
    let mut best = Duration::MAX;
    // Many short rounds, keep the fastest: on a shared machine the minimum
    // is the round least disturbed by other processes.
    for _ in 0..60 {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        best = best.min(t.elapsed());
    }
    best.as_nanos() as f64 / iters as f64
}

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
    println!("{:<34} {:>10}", "operation", "ns/op");
    for (fam, (src, dst)) in [("ipv4", v4), ("ipv6", v6)] {
        for (what, payload) in [("ack (0 B)", &[][..]), ("data (1448 B)", &mss_payload[..])] {
            let r = repr(payload);
            let mut buf = Vec::with_capacity(1600);
            let ns = best_ns_per_iter(20_000, || {
                emit_ip_tcp(src, dst, black_box(&r), &mut buf).unwrap();
            });
            println!("{:<34} {:>10.1}", format!("emit_ip_tcp {fam} {what}"), ns);
            let dgram = buf.clone();
            let ns = best_ns_per_iter(20_000, || {
                black_box(parse_ip_tcp(black_box(&dgram)).unwrap());
            });
            println!("{:<34} {:>10.1}", format!("parse_ip_tcp {fam} {what}"), ns);
        }
    }
    let data = vec![0xa5u8; 65536];
    let ns = best_ns_per_iter(100, || {
        black_box(checksum::checksum(black_box(&data)));
    });
    println!(
        "{:<34} {:>10.1}  ({:.2} GB/s)",
        "checksum 64 KiB",
        ns,
        data.len() as f64 / ns
    );
}
