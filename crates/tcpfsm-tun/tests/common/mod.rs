//! Shared fixture of the interop tests: a fresh network namespace holding our stack's TUN
//! device, kernel sockets created inside it, and `ss` run inside it.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tcpfsm_tun::core::Event;
use tcpfsm_tun::netns::NetNs;
use tcpfsm_tun::{Stack, StackConfig, State, TcpListener, TcpStream};

/// Every blocking step of a test is bounded by this.
pub const STEP: Duration = Duration::from_secs(20);

/// Prints the loud skip line and returns true when not root.
pub fn skip_unless_root(test: &str) -> bool {
    !tcpfsm_testkit::require_root(&format!(
        "{test} creates a network namespace and a TUN device"
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn is_v6(self) -> bool {
        self == Family::V6
    }
}

/// Runs a scenario once over IPv4 and once over IPv6, as two tests.
#[macro_export]
macro_rules! both_families {
    ($name:ident, $body:path) => {
        mod $name {
            #[test]
            fn ipv4() {
                if $crate::common::skip_unless_root(concat!(stringify!($name), "::ipv4")) {
                    return;
                }
                $body($crate::common::Family::V4);
            }
            #[test]
            fn ipv6() {
                if $crate::common::skip_unless_root(concat!(stringify!($name), "::ipv6")) {
                    return;
                }
                $body($crate::common::Family::V6);
            }
        }
    };
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// One test's world: namespace (deleted on drop, even when the test panics) and our stack.
/// Field order matters: the stack stops before the namespace goes.
pub struct Env {
    pub stack: Stack,
    pub ns: NetNs,
    pub family: Family,
    pub events: mpsc::Receiver<Event>,
}

impl Env {
    pub fn new(family: Family) -> Env {
        Env::with_config(family, StackConfig::default())
    }

    pub fn with_config(family: Family, mut cfg: StackConfig) -> Env {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("tcpfsm-tun-{}-{n}", std::process::id());
        let ns = NetNs::create(&name).expect("ip netns add");
        cfg.tun_name = "tfsm0".into();
        cfg.netns = Some(name);
        let stack = Stack::new(cfg).expect("TUN stack in the namespace");
        let (tx, rx) = mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        stack.subscribe(move |ev| {
            let _ = tx.lock().unwrap().send(ev.clone());
        });
        Env {
            stack,
            ns,
            family,
            events: rx,
        }
    }

    /// Our stack's address.
    pub fn ours(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.stack.local_ip(self.family.is_v6()).unwrap(), port)
    }

    /// The kernel's address on the TUN link.
    pub fn kernels(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.stack.host_ip(self.family.is_v6()).unwrap(), port)
    }

    /// Runs `f` on a thread inside the namespace (kernel sockets made there live there).
    pub fn kernel<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.ns.run(f).expect("enter the namespace")
    }

    /// A kernel client connected to `addr` (with timeouts set).
    pub fn kernel_connect(&self, addr: SocketAddr) -> io::Result<std::net::TcpStream> {
        let s = self.kernel(|| std::net::TcpStream::connect_timeout(&addr, STEP))?;
        s.set_read_timeout(Some(STEP))?;
        s.set_write_timeout(Some(STEP))?;
        Ok(s)
    }

    /// A kernel listener on the kernel's address.
    pub fn kernel_listen(&self, port: u16) -> std::net::TcpListener {
        let addr = self.kernels(port);
        self.kernel(|| std::net::TcpListener::bind(addr))
            .expect("kernel listener")
    }

    /// A kernel client connected to our listener on `port`, accepted, with timeouts on both
    /// sides. The listener stays open as long as the returned one lives.
    pub fn kernel_client_pair(&self, port: u16) -> (TcpStream, std::net::TcpStream, TcpListener) {
        let l = TcpListener::bind(&self.stack, self.ours(port)).unwrap();
        let k = self.kernel_connect(self.ours(port)).unwrap();
        let (s, _) = l.accept_timeout(STEP).unwrap();
        s.set_read_timeout(Some(STEP)).unwrap();
        s.set_write_timeout(Some(STEP)).unwrap();
        (s, k, l)
    }

    /// Our client connected to a kernel listener on `port`, with timeouts on both sides.
    pub fn our_client_pair(&self, port: u16) -> (TcpStream, std::net::TcpStream) {
        let kl = self.kernel_listen(port);
        let s = TcpStream::connect_timeout(&self.stack, self.kernels(port), STEP).unwrap();
        let (k, _) = kernel_accept(&kl);
        s.set_read_timeout(Some(STEP)).unwrap();
        s.set_write_timeout(Some(STEP)).unwrap();
        (s, k)
    }

    /// The kernel's TCP sockets in the namespace, from `ss -tanH`.
    pub fn ss(&self) -> Vec<SsEntry> {
        let out = self.ns.exec("ss", &["-tanH"]).expect("run ss");
        assert!(out.status.success(), "ss failed: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(SsEntry::parse)
            .collect()
    }

    /// The kernel's state of the connection between `kernel` and `ours`, if it exists.
    pub fn kernel_state(&self, kernel: SocketAddr, ours: SocketAddr) -> Option<State> {
        self.ss()
            .into_iter()
            .find(|e| e.local == kernel && e.peer == ours)
            .map(|e| e.state)
    }

    /// Polls `ss` until the kernel's connection reaches `want` (`None`: is gone).
    pub fn wait_kernel_state(&self, kernel: SocketAddr, ours: SocketAddr, want: Option<State>) {
        let deadline = Instant::now() + STEP;
        loop {
            let got = self.kernel_state(kernel, ours);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kernel side of {kernel}-{ours}: wanted {want:?}, still {got:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Our endpoint's state of the connection with this 4-tuple (TIME_WAIT records included).
    pub fn our_state(&self, ours: SocketAddr, kernel: SocketAddr) -> Option<State> {
        self.stack
            .connections()
            .into_iter()
            .find(|c| c.tuple.local == ours && c.tuple.remote == kernel)
            .map(|c| c.state)
    }

    /// Waits until our side of the 4-tuple reaches `want` (`None`: is gone).
    pub fn wait_our_state(&self, ours: SocketAddr, kernel: SocketAddr, want: Option<State>) {
        let ok = self.stack.wait_until(STEP, |ep| {
            ep.connections()
                .into_iter()
                .find(|c| c.tuple.local == ours && c.tuple.remote == kernel)
                .map(|c| c.state)
                == want
        });
        assert!(
            ok,
            "our side of {ours}-{kernel}: wanted {want:?}, have {:?}",
            self.our_state(ours, kernel)
        );
    }

    /// The state changes our endpoint reported so far for connections with this remote.
    pub fn transitions(&self, kernel: SocketAddr) -> Vec<(State, State)> {
        let mut v = Vec::new();
        while let Ok(ev) = self.events.try_recv() {
            if let Event::StateChanged {
                tuple, from, to, ..
            } = ev
            {
                if tuple.remote == kernel {
                    v.push((from, to));
                }
            }
        }
        v
    }
}

#[derive(Debug, Clone)]
pub struct SsEntry {
    pub state: State,
    pub local: SocketAddr,
    pub peer: SocketAddr,
}

impl SsEntry {
    fn parse(line: &str) -> Option<SsEntry> {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 {
            return None;
        }
        Some(SsEntry {
            state: f[0].parse().ok()?,
            local: parse_ss_addr(f[3])?,
            peer: parse_ss_addr(f[4])?,
        })
    }
}

/// `10.77.0.1:5000`, `[fd77::1]:5000`; `*` ports (listeners' peers) do not parse.
fn parse_ss_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.rsplit_once(':')?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let ip = ip.split('%').next()?;
    Some(SocketAddr::new(
        ip.parse::<IpAddr>().ok()?,
        port.parse().ok()?,
    ))
}

/// One `read` of a kernel socket that retries EINTR: a blocking recv with SO_RCVTIMEO set
/// returns EINTR (not a restart) when the thread is interrupted, e.g. by a cgroup freeze.
pub fn kread(k: &std::net::TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let mut r = k;
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            res => return res,
        }
    }
}

/// Closes a kernel socket with SO_LINGER {on, 0}: the kernel sends RST.
pub fn kernel_reset(k: std::net::TcpStream) {
    socket2::SockRef::from(&k)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

/// `accept` on a kernel listener, bounded by [`STEP`] (a failed connect must not hang a test).
pub fn kernel_accept(l: &std::net::TcpListener) -> (std::net::TcpStream, SocketAddr) {
    l.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + STEP;
    loop {
        match l.accept() {
            Ok((s, peer)) => {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(STEP)).unwrap();
                s.set_write_timeout(Some(STEP)).unwrap();
                return (s, peer);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "the kernel listener got no connection"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("kernel accept: {e}"),
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift), different per `seed`.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Reads until end-of-stream, hashing as it goes; returns (bytes, digest).
pub fn drain_hash(mut r: impl Read) -> io::Result<(usize, [u8; 32])> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok((total, h.finalize().into()));
        }
        h.update(&buf[..n]);
        total += n;
    }
}

/// Reads exactly `len` bytes, hashing them.
pub fn read_hash(mut r: impl Read, len: usize) -> io::Result<[u8; 32]> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len());
        r.read_exact(&mut buf[..want])?;
        h.update(&buf[..want]);
        left -= want;
    }
    Ok(h.finalize().into())
}

pub fn write_all(mut w: impl Write, data: &[u8]) -> io::Result<()> {
    w.write_all(data)
}

pub const MIB: usize = 1024 * 1024;
