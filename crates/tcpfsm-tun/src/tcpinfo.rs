//! The kernel's own view of one of its TCP sockets: `getsockopt(TCP_INFO)`, the numbers `ss -ti`
//! prints (RTT, retransmitted bytes, D-SACKs, reordering), for tests and benchmarks that put
//! the kernel's TCP next to ours.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// The fields of Linux's `struct tcp_info` (`<linux/tcp.h>`) we compare against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct KernelTcpInfo {
    /// Smoothed RTT (`tcpi_rtt`) and its variation.
    pub rtt: Duration,
    pub rttvar: Duration,
    /// The smallest RTT seen (`tcpi_min_rtt`).
    pub min_rtt: Duration,
    pub snd_cwnd: u32,
    /// Slow-start threshold in segments (`tcpi_snd_ssthresh`; `0x7fffffff` until the first
    /// reduction, as `ss -ti` leaves it out then).
    pub snd_ssthresh: u32,
    pub snd_mss: u32,
    /// The congestion-avoidance state (`tcpi_ca_state`: 0 Open, 1 Disorder, 2 CWR,
    /// 3 Recovery, 4 Loss).
    pub ca_state: u8,
    /// Segments sent and not yet cumulatively acknowledged, SACKed, marked lost, and
    /// retransmitted and still out (`tcpi_unacked`, `tcpi_sacked`, `tcpi_lost`, `tcpi_retrans`):
    /// the kernel's packets in flight are unacked − sacked − lost + retrans.
    pub unacked: u32,
    pub sacked: u32,
    pub lost: u32,
    pub retrans: u32,
    /// Segments retransmitted over the connection's life (`tcpi_total_retrans`).
    pub total_retrans: u32,
    /// Payload bytes sent, retransmissions included (`tcpi_bytes_sent`), and retransmitted
    /// (`tcpi_bytes_retrans`, what `ss -ti` shows as `bytes_retrans`).
    pub bytes_sent: u64,
    pub bytes_retrans: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    /// D-SACK blocks received (`tcpi_dsack_dups`) and reordering events seen (`tcpi_reord_seen`).
    pub dsack_dups: u32,
    pub reord_seen: u32,
    /// The current reordering degree estimate (`tcpi_reordering`).
    pub reordering: u32,
}

/// Reads `TCP_INFO` of a kernel TCP socket (`std::net::TcpStream`, `socket2::Socket`, …).
pub fn kernel_tcp_info(sock: &impl AsRawFd) -> io::Result<KernelTcpInfo> {
    // SAFETY: an all-zero tcp_info is a valid value of a plain C struct.
    let mut ti: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `ti` is writable for `len` bytes; the kernel writes at most that and sets `len`.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut ti as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let us = |v: u32| Duration::from_micros(u64::from(v));
    Ok(KernelTcpInfo {
        rtt: us(ti.tcpi_rtt),
        rttvar: us(ti.tcpi_rttvar),
        min_rtt: us(ti.tcpi_min_rtt),
        snd_cwnd: ti.tcpi_snd_cwnd,
        snd_ssthresh: ti.tcpi_snd_ssthresh,
        snd_mss: ti.tcpi_snd_mss,
        ca_state: ti.tcpi_ca_state,
        unacked: ti.tcpi_unacked,
        sacked: ti.tcpi_sacked,
        lost: ti.tcpi_lost,
        retrans: ti.tcpi_retrans,
        total_retrans: ti.tcpi_total_retrans,
        bytes_sent: ti.tcpi_bytes_sent,
        bytes_retrans: ti.tcpi_bytes_retrans,
        bytes_acked: ti.tcpi_bytes_acked,
        bytes_received: ti.tcpi_bytes_received,
        dsack_dups: ti.tcpi_dsack_dups,
        reord_seen: ti.tcpi_reord_seen,
        reordering: ti.tcpi_reordering,
    })
}
