//! `--pcap FILE`: the simulated traffic as a capture Wireshark and tcpdump open. Every
//! segment is written once, as the sender put it on the wire (before the link lost, delayed,
//! duplicated or corrupted it), at its send time in virtual time since the run's start,
//! with tcpfsm-wire's writer (`LINKTYPE_RAW`: bare IPv4/IPv6 datagrams, nanosecond stamps).
//! Record N is the segment with `"frame": N` in the JSON trace.

use std::io::{self, Write};
use std::time::Duration;

use tcpfsm_wire::pcap::PcapWriter;

use crate::sink::Sink;
use crate::trace::TraceEvent;

/// Writes each datagram as it is sent.
pub struct PcapSink<W: Write> {
    writer: PcapWriter<W>,
    frames: u64,
}

impl<W: Write> PcapSink<W> {
    /// Writes the capture's global header at once.
    pub fn new(out: W) -> io::Result<PcapSink<W>> {
        Ok(PcapSink {
            writer: PcapWriter::new(out)?,
            frames: 0,
        })
    }

    /// Records written.
    pub fn frames(&self) -> u64 {
        self.frames
    }
}

impl<W: Write> Sink for PcapSink<W> {
    fn event(&mut self, _ev: &TraceEvent) -> io::Result<()> {
        Ok(())
    }

    fn datagram(&mut self, frame: u64, t_us: u64, bytes: &[u8]) -> io::Result<()> {
        self.frames += 1;
        debug_assert_eq!(frame, self.frames, "datagrams come in frame order");
        self.writer.write_packet(Duration::from_micros(t_us), bytes)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}
