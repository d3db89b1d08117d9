//! Errors, one type per operation (as quinn-proto's `ConnectError`, `WriteError`, `ReadError`).
//!
//! "Would block" is not among them: `send` returns how much it took (possibly 0), `recv` and
//! `accept` return `None` when nothing is ready. Every error maps onto the `std::io::ErrorKind`
//! the Linux kernel gives for the same situation, and converts into `std::io::Error`.

use std::fmt;
use std::io;

/// How a connection failed, as `SO_ERROR` reports it. Once set, the connection is CLOSED; data
/// received before the failure stays readable first (Linux keeps the receive queue on RST).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnError {
    /// The peer reset the connection (ECONNRESET).
    Reset,
    /// The peer refused our SYN (ECONNREFUSED).
    Refused,
    /// Retransmissions or keep-alive probes gave up (ETIMEDOUT).
    TimedOut,
    /// We aborted the connection ourselves (ECONNABORTED).
    Aborted,
}

impl ConnError {
    pub const fn io_kind(self) -> io::ErrorKind {
        match self {
            ConnError::Reset => io::ErrorKind::ConnectionReset,
            ConnError::Refused => io::ErrorKind::ConnectionRefused,
            ConnError::TimedOut => io::ErrorKind::TimedOut,
            ConnError::Aborted => io::ErrorKind::ConnectionAborted,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            ConnError::Reset => "connection reset",
            ConnError::Refused => "connection refused",
            ConnError::TimedOut => "connection timed out",
            ConnError::Aborted => "connection aborted",
        }
    }
}

/// The handle names no connection or listener the application holds (never issued, already
/// closed, or of the other kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InvalidHandle;

/// Why `listen` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ListenError {
    /// Another listener holds the address, or (without SO_REUSEADDR) a connection still uses
    /// the port (EADDRINUSE).
    AddrInUse,
    /// Port 0, or an address no TCP can listen on (EINVAL).
    InvalidAddr,
}

/// Why `connect` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectError {
    /// The remote is port 0 or not a unicast address, the families differ, or the local
    /// address is unspecified (EINVAL).
    InvalidAddr,
    /// No free ephemeral port, or the exact 4-tuple is in use (EADDRNOTAVAIL).
    AddrNotAvailable,
}

/// Why `send` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SendError {
    InvalidHandle,
    /// The write side is shut (our FIN is queued) or the connection closed normally (EPIPE).
    BrokenPipe,
    /// The connection failed.
    Conn(ConnError),
}

/// Why `recv` failed. End of stream is not an error: it is `Ok(Some(0))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecvError {
    InvalidHandle,
    /// The connection failed; everything received before is already read.
    Conn(ConnError),
}

/// Why `shutdown_write` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ShutdownError {
    InvalidHandle,
    /// The handshake has not completed (ENOTCONN), as Linux answers shutdown in SYN_SENT.
    NotConnected,
    /// The connection failed.
    Conn(ConnError),
}

impl InvalidHandle {
    pub const fn io_kind(self) -> io::ErrorKind {
        io::ErrorKind::NotConnected
    }
}

impl ListenError {
    pub const fn io_kind(self) -> io::ErrorKind {
        match self {
            ListenError::AddrInUse => io::ErrorKind::AddrInUse,
            ListenError::InvalidAddr => io::ErrorKind::InvalidInput,
        }
    }
}

impl ConnectError {
    pub const fn io_kind(self) -> io::ErrorKind {
        match self {
            ConnectError::InvalidAddr => io::ErrorKind::InvalidInput,
            ConnectError::AddrNotAvailable => io::ErrorKind::AddrNotAvailable,
        }
    }
}

impl SendError {
    pub const fn io_kind(self) -> io::ErrorKind {
        match self {
            SendError::InvalidHandle => io::ErrorKind::NotConnected,
            SendError::BrokenPipe => io::ErrorKind::BrokenPipe,
            SendError::Conn(e) => e.io_kind(),
        }
    }
}

impl RecvError {
    pub const fn io_kind(self) -> io::ErrorKind {
        match self {
            RecvError::InvalidHandle => io::ErrorKind::NotConnected,
            RecvError::Conn(e) => e.io_kind(),
        }
    }
}

impl ShutdownError {
    pub const fn io_kind(self) -> io::ErrorKind {
        match self {
            ShutdownError::InvalidHandle | ShutdownError::NotConnected => {
                io::ErrorKind::NotConnected
            }
            ShutdownError::Conn(e) => e.io_kind(),
        }
    }
}

impl From<InvalidHandle> for SendError {
    fn from(_: InvalidHandle) -> SendError {
        SendError::InvalidHandle
    }
}

impl From<InvalidHandle> for RecvError {
    fn from(_: InvalidHandle) -> RecvError {
        RecvError::InvalidHandle
    }
}

impl From<InvalidHandle> for ShutdownError {
    fn from(_: InvalidHandle) -> ShutdownError {
        ShutdownError::InvalidHandle
    }
}

const NO_HANDLE: &str = "no such connection or listener";

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for InvalidHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(NO_HANDLE)
    }
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListenError::AddrInUse => "address in use",
            ListenError::InvalidAddr => "invalid listening address",
        })
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectError::InvalidAddr => "invalid address",
            ConnectError::AddrNotAvailable => "address not available",
        })
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::InvalidHandle => f.write_str(NO_HANDLE),
            SendError::BrokenPipe => f.write_str("broken pipe"),
            SendError::Conn(e) => e.fmt(f),
        }
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::InvalidHandle => f.write_str(NO_HANDLE),
            RecvError::Conn(e) => e.fmt(f),
        }
    }
}

impl fmt::Display for ShutdownError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShutdownError::InvalidHandle => f.write_str(NO_HANDLE),
            ShutdownError::NotConnected => f.write_str("not connected"),
            ShutdownError::Conn(e) => e.fmt(f),
        }
    }
}

macro_rules! std_error {
    ($($t:ty),*) => {$(
        impl std::error::Error for $t {}
        impl From<$t> for io::Error {
            fn from(e: $t) -> io::Error {
                io::Error::new(e.io_kind(), e)
            }
        }
    )*};
}

std_error!(
    ConnError,
    InvalidHandle,
    ListenError,
    ConnectError,
    SendError,
    RecvError,
    ShutdownError
);
