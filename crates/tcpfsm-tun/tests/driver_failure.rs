//! A driver that dies must not leave sockets blocked forever.

mod common;

use std::io::{ErrorKind, Read, Write};

use common::{Env, Family, STEP};
use tcpfsm_tun::{Direction, TcpListener, Verdict};

fn panicking_filter(fam: Family) {
    let env = Env::new(fam);
    let l = TcpListener::bind(&env.stack, env.ours(5000)).unwrap();
    let mut kern = env.kernel_connect(env.ours(5000)).unwrap();
    let (mut ours, _) = l.accept_timeout(STEP).unwrap();
    ours.set_read_timeout(Some(STEP)).unwrap();
    env.stack.set_packet_filter(|p| {
        if p.direction == Direction::Inbound && !p.segment.tcp.payload.is_empty() {
            panic!("packet filter bug (deliberate, in a test)");
        }
        Verdict::Pass
    });
    let t0 = std::time::Instant::now();
    kern.write_all(b"data").unwrap();
    let err = ours.read(&mut [0u8; 8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotConnected, "{err}");
    assert!(
        t0.elapsed() < STEP / 2,
        "the blocked read was released at once"
    );
    assert!(
        ours.write(b"x").is_err(),
        "a stopped stack refuses writes too"
    );
}
both_families!(
    a_panicking_packet_filter_stops_the_stack_and_releases_blocked_readers,
    super::panicking_filter
);
