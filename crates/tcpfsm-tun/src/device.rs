//! A Linux TUN device opened through `/dev/net/tun`, and its addressing.
//!
//! The device is opened with `IFF_TUN | IFF_NO_PI` (raw IP datagrams, no packet-information
//! prefix) and in non-blocking mode so the driver can drain it in batches; with offloads
//! ([`TunDevice::open_with_offloads`]) also `IFF_VNET_HDR`, so that one datagram may carry
//! many segments ([`crate::offload`]). Addresses, MTU and
//! link state are set by running iproute2's `ip` (see [`TunDevice::configure`]); the `ip`
//! child inherits the calling thread's network namespace, so configuring from a thread that
//! has entered a namespace configures the device inside it.

use std::ffi::CStr;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::offload::{
    complete_checksum, Coalescer, RxOffload, VnetHdr, Write, MAX_SEGS, VNET_HDR_LEN,
};

/// `_IOW('T', 202, int)` from `<linux/if_tun.h>`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
/// `_IOW('T', 208, unsigned int)`: which offloads the kernel may use towards us.
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
/// What the kernel may send us with offloads: TSO super-segments (IPv4, IPv6), which need
/// partial checksums.
const RX_OFFLOADS: libc::c_uint = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;

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
    /// Each read and write starts with a `virtio_net_hdr` (`IFF_VNET_HDR`).
    vnet: bool,
}

impl TunDevice {
    /// Opens (creating if needed) the TUN device `name` in the calling thread's network
    /// namespace. An empty name lets the kernel pick `tunN`.
    ///
    /// Needs CAP_NET_ADMIN; without it the error says so.
    pub fn open(name: &str) -> io::Result<TunDevice> {
        TunDevice::open_flags(name, false)
    }

    /// [`TunDevice::open`] with offloads: the kernel may hand us its TSO super-segments (up
    /// to 64 KiB) with partial checksums, and we may write super-segments
    /// ([`crate::offload`]). [`TunDevice::recv`] and [`TunDevice::send`] still carry plain
    /// datagrams: the virtio header is added and removed here, and a partial checksum is
    /// completed before `recv` returns.
    pub fn open_with_offloads(name: &str) -> io::Result<TunDevice> {
        TunDevice::open_flags(name, true)
    }

    fn open_flags(name: &str, vnet: bool) -> io::Result<TunDevice> {
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
            flags: IFF_TUN | IFF_NO_PI | if vnet { IFF_VNET_HDR } else { 0 },
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
        let dev = TunDevice { fd, name, vnet };
        if vnet {
            dev.tun_set_offload(RX_OFFLOADS)
                .map_err(|e| needs_root(e, "TUNSETOFFLOAD"))?;
        }
        Ok(dev)
    }

    fn tun_set_offload(&self, features: libc::c_uint) -> io::Result<()> {
        // SAFETY: TUNSETOFFLOAD takes the feature bits by value.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), TUNSETOFFLOAD as _, features) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Lets the kernel send us super-segments with partial checksums (`true`), or only
    /// MSS-sized segments with full ones (`false`), from now on. A device without offloads
    /// ignores it. Writes are unaffected.
    pub(crate) fn set_rx_offloads(&self, on: bool) {
        if self.vnet {
            let features = if on { RX_OFFLOADS } else { 0 };
            if let Err(e) = self.tun_set_offload(features) {
                eprintln!("tcpfsm-tun: TUNSETOFFLOAD failed: {e}");
            }
        }
    }

    /// Wraps a descriptor that already carries one datagram per read and write (a
    /// `SOCK_SEQPACKET` socketpair end, see [`crate::relay`]), non-blocking.
    pub(crate) fn from_fd(fd: OwnedFd, name: &str) -> TunDevice {
        TunDevice {
            fd,
            name: name.to_string(),
            vnet: false,
        }
    }

    /// Whether the device was opened with offloads ([`TunDevice::open_with_offloads`]).
    pub fn offloads(&self) -> bool {
        self.vnet
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the MTU, assigns the host addresses with their prefixes (which installs the
    /// connected routes that send the stack's addresses into the TUN) and brings the link up,
    /// by running `ip`. IPv6 addresses are added with `nodad` (duplicate address detection
    /// would hold them "tentative" for a second or more), and it returns once the kernel has
    /// made the IPv6 one usable, so that a first datagram is not dropped.
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
        if let Some(h) = addrs.host_v6 {
            wait_ipv6_ready(h)?;
        }
        Ok(())
    }

    /// Reads one datagram; `WouldBlock` when none is queued. With offloads it may be a
    /// super-segment of up to 64 KiB: give a buffer of 65,535 bytes or more.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_offload(buf).map(|(n, _)| n)
    }

    /// [`TunDevice::recv`], also telling what the offloads did to the datagram.
    pub(crate) fn recv_offload(&self, buf: &mut [u8]) -> io::Result<(usize, RxOffload)> {
        if !self.vnet {
            // SAFETY: `buf` is valid for `buf.len()` bytes of writes.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            return Ok((n as usize, RxOffload::default()));
        }
        let mut hdr = [0u8; VNET_HDR_LEN];
        let iov = [
            libc::iovec {
                iov_base: hdr.as_mut_ptr().cast(),
                iov_len: VNET_HDR_LEN,
            },
            libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            },
        ];
        // SAFETY: both iovecs describe live, writable buffers of their stated lengths.
        let n = unsafe { libc::readv(self.fd.as_raw_fd(), iov.as_ptr(), 2) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = (n as usize).saturating_sub(VNET_HDR_LEN);
        let hdr = VnetHdr::from_bytes(&hdr);
        // A header pointing outside the datagram: handed on as it is; the engine verifies
        // the checksum and drops it if wrong (InCsumErrors).
        let done = complete_checksum(&hdr, &mut buf[..n]).unwrap_or_default();
        Ok((n, done))
    }

    /// Writes one datagram; the kernel takes it as if it arrived on the device.
    pub fn send(&self, pkt: &[u8]) -> io::Result<usize> {
        if self.vnet {
            let hdr = VnetHdr::default().to_bytes();
            return self.send_parts(&hdr, [pkt]).map(|n| n - VNET_HDR_LEN);
        }
        // SAFETY: `pkt` is valid for `pkt.len()` bytes of reads.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), pkt.as_ptr().cast(), pkt.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Writes the emitted datagrams `pkts` (each `buf[..len]`) in order: with offloads,
    /// runs of one connection's data segments as super-segments. Returns (datagrams
    /// written, datagrams refused, super-segment writes).
    pub(crate) fn send_batch(&self, pkts: &[(Vec<u8>, usize)]) -> (u64, u64, u64) {
        let (mut sent, mut failed, mut merged) = (0u64, 0u64, 0u64);
        for w in Coalescer::plan(pkts, self.vnet) {
            let (count, ok) = match &w {
                Write::One(i) => (1, self.send(&pkts[*i].0[..pkts[*i].1]).is_ok()),
                Write::Merged { vnet, range, .. } => {
                    merged += 1;
                    // The merged header, then each segment's payload (no copy).
                    let ok = self.send_parts(&vnet.to_bytes(), w.pieces(pkts)).is_ok();
                    (range.len() as u64, ok)
                }
            };
            // A refused write counts its segments as lost; TCP recovers them.
            if ok {
                sent += count;
            } else {
                failed += count;
            }
        }
        (sent, failed, merged)
    }

    /// One `writev(2)`: the virtio header, then `parts` as one datagram.
    fn send_parts<'p>(
        &self,
        hdr: &[u8; VNET_HDR_LEN],
        parts: impl IntoIterator<Item = &'p [u8]>,
    ) -> io::Result<usize> {
        // On the stack: a write must not allocate. A run has at most MAX_SEGS payloads
        // behind its header.
        const NONE: libc::iovec = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        let mut iov = [NONE; MAX_SEGS + 2];
        iov[0] = libc::iovec {
            iov_base: hdr.as_ptr() as *mut libc::c_void,
            iov_len: hdr.len(),
        };
        let mut n = 1;
        for p in parts {
            assert!(
                n < iov.len(),
                "a super-segment has at most MAX_SEGS segments"
            );
            iov[n] = libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            };
            n += 1;
        }
        // SAFETY: the first `n` iovecs describe live buffers of their stated lengths;
        // writev only reads them.
        let n = unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), n as i32) };
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

/// Waits until the kernel has finished bringing `addr` up. Even with `nodad` the address
/// becomes usable from a workqueue (addrconf_dad_work), so a packet sent at once can find it
/// still tentative and be dropped; /proc/net/if_inet6 shows the flags (IFA_F_TENTATIVE).
fn wait_ipv6_ready(addr: Ipv6Addr) -> io::Result<()> {
    const IFA_F_TENTATIVE: u32 = 0x40;
    let hex: String = addr.octets().iter().map(|b| format!("{b:02x}")).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string("/proc/thread-self/net/if_inet6").unwrap_or_default();
        let ready = text.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 5
                && f[0] == hex
                && u32::from_str_radix(f[4], 16).is_ok_and(|fl| fl & IFA_F_TENTATIVE == 0)
        });
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "{addr} did not become usable within 5 s"
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
