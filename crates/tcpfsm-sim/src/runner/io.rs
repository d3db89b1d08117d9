//! The application's reads and writes: `send` (a background writer that queues what fits
//! and writes the rest as the send buffer drains), `close`/`shutdown` behind pending writes,
//! and `recv` in its three modes.

use std::time::Duration;

use tcpfsm_core::{ConnHandle, Instant, InvalidHandle};

use super::{text_excerpt, Op, Pending, Runner, TcpError};
use crate::script::RecvMode;

impl Runner<'_> {
    /// `send`: hands the data to the application's writer. What fits in the send buffer is
    /// queued at once; the rest is written as space opens up while the script goes on (as a
    /// writer thread would), so a sender does not deadlock against a receiver the script has
    /// not reached yet. The call's result is recorded when the last byte was queued.
    pub(super) fn send(&mut self, host: usize, n: &str, c: Option<ConnHandle>, data: &[u8]) {
        let Some(c) = c else {
            self.app(
                host,
                "send",
                n,
                None,
                false,
                InvalidHandle.to_string(),
                None,
                None,
            );
            return;
        };
        self.mark();
        self.outbox
            .entry((host, c))
            .or_default()
            .push_back(Pending {
                sock: n.to_string(),
                conn: c,
                op: Op::Write,
                data: data.to_vec(),
                written: 0,
            });
        self.pump_outbox();
        if self.outbox.contains_key(&(host, c)) {
            // Still writing: its result comes later, at its own time.
            self.marked = false;
            self.net.unmark_call();
        }
    }

    /// Writes pending `send` data wherever the send buffer has room, recording each call's
    /// result once its last byte is queued (or an error stops it).
    pub(super) fn pump_outbox(&mut self) {
        let keys: Vec<(usize, ConnHandle)> = self.outbox.keys().copied().collect();
        for key in keys {
            let host = key.0;
            while let Some(p) = self.outbox.get_mut(&key).and_then(|q| q.front_mut()) {
                let c = p.conn;
                if p.op != Op::Write {
                    // The writes before it are done: the deferred close or shutdown happens now.
                    let (op, sock) = (p.op, p.sock.clone());
                    self.outbox.get_mut(&key).and_then(|q| q.pop_front());
                    let r = self.net.with_endpoint(host, |ep, now| match op {
                        Op::Close => ep.close(now, c).map_err(|e| e.to_string()),
                        _ => ep.shutdown_write(now, c).map_err(|e| e.to_string()),
                    });
                    let call = if op == Op::Close { "close" } else { "shutdown" };
                    self.simple_result(host, call, &sock, Some(c), r);
                    continue;
                }
                let mut result: Option<Result<(), TcpError>> = None;
                while p.written < p.data.len() {
                    let off = p.written;
                    let r = self
                        .net
                        .with_endpoint(host, |ep, now| ep.send(now, c, &p.data[off..]));
                    match r {
                        Ok(k) if k > 0 => p.written += k,
                        Ok(_) => break,
                        Err(e) => {
                            result = Some(Err(e.to_string()));
                            break;
                        }
                    }
                }
                if result.is_none() && p.written == p.data.len() {
                    result = Some(Ok(()));
                }
                let Some(result) = result else { break };
                let Some(p) = self.outbox.get_mut(&key).and_then(|q| q.pop_front()) else {
                    break;
                };
                let text = text_excerpt(&p.data);
                let bytes = Some(p.written as u64);
                match result {
                    Ok(()) => self.app(
                        host,
                        "send",
                        &p.sock,
                        Some(c),
                        true,
                        "sent".into(),
                        bytes,
                        text,
                    ),
                    Err(e) => self.app(
                        host,
                        "send",
                        &p.sock,
                        Some(c),
                        false,
                        e.to_string(),
                        bytes,
                        text,
                    ),
                }
            }
            if self.outbox.get(&key).is_some_and(|q| q.is_empty()) {
                self.outbox.remove(&key);
            }
        }
    }

    /// Queues a `close` or `shutdown` behind the connection's pending writes, as a writer
    /// thread that writes then closes would; true if it was deferred.
    pub(super) fn defer_behind_writes(
        &mut self,
        host: usize,
        sock: &str,
        c: Option<ConnHandle>,
        op: Op,
    ) -> bool {
        let Some(c) = c else { return false };
        match self.outbox.get_mut(&(host, c)) {
            Some(q) => {
                q.push_back(Pending {
                    sock: sock.to_string(),
                    conn: c,
                    op,
                    data: Vec::new(),
                    written: 0,
                });
                true
            }
            None => false,
        }
    }

    /// One step of the network, with everything the applications do in the background.
    pub(super) fn step(&mut self, deadline: Instant) -> bool {
        if self.net.output_error().is_some() {
            return false;
        }
        let progressed = self.net.step(deadline);
        self.drain_notices();
        self.pump_outbox();
        progressed
    }

    pub(super) fn recv(
        &mut self,
        line: usize,
        host: usize,
        n: &str,
        c: Option<ConnHandle>,
        mode: RecvMode,
        timeout: Duration,
    ) {
        let Some(c) = c else {
            self.app(
                host,
                "recv",
                n,
                None,
                false,
                InvalidHandle.to_string(),
                None,
                None,
            );
            return;
        };
        let mut got: Vec<u8> = Vec::new();
        let mut eof = false;
        let mut error: Option<TcpError> = None;
        let mut buf = vec![0u8; 64 * 1024];
        let deadline = self.deadline(if mode == RecvMode::Available {
            Duration::ZERO
        } else {
            timeout
        });
        let satisfied = |got: &Vec<u8>, eof: bool, error: &Option<TcpError>| {
            eof || error.is_some()
                || match mode {
                    RecvMode::Available => true,
                    RecvMode::Exactly(k) => got.len() >= k,
                    RecvMode::UntilEof => false,
                }
        };
        loop {
            // Read everything there is now.
            loop {
                let want = match mode {
                    RecvMode::Exactly(k) => (k - got.len().min(k)).min(buf.len()),
                    _ => buf.len(),
                };
                if want == 0 {
                    break;
                }
                match self
                    .net
                    .with_endpoint(host, |ep, now| ep.recv(now, c, &mut buf[..want]))
                {
                    Ok(Some(0)) => {
                        eof = true;
                        break;
                    }
                    Ok(Some(k)) => got.extend_from_slice(&buf[..k]),
                    Ok(None) => break,
                    Err(e) => {
                        error = Some(e.to_string());
                        break;
                    }
                }
            }
            self.drain_notices();
            if satisfied(&got, eof, &error) || !self.step(deadline) {
                break;
            }
        }
        if let Some(s) = self.socks.get_mut(n) {
            s.received += got.len() as u64;
        }
        let text = text_excerpt(&got);
        let bytes = Some(got.len() as u64);
        if let Some(e) = error {
            self.app(host, "recv", n, Some(c), false, e.to_string(), bytes, text);
        } else if eof {
            self.app(host, "recv", n, Some(c), true, "eof".into(), bytes, text);
        } else if got.is_empty() && mode == RecvMode::Available {
            self.app(
                host,
                "recv",
                n,
                Some(c),
                true,
                "would block".into(),
                bytes,
                text,
            );
        } else {
            let complete = !matches!(mode, RecvMode::Exactly(k) if got.len() < k)
                && mode != RecvMode::UntilEof;
            self.app(
                host,
                "recv",
                n,
                Some(c),
                complete,
                "data".into(),
                bytes,
                text,
            );
            if !complete {
                let what = match mode {
                    RecvMode::UntilEof => "end-of-stream".to_string(),
                    RecvMode::Exactly(k) => format!("{k} bytes"),
                    RecvMode::Available => String::new(),
                };
                self.fail(
                    line,
                    format!("recv {n} did not get {what} within {timeout:?}"),
                );
            }
        }
    }
}
