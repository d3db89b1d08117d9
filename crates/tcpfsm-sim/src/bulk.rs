//! One bulk transfer between two simulated hosts, driven to completion on virtual time: the
//! loop that the loss grid's simulator configuration and the `cc_trace` example share (send
//! what the buffer takes once the connection is established, accept, read everything).

use tcpfsm_core::{ConnHandle, Instant, ListenerHandle, State};

use crate::Network;

/// The two ends of a transfer: `conn` on host `sender` (already connecting) towards
/// `listener` on host `receiver`.
#[derive(Debug, Clone, Copy)]
pub struct Ends {
    pub sender: usize,
    pub conn: ConnHandle,
    pub receiver: usize,
    pub listener: ListenerHandle,
}

/// What a transfer did, in virtual time.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct Transfer {
    /// When the sender's connection reached ESTABLISHED.
    pub established: Option<Instant>,
    /// When the last byte was read, if it was.
    pub done: Option<Instant>,
    /// Bytes the receiver read.
    pub received: u64,
}

/// Sends `data` from `ends.sender` and reads it at `ends.receiver` until every byte arrived or
/// `deadline` passed. `on_read` sees every chunk read, in order; `on_step` runs before each
/// step of the network (for tracing the sender's state).
pub fn transfer(
    net: &mut Network<'_>,
    ends: Ends,
    data: &[u8],
    deadline: Instant,
    mut on_read: impl FnMut(&[u8]),
    mut on_step: impl FnMut(&Network<'_>),
) -> Transfer {
    let mut out = Transfer::default();
    let mut sent = 0usize;
    let mut accepted = None;
    let mut buf = vec![0u8; 256 * 1024];
    net.run_until_pred(deadline, |net| {
        if out.established.is_none()
            && net.conn_state(ends.sender, ends.conn) == Some(State::Established)
        {
            out.established = Some(net.now());
        }
        if out.established.is_some() && sent < data.len() {
            if let Ok(n) = net.with_endpoint(ends.sender, |ep, now| {
                ep.send(now, ends.conn, &data[sent..])
            }) {
                sent += n;
            }
        }
        if accepted.is_none() {
            accepted = net
                .with_endpoint(ends.receiver, |ep, now| ep.accept(now, ends.listener))
                .ok()
                .flatten();
        }
        if let Some(id) = accepted {
            while let Ok(Some(n)) =
                net.with_endpoint(ends.receiver, |ep, now| ep.recv(now, id, &mut buf))
            {
                if n == 0 {
                    break;
                }
                on_read(&buf[..n]);
                out.received += n as u64;
            }
        }
        on_step(net);
        if out.received == data.len() as u64 && out.done.is_none() {
            out.done = Some(net.now());
        }
        out.done.is_some()
    });
    out
}
