//! One [`Snapshot`] of the host: a single sock_diag dump of all states feeding the census,
//! TIME_WAIT by remote, listener queues and CLOSE_WAIT owners, plus /proc counters and sysctls.

use crate::counters::{read_sysctls, RawCounters};
use crate::diag::{Filter, SockDiag, StateSet};
use crate::procs::{attribute, attribute_all, fd_usage, Attribution, Owner};
use crate::sockinfo::TimerKind;
use crate::HostError;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};
use tcpfsm_observe::{
    ListenerCount, ListenerQueue, NoOwner, Orphans, ProcessBreakdown, ProcessCount, QueuedBytes,
    RemoteCount, Snapshot,
};
use tcpfsm_states::{Census, State};

/// What a snapshot should include beyond the census and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// Resolve owners of CLOSE_WAIT and LISTEN sockets from /proc (needed to name leakers).
    pub attribute: bool,
    /// Count open descriptors of every process holding a TCP socket (a full /proc fd scan).
    pub fd_usage: bool,
    /// How many TIME_WAIT remotes to keep (largest first). Grouping TIME_WAIT by remote is
    /// needed to judge ephemeral-port exhaustion per destination. 0 turns it off: TIME_WAIT is
    /// then counted from the kernel's own counter and not dumped at all, which on a busy host
    /// is most of the cost of a sample.
    pub top_remotes: usize,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            attribute: true,
            fd_usage: true,
            top_remotes: 20,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Samples the host (the calling thread's network namespace).
pub fn snapshot(diag: &mut SockDiag, opts: &SnapshotOptions) -> Result<Snapshot, HostError> {
    let time_ms = now_ms();
    let sysctls = read_sysctls();
    let mut census = Census::new();
    let mut close_wait_inodes: Vec<u64> = Vec::new();
    let mut listeners: Vec<(SocketAddr, u32, u32, u64)> = Vec::new();
    let mut tw: HashMap<SocketAddr, (u64, u64)> = HashMap::new();
    let mut fw2: HashMap<SocketAddr, (u64, u64)> = HashMap::new();
    let mut fw2_owned: Vec<u64> = Vec::new();
    let mut syn_recv: HashMap<SocketAddr, u64> = HashMap::new();
    // Inodes of live connections per remote, to name who talks to the busiest TIME_WAIT remote.
    let mut live_by_remote: HashMap<SocketAddr, Vec<u64>> = HashMap::new();
    let mut orphans = Orphans::default();
    let mut all_inodes: HashSet<u64> = HashSet::new();
    let eph = sysctls.ephemeral_ports;
    // TIME_WAIT sockets have no owner and no descriptor: when they are not grouped, they need
    // not be dumped; the census then comes from the fast path (kernel counter).
    let group_tw = opts.top_remotes > 0;
    let dump_states: StateSet = if group_tw {
        StateSet::ALL
    } else {
        StateSet::ALL
            .iter()
            .filter(|s| *s != State::TimeWait)
            .collect()
    };
    if !group_tw {
        census = diag.census(&Filter::default())?;
    }
    let count_here = group_tw;
    let mut queued = QueuedBytes::default();
    diag.for_each(&Filter::states(dump_states), |r| {
        if count_here {
            census.add(r.state, 1);
        }
        queued.rx += r.rx_queue as u64;
        if r.state != State::Listen {
            queued.tx += r.tx_queue as u64;
        }
        let ephemeral = eph.is_some_and(|p| p.contains(r.local.port()));
        // A closing socket no file refers to is an orphan (see Orphans).
        if r.inode == 0 && Orphans::STATES.contains(&r.state) {
            orphans.by_state.add(r.state, 1);
            if r.state == State::FinWait2 && r.timer.is_some_and(|t| t.kind == TimerKind::TimeWait)
            {
                orphans.fin_wait2_minisocks += 1;
            }
        }
        match r.state {
            State::CloseWait => close_wait_inodes.push(r.inode),
            State::Listen => listeners.push((r.local, r.rx_queue, r.tx_queue, r.inode)),
            State::TimeWait => {
                let e = tw.entry(r.remote).or_default();
                e.0 += 1;
                e.1 += u64::from(ephemeral);
            }
            State::FinWait2 => {
                let e = fw2.entry(r.remote).or_default();
                e.0 += 1;
                e.1 += u64::from(ephemeral);
                if r.inode != 0 {
                    fw2_owned.push(r.inode);
                }
            }
            State::SynReceived => *syn_recv.entry(r.local).or_default() += 1,
            _ => {}
        }
        if r.inode != 0 && matches!(r.state, State::Established | State::SynSent) {
            live_by_remote.entry(r.remote).or_default().push(r.inode);
        }
        if opts.fd_usage && r.inode != 0 {
            all_inodes.insert(r.inode);
        }
    })?;
    let raw = RawCounters::read().ok();
    let time_wait_by_remote = group(tw, opts.top_remotes);
    let top_tw_remote = time_wait_by_remote.first().map(|g| g.remote);
    let tw_holders: Vec<u64> = top_tw_remote
        .and_then(|r| live_by_remote.remove(&r))
        .unwrap_or_default();

    let attribution: Option<Attribution> = if opts.fd_usage {
        Some(attribute_all(&all_inodes))
    } else if opts.attribute {
        let wanted: HashSet<u64> = close_wait_inodes
            .iter()
            .copied()
            .chain(listeners.iter().map(|l| l.3))
            .chain(fw2_owned.iter().copied())
            .chain(tw_holders.iter().copied())
            .collect();
        Some(attribute(&wanted))
    } else {
        None
    };

    let close_wait_by_process = attribution
        .as_ref()
        .map(|a| breakdown(a, &close_wait_inodes));
    let listeners: Vec<ListenerQueue> = listeners
        .into_iter()
        .map(|(local, q, b, ino)| ListenerQueue {
            local,
            queue_len: q,
            backlog: b,
            owner: attribution.as_ref().and_then(|a| a.first_owner(ino)),
        })
        .collect();
    // Half-open connections per listener: a request socket's local address is the one the
    // SYN was sent to; its listener has that port and that address or the wildcard.
    let mut per_listener: HashMap<SocketAddr, u64> = HashMap::new();
    for (local, n) in syn_recv {
        let l = listeners
            .iter()
            .filter(|l| l.local.port() == local.port())
            .find(|l| l.local.ip() == local.ip() || l.local.ip().is_unspecified());
        *per_listener
            .entry(l.map_or(local, |l| l.local))
            .or_default() += n;
    }
    let mut syn_recv_by_listener: Vec<ListenerCount> = per_listener
        .into_iter()
        .map(|(listener, count)| ListenerCount {
            listener,
            count,
            owner: listeners
                .iter()
                .find(|l| l.local == listener)
                .and_then(|l| l.owner.clone()),
        })
        .collect();
    syn_recv_by_listener.sort_by(|a, b| b.count.cmp(&a.count).then(a.listener.cmp(&b.listener)));
    let holders = |inodes: &[u64]| attribution.as_ref().map(|a| breakdown(a, inodes));
    Ok(Snapshot {
        time_ms,
        census,
        close_wait_by_process,
        time_wait_by_remote: group_tw.then_some(time_wait_by_remote),
        listeners: Some(listeners),
        counters: raw.as_ref().map(|r| r.mib),
        sockstat: raw.as_ref().map(RawCounters::sockstat),
        sysctls,
        fd_usage: attribution.as_ref().filter(|_| opts.fd_usage).map(fd_usage),
        queued_bytes: Some(queued),
        orphans: Some(orphans),
        fin_wait2_by_remote: Some(group(fw2, opts.top_remotes.max(5))),
        fin_wait2_by_process: holders(&fw2_owned),
        syn_recv_by_listener: Some(syn_recv_by_listener),
        time_wait_remote_holders: top_tw_remote.and(holders(&tw_holders)).map(|b| b.processes),
    })
}

/// Sockets counted per remote, the most ephemeral-port holders first, at most `top`.
fn group(m: HashMap<SocketAddr, (u64, u64)>, top: usize) -> Vec<RemoteCount> {
    let mut remotes: Vec<RemoteCount> = m
        .into_iter()
        .map(|(remote, (count, ephemeral_local))| RemoteCount {
            remote,
            count,
            ephemeral_local,
        })
        .collect();
    remotes.sort_by(|a, b| {
        b.ephemeral_local
            .cmp(&a.ephemeral_local)
            .then(b.count.cmp(&a.count))
            .then(a.remote.cmp(&b.remote))
    });
    remotes.truncate(top);
    remotes
}

/// Counts sockets per owning process (each socket counted once, for its first holder).
pub fn breakdown(a: &Attribution, inodes: &[u64]) -> ProcessBreakdown {
    let mut per: HashMap<(u32, String), u64> = HashMap::new();
    let mut no_owner = 0;
    let mut reasons: HashSet<NoOwner> = HashSet::new();
    for &ino in inodes {
        match a.owner(ino) {
            Owner::Processes(ps) if !ps.is_empty() => {
                *per.entry((ps[0].pid, ps[0].comm.clone())).or_default() += 1;
            }
            Owner::Processes(_) => no_owner += 1,
            Owner::None(why) => {
                no_owner += 1;
                reasons.insert(why);
            }
        }
    }
    let mut processes: Vec<ProcessCount> = per
        .into_iter()
        .map(|((pid, comm), count)| ProcessCount { pid, comm, count })
        .collect();
    processes.sort_by(|a, b| b.count.cmp(&a.count).then(a.pid.cmp(&b.pid)));
    let mut rs: Vec<NoOwner> = reasons.into_iter().collect();
    rs.sort();
    let rs: Vec<&str> = rs.into_iter().map(NoOwner::label).collect();
    ProcessBreakdown {
        processes,
        no_owner,
        no_owner_reason: (!rs.is_empty()).then(|| rs.join("; ")),
    }
}

/// Keeps one netlink socket and the options across samples (for `diagnose`, `watch`, `export`).
pub struct Sampler {
    diag: SockDiag,
    pub options: SnapshotOptions,
}

impl Sampler {
    pub fn new(options: SnapshotOptions) -> Result<Sampler, HostError> {
        Ok(Sampler {
            diag: SockDiag::new()?,
            options,
        })
    }

    pub fn sample(&mut self) -> Result<Snapshot, HostError> {
        snapshot(&mut self.diag, &self.options)
    }

    /// The underlying reader, for census/listing calls between samples.
    pub fn diag(&mut self) -> &mut SockDiag {
        &mut self.diag
    }
}
