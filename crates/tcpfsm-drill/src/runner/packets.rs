//! `<` and `>` lines: injecting the script's packets and matching the stack's.

use super::sock::{Sock, SockState};
use super::{secs, Runner, Step};
use crate::compare::{self, Mode, TsTick};
use crate::outcome::TraceEntry;
use crate::script::{Flags, Packet, TcpOpt};
use crate::segment::{self, Inbound, Seg, WireOpt};
use crate::stack::{Micros, Stack};
use std::net::SocketAddr;

/// How long past a `>` line's window the runner keeps looking, to report a late segment as
/// late rather than missing (packetdrill waits 2 s too).
const LATE_GRACE: Micros = 2_000_000;
/// How long a `*` line waits.
const ANY_WAIT: Micros = 600_000_000;

impl<S: Stack> Runner<'_, S> {
    /// The socket an inbound packet belongs to: a SYN at a listener makes a child.
    fn inbound_sock(&mut self, p: &Packet) -> usize {
        let i = self.sut_index();
        let syn_only = p.flags.has(Flags::SYN) && !p.flags.has(Flags::ACK);
        if syn_only && self.socks[i].state == SockState::Listening {
            let listener = &self.socks[i];
            let mut local = listener.local;
            if local.ip().is_unspecified() {
                local.set_ip(self.cfg.local_ip);
            }
            let remote = SocketAddr::new(self.cfg.remote_ip, self.take_remote_port());
            let mut child = Sock::new(SockState::SynReceived, local, remote);
            child.parent = Some(i);
            child.remote_isn = p.seq.start;
            self.socks.push(child);
            self.sut = Some(self.socks.len() - 1);
            return self.socks.len() - 1;
        }
        let s = &mut self.socks[i];
        match s.state {
            // As packetdrill: only the SYN-ACK answering our SYN gives the remote ISN (a
            // simultaneous-open SYN leaves the numbering absolute).
            SockState::Connecting if p.flags.has(Flags::SYN) && p.flags.has(Flags::ACK) => {
                s.remote_isn = p.seq.start;
                s.state = SockState::Connected;
            }
            SockState::SynReceived if p.flags.has(Flags::ACK) && !p.flags.has(Flags::SYN) => {
                s.state = SockState::Connected
            }
            _ => {}
        }
        i
    }

    pub(super) fn inbound(&mut self, p: &Packet, line: u32) -> Step {
        let i = self.inbound_sock(p);
        let sock = &self.socks[i];
        let syn = p.flags.has(Flags::SYN);
        let (mut src, mut dst) = (sock.remote, sock.local);
        if dst.ip().is_unspecified() {
            dst.set_ip(self.cfg.local_ip);
        }
        if let Some((s, d)) = p.ports {
            src.set_port(s);
            dst.set_port(d);
        }
        let mut options: Vec<TcpOpt> = p.options.clone().unwrap_or_default();
        for o in &mut options {
            match o {
                TcpOpt::Sack(blocks) => {
                    for (l, r) in blocks.iter_mut() {
                        *l = sock.inbound_ack(*l, syn);
                        *r = sock.inbound_ack(*r, syn);
                    }
                }
                TcpOpt::Timestamp { ecr, .. } if p.flags.has(Flags::ACK) => {
                    *ecr = sock
                        .inbound_ecr(*ecr)
                        .map_err(|m| self.fail(line, String::new(), String::new(), m))?;
                }
                _ => {}
            }
        }
        let datagram = segment::build(&Inbound {
            src,
            dst,
            flags: p.flags.0,
            seq: sock.inbound_seq(p.seq.start, syn, p.seq.absolute),
            ack: p.ack.map(|a| sock.inbound_ack(a, syn)).unwrap_or(0),
            win: p.win.unwrap_or(0),
            urg: p.urg.unwrap_or(0),
            options: &options,
            payload_len: p.seq.len as usize,
            ecn: p.ecn,
        })
        .map_err(|m| self.fail(line, String::new(), String::new(), m))?;
        self.st
            .inject(&datagram)
            .map_err(|e| self.sys_err(line, e, "injecting the packet"))?;
        self.trace.push(TraceEntry {
            line,
            at: self.st.now(),
            observed: "injected".into(),
            key: "injected".into(),
        });
        self.poll_pending()
    }

    /// The next datagram the stack sent on the socket under test, if one is queued.
    fn next_sent(&mut self, sock: usize, line: u32) -> Step<Option<(Micros, Seg)>> {
        let (mut local, remote) = (self.socks[sock].local, self.socks[sock].remote);
        if local.ip().is_unspecified() {
            local.set_ip(self.cfg.local_ip);
        }
        while let Some(sent) = self.st.sent().pop_front() {
            let seg = match Seg::parse(&sent.bytes) {
                Ok(s) => s,
                Err(e) if e.starts_with("NotTcp") || e.starts_with("BadIpVersion") => continue,
                Err(e) => {
                    return Err(self.fail(
                        line,
                        String::new(),
                        format!("{} bytes", sent.bytes.len()),
                        format!("the stack sent a malformed TCP datagram ({e})"),
                    ))
                }
            };
            if seg.src == local && seg.dst == remote {
                return Ok(Some((sent.at, seg)));
            }
        }
        Ok(None)
    }

    /// Waits for the stack's next segment on `sock` until `deadline`.
    fn await_sent(
        &mut self,
        sock: usize,
        deadline: Micros,
        line: u32,
    ) -> Step<Option<(Micros, Seg)>> {
        loop {
            self.poll_pending()?;
            if let Some(s) = self.next_sent(sock, line)? {
                return Ok(Some(s));
            }
            if self.st.now() >= deadline {
                return Ok(None);
            }
            let watch = self.watch();
            self.st.step(deadline, &watch);
        }
    }

    pub(super) fn outbound(
        &mut self,
        p: &Packet,
        line: u32,
        start: Micros,
        end: Micros,
        any: bool,
    ) -> Step<Micros> {
        let i = self.sut_index();
        let tol = self.tolerance(start);
        let deadline = if any {
            self.st.now() + ANY_WAIT
        } else {
            end + tol + LATE_GRACE
        };
        let expected = format!("> {}", compare::show_packet(p));
        let Some((at, mut seg)) = self.await_sent(i, deadline, line)? else {
            let when = if any {
                "at any time".to_string()
            } else if start == end {
                format!("at {} (±{:.3} s)", secs(start), tol as f64 / 1e6)
            } else {
                format!("between {} and {}", secs(start), secs(end))
            };
            return Err(self.fail(
                line,
                expected,
                "nothing".into(),
                format!("no segment was sent {when}"),
            ));
        };
        // A super-packet line (more payload than one segment) may be matched by consecutive
        // segments covering the same range.
        let aggregate = self.opts.mode == Mode::Protocol && !self.cfg.strict_segments;
        while aggregate
            && seg.payload.len() < p.seq.len as usize
            && seg.flags & (Flags::SYN | Flags::FIN | Flags::RST) == 0
        {
            let Some((_, next)) = self.await_sent(i, deadline, line)? else {
                break;
            };
            if next.seq != seg.seq.wrapping_add(seg.payload.len() as u32) {
                break;
            }
            seg.payload.extend_from_slice(&next.payload);
            seg.flags |= next.flags;
            seg.ack = next.ack;
            seg.win = next.win;
            seg.options = next.options;
        }
        let mapped = self.script_numbers(i, p, &seg);
        let shown = format!("> {}", compare::show_seg(&mapped));
        let ts = self.cfg.ts_tick_usecs.map(|tick| TsTick {
            tick_usecs: tick,
            tolerance_usecs: tol,
        });
        self.trace.push(TraceEntry {
            line,
            at,
            observed: shown.clone(),
            key: trace_key(&mapped, self.opts.mode),
        });
        if let Err(why) = compare::compare(p, &mapped, self.opts.mode, ts) {
            return Err(self.fail(line, expected, format!("{shown} at {}", secs(at)), why));
        }
        if !any && (at < start - tol || at > end + tol) {
            let window = if start == end {
                format!("at {} ±{:.3} s", secs(start), tol as f64 / 1e6)
            } else {
                format!("between {} and {}", secs(start), secs(end))
            };
            return Err(self.fail(
                line,
                format!("{expected} {window}"),
                format!("{shown} at {}", secs(at)),
                format!(
                    "timing error: sent {:.3} s {}",
                    ((at - start).abs().min((at - end).abs())) as f64 / 1e6,
                    if at < start { "early" } else { "late" }
                ),
            ));
        }
        Ok(at)
    }

    /// The segment in the script's numbers; the first SYN of a connection pins its ISN.
    fn script_numbers(&mut self, i: usize, p: &Packet, seg: &Seg) -> Seg {
        let sock = &mut self.socks[i];
        let syn = seg.flags & Flags::SYN != 0;
        if syn && p.flags.has(Flags::SYN) && !p.seq.any && sock.live_local_isn.is_none() {
            sock.script_local_isn = p.seq.start;
            sock.live_local_isn = Some(seg.seq);
        }
        let exp_ts = p.options.as_ref().and_then(|o| {
            o.iter().find_map(|o| match o {
                TcpOpt::Timestamp { val, .. } => Some(*val),
                _ => None,
            })
        });
        let mut m = seg.clone();
        m.seq = if p.seq.absolute {
            seg.seq
        } else {
            sock.outbound_seq(seg.seq, syn)
        };
        m.ack = sock.outbound_ack(seg.ack, syn);
        for o in &mut m.options {
            match o {
                WireOpt::Opt(TcpOpt::Sack(blocks)) => {
                    for (l, r) in blocks.iter_mut() {
                        *l = sock.outbound_ack(*l, syn);
                        *r = sock.outbound_ack(*r, syn);
                    }
                }
                WireOpt::Opt(TcpOpt::Timestamp { val, .. }) => {
                    *val = sock.outbound_tsval(*val, exp_ts);
                }
                _ => {}
            }
        }
        m
    }
}

/// What two stacks must agree on for a sent segment, per mode.
fn trace_key(s: &Seg, mode: Mode) -> String {
    if mode == Mode::Strict {
        return compare::show_seg(s);
    }
    let flags = Flags(s.flags & !Flags::PSH);
    let mut opts: Vec<String> = s
        .options
        .iter()
        .filter_map(|o| match o {
            WireOpt::Opt(TcpOpt::Nop | TcpOpt::Eol) => None,
            WireOpt::Opt(TcpOpt::WScale(_)) => Some("wscale".to_string()),
            WireOpt::Opt(TcpOpt::Timestamp { ecr, .. }) => Some(format!("TS ecr {ecr}")),
            other => Some(other.to_string()),
        })
        .collect();
    opts.sort();
    let ack = if flags.has(Flags::ACK) {
        format!(" ack {}", s.ack)
    } else {
        String::new()
    };
    format!(
        "> {flags} {}:{}({}){ack} <{}>",
        s.seq,
        s.seq.wrapping_add(s.payload.len() as u32),
        s.payload.len(),
        opts.join(",")
    )
}
