//! Test support: run-time PKI (rcgen), a recording upstream, a TLS client, and a gateway
//! started on 127.0.0.1:0. Readiness is signalled by channels and bound listeners, never
//! by sleeping.

#![allow(dead_code)]

pub mod capture;
pub mod client_cert;
#[allow(unused_imports)]
pub use client_cert::*;
pub mod public_gateway;
pub mod rig;
#[allow(unused_imports)]
pub use public_gateway::*;
#[allow(unused_imports)]
pub use rig::*;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Notify};

pub const BASIC_ID: &str = "billing";
pub const BASIC_SECRET: &str = "basic-secret-0123456789";
pub const POST_ID: &str = "reports";
pub const POST_SECRET: &str = "post-secret-0123456789";
pub const JWT_ID: &str = "mobile";
pub const JWT_SECRET: &str = "jwt-secret-0123456789abcdefghijklmnop";
pub const SIGNING_KEY: &str = "internal-signing-key-0123456789abcdef";
pub const PUBLIC_URL: &str = "https://auth.example.com";
pub const ISSUER: &str = "https://auth.example.com/acme/default";
pub const TOKEN_PATH: &str = "/oauth2/token";
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A CA and a server certificate for localhost / 127.0.0.1, written to a temp dir.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca_der: CertificateDer<'static>,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_file: PathBuf,
    /// DER of the leaf certificate now in `cert_file`.
    pub leaf_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    pub fn generate() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "secretgate test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let cert_file = dir.path().join("tls.crt");
        let key_file = dir.path().join("tls.key");
        let ca_file = dir.path().join("ca.crt");
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();
        let mut pki = Pki {
            ca_der: ca_cert.der().clone(),
            dir,
            cert_file,
            key_file,
            ca_file,
            leaf_der: CertificateDer::from(Vec::new()),
            issuer,
        };
        pki.reissue();
        pki
    }

    /// Writes a new leaf certificate and key (same CA, new key pair) over the old files,
    /// as a certificate renewal would.
    pub fn reissue(&mut self) {
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &self.issuer).unwrap();
        std::fs::write(&self.cert_file, leaf.pem()).unwrap();
        std::fs::write(&self.key_file, leaf_key.serialize_pem()).unwrap();
        self.leaf_der = leaf.der().clone();
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// What the recording upstream received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub uri: http::Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    /// Everything the upstream saw, as one lossy string, for "no secret anywhere" checks.
    pub fn everything(&self) -> String {
        let mut s = format!("{} {}\n", self.method, self.uri);
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
        }
        s.push_str(&String::from_utf8_lossy(&self.body));
        s
    }
}

/// How the upstream answers.
#[derive(Clone)]
pub enum Behaviour {
    /// 200 with a token response naming what it saw.
    Token,
    /// Wait this long before answering (a slow upstream).
    Delay(Duration),
    /// Wait until the notify fires before answering.
    Gate(Arc<Notify>),
    /// Tell the test when the first body chunk arrived, then read the rest and answer.
    StreamProbe(Arc<Mutex<Option<oneshot::Sender<()>>>>),
    /// 200 with this content type and body (a discovery document, say), and no token.
    Document {
        content_type: &'static str,
        body: Bytes,
    },
    /// 302 to this location (an authorization endpoint issuing a code).
    Found(&'static str),
}

pub struct RecordingUpstream {
    pub addr: SocketAddr,
    pub records: Arc<Mutex<Vec<Recorded>>>,
    /// Receives one message per request as soon as its head arrives.
    pub arrivals: mpsc::UnboundedReceiver<()>,
}

impl RecordingUpstream {
    pub async fn start(behaviour: Behaviour) -> RecordingUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let records = Arc::new(Mutex::new(Vec::new()));
        let (tx, arrivals) = mpsc::unbounded_channel();
        let recs = records.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let recs = recs.clone();
                let tx = tx.clone();
                let behaviour = behaviour.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let recs = recs.clone();
                        let tx = tx.clone();
                        let behaviour = behaviour.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                answer(req, recs, tx, behaviour).await,
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        RecordingUpstream {
            addr,
            records,
            arrivals,
        }
    }

    pub fn records(&self) -> Vec<Recorded> {
        self.records.lock().unwrap().clone()
    }

    pub fn last(&self) -> Recorded {
        self.records()
            .pop()
            .expect("the upstream received a request")
    }
}

async fn answer(
    req: Request<Incoming>,
    recs: Arc<Mutex<Vec<Recorded>>>,
    tx: mpsc::UnboundedSender<()>,
    behaviour: Behaviour,
) -> Response<Full<Bytes>> {
    let _ = tx.send(());
    let (parts, mut body) = req.into_parts();
    let mut collected = Vec::new();
    if let Behaviour::StreamProbe(probe) = &behaviour {
        if let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                collected.extend_from_slice(&data);
            }
        }
        if let Some(tx) = probe.lock().unwrap().take() {
            let _ = tx.send(());
        }
    }
    let rest = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    collected.extend_from_slice(&rest);
    let rec = Recorded {
        method: parts.method.clone(),
        uri: parts.uri.clone(),
        version: parts.version,
        headers: parts.headers.clone(),
        body: Bytes::from(collected),
    };
    recs.lock().unwrap().push(rec);
    match &behaviour {
        Behaviour::Delay(d) => tokio::time::sleep(*d).await,
        Behaviour::Gate(n) => n.notified().await,
        Behaviour::Document { content_type, body } => {
            return Response::builder()
                .status(200)
                .header("content-type", *content_type)
                .header("etag", "\"upstream-etag\"")
                .body(Full::new(body.clone()))
                .unwrap()
        }
        Behaviour::Found(location) => {
            return Response::builder()
                .status(302)
                .header("location", *location)
                .header("x-upstream", "yes")
                .body(Full::new(Bytes::new()))
                .unwrap()
        }
        _ => {}
    }
    let body = serde_json::json!({
        "access_token": "upstream-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "path": parts.uri.path(),
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("x-upstream", "yes")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

/// A port on 127.0.0.1 where nothing listens.
/// An address that refuses connections for the rest of the test process: a
/// socket bound to it that never listens (a connection gets a reset) and is
/// never closed, so no other test's listener can take the port. A port freed
/// by dropping a listener could be taken by a server another test starts in
/// between, and the request meant to fail would reach it (seen in CI: 404).
pub async fn refused_addr() -> SocketAddr {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    std::mem::forget(socket);
    addr
}

/// A free address for a process the test starts to listen on.
pub async fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

/// A YAML config for the gateway with one client per method.
pub fn config_yaml(pki: &Pki, upstream: SocketAddr, extra: &str) -> String {
    let basic_secret_file = pki.path().join("billing.secret");
    std::fs::write(&basic_secret_file, format!("{BASIC_SECRET}\n")).unwrap();
    let key_file = pki.path().join("signing.key");
    std::fs::write(&key_file, SIGNING_KEY).unwrap();
    format!(
        r#"
listen: "127.0.0.1:0"
tls:
  cert_file: "{cert}"
  key_file: "{key}"
upstream:
  url: "http://{upstream}"
  connect_timeout: 1s
  timeout: 2s
public_url: "{PUBLIC_URL}"
issuer: "{ISSUER}"
endpoints:
  token: ["/oauth2/token", "/{{tid}}/{{aid}}/oauth2/token"]
  introspection: ["/oauth2/introspect"]
internal_header:
  issuer: secretgate
  audience: legacy-token-service
  keys:
    - id: k1
      file: "{keyfile}"
shutdown_grace: 10s
workers: 1
clients:
  - client_id: {BASIC_ID}
    auth_method: client_secret_basic
    secrets: [{{ file: "{basic_file}" }}]
  - client_id: {POST_ID}
    auth_method: client_secret_post
    secrets: [{{ value: "{POST_SECRET}" }}]
  - client_id: {JWT_ID}
    auth_method: client_secret_jwt
    secrets: [{{ value: "{JWT_SECRET}" }}]
{extra}"#,
        cert = pki.cert_file.display(),
        key = pki.key_file.display(),
        keyfile = key_file.display(),
        basic_file = basic_secret_file.display(),
    )
}

/// A running gateway.
pub struct Gateway {
    pub addr: SocketAddr,
    pub pki: Pki,
    pub config: secretgate::Config,
    pub shutdown: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<Result<(), secretgate::ServeError>>,
    pub lifecycle: Arc<secretgate::shutdown::Lifecycle>,
    pub admin: Option<SocketAddr>,
    pub reloader: secretgate::reload::Reloader,
    /// Where the config was written, for gateways started with [`Gateway::start_file`].
    pub config_file: Option<PathBuf>,
}

impl Gateway {
    pub async fn start(upstream: SocketAddr) -> Gateway {
        Self::start_with(upstream, "").await
    }

    pub async fn start_with(upstream: SocketAddr, extra: &str) -> Gateway {
        Self::start_with_pki(Pki::generate(), upstream, extra).await
    }

    /// [`Gateway::start_with`] in a PKI directory the test already put files in (keys, a
    /// JWK Set) that `extra` names relative to it.
    pub async fn start_with_pki(pki: Pki, upstream: SocketAddr, extra: &str) -> Gateway {
        let yaml = config_yaml(&pki, upstream, extra);
        Self::start_yaml(pki, &yaml).await
    }

    pub async fn start_yaml(pki: Pki, yaml: &str) -> Gateway {
        Self::start_yaml_at(pki, yaml, clock()).await
    }

    /// Like [`Gateway::start_yaml`], on a clock of its own (a gateway whose clock is
    /// wrong, say: its headers are expired or not yet valid for everyone else).
    pub async fn start_yaml_at(pki: Pki, yaml: &str, clock: secretgate::Clock) -> Gateway {
        let config = secretgate::Config::from_yaml(yaml, pki.path()).expect("test config is valid");
        Self::launch(pki, config, None, clock).await
    }

    /// Writes `yaml` to `secretgate.yaml` in the PKI dir and starts from that file, so
    /// reloads (and the file watcher, per the config's `reload` block) read it again.
    pub async fn start_file(pki: Pki, yaml: &str) -> Gateway {
        let path = pki.path().join("secretgate.yaml");
        std::fs::write(&path, yaml).unwrap();
        let config = secretgate::Config::load(&path).expect("test config is valid");
        Self::launch(pki, config, Some(path), clock()).await
    }

    async fn launch(
        pki: Pki,
        config: secretgate::Config,
        file: Option<PathBuf>,
        clock: secretgate::Clock,
    ) -> Gateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = admin_listener.local_addr().unwrap();
        let mut gateway =
            secretgate::Gateway::with_clock(config.clone(), clock).expect("gateway starts");
        if let Some(path) = &file {
            gateway = gateway.reload_from(path);
        }
        let lifecycle = gateway.lifecycle();
        let reloader = gateway.reloader();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway.serve(listener, Some(admin_listener), async move {
            let _ = rx.await;
        }));
        Gateway {
            addr,
            pki,
            config,
            shutdown: Some(tx),
            task,
            lifecycle,
            admin: Some(admin),
            reloader,
            config_file: file,
        }
    }

    /// `GET /metrics` from the admin listener.
    pub async fn metrics(&self) -> String {
        let (status, body) = admin_get(self.admin.expect("admin listener"), "/metrics").await;
        assert_eq!(status, 200);
        body
    }

    /// Starts the drain (like SIGTERM).
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub async fn client(&self, h2: bool) -> Client {
        Client::connect(self.addr, &self.pki.ca_der, h2).await
    }

    /// One request over a fresh HTTP/1.1 connection.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Reply {
        self.client(false).await.send(req).await
    }
}

/// A response with its body collected.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub version: Version,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("JSON body, got {:?}", self.body))
    }

    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }

    pub fn has_basic_challenge(&self) -> bool {
        self.headers.contains_key(http::header::WWW_AUTHENTICATE)
    }
}

pub enum Client {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

pub fn tls_connector(ca: &CertificateDer<'static>, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// A TLS connection to the gateway (trusting the test CA, SNI `localhost`) offering
/// `alpn`, with no HTTP on it yet.
pub async fn tls_connect(
    gw: &Gateway,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(gw.addr).await?;
    tls_connector(&gw.pki.ca_der, alpn)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// HTTP/1.1 over TLS (trusting the test CA, SNI `localhost`) on an already connected
/// socket, for any request body type; the connection task is spawned.
pub async fn h1_over_tls<B>(
    tcp: TcpStream,
    ca: &CertificateDer<'static>,
) -> hyper::client::conn::http1::SendRequest<B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tls = tls_connector(ca, &[b"http/1.1"])
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

/// Verification keys for `verify_internal_header`, from (kid, key) pairs.
pub fn verify_keys(list: &[(&str, &str)]) -> secretgate::VerifyKeys {
    let keys: Vec<_> = list
        .iter()
        .map(|(id, k)| {
            secretgate::config::SigningKey::hmac(
                *id,
                secretgate::secret::Secret::new(k.as_bytes().to_vec()),
            )
        })
        .collect();
    secretgate::verify::keys_of(&keys)
}

impl Client {
    pub async fn connect(addr: SocketAddr, ca: &CertificateDer<'static>, h2: bool) -> Client {
        let alpn: &[&[u8]] = if h2 { &[b"h2"] } else { &[b"http/1.1"] };
        let tcp = TcpStream::connect(addr).await.unwrap();
        let tls = tls_connector(ca, alpn)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("TLS handshake");
        let negotiated = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
        let io = TokioIo::new(tls);
        if h2 {
            assert_eq!(
                negotiated.as_deref(),
                Some(&b"h2"[..]),
                "ALPN negotiated h2"
            );
            let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            Client::H2(send)
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            Client::H1(send)
        }
    }

    pub async fn send(&mut self, mut req: Request<Full<Bytes>>) -> Reply {
        let res = match self {
            Client::H1(s) => {
                if !req.headers().contains_key(http::header::HOST) {
                    req.headers_mut()
                        .insert(http::header::HOST, "auth.example.com".parse().unwrap());
                }
                // A kept-alive HTTP/1.1 connection takes the next request only once the
                // previous exchange is fully done.
                s.ready().await.expect("connection ready");
                s.send_request(req).await.expect("response")
            }
            Client::H2(s) => {
                *req.version_mut() = Version::HTTP_2;
                if req.uri().authority().is_none() {
                    let path = req
                        .uri()
                        .path_and_query()
                        .map(|p| p.as_str())
                        .unwrap_or("/")
                        .to_owned();
                    *req.uri_mut() = format!("https://auth.example.com{path}").parse().unwrap();
                }
                s.send_request(req).await.expect("response")
            }
        };
        let version = res.version();
        let (parts, body) = res.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
            version,
        }
    }
}

pub fn post(
    path: &str,
    content_type: Option<&str>,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    let mut b = Request::post(path);
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(body.into())).unwrap()
}

pub fn form(path: &str, body: &str) -> Request<Full<Bytes>> {
    post(
        path,
        Some("application/x-www-form-urlencoded"),
        &[],
        body.to_owned(),
    )
}

pub fn basic(id: &str, secret: &str) -> String {
    secretgate::auth::basic::encode(id, secret)
}

/// The clock test gateways read, and [`now`]: the system clock, unless the test binary
/// pinned it with [`pin_clock`].
static CLOCK: std::sync::OnceLock<secretgate::Clock> = std::sync::OnceLock::new();

/// The time a pinned clock shows: far from today, so that a test which mixed in the wall
/// clock would fail.
pub const PINNED_NOW: i64 = 1_900_000_000;

/// Pins every gateway this test binary starts, and [`now`], to [`PINNED_NOW`], so that
/// time-based checks do not depend on the wall clock. Call before the first gateway starts.
pub fn pin_clock() {
    let clock = CLOCK.get_or_init(|| secretgate::Clock::manual(PINNED_NOW));
    assert_eq!(clock.now(), PINNED_NOW, "the clock was not pinned first");
}

pub fn clock() -> secretgate::Clock {
    CLOCK.get_or_init(secretgate::Clock::system).clone()
}

/// Unix seconds on the test gateways' clock.
pub fn now() -> i64 {
    clock().now()
}

/// Mints an HMAC client assertion with arbitrary header and claims, through the library's
/// one JWS implementation (`alg` from the header; anything but HS384/HS512 signs HS256,
/// so `none`, `RS256` or `hs256` headers still get a MAC to be refused for).
pub fn mint(header: serde_json::Value, claims: serde_json::Value, key: &[u8]) -> String {
    use secretgate::jws::{self, HmacKey};
    use secretgate::oauth::Algorithm;
    let alg = header["alg"]
        .as_str()
        .and_then(Algorithm::from_name)
        .unwrap_or(Algorithm::Hs256);
    jws::sign(
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
        &HmacKey::new(alg, key),
    )
}

static JTI: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Fresh, valid claims for the jwt client, `aud` = the token endpoint URL.
pub fn jwt_claims() -> serde_json::Value {
    let n = JTI.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    serde_json::json!({
        "iss": JWT_ID,
        "sub": JWT_ID,
        "aud": format!("{PUBLIC_URL}{TOKEN_PATH}"),
        "iat": now(),
        "exp": now() + 60,
        "jti": format!("jti-{}-{n}", std::process::id()),
    })
}

pub fn hs256() -> serde_json::Value {
    serde_json::json!({"alg": "HS256", "typ": "JWT"})
}

/// A valid assertion for the jwt client.
pub fn assertion() -> String {
    mint(hs256(), jwt_claims(), JWT_SECRET.as_bytes())
}

/// A form body carrying an assertion.
pub fn assertion_body(assertion: &str) -> String {
    format!(
        "grant_type=client_credentials&client_assertion_type={}&client_assertion={assertion}",
        secretgate::auth::form::form_encode_component(ASSERTION_TYPE)
    )
}

/// Asserts that nothing the upstream received contains any of the test secrets.
pub fn assert_no_secret(rec: &Recorded) {
    let all = rec.everything();
    for secret in [BASIC_SECRET, POST_SECRET, JWT_SECRET, SIGNING_KEY] {
        assert!(!all.contains(secret), "upstream saw a secret in:\n{all}");
    }
    for field in ["client_secret", "client_assertion", "authorization"] {
        assert!(
            !all.to_ascii_lowercase().contains(field),
            "upstream saw `{field}` in:\n{all}"
        );
    }
}

/// GET `path` from a plain-HTTP admin listener.
pub async fn admin_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = admin_request(addr, path).await;
    (status, body)
}

/// GET `path` from a plain-HTTP admin listener, with the response headers.
pub async fn admin_request(addr: SocketAddr, path: &str) -> (u16, HeaderMap, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let res = send
        .send_request(
            Request::get(path)
                .header("host", "admin")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// The value of one Prometheus sample (`name{labels}` exactly as exposed), 0 if absent.
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// `secretgate_upstream_errors_total`, summed over its `kind`s.
pub fn upstream_errors(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("secretgate_upstream_errors_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `secretgate new-key --alg ALG --out DIR/NAME --kid KID`: the key file and its public JWK.
pub fn new_key(dir: &Path, name: &str, alg: &str, kid: &str) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .args(["new-key", "--alg", alg, "--kid", kid, "--out"])
        .arg(dir.join(name))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The support rig's config with `keys` in place of its one HS256 key.
pub fn yaml_with_keys(
    pki: &Pki,
    upstream: std::net::SocketAddr,
    keys: &str,
    extra: &str,
) -> String {
    let yaml = config_yaml(pki, upstream, extra);
    let start = yaml.find("  keys:\n").expect("the rig lists keys");
    let end = start
        + yaml[start..]
            .find("shutdown_grace")
            .expect("after the keys");
    format!("{}  keys:\n{keys}{}", &yaml[..start], &yaml[end..])
}
