//! Our stack to our stack in the simulator, over the same impairments on virtual time. The
//! only place this benchmark calls the TCP engine's API directly (the adapter to keep in step
//! with `tcpfsm-core`).

use std::net::SocketAddr;
use std::time::Duration;

use std::sync::{Arc, Mutex};

use tcpfsm_sim::sink::Sink;
use tcpfsm_sim::{Network, TraceEvent};
use tcpfsm_tun::core::{Config, Instant, State};

use crate::meter::Meter;
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
    let (mut sent, mut got, mut intact) = (0usize, 0u64, true);
    let mut t0: Option<Instant> = None;
    let mut t_end: Option<Instant> = None;
    let mut sc = None;
    let mut buf = vec![0u8; 256 * 1024];
    let deadline = Instant::ZERO + VIRTUAL_LIMIT;
    net.run_until_pred(deadline, |net| {
        if t0.is_none() && net.conn_state(a, c) == Some(State::Established) {
            t0 = Some(net.now());
        }
        if t0.is_some() && sent < size {
            if let Ok(n) = net.with_endpoint(a, |ep, now| ep.send(now, c, &data[sent..size])) {
                sent += n;
            }
        }
        if sc.is_none() {
            sc = net
                .with_endpoint(b, |ep, now| ep.accept(now, l))
                .ok()
                .flatten();
        }
        if let Some(id) = sc {
            while let Ok(Some(n)) = net.with_endpoint(b, |ep, now| ep.recv(now, id, &mut buf)) {
                if n == 0 {
                    break;
                }
                intact &= pattern_check(got, &buf[..n]);
                got += n as u64;
            }
        }
        if got == spec.size && t_end.is_none() {
            t_end = Some(net.now());
        }
        t_end.is_some()
    });
    let start = t0.unwrap_or(Instant::ZERO);
    let end = t_end.unwrap_or_else(|| net.now());
    let retrans_bytes = meter.lock().unwrap().retrans_bytes;
    RunOut {
        bytes: got,
        complete: got == spec.size,
        intact,
        secs: (end - start).as_secs_f64(),
        retrans_bytes,
        our_retrans_segs: Some(net.endpoint(a).stats()[tcpfsm_tun::core::Counter::RetransSegs]),
        ..RunOut::default()
    }
}
