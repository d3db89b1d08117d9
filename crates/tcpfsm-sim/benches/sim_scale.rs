//! The simulator at scale: segments per second and peak resident memory of the scenarios in
//! this directory (a million-SYN flood; 10,000 concurrent connections over a 1 % lossy link).
//!
//! ```sh
//! cargo bench -p tcpfsm-sim --bench sim_scale            # 3 rounds each, interleaved
//! ROUNDS=5 cargo bench -p tcpfsm-sim --bench sim_scale
//! ```
//!
//! Each round runs one scenario in a fresh child process (so each peak RSS is its own), with
//! every event streamed to a sink that only counts them — what `tcpfsm sim --format json >
//! /dev/null` costs minus the JSON encoding. Rounds are interleaved (A B, B A, …); the table
//! gives medians, and each round is also printed as a JSON line.

use std::process::Command;
use std::time::Instant;

use tcpfsm_sim::sink::Sink;
use tcpfsm_sim::trace::TraceEvent;

const SCENARIOS: &[&str] = &["syn-flood-1m", "conns-10k-loss"];

#[derive(Default)]
struct Count {
    segments: u64,
    events: u64,
}

impl Sink for Count {
    fn event(&mut self, ev: &TraceEvent) -> std::io::Result<()> {
        self.events += 1;
        self.segments += u64::from(matches!(ev, TraceEvent::Segment(_)));
        Ok(())
    }
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// In the child: run one scenario and print one JSON line.
fn child(name: &str) {
    let path = format!("{}/benches/{name}.tcpfsm", env!("CARGO_MANIFEST_DIR"));
    let src = std::fs::read_to_string(&path).expect("scenario file");
    let script = tcpfsm_sim::parse(&path, &src).expect("scenario parses");
    let mut sink = Count::default();
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let report = tcpfsm_sim::run_with(&script, None, &mut sink).expect("scenario runs");
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
    assert!(report.passed(), "{name}: {:?}", report.failures);
    println!(
        r#"{{"scenario":"{name}","segments":{},"events":{},"virtual_s":{:.3},"wall_s":{wall:.3},"cpu_s":{cpu:.3},"segments_per_cpu_s":{:.0},"peak_rss_kib":{}}}"#,
        sink.segments,
        sink.events,
        report.end_us as f64 / 1e6,
        sink.segments as f64 / cpu,
        peak_rss_kib()
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1]);
        return;
    }
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let exe = std::env::current_exe().expect("own path");
    let mut results: Vec<(String, serde_json::Value)> = Vec::new();
    for round in 0..rounds {
        let mut order: Vec<&str> = SCENARIOS.to_vec();
        if round % 2 == 1 {
            order.reverse();
        }
        for name in order {
            let out = Command::new(&exe)
                .args(["--child", name])
                .output()
                .expect("run child");
            assert!(
                out.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let line = String::from_utf8(out.stdout).unwrap();
            let line = line.lines().last().unwrap_or_default().to_string();
            println!("{line}");
            results.push((name.to_string(), serde_json::from_str(&line).unwrap()));
        }
    }
    println!("\nscenario          segments   CPU s   wall s   segments/CPU s   peak RSS (median of {rounds})");
    for name in SCENARIOS {
        let of = |k: &str| -> Vec<f64> {
            results
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v[k].as_f64().unwrap())
                .collect()
        };
        println!(
            "{name:<16} {:>9.0} {:>7.2} {:>8.2} {:>16.0} {:>8.1} MiB",
            median(of("segments")),
            median(of("cpu_s")),
            median(of("wall_s")),
            median(of("segments_per_cpu_s")),
            median(of("peak_rss_kib")) / 1024.0
        );
    }
}
