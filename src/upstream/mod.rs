//! The upstream: the legacy token service, over kept-alive HTTP/1.1 connections of each
//! worker's own (pool.rs).
//!
//! Sends the request in origin form with `Host` set to the upstream's authority, removes
//! hop-by-hop headers (RFC 9110 §7.6.1) both ways, sets `X-Forwarded-For/Proto/Host` from
//! what the gateway itself saw (client-sent copies were removed by strip.rs), and bounds
//! the wait for response headers by `upstream.timeout` (connecting included, itself
//! bounded by `upstream.connect_timeout`). Refused or broken upstream → 502; timeout →
//! 504. A request whose own body failed (a malformed chunk, a client that went away) is the
//! client's error, not the upstream's: 400, and not counted as an upstream failure.
//! Bodies stream in both directions; nothing here buffers.
//!
//! A kept-alive connection the upstream closed before our request was written to it is
//! not an upstream failure: the request comes back untouched and goes out once more on a
//! new connection. Once written, a request is never sent twice (a token request is not
//! idempotent).

pub mod credential;
mod pool;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{Request, Response, Uri, Version};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tower::Service;

use crate::body::{Body, BodyError};
use crate::config::UpstreamConfig;
use crate::conn::{ClientAddr, IpText};
use crate::error::GatewayError;
use crate::metrics::{Metrics, UpstreamError};
use pool::{Conn, Pool};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Whether `name` is connection-specific (RFC 9110 §7.6.1), one of the obsolete ones
/// proxies still see, or `Upgrade` (never forwarded: no protocol switch through the
/// gateway).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    remove_where(headers, |_| false);
}

/// Removes hop-by-hop headers, those the `Connection` header names (RFC 9110 §7.6.1), and
/// every header `also` picks. Without allocating in the common cases: a request rarely has
/// any of them (one pass over the names), and a response usually has `Connection:
/// keep-alive` or `close` alone (the names removed one by one, found by a pass each, and
/// the two usual options read without parsing a header name: 1.9k instructions per
/// proxied request before, issue 23).
pub fn remove_where(headers: &mut HeaderMap, also: impl Fn(&HeaderName) -> bool) {
    let doomed = |name: &HeaderName| is_hop_by_hop(name) || also(name);
    if !headers.keys().any(doomed) {
        return;
    }
    // Read before `Connection` itself goes. `keep-alive` is hop-by-hop already; a header
    // named by any other option, `close` included, is removed like the rest.
    let mut named: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        let Ok(value) = value.to_str() else { continue };
        for option in value.split(',').map(str::trim) {
            if option.eq_ignore_ascii_case("keep-alive") {
                continue;
            }
            let name = if option.eq_ignore_ascii_case("close") {
                Ok(CLOSE)
            } else {
                HeaderName::from_bytes(option.as_bytes())
            };
            if let Ok(name) = name {
                if headers.contains_key(&name) {
                    named.push(name);
                }
            }
        }
    }
    // Each pass removes one name and every value under it, so this ends.
    while let Some(name) = headers.keys().find(|name| doomed(name)).cloned() {
        headers.remove(&name);
    }
    for name in &named {
        headers.remove(name);
    }
}

/// A header named after the `close` connection option (which `Connection: close` removes).
const CLOSE: HeaderName = HeaderName::from_static("close");

/// One worker's upstream client. Cheap to clone (one `Arc`): the stack clones it per
/// request.
#[derive(Clone)]
pub struct Upstream {
    shared: Arc<Shared>,
}

struct Shared {
    authority: Authority,
    /// `Host` of every upstream request: the upstream's authority.
    host: HeaderValue,
    connect_timeout: Duration,
    timeout: Duration,
    pool: Arc<Pool>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("authority", &self.shared.authority)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// A client with a pool of its own: make one per worker (reload.rs).
    pub fn new(cfg: &UpstreamConfig, metrics: Arc<Metrics>) -> Self {
        let host = HeaderValue::from_str(cfg.authority.as_str())
            .unwrap_or_else(|_| unreachable!("an Authority is a valid header value"));
        Self {
            shared: Arc::new(Shared {
                authority: cfg.authority.clone(),
                host,
                connect_timeout: cfg.connect_timeout,
                timeout: cfg.timeout,
                pool: Arc::new(Pool::new(cfg.pool_idle_timeout)),
                metrics,
            }),
        }
    }

    fn prepare(&self, mut req: Request<Body>) -> Request<Body> {
        // The target's authority (HTTP/2 `:authority`, an absolute-form target) first, as
        // RFC 9113 §8.3.1 and RFC 9112 §3.2.2 say; head_rules.rs refused a Host that
        // disagrees with it, and userinfo in either.
        let host = req.headers_mut().remove(header::HOST);
        let original_host = req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            .or(host);
        // Origin form: the path and query only.
        if req.uri().scheme().is_some() || req.uri().authority().is_some() {
            let path = req
                .uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"));
            *req.uri_mut() = Uri::from(path);
        }
        // The upstream speaks HTTP/1.1 whatever the client negotiated.
        *req.version_mut() = Version::HTTP_11;
        let peer = req.extensions().get::<ClientAddr>().map(|a| a.0.ip());
        let headers = req.headers_mut();
        remove_hop_by_hop(headers);
        headers.insert(header::HOST, self.shared.host.clone());
        // Only what this gateway saw is forwarded; client-supplied values were stripped.
        // The client's address: a trusted proxy's PROXY header's, else the TCP peer.
        if let Some(ip) = peer {
            headers.insert(X_FORWARDED_FOR, address_value(ip));
        }
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        match original_host {
            Some(host) => headers.insert(X_FORWARDED_HOST, host),
            None => headers.remove(&X_FORWARDED_HOST),
        };
        req
    }
}

/// An address as a header value.
fn address_value(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_str(IpText::new(ip).as_str())
        .unwrap_or_else(|_| unreachable!("an address is a valid header value"))
}

impl Service<Request<Body>> for Upstream {
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, GatewayError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let req = self.prepare(req);
        let shared = self.shared.clone();
        Box::pin(async move {
            let start = Instant::now();
            let result = match tokio::time::timeout(shared.timeout, exchange(&shared, req)).await {
                Ok(result) => result,
                Err(_elapsed) => Err(Failure::Timeout),
            };
            match result {
                Ok(res) => {
                    shared.metrics.upstream_response(start.elapsed());
                    Ok(res)
                }
                Err(Failure::Timeout) => {
                    shared.metrics.upstream_error(UpstreamError::timeout);
                    Err(GatewayError::UpstreamTimeout(shared.timeout))
                }
                // The request's own body failed: the client's doing, whatever the client
                // library made of it.
                Err(Failure::Broken(e)) if client_body_failed(&*e) => {
                    Err(GatewayError::BodyRead(e))
                }
                Err(Failure::Broken(e)) => {
                    shared.metrics.upstream_error(UpstreamError::unavailable);
                    Err(GatewayError::UpstreamUnavailable(e))
                }
            }
        })
    }
}

enum Failure {
    Timeout,
    Broken(Box<dyn std::error::Error + Send + Sync>),
}

/// Sends `req` on a pooled connection (or a new one) and waits for the response head,
/// driving the connection meanwhile.
async fn exchange(shared: &Arc<Shared>, mut req: Request<Body>) -> Result<Response<Body>, Failure> {
    // A kept-alive connection may turn out closed before the request is written: then it
    // comes back, and goes on a new connection (at most once: a new connection that
    // fails is the upstream's failure).
    let mut fresh_only = false;
    loop {
        let (mut conn, fresh) = match (!fresh_only).then(|| shared.pool.checkout()).flatten() {
            Some(conn) => (conn, false),
            None => {
                let conn = shared
                    .pool
                    .connect(&shared.authority, shared.connect_timeout)
                    .await
                    // A connect timeout too: 502, the upstream is not there.
                    .map_err(|e| Failure::Broken(Box::new(e)))?;
                shared.metrics.upstream_connection_opened();
                (conn, true)
            }
        };
        let response = conn.send.try_send_request(req);
        let mut response = std::pin::pin!(response);
        let result = std::future::poll_fn(|cx| {
            conn.drive(cx);
            response.as_mut().poll(cx)
        })
        .await;
        match result {
            Ok(res) => {
                let (mut parts, body) = res.into_parts();
                remove_hop_by_hop(&mut parts.headers);
                let body = UpstreamBody {
                    body,
                    conn: Some(conn),
                    pool: shared.pool.clone(),
                };
                return Ok(Response::from_parts(parts, body.boxed_unsync()));
            }
            Err(mut e) => match e.take_message() {
                Some(unsent) if !fresh => {
                    req = unsent;
                    fresh_only = true;
                }
                _ => return Err(Failure::Broken(Box::new(e.into_error()))),
            },
        }
    }
}

/// The response body, streamed from the upstream connection, which it drives; once read
/// to its end, the connection goes back to the pool.
struct UpstreamBody {
    body: Incoming,
    conn: Option<Conn>,
    pool: Arc<Pool>,
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if let Some(conn) = &mut this.conn {
            conn.drive(cx);
        }
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        if frame.as_ref().is_some_and(|f| f.is_err()) {
            // A broken body: the connection is not reusable.
            this.conn = None;
        }
        Poll::Ready(frame.map(|f| f.map_err(BodyError::new)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // Read to the end: reusable (pool.rs checks before handing it out again).
        // Abandoned midway: closed, as HTTP/1.1 cannot skip the rest of a response.
        if let Some(conn) = self.conn.take() {
            if self.body.is_end_stream() {
                self.pool.put_back(conn);
            }
        }
    }
}

/// Whether a failed upstream exchange failed because of the request body the client was
/// sending. Protected bodies are in memory and cannot fail, so a [`BodyError`] anywhere in
/// the error's chain comes from a streamed client body.
fn client_body_failed(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(err) = source {
        if err.is::<BodyError>() {
            return true;
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[test]
    fn the_forwarded_address_is_the_addresses_text() {
        for ip in ["127.0.0.1", "10.200.3.45", "2001:db8::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(address_value(ip), ip.to_string().as_str());
        }
    }

    const RESPONSE: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";

    /// An upstream on loopback that answers every request head with [`RESPONSE`], keeps
    /// connections alive unless `close_after` (then closes each after one response), and
    /// counts the connections it accepted. Each closed connection is reported on `closed`.
    async fn upstream(
        close_after: bool,
    ) -> (
        std::net::SocketAddr,
        Arc<AtomicUsize>,
        tokio::sync::mpsc::UnboundedReceiver<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (closed_tx, closed) = tokio::sync::mpsc::unbounded_channel();
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut tcp, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let closed_tx = closed_tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let n = tcp.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        // Bodiless GETs: a head is a request.
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            tcp.write_all(RESPONSE).await.unwrap();
                            if close_after {
                                drop(tcp);
                                let _ = closed_tx.send(());
                                return;
                            }
                        }
                    }
                    let _ = closed_tx.send(());
                });
            }
        });
        (addr, accepted, closed)
    }

    fn client(addr: std::net::SocketAddr) -> (Upstream, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        let cfg = UpstreamConfig {
            authority: addr.to_string().parse().unwrap(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            pool_idle_timeout: Duration::from_secs(60),
        };
        (Upstream::new(&cfg, metrics.clone()), metrics)
    }

    async fn get(up: &mut Upstream) -> (http::StatusCode, Bytes) {
        let req = Request::get("/x")
            .body(
                http_body_util::Empty::new()
                    .map_err(BodyError::new)
                    .boxed_unsync(),
            )
            .unwrap();
        let res = up.call(req).await.unwrap();
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, body)
    }

    #[tokio::test]
    async fn one_kept_alive_connection_serves_request_after_request() {
        let (addr, accepted, _closed) = upstream(false).await;
        let (mut up, metrics) = client(addr);
        for _ in 0..5 {
            assert_eq!(
                get(&mut up).await,
                (http::StatusCode::OK, Bytes::from("{}"))
            );
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(up.shared.pool.idle_count(), 1);
        assert!(metrics
            .encode(None)
            .contains("secretgate_upstream_connections_opened_total 1\n"));
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_dropped_not_used() {
        let (addr, accepted, mut closed) = upstream(true).await;
        let (mut up, _) = client(addr);
        assert_eq!(get(&mut up).await.0, http::StatusCode::OK);
        closed.recv().await.unwrap();
        // The pooled connection is dead: the reaper's check finds it once the close has
        // reached this side (waited for, not slept on).
        let deadline = Instant::now() + Duration::from_secs(10);
        while up.shared.pool.idle_count() > 0 {
            up.shared.pool.reap_once_for_tests();
            assert!(
                Instant::now() < deadline,
                "the closed connection stayed pooled"
            );
            tokio::task::yield_now().await;
        }
        // The next request gets a new connection, and a 200.
        assert_eq!(get(&mut up).await.0, http::StatusCode::OK);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_response_abandoned_midway_closes_its_connection() {
        let (addr, accepted, _closed) = upstream(false).await;
        let (mut up, _) = client(addr);
        let req = Request::get("/x")
            .body(
                http_body_util::Empty::new()
                    .map_err(BodyError::new)
                    .boxed_unsync(),
            )
            .unwrap();
        let res = up.call(req).await.unwrap();
        // Only the head read: the connection cannot be reused, so it is not pooled.
        drop(res);
        assert_eq!(up.shared.pool.idle_count(), 0);
        assert_eq!(get(&mut up).await.0, http::StatusCode::OK);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn nothing_listening_is_502_and_counted() {
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let (mut up, metrics) = client(addr);
        let req = Request::get("/x")
            .body(
                http_body_util::Empty::new()
                    .map_err(BodyError::new)
                    .boxed_unsync(),
            )
            .unwrap();
        let err = up.call(req).await.unwrap_err();
        assert!(
            matches!(err, GatewayError::UpstreamUnavailable(_)),
            "{err:?}"
        );
        assert!(metrics
            .encode(None)
            .contains("secretgate_upstream_errors_total{kind=\"unavailable\"} 1\n"));
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::ACCEPT));
    }

    #[test]
    fn connection_options_name_headers_in_any_case_and_any_value() {
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, HeaderValue::from_static("Keep-Alive"));
        h.append(
            header::CONNECTION,
            HeaderValue::from_static(" X-One ,CLOSE,, x-two"),
        );
        for name in ["x-one", "x-two", "close", "keep-alive", "x-kept"] {
            h.append(name, HeaderValue::from_static("1"));
            h.append(name, HeaderValue::from_static("2"));
        }
        remove_hop_by_hop(&mut h);
        let left: Vec<_> = h.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
        assert_eq!(left, [("x-kept", &b"1"[..]), ("x-kept", &b"2"[..])]);
        // What is not hop-by-hop and not named stays, every value of it.
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert("close", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("close"));
    }
}
