//! What a simulation records: every segment with its fate, every application call with its
//! result, every state change with its cause, plus notes (repeat markers, diagnoses,
//! expectation results). The renderers draw from this and nothing else.

use serde::Serialize;
use std::fmt;
use std::net::SocketAddr;
use tcpfsm_states::State;

use crate::analysis::Analysis;

/// What the network did with one transmitted segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fate {
    /// Arrived once, intact.
    Delivered,
    /// Never arrived (link loss, a scripted drop rule, or no host owns the destination).
    Dropped,
    /// Arrived twice.
    Duplicated,
    /// Arrived with one bit flipped; the receiver's checksum check must discard it.
    Corrupted,
}

impl Fate {
    pub const fn name(self) -> &'static str {
        match self {
            Fate::Delivered => "delivered",
            Fate::Dropped => "dropped",
            Fate::Duplicated => "duplicated",
            Fate::Corrupted => "corrupted",
        }
    }
}

impl fmt::Display for Fate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The TCP options of a segment (RFC 9293 §3.2, RFC 7323, RFC 2018).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegOptions {
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    /// TSval, TSecr.
    pub timestamps: Option<(u32, u32)>,
    /// SACK blocks, left and right edges.
    pub sack: Vec<(u32, u32)>,
}

impl SegOptions {
    pub fn is_empty(&self) -> bool {
        *self == SegOptions::default()
    }

    /// `<mss 1460,sackOK,TS,wscale 7>` (tcpdump's order and spelling, without the values of
    /// the timestamps), or `<sack 1449-2897>` with SACK edges relative to `base`; empty when
    /// there are none.
    pub fn label(&self, base: u32) -> String {
        let mut parts = Vec::new();
        if let Some(m) = self.mss {
            parts.push(format!("mss {m}"));
        }
        if self.sack_permitted {
            parts.push("sackOK".to_string());
        }
        if self.timestamps.is_some() {
            parts.push("TS".to_string());
        }
        if let Some(w) = self.wscale {
            parts.push(format!("wscale {w}"));
        }
        if !self.sack.is_empty() {
            let edges: Vec<String> = self
                .sack
                .iter()
                .map(|(l, r)| format!("{}-{}", l.wrapping_sub(base), r.wrapping_sub(base)))
                .collect();
            parts.push(format!("sack {}", edges.join(" ")));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("<{}>", parts.join(","))
        }
    }
}

/// One TCP segment put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRec {
    /// Its number in capture order, from 1: the frame number Wireshark shows for it in the
    /// `--pcap` capture.
    pub frame: u64,
    /// When it was sent.
    pub t_us: u64,
    /// When its (first) copy arrived; `None` when dropped.
    pub arrive_us: Option<u64>,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// Index of the sending host; `None` for injected (spoofed) segments.
    pub src_host: Option<usize>,
    /// Index of the host owning `dst`; `None` when no host does (spoofed sources).
    pub dst_host: Option<usize>,
    /// Flag names joined by commas, `SYN,ACK`.
    pub flags: String,
    pub seq: u32,
    pub ack: u32,
    /// Payload bytes.
    pub len: usize,
    pub window: u16,
    pub options: SegOptions,
    /// `seq` and `ack` relative to each direction's initial sequence number, as Wireshark
    /// shows them.
    pub rel_seq: u32,
    pub rel_ack: u32,
    /// What the segment is (retransmission, duplicate ACK, …): see [`crate::analysis`].
    pub analysis: Analysis,
    /// What the sending endpoint says it sent, when not a plain segment: `retransmission`,
    /// `window_probe`, `window_update`, `keep_alive`, `challenge_ack`, `syn_cookie`,
    /// `reset`. It can differ from Wireshark's reading: Linux-style zero-window probes (an
    /// old byte's sequence number, no data) read as keep-alives in a capture.
    pub sent_as: Option<&'static str>,
    pub fate: Fate,
    /// Why it was dropped: `loss`, `rule`, `no route`.
    pub why: Option<&'static str>,
    /// Built by the script (`inject`), not by an endpoint.
    pub injected: bool,
}

impl SegmentRec {
    /// Whether the flag list contains `name` (`"FIN"`).
    pub fn has_flag(&self, name: &str) -> bool {
        self.flags.split(',').any(|f| f == name)
    }

    /// Flags other than PSH, ECE and CWR, which do not change the segment's kind.
    pub fn kind(&self) -> String {
        self.flags
            .split(',')
            .filter(|f| !f.is_empty() && !matches!(*f, "PSH" | "ECE" | "CWR"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One application call on a socket of the script, with what it returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRec {
    pub t_us: u64,
    pub host: usize,
    /// `listen`, `accept`, `connect`, `send`, `recv`, `shutdown`, `close`, `abort`, or `closed`
    /// for the endpoint telling the application its connection is gone.
    pub call: String,
    /// The script's name of the socket (`c`, `conn3`).
    pub sock: String,
    /// The connection's 4-tuple, once known.
    pub conn: Option<String>,
    pub ok: bool,
    /// `established`, `sent`, `eof`, `data`, `connection refused`, `address not available`, …
    pub result: String,
    pub bytes: Option<u64>,
    /// A short printable excerpt of the data sent or read.
    pub text: Option<String>,
}

/// One connection (or listener) state change reported by an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRec {
    pub t_us: u64,
    pub host: usize,
    /// The endpoint's connection id; tells apart two connections of the same 4-tuple.
    pub id: u64,
    pub conn: String,
    /// The connection's remote address (unspecified for a listener).
    pub remote: SocketAddr,
    pub from: State,
    pub to: State,
    pub cause: String,
}

/// A free-form remark in the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoteKind {
    /// A line of the script's own commentary (`say "…"`).
    Say,
    /// Start of iteration `n` (0-based) of `repeat` block `block`, out of `of`.
    Iteration { block: u32, n: u32, of: u32 },
    /// End of a `repeat` block.
    RepeatEnd { block: u32 },
    /// An `expect` or `wait until` that held (`ok`) or did not.
    Check { ok: bool },
    /// A diagnosis verdict about a host.
    Diagnosis {
        host: usize,
        rule: String,
        severity: String,
    },
    /// The simulation itself hit a limit (stalled endpoint, step cap).
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteRec {
    pub t_us: u64,
    pub kind: NoteKind,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceEvent {
    Segment(SegmentRec),
    App(AppRec),
    State(StateRec),
    Note(NoteRec),
}

impl TraceEvent {
    pub fn t_us(&self) -> u64 {
        match self {
            TraceEvent::Segment(s) => s.t_us,
            TraceEvent::App(a) => a.t_us,
            TraceEvent::State(s) => s.t_us,
            TraceEvent::Note(n) => n.t_us,
        }
    }
}

/// A host as the trace names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    pub name: String,
    pub addrs: Vec<std::net::IpAddr>,
}

/// The whole record of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    pub hosts: Vec<HostInfo>,
    pub events: Vec<TraceEvent>,
    /// Scenario name and seed, for headers.
    pub title: String,
    pub seed: u64,
}

/// One connection's life as seen in the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnPath {
    pub host: usize,
    pub id: u64,
    pub conn: String,
    /// The states in order, starting with the first `from` (normally CLOSED).
    pub states: Vec<State>,
}

impl ConnPath {
    /// `CLOSED → SYN_SENT → ESTABLISHED`.
    pub fn display(&self) -> String {
        self.states
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(" → ")
    }
}

impl Trace {
    pub fn host_name(&self, i: usize) -> &str {
        self.hosts.get(i).map(|h| h.name.as_str()).unwrap_or("?")
    }

    pub fn host_index(&self, name: &str) -> Option<usize> {
        self.hosts.iter().position(|h| h.name == name)
    }

    pub fn segments(&self) -> impl Iterator<Item = &SegmentRec> {
        self.events.iter().filter_map(|e| match e {
            TraceEvent::Segment(s) => Some(s),
            _ => None,
        })
    }

    pub fn states(&self) -> impl Iterator<Item = &StateRec> {
        self.events.iter().filter_map(|e| match e {
            TraceEvent::State(s) => Some(s),
            _ => None,
        })
    }

    pub fn apps(&self) -> impl Iterator<Item = &AppRec> {
        self.events.iter().filter_map(|e| match e {
            TraceEvent::App(a) => Some(a),
            _ => None,
        })
    }

    pub fn notes(&self) -> impl Iterator<Item = &NoteRec> {
        self.events.iter().filter_map(|e| match e {
            TraceEvent::Note(n) => Some(n),
            _ => None,
        })
    }

    /// Every connection and listener, in order of first appearance, with the path of states
    /// it took. Connections are told apart by host and endpoint id, so a reused 4-tuple is a
    /// new row.
    pub fn conn_paths(&self) -> Vec<ConnPath> {
        let mut paths: Vec<ConnPath> = Vec::new();
        for s in self.states() {
            match paths
                .iter_mut()
                .find(|p| p.host == s.host && p.id == s.id && p.conn == s.conn)
            {
                Some(p) => p.states.push(s.to),
                None => paths.push(ConnPath {
                    host: s.host,
                    id: s.id,
                    conn: s.conn.clone(),
                    states: vec![s.from, s.to],
                }),
            }
        }
        paths
    }

    /// The state paths of one host's connections, listeners excluded.
    pub fn paths_of(&self, host: &str) -> Vec<Vec<State>> {
        let Some(h) = self.host_index(host) else {
            return Vec::new();
        };
        self.conn_paths()
            .into_iter()
            .filter(|p| p.host == h && p.states.get(1) != Some(&State::Listen))
            .map(|p| p.states)
            .collect()
    }

    /// `(from, to)` of every state change in the trace.
    pub fn transitions(&self) -> impl Iterator<Item = (State, State)> + '_ {
        self.states().map(|s| (s.from, s.to))
    }
}
