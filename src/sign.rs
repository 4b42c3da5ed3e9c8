//! The signed internal header: how the upstream learns who authenticated and how.
//!
//! Value: a compact JWS, HS256, header `{"alg":"HS256","typ":"JWT","kid":...}`, claims
//! `iss aud sub client_id auth_method iat exp jti htm htu body_sha256` (DESIGN.md §5).
//! `body_sha256` binds the header to the exact forwarded body and `htm`/`htu` to the
//! request, so a captured header cannot be replayed onto another request.
//! Invariants: the header is set only from the [`Authenticated`] extension that the auth
//! layer produced; a protected request without one is refused (fail closed). Key state is
//! prepared once per config. This module also holds the verification side, for upstreams
//! and the `verify-header` command.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures_util::future::{self, Either, Ready};
use hmac::{Hmac, Mac};
use http::header::{HeaderName, HeaderValue};
use http::{Request, Response};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tower::{Layer, Service};

use crate::auth::Authenticated;
use crate::config::{InternalHeader, SigningKey};
use crate::error::GatewayError;
use crate::route::Protected;
use crate::Body;

/// Claims of the internal header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternalClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub client_id: String,
    pub auth_method: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub htm: String,
    pub htu: String,
    pub body_sha256: String,
}

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
    body_sha256: &'a str,
}

#[derive(Serialize, Deserialize)]
struct JoseHeader<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
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
    mac: Hmac<Sha256>,
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

fn mac_for(key: &SigningKey) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(key.secret.expose())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

fn jose_prefix(kid: &str) -> String {
    let header = serde_json::to_vec(&JoseHeader {
        alg: "HS256",
        typ: "JWT",
        kid,
    })
    .unwrap_or_default();
    let mut out = URL_SAFE_NO_PAD.encode(header);
    out.push('.');
    out
}

impl Signer {
    /// `None` when no key is configured (config validation prevents that).
    pub fn new(cfg: &InternalHeader, public_url: &str) -> Option<Signer> {
        let key = cfg.keys.first()?;
        Some(Signer {
            name: cfg.name.clone(),
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            ttl_secs: cfg.ttl.as_secs() as i64,
            public_url: public_url.to_owned(),
            header_prefix: jose_prefix(&key.id),
            mac: mac_for(key),
        })
    }

    pub fn header_name(&self) -> &HeaderName {
        &self.name
    }

    /// The header value for one authenticated request.
    pub fn sign(
        &self,
        who: &Authenticated,
        method: &str,
        path: &str,
        now: i64,
    ) -> Result<String, serde_json::Error> {
        let mut jti = [0u8; 16];
        rand::rng().fill_bytes(&mut jti);
        let jti = URL_SAFE_NO_PAD.encode(jti);
        let body_sha256 = URL_SAFE_NO_PAD.encode(Sha256::digest(&who.body));
        let htu = format!("{}{}", self.public_url, path);
        let claims = serde_json::to_vec(&ClaimsRef {
            iss: &self.issuer,
            aud: &self.audience,
            sub: &who.client_id,
            client_id: &who.client_id,
            auth_method: who.method.as_str(),
            iat: now,
            exp: now + self.ttl_secs,
            jti: &jti,
            htm: method,
            htu: &htu,
            body_sha256: &body_sha256,
        })?;
        let mut out = String::with_capacity(self.header_prefix.len() + claims.len() * 4 / 3 + 48);
        out.push_str(&self.header_prefix);
        URL_SAFE_NO_PAD.encode_string(claims, &mut out);
        let mut mac = self.mac.clone();
        mac.update(out.as_bytes());
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut out);
        Ok(out)
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
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
                    .sign(&who, req.method().as_str(), req.uri().path(), unix_now())
                    .map_err(GatewayError::Sign)
                    .and_then(|v| {
                        HeaderValue::try_from(v).map_err(|_| GatewayError::NotAuthenticated)
                    });
                match value {
                    Ok(v) => {
                        req.headers_mut().insert(self.signer.name.clone(), v);
                    }
                    Err(e) => return Either::Left(future::ready(Err(e))),
                }
            }
            // Fail closed: a protected request must never reach the upstream unsigned.
            None if protected => {
                return Either::Left(future::ready(Err(GatewayError::NotAuthenticated)))
            }
            None => {}
        }
        Either::Right(self.inner.call(req))
    }
}

// ---------------------------------------------------------------------------------------
// Verification (the upstream's side).

/// Keys a verifier accepts, by id.
#[derive(Clone)]
pub struct VerifyKeys {
    keys: Vec<(String, Hmac<Sha256>)>,
}

impl std::fmt::Debug for VerifyKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("VerifyKeys").field("ids", &ids).finish()
    }
}

impl VerifyKeys {
    pub fn new(keys: &[SigningKey]) -> Self {
        Self {
            keys: keys.iter().map(|k| (k.id.clone(), mac_for(k))).collect(),
        }
    }
}

/// What the verifier expects besides a valid signature.
#[derive(Debug, Clone, Default)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    /// Seconds of clock skew tolerated on `iat` and `exp`.
    pub leeway: i64,
    pub method: Option<&'a str>,
    pub url: Option<&'a str>,
    /// The exact body the upstream received.
    pub body: Option<&'a [u8]>,
    /// Unix seconds; `None` uses the system clock.
    pub now: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("not a compact JWS")]
    Malformed,
    #[error("alg is not HS256")]
    Algorithm,
    #[error("unknown kid")]
    UnknownKey,
    #[error("signature does not verify")]
    Signature,
    #[error("expired")]
    Expired,
    #[error("issued in the future")]
    NotYetValid,
    #[error("iss mismatch")]
    Issuer,
    #[error("aud mismatch")]
    Audience,
    #[error("htm does not match the request method")]
    Method,
    #[error("htu does not match the request URL")]
    Url,
    #[error("body_sha256 does not match the body")]
    BodyHash,
}

#[derive(Deserialize)]
struct OwnedJoseHeader {
    alg: String,
    kid: Option<String>,
}

/// Verifies an internal header value: signature by `kid`, then `exp`, `iat`, `iss`, `aud`
/// and, when given, method, URL and body hash.
pub fn verify_internal_header(
    value: &str,
    keys: &VerifyKeys,
    expected: &Expected<'_>,
) -> Result<InternalClaims, VerifyError> {
    let mut parts = value.split('.');
    let (h, p, s) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => (h, p, s),
        _ => return Err(VerifyError::Malformed),
    };
    let header: OwnedJoseHeader = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(VerifyError::Malformed)?;
    if header.alg != "HS256" {
        return Err(VerifyError::Algorithm);
    }
    let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
    let (_, mac) = keys
        .keys
        .iter()
        .find(|(id, _)| *id == kid)
        .ok_or(VerifyError::UnknownKey)?;
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| VerifyError::Malformed)?;
    let mut mac = mac.clone();
    mac.update(&value.as_bytes()[..h.len() + 1 + p.len()]);
    mac.verify_slice(&signature)
        .map_err(|_| VerifyError::Signature)?;
    let claims: InternalClaims = URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(VerifyError::Malformed)?;
    let now = expected.now.unwrap_or_else(unix_now);
    if now > claims.exp + expected.leeway {
        return Err(VerifyError::Expired);
    }
    if claims.iat > now + expected.leeway {
        return Err(VerifyError::NotYetValid);
    }
    if claims.iss != expected.issuer {
        return Err(VerifyError::Issuer);
    }
    if claims.aud != expected.audience {
        return Err(VerifyError::Audience);
    }
    if expected.method.is_some_and(|m| m != claims.htm) {
        return Err(VerifyError::Method);
    }
    if expected.url.is_some_and(|u| u != claims.htu) {
        return Err(VerifyError::Url);
    }
    if let Some(body) = expected.body {
        if URL_SAFE_NO_PAD.encode(Sha256::digest(body)) != claims.body_sha256 {
            return Err(VerifyError::BodyHash);
        }
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthMethod;
    use crate::secret::Secret;
    use bytes::Bytes;
    use std::time::Duration;

    fn key(id: &str, fill: u8) -> SigningKey {
        SigningKey {
            id: id.into(),
            secret: Secret::new(vec![fill; 32]),
        }
    }

    fn signer(keys: Vec<SigningKey>) -> Signer {
        Signer::new(
            &InternalHeader {
                name: HeaderName::from_static("x-authenticated-client"),
                issuer: "secretgate".into(),
                audience: "legacy".into(),
                ttl: Duration::from_secs(30),
                keys,
            },
            "https://auth.example.com",
        )
        .unwrap()
    }

    fn who() -> Authenticated {
        Authenticated {
            client_id: "billing".into(),
            method: AuthMethod::ClientSecretPost,
            body: Bytes::from_static(b"grant_type=client_credentials&client_id=billing"),
        }
    }

    fn expected<'a>(now: i64) -> Expected<'a> {
        Expected {
            issuer: "secretgate",
            audience: "legacy",
            now: Some(now),
            ..Default::default()
        }
    }

    #[test]
    fn sign_then_verify() {
        let s = signer(vec![key("k2", 2), key("k1", 1)]);
        let now = 1_800_000_000;
        let v = s.sign(&who(), "POST", "/oauth2/token", now).unwrap();
        let both = VerifyKeys::new(&[key("k2", 2), key("k1", 1)]);
        let claims = verify_internal_header(
            &v,
            &both,
            &Expected {
                method: Some("POST"),
                url: Some("https://auth.example.com/oauth2/token"),
                body: Some(&who().body),
                ..expected(now)
            },
        )
        .unwrap();
        assert_eq!(claims.sub, "billing");
        assert_eq!(claims.client_id, "billing");
        assert_eq!(claims.auth_method, "client_secret_post");
        assert_eq!(claims.exp, now + 30);
        assert_eq!(URL_SAFE_NO_PAD.decode(&claims.jti).unwrap().len(), 16);
        // Rotation: a verifier with only the old key refuses what the new key signed.
        let old_only = VerifyKeys::new(&[key("k1", 1)]);
        assert_eq!(
            verify_internal_header(&v, &old_only, &expected(now)),
            Err(VerifyError::UnknownKey)
        );
        // A verifier holding the right id with other bytes.
        let wrong = VerifyKeys::new(&[key("k2", 9)]);
        assert_eq!(
            verify_internal_header(&v, &wrong, &expected(now)),
            Err(VerifyError::Signature)
        );
        assert_eq!(
            verify_internal_header(&v, &both, &expected(now + 31)),
            Err(VerifyError::Expired)
        );
        assert_eq!(
            verify_internal_header(
                &v,
                &both,
                &Expected {
                    body: Some(b"other"),
                    ..expected(now)
                }
            ),
            Err(VerifyError::BodyHash)
        );
        assert_eq!(
            verify_internal_header(
                &v,
                &both,
                &Expected {
                    method: Some("GET"),
                    ..expected(now)
                }
            ),
            Err(VerifyError::Method)
        );
        assert_eq!(
            verify_internal_header(
                &v,
                &both,
                &Expected {
                    audience: "other",
                    ..expected(now)
                }
            ),
            Err(VerifyError::Audience)
        );
    }

    #[test]
    fn jose_header_is_the_documented_one() {
        let prefix = jose_prefix("k1");
        let json = URL_SAFE_NO_PAD
            .decode(prefix.trim_end_matches('.'))
            .unwrap();
        assert_eq!(json, br#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#);
    }

    #[test]
    fn two_signatures_have_distinct_jti() {
        let s = signer(vec![key("k1", 1)]);
        let a = s.sign(&who(), "POST", "/t", 1).unwrap();
        let b = s.sign(&who(), "POST", "/t", 1).unwrap();
        assert_ne!(a, b);
    }
}
