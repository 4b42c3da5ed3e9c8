//! Minting client assertions (RFC 7523 §3): `client_secret_jwt` with the client secret as
//! HMAC key, `private_key_jwt` with a private key (keys.rs), for the `assertion` command,
//! the demo, tests and load generation. The client side of what `auth::jwt` verifies.

use std::time::Duration;

use rand::RngCore;

use crate::error::SignFailed;
use crate::jws::{self, HmacKey};
use crate::keys::PrivateKey;
use crate::oauth::{Algorithm, AsymmetricAlgorithm};
use crate::secret::Secret;

/// The claims of a fresh assertion: `iss` = `sub` = client, `aud`, `iat` = now, `exp` =
/// now + lifetime, and a random 128-bit `jti`.
fn claims(client_id: &str, audience: &str, lifetime: Duration, now: i64) -> serde_json::Value {
    let mut jti = [0u8; 16];
    rand::rng().fill_bytes(&mut jti);
    serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime.as_secs() as i64,
        "jti": jws::encode(jti),
    })
}

/// A fresh `private_key_jwt` assertion (RFC 7523 §2.2) signed with `key` under `alg`,
/// with `kid` in its header when given.
pub fn mint_signed(
    client_id: &str,
    key: &PrivateKey,
    alg: AsymmetricAlgorithm,
    kid: Option<&str>,
    audience: &str,
    lifetime: Duration,
    now: i64,
) -> Result<String, SignFailed> {
    let mut header = serde_json::json!({"alg": alg.name(), "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = kid.into();
    }
    let claims = claims(client_id, audience, lifetime, now);
    jws::complete(
        &jws::header_prefix(header.to_string().as_bytes()),
        claims.to_string().as_bytes(),
        |input| key.sign(alg, input),
    )
}

/// A fresh assertion: `iss` = `sub` = client, `aud`, `iat` = now, `exp` = now + lifetime,
/// and a random 128-bit `jti` (so every call is single-use material). The MAC key is the
/// secret's own bytes (RFC 7523 §3, OIDC Core §9).
pub fn mint(
    client_id: &str,
    secret: &Secret,
    audience: &str,
    alg: Algorithm,
    lifetime: Duration,
    now: i64,
) -> String {
    let header = serde_json::json!({"alg": alg.name(), "typ": "JWT"});
    let claims = claims(client_id, audience, lifetime, now);
    jws::sign(
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
        &HmacKey::new(alg, secret.expose()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwt;
    use crate::config::AudienceMode;

    #[test]
    fn minted_assertions_pass_our_own_checks() {
        let secret = Secret::new("0123456789abcdef0123456789abcdef");
        let now = 1_800_000_000;
        let a = mint(
            "mobile",
            &secret,
            "https://as/oauth2/token",
            Algorithm::Hs512,
            Duration::from_secs(60),
            now,
        );
        let b = mint(
            "mobile",
            &secret,
            "https://as/oauth2/token",
            Algorithm::Hs512,
            Duration::from_secs(60),
            now,
        );
        let c = jwt::decode(&a).unwrap();
        assert_eq!(
            c.alg,
            Ok(crate::auth::jwt::AssertionAlgorithm::Hmac(Algorithm::Hs512))
        );
        assert_eq!(jwt::subject(&c.claims), Ok("mobile"));
        assert_eq!(jwt::check_issuer(&c.claims, "mobile"), Ok(()));
        let accepted = jwt::check_claims(
            &c.claims,
            &jwt::Expectations {
                issuer: "https://as",
                endpoint_url: ("https://as", "/oauth2/token"),
                audience_mode: AudienceMode::Compat,
                leeway: Duration::from_secs(30),
                max_age: Duration::from_secs(300),
                now,
            },
        )
        .unwrap();
        let other = jwt::decode(&b).unwrap();
        assert_ne!(
            Some(serde_json::Value::String(accepted.jti)),
            other.claims.jti
        );
        assert!(HmacKey::new(Algorithm::Hs512, secret.expose())
            .verify(c.signing_input.as_bytes(), &c.signature));
    }
}
