//! `tcpfsm listen PORT` / `tcpfsm connect ADDR PORT`: netcat on our own TCP over a TUN device.
//!
//! stdin goes to the connection (end of stdin = shutdown(Write), a half-close), the
//! connection goes to stdout, and every state change of our endpoint is printed to stderr as
//! it happens, with its cause. The command exits once the peer's stream has ended and our
//! side has finished closing (CLOSED, or TIME_WAIT, which ends with the process).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tcpfsm_tun::core::Event;
use tcpfsm_tun::{Stack, StackConfig, State, TcpListener, TcpStream, TunAddrs};

/// The TUN link shared by both commands.
#[derive(clap::Args, Debug, Clone)]
pub struct TunOpts {
    /// Name of the TUN device to create
    #[arg(long, default_value = "tcpfsm0")]
    tun: String,
    /// Create the device inside this existing network namespace (`ip netns add NAME`)
    #[arg(long, value_name = "NAME")]
    netns: Option<String>,
    /// Link MTU; our MSS follows it
    #[arg(long, default_value_t = 1500)]
    mtu: u32,
    /// Our stack's IPv4 address
    #[arg(long, default_value = "10.77.0.2")]
    stack_v4: Ipv4Addr,
    /// The kernel's IPv4 address on the TUN (with --prefix-v4, routes our address into it)
    #[arg(long, default_value = "10.77.0.1")]
    host_v4: Ipv4Addr,
    #[arg(long, default_value_t = 24)]
    prefix_v4: u8,
    /// Our stack's IPv6 address
    #[arg(long, default_value = "fd77::2")]
    stack_v6: Ipv6Addr,
    /// The kernel's IPv6 address on the TUN
    #[arg(long, default_value = "fd77::1")]
    host_v6: Ipv6Addr,
    #[arg(long, default_value_t = 64)]
    prefix_v6: u8,
    /// Keep Nagle's algorithm on (by default TCP_NODELAY is set, as fits interactive use)
    #[arg(long)]
    nagle: bool,
}

#[derive(clap::Args, Debug)]
pub struct ListenArgs {
    /// Port to listen on
    port: u16,
    /// Listen on this one address only (default: our IPv4 and IPv6 addresses)
    #[arg(long)]
    addr: Option<IpAddr>,
    #[command(flatten)]
    tun: TunOpts,
}

#[derive(clap::Args, Debug)]
pub struct ConnectArgs {
    /// Remote address (normally the kernel's end of the TUN: 10.77.0.1 or fd77::1)
    addr: IpAddr,
    /// Remote port
    port: u16,
    /// Give up connecting after this long
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    tun: TunOpts,
}

/// Creates the TUN device and our stack, printing every state change to stderr.
fn start(opts: &TunOpts) -> anyhow::Result<Stack> {
    if !tcpfsm_tun::is_root() {
        bail!("creating a TUN device needs root (CAP_NET_ADMIN); run as root");
    }
    let cfg = StackConfig {
        tun_name: opts.tun.clone(),
        mtu: opts.mtu,
        addrs: TunAddrs {
            host_v4: Some(opts.host_v4),
            stack_v4: Some(opts.stack_v4),
            prefix_v4: opts.prefix_v4,
            host_v6: Some(opts.host_v6),
            stack_v6: Some(opts.stack_v6),
            prefix_v6: opts.prefix_v6,
        },
        netns: opts.netns.clone(),
        ..StackConfig::default()
    };
    let stack = Stack::new(cfg).with_context(|| format!("creating TUN device {:?}", opts.tun))?;
    stack.subscribe(|ev| {
        if let Event::StateChanged {
            tuple,
            from,
            to,
            cause,
            ..
        } = ev
        {
            eprintln!("[tcpfsm] {tuple} {from} -> {to} ({cause})");
        }
    });
    eprintln!(
        "[tcpfsm] TUN {} up{}: kernel {} / {}, our stack {} / {}",
        stack.device_name(),
        opts.netns
            .as_deref()
            .map(|n| format!(" in netns {n}"))
            .unwrap_or_default(),
        opts.host_v4,
        opts.host_v6,
        opts.stack_v4,
        opts.stack_v6
    );
    Ok(stack)
}

pub fn listen(args: ListenArgs) -> anyhow::Result<ExitCode> {
    let stack = start(&args.tun)?;
    let ips: Vec<IpAddr> = match args.addr {
        Some(ip) => vec![ip],
        None => vec![
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        ],
    };
    let listeners = ips
        .into_iter()
        .map(|ip| {
            let a = SocketAddr::new(ip, args.port);
            TcpListener::bind(&stack, a).with_context(|| format!("listen on {a}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // One connection, from whichever family comes first.
    let stream = loop {
        let mut got = None;
        for l in &listeners {
            match l.accept_timeout(Duration::from_millis(50)) {
                Ok((s, _)) => {
                    got = Some(s);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                Err(e) => return Err(e).context("accept"),
            }
        }
        if let Some(s) = got {
            break s;
        }
    };
    drop(listeners);
    relay(&stack, stream, &args.tun)
}

pub fn connect(args: ConnectArgs) -> anyhow::Result<ExitCode> {
    let stack = start(&args.tun)?;
    let remote = SocketAddr::new(args.addr, args.port);
    match TcpStream::connect_timeout(&stack, remote, args.timeout) {
        Ok(s) => relay(&stack, s, &args.tun),
        Err(e) => {
            eprintln!("tcpfsm: connect to {remote}: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// stdin → connection (on a thread), connection → stdout (here), then a graceful close.
fn relay(stack: &Stack, stream: TcpStream, opts: &TunOpts) -> anyhow::Result<ExitCode> {
    stream.set_nodelay(!opts.nagle)?;
    let id = stream.id();
    let stream = Arc::new(stream);
    let writer = stream.clone();
    std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Err(e) = (&*writer).write_all(&buf[..n]) {
                        eprintln!("tcpfsm: send: {e}");
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    eprintln!("tcpfsm: reading stdin: {e}");
                    break;
                }
            }
        }
        // End of stdin: half-close, keep reading the peer (RFC 9293 §3.6).
        let _ = writer.shutdown(Shutdown::Write);
    });
    let mut out = io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    let mut code = ExitCode::SUCCESS;
    loop {
        match (&*stream).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.write_all(&buf[..n])?;
                out.flush()?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("tcpfsm: receive: {e}");
                code = ExitCode::from(1);
                break;
            }
        }
    }
    // Closing drops our handle (the stdin thread's clone may still hold it: close through
    // shutdown so the FIN goes out either way), then wait for the close to finish.
    let _ = stream.shutdown(Shutdown::Write);
    drop(stream);
    let done = stack.wait_until(Duration::from_secs(10), |ep| {
        matches!(
            ep.state(id),
            None | Some(State::Closed) | Some(State::TimeWait)
        )
    });
    if !done {
        eprintln!("tcpfsm: the connection did not finish closing within 10 s");
    }
    Ok(code)
}
