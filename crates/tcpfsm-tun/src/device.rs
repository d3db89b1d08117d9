//! A Linux TUN device opened through `/dev/net/tun`, and its addressing.
//!
//! The device is opened with `IFF_TUN | IFF_NO_PI` (raw IP datagrams, no packet-information
//! prefix) and in non-blocking mode so the driver can drain it in batches. Addresses, MTU and
//! link state are set by running iproute2's `ip` (see [`TunDevice::configure`]); the `ip`
//! child inherits the calling thread's network namespace, so configuring from a thread that
//! has entered a namespace configures the device inside it.

use std::ffi::CStr;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Command;

/// `_IOW('T', 202, int)` from `<linux/if_tun.h>`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags of the union.
#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// The two ends of the TUN link: the kernel owns `host_*` (assigned to the device), our stack
/// owns `stack_*` (inside the device's prefix, so the kernel routes it into the TUN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunAddrs {
    pub host_v4: Option<Ipv4Addr>,
    pub stack_v4: Option<Ipv4Addr>,
    pub prefix_v4: u8,
    pub host_v6: Option<Ipv6Addr>,
    pub stack_v6: Option<Ipv6Addr>,
    pub prefix_v6: u8,
}

impl Default for TunAddrs {
    /// 10.77.0.1/24 and fd77::1/64 for the kernel; 10.77.0.2 and fd77::2 for our stack.
    fn default() -> TunAddrs {
        TunAddrs {
            host_v4: Some(Ipv4Addr::new(10, 77, 0, 1)),
            stack_v4: Some(Ipv4Addr::new(10, 77, 0, 2)),
            prefix_v4: 24,
            host_v6: Some("fd77::1".parse().expect("literal")),
            stack_v6: Some("fd77::2".parse().expect("literal")),
            prefix_v6: 64,
        }
    }
}

/// An open TUN device. Reads and writes carry one whole IPv4 or IPv6 datagram each.
#[derive(Debug)]
pub struct TunDevice {
    fd: OwnedFd,
    name: String,
}

impl TunDevice {
    /// Opens (creating if needed) the TUN device `name` in the calling thread's network
    /// namespace. An empty name lets the kernel pick `tunN`.
    ///
    /// Needs CAP_NET_ADMIN; without it the error says so.
    pub fn open(name: &str) -> io::Result<TunDevice> {
        if name.len() >= libc::IFNAMSIZ || name.contains(['/', ' ', '\0']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid interface name {name:?} (at most 15 bytes, no '/' or spaces)"),
            ));
        }
        // SAFETY: a NUL-terminated literal path and plain flags.
        let raw = unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(needs_root(
                io::Error::last_os_error(),
                "opening /dev/net/tun",
            ));
        }
        // SAFETY: `raw` is a freshly opened descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TUN | IFF_NO_PI,
            _pad: [0; 22],
        };
        for (d, s) in req.name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        // SAFETY: TUNSETIFF reads and writes a `struct ifreq`, which `IfReq` lays out.
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut req) } < 0 {
            return Err(needs_root(io::Error::last_os_error(), "TUNSETIFF"));
        }
        // SAFETY: the kernel wrote a NUL-terminated name into the 16-byte field.
        let name = unsafe { CStr::from_ptr(req.name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        Ok(TunDevice { fd, name })
    }

    /// Wraps a descriptor that already carries one datagram per read and write (a
    /// `SOCK_SEQPACKET` socketpair end, see [`crate::relay`]), non-blocking.
    pub(crate) fn from_fd(fd: OwnedFd, name: &str) -> TunDevice {
        TunDevice {
            fd,
            name: name.to_string(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the MTU, assigns the host addresses with their prefixes (which installs the
    /// connected routes that send the stack's addresses into the TUN) and brings the link up,
    /// by running `ip`. IPv6 addresses are added with `nodad` so they are usable at once
    /// (duplicate address detection would hold them "tentative" for a second or more).
    pub fn configure(&self, mtu: u32, addrs: &TunAddrs) -> io::Result<()> {
        let dev = self.name.as_str();
        run_ip(&["link", "set", "dev", dev, "mtu", &mtu.to_string()])?;
        if let Some(h) = addrs.host_v4 {
            run_ip(&[
                "addr",
                "add",
                &format!("{h}/{}", addrs.prefix_v4),
                "dev",
                dev,
            ])?;
        }
        if let Some(h) = addrs.host_v6 {
            run_ip(&[
                "-6",
                "addr",
                "add",
                &format!("{h}/{}", addrs.prefix_v6),
                "dev",
                dev,
                "nodad",
            ])?;
        }
        run_ip(&["link", "set", "dev", dev, "up"])?;
        Ok(())
    }

    /// Reads one datagram; `WouldBlock` when none is queued.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for `buf.len()` bytes of writes.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Writes one datagram; the kernel takes it as if it arrived on the device.
    pub fn send(&self, pkt: &[u8]) -> io::Result<usize> {
        // SAFETY: `pkt` is valid for `pkt.len()` bytes of reads.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), pkt.as_ptr().cast(), pkt.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

impl AsRawFd for TunDevice {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn needs_root(e: io::Error, what: &str) -> io::Error {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{what}: {e}; creating a TUN device needs root (CAP_NET_ADMIN)"),
        ),
        _ => io::Error::new(e.kind(), format!("{what}: {e}")),
    }
}

/// Runs `ip ARGS…`, turning a non-zero exit into an error carrying its stderr.
pub(crate) fn run_ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("running `ip` (iproute2) failed: {e}; is it installed?"),
        )
    })?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}
