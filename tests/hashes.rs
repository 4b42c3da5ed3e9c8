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

#[path = "support/python.rs"]
mod python_venv;
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

/// Headers that differ between any two responses whatever they answer.
fn comparable_headers(reply: &Reply) -> Vec<(String, Vec<u8>)> {
    let mut headers: Vec<(String, Vec<u8>)> = reply
        .headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "x-request-id" | "date"))
        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
        .collect();
    headers.sort();
    headers
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_client_and_wrong_secret_look_and_take_the_same() {
    let _alone = ALONE.write().await;
    let secret = "timing-secret-0123456789";
    let hash = argon2id(secret);
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let extra = format!(
        "{}{NO_THROTTLE}hashing: {{ verify_cache_ttl: 0s }}\n",
        hashed_pair(&hash)
    );
    let gw = Gateway::start_with(upstream.addr, &extra).await;
    // One connection, kept alive: no handshake in any measured request.
    let mut c = gw.client(false).await;

    for basic in [true, false] {
        let id = if basic { HASHED_BASIC } else { HASHED_POST };
        let unknown = assert_refused(&upstream, &mut c, basic, "no-such-client", "wrong-0").await;
        let wrong = assert_refused(&upstream, &mut c, basic, id, "wrong-0").await;
        assert_eq!(unknown.status, wrong.status);
        assert_eq!(comparable_headers(&unknown), comparable_headers(&wrong));
        assert_eq!(unknown.body, wrong.body);
    }

    // Alternating, distinct wrong secrets (nothing cached either way), medians of 31.
    const N: usize = 31;
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for i in 0..N + 1 {
        let order = if i % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for is_unknown in order {
            let id = if is_unknown {
                "no-such-client"
            } else {
                HASHED_BASIC
            };
            let req = basic_request(id, &format!("wrong-secret-{i}"));
            let start = Instant::now();
            let reply = c.send(req).await;
            let took = start.elapsed();
            assert_invalid_client(&reply, true);
            // The first round warms up both paths and is not counted.
            if i > 0 {
                if is_unknown {
                    unknown.push(took)
                } else {
                    wrong.push(took)
                }
            }
        }
    }
    let (u, w) = (median(unknown.clone()), median(wrong.clone()));
    let ratio = u.max(w).as_secs_f64() / u.min(w).as_secs_f64();
    eprintln!("median unknown client {u:?}, wrong secret {w:?} (ratio {ratio:.3})");
    assert!(
        ratio <= 1.2,
        "median unknown client {u:?}, wrong secret {w:?} (ratio {ratio:.2})\n\
         unknown: {unknown:?}\nwrong: {wrong:?}"
    );
    // Every one of them was a real verification (the unknown ones against the decoy).
    assert_eq!(
        counter(&gw, MISMATCHED).await,
        (4 + 2 * (N + 1)) as f64,
        "every refusal cost a hash verification"
    );
    assert!(upstream.records().is_empty());
}

// ---------------------------------------------------------------------------------------
// 3. A reload retires a cached verification.

#[tokio::test]
async fn a_reload_that_changes_the_hash_retires_the_cached_secret() {
    let _shared = ALONE.read().await;
    let (a, b) = ("reload-secret-A-0123456789", "reload-secret-B-0123456789");
    let (hash_a, hash_b) = tokio::join!(python_hash(a, "argon2id"), python_hash(b, "argon2id"));
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let pki = Pki::generate();
    let yaml = |hash: &str| {
        config_yaml(
            &pki,
            upstream.addr,
            &format!(
                "{}{NO_THROTTLE}reload: {{ watch: false }}\n",
                client(HASHED_BASIC, "client_secret_basic", &hash_source(hash))
            ),
        )
    };
    let (yaml_a, yaml_b) = (yaml(&hash_a), yaml(&hash_b));
    let gw = Gateway::start_file(pki, &yaml_a).await;
    let needles = [a, b, hash_a.as_str(), hash_b.as_str()];
    let who = (HASHED_BASIC, "client_secret_basic");
    let mut c = gw.client(false).await;
    for _ in 0..2 {
        assert_accepted(
            &gw,
            &upstream,
            &mut c,
            basic_request(HASHED_BASIC, a),
            who,
            &needles,
        )
        .await;
    }
    assert_eq!(counter(&gw, MATCHED).await, 1.0);
    assert_eq!(counter(&gw, CACHE_HIT).await, 1.0, "A is cached");

    std::fs::write(gw.config_file.as_ref().unwrap(), &yaml_b).unwrap();
    gw.reloader.reload().await.expect("the new config reloads");
    // At once, on the same connection: A is refused after a real verification.
    assert_refused(&upstream, &mut c, true, HASHED_BASIC, a).await;
    let metrics = gw.metrics().await;
    assert_eq!(sample(&metrics, CACHE_HIT), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, MISMATCHED), 1.0, "{metrics}");
    for _ in 0..2 {
        assert_accepted(
            &gw,
            &upstream,
            &mut c,
            basic_request(HASHED_BASIC, b),
            who,
            &needles,
        )
        .await;
    }
    assert_eq!(counter(&gw, MATCHED).await, 2.0);
    assert_eq!(counter(&gw, CACHE_HIT).await, 2.0, "B is cached");
    assert_refused(&upstream, &mut c, true, HASHED_BASIC, a).await;
}

// ---------------------------------------------------------------------------------------
// 4. A flood of wrong secrets is bounded and stalls no one.

/// A connection from another loopback address (tests/conformance/rig.rs).
async fn connect_from(gw: &Gateway, ip: [u8; 4]) -> Client {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from((ip, 0)))
        .expect("bind another loopback address");
    let tcp = socket.connect(gw.addr).await.unwrap();
    Client::H1(h1_over_tls(tcp, &gw.pki.ca_der).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_secrets_is_bounded_and_stalls_no_one() {
    let _alone = ALONE.write().await;
    let hash = argon2id("flood-secret-0123456789");
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut upstream = RecordingUpstream::start(Behaviour::Gate(gate.clone())).await;
    let extra = format!(
        "{}{NO_THROTTLE}hashing: {{ max_concurrent: 1, max_queued: 4 }}\n",
        client(HASHED_BASIC, "client_secret_basic", &hash_source(&hash))
    );
    let gw = Gateway::start_with(upstream.addr, &extra).await;
    let mut flood = Vec::new();
    for _ in 0..40 {
        flood.push(gw.client(false).await);
    }
    let mut probe = connect_from(&gw, [127, 0, 0, 2]).await;

    // 40 connections from 127.0.0.1 send wrong secrets back to back until the probe has
    // its answer (or 20 s pass): the pool stays saturated for as long as the probe runs.
    let stop = Arc::new(AtomicBool::new(false));
    let replies: Arc<Mutex<Vec<(Instant, StatusCode, Reply)>>> = Arc::default();
    let (saturated_tx, mut saturated_rx) = tokio::sync::mpsc::unbounded_channel();
    let deadline = Instant::now() + Duration::from_secs(20);
    let tasks: Vec<_> = flood
        .into_iter()
        .enumerate()
        .map(|(n, mut c)| {
            let (stop, replies, saturated_tx) =
                (stop.clone(), replies.clone(), saturated_tx.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
                    let reply = c
                        .send(basic_request(HASHED_BASIC, &format!("wrong-{n}-{i}")))
                        .await;
                    i += 1;
                    let at = Instant::now();
                    if reply.status == StatusCode::SERVICE_UNAVAILABLE {
                        let _ = saturated_tx.send(at);
                    }
                    replies.lock().unwrap().push((at, reply.status, reply));
                }
            })
        })
        .collect();
    drop(saturated_tx);
    saturated_rx
        .recv()
        .await
        .expect("some flood request was refused for saturation");

    // The pool is full: a plaintext client from another address gets through at once.
    let sent = Instant::now();
    let probe = tokio::spawn(async move { probe.send(post_request(POST_ID, POST_SECRET)).await });
    upstream
        .arrivals
        .recv()
        .await
        .expect("the probe reached the upstream");
    let passed = Instant::now();
    // The upstream holds the probe until a flood request is seen refused for saturation
    // after the probe got through: the pool was full while the probe was served, whatever
    // the scheduling of the flood tasks.
    loop {
        let at = saturated_rx
            .recv()
            .await
            .expect("the flood is still refused for saturation");
        if at > passed {
            break;
        }
    }
    gate.notify_one();
    let reply = probe.await.unwrap();
    let answered = Instant::now();
    stop.store(true, Ordering::Release);
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(
        passed - sent < Duration::from_secs(2),
        "the probe took {:?} to get through during the flood",
        passed - sent
    );
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!(
        "the probe took {:?} to get through the flood",
        passed - sent
    );

    let replies = std::mem::take(&mut *replies.lock().unwrap());
    let (mut refused, mut saturated, mut saturated_during_probe) = (0, 0, 0);
    for (at, status, reply) in &replies {
        match *status {
            StatusCode::UNAUTHORIZED => {
                assert_invalid_client(reply, true);
                refused += 1;
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(reply.error(), "temporarily_unavailable");
                assert_eq!(reply.headers["retry-after"], "1");
                saturated += 1;
                if *at > sent && *at < answered {
                    saturated_during_probe += 1;
                }
            }
            other => panic!("flood request answered {other}: {:?}", reply.body),
        }
    }
    assert!(
        saturated_during_probe > 0,
        "the pool was not saturated while the probe ran ({refused} refused, {saturated} saturated)"
    );
    assert!(refused > 0, "some wrong secrets were verified and refused");
    let metrics = gw.metrics().await;
    assert_eq!(sample(&metrics, SATURATED), saturated as f64, "{metrics}");
    assert_eq!(sample(&metrics, MISMATCHED), refused as f64, "{metrics}");
    assert_eq!(
        upstream.records().len(),
        1,
        "only the probe reached the upstream"
    );
}

/// RFC 6749 §2.3.1's brute-force protection comes before any hash work: once a source has
/// used up `throttle.max_failures` on a hashed client, its next requests get 429, a wrong
/// secret and the right one alike, without a verification or a verify-cache lookup.
#[tokio::test]
async fn the_throttle_is_checked_before_any_hash_work() {
    let _shared = ALONE.read().await;
    let secret = "throttled-secret-0123456789";
    let hash = argon2id(secret);
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let extra = format!(
        "{}throttle: {{ max_failures: 3, max_failures_per_address: 100 }}\n",
        hashed_pair(&hash)
    );
    let gw = Gateway::start_with(upstream.addr, &extra).await;
    let hash_work = |metrics: &str| {
        [MATCHED, MISMATCHED, SATURATED, CACHE_HIT, CACHE_MISS].map(|s| sample(metrics, s))
    };
    let mut c = gw.client(false).await;
    for (n, (basic, id)) in [(true, HASHED_BASIC), (false, HASHED_POST)]
        .into_iter()
        .enumerate()
    {
        for i in 0..3 {
            assert_refused(&upstream, &mut c, basic, id, &format!("wrong-{i}")).await;
        }
        let before = hash_work(&gw.metrics().await);
        let verified = 3.0 * (n + 1) as f64;
        assert_eq!(before, [0.0, verified, 0.0, 0.0, verified], "{id}");
        for presented in ["wrong-3", secret] {
            let reply = c.send(request(basic, id, presented)).await;
            assert_eq!(
                reply.status,
                StatusCode::TOO_MANY_REQUESTS,
                "{id}: {:?}",
                reply.body
            );
            assert_eq!(reply.error(), "slow_down");
            assert!(reply.headers.contains_key("retry-after"));
        }
        let metrics = gw.metrics().await;
        assert_eq!(
            hash_work(&metrics),
            before,
            "{id}: a throttled request cost hash work\n{metrics}"
        );
    }
    assert!(upstream.records().is_empty());
}

// ---------------------------------------------------------------------------------------
// 5. The commands.

/// Runs the secretgate binary with `stdin` (if any) as its input; asserts it succeeded.
fn secretgate(args: &[&str], stdin: Option<&str>, envs: &[(&str, &str)]) -> Output {
    let out = secretgate_output(args, stdin, envs);
    assert!(
        out.status.success(),
        "secretgate {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs the secretgate binary with `stdin` (if any) as its input, whatever its exit.
fn secretgate_output(args: &[&str], stdin: Option<&str>, envs: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(stdin) = stdin {
        input.write_all(stdin.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

async fn run_secretgate(args: &'static [&'static str], stdin: Option<String>) -> Output {
    tokio::task::spawn_blocking(move || secretgate(args, stdin.as_deref(), &[]))
        .await
        .unwrap()
}

fn lines(out: &Output) -> Vec<String> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `^sgcs_[A-Za-z0-9_-]{49}$`, and the checksum holds.
fn assert_new_secret_shape(s: &str) {
    let rest = s
        .strip_prefix("sgcs_")
        .unwrap_or_else(|| panic!("no sgcs_ prefix: {s:?}"));
    assert_eq!(rest.len(), 49, "{s:?}");
    assert!(
        rest.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "{s:?}"
    );
    assert!(secretgate::hashes::is_new_secret(s), "checksum: {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_secret_and_hash_secret_commands() {
    let _shared = ALONE.read().await;
    let (one, two) = tokio::join!(
        run_secretgate(&["new-secret"], None),
        run_secretgate(&["new-secret"], None)
    );
    let (one, two) = (lines(&one), lines(&two));
    assert_eq!(one.len(), 1, "{one:?}");
    assert_eq!(two.len(), 1, "{two:?}");
    assert_new_secret_shape(&one[0]);
    assert_new_secret_shape(&two[0]);
    assert_ne!(one[0], two[0], "two runs made the same secret");

    // new-secret --hash: the secret, then its argon2id hash.
    let out = lines(&run_secretgate(&["new-secret", "--hash"], None).await);
    assert_eq!(out.len(), 2, "{out:?}");
    let (new_secret, new_hash) = (out[0].clone(), out[1].clone());
    assert_new_secret_shape(&new_secret);
    assert!(
        new_hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{new_hash}"
    );
    assert!(!new_hash.contains(&new_secret));
    assert!(python_verifies(&new_secret, &new_hash).await, "argon2-cffi");
    assert!(!python_verifies(&one[0], &new_hash).await);

    // hash-secret --alg bcrypt, the secret on stdin without a newline (`echo -n`).
    let bcrypt_secret = "bcrypt-cli-secret-0123456789";
    let out = lines(
        &run_secretgate(
            &["hash-secret", "--alg", "bcrypt"],
            Some(bcrypt_secret.to_owned()),
        )
        .await,
    );
    assert_eq!(out.len(), 1, "{out:?}");
    let bcrypt_hash = out[0].clone();
    assert!(bcrypt_hash.starts_with("$2"), "{bcrypt_hash}");
    assert!(python_verifies(bcrypt_secret, &bcrypt_hash).await, "bcrypt");
    assert!(!python_verifies("bcrypt-cli-secret-012345678", &bcrypt_hash).await);

    // hash-secret --alg pbkdf2-sha256, with the newline `echo` leaves (not hashed).
    let pbkdf2_secret = "pbkdf2-cli-secret-0123456789";
    let out = lines(
        &run_secretgate(
            &["hash-secret", "--alg", "pbkdf2-sha256"],
            Some(format!("{pbkdf2_secret}\n")),
        )
        .await,
    );
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].starts_with("$pbkdf2-sha256$i=600000"), "{}", out[0]);
    assert!(python_verifies(pbkdf2_secret, &out[0]).await, "hashlib");
    assert!(!python_verifies(&format!("{pbkdf2_secret}\n"), &out[0]).await);

    // Both hashes in a gateway: they authenticate their secrets.
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let extra = format!(
        "{}{}{NO_THROTTLE}",
        client(HASHED_BASIC, "client_secret_basic", &hash_source(&new_hash)),
        client(
            HASHED_POST,
            "client_secret_post",
            &hash_source(&bcrypt_hash)
        ),
    );
    let gw = Gateway::start_with(upstream.addr, &extra).await;
    let needles = [
        new_secret.as_str(),
        new_hash.as_str(),
        bcrypt_secret,
        bcrypt_hash.as_str(),
    ];
    let mut c = gw.client(false).await;
    assert_accepted(
        &gw,
        &upstream,
        &mut c,
        basic_request(HASHED_BASIC, &new_secret),
        (HASHED_BASIC, "client_secret_basic"),
        &needles,
    )
    .await;
    assert_accepted(
        &gw,
        &upstream,
        &mut c,
        post_request(HASHED_POST, bcrypt_secret),
        (HASHED_POST, "client_secret_post"),
        &needles,
    )
    .await;
    assert_refused(&upstream, &mut c, true, HASHED_BASIC, &two[0]).await;

    // Bad input: refused with exit status 2, a message saying what is wrong, nothing on
    // stdout, and the refused secret not repeated.
    let long = "x".repeat(80);
    for (args, stdin, says) in [
        (
            &["hash-secret", "--alg", "nope"][..],
            Some("alg-nope-secret-0123456789"),
            &[
                "invalid value 'nope'",
                "argon2id",
                "bcrypt",
                "pbkdf2-sha256",
            ][..],
        ),
        (&["hash-secret"], None, &["error: the secret is empty"]),
        (
            &["hash-secret"],
            Some("\n"),
            &["error: the secret is empty"],
        ),
        (
            &["hash-secret"],
            Some("tab\tin-secret-0123456789"),
            &["error: a client secret is visible ASCII"],
        ),
        (
            &["hash-secret"],
            Some("non-ascii-s\u{e9}cret-0123456789"),
            &["error: a client secret is visible ASCII"],
        ),
        (
            &["hash-secret", "--alg", "bcrypt"],
            Some(long.as_str()),
            &["bcrypt reads at most 72 bytes", "this one is 80 bytes"],
        ),
        (
            &["new-secret", "--alg", "bcrypt"],
            None,
            &["required", "--hash"],
        ),
    ] {
        let owned: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let input = stdin.map(str::to_owned);
        let out = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = owned.iter().map(String::as_str).collect();
            secretgate_output(&args, input.as_deref(), &[])
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {stdin:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} {stdin:?}: printed {out:?}");
        for text in says {
            assert!(stderr.contains(text), "{args:?} {stdin:?}: {stderr}");
        }
        if let Some(secret) = stdin.map(str::trim).filter(|s| !s.is_empty()) {
            assert!(!stderr.contains(secret), "{args:?}: {stderr}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 6. No secret and no hash in the logs.

/// Waits for the binary's admin listener to answer `/readyz` with 200.
async fn wait_ready(admin: std::net::SocketAddr, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::TcpStream::connect(admin).await.is_ok()
            && admin_get(admin, "/readyz").await.0 == 200
        {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("secretgate exited during start-up: {status}");
        }
        assert!(Instant::now() < deadline, "secretgate never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every piece of `hash` worth hiding: the whole, and its last `$` field (the digest).
fn hash_pieces(hash: &str) -> Vec<String> {
    vec![hash.to_owned(), hash.rsplit('$').next().unwrap().to_owned()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_hash_in_the_binarys_trace_logs() {
    let _shared = ALONE.read().await;
    let secret = "logged-secret-never-0123456789";
    let wrong = "wrong-logged-secret-9876543210";
    let (basic_hash, post_hash) = (argon2id(secret), argon2id(secret));
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let pki = Pki::generate();
    let hash_file = pki.path().join("hashed-post.hash");
    std::fs::write(&hash_file, format!("{post_hash}\n")).unwrap();
    let listen = refused_addr().await;
    let admin = refused_addr().await;
    let extra = format!(
        "{}{}{NO_THROTTLE}admin: {{ listen: \"{admin}\" }}\nreload: {{ watch: false }}\n",
        client(
            HASHED_BASIC,
            "client_secret_basic",
            &hash_source(&basic_hash)
        ),
        client(
            HASHED_POST,
            "client_secret_post",
            &format!("{{ hash_file: \"{}\" }}", hash_file.display())
        ),
    );
    let yaml = config_yaml(&pki, upstream.addr, &extra).replacen(
        "listen: \"127.0.0.1:0\"",
        &format!("listen: \"{listen}\""),
        1,
    );
    let config_file = pki.path().join("secretgate.yaml");
    std::fs::write(&config_file, yaml).unwrap();
    let log_file = pki.path().join("stderr.log");
    // A file, not a pipe: trace logs would fill a pipe nobody reads until the end.
    let mut child = Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .args(["run", "--config"])
        .arg(&config_file)
        .env("SECRETGATE_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_file).unwrap())
        .spawn()
        .unwrap();
    wait_ready(admin, &mut child).await;

    let tcp = tokio::net::TcpStream::connect(listen).await.unwrap();
    let mut c = Client::H1(h1_over_tls(tcp, &pki.ca_der).await);
    let mut statuses = Vec::new();
    for (basic, id, s) in [
        (true, HASHED_BASIC, secret),
        (true, HASHED_BASIC, wrong),
        (true, HASHED_BASIC, secret),
        (false, HASHED_POST, secret),
        (false, HASHED_POST, wrong),
        (true, "no-such-client", wrong),
    ] {
        statuses.push(c.send(request(basic, id, s)).await.status.as_u16());
    }
    assert_eq!(statuses, [200, 401, 200, 200, 401, 401]);
    let (_, metrics) = admin_get(admin, "/metrics").await;
    assert_eq!(sample(&metrics, MATCHED), 2.0, "{metrics}");
    assert_eq!(sample(&metrics, CACHE_HIT), 1.0, "{metrics}");
    drop(c);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let logs = std::fs::read_to_string(&log_file).unwrap();
    // The capture works: trace lines of the crates that saw the bytes, and access lines.
    assert!(logs.contains("TRACE"), "no trace lines:\n{logs}");
    assert!(
        logs.matches("secretgate::access").count() >= 6
            && logs.contains(HASHED_BASIC)
            && logs.contains(HASHED_POST),
        "access lines missing:\n{logs}"
    );
    let mut needles = vec![
        secret.to_owned(),
        wrong.to_owned(),
        basic(HASHED_BASIC, secret),
        basic(HASHED_BASIC, wrong),
        basic("no-such-client", wrong),
    ];
    needles.extend(hash_pieces(&basic_hash));
    needles.extend(hash_pieces(&post_hash));
    for needle in &needles {
        let needle = needle.strip_prefix("Basic ").unwrap_or(needle);
        assert!(!logs.contains(needle), "the logs hold `{needle}`");
    }

    // hash-secret: the hash on stdout and nothing else; no secret anywhere.
    let out = tokio::task::spawn_blocking(move || {
        secretgate(
            &["hash-secret"],
            Some(&format!("{secret}\n")),
            &[("SECRETGATE_LOG", "trace")],
        )
    })
    .await
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert!(!stdout.contains(secret), "{stdout}");
    assert!(!stderr.contains(secret), "{stderr}");
    let printed: Vec<&str> = stdout.lines().collect();
    assert_eq!(printed.len(), 1, "{stdout}");
    assert!(printed[0].starts_with("$argon2id$"), "{stdout}");
    let hash = StoredHash::parse(printed[0]).expect("a hash the gateway accepts");
    assert!(hash.verify(secret.as_bytes()));
}

// ---------------------------------------------------------------------------------------
// 7. Config errors name the key and the floor.

fn problems_with(extra: &str) -> Vec<String> {
    let pki = Pki::generate();
    let yaml = config_yaml(&pki, "127.0.0.1:9".parse().unwrap(), extra);
    match secretgate::Config::from_yaml(&yaml, pki.path()) {
        Ok(_) => panic!("accepted:\n{extra}"),
        Err(e) => e.problems(),
    }
}

/// The one problem reported, at `path`.
fn one_problem(extra: &str, path: &str) -> String {
    let problems = problems_with(extra);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let message = problems[0]
        .strip_prefix(&format!("{path}: "))
        .unwrap_or_else(|| panic!("not at {path}: {problems:#?}"));
    message.to_owned()
}

#[test]
fn hash_config_errors_name_the_key_path_and_the_reason() {
    // support's config has three clients: the one added is clients[3].
    let weak_bcrypt = make_hash(b"cost-eight-secret", HashParams::Bcrypt(8)).unwrap();
    let message = one_problem(
        &client(
            HASHED_BASIC,
            "client_secret_basic",
            &hash_source(&weak_bcrypt),
        ),
        "clients[3].secrets[0].hash",
    );
    assert!(
        message.contains("bcrypt cost 8") && message.contains("minimum of 10"),
        "{message}"
    );
    assert!(!message.contains(&weak_bcrypt[7..]), "{message}");

    let weak_pbkdf2 = make_hash(b"few-rounds-secret", HashParams::Pbkdf2(1000)).unwrap();
    let pki = Pki::generate();
    let file = pki.path().join("weak.hash");
    std::fs::write(&file, &weak_pbkdf2).unwrap();
    let message = one_problem(
        &client(
            HASHED_POST,
            "client_secret_post",
            &format!("{{ hash_file: \"{}\" }}", file.display()),
        ),
        "clients[3].secrets[0].hash_file",
    );
    assert!(message.contains("600000"), "{message}");

    let hash = argon2id("jwt-secret-must-stay-plain-0123456789");
    let message = one_problem(
        &client("hashed-jwt", "client_secret_jwt", &hash_source(&hash)),
        "clients[3].secrets[0]",
    );
    assert!(message.contains("client_secret_jwt"), "{message}");

    let message = one_problem(
        &client(
            HASHED_BASIC,
            "client_secret_basic",
            &hash_source("$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$aGFzaA"),
        ),
        "clients[3].secrets[0].hash",
    );
    assert!(message.contains("argon2id"), "{message}");

    // The second secret of a rotation window: its own index.
    let weak_argon = make_hash(b"x", HashParams::Argon2id(4096, 3, 1)).unwrap();
    let message = one_problem(
        &client(
            HASHED_BASIC,
            "client_secret_basic",
            &format!("{}, {}", hash_source(&hash), hash_source(&weak_argon)),
        ),
        "clients[3].secrets[1].hash",
    );
    assert!(message.contains("m=19456,t=2"), "{message}");
}
