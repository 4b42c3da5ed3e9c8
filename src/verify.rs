//! Verification of the internal header: the upstream's side of docs/design.md §5, as a
//! library function ([`verify_internal_header`]) and behind the `verify-header` command.
//!
//! Order: structure, `alg` = HS256 exactly, key by `kid` (unknown ids refused), MAC in
//! constant time, then the claims: `exp`/`iat` with the given leeway, `iss`, `aud`, then
//! the binding to the request: `htm`, `htu`, `query_sha256` and `body_sha256`. Nothing in
//! the payload is read before the MAC verifies.
//! The binding is checked by default: [`Expected::request`] takes the request's method,
//! URL, query and body, and a caller who really means to skip one must write
//! [`Check::Skip`] for it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::config::SigningKey;
use crate::jws::{self, HmacKey};
use crate::sign::hmac_key;

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
    /// Only when the request had a query (`protected_query: allow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_sha256: Option<String>,
    pub body_sha256: String,
    /// Only when the client presented a verified certificate (RFC 8705 §3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// The `cnf` claim (RFC 8705 §3.1): the certificate tokens for this request may be bound
/// to, as base64url SHA-256 of its DER.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
}

/// Keys a verifier accepts, by id.
#[derive(Clone)]
pub struct VerifyKeys {
    keys: Vec<(String, HmacKey)>,
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
            keys: keys.iter().map(|k| (k.id.clone(), hmac_key(k))).collect(),
        }
    }
}

/// One binding check: the value the request has, or an explicit decision not to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check<T> {
    /// The claim must match this value of the request.
    Equals(T),
    /// Not checked. Only for diagnostics: a header not bound to its request can be moved
    /// to another one.
    Skip,
}

/// What the verifier expects besides a valid signature. There is no default: build it
/// with [`Expected::request`], which binds every check.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    /// Seconds of clock skew tolerated on `iat` and `exp`.
    pub leeway: i64,
    /// The request method (`htm`).
    pub method: Check<&'a str>,
    /// The public URL of the endpoint called, without query (`htu`).
    pub url: Check<&'a str>,
    /// The query string received, without `?` (`None`: the request had none).
    pub query: Check<Option<&'a str>>,
    /// The exact body received (`body_sha256`).
    pub body: Check<&'a [u8]>,
    /// Unix seconds; `None` uses the system clock.
    pub now: Option<i64>,
}

impl<'a> Expected<'a> {
    /// Expectations bound to one request: method, URL, query and body are all checked.
    pub fn request(
        issuer: &'a str,
        audience: &'a str,
        method: &'a str,
        url: &'a str,
        query: Option<&'a str>,
        body: &'a [u8],
    ) -> Self {
        Expected {
            issuer,
            audience,
            leeway: 0,
            method: Check::Equals(method),
            url: Check::Equals(url),
            query: Check::Equals(query),
            body: Check::Equals(body),
            now: None,
        }
    }
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
    #[error("query_sha256 does not match the query")]
    Query,
    #[error("body_sha256 does not match the body")]
    BodyHash,
}

#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    kid: Option<String>,
}

/// Verifies an internal header value: signature by `kid`, then `exp`, `iat`, `iss`, `aud`
/// and the binding to the request (every check not explicitly skipped).
pub fn verify_internal_header(
    value: &str,
    keys: &VerifyKeys,
    expected: &Expected<'_>,
) -> Result<InternalClaims, VerifyError> {
    let segments = jws::split(value).ok_or(VerifyError::Malformed)?;
    let header: JoseHeader = jws::decode(segments.header)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(VerifyError::Malformed)?;
    if header.alg != "HS256" {
        return Err(VerifyError::Algorithm);
    }
    let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
    let (_, key) = keys
        .keys
        .iter()
        .find(|(id, _)| *id == kid)
        .ok_or(VerifyError::UnknownKey)?;
    let signature = jws::decode(segments.signature).ok_or(VerifyError::Malformed)?;
    if !key.verify(segments.signing_input.as_bytes(), &signature) {
        return Err(VerifyError::Signature);
    }
    let claims: InternalClaims = jws::decode(segments.payload)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(VerifyError::Malformed)?;
    let now = expected.now.unwrap_or_else(|| Clock::system().now());
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
    if let Check::Equals(method) = expected.method {
        if method != claims.htm {
            return Err(VerifyError::Method);
        }
    }
    if let Check::Equals(url) = expected.url {
        if url != claims.htu {
            return Err(VerifyError::Url);
        }
    }
    if let Check::Equals(query) = expected.query {
        let digest = query.map(|q| jws::encode(Sha256::digest(q)));
        if digest != claims.query_sha256 {
            return Err(VerifyError::Query);
        }
    }
    if let Check::Equals(body) = expected.body {
        if jws::encode(Sha256::digest(body)) != claims.body_sha256 {
            return Err(VerifyError::BodyHash);
        }
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Authenticated;
    use crate::config::InternalHeaderConfig;
    use crate::oauth::{AuthMethod, ClientId};
    use crate::secret::Secret;
    use crate::sign::Signer;
    use bytes::Bytes;
    use http::header::HeaderName;
    use std::time::Duration;

    fn key(id: &str, fill: u8) -> SigningKey {
        SigningKey {
            id: id.into(),
            secret: Secret::new(vec![fill; 32]),
        }
    }

    fn signer(keys: Vec<SigningKey>) -> Signer {
        Signer::new(
            &InternalHeaderConfig {
                name: HeaderName::from_static("x-authenticated-client"),
                issuer: "secretgate".into(),
                audience: "legacy".into(),
                ttl: Duration::from_secs(30),
                keys,
            },
            "https://auth.example.com",
            Clock::system(),
        )
        .unwrap()
    }

    fn who() -> Authenticated {
        Authenticated {
            client_id: ClientId::new("billing"),
            method: AuthMethod::ClientSecretPost,
            body: Bytes::from_static(b"grant_type=client_credentials&client_id=billing"),
            cnf: None,
        }
    }

    const URL: &str = "https://auth.example.com/oauth2/token";
    const BODY: &[u8] = b"grant_type=client_credentials&client_id=billing";

    /// Bound to the request `who()` makes: POST to the token URL, no query.
    fn expected<'a>(now: i64) -> Expected<'a> {
        Expected {
            now: Some(now),
            ..Expected::request("secretgate", "legacy", "POST", URL, None, BODY)
        }
    }

    #[test]
    fn sign_then_verify() {
        let s = signer(vec![key("k2", 2), key("k1", 1)]);
        let now = 1_800_000_000;
        let v = s
            .sign_at(&who(), "POST", "/oauth2/token", None, now)
            .unwrap();
        let both = VerifyKeys::new(&[key("k2", 2), key("k1", 1)]);
        let claims = verify_internal_header(&v, &both, &expected(now)).unwrap();
        assert_eq!(claims.sub, "billing");
        assert_eq!(claims.client_id, "billing");
        assert_eq!(claims.auth_method, "client_secret_post");
        assert_eq!(claims.exp, now + 30);
        assert_eq!(claims.query_sha256, None);
        assert_eq!(claims.cnf, None, "no certificate, no cnf");
        assert_eq!(jws::decode(&claims.jti).unwrap().len(), 16);
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
        for (changed, error) in [
            (
                Expected {
                    body: Check::Equals(b"other"),
                    ..expected(now)
                },
                VerifyError::BodyHash,
            ),
            (
                Expected {
                    method: Check::Equals("GET"),
                    ..expected(now)
                },
                VerifyError::Method,
            ),
            (
                Expected {
                    url: Check::Equals("https://auth.example.com/oauth2/revoke"),
                    ..expected(now)
                },
                VerifyError::Url,
            ),
            (
                Expected {
                    query: Check::Equals(Some("scope=admin")),
                    ..expected(now)
                },
                VerifyError::Query,
            ),
            (
                Expected {
                    audience: "other",
                    ..expected(now)
                },
                VerifyError::Audience,
            ),
        ] {
            assert_eq!(verify_internal_header(&v, &both, &changed), Err(error));
        }
        // Skipping a check is possible, but only by saying so.
        let unbound = Expected {
            method: Check::Skip,
            url: Check::Skip,
            query: Check::Skip,
            body: Check::Skip,
            ..expected(now)
        };
        let other_request = Expected {
            body: Check::Equals(b"other"),
            ..unbound.clone()
        };
        assert!(verify_internal_header(&v, &both, &unbound).is_ok());
        assert_eq!(
            verify_internal_header(&v, &both, &other_request),
            Err(VerifyError::BodyHash)
        );
    }

    #[test]
    fn a_query_is_bound_by_its_digest() {
        let s = signer(vec![key("k1", 1)]);
        let keys = VerifyKeys::new(&[key("k1", 1)]);
        let now = 1_800_000_000;
        let v = s
            .sign_at(&who(), "POST", "/oauth2/token", Some("tenant=a"), now)
            .unwrap();
        let with = |query| Expected {
            query: Check::Equals(query),
            ..expected(now)
        };
        assert!(verify_internal_header(&v, &keys, &with(Some("tenant=a"))).is_ok());
        assert_eq!(
            verify_internal_header(&v, &keys, &with(Some("tenant=b"))),
            Err(VerifyError::Query)
        );
        assert_eq!(
            verify_internal_header(&v, &keys, &with(None)),
            Err(VerifyError::Query)
        );
    }

    #[test]
    fn a_verified_certificate_is_named_in_cnf() {
        let s = signer(vec![key("k1", 1)]);
        let keys = VerifyKeys::new(&[key("k1", 1)]);
        let thumbprint = crate::x509::Thumbprint::of(b"certificate DER");
        let now = 1_800_000_000;
        let v = s
            .sign_at(
                &Authenticated {
                    cnf: Some(thumbprint),
                    ..who()
                },
                "POST",
                "/oauth2/token",
                None,
                now,
            )
            .unwrap();
        let claims = verify_internal_header(&v, &keys, &expected(now)).unwrap();
        assert_eq!(
            claims.cnf,
            Some(Confirmation {
                x5t_s256: thumbprint.x5t_s256()
            })
        );
        let payload = jws::decode(jws::split(&v).unwrap().payload).unwrap();
        assert!(
            String::from_utf8(payload)
                .unwrap()
                .contains("\"cnf\":{\"x5t#S256\":"),
            "the member is spelled as RFC 8705 §3.1 says"
        );
    }

    #[test]
    fn two_signatures_have_distinct_jti() {
        let s = signer(vec![key("k1", 1)]);
        let a = s.sign_at(&who(), "POST", "/t", None, 1).unwrap();
        let b = s.sign_at(&who(), "POST", "/t", None, 1).unwrap();
        assert_ne!(a, b);
    }
}
