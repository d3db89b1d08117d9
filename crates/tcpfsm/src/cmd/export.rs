//! `tcpfsm export`: a Prometheus exporter for this host's TCP — the node exporter's TCP
//! metrics under their own names, plus per-process, per-listener and per-remote detail and the
//! diagnosis verdicts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tcpfsm_live::exporter::{run as serve, Collector};
use tcpfsm_live::server::ServerConfig;
use tcpfsm_observe::Thresholds;

#[derive(clap::Args)]
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
    /// Skip the /proc walk: no per-process CLOSE_WAIT, listener owners or open-file counts
    /// (cheaper scrapes on hosts with very many sockets)
    #[arg(long)]
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
    let collector = Arc::new(Collector::new(thresholds, args.top, !args.no_processes)?);
    let cfg = ServerConfig {
        max_in_flight: args.max_in_flight.max(1),
        header_timeout: args.header_timeout,
        ..ServerConfig::default()
    };
    let c = collector.clone();
    serve(args.listen, cfg, Arc::new(move || c.scrape()), |addr| {
        eprintln!("tcpfsm: serving http://{addr}/metrics");
    })?;
    Ok(ExitCode::SUCCESS)
}
