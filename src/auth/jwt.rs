//! Client assertions (RFC 7523 §3, RFC 7521 §4.2, OpenID Connect Core §9), verified per
//! RFC 8725: `client_secret_jwt` (HMAC) and `private_key_jwt` (RSA, P-256, Ed25519).
//!
//! Steps, in order: structural decode of the compact JWS (failure → 400); `alg` from the
//! fixed set (RFC 8725 §3.1: never `none`, never an algorithm the key was not meant for);
//! no `crit` (RFC 7515 §4.1.11: we understand no extensions); `sub` names the client; the
//! signature (assertions.rs); then the claims, here.
//! Invariant: nothing in a payload is trusted before the signature has been verified,
//! except `sub`/`iss`, used only to pick the key.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::config::AudienceMode;
use crate::error::AssertionRejection;
use crate::jws;
use crate::oauth::{Algorithm, AsymmetricAlgorithm};
use secretgate_verify::json;

/// An assertion's `alg`: an HMAC for `client_secret_jwt`, a public-key algorithm for
/// `private_key_jwt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionAlgorithm {
    Hmac(Algorithm),
    PublicKey(AsymmetricAlgorithm),
}

impl AssertionAlgorithm {
    /// Exact, case-sensitive names; `none` and everything else is refused.
    pub fn from_name(name: &str) -> Option<AssertionAlgorithm> {
        Algorithm::from_name(name)
            .map(AssertionAlgorithm::Hmac)
            .or_else(|| AsymmetricAlgorithm::from_name(name).map(AssertionAlgorithm::PublicKey))
    }
}

/// Longest assertion accepted; real ones are a few hundred bytes.
pub const MAX_ASSERTION_LEN: usize = 8 * 1024;
/// Longest `jti` stored in the replay cache.
pub const MAX_JTI_LEN: usize = 256;

/// The decoded parts of a compact JWS, before any verification.
#[derive(Debug)]
pub struct Compact<'a> {
    /// `BASE64URL(header) "." BASE64URL(payload)`: the bytes the MAC covers.
    pub signing_input: &'a str,
    pub signature: Vec<u8>,
    pub alg: Result<AssertionAlgorithm, AssertionRejection>,
    pub crit: bool,
    /// The `kid` header parameter (RFC 7515 §4.1.4), when a string.
    pub kid: Option<String>,
    pub claims: Claims,
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    crit: Option<Value>,
    #[serde(default)]
    kid: Option<Value>,
}

/// Registered claims we look at; unknown claims are ignored (RFC 7519 §4). A repeated
/// member is a decoding error (RFC 7515 §4: parsers must reject or take the last; we reject).
#[derive(Debug, Default, Deserialize)]
pub struct Claims {
    #[serde(default)]
    pub iss: Option<Value>,
    #[serde(default)]
    pub sub: Option<Value>,
    #[serde(default)]
    pub aud: Option<Value>,
    #[serde(default)]
    pub exp: Option<Value>,
    #[serde(default)]
    pub nbf: Option<Value>,
    #[serde(default)]
    pub iat: Option<Value>,
    #[serde(default)]
    pub jti: Option<Value>,
}

/// Structural decode: three base64url segments without padding or whitespace
/// (RFC 7515 §7.1, §2), JSON objects in header and payload. `None` → `400`.
pub fn decode(assertion: &str) -> Option<Compact<'_>> {
    if assertion.len() > MAX_ASSERTION_LEN {
        return None;
    }
    let segments = jws::split(assertion)?;
    // RFC 7519 §7.2: each a UTF-8 JSON object (json.rs says what serde alone lets through).
    let header: Header = json::object(&jws::decode(segments.header)?)?;
    let claims: Claims = json::object(&jws::decode(segments.payload)?)?;
    let signature = jws::decode(segments.signature)?;
    Some(Compact {
        signing_input: segments.signing_input,
        signature,
        alg: AssertionAlgorithm::from_name(&header.alg)
            .ok_or(AssertionRejection::UnsupportedAlgorithm),
        crit: header.crit.is_some(),
        kid: match header.kid {
            Some(Value::String(k)) => Some(k),
            _ => None,
        },
        claims,
    })
}

/// What the claims must satisfy for this request.
#[derive(Debug)]
pub struct Expectations<'a> {
    pub issuer: &'a str,
    /// The URL of the endpoint being called, as `public_url` and the path: compared with
    /// `aud` without being joined into a new string on every request.
    pub endpoint_url: (&'a str, &'a str),
    pub audience_mode: AudienceMode,
    pub leeway: Duration,
    pub max_age: Duration,
    /// Unix seconds.
    pub now: i64,
}

/// The result of claim checks: the jti and how long it must stay in the replay store.
#[derive(Debug, PartialEq, Eq)]
pub struct Accepted {
    pub jti: String,
    /// Seconds from now until the assertion can no longer be accepted.
    pub replay_ttl: Duration,
}

/// The subject, when it is a string.
pub fn subject(claims: &Claims) -> Result<&str, AssertionRejection> {
    match &claims.sub {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        _ => Err(AssertionRejection::MissingSubject),
    }
}

/// RFC 7523 §3 items 1–2: `iss` and `sub` both name the client.
pub fn check_issuer(claims: &Claims, sub: &str) -> Result<(), AssertionRejection> {
    match &claims.iss {
        Some(Value::String(iss)) if iss == sub => Ok(()),
        _ => Err(AssertionRejection::IssuerMismatch),
    }
}

fn numeric(value: &Value) -> Option<i64> {
    // RFC 7519 §2 NumericDate: a JSON number, possibly non-integer.
    value
        .as_i64()
        .or_else(|| value.as_f64().map(|f| f.floor() as i64))
}

/// Checks the time claims, `aud` and `jti`, after the MAC has verified.
pub fn check_claims(
    claims: &Claims,
    want: &Expectations<'_>,
) -> Result<Accepted, AssertionRejection> {
    check_audience(claims.aud.as_ref(), want)?;

    let leeway = want.leeway.as_secs() as i64;
    let max_age = want.max_age.as_secs() as i64;
    let now = want.now;
    // RFC 7523 §3 item 4: exp is required.
    let exp = claims
        .exp
        .as_ref()
        .and_then(numeric)
        .ok_or(AssertionRejection::MissingExpiry)?;
    if now > exp.saturating_add(leeway) {
        return Err(AssertionRejection::Expired);
    }
    // RFC 7523 §3 item 5: nbf, when present, is honoured.
    if let Some(nbf) = &claims.nbf {
        let nbf = numeric(nbf).ok_or(AssertionRejection::BadTimeClaim)?;
        if nbf > now.saturating_add(leeway) {
            return Err(AssertionRejection::NotYetValid);
        }
    }
    // RFC 7523 §3 item 6: a server may reject assertions issued too long ago. Without iat,
    // exp bounds the lifetime instead, so the replay store never holds a jti for long.
    let mut valid_until = exp.saturating_add(leeway);
    match &claims.iat {
        Some(iat) => {
            let iat = numeric(iat).ok_or(AssertionRejection::BadTimeClaim)?;
            if iat > now.saturating_add(leeway) {
                return Err(AssertionRejection::IssuedInFuture);
            }
            if now.saturating_sub(iat) > max_age.saturating_add(leeway) {
                return Err(AssertionRejection::TooOld);
            }
            valid_until = valid_until.min(iat.saturating_add(max_age).saturating_add(leeway));
        }
        None => {
            if exp.saturating_sub(now) > max_age.saturating_add(leeway) {
                return Err(AssertionRejection::LifetimeTooLong);
            }
        }
    }
    // RFC 7523 §3 item 7 and OIDC Core §9: jti is required and single-use.
    let jti = match &claims.jti {
        Some(Value::String(j)) if !j.is_empty() && j.len() <= MAX_JTI_LEN => j.clone(),
        _ => return Err(AssertionRejection::MissingJti),
    };
    let ttl = valid_until.saturating_sub(now).max(1) as u64;
    Ok(Accepted {
        jti,
        replay_ttl: Duration::from_secs(ttl),
    })
}

/// RFC 7523 §3 item 3. `compat`: the issuer or the exact endpoint URL, as a string or in an
/// array (what Authlib and openid-client send). `strict` (draft-ietf-oauth-rfc7523bis): the
/// issuer as the sole string value, closing audience-injection attacks.
fn check_audience(aud: Option<&Value>, want: &Expectations<'_>) -> Result<(), AssertionRejection> {
    let (base, path) = want.endpoint_url;
    // Exactly `base + path`: the lengths add up and each part is where it must be.
    let endpoint =
        |s: &str| s.len() == base.len() + path.len() && s.starts_with(base) && s.ends_with(path);
    let names = |s: &str| match want.audience_mode {
        AudienceMode::Compat => s == want.issuer || endpoint(s),
        AudienceMode::Strict => s == want.issuer,
    };
    match (aud, want.audience_mode) {
        (None, _) => Err(AssertionRejection::MissingAudience),
        (Some(Value::String(s)), _) if names(s) => Ok(()),
        (Some(Value::Array(items)), AudienceMode::Compat)
            if items.iter().any(|v| v.as_str().is_some_and(names)) =>
        {
            Ok(())
        }
        (Some(_), _) => Err(AssertionRejection::AudienceMismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jws::HmacKey;

    /// RFC 7515 Appendix A.1.
    const A1_JWS: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const A1_KEY: &str =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

    #[test]
    fn rfc7515_a1_hmac_vector_j14() {
        let c = decode(A1_JWS).unwrap();
        assert_eq!(c.alg, Ok(AssertionAlgorithm::Hmac(Algorithm::Hs256)));
        let key = HmacKey::new(Algorithm::Hs256, &jws::decode(A1_KEY).unwrap());
        assert!(
            key.verify(c.signing_input.as_bytes(), &c.signature),
            "RFC 7515 A.1 signature verifies"
        );
        // As a client assertion it has no sub, no aud, no jti and expired in 2011.
        assert_eq!(subject(&c.claims), Err(AssertionRejection::MissingSubject));
        let want = expectations(1_700_000_000);
        assert_eq!(
            check_claims(&c.claims, &want),
            Err(AssertionRejection::MissingAudience)
        );
    }

    fn expectations(now: i64) -> Expectations<'static> {
        Expectations {
            issuer: "https://as.example/acme",
            endpoint_url: ("https://as.example", "/oauth2/token"),
            audience_mode: AudienceMode::Compat,
            leeway: Duration::from_secs(30),
            max_age: Duration::from_secs(300),
            now,
        }
    }

    fn claims(json: serde_json::Value) -> Claims {
        serde_json::from_value(json).unwrap()
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn structural_errors() {
        for bad in [
            "this.notatall.valid",
            "a.b",
            "a.b.c.d",
            "eyJhbGciOiJIUzI1NiJ9.e30=.c2ln",
            "eyJhbGciOiJIUzI1NiJ9. e30.c2ln",
            "",
        ] {
            assert!(decode(bad).is_none(), "{bad}");
        }
        // {"alg":"HS256","alg":"none"} — duplicate members are rejected.
        let dup = format!(
            "{}.e30.c2ln",
            jws::encode(r#"{"alg":"HS256","alg":"none"}"#)
        );
        assert!(decode(&dup).is_none());
        // RFC 7519 §7.2: header and claims are UTF-8 JSON objects, not arrays read by
        // position, and not bytes serde_json would skip unchecked.
        let header = jws::encode(r#"{"alg":"HS256"}"#);
        for payload in [
            jws::encode(r#"["mobile","mobile","https://x"]"#),
            jws::encode(b"{\"iss\":\"mobile\",\"x\":\"\xb0\"}"),
        ] {
            assert!(decode(&format!("{header}.{payload}.c2ln")).is_none());
        }
        assert!(decode(&format!("{}.e30.c2ln", jws::encode(r#"["HS256"]"#))).is_none());
    }

    #[test]
    fn algorithms_are_case_sensitive() {
        use AssertionAlgorithm::{Hmac, PublicKey};
        for (alg, want) in [
            ("HS256", Ok(Hmac(Algorithm::Hs256))),
            ("RS256", Ok(PublicKey(AsymmetricAlgorithm::Rs256))),
            ("EdDSA", Ok(PublicKey(AsymmetricAlgorithm::EdDsa))),
            ("Ed25519", Ok(PublicKey(AsymmetricAlgorithm::EdDsa))),
            ("hs256", Err(AssertionRejection::UnsupportedAlgorithm)),
            ("es256", Err(AssertionRejection::UnsupportedAlgorithm)),
            ("none", Err(AssertionRejection::UnsupportedAlgorithm)),
            ("RS384", Err(AssertionRejection::UnsupportedAlgorithm)),
        ] {
            let jws = format!("{}.e30.c2ln", jws::encode(format!(r#"{{"alg":"{alg}"}}"#)));
            assert_eq!(decode(&jws).unwrap().alg, want, "{alg}");
        }
    }

    #[test]
    fn audience_modes_j1_j2_j3() {
        let base = |aud: Value| {
            claims(serde_json::json!({"aud": aud, "exp": NOW + 60, "iat": NOW, "jti": "j"}))
        };
        let compat = expectations(NOW);
        let strict = Expectations {
            audience_mode: AudienceMode::Strict,
            ..expectations(NOW)
        };
        let endpoint = base("https://as.example/oauth2/token".into());
        let issuer = base("https://as.example/acme".into());
        let both = base(serde_json::json!([
            "https://as.example/acme",
            "https://as.example/oauth2/token"
        ]));
        let other = base("https://evil.example/".into());
        assert!(check_claims(&endpoint, &compat).is_ok());
        assert!(check_claims(&issuer, &compat).is_ok());
        assert!(check_claims(&both, &compat).is_ok());
        assert_eq!(
            check_claims(&other, &compat),
            Err(AssertionRejection::AudienceMismatch)
        );
        // The endpoint's URL exactly: not a prefix, an extension or a splice of its parts.
        for near in [
            "https://as.example/oauth2/toke",
            "https://as.example/oauth2/token/",
            "https://as.example",
            "/oauth2/token",
            "https://as.example/oauth2/token/oauth2/token",
            "https://as.exampl/oauth2/tokenn",
            "https://as.example.evil/oauth2/token",
        ] {
            assert_eq!(
                check_claims(&base(near.into()), &compat),
                Err(AssertionRejection::AudienceMismatch),
                "{near}"
            );
        }
        assert!(check_claims(&issuer, &strict).is_ok());
        assert_eq!(
            check_claims(&endpoint, &strict),
            Err(AssertionRejection::AudienceMismatch)
        );
        assert_eq!(
            check_claims(&both, &strict),
            Err(AssertionRejection::AudienceMismatch)
        );
    }

    #[test]
    fn time_claims_j15_to_j20() {
        let want = expectations(NOW);
        let aud = "https://as.example/acme";
        let check = |v: Value| check_claims(&claims(v), &want);
        // Authlib: exp = iat + 3600, iat now.
        let ok = check(serde_json::json!({"aud": aud, "iat": NOW, "exp": NOW + 3600, "jti": "a"}))
            .unwrap();
        // The replay entry lives until iat + max_age + leeway.
        assert_eq!(ok.replay_ttl, Duration::from_secs(330));
        assert_eq!(
            check(serde_json::json!({"aud": aud, "exp": NOW - 31, "jti": "a"})),
            Err(AssertionRejection::Expired)
        );
        assert!(check(serde_json::json!({"aud": aud, "exp": NOW - 29, "jti": "a"})).is_ok());
        assert_eq!(
            check(serde_json::json!({"aud": aud, "jti": "a"})),
            Err(AssertionRejection::MissingExpiry)
        );
        assert_eq!(
            check(serde_json::json!({"aud": aud, "exp": "soon", "jti": "a"})),
            Err(AssertionRejection::MissingExpiry)
        );
        assert_eq!(
            check(serde_json::json!({"aud": aud, "exp": NOW + 60, "iat": NOW - 400, "jti": "a"})),
            Err(AssertionRejection::TooOld)
        );
        assert_eq!(
            check(serde_json::json!({"aud": aud, "exp": NOW + 60, "iat": NOW + 60, "jti": "a"})),
            Err(AssertionRejection::IssuedInFuture)
        );
        assert_eq!(
            check(serde_json::json!({"aud": aud, "exp": NOW + 3600, "jti": "a"})),
            Err(AssertionRejection::LifetimeTooLong)
        );
        assert_eq!(
            check(serde_json::json!({"aud": aud, "exp": NOW + 60, "nbf": NOW + 60, "jti": "a"})),
            Err(AssertionRejection::NotYetValid)
        );
        assert!(check(
            serde_json::json!({"aud": aud, "exp": NOW + 60, "nbf": NOW + 20, "jti": "a"})
        )
        .is_ok());
        assert_eq!(
            check(serde_json::json!({"aud": aud, "exp": NOW + 60})),
            Err(AssertionRejection::MissingJti)
        );
        assert_eq!(
            check(serde_json::json!({"aud": aud, "exp": NOW + 60, "jti": 7})),
            Err(AssertionRejection::MissingJti)
        );
        assert!(
            check(serde_json::json!({"aud": aud, "exp": (NOW + 60) as f64 + 0.5, "jti": "a"}))
                .is_ok()
        );
    }

    #[test]
    fn issuer_must_equal_subject_j24() {
        let c = claims(serde_json::json!({"iss": "a", "sub": "b"}));
        assert_eq!(subject(&c), Ok("b"));
        assert_eq!(
            check_issuer(&c, "b"),
            Err(AssertionRejection::IssuerMismatch)
        );
        let c = claims(serde_json::json!({"iss": "b", "sub": "b"}));
        assert_eq!(check_issuer(&c, "b"), Ok(()));
    }
}
