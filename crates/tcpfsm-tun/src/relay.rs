//! A real-time relay of IP datagrams between two devices through the impairment engine.
//!
//! ```text
//!   device A ──read──▶ push(now) [up: A → B]   poll(now) ──write──▶ device B
//!   device A ◀─write── poll(now) [down: B → A] push(now) ◀──read─── device B
//! ```
//!
//! One thread sleeps in `ppoll(2)` on both devices and an eventfd, with the engine's next
//! deadline as a nanosecond timeout, reads every queued datagram into the engine, and writes
//! every datagram that is due. The engine ([`tcpfsm_impair`]) decides loss, queueing,
//! corruption, duplication, delay and reordering; the relay only moves bytes and keeps time,
//! so what happens on the wire is what the same seed gives in the simulator, save for the
//! timing noise of a real clock and scheduler.
//!
//! A device is anything that carries one datagram per `read`/`write`: a TUN device (the
//! kernel of its network namespace on the other side) or a `SOCK_SEQPACKET` socketpair end
//! ([`datagram_pair`], the seam that puts an impaired link between our stack and its TUN).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tcpfsm_impair::{ConfigError, Counters, Duplex, Impairment, Time};

use crate::device::TunDevice;

/// Datagrams read from one device per wakeup before the other is served.
const BATCH: usize = 64;

/// Which way a datagram crosses the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Way {
    /// From device A to device B.
    Up,
    /// From device B to device A.
    Down,
}

/// The link the relay imitates.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RelayConfig {
    /// A → B.
    pub up: Impairment,
    /// B → A.
    pub down: Impairment,
    /// Seed of both directions' random streams (up on stream 0, down on stream 1).
    pub seed: u64,
}

impl RelayConfig {
    pub fn new(up: Impairment, down: Impairment, seed: u64) -> RelayConfig {
        RelayConfig { up, down, seed }
    }
}

/// What the relay has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RelayStats {
    /// The engine's counters, per direction.
    pub up: Counters,
    pub down: Counters,
    /// Writes a device refused (full queue, device gone): the datagram is lost.
    pub write_errors: u64,
    /// Datagrams written later than due by more than 1 ms (the relay could not keep up).
    pub late: u64,
    /// The latest any datagram was written after it was due.
    pub max_lateness: Duration,
}

/// Sees every datagram as the relay reads it, before the engine impairs it (e.g. to count
/// retransmissions on the wire). Runs on the relay thread: keep it short.
pub type Tap = Box<dyn FnMut(Way, &[u8]) + Send>;

struct Shared {
    stop: AtomicBool,
    stats: Mutex<RelayStats>,
    wake: OwnedFd,
}

/// A running relay; dropping it stops the thread.
pub struct Relay {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the result is checked.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Two connected `SOCK_SEQPACKET` sockets: datagram boundaries kept, in order, no loss, and
/// (unlike `SOCK_DGRAM` socketpairs, capped at `net.unix.max_dgram_qlen` datagrams) buffered
/// up to the socket buffer, which is raised to 4 MiB.
pub fn datagram_pair(names: (&str, &str)) -> io::Result<(TunDevice, TunDevice)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and ours.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [&a, &b] {
        let size: libc::c_int = 4 << 20;
        for opt in [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF] {
            // SAFETY: an int option on a socket we own. FORCE needs CAP_NET_ADMIN; without it
            // the plain option still raises the buffer up to net.core.wmem_max.
            let r = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if r == 0 {
                break;
            }
        }
    }
    Ok((
        TunDevice::from_fd(a, names.0),
        TunDevice::from_fd(b, names.1),
    ))
}

impl Relay {
    /// Starts relaying between `a` and `b`: `cfg.up` impairs A → B, `cfg.down` B → A.
    pub fn start(a: TunDevice, b: TunDevice, cfg: RelayConfig) -> io::Result<Relay> {
        Relay::start_with_tap(a, b, cfg, None)
    }

    /// Like [`Relay::start`], with a [`Tap`] that sees every datagram read.
    pub fn start_with_tap(
        a: TunDevice,
        b: TunDevice,
        cfg: RelayConfig,
        tap: Option<Tap>,
    ) -> io::Result<Relay> {
        let duplex: Duplex = Duplex::new(cfg.up, cfg.down, cfg.seed).map_err(invalid)?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            stats: Mutex::new(RelayStats::default()),
            wake: eventfd()?,
        });
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tcpfsm-relay".into())
            .spawn(move || {
                let mut r = Running {
                    devs: [a, b],
                    closed: [false; 2],
                    duplex,
                    tap,
                    base: std::time::Instant::now(),
                    stats: RelayStats::default(),
                    buf: vec![0u8; 65536],
                };
                r.run(&s2);
            })?;
        Ok(Relay {
            shared,
            thread: Some(thread),
        })
    }

    /// Counters as of the relay's last wakeup.
    pub fn stats(&self) -> RelayStats {
        *self.shared.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the relay thread is still running.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the thread (also done on drop); packets still inside the link are dropped.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        kick(&self.shared.wake);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

fn invalid(e: ConfigError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

fn kick(fd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to our eventfd.
    unsafe {
        libc::write(
            fd.as_raw_fd(),
            (&one as *const u64).cast(),
            std::mem::size_of::<u64>(),
        )
    };
}

/// The relay thread's state.
struct Running {
    devs: [TunDevice; 2],
    /// A socketpair whose peer is gone reads end-of-file; it is no longer polled.
    closed: [bool; 2],
    duplex: Duplex,
    tap: Option<Tap>,
    base: std::time::Instant,
    stats: RelayStats,
    buf: Vec<u8>,
}

impl Running {
    fn now(&self) -> Time {
        Time::from_duration(self.base.elapsed())
    }

    fn run(&mut self, shared: &Shared) {
        while !shared.stop.load(Ordering::SeqCst) {
            let now = self.now();
            self.deliver(now);
            self.stats.up = self.duplex.up.counters();
            self.stats.down = self.duplex.down.counters();
            *shared.stats.lock().unwrap_or_else(|p| p.into_inner()) = self.stats;
            let timeout = self
                .duplex
                .next_deadline()
                .map(|t| t.saturating_since(self.now()));
            let ready = match wait(&self.devs, self.closed, &shared.wake, timeout) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("tcpfsm-relay: ppoll failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            if ready[2] {
                let mut v: u64 = 0;
                // SAFETY: reads 8 bytes into a live u64.
                unsafe {
                    libc::read(
                        shared.wake.as_raw_fd(),
                        (&mut v as *mut u64).cast(),
                        std::mem::size_of::<u64>(),
                    )
                };
            }
            for (side, way) in [(0, Way::Up), (1, Way::Down)] {
                if ready[side] {
                    self.read_side(side, way);
                }
            }
        }
    }

    /// Reads up to a batch of datagrams from one device into its direction of the link.
    fn read_side(&mut self, side: usize, way: Way) {
        for _ in 0..BATCH {
            match self.devs[side].recv(&mut self.buf) {
                Ok(0) => {
                    self.closed[side] = true;
                    break;
                }
                Ok(n) => {
                    let pkt = &self.buf[..n];
                    if let Some(tap) = self.tap.as_mut() {
                        tap(way, pkt);
                    }
                    let now = self.now();
                    let link = match way {
                        Way::Up => &mut self.duplex.up,
                        Way::Down => &mut self.duplex.down,
                    };
                    link.push(now, pkt.to_vec());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!(
                        "tcpfsm-relay: reading {} failed: {e}",
                        self.devs[side].name()
                    );
                    break;
                }
            }
        }
    }

    /// Writes every datagram due by `now` to the device at the far end of its direction.
    fn deliver(&mut self, now: Time) {
        for way in [Way::Up, Way::Down] {
            let (link, dev) = match way {
                Way::Up => (&mut self.duplex.up, &self.devs[1]),
                Way::Down => (&mut self.duplex.down, &self.devs[0]),
            };
            while let Some(d) = link.poll(now) {
                let late = now.saturating_since(d.due);
                if late > Duration::from_millis(1) {
                    self.stats.late += 1;
                }
                self.stats.max_lateness = self.stats.max_lateness.max(late);
                if dev.send(&d.packet).is_err() {
                    self.stats.write_errors += 1;
                }
            }
        }
    }
}

/// Waits until a device is readable, the eventfd is kicked, or `timeout` passes (`None`:
/// forever). Returns readiness of [A, B, eventfd].
fn wait(
    devs: &[TunDevice; 2],
    closed: [bool; 2],
    wake: &OwnedFd,
    timeout: Option<Duration>,
) -> io::Result<[bool; 3]> {
    let pfd = |fd: i32| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // A negative descriptor is skipped by ppoll.
    let dev = |i: usize| if closed[i] { -1 } else { devs[i].as_raw_fd() };
    let mut fds = [pfd(dev(0)), pfd(dev(1)), pfd(wake.as_raw_fd())];
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
    });
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: three valid pollfd entries; `tsp` is null or points to a live timespec.
    let r = unsafe { libc::ppoll(fds.as_mut_ptr(), 3, tsp, std::ptr::null()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok([false; 3]);
        }
        return Err(e);
    }
    // HUP too: the read that follows sees end-of-file and retires the device.
    let hit = |f: &libc::pollfd| f.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0;
    Ok([hit(&fds[0]), hit(&fds[1]), hit(&fds[2])])
}
