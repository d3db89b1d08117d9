//! The exporter's HTTP server: `GET /metrics` and nothing else.
//!
//! Guarantees that a slow or hostile client cannot hurt a scrape:
//! - each connection is its own task, and must deliver its request headers within
//!   `header_timeout` (hyper's header-read timer) — a stalled client holds only its own task;
//! - at most `max_connections` connections are open at once; past that new ones are closed at
//!   accept time;
//! - at most `max_in_flight` scrapes run at once (reading the kernel is the expensive part);
//!   a request beyond that gets `503` at once instead of queueing behind the others;
//! - a scrape that outlives `scrape_timeout` answers `504` (its blocking work keeps its permit
//!   until it really ends, so the bound on concurrent kernel reads holds);
//! - any path other than `/metrics` is `404`, a method other than GET/HEAD is `405`, and a
//!   request hyper cannot parse gets hyper's `400`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
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
    pub header_timeout: Duration,
    pub scrape_timeout: Duration,
    /// A connection (keep-alive included) is closed after this long.
    pub connection_lifetime: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_in_flight: 4,
            max_connections: 64,
            header_timeout: Duration::from_secs(5),
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

async fn handle(
    req: Request<Incoming>,
    scrapes: Arc<Semaphore>,
    scrape: ScrapeFn,
    cfg: ServerConfig,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    if req.uri().path() != "/metrics" {
        return Ok(text(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n",
        ));
    }
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
    let Ok(permit) = scrapes.try_acquire_owned() else {
        return Ok(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many scrapes in flight; retry\n",
        ));
    };
    let job = tokio::task::spawn_blocking(move || {
        let out = scrape();
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
        Ok(Ok(Ok(page))) => {
            let body = if head {
                Bytes::new()
            } else {
                Bytes::from(page)
            };
            let mut r = Response::new(Full::new(body));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_TEXT));
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
    let conns = Arc::new(Semaphore::new(cfg.max_connections));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            a = listener.accept() => a,
        };
        let (stream, _peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                eprintln!("tcpfsm export: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(conn_permit) = conns.clone().try_acquire_owned() else {
            // Over the connection limit: closing at once costs nothing and frees the slot
            // for a scraper that will retry.
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let scrapes = scrapes.clone();
        let scrape = scrape.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(req, scrapes.clone(), scrape.clone(), cfg));
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(cfg.header_timeout)
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(cfg.connection_lifetime, conn).await;
            drop(conn_permit);
        });
    }
}
