//! The link's draw. Loss is random, so two runs at one setting lose different numbers of
//! datagrams, and over a 30 s run (a few thousand to a few tens of thousands of segments) the
//! count of drops varies by several percent from run to run: retransmitted bytes as a share of
//! the stream move with it, whoever sends. This table shows, per run, what the link dropped
//! in the data direction and what the sender retransmitted on the wire for each drop. Every
//! drop needs one retransmission (a lost retransmission is a drop of its own), so one
//! retransmission per drop is the floor for any sender; more is repair that was not needed
//! (a spurious fast retransmit under reordering, go-back-N after a timeout).

use crate::{median, show, Conf, Record, RunOut};

/// Data-direction datagrams dropped per data segment sent, in %.
fn drawn(o: &RunOut) -> Option<f64> {
    let d = o.link_drops?;
    (o.data_segs > 0).then(|| d as f64 * 100.0 / o.data_segs as f64)
}

/// Wire retransmissions per datagram the link dropped.
fn per_drop(o: &RunOut) -> Option<f64> {
    let d = o.link_drops?;
    (d > 0).then(|| o.retrans_segs as f64 / d as f64)
}

/// Prints the table; nothing when no run knows its link's drops (older JSON lines).
pub fn table(confs: &[Conf], labels: &[String], records: &[Record]) {
    if !records.iter().any(|r| r.out.link_drops.is_some()) {
        return;
    }
    let of = |ci: usize, c: Conf, f: fn(&RunOut) -> Option<f64>| -> Vec<(u32, f64)> {
        records
            .iter()
            .filter(|r| r.cell == ci && r.conf == c)
            .filter_map(|r| Some((r.round, f(&r.out)?)))
            .collect()
    };
    let ratio = |ci: usize, num: Conf| -> Option<f64> {
        crate::paired_ratio(&of(ci, num, per_drop), &of(ci, Conf::LinuxLinux, per_drop))
    };
    println!();
    println!(
        "The link's draw, medians of the runs: data-direction datagrams the link dropped in % of \
         the data segments sent, and the sender's wire retransmissions per drop (1.00 is the \
         floor: each drop needs one retransmission); ratios are medians of per-round ratios."
    );
    println!();
    crate::header(
        confs,
        |c| format!(" {} drawn loss % | {} rtx per drop |", c.short(), c.short()),
        &["b/a rtx per drop", "c/a rtx per drop"],
    );
    for (ci, label) in labels.iter().enumerate() {
        let mut row = format!("| {label} |");
        for &c in confs {
            let med = |f| median(of(ci, c, f).into_iter().map(|x| x.1).collect());
            row += &format!(" {} | {} |", show(med(drawn), 2), show(med(per_drop), 2));
        }
        println!(
            "{row} {} | {} |",
            show(ratio(ci, Conf::OursLinux), 2),
            show(ratio(ci, Conf::LinuxOurs), 2)
        );
    }
}
