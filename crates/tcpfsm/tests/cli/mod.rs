//! What the CLI's live-host tests share (host_*.rs, included with `mod cli;` after `mod
//! support;`): run the built `tcpfsm` inside a namespace, read its JSON, find a verdict.
#![allow(dead_code)]

use crate::support::{run_bounded, Netns};
use serde_json::Value;
use std::process::Output;
use std::time::Duration;

/// `tcpfsm ARGS…` run inside `ns` (`ip netns exec`), killed after 30 s.
pub fn tcpfsm(ns: &Netns, args: &[&str]) -> Output {
    run_bounded(
        ns.command(env!("CARGO_BIN_EXE_tcpfsm"), args),
        Duration::from_secs(30),
    )
}

/// `tcpfsm ARGS…` run here, not in a namespace.
pub fn tcpfsm_here(args: &[&str]) -> Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_tcpfsm"));
    c.args(args);
    run_bounded(c, Duration::from_secs(30))
}

/// The command's stdout as JSON; a panic shows both streams otherwise.
pub fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): status {:?} stdout {:?} stderr {:?}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The verdict of `rule` in a `diagnose --json` report.
pub fn verdict<'a>(report: &'a Value, rule: &str) -> &'a Value {
    report["verdicts"]
        .as_array()
        .expect("verdicts array")
        .iter()
        .find(|v| v["rule"] == rule)
        .unwrap_or_else(|| panic!("no {rule} verdict in {report}"))
}
