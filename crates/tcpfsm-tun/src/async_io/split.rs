//! Read and write halves of an [`AsyncTcpStream`], as tokio's `split` / `into_split`: the
//! read half polls with the connection's reader wakers, the write half with its writer
//! wakers, so two tasks (or two branches of one) drive the two directions independently.

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use super::{
    async_read, async_write, peek, poll_read_ready, poll_write_ready, readable, try_read,
    try_write, writable, AsyncTcpStream,
};
use crate::socket::{StreamInner, TcpStream};

/// The reading half of [`AsyncTcpStream::split`].
#[derive(Debug)]
pub struct ReadHalf<'a>(&'a AsyncTcpStream);

/// The writing half of [`AsyncTcpStream::split`]; `shutdown` sends our FIN, dropping it does
/// nothing.
#[derive(Debug)]
pub struct WriteHalf<'a>(&'a AsyncTcpStream);

pub(super) fn split(s: &mut AsyncTcpStream) -> (ReadHalf<'_>, WriteHalf<'_>) {
    (ReadHalf(s), WriteHalf(s))
}

/// The reading half of [`AsyncTcpStream::into_split`].
#[derive(Debug)]
pub struct OwnedReadHalf {
    stream: TcpStream,
}

/// The writing half of [`AsyncTcpStream::into_split`]. Dropping it shuts the write side down
/// (our FIN goes out after the queued data) unless [`OwnedWriteHalf::forget`] is used.
#[derive(Debug)]
pub struct OwnedWriteHalf {
    stream: TcpStream,
    shutdown_on_drop: bool,
}

pub(super) fn into_split(stream: TcpStream) -> (OwnedReadHalf, OwnedWriteHalf) {
    let w = stream
        .try_clone()
        .expect("cloning a stream handle cannot fail");
    (
        OwnedReadHalf { stream },
        OwnedWriteHalf {
            stream: w,
            shutdown_on_drop: true,
        },
    )
}

/// [`OwnedReadHalf::reunite`] was given halves of two different streams; both come back.
#[derive(Debug)]
pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

impl fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves that are not from the same socket")
    }
}

impl std::error::Error for ReuniteError {}

fn reunite(read: OwnedReadHalf, mut write: OwnedWriteHalf) -> Result<AsyncTcpStream, ReuniteError> {
    if !Arc::ptr_eq(read.stream.inner(), write.stream.inner()) {
        return Err(ReuniteError(read, write));
    }
    write.shutdown_on_drop = false;
    drop(write);
    Ok(AsyncTcpStream::from_std(read.stream))
}

impl ReadHalf<'_> {
    fn s(&self) -> &StreamInner {
        self.0.s()
    }
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }
    pub async fn readable(&self) -> io::Result<()> {
        readable(self.s()).await
    }
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        try_read(self.s(), buf)
    }
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        peek(self.s(), buf).await
    }
}

impl WriteHalf<'_> {
    fn s(&self) -> &StreamInner {
        self.0.s()
    }
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }
    pub async fn writable(&self) -> io::Result<()> {
        writable(self.s()).await
    }
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        try_write(self.s(), buf)
    }
}

impl OwnedReadHalf {
    fn s(&self) -> &StreamInner {
        self.stream.inner()
    }
    /// Puts the stream back together; `Err` if the halves belong to different streams.
    pub fn reunite(self, other: OwnedWriteHalf) -> Result<AsyncTcpStream, ReuniteError> {
        reunite(self, other)
    }
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }
    pub async fn readable(&self) -> io::Result<()> {
        readable(self.s()).await
    }
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_read_ready(self.s(), cx)
    }
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        try_read(self.s(), buf)
    }
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        peek(self.s(), buf).await
    }
}

impl OwnedWriteHalf {
    fn s(&self) -> &StreamInner {
        self.stream.inner()
    }
    /// Drops the half without shutting the write side down.
    pub fn forget(mut self) {
        self.shutdown_on_drop = false;
    }
    /// Puts the stream back together; `Err` if the halves belong to different streams.
    pub fn reunite(self, other: OwnedReadHalf) -> Result<AsyncTcpStream, ReuniteError> {
        reunite(other, self)
    }
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }
    pub async fn writable(&self) -> io::Result<()> {
        writable(self.s()).await
    }
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_write_ready(self.s(), cx)
    }
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        try_write(self.s(), buf)
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            let _ = self.s().shutdown(Shutdown::Write);
        }
    }
}

impl WriteHalf<'_> {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.s().shutdown(Shutdown::Write)
    }
}

impl OwnedWriteHalf {
    /// Our FIN; the drop then has nothing left to shut down.
    fn shutdown_write(&mut self) -> io::Result<()> {
        let r = self.s().shutdown(Shutdown::Write);
        if r.is_ok() {
            self.shutdown_on_drop = false;
        }
        r
    }
}

async_read!(ReadHalf<'_>, OwnedReadHalf);
async_write!(WriteHalf<'_>, OwnedWriteHalf);
