//! Containment under the readings of the servers behind the gateway, over real TLS, HTTP/1.1
//! and HTTP/2, against a recording upstream that keeps every byte (docs/design.md §2.5,
//! §4.1, §4.3):
//!
//! - header names with `_` are dropped before forwarding (`containment.underscore_headers:
//!   drop`) or refused (`refuse`); one named after a credential is refused either way;
//! - userinfo in the authority, two `Host` headers or a `Host` that disagrees with the
//!   authority: 400;
//! - protected endpoints take exactly the form types: other types 415, JSON and text 400,
//!   a credential in a cookie or header 400;
//! - unprotected paths: every body, header, cookie and `Authorization` value that a common
//!   server (PHP, Werkzeug, Rack, Spring, IIS, CGI) reads a credential from is refused with
//!   400; what no such server reads is forwarded byte for byte.
//!
//! Every refusal is checked to have forwarded nothing.

mod support;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use support::RecordingRig as Rig;
use support::*;

const FORM: &str = "application/x-www-form-urlencoded";
const GRANT: &str = "grant_type=client_credentials";
const INTERNAL: &str = "x-authenticated-client";
/// The gateway's descriptions for userinfo and for an ambiguous Host (src/error.rs).
const AMBIGUOUS: [&str; 2] = [
    "The request authority must not contain userinfo.",
    "Send one Host header, equal to the request authority.",
];

impl Rig {
    /// Sends `req` over both protocols and asserts it is refused with `status` and never
    /// forwarded.
    async fn assert_refused(
        &self,
        status: StatusCode,
        what: &str,
        req: impl Fn() -> Request<Full<Bytes>>,
    ) {
        for h2 in [false, true] {
            let what = format!("{what} (h2: {h2})");
            let (reply, forwarded) = self.send_on(h2, req()).await;
            assert_eq!(reply.status, status, "{what}: {:?}", reply.body);
            assert_eq!(reply.headers["content-type"], "application/json", "{what}");
            assert_eq!(reply.json()["error"], "invalid_request", "{what}");
            assert!(reply.headers.get("x-upstream").is_none(), "{what}");
            assert!(forwarded.is_none(), "{what} reached the upstream");
        }
    }

    /// Sends `req` over both protocols and asserts it is forwarded, returning what the
    /// upstream saw over HTTP/1.1 and HTTP/2.
    async fn assert_forwarded(
        &self,
        what: &str,
        req: impl Fn() -> Request<Full<Bytes>>,
    ) -> Vec<Recorded> {
        let mut seen = Vec::new();
        for h2 in [false, true] {
            let (reply, forwarded) = self.send_on(h2, req()).await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "{what} (h2: {h2}): {:?}",
                reply.body
            );
            seen.push(forwarded.unwrap_or_else(|| panic!("{what} (h2: {h2}) not forwarded")));
        }
        seen
    }
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
}

fn basic_auth() -> String {
    basic(BASIC_ID, BASIC_SECRET)
}

#[tokio::test]
async fn underscore_headers_are_dropped_by_default_and_refused_when_configured() {
    let rig = Rig::start("").await;
    let smuggled = [
        ("x_authenticated_client", "billing"),
        ("X_Original_URL", "/oauth2/token"),
        ("X_HTTP_Method_Override", "DELETE"),
        ("X_Forwarded_For", "10.0.0.1"),
        ("x_forwarded_host", "evil.example"),
    ];
    let mut headers = smuggled.to_vec();
    headers.push(("accept", "application/json"));
    let seen = rig
        .assert_forwarded("underscore headers", || {
            request("GET", "/api/session", &headers, "")
        })
        .await;
    for rec in &seen {
        for (name, _) in &rec.headers {
            assert!(!name.as_str().contains('_'), "{name} forwarded: {rec:?}");
        }
        assert_eq!(rec.headers["accept"], "application/json");
        assert_ne!(rec.headers["x-forwarded-for"], "10.0.0.1");
        assert_eq!(rec.headers["x-forwarded-host"], "auth.example.com");
        assert_eq!(rec.method, http::Method::GET);
    }
    // On a protected endpoint the signed header is the gateway's own, nothing else.
    let mut with_basic = smuggled.to_vec();
    let auth = basic_auth();
    with_basic.push(("authorization", &auth));
    with_basic.push(("content-type", FORM));
    let seen = rig
        .assert_forwarded("underscore headers, protected", || {
            request("POST", TOKEN_PATH, &with_basic, GRANT)
        })
        .await;
    for rec in &seen {
        assert!(
            rec.headers.keys().all(|k| !k.as_str().contains('_')),
            "{rec:?}"
        );
        assert_eq!(rec.headers.get_all(INTERNAL).iter().count(), 1);
    }
    // A header named after a credential is refused, not silently dropped.
    for name in [
        "client_secret",
        "Client-Secret",
        "X-Client-Secret",
        "client_assertion",
    ] {
        rig.assert_refused(StatusCode::BAD_REQUEST, name, || {
            request("GET", "/api/session", &[(name, POST_SECRET)], "")
        })
        .await;
    }

    let strict = Rig::start("containment: { underscore_headers: refuse }\n").await;
    for (name, value) in smuggled {
        strict
            .assert_refused(StatusCode::BAD_REQUEST, name, || {
                request("GET", "/api/session", &[(name, value)], "")
            })
            .await;
    }
    strict
        .assert_forwarded("hyphens", || {
            request("GET", "/api/session", &[("x-a-b", "1")], "")
        })
        .await;
}

#[tokio::test]
async fn userinfo_and_ambiguous_hosts_are_refused() {
    let rig = Rig::start("").await;
    // Host with userinfo, two Host headers: HTTP/1.1.
    for (what, hosts) in [
        ("userinfo in Host", vec!["billing:secret@auth.example.com"]),
        ("two Host headers", vec!["auth.example.com", "evil.example"]),
        (
            "two equal Host headers",
            vec!["auth.example.com", "auth.example.com"],
        ),
    ] {
        let mut req = request("GET", "/api/session", &[], "");
        for h in &hosts {
            req.headers_mut().append("host", h.parse().unwrap());
        }
        let (reply, forwarded) = rig.send_on(false, req).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{what}: {:?}",
            reply.body
        );
        let expected = AMBIGUOUS[usize::from(what.starts_with("two"))];
        assert_eq!(reply.json()["error_description"], expected, "{what}");
        assert!(forwarded.is_none(), "{what} reached the upstream");
    }
    // Absolute-form target with userinfo (HTTP/1.1) and :authority with userinfo (HTTP/2).
    for h2 in [false, true] {
        let req = request(
            "GET",
            "https://billing:basic-secret@auth.example.com/api/session",
            &[],
            "",
        );
        let (reply, forwarded) = rig.send_on(h2, req).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "h2 {h2}: {:?}",
            reply.body
        );
        assert_eq!(reply.json()["error_description"], AMBIGUOUS[0], "h2 {h2}");
        assert!(
            forwarded.is_none(),
            "userinfo (h2 {h2}) reached the upstream"
        );
    }
    // HTTP/2: a host header other than :authority.
    let req = request(
        "GET",
        "https://auth.example.com/api/session",
        &[("host", "evil.example")],
        "",
    );
    let (reply, forwarded) = rig.send_on(true, req).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    assert_eq!(reply.json()["error_description"], AMBIGUOUS[1]);
    assert!(forwarded.is_none());
    // Controls: X-Forwarded-Host is the authority, over both protocols.
    let seen = rig
        .assert_forwarded("plain", || request("GET", "/api/session", &[], ""))
        .await;
    for rec in seen {
        assert_eq!(rec.headers["x-forwarded-host"], "auth.example.com");
    }
}

#[tokio::test]
async fn protected_endpoints_take_exactly_the_form_types() {
    let rig = Rig::start("").await;
    let auth = basic_auth();
    let post_body = format!("{GRANT}&client_id={POST_ID}&client_secret={POST_SECRET}");
    for (status, content_type) in [
        (415, "application/x-www-form-urlencoded; charset=latin1"),
        (415, "application/x-www-form-urlencoded; charset=utf-8; x=1"),
        (415, "application/x-www-form-urlencoded charset=utf-8"),
        (415, "application/x-www-form-urlencoded, text/html"),
        (415, "application/x-www-form-urlencodedx"),
        (415, "multipart/form-data; boundary=a; boundary=b"),
        (415, "multipart/mixed; boundary=a"),
        (415, "application/octet-stream"),
        (400, "application/json"),
        (400, "application/jwt+json"),
        (400, "text/plain"),
    ] {
        let status = StatusCode::from_u16(status).unwrap();
        for (method, headers, body) in [
            (
                "basic",
                vec![("authorization", auth.as_str())],
                GRANT.to_owned(),
            ),
            ("post", vec![], post_body.clone()),
        ] {
            rig.assert_refused(status, &format!("{method} {content_type}"), || {
                let mut h = headers.clone();
                h.push(("content-type", content_type));
                request("POST", TOKEN_PATH, &h, &body)
            })
            .await;
        }
    }
    // No type with a body: 415; what the usual clients send: accepted.
    rig.assert_refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, "no type", || {
        request("POST", TOKEN_PATH, &[("authorization", &auth)], GRANT)
    })
    .await;
    for content_type in [
        FORM,
        "application/x-www-form-urlencoded;charset=UTF-8",
        "application/x-www-form-urlencoded; charset=utf-8",
    ] {
        rig.assert_forwarded(content_type, || {
            request(
                "POST",
                TOKEN_PATH,
                &[
                    ("content-type", content_type),
                    ("accept", "application/json"),
                    ("user-agent", "curl/8"),
                ],
                &post_body,
            )
        })
        .await;
    }
    // A credential besides the one that authenticates: a second method.
    for (what, extra) in [
        ("cookie", ("cookie", "client_secret=x")),
        ("header", ("client-secret", "x")),
        ("x-header", ("x-client-secret", "x")),
    ] {
        rig.assert_refused(StatusCode::BAD_REQUEST, what, || {
            request(
                "POST",
                TOKEN_PATH,
                &[("authorization", &auth), ("content-type", FORM), extra],
                GRANT,
            )
        })
        .await;
    }
    // A second spelling of a credential parameter.
    for body in [
        format!("{post_body}&client%255Fsecret=x"),
        format!("{GRANT}&client_id={POST_ID}&client[secret={POST_SECRET}"),
        format!("{GRANT}&client_id={POST_ID}&client_secret%00x={POST_SECRET}"),
    ] {
        rig.assert_refused(StatusCode::BAD_REQUEST, &body, || {
            request("POST", TOKEN_PATH, &[("content-type", FORM)], &body)
        })
        .await;
    }
    // A multipart body another parser reads other names from.
    let boundary = "XyZ";
    let mp = format!("multipart/form-data; boundary={boundary}");
    let part = |disp: &str, v: &str| {
        format!("--XyZ\r\nContent-Disposition: form-data; {disp}\r\n\r\n{v}\r\n")
    };
    let good = format!(
        "{}{}{}--XyZ--\r\n",
        part("name=\"grant_type\"", "client_credentials"),
        part("name=\"client_id\"", POST_ID),
        part("name=\"client_secret\"", POST_SECRET)
    );
    rig.assert_forwarded("multipart", || {
        request("POST", TOKEN_PATH, &[("content-type", &mp)], &good)
    })
    .await;
    for body in [
        format!("{good}{}", part("name=\"client_assertion\"", "a.b.c")),
        format!(
            "{}{}--XyZ--\r\n",
            part("name=\"grant_type\"", "client_credentials"),
            part("name=\"client_id\"; name=\"client_secret\"", POST_ID),
        ),
        format!(
            "{}{}--XyZ--\r\n",
            part("name=\"grant_type\"", "client_credentials"),
            part("name=\"client_id\"; name*=UTF-8''client%5Fsecret", POST_ID),
        ),
    ] {
        rig.assert_refused(StatusCode::BAD_REQUEST, &body, || {
            request(
                "POST",
                TOKEN_PATH,
                &[("content-type", &mp), ("authorization", &auth)],
                &body,
            )
        })
        .await;
    }
    assert!(
        rig.upstream
            .records()
            .iter()
            .all(|r| !r.everything().contains(POST_SECRET)),
        "no secret forwarded"
    );
}

/// Bodies, headers and cookies a common server reads a credential from, on a path that
/// does not authenticate.
#[tokio::test]
async fn unprotected_paths_refuse_every_reading_that_finds_a_credential() {
    let rig = Rig::start("limits: { max_body: 4KiB }\n").await;
    let s = POST_SECRET;
    let mp = |ct: &str, body: String| (ct.to_owned(), body);
    let part =
        |disp: &str| format!("--XyZ\r\nContent-Disposition: form-data; {disp}\r\n\r\n{s}\r\n");
    let bodies: Vec<(String, String)> = vec![
        // Types PHP, Rack, Werkzeug, IIS read as forms.
        mp(
            "text/html, application/x-www-form-urlencoded",
            format!("client_secret={s}"),
        ),
        mp(
            "application/x-www-form-urlencoded charset=utf-8",
            format!("client_secret={s}"),
        ),
        mp(
            "application/x-www-form-urlencoded; charset=iso-8859-1; x=y",
            format!("a=1&client_secret={s}"),
        ),
        mp(
            "application/x-www-form-urlencodedfoo",
            format!("client_secret={s}"),
        ),
        mp(
            "APPLICATION/X-WWW-FORM-URLENCODED",
            format!("client_secret={s}"),
        ),
        // Names servers rewrite to client_secret.
        mp(FORM, format!("client%255Fsecret={s}")),
        mp(FORM, format!("client[secret={s}")),
        mp(FORM, format!("client_secret%00junk={s}")),
        mp(FORM, format!("Client.Secret={s}")),
        mp(FORM, format!("\u{FEFF}client_secret={s}")),
        // Bodies without a type, or text: read as pairs by Rack, CGI.pm, text/plain forms.
        mp("text/plain", format!("note=x\r\nclient_secret={s}\r\n")),
        mp("", format!("client_secret={s}")),
        // Multipart, every way.
        mp(
            "multipart/form-data; boundary=XyZ",
            format!("{}--XyZ--\r\n", part("name=\"a\"; name=\"client_secret\"")),
        ),
        mp(
            "multipart/form-data; boundary=XyZ",
            format!("{}--XyZ--\r\n", part("NAME=\"Client_Secret\"")),
        ),
        mp(
            "multipart/form-data; boundary=XyZ",
            format!("{}--XyZ--\r\n", part("name*=UTF-8''client%5Fsecret")),
        ),
        mp(
            "multipart/form-data; boundary=XyZ",
            format!(
                "{}--XyZ--\r\n{}",
                part("name=\"a\""),
                part("name=\"client_secret\"")
            ),
        ),
        mp(
            "multipart/form-data; boundary=XyZ",
            format!(
                "--XyZ\nContent-Disposition: form-data; name=\"client_secret\"\n\n{s}\n--XyZ--\n"
            ),
        ),
        mp(
            "multipart/form-data; boundary=AAA; boundary=XyZ",
            format!("{}--XyZ--\r\n", part("name=\"client_secret\"")),
        ),
        mp(
            "multipart/mixed; boundary=XyZ",
            format!("{}--XyZ--\r\n", part("name=\"client_secret\"")),
        ),
        // JSON members at any depth.
        mp("application/json", format!(r#"{{"client_secret":"{s}"}}"#)),
        mp(
            "application/vnd.api+json",
            format!(r#"{{"data":[{{"attributes":{{"clientSecret":"{s}"}}}}]}}"#),
        ),
        mp(
            "application/json",
            "\u{FEFF}{\"client_assertion\":\"a.b.c\"}".to_owned(),
        ),
        mp("", format!(r#"{{"Client_Secret":"{s}"}}"#)),
    ];
    for (content_type, body) in &bodies {
        let what = format!("{content_type:?} {body:?}");
        rig.assert_refused(StatusCode::BAD_REQUEST, &what, || {
            let headers: Vec<(&str, &str)> = if content_type.is_empty() {
                vec![]
            } else {
                vec![("content-type", content_type.as_str())]
            };
            request("POST", "/api/session", &headers, body)
        })
        .await;
    }
    // Headers, cookies and Authorization values.
    let heads: Vec<(&str, String)> = vec![
        ("cookie", format!("session=1; client_secret={s}")),
        ("cookie", format!("client%5Fsecret={s}")),
        ("cookie", format!("Client-Secret={s}")),
        ("client-secret", s.to_owned()),
        ("x-client-assertion", "a.b.c".to_owned()),
        ("authorization", basic_auth()),
        (
            "authorization",
            format!("basic {}", basic_auth().trim_start_matches("Basic ")),
        ),
        ("authorization", "Basic".to_owned()),
        ("authorization", format!("Bearer  {s}")),
        ("authorization", format!("Bearer {s} extra")),
        ("authorization", format!("Digest username=\"{BASIC_ID}\"")),
        (
            "authorization",
            basic_auth().trim_start_matches("Basic ").to_owned(),
        ),
    ];
    for (name, value) in &heads {
        rig.assert_refused(StatusCode::BAD_REQUEST, &format!("{name}: {value}"), || {
            request("GET", "/api/session", &[(name, value)], "")
        })
        .await;
    }
    assert!(rig.upstream.records().is_empty(), "nothing forwarded");

    // Controls: what no server reads a credential from is forwarded byte for byte.
    let upload = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nclient_secret={s}\r\n--XyZ--\r\n"
    );
    let long_json = format!(r#"{{"client_secret":"{}"}}"#, "x".repeat(5000));
    let forwarded: Vec<(&str, String)> = vec![
        (
            "application/json",
            r#"{"note":"client_secret=abc","n":[1,2]}"#.to_owned(),
        ),
        (FORM, "username=alice&password=p%40ss".to_owned()),
        ("multipart/form-data; boundary=XyZ", upload),
        ("application/octet-stream", format!("client_secret={s}")),
        ("image/png", format!("client_secret={s}")),
        // Over max_body: streamed unread, the one documented non-goal (§4.3).
        ("application/json", long_json),
    ];
    for (content_type, body) in &forwarded {
        let seen = rig
            .assert_forwarded(content_type, || {
                request(
                    "POST",
                    "/api/session",
                    &[("content-type", content_type)],
                    body,
                )
            })
            .await;
        for rec in seen {
            assert_eq!(rec.body, body.as_bytes(), "{content_type}: byte for byte");
        }
    }
    for auth in [
        "Bearer abc.def-ghi_jkl~mno+pq/rs==",
        "DPoP eyJhbGciOiJFUzI1NiJ9.e30.sig",
    ] {
        let seen = rig
            .assert_forwarded(auth, || {
                request("GET", "/api/session", &[("authorization", auth)], "")
            })
            .await;
        for rec in seen {
            assert_eq!(rec.headers["authorization"], auth);
        }
    }
}

#[tokio::test]
async fn other_authorization_schemes_pass_only_when_allowed() {
    let digest = "Digest username=\"alice\", realm=\"x\"";
    let rig = Rig::start("").await;
    rig.assert_refused(StatusCode::BAD_REQUEST, "digest", || {
        request("GET", "/api/session", &[("authorization", digest)], "")
    })
    .await;
    let rig = Rig::start("containment: { allow_authorization_schemes: [Digest] }\n").await;
    let seen = rig
        .assert_forwarded("digest allowed", || {
            request("GET", "/api/session", &[("authorization", digest)], "")
        })
        .await;
    assert_eq!(seen[0].headers["authorization"], digest);
    // Basic stays refused whatever is allowed.
    rig.assert_refused(StatusCode::BAD_REQUEST, "basic", || {
        request(
            "GET",
            "/api/session",
            &[("authorization", &basic_auth())],
            "",
        )
    })
    .await;
}
