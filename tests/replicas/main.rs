//! `state.backend: redis` with a real `redis-server`: replicas (several gateways, in this
//! process or as the binary) share one Redis, so an assertion is single-use across all of
//! them and failure limits count every replica's failures; a Redis that is down, killed,
//! late or refusing the password makes jwt fail closed (503) while Basic and post keep
//! working, and recovery needs no gateway restart. The password is never logged.
//!
//! Needs `redis-server` (apt-get install redis-server): missing, these tests fail.

#[path = "../support/mod.rs"]
mod support;

#[path = "../support/redis.rs"]
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
        let listen = free_addr().await;
        let admin = free_addr().await;
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

mod password;
mod throttle_keys;
