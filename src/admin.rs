//! The admin listener (plain HTTP, its own port, meant for loopback or the pod network):
//! `/healthz` (the process runs) and `/readyz` (accepting traffic; false while draining).
//! It never sees client traffic or secrets.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::shutdown::Lifecycle;

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

fn route(req: &Request<Incoming>, lifecycle: &Lifecycle) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if lifecycle.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" if lifecycle.is_draining() => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Serves admin requests until the returned task is aborted.
pub fn spawn(listener: TcpListener, lifecycle: Arc<Lifecycle>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    continue;
                }
            };
            let lifecycle = lifecycle.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let res = route(&req, &lifecycle);
                    async move { Ok::<_, Infallible>(res) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}
