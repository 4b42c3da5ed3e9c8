//! Verification of the internal header: the upstream's side of the gateway's contract
//! (docs/design.md §5), as [`verify_internal_header`].
//!
//! Order: structure; the key by `kid` (unknown ids refused); `alg` must be the one that
//! key is pinned to (`HS256` for an HMAC key, the JWK's `ES256` or `EdDSA` for a public
//! one: an `HS256` header naming a public key's `kid` is refused, RFC 8725 §3.1), never
//! `none`, no `crit`; the signature (an HMAC compared in constant time); then the claims:
//! `exp`/`iat` with the given leeway, `iss`, `aud`; then the binding to the request:
//! `htm`, `htu`, `query_sha256` and `body_sha256`. Nothing in the payload is read before
//! the signature verifies.
//! The binding is checked by default: [`Expected::request`] takes the request's method,
//! URL, query and body, and a caller who really means to skip one must write
//! [`Check::Skip`] for it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::alg::{Algorithm, AsymmetricAlgorithm, KeyType};
use crate::jwk::{self, JwkError, JwkSetError, PublicKey};
use crate::jws::{self, HmacKey};

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

/// One verification key, pinned to one algorithm.
#[derive(Clone)]
enum VerifyKey {
    /// HS256 with a shared key.
    Hmac(HmacKey),
    /// ES256 or EdDSA with a public key.
    Public(AsymmetricAlgorithm, PublicKey),
}

/// Keys a verifier accepts, by id (`kid`), each pinned to its algorithm.
#[derive(Clone, Default)]
pub struct VerifyKeys {
    keys: Vec<(String, VerifyKey)>,
}

impl std::fmt::Debug for VerifyKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("VerifyKeys").field("ids", &ids).finish()
    }
}

/// Why a JWK Set could not be used to verify headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("{0}")]
    Set(#[from] JwkSetError),
    #[error("key {index}: {error}")]
    Key { index: usize, error: JwkError },
    #[error("key `{0}`: its alg does not fit the key")]
    Mismatch(String),
}

impl VerifyKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an HS256 key (its raw bytes) under `kid`.
    pub fn hmac(mut self, kid: impl Into<String>, key: &[u8]) -> Self {
        self.keys.push((
            kid.into(),
            VerifyKey::Hmac(HmacKey::new(Algorithm::Hs256, key)),
        ));
        self
    }

    /// Adds a public key under `kid`, pinned to `alg`, which must fit the key.
    pub fn public(
        mut self,
        kid: impl Into<String>,
        alg: AsymmetricAlgorithm,
        key: PublicKey,
    ) -> Result<Self, JwksError> {
        let kid = kid.into();
        if alg.key_type() != key.key_type() {
            return Err(JwksError::Mismatch(kid));
        }
        self.keys.push((kid, VerifyKey::Public(alg, key)));
        Ok(self)
    }

    /// The keys of a JWK Set (the gateway's `/.well-known/jwks.json`, or its
    /// `internal_header.jwks_file`), each pinned to its `alg`, or for a key without one,
    /// to the only algorithm of its type (ES256 for P-256, EdDSA for Ed25519).
    ///
    /// A set shared with other issuers may hold keys that cannot verify this header: a
    /// key without `kid`, one not for signatures (`use: enc`), of an unsupported type or
    /// algorithm, an RSA key without `alg` — those are skipped. A set that is not a JWK
    /// Set, a key that is malformed or private (`d`: published keys must never carry
    /// one), an `alg` that does not fit its key, or a repeated `kid` refuses the set.
    pub fn from_jwks(json: &[u8]) -> Result<Self, JwksError> {
        let mut keys = Self::new();
        for (index, parsed) in jwk::parse_set(json)?.into_iter().enumerate() {
            let jwk = match parsed {
                Ok(jwk) => jwk,
                Err(
                    JwkError::NotForSignatures
                    | JwkError::NotForVerification
                    | JwkError::UnsupportedKeyType(_)
                    | JwkError::UnsupportedCurve(_)
                    | JwkError::UnsupportedAlgorithm(_),
                ) => continue,
                Err(error) => return Err(JwksError::Key { index, error }),
            };
            let Some(kid) = jwk.kid.clone() else {
                continue;
            };
            let alg = match (jwk.alg, jwk.key.key_type()) {
                (Some(alg), _) => alg,
                (None, KeyType::P256) => AsymmetricAlgorithm::Es256,
                (None, KeyType::Ed25519) => AsymmetricAlgorithm::EdDsa,
                (None, KeyType::Rsa) => continue,
            };
            keys = keys.public(kid, alg, jwk.key)?;
        }
        Ok(keys)
    }

    /// All keys of `self`, then those of `other`. A `kid` in both names the key of
    /// `self`: the first key with a `kid` is the one used.
    pub fn extend(mut self, other: VerifyKeys) -> Self {
        self.keys.extend(other.keys);
        self
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Seconds of clock skew [`Expected::request`] tolerates on `exp` and `iat` unless told
/// otherwise: the gateway and the token service rarely share a clock to the second.
pub const DEFAULT_LEEWAY: i64 = 5;

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
            leeway: DEFAULT_LEEWAY,
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
    #[error("alg is not the algorithm of the key kid names")]
    Algorithm,
    #[error("crit header parameter (no extension is understood)")]
    Crit,
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
    crit: Option<serde_json::Value>,
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
        .and_then(|b| crate::json::object(&b))
        .ok_or(VerifyError::Malformed)?;
    // RFC 7515 §4.1.11: the gateway uses no extension, so none is understood here.
    if header.crit.is_some() {
        return Err(VerifyError::Crit);
    }
    let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
    let (_, key) = keys
        .keys
        .iter()
        .find(|(id, _)| *id == kid)
        .ok_or(VerifyError::UnknownKey)?;
    let signature = jws::decode(segments.signature).ok_or(VerifyError::Malformed)?;
    let input = segments.signing_input.as_bytes();
    // RFC 8725 §3.1: the key decides the algorithm, never the header alone; `none` and
    // an HS256 header naming a public key are refused before anything is computed.
    let verified = match key {
        VerifyKey::Hmac(hmac) if header.alg == "HS256" => hmac.verify(input, &signature),
        VerifyKey::Public(alg, public)
            if AsymmetricAlgorithm::from_name(&header.alg) == Some(*alg) =>
        {
            public.verify(*alg, input, &signature)
        }
        _ => return Err(VerifyError::Algorithm),
    };
    if !verified {
        return Err(VerifyError::Signature);
    }
    let claims: InternalClaims = jws::decode(segments.payload)
        .and_then(|b| crate::json::object(&b))
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

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    const URL: &str = "https://auth.example.com/oauth2/token";
    const BODY: &[u8] = b"grant_type=client_credentials&client_id=billing";
    const NOW: i64 = 1_800_000_000;

    fn claims() -> serde_json::Value {
        serde_json::json!({
            "iss": "secretgate", "aud": "legacy", "sub": "billing", "client_id": "billing",
            "auth_method": "client_secret_post", "iat": NOW, "exp": NOW + 30, "jti": "j",
            "htm": "POST", "htu": URL, "body_sha256": jws::encode(Sha256::digest(BODY)),
        })
    }

    fn expected<'a>() -> Expected<'a> {
        Expected {
            now: Some(NOW),
            ..Expected::request("secretgate", "legacy", "POST", URL, None, BODY)
        }
    }

    /// A JWS over `header` and the claims, signed by `sign`.
    fn jws_with(header: serde_json::Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
        jws::complete(
            &jws::header_prefix(header.to_string().as_bytes()),
            claims().to_string().as_bytes(),
            |input| Ok::<_, ()>(sign(input)),
        )
        .unwrap()
    }

    fn ec_pair() -> EcdsaKeyPair {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &SystemRandom::new(),
        )
        .unwrap();
        EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .unwrap()
    }

    fn jwks_of(kid: &str, members: serde_json::Map<String, serde_json::Value>) -> Vec<u8> {
        let mut jwk = serde_json::Value::Object(members);
        jwk["kid"] = kid.into();
        serde_json::json!({ "keys": [jwk] })
            .to_string()
            .into_bytes()
    }

    #[test]
    fn es256_and_eddsa_headers_verify_from_a_jwks() {
        let rng = SystemRandom::new();
        let ec = ec_pair();
        let ec_public = PublicKey::p256(
            &ec.public_key().as_ref()[1..33],
            &ec.public_key().as_ref()[33..],
        )
        .unwrap();
        let keys = VerifyKeys::from_jwks(&jwks_of("e1", ec_public.jwk_members().unwrap())).unwrap();
        let v = jws_with(serde_json::json!({"alg": "ES256", "kid": "e1"}), |i| {
            ec.sign(&rng, i).unwrap().as_ref().to_vec()
        });
        let claims = verify_internal_header(&v, &keys, &expected()).unwrap();
        assert_eq!(claims.client_id, "billing");

        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let ed_public = PublicKey::ed25519(ed.public_key().as_ref()).unwrap();
        let keys = VerifyKeys::from_jwks(&jwks_of("d1", ed_public.jwk_members().unwrap())).unwrap();
        let v = jws_with(serde_json::json!({"alg": "EdDSA", "kid": "d1"}), |i| {
            ed.sign(i).as_ref().to_vec()
        });
        assert!(verify_internal_header(&v, &keys, &expected()).is_ok());
        // Tampered: another body.
        let other = Expected {
            body: Check::Equals(b"other"),
            ..expected()
        };
        assert_eq!(
            verify_internal_header(&v, &keys, &other),
            Err(VerifyError::BodyHash)
        );
    }

    /// RFC 8725 §2.1, §3.1: an HS256 header keyed with the public key's bytes (as PEM, as
    /// the JWK's JSON, as the raw point), `none`, another asymmetric `alg`, a `crit`, an
    /// unknown `kid`: each refused.
    #[test]
    fn algorithm_confusion_none_and_unknown_kid_are_refused() {
        let rng = SystemRandom::new();
        let ec = ec_pair();
        let point = ec.public_key().as_ref().to_vec();
        let public = PublicKey::p256(&point[1..33], &point[33..]).unwrap();
        let members = public.jwk_members().unwrap();
        let jwk_json = serde_json::Value::Object(members.clone()).to_string();
        let keys = VerifyKeys::from_jwks(&jwks_of("e1", members)).unwrap();
        for secret in [
            jwk_json.as_bytes(),
            &point[..],
            b"-----BEGIN PUBLIC KEY-----",
        ] {
            let key = HmacKey::new(Algorithm::Hs256, secret);
            let v = jws_with(serde_json::json!({"alg": "HS256", "kid": "e1"}), |i| {
                key.sign(i).as_ref().to_vec()
            });
            assert_eq!(
                verify_internal_header(&v, &keys, &expected()),
                Err(VerifyError::Algorithm)
            );
        }
        let none = jws_with(serde_json::json!({"alg": "none", "kid": "e1"}), |_| {
            Vec::new()
        });
        assert_eq!(
            verify_internal_header(&none, &keys, &expected()),
            Err(VerifyError::Algorithm)
        );
        let signed = |header: serde_json::Value| {
            jws_with(header, |i| ec.sign(&rng, i).unwrap().as_ref().to_vec())
        };
        for (header, error) in [
            (
                serde_json::json!({"alg": "EdDSA", "kid": "e1"}),
                VerifyError::Algorithm,
            ),
            (
                serde_json::json!({"alg": "es256", "kid": "e1"}),
                VerifyError::Algorithm,
            ),
            (
                serde_json::json!({"alg": "ES256", "kid": "e1", "crit": ["x"]}),
                VerifyError::Crit,
            ),
            (
                serde_json::json!({"alg": "ES256", "kid": "e2"}),
                VerifyError::UnknownKey,
            ),
            (serde_json::json!({"alg": "ES256"}), VerifyError::UnknownKey),
        ] {
            assert_eq!(
                verify_internal_header(&signed(header.clone()), &keys, &expected()),
                Err(error),
                "{header}"
            );
        }
        // An HMAC key is pinned to HS256 the same way.
        let hmac = VerifyKeys::new().hmac("k1", &[1; 32]);
        let v = signed(serde_json::json!({"alg": "ES256", "kid": "k1"}));
        assert_eq!(
            verify_internal_header(&v, &hmac, &expected()),
            Err(VerifyError::Algorithm)
        );
    }

    #[test]
    fn foreign_keys_are_skipped_and_private_ones_refuse_the_set() {
        let ec = ec_pair();
        let point = ec.public_key().as_ref();
        let members = PublicKey::p256(&point[1..33], &point[33..])
            .unwrap()
            .jwk_members()
            .unwrap();
        let with = |extra: serde_json::Value| {
            let mut jwk = serde_json::Value::Object(members.clone());
            for (k, v) in extra.as_object().unwrap() {
                jwk[k] = v.clone();
            }
            jwk
        };
        // Another issuer's keys in the same set: no kid, for encryption, an HMAC key, an
        // RSA key without alg. Skipped; ours is used.
        let shared = serde_json::json!({ "keys": [
            with(serde_json::json!({})),
            with(serde_json::json!({"kid": "enc", "use": "enc"})),
            {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
            with(serde_json::json!({"kid": "ours"})),
        ]});
        let keys = VerifyKeys::from_jwks(shared.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        let private =
            serde_json::json!({ "keys": [with(serde_json::json!({"kid": "k", "d": "AAAA"}))] });
        assert_eq!(
            VerifyKeys::from_jwks(private.to_string().as_bytes()).unwrap_err(),
            JwksError::Key {
                index: 0,
                error: JwkError::Private
            }
        );
        // A key pinned to an algorithm of another type is refused, not dropped.
        let ed = PublicKey::ed25519(&[0x3b; 32]);
        if let Ok(ed) = ed {
            assert_eq!(
                VerifyKeys::new()
                    .public("x", AsymmetricAlgorithm::Es256, ed)
                    .unwrap_err(),
                JwksError::Mismatch("x".into())
            );
        }
    }
}
