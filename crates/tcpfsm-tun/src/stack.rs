//! The stack's shared state: the endpoint behind one mutex, and who waits on what.
//!
//! The [`tcpfsm_core::Endpoint`] lives behind one mutex. The driver thread
//! ([`crate::driver`]) sleeps in `poll(2)` with the endpoint's next deadline as the timeout,
//! fires due timers, reads the TUN in batches (unless an application thread is polling it)
//! and hands the endpoint's events to the sockets waiting for them (condition variables for
//! blocking sockets, wakers for async ones).
//!
//! Application threads call the endpoint directly under the same lock; what their call
//! queued (a data segment after `send`, a window update after `recv`) is written to the TUN
//! when they release the lock ([`crate::txq`]), so a send costs no thread switch. A blocking
//! call that must wait polls the TUN itself when it may ([`crate::driver`]). If a call armed
//! a timer earlier than the one the driver sleeps towards, it kicks the driver's eventfd.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::thread::JoinHandle;

use tcpfsm_core::{
    Census, CloseReason, Config, ConnHandle, ConnInfo, Endpoint, Event, Instant, ListenerHandle,
    SocketHandle, State, Stats,
};
use tcpfsm_wire::{parse_ip_tcp, IpTcp};

use crate::device::{TunAddrs, TunDevice};
use crate::driver::{drive, kick, RxBatch};
use crate::txq::{Locked, TxQueue};

/// Which way a datagram crosses the TUN device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the kernel to our stack (read from the TUN).
    Inbound,
    /// From our stack to the kernel (written to the TUN).
    Outbound,
}

/// What a [`PacketFilter`] decides for one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Lose it, as a lossy link would.
    Drop,
}

/// One TCP datagram offered to the packet filter.
#[derive(Debug)]
pub struct Packet<'a> {
    pub direction: Direction,
    /// The whole IP datagram, e.g. to keep a copy and [`Stack::inject`] it later (a delay).
    pub datagram: &'a [u8],
    pub segment: IpTcp<'a>,
}

/// Decides the fate of every TCP datagram crossing the TUN (for loss tests). It runs on the
/// driver or an application thread with the stack's lock held, so it must not call the stack.
pub type PacketFilter = Box<dyn FnMut(&Packet<'_>) -> Verdict + Send>;

type Observer = Box<dyn FnMut(&Event) + Send>;

/// Counters of the driver itself (the endpoint's TCP counters are in [`Stack::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    /// Dropped by the packet filter.
    pub rx_filtered: u64,
    pub tx_filtered: u64,
    /// Not TCP (e.g. IPv6 router solicitations from the kernel): ignored.
    pub rx_ignored: u64,
    /// Writes the TUN refused; the segment counts as lost and TCP recovers it.
    pub tx_errors: u64,
    /// With offloads ([`StackConfig::offloads`]): writes that carried several of the
    /// engine's segments as one super-segment (their segments count in `tx_packets`).
    pub tx_super_segments: u64,
    /// With offloads: datagrams the kernel sent as TSO super-segments (counted once in
    /// `rx_packets`).
    pub rx_super_segments: u64,
    /// With offloads: datagrams whose partial checksum we completed before the engine
    /// verified them.
    pub rx_checksums_completed: u64,
    pub wakeups: u64,
}

/// How to build a [`Stack`].
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Interface name; empty lets the kernel choose (`tunN`).
    pub tun_name: String,
    /// Link MTU. Our MSS follows it: `mtu - 40` for IPv4 (the core takes 20 more off for IPv6).
    pub mtu: u32,
    pub addrs: TunAddrs,
    /// Create and configure the device inside this named network namespace (`ip netns`).
    pub netns: Option<String>,
    pub tcp: Config,
    /// Seed for ISNs, ports and timestamps offsets; random when `None`.
    pub seed: Option<u64>,
    /// Open the device with `IFF_VNET_HDR` offloads (default `true`): the kernel hands us
    /// its TSO super-segments whole and takes ours, one syscall and one trip through its
    /// TCP for up to 64 KiB instead of one per segment ([`TunDevice::open_with_offloads`]).
    /// On the wire nothing changes: segments are MSS-sized there. `false` gives one
    /// datagram per segment, like a TUN without offloads (smoltcp's `TunTapInterface`).
    pub offloads: bool,
}

impl Default for StackConfig {
    fn default() -> StackConfig {
        StackConfig {
            tun_name: String::new(),
            mtu: 1500,
            addrs: TunAddrs::default(),
            netns: None,
            tcp: Config::default(),
            seed: None,
            offloads: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Conn(ConnHandle),
    Listener(ListenerHandle),
}

/// Who waits on one connection or listener.
#[derive(Default)]
pub(crate) struct Slot {
    pub(crate) cv: Arc<Condvar>,
    /// Tasks waiting to read / to write (several may await `readable()` on one stream).
    read_wakers: Vec<Waker>,
    write_wakers: Vec<Waker>,
    pub(crate) closed: Option<CloseReason>,
    /// The handshake completed once (connect succeeded even if a reset follows at once).
    pub(crate) established: bool,
    /// Threads blocked on `cv`: a notify is a syscall, skipped when nobody waits.
    pub(crate) sleepers: u32,
    /// Wakeups gathered while draining a batch of events, delivered once per slot.
    pending_read: bool,
    pending_write: bool,
}

impl Slot {
    fn wake(&mut self, read: bool, write: bool) {
        if self.sleepers > 0 {
            self.cv.notify_all();
        }
        if read {
            self.read_wakers.drain(..).for_each(Waker::wake);
        }
        if write {
            self.write_wakers.drain(..).for_each(Waker::wake);
        }
    }
}

pub(crate) struct Inner {
    pub(crate) ep: Endpoint,
    pub(crate) slots: HashMap<Key, Slot>,
    filter: Option<PacketFilter>,
    observers: Vec<Observer>,
    /// Datagrams the endpoint emitted, written once the lock is released.
    pub(crate) txq: TxQueue,
    /// The deadline the driver sleeps towards (`None`: no timer).
    pub(crate) driver_deadline: Option<Instant>,
    pub(crate) stopped: bool,
    pub(crate) stats: DriverStats,
    /// Slots with pending wakeups (reused, no allocation per batch).
    dirty: Vec<Key>,
    /// Threads in [`Stack::wait_until`].
    pub(crate) change_waiters: u32,
    /// The TUN read batch; `None` while a thread reads into it (see [`crate::driver`]).
    pub(crate) rx: Option<Box<RxBatch>>,
    /// The slot of the application thread polling the TUN, if one does.
    pub(crate) app_poller: Option<Key>,
    /// Bumped each time an application thread starts polling the TUN.
    pub(crate) lease: u64,
    /// Shared's `app_wake`, to wake the polling application thread.
    pub(crate) app_wake_fd: RawFd,
}

impl Inner {
    /// Hands one datagram read from the TUN to the endpoint.
    pub(crate) fn input(&mut self, now: Instant, pkt: &[u8]) {
        if !is_tcp(pkt) {
            self.stats.rx_ignored += 1;
            return;
        }
        self.stats.rx_packets += 1;
        if let Some(f) = self.filter.as_mut() {
            if let Ok(segment) = parse_ip_tcp(pkt) {
                let p = Packet {
                    direction: Direction::Inbound,
                    datagram: pkt,
                    segment,
                };
                if f(&p) == Verdict::Drop {
                    self.stats.rx_filtered += 1;
                    return;
                }
            }
        }
        self.ep.handle_packet(now, pkt);
    }

    /// Queues everything the endpoint wants to send (written when the lock is released, see
    /// [`crate::txq`]), then dispatches its events.
    pub(crate) fn pump(&mut self, now: Instant) {
        loop {
            let mut buf = self.txq.take_buf();
            let Some(tx) = self.ep.poll_transmit(now, &mut buf) else {
                self.txq.give_back(buf);
                break;
            };
            let pkt = &buf[..tx.len];
            if let Some(f) = self.filter.as_mut() {
                if let Ok(segment) = parse_ip_tcp(pkt) {
                    let p = Packet {
                        direction: Direction::Outbound,
                        datagram: pkt,
                        segment,
                    };
                    if f(&p) == Verdict::Drop {
                        self.stats.tx_filtered += 1;
                        self.txq.give_back(buf);
                        continue;
                    }
                }
            }
            self.txq.push(buf, tx.len);
        }
        while let Some(ev) = self.ep.poll_event() {
            for o in &mut self.observers {
                o(&ev);
            }
            match ev {
                Event::StateChanged {
                    socket: SocketHandle::Conn(conn),
                    to,
                    ..
                } => {
                    if to == State::Established {
                        if let Some(s) = self.slots.get_mut(&Key::Conn(conn)) {
                            s.established = true;
                        }
                    }
                    self.mark(Key::Conn(conn), true, true);
                }
                Event::Acceptable { listener, .. } => {
                    self.mark(Key::Listener(listener), true, false)
                }
                Event::Readable { conn } => self.mark(Key::Conn(conn), true, false),
                Event::Writable { conn } => self.mark(Key::Conn(conn), false, true),
                Event::Closed { conn, reason } => {
                    if let Some(s) = self.slots.get_mut(&Key::Conn(conn)) {
                        s.closed = Some(reason);
                    }
                    self.mark(Key::Conn(conn), true, true);
                }
                // Listener state changes: nobody blocks on them.
                _ => {}
            }
        }
        // One wakeup per slot per batch, however many segments it got.
        for key in self.dirty.drain(..) {
            if self.app_poller == Some(key) {
                kick(self.app_wake_fd);
            }
            if let Some(s) = self.slots.get_mut(&key) {
                let (r, w) = (s.pending_read, s.pending_write);
                s.pending_read = false;
                s.pending_write = false;
                s.wake(r, w);
            }
        }
    }

    pub(crate) fn has_filter(&self) -> bool {
        self.filter.is_some()
    }

    /// What a batch of TUN writes gave.
    pub(crate) fn count_tx(&mut self, sent: u64, failed: u64, super_segments: u64) {
        self.stats.tx_packets += sent;
        self.stats.tx_errors += failed;
        self.stats.tx_super_segments += super_segments;
    }

    /// What the device's offloads did to a datagram read from the TUN.
    pub(crate) fn count_rx_offload(&mut self, o: crate::offload::RxOffload) {
        self.stats.rx_super_segments += o.gso as u64;
        self.stats.rx_checksums_completed += o.completed as u64;
    }

    fn mark(&mut self, key: Key, read: bool, write: bool) {
        if let Some(s) = self.slots.get_mut(&key) {
            if !s.pending_read && !s.pending_write {
                self.dirty.push(key);
            }
            s.pending_read |= read;
            s.pending_write |= write;
        }
    }
}

/// Only TCP reaches the endpoint; the kernel also sends e.g. IPv6 router solicitations.
fn is_tcp(pkt: &[u8]) -> bool {
    match pkt.first().map(|b| b >> 4) {
        Some(4) => pkt.len() >= 20 && pkt[9] == libc::IPPROTO_TCP as u8,
        Some(6) => pkt.len() >= 40 && pkt[6] == libc::IPPROTO_TCP as u8,
        _ => false,
    }
}

pub(crate) struct Shared {
    inner: Mutex<Inner>,
    /// Notified on every state change, for [`Stack::wait_until`].
    pub(crate) any_change: Condvar,
    pub(crate) dev: TunDevice,
    /// Wakes the driver (a timer now due earlier, or stop).
    pub(crate) wake: OwnedFd,
    /// Wakes the application thread polling the TUN (its slot's event, or stop).
    pub(crate) app_wake: OwnedFd,
    base: std::time::Instant,
    pub(crate) addrs: TunAddrs,
}

impl Shared {
    pub(crate) fn now(&self) -> Instant {
        Instant::from_micros(self.base.elapsed().as_micros() as u64)
    }

    /// The endpoint's lock; releasing it writes out the datagrams queued meanwhile.
    pub(crate) fn lock(&self) -> Locked<'_> {
        Locked::new(self, self.lock_raw())
    }

    pub(crate) fn lock_raw(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere (e.g. in a packet filter) must not wedge every socket.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn kick(&self) {
        kick(self.wake.as_raw_fd());
    }

    /// Stops the stack: every blocked socket call fails with `NotConnected`.
    pub(crate) fn stop_all(&self) {
        let mut g = self.lock();
        g.stopped = true;
        for s in g.slots.values_mut() {
            s.wake(true, true);
        }
        drop(g);
        self.any_change.notify_all();
        self.kick();
        kick(self.app_wake.as_raw_fd());
    }

    /// Prepares an application call: brings the endpoint's clock up to now (firing any timer
    /// already due), so the call sees the present.
    pub(crate) fn begin(&self, g: &mut Inner) -> io::Result<Instant> {
        if g.stopped {
            return Err(stopped());
        }
        let now = self.now();
        g.ep.handle_timeout(now);
        Ok(now)
    }

    /// Finishes an application call: queues what it sends, wakes whoever it concerns, and
    /// wakes the driver if a timer is now due earlier than the one it sleeps towards.
    pub(crate) fn finish(&self, g: &mut Inner, now: Instant) {
        g.pump(now);
        if let Some(t) = g.ep.poll_timeout() {
            if g.driver_deadline.is_none_or(|d| t < d) {
                g.driver_deadline = Some(t);
                self.kick();
            }
        }
        if g.change_waiters > 0 {
            self.any_change.notify_all();
        }
    }

    /// Runs `op` until it yields a result, sleeping on `key`'s condition variable in between.
    /// `None` when `deadline` passed first.
    pub(crate) fn block_on<T>(
        &self,
        key: Key,
        deadline: Option<std::time::Instant>,
        mut op: impl FnMut(&mut Inner, Instant) -> Option<io::Result<T>>,
    ) -> Option<io::Result<T>> {
        let mut g = self.lock();
        loop {
            let now = match self.begin(&mut g) {
                Ok(n) => n,
                Err(e) => return Some(Err(e)),
            };
            let r = op(&mut g, now);
            self.finish(&mut g, now);
            if let Some(r) = r {
                return Some(r);
            }
            let left = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    Some(left)
                }
            };
            // What we queued goes out before we sleep. Writing releases the lock, so a wakeup
            // meant for us may have come and gone meanwhile: look again before sleeping.
            if g.flush() {
                continue;
            }
            // Poll the TUN ourselves rather than be woken by the driver, when we may.
            match self.poll_inline(g, key, left) {
                Ok(back) => {
                    g = back;
                    continue;
                }
                Err(back) => g = back,
            }
            let slot = g.slots.entry(key).or_default();
            slot.sleepers += 1;
            let cv = slot.cv.clone();
            let guard = g.into_guard();
            g = Locked::new(
                self,
                match left {
                    None => cv.wait(guard).unwrap_or_else(|p| p.into_inner()),
                    Some(left) => {
                        cv.wait_timeout(guard, left)
                            .unwrap_or_else(|p| p.into_inner())
                            .0
                    }
                },
            );
            if let Some(slot) = g.slots.get_mut(&key) {
                slot.sleepers -= 1;
            }
        }
    }

    /// The async counterpart of [`Shared::block_on`]: one attempt, registering `waker` (as a
    /// reader or a writer) when it must wait.
    #[cfg(feature = "tokio")]
    pub(crate) fn poll_op<T>(
        &self,
        key: Key,
        waker: &Waker,
        as_reader: bool,
        op: impl FnOnce(&mut Inner, Instant) -> Option<io::Result<T>>,
    ) -> std::task::Poll<io::Result<T>> {
        let mut g = self.lock();
        let now = match self.begin(&mut g) {
            Ok(n) => n,
            Err(e) => return std::task::Poll::Ready(Err(e)),
        };
        let r = op(&mut g, now);
        self.finish(&mut g, now);
        match r {
            Some(r) => std::task::Poll::Ready(r),
            None => {
                let slot = g.slots.entry(key).or_default();
                let ws = if as_reader {
                    &mut slot.read_wakers
                } else {
                    &mut slot.write_wakers
                };
                if !ws.iter().any(|w| w.will_wake(waker)) {
                    ws.push(waker.clone());
                }
                std::task::Poll::Pending
            }
        }
    }

    /// Releases a handle's slot (the connection itself is closed by the caller).
    pub(crate) fn forget(&self, g: &mut Inner, key: Key) {
        g.slots.remove(&key);
    }
}

pub(crate) fn stopped() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the tcpfsm stack was stopped")
}

/// Our TCP running over a TUN device, with its driver thread. Sockets are made from it with
/// [`crate::TcpListener::bind`] and [`crate::TcpStream::connect`]. Dropping it stops the
/// driver; connections still open are then abandoned without FIN or RST.
pub struct Stack {
    pub(crate) shared: Arc<Shared>,
    driver: Option<JoinHandle<()>>,
    mtu: u32,
}

impl Stack {
    /// Opens and configures the TUN device (inside `cfg.netns` if set) and starts the driver.
    pub fn new(cfg: StackConfig) -> io::Result<Stack> {
        let dev = open_device(&cfg)?;
        let (tcp, seed) = tcp_config(&cfg);
        Stack::with_device(dev, cfg.mtu, cfg.addrs, tcp, seed)
    }

    /// Starts the driver on an already configured device. `addrs` tells which addresses are
    /// ours (`stack_*`) and the kernel's (`host_*`).
    pub fn with_device(
        dev: TunDevice,
        mtu: u32,
        addrs: TunAddrs,
        tcp: Config,
        seed: u64,
    ) -> io::Result<Stack> {
        // SAFETY: plain syscall; the descriptor is checked before use.
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        let wake = unsafe { OwnedFd::from_raw_fd(efd) };
        let app_wake = new_eventfd()?;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                ep: Endpoint::new(tcp, seed),
                slots: HashMap::new(),
                filter: None,
                observers: Vec::new(),
                txq: TxQueue::new(mtu),
                driver_deadline: None,
                stopped: false,
                stats: DriverStats::default(),
                dirty: Vec::new(),
                change_waiters: 0,
                rx: Some(RxBatch::new(mtu, dev.offloads())),
                app_poller: None,
                lease: 0,
                app_wake_fd: app_wake.as_raw_fd(),
            }),
            any_change: Condvar::new(),
            dev,
            wake,
            app_wake,
            base: std::time::Instant::now(),
            addrs,
        });
        let s2 = shared.clone();
        let driver = std::thread::Builder::new()
            .name("tcpfsm-tun-driver".into())
            .spawn(move || drive(s2))?;
        Ok(Stack {
            shared,
            driver: Some(driver),
            mtu,
        })
    }

    pub fn device_name(&self) -> &str {
        self.shared.dev.name()
    }

    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    pub fn addrs(&self) -> &TunAddrs {
        &self.shared.addrs
    }

    /// Our address of the given family, if the stack has one.
    pub fn local_ip(&self, v6: bool) -> Option<IpAddr> {
        local_ip(&self.shared.addrs, v6)
    }

    /// The kernel's address on the TUN link, of the given family.
    pub fn host_ip(&self, v6: bool) -> Option<IpAddr> {
        let a = &self.shared.addrs;
        if v6 {
            a.host_v6.map(IpAddr::V6)
        } else {
            a.host_v4.map(IpAddr::V4)
        }
    }

    /// Installs (replacing any previous) the filter every TCP datagram crossing the TUN goes
    /// through.
    ///
    /// The filter sees segments as the wire carries them: while one is installed the kernel
    /// is asked for no receive offloads (it sends MSS-sized segments with full checksums, not
    /// super-segments), and ours are filtered one by one before they are merged.
    pub fn set_packet_filter(&self, f: impl FnMut(&Packet<'_>) -> Verdict + Send + 'static) {
        let mut g = self.shared.lock();
        g.filter = Some(Box::new(f));
        self.shared.dev.set_rx_offloads(false);
    }

    pub fn clear_packet_filter(&self) {
        let mut g = self.shared.lock();
        g.filter = None;
        self.shared.dev.set_rx_offloads(true);
    }

    /// Calls `f` with every event of the endpoint (state changes of every connection
    /// included), as it happens. `f` runs with the stack's lock held: it must not call the
    /// stack (send to a channel instead).
    pub fn subscribe(&self, f: impl FnMut(&Event) + Send + 'static) {
        self.shared.lock().observers.push(Box::new(f));
    }

    /// Hands a datagram to the endpoint as if it had been read from the TUN (bypassing the
    /// filter): with a filter that keeps a copy of what it drops, this delays a segment.
    pub fn inject(&self, datagram: &[u8]) -> io::Result<()> {
        let sh = &self.shared;
        let mut g = sh.lock();
        let now = sh.begin(&mut g)?;
        g.ep.handle_packet(now, datagram);
        sh.finish(&mut g, now);
        Ok(())
    }

    /// The endpoint's configuration (for default socket options).
    pub fn config(&self) -> Config {
        self.shared.lock().ep.config().clone()
    }

    pub fn census(&self) -> Census {
        self.shared.lock().ep.census()
    }

    pub fn stats(&self) -> Stats {
        *self.shared.lock().ep.stats()
    }

    pub fn driver_stats(&self) -> DriverStats {
        self.shared.lock().stats
    }

    /// Every connection the endpoint knows (TIME_WAIT records and half-open ones included).
    pub fn connections(&self) -> Vec<ConnInfo> {
        self.shared.lock().ep.connections()
    }

    /// Waits until `pred` holds for the endpoint (re-checked after every change), at most
    /// `timeout`. Returns whether it held.
    pub fn wait_until(
        &self,
        timeout: std::time::Duration,
        mut pred: impl FnMut(&Endpoint) -> bool,
    ) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut g = self.shared.lock();
        loop {
            if pred(&g.ep) {
                return true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() || g.stopped {
                return false;
            }
            // The driver notifies after each wakeup; a short cap also covers time-only changes.
            let step = left.min(std::time::Duration::from_millis(50));
            if g.flush() {
                continue; // the lock was released: look again
            }
            g.change_waiters += 1;
            let guard = self
                .shared
                .any_change
                .wait_timeout(g.into_guard(), step)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            g = Locked::new(&self.shared, guard);
            g.change_waiters -= 1;
        }
    }

    /// Stops the driver now (also done on drop).
    pub fn stop(&mut self) {
        self.shared.stop_all();
        if let Some(h) = self.driver.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Opens and configures the TUN device `cfg` describes (inside `cfg.netns` if set).
pub(crate) fn open_device(cfg: &StackConfig) -> io::Result<TunDevice> {
    if !(576..=65535).contains(&cfg.mtu) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("MTU {} out of range 576..=65535", cfg.mtu),
        ));
    }
    let open = || -> io::Result<TunDevice> {
        let dev = if cfg.offloads {
            TunDevice::open_with_offloads(&cfg.tun_name)?
        } else {
            TunDevice::open(&cfg.tun_name)?
        };
        dev.configure(cfg.mtu, &cfg.addrs)?;
        Ok(dev)
    };
    match &cfg.netns {
        Some(ns) => crate::netns::run_in(ns, open)?,
        None => open(),
    }
}

/// The endpoint's configuration (MSS from the MTU) and seed (random unless set).
pub(crate) fn tcp_config(cfg: &StackConfig) -> (Config, u64) {
    let mut tcp = cfg.tcp.clone();
    tcp.mss = (cfg.mtu - 40).min(u16::MAX as u32) as u16;
    let seed = cfg.seed.unwrap_or_else(|| {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(std::process::id() as u64);
        h.finish()
    });
    (tcp, seed)
}

pub(crate) fn local_ip(a: &TunAddrs, v6: bool) -> Option<IpAddr> {
    if v6 {
        a.stack_v6.map(IpAddr::V6)
    } else {
        a.stack_v4.map(IpAddr::V4)
    }
}

fn new_eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the descriptor is checked before use.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
