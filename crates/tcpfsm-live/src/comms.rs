//! Command names for the pids the tracepoints record: `/proc/<pid>/comm` while the task lives,
//! else ftrace's own record of recently scheduled tasks (`saved_cmdlines`, kept while our
//! events are enabled), which the text `trace_pipe` would have printed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Command names of pids, from /proc, else from ftrace's record of recent tasks.
pub struct Comms {
    root: PathBuf,
    cache: HashMap<u32, (String, Instant)>,
    saved: HashMap<u32, String>,
    saved_at: Option<Instant>,
}

impl Comms {
    /// `root` is the tracefs mount (for `saved_cmdlines`).
    pub fn new(root: PathBuf) -> Comms {
        Comms {
            root,
            cache: HashMap::new(),
            saved: HashMap::new(),
            saved_at: None,
        }
    }

    /// The command name of `pid` (`swapper` for 0, `?` when unknown).
    pub fn get(&mut self, pid: u32) -> String {
        if pid == 0 {
            return "swapper".to_string(); // the idle task, as ps and bcc call it
        }
        let now = Instant::now();
        if let Some((c, at)) = self.cache.get(&pid) {
            if now.duration_since(*at) < Duration::from_secs(1) {
                return c.clone();
            }
        }
        let c = match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
            Ok(s) => s.trim_end().to_string(),
            // Gone already: ftrace's saved_cmdlines remembers recently scheduled tasks.
            Err(_) => self.saved(pid, now).unwrap_or_else(|| "?".to_string()),
        };
        if self.cache.len() > 4096 {
            self.cache.clear();
        }
        self.cache.insert(pid, (c.clone(), now));
        c
    }

    fn saved(&mut self, pid: u32, now: Instant) -> Option<String> {
        // Re-read at most ten times a second (the file holds thousands of lines).
        if !self.saved.contains_key(&pid)
            && self
                .saved_at
                .is_none_or(|t| now.duration_since(t) > Duration::from_millis(100))
        {
            self.saved_at = Some(now);
            self.saved = std::fs::read_to_string(self.root.join("saved_cmdlines"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    let (p, c) = l.split_once(' ')?;
                    Some((p.parse().ok()?, c.to_string()))
                })
                .collect();
        }
        self.saved.get(&pid).cloned()
    }
}
