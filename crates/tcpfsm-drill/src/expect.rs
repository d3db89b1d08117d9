//! The expectations file: scripts known to fail on a stack, each with its reason.
//!
//! ```toml
//! [[expect]]
//! script = "freebsd-tcp-testsuite/state-event-engine/rcv-rst-close-wait/x-ipv4.pkt"
//! stacks = ["engine", "linux"]
//! reason = "FreeBSD reports ECONNRESET; Linux reports EPIPE (tcp_reset), seen with --stack linux"
//!
//! [[expect]]
//! scripts = ["drill/matrix/a.pkt", "drill/matrix/b.pkt"]
//! stacks = ["engine"]
//! reason = "one cause, several scripts"
//! ```
//!
//! Paths are relative to the file's directory; a value ending in `/` covers every script
//! below that directory. A listed script that fails is an expected failure (`XFAIL`); one that
//! passes is reported (`XPASS`) and counts as a failure, so that a stale entry is removed when
//! the stack is fixed.

use crate::StackKind;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The file name looked for next to the scripts (and in their parent directories).
pub const FILE_NAME: &str = "drill-expectations.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default)]
    script: Option<String>,
    #[serde(default)]
    scripts: Vec<String>,
    stacks: Vec<String>,
    reason: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    expect: Vec<Entry>,
}

/// One expected failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// Absolute (or as-given) path of the script, or of a directory when `prefix`.
    pub path: PathBuf,
    pub prefix: bool,
    pub stacks: Vec<StackKind>,
    pub reason: String,
}

/// The expectations in force.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    entries: Vec<Expectation>,
}

fn norm(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

impl Expectations {
    /// Reads a file; errors name the file (and TOML's line/column).
    pub fn load(path: &Path) -> Result<Expectations, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file: File = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut entries = Vec::new();
        for e in file.expect {
            let paths: Vec<String> = match (&e.script, e.scripts.is_empty()) {
                (Some(one), true) => vec![one.clone()],
                (None, false) => e.scripts.clone(),
                _ => {
                    return Err(format!(
                        "{}: an entry needs `script` or `scripts` (one of them)",
                        path.display()
                    ))
                }
            };
            let first = paths[0].clone();
            let mut stacks = Vec::new();
            for s in &e.stacks {
                stacks.push(StackKind::parse(s).ok_or_else(|| {
                    format!(
                        "{}: {first}: unknown stack {s:?} (engine, tun or linux)",
                        path.display()
                    )
                })?);
            }
            if e.reason.trim().is_empty() {
                return Err(format!(
                    "{}: {first}: every expected failure needs a reason",
                    path.display()
                ));
            }
            for script in paths {
                let prefix = script.ends_with('/');
                let full = norm(&dir.join(script.trim_end_matches('/')));
                if !full.exists() {
                    return Err(format!("{}: {script} does not exist", path.display()));
                }
                entries.push(Expectation {
                    path: full,
                    prefix,
                    stacks: stacks.clone(),
                    reason: e.reason.clone(),
                });
            }
        }
        Ok(Expectations { entries })
    }

    /// Adds the entries of another file.
    pub fn extend(&mut self, other: Expectations) {
        self.entries.extend(other.entries);
    }

    /// The nearest expectations file at or above `start`.
    pub fn discover(start: &Path) -> Option<PathBuf> {
        let start = norm(start);
        let mut dir: Option<&Path> = Some(if start.is_dir() {
            start.as_path()
        } else {
            start.parent()?
        });
        while let Some(d) = dir {
            let f = d.join(FILE_NAME);
            if f.is_file() {
                return Some(f);
            }
            dir = d.parent();
        }
        None
    }

    /// Why `script` is expected to fail on `stack`, if it is.
    pub fn reason(&self, script: &Path, stack: StackKind) -> Option<&str> {
        let p = norm(script);
        self.entries
            .iter()
            .find(|e| {
                e.stacks.contains(&stack)
                    && if e.prefix {
                        p.starts_with(&e.path)
                    } else {
                        p == e.path
                    }
            })
            .map(|e| e.reason.as_str())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "drill-expect-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("a.pkt"), "").unwrap();
        std::fs::write(d.join("sub/b.pkt"), "").unwrap();
        d
    }

    #[test]
    fn entries_match_files_and_directories_per_stack() {
        let d = dir();
        std::fs::write(
            d.join(FILE_NAME),
            "[[expect]]\nscript = \"a.pkt\"\nstacks = [\"engine\"]\nreason = \"r1\"\n\n[[expect]]\nscripts = [\"sub/\"]\nstacks = [\"linux\"]\nreason = \"r2\"\n",
        )
        .unwrap();
        let found = Expectations::discover(&d.join("sub/b.pkt")).unwrap();
        let e = Expectations::load(&found).unwrap();
        assert_eq!(e.reason(&d.join("a.pkt"), StackKind::Engine), Some("r1"));
        assert_eq!(e.reason(&d.join("a.pkt"), StackKind::Linux), None);
        assert_eq!(e.reason(&d.join("sub/b.pkt"), StackKind::Linux), Some("r2"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let d = dir();
        let f = d.join(FILE_NAME);
        let load = |text: &str| {
            std::fs::write(&f, text).unwrap();
            Expectations::load(&f).unwrap_err()
        };
        assert!(
            load("[[expect]]\nscript = \"a.pkt\"\nstacks = [\"bsd\"]\nreason = \"r\"\n")
                .contains("unknown stack \"bsd\"")
        );
        assert!(
            load("[[expect]]\nscript = \"a.pkt\"\nstacks = [\"engine\"]\nreason = \" \"\n")
                .contains("needs a reason")
        );
        assert!(
            load("[[expect]]\nscript = \"zz.pkt\"\nstacks = [\"engine\"]\nreason = \"r\"\n")
                .contains("zz.pkt does not exist")
        );
        assert!(load("[[expect]]\nscript = 3\n").contains("line 2"));
        assert!(load("[[expect]]\nstacks = [\"engine\"]\nreason = \"r\"\n")
            .contains("needs `script` or `scripts`"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
