//! The exporter: samples the host on each scrape and renders [`crate::metrics`]. Socket
//! owners come from [`crate::owners`] (by default a background walk, so a scrape never reads
//! every process's descriptors itself).

use crate::metrics::{render, Input, OwnerScan};
use crate::owners::{OwnerCache, OwnerMode};
use crate::server::{serve, ScrapeFn, ServerConfig};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tcpfsm_host::{breakdown, Filter, HostError, RawCounters, Sampler, SnapshotOptions, StateSet};
use tcpfsm_observe::{diagnose, ListenerQueue, Snapshot, Thresholds};
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
    owners: Option<Arc<OwnerCache>>,
}

impl Collector {
    /// Opens the netlink socket now, in the calling thread's network namespace, and with
    /// [`OwnerMode::Cached`] starts the owner walker there.
    pub fn new(
        thresholds: Thresholds,
        top_n: usize,
        owners: OwnerMode,
    ) -> Result<Collector, HostError> {
        let full = owners == OwnerMode::Full;
        let sampler = Sampler::new(SnapshotOptions {
            attribute: full,
            fd_usage: full,
            top_remotes: top_n.max(1) * 4,
        })?;
        let owners = match owners {
            OwnerMode::Cached(every) => Some(OwnerCache::start(every)),
            _ => None,
        };
        Ok(Collector {
            inner: Mutex::new(Inner {
                sampler,
                history: VecDeque::new(),
            }),
            thresholds,
            top_n,
            owners,
        })
    }

    /// Waits (up to `limit`) for the first owner walk, so the first scrape already names
    /// owners. Returns how long that walk took.
    pub fn ready(&self, limit: Duration) -> Option<Duration> {
        let c = self.owners.as_ref()?;
        c.wait_first(limit).map(|s| s.took)
    }

    /// One page of metrics.
    pub fn scrape(&self) -> Result<String, String> {
        let started = Instant::now();
        // Scrapes share one netlink socket; they take turns (the server bounds how many wait).
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut snap = inner.sampler.sample().map_err(|e| e.to_string())?;
        let owner_scan = match &self.owners {
            Some(cache) => {
                fill_owners(&mut snap, &mut inner.sampler, cache).map_err(|e| e.to_string())?
            }
            None => None,
        };
        let raw = RawCounters::read().map_err(|e| e.to_string())?;
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
            top_n: self.top_n,
            scrape_seconds: started.elapsed().as_secs_f64(),
            owner_scan,
        }))
    }
}

/// Puts the latest walk's owners into a snapshot taken without attribution: CLOSE_WAIT by
/// process, listener owners, descriptor use. Asks for a fresh walk when a CLOSE_WAIT or
/// LISTEN socket is one the walk did not see.
fn fill_owners(
    snap: &mut Snapshot,
    sampler: &mut Sampler,
    cache: &OwnerCache,
) -> Result<Option<OwnerScan>, HostError> {
    let Some(scan) = cache.latest() else {
        return Ok(None);
    };
    let rows = sampler.diag().sockets(&Filter::states(StateSet::of(&[
        State::CloseWait,
        State::Listen,
    ])))?;
    let a = &scan.attribution;
    let close_wait: Vec<u64> = rows
        .iter()
        .filter(|r| r.state == State::CloseWait)
        .map(|r| r.inode)
        .collect();
    if rows
        .iter()
        .any(|r| r.inode != 0 && a.first_owner(r.inode).is_none())
    {
        cache.want_fresh();
    }
    snap.close_wait_by_process = Some(breakdown(a, &close_wait));
    // For LISTEN sockets sock_diag reports the accept queue as receive queue and the backlog
    // as send queue.
    snap.listeners = Some(
        rows.iter()
            .filter(|r| r.state == State::Listen)
            .map(|r| ListenerQueue {
                local: r.local,
                queue_len: r.rx_queue,
                backlog: r.tx_queue,
                owner: a.first_owner(r.inode),
            })
            .collect(),
    );
    snap.fd_usage = Some(scan.fd_usage.clone());
    Ok(Some(OwnerScan {
        age_seconds: scan.done.elapsed().as_secs_f64(),
        duration_seconds: scan.took.as_secs_f64(),
    }))
}

/// Raises the soft open-file limit to the hard one (each connection is a descriptor; the
/// usual soft default of 1024 is below what the server admits), and returns the soft limit.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid out-pointer; setrlimit only reads it.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// Descriptors kept free of connections: netlink, /proc reads, the listener, stdio.
const FD_RESERVE: u64 = 64;

/// Binds `addr` and serves until SIGINT/SIGTERM. `on_bound` is told the real address (so
/// `--listen 127.0.0.1:0` can say which port it got). The connection limit is lowered to fit
/// the open-file limit if need be.
pub fn run(
    addr: SocketAddr,
    mut cfg: ServerConfig,
    scrape: ScrapeFn,
    on_bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    crate::signal::install();
    let fds = raise_nofile();
    let room = fds.saturating_sub(FD_RESERVE).max(8) as usize;
    if cfg.max_connections > room {
        eprintln!(
            "tcpfsm: open-file limit {fds}: serving at most {room} connections (not {})",
            cfg.max_connections
        );
        cfg.max_connections = room;
    }
    cfg.max_per_client = cfg.max_per_client.min(cfg.max_connections);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(cfg.max_in_flight.max(1) + 2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        // A deep accept queue: under a connection flood the scraper's handshake must not be
        // dropped before we get to accept it (the kernel caps this at net.core.somaxconn).
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(4096)?;
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
