//! The state × segment matrix: each of 8 segment kinds delivered, as real bytes, to a
//! connection in each of the 11 states; the reply and the next state are asserted (88 cells).
//!
//! Segments carry the sequence number the connection expects (RCV.NXT) and, when ACK is set,
//! acknowledge everything sent (SND.NXT), so each cell checks the state's own rule rather than
//! the sequence check. Timestamps are off so hand-built segments need no TSval bookkeeping.

mod common;
use common::*;
use std::net::SocketAddr;
use tcpfsm_core::{ConnHandle, Endpoint, Instant, State};
use tcpfsm_wire::Flags;

use State::*;

const ACK: Flags = Flags::ACK;
const FIN: Flags = Flags::FIN;
const RST: Flags = Flags::RST;
const SYN: Flags = Flags::SYN;

struct Cell {
    ep: Endpoint,
    now: Instant,
    uut: SocketAddr,
    peer: SocketAddr,
    /// The sequence number the connection expects next.
    seq: u32,
    /// What acknowledges everything the connection sent.
    ack: u32,
}

impl Cell {
    fn inject(&mut self, flags: Flags, seq: u32, ack: u32) -> Vec<Seg> {
        let s = seg(self.peer, self.uut, flags, seq, ack);
        self.ep.handle_packet(self.now, &s.bytes());
        drain(&mut self.ep, self.now)
    }

    /// State of the connection under test, found by its 4-tuple like `ss` would.
    fn state(&self) -> State {
        self.ep
            .connections()
            .iter()
            .find(|c| c.tuple.local == self.uut && c.tuple.remote == self.peer)
            .map(|c| c.state)
            .unwrap_or(if self.ep.census().get(Listen) > 0 {
                Listen
            } else {
                Closed
            })
    }
}

const P: u32 = 1_000;

fn setup(state: State) -> Cell {
    let mut c = Cell {
        ep: Endpoint::new(plain(), 42),
        now: Instant::from_micros(5_000_000),
        uut: addr(B_IP, 80),
        peer: addr(A_IP, 40_000),
        seq: P,
        ack: 77,
    };
    if state == Closed {
        return c;
    }
    if state == SynSent {
        c.ep.connect(c.now, c.uut, c.peer).unwrap();
        let out = drain(&mut c.ep, c.now);
        assert!(out[0].is(SYN));
        c.ack = out[0].seq.wrapping_add(1);
        return c;
    }
    let l = c.ep.listen(c.now, c.uut, 16).unwrap();
    if state == Listen {
        return c;
    }
    let out = c.inject(SYN, P, 0);
    assert!(out[0].is(SYN | ACK));
    let y = out[0].seq;
    c.seq = P + 1;
    c.ack = y.wrapping_add(1);
    if state == SynReceived {
        return c;
    }
    c.inject(ACK, P + 1, y + 1);
    let conn: ConnHandle = c.ep.accept(c.now, l).unwrap().unwrap();
    c.ep.close_listener(c.now, l).unwrap();
    drain(&mut c.ep, c.now);
    match state {
        Established => {}
        FinWait1 | FinWait2 | Closing | TimeWait => {
            c.ep.close(c.now, conn).unwrap();
            let out = drain(&mut c.ep, c.now);
            assert!(out[0].has(FIN));
            let f = out[0].seq;
            c.ack = f + 1;
            match state {
                FinWait2 => {
                    c.inject(ACK, P + 1, f + 1);
                }
                Closing => {
                    // The peer's FIN crosses ours: it does not acknowledge our FIN.
                    c.inject(FIN | ACK, P + 1, f);
                    c.seq = P + 2;
                }
                TimeWait => {
                    c.inject(ACK, P + 1, f + 1);
                    c.inject(FIN | ACK, P + 1, f + 1);
                    c.seq = P + 2;
                }
                _ => {}
            }
        }
        CloseWait | LastAck => {
            c.inject(FIN | ACK, P + 1, y + 1);
            c.seq = P + 2;
            if state == LastAck {
                c.ep.close(c.now, conn).unwrap();
                let out = drain(&mut c.ep, c.now);
                assert!(out[0].has(FIN));
                c.ack = out[0].seq + 1;
            }
        }
        _ => unreachable!(),
    }
    assert_eq!(c.state(), state, "setup reached {state}");
    c
}

/// Segment kinds, in the order of the expectation rows.
const KINDS: [(&str, Flags); 8] = [
    ("ACK", ACK),
    ("FIN", FIN),
    ("FIN+ACK", Flags(FIN.0 | ACK.0)),
    ("RST", RST),
    ("RST+ACK", Flags(RST.0 | ACK.0)),
    ("SYN", SYN),
    ("SYN+ACK", Flags(SYN.0 | ACK.0)),
    ("SYN+FIN", Flags(SYN.0 | FIN.0)),
];

const NONE: Option<Flags> = None;
const R_ACK: Option<Flags> = Some(ACK);
const R_RST: Option<Flags> = Some(RST);
const R_RSTACK: Option<Flags> = Some(Flags(RST.0 | ACK.0));
const R_SYNACK: Option<Flags> = Some(Flags(SYN.0 | ACK.0));

/// (reply, next state) per kind, in KINDS order.
type Row = [(Option<Flags>, State); 8];

fn expected(state: State) -> Row {
    // The synchronized states share the fourth-step rule: any SYN gets a challenge ACK
    // (RFC 5961 §4.2), a bare FIN is dropped (fifth step: "if the ACK bit is off drop"), and an
    // exact RST closes (RFC 5961 §3.2).
    let sync = |ack_to: State, finack: (Option<Flags>, State), s: State| -> Row {
        [
            (NONE, ack_to),
            (NONE, s),
            finack,
            (NONE, Closed),
            (NONE, Closed),
            (R_ACK, s),
            (R_ACK, s),
            (R_ACK, s),
        ]
    };
    match state {
        // RFC 9293 §3.10.7.1: no connection — RST for everything but RST.
        Closed => [
            (R_RST, Closed),
            (R_RSTACK, Closed),
            (R_RST, Closed),
            (NONE, Closed),
            (NONE, Closed),
            (R_RSTACK, Closed),
            (R_RST, Closed),
            (R_RSTACK, Closed),
        ],
        // §3.10.7.2: an ACK (no valid SYN cookie) gets RST; a SYN gets SYN-ACK and a new
        // SYN_RECEIVED connection; SYN+FIN is dropped as Linux does.
        Listen => [
            (R_RST, Listen),
            (NONE, Listen),
            (R_RST, Listen),
            (NONE, Listen),
            (NONE, Listen),
            (R_SYNACK, SynReceived),
            (R_RST, Listen),
            (NONE, Listen),
        ],
        // §3.10.7.3: only an acceptable SYN or RST moves SYN_SENT.
        SynSent => [
            (NONE, SynSent),
            (NONE, SynSent),
            (NONE, SynSent),
            (NONE, SynSent),
            (NONE, Closed),
            (R_SYNACK, SynReceived),
            (R_ACK, Established),
            (R_SYNACK, SynReceived),
        ],
        // A passive SYN_RECEIVED returns to LISTEN on an exact RST; a SYN other than the
        // retransmitted first one gets a challenge ACK, as in every synchronized state (RFC
        // 5961 §4.2), so a blind SYN cannot destroy the handshake.
        SynReceived => [
            (NONE, Established),
            (NONE, SynReceived),
            (R_ACK, CloseWait),
            (NONE, Listen),
            (NONE, Listen),
            (R_ACK, SynReceived),
            (R_ACK, SynReceived),
            (R_ACK, SynReceived),
        ],
        Established => sync(Established, (R_ACK, CloseWait), Established),
        FinWait1 => sync(FinWait2, (R_ACK, TimeWait), FinWait1),
        FinWait2 => sync(FinWait2, (R_ACK, TimeWait), FinWait2),
        Closing => sync(TimeWait, (NONE, TimeWait), Closing),
        // TIME_WAIT keeps only a record: anything occupying sequence space is ACKed, an exact
        // RST ends it, and a SYN that is not newer (RFC 6191) gets an ACK.
        TimeWait => [
            (NONE, TimeWait),
            (R_ACK, TimeWait),
            (R_ACK, TimeWait),
            (NONE, Closed),
            (NONE, Closed),
            (R_ACK, TimeWait),
            (R_ACK, TimeWait),
            (R_ACK, TimeWait),
        ],
        CloseWait => sync(CloseWait, (NONE, CloseWait), CloseWait),
        LastAck => sync(Closed, (NONE, Closed), LastAck),
    }
}

#[test]
fn state_by_segment_matrix_88_cells() {
    let mut failures = Vec::new();
    let mut cells = 0;
    for state in State::ALL {
        let row = expected(state);
        for (i, (name, flags)) in KINDS.iter().enumerate() {
            cells += 1;
            let mut c = setup(state);
            let ack = if flags.contains(ACK) { c.ack } else { 0 };
            let seq = c.seq;
            let out = c.inject(*flags, seq, ack);
            let reply = out.first().map(|s| s.flags);
            let next = c.state();
            let (want_reply, want_next) = row[i];
            if reply != want_reply || next != want_next {
                failures.push(format!(
                    "{state} + {name}: got reply {reply:?} -> {next}, want {want_reply:?} -> {want_next}"
                ));
            }
        }
    }
    assert_eq!(cells, 88);
    assert!(
        failures.is_empty(),
        "{} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
