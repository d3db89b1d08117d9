//! What running a script produced: a verdict, notes, and a trace of what the stack did.

use serde::Serialize;

/// Where and how a script failed, in packetdrill terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub line: u32,
    /// The script line, as written.
    pub source: String,
    /// What the line asks for, in packetdrill syntax.
    pub expected: String,
    /// What the stack did, in packetdrill syntax.
    pub actual: String,
    /// Which part differs, or what went wrong.
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail(Failure),
    /// The script uses a feature the runner or the stack does not model.
    Skip {
        reason: String,
        line: u32,
    },
}

impl Verdict {
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail(_) => "FAIL",
            Verdict::Skip { .. } => "SKIP",
        }
    }
}

/// One event's observable result, for comparing two stacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceEntry {
    pub line: u32,
    /// When it happened, µs since the start.
    pub at: i64,
    /// What the stack did, in packetdrill syntax (`> F. 1:1(0) ack 1 win 502`, `= 0`, …).
    pub observed: String,
    /// The part of `observed` the comparison mode treats as meaningful; two stacks agree on
    /// an event when their keys are equal.
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub verdict: Verdict,
    /// Settings ignored or matched, and other remarks, with their lines.
    pub notes: Vec<String>,
    pub trace: Vec<TraceEntry>,
    /// Script time reached, µs.
    pub script_time_us: i64,
}
