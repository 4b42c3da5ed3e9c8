//! Verification of the internal header: the upstream's side of docs/design.md §5. The
//! rules live in the verifier crate (`secretgate-verify`, crates/verify), which a token
//! service can depend on alone; the gateway uses them for `verify-header`, the demo's
//! token service and its tests, with [`keys_of`] turning its configured keys into the
//! keys a verifier holds.

pub use secretgate_verify::{
    verify_internal_header, Check, Confirmation, Expected, InternalClaims, JwksError, VerifyError,
    VerifyKeys,
};

use crate::config::{KeyMaterial, SigningKey};

/// The keys a verifier of this gateway's headers holds: each HS256 key's secret, and each
/// asymmetric key's public half, pinned to its algorithm.
pub fn keys_of(keys: &[SigningKey]) -> VerifyKeys {
    keys.iter()
        .fold(VerifyKeys::new(), |acc, k| match &k.material {
            KeyMaterial::Hmac(secret) => acc.hmac(k.id.clone(), secret.expose()),
            KeyMaterial::Private { alg, key } => match key.public_key() {
                // A validated key always fits its algorithm (config/keys.rs).
                Some(public) => acc
                    .clone()
                    .public(k.id.clone(), *alg, public)
                    .unwrap_or(acc),
                None => acc,
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Authenticated;
    use crate::clock::Clock;
    use crate::config::InternalHeaderConfig;
    use crate::jws;
    use crate::oauth::{AuthMethod, ClientId};
    use crate::secret::Secret;
    use crate::sign::Signer;
    use bytes::Bytes;
    use http::header::HeaderName;
    use std::time::Duration;

    fn key(id: &str, fill: u8) -> SigningKey {
        SigningKey::hmac(id, Secret::new(vec![fill; 32]))
    }

    fn signer(keys: Vec<SigningKey>) -> Signer {
        Signer::new(
            &InternalHeaderConfig {
                name: HeaderName::from_static("x-authenticated-client"),
                issuer: "secretgate".into(),
                audience: "legacy".into(),
                ttl: Duration::from_secs(30),
                keys,
                jwks_file: None,
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
        let both = keys_of(&[key("k2", 2), key("k1", 1)]);
        let claims = verify_internal_header(&v, &both, &expected(now)).unwrap();
        assert_eq!(claims.sub, "billing");
        assert_eq!(claims.client_id, "billing");
        assert_eq!(claims.auth_method, "client_secret_post");
        assert_eq!(claims.exp, now + 30);
        assert_eq!(claims.query_sha256, None);
        assert_eq!(claims.cnf, None, "no certificate, no cnf");
        assert_eq!(jws::decode(&claims.jti).unwrap().len(), 16);
        // Rotation: a verifier with only the old key refuses what the new key signed.
        let old_only = keys_of(&[key("k1", 1)]);
        assert_eq!(
            verify_internal_header(&v, &old_only, &expected(now)),
            Err(VerifyError::UnknownKey)
        );
        // A verifier holding the right id with other bytes.
        let wrong = keys_of(&[key("k2", 9)]);
        assert_eq!(
            verify_internal_header(&v, &wrong, &expected(now)),
            Err(VerifyError::Signature)
        );
        // Expired past `exp` and the default leeway (5 s), not within them.
        assert!(verify_internal_header(&v, &both, &expected(now + 35)).is_ok());
        assert_eq!(
            verify_internal_header(&v, &both, &expected(now + 36)),
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
        let keys = keys_of(&[key("k1", 1)]);
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
        let keys = keys_of(&[key("k1", 1)]);
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
