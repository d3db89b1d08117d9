//! The sequence diagram as an SVG picture. Time runs down: each event has a row, and a
//! segment's arrow leaves the sender's lane below its label row and reaches the receiver's
//! lane at the row of its arrival time, so segments in flight at once cross as in the
//! textbooks. Lost segments stop short with a red cross; state boxes are coloured by
//! lifecycle phase; long texts wrap inside the canvas. Every text's box is computed here and
//! written as `data-box`, and no two overlap.

use std::collections::HashMap;
use std::fmt::Write;

use tcpfsm_states::{Phase, State};

use super::layout::{time_label, Layout, LayoutBuilder};
use super::rows::{NoteStyle, Row, RowKind};
use super::svg_text::{esc, fits, text_box, truncate, width, wrap, Anchor, Rect, CHAR_W, FONT};
use super::Options;
use crate::analysis::Analysis;
use crate::trace::{Fate, Trace};

const ROW_H: f64 = 24.0;
/// Baseline of a row's text below the row's top.
const BASE: f64 = 16.0;
const TOP: f64 = 76.0;
/// x of the first lane: room for the time column and a state box centred on the lane.
const LANE0: f64 = 200.0;
const LANE_GAP: f64 = 500.0;
/// Right of the last lane: half the widest state box.
const RIGHT: f64 = 110.0;
const MIN_WIDTH: f64 = 810.0;
/// An arrow falls at least this much from its send row to its arrival: rows are pushed
/// down to make room, so segments in flight at once visibly cross.
const MIN_DROP: f64 = ROW_H;
/// Notes and summaries start here.
const NOTE_X: f64 = 80.0;
const BAND_LINES: usize = 6;

/// Fill colour of a phase (establishment, transfer, active close, passive close, baseline).
pub fn phase_colour(p: Phase) -> &'static str {
    match p {
        Phase::Baseline => "#d0d0d0",
        Phase::Establishment => "#9ecae1",
        Phase::Transfer => "#a1d99b",
        Phase::ActiveClose => "#fdae6b",
        Phase::PassiveClose => "#bcbddc",
    }
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Baseline => "baseline",
        Phase::Establishment => "establishment",
        Phase::Transfer => "transfer",
        Phase::ActiveClose => "active close",
        Phase::PassiveClose => "passive close",
    }
}

/// Stroke colour of a segment's arrow: what it is, then what became of it.
fn arrow_colour(fate: Fate, a: &Analysis) -> &'static str {
    match fate {
        Fate::Dropped => "#c0392b",
        Fate::Corrupted => "#8e44ad",
        _ if a.is_retransmission() => "#d35400",
        _ if a.has(Analysis::DUP_ACK) || a.has(Analysis::ZERO_WINDOW) => "#2874a6",
        _ => "#333",
    }
}

/// The document being drawn, with the box of every text in it.
struct Doc {
    body: String,
    boxes: Vec<Rect>,
    width: f64,
}

impl Doc {
    /// A text element; `full` is the untruncated text, shown as a tooltip when cut.
    fn text(&mut self, class: &str, x: f64, y: f64, anchor: Anchor, s: &str, style: &str) {
        self.text_full(class, x, y, anchor, s, s, style);
    }

    #[allow(clippy::too_many_arguments)]
    fn text_full(
        &mut self,
        class: &str,
        x: f64,
        y: f64,
        anchor: Anchor,
        s: &str,
        full: &str,
        style: &str,
    ) {
        if s.is_empty() {
            return;
        }
        let b = text_box(s, x, y, anchor);
        let id = self.boxes.len();
        self.boxes.push(b);
        let title = if s != full {
            format!("<title>{}</title>", esc(full))
        } else {
            String::new()
        };
        let _ = writeln!(
            self.body,
            r#"<text id="t{id}" class="{class}" x="{x:.1}" y="{y:.1}" text-anchor="{}" data-box="{:.1} {:.1} {:.1} {:.1}"{style}>{title}{}</text>"#,
            anchor.name(),
            b.x,
            b.y,
            b.w,
            b.h,
            esc(s)
        );
    }

    /// Text that must fit in `room` px, cut with `…` if it does not.
    #[allow(clippy::too_many_arguments)]
    fn text_in(
        &mut self,
        class: &str,
        x: f64,
        y: f64,
        anchor: Anchor,
        s: &str,
        room: f64,
        style: &str,
    ) {
        let t = truncate(s, fits(room));
        self.text_full(class, x, y, anchor, &t, s, style);
    }
}

/// Lines each row takes.
fn lines_of(row: &Row, note_chars: usize, lay: &Layout, xs: &[f64]) -> Vec<String> {
    match &row.kind {
        RowKind::Note { style, text } => {
            let prefix = match style {
                NoteStyle::Say => "» ",
                NoteStyle::Repeat => "── ",
                NoteStyle::CheckOk => "✔ ",
                NoteStyle::CheckFail => "✘ ",
                NoteStyle::Diagnosis => "⚕ ",
                NoteStyle::Warning => "! ",
            };
            wrap(&format!("{prefix}{text}"), note_chars)
        }
        RowKind::Collapsed { text } => wrap(&format!("⋮ {text}"), note_chars),
        RowKind::Band { lanes, text, .. } => {
            let (x0, x1) = band_x(*lanes, xs, lay);
            let mut l = wrap(text, fits(x1 - x0 - 16.0));
            if l.len() > BAND_LINES {
                l.truncate(BAND_LINES);
                let last = truncate(&l[BAND_LINES - 1], fits(x1 - x0 - 16.0) - 1);
                l[BAND_LINES - 1] = format!("{last}…");
            }
            l
        }
        _ => vec![String::new()],
    }
}

fn band_x(lanes: (usize, usize), xs: &[f64], lay: &Layout) -> (f64, f64) {
    let lo = xs[lanes.0.min(xs.len() - 1)];
    let hi = xs[lanes.1.min(xs.len() - 1)];
    let _ = lay;
    if hi - lo < LANE_GAP / 2.0 {
        (lo - LANE_GAP / 4.0, hi + RIGHT - 10.0)
    } else {
        (lo - 12.0, hi + 12.0)
    }
}

/// Renders the trace as a standalone SVG document.
pub fn svg(trace: &Trace, opts: &Options) -> String {
    svg_layout(&LayoutBuilder::from_trace(trace, opts))
}

/// Draws a finished layout.
pub fn svg_layout(lay: &Layout) -> String {
    let n = lay.lanes.names.len().max(1);
    let xs: Vec<f64> = (0..n).map(|i| LANE0 + i as f64 * LANE_GAP).collect();
    let width = (LANE0 + (n - 1) as f64 * LANE_GAP + RIGHT).max(MIN_WIDTH);
    let note_chars = fits(width - NOTE_X - 10.0);
    // Each row's lines, and the top of each row.
    let lines: Vec<Vec<String>> = lay
        .rows
        .iter()
        .map(|r| lines_of(r, note_chars, lay, &xs))
        .collect();
    let tops = row_tops(lay, &lines);
    let body_end = tops[lay.rows.len()];
    let mut doc = Doc {
        body: String::new(),
        boxes: Vec::new(),
        width,
    };
    let title = format!("tcpfsm sim {} (seed {})", lay.title, lay.seed);
    doc.text_in(
        "title",
        10.0,
        20.0,
        Anchor::Start,
        &title,
        width - 20.0,
        r#" font-weight="bold""#,
    );
    // Lanes.
    for (i, name) in lay.lanes.names.iter().enumerate() {
        let x = xs[i];
        let class = if Some(i) == lay.lanes.outside {
            "outside"
        } else {
            "lane"
        };
        let _ = writeln!(
            doc.body,
            r##"<g class="{class}" data-host="{}"><line x1="{x}" y1="{TOP}" x2="{x}" y2="{body_end}" stroke="#888" stroke-width="1.5"/></g>"##,
            esc(name),
        );
        doc.text_in(
            "host",
            x,
            44.0,
            Anchor::Middle,
            name,
            LANE_GAP - 40.0,
            r#" font-weight="bold""#,
        );
        doc.text_in(
            "addr",
            x,
            60.0,
            Anchor::Middle,
            &lay.lanes.addrs[i],
            LANE_GAP - 40.0,
            r##" fill="#666""##,
        );
    }
    draw_rows(&mut doc, lay, &xs, &lines, &tops);
    let y = legend(&mut doc, body_end + 24.0);
    let y = paths(&mut doc, lay, y - ROW_H * 0.6, note_chars);
    let height = (y + 8.0).ceil();
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans Mono, monospace" font-size="{FONT}">"#
    );
    let _ = writeln!(
        s,
        r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="8" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker><style>text {{ paint-order: stroke; stroke: white; stroke-width: 3px; stroke-linejoin: round; }}</style></defs>"##
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    s.push_str(&doc.body);
    s.push_str("</svg>\n");
    s
}

/// The top of each row (and the end of the last): rows stack, and a row where segments
/// arrive is pushed down until each of them falls by at least [`MIN_DROP`].
fn row_tops(lay: &Layout, lines: &[Vec<String>]) -> Vec<f64> {
    let n = lay.rows.len();
    let mut min_top = vec![TOP; n + 1];
    let mut tops = Vec::with_capacity(n + 1);
    let mut y = TOP;
    for (r, row) in lay.rows.iter().enumerate() {
        let top = y.max(min_top[r]);
        tops.push(top);
        y = top + lines[r].len() as f64 * ROW_H;
        if let RowKind::Segment {
            from,
            to,
            arrive_us: Some(a),
            ..
        } = &row.kind
        {
            if from != to {
                let j = r + 1 + lay.rows[r + 1..].partition_point(|x| x.t_us < *a);
                min_top[j] = min_top[j].max(y + MIN_DROP);
            }
        }
    }
    tops.push(y.max(min_top[n]));
    tops
}

/// The y where a time is reached: the top of the first row at or after it (after `from`).
fn y_at(lay: &Layout, tops: &[f64], from: usize, t_us: u64) -> f64 {
    let rows = &lay.rows[from..];
    let k = rows.partition_point(|r| r.t_us < t_us);
    tops[from + k]
}

fn draw_rows(doc: &mut Doc, lay: &Layout, xs: &[f64], lines: &[Vec<String>], tops: &[f64]) {
    let mut last_t = None;
    // Transit time per lane pair, to slope an arrow that never arrived like its siblings.
    let mut transit: HashMap<(usize, usize), u64> = HashMap::new();
    let mut crosses: Vec<(f64, f64, f64, f64)> = Vec::new();
    let last_lane = xs.len() - 1;
    for (r, row) in lay.rows.iter().enumerate() {
        let top = tops[r];
        let base = top + BASE;
        if last_t != Some(row.t_us) {
            last_t = Some(row.t_us);
            doc.text(
                "time",
                8.0,
                base,
                Anchor::Start,
                &time_label(row.t_us),
                r##" fill="#555""##,
            );
        }
        match &row.kind {
            RowKind::Segment {
                from,
                to,
                label,
                fate,
                arrive_us,
                analysis,
                ..
            } => {
                let (x1, x2) = (xs[*from], xs[*to]);
                let colour = arrow_colour(*fate, analysis);
                let names = analysis.names().join(" ");
                if from == to {
                    let _ = writeln!(
                        doc.body,
                        r##"<g class="segment" data-fate="{fate}" data-analysis="{names}"><path d="M{x1} {} h24 v10 h-22" fill="none" stroke="{colour}" stroke-width="1.5" marker-end="url(#arrow)"/></g>"##,
                        top + 6.0
                    );
                    let room = LANE_GAP - 60.0;
                    doc.text_in("label", x1 + 32.0, base, Anchor::Start, label, room, "");
                    continue;
                }
                let dir = if x2 > x1 { 1.0 } else { -1.0 };
                let room = (x2 - x1).abs() - 20.0;
                let anchor = if dir > 0.0 {
                    Anchor::Start
                } else {
                    Anchor::End
                };
                doc.text_in("label", x1 + dir * 8.0, base, anchor, label, room, "");
                let y1 = top + ROW_H;
                let pair = (*from, *to);
                let t_arr = match arrive_us {
                    Some(a) => {
                        transit.insert(pair, a - row.t_us);
                        *a
                    }
                    None => row.t_us + transit.get(&pair).copied().unwrap_or(0),
                };
                let y2 = y_at(lay, tops, r + 1, t_arr.max(row.t_us + 1)).max(y1);
                let dash = match fate {
                    Fate::Dropped => r#" stroke-dasharray="5,3""#,
                    Fate::Corrupted => r#" stroke-dasharray="2,2""#,
                    _ => "",
                };
                if *fate == Fate::Dropped {
                    crosses.push((x1, y1, x2, y2));
                    let _ = writeln!(
                        doc.body,
                        r#"<g class="segment" data-fate="{fate}" data-analysis="{names}" data-lost="{}"/>"#,
                        crosses.len() - 1
                    );
                    continue;
                }
                let end = x2 - dir * 1.5;
                let _ = writeln!(
                    doc.body,
                    r#"<g class="segment" data-fate="{fate}" data-analysis="{names}"><line x1="{x1}" y1="{y1}" x2="{end}" y2="{y2:.1}" stroke="{colour}" stroke-width="1.5"{dash} marker-end="url(#arrow)"/></g>"#
                );
            }
            RowKind::State {
                lane,
                from,
                to,
                cause,
                ports,
            } => {
                let x = xs[*lane];
                let listener = *from == State::Closed && *to == State::Listen;
                let name = format!("{}{}", to.name(), lay.tag(*lane, *ports, listener));
                let w = width(&name) + 12.0;
                let _ = writeln!(
                    doc.body,
                    r##"<g class="state" data-state="{}" data-phase="{}"><rect x="{:.1}" y="{:.1}" width="{w:.1}" height="17" rx="5" fill="{}" stroke="#555"/></g>"##,
                    to.name(),
                    phase_name(to.phase()),
                    x - w / 2.0,
                    top + 4.0,
                    phase_colour(to.phase()),
                );
                doc.text("state-name", x, base, Anchor::Middle, &name, "");
                let cause = format!("({cause})");
                let grey = r##" fill="#666""##;
                if *lane < last_lane {
                    let room = LANE_GAP - w / 2.0 - 20.0;
                    doc.text_in(
                        "cause",
                        x + w / 2.0 + 6.0,
                        base,
                        Anchor::Start,
                        &cause,
                        room,
                        grey,
                    );
                } else {
                    let room = LANE_GAP - w / 2.0 - 80.0;
                    doc.text_in(
                        "cause",
                        x - w / 2.0 - 6.0,
                        base,
                        Anchor::End,
                        &cause,
                        room,
                        grey,
                    );
                }
            }
            RowKind::App { lane, text, ok } => {
                let x = xs[*lane];
                let colour = if *ok { "#2c7bb6" } else { "#c0392b" };
                let _ = writeln!(
                    doc.body,
                    r#"<g class="app"><circle cx="{x}" cy="{:.1}" r="4" fill="{colour}"/></g>"#,
                    top + 12.0
                );
                let style = format!(r#" fill="{colour}""#);
                if *lane < last_lane || xs.len() == 1 {
                    let room = if xs.len() == 1 {
                        doc.width - x - 20.0
                    } else {
                        LANE_GAP - 20.0
                    };
                    doc.text_in("app", x + 9.0, base, Anchor::Start, text, room, &style);
                } else {
                    doc.text_in(
                        "app",
                        x - 9.0,
                        base,
                        Anchor::End,
                        text,
                        LANE_GAP - 80.0,
                        &style,
                    );
                }
            }
            RowKind::Note { .. } | RowKind::Collapsed { .. } => {
                let (class, colour) = match &row.kind {
                    RowKind::Note { style, .. } => (
                        "note",
                        match style {
                            NoteStyle::Say => "#444",
                            NoteStyle::Repeat => "#999",
                            NoteStyle::CheckOk => "#1a9850",
                            NoteStyle::CheckFail | NoteStyle::Warning => "#c0392b",
                            NoteStyle::Diagnosis => "#b35806",
                        },
                    ),
                    _ => ("collapsed", "#888"),
                };
                for (i, l) in lines[r].iter().enumerate() {
                    let y = top + i as f64 * ROW_H + BASE;
                    doc.text(
                        class,
                        NOTE_X,
                        y,
                        Anchor::Start,
                        l,
                        &format!(r#" fill="{colour}""#),
                    );
                }
            }
            RowKind::Band { lanes, .. } => {
                let (x0, x1) = band_x(*lanes, xs, lay);
                let h = lines[r].len() as f64 * ROW_H;
                let _ = writeln!(
                    doc.body,
                    r##"<g class="band"><rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="4" fill="#fbe3d4" stroke="#e59866" stroke-dasharray="4,2"/></g>"##,
                    top + 2.0,
                    x1 - x0,
                    h - 4.0
                );
                for (i, l) in lines[r].iter().enumerate() {
                    let y = top + i as f64 * ROW_H + BASE;
                    doc.text(
                        "band",
                        x0 + 8.0,
                        y,
                        Anchor::Start,
                        l,
                        r##" fill="#784212""##,
                    );
                }
            }
        }
    }
    draw_losses(doc, &crosses);
}

/// Lost segments: a dashed arrow that stops short, with a red cross where it stops — at
/// 70 % of the way, or the nearest point along it where the cross covers no text.
fn draw_losses(doc: &mut Doc, crosses: &[(f64, f64, f64, f64)]) {
    for (i, (x1, y1, x2, y2)) in crosses.iter().enumerate() {
        let at = |f: f64| (x1 + (x2 - x1) * f, y1 + (y2 - y1) * f);
        let fs = [0.7, 0.6, 0.8, 0.5, 0.9, 0.4, 0.3];
        let free = |f: f64| {
            let (cx, cy) = at(f);
            let r = Rect {
                x: cx - 6.0,
                y: cy - 6.0,
                w: 12.0,
                h: 12.0,
            };
            !doc.boxes.iter().any(|b| b.overlaps(&r))
        };
        let f = fs.iter().copied().find(|f| free(*f)).unwrap_or(0.7);
        let (cx, cy) = at(f);
        let _ = writeln!(
            doc.body,
            r##"<g class="lost" data-lost="{i}"><line x1="{x1}" y1="{y1}" x2="{cx:.1}" y2="{cy:.1}" stroke="#c0392b" stroke-width="1.5" stroke-dasharray="5,3"/><path d="M{:.1} {:.1} l8 8 M{:.1} {:.1} l-8 8" stroke="#c0392b" stroke-width="2"/></g>"##,
            cx - 4.0,
            cy - 4.0,
            cx + 4.0,
            cy - 4.0
        );
    }
}

/// The colour key; returns the y below it.
fn legend(doc: &mut Doc, y: f64) -> f64 {
    let mut x = 10.0;
    let mut y = y;
    for p in [
        Phase::Establishment,
        Phase::Transfer,
        Phase::ActiveClose,
        Phase::PassiveClose,
        Phase::Baseline,
    ] {
        let w = 22.0 + width(phase_name(p)) + 16.0;
        if x + w > doc.width - 10.0 {
            x = 10.0;
            y += ROW_H;
        }
        let _ = writeln!(
            doc.body,
            r##"<g class="legend"><rect x="{x}" y="{:.1}" width="14" height="14" fill="{}" stroke="#555"/></g>"##,
            y - 11.0,
            phase_colour(p),
        );
        doc.text("legend", x + 18.0, y, Anchor::Start, phase_name(p), "");
        x += w;
    }
    y += ROW_H;
    x = 10.0;
    for (colour, dash, what) in [
        ("#333", "", "delivered"),
        ("#d35400", "", "retransmission"),
        ("#2874a6", "", "dup ACK / zero window"),
        ("#c0392b", "5,3", "lost"),
        ("#8e44ad", "2,2", "corrupted"),
    ] {
        let w = 36.0 + width(what) + 16.0;
        if x + w > doc.width - 10.0 {
            x = 10.0;
            y += ROW_H;
        }
        let _ = writeln!(
            doc.body,
            r#"<g class="legend"><line x1="{x}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="{colour}" stroke-width="1.5" stroke-dasharray="{dash}"/></g>"#,
            y - 4.0,
            x + 28.0,
            y - 4.0
        );
        doc.text("legend", x + 34.0, y, Anchor::Start, what, "");
        x += w;
    }
    y + ROW_H
}

/// The state path of each connection, the diagnoses in full, and what was not drawn.
fn paths(doc: &mut Doc, lay: &Layout, mut y: f64, chars: usize) -> f64 {
    let block = |doc: &mut Doc, y: &mut f64, class: &str, text: &str, indent: f64| {
        for l in wrap(text, chars.saturating_sub(fits(indent))) {
            *y += ROW_H * 0.8;
            doc.text(class, 10.0 + indent, *y, Anchor::Start, &l, "");
        }
    };
    if let Some(t) = &lay.tail {
        block(doc, &mut y, "tail", t, 0.0);
    }
    y += ROW_H * 0.4;
    block(doc, &mut y, "heading", "State paths:", 0.0);
    for g in &lay.groups {
        let who = if g.count > 1 {
            format!("{} ×{} (like {})", g.host, g.count, g.example)
        } else {
            format!("{} {}", g.host, g.example)
        };
        block(
            doc,
            &mut y,
            "path",
            &format!("{who}: {}", g.path),
            CHAR_W * 2.0,
        );
    }
    if lay.groups_hidden > 0 {
        let t = format!("… and {} connections of other paths", lay.groups_hidden);
        block(doc, &mut y, "path", &t, CHAR_W * 2.0);
    }
    if !lay.diagnoses.is_empty() {
        y += ROW_H * 0.4;
        block(doc, &mut y, "heading", "Diagnosis:", 0.0);
        for (host, text) in &lay.diagnoses {
            block(
                doc,
                &mut y,
                "diagnosis",
                &format!("⚕ {host}: {text}"),
                CHAR_W * 2.0,
            );
        }
    }
    y
}
