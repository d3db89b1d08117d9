//! `sample` and `diagnose`: a host's endpoint seen as tcpfsm-observe sees a Linux host.

use tcpfsm_observe::{Level, Snapshot};
use tcpfsm_states::State;

use super::Runner;
use crate::trace::NoteKind;

impl Runner<'_> {
    /// A census sample of a host for tcpfsm-observe, with the counters and settings it has.
    pub(super) fn snapshot(&self, host: usize) -> Snapshot {
        let ep = self.net.endpoint(host);
        let st = ep.stats();
        let cfg = ep.config();
        let census = ep.census();
        let mut s = Snapshot {
            time_ms: self.net.now().as_micros() / 1000,
            census,
            ..Snapshot::default()
        };
        // The engine's counters are the same MIB the live host parses /proc into.
        s.counters = Some(*st);
        // TIME_WAIT grouped by remote, counting those holding a port of the ephemeral range
        // (what runs out when one client talks to one server), when the endpoint lists them.
        let mut by_remote: Vec<tcpfsm_observe::RemoteCount> = Vec::new();
        for c in ep
            .connections()
            .iter()
            .filter(|c| c.state == State::TimeWait)
        {
            let eph =
                (cfg.ephemeral_ports.0..=cfg.ephemeral_ports.1).contains(&c.tuple.local.port());
            match by_remote.iter_mut().find(|g| g.remote == c.tuple.remote) {
                Some(g) => {
                    g.count += 1;
                    g.ephemeral_local += u64::from(eph);
                }
                None => by_remote.push(tcpfsm_observe::RemoteCount {
                    remote: c.tuple.remote,
                    count: 1,
                    ephemeral_local: u64::from(eph),
                }),
            }
        }
        if !by_remote.is_empty() {
            by_remote.sort_by(|a, b| b.count.cmp(&a.count).then(a.remote.cmp(&b.remote)));
            s.time_wait_by_remote = Some(by_remote);
        }
        s.sysctls = tcpfsm_observe::Sysctls {
            ephemeral_ports: Some(tcpfsm_observe::PortRange {
                low: cfg.ephemeral_ports.0,
                high: cfg.ephemeral_ports.1,
            }),
            max_tw_buckets: Some(u64::from(cfg.max_tw_buckets)),
            fin_timeout_secs: Some(cfg.fin_timeout.as_secs()),
            syncookies: Some(match cfg.syncookies {
                tcpfsm_core::SynCookies::Off => 0,
                tcpfsm_core::SynCookies::OnOverflow => 1,
                tcpfsm_core::SynCookies::Always => 2,
            }),
            max_syn_backlog: Some(u64::from(cfg.max_syn_backlog)),
            somaxconn: Some(u64::from(cfg.somaxconn)),
            tw_reuse: Some(match cfg.tw_reuse {
                tcpfsm_core::TwReuse::Off => 0,
                tcpfsm_core::TwReuse::On => 1,
                tcpfsm_core::TwReuse::LoopbackOnly => 2,
            }),
        };
        s
    }

    pub(super) fn diagnose(&mut self, host: usize) {
        let mut samples = self.samples.get(&host).cloned().unwrap_or_default();
        let now = self.snapshot(host);
        if samples.last().map(|s| s.census) != Some(now.census) {
            samples.push(now);
        }
        let verdicts = tcpfsm_observe::diagnose(&samples, &tcpfsm_observe::Thresholds::default());
        let mut any = false;
        for v in verdicts.iter().filter(|v| v.level != Level::Ok) {
            any = true;
            let mut text = format!("{}: {} — {}", v.rule.title(), v.level.name(), v.summary);
            if !v.advice.is_empty() {
                text.push_str(&format!(". {}", v.advice));
            }
            self.net.note(
                NoteKind::Diagnosis {
                    host,
                    rule: v.rule.name().to_string(),
                    severity: v.level.name().to_string(),
                },
                text,
            );
        }
        if !any {
            self.net.note(
                NoteKind::Diagnosis {
                    host,
                    rule: "all".into(),
                    severity: "ok".into(),
                },
                format!("all {} diagnosis rules ok", verdicts.len()),
            );
        }
    }
}
