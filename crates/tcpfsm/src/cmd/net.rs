//! `tcpfsm listen PORT` / `tcpfsm connect ADDR PORT`: netcat on our own TCP over a TUN device.
//!
//! stdin goes to the connection, the connection goes to stdout, and every state change of our
//! endpoint is printed to stderr as it happens, with its cause. The two directions end on
//! their own, as with netcat's half-close (RFC 9293 §3.6): end of stdin sends our FIN
//! (shutdown(SHUT_WR)); the peer's FIN ends stdout but not our sending. The command exits
//! when both directions are done and our side has finished closing (CLOSED, or TIME_WAIT —
//! or, with `--linger-time-wait`, once TIME_WAIT is over). How stdin is read when it is a
//! terminal (and the job is in the background) is in [`stdin`].

mod stdin;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tcpfsm_tun::core::{ConnHandle, Endpoint, Event};
use tcpfsm_tun::{Config, Stack, StackConfig, State, TcpListener, TcpStream, TunAddrs};

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
    /// Maximum segment lifetime of our TCP; TIME_WAIT lasts 2×MSL (Linux: 2×30 s)
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    msl: Duration,
}

/// How the relay ends.
#[derive(clap::Args, Debug, Clone)]
pub struct RelayOpts {
    /// Never read stdin, as `nc -d`: receive only; our FIN follows the peer's
    #[arg(short = 'd', long)]
    no_stdin: bool,
    /// After the close, stay until our TIME_WAIT ends (2×MSL), so the last ACK can still be
    /// resent and the state watched; `TIME_WAIT -> CLOSED` is printed when it ends
    #[arg(long)]
    linger_time_wait: bool,
}

/// Shown after `--help` of both commands (a macro, for `concat!`).
macro_rules! about_stdin {
    () => {
        "\
stdin goes to the connection, the connection to stdout, state changes to stderr.
End of stdin (Ctrl-D) sends our FIN; the peer's FIN does not close our side while stdin is
open (netcat's half-close). The command exits when both directions are done.
When stdin is the terminal and the job runs in the background (`&`), it is not read (job
control never stops the process, which would freeze its TCP); `fg` to type to it.

"
    };
}

#[derive(clap::Args, Debug)]
#[command(after_help = LISTEN_HELP)]
pub struct ListenArgs {
    /// Port to listen on
    port: u16,
    /// Listen on this one address only (default: our IPv4 and IPv6 addresses)
    #[arg(long)]
    addr: Option<IpAddr>,
    #[command(flatten)]
    relay: RelayOpts,
    #[command(flatten)]
    tun: TunOpts,
}

const LISTEN_HELP: &str = concat!(
    about_stdin!(),
    "\
Examples:
  ip netns add demo
  tcpfsm listen 5000 --netns demo &            # background job: receive only until `fg`
  ip netns exec demo nc 10.77.0.2 5000         # the kernel's TCP as the client
  tcpfsm listen 5000 --netns demo -d > got.bin # receive only; close when the peer does
  tcpfsm listen 5000 --netns demo --msl 5s --linger-time-wait < /dev/null
"
);

#[derive(clap::Args, Debug)]
#[command(after_help = CONNECT_HELP)]
pub struct ConnectArgs {
    /// Remote address (normally the kernel's end of the TUN: 10.77.0.1 or fd77::1)
    addr: IpAddr,
    /// Remote port
    port: u16,
    /// Give up connecting after this long
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    relay: RelayOpts,
    #[command(flatten)]
    tun: TunOpts,
}

const CONNECT_HELP: &str = concat!(
    about_stdin!(),
    "\
Examples:
  ip netns exec demo nc -l 6000 &              # a kernel server in the namespace
  echo hello | tcpfsm connect 10.77.0.1 6000 --netns demo
  tcpfsm connect 10.77.0.1 6000 --netns demo --msl 2s --linger-time-wait < request.txt
"
);

/// Creates the TUN device and our stack, printing every state change to stderr.
fn start(opts: &TunOpts) -> anyhow::Result<Stack> {
    if !tcpfsm_tun::is_root() {
        bail!("creating a TUN device needs root (CAP_NET_ADMIN); run as root");
    }
    let tcp = Config {
        msl: opts.msl,
        ..Config::default()
    };
    tcp.validate().context("--msl")?;
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
        tcp,
        ..StackConfig::default()
    };
    // Before any thread exists: job control must never stop a process carrying a stack.
    stdin::ignore_tty_stops();
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
    // Said once every listener exists: a client may connect from here on (scripts wait for
    // this line; the first LISTEN line comes before the other family's listener exists).
    let addrs: Vec<String> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .map(|a| a.to_string())
        .collect();
    eprintln!("[tcpfsm] listening on {}", addrs.join(" and "));
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
    relay(&stack, stream, &args.tun, &args.relay)
}

pub fn connect(args: ConnectArgs) -> anyhow::Result<ExitCode> {
    let stack = start(&args.tun)?;
    let remote = SocketAddr::new(args.addr, args.port);
    match TcpStream::connect_timeout(&stack, remote, args.timeout) {
        Ok(s) => relay(&stack, s, &args.tun, &args.relay),
        Err(e) => {
            eprintln!("tcpfsm: connect to {remote}: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Both directions, then the close. stdin → connection runs on a thread (unless `-d`);
/// connection → stdout here.
fn relay(
    stack: &Stack,
    stream: TcpStream,
    tun: &TunOpts,
    opts: &RelayOpts,
) -> anyhow::Result<ExitCode> {
    stream.set_nodelay(!tun.nagle)?;
    let id = stream.id();
    let sending_done = Arc::new(AtomicBool::new(opts.no_stdin));
    let send_failed = Arc::new(AtomicBool::new(false));
    if !opts.no_stdin {
        let writer = stream.try_clone()?;
        let (done, failed) = (sending_done.clone(), send_failed.clone());
        std::thread::spawn(move || {
            match stdin::copy_to(&writer) {
                // End of stdin: half-close, the peer may go on sending (RFC 9293 §3.6).
                Ok(()) => {
                    if let Err(e) = writer.shutdown(Shutdown::Write) {
                        eprintln!("tcpfsm: shutdown: {e}");
                        failed.store(true, Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    eprintln!("tcpfsm: sending stdin: {e}");
                    failed.store(true, Ordering::Relaxed);
                }
            }
            // Our handle goes first, so the close that follows is the main thread's.
            drop(writer);
            done.store(true, Ordering::Relaxed);
        });
    }
    if let Err(e) = copy_to_stdout(&stream) {
        eprintln!("tcpfsm: receive: {e}");
        return Ok(ExitCode::from(1));
    }
    // The peer's stream ended. Our side ends when stdin does (or, with -d, now); a failure of
    // the connection meanwhile (a reset in CLOSE_WAIT) ends the wait too.
    while !stack.wait_until(Duration::from_secs(3600), |ep| {
        sending_done.load(Ordering::Relaxed) || is_closed(ep, id)
    }) {}
    if let Ok(Some(e)) = stream.take_error() {
        eprintln!("tcpfsm: {e}");
        return Ok(ExitCode::from(1));
    }
    // Closed without an error: only through the FIN the stdin thread just sent, so it is
    // about to say it is done.
    let finished = stack.wait_until(Duration::from_secs(5), |_| {
        sending_done.load(Ordering::Relaxed)
    });
    if !finished || send_failed.load(Ordering::Relaxed) {
        return Ok(ExitCode::from(1));
    }
    // Both directions are done: close (a FIN if stdin's end has not sent it yet).
    drop(stream);
    let done = stack.wait_until(Duration::from_secs(10), |ep| {
        matches!(ep.state(id), None | Some(State::Closed | State::TimeWait))
    });
    if !done {
        eprintln!("tcpfsm: the connection did not finish closing within 10 s");
        return Ok(ExitCode::from(1));
    }
    if opts.linger_time_wait && in_time_wait(&stack.connections(), id) {
        let tw = stack.config().time_wait_duration();
        eprintln!(
            "[tcpfsm] staying until TIME_WAIT ends ({} = 2×MSL)",
            humantime::format_duration(tw)
        );
        // The record expires on the driver's timer; a little slack for a loaded machine.
        let gone = stack.wait_until(tw + Duration::from_secs(5), |ep| {
            !in_time_wait(&ep.connections(), id)
        });
        if !gone {
            eprintln!("tcpfsm: TIME_WAIT did not end on time");
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The connection is over for us: CLOSED (its handle still held) or gone.
fn is_closed(ep: &Endpoint, id: ConnHandle) -> bool {
    matches!(ep.state(id), None | Some(State::Closed))
}

fn in_time_wait(conns: &[tcpfsm_tun::core::ConnInfo], id: ConnHandle) -> bool {
    conns
        .iter()
        .any(|c| c.id == Some(id) && c.state == State::TimeWait)
}

/// Connection → stdout until the peer's end of stream.
fn copy_to_stdout(stream: &TcpStream) -> io::Result<()> {
    let mut out = io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    let mut r = stream;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                out.write_all(&buf[..n])?;
                out.flush()?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
