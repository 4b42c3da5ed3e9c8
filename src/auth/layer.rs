//! The tower layer that runs the [`Authenticator`] on requests routing marked
//! [`Protected`], the authorization endpoint's checks (authorize.rs) on requests marked
//! [`FrontChannel`], and the containment checks (contain.rs) on every other request.
//!
//! Invariants: a request leaves this layer rejected, or authenticated with its secret
//! removed, or carrying no client credential at all. Only this layer inserts
//! [`Authenticated`]; any copy already on a request is removed first, so nothing below can
//! be told a client authenticated unless it did here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::auth::contain::{self, Head};
use crate::auth::shadow::Shadowed;
use crate::auth::{Authenticated, Authenticator};
use crate::body::Body;
use crate::error::GatewayError;
use crate::route::{FrontChannel, Protected};

/// Tower layer running [`Authenticator`] on protected requests, containment on the rest.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    authenticator: Arc<Authenticator>,
}

impl AuthLayer {
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self { authenticator }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            authenticator: self.authenticator.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
}

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> Service<Request<Body>> for Auth<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = GatewayError>
        + Clone
        + Send
        + 'static,
{
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = ResponseFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // Only this layer may say who authenticated, or that a request is in shadow; drop
        // anything claiming otherwise.
        req.extensions_mut().remove::<Authenticated>();
        req.extensions_mut().remove::<Shadowed>();
        let authenticator = self.authenticator.clone();
        let preparing: BoxFuture<Result<Request<Body>, GatewayError>> =
            if let Some(&Protected(kind)) = req.extensions().get::<Protected>() {
                // The body read is async: one allocation per protected request.
                Box::pin(async move { authenticator.authenticate(req, kind).await })
            } else if req.extensions().get::<FrontChannel>().is_some() {
                Box::pin(async move { crate::auth::authorize::check(&authenticator, req).await })
            } else {
                match contain::check_head(
                    req.headers(),
                    req.uri().query(),
                    authenticator.allowed_schemes(),
                ) {
                    // Refused from the head: the body the client may still be sending is
                    // read and dropped first, so it reads the answer, not a reset.
                    Err(error) => Box::pin(async move {
                        crate::limit::drain(req.into_body()).await;
                        Err(error)
                    }),
                    // Nothing to read: streamed on at once (a GET has no body).
                    Ok(Head::Clean) => return ResponseFuture::calling(self.inner.call(req)),
                    Ok(Head::Inspect(_)) if http_body::Body::is_end_stream(req.body()) => {
                        return ResponseFuture::calling(self.inner.call(req))
                    }
                    Ok(head) => Box::pin(async move {
                        contain::check_body(req, head, authenticator.limits()).await
                    }),
                }
            };
        // `inner` was polled ready: take it, leave a fresh clone behind (tower's contract).
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        ResponseFuture::preparing(preparing, inner)
    }
}

pin_project! {
    /// Preparing the request (authenticating a protected one, reading a form body to
    /// check it, taking a rate-limit token), then the inner service's future. Shared by
    /// the auth and rate-limit layers.
    pub struct ResponseFuture<S: Service<Request<Body>>> {
        #[pin]
        state: State<S>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S: Service<Request<Body>>> {
        Preparing {
            future: BoxFuture<Result<Request<Body>, GatewayError>>,
            inner: Option<S>,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
    }
}

impl<S: Service<Request<Body>>> ResponseFuture<S> {
    /// Straight to the inner service.
    pub(crate) fn calling(future: S::Future) -> Self {
        ResponseFuture {
            state: State::Calling { future },
        }
    }

    /// `prepare` first, then `inner` (already polled ready) with the request it returns.
    pub(crate) fn preparing(
        prepare: BoxFuture<Result<Request<Body>, GatewayError>>,
        inner: S,
    ) -> Self {
        ResponseFuture {
            state: State::Preparing {
                future: prepare,
                inner: Some(inner),
            },
        }
    }
}

impl<S> Future for ResponseFuture<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = GatewayError>,
{
    type Output = Result<Response<Body>, GatewayError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Preparing { future, inner } => {
                    let req = ready!(future.as_mut().poll(cx))?;
                    let Some(mut inner) = inner.take() else {
                        return Poll::Ready(Err(GatewayError::NotAuthenticated));
                    };
                    let future = inner.call(req);
                    this.state.set(State::Calling { future });
                }
                StateProj::Calling { future } => return future.poll(cx),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tower::{ServiceBuilder, ServiceExt};

    use super::*;
    use crate::body::full;
    use crate::oauth::{AuthMethod, ClientId};
    use crate::testing;

    /// An `Authenticated` extension that did not come from this layer never survives it:
    /// on an unprotected request it is removed, so the signer cannot be fooled.
    #[tokio::test]
    async fn only_this_layer_says_who_authenticated() {
        let (config, _dir) = testing::config("");
        let svc = ServiceBuilder::new()
            .layer(AuthLayer::new(testing::parts(&config).authenticator))
            .service_fn(|req: Request<Body>| async move {
                let claimed = req.extensions().get::<Authenticated>().is_some();
                Ok::<_, GatewayError>(Response::new(full(if claimed {
                    "claimed"
                } else {
                    "none"
                })))
            });
        let mut req = Request::post("/anything").body(full("")).unwrap();
        req.extensions_mut().insert(Authenticated {
            client_id: ClientId::new(testing::BASIC_ID),
            method: AuthMethod::ClientSecretBasic,
            body: Bytes::new(),
            cnf: None,
        });
        let res = svc.oneshot(req).await.unwrap();
        use http_body_util::BodyExt;
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "none");
    }
}
