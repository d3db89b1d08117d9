//! The three real-packet configurations, each in fresh namespaces per run (so no cached route
//! metrics carry over): (a) Linux → Linux through the relay, (b) our sender → Linux receiver,
//! (c) Linux sender → our receiver, our stack behind the relay as `ImpairedStack`.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tcpfsm_tun::netns::{self, NetNs};
use tcpfsm_tun::{
    kernel_tcp_info, ImpairedStack, RelayConfig, StackConfig, TestBed, TestBedConfig, Way,
};

use crate::meter::Meter;
use crate::trace::{self, Sample, Series};
use crate::{pattern_check, RunOut, Spec};

const CONNECT: Duration = Duration::from_secs(20);
/// Blocking calls wake this often to look at the run's deadline.
const TICK: Duration = Duration::from_millis(500);

/// A tap feeding the data direction's datagrams to a meter.
fn tap(way: Way, meter: &Arc<Mutex<Meter>>) -> tcpfsm_tun::relay::Tap {
    let m = meter.clone();
    Box::new(move |w, pkt| {
        if w == way {
            m.lock().unwrap().observe_datagram(pkt);
        }
    })
}

/// Sets a kernel socket's congestion control (`TCP_CONGESTION`). Per socket, because a
/// namespace's default may only be set to an algorithm in the host-wide
/// `tcp_allowed_congestion_control` list, and the host's settings are not ours to change.
fn set_cc(s: &std::net::TcpStream, cc: &str) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `cc` is valid for `cc.len()` bytes of reads.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            cc.as_ptr().cast(),
            cc.len() as libc::socklen_t,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("TCP_CONGESTION {cc}: {e}"),
        ));
    }
    Ok(())
}

/// A timeout (the loop looks at its deadline) or an interrupted call: try again.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Reads until `size` bytes or the deadline; checks the pattern. Returns (bytes, intact, end).
fn receive(mut r: impl Read, size: u64, deadline: Instant) -> (u64, bool, Instant) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    let mut intact = true;
    while got < size && crate::running(deadline) {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                intact &= pattern_check(got, &buf[..n]);
                got += n as u64;
            }
            Err(e) if transient(&e) => {}
            Err(_) => break,
        }
    }
    (got, intact, Instant::now())
}

/// Writes `data` until done or the deadline (write timeouts let it look at the clock).
fn send(mut w: impl Write, data: &[u8], deadline: Instant) {
    let mut off = 0;
    while off < data.len() && crate::running(deadline) {
        match w.write(&data[off..]) {
            Ok(0) => return,
            Ok(n) => off += n,
            Err(e) if transient(&e) => {}
            Err(_) => return,
        }
    }
}

/// Looks at a sending socket's window (for `--trace`); `Sync` so a sampler thread can call it
/// while the transfer writes through the same socket.
type Probe<W> = fn(&W) -> Option<Sample>;

fn kernel_probe(s: &std::net::TcpStream) -> Option<Sample> {
    kernel_tcp_info(s).ok().map(|ti| Sample::from_kernel(&ti))
}

fn our_probe(s: &tcpfsm_tun::TcpStream) -> Option<Sample> {
    s.info().map(|i| Sample::from_ours(&i))
}

/// One timed transfer: `accept` yields the receiving socket (read timeout set), `connect` the
/// sending one (write timeout set); the clock starts once connected and stops when the last
/// byte is read (or at the deadline). Returns what arrived, the start, and the sender. With
/// `--trace`, a third thread samples the sender through `probe` meanwhile.
fn timed<R: Read + Send, W: Sync>(
    spec: &Spec,
    data: &[u8],
    meter: &Mutex<Meter>,
    accept: impl FnOnce() -> io::Result<R> + Send,
    connect: impl FnOnce() -> io::Result<W>,
    probe: Probe<W>,
) -> io::Result<(RunOut, W)>
where
    for<'w> &'w W: Write,
{
    let (tx, c, t0) = std::thread::scope(|s| -> io::Result<_> {
        let rx = s.spawn(accept);
        let tx = connect()?;
        let t0 = Instant::now();
        let c = rx.join().expect("receiver")?;
        Ok((tx, c, t0))
    })?;
    let deadline = t0 + spec.max_time;
    let done = std::sync::atomic::AtomicBool::new(false);
    let (got, intact, end, series) = std::thread::scope(|s| {
        let r = s.spawn(move || receive(c, spec.size, deadline));
        let sampler = spec
            .trace
            .is_some()
            .then(|| s.spawn(|| trace::sample_until(t0, &done, || probe(&tx))));
        send(&tx, &data[..spec.size as usize], deadline);
        let (got, intact, end) = r.join().expect("receiver");
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let series = sampler.map_or_else(Series::default, |h| h.join().expect("sampler"));
        (got, intact, end, series)
    });
    let m = meter.lock().unwrap();
    let out = RunOut {
        bytes: got,
        complete: got == spec.size,
        intact,
        secs: end.duration_since(t0).as_secs_f64(),
        retrans_bytes: m.retrans_bytes,
        data_segs: m.data_segs,
        retrans_segs: m.retrans_segs,
        mean_cwnd: series.mean_cwnd(),
        series,
        ..RunOut::default()
    };
    Ok((out, tx))
}

/// The congestion control a kernel socket runs (`TCP_CONGESTION`).
fn kernel_cc(s: &std::net::TcpStream) -> Option<String> {
    use std::os::fd::AsRawFd;
    let mut name = [0u8; 16];
    let mut len = name.len() as libc::socklen_t;
    // SAFETY: `name` is writable for `len` bytes; the kernel writes at most that.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            name.as_mut_ptr().cast(),
            &mut len,
        )
    };
    (r == 0).then(|| {
        let n = &name[..len as usize];
        String::from_utf8_lossy(n.split(|b| *b == 0).next().unwrap_or(n)).into_owned()
    })
}

/// The kernel sender's socket figures, and its namespace's counters (`ns`: where it runs).
fn kernel_fill(o: &mut RunOut, s: &std::net::TcpStream, ns: &str) {
    o.sender_counters = netns::run_in(ns, trace::kernel_mib)
        .ok()
        .flatten()
        .map_or_else(Vec::new, |m| trace::sender_counters(&m));
    o.kernel_cc = kernel_cc(s);
    if let Ok(ti) = kernel_tcp_info(s) {
        o.kernel_bytes_retrans = Some(ti.bytes_retrans);
        o.kernel_retrans_segs = Some(u64::from(ti.total_retrans));
        o.kernel_dsack_dups = Some(u64::from(ti.dsack_dups));
        o.kernel_reord_seen = Some(u64::from(ti.reord_seen));
    }
}

/// A kernel socket's side of a transfer, with its timeout set.
fn kernel_accept(l: &std::net::TcpListener) -> io::Result<std::net::TcpStream> {
    let (c, _) = l.accept()?;
    c.set_read_timeout(Some(TICK))?;
    Ok(c)
}

/// A kernel sender: connected from inside `ns`, running `cc`, before any data is sent.
fn kernel_connect(ns: &str, addr: SocketAddr, cc: &str) -> io::Result<std::net::TcpStream> {
    let c = netns::run_in(ns, || std::net::TcpStream::connect_timeout(&addr, CONNECT))??;
    set_cc(&c, cc)?;
    c.set_write_timeout(Some(TICK))?;
    Ok(c)
}

/// (a): a kernel in namespace A sends to a kernel in namespace B; data goes "up".
pub fn linux_linux(spec: &Spec, name: &str, data: &[u8]) -> io::Result<RunOut> {
    let meter = Arc::new(Mutex::new(Meter::default()));
    let cfg = TestBedConfig::new(RelayConfig::new(spec.data, spec.ack, spec.seed));
    let bed = TestBed::create_with_tap(name, cfg, Some(tap(Way::Up, &meter)))?;
    let addr = SocketAddr::new(bed.addr_b(false), 5201);
    let l = bed.in_b(|| std::net::TcpListener::bind(addr))??;
    let (mut o, tx) = timed(
        spec,
        data,
        &meter,
        || kernel_accept(&l),
        || kernel_connect(bed.ns_a(), addr, spec.kernel_cc),
        kernel_probe,
    )?;
    kernel_fill(&mut o, &tx, bed.ns_a());
    let link = bed.relay().stats();
    o.late = link.late;
    o.link_drops = Some(link.up.dropped());
    Ok(o)
}

/// Our stack behind the relay in a fresh namespace (fields drop in order: stack, namespace).
struct Ours {
    st: ImpairedStack,
    ns: NetNs,
}

/// `ours_send`: our stack sends the data (it goes "up"), else the kernel does ("down").
fn ours(spec: &Spec, name: &str, ours_send: bool, meter: &Arc<Mutex<Meter>>) -> io::Result<Ours> {
    let ns = NetNs::create(name)?;
    let cfg = StackConfig {
        tun_name: "tfsm0".into(),
        netns: Some(ns.name().to_string()),
        seed: Some(spec.seed),
        ..StackConfig::default()
    };
    let (link, way) = if ours_send {
        (RelayConfig::new(spec.data, spec.ack, spec.seed), Way::Up)
    } else {
        (RelayConfig::new(spec.ack, spec.data, spec.seed), Way::Down)
    };
    let st = ImpairedStack::with_tap(cfg, link, Some(tap(way, meter)))?;
    Ok(Ours { st, ns })
}

/// (b): our stack sends to a kernel receiver; our datagrams go "up" through the relay.
pub fn ours_linux(spec: &Spec, name: &str, data: &[u8]) -> io::Result<RunOut> {
    let meter = Arc::new(Mutex::new(Meter::default()));
    let us = ours(spec, name, true, &meter)?;
    let (st, ns) = (&us.st, &us.ns);
    let addr = SocketAddr::new(st.host_ip(false).expect("IPv4"), 5201);
    let l = ns.run(|| std::net::TcpListener::bind(addr))??;
    let (mut o, tx) = timed(
        spec,
        data,
        &meter,
        || kernel_accept(&l),
        || {
            let c = tcpfsm_tun::TcpStream::connect_timeout(&st.stack, addr, CONNECT)?;
            c.set_write_timeout(Some(TICK))?;
            Ok(c)
        },
        our_probe,
    )?;
    let stats = st.stats();
    o.our_retrans_segs = Some(stats[tcpfsm_tun::core::Counter::RetransSegs]);
    o.sender_counters = trace::sender_counters(&stats);
    let link = st.relay.stats();
    o.late = link.late;
    o.link_drops = Some(link.up.dropped());
    tx.abort();
    Ok(o)
}

/// (c): a kernel sender to our receiver; the kernel's datagrams go "down" to our stack.
pub fn linux_ours(spec: &Spec, name: &str, data: &[u8]) -> io::Result<RunOut> {
    let meter = Arc::new(Mutex::new(Meter::default()));
    let us = ours(spec, name, false, &meter)?;
    let (st, ns) = (&us.st, &us.ns);
    let addr = SocketAddr::new(st.local_ip(false).expect("IPv4"), 5201);
    let l = tcpfsm_tun::TcpListener::bind(&st.stack, addr)?;
    let (mut o, tx) = timed(
        spec,
        data,
        &meter,
        || {
            let (c, _) = l.accept()?;
            c.set_read_timeout(Some(TICK))?;
            Ok(c)
        },
        || kernel_connect(ns.name(), addr, spec.kernel_cc),
        kernel_probe,
    )?;
    kernel_fill(&mut o, &tx, ns.name());
    let link = st.relay.stats();
    o.late = link.late;
    o.link_drops = Some(link.down.dropped());
    Ok(o)
}
