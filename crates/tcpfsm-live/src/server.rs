//! The exporter's HTTP server: `GET /metrics`, a landing page at `/`, nothing else.
//!
//! Guarantees that slow or hostile clients cannot keep a scrape out:
//! - each connection is its own task, and must deliver its request headers within
//!   `header_timeout` (hyper's header-read timer); a keep-alive connection idle for
//!   `idle_timeout` is closed;
//! - at most `max_connections` are open, at most `max_per_client` from one address; when full,
//!   a new connection takes the place of the oldest one that was never answered, else of the
//!   longest-idle keep-alive ([`crate::conntrack`]) — so clients that hold connections open
//!   and reconnect (slowloris) cannot lock a scraper out, which refusing new ones would let
//!   them do;
//! - at most `max_in_flight` scrapes run at once (reading the kernel is the expensive part);
//!   a request beyond that gets `503` at once instead of queueing behind the others;
//! - a scrape that outlives `scrape_timeout` answers `504` (its blocking work keeps its permit
//!   until it really ends, so the bound on concurrent kernel reads holds);
//! - the page is gzip-compressed when the client accepts it (Prometheus does);
//! - `/` is a small HTML page linking to `/metrics`; any other path is `404`, a method other
//!   than GET/HEAD is `405`, a request hyper cannot parse gets hyper's `400`.

use crate::conntrack::{complete_head, Admission, Limits, Table, Tracked};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT_ENCODING, ALLOW, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Limits of the server.
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    pub max_in_flight: usize,
    pub max_connections: usize,
    pub max_per_client: usize,
    pub header_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout: Duration,
    pub scrape_timeout: Duration,
    /// A connection (keep-alive included) is closed after this long.
    pub connection_lifetime: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_in_flight: 4,
            max_connections: 1024,
            max_per_client: 512,
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            scrape_timeout: Duration::from_secs(10),
            connection_lifetime: Duration::from_secs(300),
        }
    }
}

/// Produces one page of metrics, or an error message. Runs on a blocking thread.
pub type ScrapeFn = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Whether an `Accept-Encoding` header value accepts gzip (RFC 9110 §12.5.3: `gzip`, `x-gzip`
/// or `*`, unless given `q=0`).
pub fn accepts_gzip(value: &str) -> bool {
    let mut star = None;
    let mut gzip = None;
    for item in value.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .filter_map(|q| q.trim().parse::<f32>().ok())
            .next()
            .unwrap_or(1.0);
        match coding.as_str() {
            "gzip" | "x-gzip" => gzip = Some(q > 0.0),
            "*" => star = Some(q > 0.0),
            _ => {}
        }
    }
    gzip.or(star).unwrap_or(false)
}

fn gzip(page: &[u8]) -> std::io::Result<Vec<u8>> {
    // Level 1: the page is mostly repeated names and compresses ~10x even so, for a small
    // fraction of the cost of the default level.
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(page.len() / 8),
        flate2::Compression::fast(),
    );
    e.write_all(page)?;
    e.finish()
}

const LANDING: &str = concat!(
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>tcpfsm exporter</title></head>\n",
    "<body><h1>tcpfsm exporter</h1>\n",
    "<p>This host's TCP connection states and counters for Prometheus: the node exporter's ",
    "TCP families under their own names, and <code>tcpfsm_*</code> detail (CLOSE_WAIT by ",
    "process, TIME_WAIT by remote, accept queues, diagnosis verdicts).</p>\n",
    "<p><a href=\"/metrics\">/metrics</a></p>\n",
    "<p>tcpfsm ",
    env!("CARGO_PKG_VERSION"),
    "</p>\n</body></html>\n"
);

async fn handle(
    req: Request<Incoming>,
    scrapes: Arc<Semaphore>,
    scrape: ScrapeFn,
    cfg: ServerConfig,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Ok(r);
        }
    };
    match req.uri().path() {
        "/metrics" => {}
        "/" => {
            let mut r = Response::new(Full::new(if head {
                Bytes::new()
            } else {
                Bytes::from_static(LANDING.as_bytes())
            }));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            return Ok(r);
        }
        _ => {
            return Ok(text(
                StatusCode::NOT_FOUND,
                "not found: metrics are at /metrics\n",
            ))
        }
    }
    let wants_gzip = req
        .headers()
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(accepts_gzip);
    let Ok(permit) = scrapes.try_acquire_owned() else {
        return Ok(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many scrapes in flight; retry\n",
        ));
    };
    let job = tokio::task::spawn_blocking(move || {
        let out = scrape().and_then(|page| {
            if wants_gzip {
                gzip(page.as_bytes())
                    .map(|z| (z, true))
                    .map_err(|e| e.to_string())
            } else {
                Ok((page.into_bytes(), false))
            }
        });
        drop(permit);
        out
    });
    let res = match tokio::time::timeout(cfg.scrape_timeout, job).await {
        Err(_) => text(StatusCode::GATEWAY_TIMEOUT, "scrape timed out\n"),
        Ok(Err(e)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("scrape failed: {e}\n"),
        ),
        Ok(Ok(Err(e))) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("scrape failed: {e}\n"),
        ),
        Ok(Ok(Ok((page, gzipped)))) => {
            let body = if head {
                Bytes::new()
            } else {
                Bytes::from(page)
            };
            let mut r = Response::new(Full::new(body));
            let h = r.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_TEXT));
            h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
            if gzipped {
                h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            r
        }
    };
    Ok(res)
}

/// Serves until `shutdown` completes. Accept errors (EMFILE, …) are logged and retried after a
/// short pause rather than ending the server.
pub async fn serve(
    listener: TcpListener,
    cfg: ServerConfig,
    scrape: ScrapeFn,
    shutdown: impl Future<Output = ()>,
) {
    let scrapes = Arc::new(Semaphore::new(cfg.max_in_flight));
    let table = Arc::new(Table::new(Limits {
        max: cfg.max_connections,
        per_client: cfg.max_per_client,
    }));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                eprintln!("tcpfsm export: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match table.admit(peer.ip()) {
            Admission::Admitted(s) => s,
            // Every connection is in the middle of a request: closing this one at once costs
            // nothing, and the client retries.
            Admission::Refused => continue,
        };
        // A whole request already waiting (a scraper sends it with the handshake's ACK): the
        // connection is doing real work from now on, and is not dropped for a newcomer.
        if request_waiting(&stream) {
            slot.set_busy(true);
        }
        let _ = stream.set_nodelay(true);
        let scrapes = scrapes.clone();
        let scrape = scrape.clone();
        let table = table.clone();
        tokio::spawn(async move {
            let svc_slot = slot.clone();
            let svc = service_fn(move |req| {
                let (scrapes, scrape, slot) = (scrapes.clone(), scrape.clone(), svc_slot.clone());
                async move {
                    slot.set_busy(true);
                    let r = handle(req, scrapes, scrape, cfg).await;
                    slot.set_busy(false);
                    r
                }
            });
            let io = TokioIo::new(Tracked {
                io: stream,
                slot: slot.clone(),
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(cfg.header_timeout)
                .max_buf_size(64 * 1024)
                .serve_connection(io, svc);
            let idle = async {
                let tick = cfg.idle_timeout.min(Duration::from_secs(1));
                loop {
                    tokio::time::sleep(tick).await;
                    if !slot.is_busy() && slot.idle_ms() >= cfg.idle_timeout.as_millis() as u64 {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = tokio::time::timeout(cfg.connection_lifetime, conn) => {}
                _ = slot.kill.notified() => {}
                _ = idle => {}
            }
            table.remove(&slot);
        });
    }
}

/// Peeks, without blocking, at what the client sent so far.
fn request_waiting(stream: &tokio::net::TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 2048];
    // SAFETY: a valid socket and a buffer of the length given; MSG_PEEK leaves the bytes.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n > 0 && complete_head(&buf[..n as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_accepted_unless_refused_with_q_zero() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("deflate, gzip;q=0.5"));
        assert!(accepts_gzip("GZIP"));
        assert!(accepts_gzip("*"));
        assert!(accepts_gzip("x-gzip"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip(""));
        assert!(!accepts_gzip("*;q=0"));
        // An explicit gzip;q=0 wins over a permissive *.
        assert!(!accepts_gzip("*, gzip;q=0"));
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let page = "node_tcp_connection_states{state=\"established\"} 3\n".repeat(100);
        let z = gzip(page.as_bytes()).unwrap();
        assert!(z.len() < page.len() / 5);
        let mut back = String::new();
        flate2::read::GzDecoder::new(&z[..])
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, page);
    }
}
