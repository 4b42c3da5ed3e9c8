//! The rig every conformance row runs on: a recording upstream, a gateway in front of it
//! with extra clients registered, the checks for an accepted and a rejected request, the
//! request builders the sections share, and the clients beyond `Gateway::send` (a body
//! streamed chunk by chunk, a connection from another source address).

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};

use secretgate::{verify_internal_header, Expected};

use crate::support::*;

pub(crate) const INTERNAL: &str = "x-authenticated-client";
const CHALLENGE: &str = "Basic realm=\"secretgate\"";
pub(crate) const FORM: &str = "application/x-www-form-urlencoded";

// Extra clients, appended after the three standard ones in `config_yaml`.
pub(crate) const RFC_ID: &str = "s6BhdRkqt3";
pub(crate) const RFC_SECRET: &str = "7Fjfp0ZBr1KtDRbnfVdmIw";
pub(crate) const RFC_HEADER: &str = "Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3";
/// Needs form-encoding in a Basic header: `-` in the id, `:` in the secret.
pub(crate) const DASH_ID: &str = "my-client";
pub(crate) const DASH_SECRET: &str = "se:cret-with:colons-0123";
/// A secret with a raw colon, sent as is (not form-encoded).
pub(crate) const COLON_ID: &str = "colon";
pub(crate) const COLON_SECRET: &str = "a:b:c-secret";
pub(crate) const SPACE_ID: &str = "spacey";
const SPACE_SECRET: &str = "with space secret";
/// A jwt client that allows only HS512.
pub(crate) const JWT512_ID: &str = "mobile512";
pub(crate) const JWT512_SECRET: &str =
    "hs512-secret-0123456789abcdefghijklmnopqrstuvwxyz-0123456789ABCDEFGH";
/// A jwt client whose secret looks like base64 (as `openssl rand -base64 32` makes).
pub(crate) const B64_ID: &str = "b64jwt";
pub(crate) const B64_SECRET: &str = "q83vEjRWeJASNFZ4kKvN7xI0VniQq83vEjRWeJCrze8=";

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

pub(crate) struct Rig {
    pub(crate) upstream: RecordingUpstream,
    pub(crate) gw: Gateway,
}

/// A reply, and what the upstream received because of it (if anything).
pub(crate) struct Outcome {
    pub(crate) reply: Reply,
    pub(crate) forwarded: Option<Recorded>,
}

impl Rig {
    pub(crate) async fn start() -> Rig {
        Self::with("").await
    }

    /// `top_level` is YAML appended after the clients list (top-level keys, unindented).
    /// The gateway's clock is pinned (support::pin_clock): no row depends on the wall
    /// clock.
    pub(crate) async fn with(top_level: &str) -> Rig {
        pin_clock();
        let upstream = RecordingUpstream::start(Behaviour::Token).await;
        let extra = format!("{}{top_level}", extra_clients());
        let gw = Gateway::start_with(upstream.addr, &extra).await;
        Rig { upstream, gw }
    }

    pub(crate) async fn send(&self, req: Request<Full<Bytes>>) -> Outcome {
        let before = self.upstream.records().len();
        let reply = self.gw.send(req).await;
        self.outcome(before, reply)
    }

    pub(crate) async fn send_h2(&self, req: Request<Full<Bytes>>) -> Outcome {
        let before = self.upstream.records().len();
        let reply = self.gw.client(true).await.send(req).await;
        self.outcome(before, reply)
    }

    pub(crate) async fn send_on(&self, h2: bool, req: Request<Full<Bytes>>) -> Outcome {
        if h2 {
            self.send_h2(req).await
        } else {
            self.send(req).await
        }
    }

    /// Sends a body chunk by chunk over HTTP/1.1 (chunked unless `head` sets a
    /// Content-Length). With `finish: false` the body is left open until the answer came.
    pub(crate) async fn send_streamed(
        &self,
        head: http::request::Builder,
        chunks: Vec<Bytes>,
        finish: bool,
    ) -> Outcome {
        let before = self.upstream.records().len();
        let reply = send_streamed(&self.gw, head, chunks, finish).await;
        self.outcome(before, reply)
    }

    pub(crate) fn outcome(&self, before: usize, reply: Reply) -> Outcome {
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
    pub(crate) fn accepted(&self, o: &Outcome, client_id: &str, method: &str) -> Recorded {
        self.accepted_at(o, client_id, method, TOKEN_PATH)
    }

    pub(crate) fn accepted_at(
        &self,
        o: &Outcome,
        client_id: &str,
        method: &str,
        path: &str,
    ) -> Recorded {
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
            &secretgate::verify::keys_of(&self.gw.config.internal_header.keys),
            &Expected {
                now: Some(now()),
                ..Expected::request(
                    "secretgate",
                    "legacy-token-service",
                    "POST",
                    &url,
                    rec.uri.query(),
                    &rec.body,
                )
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
pub(crate) fn rejected(o: &Outcome, status: StatusCode, error: &str, challenge: bool) {
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

/// The headers and body shape of every response the gateway writes (docs/design.md §3).
pub(crate) fn assert_gateway_error(r: &Reply, error: &str) {
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

pub(crate) fn ir(o: &Outcome) {
    rejected(o, StatusCode::BAD_REQUEST, "invalid_request", false);
}

pub(crate) fn ic(o: &Outcome) {
    rejected(o, StatusCode::UNAUTHORIZED, "invalid_client", false);
}

pub(crate) fn ic_w3a(o: &Outcome) {
    rejected(o, StatusCode::UNAUTHORIZED, "invalid_client", true);
}

pub(crate) const GRANT: &str = "grant_type=client_credentials";

/// A form POST to the token endpoint with an `Authorization` header.
pub(crate) fn with_auth(auth: &str, body: &str) -> Request<Full<Bytes>> {
    post(
        TOKEN_PATH,
        Some(FORM),
        &[("authorization", auth)],
        body.to_owned(),
    )
}

/// `Basic base64(raw)`: no form-encoding of the halves, unlike `basic()`.
pub(crate) fn basic_raw(raw: &str) -> String {
    format!("Basic {}", STANDARD.encode(raw))
}

pub(crate) fn jwt_form(assertion: &str) -> Request<Full<Bytes>> {
    form(TOKEN_PATH, &assertion_body(assertion))
}

pub(crate) fn claims_with(
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) -> String {
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

/// An HTTP/1.1 client whose connection comes from another loopback address.
pub(crate) async fn connect_from(gw: &Gateway, ip: [u8; 4]) -> Client {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from((ip, 0)))
        .expect("bind another loopback address");
    let tcp = socket.connect(gw.addr).await.unwrap();
    Client::H1(h1_over_tls(tcp, &gw.pki.ca_der).await)
}
