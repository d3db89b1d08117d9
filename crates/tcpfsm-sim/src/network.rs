//! The simulated network: hosts running our TCP [`Endpoint`], impaired links between them,
//! and a virtual clock that jumps straight to the next thing that can happen.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};

use tcpfsm_core::{
    CloseReason, Config, ConnHandle, Endpoint, Event, Instant, ListenerHandle, SocketHandle,
};
use tcpfsm_states::State;

use crate::analysis::{Analyser, Analysis, SegView};
use crate::decode::{self, Seg};
use crate::inject::Injector;
use crate::link::{default_params, Link, LinkParams};
use crate::script::DropRule;
use crate::sink::{Emitter, Header, Recorder, Sink};
use crate::trace::{Fate, HostInfo, NoteKind, NoteRec, SegmentRec, StateRec, Trace, TraceEvent};

/// One simulated machine.
pub struct Host {
    pub name: String,
    pub addrs: Vec<IpAddr>,
    pub ep: Endpoint,
}

/// A datagram on its way.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at_us: u64,
    /// Send order, to break ties deterministically.
    order: u64,
    /// Host index (u32 and a boxed slice: a million SYNs of a flood may be in flight at
    /// once, at 40 bytes each plus the datagram).
    dst: u32,
    bytes: Box<[u8]>,
}

/// Same-instant steps after which the network declares an endpoint stalled: a timer that
/// keeps firing without the clock moving would otherwise spin forever.
const STALL_STEPS: u32 = 100_000;

/// Something the endpoint told the application, kept for the script runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppNotice {
    Closed {
        host: usize,
        conn: ConnHandle,
        reason: CloseReason,
    },
    Acceptable {
        host: usize,
        listener: ListenerHandle,
    },
}

pub struct Network<'s> {
    now: Instant,
    seed: u64,
    hosts: Vec<Host>,
    links: BTreeMap<(usize, usize), Link>,
    default_link: LinkParams,
    /// Spoofed segments come from outside every host, over their own link and stream.
    outside: BTreeMap<usize, Link>,
    inflight: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    drop_rules: Vec<DropRule>,
    /// Spoofed SYNs still to come.
    injectors: Vec<Injector>,
    out: Emitter<'s>,
    infos: Vec<HostInfo>,
    /// Segments put on the wire so far: the last frame number.
    frames: u64,
    analyser: Analyser,
    buf: Vec<u8>,
    /// Last known state of each connection, from the endpoints' events.
    conn_states: HashMap<(usize, ConnHandle), State>,
    /// 4-tuple of each connection, from the endpoints' events.
    tuples: HashMap<(usize, ConnHandle), String>,
    notices: Vec<AppNotice>,
    same_instant_steps: u32,
    stalled: Option<String>,
}

impl Network<'static> {
    /// A network whose events are recorded ([`Network::trace`]).
    pub fn new(seed: u64) -> Network<'static> {
        Network::with_sink(seed, Box::new(Recorder::default()))
    }
}

impl<'s> Network<'s> {
    /// A network whose events go to `sink` as they happen.
    pub fn with_sink(seed: u64, sink: Box<dyn Sink + 's>) -> Network<'s> {
        Network {
            now: Instant::ZERO,
            seed,
            hosts: Vec::new(),
            links: BTreeMap::new(),
            default_link: default_params(),
            outside: BTreeMap::new(),
            inflight: BinaryHeap::new(),
            order: 0,
            drop_rules: Vec::new(),
            injectors: Vec::new(),
            out: Emitter::new(sink),
            infos: Vec::new(),
            frames: 0,
            analyser: Analyser::new(),
            buf: Vec::with_capacity(2048),
            conn_states: HashMap::new(),
            tuples: HashMap::new(),
            notices: Vec::new(),
            same_instant_steps: 0,
            stalled: None,
        }
    }

    /// Adds a host running a fresh endpoint. Its endpoint seed derives from the run's seed and
    /// its position, so ISNs and ephemeral ports are reproducible.
    pub fn add_host(&mut self, name: &str, addrs: Vec<IpAddr>, config: Config) -> usize {
        let idx = self.hosts.len();
        let ep_seed = self
            .seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(idx as u64 + 1);
        self.infos.push(HostInfo {
            name: name.to_string(),
            addrs: addrs.clone(),
        });
        self.hosts.push(Host {
            name: name.to_string(),
            addrs,
            ep: Endpoint::new(config, ep_seed),
        });
        idx
    }

    /// Sets the parameters of direction `from → to`, keeping its random stream and the
    /// segments on it if it exists. Invalid parameters are refused with a warning in the trace.
    pub fn set_link(&mut self, from: usize, to: usize, params: LinkParams) {
        let (seed, a, b) = (
            self.seed,
            self.hosts[from].name.clone(),
            self.hosts[to].name.clone(),
        );
        if let Err(e) = params.validate() {
            self.note(
                NoteKind::Warning,
                format!("link {a} -> {b}: {e}; parameters unchanged"),
            );
            return;
        }
        self.links
            .entry((from, to))
            .or_insert_with(|| Link::new(params, seed, &a, &b))
            .set_params(params);
    }

    /// Parameters for directions never set explicitly (invalid ones are refused with a
    /// warning in the trace).
    pub fn set_default_link(&mut self, params: LinkParams) {
        match params.validate() {
            Ok(()) => self.default_link = params,
            Err(e) => self.note(
                NoteKind::Warning,
                format!("default link: {e}; parameters unchanged"),
            ),
        }
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    pub fn host_by_name(&self, name: &str) -> Option<usize> {
        self.hosts.iter().position(|h| h.name == name)
    }

    /// The host owning an address.
    pub fn owner(&self, ip: IpAddr) -> Option<usize> {
        self.hosts.iter().position(|h| h.addrs.contains(&ip))
    }

    pub fn endpoint(&self, host: usize) -> &Endpoint {
        &self.hosts[host].ep
    }

    /// Runs `f` on a host's endpoint with the current time, then collects whatever it sent and
    /// reported.
    pub fn with_endpoint<R>(
        &mut self,
        host: usize,
        f: impl FnOnce(&mut Endpoint, Instant) -> R,
    ) -> R {
        let now = self.now;
        let r = f(&mut self.hosts[host].ep, now);
        self.flush_host(host);
        r
    }

    pub fn add_drop_rule(&mut self, rule: DropRule) {
        self.drop_rules.push(rule);
    }

    /// Drop rules not yet used up.
    pub fn pending_drop_rules(&self) -> usize {
        self.drop_rules.len()
    }

    /// Puts a raw datagram on the wire as if it came from outside every host (spoofing).
    pub fn inject(&mut self, datagram: Vec<u8>) {
        let Some(seg) = decode::decode(&datagram) else {
            self.note(
                NoteKind::Warning,
                "injected datagram is not a valid TCP segment; not sent".into(),
            );
            return;
        };
        let dst = self.owner(seg.dst.ip());
        let Some(dst) = dst else {
            let rec = Rec {
                src_host: None,
                dst_host: None,
                fate: Fate::Dropped,
                why: Some("no route"),
                arrive_us: None,
                injected: true,
                marks: 0,
                kind: None,
            };
            self.record_segment(&seg, &datagram, rec);
            return;
        };
        let (seed, name) = (self.seed, self.hosts[dst].name.clone());
        let params = self.default_link;
        let link = self
            .outside
            .entry(dst)
            .or_insert_with(|| Link::new(params, seed, "(outside)", &name));
        let now_us = self.now.as_micros();
        self.order += 1;
        let (fate, why, arrive) = link.send(now_us, self.order, dst, datagram.clone());
        let rec = Rec {
            src_host: None,
            dst_host: Some(dst),
            fate,
            why,
            arrive_us: arrive,
            injected: true,
            marks: 0,
            kind: None,
        };
        self.record_segment(&seg, &datagram, rec);
    }

    /// Starts sending an `inject` statement's SYNs: those due now at once, the rest as the
    /// clock reaches them.
    pub fn add_injector(&mut self, inj: Injector) {
        self.injectors.push(inj);
        self.run_injectors();
    }

    fn run_injectors(&mut self) {
        let now_us = self.now.as_micros();
        let mut i = 0;
        while i < self.injectors.len() {
            while let Some(d) = self.injectors[i].pop(now_us) {
                self.inject(d);
            }
            if self.injectors[i].next_at().is_none() {
                self.injectors.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Segments in flight (SYNs still to be injected count too).
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
            + self.injectors.len()
            + self.all_links().map(Link::in_flight).sum::<usize>()
    }

    fn all_links(&self) -> impl Iterator<Item = &Link> {
        self.links.values().chain(self.outside.values())
    }

    /// The last state an endpoint reported for a connection.
    pub fn conn_state(&self, host: usize, conn: ConnHandle) -> Option<State> {
        self.conn_states.get(&(host, conn)).copied()
    }

    /// The 4-tuple an endpoint reported for a connection.
    pub fn conn_tuple(&self, host: usize, conn: ConnHandle) -> Option<&str> {
        self.tuples.get(&(host, conn)).map(String::as_str)
    }

    /// Notices (closed connections, acceptable connections) since the last call.
    pub fn take_notices(&mut self) -> Vec<AppNotice> {
        std::mem::take(&mut self.notices)
    }

    /// Set when an endpoint keeps asking for a timeout without the clock moving.
    pub fn stalled(&self) -> Option<&str> {
        self.stalled.as_deref()
    }

    /// Tells the sink the run's name, seed and hosts; call once, after adding the hosts and
    /// before anything happens.
    pub fn begin(&mut self, title: &str) {
        let h = Header {
            title: title.to_string(),
            seed: self.seed,
            hosts: self.infos.clone(),
        };
        self.out.begin(&h);
    }

    /// Lets held-back events out and tells the sink the run is over.
    pub fn finish(&mut self) {
        self.out.finish();
    }

    /// The events so far, when the sink records them (as [`Network::new`]'s does).
    pub fn trace(&self) -> Option<&Trace> {
        self.out.recorded()
    }

    /// The first error writing the events; the run should stop there.
    pub fn output_error(&self) -> Option<&std::io::Error> {
        self.out.error()
    }

    pub fn take_output_error(&mut self) -> Option<std::io::Error> {
        self.out.take_error()
    }

    /// Events emitted so far.
    pub fn events(&self) -> u64 {
        self.out.events()
    }

    /// Segments put on the wire so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    pub fn note(&mut self, kind: NoteKind, text: String) {
        self.out.push(TraceEvent::Note(NoteRec {
            t_us: self.now.as_micros(),
            kind,
            text,
        }));
    }

    /// An event the driver (the script runner) records.
    pub fn push(&mut self, ev: TraceEvent) {
        self.out.push(ev);
    }

    /// An application call is about to be made: its record (given to
    /// [`Network::push_call`]) goes before what the call causes at this instant.
    pub fn mark_call(&mut self) {
        self.out.mark(self.now.as_micros());
    }

    /// The marked call did not return at once.
    pub fn unmark_call(&mut self) {
        self.out.unmark();
    }

    /// The record of the marked (or any) call.
    pub fn push_call(&mut self, ev: TraceEvent) {
        self.out.push_call(ev);
    }

    /// The next instant something is due: a delivery or an endpoint timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        let queued = self.inflight.peek().map(|Reverse(f)| f.at_us);
        let on_links = self.all_links().filter_map(Link::next_due_us).min();
        let mut next = match (queued, on_links) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(Instant::from_micros);
        for h in &self.hosts {
            if let Some(t) = h.ep.poll_timeout() {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        for i in &self.injectors {
            if let Some(t) = i.next_at().map(Instant::from_micros) {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        next
    }

    /// Processes everything due at the next deadline if it is not after `limit`; otherwise moves
    /// the clock to `limit`. Returns whether anything was processed.
    pub fn step(&mut self, limit: Instant) -> bool {
        if self.stalled.is_some() {
            self.now = self.now.max(limit);
            return false;
        }
        let next = match self.next_deadline() {
            Some(t) if t <= limit => t.max(self.now),
            _ => {
                self.now = self.now.max(limit);
                return false;
            }
        };
        if next == self.now {
            self.same_instant_steps += 1;
            if self.same_instant_steps > STALL_STEPS {
                let msg = format!(
                    "simulation stalled at t={}: an endpoint keeps asking for a timer at or before now without progress",
                    self.now
                );
                self.note(NoteKind::Warning, msg.clone());
                self.stalled = Some(msg);
                return false;
            }
        } else {
            self.same_instant_steps = 0;
        }
        self.now = next;
        let now_us = next.as_micros();
        self.out.advance(now_us);
        self.run_injectors();
        // What the links release now joins the queue in send order; a delivery can make a
        // host send on a zero-delay link, so release and deliver until nothing more is due.
        while self.release_links(now_us)
            || self
                .inflight
                .peek()
                .is_some_and(|Reverse(f)| f.at_us <= now_us)
        {
            while let Some(Reverse(f)) = self.inflight.peek() {
                if f.at_us > now_us {
                    break;
                }
                let Some(Reverse(f)) = self.inflight.pop() else {
                    break;
                };
                let now = self.now;
                let dst = f.dst as usize;
                self.hosts[dst].ep.handle_packet(now, &f.bytes);
                self.flush_host(dst);
            }
        }
        for h in 0..self.hosts.len() {
            if self.hosts[h].ep.poll_timeout().is_some_and(|t| t <= next) {
                self.hosts[h].ep.handle_timeout(next);
                self.flush_host(h);
            }
        }
        true
    }

    /// Runs until `deadline`, processing everything due before it.
    pub fn run_until(&mut self, deadline: Instant) {
        while self.step(deadline) {}
    }

    /// Runs until `pred` holds (checked before each step) or `deadline` passes; true if `pred`
    /// held.
    pub fn run_until_pred(
        &mut self,
        deadline: Instant,
        mut pred: impl FnMut(&mut Network<'s>) -> bool,
    ) -> bool {
        loop {
            if pred(self) {
                return true;
            }
            if !self.step(deadline) {
                return pred(self);
            }
        }
    }

    /// Moves every datagram the links have let through by `now_us` into the delivery queue,
    /// keeping its send order for ties. Returns whether there was any.
    fn release_links(&mut self, now_us: u64) -> bool {
        let mut any = false;
        for link in self.links.values_mut().chain(self.outside.values_mut()) {
            while let Some(d) = link.poll(now_us) {
                any = true;
                self.inflight.push(Reverse(InFlight {
                    at_us: d.due.as_micros_ceil(),
                    order: d.packet.order,
                    dst: d.packet.dst as u32,
                    bytes: d.packet.bytes.into_boxed_slice(),
                }));
            }
        }
        any
    }

    /// Collects a host's transmissions (onto the links) and events (into the trace).
    fn flush_host(&mut self, host: usize) {
        // State changes first: they happened when the call or the arrival was processed, before
        // the segments that announce them leave.
        while let Some(ev) = self.hosts[host].ep.poll_event() {
            self.record_event(host, ev);
        }
        loop {
            let now = self.now;
            let mut buf = std::mem::take(&mut self.buf);
            let tx = self.hosts[host].ep.poll_transmit(now, &mut buf);
            if let Some(tx) = tx {
                let len = tx.len.min(buf.len());
                self.route(host, &buf[..len], sent_as(&tx));
            }
            self.buf = buf;
            if tx.is_none() {
                break;
            }
        }
        while let Some(ev) = self.hosts[host].ep.poll_event() {
            self.record_event(host, ev);
        }
    }

    fn record_event(&mut self, host: usize, ev: Event) {
        match ev {
            Event::StateChanged {
                socket,
                tuple,
                from,
                to,
                cause,
            } => {
                if let SocketHandle::Conn(conn) = socket {
                    self.conn_states.insert((host, conn), to);
                    self.tuples.insert((host, conn), tuple.to_string());
                }
                self.out.push(TraceEvent::State(StateRec {
                    t_us: self.now.as_micros(),
                    host,
                    id: socket.id(),
                    conn: tuple.to_string(),
                    remote: tuple.remote,
                    from,
                    to,
                    cause: cause.name().to_string(),
                }));
            }
            Event::Closed { conn, reason } => {
                self.notices.push(AppNotice::Closed { host, conn, reason })
            }
            Event::Acceptable { listener, .. } => {
                self.notices.push(AppNotice::Acceptable { host, listener })
            }
            _ => {}
        }
    }

    fn route(&mut self, src: usize, datagram: &[u8], (marks, kind): (u32, Option<&'static str>)) {
        let now_us = self.now.as_micros();
        let Some(seg) = decode::decode(datagram) else {
            let msg = format!(
                "{} sent a datagram that does not parse as TCP; dropped",
                self.hosts[src].name
            );
            self.note(NoteKind::Warning, msg);
            return;
        };
        let dst = self.owner(seg.dst.ip());
        // Scripted drops come first: they model "this one segment is lost".
        if let Some(i) = self.drop_rules.iter().position(|r| {
            r.from == src
                && dst.is_some_and(|d| r.to.is_none_or(|t| t == d))
                && r.flags.matches(seg.bits)
        }) {
            let r = &mut self.drop_rules[i];
            if r.skip > 0 {
                r.skip -= 1;
            } else {
                r.count -= 1;
                if r.count == 0 {
                    self.drop_rules.remove(i);
                }
                let rec = Rec {
                    src_host: Some(src),
                    dst_host: dst,
                    fate: Fate::Dropped,
                    why: Some("rule"),
                    arrive_us: None,
                    injected: false,
                    marks,
                    kind,
                };
                self.record_segment(&seg, datagram, rec);
                return;
            }
        }
        let Some(dst) = dst else {
            let rec = Rec {
                src_host: Some(src),
                dst_host: None,
                fate: Fate::Dropped,
                why: Some("no route"),
                arrive_us: None,
                injected: false,
                marks,
                kind,
            };
            self.record_segment(&seg, datagram, rec);
            return;
        };
        let params = self.default_link;
        let (seed, a, b) = (
            self.seed,
            self.hosts[src].name.clone(),
            self.hosts[dst].name.clone(),
        );
        let link = self
            .links
            .entry((src, dst))
            .or_insert_with(|| Link::new(params, seed, &a, &b));
        self.order += 1;
        let (fate, why, arrive) = link.send(now_us, self.order, dst, datagram.to_vec());
        let rec = Rec {
            src_host: Some(src),
            dst_host: Some(dst),
            fate,
            why,
            arrive_us: arrive,
            injected: false,
            marks,
            kind,
        };
        self.record_segment(&seg, datagram, rec);
    }

    /// Numbers the segment, captures it, judges it and hands it to the sink.
    fn record_segment(&mut self, seg: &Seg, datagram: &[u8], rec: Rec) {
        self.frames += 1;
        let t_us = self.now.as_micros();
        self.out.datagram(self.frames, t_us, datagram);
        let v = self.analyser.observe(&SegView {
            frame: self.frames,
            t_us,
            src: seg.src,
            dst: seg.dst,
            flags: seg.bits,
            seq: seg.seq,
            ack: seg.ack,
            len: seg.len as u32,
            window: seg.window,
            wscale: seg.options.wscale,
        });
        let mut analysis = v.analysis;
        for bit in [Analysis::CHALLENGE_ACK, Analysis::SYN_COOKIE] {
            if rec.marks & bit != 0 {
                analysis.insert(bit);
            }
        }
        self.out.push(TraceEvent::Segment(SegmentRec {
            frame: self.frames,
            t_us,
            arrive_us: rec.arrive_us,
            src: seg.src,
            dst: seg.dst,
            src_host: rec.src_host,
            dst_host: rec.dst_host,
            flags: seg.flags.clone(),
            seq: seg.seq,
            ack: seg.ack,
            len: seg.len,
            window: seg.window,
            options: seg.options.clone(),
            rel_seq: v.rel_seq,
            rel_ack: v.rel_ack,
            analysis,
            sent_as: rec.kind,
            fate: rec.fate,
            why: rec.why,
            injected: rec.injected,
        }));
    }
}

/// How the network handled a segment, for its record.
struct Rec {
    src_host: Option<usize>,
    dst_host: Option<usize>,
    fate: Fate,
    why: Option<&'static str>,
    arrive_us: Option<u64>,
    injected: bool,
    /// Marks only the sender knows ([`Analysis::CHALLENGE_ACK`], [`Analysis::SYN_COOKIE`]).
    marks: u32,
    /// The sender's own name for what it sent.
    kind: Option<&'static str>,
}

/// What the sending endpoint says a datagram is, where no capture can tell: a challenge ACK
/// (RFC 5961 §4, §5, §7) or a SYN-ACK carrying a SYN cookie. The kinds Wireshark can see
/// (retransmission, keep-alive, window probe) come from the analyser instead, so the trace
/// and a capture of it agree.
fn sent_as(tx: &tcpfsm_core::Transmit) -> (u32, Option<&'static str>) {
    use tcpfsm_core::TxKind;
    match tx.kind {
        TxKind::ChallengeAck => (Analysis::CHALLENGE_ACK, Some("challenge_ack")),
        TxKind::SynCookie => (Analysis::SYN_COOKIE, Some("syn_cookie")),
        TxKind::Retransmission => (0, Some("retransmission")),
        TxKind::WindowProbe => (0, Some("window_probe")),
        TxKind::WindowUpdate => (0, Some("window_update")),
        TxKind::KeepAlive => (0, Some("keep_alive")),
        TxKind::Reset => (0, Some("reset")),
        _ => (0, None),
    }
}

/// A host's first address of the same family as `like` (or its first address at all).
pub fn address_for(addrs: &[IpAddr], like: Option<IpAddr>) -> Option<IpAddr> {
    match like {
        Some(l) => addrs.iter().copied().find(|a| a.is_ipv4() == l.is_ipv4()),
        None => addrs.first().copied(),
    }
}

/// `SocketAddr` of a host's first address and a port.
pub fn host_socket(addrs: &[IpAddr], port: u16) -> Option<SocketAddr> {
    addrs.first().map(|ip| SocketAddr::new(*ip, port))
}
