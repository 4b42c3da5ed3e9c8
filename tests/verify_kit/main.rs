//! The verification kit (examples/verify/, issue 21) run for real: each program — Python
//! with PyJWT, Node.js with jose, Java with the JDK alone, Go with its standard library
//! alone — checks headers that a real gateway put on real requests over TLS, signed with
//! HS256, ES256 and EdDSA keys made at run time (`secretgate new-key`, random HMAC
//! keys), keyed from the JWK Set the admin listener serves or from the HMAC key files.
//!
//! Each program must accept the headers of a Basic, a post, a jwt, an mTLS (with `cnf`),
//! a query-bound and a bare-`?` request, printing the client the token service takes,
//! and must refuse, naming the rule (`refused: <check>: ...` on stderr, exit 1): a
//! tampered body, another method, another URL, an added, removed or other query, another
//! issuer or audience, a header from a gateway whose clock is an hour behind (expired) or
//! ahead (issued in the future), an unknown `kid`, forged claims, a header signed by
//! another published key under this `kid`, `alg: none`, a `crit` extension, and for the
//! public keys HS256 keyed with the public key (algorithm confusion: its JWK, its raw
//! bytes, its PEM). No program shares code with the gateway.
//!
//! The programs are built once per run of this binary, under target/: a virtualenv from
//! examples/verify/python/requirements.txt, `npm ci` of examples/verify/node's lock,
//! `javac` (again only when Verify.java changed), `go build` with its cache under
//! target/. A missing python3, node, npm, JDK or Go fails the test with what to install.

#[path = "../support/node.rs"]
mod node_packages;
#[path = "../support/python.rs"]
mod python_venv;
#[path = "../support/mod.rs"]
mod support;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine;
use secretgate::jws;
use support::*;

const INTERNAL: &str = "x-authenticated-client";
const ISS: &str = "secretgate";
const AUD: &str = "legacy-token-service";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn kit_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

// --- The programs, built once per run ---

#[derive(Clone, Copy, Debug)]
enum Lang {
    Python,
    Node,
    Java,
    Go,
}

/// How to start one kit program: the executable and the arguments before the kit's own.
#[derive(Clone)]
struct Program {
    exe: PathBuf,
    prefix: Vec<OsString>,
}

fn program(lang: Lang) -> Program {
    static PROGRAMS: [OnceLock<Program>; 4] = [const { OnceLock::new() }; 4];
    PROGRAMS[lang as usize]
        .get_or_init(|| match lang {
            Lang::Python => Program {
                exe: python_venv::venv_from(
                    "verify-kit-venv",
                    "examples/verify/python/requirements.txt",
                ),
                prefix: vec![root().join("examples/verify/python/verify.py").into()],
            },
            Lang::Node => Program {
                exe: "node".into(),
                prefix: vec![node_packages::modules_from(
                    "verify-kit-node",
                    "examples/verify/node",
                )
                .join("verify.mjs")
                .into()],
            },
            Lang::Java => java(),
            Lang::Go => go(),
        })
        .clone()
}

/// Fails the test, saying what to install, unless `tool` runs.
fn require(tool: &str, version_arg: &str, package: &str) -> String {
    let out = Command::new(tool).arg(version_arg).output().unwrap_or_else(|e| {
        panic!("the verification kit test needs `{tool}`: apt-get install {package} (.ci/run installs it): {e}")
    });
    assert!(
        out.status.success(),
        "`{tool} {version_arg}` failed: install {package}"
    );
    // `java -version` answers on stderr.
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Verify.java compiled by `javac` into target/ (again only when the source changed), run
/// by `java` (17 or later: records, pattern matching, Ed25519).
fn java() -> Program {
    const INSTALL: &str = "default-jdk-headless (a JDK 17 or later)";
    let version = require("javac", "-version", INSTALL);
    let major: u32 = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 17,
        "the Java kit needs JDK 17 or later, found {version:?}: install {INSTALL}"
    );
    require("java", "-version", INSTALL);
    let source = root().join("examples/verify/java/Verify.java");
    let out = kit_dir("verify-kit-java");
    let stamp = out.join("Verify.java.built");
    let wanted = std::fs::read(&source).unwrap();
    if std::fs::read(&stamp).ok() != Some(wanted.clone()) || !out.join("Verify.class").exists() {
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        let status = Command::new("javac")
            .args(["-Xlint:all", "-Werror", "-d"])
            .arg(&out)
            .arg(&source)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "javac examples/verify/java/Verify.java failed"
        );
        std::fs::write(&stamp, wanted).unwrap();
    }
    Program {
        exe: "java".into(),
        // A short-lived JVM: the first compiler tier only starts faster.
        prefix: vec![
            "-XX:TieredStopAtLevel=1".into(),
            "-cp".into(),
            out.into(),
            "Verify".into(),
        ],
    }
}

/// verify.go built by `go build` into target/, with every cache there too, the local
/// toolchain only (never a download) and no module proxy (it has no requirements).
fn go() -> Program {
    require("go", "version", "golang-go");
    let dir = kit_dir("verify-kit-go");
    let exe = dir.join("verify");
    let out = Command::new("go")
        .args(["vet", "."])
        .current_dir(root().join("examples/verify/go"))
        .envs(go_env(&dir))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "go vet examples/verify/go: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("go")
        .args(["build", "-o"])
        .arg(&exe)
        .arg(".")
        .current_dir(root().join("examples/verify/go"))
        .envs(go_env(&dir))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "go build examples/verify/go: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Program {
        exe,
        prefix: Vec::new(),
    }
}

fn go_env(dir: &Path) -> Vec<(&'static str, OsString)> {
    vec![
        ("GOCACHE", dir.join("cache").into()),
        ("GOPATH", dir.join("gopath").into()),
        ("GOTOOLCHAIN", "local".into()),
        ("GOPROXY", "off".into()),
        ("GOFLAGS", "".into()),
        ("GO111MODULE", "on".into()),
    ]
}

// --- The gateway side ---

#[derive(Clone, Copy, Debug, PartialEq)]
enum Alg {
    Hs256,
    Es256,
    EdDsa,
}

impl Alg {
    fn name(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }
}

/// The keys a program is given: the JWK Set file, or HMAC key files by kid.
#[derive(Clone)]
enum Keys {
    Jwks(PathBuf),
    Hmac(Vec<(&'static str, PathBuf)>),
}

/// A request as the upstream received it, and the header the gateway put on it.
#[derive(Clone)]
struct Seen {
    header: String,
    method: String,
    url: String,
    query: Option<String>,
    body: Vec<u8>,
}

impl Seen {
    fn of(rec: &Recorded) -> Seen {
        let values: Vec<_> = rec.headers.get_all(INTERNAL).iter().collect();
        assert_eq!(values.len(), 1, "one internal header");
        Seen {
            header: values[0].to_str().unwrap().to_owned(),
            method: rec.method.to_string(),
            url: format!("{PUBLIC_URL}{}", rec.uri.path()),
            query: rec.uri.query().map(str::to_owned),
            body: rec.body.to_vec(),
        }
    }

    fn payload(&self) -> &str {
        self.header.split('.').nth(1).unwrap()
    }
}

/// What a program must do with a case.
#[derive(Clone)]
enum Outcome {
    /// Exit 0, printing exactly this JSON.
    Accept(serde_json::Value),
    /// Exit 1, `refused: <check>: ...` on stderr.
    Refuse(&'static str),
}

struct Case {
    name: String,
    seen: Seen,
    keys: Keys,
    issuer: &'static str,
    audience: &'static str,
    outcome: Outcome,
}

/// The signing key, another key published beside it (signing nothing), and what to give
/// the programs.
struct KeySetup {
    /// The `internal_header.keys` entries, with absolute paths.
    yaml: String,
    all: Keys,
    /// The other key only: the signing key's kid is unknown to it.
    other_only: Keys,
    /// Signs `input` as the signing key would (`alg`), and as the other key would.
    signing_pem: Option<Vec<u8>>,
    other_pem: Option<Vec<u8>>,
    hmac: Option<(Vec<u8>, Vec<u8>)>,
}

fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    jws::encode(bytes)
}

fn key_setup(dir: &Path, alg: Alg) -> KeySetup {
    match alg {
        Alg::Hs256 => {
            // Random keys, written with the trailing newline an editor leaves (the
            // gateway and every program drop one).
            let (now, old) = (random_secret(), random_secret());
            let (now_file, old_file) = (dir.join("hs-now.key"), dir.join("hs-old.key"));
            std::fs::write(&now_file, format!("{now}\n")).unwrap();
            std::fs::write(&old_file, format!("{old}\r\n")).unwrap();
            KeySetup {
                yaml: format!(
                    "    - {{ id: now, file: \"{}\" }}\n    - {{ id: old, file: \"{}\" }}\n",
                    now_file.display(),
                    old_file.display()
                ),
                all: Keys::Hmac(vec![("now", now_file), ("old", old_file.clone())]),
                other_only: Keys::Hmac(vec![("old", old_file)]),
                signing_pem: None,
                other_pem: None,
                hmac: Some((now.into_bytes(), old.into_bytes())),
            }
        }
        Alg::Es256 | Alg::EdDsa => {
            let other = if alg == Alg::Es256 { "EdDSA" } else { "ES256" };
            new_key(dir, "now.pem", alg.name(), "now");
            let other_jwk = new_key(dir, "next.pem", other, "next");
            let only = dir.join("jwks-next-only.json");
            std::fs::write(
                &only,
                serde_json::json!({ "keys": [other_jwk] }).to_string(),
            )
            .unwrap();
            KeySetup {
                yaml: format!(
                    "    - {{ id: now, algorithm: {}, file: \"{}\" }}\n    - {{ id: next, algorithm: {other}, file: \"{}\", publish_only: true }}\n",
                    alg.name(),
                    dir.join("now.pem").display(),
                    dir.join("next.pem").display()
                ),
                all: Keys::Jwks(dir.join("jwks.json")),
                other_only: Keys::Jwks(only),
                signing_pem: Some(std::fs::read(dir.join("now.pem")).unwrap()),
                other_pem: Some(std::fs::read(dir.join("next.pem")).unwrap()),
                hmac: None,
            }
        }
    }
}

/// The rig's YAML with these keys, `tls.client_auth` (for the mTLS client), a query
/// allowed on protected endpoints, a ten-minute header lifetime (the programs may run
/// long after the requests on a busy machine), and a self-signed certificate client.
fn kit_yaml(pki: &Pki, upstream: std::net::SocketAddr, keys: &str, device: &ClientCert) -> String {
    let clients = format!(
        "  - client_id: {DEVICE}\n    auth_method: self_signed_tls_client_auth\n    certificates: [{{ file: \"{}\" }}]\nprotected_query: allow\n",
        device.cert_file.display()
    );
    let yaml = yaml_with_keys(pki, upstream, keys, &clients);
    let key_line = format!("  key_file: \"{}\"\n", pki.key_file.display());
    assert!(yaml.contains(&key_line));
    yaml.replace(&key_line, &format!("{key_line}  client_auth: {{}}\n"))
        .replacen(
            "  audience: legacy-token-service\n",
            "  audience: legacy-token-service\n  ttl: 10m\n",
            1,
        )
}

const DEVICE: &str = "edge-device";

fn basic_form(path: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut req = form(path, "grant_type=client_credentials&scope=read");
    req.headers_mut().insert(
        "authorization",
        basic(BASIC_ID, BASIC_SECRET).parse().unwrap(),
    );
    req
}

/// A request through `gw`, answered 200, as the upstream saw it.
async fn through(
    gw: &Gateway,
    upstream: &RecordingUpstream,
    req: http::Request<http_body_util::Full<bytes::Bytes>>,
) -> Seen {
    let reply = gw.send(req).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    Seen::of(&upstream.last())
}

fn accepted(client_id: &str, auth_method: &str, cnf: Option<String>) -> Outcome {
    Outcome::Accept(serde_json::json!({
        "client_id": client_id,
        "auth_method": auth_method,
        "cnf": cnf.map(|t| serde_json::json!({ "x5t#S256": t })),
    }))
}

/// `seen`'s claims under another JOSE header, signed by `sign`.
fn resigned(seen: &Seen, header: serde_json::Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> Seen {
    let input = format!("{}.{}", jws::encode(header.to_string()), seen.payload());
    let signature = jws::encode(sign(input.as_bytes()));
    Seen {
        header: format!("{input}.{signature}"),
        ..seen.clone()
    }
}

fn hmac(key: &[u8], input: &[u8]) -> Vec<u8> {
    jws::HmacKey::new(secretgate::oauth::Algorithm::Hs256, key)
        .sign(input)
        .as_ref()
        .to_vec()
}

fn sign_with(pem: &[u8], alg: &str, input: &[u8]) -> Vec<u8> {
    let alg = secretgate::oauth::AsymmetricAlgorithm::from_name(alg).unwrap();
    secretgate::keys::PrivateKey::from_pem(pem)
        .unwrap()
        .sign(alg, input)
        .unwrap()
}

/// The SubjectPublicKeyInfo PEM of a published P-256 or Ed25519 JWK, and its raw public
/// key bytes (the SEC1 point, or the 32 Ed25519 bytes): what an attacker would try as an
/// HMAC key against a verifier that lets the header pick the algorithm.
fn public_key_forms(jwk: &serde_json::Value) -> (Vec<u8>, String) {
    let x = jws::decode(jwk["x"].as_str().unwrap()).unwrap();
    let (raw, prefix) = match jwk["kty"].as_str().unwrap() {
        "EC" => {
            let y = jws::decode(jwk["y"].as_str().unwrap()).unwrap();
            let point = [&[4u8][..], &x, &y].concat();
            (
                point,
                "3059301306072a8648ce3d020106082a8648ce3d030107034200",
            )
        }
        _ => (x, "302a300506032b6570032100"),
    };
    let prefix: Vec<u8> = (0..prefix.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&prefix[i..i + 2], 16).unwrap())
        .collect();
    let der = [prefix, raw.clone()].concat();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    );
    (raw, pem)
}

/// Every case for `alg`: headers from real requests through a gateway (and through two
/// gateways whose clocks are an hour off), and forgeries made from them.
async fn cases(alg: Alg) -> (Vec<Case>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let setup = key_setup(dir.path(), alg);
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let device = ClientCert::make(dir.path(), "device", (DEVICE, "Devices"), None, false);
    let pki = Pki::generate();
    let yaml = kit_yaml(&pki, upstream.addr, &setup.yaml, &device);
    let gw = Gateway::start_yaml(pki, &yaml).await;

    // The keys as an upstream gets them: the JWK Set from the admin listener.
    let (status, served) = admin_get(gw.admin.unwrap(), "/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    std::fs::write(dir.path().join("jwks.json"), &served).unwrap();
    let set: serde_json::Value = serde_json::from_str(&served).unwrap();

    // Real requests, one per way of authenticating, and two with a query.
    let basic = through(&gw, &upstream, basic_form(TOKEN_PATH)).await;
    let post_body =
        format!("grant_type=client_credentials&client_id={POST_ID}&client_secret={POST_SECRET}");
    let post = through(&gw, &upstream, form(TOKEN_PATH, &post_body)).await;
    let jwt = through(
        &gw,
        &upstream,
        form(TOKEN_PATH, &assertion_body(&assertion())),
    )
    .await;
    let mtls_body = format!("grant_type=client_credentials&client_id={DEVICE}");
    let reply = client_with_cert(&gw, Some(&device), false)
        .await
        .send(form(TOKEN_PATH, &mtls_body))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let mtls = Seen::of(&upstream.last());
    let query = "resource=https%3A%2F%2Fapi.example.com%2F&x=a+b";
    let queried = through(&gw, &upstream, basic_form(&format!("{TOKEN_PATH}?{query}"))).await;
    assert_eq!(queried.query.as_deref(), Some(query));
    let bare = through(&gw, &upstream, basic_form(&format!("{TOKEN_PATH}?"))).await;
    assert_eq!(
        bare.query.as_deref(),
        Some(""),
        "a bare `?` reaches the upstream"
    );

    // The same keys on gateways whose clocks are an hour behind and ahead.
    let mut skewed = Vec::new();
    for offset in [-3600, 3600] {
        let pki = Pki::generate();
        let yaml = kit_yaml(&pki, upstream.addr, &setup.yaml, &device);
        let clock = secretgate::Clock::manual(now() + offset);
        let gw = Gateway::start_yaml_at(pki, &yaml, clock).await;
        skewed.push(through(&gw, &upstream, basic_form(TOKEN_PATH)).await);
    }

    let mut out = Vec::new();
    let mut case = |name: &str, seen: &Seen, outcome: Outcome| {
        out.push(Case {
            name: name.to_owned(),
            seen: seen.clone(),
            keys: setup.all.clone(),
            issuer: ISS,
            audience: AUD,
            outcome,
        })
    };
    let with = |seen: &Seen, f: &dyn Fn(&mut Seen)| {
        let mut s = seen.clone();
        f(&mut s);
        s
    };
    let basic_client = || accepted(BASIC_ID, "client_secret_basic", None);
    case("basic", &basic, basic_client());
    case("post", &post, accepted(POST_ID, "client_secret_post", None));
    case("jwt", &jwt, accepted(JWT_ID, "client_secret_jwt", None));
    case(
        "mtls with cnf",
        &mtls,
        accepted(DEVICE, "self_signed_tls_client_auth", Some(device.x5t())),
    );
    case("query bound", &queried, basic_client());
    case("bare ?", &bare, basic_client());

    use Outcome::Refuse;
    let tampered = with(&basic, &|s| s.body.extend_from_slice(b"&scope=admin"));
    case("tampered body", &tampered, Refuse("body_sha256"));
    case(
        "another method",
        &with(&basic, &|s| s.method = "PUT".into()),
        Refuse("htm"),
    );
    let other_url = format!("{PUBLIC_URL}/oauth2/introspect");
    case(
        "another URL",
        &with(&basic, &|s| s.url = other_url.clone()),
        Refuse("htu"),
    );
    case(
        "added query",
        &with(&basic, &|s| s.query = Some("x=1".into())),
        Refuse("query_sha256"),
    );
    case(
        "removed query",
        &with(&queried, &|s| s.query = None),
        Refuse("query_sha256"),
    );
    case(
        "another query",
        &with(&queried, &|s| s.query = Some("x=1".into())),
        Refuse("query_sha256"),
    );
    case(
        "bare ? removed",
        &with(&bare, &|s| s.query = None),
        Refuse("query_sha256"),
    );
    case(
        "expired (gateway an hour behind)",
        &skewed[0],
        Refuse("exp"),
    );
    case(
        "issued in the future (gateway an hour ahead)",
        &skewed[1],
        Refuse("iat"),
    );
    // Claims changed under the signature: another client.
    let mut claims: serde_json::Value =
        serde_json::from_slice(&jws::decode(basic.payload()).unwrap()).unwrap();
    claims["client_id"] = "admin".into();
    claims["sub"] = "admin".into();
    let jose = basic.header.split('.').next().unwrap();
    let signature = basic.header.split('.').nth(2).unwrap();
    let forged = Seen {
        header: format!("{jose}.{}.{signature}", jws::encode(claims.to_string())),
        ..basic.clone()
    };
    case("forged claims", &forged, Refuse("signature"));
    let header = |alg: &str| serde_json::json!({"alg": alg, "typ": "JWT", "kid": "now"});
    let none = Seen {
        header: format!(
            "{}.{}.",
            jws::encode(header("none").to_string()),
            basic.payload()
        ),
        ..basic.clone()
    };
    case("alg none", &none, Refuse("alg"));
    let mut crit = header(alg.name());
    crit["crit"] = serde_json::json!(["x-secretgate"]);
    crit["x-secretgate"] = true.into();
    let crit = match (&setup.hmac, &setup.signing_pem) {
        (Some((now, _)), _) => resigned(&basic, crit, |i| hmac(now, i)),
        (_, Some(pem)) => resigned(&basic, crit, |i| sign_with(pem, alg.name(), i)),
        _ => unreachable!(),
    };
    case("crit extension (validly signed)", &crit, Refuse("crit"));
    match alg {
        Alg::Hs256 => {
            let (now_key, old_key) = setup.hmac.as_ref().unwrap();
            let other = resigned(&basic, header("HS256"), |i| hmac(old_key, i));
            case(
                "signed by the other key under this kid",
                &other,
                Refuse("signature"),
            );
            let swapped = resigned(&basic, header("ES256"), |i| hmac(now_key, i));
            case("alg ES256 on the HMAC key", &swapped, Refuse("alg"));
        }
        Alg::Es256 | Alg::EdDsa => {
            let other_alg = if alg == Alg::Es256 { "EdDSA" } else { "ES256" };
            let pem = setup.other_pem.as_ref().unwrap();
            let other = resigned(&basic, header(other_alg), |i| sign_with(pem, other_alg, i));
            case(
                "signed by the other published key under this kid",
                &other,
                Refuse("alg"),
            );
            // Algorithm confusion (RFC 8725 §2.1): HS256 keyed with the public key.
            let jwk = set["keys"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| k["kid"] == "now")
                .expect("the signing key is published")
                .clone();
            let (raw, pem) = public_key_forms(&jwk);
            for (form, secret) in [
                ("its JWK", jwk.to_string().into_bytes()),
                ("its raw bytes", raw),
                ("its PEM", pem.into_bytes()),
            ] {
                let confused = resigned(&basic, header("HS256"), |i| hmac(&secret, i));
                case(
                    &format!("HS256 keyed with the public key ({form})"),
                    &confused,
                    Refuse("alg"),
                );
            }
        }
    }
    for (name, issuer, audience, check) in [
        ("another issuer", "another-gateway", AUD, "iss"),
        ("another audience", ISS, "another-service", "aud"),
    ] {
        out.push(Case {
            name: name.to_owned(),
            seen: basic.clone(),
            keys: setup.all.clone(),
            issuer,
            audience,
            outcome: Refuse(check),
        });
    }
    out.push(Case {
        name: "unknown kid (keys without the signing key)".to_owned(),
        seen: basic.clone(),
        keys: setup.other_only.clone(),
        issuer: ISS,
        audience: AUD,
        outcome: Refuse("kid"),
    });
    (out, dir)
}

/// Runs `lang`'s program on every case of `alg`; fails listing every case it got wrong.
async fn kit(lang: Lang, alg: Alg) {
    // Built first: a cold build (a venv, npm ci) must not eat into the headers' lifetime.
    let program = tokio::task::spawn_blocking(move || program(lang))
        .await
        .unwrap();
    let (cases, dir) = cases(alg).await;
    let failures = tokio::task::spawn_blocking(move || {
        let mut failures = Vec::new();
        for (i, case) in cases.iter().enumerate() {
            let body = dir.path().join(format!("body-{i}"));
            std::fs::write(&body, &case.seen.body).unwrap();
            let mut cmd = Command::new(&program.exe);
            cmd.args(&program.prefix);
            match &case.keys {
                Keys::Jwks(file) => {
                    cmd.arg("--jwks").arg(file);
                }
                Keys::Hmac(files) => {
                    for (kid, file) in files {
                        let mut spec = OsString::from(format!("{kid}="));
                        spec.push(file);
                        cmd.arg("--hmac").arg(spec);
                    }
                }
            }
            cmd.args(["--issuer", case.issuer, "--audience", case.audience])
                .args(["--method", &case.seen.method, "--url", &case.seen.url])
                .arg("--body-file")
                .arg(&body);
            if let Some(q) = &case.seen.query {
                cmd.args(["--query", q]);
            }
            let out = cmd.arg(&case.seen.header).output().unwrap();
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            let ok = match &case.outcome {
                Outcome::Accept(want) => {
                    out.status.code() == Some(0)
                        && serde_json::from_str::<serde_json::Value>(stdout.trim())
                            .ok()
                            .as_ref()
                            == Some(want)
                }
                Outcome::Refuse(check) => {
                    out.status.code() == Some(1)
                        && stderr.starts_with(&format!("refused: {check}: "))
                        && stdout.is_empty()
                }
            };
            if !ok {
                let want = match &case.outcome {
                    Outcome::Accept(v) => format!("accepted, {v}"),
                    Outcome::Refuse(c) => format!("refused: {c}"),
                };
                failures.push(format!(
                    "{:?} {}: {}: want {want}; got {}, stdout {stdout:?}, stderr {stderr:?}",
                    lang,
                    alg.name(),
                    case.name,
                    out.status
                ));
            }
        }
        failures
    })
    .await
    .unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

mod programs;
