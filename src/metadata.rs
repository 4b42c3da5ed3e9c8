//! Truthful discovery metadata: the authorization server metadata the upstream publishes
//! (RFC 8414 `/.well-known/oauth-authorization-server`, OpenID Connect Discovery
//! `/.well-known/openid-configuration`) describes the legacy service, not the gateway in
//! front of it. This layer rewrites the members that describe client authentication so
//! that clients configure themselves for what the gateway enforces (docs/design.md §4.7):
//!
//! - `token_endpoint_auth_methods_supported`: the methods registered clients use (`none`
//!   when a public client is registered);
//! - `token_endpoint_auth_signing_alg_values_supported`: the algorithms jwt clients may
//!   use (HMAC for `client_secret_jwt`, RS256/PS256/ES256/EdDSA and Ed25519 for
//!   `private_key_jwt`; the member is removed when there are none);
//! - the same two for revocation (RFC 7009 via RFC 8414 §2) and introspection, when the
//!   gateway serves that kind of endpoint (added only when the document lists the
//!   endpoint, `revocation_endpoint` / `introspection_endpoint`); introspection never
//!   lists `none` (public clients may not introspect);
//! - `code_challenge_methods_supported` (RFC 8414 §2): `pkce.methods`, when the gateway
//!   enforces PKCE;
//! - `tls_client_certificate_bound_access_tokens` (RFC 8705 §3.3): whether client
//!   certificates are requested (`tls.client_auth`).
//!
//! Every other member is kept byte for byte, in order. Only a `200` JSON object within
//! `discovery.max_size` is rewritten; anything else (another type, a content coding,
//! malformed JSON, a larger body) is passed through unchanged and counted. So that the
//! upstream answers with the whole, plain document, the request reaches it without
//! `Accept-Encoding`, `Range` or conditional headers, and a rewritten response loses
//! the upstream's validators (`ETag`, `Last-Modified`) and digests.
//! Paths are matched after percent-decoding: the well-known path, the RFC 8414 §3.1 form
//! with the issuer path appended (`/.well-known/oauth-authorization-server/tenant`), and
//! the OpenID Connect form with it prepended (`/tenant/.well-known/openid-configuration`).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::future::Either;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use tower::{Layer, Service};

use crate::body::{Body, BodyError};
use crate::config::{Config, PkceRequired};
use crate::error::GatewayError;
use crate::metrics::{MetadataOutcome, Metrics};
use crate::oauth::{Algorithm, AsymmetricAlgorithm, AuthMethod, EndpointKind};
use crate::route::Protected;

const WELL_KNOWN: [&str; 2] = [
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
];

const METHODS: &str = "token_endpoint_auth_methods_supported";
const ALGORITHMS: &str = "token_endpoint_auth_signing_alg_values_supported";
const REVOCATION_METHODS: &str = "revocation_endpoint_auth_methods_supported";
const REVOCATION_ALGORITHMS: &str = "revocation_endpoint_auth_signing_alg_values_supported";
const INTROSPECTION_METHODS: &str = "introspection_endpoint_auth_methods_supported";
const INTROSPECTION_ALGORITHMS: &str = "introspection_endpoint_auth_signing_alg_values_supported";
const PKCE_METHODS: &str = "code_challenge_methods_supported";
/// Members that describe one endpoint, and the member that lists it (RFC 8414 §2).
const ENDPOINT_MEMBERS: [([&str; 2], &str); 2] = [
    (
        [REVOCATION_METHODS, REVOCATION_ALGORITHMS],
        "revocation_endpoint",
    ),
    (
        [INTROSPECTION_METHODS, INTROSPECTION_ALGORITHMS],
        "introspection_endpoint",
    ),
];
const BOUND: &str = "tls_client_certificate_bound_access_tokens";

/// Request headers that would get a partial, encoded or empty answer.
const REQUEST_HEADERS_REMOVED: [header::HeaderName; 5] = [
    header::ACCEPT_ENCODING,
    header::RANGE,
    header::IF_RANGE,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
];

/// Response headers that describe the upstream's bytes, not the rewritten ones.
const RESPONSE_HEADERS_REMOVED: [&str; 6] = [
    "etag",
    "last-modified",
    "content-md5",
    "digest",
    "content-digest",
    "repr-digest",
];

/// Whether `path` (as received) names a metadata document.
pub fn is_metadata_path(path: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    WELL_KNOWN.iter().any(|wk| {
        decoded.ends_with(wk)
            || decoded
                .strip_prefix(wk)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// The values the gateway states, computed once per configuration.
#[derive(Debug)]
pub struct Rewrite {
    /// JSON text of each managed member's value; `None` removes the member.
    values: Vec<(&'static str, Option<String>)>,
    max_size: usize,
    metrics: Arc<Metrics>,
}

impl Rewrite {
    /// `None` when `discovery.rewrite` is off.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Option<Arc<Rewrite>> {
        if !config.discovery.rewrite {
            return None;
        }
        let methods: Vec<&str> = AuthMethod::ALL
            .into_iter()
            .filter(|m| config.clients.iter().any(|c| c.auth_method == *m))
            .map(AuthMethod::as_str)
            .collect();
        // The union of what jwt clients may use: HMAC for client_secret_jwt, the public-key
        // algorithms for private_key_jwt (EdDSA under both its names, RFC 8037 and 9864).
        let mut algorithms: Vec<&str> = Algorithm::ALL
            .into_iter()
            .filter(|a| {
                config.clients.iter().any(|c| {
                    c.auth_method == AuthMethod::ClientSecretJwt && c.algorithms.contains(a)
                })
            })
            .map(Algorithm::name)
            .collect();
        algorithms.extend(
            AsymmetricAlgorithm::ALL
                .into_iter()
                .filter(|a| {
                    config.clients.iter().any(|c| {
                        c.auth_method == AuthMethod::PrivateKeyJwt
                            && c.asymmetric_algorithms.contains(a)
                    })
                })
                .flat_map(|a| a.names().iter().copied()),
        );
        let json = |v: &[&str]| serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned());
        let algs = (!algorithms.is_empty()).then(|| json(&algorithms));
        let mut values = vec![(METHODS, Some(json(&methods))), (ALGORITHMS, algs.clone())];
        if config.endpoints.has(EndpointKind::Revocation) {
            values.push((REVOCATION_METHODS, Some(json(&methods))));
            values.push((REVOCATION_ALGORITHMS, algs.clone()));
        }
        if config.endpoints.has(EndpointKind::Introspection) {
            // RFC 7662 §2.1: public clients may not introspect (policy.rs).
            let confidential: Vec<&str> = methods
                .iter()
                .copied()
                .filter(|m| *m != AuthMethod::None.as_str())
                .collect();
            values.push((INTROSPECTION_METHODS, Some(json(&confidential))));
            values.push((INTROSPECTION_ALGORITHMS, algs));
        }
        if config.pkce.required != PkceRequired::Off {
            let pkce: Vec<&str> = config.pkce.methods.iter().map(|m| m.as_str()).collect();
            values.push((PKCE_METHODS, Some(json(&pkce))));
        }
        values.push((BOUND, Some(config.tls.client_auth.is_some().to_string())));
        Some(Arc::new(Rewrite {
            values,
            max_size: config.discovery.max_size,
            metrics,
        }))
    }

    /// The document with the managed members replaced (in place; later duplicates
    /// dropped; appended when absent), or `None` if `body` is not a JSON object.
    pub fn rewrite(&self, body: &[u8]) -> Option<Vec<u8>> {
        let Members(members) = serde_json::from_slice(body).ok()?;
        let mut out = Vec::with_capacity(body.len() + 256);
        let mut done = vec![false; self.values.len()];
        let mut first = true;
        let mut member = |out: &mut Vec<u8>, name: &str, value: &str| {
            out.push(if first { b'{' } else { b',' });
            first = false;
            out.extend_from_slice(serde_json::to_string(name).unwrap_or_default().as_bytes());
            out.push(b':');
            out.extend_from_slice(value.as_bytes());
        };
        for (name, value) in &members {
            match self.values.iter().position(|(n, _)| n == name) {
                None => member(&mut out, name, value.get()),
                Some(i) if !done[i] => {
                    done[i] = true;
                    if let Some(ours) = &self.values[i].1 {
                        member(&mut out, name, ours);
                    }
                }
                Some(_) => {}
            }
        }
        // An absent member is added, except one describing an endpoint the document
        // does not list: the metadata must not describe endpoints it does not have.
        let listed = |endpoint: &str| members.iter().any(|(n, _)| n == endpoint);
        for (i, (name, ours)) in self.values.iter().enumerate() {
            let describes = ENDPOINT_MEMBERS
                .iter()
                .find(|(members, _)| members.contains(name))
                .map(|(_, endpoint)| *endpoint);
            if let (false, Some(ours)) = (done[i], ours) {
                if describes.is_none_or(listed) {
                    member(&mut out, name, ours);
                }
            }
        }
        if first {
            out.push(b'{');
        }
        out.push(b'}');
        Some(out)
    }

    /// Reads an upstream response and rewrites it if it is a JSON object small enough.
    async fn respond(self: Arc<Self>, res: Response<Body>) -> Result<Response<Body>, GatewayError> {
        if res.status() != StatusCode::OK {
            return Ok(res);
        }
        let (mut parts, body) = res.into_parts();
        if !is_json(&parts.headers) {
            self.metrics.metadata(MetadataOutcome::not_json);
            return Ok(Response::from_parts(parts, body));
        }
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.max_size) {
            self.metrics.metadata(MetadataOutcome::too_large);
            return Ok(Response::from_parts(parts, body));
        }
        let mut body = body;
        let mut read = BytesMut::new();
        let mut held = VecDeque::new();
        loop {
            match body.frame().await {
                None => break,
                Some(Err(e)) => {
                    self.metrics.metadata(MetadataOutcome::unreadable);
                    return Err(GatewayError::UpstreamUnavailable(Box::new(e)));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        read.extend_from_slice(&data);
                        held.push_back(Frame::data(data));
                        if read.len() > self.max_size {
                            // Too large: what was read goes first, the rest streams.
                            self.metrics.metadata(MetadataOutcome::too_large);
                            return Ok(Response::from_parts(parts, replay(held, body)));
                        }
                    }
                    Err(trailers) => held.push_back(trailers),
                },
            }
        }
        let Some(rewritten) = self.rewrite(&read) else {
            self.metrics.metadata(MetadataOutcome::not_json);
            return Ok(Response::from_parts(parts, replay(held, body)));
        };
        self.metrics.metadata(MetadataOutcome::rewritten);
        for name in RESPONSE_HEADERS_REMOVED {
            parts.headers.remove(name);
        }
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(rewritten.len()));
        Ok(Response::from_parts(parts, crate::body::full(rewritten)))
    }
}

/// `application/json`, or a `+json` type, without a content coding.
fn is_json(headers: &http::HeaderMap) -> bool {
    let coded = headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|t| t == "application/json" || t.ends_with("+json"));
    json && !coded
}

/// The frames already read, then the rest of `body`.
fn replay(held: VecDeque<Frame<Bytes>>, body: Body) -> Body {
    use futures_util::StreamExt;
    let head = futures_util::stream::iter(held.into_iter().map(Ok::<_, BodyError>));
    let rest = http_body_util::BodyStream::new(body);
    http_body_util::StreamBody::new(head.chain(rest)).boxed_unsync()
}

/// A JSON object's members in order, each value as its raw text.
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    out.push(entry);
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Tower layer rewriting metadata responses (or passing everything through when
/// `discovery.rewrite` is off).
#[derive(Debug, Clone)]
pub struct MetadataLayer {
    rewrite: Option<Arc<Rewrite>>,
}

impl MetadataLayer {
    pub fn new(rewrite: Option<Arc<Rewrite>>) -> Self {
        Self { rewrite }
    }
}

impl<S> Layer<S> for MetadataLayer {
    type Service = MetadataRewrite<S>;
    fn layer(&self, inner: S) -> MetadataRewrite<S> {
        MetadataRewrite {
            inner,
            rewrite: self.rewrite.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct MetadataRewrite<S> {
    inner: S,
    rewrite: Option<Arc<Rewrite>>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> Service<Request<Body>> for MetadataRewrite<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = GatewayError>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = Either<S::Future, BoxFuture<Result<Response<Body>, GatewayError>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let rewrite = match &self.rewrite {
            Some(r)
                if req.method() == Method::GET
                    && req.extensions().get::<Protected>().is_none()
                    && is_metadata_path(req.uri().path()) =>
            {
                r.clone()
            }
            _ => return Either::Left(self.inner.call(req)),
        };
        for name in REQUEST_HEADERS_REMOVED {
            req.headers_mut().remove(name);
        }
        let future = self.inner.call(req);
        Either::Right(Box::pin(
            async move { rewrite.respond(future.await?).await },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn rewrite(extra: &str) -> (Arc<Rewrite>, tempfile::TempDir) {
        let (config, dir) = testing::config(extra);
        (
            Rewrite::new(&config, Arc::new(Metrics::new())).unwrap(),
            dir,
        )
    }

    #[test]
    fn paths_with_and_without_issuer_paths() {
        for yes in [
            "/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server",
            "/.well-known/oauth-authorization-server/tenant/a",
            "/.well-known/openid-configuration/acme",
            "/acme/default/.well-known/openid-configuration",
            "/.well-known/%6Fauth-authorization-server",
        ] {
            assert!(is_metadata_path(yes), "{yes}");
        }
        for no in [
            "/.well-known/jwks.json",
            "/.well-known/openid-configurationx",
            "/oauth2/token",
            "/.well-known/oauth-authorization-serverx/a",
        ] {
            assert!(!is_metadata_path(no), "{no}");
        }
    }

    #[test]
    fn managed_members_are_replaced_and_the_rest_kept_in_order() {
        // Without revocation, introspection and PKCE, three members are managed.
        let (r, _dir) =
            rewrite("endpoints: { revocation: [], introspection: [] }\npkce: { required: off }");
        let doc = br#"{"issuer":"https://a","token_endpoint_auth_methods_supported":["private_key_jwt"],"n":1.50,"x":{"b":2,  "a":[1]},"token_endpoint_auth_methods_supported":["none"]}"#;
        let out = String::from_utf8(r.rewrite(doc).unwrap()).unwrap();
        assert_eq!(
            out,
            r#"{"issuer":"https://a","token_endpoint_auth_methods_supported":["client_secret_basic","client_secret_post","client_secret_jwt","none"],"n":1.50,"x":{"b":2,  "a":[1]},"token_endpoint_auth_signing_alg_values_supported":["HS256"],"tls_client_certificate_bound_access_tokens":false}"#
        );
        assert_eq!(r.rewrite(b"[1,2]"), None);
        assert_eq!(r.rewrite(b"<html>"), None);
        assert_eq!(r.rewrite(b"{}").unwrap(), br#"{"token_endpoint_auth_methods_supported":["client_secret_basic","client_secret_post","client_secret_jwt","none"],"token_endpoint_auth_signing_alg_values_supported":["HS256"],"tls_client_certificate_bound_access_tokens":false}"#);
    }

    /// With a public client registered: `none` for the token and revocation endpoints,
    /// never for introspection; the PKCE methods; each replaced where it stands.
    #[test]
    fn public_clients_pkce_revocation_and_introspection() {
        let (r, _dir) = rewrite("pkce: { methods: [S256, plain] }");
        let doc = br#"{"introspection_endpoint_auth_methods_supported":["none"],"code_challenge_methods_supported":["plain"],"issuer":"https://a","revocation_endpoint":"https://a/r"}"#;
        let out = String::from_utf8(r.rewrite(doc).unwrap()).unwrap();
        // Revocation is listed: its members are added. Introspection is not: its member
        // present is corrected, the absent one not added.
        assert_eq!(
            out,
            r#"{"introspection_endpoint_auth_methods_supported":["client_secret_basic","client_secret_post","client_secret_jwt"],"code_challenge_methods_supported":["S256","plain"],"issuer":"https://a","revocation_endpoint":"https://a/r","token_endpoint_auth_methods_supported":["client_secret_basic","client_secret_post","client_secret_jwt","none"],"token_endpoint_auth_signing_alg_values_supported":["HS256"],"revocation_endpoint_auth_methods_supported":["client_secret_basic","client_secret_post","client_secret_jwt","none"],"revocation_endpoint_auth_signing_alg_values_supported":["HS256"],"tls_client_certificate_bound_access_tokens":false}"#
        );
        // PKCE off: the upstream's member is left as it is.
        let (r, _dir) = rewrite("pkce: { required: off }");
        let out = String::from_utf8(r.rewrite(doc).unwrap()).unwrap();
        assert!(
            out.contains(r#""code_challenge_methods_supported":["plain"]"#),
            "{out}"
        );
    }

    #[test]
    fn without_jwt_clients_the_algorithm_member_goes() {
        let (config, _dir) = testing::config(
            "endpoints: { revocation: [], introspection: [] }\npkce: { required: off }",
        );
        let mut config = config;
        config.clients.retain(|c| {
            c.auth_method != AuthMethod::ClientSecretJwt && c.auth_method != AuthMethod::None
        });
        let r = Rewrite::new(&config, Arc::new(Metrics::new())).unwrap();
        let out = r
            .rewrite(br#"{"token_endpoint_auth_signing_alg_values_supported":["RS256"],"a":1}"#)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":1,"token_endpoint_auth_methods_supported":["client_secret_basic","client_secret_post"],"tls_client_certificate_bound_access_tokens":false}"#
        );
        config.discovery.rewrite = false;
        assert!(Rewrite::new(&config, Arc::new(Metrics::new())).is_none());
    }
}
