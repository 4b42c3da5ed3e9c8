//! Internal header values → `verify_internal_header`, the upstream side of docs/design.md §5
//! (library function and `verify-header` command). Checks: never panics; nothing verifies
//! under keys with the right ids and other bytes (no input verifies without the key); what
//! verifies under the real keys carries the HMAC-SHA256 an independent implementation
//! computes with the key its kid names, names alg HS256, and satisfies every expectation passed in
//! (iss, aud, exp/iat at a fixed clock, htm, htu, no query, body hash).
//! The seeds in `fuzz/seeds/internal_header` are signed with `K0` and `K1` so that the fuzzer starts
//! from headers that verify and mutates past the signature check.
#![no_main]
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use secretgate::config::SigningKey;
use secretgate::secret::Secret;
use secretgate::{verify_internal_header, Expected, VerifyKeys};
use sha2::{Digest, Sha256};

/// The two keys of the verifier; the seeds are signed with them.
const K0: [u8; 32] = [1; 32];
const K1: [u8; 32] = [7; 32];
const NOW: i64 = 1_800_000_000;
const BODY: &[u8] = b"grant_type=client_credentials&client_id=billing";

fn keys(k0: [u8; 32], k1: [u8; 32]) -> VerifyKeys {
    secretgate::verify::keys_of(&[
        SigningKey::hmac("k0", Secret::new(k0.to_vec())),
        SigningKey::hmac("k1", Secret::new(k1.to_vec())),
    ])
}

/// The same ids with other bytes.
fn flipped(mut key: [u8; 32]) -> [u8; 32] {
    key[0] ^= 1;
    key
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let expected = Expected {
        leeway: 5,
        now: Some(NOW),
        ..Expected::request(
            "secretgate",
            "legacy",
            "POST",
            "https://auth.example.com/oauth2/token",
            None,
            BODY,
        )
    };

    assert!(
        verify_internal_header(text, &keys(flipped(K0), flipped(K1)), &expected).is_err(),
        "verified without the key"
    );

    let Ok(claims) = verify_internal_header(text, &keys(K0, K1), &expected) else {
        return;
    };
    let mut parts = text.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        panic!("verified a value that is not three segments");
    };
    let header = String::from_utf8(URL_SAFE_NO_PAD.decode(h).expect("base64url header"))
        .expect("UTF-8 header");
    assert!(header.contains(r#""alg":"HS256""#), "{header}");
    let key = if header.contains(r#""kid":"k0""#) {
        K0
    } else {
        assert!(header.contains(r#""kid":"k1""#), "{header}");
        K1
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length");
    mac.update(&text.as_bytes()[..h.len() + 1 + p.len()]);
    assert_eq!(
        URL_SAFE_NO_PAD.decode(s).ok().as_deref(),
        Some(&mac.finalize().into_bytes()[..]),
        "verified a MAC that HMAC-SHA256 does not give"
    );

    assert_eq!(
        (claims.iss.as_str(), claims.aud.as_str()),
        ("secretgate", "legacy")
    );
    assert!(NOW <= claims.exp.saturating_add(5) && claims.iat <= NOW + 5);
    assert_eq!(
        (claims.htm.as_str(), claims.htu.as_str()),
        ("POST", "https://auth.example.com/oauth2/token")
    );
    assert_eq!(
        claims.body_sha256,
        URL_SAFE_NO_PAD.encode(Sha256::digest(BODY))
    );
    assert_eq!(
        claims.query_sha256, None,
        "verified a query the request did not have"
    );
});
