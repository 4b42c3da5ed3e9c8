//! Client assertions → the `client_secret_jwt` path of the auth layer, step by step as
//! `Authenticator::verify_assertion` runs it: `jwt::decode`, `alg`/`crit`, `jwt::subject`,
//! `jwt::check_issuer`, `Registry::verify_mac` against a registered client, `jwt::check_claims`
//! in both audience modes.
//! Checks: never panics; a decoded assertion is exactly `signing_input "." signature` with
//! the signature in canonical base64url (no second spelling of the same token); the registry
//! accepts a MAC iff an independent HMAC with the client's key gives the same bytes, and the
//! decoy key used for unknown clients accepts nothing; accepted claims satisfy RFC 7523 §3 as
//! docs/design.md §2 states it (exp not passed, jti 1..=256 bytes, replay TTL at most
//! max_age + 2 × leeway, strict audience is the issuer alone).
#![no_main]
use std::sync::OnceLock;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use secretgate::auth::jwt;
use secretgate::auth::registry::Registry;
use secretgate::config::{AudienceMode, ClientConfig, ClientSecret};
use secretgate::oauth::{Algorithm, AuthMethod};
use secretgate::secret::Secret;

/// The key of client `c1`; the seeds in `fuzz/seeds/jws` are signed with it.
const KEY: &[u8] = b"fuzz-client-secret-0123456789abcdef";
const ISSUER: &str = "https://as.example/acme";
const ENDPOINT: &str = "https://as.example/oauth2/token";
const NOW: i64 = 1_800_000_000;
const LEEWAY: u64 = 30;
const MAX_AGE: u64 = 300;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        Registry::new(&[
            ClientConfig {
                client_id: "c1".into(),
                auth_method: AuthMethod::ClientSecretJwt,
                algorithms: vec![Algorithm::Hs256, Algorithm::Hs384],
                secrets: vec![ClientSecret::Plain(Secret::new(KEY))],
                tls_name: None,
                certificates: Vec::new(),
                grant_types: None,
                key_set: None,
                asymmetric_algorithms: Vec::new(),
            },
            ClientConfig {
                client_id: "b1".into(),
                auth_method: AuthMethod::ClientSecretBasic,
                algorithms: vec![Algorithm::Hs256],
                secrets: vec![ClientSecret::Plain(Secret::new(KEY))],
                tls_name: None,
                certificates: Vec::new(),
                grant_types: None,
                key_set: None,
                asymmetric_algorithms: Vec::new(),
            },
        ])
    })
}

fn reference_mac(alg: Algorithm, input: &[u8], signature: &[u8]) -> bool {
    fn check<M: Mac + hmac::digest::KeyInit>(input: &[u8], signature: &[u8]) -> bool {
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(KEY).expect("any key length");
        m.update(input);
        m.finalize().into_bytes().as_slice() == signature
    }
    match alg {
        Algorithm::Hs256 => check::<Hmac<sha2::Sha256>>(input, signature),
        Algorithm::Hs384 => check::<Hmac<sha2::Sha384>>(input, signature),
        Algorithm::Hs512 => check::<Hmac<sha2::Sha512>>(input, signature),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(c) = jwt::decode(text) else { return };

    assert!(text.len() <= jwt::MAX_ASSERTION_LEN);
    assert_eq!(c.signing_input.matches('.').count(), 1);
    let rest = text
        .strip_prefix(c.signing_input)
        .and_then(|r| r.strip_prefix('.'))
        .expect("signing input is a prefix followed by a dot");
    assert_eq!(
        URL_SAFE_NO_PAD.encode(&c.signature),
        rest,
        "non-canonical signature"
    );

    // MAC, for whichever algorithm the header names (the real code stops earlier on a bad
    // alg or crit; the MAC comparison must hold regardless).
    if let Ok(jwt::AssertionAlgorithm::Hmac(alg)) = c.alg {
        let input = c.signing_input.as_bytes();
        let registry = registry();
        let sub = jwt::subject(&c.claims).ok();
        let client = sub.and_then(|s| registry.get(s));
        let usable = client
            .filter(|c| c.method == AuthMethod::ClientSecretJwt && c.algorithms.contains(&alg));
        let ok = registry.verify_mac(usable, alg, input, &c.signature);
        assert_eq!(
            ok,
            usable.is_some() && reference_mac(alg, input, &c.signature),
            "verify_mac disagrees with HMAC"
        );
        assert!(
            !registry.verify_mac(None, alg, input, &c.signature),
            "decoy key verified"
        );
    }
    if let Ok(sub) = jwt::subject(&c.claims) {
        assert!(!sub.is_empty());
        if jwt::check_issuer(&c.claims, sub).is_ok() {
            assert_eq!(c.claims.iss.as_ref().and_then(|v| v.as_str()), Some(sub));
        }
    }

    for mode in [AudienceMode::Compat, AudienceMode::Strict] {
        let want = jwt::Expectations {
            issuer: ISSUER,
            // Split as the gateway passes it: the public URL and the path.
            endpoint_url: ENDPOINT.split_at(ENDPOINT.find("/oauth2").unwrap_or(0)),
            audience_mode: mode,
            leeway: Duration::from_secs(LEEWAY),
            max_age: Duration::from_secs(MAX_AGE),
            now: NOW,
        };
        let Ok(accepted) = jwt::check_claims(&c.claims, &want) else {
            continue;
        };
        assert!(!accepted.jti.is_empty() && accepted.jti.len() <= jwt::MAX_JTI_LEN);
        let ttl = accepted.replay_ttl.as_secs();
        assert!(
            (1..=MAX_AGE + 2 * LEEWAY).contains(&ttl),
            "replay TTL {ttl}s outside 1..=max_age+2*leeway"
        );
        let exp = c
            .claims
            .exp
            .as_ref()
            .and_then(|v| v.as_f64())
            .expect("exp accepted");
        assert!(
            exp + LEEWAY as f64 >= NOW as f64,
            "expired assertion accepted"
        );
        let aud = c.claims.aud.as_ref().expect("aud accepted");
        match mode {
            AudienceMode::Strict => assert_eq!(aud.as_str(), Some(ISSUER)),
            AudienceMode::Compat => {
                let names = |v: &str| v == ISSUER || v == ENDPOINT;
                assert!(
                    aud.as_str().is_some_and(names)
                        || aud
                            .as_array()
                            .is_some_and(|a| a.iter().any(|v| v.as_str().is_some_and(names))),
                    "compat accepted an audience that names neither issuer nor endpoint"
                );
            }
        }
    }
});
