//! The loss grid of issue 10: bulk transfers over the same impaired link (the tcpfsm-impair
//! engine, on real packets through the relay and on virtual time in the simulator) for
//!
//! - (a) `linux-linux`: Linux sender → Linux receiver, two namespaces, relay between (baseline);
//! - (b) `ours-linux`: our sender → Linux receiver (our stack behind the relay);
//! - (c) `linux-ours`: Linux sender → our receiver;
//! - (s) `sim`: our stack → our stack in the simulator, same link parameters.
//!
//! Grid: loss 0.5/1/2/5 %, reordering 0/10 %, RTT 10/50 ms; each cell three runs; rounds
//! interleaved (every cell and configuration once per round, the configuration order reversed
//! on odd rounds). Each run reports goodput and retransmitted bytes (on the wire, for every
//! sender; the kernel's `tcpi_bytes_retrans` too for kernel senders). One JSON line per run on
//! stdout as it finishes, then a table of medians and paired ratios against (a).
//!
//!     cargo bench -p tcpfsm-tun --bench loss_grid                 # the whole grid, 64 MiB
//!     cargo bench -p tcpfsm-tun --bench loss_grid -- --quick      # one small cell
//!     cargo bench -p tcpfsm-tun --bench loss_grid -- --size 8 --runs 1 --loss 1,5 --rtt 50
//!     cargo bench -p tcpfsm-tun --bench loss_grid -- --from grid.jsonl   # the table again
//!
//! The link: in the data direction `delay RTT/2`, the cell's loss, the cell's reordering
//! (a held packet waits up to RTT/4 extra, within Linux's RACK reordering window of
//! min_rtt/4), and a 100 Mbit/s bottleneck with a drop-tail queue of one bandwidth-delay
//! product; the ACK direction has the delay only. The kernel runs CUBIC (`--kernel-cc`), as
//! Linux does by default and as issue 10 compares against. Needs root (namespaces, TUN); skips loudly
//! otherwise. Ctrl-C ends the run in progress, deletes its namespaces and prints the table.

mod draw;
mod meter;
mod real;
mod sim;
mod trace;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tcpfsm_tun::impair::Impairment;

/// Set by SIGINT/SIGTERM: the run in progress ends at once and the grid stops, so every
/// namespace is deleted on the way out.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_stop_handler() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
    }
}

/// Whether a transfer may go on: before its deadline and not interrupted.
pub fn running(deadline: Instant) -> bool {
    !STOP.load(Ordering::SeqCst) && Instant::now() < deadline
}

/// One run's link and transfer.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub data: Impairment,
    pub ack: Impairment,
    pub size: u64,
    pub seed: u64,
    pub max_time: Duration,
    /// The kernel's congestion control in every namespace (`net.ipv4.tcp_congestion_control`).
    pub kernel_cc: &'static str,
    /// `--trace DIR`: sample the sender's window and write it there.
    pub trace: Option<&'static std::path::Path>,
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct RunOut {
    pub bytes: u64,
    pub complete: bool,
    /// Every byte read matched what was sent.
    pub intact: bool,
    pub secs: f64,
    /// Payload bytes sent again, counted on the wire before the impairments.
    pub retrans_bytes: u64,
    /// Data-bearing segments on the wire before the impairments, and those of them sent again.
    pub data_segs: u64,
    pub retrans_segs: u64,
    /// Datagrams the link dropped in the data direction (loss and queue): what the sender had
    /// to repair. The loss is random, so two runs at the same setting draw different amounts;
    /// retransmissions per drop is the sender's efficiency whatever the draw.
    pub link_drops: Option<u64>,
    pub kernel_bytes_retrans: Option<u64>,
    pub kernel_retrans_segs: Option<u64>,
    pub kernel_dsack_dups: Option<u64>,
    pub kernel_reord_seen: Option<u64>,
    pub our_retrans_segs: Option<u64>,
    /// The kernel sender's congestion control, as its socket reports it.
    pub kernel_cc: Option<String>,
    /// Datagrams the relay wrote more than 1 ms late (it could not keep up).
    pub late: u64,
    /// The sender's loss-recovery counters at the end ([`trace::SENDER_COUNTERS`]).
    pub sender_counters: Vec<(&'static str, u64)>,
    /// With `--trace`: the sender's window over time, and its time-weighted mean in bytes.
    pub series: trace::Series,
    pub mean_cwnd: Option<f64>,
}

impl RunOut {
    fn goodput_mbit(&self) -> f64 {
        if self.secs > 0.0 {
            self.bytes as f64 * 8.0 / self.secs / 1e6
        } else {
            0.0
        }
    }
}

/// The byte at stream offset `i`: not periodic within a transfer, cheap to check.
fn pattern_byte(i: u64) -> u8 {
    (i.wrapping_mul(0x9e37_79b9) >> 24) as u8 ^ (i >> 20) as u8
}

pub fn pattern_check(offset: u64, got: &[u8]) -> bool {
    got.iter()
        .enumerate()
        .all(|(k, b)| *b == pattern_byte(offset + k as u64))
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Cell {
    loss: f64,
    reorder: f64,
    rtt_ms: u64,
}

impl Cell {
    fn spec(&self, opts: &Opts, seed: u64) -> Spec {
        let half = self.rtt_ms as f64 / 2.0;
        // "bdp": one bandwidth-delay product of buffer, the classic sizing rule; a deeper
        // queue would keep the bottleneck busy whatever the loss and hide loss recovery.
        let queue = match opts.queue.as_str() {
            "bdp" if opts.rate != "off" => {
                let rate = tcpfsm_tun::impair::spec::parse_rate(&opts.rate).expect("--rate");
                let bdp = rate as f64 / 8.0 * self.rtt_ms as f64 / 1e3;
                format!("{}b", (bdp as u64).max(10 * 1500))
            }
            q => q.to_string(),
        };
        let reorder_hold = if self.reorder > 0.0 {
            format!(" reorder-delay {}ms", self.rtt_ms as f64 / 4.0)
        } else {
            String::new()
        };
        let bottleneck = if opts.rate == "off" {
            String::new()
        } else {
            format!(" rate {} queue {queue}", opts.rate)
        };
        let data = format!(
            "delay {half}ms loss {} reorder {}{reorder_hold}{bottleneck}",
            self.loss, self.reorder
        );
        Spec {
            data: data.parse().expect("grid spec"),
            ack: format!("delay {half}ms").parse().expect("ack spec"),
            size: opts.size_mib * 1024 * 1024,
            seed,
            max_time: opts.max_time,
            kernel_cc: opts.kernel_cc,
            trace: opts.trace,
        }
    }

    fn label(&self) -> String {
        format!(
            "loss {}% reord {}% rtt {}ms",
            self.loss * 100.0,
            self.reorder * 100.0,
            self.rtt_ms
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conf {
    LinuxLinux,
    OursLinux,
    LinuxOurs,
    Sim,
}

impl Conf {
    const ALL: [Conf; 4] = [
        Conf::LinuxLinux,
        Conf::OursLinux,
        Conf::LinuxOurs,
        Conf::Sim,
    ];

    fn name(self) -> &'static str {
        match self {
            Conf::LinuxLinux => "linux-linux",
            Conf::OursLinux => "ours-linux",
            Conf::LinuxOurs => "linux-ours",
            Conf::Sim => "sim",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Conf::LinuxLinux => "a",
            Conf::OursLinux => "b",
            Conf::LinuxOurs => "c",
            Conf::Sim => "s",
        }
    }
}

struct Opts {
    size_mib: u64,
    runs: u32,
    max_time: Duration,
    loss: Vec<f64>,
    reorder: Vec<f64>,
    rtt: Vec<u64>,
    confs: Vec<Conf>,
    rate: String,
    queue: String,
    json: Option<String>,
    from: Option<String>,
    kernel_cc: &'static str,
    trace: Option<&'static std::path::Path>,
    command: String,
}

fn list<T: std::str::FromStr>(v: &str, what: &str) -> Vec<T> {
    v.split(',')
        .map(|x| {
            x.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{what}: bad value {x:?}"))
        })
        .collect()
}

fn parse_args() -> Opts {
    let mut o = Opts {
        size_mib: 64,
        runs: 3,
        max_time: Duration::from_secs(300),
        loss: vec![0.005, 0.01, 0.02, 0.05],
        reorder: vec![0.0, 0.10],
        rtt: vec![10, 50],
        confs: Conf::ALL.to_vec(),
        rate: "100mbit".into(),
        queue: "bdp".into(),
        json: None,
        from: None,
        // Linux's default (CONFIG_DEFAULT_TCP_CONG) and issue 10's reference; some kernels
        // (this project's development VM) default to bbr instead.
        kernel_cc: "cubic",
        trace: None,
        command: String::new(),
    };
    let mut args = std::env::args().skip(1).peekable();
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            // cargo bench passes --bench to every bench binary.
            "--bench" => continue,
            "--quick" => {
                o.size_mib = 4;
                o.runs = 3;
                o.max_time = Duration::from_secs(60);
                o.loss = vec![0.01];
                o.reorder = vec![0.0];
                o.rtt = vec![10];
                continue;
            }
            "--size" => o.size_mib = val().parse().expect("--size MiB"),
            "--runs" => o.runs = val().parse().expect("--runs N"),
            "--max-time" => {
                o.max_time = Duration::from_secs(val().parse().expect("--max-time seconds"))
            }
            "--loss" => {
                o.loss = list::<f64>(&val(), "--loss")
                    .iter()
                    .map(|p| p / 100.0)
                    .collect()
            }
            "--reorder" => {
                o.reorder = list::<f64>(&val(), "--reorder")
                    .iter()
                    .map(|p| p / 100.0)
                    .collect()
            }
            "--rtt" => o.rtt = list(&val(), "--rtt"),
            "--rate" => o.rate = val(),
            "--queue" => o.queue = val(),
            "--json" => o.json = Some(val()),
            "--from" => o.from = Some(val()),
            "--trace" => {
                let dir = std::path::PathBuf::from(val());
                std::fs::create_dir_all(&dir)
                    .unwrap_or_else(|e| panic!("--trace {}: {e}", dir.display()));
                o.trace = Some(Box::leak(dir.into_boxed_path()));
            }
            "--kernel-cc" => {
                o.kernel_cc = match val().as_str() {
                    "cubic" => "cubic",
                    "reno" => "reno",
                    "bbr" => "bbr",
                    other => panic!("--kernel-cc {other:?}: cubic, reno or bbr"),
                }
            }
            "--configs" => {
                let want: Vec<String> = list(&val(), "--configs");
                o.confs = Conf::ALL
                    .into_iter()
                    .filter(|c| want.iter().any(|w| w == c.name() || w == c.short()))
                    .collect();
            }
            other => panic!(
                "unknown argument {other:?} (--quick, --size MiB, --runs N, --max-time S, \
                 --loss 0.5,1 --reorder 0,10 --rtt 10,50 (percent, ms), --rate, --queue, \
                 --configs a,b,c,s, --kernel-cc cubic|reno|bbr, --json FILE, --from FILE, --trace DIR)"
            ),
        }
    }
    let raw: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    o.command = format!(
        "cargo bench -p tcpfsm-tun --bench loss_grid{}{}",
        if raw.is_empty() { "" } else { " -- " },
        raw.join(" ")
    );
    o
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

struct Record {
    cell: usize,
    round: u32,
    conf: Conf,
    out: RunOut,
}

fn json_line(r: &Record, cell: &Cell, spec: &Spec) -> String {
    let o = &r.out;
    serde_json::json!({
        "config": r.conf.name(),
        "loss": cell.loss, "reorder": cell.reorder, "rtt_ms": cell.rtt_ms,
        "round": r.round, "seed": spec.seed, "size": spec.size,
        "max_time_s": spec.max_time.as_secs(),
        "kernel_cc": o.kernel_cc,
        "link_data": spec.data.to_string(), "link_ack": spec.ack.to_string(),
        "bytes": o.bytes, "complete": o.complete, "intact": o.intact,
        "secs": o.secs, "goodput_mbit": o.goodput_mbit(),
        "retrans_bytes": o.retrans_bytes,
        "data_segs": o.data_segs, "retrans_segs": o.retrans_segs,
        "link_drops": o.link_drops,
        "kernel_bytes_retrans": o.kernel_bytes_retrans,
        "kernel_retrans_segs": o.kernel_retrans_segs,
        "kernel_dsack_dups": o.kernel_dsack_dups,
        "kernel_reord_seen": o.kernel_reord_seen,
        "our_retrans_segs": o.our_retrans_segs,
        "relay_late": o.late,
        "sender_counters": o.sender_counters.iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect::<serde_json::Map<_, _>>(),
        "mean_cwnd": o.mean_cwnd,
    })
    .to_string()
}

fn main() {
    let opts = parse_args();
    if let Some(path) = &opts.from {
        table_from(path);
        return;
    }
    install_stop_handler();
    if !tcpfsm_tun::is_root() && opts.confs.iter().any(|c| *c != Conf::Sim) {
        eprintln!(
            "SKIPPED (needs root): the loss grid creates network namespaces and TUN devices \
             (run it as root, or --configs s for the simulator only)"
        );
        return;
    }
    let mut cells = Vec::new();
    for &loss in &opts.loss {
        for &reorder in &opts.reorder {
            for &rtt_ms in &opts.rtt {
                cells.push(Cell {
                    loss,
                    reorder,
                    rtt_ms,
                });
            }
        }
    }
    eprintln!("reproduce: {}", opts.command);
    eprintln!(
        "{} cells x {} runs x {} configurations, {} MiB each, at most {} s per run, kernel {}",
        cells.len(),
        opts.runs,
        opts.confs.len(),
        opts.size_mib,
        opts.max_time.as_secs(),
        opts.kernel_cc
    );
    let data: Vec<u8> = (0..opts.size_mib * 1024 * 1024).map(pattern_byte).collect();
    let mut json_file = opts
        .json
        .as_ref()
        .map(|p| std::fs::File::create(p).unwrap_or_else(|e| panic!("--json {p}: {e}")));
    let mut records = Vec::new();
    let pid = std::process::id();
    'grid: for round in 0..opts.runs {
        for (ci, cell) in cells.iter().enumerate() {
            let mut order = opts.confs.clone();
            if round % 2 == 1 {
                order.reverse();
            }
            for conf in order {
                if STOP.load(Ordering::SeqCst) {
                    eprintln!("interrupted: the table covers the runs done so far");
                    break 'grid;
                }
                // The same seed for every configuration of a cell and round: the same link.
                let seed = 1000 * u64::from(round) + ci as u64 + 1;
                let spec = cell.spec(&opts, seed);
                let name = format!("lg{pid}-{round}-{ci}-{}", conf.short());
                let res = match conf {
                    Conf::LinuxLinux => real::linux_linux(&spec, &name, &data),
                    Conf::OursLinux => real::ours_linux(&spec, &name, &data),
                    Conf::LinuxOurs => real::linux_ours(&spec, &name, &data),
                    Conf::Sim => Ok(sim::ours_ours(&spec, &data)),
                };
                let out = match res {
                    Ok(o) => {
                        if let Some(dir) = opts.trace {
                            o.series.write(dir, &name);
                        }
                        o
                    }
                    Err(e) => {
                        eprintln!("{} {}: setup failed: {e}", conf.name(), cell.label());
                        continue;
                    }
                };
                let rec = Record {
                    cell: ci,
                    round,
                    conf,
                    out,
                };
                let line = json_line(&rec, cell, &spec);
                println!("{line}");
                if let Some(f) = json_file.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                eprintln!(
                    "round {round} {:<32} {:<11} {:>8.2} Mbit/s  retrans {:>6.2}%{}{}",
                    cell.label(),
                    conf.name(),
                    rec.out.goodput_mbit(),
                    rec.out.retrans_bytes as f64 * 100.0 / rec.out.bytes.max(1) as f64,
                    if rec.out.complete { "" } else { "  INCOMPLETE" },
                    if rec.out.intact { "" } else { "  DATA DIFFERS" },
                );
                records.push(rec);
            }
        }
    }
    table(&opts.confs, opts.runs, opts.max_time, &cells, &records);
}

/// Per cell, as a Markdown table: median goodput and retransmitted share (of the bytes that
/// arrived) per configuration, and the targets as medians of per-round ratios against
/// (a).
fn table(confs: &[Conf], runs: u32, max_time: Duration, cells: &[Cell], records: &[Record]) {
    let pick = |ci: usize, conf: Conf, f: &dyn Fn(&RunOut) -> f64| -> Vec<(u32, f64)> {
        records
            .iter()
            .filter(|r| r.cell == ci && r.conf == conf)
            .map(|r| (r.round, f(&r.out)))
            .collect()
    };
    let ratio = |ci: usize, num: Conf, f: &dyn Fn(&RunOut) -> f64| -> Option<f64> {
        paired_ratio(&pick(ci, num, f), &pick(ci, Conf::LinuxLinux, f))
    };
    let share = |bytes: u64, o: &RunOut| bytes as f64 / o.bytes.max(1) as f64;
    let gp: &dyn Fn(&RunOut) -> f64 = &|o| o.goodput_mbit();
    let rtx: &dyn Fn(&RunOut) -> f64 = &|o| share(o.retrans_bytes, o);
    // (c)'s target is the kernel sender's own count.
    let krtx: &dyn Fn(&RunOut) -> f64 =
        &|o| share(o.kernel_bytes_retrans.unwrap_or(o.retrans_bytes), o);
    println!();
    println!(
        "Goodput in Mbit/s and retransmitted bytes in % of the bytes delivered, medians of {runs} \
         run(s); ratios are medians of per-round ratios to (a)."
    );
    println!();
    header(
        confs,
        |c| format!(" {} {} Mbit/s | rtx % |", c.short(), c.name()),
        &["b/a goodput", "b/a rtx", "c/a rtx", "s/a goodput"],
    );
    for (ci, cell) in cells.iter().enumerate() {
        let mut row = format!("| {} |", cell.label());
        for &c in confs {
            let g = median(pick(ci, c, gp).into_iter().map(|x| x.1).collect());
            let f = if c == Conf::LinuxOurs { krtx } else { rtx };
            let r = median(pick(ci, c, f).into_iter().map(|x| x.1 * 100.0).collect());
            let cut = records
                .iter()
                .any(|r| r.cell == ci && r.conf == c && !r.out.complete);
            row += &format!(
                " {}{} | {} |",
                show(g, 2),
                if cut { "*" } else { "" },
                show(r, 2)
            );
        }
        println!(
            "{row} {} | {} | {} | {} |",
            show(ratio(ci, Conf::OursLinux, gp), 2),
            show(ratio(ci, Conf::OursLinux, rtx), 2),
            show(ratio(ci, Conf::LinuxOurs, krtx), 2),
            show(ratio(ci, Conf::Sim, gp), 2),
        );
    }
    println!();
    println!(
        "Targets (issue 10): b/a goodput >= 1, b/a rtx <= 1, c/a rtx <= 1.2 (c's rtx is the \
         kernel sender's tcpi_bytes_retrans), s/a goodput >= 1. * = a run stopped at --max-time \
         ({} s); its goodput is over what arrived by then.",
        max_time.as_secs()
    );
    senders(confs, cells, records);
    let labels: Vec<String> = cells.iter().map(Cell::label).collect();
    draw::table(confs, &labels, records);
}

/// The median over the rounds both have of `num`'s value over `base`'s (rounds where `base`
/// is 0 have no ratio): a paired comparison, so that a round's conditions cancel out.
fn paired_ratio(num: &[(u32, f64)], base: &[(u32, f64)]) -> Option<f64> {
    let paired = num
        .iter()
        .filter_map(|(r, v)| {
            base.iter()
                .find(|(rb, b)| rb == r && *b > 0.0)
                .map(|(_, b)| v / b)
        })
        .collect();
    median(paired)
}

/// A table cell: `v` with `p` decimals, or "-" when there is no value.
fn show(v: Option<f64>, p: usize) -> String {
    v.map_or("-".to_string(), |x| format!("{x:.p$}"))
}

/// A per-cell Markdown table's header and rule: the cell, two columns per configuration (`two`
/// writes them, each as ` name |`), then the `tail` columns.
fn header(confs: &[Conf], two: impl Fn(Conf) -> String, tail: &[&str]) {
    let mut head = String::from("| cell |");
    let mut rule = String::from("|---|");
    for &c in confs {
        head += &two(c);
        rule += "---:|---:|";
    }
    for t in tail {
        head += &format!(" {t} |");
        rule += "---:|";
    }
    println!("{head}");
    println!("{rule}");
}

/// Per cell and sender, medians over the runs: how the sender found and repaired loss (its
/// TcpExt counters, the kernel's in its namespace or ours under the same names), per MiB
/// delivered so that runs cut at --max-time compare, and its mean window (with --trace).
fn senders(confs: &[Conf], cells: &[Cell], records: &[Record]) {
    const COLS: [(&str, &[&str]); 6] = [
        ("recoveries", &["TCPSackRecovery"]),
        ("RTOs", &["TCPTimeouts"]),
        ("loss probes", &["TCPLossProbes"]),
        (
            "undos",
            &[
                "TCPFullUndo",
                "TCPPartialUndo",
                "TCPDSACKUndo",
                "TCPLossUndo",
            ],
        ),
        ("spurious RTOs", &["TCPSpuriousRTOs"]),
        ("retrans segs", &["RetransSegs"]),
    ];
    if !records.iter().any(|r| !r.out.sender_counters.is_empty()) {
        return;
    }
    println!();
    println!(
        "Senders' loss recovery, per MiB delivered (medians of the runs; TcpExt names), and the \
         time-weighted mean cwnd in kB (with --trace)."
    );
    println!();
    let mut head = String::from("| cell | sender |");
    for (name, _) in COLS {
        head += &format!(" {name} |");
    }
    println!("{head} mean cwnd kB |");
    println!("|---|---|{}---:|", "---:|".repeat(COLS.len()));
    for (ci, cell) in cells.iter().enumerate() {
        for &c in confs {
            let runs: Vec<&RunOut> = records
                .iter()
                .filter(|r| r.cell == ci && r.conf == c && !r.out.sender_counters.is_empty())
                .map(|r| &r.out)
                .collect();
            if runs.is_empty() {
                continue;
            }
            let mut row = format!("| {} | {} |", cell.label(), c.short());
            for (_, names) in COLS {
                let per_mib = runs
                    .iter()
                    .map(|o| {
                        let n: u64 = o
                            .sender_counters
                            .iter()
                            .filter(|(k, _)| names.contains(k))
                            .map(|(_, v)| v)
                            .sum();
                        n as f64 * 1048576.0 / o.bytes.max(1) as f64
                    })
                    .collect();
                row += &format!(" {} |", show(median(per_mib), 2));
            }
            let cwnd = median(runs.iter().filter_map(|o| o.mean_cwnd).collect());
            println!("{row} {} |", show(cwnd.map(|b| b / 1e3), 1));
        }
    }
}

/// `--from FILE`: the table again from the JSON lines of an earlier run.
fn table_from(path: &str) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("--from {path}: {e}"));
    let mut cells: Vec<Cell> = Vec::new();
    let mut records = Vec::new();
    let mut max_secs: f64 = 0.0;
    for line in text.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
        let u = |k: &str| v[k].as_u64();
        let cell = Cell {
            loss: f("loss"),
            reorder: f("reorder"),
            rtt_ms: u("rtt_ms").unwrap_or(0),
        };
        let ci = cells.iter().position(|c| *c == cell).unwrap_or_else(|| {
            cells.push(cell);
            cells.len() - 1
        });
        let Some(conf) = Conf::ALL
            .into_iter()
            .find(|c| Some(c.name()) == v["config"].as_str())
        else {
            continue;
        };
        // Older files lack the limit; the longest run is a lower bound of it.
        let limit = v["max_time_s"].as_f64().unwrap_or(f("secs").ceil());
        max_secs = max_secs.max(limit);
        records.push(Record {
            cell: ci,
            round: u("round").unwrap_or(0) as u32,
            conf,
            out: RunOut {
                bytes: u("bytes").unwrap_or(0),
                complete: v["complete"].as_bool().unwrap_or(false),
                intact: v["intact"].as_bool().unwrap_or(false),
                secs: f("secs"),
                retrans_bytes: u("retrans_bytes").unwrap_or(0),
                data_segs: u("data_segs").unwrap_or(0),
                retrans_segs: u("retrans_segs").unwrap_or(0),
                link_drops: u("link_drops"),
                kernel_bytes_retrans: u("kernel_bytes_retrans"),
                kernel_retrans_segs: u("kernel_retrans_segs"),
                kernel_dsack_dups: u("kernel_dsack_dups"),
                kernel_reord_seen: u("kernel_reord_seen"),
                our_retrans_segs: u("our_retrans_segs"),
                kernel_cc: v["kernel_cc"].as_str().map(str::to_string),
                late: u("relay_late").unwrap_or(0),
                sender_counters: trace::SENDER_COUNTERS
                    .iter()
                    .filter_map(|n| Some((*n, v["sender_counters"][*n].as_u64()?)))
                    .collect(),
                series: trace::Series::default(),
                mean_cwnd: v["mean_cwnd"].as_f64(),
            },
        });
    }
    let confs: Vec<Conf> = Conf::ALL
        .into_iter()
        .filter(|c| records.iter().any(|r| r.conf == *c))
        .collect();
    let runs = records.iter().map(|r| r.round + 1).max().unwrap_or(0);
    let max_time = Duration::from_secs_f64(max_secs);
    table(&confs, runs, max_time, &cells, &records);
}
