//! Routing: decides whether a request targets a protected endpoint.
//!
//! Protected paths are patterns (config/path.rs) such as `/{tid}/{aid}/oauth2/token`, where `{name}` matches
//! exactly one non-empty segment. Matching works on the percent-decoded path, and paths that
//! could be read differently by the gateway and the upstream (bad escapes, encoded `/`,
//! dot segments, empty segments) are refused outright: otherwise `/oauth2/%74oken` would
//! pass as unprotected here and be served as the token endpoint upstream.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{self, Either, Ready};
use http::{Request, Response};
use tower::{Layer, Service};

use crate::body::Body;
use crate::config::{PathPattern, UnprotectedPolicy};
use crate::error::{GatewayError, RequestError};
use crate::metrics::RouteClass;
use crate::trace::note;

/// Marks a request as aimed at a protected endpoint. Inserted only by [`Route`].
#[derive(Debug, Clone, Copy)]
pub struct Protected;

/// Classifies `path`: `Ok(true)` for protected, `Ok(false)` for unprotected, `Err` for a
/// path that is ambiguous between us and the upstream.
pub fn classify(patterns: &[PathPattern], path: &str) -> Result<bool, RequestError> {
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| RequestError::AmbiguousPath)?;
    // A `%` left over, `%2F`, `%2E` and friends change meaning once decoded; refuse them so
    // the upstream's reading of the path is the same as ours.
    if has_bad_escape(path) || path.contains("%2F") || path.contains("%2f") {
        return Err(RequestError::AmbiguousPath);
    }
    let trimmed = decoded
        .strip_prefix('/')
        .ok_or(RequestError::AmbiguousPath)?;
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Ok(false);
    }
    let segments: Vec<&str> = trimmed.split('/').collect();
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return Err(RequestError::AmbiguousPath);
    }
    Ok(patterns.iter().any(|p| p.matches(&segments)))
}

fn has_bad_escape(path: &str) -> bool {
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let ok = bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return true;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    false
}

#[derive(Debug)]
struct RouteConfig {
    patterns: Vec<PathPattern>,
    unprotected: UnprotectedPolicy,
}

#[derive(Debug, Clone)]
pub struct RouteLayer {
    config: Arc<RouteConfig>,
}

impl RouteLayer {
    pub fn new(patterns: Vec<PathPattern>, unprotected: UnprotectedPolicy) -> Self {
        Self {
            config: Arc::new(RouteConfig {
                patterns,
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
        // Whatever a client sends, only this layer decides what is protected: the marker is
        // an extension, never something read from the request.
        req.extensions_mut().remove::<Protected>();
        match classify(&self.config.patterns, req.uri().path()) {
            Err(e) => {
                note(&req, |n| n.route(RouteClass::invalid));
                Either::Left(future::ready(Err(e.into())))
            }
            Ok(true) => {
                note(&req, |n| n.route(RouteClass::protected));
                req.extensions_mut().insert(Protected);
                Either::Right(self.inner.call(req))
            }
            Ok(false) => match self.config.unprotected {
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
    use tower::{ServiceBuilder, ServiceExt};

    /// A Route layer in front of a `service_fn` that answers whether the request was
    /// marked protected.
    async fn route(policy: UnprotectedPolicy, path: &str) -> Result<bool, GatewayError> {
        let svc = ServiceBuilder::new()
            .layer(RouteLayer::new(
                pats(&["/oauth2/token", "/{tid}/oauth2/token"]),
                policy,
            ))
            .service_fn(|req: Request<Body>| async move {
                let marked = req.extensions().get::<Protected>().is_some();
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
    }

    fn pats(list: &[&str]) -> Vec<PathPattern> {
        list.iter()
            .map(|p| PathPattern::parse(p).unwrap())
            .collect()
    }

    #[test]
    fn placeholders_match_one_segment() {
        let p = pats(&["/oauth2/token", "/{tid}/{aid}/oauth2/token"]);
        assert_eq!(classify(&p, "/oauth2/token"), Ok(true));
        assert_eq!(classify(&p, "/oauth2/token/"), Ok(true));
        assert_eq!(classify(&p, "/acme/app/oauth2/token"), Ok(true));
        assert_eq!(classify(&p, "/acme/oauth2/token"), Ok(false));
        assert_eq!(classify(&p, "/a/b/c/oauth2/token"), Ok(false));
        assert_eq!(classify(&p, "/.well-known/openid-configuration"), Ok(false));
        assert_eq!(classify(&p, "/"), Ok(false));
    }

    #[test]
    fn encoded_paths_cannot_dodge_protection() {
        let p = pats(&["/oauth2/token"]);
        assert_eq!(classify(&p, "/oauth2/%74oken"), Ok(true));
        assert_eq!(
            classify(&p, "/oauth2%2Ftoken"),
            Err(RequestError::AmbiguousPath)
        );
        assert_eq!(
            classify(&p, "/x/../oauth2/token"),
            Err(RequestError::AmbiguousPath)
        );
        assert_eq!(
            classify(&p, "/oauth2//token"),
            Err(RequestError::AmbiguousPath)
        );
        assert_eq!(
            classify(&p, "/oauth2/./token"),
            Err(RequestError::AmbiguousPath)
        );
        assert_eq!(
            classify(&p, "/oauth2/%2e%2e/oauth2/token"),
            Err(RequestError::AmbiguousPath)
        );
        assert_eq!(
            classify(&p, "/oauth2/tok%zzen"),
            Err(RequestError::AmbiguousPath)
        );
        assert_eq!(
            classify(&p, "/oauth2/tok%e"),
            Err(RequestError::AmbiguousPath)
        );
    }
}
