//! Turns a trace into display rows shared by the ASCII and SVG renderers: relative sequence
//! numbers, lane assignment, and collapsing of long repetitions (middle iterations of a
//! `repeat`, runs of alike segments such as a SYN flood) so diagrams stay readable.

use std::collections::HashMap;

use tcpfsm_states::State;

use super::Options;
use crate::trace::{Fate, NoteKind, SegmentRec, Trace, TraceEvent};

#[derive(Debug, Clone, PartialEq)]
pub enum RowKind {
    State {
        lane: usize,
        from: State,
        to: State,
        cause: String,
        /// Which connection, when the host has several (`:50003`), else empty.
        tag: String,
    },
    Segment {
        from: usize,
        to: usize,
        /// Full label: `SYN,ACK seq=0 ack=1 len=5`.
        label: String,
        /// Compact label: `SYN,ACK 0/1 5B`.
        short: String,
        fate: Fate,
    },
    App {
        lane: usize,
        text: String,
        ok: bool,
    },
    Note {
        style: NoteStyle,
        text: String,
    },
    /// Hidden rows, summarized.
    Collapsed {
        text: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteStyle {
    Say,
    Repeat,
    CheckOk,
    CheckFail,
    Diagnosis,
    Warning,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub t_us: u64,
    pub kind: RowKind,
}

/// The lanes of a diagram: one per host, plus one for addresses outside every host.
#[derive(Debug, Clone)]
pub struct Lanes {
    pub names: Vec<String>,
    pub addrs: Vec<String>,
    /// Index of the "(outside)" lane, if any segment needs it.
    pub outside: Option<usize>,
}

pub struct Layout {
    pub lanes: Lanes,
    pub rows: Vec<Row>,
}

/// `SYN,ACK seq=0 ack=1 <mss 1460,sackOK,TS,wscale 7> [retransmission]` and its compact
/// form `SYN,ACK 0/1 [rtx]`.
fn labels(s: &SegmentRec, relative: bool) -> (String, String) {
    let (seq, ack) = if relative {
        (s.rel_seq, s.rel_ack)
    } else {
        (s.seq, s.ack)
    };
    let has_ack = s.has_flag("ACK");
    let mut long = format!("{} seq={seq}", s.flags);
    let mut short = format!("{} {seq}", s.flags);
    if has_ack {
        long.push_str(&format!(" ack={ack}"));
        short.push_str(&format!("/{ack}"));
    }
    if s.len > 0 {
        long.push_str(&format!(" len={}", s.len));
        short.push_str(&format!(" {}B", s.len));
    }
    // Options where they say something: the SYNs' negotiation and SACK blocks (the
    // timestamps every segment carries would only crowd the label; JSON has them all).
    let mut shown = s.options.clone();
    if !s.has_flag("SYN") {
        shown.timestamps = None;
    }
    let base = s.ack.wrapping_sub(s.rel_ack);
    let opts = shown.label(if relative { base } else { 0 });
    if !opts.is_empty() {
        long.push(' ');
        long.push_str(&opts);
    }
    if !s.analysis.is_empty() {
        long.push(' ');
        long.push_str(&s.analysis.label());
        short.push(' ');
        short.push_str(&s.analysis.short_label());
    }
    match s.fate {
        Fate::Duplicated => {
            long.push_str(" ×2");
            short.push_str(" ×2");
        }
        Fate::Corrupted => {
            long.push_str(" (corrupt)");
            short.push_str(" !");
        }
        Fate::Dropped if s.why == Some("no route") => {
            long.push_str(" (no route)");
        }
        _ => {}
    }
    (long, short)
}

fn app_text(a: &crate::trace::AppRec) -> String {
    let mut t = match a.call.as_str() {
        "closed" if a.ok => format!("{}: connection over (closed)", a.sock),
        "closed" => format!("{}: {}", a.sock, a.result),
        _ => format!("{} {}: {}", a.call, a.sock, a.result),
    };
    if let Some(b) = a.bytes {
        if a.call == "send" || b > 0 || a.result == "eof" {
            t.push_str(&format!(" ({b} B)"));
        }
    }
    if let Some(x) = &a.text {
        let one_line: String = x.replace(['\n', '\r'], " ");
        t.push_str(&format!(" {one_line:?}"));
    }
    t
}

/// A signature of a row for run detection: alike rows differ only in numbers and tuples.
fn signature(r: &Row) -> String {
    match &r.kind {
        RowKind::State { lane, from, to, .. } => format!("s{lane}{from}{to}"),
        RowKind::Segment {
            from,
            to,
            label,
            fate,
            ..
        } => format!(
            "g{from}>{to}{}{fate}",
            label.split(' ').next().unwrap_or("")
        ),
        RowKind::App { lane, text, ok } => {
            // "connect c3: established" ~ "connect c4: established"
            let mut w = text.split(' ');
            let call = w.next().unwrap_or("");
            format!(
                "a{lane}{call}{ok}{}",
                text.rsplit(": ").next().unwrap_or("")
            )
        }
        RowKind::Note { text, .. } => format!("n{text}"),
        RowKind::Collapsed { text } => format!("c{text}"),
    }
}

fn describe(r: &Row, lanes: &Lanes) -> String {
    match &r.kind {
        RowKind::State { lane, from, to, .. } => format!("{} {from}→{to}", lanes.names[*lane]),
        RowKind::Segment {
            from,
            to,
            label,
            fate,
            ..
        } => {
            let flags = label.split(' ').next().unwrap_or("");
            if Some(*from) == lanes.outside {
                format!("spoofed {flags}s → {} ({fate})", lanes.names[*to])
            } else if Some(*to) == lanes.outside {
                format!("{flags} {} → spoofed sources ({fate})", lanes.names[*from])
            } else {
                format!("{flags} {}→{} {fate}", lanes.names[*from], lanes.names[*to])
            }
        }
        RowKind::App { text, .. } => text.split(':').next().unwrap_or("").to_string(),
        RowKind::Note { text, .. } | RowKind::Collapsed { text } => text.clone(),
    }
}

/// Collapses runs of a repeating unit of 1–4 alike rows occurring more than `max` times.
fn collapse_runs(rows: Vec<Row>, lanes: &Lanes, max: usize) -> Vec<Row> {
    let sigs: Vec<String> = rows.iter().map(signature).collect();
    let mut out = Vec::with_capacity(rows.len());
    let mut i = 0;
    while i < rows.len() {
        let mut best: Option<(usize, usize)> = None; // (period, repetitions)
        for p in 1..=4usize {
            if i + p > rows.len() {
                break;
            }
            let mut reps = 1;
            while i + (reps + 1) * p <= rows.len()
                && (0..p).all(|k| sigs[i + reps * p + k] == sigs[i + k])
            {
                reps += 1;
            }
            // Only rows of one instant: a burst (a flood, a window of data) collapses, while
            // retransmissions spread over time (the backoff is the point) stay visible.
            let same_instant = rows[i..i + reps * p].iter().all(|r| r.t_us == rows[i].t_us);
            if same_instant
                && reps > max.max(2) + 1
                && best.is_none_or(|(bp, br)| reps * p > br * bp)
            {
                best = Some((p, reps));
            }
        }
        match best {
            Some((p, reps)) => {
                // Show the first two units and the last, summarize the middle.
                out.extend_from_slice(&rows[i..i + 2 * p]);
                let hidden = reps - 3;
                let unit: Vec<String> = rows[i..i + p].iter().map(|r| describe(r, lanes)).collect();
                out.push(Row {
                    t_us: rows[i + 2 * p].t_us,
                    kind: RowKind::Collapsed {
                        text: format!("×{hidden} more alike: {}", unit.join(" · ")),
                    },
                });
                out.extend_from_slice(&rows[i + (reps - 1) * p..i + reps * p]);
                i += reps * p;
            }
            None => {
                out.push(rows[i].clone());
                i += 1;
            }
        }
    }
    out
}

pub fn layout(trace: &Trace, opts: &Options) -> Layout {
    let n = trace.hosts.len();
    let needs_outside = trace
        .segments()
        .any(|s| s.src_host.is_none() || s.dst_host.is_none());
    let mut names: Vec<String> = trace.hosts.iter().map(|h| h.name.clone()).collect();
    let mut addrs: Vec<String> = trace
        .hosts
        .iter()
        .map(|h| {
            h.addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let outside = needs_outside.then(|| {
        names.push("(outside)".into());
        addrs.push("spoofed".into());
        n
    });
    let lanes = Lanes {
        names,
        addrs,
        outside,
    };

    // Hosts with several connections get a tag per state row to tell them apart: the local
    // port, or the remote port when every connection shares the local one (a server).
    let mut conns_per_host: HashMap<usize, std::collections::HashSet<(u64, String)>> =
        HashMap::new();
    for s in trace.states() {
        if s.from != State::Closed || s.to != State::Listen {
            conns_per_host
                .entry(s.host)
                .or_default()
                .insert((s.id, s.conn.clone()));
        }
    }
    let ports = |conn: &str| -> (String, String) {
        let mut it = conn.splitn(2, '-');
        let port = |a: Option<&str>| {
            a.and_then(|x| x.rsplit(':').next())
                .unwrap_or("")
                .to_string()
        };
        (port(it.next()), port(it.next()))
    };
    let use_remote: HashMap<usize, bool> = conns_per_host
        .iter()
        .map(|(h, set)| {
            let locals: std::collections::HashSet<String> =
                set.iter().map(|(_, c)| ports(c).0).collect();
            (*h, locals.len() == 1)
        })
        .collect();

    let mut rows = Vec::new();
    // Hiding of middle repeat iterations: (block, hidden counts by kind, first t).
    let mut hiding: Option<(u32, [usize; 3], u32, u32, u64)> = None;
    let end_hiding = |rows: &mut Vec<Row>, h: (u32, [usize; 3], u32, u32, u64)| {
        let (_, c, first, last, t) = h;
        rows.push(Row {
            t_us: t,
            kind: RowKind::Collapsed {
                text: format!(
                    "iterations {}–{} hidden: {} segments, {} state changes, {} app calls",
                    first + 1,
                    last + 1,
                    c[0],
                    c[1],
                    c[2]
                ),
            },
        });
    };
    for ev in &trace.events {
        if let TraceEvent::Note(nr) = ev {
            match nr.kind {
                NoteKind::Iteration { block, n: k, of } => {
                    let hide = of as usize > opts.collapse_after + 1 && k > 0 && k + 1 < of;
                    if let Some(h) = hiding {
                        if h.0 == block && hide {
                            hiding = Some((h.0, h.1, h.2, k, h.4));
                            continue;
                        }
                        if h.0 == block {
                            end_hiding(&mut rows, h);
                            hiding = None;
                        } else {
                            continue; // a nested repeat inside a hidden iteration
                        }
                    }
                    if hide {
                        hiding = Some((block, [0; 3], k, k, nr.t_us));
                        continue;
                    }
                    rows.push(Row {
                        t_us: nr.t_us,
                        kind: RowKind::Note {
                            style: NoteStyle::Repeat,
                            text: nr.text.clone(),
                        },
                    });
                    continue;
                }
                NoteKind::RepeatEnd { block } => {
                    if let Some(h) = hiding {
                        if h.0 == block {
                            end_hiding(&mut rows, h);
                            hiding = None;
                        }
                    }
                    continue;
                }
                _ => {}
            }
        }
        if let Some(h) = hiding.as_mut() {
            match ev {
                TraceEvent::Segment(_) => h.1[0] += 1,
                TraceEvent::State(_) => h.1[1] += 1,
                TraceEvent::App(_) => h.1[2] += 1,
                TraceEvent::Note(_) => {}
            }
            continue;
        }
        let kind = match ev {
            TraceEvent::Segment(s) => {
                let (label, short) = labels(s, opts.relative_seq);
                RowKind::Segment {
                    from: s.src_host.or(outside).unwrap_or(0),
                    to: s.dst_host.or(outside).unwrap_or(0),
                    label,
                    short,
                    fate: s.fate,
                }
            }
            TraceEvent::State(s) => {
                let several = conns_per_host.get(&s.host).is_some_and(|c| c.len() > 1);
                let tag = if several && !(s.from == State::Closed && s.to == State::Listen) {
                    let (local, remote) = ports(&s.conn);
                    if use_remote.get(&s.host).copied().unwrap_or(false) {
                        format!(":{remote}")
                    } else {
                        format!(":{local}")
                    }
                } else {
                    String::new()
                };
                RowKind::State {
                    lane: s.host,
                    from: s.from,
                    to: s.to,
                    cause: s.cause.clone(),
                    tag,
                }
            }
            TraceEvent::App(a) => RowKind::App {
                lane: a.host,
                text: app_text(a),
                ok: a.ok,
            },
            TraceEvent::Note(nr) => {
                let (style, text) = match &nr.kind {
                    NoteKind::Say => (NoteStyle::Say, nr.text.clone()),
                    NoteKind::Check { ok: true } => (NoteStyle::CheckOk, nr.text.clone()),
                    NoteKind::Check { ok: false } => (NoteStyle::CheckFail, nr.text.clone()),
                    // The verdict's headline only: the whole text (evidence and advice) is
                    // printed once, in the Diagnosis section after the diagram.
                    NoteKind::Diagnosis { host, .. } => (
                        NoteStyle::Diagnosis,
                        format!(
                            "diagnosis of {}: {} (see Diagnosis below)",
                            trace.host_name(*host),
                            diagnosis_headline(&nr.text)
                        ),
                    ),
                    NoteKind::Warning => (NoteStyle::Warning, nr.text.clone()),
                    NoteKind::Iteration { .. } | NoteKind::RepeatEnd { .. } => continue,
                };
                RowKind::Note { style, text }
            }
        };
        rows.push(Row {
            t_us: ev.t_us(),
            kind,
        });
    }
    if let Some(h) = hiding {
        end_hiding(&mut rows, h);
    }
    let rows = collapse_runs(rows, &lanes, opts.collapse_after);
    Layout { lanes, rows }
}

/// Connections grouped by host and identical state path, in order of first appearance.
pub struct PathGroup {
    pub host: String,
    pub example: String,
    pub count: usize,
    pub path: String,
}

pub fn path_groups(trace: &Trace) -> Vec<PathGroup> {
    let mut groups: Vec<PathGroup> = Vec::new();
    for p in trace.conn_paths() {
        let host = trace.host_name(p.host).to_string();
        let path = p.display();
        match groups.iter_mut().find(|g| g.host == host && g.path == path) {
            Some(g) => g.count += 1,
            None => groups.push(PathGroup {
                host,
                example: listener_label(&p.conn),
                count: 1,
                path,
            }),
        }
    }
    groups
}

/// `10.0.0.2:80 (listener)` for a listener's tuple (remote `0.0.0.0:0` / `[::]:0`).
fn listener_label(conn: &str) -> String {
    for any in ["-0.0.0.0:0", "-[::]:0"] {
        if let Some(local) = conn.strip_suffix(any) {
            return format!("{local} (listener)");
        }
    }
    conn.to_string()
}

/// `CLOSE_WAIT leak: warning` of `CLOSE_WAIT leak: warning — 3 CLOSE_WAIT and rising …`.
pub fn diagnosis_headline(text: &str) -> &str {
    text.split(" — ").next().unwrap_or(text)
}

/// `12.345s` with millisecond precision.
pub fn time_label(t_us: u64) -> String {
    format!("{}.{:03}s", t_us / 1_000_000, (t_us % 1_000_000) / 1000)
}
