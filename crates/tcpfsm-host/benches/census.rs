//! Census and attribution cost at scale (a benchmark, not a test; needs root).
//!
//! In a private network namespace it creates about `--sockets` (default 100,000) real kernel
//! sockets over loopback — established pairs held by this process, TIME_WAIT left by closed
//! connections, and a separate "leaker" process holding CLOSE_WAIT sockets — then times, in the
//! same run:
//! - our census (library, one reused netlink socket; and the `tcpfsm states` binary as a process)
//!   against `ss -tan` counted by state (the texts' `ss -tan | awk … | sort | uniq -c`) and
//!   against a scrape of the node exporter's tcpstat collector (`prometheus-node-exporter`);
//! - `tcpfsm states --process tcpfsm-leaker` against `ss -tanp` (what `ss -tanp | grep` costs).
//!
//! - `tcpfsm states -o/-i/-m` against `ss -tano/-tani/-tanm` over the established sockets;
//! - with `TCPFSM_BIN_BASELINE=<older tcpfsm binary>`: the same `states` commands from that
//!   build and this one, interleaved (A B, B A, …), with the median of the paired ratios.
//!
//! Run: `cargo build --release -p tcpfsm && cargo bench -p tcpfsm-host --bench census -- --sockets 100000`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tcpfsm_host::{sockets_of, Filter, Owner, SockDiag, State};

const LEAKER_COMM: &str = "tcpfsm-leaker";
const REPEAT: usize = 7;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--holder") {
        holder();
        return;
    }
    let arg = |name: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let total = arg("--sockets", 100_000);
    let leaked = arg("--leaked", 1_000);
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIPPED (needs root): census benchmark creates a network namespace");
        return;
    }
    let ns = Netns::new();
    // The whole benchmark (and every child it spawns) runs inside the namespace.
    let f = std::fs::File::open(format!("/run/netns/{}", ns.0)).unwrap();
    nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    let nofile = raise_nofile();
    // Ports 2000-65000 for clients; the node exporter listens above the range.
    sysctl("net/ipv4/ip_local_port_range", "2000 65000");
    sysctl("net/ipv4/tcp_max_tw_buckets", "1000000");
    // No TIME_WAIT reuse on loopback (the namespace default is 2), or connects would recycle
    // the TIME_WAIT sockets we are building up.
    sysctl("net/ipv4/tcp_tw_reuse", "0");
    let exporter = NodeExporter::start();

    let t0 = Instant::now();
    let mut leaker = KillOnDrop(spawn_leaker());
    let leak_port = read_port(&mut leaker.0);
    let mut kept: Vec<TcpStream> = Vec::new();
    for _ in 0..leaked {
        let c = TcpStream::connect(("127.0.0.1", leak_port)).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        kept.push(c);
    }
    // The rest: up to 40% in established pairs (held here, two descriptors each, so bounded by
    // RLIMIT_NOFILE), the others TIME_WAIT (no descriptor).
    let rest = total.saturating_sub(2 * leaked + 1);
    let fd_room = (nofile as usize).saturating_sub(leaked + 200) / 2;
    let pairs = (rest * 2 / 10).min(fd_room);
    let tw = rest - 2 * pairs;
    let listeners: Vec<TcpListener> = (0..8)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    for i in 0..pairs {
        let l = i % listeners.len();
        let c = TcpStream::connect(addrs[l]).unwrap();
        let (s, _) = listeners[l].accept().unwrap();
        kept.push(c);
        kept.push(s);
    }
    let mut b = [0u8; 1];
    for i in 0..tw {
        let l = i % listeners.len();
        let c = TcpStream::connect(addrs[l]).unwrap();
        let (mut s, _) = listeners[l].accept().unwrap();
        drop(c);
        let _ = s.read(&mut b);
        drop(s);
    }
    if let Some(secs) = std::env::var("TCPFSM_BENCH_PAUSE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        // For probing the namespace by hand (ip netns exec …) before measuring; TIME_WAIT
        // sockets expire meanwhile (60 s), and the reference census is taken after the pause.
        eprintln!("pausing {secs}s");
        std::thread::sleep(Duration::from_secs(secs));
    }

    let mut diag = SockDiag::new().unwrap();
    let census = wait_settled(&mut diag, leaked as u64);
    println!(
        "namespace {}: built in {:.1}s: {} sockets: {}",
        ns.0,
        t0.elapsed().as_secs_f64(),
        census.total(),
        census
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| format!("{}={n}", s.name()))
            .collect::<Vec<_>>()
            .join(" ")
    );

    // --- census ---
    let ours_lib = measure(Cpu::Thread, || {
        let c = diag.census(&Filter::default()).unwrap();
        // Scrapes and runs add a few TIME_WAIT of their own; the count must stay close.
        assert!(c.total().abs_diff(census.total()) < 100, "{c:?}");
    });
    let bin = tcpfsm_bin();
    let ours_cli = bin.as_ref().map(|bin| {
        measure(Cpu::Children, || {
            let out = Command::new(bin)
                .args(["states", "--json"])
                .output()
                .unwrap();
            assert!(out.status.success());
        })
    });
    let mut ss_total = 0;
    let ss = measure(Cpu::Children, || {
        ss_total = ss_count_states(&["-tan"]);
    });
    let ne = exporter.as_ref().map(|e| e.scrape());
    let ours_exact = measure(Cpu::Thread, || {
        let c = diag.census_exact(&Filter::default()).unwrap();
        // Scrapes and runs add a few TIME_WAIT of their own; the count must stay close.
        assert!(c.total().abs_diff(census.total()) < 100, "{c:?}");
    });

    // --- attribution ---
    let ours_proc_lib = measure(Cpu::Thread, || {
        let a = sockets_of(|p| p.comm == LEAKER_COMM);
        let mut n = 0;
        // As `tcpfsm states --process` does: TIME_WAIT sockets have no owner, skip them.
        let owned = tcpfsm_host::StateSet::ALL
            .iter()
            .filter(|s| *s != State::TimeWait)
            .collect();
        diag.for_each(&Filter::states(owned), |r| {
            if matches!(a.owner(r.inode), Owner::Processes(_)) {
                n += 1;
            }
        })
        .unwrap();
        assert_eq!(n, leaked + 1);
    });
    let ours_proc_cli = bin.as_ref().map(|bin| {
        measure(Cpu::Children, || {
            let out = Command::new(bin)
                .args(["states", "--process", LEAKER_COMM, "--json"])
                .output()
                .unwrap();
            assert!(out.status.success());
        })
    });
    // One diagnosis sample (full dump with TIME_WAIT grouped by remote, counters, sysctls,
    // CLOSE_WAIT and LISTEN owners; with and without the per-process open-file scan).
    let mut sampler = tcpfsm_host::Sampler::new(tcpfsm_host::SnapshotOptions::default()).unwrap();
    let snap_full = measure(Cpu::Thread, || {
        let s = sampler.sample().unwrap();
        assert_eq!(
            s.close_wait_by_process.unwrap().processes[0].count,
            leaked as u64
        );
    });
    sampler.options.fd_usage = false;
    let snap_light = measure(Cpu::Thread, || {
        sampler.sample().unwrap();
    });
    sampler.options.top_remotes = 0;
    let snap_lightest = measure(Cpu::Thread, || {
        sampler.sample().unwrap();
    });
    let mut ssp_lines = 0;
    let ssp = measure(Cpu::Children, || {
        let out = Command::new("ss").args(["-tanp"]).output().unwrap();
        ssp_lines = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(LEAKER_COMM))
            .count();
    });
    // ss -p over every socket, for the case of listing everything with owners.
    let ours_all_cli = bin.as_ref().map(|bin| {
        measure(Cpu::Children, || {
            let out = Command::new(bin)
                .args(["states", "--list"])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(out.success());
        })
    });

    println!();
    println!(
        "census of {} sockets — wall median / CPU median (kernel + user) of {REPEAT} runs; the machine is shared, CPU is the steadier figure:",
        census.total()
    );
    ours_lib.row("tcpfsm library census");
    ours_exact.row("tcpfsm library census, TIME_WAIT dumped");
    if let Some(c) = &ours_cli {
        c.row("tcpfsm states --json (process)");
    }
    ss.row(&format!("ss -tan, counted by state ({ss_total})"));
    if let Some((m, sum)) = &ne {
        m.row(&format!("node exporter tcpstat scrape ({sum})"));
    } else {
        println!("  node exporter: prometheus-node-exporter not installed or failed to start");
    }
    println!("  ratios (wall / CPU):");
    ss.ratio("ss -tan / tcpfsm library", &ours_lib);
    ss.ratio("ss -tan / tcpfsm library, TIME_WAIT dumped", &ours_exact);
    if let Some(c) = &ours_cli {
        ss.ratio("ss -tan / tcpfsm states process", c);
    }
    if let Some((m, _)) = &ne {
        m.ratio("node exporter / tcpfsm library", &ours_lib);
        if let Some(c) = &ours_cli {
            m.ratio("node exporter / tcpfsm states process", c);
        }
    }
    println!();
    println!(
        "attribution: sockets of process {LEAKER_COMM:?} ({} of {} sockets; ss -tanp lines naming it: {ssp_lines}):",
        leaked + 1,
        census.total()
    );
    ours_proc_lib.row("tcpfsm library (sockets_of + dump)");
    if let Some(c) = &ours_proc_cli {
        c.row("tcpfsm states --process (process)");
    }
    ssp.row("ss -tanp");
    println!("  ratios (wall / CPU):");
    ssp.ratio("ss -tanp / tcpfsm library", &ours_proc_lib);
    if let Some(c) = &ours_proc_cli {
        ssp.ratio("ss -tanp / tcpfsm states --process", c);
    }
    if let Some(c) = &ours_all_cli {
        c.row("every socket with owners: tcpfsm states --list");
        ssp.ratio("ss -tanp / tcpfsm states --list", c);
    }
    // --- the ss -o / -i / -m views: asked of the kernel only with the flag ---
    if let Some(bin) = &bin {
        println!();
        println!("ss-style detail over the ESTABLISHED sockets (no owners on either side):");
        for (ours, theirs) in [
            (
                vec!["states", "-s", "established", "--no-process"],
                vec!["-tan", "state", "established"],
            ),
            (
                vec!["states", "-o", "-s", "established", "--no-process"],
                vec!["-tano", "state", "established"],
            ),
            (
                vec!["states", "-i", "-s", "established", "--no-process"],
                vec!["-tani", "state", "established"],
            ),
            (
                vec!["states", "-m", "-s", "established", "--no-process"],
                vec!["-tanm", "state", "established"],
            ),
        ] {
            let o = measure(Cpu::Children, || run_quiet(bin, &ours));
            let t = measure(Cpu::Children, || {
                run_quiet(std::path::Path::new("ss"), &theirs)
            });
            o.row(&format!("tcpfsm {}", ours.join(" ")));
            t.row(&format!("ss {}", theirs.join(" ")));
            t.ratio("ss / tcpfsm", &o);
        }
    }
    // --- before/after: the same commands from a baseline build, interleaved ---
    if let (Some(bin), Some(base)) = (&bin, std::env::var_os("TCPFSM_BIN_BASELINE")) {
        let base = PathBuf::from(base);
        println!();
        println!(
            "this build against {} ({} interleaved pairs, CPU; ratio = this / baseline):",
            base.display(),
            2 * REPEAT
        );
        for args in [
            vec!["states", "--json"],
            vec!["states", "-s", "close-wait", "--json"],
            vec!["states", "--process", LEAKER_COMM, "--json"],
            vec!["states", "--list"],
        ] {
            paired(&args, &base, bin);
        }
    }
    println!();
    println!("one diagnose sample (tcpfsm_host::Sampler::sample):");
    snap_full.row("with per-process open-file scan");
    snap_light.row("without (SnapshotOptions.fd_usage = false)");
    snap_lightest.row("without, and no TIME_WAIT grouping by remote");
    drop(exporter);
    drop(kept);
    drop(leaker);
}

/// Kills and reaps the child when dropped, also when the benchmark panics.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where the CPU time of a measured operation is spent.
enum Cpu {
    /// This thread (kernel time of our netlink dumps included).
    Thread,
    /// Child processes we wait for (rusage of reaped children).
    Children,
    /// A server process: the sum of its threads' run time from /proc/<pid>/task/*/schedstat.
    Process(u32),
}

fn cpu_now(c: &Cpu) -> Duration {
    match c {
        Cpu::Thread => {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: valid pointer to a timespec.
            unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
            Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
        }
        Cpu::Children => {
            // SAFETY: zeroed rusage is a valid out-parameter.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
            let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
            tv(ru.ru_utime) + tv(ru.ru_stime)
        }
        Cpu::Process(pid) => {
            let mut ns = 0u64;
            if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
                for t in rd.flatten() {
                    if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                        ns += s
                            .split_whitespace()
                            .next()
                            .and_then(|x| x.parse::<u64>().ok())
                            .unwrap_or(0);
                    }
                }
            }
            Duration::from_nanos(ns)
        }
    }
}

struct Measured {
    wall: Duration,
    cpu: Duration,
}

impl Measured {
    fn row(&self, what: &str) {
        println!(
            "  {what:<48} {:>9.2} ms wall {:>9.2} ms CPU",
            self.wall.as_secs_f64() * 1e3,
            self.cpu.as_secs_f64() * 1e3
        );
    }

    /// Prints how many times `self` is slower than `ours`.
    fn ratio(&self, what: &str, ours: &Measured) {
        println!(
            "    {what:<52} {:>6.1}x / {:>6.1}x",
            self.wall.as_secs_f64() / ours.wall.as_secs_f64(),
            self.cpu.as_secs_f64() / ours.cpu.as_secs_f64()
        );
    }
}

/// Median wall time and median CPU time of REPEAT runs after one warm-up.
fn measure(cpu: Cpu, mut f: impl FnMut()) -> Measured {
    f();
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    for _ in 0..REPEAT {
        let c0 = cpu_now(&cpu);
        let t = Instant::now();
        f();
        walls.push(t.elapsed());
        cpus.push(cpu_now(&cpu).saturating_sub(c0));
    }
    walls.sort();
    cpus.sort();
    Measured {
        wall: walls[REPEAT / 2],
        cpu: cpus[REPEAT / 2],
    }
}

/// Runs a command with its output discarded; it must succeed.
fn run_quiet(prog: &std::path::Path, args: &[&str]) {
    let st = Command::new(prog)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "{} {args:?}", prog.display());
}

/// CPU time of one run of a command (reaped children's rusage).
fn cpu_of(prog: &std::path::Path, args: &[&str]) -> Duration {
    let c0 = cpu_now(&Cpu::Children);
    run_quiet(prog, args);
    cpu_now(&Cpu::Children).saturating_sub(c0)
}

/// Baseline and current build of one command in A B, B A, … order: medians of each and the
/// median of the per-pair ratios (current / baseline).
fn paired(args: &[&str], base: &std::path::Path, cur: &std::path::Path) {
    run_quiet(base, args);
    run_quiet(cur, args);
    let (mut b, mut c, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..2 * REPEAT {
        let (x, y) = if i % 2 == 0 {
            let x = cpu_of(base, args);
            (x, cpu_of(cur, args))
        } else {
            let y = cpu_of(cur, args);
            (cpu_of(base, args), y)
        };
        b.push(x);
        c.push(y);
        r.push(y.as_secs_f64() / x.as_secs_f64().max(1e-9));
    }
    b.sort();
    c.sort();
    r.sort_by(f64::total_cmp);
    let mid = REPEAT;
    println!(
        "  tcpfsm {:<44} baseline {:>8.2} ms, this {:>8.2} ms, ratio {:.2}",
        args.join(" "),
        b[mid].as_secs_f64() * 1e3,
        c[mid].as_secs_f64() * 1e3,
        r[mid]
    );
}

/// `ss <args>` with its output counted per state (first column), as the texts' one-liner does.
fn ss_count_states(args: &[&str]) -> usize {
    let out = Command::new("ss").args(args).output().unwrap();
    let mut counts = std::collections::HashMap::<String, usize>::new();
    for l in String::from_utf8_lossy(&out.stdout).lines().skip(1) {
        if let Some(s) = l.split_whitespace().next() {
            *counts.entry(s.to_string()).or_default() += 1;
        }
    }
    counts.values().sum()
}

const EXPORTER_ADDR: &str = "127.0.0.1:65100";

/// The node exporter with only its tcpstat collector, listening in the namespace.
struct NodeExporter(Child);

impl NodeExporter {
    fn start() -> Option<NodeExporter> {
        let bin = [
            "/usr/bin/prometheus-node-exporter",
            "/usr/bin/node_exporter",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
        let child = Command::new(bin)
            .args([
                &format!("--web.listen-address={EXPORTER_ADDR}"),
                "--collector.disable-defaults",
                "--collector.tcpstat",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let e = NodeExporter(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(EXPORTER_ADDR).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(e)
    }

    /// Times a /metrics scrape; also returns the sum of node_tcp_connection_states.
    fn scrape(&self) -> (Measured, u64) {
        let mut sum = 0;
        let m = measure(Cpu::Process(self.0.id()), || {
            let body = http_get(EXPORTER_ADDR, "/metrics");
            sum = body
                .lines()
                .filter(|l| l.starts_with("node_tcp_connection_states{"))
                // Its rx/tx_queued_bytes pseudo-states are byte counts, not sockets.
                .filter(|l| !l.contains("queued_bytes"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64;
        });
        let body = http_get(EXPORTER_ADDR, "/metrics");
        let states: Vec<&str> = body
            .lines()
            .filter(|l| l.starts_with("node_tcp_connection_states{"))
            .collect();
        println!("node exporter reports: {}", states.join(", "));
        (m, sum)
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

fn tcpfsm_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TCPFSM_BIN") {
        return Some(p.into());
    }
    // target/<profile>/deps/census-… → target/<profile>/tcpfsm
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("tcpfsm");
    if p.exists() {
        Some(p)
    } else {
        eprintln!("note: no tcpfsm binary at {} (build it with `cargo build --release -p tcpfsm`, or set TCPFSM_BIN): process timings skipped", p.display());
        None
    }
}

fn wait_settled(diag: &mut SockDiag, leaked: u64) -> tcpfsm_host::Census {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = diag.census(&Filter::default()).unwrap();
        let accepted = diag
            .sockets(&Filter::states(tcpfsm_host::StateSet::of(&[
                State::CloseWait,
            ])))
            .unwrap()
            .iter()
            .all(|r| r.inode != 0);
        if (c.get(State::CloseWait) == leaked
            && c.get(State::FinWait2) == leaked
            && c.get(State::LastAck) == 0
            && c.get(State::FinWait1) == 0
            && accepted)
            || Instant::now() > deadline
        {
            return c;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (raising the hard limit needs
/// CAP_SYS_RESOURCE, which a sandbox may not grant); returns the new soft limit.
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with valid pointers to initialised structs.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        let want = libc::rlimit {
            rlim_cur: 1_048_576,
            rlim_max: 1_048_576,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
            return want.rlim_cur;
        }
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    lim.rlim_cur
}

fn sysctl(name: &str, value: &str) {
    std::fs::write(format!("/proc/sys/{name}"), value)
        .unwrap_or_else(|e| panic!("sysctl {name}: {e}"));
}

struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("tcpfsm-bench-{}", std::process::id());
        assert!(Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success());
        assert!(Command::new("ip")
            .args(["-n", &name, "link", "set", "lo", "up"])
            .status()
            .unwrap()
            .success());
        Netns(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn spawn_leaker() -> Child {
    Command::new(std::env::current_exe().unwrap())
        .arg("--holder")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn read_port(c: &mut Child) -> u16 {
    let mut line = String::new();
    BufReader::new(c.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim().parse().unwrap()
}

/// The leaker: accepts and never closes (its sockets go to CLOSE_WAIT when the peer shuts down).
fn holder() {
    std::fs::write("/proc/self/comm", LEAKER_COMM).unwrap();
    raise_nofile();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("{}", l.local_addr().unwrap().port());
    std::io::stdout().flush().unwrap();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        while let Ok((s, _)) = l.accept() {
            kept.push(s);
        }
    });
    // Bounded: the benchmark kills us; should it die first, stop after 10 minutes.
    std::thread::sleep(Duration::from_secs(600));
}
