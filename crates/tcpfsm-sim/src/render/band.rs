//! Traffic with spoofed sources — a SYN flood and the server's answers into the void — drawn
//! as one summarized band instead of a row per segment: a million SYNs become a few lines,
//! in bounded memory, and the real clients' rows stay readable around it.

use super::rows::{Row, RowKind};
use crate::trace::Fate;

/// A band of fewer rows than this is drawn row by row after all.
const MIN_ROWS: usize = 5;
/// Distinct kinds of rows counted one by one; more are counted together.
const MAX_KINDS: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// `(from, to, flags, what became of it, mark)`
    Seg(usize, usize, String, String, String),
    /// `(lane, to-state, cause)`
    State(usize, String, String),
    Other,
}

/// The rows of one band, counted.
#[derive(Debug)]
pub struct Band {
    t0: u64,
    t1: u64,
    lo: usize,
    hi: usize,
    kinds: Vec<(Kind, u64)>,
    rows: u64,
    /// The first rows, drawn as they are if the band stays small.
    first: Vec<Row>,
}

fn lanes_of(r: &Row) -> (usize, usize) {
    match &r.kind {
        RowKind::Segment { from, to, .. } => ((*from).min(*to), (*from).max(*to)),
        RowKind::State { lane, .. } | RowKind::App { lane, .. } => (*lane, *lane),
        RowKind::Band { lanes, .. } => *lanes,
        RowKind::Note { .. } | RowKind::Collapsed { .. } => (0, 0),
    }
}

impl Band {
    pub fn new(r: Row) -> Band {
        let (lo, hi) = lanes_of(&r);
        let mut b = Band {
            t0: r.t_us,
            t1: r.t_us,
            lo,
            hi,
            kinds: Vec::new(),
            rows: 0,
            first: Vec::new(),
        };
        b.add(r);
        b
    }

    pub fn add(&mut self, r: Row) {
        let (lo, hi) = lanes_of(&r);
        self.lo = self.lo.min(lo);
        self.hi = self.hi.max(hi);
        self.t1 = self.t1.max(r.t_us);
        self.rows += 1;
        let kind = match &r.kind {
            RowKind::Segment {
                from,
                to,
                label,
                fate,
                why,
                analysis,
                ..
            } => Kind::Seg(
                *from,
                *to,
                label.split(' ').next().unwrap_or("").to_string(),
                match (fate, why) {
                    (Fate::Delivered, _) => String::new(),
                    (Fate::Dropped, Some(w)) => format!(" ({w})"),
                    (f, _) => format!(" ({f})"),
                },
                analysis.label(),
            ),
            RowKind::State {
                lane, to, cause, ..
            } => Kind::State(*lane, to.name().to_string(), cause.clone()),
            _ => Kind::Other,
        };
        let room = self.kinds.len() < MAX_KINDS;
        match self.kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None if room => self.kinds.push((kind, 1)),
            None => match self.kinds.iter_mut().find(|(k, _)| *k == Kind::Other) {
                Some((_, n)) => *n += 1,
                None => self.kinds.push((Kind::Other, 1)),
            },
        }
        if self.first.len() < MIN_ROWS {
            self.first.push(r);
        }
    }

    /// The band as rows: itself summarized, or its few rows as they were.
    pub fn into_rows(self, names: &[String]) -> Vec<Row> {
        if self.rows < MIN_ROWS as u64 {
            return self.first;
        }
        let name = |i: usize| names.get(i).map_or("?", String::as_str);
        let mut parts: Vec<String> = Vec::new();
        for (k, n) in &self.kinds {
            parts.push(match k {
                Kind::Seg(from, to, flags, fate, mark) => {
                    let mark = if mark.is_empty() {
                        String::new()
                    } else {
                        format!(" {mark}")
                    };
                    format!("{n} {flags}{mark} {} → {}{fate}", name(*from), name(*to))
                }
                Kind::State(lane, to, cause) => {
                    format!("{}: {n} → {to} ({cause})", name(*lane))
                }
                Kind::Other => format!("{n} other events"),
            });
        }
        let span = if self.t1 > self.t0 {
            format!(
                "{}–{}",
                super::layout::time_label(self.t0),
                super::layout::time_label(self.t1)
            )
        } else {
            super::layout::time_label(self.t0)
        };
        vec![Row {
            t_us: self.t0,
            kind: RowKind::Band {
                lanes: (self.lo, self.hi),
                text: format!(
                    "spoofed-source traffic, {span}, {} events: {}",
                    self.rows,
                    parts.join("; ")
                ),
                t_end: self.t1,
            },
        }]
    }
}
