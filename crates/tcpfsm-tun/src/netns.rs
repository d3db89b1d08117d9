//! Named network namespaces (`ip netns`), for tests, benchmarks and `--netns`.
//!
//! Linux keeps the network namespace per thread, so [`NetNs::run`] executes a closure on a
//! fresh thread that has called `setns(CLONE_NEWNET)`. Anything created there stays bound to
//! the namespace for its whole life, whatever thread later uses it: a TUN descriptor, a
//! `std::net` socket, and child processes such as `ip` (they inherit the thread's namespace).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};

use crate::device::run_ip;

/// Moves the calling thread into the named namespace (`/run/netns/NAME`).
pub fn enter(name: &str) -> io::Result<()> {
    let f = File::open(format!("/run/netns/{name}"))
        .map_err(|e| io::Error::new(e.kind(), format!("network namespace {name:?}: {e}")))?;
    // SAFETY: a valid namespace descriptor; CLONE_NEWNET checks that it is a network one.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("setns into {name:?}: {e} (needs root)"),
        ));
    }
    Ok(())
}

/// Runs `f` on a new thread inside the named namespace and returns its result.
pub fn run_in<T, F>(name: &str, f: F) -> io::Result<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(name)?;
            Ok(f())
        })
        .join()
        .map_err(|_| io::Error::other("thread inside the network namespace panicked"))?
    })
}

/// A network namespace created with `ip netns add` and deleted (with everything in it) on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates the namespace and brings its loopback up. An existing namespace of the same
    /// name (a leftover of a crashed run) is deleted first.
    pub fn create(name: &str) -> io::Result<NetNs> {
        if std::path::Path::new(&format!("/run/netns/{name}")).exists() {
            let _ = run_ip(&["netns", "del", name]);
        }
        run_ip(&["netns", "add", name])?;
        let ns = NetNs {
            name: name.to_string(),
        };
        run_ip(&["-n", name, "link", "set", "dev", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// See [`run_in`].
    pub fn run<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        run_in(&self.name, f)
    }

    /// Runs a program inside the namespace (`ip netns exec NAME PROGRAM ARGS…`).
    pub fn exec(&self, program: &str, args: &[&str]) -> io::Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
    }

    /// Sets a sysctl inside the namespace (only namespaced ones make sense, e.g.
    /// `net.ipv4.tcp_fin_timeout`).
    pub fn sysctl(&self, key: &str, value: &str) -> io::Result<()> {
        let out = self.exec("sysctl", &["-qw", &format!("{key}={value}")])?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "sysctl {key}={value} in {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = run_ip(&["netns", "del", &self.name]) {
            eprintln!("tcpfsm-tun: could not delete network namespace: {e}");
        }
    }
}
