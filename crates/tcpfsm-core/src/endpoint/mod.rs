//! The endpoint: every connection and listener of one host, demultiplexed by 4-tuple.
//!
//! Lookup order for an arriving segment follows Linux: connections and half-open entries (one
//! table, one lookup), then TIME_WAIT records, then listeners, and finally the RFC 9293
//! §3.10.7.1 reset. Application calls are `app.rs`, segment input `input.rs`, TIME_WAIT
//! `time_wait.rs`, output and timers `output.rs`, ephemeral ports `ports.rs`.

mod app;
mod input;
mod output;
mod ports;
mod time_wait;

use crate::builder::CtlQueue;
use crate::conn::{Conn, Ctx, Owner};
use crate::listener::Listener;
use crate::ratelimit::ChallengeBudget;
use crate::secrets::Secrets;
use crate::table::{Entry, Table};
use crate::time_wait::TimeWaitTable;
use crate::timerq::TimerQueue;
use crate::tuple::unspecified_like;
use crate::{
    Census, Config, ConnHandle, ConnOptions, Duration, Event, FourTuple, Instant, ListenerHandle,
    State, Stats,
};
use std::collections::VecDeque;
use std::net::IpAddr;

pub use app::{ListenOptions, OptionsError};

/// One datagram written by [`Endpoint::poll_transmit`] into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transmit {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Bytes written at the start of the buffer: a whole IPv4 or IPv6 datagram carrying TCP.
    pub len: usize,
    /// Why the engine sent it, where the wire alone cannot tell (a challenge ACK looks like
    /// any ACK; a SYN-cookie SYN-ACK like any SYN-ACK).
    pub kind: TxKind,
}

/// What a transmitted segment is, in the words of Wireshark's `tcp.analysis` flags where they
/// exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TxKind {
    /// New data, a SYN, a FIN or an ACK with nothing special about it.
    Normal,
    /// Data, SYN, SYN-ACK or FIN sent again (timeout, fast retransmit, or a half-open entry's
    /// SYN-ACK retry).
    Retransmission,
    /// RFC 9293 §3.8.6.1 zero-window probe.
    WindowProbe,
    /// A pure ACK sent because the application's read reopened the window.
    WindowUpdate,
    /// RFC 1122 §4.2.3.6 keep-alive probe.
    KeepAlive,
    /// RFC 5961 challenge ACK (for an in-window RST or SYN, or a too-old ACK).
    ChallengeAck,
    /// A SYN-ACK whose ISN is a SYN cookie (no half-open entry kept).
    SynCookie,
    /// An RST.
    Reset,
}

/// A snapshot of one connection, for census tables, `ss`-like listings and tests.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ConnInfo {
    /// The connection (or, for a listener's line in [`Endpoint::connections`], none).
    pub id: Option<ConnHandle>,
    pub listener_handle: Option<ListenerHandle>,
    pub tuple: FourTuple,
    pub state: State,
    /// The application closed it (or never accepted it); it lives on as an orphan.
    pub orphan: bool,
    /// The listener this connection came from.
    pub listener: Option<ListenerHandle>,
    pub snd_una: u32,
    pub snd_nxt: u32,
    pub rcv_nxt: u32,
    pub snd_wnd: u32,
    pub rcv_wnd: u32,
    /// Bytes queued to send, not yet acknowledged.
    pub send_queue: usize,
    /// Bytes received, not yet read by the application (for a listener: its accept queue).
    pub recv_queue: usize,
    /// Out-of-order bytes held.
    pub out_of_order: u64,
    pub mss: u16,
    pub srtt: Option<Duration>,
    pub rttvar: Duration,
    pub rto: Duration,
    pub cwnd: u32,
    pub ssthresh: u32,
    /// Segments retransmitted over the connection's life.
    pub retransmits: u64,
    /// Unanswered zero-window probes in a row.
    pub probes: u32,
    /// Bytes believed in flight (RFC 6675 `pipe`).
    pub in_flight: u32,
    /// Segments the peer SACKed / that loss recovery marked lost.
    pub sacked_segments: u32,
    pub lost_segments: u32,
    /// RACK has seen reordering on this path.
    pub reordering: bool,
    /// How far out of order the path delivered, in segments (Linux's `tcpi_reordering`, as
    /// `ss -ti` prints it): the largest displacement seen, 0 while none has been (Linux
    /// starts at its DupThresh, 3; RACK needs no such guess).
    pub reordering_degree: u32,
    /// Loss recovery's phase, as Linux's `ca_state`: `open`, `recovery` or `loss`.
    pub recovery: &'static str,
    /// The congestion control algorithm (`cubic`, `reno`, …).
    pub congestion: &'static str,
    /// When it entered its current state (for TIME_WAIT records: unknown, the query time).
    pub since: Instant,
    /// When the next of its timers fires.
    pub next_timer: Option<Instant>,
}

pub struct Endpoint {
    pub(crate) config: Config,
    pub(crate) secrets: Secrets,
    pub(crate) stats: Stats,
    pub(crate) table: Table,
    pub(crate) time_wait: TimeWaitTable,
    pub(crate) listeners: Vec<Listener>,
    next_listener: u64,
    pub(crate) events: VecDeque<Event>,
    pub(crate) ctl: CtlQueue,
    pub(crate) challenge: ChallengeBudget,
    /// Slots of connections that may want to send.
    pub(crate) tx_queue: VecDeque<u32>,
    /// The slot `transmit_queued` took off the head of `tx_queue` since the last
    /// `poll_transmit` (`u32::MAX`: none), which counts as still at the head until then.
    pub(crate) tx_early: u32,
    pub(crate) timers: TimerQueue,
    /// The last destination's RFC 6056 port offset: (local IP, remote, offset).
    pub(crate) port_offset_memo: Option<(std::net::IpAddr, std::net::SocketAddr, u32)>,
    /// Finished connections' storage for the next ones.
    pub(crate) spare: crate::conn::spare::Spare,
    /// RFC 6056 Algorithm 3's `next_ephemeral` counter.
    pub(crate) port_counter: u32,
    /// The latest time passed in, for TIME_WAIT deadlines kept as millisecond clocks.
    pub(crate) last_now: Instant,
}

/// Listener handles carry the top bit, so no listener's number is ever a connection's.
const LISTENER_BIT: u64 = 1 << 63;

/// Keyed hash state for the tables keyed by 4-tuples, which the network chooses: aHash, seeded
/// from the endpoint's seed, keeps hash flooding out at a fraction of SipHash's cost.
fn tuple_hasher(seed: u64) -> ahash::RandomState {
    ahash::RandomState::with_seeds(
        seed,
        seed.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15,
        seed.rotate_left(31) ^ 0xc2b2_ae3d_27d4_eb4f,
        seed.rotate_left(47) ^ 0x1656_67b1_9e37_79f9,
    )
}

impl Endpoint {
    pub fn new(config: Config, seed: u64) -> Endpoint {
        let ctl = CtlQueue::new(config.max_ctl_queue);
        Endpoint {
            config,
            secrets: Secrets::from_seed(seed),
            stats: Stats::default(),
            table: Table::new(tuple_hasher(seed)),
            time_wait: TimeWaitTable::new(tuple_hasher(seed ^ 2)),
            listeners: Vec::new(),
            next_listener: 1,
            events: VecDeque::new(),
            ctl,
            challenge: ChallengeBudget::default(),
            tx_queue: VecDeque::new(),
            tx_early: u32::MAX,
            timers: TimerQueue::default(),
            spare: Default::default(),
            port_offset_memo: None,
            port_counter: 0,
            last_now: Instant::ZERO,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn alloc_listener(&mut self) -> ListenerHandle {
        let id = self.next_listener;
        self.next_listener += 1;
        ListenerHandle(LISTENER_BIT | id)
    }

    /// The context a connection works in; the table is returned beside it, borrowed apart.
    pub(crate) fn ctx(&mut self, now: Instant) -> (Ctx<'_>, &mut Table) {
        (
            Ctx {
                now,
                cfg: &self.config,
                events: &mut self.events,
                stats: &mut self.stats,
                ctl: &mut self.ctl,
                challenge: &mut self.challenge,
                secrets: &self.secrets,
                spare: &mut self.spare,
            },
            &mut self.table,
        )
    }

    /// Frees a slot; a connection in it leaves its storage to the next one.
    pub(crate) fn free_slot(&mut self, slot: u32) {
        let e = self.table.remove(slot);
        self.spare.free(e);
    }

    /// The application's connection: `None` if the handle is stale or not (any more) the
    /// application's.
    pub(crate) fn app_slot(&self, conn: ConnHandle) -> Option<u32> {
        let slot = self.table.slot_of(conn)?;
        (self.table.conn(slot)?.owner == Owner::App).then_some(slot)
    }

    pub fn state(&self, conn: ConnHandle) -> Option<State> {
        let slot = self.table.slot_of(conn)?;
        match &self.table.slot(slot).entry {
            Entry::Conn(c) => Some(c.state()),
            Entry::HalfOpen(_) => Some(State::SynReceived),
            Entry::Free => None,
        }
    }

    pub fn info(&self, conn: ConnHandle) -> Option<ConnInfo> {
        let slot = self.table.slot_of(conn)?;
        self.table.conn(slot).map(|c| self.conn_info(slot, c))
    }

    /// The options a connection uses (getsockopt).
    pub fn options(&self, conn: ConnHandle) -> Option<ConnOptions> {
        let slot = self.table.slot_of(conn)?;
        self.table.conn(slot).map(|c| c.options())
    }

    fn conn_info(&self, slot: u32, c: &Conn) -> ConnInfo {
        ConnInfo {
            id: Some(c.id),
            listener_handle: None,
            tuple: c.tuple,
            state: c.state(),
            orphan: c.owner != Owner::App,
            listener: c.listener,
            snd_una: c.snd.snd_una.0,
            snd_nxt: c.snd.snd_nxt.0,
            rcv_nxt: c.rcv.rcv_nxt.0,
            snd_wnd: c.snd.snd_wnd,
            rcv_wnd: c.rcv.rcv_wnd(),
            send_queue: c.snd.queued(),
            recv_queue: c.rcv.unread(),
            out_of_order: c.rcv.out_of_order_bytes(),
            mss: c.snd.mss,
            srtt: c.snd.rtt.srtt(),
            rttvar: c.snd.rtt.rttvar(),
            rto: c.snd.rtt.rto(),
            cwnd: c.cwnd(&self.config),
            ssthresh: c.ssthresh(&self.config),
            retransmits: c.snd.retrans_total as u64,
            probes: c.snd.probes,
            in_flight: c.recovery().map_or(c.snd.flight_size(), |lr| lr.pipe()),
            sacked_segments: c
                .recovery()
                .map_or(0, |lr| lr.scoreboard().sacked_segments()),
            lost_segments: c.recovery().map_or(0, |lr| lr.scoreboard().lost_segments()),
            reordering: c.recovery().is_some_and(|lr| lr.rack().reordering_seen()),
            reordering_degree: c
                .recovery()
                .map_or(0, |lr| lr.rack().reordering_degree(u32::from(c.snd.mss))),
            recovery: match c.recovery().map(|lr| lr.phase()) {
                Some(crate::recovery::sender::Phase::Recovery) => "recovery",
                Some(crate::recovery::sender::Phase::Loss) => "loss",
                _ => "open",
            },
            congestion: c.congestion_name(&self.config),
            since: c.since,
            next_timer: self.timers.get(slot),
        }
    }

    fn bare_info(&self, tuple: FourTuple, state: State) -> ConnInfo {
        ConnInfo {
            id: None,
            listener_handle: None,
            tuple,
            state,
            orphan: false,
            listener: None,
            snd_una: 0,
            snd_nxt: 0,
            rcv_nxt: 0,
            snd_wnd: 0,
            rcv_wnd: 0,
            send_queue: 0,
            recv_queue: 0,
            out_of_order: 0,
            mss: 0,
            srtt: None,
            rttvar: Duration::ZERO,
            rto: Duration::ZERO,
            cwnd: 0,
            ssthresh: 0,
            retransmits: 0,
            probes: 0,
            in_flight: 0,
            sacked_segments: 0,
            lost_segments: 0,
            reordering: false,
            reordering_degree: 0,
            recovery: "open",
            congestion: "",
            since: self.last_now,
            next_timer: None,
        }
    }

    /// Every connection this endpoint knows: listeners, half-open entries, connections and
    /// TIME_WAIT records. CLOSED connections still held by the application are left out.
    pub fn connections(&self) -> Vec<ConnInfo> {
        let mut v: Vec<ConnInfo> = Vec::new();
        for l in &self.listeners {
            let tuple = FourTuple {
                local: l.local,
                remote: unspecified_like(l.local.ip()),
            };
            v.push(ConnInfo {
                listener_handle: Some(l.id),
                recv_queue: l.accept_queue.len(),
                send_queue: l.backlog as usize,
                ..self.bare_info(tuple, State::Listen)
            });
        }
        for (slot, s) in self.table.iter() {
            match &s.entry {
                Entry::HalfOpen(h) => v.push(ConnInfo {
                    id: Some(self.table.handle_of(slot)),
                    listener: Some(h.listener),
                    snd_una: h.iss,
                    snd_nxt: h.iss.wrapping_add(1),
                    rcv_nxt: h.irs.wrapping_add(1),
                    retransmits: h.retries as u64,
                    next_timer: self.timers.get(slot),
                    ..self.bare_info(s.key.expand(), State::SynReceived)
                }),
                Entry::Conn(c) if !matches!(c.state(), State::Closed | State::TimeWait) => {
                    v.push(self.conn_info(slot, c))
                }
                _ => {}
            }
        }
        for r in self.time_wait.iter() {
            v.push(ConnInfo {
                id: Some(r.id()),
                orphan: true,
                snd_una: r.snd_nxt,
                snd_nxt: r.snd_nxt,
                rcv_nxt: r.rcv_nxt,
                next_timer: Some(self.last_now + r.remaining(self.last_now)),
                ..self.bare_info(r.key.expand(), State::TimeWait)
            });
        }
        v.sort_by_key(|c| (c.id.map(|h| h.id()), c.listener_handle.map(|l| l.id())));
        v
    }

    /// Counts by state; all eleven are present.
    pub fn census(&self) -> Census {
        let mut c = Census::new();
        c.add(State::Listen, self.listeners.len() as u64);
        c.add(State::SynReceived, self.table.half_open_count() as u64);
        c.add(State::TimeWait, self.time_wait.len() as u64);
        for (_, s) in self.table.iter() {
            if let Entry::Conn(conn) = &s.entry {
                let st = conn.state();
                if !matches!(st, State::Closed | State::TimeWait | State::Listen) {
                    c.add(st, 1);
                }
            }
        }
        c
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

/// Addresses no connection may use. IPv4-mapped IPv6 addresses never appear on the wire
/// (RFC 4038 §4.2) and would alias the IPv4 connection of the same address in our tables.
pub(crate) fn is_non_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_broadcast() || v4.is_multicast() || v4.is_unspecified(),
        IpAddr::V6(v6) => v6.is_multicast() || v6.is_unspecified() || v6.to_ipv4_mapped().is_some(),
    }
}

pub(crate) fn timer_entry_size() -> usize {
    // One heap entry plus one position word per armed slot.
    std::mem::size_of::<(u64, u32)>() + std::mem::size_of::<u32>()
}
