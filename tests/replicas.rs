//! `state.backend: redis` with a real `redis-server`: replicas (several gateways, in this
//! process or as the binary) share one Redis, so an assertion is single-use across all of
//! them and failure limits count every replica's failures; a Redis that is down, killed,
//! late or refusing the password makes jwt fail closed (503) while Basic and post keep
//! working, and recovery needs no gateway restart. The password is never logged.
//!
//! Needs `redis-server` (apt-get install redis-server): missing, these tests fail.

mod support;

#[path = "support/redis.rs"]
mod redis_server;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use redis_server::RedisServer;
use support::*;
use tokio::net::TcpStream;

const FORM: &str = "application/x-www-form-urlencoded";

/// A second jwt client, appended to the clients list of `config_yaml`.
const JWT2_ID: &str = "mobile2";
const JWT2_SECRET: &str = "second-jwt-secret-0123456789abcdefghijkl";

fn second_jwt_client() -> String {
    format!(
        "  - client_id: {JWT2_ID}\n    auth_method: client_secret_jwt\n    secrets: [{{ value: \"{JWT2_SECRET}\" }}]\n"
    )
}

/// The `state` block for `url`; `more` is extra lines of `state.redis` (indented 4).
fn state_yaml(url: &str, timeout: &str, more: &str) -> String {
    format!(
        "state:\n  backend: redis\n  redis:\n    url: \"{url}\"\n    timeout: {timeout}\n    key_prefix: \"secretgate:\"\n{more}"
    )
}

fn jwt_request(assertion: &str) -> Request<Full<Bytes>> {
    form(TOKEN_PATH, &assertion_body(assertion))
}

fn basic_request(secret: &str) -> Request<Full<Bytes>> {
    post(
        TOKEN_PATH,
        Some(FORM),
        &[("authorization", &basic(BASIC_ID, secret))],
        "grant_type=client_credentials",
    )
}

fn post_request() -> Request<Full<Bytes>> {
    form(
        TOKEN_PATH,
        &format!("grant_type=client_credentials&client_id={POST_ID}&client_secret={POST_SECRET}"),
    )
}

/// An assertion for `client_id` (signed with `secret`) with the given `jti`.
fn assertion_with(client_id: &str, secret: &str, jti: &str) -> String {
    let mut claims = jwt_claims();
    claims["iss"] = client_id.into();
    claims["sub"] = client_id.into();
    claims["jti"] = jti.into();
    mint(hs256(), claims, secret.as_bytes())
}

#[track_caller]
fn assert_ok(r: &Reply, what: &str) {
    assert_eq!(r.status, StatusCode::OK, "{what}: body {:?}", r.body);
    assert_eq!(
        r.headers.get("x-upstream").map(|v| v.as_bytes()),
        Some(&b"yes"[..]),
        "{what}: the answer came from the upstream"
    );
}

#[track_caller]
fn assert_error(r: &Reply, status: StatusCode, error: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: body {:?}", r.body);
    assert_eq!(r.error(), error, "{what}");
    assert!(
        r.headers.get("x-upstream").is_none(),
        "{what}: not forwarded"
    );
}

/// 503 `temporarily_unavailable` with a Retry-After: the fail-closed answer.
#[track_caller]
fn assert_unavailable(r: &Reply, what: &str) {
    assert_error(
        r,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        what,
    );
    let retry: u64 = r
        .headers
        .get("retry-after")
        .unwrap_or_else(|| panic!("{what}: 503 without Retry-After"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "{what}: Retry-After {retry}");
}

/// Sends a fresh assertion while Redis cannot record it: 503 + `Retry-After` (fail closed),
/// within the command timeout plus `FAIL_CLOSED_MARGIN`, never a hang.
async fn assert_jwt_fails_closed_in_time(client: &mut Client, what: &str) {
    let started = Instant::now();
    let r = client.send(jwt_request(&assertion())).await;
    let elapsed = started.elapsed();
    assert_unavailable(&r, what);
    assert!(
        elapsed < REDIS_TIMEOUT + FAIL_CLOSED_MARGIN,
        "{what} took {elapsed:?} (timeout {REDIS_TIMEOUT:?}, margin {FAIL_CLOSED_MARGIN:?})"
    );
}

/// The value of a series that must be exposed (not just absent, which `sample` reads as 0).
#[track_caller]
fn exposed(metrics: &str, series: &str) -> f64 {
    assert!(
        metrics
            .lines()
            .any(|l| l.strip_prefix(series).is_some_and(|r| r.starts_with(' '))),
        "{series} not exposed:\n{metrics}"
    );
    sample(metrics, series)
}

/// A TLS connection to `gw` from another loopback address (another client source).
async fn connect_from(gw: &Gateway, ip: [u8; 4]) -> Client {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((ip, 0)))
        .expect("bind another loopback address");
    let tcp = socket.connect(gw.addr).await.unwrap();
    Client::H1(h1_over_tls(tcp, &gw.pki.ca_der).await)
}

/// Sends fresh jwt assertions to `gw` until one is accepted; returns how many were refused
/// before (each with 503). Panics after `within`.
async fn until_jwt_accepted(gw: &Gateway, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    let mut refused = 0;
    loop {
        let r = gw.send(jwt_request(&assertion())).await;
        if r.status == StatusCode::OK {
            assert_ok(&r, "jwt after recovery");
            return refused;
        }
        assert_unavailable(&r, "jwt while Redis comes back");
        refused += 1;
        assert!(
            Instant::now() < deadline,
            "jwt still refused {within:?} after Redis came back ({refused} attempts)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One assertion is single-use across replicas that are separate processes (two
/// `secretgate run` sharing one Redis), in either order; (client, jti) is the key, so two
/// clients may use the same jti, each once. Keys live under the prefix, expire, and hold no
/// jti in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assertion_is_single_use_across_replica_processes() {
    let redis = RedisServer::start();
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let extra = format!(
        "{}{}",
        second_jwt_client(),
        state_yaml(&redis.url(), "100ms", "").replace("\"secretgate:\"", "\"sg-test:\"")
    );
    let a = Binary::launch(Pki::generate(), upstream.addr, &extra).await;
    let b = Binary::launch(Pki::generate(), upstream.addr, &extra).await;
    let (mut to_a, mut to_b) = (a.client().await, b.client().await);

    let first = assertion();
    assert_ok(&to_a.send(jwt_request(&first)).await, "first use on A");
    let r = to_b.send(jwt_request(&first)).await;
    assert_error(
        &r,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "replay on B",
    );

    let second = assertion();
    assert_ok(&to_b.send(jwt_request(&second)).await, "first use on B");
    let r = to_a.send(jwt_request(&second)).await;
    assert_error(
        &r,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "replay on A",
    );

    let jti = format!("shared-jti-{}", std::process::id());
    let r = to_a
        .send(jwt_request(&assertion_with(JWT_ID, JWT_SECRET, &jti)))
        .await;
    assert_ok(&r, "mobile with the shared jti on A");
    let r = to_b
        .send(jwt_request(&assertion_with(JWT2_ID, JWT2_SECRET, &jti)))
        .await;
    assert_ok(&r, "mobile2 with the same jti on B");
    // Still single-use per client, across the processes.
    for (to, client_id, secret, what) in [
        (
            &mut to_a,
            JWT2_ID,
            JWT2_SECRET,
            "mobile2 reusing its jti on A",
        ),
        (&mut to_b, JWT_ID, JWT_SECRET, "mobile reusing its jti on B"),
    ] {
        let r = to
            .send(jwt_request(&assertion_with(client_id, secret, &jti)))
            .await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client", what);
    }
    assert_eq!(
        upstream.records().len(),
        4,
        "only the first uses reached the upstream"
    );

    for bin in [&a, &b] {
        let m = bin.metrics().await;
        assert_eq!(exposed(&m, "secretgate_state_up"), 1.0, "{m}");
        assert_eq!(
            sample(&m, "secretgate_state_errors_total{op=\"replay\"}"),
            0.0,
            "{m}"
        );
    }

    // What is in Redis: one key per accepted (client, jti), under the prefix, expiring.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*replay*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 4, "one key per accepted assertion: {keys:?}");
    for key in &keys {
        assert!(key.starts_with("sg-test:replay:"), "{key}");
        assert!(!key.contains(&jti), "a jti in clear in {key}");
        let ttl: i64 = redis::cmd("TTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 0, "{key} never expires (TTL {ttl})");
    }
}

/// Failures on A and on B add up: 2 + 2 reach `max_failures: 4` on both replicas (each
/// process alone saw only 2), while the same client from another address is let through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_on_every_replica_count_toward_the_throttle() {
    let redis = RedisServer::start();
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let extra = format!(
        "throttle: {{ max_failures: 4, max_failures_per_address: 100, window: 1m }}\n{}",
        state_yaml(&redis.url(), "100ms", "")
    );
    let a = Gateway::start_with(upstream.addr, &extra).await;
    let b = Gateway::start_with(upstream.addr, &extra).await;

    for (gw, name) in [(&a, "A"), (&a, "A"), (&b, "B"), (&b, "B")] {
        let r = gw.send(basic_request("wrong-secret")).await;
        assert_error(
            &r,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            &format!("wrong secret on {name}"),
        );
    }
    for (gw, name) in [(&a, "A"), (&b, "B")] {
        let r = gw.send(basic_request(BASIC_SECRET)).await;
        assert_error(
            &r,
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            &format!("5th attempt on {name}, after 2 failures here and 2 on the other"),
        );
        assert!(r.headers.contains_key("retry-after"));
    }
    // Another source is not locked out, on either replica.
    for (gw, name) in [(&a, "A"), (&b, "B")] {
        let r = connect_from(gw, [127, 0, 0, 2])
            .await
            .send(basic_request(BASIC_SECRET))
            .await;
        assert_ok(&r, &format!("the client from 127.0.0.2 on {name}"));
    }
    // The shared counters decided, not a fallback.
    for gw in [&a, &b] {
        let m = gw.metrics().await;
        assert_eq!(
            sample(&m, "secretgate_throttle_local_fallbacks_total"),
            0.0,
            "{m}"
        );
        assert_eq!(exposed(&m, "secretgate_state_up"), 1.0);
    }
}

/// `state.redis.timeout` of the tests that time how fast jwt fails closed.
const REDIS_TIMEOUT: Duration = Duration::from_millis(100);

/// How much longer than [`REDIS_TIMEOUT`] a jwt request (on an open connection) may take
/// to fail closed. Measured on the 2-core machine these tests run on, shared with a fuzzer
/// (load average 3 to 4), debug build, up to four copies of these tests at once: after
/// Redis was killed, 33 to 93 ms per 503 (800 requests); with Redis never started, 73 to
/// 91 ms, except the first request, 153 to 178 ms. Each command to a Redis that refuses
/// connections fails after the connection manager's one retry (~75 ms), and the first
/// request after Redis went away makes two (the throttle's read, then the replay `SET`),
/// each bounded by the timeout: 200 ms at worst by design. The remaining 300 ms absorb a
/// loaded scheduler, while a retry with back-off (the connection manager waits up to 1 s
/// between attempts) or a command allowed even 5 × the timeout still fails the test.
const FAIL_CLOSED_MARGIN: Duration = Duration::from_millis(400);

const FALLBACKS: &str = "secretgate_throttle_local_fallbacks_total";

/// Redis killed: jwt fails closed (503 + Retry-After) within the timeout plus a margin,
/// never 200; Basic and post keep working, and the throttle still throttles, each replica
/// on its own counters (counted as fallbacks); `secretgate_state_up` reads 0. Redis back on
/// the same port: jwt recovers without a gateway restart, the gauge reads 1 again and the
/// throttle stops falling back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_fails_jwt_closed_then_recovers() {
    let mut redis = RedisServer::start();
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let timeout = format!("{}ms", REDIS_TIMEOUT.as_millis());
    // A jwt refused with 503 is no authentication failure; the wrong Basic secrets below
    // are, and `max_failures` of them lock the client out from this address. (After the
    // recovery, the jwt client's four replays stay under it.)
    let max_failures = 5;
    let extra = format!(
        "throttle: {{ max_failures: {max_failures}, max_failures_per_address: 100, window: 1m }}\n{}",
        state_yaml(&redis.url(), &timeout, "")
    );
    let a = Gateway::start_with(upstream.addr, &extra).await;
    let b = Gateway::start_with(upstream.addr, &extra).await;
    let mut fallbacks_before = Vec::new();
    for gw in [&a, &b] {
        assert_ok(&gw.send(jwt_request(&assertion())).await, "jwt, Redis up");
        let m = gw.metrics().await;
        assert_eq!(exposed(&m, "secretgate_state_up"), 1.0, "{m}");
        fallbacks_before.push(exposed(&m, FALLBACKS));
    }
    let errors_before = sample(
        &a.metrics().await,
        "secretgate_state_errors_total{op=\"replay\"}",
    );

    redis.kill();
    for (gw, fallbacks_before) in [&a, &b].into_iter().zip(fallbacks_before) {
        let mut client = gw.client(false).await;
        for i in 0..10 {
            assert_jwt_fails_closed_in_time(&mut client, &format!("jwt #{i} with Redis down"))
                .await;
            assert_ok(
                &client.send(basic_request(BASIC_SECRET)).await,
                "Basic with Redis down",
            );
            assert_ok(&client.send(post_request()).await, "post with Redis down");
        }
        let m = gw.metrics().await;
        assert_eq!(exposed(&m, "secretgate_state_up"), 0.0, "{m}");
        assert!(
            sample(&m, "secretgate_state_errors_total{op=\"replay\"}") >= 10.0,
            "{m}"
        );
        let fallbacks = exposed(&m, FALLBACKS);
        assert!(
            fallbacks > fallbacks_before,
            "no throttle decision fell back to the local counters: {m}"
        );

        // Still throttled, on this replica's own counters (the other replica's failures
        // cannot reach it: its first wrong secrets are 401, not 429).
        for i in 0..max_failures {
            let r = client.send(basic_request("wrong-secret")).await;
            assert_error(
                &r,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                &format!("wrong secret #{i} with Redis down"),
            );
        }
        let r = client.send(basic_request(BASIC_SECRET)).await;
        assert_error(
            &r,
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            "Basic after max_failures wrong secrets, Redis down",
        );
        assert!(r.headers.contains_key("retry-after"));
        assert_ok(
            &client.send(post_request()).await,
            "another client from the same address, Redis down",
        );
        // Each of these decisions was made on the local counters.
        let m = gw.metrics().await;
        assert!(
            exposed(&m, FALLBACKS) >= fallbacks + f64::from(max_failures + 2),
            "{fallbacks} fallbacks before, then:\n{m}"
        );
    }
    assert!(
        sample(
            &a.metrics().await,
            "secretgate_state_errors_total{op=\"replay\"}"
        ) >= errors_before + 10.0
    );

    redis.restart();
    let mut fallbacks_after = Vec::new();
    for gw in [&a, &b] {
        until_jwt_accepted(gw, Duration::from_secs(15)).await;
        let m = gw.metrics().await;
        assert_eq!(exposed(&m, "secretgate_state_up"), 1.0, "{m}");
        fallbacks_after.push(exposed(&m, FALLBACKS));
    }
    // Single use again, across both, decided by Redis again (no more fallbacks).
    for gw in [&a, &b] {
        let reused = assertion();
        assert_ok(&gw.send(jwt_request(&reused)).await, "fresh jwt");
        for other in [&a, &b] {
            let r = other.send(jwt_request(&reused)).await;
            assert_error(
                &r,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "replay after recovery",
            );
        }
    }
    for (gw, before) in [&a, &b].into_iter().zip(fallbacks_after) {
        let m = gw.metrics().await;
        assert_eq!(
            exposed(&m, FALLBACKS),
            before,
            "fallbacks after recovery: {m}"
        );
        assert_eq!(exposed(&m, "secretgate_state_up"), 1.0, "{m}");
    }
}

/// A gateway starts while Redis is down: jwt gets 503 (Basic works); once Redis is up on
/// the configured port, jwt works, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_started_before_redis_recovers_when_it_comes_up() {
    let mut redis = RedisServer::stopped_on(redis_server::free_port(), None);
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let timeout = format!("{}ms", REDIS_TIMEOUT.as_millis());
    let gw = Gateway::start_with(upstream.addr, &state_yaml(&redis.url(), &timeout, "")).await;
    let mut client = gw.client(false).await;
    for i in 0..3 {
        assert_jwt_fails_closed_in_time(&mut client, &format!("jwt #{i} before Redis started"))
            .await;
    }
    assert_ok(
        &client.send(basic_request(BASIC_SECRET)).await,
        "Basic before Redis started",
    );
    assert!(!gw.task.is_finished(), "the gateway kept running");

    redis.restart();
    until_jwt_accepted(&gw, Duration::from_secs(15)).await;
    assert_eq!(exposed(&gw.metrics().await, "secretgate_state_up"), 1.0);
}

/// 50 concurrent uses of one assertion, over both replicas: exactly one is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uses_of_one_assertion_across_replicas_accept_exactly_one() {
    let redis = RedisServer::start();
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    // A generous timeout: this is about atomicity, not about a loaded 2-core machine
    // answering 50 handshakes within 100 ms. A replay is a failed authentication: with
    // the default `max_failures: 10`, replays recorded before the last requests are
    // checked get those 429 (on either replica), so the throttle is set out of the way.
    let extra = format!(
        "throttle: {{ max_failures: 1000, max_failures_per_address: 1000, window: 1m }}\n{}",
        state_yaml(&redis.url(), "2s", "")
    );
    let a = Gateway::start_with(upstream.addr, &extra).await;
    let b = Gateway::start_with(upstream.addr, &extra).await;
    // Connect first (TLS handshakes), then send everything at once.
    let mut clients = Vec::new();
    for i in 0..50 {
        clients.push(if i % 2 == 0 { &a } else { &b }.client(false).await);
    }
    let same = assertion();
    let start = Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            let req = jwt_request(&same);
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                c.send(req).await
            })
        })
        .collect();
    let mut ok = 0;
    let mut replayed = 0;
    let mut other = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            StatusCode::OK => ok += 1,
            StatusCode::UNAUTHORIZED if r.error() == "invalid_client" => replayed += 1,
            s => other.push((s, r.body)),
        }
    }
    assert_eq!(
        (ok, replayed, other.len()),
        (1, 49, 0),
        "unexpected answers: {other:?}"
    );
    assert_eq!(
        upstream.records().len(),
        1,
        "exactly one reached the upstream"
    );
}

// ---------------------------------------------------------------------------------------
// The binary: `secretgate run` as a process (replicas above; here with a password: logs
// at trace level never hold it).

const RIGHT_PASSWORD: &str = "redis-pass-right-7c41d09e";
const WRONG_PASSWORD: &str = "redis-pass-wrong-3fa8b5e2";

/// The binary, running, with its stderr collected as it comes.
struct Binary {
    child: std::process::Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    listen: SocketAddr,
    admin: SocketAddr,
    pki: Pki,
}

impl Binary {
    /// `secretgate --log-format json run` with SECRETGATE_LOG=trace, the `state` block
    /// reading the password from a file holding `password`.
    async fn start(upstream: SocketAddr, redis: &RedisServer, password: &str) -> Binary {
        let pki = Pki::generate();
        let password_file = pki.path().join("redis.password");
        std::fs::write(&password_file, format!("{password}\n")).unwrap();
        let extra = state_yaml(
            &redis.url(),
            "100ms",
            &format!(
                "    password: {{ file: \"{}\" }}\n",
                password_file.display()
            ),
        );
        assert!(!extra.contains(password), "the config holds no password");
        Self::launch(pki, upstream, &extra).await
    }

    /// `secretgate --log-format json run` with SECRETGATE_LOG=trace and `extra` (more
    /// clients, then other sections, as for `config_yaml`), listening on fresh loopback
    /// ports (the admin one too); returns once `/readyz` says 200.
    async fn launch(pki: Pki, upstream: SocketAddr, extra: &str) -> Binary {
        let listen = refused_addr().await;
        let admin = refused_addr().await;
        let extra =
            format!("{extra}admin: {{ listen: \"{admin}\" }}\nreload: {{ watch: false }}\n");
        let config = config_yaml(&pki, upstream, &extra)
            .replace("listen: \"127.0.0.1:0\"", &format!("listen: \"{listen}\""));
        let config_file = pki.path().join("secretgate.yaml");
        std::fs::write(&config_file, config).unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_secretgate"))
            .args(["--log-format", "json", "run", "--config"])
            .arg(&config_file)
            .env("SECRETGATE_LOG", "trace")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Drain stderr as it comes: at trace level a full pipe would block the gateway.
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match std::io::Read::read(&mut pipe, &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => sink
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
        });
        let mut bin = Binary {
            child,
            stderr,
            reader: Some(reader),
            listen,
            admin,
            pki,
        };
        bin.wait_ready().await;
        bin
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(self.admin).await.is_ok()
                && admin_get(self.admin, "/readyz").await.0 == 200
            {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "secretgate exited during start-up: {status}\n{}",
                    self.stderr.lock().unwrap()
                );
            }
            assert!(Instant::now() < deadline, "secretgate never became ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn client(&self) -> Client {
        let tcp = TcpStream::connect(self.listen).await.unwrap();
        Client::H1(h1_over_tls(tcp, &self.pki.ca_der).await)
    }

    async fn metrics(&self) -> String {
        let (status, body) = admin_get(self.admin, "/metrics").await;
        assert_eq!(status, 200);
        body
    }

    /// SIGTERM, wait for the exit (bounded), and return everything it logged.
    async fn stop(mut self) -> String {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "secretgate did not exit on SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let reader = self.reader.take().unwrap();
        tokio::task::spawn_blocking(move || reader.join().unwrap())
            .await
            .unwrap();
        let logs = self.stderr.lock().unwrap().clone();
        logs
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The password from `state.redis.password: { file }` authenticates; nothing at trace
/// level logs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_authenticates_with_a_password_file_and_never_logs_it() {
    let redis = RedisServer::start_with_password(RIGHT_PASSWORD);
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let bin = Binary::start(upstream.addr, &redis, RIGHT_PASSWORD).await;
    let mut c = bin.client().await;
    let once = assertion();
    assert_ok(&c.send(jwt_request(&once)).await, "jwt, right password");
    let r = c.send(jwt_request(&once)).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client", "replay");
    // Failures are recorded in Redis, which only works authenticated.
    let r = c.send(basic_request("wrong-secret")).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client", "wrong");
    assert_ok(&c.send(basic_request(BASIC_SECRET)).await, "Basic");
    let m = bin.metrics().await;
    assert_eq!(exposed(&m, "secretgate_state_up"), 1.0, "{m}");
    for op in ["replay", "throttle_record", "throttle_check"] {
        assert_eq!(
            sample(&m, &format!("secretgate_state_errors_total{{op=\"{op}\"}}")),
            0.0,
            "{m}"
        );
    }
    drop(c);
    let logs = bin.stop().await;
    assert!(logs.contains("\"level\":\"TRACE\""), "trace logging is on");
    assert!(
        !logs.contains(RIGHT_PASSWORD),
        "the Redis password is in the logs"
    );
}

/// A wrong password: jwt fails closed (503), Basic and post keep working, the logs name
/// `state.redis.password` in a rate-limited warning, and never hold the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_jwt_closed_names_the_key_and_is_never_logged() {
    let redis = RedisServer::start_with_password(RIGHT_PASSWORD);
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let started = Instant::now();
    let bin = Binary::start(upstream.addr, &redis, WRONG_PASSWORD).await;
    let mut c = bin.client().await;
    for i in 0..20 {
        let r = c.send(jwt_request(&assertion())).await;
        assert_unavailable(&r, &format!("jwt #{i}, wrong password"));
    }
    assert_ok(
        &c.send(basic_request(BASIC_SECRET)).await,
        "Basic, wrong password",
    );
    assert_ok(&c.send(post_request()).await, "post, wrong password");
    let m = bin.metrics().await;
    assert_eq!(exposed(&m, "secretgate_state_up"), 0.0, "{m}");
    assert!(sample(&m, "secretgate_state_errors_total{op=\"replay\"}") >= 20.0);
    drop(c);
    let logs = bin.stop().await;
    let ran = started.elapsed();

    for password in [WRONG_PASSWORD, RIGHT_PASSWORD] {
        assert!(!logs.contains(password), "{password} is in the logs");
    }
    // One warning per operation per 10 s at most: 20 failing requests make one.
    let per_op_limit = 1 + (ran.as_secs() / 10) as usize;
    let warnings: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["level"] == "WARN" && v["fields"]["message"] == "shared state (Redis) unavailable"
        })
        .collect();
    let naming: Vec<&serde_json::Value> = warnings
        .iter()
        .filter(|v| {
            v["fields"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("state.redis.password"))
        })
        .collect();
    assert!(
        !naming.is_empty(),
        "no warning names state.redis.password: {warnings:#?}"
    );
    assert!(
        warnings.iter().any(|v| v["fields"]["op"] == "replay"),
        "no warning for the replay store: {warnings:#?}"
    );
    for op in ["replay", "throttle_check", "throttle_record", "subscribe"] {
        let n = warnings.iter().filter(|v| v["fields"]["op"] == op).count();
        assert!(
            n <= per_op_limit,
            "{n} warnings for {op} in {ran:?} (rate limit: one per 10 s): {warnings:#?}"
        );
    }
    let lines_naming_the_key = logs
        .lines()
        .filter(|l| l.contains("state.redis.password"))
        .count();
    assert!(
        lines_naming_the_key <= 3 * per_op_limit,
        "{lines_naming_the_key} log lines name state.redis.password:\n{}",
        logs.lines()
            .filter(|l| l.contains("state.redis.password"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Config checks.

/// A password in the URL is refused (naming `state.redis.url`, without repeating it), by
/// the library and by `secretgate check`; so is `state.redis` without the backend, and an
/// unreadable password file.
#[test]
fn config_refuses_a_password_in_the_url() {
    let pki = Pki::generate();
    let upstream: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let leaked = "url-pass-0d9e6b1f";
    let yaml = config_yaml(
        &pki,
        upstream,
        &state_yaml(&format!("redis://:{leaked}@127.0.0.1:6379/0"), "100ms", ""),
    );
    let problems = secretgate::Config::from_yaml(&yaml, pki.path())
        .expect_err("a password in the URL is refused")
        .problems();
    assert!(
        problems.iter().any(|p| p.starts_with("state.redis.url")),
        "{problems:?}"
    );
    assert!(!problems.iter().any(|p| p.contains(leaked)), "{problems:?}");

    let file = pki.path().join("bad.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("state.redis.url"), "{stderr}");
    assert!(!stderr.contains(leaked), "{stderr}");

    // A redis block next to `backend: memory` is checked all the same (then ignored, with
    // a warning).
    let memory = config_yaml(
        &pki,
        upstream,
        &format!("state:\n  redis:\n    url: \"redis://:{leaked}@127.0.0.1:6379/0\"\n"),
    );
    let problems = secretgate::Config::from_yaml(&memory, pki.path())
        .expect_err("checked with backend: memory too")
        .problems();
    assert!(
        problems.iter().any(|p| p.starts_with("state.redis.url")),
        "{problems:?}"
    );
    assert!(!problems.iter().any(|p| p.contains(leaked)), "{problems:?}");
    let memory = config_yaml(
        &pki,
        upstream,
        "state:\n  redis:\n    url: \"redis://127.0.0.1:6379/0\"\n",
    );
    let config = secretgate::Config::from_yaml(&memory, pki.path()).unwrap();
    assert!(matches!(
        config.state,
        secretgate::config::StateConfig::Memory
    ));
    assert!(
        config.warnings.iter().any(|w| w.starts_with("state.redis")),
        "{:?}",
        config.warnings
    );

    let cases = [
        // `backend: redis` needs the redis block.
        ("state:\n  backend: redis\n".to_owned(), "state.redis"),
        (
            state_yaml(
                "redis://127.0.0.1:6379/0",
                "100ms",
                "    password: { file: \"no-such-file\" }\n",
            ),
            "state.redis.password",
        ),
    ];
    for (extra, key) in cases {
        let yaml = config_yaml(&pki, upstream, &extra);
        let problems = secretgate::Config::from_yaml(&yaml, pki.path())
            .expect_err(key)
            .problems();
        assert!(
            problems.iter().any(|p| p.starts_with(key)),
            "{key}: {problems:?}"
        );
    }

    // The valid form loads.
    let ok = config_yaml(
        &pki,
        upstream,
        &state_yaml("redis://127.0.0.1:6379/0", "100ms", ""),
    );
    let config = secretgate::Config::from_yaml(&ok, pki.path()).unwrap();
    assert!(matches!(
        config.state,
        secretgate::config::StateConfig::Redis(_)
    ));
}

/// Failed AUTHs Redis has seen (its ACL log, `reason: auth`).
async fn refused_auths(admin: &mut redis::aio::MultiplexedConnection) -> i64 {
    let entries: Vec<Vec<redis::Value>> = redis::cmd("ACL")
        .arg("LOG")
        .query_async(admin)
        .await
        .unwrap();
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        _ => String::new(),
    };
    entries
        .iter()
        .filter_map(|entry| {
            let field = |name: &str| {
                entry
                    .chunks(2)
                    .find(|kv| text(&kv[0]) == name)
                    .map(|kv| kv[1].clone())
            };
            (field("reason").as_ref().map(text).as_deref() == Some("auth")).then(|| {
                match field("count") {
                    Some(redis::Value::Int(n)) => n,
                    other => panic!("ACL LOG count: {other:?}"),
                }
            })
        })
        .sum()
}

/// Redis refuses the gateway's password for a while (it was changed, then changed back):
/// jwt fails closed meanwhile, and recovers once the password is accepted again, without
/// a gateway restart. (The redis crate reconnects only after I/O errors: a refused
/// handshake must not leave a worker's connection failing for good.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_password_recovers_once_redis_accepts_it_again() {
    let redis = RedisServer::start_with_password(RIGHT_PASSWORD);
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("redis.password");
    std::fs::write(&password_file, RIGHT_PASSWORD).unwrap();
    let extra = state_yaml(
        &redis.url(),
        "100ms",
        &format!(
            "    password: {{ file: \"{}\" }}\n",
            password_file.display()
        ),
    );
    let gw = Gateway::start_with(upstream.addr, &extra).await;
    assert_ok(&gw.send(jwt_request(&assertion())).await, "jwt");

    let admin_url = format!("redis://:{RIGHT_PASSWORD}@127.0.0.1:{}/0", redis.port);
    let mut admin = redis::Client::open(admin_url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let set_password = |p: &str| {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("SET").arg("requirepass").arg(p);
        cmd
    };
    // Connections already authenticated stay so (this one too); the gateway's command
    // connections are dropped and must authenticate again. Its subscription (not a
    // `normal` client) is left alone, so every refused AUTH is a command connection's.
    let _: () = set_password("changed-for-a-while")
        .query_async(&mut admin)
        .await
        .unwrap();
    let _: () = redis::cmd("ACL")
        .arg("LOG")
        .arg("RESET")
        .query_async(&mut admin)
        .await
        .unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(killed >= 1, "the gateway's connection was dropped");

    // Long enough for the gateway to have been refused, and to have tried again after
    // its connection's own retries ran out (the redis crate gives up after 7 attempts).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut refusals = 0;
    while refusals < 12 {
        let r = gw.send(jwt_request(&assertion())).await;
        assert_unavailable(&r, "jwt while Redis refuses the password");
        refusals = refused_auths(&mut admin).await;
        assert!(
            Instant::now() < deadline,
            "the gateway stopped trying to authenticate after {refusals} refused AUTHs"
        );
    }
    let _: () = set_password(RIGHT_PASSWORD)
        .query_async(&mut admin)
        .await
        .unwrap();
    until_jwt_accepted(&gw, Duration::from_secs(15)).await;
    assert_eq!(exposed(&gw.metrics().await, "secretgate_state_up"), 1.0);
}

// ---------------------------------------------------------------------------------------
// The shared throttle's sources, through the library.

/// The Redis backend counts an IPv6 source per /64 and an IPv4 source per address, as the
/// memory one does (`auth::throttle`'s unit tests): failures recorded by one replica from
/// `2001:db8::1` throttle another replica's requests from `2001:db8::2` (rotating through
/// the /64 does not reset the counters), not from the next /64; an IPv4 address is its own
/// source, also written as IPv4-mapped IPv6. The second replica has no failures of its own,
/// so only the shared counters can decide; Redis holds one hash tag per source. (The
/// addresses are values passed to the throttle: nothing is sent from them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_throttle_counts_ipv6_per_slash_64_and_ipv4_per_address() {
    use secretgate::auth::throttle::{SharedView, Throttle};
    use secretgate::config::{RedisConfig, ThrottleConfig};
    use secretgate::metrics::Metrics;
    use secretgate::state::RedisState;
    use std::collections::BTreeMap;
    use std::net::IpAddr;

    let redis = RedisServer::start();
    let redis_config = RedisConfig {
        url: redis.url(),
        password: None,
        ca_pem: None,
        cluster: false,
        key_prefix: "sg-src:".to_owned(),
        // Generous: this is about keys, not latency.
        timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
    };
    let throttle_config = ThrottleConfig {
        max_failures: 3,
        max_failures_per_address: 5,
        window: Duration::from_secs(60),
    };
    // A replica: its own client and metrics. Never subscribed, so every check reads the
    // shared counters.
    let replica = || {
        let metrics = Arc::new(Metrics::new());
        let state = Arc::new(RedisState::new(&redis_config, metrics.clone()).unwrap());
        let view = SharedView::new(state, metrics.clone());
        (Throttle::with_shared(&throttle_config, Some(view)), metrics)
    };
    let (a, _) = replica();
    let (b, b_metrics) = replica();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();

    for host in ["2001:db8::1", "2001:db8::1", "2001:db8::1"] {
        assert!(b.check("billing", ip(host)).await.is_ok(), "{host}");
        a.record_failure("billing", ip(host)).await;
    }
    for rotated in [
        "2001:db8::1",
        "2001:db8::2",
        "2001:db8::ffff:ffff:ffff:fffe",
    ] {
        assert!(
            b.check("billing", ip(rotated)).await.is_err(),
            "billing from {rotated}, in the /64 with 3 failures, is let through"
        );
    }
    for other in ["2001:db8:0:1::1", "2001:db8:1::1"] {
        assert!(
            b.check("billing", ip(other)).await.is_ok(),
            "billing from {other}, another /64, is throttled"
        );
    }
    // The per-source limit (5) counts every client of the /64 too.
    assert!(b.check("reports", ip("2001:db8::3")).await.is_ok());
    a.record_failure("reports", ip("2001:db8::3")).await;
    a.record_failure("other", ip("2001:db8::ab:cdef")).await;
    assert!(
        b.check("third", ip("2001:db8::4")).await.is_err(),
        "the /64 reached the per-source limit"
    );
    assert!(b.check("third", ip("2001:db8:0:1::4")).await.is_ok());

    for _ in 0..3 {
        a.record_failure("billing", ip("192.0.2.1")).await;
    }
    for same in ["192.0.2.1", "::ffff:192.0.2.1"] {
        assert!(
            b.check("billing", ip(same)).await.is_err(),
            "billing from {same} is let through"
        );
    }
    assert!(
        b.check("billing", ip("192.0.2.2")).await.is_ok(),
        "192.0.2.2 is throttled for 192.0.2.1's failures"
    );

    let metrics = b_metrics.encode(None);
    assert_eq!(exposed(&metrics, FALLBACKS), 0.0, "{metrics}");

    // In Redis: per source, its count, under the hash tag `{source}`.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("sg-src:throttle:*:source")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut counts = BTreeMap::new();
    for key in keys {
        let tag = key
            .strip_prefix("sg-src:throttle:{")
            .and_then(|rest| rest.strip_suffix("}:source"))
            .unwrap_or_else(|| panic!("unexpected key {key}"))
            .to_owned();
        let n: u32 = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        counts.insert(tag, n);
    }
    assert_eq!(
        counts,
        BTreeMap::from([("192.0.2.1".to_owned(), 3), ("2001:db8::/64".to_owned(), 5)])
    );
}
