//! The signed internal header: how the upstream learns who authenticated and how.
//!
//! Value: a compact JWS (jws.rs), HS256 with a shared key or ES256 / EdDSA with a private
//! key (keys.rs), header `{"alg":…,"typ":"JWT","kid":...}`,
//! claims `iss aud sub client_id auth_method iat exp jti htm htu body_sha256`, and `cnf`
//! with `x5t#S256` when the client presented a verified certificate (RFC 8705 §3)
//! (docs/design.md §5). `body_sha256` binds the header to the exact forwarded body and
//! `htm`/`htu` to the request, so a captured header cannot be replayed onto another
//! request; when a query is allowed on protected endpoints, `query_sha256` binds it too.
//! The upstream's side of this contract is verify.rs.
//! Invariants: the header is set only from the [`Authenticated`] extension that the auth
//! layer produced; a protected request without one is refused (fail closed), unless the auth
//! layer marked it [`Shadowed`] (`rollout: shadow`: forwarded as sent). Key state is
//! prepared once per config; time comes from the injected [`Clock`].

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{self, Either, Ready};
use http::header::{HeaderName, HeaderValue};
use http::{Request, Response};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tower::{Layer, Service};

use crate::auth::shadow::Shadowed;
use crate::auth::Authenticated;
use crate::body::Body;
use crate::clock::Clock;
use crate::config::{InternalHeaderConfig, KeyMaterial, SigningKey};
use crate::error::{GatewayError, SignFailed};
use crate::jws::{self, HmacKey};
use crate::keys::PrivateKey;
use crate::oauth::{Algorithm, AsymmetricAlgorithm};
use crate::route::Protected;

/// The claims as serde would write them: the reference the hand-written claims (`claims`
/// below) are tested against. `verify::InternalClaims` is the owned form a verifier reads.
#[cfg(test)]
#[derive(Serialize)]
struct ClaimsRef<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    client_id: &'a str,
    auth_method: &'a str,
    iat: i64,
    exp: i64,
    jti: &'a str,
    htm: &'a str,
    htu: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    query_sha256: Option<&'a str>,
    body_sha256: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation>,
}

/// RFC 8705 §3.1 (RFC 7800 `cnf`): the certificate tokens issued for this request may be
/// bound to.
#[cfg(test)]
#[derive(Serialize)]
struct Confirmation {
    #[serde(rename = "x5t#S256")]
    x5t_s256: String,
}

#[derive(Serialize)]
struct JoseHeader<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

/// How the signing key signs: a prepared HMAC state, or a private key. One per
/// configuration, so its size does not matter; boxing the HMAC state would cost an
/// indirection on every signature.
#[allow(clippy::large_enum_variant)]
enum SignWith {
    Hmac(HmacKey),
    Private(AsymmetricAlgorithm, Arc<PrivateKey>),
}

impl SignWith {
    fn of(key: &SigningKey) -> SignWith {
        match &key.material {
            KeyMaterial::Hmac(secret) => {
                SignWith::Hmac(HmacKey::new(Algorithm::Hs256, secret.expose()))
            }
            KeyMaterial::Private { alg, key } => SignWith::Private(*alg, key.clone()),
        }
    }
}

fn jose_prefix(alg: &str, kid: &str) -> String {
    let header = serde_json::to_vec(&JoseHeader {
        alg,
        typ: "JWT",
        kid,
    })
    .unwrap_or_default();
    jws::header_prefix(&header)
}

fn claims_prefix(issuer: &str, audience: &str) -> String {
    let mut out = String::from("{\"iss\":");
    jws::push_json_str(&mut out, issuer);
    out.push_str(",\"aud\":");
    jws::push_json_str(&mut out, audience);
    out.push_str(",\"sub\":");
    out
}

/// Signs internal headers with the first configured key.
pub struct Signer {
    name: HeaderName,
    issuer: String,
    audience: String,
    ttl_secs: i64,
    public_url: String,
    /// `BASE64URL(JOSE header) "."`, computed once.
    header_prefix: String,
    /// `{"iss":…,"aud":…,"sub":`, computed once.
    claims_prefix: String,
    key: SignWith,
    clock: Clock,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// `None` when no key signs (config validation prevents that).
    pub fn new(cfg: &InternalHeaderConfig, public_url: &str, clock: Clock) -> Option<Signer> {
        // The first key without `publish_only` signs; the others are published or shared
        // for verification only (docs/design.md §5.3).
        let key = cfg.signing_key()?;
        Some(Signer {
            name: cfg.name.clone(),
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            ttl_secs: cfg.ttl.as_secs() as i64,
            public_url: public_url.to_owned(),
            header_prefix: jose_prefix(key.algorithm(), &key.id),
            claims_prefix: claims_prefix(&cfg.issuer, &cfg.audience),
            key: SignWith::of(key),
            clock,
        })
    }

    pub fn header_name(&self) -> &HeaderName {
        &self.name
    }

    /// The header value for one authenticated request, issued now.
    pub fn sign(
        &self,
        who: &Authenticated,
        method: &str,
        path: &str,
        query: Option<&str>,
    ) -> Result<String, SignFailed> {
        self.sign_at(who, method, path, query, self.clock.now())
    }

    /// The header value for one authenticated request, issued at `now` (Unix seconds).
    /// A query (only with `protected_query: allow`) is bound by its digest.
    pub fn sign_at(
        &self,
        who: &Authenticated,
        method: &str,
        path: &str,
        query: Option<&str>,
        now: i64,
    ) -> Result<String, SignFailed> {
        let mut jti = [0u8; 16];
        rand::rng().fill_bytes(&mut jti);
        let claims = self.claims(who, method, path, query, now, &jti);
        match &self.key {
            SignWith::Hmac(key) => Ok(jws::sign_with_prefix(
                &self.header_prefix,
                claims.as_bytes(),
                key,
            )),
            SignWith::Private(alg, key) => {
                jws::complete(&self.header_prefix, claims.as_bytes(), |input| {
                    key.sign(*alg, input)
                })
            }
        }
    }

    /// The claims JSON, written directly (serde's serializer took a third of the signing
    /// time): the same bytes as serializing `ClaimsRef`, which a unit test checks. The
    /// constant start (`iss`, `aud`) is written once per config.
    fn claims(
        &self,
        who: &Authenticated,
        method: &str,
        path: &str,
        query: Option<&str>,
        now: i64,
        jti: &[u8; 16],
    ) -> String {
        let mut out = String::with_capacity(self.claims_prefix.len() + 400);
        out.push_str(&self.claims_prefix);
        jws::push_json_str(&mut out, who.client_id.as_str());
        out.push_str(",\"client_id\":");
        jws::push_json_str(&mut out, who.client_id.as_str());
        out.push_str(",\"auth_method\":");
        jws::push_json_str(&mut out, who.method.as_str());
        let mut int = itoa::Buffer::new();
        out.push_str(",\"iat\":");
        out.push_str(int.format(now));
        out.push_str(",\"exp\":");
        out.push_str(int.format(now + self.ttl_secs));
        out.push_str(",\"jti\":\"");
        jws::encode_into(jti, &mut out);
        out.push_str("\",\"htm\":");
        jws::push_json_str(&mut out, method);
        out.push_str(",\"htu\":\"");
        jws::push_json_escaped(&mut out, &self.public_url);
        jws::push_json_escaped(&mut out, path);
        out.push('"');
        if let Some(q) = query {
            out.push_str(",\"query_sha256\":\"");
            jws::encode_into(Sha256::digest(q), &mut out);
            out.push('"');
        }
        out.push_str(",\"body_sha256\":\"");
        jws::encode_into(Sha256::digest(&who.body), &mut out);
        out.push('"');
        if let Some(t) = &who.cnf {
            out.push_str(",\"cnf\":{\"x5t#S256\":");
            jws::push_json_str(&mut out, &t.x5t_s256());
            out.push('}');
        }
        out.push('}');
        out
    }
}

/// The JWK Set (RFC 7517 §5) of the asymmetric internal-header keys: each key's public
/// half with `kid`, `alg` and `use: sig`, publish_only ones included. Never an HMAC key
/// (it would be the shared secret itself), never private material.
pub fn jwks(keys: &[SigningKey]) -> String {
    let published: Vec<serde_json::Value> = keys
        .iter()
        .filter_map(|k| match &k.material {
            KeyMaterial::Private { alg, key } => key.public_jwk(&k.id, *alg),
            KeyMaterial::Hmac(_) => None,
        })
        .collect();
    serde_json::json!({ "keys": published }).to_string()
}

#[derive(Debug, Clone)]
pub struct SignLayer {
    signer: Arc<Signer>,
}

impl SignLayer {
    pub fn new(signer: Arc<Signer>) -> Self {
        Self { signer }
    }
}

impl<S> Layer<S> for SignLayer {
    type Service = Sign<S>;
    fn layer(&self, inner: S) -> Sign<S> {
        Sign {
            inner,
            signer: self.signer.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Sign<S> {
    inner: S,
    signer: Arc<Signer>,
}

impl<S> Service<Request<Body>> for Sign<S>
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
        let protected = req.extensions().get::<Protected>().is_some();
        match req.extensions_mut().remove::<Authenticated>() {
            Some(who) => {
                let value = self
                    .signer
                    .sign(
                        &who,
                        req.method().as_str(),
                        req.uri().path(),
                        req.uri().query(),
                    )
                    .map_err(GatewayError::Sign)
                    .and_then(|v| {
                        HeaderValue::try_from(v).map_err(|_| GatewayError::NotAuthenticated)
                    });
                match value {
                    Ok(mut v) => {
                        // Marked sensitive: hyper's HPACK never indexes it and Debug output
                        // prints it as "Sensitive".
                        v.set_sensitive(true);
                        req.headers_mut().insert(self.signer.name.clone(), v);
                    }
                    Err(e) => return Either::Left(future::ready(Err(e))),
                }
            }
            // Fail closed: a protected request must never reach the upstream unsigned,
            // unless it is in shadow and failed (auth/shadow.rs: forwarded as sent).
            None if protected && req.extensions().get::<Shadowed>().is_none() => {
                return Either::Left(future::ready(Err(GatewayError::NotAuthenticated)))
            }
            None => {}
        }
        Either::Right(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use tower::{ServiceBuilder, ServiceExt};

    use super::*;
    use crate::body::full;
    use crate::oauth::{AuthMethod, ClientId};
    use crate::testing::{self, NOW};
    use crate::x509::Thumbprint;

    /// A Sign layer in front of a counting `service_fn`.
    fn sign_stack(
        calls: Arc<AtomicUsize>,
    ) -> (
        impl Service<Request<Body>, Response = Response<Body>, Error = GatewayError>,
        tempfile::TempDir,
    ) {
        let (config, dir) = testing::config("");
        let parts = testing::parts(&config);
        let svc = ServiceBuilder::new()
            .layer(SignLayer::new(parts.signer))
            .service_fn(move |req: Request<Body>| {
                calls.fetch_add(1, Ordering::SeqCst);
                let signed = req.headers().contains_key("x-authenticated-client");
                async move {
                    Ok::<_, GatewayError>(Response::new(full(if signed {
                        "signed"
                    } else {
                        "unsigned"
                    })))
                }
            });
        (svc, dir)
    }

    #[tokio::test]
    async fn a_protected_request_without_an_identity_is_refused_fail_closed() {
        let calls = Arc::new(AtomicUsize::new(0));
        let (svc, _dir) = sign_stack(calls.clone());
        let mut req = Request::post("/oauth2/token").body(full("")).unwrap();
        req.extensions_mut()
            .insert(Protected(crate::oauth::EndpointKind::Token));
        let result = svc.oneshot(req).await;
        assert!(matches!(result, Err(GatewayError::NotAuthenticated)));
        assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing went further");
    }

    #[tokio::test]
    async fn only_an_authenticated_request_is_signed() {
        use http_body_util::BodyExt;
        let calls = Arc::new(AtomicUsize::new(0));
        let (svc, _dir) = sign_stack(calls.clone());
        let unprotected = Request::get("/x").body(full("")).unwrap();
        let res = svc.oneshot(unprotected).await.unwrap();
        assert_eq!(
            res.into_body().collect().await.unwrap().to_bytes(),
            "unsigned"
        );

        let (svc, _dir) = sign_stack(calls.clone());
        let req = authenticated_token_request();
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(
            res.into_body().collect().await.unwrap().to_bytes(),
            "signed"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    /// A protected token request the auth layer let through, as `billing` with Basic.
    fn authenticated_token_request() -> Request<Body> {
        let mut req = Request::post("/oauth2/token").body(full("")).unwrap();
        req.extensions_mut()
            .insert(Protected(crate::oauth::EndpointKind::Token));
        req.extensions_mut().insert(Authenticated {
            client_id: ClientId::new("billing"),
            method: AuthMethod::ClientSecretBasic,
            body: Bytes::new(),
            cnf: None,
        });
        req
    }

    /// hyper's HPACK encoder never indexes a sensitive value (so no later header block
    /// can be compressed against it) and `Debug` prints it as `Sensitive`: the internal
    /// header is a bearer credential to the upstream.
    #[tokio::test]
    async fn the_internal_header_is_marked_sensitive() {
        let (config, _dir) = testing::config("");
        let parts = testing::parts(&config);
        let name = config.internal_header.name.clone();
        let seen = Arc::new(std::sync::Mutex::new(None));
        let svc = {
            let seen = seen.clone();
            ServiceBuilder::new()
                .layer(SignLayer::new(parts.signer))
                .service_fn(move |req: Request<Body>| {
                    *seen.lock().unwrap() = Some(req.headers().clone());
                    async { Ok::<_, GatewayError>(Response::new(full(""))) }
                })
        };
        let req = authenticated_token_request();
        svc.oneshot(req).await.unwrap();
        let headers = seen.lock().unwrap().take().expect("the request went on");
        let value = headers.get(&name).expect("signed");
        assert!(value.is_sensitive(), "{name} is not marked sensitive");
        assert_eq!(format!("{value:?}"), "Sensitive");
        assert!(!format!("{headers:?}").contains(value.to_str().unwrap()));
    }

    #[test]
    fn jose_header_is_the_documented_one() {
        let prefix = jose_prefix("HS256", "k1");
        let json = jws::decode(prefix.trim_end_matches('.')).unwrap();
        assert_eq!(json, br#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#);
    }

    /// The hand-written claims are, byte for byte, what serde writes for `ClaimsRef`:
    /// plain and escaped text, with and without a query and a certificate.
    #[test]
    fn written_claims_are_what_serde_writes() {
        let (config, _dir) = testing::config("");
        let parts = testing::parts(&config);
        let signer = &parts.signer;
        let jti = [7u8; 16];
        for (client, method, path, query, cnf, body) in [
            (
                "billing",
                "POST",
                "/oauth2/token",
                None,
                None,
                &b"grant_type=x"[..],
            ),
            (
                "q\"uote\\ é\u{1}",
                "POST",
                "/t/a%20b",
                Some("a=1&b=%22"),
                Some(Thumbprint::of(b"certificate")),
                &b""[..],
            ),
        ] {
            let who = Authenticated {
                client_id: ClientId::new(client),
                method: AuthMethod::ClientSecretPost,
                body: Bytes::copy_from_slice(body),
                cnf,
            };
            let ours = signer.claims(&who, method, path, query, NOW, &jti);
            let htu = format!("{}{}", signer.public_url, path);
            let query_sha256 = query.map(|q| jws::encode(Sha256::digest(q)));
            let serde = serde_json::to_string(&ClaimsRef {
                iss: &signer.issuer,
                aud: &signer.audience,
                sub: client,
                client_id: client,
                auth_method: who.method.as_str(),
                iat: NOW,
                exp: NOW + signer.ttl_secs,
                jti: &jws::encode(jti),
                htm: method,
                htu: &htu,
                query_sha256: query_sha256.as_deref(),
                body_sha256: &jws::encode(Sha256::digest(body)),
                cnf: cnf.map(|t| Confirmation {
                    x5t_s256: t.x5t_s256(),
                }),
            })
            .unwrap();
            assert_eq!(ours, serde);
        }
    }
}
