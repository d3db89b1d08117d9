//! Traces our sender's congestion state on an impaired simulated link: one bulk transfer
//! (our stack to our stack, as the loss grid's (s) configuration), a line of the sender's
//! `info()` (cwnd, ssthresh, in flight, SACKed and lost segments, recovery phase, SND.UNA,
//! SRTT, retransmissions) every `every_us` of virtual time and at every phase change, then
//! the drops by cause (random loss against the bottleneck queue), the retransmissions that
//! were not repairing a drop on the link ("spurious": the original crossed the link — the
//! receiver may still have discarded it, e.g. by PAWS, which its counters show), and both
//! endpoints' counters. Used for the loss grid's
//! explanations in BENCHMARKS.md.
//!
//! ```sh
//! cargo run --release -p tcpfsm-sim --example cc_trace -- \
//!     "delay 5ms loss 1% rate 100mbit queue 125000b" 4194304 5000
//! # env: SEED=2001 (the grid's round seeds 1, 1001, 2001 …), ACK="delay 25ms" (the reverse
//! # link; default "delay 5ms"), V=1 (every retransmission and queue drop on stderr)
//! ```
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tcpfsm_core::{Config, Instant};
use tcpfsm_sim::sink::Sink;
use tcpfsm_sim::{Network, TraceEvent};

#[derive(Default)]
struct Counts {
    sent: u64,
    drop_loss: u64,
    drop_queue: u64,
    drop_other: u64,
    rtx: u64,
    spurious: u64,
    lost: std::collections::HashSet<u32>,
    arrive: std::collections::HashMap<u32, u64>,
}
struct S {
    c: Arc<Mutex<Counts>>,
    verbose: bool,
}
impl Sink for S {
    fn event(&mut self, ev: &TraceEvent) -> std::io::Result<()> {
        if let TraceEvent::Segment(s) = ev {
            if s.src_host == Some(0) && s.len > 0 {
                let mut g = self.c.lock().unwrap();
                let c = &mut *g;
                c.sent += 1;
                if s.sent_as == Some("retransmission") {
                    c.rtx += 1;
                    let sp = !c.lost.contains(&s.rel_seq);
                    if sp {
                        c.spurious += 1;
                    }
                    if self.verbose {
                        eprintln!(
                            "{:>9} RTX seq {} spurious {} orig-arrives {:?} drop {:?}",
                            s.t_us,
                            s.rel_seq,
                            sp,
                            c.arrive.get(&s.rel_seq),
                            s.why
                        );
                    }
                    c.lost.remove(&s.rel_seq);
                } else {
                    if s.why.is_some() {
                        c.lost.insert(s.rel_seq);
                    }
                    if let Some(a) = s.arrive_us {
                        c.arrive.insert(s.rel_seq, a);
                    }
                }
                match s.why {
                    Some("loss") => c.drop_loss += 1,
                    Some("queue") => c.drop_queue += 1,
                    Some(_) => c.drop_other += 1,
                    None => {}
                }
                if self.verbose && s.why == Some("queue") {
                    eprintln!("{:>9} QDROP seq {}", s.t_us, s.rel_seq);
                }
            }
        }
        Ok(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let spec = args
        .get(1)
        .cloned()
        .unwrap_or("delay 5ms loss 1% rate 100mbit queue 125000b".into());
    let size: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(8 << 20);
    let every_us: u64 = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(5000);
    let verbose = std::env::var("V").is_ok();
    let ackspec = std::env::var("ACK").unwrap_or("delay 5ms".into());
    let counts = Arc::new(Mutex::new(Counts::default()));
    let mut net = Network::with_sink(
        std::env::var("SEED")
            .map(|s| s.parse().unwrap())
            .unwrap_or(1),
        Box::new(S {
            c: counts.clone(),
            verbose,
        }),
    );
    let cfg = Config::default();
    let a = net.add_host("sender", vec!["10.0.0.1".parse().unwrap()], cfg.clone());
    let b = net.add_host("receiver", vec!["10.0.0.2".parse().unwrap()], cfg);
    net.set_link(a, b, spec.parse().unwrap());
    net.set_link(b, a, ackspec.parse().unwrap());
    let srv: SocketAddr = "10.0.0.2:5201".parse().unwrap();
    let l = net
        .with_endpoint(b, |ep, now| ep.listen(now, srv, 16))
        .unwrap();
    let c = net
        .with_endpoint(a, |ep, now| {
            ep.connect(now, "10.0.0.1:0".parse().unwrap(), srv)
        })
        .unwrap();
    let data = vec![7u8; size];
    let mut next_log = 0u64;
    let mut last_phase = "";
    let ends = tcpfsm_sim::bulk::Ends {
        sender: a,
        conn: c,
        receiver: b,
        listener: l,
    };
    let deadline = Instant::ZERO + Duration::from_secs(600);
    let done = tcpfsm_sim::bulk::transfer(
        &mut net,
        ends,
        &data,
        deadline,
        |_| {},
        |net| {
            let t = (net.now() - Instant::ZERO).as_micros() as u64;
            if let Some(i) = net.endpoint(a).info(c) {
                if t >= next_log || i.recovery != last_phase {
                    println!(
                        "{t:>9} cwnd {:>7} ssth {:>10} infl {:>7} sacked {:>4} lost {:>4} {:<8} \
                     una {:>10} srtt {:?} rtx {}",
                        i.cwnd,
                        i.ssthresh,
                        i.in_flight,
                        i.sacked_segments,
                        i.lost_segments,
                        i.recovery,
                        i.snd_una,
                        i.srtt,
                        i.retransmits
                    );
                    next_log = t + every_us;
                    last_phase = i.recovery;
                }
            }
        },
    );
    let got = done.received;
    let t0 = done.established;
    let secs = (net.now() - t0.unwrap()).as_secs_f64();
    let c = counts.lock().unwrap();
    eprintln!(
        "done {got} bytes in {secs:.3}s = {:.2} Mbit/s; data segs {} rtx {} (spurious {}) \
         drop loss {} queue {} other {}",
        got as f64 * 8.0 / secs / 1e6,
        c.sent,
        c.rtx,
        c.spurious,
        c.drop_loss,
        c.drop_queue,
        c.drop_other
    );
    eprintln!("stats {:?}", net.endpoint(a).stats());
    eprintln!("rstats {:?}", net.endpoint(b).stats());
}
