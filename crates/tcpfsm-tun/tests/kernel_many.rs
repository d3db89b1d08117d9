//! One of our listeners accepts 200 concurrent connections from kernel clients.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};

use common::{Env, Family, STEP};
use tcpfsm_tun::{State, TcpListener};

const N: u32 = 200;
const CLIENT_THREADS: u32 = 4;

fn two_hundred(fam: Family) {
    let env = Env::new(fam);
    let addr = env.ours(5000);
    let l = TcpListener::listen(&env.stack, addr, 256).unwrap();
    let (kernel_socks, ours) = std::thread::scope(|s| {
        // Kernel clients connect from several threads at once; each says its index.
        let clients: Vec<_> = (0..CLIENT_THREADS)
            .map(|t| {
                let ns = &env.ns;
                s.spawn(move || {
                    ns.run(|| {
                        (t * N / CLIENT_THREADS..(t + 1) * N / CLIENT_THREADS)
                            .map(|i| {
                                let mut k = std::net::TcpStream::connect_timeout(&addr, STEP)
                                    .expect("kernel connect");
                                k.set_read_timeout(Some(STEP)).unwrap();
                                k.write_all(&i.to_be_bytes()).unwrap();
                                (i, k)
                            })
                            .collect::<Vec<_>>()
                    })
                    .expect("enter the namespace")
                })
            })
            .collect();
        let mut ours = Vec::new();
        for _ in 0..N {
            let (s, _) = l.accept_timeout(STEP).expect("accept");
            s.set_read_timeout(Some(STEP)).unwrap();
            ours.push(s);
        }
        let socks: Vec<_> = clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        (socks, ours)
    });
    assert_eq!(ours.len(), N as usize);
    let census = env.stack.census();
    assert_eq!(census.get(State::Established), N as u64, "{census:?}");
    let kernel_estab = env
        .ss()
        .iter()
        .filter(|e| e.peer == addr && e.state == State::Established)
        .count();
    assert_eq!(kernel_estab, N as usize);

    // Every accepted connection carries its own client's bytes back.
    let mut seen = BTreeSet::new();
    for s in &ours {
        let mut b = [0u8; 4];
        (&*s).read_exact(&mut b).unwrap();
        let i = u32::from_be_bytes(b);
        assert!(seen.insert(i), "index {i} arrived twice");
        (&*s).write_all(&(i * 2 + 1).to_be_bytes()).unwrap();
    }
    assert_eq!(seen, (0..N).collect());
    for (i, k) in &kernel_socks {
        let mut b = [0u8; 4];
        (&*k).read_exact(&mut b).unwrap();
        assert_eq!(u32::from_be_bytes(b), *i * 2 + 1, "reply of connection {i}");
    }
    drop(ours);
    let closed = env
        .stack
        .wait_until(STEP, |ep| ep.census().get(State::FinWait2) == N as u64);
    assert!(closed, "all 200 closed by us: {:?}", env.stack.census());
    drop(kernel_socks);
    let closed = env
        .stack
        .wait_until(STEP, |ep| ep.census().get(State::TimeWait) == N as u64);
    assert!(closed, "all 200 in TIME_WAIT: {:?}", env.stack.census());
}
both_families!(
    one_listener_accepts_200_concurrent_kernel_clients,
    super::two_hundred
);
