//! The tokio flavour: AsyncRead/AsyncWrite connections against the kernel, woken by the
//! driver thread (the runtime has no reactor work for them).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

use common::{pattern, sha256, Env, Family, MIB, STEP};
use tcpfsm_tun::{AsyncTcpListener, AsyncTcpStream, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// Our async client sends 1 MiB and shuts down writing; the kernel echoes it back and
/// closes; we read the echo to end-of-stream.
fn async_client_echo(fam: Family) {
    let env = Env::new(fam);
    let kl = env.kernel_listen(6000);
    let echo = std::thread::spawn(move || {
        let (mut k, _) = common::kernel_accept(&kl);
        k.set_read_timeout(Some(STEP)).unwrap();
        let mut all = Vec::new();
        k.read_to_end(&mut all).unwrap();
        k.write_all(&all).unwrap();
    });
    let data = pattern(MIB, 9);
    let got = rt().block_on(async {
        tokio::time::timeout(STEP, async {
            let mut s = AsyncTcpStream::connect(&env.stack, env.kernels(6000)).await?;
            assert_eq!(s.state(), State::Established);
            s.write_all(&data).await?;
            s.shutdown().await?;
            let mut back = Vec::new();
            s.read_to_end(&mut back).await?;
            Ok::<_, std::io::Error>(back)
        })
        .await
        .expect("bounded")
        .unwrap()
    });
    echo.join().unwrap();
    assert_eq!(sha256(&got), sha256(&data));
}
both_families!(
    async_client_round_trips_a_mebibyte_through_the_kernel,
    super::async_client_echo
);

/// Our async listener accepts a kernel client, reads to its FIN and answers; then a second
/// kernel client resets, which the async read reports as ConnectionReset.
fn async_server(fam: Family) {
    let env = Env::new(fam);
    let addr = env.ours(5000);
    let ns = &env.ns;
    let l = AsyncTcpListener::bind(&env.stack, addr).unwrap();
    let client = std::thread::scope(|sc| {
        let c = sc.spawn(|| {
            let mut k = ns
                .run(|| std::net::TcpStream::connect_timeout(&addr, STEP))
                .unwrap()
                .unwrap();
            k.set_read_timeout(Some(STEP)).unwrap();
            k.write_all(b"ping").unwrap();
            k.shutdown(std::net::Shutdown::Write).unwrap();
            let mut r = Vec::new();
            k.read_to_end(&mut r).unwrap();
            let k2 = ns
                .run(|| std::net::TcpStream::connect_timeout(&addr, STEP))
                .unwrap()
                .unwrap();
            socket2::SockRef::from(&k2)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            std::thread::sleep(Duration::from_millis(50));
            drop(k2);
            r
        });
        rt().block_on(async {
            tokio::time::timeout(STEP, async {
                let (mut s, _) = l.accept().await.unwrap();
                let mut req = Vec::new();
                s.read_to_end(&mut req).await.unwrap();
                assert_eq!(req, b"ping");
                s.write_all(b"pong").await.unwrap();
                drop(s);
                let (mut s2, _) = l.accept().await.unwrap();
                let err = s2.read(&mut [0u8; 8]).await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::ConnectionReset);
            })
            .await
            .expect("bounded")
        });
        c.join().unwrap()
    });
    assert_eq!(client, b"pong");
}
both_families!(async_listener_serves_and_reports_reset, super::async_server);
