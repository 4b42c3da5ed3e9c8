//! Request ids and the per-request tracing span.
//!
//! The id comes from the client's `x-request-id` when present, else it is made here; it
//! goes upstream and back on the response. The span records method and *path only*: a
//! query string may hold credentials a client should not have sent, so it is never logged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::header::HeaderValue;
use http::Request;
use rand::RngCore;
use tower_http::request_id::{MakeRequestId, RequestId};
use tower_http::trace::MakeSpan;
use tracing::Span;

pub const REQUEST_ID: &str = "x-request-id";

/// `<random process prefix>-<counter>`: unique, cheap, no lock.
#[derive(Debug, Clone)]
pub struct MakeId {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl Default for MakeId {
    fn default() -> Self {
        Self {
            prefix: format!("{:08x}", rand::rng().next_u32()).into(),
            next: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for MakeId {
    fn make_request_id<B>(&mut self, _req: &Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::try_from(format!("{}-{n:x}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

/// Span with request id, method and path (never the query, never headers).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, req: &Request<B>) -> Span {
        let id = req
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::info_span!(
            "request",
            request_id = %id,
            method = %req.method(),
            path = %req.uri().path(),
            version = ?req.version(),
        )
    }
}

/// One span per request and one access line when the response head is ready: status and
/// latency. Does not wrap the body (streamed responses stay zero-copy).
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessLogLayer;

impl<S> tower::Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;
    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog { inner }
    }
}

#[derive(Debug, Clone)]
pub struct AccessLog<S> {
    inner: S,
}

impl<S, B, RB> tower::Service<Request<B>> for AccessLog<S>
where
    S: tower::Service<Request<B>, Response = http::Response<RB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = AccessLogFuture<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let span = RequestSpan.make_span(&req);
        let inner = {
            let _enter = span.enter();
            self.inner.call(req)
        };
        AccessLogFuture {
            inner,
            span,
            start: std::time::Instant::now(),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct AccessLogFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        start: std::time::Instant,
    }
}

impl<F, RB, E> std::future::Future for AccessLogFuture<F>
where
    F: std::future::Future<Output = Result<http::Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let _enter = this.span.enter();
        let out = std::task::ready!(this.inner.poll(cx));
        if let Ok(res) = &out {
            tracing::info!(
                status = res.status().as_u16(),
                latency_us = this.start.elapsed().as_micros() as u64,
                "response"
            );
        }
        std::task::Poll::Ready(out)
    }
}
