//! The simulated network: hosts running our TCP [`Endpoint`], impaired links between them,
//! and a virtual clock that jumps straight to the next thing that can happen.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};

use tcpfsm_core::{
    CloseReason, Config, ConnHandle, Endpoint, Event, Instant, ListenerHandle, SocketHandle,
};
use tcpfsm_states::State;

use crate::decode::{self, Seg};
use crate::link::{Link, LinkParams};
use crate::script::DropRule;
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
    dst: usize,
    bytes: Vec<u8>,
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
    inflight: BinaryHeap<Reverse<InFlight>>,
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
            default_link: LinkParams::default(),
            outside: BTreeMap::new(),
            inflight: BinaryHeap::new(),
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

    /// Sets the parameters of direction `from → to`, keeping its random stream if it exists.
    pub fn set_link(&mut self, from: usize, to: usize, params: LinkParams) {
        let (seed, a, b) = (
            self.seed,
            self.hosts[from].name.clone(),
            self.hosts[to].name.clone(),
        );
        self.links
            .entry((from, to))
            .or_insert_with(|| Link::new(params, seed, &a, &b))
            .params = params;
    }

    /// Parameters for directions never set explicitly.
    pub fn set_default_link(&mut self, params: LinkParams) {
        self.default_link = params;
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
        let out = link.transmit(now_us, &datagram);
        let arrive = out.deliveries.first().map(|d| now_us + d.after_us);
        self.record_segment(&seg, None, Some(dst), out.fate, None, arrive, true);
        for d in out.deliveries {
            self.enqueue(now_us + d.after_us, dst, d.bytes);
        }
    }

    /// Segments in flight.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
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
            .inflight
            .peek()
            .map(|Reverse(f)| Instant::from_micros(f.at_us));
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
        while let Some(Reverse(f)) = self.inflight.peek() {
            if f.at_us > now_us {
                break;
            }
            let Some(Reverse(f)) = self.inflight.pop() else {
                break;
            };
            let now = self.now;
            self.hosts[f.dst].ep.handle_packet(now, &f.bytes);
            self.flush_host(f.dst);
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

    fn enqueue(&mut self, at_us: u64, dst: usize, bytes: Vec<u8>) {
        self.order += 1;
        self.inflight.push(Reverse(InFlight {
            at_us,
            order: self.order,
            dst,
            bytes,
        }));
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
        let out = link.transmit(now_us, datagram);
        let arrive = out.deliveries.first().map(|d| now_us + d.after_us);
        let why = (out.fate == Fate::Dropped).then_some("loss");
        self.record_segment(&seg, Some(src), Some(dst), out.fate, why, arrive, false);
        for d in out.deliveries {
            self.enqueue(now_us + d.after_us, dst, d.bytes);
        }
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
