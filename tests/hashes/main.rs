//! Hashed client secrets (`secrets: [{ hash }]`, `{ hash_file }`), end to end:
//! - hashes made at test time by the tools people make them with (argon2-cffi, Python's
//!   bcrypt as `$2b$`, `$2a$` and `$2y$`, `htpasswd -B` where installed, hashlib's PBKDF2
//!   as a PHC string, passlib's PBKDF2) authenticate a Basic and a post client over TLS,
//!   a wrong secret is refused, and the verify cache misses then hits;
//! - a client with a hash and a plaintext secret (a migration window) accepts both;
//! - an unknown client and a wrong secret get the same answer, in the same time;
//! - a reload that changes a hash retires a cached verification at once;
//! - a flood of wrong secrets is bounded (503) and does not stall other clients, and a
//!   throttled source costs no hash work;
//! - the `new-secret` and `hash-secret` commands, checked by Python's libraries, and
//!   their refusals of bad input;
//! - no secret and no hash in the binary's logs, at trace level;
//! - config errors name the key path and the floor.
//!
//! Python runs from a virtualenv made under target/ from tests/interop/requirements.txt
//! (pinned), as tests/interop.rs does, in a directory of its own (`hashes-venv`) so that
//! the two test binaries never build one venv at once. Hashes are never committed.

#[path = "../support/python.rs"]
mod python_venv;
#[path = "../support/mod.rs"]
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use secretgate::hashes::{make_hash, HashAlgorithm, HashParams, StoredHash};
use secretgate::{verify_internal_header, Expected};
use support::*;

const INTERNAL: &str = "x-authenticated-client";
const CHALLENGE: &str = "Basic realm=\"secretgate\"";
const GRANT: &str = "grant_type=client_credentials";
const HASHED_BASIC: &str = "hashed-basic";
const HASHED_POST: &str = "hashed-post";
/// Failures are not throttled here (the throttle has tests of its own): it would stop the
/// flood and the timing runs before they show anything.
const NO_THROTTLE: &str = "throttle: { max_failures: 1000, max_failures_per_address: 1000 }\n";

/// The tests that measure time (the timing comparison, the flood) run alone; the others
/// share this lock, so they never run beside those two.
static ALONE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

// ---------------------------------------------------------------------------------------
// Python: argon2-cffi, bcrypt, hashlib, passlib (tests/interop/hash_tool.py).

/// The virtualenv (support/python.rs), made once per process.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| python_venv::venv("hashes-venv"))
}

/// Runs `hash_tool.py cmd` with `request` on stdin (secrets never on a command line).
async fn hash_tool(cmd: &'static str, request: serde_json::Value) -> serde_json::Value {
    tokio::task::spawn_blocking(move || {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/hash_tool.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(request.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "hash_tool.py {cmd} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "hash_tool.py {cmd} printed {:?}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    })
    .await
    .unwrap()
}

/// A hash of `secret` made by Python (`alg` as hash_tool.py names it).
async fn python_hash(secret: &str, alg: &str) -> String {
    let out = hash_tool(
        "make",
        serde_json::json!({ "secret": secret, "algs": [alg] }),
    )
    .await;
    out[alg].as_str().unwrap().to_owned()
}

/// Whether Python's implementation of the hash's algorithm says `secret` matches it.
async fn python_verifies(secret: &str, hash: &str) -> bool {
    let out = hash_tool(
        "verify",
        serde_json::json!({ "secret": secret, "hash": hash }),
    )
    .await;
    out["ok"].as_bool().unwrap()
}

// ---------------------------------------------------------------------------------------
// Config, requests and checks.

/// One more entry for the `clients:` list of support's config.
fn client(id: &str, method: &str, source: &str) -> String {
    format!("  - client_id: {id}\n    auth_method: {method}\n    secrets: [{source}]\n")
}

fn hash_source(hash: &str) -> String {
    format!("{{ hash: \"{hash}\" }}")
}

/// A hashed Basic client and a hashed post client, both with `hash`.
fn hashed_pair(hash: &str) -> String {
    format!(
        "{}{}",
        client(HASHED_BASIC, "client_secret_basic", &hash_source(hash)),
        client(HASHED_POST, "client_secret_post", &hash_source(hash)),
    )
}

fn argon2id(secret: &str) -> String {
    make_hash(
        secret.as_bytes(),
        HashParams::recommended(HashAlgorithm::Argon2id),
    )
    .unwrap()
}

fn basic_request(id: &str, secret: &str) -> Request<Full<Bytes>> {
    post(
        TOKEN_PATH,
        Some("application/x-www-form-urlencoded"),
        &[("authorization", &basic(id, secret))],
        GRANT,
    )
}

fn post_request(id: &str, secret: &str) -> Request<Full<Bytes>> {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", id)
        .append_pair("client_secret", secret)
        .finish();
    form(TOKEN_PATH, &body)
}

fn request(basic: bool, id: &str, secret: &str) -> Request<Full<Bytes>> {
    if basic {
        basic_request(id, secret)
    } else {
        post_request(id, secret)
    }
}

/// Sends `req` on `client`; asserts it was authenticated as `id` with `method` and
/// forwarded with the internal header, and that nothing secret (`needles`: secrets and
/// hashes) reached the upstream.
async fn assert_accepted(
    gw: &Gateway,
    upstream: &RecordingUpstream,
    client: &mut Client,
    req: Request<Full<Bytes>>,
    (id, method): (&str, &str),
    needles: &[&str],
) {
    let before = upstream.records().len();
    let reply = client.send(req).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{id} ({method}): {:?}",
        reply.body
    );
    assert_eq!(
        reply.headers["x-upstream"], "yes",
        "answered by the upstream"
    );
    let records = upstream.records();
    assert_eq!(records.len(), before + 1, "forwarded once");
    let rec = &records[before];
    assert_no_secret(rec);
    let all = rec.everything();
    for needle in needles {
        assert!(!all.contains(needle), "upstream saw `{needle}` in:\n{all}");
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(&rec.body).into_owned().collect();
    assert!(
        params.iter().any(|(n, v)| n == "client_id" && v == id),
        "{params:?}"
    );
    let values: Vec<_> = rec.headers.get_all(INTERNAL).iter().collect();
    assert_eq!(values.len(), 1, "exactly one internal header");
    let url = format!("{PUBLIC_URL}{TOKEN_PATH}");
    let claims = verify_internal_header(
        values[0].to_str().unwrap(),
        &secretgate::verify::keys_of(&gw.config.internal_header.keys),
        &Expected {
            now: Some(now()),
            ..Expected::request(
                "secretgate",
                "legacy-token-service",
                "POST",
                &url,
                rec.uri.query(),
                &rec.body,
            )
        },
    )
    .expect("the internal header verifies");
    assert_eq!(claims.client_id, id);
    assert_eq!(claims.sub, id);
    assert_eq!(claims.auth_method, method);
}

/// 401 invalid_client, written by the gateway, with the Basic challenge iff `basic`.
fn assert_invalid_client(reply: &Reply, basic: bool) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
    assert_eq!(reply.error(), "invalid_client");
    assert!(reply.headers.get("x-upstream").is_none());
    let challenges: Vec<_> = reply.headers.get_all("www-authenticate").iter().collect();
    if basic {
        assert_eq!(challenges, [CHALLENGE]);
    } else {
        assert!(challenges.is_empty(), "{challenges:?}");
    }
}

/// Sends a request that must be refused with 401 invalid_client, and is not forwarded.
async fn assert_refused(
    upstream: &RecordingUpstream,
    client: &mut Client,
    basic: bool,
    id: &str,
    secret: &str,
) -> Reply {
    let before = upstream.records().len();
    let reply = client.send(request(basic, id, secret)).await;
    assert_invalid_client(&reply, basic);
    assert_eq!(upstream.records().len(), before, "a refusal was forwarded");
    reply
}

async fn counter(gw: &Gateway, series: &str) -> f64 {
    sample(&gw.metrics().await, series)
}

const MATCHED: &str = "secretgate_hash_verifications_total{outcome=\"matched\"}";
const MISMATCHED: &str = "secretgate_hash_verifications_total{outcome=\"mismatched\"}";
const SATURATED: &str = "secretgate_hash_verifications_total{outcome=\"saturated\"}";
const CACHE_HIT: &str = "secretgate_hash_verify_cache_total{result=\"hit\"}";
const CACHE_MISS: &str = "secretgate_hash_verify_cache_total{result=\"miss\"}";

// ---------------------------------------------------------------------------------------
// 1. Hashes made by other tools authenticate Basic and post clients.

/// A hash `hash` of `secret` (made by `tool`) authenticates a Basic and a post client; a
/// wrong secret gets 401 with both; a repeated right secret is answered from the cache.
/// The verify cache is looked up before every verification: a miss the first time a
/// secret is seen, a hit when a right one comes back.
async fn hash_authenticates(tool: &str, secret: &str, wrong: &str, hash: &str) {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw = Gateway::start_with(
        upstream.addr,
        &format!("{}{NO_THROTTLE}", hashed_pair(hash)),
    )
    .await;
    let needles = [secret, wrong, hash];
    let mut c = gw.client(false).await;
    assert_accepted(
        &gw,
        &upstream,
        &mut c,
        basic_request(HASHED_BASIC, secret),
        (HASHED_BASIC, "client_secret_basic"),
        &needles,
    )
    .await;
    let metrics = gw.metrics().await;
    assert_eq!(
        (
            sample(&metrics, CACHE_MISS),
            sample(&metrics, CACHE_HIT),
            sample(&metrics, MATCHED)
        ),
        (1.0, 0.0, 1.0),
        "{tool}: the first verification is a cache miss\n{metrics}"
    );
    assert_accepted(
        &gw,
        &upstream,
        &mut c,
        post_request(HASHED_POST, secret),
        (HASHED_POST, "client_secret_post"),
        &needles,
    )
    .await;
    assert_refused(&upstream, &mut c, true, HASHED_BASIC, wrong).await;
    assert_refused(&upstream, &mut c, false, HASHED_POST, wrong).await;
    // The right secret again: remembered, not hashed again.
    assert_accepted(
        &gw,
        &upstream,
        &mut c,
        basic_request(HASHED_BASIC, secret),
        (HASHED_BASIC, "client_secret_basic"),
        &needles,
    )
    .await;
    let metrics = gw.metrics().await;
    assert_eq!(sample(&metrics, MATCHED), 2.0, "{tool}\n{metrics}");
    assert_eq!(sample(&metrics, MISMATCHED), 2.0, "{tool}\n{metrics}");
    assert_eq!(sample(&metrics, CACHE_HIT), 1.0, "{tool}\n{metrics}");
    assert_eq!(sample(&metrics, CACHE_MISS), 4.0, "{tool}\n{metrics}");
}

/// [`hash_authenticates`] with a hash Python made with `alg` (starting with `prefix`).
async fn python_hash_authenticates(alg: &str, prefix: &str) {
    let _shared = ALONE.read().await;
    let secret = format!("{alg}-secret-0123456789");
    let wrong = format!("{alg}-secret-0123456780");
    let hash = python_hash(&secret, alg).await;
    assert!(hash.starts_with(prefix), "{alg}: {hash}");
    hash_authenticates(alg, &secret, &wrong, &hash).await;
}

#[tokio::test]
async fn argon2_cffi_hash_authenticates_basic_and_post() {
    python_hash_authenticates("argon2id", "$argon2id$v=19$m=19456,t=2,p=1$").await;
}

#[tokio::test]
async fn python_bcrypt_hash_authenticates_basic_and_post() {
    python_hash_authenticates("bcrypt", "$2b$10$").await;
}

/// `$2a$`, the older spelling (Python's bcrypt writes it with `prefix=b"2a"`).
#[tokio::test]
async fn python_bcrypt_2a_hash_authenticates_basic_and_post() {
    python_hash_authenticates("bcrypt-2a", "$2a$10$").await;
}

/// `$2y$`, `htpasswd -B`'s spelling: Python's bcrypt hash written with that prefix (and
/// checked by Python's bcrypt under it), so that it runs where htpasswd is not installed.
#[tokio::test]
async fn python_bcrypt_2y_hash_authenticates_basic_and_post() {
    python_hash_authenticates("bcrypt-2y", "$2y$10$").await;
}

/// `htpasswd -nBC 10 -i` (apache2-utils), the secret on stdin. Skipped, saying so, where
/// htpasswd is not installed (the `$2y$` spelling is covered by the test above anyway).
#[tokio::test]
async fn htpasswd_bcrypt_hash_authenticates_basic_and_post() {
    let _shared = ALONE.read().await;
    let secret = "htpasswd-secret-0123456789";
    let wrong = "htpasswd-secret-0123456780";
    let out = tokio::task::spawn_blocking(move || {
        let child = Command::new("htpasswd")
            .args(["-niBC", "10", HASHED_BASIC])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("htpasswd: {e}"),
        };
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(format!("{secret}\n").as_bytes()).unwrap();
        drop(stdin);
        Some(child.wait_with_output().unwrap())
    })
    .await
    .unwrap();
    let Some(out) = out else {
        eprintln!(
            "SKIPPED htpasswd_bcrypt_hash_authenticates_basic_and_post: htpasswd is not \
             installed (apt-get install apache2-utils)"
        );
        return;
    };
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "htpasswd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `user:hash`, then an empty line.
    let line = stdout.lines().next().unwrap_or_default();
    let hash = line
        .strip_prefix(&format!("{HASHED_BASIC}:"))
        .unwrap_or_else(|| panic!("htpasswd printed {stdout:?}"));
    assert!(hash.starts_with("$2y$10$"), "{hash}");
    assert!(python_verifies(secret, hash).await, "Python's bcrypt");
    hash_authenticates("htpasswd", secret, wrong, hash).await;
}

#[tokio::test]
async fn hashlib_pbkdf2_phc_hash_authenticates_basic_and_post() {
    python_hash_authenticates("pbkdf2-phc", "$pbkdf2-sha256$i=600000,l=32$").await;
}

#[tokio::test]
async fn passlib_pbkdf2_hash_authenticates_basic_and_post() {
    python_hash_authenticates("pbkdf2-passlib", "$pbkdf2-sha256$600000$").await;
}

/// A migration window (README "Hashed secrets"): one client with its old plaintext secret
/// and the hash of its new one accepts both, and nothing else, with Basic and with post.
/// The plaintext one is matched without any hash work; the hashed one by a verification.
#[tokio::test]
async fn a_client_with_a_hash_and_a_plaintext_secret_accepts_both() {
    let _shared = ALONE.read().await;
    let (plain, hashed, third) = (
        "migrating-plain-secret-0123456789",
        "migrating-hashed-secret-0123456789",
        "migrating-third-secret-0123456789",
    );
    let hash = argon2id(hashed);
    let both = format!("{}, {{ value: \"{plain}\" }}", hash_source(&hash));
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let extra = format!(
        "{}{}{NO_THROTTLE}",
        client(HASHED_BASIC, "client_secret_basic", &both),
        client(HASHED_POST, "client_secret_post", &both),
    );
    let gw = Gateway::start_with(upstream.addr, &extra).await;
    let needles = [plain, hashed, third, hash.as_str()];
    let mut c = gw.client(false).await;
    for (basic, id, method) in [
        (true, HASHED_BASIC, "client_secret_basic"),
        (false, HASHED_POST, "client_secret_post"),
    ] {
        let before = gw.metrics().await;
        let count = |metrics: &str| {
            [MATCHED, MISMATCHED, CACHE_HIT, CACHE_MISS].map(|series| sample(metrics, series))
        };
        let [matched, mismatched, hits, misses] = count(&before);
        let req = |secret| request(basic, id, secret);
        assert_accepted(&gw, &upstream, &mut c, req(plain), (id, method), &needles).await;
        assert_eq!(
            count(&gw.metrics().await),
            [matched, mismatched, hits, misses],
            "{method}: the plaintext secret cost no hash work"
        );
        assert_accepted(&gw, &upstream, &mut c, req(hashed), (id, method), &needles).await;
        assert_eq!(
            count(&gw.metrics().await),
            [matched + 1.0, mismatched, hits, misses + 1.0],
            "{method}: the hashed secret was verified"
        );
        assert_refused(&upstream, &mut c, basic, id, third).await;
        assert_eq!(
            count(&gw.metrics().await),
            [matched + 1.0, mismatched + 1.0, hits, misses + 2.0],
            "{method}: the third secret was verified, and refused"
        );
    }
    assert_eq!(upstream.records().len(), 4, "two accepted per client");
}

// ---------------------------------------------------------------------------------------
// 2. An unknown client and a wrong secret: the same answer, in the same time.

mod commands;
mod timing_and_load;
