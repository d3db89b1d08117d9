//! The kernel's TCP state transitions, live, from the `sock:inet_sock_set_state` tracepoint.
//!
//! We open one perf event per online CPU on the tracepoint (`PERF_TYPE_TRACEPOINT`, its id
//! read from tracefs), each with its own mmap'd ring buffer, and decode each sample's raw
//! record with offsets taken from the tracepoint's `format` file. No kprobes, no BPF: only
//! the stable tracepoint, which every kernel since 4.16 has. The kernel filters to TCP for us
//! (`protocol == 6`) so SCTP/MPTCP transitions cost nothing to ignore.
//!
//! Time spent in the previous state is measured like bcc's `tcpstates`: remember when each
//! socket (keyed by its kernel address) last changed state; a socket seen for the first time
//! has no known age.

use crate::tpformat::{Format, FormatError, RawTransition, SetStateLayout, IPPROTO_TCP};
use perf_event_open_sys as sys;
use serde::Serialize;
use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tcpfsm_states::State;

/// Where tracefs may be mounted, newest convention first.
const TRACEFS_CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];
const EVENT_DIR: &str = "events/sock/inet_sock_set_state";

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
    #[error(
        "perf_event_open on the tracepoint failed: {0} (needs root or CAP_PERFMON; \
         kernel.perf_event_paranoid is {1})"
    )]
    PerfOpen(io::Error, String),
    #[error("perf ring buffer: {0}")]
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

/// Online CPUs, from `/sys/devices/system/cpu/online` (`0-3,5,7-8`).
pub fn online_cpus() -> io::Result<Vec<u32>> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online")?;
    parse_cpu_list(text.trim())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("cpu list {text:?}")))
}

pub fn parse_cpu_list(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if b < a {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// One state transition of one kernel socket, decoded and aged.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// CLOCK_MONOTONIC nanoseconds of the change.
    pub mono_ns: u64,
    /// The task current when the kernel changed the state (often an unrelated task or 0 when
    /// the change happens in softirq context, e.g. on an arriving segment).
    pub pid: u32,
    pub comm: String,
    pub skaddr: u64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub from: State,
    pub to: State,
    /// Milliseconds the socket spent in `from`; `None` when we had not seen it before.
    pub ms_in_prev: Option<f64>,
}

/// Remembers when each socket last changed state.
#[derive(Debug, Default)]
pub struct Ages {
    last: HashMap<u64, u64>,
}

/// Sockets that live forever (LISTEN, long ESTABLISHED) never leave the map; this bounds it.
const AGES_MAX: usize = 1 << 20;

impl Ages {
    pub fn new() -> Ages {
        Ages::default()
    }

    /// Records a change of `skaddr` at `mono_ns` and returns ms spent in the previous state.
    /// A socket that reaches CLOSED is forgotten: its address may be reused by a new socket.
    pub fn observe(&mut self, skaddr: u64, mono_ns: u64, to: State) -> Option<f64> {
        let prev = if to == State::Closed {
            self.last.remove(&skaddr)
        } else {
            if self.last.len() >= AGES_MAX && !self.last.contains_key(&skaddr) {
                self.last.clear();
            }
            self.last.insert(skaddr, mono_ns)
        };
        prev.map(|p| mono_ns.saturating_sub(p) as f64 / 1e6)
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
    /// Either the old or the new state.
    pub state: Option<State>,
}

impl Filter {
    pub fn matches(&self, t: &RawTransition, from: State, to: State) -> bool {
        if let Some(p) = self.port {
            if t.local.port() != p && t.remote.port() != p {
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

/// One CPU's perf event and its ring buffer.
struct CpuRing {
    fd: OwnedFd,
    base: *mut u8,
    map_len: usize,
    data_off: usize,
    data_size: usize,
}

impl Drop for CpuRing {
    fn drop(&mut self) {
        // SAFETY: base/map_len are exactly what mmap returned.
        unsafe {
            libc::munmap(self.base as *mut libc::c_void, self.map_len);
        }
    }
}

/// A sample taken off a ring and decoded.
struct Sample {
    time: u64,
    pid: u32,
    t: RawTransition,
}

impl CpuRing {
    fn header(&self) -> *mut sys::bindings::perf_event_mmap_page {
        self.base as *mut sys::bindings::perf_event_mmap_page
    }

    /// Copies every complete record out of the ring and releases the space.
    fn drain(&mut self, layout: &SetStateLayout, samples: &mut Vec<Sample>, lost: &mut u64) {
        let hdr = self.header();
        // SAFETY: the first page of the mapping is the perf_event_mmap_page; data_head is
        // written by the kernel, so read it atomically and fence before reading the data
        // (the protocol documented in perf_event_open(2)).
        let head = unsafe {
            let p = std::ptr::addr_of!((*hdr).data_head) as *const AtomicU64;
            (*p).load(Ordering::Acquire)
        };
        let mut tail = unsafe { std::ptr::read_volatile(std::ptr::addr_of!((*hdr).data_tail)) };
        let data = unsafe { self.base.add(self.data_off) };
        let size = self.data_size as u64;
        let mut rec = Vec::new();
        while tail < head {
            // Record header: u32 type, u16 misc, u16 size; the record may wrap the ring.
            let mut h = [0u8; 8];
            copy_wrapped(data, size, tail, &mut h);
            let ty = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]);
            let len = u16::from_ne_bytes([h[6], h[7]]) as u64;
            if len < 8 || tail + len > head {
                // Corrupt header: skip everything we have rather than loop forever.
                tail = head;
                break;
            }
            rec.resize(len as usize, 0);
            copy_wrapped(data, size, tail, &mut rec);
            match ty {
                sys::bindings::PERF_RECORD_SAMPLE => {
                    // Decode in place: no allocation per record on the hot path.
                    if let Some((pid, time, raw)) = parse_sample(&rec[8..]) {
                        if let Some(t) = layout.decode(raw) {
                            samples.push(Sample { time, pid, t });
                        }
                    }
                }
                // struct { u64 id; u64 lost; }
                sys::bindings::PERF_RECORD_LOST if rec.len() >= 24 => {
                    *lost += u64::from_ne_bytes(rec[16..24].try_into().unwrap_or([0; 8]));
                }
                _ => {}
            }
            tail += len;
        }
        // Release: our reads of the data must complete before the kernel may overwrite it.
        fence(Ordering::Release);
        // SAFETY: data_tail is ours to write.
        unsafe {
            let p = std::ptr::addr_of_mut!((*hdr).data_tail) as *const AtomicU64;
            (*p).store(tail, Ordering::Release);
        }
    }
}

fn copy_wrapped(data: *const u8, size: u64, pos: u64, out: &mut [u8]) {
    let start = (pos % size) as usize;
    let first = out.len().min(size as usize - start);
    // SAFETY: start < size and first <= size - start, the rest wraps to the ring's start;
    // out.len() never exceeds the ring size because records are bounded by u16.
    unsafe {
        std::ptr::copy_nonoverlapping(data.add(start), out.as_mut_ptr(), first);
        if first < out.len() {
            std::ptr::copy_nonoverlapping(data, out.as_mut_ptr().add(first), out.len() - first);
        }
    }
}

/// Body of a PERF_RECORD_SAMPLE with sample_type = TID | TIME | RAW, in that (ABI) order:
/// u32 pid, u32 tid, u64 time, u32 raw_size, raw bytes.
fn parse_sample(b: &[u8]) -> Option<(u32, u64, &[u8])> {
    let pid = u32::from_ne_bytes(b.get(0..4)?.try_into().ok()?);
    let time = u64::from_ne_bytes(b.get(8..16)?.try_into().ok()?);
    let raw_len = u32::from_ne_bytes(b.get(16..20)?.try_into().ok()?) as usize;
    let raw = b.get(20..20 + raw_len)?;
    Some((pid, time, raw))
}

/// Pages of ring per CPU (a power of two): 128 pages = 512 KiB holds ~5,000 records, enough
/// to absorb bursts of tens of thousands of transitions a second between reader wakeups.
const RING_PAGES: usize = 128;

/// A running trace of `sock:inet_sock_set_state`.
pub struct Tracer {
    rings: Vec<CpuRing>,
    layout: SetStateLayout,
    filter: Filter,
    ages: Ages,
    comms: HashMap<u32, (String, Instant)>,
    lost: u64,
    samples: Vec<Sample>,
    /// CLOCK_MONOTONIC and wall clock when tracing started, to place events in time.
    pub start_mono_ns: u64,
    pub start_wall: SystemTime,
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
    /// Finds (or mounts) tracefs, reads the tracepoint's id and format, and opens a perf
    /// event with a ring buffer on every online CPU.
    pub fn open(filter: Filter) -> Result<Tracer, TraceError> {
        let root = tracefs_root()?;
        let dir = root.join(EVENT_DIR);
        let id_text = read_to_string(&dir.join("id"))?;
        let id: u64 = id_text.trim().parse().map_err(|_| {
            TraceError::TracefsUnavailable(format!("bad tracepoint id {id_text:?}"))
        })?;
        let format = Format::parse(&read_to_string(&dir.join("format"))?)?;
        let layout = SetStateLayout::from_format(&format)?;
        let has_protocol = format.field("protocol").is_some();

        let page = page_size();
        let mut rings = Vec::new();
        let kfilter = kernel_filter(has_protocol, filter.port);
        for cpu in online_cpus()? {
            rings.push(open_cpu(id, cpu, page, kfilter.as_deref())?);
        }
        let start_mono_ns = mono_now_ns();
        let start_wall = SystemTime::now();
        for r in &rings {
            // SAFETY: fd is a perf event fd we own.
            if unsafe { sys::ioctls::ENABLE(r.fd.as_raw_fd(), 0) } != 0 {
                return Err(TraceError::Io(io::Error::last_os_error()));
            }
        }
        Ok(Tracer {
            rings,
            layout,
            filter,
            ages: Ages::new(),
            comms: HashMap::new(),
            lost: 0,
            samples: Vec::new(),
            start_mono_ns,
            start_wall,
        })
    }

    /// Records the kernel dropped because a ring was full.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Waits up to `timeout` for records, then appends the decoded, filtered transitions in
    /// time order to `out`.
    pub fn poll(&mut self, timeout: Duration, out: &mut Vec<Transition>) -> Result<(), TraceError> {
        let mut fds: Vec<libc::pollfd> = self
            .rings
            .iter()
            .map(|r| libc::pollfd {
                fd: r.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: fds is a valid array of pollfd.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e.into());
            }
        }
        self.samples.clear();
        for r in &mut self.rings {
            r.drain(&self.layout, &mut self.samples, &mut self.lost);
        }
        // Rings are per CPU; merge them so each socket's changes are aged in order.
        self.samples.sort_by_key(|s| s.time);
        let samples = std::mem::take(&mut self.samples);
        for s in &samples {
            let t = &s.t;
            if t.protocol != IPPROTO_TCP {
                continue;
            }
            let (Some(from), Some(to)) = (t.from_state(), t.to_state()) else {
                continue;
            };
            // Age every socket, filtered or not, so a filter never makes ages wrong.
            let ms_in_prev = self.ages.observe(t.skaddr, s.time, to);
            if !self.filter.matches(t, from, to) {
                continue;
            }
            let comm = self.comm(s.pid);
            out.push(Transition {
                mono_ns: s.time,
                pid: s.pid,
                comm,
                skaddr: t.skaddr,
                local: t.local,
                remote: t.remote,
                from,
                to,
                ms_in_prev,
            });
        }
        self.samples = samples;
        Ok(())
    }

    /// The command name of a task, cached for a second (tasks come and go; names rarely change).
    fn comm(&mut self, pid: u32) -> String {
        if pid == 0 {
            return "swapper".to_string();
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

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// The tracepoint filter the kernel applies before a record is written: TCP only, and the
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

fn open_cpu(id: u64, cpu: u32, page: usize, filter: Option<&str>) -> Result<CpuRing, TraceError> {
    let mut attr = sys::bindings::perf_event_attr {
        type_: sys::bindings::PERF_TYPE_TRACEPOINT,
        size: std::mem::size_of::<sys::bindings::perf_event_attr>() as u32,
        config: id,
        sample_type: (sys::bindings::PERF_SAMPLE_TID
            | sys::bindings::PERF_SAMPLE_TIME
            | sys::bindings::PERF_SAMPLE_RAW) as u64,
        ..Default::default()
    };
    attr.__bindgen_anon_1.sample_period = 1;
    // Wake the reader when an eighth of the ring is full rather than on every record: a
    // wakeup per transition costs a context switch each and slowed a connection-churning
    // process 4x in our measurement; readers poll with a short timeout, so a trickle of
    // events still shows up within that timeout.
    attr.set_watermark(1);
    attr.__bindgen_anon_2.wakeup_watermark = (page * RING_PAGES / 8) as u32;
    attr.set_disabled(1);
    // Timestamps on CLOCK_MONOTONIC so they can be placed against the wall clock.
    attr.set_use_clockid(1);
    attr.clockid = libc::CLOCK_MONOTONIC;
    // SAFETY: attr is fully initialised; pid -1 + cpu N = every task on that CPU.
    let fd = unsafe {
        sys::perf_event_open(
            &mut attr,
            -1,
            cpu as libc::c_int,
            -1,
            sys::bindings::PERF_FLAG_FD_CLOEXEC as libc::c_ulong,
        )
    };
    if fd < 0 {
        let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        return Err(TraceError::PerfOpen(io::Error::last_os_error(), paranoid));
    }
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if let Some(f) = filter {
        // Let the kernel drop what we would drop anyway (non-TCP: SCTP and MPTCP share this
        // tracepoint; other ports). If the filter is refused we still filter in user space.
        let filter = CString::new(f).expect("no NUL in filter");
        // SAFETY: fd is a perf fd; the filter string is NUL-terminated and outlives the call.
        unsafe { sys::ioctls::SET_FILTER(fd.as_raw_fd(), filter.as_ptr() as *mut _) };
    }
    let map_len = page * (RING_PAGES + 1);
    // SAFETY: mapping a perf fd read-write as the ABI requires; checked for MAP_FAILED.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            map_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(TraceError::Io(io::Error::last_os_error()));
    }
    let base = base as *mut u8;
    let hdr = base as *const sys::bindings::perf_event_mmap_page;
    // SAFETY: the header page is mapped. Kernels before 4.1 leave data_offset/size zero,
    // meaning "data starts at page 1 and fills the rest".
    let (off, size) = unsafe { ((*hdr).data_offset as usize, (*hdr).data_size as usize) };
    let (data_off, data_size) = if size == 0 {
        (page, page * RING_PAGES)
    } else {
        (off, size)
    };
    Ok(CpuRing {
        fd,
        base,
        map_len,
        data_off,
        data_size,
    })
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
    fn cpu_list_ranges_and_singles_expand() {
        assert_eq!(
            parse_cpu_list("0-3,5,7-8").unwrap(),
            vec![0, 1, 2, 3, 5, 7, 8]
        );
        assert_eq!(parse_cpu_list("0").unwrap(), vec![0]);
        assert!(parse_cpu_list("3-1").is_none());
        assert!(parse_cpu_list("x").is_none());
    }

    #[test]
    fn age_is_time_since_previous_change_of_the_same_socket() {
        let mut a = Ages::new();
        assert_eq!(a.observe(1, 1_000_000, State::SynSent), None);
        assert_eq!(a.observe(2, 1_500_000, State::SynSent), None);
        assert_eq!(a.observe(1, 3_500_000, State::Established), Some(2.5));
        assert_eq!(a.observe(2, 2_500_000, State::Established), Some(1.0));
    }

    #[test]
    fn closed_socket_is_forgotten_so_a_reused_address_starts_fresh() {
        let mut a = Ages::new();
        a.observe(7, 0, State::FinWait1);
        assert_eq!(a.observe(7, 2_000_000, State::Closed), Some(2.0));
        assert!(a.is_empty());
        assert_eq!(a.observe(7, 5_000_000, State::SynSent), None);
    }

    #[test]
    fn filter_matches_either_port_and_either_state() {
        let t = RawTransition {
            skaddr: 1,
            oldstate: 2,
            newstate: 1,
            protocol: 6,
            local: "10.0.0.1:49152".parse().unwrap(),
            remote: "10.0.0.2:80".parse().unwrap(),
        };
        let f = |port, state| Filter { port, state };
        let (from, to) = (State::SynSent, State::Established);
        assert!(f(Some(80), None).matches(&t, from, to));
        assert!(f(Some(49152), None).matches(&t, from, to));
        assert!(!f(Some(81), None).matches(&t, from, to));
        assert!(f(None, Some(State::SynSent)).matches(&t, from, to));
        assert!(f(None, Some(State::Established)).matches(&t, from, to));
        assert!(!f(None, Some(State::TimeWait)).matches(&t, from, to));
    }

    #[test]
    fn json_event_uses_the_simulator_schema_and_state_names() {
        let t = Transition {
            mono_ns: 0,
            pid: 42,
            comm: "curl".into(),
            skaddr: 1,
            local: "10.0.0.1:49152".parse().unwrap(),
            remote: "10.0.0.2:80".parse().unwrap(),
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

    #[test]
    fn sample_body_is_parsed_in_abi_order() {
        let mut b = Vec::new();
        b.extend(1234u32.to_ne_bytes());
        b.extend(1235u32.to_ne_bytes());
        b.extend(99u64.to_ne_bytes());
        b.extend(3u32.to_ne_bytes());
        b.extend([7, 8, 9, 0]);
        let (pid, time, raw) = parse_sample(&b).unwrap();
        assert_eq!((pid, time, raw), (1234, 99, &[7u8, 8, 9][..]));
        assert!(parse_sample(&b[..18]).is_none());
    }
}
