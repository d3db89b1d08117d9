//! What one `tcpfsm export` scrape costs on a host with many open file descriptors.
//!
//! Owner attribution (which process holds which socket, and each TCP-holding process's open
//! descriptors against its limit) reads `/proc/<pid>/fd` of every process: one readlink per
//! descriptor on the host. This bench opens `TCPFSM_BENCH_FDS` descriptors (default 50,000)
//! in helper processes, some of them TCP sockets in CLOSE_WAIT, then scrapes an exporter
//! started with each of the owner options, interleaved over rounds (A B C, C B A, ...), and
//! reports the median of the exporter's own `tcpfsm_scrape_duration_seconds` and of the
//! wall time of a whole scrape. Needs no root (but root sees every process). Run:
//!
//!     cargo bench -p tcpfsm --bench export_scrape
//!     TCPFSM_BENCH_FDS=100000 cargo bench -p tcpfsm --bench export_scrape

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Descriptors per helper process (below the usual hard limit of the bench's shell).
const PER_HELPER: usize = 10_000;

/// Helper mode: open `n` descriptors (/dev/null), then sleep until killed.
fn helper(n: usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    let want = (n as u64 + 64).max(lim.rlim_cur);
    let new = libc::rlimit {
        rlim_cur: want.min(lim.rlim_max.max(want)),
        rlim_max: lim.rlim_max.max(want),
    };
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) };
    let mut keep = Vec::with_capacity(n);
    for _ in 0..n {
        match std::fs::File::open("/dev/null") {
            Ok(f) => keep.push(f),
            Err(e) => {
                eprintln!("helper: opened {} of {n}: {e}", keep.len());
                break;
            }
        }
    }
    println!("READY {}", keep.len());
    std::thread::sleep(Duration::from_secs(600));
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_helper(n: usize) -> (Killed, usize) {
    let mut c = Command::new(std::env::current_exe().unwrap())
        .env("TCPFSM_BENCH_HELPER", n.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn helper");
    let mut line = String::new();
    BufReader::new(c.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let opened = line
        .trim()
        .strip_prefix("READY ")
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    (Killed(c), opened)
}

fn start_exporter(extra: &[&str]) -> (Killed, SocketAddr) {
    let mut c = Killed(
        Command::new(env!("CARGO_BIN_EXE_tcpfsm"))
            .args(["export", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn exporter"),
    );
    let mut r = BufReader::new(c.0.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            panic!("exporter exited");
        }
        if let Some(a) = line.trim().strip_prefix("tcpfsm: serving http://") {
            let addr = a.trim_end_matches("/metrics").parse().unwrap();
            std::thread::spawn(move || for _ in r.lines() {});
            return (c, addr);
        }
    }
}

/// One scrape: (wall seconds, the exporter's own scrape_duration_seconds).
fn scrape(addr: SocketAddr) -> (f64, f64) {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let wall = t.elapsed().as_secs_f64();
    let own = out
        .lines()
        .find_map(|l| l.strip_prefix("tcpfsm_scrape_duration_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN);
    (wall, own)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if let Some(n) = std::env::var("TCPFSM_BENCH_HELPER")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return helper(n);
    }
    let fds: usize = std::env::var("TCPFSM_BENCH_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let rounds = 5;
    let mut helpers = Vec::new();
    let mut opened = 0;
    while opened < fds {
        let (h, n) = spawn_helper(PER_HELPER.min(fds - opened));
        if n == 0 {
            break;
        }
        opened += n;
        helpers.push(h);
    }
    // 200 CLOSE_WAIT sockets held by this process: owners to find.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut keep = Vec::new();
    for _ in 0..200 {
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        keep.push((c, s));
    }
    let host_fds: usize = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_dir(e.path().join("fd")).ok())
        .map(|d| d.count())
        .sum();
    let modes: [(&str, &[&str]); 3] = [
        ("default (cached)", &[]),
        ("--owners full", &["--owners", "full"]),
        ("--owners off", &["--owners", "off"]),
    ];
    let mut wall = vec![Vec::new(); modes.len()];
    let mut own = vec![Vec::new(); modes.len()];
    for r in 0..rounds {
        let mut order: Vec<usize> = (0..modes.len()).collect();
        if r % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let (_exp, addr) = start_exporter(modes[i].1);
            scrape(addr); // the first scrape warms caches; not counted
            for _ in 0..3 {
                let (w, o) = scrape(addr);
                wall[i].push(w);
                own[i].push(o);
            }
        }
    }
    println!(
        "export scrape, {opened} descriptors opened by helpers ({host_fds} on the host), \
         200 CLOSE_WAIT; {rounds} interleaved rounds, medians"
    );
    for (i, (name, _)) in modes.iter().enumerate() {
        println!(
            "  {name:<16}: scrape {:7.1} ms (exporter's own figure {:7.1} ms)",
            1e3 * median(wall[i].clone()),
            1e3 * median(own[i].clone())
        );
    }
    drop(keep);
    drop(helpers);
}
