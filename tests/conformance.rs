//! CONFORMANCE.md as integration tests: one test per row, each over real TLS against the
//! recording upstream. Accepted requests are checked end to end (what the upstream got, no
//! secret anywhere, Content-Length, the signed internal header); rejected ones for status,
//! `error`, `WWW-Authenticate`, the no-store JSON headers, and that nothing was forwarded.

mod support;

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::json;
use support::*;

use secretgate::{verify_internal_header, Expected, VerifyError, VerifyKeys};

const INTERNAL: &str = "x-authenticated-client";
const CHALLENGE: &str = "Basic realm=\"secretgate\"";
const FORM: &str = "application/x-www-form-urlencoded";

// Extra clients, appended after the three standard ones in `config_yaml`.
const RFC_ID: &str = "s6BhdRkqt3";
const RFC_SECRET: &str = "7Fjfp0ZBr1KtDRbnfVdmIw";
const RFC_HEADER: &str = "Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3";
/// Needs form-encoding in a Basic header: `-` in the id, `:` in the secret.
const DASH_ID: &str = "my-client";
const DASH_SECRET: &str = "se:cret-with:colons-0123";
/// A secret with a raw colon, sent as is (not form-encoded).
const COLON_ID: &str = "colon";
const COLON_SECRET: &str = "a:b:c-secret";
const SPACE_ID: &str = "spacey";
const SPACE_SECRET: &str = "with space secret";
/// A jwt client that allows only HS512.
const JWT512_ID: &str = "mobile512";
const JWT512_SECRET: &str = "hs512-secret-0123456789abcdefghijklmnopqrstuv";
/// A jwt client whose secret looks like base64 (as `openssl rand -base64 32` makes).
const B64_ID: &str = "b64jwt";
const B64_SECRET: &str = "q83vEjRWeJASNFZ4kKvN7xI0VniQq83vEjRWeJCrze8=";

fn extra_clients() -> String {
    format!(
        r#"  - client_id: {RFC_ID}
    auth_method: client_secret_basic
    secrets: [{{ value: "{RFC_SECRET}" }}]
  - client_id: {DASH_ID}
    auth_method: client_secret_basic
    secrets: [{{ value: "{DASH_SECRET}" }}]
  - client_id: {COLON_ID}
    auth_method: client_secret_basic
    secrets: [{{ value: "{COLON_SECRET}" }}]
  - client_id: {SPACE_ID}
    auth_method: client_secret_basic
    secrets: [{{ value: "{SPACE_SECRET}" }}]
  - client_id: {JWT512_ID}
    auth_method: client_secret_jwt
    algorithms: [HS512]
    secrets: [{{ value: "{JWT512_SECRET}" }}]
  - client_id: {B64_ID}
    auth_method: client_secret_jwt
    secrets: [{{ value: "{B64_SECRET}" }}]
"#
    )
}

/// Every secret a test gateway knows; none may ever reach the upstream.
const ALL_SECRETS: [&str; 7] = [
    RFC_SECRET,
    DASH_SECRET,
    COLON_SECRET,
    SPACE_SECRET,
    JWT512_SECRET,
    B64_SECRET,
    "se%3Acret",
];

// ---------------------------------------------------------------------------------------
// The rig: a recording upstream, a gateway in front of it, and the checks every row needs.

struct Rig {
    upstream: RecordingUpstream,
    gw: Gateway,
}

/// A reply, and what the upstream received because of it (if anything).
struct Outcome {
    reply: Reply,
    forwarded: Option<Recorded>,
}

impl Rig {
    async fn start() -> Rig {
        Self::with("").await
    }

    /// `top_level` is YAML appended after the clients list (top-level keys, unindented).
    async fn with(top_level: &str) -> Rig {
        let upstream = RecordingUpstream::start(Behaviour::Token).await;
        let extra = format!("{}{top_level}", extra_clients());
        let gw = Gateway::start_with(upstream.addr, &extra).await;
        Rig { upstream, gw }
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Outcome {
        let before = self.upstream.records().len();
        let reply = self.gw.send(req).await;
        self.outcome(before, reply)
    }

    async fn send_h2(&self, req: Request<Full<Bytes>>) -> Outcome {
        let before = self.upstream.records().len();
        let reply = self.gw.client(true).await.send(req).await;
        self.outcome(before, reply)
    }

    async fn send_on(&self, h2: bool, req: Request<Full<Bytes>>) -> Outcome {
        if h2 {
            self.send_h2(req).await
        } else {
            self.send(req).await
        }
    }

    /// Sends a body chunk by chunk over HTTP/1.1 (chunked unless `head` sets a
    /// Content-Length). With `finish: false` the body is left open until the answer came.
    async fn send_streamed(
        &self,
        head: http::request::Builder,
        chunks: Vec<Bytes>,
        finish: bool,
    ) -> Outcome {
        let before = self.upstream.records().len();
        let reply = send_streamed(&self.gw, head, chunks, finish).await;
        self.outcome(before, reply)
    }

    fn outcome(&self, before: usize, reply: Reply) -> Outcome {
        // The upstream records a request before it answers, and the gateway answers only
        // after the upstream did: once we hold the reply, the record (if any) is there.
        let records = self.upstream.records();
        assert!(
            records.len() <= before + 1,
            "one request reached the upstream more than once"
        );
        Outcome {
            reply,
            forwarded: records.get(before).cloned(),
        }
    }

    /// Asserts the request was authenticated as `client_id` with `method` and forwarded
    /// to `path` cleanly; returns what the upstream received.
    fn accepted(&self, o: &Outcome, client_id: &str, method: &str) -> Recorded {
        self.accepted_at(o, client_id, method, TOKEN_PATH)
    }

    fn accepted_at(&self, o: &Outcome, client_id: &str, method: &str, path: &str) -> Recorded {
        assert_eq!(
            o.reply.status,
            StatusCode::OK,
            "expected acceptance, got {} {:?}",
            o.reply.status,
            o.reply.body
        );
        assert_eq!(
            o.reply.headers.get("x-upstream").map(|v| v.as_bytes()),
            Some(&b"yes"[..]),
            "the answer came from the upstream"
        );
        let rec = o
            .forwarded
            .clone()
            .expect("the upstream received the request");
        assert_eq!(rec.method, http::Method::POST);
        assert_eq!(rec.uri.path(), path);
        assert_no_secret(&rec);
        let all = rec.everything();
        for secret in ALL_SECRETS {
            assert!(!all.contains(secret), "upstream saw `{secret}` in:\n{all}");
        }
        assert!(!rec.headers.contains_key("authorization"));
        assert!(
            !rec.headers.contains_key("transfer-encoding"),
            "the upstream gets a Content-Length body, not chunked"
        );
        let len: usize = rec
            .headers
            .get("content-length")
            .expect("Content-Length on the forwarded request")
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, rec.body.len(), "Content-Length matches the body");

        let is_form = rec
            .headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(FORM.as_bytes()));
        if is_form {
            let params: Vec<(String, String)> =
                form_urlencoded::parse(&rec.body).into_owned().collect();
            let ids: Vec<&str> = params
                .iter()
                .filter(|(n, _)| n == "client_id")
                .map(|(_, v)| v.as_str())
                .collect();
            assert_eq!(ids, [client_id], "exactly one client_id, the right one");
            for (name, _) in &params {
                assert!(
                    !matches!(
                        name.as_str(),
                        "client_secret" | "client_assertion" | "client_assertion_type"
                    ),
                    "secret parameter `{name}` forwarded"
                );
            }
            assert!(
                params
                    .iter()
                    .any(|(n, v)| n == "grant_type" && v == "client_credentials"),
                "other parameters are kept: {params:?}"
            );
        }

        let values: Vec<_> = rec.headers.get_all(INTERNAL).iter().collect();
        assert_eq!(values.len(), 1, "exactly one internal header");
        let url = format!("{PUBLIC_URL}{path}");
        let claims = verify_internal_header(
            values[0].to_str().unwrap(),
            &VerifyKeys::new(&self.gw.config.internal_header.keys),
            &Expected {
                issuer: "secretgate",
                audience: "legacy-token-service",
                method: Some("POST"),
                url: Some(&url),
                body: Some(&rec.body),
                ..Default::default()
            },
        )
        .expect("the internal header verifies");
        assert_eq!(claims.sub, client_id);
        assert_eq!(claims.client_id, client_id);
        assert_eq!(claims.auth_method, method);
        assert_eq!(claims.htm, "POST");
        assert_eq!(claims.htu, url);
        rec
    }
}

/// Asserts a gateway-written error: status, `error`, the no-store JSON headers, the Basic
/// challenge (present with the realm, or absent), and that nothing reached the upstream.
fn rejected(o: &Outcome, status: StatusCode, error: &str, challenge: bool) {
    let r = &o.reply;
    assert_eq!(r.status, status, "body: {:?}", r.body);
    assert_gateway_error(r, error);
    match r
        .headers
        .get_all("www-authenticate")
        .iter()
        .collect::<Vec<_>>()[..]
    {
        [] => assert!(!challenge, "WWW-Authenticate missing"),
        [v] => {
            assert!(challenge, "unexpected WWW-Authenticate: {v:?}");
            assert_eq!(v, CHALLENGE);
        }
        ref many => panic!("several WWW-Authenticate headers: {many:?}"),
    }
    assert!(
        o.forwarded.is_none(),
        "a rejected request reached the upstream: {:?}",
        o.forwarded
    );
}

/// The headers and body shape of every response the gateway writes (DESIGN.md §3).
fn assert_gateway_error(r: &Reply, error: &str) {
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(r.headers["pragma"], "no-cache");
    assert!(
        r.headers.get("x-upstream").is_none(),
        "written by the gateway"
    );
    let body = r.json();
    assert_eq!(body["error"], error, "body: {body}");
    assert!(
        body["error_description"].is_string(),
        "error_description: {body}"
    );
}

fn ir(o: &Outcome) {
    rejected(o, StatusCode::BAD_REQUEST, "invalid_request", false);
}

fn ic(o: &Outcome) {
    rejected(o, StatusCode::UNAUTHORIZED, "invalid_client", false);
}

fn ic_w3a(o: &Outcome) {
    rejected(o, StatusCode::UNAUTHORIZED, "invalid_client", true);
}

const GRANT: &str = "grant_type=client_credentials";

/// A form POST to the token endpoint with an `Authorization` header.
fn with_auth(auth: &str, body: &str) -> Request<Full<Bytes>> {
    post(
        TOKEN_PATH,
        Some(FORM),
        &[("authorization", auth)],
        body.to_owned(),
    )
}

/// `Basic base64(raw)`: no form-encoding of the halves, unlike `basic()`.
fn basic_raw(raw: &str) -> String {
    format!("Basic {}", STANDARD.encode(raw))
}

fn jwt_form(assertion: &str) -> Request<Full<Bytes>> {
    form(TOKEN_PATH, &assertion_body(assertion))
}

fn claims_with(edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> String {
    let mut c = jwt_claims();
    edit(c.as_object_mut().unwrap());
    mint(hs256(), c, JWT_SECRET.as_bytes())
}

fn stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn send_streamed(
    gw: &Gateway,
    head: http::request::Builder,
    chunks: Vec<Bytes>,
    finish: bool,
) -> Reply {
    type Chunk = Result<http_body::Frame<Bytes>, std::io::Error>;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Chunk>();
    for c in chunks {
        tx.send(Ok(http_body::Frame::data(c))).unwrap();
    }
    let keep_open = if finish {
        drop(tx);
        None
    } else {
        Some(tx)
    };
    let req = head
        .header("host", "auth.example.com")
        .body(StreamBody::new(stream_from(rx)))
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let mut send = h1_over_tls(tcp, &gw.pki.ca_der).await;
    let res = tokio::time::timeout(Duration::from_secs(20), send.send_request(req))
        .await
        .expect("the gateway answered")
        .expect("response");
    let version = res.version();
    let (parts, body) = res.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(20), body.collect())
        .await
        .expect("response body")
        .expect("response body")
        .to_bytes();
    drop(keep_open);
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
        version,
    }
}

// ---------------------------------------------------------------------------------------
// Basic (RFC 6749 §2.3.1)

#[tokio::test]
async fn b1_rfc_example() {
    let rig = Rig::start().await;
    let o = rig
        .send(with_auth(RFC_HEADER, &format!("{GRANT}&scope=read")))
        .await;
    let rec = rig.accepted(&o, RFC_ID, "client_secret_basic");
    assert!(!rec.everything().contains("czZCaGRSa3F0Mzo3"));
}

#[tokio::test]
async fn b2_scheme_spelled_basic_lowercase() {
    let rig = Rig::start().await;
    let lower = RFC_HEADER.replacen("Basic", "basic", 1);
    let o = rig.send(with_auth(&lower, GRANT)).await;
    rig.accepted(&o, RFC_ID, "client_secret_basic");
    let upper = basic(BASIC_ID, BASIC_SECRET).replacen("Basic", "BASIC", 1);
    let o = rig.send(with_auth(&upper, GRANT)).await;
    rig.accepted(&o, BASIC_ID, "client_secret_basic");
}

#[tokio::test]
async fn b3_form_encoded_id_and_secret() {
    let rig = Rig::start().await;
    // openid-client v6: each half form-encoded, `-` as %2D and `:` as %3A.
    let raw = "my%2Dclient:se%3Acret%2Dwith%3Acolons%2D0123";
    let o = rig.send(with_auth(&basic_raw(raw), GRANT)).await;
    rig.accepted(&o, DASH_ID, "client_secret_basic");
    // And as this project's own encoder writes it.
    let o = rig
        .send(with_auth(&basic(DASH_ID, DASH_SECRET), GRANT))
        .await;
    rig.accepted(&o, DASH_ID, "client_secret_basic");
}

#[tokio::test]
async fn b4_raw_colon_in_secret() {
    let rig = Rig::start().await;
    let o = rig
        .send(with_auth(
            &basic_raw(&format!("{COLON_ID}:{COLON_SECRET}")),
            GRANT,
        ))
        .await;
    rig.accepted(&o, COLON_ID, "client_secret_basic");
}

#[tokio::test]
async fn b6_space_as_plus_or_percent20() {
    let rig = Rig::start().await;
    for encoded in [
        "with+space+secret",
        "with%20space%20secret",
        "with+space%20secret",
    ] {
        let o = rig
            .send(with_auth(
                &basic_raw(&format!("{SPACE_ID}:{encoded}")),
                GRANT,
            ))
            .await;
        rig.accepted(&o, SPACE_ID, "client_secret_basic");
    }
}

#[tokio::test]
async fn b8_bad_percent_escape() {
    let rig = Rig::start().await;
    for raw in [
        format!("{BASIC_ID}:bad%zz{BASIC_SECRET}"),
        format!("{BASIC_ID}:{BASIC_SECRET}%4"),
        format!("{BASIC_ID}:{BASIC_SECRET}%"),
        format!("bill%g1ing:{BASIC_SECRET}"),
    ] {
        let o = rig.send(with_auth(&basic_raw(&raw), GRANT)).await;
        ir(&o);
    }
}

#[tokio::test]
async fn b10_no_colon_bad_base64_or_no_token() {
    let rig = Rig::start().await;
    for header in [
        basic_raw(BASIC_ID),
        basic_raw(&format!("{BASIC_ID}{BASIC_SECRET}")),
        "Basic !!!notbase64".to_owned(),
        "Basic Zm9v=YmFy".to_owned(),
        format!("Basic {}", URL_SAFE_NO_PAD.encode("bi?ll>ing:s?e>c")),
        "Basic".to_owned(),
        "Basic ".to_owned(),
    ] {
        let o = rig.send(with_auth(&header, GRANT)).await;
        ir(&o);
    }
}

#[tokio::test]
async fn b11_empty_secret_or_empty_id() {
    let rig = Rig::start().await;
    for raw in [
        format!("{BASIC_ID}:"),
        format!(":{BASIC_SECRET}"),
        ":".to_owned(),
    ] {
        let o = rig.send(with_auth(&basic_raw(&raw), GRANT)).await;
        ir(&o);
    }
}

#[tokio::test]
async fn b12_wrong_secret_and_unknown_client_look_the_same() {
    let rig = Rig::start().await;
    let wrong = rig
        .send(with_auth(&basic(BASIC_ID, "not-the-secret-0123"), GRANT))
        .await;
    ic_w3a(&wrong);
    let unknown = rig
        .send(with_auth(&basic("nobody", "not-the-secret-0123"), GRANT))
        .await;
    ic_w3a(&unknown);
    assert_eq!(
        wrong.reply.body, unknown.reply.body,
        "byte-identical bodies"
    );
    assert_eq!(
        wrong.reply.headers["www-authenticate"],
        unknown.reply.headers["www-authenticate"]
    );
    // A secret that is a prefix of the right one is still wrong.
    let prefix = rig
        .send(with_auth(
            &basic(BASIC_ID, &BASIC_SECRET[..BASIC_SECRET.len() - 1]),
            GRANT,
        ))
        .await;
    ic_w3a(&prefix);
    assert_eq!(prefix.reply.body, wrong.reply.body);
}

#[tokio::test]
async fn b14_basic_and_body_client_secret() {
    let rig = Rig::start().await;
    let auth = basic(BASIC_ID, BASIC_SECRET);
    for body in [
        format!("{GRANT}&client_secret={BASIC_SECRET}"),
        format!("{GRANT}&client_id={BASIC_ID}&client_secret={BASIC_SECRET}"),
        format!("{GRANT}&client_secret=other"),
    ] {
        let o = rig.send(with_auth(&auth, &body)).await;
        ir(&o);
    }
}

#[tokio::test]
async fn b15_basic_and_same_body_client_id() {
    let rig = Rig::start().await;
    let o = rig
        .send(with_auth(
            &basic(BASIC_ID, BASIC_SECRET),
            &format!("{GRANT}&client_id={BASIC_ID}"),
        ))
        .await;
    // `accepted` also checks client_id appears exactly once.
    rig.accepted(&o, BASIC_ID, "client_secret_basic");
}

#[tokio::test]
async fn b16_basic_and_other_body_client_id() {
    let rig = Rig::start().await;
    let o = rig
        .send(with_auth(
            &basic(BASIC_ID, BASIC_SECRET),
            &format!("{GRANT}&client_id={POST_ID}"),
        ))
        .await;
    ir(&o);
}

#[tokio::test]
async fn b17_client_presents_the_other_secret_method() {
    let rig = Rig::start().await;
    // Registered for client_secret_post, presents Basic (right secret): 401 + challenge.
    let o = rig
        .send(with_auth(&basic(POST_ID, POST_SECRET), GRANT))
        .await;
    ic_w3a(&o);
    // Registered for client_secret_basic, presents post (right secret): 401, no challenge.
    let o = rig
        .send(form(
            TOKEN_PATH,
            &format!("{GRANT}&client_id={BASIC_ID}&client_secret={BASIC_SECRET}"),
        ))
        .await;
    ic(&o);
}

#[tokio::test]
async fn b18_jwt_client_presents_basic() {
    let rig = Rig::start().await;
    let o = rig.send(with_auth(&basic(JWT_ID, JWT_SECRET), GRANT)).await;
    ic_w3a(&o);
}

// ---------------------------------------------------------------------------------------
// Post

#[tokio::test]
async fn p1_correct_client_id_and_secret() {
    let rig = Rig::start().await;
    let o = rig
        .send(form(
            TOKEN_PATH,
            &format!("{GRANT}&client_id={POST_ID}&client_secret={POST_SECRET}&scope=a+b"),
        ))
        .await;
    let rec = rig.accepted(&o, POST_ID, "client_secret_post");
    let params: Vec<(String, String)> = form_urlencoded::parse(&rec.body).into_owned().collect();
    assert!(
        params.contains(&("scope".to_owned(), "a b".to_owned())),
        "{params:?}"
    );
    // Over HTTP/2 as well.
    let o = rig
        .send_h2(form(
            TOKEN_PATH,
            &format!("client_id={POST_ID}&{GRANT}&client_secret={POST_SECRET}"),
        ))
        .await;
    rig.accepted(&o, POST_ID, "client_secret_post");
}

#[tokio::test]
async fn p3_repeated_client_id_or_secret() {
    let rig = Rig::start().await;
    for body in [
        format!("{GRANT}&client_id={POST_ID}&client_id={POST_ID}&client_secret={POST_SECRET}"),
        format!(
            "{GRANT}&client_id={POST_ID}&client_secret={POST_SECRET}&client_secret={POST_SECRET}"
        ),
        format!("{GRANT}&client_id={POST_ID}&client_secret={POST_SECRET}&client_secret=x"),
        format!("{GRANT}&client_id=other&client_id={POST_ID}&client_secret={POST_SECRET}"),
    ] {
        let o = rig.send(form(TOKEN_PATH, &body)).await;
        ir(&o);
    }
}

#[tokio::test]
async fn p4_empty_secret_or_client_id_alone() {
    let rig = Rig::start().await;
    for body in [
        format!("{GRANT}&client_id={POST_ID}&client_secret="),
        format!("{GRANT}&client_id={POST_ID}"),
    ] {
        let o = rig.send(form(TOKEN_PATH, &body)).await;
        ic(&o);
    }
}

#[tokio::test]
async fn p5_no_credentials_at_all() {
    let rig = Rig::start().await;
    let o = rig.send(form(TOKEN_PATH, GRANT)).await;
    ic(&o);
    let o = rig
        .send(post(TOKEN_PATH, Some(FORM), &[], Bytes::new()))
        .await;
    ic(&o);
}

#[tokio::test]
async fn p6_unknown_client_id() {
    let rig = Rig::start().await;
    let unknown = rig
        .send(form(
            TOKEN_PATH,
            &format!("{GRANT}&client_id=nobody&client_secret={POST_SECRET}"),
        ))
        .await;
    ic(&unknown);
    // Same answer as a known client with a wrong secret.
    let wrong = rig
        .send(form(
            TOKEN_PATH,
            &format!("{GRANT}&client_id={POST_ID}&client_secret=wrong-secret-0123"),
        ))
        .await;
    ic(&wrong);
    assert_eq!(unknown.reply.body, wrong.reply.body);
}

// ---------------------------------------------------------------------------------------
// Transport and body

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
    // Control: the same client code really sends chunked (an unprotected path is streamed
    // through as it came, so the upstream sees the chunked framing).
    let head = Request::post("/upload").header("content-type", "text/plain");
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
    let json_body = r#"{"grant_type":"client_credentials","scope":"a b"}"#;
    let o = rig
        .send(post(
            TOKEN_PATH,
            Some("application/json"),
            &[("authorization", &auth)],
            json_body,
        ))
        .await;
    let rec = rig.accepted(&o, BASIC_ID, "client_secret_basic");
    assert_eq!(rec.body, json_body.as_bytes(), "forwarded unchanged");
    assert_eq!(rec.headers["content-type"], "application/json");

    let raw = b"opaque bytes \x00\x01 + & = %zz".to_vec();
    let o = rig
        .send(post(
            TOKEN_PATH,
            None,
            &[("authorization", &auth)],
            raw.clone(),
        ))
        .await;
    let rec = rig.accepted(&o, BASIC_ID, "client_secret_basic");
    assert_eq!(rec.body, raw, "forwarded unchanged");
    assert!(!rec.headers.contains_key("content-type"));

    // Such bodies cannot carry post credentials.
    let o = rig
        .send(post(
            TOKEN_PATH,
            Some("application/json"),
            &[],
            format!(r#"{{"client_id":"{POST_ID}","client_secret":"{POST_SECRET}"}}"#),
        ))
        .await;
    ir(&o);
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

// ---------------------------------------------------------------------------------------
// client_secret_jwt (RFC 7523 §3, OIDC Core §9)

fn endpoint() -> String {
    format!("{PUBLIC_URL}{TOKEN_PATH}")
}

#[tokio::test]
async fn j1_authlib_assertion() {
    let rig = Rig::start().await;
    // Authlib's client_secret_jwt_sign: header {"typ":"JWT","alg":"HS256"}, aud = token
    // endpoint, iat now, exp = iat + 3600, a 36-character jti; no client_id in the body.
    let iat = now();
    let jti: String = format!("{:0>36}", format!("authlib{}", std::process::id()));
    let a = mint(
        json!({"typ": "JWT", "alg": "HS256"}),
        json!({
            "iss": JWT_ID, "sub": JWT_ID, "aud": endpoint(),
            "iat": iat, "exp": iat + 3600, "jti": jti,
        }),
        JWT_SECRET.as_bytes(),
    );
    let body = format!(
        "{GRANT}&client_assertion_type={}&client_assertion={a}",
        secretgate::auth::form::form_encode_component(ASSERTION_TYPE)
    );
    let o = rig.send(form(TOKEN_PATH, &body)).await;
    let rec = rig.accepted(&o, JWT_ID, "client_secret_jwt");
    assert!(!rec.everything().contains(&a));
}

#[tokio::test]
async fn j2_openid_client_assertion() {
    let rig = Rig::start().await;
    // openid-client v6 (oauth4webapi): header {"alg":"HS256"}, aud = issuer, iat = nbf =
    // now, exp = now + 60; client_id in the body.
    let t = now();
    let a = mint(
        json!({"alg": "HS256"}),
        json!({
            "jti": format!("oidc-{}-{t}", std::process::id()), "aud": ISSUER,
            "exp": t + 60, "iat": t, "nbf": t, "iss": JWT_ID, "sub": JWT_ID,
        }),
        JWT_SECRET.as_bytes(),
    );
    let body = format!(
        "{GRANT}&client_id={JWT_ID}&client_assertion_type={}&client_assertion={a}",
        secretgate::auth::form::form_encode_component(ASSERTION_TYPE)
    );
    let o = rig.send(form(TOKEN_PATH, &body)).await;
    rig.accepted(&o, JWT_ID, "client_secret_jwt");
}

#[tokio::test]
async fn j3_audience_array_compat_accepts_strict_refuses() {
    let both = || {
        claims_with(|c| {
            c.insert("aud".into(), json!([ISSUER, endpoint()]));
        })
    };
    let compat = Rig::start().await;
    let o = compat.send(jwt_form(&both())).await;
    compat.accepted(&o, JWT_ID, "client_secret_jwt");

    let strict = Rig::with("assertion: { audience: strict }\n").await;
    let o = strict.send(jwt_form(&both())).await;
    ic(&o);
    // Strict still takes the issuer as the sole string, and nothing else.
    let endpoint_only = mint(hs256(), jwt_claims(), JWT_SECRET.as_bytes());
    ic(&strict.send(jwt_form(&endpoint_only)).await);
    let issuer = claims_with(|c| {
        c.insert("aud".into(), json!(ISSUER));
    });
    let o = strict.send(jwt_form(&issuer)).await;
    strict.accepted(&o, JWT_ID, "client_secret_jwt");
}

#[tokio::test]
async fn j7_audience_missing_or_wrong() {
    let rig = Rig::start().await;
    for edit in [
        None,
        Some(json!("https://evil.example/oauth2/token")),
        Some(json!([])),
        Some(json!(format!("{PUBLIC_URL}/oauth2/introspect"))),
        Some(json!(format!("{ISSUER}/"))),
    ] {
        let a = claims_with(|c| match edit {
            None => {
                c.remove("aud");
            }
            Some(v) => {
                c.insert("aud".into(), v);
            }
        });
        ic(&rig.send(jwt_form(&a)).await);
    }
}

#[tokio::test]
async fn j8_alg_none() {
    let rig = Rig::start().await;
    for alg in ["none", "None", "NONE"] {
        let h = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "JWT"}).to_string());
        let p = URL_SAFE_NO_PAD.encode(jwt_claims().to_string());
        ic(&rig.send(jwt_form(&format!("{h}.{p}."))).await);
    }
}

#[tokio::test]
async fn j9_alg_wrong_case() {
    let rig = Rig::start().await;
    for alg in ["hs256", "Hs256"] {
        // The MAC itself is right (HS256 with the right key); only the name is wrong.
        let a = mint(json!({"alg": alg}), jwt_claims(), JWT_SECRET.as_bytes());
        ic(&rig.send(jwt_form(&a)).await);
    }
}

#[tokio::test]
async fn j10_algorithm_not_allowed_for_client() {
    let rig = Rig::start().await;
    let hs512 = json!({"alg": "HS512", "typ": "JWT"});
    // The default client allows only HS256.
    let a = mint(hs512.clone(), jwt_claims(), JWT_SECRET.as_bytes());
    ic(&rig.send(jwt_form(&a)).await);
    // A client allowing only HS512 takes HS512 ...
    let claims = || {
        let mut c = jwt_claims();
        c["iss"] = json!(JWT512_ID);
        c["sub"] = json!(JWT512_ID);
        c
    };
    let a = mint(hs512, claims(), JWT512_SECRET.as_bytes());
    let o = rig.send(jwt_form(&a)).await;
    rig.accepted(&o, JWT512_ID, "client_secret_jwt");
    // ... and refuses HS256.
    let a = mint(hs256(), claims(), JWT512_SECRET.as_bytes());
    ic(&rig.send(jwt_form(&a)).await);
}

#[tokio::test]
async fn j12_rs256_header() {
    let rig = Rig::start().await;
    for alg in ["RS256", "ES256", "PS256", "EdDSA"] {
        let a = mint(
            json!({"alg": alg, "typ": "JWT"}),
            jwt_claims(),
            JWT_SECRET.as_bytes(),
        );
        ic(&rig.send(jwt_form(&a)).await);
    }
}

#[tokio::test]
async fn j13_mac_keyed_with_base64_decoded_secret() {
    let rig = Rig::start().await;
    let claims = || {
        let mut c = jwt_claims();
        c["iss"] = json!(B64_ID);
        c["sub"] = json!(B64_ID);
        c
    };
    let decoded = STANDARD.decode(B64_SECRET).unwrap();
    assert_eq!(decoded.len(), 32);
    ic(&rig.send(jwt_form(&mint(hs256(), claims(), &decoded))).await);
    // The UTF-8 bytes of the same secret are the key.
    let o = rig
        .send(jwt_form(&mint(hs256(), claims(), B64_SECRET.as_bytes())))
        .await;
    rig.accepted(&o, B64_ID, "client_secret_jwt");
}

/// RFC 7515 Appendix A.1.
const A1_JWS: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const A1_KEY: &str =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

#[tokio::test]
async fn j14_rfc7515_a1_vector() {
    use hmac::Mac;
    // The vector itself is a valid HS256 JWS ...
    let (input, sig) = A1_JWS.rsplit_once('.').unwrap();
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(&URL_SAFE_NO_PAD.decode(A1_KEY).unwrap())
            .unwrap();
    mac.update(input.as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap())
        .expect("RFC 7515 A.1 verifies");
    // ... but as a client assertion it is expired and has no sub, aud or jti.
    let rig = Rig::start().await;
    ic(&rig.send(jwt_form(A1_JWS)).await);
}

#[tokio::test]
async fn j15_expired_beyond_and_within_leeway() {
    let rig = Rig::start().await;
    let t = now();
    let a = claims_with(|c| {
        c.insert("iat".into(), json!(t - 120));
        c.insert("exp".into(), json!(t - 60));
    });
    ic(&rig.send(jwt_form(&a)).await);
    // Leeway is 30 s: expired 10 s ago is still accepted.
    let a = claims_with(|c| {
        c.insert("iat".into(), json!(t - 70));
        c.insert("exp".into(), json!(t - 10));
    });
    let o = rig.send(jwt_form(&a)).await;
    rig.accepted(&o, JWT_ID, "client_secret_jwt");
}

#[tokio::test]
async fn j16_exp_missing_or_a_string() {
    let rig = Rig::start().await;
    let t = now();
    for exp in [None, Some(json!((t + 60).to_string())), Some(json!(null))] {
        let a = claims_with(|c| match exp {
            None => {
                c.remove("exp");
            }
            Some(v) => {
                c.insert("exp".into(), v);
            }
        });
        ic(&rig.send(jwt_form(&a)).await);
    }
}

#[tokio::test]
async fn j18_iat_too_old_in_future_or_missing_with_far_exp() {
    let rig = Rig::start().await;
    let t = now();
    // max_age 5 min (+ 30 s leeway).
    let old = claims_with(|c| {
        c.insert("iat".into(), json!(t - 400));
        c.insert("exp".into(), json!(t + 60));
    });
    ic(&rig.send(jwt_form(&old)).await);
    let future = claims_with(|c| {
        c.insert("iat".into(), json!(t + 120));
        c.insert("exp".into(), json!(t + 180));
    });
    ic(&rig.send(jwt_form(&future)).await);
    let no_iat_far_exp = claims_with(|c| {
        c.remove("iat");
        c.insert("exp".into(), json!(t + 3600));
    });
    ic(&rig.send(jwt_form(&no_iat_far_exp)).await);
    // Without iat, an exp within max_age is fine.
    let no_iat = claims_with(|c| {
        c.remove("iat");
        c.insert("exp".into(), json!(t + 60));
    });
    let o = rig.send(jwt_form(&no_iat)).await;
    rig.accepted(&o, JWT_ID, "client_secret_jwt");
}

#[tokio::test]
async fn j19_nbf_in_the_future() {
    let rig = Rig::start().await;
    let t = now();
    let a = claims_with(|c| {
        c.insert("nbf".into(), json!(t + 120));
    });
    ic(&rig.send(jwt_form(&a)).await);
    let a = claims_with(|c| {
        c.insert("nbf".into(), json!("soon"));
    });
    ic(&rig.send(jwt_form(&a)).await);
}

#[tokio::test]
async fn j20_jti_missing() {
    let rig = Rig::start().await;
    for jti in [None, Some(json!("")), Some(json!(12345))] {
        let a = claims_with(|c| match jti {
            None => {
                c.remove("jti");
            }
            Some(v) => {
                c.insert("jti".into(), v);
            }
        });
        ic(&rig.send(jwt_form(&a)).await);
    }
}

#[tokio::test]
async fn j21_replayed_jti() {
    let rig = Rig::start().await;
    let a = assertion();
    let o = rig.send(jwt_form(&a)).await;
    rig.accepted(&o, JWT_ID, "client_secret_jwt");
    ic(&rig.send(jwt_form(&a)).await);
    // A different assertion reusing the jti is a replay too.
    let jti = {
        let payload = a.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims["jti"].clone()
    };
    let again = claims_with(|c| {
        c.insert("jti".into(), jti);
        c.insert("aud".into(), json!(ISSUER));
    });
    ic(&rig.send_h2(jwt_form(&again)).await);
}

#[tokio::test]
async fn j23_sub_missing_or_unknown_client() {
    let rig = Rig::start().await;
    let a = claims_with(|c| {
        c.remove("sub");
    });
    ic(&rig.send(jwt_form(&a)).await);
    let a = claims_with(|c| {
        c.insert("sub".into(), json!("ghost"));
        c.insert("iss".into(), json!("ghost"));
    });
    ic(&rig.send(jwt_form(&a)).await);
    // A client registered for another method, MAC keyed with its own secret.
    let mut c = jwt_claims();
    c["iss"] = json!(POST_ID);
    c["sub"] = json!(POST_ID);
    ic(&rig
        .send(jwt_form(&mint(hs256(), c, POST_SECRET.as_bytes())))
        .await);
}

#[tokio::test]
async fn j24_iss_differs_from_sub() {
    let rig = Rig::start().await;
    for iss in [Some(json!("someone-else")), None, Some(json!(ISSUER))] {
        let a = claims_with(|c| match iss {
            None => {
                c.remove("iss");
            }
            Some(v) => {
                c.insert("iss".into(), v);
            }
        });
        ic(&rig.send(jwt_form(&a)).await);
    }
}

#[tokio::test]
async fn j25_body_client_id_differs_from_sub() {
    let rig = Rig::start().await;
    for id in [POST_ID, "nobody"] {
        let body = format!("{}&client_id={id}", assertion_body(&assertion()));
        ir(&rig.send(form(TOKEN_PATH, &body)).await);
    }
}

#[tokio::test]
async fn j27_assertion_type_missing_or_wrong_or_empty_assertion() {
    let rig = Rig::start().await;
    let enc = secretgate::auth::form::form_encode_component;
    for body in [
        format!("{GRANT}&client_assertion={}", assertion()),
        format!(
            "{GRANT}&client_assertion_type={}&client_assertion={}",
            enc("urn:ietf:params:oauth:client-assertion-type:saml2-bearer"),
            assertion()
        ),
        format!(
            "{GRANT}&client_assertion_type={}&client_assertion={}",
            enc("URN:IETF:PARAMS:OAUTH:CLIENT-ASSERTION-TYPE:JWT-BEARER"),
            assertion()
        ),
        format!(
            "{GRANT}&client_assertion_type=&client_assertion={}",
            assertion()
        ),
        format!(
            "{GRANT}&client_assertion_type={}&client_assertion=",
            enc(ASSERTION_TYPE)
        ),
        format!("{GRANT}&client_assertion_type={}", enc(ASSERTION_TYPE)),
    ] {
        ir(&rig.send(form(TOKEN_PATH, &body)).await);
    }
}

#[tokio::test]
async fn j28_assertion_plus_basic_or_secret_or_repeated() {
    let rig = Rig::start().await;
    // Plus Basic.
    ir(&rig
        .send(with_auth(
            &basic(BASIC_ID, BASIC_SECRET),
            &assertion_body(&assertion()),
        ))
        .await);
    ir(&rig
        .send(with_auth(
            &basic(JWT_ID, JWT_SECRET),
            &assertion_body(&assertion()),
        ))
        .await);
    // Plus client_secret.
    let body = format!(
        "{}&client_id={JWT_ID}&client_secret={JWT_SECRET}",
        assertion_body(&assertion())
    );
    ir(&rig.send(form(TOKEN_PATH, &body)).await);
    // Assertion repeated (twice the same, or two different ones).
    let a = assertion();
    let body = format!("{}&client_assertion={a}", assertion_body(&a));
    ir(&rig.send(form(TOKEN_PATH, &body)).await);
    let body = format!(
        "{}&client_assertion={}",
        assertion_body(&assertion()),
        assertion()
    );
    ir(&rig.send(form(TOKEN_PATH, &body)).await);
    // Assertion type repeated.
    let body = format!(
        "{}&client_assertion_type={}",
        assertion_body(&assertion()),
        secretgate::auth::form::form_encode_component(ASSERTION_TYPE)
    );
    ir(&rig.send(form(TOKEN_PATH, &body)).await);
}

#[tokio::test]
async fn j29_unparseable_assertion() {
    let rig = Rig::start().await;
    ir(&rig.send(jwt_form("this.notatall.valid")).await);
}

/// Turns a valid assertion into a structurally broken one.
type Mangle = Box<dyn Fn(&str) -> String>;

#[tokio::test]
async fn j30_two_or_four_segments_padding_whitespace() {
    let rig = Rig::start().await;
    let enc = secretgate::auth::form::form_encode_component;
    let cases: Vec<Mangle> = vec![
        // Two segments.
        Box::new(|a: &str| a.rsplit_once('.').unwrap().0.to_owned()),
        // Four segments.
        Box::new(|a: &str| format!("{a}.{}", a.split('.').nth(2).unwrap())),
        Box::new(|a: &str| format!("{a}.")),
        // `=` padding on the signature (32 bytes: one `=`), and on every segment.
        Box::new(|a: &str| format!("{a}=")),
        Box::new(|a: &str| {
            a.split('.')
                .map(|s| format!("{s}{}", "=".repeat((4 - s.len() % 4) % 4)))
                .collect::<Vec<_>>()
                .join(".")
        }),
        // Whitespace: inside, leading, trailing, a trailing newline.
        Box::new(|a: &str| a.replacen('.', ". ", 1)),
        Box::new(|a: &str| format!(" {a}")),
        Box::new(|a: &str| format!("{a} ")),
        Box::new(|a: &str| format!("{a}\n")),
        Box::new(|a: &str| a.replacen('.', "\r\n.", 1)),
    ];
    for case in cases {
        // A fresh, otherwise valid assertion each time: acceptance would show as a 200.
        let bad = case(&assertion());
        let body = format!(
            "{GRANT}&client_assertion_type={}&client_assertion={}",
            enc(ASSERTION_TYPE),
            enc(&bad)
        );
        let o = rig.send(form(TOKEN_PATH, &body)).await;
        assert_eq!(o.reply.status, StatusCode::BAD_REQUEST, "{bad:?}");
        ir(&o);
    }
}

#[tokio::test]
async fn j34_tampered_payload() {
    let rig = Rig::start().await;
    let a = assertion();
    let mut parts: Vec<String> = a.split('.').map(str::to_owned).collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    claims["exp"] = json!(now() + 240);
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    ic(&rig.send(jwt_form(&parts.join("."))).await);
    // Tampered signature, and a header swapped for another alg's.
    let mut sig = URL_SAFE_NO_PAD
        .decode(a.split('.').nth(2).unwrap())
        .unwrap();
    sig[0] ^= 1;
    let (input, _) = a.rsplit_once('.').unwrap();
    ic(&rig
        .send(jwt_form(&format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(sig)
        )))
        .await);
    let h384 = URL_SAFE_NO_PAD.encode(json!({"alg": "HS384"}).to_string());
    let (_, rest) = a.split_once('.').unwrap();
    ic(&rig.send(jwt_form(&format!("{h384}.{rest}"))).await);
    // The untouched assertion still works: the rejections were about the tampering.
    let o = rig.send(jwt_form(&a)).await;
    rig.accepted(&o, JWT_ID, "client_secret_jwt");
}

#[test]
fn j35_short_jwt_secret_is_a_config_error() {
    let pki = Pki::generate();
    let upstream = "127.0.0.1:9".parse().unwrap();
    let short = "a".repeat(31);
    let extra = format!(
        "  - client_id: shortjwt\n    auth_method: client_secret_jwt\n    secrets: [{{ value: \"{short}\" }}]\n"
    );
    let err = secretgate::Config::from_yaml(&config_yaml(&pki, upstream, &extra), pki.path())
        .expect_err("a 31-byte jwt secret is refused");
    let problems = err.problems();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("clients[3]") && p.contains("shortjwt")),
        "the problem names the client: {problems:?}"
    );
    assert!(
        problems.iter().all(|p| !p.contains(&short)),
        "the secret itself is not printed: {problems:?}"
    );
    // 32 bytes is enough; the same short secret is fine for a Basic client.
    let ok = format!(
        "  - client_id: okjwt\n    auth_method: client_secret_jwt\n    secrets: [{{ value: \"{}\" }}]\n  - client_id: shortbasic\n    auth_method: client_secret_basic\n    secrets: [{{ value: \"{short}\" }}]\n",
        "a".repeat(32)
    );
    secretgate::Config::from_yaml(&config_yaml(&pki, upstream, &ok), pki.path())
        .expect("32 bytes is enough");
    // And the CLI refuses to start on it.
    let path = pki.path().join("short.yaml");
    std::fs::write(&path, config_yaml(&pki, upstream, &extra)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("shortjwt"));
}

// ---------------------------------------------------------------------------------------
// Forwarding and the internal header

#[tokio::test]
async fn f1_upstream_sees_no_secret_and_a_valid_internal_header() {
    let rig = Rig::start().await;
    let tenant_path = "/acme/app/oauth2/token";
    for h2 in [false, true] {
        for path in [TOKEN_PATH, tenant_path] {
            let send = |req| rig.send_on(h2, req);
            let basic_req = post(
                path,
                Some(FORM),
                &[
                    ("authorization", &basic(BASIC_ID, BASIC_SECRET)),
                    ("cookie", "session=1"),
                ],
                GRANT,
            );
            let rec = rig.accepted_at(
                &send(basic_req).await,
                BASIC_ID,
                "client_secret_basic",
                path,
            );
            check_binding(&rig, &rec, path);

            let post_req = post(
                path,
                Some(FORM),
                &[],
                format!("{GRANT}&client_id={POST_ID}&client_secret={POST_SECRET}"),
            );
            let rec = rig.accepted_at(&send(post_req).await, POST_ID, "client_secret_post", path);
            check_binding(&rig, &rec, path);

            let a = claims_with(|c| {
                c.insert("aud".into(), json!(ISSUER));
            });
            let jwt_req = post(path, Some(FORM), &[], assertion_body(&a));
            let rec = rig.accepted_at(&send(jwt_req).await, JWT_ID, "client_secret_jwt", path);
            assert!(!rec.everything().contains(&a));
            check_binding(&rig, &rec, path);
        }
    }
}

/// The internal header is bound to its body, URL and key.
fn check_binding(rig: &Rig, rec: &Recorded, path: &str) {
    let value = rec.headers[INTERNAL].to_str().unwrap();
    let keys = VerifyKeys::new(&rig.gw.config.internal_header.keys);
    let url = format!("{PUBLIC_URL}{path}");
    let base = Expected {
        issuer: "secretgate",
        audience: "legacy-token-service",
        method: Some("POST"),
        url: Some(&url),
        body: Some(&rec.body),
        ..Default::default()
    };
    let mut other_body = rec.body.to_vec();
    other_body.extend_from_slice(b"&scope=admin");
    assert_eq!(
        verify_internal_header(
            value,
            &keys,
            &Expected {
                body: Some(&other_body),
                ..base.clone()
            }
        ),
        Err(VerifyError::BodyHash)
    );
    let other_url = format!("{PUBLIC_URL}/oauth2/introspect");
    assert_eq!(
        verify_internal_header(
            value,
            &keys,
            &Expected {
                url: Some(&other_url),
                ..base.clone()
            }
        ),
        Err(VerifyError::Url)
    );
    let wrong_key = [secretgate::config::SigningKey {
        id: rig.gw.config.internal_header.keys[0].id.clone(),
        secret: secretgate::secret::Secret::new(b"another-key-0123456789abcdefghijk".to_vec()),
    }];
    assert_eq!(
        verify_internal_header(value, &VerifyKeys::new(&wrong_key), &base),
        Err(VerifyError::Signature)
    );
}

// ---------------------------------------------------------------------------------------
// T7: throttling (written last; the feature is being built in parallel).

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

/// An HTTP/1.1 client whose connection comes from another loopback address.
async fn connect_from(gw: &Gateway, ip: [u8; 4]) -> Client {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from((ip, 0)))
        .expect("bind another loopback address");
    let tcp = socket.connect(gw.addr).await.unwrap();
    Client::H1(h1_over_tls(tcp, &gw.pki.ca_der).await)
}
