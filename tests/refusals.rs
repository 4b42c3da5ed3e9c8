//! Refusals are delivered, and request heads are timed (docs/design.md §3.1, §3.3, §8.7).
//!
//! - HTTP/1.1 over TLS, a client that writes its whole request before reading: a head of
//!   20 KB, 64 KiB or 1 MiB (over `limits.max_header_size`) gets the gateway's JSON `431`
//!   in every one of 50 runs, a malformed head its JSON `400`, a body over `max_body` its
//!   `413`; every byte the client sent was taken (no reset), and the answer ends with TLS
//!   close_notify. Each refusal is counted (`route="invalid"`) and nothing is forwarded.
//! - HTTP/2: a header list over `max_header_size` gets the gateway's JSON `431` on its
//!   stream and the connection goes on; one over twice that (h2's own bound) gets h2's
//!   answer, never a hang.
//! - Keep-alive: an idle kept-alive connection outlives `header_read_timeout` and is
//!   closed at `keepalive_timeout`; a head that started must be complete within
//!   `header_read_timeout` from its first byte (→ `408`), also after a long idle wait.
//!
//! Waits are on the gateway's answers and closes, bounded; the only deliberate waits are
//! the idle periods the keep-alive tests are about.

mod support;
#[path = "support/wire.rs"]
mod wire;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wire::{write_then_read, End, RawResponse};

const RUNS: usize = 50;
const BOUND: Duration = Duration::from_secs(20);
const TOO_LARGE: &str = "The request header fields are too large.";
const REFUSED_431: &str = "secretgate_requests_total{route=\"invalid\",status=\"431\"}";
const REFUSED_400: &str = "secretgate_requests_total{route=\"invalid\",status=\"400\"}";

struct Rig {
    upstream: RecordingUpstream,
    gw: Gateway,
}

impl Rig {
    async fn start(extra: &str) -> Rig {
        let upstream = RecordingUpstream::start(Behaviour::Token).await;
        let gw = Gateway::start_with(upstream.addr, extra).await;
        Rig { upstream, gw }
    }

    /// Writes `request` whole on a fresh HTTP/1.1 TLS connection, then reads the answer.
    async fn exchange(&self, request: &[u8]) -> Exchange {
        let tls = wire::connect(self.gw.addr, &self.gw.pki.ca_der, &[b"http/1.1"]).await;
        let exchange = write_then_read(tls, request, BOUND).await;
        Exchange(exchange)
    }

    async fn metric(&self, series: &str) -> f64 {
        sample(&self.gw.metrics().await, series)
    }
}

struct Exchange(wire::Exchange);

impl Exchange {
    /// The request was taken whole, and the answer read to a clean end: the one response.
    fn delivered(&self, what: &str) -> RawResponse {
        let e = &self.0;
        assert!(
            e.wrote.is_ok(),
            "{what}: the gateway did not take the whole request: {:?} (answer so far {:?})",
            e.wrote,
            String::from_utf8_lossy(&e.received)
        );
        assert!(
            matches!(e.end, End::CloseNotify),
            "{what}: the answer did not end with close_notify: {:?} after {:?}",
            e.end,
            String::from_utf8_lossy(&e.received)
        );
        RawResponse::parse(&e.received)
    }
}

fn head_with(size: usize) -> Vec<u8> {
    format!(
        "GET /info HTTP/1.1\r\nhost: auth.example.com\r\nx-big: {}\r\n\r\n",
        "a".repeat(size)
    )
    .into_bytes()
}

#[tokio::test]
async fn oversized_heads_get_the_gateways_431_in_every_run() {
    let rig = Rig::start("").await;
    assert_eq!(rig.gw.config.limits.max_header_size, 16 * 1024);
    for size in [20_000, 64 * 1024, 1024 * 1024] {
        let request = head_with(size);
        for run in 0..RUNS {
            let what = format!("{size}-byte header, run {run}");
            let res = rig.exchange(&request).await.delivered(&what);
            res.assert_gateway_error(431, "invalid_request", TOO_LARGE);
            assert_eq!(res.header("connection"), Some("close"), "{what}");
        }
    }
    assert_eq!(rig.metric(REFUSED_431).await, (3 * RUNS) as f64);
    assert!(rig.upstream.records().is_empty(), "nothing forwarded");
    // A head just under the limit is still served.
    let request = head_with(12 * 1024);
    let reply = rig
        .gw
        .send(
            Request::get("/info")
                .header("x-big", "b".repeat(12 * 1024))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{request:.0?}");
}

#[tokio::test]
async fn a_malformed_head_gets_the_gateways_400_in_every_run() {
    let rig = Rig::start("").await;
    // A header line without a colon, then what a client would send as the body.
    let mut request =
        b"POST /info HTTP/1.1\r\nhost: auth.example.com\r\ncontent-length: 200000\r\nno colon\r\n\r\n"
            .to_vec();
    request.extend(std::iter::repeat_n(b'x', 200_000));
    for run in 0..RUNS {
        let res = rig
            .exchange(&request)
            .await
            .delivered(&format!("run {run}"));
        res.assert_gateway_error(400, "invalid_request", "The request head is malformed.");
    }
    assert_eq!(rig.metric(REFUSED_400).await, RUNS as f64);
    assert!(rig.upstream.records().is_empty(), "nothing forwarded");
}

#[tokio::test]
async fn a_body_refused_with_413_is_taken_whole_and_the_413_read() {
    let rig = Rig::start("").await;
    // Declared over 1 MiB: answered at once, without reading the body (docs/design.md
    // §3.3); the connection then closes, lingering while the client sends it all.
    let body = "a".repeat(1536 * 1024);
    let request = format!(
        "POST {TOKEN_PATH} HTTP/1.1\r\nhost: auth.example.com\r\n\
         content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    for run in 0..20 {
        let res = rig
            .exchange(request.as_bytes())
            .await
            .delivered(&format!("run {run}"));
        res.assert_gateway_error(413, "invalid_request", "The request body is too large.");
    }
    assert!(rig.upstream.records().is_empty(), "nothing forwarded");
}

/// An HTTP/2 connection from hyper's client, and the task driving it.
async fn h2_client(
    gw: &Gateway,
) -> (
    hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
) {
    let tls = wire::connect(gw.addr, &gw.pki.ca_der, &[b"h2"]).await;
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("HTTP/2 handshake");
    (send, tokio::spawn(conn))
}

fn h2_get(path: &str, big: usize) -> Request<Full<Bytes>> {
    let mut req = Request::get(format!("https://auth.example.com{path}"));
    if big > 0 {
        req = req.header("x-big", "a".repeat(big));
    }
    req.body(Full::new(Bytes::new())).unwrap()
}

#[tokio::test]
async fn oversized_http2_header_lists_get_a_431_on_their_stream_never_a_hang() {
    let rig = Rig::start("").await;
    // Over max_header_size, within h2's bound (twice it): the gateway's 431, on the
    // stream; the connection serves the next request.
    let (mut send, _conn) = h2_client(&rig.gw).await;
    for _ in 0..3 {
        let res = tokio::time::timeout(BOUND, send.send_request(h2_get("/info", 20_000)))
            .await
            .expect("an answer, not a hang")
            .expect("a response on the stream");
        assert_eq!(res.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(res.headers()["content-type"], "application/json");
        assert_eq!(res.headers()["cache-control"], "no-store");
        assert!(res.headers().contains_key("x-request-id"));
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"], "invalid_request");
        assert_eq!(json["error_description"], TOO_LARGE);
    }
    let res = send.send_request(h2_get("/info", 0)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(rig.metric(REFUSED_431).await, 3.0);
    assert_eq!(
        rig.upstream.records().len(),
        1,
        "only the small request forwarded"
    );

    // Over h2's own bound (docs/design.md §8.7): in a few frames, h2's own 431 (no body)
    // and the stream reset; in more CONTINUATION frames than h2 accepts, GOAWAY
    // ENHANCE_YOUR_CALM. Never a hang.
    let (mut send, _conn) = h2_client(&rig.gw).await;
    let res = tokio::time::timeout(BOUND, send.send_request(h2_get("/info", 64 * 1024)))
        .await
        .expect("an answer, not a hang")
        .expect("a response on the stream");
    assert_eq!(res.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(
        !res.headers().contains_key("content-type"),
        "h2's own answer"
    );
    let res = send.send_request(h2_get("/info", 0)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the connection goes on");

    let (mut send, conn) = h2_client(&rig.gw).await;
    let e = tokio::time::timeout(BOUND, send.send_request(h2_get("/info", 1024 * 1024)))
        .await
        .expect("an answer, not a hang")
        .expect_err("a connection error");
    assert!(
        format!("{e:?}").contains("ENHANCE_YOUR_CALM"),
        "GOAWAY ENHANCE_YOUR_CALM, got {e:?}"
    );
    tokio::time::timeout(BOUND, conn)
        .await
        .expect("the connection ends")
        .expect("connection task")
        .expect_err("ended by the GOAWAY");
    assert_eq!(
        rig.upstream.records().len(),
        2,
        "only the small requests forwarded"
    );
}

// ---------------------------------------------------------------------------------------
// Keep-alive and head timing.

/// An HTTP/1.1 connection from hyper's client, and the task driving it: it ends when the
/// gateway closes the connection.
async fn h1_client(
    gw: &Gateway,
) -> (
    hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
) {
    let tls = wire::connect(gw.addr, &gw.pki.ca_der, &[b"http/1.1"]).await;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("HTTP/1.1 handshake");
    (send, tokio::spawn(conn))
}

async fn get_ok(send: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>) {
    send.ready().await.expect("connection open");
    let res = send
        .send_request(
            Request::get("/info")
                .header("host", "auth.example.com")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .expect("response");
    assert_eq!(res.status(), StatusCode::OK);
    res.into_body().collect().await.unwrap();
}

#[tokio::test]
async fn an_idle_kept_alive_connection_outlives_header_read_timeout_until_keepalive_timeout() {
    let rig = Rig::start("limits: { header_read_timeout: 1s, keepalive_timeout: 3s }\n").await;
    let (mut send, conn) = h1_client(&rig.gw).await;
    get_ok(&mut send).await;
    // Idle for longer than header_read_timeout: the connection is still there.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!conn.is_finished(), "closed at header_read_timeout");
    get_ok(&mut send).await;
    let idle = Instant::now();
    tokio::time::timeout(Duration::from_secs(15), conn)
        .await
        .expect("the gateway closed the idle connection")
        .expect("connection task")
        .expect("a clean close");
    let after = idle.elapsed();
    assert!(
        after >= Duration::from_millis(2500),
        "closed {after:?} after the last response: not keepalive_timeout (3 s)"
    );
    assert!(
        send.ready().await.is_err(),
        "the connection takes no more requests"
    );
}

/// Writes `partial` (a head that never completes) and reads until the gateway closes;
/// returns the answer and how long after the first byte it came.
async fn stalled_head(tls: wire::Tls, partial: &[u8]) -> (RawResponse, Duration) {
    let start = Instant::now();
    let e = write_then_read(tls, partial, BOUND).await;
    let after = start.elapsed();
    let res = Exchange(e).delivered("a stalled head");
    (res, after)
}

#[tokio::test]
async fn a_head_that_started_must_end_within_header_read_timeout() {
    let rig = Rig::start("limits: { header_read_timeout: 1s, keepalive_timeout: 10s }\n").await;
    let stall = b"GET /info HTTP/1.1\r\nhost: auth.exam";
    // The first request of a connection.
    let tls = wire::connect(rig.gw.addr, &rig.gw.pki.ca_der, &[b"http/1.1"]).await;
    let (res, after) = stalled_head(tls, stall).await;
    res.assert_gateway_error(
        408,
        "invalid_request",
        "The request head was not received in time.",
    );
    assert!(after >= Duration::from_secs(1), "{after:?}");
    assert!(
        after < Duration::from_secs(10),
        "not keepalive_timeout: {after:?}"
    );

    // After a served request and an idle wait longer than header_read_timeout: the head
    // still has header_read_timeout from its first byte (not from the start of the wait,
    // which would refuse it at once; not keepalive_timeout).
    let mut tls = wire::connect(rig.gw.addr, &rig.gw.pki.ca_der, &[b"http/1.1"]).await;
    tls.write_all(b"GET /info HTTP/1.1\r\nhost: auth.example.com\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("upstream-token") {
        let n = tokio::time::timeout(BOUND, tls.read(&mut buf))
            .await
            .expect("a response")
            .unwrap();
        assert!(n > 0, "closed before the response: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (res, after) = stalled_head(tls, stall).await;
    res.assert_gateway_error(
        408,
        "invalid_request",
        "The request head was not received in time.",
    );
    assert!(after >= Duration::from_secs(1), "{after:?}");
    assert!(
        after < Duration::from_secs(10),
        "not keepalive_timeout: {after:?}"
    );
    assert_eq!(
        rig.metric("secretgate_requests_total{route=\"invalid\",status=\"408\"}")
            .await,
        2.0
    );
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_at_header_read_timeout() {
    let rig = Rig::start("limits: { header_read_timeout: 1s, keepalive_timeout: 10s }\n").await;
    let tls = wire::connect(rig.gw.addr, &rig.gw.pki.ca_der, &[b"http/1.1"]).await;
    let start = Instant::now();
    let e = write_then_read(tls, b"", BOUND).await;
    let after = start.elapsed();
    assert!(e.received.is_empty(), "no answer is owed: {:?}", e.received);
    assert!(matches!(e.end, End::CloseNotify), "{:?}", e.end);
    assert!(after >= Duration::from_millis(900), "{after:?}");
    assert!(
        after < Duration::from_secs(10),
        "not keepalive_timeout: {after:?}"
    );
}
