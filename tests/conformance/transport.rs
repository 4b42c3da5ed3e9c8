//! Transport and body rows (T1–T7): the form, multipart, JSON and chunked bodies of a token
//! request, the body limit, POST only and no credentials in the query (RFC 6749 §3.2,
//! §2.3.1), the no-store JSON headers of every gateway-written response (RFC 6749 §5.1,
//! §5.2; docs/design.md §3), and throttling of repeated failures (RFC 6749 §2.3.1: protect
//! the endpoint against brute force).

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

use crate::rig::*;
use crate::support::*;

#[tokio::test]
async fn t1_urlencoded_with_and_without_charset_and_chunked() {
    let rig = Rig::start().await;
    let body = format!("{GRANT}&client_id={POST_ID}&client_secret={POST_SECRET}");
    for ct in [
        "application/x-www-form-urlencoded;charset=UTF-8",
        "application/x-www-form-urlencoded; charset=utf-8",
        "application/x-www-form-urlencoded",
    ] {
        let o = rig
            .send(post(TOKEN_PATH, Some(ct), &[], body.clone()))
            .await;
        let rec = rig.accepted(&o, POST_ID, "client_secret_post");
        assert_eq!(rec.headers["content-type"], FORM);
    }
    // Chunked: no Content-Length, the secret split across chunks.
    let split = body.find(POST_SECRET).unwrap() + 4;
    let chunks = vec![
        Bytes::from(body[..10].to_owned()),
        Bytes::from(body[10..split].to_owned()),
        Bytes::from(body[split..].to_owned()),
    ];
    let head = Request::post(TOKEN_PATH).header("content-type", FORM);
    let o = rig.send_streamed(head, chunks, true).await;
    let rec = rig.accepted(&o, POST_ID, "client_secret_post");
    assert_eq!(
        rec.body,
        format!("{GRANT}&client_id={POST_ID}").as_bytes(),
        "re-encoded without the secret"
    );
    // Chunked with Basic.
    let head = Request::post(TOKEN_PATH)
        .header("content-type", FORM)
        .header("authorization", basic(BASIC_ID, BASIC_SECRET));
    let chunks = vec![
        Bytes::from_static(b"grant_type=client_"),
        Bytes::from_static(b"credentials"),
    ];
    let o = rig.send_streamed(head, chunks, true).await;
    rig.accepted(&o, BASIC_ID, "client_secret_basic");
    // Control: the same client code really sends chunked (an unprotected body of a type
    // no server reads parameters from is streamed through as it came, so the upstream
    // sees the chunked framing; `text/plain` would be read as pairs, design §4.3).
    let head = Request::post("/upload").header("content-type", "application/octet-stream");
    let o = rig
        .send_streamed(
            head,
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")],
            true,
        )
        .await;
    assert_eq!(o.reply.status, StatusCode::OK);
    let rec = o.forwarded.expect("forwarded");
    assert_eq!(rec.headers["transfer-encoding"], "chunked");
    assert!(!rec.headers.contains_key("content-length"));
    assert_eq!(rec.body, &b"ab"[..]);
}

/// What `curl -F grant_type=client_credentials -F client_id=reports -F client_secret=...`
/// sends.
fn curl_multipart(fields: &[(&str, &str)]) -> (String, String) {
    let boundary = "------------------------abc123";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn t2_multipart_as_curl_sends_it() {
    let rig = Rig::start().await;
    let (ct, body) = curl_multipart(&[
        ("grant_type", "client_credentials"),
        ("client_id", POST_ID),
        ("client_secret", POST_SECRET),
        ("scope", "read write"),
    ]);
    let o = rig
        .send(post(
            TOKEN_PATH,
            Some(&ct),
            &[("accept", "*/*"), ("user-agent", "curl/8.5.0")],
            body,
        ))
        .await;
    let rec = rig.accepted(&o, POST_ID, "client_secret_post");
    assert_eq!(
        rec.headers["content-type"], FORM,
        "transcoded to urlencoded"
    );
    let params: Vec<(String, String)> = form_urlencoded::parse(&rec.body).into_owned().collect();
    assert_eq!(
        params,
        [
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            ("client_id".to_owned(), POST_ID.to_owned()),
            ("scope".to_owned(), "read write".to_owned()),
        ]
    );
    assert!(!rec.everything().contains("abc123"), "no multipart left");

    // Multipart with Basic (the secret in the header, the body a plain form).
    let (ct, body) = curl_multipart(&[("grant_type", "client_credentials")]);
    let o = rig
        .send(post(
            TOKEN_PATH,
            Some(&ct),
            &[("authorization", &basic(BASIC_ID, BASIC_SECRET))],
            body,
        ))
        .await;
    let rec = rig.accepted(&o, BASIC_ID, "client_secret_basic");
    assert_eq!(rec.headers["content-type"], FORM);
}

#[tokio::test]
async fn t3_json_or_no_content_type_with_basic() {
    let rig = Rig::start().await;
    let auth = basic(BASIC_ID, BASIC_SECRET);
    // RFC 6749 §3.2: a token request is a form. JSON (and text) is the client's error,
    // whatever authenticates it (docs/design.md §2.5).
    let json_body = r#"{"grant_type":"client_credentials","scope":"a b"}"#;
    for headers in [vec![("authorization", auth.as_str())], vec![]] {
        let o = rig
            .send(post(
                TOKEN_PATH,
                Some("application/json"),
                &headers,
                json_body,
            ))
            .await;
        ir(&o);
    }
    let o = rig
        .send(post(
            TOKEN_PATH,
            Some("application/json"),
            &[],
            format!(r#"{{"client_id":"{POST_ID}","client_secret":"{POST_SECRET}"}}"#),
        ))
        .await;
    ir(&o);
    // No type with a body, or a type that is not a form: 415, nothing forwarded.
    let raw = b"opaque bytes \x00\x01 + & = %zz".to_vec();
    for content_type in [None, Some("application/octet-stream")] {
        let o = rig
            .send(post(
                TOKEN_PATH,
                content_type,
                &[("authorization", &auth)],
                raw.clone(),
            ))
            .await;
        rejected(
            &o,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            false,
        );
    }
    // No type and no body: Basic alone authenticates.
    let o = rig
        .send(post(
            TOKEN_PATH,
            None,
            &[("authorization", &auth)],
            Vec::new(),
        ))
        .await;
    let rec = rig.accepted(&o, BASIC_ID, "client_secret_basic");
    assert!(rec.body.is_empty());
}

#[tokio::test]
async fn t4_body_over_max_body() {
    let rig = Rig::start().await;
    let max = rig.gw.config.limits.max_body;
    assert_eq!(max, 64 * 1024);
    let auth = basic(BASIC_ID, BASIC_SECRET);

    // Exactly max_body: still accepted.
    let prefix = format!("{GRANT}&scope=");
    let body = format!("{prefix}{}", "a".repeat(max - prefix.len()));
    assert_eq!(body.len(), max);
    let o = rig
        .send(post(
            TOKEN_PATH,
            Some(FORM),
            &[("authorization", &auth)],
            body,
        ))
        .await;
    rig.accepted(&o, BASIC_ID, "client_secret_basic");

    // Declared Content-Length over the limit, from a client that waits for the go-ahead
    // (`Expect: 100-continue`): refused before a byte of body is read or invited (the body
    // is never sent here, so waiting for it would hang until the timeout).
    let head = Request::post(TOKEN_PATH)
        .header("content-type", FORM)
        .header("authorization", &auth)
        .header("expect", "100-continue")
        .header("content-length", (max + 1).to_string());
    let o = rig.send_streamed(head, Vec::new(), false).await;
    rejected(&o, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", false);

    // Far over the limit: refused at once whatever the client does next.
    let head = Request::post(TOKEN_PATH)
        .header("content-type", FORM)
        .header("content-length", (10 * 1024 * 1024).to_string());
    let o = rig.send_streamed(head, Vec::new(), false).await;
    rejected(&o, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", false);

    // A client that just sends its oversized body reads the 413 (not a connection reset:
    // the gateway reads and discards the rest), and its connection stays usable.
    let mut conn = rig.gw.client(false).await;
    for _ in 0..3 {
        let big = format!("{prefix}{}", "c".repeat(max + 1 - prefix.len()));
        let reply = conn
            .send(post(
                TOKEN_PATH,
                Some(FORM),
                &[("authorization", &auth)],
                big,
            ))
            .await;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(reply.error(), "invalid_request");
    }
    let reply = conn
        .send(post(
            TOKEN_PATH,
            Some(FORM),
            &[("authorization", &auth)],
            GRANT,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);

    // Streamed (chunked, no Content-Length): one byte over, body left open.
    let head = Request::post(TOKEN_PATH)
        .header("content-type", FORM)
        .header("authorization", &auth);
    let mut chunks = vec![Bytes::from(prefix.clone())];
    let mut sent = prefix.len();
    while sent <= max {
        let n = (max + 1 - sent).min(8 * 1024);
        chunks.push(Bytes::from("b".repeat(n)));
        sent += n;
    }
    assert_eq!(sent, max + 1);
    let o = rig.send_streamed(head, chunks, false).await;
    rejected(&o, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", false);
}

#[tokio::test]
async fn t5_get_on_protected_endpoint() {
    let rig = Rig::start().await;
    let auth = basic(BASIC_ID, BASIC_SECRET);
    let o = rig
        .send(
            Request::get(TOKEN_PATH)
                .header("authorization", &auth)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    ir(&o);
    let o = rig
        .send(
            Request::get(format!(
                "{TOKEN_PATH}?{GRANT}&client_id={POST_ID}&client_secret={POST_SECRET}"
            ))
            .body(Full::new(Bytes::new()))
            .unwrap(),
        )
        .await;
    ir(&o);
    let o = rig
        .send_h2(
            Request::get(TOKEN_PATH)
                .header("authorization", &auth)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    ir(&o);
}

#[tokio::test]
async fn t6_gateway_written_responses_are_no_store_json() {
    let rig = Rig::start().await;
    let auth = basic(BASIC_ID, BASIC_SECRET);
    // `rejected` checks Content-Type, Cache-Control and Pragma on each.
    for h2 in [false, true] {
        let send = |req| rig.send_on(h2, req);
        // 400: GET, malformed Basic, two methods, credentials in the query.
        ir(&send(
            Request::get(TOKEN_PATH)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await);
        ir(&send(with_auth("Basic !!!", GRANT)).await);
        ir(&send(with_auth(
            &auth,
            &format!("{GRANT}&client_secret={BASIC_SECRET}"),
        ))
        .await);
        ir(&send(post(
            &format!("{TOKEN_PATH}?client_secret=x"),
            Some(FORM),
            &[("authorization", &auth)],
            GRANT,
        ))
        .await);
        // 401 without and with the challenge.
        ic(&send(form(TOKEN_PATH, GRANT)).await);
        ic_w3a(&send(with_auth(&basic(BASIC_ID, "nope-nope-nope"), GRANT)).await);
        let forged = mint(hs256(), jwt_claims(), b"not-the-client-secret-0123456789ab");
        ic(&send(jwt_form(&forged)).await);
        // 413.
        let big = "a".repeat(rig.gw.config.limits.max_body + 1);
        rejected(
            &send(post(
                TOKEN_PATH,
                Some(FORM),
                &[("authorization", &auth)],
                big,
            ))
            .await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            false,
        );
    }
    // 502 from a gateway whose upstream is down.
    let gw = Gateway::start_with(refused_addr().await, "").await;
    let reply = gw.send(with_auth(&auth, GRANT)).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_gateway_error(&reply, "temporarily_unavailable");
}

// T7: throttling.

#[tokio::test]
async fn t7_repeated_failures_are_throttled_per_client_and_address() {
    let rig =
        Rig::with("throttle: { max_failures: 3, max_failures_per_address: 100, window: 1m }\n")
            .await;
    for _ in 0..3 {
        let o = rig
            .send(with_auth(&basic(BASIC_ID, "wrong-secret-0123"), GRANT))
            .await;
        ic_w3a(&o);
    }
    // The 4th attempt is throttled, even with the right secret.
    let o = rig
        .send(with_auth(&basic(BASIC_ID, BASIC_SECRET), GRANT))
        .await;
    assert_eq!(
        o.reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        o.reply.body
    );
    assert_gateway_error(&o.reply, "slow_down");
    let retry: u64 = o
        .reply
        .headers
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert!(o.forwarded.is_none());
    // Another client from the same address is not affected.
    let o = rig
        .send(form(
            TOKEN_PATH,
            &format!("{GRANT}&client_id={POST_ID}&client_secret={POST_SECRET}"),
        ))
        .await;
    rig.accepted(&o, POST_ID, "client_secret_post");
    // Nor is the same client from another address: an attacker cannot lock it out.
    let before = rig.upstream.records().len();
    let reply = connect_from(&rig.gw, [127, 0, 0, 2])
        .await
        .send(with_auth(&basic(BASIC_ID, BASIC_SECRET), GRANT))
        .await;
    let o = rig.outcome(before, reply);
    let rec = rig.accepted(&o, BASIC_ID, "client_secret_basic");
    assert_eq!(rec.headers["x-forwarded-for"], "127.0.0.2");
    // Still throttled from the first address.
    let o = rig
        .send(with_auth(&basic(BASIC_ID, BASIC_SECRET), GRANT))
        .await;
    assert_eq!(o.reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(o.forwarded.is_none());
}

#[tokio::test]
async fn t7_failures_across_clients_are_throttled_per_address() {
    let rig =
        Rig::with("throttle: { max_failures: 100, max_failures_per_address: 3, window: 1m }\n")
            .await;
    ic_w3a(
        &rig.send(with_auth(&basic(BASIC_ID, "wrong-secret-0123"), GRANT))
            .await,
    );
    ic(&rig
        .send(form(
            TOKEN_PATH,
            &format!("{GRANT}&client_id={POST_ID}&client_secret=wrong-secret-0123"),
        ))
        .await);
    ic_w3a(
        &rig.send(with_auth(&basic("nobody", "wrong-secret-0123"), GRANT))
            .await,
    );
    // A client that never failed, from the address that did.
    let o = rig.send(with_auth(&basic(RFC_ID, RFC_SECRET), GRANT)).await;
    assert_eq!(
        o.reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        o.reply.body
    );
    assert_gateway_error(&o.reply, "slow_down");
    assert!(o.reply.headers.contains_key("retry-after"));
    assert!(o.forwarded.is_none());
    // Other addresses are served.
    let before = rig.upstream.records().len();
    let reply = connect_from(&rig.gw, [127, 0, 0, 3])
        .await
        .send(with_auth(&basic(RFC_ID, RFC_SECRET), GRANT))
        .await;
    rig.accepted(&rig.outcome(before, reply), RFC_ID, "client_secret_basic");
}
