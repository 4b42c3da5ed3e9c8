//! The two lookalike classes of docs/design.md §4.5 over real TLS, on every endpoint pattern
//! of the test configuration (the defaults and the `{tid}/{aid}` tenant pattern), with
//! Basic, post and jwt credentials and with none, over HTTP/1.1 and HTTP/2:
//!
//! - characters whose best-fit mapping or compatibility decomposition is `/`, `\`, `.` or a
//!   letter of the path (`%EF%BC%8F` FULLWIDTH SOLIDUS, U+2215 DIVISION SLASH, U+2044,
//!   U+29F8, U+FF3C, U+2216, U+FE68, U+FF0E, U+2024, full-width and mathematical letters),
//!   percent-encoded, and raw on the wire;
//! - ASP.NET cookieless session segments `(X(...))`, which IIS removes before routing.
//!
//! Every one is refused with the route layer's `400` and counted as `route="invalid"`; the
//! recording upstream sees nothing.

mod support;
#[path = "support/wire.rs"]
mod wire;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use support::*;

const FORM: &str = "application/x-www-form-urlencoded";
const GRANT: &str = "grant_type=client_credentials";
const NOT_CANONICAL: &str = "The request path is not in canonical form.";
const INVALID_400: &str = "secretgate_requests_total{route=\"invalid\",status=\"400\"}";

/// One request path per endpoint pattern of `support::config_yaml`: the token endpoint and
/// its tenant pattern, introspection, and the default revocation, PAR, device authorization
/// and authorization endpoints.
const ENDPOINTS: [&str; 7] = [
    "/oauth2/token",
    "/acme/app/oauth2/token",
    "/oauth2/introspect",
    "/oauth2/revoke",
    "/oauth2/par",
    "/oauth2/device_authorization",
    "/oauth2/authorize",
];

/// Percent-encoded characters read as `/` or `\` by best fit or NFKC.
const SLASHES: [&str; 7] = [
    "%EF%BC%8F", // U+FF0F FULLWIDTH SOLIDUS
    "%E2%88%95", // U+2215 DIVISION SLASH
    "%E2%81%84", // U+2044 FRACTION SLASH
    "%E2%A7%B8", // U+29F8 BIG SOLIDUS
    "%EF%BC%BC", // U+FF3C FULLWIDTH REVERSE SOLIDUS
    "%E2%88%96", // U+2216 SET MINUS
    "%EF%B9%A8", // U+FE68 SMALL REVERSE SOLIDUS
];

/// Percent-encoded characters read as `.`: a file extension once read (Spring).
const DOTS: [&str; 2] = [
    "%EF%BC%8E", // U+FF0E FULLWIDTH FULL STOP
    "%E2%80%A4", // U+2024 ONE DOT LEADER
];

fn encode(c: char) -> String {
    let mut buf = [0; 4];
    c.encode_utf8(&mut buf)
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect()
}

/// Every lookalike of `path` this test sends.
fn lookalikes(path: &str) -> Vec<String> {
    let (parent, last) = path.rsplit_once('/').unwrap();
    let mut out = Vec::new();
    for slash in SLASHES {
        out.push(format!("{parent}{slash}{last}"));
    }
    for dot in DOTS {
        out.push(format!("{path}{dot}json"));
    }
    // The first letter of the last segment, full-width and mathematical bold.
    let first = last.chars().next().unwrap();
    let rest = &last[1..];
    let offset = first as u32 - 'a' as u32;
    for lookalike in [0xFF41 + offset, 0x1D41A + offset] {
        let c = char::from_u32(lookalike).unwrap();
        out.push(format!("{parent}/{}{rest}", encode(c)));
    }
    // ASP.NET cookieless sessions, first and in the middle.
    out.push(format!("/(S(abc123)){path}"));
    out.push(format!("/(A(x))(S(y)){path}"));
    out.push(format!("{parent}/(S(z)){}", &path[parent.len()..]));
    out
}

fn credentials(path: &str) -> Vec<(&'static str, Request<Full<Bytes>>)> {
    let with = |headers: &[(&str, &str)], body: String| post(path, Some(FORM), headers, body);
    let auth = basic(BASIC_ID, BASIC_SECRET);
    vec![
        ("basic", with(&[("authorization", &auth)], GRANT.to_owned())),
        (
            "post",
            with(
                &[],
                format!("{GRANT}&client_id={POST_ID}&client_secret={POST_SECRET}"),
            ),
        ),
        ("jwt", with(&[], assertion_body(&assertion()))),
        ("none", with(&[], GRANT.to_owned())),
    ]
}

#[tokio::test]
async fn unicode_and_cookieless_lookalikes_are_refused_on_every_endpoint() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw = Gateway::start_with(upstream.addr, "").await;
    let before = sample(&gw.metrics().await, INVALID_400);
    let mut h2 = gw.client(true).await;
    let mut sent = 0.0;
    for endpoint in ENDPOINTS {
        for path in lookalikes(endpoint) {
            for (method, req) in credentials(&path) {
                let req2 = {
                    let (parts, body) = credentials(&path)
                        .into_iter()
                        .find(|(m, _)| *m == method)
                        .unwrap()
                        .1
                        .into_parts();
                    Request::from_parts(parts, body)
                };
                for (proto, reply) in [
                    ("HTTP/1.1", gw.send(req).await),
                    ("HTTP/2", h2.send(req2).await),
                ] {
                    let what = format!("{method} {path} over {proto}");
                    assert_eq!(
                        reply.status,
                        StatusCode::BAD_REQUEST,
                        "{what}: {:?}",
                        reply.body
                    );
                    assert_eq!(reply.json()["error_description"], NOT_CANONICAL, "{what}");
                    sent += 1.0;
                }
            }
        }
    }
    assert!(upstream.records().is_empty(), "the upstream saw nothing");
    assert_eq!(
        sample(&gw.metrics().await, INVALID_400) - before,
        sent,
        "every lookalike counted as route=\"invalid\""
    );
    // The real paths still work with the same credentials (the path alone was refused).
    let reply = gw
        .send(post(
            "/oauth2/token",
            Some(FORM),
            &[("authorization", &basic(BASIC_ID, BASIC_SECRET))],
            GRANT,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    // Near them but read as them by no server: forwarded as unprotected.
    for path in [
        "/oauth2%EF%BC%8Ftokens",
        "/(S(abc))/oauth2/tokens",
        "/(S(abc))",
        "/caf%C3%A9/menu",
    ] {
        let reply = gw.send(get(path)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {:?}", reply.body);
    }
    assert_eq!(upstream.records().len(), 5);
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).body(Full::new(Bytes::new())).unwrap()
}

/// The same characters raw (UTF-8 bytes on the request line), which no client library
/// sends but a raw socket can: refused too, and nothing forwarded.
#[tokio::test]
async fn raw_unicode_lookalikes_on_the_wire_are_refused() {
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw = Gateway::start_with(upstream.addr, "").await;
    for path in [
        "/oauth2\u{FF0F}token",
        "/oauth2\u{2215}token",
        "/oauth2/\u{FF54}oken",
        "/acme/app/oauth2\u{29F8}token",
    ] {
        let tls = wire::connect(gw.addr, &gw.pki.ca_der, &[b"http/1.1"]).await;
        let body = format!("{GRANT}&client_id={POST_ID}&client_secret={POST_SECRET}");
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: auth.example.com\r\nContent-Type: {FORM}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let exchange =
            wire::write_then_read(tls, request.as_bytes(), Duration::from_secs(10)).await;
        let res = wire::RawResponse::parse(&exchange.received);
        assert_eq!(res.status, 400, "{path}: {res:?}");
        assert_eq!(res.json()["error"], "invalid_request", "{path}");
    }
    assert!(upstream.records().is_empty(), "the upstream saw nothing");
}
