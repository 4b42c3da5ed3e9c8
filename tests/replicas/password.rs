//! The binary against a Redis that requires a password: read from a file, never logged; a wrong one fails jwt closed and recovers.

use super::*;

const RIGHT_PASSWORD: &str = "redis-pass-right-7c41d09e";
const WRONG_PASSWORD: &str = "redis-pass-wrong-3fa8b5e2";

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
