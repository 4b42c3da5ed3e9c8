//! `private_key_jwt` clients registered with a `jwks_uri` (docs/design.md §2.14), against a
//! JWK Set server on HTTPS with a CA of its own (tests/support/jwks_server.rs) that counts
//! the gateway's fetches: rotation by one refetch, at most one refetch per
//! `min_refetch_interval`, the last good set kept when the server is down or answers too
//! much, `503` (not counted by the throttle) for a client whose keys were never fetched,
//! no redirect followed, keys the gateway cannot accept dropped and counted, a
//! `Cache-Control: max-age` scheduling the next fetch within its bounds, and a reload
//! keeping the set of an unchanged URI. Keys are made at run time
//! (tests/support/client_keys.rs).

#[path = "support/client_keys.rs"]
mod client_keys;
#[path = "support/jwks_server.rs"]
mod jwks_server;
mod support;

use client_keys::{jwk_set, ClientKey};
use jwks_server::{JwksServer, Serve};
use support::*;

const CLIENT: &str = "pk-uri";
const FETCHED: &str = "/jwks.json";

fn keys_series(client: &str) -> String {
    format!("secretgate_jwks_keys{{client_id=\"{client}\"}}")
}

fn fetches_series(outcome: &str) -> String {
    format!("secretgate_jwks_fetches_total{{outcome=\"{outcome}\"}}")
}

/// `CLIENT` at `uri` trusted through `server`'s CA, with these `jwks_fetch` settings
/// (lines indented 2), and anything `more`.
fn uri_client(uri: &str, server: &JwksServer, fetch: &str, more: &str) -> String {
    format!(
        "  - client_id: {CLIENT}\n    auth_method: private_key_jwt\n    jwks_uri: \"{uri}\"\n{more}jwks_fetch:\n  ca_file: \"{}\"\n{fetch}",
        server.pki.ca_file.display()
    )
}

async fn send(gw: &Gateway, assertion: &str) -> Reply {
    gw.send(form(TOKEN_PATH, &assertion_body(assertion))).await
}

fn assert_status(reply: &Reply, status: u16, error: &str, what: &str) {
    assert_eq!(reply.status, status, "{what}: {:?}", reply.body);
    if !error.is_empty() {
        assert_eq!(reply.error(), error, "{what}");
    }
}

/// The keys the tests rotate through.
fn keys(n: usize) -> (Vec<ClientKey>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let keys = (0..n)
        .map(|i| ClientKey::ec(dir.path(), &format!("k{i}")))
        .collect();
    (keys, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_kid_is_fetched_once_and_further_unknown_kids_wait_for_the_interval() {
    let (k, _dir) = keys(3);
    let server = JwksServer::start(Serve::Set(jwk_set(&[&k[0]]), None)).await;
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let extra = uri_client(
        &server.url(),
        &server,
        "  refresh: 1h\n  min_refetch_interval: 1h\n",
        "",
    );
    let gw = Gateway::start_with(upstream.addr, &extra).await;
    until_sample(&gw, &keys_series(CLIENT), 1.0).await;
    assert_status(&send(&gw, &k[0].assertion(CLIENT)).await, 200, "", "k0");
    assert_eq!(server.fetches(FETCHED), 1, "the start-up fetch only");

    // The client rotates: k1 is published, then used. One fetch, right away (the start-up
    // fetch a moment ago does not count against min_refetch_interval).
    server.serve(Serve::Set(jwk_set(&[&k[0], &k[1]]), None));
    assert_status(&send(&gw, &k[1].assertion(CLIENT)).await, 200, "", "k1");
    assert_eq!(server.fetches(FETCHED), 2, "one refetch for the new kid");
    let m = gw.metrics().await;
    assert_eq!(sample(&m, &keys_series(CLIENT)), 2.0, "{m}");
    assert_eq!(sample(&m, &fetches_series("ok")), 2.0, "{m}");

    // Another new kid inside the interval: no fetch, refused; the known keys still work.
    server.serve(Serve::Set(jwk_set(&[&k[0], &k[1], &k[2]]), None));
    for _ in 0..3 {
        assert_status(
            &send(&gw, &k[2].assertion(CLIENT)).await,
            401,
            "invalid_client",
            "k2 inside the interval",
        );
    }
    assert_eq!(
        server.fetches(FETCHED),
        2,
        "no fetch inside min_refetch_interval"
    );
    assert_status(
        &send(&gw, &k[0].assertion(CLIENT)).await,
        200,
        "",
        "k0 again",
    );
    assert_status(
        &send(&gw, &k[1].assertion(CLIENT)).await,
        200,
        "",
        "k1 again",
    );
    assert_eq!(upstream.records().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_unknown_kids_share_one_fetch() {
    let (k, _dir) = keys(2);
    let server = JwksServer::start(Serve::Set(jwk_set(&[&k[0]]), None)).await;
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let extra = uri_client(
        &server.url(),
        &server,
        "  refresh: 1h\n  min_refetch_interval: 1h\n",
        "",
    );
    let gw = Gateway::start_with(upstream.addr, &extra).await;
    until_sample(&gw, &keys_series(CLIENT), 1.0).await;
    server.serve(Serve::Set(jwk_set(&[&k[0], &k[1]]), None));
    let sends = (0..8).map(|_| {
        let a = k[1].assertion(CLIENT);
        let gw = &gw;
        async move { send(gw, &a).await.status }
    });
    let statuses = futures_util::future::join_all(sends).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(server.fetches(FETCHED), 2, "one refetch for 8 requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_uri_that_goes_down_keeps_the_last_good_set() {
    let (k, _dir) = keys(2);
    let server = JwksServer::start(Serve::Set(jwk_set(&[&k[0]]), None)).await;
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let extra = uri_client(
        &server.url(),
        &server,
        "  refresh: 1s\n  min_refetch_interval: 1s\n  timeout: 1s\n",
        "",
    );
    let gw = Gateway::start_with(upstream.addr, &extra).await;
    until_sample(&gw, &keys_series(CLIENT), 1.0).await;
    server.stop();
    // The next scheduled fetch fails: the port refuses connections.
    let m = until_sample(&gw, &fetches_series("unreachable"), 1.0).await;
    assert_eq!(
        sample(&m, &keys_series(CLIENT)),
        1.0,
        "the set is kept: {m}"
    );
    assert_status(
        &send(&gw, &k[0].assertion(CLIENT)).await,
        200,
        "",
        "k0, server down",
    );
    // A kid the last good set does not have: refused (the refetch fails too).
    assert_status(
        &send(&gw, &k[1].assertion(CLIENT)).await,
        401,
        "invalid_client",
        "k1, server down",
    );
    assert_status(
        &send(&gw, &k[0].assertion(CLIENT)).await,
        200,
        "",
        "k0 again",
    );
    assert_eq!(upstream.records().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_jwks_uri_at_start_up_is_503_for_that_client_only() {
    let (k, _dir) = keys(2);
    // A server whose CA the gateway trusts, for the ca_file; the client's URI is a port
    // where nothing listens.
    let server = JwksServer::start(Serve::Set(jwk_set(&[&k[0]]), None)).await;
    let nowhere = refused_addr().await;
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    // A second private_key_jwt client, with a static set, must not be affected.
    let more = format!(
        "  - client_id: pk-static\n    auth_method: private_key_jwt\n    jwks: {{ value: '{}' }}\nthrottle:\n  max_failures: 3\n  max_failures_per_address: 3\n",
        jwk_set(&[&k[1]])
    );
    let extra = uri_client(
        &format!("https://localhost:{}/jwks.json", nowhere.port()),
        &server,
        "  refresh: 1h\n  min_refetch_interval: 1h\n",
        &more,
    );
    let gw = Gateway::start_with(upstream.addr, &extra).await;
    until_sample(&gw, &fetches_series("unreachable"), 1.0).await;
    // More requests than the throttle allows failures: each a 503, never a 429.
    for i in 0..6 {
        let reply = send(&gw, &k[0].assertion(CLIENT)).await;
        assert_status(
            &reply,
            503,
            "temporarily_unavailable",
            &format!("request {i}"),
        );
        assert_eq!(reply.headers["retry-after"], "1");
    }
    // Other clients from the same address: unaffected, and not throttled.
    assert_status(
        &send(&gw, &k[1].assertion("pk-static")).await,
        200,
        "",
        "static",
    );
    let basic_ok = post(
        TOKEN_PATH,
        Some("application/x-www-form-urlencoded"),
        &[("authorization", &basic(BASIC_ID, BASIC_SECRET))],
        "grant_type=client_credentials",
    );
    assert_status(&gw.send(basic_ok).await, 200, "", "basic");
    // The throttle is on: three real failures, and the fourth request is throttled.
    let bad = || {
        post(
            TOKEN_PATH,
            Some("application/x-www-form-urlencoded"),
            &[("authorization", &basic(BASIC_ID, "wrong-secret-0123456789"))],
            "grant_type=client_credentials",
        )
    };
    for _ in 0..3 {
        assert_status(&gw.send(bad()).await, 401, "invalid_client", "wrong secret");
    }
    assert_status(&gw.send(bad()).await, 429, "slow_down", "throttled");
    assert_eq!(upstream.records().len(), 2);
    let m = gw.metrics().await;
    let series =
        "secretgate_authentications_total{method=\"private_key_jwt\",outcome=\"unavailable\"}";
    assert_eq!(sample(&m, series), 6.0, "{m}");
    assert_eq!(server.fetches(FETCHED), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_not_followed_and_counts_as_a_failed_fetch() {
    let (k, _dir) = keys(1);
    let server = JwksServer::start(Serve::Set(jwk_set(&[&k[0]]), None)).await;
    server.serve(Serve::Redirect);
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let extra = uri_client(&server.url(), &server, "  refresh: 1h\n", "");
    let gw = Gateway::start_with(upstream.addr, &extra).await;
    let m = until_sample(&gw, &fetches_series("redirect"), 1.0).await;
    assert_eq!(sample(&m, &fetches_series("ok")), 0.0, "{m}");
    let reply = send(&gw, &k[0].assertion(CLIENT)).await;
    assert_status(&reply, 503, "temporarily_unavailable", "never fetched");
    assert_eq!(
        server.fetches("/moved.json"),
        0,
        "the redirect was followed"
    );
    assert_eq!(upstream.records().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_set_is_refused_and_the_last_good_set_stays() {
    let (k, _dir) = keys(2);
    let server = JwksServer::start(Serve::Set(jwk_set(&[&k[0]]), None)).await;
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let extra = uri_client(
        &server.url(),
        &server,
        "  refresh: 1h\n  min_refetch_interval: 1ms\n  max_size: 4KiB\n",
        "",
    );
    let gw = Gateway::start_with(upstream.addr, &extra).await;
    until_sample(&gw, &keys_series(CLIENT), 1.0).await;
    // k1 is published in a set padded past max_size, declared (Content-Length) and not
    // (chunked): each refetch for k1 is refused as too large.
    server.serve(Serve::Set(jwk_set(&[&k[0], &k[1]]), None));
    for (i, declared) in [true, false].into_iter().enumerate() {
        server.serve(Serve::Oversized {
            size: 5000,
            declared,
        });
        let reply = send(&gw, &k[1].assertion(CLIENT)).await;
        assert_status(&reply, 401, "invalid_client", "k1 only in an oversized set");
        let m = until_sample(&gw, &fetches_series("too_large"), (i + 1) as f64).await;
        assert_eq!(sample(&m, &keys_series(CLIENT)), 1.0, "{m}");
        assert_status(
            &send(&gw, &k[0].assertion(CLIENT)).await,
            200,
            "",
            "k0 kept",
        );
    }
    // Under max_size, the same set is taken.
    server.serve(Serve::Set(jwk_set(&[&k[0], &k[1]]), None));
    assert_status(&send(&gw, &k[1].assertion(CLIENT)).await, 200, "", "k1");
    assert_eq!(upstream.records().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_the_gateway_cannot_accept_are_dropped_from_a_fetched_set_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    let (good, short) = tokio::task::spawn_blocking(move || {
        (ClientKey::ec(&d, "good"), ClientKey::rsa(&d, "short", 1024))
    })
    .await
    .unwrap();
    let mut private = good.jwk.clone();
    private["kid"] = "private".into();
    private["d"] = secretgate::jws::encode([7u8; 32]).into();
    let mut enc = good.jwk.clone();
    enc["kid"] = "enc".into();
    enc["use"] = "enc".into();
    let set = serde_json::json!({"keys": [good.jwk, short.jwk, private, enc, good.jwk]});
    let server = JwksServer::start(Serve::Set(set.to_string(), None)).await;
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let extra = uri_client(
        &server.url(),
        &server,
        "  refresh: 1h\n  min_refetch_interval: 1h\n",
        "",
    );
    let gw = Gateway::start_with(upstream.addr, &extra).await;
    let m = until_sample(&gw, &keys_series(CLIENT), 1.0).await;
    // The short RSA key, the private one, the encryption key and the repeated kid.
    assert_eq!(sample(&m, "secretgate_jwks_keys_ignored_total"), 4.0, "{m}");
    assert_eq!(sample(&m, &keys_series(CLIENT)), 1.0, "{m}");
    assert_status(&send(&gw, &good.assertion(CLIENT)).await, 200, "", "good");
    // A good RS256 signature by the 1024-bit key (made by openssl): refused.
    let reply = send(&gw, &short.assertion(CLIENT)).await;
    assert_status(&reply, 401, "invalid_client", "the short RSA key");
    assert_eq!(upstream.records().len(), 1);
}

/// Waits (polling, 20 s bound) until `server` has answered `path` at least `n` times.
async fn until_fetches(server: &JwksServer, path: &str, n: usize) {
    poll_until(std::time::Duration::from_secs(20), || async {
        let fetched = server.fetches(path);
        if fetched >= n {
            Ok(())
        } else {
            Err(format!("{path} fetched {fetched} times, not {n}"))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_control_max_age_replaces_refresh_but_never_below_one_minute() {
    let (k, _dir) = keys(1);
    // /jwks.json answers with `max-age=5`, below the 1-minute floor; /moved.json (the
    // control, on the same server and CA) with the same set and no Cache-Control.
    let server = JwksServer::start(Serve::Set(jwk_set(&[&k[0]]), Some(5))).await;
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let control = format!(
        "  - client_id: pk-control\n    auth_method: private_key_jwt\n    jwks_uri: \"https://localhost:{}/moved.json\"\n",
        server.port
    );
    let extra = uri_client(
        &server.url(),
        &server,
        "  refresh: 1s\n  min_refetch_interval: 1s\n",
        &control,
    );
    let gw = Gateway::start_with(upstream.addr, &extra).await;
    until_sample(&gw, &keys_series(CLIENT), 1.0).await;
    // The control follows `refresh: 1s`: 8 fetches take at least 7 s. By then a set
    // scheduled by `refresh` (1 s) or by the raw `max-age` (5 s) would have been fetched
    // again; one clamped to a minute has not.
    until_fetches(&server, "/moved.json", 8).await;
    assert_eq!(
        server.fetches(FETCHED),
        1,
        "max-age=5 is raised to the 1-minute floor and wins over refresh: 1s"
    );
    assert_status(&send(&gw, &k[0].assertion(CLIENT)).await, 200, "", "k0");
    assert_status(
        &send(&gw, &k[0].assertion("pk-control")).await,
        200,
        "",
        "k0 for the control client",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_set_of_an_unchanged_uri_and_fetches_an_added_one() {
    let (k, _dir) = keys(2);
    let server = JwksServer::start(Serve::Set(jwk_set(&[&k[0], &k[1]]), None)).await;
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let pki = Pki::generate();
    let fetch = "  refresh: 1h\n  min_refetch_interval: 1h\n";
    let before = config_yaml(
        &pki,
        upstream.addr,
        &uri_client(&server.url(), &server, fetch, ""),
    );
    // After the reload: a second client on another URI of the same server.
    let added = format!(
        "  - client_id: pk-added\n    auth_method: private_key_jwt\n    jwks_uri: \"https://localhost:{}/moved.json\"\n",
        server.port
    );
    let after = config_yaml(
        &pki,
        upstream.addr,
        &uri_client(&server.url(), &server, fetch, &added),
    );
    let gw = Gateway::start_file(pki, &before).await;
    until_sample(&gw, &keys_series(CLIENT), 2.0).await;
    assert_eq!(server.fetches(FETCHED), 1);

    std::fs::write(gw.config_file.as_ref().unwrap(), after).unwrap();
    gw.reloader.reload().await.expect("the reload applies");
    until_sample(&gw, &keys_series("pk-added"), 2.0).await;
    assert_eq!(
        server.fetches("/moved.json"),
        1,
        "the added URI, fetched once"
    );
    // The unchanged URI's set was kept: no fetch, and both of its keys verify at once.
    assert_eq!(
        server.fetches(FETCHED),
        1,
        "the kept set is not fetched again"
    );
    assert_status(
        &send(&gw, &k[0].assertion(CLIENT)).await,
        200,
        "",
        "k0 after reload",
    );
    assert_status(
        &send(&gw, &k[1].assertion(CLIENT)).await,
        200,
        "",
        "k1 after reload",
    );
    assert_status(
        &send(&gw, &k[1].assertion("pk-added")).await,
        200,
        "",
        "the added client",
    );
    assert_eq!(server.fetches(FETCHED), 1);
    let m = gw.metrics().await;
    assert_eq!(sample(&m, &keys_series(CLIENT)), 2.0, "{m}");
}
