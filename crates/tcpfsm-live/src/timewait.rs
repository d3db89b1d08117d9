//! What the tracepoint cannot see: TIME_WAIT.
//!
//! When an active closer's socket reaches TIME_WAIT, Linux replaces it with a small
//! `inet_timewait_sock` and closes the full socket, so `inet_sock_set_state` reports
//! FIN_WAIT_2 -> CLOSE (or CLOSING -> CLOSE) and never mentions TIME_WAIT; the minisock later
//! dies without any tracepoint. An orphaned FIN_WAIT_2 (the application closed before the
//! peer's FIN) is handed to a minisock the same way. This tracker asks sock_diag, by exact
//! 4-tuple, what holds the connection at that moment, and then follows each minisock until
//! it goes:
//!
//! - [`Tracker::handoff`]: the full socket closed; is there a fresh minisock for its tuple?
//! - [`Tracker::sweep`]: looks again at minisocks whose timer is due (and, as the budget
//!   allows, at all of them, to notice early removal: `ss -K`, a deleted namespace, a reused
//!   tuple), reporting FIN_WAIT_2 -> TIME_WAIT sub-state changes and ends;
//! - [`Tracker::reused`]: the tracepoint saw the tuple again, so its minisock is gone.
//!
//! Cost is bounded: lookups are exact hash lookups sent many per system call, limited to
//! `rate` per second (a token bucket; a close beyond it is reported as the kernel said, and
//! counted); at most `max_pending` minisocks are followed; periodic re-checks use at most a
//! quarter of the rate.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use tcpfsm_host::{Found, HostError, SocketLookup};
use tcpfsm_states::State;

/// Linux's TCP_TIMEWAIT_LEN: a TIME_WAIT minisock lives 60 s (not tunable).
pub const TIME_WAIT_MS: u64 = 60_000;
/// How much older than our event a TIME_WAIT entry may look and still be the one the event
/// created (lookup latency, jiffies rounding). An older entry with the same tuple belongs to
/// another connection (another network namespace reusing the addresses, typically).
const FRESH_SLACK_MS: u64 = 3_000;
/// An entry past its timer is looked at this often until it is gone: the timer wheel fires a
/// 60 s timer up to ~4 s late.
const OVERDUE_EVERY_NS: u64 = 250_000_000;
/// The shortest interval between re-checks of an entry whose timer is not yet due...
const MIN_RECHECK_NS: u64 = 1_000_000_000;
/// ...and of a FIN_WAIT_2 minisock, which turns TIME_WAIT whenever the peer's FIN comes (no
/// tracepoint says when; only a look does).
const MIN_RECHECK_FW2_NS: u64 = 250_000_000;

/// Opens a sock_diag lookup socket in the namespace at `path` (setns on this thread, then
/// back): a netlink socket stays in the namespace it was created in.
pub fn lookup_in(
    path: Option<&std::path::PathBuf>,
) -> Result<SocketLookup, crate::tracefs::TraceError> {
    let Some(path) = path else {
        return Ok(SocketLookup::new()?);
    };
    use std::os::fd::AsRawFd;
    let open = |p: &std::path::Path| {
        std::fs::File::open(p).map_err(|source| crate::tracefs::TraceError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let target = open(path)?;
    let home = open(std::path::Path::new("/proc/thread-self/ns/net"))?;
    // SAFETY: valid namespace fds; CLONE_NEWNET checks the fd is a network namespace.
    if unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(crate::tracefs::TraceError::Read {
            path: path.clone(),
            source: std::io::Error::last_os_error(),
        });
    }
    let made = SocketLookup::new();
    // SAFETY: as above; returning to the namespace we came from.
    let back = unsafe { libc::setns(home.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(back, 0, "cannot return to our own network namespace");
    Ok(made?)
}

/// Exact sock_diag lookups (a trait so the tracker can be tested without a kernel).
pub trait Lookup {
    fn lookup(
        &mut self,
        tuples: &[(SocketAddr, SocketAddr)],
    ) -> Result<Vec<Option<Found>>, HostError>;
}

impl Lookup for SocketLookup {
    fn lookup(
        &mut self,
        tuples: &[(SocketAddr, SocketAddr)],
    ) -> Result<Vec<Option<Found>>, HostError> {
        SocketLookup::lookup(self, tuples)
    }
}

/// Limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Lookups per second at most (burst: one second's worth).
    pub rate: u32,
    /// Minisocks followed at most.
    pub max_pending: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            rate: 20_000,
            max_pending: 1 << 16,
        }
    }
}

/// A full socket that the tracepoint saw closing from FIN_WAIT_2 or CLOSING.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handoff {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub skaddr: u64,
    /// The tracepoint's time of the close.
    pub ts_ns: u64,
}

/// What the lookup after a close found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The kernel holds a fresh minisock for the tuple, in this sub-state.
    Minisock { state: State },
    /// No minisock (the TIME_WAIT table was full, the socket was reset, it lives in another
    /// network namespace, or it is already gone).
    NotFound,
    /// Over the lookup rate limit: not looked up.
    Skipped,
    /// The lookup failed (the error is counted).
    Failed,
}

/// A change the tracker noticed.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The full socket the minisock replaced.
    pub skaddr: u64,
    pub from: State,
    /// The minisock's new sub-state, or CLOSED when it is gone.
    pub to: State,
    /// When it was noticed.
    pub at_ns: u64,
    /// When the entry was last seen as it was: the change happened after this.
    pub last_seen_ns: u64,
    /// Nanoseconds spent in `from`, up to `at_ns`.
    pub in_from_ns: u64,
    pub cause: &'static str,
}

/// Counters, for the end-of-trace summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub lookups: u64,
    pub skipped: u64,
    pub errors: u64,
    /// Minisocks not followed because `max_pending` were.
    pub untracked: u64,
}

type Key = (SocketAddr, SocketAddr);

#[derive(Debug, Clone)]
struct Pending {
    skaddr: u64,
    state: State,
    since_ns: u64,
    deadline_ns: u64,
    last_seen_ns: u64,
    cookie: u64,
    next_ns: u64,
    id: u64,
}

/// Follows TIME_WAIT and FIN_WAIT_2 minisocks from their creation to their end.
pub struct Tracker<L> {
    lookup: L,
    limits: Limits,
    pending: HashMap<Key, Pending>,
    schedule: BTreeMap<(u64, u64), Key>,
    next_id: u64,
    tokens: f64,
    refilled_ns: Option<u64>,
    stats: Stats,
}

impl<L: Lookup> Tracker<L> {
    pub fn new(lookup: L, limits: Limits) -> Tracker<L> {
        Tracker {
            lookup,
            limits,
            pending: HashMap::new(),
            schedule: BTreeMap::new(),
            next_id: 0,
            tokens: limits.rate as f64,
            refilled_ns: None,
            stats: Stats::default(),
        }
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Minisocks being followed.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn refill(&mut self, now_ns: u64) {
        let cap = self.limits.rate as f64;
        if let Some(last) = self.refilled_ns {
            let dt = now_ns.saturating_sub(last) as f64 / 1e9;
            self.tokens = (self.tokens + dt * cap).min(cap);
        }
        self.refilled_ns = Some(now_ns);
    }

    fn take(&mut self, n: usize) -> usize {
        let n = n.min(self.tokens.max(0.0) as usize);
        self.tokens -= n as f64;
        n
    }

    fn lookup(&mut self, keys: &[Key]) -> Option<Vec<Option<Found>>> {
        self.stats.lookups += keys.len() as u64;
        match self.lookup.lookup(keys) {
            Ok(v) => Some(v),
            Err(_) => {
                self.stats.errors += 1;
                None
            }
        }
    }

    /// The interval between re-checks of an entry not yet due: at least a second, longer
    /// when many are followed, so re-checks take at most a quarter of the rate.
    fn recheck_ns(&self, state: State) -> u64 {
        let per_sec = (self.limits.rate as u64 / 4).max(1);
        let floor = if state == State::FinWait2 {
            MIN_RECHECK_FW2_NS
        } else {
            MIN_RECHECK_NS
        };
        floor.max(self.pending.len() as u64 * 1_000_000_000 / per_sec)
    }

    fn schedule(&mut self, key: Key, now_ns: u64) {
        let Some(state) = self.pending.get(&key).map(|p| p.state) else {
            return;
        };
        let recheck = self.recheck_ns(state);
        let p = self.pending.get_mut(&key).expect("present");
        self.schedule.remove(&(p.next_ns, p.id));
        p.next_ns = if now_ns >= p.deadline_ns {
            now_ns + OVERDUE_EVERY_NS
        } else {
            p.deadline_ns.min(now_ns + recheck)
        };
        self.schedule.insert((p.next_ns, p.id), key);
    }

    fn remove(&mut self, key: &Key) -> Option<Pending> {
        let p = self.pending.remove(key)?;
        self.schedule.remove(&(p.next_ns, p.id));
        Some(p)
    }

    /// Looks up the tuples of full sockets that just closed; one outcome per handoff, in
    /// order. Each minisock found is followed from then on.
    pub fn handoff(&mut self, closes: &[Handoff], now_ns: u64) -> Vec<Outcome> {
        self.refill(now_ns);
        let n = self.take(closes.len());
        let mut out = vec![Outcome::Skipped; closes.len()];
        self.stats.skipped += (closes.len() - n) as u64;
        if n == 0 {
            return out;
        }
        let keys: Vec<Key> = closes[..n].iter().map(|h| (h.local, h.remote)).collect();
        let Some(found) = self.lookup(&keys) else {
            out[..n].fill(Outcome::Failed);
            return out;
        };
        for (i, (h, f)) in closes[..n].iter().zip(found).enumerate() {
            out[i] = match f {
                Some(f) if f.minisock && fresh(&f, h.ts_ns, now_ns) => {
                    self.follow(h, &f, now_ns);
                    Outcome::Minisock { state: f.state }
                }
                _ => Outcome::NotFound,
            };
        }
        out
    }

    fn follow(&mut self, h: &Handoff, f: &Found, now_ns: u64) {
        let key = (h.local, h.remote);
        // A tuple followed already belongs to an older minisock, which the new close replaced.
        self.remove(&key);
        if self.pending.len() >= self.limits.max_pending {
            self.stats.untracked += 1;
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(
            key,
            Pending {
                skaddr: h.skaddr,
                state: f.state,
                since_ns: h.ts_ns,
                deadline_ns: now_ns + f.expires_ms as u64 * 1_000_000,
                last_seen_ns: now_ns,
                cookie: f.cookie,
                next_ns: 0,
                id,
            },
        );
        self.schedule(key, now_ns);
    }

    /// The tracepoint saw `local`-`remote` change state at `ts_ns`: a connection uses the
    /// tuple again, so a minisock that held it is gone (Linux kills it to reuse the tuple).
    pub fn reused(&mut self, local: SocketAddr, remote: SocketAddr, ts_ns: u64) -> Option<Change> {
        let key = (local, remote);
        let p = self.remove(&key)?;
        Some(change(key, &p, State::Closed, ts_ns, "4-tuple reused"))
    }

    /// The tracepoint saw the other end of `local`-`remote` (a peer on this host: its tuple is
    /// ours reversed) change state. If we follow a FIN_WAIT_2 minisock for the connection,
    /// the peer may just have sent its FIN: look again at the next sweep.
    pub fn peer_moved(&mut self, local: SocketAddr, remote: SocketAddr) {
        let key = (remote, local);
        let Some(p) = self.pending.get_mut(&key) else {
            return;
        };
        if p.state == State::FinWait2 {
            self.schedule.remove(&(p.next_ns, p.id));
            p.next_ns = 0;
            self.schedule.insert((0, p.id), key);
        }
    }

    /// Looks again at the minisocks due for a look; returns what changed.
    pub fn sweep(&mut self, now_ns: u64) -> Vec<Change> {
        self.refill(now_ns);
        let due: Vec<Key> = self
            .schedule
            .range(..=(now_ns, u64::MAX))
            .map(|(_, k)| *k)
            .collect();
        let n = self.take(due.len());
        if n == 0 {
            return Vec::new();
        }
        let keys = &due[..n];
        let Some(found) = self.lookup(keys) else {
            // Try again later rather than declare them gone.
            for k in keys {
                self.schedule(*k, now_ns);
            }
            return Vec::new();
        };
        let mut changes = Vec::new();
        for (key, f) in keys.iter().zip(found) {
            let Some(p) = self.pending.get(key).cloned() else {
                continue;
            };
            match f {
                Some(f) if f.minisock && f.cookie == p.cookie => {
                    if f.state != p.state {
                        // FIN_WAIT_2 minisock -> TIME_WAIT: the peer's FIN came.
                        changes.push(change(*key, &p, f.state, now_ns, "FIN received"));
                        let e = self.pending.get_mut(key).expect("present");
                        e.state = f.state;
                        e.since_ns = now_ns;
                        e.deadline_ns = now_ns + f.expires_ms as u64 * 1_000_000;
                    }
                    self.pending.get_mut(key).expect("present").last_seen_ns = now_ns;
                    self.schedule(*key, now_ns);
                }
                // Gone, or replaced by another socket with the tuple.
                other => {
                    let cause = match other {
                        Some(_) => "4-tuple reused",
                        None if now_ns + 500_000_000 >= p.deadline_ns => match p.state {
                            State::FinWait2 => "FIN_WAIT_2 timeout",
                            _ => "2MSL expired",
                        },
                        None => "removed before its timer (killed, or its namespace deleted)",
                    };
                    changes.push(change(*key, &p, State::Closed, now_ns, cause));
                    self.remove(key);
                }
            }
        }
        changes
    }
}

/// A TIME_WAIT minisock created by the close at `ts_ns` has at most its full lifetime left,
/// less the time since; one with much less left is an older entry of another connection.
fn fresh(f: &Found, ts_ns: u64, now_ns: u64) -> bool {
    if f.state != State::TimeWait {
        return true; // a FIN_WAIT_2 minisock's lifetime depends on the socket's linger2
    }
    let since_ms = now_ns.saturating_sub(ts_ns) / 1_000_000;
    f.expires_ms as u64 + since_ms + FRESH_SLACK_MS >= TIME_WAIT_MS
}

fn change(key: Key, p: &Pending, to: State, at_ns: u64, cause: &'static str) -> Change {
    Change {
        local: key.0,
        remote: key.1,
        skaddr: p.skaddr,
        from: p.state,
        to,
        at_ns,
        last_seen_ns: p.last_seen_ns,
        in_from_ns: at_ns.saturating_sub(p.since_ns),
        cause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A fake kernel table: tuple -> what sock_diag would say.
    #[derive(Clone, Default)]
    struct Table {
        rows: Rc<RefCell<HashMap<Key, Found>>>,
        calls: Rc<RefCell<usize>>,
        asked: Rc<RefCell<usize>>,
    }

    impl Lookup for Table {
        fn lookup(&mut self, t: &[Key]) -> Result<Vec<Option<Found>>, HostError> {
            *self.calls.borrow_mut() += 1;
            *self.asked.borrow_mut() += t.len();
            Ok(t.iter()
                .map(|k| self.rows.borrow().get(k).copied())
                .collect())
        }
    }

    /// A minisock in `state`, as a reply about a TIME_WAIT / FIN_WAIT_2 entry reads.
    fn found(state: State, expires_ms: u32, cookie: u64) -> Found {
        Found::new(state, state.linux_code(), true, expires_ms, cookie)
    }

    const S: u64 = 1_000_000_000;

    fn key(n: u16) -> Key {
        (
            format!("10.0.0.1:{n}").parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
        )
    }

    fn close(n: u16, ts_ns: u64) -> Handoff {
        let (local, remote) = key(n);
        Handoff {
            local,
            remote,
            skaddr: 0xffff_0000 + n as u64,
            ts_ns,
        }
    }

    #[test]
    fn fresh_time_wait_entry_is_reported_and_its_expiry_noticed_after_its_timer() {
        let t = Table::default();
        t.rows
            .borrow_mut()
            .insert(key(1), found(State::TimeWait, 59_900, 7));
        let mut tr = Tracker::new(t.clone(), Limits::default());
        let out = tr.handoff(&[close(1, 100 * S)], 100 * S + S / 10);
        assert_eq!(
            out,
            vec![Outcome::Minisock {
                state: State::TimeWait
            }]
        );
        // Re-checks until the timer is due see it still there: nothing to report.
        for s in 101..160 {
            assert!(tr.sweep(s * S).is_empty(), "at {s}s");
        }
        t.rows.borrow_mut().remove(&key(1));
        let ch = tr.sweep(161 * S);
        assert_eq!(ch.len(), 1);
        let c = &ch[0];
        assert_eq!(
            (c.from, c.to, c.cause),
            (State::TimeWait, State::Closed, "2MSL expired")
        );
        assert_eq!(c.skaddr, 0xffff_0001);
        assert_eq!(c.in_from_ns, 61 * S);
        assert!(
            c.last_seen_ns < c.at_ns && c.last_seen_ns >= 160 * S - S,
            "{c:?}"
        );
        assert_eq!(tr.pending(), 0);
    }

    #[test]
    fn an_entry_removed_early_is_noticed_by_the_periodic_recheck() {
        let t = Table::default();
        t.rows
            .borrow_mut()
            .insert(key(2), found(State::TimeWait, 60_000, 1));
        let mut tr = Tracker::new(t.clone(), Limits::default());
        tr.handoff(&[close(2, 10 * S)], 10 * S);
        t.rows.borrow_mut().remove(&key(2)); // ss -K
        assert!(tr.sweep(10 * S + S / 2).is_empty(), "not due yet");
        let ch = tr.sweep(11 * S);
        assert_eq!(ch.len(), 1);
        assert!(
            ch[0].cause.starts_with("removed before its timer"),
            "{:?}",
            ch[0]
        );
    }

    #[test]
    fn an_older_entry_with_the_same_tuple_is_not_the_closed_socket() {
        let t = Table::default();
        // 20 s left: created 40 s ago, long before our close.
        t.rows
            .borrow_mut()
            .insert(key(3), found(State::TimeWait, 20_000, 1));
        let mut tr = Tracker::new(t, Limits::default());
        assert_eq!(
            tr.handoff(&[close(3, 5 * S)], 5 * S),
            vec![Outcome::NotFound]
        );
        assert_eq!(tr.pending(), 0);
    }

    #[test]
    fn a_full_socket_on_the_tuple_is_not_a_minisock() {
        let t = Table::default();
        let mut f = found(State::Established, 0, 1);
        f.minisock = false;
        t.rows.borrow_mut().insert(key(4), f);
        let mut tr = Tracker::new(t, Limits::default());
        assert_eq!(tr.handoff(&[close(4, 0)], 0), vec![Outcome::NotFound]);
    }

    #[test]
    fn fin_wait_2_minisock_turning_time_wait_is_reported_then_its_end() {
        let t = Table::default();
        t.rows
            .borrow_mut()
            .insert(key(5), found(State::FinWait2, 60_000, 9));
        let mut tr = Tracker::new(t.clone(), Limits::default());
        assert_eq!(
            tr.handoff(&[close(5, 0)], 0),
            vec![Outcome::Minisock {
                state: State::FinWait2
            }]
        );
        // The peer's FIN: same minisock (cookie), now TIME_WAIT with a fresh 60 s.
        t.rows
            .borrow_mut()
            .insert(key(5), found(State::TimeWait, 60_000, 9));
        let ch = tr.sweep(S);
        assert_eq!(ch.len(), 1);
        assert_eq!((ch[0].from, ch[0].to), (State::FinWait2, State::TimeWait));
        // A different cookie: the minisock was replaced by another connection's.
        t.rows
            .borrow_mut()
            .insert(key(5), found(State::TimeWait, 60_000, 10));
        let ch = tr.sweep(2 * S);
        assert_eq!(
            (ch[0].from, ch[0].to, ch[0].cause),
            (State::TimeWait, State::Closed, "4-tuple reused")
        );
    }

    #[test]
    fn a_local_peer_moving_makes_a_fin_wait_2_minisock_due_at_once() {
        let t = Table::default();
        t.rows
            .borrow_mut()
            .insert(key(7), found(State::FinWait2, 60_000, 3));
        let mut tr = Tracker::new(t.clone(), Limits::default());
        tr.handoff(&[close(7, 0)], 0);
        t.rows
            .borrow_mut()
            .insert(key(7), found(State::TimeWait, 60_000, 3));
        assert!(tr.sweep(S / 100).is_empty(), "not due by itself yet");
        // The server on this host goes CLOSE_WAIT -> LAST_ACK: its tuple is ours reversed.
        let (l, r) = key(7);
        tr.peer_moved(r, l);
        let ch = tr.sweep(S / 50);
        assert_eq!(ch.len(), 1, "{ch:?}");
        assert_eq!((ch[0].from, ch[0].to), (State::FinWait2, State::TimeWait));
    }

    #[test]
    fn a_tuple_seen_again_by_the_tracepoint_ends_its_minisock_there() {
        let t = Table::default();
        t.rows
            .borrow_mut()
            .insert(key(6), found(State::TimeWait, 60_000, 1));
        let mut tr = Tracker::new(t, Limits::default());
        tr.handoff(&[close(6, 0)], 0);
        let (l, r) = key(6);
        let c = tr.reused(l, r, 3 * S).unwrap();
        assert_eq!(
            (c.to, c.at_ns, c.cause),
            (State::Closed, 3 * S, "4-tuple reused")
        );
        assert!(tr.reused(l, r, 4 * S).is_none());
        assert_eq!(tr.pending(), 0);
    }

    #[test]
    fn lookups_beyond_the_rate_are_skipped_and_batched_into_one_call() {
        let t = Table::default();
        let mut tr = Tracker::new(
            t.clone(),
            Limits {
                rate: 100,
                max_pending: 10,
            },
        );
        let closes: Vec<Handoff> = (0..150).map(|i| close(i, 0)).collect();
        let out = tr.handoff(&closes, 0);
        assert_eq!(out.iter().filter(|o| **o == Outcome::Skipped).count(), 50);
        assert_eq!(*t.calls.borrow(), 1, "one batch");
        assert_eq!(tr.stats().skipped, 50);
        // Half a second later, half the rate is back.
        let out = tr.handoff(&closes[..80], S / 2);
        assert_eq!(out.iter().filter(|o| **o == Outcome::Skipped).count(), 30);
    }

    #[test]
    fn pending_set_is_capped_and_rechecks_slow_down_when_it_is_large() {
        let t = Table::default();
        for i in 0..20 {
            t.rows
                .borrow_mut()
                .insert(key(i), found(State::TimeWait, 60_000, i as u64));
        }
        let mut tr = Tracker::new(
            t.clone(),
            Limits {
                rate: 8,
                max_pending: 12,
            },
        );
        // 8 lookups a second: the 20 closes take three seconds to look up.
        let closes: Vec<Handoff> = (0..20).map(|i| close(i, 0)).collect();
        tr.handoff(&closes[..8], 0);
        tr.handoff(&closes[8..16], S);
        tr.handoff(&closes[16..], 2 * S);
        assert_eq!(tr.pending(), 12);
        assert_eq!(tr.stats().untracked, 8);
        // 12 followed at 2 re-checks/s: each is looked at every 6 s, not every second.
        *t.asked.borrow_mut() = 0;
        for s in 3..=14 {
            tr.sweep(s * S);
        }
        assert!(
            *t.asked.borrow() <= 2 * 12 + 8,
            "asked {}",
            t.asked.borrow()
        );
        assert!(*t.asked.borrow() >= 12, "asked {}", t.asked.borrow());
    }
}
