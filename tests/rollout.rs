//! The rollout kit over real TLS against a recording upstream (docs/design.md §9).
//!
//! - Shadow (`rollout: shadow`): a wrong secret goes upstream exactly as sent (body and
//!   `Authorization` byte for byte, no internal header) and is counted as a shadow
//!   failure, not as an enforced one; a right one goes upstream as sent *and* with the
//!   internal header, bound to those bytes; a client's own `rollout` wins over the default
//!   both ways, and a request naming an enforced client is enforced even when it also
//!   names a client in shadow; containment of unprotected paths stays on; a
//!   `Content-Encoding` is still refused (the gateway cannot read it).
//! - Upstream credential: after a client authenticates (Basic, post, a jwt assertion),
//!   the upstream receives the registered legacy credential (Basic or form post) and
//!   nothing of the client's own; the legacy secret is in no log line.
//! - Rate limits: two gateways sharing a real Redis enforce one bucket per client; with
//!   Redis down each falls back to its own.

mod support;

#[path = "support/redis.rs"]
mod redis_server;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use secretgate::{verify_internal_header, Expected};
use support::RecordingRig as Rig;
use support::*;

const INTERNAL: &str = "x-authenticated-client";
const FORM: &str = "application/x-www-form-urlencoded";
const GRANT: &str = "grant_type=client_credentials&scope=read";

impl Rig {
    /// Verifies the internal header `rec` carries against its own body.
    fn claims(&self, rec: &Recorded) -> secretgate::verify::InternalClaims {
        let header = rec.headers[INTERNAL].to_str().unwrap();
        let keys = secretgate::verify::keys_of(&self.gw.config.internal_header.keys);
        let url = format!("{PUBLIC_URL}{TOKEN_PATH}");
        verify_internal_header(
            header,
            &keys,
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
        .expect("a valid header bound to the forwarded body")
    }
}

fn basic_form(id: &str, secret: &str, body: &str) -> Request<Full<Bytes>> {
    post(
        TOKEN_PATH,
        Some(FORM),
        &[("authorization", &basic(id, secret))],
        body.to_owned(),
    )
}

const SHADOW_FAILED: &str = "secretgate_shadow_decisions_total{outcome=\"invalid_client\"}";
const SHADOW_OK: &str = "secretgate_shadow_decisions_total{outcome=\"ok\"}";
const ENFORCED_FAILED: &str =
    "secretgate_authentications_total{method=\"client_secret_basic\",outcome=\"invalid_client\"}";

#[tokio::test]
async fn shadow_forwards_a_wrong_secret_unchanged_and_counts_it() {
    let rig = Rig::start("rollout: shadow\n").await;
    let (reply, forwarded) = rig.send(basic_form(BASIC_ID, "wrong-secret", GRANT)).await;
    assert_eq!(reply.status, StatusCode::OK, "the upstream answered");
    let rec = forwarded.expect("forwarded although authentication failed");
    assert_eq!(&rec.body[..], GRANT.as_bytes(), "body byte for byte");
    assert_eq!(
        rec.headers["authorization"],
        basic(BASIC_ID, "wrong-secret").as_str(),
        "the credential as sent"
    );
    assert!(
        rec.headers.get(INTERNAL).is_none(),
        "no identity for a failure"
    );
    // A post client's secret in the body, wrong: the same.
    let body = format!("{GRANT}&client_id={POST_ID}&client_secret=nope");
    let (_, forwarded) = rig
        .send(post(TOKEN_PATH, Some(FORM), &[], body.clone()))
        .await;
    let rec = forwarded.expect("forwarded");
    assert_eq!(rec.body, body.as_bytes());
    assert!(rec.headers.get(INTERNAL).is_none());
    // Two methods at once: judged invalid_request, forwarded all the same.
    let two = format!("{GRANT}&client_secret={BASIC_SECRET}");
    let (reply, forwarded) = rig.send(basic_form(BASIC_ID, BASIC_SECRET, &two)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(forwarded.expect("forwarded").body, two.as_bytes());

    let metrics = rig.gw.metrics().await;
    assert_eq!(sample(&metrics, SHADOW_FAILED), 2.0, "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            "secretgate_shadow_decisions_total{outcome=\"invalid_request\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(&metrics, ENFORCED_FAILED),
        0.0,
        "nothing was enforced"
    );
}

#[tokio::test]
async fn shadow_forwards_a_right_secret_with_the_signed_header() {
    let rig = Rig::start("rollout: shadow\n").await;
    let (reply, forwarded) = rig.send(basic_form(BASIC_ID, BASIC_SECRET, GRANT)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let rec = forwarded.expect("forwarded");
    assert_eq!(
        &rec.body[..],
        GRANT.as_bytes(),
        "no client_id added, nothing removed"
    );
    assert_eq!(
        rec.headers["authorization"],
        basic(BASIC_ID, BASIC_SECRET).as_str(),
        "the secret is still there: the token service still checks it in shadow"
    );
    let claims = rig.claims(&rec);
    assert_eq!(claims.client_id, BASIC_ID);
    assert_eq!(claims.auth_method, "client_secret_basic");

    // A jwt client: the assertion is forwarded too, and the header binds the same body.
    let body = assertion_body(&assertion());
    let (_, forwarded) = rig
        .send(post(TOKEN_PATH, Some(FORM), &[], body.clone()))
        .await;
    let rec = forwarded.expect("forwarded");
    assert_eq!(rec.body, body.as_bytes());
    assert_eq!(rig.claims(&rec).client_id, JWT_ID);
    // A forged internal header is still stripped, and replaced only by the gateway's.
    let mut forged = basic_form(BASIC_ID, "wrong", GRANT);
    forged
        .headers_mut()
        .insert(INTERNAL, "forged".parse().unwrap());
    let (_, forwarded) = rig.send(forged).await;
    assert!(forwarded
        .expect("forwarded")
        .headers
        .get(INTERNAL)
        .is_none());

    let metrics = rig.gw.metrics().await;
    assert_eq!(sample(&metrics, SHADOW_OK), 2.0, "{metrics}");
}

/// The client's `rollout` wins over the default, both ways.
#[tokio::test]
async fn a_clients_rollout_wins_over_the_default() {
    // Default enforce; `trial` in shadow.
    let rig = Rig::start(
        "  - client_id: trial
    auth_method: client_secret_basic
    secrets: [{ value: \"trial-secret-0123\" }]
    rollout: shadow
",
    )
    .await;
    let (reply, forwarded) = rig.send(basic_form("trial", "wrong", GRANT)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(forwarded.is_some(), "trial is in shadow");
    let (reply, forwarded) = rig.send(basic_form(BASIC_ID, "wrong", GRANT)).await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "billing is enforced"
    );
    assert!(forwarded.is_none());
    // An unknown client takes the default (enforce).
    let (reply, forwarded) = rig.send(basic_form("nobody", "wrong", GRANT)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(forwarded.is_none());
    // Naming an enforced client next to one in shadow: enforced.
    let both = format!("{GRANT}&client_id={BASIC_ID}");
    let (reply, forwarded) = rig.send(basic_form("trial", "wrong", &both)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    assert!(forwarded.is_none());
    let metrics = rig.gw.metrics().await;
    assert_eq!(sample(&metrics, SHADOW_FAILED), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, ENFORCED_FAILED), 2.0, "{metrics}");

    // Default shadow; `strict` enforced.
    let rig = Rig::start(
        "  - client_id: strict
    auth_method: client_secret_basic
    secrets: [{ value: \"strict-secret-0123\" }]
    rollout: enforce
rollout: shadow
",
    )
    .await;
    let (reply, forwarded) = rig.send(basic_form("strict", "wrong", GRANT)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "strict is enforced");
    assert!(forwarded.is_none());
    let (reply, forwarded) = rig.send(basic_form(BASIC_ID, "wrong", GRANT)).await;
    assert_eq!(reply.status, StatusCode::OK, "billing takes the default");
    assert!(forwarded.is_some());
    // An unknown client takes the default (shadow), and a case-folded spelling of an
    // enforced id counts as that id.
    let (_, forwarded) = rig.send(basic_form("nobody", "wrong", GRANT)).await;
    assert!(forwarded.is_some());
    let (reply, forwarded) = rig.send(basic_form("STRICT", "wrong", GRANT)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(forwarded.is_none());
}

#[tokio::test]
async fn containment_and_unreadable_bodies_stay_enforced_in_shadow() {
    let rig = Rig::start("rollout: shadow\n").await;
    // Unprotected paths still refuse client credentials.
    let (reply, forwarded) = rig
        .send(
            Request::get("/userinfo")
                .header("authorization", basic(BASIC_ID, BASIC_SECRET))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(forwarded.is_none());
    let body = format!("client_id={POST_ID}&client_secret={POST_SECRET}");
    let (reply, forwarded) = rig.send(post("/register", Some(FORM), &[], body)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(forwarded.is_none());
    // A body the gateway cannot read is refused in shadow too.
    let (reply, forwarded) = rig
        .send(post(
            TOKEN_PATH,
            Some(FORM),
            &[
                ("authorization", &basic(BASIC_ID, BASIC_SECRET)),
                ("content-encoding", "gzip"),
            ],
            "not really gzip",
        ))
        .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(forwarded.is_none());
}

/// A legacy secret made at run time, with characters that must be form-encoded (`:`, `/`,
/// `+`, space, `%`), and its form encoding written out by hand.
fn legacy_secret() -> (String, String) {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let tag = format!("{nonce:x}{:x}", std::process::id());
    (
        format!("legacy:{tag}/+ %"),
        format!("legacy%3A{tag}%2F%2B+%25"),
    )
}

/// Two clients that authenticate their own way, each presenting a legacy credential
/// upstream: `gold` posts its own secret and gets Basic upstream; `fapi` sends an HS256
/// assertion and gets form post upstream.
const GOLD_SECRET: &str = "gold-own-secret-0123456789";
const FAPI_SECRET: &str = "fapi-own-secret-0123456789abcdefghij";

async fn credential_rig() -> (Rig, String, String) {
    let (secret, encoded) = legacy_secret();
    let pki = Pki::generate();
    std::fs::write(pki.path().join("legacy.secret"), format!("{secret}\n")).unwrap();
    let extra = format!(
        "  - client_id: gold
    auth_method: client_secret_post
    secrets: [{{ value: \"{GOLD_SECRET}\" }}]
    upstream_credential: {{ method: client_secret_basic, secret: {{ file: legacy.secret }} }}
  - client_id: fapi
    auth_method: client_secret_jwt
    secrets: [{{ value: \"{FAPI_SECRET}\" }}]
    upstream_credential: {{ method: client_secret_post, secret: {{ file: legacy.secret }} }}
  - client_id: plain
    auth_method: client_secret_basic
    secrets: [{{ value: \"{GOLD_SECRET}\" }}]
    upstream_credential: {{ method: client_secret_post, secret: {{ file: legacy.secret }} }}
"
    );
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw = Gateway::start_with_pki(pki, upstream.addr, &extra).await;
    (Rig { upstream, gw }, secret, encoded)
}

fn fapi_assertion() -> String {
    let mut claims = jwt_claims();
    claims["iss"] = "fapi".into();
    claims["sub"] = "fapi".into();
    mint(hs256(), claims, FAPI_SECRET.as_bytes())
}

#[tokio::test]
async fn the_upstream_credential_replaces_the_clients_own_basic_form() {
    let (rig, secret, encoded) = credential_rig().await;
    let body = format!("{GRANT}&client_id=gold&client_secret={GOLD_SECRET}");
    let (reply, forwarded) = rig.send(post(TOKEN_PATH, Some(FORM), &[], body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let rec = forwarded.expect("forwarded");
    // RFC 6749 §2.3.1, written out: base64(urlencode(id) ":" urlencode(secret)).
    use base64::Engine;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("gold:{encoded}"))
    );
    assert_eq!(rec.headers["authorization"], expected.as_str());
    assert_eq!(rec.headers.get_all("authorization").iter().count(), 1);
    assert_eq!(
        &rec.body[..],
        format!("{GRANT}&client_id=gold").as_bytes(),
        "the client's own secret is gone, nothing else changed"
    );
    let everything = rec.everything();
    assert!(!everything.contains(GOLD_SECRET), "{everything}");
    assert!(!everything.contains(&secret), "only in Basic, encoded");
    assert_eq!(rig.claims(&rec).client_id, "gold", "still signed");
    // The client sees nothing of it.
    assert!(!String::from_utf8_lossy(&reply.body).contains(&encoded));
    // A client without an upstream credential is untouched.
    let (_, forwarded) = rig.send(basic_form(BASIC_ID, BASIC_SECRET, GRANT)).await;
    assert_no_secret(&forwarded.expect("forwarded"));
    // A wrong own secret: refused as always, nothing forwarded.
    let body = format!("{GRANT}&client_id=gold&client_secret=wrong");
    let (reply, forwarded) = rig.send(post(TOKEN_PATH, Some(FORM), &[], body)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(forwarded.is_none());
}

#[tokio::test]
async fn the_upstream_credential_replaces_an_assertion_post_form() {
    let (rig, secret, encoded) = credential_rig().await;
    let assertion = fapi_assertion();
    let (reply, forwarded) = rig
        .send(form(TOKEN_PATH, &assertion_body(&assertion)))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let rec = forwarded.expect("forwarded");
    assert_eq!(
        &rec.body[..],
        format!("grant_type=client_credentials&client_id=fapi&client_secret={encoded}").as_bytes()
    );
    assert!(rec.headers.get("authorization").is_none());
    let everything = rec.everything();
    for own in [assertion.as_str(), "client_assertion", FAPI_SECRET, &secret] {
        assert!(!everything.contains(own), "{own} in {everything}");
    }
    // body_sha256 is over the body as forwarded, legacy secret included.
    let claims = rig.claims(&rec);
    assert_eq!(claims.client_id, "fapi");
    assert_eq!(claims.auth_method, "client_secret_jwt");
    // A Basic client whose legacy credential is a form post: the rebuilt form gets it.
    let (_, forwarded) = rig.send(basic_form("plain", GOLD_SECRET, GRANT)).await;
    let rec = forwarded.expect("forwarded");
    assert_eq!(
        &rec.body[..],
        format!("{GRANT}&client_id=plain&client_secret={encoded}").as_bytes()
    );
    assert!(
        rec.headers.get("authorization").is_none(),
        "its own Basic is gone"
    );
    assert_eq!(rig.claims(&rec).client_id, "plain");
    // A body that is not a form cannot carry it: refused, nothing forwarded.
    let (reply, forwarded) = rig
        .send(post(
            TOKEN_PATH,
            Some("application/json"),
            &[("authorization", &basic("plain", GOLD_SECRET))],
            "{}",
        ))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(forwarded.is_none());
}

#[test]
fn an_upstream_credential_needs_an_enforced_confidential_client() {
    let pki = Pki::generate();
    std::fs::write(pki.path().join("legacy.secret"), "x-legacy\n").unwrap();
    let yaml = config_yaml(
        &pki,
        "127.0.0.1:9".parse().unwrap(),
        "  - client_id: spa
    auth_method: none
    upstream_credential: { method: client_secret_basic, secret: { file: legacy.secret } }
  - client_id: trial
    auth_method: client_secret_basic
    secrets: [{ value: \"trial-secret-0123\" }]
    rollout: shadow
    upstream_credential: { method: client_secret_post, secret: { file: legacy.secret } }
",
    );
    let problems = secretgate::Config::from_yaml(&yaml, pki.path())
        .unwrap_err()
        .problems();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("clients[3].upstream_credential: client `spa` is public")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("clients[4].upstream_credential: client `trial` is in shadow")),
        "{problems:#?}"
    );
    assert!(
        problems.iter().all(|p| !p.contains("x-legacy")),
        "no secret in a problem"
    );
}

// ---------------------------------------------------------------------------------------
// Rate limits. `per` is an hour everywhere: no token comes back during a test, so the
// counts below do not depend on timing.

fn redis_state(url: &str) -> String {
    format!("state:\n  backend: redis\n  redis:\n    url: \"{url}\"\n    timeout: 500ms\n")
}

const RATE_LIMITED: &str = "secretgate_rate_limited_total{client_id=\"billing\"}";
const UNLIMITED: &str = "  - client_id: free
    auth_method: client_secret_basic
    secrets: [{ value: \"free-secret-0123\" }]
    rate_limit: off
";

fn billing() -> Request<Full<Bytes>> {
    basic_form(BASIC_ID, BASIC_SECRET, GRANT)
}

fn assert_slow_down(reply: &Reply) {
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        reply.body
    );
    assert_eq!(reply.error(), "slow_down");
    // One token comes back every 1200 s (3 per hour).
    let retry: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1200).contains(&retry), "Retry-After {retry}");
}

#[tokio::test]
async fn two_gateways_sharing_redis_enforce_one_bucket_per_client() {
    let redis = redis_server::RedisServer::start();
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    // Capacity 4 (3 + burst 1) for every client but `free`.
    let extra = format!(
        "{UNLIMITED}rate_limit: {{ requests: 3, per: 1h, burst: 1 }}\n{}",
        redis_state(&redis.url())
    );
    let a = Gateway::start_with(upstream.addr, &extra).await;
    let b = Gateway::start_with(upstream.addr, &extra).await;
    for gw in [&a, &b, &a, &b] {
        assert_eq!(gw.send(billing()).await.status, StatusCode::OK);
    }
    // The fifth, on either replica, is over the combined count.
    assert_slow_down(&a.send(billing()).await);
    assert_slow_down(&b.send(billing()).await);
    assert_eq!(upstream.records().len(), 4, "refused before the upstream");
    // A failed authentication is no rate-limit matter: it is refused for what it is.
    let reply = a.send(basic_form(BASIC_ID, "wrong", GRANT)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // Another client has its own bucket, and `rate_limit: off` turns the default off.
    let reports = format!("{GRANT}&client_id={POST_ID}&client_secret={POST_SECRET}");
    assert_eq!(
        a.send(form(TOKEN_PATH, &reports)).await.status,
        StatusCode::OK
    );
    for gw in [&a, &b, &a, &b, &a, &b] {
        let reply = gw.send(basic_form("free", "free-secret-0123", GRANT)).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    for gw in [&a, &b] {
        let metrics = gw.metrics().await;
        assert_eq!(sample(&metrics, RATE_LIMITED), 1.0, "{metrics}");
        assert_eq!(
            sample(&metrics, "secretgate_rate_limit_local_fallbacks_total"),
            0.0
        );
        assert!(!metrics.contains("client_id=\"free\""));
    }
}

#[tokio::test]
async fn with_redis_down_each_gateway_limits_on_its_own() {
    let mut redis = redis_server::RedisServer::start();
    let url = redis.url();
    redis.kill();
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let extra = format!(
        "rate_limit: {{ requests: 2, per: 1h }}\n{}",
        redis_state(&url)
    );
    let a = Gateway::start_with(upstream.addr, &extra).await;
    let b = Gateway::start_with(upstream.addr, &extra).await;
    for gw in [&a, &a, &b, &b] {
        assert_eq!(gw.send(billing()).await.status, StatusCode::OK);
    }
    for gw in [&a, &b] {
        let reply = gw.send(billing()).await;
        assert_eq!(
            reply.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{:?}",
            reply.body
        );
        let metrics = gw.metrics().await;
        assert!(
            sample(&metrics, "secretgate_rate_limit_local_fallbacks_total") >= 3.0,
            "{metrics}"
        );
        assert_eq!(sample(&metrics, RATE_LIMITED), 1.0);
    }
    assert_eq!(upstream.records().len(), 4);
}

/// In shadow nothing is refused for throttling reasons: the rate limit neither counts nor
/// refuses a client in shadow.
#[tokio::test]
async fn a_client_in_shadow_is_not_rate_limited() {
    let rig = Rig::start("rollout: shadow\nrate_limit: { requests: 1, per: 1h }\n").await;
    for _ in 0..3 {
        let (reply, forwarded) = rig.send(billing()).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(forwarded.expect("forwarded").headers.contains_key(INTERNAL));
    }
}

/// `check` says it loudly while any client is in shadow, naming the clients.
#[test]
fn check_warns_loudly_while_a_client_is_in_shadow() {
    let pki = Pki::generate();
    let run = |extra: &str| {
        let path = pki.path().join("shadow.yaml");
        std::fs::write(
            &path,
            config_yaml(&pki, "127.0.0.1:9".parse().unwrap(), extra),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_secretgate"))
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = run("  - client_id: trial
    auth_method: client_secret_basic
    secrets: [{ value: \"trial-secret-0123\" }]
    rollout: shadow
");
    assert!(
        stderr.contains(
            "warning: SHADOW MODE (rollout: shadow): NOT ENFORCED for 1 client(s) [trial]"
        ),
        "{stderr}"
    );
    assert!(!run("").contains("SHADOW"));
}
