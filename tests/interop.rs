//! Interoperability with independent implementations, run as real processes:
//! Authlib's `OAuth2Session.fetch_token` (all three methods) through the gateway, the
//! internal header verified by PyJWT, and a public client's authorization code flow with
//! PKCE by Authlib and by openid-client against a token-service stand-in that verifies
//! every header with PyJWT and the verifier itself. The Python environment and the Node
//! packages are installed on first use under target/ from tests/interop/requirements.txt
//! and package-lock.json (pinned), so `cargo test` alone suffices (with python3, node
//! and npm).

#[path = "support/node.rs"]
mod node_packages;
#[path = "support/pyjwt.rs"]
mod pyjwt;
#[path = "support/python.rs"]
mod python_venv;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use pyjwt::PyjwtVerify;
use support::*;

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
    let keys = secretgate::verify::keys_of(&gw.config.internal_header.keys);
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
    PyjwtVerify::spawn(python(), key_file, body, extra).verify(token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_internal_header_verifies_with_pyjwt_f6() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw = Gateway::start(upstream.addr).await;
    let body =
        format!("grant_type=client_credentials&client_id={POST_ID}&client_secret={POST_SECRET}");
    // What the token service receives: the same form without the secret.
    let forwarded = format!("grant_type=client_credentials&client_id={POST_ID}");
    let key_file = gw.pki.path().join("signing.key");
    let url = format!("{PUBLIC_URL}{TOKEN_PATH}");
    // The verifiers whose verdict must not be "expired" start before the gateway signs.
    let good = PyjwtVerify::spawn(
        python(),
        &key_file,
        Some(forwarded.as_bytes()),
        &["--kid", "k1", "--htm", "POST", "--htu", &url],
    );
    let other_body = PyjwtVerify::spawn(python(), &key_file, Some(b"grant_type=other"), &[]);
    let reply = gw.send(form(TOKEN_PATH, &body)).await;
    assert_eq!(reply.status, 200);
    let rec = upstream.last();
    assert_eq!(
        rec.body,
        forwarded.as_bytes(),
        "the secret is stripped, nothing else"
    );
    let token = rec.headers["x-authenticated-client"]
        .to_str()
        .unwrap()
        .to_owned();

    let (ok, out) = tokio::task::block_in_place(|| good.verify(&token));
    assert!(ok, "{out}");
    assert_eq!(out["claims"]["client_id"], POST_ID);
    assert_eq!(out["claims"]["auth_method"], "client_secret_post");

    // Wrong key (PyJWT checks the signature before any time claim).
    let wrong = gw.pki.path().join("wrong.key");
    std::fs::write(&wrong, "another-key-of-the-same-length-0123456").unwrap();
    let (ok, out) = tokio::task::block_in_place(|| pyjwt_verify(&token, &wrong, None, &[]));
    assert!(!ok);
    assert!(
        out["reason"].as_str().unwrap().contains("InvalidSignature"),
        "{out}"
    );

    // Body that is not the one the header was made for.
    let (ok, out) = tokio::task::block_in_place(|| other_body.verify(&token));
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

// --- A public client's authorization code flow with PKCE (issue 18) ---

/// The public client registered at the gateway and at the token service, and its one
/// redirect URI (never contacted: the clients read the 302 and stop there).
const SPA: &str = "spa";
const SPA_REDIRECT: &str = "https://spa.example.com/callback";

/// The Node packages (support/node.rs), installed once per process.
fn node_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| node_packages::modules("interop-node"))
}

/// tests/interop/pkce_token_service.py running as a child process (killed on drop).
struct TokenService {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    record: PathBuf,
    _dir: tempfile::TempDir,
}

impl TokenService {
    /// Starts it for a gateway public at `public` and waits (30 s at most) for the line
    /// that says it listens. It has its own copy of the gateway's signing key, `k1`.
    fn start(public: &str) -> TokenService {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k1.key");
        std::fs::write(&key, SIGNING_KEY).unwrap();
        let record = dir.path().join("requests.jsonl");
        let mut child = Command::new(python())
            .arg(script("pkce_token_service.py"))
            .args(["--public-url", public, "--issuer", "secretgate"])
            .args(["--audience", "legacy-token-service"])
            .arg("--key")
            .arg(format!("k1={}", key.display()))
            .args(["--client", &format!("{SPA}={SPA_REDIRECT}"), "--record"])
            .arg(&record)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the token service says where it listens within 30 s");
        let ready: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("pkce_token_service.py printed {line:?}"));
        let port = ready["port"].as_u64().expect("a port") as u16;
        TokenService {
            child,
            addr: ([127, 0, 0, 1], port).into(),
            record,
            _dir: dir,
        }
    }

    /// Every request it received, in order, as it recorded them.
    fn records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for TokenService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The token service, and a gateway in front of it that registers the public client.
async fn pkce_rig() -> (Gateway, String, TokenService) {
    let (listener, public) = public_listener().await;
    let service = TokenService::start(&public);
    let extra = format!("  - {{ client_id: {SPA}, auth_method: none }}\n");
    let gw = serve_gateway(listener, &public, service.addr, &extra).await;
    (gw, public, service)
}

/// Runs a client script to its end; returns what it printed, which must be one JSON line.
async fn run_client(mut cmd: Command) -> serde_json::Value {
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "the client printed {stdout:?}, stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        out.status.success(),
        "the client failed: {json}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json
}

/// BASE64URL(SHA256(verifier)), RFC 7636 §4.2.
fn s256(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

/// The value of parameter `name` of a recorded request, as the token service decoded it.
fn param<'a>(record: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    record["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p[0] == name)
        .and_then(|p| p[1].as_str())
}

/// The authorization request `sent` by the client (its URL, and the verifier it holds)
/// reached the token service unchanged, with an S256 challenge of that verifier, and the
/// 302 the client read is the service's, with a code and the state.
fn assert_authorize_passed(records: &[serde_json::Value], sent: &serde_json::Value) {
    let url = sent["url"].as_str().unwrap();
    let (_, query) = url.split_once('?').expect("a query");
    let rec = records
        .iter()
        .find(|r| r["path"] == "/oauth2/authorize" && r["query"] == query)
        .unwrap_or_else(|| panic!("the token service got {url} unchanged: {records:#?}"));
    assert_eq!(rec["method"], "GET");
    assert_eq!(param(rec, "client_id"), Some(SPA));
    assert_eq!(param(rec, "code_challenge_method"), Some("S256"));
    let verifier = sent["verifier"].as_str().unwrap();
    assert_eq!(param(rec, "code_challenge"), Some(s256(verifier).as_str()));
    assert_eq!(param(rec, "state"), sent["state"].as_str());
    assert_eq!(sent["status"], 302, "{sent}");
    assert_eq!(sent["location"], rec["response"]["location"], "untouched");
    let location = sent["location"].as_str().unwrap();
    assert!(
        location.starts_with(&format!("{SPA_REDIRECT}?code=")),
        "{location}"
    );
    let state = sent["state"].as_str().unwrap();
    assert!(location.ends_with(&format!("&state={state}")), "{location}");
}

/// The token service's back channel, in order: each token or revocation request
/// (`path`, `grant_type`, the status the service answered) was verified with PyJWT —
/// `auth_method` none, `client_id` spa — and carried no credential of any kind. Nothing
/// else reached it there: requests the gateway refused are not in the list.
fn assert_back_channel(records: &[serde_json::Value], expected: &[(&str, Option<&str>, u16)]) {
    let posts: Vec<_> = records.iter().filter(|r| r["method"] == "POST").collect();
    let got: Vec<_> = posts
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap(),
                param(r, "grant_type"),
                r["status"].as_u64().unwrap() as u16,
            )
        })
        .collect();
    assert_eq!(got, expected, "{posts:#?}");
    for r in posts {
        let check = &r["header_check"];
        assert_eq!(check["ok"], true, "PyJWT verified the header: {r:#}");
        assert_eq!(check["claims"]["auth_method"], "none", "{r:#}");
        assert_eq!(check["claims"]["client_id"], SPA, "{r:#}");
        assert_eq!(check["claims"]["sub"], SPA, "{r:#}");
        assert_eq!(param(r, "client_id"), Some(SPA), "{r:#}");
        for field in ["client_secret", "client_assertion", "client_assertion_type"] {
            assert!(param(r, field).is_none(), "{field} reached it: {r:#}");
        }
        let names: Vec<_> = r["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h[0].as_str().unwrap().to_ascii_lowercase())
            .collect();
        assert!(!names.iter().any(|n| n == "authorization"), "{r:#}");
        assert_eq!(
            names
                .iter()
                .filter(|n| *n == "x-authenticated-client")
                .count(),
            1
        );
    }
}

#[tokio::test]
async fn authlib_public_client_code_flow_with_pkce() {
    let (gw, public, service) = pkce_rig().await;
    let mut cmd = Command::new(python());
    cmd.arg(script("authlib_pkce.py"))
        .args(["--base-url", &public, "--ca"])
        .arg(&gw.pki.ca_file)
        .args(["--client-id", SPA, "--redirect-uri", SPA_REDIRECT]);
    let out = run_client(cmd).await;
    let records = service.records();
    let body = |step: &str| out[step]["body"].clone();

    assert_authorize_passed(&records, &out["authorize"]);
    // No verifier: the gateway's 400, which Authlib reports as the server's error...
    assert_eq!(out["exchange_no_verifier"]["status"], 400, "{out:#}");
    assert_eq!(body("exchange_no_verifier")["error"], "invalid_request");
    // ...and the same code then exchanged with the verifier: the refusal did not burn it.
    assert_eq!(out["exchange"]["status"], 200, "{out:#}");
    let issued = body("exchange");
    assert_eq!(issued["token_type"], "Bearer");
    assert_eq!(issued["scope"], "read");
    assert_eq!(out["refresh"]["status"], 200, "{out:#}");
    let refreshed = body("refresh");
    assert!(refreshed["access_token"].is_string());
    assert_ne!(
        refreshed["refresh_token"], issued["refresh_token"],
        "rotated"
    );
    assert_eq!(out["revoke"]["status"], 200, "{out:#}");
    // The revocation took effect at the token service.
    assert_eq!(out["refresh_after_revoke"]["status"], 400, "{out:#}");
    assert_eq!(body("refresh_after_revoke")["error"], "invalid_grant");
    // A well-formed verifier of another challenge passes the gateway and is refused by
    // the token service, which compares it with the challenge itself.
    assert_authorize_passed(&records, &out["authorize_2"]);
    assert_eq!(out["exchange_wrong_verifier"]["status"], 400, "{out:#}");
    let wrong = body("exchange_wrong_verifier");
    assert_eq!(wrong["error"], "invalid_grant");
    assert!(
        wrong["error_description"]
            .as_str()
            .unwrap()
            .contains("code_verifier"),
        "{wrong}"
    );

    let token = "/oauth2/token";
    assert_back_channel(
        &records,
        &[
            (token, Some("authorization_code"), 200),
            (token, Some("refresh_token"), 200),
            ("/oauth2/revoke", None, 200),
            (token, Some("refresh_token"), 400),
            (token, Some("authorization_code"), 400),
        ],
    );
    assert!(
        records
            .iter()
            .filter(|r| param(r, "grant_type") == Some("authorization_code"))
            .all(|r| param(r, "code_verifier").is_some()),
        "an exchange without a verifier reached the token service"
    );
    assert_eq!(
        records.len(),
        7,
        "2 authorizations and 5 back-channel requests"
    );
}

#[tokio::test]
async fn openid_client_public_client_code_flow_with_pkce() {
    let dir = tokio::task::spawn_blocking(node_dir).await.unwrap();
    let (gw, public, service) = pkce_rig().await;
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("openid_client_pkce.mjs"))
        .args([&public, SPA, SPA_REDIRECT])
        .env("NODE_EXTRA_CA_CERTS", &gw.pki.ca_file);
    let out = run_client(cmd).await;
    let records = service.records();

    // Discovery: the token service's metadata knows neither `none` nor PKCE; what
    // openid-client read through the gateway does.
    let upstream_metadata = &records[0]["response"];
    assert_eq!(
        records[0]["path"],
        "/.well-known/oauth-authorization-server"
    );
    assert_eq!(
        upstream_metadata["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic"])
    );
    let metadata = &out["metadata"];
    let methods = metadata["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert!(methods.contains(&"none".into()), "{metadata:#}");
    assert!(metadata["revocation_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap()
        .contains(&"none".into()));
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(metadata["supportsPKCE"], true);
    assert_eq!(
        metadata["token_endpoint"],
        format!("{public}/oauth2/token").as_str()
    );

    assert_authorize_passed(&records, &out["authorize"]);
    let issued = &out["exchange"];
    assert!(issued["access_token"].is_string(), "{out:#}");
    assert_eq!(
        issued["token_type"], "bearer",
        "openid-client lowercases it"
    );
    let refreshed = &out["refresh"];
    assert!(refreshed["access_token"].is_string(), "{out:#}");
    assert_ne!(
        refreshed["refresh_token"], issued["refresh_token"],
        "rotated"
    );
    assert_eq!(out["revoke"]["ok"], true, "{out:#}");
    assert_eq!(
        out["refresh_after_revoke"]["error"], "invalid_grant",
        "{out:#}"
    );
    assert_eq!(out["refresh_after_revoke"]["status"], 400, "{out:#}");

    let token = "/oauth2/token";
    assert_back_channel(
        &records,
        &[
            (token, Some("authorization_code"), 200),
            (token, Some("refresh_token"), 200),
            ("/oauth2/revoke", None, 200),
            (token, Some("refresh_token"), 400),
        ],
    );
    assert_eq!(
        records.len(),
        6,
        "discovery, authorization and 4 back-channel requests"
    );
}
