//! The simulated network: hosts running our TCP [`Endpoint`], impaired links between them,
//! and a virtual clock that jumps straight to the next thing that can happen.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use tcpfsm_core::{
    CloseReason, Config, ConnHandle, Endpoint, Event, Instant, ListenerHandle, SocketHandle,
};
use tcpfsm_states::State;

use crate::decode::{self, Seg};
use crate::link::{default_params, Link, LinkParams, SimPacket};
use crate::script::DropRule;
use crate::trace::{Fate, HostInfo, NoteKind, NoteRec, SegmentRec, StateRec, Trace, TraceEvent};
use tcpfsm_impair::{Copy, Delivery};

/// One simulated machine.
pub struct Host {
    pub name: String,
    pub addrs: Vec<IpAddr>,
    pub ep: Endpoint,
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

pub struct Network {
    now: Instant,
    seed: u64,
    hosts: Vec<Host>,
    links: BTreeMap<(usize, usize), Link>,
    default_link: LinkParams,
    /// Spoofed segments come from outside every host, over their own link and stream.
    outside: BTreeMap<usize, Link>,
    /// Send order of every datagram, to break ties between links deterministically.
    order: u64,
    drop_rules: Vec<DropRule>,
    trace: Trace,
    buf: Vec<u8>,
    /// Last known state of each connection, from the endpoints' events.
    conn_states: HashMap<(usize, ConnHandle), State>,
    /// 4-tuple of each connection, from the endpoints' events.
    tuples: HashMap<(usize, ConnHandle), String>,
    notices: Vec<AppNotice>,
    same_instant_steps: u32,
    stalled: Option<String>,
}

impl Network {
    pub fn new(seed: u64) -> Network {
        Network {
            now: Instant::ZERO,
            seed,
            hosts: Vec::new(),
            links: BTreeMap::new(),
            default_link: default_params(),
            outside: BTreeMap::new(),
            order: 0,
            drop_rules: Vec::new(),
            trace: Trace {
                seed,
                ..Trace::default()
            },
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
        self.trace.hosts.push(HostInfo {
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
            self.record_segment(
                &seg,
                None,
                None,
                Fate::Dropped,
                Some("no route"),
                None,
                true,
            );
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
        let (fate, why, arrive) = link.send(now_us, self.order, dst, seg.key(), datagram);
        self.record_segment(&seg, None, Some(dst), fate, why, arrive, true);
    }

    /// Segments in flight.
    pub fn in_flight(&self) -> usize {
        self.all_links().map(Link::in_flight).sum()
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

    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    pub fn trace_mut(&mut self) -> &mut Trace {
        &mut self.trace
    }

    pub fn into_trace(self) -> Trace {
        self.trace
    }

    pub fn note(&mut self, kind: NoteKind, text: String) {
        self.trace.events.push(TraceEvent::Note(NoteRec {
            t_us: self.now.as_micros(),
            kind,
            text,
        }));
    }

    /// The next instant something is due: a delivery or an endpoint timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut next = self
            .all_links()
            .filter_map(Link::next_due_us)
            .min()
            .map(Instant::from_micros);
        for h in &self.hosts {
            if let Some(t) = h.ep.poll_timeout() {
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
        // Everything due, across all links, in (arrival, send order); what the deliveries
        // make hosts send on zero-delay links is due too and comes in the next round.
        loop {
            let mut due: Vec<(u64, u64, Delivery<SimPacket>)> = Vec::new();
            for link in self.links.values_mut().chain(self.outside.values_mut()) {
                while let Some(d) = link.poll(now_us) {
                    due.push((d.due.as_micros_ceil(), d.packet.order, d));
                }
            }
            if due.is_empty() {
                break;
            }
            due.sort_by_key(|(at, order, _)| (*at, *order));
            for (_, _, d) in due {
                if d.copy == Copy::Original {
                    self.fill_arrival(&d.packet, now_us);
                }
                let now = self.now;
                self.hosts[d.packet.dst]
                    .ep
                    .handle_packet(now, &d.packet.bytes);
                self.flush_host(d.packet.dst);
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
        mut pred: impl FnMut(&mut Network) -> bool,
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

    /// A segment held back until later ones passed (`reorder-packets`) learns its arrival
    /// time only now: find its record, the latest one sent then with this content and no
    /// arrival yet.
    fn fill_arrival(&mut self, p: &SimPacket, now_us: u64) {
        for ev in self.trace.events.iter_mut().rev() {
            let TraceEvent::Segment(r) = ev else { continue };
            if r.t_us < p.sent_us {
                break;
            }
            if r.t_us == p.sent_us
                && r.arrive_us.is_none()
                && r.fate != Fate::Dropped
                && (r.src, r.dst, r.seq, r.ack, r.len) == p.key
            {
                r.arrive_us = Some(now_us);
                break;
            }
        }
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
                self.route(host, &buf[..len]);
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
                self.trace.events.push(TraceEvent::State(StateRec {
                    t_us: self.now.as_micros(),
                    host,
                    id: socket.id(),
                    conn: tuple.to_string(),
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

    fn route(&mut self, src: usize, datagram: &[u8]) {
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
                self.record_segment(
                    &seg,
                    Some(src),
                    dst,
                    Fate::Dropped,
                    Some("rule"),
                    None,
                    false,
                );
                return;
            }
        }
        let Some(dst) = dst else {
            self.record_segment(
                &seg,
                Some(src),
                None,
                Fate::Dropped,
                Some("no route"),
                None,
                false,
            );
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
        let (fate, why, arrive) = link.send(now_us, self.order, dst, seg.key(), datagram.to_vec());
        self.record_segment(&seg, Some(src), Some(dst), fate, why, arrive, false);
    }

    #[allow(clippy::too_many_arguments)]
    fn record_segment(
        &mut self,
        seg: &Seg,
        src_host: Option<usize>,
        dst_host: Option<usize>,
        fate: Fate,
        why: Option<&'static str>,
        arrive_us: Option<u64>,
        injected: bool,
    ) {
        self.trace.events.push(TraceEvent::Segment(SegmentRec {
            t_us: self.now.as_micros(),
            arrive_us,
            src: seg.src,
            dst: seg.dst,
            src_host,
            dst_host,
            flags: seg.flags.clone(),
            seq: seg.seq,
            ack: seg.ack,
            len: seg.len,
            window: seg.window,
            fate,
            why,
            injected,
        }));
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
