//! Which process holds which socket, from `/proc/<pid>/fd`.
//!
//! Every open socket shows up as a symlink `socket:[INODE]` in its holders' fd directories, and
//! sock_diag reports that inode. `ss -p` reads every fd of every process for every query; here a
//! scan is done once per request, only for the inodes asked about, and stops as soon as all are
//! found. Sockets with inode 0 (TIME_WAIT, half-open request sockets, orphans) have no file and
//! so no owner; sockets of other users' processes are invisible without root (their fd
//! directories cannot be read) — both are reported as such ([`NoOwner`], one spelling for every
//! command) rather than silently dropped.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;
use tcpfsm_observe::{FdUsage, NoOwner, ProcessRef};

/// One descriptor that refers to a socket: `ss -p`'s `("nginx",pid=12,fd=7)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Holder {
    pub pid: u32,
    pub comm: String,
    pub fd: u32,
}

impl Holder {
    pub fn process(&self) -> ProcessRef {
        ProcessRef {
            pid: self.pid,
            comm: self.comm.clone(),
        }
    }
}

/// The owner of one socket, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner<'a> {
    /// Holders, in pid then fd order; a socket inherited over fork() or dup()ed has several.
    Processes(&'a [Holder]),
    None(NoOwner),
}

/// Socket inodes mapped to processes; the result of one /proc scan.
#[derive(Debug, Clone, Default)]
pub struct Attribution {
    owners: HashMap<u64, Vec<Holder>>,
    /// Pids whose fd directory could not be read.
    pub denied_pids: Vec<u32>,
    /// Processes looked at.
    pub scanned_pids: usize,
    /// Per pid: open descriptors and how many were sockets we were looking for; only filled by
    /// [`attribute_all`].
    pub fd_counts: HashMap<u32, (ProcessRef, u64, u64)>,
}

impl Attribution {
    /// The owner of the socket with this inode.
    pub fn owner(&self, inode: u64) -> Owner<'_> {
        if inode == 0 {
            return Owner::None(NoOwner::Kernel);
        }
        match self.owners.get(&inode) {
            Some(v) => Owner::Processes(v),
            None if !self.denied_pids.is_empty() => Owner::None(NoOwner::Hidden),
            None => Owner::None(NoOwner::Gone),
        }
    }

    /// The first (lowest-pid) holder's process, if any.
    pub fn first_owner(&self, inode: u64) -> Option<ProcessRef> {
        self.owners
            .get(&inode)
            .and_then(|v| v.first())
            .map(Holder::process)
    }

    /// Records one process's `(fd, inode)` hits.
    fn add(&mut self, pid: u32, comm: String, mut hits: Vec<(u32, u64)>) {
        hits.sort_unstable();
        for (fd, ino) in hits {
            self.owners.entry(ino).or_default().push(Holder {
                pid,
                comm: comm.clone(),
                fd,
            });
        }
    }

    /// Number of inodes attributed.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }
}

/// Reads `/proc/<pid>/comm` (without the newline).
pub fn comm_of(pid: u32) -> Option<String> {
    let s = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(s.trim_end_matches('\n').to_string())
}

fn pids() -> impl Iterator<Item = u32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
}

/// Parses a `socket:[12345]` fd link target.
pub fn socket_inode(link: &[u8]) -> Option<u64> {
    let rest = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(rest).ok()?.parse().ok()
}

/// Walks one process's fd directory; `f` gets each socket's fd number and inode. Returns
/// (open fds, readable).
fn walk_fds(pid: u32, mut f: impl FnMut(u32, u64) -> bool) -> (u64, bool) {
    use std::os::unix::ffi::OsStrExt;
    let dir = format!("/proc/{pid}/fd");
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(_) => return (0, false),
    };
    let mut open = 0;
    let mut path = std::path::PathBuf::from(&dir);
    for e in rd.flatten() {
        open += 1;
        path.push(e.file_name());
        if let Ok(target) = fs::read_link(&path) {
            if let Some(ino) = socket_inode(target.as_os_str().as_bytes()) {
                let fd = e.file_name().to_str().and_then(|n| n.parse().ok());
                if !f(fd.unwrap_or(u32::MAX), ino) {
                    return (open, true);
                }
            }
        }
        path.pop();
    }
    (open, true)
}

/// Finds the holders of exactly these inodes (0 is ignored: it has no holder), stopping as soon
/// as every one has been found. A socket shared by several processes may then list only those
/// scanned before the stop, which is enough to name a culprit and keeps the cost bounded.
pub fn attribute(inodes: &HashSet<u64>) -> Attribution {
    let mut a = Attribution::default();
    let mut missing: HashSet<u64> = inodes.iter().copied().filter(|i| *i != 0).collect();
    if missing.is_empty() {
        return a;
    }
    for pid in pids() {
        a.scanned_pids += 1;
        let mut hits: Vec<(u32, u64)> = Vec::new();
        let (_, readable) = walk_fds(pid, |fd, ino| {
            if inodes.contains(&ino) {
                hits.push((fd, ino));
                missing.remove(&ino);
            }
            true
        });
        if !readable {
            if Path::new(&format!("/proc/{pid}")).exists() {
                a.denied_pids.push(pid);
            }
            continue;
        }
        if !hits.is_empty() {
            a.add(pid, comm_of(pid).unwrap_or_else(|| "?".into()), hits);
        }
        if missing.is_empty() {
            break;
        }
    }
    a
}

/// Maps the inodes of sockets held by processes whose `comm` equals `name` (or contains it, if
/// `substring`). Only the matching processes' fd directories are read.
pub fn sockets_of_processes(name: &str, substring: bool) -> Attribution {
    sockets_of(|p| {
        if substring {
            p.comm.contains(name)
        } else {
            p.comm == name
        }
    })
}

/// Maps the socket inodes held by the processes `select` picks (it sees pid and comm). Only the
/// selected processes' fd directories are read.
pub fn sockets_of(select: impl Fn(&ProcessRef) -> bool) -> Attribution {
    let mut a = Attribution::default();
    for pid in pids() {
        a.scanned_pids += 1;
        let Some(comm) = comm_of(pid) else { continue };
        let p = ProcessRef { pid, comm };
        if !select(&p) {
            continue;
        }
        let mut hits: Vec<(u32, u64)> = Vec::new();
        let (_, readable) = walk_fds(pid, |fd, ino| {
            hits.push((fd, ino));
            true
        });
        if !readable {
            a.denied_pids.push(pid);
        }
        a.add(p.pid, p.comm, hits);
    }
    a
}

/// Full scan: every process, every socket inode in `inodes` attributed, and per-process
/// descriptor counts for processes holding at least one of them (for fd-usage checks).
pub fn attribute_all(inodes: &HashSet<u64>) -> Attribution {
    let mut a = Attribution::default();
    for pid in pids() {
        a.scanned_pids += 1;
        let mut hits: Vec<(u32, u64)> = Vec::new();
        let (open, readable) = walk_fds(pid, |fd, ino| {
            if inodes.contains(&ino) {
                hits.push((fd, ino));
            }
            true
        });
        if !readable {
            if Path::new(&format!("/proc/{pid}")).exists() {
                a.denied_pids.push(pid);
            }
            continue;
        }
        if hits.is_empty() {
            continue;
        }
        let p = ProcessRef {
            pid,
            comm: comm_of(pid).unwrap_or_else(|| "?".into()),
        };
        a.fd_counts
            .insert(pid, (p.clone(), open, hits.len() as u64));
        a.add(pid, p.comm, hits);
    }
    a
}

/// The soft "Max open files" limit from a `/proc/<pid>/limits` text (None if unlimited/absent).
pub fn parse_nofile_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    soft.parse().ok()
}

/// File-descriptor usage for the processes in an [`attribute_all`] scan.
pub fn fd_usage(a: &Attribution) -> Vec<FdUsage> {
    let mut v: Vec<FdUsage> = a
        .fd_counts
        .values()
        .map(|(p, open, tcp)| FdUsage {
            pid: p.pid,
            comm: p.comm.clone(),
            open: *open,
            limit: fs::read_to_string(format!("/proc/{}/limits", p.pid))
                .ok()
                .and_then(|t| parse_nofile_limit(&t)),
            tcp_sockets: *tcp,
        })
        .collect();
    v.sort_by_key(|u| u.pid);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_link_targets_parse() {
        assert_eq!(socket_inode(b"socket:[12345]"), Some(12345));
        assert_eq!(socket_inode(b"pipe:[12345]"), None);
        assert_eq!(socket_inode(b"socket:[12x]"), None);
        assert_eq!(socket_inode(b"/dev/null"), None);
    }

    const LIMITS: &str =
        "Limit                     Soft Limit           Hard Limit           Units     \n\
Max cpu time              unlimited            unlimited            seconds   \n\
Max open files            1024                 524288               files     \n\
Max locked memory         8388608              8388608              bytes     \n";

    #[test]
    fn nofile_soft_limit_parses() {
        assert_eq!(parse_nofile_limit(LIMITS), Some(1024));
        assert_eq!(
            parse_nofile_limit(
                "Max open files            unlimited            unlimited            files\n"
            ),
            None
        );
        assert_eq!(parse_nofile_limit("garbage"), None);
    }

    #[test]
    fn own_socket_is_attributed_to_this_process() {
        use std::os::unix::fs::MetadataExt;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&l);
        let ino = fs::metadata(format!("/proc/self/fd/{fd}")).unwrap().ino();
        let a = attribute(&HashSet::from([ino]));
        let me = std::process::id();
        match a.owner(ino) {
            Owner::Processes(ps) => {
                assert!(
                    ps.iter().any(|p| p.pid == me && p.fd == fd as u32),
                    "{ps:?}"
                )
            }
            other => panic!("not attributed: {other:?}"),
        }
        assert_eq!(a.owner(0), Owner::None(NoOwner::Kernel));
        let all = attribute_all(&HashSet::from([ino]));
        let (_, open, tcp) = all.fd_counts.get(&me).unwrap();
        assert!(*open >= 1 && *tcp == 1);
        let usage = fd_usage(&all);
        assert!(usage.iter().any(|u| u.pid == me && u.limit.is_some()));
    }
}
