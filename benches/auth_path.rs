//! Micro-benchmarks of the per-request authentication path (docs/design.md §9: "the auth + sign
//! path must cost a few µs, not tens").
//!
//! For each client-authentication method, one iteration is exactly what the gateway does
//! for a token request once hyper has parsed it: build the `Request` (head + in-memory
//! body, as hyper hands it over), `Authenticator::authenticate` (body read, form decode,
//! credential extraction, throttle check, verification, secret stripping, re-encoding) and
//! `Signer::sign` (the internal header). TLS, HTTP parsing and the upstream hop are not
//! included; `bench/run.sh` measures those end to end.
//!
//! The certificate methods (RFC 8705 §2) present no credential in the request but the
//! `ClientCertificate` extension the server inserts on every request of the connection
//! (connection.rs: made once per connection by `ClientCertificate::from_chain`, which also
//! takes the leaf's SHA-256; each request gets a clone of the `Arc`). So an iteration clones
//! that extension into the request, and the body carries only `client_id` (RFC 8705 §2).
//! `tls_client_auth` validates the chain against `tls.client_auth.ca_file` (rustls-webpki)
//! once per connection (the verdict is kept in that extension, auth/certificate.rs), so
//! the iterations, which share one connection's extension, measure a kept-alive
//! connection's request: the memo, and the registered subject DN compared with the leaf's
//! names, which x509-parser read on the connection's first request and the extension
//! keeps; `crypto_floor/tls_client_auth` is what the connection's first request adds (the
//! CA's signature check). The client sends
//! only its leaf, issued directly by the CA (ECDSA P-256, rcgen's default), as tests/mtls/
//! does. `self_signed_tls_client_auth` compares the connection's thumbprint with the
//! registered ones.
//!
//! Baselines: `hmac_floor/*` is one HMAC-SHA256 (prepared key, clone + update + finalize,
//! as the code does it) over an input as long as the request's credential-bearing bytes
//! (body + Authorization header value), the least work any authenticating proxy must do;
//! `crypto_floor/*` is the cryptography this design cannot avoid for the method (verify
//! the credential, SHA-256 of the forwarded body, HMAC of the internal header).
//! The certificate methods have no per-request credential cryptography: for
//! `tls_client_auth` the chain's check, one ECDSA P-256 signature check of the leaf by the
//! CA (what webpki does for a one-link chain, with the same aws-lc-rs algorithm), is made
//! once per connection (`chain_validation/tls_client_auth`); for
//! `self_signed_tls_client_auth` the leaf's SHA-256 is taken once per connection and a
//! request only compares 32 bytes. So their floor is the forwarded-body hash and the
//! header HMAC. They have no `hmac_floor`: their credential is not in the request's bytes.
//!
//! `authenticate` is async only because the body could be streamed; here it is a `Full`
//! body, so the future completes on its first poll and is driven by `now_or_never` inside
//! a current-thread runtime context (the body-read timeout needs a tokio timer handle to
//! exist, never to fire). The setup asserts this.
//!
//! The benchmark runs with the allocator the binary runs with (mimalloc, main.rs): with
//! glibc's, allocation was an eighth of every iteration, a cost the gateway does not pay.
//!
//! Run: `cargo bench --bench auth_path` (results in target/criterion/).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures_util::FutureExt;
use hmac::{Hmac, Mac};
use http::Request;
use http_body_util::{BodyExt, Full};
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};

use secretgate::auth::replay::{MemoryReplayStore, ReplayStore};
use secretgate::auth::throttle::Throttle;
use secretgate::auth::{AuthState, Authenticated, Authenticator};
use secretgate::body::Body;
use secretgate::clock::Clock;
use secretgate::config::Config;
use secretgate::conn::{ClientAddr, ClientCertificate};
use secretgate::oauth::{Algorithm, AuthMethod};
use secretgate::secret::Secret;
use secretgate::sign::Signer;

const BASIC_ID: &str = "billing";
const BASIC_SECRET: &str = "basic-secret-0123456789abcdef";
const POST_ID: &str = "reports";
const POST_SECRET: &str = "post-secret-0123456789abcdef";
const JWT_ID: &str = "mobile";
const JWT_SECRET: &str = "jwt-secret-0123456789abcdefghijklmnop";
/// `tls_client_auth` client, registered by the subject DN of its CA-issued certificate.
const MTLS_ID: &str = "payments";
const MTLS_DN: &str = "CN=payments,O=Example Corp";
/// `self_signed_tls_client_auth` client, registered with its self-signed certificate.
const SELF_SIGNED_ID: &str = "edge-device";
const SIGNING_KEY: &str = "internal-signing-key-0123456789abcdef";
const PUBLIC_URL: &str = "https://auth.example.com";
const ISSUER: &str = "https://auth.example.com/acme/default";
const TOKEN_PATH: &str = "/oauth2/token";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// What a typical client_credentials request carries besides the credential.
const GRANT: &str = "grant_type=client_credentials&scope=invoices.read%20invoices.write";

/// Live (client_id, jti) entries the replay store may hold: far more than criterion runs
/// iterations, so the jwt benchmark never hits `Full`.
const REPLAY_CAPACITY: u64 = 50_000_000;

/// The certificates the certificate clients present (DER), and the CA's.
struct ClientCerts {
    ca: CertificateDer<'static>,
    /// Issued by `ca`, subject [`MTLS_DN`], for TLS client authentication.
    mtls: CertificateDer<'static>,
    self_signed: CertificateDer<'static>,
}

/// Writes a CA-signed localhost certificate (Config validation loads it), the CA as
/// `tls.client_auth.ca_file`, the self-signed client's registered certificate and the
/// secret files; returns the validated config and the client certificates. The temp dir
/// must outlive the config load only.
fn config(dir: &Path) -> (Config, ClientCerts) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "secretgate bench CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    std::fs::write(dir.join("tls.crt"), leaf.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), leaf_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("client-ca.pem"), ca.pem()).unwrap();
    // The client certificates as tests/mtls/ makes them: subject O + CN, client-auth EKU.
    let client_cert = |cn: &str, o: &str, issuer: Option<&Issuer<'_, KeyPair>>| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::OrganizationName, o);
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        match issuer {
            Some(i) => params.signed_by(&key, i).unwrap(),
            None => params.self_signed(&key).unwrap(),
        }
    };
    let mtls = client_cert(MTLS_ID, "Example Corp", Some(&issuer));
    let self_signed = client_cert(SELF_SIGNED_ID, "Devices", None);
    std::fs::write(dir.join("device.crt"), self_signed.pem()).unwrap();
    for (name, value) in [
        ("billing.secret", BASIC_SECRET),
        ("reports.secret", POST_SECRET),
        ("mobile.secret", JWT_SECRET),
        ("signing.key", SIGNING_KEY),
    ] {
        std::fs::write(dir.join(name), value).unwrap();
    }
    let yaml = format!(
        r#"
listen: "127.0.0.1:0"
tls:
  cert_file: tls.crt
  key_file: tls.key
  client_auth:
    ca_file: client-ca.pem
upstream:
  url: "http://127.0.0.1:9"
public_url: "{PUBLIC_URL}"
issuer: "{ISSUER}"
endpoints: {{ token: ["/oauth2/token"], introspection: ["/oauth2/introspect"], revocation: ["/oauth2/revoke"] }}
assertion:
  replay_capacity: {REPLAY_CAPACITY}
internal_header:
  issuer: secretgate
  audience: legacy-token-service
  keys:
    - id: k1
      file: signing.key
clients:
  - client_id: {BASIC_ID}
    auth_method: client_secret_basic
    secrets: [{{ file: billing.secret }}]
  - client_id: {POST_ID}
    auth_method: client_secret_post
    secrets: [{{ file: reports.secret }}]
  - client_id: {JWT_ID}
    auth_method: client_secret_jwt
    secrets: [{{ file: mobile.secret }}]
  - client_id: {MTLS_ID}
    auth_method: tls_client_auth
    tls_client_auth_subject_dn: "{MTLS_DN}"
  - client_id: {SELF_SIGNED_ID}
    auth_method: self_signed_tls_client_auth
    certificates: [{{ file: device.crt }}]
"#
    );
    let config = Config::from_yaml(&yaml, dir).expect("bench config is valid");
    let certs = ClientCerts {
        ca: ca.der().clone(),
        mtls: mtls.der().clone(),
        self_signed: self_signed.der().clone(),
    };
    (config, certs)
}

/// The parts of a realistic token request that do not change between iterations.
#[derive(Clone)]
struct Template {
    authorization: Option<String>,
    body: Bytes,
    /// The connection's certificate, as the server attaches it to each request.
    cert: Option<ClientCertificate>,
}

impl Template {
    fn basic() -> Template {
        Template {
            authorization: Some(secretgate::auth::basic::encode(BASIC_ID, BASIC_SECRET)),
            body: Bytes::from_static(GRANT.as_bytes()),
            cert: None,
        }
    }

    fn post() -> Template {
        Template {
            authorization: None,
            body: Bytes::from(format!(
                "{GRANT}&client_id={POST_ID}&client_secret={POST_SECRET}"
            )),
            cert: None,
        }
    }

    fn jwt(assertion: &str) -> Template {
        Template {
            authorization: None,
            body: Bytes::from(format!(
                "{GRANT}&client_assertion_type={}&client_assertion={assertion}",
                secretgate::auth::form::form_encode_component(ASSERTION_TYPE)
            )),
            cert: None,
        }
    }

    /// RFC 8705 §2: `client_id` in the body, the certificate from the handshake (the
    /// client sent its leaf only: a one-element chain, as rustls reports it).
    fn certificate(client_id: &str, leaf: &CertificateDer<'static>) -> Template {
        Template {
            authorization: None,
            body: Bytes::from(format!("{GRANT}&client_id={client_id}")),
            cert: Some(
                ClientCertificate::from_chain(Some(std::slice::from_ref(leaf)))
                    .expect("a non-empty chain"),
            ),
        }
    }

    /// Bytes an authenticating proxy must look at: body + credential header value.
    fn credential_bytes(&self) -> usize {
        self.body.len() + self.authorization.as_ref().map_or(0, String::len)
    }
}

fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50000))
}

/// A request as the server hands it to the stack: hyper-parsed head, the peer address
/// extension (and the client certificate one, if the connection has a certificate), a boxed
/// in-memory body.
fn request(t: &Template) -> Request<Body> {
    let mut b = Request::post(TOKEN_PATH)
        .header("host", "auth.example.com")
        .header("user-agent", "okhttp/4.12.0")
        .header("accept", "application/json")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("content-length", t.body.len());
    if let Some(a) = &t.authorization {
        b = b.header("authorization", a);
    }
    let body = Full::new(t.body.clone())
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut req = b.body(body).unwrap();
    req.extensions_mut().insert(ClientAddr(peer()));
    if let Some(cert) = &t.cert {
        req.extensions_mut().insert(cert.clone());
    }
    req
}

fn unix_now() -> i64 {
    Clock::system().now()
}

/// The full path for one request; returns the header value so nothing is optimised away.
fn auth_and_sign(auth: &Authenticator, signer: &Signer, req: Request<Body>) -> String {
    let out = auth
        .authenticate(req, secretgate::oauth::EndpointKind::Token)
        .now_or_never()
        .expect("authenticate completes on its first poll with an in-memory body")
        .expect("request authenticates");
    let who = out
        .extensions()
        .get::<Authenticated>()
        .expect("Authenticated extension");
    let header = signer
        .sign(
            who,
            out.method().as_str(),
            out.uri().path(),
            out.uri().query(),
        )
        .expect("sign");
    black_box(out);
    header
}

fn mint_jwt(now: i64) -> String {
    secretgate::assertion::mint(
        JWT_ID,
        &Secret::new(JWT_SECRET),
        &format!("{PUBLIC_URL}{TOKEN_PATH}"),
        Algorithm::Hs256,
        Duration::from_secs(60),
        now,
    )
}

/// One certificate's signature by its issuer, checked with the algorithm webpki uses for
/// it (ECDSA P-256 SHA-256 on aws-lc-rs: rcgen's default key, the gateway's provider).
struct SignatureCheck {
    issuer_key: Vec<u8>,
    tbs: Vec<u8>,
    signature: Vec<u8>,
}

impl SignatureCheck {
    fn new(issuer: &[u8], cert: &[u8]) -> SignatureCheck {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let (_, issuer) = X509Certificate::from_der(issuer).unwrap();
        let (_, cert) = X509Certificate::from_der(cert).unwrap();
        let check = SignatureCheck {
            issuer_key: issuer.public_key().subject_public_key.data.to_vec(),
            tbs: cert.tbs_certificate.as_ref().to_vec(),
            signature: cert.signature_value.data.to_vec(),
        };
        assert!(check.verify(), "the CA's signature on the leaf verifies");
        check
    }

    fn verify(&self) -> bool {
        webpki::aws_lc_rs::ECDSA_P256_SHA256
            .verify_signature(
                black_box(&self.issuer_key),
                black_box(&self.tbs),
                black_box(&self.signature),
            )
            .is_ok()
    }
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (config, certs) = config(dir.path());
    let replay = Arc::new(ReplayStore::Memory(MemoryReplayStore::new(REPLAY_CAPACITY)));
    let state = AuthState {
        replay,
        throttle: Arc::new(Throttle::new(&config.throttle)),
        hasher: Arc::new(secretgate::auth::hashing::Hasher::new(
            &config.hashing,
            Arc::new(secretgate::metrics::Metrics::new()),
        )),
        key_sets: secretgate::auth::jwks::KeySets::new(
            &config,
            Arc::new(secretgate::metrics::Metrics::new()),
        ),
        metrics: Arc::new(secretgate::metrics::Metrics::new()),
    };
    let auth = Authenticator::new(&config, state, Clock::system());
    let signer =
        Signer::new(&config.internal_header, &config.public_url, Clock::system()).expect("a key");

    // A timer handle for the body-read timeout; nothing is ever awaited on it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();

    let sample_jwt = Template::jwt(&mint_jwt(unix_now()));
    let methods = [
        ("client_secret_basic", Template::basic()),
        ("client_secret_post", Template::post()),
        ("client_secret_jwt", sample_jwt.clone()),
        (
            "tls_client_auth",
            Template::certificate(MTLS_ID, &certs.mtls),
        ),
        (
            "self_signed_tls_client_auth",
            Template::certificate(SELF_SIGNED_ID, &certs.self_signed),
        ),
    ];
    let (secret_methods, cert_methods) = methods.split_at(3);

    // Sanity: each template authenticates as the intended client and leaves no secret; a
    // certificate client is authenticated by its certificate, to which tokens are bound.
    let mut authenticated = Vec::new();
    for (name, t) in &methods {
        let req = request(t);
        let out = auth
            .authenticate(req, secretgate::oauth::EndpointKind::Token)
            .now_or_never()
            .unwrap_or_else(|| panic!("{name}: authenticate returned Pending"))
            .unwrap_or_else(|e| panic!("{name}: rejected: {e:?}"));
        let who = out.extensions().get::<Authenticated>().unwrap().clone();
        assert_eq!(who.method.as_str(), *name);
        let fwd = String::from_utf8_lossy(&who.body);
        assert!(
            !fwd.contains("secret") && !fwd.contains("assertion"),
            "{fwd}"
        );
        assert!(out.headers().get("authorization").is_none());
        match &t.cert {
            Some(cert) => assert_eq!(who.cnf, Some(cert.thumbprint()), "{name}"),
            None => assert_eq!(who.cnf, None, "{name}"),
        }
        authenticated.push(who);
    }
    // The certificate is what authenticates: the same request with the other client's
    // certificate (not issued by the CA; not registered) is refused. Without the peer
    // address, so the failure is not counted against the source the benchmarks use.
    for (id, leaf) in [(MTLS_ID, &certs.self_signed), (SELF_SIGNED_ID, &certs.mtls)] {
        let mut req = request(&Template::certificate(id, leaf));
        req.extensions_mut().remove::<ClientAddr>();
        let rejected = auth
            .authenticate(req, secretgate::oauth::EndpointKind::Token)
            .now_or_never()
            .expect("authenticate completes on its first poll");
        assert!(rejected.is_err(), "{id} with another certificate");
    }

    let mut g = c.benchmark_group("auth_path");
    g.throughput(Throughput::Elements(1));
    for (name, t) in &methods[..2] {
        g.bench_function(*name, |b| {
            b.iter(|| black_box(auth_and_sign(&auth, &signer, request(black_box(t)))))
        });
    }
    // Every jwt iteration needs an unused jti: mint outside the timed section.
    g.bench_function("client_secret_jwt", |b| {
        b.iter_batched(
            || Template::jwt(&mint_jwt(unix_now())),
            |t| black_box(auth_and_sign(&auth, &signer, request(&t))),
            BatchSize::SmallInput,
        )
    });
    for (name, t) in cert_methods {
        g.bench_function(*name, |b| {
            b.iter(|| black_box(auth_and_sign(&auth, &signer, request(black_box(t)))))
        });
    }
    g.finish();

    // A per-client rate limit (docs/design.md §10.3) with `state.backend: memory`: the
    // same Basic path, plus one token taken from the client's bucket (a limit so high it
    // never refuses). Its cost relative to `client_secret_basic` above is what the limit
    // adds to a request before TLS, HTTP and the upstream hop; with Redis it is one round
    // trip more (bench/run.sh).
    let limiter = secretgate::auth::rate_limit::RateLimiter::new(
        None,
        Arc::new(secretgate::metrics::Metrics::new()),
    );
    let limit = secretgate::config::RateLimitConfig {
        requests: u32::MAX,
        per: Duration::from_secs(1),
        burst: 0,
    };
    let basic = Template::basic();
    let mut g = c.benchmark_group("rate_limit");
    g.throughput(Throughput::Elements(1));
    g.bench_function("client_secret_basic/unlimited", |b| {
        b.iter(|| black_box(auth_and_sign(&auth, &signer, request(black_box(&basic)))))
    });
    g.bench_function("client_secret_basic/limited", |b| {
        b.iter(|| {
            let out = auth
                .authenticate(
                    request(black_box(&basic)),
                    secretgate::oauth::EndpointKind::Token,
                )
                .now_or_never()
                .expect("first poll")
                .expect("authenticates");
            let who = out.extensions().get::<Authenticated>().expect("identity");
            limiter
                .take(&who.client_id, &limit)
                .now_or_never()
                .expect("the local bucket answers on the first poll")
                .expect("never over a limit this high");
            let header = signer
                .sign(
                    who,
                    out.method().as_str(),
                    out.uri().path(),
                    out.uri().query(),
                )
                .expect("sign");
            black_box(out);
            black_box(header)
        })
    });
    g.finish();

    // Only the signing step, for the breakdown.
    let who = Authenticated {
        client_id: BASIC_ID.into(),
        method: AuthMethod::ClientSecretBasic,
        body: Bytes::from(format!("{GRANT}&client_id={BASIC_ID}")),
        cnf: None,
    };
    c.bench_function("sign_only", |b| {
        b.iter(|| black_box(signer.sign(black_box(&who), "POST", TOKEN_PATH, None)))
    });
    // The signing step per internal-header algorithm (issue 21): a per-request signature
    // cannot be cached, the header being bound to the request.
    let mut g = c.benchmark_group("sign");
    for (name, alg) in [
        ("HS256", None),
        ("ES256", Some(secretgate::oauth::AsymmetricAlgorithm::Es256)),
        ("EdDSA", Some(secretgate::oauth::AsymmetricAlgorithm::EdDsa)),
    ] {
        let mut header = config.internal_header.clone();
        if let Some(alg) = alg {
            let pem = secretgate::keys::generate_pem(alg).unwrap();
            let key = secretgate::keys::PrivateKey::for_algorithm(pem.as_bytes(), alg).unwrap();
            header.keys = vec![secretgate::config::SigningKey {
                id: "k".into(),
                material: secretgate::config::KeyMaterial::Private {
                    alg,
                    key: Arc::new(key),
                },
                publish_only: false,
            }];
        }
        let signer = Signer::new(&header, &config.public_url, Clock::system()).expect("a key");
        g.bench_function(name, |b| {
            b.iter(|| black_box(signer.sign(black_box(&who), "POST", TOKEN_PATH, None)))
        });
    }
    g.finish();

    // The floor: one HMAC-SHA256 over as many bytes as the request's credential-bearing part.
    let key = <Hmac<Sha256> as Mac>::new_from_slice(SIGNING_KEY.as_bytes()).unwrap();
    let mut g = c.benchmark_group("hmac_floor");
    for (name, t) in secret_methods {
        let input = vec![b'a'; t.credential_bytes()];
        g.bench_function(format!("{name}/{}B", input.len()), |b| {
            b.iter(|| {
                let mut m = key.clone();
                m.update(black_box(&input));
                black_box(m.finalize().into_bytes())
            })
        });
    }
    g.finish();

    // The cryptography the design cannot avoid: verify the credential (HMAC of the
    // presented secret, or the assertion MAC), SHA-256 of the forwarded body, HMAC of the
    // internal header's signing input (~ the size `sign_only` produces).
    let sign_input = {
        let v = signer.sign(&who, "POST", TOKEN_PATH, None).unwrap();
        v.rsplit_once('.').unwrap().0.len()
    };
    let mut g = c.benchmark_group("crypto_floor");
    for (name, t) in secret_methods {
        let verify_len = match *name {
            "client_secret_jwt" => {
                let body = String::from_utf8_lossy(&t.body).into_owned();
                let a = body.rsplit_once("client_assertion=").unwrap().1;
                a.rsplit_once('.').unwrap().0.len()
            }
            "client_secret_basic" => BASIC_SECRET.len(),
            _ => POST_SECRET.len(),
        };
        let verify_input = vec![b'v'; verify_len];
        let forwarded = vec![b'f'; GRANT.len() + 20];
        let header_input = vec![b'h'; sign_input];
        g.bench_function(*name, |b| {
            b.iter(|| {
                let mut m = key.clone();
                m.update(black_box(&verify_input));
                black_box(m.finalize().into_bytes());
                black_box(Sha256::digest(black_box(&forwarded)));
                let mut m = key.clone();
                m.update(black_box(&header_input));
                black_box(m.finalize().into_bytes())
            })
        });
    }
    // The certificate methods: SHA-256 of the forwarded body and the HMAC of the internal
    // header, both as long as this method's (the header carries `cnf`). The leaf's
    // signature by the CA is checked once per connection (see the header): measured apart,
    // as `chain_validation/tls_client_auth`.
    let leaf_signature = SignatureCheck::new(&certs.ca, &certs.mtls);
    for ((name, _), who) in cert_methods
        .iter()
        .zip(&authenticated[secret_methods.len()..])
    {
        let forwarded = vec![b'f'; who.body.len()];
        let header_input = {
            let v = signer.sign(who, "POST", TOKEN_PATH, None).unwrap();
            vec![b'h'; v.rsplit_once('.').unwrap().0.len()]
        };
        g.bench_function(*name, |b| {
            b.iter(|| {
                black_box(Sha256::digest(black_box(&forwarded)));
                let mut m = key.clone();
                m.update(black_box(&header_input));
                black_box(m.finalize().into_bytes())
            })
        });
    }
    g.finish();
    // What a connection's first tls_client_auth request adds: the CA's signature check.
    let mut g = c.benchmark_group("chain_validation");
    g.bench_function("tls_client_auth", |b| {
        b.iter(|| black_box(leaf_signature.verify()))
    });
    g.finish();
    drop(dir);
}

criterion_group! {
    name = auth_path;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .noise_threshold(0.05);
    targets = benches
}
criterion_main!(auth_path);
