//! `tcpfsm`: the command-line face of the toolkit. Each subcommand lives in its own module
//! under `cmd/`; this file only dispatches.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cmd;

#[derive(Parser)]
#[command(
    name = "tcpfsm",
    version,
    about = "The whole life of a TCP connection: run it, watch it, diagnose it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a lifecycle scenario on the simulated network and draw it
    Sim(cmd::sim::Args),
    /// Count this host's TCP connections by state (netlink sock_diag), list and group them
    States(cmd::states::Args),
    /// The kernel's TCP counters (snmp Tcp, netstat TcpExt) like nstat: increments since the last run, over an interval, or absolute
    Counters(cmd::counters::Args),
    /// Sample this host and give a verdict per diagnosis rule
    Diagnose(cmd::diagnose::Args),
    /// Stream the kernel's TCP state transitions as they happen
    Trace(cmd::trace::Args),
    /// Live terminal view of states, trends and alerts
    Watch(cmd::watch::Args),
    /// Serve Prometheus metrics
    Export(cmd::export::Args),
    /// Listen on a port with our TCP over a TUN device (netcat-like)
    Listen(cmd::net::ListenArgs),
    /// Connect with our TCP over a TUN device (netcat-like)
    Connect(cmd::net::ConnectArgs),
    /// Run packetdrill scripts on our engine, our TCP over TUN, or the Linux kernel
    Drill(cmd::drill::Args),
    /// An impaired link (loss, delay, reordering, rate, ...) between two network namespaces
    Link(Box<cmd::link::Args>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(a) => cmd::sim::run(a),
        Command::States(a) => cmd::states::run(a),
        Command::Counters(a) => cmd::counters::run(a),
        Command::Diagnose(a) => cmd::diagnose::run(a),
        Command::Trace(a) => cmd::trace::run(a),
        Command::Watch(a) => cmd::watch::run(a),
        Command::Export(a) => cmd::export::run(a),
        Command::Listen(a) => cmd::net::listen(a),
        Command::Connect(a) => cmd::net::connect(a),
        Command::Drill(a) => cmd::drill::run(a),
        Command::Link(a) => cmd::link::run(*a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tcpfsm: {e:#}");
            ExitCode::from(2)
        }
    }
}
