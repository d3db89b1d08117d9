//! The `tun` stack (work in progress).
use super::Net;
use crate::outcome::Outcome;
use crate::script::Script;
use crate::DrillOptions;
use std::path::Path;

pub fn run(_s: &Script, _d: &Path, _n: Net, _o: &DrillOptions) -> Outcome {
    crate::skipped("tun stack not built yet".into())
}
