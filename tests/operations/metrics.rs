//! Metrics after a mixed run, the Grafana dashboard's queries, and `client_id` labels.

use super::*;

/// Every documented series after a mixed run, with exact counts.
#[tokio::test]
async fn metrics_after_a_mixed_run() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw = Gateway::start_with(
        upstream.addr,
        "throttle: { max_failures: 2, max_failures_per_address: 100, window: 1m }\n",
    )
    .await;
    let mut c = gw.client(false).await;

    // Basic: two accepted.
    for _ in 0..2 {
        let mut req = form(TOKEN_PATH, "grant_type=client_credentials");
        req.headers_mut().insert(
            "authorization",
            basic(BASIC_ID, BASIC_SECRET).parse().unwrap(),
        );
        assert_eq!(c.send(req).await.status, StatusCode::OK);
    }
    // Post: two wrong secrets, then throttled.
    let wrong =
        format!("grant_type=client_credentials&client_id={POST_ID}&client_secret=nope-0123");
    assert_eq!(
        c.send(form(TOKEN_PATH, &wrong)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        c.send(form(TOKEN_PATH, &wrong)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        c.send(form(TOKEN_PATH, &wrong)).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Jwt: accepted once, then replayed.
    let body = assertion_body(&assertion());
    assert_eq!(c.send(form(TOKEN_PATH, &body)).await.status, StatusCode::OK);
    assert_eq!(
        c.send(form(TOKEN_PATH, &body)).await.status,
        StatusCode::UNAUTHORIZED
    );
    // No method could be told: two at once.
    let basic_header = basic(BASIC_ID, BASIC_SECRET);
    let none = post(
        TOKEN_PATH,
        Some("application/x-www-form-urlencoded"),
        &[("authorization", basic_header.as_str())],
        format!("grant_type=client_credentials&client_id={POST_ID}&client_secret={POST_SECRET}"),
    );
    assert_eq!(c.send(none).await.status, StatusCode::BAD_REQUEST);
    // An unprotected path, and a path refused before routing.
    let get = http::Request::get("/.well-known/openid-configuration")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(c.send(get).await.status, StatusCode::OK);
    let odd = form("/oauth2%2Ftoken", "grant_type=client_credentials");
    assert_eq!(c.send(odd).await.status, StatusCode::BAD_REQUEST);
    // A client that does not speak TLS.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = TcpStream::connect(gw.addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut sink = Vec::new();
        let _ = tcp.read_to_end(&mut sink).await; // the gateway closes after the failure
    }

    let m = gw.metrics().await;
    let expect = [
        ("secretgate_requests_total{route=\"protected\",status=\"200\"}", 3.0),
        ("secretgate_requests_total{route=\"protected\",status=\"401\"}", 3.0),
        ("secretgate_requests_total{route=\"protected\",status=\"429\"}", 1.0),
        ("secretgate_requests_total{route=\"protected\",status=\"400\"}", 1.0),
        ("secretgate_requests_total{route=\"unprotected\",status=\"200\"}", 1.0),
        ("secretgate_requests_total{route=\"invalid\",status=\"400\"}", 1.0),
        ("secretgate_request_duration_seconds_count", 10.0),
        ("secretgate_authentications_total{method=\"client_secret_basic\",outcome=\"ok\"}", 2.0),
        ("secretgate_authentications_total{method=\"client_secret_post\",outcome=\"invalid_client\"}", 2.0),
        ("secretgate_authentications_total{method=\"client_secret_post\",outcome=\"throttled\"}", 1.0),
        ("secretgate_authentications_total{method=\"client_secret_jwt\",outcome=\"ok\"}", 1.0),
        ("secretgate_authentications_total{method=\"client_secret_jwt\",outcome=\"replay\"}", 1.0),
        ("secretgate_authentications_total{method=\"unknown\",outcome=\"invalid_request\"}", 1.0),
        ("secretgate_replay_rejections_total{reason=\"replayed\"}", 1.0),
        ("secretgate_replay_store_entries", 1.0),
        ("secretgate_upstream_duration_seconds_count", 4.0),
        ("secretgate_tls_handshake_failures_total{reason=\"error\"}", 1.0),
        ("secretgate_connections", 1.0),
        ("secretgate_config_last_reload_successful", 1.0),
    ];
    for (series, value) in expect {
        assert_eq!(sample(&m, series), value, "{series} in\n{m}");
    }
    assert!(
        sample(
            &m,
            "secretgate_config_last_reload_success_timestamp_seconds"
        ) > 1.7e9
    );
    assert!(m.contains("secretgate_build_info{version=\""));
    // Client ids are not labels unless enabled; secrets never appear.
    for text in [
        BASIC_ID,
        POST_ID,
        JWT_ID,
        BASIC_SECRET,
        POST_SECRET,
        JWT_SECRET,
        "nope-0123",
    ] {
        assert!(!m.contains(text), "{text} in metrics");
    }
}

/// Every metric name a query in `deploy/grafana-dashboard.json` uses is one the gateway
/// exports. The scrape is OpenMetrics text, where `# TYPE` names the family, not the
/// sample: counter `x` is queried as `x_total`, histogram `x` as `x_bucket`, `x_sum` and
/// `x_count`, info `x` as `x_info`. A labelled family with no sample yet is not in the
/// scrape at all, so the run first gives each one a sample.
#[tokio::test]
async fn the_grafana_dashboard_queries_only_exported_series() {
    fn walk(v: &serde_json::Value, queries: &mut Vec<String>, panels: &mut usize) {
        match v {
            serde_json::Value::Object(o) => {
                let targets = o.get("targets").and_then(|t| t.as_array());
                if targets.is_some_and(|t| t.iter().any(|t| t["expr"].is_string())) {
                    *panels += 1;
                }
                for (key, value) in o {
                    match value.as_str() {
                        // Panel and annotation queries (`expr`), variable queries.
                        Some(q) if ["expr", "query", "definition"].contains(&key.as_str()) => {
                            queries.push(q.to_owned())
                        }
                        _ => walk(value, queries, panels),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, queries, panels)),
            _ => {}
        }
    }
    /// The `secretgate_…` identifiers in a PromQL expression.
    fn metric_names(q: &str) -> Vec<&str> {
        let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
        q.match_indices("secretgate_")
            .filter(|(i, _)| !q[..*i].ends_with(ident))
            .map(|(i, _)| {
                let end = q[i..].find(|c: char| !ident(c)).map_or(q.len(), |n| i + n);
                &q[i..end]
            })
            .collect()
    }

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .expect("the dashboard is valid JSON");
    let (mut queries, mut panels) = (Vec::new(), 0);
    walk(&dashboard, &mut queries, &mut panels);
    assert!(panels >= 10, "only {panels} panels with queries");

    // Nothing listens upstream: an authenticated request is a 502.
    let pki = Pki::generate();
    let config = config_yaml(&pki, refused_addr().await, "");
    let gw = Gateway::start_file(pki, &config).await;
    let mut c = gw.client(false).await;
    assert_eq!(
        c.send(token_request(BASIC_SECRET)).await.status,
        StatusCode::BAD_GATEWAY
    );
    let body = assertion_body(&assertion());
    assert_eq!(
        c.send(form(TOKEN_PATH, &body)).await.status,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(
        c.send(form(TOKEN_PATH, &body)).await.status,
        StatusCode::UNAUTHORIZED
    );
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = TcpStream::connect(gw.addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let _ = tcp.read_to_end(&mut Vec::new()).await;
    }
    gw.reloader.reload().await.expect("the same config reloads");
    // The failed handshake is counted before the socket closes: the scrape sees it.
    let m = gw.metrics().await;
    assert_eq!(
        sample(
            &m,
            "secretgate_tls_handshake_failures_total{reason=\"error\"}"
        ),
        1.0
    );
    let exported: std::collections::HashSet<String> = m
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' '))
        .flat_map(|(family, kind)| {
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                "info" => &["_info"],
                _ => &[""],
            };
            suffixes.iter().map(move |s| format!("{family}{s}"))
        })
        .collect();

    // Families this run gives no sample (they need client ids as labels, Redis, hashed
    // secrets, certificate clients, private_key_jwt, readiness, PROXY protocol, shadow
    // mode, rate limits): deploy/check-observability.py (CI, through deploy/validate.sh)
    // checks these names against src/metrics/ instead.
    const CHECKED_FROM_SOURCE: &[&str] = &[
        "secretgate_client_authentications_total",
        "secretgate_rate_limited_total",
        "secretgate_shadow_decisions_total",
        "secretgate_pkce_refusals_total",
        "secretgate_jwks_keys",
        "secretgate_state_command_duration_seconds_bucket",
        "secretgate_state_errors_total",
        "secretgate_hash_verifications_total",
        "secretgate_hash_verify_cache_total",
        "secretgate_certificate_expiry_timestamp_seconds",
        "secretgate_client_certificates_total",
        "secretgate_connections_refused_total",
        "secretgate_upstream_up",
        "secretgate_jwks_fetches_total",
        "secretgate_metadata_responses_total",
    ];
    let mut used = 0;
    for q in &queries {
        for name in metric_names(q) {
            assert!(
                exported.contains(name) || CHECKED_FROM_SOURCE.contains(&name),
                "the dashboard queries {name}, which the gateway does not export:\n{q}\n\n{m}"
            );
            used += 1;
        }
    }
    assert!(used >= panels, "too few metric names found in {queries:#?}");
}

#[tokio::test]
async fn client_id_labels_only_when_enabled_and_only_registered_ids() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw = Gateway::start_with(upstream.addr, "metrics: { client_id_label: true }\n").await;
    let mut c = gw.client(true).await;
    let ok =
        format!("grant_type=client_credentials&client_id={POST_ID}&client_secret={POST_SECRET}");
    assert_eq!(c.send(form(TOKEN_PATH, &ok)).await.status, StatusCode::OK);
    // An unknown id (here, a secret pasted into the wrong field) must not become a label.
    let stray = format!("grant_type=client_credentials&client_id={JWT_SECRET}&client_secret=x");
    assert_eq!(
        c.send(form(TOKEN_PATH, &stray)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let m = gw.metrics().await;
    assert_eq!(
        sample(
            &m,
            "secretgate_client_authentications_total{client_id=\"reports\",method=\"client_secret_post\",outcome=\"ok\"}"
        ),
        1.0,
        "{m}"
    );
    assert!(!m.contains(JWT_SECRET));
    assert_eq!(
        sample(
            &m,
            "secretgate_authentications_total{method=\"client_secret_post\",outcome=\"invalid_client\"}"
        ),
        1.0
    );
}
