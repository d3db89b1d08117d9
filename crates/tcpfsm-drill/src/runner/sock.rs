//! The runner's view of the script's sockets, and packetdrill's number mapping.
//!
//! Like packetdrill, one socket is "under test" at a time: the latest `socket()`, the child a
//! SYN creates at a listener, or the socket a `connect()` started. Packets of the script
//! belong to it; its 4-tuple picks the stack's packets out of everything the stack sends.
//!
//! Sequence numbers are relative (packetdrill's `socket.h`): an inbound SYN's sequence number
//! is taken literally and becomes the remote ISN, later inbound sequence numbers add it; an
//! outbound SYN (or SYN-ACK) gives the local ISN the script uses (usually 0), the stack's
//! actual ISN is captured from the segment, and every later local number is offset by it.
//! Acknowledgment numbers and SACK blocks use the other side's offset. Timestamps: the first
//! outbound TSval pins the script's value to the stack's clock, later TSvals are shifted by the
//! same amount, and an inbound TSecr is mapped back to the live TSval it echoes.

use std::collections::HashMap;
use std::net::SocketAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockState {
    New,
    Listening,
    /// A child created by an inbound SYN at a listener.
    SynReceived,
    Connecting,
    Connected,
}

#[derive(Debug, Clone)]
pub struct Sock {
    pub state: SockState,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The listener a SYN-created child came from.
    pub parent: Option<usize>,
    /// Whether a script fd names this socket (set by socket(), accept()).
    pub has_fd: bool,
    pub script_local_isn: u32,
    /// The stack's ISN, once its SYN or SYN-ACK was seen.
    pub live_local_isn: Option<u32>,
    pub remote_isn: u32,
    ts_map: HashMap<u32, u32>,
    /// (script TSval, live TSval) of the first outbound timestamp.
    ts_first: Option<(u32, u32)>,
}

impl Sock {
    pub fn new(state: SockState, local: SocketAddr, remote: SocketAddr) -> Sock {
        Sock {
            state,
            local,
            remote,
            parent: None,
            has_fd: false,
            script_local_isn: 0,
            live_local_isn: None,
            remote_isn: 0,
            ts_map: HashMap::new(),
            ts_first: None,
        }
    }

    fn live_isn(&self) -> u32 {
        self.live_local_isn.unwrap_or(0)
    }

    /// Script → live offset of our sequence space (used for inbound ACK and SACK numbers).
    fn local_offset(&self, syn: bool) -> u32 {
        if syn {
            self.live_isn().wrapping_sub(self.script_local_isn)
        } else {
            self.live_isn()
        }
    }

    /// Script → live offset of the remote sequence space.
    fn remote_offset(&self, syn: bool) -> u32 {
        if syn {
            0
        } else {
            self.remote_isn
        }
    }

    /// Inbound: the script's sequence number on the wire.
    pub fn inbound_seq(&self, seq: u32, syn: bool, absolute: bool) -> u32 {
        if absolute {
            seq
        } else {
            seq.wrapping_add(self.remote_offset(syn))
        }
    }

    /// Inbound: an acknowledgment number (or SACK edge) on the wire.
    pub fn inbound_ack(&self, ack: u32, syn: bool) -> u32 {
        ack.wrapping_add(self.local_offset(syn))
    }

    /// Inbound TSecr: the live TSval it echoes.
    pub fn inbound_ecr(&self, ecr: u32) -> Result<u32, String> {
        if let Some(live) = self.ts_map.get(&ecr) {
            return Ok(*live);
        }
        match self.ts_first {
            Some((script, live)) => Ok(ecr.wrapping_sub(script).wrapping_add(live)),
            None if ecr == 0 => Ok(0),
            None => Err(format!(
                "cannot map TS ecr {ecr}: the stack has sent no timestamp to echo"
            )),
        }
    }

    /// Outbound: a sent sequence number in script numbers.
    pub fn outbound_seq(&self, seq: u32, syn: bool) -> u32 {
        seq.wrapping_sub(self.local_offset(syn))
    }

    /// Outbound: a sent acknowledgment number (or SACK edge) in script numbers.
    pub fn outbound_ack(&self, ack: u32, syn: bool) -> u32 {
        ack.wrapping_sub(self.remote_offset(syn))
    }

    /// Outbound TSval in script numbers; `script_val` is what the line expects, remembered
    /// so that a later TSecr of the script can be mapped back.
    pub fn outbound_tsval(&mut self, live: u32, script_val: Option<u32>) -> u32 {
        let first = *self
            .ts_first
            .get_or_insert((script_val.unwrap_or(live), live));
        if let Some(s) = script_val {
            self.ts_map.insert(s, live);
        }
        first.0.wrapping_add(live.wrapping_sub(first.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock() -> Sock {
        Sock::new(
            SockState::Connecting,
            "192.168.0.1:50000".parse().unwrap(),
            "192.0.2.1:8080".parse().unwrap(),
        )
    }

    #[test]
    fn numbers_map_relative_to_each_isn_like_packetdrill() {
        let mut s = sock();
        // `> S 0:0(0)` seen as live ISN 1000; `< S. 0:0(0) ack 1` from a remote ISN 5000.
        s.script_local_isn = 0;
        s.live_local_isn = Some(1000);
        s.remote_isn = 5000;
        assert_eq!(s.outbound_seq(1000, true), 0);
        assert_eq!(s.inbound_ack(1, true), 1001);
        assert_eq!(s.inbound_seq(5000, true, false), 5000);
        // Later segments: `< . 1:1(0) ack 1`, `> . 1:1(0) ack 1`.
        assert_eq!(s.inbound_seq(1, false, false), 5001);
        assert_eq!(s.inbound_ack(1, false), 1001);
        assert_eq!(s.outbound_seq(1001, false), 1);
        assert_eq!(s.outbound_ack(5001, false), 1);
        assert_eq!(s.inbound_seq(77, false, true), 77);
    }

    #[test]
    fn timestamps_shift_by_the_first_and_echo_back() {
        let mut s = sock();
        assert_eq!(s.inbound_ecr(0), Ok(0));
        assert!(s.inbound_ecr(100).is_err());
        assert_eq!(s.outbound_tsval(777_000, Some(100)), 100);
        assert_eq!(s.outbound_tsval(777_050, Some(150)), 150);
        assert_eq!(s.inbound_ecr(150), Ok(777_050));
        assert_eq!(s.inbound_ecr(120), Ok(777_020));
    }
}
