//! Errors returned to the application; each maps onto the `std::io::ErrorKind` the kernel gives.

use std::fmt;
use std::io;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// No such connection or listener handle (never existed, or already released).
    InvalidHandle,
    /// Nothing to read yet / no buffer space yet.
    WouldBlock,
    /// The operation does not fit the connection's state (e.g. send after shutdown_write).
    InvalidState,
    /// The peer reset the connection.
    ConnectionReset,
    /// The peer refused our SYN.
    ConnectionRefused,
    /// Retransmissions gave up.
    TimedOut,
    /// Writing after our own FIN, or after the connection closed.
    BrokenPipe,
    /// Another listener already holds this address (and SO_REUSEADDR does not apply).
    AddrInUse,
    /// No free ephemeral port / 4-tuple for connect (EADDRNOTAVAIL).
    AddrNotAvailable,
    /// The connection was aborted locally.
    Aborted,
    /// An argument is out of range (port 0 for a remote, mixed IPv4/IPv6 addresses, …).
    InvalidInput,
}

impl Error {
    pub const fn io_kind(self) -> io::ErrorKind {
        match self {
            Error::InvalidHandle => io::ErrorKind::NotConnected,
            Error::WouldBlock => io::ErrorKind::WouldBlock,
            Error::InvalidState => io::ErrorKind::NotConnected,
            Error::ConnectionReset => io::ErrorKind::ConnectionReset,
            Error::ConnectionRefused => io::ErrorKind::ConnectionRefused,
            Error::TimedOut => io::ErrorKind::TimedOut,
            Error::BrokenPipe => io::ErrorKind::BrokenPipe,
            Error::AddrInUse => io::ErrorKind::AddrInUse,
            Error::AddrNotAvailable => io::ErrorKind::AddrNotAvailable,
            Error::Aborted => io::ErrorKind::ConnectionAborted,
            Error::InvalidInput => io::ErrorKind::InvalidInput,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::InvalidHandle => "no such connection",
            Error::WouldBlock => "operation would block",
            Error::InvalidState => "operation not valid in this connection state",
            Error::ConnectionReset => "connection reset",
            Error::ConnectionRefused => "connection refused",
            Error::TimedOut => "connection timed out",
            Error::BrokenPipe => "broken pipe",
            Error::AddrInUse => "address in use",
            Error::AddrNotAvailable => "address not available",
            Error::Aborted => "connection aborted",
            Error::InvalidInput => "invalid argument",
        })
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::new(e.io_kind(), e)
    }
}
