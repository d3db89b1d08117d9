//! What `tcpfsm counters` remembers between runs, like nstat's history file: the values of the
//! last run per network namespace, so the next run shows what changed since.
//!
//! The file is JSON, in `$TCPFSM_COUNTERS_HISTORY` if set, else `$XDG_RUNTIME_DIR/tcpfsm-counters.json`
//! (a per-user directory), else `/tmp/tcpfsm-counters.<uid>`. It is replaced by rename, so a
//! reader never sees half of it and a symlink planted in /tmp is replaced, not followed. A
//! history from another boot (the kernel's boot_id differs) is ignored: counters restarted.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    pub version: u32,
    /// By network namespace inode (as /proc/thread-self/ns/net shows it).
    pub namespaces: BTreeMap<String, Sample>,
}

/// One namespace's values at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub boot_id: String,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// By nstat name.
    pub values: BTreeMap<String, u64>,
}

/// Where the history lives (see the module docs).
pub fn path(env: impl Fn(&str) -> Option<String>, uid: u32) -> PathBuf {
    if let Some(p) = env("TCPFSM_COUNTERS_HISTORY").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(d) = env("XDG_RUNTIME_DIR").filter(|d| Path::new(d).is_dir()) {
        return Path::new(&d).join("tcpfsm-counters.json");
    }
    PathBuf::from(format!("/tmp/tcpfsm-counters.{uid}"))
}

/// The current boot (changes at every reboot).
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The calling thread's network namespace, as a key.
pub fn netns_key() -> String {
    std::fs::metadata("/proc/thread-self/ns/net")
        .map(|m| m.ino().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Reads the history; a missing file is an empty history. A file that is unreadable, not
/// ours, or not a history is reported (in words, naming the file) and treated as empty: the
/// run then shows values since boot, as the first run does.
pub fn load(path: &Path, uid: u32) -> (History, Option<String>) {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (History::default(), None),
        Err(e) => {
            return (
                History::default(),
                Some(format!("cannot read {}: {e}", path.display())),
            )
        }
    };
    if !meta.is_file() || meta.uid() != uid {
        return (
            History::default(),
            Some(format!(
                "ignoring {}: not a regular file owned by uid {uid}",
                path.display()
            )),
        );
    }
    match std::fs::read_to_string(path).map(|t| serde_json::from_str::<History>(&t)) {
        Ok(Ok(h)) => (h, None),
        Ok(Err(e)) => (
            History::default(),
            Some(format!(
                "ignoring {}: not a tcpfsm counters history ({e})",
                path.display()
            )),
        ),
        Err(e) => (
            History::default(),
            Some(format!("cannot read {}: {e}", path.display())),
        ),
    }
}

/// Writes the history: a new file next to it, then renamed over it.
pub fn save(path: &Path, h: &History) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("tcpfsm-counters"),
        std::process::id()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let r = f
        .write_all(serde_json::to_string(h)?.as_bytes())
        .and_then(|_| f.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_prefers_the_override_then_the_runtime_dir_then_tmp() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            path(
                env(&[
                    ("TCPFSM_COUNTERS_HISTORY", "/x/h.json"),
                    ("XDG_RUNTIME_DIR", "/tmp")
                ]),
                5
            ),
            PathBuf::from("/x/h.json")
        );
        assert_eq!(
            path(env(&[("XDG_RUNTIME_DIR", "/tmp")]), 5),
            PathBuf::from("/tmp/tcpfsm-counters.json")
        );
        assert_eq!(
            path(env(&[("XDG_RUNTIME_DIR", "/nonexistent-dir")]), 5),
            PathBuf::from("/tmp/tcpfsm-counters.5")
        );
    }

    #[test]
    fn save_then_load_round_trips_and_garbage_is_reported() {
        let dir = std::env::temp_dir().join(format!("tcpfsm-hist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("h.json");
        let uid = std::fs::metadata(&dir).unwrap().uid();
        let mut h = History {
            version: 1,
            ..History::default()
        };
        h.namespaces.insert(
            "1".into(),
            Sample {
                boot_id: "b".into(),
                time_ms: 7,
                values: [("TcpInSegs".to_string(), 9)].into(),
            },
        );
        save(&p, &h).unwrap();
        let (back, warn) = load(&p, uid);
        assert_eq!(warn, None);
        assert_eq!(back.namespaces["1"], h.namespaces["1"]);
        std::fs::write(&p, "not json").unwrap();
        let (back, warn) = load(&p, uid);
        assert!(back.namespaces.is_empty());
        assert!(warn.unwrap().contains("not a tcpfsm counters history"));
        let (_, warn) = load(&p, uid + 1);
        assert!(warn.unwrap().contains("owned by uid"));
        let (none, warn) = load(&dir.join("absent"), uid);
        assert!(none.namespaces.is_empty() && warn.is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
