//! Loss-recovery and congestion-control counters flow into the endpoint's MIB as they change,
//! so they outlive the connection (Linux counts TcpExt events the same way).

use crate::cc::CongestionControl;
use crate::recovery::scoreboard::ScoreboardCounters;
use crate::recovery::sender::{LossRecovery, RecoveryCounters};
use crate::stats::Counter;
use crate::Stats;
use std::ops::{Deref, DerefMut};

/// A connection's loss recovery with the counters already reported to the endpoint.
pub(crate) struct Recovery {
    lr: LossRecovery,
    reported: Snapshot,
    /// `total` of `reported`.
    reported_total: u64,
}

#[derive(Default)]
struct Snapshot {
    rec: RecoveryCounters,
    sb: ScoreboardCounters,
    hystart_delay: u64,
    hystart_cwnd: u64,
    hystart_train: u64,
    hystart_train_cwnd: u64,
}

/// The sum of every counter a snapshot holds. Each only grows, so the sum is unchanged
/// exactly when none moved (short of 2^64 events): reading seventeen fields and adding them
/// costs less than building a snapshot and comparing it field by field after every ACK.
///
/// The controller is asked first: read before the (dynamic) call, the recovery counters were
/// kept on the stack across it (with `Recovery::report` out of line, about 35 instructions a
/// call together, 140 per connection in the lifecycle profile).
fn total(lr: &LossRecovery, cc: &dyn CongestionControl) -> u64 {
    let h = cc.counters().hystart;
    let r = lr.counters();
    let sb = lr.scoreboard().counters();
    [
        r.sack_recovery,
        r.reno_recovery,
        r.loss_probes,
        r.loss_probe_recovery,
        r.dsack_undo,
        r.ts_undo,
        r.loss_undo,
        r.fast_retrans,
        r.timeout_retrans,
        r.reordering,
        sb.dsack_recv,
        sb.dsack_ignored_old,
        sb.sack_discard,
        h.delay_detect,
        h.delay_cwnd,
        h.train_detect,
        h.train_cwnd,
    ]
    .iter()
    .fold(0u64, |a, &b| a.wrapping_add(b))
}

impl Snapshot {
    fn of(lr: &LossRecovery, cc: &dyn CongestionControl) -> Snapshot {
        let h = cc.counters().hystart;
        Snapshot {
            rec: lr.counters(),
            sb: lr.scoreboard().counters(),
            hystart_delay: h.delay_detect,
            hystart_cwnd: h.delay_cwnd,
            hystart_train: h.train_detect,
            hystart_train_cwnd: h.train_cwnd,
        }
    }
}

impl Recovery {
    pub(crate) fn storage_is_small(&self) -> bool {
        self.lr.storage_is_small()
    }

    /// Takes a finished connection's recovery storage (see [`super::spare::Spare`]).
    pub(crate) fn adopt_storage(&mut self, old: &mut Recovery) {
        self.lr.adopt_storage(&mut old.lr);
    }

    pub(crate) fn new(lr: LossRecovery) -> Recovery {
        Recovery {
            lr,
            reported: Snapshot::default(),
            reported_total: 0,
        }
    }

    /// Adds to `stats` what the counters gained since the last call.
    pub(crate) fn sync(&mut self, cc: &dyn CongestionControl, stats: &mut Stats) {
        // Called after every ACK and retransmission, and the counters rarely move: one sum
        // and one comparison instead of sixteen read-modify-writes into the MIB (it showed at
        // 5.8% of bulk transfer in the profile), or a snapshot compared field by field (2% of
        // the lifecycle benchmark).
        let sum = total(&self.lr, cc);
        if sum != self.reported_total {
            self.report(sum, cc, stats);
        }
    }

    /// [`Recovery::sync`] when a counter moved. Out of line so that the check alone keeps a
    /// small frame (see `total`).
    #[inline(never)]
    fn report(&mut self, sum: u64, cc: &dyn CongestionControl, stats: &mut Stats) {
        self.reported_total = sum;
        let now = Snapshot::of(&self.lr, cc);
        let before = std::mem::take(&mut self.reported);
        let d = |a: u64, b: u64| a.saturating_sub(b);
        let (n, b) = (&now.rec, &before.rec);
        stats[Counter::TCPSackRecovery] += d(n.sack_recovery, b.sack_recovery);
        stats[Counter::TCPRenoRecovery] += d(n.reno_recovery, b.reno_recovery);
        stats[Counter::TCPLossProbes] += d(n.loss_probes, b.loss_probes);
        stats[Counter::TCPLossProbeRecovery] += d(n.loss_probe_recovery, b.loss_probe_recovery);
        stats[Counter::TCPDSACKUndo] += d(n.dsack_undo, b.dsack_undo);
        stats[Counter::TCPFullUndo] += d(n.ts_undo, b.ts_undo);
        stats[Counter::TCPLossUndo] += d(n.loss_undo, b.loss_undo);
        stats[Counter::TCPSpuriousRTOs] += d(n.loss_undo, b.loss_undo);
        stats[Counter::TCPFastRetrans] += d(n.fast_retrans, b.fast_retrans);
        stats[Counter::TCPSlowStartRetrans] += d(n.timeout_retrans, b.timeout_retrans);
        stats[Counter::TCPSACKReorder] += d(n.reordering, b.reordering);
        let (n, b) = (&now.sb, &before.sb);
        stats[Counter::TCPDSACKRecv] += d(n.dsack_recv, b.dsack_recv);
        stats[Counter::TCPDSACKIgnoredOld] += d(n.dsack_ignored_old, b.dsack_ignored_old);
        stats[Counter::TCPSACKDiscard] += d(n.sack_discard, b.sack_discard);
        stats[Counter::TCPHystartDelayDetect] += d(now.hystart_delay, before.hystart_delay);
        stats[Counter::TCPHystartDelayCwnd] += d(now.hystart_cwnd, before.hystart_cwnd);
        stats[Counter::TCPHystartTrainDetect] += d(now.hystart_train, before.hystart_train);
        stats[Counter::TCPHystartTrainCwnd] += d(now.hystart_train_cwnd, before.hystart_train_cwnd);
        self.reported = now;
    }
}

impl Deref for Recovery {
    type Target = LossRecovery;
    fn deref(&self) -> &LossRecovery {
        &self.lr
    }
}

impl DerefMut for Recovery {
    fn deref_mut(&mut self) -> &mut LossRecovery {
        &mut self.lr
    }
}
