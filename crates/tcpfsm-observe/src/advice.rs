//! Advice per verdict: the reference texts' causes and fixes, led by the program (or peer)
//! to fix when the sample names one.

use crate::culprits::{program, program_of};
use crate::rules::{Level, Rule};
use crate::snapshot::Snapshot;

/// The advice for a verdict: who to look at, then what to do.
pub(crate) fn advice(rule: Rule, level: Level, last: &Snapshot) -> String {
    let generic = generic(rule, level);
    match named(rule, level, last) {
        Some(lead) => format!("{lead} {generic}"),
        None => generic.to_string(),
    }
}

/// "Fix nginx (pid 4242), …": the program the numbers point at, when the sample knows it.
fn named(rule: Rule, level: Level, s: &Snapshot) -> Option<String> {
    if level == Level::Ok {
        return None;
    }
    match rule {
        Rule::CloseWaitLeak => {
            let b = s.close_wait_by_process.as_ref()?;
            match b.processes.as_slice() {
                [] if b.no_owner > 0 => Some(format!(
                    "The programs holding them are not known ({}).",
                    b.no_owner_reason.as_deref().unwrap_or(crate::NO_OWNER)
                )),
                [] => None,
                [top, rest @ ..] => {
                    let others = if rest.is_empty() {
                        String::new()
                    } else {
                        let names: Vec<String> = rest.iter().take(3).map(program_of).collect();
                        format!(" (also {})", names.join(", "))
                    };
                    Some(format!(
                        "Fix {}, which holds {} of them{others}.",
                        program_of(top),
                        top.count
                    ))
                }
            }
        }
        Rule::TimeWaitPressure => {
            let remote = s.time_wait_by_remote.as_ref()?.first()?.remote;
            match s.time_wait_remote_holders.as_deref() {
                Some([top, ..]) => Some(format!(
                    "Most TIME_WAIT are connections to {remote}, which {} opens ({} open now): make it reuse them.",
                    program_of(top),
                    top.count
                )),
                _ => Some(format!(
                    "Most TIME_WAIT are connections to {remote}; the program that opens them holds none open now."
                )),
            }
        }
        Rule::SynRecvFlood => {
            let l = s.syn_recv_by_listener.as_ref()?.first()?;
            Some(format!(
                "The half-open connections wait on {}{} ({} of them).",
                l.listener,
                l.owner
                    .as_ref()
                    .map(|o| format!(", served by {}", program(o)))
                    .unwrap_or_default(),
                l.count
            ))
        }
        Rule::ListenOverflow => {
            let l = s
                .listeners
                .as_ref()?
                .iter()
                .filter(|l| l.queue_len > 0)
                .max_by(|a, b| a.fill().total_cmp(&b.fill()))?;
            let who = l.owner.as_ref().map(program)?;
            Some(format!(
                "{who} accepts too slowly on {} ({} of {} waiting).",
                l.local, l.queue_len, l.backlog
            ))
        }
        Rule::FinWait2PileUp => {
            let mut lead = Vec::new();
            if let Some(r) = s.fin_wait2_by_remote.as_ref().and_then(|v| v.first()) {
                lead.push(format!(
                    "The peer at {} has not closed {} of them: look at the program there.",
                    r.remote, r.count
                ));
            }
            if let Some(p) = s
                .fin_wait2_by_process
                .as_ref()
                .and_then(|b| b.processes.first())
            {
                lead.push(format!(
                    "{} holds {} half-closed (shutdown, not closed).",
                    program_of(p),
                    p.count
                ));
            }
            (!lead.is_empty()).then(|| lead.join(" "))
        }
        Rule::RetransmitRate => None,
        Rule::FdExhaustion => {
            let top = s
                .fd_usage
                .as_ref()?
                .iter()
                .filter(|u| u.ratio().is_some())
                .max_by(|a, b| {
                    a.ratio()
                        .unwrap_or(0.0)
                        .total_cmp(&b.ratio().unwrap_or(0.0))
                })?;
            Some(format!(
                "{} (pid {}) has {} of its {} descriptors open.",
                top.comm,
                top.pid,
                top.open,
                top.limit.unwrap_or(0)
            ))
        }
    }
}

/// Advice, paraphrasing the reference texts' causes and fixes per state.
pub(crate) fn generic(rule: Rule, level: Level) -> &'static str {
    match (rule, level) {
        (Rule::CloseWaitLeak, Level::Ok) => {
            "CLOSE_WAIT should stay near zero; a count that keeps rising means a program is not closing sockets."
        }
        (Rule::CloseWaitLeak, _) => {
            "The peer has closed and the kernel is waiting on the local program, which never calls close() after reading end-of-file; the kernel has no timeout for this. Fix the named program: close the socket on EOF and on every error path (finally blocks, context managers, RAII). Restarting it only frees the descriptors until the leak refills them; tuning the kernel does not help."
        }
        (Rule::TimeWaitPressure, Level::Ok) => {
            "Many TIME_WAIT sockets can be normal on a busy active closer; they matter when they eat the ephemeral ports towards one destination."
        }
        (Rule::TimeWaitPressure, _) => {
            "TIME_WAIT belongs to whichever side closes first and holds its local port for 2×MSL. Reuse connections (keep-alive, pools) so fewer are opened; let clients close first where the protocol allows; for outgoing connections enable net.ipv4.tcp_tw_reuse (safe with timestamps) or widen net.ipv4.ip_local_port_range. Do not shorten TIME_WAIT or abort with SO_LINGER 0: that gives up the protection against stale segments."
        }
        (Rule::SynRecvFlood, Level::Ok) => {
            "SYN_RECEIVED is normally brief (one round trip); a large count suggests a SYN flood or ACKs that never come back."
        }
        (Rule::SynRecvFlood, _) => {
            "Half-open connections are piling up: likely a SYN flood or a path that loses the final ACKs. Turn on SYN cookies (net.ipv4.tcp_syncookies=1), raise net.ipv4.tcp_max_syn_backlog, lower net.ipv4.tcp_synack_retries so half-open entries die sooner, and rate-limit or filter SYNs upstream."
        }
        (Rule::ListenOverflow, Level::Ok) => {
            "Accept queues have room; overflows would mean the server accepts more slowly than clients connect."
        }
        (Rule::ListenOverflow, _) => {
            "Completed handshakes are waiting longer than the backlog allows and the kernel is dropping them: the server calls accept() too slowly. Accept faster (more acceptor threads, less work before accept), and raise the backlog passed to listen() together with net.core.somaxconn, which caps it."
        }
        (Rule::FinWait2PileUp, Level::Ok) => {
            "FIN_WAIT_2 is normally short; sockets stay there while the peer has not closed its side."
        }
        (Rule::FinWait2PileUp, _) => {
            "These connections were closed locally and acknowledged, but the peer application has not sent its FIN (a slow or leaking peer, or an intended half-close). Look at the remote side; for orphaned sockets lower net.ipv4.tcp_fin_timeout so the kernel gives up sooner."
        }
        (Rule::RetransmitRate, Level::Ok) => {
            "Retransmissions are within the normal share of segments sent."
        }
        (Rule::RetransmitRate, _) => {
            "A high share of segments is being sent again: packet loss or heavy reordering on the path, or an overloaded receiver. Check the network path (interfaces, drops, congestion) rather than the applications."
        }
        (Rule::FdExhaustion, Level::Ok) => {
            "Processes holding TCP sockets are well inside their open-file limits."
        }
        (Rule::FdExhaustion, _) => {
            "Sockets are files: a process at its open-file limit gets EMFILE and can no longer accept or connect. Look for leaked sockets (often CLOSE_WAIT) in the named process first; raise RLIMIT_NOFILE (ulimit -n, LimitNOFILE=) only if the usage is legitimate."
        }
    }
}
