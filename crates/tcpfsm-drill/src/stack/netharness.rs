//! What the real-time stacks share: a private network namespace per script, and the script's
//! end of the wire — a TUN device the runner writes inbound packets to and reads the stack's
//! packets from, on the wall clock.

use super::{Applied, Fd, Micros, Sent, SysErr, SysResult};
use crate::outcome::Outcome;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tcpfsm_tun::netns::NetNs;
use tcpfsm_tun::{TunAddrs, TunDevice};

static RUNS: AtomicU32 = AtomicU32::new(0);

/// Runs `f` on a thread inside a fresh network namespace (deleted afterwards). Needs root.
pub(crate) fn in_namespace(stack: &str, f: impl FnOnce() -> Outcome + Send) -> Outcome {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return crate::skipped(format!(
            "the {stack} stack needs root (network namespaces, TUN)"
        ));
    }
    let name = format!(
        "drill-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    );
    let ns = match NetNs::create(&name) {
        Ok(ns) => ns,
        Err(e) => return crate::broken(format!("creating network namespace {name}: {e}")),
    };
    match ns.run(f) {
        Ok(o) => o,
        Err(e) => crate::broken(format!("running in namespace {name}: {e}")),
    }
}

/// Runs iproute2's `ip` (in the calling thread's namespace).
pub(crate) fn ip_cmd(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "`ip {}`: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Writes a sysctl in the calling thread's namespace (`/proc/sys/net` resolves per thread).
pub(crate) fn write_sysctl(key: &str, value: &str) -> SysResult<Applied> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    if !Path::new(&path).exists() {
        return Ok(Applied::Ignored(format!(
            "this kernel has no per-namespace {key}"
        )));
    }
    std::fs::write(&path, value)
        .map_err(|e| SysErr::Errno(e.raw_os_error().unwrap_or(libc::EINVAL)))?;
    Ok(Applied::Set)
}

/// The script's end of the wire: a TUN device, the clock, and what the stack sent.
pub(crate) struct Wire {
    tun: TunDevice,
    t0: Instant,
    pub(crate) sent: VecDeque<Sent>,
}

impl Wire {
    /// Opens `name` in the calling thread's namespace with `addrs` (only the `host_*` ones
    /// are assigned) and host routes to `remotes` through it.
    pub(crate) fn open(
        name: &str,
        mtu: u32,
        addrs: &TunAddrs,
        remotes: &[IpAddr],
    ) -> io::Result<Wire> {
        let tun = TunDevice::open(name)?;
        tun.configure(mtu, addrs)?;
        for r in remotes {
            let (fam, len) = if r.is_ipv6() { ("-6", 128) } else { ("-4", 32) };
            ip_cmd(&[fam, "route", "add", &format!("{r}/{len}"), "dev", name])?;
        }
        Ok(Wire {
            tun,
            t0: Instant::now(),
            sent: VecDeque::new(),
        })
    }

    pub(crate) fn now(&self) -> Micros {
        self.t0.elapsed().as_micros() as Micros
    }

    /// Script time 0 is now (after the set-up and readiness checks).
    pub(crate) fn restart_clock(&mut self) {
        self.t0 = Instant::now();
    }

    /// The clock reads `at` again now: the time spent since it read `at` does not count.
    pub(crate) fn resume_at(&mut self, at: Micros) {
        self.t0 = Instant::now() - Duration::from_micros(at.max(0) as u64);
    }

    /// Moves every datagram waiting on the device into `sent`, stamped now.
    pub(crate) fn drain(&mut self) {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = self.tun.recv(&mut buf) {
            let at = self.now();
            self.sent.push_back(Sent {
                at,
                bytes: buf[..n].to_vec(),
            });
        }
    }

    /// Forgets what was sent so far (the kernel's router solicitations and MLD reports as the
    /// device came up are not the script's).
    pub(crate) fn clear(&mut self) {
        self.drain();
        self.sent.clear();
    }

    pub(crate) fn inject(&mut self, datagram: &[u8]) -> SysResult<()> {
        self.tun
            .send(datagram)
            .map_err(|e| SysErr::Errno(e.raw_os_error().unwrap_or(libc::EIO)))?;
        // The kernel handles a written packet before the write returns (softirq on the way
        // out of the call), so what is queued now was sent now.
        self.drain();
        Ok(())
    }

    /// Waits until `limit`, a datagram, or readiness of one of `watch`; see `Stack::step`.
    pub(crate) fn step(&mut self, limit: Micros, watch: &[(Fd, i16)]) -> bool {
        let now = self.now();
        if now >= limit {
            self.drain();
            return true;
        }
        let mut fds: Vec<libc::pollfd> = vec![libc::pollfd {
            fd: self.tun.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        fds.extend(watch.iter().map(|(fd, ev)| libc::pollfd {
            fd: *fd,
            events: *ev,
            revents: 0,
        }));
        let wait = (limit - now).max(0);
        let ts = libc::timespec {
            tv_sec: (wait / 1_000_000) as libc::time_t,
            tv_nsec: ((wait % 1_000_000) * 1000) as libc::c_long,
        };
        // SAFETY: a valid array of pollfd and a valid timespec; no signal mask change.
        let n = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
        self.drain();
        n <= 0 && self.now() >= limit
    }

    /// Waits until the stack answers on `local`: a SYN to the closed port 9 draws an RST once
    /// the addresses and routes work (a script's first packet must not be lost to a device
    /// still coming up).
    pub(crate) fn wait_answering(&self, local: IpAddr, remote: IpAddr) -> io::Result<()> {
        let syn = crate::segment::build(&crate::segment::Inbound {
            src: SocketAddr::new(remote, 9),
            dst: SocketAddr::new(local, 9),
            flags: crate::script::Flags::SYN,
            seq: 1,
            ack: 0,
            win: 1000,
            urg: 0,
            options: &[],
            payload_len: 0,
            ecn: None,
        })
        .map_err(io::Error::other)?;
        let mut buf = vec![0u8; 65536];
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            self.tun.send(&syn)?;
            let until = Instant::now() + Duration::from_millis(20);
            while Instant::now() < until {
                match self.tun.recv(&mut buf) {
                    Ok(n) => {
                        let answered = crate::segment::Seg::parse(&buf[..n]).is_ok_and(|s| {
                            s.src.port() == 9 && s.flags & crate::script::Flags::RST != 0
                        });
                        if answered {
                            return Ok(());
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_micros(200)),
                }
            }
        }
        Err(io::Error::other(format!(
            "nothing answers on {local} through {}",
            self.tun.name()
        )))
    }
}
