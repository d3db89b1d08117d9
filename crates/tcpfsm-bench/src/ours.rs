//! Every call into tcpfsm's engine lives here, so following an API change touches one file.
//!
//! Two `Endpoint`s, a client and a server, in one thread; datagrams go from one's
//! `poll_transmit` straight into the other's `handle_packet` (no queue, no copy beyond the
//! frame buffer). A virtual clock moves only when neither endpoint has anything to send: then
//! it jumps to the earliest deadline.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use anyhow::{anyhow, bail, ensure, Context};
use tcpfsm_core::{Config, ConnHandle, Duration, Endpoint, Instant, ListenerHandle, State};

use crate::bulk::{Params, Transfer};
use crate::lifecycle::Lifecycle;
use crate::memory::Creation;
use crate::pattern::{Pattern, Verify};
use crate::sys::{self, Timer};
use crate::tun::{self, Dir, Lab, Moved};

const SERVER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80));
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn config(mtu: usize, buffer: usize) -> Config {
    Config {
        mss: (mtu - 40) as u16,
        recv_buffer: buffer,
        send_buffer: buffer,
        ..Config::default()
    }
}

/// Both endpoints and the link between them.
struct Pair {
    client: Endpoint,
    server: Endpoint,
    now: Instant,
    frame: Vec<u8>,
    segments: u64,
}

impl Pair {
    fn new(cfg: Config) -> Pair {
        Pair {
            client: Endpoint::new(cfg.clone(), 1),
            server: Endpoint::new(cfg, 2),
            now: Instant::from_micros(1),
            frame: Vec::with_capacity(65536),
            segments: 0,
        }
    }

    /// Moves every pending datagram both ways once; returns how many moved.
    fn shuttle(&mut self) -> u64 {
        let mut n = 0;
        let now = self.now;
        while let Some(tx) = self.client.poll_transmit(now, &mut self.frame) {
            self.server.handle_packet(now, &self.frame[..tx.len]);
            n += 1;
        }
        while let Some(tx) = self.server.poll_transmit(now, &mut self.frame) {
            self.client.handle_packet(now, &self.frame[..tx.len]);
            n += 1;
        }
        // A driver reads events; leaving them queued would grow memory without bound.
        while self.client.poll_event().is_some() {}
        while self.server.poll_event().is_some() {}
        self.segments += n;
        n
    }

    /// Shuttles until neither side sends.
    fn settle(&mut self) {
        while self.shuttle() > 0 {}
    }

    /// Jumps the clock to the earliest deadline and fires it. `false` if there is none.
    fn jump(&mut self) -> bool {
        let next = match (self.client.poll_timeout(), self.server.poll_timeout()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => return false,
            },
        };
        self.now = self.now.max(next);
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
        true
    }

    fn connect(
        &mut self,
        local: SocketAddr,
        l: ListenerHandle,
    ) -> anyhow::Result<(ConnHandle, ConnHandle)> {
        let c = self.client.connect(self.now, local, SERVER)?;
        self.settle();
        let s = self
            .server
            .accept(self.now, l)?
            .ok_or_else(|| anyhow!("handshake did not complete: nothing to accept"))?;
        ensure!(self.client.state(c) == Some(State::Established));
        Ok((c, s))
    }
}

/// `Ok(Err(reason))` when the engine cannot run this variant.
pub fn bulk(p: &Params) -> anyhow::Result<Result<Transfer, String>> {
    let mut cfg = config(p.mtu, p.buffer);
    if !p.checksums {
        // As smoltcp's `ChecksumCapabilities::ignored()`: neither computed nor verified.
        cfg.checksum_offload = tcpfsm_core::ChecksumOffload::ALL;
    }
    let mut pair = Pair::new(cfg);
    let l = pair.server.listen(pair.now, SERVER, 16)?;
    let (c, s) = pair.connect(SocketAddr::new(CLIENT.into(), 0), l)?;
    let pattern = Pattern::new(65536);
    let (mut sent, mut got) = (0u64, 0u64);
    let mut closed = false;
    let timer = Timer::start();
    loop {
        let mut progress = false;
        while sent < p.bytes {
            // Zero-copy: the application writes straight into the send buffer.
            let n = pair.client.send_with(pair.now, c, |free| {
                let n = free.len().min((p.bytes - sent) as usize).min(65536);
                free[..n].copy_from_slice(pattern.slice(sent, n));
                n
            })?;
            if n == 0 {
                break;
            }
            sent += n as u64;
            progress = true;
        }
        if sent == p.bytes && !closed {
            // FIN right behind the last byte.
            pair.client.close(pair.now, c)?;
            closed = true;
        }
        let moved = pair.shuttle();
        let mut eof = false;
        loop {
            // Zero-copy: the application reads the bytes where they lie.
            let mut bad = None;
            let at = got;
            match pair.server.recv_with(pair.now, s, |data| {
                bad = p.verify.check(at, data).err();
                data.len()
            })? {
                Some(0) => {
                    eof = true;
                    break;
                }
                Some(n) => {
                    if let Some(e) = bad {
                        return Err(e);
                    }
                    got += n as u64;
                    progress = true;
                }
                None => break,
            }
        }
        if eof {
            break;
        }
        if moved == 0 && !progress && !pair.jump() {
            bail!("transfer stalled at {got} of {} bytes", p.bytes);
        }
    }
    let (wall, cpu) = timer.stop();
    ensure!(got == p.bytes, "received {got} of {} bytes", p.bytes);
    Ok(Ok(Transfer {
        wall,
        cpu,
        segments: pair.segments,
        note: None,
    }))
}

/// One connection's whole life, from `connect` to the end of TIME_WAIT (or, with
/// `expire == false`, into TIME_WAIT): handshake, one byte each way, client closes first.
fn one_connection(
    pair: &mut Pair,
    l: ListenerHandle,
    local: SocketAddr,
    expire: bool,
) -> anyhow::Result<()> {
    let (c, s) = pair.connect(local, l)?;
    let mut b = [0u8; 16];
    let now = pair.now;
    pair.client.send(now, c, &[1])?;
    pair.settle();
    ensure!(
        pair.server.recv(now, s, &mut b)? == Some(1),
        "server got no byte"
    );
    pair.server.send(now, s, &[2])?;
    pair.settle();
    ensure!(
        pair.client.recv(now, c, &mut b)? == Some(1),
        "client got no byte"
    );
    pair.client.close(now, c)?;
    pair.settle();
    ensure!(
        pair.server.recv(now, s, &mut b)? == Some(0),
        "server saw no FIN"
    );
    pair.server.close(now, s)?;
    pair.settle();
    if expire {
        // The virtual clock jumps through the remaining deadlines (delayed ACK, TIME_WAIT).
        while pair.client.census().get(State::TimeWait) > 0 || pair.server.census().total() > 1 {
            ensure!(pair.jump(), "connection never left TIME_WAIT");
            pair.settle();
        }
    }
    Ok(())
}

pub fn lifecycle(n: u64) -> anyhow::Result<Lifecycle> {
    let mut pair = Pair::new(config(1500, 65535));
    let l = pair.server.listen(pair.now, SERVER, 1024)?;
    let local = SocketAddr::new(CLIENT.into(), 0);
    let timer = Timer::start();
    for i in 0..n {
        one_connection(&mut pair, l, local, true).with_context(|| format!("connection {i}"))?;
    }
    let (wall, cpu) = timer.stop();
    ensure!(pair.client.connections().is_empty() && pair.server.census().total() == 1);
    Ok(Lifecycle {
        wall,
        cpu,
        segments: pair.segments,
    })
}

/// Holds `n` connections in TIME_WAIT in the client endpoint, made through real handshakes
/// and closes. Returns that endpoint alone: the server is dropped, so resident memory is
/// the one endpoint's (its large tables are separate mappings, returned to the OS on free).
pub fn fill_time_wait(n: u64, how: Creation) -> anyhow::Result<impl Sized> {
    let mut cfg = config(1500, 65535);
    cfg.max_tw_buckets = u32::try_from(n + 1).context("too many connections")?;
    cfg.ephemeral_ports = (1024, 65535);
    let mut pair = Pair::new(cfg);
    let l = pair.server.listen(pair.now, SERVER, 1024)?;
    // Spread over half the TIME_WAIT interval, so none expires before all exist.
    let tw = Config::default().time_wait_duration();
    let step = Duration::from_micros((tw.as_micros() as u64 / 2 / n.max(1)).max(1));
    for i in 0..n {
        // 60,000 connections per client address: the port range is 64,512 wide.
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 1, 0, 0)) + (i / 60_000) as u32);
        if how == Creation::Spread {
            pair.now += step;
            pair.client.handle_timeout(pair.now);
            pair.server.handle_timeout(pair.now);
        }
        one_connection(&mut pair, l, SocketAddr::new(ip.into(), 0), false)
            .with_context(|| format!("connection {i}"))?;
    }
    let held = pair.client.census().get(State::TimeWait);
    ensure!(held == n, "{held} of {n} connections in TIME_WAIT");
    Ok(pair.client)
}

/// `size_of` of the per-connection records, from the engine itself.
pub fn record_sizes() -> Vec<(&'static str, usize)> {
    let m = tcpfsm_core::memory_footprint();
    vec![
        ("connection (without buffers)", m.conn),
        ("TIME_WAIT record with its key", m.time_wait_record),
        (
            "TIME_WAIT table overhead per record (index + expiry)",
            m.time_wait_overhead,
        ),
        ("half-open entry with its key and slot", m.half_open),
        ("timer queue entry", m.timer_entry),
    ]
}

pub fn tun_note(offloads: bool) -> &'static str {
    if offloads {
        "blocking TcpStream: write copies in, read_with checks in place; stack on its driver \
         thread; TUN offloads (IFF_VNET_HDR: super-segments both ways)"
    } else {
        "blocking TcpStream: write copies in, read_with checks in place; stack on its driver \
         thread; no TUN offloads (one segment per datagram, as smoltcp)"
    }
}

/// Reads to end of stream with the zero-copy `TcpStream::read_with`, checking each run where
/// it lies in the receive buffer, as smoltcp's adapter does in its `recv` closure.
fn read_stream_in_place(s: &tcpfsm_tun::TcpStream, verify: Verify) -> anyhow::Result<u64> {
    let mut n = 0u64;
    loop {
        let at = n;
        match s.read_with(|run| (run.len(), verify.check(at, run).map(|()| run.len())))? {
            Some(took) => n += took? as u64,
            None => return Ok(n),
        }
    }
}

/// Bulk over TUN through tcpfsm-tun: its `Stack` (driver thread) on the lab's device, the
/// application on this thread with the blocking `TcpStream`.
pub fn tun_bulk(lab: &Lab, p: &tun::Params) -> anyhow::Result<Moved> {
    let (dir, mtu, bytes, verify) = (p.dir, p.mtu, p.bytes, p.verify);
    use std::net::Shutdown;
    use std::time::{Duration as StdDuration, Instant as WallClock};
    use tcpfsm_tun::{Stack, StackConfig, TcpListener, TcpStream};
    let stack = Stack::new(StackConfig {
        tun_name: lab.tun_name.clone(),
        netns: Some(lab.ns.name().to_string()),
        mtu,
        addrs: lab.addrs.clone(),
        // tcpfsm-tun sets the MSS from the MTU.
        tcp: config(1500, tun::BUFFER),
        offloads: p.offloads,
        ..StackConfig::default()
    })?;
    let cpu0 = sys::process_cpu_seconds();
    let connect_timeout = StdDuration::from_secs(10);
    let (t0, end, n) = match dir {
        Dir::ToKernel => {
            let (addr, peer) = tun::kernel_receiver(lab, verify)?;
            let mut s = TcpStream::connect_timeout(&stack, addr, connect_timeout)?;
            s.set_write_timeout(Some(tun::DEADLINE))?;
            let t0 = WallClock::now();
            tun::write_stream(&mut s, bytes)?;
            s.shutdown(Shutdown::Write)?;
            let (n, end) = tun::join(peer)?;
            (t0, end, n)
        }
        Dir::FromKernel => {
            let addr = SocketAddr::new(lab.stack_ip().into(), tun::PORT);
            let l = TcpListener::bind(&stack, addr)?;
            let peer = tun::kernel_sender(lab, addr, bytes);
            let (s, _) = l.accept_timeout(connect_timeout)?;
            s.set_read_timeout(Some(tun::DEADLINE))?;
            let t0 = WallClock::now();
            let n = read_stream_in_place(&s, verify)?;
            let end = WallClock::now();
            drop(s);
            tun::join(peer)?;
            (t0, end, n)
        }
    };
    Ok(Moved {
        bytes: n,
        wall: (end - t0).as_secs_f64(),
        cpu: sys::process_cpu_seconds() - cpu0,
    })
}
