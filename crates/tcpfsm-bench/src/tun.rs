//! Over a TUN device against the Linux kernel: each stack gets a fresh network namespace with
//! a TUN device opened and configured by the same code (`tcpfsm_tun::TunDevice::open` and
//! `configure`: MTU, 10.77.0.1/24 for the kernel, link up), and moves the same bytes to or
//! from a kernel socket in that namespace.
//!
//! tcpfsm runs as `tcpfsm-tun`'s `Stack` (driver thread, blocking `TcpStream` in the
//! application thread). smoltcp runs as its own `TunTapInterface` on the same kind of device
//! (`from_fd` on the descriptor our set-up opened), polled with its application in one
//! thread, sleeping in `phy::wait` when idle. The kernel's socket runs in a third thread.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context};
use smoltcp::iface::{Config as IfConfig, Interface, SocketSet};
use smoltcp::phy::{Medium, TunTapInterface};
use smoltcp::socket::tcp;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use tcpfsm_tun::netns::NetNs;
use tcpfsm_tun::{TunAddrs, TunDevice};

use crate::pattern::{Pattern, Verify};
use crate::runner::{Better, Case, Outcome, Run, Stack, Target};
use crate::sys;

const BUFFER: usize = 256 * 1024;
const CHUNK: usize = 64 * 1024;
const PORT: u16 = 7001;
/// A transfer that takes longer than this has hung, not measured anything.
const DEADLINE: Duration = Duration::from_secs(120);

/// Which way the bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// The stack under test sends, the kernel receives.
    ToKernel,
    /// The kernel sends, the stack under test receives.
    FromKernel,
}

/// A namespace with a configured TUN device in it, named after this process.
struct Lab {
    ns: NetNs,
    tun_name: String,
    addrs: TunAddrs,
}

impl Lab {
    fn new() -> anyhow::Result<Lab> {
        static N: AtomicU32 = AtomicU32::new(0);
        let k = N.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let ns = NetNs::create(&format!("tcpfsm-bench-{pid}-{k}")).context("ip netns add")?;
        Ok(Lab {
            ns,
            // IFNAMSIZ: at most 15 bytes.
            tun_name: format!("tfb{}", (pid as u64 * 1000 + k as u64) % 1_000_000_000_000),
            addrs: TunAddrs::default(),
        })
    }

    fn kernel_ip(&self) -> IpAddr {
        IpAddr::V4(self.addrs.host_v4.expect("default addresses"))
    }

    fn stack_ip(&self) -> Ipv4Addr {
        self.addrs.stack_v4.expect("default addresses")
    }

    /// Opens and configures the device in the namespace: the set-up both stacks share.
    fn open_device(&self, mtu: u32) -> anyhow::Result<TunDevice> {
        let name = self.tun_name.clone();
        let addrs = self.addrs.clone();
        self.ns
            .run(move || -> std::io::Result<TunDevice> {
                let d = TunDevice::open(&name)?;
                d.configure(mtu, &addrs)?;
                Ok(d)
            })?
            .context("opening the TUN device")
    }
}

/// The kernel's end, in its own thread: returns (bytes, time the last byte or FIN arrived).
type Peer = JoinHandle<anyhow::Result<(u64, Instant)>>;

/// The kernel receives until EOF on a socket accepted in the namespace.
fn kernel_receiver(lab: &Lab, verify: Verify) -> anyhow::Result<(SocketAddr, Peer)> {
    let addr = SocketAddr::new(lab.kernel_ip(), PORT);
    let l = lab.ns.run(move || std::net::TcpListener::bind(addr))??;
    let h = std::thread::spawn(move || -> anyhow::Result<(u64, Instant)> {
        let (mut k, _) = l.accept()?;
        k.set_read_timeout(Some(DEADLINE))?;
        let mut buf = vec![0u8; CHUNK];
        let mut n = 0u64;
        loop {
            let r = k.read(&mut buf)?;
            if r == 0 {
                return Ok((n, Instant::now()));
            }
            verify.check(n, &buf[..r])?;
            n += r as u64;
        }
    });
    Ok((addr, h))
}

/// The kernel connects from the namespace to `to`, sends `bytes`, then shuts down writing.
fn kernel_sender(lab: &Lab, to: SocketAddr, bytes: u64) -> Peer {
    let ns_name = lab.ns.name().to_string();
    std::thread::spawn(move || -> anyhow::Result<(u64, Instant)> {
        let mut k = tcpfsm_tun::netns::run_in(&ns_name, || {
            std::net::TcpStream::connect_timeout(&to, Duration::from_secs(10))
        })??;
        k.set_write_timeout(Some(DEADLINE))?;
        let pattern = Pattern::new(CHUNK);
        let mut sent = 0u64;
        while sent < bytes {
            let n = (bytes - sent).min(CHUNK as u64) as usize;
            k.write_all(pattern.slice(sent, n))?;
            sent += n as u64;
        }
        k.shutdown(Shutdown::Write)?;
        // Wait for the other side's FIN so the socket is not torn down under it.
        let _ = k.read(&mut [0u8; 1]);
        Ok((sent, Instant::now()))
    })
}

fn join(p: Peer) -> anyhow::Result<(u64, Instant)> {
    p.join()
        .map_err(|_| anyhow!("kernel peer thread panicked"))?
}

/// What one stack measured: (bytes, wall seconds, process CPU seconds).
struct Moved(u64, f64, f64);

fn ours(dir: Dir, mtu: u32, bytes: u64, verify: Verify) -> anyhow::Result<Moved> {
    use tcpfsm_tun::{Stack as TunStack, StackConfig, TcpListener, TcpStream};
    let lab = Lab::new()?;
    let stack = TunStack::new(StackConfig {
        tun_name: lab.tun_name.clone(),
        netns: Some(lab.ns.name().to_string()),
        mtu,
        addrs: lab.addrs.clone(),
        tcp: crate::ours::tun_config(BUFFER),
        ..StackConfig::default()
    })?;
    let cpu0 = sys::process_cpu_seconds();
    let (t0, end, n) = match dir {
        Dir::ToKernel => {
            let (addr, peer) = kernel_receiver(&lab, verify)?;
            let mut s = TcpStream::connect_timeout(&stack, addr, Duration::from_secs(10))?;
            s.set_write_timeout(Some(DEADLINE))?;
            let pattern = Pattern::new(CHUNK);
            let t0 = Instant::now();
            let mut sent = 0u64;
            while sent < bytes {
                let n = (bytes - sent).min(CHUNK as u64) as usize;
                s.write_all(pattern.slice(sent, n))?;
                sent += n as u64;
            }
            s.shutdown(Shutdown::Write)?;
            let (n, end) = join(peer)?;
            (t0, end, n)
        }
        Dir::FromKernel => {
            let addr = SocketAddr::new(lab.stack_ip().into(), PORT);
            let l = TcpListener::bind(&stack, addr)?;
            let peer = kernel_sender(&lab, addr, bytes);
            let (mut s, _) = l.accept_timeout(Duration::from_secs(10))?;
            s.set_read_timeout(Some(DEADLINE))?;
            let t0 = Instant::now();
            let mut buf = vec![0u8; CHUNK];
            let mut got = 0u64;
            loop {
                let r = s.read(&mut buf)?;
                if r == 0 {
                    break;
                }
                verify.check(got, &buf[..r])?;
                got += r as u64;
            }
            let end = Instant::now();
            drop(s);
            join(peer)?;
            (t0, end, got)
        }
    };
    let cpu = sys::process_cpu_seconds() - cpu0;
    ensure!(n == bytes, "moved {n} of {bytes} bytes");
    Ok(Moved(n, (end - t0).as_secs_f64(), cpu))
}

fn smol(dir: Dir, mtu: u32, bytes: u64, verify: Verify) -> anyhow::Result<Moved> {
    let lab = Lab::new()?;
    let dev = lab.open_device(mtu)?;
    // SAFETY: dup of a descriptor we hold open; smoltcp owns (and closes) the copy.
    let fd = unsafe { libc::dup(dev.as_raw_fd()) };
    ensure!(fd >= 0, "dup: {}", std::io::Error::last_os_error());
    let mut device = TunTapInterface::from_fd(fd, Medium::Ip, mtu as usize)?;
    let epoch = Instant::now();
    let now = || smoltcp::time::Instant::from_micros(epoch.elapsed().as_micros() as i64);
    let mut cfg = IfConfig::new(HardwareAddress::Ip);
    cfg.random_seed = std::process::id() as u64;
    let mut iface = Interface::new(cfg, &mut device, now());
    let ip = lab.stack_ip();
    iface.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::from(ip), lab.addrs.prefix_v4))
            .expect("one address")
    });
    let mut sockets = SocketSet::new(vec![]);
    let h = sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; BUFFER]),
        tcp::SocketBuffer::new(vec![0; BUFFER]),
    ));
    let pattern = Pattern::new(CHUNK);
    let (mut sent, mut got) = (0u64, 0u64);
    let mut closed = false;
    let cpu0 = sys::process_cpu_seconds();
    let peer = match dir {
        Dir::ToKernel => {
            let (addr, peer) = kernel_receiver(&lab, verify)?;
            let IpAddr::V4(k) = addr.ip() else {
                bail!("IPv4 only")
            };
            sockets.get_mut::<tcp::Socket>(h).connect(
                iface.context(),
                (IpAddress::from(k), PORT),
                49152,
            )?;
            peer
        }
        Dir::FromKernel => {
            sockets.get_mut::<tcp::Socket>(h).listen(PORT)?;
            kernel_sender(&lab, SocketAddr::new(ip.into(), PORT), bytes)
        }
    };
    let mut t0: Option<Instant> = None;
    let mut end: Option<Instant> = None;
    while end.is_none() {
        ensure!(
            epoch.elapsed() < DEADLINE,
            "transfer hung at {sent}/{got} bytes in {}",
            sockets.get::<tcp::Socket>(h).state()
        );
        iface.poll(now(), &mut device, &mut sockets);
        let s = sockets.get_mut::<tcp::Socket>(h);
        let mut progress = false;
        if closed && !s.is_active() {
            // Our FIN is acknowledged (FIN_WAIT_2 ends in TIME_WAIT or CLOSED).
            break;
        }
        match dir {
            Dir::ToKernel if s.may_send() => {
                t0.get_or_insert_with(Instant::now);
                while sent < bytes {
                    let n = s.send(|free| {
                        let n = free.len().min((bytes - sent) as usize).min(CHUNK);
                        free[..n].copy_from_slice(pattern.slice(sent, n));
                        (n, n)
                    })?;
                    if n == 0 {
                        break;
                    }
                    sent += n as u64;
                    progress = true;
                }
                if sent == bytes && !closed {
                    s.close();
                    closed = true;
                }
            }
            Dir::FromKernel if s.may_recv() || s.state() == tcp::State::CloseWait => {
                t0.get_or_insert_with(Instant::now);
                loop {
                    match s.recv(|d| (d.len(), verify.check(got, d).map(|()| d.len()))) {
                        Ok(Ok(0)) => break,
                        Ok(Ok(n)) => {
                            got += n as u64;
                            progress = true;
                        }
                        Ok(Err(e)) => return Err(e),
                        Err(tcp::RecvError::Finished) => {
                            end = Some(Instant::now());
                            s.close();
                            break;
                        }
                        Err(e) => bail!("recv: {e}"),
                    }
                }
            }
            _ => {}
        }
        if !progress {
            let delay = iface.poll_delay(now(), &sockets);
            smoltcp::phy::wait(fd, delay.or(Some(smoltcp::time::Duration::from_millis(1))))?;
        }
    }
    // Let the FIN/ACK exchange finish so the kernel peer sees EOF.
    let finish = Instant::now();
    while finish.elapsed() < Duration::from_secs(2) && sockets.get::<tcp::Socket>(h).is_active() {
        iface.poll(now(), &mut device, &mut sockets);
        let delay = iface.poll_delay(now(), &sockets);
        smoltcp::phy::wait(fd, delay.or(Some(smoltcp::time::Duration::from_millis(1))))?;
    }
    let (n, kernel_end) = join(peer)?;
    let end = match dir {
        Dir::ToKernel => kernel_end,
        Dir::FromKernel => end.expect("loop ends with it"),
    };
    let cpu = sys::process_cpu_seconds() - cpu0;
    ensure!(n == bytes, "moved {n} of {bytes} bytes");
    let t0 = t0.ok_or_else(|| anyhow!("never connected"))?;
    drop(dev);
    Ok(Moved(n, (end - t0).as_secs_f64(), cpu))
}

fn run(stack: Stack, dir: Dir, mtu: u32, bytes: u64, verify: Verify) -> anyhow::Result<Outcome> {
    if !tcpfsm_tun::is_root() {
        return Ok(Outcome::Skipped(
            "needs root (network namespace and TUN device)".into(),
        ));
    }
    let Moved(n, wall, cpu) = match stack {
        Stack::Tcpfsm => ours(dir, mtu, bytes, verify)?,
        Stack::Smoltcp => smol(dir, mtu, bytes, verify)?,
    };
    let bits = n as f64 * 8.0;
    let mut r = Run::new()
        .metric("throughput", "Gbit/s", bits / wall / 1e9)
        .metric("CPU cost", "Gbit/s per process CPU-s", bits / cpu / 1e9);
    if stack == Stack::Tcpfsm {
        r = r.note("blocking TcpStream read/write (copies), stack on its driver thread");
    }
    Ok(Outcome::Ran(r))
}

pub fn cases<'a>(bytes: u64, verify: Verify) -> Vec<Case<'a>> {
    let mut v = Vec::new();
    for mtu in [1500u32, 9000] {
        for dir in [Dir::ToKernel, Dir::FromKernel] {
            v.push(Case {
                workload: "tun",
                name: format!(
                    "{}, MTU {mtu}, {}",
                    crate::bulk::human_bytes(bytes),
                    match dir {
                        Dir::ToKernel => "stack -> kernel",
                        Dir::FromKernel => "kernel -> stack",
                    }
                ),
                better: Better::Higher,
                target: Some(Target::RatioAtLeast(1.0)),
                run: Box::new(move |s| run(s, dir, mtu, bytes, verify)),
            });
        }
    }
    v
}
