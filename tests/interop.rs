//! Interoperability with independent implementations, run as real processes:
//! Authlib's `OAuth2Session.fetch_token` (all three methods) through the gateway, and the
//! internal header verified by PyJWT. The Python environment is created on first use under
//! target/ from tests/interop/requirements.txt (pinned), so `cargo test` alone suffices.

#[path = "support/python.rs"]
mod python_venv;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use support::*;
use tokio::net::TcpListener;

/// The virtualenv (support/python.rs), made once per process.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| python_venv::venv("interop-venv"))
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

/// A gateway whose public URL is the address Authlib calls, so the endpoint URL it puts
/// in `aud` is the one the gateway expects.
async fn gateway_for(upstream: std::net::SocketAddr) -> (Gateway, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let public = format!("https://localhost:{port}");
    let pki = Pki::generate();
    let yaml = config_yaml(&pki, upstream, "").replace(PUBLIC_URL, &public);
    let config = secretgate::Config::from_yaml(&yaml, pki.path()).unwrap();
    let gateway = secretgate::Gateway::new(config.clone()).unwrap();
    let lifecycle = gateway.lifecycle();
    let reloader = gateway.reloader();
    let task = tokio::spawn(gateway.serve(listener, None, std::future::pending()));
    let gw = Gateway {
        addr: ([127, 0, 0, 1], port).into(),
        pki,
        config,
        shutdown: None,
        task,
        lifecycle,
        admin: None,
        reloader,
        config_file: None,
    };
    (gw, public)
}

async fn authlib(
    gw: &Gateway,
    public: &str,
    id: &str,
    secret: &str,
    method: &str,
) -> (bool, serde_json::Value) {
    let token_url = format!("{public}{TOKEN_PATH}");
    let ca = gw.pki.ca_file.clone();
    let (id, secret, method) = (id.to_owned(), secret.to_owned(), method.to_owned());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(script("authlib_client.py"))
            .args(["--token-url", &token_url, "--ca"])
            .arg(&ca)
            .args([
                "--client-id",
                &id,
                "--secret",
                &secret,
                "--method",
                &method,
                "--scope",
                "read write",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "authlib_client.py printed {stdout:?}, stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), json)
}

#[tokio::test]
async fn authlib_gets_tokens_with_all_three_methods() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let (gw, public) = gateway_for(upstream.addr).await;
    let keys = secretgate::VerifyKeys::new(&gw.config.internal_header.keys);
    for (id, secret, method) in [
        (BASIC_ID, BASIC_SECRET, "client_secret_basic"),
        (POST_ID, POST_SECRET, "client_secret_post"),
        (JWT_ID, JWT_SECRET, "client_secret_jwt"),
    ] {
        let (ok, token) = authlib(&gw, &public, id, secret, method).await;
        assert!(ok, "{method}: {token}");
        assert_eq!(token["access_token"], "upstream-token", "{method}");
        let rec = upstream.last();
        assert_no_secret(&rec);
        let header = rec.headers["x-authenticated-client"].to_str().unwrap();
        let url = format!("{public}{TOKEN_PATH}");
        let claims = secretgate::verify_internal_header(
            header,
            &keys,
            &secretgate::Expected::request(
                "secretgate",
                "legacy-token-service",
                "POST",
                &url,
                rec.uri.query(),
                &rec.body,
            ),
        )
        .unwrap();
        assert_eq!(claims.client_id, id);
        assert_eq!(claims.auth_method, method);
        let body = String::from_utf8_lossy(&rec.body);
        assert!(body.contains(&format!("client_id={id}")), "{body}");
        assert!(body.contains("scope=read+write"), "{body}");
    }
    // And a wrong secret is refused through the same client.
    let (ok, err) = authlib(
        &gw,
        &public,
        BASIC_ID,
        "wrong-secret-0123456789",
        "client_secret_basic",
    )
    .await;
    assert!(!ok);
    assert_eq!(err["status"], 401);
}

fn pyjwt_verify(
    token: &str,
    key_file: &Path,
    body: Option<&[u8]>,
    extra: &[&str],
) -> (bool, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(python());
    cmd.arg(script("pyjwt_verify.py"))
        .args(["--token", token, "--key-file"])
        .arg(key_file)
        .args([
            "--issuer",
            "secretgate",
            "--audience",
            "legacy-token-service",
        ])
        .args(extra);
    if let Some(body) = body {
        let path = dir.path().join("body");
        std::fs::write(&path, body).unwrap();
        cmd.arg("--body-file").arg(path);
    }
    let out = cmd.output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "pyjwt_verify.py printed {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_internal_header_verifies_with_pyjwt_f6() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw = Gateway::start(upstream.addr).await;
    let body =
        format!("grant_type=client_credentials&client_id={POST_ID}&client_secret={POST_SECRET}");
    let reply = gw.send(form(TOKEN_PATH, &body)).await;
    assert_eq!(reply.status, 200);
    let rec = upstream.last();
    let token = rec.headers["x-authenticated-client"]
        .to_str()
        .unwrap()
        .to_owned();
    let key_file = gw.pki.path().join("signing.key");
    let url = format!("{PUBLIC_URL}{TOKEN_PATH}");

    let (ok, out) = tokio::task::block_in_place(|| {
        pyjwt_verify(
            &token,
            &key_file,
            Some(&rec.body),
            &["--kid", "k1", "--htm", "POST", "--htu", &url],
        )
    });
    assert!(ok, "{out}");
    assert_eq!(out["claims"]["client_id"], POST_ID);
    assert_eq!(out["claims"]["auth_method"], "client_secret_post");

    // Wrong key.
    let wrong = gw.pki.path().join("wrong.key");
    std::fs::write(&wrong, "another-key-of-the-same-length-0123456").unwrap();
    let (ok, out) = tokio::task::block_in_place(|| pyjwt_verify(&token, &wrong, None, &[]));
    assert!(!ok);
    assert!(
        out["reason"].as_str().unwrap().contains("InvalidSignature"),
        "{out}"
    );

    // Body that is not the one the header was made for.
    let (ok, out) = tokio::task::block_in_place(|| {
        pyjwt_verify(&token, &key_file, Some(b"grant_type=other"), &[])
    });
    assert!(!ok);
    assert!(
        out["reason"].as_str().unwrap().contains("body_sha256"),
        "{out}"
    );

    // Expired: a header the gateway's signer made 10 minutes ago.
    let ten_minutes_ago = secretgate::Clock::manual(now() - 600);
    let signer =
        secretgate::sign::Signer::new(&gw.config.internal_header, PUBLIC_URL, ten_minutes_ago)
            .unwrap();
    let old = signer
        .sign(
            &secretgate::auth::Authenticated {
                client_id: POST_ID.into(),
                method: secretgate::oauth::AuthMethod::ClientSecretPost,
                body: rec.body.clone(),
                cnf: None,
            },
            "POST",
            TOKEN_PATH,
            None,
        )
        .unwrap();
    let (ok, out) = tokio::task::block_in_place(|| pyjwt_verify(&old, &key_file, None, &[]));
    assert!(!ok);
    assert!(out["reason"].as_str().unwrap().contains("Expired"), "{out}");
}
