//! One socket per line, the way `ss -tan` prints it, with `ss`'s spellings for the owners
//! (`users:(("nginx",pid=12,fd=7))`), timers (`-o`), socket memory (`-m`) and tcp_info (`-i`).

use super::json::{v, J};
use std::borrow::Cow;
use std::io::{self, Write};
use std::net::SocketAddr;
use tcpfsm_host::sockinfo::ss_info_line;
use tcpfsm_host::{Attribution, Owner, SkMemInfo, SocketRow, TcpInfo};

/// What to show besides addresses and queues.
#[derive(Debug, Clone, Copy, Default)]
pub struct Show {
    pub timers: bool,
    pub info: bool,
    pub memory: bool,
}

/// A listed socket and, boxed (a busy host lists 100,000 rows, sorted: they must stay small),
/// the extension data asked for.
pub struct Listed {
    pub row: SocketRow,
    pub ext: Option<Box<Ext>>,
}

/// What `-i` and `-m` asked the kernel for.
pub struct Ext {
    pub info: Option<TcpInfo>,
    pub cong: Option<String>,
    pub skmem: Option<SkMemInfo>,
}

/// Formats an address like ss: `127.0.0.1:80`, `[::1]:80`, `*:*` for the unspecified remote.
pub fn addr(a: &SocketAddr) -> String {
    if a.ip().is_unspecified() && a.port() == 0 {
        "*:*".into()
    } else if a.ip().is_unspecified() {
        format!("*:{}", a.port())
    } else {
        a.to_string()
    }
}

/// The owner column: `users:(("nginx",pid=12,fd=7),…)` as `ss -p` writes it, or why there is
/// none, in the one spelling every tcpfsm command uses; empty when owners were not resolved.
pub fn owner_text(a: Option<&Attribution>, inode: u64) -> Cow<'static, str> {
    match a.map(|a| a.owner(inode)) {
        None => Cow::Borrowed(""),
        Some(Owner::Processes(hs)) => {
            let users: Vec<String> = hs
                .iter()
                .map(|h| format!("({:?},pid={},fd={})", h.comm, h.pid, h.fd))
                .collect();
            Cow::Owned(format!("users:({})", users.join(",")))
        }
        Some(Owner::None(why)) => Cow::Borrowed(why.label()),
    }
}

fn owner_json(a: Option<&Attribution>, inode: u64) -> (J, J) {
    match a.map(|a| a.owner(inode)) {
        None => (v(serde_json::Value::Null), v(serde_json::Value::Null)),
        Some(Owner::Processes(hs)) => (
            J::A(
                hs.iter()
                    .map(|h| {
                        J::O(vec![
                            ("pid", v(h.pid)),
                            ("comm", v(h.comm.clone())),
                            ("fd", v(h.fd)),
                        ])
                    })
                    .collect(),
            ),
            v(serde_json::Value::Null),
        ),
        Some(Owner::None(why)) => (J::A(vec![]), v(why.key())),
    }
}

pub fn header(out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "{:<13} {:>7} {:>7} {:<40} {:<40} PROCESS",
        "STATE", "RECV-Q", "SEND-Q", "LOCAL", "REMOTE"
    )
}

/// One socket as text: the `ss -tan` columns, the owner, ` timer:(…)` with `-o`, and with
/// `-m`/`-i` a continuation line starting with a tab, as `ss` prints them.
pub fn text(
    out: &mut impl Write,
    l: &Listed,
    a: Option<&Attribution>,
    show: Show,
) -> io::Result<()> {
    let r = &l.row;
    let owner = owner_text(a, r.inode);
    let timer = r.timer.filter(|_| show.timers);
    // No trailing padding when nothing follows the remote address.
    let width = if owner.is_empty() && timer.is_none() {
        0
    } else {
        40
    };
    write!(
        out,
        "{:<13} {:>7} {:>7} {:<40} {:<width$}",
        r.state.name(),
        r.rx_queue,
        r.tx_queue,
        addr(&r.local),
        addr(&r.remote),
    )?;
    if !owner.is_empty() {
        write!(out, " {owner}")?;
    }
    match timer {
        Some(t) => writeln!(out, " {t}")?,
        None => writeln!(out)?,
    }
    let Some(x) = &l.ext else { return Ok(()) };
    let skmem = x.skmem.as_ref().filter(|_| show.memory);
    let info = x.info.as_ref().filter(|_| show.info);
    match (skmem, info) {
        (Some(m), Some(i)) => writeln!(out, "\t {m} {}", ss_info_line(i, x.cong.as_deref())),
        (Some(m), None) => writeln!(out, "\t {m}"),
        (None, Some(i)) => writeln!(out, "\t {}", ss_info_line(i, x.cong.as_deref())),
        (None, None) => Ok(()),
    }
}

/// One socket as a JSON object, fields in `ss` column order; `timer`, `info` and `skmem` only
/// when asked for (null when the kernel has none for this socket, e.g. a TIME_WAIT minisock).
pub fn json(l: &Listed, a: Option<&Attribution>, show: Show) -> J {
    let r = &l.row;
    let (procs, why) = owner_json(a, r.inode);
    let mut o = vec![
        ("state", v(r.state.name())),
        ("recv_q", v(r.rx_queue)),
        ("send_q", v(r.tx_queue)),
        ("local", v(r.local.to_string())),
        ("remote", v(r.remote.to_string())),
        ("processes", procs),
        ("unattributed", why),
        ("inode", v(r.inode)),
        ("uid", v(r.uid)),
    ];
    if show.timers {
        o.push((
            "timer",
            match r.timer {
                Some(t) => J::O(vec![
                    ("kind", v(t.kind.ss_name())),
                    ("expires_ms", v(t.expires_ms)),
                    ("retrans", v(t.retrans)),
                ]),
                None => v(serde_json::Value::Null),
            },
        ));
    }
    let x = l.ext.as_deref();
    if show.memory {
        o.push((
            "skmem",
            match x.and_then(|x| x.skmem.as_ref()) {
                Some(m) => J::K(m.fields().map(|(k, x)| (k.to_string(), v(x))).collect()),
                None => v(serde_json::Value::Null),
            },
        ));
    }
    if show.info {
        o.push((
            "info",
            match x.and_then(|x| x.info.as_ref().map(|i| (i, x.cong.as_ref()))) {
                Some((i, cong)) => {
                    let mut kv: Vec<(String, J)> = Vec::new();
                    if let Some(c) = cong {
                        kv.push(("cong".into(), v(c.clone())));
                    }
                    for (key, x) in [
                        ("rtt_ms", i.rtt_ms()),
                        ("rttvar_ms", i.rttvar_ms()),
                        ("send_bps", i.send_bps().map(f64::round)),
                    ] {
                        if let Some(x) = x {
                            kv.push((key.into(), v(x)));
                        }
                    }
                    if let Some(s) = i.ssthresh() {
                        kv.push(("ssthresh".into(), v(s)));
                    }
                    kv.extend(i.fields().map(|(k, x)| (k.to_string(), v(x))));
                    J::K(kv)
                }
                None => v(serde_json::Value::Null),
            },
        ));
    }
    J::O(o)
}
