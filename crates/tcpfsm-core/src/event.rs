//! What the endpoint tells its driver: state changes and application-facing readiness.

use crate::{ConnHandle, FourTuple, ListenerHandle, SocketHandle};
use std::fmt;
use tcpfsm_states::State;

/// Why a connection changed state. Each names the RFC 9293 §3.10 event that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cause {
    /// OPEN call, active (connect): CLOSED → SYN_SENT.
    ActiveOpen,
    /// OPEN call, passive (listen): CLOSED → LISTEN.
    PassiveOpen,
    /// A SYN arrived at a listener: LISTEN → SYN_RECEIVED (a new connection).
    SynReceived,
    /// A SYN without ACK arrived in SYN_SENT: simultaneous open.
    SimultaneousOpen,
    /// Our SYN was acknowledged (SYN-ACK in SYN_SENT, or ACK in SYN_RECEIVED).
    HandshakeAcked,
    /// The final ACK carried a valid SYN cookie; the connection is built from it.
    SynCookieAcked,
    /// The application closed (CLOSE call) and a FIN is queued.
    AppClose,
    /// The application shut down its write side: a FIN is queued, reading goes on.
    AppShutdown,
    /// The peer's FIN arrived.
    FinReceived,
    /// The peer acknowledged our FIN.
    FinAcked,
    /// The peer's FIN arrived together with the ACK of ours.
    FinAndAckReceived,
    /// TIME_WAIT lasted 2×MSL.
    TimeWaitExpired,
    /// An orphaned FIN_WAIT_2 waited `fin_timeout` for the peer's FIN.
    FinWait2Timeout,
    /// A valid RST arrived.
    ResetReceived,
    /// The application aborted (linger 0): RST sent.
    AppAbort,
    /// The application closed with unread data, so RST was sent instead of FIN (as Linux does).
    ClosedWithUnreadData,
    /// Retransmissions (SYN, SYN-ACK, data or FIN) reached their limit.
    RetransmitLimit,
    /// Keep-alive probes went unanswered.
    KeepaliveTimeout,
    /// A SYN arrived for a TIME_WAIT 4-tuple and was accepted under RFC 6191.
    TimeWaitReopened,
    /// TIME_WAIT was ended early to reuse its 4-tuple for a new connect (tw_reuse).
    TimeWaitReused,
    /// The TIME_WAIT table was full (`max_tw_buckets`), so TIME_WAIT was skipped.
    TimeWaitOverflow,
    /// The listener was closed.
    ListenerClosed,
    /// A SYN other than a retransmission of the first reached a half-open connection.
    UnexpectedSyn,
}

impl Cause {
    pub const fn name(self) -> &'static str {
        match self {
            Cause::ActiveOpen => "active open",
            Cause::PassiveOpen => "passive open",
            Cause::SynReceived => "SYN received",
            Cause::SimultaneousOpen => "simultaneous open",
            Cause::HandshakeAcked => "SYN acked",
            Cause::SynCookieAcked => "SYN cookie acked",
            Cause::AppClose => "app close",
            Cause::AppShutdown => "app shutdown(write)",
            Cause::FinReceived => "FIN received",
            Cause::FinAcked => "FIN acked",
            Cause::FinAndAckReceived => "FIN+ACK received",
            Cause::TimeWaitExpired => "2MSL expired",
            Cause::FinWait2Timeout => "FIN_WAIT_2 timeout",
            Cause::ResetReceived => "RST received",
            Cause::AppAbort => "app abort (RST sent)",
            Cause::ClosedWithUnreadData => "closed with unread data (RST sent)",
            Cause::RetransmitLimit => "retransmission limit",
            Cause::KeepaliveTimeout => "keepalive timeout",
            Cause::TimeWaitReopened => "SYN reopened TIME_WAIT",
            Cause::TimeWaitReused => "TIME_WAIT reused (tw_reuse)",
            Cause::TimeWaitOverflow => "TIME_WAIT table full",
            Cause::ListenerClosed => "listener closed",
            Cause::UnexpectedSyn => "unexpected SYN",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a connection ended, as the application sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// Both FINs exchanged and acknowledged.
    Graceful,
    /// The peer sent RST in a synchronized state ("connection reset").
    Reset,
    /// RST in answer to our SYN ("connection refused").
    Refused,
    /// Retransmissions or keep-alives gave up ("timed out").
    TimedOut,
    /// We aborted it.
    Aborted,
}

impl CloseReason {
    pub const fn name(self) -> &'static str {
        match self {
            CloseReason::Graceful => "closed",
            CloseReason::Reset => "connection reset",
            CloseReason::Refused => "connection refused",
            CloseReason::TimedOut => "timed out",
            CloseReason::Aborted => "aborted",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the endpoint tells its driver. Readiness events are edge-triggered: `Readable` when
/// something becomes readable that was not (data after none, end of stream, an error),
/// `Writable` when a send that took less than offered may now take more.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Every state change of every connection and listener, with its cause.
    StateChanged {
        socket: SocketHandle,
        tuple: FourTuple,
        from: State,
        to: State,
        cause: Cause,
    },
    /// A connection finished its handshake and waits in the listener's accept queue.
    Acceptable {
        listener: ListenerHandle,
        conn: ConnHandle,
    },
    /// Data, end of stream or an error can be read, where nothing could before.
    Readable { conn: ConnHandle },
    /// Send buffer space opened up after a send was cut short.
    Writable { conn: ConnHandle },
    /// The connection is gone for the application (it may still linger in TIME_WAIT).
    Closed {
        conn: ConnHandle,
        reason: CloseReason,
    },
}
