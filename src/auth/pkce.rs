//! PKCE (RFC 7636), enforced by the gateway even where the legacy server does not insist
//! on it (RFC 9700 §2.1.1: PKCE is required for public clients, with S256).
//!
//! Pure functions over parameters already read; the layers call them at three places:
//! - the authorization endpoint (the front channel; authorize.rs): a request for a client
//!   that must use PKCE carries a `code_challenge` whose `code_challenge_method` is one
//!   of `pkce.methods` (absent means `plain`, RFC 7636 §4.3), an S256 challenge being
//!   exactly 43 base64url characters;
//! - PAR (RFC 9126): the same rule on the pushed parameters of such a client;
//! - the token endpoint: such a client's `authorization_code` exchange carries a
//!   `code_verifier` of 43–128 characters of `[A-Za-z0-9-._~]` (RFC 7636 §4.1).
//!
//! The gateway cannot compare verifier and challenge (it never sees both: the code
//! binds them upstream); the legacy server still must. What it guarantees is that no
//! request for such a client reaches the upstream without them, well formed.
//!
//! Request objects (RFC 9101): a server that supports them uses the object's parameters
//! (RFC 9101 §6.3; OpenID Connect merges, the object winning), one that does not uses the
//! request's. So every challenge present is checked where it stands, and the challenge
//! is required in the object when there is one. The object's signature stays the
//! upstream's to verify; its payload is only read here. A `request_uri` (PAR) passes: the
//! pushed request was checked at the PAR endpoint.

use std::borrow::Cow;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::error::PkceError;
use crate::oauth::{
    PkceMethod, CLIENT_ID, CODE_CHALLENGE, CODE_CHALLENGE_METHOD, REQUEST, REQUEST_URI,
};

/// RFC 7636 §4.1: `unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 7636 §4.1: `code-verifier = 43*128unreserved`.
pub fn check_verifier(verifier: &str) -> Result<(), PkceError> {
    let ok = (43..=128).contains(&verifier.len()) && verifier.bytes().all(is_unreserved);
    ok.then_some(()).ok_or(PkceError::MalformedVerifier)
}

/// One place's challenge (the request's, or the request object's) under `allowed`.
/// `challenge` must be present; `method` absent means `plain` (RFC 7636 §4.3).
fn check_challenge(
    challenge: &str,
    method: Option<&str>,
    allowed: &[PkceMethod],
) -> Result<(), PkceError> {
    let method = match method {
        None | Some("") => PkceMethod::Plain,
        Some(name) => PkceMethod::from_name(name).ok_or(PkceError::MethodNotAllowed)?,
    };
    if !allowed.contains(&method) {
        return Err(PkceError::MethodNotAllowed);
    }
    let well_formed = match method {
        // RFC 7636 §4.2: BASE64URL(SHA256(verifier)), 32 bytes → 43 characters, no padding.
        PkceMethod::S256 => {
            challenge.len() == 43
                && challenge
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }
        // RFC 7636 §4.2: the plain challenge is the verifier itself.
        PkceMethod::Plain => check_verifier(challenge).is_ok(),
    };
    well_formed
        .then_some(())
        .ok_or(PkceError::MalformedChallenge)
}

/// The parameters of an authorization request (or a pushed one) that PKCE looks at, each
/// the value of the one parameter a lenient server reads under that name.
#[derive(Debug, Default)]
pub struct AuthorizationParams {
    pub client_id: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
}

impl AuthorizationParams {
    /// From parameters whose names were read leniently (the caller refused repeats).
    /// Empty values count as absent (RFC 6749 §3.1).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut p = AuthorizationParams::default();
        for (name, value) in pairs {
            let slot = match name {
                CLIENT_ID => &mut p.client_id,
                CODE_CHALLENGE => &mut p.code_challenge,
                CODE_CHALLENGE_METHOD => &mut p.code_challenge_method,
                REQUEST => &mut p.request,
                REQUEST_URI => &mut p.request_uri,
                _ => continue,
            };
            if !value.is_empty() {
                *slot = Some(value.to_owned());
            }
        }
        p
    }
}

/// The request object's payload members PKCE looks at.
#[derive(Debug, Default, serde::Deserialize)]
struct ObjectClaims {
    client_id: Option<serde_json::Value>,
    code_challenge: Option<serde_json::Value>,
    code_challenge_method: Option<serde_json::Value>,
}

/// What a request object says that PKCE looks at.
struct RequestObject {
    client_id: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// Reads a request object's payload: a compact JWS (or an unsecured JWT, RFC 7519 §6),
/// payload base64url, a JSON object whose PKCE members and `client_id` are strings.
/// An encrypted (five-part) or otherwise unreadable object is `None`.
fn read_request_object(jwt: &str) -> Option<RequestObject> {
    let mut parts = jwt.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    // RFC 9101 §2.1 (a JWT: RFC 7519 §7.2): a UTF-8 JSON object. serde_json alone would
    // skip a non-UTF-8 member, which an upstream decoding the bytes its own way could read
    // as other members (the `pkce` fuzz target found such an object accepted).
    let claims: ObjectClaims = secretgate_verify::json::object(&bytes)?;
    let text = |v: Option<serde_json::Value>| -> Option<Option<String>> {
        match v {
            None => Some(None),
            Some(serde_json::Value::String(s)) if s.is_empty() => Some(None),
            Some(serde_json::Value::String(s)) => Some(Some(s)),
            Some(_) => None,
        }
    };
    Some(RequestObject {
        client_id: text(claims.client_id)?,
        code_challenge: text(claims.code_challenge)?,
        code_challenge_method: text(claims.code_challenge_method)?,
    })
}

/// Checks an authorization request (at the authorization endpoint, or pushed to PAR).
/// `must_use_pkce` says whether a client id names a client that must use PKCE; it is
/// asked about every client id the request names (and about `None` when it names none).
pub fn check_authorization(
    params: &AuthorizationParams,
    allowed: &[PkceMethod],
    must_use_pkce: impl Fn(Option<&str>) -> bool,
) -> Result<(), PkceError> {
    // RFC 9126 §4: the pushed request was checked when it was pushed.
    if params.request_uri.is_some() {
        return Ok(());
    }
    let object = match &params.request {
        None => None,
        Some(jwt) => match read_request_object(jwt) {
            Some(o) => Some(o),
            // Unreadable: the rule cannot be checked, so it is refused if it applies.
            None if must_use_pkce(params.client_id.as_deref()) => {
                return Err(PkceError::RequestObject)
            }
            None => return Ok(()),
        },
    };
    let inner_id = object.as_ref().and_then(|o| o.client_id.as_deref());
    // RFC 9101 §5: the request object names the same client as the request; otherwise
    // the upstream and the gateway could judge the request as two different clients.
    if let (Some(outer), Some(inner)) = (params.client_id.as_deref(), inner_id) {
        if outer != inner {
            return Err(PkceError::RequestObject);
        }
    }
    let required = must_use_pkce(params.client_id.as_deref()) || must_use_pkce(inner_id);
    if !required {
        return Ok(());
    }
    // Every challenge present is checked where it stands...
    let places: [(Option<&str>, Option<&str>); 2] = [
        (
            params.code_challenge.as_deref(),
            params.code_challenge_method.as_deref(),
        ),
        match &object {
            Some(o) => (
                o.code_challenge.as_deref(),
                o.code_challenge_method.as_deref(),
            ),
            None => (None, None),
        },
    ];
    for (challenge, method) in places {
        match (challenge, method) {
            (Some(c), m) => check_challenge(c, m, allowed)?,
            // A method without its challenge: the challenge is missing.
            (None, Some(_)) => return Err(PkceError::MissingChallenge),
            (None, None) => {}
        }
    }
    // ...and one is required where the upstream reads it: in the request object if there
    // is one (RFC 9101 §6.3), else in the request.
    let effective = match &object {
        Some(o) => o.code_challenge.is_some(),
        None => params.code_challenge.is_some(),
    };
    effective.then_some(()).ok_or(PkceError::MissingChallenge)
}

/// Parameter names an authorization request may not repeat (RFC 6749 §3.1: none may be),
/// compared as lenient servers read them: returns the first repeated name.
pub fn first_repeat<'a, I>(names: I) -> Option<Cow<'a, str>>
where
    I: IntoIterator<Item = Cow<'a, str>>,
{
    let mut seen = std::collections::HashSet::new();
    names.into_iter().find(|n| !seen.insert(n.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S256: &[PkceMethod] = &[PkceMethod::S256];
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    fn params(list: &[(&str, &str)]) -> AuthorizationParams {
        AuthorizationParams::from_pairs(list.iter().copied())
    }

    fn object(claims: serde_json::Value) -> String {
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    #[test]
    fn verifiers_are_43_to_128_unreserved_characters() {
        // RFC 7636 Appendix B's verifier.
        assert_eq!(check_verifier(VERIFIER), Ok(()));
        assert_eq!(check_verifier(&"a".repeat(43)), Ok(()));
        assert_eq!(check_verifier(&"~._-".repeat(32)), Ok(()));
        for bad in [
            "a".repeat(42),
            "a".repeat(129),
            format!("{}+", "a".repeat(42)),
            format!("{} ", "a".repeat(43)),
            format!("{}%41", "a".repeat(43)),
            format!("{}é", "a".repeat(43)),
            String::new(),
        ] {
            assert_eq!(
                check_verifier(&bad),
                Err(PkceError::MalformedVerifier),
                "{bad}"
            );
        }
    }

    #[test]
    fn challenges_follow_their_method() {
        let all = &[PkceMethod::S256, PkceMethod::Plain];
        assert_eq!(check_challenge(CHALLENGE, Some("S256"), S256), Ok(()));
        // Absent means plain (RFC 7636 §4.3), refused unless listed.
        assert_eq!(
            check_challenge(CHALLENGE, None, S256),
            Err(PkceError::MethodNotAllowed)
        );
        assert_eq!(
            check_challenge(CHALLENGE, Some("plain"), S256),
            Err(PkceError::MethodNotAllowed)
        );
        assert_eq!(check_challenge(VERIFIER, Some("plain"), all), Ok(()));
        assert_eq!(check_challenge(VERIFIER, None, all), Ok(()));
        // Names are case-sensitive.
        assert_eq!(
            check_challenge(CHALLENGE, Some("s256"), all),
            Err(PkceError::MethodNotAllowed)
        );
        for bad in [
            &CHALLENGE[..42],
            &format!("{CHALLENGE}A"),
            &CHALLENGE.replace('-', "+"),
        ] {
            assert_eq!(
                check_challenge(bad, Some("S256"), S256),
                Err(PkceError::MalformedChallenge),
                "{bad}"
            );
        }
        assert_eq!(
            check_challenge("short", Some("plain"), all),
            Err(PkceError::MalformedChallenge)
        );
    }

    #[test]
    fn authorization_requests_of_clients_that_must_use_pkce() {
        let must = |id: Option<&str>| id == Some("spa");
        let check = |list: &[(&str, &str)]| check_authorization(&params(list), S256, must);
        let ok = [
            ("client_id", "spa"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ];
        assert_eq!(check(&ok), Ok(()));
        assert_eq!(
            check(&[("client_id", "spa")]),
            Err(PkceError::MissingChallenge)
        );
        assert_eq!(
            check(&[("client_id", "spa"), ("code_challenge", CHALLENGE)]),
            Err(PkceError::MethodNotAllowed)
        );
        assert_eq!(
            check(&[("client_id", "spa"), ("code_challenge_method", "S256")]),
            Err(PkceError::MissingChallenge)
        );
        // Empty means absent.
        assert_eq!(
            check(&[("client_id", "spa"), ("code_challenge", "")]),
            Err(PkceError::MissingChallenge)
        );
        // Other clients pass; PAR's request_uri passes.
        assert_eq!(check(&[("client_id", "web")]), Ok(()));
        assert_eq!(check(&[]), Ok(()));
        assert_eq!(
            check(&[
                ("client_id", "spa"),
                ("request_uri", "urn:ietf:params:oauth:request_uri:x")
            ]),
            Ok(())
        );
    }

    #[test]
    fn request_objects_carry_the_challenge() {
        let must = |id: Option<&str>| id == Some("spa");
        let check = |list: &[(&str, &str)]| check_authorization(&params(list), S256, must);
        let good = object(serde_json::json!({
            "client_id": "spa", "code_challenge": CHALLENGE, "code_challenge_method": "S256"
        }));
        assert_eq!(check(&[("client_id", "spa"), ("request", &good)]), Ok(()));
        // The same members with a byte that is not UTF-8 in another one (serde_json skips
        // it unchecked), or written as an array: unreadable, refused (the `pkce` fuzz
        // target found the first accepted).
        let mut not_utf8 = br#"{"x":"#.to_vec();
        not_utf8.extend_from_slice(b"\"\xb0\",");
        not_utf8.extend_from_slice(
            format!(r#""client_id":"spa","code_challenge":"{CHALLENGE}","code_challenge_method":"S256"}}"#)
                .as_bytes(),
        );
        let array = format!(r#"["spa","{CHALLENGE}","S256"]"#);
        for payload in [not_utf8, array.into_bytes()] {
            let object = format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
                URL_SAFE_NO_PAD.encode(payload)
            );
            assert_eq!(
                check(&[("client_id", "spa"), ("request", &object)]),
                Err(PkceError::RequestObject)
            );
        }
        // The object names the public client, the request a confidential one.
        assert_eq!(
            check(&[("client_id", "web"), ("request", &good)]),
            Err(PkceError::RequestObject)
        );
        // Only the object names the client: still judged as that client.
        let bare = object(serde_json::json!({ "client_id": "spa" }));
        assert_eq!(
            check(&[("request", &bare)]),
            Err(PkceError::MissingChallenge)
        );
        // A challenge outside the object does not stand in for one inside it.
        assert_eq!(
            check(&[
                ("client_id", "spa"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
                ("request", &bare)
            ]),
            Err(PkceError::MissingChallenge)
        );
        // Both places are checked.
        assert_eq!(
            check(&[
                ("client_id", "spa"),
                ("code_challenge", "x"),
                ("code_challenge_method", "plain"),
                ("request", &good)
            ]),
            Err(PkceError::MethodNotAllowed)
        );
        let plain = object(serde_json::json!({
            "client_id": "spa", "code_challenge": CHALLENGE, "code_challenge_method": "plain"
        }));
        assert_eq!(
            check(&[("client_id", "spa"), ("request", &plain)]),
            Err(PkceError::MethodNotAllowed)
        );
        // Unreadable (encrypted, not JSON, a non-string member): refused when it matters.
        for unreadable in [
            "a.b.c.d.e",
            "x",
            "a.!!.c",
            &object(serde_json::json!({"code_challenge": 1})),
        ] {
            assert_eq!(
                check(&[("client_id", "spa"), ("request", unreadable)]),
                Err(PkceError::RequestObject),
                "{unreadable}"
            );
            assert_eq!(
                check(&[("client_id", "web"), ("request", unreadable)]),
                Ok(())
            );
        }
    }

    #[test]
    fn repeats_are_found_by_lenient_name() {
        let names = |list: &[&'static str]| first_repeat(list.iter().map(|n| Cow::Borrowed(*n)));
        assert_eq!(names(&["a", "b", "a"]), Some(Cow::Borrowed("a")));
        assert_eq!(names(&["a", "b"]), None);
    }
}
