//! `tcpfsm export` stays up under a local connection flood: 500 clients that each hold a
//! connection open by sending a request header a byte at a time (slowloris), and reconnect as
//! soon as the exporter drops them. A normal scrape, made meanwhile on a fresh connection the
//! way Prometheus makes one after a failure, must be answered in full within 1 s (a scrape
//! timeout) — with the connection table large enough for the flood, and with a table far
//! too small, where new connections must displace the flood's. Needs root (netns); skips
//! loudly otherwise.

mod live_support;

use live_support::exporter::{parse_exposition, start_exporter_with};
use live_support::{wait_until, Netns};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLIENTS: usize = 500;

/// What the flood did.
#[derive(Default)]
struct Flood {
    stop: AtomicBool,
    /// Connections open right now.
    open: AtomicUsize,
    /// Connections made in all (reconnects included).
    made: AtomicU64,
    /// Connections the exporter closed on us.
    dropped: AtomicU64,
}

/// One slowloris client: connect, send a request line, then one header byte every 300 ms,
/// never finishing the headers; when the exporter closes the connection, connect again.
async fn slowloris(addr: SocketAddr, flood: Arc<Flood>) {
    let header = b"GET /metrics HTTP/1.1\r\nHost: flood\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    while !flood.stop.load(Ordering::Relaxed) {
        let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        flood.made.fetch_add(1, Ordering::Relaxed);
        flood.open.fetch_add(1, Ordering::Relaxed);
        let (mut rd, mut wr) = s.split();
        let drip = async {
            if wr.write_all(&header[..40]).await.is_err() {
                return;
            }
            for b in header[40..].iter().cycle() {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if wr.write_all(&[*b]).await.is_err() {
                    return;
                }
            }
        };
        let mut buf = [0u8; 512];
        let closed = async {
            // The exporter's 408 or EOF: it dropped us.
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        let stop = async {
            while !flood.stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::select! {
            _ = drip => {}
            _ = closed => { flood.dropped.fetch_add(1, Ordering::Relaxed); }
            _ = stop => {}
        }
        flood.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs the flood from a thread inside the namespace (a runtime's worker threads inherit the
/// namespace of the thread that starts them, so every socket is created in it).
fn start_flood(ns: &Netns, addr: SocketAddr) -> (Arc<Flood>, std::thread::JoinHandle<()>) {
    // 500 client sockets per flood, and the tests run side by side: more than the usual soft
    // limit of 1024 descriptors.
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let want = hard.min(65_536);
    let _ = setrlimit(Resource::RLIMIT_NOFILE, want, hard);
    assert!(
        want >= 4 * CLIENTS as u64,
        "the open-file hard limit ({hard}) is too low for {CLIENTS} clients"
    );
    let flood = Arc::new(Flood::default());
    let f = flood.clone();
    let path = format!("/run/netns/{}", ns.name);
    let h = std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let tasks: Vec<_> = (0..CLIENTS)
                .map(|_| tokio::spawn(slowloris(addr, f.clone())))
                .collect();
            for t in tasks {
                let _ = t.await;
            }
        });
    });
    (flood, h)
}

/// One scrape on a fresh connection, all of it (connect, request, whole response) within
/// `limit`. Returns the page, or what went wrong.
fn scrape_within(ns: &Netns, addr: SocketAddr, limit: Duration) -> Result<String, String> {
    ns.run(move || {
        let deadline = Instant::now() + limit;
        let left = || {
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        };
        let mut s =
            TcpStream::connect_timeout(&addr, left()).map_err(|e| format!("connect: {e}"))?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: prometheus\r\nConnection: close\r\n\r\n")
            .map_err(|e| format!("send: {e}"))?;
        let mut out = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        loop {
            s.set_read_timeout(Some(left())).unwrap();
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return Err(format!("read after {} bytes: {e}", out.len())),
            }
            if Instant::now() >= deadline {
                return Err(format!("not finished within {limit:?}"));
            }
        }
        let text = String::from_utf8_lossy(&out).into_owned();
        if !text.starts_with("HTTP/1.1 200") {
            return Err(format!(
                "answer: {}",
                text.lines().next().unwrap_or("(none)")
            ));
        }
        Ok(text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default())
    })
}

fn flood_then_scrape(test: &str, exporter_args: &[&str]) {
    let Some(ns) = Netns::new(test) else {
        return;
    };
    let exp = start_exporter_with(&ns, exporter_args);
    let (flood, handle) = start_flood(&ns, exp.addr);
    // Let the flood take hold: most clients connected, and (header timeout 2 s) the exporter
    // dropping and the clients reconnecting.
    let held = wait_until(Duration::from_secs(20), || {
        flood.open.load(Ordering::Relaxed) >= CLIENTS * 9 / 10
            || flood.made.load(Ordering::Relaxed) >= CLIENTS as u64 * 2
    });
    std::thread::sleep(Duration::from_secs(3));
    let mut took = Vec::new();
    let mut failures = Vec::new();
    let mut established = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        match scrape_within(&ns, exp.addr, Duration::from_secs(1)) {
            Ok(page) => {
                took.push(t.elapsed());
                let m = parse_exposition(&page);
                established.push(m["node_tcp_connection_states{state=\"established\"}"]);
            }
            Err(e) => failures.push(e),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (open, made, dropped) = (
        flood.open.load(Ordering::Relaxed),
        flood.made.load(Ordering::Relaxed),
        flood.dropped.load(Ordering::Relaxed),
    );
    flood.stop.store(true, Ordering::Relaxed);
    let _ = handle.join();
    took.sort();
    // Written to the stderr handle itself, past libtest's capture, so the figures show.
    let _ = writeln!(
        std::io::stderr().lock(),
        "MEASURED {test}: {} of 20 scrapes within 1 s under {CLIENTS} slowloris clients \
         ({open} open at the end, {made} connections made, {dropped} dropped by the \
         exporter); scrape time median {:?}, max {:?}",
        took.len(),
        took.get(took.len() / 2),
        took.last()
    );
    assert!(held, "the flood never took hold ({open} open, {made} made)");
    assert!(
        failures.is_empty(),
        "scrapes failed under the flood: {failures:#?}"
    );
    // The flood was really there while we scraped: both ends of its connections are in
    // the namespace, each ESTABLISHED.
    let most = established.iter().cloned().fold(0.0, f64::max);
    assert!(
        most >= CLIENTS as f64 * 0.5,
        "ESTABLISHED at most {most} during the flood"
    );
}

#[test]
fn export_scrape_succeeds_within_1s_while_500_slowloris_clients_hold_and_reopen_connections() {
    flood_then_scrape("export_scrape_succeeds_within_1s_under_flood", &[]);
}

#[test]
fn export_scrape_displaces_the_flood_when_the_connection_table_is_too_small_for_it() {
    // 64 slots for 500 clients: every scrape needs a flood connection dropped for it.
    flood_then_scrape(
        "export_scrape_displaces_the_flood",
        &["--max-connections", "64", "--max-per-client", "64"],
    );
}
