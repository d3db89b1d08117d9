//! What the sender did, for explaining a cell: its loss-recovery counters at the end of the
//! run (Linux's TcpExt names, read from the kernel sender's namespace or from our endpoint's
//! MIB, which uses the same names), and with `--trace DIR` its window over time, sampled every
//! 10 ms (`TCP_INFO` for a kernel sender, `info()` for ours, virtual time in the simulator).

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tcpfsm_tun::core::{ConnInfo, Counter, Stats};
use tcpfsm_tun::KernelTcpInfo;

/// The sender's counters the report keeps: how it detected and repaired loss. Each is a
/// Linux TcpExt (or Tcp) name that our engine counts under the same name.
pub const SENDER_COUNTERS: [&str; 16] = [
    "RetransSegs",
    "TCPSackRecovery",
    "TCPFastRetrans",
    "TCPLossProbes",
    "TCPLossProbeRecovery",
    "TCPTimeouts",
    "TCPSpuriousRTOs",
    "TCPLostRetransmit",
    "TCPSackRecoveryFail",
    "TCPDSACKRecv",
    "TCPDSACKUndo",
    "TCPFullUndo",
    "TCPPartialUndo",
    "TCPLossUndo",
    "TCPHystartTrainDetect",
    "TCPHystartDelayDetect",
];

/// [`SENDER_COUNTERS`] from a MIB: our endpoint's `stats()`, or the kernel's as
/// [`kernel_mib`] reads it (one type, Linux's names, for both).
pub fn sender_counters(mib: &Stats) -> Vec<(&'static str, u64)> {
    SENDER_COUNTERS
        .iter()
        .filter_map(|n| Some((*n, mib[Counter::from_name(n)?])))
        .collect()
}

/// The TCP MIB of the network namespace the calling thread is in (each run's namespaces are
/// fresh, so its counters are the run's own).
pub fn kernel_mib() -> Option<Stats> {
    tcpfsm_host::RawCounters::read().ok().map(|r| r.mib)
}

/// One sample of the sender's window.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub cwnd: u64,
    /// `None` before the first reduction.
    pub ssthresh: Option<u64>,
    pub in_flight: u64,
    pub srtt_us: u64,
    pub retrans_segs: u64,
    /// Linux's `tcpi_ca_state` names (Open, Disorder, CWR, Recovery, Loss), or our recovery
    /// phase.
    pub phase: &'static str,
}

impl Sample {
    pub fn from_kernel(ti: &KernelTcpInfo) -> Sample {
        let mss = u64::from(ti.snd_mss);
        let in_flight = (u64::from(ti.unacked) + u64::from(ti.retrans))
            .saturating_sub(u64::from(ti.sacked) + u64::from(ti.lost));
        Sample {
            cwnd: u64::from(ti.snd_cwnd) * mss,
            ssthresh: (ti.snd_ssthresh < 0x7fff_ffff).then(|| u64::from(ti.snd_ssthresh) * mss),
            in_flight: in_flight * mss,
            srtt_us: ti.rtt.as_micros() as u64,
            retrans_segs: u64::from(ti.total_retrans),
            phase: match ti.ca_state {
                0 => "Open",
                1 => "Disorder",
                2 => "CWR",
                3 => "Recovery",
                4 => "Loss",
                _ => "?",
            },
        }
    }

    pub fn from_ours(i: &ConnInfo) -> Sample {
        Sample {
            cwnd: u64::from(i.cwnd),
            ssthresh: (i.ssthresh < u32::MAX / 2).then_some(u64::from(i.ssthresh)),
            in_flight: u64::from(i.in_flight),
            srtt_us: i.srtt.map_or(0, |d| d.as_micros() as u64),
            retrans_segs: i.retransmits,
            phase: i.recovery,
        }
    }
}

/// Samples taken over a run: (time since the connection was established, sample).
#[derive(Debug, Clone, Default)]
pub struct Series(pub Vec<(Duration, Sample)>);

impl Series {
    /// Writes `DIR/NAME.csv`; a failure is reported, never fatal to the grid.
    pub fn write(&self, dir: &Path, name: &str) {
        let path = dir.join(format!("{name}.csv"));
        let res = (|| -> io::Result<()> {
            let mut f = io::BufWriter::new(std::fs::File::create(&path)?);
            writeln!(f, "t_ms,cwnd,ssthresh,in_flight,srtt_us,retrans_segs,phase")?;
            for (t, s) in &self.0 {
                writeln!(
                    f,
                    "{:.1},{},{},{},{},{},{}",
                    t.as_secs_f64() * 1e3,
                    s.cwnd,
                    s.ssthresh.map_or(String::new(), |v| v.to_string()),
                    s.in_flight,
                    s.srtt_us,
                    s.retrans_segs,
                    s.phase
                )?;
            }
            f.flush()
        })();
        if let Err(e) = res {
            eprintln!("--trace: {}: {e}", path.display());
        }
    }

    /// The time-weighted mean window, in bytes (each sample stands until the next).
    pub fn mean_cwnd(&self) -> Option<f64> {
        let (first, last) = (self.0.first()?.0, self.0.last()?.0);
        let span = (last - first).as_secs_f64();
        if span <= 0.0 {
            return None;
        }
        let sum: f64 = self
            .0
            .windows(2)
            .map(|w| w[0].1.cwnd as f64 * (w[1].0 - w[0].0).as_secs_f64())
            .sum();
        Some(sum / span)
    }
}

/// How often a sampler looks at the sender.
pub const EVERY: Duration = Duration::from_millis(10);

/// Calls `probe` every [`EVERY`] from `t0` until `done` is set.
pub fn sample_until(
    t0: Instant,
    done: &AtomicBool,
    mut probe: impl FnMut() -> Option<Sample>,
) -> Series {
    let mut out = Series::default();
    while !done.load(Ordering::Relaxed) {
        if let Some(s) = probe() {
            out.0.push((t0.elapsed(), s));
        }
        std::thread::sleep(EVERY);
    }
    out
}
