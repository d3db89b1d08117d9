//! What sock_diag says about one socket beyond its addresses: the pending timer (in every
//! reply's fixed header) and, when asked for, the kernel's `struct tcp_info`, congestion
//! control name and socket memory (INET_DIAG_INFO, INET_DIAG_CONG, INET_DIAG_SKMEMINFO
//! attributes) — and their `ss` spellings (`timer:(keepalive,119min,0)`, `skmem:(r0,rb…)`,
//! `cubic wscale:7,7 rto:204 rtt:0.05/0.025 …`).
//!
//! `tcp_info` is read by offset with a length check per field, not through a fixed struct:
//! the kernel sends as many bytes as *it* knows (older kernels a shorter struct, newer ones
//! fields appended after ours), and `netlink-packet-sock-diag`'s typed parse rejects any
//! reply shorter than its own struct. A field the kernel did not send is `None`, never 0.

use serde::{Serialize, Serializer};
use std::fmt;

/// INET_DIAG attribute types (linux/inet_diag.h).
pub(crate) const INET_DIAG_INFO: u16 = 2;
pub(crate) const INET_DIAG_CONG: u16 = 4;
pub(crate) const INET_DIAG_SKMEMINFO: u16 = 7;

/// Which INET_DIAG extensions a dump asks for (`idiag_ext`). Each costs kernel work and reply
/// bytes per socket, so the census asks for none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extensions {
    /// `tcp_info` and the congestion-control name (`ss -i`).
    pub info: bool,
    /// Socket memory (`ss -m`).
    pub memory: bool,
}

impl Extensions {
    pub const NONE: Extensions = Extensions {
        info: false,
        memory: false,
    };

    /// The `idiag_ext` bitmask: bit (type − 1) per attribute.
    pub fn mask(self) -> u8 {
        let bit = |t: u16| 1u8 << (t - 1);
        let mut m = 0;
        if self.info {
            m |= bit(INET_DIAG_INFO) | bit(INET_DIAG_CONG);
        }
        if self.memory {
            m |= bit(INET_DIAG_SKMEMINFO);
        }
        m
    }
}

/// Which timer the kernel has pending for a socket (`idiag_timer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TimerKind {
    /// 1: retransmission (also the loss-probe and SYN-ACK timers); `ss` calls it "on".
    Retransmit,
    /// 2: the socket timer — keepalive, or an orphan's FIN_WAIT_2 timeout.
    Keepalive,
    /// 3: a timewait minisock's timer: time left in TIME_WAIT (or FIN_WAIT_2 as a minisock).
    TimeWait,
    /// 4: zero-window probe (persist) timer.
    Persist,
    /// A code this build does not know.
    Unknown,
}

impl TimerKind {
    /// `ss`'s name for it.
    pub const fn ss_name(self) -> &'static str {
        match self {
            TimerKind::Retransmit => "on",
            TimerKind::Keepalive => "keepalive",
            TimerKind::TimeWait => "timewait",
            TimerKind::Persist => "persist",
            TimerKind::Unknown => "unknown",
        }
    }
}

/// The pending timer of one socket, from the reply header (no extension needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub struct SocketTimer {
    pub kind: TimerKind,
    /// Time until it fires, in milliseconds.
    pub expires_ms: u32,
    /// Retransmissions (retransmit timer) or unanswered probes (keepalive, persist) so far.
    pub retrans: u8,
}

impl SocketTimer {
    /// From the header's `idiag_timer`, `idiag_expires`, `idiag_retrans`; None when no timer
    /// is pending (code 0).
    pub fn from_header(timer: u8, expires_ms: u32, retrans: u8) -> Option<SocketTimer> {
        let kind = match timer {
            0 => return None,
            1 => TimerKind::Retransmit,
            2 => TimerKind::Keepalive,
            3 => TimerKind::TimeWait,
            4 => TimerKind::Persist,
            _ => TimerKind::Unknown,
        };
        Some(SocketTimer {
            kind,
            expires_ms,
            retrans,
        })
    }
}

/// `ss`'s rendering of a millisecond timeout: `119min`, `1min30sec`, `59sec`, `5.200ms`,
/// `200ms` (minutes drop the milliseconds; ten or more minutes drop the seconds too).
pub fn ss_ms_timer(ms: u32) -> String {
    let minutes = ms / 60_000;
    let mut secs = ms / 1000 % 60;
    let mut msecs = ms % 1000;
    let mut s = String::new();
    if minutes > 0 {
        msecs = 0;
        s.push_str(&format!("{minutes}min"));
        if minutes > 9 {
            secs = 0;
        }
    }
    if secs > 0 {
        if secs > 9 {
            msecs = 0;
        }
        s.push_str(&format!("{secs}{}", if msecs > 0 { "." } else { "sec" }));
    }
    if msecs > 0 {
        s.push_str(&format!("{msecs:03}ms"));
    }
    s
}

impl fmt::Display for SocketTimer {
    /// `timer:(keepalive,119min,0)`, as `ss -o` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timer:({},{},{})",
            self.kind.ss_name(),
            ss_ms_timer(self.expires_ms),
            self.retrans
        )
    }
}

/// The attributes after an `inet_diag_msg`: `(type, payload)`, nested-flag bits masked off.
/// Stops at the first malformed attribute.
pub fn attributes(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let ty = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        if len < 4 || len > buf.len() {
            buf = &[];
            return None;
        }
        let payload = &buf[4..len];
        buf = &buf[((len + 3) & !3).min(buf.len())..];
        Some((ty, payload))
    })
}

macro_rules! tcp_info_fields {
    ($( $(#[$doc:meta])* $name:ident : $ty:ident @ $off:literal, )*) => {
        impl TcpInfo {
            $( $(#[$doc])* pub fn $name(&self) -> Option<$ty> { self.$ty($off) } )*

            /// Every field the kernel sent, by its name without `tcpi_`, in struct order.
            pub fn fields(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
                [$( (stringify!($name), self.$name().map(u64::from)), )*]
                    .into_iter()
                    .filter_map(|(n, v)| Some((n, v?)))
            }
        }
    };
}

/// The kernel's `struct tcp_info` (linux/tcp.h) for one socket, as many bytes as it sent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TcpInfo {
    raw: [u8; TcpInfo::MAX],
    len: usize,
}

impl TcpInfo {
    /// Bytes kept: the struct as of Linux 6.18 (248) with room for a few appended fields.
    const MAX: usize = 320;

    /// Keeps the bytes of an INET_DIAG_INFO attribute (longer ones are cut at [`TcpInfo::MAX`]:
    /// fields beyond it are unknown to this build anyway).
    pub fn from_bytes(b: &[u8]) -> TcpInfo {
        let len = b.len().min(TcpInfo::MAX);
        let mut raw = [0u8; TcpInfo::MAX];
        raw[..len].copy_from_slice(&b[..len]);
        TcpInfo { raw, len }
    }

    /// Bytes the kernel sent.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn u8(&self, off: usize) -> Option<u8> {
        (off < self.len).then(|| self.raw[off])
    }
    fn u16(&self, off: usize) -> Option<u16> {
        (off + 2 <= self.len).then(|| u16::from_ne_bytes([self.raw[off], self.raw[off + 1]]))
    }
    fn u32(&self, off: usize) -> Option<u32> {
        let b = self.raw.get(off..off + 4).filter(|_| off + 4 <= self.len)?;
        Some(u32::from_ne_bytes(b.try_into().ok()?))
    }
    fn u64(&self, off: usize) -> Option<u64> {
        let b = self.raw.get(off..off + 8).filter(|_| off + 8 <= self.len)?;
        Some(u64::from_ne_bytes(b.try_into().ok()?))
    }

    /// `tcpi_snd_wscale` (low nibble of byte 6).
    pub fn snd_wscale(&self) -> Option<u8> {
        self.u8(6).map(|b| b & 0xf)
    }
    /// `tcpi_rcv_wscale` (high nibble of byte 6).
    pub fn rcv_wscale(&self) -> Option<u8> {
        self.u8(6).map(|b| b >> 4)
    }
    /// `tcpi_delivery_rate_app_limited` (bit 0 of byte 7).
    pub fn delivery_rate_app_limited(&self) -> Option<bool> {
        self.u8(7).map(|b| b & 1 != 0)
    }

    /// Smoothed RTT in milliseconds.
    pub fn rtt_ms(&self) -> Option<f64> {
        self.rtt().map(|us| us as f64 / 1000.0)
    }
    /// RTT variation in milliseconds.
    pub fn rttvar_ms(&self) -> Option<f64> {
        self.rttvar().map(|us| us as f64 / 1000.0)
    }
    /// The slow-start threshold, None while it is "infinite" (still in the first slow start).
    pub fn ssthresh(&self) -> Option<u32> {
        self.snd_ssthresh().filter(|s| *s < 0x7fff_ffff)
    }
    /// What cwnd allows per RTT, in bits per second (ss's `send`): cwnd × mss × 8 / rtt.
    pub fn send_bps(&self) -> Option<f64> {
        let (cwnd, mss, rtt) = (self.snd_cwnd()?, self.snd_mss()?, self.rtt()?);
        (rtt > 0).then(|| cwnd as f64 * mss as f64 * 8_000_000.0 / rtt as f64)
    }
}

tcp_info_fields! {
    state: u8 @ 0,
    ca_state: u8 @ 1,
    /// Consecutive retransmission timeouts of the current segment.
    retransmits: u8 @ 2,
    probes: u8 @ 3,
    backoff: u8 @ 4,
    /// TCPI_OPT_* bits: 1 timestamps, 2 SACK, 4 window scale, 8 ECN, 16 ECN seen, 32 SYN data.
    options: u8 @ 5,
    /// Retransmission timeout, µs.
    rto: u32 @ 8,
    /// Delayed-ACK timeout, µs.
    ato: u32 @ 12,
    snd_mss: u32 @ 16,
    rcv_mss: u32 @ 20,
    unacked: u32 @ 24,
    sacked: u32 @ 28,
    lost: u32 @ 32,
    /// Segments retransmitted and not yet acknowledged.
    retrans: u32 @ 36,
    fackets: u32 @ 40,
    /// Milliseconds since the last data sent / ACK sent / data received / ACK received.
    last_data_sent: u32 @ 44,
    last_ack_sent: u32 @ 48,
    last_data_recv: u32 @ 52,
    last_ack_recv: u32 @ 56,
    pmtu: u32 @ 60,
    rcv_ssthresh: u32 @ 64,
    /// Smoothed RTT, µs.
    rtt: u32 @ 68,
    /// RTT variation, µs.
    rttvar: u32 @ 72,
    snd_ssthresh: u32 @ 76,
    snd_cwnd: u32 @ 80,
    advmss: u32 @ 84,
    reordering: u32 @ 88,
    rcv_rtt: u32 @ 92,
    rcv_space: u32 @ 96,
    /// Retransmissions over the connection's life.
    total_retrans: u32 @ 100,
    /// Bytes per second.
    pacing_rate: u64 @ 104,
    max_pacing_rate: u64 @ 112,
    bytes_acked: u64 @ 120,
    bytes_received: u64 @ 128,
    segs_out: u32 @ 136,
    segs_in: u32 @ 140,
    notsent_bytes: u32 @ 144,
    /// Minimum RTT seen, µs.
    min_rtt: u32 @ 148,
    data_segs_in: u32 @ 152,
    data_segs_out: u32 @ 156,
    /// Bytes per second.
    delivery_rate: u64 @ 160,
    /// µs busy sending / limited by the peer's window / limited by the send buffer.
    busy_time: u64 @ 168,
    rwnd_limited: u64 @ 176,
    sndbuf_limited: u64 @ 184,
    delivered: u32 @ 192,
    delivered_ce: u32 @ 196,
    bytes_sent: u64 @ 200,
    bytes_retrans: u64 @ 208,
    dsack_dups: u32 @ 216,
    reord_seen: u32 @ 220,
    rcv_ooopack: u32 @ 224,
    snd_wnd: u32 @ 228,
    rcv_wnd: u32 @ 232,
    rehash: u32 @ 236,
    total_rto: u16 @ 240,
    total_rto_recoveries: u16 @ 242,
    total_rto_time: u32 @ 244,
}

impl fmt::Debug for TcpInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.fields()).finish()
    }
}

impl Serialize for TcpInfo {
    /// Every field sent, by name, plus the derived `rtt_ms`, `rttvar_ms`, `send_bps`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.fields() {
            m.serialize_entry(k, &v)?;
        }
        if let Some(v) = self.rtt_ms() {
            m.serialize_entry("rtt_ms", &v)?;
        }
        if let Some(v) = self.rttvar_ms() {
            m.serialize_entry("rttvar_ms", &v)?;
        }
        if let Some(v) = self.send_bps() {
            m.serialize_entry("send_bps", &v.round())?;
        }
        m.end()
    }
}

/// `ss`'s bandwidth: `2.1Gbps`, `980.5Mbps`, `16Kbps`.
struct Bw(f64);

impl fmt::Display for Bw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bps = self.0;
        if bps > 1e9 {
            write!(f, "{:.1}Gbps", bps / 1e9)
        } else if bps > 1e6 {
            write!(f, "{:.1}Mbps", bps / 1e6)
        } else if bps > 1e3 {
            write!(f, "{:.1}Kbps", bps / 1e3)
        } else {
            write!(f, "{bps}bps")
        }
    }
}

/// The words of an `ss -i` line, space-separated, appended to a buffer after `start`.
struct Words<'a> {
    buf: &'a mut String,
    start: usize,
}

impl Words<'_> {
    fn word(&mut self, w: impl fmt::Display) {
        use fmt::Write;
        if self.buf.len() > self.start {
            self.buf.push(' ');
        }
        let _ = write!(self.buf, "{w}");
    }
    /// `name:value` unless the value is absent or 0, as ss leaves those out.
    fn nz(&mut self, name: &str, v: Option<impl Into<u64>>) {
        if let Some(v) = v.map(Into::into).filter(|v| *v != 0) {
            self.word(format_args!("{name}:{v}"));
        }
    }
}

/// The `ss -i` line for a socket: its options, congestion control, then every non-zero
/// figure in `ss`'s order and spelling.
pub fn ss_info_line(t: &TcpInfo, cong: Option<&str>) -> String {
    let mut s = String::with_capacity(320);
    write_ss_info(&mut s, t, cong);
    s
}

/// [`ss_info_line`] appended to `buf` (a listing reuses one buffer for every socket).
pub fn write_ss_info(buf: &mut String, t: &TcpInfo, cong: Option<&str>) {
    let start = buf.len();
    let mut w = Words { buf, start };
    let opts = t.options().unwrap_or(0);
    for (bit, name) in [
        (1, "ts"),
        (2, "sack"),
        (8, "ecn"),
        (16, "ecnseen"),
        (32, "fastopen"),
    ] {
        if opts & bit != 0 {
            w.word(name);
        }
    }
    if let Some(c) = cong {
        w.word(c);
    }
    if opts & 4 != 0 {
        if let (Some(s), Some(r)) = (t.snd_wscale(), t.rcv_wscale()) {
            w.word(format_args!("wscale:{s},{r}"));
        }
    }
    let ms = |us: u32| us as f64 / 1000.0;
    if let Some(rto) = t.rto().filter(|v| *v != 0) {
        w.word(format_args!("rto:{}", ms(rto)));
    }
    w.nz("backoff", t.backoff());
    if let (Some(rtt), Some(var)) = (t.rtt().filter(|v| *v != 0), t.rttvar()) {
        w.word(format_args!("rtt:{}/{}", ms(rtt), ms(var)));
    }
    if let Some(ato) = t.ato().filter(|v| *v != 0) {
        w.word(format_args!("ato:{}", ms(ato)));
    }
    w.nz("mss", t.snd_mss());
    w.nz("pmtu", t.pmtu());
    w.nz("rcvmss", t.rcv_mss());
    w.nz("advmss", t.advmss());
    w.nz("cwnd", t.snd_cwnd());
    w.nz("ssthresh", t.ssthresh());
    w.nz("bytes_sent", t.bytes_sent());
    w.nz("bytes_retrans", t.bytes_retrans());
    w.nz("bytes_acked", t.bytes_acked());
    w.nz("bytes_received", t.bytes_received());
    w.nz("segs_out", t.segs_out());
    w.nz("segs_in", t.segs_in());
    w.nz("data_segs_out", t.data_segs_out());
    w.nz("data_segs_in", t.data_segs_in());
    if let Some(b) = t.send_bps() {
        w.word(format_args!("send {}", Bw(b)));
    }
    w.nz("lastsnd", t.last_data_sent());
    w.nz("lastrcv", t.last_data_recv());
    w.nz("lastack", t.last_ack_recv());
    if let Some(p) = t.pacing_rate().filter(|v| *v != 0 && *v != u64::MAX) {
        w.word(format_args!("pacing_rate {}", Bw(p as f64 * 8.0)));
    }
    if let Some(d) = t.delivery_rate().filter(|v| *v != 0) {
        w.word(format_args!("delivery_rate {}", Bw(d as f64 * 8.0)));
    }
    w.nz("delivered", t.delivered());
    w.nz("delivered_ce", t.delivered_ce());
    if t.delivery_rate_app_limited() == Some(true) {
        w.word("app_limited");
    }
    if let Some(b) = t.busy_time().filter(|v| *v != 0) {
        w.word(format_args!("busy:{}ms", b / 1000));
    }
    w.nz("unacked", t.unacked());
    let (r, rt) = (t.retrans().unwrap_or(0), t.total_retrans().unwrap_or(0));
    if r != 0 || rt != 0 {
        w.word(format_args!("retrans:{r}/{rt}"));
    }
    w.nz("lost", t.lost());
    // A listener's tcpi_sacked holds its backlog, not SACKed segments (ss leaves it out too).
    if t.state() != Some(10) {
        w.nz("sacked", t.sacked());
    }
    w.nz("dsack_dups", t.dsack_dups());
    if let Some(r) = t.reordering().filter(|r| *r != 3) {
        w.word(format_args!("reordering:{r}"));
    }
    w.nz("reord_seen", t.reord_seen());
    if let Some(r) = t.rcv_rtt().filter(|v| *v != 0) {
        w.word(format_args!("rcv_rtt:{}", ms(r)));
    }
    w.nz("rcv_space", t.rcv_space());
    w.nz("rcv_ssthresh", t.rcv_ssthresh());
    w.nz("notsent", t.notsent_bytes());
    if let Some(m) = t.min_rtt().filter(|v| *v != 0 && *v != u32::MAX) {
        w.word(format_args!("minrtt:{}", ms(m)));
    }
    w.nz("rcv_ooopack", t.rcv_ooopack());
    w.nz("snd_wnd", t.snd_wnd());
    w.nz("rcv_wnd", t.rcv_wnd());
}

/// Socket memory (`SK_MEMINFO_*`, linux/sock_diag.h), as many values as the kernel sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SkMemInfo {
    values: [u32; SkMemInfo::NAMES.len()],
    len: usize,
}

impl SkMemInfo {
    /// Field names, in the kernel's order, and ss's short labels.
    const NAMES: [(&'static str, &'static str); 9] = [
        ("rmem_alloc", "r"),
        ("rcvbuf", "rb"),
        ("wmem_alloc", "t"),
        ("sndbuf", "tb"),
        ("fwd_alloc", "f"),
        ("wmem_queued", "w"),
        ("optmem", "o"),
        ("backlog", "bl"),
        ("drops", "d"),
    ];

    pub fn from_bytes(b: &[u8]) -> SkMemInfo {
        let mut m = SkMemInfo::default();
        for (i, c) in b.chunks_exact(4).take(m.values.len()).enumerate() {
            m.values[i] = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
            m.len = i + 1;
        }
        m
    }

    /// `(name, value)` for each value sent.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, u32)> + '_ {
        SkMemInfo::NAMES
            .iter()
            .zip(self.values)
            .take(self.len)
            .map(|((n, _), v)| (*n, v))
    }
}

impl fmt::Display for SkMemInfo {
    /// `skmem:(r0,rb131072,t0,tb2626560,f0,w0,o0,bl0,d0)`, as `ss -m` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("skmem:(")?;
        for (i, ((_, short), v)) in SkMemInfo::NAMES
            .iter()
            .zip(self.values)
            .take(self.len)
            .enumerate()
        {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{short}{v}")?;
        }
        f.write_str(")")
    }
}

impl Serialize for SkMemInfo {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.len))?;
        for (k, v) in self.fields() {
            m.serialize_entry(k, &v)?;
        }
        m.end()
    }
}

/// The extension attributes of one reply, borrowed from the receive buffer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras<'a> {
    pub info: Option<TcpInfo>,
    /// Congestion control (`cubic`, `bbr`, …).
    pub cong: Option<&'a str>,
    pub skmem: Option<SkMemInfo>,
}

impl<'a> Extras<'a> {
    /// Reads the attributes that follow the 72-byte header.
    pub fn parse(attrs: &'a [u8]) -> Extras<'a> {
        let mut e = Extras::default();
        for (ty, p) in attributes(attrs) {
            match ty {
                INET_DIAG_INFO => e.info = Some(TcpInfo::from_bytes(p)),
                INET_DIAG_CONG => {
                    let end = p.iter().position(|b| *b == 0).unwrap_or(p.len());
                    e.cong = std::str::from_utf8(&p[..end])
                        .ok()
                        .filter(|s| !s.is_empty());
                }
                INET_DIAG_SKMEMINFO => e.skmem = Some(SkMemInfo::from_bytes(p)),
                _ => {}
            }
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ms_timer_is_spelled_like_ss() {
        assert_eq!(ss_ms_timer(119 * 60_000 + 59_000), "119min");
        assert_eq!(ss_ms_timer(90_000), "1min30sec");
        assert_eq!(ss_ms_timer(59_500), "59sec");
        assert_eq!(ss_ms_timer(5_200), "5.200ms");
        assert_eq!(ss_ms_timer(200), "200ms");
        assert_eq!(ss_ms_timer(0), "");
        let t = SocketTimer::from_header(2, 7_140_000, 0).unwrap();
        assert_eq!(t.to_string(), "timer:(keepalive,119min,0)");
        assert_eq!(
            SocketTimer::from_header(1, 204, 3).unwrap().to_string(),
            "timer:(on,204ms,3)"
        );
        assert_eq!(SocketTimer::from_header(0, 5, 0), None);
        assert_eq!(
            SocketTimer::from_header(9, 0, 0).unwrap().kind,
            TimerKind::Unknown
        );
    }

    fn info_bytes(len: usize) -> Vec<u8> {
        let mut b = vec![0u8; 248];
        b[5] = 1 | 2 | 4; // ts, sack, wscale
        b[6] = 7 | 7 << 4;
        b[68..72].copy_from_slice(&50_000u32.to_ne_bytes()); // rtt 50 ms
        b[72..76].copy_from_slice(&25_000u32.to_ne_bytes());
        b[16..20].copy_from_slice(&1448u32.to_ne_bytes());
        b[80..84].copy_from_slice(&10u32.to_ne_bytes());
        b[76..80].copy_from_slice(&0x7fff_ffffu32.to_ne_bytes());
        b[228..232].copy_from_slice(&65535u32.to_ne_bytes());
        b.truncate(len);
        b
    }

    #[test]
    fn tcp_info_fields_read_by_offset_and_short_structs_leave_the_rest_unknown() {
        let full = TcpInfo::from_bytes(&info_bytes(248));
        assert_eq!(full.rtt(), Some(50_000));
        assert_eq!(full.rtt_ms(), Some(50.0));
        assert_eq!(full.snd_cwnd(), Some(10));
        assert_eq!(full.ssthresh(), None, "infinite: still in slow start");
        assert_eq!(full.snd_wnd(), Some(65535));
        assert_eq!(full.total_rto_time(), Some(0));
        // An older kernel's 104-byte struct (Linux 3.x: up to tcpi_total_retrans).
        let old = TcpInfo::from_bytes(&info_bytes(104));
        assert_eq!(old.total_retrans(), Some(0));
        assert_eq!(old.pacing_rate(), None);
        assert_eq!(old.snd_wnd(), None);
        assert_eq!(
            old.fields().count(),
            6 + 24,
            "six bytes, then u32s from offset 8 to 100"
        );
        // Truncated mid-field: that field is unknown, not half-read.
        let cut = TcpInfo::from_bytes(&info_bytes(70));
        assert_eq!(cut.rcv_ssthresh(), Some(0));
        assert_eq!(cut.rtt(), None);
        assert_eq!(TcpInfo::from_bytes(&[]).state(), None);
        // Longer than we know: kept up to MAX, no panic.
        assert_eq!(TcpInfo::from_bytes(&[0u8; 1000]).len(), TcpInfo::MAX);
    }

    #[test]
    fn info_line_follows_ss_order_and_spelling() {
        let t = TcpInfo::from_bytes(&info_bytes(248));
        let line = ss_info_line(&t, Some("cubic"));
        assert!(
            line.starts_with("ts sack cubic wscale:7,7 rtt:50/25 mss:1448 cwnd:10 send 2.3Mbps"),
            "{line}"
        );
        assert!(line.ends_with("snd_wnd:65535"), "{line}");
        assert!(!line.contains("ssthresh"), "{line}");
    }

    #[test]
    fn skmem_prints_like_ss_and_takes_what_the_kernel_sent() {
        let vals: Vec<u8> = [0u32, 131072, 0, 2626560, 0, 0, 0, 0, 3]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        let m = SkMemInfo::from_bytes(&vals);
        assert_eq!(
            m.to_string(),
            "skmem:(r0,rb131072,t0,tb2626560,f0,w0,o0,bl0,d3)"
        );
        let old = SkMemInfo::from_bytes(&vals[..28]);
        assert_eq!(old.to_string(), "skmem:(r0,rb131072,t0,tb2626560,f0,w0,o0)");
        assert_eq!(old.fields().count(), 7);
    }

    #[test]
    fn attributes_walk_stops_at_malformed_lengths() {
        let mut b = Vec::new();
        b.extend_from_slice(&9u16.to_ne_bytes());
        b.extend_from_slice(&INET_DIAG_CONG.to_ne_bytes());
        b.extend_from_slice(b"bbr\0\0");
        b.extend_from_slice(&[0, 0, 0]); // pad to 12
        b.extend_from_slice(&200u16.to_ne_bytes()); // longer than what is left
        b.extend_from_slice(&INET_DIAG_INFO.to_ne_bytes());
        let e = Extras::parse(&b);
        assert_eq!(e.cong, Some("bbr"));
        assert!(e.info.is_none());
        assert_eq!(attributes(&[1, 0, 0]).count(), 0);
        assert_eq!(attributes(&[2, 0, 1, 0]).count(), 0, "length below header");
    }

    #[test]
    fn extension_mask_bits() {
        assert_eq!(Extensions::NONE.mask(), 0);
        let all = Extensions {
            info: true,
            memory: true,
        };
        assert_eq!(all.mask(), 1 << 1 | 1 << 3 | 1 << 6);
    }
}
