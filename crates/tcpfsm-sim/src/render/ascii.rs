//! A sequence diagram for the terminal, at most 80 columns wide: one vertical lane per host,
//! one line per event (segment arrow, state change, application call, note), then a table of
//! the state path each connection took.

use super::layout::{time_label, Layout, LayoutBuilder};
use super::rows::{NoteStyle, RowKind};
use super::svg_text::truncate;
use super::Options;
use crate::trace::{Fate, Trace};

/// Lines a band's summary may take.
const BAND_LINES: usize = 6;

const WIDTH: usize = 80;
const TIME_COL: usize = 9;
/// Room either side of the outer lanes for state names (SYN_RECEIVED is 12 wide).
const MARGIN: usize = 7;

struct Canvas {
    cells: Vec<char>,
}

impl Canvas {
    fn new(lanes: &[usize]) -> Canvas {
        let mut cells = vec![' '; WIDTH];
        for &x in lanes {
            cells[x] = '│';
        }
        Canvas { cells }
    }
    fn put(&mut self, x: usize, s: &str) {
        for (i, c) in s.chars().enumerate() {
            if let Some(cell) = self.cells.get_mut(x + i) {
                *cell = c;
            }
        }
    }
    fn line(self) -> String {
        let s: String = self.cells.into_iter().collect();
        s.trim_end().to_string()
    }
}

/// Lines of text right of the time column, the time on the first.
fn text_block(out: &mut String, time: &str, lines: &[String]) {
    for (i, l) in lines.iter().enumerate() {
        let mut c = Canvas::new(&[]);
        if i == 0 {
            c.put(0, time);
        }
        c.put(TIME_COL + 1, l);
        out.push_str(&c.line());
        out.push('\n');
    }
}

/// Word-wraps `text` to `width` columns; continuation lines are indented by `indent`.
fn wrap(text: &str, width: usize, indent: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        let limit = if lines.is_empty() {
            width
        } else {
            width - indent
        };
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > limit {
            lines.push(cur);
            cur = String::new();
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                l
            } else {
                format!("{}{l}", " ".repeat(indent))
            }
        })
        .collect()
}

fn lane_positions(n: usize) -> Vec<usize> {
    let first = TIME_COL + MARGIN;
    let last = WIDTH - 1 - MARGIN;
    match n {
        0 => vec![],
        1 => vec![(first + last) / 2],
        _ => (0..n)
            .map(|i| first + i * (last - first) / (n - 1))
            .collect(),
    }
}

/// Renders the trace as a sequence diagram plus a per-connection table.
pub fn ascii(trace: &Trace, opts: &Options) -> String {
    ascii_layout(&LayoutBuilder::from_trace(trace, opts))
}

/// Draws a finished layout.
pub fn ascii_layout(lay: &Layout) -> String {
    let xs = lane_positions(lay.lanes.names.len());
    let mut out = String::new();
    let title = format!("tcpfsm sim {}  (seed {})", lay.title, lay.seed);
    out.push_str(&title);
    out.push('\n');

    // Header: names and addresses centred on their lanes.
    for labels in [&lay.lanes.names, &lay.lanes.addrs] {
        let mut c = Canvas::new(&[]);
        c.put(
            0,
            if std::ptr::eq(labels, &lay.lanes.names) {
                "time"
            } else {
                ""
            },
        );
        for (i, l) in labels.iter().enumerate() {
            let room = if xs.len() > 1 {
                (xs[1] - xs[0]).saturating_sub(2).min(26)
            } else {
                26
            };
            let t = truncate(l, room);
            let w = t.chars().count();
            let x = xs[i].saturating_sub(w / 2).min(WIDTH - w);
            c.put(x, &t);
        }
        out.push_str(&c.line());
        out.push('\n');
    }
    out.push_str(&Canvas::new(&xs).line());
    out.push('\n');

    let mut last_time: Option<u64> = None;
    for row in &lay.rows {
        let mut c = Canvas::new(&xs);
        let time = if last_time != Some(row.t_us) {
            last_time = Some(row.t_us);
            format!("{:>8}", time_label(row.t_us))
        } else {
            String::new()
        };
        c.put(0, &time);
        match &row.kind {
            RowKind::Segment {
                from,
                to,
                label,
                short,
                fate,
                ..
            } => {
                let (a, b) = (xs[*from], xs[*to]);
                if a == b {
                    // A host talking to itself: a loop beside its lane.
                    let mark = if *fate == Fate::Dropped { "X" } else { "↺" };
                    let text = format!("{mark} {label}");
                    if *from + 1 == xs.len() && xs.len() > 1 {
                        let t = truncate(&text, a.saturating_sub(TIME_COL + 1));
                        c.put(a - 1 - t.chars().count(), &t);
                    } else {
                        c.put(a + 2, &truncate(&text, WIDTH.saturating_sub(a + 2)));
                    }
                    out.push_str(&c.line());
                    out.push('\n');
                    continue;
                }
                let (lo, hi) = (a.min(b), a.max(b));
                let span = hi - lo - 1; // cells strictly between the lanes
                let body = match fate {
                    Fate::Corrupted => '~',
                    Fate::Duplicated => '═',
                    _ => '─',
                };
                let mut cells: Vec<char> = vec![body; span];
                let rightwards = b > a;
                if rightwards {
                    cells[span - 1] = '▶';
                } else {
                    cells[0] = '◀';
                }
                if *fate == Fate::Dropped {
                    // Lost on the way: the arrow stops short of the receiver.
                    let stop = span.saturating_sub(span / 4).max(1);
                    if rightwards {
                        for c in cells.iter_mut().skip(stop) {
                            *c = ' ';
                        }
                        cells[stop - 1] = 'X';
                    } else {
                        for c in cells.iter_mut().take(span - stop) {
                            *c = ' ';
                        }
                        cells[span - stop] = 'X';
                    }
                }
                // The label goes on the drawn part of the arrow: all of it, or for a lost
                // segment the part before the X.
                let (from_cell, room) = if *fate != Fate::Dropped {
                    (0, span)
                } else {
                    let stop = span.saturating_sub(span / 4).max(1);
                    if rightwards {
                        (0, stop - 1)
                    } else {
                        (span - stop + 1, stop - 1)
                    }
                };
                let text = if label.chars().count() + 4 <= room {
                    format!(" {label} ")
                } else {
                    format!(" {} ", truncate(short, room.saturating_sub(4)))
                };
                let tl = text.chars().count();
                if tl + 2 <= room {
                    let start = from_cell + (room - tl) / 2;
                    for (i, ch) in text.chars().enumerate() {
                        cells[start + i] = ch;
                    }
                }
                let s: String = cells.into_iter().collect();
                c.put(lo + 1, &s);
            }
            RowKind::State {
                lane,
                from,
                to,
                cause,
                ports,
            } => {
                let x = xs[*lane];
                let listener =
                    *from == tcpfsm_states::State::Closed && *to == tcpfsm_states::State::Listen;
                let tag = lay.tag(*lane, *ports, listener);
                let name = format!("{}{tag}", to.name());
                let w = name.chars().count();
                let start = x.saturating_sub(w / 2).max(TIME_COL).min(WIDTH - w);
                c.put(start, &name);
                let note = format!("({cause})");
                let right_room = WIDTH.saturating_sub(start + w + 1);
                let left_room = start.saturating_sub(TIME_COL + 1);
                let nl = note.chars().count();
                // Right of the name where it fits, else left of it where it fits whole (a
                // middle lane near the right edge: syn-flood's cookie server), else cut.
                if right_room >= nl {
                    c.put(start + w + 1, &note);
                } else if left_room > nl {
                    c.put(start - 1 - nl, &note);
                } else if *lane + 1 < xs.len() {
                    c.put(start + w + 1, &truncate(&note, right_room));
                } else if left_room >= 6 {
                    let t = truncate(&note, left_room);
                    c.put(start - 1 - t.chars().count(), &t);
                }
            }
            RowKind::App { lane, text, ok } => {
                let x = xs[*lane];
                let mark = if *ok { '●' } else { '✘' };
                let text = format!("{mark} {text}");
                // Right of the lane, or left of it when only that side has room (always for
                // the last lane, whose right is the margin).
                let right = WIDTH.saturating_sub(x + 2);
                let left = x.saturating_sub(TIME_COL + 1);
                let len = text.chars().count();
                let last = *lane + 1 == xs.len() && xs.len() > 1;
                let across = WIDTH - TIME_COL - 1;
                if len <= right && !last {
                    c.put(x + 2, &text);
                } else if len <= left {
                    c.put(x - 1 - len, &text);
                } else if len <= across {
                    // Whole on neither side: end it at the margin, across the lane (its mark
                    // then sits on or near the lane), rather than cut "10.0.0.2:80" short.
                    c.put(WIDTH - len, &text);
                } else if last || left > right {
                    let t = truncate(&text, left);
                    c.put(x - 1 - t.chars().count(), &t);
                } else {
                    c.put(x + 2, &truncate(&text, right));
                }
            }
            RowKind::Note { style, text } => {
                let mark = match style {
                    NoteStyle::Say => "»",
                    NoteStyle::Repeat => "──",
                    NoteStyle::CheckOk => "✔",
                    NoteStyle::CheckFail => "✘",
                    NoteStyle::Diagnosis => "⚕",
                    NoteStyle::Warning => "!",
                };
                let full = if *style == NoteStyle::Repeat {
                    format!("── {text} ──")
                } else {
                    format!("{mark} {text}")
                };
                let lines = wrap(&full, WIDTH - TIME_COL - 1, 2);
                text_block(&mut out, &time, &lines);
                continue;
            }
            RowKind::Band { text, .. } => {
                let mut lines = wrap(&format!("▒ {text}"), WIDTH - TIME_COL - 1, 2);
                if lines.len() > BAND_LINES {
                    lines.truncate(BAND_LINES);
                    let last = truncate(&lines[BAND_LINES - 1], WIDTH - TIME_COL - 2);
                    lines[BAND_LINES - 1] = format!("{last}…");
                }
                text_block(&mut out, &time, &lines);
                continue;
            }
            RowKind::Collapsed { text } => {
                // Wrapped like a note: the counts at the end ("… 154 app calls") are the point.
                let lines = wrap(&format!("⋮ {text}"), WIDTH - TIME_COL - 1, 2);
                text_block(&mut out, &time, &lines);
                continue;
            }
        }
        out.push_str(&c.line());
        out.push('\n');
    }
    out.push_str(&Canvas::new(&xs).line());
    out.push('\n');
    if let Some(t) = &lay.tail {
        for l in wrap(t, WIDTH - 2, 2) {
            out.push_str(&format!("{l}\n"));
        }
    }

    // The path each connection took.
    out.push_str("\nState paths:\n");
    for g in &lay.groups {
        let who = if g.count > 1 {
            format!("{} ×{} (like {})", g.host, g.count, g.example)
        } else {
            format!("{} {}", g.host, g.example)
        };
        out.push_str(&format!("  {}\n", truncate(&who, WIDTH - 2)));
        for l in wrap(&g.path, WIDTH - 6, 2) {
            out.push_str(&format!("    {l}\n"));
        }
    }
    if lay.groups_hidden > 0 {
        out.push_str(&format!(
            "  … and {} connections of other paths\n",
            lay.groups_hidden
        ));
    }

    // Diagnoses, in full, once: the diagram shows only where each was reached.
    if !lay.diagnoses.is_empty() {
        out.push_str("\nDiagnosis:\n");
        for (host, text) in &lay.diagnoses {
            for (i, l) in wrap(&format!("{host}: {text}"), WIDTH - 4, 2)
                .iter()
                .enumerate()
            {
                out.push_str(if i == 0 { "  ⚕ " } else { "    " });
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    out
}
