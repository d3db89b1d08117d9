//! What every tcpfsm test suite that needs privileges shares: the root check and a skip message
//! that cannot go unseen.
//!
//! libtest captures `eprintln!` and shows it only for failing tests, so a skipped test that
//! reported with `eprintln!` would pass silently. These helpers write to the process's stderr
//! handle directly, which the harness does not capture.

use std::io::Write;

/// Whether the tests run with the effective user id 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Prints `SKIPPED (reason): what` where it is always seen.
pub fn skip(reason: &str, what: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "SKIPPED ({reason}): {what}");
}

/// `true` when root; otherwise reports the skip loudly and returns `false`, so a test starts
/// with `if !tcpfsm_testkit::require_root("…") { return; }`.
pub fn require_root(what: &str) -> bool {
    if is_root() {
        return true;
    }
    skip("needs root", what);
    false
}
