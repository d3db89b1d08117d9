//! A process-wide "please stop" flag set by SIGINT/SIGTERM, so long-running commands (trace,
//! export, watch) leave through their normal path and release what they hold.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

/// Installs the handler for SIGINT and SIGTERM (without SA_RESTART, so a blocking poll
/// returns EINTR and the loop sees the flag at once).
pub fn install() {
    // SAFETY: sigaction with a handler that only stores to an atomic.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = 0;
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
    }
}

/// Whether SIGINT/SIGTERM has arrived since [`install`].
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
