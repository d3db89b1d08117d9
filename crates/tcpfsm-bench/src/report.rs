//! Medians, paired ratios, the table and the JSON lines.

use serde_json::{json, Value};

use crate::runner::{Better, CaseResult, Outcome, Stack, Target};

pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// One metric of one case: per-stack samples in round order.
pub struct MetricRow {
    pub name: &'static str,
    pub unit: &'static str,
    pub samples: [Vec<f64>; 2],
}

impl MetricRow {
    pub fn median(&self, s: Stack) -> Option<f64> {
        median(&self.samples[s as usize])
    }
}

pub struct Summary<'a> {
    pub case: &'a CaseResult,
    pub metrics: Vec<MetricRow>,
    /// tcpfsm / smoltcp of the primary metric, one per round where both ran.
    pub pairs: Vec<f64>,
    pub met: Option<bool>,
}

impl Summary<'_> {
    pub fn ratio(&self) -> Option<f64> {
        median(&self.pairs)
    }

    /// The lowest and highest per-round ratio.
    pub fn pair_range(&self) -> Option<(f64, f64)> {
        let lo = self.pairs.iter().copied().reduce(f64::min)?;
        let hi = self.pairs.iter().copied().reduce(f64::max)?;
        Some((lo, hi))
    }
}

pub fn summarise(case: &CaseResult) -> Summary<'_> {
    let mut metrics: Vec<MetricRow> = Vec::new();
    for s in Stack::BOTH {
        for o in case.outcomes(s) {
            let Outcome::Ran(run) = o else { continue };
            for m in &run.metrics {
                let row = match metrics.iter_mut().position(|r| r.name == m.name) {
                    Some(i) => &mut metrics[i],
                    None => {
                        metrics.push(MetricRow {
                            name: m.name,
                            unit: m.unit,
                            samples: [Vec::new(), Vec::new()],
                        });
                        metrics.last_mut().expect("just pushed")
                    }
                };
                row.samples[s as usize].push(m.value);
            }
        }
    }
    let primary = |o: &Outcome| match o {
        Outcome::Ran(r) => r.metrics.first().map(|m| m.value),
        Outcome::Skipped(_) => None,
    };
    let pairs: Vec<f64> = case
        .outcomes(Stack::Tcpfsm)
        .iter()
        .zip(case.outcomes(Stack::Smoltcp))
        .filter_map(|(a, b)| Some(primary(a)? / primary(b)?))
        .collect();
    let mut sum = Summary {
        case,
        metrics,
        pairs,
        met: None,
    };
    sum.met = match case.target {
        Some(Target::RatioAtLeast(r)) => sum.ratio().map(|x| x >= r),
        Some(Target::OursAtMost(name, v)) => sum
            .metrics
            .iter()
            .find(|m| m.name == name)
            .and_then(|m| m.median(Stack::Tcpfsm))
            .map(|x| x <= v),
        None => None,
    };
    sum
}

fn notes(case: &CaseResult, s: Stack) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for o in case.outcomes(s) {
        let n = match o {
            Outcome::Ran(r) => r.note.clone(),
            Outcome::Skipped(why) => Some(format!("SKIPPED: {why}")),
        };
        if let Some(n) = n {
            if !v.contains(&n) {
                v.push(n);
            }
        }
    }
    v
}

fn fmt_value(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x.abs() >= 1e5 => format!("{x:.0}"),
        Some(x) if x.abs() >= 100.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.3}"),
    }
}

fn fmt_ratio(r: f64) -> String {
    if r < 0.01 {
        format!("{r:.1e}")
    } else {
        format!("{r:.2}")
    }
}

/// The human table: one line per metric, the primary first with the ratio and target.
pub fn table(summaries: &[Summary<'_>]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<10} {:<38} {:<40} {:>11} {:>11} {:>7} {:<15} {}\n",
        "workload", "case", "metric", "tcpfsm", "smoltcp", "ratio", "(pairs)", "target"
    ));
    for s in summaries {
        for (i, m) in s.metrics.iter().enumerate() {
            let (workload, name, ratio, range, target) = if i == 0 {
                let better = match s.case.better {
                    Better::Higher => "higher is better",
                    Better::Lower => "lower is better",
                };
                let target = match (s.case.target, s.met) {
                    (Some(t), Some(true)) => format!("{t}: met"),
                    (Some(t), Some(false)) => format!("{t}: MISSED"),
                    (Some(t), None) => format!("{t}: not measured"),
                    (None, _) => String::new(),
                };
                (
                    s.case.workload,
                    s.case.name.as_str(),
                    s.ratio().map(fmt_ratio).unwrap_or("-".into()),
                    s.pair_range()
                        .map(|(lo, hi)| format!("{}–{}", fmt_ratio(lo), fmt_ratio(hi)))
                        .unwrap_or_default(),
                    format!("{target} ({better})"),
                )
            } else {
                ("", "", String::new(), String::new(), String::new())
            };
            out.push_str(&format!(
                "{:<10} {:<38} {:<40} {:>11} {:>11} {:>7} {:<15} {}\n",
                workload,
                name,
                format!("{} ({})", m.name, m.unit),
                fmt_value(m.median(Stack::Tcpfsm)),
                fmt_value(m.median(Stack::Smoltcp)),
                ratio,
                range,
                target
            ));
        }
        for st in Stack::BOTH {
            for n in notes(s.case, st) {
                out.push_str(&format!("{:<10} {:<38} note, {st}: {n}\n", "", ""));
            }
        }
    }
    out
}

/// One JSON object per case: medians, samples in round order, the paired ratio, the target.
pub fn json_line(s: &Summary<'_>) -> Value {
    let metrics: Vec<Value> = s
        .metrics
        .iter()
        .map(|m| {
            let mut o = json!({ "name": m.name, "unit": m.unit });
            for st in Stack::BOTH {
                o[st.name()] = json!({
                    "median": m.median(st),
                    "samples": m.samples[st as usize],
                });
            }
            o
        })
        .collect();
    let mut notes_obj = json!({});
    for st in Stack::BOTH {
        let n = notes(s.case, st);
        if !n.is_empty() {
            notes_obj[st.name()] = json!(n);
        }
    }
    json!({
        "workload": s.case.workload,
        "case": s.case.name,
        "better": match s.case.better { Better::Higher => "higher", Better::Lower => "lower" },
        "metrics": metrics,
        "ratio": {
            "of": s.metrics.first().map(|m| m.name),
            "tcpfsm_over_smoltcp": s.ratio(),
            "pairs": s.pairs,
        },
        "target": s.case.target.map(|t| t.to_string()),
        "met": s.met,
        "notes": notes_obj,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
