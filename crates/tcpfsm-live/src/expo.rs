//! A small writer for the Prometheus text exposition format (version 0.0.4).
//!
//! Hand-written rather than `prometheus-client` because that crate encodes OpenMetrics, whose
//! counters must end in `_total`: the node exporter's `node_netstat_Tcp_ActiveOpens` (untyped)
//! could not be reproduced under its own name, and a drop-in replacement must keep the names
//! that existing dashboards and alerts query. Our metrics are also rebuilt from one snapshot
//! per scrape, so a registry of long-lived metric objects would buy nothing.

use std::fmt::Write;

/// Metric types of the text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
    Untyped,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Untyped => "untyped",
        }
    }
}

/// Accumulates metric families; each family's HELP/TYPE is written once, followed by all its
/// samples (the format requires a family's samples to be contiguous).
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
    families: Vec<String>,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a family. Starting the same family twice is a programming error and panics in
    /// debug builds; in release the duplicate header is still written only once.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) -> Family<'_> {
        debug_assert!(valid_name(name), "bad metric name {name}");
        let fresh = !self.families.iter().any(|f| f == name);
        debug_assert!(fresh, "metric family {name} started twice");
        if fresh {
            self.families.push(name.to_string());
            let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
            let _ = writeln!(self.out, "# TYPE {name} {}", kind.name());
        }
        Family {
            expo: self,
            name: name.to_string(),
        }
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Writes samples of one family.
pub struct Family<'a> {
    expo: &'a mut Exposition,
    name: String,
}

impl Family<'_> {
    /// One sample with the given labels (names must be valid label names).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        let out = &mut self.expo.out;
        out.push_str(&self.name);
        if !labels.is_empty() {
            out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(k);
                out.push_str("=\"");
                escape_label_into(out, v);
                out.push('"');
            }
            out.push('}');
        }
        out.push(' ');
        write_value(out, value);
        out.push('\n');
        self
    }

    pub fn value(&mut self, value: f64) -> &mut Self {
        self.sample(&[], value)
    }
}

fn write_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Label values escape backslash, double quote and newline.
fn escape_label_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// HELP text escapes backslash and newline.
fn escape_help(h: &str) -> String {
    h.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_header_then_samples_with_escaped_labels() {
        let mut e = Exposition::new();
        e.family("x_total", "Things.\nMore", Kind::Counter)
            .sample(&[("a", "q\"uo\\te\nnl")], 3.0)
            .sample(&[("a", "b"), ("c", "d")], 0.25);
        let s = e.finish();
        assert_eq!(
            s,
            "# HELP x_total Things.\\nMore\n# TYPE x_total counter\n\
             x_total{a=\"q\\\"uo\\\\te\\nnl\"} 3\nx_total{a=\"b\",c=\"d\"} 0.25\n"
        );
    }

    #[test]
    fn special_values_use_prometheus_spelling() {
        let mut e = Exposition::new();
        e.family("g", "h", Kind::Gauge)
            .value(f64::NAN)
            .value(f64::INFINITY)
            .value(-1.5e20);
        let s = e.finish();
        assert!(
            s.contains("g NaN\n")
                && s.contains("g +Inf\n")
                && s.contains("g -150000000000000000000\n")
        );
    }

    #[test]
    fn metric_names_are_checked() {
        assert!(valid_name("node_netstat_Tcp_ActiveOpens"));
        assert!(!valid_name("9abc"));
        assert!(!valid_name("a-b"));
    }
}
