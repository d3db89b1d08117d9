//! Display rows shared by the ASCII and SVG renderers: what each trace event becomes, its
//! labels, and the collapsing of runs of alike rows (a burst of one instant).

use tcpfsm_states::State;

use crate::analysis::Analysis;
use crate::trace::{AppRec, Fate, SegmentRec};

#[derive(Debug, Clone, PartialEq)]
pub enum RowKind {
    State {
        lane: usize,
        from: State,
        to: State,
        cause: String,
        /// Local and remote port, to tell a host's connections apart ([`super::Layout::tag`]).
        ports: (u16, u16),
    },
    Segment {
        from: usize,
        to: usize,
        /// Full label: `SYN,ACK seq=0 ack=1 len=5 <mss 1460> [retransmission]`.
        label: String,
        /// Compact label: `SYN,ACK 0/1 5B [rtx]`.
        short: String,
        fate: Fate,
        /// Why it was dropped (`loss`, `rule`, `no route`).
        why: Option<&'static str>,
        /// When its first copy arrived.
        arrive_us: Option<u64>,
        analysis: Analysis,
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
    /// Traffic with spoofed sources (a flood), summarized as one band over `lanes`
    /// (lowest and highest lane it touched) from the row's time to `t_end`.
    Band {
        lanes: (usize, usize),
        text: String,
        t_end: u64,
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

/// `SYN,ACK seq=0 ack=1 <mss 1460,sackOK,TS,wscale 7> [retransmission]` and its compact
/// form `SYN,ACK 0/1 [rtx]`.
pub fn labels(s: &SegmentRec, relative: bool) -> (String, String) {
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
    let base = if relative {
        s.ack.wrapping_sub(s.rel_ack)
    } else {
        0
    };
    let opts = shown.label(base);
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
    // The sender's word where a capture reads the segment otherwise: a Linux-style probe (an
    // old sequence number, no data) is a keep-alive to Wireshark.
    let unseen = match s.sent_as {
        Some("window_probe") if !s.analysis.has(Analysis::ZERO_WINDOW_PROBE) => {
            Some("window probe")
        }
        Some("keep_alive") if !s.analysis.has(Analysis::KEEP_ALIVE) => Some("keep-alive"),
        _ => None,
    };
    if let Some(u) = unseen {
        long.push_str(&format!(" (sent as {u})"));
        short.push_str(if u == "keep-alive" {
            " (ka)"
        } else {
            " (probe)"
        });
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

pub fn app_text(a: &AppRec) -> String {
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
            analysis,
            ..
        } => format!(
            "g{from}>{to}{}{fate}{}",
            label.split(' ').next().unwrap_or(""),
            analysis.short_label()
        ),
        RowKind::App { lane, text, ok } => {
            // "connect c3: established" ~ "connect c4: established"
            let call = text.split(' ').next().unwrap_or("");
            format!(
                "a{lane}{call}{ok}{}",
                text.rsplit(": ").next().unwrap_or("")
            )
        }
        RowKind::Note { text, .. } => format!("n{text}"),
        RowKind::Collapsed { text } => format!("c{text}"),
        RowKind::Band { text, .. } => format!("b{text}"),
    }
}

fn describe(r: &Row, names: &[String], outside: Option<usize>) -> String {
    let name = |i: usize| names.get(i).map_or("?", String::as_str);
    match &r.kind {
        RowKind::State { lane, from, to, .. } => format!("{} {from}→{to}", name(*lane)),
        RowKind::Segment {
            from,
            to,
            label,
            fate,
            ..
        } => {
            let flags = label.split(' ').next().unwrap_or("");
            if Some(*from) == outside {
                format!("spoofed {flags}s → {} ({fate})", name(*to))
            } else if Some(*to) == outside {
                format!("{flags} {} → spoofed sources ({fate})", name(*from))
            } else {
                format!("{flags} {}→{} {fate}", name(*from), name(*to))
            }
        }
        RowKind::App { text, .. } => text.split(':').next().unwrap_or("").to_string(),
        RowKind::Note { text, .. } | RowKind::Collapsed { text } | RowKind::Band { text, .. } => {
            text.clone()
        }
    }
}

/// Collapses runs of a repeating unit of 1–4 alike rows occurring more than `max` times,
/// within one instant: a burst (a window of data) collapses, while retransmissions spread
/// over time (the backoff is the point) stay visible.
pub fn collapse_runs(
    rows: Vec<Row>,
    names: &[String],
    outside: Option<usize>,
    max: usize,
) -> Vec<Row> {
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
                let unit: Vec<String> = rows[i..i + p]
                    .iter()
                    .map(|r| describe(r, names, outside))
                    .collect();
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
