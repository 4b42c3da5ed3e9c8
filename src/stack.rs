//! The one place where the order of the request path is written down (docs/design.md §1).
//!
//! Outermost first. Everything above `RescueLayer` cannot fail; everything below it reports
//! failures as [`GatewayError`] and rescue turns them into responses. The innermost
//! service is a parameter: the upstream client in the gateway, a `service_fn` in the
//! in-process tests below, which drive the whole stack without a socket.

use std::convert::Infallible;
use std::sync::Arc;

use http::header::{HeaderName, AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, SET_COOKIE};
use http::{Request, Response};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::{
    SetSensitiveRequestHeadersLayer, SetSensitiveResponseHeadersLayer,
};

use crate::auth::{AuthLayer, Authenticator};
use crate::body::Body;
use crate::config::Config;
use crate::error::GatewayError;
use crate::metrics::Metrics;
use crate::rescue::RescueLayer;
use crate::route::RouteLayer;
use crate::sign::{SignLayer, Signer};
use crate::strip::StripInternalHeaderLayer;
use crate::trace::{AccessLogLayer, MakeId, REQUEST_ID};

/// Per-config state the stack is built from.
#[derive(Clone)]
pub struct Parts {
    pub authenticator: Arc<Authenticator>,
    pub signer: Arc<Signer>,
    /// Process-wide: survives reloads.
    pub metrics: Arc<Metrics>,
}

/// The assembled stack, type-erased so a reload can swap it for one built from a new
/// config (see reload.rs).
pub type Stack = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// Builds the request stack in front of `inner` (the upstream client, in the gateway).
pub fn build<S>(config: &Config, parts: Parts, inner: S) -> Stack
where
    S: Service<Request<Body>, Response = Response<Body>, Error = GatewayError>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    BoxCloneSyncService::new(layered(config, parts, inner))
}

fn layered<S>(
    config: &Config,
    parts: Parts,
    inner: S,
) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
       + Clone
       + Send
       + Sync
       + 'static
where
    S: Service<Request<Body>, Response = Response<Body>, Error = GatewayError>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let request_id = HeaderName::from_static(REQUEST_ID);
    let internal = config.internal_header.name.clone();
    ServiceBuilder::new()
        // 1. Sensitive headers, first of all: from here on, Debug output of the
        //    credential-bearing headers (and of the internal header) prints "Sensitive",
        //    so no later layer or log line can leak them.
        .layer(SetSensitiveRequestHeadersLayer::new([
            AUTHORIZATION,
            PROXY_AUTHORIZATION,
            COOKIE,
            internal.clone(),
        ]))
        .layer(SetSensitiveResponseHeadersLayer::new([SET_COOKIE]))
        // 2. Request id: reuse the client's or make one, and echo it on every response,
        //    including the error responses rescue writes below.
        .layer(SetRequestIdLayer::new(
            request_id.clone(),
            MakeId::default(),
        ))
        .layer(PropagateRequestIdLayer::new(request_id))
        // 3. Trace: one span per request (id, method, path — never the query), one access
        //    line (route, client, auth method, outcome, status, latency) and the request
        //    metrics. Placed above rescue so it records the status the client actually
        //    got, errors included.
        .layer(AccessLogLayer::new(parts.metrics))
        // 4. Rescue: every error below becomes its JSON OAuth response via the one table
        //    in error.rs; a request is never answered by dropping the connection.
        .layer(RescueLayer::new(&config.realm))
        // 5. Strip the internal header from every inbound request, protected or not,
        //    before any decision is made (docs/design.md §5).
        .layer(StripInternalHeaderLayer::new(internal))
        // 6. Route: mark protected endpoints; forward or deny the rest. Unprotected
        //    requests skip 7 and 8 and stream to the upstream untouched.
        .layer(RouteLayer::new(
            config.protected_paths.clone(),
            config.unprotected,
        ))
        // 7. Authenticate (protected only): POST only, body buffered under
        //    limits.max_body and limits.body_read_timeout (limit.rs), one method, verify,
        //    then remove every trace of the secret and re-encode the body.
        .layer(AuthLayer::new(parts.authenticator))
        // 8. Sign: add the internal header from the verified identity; a protected request
        //    without one is refused here (fail closed).
        .layer(SignLayer::new(parts.signer))
        // 9. Upstream (`inner`): pooled client, hop-by-hop removal, X-Forwarded-*,
        //    timeouts (connect → 502, response headers → 504).
        .service(inner)
}
