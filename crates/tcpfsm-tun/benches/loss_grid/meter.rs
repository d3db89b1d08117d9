//! Retransmitted bytes as seen on the wire, the same way for every sender: a payload byte at a
//! sequence number the flow has sent before is a retransmission (what `tcpi_bytes_retrans`
//! counts inside Linux; the kernel's own figure is read too, as a cross-check).

use std::collections::HashMap;
use std::net::SocketAddr;

/// One flow's highest sequence number sent so far (its end), per (src, dst).
#[derive(Debug, Default)]
pub struct Meter {
    high: HashMap<(SocketAddr, SocketAddr), u32>,
    pub data_bytes: u64,
    /// Data-bearing segments seen (originals and retransmissions).
    pub data_segs: u64,
    pub retrans_bytes: u64,
    pub retrans_segs: u64,
    /// Datagrams the link dropped, where the caller sees fates (the simulator).
    pub dropped_segs: u64,
}

/// `a < b` in sequence space (RFC 9293 §3.4: modulo 2^32).
fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

impl Meter {
    /// A segment of `len` payload bytes starting at `seq`.
    pub fn observe(&mut self, src: SocketAddr, dst: SocketAddr, seq: u32, len: u32) {
        if len == 0 {
            return;
        }
        self.data_bytes += u64::from(len);
        self.data_segs += 1;
        let end = seq.wrapping_add(len);
        match self.high.get_mut(&(src, dst)) {
            None => {
                self.high.insert((src, dst), end);
            }
            Some(high) => {
                if seq_lt(seq, *high) {
                    let already = if seq_lt(end, *high) {
                        len
                    } else {
                        high.wrapping_sub(seq)
                    };
                    self.retrans_bytes += u64::from(already);
                    self.retrans_segs += 1;
                }
                if seq_lt(*high, end) {
                    *high = end;
                }
            }
        }
    }

    /// A whole IP datagram (anything that is not valid TCP is ignored).
    pub fn observe_datagram(&mut self, pkt: &[u8]) {
        if let Ok(p) = tcpfsm_tun::wire::parse_ip_tcp(pkt) {
            self.observe(
                SocketAddr::new(p.src, p.tcp.src_port),
                SocketAddr::new(p.dst, p.tcp.dst_port),
                p.tcp.seq.0,
                p.tcp.payload.len() as u32,
            );
        }
    }
}
