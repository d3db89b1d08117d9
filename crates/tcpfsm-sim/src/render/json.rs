//! JSON lines: one object per trace event, absolute sequence numbers, schema in the README.
//! [`JsonSink`] writes each line as the event happens.

use std::io::{self, Write};

use serde::Serialize;

use crate::sink::{Header, Sink};
use crate::trace::{HostInfo, NoteKind, SegOptions, Trace, TraceEvent};

/// A segment's options, always present (`{}` when it has none).
#[derive(Serialize)]
struct OptionsJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    mss: Option<u16>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    sack_permitted: bool,
    /// `[TSval, TSecr]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    ts: Option<[u32; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wscale: Option<u8>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sack: Vec<[u32; 2]>,
}

impl From<&SegOptions> for OptionsJson {
    fn from(o: &SegOptions) -> OptionsJson {
        OptionsJson {
            mss: o.mss,
            sack_permitted: o.sack_permitted,
            ts: o.timestamps.map(|(v, e)| [v, e]),
            wscale: o.wscale,
            sack: o.sack.iter().map(|(l, r)| [*l, *r]).collect(),
        }
    }
}

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
        /// The frame number of this segment in the `--pcap` capture.
        frame: u64,
        src: String,
        dst: String,
        flags: &'a str,
        seq: u32,
        ack: u32,
        len: usize,
        window: u16,
        options: OptionsJson,
        /// Wireshark's tcp.analysis marks, plus the sender's own (challenge ACK, SYN cookie).
        analysis: Vec<String>,
        /// For a duplicate ACK, the frame of the ACK it repeats.
        #[serde(skip_serializing_if = "Option::is_none")]
        dup_ack_of: Option<u64>,
        /// The sender's own name for it, when not a plain segment.
        #[serde(skip_serializing_if = "Option::is_none")]
        sent_as: Option<&'static str>,
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

fn line<'a>(hosts: &'a [HostInfo], ev: &'a TraceEvent) -> Line<'a> {
    let host = |i: usize| hosts.get(i).map_or("?", |h| h.name.as_str());
    match ev {
        TraceEvent::Segment(s) => Line::Segment {
            t_us: s.t_us,
            frame: s.frame,
            src: s.src.to_string(),
            dst: s.dst.to_string(),
            flags: &s.flags,
            seq: s.seq,
            ack: s.ack,
            len: s.len,
            window: s.window,
            options: OptionsJson::from(&s.options),
            analysis: s.analysis.names(),
            dup_ack_of: (s.analysis.dup_ack > 0).then_some(s.analysis.dup_ack_of),
            sent_as: s.sent_as,
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
    serde_json::to_string(&line(&trace.hosts, ev)).unwrap_or_default()
}

fn header_line(name: &str, seed: u64, hosts: &[HostInfo]) -> String {
    let header = Line::Scenario {
        name,
        seed,
        hosts: hosts
            .iter()
            .map(|h| HostJson {
                name: &h.name,
                addrs: h.addrs.iter().map(|a| a.to_string()).collect(),
            })
            .collect(),
    };
    serde_json::to_string(&header).unwrap_or_default()
}

/// The whole trace as JSON lines: a `scenario` header line, then one line per event.
pub fn json(trace: &Trace) -> String {
    let mut out = header_line(&trace.title, trace.seed, &trace.hosts);
    out.push('\n');
    for ev in &trace.events {
        out.push_str(&json_event(trace, ev));
        out.push('\n');
    }
    out
}

/// Writes JSON lines as the events happen (the same lines as [`json`]).
pub struct JsonSink<W: Write> {
    out: W,
    hosts: Vec<HostInfo>,
}

impl<W: Write> JsonSink<W> {
    pub fn new(out: W) -> JsonSink<W> {
        JsonSink {
            out,
            hosts: Vec::new(),
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> Sink for JsonSink<W> {
    fn begin(&mut self, h: &Header) -> io::Result<()> {
        self.hosts = h.hosts.clone();
        writeln!(self.out, "{}", header_line(&h.title, h.seed, &h.hosts))
    }

    fn event(&mut self, ev: &TraceEvent) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, &line(&self.hosts, ev))?;
        self.out.write_all(b"\n")
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
