//! JWK Sets → `secretgate_verify::jwk::parse_set`, what reads every `private_key_jwt`
//! client's keys: a configured `jwks` (operator input) and a set fetched from a client's
//! `jwks_uri` (the client's, or whoever answers there). Checks, besides no panic:
//! - one result per entry of `keys` (a serde_json `Value` read of the same bytes agrees);
//! - an accepted key comes from an entry that is a public signature key (no `d`, `p`, `q`;
//!   `use`, if a string, is `sig`), of the type its `kty`/`crv` name (RSA, EC P-256, OKP
//!   Ed25519), with the entry's `kid`, a `kid` no earlier accepted key has, and an `alg`
//!   (if any) that fits the key;
//! - an RSA key has at least 2048 bits; a P-256 or Ed25519 key holds exactly the
//!   coordinates the entry gave (its published members decode to the same bytes);
//! - a key verifies nothing under an algorithm of another type, and no empty signature.
//! The whole input is also read as one JWK (`parse_jwk`), under the same checks.
#![no_main]
use libfuzzer_sys::fuzz_target;
use secretgate_verify::jwk::{parse_jwk, parse_set, Jwk, PublicKey};
use secretgate_verify::jws;
use secretgate_verify::{AsymmetricAlgorithm, KeyType};
use serde_json::Value;

fn check(jwk: &Jwk, entry: &Value) {
    let obj = entry.as_object().expect("an accepted key is a JSON object");
    for private in ["d", "p", "q"] {
        let present = obj.get(private).is_some_and(|v| !v.is_null());
        assert!(!present, "a private key was accepted: {entry}");
    }
    if let Some(u) = obj.get("use").and_then(Value::as_str) {
        assert_eq!(u, "sig", "a key not for signatures was accepted");
    }
    assert_eq!(
        jwk.kid.as_deref(),
        obj.get("kid").and_then(Value::as_str),
        "the kid is the entry's"
    );
    let kty = obj.get("kty").and_then(Value::as_str);
    let crv = obj.get("crv").and_then(Value::as_str);
    let key_type = jwk.key.key_type();
    match key_type {
        KeyType::Rsa => assert_eq!(kty, Some("RSA")),
        KeyType::P256 => assert_eq!((kty, crv), (Some("EC"), Some("P-256"))),
        KeyType::Ed25519 => assert_eq!((kty, crv), (Some("OKP"), Some("Ed25519"))),
    }
    if let Some(alg) = jwk.alg {
        assert_eq!(alg.key_type(), key_type, "an alg that does not fit the key");
    }
    let member = |name: &str| obj.get(name).and_then(Value::as_str).and_then(jws::decode);
    match &jwk.key {
        PublicKey::Rsa { bits, .. } => assert!(*bits >= 2048, "RSA of {bits} bits"),
        key => {
            let published = key.jwk_members().expect("P-256 and Ed25519 are published");
            let again = |name: &str| {
                published
                    .get(name)
                    .and_then(Value::as_str)
                    .and_then(jws::decode)
            };
            assert_eq!(again("x"), member("x"), "x changed");
            if key_type == KeyType::P256 {
                assert_eq!(again("y"), member("y"), "y changed");
            }
        }
    }
    for alg in AsymmetricAlgorithm::ALL {
        assert!(
            !jwk.key.verify(alg, b"input", &[]),
            "an empty signature verified"
        );
        if alg.key_type() != key_type {
            assert!(!jwk.allows(alg), "{alg:?} allowed for {key_type:?}");
            assert!(
                !jwk.key.verify(alg, b"input", &[0u8; 64]),
                "{alg:?} verified with a {key_type:?} key"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(jwk) = parse_jwk(data) {
        let entry: Value = serde_json::from_slice(data).expect("an accepted JWK is JSON");
        check(&jwk, &entry);
    }
    let Ok(results) = parse_set(data) else {
        return;
    };
    let set: Value = serde_json::from_slice(data).expect("an accepted set is JSON");
    let entries = set["keys"]
        .as_array()
        .expect("an accepted set has a keys array");
    assert_eq!(results.len(), entries.len(), "one result per entry");
    let mut kids: Vec<&str> = Vec::new();
    for (result, entry) in results.iter().zip(entries) {
        let Ok(jwk) = result else {
            continue;
        };
        check(jwk, entry);
        if let Some(kid) = jwk.kid.as_deref() {
            assert!(!kids.contains(&kid), "kid {kid:?} accepted twice");
            kids.push(kid);
        }
    }
});
