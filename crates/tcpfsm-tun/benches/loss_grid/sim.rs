//! Our stack to our stack in the simulator, over the same impairments on virtual time. The
//! only place this benchmark calls the TCP engine's API directly (the adapter to keep in step
//! with `tcpfsm-core`).

use std::net::SocketAddr;
use std::time::Duration;

use std::sync::{Arc, Mutex};

use tcpfsm_sim::sink::Sink;
use tcpfsm_sim::{Network, TraceEvent};
use tcpfsm_tun::core::{Config, Instant};

use crate::meter::Meter;
use crate::trace::{self, Sample, Series};
use crate::{pattern_check, RunOut, Spec};

/// Virtual time a transfer may take before it counts as incomplete.
const VIRTUAL_LIMIT: Duration = Duration::from_secs(3600);

/// Counts the sender's retransmissions as the segments go by (a 64 MiB run's trace is not kept).
struct MeterSink {
    sender: std::net::IpAddr,
    meter: Arc<Mutex<Meter>>,
}

impl Sink for MeterSink {
    fn event(&mut self, ev: &TraceEvent) -> std::io::Result<()> {
        if let TraceEvent::Segment(s) = ev {
            if s.src.ip() == self.sender {
                let mut m = self.meter.lock().unwrap();
                m.observe(s.src, s.dst, s.seq, s.len as u32);
                if s.fate == tcpfsm_sim::Fate::Dropped {
                    m.dropped_segs += 1;
                }
            }
        }
        Ok(())
    }
}

pub fn ours_ours(spec: &Spec, data: &[u8]) -> RunOut {
    let meter = Arc::new(Mutex::new(Meter::default()));
    let sink = MeterSink {
        sender: "10.0.0.1".parse().unwrap(),
        meter: meter.clone(),
    };
    let mut net = Network::with_sink(spec.seed, Box::new(sink));
    let cfg = Config::default();
    let a = net.add_host("sender", vec!["10.0.0.1".parse().unwrap()], cfg.clone());
    let b = net.add_host("receiver", vec!["10.0.0.2".parse().unwrap()], cfg);
    net.set_link(a, b, spec.data);
    net.set_link(b, a, spec.ack);
    let srv: SocketAddr = "10.0.0.2:5201".parse().unwrap();
    let l = net
        .with_endpoint(b, |ep, now| ep.listen(now, srv, 16))
        .expect("listen");
    let c = net
        .with_endpoint(a, |ep, now| {
            ep.connect(now, "10.0.0.1:0".parse().unwrap(), srv)
        })
        .expect("connect");
    let size = spec.size as usize;
    let ends = tcpfsm_sim::bulk::Ends {
        sender: a,
        conn: c,
        receiver: b,
        listener: l,
    };
    let (mut got, mut intact) = (0u64, true);
    // `--trace`: the sender's window every 10 ms of virtual time.
    let mut series = Series::default();
    let mut next_sample = Instant::ZERO;
    let t = tcpfsm_sim::bulk::transfer(
        &mut net,
        ends,
        &data[..size],
        Instant::ZERO + VIRTUAL_LIMIT,
        |chunk| {
            intact &= pattern_check(got, chunk);
            got += chunk.len() as u64;
        },
        |net| {
            if spec.trace.is_none() || net.now() < next_sample {
                return;
            }
            next_sample = net.now() + trace::EVERY;
            if let Some(i) = net.endpoint(a).info(c) {
                series
                    .0
                    .push((net.now() - Instant::ZERO, Sample::from_ours(&i)));
            }
        },
    );
    let start = t.established.unwrap_or(Instant::ZERO);
    let end = t.done.unwrap_or_else(|| net.now());
    let m = meter.lock().unwrap();
    let stats = net.endpoint(a).stats();
    RunOut {
        bytes: got,
        complete: got == spec.size,
        intact,
        secs: (end - start).as_secs_f64(),
        retrans_bytes: m.retrans_bytes,
        data_segs: m.data_segs,
        retrans_segs: m.retrans_segs,
        link_drops: Some(m.dropped_segs),
        our_retrans_segs: Some(stats[tcpfsm_tun::core::Counter::RetransSegs]),
        sender_counters: trace::sender_counters(stats),
        mean_cwnd: series.mean_cwnd(),
        series,
        ..RunOut::default()
    }
}
