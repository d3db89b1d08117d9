//! The kernel's TCP state transitions, live, from the `sock:inet_sock_set_state` tracepoint.
//!
//! We read the tracepoint through a private tracefs instance (`instances/tcpfsm-<pid>-<n>`)
//! and its `trace_pipe`: our own ring buffer, clock and event filter, leaving the global
//! trace and any other tracer untouched. No kprobes, no BPF: only the stable tracepoint,
//! which every kernel since 4.16 has. The kernel filters to TCP for us (`protocol == 6`, and
//! the port when asked) so SCTP/MPTCP and unrelated connections cost nothing to ignore.
//!
//! Why ftrace and not perf_event_open: on the 6.18 kernels we run on, perf silently never
//! receives some hits of this tracepoint, typically those fired in softirq context (a
//! client's FIN_WAIT_1 -> FIN_WAIT_2 -> CLOSED when the peer's ACK arrives); even `perf
//! record -a` saw 37 of 40 such hits and no PERF_RECORD_LOST, while an ftrace
//! instance saw every hit. A trace that silently drops transitions is worse than none.
//!
//! Time spent in the previous state is measured like bcc's `tcpstates`: remember when each
//! socket last changed state; a socket seen for the first time has no known age. The text
//! ftrace prints has no socket address, so sockets are told apart by their address pair
//! (see [`Ages`]).

use crate::tpformat::{
    check_set_state_format, parse_line, Format, FormatError, PipeLine, IPPROTO_TCP,
};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tcpfsm_states::State;

/// Where tracefs may be mounted, newest convention first.
const TRACEFS_CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];
const EVENT_DIR: &str = "events/sock/inet_sock_set_state";
/// Our instances are named `tcpfsm-<pid>-<n>`.
const INSTANCE_PREFIX: &str = "tcpfsm-";
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

/// Why tracing could not start or continue.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error(
        "tracefs is not mounted and mounting it needs root: run as root \
         (or mount it: mount -t tracefs nodev /sys/kernel/tracing)"
    )]
    NotRoot,
    #[error("tracefs is unavailable: {0}")]
    TracefsUnavailable(String),
    #[error(
        "this kernel has no sock:inet_sock_set_state tracepoint ({0} missing); \
         it needs Linux 4.16 or later"
    )]
    NoTracepoint(PathBuf),
    #[error("cannot read {path} (reading tracefs needs root)")]
    Read { path: PathBuf, source: io::Error },
    #[error("bad tracepoint format: {0}")]
    Format(#[from] FormatError),
    #[error("cannot set up the tracefs instance ({path}): {source} (needs root)")]
    Instance { path: PathBuf, source: io::Error },
    #[error("reading trace_pipe: {0}")]
    Io(#[from] io::Error),
}

/// Finds tracefs, mounting it at `/sys/kernel/tracing` if it is missing and we are root.
pub fn tracefs_root() -> Result<PathBuf, TraceError> {
    for c in TRACEFS_CANDIDATES {
        let events = Path::new(c).join("events");
        match std::fs::metadata(&events) {
            Ok(m) if m.is_dir() => return Ok(PathBuf::from(c)),
            // Mounted, but tracefs is root-only (mode 0700): say so rather than "missing".
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(TraceError::Read {
                    path: events,
                    source: e,
                })
            }
            _ => {}
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(TraceError::NotRoot);
    }
    let target = TRACEFS_CANDIDATES[0];
    let _ = std::fs::create_dir_all(target);
    let src = CString::new("nodev").expect("static");
    let dst = CString::new(target).expect("static");
    let fstype = CString::new("tracefs").expect("static");
    // SAFETY: all pointers are valid NUL-terminated strings; data may be null.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(TraceError::TracefsUnavailable(format!(
            "mount -t tracefs nodev {target}: {}",
            io::Error::last_os_error()
        )));
    }
    if Path::new(target).join("events").is_dir() {
        Ok(PathBuf::from(target))
    } else {
        Err(TraceError::TracefsUnavailable(format!(
            "mounted tracefs at {target} but it has no events/ directory"
        )))
    }
}

fn read_to_string(path: &Path) -> Result<String, TraceError> {
    std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            TraceError::NoTracepoint(path.to_path_buf())
        } else {
            TraceError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// One state transition of one kernel socket, decoded and aged.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// CLOCK_MONOTONIC nanoseconds of the change (microsecond resolution: ftrace prints µs).
    pub mono_ns: u64,
    /// The task (thread id) current when the kernel changed the state (often an unrelated
    /// task, or 0, when the change happens in softirq context, e.g. on an arriving segment).
    pub pid: u32,
    pub comm: String,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub from: State,
    pub to: State,
    /// Milliseconds the socket spent in `from`; `None` when we had not seen it before.
    pub ms_in_prev: Option<f64>,
}

/// Remembers when each socket last changed state.
///
/// A socket is known by its (local, remote) address pair, which includes the family: the
/// only identity the tracepoint's text gives. A socket that reaches CLOSED is forgotten, so
/// a later connection reusing the pair starts fresh. One wrinkle: a client's CLOSED ->
/// SYN_SENT fires before connect() picks the local port, so it carries port 0. Those are
/// queued per (local address, remote) and the next SYN_SENT -> x of a socket with that
/// pair claims the oldest — exact for one connect at a time, approximate (first in, first
/// out) when several connects to the same remote from the same address overlap.
#[derive(Debug, Default)]
pub struct Ages {
    last: HashMap<(SocketAddr, SocketAddr), u64>,
    connecting: HashMap<(SocketAddr, SocketAddr), VecDeque<u64>>,
}

/// Sockets that live forever (LISTEN, long ESTABLISHED) never leave the map; this bounds it.
const AGES_MAX: usize = 1 << 20;

impl Ages {
    pub fn new() -> Ages {
        Ages::default()
    }

    /// Records a change of the socket `local`-`remote` at `mono_ns` and returns the ms it
    /// spent in the previous state.
    pub fn observe(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        mono_ns: u64,
        from: State,
        to: State,
    ) -> Option<f64> {
        if self.len() >= AGES_MAX {
            self.last.clear();
            self.connecting.clear();
        }
        let key = (local, remote);
        let unbound = (SocketAddr::new(local.ip(), 0), remote);
        let prev = if to == State::SynSent && local.port() == 0 {
            self.connecting
                .entry(unbound)
                .or_default()
                .push_back(mono_ns);
            None
        } else if to == State::Closed {
            self.last.remove(&key)
        } else {
            self.last.insert(key, mono_ns)
        };
        let prev = match prev {
            None if from == State::SynSent => self.claim_connect(unbound),
            p => p,
        };
        prev.map(|p| mono_ns.saturating_sub(p) as f64 / 1e6)
    }

    fn claim_connect(&mut self, unbound: (SocketAddr, SocketAddr)) -> Option<u64> {
        let q = self.connecting.get_mut(&unbound)?;
        let t = q.pop_front();
        if q.is_empty() {
            self.connecting.remove(&unbound);
        }
        t
    }

    pub fn len(&self) -> usize {
        self.last.len() + self.connecting.values().map(VecDeque::len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What to let through.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Either end's port.
    pub port: Option<u16>,
    /// Either the old or the new state.
    pub state: Option<State>,
}

impl Filter {
    pub fn matches(&self, local: SocketAddr, remote: SocketAddr, from: State, to: State) -> bool {
        if let Some(p) = self.port {
            if local.port() != p && remote.port() != p {
                return false;
            }
        }
        if let Some(s) = self.state {
            if from != s && to != s {
                return false;
            }
        }
        true
    }
}

/// Our private tracefs instance, with `trace_pipe` open. Dropping it disables the event,
/// closes the pipe and removes the instance (the kernel refuses the rmdir while the pipe is
/// open), so neither a normal end nor Ctrl-C/SIGTERM (which end the caller's loop, see
/// [`crate::signal`]) leaves a ring buffer allocated in the kernel.
struct Instance {
    dir: PathBuf,
    pipe: Option<File>,
}

/// Tells instances of one process apart when it opens several tracers.
static INSTANCES: AtomicU32 = AtomicU32::new(0);

impl Instance {
    fn create(root: &Path) -> Result<Instance, TraceError> {
        let instances = root.join("instances");
        remove_stale_instances(&instances);
        let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let dir = instances.join(format!("{INSTANCE_PREFIX}{}-{n}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|source| TraceError::Instance {
            path: dir.clone(),
            source,
        })?;
        // From here on, Drop cleans up whatever fails below.
        Ok(Instance { dir, pipe: None })
    }

    fn write(&self, rel: &str, value: &str) -> Result<(), TraceError> {
        let path = self.dir.join(rel);
        std::fs::write(&path, value).map_err(|source| TraceError::Instance { path, source })
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join(EVENT_DIR).join("enable"), "0");
        self.pipe = None;
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            eprintln!(
                "tcpfsm: could not remove tracefs instance {}: {e} (rmdir it by hand)",
                self.dir.display()
            );
        }
    }
}

/// Removes instances left by tcpfsm processes that no longer exist (killed with SIGKILL,
/// say). The kernel refuses to remove an instance whose pipe is open, so this can never
/// take one from a live tracer, even one in another PID namespace.
fn remove_stale_instances(instances: &Path) {
    let Ok(entries) = std::fs::read_dir(instances) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(INSTANCE_PREFIX))
            .and_then(|r| r.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

/// A running trace of `sock:inet_sock_set_state`.
pub struct Tracer {
    instance: Instance,
    filter: Filter,
    ages: Ages,
    comms: HashMap<u32, (String, Instant)>,
    lost: u64,
    /// Bytes read from the pipe after the last complete line.
    partial: Vec<u8>,
    buf: Vec<u8>,
    /// CLOCK_MONOTONIC and wall clock when tracing started, to place events in time.
    pub start_mono_ns: u64,
    pub start_wall: SystemTime,
}

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

/// CLOCK_MONOTONIC now, in nanoseconds.
pub fn mono_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Tracer {
    /// Finds (or mounts) tracefs, checks the tracepoint, and starts it in a private instance
    /// with a CLOCK_MONOTONIC clock and the kernel-side filter.
    pub fn open(filter: Filter) -> Result<Tracer, TraceError> {
        let root = tracefs_root()?;
        // Check the tracepoint before creating anything, so its absence is named clearly.
        let format = Format::parse(&read_to_string(&root.join(EVENT_DIR).join("format"))?)?;
        check_set_state_format(&format)?;
        let has_protocol = format.field("protocol").is_some();

        let mut instance = Instance::create(&root)?;
        // `mono` is CLOCK_MONOTONIC (ktime_get_mono_fast_ns), so timestamps line up with
        // start_mono_ns below and can be placed against the wall clock.
        instance.write("trace_clock", "mono")?;
        // A bigger ring is a nicety; the kernel's default (about 1.4 MiB per CPU) also works,
        // so a refusal (no memory) is not an error.
        let _ = instance.write("buffer_size_kb", &buffer_kb(possible_cpus()).to_string());
        if let Some(f) = kernel_filter(has_protocol, filter.port) {
            // Let the kernel drop what we would drop anyway. If it refuses the filter we
            // still filter in user space, only less cheaply.
            let _ = instance.write(&format!("{EVENT_DIR}/filter"), &f);
        }
        let pipe_path = instance.dir.join("trace_pipe");
        let pipe = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&pipe_path)
            .map_err(|source| TraceError::Instance {
                path: pipe_path,
                source,
            })?;
        instance.pipe = Some(pipe);
        let start_mono_ns = mono_now_ns();
        let start_wall = SystemTime::now();
        instance.write(&format!("{EVENT_DIR}/enable"), "1")?;
        Ok(Tracer {
            instance,
            filter,
            ages: Ages::new(),
            comms: HashMap::new(),
            lost: 0,
            partial: Vec::new(),
            buf: vec![0; 64 * 1024],
            start_mono_ns,
            start_wall,
        })
    }

    /// Transitions the kernel dropped because our ring was full (ftrace reports them as
    /// `[LOST n EVENTS]` in the pipe).
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Waits up to `timeout` for transitions, then appends the decoded, filtered transitions
    /// in time order to `out`. Returns early (possibly with nothing) on a signal.
    pub fn poll(&mut self, timeout: Duration, out: &mut Vec<Transition>) -> Result<(), TraceError> {
        let Some(pipe) = self.instance.pipe.as_mut() else {
            return Ok(());
        };
        let mut pfd = libc::pollfd {
            fd: pipe.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: pfd is one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e.into());
            }
        }
        // Drain what is there (the pipe is non-blocking): the kernel renders whole lines,
        // but a line may still straddle two reads, so keep any tail for next time.
        let mut read = 0;
        while read < READ_BUDGET {
            match pipe.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => {
                    self.partial.extend_from_slice(&self.buf[..n]);
                    read += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => break,
                Err(e) => return Err(e.into()),
            }
        }
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Ok(());
        };
        let text: Vec<u8> = self.partial.drain(..=end).collect();
        let mut raws = Vec::new();
        for line in text.split(|&b| b == b'\n') {
            match parse_line(&String::from_utf8_lossy(line)) {
                PipeLine::Transition(t) if t.protocol == IPPROTO_TCP => raws.push(t),
                PipeLine::Lost { events, .. } => self.lost += events,
                _ => {}
            }
        }
        // The pipe merges the per-CPU rings in time order; a hit committed late on another
        // CPU can still trail, so order each batch before ageing sockets.
        raws.sort_by_key(|t| t.time_ns);
        for t in raws {
            // Age every socket, filtered or not, so a filter never makes ages wrong.
            let ms_in_prev = self
                .ages
                .observe(t.local, t.remote, t.time_ns, t.from, t.to);
            if !self.filter.matches(t.local, t.remote, t.from, t.to) {
                continue;
            }
            let comm = self.comm(t.pid, t.comm);
            out.push(Transition {
                mono_ns: t.time_ns,
                pid: t.pid,
                comm,
                local: t.local,
                remote: t.remote,
                from: t.from,
                to: t.to,
                ms_in_prev,
            });
        }
        Ok(())
    }

    /// The command name ftrace recorded, or, when its comm cache had lost the task
    /// (`<...>`), the task's name from /proc, cached for a second.
    fn comm(&mut self, pid: u32, recorded: String) -> String {
        if pid == 0 {
            // ftrace says `<idle>`; ps and bcc call the idle task swapper.
            return "swapper".to_string();
        }
        if recorded != "<...>" {
            return recorded;
        }
        let now = Instant::now();
        if let Some((c, at)) = self.comms.get(&pid) {
            if now.duration_since(*at) < Duration::from_secs(1) {
                return c.clone();
            }
        }
        let c = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|s| s.trim_end().to_string())
            .unwrap_or_else(|_| "?".to_string());
        if self.comms.len() > 4096 {
            self.comms.clear();
        }
        self.comms.insert(pid, (c.clone(), now));
        c
    }

    /// Microseconds since tracing started.
    pub fn t_us(&self, t: &Transition) -> u64 {
        t.mono_ns.saturating_sub(self.start_mono_ns) / 1000
    }

    /// Wall-clock time of a transition.
    pub fn wall(&self, t: &Transition) -> SystemTime {
        self.start_wall + Duration::from_nanos(t.mono_ns.saturating_sub(self.start_mono_ns))
    }
}

/// The event filter the kernel applies before a hit is written to the ring: TCP only, and the
/// port when one is asked for. Every transition of a socket carries its ports (the client's
/// CLOSED -> SYN_SENT has source port 0 but the destination port set), so filtering by port
/// in the kernel never hides a transition that ages a matching socket. The state filter stays
/// in user space: ages need every transition of a socket.
pub fn kernel_filter(has_protocol: bool, port: Option<u16>) -> Option<String> {
    let mut parts = Vec::new();
    if has_protocol {
        parts.push("protocol == 6".to_string());
    }
    if let Some(p) = port {
        parts.push(format!("(sport == {p} || dport == {p})"));
    }
    (!parts.is_empty()).then(|| parts.join(" && "))
}

/// A transition in the simulator's JSON event schema (one object per line).
#[derive(Debug, Clone, Serialize)]
pub struct JsonEvent<'a> {
    pub t_us: u64,
    pub event: &'static str,
    pub host: &'a str,
    pub conn: String,
    pub from: &'static str,
    pub to: &'static str,
    pub cause: &'static str,
    pub ms_in_prev: Option<f64>,
    pub pid: u32,
    pub comm: &'a str,
}

impl Transition {
    /// `local-remote`, as the simulator names a connection.
    pub fn conn(&self) -> String {
        format!("{}-{}", self.local, self.remote)
    }

    pub fn json<'a>(&'a self, t_us: u64, host: &'a str) -> JsonEvent<'a> {
        JsonEvent {
            t_us,
            event: "state",
            host,
            conn: self.conn(),
            from: self.from.name(),
            to: self.to.name(),
            // The tracepoint does not say why; the kernel made the change.
            cause: "kernel",
            ms_in_prev: self.ms_in_prev.map(|m| (m * 1000.0).round() / 1000.0),
            pid: self.pid,
            comm: &self.comm,
        }
    }
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
    fn kernel_filter_keeps_tcp_and_the_asked_port() {
        assert_eq!(kernel_filter(true, None).as_deref(), Some("protocol == 6"));
        assert_eq!(
            kernel_filter(true, Some(80)).as_deref(),
            Some("protocol == 6 && (sport == 80 || dport == 80)")
        );
        assert_eq!(
            kernel_filter(false, Some(80)).as_deref(),
            Some("(sport == 80 || dport == 80)")
        );
        assert_eq!(kernel_filter(false, None), None);
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
    fn age_is_time_since_previous_change_of_the_same_address_pair() {
        use State::*;
        let mut a = Ages::new();
        let (s1, s2, r) = (sa("10.0.0.1:1000"), sa("10.0.0.1:1001"), sa("10.0.0.2:80"));
        assert_eq!(a.observe(s1, r, 1_000_000, Established, FinWait1), None);
        assert_eq!(a.observe(s2, r, 1_500_000, Established, FinWait1), None);
        assert_eq!(a.observe(s1, r, 3_500_000, FinWait1, FinWait2), Some(2.5));
        assert_eq!(a.observe(s2, r, 2_500_000, FinWait1, FinWait2), Some(1.0));
    }

    #[test]
    fn closed_socket_is_forgotten_so_a_reused_address_pair_starts_fresh() {
        use State::*;
        let mut a = Ages::new();
        let (l, r) = (sa("10.0.0.1:1000"), sa("10.0.0.2:80"));
        a.observe(l, r, 0, Established, FinWait1);
        assert_eq!(a.observe(l, r, 2_000_000, FinWait1, Closed), Some(2.0));
        assert!(a.is_empty());
        assert_eq!(a.observe(l, r, 5_000_000, Established, CloseWait), None);
    }

    #[test]
    fn port_zero_syn_sent_is_claimed_by_the_socket_that_gets_a_port() {
        use State::*;
        let mut a = Ages::new();
        let (unbound, r) = (sa("10.0.0.1:0"), sa("10.0.0.2:80"));
        assert_eq!(a.observe(unbound, r, 1_000_000, Closed, SynSent), None);
        assert_eq!(a.observe(unbound, r, 2_000_000, Closed, SynSent), None);
        let (c1, c2) = (sa("10.0.0.1:40000"), sa("10.0.0.1:40001"));
        assert_eq!(a.observe(c1, r, 4_000_000, SynSent, Established), Some(3.0));
        assert_eq!(a.observe(c2, r, 4_000_000, SynSent, Established), Some(2.0));
        // A third socket finds no queued connect: unknown, not a made-up age.
        assert_eq!(
            a.observe(sa("10.0.0.1:40002"), r, 5_000_000, SynSent, Established),
            None
        );
        // Only the two established sockets are remembered; the queue is gone.
        assert_eq!(a.len(), 3);
        // Another remote's queue is separate, and a connect failing before it got a port
        // (SYN_SENT -> CLOSED still on port 0) takes its own entry off the queue.
        let other = sa("10.0.0.3:80");
        a.observe(unbound, other, 6_000_000, Closed, SynSent);
        assert_eq!(
            a.observe(unbound, other, 7_000_000, SynSent, Closed),
            Some(1.0)
        );
        assert_eq!(a.len(), 3);
    }

    #[test]
    fn filter_matches_either_port_and_either_state() {
        let (l, r) = (sa("10.0.0.1:49152"), sa("10.0.0.2:80"));
        let f = |port, state| Filter { port, state };
        let (from, to) = (State::SynSent, State::Established);
        assert!(f(Some(80), None).matches(l, r, from, to));
        assert!(f(Some(49152), None).matches(l, r, from, to));
        assert!(!f(Some(81), None).matches(l, r, from, to));
        assert!(f(None, Some(State::SynSent)).matches(l, r, from, to));
        assert!(f(None, Some(State::Established)).matches(l, r, from, to));
        assert!(!f(None, Some(State::TimeWait)).matches(l, r, from, to));
    }

    #[test]
    fn json_event_uses_the_simulator_schema_and_state_names() {
        let t = Transition {
            mono_ns: 0,
            pid: 42,
            comm: "curl".into(),
            local: sa("10.0.0.1:49152"),
            remote: sa("10.0.0.2:80"),
            from: State::SynSent,
            to: State::Established,
            ms_in_prev: Some(0.1234567),
        };
        let v = serde_json::to_value(t.json(17, "h1")).unwrap();
        assert_eq!(v["event"], "state");
        assert_eq!(v["conn"], "10.0.0.1:49152-10.0.0.2:80");
        assert_eq!(v["from"], "SYN_SENT");
        assert_eq!(v["to"], "ESTABLISHED");
        assert_eq!(v["cause"], "kernel");
        assert_eq!(v["t_us"], 17);
        assert_eq!(v["host"], "h1");
        assert_eq!(v["ms_in_prev"], 0.123);
    }
}
