//! What the gateway logs, read from a global subscriber this binary installs at TRACE for
//! every crate (ours, hyper, h2, rustls, tower), in JSON as `--log-format json` writes it.
//!
//! - No secret reaches the logs, at any level: all three methods are driven through the
//!   gateway with right and wrong secrets and secrets in the wrong places, then everything
//!   logged is searched.
//! - A client that goes away before its response is logged with status 499, and is not
//!   counted as an upstream failure.
//!
//! Its own test binary because the subscriber is process-global; the tests in it take
//! turns ([`one_at_a_time`]) and each reads only what was logged since it began.

mod support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::capture::*;
use support::*;
use tokio::sync::Notify;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_logs_at_any_level() {
    let capture = capture();
    let _turn = one_at_a_time().await;
    let from = capture.end();
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw = Gateway::start(upstream.addr).await;
    let jwt = assertion();
    let forged = {
        // Same claims, signed with a wrong key: its signature must not be logged either.
        let mut parts: Vec<&str> = jwt.split('.').collect();
        parts[2] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        parts.join(".")
    };
    let wrong_secret = "wrong-secret-value-4242";
    let stray = "stray-secret-value-7777";

    for h2 in [false, true] {
        let mut c = gw.client(h2).await;
        // Basic, right and wrong.
        for secret in [BASIC_SECRET, wrong_secret] {
            let mut req = form(TOKEN_PATH, "grant_type=client_credentials");
            req.headers_mut()
                .insert("authorization", basic(BASIC_ID, secret).parse().unwrap());
            c.send(req).await;
        }
        // Post, right and wrong, urlencoded and multipart.
        for secret in [POST_SECRET, wrong_secret] {
            let body =
                format!("grant_type=client_credentials&client_id={POST_ID}&client_secret={secret}");
            c.send(form(TOKEN_PATH, &body)).await;
            let multipart = format!(
                "--b\r\ncontent-disposition: form-data; name=\"client_id\"\r\n\r\n{POST_ID}\r\n\
                 --b\r\ncontent-disposition: form-data; name=\"client_secret\"\r\n\r\n{secret}\r\n--b--\r\n"
            );
            c.send(post(
                TOKEN_PATH,
                Some("multipart/form-data; boundary=b"),
                &[],
                multipart,
            ))
            .await;
        }
        // Jwt: a good assertion, the same again (replay), a forged one.
        for a in [jwt.as_str(), jwt.as_str(), forged.as_str()] {
            c.send(form(TOKEN_PATH, &assertion_body(a))).await;
        }
        // Secrets in the wrong places: query string, unknown client, Basic on an
        // unprotected path, a secret as the client id.
        c.send(form(
            &format!("{TOKEN_PATH}?client_secret={stray}"),
            "grant_type=client_credentials",
        ))
        .await;
        let mut req = form(TOKEN_PATH, "grant_type=client_credentials");
        req.headers_mut()
            .insert("authorization", basic("nobody", stray).parse().unwrap());
        c.send(req).await;
        let mut req = http::Request::get("/userinfo")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        req.headers_mut()
            .insert("authorization", basic(BASIC_ID, stray).parse().unwrap());
        c.send(req).await;
        let body = format!("grant_type=client_credentials&client_id={stray}&client_secret={stray}");
        c.send(form(TOKEN_PATH, &body)).await;
    }
    // Make sure the requests above really happened as intended.
    let mut c = gw.client(false).await;
    let body =
        format!("grant_type=client_credentials&client_id={POST_ID}&client_secret={POST_SECRET}");
    assert_eq!(c.send(form(TOKEN_PATH, &body)).await.status, StatusCode::OK);

    let logs = capture.since(from);
    // The capture works and the access line carries what the issue asks for.
    let access = access_lines(&logs);
    // 13 requests per connection (see above), twice, and the final check.
    assert_eq!(access.len(), 27, "access lines: {access:#?}");
    let ok_post = access
        .iter()
        .find(|v| {
            v["fields"]["client_id"] == POST_ID
                && v["fields"]["outcome"] == "ok"
                && v["fields"]["auth_method"] == "client_secret_post"
        })
        .expect("an access line for an accepted post request");
    assert_eq!(ok_post["fields"]["status"], 200);
    assert!(ok_post["fields"]["latency_us"].is_u64());
    assert!(ok_post["fields"]["request_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty() && id != "-"));
    assert_eq!(ok_post["fields"]["method"], "POST");
    assert_eq!(ok_post["fields"]["path"], TOKEN_PATH);
    assert!(ok_post["fields"].get("error").is_none());
    // A refused request's line carries the fixed reason, at INFO (4xx).
    let refused = access
        .iter()
        .find(|v| v["fields"]["outcome"] == "replay")
        .expect("an access line for the replayed assertion");
    assert_eq!(refused["fields"]["status"], 401);
    assert_eq!(refused["level"], "INFO");
    assert!(
        refused["fields"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("assertion jti already used")),
        "{refused}"
    );
    assert!(access.iter().any(|v| v["fields"]["outcome"] == "replay"));
    // Dependencies at TRACE were captured too (h2 frames, rustls). hyper 1 itself logs
    // only when built with its unstable tracing cfg.
    for target in ["\"target\":\"h2", "\"target\":\"rustls"] {
        assert!(logs.contains(target), "no {target} events captured");
    }

    let basic_token =
        |id: &str, s: &str| base64::engine::general_purpose::STANDARD.encode(format!("{id}:{s}"));
    let needles = [
        BASIC_SECRET.to_owned(),
        POST_SECRET.to_owned(),
        JWT_SECRET.to_owned(),
        SIGNING_KEY.to_owned(),
        wrong_secret.to_owned(),
        stray.to_owned(),
        basic_token(BASIC_ID, BASIC_SECRET),
        basic_token(BASIC_ID, wrong_secret),
        basic_token("nobody", stray),
        // The assertion is a bearer credential until used: neither it nor its MAC.
        jwt.rsplit('.').next().unwrap().to_owned(),
        forged.rsplit('.').next().unwrap().to_owned(),
    ];
    for needle in &needles {
        assert!(
            !logs.contains(needle.as_str()),
            "secret material {needle:?} found in the logs:\n{}",
            logs.lines()
                .filter(|l| l.contains(needle.as_str()))
                .take(3)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    // A failure of the gateway's own (upstream down: 502) is logged at WARN, with the
    // reason, so that a `warn` filter still shows it.
    let down = Gateway::start(refused_addr().await).await;
    let mut req = form(TOKEN_PATH, "grant_type=client_credentials");
    req.headers_mut().insert(
        "authorization",
        basic(BASIC_ID, BASIC_SECRET).parse().unwrap(),
    );
    assert_eq!(down.send(req).await.status, StatusCode::BAD_GATEWAY);
    let failed = capture
        .access_lines(from)
        .into_iter()
        .find(|v| v["fields"]["status"] == 502)
        .expect("an access line for the 502");
    assert_eq!(failed["level"], "WARN");
    assert!(
        failed["fields"]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("upstream unreachable")),
        "{failed}"
    );
}

/// PKCE material is as good as a credential while a code is live: no `code`,
/// `code_verifier` or `code_challenge` in any log line, at any level, whether the request
/// was forwarded or refused. The access line still names the public client and `none`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_code_verifier_or_challenge_in_logs() {
    let capture = capture();
    let _turn = one_at_a_time().await;
    let from = capture.end();
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw =
        Gateway::start_with(upstream.addr, "  - { client_id: spa, auth_method: none }\n").await;
    let code = "c0de-value-5151";
    let verifier = "v3rifier-value-7373-abcdefghijklmnopqrstuvw";
    let challenge = "ch4llenge-value-9191-abcdefghijklmnopqrstuv";
    assert_eq!((verifier.len(), challenge.len()), (43, 43));
    let authorize = |query: String| {
        Request::get(format!("/oauth2/authorize?{query}"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    for h2 in [false, true] {
        let mut c = gw.client(h2).await;
        let statuses = [
            // Forwarded, and refused for a missing method (plain).
            c.send(authorize(format!(
                "response_type=code&client_id=spa&code_challenge={challenge}&code_challenge_method=S256"
            )))
            .await
            .status,
            c.send(authorize(format!(
                "response_type=code&client_id=spa&code_challenge={challenge}"
            )))
            .await
            .status,
            // The exchange: accepted, and refused for a malformed verifier.
            c.send(form(
                TOKEN_PATH,
                &format!("grant_type=authorization_code&code={code}&code_verifier={verifier}&client_id=spa"),
            ))
            .await
            .status,
            c.send(form(
                TOKEN_PATH,
                &format!("grant_type=authorization_code&code={code}&code_verifier={verifier}%2B&client_id=spa"),
            ))
            .await
            .status,
            // PAR, refused for a plain challenge.
            c.send(form(
                "/oauth2/par",
                &format!("response_type=code&client_id=spa&code_challenge={challenge}&code_challenge_method=plain"),
            ))
            .await
            .status,
        ];
        assert_eq!(
            statuses.map(|s| s.as_u16()),
            [200, 400, 200, 400, 400],
            "h2: {h2}"
        );
    }
    let logs = capture.since(from);
    let access = access_lines(&logs);
    assert_eq!(access.len(), 10, "access lines: {access:#?}");
    let exchange = access
        .iter()
        .find(|v| v["fields"]["path"] == TOKEN_PATH && v["fields"]["outcome"] == "ok")
        .expect("an access line for the accepted exchange");
    assert_eq!(exchange["fields"]["client_id"], "spa");
    assert_eq!(exchange["fields"]["auth_method"], "none");
    for needle in [code, verifier, challenge] {
        assert!(
            !logs.contains(needle),
            "PKCE material {needle:?} found in the logs:\n{}",
            logs.lines()
                .filter(|l| l.contains(needle))
                .take(3)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Sends `req` on a new connection (`h2` or HTTP/1.1) and, once the upstream has received
/// it, drops the connection without waiting for the response.
async fn abandon(
    gw: &Gateway,
    upstream: &mut RecordingUpstream,
    h2: bool,
    req: Request<Full<Bytes>>,
) {
    let alpn: &[&[u8]] = if h2 { &[b"h2"] } else { &[b"http/1.1"] };
    let tls = tls_connect(gw, alpn).await.expect("TLS handshake");
    // One task owns the connection and the request: aborting it closes the socket.
    let client = tokio::spawn(async move {
        let io = TokioIo::new(tls);
        if h2 {
            let (mut send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            let (_, res) = tokio::join!(conn, send.send_request(req));
            res.map(|r| r.status())
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
            let (_, res) = tokio::join!(conn, send.send_request(req));
            res.map(|r| r.status())
        }
    });
    tokio::time::timeout(Duration::from_secs(20), upstream.arrivals.recv())
        .await
        .expect("the request reached the upstream within 20 s")
        .expect("upstream running");
    client.abort();
    // Returns once the task, and with it the connection, has been dropped.
    let ended = client.await;
    assert!(
        ended.as_ref().is_err_and(|e| e.is_cancelled()),
        "the client had no response to wait for: {ended:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_is_logged_499_and_no_upstream_error() {
    let capture = capture();
    let _turn = one_at_a_time().await;
    let from = capture.end();
    // The upstream holds every request until the test ends.
    let gate = Arc::new(Notify::new());
    let mut upstream = RecordingUpstream::start(Behaviour::Gate(gate)).await;
    // An upstream timeout far beyond the waits below: the gateway gives up on the upstream
    // (504, an upstream error) only if it missed that the client went away.
    let pki = Pki::generate();
    let yaml = config_yaml(&pki, upstream.addr, "").replace("  timeout: 2s\n", "  timeout: 300s\n");
    assert!(yaml.contains("  timeout: 300s\n"), "{yaml}");
    let gw = Gateway::start_yaml(pki, &yaml).await;
    let metrics = gw.metrics().await;
    let errors_before = upstream_errors(&metrics);
    let abandoned =
        |route: &str| format!("secretgate_requests_total{{route=\"{route}\",status=\"499\"}}");
    assert_eq!(sample(&metrics, &abandoned("protected")), 0.0);
    assert_eq!(sample(&metrics, &abandoned("unprotected")), 0.0);

    // A protected request over HTTP/1.1 and an unprotected one over HTTP/2, each with a
    // request id of its own to find its line by.
    let protected = post(
        TOKEN_PATH,
        Some("application/x-www-form-urlencoded"),
        &[
            ("authorization", &basic(BASIC_ID, BASIC_SECRET)),
            ("x-request-id", "abandoned-h1"),
            ("host", "auth.example.com"),
        ],
        "grant_type=client_credentials",
    );
    let unprotected = Request::get("https://auth.example.com/userinfo")
        .version(http::Version::HTTP_2)
        .header("x-request-id", "abandoned-h2")
        .body(Full::new(Bytes::new()))
        .unwrap();
    for (h2, req, id, path, route) in [
        (false, protected, "abandoned-h1", TOKEN_PATH, "protected"),
        (
            true,
            unprotected,
            "abandoned-h2",
            "/userinfo",
            "unprotected",
        ),
    ] {
        abandon(&gw, &mut upstream, h2, req).await;
        let line = capture
            .wait_for_access(from, id, |v| v["fields"]["request_id"] == id)
            .await;
        let fields = &line["fields"];
        assert_eq!(fields["status"], 499, "{line}");
        assert_eq!(fields["message"], "abandoned", "{line}");
        assert_eq!(fields["path"], path, "{line}");
        assert_eq!(fields["route"], route, "{line}");
        assert!(
            fields.get("error").is_none(),
            "not a failure of the gateway's: {line}"
        );
        assert_eq!(line["level"], "INFO", "{line}");
        if route == "protected" {
            assert_eq!(fields["client_id"], BASIC_ID, "{line}");
        }
    }

    // The line is written as the request is dropped, before what it wrapped (the upstream
    // exchange) is: a request the gateway answers itself on its one worker thread
    // (`workers: 1`) is answered only after that drop has finished.
    let reply = gw
        .send(
            Request::get("/OAuth2/Token")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let metrics = gw.metrics().await;
    assert_eq!(
        upstream_errors(&metrics),
        errors_before,
        "a client that went away is no upstream failure:\n{metrics}"
    );
    assert_eq!(sample(&metrics, &abandoned("protected")), 1.0);
    assert_eq!(sample(&metrics, &abandoned("unprotected")), 1.0);
    // One line each: no second answer was logged for either.
    let lines = capture.access_lines(from);
    for id in ["abandoned-h1", "abandoned-h2"] {
        let theirs: Vec<_> = lines
            .iter()
            .filter(|v| v["fields"]["request_id"] == id)
            .collect();
        assert_eq!(theirs.len(), 1, "{theirs:#?}");
    }
}

/// The legacy secret of an `upstream_credential` is in no log line at any level (nor its
/// form encoding, nor the Basic value made from it), and a request in shadow logs its
/// verdict as `shadow_outcome`, leaving `outcome` (what was enforced) unset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_upstream_secret_in_logs_and_shadow_verdicts_logged() {
    let capture = capture();
    let _turn = one_at_a_time().await;
    let from = capture.end();
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let legacy = format!("legacy-{nonce:x}/x");
    let encoded = legacy.replace('/', "%2F");
    let basic_value = base64::engine::general_purpose::STANDARD.encode(format!("gold:{encoded}"));
    let pki = Pki::generate();
    std::fs::write(pki.path().join("legacy.secret"), &legacy).unwrap();
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let extra = "  - client_id: gold
    auth_method: client_secret_basic
    secrets: [{ value: \"gold-own-secret-0123456789\" }]
    upstream_credential: { method: client_secret_basic, secret: { file: legacy.secret } }
  - client_id: silver
    auth_method: client_secret_basic
    secrets: [{ value: \"silver-own-secret-0123456789\" }]
    upstream_credential: { method: client_secret_post, secret: { file: legacy.secret } }
  - client_id: trial
    auth_method: client_secret_basic
    secrets: [{ value: \"trial-own-secret-0123456789\" }]
    rollout: shadow
";
    let gw = Gateway::start_with_pki(pki, upstream.addr, extra).await;
    for h2 in [false, true] {
        let mut c = gw.client(h2).await;
        for (id, secret) in [
            ("gold", "gold-own-secret-0123456789"),
            ("silver", "silver-own-secret-0123456789"),
        ] {
            let mut req = form(TOKEN_PATH, "grant_type=client_credentials");
            req.headers_mut()
                .insert("authorization", basic(id, secret).parse().unwrap());
            assert_eq!(c.send(req).await.status, StatusCode::OK);
        }
    }
    let mut req = form(TOKEN_PATH, "grant_type=client_credentials");
    req.headers_mut()
        .insert("authorization", basic("trial", "wrong").parse().unwrap());
    assert_eq!(gw.send(req).await.status, StatusCode::OK, "shadow forwards");
    let line = capture
        .wait_for_access(from, "the shadow request", |v| {
            v["fields"]["client_id"] == "trial"
        })
        .await;
    assert_eq!(line["fields"]["shadow_outcome"], "invalid_client", "{line}");
    assert_eq!(
        line["fields"]["outcome"], "-",
        "nothing was enforced: {line}"
    );
    // The upstream did get the credential (so the search below means something).
    let records = upstream.records();
    assert!(records
        .iter()
        .any(|r| r.everything().contains(&basic_value)));
    assert!(records.iter().any(|r| r.everything().contains(&encoded)));

    let logs = capture.since(from);
    assert_eq!(access_lines(&logs).len(), 5, "{logs}");
    for needle in [legacy.as_str(), encoded.as_str(), basic_value.as_str()] {
        assert!(!logs.contains(needle), "`{needle}` logged");
    }
}
