//! Proportional Rate Reduction, RFC 9937 (December 2025, obsoleting the experimental RFC 6937):
//! during fast recovery, send in proportion to what the ACKs report delivered, so that the
//! flight ends recovery at `ssthresh` without a burst or a stall.
//!
//! # How to drive it (RFC 9937 §6)
//! 1. Entering fast recovery, after the congestion controller set `ssthresh`:
//!    [`Prr::start`] with SND.NXT − SND.UNA, the scoreboard's SACKed bytes and what the
//!    triggering ACK newly SACKed / cumulatively acknowledged (§6.1 RecoverFS).
//! 2. Every ACK during recovery, after the scoreboard processed it: [`Prr::on_ack`] with
//!    DeliveredData ([`super::scoreboard::AckOutcome::delivered_bytes`]), the new `pipe` and
//!    SafeACK (SND.UNA advanced and no further loss was marked). It returns the recovery
//!    `cwnd` = pipe + sndcnt; send (NextSeg) while `pipe < cwnd`.
//! 3. Every segment sent during recovery, new data or retransmission: [`Prr::on_sent`].
//! 4. Recovery ends: drop the `Prr`; the congestion controller sets `cwnd = ssthresh`.

/// Which reduction bound applies once `pipe ≤ ssthresh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Bound {
    /// RFC 9937: the conservative bound (CRB), plus one SMSS on a SafeACK (SSRB).
    #[default]
    Rfc9937,
    /// RFC 6937 PRR-CRB: never send more than was delivered during recovery.
    Conservative,
    /// RFC 6937 PRR-SSRB: slow-start-like catching up on every ACK.
    SlowStart,
}

/// PRR state for one recovery episode. Bytes throughout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prr {
    bound: Bound,
    mss: u32,
    ssthresh: u32,
    /// RecoverFS: what may be delivered during this episode (§6.1).
    recover_fs: u64,
    prr_delivered: u64,
    prr_out: u64,
    sndcnt: u32,
    cwnd: u32,
}

impl Prr {
    /// RFC 9937 §6.1 initialisation. `flight` is SND.NXT − SND.UNA after the triggering ACK,
    /// `sacked` the scoreboard's SACKed bytes after it, `newly_sacked` and `newly_acked` what
    /// that ACK added: bytes SACKed before recovery began are not expected to be delivered in
    /// it, so RecoverFS leaves them out.
    pub fn start(
        bound: Bound,
        ssthresh: u32,
        flight: u32,
        sacked: u32,
        newly_sacked: u32,
        newly_acked: u32,
        mss: u32,
    ) -> Prr {
        let mut recover_fs = u64::from(flight);
        recover_fs -= u64::from(sacked.saturating_sub(newly_sacked)).min(recover_fs);
        recover_fs += u64::from(newly_acked);
        Prr {
            bound,
            mss: mss.max(1),
            ssthresh,
            recover_fs: recover_fs.max(1),
            prr_delivered: 0,
            prr_out: 0,
            sndcnt: 0,
            cwnd: 0,
        }
    }

    pub fn recover_fs(&self) -> u64 {
        self.recover_fs
    }

    pub fn prr_delivered(&self) -> u64 {
        self.prr_delivered
    }

    pub fn prr_out(&self) -> u64 {
        self.prr_out
    }

    /// The last sndcnt computed.
    pub fn sndcnt(&self) -> u32 {
        self.sndcnt
    }

    /// The recovery window from the last ACK (pipe + sndcnt).
    pub fn cwnd(&self) -> u32 {
        self.cwnd
    }

    /// RFC 9937 §6.2 on each ACK in recovery. Returns the new `cwnd` (pipe + sndcnt), or
    /// `None` when the ACK delivered nothing ("if DeliveredData is 0, return"): the window is
    /// left as it was.
    pub fn on_ack(&mut self, delivered: u32, pipe: u32, safe_ack: bool) -> Option<u32> {
        if delivered == 0 {
            return None;
        }
        self.prr_delivered += u64::from(delivered);
        let (pipe64, ssthresh) = (u64::from(pipe), u64::from(self.ssthresh));
        let mss = u64::from(self.mss);
        let mut sndcnt = if pipe64 > ssthresh {
            // Proportional rate reduction; integer division rounding up.
            let out = (self.prr_delivered * ssthresh).div_ceil(self.recover_fs);
            out.saturating_sub(self.prr_out)
        } else {
            let owed = self.prr_delivered.saturating_sub(self.prr_out);
            let limit = match self.bound {
                Bound::Rfc9937 => owed.max(u64::from(delivered)) + if safe_ack { mss } else { 0 },
                Bound::Conservative => owed,
                Bound::SlowStart => owed.max(u64::from(delivered)) + mss,
            };
            // "Attempt to catch up, as permitted": never beyond ssthresh.
            limit.min(ssthresh - pipe64)
        };
        if self.prr_out == 0 && sndcnt < mss {
            // "Force a fast retransmit upon entering recovery." The RFC's test is sndcnt = 0,
            // written for segment units where the rounded-up proportional share is at least
            // one segment; in bytes a share below SMSS would delay the retransmission by an
            // ACK, so the first ACK of an episode always allows a full segment.
            sndcnt = mss;
        }
        self.sndcnt = sndcnt.min(u64::from(u32::MAX)) as u32;
        self.cwnd = pipe.saturating_add(self.sndcnt);
        Some(self.cwnd)
    }

    /// Data (new or retransmitted) sent during recovery: `prr_out += bytes`.
    pub fn on_sent(&mut self, bytes: u32) {
        self.prr_out += u64::from(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    /// RFC 6937 §5 / RFC 9937's example: a window of 20 segments, one lost, every further ACK
    /// delivers one segment; the sender sends each segment PRR allows and pipe follows.
    /// `unit` is the segment size: 1 reproduces the RFC's segment arithmetic exactly.
    /// Returns how many segments each ACK allowed.
    fn episode(ssthresh_segs: u32, acks: u32, unit: u32) -> Vec<u32> {
        let mut prr = Prr::start(
            Bound::Rfc9937,
            ssthresh_segs * unit,
            20 * unit,
            0,
            0,
            0,
            unit,
        );
        assert_eq!(prr.recover_fs(), u64::from(20 * unit));
        let mut pipe = 19 * unit; // the lost segment has left the pipe
        let mut sent = vec![];
        for _ in 0..acks {
            pipe -= unit; // one segment delivered
            let cwnd = prr.on_ack(unit, pipe, false).unwrap();
            let mut n = 0;
            while pipe + unit <= cwnd {
                prr.on_sent(unit);
                pipe += unit;
                n += 1;
            }
            sent.push(n);
        }
        sent
    }

    #[test]
    fn reno_reduction_sends_on_every_other_ack_rfc9937_example() {
        // While pipe > ssthresh (the first 16 ACKs here): the first ACK retransmits, then one
        // segment per two ACKs, ceil(k·10/20) after k ACKs.
        let sent = episode(10, 19, 1);
        assert_eq!(sent[..16], [1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0]);
        // Then pipe reaches ssthresh and the bound keeps it there.
        assert_eq!(sent[16..], [0, 1, 1]);
        // In bytes the shares below a segment carry over to the next ACK; the first ACK
        // still retransmits and the total is the same.
        let bytes = episode(10, 19, MSS);
        assert_eq!(bytes[0], 1);
        assert_eq!(bytes.iter().sum::<u32>(), sent.iter().sum::<u32>());
    }

    #[test]
    fn cubic_reduction_sends_on_seven_of_ten_acks_rfc9937_example() {
        // β = 0.7: ceil(k·14/20) segments after k ACKs while pipe > ssthresh.
        let sent = episode(14, 10, 1);
        assert_eq!(sent, [1, 1, 1, 0, 1, 1, 0, 1, 1, 0]);
        assert_eq!(sent.iter().sum::<u32>(), 7);
        assert_eq!(episode(14, 10, MSS).iter().sum::<u32>(), 7);
    }

    #[test]
    fn flight_ends_recovery_at_ssthresh_rfc9937_6() {
        // Once every segment of RecoverFS is delivered, the flight is ssthresh.
        for unit in [1, MSS] {
            let mut prr = Prr::start(Bound::Rfc9937, 7 * unit, 10 * unit, 0, 0, 0, unit);
            let mut pipe = 9 * unit;
            for _ in 0..10 {
                pipe -= unit;
                let cwnd = prr.on_ack(unit, pipe, false).unwrap();
                while pipe + unit <= cwnd {
                    prr.on_sent(unit);
                    pipe += unit;
                }
            }
            assert_eq!(pipe, 7 * unit);
        }
    }

    #[test]
    fn recover_fs_leaves_out_data_sacked_before_recovery_rfc9937_6_1() {
        // 20 segments out, 3 SACKed of which the triggering ACK SACKed 1: 18 remain to come.
        let prr = Prr::start(Bound::Rfc9937, 10 * MSS, 20 * MSS, 3 * MSS, MSS, 0, MSS);
        assert_eq!(prr.recover_fs(), u64::from(18 * MSS));
        // A triggering ACK that also advanced SND.UNA adds what it acknowledged.
        let prr = Prr::start(
            Bound::Rfc9937,
            10 * MSS,
            20 * MSS,
            3 * MSS,
            MSS,
            2 * MSS,
            MSS,
        );
        assert_eq!(prr.recover_fs(), u64::from(20 * MSS));
    }

    #[test]
    fn an_ack_delivering_nothing_changes_nothing_rfc9937_6_2() {
        let mut prr = Prr::start(Bound::Rfc9937, 10 * MSS, 20 * MSS, 0, 0, 0, MSS);
        assert_eq!(prr.on_ack(0, 18 * MSS, false), None);
        assert_eq!(prr.prr_delivered(), 0);
    }

    #[test]
    fn first_ack_forces_the_fast_retransmit_rfc9937_6_2() {
        // pipe = ssthresh: the bounds allow nothing, yet recovery must start with a
        // retransmission.
        let mut prr = Prr::start(Bound::Conservative, 10 * MSS, 20 * MSS, 0, 0, 0, MSS);
        assert_eq!(prr.on_ack(MSS, 10 * MSS, false), Some(11 * MSS));
        assert_eq!(prr.sndcnt(), MSS);
        prr.on_sent(MSS);
        assert_eq!(prr.on_ack(MSS, 10 * MSS, false), Some(10 * MSS));
    }

    /// Heavy loss: pipe has fallen below ssthresh. Returns sndcnt for one ACK delivering
    /// `delivered` with `owed` = prr_delivered − prr_out before it.
    fn below_ssthresh(bound: Bound, delivered: u32, safe: bool) -> u32 {
        let mut prr = Prr::start(bound, 10 * MSS, 20 * MSS, 0, 0, 0, MSS);
        prr.on_ack(2 * MSS, 15 * MSS, false).unwrap(); // proportional: ceil(2·10/20) = 1
        prr.on_sent(MSS); // prr_delivered − prr_out = 1 segment
        prr.on_ack(delivered, 4 * MSS, safe).unwrap();
        prr.sndcnt()
    }

    #[test]
    fn below_ssthresh_the_conservative_bound_sends_what_was_delivered_rfc6937_3_1() {
        // PRR-CRB: prr_delivered − prr_out = (2 + 2) − 1 = 3 segments.
        assert_eq!(below_ssthresh(Bound::Conservative, 2 * MSS, true), 3 * MSS);
    }

    #[test]
    fn below_ssthresh_slow_start_bound_adds_one_smss_rfc6937_3_1() {
        assert_eq!(below_ssthresh(Bound::SlowStart, 2 * MSS, false), 4 * MSS);
    }

    #[test]
    fn rfc9937_adds_the_smss_only_on_a_safe_ack_rfc9937_6_2() {
        assert_eq!(below_ssthresh(Bound::Rfc9937, 2 * MSS, false), 3 * MSS);
        assert_eq!(below_ssthresh(Bound::Rfc9937, 2 * MSS, true), 4 * MSS);
        // Never beyond ssthresh − pipe = 6 segments.
        assert_eq!(below_ssthresh(Bound::Rfc9937, 9 * MSS, true), 6 * MSS);
    }
}
