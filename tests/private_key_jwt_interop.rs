//! `private_key_jwt` (RFC 7523 §2.2, docs/design.md §2.14) with independent clients, run as
//! real processes: Authlib's `PrivateKeyJWT` and openid-client v6's `PrivateKeyJwt` get
//! tokens through the gateway with RSA (RS256, PS256), EC P-256 (ES256) and Ed25519 keys
//! (`EdDSA` from Authlib, `Ed25519` from openid-client, RFC 9864), registered in a `jwks`
//! file and at a `jwks_uri` served over HTTPS by a test server with a CA of its own
//! (`jwks_fetch.ca_file`). The keys are made at run time by joserfc (Authlib's JOSE
//! library); the assertions are made and signed by the client libraries, never by
//! secretgate. PyJWT verifies every forwarded internal header.

#[path = "support/jwks_server.rs"]
mod jwks_server;
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

use jwks_server::{JwksServer, Serve};
use pyjwt::PyjwtVerify;
use support::*;

/// The client registered with a `jwks` file, and the one with a `jwks_uri`.
const FILE_CLIENT: &str = "pk-file";
const URI_CLIENT: &str = "pk-uri";

fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| python_venv::venv("pk-interop-venv"))
}

fn node_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| node_packages::modules("pk-interop-node"))
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

/// Key pairs made by joserfc: `KID.pem` (PKCS#8) in `dir` for each `KID:TYPE`, and the
/// JWK Set of their public halves.
fn keygen(dir: &Path, specs: &[&str]) -> String {
    let out = Command::new(python())
        .arg(script("jwk_keygen.py"))
        .arg("--out-dir")
        .arg(dir)
        .args(specs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "jwk_keygen.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let set = String::from_utf8(out.stdout).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&set).unwrap();
    for key in parsed["keys"].as_array().unwrap() {
        assert!(key.get("d").is_none(), "a private member in {key}");
    }
    set
}

/// A gateway with a `jwks`-file client and a `jwks_uri` client (each with an RSA, a P-256
/// and an Ed25519 key of its own), the JWK Set server, and the directory of the keys.
struct Rig {
    gw: Gateway,
    public: String,
    upstream: RecordingUpstream,
    _jwks: JwksServer,
    keys: tempfile::TempDir,
}

impl Rig {
    async fn start() -> Rig {
        let keys = tempfile::tempdir().unwrap();
        let dir = keys.path().to_owned();
        let file_set = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || keygen(&dir, &["f-rsa:RSA", "f-ec:EC", "f-ed:OKP"])
        })
        .await
        .unwrap();
        let uri_set = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || keygen(&dir, &["u-rsa:RSA", "u-ec:EC", "u-ed:OKP"])
        })
        .await
        .unwrap();
        let jwks_file = dir.join("pk-file.jwks.json");
        std::fs::write(&jwks_file, file_set).unwrap();
        let jwks = JwksServer::start(Serve::Set(uri_set, None)).await;
        let upstream = RecordingUpstream::start(Behaviour::Token).await;
        let extra = format!(
            r#"  - client_id: {FILE_CLIENT}
    auth_method: private_key_jwt
    jwks: {{ file: "{file}" }}
  - client_id: {URI_CLIENT}
    auth_method: private_key_jwt
    jwks_uri: "{uri}"
jwks_fetch:
  ca_file: "{ca}"
"#,
            file = jwks_file.display(),
            uri = jwks.url(),
            ca = jwks.pki.ca_file.display(),
        );
        let (listener, public) = public_listener().await;
        let gw = serve_gateway(listener, &public, upstream.addr, &extra).await;
        // The jwks_uri client's keys are in once the start-up fetch is done.
        let series = format!("secretgate_jwks_keys{{client_id=\"{URI_CLIENT}\"}}");
        until_sample(&gw, &series, 3.0).await;
        assert_eq!(jwks.fetches("/jwks.json"), 1, "fetched once, at start-up");
        Rig {
            gw,
            public,
            upstream,
            _jwks: jwks,
            keys,
        }
    }

    fn key(&self, kid: &str) -> PathBuf {
        self.keys.path().join(format!("{kid}.pem"))
    }

    fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.public)
    }

    /// The last forwarded request: no credential in it, and its internal header verified
    /// by PyJWT (started before the request was made, `verifier`), bound to the body the
    /// upstream received, naming `client` and `private_key_jwt`.
    fn check_forwarded(&self, verifier: PyjwtVerify, client: &str, what: &str) {
        let rec = self.upstream.last();
        assert_no_secret(&rec);
        let body = String::from_utf8_lossy(&rec.body).into_owned();
        assert!(
            body.contains(&format!("client_id={client}")),
            "{what}: {body}"
        );
        let token = rec.headers["x-authenticated-client"].to_str().unwrap();
        let (ok, out) = tokio::task::block_in_place(|| verifier.verify_body(token, &rec.body));
        assert!(ok, "{what}: PyJWT: {out}");
        assert_eq!(out["claims"]["client_id"], client, "{what}");
        assert_eq!(out["claims"]["auth_method"], "private_key_jwt", "{what}");
    }

    /// PyJWT ready for the next forwarded header of this gateway.
    fn verifier(&self) -> PyjwtVerify {
        let key_file = self.gw.pki.path().join("signing.key");
        PyjwtVerify::spawn_for_body(
            python(),
            &key_file,
            &["--kid", "k1", "--htm", "POST", "--htu", &self.token_url()],
        )
    }
}

/// Every (client, key, algorithm) the tests run: both registrations, every key type.
fn cases(ed25519_name: &'static str) -> Vec<(&'static str, String, &'static str)> {
    let mut v = Vec::new();
    for (client, p) in [(FILE_CLIENT, "f"), (URI_CLIENT, "u")] {
        for (kid, alg) in [
            ("rsa", "RS256"),
            ("rsa", "PS256"),
            ("ec", "ES256"),
            ("ed", ed25519_name),
        ] {
            v.push((client, format!("{p}-{kid}"), alg));
        }
    }
    v
}

/// Runs a client process; (exit 0, the one JSON line it printed).
async fn run(mut cmd: Command) -> (bool, serde_json::Value) {
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "the client printed {stdout:?}, stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_private_key_jwt_with_every_key_type_from_a_file_and_a_jwks_uri() {
    let rig = Rig::start().await;
    let authlib = |client: &str, key: &Path, alg: &str, kid: &str| {
        let mut cmd = Command::new(python());
        cmd.arg(script("authlib_private_key_jwt.py"))
            .args(["--token-url", &rig.token_url(), "--ca"])
            .arg(&rig.gw.pki.ca_file)
            .args(["--client-id", client, "--key-file"])
            .arg(key)
            .args(["--alg", alg, "--kid", kid]);
        cmd
    };
    for (client, kid, alg) in cases("EdDSA") {
        let what = format!("{client} {kid} {alg}");
        let verifier = rig.verifier();
        let (ok, out) = run(authlib(client, &rig.key(&kid), alg, &kid)).await;
        assert!(ok, "{what}: {out}");
        assert_eq!(out["access_token"], "upstream-token", "{what}");
        rig.check_forwarded(verifier, client, &what);
    }
    let forwarded = rig.upstream.records().len();
    assert_eq!(forwarded, 8);
    // The same library with the other client's key under this client's kid, and an RS256
    // assertion naming the Ed25519 key (an algorithm that does not fit the key): refused,
    // nothing forwarded.
    let (ok, out) = run(authlib(FILE_CLIENT, &rig.key("u-ec"), "ES256", "f-ec")).await;
    assert!(!ok, "another client's key: {out}");
    assert_eq!(out["status"], 401, "{out}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(out["body"].as_str().unwrap()).unwrap()["error"],
        "invalid_client"
    );
    let (ok, out) = run(authlib(URI_CLIENT, &rig.key("u-rsa"), "RS256", "u-ed")).await;
    assert!(!ok, "an RSA signature under the Ed25519 key's kid: {out}");
    assert_eq!(out["status"], 401, "{out}");
    assert_eq!(rig.upstream.records().len(), forwarded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_private_key_jwt_with_every_key_type_from_a_file_and_a_jwks_uri() {
    let dir = tokio::task::spawn_blocking(node_dir).await.unwrap();
    let rig = Rig::start().await;
    // openid-client puts the issuer in `aud` (FAPI 2.0 §5.3.2.1); the gateway's issuer.
    let issuer = rig.gw.config.issuer.clone();
    let node = |client: &str, key: &Path, alg: &str, kid: &str| {
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("openid_client_private_key_jwt.mjs"))
            .args([issuer.as_str(), &rig.token_url(), client])
            .arg(key)
            .args([alg, kid])
            .env("NODE_EXTRA_CA_CERTS", &rig.gw.pki.ca_file);
        cmd
    };
    for (client, kid, alg) in cases("Ed25519") {
        let what = format!("{client} {kid} {alg}");
        let verifier = rig.verifier();
        let (ok, out) = run(node(client, &rig.key(&kid), alg, &kid)).await;
        assert!(ok, "{what}: {out}");
        assert_eq!(out["tokens"]["access_token"], "upstream-token", "{what}");
        rig.check_forwarded(verifier, client, &what);
    }
    let forwarded = rig.upstream.records().len();
    assert_eq!(forwarded, 8);
    let (ok, out) = run(node(URI_CLIENT, &rig.key("f-ed"), "Ed25519", "u-ed")).await;
    assert!(!ok, "another client's key under this client's kid: {out}");
    assert_eq!(out["error"]["status"], 401, "{out}");
    assert_eq!(out["error"]["error"], "invalid_client", "{out}");
    assert_eq!(rig.upstream.records().len(), forwarded);
}
