//! Over a TUN device against the Linux kernel: each stack gets a fresh network namespace with
//! a TUN device opened and configured by the same code (`tcpfsm_tun::TunDevice::open` and
//! `configure`: MTU, 10.77.0.1/24 for the kernel, link up), and moves the same bytes to or
//! from a kernel socket in that namespace (a thread of its own). The stacks' sides are in
//! their adapters: `ours::tun_bulk` (tcpfsm-tun's `Stack` and blocking `TcpStream`) and
//! `smol::tun_bulk` (smoltcp's `TunTapInterface` on the same kind of device).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use tcpfsm_tun::netns::NetNs;
use tcpfsm_tun::{TunAddrs, TunDevice};

use crate::pattern::{Pattern, Verify};
use crate::runner::{Better, Case, Outcome, Run, Stack, Target};
use crate::{ours, smol};

/// Send and receive buffer of each stack's socket.
pub const BUFFER: usize = 256 * 1024;
/// Bytes per application write or read.
pub const CHUNK: usize = 64 * 1024;
pub const PORT: u16 = 7001;
/// A transfer that takes longer than this has hung, not measured anything.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// Which way the bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// The stack under test sends, the kernel receives.
    ToKernel,
    /// The kernel sends, the stack under test receives.
    FromKernel,
}

/// A namespace for one run, named after this process, and the addresses of its TUN link.
pub struct Lab {
    pub ns: NetNs,
    pub tun_name: String,
    pub addrs: TunAddrs,
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

    pub fn kernel_ip(&self) -> IpAddr {
        IpAddr::V4(self.addrs.host_v4.expect("default addresses"))
    }

    pub fn stack_ip(&self) -> Ipv4Addr {
        self.addrs.stack_v4.expect("default addresses")
    }

    /// Opens and configures the device in the namespace: the set-up both stacks share
    /// (tcpfsm-tun's `Stack::new` runs the same two calls).
    pub fn open_device(&self, mtu: u32) -> anyhow::Result<TunDevice> {
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

/// Writes `bytes` of the stream in `CHUNK`s.
pub fn write_stream(w: &mut impl Write, bytes: u64) -> std::io::Result<()> {
    let pattern = Pattern::new(CHUNK);
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(CHUNK as u64) as usize;
        w.write_all(pattern.slice(sent, n))?;
        sent += n as u64;
    }
    Ok(())
}

/// Reads until EOF, checking the stream; returns the byte count.
pub fn read_stream(r: &mut impl Read, verify: Verify) -> anyhow::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut n = 0u64;
    loop {
        let got = r.read(&mut buf)?;
        if got == 0 {
            return Ok(n);
        }
        verify.check(n, &buf[..got])?;
        n += got as u64;
    }
}

/// The kernel's end, in its own thread: (bytes, when the last byte or FIN arrived).
pub type Peer = JoinHandle<anyhow::Result<(u64, Instant)>>;

/// The kernel receives until EOF on a socket accepted in the namespace.
pub fn kernel_receiver(lab: &Lab, verify: Verify) -> anyhow::Result<(SocketAddr, Peer)> {
    let addr = SocketAddr::new(lab.kernel_ip(), PORT);
    let l = lab.ns.run(move || std::net::TcpListener::bind(addr))??;
    let h = std::thread::spawn(move || -> anyhow::Result<(u64, Instant)> {
        let (mut k, _) = l.accept()?;
        k.set_read_timeout(Some(DEADLINE))?;
        let n = read_stream(&mut k, verify)?;
        Ok((n, Instant::now()))
    });
    Ok((addr, h))
}

/// The kernel connects from the namespace to `to`, sends `bytes`, then shuts down writing.
pub fn kernel_sender(lab: &Lab, to: SocketAddr, bytes: u64) -> Peer {
    let ns_name = lab.ns.name().to_string();
    std::thread::spawn(move || -> anyhow::Result<(u64, Instant)> {
        let mut k = tcpfsm_tun::netns::run_in(&ns_name, || {
            std::net::TcpStream::connect_timeout(&to, Duration::from_secs(10))
        })??;
        k.set_write_timeout(Some(DEADLINE))?;
        write_stream(&mut k, bytes)?;
        k.shutdown(Shutdown::Write)?;
        // Wait for the other side's FIN so the socket is not torn down under it.
        let _ = k.read(&mut [0u8; 1]);
        Ok((bytes, Instant::now()))
    })
}

pub fn join(p: Peer) -> anyhow::Result<(u64, Instant)> {
    p.join()
        .map_err(|_| anyhow!("kernel peer thread panicked"))?
}

/// One TUN run's work.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub dir: Dir,
    pub mtu: u32,
    pub bytes: u64,
    pub verify: Verify,
    /// tcpfsm opens its device with `IFF_VNET_HDR` offloads (super-segments both ways);
    /// smoltcp's `TunTapInterface` has none, so its runs are the same either way.
    pub offloads: bool,
}

/// What one stack measured.
pub struct Moved {
    pub bytes: u64,
    pub wall: f64,
    /// CPU seconds of the whole process: the stack, its application and the kernel's TCP
    /// working for the peer socket in this process.
    pub cpu: f64,
}

fn run(stack: Stack, p: &Params) -> anyhow::Result<Outcome> {
    if !tcpfsm_tun::is_root() {
        return Ok(Outcome::Skipped(
            "needs root (network namespace and TUN device)".into(),
        ));
    }
    let lab = Lab::new()?;
    let (m, note) = match stack {
        Stack::Tcpfsm => (ours::tun_bulk(&lab, p)?, Some(ours::tun_note(p.offloads))),
        Stack::Smoltcp => (smol::tun_bulk(&lab, p)?, None),
    };
    anyhow::ensure!(m.bytes == p.bytes, "moved {} of {} bytes", m.bytes, p.bytes);
    let bits = m.bytes as f64 * 8.0;
    let mut r = Run::new()
        .metric("throughput", "Gbit/s", bits / m.wall / 1e9)
        .metric("CPU cost", "Gbit/s per process CPU-s", bits / m.cpu / 1e9);
    if let Some(n) = note {
        r = r.note(n);
    }
    Ok(Outcome::Ran(r))
}

/// Each direction and MTU twice: tcpfsm on a device set up exactly as smoltcp's (one
/// segment per datagram), then with the TUN's offloads, which smoltcp cannot use.
pub fn cases<'a>(bytes: u64, verify: Verify) -> Vec<Case<'a>> {
    let mut v = Vec::new();
    for offloads in [false, true] {
        for mtu in [1500u32, 9000] {
            for dir in [Dir::ToKernel, Dir::FromKernel] {
                v.push(Case {
                    workload: "tun",
                    name: format!(
                        "{}, MTU {mtu}, {}{}",
                        crate::bulk::human_bytes(bytes),
                        match dir {
                            Dir::ToKernel => "stack -> kernel",
                            Dir::FromKernel => "kernel -> stack",
                        },
                        if offloads {
                            ", tcpfsm with offloads"
                        } else {
                            ""
                        }
                    ),
                    better: Better::Higher,
                    target: Some(Target::RatioAtLeast(1.0)),
                    run: Box::new(move |s| {
                        run(
                            s,
                            &Params {
                                dir,
                                mtu,
                                bytes,
                                verify,
                                offloads,
                            },
                        )
                    }),
                });
            }
        }
    }
    v
}
