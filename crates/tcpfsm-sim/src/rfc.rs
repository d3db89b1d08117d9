//! The RFC 9293 state graph as a table of allowed edges, so the simulator (and its property
//! tests) can check that every transition our TCP makes is one the specification draws.

use tcpfsm_states::State;

/// Whether `from → to` is an edge of the RFC 9293 connection state graph (§3.3.2, Figure 5,
/// with the event processing rules of §3.10 that the figure leaves out).
///
/// The table itself lives with the state vocabulary ([`State::can_transition_to`]) so the
/// simulator, the core's tests and the diagrams share one graph. Besides the figure's edges it
/// admits:
/// - any state → CLOSED: a valid RST (§3.10.7.4), an abort (§3.10.5), retransmission give-up
///   (§3.8.3 R2) or a user timeout;
/// - SYN_RECEIVED → LISTEN: a passively opened connection that receives RST goes back to
///   LISTEN (§3.10.7.4 "If this connection was initiated with a passive OPEN");
/// - SYN_RECEIVED → CLOSE_WAIT: a FIN processed in SYN-RECEIVED (§3.10.7.4, eighth step);
/// - SYN_RECEIVED → FIN_WAIT_1: CLOSE while still in SYN-RECEIVED (§3.10.4);
/// - SYN_SENT → SYN_RECEIVED: simultaneous open (§3.5 Figure 8);
/// - FIN_WAIT_1 → TIME_WAIT: FIN arriving together with the ACK of our FIN;
/// - LISTEN → SYN_SENT: a SEND on a listening connection (§3.10.2).
pub fn is_rfc_transition(from: State, to: State) -> bool {
    from.can_transition_to(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::*;

    #[test]
    fn figure_edges_are_allowed() {
        for (a, b) in [
            (Closed, Listen),
            (Closed, SynSent),
            (Listen, SynReceived),
            (SynSent, SynReceived),
            (SynSent, Established),
            (SynReceived, Established),
            (Established, FinWait1),
            (Established, CloseWait),
            (FinWait1, FinWait2),
            (FinWait1, Closing),
            (FinWait1, TimeWait),
            (FinWait2, TimeWait),
            (Closing, TimeWait),
            (TimeWait, Closed),
            (CloseWait, LastAck),
            (LastAck, Closed),
        ] {
            assert!(is_rfc_transition(a, b), "{a} -> {b}");
        }
    }

    #[test]
    fn passive_reset_returns_to_listen_and_everything_may_close() {
        assert!(is_rfc_transition(SynReceived, Listen));
        for s in State::ALL {
            assert_eq!(is_rfc_transition(s, Closed), s != Closed);
        }
    }

    #[test]
    fn shortcuts_outside_the_graph_are_rejected() {
        for (a, b) in [
            (Closed, Established),
            (Listen, Established),
            (SynSent, FinWait1),
            (Established, TimeWait),
            (FinWait2, Closing),
            (CloseWait, TimeWait),
            (LastAck, TimeWait),
            (TimeWait, Established),
            (CloseWait, FinWait1),
            (Established, Listen),
        ] {
            assert!(!is_rfc_transition(a, b), "{a} -> {b}");
        }
    }
}
