//! Reading another network namespace: `--netns NAME` enters it the way `ip netns exec` does,
//! for the calling thread only.
//!
//! Everything in this crate reads the calling thread's namespace (sock_diag sockets are
//! opened in it; /proc/thread-self/net and /proc/sys/net follow it), so entering one before
//! the first read is all a command needs. Process attribution is unaffected: /proc/<pid>/fd
//! shows every process, and socket inodes are unique across namespaces.

use crate::HostError;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// Where a namespace name lives: `ip netns add NAME` creates /run/netns/NAME; a path (one
/// with a `/`, e.g. /proc/1234/ns/net) is used as given.
pub fn path_of(name: &str) -> PathBuf {
    if name.contains('/') {
        PathBuf::from(name)
    } else {
        PathBuf::from("/run/netns").join(name)
    }
}

/// Moves the calling thread into the network namespace `name` (see [`path_of`]).
pub fn enter(name: &str) -> Result<(), HostError> {
    let path = path_of(name);
    let f = File::open(&path).map_err(|e| HostError::Netns {
        name: name.to_string(),
        why: if e.kind() == std::io::ErrorKind::NotFound {
            format!("{} does not exist (see `ip netns list`)", path.display())
        } else {
            format!("cannot open {}: {e}", path.display())
        },
    })?;
    // SAFETY: setns takes a valid open descriptor and a namespace type; it only changes the
    // calling thread's namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        let why = match e.raw_os_error() {
            Some(libc::EPERM) => "entering a network namespace needs root (CAP_SYS_ADMIN)".into(),
            Some(libc::EINVAL) => format!("{} is not a network namespace", path.display()),
            _ => format!("setns: {e}"),
        };
        return Err(HostError::Netns {
            name: name.to_string(),
            why,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_under_run_netns_and_paths_stay() {
        assert_eq!(path_of("blue"), PathBuf::from("/run/netns/blue"));
        assert_eq!(path_of("/proc/1/ns/net"), PathBuf::from("/proc/1/ns/net"));
    }

    #[test]
    fn a_missing_namespace_is_named_in_the_error() {
        let e = enter("tcpfsm-no-such-namespace").unwrap_err().to_string();
        assert!(e.contains("tcpfsm-no-such-namespace"), "{e}");
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn a_file_that_is_no_namespace_is_refused() {
        // Runs on its own thread, so a (wrong) success could not move the test runner.
        let e = std::thread::spawn(|| enter("/proc/self/status"))
            .join()
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a network namespace") || e.contains("needs root"),
            "{e}"
        );
    }
}
