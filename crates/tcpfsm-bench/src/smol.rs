//! Every call into smoltcp lives here.
//!
//! Two `Interface`s, each with its own `SocketSet`, joined by an in-memory link whose frame
//! buffers are recycled (no allocation or zeroing per frame, like our side's reused frame
//! buffer). The virtual clock moves only when neither interface has anything to send: then
//! it jumps to the earlier `poll_at`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use anyhow::{bail, ensure, Context};
use smoltcp::iface::{Config as IfConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

use crate::bulk::{Params, Transfer};
use crate::lifecycle::Lifecycle;
use crate::memory::Creation;
use crate::pattern::{Pattern, Verify};
use crate::sys::{self, Timer};
use crate::tun::{self, Dir, Lab, Moved};

const CLIENT_IP: IpAddress = IpAddress::v4(10, 0, 0, 1);
const SERVER_IP: IpAddress = IpAddress::v4(10, 0, 0, 2);
const SERVER_PORT: u16 = 80;

/// Frames in flight each way, and the spare buffers.
#[derive(Default)]
struct Wire {
    /// Index 0: client to server; 1: server to client.
    queues: [VecDeque<(Vec<u8>, usize)>; 2],
    spare: Vec<Vec<u8>>,
    frames: u64,
}

/// One end of the link, as a smoltcp device.
struct Port {
    wire: Rc<RefCell<Wire>>,
    /// The queue this port transmits into (the other port receives from it).
    tx: usize,
    mtu: usize,
    checksums: bool,
}

struct RxToken {
    wire: Rc<RefCell<Wire>>,
    frame: Vec<u8>,
    len: usize,
}

struct TxToken {
    wire: Rc<RefCell<Wire>>,
    queue: usize,
    mtu: usize,
}

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let r = f(&self.frame[..self.len]);
        self.wire.borrow_mut().spare.push(self.frame);
        r
    }
}

impl phy::TxToken for TxToken {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let spare = self.wire.borrow_mut().spare.pop();
        let mut frame = spare.unwrap_or_else(|| vec![0; self.mtu.max(len)]);
        if frame.len() < len {
            frame.resize(len, 0);
        }
        let r = f(&mut frame[..len]);
        let mut w = self.wire.borrow_mut();
        w.queues[self.queue].push_back((frame, len));
        w.frames += 1;
        r
    }
}

impl Device for Port {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken;

    fn receive(&mut self, _: Instant) -> Option<(RxToken, TxToken)> {
        let (frame, len) = self.wire.borrow_mut().queues[1 - self.tx].pop_front()?;
        Some((
            RxToken {
                wire: self.wire.clone(),
                frame,
                len,
            },
            self.tx_token(),
        ))
    }

    fn transmit(&mut self, _: Instant) -> Option<TxToken> {
        Some(self.tx_token())
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = self.mtu;
        // The default computes and verifies every checksum in software.
        if !self.checksums {
            c.checksum = ChecksumCapabilities::ignored();
        }
        c
    }
}

impl Port {
    fn tx_token(&self) -> TxToken {
        TxToken {
            wire: self.wire.clone(),
            queue: self.tx,
            mtu: self.mtu,
        }
    }
}

/// One host: interface, device port and sockets.
struct Host {
    iface: Interface,
    port: Port,
    sockets: SocketSet<'static>,
}

impl Host {
    fn new(wire: &Rc<RefCell<Wire>>, tx: usize, ip: IpAddress, mtu: usize, csum: bool) -> Host {
        let mut port = Port {
            wire: wire.clone(),
            tx,
            mtu,
            checksums: csum,
        };
        let mut cfg = IfConfig::new(HardwareAddress::Ip);
        cfg.random_seed = 0x5eed + tx as u64;
        let mut iface = Interface::new(cfg, &mut port, Instant::ZERO);
        iface.update_ip_addrs(|a| a.push(IpCidr::new(ip, 24)).expect("one address"));
        Host {
            iface,
            port,
            sockets: SocketSet::new(vec![]),
        }
    }

    fn poll(&mut self, now: Instant) {
        self.iface.poll(now, &mut self.port, &mut self.sockets);
    }

    fn sock(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }
}

fn socket(buffer: usize) -> tcp::Socket<'static> {
    tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; buffer]),
        tcp::SocketBuffer::new(vec![0; buffer]),
    )
}

struct Pair {
    wire: Rc<RefCell<Wire>>,
    client: Host,
    server: Host,
    now: Instant,
}

impl Pair {
    fn new(mtu: usize, checksums: bool) -> Pair {
        let wire = Rc::new(RefCell::new(Wire::default()));
        Pair {
            client: Host::new(&wire, 0, CLIENT_IP, mtu, checksums),
            server: Host::new(&wire, 1, SERVER_IP, mtu, checksums),
            wire,
            now: Instant::from_micros(1),
        }
    }

    fn frames(&self) -> u64 {
        self.wire.borrow().frames
    }

    /// Polls both interfaces once; returns how many frames they sent.
    fn shuttle(&mut self) -> u64 {
        let before = self.frames();
        self.client.poll(self.now);
        self.server.poll(self.now);
        self.frames() - before
    }

    fn in_flight(&self) -> bool {
        self.wire.borrow().queues.iter().any(|q| !q.is_empty())
    }

    /// Polls until nothing is sent and nothing is in flight.
    fn settle(&mut self) {
        while self.shuttle() > 0 || self.in_flight() {}
    }

    /// Jumps the clock to the earlier interface deadline. `false` if there is none.
    fn jump(&mut self) -> bool {
        let a = self.client.iface.poll_at(self.now, &self.client.sockets);
        let b = self.server.iface.poll_at(self.now, &self.server.sockets);
        let next = match (a, b) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => return false,
            },
        };
        // poll_at may say "now" when a socket only waits for window; step the clock so the
        // jump always moves time.
        self.now = next.max(self.now + Duration::from_micros(1));
        self.shuttle();
        true
    }

    fn connect(&mut self, c: SocketHandle, s: SocketHandle, port: u16) -> anyhow::Result<()> {
        self.server.sock(s).listen(SERVER_PORT)?;
        let cx = self.client.iface.context();
        self.client.sockets.get_mut::<tcp::Socket>(c).connect(
            cx,
            (SERVER_IP, SERVER_PORT),
            port,
        )?;
        self.settle();
        ensure!(
            self.client.sock(c).state() == tcp::State::Established
                && self.server.sock(s).state() == tcp::State::Established,
            "handshake did not complete: {} / {}",
            self.client.sock(c).state(),
            self.server.sock(s).state()
        );
        Ok(())
    }
}

/// The zero-copy sending application: writes the stream straight into the socket's send
/// buffer until it is full or `total` bytes are queued. `true` if anything was queued.
fn app_send(
    s: &mut tcp::Socket<'_>,
    pattern: &Pattern,
    sent: &mut u64,
    total: u64,
) -> anyhow::Result<bool> {
    let mut progress = false;
    while *sent < total {
        let at = *sent;
        let n = s.send(|free| {
            let n = free.len().min((total - at) as usize).min(65536);
            free[..n].copy_from_slice(pattern.slice(at, n));
            (n, n)
        })?;
        if n == 0 {
            break;
        }
        *sent += n as u64;
        progress = true;
    }
    Ok(progress)
}

/// The zero-copy receiving application: checks the bytes where they lie in the receive
/// buffer and releases them. Returns (anything read, FIN seen).
fn app_recv(
    s: &mut tcp::Socket<'_>,
    verify: Verify,
    got: &mut u64,
) -> anyhow::Result<(bool, bool)> {
    let mut progress = false;
    loop {
        let at = *got;
        match s.recv(|data| (data.len(), verify.check(at, data).map(|()| data.len()))) {
            Ok(Ok(0)) => return Ok((progress, false)),
            Ok(Ok(n)) => {
                *got += n as u64;
                progress = true;
            }
            Ok(Err(e)) => return Err(e),
            Err(tcp::RecvError::Finished) => return Ok((progress, true)),
            Err(e) => bail!("recv: {e}"),
        }
    }
}

pub fn bulk(p: &Params) -> anyhow::Result<Transfer> {
    let mut pair = Pair::new(p.mtu, p.checksums);
    let c = pair.client.sockets.add(socket(p.buffer));
    let s = pair.server.sockets.add(socket(p.buffer));
    pair.connect(c, s, 49152)?;
    let pattern = Pattern::new(65536);
    let (mut sent, mut got) = (0u64, 0u64);
    let mut closed = false;
    let frames0 = pair.frames();
    let timer = Timer::start();
    loop {
        let mut progress = false;
        let cs = pair.client.sock(c);
        progress |= app_send(cs, &pattern, &mut sent, p.bytes)?;
        if sent == p.bytes && !closed {
            cs.close();
            closed = true;
        }
        let moved = pair.shuttle();
        let (got_some, eof) = app_recv(pair.server.sock(s), p.verify, &mut got)?;
        progress |= got_some;
        if eof {
            break;
        }
        if moved == 0 && !progress && !pair.in_flight() && !pair.jump() {
            bail!("transfer stalled at {got} of {} bytes", p.bytes);
        }
    }
    let (wall, cpu) = timer.stop();
    ensure!(got == p.bytes, "received {got} of {} bytes", p.bytes);
    Ok(Transfer {
        wall,
        cpu,
        segments: pair.frames() - frames0,
        note: None,
    })
}

/// Handshake, one byte each way, client closes first; with `expire`, time runs on until both
/// sockets are closed again (TIME_WAIT over).
fn one_connection(
    pair: &mut Pair,
    c: SocketHandle,
    s: SocketHandle,
    port: u16,
    expire: bool,
) -> anyhow::Result<()> {
    pair.connect(c, s, port)?;
    let mut b = [0u8; 16];
    pair.client.sock(c).send_slice(&[1])?;
    pair.settle();
    ensure!(
        pair.server.sock(s).recv_slice(&mut b)? == 1,
        "server got no byte"
    );
    pair.server.sock(s).send_slice(&[2])?;
    pair.settle();
    ensure!(
        pair.client.sock(c).recv_slice(&mut b)? == 1,
        "client got no byte"
    );
    pair.client.sock(c).close();
    pair.settle();
    ensure!(
        pair.server.sock(s).recv_slice(&mut b) == Err(tcp::RecvError::Finished),
        "server saw no FIN"
    );
    pair.server.sock(s).close();
    pair.settle();
    let closed = |pair: &mut Pair, h: SocketHandle, client: bool| {
        let host = if client {
            &mut pair.client
        } else {
            &mut pair.server
        };
        host.sock(h).state() == tcp::State::Closed
    };
    while !closed(pair, s, false) || (expire && !closed(pair, c, true)) {
        ensure!(pair.jump(), "connection never closed");
        pair.settle();
    }
    Ok(())
}

pub fn lifecycle(n: u64) -> anyhow::Result<Lifecycle> {
    let mut pair = Pair::new(1500, true);
    let c = pair.client.sockets.add(socket(65535));
    let s = pair.server.sockets.add(socket(65535));
    let timer = Timer::start();
    for i in 0..n {
        let port = 49152 + (i % 16384) as u16;
        one_connection(&mut pair, c, s, port, true).with_context(|| format!("connection {i}"))?;
    }
    let (wall, cpu) = timer.stop();
    Ok(Lifecycle {
        wall,
        cpu,
        segments: pair.frames(),
    })
}

/// `n` client sockets in TIME_WAIT, each made by a real handshake and close against its own
/// listening server socket, which is removed (freed) once closed. smoltcp keeps a TIME_WAIT
/// connection as its whole socket, buffers included. Returns the client host alone (the
/// server host is dropped), like the tcpfsm side.
pub fn fill_time_wait(n: u64, how: Creation) -> anyhow::Result<impl Sized> {
    ensure!(n <= 64_000, "smoltcp: one client address has 64,512 ports");
    let mut pair = Pair::new(1500, true);
    // smoltcp's TIME_WAIT lasts 10 s: spread over half of it.
    let step = Duration::from_micros((5_000_000 / n.max(1)).max(1));
    let mut held = Vec::with_capacity(n as usize);
    for i in 0..n {
        if how == Creation::Spread {
            pair.now += step;
            pair.shuttle();
        }
        let c = pair.client.sockets.add(socket(65535));
        let s = pair.server.sockets.add(socket(65535));
        one_connection(&mut pair, c, s, 1024 + i as u16, false)
            .with_context(|| format!("connection {i}"))?;
        pair.server.sockets.remove(s);
        held.push(c);
    }
    let tw = held
        .iter()
        .filter(|&&h| pair.client.sock(h).state() == tcp::State::TimeWait)
        .count() as u64;
    ensure!(tw == n, "{tw} of {n} sockets in TIME_WAIT");
    Ok((pair.client, held))
}

/// Bulk over TUN with smoltcp's own `TunTapInterface` on the lab's device (`from_fd` on a
/// duplicate of the descriptor the shared set-up opened), the interface and the zero-copy
/// application polled in this thread, sleeping in `phy::wait` while idle.
pub fn tun_bulk(lab: &Lab, p: &tun::Params) -> anyhow::Result<Moved> {
    let (dir, mtu, bytes, verify) = (p.dir, p.mtu, p.bytes, p.verify);
    use smoltcp::phy::TunTapInterface;
    use std::os::fd::AsRawFd;
    use std::time::Instant as WallClock;

    let dev = lab.open_device(mtu)?;
    // SAFETY: dup of a descriptor we hold open; smoltcp owns (and closes) the copy.
    let fd = unsafe { libc::dup(dev.as_raw_fd()) };
    ensure!(fd >= 0, "dup: {}", std::io::Error::last_os_error());
    let mut device = TunTapInterface::from_fd(fd, Medium::Ip, mtu as usize)?;
    let epoch = WallClock::now();
    let now = || Instant::from_micros(epoch.elapsed().as_micros() as i64);
    let mut cfg = IfConfig::new(HardwareAddress::Ip);
    cfg.random_seed = std::process::id() as u64;
    let mut iface = Interface::new(cfg, &mut device, now());
    let ip = lab.stack_ip();
    iface.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::from(ip), lab.addrs.prefix_v4))
            .expect("one address")
    });
    let mut sockets = SocketSet::new(vec![]);
    let h = sockets.add(socket(tun::BUFFER));
    let pattern = Pattern::new(65536);
    let (mut sent, mut got) = (0u64, 0u64);
    let mut closed = false;
    let cpu0 = sys::process_cpu_seconds();
    let peer = match dir {
        Dir::ToKernel => {
            let (addr, peer) = tun::kernel_receiver(lab, verify)?;
            let std::net::IpAddr::V4(k) = addr.ip() else {
                bail!("IPv4 only")
            };
            sockets.get_mut::<tcp::Socket>(h).connect(
                iface.context(),
                (IpAddress::from(k), tun::PORT),
                49152,
            )?;
            peer
        }
        Dir::FromKernel => {
            sockets.get_mut::<tcp::Socket>(h).listen(tun::PORT)?;
            let to = std::net::SocketAddr::new(ip.into(), tun::PORT);
            tun::kernel_sender(lab, to, bytes)
        }
    };
    let wait = |iface: &mut Interface, sockets: &SocketSet<'_>| {
        let delay = iface.poll_delay(now(), sockets);
        smoltcp::phy::wait(fd, delay.or(Some(Duration::from_millis(1))))
    };
    let mut t0: Option<WallClock> = None;
    let mut end: Option<WallClock> = None;
    while end.is_none() {
        ensure!(
            epoch.elapsed() < tun::DEADLINE,
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
                t0.get_or_insert_with(WallClock::now);
                progress = app_send(s, &pattern, &mut sent, bytes)?;
                if sent == bytes && !closed {
                    s.close();
                    closed = true;
                }
            }
            Dir::FromKernel if s.may_recv() || s.state() == tcp::State::CloseWait => {
                t0.get_or_insert_with(WallClock::now);
                let (got_some, fin) = app_recv(s, verify, &mut got)?;
                progress = got_some;
                if fin {
                    end = Some(WallClock::now());
                    s.close();
                }
            }
            _ => {}
        }
        if !progress {
            wait(&mut iface, &sockets)?;
        }
    }
    // Let the FIN/ACK exchange finish so the kernel peer sees EOF.
    let finish = WallClock::now();
    while finish.elapsed() < std::time::Duration::from_secs(2)
        && sockets.get::<tcp::Socket>(h).is_active()
    {
        iface.poll(now(), &mut device, &mut sockets);
        wait(&mut iface, &sockets)?;
    }
    let (n, kernel_end) = tun::join(peer)?;
    let cpu = sys::process_cpu_seconds() - cpu0;
    // Bytes as the receiving side counted them.
    let (n, end) = match dir {
        Dir::ToKernel => (n, kernel_end),
        Dir::FromKernel => (got, end.expect("the loop ends with it")),
    };
    let t0 = t0.ok_or_else(|| anyhow::anyhow!("never connected"))?;
    drop(dev);
    Ok(Moved {
        bytes: n,
        wall: (end - t0).as_secs_f64(),
        cpu,
    })
}

pub fn record_sizes() -> Vec<(&'static str, usize)> {
    vec![
        (
            "tcp::Socket (without buffers)",
            std::mem::size_of::<tcp::Socket>(),
        ),
        (
            "SocketSet slot",
            std::mem::size_of::<smoltcp::iface::SocketStorage>(),
        ),
    ]
}

/// What smoltcp's TIME_WAIT socket holds besides its struct: the two buffers the
/// application gave it (65,535 B each in this suite).
pub const BUFFERS_PER_SOCKET: usize = 2 * 65535;
