//! Loss detection from duplicate ACKs: fast retransmit and NewReno fast recovery (RFC 5681
//! §3.2, RFC 6582), limited transmit (RFC 3042), and the RFC 6582 §4 guard after a timeout.

use super::send::SendSide;
use crate::congestion::CongestionControl;
use tcpfsm_wire::SeqNum;

#[derive(Debug, Default)]
pub(crate) struct Loss {
    /// RFC 5681 §2 duplicate ACKs in a row.
    pub(crate) dup_acks: u32,
    /// RFC 6582 `recover`; `Some` while in fast recovery.
    recover: Option<SeqNum>,
    /// The highest sequence sent when the last RTO fired (RFC 6582 §4: no fast retransmit for
    /// duplicate ACKs of data sent before it).
    rto_recover: Option<SeqNum>,
    /// Our TSval when the last timeout retransmission went out: an echo older than this is
    /// ambiguous (Karn's rule for timestamps) and gives no RTT sample.
    pub(crate) rto_tsval: Option<u32>,
    /// One segment from SND.UNA is to be retransmitted now.
    pub(crate) fast_rtx: bool,
}

impl Loss {
    /// RFC 3042: the first two duplicate ACKs each let one new segment out beyond the
    /// congestion window.
    pub(crate) fn limited_transmit_allowance(&self, mss: u32) -> u32 {
        if self.recover.is_none() {
            self.dup_acks.min(2) * mss
        } else {
            0
        }
    }

    /// RFC 5681 §2 duplicate acknowledgment.
    pub(crate) fn on_dup_ack(&mut self, snd: &SendSide, cc: &mut dyn CongestionControl) {
        let mss = snd.mss as u32;
        self.dup_acks += 1;
        if self.recover.is_some() {
            cc.on_dup_ack_in_recovery(mss);
        } else if self.dup_acks == 3 && self.rto_recover.is_none_or(|r| snd.snd_una.gt(r)) {
            // RFC 6582 §3.2 step 2: enter fast retransmit / fast recovery.
            self.recover = Some(snd.snd_nxt);
            cc.on_enter_recovery(snd.flight_size(), mss);
            self.fast_rtx = true;
        }
    }

    /// New data acknowledged (after the send side advanced SND.UNA); `drained` data bytes.
    pub(crate) fn on_new_ack(
        &mut self,
        ack: SeqNum,
        drained: u32,
        snd: &SendSide,
        cc: &mut dyn CongestionControl,
    ) {
        let mss = snd.mss as u32;
        self.dup_acks = 0;
        match self.recover {
            Some(r) if ack.ge(r) => {
                self.recover = None;
                cc.on_exit_recovery(snd.flight_size(), mss);
            }
            Some(_) => {
                // RFC 6582 §3.2 step 5: a partial ACK retransmits the next hole at once.
                cc.on_partial_ack(drained, mss);
                self.fast_rtx = true;
            }
            None => cc.on_ack(drained, mss),
        }
        if self.rto_recover.is_some_and(|r| ack.gt(r)) {
            self.rto_recover = None;
            self.rto_tsval = None;
        }
    }

    /// The retransmission timer fired.
    pub(crate) fn on_rto(
        &mut self,
        snd: &SendSide,
        cc: &mut dyn CongestionControl,
        tsval: Option<u32>,
    ) {
        cc.on_rto(snd.in_flight(), snd.mss as u32);
        // RFC 6582 §4: after a timeout, duplicate ACKs for data sent before it do not start
        // another fast retransmit. A SYN timeout leaves no data behind, so it sets nothing.
        if snd.snd_una != snd.iss {
            self.rto_recover = Some(snd.snd_nxt);
            self.rto_tsval = tsval;
        }
        self.recover = None;
        self.dup_acks = 0;
        self.fast_rtx = false;
    }
}
