//! Our sans-IO TCP ([`tcpfsm_core`]) on a real wire: a Linux TUN device.
//!
//! ```text
//!  application threads            driver thread
//!  TcpStream / TcpListener   ──┐   poll(TUN fd, eventfd; timeout = next TCP deadline)
//!  AsyncTcpStream (tokio)    ──┼─▶ Mutex<Endpoint> ◀── datagrams read from the TUN
//!                              └── datagrams the endpoint emits ──▶ written to the TUN
//! ```
//!
//! The kernel sits on the other side of the TUN: the device gets the kernel's addresses
//! (10.77.0.1/24 and fd77::1/64 by default) and our stack answers for addresses inside those
//! prefixes (10.77.0.2 and fd77::2), which the kernel therefore routes into the TUN. The
//! device is configured with iproute2's `ip` command (MTU, addresses with `nodad`, link up).
//!
//! Blocking sockets mirror `std::net` (non-blocking mode, `try_clone`, `peek`, `take_error`,
//! SO_LINGER, `incoming()`, `ToSocketAddrs`); with the `tokio` feature, [`AsyncTcpStream`] and
//! [`AsyncTcpListener`] implement `AsyncRead`/`AsyncWrite` and offer what
//! `tokio::net::TcpStream` does (split halves in `tcpfsm_tun::tcp`, `readable`/`try_read`,
//! …). A [`PacketFilter`] on the stack sees every TCP datagram crossing the TUN and may drop
//! it, for loss tests.
//!
//! Impaired links ([`tcpfsm_impair`] on real packets): [`Relay`] moves datagrams between two
//! devices through the engine, [`TestBed`] joins two network namespaces with it (kernel ↔
//! relay ↔ kernel), and [`ImpairedStack`] puts it between our stack and its TUN (ours ↔ relay
//! ↔ kernel).
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use tcpfsm_tun::{Stack, StackConfig, TcpListener, TcpStream};
//!
//! # fn main() -> std::io::Result<()> {
//! // Needs root: creates `tfsm0` with 10.77.0.1/24 + fd77::1/64 for the kernel.
//! let stack = Stack::new(StackConfig { tun_name: "tfsm0".into(), ..StackConfig::default() })?;
//! stack.subscribe(|ev| eprintln!("{ev:?}")); // every state change, as it happens
//!
//! // Our server; the kernel reaches it at 10.77.0.2:5000 (e.g. `nc 10.77.0.2 5000`).
//! let listener = TcpListener::bind(&stack, "10.77.0.2:5000")?;
//! let (mut conn, peer) = listener.accept()?;
//! conn.write_all(b"hello ")?;
//! # let _ = peer;
//!
//! // Our client to a kernel server listening on 10.77.0.1:8080.
//! let mut c = TcpStream::connect(&stack, "10.77.0.1:8080")?;
//! let mut reply = Vec::new();
//! c.read_to_end(&mut reply)?;
//! # Ok(())
//! # }
//! ```

mod device;
mod driver;
mod impaired;
mod listener;
pub mod netns;
mod offload;
mod ops;
pub mod relay;
mod socket;
mod stack;
mod tcpinfo;
mod testbed;
mod txq;

#[cfg(feature = "tokio")]
mod async_io;

/// The halves of a split [`AsyncTcpStream`], as `tokio::net::tcp`.
#[cfg(feature = "tokio")]
pub mod tcp {
    pub use crate::async_io::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, ReuniteError, WriteHalf};
}

#[cfg(feature = "tokio")]
pub use async_io::{AsyncTcpListener, AsyncTcpStream};
pub use device::{TunAddrs, TunDevice};
pub use impaired::ImpairedStack;
pub use listener::{Incoming, TcpListener};
pub use relay::{Relay, RelayConfig, RelayStats, Way};
pub use socket::TcpStream;
pub use stack::{Direction, DriverStats, Packet, PacketFilter, Stack, StackConfig, Verdict};
pub use tcpfsm_core::{self as core, Config, ConnOptions, ListenOptions, State};
pub use tcpfsm_impair as impair;
pub use tcpfsm_wire as wire;
pub use tcpinfo::{kernel_tcp_info, KernelTcpInfo};
pub use testbed::{LinkAddrs, TestBed, TestBedConfig};

/// Whether this process can create TUN devices and namespaces (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
