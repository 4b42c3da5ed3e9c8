//! Containment over real TLS: no credential leaves through a route that does not
//! authenticate, and the connection-level limits hold.
//!
//! - Lookalikes of a protected path (`/oauth2/token;x`, `/acme/app/oauth2/token;v=1`,
//!   `/OAuth2/Token`, `%2574oken`, …) are refused with `400 invalid_request` (the route
//!   layer's "not in canonical form") for every authentication method and counted as
//!   `route="invalid"`; nothing reaches the upstream.
//! - Unprotected paths refuse Basic credentials, credential parameters in the query, and
//!   `client_secret` / `client_assertion` in a form body (urlencoded or multipart); other
//!   schemes and bodies pass unchanged. A form body is read under `limits.max_body`: over
//!   it → 413, nothing forwarded.
//! - A form body with a `Content-Encoding` is refused (415), protected or not.
//! - A malformed chunked body is the client's error (400), not an upstream failure.
//! - Request heads over `limits.max_header_size` get 431; a protected endpoint refuses a
//!   query unless `protected_query: allow`, which binds it in the internal header.
//! - Gateway-set headers sent by the client are dropped, odd request ids replaced, and a
//!   `Connection` header cannot remove the internal header.
//! - `limits.max_connections` closes connections over the cap before TLS, and
//!   `limits.idle_timeout` closes an idle HTTP/2 connection.
//!
//! Every wait is on the gateway's own answers, the recording upstream or the admin
//! listener; the only timeouts are bounds.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use secretgate::{verify_internal_header, Expected, VerifyError};
use support::RecordingRig as Rig;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const INTERNAL: &str = "x-authenticated-client";
const FORM: &str = "application/x-www-form-urlencoded";
const GRANT: &str = "grant_type=client_credentials";
const INVALID_400: &str = "secretgate_requests_total{route=\"invalid\",status=\"400\"}";
const REFUSED_LIMIT: &str = "secretgate_connections_refused_total{reason=\"limit\"}";
const OPEN_CONNECTIONS: &str = "secretgate_connections";
/// A `curl -F` style boundary.
const BOUNDARY: &str = "------------------------d74496d66958873e";

/// Spellings a lenient server may route to a protected endpoint (or that no two servers
/// read alike): `/oauth2/token`, or the tenant pattern `/{tid}/{aid}/oauth2/token`. The
/// normalisation each stands for is in docs/design.md §4.5. `\` is a valid path byte for
/// the `http` crate, so hyper's client sends it as is.
const LOOKALIKES: [&str; 27] = [
    // `;…` path parameters (Tomcat, Jetty, Spring, WebLogic), also encoded.
    "/oauth2/token;x",
    "/oauth2/token;jsessionid=ABC",
    "/oauth2;x/token",
    "/oauth2/token%3Bx",
    "/acme/app/oauth2/token;x",
    "/acme/app/oauth2/token;v=1",
    "/acme/app/oauth2/token;jsessionid=ABC",
    // Letter case, with Unicode case folding (the Kelvin sign is `k`).
    "/OAuth2/Token",
    "/oauth2/TOKEN",
    "/OAUTH2/TOKEN",
    "/acme/app/OAuth2/token",
    "/oauth2/to%E2%84%AAen",
    // Backslash, encoded or literal (Windows servers).
    "/oauth2%5Ctoken",
    "/oauth2\\token",
    // Trailing dots and white space, NTFS streams (IIS).
    "/oauth2/token.",
    "/oauth2/token..",
    "/oauth2/token%20",
    "/oauth2/token::$DATA",
    // Full-width letters (IIS best fit): `/oauth2/ｔｏｋｅｎ`.
    "/oauth2/%EF%BD%94%EF%BD%8F%EF%BD%8B%EF%BD%85%EF%BD%8E",
    // A file extension (Spring suffix pattern matching).
    "/oauth2/token.json",
    "/oauth2/token.do",
    // Decoded twice (IIS, frameworks that decode again).
    "/oauth2/%2574oken",
    "/oauth2%252Ftoken",
    "/oauth2/x/%252e%252e/token",
    "/oauth2/%252e/token",
    "/acme/app/oauth2/%2574oken",
    // Dot segments once path parameters are cut (Tomcat).
    "/x/..;/oauth2/token",
];

/// What the gateway answers for every refused path, lookalike or not canonical.
const NOT_CANONICAL: &str = "The request path is not in canonical form.";

impl Rig {
    async fn metric(&self, series: &str) -> f64 {
        sample(&self.gw.metrics().await, series)
    }
}

/// A gateway-written `invalid_request` with `status`: JSON, no-store, not the upstream's.
fn assert_refused(reply: &Reply, status: StatusCode, what: &str) {
    assert_eq!(reply.status, status, "{what}: {:?}", reply.body);
    assert_eq!(reply.headers["content-type"], "application/json", "{what}");
    assert_eq!(reply.headers["cache-control"], "no-store", "{what}");
    assert_eq!(reply.headers["pragma"], "no-cache", "{what}");
    assert!(reply.headers.get("x-upstream").is_none(), "{what}");
    let body = reply.json();
    assert_eq!(body["error"], "invalid_request", "{what}: {body}");
    assert!(body["error_description"].is_string(), "{what}: {body}");
}

fn assert_body_has_no_secret(reply: &Reply, what: &str) {
    let body = String::from_utf8_lossy(&reply.body);
    for secret in [BASIC_SECRET, POST_SECRET, JWT_SECRET] {
        assert!(!body.contains(secret), "{what}: secret echoed in {body}");
    }
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).body(Full::new(Bytes::new())).unwrap()
}

fn basic_form(path: &str, body: &str) -> Request<Full<Bytes>> {
    post(
        path,
        Some(FORM),
        &[("authorization", &basic(BASIC_ID, BASIC_SECRET))],
        body.to_owned(),
    )
}

fn post_form(path: &str) -> Request<Full<Bytes>> {
    form(
        path,
        &format!("{GRANT}&client_id={POST_ID}&client_secret={POST_SECRET}"),
    )
}

/// A valid assertion for the jwt client whose `aud` is the endpoint at `path`.
fn assertion_at(path: &str) -> String {
    let mut claims = jwt_claims();
    claims["aud"] = format!("{PUBLIC_URL}{path}").into();
    mint(hs256(), claims, JWT_SECRET.as_bytes())
}

fn multipart(parts: &[(&str, Option<&str>, &str)]) -> String {
    let mut body = String::new();
    for (name, filename, value) in parts {
        body.push_str(&format!("--{BOUNDARY}\r\n"));
        match filename {
            Some(f) => body.push_str(&format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                 Content-Type: text/plain\r\n\r\n"
            )),
            None => body.push_str(&format!(
                "Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"
            )),
        }
        body.push_str(value);
        body.push_str("\r\n");
    }
    body.push_str(&format!("--{BOUNDARY}--\r\n"));
    body
}

fn multipart_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// Writes `request` on a fresh HTTP/1.1 TLS connection while reading, and returns every
/// byte the gateway sent until it closed the connection (bounded by 20 s).
async fn raw_exchange(gw: &Gateway, request: Vec<u8>) -> Vec<u8> {
    let tls = tls_connect(gw, &[b"http/1.1"])
        .await
        .expect("TLS handshake");
    let (mut rd, mut wr) = tokio::io::split(tls);
    let writer = tokio::spawn(async move {
        // The gateway may close before it has read everything: write errors are expected.
        let _ = wr.write_all(&request).await;
        let _ = wr.flush().await;
        wr
    });
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 4096];
        // EOF, or an error (a close without close_notify, a reset) ends the answer.
        while let Ok(n @ 1..) = rd.read(&mut buf).await {
            out.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("the gateway closed the connection within 20 s");
    let _ = writer.await;
    out
}

/// The status code of a raw HTTP/1.1 response, and its body (after the head).
fn parse_raw(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP/1.1 response, got {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn lookalike_paths_are_refused_for_every_method_and_never_forwarded() {
    let rig = Rig::start("").await;
    let before = rig.metric(INVALID_400).await;
    let mut sent = 0.0;
    for path in LOOKALIKES {
        let requests = [
            ("basic", basic_form(path, GRANT)),
            ("post", post_form(path)),
            ("jwt", form(path, &assertion_body(&assertion()))),
        ];
        for (method, req) in requests {
            let what = format!("{method} {path}");
            let (reply, forwarded) = rig.send(req).await;
            assert_refused(&reply, StatusCode::BAD_REQUEST, &what);
            // The route layer's answer, not containment's ("credentials are accepted only
            // by the endpoints that authenticate"), which would also be a 400.
            assert_eq!(reply.json()["error_description"], NOT_CANONICAL, "{what}");
            assert_body_has_no_secret(&reply, &what);
            assert!(forwarded.is_none(), "{what} reached the upstream");
            sent += 1.0;
        }
    }
    assert!(
        rig.upstream.records().is_empty(),
        "the upstream saw nothing"
    );
    assert_eq!(
        rig.metric(INVALID_400).await - before,
        sent,
        "every lookalike counted as route=\"invalid\""
    );
    // The same credentials on the real paths are accepted: the path alone was refused.
    for path in [TOKEN_PATH, "/acme/app/oauth2/token"] {
        for (method, req) in [
            ("basic", basic_form(path, GRANT)),
            ("post", post_form(path)),
            ("jwt", form(path, &assertion_body(&assertion_at(path)))),
        ] {
            let (reply, forwarded) = rig.send(req).await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "{method} {path}: {:?}",
                reply.body
            );
            let rec = forwarded.expect("forwarded");
            assert_eq!(rec.uri.path(), path);
            assert_no_secret(&rec);
        }
    }
    // Near the protected paths but read as them by no server: forwarded as unprotected.
    for path in [
        "/oauth2/tokens",
        "/oauth2/token/extra",
        "/acme/oauth2/token;x",
    ] {
        let (reply, forwarded) = rig.send(get(path)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {:?}", reply.body);
        assert_eq!(forwarded.expect("forwarded").uri.path(), path);
    }
}

#[tokio::test]
async fn credentials_on_unprotected_paths_are_refused_and_other_traffic_passes() {
    let rig = Rig::start("").await;
    let refused: Vec<(&str, Request<Full<Bytes>>)> = vec![
        (
            "Basic header",
            Request::get("/api/session")
                .header("authorization", basic(BASIC_ID, BASIC_SECRET))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        ),
        (
            "client_secret in the query",
            get(&format!(
                "/.well-known/openid-configuration?client_id={POST_ID}&client_secret={POST_SECRET}"
            )),
        ),
        (
            "Client_Secret in the query",
            get(&format!("/api/session?a=1&Client_Secret={POST_SECRET}")),
        ),
        (
            "client_assertion in the query",
            get(&format!(
                "/.well-known/openid-configuration?{}",
                assertion_body(&assertion())
            )),
        ),
        (
            "client_assertion alone in the query",
            get(&format!("/api/session?client_assertion={}", assertion())),
        ),
        (
            "client_secret in an urlencoded body",
            form(
                "/api/session",
                &format!("username=a&client_id={POST_ID}&client_secret={POST_SECRET}"),
            ),
        ),
        (
            "client_secret in a multipart body",
            post(
                "/api/session",
                Some(&multipart_type()),
                &[],
                multipart(&[
                    ("client_id", None, POST_ID),
                    ("client_secret", None, POST_SECRET),
                ]),
            ),
        ),
        (
            "client_assertion in an urlencoded body",
            form(
                "/.well-known/openid-configuration",
                &assertion_body(&assertion()),
            ),
        ),
    ];
    for (what, req) in refused {
        let (reply, forwarded) = rig.send(req).await;
        assert_refused(&reply, StatusCode::BAD_REQUEST, what);
        assert_body_has_no_secret(&reply, what);
        assert!(forwarded.is_none(), "{what} reached the upstream");
    }
    assert!(rig.upstream.records().is_empty());

    // Controls: forwarded unchanged.
    for auth in ["Bearer abc", "DPoP abc"] {
        let (reply, forwarded) = rig
            .send(
                Request::get("/api/session")
                    .header("authorization", auth)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{auth}: {:?}", reply.body);
        let rec = forwarded.expect("forwarded");
        let values: Vec<_> = rec.headers.get_all("authorization").iter().collect();
        assert_eq!(values, [auth], "the upstream sees the header as sent");
    }
    // A credential name inside a JSON string is no member (tests/containment_readings.rs
    // has the JSON members that are refused).
    let json = r#"{"note":"client_secret=abc","title":"not a form"}"#;
    let urlencoded = "username=alice&password=p%40ss+word&remember=1";
    let upload = multipart(&[
        ("title", None, "notes"),
        (
            "file",
            Some("notes.txt"),
            "client_secret=x\nclient_assertion=y",
        ),
    ]);
    let mp = multipart_type();
    for (content_type, body) in [
        ("application/json", json.to_owned()),
        (FORM, urlencoded.to_owned()),
        (mp.as_str(), upload),
    ] {
        let (reply, forwarded) = rig
            .send(post("/api/session", Some(content_type), &[], body.clone()))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{content_type}: {:?}",
            reply.body
        );
        let rec = forwarded.expect("forwarded");
        assert_eq!(rec.uri.path(), "/api/session");
        assert_eq!(rec.headers["content-type"], content_type);
        assert_eq!(rec.body, body.as_bytes(), "{content_type}: byte for byte");
    }
}

#[tokio::test]
async fn unprotected_form_bodies_over_max_body_get_413_and_are_not_forwarded() {
    let rig = Rig::start("limits: { max_body: 1KiB }\n").await;
    let too_large = "The request body is too large.";
    // A clean form (no credential in it) one byte over the limit: refused for its size.
    let over = format!("note={}", "a".repeat(1024 - "note=".len() + 1));
    assert_eq!(over.len(), 1025);

    // Declared length over the limit, on a kept-alive connection: refused, and the
    // connection stays usable for the next request (docs/design.md §3.3).
    let mut client = rig.gw.client(false).await;
    let reply = client.send(form("/api/session", &over)).await;
    assert_refused(&reply, StatusCode::PAYLOAD_TOO_LARGE, "declared");
    assert_eq!(reply.json()["error_description"], too_large);
    assert!(rig.upstream.records().is_empty(), "nothing forwarded");
    let reply = client.send(form("/api/session", "note=after")).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(rig.upstream.records().len(), 1);
    assert_eq!(rig.upstream.records()[0].body, "note=after");

    // A client still sending a large body reads the 413, not a connection reset, and the
    // connection goes on (the rest of the body was read and discarded).
    let large = format!("note={}", "b".repeat(512 * 1024));
    let reply = client.send(form("/api/session", &large)).await;
    assert_refused(
        &reply,
        StatusCode::PAYLOAD_TOO_LARGE,
        "declared, still sending",
    );
    let reply = client.send(form("/api/session", "note=again")).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(rig.upstream.records().len(), 2);
    assert_eq!(rig.upstream.records()[1].body, "note=again");

    // No declared length (chunked): refused once the running count passes the limit.
    let mut chunked = format!(
        "POST /api/session HTTP/1.1\r\nhost: auth.example.com\r\ncontent-type: {FORM}\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    for piece in over.as_bytes().chunks(256) {
        chunked.push_str(&format!(
            "{:x}\r\n{}\r\n",
            piece.len(),
            std::str::from_utf8(piece).unwrap()
        ));
    }
    chunked.push_str("0\r\n\r\n");
    let raw = raw_exchange(&rig.gw, chunked.into_bytes()).await;
    let (status, body) = parse_raw(&raw);
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&raw));
    assert!(body.contains(too_large), "{body}");
    assert_eq!(rig.upstream.records().len(), 2, "nothing more forwarded");

    // Control: exactly at the limit, forwarded byte for byte.
    let at = &over[..1024];
    let (reply, forwarded) = rig.send(form("/api/session", at)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(forwarded.expect("forwarded").body, at.as_bytes());
}

#[tokio::test]
async fn content_encoded_form_bodies_are_refused_with_415() {
    let rig = Rig::start("").await;
    let gzip = [("content-encoding", "gzip")];
    let (reply, forwarded) = rig
        .send(post("/api/session", Some(FORM), &gzip, "username=a"))
        .await;
    assert_refused(
        &reply,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unprotected gzip",
    );
    assert!(forwarded.is_none());
    let (reply, forwarded) = rig
        .send(post(
            TOKEN_PATH,
            Some(FORM),
            &[
                ("authorization", &basic(BASIC_ID, BASIC_SECRET)),
                ("content-encoding", "gzip"),
            ],
            GRANT,
        ))
        .await;
    assert_refused(&reply, StatusCode::UNSUPPORTED_MEDIA_TYPE, "protected gzip");
    assert!(forwarded.is_none());
    assert!(rig.upstream.records().is_empty());
    // Control: `identity` is no coding; the same form is forwarded.
    let (reply, forwarded) = rig
        .send(post(
            "/api/session",
            Some(FORM),
            &[("content-encoding", "identity")],
            "username=a",
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(forwarded.expect("forwarded").body, "username=a");
}

#[tokio::test]
async fn a_malformed_chunked_body_is_the_clients_error_not_the_upstreams() {
    let rig = Rig::start("").await;
    let before = upstream_errors(&rig.gw.metrics().await);
    let raw = raw_exchange(
        &rig.gw,
        b"POST /upload HTTP/1.1\r\nhost: auth.example.com\r\ncontent-type: application/octet-stream\r\n\
          transfer-encoding: chunked\r\nconnection: close\r\n\r\nzz\r\nnot a chunk\r\n"
            .to_vec(),
    )
    .await;
    let (status, body) = parse_raw(&raw);
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&raw));
    assert!(body.contains("\"error\":\"invalid_request\""), "{body}");
    assert_eq!(
        upstream_errors(&rig.gw.metrics().await),
        before,
        "not counted as an upstream failure"
    );
}

#[tokio::test]
async fn oversized_request_heads_get_431_and_large_ones_under_the_limit_pass() {
    let rig = Rig::start("").await;
    let big = "a".repeat(64 * 1024);
    let request = format!(
        "GET /info HTTP/1.1\r\nhost: auth.example.com\r\nx-big: {big}\r\nconnection: close\r\n\r\n"
    );
    let raw = raw_exchange(&rig.gw, request.into_bytes()).await;
    let (status, body) = parse_raw(&raw);
    assert_eq!(status, 431, "{}", String::from_utf8_lossy(&raw));
    assert!(
        body.contains("\"invalid_request\""),
        "the gateway's JSON: {body}"
    );
    assert!(rig.upstream.records().is_empty(), "nothing forwarded");

    let twelve = "b".repeat(12 * 1024);
    let (reply, forwarded) = rig
        .send(
            Request::get("/info")
                .header("x-big", &twelve)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        forwarded.expect("forwarded").headers["x-big"],
        twelve.as_str()
    );
}

#[tokio::test]
async fn a_query_on_a_protected_endpoint_is_refused_unless_allowed_and_then_signed() {
    let path = format!("{TOKEN_PATH}?foo=bar");
    let rig = Rig::start("").await;
    let (reply, forwarded) = rig.send(basic_form(&path, GRANT)).await;
    assert_refused(&reply, StatusCode::BAD_REQUEST, "query by default");
    assert!(forwarded.is_none());

    let rig = Rig::start("protected_query: allow\n").await;
    let (reply, forwarded) = rig.send(basic_form(&path, GRANT)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let rec = forwarded.expect("forwarded");
    assert_no_secret(&rec);
    assert_eq!(rec.uri.query(), Some("foo=bar"));
    let header = rec.headers[INTERNAL].to_str().unwrap().to_owned();
    let keys = secretgate::verify::keys_of(&rig.gw.config.internal_header.keys);
    let url = format!("{PUBLIC_URL}{TOKEN_PATH}");
    let expected = |query| Expected {
        now: Some(now()),
        ..Expected::request(
            "secretgate",
            "legacy-token-service",
            "POST",
            &url,
            query,
            &rec.body,
        )
    };
    let claims = verify_internal_header(&header, &keys, &expected(Some("foo=bar")))
        .expect("the header binds the query");
    assert_eq!(claims.client_id, BASIC_ID);
    assert_eq!(
        verify_internal_header(&header, &keys, &expected(Some("foo=baz"))),
        Err(VerifyError::Query)
    );
}

#[tokio::test]
async fn gateway_set_headers_are_dropped_and_odd_request_ids_replaced() {
    let rig = Rig::start("").await;
    let (reply, forwarded) = rig
        .send(
            Request::get("/info")
                .header("forwarded", "for=6.6.6.6;proto=https")
                .header("x-real-ip", "6.6.6.6")
                .header("x-forwarded-port", "8443")
                .header("x-original-url", "/oauth2/token")
                .header("x-forwarded-for", "6.6.6.6")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let rec = forwarded.expect("forwarded");
    for name in [
        "forwarded",
        "x-real-ip",
        "x-forwarded-port",
        "x-original-url",
    ] {
        assert!(!rec.headers.contains_key(name), "{name} was forwarded");
    }
    let xff: Vec<_> = rec.headers.get_all("x-forwarded-for").iter().collect();
    assert_eq!(xff, ["127.0.0.1"], "the peer address alone");

    let long = "r".repeat(200);
    for inbound in [long.as_str(), "has space"] {
        let (reply, forwarded) = rig
            .send(
                Request::get("/info")
                    .header("x-request-id", inbound)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        let seen = forwarded.expect("forwarded").headers["x-request-id"].clone();
        assert_ne!(seen, inbound, "replaced");
        assert!(!seen.is_empty() && seen.len() <= 64, "a short id: {seen:?}");
        assert_eq!(reply.headers["x-request-id"], seen, "echoed as forwarded");
    }
    let (reply, forwarded) = rig
        .send(
            Request::get("/info")
                .header("x-request-id", "abc-123")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(
        forwarded.expect("forwarded").headers["x-request-id"],
        "abc-123"
    );
    assert_eq!(reply.headers["x-request-id"], "abc-123");
}

#[tokio::test]
async fn a_connection_header_cannot_remove_the_internal_header() {
    let rig = Rig::start("").await;
    let (reply, forwarded) = rig
        .send(post(
            TOKEN_PATH,
            Some(FORM),
            &[
                ("authorization", &basic(BASIC_ID, BASIC_SECRET)),
                ("connection", INTERNAL),
            ],
            GRANT,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let rec = forwarded.expect("forwarded");
    let values: Vec<_> = rec.headers.get_all(INTERNAL).iter().collect();
    assert_eq!(values.len(), 1, "exactly one internal header");
    let url = format!("{PUBLIC_URL}{TOKEN_PATH}");
    let claims = verify_internal_header(
        values[0].to_str().unwrap(),
        &secretgate::verify::keys_of(&rig.gw.config.internal_header.keys),
        &Expected {
            now: Some(now()),
            ..Expected::request(
                "secretgate",
                "legacy-token-service",
                "POST",
                &url,
                None,
                &rec.body,
            )
        },
    )
    .expect("the internal header verifies");
    assert_eq!(claims.client_id, BASIC_ID);
    assert_eq!(claims.auth_method, "client_secret_basic");
}

/// A request over a new HTTP/1.1 connection, as an error instead of a panic.
async fn try_request(gw: &Gateway) -> Result<StatusCode, Box<dyn std::error::Error>> {
    let tls = tls_connect(gw, &[b"http/1.1"]).await?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let req = Request::get("/info")
        .header("host", "auth.example.com")
        .body(Full::new(Bytes::new()))?;
    let res = send.send_request(req).await?;
    let status = res.status();
    res.into_body().collect().await?;
    Ok(status)
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_before_tls() {
    let rig = Rig::start("limits: { max_connections: 2 }\n").await;
    let mut first = rig.gw.client(false).await;
    let mut second = rig.gw.client(false).await;
    assert_eq!(first.send(get("/one")).await.status, StatusCode::OK);
    assert_eq!(second.send(get("/two")).await.status, StatusCode::OK);
    assert_eq!(rig.metric(OPEN_CONNECTIONS).await, 2.0);

    // The third: accepted by the kernel, closed by the gateway before any TLS.
    match tls_connect(&rig.gw, &[b"http/1.1"]).await {
        Err(_) => {}
        Ok(mut tls) => {
            let mut buf = [0u8; 64];
            let read = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf)).await;
            assert!(
                matches!(read, Ok(Ok(0) | Err(_))),
                "the connection over the cap was kept open: {read:?}"
            );
        }
    }
    assert_eq!(rig.metric(REFUSED_LIMIT).await, 1.0);

    // Closing one frees a slot: wait for the gateway to report it closed, then connect
    // (retried, bounded, in case the slot is returned just after the gauge drops).
    drop(second);
    let mut served = false;
    for _ in 0..200 {
        if rig.metric(OPEN_CONNECTIONS).await <= 1.0 {
            if let Ok(status) = try_request(&rig.gw).await {
                assert_eq!(status, StatusCode::OK);
                served = true;
                break;
            }
        }
        tokio::task::yield_now().await;
    }
    assert!(served, "a new connection was served after one closed");
    assert_eq!(first.send(get("/again")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn idle_http2_connections_are_closed_by_the_gateway() {
    let rig = Rig::start("limits: { idle_timeout: 1s, header_read_timeout: 5s }\n").await;
    let tls = tls_connect(&rig.gw, &[b"h2"]).await.expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) = hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let res = send
        .send_request(get("https://auth.example.com/info"))
        .await
        .expect("response");
    assert_eq!(res.status(), StatusCode::OK);
    res.into_body().collect().await.unwrap();

    // The client keeps its side open (`send` is alive): only the gateway can end it.
    // Ok after a GOAWAY, or an error if the socket was cut: either way it ended.
    let _ended = tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("the gateway closed the idle connection within 10 s")
        .expect("connection task");
    assert!(
        send.ready().await.is_err(),
        "the connection takes no more requests"
    );
}
