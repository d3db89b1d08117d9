//! How `tcpfsm trace` prints events: JSON lines in the simulator's event schema (plus the live
//! host's fields), or aligned text columns like bcc's `tcpstates` and `tcpretrans`.

use crate::trace::{Event, EventKind, Source, Tracer};
use serde::Serialize;
use std::io::{self, Write};
use std::time::UNIX_EPOCH;

/// `net:[INODE]` (how /proc/PID/ns/net names a namespace), or `unknown`.
pub fn netns_name(ino: Option<u64>) -> String {
    match ino {
        Some(i) => format!("net:[{i}]"),
        None => "unknown".to_string(),
    }
}

/// A kernel address as bcc's tools print it: lower-case hex, no prefix.
pub fn skaddr_hex(a: u64) -> String {
    format!("{a:x}")
}

/// What the trace header says about namespaces.
pub fn netns_note(t: &Tracer) -> String {
    match t.lookup_netns() {
        Some(ns) => format!(
            "the tracepoints carry no network namespace: their events are from every namespace \
             of this host (netns \"unknown\"); TIME_WAIT is looked up in {} only, and what \
             is found there carries that namespace",
            netns_name(Some(ns))
        ),
        None => "the tracepoints carry no network namespace: events are from every namespace \
                 of this host (netns \"unknown\"); TIME_WAIT lookups are off"
            .to_string(),
    }
}

/// The first JSON line: what the trace covers.
#[derive(Debug, Serialize)]
pub struct JsonHeader<'a> {
    pub event: &'static str,
    pub host: &'a str,
    pub time: String,
    pub events: Vec<&'static str>,
    pub lookup_netns: Option<String>,
    pub note: String,
}

/// One event as a JSON line.
#[derive(Debug, Serialize)]
pub struct JsonEvent<'a> {
    pub event: &'static str,
    /// Microseconds since the trace started.
    pub t_us: u64,
    /// Wall-clock time, RFC 3339 (UTC, microseconds).
    pub time: String,
    pub host: &'a str,
    pub netns: String,
    pub conn: String,
    pub skaddr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ms_in_prev: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_wait: Option<&'static str>,
    /// The socket's state (retransmit, reset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<Option<&'static str>>,
    /// `sent` or `received` (reset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub err: Option<i32>,
    pub pid: Option<u32>,
    pub comm: Option<&'a str>,
}

fn round3(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

impl Event {
    pub fn json<'a>(&'a self, t: &Tracer, host: &'a str) -> JsonEvent<'a> {
        let mut j = JsonEvent {
            event: "state",
            t_us: t.t_us(self.mono_ns),
            time: humantime::format_rfc3339_micros(t.wall(self.mono_ns)).to_string(),
            host,
            netns: netns_name(self.netns),
            conn: self.conn(),
            skaddr: self.skaddr.map(skaddr_hex),
            from: None,
            to: None,
            cause: None,
            source: None,
            ms_in_prev: None,
            last_seen_us: None,
            time_wait: None,
            state: None,
            direction: None,
            reason: None,
            err: None,
            pid: self.pid,
            comm: self.comm.as_deref(),
        };
        match &self.kind {
            EventKind::State(c) => {
                j.from = Some(c.from.name());
                j.to = Some(c.to.name());
                j.cause = Some(c.cause);
                j.source = Some(c.source);
                j.ms_in_prev = Some(c.ms_in_prev.map(round3));
                j.last_seen_us = c.last_seen_ns.map(|n| t.t_us(n));
                j.time_wait = c.time_wait;
            }
            EventKind::Retransmit { state, err } => {
                j.event = "retransmit";
                j.state = Some(state.map(|s| s.name()));
                j.err = *err;
            }
            EventKind::Reset {
                sent,
                state,
                reason,
            } => {
                j.event = "reset";
                j.direction = Some(if *sent { "sent" } else { "received" });
                j.state = Some(state.map(|s| s.name()));
                j.reason = reason.as_deref();
            }
        }
        j
    }
}

/// The text header line.
pub fn text_header(out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "{:<15} {:>7} {:<15} {:<16} {:<45} {:<28} {:>10}",
        "TIME(UTC)", "PID", "COMM", "SKADDR", "LOCAL -> REMOTE", "OLDSTATE -> NEWSTATE", "MS"
    )
}

/// One event as a text line. A change sock_diag found is marked `*`; its MS is measured up
/// to when it was noticed.
pub fn write_text(out: &mut impl Write, t: &Tracer, e: &Event) -> io::Result<()> {
    let wall = t
        .wall(e.mono_ns)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = wall.as_secs() % 86_400;
    let clock = format!(
        "{:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        wall.subsec_micros()
    );
    let conn = format!("{} -> {}", e.local, e.remote);
    let pid = e.pid.map_or("-".to_string(), |p| p.to_string());
    let comm = e.comm.as_deref().unwrap_or("(sock_diag)");
    let sk = e.skaddr.map_or("-".to_string(), skaddr_hex);
    let (what, ms) = match &e.kind {
        EventKind::State(c) => {
            let mark = if c.source == Source::SockDiag {
                " *"
            } else {
                ""
            };
            let ms = c.ms_in_prev.map_or("-".to_string(), |m| format!("{m:.3}"));
            (
                format!("{:<12} -> {}{mark}", c.from.name(), c.to.name()),
                ms,
            )
        }
        EventKind::Retransmit { state, err } => {
            let mut w = format!("retransmit ({})", state.map_or("?", |s| s.name()));
            if let Some(e) = err.filter(|e| *e != 0) {
                w.push_str(&format!(" err {e}"));
            }
            (w, String::new())
        }
        EventKind::Reset {
            sent,
            state,
            reason,
        } => {
            let mut w = format!(
                "RST {} ({}",
                if *sent { "sent" } else { "received" },
                state.map_or("?", |s| s.name())
            );
            if let Some(r) = reason {
                w.push_str(&format!(", {r}"));
            }
            w.push(')');
            (w, String::new())
        }
    };
    writeln!(
        out,
        "{clock:<15} {pid:>7} {comm:<15} {sk:<16} {conn:<45} {what:<28} {ms:>10}"
    )
}
