//! The endpoint: every connection and listener of one host, demultiplexed by 4-tuple.
#![allow(unused_variables, dead_code)]

use crate::{
    Census, Config, ConnId, Error, Event, FourTuple, Instant, ListenerId, Duration, State, Stats,
};
use std::net::{IpAddr, SocketAddr};

/// One datagram written by [`Endpoint::poll_transmit`] into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Bytes written at the start of the buffer: a whole IPv4 or IPv6 datagram carrying TCP.
    pub len: usize,
}

/// A snapshot of one connection, for census tables, `ss`-like listings and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnInfo {
    pub id: ConnId,
    pub tuple: FourTuple,
    pub state: State,
    /// The application closed it (or never accepted it); it lives on as an orphan.
    pub orphan: bool,
    pub listener: Option<ListenerId>,
    pub snd_una: u32,
    pub snd_nxt: u32,
    pub rcv_nxt: u32,
    pub snd_wnd: u32,
    pub rcv_wnd: u32,
    /// Bytes queued to send, not yet acknowledged.
    pub send_queue: usize,
    /// Bytes received, not yet read by the application.
    pub recv_queue: usize,
    pub srtt: Option<Duration>,
    pub rto: Duration,
    pub cwnd: u32,
    pub retransmits: u64,
    /// When it entered its current state.
    pub since: Instant,
}

/// Options of a listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenOptions {
    pub backlog: u32,
    /// SO_REUSEADDR: may bind while TIME_WAIT connections still use the local address.
    pub reuse_addr: bool,
}

pub struct Endpoint {
    config: Config,
    stats: Stats,
}

impl Endpoint {
    pub fn new(config: Config, seed: u64) -> Endpoint {
        todo!()
    }
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// Passive open with SO_REUSEADDR set (what servers do).
    pub fn listen(&mut self, local: SocketAddr, backlog: u32) -> Result<ListenerId, Error> {
        todo!()
    }
    pub fn listen_with(&mut self, local: SocketAddr, opts: ListenOptions) -> Result<ListenerId, Error> {
        todo!()
    }
    pub fn close_listener(&mut self, listener: ListenerId) -> Result<(), Error> {
        todo!()
    }
    /// Takes the oldest established connection from the accept queue; `WouldBlock` if none.
    pub fn accept(&mut self, listener: ListenerId) -> Result<ConnId, Error> {
        todo!()
    }
    /// Active open. A local port of 0 picks an ephemeral port (RFC 6056).
    pub fn connect(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr) -> Result<ConnId, Error> {
        todo!()
    }
    pub fn send(&mut self, conn: ConnId, data: &[u8]) -> Result<usize, Error> {
        todo!()
    }
    /// `Ok(0)` is end-of-stream (the peer's FIN), `WouldBlock` means no data yet.
    pub fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize, Error> {
        todo!()
    }
    pub fn shutdown_write(&mut self, conn: ConnId) -> Result<(), Error> {
        todo!()
    }
    pub fn close(&mut self, conn: ConnId) -> Result<(), Error> {
        todo!()
    }
    pub fn abort(&mut self, conn: ConnId) -> Result<(), Error> {
        todo!()
    }
    pub fn set_nodelay(&mut self, conn: ConnId, nodelay: bool) -> Result<(), Error> {
        todo!()
    }
    pub fn state(&self, conn: ConnId) -> Option<State> {
        todo!()
    }
    pub fn info(&self, conn: ConnId) -> Option<ConnInfo> {
        todo!()
    }
    pub fn connections(&self) -> Vec<ConnInfo> {
        todo!()
    }
    pub fn handle_packet(&mut self, now: Instant, datagram: &[u8]) {
        todo!()
    }
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        todo!()
    }
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }
    pub fn handle_timeout(&mut self, now: Instant) {
        todo!()
    }
    pub fn poll_event(&mut self) -> Option<Event> {
        todo!()
    }
    pub fn census(&self) -> Census {
        todo!()
    }
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}
