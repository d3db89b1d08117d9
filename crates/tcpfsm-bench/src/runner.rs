//! Interleaved rounds: each round runs both stacks on the same case, alternating which goes
//! first (A B, B A, …), so drift on a shared machine (frequency, neighbours, cache state)
//! lands on both alike. Results are kept per round so ratios can be paired.

use std::fmt;

/// The two stacks under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    Tcpfsm,
    Smoltcp,
}

impl Stack {
    pub const BOTH: [Stack; 2] = [Stack::Tcpfsm, Stack::Smoltcp];

    pub fn name(self) -> &'static str {
        match self {
            Stack::Tcpfsm => "tcpfsm",
            Stack::Smoltcp => "smoltcp",
        }
    }
}

impl fmt::Display for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a larger value of a case's primary metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// What a case must reach, checked on the medians.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// The paired ratio tcpfsm / smoltcp of the primary metric is at least this.
    RatioAtLeast(f64),
    /// tcpfsm's median of the named metric is at most this.
    OursAtMost(&'static str, f64),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::RatioAtLeast(r) => write!(f, "ratio >= {r}"),
            Target::OursAtMost(m, v) => write!(f, "{m} <= {v}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: &'static str,
    pub value: f64,
}

/// One stack's result on one case in one round. `metrics[0]` is the primary metric, the one
/// ratios are taken of.
#[derive(Clone, Debug, Default)]
pub struct Run {
    pub metrics: Vec<Metric>,
    /// How the stack was driven when that matters to the reader (e.g. a stand-in API).
    pub note: Option<String>,
}

impl Run {
    pub fn new() -> Run {
        Run::default()
    }

    pub fn metric(mut self, name: &'static str, unit: &'static str, value: f64) -> Run {
        self.metrics.push(Metric { name, unit, value });
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Run {
        self.note = Some(note.into());
        self
    }
}

#[derive(Clone, Debug)]
pub enum Outcome {
    Ran(Run),
    /// This stack cannot run this case; the reason is reported, loudly.
    Skipped(String),
}

pub type RunFn<'a> = Box<dyn FnMut(Stack) -> anyhow::Result<Outcome> + 'a>;

pub struct Case<'a> {
    pub workload: &'static str,
    pub name: String,
    pub better: Better,
    pub target: Option<Target>,
    pub run: RunFn<'a>,
}

/// Everything one case produced, by stack, in round order.
pub struct CaseResult {
    pub workload: &'static str,
    pub name: String,
    pub better: Better,
    pub target: Option<Target>,
    pub outcomes: [Vec<Outcome>; 2],
}

impl CaseResult {
    pub fn outcomes(&self, s: Stack) -> &[Outcome] {
        &self.outcomes[s as usize]
    }
}

/// Runs `rounds` interleaved rounds of `case` (of one stack only with `only`). A failing run
/// aborts the suite: a benchmark whose transfer did not complete has measured nothing.
pub fn run_case(
    case: &mut Case<'_>,
    rounds: usize,
    only: Option<Stack>,
) -> anyhow::Result<CaseResult> {
    let mut outcomes: [Vec<Outcome>; 2] = [Vec::new(), Vec::new()];
    for r in 0..rounds {
        let order = if r % 2 == 0 {
            Stack::BOTH
        } else {
            [Stack::Smoltcp, Stack::Tcpfsm]
        };
        for s in order {
            if only.is_some_and(|o| o != s) {
                continue;
            }
            let o = (case.run)(s).map_err(|e| {
                e.context(format!(
                    "{} / {} / {s}, round {}",
                    case.workload,
                    case.name,
                    r + 1
                ))
            })?;
            eprintln!(
                "  round {}/{rounds} {:<8} {}",
                r + 1,
                s.name(),
                match &o {
                    Outcome::Ran(run) => run
                        .metrics
                        .first()
                        .map(|m| format!("{:.3} {}", m.value, m.unit))
                        .unwrap_or_default(),
                    Outcome::Skipped(why) => format!("SKIPPED: {why}"),
                }
            );
            outcomes[s as usize].push(o);
        }
    }
    Ok(CaseResult {
        workload: case.workload,
        name: case.name.clone(),
        better: case.better,
        target: case.target,
        outcomes,
    })
}
