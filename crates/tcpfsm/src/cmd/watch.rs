//! `tcpfsm watch`: a live terminal view of this host's TCP — the state diagram with counts,
//! counts over time, the processes holding CLOSE_WAIT sockets, and the diagnosis alerts.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tcpfsm_host::{Sampler, SnapshotOptions};
use tcpfsm_live::watch::{render_text, View};
use tcpfsm_observe::{diagnose, Snapshot, Thresholds};

#[derive(clap::Args)]
#[command(after_help = "\
Every panel fits an 80x24 terminal: there the state diagram is drawn as a grid of one-line \
cells (same layout: setup on top, the active closer's states on the left, the passive \
closer's on the right), with the trends, the CLOSE_WAIT owners and the alerts below it; the \
boxed diagram needs 102x27. Panels show all they hold or say what they left out (\"+3 more\").

Examples:
  tcpfsm watch                                   # interactive (q, Esc or Ctrl-C quits)
  tcpfsm watch --once --width 80 --height 24     # one frame as text, no terminal needed
  tcpfsm watch --frames 5 --interval 500ms       # five frames, form-feed separated
  tcpfsm watch --netns blue                      # another network namespace (ip netns add blue)
  tcpfsm watch --thresholds thresholds.toml      # alerts at your thresholds (as diagnose)")]
pub struct Args {
    /// Time between samples (e.g. 1s, 500ms)
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Print one frame to stdout and exit (no terminal needed)
    #[arg(long, conflicts_with = "frames")]
    pub once: bool,
    /// Print this many frames to stdout, one interval apart, and exit (no terminal needed)
    #[arg(long)]
    pub frames: Option<u32>,
    /// Width of printed frames
    #[arg(long, default_value_t = 120)]
    pub width: u16,
    /// Height of printed frames
    #[arg(long, default_value_t = 40)]
    pub height: u16,
    /// Diagnosis thresholds (TOML; keys as in `tcpfsm diagnose`)
    #[arg(long)]
    pub thresholds: Option<std::path::PathBuf>,
    /// Watch the network namespace NAME (/run/netns/NAME, or a path such as /proc/PID/ns/net),
    /// as `states`, `counters`, `diagnose` and `trace` do
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
}

/// Snapshots kept for the diagnosis (growth needs a series).
const DIAG_SAMPLES: usize = 10;

struct Source {
    sampler: Sampler,
    samples: Vec<Snapshot>,
    thresholds: Thresholds,
    view: View,
    interval: Duration,
}

impl Source {
    fn tick(&mut self) {
        self.view.clock = clock();
        match self.sampler.sample() {
            Ok(s) => {
                self.samples.push(s);
                if self.samples.len() > DIAG_SAMPLES {
                    self.samples.remove(0);
                }
                let verdicts = diagnose(&self.samples, &self.thresholds);
                let last = self.samples.last().expect("just pushed");
                self.view.push(last, verdicts);
            }
            Err(e) => self.view.error = Some(e.to_string()),
        }
        self.view.interval_text = humantime::format_duration(self.interval).to_string();
    }
}

fn clock() -> String {
    let s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        % 86_400;
    format!("{:02}:{:02}:{:02} UTC", s / 3600, s / 60 % 60, s % 60)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !args.interval.is_zero(),
        "--interval must be more than zero"
    );
    // Before the first sample: the sampler's netlink socket and /proc/thread-self/net follow
    // the thread's namespace from then on (tcpfsm_host::netns).
    if let Some(ns) = &args.netns {
        tcpfsm_host::netns::enter(ns)?;
    }
    let thresholds = match &args.thresholds {
        Some(p) => Thresholds::load(p)?,
        None => Thresholds::default(),
    };
    let mut src = Source {
        sampler: Sampler::new(SnapshotOptions::default())?,
        samples: Vec::new(),
        thresholds,
        view: View {
            host: tcpfsm_live::trace::hostname(),
            ..View::default()
        },
        interval: args.interval,
    };
    let frames = if args.once { Some(1) } else { args.frames };
    if let Some(n) = frames {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for i in 0..n {
            if i > 0 {
                std::thread::sleep(args.interval);
            }
            src.tick();
            out.write_all(render_text(&src.view, args.width, args.height).as_bytes())?;
            if i + 1 < n {
                // A form feed between frames, as pagers and `less` understand.
                out.write_all(b"\x0c\n")?;
            }
        }
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    interactive(&mut src)
}

fn interactive(src: &mut Source) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    anyhow::ensure!(
        std::io::stdout().is_terminal() && std::io::stdin().is_terminal(),
        "watch needs a terminal; use --once or --frames N to print frames instead"
    );
    let interval = src.interval;
    tcpfsm_live::watch::run_terminal(interval, |view| {
        src.tick();
        *view = src.view.clone();
    })?;
    Ok(ExitCode::SUCCESS)
}
