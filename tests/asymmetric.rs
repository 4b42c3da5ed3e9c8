//! The asymmetric internal header (issue 21, docs/design.md §5.3) through a running
//! gateway: keys made by `secretgate new-key` as an operator would, ES256 and EdDSA
//! headers verified with nothing but the JWK Set the admin listener publishes, the set
//! following rotation (`publish_only`, then a reload) and written to `jwks_file`, and
//! `verify-header --jwks`. HS256 signed with the public key (algorithm confusion) and
//! tampered requests are refused.

mod support;

use std::path::Path;
use std::process::Command;

use secretgate::verify::{verify_internal_header, Expected, VerifyError, VerifyKeys};
use support::*;

const INTERNAL: &str = "x-authenticated-client";

async fn jwks(gw: &Gateway) -> (serde_json::Value, VerifyKeys) {
    let (status, body) = admin_get(gw.admin.unwrap(), "/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    let keys = VerifyKeys::from_jwks(body.as_bytes()).expect("a usable JWK Set");
    (serde_json::from_str(&body).unwrap(), keys)
}

fn basic_request() -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut req = form(TOKEN_PATH, "grant_type=client_credentials");
    req.headers_mut().insert(
        "authorization",
        basic(BASIC_ID, BASIC_SECRET).parse().unwrap(),
    );
    req
}

fn bound(rec: &Recorded) -> Expected<'_> {
    Expected {
        now: Some(now()),
        ..Expected::request(
            "secretgate",
            "legacy-token-service",
            "POST",
            "https://auth.example.com/oauth2/token",
            None,
            &rec.body,
        )
    }
}

fn jose_header(value: &str) -> serde_json::Value {
    let segment = value.split('.').next().unwrap();
    serde_json::from_slice(&secretgate::jws::decode(segment).unwrap()).unwrap()
}

#[tokio::test]
async fn es256_and_eddsa_headers_verify_with_the_published_jwks_only() {
    for alg in ["ES256", "EdDSA"] {
        let upstream = RecordingUpstream::start(Behaviour::Token).await;
        let pki = Pki::generate();
        let signing = new_key(pki.path(), "signing.pem", alg, "now");
        let next = new_key(pki.path(), "next.pem", alg, "next");
        std::fs::write(pki.path().join("legacy.key"), SIGNING_KEY).unwrap();
        let keys = format!(
            "    - {{ id: now, algorithm: {alg}, file: signing.pem }}\n    - {{ id: next, algorithm: {alg}, file: next.pem, publish_only: true }}\n    - {{ id: legacy, file: legacy.key }}\n"
        );
        let yaml = yaml_with_keys(&pki, upstream.addr, &keys, "");
        let gw = Gateway::start_yaml(pki, &yaml).await;

        // The set: both asymmetric keys, as new-key printed them; never the HMAC key,
        // never private material; cacheable for five minutes.
        let (status, _) = admin_get(gw.admin.unwrap(), "/.well-known/jwks.json").await;
        assert_eq!(status, 200);
        let (set, verify_keys) = jwks(&gw).await;
        assert_eq!(set["keys"], serde_json::json!([signing, next]), "{alg}");
        let text = set.to_string();
        for private in ["\"d\"", "\"k\"", SIGNING_KEY, "legacy"] {
            assert!(!text.contains(private), "{alg}: {private} in {text}");
        }
        let (_, headers, _) = admin_request(gw.admin.unwrap(), "/.well-known/jwks.json").await;
        assert_eq!(headers["cache-control"], "max-age=300");
        assert_eq!(headers["content-type"], "application/json");

        // A request: signed by `now` under `alg`, verified with the published set.
        assert_eq!(gw.send(basic_request()).await.status, 200);
        let rec = upstream.last();
        let value = rec.headers[INTERNAL].to_str().unwrap().to_owned();
        assert_eq!(
            jose_header(&value),
            serde_json::json!({"alg": alg, "typ": "JWT", "kid": "now"})
        );
        let claims = verify_internal_header(&value, &verify_keys, &bound(&rec)).unwrap();
        assert_eq!(
            (claims.client_id.as_str(), claims.auth_method.as_str()),
            (BASIC_ID, "client_secret_basic")
        );
        // Bound to its request.
        let tampered = Expected {
            body: secretgate::Check::Equals(b"grant_type=other"),
            ..bound(&rec)
        };
        assert_eq!(
            verify_internal_header(&value, &verify_keys, &tampered),
            Err(VerifyError::BodyHash)
        );
        // Algorithm confusion: the same claims, HS256 with the public key's JWK (and its
        // x) as the HMAC key, under the ES256/EdDSA key's kid.
        let payload = value.split('.').nth(1).unwrap();
        for secret in [
            signing.to_string(),
            signing["x"].as_str().unwrap().to_owned(),
        ] {
            let key = secretgate::jws::HmacKey::new(
                secretgate::oauth::Algorithm::Hs256,
                secret.as_bytes(),
            );
            let prefix =
                secretgate::jws::header_prefix(br#"{"alg":"HS256","typ":"JWT","kid":"now"}"#);
            let input = format!("{prefix}{payload}");
            let forged = format!(
                "{input}.{}",
                secretgate::jws::encode(key.sign(input.as_bytes()))
            );
            assert_eq!(
                verify_internal_header(&forged, &verify_keys, &bound(&rec)),
                Err(VerifyError::Algorithm)
            );
        }
        let none = format!(
            "{}{payload}.",
            secretgate::jws::header_prefix(br#"{"alg":"none","kid":"now"}"#)
        );
        assert_eq!(
            verify_internal_header(&none, &verify_keys, &bound(&rec)),
            Err(VerifyError::Algorithm)
        );
    }
}

/// Rotation as the README describes it: publish the next key first, move it first (a
/// reload), and the set, the signature and `jwks_file` follow.
#[tokio::test]
async fn rotation_follows_reloads_in_the_set_the_signature_and_the_jwks_file() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let pki = Pki::generate();
    let a = new_key(pki.path(), "a.pem", "EdDSA", "a");
    let b = new_key(pki.path(), "b.pem", "EdDSA", "b");
    let jwks_file = pki.path().join("published/jwks.json");
    std::fs::create_dir(pki.path().join("published")).unwrap();
    let config = |keys: &str| {
        yaml_with_keys(&pki, upstream.addr, keys, "reload: { watch: false }\n")
            .replace("  keys:\n", "  jwks_file: published/jwks.json\n  keys:\n")
    };
    let before = config("    - { id: a, algorithm: EdDSA, file: a.pem }\n    - { id: b, algorithm: EdDSA, file: b.pem, publish_only: true }\n");
    // Move b first; a stays published until no header it signed can be live.
    let after = config("    - { id: b, algorithm: EdDSA, file: b.pem }\n    - { id: a, algorithm: EdDSA, file: a.pem, publish_only: true }\n");
    let gw = Gateway::start_file(pki, &before).await;
    let file_set = |path: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    assert_eq!(file_set(&jwks_file)["keys"], serde_json::json!([a, b]));
    assert_eq!(gw.send(basic_request()).await.status, 200);
    assert_eq!(
        jose_header(upstream.last().headers[INTERNAL].to_str().unwrap())["kid"],
        "a"
    );

    std::fs::write(gw.config_file.as_ref().unwrap(), after).unwrap();
    gw.reloader.reload().await.expect("the reload applies");
    let (set, keys) = jwks(&gw).await;
    assert_eq!(set["keys"], serde_json::json!([b, a]));
    assert_eq!(file_set(&jwks_file), set, "jwks_file follows the reload");
    assert_eq!(gw.send(basic_request()).await.status, 200);
    let rec = upstream.last();
    let value = rec.headers[INTERNAL].to_str().unwrap();
    assert_eq!(jose_header(value)["kid"], "b");
    verify_internal_header(value, &keys, &bound(&rec)).expect("verifies with the new set");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_header_takes_a_jwks_file_or_url() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let pki = Pki::generate();
    new_key(pki.path(), "k.pem", "ES256", "k");
    let keys = "    - { id: k, algorithm: ES256, file: k.pem }\n";
    let yaml = yaml_with_keys(&pki, upstream.addr, keys, "");
    let gw = Gateway::start_yaml(pki, &yaml).await;
    assert_eq!(gw.send(basic_request()).await.status, 200);
    let rec = upstream.last();
    let (set, _) = jwks(&gw).await;
    let jwks_path = gw.pki.path().join("jwks.json");
    std::fs::write(&jwks_path, set.to_string()).unwrap();
    let body = gw.pki.path().join("body");
    std::fs::write(&body, &rec.body).unwrap();
    let url = format!("http://{}/.well-known/jwks.json", gw.admin.unwrap());
    let header = rec.headers[INTERNAL].to_str().unwrap().to_owned();
    // The command runs on a blocking thread: the admin listener it fetches from runs on
    // this test's runtime.
    let verify = |keys: Vec<String>| {
        let (body, header) = (body.clone(), header.clone());
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_secretgate"))
                .arg("verify-header")
                .args(keys)
                .args([
                    "--method",
                    "POST",
                    "--url",
                    &format!("{PUBLIC_URL}{TOKEN_PATH}"),
                    "--body-file",
                ])
                .arg(&body)
                .arg(&header)
                .output()
                .unwrap()
        })
    };
    let by_file = || vec!["--jwks".to_owned(), jwks_path.display().to_string()];
    let by_url = || vec!["--jwks-url".to_owned(), url.clone()];
    for keys in [by_file(), by_url()] {
        let out = verify(keys.clone()).await.unwrap();
        assert!(
            out.status.success(),
            "{keys:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(claims["client_id"], BASIC_ID);
    }
    std::fs::write(&body, "grant_type=tampered").unwrap();
    for keys in [by_file(), by_url()] {
        let out = verify(keys.clone()).await.unwrap();
        assert_eq!(out.status.code(), Some(1), "{keys:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("body_sha256 does not match"));
    }
}

/// `new-key` refuses to overwrite a key, and a key that does not fit its algorithm is a
/// `check` error naming the key.
#[test]
fn new_key_never_overwrites_and_check_names_a_mismatched_key() {
    let dir = tempfile::tempdir().unwrap();
    new_key(dir.path(), "k.pem", "ES256", "k");
    let again = Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .args(["new-key", "--alg", "EdDSA", "--out"])
        .arg(dir.path().join("k.pem"))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists: not overwriting"));

    let pki = Pki::generate();
    std::fs::copy(dir.path().join("k.pem"), pki.path().join("k.pem")).unwrap();
    let keys = "    - { id: k, algorithm: EdDSA, file: k.pem }\n";
    let yaml = yaml_with_keys(&pki, "127.0.0.1:9".parse().unwrap(), keys, "");
    let file = pki.path().join("config.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "internal_header.keys[0]: key `k` (EdDSA): a P-256 key, but EdDSA needs an Ed25519 key"
        ),
        "{stderr}"
    );
}
