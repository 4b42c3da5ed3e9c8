//! The one place where the order of the request path is written down (docs/design.md §1).
//!
//! Outermost first. Everything above `RescueLayer` cannot fail; everything below it reports
//! failures as [`GatewayError`] and rescue turns them into responses. The innermost
//! service is a parameter: the upstream client in the gateway, a `service_fn` in the
//! in-process tests below, which drive the whole stack without a socket.

use std::convert::Infallible;
use std::sync::Arc;

use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, SET_COOKIE};
use http::{Request, Response};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder};
use tower_http::sensitive_headers::{
    SetSensitiveRequestHeadersLayer, SetSensitiveResponseHeadersLayer,
};

use crate::auth::rate_limit::{RateLimitLayer, RateLimiter};
use crate::auth::{AuthLayer, Authenticator};
use crate::body::Body;
use crate::config::Config;
use crate::error::GatewayError;
use crate::head_rules::HeadRulesLayer;
use crate::metadata::{MetadataLayer, Rewrite};
use crate::metrics::Metrics;
use crate::rescue::RescueLayer;
use crate::route::RouteLayer;
use crate::sign::{SignLayer, Signer};
use crate::strip::StripLayer;
use crate::trace::{AccessLogLayer, MakeId};
use crate::upstream::credential::UpstreamCredentialLayer;

/// Per-config state the stack is built from.
#[derive(Clone)]
pub struct Parts {
    pub authenticator: Arc<Authenticator>,
    /// Process-wide buckets: survive reloads.
    pub rate_limiter: Arc<RateLimiter>,
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
    let internal = config.internal_header.name.clone();
    let metadata = Rewrite::new(config, parts.metrics.clone());
    let credential = UpstreamCredentialLayer::new(&config.rollout);
    let rate_limit = RateLimitLayer::new(parts.rate_limiter.clone(), &config.rollout);
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
        // 2. Strip what only the gateway may set, before anything reads it: every inbound
        //    copy of the internal header (docs/design.md §5.4), the forwarding, client-IP,
        //    URL-override and method-override headers, and an x-request-id that is not a
        //    short plain token (it is logged and forwarded).
        .layer(StripLayer::new(internal))
        // 3–4. Request id and trace: reuse the client's id (if it survived 2) or make
        //    one, and echo it on every response, including the error responses rescue
        //    writes below; one span per request (id, method, path — never the query), one
        //    access line (route, client, auth method, outcome, status, latency) and the
        //    request metrics. Placed above rescue so it records the status the client
        //    actually got, errors included.
        .layer(AccessLogLayer::new(parts.metrics, MakeId::default()))
        // 5. Rescue: every error below becomes its JSON OAuth response via the one table
        //    in error.rs; a request is never answered by dropping the connection.
        .layer(RescueLayer::new(&config.realm))
        // 6. Head rules: header names with `_` dropped (or refused), userinfo in the
        //    authority and an ambiguous Host refused, before anything routes by or
        //    forwards them (docs/design.md §4.1). Below rescue: a refusal is an answer.
        .layer(HeadRulesLayer::new(config.containment.underscore_headers))
        // 7. Route: refuse paths that are not canonical or that a lenient server would read
        //    as an endpoint; mark each endpoint with its kind (the ones that authenticate
        //    clients, and the authorization endpoint); forward or deny the rest.
        .layer(RouteLayer::new(&config.endpoints, config.unprotected))
        // 8. Authenticate protected requests: POST only, body buffered under
        //    limits.max_body and limits.body_read_timeout (limit.rs), one method, verify,
        //    then remove every trace of the secret and re-encode the body. Contain the
        //    rest: a request that carries a credential to a path that does not
        //    authenticate is refused (a form body is read under the same limits to check);
        //    everything else streams on untouched.
        .layer(AuthLayer::new(parts.authenticator))
        // 8a. Rate limit: a token per authenticated, enforced request from the client's
        //     bucket (shared over Redis); over it → 429 before the upstream is called.
        //     After 8, so only registered ids that authenticated are ever keys. Only in
        //     the stack when some client is limited.
        .option_layer((!rate_limit.is_empty()).then_some(rate_limit))
        // 8b. Upstream credential: for a client registered with one, the legacy secret
        //     the token service knows, added after the client's own was removed (8) and
        //     before signing (9), so that `body_sha256` covers the body as forwarded.
        //     Only in the stack when some client has one.
        .option_layer((!credential.is_empty()).then_some(credential))
        // 9. Sign: add the internal header from the verified identity (marked sensitive);
        //    a protected request without one is refused here (fail closed), unless it is in
        //    shadow (8: forwarded as sent).
        .layer(SignLayer::new(parts.signer))
        // 10. Metadata: discovery documents (RFC 8414, OIDC Discovery) from the upstream
        //    are rewritten to list the client authentication the gateway enforces. Next
        //    to the upstream: it only reads responses, after everything above judged the
        //    request.
        .layer(MetadataLayer::new(metadata))
        // 11. Upstream (`inner`): pooled client, hop-by-hop removal, X-Forwarded-*,
        //     timeouts (connect → 502, response headers → 504).
        .service(inner)
}

/// The whole stack in process, against a recording `service_fn` in place of the upstream:
/// the order of the layers and the rules each enforces, without a socket.
#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use bytes::Bytes;
    use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
    use http::StatusCode;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::body::full;
    use crate::config::SigningKey;
    use crate::secret::Secret;
    use crate::testing::{self, *};
    use crate::verify::{verify_internal_header, Expected};

    type Seen = Arc<Mutex<Vec<(http::request::Parts, Bytes)>>>;

    /// The upstream's stand-in: records what reached it and answers 200.
    fn recording(
        seen: Seen,
    ) -> impl Service<Request<Body>, Response = Response<Body>, Error = GatewayError, Future: Send>
           + Clone
           + Send
           + Sync
           + 'static {
        tower::service_fn(move |req: Request<Body>| {
            let seen = seen.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map_err(|e| GatewayError::BodyRead(e.into()))?
                    .to_bytes();
                seen.lock().unwrap().push((parts, bytes));
                Ok(Response::new(full("from the upstream")))
            }
        })
    }

    struct Rig {
        stack: Stack,
        seen: Seen,
        _dir: tempfile::TempDir,
        config: Config,
    }

    fn rig(extra: &str) -> Rig {
        let (config, dir) = testing::config(extra);
        let seen = Seen::default();
        let stack = build(&config, testing::parts(&config), recording(seen.clone()));
        Rig {
            stack,
            seen,
            _dir: dir,
            config,
        }
    }

    impl Rig {
        async fn call(&self, req: Request<Body>) -> (Response<Body>, Bytes) {
            let res = self.stack.clone().oneshot(req).await.unwrap();
            let (parts, body) = res.into_parts();
            let bytes = body.collect().await.unwrap().to_bytes();
            (Response::from_parts(parts, full(bytes.clone())), bytes)
        }

        fn forwarded(&self) -> Vec<(http::request::Parts, Bytes)> {
            std::mem::take(&mut *self.seen.lock().unwrap())
        }
    }

    fn form(path: &str, headers: &[(&str, &str)], body: &str) -> Request<Body> {
        let mut b = Request::post(path).header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(full(body.to_owned())).unwrap()
    }

    fn basic(id: &str, secret: &str) -> String {
        crate::auth::basic::encode(id, secret)
    }

    fn assertion_body(assertion: &str) -> String {
        format!(
            "grant_type=client_credentials&client_assertion_type={}&client_assertion={assertion}",
            crate::auth::form::form_encode_component(crate::oauth::ASSERTION_TYPE)
        )
    }

    fn jwt(header: serde_json::Value, jti: &str) -> String {
        let claims = serde_json::json!({
            "iss": JWT_ID, "sub": JWT_ID, "aud": ISSUER,
            "iat": NOW, "exp": NOW + 60, "jti": jti,
        });
        crate::jws::sign(
            header.to_string().as_bytes(),
            claims.to_string().as_bytes(),
            &crate::jws::HmacKey::new(crate::oauth::Algorithm::Hs256, JWT_SECRET.as_bytes()),
        )
    }

    fn assert_json_error(res: &Response<Body>, body: &Bytes, status: StatusCode, error: &str) {
        assert_eq!(res.status(), status, "{body:?}");
        assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(res.headers()["cache-control"], "no-store");
        let json: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(json["error"], error);
    }

    #[tokio::test]
    async fn a_protected_request_goes_through_every_layer_in_order() {
        let rig = rig("");
        let req = form(
            "/oauth2/token",
            &[
                ("authorization", &basic(BASIC_ID, BASIC_SECRET)),
                ("x-authenticated-client", "forged"),
                ("x-request-id", "req-1"),
            ],
            "grant_type=client_credentials",
        );
        let (res, body) = rig.call(req).await;
        assert_eq!(res.status(), StatusCode::OK, "{body:?}");
        assert_eq!(res.headers()["x-request-id"], "req-1");
        let mut seen = rig.forwarded();
        assert_eq!(seen.len(), 1);
        let (parts, forwarded) = seen.pop().unwrap();
        assert!(parts.headers.get(AUTHORIZATION).is_none());
        assert_eq!(
            &forwarded[..],
            b"grant_type=client_credentials&client_id=billing"
        );
        // The forged value was stripped (layer 2) and the signer's own set (layer 9).
        let values: Vec<_> = parts
            .headers
            .get_all("x-authenticated-client")
            .iter()
            .collect();
        assert_eq!(values.len(), 1);
        let keys = crate::verify::keys_of(&[SigningKey::hmac("k1", Secret::new(SIGNING_KEY))]);
        let claims = verify_internal_header(
            values[0].to_str().unwrap(),
            &keys,
            &Expected {
                now: Some(NOW),
                ..Expected::request(
                    "secretgate",
                    "legacy-token-service",
                    "POST",
                    "https://auth.example.com/oauth2/token",
                    None,
                    &forwarded,
                )
            },
        )
        .unwrap();
        assert_eq!(claims.iat, NOW, "the signer reads the injected clock");
        assert_eq!(claims.auth_method, "client_secret_basic");
        assert!(rig.config.internal_header.name == "x-authenticated-client");
    }

    #[tokio::test]
    async fn a_forged_internal_header_is_stripped_on_unprotected_paths() {
        let rig = rig("");
        let req = Request::get("/.well-known/openid-configuration")
            .header("x-authenticated-client", "forged")
            .body(full(""))
            .unwrap();
        let (res, _) = rig.call(req).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers().contains_key("x-request-id"), "an id is made");
        let seen = rig.forwarded();
        assert!(seen[0].0.headers.get("x-authenticated-client").is_none());
    }

    #[tokio::test]
    async fn refusals_are_json_and_reach_nothing() {
        let rig = rig("");
        let wrong = form(
            "/oauth2/token",
            &[("authorization", &basic(BASIC_ID, "wrong-secret"))],
            "grant_type=client_credentials",
        );
        let (res, body) = rig.call(wrong).await;
        assert_json_error(&res, &body, StatusCode::UNAUTHORIZED, "invalid_client");
        assert_eq!(
            res.headers()[WWW_AUTHENTICATE],
            "Basic realm=\"secretgate\""
        );

        let bearer = form(
            "/oauth2/token",
            &[("authorization", "Bearer abc")],
            "grant_type=client_credentials",
        );
        let (res, body) = rig.call(bearer).await;
        assert_json_error(&res, &body, StatusCode::BAD_REQUEST, "invalid_request");

        let latin1 = Request::post("/oauth2/token")
            .header(
                CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=iso-8859-1",
            )
            .body(full(format!(
                "client_id={POST_ID}&client_secret={POST_SECRET}"
            )))
            .unwrap();
        // Not exactly the form type (docs/design.md §2.5): 415.
        let (res, body) = rig.call(latin1).await;
        assert_json_error(
            &res,
            &body,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
        );

        // RFC 7515 §4.1.11: a `crit` header is not understood, so it is refused.
        let crit = jwt(serde_json::json!({"alg": "HS256", "crit": ["exp"]}), "c1");
        let (res, body) = rig
            .call(form("/oauth2/token", &[], &assertion_body(&crit)))
            .await;
        assert_json_error(&res, &body, StatusCode::UNAUTHORIZED, "invalid_client");
        assert!(res.headers().get(WWW_AUTHENTICATE).is_none());

        let (res, body) = rig.call(form("/a/../oauth2/token", &[], "")).await;
        assert_json_error(&res, &body, StatusCode::BAD_REQUEST, "invalid_request");
        assert!(rig.forwarded().is_empty(), "nothing was forwarded");
    }

    #[tokio::test]
    async fn a_full_replay_store_fails_closed_with_503() {
        let rig = rig("assertion: { replay_capacity: 1 }\n");
        let hs256 = serde_json::json!({"alg": "HS256"});
        let first = jwt(hs256.clone(), "j1");
        let (res, _) = rig
            .call(form("/oauth2/token", &[], &assertion_body(&first)))
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let second = jwt(hs256, "j2");
        let (res, body) = rig
            .call(form("/oauth2/token", &[], &assertion_body(&second)))
            .await;
        assert_json_error(
            &res,
            &body,
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
        );
        assert_eq!(res.headers()[RETRY_AFTER], "1");
        // The first one is still remembered: replaying it is a 401, not a 503.
        let (res, body) = rig
            .call(form("/oauth2/token", &[], &assertion_body(&first)))
            .await;
        assert_json_error(&res, &body, StatusCode::UNAUTHORIZED, "invalid_client");
        assert_eq!(rig.forwarded().len(), 1);
    }

    /// A body that never finishes is refused at `limits.body_read_timeout` (paused time:
    /// the runtime jumps to the deadline instead of waiting for it).
    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_ends_is_408() {
        let rig = rig("limits: { body_read_timeout: 3s }\n");
        let (tx, rx) = tokio::sync::mpsc::channel::<
            Result<http_body::Frame<Bytes>, crate::body::BodyError>,
        >(1);
        tx.send(Ok(http_body::Frame::data(Bytes::from_static(
            b"grant_type=",
        ))))
        .await
        .unwrap();
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let body = http_body_util::StreamBody::new(stream).boxed_unsync();
        let req = Request::post("/oauth2/token")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .unwrap();
        let start = tokio::time::Instant::now();
        let (res, body) = rig.call(req).await;
        assert_json_error(&res, &body, StatusCode::REQUEST_TIMEOUT, "invalid_request");
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        assert!(rig.forwarded().is_empty());
        drop(tx);
    }

    #[tokio::test]
    async fn upstream_errors_become_their_responses() {
        let (config, _dir) = testing::config("");
        for (error, status) in [
            (
                GatewayError::UpstreamTimeout(Duration::from_secs(1)),
                StatusCode::GATEWAY_TIMEOUT,
            ),
            (
                GatewayError::UpstreamUnavailable("refused".into()),
                StatusCode::BAD_GATEWAY,
            ),
        ] {
            let error = Arc::new(Mutex::new(Some(error)));
            let failing = tower::service_fn(move |_req: Request<Body>| {
                let e = error.lock().unwrap().take().unwrap();
                async move { Err::<Response<Body>, _>(e) }
            });
            let stack = build(&config, testing::parts(&config), failing);
            let res = stack
                .oneshot(Request::get("/x").body(full("")).unwrap())
                .await
                .unwrap();
            let (parts, body) = res.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            assert_json_error(
                &Response::from_parts(parts, full("")),
                &body,
                status,
                "temporarily_unavailable",
            );
        }
    }
}
