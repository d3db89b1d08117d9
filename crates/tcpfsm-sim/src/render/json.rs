//! JSON lines: one object per trace event, absolute sequence numbers, schema in README-section.md.

use serde::Serialize;

use crate::trace::{NoteKind, Trace, TraceEvent};

#[derive(Serialize)]
struct HostJson<'a> {
    name: &'a str,
    addrs: Vec<String>,
}

#[derive(Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum Line<'a> {
    Scenario {
        name: &'a str,
        seed: u64,
        hosts: Vec<HostJson<'a>>,
    },
    Segment {
        t_us: u64,
        src: String,
        dst: String,
        flags: &'a str,
        seq: u32,
        ack: u32,
        len: usize,
        window: u16,
        fate: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        src_host: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        dst_host: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        arrive_us: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        why: Option<&'static str>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        injected: bool,
    },
    State {
        t_us: u64,
        host: &'a str,
        conn: &'a str,
        from: &'static str,
        to: &'static str,
        cause: &'a str,
    },
    App {
        t_us: u64,
        host: &'a str,
        call: &'a str,
        sock: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        conn: Option<&'a str>,
        ok: bool,
        result: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        bytes: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<&'a str>,
    },
    Note {
        t_us: u64,
        kind: &'static str,
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        ok: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        host: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        rule: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        severity: Option<&'a str>,
    },
}

fn line<'a>(trace: &'a Trace, ev: &'a TraceEvent) -> Line<'a> {
    let host = |i: usize| trace.host_name(i);
    match ev {
        TraceEvent::Segment(s) => Line::Segment {
            t_us: s.t_us,
            src: s.src.to_string(),
            dst: s.dst.to_string(),
            flags: &s.flags,
            seq: s.seq,
            ack: s.ack,
            len: s.len,
            window: s.window,
            fate: s.fate.name(),
            src_host: s.src_host.map(host),
            dst_host: s.dst_host.map(host),
            arrive_us: s.arrive_us,
            why: s.why,
            injected: s.injected,
        },
        TraceEvent::State(s) => Line::State {
            t_us: s.t_us,
            host: host(s.host),
            conn: &s.conn,
            from: s.from.name(),
            to: s.to.name(),
            cause: &s.cause,
        },
        TraceEvent::App(a) => Line::App {
            t_us: a.t_us,
            host: host(a.host),
            call: &a.call,
            sock: &a.sock,
            conn: a.conn.as_deref(),
            ok: a.ok,
            result: &a.result,
            bytes: a.bytes,
            text: a.text.as_deref(),
        },
        TraceEvent::Note(n) => {
            let (kind, ok, h, rule, severity) = match &n.kind {
                NoteKind::Say => ("say", None, None, None, None),
                NoteKind::Iteration { .. } => ("repeat", None, None, None, None),
                NoteKind::RepeatEnd { .. } => ("repeat-end", None, None, None, None),
                NoteKind::Check { ok } => ("check", Some(*ok), None, None, None),
                NoteKind::Diagnosis {
                    host: hi,
                    rule,
                    severity,
                } => (
                    "diagnosis",
                    None,
                    Some(host(*hi)),
                    Some(rule.as_str()),
                    Some(severity.as_str()),
                ),
                NoteKind::Warning => ("warning", None, None, None, None),
            };
            Line::Note {
                t_us: n.t_us,
                kind,
                text: &n.text,
                ok,
                host: h,
                rule,
                severity,
            }
        }
    }
}

/// One trace event as a JSON object (no trailing newline).
pub fn json_event(trace: &Trace, ev: &TraceEvent) -> String {
    serde_json::to_string(&line(trace, ev)).unwrap_or_default()
}

/// The whole trace as JSON lines: a `scenario` header line, then one line per event.
pub fn json(trace: &Trace) -> String {
    let header = Line::Scenario {
        name: &trace.title,
        seed: trace.seed,
        hosts: trace
            .hosts
            .iter()
            .map(|h| HostJson {
                name: &h.name,
                addrs: h.addrs.iter().map(|a| a.to_string()).collect(),
            })
            .collect(),
    };
    let mut out = serde_json::to_string(&header).unwrap_or_default();
    out.push('\n');
    for ev in &trace.events {
        out.push_str(&json_event(trace, ev));
        out.push('\n');
    }
    out
}
