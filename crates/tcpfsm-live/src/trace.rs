//! The kernel's TCP state transitions, live, from the `sock:inet_sock_set_state` tracepoint,
//! with TIME_WAIT filled in from sock_diag and, on request, retransmissions and resets from
//! `tcp:tcp_retransmit_skb`, `tcp:tcp_send_reset` and `tcp:tcp_receive_reset`.
//!
//! The tracepoints are read through a private tracefs instance ([`crate::tracefs`]) and its
//! per-CPU binary rings ([`crate::ring`]), decoded by the kernel's own format files
//! ([`crate::tpevents`]). No kprobes, no BPF: only stable tracepoints. The kernel filters to
//! TCP for us (`protocol == 6`, and the port when asked), so SCTP/MPTCP and unrelated
//! connections cost nothing to ignore.
//!
//! Why ftrace and not perf_event_open: on the 6.18 kernels we run on, perf silently never
//! receives some hits of this tracepoint, typically those fired in softirq context (a
//! client's FIN_WAIT_1 -> FIN_WAIT_2 -> CLOSED when the peer's ACK arrives); even `perf
//! record -a` saw 37 of 40 such hits and no PERF_RECORD_LOST, while an ftrace instance saw
//! every hit. A trace that silently drops transitions is worse than none.
//!
//! Time spent in the previous state is measured like bcc's `tcpstates`: remember when each
//! socket (by its kernel address, `skaddr`) last changed state; a socket seen for the first
//! time has no known age.
//!
//! Network namespaces: the tracepoints carry none (they fire for every namespace of the
//! host), so a transition's namespace is unknown and said to be. Only what sock_diag found
//! (the TIME_WAIT minisocks, [`crate::timewait`]) is known to be in the namespace the lookups
//! run in, and carries its inode.

use crate::comms::Comms;
use crate::ring::{parse_page, PageLayout};
use crate::timewait::{lookup_in, Change, Handoff, Limits, Outcome, Tracker};
use crate::tpevents::{
    Decoders, Extra, KernelEvent, Record, IPPROTO_TCP, RECEIVE_RESET, RETRANSMIT, SEND_RESET,
    SET_STATE,
};
use crate::tpformat::Format;
pub use crate::tracefs::TraceError;
use crate::tracefs::{page_layout, read_event_file, tracefs_root, Instance};
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use tcpfsm_host::SocketLookup;
use tcpfsm_states::State;

/// Per-CPU ring size of our instance: 4 MiB holds about 50,000 transitions (~80 bytes each
/// in the ring) per CPU, enough to ride out bursts between reads...
const BUFFER_KB_PER_CPU: u64 = 4096;
/// ...but a many-CPU host should not pin gigabytes for a trace: at most 256 MiB in all, and
/// never below the 1 MiB per CPU that still holds ~12,000 transitions.
const BUFFER_KB_TOTAL: u64 = 256 * 1024;
const BUFFER_KB_MIN: u64 = 1024;
/// Most bytes one `poll` call reads, so a flood cannot keep it from returning (the caller
/// checks its count, duration and Ctrl-C between calls); the rest waits in the ring.
const READ_BUDGET: usize = 4 << 20;

/// Per-CPU ring size in KiB for a host with `cpus` CPUs (ftrace allocates one ring each).
pub fn buffer_kb(cpus: u64) -> u64 {
    (BUFFER_KB_TOTAL / cpus.max(1)).clamp(BUFFER_KB_MIN, BUFFER_KB_PER_CPU)
}

/// CPUs the kernel may bring online, each of which gets a ring.
fn possible_cpus() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
    if n > 0 {
        n as u64
    } else {
        1
    }
}

/// CLOCK_MONOTONIC now, in nanoseconds (the clock our ring uses).
pub fn mono_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Remembers each socket's last state and when it changed, by its kernel address.
///
/// A socket that reaches CLOSED is forgotten, so a later socket allocated at the same address
/// starts fresh (bcc's tcpstates does the same).
#[derive(Debug, Default)]
pub struct Ages {
    last: HashMap<u64, (u64, State)>,
}

/// Sockets that live forever (LISTEN, long ESTABLISHED) never leave the map; this bounds it.
const AGES_MAX: usize = 1 << 20;

impl Ages {
    pub fn new() -> Ages {
        Ages::default()
    }

    /// Records a change of socket `skaddr` at `ts_ns` and returns the milliseconds it spent
    /// in the previous state (None when this trace had not seen it before).
    pub fn observe(&mut self, skaddr: u64, ts_ns: u64, to: State) -> Option<f64> {
        if self.last.len() >= AGES_MAX {
            self.last.clear();
        }
        let prev = if to == State::Closed {
            self.last.remove(&skaddr)
        } else {
            self.last.insert(skaddr, (ts_ns, to))
        };
        prev.map(|(t, _)| ts_ns.saturating_sub(t) as f64 / 1e6)
    }

    /// The socket's state as last reported, if this trace saw it.
    pub fn state(&self, skaddr: u64) -> Option<State> {
        self.last.get(&skaddr).map(|(_, s)| *s)
    }

    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

/// What to let through.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Either end's port.
    pub port: Option<u16>,
    /// State changes into or out of this state; retransmissions and resets of sockets in it.
    pub state: Option<State>,
}

impl Filter {
    pub fn matches(&self, e: &Event) -> bool {
        if let Some(p) = self.port {
            if e.local.port() != p && e.remote.port() != p {
                return false;
            }
        }
        match (self.state, &e.kind) {
            (None, _) => true,
            (Some(s), EventKind::State(c)) => c.from == s || c.to == s,
            (Some(s), EventKind::Retransmit { state, .. } | EventKind::Reset { state, .. }) => {
                *state == Some(s)
            }
        }
    }
}

/// Where a reported state change comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The tracepoint, as the kernel reported it.
    Tracepoint,
    /// A sock_diag lookup: the TIME_WAIT / FIN_WAIT_2 minisock the kernel holds for the
    /// connection, which no tracepoint reports.
    SockDiag,
}

/// One state change.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub from: State,
    pub to: State,
    /// Milliseconds spent in `from`; None when the socket was first seen during this trace.
    pub ms_in_prev: Option<f64>,
    pub source: Source,
    /// Why, when known: `kernel` for the tracepoint (it does not say), the reason for
    /// sock_diag findings (`FIN received`, `2MSL expired`, ...).
    pub cause: &'static str,
    /// For a change noticed by looking again: when the entry was last seen as before (the
    /// change happened between that and the event's time).
    pub last_seen_ns: Option<u64>,
    /// For the kernel's FIN_WAIT_2/CLOSING -> CLOSED left as reported: why it is not shown
    /// as TIME_WAIT (`not found`, `not looked up (rate limit)`, `lookup failed`).
    pub time_wait: Option<&'static str>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventKind {
    State(StateChange),
    /// A retransmitted segment; `err` set when it could not be sent (6.12+).
    Retransmit {
        state: Option<State>,
        err: Option<i32>,
    },
    /// A RST sent (with the kernel's reason, 6.10+) or received.
    Reset {
        sent: bool,
        state: Option<State>,
        reason: Option<String>,
    },
}

/// One line of the trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// CLOCK_MONOTONIC nanoseconds.
    pub mono_ns: u64,
    /// The task current when the kernel acted (often unrelated, or 0, in softirq context);
    /// None for what sock_diag found.
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// The kernel address of the socket (as bcc's tools print it): ties a connection's
    /// lines together. A minisock's lines carry the full socket's address it replaced.
    pub skaddr: Option<u64>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The network namespace's inode, when known (sock_diag findings only).
    pub netns: Option<u64>,
    pub kind: EventKind,
}

impl Event {
    /// `local-remote`, as the simulator names a connection.
    pub fn conn(&self) -> String {
        format!("{}-{}", self.local, self.remote)
    }
}

/// What to trace.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub filter: Filter,
    pub extra: Extra,
    /// sock_diag lookups for TIME_WAIT (None: report the kernel's CLOSED as it is).
    pub lookups: Option<Limits>,
    /// Network namespace the lookups run in (a path such as /run/netns/NAME); the caller's
    /// own when None.
    pub lookup_netns: Option<PathBuf>,
}

/// A running trace.
pub struct Tracer {
    instance: Instance,
    decoders: Decoders,
    layout: PageLayout,
    page: Vec<u8>,
    filter: Filter,
    ages: Ages,
    comms: Comms,
    tracker: Option<Tracker<SocketLookup>>,
    lookup_netns: Option<u64>,
    corrupt_pages: u64,
    /// CLOCK_MONOTONIC and wall clock when tracing started, to place events in time.
    pub start_mono_ns: u64,
    pub start_wall: SystemTime,
}

impl Tracer {
    /// Finds (or mounts) tracefs, checks the tracepoints, and starts them in a private
    /// instance with a CLOCK_MONOTONIC clock and the kernel-side filters.
    pub fn open(opts: Options) -> Result<Tracer, TraceError> {
        let root = tracefs_root()?;
        let mut events = vec![SET_STATE];
        if opts.extra.retransmit {
            events.push(RETRANSMIT);
        }
        if opts.extra.reset {
            events.extend([SEND_RESET, RECEIVE_RESET]);
        }
        // Check every tracepoint before creating anything, so an absence is named clearly.
        let mut decoders = Decoders::default();
        let mut formats = Vec::new();
        for (event, needs) in &events {
            let path = root.join("events").join(event).join("format");
            let format = Format::parse(&read_event_file(&path, event, needs)?)?;
            decoders.add(event, &format)?;
            formats.push((*event, format));
        }
        let tracker = match opts.lookups {
            Some(limits) => Some(Tracker::new(lookup_in(opts.lookup_netns.as_ref())?, limits)),
            None => None,
        };
        let lookup_netns = match &opts.lookup_netns {
            None => tracker_netns_self(),
            Some(p) => {
                use std::os::unix::fs::MetadataExt;
                std::fs::metadata(p).ok().map(|m| m.ino())
            }
        };

        let mut instance = Instance::create(&root)?;
        // `mono` is CLOCK_MONOTONIC (ktime_get_mono_fast_ns), so timestamps line up with
        // start_mono_ns below and can be placed against the wall clock.
        instance.write("trace_clock", "mono")?;
        // A bigger ring is a nicety; the kernel's default (about 1.4 MiB per CPU) also works,
        // so a refusal (no memory) is not an error.
        let _ = instance.write("buffer_size_kb", &buffer_kb(possible_cpus()).to_string());
        // Wake a waiting reader on any data, not when a ring is half full.
        let _ = instance.write("buffer_percent", "0");
        for (event, format) in &formats {
            if let Some(f) = Decoders::kernel_filter(format, opts.filter.port) {
                // Let the kernel drop what we would drop anyway. If it refuses the filter we
                // still filter in user space, only less cheaply.
                let _ = instance.write(&format!("events/{event}/filter"), &f);
            }
        }
        let page_size = instance
            .read("buffer_subbuf_size_kb")
            .and_then(|s| s.trim().parse::<usize>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or_else(|| {
                // SAFETY: sysconf has no preconditions.
                let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
                if p > 0 {
                    p as usize
                } else {
                    4096
                }
            });
        instance.open_pipes()?;
        let start_mono_ns = mono_now_ns();
        let start_wall = SystemTime::now();
        for (event, _) in &formats {
            instance.enable(event)?;
        }
        Ok(Tracer {
            instance,
            decoders,
            layout: page_layout(&root),
            page: vec![0; page_size],
            filter: opts.filter,
            ages: Ages::new(),
            comms: Comms::new(root),
            tracker,
            lookup_netns,
            corrupt_pages: 0,
            start_mono_ns,
            start_wall,
        })
    }

    /// Events the kernel could not record because our ring was full.
    pub fn lost(&self) -> u64 {
        self.instance.lost_events()
    }

    /// Ring pages that could not be read to their end (what came before was delivered).
    pub fn corrupt_pages(&self) -> u64 {
        self.corrupt_pages
    }

    /// The lookups' namespace inode (`net:[N]`), when sock_diag lookups are on.
    pub fn lookup_netns(&self) -> Option<u64> {
        self.tracker.as_ref().and(self.lookup_netns)
    }

    /// TIME_WAIT lookup counters (None when lookups are off).
    pub fn lookup_stats(&self) -> Option<crate::timewait::Stats> {
        self.tracker.as_ref().map(|t| t.stats())
    }

    /// Waits up to `timeout` for events, then appends the decoded, filtered events in time
    /// order to `out`. Returns early (possibly with nothing) on a signal.
    pub fn poll(&mut self, timeout: Duration, out: &mut Vec<Event>) -> Result<(), TraceError> {
        let mut batch: Vec<Event> = Vec::new();
        // Minisocks are looked at before the rings are read: every hit that happened before
        // the look is then in this batch too, so sorting keeps the output in time order.
        if let Some(t) = self.tracker.as_mut() {
            let changes = t.sweep(mono_now_ns());
            for c in changes {
                batch.push(change_event(c, self.lookup_netns));
            }
        }
        let wait = if batch.is_empty() {
            timeout
        } else {
            Duration::ZERO
        };
        self.instance
            .wait(wait.as_millis().min(i32::MAX as u128) as i32)?;
        let mut recs: Vec<Record> = Vec::new();
        let (decoders, layout) = (&self.decoders, &self.layout);
        let mut corrupt = 0;
        self.instance
            .drain(&mut self.page, READ_BUDGET, |cpu, page| {
                let r = parse_page(page, layout, |ts, rec| {
                    if let Some(r) = decoders.decode(ts, cpu, rec) {
                        recs.push(r);
                    }
                });
                corrupt += u64::from(r.is_err());
            })?;
        self.corrupt_pages += corrupt;
        // Each CPU's ring is in time order; merge them.
        recs.sort_by_key(|r| r.ts_ns);
        let mut handoffs: Vec<(usize, Handoff)> = Vec::new();
        for r in recs {
            let (skaddr, local, remote) = match &r.event {
                KernelEvent::SetState {
                    skaddr,
                    local,
                    remote,
                    ..
                }
                | KernelEvent::Retransmit {
                    skaddr,
                    local,
                    remote,
                    ..
                }
                | KernelEvent::SendReset {
                    skaddr,
                    local,
                    remote,
                    ..
                }
                | KernelEvent::ReceiveReset {
                    skaddr,
                    local,
                    remote,
                    ..
                } => (*skaddr, *local, *remote),
            };
            let kind = match r.event {
                KernelEvent::SetState { protocol, .. } if protocol != IPPROTO_TCP => continue,
                KernelEvent::SetState { from, to, .. } => {
                    // Age every socket, filtered or not, so a filter never makes ages wrong.
                    let ms_in_prev = self.ages.observe(skaddr, r.ts_ns, to);
                    if let Some(t) = self.tracker.as_mut() {
                        if let Some(c) = t.reused(local, remote, r.ts_ns) {
                            batch.push(change_event(c, self.lookup_netns));
                        }
                        t.peer_moved(local, remote);
                        if to == State::Closed && matches!(from, State::FinWait2 | State::Closing) {
                            handoffs.push((
                                batch.len(),
                                Handoff {
                                    local,
                                    remote,
                                    skaddr,
                                    ts_ns: r.ts_ns,
                                },
                            ));
                        }
                    }
                    EventKind::State(StateChange {
                        from,
                        to,
                        ms_in_prev,
                        source: Source::Tracepoint,
                        cause: "kernel",
                        last_seen_ns: None,
                        time_wait: None,
                    })
                }
                KernelEvent::Retransmit { state, err, .. } => EventKind::Retransmit {
                    state: state.or_else(|| self.ages.state(skaddr)),
                    err,
                },
                KernelEvent::SendReset { state, reason, .. } => EventKind::Reset {
                    sent: true,
                    state: state.or_else(|| self.ages.state(skaddr)),
                    reason,
                },
                KernelEvent::ReceiveReset { .. } => EventKind::Reset {
                    sent: false,
                    state: self.ages.state(skaddr),
                    reason: None,
                },
            };
            let comm = self.comms.get(r.pid);
            batch.push(Event {
                mono_ns: r.ts_ns,
                pid: Some(r.pid),
                comm: Some(comm),
                skaddr: (skaddr != 0).then_some(skaddr),
                local,
                remote,
                netns: None,
                kind,
            });
        }
        if !handoffs.is_empty() {
            self.resolve_handoffs(&handoffs, &mut batch);
        }
        // Stable: a change and the hit that revealed it keep their order.
        batch.sort_by_key(|e| e.mono_ns);
        out.extend(batch.into_iter().filter(|e| self.filter.matches(e)));
        Ok(())
    }

    /// Rewrites the kernel's FIN_WAIT_2/CLOSING -> CLOSED of each handoff to what sock_diag
    /// found holding the connection.
    fn resolve_handoffs(&mut self, handoffs: &[(usize, Handoff)], batch: &mut [Event]) {
        let Some(t) = self.tracker.as_mut() else {
            return;
        };
        let hs: Vec<Handoff> = handoffs.iter().map(|(_, h)| *h).collect();
        let outcomes = t.handoff(&hs, mono_now_ns());
        for ((i, _), o) in handoffs.iter().zip(outcomes) {
            let e = &mut batch[*i];
            let EventKind::State(c) = &mut e.kind else {
                continue;
            };
            match o {
                Outcome::Minisock { state } => {
                    c.to = state;
                    c.source = Source::SockDiag;
                    c.cause = match (c.from, state) {
                        (State::FinWait2, State::TimeWait) => "FIN received",
                        (State::Closing, State::TimeWait) => "FIN acked",
                        _ => "orphaned: now held by a FIN_WAIT_2 minisock",
                    };
                    e.netns = self.lookup_netns;
                }
                Outcome::NotFound => c.time_wait = Some("not found"),
                Outcome::Skipped => c.time_wait = Some("not looked up (rate limit)"),
                Outcome::Failed => c.time_wait = Some("lookup failed"),
            }
        }
    }
}

/// A change the TIME_WAIT tracker noticed, as an event in the namespace of its lookups.
fn change_event(c: Change, netns: Option<u64>) -> Event {
    Event {
        mono_ns: c.at_ns,
        pid: None,
        comm: None,
        skaddr: Some(c.skaddr),
        local: c.local,
        remote: c.remote,
        netns,
        kind: EventKind::State(StateChange {
            from: c.from,
            to: c.to,
            ms_in_prev: Some(c.in_from_ns as f64 / 1e6),
            source: Source::SockDiag,
            cause: c.cause,
            last_seen_ns: Some(c.last_seen_ns),
            time_wait: None,
        }),
    }
}

impl Tracer {
    /// Microseconds since tracing started.
    pub fn t_us(&self, mono_ns: u64) -> u64 {
        mono_ns.saturating_sub(self.start_mono_ns) / 1000
    }

    /// Wall-clock time of a CLOCK_MONOTONIC instant.
    pub fn wall(&self, mono_ns: u64) -> SystemTime {
        self.start_wall + Duration::from_nanos(mono_ns.saturating_sub(self.start_mono_ns))
    }
}

fn tracker_netns_self() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net")
        .ok()
        .map(|m| m.ino())
}

/// This host's name, for the `host` field.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ring_size_is_4_mib_per_cpu_capped_at_256_mib_in_all_but_never_below_1_mib() {
        assert_eq!(buffer_kb(2), 4096);
        assert_eq!(buffer_kb(64), 4096);
        assert_eq!(buffer_kb(128), 2048);
        assert_eq!(buffer_kb(1024), 1024);
        assert_eq!(buffer_kb(0), 4096);
    }

    #[test]
    fn age_is_time_since_the_previous_change_of_the_same_socket() {
        use State::*;
        let mut a = Ages::new();
        assert_eq!(a.observe(1, 1_000_000, FinWait1), None);
        assert_eq!(a.observe(2, 1_500_000, FinWait1), None);
        assert_eq!(a.observe(1, 3_500_000, FinWait2), Some(2.5));
        assert_eq!(a.observe(2, 2_500_000, FinWait2), Some(1.0));
        assert_eq!(a.state(1), Some(FinWait2));
    }

    #[test]
    fn closed_socket_is_forgotten_so_a_reused_address_starts_fresh() {
        use State::*;
        let mut a = Ages::new();
        a.observe(7, 0, FinWait1);
        assert_eq!(a.observe(7, 2_000_000, Closed), Some(2.0));
        assert!(a.is_empty());
        assert_eq!(a.observe(7, 5_000_000, SynSent), None);
        assert_eq!(a.state(7), Some(SynSent));
    }

    fn event(local: &str, remote: &str, kind: EventKind) -> Event {
        Event {
            mono_ns: 0,
            pid: Some(1),
            comm: Some("x".into()),
            skaddr: Some(1),
            local: sa(local),
            remote: sa(remote),
            netns: None,
            kind,
        }
    }

    fn change(from: State, to: State) -> EventKind {
        EventKind::State(StateChange {
            from,
            to,
            ms_in_prev: None,
            source: Source::Tracepoint,
            cause: "kernel",
            last_seen_ns: None,
            time_wait: None,
        })
    }

    #[test]
    fn filter_matches_either_port_either_state_and_the_state_of_a_retransmit() {
        let f = |port, state| Filter { port, state };
        let e = event(
            "10.0.0.1:49152",
            "10.0.0.2:80",
            change(State::SynSent, State::Established),
        );
        assert!(f(Some(80), None).matches(&e));
        assert!(f(Some(49152), None).matches(&e));
        assert!(!f(Some(81), None).matches(&e));
        assert!(f(None, Some(State::SynSent)).matches(&e));
        assert!(f(None, Some(State::Established)).matches(&e));
        assert!(!f(None, Some(State::TimeWait)).matches(&e));
        let r = event(
            "10.0.0.1:49152",
            "10.0.0.2:80",
            EventKind::Retransmit {
                state: Some(State::Established),
                err: None,
            },
        );
        assert!(f(None, Some(State::Established)).matches(&r));
        assert!(!f(None, Some(State::SynSent)).matches(&r));
    }
}
