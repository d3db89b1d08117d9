//! `tcpfsm link`: an impaired link between two network namespaces, for any program.
//!
//! The kernel of each namespace sends into a TUN device; this process relays the datagrams
//! between the two devices through the seeded impairment engine (`tcpfsm-impair`, the one the
//! simulator uses), so loss, bursty loss, duplication, reordering, delay with jitter,
//! corruption and a bottleneck rate with a drop-tail queue need no netem. Until Ctrl-C (or
//! `--duration`), then the devices go and `--create`d namespaces are deleted.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tcpfsm_tun::impair::{Counters, Impairment};
use tcpfsm_tun::{LinkAddrs, RelayConfig, RelayStats, TestBed, TestBedConfig};

/// Impairments applied to both directions; `--up`/`--down` then refine one direction.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LinkFlags {
    /// One-way propagation delay (e.g. 25ms)
    #[arg(long, value_name = "DURATION")]
    delay: Option<String>,
    /// Extra delay, uniform in [0, D] per packet; keeps order unless --jitter-reorders
    #[arg(long, value_name = "DURATION")]
    jitter: Option<String>,
    /// Let jitter reorder packets
    #[arg(long)]
    jitter_reorders: bool,
    /// Random (Bernoulli) loss, e.g. 1% or 0.01
    #[arg(long, value_name = "P")]
    loss: Option<String>,
    /// Bursty Gilbert-Elliott loss p,r[,h,k]: enter the bad state with p, leave it with r; a
    /// packet gets through with h when bad (default 0) and k when good (default 1)
    #[arg(long, value_name = "P,R[,H,K]")]
    gilbert: Option<String>,
    /// Duplicate packets with this probability
    #[arg(long, value_name = "P")]
    dup: Option<String>,
    /// Hold packets back with this probability, so later ones overtake them
    #[arg(long, value_name = "P")]
    reorder: Option<String>,
    /// ... by an extra delay uniform in (0, D] (default: up to max(delay, 1ms))
    #[arg(long, value_name = "DURATION", conflicts_with = "reorder_packets")]
    reorder_delay: Option<String>,
    /// ... or until N later packets have passed
    #[arg(long, value_name = "N")]
    reorder_packets: Option<String>,
    /// Flip one bit past the IP header with this probability (the receiver's checksum drops it)
    #[arg(long, value_name = "P")]
    corrupt: Option<String>,
    /// Bottleneck rate in tc units: 100mbit, 1.5gbit, 512kbit
    #[arg(long, value_name = "RATE")]
    rate: Option<String>,
    /// Drop-tail limit of the rate limiter's queue: packets (100) or bytes (64kb, 1mib);
    /// default 1000 packets
    #[arg(long, value_name = "LIMIT")]
    queue: Option<String>,
}

impl LinkFlags {
    /// The impairment every direction starts from.
    fn impairment(&self) -> anyhow::Result<Impairment> {
        let mut imp = Impairment::default();
        let pairs = [
            ("delay", &self.delay),
            ("jitter", &self.jitter),
            ("loss", &self.loss),
            ("gilbert", &self.gilbert),
            ("dup", &self.dup),
            ("reorder", &self.reorder),
            ("reorder-delay", &self.reorder_delay),
            ("reorder-packets", &self.reorder_packets),
            ("corrupt", &self.corrupt),
            ("rate", &self.rate),
            ("queue", &self.queue),
        ];
        for (key, value) in pairs {
            if let Some(v) = value {
                imp.set(key, v).with_context(|| format!("--{key}"))?;
            }
        }
        if self.jitter_reorders {
            imp.jitter_reorders = true;
        }
        if self.loss.is_some() && self.gilbert.is_some() {
            bail!("--loss and --gilbert are two loss models; give one");
        }
        imp.validate()?;
        Ok(imp)
    }
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Directions: \"up\" is A -> B (the first --netns, or NAME-a -> NAME-b), \"down\" is B -> A.
--up/--down take the same properties as the flags, written as the simulator's link lines:
  --up \"rate 10mbit queue 50\" --down \"delay 40ms gilbert 1%,30%\"

Example:
  tcpfsm link --create demo --delay 25ms --loss 1%
  ip netns exec demo-a iperf3 -s
  ip netns exec demo-b iperf3 -c 10.99.0.1")]
pub struct Args {
    /// Create namespaces NAME-a and NAME-b joined by the link (deleted on exit)
    #[arg(long, value_name = "NAME", conflicts_with = "netns")]
    create: Option<String>,
    /// Join two existing namespaces (give it twice: A, then B)
    #[arg(long, value_name = "NS", num_args = 1, action = clap::ArgAction::Append)]
    netns: Vec<String>,
    #[command(flatten)]
    flags: LinkFlags,
    /// Extra properties for A -> B only, e.g. "loss 2% rate 10mbit"
    #[arg(long, value_name = "SPEC")]
    up: Option<String>,
    /// Extra properties for B -> A only
    #[arg(long, value_name = "SPEC")]
    down: Option<String>,
    /// Seed of the random streams (default: random, printed)
    #[arg(long)]
    seed: Option<u64>,
    /// MTU of both TUN devices
    #[arg(long, default_value_t = 1500)]
    mtu: u32,
    /// Name of the TUN device in each namespace
    #[arg(long, default_value = "imp0")]
    dev: String,
    /// A's and B's IPv4 addresses (a /24 between them)
    #[arg(long, default_value = "10.99.0.1")]
    addr_a: Ipv4Addr,
    #[arg(long, default_value = "10.99.0.2")]
    addr_b: Ipv4Addr,
    /// A's and B's IPv6 addresses (a /64 between them)
    #[arg(long, default_value = "fd99::1")]
    addr6_a: Ipv6Addr,
    #[arg(long, default_value = "fd99::2")]
    addr6_b: Ipv6Addr,
    /// Print the counters every INTERVAL (they are always printed on exit)
    #[arg(long, value_name = "INTERVAL", value_parser = humantime::parse_duration)]
    stats: Option<Duration>,
    /// Counters as JSON lines
    #[arg(long)]
    json: bool,
    /// Stop after this long instead of waiting for Ctrl-C
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
}

/// Both directions' impairments from the shared flags and the per-direction specs.
fn directions(args: &Args) -> anyhow::Result<(Impairment, Impairment)> {
    let base = args.flags.impairment()?;
    let mut up = base;
    let mut down = base;
    if let Some(spec) = &args.up {
        up.apply_spec(spec).context("--up")?;
    }
    if let Some(spec) = &args.down {
        down.apply_spec(spec).context("--down")?;
    }
    if args.flags.queue.is_some() && up.rate.is_none() && down.rate.is_none() {
        bail!("--queue limits the rate limiter's queue; give --rate too");
    }
    Ok((up, down))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Everything the user typed is checked before anything is created.
    let (up, down) = directions(&args)?;
    let ends: [String; 2] = match (&args.create, args.netns.as_slice()) {
        (Some(name), []) => [format!("{name}-a"), format!("{name}-b")],
        (None, [a, b]) => [a.clone(), b.clone()],
        (None, []) => bail!("say where the link goes: --create NAME, or --netns A --netns B"),
        (None, more) => bail!("--netns takes exactly two namespaces, got {}", more.len()),
        (Some(_), _) => bail!("--create and --netns exclude each other"),
    };
    if let Some(name) = &args.create {
        // ip netns names are file names; "-a"/"-b" is appended.
        if name.is_empty() || name.contains(['/', ' ']) || name.len() > 200 {
            bail!("bad namespace name {name:?}");
        }
    }
    // Each end's prefix must route the other end's address into its TUN.
    if args.addr_a.octets()[..3] != args.addr_b.octets()[..3] || args.addr_a == args.addr_b {
        bail!(
            "--addr-a {} and --addr-b {} must be two addresses of one /24",
            args.addr_a,
            args.addr_b
        );
    }
    if args.addr6_a.segments()[..4] != args.addr6_b.segments()[..4] || args.addr6_a == args.addr6_b
    {
        bail!(
            "--addr6-a {} and --addr6-b {} must be two addresses of one /64",
            args.addr6_a,
            args.addr6_b
        );
    }
    if !tcpfsm_tun::is_root() {
        bail!("the link needs root (network namespaces and TUN devices: CAP_NET_ADMIN, CAP_SYS_ADMIN)");
    }
    let seed = args.seed.unwrap_or_else(random_seed);
    let mut cfg = TestBedConfig::new(RelayConfig::new(up, down, seed));
    cfg.mtu = args.mtu;
    cfg.dev = args.dev.clone();
    let mut addrs = LinkAddrs::default();
    addrs.a_v4 = args.addr_a;
    addrs.b_v4 = args.addr_b;
    addrs.a_v6 = args.addr6_a;
    addrs.b_v6 = args.addr6_b;
    cfg.addrs = addrs;
    // Signals first, so a Ctrl-C during setup still cleans up through the normal path.
    tcpfsm_live::signal::install();
    let bed = match &args.create {
        Some(name) => TestBed::create(name, cfg),
        None => TestBed::join(&ends[0], &ends[1], cfg),
    }
    .with_context(|| format!("setting up the link {} <-> {}", ends[0], ends[1]))?;
    print_banner(&args, &bed, &up, &down, seed);
    let started = Instant::now();
    let mut last_print = Instant::now();
    loop {
        if tcpfsm_live::signal::stop_requested() {
            break;
        }
        if args.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        if !bed.relay().is_running() {
            bail!("the relay thread stopped unexpectedly");
        }
        if let Some(every) = args.stats {
            if last_print.elapsed() >= every {
                print_stats(&args, &bed.relay().stats(), started.elapsed(), false);
                last_print = Instant::now();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = bed.relay().stats();
    drop(bed);
    print_stats(&args, &stats, started.elapsed(), true);
    Ok(ExitCode::SUCCESS)
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    h.finish()
}

fn print_banner(args: &Args, bed: &TestBed, up: &Impairment, down: &Impairment, seed: u64) {
    let (a, b) = (bed.ns_a(), bed.ns_b());
    if args.json {
        let line = serde_json::json!({
            "event": "ready", "a": a, "b": b, "seed": seed,
            "a_addrs": [bed.addr_a(false).to_string(), bed.addr_a(true).to_string()],
            "b_addrs": [bed.addr_b(false).to_string(), bed.addr_b(true).to_string()],
            "up": up.to_string(), "down": down.to_string(),
        });
        println!("{line}");
        return;
    }
    println!(
        "tcpfsm link: {a} ({}, {}) <-> {b} ({}, {}), seed {seed}",
        bed.addr_a(false),
        bed.addr_a(true),
        bed.addr_b(false),
        bed.addr_b(true)
    );
    println!("  up   {a} -> {b}: {up}");
    println!("  down {b} -> {a}: {down}");
    println!("Run programs on either side, e.g.:");
    println!("  ip netns exec {a} iperf3 -s");
    println!("  ip netns exec {b} iperf3 -c {}", bed.addr_a(false));
    let what = if args.create.is_some() {
        "stops the link and deletes the namespaces"
    } else {
        "stops the link"
    };
    println!("Ctrl-C {what}.");
}

fn counters_json(c: &Counters) -> serde_json::Value {
    serde_json::json!({
        "packets_in": c.packets_in, "bytes_in": c.bytes_in,
        "packets_out": c.packets_out, "bytes_out": c.bytes_out,
        "dropped_loss": c.dropped_loss, "dropped_queue": c.dropped_queue,
        "duplicated": c.duplicated, "reordered": c.reordered, "corrupted": c.corrupted,
        "queued_packets": c.queued_packets, "queued_bytes": c.queued_bytes,
        "queue_peak_bytes": c.queue_peak_bytes, "in_flight": c.in_flight,
    })
}

fn print_stats(args: &Args, s: &RelayStats, elapsed: Duration, last: bool) {
    if args.json {
        let line = serde_json::json!({
            "event": if last { "final" } else { "stats" },
            "elapsed_s": elapsed.as_secs_f64(),
            "up": counters_json(&s.up), "down": counters_json(&s.down),
            "write_errors": s.write_errors, "late": s.late,
            "max_lateness_us": s.max_lateness.as_micros() as u64,
        });
        println!("{line}");
        return;
    }
    println!(
        "{:.1}s  {:<4} {:>9} {:>9} {:>7} {:>7} {:>6} {:>6} {:>6} {:>9}",
        elapsed.as_secs_f64(),
        "dir",
        "pkts in",
        "pkts out",
        "lost",
        "q-drop",
        "dup",
        "reord",
        "corrupt",
        "queued B"
    );
    for (name, c) in [("up", &s.up), ("down", &s.down)] {
        println!(
            "      {name:<4} {:>9} {:>9} {:>7} {:>7} {:>6} {:>6} {:>6} {:>9}",
            c.packets_in,
            c.packets_out,
            c.dropped_loss,
            c.dropped_queue,
            c.duplicated,
            c.reordered,
            c.corrupted,
            c.queued_bytes
        );
    }
    if s.write_errors > 0 || s.late > 0 {
        println!(
            "      {} write errors; {} packets more than 1 ms late (worst {} µs)",
            s.write_errors,
            s.late,
            s.max_lateness.as_micros()
        );
    }
}
