//! Which process holds which TCP socket, for the exporter — without making scrapes slow.
//!
//! Finding owners means reading `/proc/<pid>/fd` of every process: one readlink per open
//! descriptor on the host. On the machines we measured that costs 10–20 µs each, so a host
//! with 50,000 descriptors needs most of a second (`cargo bench -p tcpfsm --bench
//! export_scrape`) — far too slow for every scrape. So by default ([`OwnerMode::Cached`])
//! a background thread walks /proc at most once per interval (and sooner when a scrape meets
//! a CLOSE_WAIT or LISTEN socket the last walk did not see, but never more than once every
//! [`MIN_RESCAN`]); scrapes read the latest walk's map. CLOSE_WAIT leaks and listeners live
//! long, so a map seconds old names them correctly; a socket younger than the walk counts as
//! `no owner` (`tcpfsm_observe::NO_OWNER`) until the next one. [`OwnerMode::Full`] walks on every scrape (exact, slow on
//! big hosts); [`OwnerMode::Off`] never walks.

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tcpfsm_host::{attribute_all, fd_usage, Attribution, Filter, SockDiag};
use tcpfsm_observe::FdUsage;

/// The soonest a scrape can ask for another walk.
pub const MIN_RESCAN: Duration = Duration::from_secs(5);

/// How the exporter finds socket owners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerMode {
    /// A background walk at most every this long; scrapes use its result.
    Cached(Duration),
    /// A walk inside every scrape.
    Full,
    /// No walk: no per-process series.
    Off,
}

/// One walk's result.
#[derive(Debug)]
pub struct Scan {
    pub attribution: Attribution,
    pub fd_usage: Vec<FdUsage>,
    pub done: Instant,
    pub took: Duration,
}

#[derive(Default)]
struct State {
    latest: Option<Arc<Scan>>,
    wanted: bool,
    stop: bool,
}

/// The background walker and its latest result.
pub struct OwnerCache {
    state: Mutex<State>,
    wake: Condvar,
    interval: Duration,
}

/// Walks /proc once: every TCP socket inode of this namespace to its holders, and the
/// descriptor use of each process holding one.
pub fn scan() -> Result<Scan, tcpfsm_host::HostError> {
    let t = Instant::now();
    let mut inodes = HashSet::new();
    SockDiag::new()?.for_each(&Filter::default(), |r| {
        if r.inode != 0 {
            inodes.insert(r.inode);
        }
    })?;
    let attribution = attribute_all(&inodes);
    let fd_usage = fd_usage(&attribution);
    Ok(Scan {
        attribution,
        fd_usage,
        done: Instant::now(),
        took: t.elapsed(),
    })
}

impl OwnerCache {
    /// Starts the walker thread (in the calling thread's network namespace, which it
    /// inherits). The first walk starts at once.
    pub fn start(interval: Duration) -> Arc<OwnerCache> {
        let c = Arc::new(OwnerCache {
            state: Mutex::new(State {
                wanted: true,
                ..State::default()
            }),
            wake: Condvar::new(),
            interval,
        });
        let weak = Arc::downgrade(&c);
        std::thread::Builder::new()
            .name("tcpfsm-owners".into())
            .spawn(move || walker(weak))
            .expect("spawn the owner walker");
        c
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The latest walk, if one finished.
    pub fn latest(&self) -> Option<Arc<Scan>> {
        self.lock().latest.clone()
    }

    /// Asks for a walk soon (at most one per [`MIN_RESCAN`]).
    pub fn want_fresh(&self) {
        let mut g = self.lock();
        if g.latest
            .as_ref()
            .is_none_or(|s| s.done.elapsed() >= MIN_RESCAN)
        {
            g.wanted = true;
            self.wake.notify_one();
        }
    }

    /// Waits up to `limit` for a first walk to finish.
    pub fn wait_first(&self, limit: Duration) -> Option<Arc<Scan>> {
        let deadline = Instant::now() + limit;
        let mut g = self.lock();
        while g.latest.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            g = self
                .wake
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        g.latest.clone()
    }
}

impl Drop for OwnerCache {
    fn drop(&mut self) {
        self.lock().stop = true;
        self.wake.notify_all();
    }
}

fn walker(cache: std::sync::Weak<OwnerCache>) {
    loop {
        let Some(c) = cache.upgrade() else { return };
        {
            let mut g = c.lock();
            let due = |g: &State| {
                g.wanted
                    || g.latest
                        .as_ref()
                        .is_none_or(|s| s.done.elapsed() >= c.interval)
            };
            while !g.stop && !due(&g) {
                let wait = g
                    .latest
                    .as_ref()
                    .map(|s| c.interval.saturating_sub(s.done.elapsed()))
                    .unwrap_or(c.interval)
                    .max(Duration::from_millis(10));
                g = c
                    .wake
                    .wait_timeout(g, wait)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            if g.stop {
                return;
            }
            g.wanted = false;
        }
        // Walk without holding the lock (or a strong reference for long: a scrape may drop
        // the exporter meanwhile).
        drop(c);
        let result = scan();
        let Some(c) = cache.upgrade() else { return };
        if let Ok(s) = result {
            c.lock().latest = Some(Arc::new(s));
            c.wake.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walker_finds_our_own_socket_and_walks_again_when_asked() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = OwnerCache::start(Duration::from_secs(3600));
        let first = c.wait_first(Duration::from_secs(30)).expect("a first walk");
        use std::os::unix::fs::MetadataExt;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&l);
        let ino = std::fs::metadata(format!("/proc/self/fd/{fd}"))
            .unwrap()
            .ino();
        assert_eq!(
            first.attribution.first_owner(ino).map(|p| p.pid),
            Some(std::process::id())
        );
        assert!(first
            .fd_usage
            .iter()
            .any(|u| u.pid == std::process::id() && u.tcp_sockets >= 1));
        // Asking again right away is refused (MIN_RESCAN): the same walk stays.
        c.want_fresh();
        std::thread::sleep(Duration::from_millis(200));
        assert!(Arc::ptr_eq(&first, &c.latest().unwrap()));
    }
}
