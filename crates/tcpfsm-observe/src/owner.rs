//! Why a socket shows no owning process: one spelling for every command and the exporter.
//!
//! `ss -p` prints nothing for a socket without an owner, which leaves the reader guessing
//! between two very different facts: the kernel holds the socket alone (no process could be
//! named, whoever runs the tool), or a process holds it that we may not look at. tcpfsm always
//! says which, with the words of [`NoOwner::label`].
//!
//! [`NO_OWNER`] is the one spelling of "no process holds this socket": every table row, JSON
//! field (`no_owner`), exporter label value (`process="no owner"`), `watch` panel, alert
//! matcher and dashboard text uses it; [`NoOwner::label`] adds the reason after it, and
//! [`NoOwner::key`] is the reason alone for machines.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The literal behind [`NO_OWNER`], so that [`NoOwner::label`]'s texts are built from it at
/// compile time (`concat!` takes only literals) rather than spelled again.
macro_rules! no_owner {
    () => {
        "no owner"
    };
    ($why:literal) => {
        concat!(no_owner!(), " (", $why, ")")
    };
}

/// How every command and the exporter spell a socket for which no process is named. Where the
/// reason is known, tables print [`NoOwner::label`] (this text, then the reason in brackets);
/// where several reasons are summed (the exporter's per-process series, `watch`), this alone.
pub const NO_OWNER: &str = no_owner!();

/// Why no process is named for a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NoOwner {
    /// No file refers to the socket (sock_diag inode 0): the kernel keeps it alone. TIME_WAIT
    /// and FIN_WAIT_2 minisockets, half-open SYN_RECEIVED request sockets and orphans (closed
    /// by their program, still finishing the close) are all like this. No process owns it.
    Kernel,
    /// A process may hold it, but some processes' `/proc/<pid>/fd` could not be read: they
    /// belong to another user and we are not root.
    Hidden,
    /// It had a file when the socket table was read, but no process held it by the time the
    /// descriptors were scanned: it was closed in between.
    Gone,
}

impl NoOwner {
    pub const ALL: [NoOwner; 3] = [NoOwner::Kernel, NoOwner::Hidden, NoOwner::Gone];

    /// What every table, listing and metric label prints in the owner's place.
    pub const fn label(self) -> &'static str {
        match self {
            NoOwner::Kernel => no_owner!("kernel"),
            NoOwner::Hidden => no_owner!("hidden: not root"),
            NoOwner::Gone => no_owner!("gone: closed meanwhile"),
        }
    }

    /// The machine spelling (JSON, metric label values): `kernel`, `hidden`, `gone`.
    pub const fn key(self) -> &'static str {
        match self {
            NoOwner::Kernel => "kernel",
            NoOwner::Hidden => "hidden",
            NoOwner::Gone => "gone",
        }
    }

    /// One sentence for a reader who wonders why.
    pub const fn explain(self) -> &'static str {
        match self {
            NoOwner::Kernel => {
                "no process holds it: the kernel keeps it alone (TIME_WAIT, half-open SYN_RECEIVED, or orphaned after close())"
            }
            NoOwner::Hidden => {
                "its owner may be another user's process, whose descriptors only root can read"
            }
            NoOwner::Gone => "it was closed between reading the socket table and the descriptors",
        }
    }
}

impl fmt::Display for NoOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keys_and_json_agree() {
        for n in NoOwner::ALL {
            assert_eq!(serde_json::to_value(n).unwrap(), n.key());
            assert!(n.label().starts_with(NO_OWNER), "{}", n.label());
            assert!(n.label().contains(n.key()), "{}", n.label());
        }
        assert_eq!(NO_OWNER, "no owner");
        assert_ne!(NoOwner::Kernel.label(), NoOwner::Hidden.label());
    }
}
