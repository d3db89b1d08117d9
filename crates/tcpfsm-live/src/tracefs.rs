//! tracefs: finding (or mounting) it, and a private instance of our own with its per-CPU raw
//! ring pipes.
//!
//! An instance (`instances/tcpfsm-<pid>-<n>`) is our own ring buffer, clock and event
//! filters, leaving the global trace and any other tracer untouched. Dropping it disables its
//! events, closes the pipes and removes it (the kernel refuses the rmdir while a pipe is
//! open), so neither a normal end nor Ctrl-C/SIGTERM leaves a ring buffer allocated in the
//! kernel; instances of tcpfsm processes that died by SIGKILL are removed at the next start.

use crate::ring::PageLayout;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Where tracefs may be mounted, newest convention first.
const TRACEFS_CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];
/// Our instances are named `tcpfsm-<pid>-<n>`.
const INSTANCE_PREFIX: &str = "tcpfsm-";

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
    #[error("this kernel has no {event} tracepoint ({path} missing); {needs}")]
    NoTracepoint {
        event: &'static str,
        path: PathBuf,
        needs: &'static str,
    },
    #[error("cannot read {path} (reading tracefs needs root)")]
    Read { path: PathBuf, source: io::Error },
    #[error("bad tracepoint format: {0}")]
    Format(#[from] crate::tpformat::FormatError),
    #[error("cannot set up the tracefs instance ({path}): {source} (needs root)")]
    Instance { path: PathBuf, source: io::Error },
    #[error("reading the trace ring: {0}")]
    Io(#[from] io::Error),
    #[error("sock_diag: {0}")]
    Host(#[from] tcpfsm_host::HostError),
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

/// Reads a tracefs file; a missing file means the kernel lacks what it describes.
pub fn read_event_file(
    path: &Path,
    event: &'static str,
    needs: &'static str,
) -> Result<String, TraceError> {
    std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            TraceError::NoTracepoint {
                event,
                path: path.to_path_buf(),
                needs,
            }
        } else {
            TraceError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// Our private tracefs instance, with one raw ring pipe per CPU once [`Instance::open_pipes`]
/// ran.
pub struct Instance {
    pub dir: PathBuf,
    /// Events enabled in this instance (`events/<group>/<name>`), disabled on drop.
    enabled: Vec<String>,
    pipes: Vec<(u32, File)>,
}

/// Tells instances of one process apart when it opens several tracers.
static INSTANCES: AtomicU32 = AtomicU32::new(0);

impl Instance {
    pub fn create(root: &Path) -> Result<Instance, TraceError> {
        let instances = root.join("instances");
        remove_stale_instances(&instances);
        let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let dir = instances.join(format!("{INSTANCE_PREFIX}{}-{n}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|source| TraceError::Instance {
            path: dir.clone(),
            source,
        })?;
        // From here on, Drop cleans up whatever fails below.
        Ok(Instance {
            dir,
            enabled: Vec::new(),
            pipes: Vec::new(),
        })
    }

    pub fn write(&self, rel: &str, value: &str) -> Result<(), TraceError> {
        let path = self.dir.join(rel);
        std::fs::write(&path, value).map_err(|source| TraceError::Instance { path, source })
    }

    pub fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(rel)).ok()
    }

    /// Enables `events/<event>` (e.g. `sock/inet_sock_set_state`) in this instance.
    pub fn enable(&mut self, event: &str) -> Result<(), TraceError> {
        self.write(&format!("events/{event}/enable"), "1")?;
        self.enabled.push(event.to_string());
        Ok(())
    }

    /// Opens `per_cpu/cpuN/trace_pipe_raw` of every CPU the kernel may bring online
    /// (non-blocking; each read returns one whole sub-buffer).
    pub fn open_pipes(&mut self) -> Result<(), TraceError> {
        let per_cpu = self.dir.join("per_cpu");
        let entries = std::fs::read_dir(&per_cpu).map_err(|source| TraceError::Instance {
            path: per_cpu.clone(),
            source,
        })?;
        let mut cpus: Vec<u32> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_prefix("cpu")?.parse().ok())
            .collect();
        cpus.sort_unstable();
        for cpu in cpus {
            let path = per_cpu.join(format!("cpu{cpu}/trace_pipe_raw"));
            let f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(&path)
                .map_err(|source| TraceError::Instance { path, source })?;
            self.pipes.push((cpu, f));
        }
        Ok(())
    }

    /// Waits up to `timeout_ms` for any CPU's ring to have data (returns early on a signal).
    pub fn wait(&self, timeout_ms: i32) -> Result<(), TraceError> {
        let mut fds: Vec<libc::pollfd> = self
            .pipes
            .iter()
            .map(|(_, f)| libc::pollfd {
                fd: f.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: fds is a valid array of pollfd of the length given.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Reads whole sub-buffers of `page_size` bytes from every CPU's pipe until each is empty
    /// or `budget` bytes were read in all, calling `f(cpu, page)` for each.
    pub fn drain(
        &mut self,
        buf: &mut [u8],
        budget: usize,
        mut f: impl FnMut(u32, &[u8]),
    ) -> Result<usize, TraceError> {
        let mut total = 0;
        for (cpu, pipe) in &mut self.pipes {
            while total < budget {
                match pipe.read(buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        total += n;
                        f(*cpu, &buf[..n]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => break,
                    // A CPU that is not online has nothing to give.
                    Err(e) if e.raw_os_error() == Some(libc::ENODEV) => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(total)
    }

    /// Events the kernel could not put in our ring, over all CPUs: `overrun` (overwritten
    /// before we read them) plus `dropped events` (refused when the ring was full), from
    /// `per_cpu/cpuN/stats`.
    pub fn lost_events(&self) -> u64 {
        self.pipes
            .iter()
            .filter_map(|(cpu, _)| self.read(&format!("per_cpu/cpu{cpu}/stats")))
            .map(|s| parse_lost(&s))
            .sum()
    }
}

/// `overrun: N` + `dropped events: N` of a per-CPU `stats` file.
pub fn parse_lost(stats: &str) -> u64 {
    stats
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            matches!(k.trim(), "overrun" | "dropped events")
                .then(|| v.trim().parse::<u64>().ok())
                .flatten()
        })
        .sum()
}

/// The page layout from `events/header_page` (or the 64-bit layout when it is unreadable).
pub fn page_layout(root: &Path) -> PageLayout {
    std::fs::read_to_string(root.join("events/header_page"))
        .ok()
        .and_then(|t| PageLayout::parse(&t))
        .unwrap_or(PageLayout::LP64)
}

impl Drop for Instance {
    fn drop(&mut self) {
        for e in &self.enabled {
            let _ = std::fs::write(self.dir.join(format!("events/{e}/enable")), "0");
        }
        self.pipes.clear();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_events_sum_overruns_and_drops() {
        let stats = "entries: 0\noverrun: 3\ncommit overrun: 0\nbytes: 0\n\
                     oldest event ts:  1.0\nnow ts:  2.0\ndropped events: 4\nread events: 9\n";
        assert_eq!(parse_lost(stats), 7);
        assert_eq!(parse_lost(""), 0);
    }
}
