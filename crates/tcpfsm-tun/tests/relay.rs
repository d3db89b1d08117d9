//! The impairment relay on real packets: two kernels in two network namespaces talk through
//! it (kernel ↔ relay ↔ kernel), and our stack talks to the kernel through it (ours ↔ relay
//! ↔ kernel). Transfers complete byte-exact under loss, reordering, duplication and
//! corruption; the round-trip time is the configured delay; a rate limit caps throughput.
//! Needs root; skips loudly otherwise.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tcpfsm_tun::impair::Impairment;
use tcpfsm_tun::netns::NetNs;
use tcpfsm_tun::{
    kernel_tcp_info, ImpairedStack, RelayConfig, StackConfig, TestBed, TestBedConfig, Way,
};

const STEP: Duration = Duration::from_secs(60);

static NEXT: AtomicU32 = AtomicU32::new(0);

fn unique(tag: &str) -> String {
    format!(
        "tfr{tag}{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn skip(test: &str) -> bool {
    !tcpfsm_testkit::require_root(&format!(
        "{test} creates network namespaces and TUN devices"
    ))
}

fn imp(spec: &str) -> Impairment {
    spec.parse().unwrap()
}

fn bed(up: &str, down: &str, seed: u64) -> TestBed {
    let cfg = TestBedConfig::new(RelayConfig::new(imp(up), imp(down), seed));
    TestBed::create(&unique("k"), cfg).expect("test bed")
}

/// Deterministic pseudo-random payload.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `Tcp:` counters of the calling thread's namespace (`/proc/thread-self/net/snmp`).
fn snmp_tcp(name: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap();
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next().unwrap(), tcp.next().unwrap());
    let i = names.split_whitespace().position(|n| n == name).unwrap();
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

/// B sends `data` to a listener in A; returns what A received and the sender's kernel retransmit
/// count (tcp_info).
fn kernel_to_kernel(bed: &TestBed, v6: bool, data: &[u8]) -> (Vec<u8>, u32) {
    let addr = SocketAddr::new(bed.addr_a(v6), 5001);
    let listener = bed.in_a(|| TcpListener::bind(addr)).unwrap().unwrap();
    std::thread::scope(|s| {
        let rx = s.spawn(|| {
            let (mut c, _) = listener.accept().unwrap();
            c.set_read_timeout(Some(STEP)).unwrap();
            let mut got = Vec::new();
            c.read_to_end(&mut got).unwrap();
            got
        });
        let mut tx = bed
            .in_b(|| TcpStream::connect_timeout(&addr, STEP))
            .unwrap()
            .unwrap();
        tx.set_write_timeout(Some(STEP)).unwrap();
        tx.write_all(data).unwrap();
        tx.shutdown(std::net::Shutdown::Write).unwrap();
        let got = rx.join().unwrap();
        let retrans = kernel_tcp_info(&tx).unwrap().total_retrans;
        (got, retrans)
    })
}

fn kernel_transfer_survives_loss_reordering_duplication_and_corruption(v6: bool) {
    let spec = "delay 2ms loss 2% reorder 5% reorder-packets 3 dup 1% corrupt 0.5%";
    let bed = bed(spec, spec, 7);
    let data = payload(8 << 20, 1);
    let csum_errors_before = bed.in_a(|| snmp_tcp("InCsumErrors")).unwrap();
    let (got, retrans) = kernel_to_kernel(&bed, v6, &data);
    assert_eq!(got.len(), data.len());
    assert!(
        Sha256::digest(&got) == Sha256::digest(&data),
        "payload differs"
    );
    // The data went B → A, the "down" direction.
    let st = bed.relay().stats();
    assert!(st.down.dropped_loss > 50, "{st:?}");
    assert!(st.down.reordered > 100 && st.down.duplicated > 20 && st.down.corrupted > 10);
    assert!(retrans > 0, "the kernel sender retransmitted nothing");
    // The receiving kernel rejected the corrupted segments by their checksum.
    let csum_errors = bed.in_a(|| snmp_tcp("InCsumErrors")).unwrap() - csum_errors_before;
    assert!(csum_errors > 0, "no checksum error counted in A");
}

#[test]
fn kernel_to_kernel_transfer_through_an_impaired_relay_is_byte_exact_ipv4() {
    if skip("kernel_to_kernel_transfer_through_an_impaired_relay_is_byte_exact_ipv4") {
        return;
    }
    kernel_transfer_survives_loss_reordering_duplication_and_corruption(false);
}

#[test]
fn kernel_to_kernel_transfer_through_an_impaired_relay_is_byte_exact_ipv6() {
    if skip("kernel_to_kernel_transfer_through_an_impaired_relay_is_byte_exact_ipv6") {
        return;
    }
    kernel_transfer_survives_loss_reordering_duplication_and_corruption(true);
}

#[test]
fn round_trip_time_through_the_relay_is_the_configured_delay() {
    if skip("round_trip_time_through_the_relay_is_the_configured_delay") {
        return;
    }
    // 15 ms one way A → B, 25 ms back: 40 ms round trip.
    let bed = bed("delay 15ms", "delay 25ms", 1);
    let addr = SocketAddr::new(bed.addr_a(false), 5002);
    let listener = bed.in_a(|| TcpListener::bind(addr)).unwrap().unwrap();
    let mut handshakes = Vec::new();
    let mut kernel_min_rtt = Duration::MAX;
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..5 {
                let (mut c, _) = listener.accept().unwrap();
                let mut b = [0u8; 1];
                while c.read(&mut b).unwrap() == 1 {
                    c.write_all(&b).unwrap();
                }
            }
        });
        for _ in 0..5 {
            let t = Instant::now();
            let mut c = bed
                .in_b(|| TcpStream::connect_timeout(&addr, STEP))
                .unwrap()
                .unwrap();
            handshakes.push(t.elapsed());
            c.set_nodelay(true).unwrap();
            // A few echoes give the kernel RTT samples of data and ACK.
            for _ in 0..3 {
                c.write_all(b"x").unwrap();
                c.read_exact(&mut [0u8; 1]).unwrap();
            }
            kernel_min_rtt = kernel_min_rtt.min(kernel_tcp_info(&c).unwrap().min_rtt);
        }
    });
    let best = *handshakes.iter().min().unwrap();
    let rtt = Duration::from_millis(40);
    // At least the configured RTT; at most a scheduler's worth more on a busy machine.
    let slack = Duration::from_millis(15);
    assert!(
        best >= rtt && best <= rtt + slack,
        "handshakes {handshakes:?}"
    );
    assert!(
        kernel_min_rtt >= rtt && kernel_min_rtt <= rtt + slack,
        "kernel min_rtt {kernel_min_rtt:?}"
    );
}

#[test]
fn a_rate_limit_on_the_relay_caps_the_kernels_throughput() {
    if skip("a_rate_limit_on_the_relay_caps_the_kernels_throughput") {
        return;
    }
    let rate = 20_000_000.0;
    let bed = bed("delay 5ms", "delay 5ms rate 20mbit queue 100", 3);
    // B → A is the rate-limited direction.
    let data = payload(4 << 20, 2);
    let t = Instant::now();
    let (got, _) = kernel_to_kernel(&bed, false, &data);
    let secs = t.elapsed().as_secs_f64();
    assert!(got == data);
    // Payload plus 52 bytes of IPv4/TCP headers per 1448-byte segment went through the link.
    let wire_bits = data.len() as f64 * 1500.0 / 1448.0 * 8.0;
    assert!(
        wire_bits / secs <= rate * 1.02,
        "{:.1} Mbit/s through a 20 Mbit/s link",
        wire_bits / secs / 1e6
    );
    let st = bed.relay().stats();
    assert!(st.down.queue_peak_bytes > 10 * 1500, "{st:?}");
}

#[test]
fn the_relay_tap_sees_every_datagram_before_the_impairments() {
    if skip("the_relay_tap_sees_every_datagram_before_the_impairments") {
        return;
    }
    let seen = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let s2 = seen.clone();
    let cfg = TestBedConfig::new(RelayConfig::new(imp("loss 10%"), imp("loss 10%"), 5));
    let bed = TestBed::create_with_tap(
        &unique("t"),
        cfg,
        Some(Box::new(move |way, _pkt| {
            s2[(way == Way::Down) as usize].fetch_add(1, Ordering::Relaxed);
        })),
    )
    .unwrap();
    let data = payload(1 << 20, 3);
    let (got, _) = kernel_to_kernel(&bed, false, &data);
    assert!(got == data);
    // The relay's counters are published at its next wakeup: wait for the last ACKs.
    std::thread::sleep(Duration::from_millis(200));
    let st = bed.relay().stats();
    assert_eq!(seen[0].load(Ordering::Relaxed), st.up.packets_in);
    assert_eq!(seen[1].load(Ordering::Relaxed), st.down.packets_in);
    assert!(st.up.dropped_loss > 0 && st.down.dropped_loss > 0);
}

#[test]
fn test_bed_refuses_to_take_over_an_existing_namespace() {
    if skip("test_bed_refuses_to_take_over_an_existing_namespace") {
        return;
    }
    let name = unique("x");
    let _mine = NetNs::create(&format!("{name}-a")).unwrap();
    let cfg = TestBedConfig::new(RelayConfig::new(imp("none"), imp("none"), 1));
    let e = TestBed::create(&name, cfg).err().expect("refused");
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
    assert!(e.to_string().contains("already exists"), "{e}");
    // And the existing namespace is still there.
    assert!(std::path::Path::new(&format!("/run/netns/{name}-a")).exists());
}

/// Our stack sends to the kernel, and the kernel back to us, through an impaired link.
fn our_stack_both_ways(v6: bool) {
    let ns = NetNs::create(&unique("s")).unwrap();
    let spec = "delay 2ms loss 1% reorder 3% dup 1% corrupt 0.2%";
    let cfg = StackConfig {
        tun_name: "tfsm0".into(),
        netns: Some(ns.name().to_string()),
        seed: Some(11),
        ..StackConfig::default()
    };
    let imp_stack = ImpairedStack::new(cfg, RelayConfig::new(imp(spec), imp(spec), 9)).unwrap();
    let stack = &imp_stack.stack;
    let kaddr = SocketAddr::new(stack.host_ip(v6).unwrap(), 6001);
    let kl = ns.run(|| TcpListener::bind(kaddr)).unwrap().unwrap();
    let up = payload(2 << 20, 4);
    let down = payload(1 << 20, 5);
    std::thread::scope(|s| {
        let k = s.spawn(|| {
            let (mut c, _) = kl.accept().unwrap();
            c.set_read_timeout(Some(STEP)).unwrap();
            let mut got = vec![0u8; up.len()];
            c.read_exact(&mut got).unwrap();
            c.write_all(&down).unwrap();
            c.shutdown(std::net::Shutdown::Write).unwrap();
            got
        });
        let mut ours = tcpfsm_tun::TcpStream::connect_timeout(stack, kaddr, STEP).unwrap();
        ours.set_read_timeout(Some(STEP)).unwrap();
        ours.set_write_timeout(Some(STEP)).unwrap();
        ours.write_all(&up).unwrap();
        let mut back = Vec::new();
        ours.read_to_end(&mut back).unwrap();
        assert!(back == down, "kernel → ours differs");
        assert!(k.join().unwrap() == up, "ours → kernel differs");
    });
    let st = imp_stack.relay.stats();
    assert!(st.up.dropped_loss > 0 && st.down.dropped_loss > 0, "{st:?}");
    assert!(stack.stats()[tcpfsm_tun::core::Counter::RetransSegs] > 0);
}

#[test]
fn our_stack_through_an_impaired_link_to_the_kernel_is_byte_exact_ipv4() {
    if skip("our_stack_through_an_impaired_link_to_the_kernel_is_byte_exact_ipv4") {
        return;
    }
    our_stack_both_ways(false);
}

#[test]
fn our_stack_through_an_impaired_link_to_the_kernel_is_byte_exact_ipv6() {
    if skip("our_stack_through_an_impaired_link_to_the_kernel_is_byte_exact_ipv6") {
        return;
    }
    our_stack_both_ways(true);
}
