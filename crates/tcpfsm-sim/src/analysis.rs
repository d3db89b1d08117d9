//! What a segment is, told from the segments before it on its connection: retransmissions,
//! duplicate ACKs, zero windows, window updates and probes, keep-alives — Wireshark's
//! `tcp.analysis` rules (epan/dissectors/packet-tcp.c, `tcp_analyze_sequence_number`), so that
//! our trace and the `--pcap` capture opened in Wireshark say the same thing about each
//! frame. Like Wireshark, the analyser sees the segments in capture order (here: the order
//! they were sent, which is the order of the pcap) and nothing else.
//!
//! Two marks no capture can reveal come from the sending endpoint instead (see
//! [`Analysis::CHALLENGE_ACK`], [`Analysis::SYN_COOKIE`]).
//!
//! Memory is bounded: conversations live in two generations of at most [`GENERATION`]
//! entries each; when the young one fills up, the old one is dropped. A conversation idle
//! for that long (a flood of spoofed SYNs, ten thousand finished connections) loses its
//! history, and a segment arriving on it afterwards is judged as the first of a new one.

use std::net::SocketAddr;

use rustc_hash::FxHashMap;

/// How many conversations one generation holds.
pub const GENERATION: usize = 32_768;

/// Flag bits of the header, as in [`crate::script::flag`].
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// What the analyser (and the sender) said about one segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Analysis {
    bits: u32,
    /// For a duplicate ACK: its number in the run (Wireshark's "Dup ACK 12#3" is 3).
    pub dup_ack: u32,
    /// For a duplicate ACK: the frame of the ACK it repeats (the 12 of "Dup ACK 12#3").
    pub dup_ack_of: u64,
}

/// One mark: its bit, its JSON name, its label in diagrams.
struct Mark {
    bit: u32,
    name: &'static str,
    label: &'static str,
    short: &'static str,
}

macro_rules! marks {
    ($($konst:ident = $bit:expr, $name:literal, $label:literal, $short:literal;)*) => {
        impl Analysis {
            $(pub const $konst: u32 = $bit;)*
        }
        const MARKS: &[Mark] = &[$(Mark { bit: $bit, name: $name, label: $label, short: $short }),*];
    };
}

marks! {
    RETRANSMISSION = 1 << 0, "retransmission", "retransmission", "rtx";
    FAST_RETRANSMISSION = 1 << 1, "fast_retransmission", "fast retransmission", "fast rtx";
    SPURIOUS_RETRANSMISSION = 1 << 2, "spurious_retransmission", "spurious retransmission", "spurious";
    OUT_OF_ORDER = 1 << 3, "out_of_order", "out-of-order", "ooo";
    DUP_ACK = 1 << 4, "dup_ack", "dup ACK", "dup";
    ZERO_WINDOW = 1 << 5, "zero_window", "zero window", "zwin";
    ZERO_WINDOW_PROBE = 1 << 6, "zero_window_probe", "window probe", "probe";
    ZERO_WINDOW_PROBE_ACK = 1 << 7, "zero_window_probe_ack", "window probe ACK", "probe ack";
    WINDOW_UPDATE = 1 << 8, "window_update", "window update", "wupd";
    WINDOW_FULL = 1 << 9, "window_full", "window full", "wfull";
    KEEP_ALIVE = 1 << 10, "keep_alive", "keep-alive", "ka";
    KEEP_ALIVE_ACK = 1 << 11, "keep_alive_ack", "keep-alive ACK", "ka ack";
    REUSED_PORTS = 1 << 12, "reused_ports", "ports reused", "reuse";
    CHALLENGE_ACK = 1 << 13, "challenge_ack", "challenge ACK", "chal";
    SYN_COOKIE = 1 << 14, "syn_cookie", "SYN cookie", "cookie";
}

impl Analysis {
    pub fn has(&self, bit: u32) -> bool {
        self.bits & bit != 0
    }

    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }

    pub fn insert(&mut self, bit: u32) {
        self.bits |= bit;
    }

    /// Any kind of retransmission (what Wireshark's `tcp.analysis.retransmission` is set for:
    /// plain, fast and spurious ones).
    pub fn is_retransmission(&self) -> bool {
        self.has(Self::RETRANSMISSION | Self::FAST_RETRANSMISSION | Self::SPURIOUS_RETRANSMISSION)
    }

    /// JSON names: `["retransmission", "dup_ack 2"]`.
    pub fn names(&self) -> Vec<String> {
        self.each(|m| match m.bit {
            Self::DUP_ACK => format!("{} {}", m.name, self.dup_ack),
            _ => m.name.to_string(),
        })
    }

    /// Diagram label: `[dup ACK 12#2]`, `[retransmission]`; empty when nothing is marked.
    pub fn label(&self) -> String {
        self.bracket(|m| match m.bit {
            Self::DUP_ACK => format!("{} {}#{}", m.label, self.dup_ack_of, self.dup_ack),
            _ => m.label.to_string(),
        })
    }

    /// The compact label for narrow arrows: `[dup#2]`, `[rtx]`.
    pub fn short_label(&self) -> String {
        self.bracket(|m| match m.bit {
            Self::DUP_ACK => format!("{}#{}", m.short, self.dup_ack),
            _ => m.short.to_string(),
        })
    }

    fn each(&self, f: impl Fn(&Mark) -> String) -> Vec<String> {
        MARKS.iter().filter(|m| self.has(m.bit)).map(f).collect()
    }

    fn bracket(&self, f: impl Fn(&Mark) -> String) -> String {
        let parts = self.each(f);
        if parts.is_empty() {
            String::new()
        } else {
            format!("[{}]", parts.join(", "))
        }
    }
}

/// The fields of a segment the rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegView {
    pub frame: u64,
    pub t_us: u64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// Header flag bits (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, …).
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub len: u32,
    /// The window field as sent (before scaling).
    pub window: u16,
    /// The window scale option, on a SYN.
    pub wscale: Option<u8>,
}

/// The verdict on one segment, with its sequence numbers relative to each direction's ISN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub analysis: Analysis,
    pub rel_seq: u32,
    pub rel_ack: u32,
}

/// Scale of a direction's window: not known yet (no SYN seen), not used, or a shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    Unknown,
    None,
    Shift(u8),
}

#[derive(Debug, Clone, Copy)]
struct Dir {
    base_seq: Option<u32>,
    nextseq: Option<u32>,
    nextseq_t: u64,
    /// Last ACK number sent in this direction; `None` before the first segment.
    lastack: Option<u32>,
    lastack_t: u64,
    /// Scaled window of the last segment.
    window: u32,
    scale: Scale,
    lastflags: u32,
    dupacknum: u32,
    lastnondupack: u64,
}

impl Default for Dir {
    fn default() -> Dir {
        Dir {
            base_seq: None,
            nextseq: None,
            nextseq_t: 0,
            lastack: None,
            lastack_t: 0,
            // Not 0: no segment yet is not a closed window (Wireshark starts at G_MAXUINT32).
            window: u32::MAX,
            scale: Scale::Unknown,
            lastflags: 0,
            dupacknum: 0,
            lastnondupack: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Conv {
    /// Direction 0 sends from the smaller address of the key.
    dirs: [Dir; 2],
    /// When the latest SYN (without ACK) was sent; 0 for none — Wireshark's `ts_mru_syn`,
    /// which takes a SYN at time zero for no SYN, so neither do we.
    mru_syn_us: u64,
    /// The handshake's round trip: latest SYN to the first pure ACK (0: not known).
    irtt_us: u64,
}

/// Sequence-number comparisons modulo 2³² (RFC 9293 §3.4).
fn lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}
fn le(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}

/// A segment that does not advance the sequence within this long of the one that did is
/// out of order rather than retransmitted, when the handshake's round trip is not known.
const OOO_US: u64 = 3_000;
/// A retransmission within this long of the triggering duplicate ACK is a fast one.
const FAST_RTX_US: u64 = 20_000;

/// The per-conversation state of Wireshark's TCP sequence analysis.
#[derive(Debug, Default)]
pub struct Analyser {
    young: FxHashMap<(SocketAddr, SocketAddr), Conv>,
    old: FxHashMap<(SocketAddr, SocketAddr), Conv>,
}

impl Analyser {
    pub fn new() -> Analyser {
        Analyser::default()
    }

    /// Conversations held now (both generations).
    pub fn conversations(&self) -> usize {
        self.young.len() + self.old.len()
    }

    fn conv(&mut self, key: (SocketAddr, SocketAddr)) -> &mut Conv {
        if !self.young.contains_key(&key) {
            let conv = self.old.remove(&key).unwrap_or_default();
            if self.young.len() >= GENERATION {
                self.old = std::mem::take(&mut self.young);
            }
            self.young.insert(key, conv);
        }
        self.young.get_mut(&key).expect("just inserted")
    }

    /// Judges one segment, in capture order.
    pub fn observe(&mut self, s: &SegView) -> Verdict {
        let (key, d) = if s.src <= s.dst {
            ((s.src, s.dst), 0)
        } else {
            ((s.dst, s.src), 1)
        };
        let mut ta = Analysis::default();
        let c = self.conv(key);
        // A new SYN with another ISN on a known conversation: the ports were reused
        // (Wireshark starts a new conversation and says "TCP Port numbers reused").
        if s.flags & (SYN | ACK) == SYN && c.dirs[d].base_seq.is_some_and(|b| b != s.seq) {
            *c = Conv::default();
            ta.insert(Analysis::REUSED_PORTS);
        }
        handshake(c, d, s);
        let window = scaled_window(c, d, s);
        let (fwd, rev) = split(&mut c.dirs, d);
        if fwd.base_seq.is_none() {
            fwd.base_seq = Some(if s.flags & SYN != 0 {
                s.seq
            } else {
                s.seq.wrapping_sub(1)
            });
        }
        if rev.base_seq.is_none() && s.flags & ACK != 0 {
            rev.base_seq = Some(s.ack.wrapping_sub(1));
        }
        let irtt_us = c.irtt_us;
        sequence_rules(fwd, rev, s, window, irtt_us, &mut ta);
        Verdict {
            analysis: ta,
            rel_seq: s.seq.wrapping_sub(fwd_base(c, d)),
            rel_ack: if s.flags & ACK != 0 {
                s.ack.wrapping_sub(c.dirs[1 - d].base_seq.unwrap_or(0))
            } else {
                0
            },
        }
    }
}

fn fwd_base(c: &Conv, d: usize) -> u32 {
    c.dirs[d].base_seq.unwrap_or(0)
}

fn split(dirs: &mut [Dir; 2], d: usize) -> (&mut Dir, &mut Dir) {
    let (a, b) = dirs.split_at_mut(1);
    if d == 0 {
        (&mut a[0], &mut b[0])
    } else {
        (&mut b[0], &mut a[0])
    }
}

/// Window scaling is in use only when both SYNs carried the option (RFC 7323 §2.2).
fn handshake(c: &mut Conv, d: usize, s: &SegView) {
    if s.flags & (SYN | ACK) == SYN {
        c.mru_syn_us = s.t_us;
    }
    if s.flags & (SYN | ACK) == ACK && c.mru_syn_us != 0 && c.irtt_us == 0 {
        c.irtt_us = s.t_us - c.mru_syn_us;
    }
    if s.flags & SYN != 0 {
        let synack = s.flags & ACK != 0;
        match s.wscale {
            Some(w) => {
                let other = c.dirs[1 - d].scale;
                if synack && other == Scale::None {
                    c.dirs[d].scale = Scale::None;
                } else {
                    c.dirs[d].scale = Scale::Shift(w.min(14));
                }
            }
            None => {
                c.dirs[d].scale = Scale::None;
                c.dirs[1 - d].scale = Scale::None;
            }
        }
    }
}

fn scaled_window(c: &Conv, d: usize, s: &SegView) -> u32 {
    let w = u32::from(s.window);
    if s.flags & SYN != 0 {
        return w;
    }
    match c.dirs[d].scale {
        Scale::Shift(k) => w << k,
        Scale::Unknown | Scale::None => w,
    }
}

/// `tcp_analyze_sequence_number`, in Wireshark's order; `goto finished_fwd` is an early
/// exit from the window and ACK checks.
fn sequence_rules(
    fwd: &mut Dir,
    rev: &mut Dir,
    s: &SegView,
    window: u32,
    irtt_us: u64,
    ta: &mut Analysis,
) {
    let plain = s.flags & (SYN | FIN | RST) == 0;
    let same_ack = fwd.lastack == Some(s.ack);
    let at_next = fwd.nextseq == Some(s.seq);
    'fwd: {
        if s.len == 1 && at_next && rev.window == 0 {
            ta.insert(Analysis::ZERO_WINDOW_PROBE);
            break 'fwd;
        }
        if window == 0 && plain {
            ta.insert(Analysis::ZERO_WINDOW);
        }
        if s.len <= 1 && plain && fwd.nextseq.is_some_and(|n| s.seq == n.wrapping_sub(1)) {
            ta.insert(Analysis::KEEP_ALIVE);
        }
        let repeat = s.len == 0 && at_next && same_ack && plain;
        if repeat && window != 0 && window != fwd.window {
            ta.insert(Analysis::WINDOW_UPDATE);
        }
        if s.len > 0 && plain && rev.scale != Scale::Unknown {
            if let Some(edge) = rev.lastack.map(|a| a.wrapping_add(rev.window)) {
                if s.seq.wrapping_add(s.len) == edge {
                    ta.insert(Analysis::WINDOW_FULL);
                }
            }
        }
        if repeat
            && window != 0
            && window == fwd.window
            && rev.lastflags & Analysis::KEEP_ALIVE != 0
        {
            ta.insert(Analysis::KEEP_ALIVE_ACK);
            break 'fwd;
        }
        if repeat
            && window == 0
            && window == fwd.window
            && rev.lastflags & Analysis::ZERO_WINDOW_PROBE != 0
        {
            ta.insert(Analysis::ZERO_WINDOW_PROBE_ACK);
            break 'fwd;
        }
        if repeat && window != 0 && window == fwd.window {
            fwd.dupacknum += 1;
            ta.insert(Analysis::DUP_ACK);
            ta.dup_ack = fwd.dupacknum;
            ta.dup_ack_of = fwd.lastnondupack;
        }
    }
    if fwd.lastack != Some(s.ack) {
        fwd.lastnondupack = s.frame;
        fwd.dupacknum = 0;
    }
    retransmission_rules(fwd, rev, s, irtt_us, ta);
    let mut nextseq = s.seq.wrapping_add(s.len);
    if s.flags & (SYN | FIN) != 0 {
        nextseq = nextseq.wrapping_add(1);
    }
    let advances = fwd.nextseq.is_none_or(|n| lt(n, nextseq));
    if advances && !ta.has(Analysis::ZERO_WINDOW_PROBE) {
        fwd.nextseq = Some(nextseq);
        fwd.nextseq_t = s.t_us;
    }
    fwd.window = window;
    fwd.lastack = Some(s.ack);
    fwd.lastack_t = s.t_us;
    fwd.lastflags = ta.bits;
}

/// Retransmission, fast retransmission, spurious retransmission or out-of-order: a segment
/// carrying data (or SYN/FIN) that does not advance the sequence number.
fn retransmission_rules(fwd: &Dir, rev: &Dir, s: &SegView, irtt_us: u64, ta: &mut Analysis) {
    if s.len == 0 && s.flags & (SYN | FIN) == 0 {
        return;
    }
    if ta.has(Analysis::KEEP_ALIVE) {
        return;
    }
    let mut not_advanced = fwd.nextseq.is_some_and(|n| lt(s.seq, n));
    // More than one new byte right after a possible window probe is new data.
    if s.len > 1 && fwd.nextseq.is_some_and(|n| n.wrapping_sub(1) == s.seq) {
        not_advanced = false;
    }
    if s.len > 0
        && rev
            .lastack
            .is_some_and(|a| a != 0 && le(s.seq.wrapping_add(s.len), a))
    {
        ta.insert(Analysis::SPURIOUS_RETRANSMISSION);
        return;
    }
    if not_advanced
        && rev.dupacknum >= 2
        && rev.lastack == Some(s.seq)
        && s.t_us.saturating_sub(rev.lastack_t) < FAST_RTX_US
    {
        ta.insert(Analysis::FAST_RETRANSMISSION);
        return;
    }
    let end = s
        .seq
        .wrapping_add(s.len)
        .wrapping_add(u32::from(s.flags & (SYN | FIN) != 0));
    if not_advanced
        && s.t_us.saturating_sub(fwd.nextseq_t) < if irtt_us > 0 { irtt_us } else { OOO_US }
        && fwd.nextseq != Some(end)
    {
        ta.insert(Analysis::OUT_OF_ORDER);
        return;
    }
    if not_advanced {
        ta.insert(Analysis::RETRANSMISSION);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PSH: u8 = 0x08;

    /// A conversation written by hand: client 10.0.0.1:5000, server 10.0.0.2:80.
    struct Script {
        a: Analyser,
        frame: u64,
    }

    const C_ISN: u32 = 1000;
    const S_ISN: u32 = 5000;

    impl Script {
        fn new() -> Script {
            Script {
                a: Analyser::new(),
                frame: 0,
            }
        }
        #[allow(clippy::too_many_arguments)]
        fn seg(
            &mut self,
            t_ms: u64,
            from_client: bool,
            flags: u8,
            seq: u32,
            ack: u32,
            len: u32,
            window: u16,
        ) -> Verdict {
            self.frame += 1;
            let (c, s): (SocketAddr, SocketAddr) = (
                "10.0.0.1:5000".parse().unwrap(),
                "10.0.0.2:80".parse().unwrap(),
            );
            let (src, dst, base_s, base_a) = if from_client {
                (c, s, C_ISN, S_ISN)
            } else {
                (s, c, S_ISN, C_ISN)
            };
            self.a.observe(&SegView {
                frame: self.frame,
                t_us: t_ms * 1000,
                src,
                dst,
                flags,
                seq: base_s.wrapping_add(seq),
                ack: base_a.wrapping_add(ack),
                len,
                window,
                wscale: None,
            })
        }
        /// SYN, SYN-ACK, ACK at 0, 10, 20 ms; both windows 1000.
        fn handshake(&mut self) {
            assert!(self.seg(0, true, SYN, 0, 0, 0, 1000).analysis.is_empty());
            assert!(self
                .seg(10, false, SYN | ACK, 0, 1, 0, 1000)
                .analysis
                .is_empty());
            assert!(self.seg(20, true, ACK, 1, 1, 0, 1000).analysis.is_empty());
        }
    }

    #[test]
    fn a_segment_resent_after_the_rto_is_a_retransmission_with_relative_numbers() {
        let mut s = Script::new();
        s.handshake();
        let v = s.seg(30, true, PSH | ACK, 1, 1, 100, 1000);
        assert!(v.analysis.is_empty());
        assert_eq!((v.rel_seq, v.rel_ack), (1, 1));
        let v = s.seg(250, true, PSH | ACK, 1, 1, 100, 1000);
        assert!(v.analysis.has(Analysis::RETRANSMISSION), "{v:?}");
        assert!(v.analysis.is_retransmission());
        assert_eq!(v.analysis.names(), ["retransmission"]);
        // A SYN sent again is one too.
        let mut s = Script::new();
        s.seg(0, true, SYN, 0, 0, 0, 1000);
        let v = s.seg(1000, true, SYN, 0, 0, 0, 1000);
        assert_eq!(v.analysis.names(), ["retransmission"]);
    }

    #[test]
    fn repeated_acks_are_numbered_duplicates_and_a_quick_resend_is_a_fast_retransmission() {
        let mut s = Script::new();
        s.handshake(); // frames 1–3
        for k in 0..4 {
            s.seg(30, true, ACK, 1 + k * 100, 1, 100, 1000); // frames 4–7; the first is lost
        }
        let first = s.seg(40, false, ACK, 1, 1, 0, 1000); // frame 8: acks nothing new
        assert!(
            first.analysis.has(Analysis::DUP_ACK),
            "window, seq and ack as before"
        );
        let mut s = Script::new();
        s.handshake();
        s.seg(30, true, ACK, 1, 1, 100, 1000); // 4
        s.seg(30, true, ACK, 101, 1, 100, 1000); // 5
        s.seg(30, true, ACK, 201, 1, 100, 1000); // 6
        let orig = s.seg(40, false, ACK, 1, 101, 0, 1000); // 7: acks frame 4
        assert!(orig.analysis.is_empty());
        for n in 1..=3 {
            let v = s.seg(41, false, ACK, 1, 101, 0, 1000); // 8, 9, 10
            assert!(v.analysis.has(Analysis::DUP_ACK));
            assert_eq!((v.analysis.dup_ack, v.analysis.dup_ack_of), (n, 7));
        }
        assert_eq!(
            s.seg(41, false, ACK, 1, 101, 0, 1000).analysis.names(),
            ["dup_ack 4"]
        );
        let v = s.seg(51, true, ACK, 101, 1, 100, 1000);
        assert_eq!(v.analysis.names(), ["fast_retransmission"], "{v:?}");
        assert!(v.analysis.is_retransmission());
        // A new ACK number ends the run; the next repeat starts again at #1.
        s.seg(60, false, ACK, 1, 301, 0, 1000);
        let v = s.seg(61, false, ACK, 1, 301, 0, 1000);
        assert_eq!(v.analysis.label(), "[dup ACK 13#1]");
    }

    #[test]
    fn data_already_acknowledged_is_a_spurious_retransmission() {
        let mut s = Script::new();
        s.handshake();
        s.seg(30, true, ACK, 1, 1, 100, 1000);
        s.seg(40, false, ACK, 1, 101, 0, 1000);
        let v = s.seg(300, true, ACK, 1, 1, 100, 1000);
        assert_eq!(v.analysis.names(), ["spurious_retransmission"]);
    }

    #[test]
    fn a_closed_window_its_probe_and_the_reopening_are_marked() {
        let mut s = Script::new();
        s.handshake();
        s.seg(30, true, ACK, 1, 1, 1000, 1000); // fills the 1000-byte window
        let zw = s.seg(40, false, ACK, 1, 1001, 0, 0);
        assert_eq!(zw.analysis.names(), ["zero_window"]);
        let probe = s.seg(240, true, ACK, 1001, 1, 1, 1000);
        assert_eq!(probe.analysis.names(), ["zero_window_probe"]);
        let pack = s.seg(250, false, ACK, 1, 1001, 0, 0);
        assert_eq!(
            pack.analysis.names(),
            ["zero_window", "zero_window_probe_ack"]
        );
        let upd = s.seg(300, false, ACK, 1, 1001, 0, 1000);
        assert_eq!(upd.analysis.names(), ["window_update"]);
        assert_eq!(upd.analysis.label(), "[window update]");
        // The probe did not move the sequence: the byte is sent again as data, not as new.
        let data = s.seg(310, true, ACK, 1001, 1, 500, 1000);
        assert!(!data.analysis.is_retransmission(), "{data:?}");
    }

    #[test]
    fn a_keepalive_repeats_the_last_byte_and_its_answer_is_a_keepalive_ack() {
        let mut s = Script::new();
        s.handshake();
        s.seg(30, true, ACK, 1, 1, 10, 1000);
        s.seg(40, false, ACK, 1, 11, 0, 1000);
        let ka = s.seg(7_200_040, true, ACK, 10, 1, 0, 1000);
        assert_eq!(ka.analysis.names(), ["keep_alive"]);
        let kaa = s.seg(7_200_050, false, ACK, 1, 11, 0, 1000);
        assert_eq!(kaa.analysis.names(), ["keep_alive_ack"]);
        // One byte of garbage (BSD style) is a keep-alive too, not a retransmission.
        let ka1 = s.seg(7_275_040, true, ACK, 10, 1, 1, 1000);
        assert_eq!(ka1.analysis.names(), ["keep_alive"]);
    }

    #[test]
    fn a_new_syn_with_another_isn_on_old_ports_starts_a_new_conversation() {
        let mut s = Script::new();
        s.handshake();
        s.seg(30, true, FIN | ACK, 1, 1, 0, 1000);
        let v = s.a.observe(&SegView {
            frame: 99,
            t_us: 61_000_000,
            src: "10.0.0.1:5000".parse().unwrap(),
            dst: "10.0.0.2:80".parse().unwrap(),
            flags: SYN,
            seq: 777_777,
            ack: 0,
            len: 0,
            window: 1000,
            wscale: None,
        });
        assert_eq!(v.analysis.names(), ["reused_ports"]);
        assert_eq!(v.rel_seq, 0);
    }

    #[test]
    fn the_window_scale_of_both_syns_applies_to_later_windows() {
        let mut a = Analyser::new();
        let c: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let srv: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let mut seg = |frame, src, dst, flags, seq, ack, len, window, wscale| {
            a.observe(&SegView {
                frame,
                t_us: frame * 1000,
                src,
                dst,
                flags,
                seq,
                ack,
                len,
                window,
                wscale,
            })
        };
        seg(1, c, srv, SYN, 0, 0, 0, 65535, Some(7));
        seg(2, srv, c, SYN | ACK, 0, 1, 0, 65535, Some(7));
        seg(3, c, srv, ACK, 1, 1, 0, 512, None);
        // 512 << 7 = 65536 bytes of window: a segment up to that edge fills it.
        let v = seg(4, srv, c, ACK, 1, 1, 65535, 512, None);
        assert!(!v.analysis.has(Analysis::WINDOW_FULL));
        let v = seg(5, srv, c, ACK, 65536, 1, 1, 512, None);
        assert_eq!(v.analysis.names(), ["window_full"]);
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_conversations() {
        let mut a = Analyser::new();
        let dst: SocketAddr = "10.0.0.2:80".parse().unwrap();
        for k in 0..(3 * GENERATION as u32) {
            let ip = std::net::Ipv4Addr::from(0xc633_0000 + k);
            a.observe(&SegView {
                frame: u64::from(k),
                t_us: 0,
                src: SocketAddr::new(ip.into(), 1024),
                dst,
                flags: SYN,
                seq: k,
                ack: 0,
                len: 0,
                window: 1000,
                wscale: None,
            });
            assert!(a.conversations() <= 2 * GENERATION);
        }
    }
}
