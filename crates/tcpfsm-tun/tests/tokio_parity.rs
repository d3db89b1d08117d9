//! The tokio sockets do what `tokio::net::TcpStream` users expect: owned and borrowed split
//! halves (the owned write half shuts down on drop), `readable`/`writable` with
//! `try_read`/`try_write` (several waiters at once), a `poll_read` that fills uninitialised
//! memory without zeroing it, peek, SO_ERROR, linger and `ToSocketAddrs` — against the kernel.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use common::{pattern, read_hash, sha256, Env, Family, MIB, STEP};
use tcpfsm_tun::{AsyncTcpListener, AsyncTcpStream, State};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .enable_io()
        .build()
        .unwrap()
}

/// Runs `f` on a fresh runtime, bounded by [`STEP`].
fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    rt().block_on(async { tokio::time::timeout(STEP, f).await.expect("bounded") })
}

/// A kernel server on `port` that reads to end of stream, echoes everything back and closes.
fn kernel_echo(env: &Env, port: u16) -> std::thread::JoinHandle<usize> {
    let kl = env.kernel_listen(port);
    std::thread::spawn(move || {
        let (mut k, _) = common::kernel_accept(&kl);
        let mut all = Vec::new();
        k.read_to_end(&mut all).unwrap();
        k.write_all(&all).unwrap();
        all.len()
    })
}

/// into_split: the halves live in two tasks; dropping the write half (no explicit shutdown)
/// sends our FIN, so the kernel's echo ends and the read half reads it all to end of stream.
fn owned_split(fam: Family) {
    let env = Env::new(fam);
    let echo = kernel_echo(&env, 6000);
    let data = pattern(MIB / 2, 5);
    let back = run(async {
        let s = AsyncTcpStream::connect(&env.stack, env.kernels(6000))
            .await
            .unwrap();
        let (mut r, mut w) = s.into_split();
        assert_eq!(r.peer_addr().unwrap(), env.kernels(6000));
        assert_eq!(w.local_addr().unwrap(), r.local_addr().unwrap());
        let d = data.clone();
        let writer = tokio::spawn(async move {
            w.write_all(&d).await.unwrap();
            // dropped here: the FIN follows the data
        });
        let reader = tokio::spawn(async move {
            let mut back = Vec::new();
            r.read_to_end(&mut back).await.unwrap();
            back
        });
        writer.await.unwrap();
        reader.await.unwrap()
    });
    assert_eq!(echo.join().unwrap(), data.len());
    assert_eq!(sha256(&back), sha256(&data));
}
both_families!(
    into_split_halves_work_in_two_tasks_and_dropping_the_write_half_sends_fin,
    super::owned_split
);

/// reunite gives the stream back from its own halves (either way round, without a FIN) and
/// refuses halves of two streams, handing both back.
fn reunite(fam: Family) {
    let env = Env::new(fam);
    let l = AsyncTcpListener::bind(&env.stack, env.ours(5000)).unwrap();
    let k1 = env.kernel_connect(env.ours(5000)).unwrap();
    let k2 = env.kernel_connect(env.ours(5000)).unwrap();
    run(async {
        let (a, _) = l.accept().await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        let (ar, aw) = a.into_split();
        let (br, bw) = b.into_split();
        let err = ar.reunite(bw).unwrap_err();
        assert!(err.to_string().contains("not from the same socket"));
        let (ar, bw) = (err.0, err.1);
        let a = ar.reunite(aw).expect("its own halves");
        let b = bw.reunite(br).expect("either way round");
        assert_eq!(a.state(), State::Established, "reunite sent no FIN");
        assert_eq!(b.state(), State::Established);
        let mut k = k1.try_clone().unwrap();
        k.write_all(b"x").unwrap();
        let mut a = a;
        let mut buf = [0u8; 1];
        a.read_exact(&mut buf).await.unwrap();
        a.write_all(b"y").await.unwrap();
    });
    // The reunited streams were dropped whole: FIN after the data.
    let mut rest = Vec::new();
    (&k1).read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"y");
    assert_eq!(common::kread(&k2, &mut [0u8; 1]).unwrap(), 0);
}
both_families!(reunite_takes_matching_halves_only, super::reunite);

/// `forget` really leaves the write side open: the kernel sees no FIN while the read half
/// lives, and the kernel can still send to us.
fn forget_no_fin(fam: Family) {
    let env = Env::new(fam);
    let l = AsyncTcpListener::bind(&env.stack, env.ours(5000)).unwrap();
    let mut k = env.kernel_connect(env.ours(5000)).unwrap();
    let (a, k_addr) = (env.ours(5000), k.local_addr().unwrap());
    let rt = rt();
    let r = rt.block_on(async {
        let (s, _) = l.accept().await.unwrap();
        let (r, w) = s.into_split();
        w.forget();
        r
    });
    k.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let err = common::kread(&k, &mut [0u8; 1]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "no FIN after forget");
    assert_eq!(env.kernel_state(k_addr, a), Some(State::Established));
    k.write_all(b"still open").unwrap();
    let got = rt.block_on(async move {
        let mut r = r;
        let mut buf = [0u8; 10];
        r.read_exact(&mut buf).await.unwrap();
        buf
    });
    assert_eq!(&got, b"still open");
}
both_families!(
    forgetting_the_owned_write_half_sends_no_fin,
    super::forget_no_fin
);

/// Borrowed halves drive both directions from one task with `join!`.
fn borrowed_split(fam: Family) {
    let env = Env::new(fam);
    let echo = kernel_echo(&env, 6000);
    let data = pattern(MIB / 4, 6);
    let back = run(async {
        let mut s = AsyncTcpStream::connect(&env.stack, env.kernels(6000))
            .await
            .unwrap();
        let (mut r, mut w) = s.split();
        let mut back = Vec::new();
        let (wr, rd) = tokio::join!(
            async {
                w.write_all(&data).await?;
                w.shutdown().await
            },
            r.read_to_end(&mut back)
        );
        wr.unwrap();
        rd.unwrap();
        back
    });
    echo.join().unwrap();
    assert_eq!(sha256(&back), sha256(&data));
}
both_families!(
    split_borrowed_halves_read_and_write_concurrently,
    super::borrowed_split
);

/// readable() + try_read: WouldBlock before data (as tokio's own socket says on the kernel's
/// side), two tasks waiting on one stream are both woken, and end of stream is readable.
fn readiness_read(fam: Family) {
    let env = Env::new(fam);
    let kl = env.kernel_listen(6000);
    run(async {
        let s = Arc::new(
            AsyncTcpStream::connect(&env.stack, env.kernels(6000))
                .await
                .unwrap(),
        );
        let (k, _) = common::kernel_accept(&kl);
        let err = s.try_read(&mut [0u8; 8]).unwrap_err();
        k.set_nonblocking(true).unwrap();
        let tk = tokio::net::TcpStream::from_std(k).unwrap();
        let kerr = tk.try_read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock);
        assert_eq!(err.kind(), kerr.kind(), "as tokio's kernel socket");

        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.readable().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        tk.writable().await.unwrap();
        tk.try_write(b"wake").unwrap();
        for w in waiters {
            w.await.unwrap().unwrap();
        }
        let mut buf = [0u8; 8];
        let n = s.try_read(&mut buf).unwrap();
        assert_eq!(&buf[..n], &b"wake"[..n]);
        let mut all = buf[..n].to_vec();
        drop(tk); // FIN
        s.readable().await.unwrap();
        loop {
            match s.try_read(&mut buf) {
                Ok(0) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => s.readable().await.unwrap(),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(all, b"wake");
    });
}
both_families!(
    readable_wakes_every_waiting_task_and_try_read_says_would_block_like_tokio,
    super::readiness_read
);

/// writable() + try_write with an 8 KiB send buffer: try_write says WouldBlock once it is
/// full, writable() resolves when the kernel's ACKs drain it, and every byte arrives.
fn readiness_write(fam: Family) {
    let env = Env::new(fam);
    let kl = env.kernel_listen(6000);
    let total = 4 * MIB;
    let data = pattern(total, 8);
    let reader = std::thread::spawn(move || {
        let (k, _) = common::kernel_accept(&kl);
        std::thread::sleep(Duration::from_millis(100));
        read_hash(k, total).unwrap()
    });
    run(async {
        let s = AsyncTcpStream::connect(&env.stack, env.kernels(6000))
            .await
            .unwrap();
        let mut o = s.options().unwrap();
        o.send_buffer = 8 * 1024;
        s.set_options(o).unwrap();
        let mut off = 0;
        while off < total {
            s.writable().await.unwrap();
            // Room may be gone again by now (readiness is a hint, as with tokio).
            match s.try_write(&data[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
    });
    assert_eq!(reader.join().unwrap(), sha256(&data));
}
both_families!(
    writable_waits_for_room_and_try_write_moves_every_byte,
    super::readiness_write
);

/// try_write on a full buffer says WouldBlock, and writable() then waits (pending) until the
/// kernel reads.
fn full_buffer_pending(fam: Family) {
    let env = Env::new(fam);
    let kl = env.kernel_listen(6000);
    run(async {
        let s = AsyncTcpStream::connect(&env.stack, env.kernels(6000))
            .await
            .unwrap();
        let (k, _) = common::kernel_accept(&kl);
        // Small buffers on both sides so the kernel's window closes soon.
        socket2::SockRef::from(&k)
            .set_recv_buffer_size(4096)
            .unwrap();
        let mut o = s.options().unwrap();
        o.send_buffer = 8 * 1024;
        s.set_options(o).unwrap();
        let chunk = pattern(64 * 1024, 9);
        let mut sent = 0usize;
        let mut full = false;
        for _ in 0..10_000 {
            match s.try_write(&chunk) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    // Full now; after the window closes, writable() must stay pending.
                    if tokio::time::timeout(Duration::from_millis(300), s.writable())
                        .await
                        .is_err()
                    {
                        full = true;
                        break;
                    }
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(full, "writable() never waited ({sent} bytes sent)");
        let drain = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            let mut got = 0;
            while got < sent {
                got += common::kread(&k, &mut buf).unwrap();
            }
        });
        s.writable().await.unwrap();
        assert!(s.try_write(b"x").unwrap() > 0, "room again");
        drain.join().unwrap();
    });
}
both_families!(
    writable_stays_pending_while_the_send_buffer_is_full,
    super::full_buffer_pending
);

/// poll_read writes into uninitialised memory and leaves the rest of it alone: nothing beyond
/// the bytes read is zeroed or marked initialised.
fn uninit_read(fam: Family) {
    let env = Env::new(fam);
    let (ours, mut kern, _l) = env.kernel_client_pair(5000);
    kern.write_all(b"abc").unwrap();
    let mut s = AsyncTcpStream::from_std(ours);
    let mut storage = [MaybeUninit::new(0xAAu8); 4096];
    let (filled, initialized) = run(async {
        let mut rb = ReadBuf::uninit(&mut storage);
        std::future::poll_fn(|cx| Pin::new(&mut s).poll_read(cx, &mut rb))
            .await
            .unwrap();
        (rb.filled().to_vec(), rb.initialized().len())
    });
    assert_eq!(filled, b"abc");
    assert_eq!(initialized, 3, "only what was read counts as initialised");
    // SAFETY: every element was created initialised (MaybeUninit::new).
    let rest: Vec<u8> = storage[3..]
        .iter()
        .map(|b| unsafe { b.assume_init() })
        .collect();
    assert!(rest.iter().all(|&b| b == 0xAA), "the rest was not zeroed");
}
both_families!(
    poll_read_fills_uninitialised_memory_without_zeroing_the_rest,
    super::uninit_read
);

/// peek, take_error and linger on the async stream: peek shows data a read then consumes; a
/// kernel reset is reported once by take_error; linger 0 makes the drop an abort (RST).
fn peek_error_linger(fam: Family) {
    let env = Env::new(fam);
    let l = AsyncTcpListener::bind(&env.stack, env.ours(5000)).unwrap();
    let mut k1 = env.kernel_connect(env.ours(5000)).unwrap();
    let k2 = env.kernel_connect(env.ours(5000)).unwrap();
    k1.write_all(b"peek me").unwrap();
    let (s1, s2) = run(async {
        let (mut s1, _) = l.accept().await.unwrap();
        let (s2, _) = l.accept().await.unwrap();
        let mut p = [0u8; 4];
        let n = s1.peek(&mut p).await.unwrap();
        assert_eq!(&p[..n], &b"peek"[..n]);
        let mut r = [0u8; 7];
        s1.read_exact(&mut r).await.unwrap();
        assert_eq!(&r, b"peek me");
        (s1, s2)
    });
    common::kernel_reset(k2);
    assert!(env
        .stack
        .wait_until(STEP, |ep| ep.state(s2.id()) == Some(State::Closed)));
    let e = s2.take_error().unwrap().expect("the reset");
    assert_eq!(e.kind(), ErrorKind::ConnectionReset);
    assert!(s2.take_error().unwrap().is_none());

    s1.set_linger(Some(Duration::ZERO)).unwrap();
    assert_eq!(s1.linger().unwrap(), Some(Duration::ZERO));
    drop(s1);
    k1.set_read_timeout(Some(STEP)).unwrap();
    let err = common::kread(&k1, &mut [0u8; 4]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
}
both_families!(
    async_peek_take_error_and_linger_zero_behave_like_the_blocking_socket,
    super::peek_error_linger
);

/// connect and bind take `ToSocketAddrs`: each address is tried in turn.
fn async_addrs(fam: Family) {
    let env = Env::new(fam);
    let _kl = env.kernel_listen(6000);
    run(async {
        let s = AsyncTcpStream::connect(&env.stack, &[env.kernels(7), env.kernels(6000)][..])
            .await
            .expect("the second address");
        assert_eq!(s.peer_addr().unwrap(), env.kernels(6000));
        let s = AsyncTcpStream::connect(&env.stack, env.kernels(6000).to_string().as_str())
            .await
            .unwrap();
        assert_eq!(s.state(), State::Established);
        let err = AsyncTcpStream::connect(&env.stack, env.kernels(7))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    });
    let l = AsyncTcpListener::bind(&env.stack, &[env.kernels(1), env.ours(5000)][..])
        .expect("the second address");
    assert_eq!(l.local_addr().unwrap(), env.ours(5000));
}
both_families!(
    async_connect_and_bind_try_each_address_of_to_socket_addrs,
    super::async_addrs
);
