//! A finished connection's storage (its box, its two buffers, its loss-recovery state) is
//! reused by the next connection of the same endpoint. Whatever the old connection left in
//! those buffers — unread data, out-of-order text, a half-sent stream — must never become the
//! new connection's data: each connection reads exactly the bytes its peer sent.

mod common;
use common::*;
use tcpfsm_core::{ConnHandle, Duration, Endpoint, Instant, State};

/// Queues all of `data` on `conn`, running the link while the send buffer is full.
fn send_all(n: &mut Net, from_a: bool, conn: ConnHandle, data: &[u8]) {
    let mut off = 0;
    while off < data.len() {
        let now = n.now;
        let ep: &mut Endpoint = if from_a { &mut n.a } else { &mut n.b };
        off += ep.send(now, conn, &data[off..]).expect("open connection");
        n.run_for(Duration::from_millis(50));
    }
}

fn read_into(ep: &mut Endpoint, now: Instant, c: ConnHandle, out: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    while let Ok(Some(k)) = ep.recv(now, c, &mut buf) {
        if k == 0 {
            break;
        }
        out.extend_from_slice(&buf[..k]);
    }
}

#[test]
fn sequential_connections_on_reused_storage_read_exactly_their_own_streams() {
    let mut n = Net::default_pair();
    // Loss and reordering put out-of-order text into the reused receive buffers, and leave
    // retransmission and SACK state in the reused recovery state.
    n.impair(
        7,
        Impair {
            loss: 0.05,
            reorder: 0.2,
            ..Impair::default()
        },
    );
    let l = n.b.listen(n.now, addr(B_IP, 80), 16).unwrap();
    for i in 0..40u64 {
        let c = n.a.connect(n.now, addr(A_IP, 0), addr(B_IP, 80)).unwrap();
        n.run_for(Duration::from_secs(5));
        let s = n.b.accept(n.now, l).unwrap().expect("accepted");
        // Lengths from one byte to several segments; some connections leave data unread.
        let up = random_bytes(2 * i, 1 + (i as usize * 797) % 9000);
        let down = random_bytes(2 * i + 1, 1 + (i as usize * 1291) % 7000);
        send_all(&mut n, true, c, &up);
        send_all(&mut n, false, s, &down);
        n.run_for(Duration::from_secs(20));
        let (mut got_up, mut got_down) = (Vec::new(), Vec::new());
        read_into(&mut n.b, n.now, s, &mut got_up);
        read_into(&mut n.a, n.now, c, &mut got_down);
        assert_eq!(got_up, up, "connection {i}: client to server");
        assert_eq!(got_down, down, "connection {i}: server to client");
        if i % 5 == 4 {
            // Reset by the peer while bytes are unread: the client's handle keeps them
            // readable (with the buffer) until the application closes it.
            n.b.send(n.now, s, b"left unread").unwrap();
            n.run_for(Duration::from_secs(1));
            n.b.abort(n.now, s).unwrap();
            n.run_for(Duration::from_secs(1));
            if n.a.state(c) == Some(State::Closed) {
                n.a.close(n.now, c).unwrap();
            } else {
                // The link lost the RST.
                n.a.abort(n.now, c).unwrap();
            }
        } else {
            n.a.close(n.now, c).unwrap();
            n.b.close(n.now, s).unwrap();
        }
        // Past TIME_WAIT: both connections are gone and their storage is free for the next.
        n.run_for(Duration::from_secs(150));
        assert_eq!(n.a.state(c), None, "connection {i}: client freed");
        assert_eq!(n.b.state(s), None, "connection {i}: server freed");
    }
}
