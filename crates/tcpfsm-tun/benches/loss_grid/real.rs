//! The three real-packet configurations, each in fresh namespaces per run (so no cached route
//! metrics carry over): (a) Linux → Linux through the relay, (b) our sender → Linux receiver,
//! (c) Linux sender → our receiver, our stack behind the relay as `ImpairedStack`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tcpfsm_tun::netns::NetNs;
use tcpfsm_tun::{
    kernel_tcp_info, ImpairedStack, RelayConfig, StackConfig, TestBed, TestBedConfig, Way,
};

use crate::meter::Meter;
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

/// Reads until `size` bytes or the deadline; checks the pattern. Returns (bytes, intact, end).
fn receive(mut r: impl Read, size: u64, deadline: Instant) -> (u64, bool, Instant) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    let mut intact = true;
    while got < size && Instant::now() < deadline {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                intact &= pattern_check(got, &buf[..n]);
                got += n as u64;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
    (got, intact, Instant::now())
}

/// Writes `data` until done or the deadline (write timeouts let it look at the clock).
fn send(mut w: impl Write, data: &[u8], deadline: Instant) {
    let mut off = 0;
    while off < data.len() && Instant::now() < deadline {
        match w.write(&data[off..]) {
            Ok(0) => return,
            Ok(n) => off += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}

fn out(
    spec: &Spec,
    (got, intact, end): (u64, bool, Instant),
    t0: Instant,
    meter: &Mutex<Meter>,
) -> RunOut {
    let secs = end.duration_since(t0).as_secs_f64();
    let m = meter.lock().unwrap();
    RunOut {
        bytes: got,
        complete: got == spec.size,
        intact,
        secs,
        retrans_bytes: m.retrans_bytes,
        ..RunOut::default()
    }
}

fn kernel_fill(o: &mut RunOut, s: &std::net::TcpStream) {
    if let Ok(ti) = kernel_tcp_info(s) {
        o.kernel_bytes_retrans = Some(ti.bytes_retrans);
        o.kernel_retrans_segs = Some(u64::from(ti.total_retrans));
        o.kernel_dsack_dups = Some(u64::from(ti.dsack_dups));
        o.kernel_reord_seen = Some(u64::from(ti.reord_seen));
    }
}

/// (a): a kernel in namespace A sends to a kernel in namespace B; data goes "up".
pub fn linux_linux(spec: &Spec, name: &str, data: &[u8]) -> io::Result<RunOut> {
    let meter = Arc::new(Mutex::new(Meter::default()));
    let cfg = TestBedConfig::new(RelayConfig::new(spec.data, spec.ack, spec.seed));
    let bed = TestBed::create_with_tap(name, cfg, Some(tap(Way::Up, &meter)))?;
    let addr = SocketAddr::new(bed.addr_b(false), 5201);
    let l = bed.in_b(|| std::net::TcpListener::bind(addr))??;
    let deadline_after = spec.max_time;
    std::thread::scope(|s| {
        let rx = s.spawn(|| -> io::Result<_> {
            let (c, _) = l.accept()?;
            c.set_read_timeout(Some(TICK))?;
            Ok(c)
        });
        let tx = bed.in_a(|| std::net::TcpStream::connect_timeout(&addr, CONNECT))??;
        tx.set_write_timeout(Some(TICK))?;
        let t0 = Instant::now();
        let deadline = t0 + deadline_after;
        let c = rx.join().expect("receiver")?;
        let r = s.spawn(move || receive(&c, spec.size, deadline));
        send(&tx, &data[..spec.size as usize], deadline);
        let res = r.join().expect("receiver");
        let mut o = out(spec, res, t0, &meter);
        kernel_fill(&mut o, &tx);
        o.late = bed.relay().stats().late;
        let _ = tx.shutdown(Shutdown::Both);
        Ok(o)
    })
}

fn stack_cfg(ns: &NetNs, seed: u64) -> StackConfig {
    StackConfig {
        tun_name: "tfsm0".into(),
        netns: Some(ns.name().to_string()),
        seed: Some(seed),
        ..StackConfig::default()
    }
}

/// (b): our stack sends to a kernel receiver; our datagrams go "up" through the relay.
pub fn ours_linux(spec: &Spec, name: &str, data: &[u8]) -> io::Result<RunOut> {
    let meter = Arc::new(Mutex::new(Meter::default()));
    let ns = NetNs::create(name)?;
    let st = ImpairedStack::with_tap(
        stack_cfg(&ns, spec.seed),
        RelayConfig::new(spec.data, spec.ack, spec.seed),
        Some(tap(Way::Up, &meter)),
    )?;
    let addr = SocketAddr::new(st.host_ip(false).expect("IPv4"), 5201);
    let l = ns.run(|| std::net::TcpListener::bind(addr))??;
    std::thread::scope(|s| {
        let rx = s.spawn(|| -> io::Result<_> {
            let (c, _) = l.accept()?;
            c.set_read_timeout(Some(TICK))?;
            Ok(c)
        });
        let tx = tcpfsm_tun::TcpStream::connect_timeout(&st.stack, addr, CONNECT)?;
        tx.set_write_timeout(Some(TICK))?;
        let t0 = Instant::now();
        let deadline = t0 + spec.max_time;
        let c = rx.join().expect("receiver")?;
        let r = s.spawn(move || receive(&c, spec.size, deadline));
        send(&tx, &data[..spec.size as usize], deadline);
        let res = r.join().expect("receiver");
        let mut o = out(spec, res, t0, &meter);
        o.our_retrans_segs = Some(st.stats().retrans_segs);
        o.late = st.relay.stats().late;
        tx.abort();
        Ok(o)
    })
}

/// (c): a kernel sender to our receiver; the kernel's datagrams go "down" to our stack.
pub fn linux_ours(spec: &Spec, name: &str, data: &[u8]) -> io::Result<RunOut> {
    let meter = Arc::new(Mutex::new(Meter::default()));
    let ns = NetNs::create(name)?;
    let st = ImpairedStack::with_tap(
        stack_cfg(&ns, spec.seed),
        // Up is what our stack sends (the ACKs), down what the kernel sends (the data).
        RelayConfig::new(spec.ack, spec.data, spec.seed),
        Some(tap(Way::Down, &meter)),
    )?;
    let addr = SocketAddr::new(st.local_ip(false).expect("IPv4"), 5201);
    let l = tcpfsm_tun::TcpListener::bind(&st.stack, addr)?;
    std::thread::scope(|s| {
        let rx = s.spawn(|| -> io::Result<_> {
            let (c, _) = l.accept()?;
            c.set_read_timeout(Some(TICK))?;
            Ok(c)
        });
        let tx = ns.run(|| std::net::TcpStream::connect_timeout(&addr, CONNECT))??;
        tx.set_write_timeout(Some(TICK))?;
        let t0 = Instant::now();
        let deadline = t0 + spec.max_time;
        let c = rx.join().expect("receiver")?;
        let r = s.spawn(move || {
            let res = receive(&c, spec.size, deadline);
            c.abort();
            res
        });
        send(&tx, &data[..spec.size as usize], deadline);
        let res = r.join().expect("receiver");
        let mut o = out(spec, res, t0, &meter);
        kernel_fill(&mut o, &tx);
        o.late = st.relay.stats().late;
        let _ = tx.shutdown(Shutdown::Both);
        Ok(o)
    })
}
