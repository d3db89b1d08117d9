//! Running many scripts and reporting: PASS/FAIL/SKIP lines, failure details in packetdrill
//! syntax, JSON objects, the `N passed, M failed, K skipped` summary, and the side-by-side
//! view of two stacks that disagree.

use crate::expect::Expectations;
use crate::outcome::{Outcome, TraceEntry, Verdict};
use crate::script::Script;
use crate::{DrillError, DrillOptions, StackKind};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The result of one script on one stack, judged against the expectations.
#[derive(Debug, Clone)]
pub struct ScriptResult {
    pub path: PathBuf,
    pub stack: StackKind,
    pub outcome: Outcome,
    /// The expectations file's reason, when this script is expected to fail on this stack.
    pub expected_failure: Option<String>,
    pub elapsed: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
    /// Failed, as the expectations file says it does.
    Xfail,
    /// Passed although the expectations file says it fails: the entry is stale.
    Xpass,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
            Status::Xfail => "XFAIL",
            Status::Xpass => "XPASS",
        }
    }
}

impl ScriptResult {
    pub fn status(&self) -> Status {
        match (&self.outcome.verdict, &self.expected_failure) {
            (Verdict::Pass, None) => Status::Pass,
            (Verdict::Pass, Some(_)) => Status::Xpass,
            (Verdict::Fail(_), None) => Status::Fail,
            (Verdict::Fail(_), Some(_)) => Status::Xfail,
            (Verdict::Skip { .. }, _) => Status::Skip,
        }
    }
}

/// Every `.pkt` file under the given files and directories, sorted within each argument.
pub fn collect(args: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for a in args {
        if a.is_dir() {
            let mut found = Vec::new();
            walk(a, &mut found).map_err(|e| format!("{}: {e}", a.display()))?;
            found.sort();
            out.extend(found);
        } else if a.is_file() {
            out.push(a.clone());
        } else {
            return Err(format!("{}: no such file or directory", a.display()));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "pkt") {
            out.push(p);
        }
    }
    Ok(())
}

/// Runs every script on every stack (`jobs` scripts at a time), in the order given.
/// A script that does not parse stops everything: the caller reports the error.
pub fn run_all(
    paths: &[PathBuf],
    stacks: &[StackKind],
    opts: &DrillOptions,
    expect: &Expectations,
    jobs: usize,
) -> Result<Vec<(Script, Vec<ScriptResult>)>, DrillError> {
    let mut scripts = Vec::new();
    for p in paths {
        scripts.push(crate::load(p, opts)?);
    }
    let slots: Vec<Mutex<Option<Vec<ScriptResult>>>> =
        scripts.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1).min(scripts.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= scripts.len() {
                    break;
                }
                let path = &paths[i];
                let dir = path.parent().unwrap_or(Path::new("."));
                let mut results = Vec::new();
                for &stack in stacks {
                    let t = Instant::now();
                    let outcome = crate::run_script(&scripts[i], dir, stack, opts);
                    results.push(ScriptResult {
                        path: path.clone(),
                        stack,
                        outcome,
                        expected_failure: expect.reason(path, stack).map(str::to_string),
                        elapsed: t.elapsed(),
                    });
                }
                *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(results);
            });
        }
    });
    Ok(scripts
        .into_iter()
        .zip(slots)
        .map(|(s, slot)| {
            let r = slot
                .into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_default();
            (s, r)
        })
        .collect())
}

/// Counts per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub xfailed: usize,
    pub xpassed: usize,
}

impl Summary {
    pub fn add(&mut self, s: Status) {
        match s {
            Status::Pass => self.passed += 1,
            Status::Fail => self.failed += 1,
            Status::Skip => self.skipped += 1,
            Status::Xfail => self.xfailed += 1,
            Status::Xpass => self.xpassed += 1,
        }
    }

    /// `N passed, M failed, K skipped`; a stale expectation (XPASS) counts as a failure.
    pub fn line(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed,
            self.failed + self.xpassed,
            self.skipped
        )
    }
}

/// The text report of one result: one line, plus details for failures; `show_notes` adds
/// the notes and what the stack did at each line.
pub fn text(r: &ScriptResult, show_notes: bool) -> String {
    let stack = r.stack.name();
    let path = r.path.display();
    let mut out = match (&r.outcome.verdict, r.status()) {
        (Verdict::Skip { reason, line }, _) => {
            let at = if *line > 0 {
                format!(" (line {line})")
            } else {
                String::new()
            };
            format!("SKIP  {path} [{stack}]: {reason}{at}\n")
        }
        (_, Status::Xfail) => format!(
            "XFAIL {path} [{stack}]: {}\n",
            r.expected_failure.as_deref().unwrap_or("")
        ),
        (_, Status::Xpass) => format!(
            "XPASS {path} [{stack}]: passes now; remove its entry from the expectations file ({})\n",
            r.expected_failure.as_deref().unwrap_or("")
        ),
        (_, s) => format!("{:<5} {path} [{stack}]\n", s.label()),
    };
    if let (Verdict::Fail(f), Status::Fail | Status::Xfail) = (&r.outcome.verdict, r.status()) {
        if r.status() == Status::Fail {
            if f.line > 0 {
                out.push_str(&format!("  {path}:{}: {}\n", f.line, f.source));
            }
            if !f.expected.is_empty() {
                out.push_str(&format!("    expected: {}\n", f.expected));
            }
            if !f.actual.is_empty() {
                out.push_str(&format!("    actual:   {}\n", f.actual));
            }
            out.push_str(&format!("    why:      {}\n", f.why));
        }
    }
    if show_notes {
        for n in &r.outcome.notes {
            out.push_str(&format!("    note: {n}\n"));
        }
        for t in &r.outcome.trace {
            out.push_str(&format!(
                "    {:>10} line {:<4} {}\n",
                crate::runner::secs(t.at),
                t.line,
                t.observed
            ));
        }
    }
    out
}

/// One JSON object for a result.
pub fn json(r: &ScriptResult) -> serde_json::Value {
    let mut v = json!({
        "script": r.path.display().to_string(),
        "stack": r.stack,
        "status": r.status(),
        "verdict": r.outcome.verdict,
        "notes": r.outcome.notes,
        "elapsed_ms": r.elapsed.as_secs_f64() * 1000.0,
        "script_time_us": r.outcome.script_time_us,
    });
    if let Some(reason) = &r.expected_failure {
        v["expected_failure"] = json!(reason);
    }
    v
}

/// Where two stacks' runs of a script disagree, side by side; `None` when they agree (same
/// verdict, same observable behaviour at every line).
pub fn diff(script: &Script, a: &ScriptResult, b: &ScriptResult) -> Option<String> {
    let by_line = |t: &[TraceEntry]| {
        let mut m: BTreeMap<u32, Vec<TraceEntry>> = BTreeMap::new();
        for e in t {
            m.entry(e.line).or_default().push(e.clone());
        }
        m
    };
    let (ta, tb) = (by_line(&a.outcome.trace), by_line(&b.outcome.trace));
    let mut lines: Vec<u32> = ta.keys().chain(tb.keys()).copied().collect();
    lines.sort();
    lines.dedup();
    let key = |m: &BTreeMap<u32, Vec<TraceEntry>>, l| -> Vec<String> {
        m.get(&l)
            .map(|v| v.iter().map(|e| e.key.clone()).collect())
            .unwrap_or_default()
    };
    let show = |m: &BTreeMap<u32, Vec<TraceEntry>>, l| -> String {
        m.get(&l)
            .map(|v| {
                v.iter()
                    .map(|e| format!("{} @{}", e.observed, crate::runner::secs_short(e.at)))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_else(|| "-".into())
    };
    let failed_at = |r: &ScriptResult| match &r.outcome.verdict {
        Verdict::Fail(f) => Some(f.line),
        _ => None,
    };
    let (fa, fb) = (failed_at(a), failed_at(b));
    let differing: Vec<u32> = lines
        .into_iter()
        .filter(|l| {
            key(&ta, *l) != key(&tb, *l) || (fa != fb && (fa == Some(*l) || fb == Some(*l)))
        })
        .collect();
    let same_verdict = a.outcome.verdict.name() == b.outcome.verdict.name();
    if differing.is_empty() && same_verdict {
        return None;
    }
    let (na, nb) = (a.stack.name(), b.stack.name());
    let mut out = format!(
        "DIFF  {}: {na} {}, {nb} {}\n",
        a.path.display(),
        a.status().label(),
        b.status().label()
    );
    type Row = (String, String, String, String);
    let rows: Vec<Row> = differing
        .iter()
        .take(12)
        .map(|l| {
            (
                l.to_string(),
                script.line(*l).to_string(),
                show(&ta, *l),
                show(&tb, *l),
            )
        })
        .collect();
    let w = |f: &dyn Fn(&Row) -> usize, min: usize| {
        rows.iter().map(f).max().unwrap_or(0).clamp(min, 46)
    };
    let (w0, w1, w2) = (
        w(&|r| r.0.len(), 4),
        w(&|r| r.1.len(), 6),
        w(&|r| r.2.len(), 6),
    );
    let cut = |s: &str, n: usize| -> String {
        if s.chars().count() <= n {
            format!("{s:<n$}")
        } else {
            let t: String = s.chars().take(n - 1).collect();
            format!("{t}…")
        }
    };
    out.push_str(&format!(
        "  {} {} {} {}\n",
        cut("line", w0),
        cut("script", w1),
        cut(na, w2),
        nb
    ));
    for r in &rows {
        out.push_str(&format!(
            "  {} {} {} {}\n",
            cut(&r.0, w0),
            cut(&r.1, w1),
            cut(&r.2, w2),
            r.3
        ));
    }
    if differing.len() > rows.len() {
        out.push_str(&format!(
            "  … {} more lines differ\n",
            differing.len() - rows.len()
        ));
    }
    for r in [a, b] {
        if let Verdict::Fail(f) = &r.outcome.verdict {
            out.push_str(&format!(
                "  {} fails at line {}: {}\n",
                r.stack.name(),
                f.line,
                f.why
            ));
        }
    }
    Some(out)
}
