//! Minting `client_secret_jwt` assertions (RFC 7523 §3), for the `assertion` command, the
//! demo, tests and load generation. The client side of what `auth::jwt` verifies.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Sha256, Sha384, Sha512};

use crate::auth::jwt::Algorithm;
use crate::secret::Secret;

/// A fresh assertion: `iss` = `sub` = client, `aud`, `iat` = now, `exp` = now + lifetime,
/// and a random 128-bit `jti` (so every call is single-use material).
pub fn mint(
    client_id: &str,
    secret: &Secret,
    audience: &str,
    alg: Algorithm,
    lifetime: Duration,
    now: i64,
) -> String {
    let mut jti = [0u8; 16];
    rand::rng().fill_bytes(&mut jti);
    let header = serde_json::json!({"alg": alg.name(), "typ": "JWT"});
    let claims = serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime.as_secs() as i64,
        "jti": URL_SAFE_NO_PAD.encode(jti),
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = mac(alg, secret.expose(), input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn mac(alg: Algorithm, key: &[u8], input: &[u8]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], input: &[u8]) -> Vec<u8> {
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        m.update(input);
        m.finalize().into_bytes().to_vec()
    }
    match alg {
        Algorithm::Hs256 => run::<Hmac<Sha256>>(key, input),
        Algorithm::Hs384 => run::<Hmac<Sha384>>(key, input),
        Algorithm::Hs512 => run::<Hmac<Sha512>>(key, input),
    }
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
        assert_eq!(c.alg, Ok(Algorithm::Hs512));
        assert_eq!(jwt::subject(&c.claims), Ok("mobile"));
        assert_eq!(jwt::check_issuer(&c.claims, "mobile"), Ok(()));
        let accepted = jwt::check_claims(
            &c.claims,
            &jwt::Expectations {
                issuer: "https://as",
                endpoint_url: "https://as/oauth2/token",
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
        let mut m = Hmac::<Sha512>::new_from_slice(secret.expose()).unwrap();
        m.update(c.signing_input.as_bytes());
        assert!(m.verify_slice(&c.signature).is_ok());
    }
}
