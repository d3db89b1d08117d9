//! Our stack over an impaired link to the kernel: stack ↔ relay ↔ TUN ↔ kernel.
//!
//! ```text
//!   our TCP (Stack) ── socketpair ══ Relay ══ TUN ── the kernel's TCP
//!                        up: ours → kernel ▶   ◀ down: kernel → ours
//! ```
//!
//! The stack's driver reads and writes one end of a `SOCK_SEQPACKET` socketpair exactly as it
//! would a TUN device; the relay moves datagrams between the other end and the real TUN
//! through the impairment engine. The kernel sees an ordinary TUN link with loss, delay,
//! reordering and a bottleneck on it.

use std::io;

use crate::relay::{datagram_pair, Relay, RelayConfig, Tap};
use crate::stack::{open_device, tcp_config, Stack, StackConfig};

/// Our stack and the relay in front of it.
pub struct ImpairedStack {
    // Field order: the stack stops before the relay, so its driver never sees the pair close.
    pub stack: Stack,
    pub relay: Relay,
}

impl ImpairedStack {
    /// Creates the TUN device as [`Stack::new`] does and puts the relay between it and our
    /// stack: `link.up` impairs what our stack sends, `link.down` what the kernel sends.
    pub fn new(cfg: StackConfig, link: RelayConfig) -> io::Result<ImpairedStack> {
        ImpairedStack::with_tap(cfg, link, None)
    }

    /// [`ImpairedStack::new`] with a [`Tap`] on the relay (`Up`: from our stack).
    pub fn with_tap(
        cfg: StackConfig,
        link: RelayConfig,
        tap: Option<Tap>,
    ) -> io::Result<ImpairedStack> {
        // The impairment acts on each segment as the wire carries it: the kernel's TSO
        // super-segments would let it drop or delay 64 KiB at a time. No offloads here.
        let tun = open_device(&StackConfig {
            offloads: false,
            ..cfg.clone()
        })?;
        let (ours, relay_end) = datagram_pair((tun.name(), "relay"))?;
        let relay = Relay::start_with_tap(relay_end, tun, link, tap)?;
        let (tcp, seed) = tcp_config(&cfg);
        let stack = Stack::with_device(ours, cfg.mtu, cfg.addrs, tcp, seed)?;
        Ok(ImpairedStack { stack, relay })
    }
}

impl std::ops::Deref for ImpairedStack {
    type Target = Stack;
    fn deref(&self) -> &Stack {
        &self.stack
    }
}
