//! The tail loss probe's side of [`LossRecovery`] (RFC 8985 §7): when to arm the probe
//! timeout, what to send when it fires.

use super::LossRecovery;
use crate::recovery::tlp::{self, Probe};
use crate::time::Instant;
use tcpfsm_wire::SeqNum;

impl LossRecovery {
    /// When to arm the probe timeout instead of the RTO, after sending new data or an ACK
    /// that advanced SND.UNA (RFC 8985 §7.2); `None` keeps the RTO.
    pub fn pto_deadline(
        &self,
        now: Instant,
        srtt_us: Option<u64>,
        rto_expiry: Option<Instant>,
    ) -> Option<Instant> {
        self.pto_len_us(srtt_us)
            .map(|len| tlp::pto_expiry(now, len, rto_expiry))
    }

    /// [`Self::pto_deadline`]'s length from now, before the RTO caps it: `None` when no
    /// probe may be scheduled (RFC 8985 §7.2). The connection arms the timer from this.
    #[inline]
    pub(crate) fn pto_len_us(&self, srtt_us: Option<u64>) -> Option<u64> {
        let ok = self.cfg.tlp
            && self.sb.flight_size() > 0
            && tlp::may_schedule(self.cfg.sack, self.sb.sacked_segments(), self.in_recovery());
        ok.then(|| tlp::pto_len_us(srtt_us, self.sb.segments() == 1, self.max_ack_delay_us))
    }

    /// [`Self::pto_len_us`], kept for [`Self::pto_len_kept`] as `min(len, rto_us)` — the
    /// length while the probe timer is the one armed, whose RTO cap then runs from now too —
    /// when it holds while only new data is sent: more than one segment in flight.
    #[inline]
    pub(crate) fn pto_len_us_kept(&mut self, srtt_us: Option<u64>, rto_us: u64) -> Option<u64> {
        let len = self.pto_len_us(srtt_us);
        self.pto_kept = len
            .filter(|_| self.sb.segments() > 1)
            .and_then(|l| u32::try_from(l.min(rto_us)).ok());
        len
    }

    /// The length [`Self::pto_len_us_kept`] kept, if nothing here changed since.
    #[inline]
    pub(crate) fn pto_len_kept(&self) -> Option<u32> {
        self.pto_kept
    }

    /// The probe timeout fired (RFC 8985 §7.3). Send what it says (new data, or the
    /// highest-sequence segment with [`Retransmit::Probe`]) through [`Self::on_sent`], then
    /// call [`Self::on_probe_sent`]; re-arm the RTO either way.
    pub fn on_pto(&self, new_data: bool) -> Probe {
        self.tlp.on_pto(new_data)
    }

    /// The segment to retransmit as a probe: the highest-sequence segment sent.
    pub fn probe_segment(&self) -> Option<(SeqNum, u32)> {
        let nxt = self.sb.snd_nxt();
        let seg = self.sb.segment(nxt - 1)?;
        Some((seg.start, seg.end.diff(seg.start) as u32))
    }

    pub fn on_probe_sent(&mut self, is_retrans: bool) {
        self.tlp.on_probe_sent(self.sb.snd_nxt(), is_retrans);
    }
}
