//! `tcpfsm export`: a Prometheus exporter for this host's TCP — the node exporter's TCP
//! metrics under their own names, plus per-process, per-listener and per-remote detail and the
//! diagnosis verdicts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tcpfsm_live::exporter::{run as serve, Collector};
use tcpfsm_live::owners::OwnerMode;
use tcpfsm_live::server::ServerConfig;
use tcpfsm_observe::Thresholds;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Owners {
    Cached,
    Full,
    Off,
}

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  tcpfsm export --listen 127.0.0.1:9184                    # Prometheus scrapes /metrics here
  tcpfsm export --owners full                              # owners exact in every scrape
  tcpfsm export --owners off                               # no /proc walk at all
  tcpfsm export --top 5 --thresholds thresholds.toml       # fewer series; your thresholds
  tcpfsm export --owners-interval 10s                      # background walk every 10 s
  tcpfsm export --max-connections 256 --max-per-client 32  # a smaller connection table
  tcpfsm export --header-timeout 2s --idle-timeout 30s     # drop slow and idle clients sooner
  curl -s --compressed http://127.0.0.1:9184/metrics       # gzip when the client asks

Under a connection flood a new connection takes the place of the oldest one that never \
sent a complete request (else of the longest-idle keep-alive), so clients that hold \
connections open cannot lock a scraper out. Rates and ratios are not exported (they would \
depend on who scraped last): deploy/prometheus/rules.yml computes them from the raw counters.")]
pub struct Args {
    /// Address to serve /metrics on (loopback by default; port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:9184")]
    pub listen: SocketAddr,
    /// Per-process, per-remote and per-listener series kept per metric, largest first (the
    /// CLOSE_WAIT and TIME_WAIT series beyond it are summed into one "other" series)
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Scrapes served at once; more get 503
    #[arg(long, default_value_t = 4)]
    pub max_in_flight: usize,
    /// A client must send its request headers within this time
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Connections open at once; when full, a new one replaces the oldest that was never
    /// answered (else the longest-idle keep-alive). Lowered to fit the open-file limit
    #[arg(long, default_value_t = ServerConfig::default().max_connections)]
    pub max_connections: usize,
    /// Connections open at once from one client address (same replacement rule)
    #[arg(long, default_value_t = ServerConfig::default().max_per_client)]
    pub max_per_client: usize,
    /// How socket owners are found (per-process CLOSE_WAIT, listener owners, open files):
    /// `cached` walks /proc in the background every --owners-interval (and sooner when a
    /// scrape meets a socket it has not seen, at most every 5 s), so scrapes never walk it
    /// themselves; `full` walks it in every scrape (exact, but one readlink per descriptor
    /// on the host: about 1 s at 50,000 descriptors); `off` never (no per-process series)
    #[arg(long, value_enum, default_value = "cached")]
    pub owners: Owners,
    /// Longest time between two background /proc walks with --owners cached
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub owners_interval: Duration,
    /// Same as --owners off
    #[arg(long, conflicts_with = "owners")]
    pub no_processes: bool,
    /// Diagnosis thresholds (TOML; keys as in `tcpfsm diagnose`)
    #[arg(long)]
    pub thresholds: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let thresholds = match &args.thresholds {
        Some(p) => Thresholds::load(p)?,
        None => Thresholds::default(),
    };
    if !args.listen.ip().is_loopback() {
        // The page names processes, pids and remote addresses: say so when it leaves the host.
        eprintln!(
            "tcpfsm: warning: serving on {} (not loopback): anyone who can reach it sees \
             process names and remote addresses",
            args.listen
        );
    }
    let owners = match (args.no_processes, args.owners) {
        (true, _) | (_, Owners::Off) => OwnerMode::Off,
        (_, Owners::Full) => OwnerMode::Full,
        (_, Owners::Cached) => {
            anyhow::ensure!(
                !args.owners_interval.is_zero(),
                "--owners-interval must be more than zero"
            );
            OwnerMode::Cached(args.owners_interval)
        }
    };
    let collector = Arc::new(Collector::new(thresholds, args.top, owners)?);
    // The first scrape already names owners: wait for the first walk (bounded).
    if let Some(took) = collector.ready(Duration::from_secs(20)) {
        if took > Duration::from_secs(1) {
            eprintln!(
                "tcpfsm: finding socket owners took {} (walked in the background, every {})",
                humantime::format_duration(Duration::from_millis(took.as_millis() as u64)),
                humantime::format_duration(args.owners_interval)
            );
        }
    }
    anyhow::ensure!(
        !args.header_timeout.is_zero() && !args.idle_timeout.is_zero(),
        "--header-timeout and --idle-timeout must be more than zero"
    );
    let cfg = ServerConfig {
        max_in_flight: args.max_in_flight.max(1),
        max_connections: args.max_connections.max(1),
        max_per_client: args.max_per_client.max(1),
        header_timeout: args.header_timeout,
        idle_timeout: args.idle_timeout,
        ..ServerConfig::default()
    };
    let c = collector.clone();
    serve(args.listen, cfg, Arc::new(move || c.scrape()), |addr| {
        eprintln!("tcpfsm: serving http://{addr}/metrics");
    })?;
    Ok(ExitCode::SUCCESS)
}
