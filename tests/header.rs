//! The internal header as the upstream sees it: key rotation through a running gateway,
//! the `verify-header` command, and the `assertion` command against the gateway.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::*;

const K1: &str = "the-old-signing-key-0123456789abcdef";
const K2: &str = "the-new-signing-key-0123456789abcdef";

/// Key checks only: these tests are about which key signed, not about the request.
fn expected() -> secretgate::Expected<'static> {
    use secretgate::Check::Skip;
    secretgate::Expected {
        method: Skip,
        url: Skip,
        query: Skip,
        body: Skip,
        ..secretgate::Expected::request("secretgate", "legacy-token-service", "", "", None, b"")
    }
}

/// A gateway whose internal_header.keys are [k2, k1].
async fn rotating_gateway(upstream: std::net::SocketAddr) -> Gateway {
    let pki = Pki::generate();
    std::fs::write(pki.path().join("k1"), K1).unwrap();
    std::fs::write(pki.path().join("k2"), K2).unwrap();
    let yaml = config_yaml(&pki, upstream, "").replace(
        "    - id: k1\n      file: ",
        "    - id: k2\n      file: k2\n    - id: k1\n      file: k1\n    - id: unused\n      file: ",
    );
    Gateway::start_yaml(pki, &yaml).await
}

#[tokio::test]
async fn rotation_signs_with_the_first_key() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw = rotating_gateway(upstream.addr).await;
    let body =
        format!("grant_type=client_credentials&client_id={POST_ID}&client_secret={POST_SECRET}");
    assert_eq!(gw.send(form(TOKEN_PATH, &body)).await.status, 200);
    let rec = upstream.last();
    let header = rec.headers["x-authenticated-client"].to_str().unwrap();

    // A verifier holding both keys accepts, and the header names k2.
    let claims = secretgate::verify_internal_header(
        header,
        &verify_keys(&[("k1", K1), ("k2", K2)]),
        &expected(),
    )
    .unwrap();
    assert_eq!(claims.client_id, POST_ID);
    // A verifier that only knows the old key refuses.
    assert_eq!(
        secretgate::verify_internal_header(header, &verify_keys(&[("k1", K1)]), &expected()),
        Err(secretgate::VerifyError::UnknownKey)
    );
    // A verifier with k2's id but k1's bytes refuses on the signature.
    assert_eq!(
        secretgate::verify_internal_header(header, &verify_keys(&[("k2", K1)]), &expected()),
        Err(secretgate::VerifyError::Signature)
    );
}

#[tokio::test]
async fn verify_header_command_prints_claims_or_the_reason() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw = Gateway::start(upstream.addr).await;
    let mut req = form(TOKEN_PATH, "grant_type=client_credentials");
    req.headers_mut().insert(
        "authorization",
        basic(BASIC_ID, BASIC_SECRET).parse().unwrap(),
    );
    assert_eq!(gw.send(req).await.status, 200);
    let rec = upstream.last();
    let header = rec.headers["x-authenticated-client"]
        .to_str()
        .unwrap()
        .to_owned();
    let key_file = gw.pki.path().join("signing.key");
    let body_file = gw.pki.path().join("body");
    std::fs::write(&body_file, &rec.body).unwrap();
    let url = format!("{PUBLIC_URL}{TOKEN_PATH}");

    // Value from stdin, with method, URL and body checks.
    let mut child = Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .args(["verify-header", "--key-file"])
        .arg(&key_file)
        .args(["--method", "POST", "--url", &url, "--body-file"])
        .arg(&body_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(header.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["client_id"], BASIC_ID);
    assert_eq!(claims["auth_method"], "client_secret_basic");

    let verify = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_secretgate"))
            .args(["verify-header", "--key-file"])
            .arg(&key_file)
            .args(extra)
            .arg(&header)
            .output()
            .unwrap()
    };
    let body_path = body_file.to_str().unwrap();
    let bound = ["--method", "POST", "--url", &url, "--body-file", body_path];

    // A query the request did not have: refused.
    let out = verify(&[&bound[..], &["--query", "scope=admin"]].concat());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("query_sha256 does not match"));

    // The binding is not optional: without the request's method, URL and body the command
    // refuses to run, unless --unbound says so explicitly.
    let out = verify(&[]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let out = verify(&["--unbound"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not checked against a request"));

    // A different body: refused, with the reason, non-zero exit.
    std::fs::write(&body_file, b"grant_type=tampered").unwrap();
    let out = verify(&bound);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("body_sha256 does not match"));
}

#[tokio::test]
async fn assertion_command_mints_single_use_assertions() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw = Gateway::start(upstream.addr).await;
    let secret_file = gw.pki.path().join("jwt.secret");
    std::fs::write(&secret_file, format!("{JWT_SECRET}\n")).unwrap();
    let mint = || {
        let out = Command::new(env!("CARGO_BIN_EXE_secretgate"))
            .args(["assertion", "--client-id", JWT_ID, "--secret-file"])
            .arg(&secret_file)
            .args(["--aud", &format!("{PUBLIC_URL}{TOKEN_PATH}")])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let a = mint();
    assert_ne!(a, mint(), "every call has a fresh jti");
    assert_eq!(
        gw.send(form(TOKEN_PATH, &assertion_body(&a))).await.status,
        200
    );
    let replay = gw.send(form(TOKEN_PATH, &assertion_body(&a))).await;
    assert_eq!(replay.status, 401);
    assert_eq!(replay.error(), "invalid_client");

    // --count N: N lines, N distinct jtis, each accepted once (what bench/run.sh uses).
    let out = Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .args([
            "assertion",
            "--count",
            "3",
            "--client-id",
            JWT_ID,
            "--secret-file",
        ])
        .arg(&secret_file)
        .args(["--aud", &format!("{PUBLIC_URL}{TOKEN_PATH}")])
        .output()
        .unwrap();
    assert!(out.status.success());
    let batch: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(batch.len(), 3);
    for a in &batch {
        let r = gw.send(form(TOKEN_PATH, &assertion_body(a))).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
}

#[test]
fn a_bad_certificate_is_a_clear_error_not_a_panic() {
    let pki = Pki::generate();
    std::fs::write(
        &pki.cert_file,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let yaml = config_yaml(&pki, "127.0.0.1:9".parse().unwrap(), "");
    let err = secretgate::Config::from_yaml(&yaml, pki.path()).unwrap_err();
    let problems = err.problems().join("\n");
    assert!(
        problems.contains("tls: cannot read certificates from")
            || problems.contains("cannot be parsed"),
        "{problems}"
    );
    // Not PEM at all.
    std::fs::write(&pki.cert_file, "hello").unwrap();
    let problems = secretgate::Config::from_yaml(&yaml, pki.path())
        .unwrap_err()
        .problems()
        .join("\n");
    assert!(problems.contains("holds no PEM certificate"), "{problems}");

    // A key that does not belong to the certificate.
    let other = Pki::generate();
    std::fs::copy(&other.key_file, &pki.key_file).unwrap();
    let fresh = Pki::generate();
    std::fs::copy(&fresh.cert_file, &pki.cert_file).unwrap();
    let err = secretgate::Config::from_yaml(&yaml, pki.path()).unwrap_err();
    let problems = err.problems().join("\n");
    assert!(
        problems.contains("does not match the certificate"),
        "{problems}"
    );
}
