//! The exporter: samples the host on each scrape and renders [`crate::metrics`].

use crate::metrics::{render, Input, QueuedBytes};
use crate::server::{serve, ScrapeFn, ServerConfig};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tcpfsm_host::{Filter, HostError, RawCounters, Sampler, SnapshotOptions};
use tcpfsm_observe::{diagnose, rates, retrans_ratio, Counter, Snapshot, Thresholds};
use tcpfsm_states::State;

/// Scrapes kept for the diagnosis (growth needs a series) and no older than this.
const HISTORY: usize = 10;
const HISTORY_AGE_MS: u64 = 15 * 60 * 1000;

struct Inner {
    sampler: Sampler,
    history: VecDeque<Snapshot>,
}

/// Everything one scrape needs; shared by the server's blocking scrape tasks.
pub struct Collector {
    inner: Mutex<Inner>,
    thresholds: Thresholds,
    top_n: usize,
}

impl Collector {
    /// Opens the netlink socket now, in the calling thread's network namespace. With
    /// `processes` false the scrape skips the /proc walk (no per-process CLOSE_WAIT, listener
    /// owners or open-file counts): census, counters and per-remote TIME_WAIT only.
    pub fn new(
        thresholds: Thresholds,
        top_n: usize,
        processes: bool,
    ) -> Result<Collector, HostError> {
        let sampler = Sampler::new(SnapshotOptions {
            attribute: processes,
            fd_usage: processes,
            top_remotes: top_n.max(1) * 4,
        })?;
        Ok(Collector {
            inner: Mutex::new(Inner {
                sampler,
                history: VecDeque::new(),
            }),
            thresholds,
            top_n,
        })
    }

    /// One page of metrics.
    pub fn scrape(&self) -> Result<String, String> {
        let started = Instant::now();
        // Scrapes share one netlink socket; they take turns (the server bounds how many wait).
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let snap = inner.sampler.sample().map_err(|e| e.to_string())?;
        let queued = queued_bytes(&mut inner.sampler).map_err(|e| e.to_string())?;
        let raw = RawCounters::read().map_err(|e| e.to_string())?;
        let retrans_ratio = match inner.history.back() {
            Some(prev) => rates(prev, &snap).and_then(|r| r.retrans_ratio()),
            None => None,
        }
        .or_else(|| {
            // First scrape: the ratio since boot.
            snap.counters
                .and_then(|c| retrans_ratio(c[Counter::RetransSegs], c[Counter::OutSegs]))
        });
        inner.history.push_back(snap);
        while inner.history.len() > HISTORY
            || inner.history.front().is_some_and(|f| {
                inner
                    .history
                    .back()
                    .is_some_and(|b| b.time_ms.saturating_sub(f.time_ms) > HISTORY_AGE_MS)
            })
        {
            inner.history.pop_front();
        }
        let samples: Vec<Snapshot> = inner.history.iter().cloned().collect();
        let verdicts = diagnose(&samples, &self.thresholds);
        let snap = samples.last().expect("just pushed");
        Ok(render(&Input {
            snapshot: snap,
            verdicts: &verdicts,
            tables: &raw,
            retrans_ratio,
            top_n: self.top_n,
            scrape_seconds: started.elapsed().as_secs_f64(),
            queued: Some(queued),
        }))
    }
}

/// Sums receive/send queues over all sockets like the node exporter does from
/// /proc/net/tcp{,6}: for a listener sock_diag reports the accept queue as receive queue
/// (as /proc does) but its backlog as send queue (where /proc shows 0), so listeners add
/// only to `rx`.
fn queued_bytes(sampler: &mut Sampler) -> Result<QueuedBytes, HostError> {
    let mut q = QueuedBytes::default();
    sampler.diag().for_each(&Filter::default(), |r| {
        q.rx += r.rx_queue as u64;
        if r.state != State::Listen {
            q.tx += r.tx_queue as u64;
        }
    })?;
    Ok(q)
}

/// Binds `addr` and serves until SIGINT/SIGTERM. `on_bound` is told the real address (so
/// `--listen 127.0.0.1:0` can say which port it got).
pub fn run(
    addr: SocketAddr,
    cfg: ServerConfig,
    scrape: ScrapeFn,
    on_bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    crate::signal::install();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(cfg.max_in_flight.max(1) + 2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        on_bound(listener.local_addr()?);
        let shutdown = async {
            while !crate::signal::stop_requested() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        serve(listener, cfg, scrape, shutdown).await;
        Ok(())
    })
}
