//! The pluggable congestion controller (`CongestionAlgorithm::Custom`) through the public API:
//! the connection builds its controller once, when the handshake fixes the MSS, and uses the
//! user's; `info()` before the handshake shows what the user's controller says for the MSS
//! our SYN offers.

mod common;

use common::*;

use std::sync::Mutex;
use tcpfsm_core::cc::{AckEvent, CongestionControl, CongestionEvent};
use tcpfsm_core::{Config, CongestionAlgorithm, Instant};

/// A fixed window of 7 segments and ssthresh 1234, whatever happens: easy to recognise.
#[derive(Debug)]
struct Fixed {
    mss: u32,
}

impl CongestionControl for Fixed {
    fn name(&self) -> &'static str {
        "fixed7"
    }
    fn cwnd(&self) -> u32 {
        7 * self.mss
    }
    fn ssthresh(&self) -> u32 {
        1234
    }
    fn on_ack(&mut self, _: &AckEvent) {}
    fn on_congestion_event(&mut self, _: &CongestionEvent) {}
    fn on_recovery_exit(&mut self, _: Instant, _: u32, _: u32) {}
    fn on_rto(&mut self, _: Instant, _: u32, _: u32) {}
    fn on_spurious(&mut self, _: Instant) {}
}

/// The MSS of every controller built, in order (tests in this file run one at a time
/// through `LOCK`).
static BUILT: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static LOCK: Mutex<()> = Mutex::new(());

fn fixed(mss: u32, _: &Config) -> Box<dyn CongestionControl> {
    BUILT.lock().unwrap().push(mss);

    Box::new(Fixed { mss })
}

fn cfg() -> Config {
    Config {
        congestion: CongestionAlgorithm::Custom(fixed),
        ..Config::default()
    }
}

#[test]
fn a_custom_controller_is_built_once_per_connection_with_the_negotiated_mss() {
    let _g = LOCK.lock().unwrap();
    BUILT.lock().unwrap().clear();
    let mut net = Net::new(cfg(), cfg());
    let l = net.b.listen(net.now, addr(B_IP, 80), 16).unwrap();
    let c = net
        .a
        .connect(net.now, addr(A_IP, 0), addr(B_IP, 80))
        .unwrap();
    // SYN_SENT: no controller yet, but info() answers as the user's would for our MSS.
    let i = net.a.info(c).unwrap();
    assert_eq!(i.congestion, "fixed7");
    assert_eq!(i.cwnd, 7 * i.mss as u32);
    assert_eq!(i.ssthresh, 1234);
    BUILT.lock().unwrap().clear();
    net.run_for(tcpfsm_core::Duration::from_millis(100));
    let s = net.b.accept(net.now, l).unwrap().unwrap();
    let (ic, is) = (net.a.info(c).unwrap(), net.b.info(s).unwrap());
    // One build per side, each with that side's negotiated send MSS (after timestamps).
    let mut built = BUILT.lock().unwrap().clone();
    built.sort();
    let mut want = vec![ic.mss as u32, is.mss as u32];
    want.sort();
    assert_eq!(built, want);
    let mss_a = ic.mss as usize;
    for i in [ic, is] {
        assert_eq!(i.congestion, "fixed7");
        assert_eq!(i.cwnd, 7 * i.mss as u32);
        assert_eq!(i.ssthresh, 1234);
    }
    // The window it gives is the one the sender obeys: 7 segments go, then it waits.
    set_nodelay(&mut net.a, net.now, c);
    let data = vec![7u8; 20 * mss_a];
    net.a.send(net.now, c, &data).unwrap();
    let mut buf = Vec::new();
    let mut sent = 0;
    while let Some(tx) = net.a.poll_transmit(net.now, &mut buf) {
        if !Seg::parse(&buf[..tx.len]).payload.is_empty() {
            sent += 1;
        }
    }
    assert_eq!(sent, 7);
}
