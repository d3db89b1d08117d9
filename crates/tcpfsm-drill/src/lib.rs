//! `tcpfsm drill`: packetdrill-dialect scripts run against tcpfsm's sans-IO TCP on a virtual
//! clock (`engine`), our TCP over a TUN device in real time (`tun`), or the Linux kernel in a
//! private network namespace (`linux`), with a differential mode that shows where two stacks
//! disagree.
//!
//! ```no_run
//! use tcpfsm_drill::{run_file, DrillOptions, StackKind};
//! let out = run_file("tests/drill/time-wait-reack.pkt".as_ref(), StackKind::Engine,
//!                    &DrillOptions::default()).unwrap();
//! println!("{}", out.verdict.name());
//! ```

pub mod compare;
pub mod config;
pub mod consts;
pub mod expect;
pub mod outcome;
pub mod report;
pub mod runner;
pub mod script;
pub mod segment;
pub mod shell;
pub mod stack;
pub mod sysctl;

use config::ScriptConfig;
use outcome::{Failure, Outcome, Verdict};
use runner::RunOptions;
use script::{ParseError, Script};
use stack::{Net, Stack};
use std::collections::BTreeMap;
use std::path::Path;

/// Which stack runs a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StackKind {
    /// tcpfsm-core's endpoint on a virtual clock: no root, deterministic.
    Engine,
    /// tcpfsm-tun's stack (our TCP) over a TUN device, in real time (root).
    Tun,
    /// The Linux kernel in a private network namespace through a TUN device (root).
    Linux,
}

impl StackKind {
    pub fn name(self) -> &'static str {
        match self {
            StackKind::Engine => "engine",
            StackKind::Tun => "tun",
            StackKind::Linux => "linux",
        }
    }

    pub fn parse(s: &str) -> Option<StackKind> {
        match s {
            "engine" => Some(StackKind::Engine),
            "tun" => Some(StackKind::Tun),
            "linux" => Some(StackKind::Linux),
            _ => None,
        }
    }
}

/// Everything that shapes a run besides the script.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    pub run: RunOptions,
    /// `-D NAME[=VALUE]`: select `#ifdef` blocks and replace words. `Linux` is defined by
    /// default: every stack here follows Linux.
    pub defines: BTreeMap<String, Option<String>>,
    /// The engine's configuration before the script's settings (Linux defaults).
    pub engine_config: tcpfsm_core::Config,
    /// Seed of the engine's ISNs and ephemeral ports.
    pub seed: u64,
}

impl Default for DrillOptions {
    fn default() -> DrillOptions {
        let mut defines = BTreeMap::new();
        defines.insert("Linux".to_string(), None);
        DrillOptions {
            run: RunOptions::default(),
            defines,
            engine_config: tcpfsm_core::Config::default(),
            seed: 1,
        }
    }
}

/// Why a script could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("{0}")]
    Parse(#[from] ParseError),
    #[error("{path}: {err}")]
    Read { path: String, err: std::io::Error },
}

/// Reads and parses a script file.
pub fn load(path: &Path, opts: &DrillOptions) -> Result<Script, DrillError> {
    let src = std::fs::read_to_string(path).map_err(|err| DrillError::Read {
        path: path.display().to_string(),
        err,
    })?;
    Ok(script::parse(
        &path.display().to_string(),
        &src,
        &opts.defines,
    )?)
}

/// Runs one script file on one stack.
pub fn run_file(path: &Path, kind: StackKind, opts: &DrillOptions) -> Result<Outcome, DrillError> {
    let script = load(path, opts)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    Ok(run_script(&script, dir, kind, opts))
}

/// Runs a parsed script (whose file is in `dir`) on one stack.
pub fn run_script(script: &Script, dir: &Path, kind: StackKind, opts: &DrillOptions) -> Outcome {
    let net = match ScriptConfig::from_script(script) {
        Ok(c) => Net {
            local: c.local_ip,
            remote: c.remote_ip,
            mtu: c.mtu,
        },
        // The runner reports header problems itself.
        Err(_) => Net {
            local: config::V4_LOCAL.into(),
            remote: config::V4_REMOTE.into(),
            mtu: 1500,
        },
    };
    match kind {
        StackKind::Engine => {
            let st = stack::engine::EngineStack::new(opts.engine_config.clone(), opts.seed, net);
            runner::run(st, script, dir, &opts.run)
        }
        StackKind::Linux => stack::linux::run(script, dir, net, &opts.run),
        StackKind::Tun => stack::tun::run(script, dir, net, opts),
    }
}

/// Runs with a stack built by the caller (for wrappers such as planted bugs in tests).
pub fn run_with<S: Stack>(stack: S, script: &Script, dir: &Path, opts: &DrillOptions) -> Outcome {
    runner::run(stack, script, dir, &opts.run)
}

/// An outcome for a script that could not start (e.g. a stack that needs root).
pub fn skipped(reason: String) -> Outcome {
    Outcome {
        verdict: Verdict::Skip { reason, line: 0 },
        notes: Vec::new(),
        trace: Vec::new(),
        script_time_us: 0,
    }
}

/// An outcome for a stack that failed to set up.
pub fn broken(why: String) -> Outcome {
    Outcome {
        verdict: Verdict::Fail(Failure {
            line: 0,
            source: String::new(),
            expected: String::new(),
            actual: String::new(),
            why,
        }),
        notes: Vec::new(),
        trace: Vec::new(),
        script_time_us: 0,
    }
}
