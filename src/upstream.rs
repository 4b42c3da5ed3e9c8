//! The upstream: a pooled hyper-util client to the legacy token service.
//!
//! Rewrites the request URI to the upstream origin, removes hop-by-hop headers (RFC 9110
//! §7.6.1) both ways, sets `X-Forwarded-For/Proto/Host` from what the gateway itself saw
//! (client-sent copies were removed by strip.rs), and bounds the wait for response
//! headers by `upstream.timeout`. Refused or broken upstream → 502; timeout → 504. A
//! request whose own body failed (a malformed chunk, a client that went away) is the
//! client's error, not the upstream's: 400, and not counted as an upstream failure.
//! Bodies stream in both directions; nothing here buffers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{self, Client};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use pin_project_lite::pin_project;
use tower::Service;

use crate::body::{Body, BodyError};
use crate::config::UpstreamConfig;
use crate::conn::ClientAddr;
use crate::error::GatewayError;
use crate::metrics::{Metrics, UpstreamError};

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

/// Removes hop-by-hop headers, those the `Connection` header names, and every header
/// `also` picks. One pass over the names present: a request rarely has any of them, and
/// then nothing is looked up or allocated.
pub fn remove_where(headers: &mut HeaderMap, also: impl Fn(&HeaderName) -> bool) {
    let mut doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_hop_by_hop(name) || also(name))
        .cloned()
        .collect();
    if doomed.is_empty() {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        doomed.extend(
            headers
                .get_all(header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok()),
        );
    }
    for name in &doomed {
        headers.remove(name);
    }
}

#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client<HttpConnector, Body>,
    authority: Authority,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Upstream {
    pub fn new(cfg: &UpstreamConfig, metrics: Arc<Metrics>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(cfg.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(cfg.pool_idle_timeout)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Self {
            client,
            authority: cfg.authority.clone(),
            timeout: cfg.timeout,
            metrics,
        }
    }

    fn prepare(&self, mut req: Request<Body>) -> Request<Body> {
        let original_host = req.headers().get(header::HOST).cloned().or_else(|| {
            req.uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
        // The upstream speaks HTTP/1.1 whatever the client negotiated.
        *req.version_mut() = Version::HTTP_11;
        let peer = req.extensions().get::<ClientAddr>().map(|a| a.0.ip());
        let headers = req.headers_mut();
        remove_hop_by_hop(headers);
        // hyper-util sets Host from the upstream URI.
        headers.remove(header::HOST);
        // Only what this gateway saw is forwarded; client-supplied values were stripped.
        if let Some(ip) = peer.and_then(|ip| HeaderValue::from_str(&ip.to_string()).ok()) {
            headers.insert(X_FORWARDED_FOR, ip);
        }
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        match original_host {
            Some(host) => headers.insert(X_FORWARDED_HOST, host),
            None => headers.remove(&X_FORWARDED_HOST),
        };
        req
    }
}

impl Service<Request<Body>> for Upstream {
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let req = self.prepare(req);
        ResponseFuture {
            inner: tokio::time::timeout(self.timeout, self.client.request(req)),
            timeout: self.timeout,
            metrics: self.metrics.clone(),
            start: Instant::now(),
        }
    }
}

pin_project! {
    pub struct ResponseFuture {
        #[pin]
        inner: tokio::time::Timeout<legacy::ResponseFuture>,
        timeout: Duration,
        metrics: Arc<Metrics>,
        start: Instant,
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<Body>, GatewayError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match ready!(this.inner.poll(cx)) {
            Err(_elapsed) => {
                this.metrics.upstream_error(UpstreamError::timeout);
                Err(GatewayError::UpstreamTimeout(*this.timeout))
            }
            // The request's own body failed: the client's doing, whatever the client
            // library made of it.
            Ok(Err(e)) if client_body_failed(&e) => Err(GatewayError::BodyRead(Box::new(e))),
            Ok(Err(e)) => {
                this.metrics.upstream_error(UpstreamError::unavailable);
                Err(GatewayError::UpstreamUnavailable(Box::new(e)))
            }
            Ok(Ok(res)) => {
                this.metrics.upstream_response(this.start.elapsed());
                let (mut parts, body) = res.into_parts();
                remove_hop_by_hop(&mut parts.headers);
                Ok(Response::from_parts(
                    parts,
                    body.map_err(BodyError::new).boxed_unsync(),
                ))
            }
        };
        Poll::Ready(result)
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
}
