//! Who reads the TUN: the driver thread, or an application thread that would block anyway.
//!
//! The driver thread sleeps in `poll(2)` on the TUN descriptor and its eventfd, with the
//! endpoint's next deadline as the timeout; it fires timers and reads the TUN. Handing every
//! datagram from the driver to a blocked application thread costs two thread switches (the
//! driver's wakeup by the TUN, then the application's by a condition variable), which in
//! bulk transfers cost more than the engine's work. So an application thread about to block
//! on a connection (and not in non-blocking mode) polls the TUN itself instead — smoltcp's
//! and a kernel socket's model, where the thread that waits for data is the one woken by it.
//!
//! One thread at a time reads the TUN and feeds the endpoint (the batch arena is the token:
//! whoever took it out of [`Inner`] reads), so datagrams reach the endpoint in arrival order.
//! While an application thread polls, or did within the last [`LEASE_MS`], the driver leaves
//! the TUN alone (two threads in `poll` on it would both be woken by every datagram) and only
//! fires timers; it takes the TUN back once a whole lease passed without an application
//! poller. With a packet filter installed the driver alone reads (a filter that panics
//! must stop the stack, not the application thread that happened to run it).

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use crate::offload::RxOffload;
use crate::stack::{Key, Shared};
use crate::txq::Locked;

/// Datagrams read from the TUN per round before the endpoint's output is written.
pub(crate) const BATCH: usize = 64;

/// How long the driver stays off the TUN after an application thread polled it.
const LEASE_MS: i32 = 1;

/// Datagrams read from the TUN, waiting to be fed to the endpoint.
pub(crate) struct RxBatch {
    arena: Vec<u8>,
    lens: [usize; BATCH],
    offload: [RxOffload; BATCH],
    n: usize,
    /// Bytes per datagram slot.
    slot: usize,
}

impl RxBatch {
    pub(crate) fn new(mtu: u32, offloads: bool) -> Box<RxBatch> {
        // TUN reads truncate datagrams longer than the buffer; the kernel never sends more
        // than the MTU on a TUN without offloads, and at most 64 KiB with them (the IP
        // length field's limit; a TUN's `gso_max_size` is 64 KiB unless raised for BIG TCP).
        let slot = if offloads { 65535 } else { mtu as usize } + 64;
        Box::new(RxBatch {
            // Zeroed pages are mapped lazily: the 4 MiB of an offload arena cost only the
            // slots a burst fills.
            arena: vec![0u8; BATCH * slot],
            lens: [0; BATCH],
            offload: [RxOffload::default(); BATCH],
            n: 0,
            slot,
        })
    }

    /// Reads every queued datagram, up to [`BATCH`].
    fn fill(&mut self, dev: &crate::device::TunDevice) {
        self.n = 0;
        while self.n < BATCH {
            let (i, slot) = (self.n, self.slot);
            match dev.recv_offload(&mut self.arena[i * slot..(i + 1) * slot]) {
                Ok((len, offload)) => {
                    self.lens[i] = len;
                    self.offload[i] = offload;
                    self.n += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("tcpfsm-tun: reading the TUN failed: {e}");
                    break;
                }
            }
        }
    }
}

impl Shared {
    /// Reads a batch from the TUN without the lock and feeds it to the endpoint, unless
    /// another thread holds the batch (is reading). Returns whether the batch was full
    /// (more may be queued).
    fn receive(&self, g: &mut Locked<'_>) -> bool {
        let Some(mut rx) = g.rx.take() else {
            return false;
        };
        g.unlocked(|| rx.fill(&self.dev));
        let now = self.now();
        for i in 0..rx.n {
            let pkt = &rx.arena[i * rx.slot..i * rx.slot + rx.lens[i]];
            g.count_rx_offload(rx.offload[i]);
            g.input(now, pkt);
        }
        let full = rx.n == BATCH;
        rx.n = 0;
        g.rx = Some(rx);
        full
    }

    /// Instead of sleeping on `key`'s condition variable: polls the TUN (at most `left`),
    /// feeds what arrived to the endpoint and returns, so the caller retries its operation.
    /// `Err(g)` when this thread may not poll (another does, or a filter is installed): the
    /// caller sleeps on the condition variable as before.
    pub(crate) fn poll_inline<'a>(
        &'a self,
        mut g: Locked<'a>,
        key: Key,
        left: Option<Duration>,
    ) -> Result<Locked<'a>, Locked<'a>> {
        if g.app_poller.is_some() || g.rx.is_none() || g.has_filter() {
            return Err(g);
        }
        g.app_poller = Some(key);
        g.lease = g.lease.wrapping_add(1);
        let ms = left.map_or(-1, |d| {
            d.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
        });
        let tun = self.dev.as_raw_fd();
        let wake = self.app_wake.as_raw_fd();
        let ready = g.unlocked(|| poll2(tun, Some(wake), ms));
        g.app_poller = None;
        if ready.1 {
            drain_eventfd(wake);
        }
        if ready.0 {
            self.receive(&mut g);
            // As the driver does: events first (a connect's outcome is read from its slot).
            let now = self.now();
            g.pump(now);
        }
        Ok(g)
    }
}

/// Writes 1 to an eventfd, waking whoever polls it.
pub(crate) fn kick(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to an eventfd.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

fn drain_eventfd(fd: RawFd) {
    let mut v: u64 = 0;
    // SAFETY: reads 8 bytes into a live u64.
    unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
}

/// `poll(2)` on the TUN (`tun < 0`: not) and an eventfd: (TUN readable, eventfd readable).
fn poll2(tun: RawFd, wake: Option<RawFd>, timeout_ms: i32) -> (bool, bool) {
    let mut fds = [
        libc::pollfd {
            fd: tun,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: wake.unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: two valid pollfd entries (poll ignores negative descriptors).
    let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            eprintln!("tcpfsm-tun: poll failed: {e}");
            std::thread::sleep(Duration::from_millis(10));
        }
        return (false, false);
    }
    (
        fds[0].revents & (libc::POLLIN | libc::POLLERR) != 0,
        fds[1].revents & libc::POLLIN != 0,
    )
}

/// If the driver dies (a panicking packet filter or observer), sockets must fail instead of
/// waiting forever for a driver that is gone.
struct DriverGuard<'a>(&'a Shared);

impl Drop for DriverGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("tcpfsm-tun: the driver thread panicked; the stack is stopped");
            self.0.stop_all();
        }
    }
}

/// The driver thread's loop.
pub(crate) fn drive(shared: Arc<Shared>) {
    let tun_fd = shared.dev.as_raw_fd();
    let wake_fd = shared.wake.as_raw_fd();
    let _guard = DriverGuard(&shared);
    let mut tun_ready = false;
    let mut last_lease = 0u64;
    loop {
        let (timeout_ms, poll_tun) = {
            let mut g = shared.lock();
            if g.stopped {
                return;
            }
            // An application thread polls the TUN, or did within the last lease.
            let app_owns = g.app_poller.is_some() || g.lease != last_lease;
            last_lease = g.lease;
            let full = !app_owns && tun_ready && shared.receive(&mut g);
            let now = shared.now();
            g.ep.handle_timeout(now);
            g.pump(now);
            g.stats.wakeups += 1;
            let t = g.ep.poll_timeout();
            g.driver_deadline = t;
            if g.change_waiters > 0 {
                shared.any_change.notify_all();
            }
            let timeout = if full {
                0 // more may be queued: read again before sleeping
            } else {
                match t {
                    None => -1,
                    // Due timers were just handled: a deadline not in the future is stale.
                    Some(t) if t <= now => 1,
                    Some(t) => (t - now).as_micros().div_ceil(1000).min(i32::MAX as u128) as i32,
                }
            };
            if app_owns {
                let lease = if timeout < 0 {
                    LEASE_MS
                } else {
                    timeout.min(LEASE_MS)
                };
                (lease, false)
            } else {
                (timeout, true)
            }
        };
        let (t, w) = poll2(
            if poll_tun { tun_fd } else { -1 },
            Some(wake_fd),
            timeout_ms,
        );
        if w {
            drain_eventfd(wake_fd);
        }
        tun_ready = t;
    }
}
