//! The first steps of RFC 9293 §3.10.7.4 "SEGMENT ARRIVES", shared by every synchronized
//! receiver: full connections, half-open (SYN_RECEIVED) entries and TIME_WAIT records.
//!
//! In the order RFC 7323 §5.3 and RFC 9293 give them:
//! 1. PAWS (RFC 7323 §5.3 R1–R3), before the sequence check;
//! 2. the sequence number check (RFC 9293's acceptability table);
//! 3. the RST bit (RFC 5961 §3.2: only an exact match resets; in-window gets a challenge ACK);
//! 4. the SYN bit (RFC 5961 §4.2: a challenge ACK, never a reset);
//! 5. the ACK bit present (else drop).
//!
//! What each receiver does next (the ACK field, text, FIN) is its own business; what it must
//! not do — kill or reset itself on a blind guess — is decided here once.

use crate::time::{Duration, Instant};
use tcpfsm_wire::{Flags, SeqNum, TcpRepr};

/// The receive side as the checks need it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RcvView {
    pub(crate) rcv_nxt: SeqNum,
    /// RCV.WND: how far beyond RCV.NXT we accept.
    pub(crate) rcv_wnd: u32,
    /// TS.Recent and when it was recorded, when timestamps are in use (RFC 7323 §4.3).
    pub(crate) ts_recent: Option<(u32, Instant)>,
}

/// Why an unacceptable segment is answered with an ACK; each has its own Linux counter
/// (`TCPACKSkipped*`) when the per-connection rate limit swallows the ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unacceptable {
    /// RFC 7323 §5.3: an old timestamp.
    Paws,
    /// RFC 9293: outside the receive window.
    Seq,
}

/// The verdict of the shared steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Go on with the ACK field, text and FIN.
    Continue,
    /// Drop silently.
    Drop,
    /// Drop, and send an ACK (rate limited per connection: RFC 5961 §7, Linux
    /// `tcp_invalid_ratelimit`).
    Ack(Unacceptable),
    /// Drop, and send a challenge ACK (RFC 5961 §3.2, §4.2; rate limited per connection and
    /// endpoint-wide).
    Challenge,
    /// An acceptable reset.
    Reset,
}

/// RFC 7323 §5.5: TS.Recent is invalid after 24 days of idleness (the peer's clock may have
/// wrapped its sign bit since).
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);

/// RFC 7323 §5.3 R1: is the segment's TSval older than TS.Recent?
pub(crate) fn paws_rejects(
    seg: &TcpRepr<'_>,
    ts_recent: Option<(u32, Instant)>,
    now: Instant,
) -> bool {
    let (Some((recent, stamp)), Some(ts)) = (ts_recent, seg.options.timestamps) else {
        return false;
    };
    // RFC 7323 §5.3: RST segments are not subject to PAWS (Linux agrees).
    if seg.flags.contains(Flags::RST) {
        return false;
    }
    // Linux's TCP_PAWS_WINDOW: a TSval one tick older than TS.Recent still passes. A segment
    // reordered behind one sent in the next clock tick (our own timestamps tick in
    // milliseconds, as Linux's) carries such a TSval, and rejecting it turns reordering into
    // loss. RFC 7323 §5.3 compares strictly; the one-tick slack cannot admit an old
    // duplicate, whose TSval is at least an MSL-scale age behind.
    ts_before(ts.tsval.wrapping_add(PAWS_WINDOW), recent) && !ts_recent_expired(stamp, now)
}

/// How many ticks older than TS.Recent a TSval may be and still pass PAWS (Linux
/// `TCP_PAWS_WINDOW`).
const PAWS_WINDOW: u32 = 1;

/// RFC 7323 §5.5: TS.Recent recorded at `stamp` is no longer valid at `now`.
fn ts_recent_expired(stamp: Instant, now: Instant) -> bool {
    now.saturating_since(stamp) >= PAWS_IDLE
}

/// Timestamp comparison modulo 2^32 (RFC 7323 §5.2), in one place.
pub(crate) fn ts_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// RFC 9293 §3.10.7.4, first check: the acceptability table.
pub(crate) fn seq_acceptable(seg: &TcpRepr<'_>, rcv_nxt: SeqNum, rcv_wnd: u32) -> bool {
    let len = seg.segment_len();
    match (len, rcv_wnd) {
        (0, 0) => seg.seq == rcv_nxt,
        (0, _) => seg.seq.in_window(rcv_nxt, rcv_wnd),
        (_, 0) => false,
        _ => {
            seg.seq.in_window(rcv_nxt, rcv_wnd)
                || seg.seq.wrapping_add(len - 1).in_window(rcv_nxt, rcv_wnd)
        }
    }
}

/// Steps 1–5 for a synchronized receiver. `syn_allowed` lets the caller pass a SYN it has
/// already recognised as legitimate (a simultaneous open's SYN-ACK, RFC 9293 Figure 8).
pub(crate) fn gate(seg: &TcpRepr<'_>, v: &RcvView, now: Instant, syn_allowed: bool) -> Gate {
    let f = seg.flags;
    if paws_rejects(seg, v.ts_recent, now) {
        return Gate::Ack(Unacceptable::Paws);
    }
    if !seq_acceptable(seg, v.rcv_nxt, v.rcv_wnd) {
        // RFC 9293: with a zero window, valid ACKs and RSTs must still get through — a
        // segment at exactly RCV.NXT is processed for its control bits, its text trimmed.
        let zero_window_control = v.rcv_wnd == 0 && seg.seq == v.rcv_nxt;
        if !zero_window_control {
            return if f.contains(Flags::RST) {
                Gate::Drop
            } else if f.contains(Flags::SYN) && !syn_allowed {
                // RFC 5961 §4.2: a SYN gets a challenge ACK "irrespective of the sequence
                // number" (Linux: syn_challenge, counted as TCPSYNChallenge).
                Gate::Challenge
            } else {
                Gate::Ack(Unacceptable::Seq)
            };
        }
    }
    if f.contains(Flags::RST) {
        return if seg.seq == v.rcv_nxt {
            Gate::Reset
        } else {
            Gate::Challenge
        };
    }
    if f.contains(Flags::SYN) && !syn_allowed {
        return Gate::Challenge;
    }
    if !f.contains(Flags::ACK) {
        return Gate::Drop;
    }
    Gate::Continue
}

/// RFC 7323 §4.3: TS.Recent follows the TSval of a segment that covers RCV.NXT (the "Last.ACK.
/// sent" rule, as Linux applies it: the segment starts at or before RCV.NXT). After 24 days
/// idle TS.Recent is invalid (RFC 7323 §5.5), so the segment PAWS let through replaces it even
/// though its TSval looks older; otherwise PAWS would stay off for the rest of the connection
/// (Linux `tcp_paws_check` / `tcp_store_ts_recent` agree).
pub(crate) fn ts_recent_update(
    seg: &TcpRepr<'_>,
    rcv_nxt: SeqNum,
    ts_recent: Option<(u32, Instant)>,
    now: Instant,
) -> Option<(u32, Instant)> {
    let (recent, stamp) = ts_recent?;
    match seg.options.timestamps {
        Some(ts)
            if seg.seq.le(rcv_nxt)
                && (!ts_before(ts.tsval, recent) || ts_recent_expired(stamp, now)) =>
        {
            Some((ts.tsval, now))
        }
        _ => ts_recent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tcpfsm_wire::{TcpOptions, Timestamps};

    fn seg(flags: Flags, seq: u32, len: usize, ts: Option<u32>) -> TcpRepr<'static> {
        static DATA: [u8; 100] = [0; 100];
        TcpRepr {
            src_port: 1,
            dst_port: 2,
            seq: SeqNum(seq),
            ack: SeqNum(0),
            flags,
            window: 100,
            urgent: 0,
            options: TcpOptions {
                timestamps: ts.map(|tsval| Timestamps { tsval, tsecr: 0 }),
                ..TcpOptions::default()
            },
            payload: &DATA[..len],
        }
    }

    fn view() -> RcvView {
        RcvView {
            rcv_nxt: SeqNum(1000),
            rcv_wnd: 500,
            ts_recent: Some((50, Instant::from_micros(1))),
        }
    }

    const NOW: Instant = Instant::from_micros(2_000_000);

    #[test]
    fn paws_is_checked_before_the_window_rfc7323_5_3() {
        // An in-window segment with an old timestamp: PAWS, not accepted.
        let s = seg(Flags::ACK, 1000, 10, Some(40));
        assert_eq!(gate(&s, &view(), NOW, false), Gate::Ack(Unacceptable::Paws));
        // After 24 days idle TS.Recent no longer counts.
        let later = NOW + Duration::from_secs(25 * 24 * 3600);
        assert_eq!(gate(&s, &view(), later, false), Gate::Continue);
    }

    #[test]
    fn only_an_exact_rst_resets_rfc5961_3_2() {
        let v = view();
        assert_eq!(
            gate(&seg(Flags::RST, 1000, 0, None), &v, NOW, false),
            Gate::Reset
        );
        assert_eq!(
            gate(&seg(Flags::RST, 1001, 0, None), &v, NOW, false),
            Gate::Challenge
        );
        assert_eq!(
            gate(&seg(Flags::RST, 9999, 0, None), &v, NOW, false),
            Gate::Drop
        );
    }

    #[test]
    fn a_syn_is_challenged_whatever_its_sequence_number_rfc5961_4_2() {
        let v = view();
        assert_eq!(
            gate(&seg(Flags::SYN, 1200, 0, None), &v, NOW, false),
            Gate::Challenge
        );
        assert_eq!(
            gate(&seg(Flags::SYN, 5000, 0, None), &v, NOW, false),
            Gate::Challenge
        );
    }

    #[test]
    fn zero_window_still_takes_an_ack_at_rcv_nxt_rfc9293_3_10_7_4() {
        let v = RcvView {
            rcv_wnd: 0,
            ..view()
        };
        assert_eq!(
            gate(&seg(Flags::ACK, 1000, 5, None), &v, NOW, false),
            Gate::Continue
        );
        assert_eq!(
            gate(&seg(Flags::ACK, 1001, 0, None), &v, NOW, false),
            Gate::Ack(Unacceptable::Seq)
        );
    }

    #[test]
    fn sequence_numbers_wrap() {
        let v = RcvView {
            rcv_nxt: SeqNum(u32::MAX - 10),
            rcv_wnd: 100,
            ts_recent: None,
        };
        assert_eq!(
            gate(&seg(Flags::ACK, 20, 10, None), &v, NOW, false),
            Gate::Continue
        );
        assert_eq!(
            gate(&seg(Flags::ACK, 200, 10, None), &v, NOW, false),
            Gate::Ack(Unacceptable::Seq)
        );
    }
}
