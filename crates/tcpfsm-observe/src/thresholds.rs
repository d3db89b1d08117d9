//! Alert thresholds. Defaults follow the reference texts' monitoring table; each can be set in a
//! TOML file (keys are the field names below; unknown keys are an error so typos do not pass
//! silently) and overridden on the command line.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Where a measured value turns into a warning or a critical verdict. A value *at* a threshold
/// already counts (`>=`): "warn 100" means 100 CLOSE_WAIT sockets is a warning.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// CLOSE_WAIT sockets: the texts call any accumulation an application bug; table: 100 / 1000.
    pub close_wait_warn: u64,
    pub close_wait_crit: u64,
    /// "Any sustained growth" of CLOSE_WAIT is a warning: the count rose between each of the last
    /// this-many samples (so at least this many samples are needed to judge growth).
    pub close_wait_growth_samples: usize,
    /// TIME_WAIT holding this share of the ephemeral range (towards one remote) or of
    /// tcp_max_tw_buckets: table: 50% / 80%.
    pub time_wait_warn_ratio: f64,
    pub time_wait_crit_ratio: f64,
    /// SYN_RECEIVED sockets (half-open): table: 1000 / 5000, a possible SYN flood.
    pub syn_recv_warn: u64,
    pub syn_recv_crit: u64,
    /// Accept queue length over backlog for any listener.
    pub listen_queue_warn_ratio: f64,
    pub listen_queue_crit_ratio: f64,
    /// ListenOverflows per second between samples: above `warn` (default 0: any overflow at all
    /// is a warning, since each is a handshake the kernel threw away) / at or above `crit`.
    pub listen_overflow_warn_per_sec: f64,
    pub listen_overflow_crit_per_sec: f64,
    /// FIN_WAIT_2 sockets. The texts rate FIN_WAIT_2 "low-medium" (between CLOSE_WAIT's "very
    /// low" at 100/1000 and ESTABLISHED's "varies"): orphaned ones are bounded by tcp_fin_timeout
    /// (60 s), so a steady state is about close-rate × 60 s — 500 means peers leave ~8 closes a
    /// second hanging for the full minute, which is worth a look; 5000 (the SYN flood level) is
    /// a pile-up that holds real memory and, for half-closed sockets, descriptors.
    pub fin_wait2_warn: u64,
    pub fin_wait2_crit: u64,
    /// Retransmitted share of segments sent: table: 1% / 5%.
    pub retrans_warn_ratio: f64,
    pub retrans_crit_ratio: f64,
    /// Fewer segments than this in the interval give no retransmit verdict (a ratio over a handful
    /// of segments is noise).
    pub retrans_min_segments: u64,
    /// Open descriptors over RLIMIT_NOFILE: 80% / 95% (sockets are files; EMFILE stops accept()).
    pub fd_warn_ratio: f64,
    pub fd_crit_ratio: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            close_wait_warn: 100,
            close_wait_crit: 1000,
            close_wait_growth_samples: 3,
            time_wait_warn_ratio: 0.5,
            time_wait_crit_ratio: 0.8,
            syn_recv_warn: 1000,
            syn_recv_crit: 5000,
            listen_queue_warn_ratio: 0.8,
            listen_queue_crit_ratio: 1.0,
            listen_overflow_warn_per_sec: 0.0,
            listen_overflow_crit_per_sec: 10.0,
            fin_wait2_warn: 500,
            fin_wait2_crit: 5000,
            retrans_warn_ratio: 0.01,
            retrans_crit_ratio: 0.05,
            retrans_min_segments: 1000,
            fd_warn_ratio: 0.8,
            fd_crit_ratio: 0.95,
        }
    }
}

/// A threshold file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read threshold file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid threshold file: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("invalid thresholds: {0}")]
    Invalid(String),
}

impl Thresholds {
    /// Parses TOML; missing keys keep their defaults. The result is validated.
    pub fn from_toml_str(s: &str) -> Result<Thresholds, ConfigError> {
        let t: Thresholds = toml::from_str(s)?;
        t.validate()?;
        Ok(t)
    }

    /// Reads and parses a TOML threshold file.
    pub fn load(path: &Path) -> Result<Thresholds, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Thresholds::from_toml_str(&text)
    }

    /// The same thresholds as TOML (a starting point for a config file).
    pub fn to_toml_string(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Sets one threshold by its TOML key from a TOML value text (`"250"`, `"0.7"`), as given on
    /// a command line (`--set close_wait_warn=250`). The result is validated.
    pub fn with_override(&self, key: &str, value: &str) -> Result<Thresholds, ConfigError> {
        let mut table: toml::Table = toml::from_str(&self.to_toml_string())?;
        if !table.contains_key(key) {
            return Err(ConfigError::Invalid(format!(
                "unknown threshold {key:?} (known: {})",
                table.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let v: toml::Table = toml::from_str(&format!("v = {value}"))?;
        table.insert(key.to_string(), v["v"].clone());
        let t: Thresholds = table.try_into()?;
        t.validate()?;
        Ok(t)
    }

    /// Checks that every warning threshold is at most its critical one and ratios are sane.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut bad = Vec::new();
        let mut ord = |name: &str, w: f64, c: f64| {
            if !(w.is_finite() && c.is_finite() && w >= 0.0 && w <= c) {
                bad.push(format!("{name}: warn {w} must be >= 0 and <= crit {c}"));
            }
        };
        ord(
            "close_wait",
            self.close_wait_warn as f64,
            self.close_wait_crit as f64,
        );
        ord(
            "time_wait_ratio",
            self.time_wait_warn_ratio,
            self.time_wait_crit_ratio,
        );
        ord(
            "syn_recv",
            self.syn_recv_warn as f64,
            self.syn_recv_crit as f64,
        );
        ord(
            "listen_queue_ratio",
            self.listen_queue_warn_ratio,
            self.listen_queue_crit_ratio,
        );
        ord(
            "listen_overflow_per_sec",
            self.listen_overflow_warn_per_sec,
            self.listen_overflow_crit_per_sec,
        );
        ord(
            "fin_wait2",
            self.fin_wait2_warn as f64,
            self.fin_wait2_crit as f64,
        );
        ord(
            "retrans_ratio",
            self.retrans_warn_ratio,
            self.retrans_crit_ratio,
        );
        ord("fd_ratio", self.fd_warn_ratio, self.fd_crit_ratio);
        if self.close_wait_growth_samples < 2 {
            bad.push("close_wait_growth_samples must be at least 2".into());
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(bad.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_reference_table() {
        let t = Thresholds::default();
        assert_eq!((t.close_wait_warn, t.close_wait_crit), (100, 1000));
        assert_eq!((t.syn_recv_warn, t.syn_recv_crit), (1000, 5000));
        assert_eq!((t.time_wait_warn_ratio, t.time_wait_crit_ratio), (0.5, 0.8));
        assert_eq!((t.retrans_warn_ratio, t.retrans_crit_ratio), (0.01, 0.05));
        t.validate().unwrap();
    }

    #[test]
    fn toml_overrides_only_given_keys() {
        let t = Thresholds::from_toml_str("close_wait_warn = 5\nfd_crit_ratio = 0.99\n").unwrap();
        assert_eq!(t.close_wait_warn, 5);
        assert_eq!(t.fd_crit_ratio, 0.99);
        assert_eq!(t.close_wait_crit, 1000);
    }

    #[test]
    fn toml_rejects_unknown_keys() {
        assert!(matches!(
            Thresholds::from_toml_str("close_wiat_warn = 5"),
            Err(ConfigError::Parse(_))
        ));
    }

    #[test]
    fn toml_rejects_warn_above_crit() {
        assert!(matches!(
            Thresholds::from_toml_str("syn_recv_warn = 9000"),
            Err(ConfigError::Invalid(_))
        ));
    }

    #[test]
    fn toml_round_trips() {
        let t = Thresholds::default();
        assert_eq!(Thresholds::from_toml_str(&t.to_toml_string()).unwrap(), t);
    }

    #[test]
    fn override_sets_one_key_and_rejects_unknown_or_bad() {
        let t = Thresholds::default();
        let u = t.with_override("close_wait_warn", "250").unwrap();
        assert_eq!(u.close_wait_warn, 250);
        assert_eq!(u.close_wait_crit, 1000);
        assert!(t.with_override("nope", "1").is_err());
        assert!(t.with_override("close_wait_warn", "\"x\"").is_err());
        assert!(t.with_override("close_wait_warn", "5000").is_err());
    }

    #[test]
    fn load_reports_missing_file() {
        assert!(matches!(
            Thresholds::load(Path::new("/nonexistent/tcpfsm.toml")),
            Err(ConfigError::Read { .. })
        ));
    }
}
