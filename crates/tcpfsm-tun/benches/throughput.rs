//! Bulk throughput of our TCP against the Linux kernel's over a TUN device, both directions.
//! Not a test: it prints numbers.
//!
//!     cargo bench -p tcpfsm-tun --bench throughput
//!     TCPFSM_BENCH_MIB=512 TCPFSM_BENCH_MTU=1500,9000 TCPFSM_BENCH_FAMILY=v4,v6 \
//!         TCPFSM_BENCH_DIR=out,in cargo bench -p tcpfsm-tun --bench throughput
//!
//! Needs root (network namespace + TUN). Each run gets its own namespace, deleted afterwards.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tcpfsm_tun::netns::NetNs;
use tcpfsm_tun::{Stack, StackConfig, TcpListener, TcpStream};

const CHUNK: usize = 256 * 1024;

fn env_list(key: &str, default: &str) -> Vec<String> {
    std::env::var(key)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn main() {
    if !tcpfsm_tun::is_root() {
        eprintln!("SKIPPED (needs root): the throughput bench creates a network namespace and a TUN device");
        return;
    }
    let mib: usize = std::env::var("TCPFSM_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let bytes = mib * 1024 * 1024;
    let mtus: Vec<u32> = env_list("TCPFSM_BENCH_MTU", "1500,9000")
        .iter()
        .map(|m| m.parse().expect("TCPFSM_BENCH_MTU: comma-separated MTUs"))
        .collect();
    let families = env_list("TCPFSM_BENCH_FAMILY", "v4");
    // "out" = ours->kernel, "in" = kernel->ours.
    let dirs = env_list("TCPFSM_BENCH_DIR", "out,in");
    println!(
        "reproduce: TCPFSM_BENCH_MIB={mib} TCPFSM_BENCH_MTU={} TCPFSM_BENCH_FAMILY={} TCPFSM_BENCH_DIR={} cargo bench -p tcpfsm-tun --bench throughput",
        mtus.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
        families.join(","),
        dirs.join(",")
    );
    // CPU seconds of the whole process (our stack, the driver, and the kernel's TCP working for
    // the peer sockets, which live in this process too): steadier than wall time on a busy box.
    println!(
        "{:<5} {:>5} {:<14} {:>6} {:>8} {:>10} {:>7} {:>8} {:>10}",
        "fam", "mtu", "direction", "MiB", "seconds", "bytes/s", "Gbit/s", "cpu s", "MiB/cpu-s"
    );
    for fam in &families {
        let v6 = fam == "v6";
        for &mtu in &mtus {
            let ns_name = format!("tcpfsm-bench-{}-{mtu}-{fam}", std::process::id());
            let ns = NetNs::create(&ns_name).expect("ip netns add");
            let stack = Stack::new(StackConfig {
                tun_name: "tfsmb0".into(),
                netns: Some(ns_name.clone()),
                mtu,
                ..StackConfig::default()
            })
            .expect("stack");
            for ours_send in [true, false] {
                if !dirs
                    .iter()
                    .any(|d| d == if ours_send { "out" } else { "in" })
                {
                    continue;
                }
                let cpu0 = cpu_seconds();
                let (secs, moved) = run(&ns, &stack, v6, ours_send, bytes);
                let cpu = cpu_seconds() - cpu0;
                let mib = moved as f64 / (1024.0 * 1024.0);
                let dir = if ours_send {
                    "ours->kernel"
                } else {
                    "kernel->ours"
                };
                println!(
                    "{:<5} {:>5} {:<14} {:>6.0} {:>8.3} {:>10.3e} {:>7.3} {:>8.3} {:>10.1}",
                    fam,
                    mtu,
                    dir,
                    mib,
                    secs,
                    moved as f64 / secs,
                    moved as f64 * 8.0 / secs / 1e9,
                    cpu,
                    mib / cpu
                );
            }
            let st = stack.stats();
            let ds = stack.driver_stats();
            println!(
                "      our segments out {} in {} retransmitted {}; driver wakeups {} rx {} tx {}",
                st[tcpfsm_core::Counter::OutSegs],
                st[tcpfsm_core::Counter::InSegs],
                st[tcpfsm_core::Counter::RetransSegs],
                ds.wakeups,
                ds.rx_packets,
                ds.tx_packets
            );
            drop(stack);
            drop(ns);
        }
    }
}

/// User + system CPU time of this process so far.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Moves `bytes` one way; the clock runs from the first write to the last byte read.
fn run(ns: &NetNs, stack: &Stack, v6: bool, ours_send: bool, bytes: usize) -> (f64, usize) {
    let data = vec![0x5au8; CHUNK];
    let timeout = Some(Duration::from_secs(60));
    if ours_send {
        let addr = SocketAddr::new(stack.host_ip(v6).unwrap(), 7001);
        let kl = ns
            .run(|| std::net::TcpListener::bind(addr))
            .unwrap()
            .unwrap();
        let reader = std::thread::spawn(move || {
            let (mut k, _) = kl.accept().unwrap();
            k.set_read_timeout(timeout).unwrap();
            let mut buf = vec![0u8; CHUNK];
            let mut n = 0;
            loop {
                let r = k.read(&mut buf).unwrap();
                if r == 0 {
                    return (Instant::now(), n);
                }
                n += r;
            }
        });
        let mut s = TcpStream::connect_timeout(stack, addr, Duration::from_secs(10)).unwrap();
        s.set_write_timeout(timeout).unwrap();
        let t0 = Instant::now();
        let mut left = bytes;
        while left > 0 {
            let n = left.min(CHUNK);
            s.write_all(&data[..n]).unwrap();
            left -= n;
        }
        drop(s);
        let (t1, n) = reader.join().unwrap();
        ((t1 - t0).as_secs_f64(), n)
    } else {
        let addr = SocketAddr::new(stack.local_ip(v6).unwrap(), 7002);
        let l = TcpListener::bind(stack, addr).unwrap();
        let writer = {
            let data = data.clone();
            let k = ns
                .run(|| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10)))
                .unwrap()
                .unwrap();
            std::thread::spawn(move || {
                let mut k = k;
                k.set_write_timeout(timeout).unwrap();
                let t0 = Instant::now();
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(CHUNK);
                    k.write_all(&data[..n]).unwrap();
                    left -= n;
                }
                t0
            })
        };
        let (mut s, _) = l.accept_timeout(Duration::from_secs(10)).unwrap();
        s.set_read_timeout(timeout).unwrap();
        let mut buf = vec![0u8; CHUNK];
        let mut n = 0;
        loop {
            let r = s.read(&mut buf).unwrap();
            if r == 0 {
                break;
            }
            n += r;
        }
        let t1 = Instant::now();
        let t0 = writer.join().unwrap();
        ((t1 - t0).as_secs_f64(), n)
    }
}
