//! `private_key_jwt` (RFC 7523 §2.2, docs/design.md §2.14) through a running gateway, with
//! keys and assertions made by the `secretgate` binary as a client's operator would.

mod support;

use std::process::Command;

use support::*;

const INTERNAL: &str = "x-authenticated-client";
const CLIENT: &str = "fapi-app";

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A client key pair made with `new-key`: the key file and its public JWK.
fn client_key(
    dir: &std::path::Path,
    name: &str,
    alg: &str,
    kid: &str,
) -> (std::path::PathBuf, serde_json::Value) {
    let path = dir.join(name);
    let jwk = run(&[
        "new-key",
        "--alg",
        alg,
        "--kid",
        kid,
        "--out",
        path.to_str().unwrap(),
    ]);
    (path, serde_json::from_str(&jwk).unwrap())
}

fn assertion(key: &std::path::Path, alg: &str, kid: &str) -> String {
    run(&[
        "assertion",
        "--client-id",
        CLIENT,
        "--key-file",
        key.to_str().unwrap(),
        "--alg",
        alg,
        "--kid",
        kid,
        "--aud",
        &format!("{PUBLIC_URL}{TOKEN_PATH}"),
    ])
}

#[tokio::test]
async fn a_static_jwks_client_gets_tokens_and_wrong_keys_are_refused() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let pki = Pki::generate();
    let (ec_key, ec_jwk) = client_key(pki.path(), "ec.pem", "ES256", "ec");
    let (ed_key, ed_jwk) = client_key(pki.path(), "ed.pem", "EdDSA", "ed");
    let (stranger, _) = client_key(pki.path(), "stranger.pem", "ES256", "ec");
    let jwks = serde_json::json!({ "keys": [ec_jwk, ed_jwk] });
    std::fs::write(pki.path().join("fapi.jwks.json"), jwks.to_string()).unwrap();
    let extra = format!(
        "  - {{ client_id: {CLIENT}, auth_method: private_key_jwt, jwks: {{ file: fapi.jwks.json }} }}\n"
    );
    let gw = Gateway::start_with_pki(pki, upstream.addr, &extra).await;
    for (key, alg, kid) in [(&ec_key, "ES256", "ec"), (&ed_key, "EdDSA", "ed")] {
        let a = assertion(key, alg, kid);
        let reply = gw.send(form(TOKEN_PATH, &assertion_body(&a))).await;
        assert_eq!(reply.status, 200, "{alg}: {:?}", reply.body);
        let rec = upstream.last();
        assert_no_secret(&rec);
        let claims = secretgate::verify::verify_internal_header(
            rec.headers[INTERNAL].to_str().unwrap(),
            &secretgate::verify::keys_of(&gw.config.internal_header.keys),
            &secretgate::Expected {
                now: Some(now()),
                ..secretgate::Expected::request(
                    "secretgate",
                    "legacy-token-service",
                    "POST",
                    &format!("{PUBLIC_URL}{TOKEN_PATH}"),
                    None,
                    &rec.body,
                )
            },
        )
        .unwrap();
        assert_eq!(
            (claims.client_id.as_str(), claims.auth_method.as_str()),
            (CLIENT, "private_key_jwt")
        );
        // Single use.
        let again = gw.send(form(TOKEN_PATH, &assertion_body(&a))).await;
        assert_eq!(again.status, 401);
    }
    // Another key under a known kid; a known key under the other's kid: refused.
    let forwarded = upstream.records().len();
    for a in [
        assertion(&stranger, "ES256", "ec"),
        assertion(&ec_key, "ES256", "ed"),
    ] {
        let reply = gw.send(form(TOKEN_PATH, &assertion_body(&a))).await;
        assert_eq!(reply.status, 401, "{:?}", reply.body);
        assert_eq!(reply.error(), "invalid_client");
    }
    assert_eq!(upstream.records().len(), forwarded);
}
