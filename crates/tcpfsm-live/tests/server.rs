//! The exporter's HTTP server, driven over loopback with raw sockets so malformed and stalled
//! requests can be sent exactly.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tcpfsm_live::server::{serve, ScrapeFn, ServerConfig};

/// Runs the server on its own runtime thread; returns its address.
fn start(cfg: ServerConfig, scrape: ScrapeFn) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            // Runs until the test process ends.
            serve(l, cfg, scrape, std::future::pending()).await;
        });
    });
    rx.recv().unwrap()
}

fn page() -> ScrapeFn {
    Arc::new(|| Ok("# TYPE up gauge\nup 1\n".to_string()))
}

/// Sends `req` and returns the whole response (the server closes or we time out).
fn exchange(addr: SocketAddr, req: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(req).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&out);
                // One complete response with a body length we can check is enough.
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if out.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn get(addr: SocketAddr, path: &str) -> String {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

#[test]
fn metrics_path_serves_the_page_with_the_prometheus_content_type() {
    let addr = start(ServerConfig::default(), page());
    let r = get(addr, "/metrics");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains("content-type: text/plain; version=0.0.4; charset=utf-8"));
    assert!(r.ends_with("up 1\n"));
}

#[test]
fn root_is_a_landing_page_linking_to_metrics() {
    let addr = start(ServerConfig::default(), page());
    let r = get(addr, "/");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains("content-type: text/html; charset=utf-8"), "{r}");
    assert!(r.contains("<a href=\"/metrics\">/metrics</a>"), "{r}");
}

#[test]
fn other_paths_are_404() {
    let addr = start(ServerConfig::default(), page());
    for p in ["/metricsx", "/metrics/", "/favicon.ico", "/index.html"] {
        let r = get(addr, p);
        assert!(r.starts_with("HTTP/1.1 404"), "{p}: {r}");
    }
    // A query string is not part of the path.
    assert!(get(addr, "/metrics?x=1").starts_with("HTTP/1.1 200"));
}

#[test]
fn garbage_request_is_400() {
    let addr = start(ServerConfig::default(), page());
    let r = exchange(addr, b"\x16\x03\x01 this is not http\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    let r = exchange(addr, b"GET /metrics HTTP/1.1\r\nbad header line\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
}

#[test]
fn methods_other_than_get_and_head_are_405() {
    let addr = start(ServerConfig::default(), page());
    let r = exchange(
        addr,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 405"), "{r}");
    assert!(r.to_ascii_lowercase().contains("allow: get, head"));
}

#[test]
fn stalled_client_does_not_block_another_scrape() {
    let addr = start(ServerConfig::default(), page());
    // Half a request line, then silence: this client holds its connection open.
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled.write_all(b"GET /met").unwrap();
    let mut others = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metr").unwrap();
        others.push(s);
    }
    let t = Instant::now();
    let r = get(addr, "/metrics");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "scrape took {:?}",
        t.elapsed()
    );
    drop(stalled);
}

#[test]
fn stalled_client_is_disconnected_after_the_header_timeout() {
    let cfg = ServerConfig {
        header_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let addr = start(cfg, page());
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost:").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 512];
    // The server answers 408 or simply closes; either way the read ends soon.
    let n = s.read(&mut buf).unwrap_or(0);
    let got = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "held {:?}",
        t.elapsed()
    );
    assert!(n == 0 || got.starts_with("HTTP/1.1 408"), "{got}");
}

#[test]
fn scrapes_beyond_the_in_flight_limit_get_503() {
    // Scrapes block until released, so we can hold exactly `max_in_flight` of them.
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let entered = Arc::new(AtomicUsize::new(0));
    let scrape: ScrapeFn = {
        let gate = gate.clone();
        let entered = entered.clone();
        Arc::new(move || {
            entered.fetch_add(1, Ordering::SeqCst);
            let (m, cv) = &*gate;
            let mut open = m.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            Ok("ok 1\n".into())
        })
    };
    let cfg = ServerConfig {
        max_in_flight: 2,
        ..ServerConfig::default()
    };
    let addr = start(cfg, scrape);
    let held: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || get(addr, "/metrics")))
        .collect();
    let t = Instant::now();
    while entered.load(Ordering::SeqCst) < 2 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "scrapes never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = get(addr, "/metrics");
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    // 404s need no scrape slot.
    assert!(get(addr, "/nope").starts_with("HTTP/1.1 404"));
    {
        let (m, cv) = &*gate;
        *m.lock().unwrap() = true;
        cv.notify_all();
    }
    for h in held {
        assert!(h.join().unwrap().starts_with("HTTP/1.1 200"));
    }
    assert!(get(addr, "/metrics").starts_with("HTTP/1.1 200"));
}

#[test]
fn failing_scrape_is_500_and_the_next_one_still_works() {
    let n = Arc::new(AtomicUsize::new(0));
    let scrape: ScrapeFn = {
        let n = n.clone();
        Arc::new(move || {
            if n.fetch_add(1, Ordering::SeqCst) == 0 {
                Err("netlink said no".into())
            } else {
                Ok("ok 1\n".into())
            }
        })
    };
    let addr = start(ServerConfig::default(), scrape);
    let r = get(addr, "/metrics");
    assert!(
        r.starts_with("HTTP/1.1 500") && r.contains("netlink said no"),
        "{r}"
    );
    assert!(get(addr, "/metrics").starts_with("HTTP/1.1 200"));
}

#[test]
fn head_request_gets_headers_without_a_body() {
    let addr = start(ServerConfig::default(), page());
    let r = exchange(
        addr,
        b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains("content-type: text/plain; version=0.0.4"));
    assert!(r.ends_with("\r\n\r\n"), "no body expected: {r:?}");
}

#[test]
fn keep_alive_connection_serves_several_scrapes() {
    let addr = start(ServerConfig::default(), page());
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for _ in 0..3 {
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&got).ends_with("up 1\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed early");
            got.extend_from_slice(&buf[..n]);
        }
        assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    }
}

/// Whether the server has closed `s` (EOF or reset) within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a 408, then the close
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn a_full_table_gives_a_scrape_the_place_of_the_oldest_unanswered_connection() {
    let cfg = ServerConfig {
        max_connections: 4,
        max_per_client: 4,
        ..ServerConfig::default()
    };
    let addr = start(cfg, page());
    // Four clients take every place and never finish a request.
    let mut stalled: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ").unwrap();
            std::thread::sleep(Duration::from_millis(20));
            s
        })
        .collect();
    let t = Instant::now();
    let r = get(addr, "/metrics");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    // The first (oldest) was dropped to make room; the others still wait for their headers.
    assert!(closed_within(&mut stalled[0], Duration::from_secs(2)));
    assert!(!closed_within(&mut stalled[3], Duration::from_millis(300)));
}

#[test]
fn one_client_address_cannot_take_every_place() {
    let cfg = ServerConfig {
        max_connections: 8,
        max_per_client: 2,
        ..ServerConfig::default()
    };
    let addr = start(cfg, page());
    let mut mine: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /").unwrap();
            std::thread::sleep(Duration::from_millis(20));
            s
        })
        .collect();
    // The third from 127.0.0.1 replaced the first from 127.0.0.1.
    assert!(closed_within(&mut mine[0], Duration::from_secs(2)));
    assert!(!closed_within(&mut mine[1], Duration::from_millis(300)));
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let cfg = ServerConfig {
        idle_timeout: Duration::from_millis(500),
        ..ServerConfig::default()
    };
    let addr = start(cfg, page());
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    while !String::from_utf8_lossy(&got).ends_with("up 1\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let t = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(5)));
    let idle = t.elapsed();
    assert!(
        idle >= Duration::from_millis(400) && idle < Duration::from_secs(4),
        "closed after {idle:?}"
    );
}

#[test]
fn page_is_gzipped_for_a_client_that_accepts_gzip() {
    let big: ScrapeFn = Arc::new(|| Ok("# TYPE up gauge\nup 1\n".repeat(500)));
    let addr = start(ServerConfig::default(), big);
    let r = exchange(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, deflate\r\nConnection: close\r\n\r\n",
    );
    assert!(r.contains("content-encoding: gzip"), "{r}");
    assert!(r.contains("vary: Accept-Encoding") || r.contains("vary: accept-encoding"));
    let len: usize = r
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(len < 1000, "compressed to {len} bytes");
}
