//! The impairment engine through its public API: each impairment does what its parameters
//! say, measured over many packets, and the same seed always gives the same output.

use std::time::Duration;

use proptest::prelude::*;
use tcpfsm_impair::{
    Copy, Delivery, DropCause, GilbertElliott, Impairer, Impairment, Loss, QueueLimit, ReorderHold,
    Time,
};

/// An IPv4 datagram of `len` bytes (20-byte header) whose payload starts with `tag`.
fn pkt(len: usize, tag: u32) -> Vec<u8> {
    let mut p = vec![0u8; len.max(24)];
    p[0] = 0x45;
    p[20..24].copy_from_slice(&tag.to_be_bytes());
    p
}

fn tag(p: &[u8]) -> u32 {
    u32::from_be_bytes(p[20..24].try_into().unwrap())
}

fn link(cfg: Impairment, seed: u64) -> Impairer {
    Impairer::new(cfg, seed, 0).unwrap()
}

/// Everything still inside, in delivery order.
fn drain(l: &mut Impairer) -> Vec<Delivery<Vec<u8>>> {
    let mut out = Vec::new();
    while let Some(t) = l.next_deadline() {
        while let Some(d) = l.poll(t) {
            out.push(d);
        }
    }
    out
}

/// Pushes `n` packets of `len` bytes every `gap`, polling as it goes; returns the deliveries.
fn run(l: &mut Impairer, n: u32, len: usize, gap: Duration) -> Vec<Delivery<Vec<u8>>> {
    let mut out = Vec::new();
    let mut now = Time::ZERO;
    for i in 0..n {
        while let Some(t) = l.next_deadline().filter(|t| *t <= now) {
            out.extend(std::iter::from_fn(|| l.poll(t)));
        }
        l.push(now, pkt(len, i));
        now += gap;
    }
    out.extend(drain(l));
    out
}

fn cfg(f: impl FnOnce(&mut Impairment)) -> Impairment {
    let mut c = Impairment::default();
    f(&mut c);
    c
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn measured_bernoulli_loss_converges_to_the_configured_rate(p in 0.0..0.3f64, seed in any::<u64>()) {
        let n = 20_000u32;
        let mut l = link(cfg(|c| c.loss = Loss::Bernoulli(p)), seed);
        let lost = (0..n)
            .filter(|i| l.push(Time::ZERO, pkt(40, *i)).dropped == Some(DropCause::Loss))
            .count() as f64;
        let sigma = (f64::from(n) * p * (1.0 - p)).sqrt();
        prop_assert!((lost - f64::from(n) * p).abs() <= 5.0 * sigma + 2.0,
            "lost {lost} of {n} at p={p}");
        prop_assert_eq!(l.counters().dropped_loss, lost as u64);
    }

    #[test]
    fn same_seed_gives_the_same_output(seed in any::<u64>(), loss in 0.0..0.3f64,
        dup in 0.0..0.3f64, reorder in 0.0..0.3f64, corrupt in 0.0..0.2f64,
        jitter_us in 0u64..5_000, by_packets in any::<bool>(), rate in prop::option::of(1_000_000u64..1_000_000_000),
        lens in prop::collection::vec(40usize..1500, 1..300)) {
        let c = cfg(|c| {
            c.delay = Duration::from_millis(5);
            c.jitter = Duration::from_micros(jitter_us);
            c.loss = Loss::Bernoulli(loss);
            c.duplicate = dup;
            c.reorder = reorder;
            c.corrupt = corrupt;
            c.rate = rate;
            c.queue = QueueLimit::Packets(50);
            if by_packets { c.reorder_hold = ReorderHold::Packets(3); }
        });
        let go = |seed: u64, stream: u64| {
            let mut l: Impairer = Impairer::new(c, seed, stream).unwrap();
            let mut out = Vec::new();
            for (i, len) in lens.iter().enumerate() {
                let now = Time::from_micros(i as u64 * 200);
                out.extend(std::iter::from_fn(|| l.poll(now)).map(|d| (d.id, d.copy, d.due, d.packet)));
                let v = l.push(now, pkt(*len, i as u32));
                out.push((v.id, Copy::Original, v.arrives.unwrap_or(Time::ZERO), vec![v.dropped.is_some() as u8]));
            }
            out.extend(drain(&mut l).into_iter().map(|d| (d.id, d.copy, d.due, d.packet)));
            (out, l.counters())
        };
        prop_assert_eq!(go(seed, 0), go(seed, 0));
    }

    #[test]
    fn order_is_preserved_when_no_reordering_is_configured(seed in any::<u64>(),
        loss in 0.0..0.3f64, dup in 0.0..0.5f64, jitter_us in 0u64..20_000,
        rate in prop::option::of(1_000_000u64..100_000_000), gap_us in 1u64..2_000) {
        let c = cfg(|c| {
            c.delay = Duration::from_millis(10);
            c.jitter = Duration::from_micros(jitter_us);
            c.loss = Loss::Bernoulli(loss);
            c.duplicate = dup;
            c.rate = rate;
        });
        let mut l = link(c, seed);
        let out = run(&mut l, 500, 1000, Duration::from_micros(gap_us));
        let tags: Vec<u32> = out.iter().map(|d| tag(&d.packet)).collect();
        prop_assert!(tags.windows(2).all(|w| w[0] <= w[1]), "out of order: {tags:?}");
        let due: Vec<Time> = out.iter().map(|d| d.due).collect();
        prop_assert!(due.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn counters_account_for_every_packet(seed in any::<u64>(), loss in 0.0..0.3f64,
        dup in 0.0..0.3f64, queue in 1u32..40, rate in 1_000_000u64..50_000_000) {
        let c = cfg(|c| {
            c.loss = Loss::Bernoulli(loss);
            c.duplicate = dup;
            c.rate = Some(rate);
            c.queue = QueueLimit::Packets(queue);
            c.delay = Duration::from_millis(1);
        });
        let mut l = link(c, seed);
        let out = run(&mut l, 400, 1500, Duration::from_micros(50));
        let k = l.counters();
        prop_assert_eq!(k.packets_in, 400);
        prop_assert_eq!(k.packets_out, out.len() as u64);
        prop_assert_eq!(k.packets_out, k.packets_in + k.duplicated - k.dropped());
        prop_assert_eq!(k.in_flight, 0);
        let originals = out.iter().filter(|d| d.copy == Copy::Original).count() as u64;
        prop_assert!(originals <= k.packets_in - k.dropped_loss);
    }
}

#[test]
fn gilbert_elliott_loss_rate_and_burst_length_match_the_model() {
    // Gilbert's simple model: p = 1%, r = 25% → loss rate p/(p+r) = 3.85%, bursts of 1/r = 4.
    let ge = GilbertElliott::new(0.01, 0.25);
    let mut l = link(cfg(|c| c.loss = Loss::GilbertElliott(ge)), 11);
    let n = 400_000;
    let lost: Vec<bool> = (0..n)
        .map(|i| l.push(Time::ZERO, pkt(40, i)).dropped.is_some())
        .collect();
    let rate = lost.iter().filter(|x| **x).count() as f64 / f64::from(n);
    assert!(
        (rate - ge.mean_loss()).abs() < 0.1 * ge.mean_loss(),
        "loss rate {rate}, model {}",
        ge.mean_loss()
    );
    let mut bursts = Vec::new();
    let mut run = 0u32;
    for &x in &lost {
        if x {
            run += 1;
        } else if run > 0 {
            bursts.push(run);
            run = 0;
        }
    }
    let mean = f64::from(bursts.iter().sum::<u32>()) / bursts.len() as f64;
    assert!(
        (mean - ge.mean_bad_run()).abs() < 0.05 * ge.mean_bad_run(),
        "mean burst {mean}, model {}",
        ge.mean_bad_run()
    );
    // Bernoulli loss at the same rate has bursts of 1/(1-rate) ≈ 1.04: the model is bursty.
    assert!(mean > 3.0);
}

#[test]
fn gilbert_elliott_with_h_and_k_loses_in_both_states_at_the_model_rate() {
    let ge = GilbertElliott::with_h_k(0.05, 0.2, 0.3, 0.99);
    let mut l = link(cfg(|c| c.loss = Loss::GilbertElliott(ge)), 5);
    let n = 400_000;
    let lost = (0..n)
        .filter(|i| l.push(Time::ZERO, pkt(40, *i)).dropped.is_some())
        .count() as f64
        / f64::from(n);
    // π_B = 0.2, loss = 0.8 × 0.01 + 0.2 × 0.7 = 0.148
    assert!((ge.mean_loss() - 0.148).abs() < 1e-9);
    assert!((lost - 0.148).abs() < 0.005, "loss rate {lost}");
}

#[test]
fn rate_limit_yields_the_configured_throughput() {
    for rate in [1_000_000u64, 10_000_000, 100_000_000, 1_000_000_000] {
        // Offered at twice the rate; the queue overflows and the output runs at the rate.
        let per_pkt = tcpfsm_impair::serialization(1500, rate);
        let mut l = link(
            cfg(|c| {
                c.rate = Some(rate);
                c.queue = QueueLimit::Packets(50);
                c.delay = Duration::from_millis(20);
            }),
            1,
        );
        let out = run(&mut l, 5_000, 1500, per_pkt / 2);
        let k = l.counters();
        assert!(k.dropped_queue > 2000, "rate {rate}: {k:?}");
        let (first, last) = (out[0].due, out[out.len() - 1].due);
        // n packets leave in (n - 1) serialization times after the first.
        let bits = (out.len() as f64 - 1.0) * 1500.0 * 8.0;
        let measured = bits / (last - first).as_secs_f64();
        assert!(
            (measured - rate as f64).abs() < rate as f64 * 1e-3,
            "rate {rate}: measured {measured} bit/s"
        );
    }
}

#[test]
fn delay_is_propagation_plus_serialization_plus_queueing() {
    // 10 Mbit/s: a 1250-byte packet takes 1 ms to serialize.
    let mut l = link(
        cfg(|c| {
            c.rate = Some(10_000_000);
            c.delay = Duration::from_millis(25);
        }),
        1,
    );
    let t0 = Time::ZERO;
    let arrivals: Vec<Time> = (0..3)
        .map(|i| l.push(t0, pkt(1250, i)).arrives.unwrap())
        .collect();
    let ms = |m| t0 + Duration::from_millis(m);
    // First: 1 ms serialization + 25 ms; the next two wait 1 and 2 ms in the queue.
    assert_eq!(arrivals, vec![ms(26), ms(27), ms(28)]);
    assert_eq!(l.counters().queued_packets, 3);
    assert_eq!(l.counters().queued_bytes, 3750);
    // Once the link is idle again a packet sees no queueing.
    let later = ms(100);
    assert_eq!(
        l.push(later, pkt(1250, 9)).arrives,
        Some(later + Duration::from_millis(26))
    );
    assert_eq!(l.counters().queued_packets, 1);
}

#[test]
fn queue_limit_drops_the_tail_in_packets_and_in_bytes() {
    for (limit, accepted) in [
        (QueueLimit::Packets(10), 10),
        // 1000-byte packets into 4500 bytes: four fit, the fifth would exceed it.
        (QueueLimit::Bytes(4500), 4),
    ] {
        let mut l = link(
            cfg(|c| {
                c.rate = Some(1_000_000);
                c.queue = limit;
            }),
            1,
        );
        let fates: Vec<Option<DropCause>> = (0..20)
            .map(|i| l.push(Time::ZERO, pkt(1000, i)).dropped)
            .collect();
        assert!(fates[..accepted].iter().all(Option::is_none), "{limit:?}");
        assert!(
            fates[accepted..]
                .iter()
                .all(|f| *f == Some(DropCause::Queue)),
            "{limit:?}: {fates:?}"
        );
        assert_eq!(l.counters().dropped_queue, 20 - accepted as u64);
        assert_eq!(drain(&mut l).len(), accepted);
    }
}

#[test]
fn jitter_reorders_only_when_allowed() {
    let base = cfg(|c| {
        c.delay = Duration::from_millis(10);
        c.jitter = Duration::from_millis(10);
    });
    let inversions = |jitter_reorders: bool| {
        let mut c = base;
        c.jitter_reorders = jitter_reorders;
        let mut l = link(c, 3);
        let out = run(&mut l, 1000, 100, Duration::from_micros(500));
        out.windows(2)
            .filter(|w| tag(&w[0].packet) > tag(&w[1].packet))
            .count()
    };
    assert_eq!(inversions(false), 0);
    assert!(inversions(true) > 100);
}

#[test]
fn reorder_by_delay_lets_later_packets_overtake() {
    let mut l = link(
        cfg(|c| {
            c.delay = Duration::from_millis(5);
            c.reorder = 0.2;
            c.reorder_hold = ReorderHold::Delay(Duration::from_millis(3));
        }),
        8,
    );
    let out = run(&mut l, 2000, 100, Duration::from_micros(500));
    assert_eq!(out.len(), 2000);
    let held = l.counters().reordered;
    assert!((300..500).contains(&held), "held {held} of 2000");
    let overtaken = out
        .windows(2)
        .filter(|w| tag(&w[0].packet) > tag(&w[1].packet))
        .count();
    assert!(overtaken as u64 >= held / 2, "{overtaken} inversions");
    // No packet is late by more than the hold.
    for d in &out {
        assert!(d.due - d.sent <= Duration::from_millis(8) + Duration::from_nanos(1));
    }
}

#[test]
fn reorder_by_packets_releases_after_n_later_packets() {
    let mut l = link(
        cfg(|c| {
            c.delay = Duration::from_millis(5);
            c.reorder = 1.0;
            c.reorder_hold = ReorderHold::Packets(3);
        }),
        1,
    );
    // Every packet is held; with everything held nothing overtakes, so each waits for the
    // timeout: max(delay, 1ms) past its arrival.
    let v = l.push(Time::ZERO, pkt(100, 0));
    assert!(v.reordered && v.arrives.is_none());
    assert_eq!(l.next_deadline(), Some(Time::from_micros(10_000)));

    // Now hold only packet 0: 1, 2, 3 pass it and it arrives right after 3.
    let mut l = link(
        cfg(|c| {
            c.delay = Duration::from_millis(5);
        }),
        1,
    );
    let mut held_cfg = *l.config();
    held_cfg.reorder = 1.0;
    held_cfg.reorder_hold = ReorderHold::Packets(3);
    l.set_config(held_cfg).unwrap();
    l.push(Time::ZERO, pkt(100, 0));
    l.set_config(cfg(|c| c.delay = Duration::from_millis(5)))
        .unwrap();
    for i in 1..6 {
        l.push(Time::from_micros(u64::from(i) * 100), pkt(100, i));
    }
    let order: Vec<u32> = drain(&mut l).iter().map(|d| tag(&d.packet)).collect();
    assert_eq!(order, vec![1, 2, 3, 0, 4, 5]);
}

/// RFC 1071 one's-complement sum of a TCP segment with its IPv4 pseudo-header.
fn tcp_checksum_ok(ip: &[u8]) -> bool {
    let tcp = &ip[20..];
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(&ip[12..20]);
    add(&[0, 6]);
    add(&(tcp.len() as u16).to_be_bytes());
    add(tcp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

#[test]
fn corruption_flips_one_bit_past_the_ip_header_and_breaks_the_tcp_checksum() {
    let mut l = link(cfg(|c| c.corrupt = 1.0), 5);
    // A valid IPv4/TCP datagram: header, 20-byte TCP header, payload, correct checksum.
    let mut orig = vec![0u8; 20 + 20 + 60];
    orig[0] = 0x45;
    orig[9] = 6;
    orig[12..16].copy_from_slice(&[10, 0, 0, 1]);
    orig[16..20].copy_from_slice(&[10, 0, 0, 2]);
    orig[32] = 0x50;
    for (i, b) in orig[40..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let mut sum: u32 = 0;
    orig[36] = 0;
    orig[37] = 0;
    for c in orig[12..20].chunks(2).chain(orig[20..].chunks(2)) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    sum += 6 + 80;
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let ck = !(sum as u16);
    orig[36..38].copy_from_slice(&ck.to_be_bytes());
    assert!(tcp_checksum_ok(&orig));
    for _ in 0..200 {
        let v = l.push(Time::ZERO, orig.clone());
        assert!(v.corrupted);
        let got = l.poll(Time::ZERO).unwrap().packet;
        assert_eq!(&got[..20], &orig[..20], "the IP header is left alone");
        let flipped: u32 = got
            .iter()
            .zip(&orig)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        assert_eq!(flipped, 1);
        assert!(!tcp_checksum_ok(&got), "a single flipped bit must fail");
    }
    assert_eq!(l.counters().corrupted, 200);
}

#[test]
fn a_duplicate_arrives_after_its_original_and_is_intact() {
    let mut l = link(
        cfg(|c| {
            c.duplicate = 1.0;
            c.delay = Duration::from_millis(10);
        }),
        5,
    );
    let v = l.push(Time::ZERO, pkt(100, 7));
    assert!(v.duplicated);
    let out = drain(&mut l);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].copy, Copy::Original);
    assert_eq!(out[1].copy, Copy::Duplicate);
    assert_eq!(out[0].due, Time::from_micros(10_000));
    assert!(out[1].due > out[0].due);
    assert!(out[1].due - out[0].due <= Duration::from_micros(101));
    assert_eq!(out[0].packet, out[1].packet);
    assert_eq!(l.counters().packets_out, 2);
}

#[test]
fn each_direction_of_a_duplex_has_its_own_stream() {
    let c = cfg(|c| c.loss = Loss::Bernoulli(0.5));
    let mut d: tcpfsm_impair::Duplex = tcpfsm_impair::Duplex::new(c, c, 9).unwrap();
    let up: Vec<bool> = (0..64)
        .map(|i| d.up.push(Time::ZERO, pkt(40, i)).dropped.is_some())
        .collect();
    let down: Vec<bool> = (0..64)
        .map(|i| d.down.push(Time::ZERO, pkt(40, i)).dropped.is_some())
        .collect();
    assert_ne!(up, down);
}

#[test]
fn more_loss_does_not_reshuffle_the_jitter_of_survivors() {
    let c = |loss| {
        cfg(|c| {
            c.delay = Duration::from_millis(10);
            c.jitter = Duration::from_millis(5);
            c.jitter_reorders = true;
            c.loss = Loss::Bernoulli(loss);
        })
    };
    let arrivals = |loss| {
        let mut l = link(c(loss), 4);
        (0..500)
            .map(|i| {
                l.push(Time::from_micros(i * 1000), pkt(40, i as u32))
                    .arrives
            })
            .collect::<Vec<_>>()
    };
    let (low, high) = (arrivals(0.05), arrivals(0.3));
    let mut same = 0;
    for (a, b) in low.iter().zip(&high) {
        if let (Some(a), Some(b)) = (a, b) {
            assert_eq!(a, b);
            same += 1;
        }
    }
    assert!(same > 300);
}

#[test]
fn an_invalid_configuration_is_refused_with_its_reason() {
    let bad = [
        (cfg(|c| c.loss = Loss::Bernoulli(1.5)), "loss"),
        (cfg(|c| c.duplicate = f64::NAN), "dup"),
        (cfg(|c| c.rate = Some(0)), "rate 0"),
        (
            cfg(|c| c.queue = QueueLimit::Packets(0)),
            "queue limit of 0",
        ),
        (
            cfg(|c| c.loss = Loss::GilbertElliott(GilbertElliott::new(0.1, 0.0))),
            "stay bad",
        ),
        (
            cfg(|c| c.reorder_hold = ReorderHold::Packets(0)),
            "reorder-packets 0",
        ),
    ];
    for (c, want) in bad {
        let e = Impairer::<Vec<u8>>::new(c, 1, 0).err().expect("refused");
        assert!(e.to_string().contains(want), "{e} lacks {want:?}");
    }
}
