//! The exporter's connection table: who is connected, who is doing what, and whom to drop
//! when it is full.
//!
//! A slowloris client (or hundreds of them, reconnecting as soon as they are dropped) must not
//! keep a scrape out. Refusing new connections when the table is full lets them do exactly
//! that, so instead a new connection takes the place of one that is not doing anything
//! useful:
//!
//! - first, the oldest that has never been answered (still sending its first request: what a
//!   slowloris client looks like);
//! - then, the keep-alive connection idle the longest.
//!
//! Never dropped: a connection in the middle of a request, one whose complete request was
//! already waiting when it was accepted (a scraper sends its request at once, so under a
//! flood it is recognised before its first read), and one that wrote a response within the
//! last [`WRITE_GRACE_MS`]. The same rule applies per client address (`per_client`), so one
//! remote host cannot take every slot.
//!
//! Admission is amortised O(1): candidates wait in accept order (one queue for the table,
//! one per address) and are skipped lazily once gone or answered.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// A response written this recently may still be in flight: its connection is not dropped.
pub const WRITE_GRACE_MS: u64 = 1000;

/// What the table knows about one connection, shared with its task.
#[derive(Debug)]
pub struct Slot {
    pub id: u64,
    pub peer: IpAddr,
    accepted_ms: u64,
    /// A request is being handled, or a complete one was waiting at accept time.
    busy: AtomicBool,
    /// Milliseconds since the table's start of the last byte read / written (0: never).
    last_read_ms: AtomicU64,
    last_write_ms: AtomicU64,
    /// Told to close.
    pub kill: Notify,
    killed: AtomicBool,
    /// Removed from the table (its task ended).
    gone: AtomicBool,
    epoch: Instant,
}

impl Slot {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Marks the start and end of handling a request (and, at accept, a complete request
    /// already waiting).
    pub fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Ordering::Relaxed);
    }

    /// Milliseconds since the last byte was read or written (or the connection was accepted).
    pub fn idle_ms(&self) -> u64 {
        let last = self
            .last_read_ms
            .load(Ordering::Relaxed)
            .max(self.last_write_ms.load(Ordering::Relaxed))
            .max(self.accepted_ms);
        self.now_ms().saturating_sub(last)
    }

    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed)
    }

    pub fn was_killed(&self) -> bool {
        self.killed.load(Ordering::Relaxed)
    }

    fn answered(&self) -> bool {
        self.last_write_ms.load(Ordering::Relaxed) != 0
    }

    fn out(&self) -> bool {
        self.was_killed() || self.gone.load(Ordering::Relaxed)
    }

    /// Whether dropping it now loses nothing.
    fn droppable(&self, now_ms: u64) -> bool {
        if self.out() || self.is_busy() {
            return false;
        }
        let wrote = self.last_write_ms.load(Ordering::Relaxed);
        wrote == 0 || now_ms.saturating_sub(wrote) >= WRITE_GRACE_MS
    }
}

/// The table's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max: usize,
    pub per_client: usize,
}

/// What became of a new connection.
#[derive(Debug)]
pub enum Admission {
    /// Admitted (another connection may have been told to close to make room).
    Admitted(Arc<Slot>),
    /// No room and nothing to drop: every connection is busy.
    Refused,
}

/// Connections being served.
#[derive(Debug)]
pub struct Table {
    limits: Limits,
    epoch: Instant,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    /// Connections neither told to close nor gone.
    live: usize,
    live_per_ip: HashMap<IpAddr, usize>,
    /// In accept order, for the table and per address; entries that are out are skipped.
    order: VecDeque<Arc<Slot>>,
    order_per_ip: HashMap<IpAddr, VecDeque<Arc<Slot>>>,
    evicted: u64,
    refused: u64,
}

impl Inner {
    fn take_out(&mut self, s: &Slot) {
        self.live -= 1;
        if let Some(n) = self.live_per_ip.get_mut(&s.peer) {
            *n -= 1;
            if *n == 0 {
                self.live_per_ip.remove(&s.peer);
                self.order_per_ip.remove(&s.peer);
            }
        }
    }

    /// The connection to drop in `scope` (one address, or the whole table): the oldest never
    /// answered, else the one whose last response is oldest.
    fn victim(&mut self, scope: Option<IpAddr>, now_ms: u64) -> Option<Arc<Slot>> {
        let q = match scope {
            Some(ip) => self.order_per_ip.get_mut(&ip)?,
            None => &mut self.order,
        };
        // Drop what is out from the front; answered or protected ones stay in the queue.
        while q.front().is_some_and(|s| s.out()) {
            q.pop_front();
        }
        if let Some(s) = q
            .iter()
            .take(64)
            .find(|s| !s.answered() && s.droppable(now_ms))
        {
            return Some(s.clone());
        }
        // Rare (every early one is busy or answered): look at all of them.
        q.retain(|s| !s.out());
        let unanswered = q.iter().find(|s| !s.answered() && s.droppable(now_ms));
        unanswered
            .or_else(|| {
                q.iter()
                    .filter(|s| s.droppable(now_ms))
                    .min_by_key(|s| s.last_write_ms.load(Ordering::Relaxed))
            })
            .cloned()
    }
}

impl Table {
    pub fn new(limits: Limits) -> Table {
        Table {
            limits: Limits {
                max: limits.max.max(1),
                per_client: limits.per_client.max(1),
            },
            epoch: Instant::now(),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection from `peer`, making room if the table (or the peer's share of it)
    /// is full.
    pub fn admit(&self, peer: IpAddr) -> Admission {
        self.admit_at(peer, self.epoch.elapsed().as_millis() as u64 + 1)
    }

    /// [`Table::admit`] at `now_ms` milliseconds after the table's start.
    fn admit_at(&self, peer: IpAddr, now_ms: u64) -> Admission {
        let mut g = self.lock();
        // Make room in the peer's share first, then in the whole table (a connection dropped
        // from the peer's share frees a place in both).
        loop {
            let scope = if g.live_per_ip.get(&peer).copied().unwrap_or(0) >= self.limits.per_client
            {
                Some(peer)
            } else if g.live >= self.limits.max {
                None
            } else {
                break;
            };
            match g.victim(scope, now_ms) {
                Some(s) => {
                    s.killed.store(true, Ordering::Relaxed);
                    s.kill.notify_one();
                    g.take_out(&s);
                    g.evicted += 1;
                }
                None => {
                    g.refused += 1;
                    return Admission::Refused;
                }
            }
        }
        g.next_id += 1;
        let slot = Arc::new(Slot {
            id: g.next_id,
            peer,
            accepted_ms: now_ms,
            busy: AtomicBool::new(false),
            last_read_ms: AtomicU64::new(0),
            last_write_ms: AtomicU64::new(0),
            kill: Notify::new(),
            killed: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            epoch: self.epoch,
        });
        g.live += 1;
        *g.live_per_ip.entry(peer).or_default() += 1;
        g.order.push_back(slot.clone());
        g.order_per_ip
            .entry(peer)
            .or_default()
            .push_back(slot.clone());
        Admission::Admitted(slot)
    }

    /// Forgets a connection whose task ended.
    pub fn remove(&self, slot: &Slot) {
        let mut g = self.lock();
        if !slot.gone.swap(true, Ordering::Relaxed) && !slot.was_killed() {
            g.take_out(slot);
        }
    }

    /// Connections in the table, not counting those told to close.
    pub fn len(&self) -> usize {
        self.lock().live
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Connections dropped to make room, and refused for lack of any to drop.
    pub fn evicted_refused(&self) -> (u64, u64) {
        let g = self.lock();
        (g.evicted, g.refused)
    }
}

/// A connection's socket, noting when bytes move.
pub struct Tracked<IO> {
    pub io: IO,
    pub slot: Arc<Slot>,
}

impl<IO> Tracked<IO> {
    fn wrote(&self) {
        let now = self.slot.now_ms();
        self.slot.last_write_ms.store(now, Ordering::Relaxed);
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let now = self.slot.now_ms();
            self.slot.last_read_ms.store(now, Ordering::Relaxed);
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.wrote();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.wrote();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Whether the bytes waiting on a just-accepted socket already hold a complete request head
/// (`\r\n\r\n`): a scraper sends its whole request at once.
pub fn complete_head(peeked: &[u8]) -> bool {
    peeked.windows(4).any(|w| w == b"\r\n\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn admitted(a: Admission) -> Arc<Slot> {
        match a {
            Admission::Admitted(s) => s,
            Admission::Refused => panic!("refused"),
        }
    }

    #[test]
    fn a_full_table_drops_the_oldest_never_answered_connection_for_a_new_one() {
        let t = Table::new(Limits {
            max: 3,
            per_client: 3,
        });
        let a = admitted(t.admit_at(ip("127.0.0.1"), 10));
        let b = admitted(t.admit_at(ip("127.0.0.1"), 20));
        let c = admitted(t.admit_at(ip("127.0.0.1"), 30));
        let d = admitted(t.admit_at(ip("127.0.0.1"), 40));
        assert!(a.was_killed(), "the oldest unanswered one makes room");
        assert!(!b.was_killed() && !c.was_killed() && !d.was_killed());
        assert_eq!(t.evicted_refused(), (1, 0));
        assert_eq!(t.len(), 3);
        // The dropped one's task ends later; that does not free a second place.
        t.remove(&a);
        assert_eq!(t.len(), 3);
        let _e = admitted(t.admit_at(ip("127.0.0.1"), 50));
        assert!(b.was_killed());
    }

    #[test]
    fn busy_connections_waiting_requests_and_fresh_responses_are_never_dropped() {
        let t = Table::new(Limits {
            max: 2,
            per_client: 2,
        });
        let a = admitted(t.admit_at(ip("10.0.0.1"), 10));
        let b = admitted(t.admit_at(ip("10.0.0.1"), 20));
        // a is in a request (or had a whole request waiting when accepted).
        a.set_busy(true);
        // b wrote a response 500 ms before the next connection comes.
        b.last_write_ms.store(5_000, Ordering::Relaxed);
        assert!(matches!(
            t.admit_at(ip("10.0.0.1"), 5_500),
            Admission::Refused
        ));
        assert!(!a.was_killed() && !b.was_killed());
        assert_eq!(t.evicted_refused(), (0, 1));
        a.set_busy(false);
        let _c = admitted(t.admit_at(ip("10.0.0.1"), 5_600));
        assert!(a.was_killed(), "a, never answered, goes before b, answered");
    }

    #[test]
    fn one_client_cannot_take_another_clients_slots() {
        let t = Table::new(Limits {
            max: 4,
            per_client: 2,
        });
        let scraper = admitted(t.admit_at(ip("10.0.0.9"), 1));
        let x1 = admitted(t.admit_at(ip("10.0.0.1"), 2));
        let x2 = admitted(t.admit_at(ip("10.0.0.1"), 3));
        // The flooder's third connection replaces its own oldest, not the scraper's (older).
        let _x3 = admitted(t.admit_at(ip("10.0.0.1"), 4));
        assert!(x1.was_killed() && !x2.was_killed() && !scraper.was_killed());
        assert_eq!(t.len(), 3);
        // A connection that ends frees its place.
        t.remove(&x2);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn an_idle_keep_alive_goes_when_no_unanswered_connection_is_left() {
        let t = Table::new(Limits {
            max: 2,
            per_client: 2,
        });
        let a = admitted(t.admit_at(ip("10.0.0.1"), 10));
        let b = admitted(t.admit_at(ip("10.0.0.1"), 20));
        // Both answered; a's last response is the older one.
        b.last_write_ms.store(1_000, Ordering::Relaxed);
        a.last_write_ms.store(2_000, Ordering::Relaxed);
        let _c = admitted(t.admit_at(ip("10.0.0.1"), 9_000));
        assert!(b.was_killed() && !a.was_killed());
    }

    #[test]
    fn a_waiting_request_head_is_recognised() {
        assert!(complete_head(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(!complete_head(
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: a"
        ));
        assert!(!complete_head(b""));
    }

    #[test]
    fn many_admissions_through_a_full_table_stay_consistent() {
        let t = Table::new(Limits {
            max: 64,
            per_client: 64,
        });
        let mut all = Vec::new();
        for i in 0..10_000u64 {
            let s = admitted(t.admit_at(ip("127.0.0.1"), i + 1));
            all.push(s);
            // Tasks of dropped connections end a little later.
            if i % 7 == 0 {
                for s in all.iter().filter(|s| s.was_killed()) {
                    t.remove(s);
                }
            }
        }
        assert_eq!(t.len(), 64);
        assert_eq!(all.iter().filter(|s| !s.was_killed()).count(), 64);
        // The survivors are the 64 newest.
        assert!(all[all.len() - 64..].iter().all(|s| !s.was_killed()));
    }
}
