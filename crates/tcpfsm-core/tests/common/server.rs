//! A server endpoint with one established connection from a scripted peer, for the rule
//! tests that drive one side by hand.

use super::*;
use std::net::SocketAddr;
use tcpfsm_core::{Config, ConnHandle, Duration, Endpoint, Instant};
use tcpfsm_wire::Flags;

/// A server endpoint with one established connection from a scripted peer.
pub struct Server {
    pub ep: Endpoint,
    pub now: Instant,
    pub me: SocketAddr,
    pub peer: SocketAddr,
    pub conn: ConnHandle,
    pub listener: tcpfsm_core::ListenerHandle,
    /// Peer's next sequence number (our RCV.NXT).
    pub p: u32,
    /// Our next sequence number (SND.NXT).
    pub y: u32,
}

impl Server {
    pub fn new(cfg: Config) -> Server {
        let mut ep = Endpoint::new(cfg, 9);
        let now = Instant::from_micros(10_000_000);
        let me = addr(B_IP, 80);
        let peer = addr(A_IP, 40_000);
        let l = ep.listen(now, me, 16).unwrap();
        let mut syn = seg(peer, me, Flags::SYN, 100, 0);
        syn.options.mss = Some(1460);
        ep.handle_packet(now, &syn.bytes());
        let synack = drain(&mut ep, now).remove(0);
        let y = synack.seq + 1;
        ep.handle_packet(now, &seg(peer, me, Flags::ACK, 101, y).bytes());
        let conn = ep.accept(now, l).unwrap().unwrap();
        drain(&mut ep, now);
        events(&mut ep);
        Server {
            ep,
            now,
            me,
            peer,
            conn,
            listener: l,
            p: 101,
            y,
        }
    }

    pub fn send(&mut self, flags: Flags, seq: u32, ack: u32, payload: &[u8]) -> Vec<Seg> {
        let mut s = seg(self.peer, self.me, flags, seq, ack);
        s.payload = payload.to_vec();
        self.ep.handle_packet(self.now, &s.bytes());
        drain(&mut self.ep, self.now)
    }

    pub fn advance(&mut self, d: Duration) -> Vec<Seg> {
        self.now += d;
        self.ep.handle_timeout(self.now);
        drain(&mut self.ep, self.now)
    }
}

/// An endpoint (`cfg`, seed 5) at B_IP:80 that accepted one connection from A_IP:40000 whose
/// handshake carried timestamps: the peer's SYN at 100 with TSval 1000, its ACK at 101 with
/// TSval 1001 echoing ours.
pub struct TsHandshake {
    pub ep: Endpoint,
    pub me: SocketAddr,
    pub peer: SocketAddr,
    pub now: Instant,
    pub conn: ConnHandle,
    /// Our SND.NXT after the SYN-ACK.
    pub y: u32,
    /// The TSval of our SYN-ACK.
    pub ours: u32,
}

pub fn ts_handshake(cfg: Config) -> TsHandshake {
    let mut ep = Endpoint::new(cfg, 5);
    let me = addr(B_IP, 80);
    let peer = addr(A_IP, 40_000);
    let now = Instant::from_micros(1_000_000);
    let l = ep.listen(now, me, 16).unwrap();
    ep.handle_packet(
        now,
        &with_ts(seg(peer, me, Flags::SYN, 100, 0), 1000, 0).bytes(),
    );
    let synack = drain(&mut ep, now).remove(0);
    let (y, ours) = (synack.seq + 1, synack.options.timestamps.unwrap().tsval);
    ep.handle_packet(
        now,
        &with_ts(seg(peer, me, Flags::ACK, 101, y), 1001, ours).bytes(),
    );
    let conn = ep.accept(now, l).unwrap().unwrap();
    TsHandshake {
        ep,
        me,
        peer,
        now,
        conn,
        y,
        ours,
    }
}
