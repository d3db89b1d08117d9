//! The built-in scenarios: one per situation the reference texts describe, written in the
//! script language so users can read them, copy them and run changed versions with
//! `tcpfsm sim --script FILE`.

use crate::runner::Outcome;
use crate::script::{parse, ScriptError};

/// A built-in scenario: its name, one-line summary and script source.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    pub name: &'static str,
    pub source: &'static str,
}

macro_rules! builtin {
    ($name:literal) => {
        Builtin {
            name: $name,
            source: include_str!(concat!("../scenarios/", $name, ".tcpfsm")),
        }
    };
}

static BUILTINS: [Builtin; 13] = [
    builtin!("handshake"),
    builtin!("client-close"),
    builtin!("server-close"),
    builtin!("simultaneous-open"),
    builtin!("simultaneous-close"),
    builtin!("lost-final-ack"),
    builtin!("abort"),
    builtin!("half-close"),
    builtin!("refused"),
    builtin!("syn-retry"),
    builtin!("close-wait-leak"),
    builtin!("syn-flood"),
    builtin!("time-wait-exhaustion"),
];

/// Every built-in scenario, in the order of the reference texts' lifecycle.
pub fn builtins() -> &'static [Builtin] {
    &BUILTINS
}

pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

impl Builtin {
    /// The summary from the script's `scenario NAME "summary"` line.
    pub fn summary(&self) -> String {
        parse(&self.file(), self.source)
            .map(|s| s.summary)
            .unwrap_or_default()
    }

    /// The name scripts errors are reported against.
    pub fn file(&self) -> String {
        format!("{}.tcpfsm", self.name)
    }

    pub fn run(&self, seed: Option<u64>) -> Result<Outcome, ScriptError> {
        crate::run_source(&self.file(), self.source, seed)
    }

    /// The parsed script, to run with [`crate::run_with`].
    pub fn script(&self) -> Result<crate::Script, ScriptError> {
        parse(&self.file(), self.source)
    }
}

/// Runs a built-in scenario by name; `None` if there is no such scenario.
pub fn run_builtin(name: &str, seed: Option<u64>) -> Option<Result<Outcome, ScriptError>> {
    builtin(name).map(|b| b.run(seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses_and_is_named_after_its_file() {
        for b in builtins() {
            let s = parse(&b.file(), b.source).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(s.name, b.name);
            assert!(!s.summary.is_empty(), "{} has no summary", b.name);
            // `tcpfsm sim --list` prints name (20 wide) + 2 spaces + summary in 80 columns.
            assert!(
                s.summary.chars().count() <= 58,
                "{}: summary too long",
                b.name
            );
        }
    }
}
