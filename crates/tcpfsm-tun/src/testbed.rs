//! Two network namespaces joined by an impaired link: kernel ↔ relay ↔ kernel.
//!
//! ```text
//!   netns A                                   netns B
//!   10.99.0.1, fd99::1                        10.99.0.2, fd99::2
//!   kernel TCP ── imp0 (TUN) ══ Relay ══ imp0 (TUN) ── kernel TCP
//!                        up: A → B ▶   ◀ down: B → A
//! ```
//!
//! Each namespace gets a TUN device holding its own address with a prefix that covers the
//! other's, so each kernel routes the other's address into its TUN, and the relay carries
//! the datagrams across through the impairment engine. Any program run in a namespace
//! (`ip netns exec NAME-a iperf3 -s`) talks across the impaired link.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::device::{TunAddrs, TunDevice};
use crate::netns::{self, NetNs};
use crate::relay::{Relay, RelayConfig, Tap};

/// The two ends' addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkAddrs {
    pub a_v4: Ipv4Addr,
    pub b_v4: Ipv4Addr,
    pub prefix_v4: u8,
    pub a_v6: Ipv6Addr,
    pub b_v6: Ipv6Addr,
    pub prefix_v6: u8,
}

impl Default for LinkAddrs {
    /// 10.99.0.1 ↔ 10.99.0.2 (/24) and fd99::1 ↔ fd99::2 (/64).
    fn default() -> LinkAddrs {
        LinkAddrs {
            a_v4: Ipv4Addr::new(10, 99, 0, 1),
            b_v4: Ipv4Addr::new(10, 99, 0, 2),
            prefix_v4: 24,
            a_v6: Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 1),
            b_v6: Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 2),
            prefix_v6: 64,
        }
    }
}

/// How to build a [`TestBed`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TestBedConfig {
    /// The TUN device's name in each namespace.
    pub dev: String,
    pub mtu: u32,
    pub addrs: LinkAddrs,
    pub relay: RelayConfig,
}

impl TestBedConfig {
    pub fn new(relay: RelayConfig) -> TestBedConfig {
        TestBedConfig {
            dev: "imp0".into(),
            mtu: 1500,
            addrs: LinkAddrs::default(),
            relay,
        }
    }
}

/// Two namespaces and the relay between them. Dropping it stops the relay (the TUN devices go
/// with it) and deletes the namespaces it created.
pub struct TestBed {
    // Field order: the relay stops before the namespaces are deleted.
    relay: Relay,
    _owned: Vec<NetNs>,
    ns: [String; 2],
    addrs: LinkAddrs,
}

impl TestBed {
    /// Creates namespaces `PREFIX-a` and `PREFIX-b` (refusing to touch existing ones) and the
    /// link between them.
    pub fn create(prefix: &str, cfg: TestBedConfig) -> io::Result<TestBed> {
        TestBed::create_with_tap(prefix, cfg, None)
    }

    /// [`TestBed::create`] with a [`Tap`] on the relay (`Up` is A → B).
    pub fn create_with_tap(
        prefix: &str,
        cfg: TestBedConfig,
        tap: Option<Tap>,
    ) -> io::Result<TestBed> {
        let names = [format!("{prefix}-a"), format!("{prefix}-b")];
        for n in &names {
            if Path::new(&format!("/run/netns/{n}")).exists() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "network namespace {n:?} already exists; pick another name or delete it \
                         (ip netns del {n})"
                    ),
                ));
            }
        }
        let a = NetNs::create(&names[0])?;
        let b = NetNs::create(&names[1])?;
        TestBed::build(names, vec![a, b], cfg, tap)
    }

    /// Joins two existing namespaces (left in place on drop; only the devices go).
    pub fn join(ns_a: &str, ns_b: &str, cfg: TestBedConfig) -> io::Result<TestBed> {
        TestBed::build([ns_a.into(), ns_b.into()], Vec::new(), cfg, None)
    }

    fn build(
        ns: [String; 2],
        owned: Vec<NetNs>,
        cfg: TestBedConfig,
        tap: Option<Tap>,
    ) -> io::Result<TestBed> {
        if ns[0] == ns[1] {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the two ends must be different network namespaces",
            ));
        }
        let a = &cfg.addrs;
        // Each end holds its own address; the prefix routes the other end's into the TUN
        // (TunAddrs' `stack_*` is the far end here).
        let end_a = TunAddrs {
            host_v4: Some(a.a_v4),
            stack_v4: Some(a.b_v4),
            prefix_v4: a.prefix_v4,
            host_v6: Some(a.a_v6),
            stack_v6: Some(a.b_v6),
            prefix_v6: a.prefix_v6,
        };
        let end_b = TunAddrs {
            host_v4: Some(a.b_v4),
            stack_v4: Some(a.a_v4),
            host_v6: Some(a.b_v6),
            stack_v6: Some(a.a_v6),
            ..end_a.clone()
        };
        let open = |ns: &str, addrs: &TunAddrs| -> io::Result<TunDevice> {
            netns::run_in(ns, || {
                let dev = TunDevice::open(&cfg.dev).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("{e} (device {:?} in namespace {ns:?})", cfg.dev),
                    )
                })?;
                dev.configure(cfg.mtu, addrs)?;
                Ok(dev)
            })?
        };
        let dev_a = open(&ns[0], &end_a)?;
        let dev_b = open(&ns[1], &end_b)?;
        let relay = Relay::start_with_tap(dev_a, dev_b, cfg.relay, tap)?;
        Ok(TestBed {
            relay,
            _owned: owned,
            ns,
            addrs: cfg.addrs,
        })
    }

    pub fn ns_a(&self) -> &str {
        &self.ns[0]
    }

    pub fn ns_b(&self) -> &str {
        &self.ns[1]
    }

    /// End A's address of the given family.
    pub fn addr_a(&self, v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(self.addrs.a_v6)
        } else {
            IpAddr::V4(self.addrs.a_v4)
        }
    }

    pub fn addr_b(&self, v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(self.addrs.b_v6)
        } else {
            IpAddr::V4(self.addrs.b_v4)
        }
    }

    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// Runs `f` on a thread inside namespace A (sockets made there live there).
    pub fn in_a<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        netns::run_in(&self.ns[0], f)
    }

    pub fn in_b<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        netns::run_in(&self.ns[1], f)
    }
}
