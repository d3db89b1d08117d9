//! `--by`: counts by owning process, local port, remote, or remote host.
//!
//! By local port, the ports a connect() picked from the ephemeral range
//! (`net.ipv4.ip_local_port_range`) go into one bucket: a busy client has thousands, one row
//! each would bury the service ports. A port in that range that something listens on is a
//! service port and keeps its own row.

use super::listing::addr;
use std::collections::{BTreeMap, HashSet};
use tcpfsm_host::{Attribution, Owner, SocketRow};
use tcpfsm_observe::PortRange;
use tcpfsm_states::Census;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    /// Owning process (pid and command)
    Process,
    /// Local port (ephemeral ports together in one row)
    LocalPort,
    /// Remote address and port
    Remote,
    /// Remote address only
    RemoteHost,
}

impl GroupBy {
    pub fn name(self) -> &'static str {
        match self {
            GroupBy::Process => "process",
            GroupBy::LocalPort => "local-port",
            GroupBy::Remote => "remote",
            GroupBy::RemoteHost => "remote-host",
        }
    }
}

/// The key of the ephemeral bucket: `ephemeral (32768-60999)`.
pub fn ephemeral_key(r: PortRange) -> String {
    format!("ephemeral ({}-{})", r.low, r.high)
}

/// What `--by local-port` needs to know about the host.
pub struct PortContext {
    pub ephemeral: Option<PortRange>,
    /// Local ports with a LISTEN socket.
    pub listening: HashSet<u16>,
}

/// Counts per group, largest first (then by key).
pub fn group(
    rows: &[SocketRow],
    by: GroupBy,
    a: Option<&Attribution>,
    ports: &PortContext,
) -> Vec<(String, Census)> {
    let mut m: BTreeMap<String, Census> = BTreeMap::new();
    let eph_key = ports.ephemeral.map(ephemeral_key);
    for r in rows {
        let key = match by {
            GroupBy::Process => match a.map(|a| a.owner(r.inode)) {
                Some(Owner::Processes(hs)) if !hs.is_empty() => {
                    format!("{}[{}]", hs[0].comm, hs[0].pid)
                }
                Some(Owner::None(why)) => why.label().to_string(),
                _ => "(unknown)".into(),
            },
            GroupBy::LocalPort => {
                let p = r.local.port();
                match (&eph_key, ports.ephemeral) {
                    (Some(k), Some(range))
                        if range.contains(p) && !ports.listening.contains(&p) =>
                    {
                        k.clone()
                    }
                    _ => p.to_string(),
                }
            }
            GroupBy::Remote => addr(&r.remote),
            GroupBy::RemoteHost => r.remote.ip().to_string(),
        };
        m.entry(key).or_default().add(r.state, 1);
    }
    let mut v: Vec<(String, Census)> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.total().cmp(&a.1.total()).then(a.0.cmp(&b.0)));
    v
}
