//! `tcpfsm sim`: run a lifecycle scenario on the simulated network and draw it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use tcpfsm_sim::pcap::PcapSink;
use tcpfsm_sim::render::{self, JsonSink, Options};
use tcpfsm_sim::sink::Tee;

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
#[command(after_help = "\
Run `tcpfsm sim --list` to see the built-in scenarios.

Segments are marked as Wireshark's tcp.analysis flags mark them: [retransmission], \
[dup ACK 12#2] (the second duplicate of frame 12), [zero window], [window update], \
[window probe], [keep-alive], [challenge ACK], [SYN cookie]; where a label is tight, the short \
forms [rtx], [dup#2], [zwin], [wupd], [probe], [ka], [chal], [cookie]. SYN options are shown \
as <mss 1460,sackOK,TS,wscale 7>; JSON has every segment's options and \"analysis\".

Examples:
  tcpfsm sim client-close                          # the diagram and each state path
  tcpfsm sim syn-flood --format svg --out f.svg    # the flood as one band, cookies marked
  tcpfsm sim lost-final-ack --pcap l.pcap          # also a capture for Wireshark/tshark
  tcpfsm sim abort --format json | jq .            # one JSON object per line
  tcpfsm sim client-close --absolute --seed 7      # raw sequence numbers, other ISNs
  tcpfsm sim syn-flood --full                      # every segment, no summarised band
  tcpfsm sim --show-script abort > my.tcpfsm       # a built-in as a starting point
  tcpfsm sim --script my.tcpfsm                    # run your own (crates/tcpfsm-sim/SCRIPT.md)")]
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
    /// Also write the traffic as a pcap capture (Wireshark, tcpdump, tshark), one record per
    /// segment at its send time; record N is the segment with "frame": N in the JSON
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
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
    let script = if let Some(path) = &args.script {
        let src = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read script {}", path.display()))?;
        let script = tcpfsm_sim::parse(&path.display().to_string(), &src)?;
        if args.show_script {
            print!("{src}");
            return Ok(ExitCode::SUCCESS);
        }
        script
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
        b.script()?
    };
    let opts = Options {
        relative_seq: !args.absolute,
        collapse_after: if args.full { usize::MAX / 2 } else { 3 },
    };
    let out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(BufWriter::new(
            File::create(path).with_context(|| format!("cannot write {}", path.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let pcap = match &args.pcap {
        Some(path) => Some(
            PcapSink::new(BufWriter::new(
                File::create(path).with_context(|| format!("cannot write {}", path.display()))?,
            ))
            .with_context(|| format!("cannot write {}", path.display()))?,
        ),
        None => None,
    };
    // JSON streams line by line as the run goes; the diagrams are drawn at the end.
    let report = match args.format {
        Format::Json => {
            let mut sink = Tee(JsonSink::new(out), pcap);
            tcpfsm_sim::run_with(&script, args.seed, &mut sink)?
        }
        Format::Ascii | Format::Svg => {
            // Laid out as the run goes, in bounded memory; drawn when it ends.
            let svg = args.format == Format::Svg;
            let mut out = out;
            let draw = move |lay: &render::Layout| {
                let text = if svg {
                    render::svg_layout(lay)
                } else {
                    render::ascii_layout(lay)
                };
                out.write_all(text.as_bytes())?;
                out.flush()
            };
            let mut sink = Tee(render::DiagramSink::new(&opts, draw), pcap);
            tcpfsm_sim::run_with(&script, args.seed, &mut sink)?
        }
    };
    let err = report
        .output_error
        .as_ref()
        .map(|e| std::io::Error::new(e.kind(), e.to_string()));
    finish(report, err)
}

/// The exit status: 0 when the scenario's expectations held, 1 when one failed; a closed
/// output pipe (`| head`) is not an error worth a message.
fn finish(
    report: tcpfsm_sim::Report,
    write_error: Option<std::io::Error>,
) -> anyhow::Result<ExitCode> {
    if let Some(e) = write_error {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(ExitCode::SUCCESS);
        }
        return Err(anyhow::Error::new(e).context("cannot write the output"));
    }
    if report.failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for f in &report.failures {
            eprintln!("tcpfsm sim: {f}");
        }
        Ok(ExitCode::from(1))
    }
}
