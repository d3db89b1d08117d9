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

/// Thresholds that cannot be used, said once, in plain words, naming the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read threshold file {path}: {why}")]
    Read { path: String, why: String },
    /// Not TOML at all.
    #[error("{where_}: not valid TOML: {why}")]
    Syntax { where_: String, why: String },
    #[error("{where_}: unknown threshold {key:?}{hint} (known: {known})")]
    Unknown {
        where_: String,
        key: String,
        hint: String,
        known: String,
    },
    /// A known key with a value of the wrong type.
    #[error("{where_}: {key} must be {expected}, not {got}")]
    Type {
        where_: String,
        key: String,
        expected: &'static str,
        got: String,
    },
    /// Values that do not fit together (a warning above its critical level).
    #[error("{where_}: {why}")]
    Invalid { where_: String, why: String },
}

/// What a key's value must be, in words.
fn expected(key: &str, default: &toml::Value) -> &'static str {
    match default {
        toml::Value::Integer(_) if key.ends_with("_samples") => "a whole number (how many samples)",
        toml::Value::Integer(_) if key.ends_with("_segments") => {
            "a whole number (a count of segments)"
        }
        toml::Value::Integer(_) => "a whole number (a count of sockets)",
        _ if key.ends_with("_ratio") => "a number (a share: 0.5 means 50%)",
        _ if key.ends_with("_per_sec") => "a number (events per second)",
        _ => "a number",
    }
}

/// A value as the user wrote it, for messages: `"many"` (a string), `1.5`, `true`.
fn shown(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("the text {s:?}"),
        toml::Value::Float(f) => format!("{f}"),
        toml::Value::Integer(i) => format!("{i}"),
        toml::Value::Boolean(b) => format!("{b}"),
        toml::Value::Array(_) => "a list".into(),
        toml::Value::Table(_) => "a table".into(),
        toml::Value::Datetime(d) => format!("the date {d}"),
    }
}

/// The known key closest to a misspelled one, if it is close.
fn closest<'a>(key: &str, known: impl Iterator<Item = &'a String>) -> Option<&'a String> {
    known
        .map(|k| (strsim::levenshtein(key, k), k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k)
}

impl Thresholds {
    fn table(&self) -> toml::Table {
        toml::Table::try_from(self).expect("thresholds serialize as a table")
    }

    /// Checks one key and value against the defaults' types; returns the value to store
    /// (a whole number given for a ratio becomes a float).
    fn checked(
        &self,
        where_: &str,
        key: &str,
        value: toml::Value,
    ) -> Result<toml::Value, ConfigError> {
        let table = self.table();
        let Some(default) = table.get(key) else {
            let hint = closest(key, table.keys())
                .map(|k| format!(" (did you mean {k}?)"))
                .unwrap_or_default();
            return Err(ConfigError::Unknown {
                where_: where_.to_string(),
                key: key.to_string(),
                hint,
                known: table.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        };
        let wrong = || ConfigError::Type {
            where_: where_.to_string(),
            key: key.to_string(),
            expected: expected(key, default),
            got: shown(&value),
        };
        match (default, &value) {
            (toml::Value::Integer(_), toml::Value::Integer(i)) if *i >= 0 => Ok(value),
            (toml::Value::Float(_), toml::Value::Float(_)) => Ok(value),
            (toml::Value::Float(_), toml::Value::Integer(i)) => Ok(toml::Value::Float(*i as f64)),
            _ => Err(wrong()),
        }
    }

    fn from_table(table: toml::Table, where_: &str) -> Result<Thresholds, ConfigError> {
        // Every key and type was checked, so this cannot fail on the user's input.
        let t: Thresholds =
            table
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    where_: where_.to_string(),
                    why: e.message().to_string(),
                })?;
        t.check().map_err(|why| ConfigError::Invalid {
            where_: where_.to_string(),
            why,
        })?;
        Ok(t)
    }

    /// Parses TOML; missing keys keep their defaults. `name` is what messages call the source
    /// (the file's path). The result is validated.
    pub fn from_toml_named(s: &str, name: &str) -> Result<Thresholds, ConfigError> {
        let doc: toml::Table = toml::from_str(s).map_err(|e| {
            let line = e
                .span()
                .map(|sp| s[..sp.start.min(s.len())].matches('\n').count() + 1);
            ConfigError::Syntax {
                where_: match line {
                    Some(l) => format!("{name} line {l}"),
                    None => name.to_string(),
                },
                why: e.message().trim().to_string(),
            }
        })?;
        let base = Thresholds::default();
        let mut table = base.table();
        for (key, value) in doc {
            let line = s
                .lines()
                .position(|l| {
                    l.trim_start()
                        .strip_prefix(key.as_str())
                        .is_some_and(|r| r.trim_start().starts_with('='))
                })
                .map(|i| format!("{name} line {}", i + 1))
                .unwrap_or_else(|| name.to_string());
            let v = base.checked(&line, &key, value)?;
            table.insert(key, v);
        }
        Thresholds::from_table(table, name)
    }

    /// Parses TOML; missing keys keep their defaults. The result is validated.
    pub fn from_toml_str(s: &str) -> Result<Thresholds, ConfigError> {
        Thresholds::from_toml_named(s, "thresholds")
    }

    /// Reads and parses a TOML threshold file.
    pub fn load(path: &Path) -> Result<Thresholds, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        Thresholds::from_toml_named(&text, &path.display().to_string())
    }

    /// The same thresholds as TOML (a starting point for a config file).
    pub fn to_toml_string(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Sets one threshold by its TOML key from a value as typed on a command line
    /// (`--set close_wait_warn=250`, `--set fd_warn_ratio=0.7`). The result is validated.
    pub fn with_override(&self, key: &str, value: &str) -> Result<Thresholds, ConfigError> {
        let where_ = format!("--set {key}={value}");
        let parsed: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {value}")) {
            Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(value.into())),
            // Not a TOML value (a bare word): it is text, and text is never a threshold.
            Err(_) => toml::Value::String(value.to_string()),
        };
        let v = self.checked(&where_, key, parsed)?;
        let mut table = self.table();
        table.insert(key.to_string(), v);
        Thresholds::from_table(table, &where_)
    }

    /// Checks that every warning threshold is at most its critical one and ratios are sane.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check().map_err(|why| ConfigError::Invalid {
            where_: "thresholds".into(),
            why,
        })
    }

    fn check(&self) -> Result<(), String> {
        let mut bad = Vec::new();
        let mut ord = |warn: &str, crit: &str, w: f64, c: f64| {
            if !(w.is_finite() && c.is_finite() && w >= 0.0) {
                bad.push(format!("{warn} ({w}) must be a number of 0 or more"));
            } else if w > c {
                bad.push(format!("{warn} ({w}) must not be above {crit} ({c})"));
            }
        };
        ord(
            "close_wait_warn",
            "close_wait_crit",
            self.close_wait_warn as f64,
            self.close_wait_crit as f64,
        );
        ord(
            "time_wait_warn_ratio",
            "time_wait_crit_ratio",
            self.time_wait_warn_ratio,
            self.time_wait_crit_ratio,
        );
        ord(
            "syn_recv_warn",
            "syn_recv_crit",
            self.syn_recv_warn as f64,
            self.syn_recv_crit as f64,
        );
        ord(
            "listen_queue_warn_ratio",
            "listen_queue_crit_ratio",
            self.listen_queue_warn_ratio,
            self.listen_queue_crit_ratio,
        );
        ord(
            "listen_overflow_warn_per_sec",
            "listen_overflow_crit_per_sec",
            self.listen_overflow_warn_per_sec,
            self.listen_overflow_crit_per_sec,
        );
        ord(
            "fin_wait2_warn",
            "fin_wait2_crit",
            self.fin_wait2_warn as f64,
            self.fin_wait2_crit as f64,
        );
        ord(
            "retrans_warn_ratio",
            "retrans_crit_ratio",
            self.retrans_warn_ratio,
            self.retrans_crit_ratio,
        );
        ord(
            "fd_warn_ratio",
            "fd_crit_ratio",
            self.fd_warn_ratio,
            self.fd_crit_ratio,
        );
        if self.close_wait_growth_samples < 2 {
            bad.push(format!(
                "close_wait_growth_samples ({}) must be at least 2",
                self.close_wait_growth_samples
            ));
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join("; "))
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
    fn toml_rejects_unknown_keys_and_suggests_the_near_one() {
        let e = Thresholds::from_toml_named("fd_warn_ratio = 0.7\nclose_wiat_warn = 5\n", "t.toml")
            .unwrap_err();
        assert!(matches!(e, ConfigError::Unknown { .. }));
        assert!(
            e.to_string()
                .starts_with("t.toml line 2: unknown threshold \"close_wiat_warn\" (did you mean close_wait_warn?) (known: "),
            "{e}"
        );
    }

    #[test]
    fn wrong_types_name_the_key_and_the_expected_type() {
        let e = |toml: &str| {
            Thresholds::from_toml_named(toml, "t.toml")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e("close_wait_warn = \"many\""),
            "t.toml line 1: close_wait_warn must be a whole number (a count of sockets), not the text \"many\""
        );
        assert_eq!(
            e("\n  syn_recv_crit = 2.5"),
            "t.toml line 2: syn_recv_crit must be a whole number (a count of sockets), not 2.5"
        );
        assert_eq!(
            e("fd_warn_ratio = true"),
            "t.toml line 1: fd_warn_ratio must be a number (a share: 0.5 means 50%), not true"
        );
        assert_eq!(
            e("close_wait_warn = -3"),
            "t.toml line 1: close_wait_warn must be a whole number (a count of sockets), not -3"
        );
        assert!(e("close_wait_warn = = 3").starts_with("t.toml line 1: not valid TOML: "));
        // A whole number is a fine ratio.
        assert_eq!(
            Thresholds::from_toml_str("fd_crit_ratio = 1")
                .unwrap()
                .fd_crit_ratio,
            1.0
        );
    }

    #[test]
    fn toml_rejects_warn_above_crit_naming_both_keys() {
        let e = Thresholds::from_toml_named("syn_recv_warn = 9000", "t.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.toml: syn_recv_warn (9000) must not be above syn_recv_crit (5000)"
        );
        assert_eq!(
            Thresholds::default()
                .with_override("close_wait_warn", "5000")
                .unwrap_err()
                .to_string(),
            "--set close_wait_warn=5000: close_wait_warn (5000) must not be above close_wait_crit (1000)"
        );
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
        assert_eq!(
            t.with_override("close_wait_warn", "lots").unwrap_err().to_string(),
            "--set close_wait_warn=lots: close_wait_warn must be a whole number (a count of sockets), not the text \"lots\""
        );
        assert_eq!(
            t.with_override("retrans_warn_ratio", "1%").unwrap_err().to_string(),
            "--set retrans_warn_ratio=1%: retrans_warn_ratio must be a number (a share: 0.5 means 50%), not the text \"1%\""
        );
        assert!(t.with_override("close_wait_warn", "5000").is_err());
        assert_eq!(
            t.with_override("fd_warn_ratio", "0.5")
                .unwrap()
                .fd_warn_ratio,
            0.5
        );
    }

    #[test]
    fn load_reports_missing_file() {
        assert!(matches!(
            Thresholds::load(Path::new("/nonexistent/tcpfsm.toml")),
            Err(ConfigError::Read { .. })
        ));
    }
}
