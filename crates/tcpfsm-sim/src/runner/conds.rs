//! `wait until` and `expect` conditions: whether one holds, and how to say what was seen.

use tcpfsm_states::State;

use super::{Runner, Sock, SockKind};
use crate::script::Cond;
use tcpfsm_core::CloseReason;

impl Runner<'_> {
    pub(super) fn cond_holds(&self, c: &Cond) -> bool {
        match c {
            Cond::Quiet => self.net.in_flight() == 0,
            Cond::Eof(name) => match self.socks.get(&self.resolve(name)) {
                Some(Sock {
                    host,
                    kind: SockKind::Conn(Some(id)),
                    ..
                }) => {
                    // The states a connection is in once the peer's FIN was received.
                    matches!(
                        self.net.conn_state(*host, *id),
                        Some(State::CloseWait | State::LastAck | State::Closing | State::TimeWait)
                    ) || self.closed.get(&(*host, *id)) == Some(&CloseReason::Graceful)
                }
                _ => false,
            },
            Cond::Closed(name) | Cond::Error(name) => {
                let any = matches!(c, Cond::Closed(_));
                match self.socks.get(&self.resolve(name)) {
                    Some(Sock {
                        host,
                        kind: SockKind::Conn(Some(id)),
                        ..
                    }) => self
                        .closed
                        .get(&(*host, *id))
                        .is_some_and(|r| any || *r != CloseReason::Graceful),
                    // A connect that failed at once is closed, and an error.
                    Some(Sock {
                        kind: SockKind::Conn(None),
                        ..
                    }) => true,
                    _ => false,
                }
            }
            Cond::Count(h, st, n) => self.net.endpoint(*h).census().get(*st) == *n,
            Cond::AtLeast(h, st, n) => self.net.endpoint(*h).census().get(*st) >= *n,
            Cond::Result(name, text) => self
                .socks
                .get(&self.resolve(name))
                .is_some_and(|s| &s.last_result == text),
            Cond::InState(name, st) => match self.socks.get(&self.resolve(name)) {
                None => false,
                Some(s) => match s.kind {
                    SockKind::Listener(_) => *st == State::Listen,
                    SockKind::Conn(None) => *st == State::Closed,
                    SockKind::Conn(Some(c)) => self.net.conn_state(s.host, c) == Some(*st),
                },
            },
        }
    }

    pub(super) fn cond_text(&self, c: &Cond) -> String {
        let host = |h: &usize| self.net.hosts()[*h].name.clone();
        match c {
            Cond::Quiet => "quiet".into(),
            Cond::Closed(name) => format!("{} closed", self.resolve(name)),
            Cond::Eof(name) => format!("{} eof", self.resolve(name)),
            Cond::Error(name) => format!("{} error", self.resolve(name)),
            Cond::Count(h, st, n) => format!("{} has {n} {st}", host(h)),
            Cond::AtLeast(h, st, n) => format!("{} has at least {n} {st}", host(h)),
            Cond::Result(name, t) => format!("{} result {t:?}", self.resolve(name)),
            Cond::InState(name, st) => format!("{} {st}", self.resolve(name)),
        }
    }

    /// What a condition actually saw, for failure messages.
    pub(super) fn cond_actual(&self, c: &Cond) -> String {
        match c {
            Cond::Quiet => format!("{} segments in flight", self.net.in_flight()),
            Cond::Eof(name) | Cond::Closed(name) | Cond::Error(name) => {
                match self.socks.get(&self.resolve(name)) {
                    Some(Sock {
                        host,
                        kind: SockKind::Conn(Some(id)),
                        ..
                    }) => match self.closed.get(&(*host, *id)) {
                        Some(r) => format!("closed: {r}"),
                        None => "still open".into(),
                    },
                    Some(_) => "not a connection".into(),
                    None => "no such socket yet".into(),
                }
            }
            Cond::Count(h, st, _) | Cond::AtLeast(h, st, _) => {
                format!("{} {st}", self.net.endpoint(*h).census().get(*st))
            }
            Cond::Result(name, _) => match self.socks.get(&self.resolve(name)) {
                Some(s) => format!("last result {:?}", s.last_result),
                None => "no such socket yet".into(),
            },
            Cond::InState(name, _) => match self.socks.get(&self.resolve(name)) {
                None => "no such socket yet".into(),
                Some(s) => match s.kind {
                    SockKind::Listener(_) => "a listener".into(),
                    SockKind::Conn(None) => "never connected".into(),
                    SockKind::Conn(Some(c)) => match self.net.conn_state(s.host, c) {
                        Some(st) => format!("in {st}"),
                        None => "no state reported yet".into(),
                    },
                },
            },
        }
    }
}
