//! Authorization requests → `auth::pkce` and the lenient reading the authorization
//! endpoint runs on every query (`lenient::param_pairs`, `pkce::first_repeat`,
//! `AuthorizationParams::from_pairs`, `pkce::check_authorization`), and code verifiers →
//! `pkce::check_verifier`. Checks: never panics; a request accepted for a client that
//! must use PKCE carries, where the upstream reads it (the request object if there is one,
//! else the query), an S256 challenge of exactly 43 base64url characters with the method
//! S256 spelled out; a request object naming another client than the query is never
//! accepted; an accepted verifier is 43–128 unreserved characters.
#![no_main]
use std::borrow::Cow;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use secretgate::auth::pkce::{self, AuthorizationParams};
use secretgate::lenient;
use secretgate::oauth::PkceMethod;

/// The request object's payload, read independently (serde_json is not a dependency
/// here: a minimal reading of string members is enough for the invariants).
fn object_member(request: &str, name: &str) -> Option<String> {
    let payload = request.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let key = format!("\"{name}\":\"");
    let start = text.find(&key)? + key.len();
    let end = text[start..].find('"')?;
    Some(text[start..start + end].to_owned())
}

fn s256(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if pkce::check_verifier(text).is_ok() {
            assert!((43..=128).contains(&text.len()));
            assert!(text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)));
        }
    }
    let pairs: Vec<(Cow<'_, str>, String)> = lenient::param_pairs(data).collect();
    if pkce::first_repeat(pairs.iter().map(|(n, _)| n.clone())).is_some() {
        return;
    }
    let params = AuthorizationParams::from_pairs(pairs.iter().map(|(n, v)| (&**n, v.as_str())));
    // Every client must use PKCE, S256 only.
    let accepted = pkce::check_authorization(&params, &[PkceMethod::S256], |_| true).is_ok();
    if !accepted || params.request_uri.is_some() {
        return;
    }
    match &params.request {
        Some(object) => {
            let challenge = object_member(object, "code_challenge")
                .expect("an accepted request object carries a challenge");
            assert!(s256(&challenge), "{challenge:?}");
            if let (Some(inner), Some(outer)) =
                (object_member(object, "client_id"), &params.client_id)
            {
                assert_eq!(&inner, outer, "the object names another client");
            }
        }
        None => {
            let challenge = params.code_challenge.as_deref().expect("a challenge");
            assert!(s256(challenge), "{challenge:?}");
            assert_eq!(params.code_challenge_method.as_deref(), Some("S256"));
        }
    }
    // A challenge in the query is checked too, whatever the object says.
    if let Some(challenge) = &params.code_challenge {
        assert!(s256(challenge), "{challenge:?}");
    }
});
