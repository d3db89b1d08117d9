//! `tcpfsm sim`: run a lifecycle scenario on the simulated network and draw it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use tcpfsm_sim::render::{self, Options};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Sequence diagram for the terminal (80 columns), then each connection's state path
    Ascii,
    /// One JSON object per line (schema in the README)
    Json,
    /// The sequence diagram as an SVG picture
    Svg,
}

#[derive(clap::Args)]
#[command(after_help = "Run `tcpfsm sim --list` to see the built-in scenarios.")]
pub struct Args {
    /// Built-in scenario to run (see --list)
    #[arg(required_unless_present_any = ["list", "script"], conflicts_with = "script")]
    pub scenario: Option<String>,
    /// List the built-in scenarios, one line each
    #[arg(long)]
    pub list: bool,
    /// Run a scenario script (format: crates/tcpfsm-sim/SCRIPT.md)
    #[arg(long, value_name = "FILE")]
    pub script: Option<PathBuf>,
    /// Seed of every random choice (ISNs, ports, link impairments); same seed, same trace
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Ascii)]
    pub format: Format,
    /// Write the output to FILE instead of standard output
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Show absolute sequence numbers (default: relative to each side's ISN, like Wireshark)
    #[arg(long)]
    pub absolute: bool,
    /// Show every iteration of repeats and every segment of long runs
    #[arg(long)]
    pub full: bool,
    /// Print the built-in scenario's script instead of running it
    #[arg(long)]
    pub show_script: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.list {
        let builtins = tcpfsm_sim::builtins();
        let width = builtins.iter().map(|b| b.name.len()).max().unwrap_or(0);
        let mut out = String::new();
        for b in builtins {
            out.push_str(&format!("{:width$}  {}\n", b.name, b.summary()));
        }
        print!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    let outcome = if let Some(path) = &args.script {
        let src = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read script {}", path.display()))?;
        let script = tcpfsm_sim::parse(&path.display().to_string(), &src)?;
        if args.show_script {
            print!("{src}");
            return Ok(ExitCode::SUCCESS);
        }
        tcpfsm_sim::run(&script, args.seed)?
    } else {
        let name = args.scenario.as_deref().unwrap_or_default();
        let Some(b) = tcpfsm_sim::builtin(name) else {
            let names: Vec<&str> = tcpfsm_sim::builtins().iter().map(|b| b.name).collect();
            bail!(
                "unknown scenario {name:?}; built-in scenarios: {}",
                names.join(", ")
            );
        };
        if args.show_script {
            print!("{}", b.source);
            return Ok(ExitCode::SUCCESS);
        }
        b.run(args.seed)?
    };
    let opts = Options {
        relative_seq: !args.absolute,
        collapse_after: if args.full { usize::MAX / 2 } else { 3 },
    };
    let text = match args.format {
        Format::Ascii => render::ascii(&outcome.trace, &opts),
        Format::Json => render::json(&outcome.trace),
        Format::Svg => render::svg(&outcome.trace, &opts),
    };
    match &args.out {
        Some(path) => std::fs::write(path, &text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth a message.
            if let Err(e) = stdout.write_all(text.as_bytes()) {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    return Err(e.into());
                }
            }
        }
    }
    if outcome.failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for f in &outcome.failures {
            eprintln!("tcpfsm sim: {f}");
        }
        Ok(ExitCode::from(1))
    }
}
