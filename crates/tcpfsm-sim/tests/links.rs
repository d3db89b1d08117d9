//! The scenario language's link impairments as the impairment engine runs them: a rate limit
//! with a queue, Gilbert–Elliott loss, reordering by packets; each checked on the trace a
//! script leaves.

use tcpfsm_sim::{run_source, Fate, Trace, TraceEvent};

/// A 200 000-byte upload from `a` to `b` over `link`, read to end of stream.
fn upload(link: &str, seed: u64) -> Trace {
    let src = format!(
        "host a 10.0.0.1\nhost b 10.0.0.2\nset a send_buffer 65536\n\
         link a <-> b delay 5ms\nlink a -> b {link}\n\
         b listen 80 as l\na connect b:80 as c\nb accept l as s\n\
         a send c 200000 bytes\na close c\nb recv-until-eof s timeout 10m\n\
         expect s eof\nwait until c CLOSED timeout 10m\n"
    );
    let out = run_source("upload.tcpfsm", &src, Some(seed)).unwrap();
    assert!(out.passed(), "{:?}", out.failures);
    out.trace
}

fn data_segments(t: &Trace) -> Vec<&tcpfsm_sim::trace::SegmentRec> {
    t.events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Segment(s) if s.src.port() != 80 && s.len > 0 => Some(s),
            _ => None,
        })
        .collect()
}

#[test]
fn a_rate_limited_link_paces_segments_at_its_rate_and_drops_at_a_full_queue() {
    // 2 Mbit/s: a full 1500-byte datagram takes 6 ms to serialize.
    let t = upload("rate 2mbit queue 8", 1);
    let segs = data_segments(&t);
    let queue_drops = segs.iter().filter(|s| s.why == Some("queue")).count();
    assert!(
        queue_drops > 0,
        "a window larger than 8 packets overflows the queue"
    );
    // Delivered full segments leave at most one per serialization time.
    let mut arrivals: Vec<u64> = segs
        .iter()
        .filter(|s| s.fate != Fate::Dropped && s.len >= 1400)
        .filter_map(|s| s.arrive_us)
        .collect();
    arrivals.sort_unstable();
    let min_gap = arrivals.windows(2).map(|w| w[1] - w[0]).min().unwrap();
    assert!(
        min_gap >= 5_700,
        "two segments 5.7 ms apart or closer: {min_gap} µs"
    );
    // And the whole upload cannot beat the rate.
    let span = arrivals.last().unwrap() - arrivals.first().unwrap();
    let bits = (arrivals.len() as f64 - 1.0) * 1400.0 * 8.0;
    assert!(bits / (span as f64 / 1e6) <= 2.0e6, "faster than the link");
}

#[test]
fn gilbert_loss_in_a_script_loses_segments_in_bursts() {
    // Bad periods of 1/r = 3 packets on average, entered with p = 2%.
    let t = upload("gilbert 2%,33%", 3);
    let segs = data_segments(&t);
    let mut bursts = Vec::new();
    let mut run = 0;
    for s in &segs {
        if s.fate == Fate::Dropped {
            assert_eq!(s.why, Some("loss"));
            run += 1;
        } else if run > 0 {
            bursts.push(run);
            run = 0;
        }
    }
    assert!(!bursts.is_empty(), "nothing was lost");
    assert!(
        bursts.iter().any(|b| *b >= 2),
        "no burst of two or more losses: {bursts:?}"
    );
}

#[test]
fn segments_held_back_by_packets_are_overtaken_and_their_arrival_is_left_open() {
    // No loss: every duplicate ACK the receiver sends is a segment arriving out of order.
    let t = upload("reorder 10% reorder-packets 2", 5);
    let segs = data_segments(&t);
    let held = segs
        .iter()
        .filter(|s| s.fate != Fate::Dropped && s.arrive_us.is_none())
        .count();
    assert!(held > 5, "{held} segments held back");
    let dup_acks = t
        .events
        .iter()
        .filter(
            |e| matches!(e, TraceEvent::Segment(s) if s.src.port() == 80 && s.analysis.dup_ack > 0),
        )
        .count();
    assert!(dup_acks > 0, "the receiver saw nothing out of order");
}

#[test]
fn the_same_seed_gives_the_same_trace_with_every_new_impairment() {
    let link = "gilbert 1%,30% rate 5mbit queue 20 dup 1% reorder 5% reorder-packets 3";
    let (a, b) = (upload(link, 9), upload(link, 9));
    assert_eq!(a.events, b.events);
    assert_ne!(upload(link, 10).events, a.events);
}

#[test]
fn a_bad_link_property_names_its_line() {
    for (prop, want) in [
        ("rate 10mbps", "ambiguous"),
        ("queue 0", "at least 1"),
        ("gilbert 5%", "gilbert takes p,r"),
        ("bandwidth 1mbit", "unknown link property \"bandwidth\""),
    ] {
        let src = format!("host a 10.0.0.1\nhost b 10.0.0.2\nlink a <-> b {prop}\n");
        let e = run_source("l.tcpfsm", &src, None).unwrap_err();
        assert_eq!(e.line, 3, "{prop}");
        assert!(e.msg.contains(want), "{prop}: {e}");
    }
}
