//! Routing: decides which kind of endpoint a request targets, and marks it.
//!
//! Endpoints are path patterns by kind (`endpoints`, config/path.rs) such as
//! `/{tid}/{aid}/oauth2/token`, where `{name}` matches exactly one non-empty segment. The
//! kinds that authenticate clients (token, introspection, revocation, PAR, device
//! authorization) are marked [`Protected`] with their kind; the authorization endpoint
//! (the front channel, where PKCE is checked) is marked [`FrontChannel`]. How a path is read is canonical.rs:
//! matching works on the percent-decoded path; a path the gateway and the upstream could
//! read differently (bad escapes, encoded `/`, backslashes, dot segments) is refused, and so
//! is one that a lenient server would route to a protected endpoint (`/OAuth2/Token`,
//! `/oauth2/token;x`): otherwise it would be forwarded unauthenticated, secret and all.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{self, Either, Ready};
use http::{Request, Response};
use tower::{Layer, Service};

use crate::body::Body;
use crate::config::{EndpointsConfig, PathPattern, UnprotectedPolicy};
use crate::error::GatewayError;
use crate::metrics::RouteClass;
use crate::oauth::EndpointKind;
use crate::trace::note;

mod canonical;

pub use canonical::{classify, PathClass};

/// Marks a request as aimed at an endpoint that authenticates clients, of this kind.
/// Inserted only by [`Route`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protected(pub EndpointKind);

/// Marks a request as aimed at the authorization endpoint (RFC 6749 §3.1): not
/// authenticated, PKCE checked. Inserted only by [`Route`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrontChannel;

#[derive(Debug)]
struct RouteConfig {
    patterns: Vec<PathPattern>,
    /// The kind of each pattern, by index.
    kinds: Vec<EndpointKind>,
    unprotected: UnprotectedPolicy,
}

#[derive(Debug, Clone)]
pub struct RouteLayer {
    config: Arc<RouteConfig>,
}

impl RouteLayer {
    pub fn new(endpoints: &EndpointsConfig, unprotected: UnprotectedPolicy) -> Self {
        let (kinds, patterns) = endpoints.routes.iter().cloned().unzip();
        Self {
            config: Arc::new(RouteConfig {
                patterns,
                kinds,
                unprotected,
            }),
        }
    }
}

impl<S> Layer<S> for RouteLayer {
    type Service = Route<S>;
    fn layer(&self, inner: S) -> Route<S> {
        Route {
            inner,
            config: self.config.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Route<S> {
    inner: S,
    config: Arc<RouteConfig>,
}

impl<S> Service<Request<Body>> for Route<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = GatewayError>,
{
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = Either<Ready<Result<Response<Body>, GatewayError>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // Whatever a client sends, only this layer decides what is protected: the markers
        // are extensions, never something read from the request.
        req.extensions_mut().remove::<Protected>();
        req.extensions_mut().remove::<FrontChannel>();
        match classify(&self.config.patterns, req.uri().path()) {
            Err(e) => {
                note(&req, |n| n.route(RouteClass::invalid));
                Either::Left(future::ready(Err(e.into())))
            }
            Ok(PathClass::Endpoint(i)) => {
                match self.config.kinds.get(i) {
                    Some(&EndpointKind::Authorization) => {
                        note(&req, |n| n.route(RouteClass::authorization));
                        req.extensions_mut().insert(FrontChannel);
                    }
                    Some(&kind) => {
                        note(&req, |n| n.route(RouteClass::protected));
                        req.extensions_mut().insert(Protected(kind));
                    }
                    // (Patterns and kinds are built together: unreachable.)
                    None => {
                        note(&req, |n| n.route(RouteClass::invalid));
                        return Either::Left(future::ready(Err(
                            crate::error::RequestError::AmbiguousPath.into(),
                        )));
                    }
                }
                Either::Right(self.inner.call(req))
            }
            Ok(PathClass::Unprotected) => match self.config.unprotected {
                UnprotectedPolicy::Forward => {
                    note(&req, |n| n.route(RouteClass::unprotected));
                    Either::Right(self.inner.call(req))
                }
                UnprotectedPolicy::Deny => {
                    note(&req, |n| n.route(RouteClass::denied));
                    Either::Left(future::ready(Err(GatewayError::UnprotectedDenied)))
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::full;
    use crate::error::RequestError;
    use tower::{ServiceBuilder, ServiceExt};

    /// A Route layer in front of a `service_fn` that answers whether the request was
    /// marked protected.
    async fn route(policy: UnprotectedPolicy, path: &str) -> Result<bool, GatewayError> {
        let endpoints = EndpointsConfig {
            routes: ["/oauth2/token", "/{tid}/oauth2/token"]
                .iter()
                .map(|p| (EndpointKind::Token, PathPattern::parse(p).unwrap()))
                .collect(),
        };
        let svc = ServiceBuilder::new()
            .layer(RouteLayer::new(&endpoints, policy))
            .service_fn(|req: Request<Body>| async move {
                let marked =
                    req.extensions().get::<Protected>() == Some(&Protected(EndpointKind::Token));
                let mut res = Response::new(full(""));
                *res.status_mut() = if marked {
                    http::StatusCode::OK
                } else {
                    http::StatusCode::NO_CONTENT
                };
                Ok::<_, GatewayError>(res)
            });
        let res = svc
            .oneshot(Request::post(path).body(full("")).unwrap())
            .await?;
        Ok(res.status() == http::StatusCode::OK)
    }

    #[tokio::test]
    async fn the_layer_marks_forwards_denies_and_refuses() {
        use UnprotectedPolicy::*;
        assert!(route(Forward, "/oauth2/token").await.unwrap());
        assert!(route(Forward, "/acme/oauth2/%74oken").await.unwrap());
        assert!(!route(Forward, "/.well-known/jwks.json").await.unwrap());
        assert!(matches!(
            route(Deny, "/.well-known/jwks.json").await,
            Err(GatewayError::UnprotectedDenied)
        ));
        assert!(route(Deny, "/oauth2/token").await.unwrap());
        assert!(matches!(
            route(Forward, "/oauth2/x/../token").await,
            Err(GatewayError::Request(RequestError::AmbiguousPath))
        ));
        // A lookalike is refused whatever the policy for unprotected paths.
        assert!(matches!(
            route(Forward, "/OAuth2/Token").await,
            Err(GatewayError::Request(RequestError::LookalikePath))
        ));
    }
}
