//! Turns a run's events, as they happen, into the display rows shared by the ASCII and SVG
//! renderers, in bounded memory: middle iterations of long `repeat`s are hidden, runs of
//! alike rows of one instant collapse, spoofed-source traffic becomes one band per burst,
//! and past [`MAX_ROWS`] rows the rest of the run is only counted. The state path of each
//! connection is kept while it lives and folded into a group when it closes.

use std::collections::HashMap;
use std::net::IpAddr;

use tcpfsm_states::State;

use super::band::Band;
use super::rows::{app_text, collapse_runs, labels, NoteStyle, Row, RowKind};
use super::Options;
use crate::sink::{Header, Sink};
use crate::trace::{NoteKind, Trace, TraceEvent};

/// Rows drawn at most; the rest of a longer run is summarized in one line.
pub const MAX_ROWS: usize = 2_000;
/// Rows of one instant collapsed together at most (a burst longer than this collapses in
/// chunks).
const CHUNK: usize = 1_024;
/// Connections whose path is followed at once; distinct paths shown.
const MAX_LIVE: usize = 200_000;
const MAX_GROUPS: usize = 64;

/// The lanes of a diagram: one per host, plus one for addresses outside every host.
#[derive(Debug, Clone)]
pub struct Lanes {
    pub names: Vec<String>,
    pub addrs: Vec<String>,
    /// Index of the "(outside)" lane, if any row needs it.
    pub outside: Option<usize>,
}

/// Connections grouped by host and identical state path, in order of first appearance.
#[derive(Debug, Clone)]
pub struct PathGroup {
    pub host: String,
    pub example: String,
    pub count: usize,
    pub path: String,
}

/// How a host's connections are told apart in state rows.
#[derive(Debug, Clone, Copy, Default)]
struct Tags {
    first: Option<u64>,
    several: bool,
    first_local: Option<u16>,
    locals_differ: bool,
}

/// Everything a renderer draws.
pub struct Layout {
    pub title: String,
    pub seed: u64,
    pub lanes: Lanes,
    pub rows: Vec<Row>,
    pub groups: Vec<PathGroup>,
    /// More distinct paths than shown.
    pub groups_hidden: usize,
    /// `(host, full text)` of every diagnosis, for the section after the diagram.
    pub diagnoses: Vec<(String, String)>,
    /// What was not drawn past [`MAX_ROWS`].
    pub tail: Option<String>,
    tags: HashMap<usize, Tags>,
}

impl Layout {
    /// `:50003` for a state row of a host with several connections: the local port, or the
    /// remote one when all of them share the local port (a server).
    pub fn tag(&self, lane: usize, ports: (u16, u16), listener: bool) -> String {
        match self.tags.get(&lane) {
            Some(t) if t.several && !listener => {
                if t.locals_differ {
                    format!(":{}", ports.0)
                } else {
                    format!(":{}", ports.1)
                }
            }
            _ => String::new(),
        }
    }
}

/// Which repeat iterations are hidden: `(block, hidden counts by kind, first, last, t)`.
type Hiding = (u32, [usize; 3], u32, u32, u64);

/// A connection followed: host, endpoint id, whether a listener.
type LiveKey = (usize, u64, bool);
/// Its order of appearance, 4-tuple and states so far.
type Live = (u64, String, Vec<State>);

/// Builds a [`Layout`] from events as they come (a [`Sink`]).
pub struct LayoutBuilder {
    opts: Options,
    title: String,
    seed: u64,
    names: Vec<String>,
    addrs: Vec<String>,
    host_ips: Vec<Vec<IpAddr>>,
    outside: usize,
    outside_used: bool,
    rows: Vec<Row>,
    instant: Vec<Row>,
    band: Option<Band>,
    hiding: Option<Hiding>,
    /// Events not drawn past [`MAX_ROWS`]: segments, state changes, other rows; last time.
    tail: Option<([u64; 3], u64)>,
    live: HashMap<LiveKey, Live>,
    order: u64,
    groups: Vec<(u64, PathGroup)>,
    groups_hidden: usize,
    tags: HashMap<usize, Tags>,
    diagnoses: Vec<(String, String)>,
}

impl LayoutBuilder {
    pub fn new(opts: &Options) -> LayoutBuilder {
        LayoutBuilder {
            opts: opts.clone(),
            title: String::new(),
            seed: 0,
            names: Vec::new(),
            addrs: Vec::new(),
            host_ips: Vec::new(),
            outside: 0,
            outside_used: false,
            rows: Vec::new(),
            instant: Vec::new(),
            band: None,
            hiding: None,
            tail: None,
            live: HashMap::new(),
            order: 0,
            groups: Vec::new(),
            groups_hidden: 0,
            tags: HashMap::new(),
            diagnoses: Vec::new(),
        }
    }

    /// Lays out a recorded trace.
    pub fn from_trace(trace: &Trace, opts: &Options) -> Layout {
        let mut b = LayoutBuilder::new(opts);
        b.start(&Header {
            title: trace.title.clone(),
            seed: trace.seed,
            hosts: trace.hosts.clone(),
        });
        for ev in &trace.events {
            b.add(ev);
        }
        b.finish_layout()
    }

    fn start(&mut self, h: &Header) {
        self.title = h.title.clone();
        self.seed = h.seed;
        self.names = h.hosts.iter().map(|x| x.name.clone()).collect();
        self.addrs = h
            .hosts
            .iter()
            .map(|x| {
                x.addrs
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        self.host_ips = h.hosts.iter().map(|x| x.addrs.clone()).collect();
        self.outside = self.names.len();
    }

    fn owned(&self, ip: IpAddr) -> bool {
        self.host_ips.iter().any(|a| a.contains(&ip))
    }

    fn full(&self) -> bool {
        self.opts.collapse_after >= usize::MAX / 4
    }

    /// Takes one event.
    pub fn add(&mut self, ev: &TraceEvent) {
        if let TraceEvent::State(s) = ev {
            self.follow_path(s);
        }
        if let TraceEvent::Note(nr) = ev {
            match nr.kind {
                NoteKind::Iteration { block, n: k, of } => {
                    self.iteration(block, k, of, nr.t_us, &nr.text);
                    return;
                }
                NoteKind::RepeatEnd { block } => {
                    if let Some(h) = self.hiding.filter(|h| h.0 == block) {
                        self.end_hiding(h);
                        self.hiding = None;
                    }
                    return;
                }
                NoteKind::Diagnosis { host, .. } => {
                    let name = self.names.get(host).cloned().unwrap_or_default();
                    self.diagnoses.push((name, nr.text.clone()));
                }
                _ => {}
            }
        }
        if let Some(h) = self.hiding.as_mut() {
            match ev {
                TraceEvent::Segment(_) => h.1[0] += 1,
                TraceEvent::State(_) => h.1[1] += 1,
                TraceEvent::App(_) => h.1[2] += 1,
                TraceEvent::Note(_) => {}
            }
            return;
        }
        let Some((row, spoofed)) = self.row_of(ev) else {
            return;
        };
        if spoofed && !self.full() {
            match self.band.as_mut() {
                Some(b) => b.add(row),
                None => self.band = Some(Band::new(row)),
            }
            return;
        }
        self.close_band();
        self.queue(row);
    }

    /// The row of an event, and whether it belongs to spoofed-source traffic.
    fn row_of(&mut self, ev: &TraceEvent) -> Option<(Row, bool)> {
        let t_us = ev.t_us();
        let (kind, spoofed) = match ev {
            TraceEvent::Segment(s) => {
                let spoofed = s.src_host.is_none() || s.dst_host.is_none();
                self.outside_used |= spoofed;
                let (label, short) = labels(s, self.opts.relative_seq);
                let kind = RowKind::Segment {
                    from: s.src_host.unwrap_or(self.outside),
                    to: s.dst_host.unwrap_or(self.outside),
                    label,
                    short,
                    fate: s.fate,
                    why: s.why,
                    arrive_us: s.arrive_us,
                    analysis: s.analysis,
                };
                (kind, spoofed)
            }
            TraceEvent::State(s) => {
                let listener = s.remote.ip().is_unspecified();
                let spoofed = !listener && !self.owned(s.remote.ip());
                let local_port = s
                    .conn
                    .split('-')
                    .next()
                    .and_then(|l| l.rsplit(':').next())
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                let kind = RowKind::State {
                    lane: s.host,
                    from: s.from,
                    to: s.to,
                    cause: s.cause.clone(),
                    ports: (local_port, s.remote.port()),
                };
                (kind, spoofed)
            }
            TraceEvent::App(a) => (
                RowKind::App {
                    lane: a.host,
                    text: app_text(a),
                    ok: a.ok,
                },
                false,
            ),
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
                            self.names.get(*host).map_or("?", String::as_str),
                            diagnosis_headline(&nr.text)
                        ),
                    ),
                    NoteKind::Warning => (NoteStyle::Warning, nr.text.clone()),
                    NoteKind::Iteration { .. } | NoteKind::RepeatEnd { .. } => return None,
                };
                (RowKind::Note { style, text }, false)
            }
        };
        Some((Row { t_us, kind }, spoofed))
    }

    fn iteration(&mut self, block: u32, k: u32, of: u32, t_us: u64, text: &str) {
        let hide = of as usize > self.opts.collapse_after + 1 && k > 0 && k + 1 < of;
        if let Some(h) = self.hiding {
            if h.0 != block {
                return; // a nested repeat inside a hidden iteration
            }
            if hide {
                self.hiding = Some((h.0, h.1, h.2, k, h.4));
                return;
            }
            self.end_hiding(h);
            self.hiding = None;
        }
        if hide {
            self.close_band();
            self.hiding = Some((block, [0; 3], k, k, t_us));
            return;
        }
        self.close_band();
        self.queue(Row {
            t_us,
            kind: RowKind::Note {
                style: NoteStyle::Repeat,
                text: text.to_string(),
            },
        });
    }

    fn end_hiding(&mut self, h: Hiding) {
        let (_, c, first, last, t) = h;
        self.queue(Row {
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
    }

    fn close_band(&mut self) {
        if let Some(b) = self.band.take() {
            for r in b.into_rows(&self.lane_names()) {
                self.queue(r);
            }
        }
    }

    fn lane_names(&self) -> Vec<String> {
        let mut n = self.names.clone();
        n.push("spoofed".into());
        n
    }

    fn queue(&mut self, row: Row) {
        if self
            .instant
            .first()
            .is_some_and(|f| f.t_us != row.t_us || self.instant.len() >= CHUNK)
        {
            self.flush_instant();
        }
        self.instant.push(row);
    }

    fn flush_instant(&mut self) {
        let rows = std::mem::take(&mut self.instant);
        let outside = self.outside_used.then_some(self.outside);
        let names = self.lane_names();
        for r in collapse_runs(rows, &names, outside, self.opts.collapse_after) {
            self.emit(r);
        }
    }

    fn emit(&mut self, r: Row) {
        if self.rows.len() < MAX_ROWS && self.tail.is_none() {
            self.rows.push(r);
            return;
        }
        let (counts, last) = self.tail.get_or_insert(([0; 3], r.t_us));
        *last = (*last).max(r.t_us);
        match r.kind {
            RowKind::Segment { .. } => counts[0] += 1,
            RowKind::State { .. } => counts[1] += 1,
            _ => counts[2] += 1,
        }
    }

    fn follow_path(&mut self, s: &crate::trace::StateRec) {
        let listener = s.remote.ip().is_unspecified();
        if !listener {
            let t = self.tags.entry(s.host).or_default();
            match t.first {
                None => t.first = Some(s.id),
                Some(f) if f != s.id => t.several = true,
                _ => {}
            }
            let local = s
                .conn
                .split('-')
                .next()
                .and_then(|l| l.rsplit(':').next())
                .and_then(|p| p.parse::<u16>().ok());
            match t.first_local {
                None => t.first_local = local,
                Some(l) if Some(l) != local => t.locals_differ = true,
                _ => {}
            }
        }
        let key = (s.host, s.id, listener);
        let room = self.live.len() < MAX_LIVE;
        match self.live.get_mut(&key) {
            Some(p) => p.2.push(s.to),
            None if room => {
                self.order += 1;
                self.live
                    .insert(key, (self.order, s.conn.clone(), vec![s.from, s.to]));
            }
            None => self.groups_hidden += 1,
        }
        if s.to == State::Closed {
            if let Some((order, conn, states)) = self.live.remove(&key) {
                self.group(s.host, order, conn, states);
            }
        }
    }

    fn group(&mut self, host: usize, order: u64, conn: String, states: Vec<State>) {
        let host = self.names.get(host).cloned().unwrap_or_default();
        let path = states
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(" → ");
        let room = self.groups.len() < MAX_GROUPS;
        match self
            .groups
            .iter_mut()
            .find(|(_, g)| g.host == host && g.path == path)
        {
            Some((o, g)) => {
                g.count += 1;
                if order < *o {
                    *o = order;
                    g.example = listener_label(&conn);
                }
            }
            None if room => self.groups.push((
                order,
                PathGroup {
                    host,
                    example: listener_label(&conn),
                    count: 1,
                    path,
                },
            )),
            None => self.groups_hidden += 1,
        }
    }

    /// Everything laid out.
    pub fn finish_layout(mut self) -> Layout {
        if let Some(h) = self.hiding.take() {
            self.end_hiding(h);
        }
        self.close_band();
        self.flush_instant();
        let mut live: Vec<_> = std::mem::take(&mut self.live).into_iter().collect();
        live.sort_by_key(|(_, (order, _, _))| *order);
        for ((host, _, _), (order, conn, states)) in live {
            self.group(host, order, conn, states);
        }
        self.groups.sort_by_key(|(o, _)| *o);
        let mut names = self.names.clone();
        let mut addrs = self.addrs.clone();
        let outside = self.outside_used.then(|| {
            names.push("(outside)".into());
            addrs.push("spoofed".into());
            self.outside
        });
        let tail = self.tail.map(|(c, last)| {
            format!(
                "… the rest of the run, to {}, is not drawn: {} segments, {} state changes, \
                 {} other events (--format json has every one)",
                time_label(last),
                c[0],
                c[1],
                c[2]
            )
        });
        Layout {
            title: self.title,
            seed: self.seed,
            lanes: Lanes {
                names,
                addrs,
                outside,
            },
            rows: self.rows,
            groups: self.groups.into_iter().map(|(_, g)| g).collect(),
            groups_hidden: self.groups_hidden,
            diagnoses: self.diagnoses,
            tail,
            tags: self.tags,
        }
    }
}

/// A sink that lays out the run and hands the finished [`Layout`] to `draw` at the end.
pub struct DiagramSink<F: FnMut(&Layout) -> std::io::Result<()>> {
    builder: Option<LayoutBuilder>,
    draw: F,
}

impl<F: FnMut(&Layout) -> std::io::Result<()>> DiagramSink<F> {
    pub fn new(opts: &Options, draw: F) -> DiagramSink<F> {
        DiagramSink {
            builder: Some(LayoutBuilder::new(opts)),
            draw,
        }
    }
}

impl<F: FnMut(&Layout) -> std::io::Result<()>> Sink for DiagramSink<F> {
    fn begin(&mut self, h: &Header) -> std::io::Result<()> {
        if let Some(b) = self.builder.as_mut() {
            b.start(h);
        }
        Ok(())
    }

    fn event(&mut self, ev: &TraceEvent) -> std::io::Result<()> {
        if let Some(b) = self.builder.as_mut() {
            b.add(ev);
        }
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        match self.builder.take() {
            Some(b) => (self.draw)(&b.finish_layout()),
            None => Ok(()),
        }
    }
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
