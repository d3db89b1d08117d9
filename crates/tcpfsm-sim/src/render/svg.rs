//! The sequence diagram as an SVG picture: one lane per host, arrows for segments (lost ones
//! stop short with a red cross), state boxes coloured by lifecycle phase.

use std::fmt::Write;

use tcpfsm_states::Phase;

use super::layout::{layout, path_groups, time_label, NoteStyle, RowKind};
use super::Options;
use crate::trace::{Fate, Trace};

const ROW_H: usize = 22;
const TOP: usize = 70;
const LEFT: usize = 80;
const LANE_GAP: usize = 300;
const MARGIN: usize = 120;
/// Right of the last lane: app calls and causes are written to the right of their lane.
const RIGHT_ROOM: usize = 320;

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

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// Renders the trace as a standalone SVG document.
pub fn svg(trace: &Trace, opts: &Options) -> String {
    let lay = layout(trace, opts);
    let n = lay.lanes.names.len().max(1);
    let xs: Vec<usize> = (0..n).map(|i| LEFT + MARGIN + i * LANE_GAP).collect();
    let groups = path_groups(trace);
    // Room on the right for the last lane's labels, and for the longest state path line.
    let longest_path = groups
        .iter()
        .map(|g| g.host.len() + g.example.len() + g.path.chars().count() + 16)
        .max()
        .unwrap_or(0);
    let width = (LEFT + MARGIN + (n - 1) * LANE_GAP + RIGHT_ROOM).max(20 + longest_path * 15 / 2);
    let body_h = lay.rows.len() * ROW_H;
    let legend_y = TOP + body_h + 30;
    let height = legend_y + 40 + groups.len() * 18 + 20;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="monospace" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#333"/></marker></defs>"##
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="20" font-size="14" font-weight="bold">tcpfsm sim {} (seed {})</text>"#,
        esc(&trace.title),
        trace.seed
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
            s,
            r##"<g class="{class}" data-host="{}"><text x="{x}" y="42" text-anchor="middle" font-weight="bold">{}</text><text x="{x}" y="56" text-anchor="middle" fill="#666">{}</text><line x1="{x}" y1="{TOP}" x2="{x}" y2="{}" stroke="#888" stroke-width="1.5"/></g>"##,
            esc(name),
            esc(name),
            esc(&lay.lanes.addrs[i]),
            TOP + body_h
        );
    }
    let mut last_t = None;
    for (r, row) in lay.rows.iter().enumerate() {
        let y = TOP + r * ROW_H + ROW_H / 2;
        if last_t != Some(row.t_us) {
            last_t = Some(row.t_us);
            let _ = writeln!(
                s,
                r##"<text class="time" x="10" y="{}" fill="#555">{}</text>"##,
                y + 4,
                time_label(row.t_us)
            );
        }
        match &row.kind {
            RowKind::Segment {
                from,
                to,
                label,
                fate,
                ..
            } => {
                let (x1, x2) = (xs[*from] as i64, xs[*to] as i64);
                if x1 == x2 {
                    // A host talking to itself: a small loop beside its lane.
                    let _ = writeln!(
                        s,
                        r##"<g class="segment" data-fate="{fate}"><path d="M{x1} {} h24 v10 h-22" fill="none" stroke="#333" stroke-width="1.5" marker-end="url(#arrow)"/><text x="{}" y="{}" font-size="11">{}</text></g>"##,
                        y - 6,
                        x1 + 30,
                        y + 3,
                        esc(label)
                    );
                    continue;
                }
                let dir = if x2 > x1 { 1 } else { -1 };
                let (stroke, dash) = match fate {
                    Fate::Dropped => ("#c0392b", r#" stroke-dasharray="5,3""#),
                    Fate::Corrupted => ("#8e44ad", r#" stroke-dasharray="2,2""#),
                    Fate::Duplicated => ("#2c3e50", ""),
                    Fate::Delivered => ("#333", ""),
                };
                let end = if *fate == Fate::Dropped {
                    x1 + (x2 - x1) * 3 / 4
                } else {
                    x2 - dir * 2
                };
                let marker = if *fate == Fate::Dropped {
                    ""
                } else {
                    r#" marker-end="url(#arrow)""#
                };
                let _ = writeln!(
                    s,
                    r#"<g class="segment" data-fate="{fate}"><line x1="{}" y1="{y}" x2="{end}" y2="{y}" stroke="{stroke}" stroke-width="1.5"{dash}{marker}/><text x="{}" y="{}" text-anchor="middle" font-size="11">{}</text>"#,
                    x1 + dir * 2,
                    (x1 + x2) / 2,
                    y - 3,
                    esc(label)
                );
                if *fate == Fate::Dropped {
                    let _ = writeln!(
                        s,
                        r##"<path d="M{} {} l8 8 M{} {} l-8 8" stroke="#c0392b" stroke-width="2"/>"##,
                        end - 4,
                        y - 4,
                        end + 4,
                        y - 4
                    );
                }
                s.push_str("</g>\n");
            }
            RowKind::State {
                lane,
                to,
                cause,
                tag,
                ..
            } => {
                let x = xs[*lane];
                let name = format!("{}{tag}", to.name());
                let w = name.chars().count() * 7 + 12;
                let _ = writeln!(
                    s,
                    r##"<g class="state" data-state="{}" data-phase="{}"><rect x="{}" y="{}" width="{w}" height="{}" rx="5" fill="{}" stroke="#555"/><text x="{x}" y="{}" text-anchor="middle">{}</text><text x="{}" y="{}" fill="#666" font-size="10">{}</text></g>"##,
                    to.name(),
                    phase_name(to.phase()),
                    x - w / 2,
                    y - 8,
                    ROW_H - 4,
                    phase_colour(to.phase()),
                    y + 4,
                    esc(&name),
                    x + w / 2 + 4,
                    y + 4,
                    esc(&format!("({cause})"))
                );
            }
            RowKind::App { lane, text, ok } => {
                let x = xs[*lane];
                let colour = if *ok { "#2c7bb6" } else { "#c0392b" };
                let _ = writeln!(
                    s,
                    r#"<g class="app"><circle cx="{x}" cy="{y}" r="4" fill="{colour}"/><text x="{}" y="{}" fill="{colour}">{}</text></g>"#,
                    x + 8,
                    y + 4,
                    esc(text)
                );
            }
            RowKind::Note { style, text } => {
                let (colour, prefix) = match style {
                    NoteStyle::Say => ("#444", "» "),
                    NoteStyle::Repeat => ("#999", "── "),
                    NoteStyle::CheckOk => ("#1a9850", "✔ "),
                    NoteStyle::CheckFail => ("#c0392b", "✘ "),
                    NoteStyle::Diagnosis => ("#b35806", "⚕ "),
                    NoteStyle::Warning => ("#c0392b", "! "),
                };
                let _ = writeln!(
                    s,
                    r#"<text class="note" x="{LEFT}" y="{}" fill="{colour}" font-style="italic">{}{}</text>"#,
                    y + 4,
                    prefix,
                    esc(text)
                );
            }
            RowKind::Collapsed { text } => {
                let _ = writeln!(
                    s,
                    r##"<text class="collapsed" x="{LEFT}" y="{}" fill="#888">⋮ {}</text>"##,
                    y + 4,
                    esc(text)
                );
            }
        }
    }
    // Legend and state paths.
    let mut x = 10;
    for p in [
        Phase::Establishment,
        Phase::Transfer,
        Phase::ActiveClose,
        Phase::PassiveClose,
        Phase::Baseline,
    ] {
        let _ = writeln!(
            s,
            r##"<g class="legend"><rect x="{x}" y="{legend_y}" width="14" height="14" fill="{}" stroke="#555"/><text x="{}" y="{}">{}</text></g>"##,
            phase_colour(p),
            x + 18,
            legend_y + 11,
            phase_name(p)
        );
        x += 140;
    }
    let mut y = legend_y + 40;
    for g in groups {
        let who = if g.count > 1 {
            format!("{} ×{} (like {})", g.host, g.count, g.example)
        } else {
            format!("{} {}", g.host, g.example)
        };
        let _ = writeln!(
            s,
            r#"<text class="path" x="10" y="{y}">{}: {}</text>"#,
            esc(&who),
            esc(&g.path)
        );
        y += 18;
    }
    s.push_str("</svg>\n");
    s
}
