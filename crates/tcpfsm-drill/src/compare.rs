//! Does a segment the stack sent match the script's `>` line?
//!
//! Two modes:
//! - **strict** compares what packetdrill compares: every header field the line gives
//!   (window included), the options kind by kind in order with their values (padding
//!   included), the payload.
//! - **protocol** (the default) compares what carries protocol meaning and lets the rest
//!   differ between correct stacks:
//!   - flags exactly, except PSH (where a sender sets PSH is its choice, RFC 9293 §3.9.1);
//!   - the sequence number, the acknowledgment number when ACK is set, the payload (length
//!     and bytes), the urgent pointer when URG is set, the ECN codepoint when the line gives
//!     one;
//!   - the options as a set, ignoring order and NOP/EOL padding: MSS value, SACK-permitted,
//!     SACK blocks, the timestamp echo (TSecr) and the presence of window scaling must match;
//!     an option the line does not list must not be sent;
//!   - not compared: the window, and the window-scale shift — both are receive-buffer policy
//!     (Linux derives the shift from `tcp_rmem[2]`, FreeBSD from `kern.ipc.maxsockbuf`).
//!
//! In both modes the TSval is checked only with `--tcp_ts_tick_usecs`, as in packetdrill.

use crate::script::{Flags, Packet, TcpOpt};
use crate::segment::{Seg, WireOpt};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Protocol,
    Strict,
}

/// How far an outbound TSval may be from the script's (`--tcp_ts_tick_usecs`).
#[derive(Debug, Clone, Copy)]
pub struct TsTick {
    pub tick_usecs: i64,
    pub tolerance_usecs: i64,
}

/// Compares a sent segment, already mapped into the script's number space, with the line.
/// `Err` says what differs.
pub fn compare(exp: &Packet, act: &Seg, mode: Mode, ts: Option<TsTick>) -> Result<(), String> {
    let strict = mode == Mode::Strict;
    let mask = if strict { 0xff } else { !Flags::PSH };
    if exp.flags.0 & mask != act.flags & mask {
        return Err(format!(
            "flags: expected {} but sent {}",
            exp.flags,
            Flags(act.flags)
        ));
    }
    if !exp.seq.any && exp.seq.start != act.seq {
        return Err(format!(
            "sequence number: expected {} but sent {}",
            exp.seq.start, act.seq
        ));
    }
    if exp.seq.len as usize != act.payload.len() {
        return Err(format!(
            "payload: expected {} bytes but sent {}",
            exp.seq.len,
            act.payload.len()
        ));
    }
    if act.payload.iter().any(|b| *b != 0) {
        // Scripts write zero bytes (packetdrill writes from zeroed buffers).
        return Err("payload: the bytes are not the ones written".into());
    }
    let exp_ack = exp.ack.unwrap_or(0);
    if (strict || exp.flags.has(Flags::ACK)) && exp_ack != act.ack {
        return Err(format!("ack: expected {exp_ack} but sent {}", act.ack));
    }
    if let Some(w) = exp.win {
        if strict && w != act.win {
            return Err(format!("window: expected {w} but sent {}", act.win));
        }
    }
    let exp_urg = exp.urg.unwrap_or(0);
    if (strict || exp.flags.has(Flags::URG)) && exp_urg != act.urg {
        return Err(format!(
            "urgent pointer: expected {exp_urg} but sent {}",
            act.urg
        ));
    }
    if let Some(e) = exp.ecn {
        use crate::script::Ecn;
        let ok = match e {
            Ecn::NotEct => act.ecn == 0,
            Ecn::Ect1 => act.ecn == 1,
            Ecn::Ect0 => act.ecn == 2,
            Ecn::Ce => act.ecn == 3,
            Ecn::Ect01 => act.ecn == 1 || act.ecn == 2,
        };
        if !ok {
            return Err(format!(
                "ECN codepoint: expected {e:?} but sent {}",
                act.ecn
            ));
        }
    }
    if let Some(opts) = &exp.options {
        if strict {
            strict_options(opts, &act.options, ts)?;
        } else {
            protocol_options(opts, &act.options, ts)?;
        }
    }
    Ok(())
}

fn ts_ok(exp_val: u32, act_val: u32, ts: Option<TsTick>) -> bool {
    match ts {
        None => true,
        Some(t) => {
            (act_val.wrapping_sub(exp_val) as i32 as i64).abs() * t.tick_usecs <= t.tolerance_usecs
        }
    }
}

fn opt_text(o: &TcpOpt) -> String {
    o.to_string()
}

fn protocol_options(exp: &[TcpOpt], act: &[WireOpt], ts: Option<TsTick>) -> Result<(), String> {
    let padding = |o: &TcpOpt| matches!(o, TcpOpt::Nop | TcpOpt::Eol);
    let mut unused: Vec<&WireOpt> = act
        .iter()
        .filter(|o| !matches!(o, WireOpt::Opt(x) if padding(x)))
        .collect();
    for e in exp.iter().filter(|o| !padding(o)) {
        let pos = unused.iter().position(|a| {
            let WireOpt::Opt(a) = a else { return false };
            match (e, a) {
                (TcpOpt::Mss(x), TcpOpt::Mss(y)) => x == y,
                (TcpOpt::WScale(_), TcpOpt::WScale(_)) => true,
                (TcpOpt::SackOk, TcpOpt::SackOk) => true,
                (TcpOpt::Sack(x), TcpOpt::Sack(y)) => x == y,
                (
                    TcpOpt::Timestamp { val: ev, ecr: ee },
                    TcpOpt::Timestamp { val: av, ecr: ae },
                ) => ee == ae && ts_ok(*ev, *av, ts),
                _ => false,
            }
        });
        match pos {
            Some(i) => {
                unused.remove(i);
            }
            None => {
                let sent = act
                    .iter()
                    .find(|a| {
                        matches!(a, WireOpt::Opt(x) if std::mem::discriminant(x) == std::mem::discriminant(e))
                    })
                    .map(|a| format!("sent {a}"))
                    .unwrap_or_else(|| "not sent".into());
                return Err(format!("option {}: expected, {sent}", opt_text(e)));
            }
        }
    }
    if let Some(extra) = unused.first() {
        return Err(format!("option {extra}: sent but not expected"));
    }
    Ok(())
}

fn strict_options(exp: &[TcpOpt], act: &[WireOpt], ts: Option<TsTick>) -> Result<(), String> {
    let show = |v: &mut dyn Iterator<Item = String>| v.collect::<Vec<_>>().join(",");
    let differ = || {
        Err(format!(
            "options: expected <{}> but sent <{}>",
            show(&mut exp.iter().map(opt_text)),
            show(&mut act.iter().map(|a| a.to_string()))
        ))
    };
    if exp.len() != act.len() {
        return differ();
    }
    for (e, a) in exp.iter().zip(act) {
        let WireOpt::Opt(a) = a else { return differ() };
        let same = match (e, a) {
            (TcpOpt::Timestamp { val: ev, ecr: ee }, TcpOpt::Timestamp { val: av, ecr: ae }) => {
                ee == ae && ts_ok(*ev, *av, ts)
            }
            _ => e == a,
        };
        if !same {
            return differ();
        }
    }
    Ok(())
}

/// A sent segment in packetdrill syntax (script numbers), e.g. `F. 1:1(0) ack 1 win 502
/// <nop,nop,TS val 3 ecr 7>`.
pub fn show_seg(s: &Seg) -> String {
    let flags = Flags(s.flags);
    let mut out = format!(
        "{flags} {}:{}({})",
        s.seq,
        s.seq.wrapping_add(s.payload.len() as u32),
        s.payload.len()
    );
    if flags.has(Flags::ACK) {
        out.push_str(&format!(" ack {}", s.ack));
    }
    out.push_str(&format!(" win {}", s.win));
    if flags.has(Flags::URG) {
        out.push_str(&format!(" urg {}", s.urg));
    }
    if !s.options.is_empty() {
        let o: Vec<String> = s.options.iter().map(|o| o.to_string()).collect();
        out.push_str(&format!(" <{}>", o.join(",")));
    }
    out
}

/// A script packet in packetdrill syntax, normalised (what the line asks for).
pub fn show_packet(p: &Packet) -> String {
    let mut out = format!("{} ", p.flags);
    if p.seq.any {
        out.push_str(&format!("...({})", p.seq.len));
    } else {
        out.push_str(&format!(
            "{}:{}({}){}",
            p.seq.start,
            p.seq.start.wrapping_add(p.seq.len as u32),
            p.seq.len,
            if p.seq.absolute { "!" } else { "" }
        ));
    }
    if let Some(a) = p.ack {
        out.push_str(&format!(" ack {a}"));
    }
    if let Some(w) = p.win {
        out.push_str(&format!(" win {w}"));
    }
    if let Some(u) = p.urg {
        out.push_str(&format!(" urg {u}"));
    }
    match &p.options {
        None => out.push_str(" <...>"),
        Some(o) if o.is_empty() => {}
        Some(o) => {
            let o: Vec<String> = o.iter().map(opt_text).collect();
            out.push_str(&format!(" <{}>", o.join(",")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::{Direction, SeqSpec};

    fn pkt(flags: u8, seq: u32, len: u16, ack: Option<u32>, opts: Option<Vec<TcpOpt>>) -> Packet {
        Packet {
            direction: Direction::Outbound,
            ecn: None,
            ports: None,
            flags: Flags(flags),
            seq: SeqSpec {
                start: seq,
                len,
                any: false,
                absolute: false,
            },
            ack,
            win: Some(65535),
            urg: None,
            options: opts,
            unsupported: None,
        }
    }

    fn seg(flags: u8, seq: u32, ack: u32, opts: Vec<TcpOpt>) -> Seg {
        Seg {
            src: "192.168.0.1:8080".parse().unwrap(),
            dst: "192.0.2.1:40000".parse().unwrap(),
            flags,
            seq,
            ack,
            win: 64240,
            urg: 0,
            options: opts.into_iter().map(WireOpt::Opt).collect(),
            payload: vec![],
            ecn: 0,
        }
    }

    const SA: u8 = Flags::SYN | Flags::ACK;

    #[test]
    fn protocol_mode_ignores_window_order_padding_and_scale_value() {
        // FreeBSD's SYN-ACK against Linux's.
        let exp = pkt(
            SA,
            0,
            0,
            Some(1),
            Some(vec![
                TcpOpt::Mss(1460),
                TcpOpt::SackOk,
                TcpOpt::Eol,
                TcpOpt::Eol,
            ]),
        );
        let act = seg(
            SA,
            0,
            1,
            vec![TcpOpt::Mss(1460), TcpOpt::Nop, TcpOpt::Nop, TcpOpt::SackOk],
        );
        assert_eq!(compare(&exp, &act, Mode::Protocol, None), Ok(()));
        assert!(compare(&exp, &act, Mode::Strict, None)
            .unwrap_err()
            .starts_with("window: expected 65535 but sent 64240"));
        let exp = pkt(SA, 0, 0, Some(1), Some(vec![TcpOpt::WScale(6)]));
        let act = seg(SA, 0, 1, vec![TcpOpt::Nop, TcpOpt::WScale(7)]);
        assert_eq!(compare(&exp, &act, Mode::Protocol, None), Ok(()));
    }

    #[test]
    fn protocol_mode_compares_what_carries_meaning() {
        let exp = pkt(Flags::ACK, 2, 0, Some(2), Some(vec![]));
        assert_eq!(
            compare(
                &exp,
                &seg(Flags::RST | Flags::ACK, 2, 2, vec![]),
                Mode::Protocol,
                None
            ),
            Err("flags: expected . but sent R.".into())
        );
        assert_eq!(
            compare(&exp, &seg(Flags::ACK, 3, 2, vec![]), Mode::Protocol, None),
            Err("sequence number: expected 2 but sent 3".into())
        );
        assert_eq!(
            compare(&exp, &seg(Flags::ACK, 2, 1, vec![]), Mode::Protocol, None),
            Err("ack: expected 2 but sent 1".into())
        );
        assert_eq!(
            compare(
                &exp,
                &seg(Flags::ACK | Flags::PSH, 2, 2, vec![]),
                Mode::Protocol,
                None
            ),
            Ok(())
        );
        let mss = pkt(SA, 0, 0, Some(1), Some(vec![TcpOpt::Mss(1460)]));
        assert_eq!(
            compare(
                &mss,
                &seg(SA, 0, 1, vec![TcpOpt::Mss(1440)]),
                Mode::Protocol,
                None
            ),
            Err("option mss 1460: expected, sent mss 1440".into())
        );
        assert_eq!(
            compare(
                &mss,
                &seg(SA, 0, 1, vec![TcpOpt::Mss(1460), TcpOpt::SackOk]),
                Mode::Protocol,
                None
            ),
            Err("option sackOK: sent but not expected".into())
        );
        let ts = pkt(
            Flags::ACK,
            1,
            0,
            Some(1),
            Some(vec![TcpOpt::Timestamp { val: 5, ecr: 9 }]),
        );
        assert_eq!(
            compare(
                &ts,
                &seg(
                    Flags::ACK,
                    1,
                    1,
                    vec![TcpOpt::Timestamp { val: 777, ecr: 9 }]
                ),
                Mode::Protocol,
                None
            ),
            Ok(())
        );
        assert!(compare(
            &ts,
            &seg(Flags::ACK, 1, 1, vec![TcpOpt::Timestamp { val: 5, ecr: 8 }]),
            Mode::Protocol,
            None
        )
        .is_err());
        let tick = Some(TsTick {
            tick_usecs: 1000,
            tolerance_usecs: 4000,
        });
        assert!(compare(
            &ts,
            &seg(
                Flags::ACK,
                1,
                1,
                vec![TcpOpt::Timestamp { val: 20, ecr: 9 }]
            ),
            Mode::Protocol,
            tick
        )
        .is_err());
    }

    #[test]
    fn wildcards_skip_checks() {
        let mut exp = pkt(SA, 0, 0, Some(65538), None);
        exp.seq.any = true;
        assert_eq!(
            compare(
                &exp,
                &seg(SA, 12345, 65538, vec![TcpOpt::Mss(1)]),
                Mode::Strict,
                None
            )
            .map_err(|e| e.starts_with("window")),
            Err(true)
        );
        exp.win = None;
        assert_eq!(
            compare(
                &exp,
                &seg(SA, 12345, 65538, vec![TcpOpt::Mss(1)]),
                Mode::Strict,
                None
            ),
            Ok(())
        );
    }

    #[test]
    fn segments_print_in_packetdrill_syntax() {
        let mut s = seg(
            Flags::FIN | Flags::ACK,
            1,
            2,
            vec![
                TcpOpt::Nop,
                TcpOpt::Nop,
                TcpOpt::Timestamp { val: 3, ecr: 4 },
            ],
        );
        s.payload = vec![0; 10];
        assert_eq!(
            show_seg(&s),
            "F. 1:11(10) ack 2 win 64240 <nop,nop,TS val 3 ecr 4>"
        );
        let p = pkt(Flags::RST, 5, 0, None, Some(vec![]));
        assert_eq!(show_packet(&p), "R 5:5(0) win 65535");
    }
}
