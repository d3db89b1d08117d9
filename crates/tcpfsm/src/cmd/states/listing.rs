//! One socket per line, the way `ss -tan` prints it, with `ss`'s spellings for the owners
//! (`users:(("nginx",pid=12,fd=7))`), timers (`-o`), socket memory (`-m`) and tcp_info (`-i`).

use super::json::{v, J};
use std::fmt::Write;
use std::io;
use std::net::SocketAddr;
use tcpfsm_host::sockinfo::write_ss_info;
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
    let mut s = String::new();
    push_addr(&mut s, a);
    s
}

fn push_addr(buf: &mut String, a: &SocketAddr) {
    if a.ip().is_unspecified() && a.port() == 0 {
        buf.push_str("*:*");
    } else if a.ip().is_unspecified() {
        let _ = write!(buf, "*:{}", a.port());
    } else {
        let _ = write!(buf, "{a}");
    }
}

/// Pads what was written since `start` with spaces to `width` characters.
fn pad(buf: &mut String, start: usize, width: usize) {
    let n = buf[start..].chars().count();
    buf.extend(std::iter::repeat_n(' ', width.saturating_sub(n)));
}

/// The owner column: `users:(("nginx",pid=12,fd=7),…)` as `ss -p` writes it, or why there is
/// none, in the one spelling every tcpfsm command uses; nothing when owners were not
/// resolved. Returns whether anything was written.
fn push_owner(buf: &mut String, a: Option<&Attribution>, inode: u64) -> bool {
    match a.map(|a| a.owner(inode)) {
        None => false,
        Some(Owner::Processes(hs)) => {
            buf.push_str("users:(");
            for (i, h) in hs.iter().enumerate() {
                if i > 0 {
                    buf.push(',');
                }
                let _ = write!(buf, "({:?},pid={},fd={})", h.comm, h.pid, h.fd);
            }
            buf.push(')');
            true
        }
        Some(Owner::None(why)) => {
            buf.push_str(why.label());
            true
        }
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

pub fn header(out: &mut impl io::Write) -> io::Result<()> {
    writeln!(
        out,
        "{:<13} {:>7} {:>7} {:<40} {:<40} PROCESS",
        "STATE", "RECV-Q", "SEND-Q", "LOCAL", "REMOTE"
    )
}

/// One socket as text: the `ss -tan` columns, the owner, ` timer:(…)` with `-o`, and with
/// `-m`/`-i` a continuation line starting with a tab, as `ss` prints them. The line is built
/// in `buf` (reused across rows: a listing of 100,000 sockets allocates nothing per row) and
/// written at once.
pub fn text(
    out: &mut impl io::Write,
    l: &Listed,
    a: Option<&Attribution>,
    show: Show,
    buf: &mut String,
) -> io::Result<()> {
    let r = &l.row;
    buf.clear();
    let _ = write!(
        buf,
        "{:<13} {:>7} {:>7} ",
        r.state.name(),
        r.rx_queue,
        r.tx_queue
    );
    let at = buf.len();
    push_addr(buf, &r.local);
    pad(buf, at, 40);
    buf.push(' ');
    let at = buf.len();
    push_addr(buf, &r.remote);
    let remote_end = buf.len();
    pad(buf, at, 40);
    buf.push(' ');
    let owned = push_owner(buf, a, r.inode);
    let timer = r.timer.filter(|_| show.timers);
    if let Some(t) = timer {
        if owned {
            buf.push(' ');
        }
        let _ = write!(buf, "{t}");
    } else if !owned {
        // No trailing padding when nothing follows the remote address.
        buf.truncate(remote_end);
    }
    buf.push('\n');
    if let Some(x) = &l.ext {
        let skmem = x.skmem.as_ref().filter(|_| show.memory);
        let info = x.info.as_ref().filter(|_| show.info);
        if skmem.is_some() || info.is_some() {
            buf.push('\t');
            if let Some(m) = skmem {
                let _ = write!(buf, " {m}");
            }
            if let Some(i) = info {
                buf.push(' ');
                write_ss_info(buf, i, x.cong.as_deref());
            }
            buf.push('\n');
        }
    }
    out.write_all(buf.as_bytes())
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
        ("no_owner", why),
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
