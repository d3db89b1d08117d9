//! The text form of an impairment: what parses, what it means, what is refused and why, and
//! that printing a configuration gives a spec that parses back to it.

use std::time::Duration;

use proptest::prelude::*;
use tcpfsm_impair::spec::{parse_duration, parse_queue, parse_rate};
use tcpfsm_impair::{GilbertElliott, Impairment, Loss, QueueLimit, ReorderHold};

#[test]
fn a_spec_sets_every_stage() {
    let c: Impairment = "delay 25ms jitter 5ms jitter-reorders on gilbert 1%,25%,10%,99.9% \
                         dup 2% reorder 10% reorder-packets 3 corrupt 0.1% rate 100mbit queue 64kib"
        .parse()
        .unwrap();
    assert_eq!(c.delay, Duration::from_millis(25));
    assert_eq!(c.jitter, Duration::from_millis(5));
    assert!(c.jitter_reorders);
    assert_eq!(
        c.loss,
        Loss::GilbertElliott(GilbertElliott::with_h_k(0.01, 0.25, 0.1, 0.999))
    );
    assert_eq!(c.duplicate, 0.02);
    assert_eq!(c.reorder, 0.1);
    assert_eq!(c.reorder_hold, ReorderHold::Packets(3));
    assert_eq!(c.corrupt, 0.001);
    assert_eq!(c.rate, Some(100_000_000));
    assert_eq!(c.queue, QueueLimit::Bytes(65536));
}

#[test]
fn gilbert_defaults_to_the_simple_model_and_loss_replaces_it() {
    let mut c: Impairment = "gilbert 1%,30%".parse().unwrap();
    assert_eq!(c.loss, Loss::GilbertElliott(GilbertElliott::new(0.01, 0.3)));
    c.apply_spec("loss 2%").unwrap();
    assert_eq!(c.loss, Loss::Bernoulli(0.02));
    c.apply_spec("loss 0").unwrap();
    assert_eq!(c.loss, Loss::None);
}

#[test]
fn rates_use_tc_units_and_refuse_the_ambiguous_bps() {
    assert_eq!(parse_rate("100mbit"), Ok(100_000_000));
    assert_eq!(parse_rate("1.5Gbit"), Ok(1_500_000_000));
    assert_eq!(parse_rate("64kbit"), Ok(64_000));
    assert_eq!(parse_rate("9600bit"), Ok(9600));
    let e = parse_rate("100mbps").unwrap_err();
    assert!(
        e.contains("ambiguous") && e.contains("write 100mbit"),
        "{e}"
    );
    assert!(parse_rate("100").unwrap_err().contains("needs a unit"));
    assert!(parse_rate("0bit").unwrap_err().contains("out of range"));
    assert!(parse_rate("fast").is_err());
}

#[test]
fn queue_limits_are_packets_or_bytes() {
    assert_eq!(parse_queue("100"), Ok(QueueLimit::Packets(100)));
    assert_eq!(parse_queue("1500b"), Ok(QueueLimit::Bytes(1500)));
    assert_eq!(parse_queue("64kb"), Ok(QueueLimit::Bytes(64_000)));
    assert_eq!(parse_queue("1mib"), Ok(QueueLimit::Bytes(1 << 20)));
    assert!(parse_queue("0").is_err());
    assert!(parse_queue("1.5").is_err());
    assert!(parse_queue("10parsecs").is_err());
}

#[test]
fn durations_take_units() {
    assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("500ns"), Ok(Duration::from_nanos(500)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert!(parse_duration("10").unwrap_err().contains("needs a unit"));
    assert!(parse_duration("10parsecs")
        .unwrap_err()
        .contains("unknown duration unit"));
}

#[test]
fn bad_specs_name_the_key_and_the_value() {
    for (spec, want) in [
        ("loss 2", "loss 2: probability \"2\" is outside 0..1"),
        ("speed 2", "unknown link property \"speed\""),
        ("delay", "\"delay\" needs a value"),
        ("gilbert 1%", "gilbert takes p,r[,h[,k]]"),
        ("gilbert 1%,0", "never end"),
        ("reorder-packets 0", "at least 1"),
        ("reorder-delay 0ms", "more than 0"),
        ("jitter-reorders maybe", "expected on or off"),
        ("rate 10mbps", "ambiguous"),
    ] {
        let e = spec.parse::<Impairment>().unwrap_err().to_string();
        assert!(e.contains(want), "{spec:?}: {e:?} lacks {want:?}");
    }
}

#[test]
fn a_perfect_link_prints_as_none_and_parses_back() {
    assert_eq!(Impairment::default().to_string(), "none");
    assert_eq!("none".parse::<Impairment>(), Ok(Impairment::default()));
    assert_eq!("".parse::<Impairment>(), Ok(Impairment::default()));
}

fn impairment() -> impl Strategy<Value = Impairment> {
    (
        (0u64..1_000_000, 0u64..100_000, any::<bool>()),
        (
            0u32..4,
            0u32..10_000,
            1u32..10_000,
            0u32..10_000,
            0u32..10_000,
        ),
        (0u32..10_000, 0u32..10_000, 0u32..10_000),
        (0u32..3, 1u64..100_000, 1u32..20),
        (
            prop::option::of(1_000u64..10_000_000_000),
            0u32..2,
            1u64..1_000_000,
        ),
    )
        .prop_map(
            |(
                (delay, jitter, jr),
                (lk, a, b, h, k),
                (dup, reo, cor),
                (hk, hd, hp),
                (rate, qk, q),
            )| {
                let pct = |n: u32| f64::from(n) / 10_000.0;
                let mut c = Impairment::default();
                c.delay = Duration::from_micros(delay);
                c.jitter = Duration::from_micros(jitter);
                c.jitter_reorders = jr;
                c.loss = match lk {
                    0 => Loss::None,
                    1 => Loss::Bernoulli(pct(a.max(1))),
                    _ => Loss::GilbertElliott(GilbertElliott::with_h_k(
                        pct(a),
                        pct(b),
                        pct(h),
                        pct(k),
                    )),
                };
                c.duplicate = pct(dup);
                c.reorder = pct(reo);
                c.corrupt = pct(cor);
                c.reorder_hold = match hk {
                    0 => ReorderHold::UpToDelay,
                    1 => ReorderHold::Delay(Duration::from_micros(hd)),
                    _ => ReorderHold::Packets(hp),
                };
                c.rate = rate;
                c.queue = if qk == 0 {
                    QueueLimit::Packets(q as u32)
                } else {
                    QueueLimit::Bytes(q)
                };
                c
            },
        )
}

proptest! {
    #[test]
    fn printing_a_configuration_gives_a_spec_that_parses_back_to_it(c in impairment()) {
        let text = c.to_string();
        let back: Impairment = text.parse().map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        // Rates print with three significant decimals of their unit.
        let mut want = c;
        if let (Some(r), Some(b)) = (c.rate, back.rate) {
            prop_assert!((r as f64 - b as f64).abs() <= r as f64 * 1e-3, "{text}");
            want.rate = back.rate;
        }
        prop_assert_eq!(back, want, "{}", text);
    }
}
