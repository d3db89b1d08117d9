//! `tcpfsm drill`: run packetdrill-dialect scripts on our engine, our TCP over a TUN device, or
//! the Linux kernel, and compare two stacks.
//!
//! Exit status: 0 every script passed (or failed as the expectations file says), 1 a script
//! failed (or passed although expected to fail), 2 a usage or parse error.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use tcpfsm_drill::compare::Mode;
use tcpfsm_drill::expect::{Expectations, FILE_NAME};
use tcpfsm_drill::report::{self, Status, Summary};
use tcpfsm_drill::{DrillOptions, StackKind};

#[derive(clap::Args)]
#[command(
    after_help = "Exit status: 0 all passed, 1 a failure, 2 a usage or parse error.\n\
Expected failures are read from the nearest drill-expectations.toml above the scripts (or --expect).\n\
Protocol mode (default) compares flags, seq, ack, payload and the options that carry meaning; \
--strict compares every field as packetdrill does."
)]
pub struct Args {
    /// Scripts (.pkt files) or directories to search for them
    #[arg(required = true, value_name = "FILE|DIR")]
    pub paths: Vec<PathBuf>,
    /// Stack(s) to run on: engine (virtual clock), tun (our TCP over TUN, root), linux (the
    /// kernel, root); two separated by a comma compare them (e.g. engine,linux)
    #[arg(long, default_value = "engine", value_name = "STACK[,STACK]")]
    pub stack: String,
    /// Compare every field of a sent segment (window, option order and padding, PSH), as
    /// packetdrill does
    #[arg(long)]
    pub strict: bool,
    /// One JSON object per script and stack (the summary line goes to standard error)
    #[arg(long)]
    pub json: bool,
    /// Run backtick commands that are not interpreted (linux stack only)
    #[arg(long)]
    pub allow_shell: bool,
    /// Define NAME (for #ifdef NAME) or NAME=VALUE (replaces the word NAME); Linux is defined
    #[arg(short = 'D', long = "define", value_name = "NAME[=VALUE]")]
    pub defines: Vec<String>,
    /// Expectations file (default: the nearest drill-expectations.toml above each path)
    #[arg(long, value_name = "FILE", conflicts_with = "no_expect")]
    pub expect: Option<PathBuf>,
    /// Ignore expectations files: every failure counts
    #[arg(long)]
    pub no_expect: bool,
    /// Scripts run at a time (real-time stacks spend most of a script waiting)
    #[arg(long, short = 'j', default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,
    /// Raise every script's --tolerance_usecs to at least this (for a busy machine)
    #[arg(long, value_name = "USECS", default_value_t = 0)]
    pub tolerance_usecs: i64,
    /// Also print the settings each script ignored, other notes, and what the stack did at
    /// each line (time, segment or result)
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

fn stacks(spec: &str) -> anyhow::Result<Vec<StackKind>> {
    let v: Vec<StackKind> = spec
        .split(',')
        .map(|s| {
            StackKind::parse(s.trim())
                .with_context(|| format!("unknown stack {s:?} (engine, tun or linux)"))
        })
        .collect::<Result<_, _>>()?;
    if v.len() > 2 || (v.len() == 2 && v[0] == v[1]) {
        bail!("--stack takes one stack, or two different ones to compare");
    }
    Ok(v)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let stacks = stacks(&args.stack)?;
    let mut opts = DrillOptions::default();
    opts.run.mode = if args.strict {
        Mode::Strict
    } else {
        Mode::Protocol
    };
    opts.run.allow_shell = args.allow_shell;
    opts.run.tolerance_floor_usecs = args.tolerance_usecs.max(0);
    let mut defines = BTreeMap::new();
    defines.insert("Linux".to_string(), None);
    for d in &args.defines {
        match d.split_once('=') {
            Some((k, v)) => defines.insert(k.to_string(), Some(v.to_string())),
            None => defines.insert(d.clone(), None),
        };
    }
    opts.defines = defines;

    let mut expect = Expectations::default();
    if let Some(f) = &args.expect {
        expect = Expectations::load(f).map_err(anyhow::Error::msg)?;
    } else if !args.no_expect {
        let mut seen = Vec::new();
        for p in &args.paths {
            if let Some(f) = Expectations::discover(p) {
                if !seen.contains(&f) {
                    expect.extend(Expectations::load(&f).map_err(anyhow::Error::msg)?);
                    seen.push(f);
                }
            }
        }
    }
    let paths = report::collect(&args.paths).map_err(anyhow::Error::msg)?;
    if paths.is_empty() {
        bail!("no .pkt scripts found in the given paths");
    }
    let results = report::run_all(&paths, &stacks, &opts, &expect, args.jobs as usize)?;

    let mut out = io::stdout().lock();
    let mut per_stack: BTreeMap<StackKind, Summary> = BTreeMap::new();
    let mut total = Summary::default();
    let mut differ = 0;
    for (script, rs) in &results {
        for r in rs {
            per_stack.entry(r.stack).or_default().add(r.status());
            total.add(r.status());
            if args.json {
                writeln!(out, "{}", report::json(r))?;
            } else {
                write!(out, "{}", report::text(r, args.verbose))?;
            }
        }
        if let [a, b] = rs.as_slice() {
            if let Some(d) = report::diff(script, a, b) {
                differ += 1;
                if !args.json {
                    write!(out, "{d}")?;
                }
            }
        }
    }
    let xfailed = total.xfailed;
    let summary = if stacks.len() == 2 {
        let mut s = String::new();
        for (k, v) in &per_stack {
            s.push_str(&format!("{}: {}", k.name(), v.line()));
            if v.xfailed > 0 {
                s.push_str(&format!(" ({} expected failures)", v.xfailed));
            }
            s.push('\n');
        }
        s.push_str(&format!(
            "{differ} of {} scripts behave differently on {} and {}\n",
            results.len(),
            stacks[0].name(),
            stacks[1].name()
        ));
        s.push_str(&total.line());
        s
    } else {
        let mut s = String::new();
        if xfailed > 0 {
            s.push_str(&format!("{xfailed} expected failures (see {FILE_NAME})\n"));
        }
        s.push_str(&total.line());
        s
    };
    if args.json {
        eprintln!("{summary}");
    } else {
        writeln!(out, "{summary}")?;
    }
    let failed = results
        .iter()
        .flat_map(|(_, rs)| rs)
        .any(|r| matches!(r.status(), Status::Fail | Status::Xpass));
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
