//! `secretgate demo`: the whole product with zero setup.
//!
//! Makes, in a temporary directory that disappears on exit: a CA and a localhost
//! certificate (rcgen), random secrets for one demo client per secret method, a client
//! certificate issued by the same CA for a `tls_client_auth` client, a public client
//! (`none`, with PKCE), a `private_key_jwt` client's key pair (the gateway gets only its
//! public JWK Set) and an EdDSA internal-header key (the token service verifies with its
//! public half). Starts an embedded token service
//! on loopback (token_service.rs) that *verifies the internal header* (as a real upstream
//! must), issues authorization codes for PKCE challenges and checks their verifiers, and
//! answers with tokens naming the client and method it saw; then runs the gateway in
//! front of it through the ordinary config path, and prints curl commands that work as
//! printed.

mod token_service;

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rand::distr::{Alphanumeric, SampleString};
use tokio::net::TcpListener;

use crate::config::{Config, ConfigError};
use crate::oauth::AsymmetricAlgorithm;
use crate::server::{Gateway, ServeError};

pub const BASIC_CLIENT: &str = "demo-basic";
pub const POST_CLIENT: &str = "demo-post";
pub const JWT_CLIENT: &str = "demo-jwt";
pub const MTLS_CLIENT: &str = "demo-mtls";
pub const PUBLIC_CLIENT: &str = "demo-spa";
pub const FAPI_CLIENT: &str = "demo-fapi";
const FAPI_KID: &str = "demo-fapi-1";
/// Where the demo's authorization endpoint sends the code (nothing listens there: the
/// code is read from the 302's Location).
const REDIRECT_URI: &str = "http://127.0.0.1/callback";
/// The subject the demo's client certificate has, and its client is registered with.
const MTLS_SUBJECT: &str = "CN=demo-mtls,O=secretgate demo";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot write demo files")]
    Io(#[from] std::io::Error),
    #[error("cannot make the demo certificate")]
    Certificate(#[from] rcgen::Error),
    #[error("demo configuration rejected")]
    Config(#[from] ConfigError),
    #[error("cannot make the demo keys")]
    Key(#[from] crate::keys::KeyError),
    #[error("gateway failed")]
    Serve(#[from] ServeError),
}

/// Where the demo listens and how it names its own binary in the printed commands.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub listen: SocketAddr,
    pub exe: PathBuf,
}

struct Files {
    dir: tempfile::TempDir,
    ca: PathBuf,
}

fn write_pki(dir: &Path) -> Result<PathBuf, DemoError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "secretgate demo CA");
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?
        .signed_by(&key, &issuer)?;
    // The mTLS client's certificate: same CA, the registered subject, for client auth.
    let client_key = KeyPair::generate()?;
    let mut client_params = CertificateParams::new(Vec::<String>::new())?;
    client_params.distinguished_name = rcgen::DistinguishedName::new();
    client_params
        .distinguished_name
        .push(DnType::OrganizationName, "secretgate demo");
    client_params
        .distinguished_name
        .push(DnType::CommonName, MTLS_CLIENT);
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &issuer)?;
    let ca = dir.join("ca.crt");
    std::fs::write(&ca, ca_cert.pem())?;
    std::fs::write(dir.join("tls.crt"), cert.pem())?;
    std::fs::write(dir.join("tls.key"), key.serialize_pem())?;
    std::fs::write(dir.join("demo-mtls.crt"), client_cert.pem())?;
    std::fs::write(dir.join("demo-mtls.key"), client_key.serialize_pem())?;
    Ok(ca)
}

fn random_secret() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 40)
}

fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// Runs the demo until `shutdown` resolves. `on_ready` receives the text to print (the
/// banner and the curl commands) once the gateway accepts connections.
pub async fn run(
    options: DemoOptions,
    on_ready: impl FnOnce(String),
    shutdown: impl Future<Output = ()>,
) -> Result<(), DemoError> {
    let dir = tempfile::Builder::new()
        .prefix("secretgate-demo-")
        .tempdir()?;
    let files = Files {
        ca: write_pki(dir.path())?,
        dir,
    };
    let path = |name: &str| files.dir.path().join(name);
    let basic = random_secret();
    let post = random_secret();
    let jwt = random_secret();
    std::fs::write(path("demo-basic.secret"), &basic)?;
    std::fs::write(path("demo-post.secret"), &post)?;
    std::fs::write(path("demo-jwt.secret"), &jwt)?;
    // The internal header signed with EdDSA (the cheaper asymmetric algorithm with
    // aws-lc-rs, see BENCHMARKS.md): the token service holds only the public key.
    let signing = crate::keys::generate_pem(AsymmetricAlgorithm::EdDsa)?;
    std::fs::write(path("signing.pem"), &signing)?;
    // The private_key_jwt client's own key pair; the gateway gets the public JWK Set.
    let fapi_pem = crate::keys::generate_pem(AsymmetricAlgorithm::Es256)?;
    std::fs::write(path("demo-fapi.pem"), &fapi_pem)?;
    let fapi_jwk =
        crate::keys::PrivateKey::for_algorithm(fapi_pem.as_bytes(), AsymmetricAlgorithm::Es256)?
            .public_jwk(FAPI_KID, AsymmetricAlgorithm::Es256)
            .ok_or(crate::keys::KeyError::Unsupported)?;
    std::fs::write(
        path("demo-fapi.jwks.json"),
        serde_json::json!({ "keys": [fapi_jwk] }).to_string(),
    )?;

    let listener = TcpListener::bind(options.listen).await?;
    let port = listener.local_addr()?.port();
    let public_url = format!("https://localhost:{port}");
    let upstream = TcpListener::bind("127.0.0.1:0").await?;
    let upstream_addr = upstream.local_addr()?;
    let admin = TcpListener::bind("127.0.0.1:0").await?;
    let admin_addr = admin.local_addr()?;

    let yaml = format!(
        r#"
listen: "{listen}"
tls: {{ cert_file: tls.crt, key_file: tls.key, client_auth: {{ ca_file: ca.crt }} }}
upstream: {{ url: "http://{upstream_addr}" }}
public_url: "{public_url}"
issuer: "{public_url}"
internal_header:
  audience: demo-token-service
  keys: [{{ id: demo, algorithm: EdDSA, file: signing.pem }}]
shutdown_grace: 5s
clients:
  - {{ client_id: {BASIC_CLIENT}, auth_method: client_secret_basic, secrets: [{{ file: demo-basic.secret }}] }}
  - {{ client_id: {POST_CLIENT}, auth_method: client_secret_post, secrets: [{{ file: demo-post.secret }}] }}
  - {{ client_id: {JWT_CLIENT}, auth_method: client_secret_jwt, secrets: [{{ file: demo-jwt.secret }}] }}
  - {{ client_id: {MTLS_CLIENT}, auth_method: tls_client_auth, tls_client_auth_subject_dn: "{MTLS_SUBJECT}" }}
  - {{ client_id: {PUBLIC_CLIENT}, auth_method: none }}
  - {{ client_id: {FAPI_CLIENT}, auth_method: private_key_jwt, jwks: {{ file: demo-fapi.jwks.json }} }}
"#,
        listen = options.listen,
    );
    let config = Config::from_yaml(&yaml, files.dir.path())?;
    let keys = crate::verify::keys_of(&config.internal_header.keys);
    let service = tokio::spawn(token_service::serve(
        upstream,
        token_service::Trust {
            keys,
            public_url: public_url.clone(),
            issuer: "secretgate".to_owned(),
            audience: "demo-token-service".to_owned(),
        },
    ));
    // RFC 7636 §4.1-4.2: a fresh verifier, and its S256 challenge for the authorize URL.
    let verifier = Alphanumeric.sample_string(&mut rand::rng(), 64);
    let challenge = {
        use base64::Engine as _;
        use sha2::Digest as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()))
    };
    let redirect = form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>();

    let ca = quote(&files.ca);
    let exe = quote(&options.exe);
    let token_url = format!("{public_url}/oauth2/token");
    let mut text = String::new();
    let _ = writeln!(text, "secretgate demo: gateway on {public_url} in front of a demo token service on http://{upstream_addr}");
    let _ = writeln!(text, "The token service verifies the internal header and answers with the client and method it saw.");
    let _ = writeln!(
        text,
        "Certificates, keys and secrets are in {} (deleted on exit).\n",
        files.dir.path().display()
    );
    let _ = writeln!(text, "# client_secret_basic ({BASIC_CLIENT})");
    let _ = writeln!(text, "curl -sS --cacert {ca} -u {BASIC_CLIENT}:{basic} -d grant_type=client_credentials {token_url}\n");
    let _ = writeln!(text, "# client_secret_post ({POST_CLIENT}), form body");
    let _ = writeln!(text, "curl -sS --cacert {ca} -d grant_type=client_credentials -d client_id={POST_CLIENT} -d client_secret={post} {token_url}\n");
    let _ = writeln!(
        text,
        "# client_secret_post ({POST_CLIENT}), multipart as in vendor docs (curl -F)"
    );
    let _ = writeln!(text, "curl -sS --cacert {ca} -F grant_type=client_credentials -F client_id={POST_CLIENT} -F client_secret={post} {token_url}\n");
    let _ = writeln!(text, "# client_secret_jwt ({JWT_CLIENT}), assertion minted by this binary (each one is single-use)");
    let _ = writeln!(
        text,
        "curl -sS --cacert {ca} -d grant_type=client_credentials -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer -d client_assertion=\"$({exe} assertion --client-id {JWT_CLIENT} --secret-file {} --aud {token_url})\" {token_url}\n",
        quote(&path("demo-jwt.secret"))
    );
    let _ = writeln!(
        text,
        "# private_key_jwt ({FAPI_CLIENT}): an ES256 assertion signed with the client's private key; the gateway holds only its public JWK Set"
    );
    let _ = writeln!(
        text,
        "curl -sS --cacert {ca} -d grant_type=client_credentials -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer -d client_assertion=\"$({exe} assertion --client-id {FAPI_CLIENT} --key-file {} --kid {FAPI_KID} --aud {token_url})\" {token_url}\n",
        quote(&path("demo-fapi.pem"))
    );
    let _ = writeln!(
        text,
        "# tls_client_auth ({MTLS_CLIENT}): a client certificate from the demo CA, no secret; the token is bound to it (cnf)"
    );
    let _ = writeln!(
        text,
        "curl -sS --cacert {ca} --cert {} --key {} -d grant_type=client_credentials -d client_id={MTLS_CLIENT} {token_url}\n",
        quote(&path("demo-mtls.crt")),
        quote(&path("demo-mtls.key"))
    );
    let _ = writeln!(
        text,
        "# public client ({PUBLIC_CLIENT}, auth_method none): authorization code with PKCE. First authorize:"
    );
    let _ = writeln!(
        text,
        "# the 302's Location carries the code (without code_challenge the gateway answers 400 itself)"
    );
    let _ = writeln!(
        text,
        "curl -sS -i --cacert {ca} '{public_url}/oauth2/authorize?response_type=code&client_id={PUBLIC_CLIENT}&redirect_uri={redirect}&state=demo&code_challenge={challenge}&code_challenge_method=S256'\n"
    );
    let _ = writeln!(
        text,
        "# then exchange it with the verifier: set CODE to the code in that Location (CODE=...), no secret"
    );
    let _ = writeln!(
        text,
        "curl -sS --cacert {ca} -d grant_type=authorization_code -d client_id={PUBLIC_CLIENT} -d redirect_uri={REDIRECT_URI} -d code_verifier={verifier} -d \"code=$CODE\" {token_url}\n"
    );
    let _ = writeln!(
        text,
        "# what the gateway counted (Prometheus metrics on the admin listener)"
    );
    let _ = writeln!(
        text,
        "curl -sS http://{admin_addr}/metrics | grep '^secretgate_authentications_total'\n"
    );
    let _ = writeln!(
        text,
        "The token service verifies the EdDSA header with the public key the admin listener publishes: curl -sS http://{admin_addr}/.well-known/jwks.json\n"
    );
    let _ = writeln!(text, "Ready. Press Ctrl-C to stop.");
    on_ready(text);

    let result = match Gateway::new(config) {
        Ok(gateway) => gateway.serve(listener, Some(admin), shutdown).await,
        Err(e) => Err(e),
    };
    service.abort();
    drop(files);
    result.map_err(DemoError::from)
}
