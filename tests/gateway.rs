//! Gateway core over real TLS: HTTP/1.1 and HTTP/2, forwarding, header stripping,
//! streaming, upstream failures, shutdown drain, admin endpoints, config errors.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Full, StreamBody};
use support::*;
use tokio::sync::{oneshot, Notify};

const INTERNAL: &str = "x-authenticated-client";

#[tokio::test]
async fn http1_and_http2_reach_the_upstream_through_tls() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw = Gateway::start(upstream.addr).await;
    for h2 in [false, true] {
        let mut client = gw.client(h2).await;
        let reply = client
            .send(
                Request::get("/.well-known/openid-configuration?x=1")
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            reply.version,
            if h2 {
                Version::HTTP_2
            } else {
                Version::HTTP_11
            }
        );
        assert_eq!(reply.headers["x-upstream"], "yes");
        let rec = upstream.last();
        assert_eq!(
            rec.uri.path_and_query().unwrap().as_str(),
            "/.well-known/openid-configuration?x=1"
        );
        // The upstream always gets HTTP/1.1 with forwarding headers set by the gateway.
        assert_eq!(rec.version, Version::HTTP_11);
        assert_eq!(rec.headers["x-forwarded-proto"], "https");
        assert_eq!(rec.headers["x-forwarded-for"], "127.0.0.1");
        assert_eq!(rec.headers["x-forwarded-host"], "auth.example.com");
        assert!(rec.headers.contains_key("x-request-id"));
        assert_eq!(reply.headers["x-request-id"], rec.headers["x-request-id"]);
    }
}

#[tokio::test]
async fn client_forwarding_headers_are_replaced_not_trusted() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw = Gateway::start(upstream.addr).await;
    let reply = gw
        .send(
            Request::get("/info")
                .header("x-forwarded-for", "6.6.6.6")
                .header("connection", "x-hop")
                .header("x-hop", "1")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let rec = upstream.last();
    assert_eq!(rec.headers.get_all("x-forwarded-for").iter().count(), 1);
    assert_eq!(rec.headers["x-forwarded-for"], "127.0.0.1");
    assert!(
        !rec.headers.contains_key("x-hop"),
        "headers named by Connection are hop-by-hop"
    );
}

#[tokio::test]
async fn forged_internal_header_never_reaches_the_upstream_f2() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw = Gateway::start(upstream.addr).await;
    let forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.";
    // Unprotected path: removed, nothing put back.
    let reply = gw
        .send(
            Request::get("/userinfo")
                .header(INTERNAL, forged)
                .header(INTERNAL, "second")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(!upstream.last().headers.contains_key(INTERNAL));
    // Protected path: replaced by the gateway's own, exactly one value.
    let mut req = post(
        TOKEN_PATH,
        Some("application/x-www-form-urlencoded"),
        &[],
        "grant_type=client_credentials",
    );
    req.headers_mut().insert(
        "authorization",
        basic(BASIC_ID, BASIC_SECRET).parse().unwrap(),
    );
    req.headers_mut().insert(INTERNAL, forged.parse().unwrap());
    let reply = gw.send(req).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let rec = upstream.last();
    let values: Vec<_> = rec.headers.get_all(INTERNAL).iter().collect();
    assert_eq!(values.len(), 1);
    assert_ne!(values[0], forged);
    // A rejected request with a forged header reaches nobody.
    let before = upstream.records().len();
    let mut req = form(TOKEN_PATH, "grant_type=client_credentials");
    req.headers_mut().insert(INTERNAL, forged.parse().unwrap());
    let reply = gw.send(req).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(upstream.records().len(), before);
}

#[tokio::test]
async fn unprotected_bodies_are_streamed_byte_for_byte_f3() {
    let (probe_tx, probe_rx) = oneshot::channel();
    let upstream =
        RecordingUpstream::start(Behaviour::StreamProbe(Arc::new(Mutex::new(Some(probe_tx)))))
            .await;
    let gw = Gateway::start(upstream.addr).await;

    // 4 MiB, far over limits.max_body (64 KiB), in two parts: the second is only sent
    // after the upstream has seen the first, which is impossible if the gateway buffered.
    let first: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let second: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 241) as u8).collect();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(4);
    let body = StreamBody::new(tokio_stream_from(rx));
    let req = Request::post("/upload")
        .header("host", "auth.example.com")
        .header("content-type", "application/octet-stream")
        .body(body)
        .unwrap();

    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let mut send = h1_over_tls(tcp, &gw.pki.ca_der).await;
    let response = tokio::spawn(async move { send.send_request(req).await });

    tx.send(Ok(http_body::Frame::data(Bytes::from(first.clone()))))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), probe_rx)
        .await
        .expect("the upstream got the first part before the body ended: streamed, not buffered")
        .unwrap();
    tx.send(Ok(http_body::Frame::data(Bytes::from(second.clone()))))
        .await
        .unwrap();
    drop(tx);
    let res = response.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let _ = res.into_body().collect().await.unwrap();
    let rec = upstream.last();
    let mut expected = first;
    expected.extend_from_slice(&second);
    assert_eq!(rec.body.len(), expected.len());
    assert!(rec.body == expected, "body forwarded byte-for-byte");
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn upstream_down_is_502_json_and_the_gateway_keeps_serving_f4() {
    let gw = Gateway::start(refused_addr().await).await;
    let mut client = gw.client(false).await;
    for _ in 0..2 {
        let mut req = form(TOKEN_PATH, "grant_type=client_credentials");
        req.headers_mut().insert(
            "authorization",
            basic(BASIC_ID, BASIC_SECRET).parse().unwrap(),
        );
        let reply = client.send(req).await;
        assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
        assert_eq!(reply.error(), "temporarily_unavailable");
        assert_eq!(reply.headers["content-type"], "application/json");
        assert_eq!(reply.headers["cache-control"], "no-store");
        assert_eq!(reply.headers["pragma"], "no-cache");
    }
    let reply = gw
        .send(Request::get("/x").body(Full::new(Bytes::new())).unwrap())
        .await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn slow_upstream_is_504_json_f5() {
    // The upstream answers after 10 s; upstream.timeout is 2 s.
    let upstream = RecordingUpstream::start(Behaviour::Delay(Duration::from_secs(10))).await;
    let gw = Gateway::start(upstream.addr).await;
    let reply = gw
        .send(Request::get("/slow").body(Full::new(Bytes::new())).unwrap())
        .await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.error(), "temporarily_unavailable");
}

#[tokio::test]
async fn shutdown_drains_the_request_in_flight() {
    let gate = Arc::new(Notify::new());
    let mut upstream = RecordingUpstream::start(Behaviour::Gate(gate.clone())).await;
    let mut gw = Gateway::start(upstream.addr).await;
    let admin = gw.admin.unwrap();
    assert_eq!(admin_get(admin, "/readyz").await.0, 200);

    let mut client = gw.client(false).await;
    let mut req = form(TOKEN_PATH, "grant_type=client_credentials");
    req.headers_mut().insert(
        "authorization",
        basic(BASIC_ID, BASIC_SECRET).parse().unwrap(),
    );
    let in_flight = tokio::spawn(async move { client.send(req).await });
    upstream
        .arrivals
        .recv()
        .await
        .expect("request reached the upstream");

    gw.begin_shutdown();
    // Readiness turns false while the request is still held by the upstream.
    let mut status = 200;
    for _ in 0..200 {
        status = admin_get(admin, "/readyz").await.0;
        if status == 503 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(status, 503, "/readyz reports draining");
    assert!(gw.lifecycle.is_draining());
    // The listener is closed before readiness flips: new connections are refused.
    assert!(
        tokio::net::TcpStream::connect(gw.addr).await.is_err(),
        "listener closed"
    );

    gate.notify_one();
    let reply = in_flight.await.unwrap();
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "in-flight request completed during drain"
    );
    let result = tokio::time::timeout(Duration::from_secs(20), &mut gw.task)
        .await
        .expect("serve returns after the drain");
    assert!(result.unwrap().is_ok());
}

#[tokio::test]
async fn admin_health_endpoints() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw = Gateway::start(upstream.addr).await;
    let admin = gw.admin.unwrap();
    assert_eq!(admin_get(admin, "/healthz").await, (200, "ok\n".to_owned()));
    assert_eq!(
        admin_get(admin, "/readyz").await,
        (200, "ready\n".to_owned())
    );
    assert_eq!(admin_get(admin, "/nope").await.0, 404);
}

#[tokio::test]
async fn unprotected_deny_mode_refuses_with_json() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw = Gateway::start_with(upstream.addr, "unprotected: deny\n").await;
    let reply = gw
        .send(
            Request::get("/.well-known/openid-configuration")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error(), "invalid_request");
    assert!(upstream.records().is_empty());
}

#[tokio::test]
async fn encoded_paths_cannot_dodge_protection() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw = Gateway::start(upstream.addr).await;
    // %74 is `t`: still the token endpoint, so credentials are required.
    let reply = gw
        .send(form("/oauth2/%74oken", "grant_type=client_credentials"))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = gw
        .send(form("/x/../oauth2/token", "grant_type=client_credentials"))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // Placeholders match one segment.
    let reply = gw
        .send(form(
            "/acme/app/oauth2/token",
            "grant_type=client_credentials",
        ))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(upstream.records().is_empty());
}

#[test]
fn check_command_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        r#"
listen: "nowhere"
tls: { cert_file: missing.crt, key_file: missing.key }
upstream: { url: "ftp://x", timeout: 5 parsecs }
public_url: "https://auth.example.com"
issuer: "https://auth.example.com"
internal_header: { keys: [{ id: k1, value: short }] }
clients:
  - client_id: a
    auth_method: client_secret_jwt
    secrets: [{ value: "too-short" }, { file: nope.secret }]
  - client_id: a
    auth_method: client_secret_magic
    secrets: [{ env: SECRETGATE_TEST_UNSET_VAR }]
"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "listen:",
        "tls.cert_file: no such file",
        "tls.key_file: no such file",
        "upstream.url:",
        "upstream.timeout:",
        "internal_header.keys[0]: key is 5 bytes",
        "clients[0].secrets[0]: client `a` uses client_secret_jwt",
        "clients[0].secrets[1].file: cannot read",
        "clients[1].client_id: client `a` is registered twice",
        "clients[1].auth_method:",
        "clients[1].secrets[0].env: environment variable SECRETGATE_TEST_UNSET_VAR is not set",
    ] {
        assert!(stderr.contains(needle), "missing `{needle}` in:\n{stderr}");
    }
}

#[test]
fn check_command_accepts_the_example_config_shape() {
    let pki = Pki::generate();
    let yaml = config_yaml(&pki, "127.0.0.1:9".parse().unwrap(), "");
    let path = pki.path().join("ok.yaml");
    std::fs::write(&path, yaml).unwrap();
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
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (3 clients)"));
    // The inline demo secret is flagged.
    assert!(String::from_utf8_lossy(&out.stderr).contains("inline secret"));
}
