//! Our bytes against the Linux kernel's TCP: segments we emit are written
//! into a TUN device inside a private network namespace, and what the kernel
//! sends back is read from it and parsed. TUN without a vnet header makes the
//! kernel verify our checksums in software (CHECKSUM_NONE) and hand us fully
//! checksummed packets, so both directions of the checksum code are checked
//! by an independent implementation. Needs root (CLONE_NEWNET, /dev/net/tun).

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::{Duration, Instant};

use tcpfsm_wire::*;

const OUR_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 2));
const KERNEL_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1));
const OUR_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 2));
const KERNEL_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 1));
const OUR_PORT: u16 = 40000;

/// Runs `f` on a fresh thread moved into a new network namespace; the
/// namespace (and the TUN in it) disappears when the thread and its fds end.
fn in_private_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: unshare affects only the calling thread here (CLONE_NEWNET).
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        );
        f()
    })
    .join()
    .expect("netns thread")
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {args:?} failed");
}

/// Creates TUN `tunw0` (no packet-info header), addresses it, brings it up.
fn open_tun() -> OwnedFd {
    // SAFETY: plain open(2) of a NUL-terminated path.
    let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK) };
    assert!(
        fd >= 0,
        "open /dev/net/tun: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: fd was just returned by open and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"tunw0") {
        *d = *s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads an ifreq we own for the duration of the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut ifr) };
    assert_eq!(rc, 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
    ip(&["link", "set", "lo", "up"]);
    ip(&["addr", "add", "10.99.0.1/24", "dev", "tunw0"]);
    ip(&[
        "-6",
        "addr",
        "add",
        "fd00:99::1/64",
        "dev",
        "tunw0",
        "nodad",
    ]);
    ip(&["link", "set", "tunw0", "up"]);
    fd
}

fn tun_write(fd: &OwnedFd, datagram: &[u8]) {
    // SAFETY: writes from a live slice of the given length.
    let n = unsafe { libc::write(fd.as_raw_fd(), datagram.as_ptr().cast(), datagram.len()) };
    assert_eq!(
        n,
        datagram.len() as isize,
        "tun write: {}",
        std::io::Error::last_os_error()
    );
}

/// Reads datagrams until one is TCP to our port (the kernel also emits MLD
/// and router solicitations on a fresh interface) or the timeout passes.
/// Returns the raw bytes; the caller parses them (borrowing).
fn tun_read_tcp(fd: &OwnedFd, timeout: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65536];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as libc::c_int) };
        if rc <= 0 {
            continue;
        }
        // SAFETY: reads into a live buffer of the given length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            continue;
        }
        let d = &buf[..n as usize];
        match parse_ip_tcp(d) {
            Ok(p) if p.tcp.dst_port == OUR_PORT => return Some(d.to_vec()),
            Ok(_) | Err(Error::NotTcp(_)) => continue,
            Err(e) => panic!("kernel datagram failed to parse: {e} ({d:02x?})"),
        }
    }
}

fn our_syn(isn: u32) -> TcpRepr<'static> {
    TcpRepr {
        src_port: OUR_PORT,
        seq: SeqNum(isn),
        flags: Flags::SYN,
        window: 65535,
        options: TcpOptions {
            mss: Some(1400),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some(Timestamps {
                tsval: 0x0102_0304,
                tsecr: 0,
            }),
            ..TcpOptions::default()
        },
        ..TcpRepr::default()
    }
}

fn send(fd: &OwnedFd, src: IpAddr, dst: IpAddr, repr: &TcpRepr<'_>) {
    let mut buf = Vec::new();
    emit_ip_tcp(src, dst, repr, &mut buf).unwrap();
    tun_write(fd, &buf);
}

fn accept_within(l: &TcpListener, t: Duration) -> Option<TcpStream> {
    l.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + t;
    while Instant::now() < deadline {
        if let Ok((s, _)) = l.accept() {
            s.set_nonblocking(false).unwrap();
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// Full exchange: our SYN, the kernel's SYN-ACK (options echoed), our ACK,
/// accept, data both ways.
fn handshake_and_data(ours: IpAddr, kernel: IpAddr) {
    let fd = open_tun();
    let listener = TcpListener::bind(SocketAddr::new(kernel, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let isn = 0xfffff000; // close to the wrap, so seq arithmetic crosses 2^32 soon

    let mut syn = our_syn(isn);
    syn.dst_port = port;
    // Resent every 250 ms for up to 3 s, as a TCP would: even with `nodad` the kernel makes
    // an IPv6 address usable from a workqueue after the link comes up (addrconf_dad_work),
    // so the first SYN can find it still tentative and be dropped (about one run in 20).
    let raw = (0..12)
        .find_map(|_| {
            send(&fd, ours, kernel, &syn);
            tun_read_tcp(&fd, Duration::from_millis(250))
        })
        .expect("no SYN-ACK from the kernel");
    let sa = parse_ip_tcp(&raw).unwrap();
    assert_eq!((sa.src, sa.dst), (kernel, ours));
    assert_eq!(sa.tcp.src_port, port);
    assert_eq!(sa.tcp.flags, Flags::SYN | Flags::ACK, "{}", sa.tcp);
    assert_eq!(
        sa.tcp.ack,
        SeqNum(isn) + 1,
        "SYN-ACK acknowledges our ISN + 1"
    );
    // The kernel understood every option we sent and answered in kind.
    let o = sa.tcp.options;
    assert!(o.mss.is_some(), "{}", sa.tcp);
    assert!(o.sack_permitted, "{}", sa.tcp);
    assert!(o.window_scale.is_some(), "{}", sa.tcp);
    assert_eq!(
        o.timestamps.map(|t| t.tsecr),
        Some(0x0102_0304),
        "TSecr echoes our TSval"
    );
    let their_ts = o.timestamps.unwrap().tsval;
    let their_isn = sa.tcp.seq;

    let ts = Some(Timestamps {
        tsval: 0x0102_0305,
        tsecr: their_ts,
    });
    let ack = TcpRepr {
        src_port: OUR_PORT,
        dst_port: port,
        seq: SeqNum(isn) + 1,
        ack: their_isn + 1,
        flags: Flags::ACK,
        window: 512, // scaled by 2^7
        options: TcpOptions {
            timestamps: ts,
            ..TcpOptions::default()
        },
        ..TcpRepr::default()
    };
    send(&fd, ours, kernel, &ack);
    let mut stream = accept_within(&listener, Duration::from_secs(3)).expect("kernel accepted");

    // Data from us, across the 2^32 wrap of our sequence space.
    let payload = vec![0xabu8; 5000 - 1];
    for (i, chunk) in payload.chunks(1000).enumerate() {
        let seg = TcpRepr {
            seq: SeqNum(isn) + 1 + (i * 1000) as u32,
            flags: Flags::ACK | Flags::PSH,
            payload: chunk,
            ..ack.clone()
        };
        send(&fd, ours, kernel, &seg);
    }
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut got = vec![0u8; payload.len()];
    stream
        .read_exact(&mut got)
        .expect("kernel delivered our data");
    assert_eq!(got, payload);

    // Data from the kernel: its checksum must verify in our parser.
    stream.write_all(b"hello from linux").unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let raw = tun_read_tcp(&fd, deadline - Instant::now()).expect("kernel data segment");
        let p = parse_ip_tcp(&raw).unwrap();
        if p.tcp.payload.is_empty() {
            continue; // a pure ACK of our data
        }
        assert_eq!(p.tcp.payload, b"hello from linux");
        assert_eq!(p.tcp.seq, their_isn + 1);
        assert_eq!(p.tcp.ack, SeqNum(isn) + 1 + payload.len() as u32);
        break;
    }
}

#[test]
fn linux_completes_handshake_and_exchanges_data_with_our_segments_ipv4() {
    if !tcpfsm_testkit::require_root("TUN in a private network namespace") {
        return;
    }
    in_private_netns(|| handshake_and_data(OUR_V4, KERNEL_V4));
}

#[test]
fn linux_completes_handshake_and_exchanges_data_with_our_segments_ipv6() {
    if !tcpfsm_testkit::require_root("TUN in a private network namespace") {
        return;
    }
    in_private_netns(|| handshake_and_data(OUR_V6, KERNEL_V6));
}

fn tcp_in_csum_errors() -> u64 {
    // /proc/thread-self: the snmp file of *this thread's* namespace.
    let s = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap();
    let mut tcp = s.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next().unwrap(), tcp.next().unwrap());
    let idx = names
        .split_whitespace()
        .position(|n| n == "InCsumErrors")
        .unwrap();
    values.split_whitespace().nth(idx).unwrap().parse().unwrap()
}

/// The positive tests above only mean something if Linux really checks
/// checksums on this path: a SYN with one flipped bit gets no answer and is
/// counted as a checksum error.
#[test]
fn linux_drops_our_syn_when_its_checksum_is_corrupted() {
    if !tcpfsm_testkit::require_root("TUN in a private network namespace") {
        return;
    }
    in_private_netns(|| {
        let fd = open_tun();
        let listener = TcpListener::bind(SocketAddr::new(KERNEL_V4, 0)).unwrap();
        let mut syn = our_syn(1);
        syn.dst_port = listener.local_addr().unwrap().port();
        let mut buf = Vec::new();
        emit_ip_tcp(OUR_V4, KERNEL_V4, &syn, &mut buf).unwrap();
        let before = tcp_in_csum_errors();
        buf[20 + 16] ^= 0x01; // TCP checksum field
        tun_write(&fd, &buf);
        assert!(
            tun_read_tcp(&fd, Duration::from_millis(500)).is_none(),
            "kernel answered"
        );
        assert_eq!(tcp_in_csum_errors(), before + 1);
        // And the uncorrupted SYN is answered (same namespace, same listener).
        buf[20 + 16] ^= 0x01;
        tun_write(&fd, &buf);
        assert!(
            tun_read_tcp(&fd, Duration::from_secs(3)).is_some(),
            "no SYN-ACK"
        );
    });
}
