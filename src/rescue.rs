//! Turns every [`GatewayError`] into its response, through the one table in
//! [`crate::error`], so that a failure anywhere below is an OAuth error response and never
//! a dropped connection. Also the one place the reason is recorded, as fixed text: in the
//! request's notes, for its access line (trace.rs), or logged here when there are none.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::HeaderValue;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::body::Body;
use crate::error::{self, error_chain, GatewayError};
use crate::trace::Notes;

#[derive(Debug, Clone)]
pub struct RescueLayer {
    challenge: Arc<HeaderValue>,
}

impl RescueLayer {
    /// `realm` goes into `WWW-Authenticate: Basic realm="..."`.
    pub fn new(realm: &str) -> Self {
        Self {
            challenge: Arc::new(error::basic_challenge(realm)),
        }
    }
}

impl<S> Layer<S> for RescueLayer {
    type Service = Rescue<S>;
    fn layer(&self, inner: S) -> Rescue<S> {
        Rescue {
            inner,
            challenge: self.challenge.clone(),
            not_ready: None,
        }
    }
}

#[derive(Debug)]
pub struct Rescue<S> {
    inner: S,
    challenge: Arc<HeaderValue>,
    /// The inner service failed its readiness check: the next call is answered with this
    /// error instead of calling a service that is not ready (tower's contract).
    not_ready: Option<GatewayError>,
}

impl<S: Clone> Clone for Rescue<S> {
    /// A clone is a new service: it must be polled ready itself.
    fn clone(&self) -> Self {
        Rescue {
            inner: self.inner.clone(),
            challenge: self.challenge.clone(),
            not_ready: None,
        }
    }
}

impl<S> Service<Request<Body>> for Rescue<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = GatewayError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.not_ready.is_some() {
            return Poll::Ready(Ok(()));
        }
        match ready!(self.inner.poll_ready(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            // Rescue cannot fail, so a readiness error becomes the answer to the next call;
            // the inner service is not called for it.
            Err(e) => {
                self.not_ready = Some(e);
                Poll::Ready(Ok(()))
            }
        }
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let notes = req.extensions().get::<Arc<Notes>>().cloned();
        let kind = match self.not_ready.take() {
            Some(error) => Kind::Failed { error: Some(error) },
            None => Kind::Calling {
                future: self.inner.call(req),
            },
        };
        ResponseFuture {
            kind,
            challenge: self.challenge.clone(),
            notes,
        }
    }
}

pin_project! {
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
        challenge: Arc<HeaderValue>,
        notes: Option<Arc<Notes>>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Calling { #[pin] future: F },
        Failed { error: Option<GatewayError> },
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, GatewayError>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match this.kind.project() {
            KindProj::Calling { future } => ready!(future.poll(cx)),
            KindProj::Failed { error } => {
                Err(error.take().unwrap_or(GatewayError::NotAuthenticated))
            }
        };
        match result {
            Ok(res) => Poll::Ready(Ok(res)),
            Err(e) => {
                let res = error::response(&e, this.challenge);
                // Error texts are fixed and carry no request data (see error.rs).
                let reason = error_chain(&e);
                let status = res.status().as_u16();
                match this.notes.take() {
                    Some(notes) => notes.error(reason),
                    None if res.status().is_server_error() => {
                        tracing::warn!(error = %reason, status, "request failed")
                    }
                    None => tracing::info!(error = %reason, status, "request rejected"),
                }
                Poll::Ready(Ok(res))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http::StatusCode;
    use tower::ServiceExt;

    use super::*;
    use crate::body::full;

    /// An inner service whose readiness fails once, counting its calls.
    #[derive(Clone)]
    struct FailsReadiness {
        failed: Arc<AtomicUsize>,
        calls: Arc<AtomicUsize>,
    }

    impl Service<Request<Body>> for FailsReadiness {
        type Response = Response<Body>;
        type Error = GatewayError;
        type Future = std::future::Ready<Result<Response<Body>, GatewayError>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
            if self.failed.fetch_add(1, Ordering::SeqCst) == 0 {
                Poll::Ready(Err(GatewayError::UpstreamUnavailable("not ready".into())))
            } else {
                Poll::Ready(Ok(()))
            }
        }

        fn call(&mut self, _req: Request<Body>) -> Self::Future {
            self.calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok(Response::new(full("inner"))))
        }
    }

    #[tokio::test]
    async fn a_readiness_error_answers_the_call_without_calling_the_service() {
        let inner = FailsReadiness {
            failed: Arc::new(AtomicUsize::new(0)),
            calls: Arc::new(AtomicUsize::new(0)),
        };
        let mut svc = RescueLayer::new("r").layer(inner.clone());
        let req = || Request::post("/oauth2/token").body(full("")).unwrap();
        let res = svc.ready().await.unwrap().call(req()).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            inner.calls.load(Ordering::SeqCst),
            0,
            "not called when not ready"
        );
        // Ready again: the next call goes through.
        let res = svc.ready().await.unwrap().call(req()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn every_error_becomes_its_json_response() {
        let svc = RescueLayer::new("r").layer(tower::service_fn(|_req: Request<Body>| async {
            Err::<Response<Body>, _>(GatewayError::BodyTooLarge)
        }));
        let res = svc
            .oneshot(Request::post("/").body(full("")).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(res.headers()["content-type"], "application/json");
    }
}
