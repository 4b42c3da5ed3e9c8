//! The admin listener (plain HTTP, its own port, meant for loopback or the pod network):
//! `/healthz` (the process runs, whatever the upstream does), `/readyz` (accepting
//! traffic: false while starting or draining, and with `readiness.upstream` while the
//! upstream has not answered a probe within `readiness.window`, readiness.rs),
//! `/metrics` (Prometheus text) and `/.well-known/jwks.json` (the public keys of the
//! internal header, of the generation serving now). It never sees client traffic or
//! secrets.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use arc_swap::ArcSwap;

use crate::auth::replay::ReplayStore;
use crate::metrics::Metrics;
use crate::readiness::UpstreamHealth;
use crate::reload::Generation;
use crate::shutdown::Lifecycle;

/// What the admin endpoints report on.
#[derive(Clone)]
pub struct State {
    pub lifecycle: Arc<Lifecycle>,
    pub metrics: Arc<Metrics>,
    pub replay: Arc<ReplayStore>,
    /// The generation serving now (its JWK Set follows reloads).
    pub current: Arc<ArcSwap<Generation>>,
    /// The upstream's last answer to a readiness probe.
    pub upstream_health: Arc<UpstreamHealth>,
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

fn route(req: &Request<Incoming>, state: &State) -> Response<Full<Bytes>> {
    let lifecycle = &state.lifecycle;
    match req.uri().path() {
        "/metrics" => {
            let mut res = text(StatusCode::OK, state.metrics.encode(state.replay.entries()));
            res.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            res
        }
        "/.well-known/jwks.json" => {
            let jwks = state.current.load().jwks.clone();
            let mut res = text(StatusCode::OK, Bytes::copy_from_slice(jwks.as_bytes()));
            let h = res.headers_mut();
            h.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            // Verifiers cache the set; a key is pre-published for at least this long
            // before it signs (docs/design.md §5.3).
            h.insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("max-age=300"),
            );
            res
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if lifecycle.is_ready() && !upstream_ready(state) => {
            text(StatusCode::SERVICE_UNAVAILABLE, "upstream not answering\n")
        }
        "/readyz" if lifecycle.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" if lifecycle.is_draining() => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Whether the upstream counts as up: always, unless `readiness.upstream` is on.
fn upstream_ready(state: &State) -> bool {
    let generation = state.current.load();
    let readiness = &generation.config.readiness;
    !readiness.upstream || state.upstream_health.fresh(readiness.window)
}

/// Serves admin requests until the returned task is aborted.
pub fn spawn(listener: TcpListener, state: State) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    continue;
                }
            };
            let state = state.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let res = route(&req, &state);
                    async move { Ok::<_, Infallible>(res) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}
