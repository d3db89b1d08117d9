//! TUN offloads (`StackConfig::offloads`) against the Linux kernel: with them, the kernel's
//! TSO super-segments reach us whole (their partial checksums completed) and runs of our
//! segments go out as super-segments; the stream is byte-exact both ways and neither side
//! counts a checksum error. Without them, no datagram carries more than one segment.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;

use common::{pattern, sha256, Env, Family, MIB};
use tcpfsm_tun::core::Counter;
use tcpfsm_tun::StackConfig;

/// The kernel's TCP counter `name` (`Tcp:` line of the namespace's /proc/net/snmp).
fn kernel_tcp_counter(env: &Env, name: &str) -> u64 {
    let snmp = env.kernel(|| std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap());
    let mut lines = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (head, vals) = (lines.next().unwrap(), lines.next().unwrap());
    let i = head.split_whitespace().position(|h| h == name).unwrap();
    vals.split_whitespace().nth(i).unwrap().parse().unwrap()
}

/// 8 MiB from us to the kernel, then 8 MiB back, on one connection; returns the driver's
/// counters.
fn both_ways(fam: Family, offloads: bool) -> tcpfsm_tun::DriverStats {
    let env = Env::with_config(
        fam,
        StackConfig {
            offloads,
            ..StackConfig::default()
        },
    );
    let (mut s, mut k, _l) = env.kernel_client_pair(7200);
    let up = pattern(8 * MIB, 1);
    let down = pattern(8 * MIB, 2);
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while got.len() < 8 * MIB {
            let n = k.read(&mut buf).unwrap();
            assert!(n > 0, "the kernel got end of stream early");
            got.extend_from_slice(&buf[..n]);
        }
        (k, got)
    });
    s.write_all(&up).unwrap();
    let (mut k, got) = reader.join().unwrap();
    assert!(
        sha256(&got) == sha256(&up),
        "the kernel got our 8 MiB exactly"
    );
    let sent = down.clone();
    let writer = std::thread::spawn(move || {
        k.write_all(&sent).unwrap();
        k.shutdown(Shutdown::Write).unwrap();
        k
    });
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert!(
        sha256(&back) == sha256(&down),
        "we got the kernel's 8 MiB exactly"
    );
    drop(writer.join().unwrap());
    assert_eq!(env.stack.stats()[Counter::InCsumErrors], 0, "ours verify");
    assert_eq!(
        kernel_tcp_counter(&env, "InCsumErrors"),
        0,
        "the kernel's verify"
    );
    env.stack.driver_stats()
}

fn super_segments_both_ways_with_offloads(fam: Family) {
    let d = both_ways(fam, true);
    assert!(d.tx_super_segments > 0, "our runs went out merged: {d:?}");
    assert!(
        d.rx_super_segments > 0,
        "the kernel's TSO reached us whole: {d:?}"
    );
    assert!(
        d.rx_checksums_completed > 0,
        "partial checksums completed: {d:?}"
    );
    // 8 MiB in 1460-byte segments is 5,746 of them: far fewer writes carried them.
    assert!(d.tx_packets >= 5_746, "every segment counted: {d:?}");
}

fn one_segment_per_datagram_without_offloads(fam: Family) {
    let d = both_ways(fam, false);
    assert_eq!(
        (
            d.tx_super_segments,
            d.rx_super_segments,
            d.rx_checksums_completed
        ),
        (0, 0, 0),
        "{d:?}"
    );
}

both_families!(
    offloads_carry_super_segments_and_the_stream_is_byte_exact,
    super::super_segments_both_ways_with_offloads
);
both_families!(
    without_offloads_each_datagram_is_one_segment,
    super::one_segment_per_datagram_without_offloads
);
