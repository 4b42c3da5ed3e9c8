//! Configuration: YAML read through serde-saphyr, then validated into typed values.
//!
//! Two phases, as in pingora: [`Config::from_yaml`] parses text into the raw structs
//! (raw.rs: unknown and duplicate keys are errors, since a typo in security configuration
//! must never be silently ignored), then validation (validate.rs, one method per section;
//! clients.rs for the client registry)
//! turns every raw value into its typed form and collects *every* problem with its key
//! path (`clients[2].secrets[0].file: ...`) instead of stopping at the first. Secret
//! material is read from files or environment variables (secret_source.rs) here, once, so
//! the request path never touches the filesystem. Every file is read through [`Files`]
//! (files.rs): the file system when the gateway runs, a map in the fuzzer and in unit
//! tests ([`Config::from_yaml_in`]). Section types are named `…Config`; the runtime things
//! built from them (the upstream client, the throttle) keep the plain name.

mod clients;
mod containment;
mod endpoints;
mod expiry;
mod files;
mod jwks;
mod keys;
mod limits;
mod listen;
pub mod path;
mod raw;
mod readiness;
mod renamed;
mod rollout;
mod secret_source;
mod state;
pub mod units;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use rustls::sign::CertifiedKey;
use rustls_pki_types::TrustAnchor;

use crate::hashes::StoredHash;
use crate::oauth::{Algorithm, AuthMethod, ClientId, EndpointKind, PkceMethod};
use crate::secret::Secret;
use crate::x509::{CertificateName, Thumbprint};
pub use expiry::{CertificateExpiry, CertificateKind};
pub use files::{FileSystem, Files, MemoryFiles, SkipFiles};
pub use listen::{Cidr, ProxyProtocolConfig};
pub use path::PathPattern;
pub use readiness::ReadinessConfig;
pub use rollout::{
    ClientRollout, RateLimitConfig, Rollout, RolloutConfig, UpstreamCredentialConfig,
    UpstreamMethod,
};

/// Minimum HMAC key length for client_secret_jwt secrets and internal-header keys, in
/// bytes: RFC 7518 §3.2 requires a key of at least the hash output size for HS256.
pub const MIN_HMAC_KEY_LEN: usize = 32;

/// A fully validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// `listen_proxy_protocol`: the peers that send a PROXY header (absent: none).
    pub listen_proxy_protocol: Option<ProxyProtocolConfig>,
    /// `readiness`: whether `/readyz` follows the upstream.
    pub readiness: ReadinessConfig,
    pub tls: TlsConfig,
    pub upstream: UpstreamConfig,
    pub admin: Option<AdminConfig>,
    /// Origin clients use, without a trailing slash (`https://auth.example.com`).
    pub public_url: String,
    /// Issuer identifier accepted as an assertion audience.
    pub issuer: String,
    /// Which paths are which endpoint (`endpoints`).
    pub endpoints: EndpointsConfig,
    /// Where PKCE (RFC 7636) is enforced.
    pub pkce: PkceConfig,
    pub unprotected: UnprotectedPolicy,
    /// Whether a protected endpoint accepts a query string.
    pub protected_query: QueryPolicy,
    pub assertion: AssertionConfig,
    pub internal_header: InternalHeaderConfig,
    pub limits: LimitsConfig,
    pub throttle: ThrottleConfig,
    pub shutdown_grace: Duration,
    /// Worker threads serving connections, each with its own event loop and upstream
    /// connection pool (`workers: auto` = the CPUs this process may use).
    pub workers: usize,
    /// Realm sent in `WWW-Authenticate: Basic realm="..."`.
    pub realm: String,
    pub clients: Vec<ClientConfig>,
    /// Shadow or enforce, rate limits and upstream credentials, per client (rollout.rs).
    pub rollout: RolloutConfig,
    pub reload: ReloadConfig,
    pub metrics: MetricsConfig,
    /// Where the replay store and the throttle counters live.
    pub state: StateConfig,
    pub hashing: HashingConfig,
    /// How discovery metadata from the upstream is rewritten.
    pub discovery: DiscoveryConfig,
    /// Requests that servers read differently from the gateway (`containment`).
    pub containment: ContainmentConfig,
    /// How clients' `jwks_uri` sets are fetched.
    pub jwks_fetch: JwksFetchConfig,
    /// Non-fatal findings (inline secrets); printed at start and by `check`.
    pub warnings: Vec<String>,
    /// Every file this config was read from, with a digest of what was read (the config
    /// file first when loaded with [`Config::load`]): the reload watcher compares them with
    /// the files as they are now.
    pub sources: Vec<Source>,
    /// The earliest `notAfter` of each kind of certificate loaded (expiry.rs).
    pub certificate_expiry: Vec<CertificateExpiry>,
}

/// A file a config was read from, and a SHA-256 of exactly the bytes read (or of the
/// error, if it could not be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub path: PathBuf,
    digest: [u8; 32],
}

impl Source {
    /// Reads `path` from the file system, returning its content and its record.
    pub fn read(path: &Path) -> (Source, std::io::Result<Vec<u8>>) {
        Self::read_from(&FileSystem, path)
    }

    /// Reads `path` from `files`, returning its content and its record.
    pub fn read_from(files: &dyn Files, path: &Path) -> (Source, std::io::Result<Vec<u8>>) {
        use sha2::{Digest, Sha256};
        let result = files.read(path);
        let mut h = Sha256::new();
        match &result {
            Ok(bytes) => {
                h.update([1]);
                h.update(bytes);
            }
            Err(e) => {
                h.update([0]);
                h.update(e.kind().to_string().as_bytes());
            }
        }
        let source = Source {
            path: path.to_path_buf(),
            digest: h.finalize().into(),
        };
        (source, result)
    }

    /// The same file as it is now.
    pub fn now(&self) -> Source {
        Source::read(&self.path).0
    }
}

/// `reload`: hot reload (SIGHUP always reloads; this is about watching files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadConfig {
    /// Poll the config file and every file it names for changes.
    pub watch: bool,
    pub poll_interval: Duration,
}

/// `state`: where state shared by every replica lives (the replay store, the throttle).
#[derive(Debug, Clone)]
pub enum StateConfig {
    /// In this process (the default): each replica has its own.
    Memory,
    /// In Redis (or Valkey), shared by every replica using it.
    Redis(RedisConfig),
}

/// `state.redis`.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://` or `rediss://` URL, without a password (a user for ACLs is allowed).
    pub url: String,
    pub password: Option<Secret>,
    /// PEM trust anchors for `rediss://`, as read at load (`None`: the system's roots).
    pub ca_pem: Option<Vec<u8>>,
    /// Redis Cluster: keys are hash-tagged so that each command touches one slot.
    pub cluster: bool,
    pub key_prefix: String,
    /// Longest wait for one command (connecting included).
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

impl PartialEq for RedisConfig {
    /// Whether a reload changed it (it needs a restart). Secrets compare by content.
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
            && self.password == other.password
            && self.ca_pem == other.ca_pem
            && self.cluster == other.cluster
            && self.key_prefix == other.key_prefix
            && self.timeout == other.timeout
            && self.connect_timeout == other.connect_timeout
    }
}

/// `metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Also count authentications per registered client id (one series per client).
    pub client_id_label: bool,
}

/// `tls`.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The chain and key as read during validation, so that what was checked is what is
    /// served even if the files change in between.
    pub certified: Arc<CertifiedKey>,
    /// `tls.client_auth`: client certificates are requested (never required) at the
    /// handshake only when this is set.
    pub client_auth: Option<ClientAuthConfig>,
}

/// `tls.client_auth`.
#[derive(Debug, Clone)]
pub struct ClientAuthConfig {
    /// PEM trust anchors for `tls_client_auth` clients (and for binding the tokens of
    /// other clients to a certificate that chains to them).
    pub ca_file: Option<PathBuf>,
    /// The anchors as read during validation; empty without `ca_file`.
    pub trust_anchors: Arc<Vec<TrustAnchor<'static>>>,
}

/// `discovery`: rewriting of the authorization server metadata the upstream publishes
/// (RFC 8414, OpenID Connect Discovery), so that it states what the gateway enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryConfig {
    pub rewrite: bool,
    /// Larger documents are passed through unchanged (and counted).
    pub max_size: usize,
}

/// `containment`: how the gateway treats what some server behind it could read
/// differently (docs/design.md §4.1, §4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainmentConfig {
    /// Header names with `_`, which CGI, WSGI, PHP and IIS read as `-`.
    pub underscore_headers: UnderscoreHeaders,
    /// `Authorization` schemes besides `Bearer` and `DPoP` forwarded on paths that do not
    /// authenticate clients, lower case. Never `basic`.
    pub allow_authorization_schemes: Vec<String>,
}

/// `containment.underscore_headers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnderscoreHeaders {
    /// Removed before routing, as nginx does (`underscores_in_headers off`).
    Drop,
    /// The request is refused with `400`.
    Refuse,
}

/// `upstream`.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// `http://host:port`, no path.
    pub authority: http::uri::Authority,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub pool_idle_timeout: Duration,
}

/// `admin`.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
}

/// `endpoints`: every enabled path pattern, with the kind of endpoint it is. A path
/// matches at most one pattern (validation refuses patterns of two kinds that overlap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointsConfig {
    /// In [`EndpointKind::ALL`] order, each kind's patterns in config order.
    pub routes: Vec<(EndpointKind, PathPattern)>,
}

impl EndpointsConfig {
    /// Every kind at its default path.
    pub fn defaults() -> EndpointsConfig {
        EndpointsConfig {
            routes: EndpointKind::ALL
                .into_iter()
                .filter_map(|k| PathPattern::parse(k.default_path()).ok().map(|p| (k, p)))
                .collect(),
        }
    }

    /// Whether `kind` has at least one path.
    pub fn has(&self, kind: EndpointKind) -> bool {
        self.routes.iter().any(|(k, _)| *k == kind)
    }

    /// The patterns of `kind`.
    pub fn paths(&self, kind: EndpointKind) -> impl Iterator<Item = &PathPattern> {
        self.routes
            .iter()
            .filter(move |(k, _)| *k == kind)
            .map(|(_, p)| p)
    }
}

/// `pkce.required`: which clients must use PKCE (RFC 7636; RFC 9700 §2.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkceRequired {
    /// Public (`auth_method: none`) clients: the default.
    Public,
    /// Every client, confidential ones included.
    All,
    /// Not enforced by the gateway.
    Off,
}

/// `pkce`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkceConfig {
    pub required: PkceRequired,
    /// Accepted `code_challenge_method` values (default `[S256]`).
    pub methods: Vec<PkceMethod>,
}

impl PkceConfig {
    /// Whether a client registered with `method` (`None`: not registered) must use PKCE.
    pub fn required_for(&self, method: Option<AuthMethod>) -> bool {
        match self.required {
            PkceRequired::Off => false,
            PkceRequired::All => true,
            PkceRequired::Public => method == Some(AuthMethod::None),
        }
    }
}

/// `unprotected`: what happens to paths that are not protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnprotectedPolicy {
    Forward,
    Deny,
}

/// `protected_query`: whether protected endpoints accept a query string. When allowed, the
/// internal header binds it (`query_sha256`), so the upstream acts on no unsigned input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryPolicy {
    Deny,
    Allow,
}

/// `assertion.audience`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudienceMode {
    /// Issuer or the exact endpoint URL, as a string or inside an array.
    Compat,
    /// draft-ietf-oauth-rfc7523bis: the issuer as the sole string value.
    Strict,
}

/// `assertion`.
#[derive(Debug, Clone)]
pub struct AssertionConfig {
    pub audience: AudienceMode,
    pub leeway: Duration,
    pub max_age: Duration,
    /// Default algorithm allow-list for jwt clients without their own list.
    pub algorithms: Vec<Algorithm>,
    /// Default allow-list for `private_key_jwt` clients without their own list.
    pub asymmetric_algorithms: Vec<crate::oauth::AsymmetricAlgorithm>,
    /// Maximum live (client_id, jti) entries; beyond it new assertions are refused (503).
    pub replay_capacity: u64,
}

/// `internal_header`.
#[derive(Debug, Clone)]
pub struct InternalHeaderConfig {
    pub name: HeaderName,
    pub issuer: String,
    pub audience: String,
    pub ttl: Duration,
    /// The first key without `publish_only` signs; all are accepted by verifiers during
    /// rotation, and the asymmetric ones are published.
    pub keys: Vec<SigningKey>,
    /// Where the JWK Set of the asymmetric keys is also written after each (re)load.
    pub jwks_file: Option<PathBuf>,
}

impl InternalHeaderConfig {
    /// The key that signs: the first without `publish_only`.
    pub fn signing_key(&self) -> Option<&SigningKey> {
        self.keys.iter().find(|k| !k.publish_only)
    }
}

/// One internal-header key.
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub id: String,
    pub material: KeyMaterial,
    /// Published, never used to sign (to pre-publish the next key).
    pub publish_only: bool,
}

/// What an internal-header key is.
#[derive(Debug, Clone)]
pub enum KeyMaterial {
    /// HS256: a key shared with the upstream (at least 32 bytes).
    Hmac(Secret),
    /// ES256 or EdDSA: a private key; the upstream holds the public half.
    Private {
        alg: crate::oauth::AsymmetricAlgorithm,
        key: Arc<crate::keys::PrivateKey>,
    },
}

impl SigningKey {
    /// An HS256 key.
    pub fn hmac(id: impl Into<String>, secret: Secret) -> SigningKey {
        SigningKey {
            id: id.into(),
            material: KeyMaterial::Hmac(secret),
            publish_only: false,
        }
    }

    /// The JWS `alg` this key signs with.
    pub fn algorithm(&self) -> &'static str {
        match &self.material {
            KeyMaterial::Hmac(_) => "HS256",
            KeyMaterial::Private { alg, .. } => alg.name(),
        }
    }
}

/// `limits`.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub max_body: usize,
    /// Largest request head (HTTP/1.1 request line and headers; HTTP/2 header list).
    pub max_header_size: usize,
    /// The TLS handshake, and an HTTP/1 request head from its first byte.
    pub header_read_timeout: Duration,
    /// How long an HTTP/1.1 connection may wait, idle, for its next request.
    pub keepalive_timeout: Duration,
    pub body_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// Most client connections open at once, over all workers.
    pub max_connections: usize,
}

/// `throttle`: failed-authentication throttling (RFC 6749 §2.3.1 brute-force protection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures allowed per (client_id, source address) within `window`.
    pub max_failures: u32,
    /// Failures allowed per source address, whatever the client, within `window`.
    pub max_failures_per_address: u32,
    pub window: Duration,
}

/// One entry of `clients`.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub client_id: ClientId,
    pub auth_method: AuthMethod,
    pub algorithms: Vec<Algorithm>,
    /// Secret-based clients only (empty for the certificate methods).
    pub secrets: Vec<ClientSecret>,
    /// `tls_client_auth`: the one name its certificate must carry (RFC 8705 §2.1.2).
    pub tls_name: Option<CertificateName>,
    /// `self_signed_tls_client_auth`: the registered certificates (RFC 8705 §2.2), by
    /// SHA-256 of their DER; several while rotating.
    pub certificates: Vec<Thumbprint>,
    /// The `grant_type`s the client may use at the token endpoint; `None`: any.
    pub grant_types: Option<Vec<String>>,
    /// `private_key_jwt`: where its public keys are.
    pub key_set: Option<ClientKeySet>,
    /// `private_key_jwt`: the algorithms its assertions may use.
    pub asymmetric_algorithms: Vec<crate::oauth::AsymmetricAlgorithm>,
}

/// A `private_key_jwt` client's public keys.
#[derive(Debug, Clone)]
pub enum ClientKeySet {
    /// `jwks`: a JWK Set read at load (every key valid, or the config is refused).
    Static(Arc<Vec<secretgate_verify::Jwk>>),
    /// `jwks_uri`: fetched by the gateway (auth/jwks.rs), HTTPS only.
    Uri(String),
}

/// `jwks_fetch`: how clients' `jwks_uri` sets are fetched.
#[derive(Debug, Clone)]
pub struct JwksFetchConfig {
    /// PEM trust anchors as read at load; `None`: the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    pub timeout: Duration,
    /// Re-fetch interval (a `Cache-Control: max-age` within [1m, 1h] wins).
    pub refresh: Duration,
    /// At most one extra fetch per client in this interval on an unknown `kid`.
    pub min_refetch_interval: Duration,
    pub max_size: usize,
}

impl PartialEq for JwksFetchConfig {
    fn eq(&self, other: &Self) -> bool {
        self.ca_pem == other.ca_pem
            && self.timeout == other.timeout
            && self.refresh == other.refresh
            && self.min_refetch_interval == other.min_refetch_interval
            && self.max_size == other.max_size
    }
}

/// One entry of `clients[].secrets`.
#[derive(Debug, Clone)]
pub enum ClientSecret {
    /// The secret itself (`file`, `env`, `value`).
    Plain(Secret),
    /// Only a hash of it (`hash`, `hash_file`): Basic and post clients.
    Hashed(StoredHash),
}

/// `hashing`: how hashed client secrets are verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashingConfig {
    /// How long a successful verification is remembered (zero: never).
    pub verify_cache_ttl: Duration,
    /// Hash verifications running at once, over all workers.
    pub max_concurrent: usize,
    /// Verifications waiting for a turn; more get 503.
    pub max_queued: usize,
}

/// One problem found in a configuration, with the key path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config is not valid YAML for secretgate")]
    Syntax(#[source] serde_saphyr::Error),
    #[error("config has {} problem(s):\n{}", .0.len(), ProblemList(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// Every problem with its key path (empty when it is not about one key).
    pub fn problem_list(&self) -> Vec<Problem> {
        match self {
            ConfigError::Invalid(problems) => problems.clone(),
            other => other
                .problems()
                .into_iter()
                .map(|message| Problem {
                    path: String::new(),
                    message,
                })
                .collect(),
        }
    }

    /// Every problem as `path: message` lines, for the CLI.
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Read { path, source } => {
                vec![format!("{}: {source}", path.display())]
            }
            ConfigError::Syntax(e) => vec![e.render_with_formatter(&SyntaxMessages)],
            ConfigError::Invalid(problems) => problems.iter().map(ToString::to_string).collect(),
        }
    }
}

/// serde-saphyr's messages, except where they speak to a programmer using the library
/// rather than to the operator writing the config.
struct SyntaxMessages;

impl serde_saphyr::MessageFormatter for SyntaxMessages {
    fn format_message<'a>(&self, err: &'a serde_saphyr::Error) -> std::borrow::Cow<'a, str> {
        match err {
            // Its own text ends "set DuplicateKeyPolicy in Options if acceptable".
            serde_saphyr::Error::DuplicateMappingKey { key, .. } => {
                std::borrow::Cow::Owned(format!(
                    "`{}` is written twice in the same mapping; each key may appear once \
                     (merge the two entries, or remove one)",
                    key.as_deref().unwrap_or("a key")
                ))
            }
            other => serde_saphyr::DefaultMessageFormatter.format_message(other),
        }
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Reads and validates a config file. Relative paths inside it are resolved against the
    /// file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_traced(path).0
    }

    /// [`Config::load`], also returning every file it read (config first) with a digest
    /// of what it read, whether or not the config turned out valid.
    pub fn load_traced(path: &Path) -> (Result<Config, ConfigError>, Vec<Source>) {
        let (source, bytes) = Source::read(path);
        let text = bytes.and_then(|b| {
            String::from_utf8(b)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        });
        let text = match text {
            Ok(t) => t,
            Err(e) => {
                let err = ConfigError::Read {
                    path: path.to_path_buf(),
                    source: e,
                };
                return (Err(err), vec![source]);
            }
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let (mut result, mut sources) = Self::from_yaml_traced(&text, base, &FileSystem);
        sources.insert(0, source);
        if let Ok(config) = &mut result {
            config.sources = sources.clone();
        }
        (result, sources)
    }

    /// `check --skip-files`: validates a config file without reading the files or the
    /// environment variables it names. Returns the number of clients and the warnings.
    pub fn check_without_files(path: &Path) -> Result<(usize, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            source: e,
        })?;
        let raw: raw::RawConfig = serde_saphyr::from_str(&text).map_err(ConfigError::Syntax)?;
        let clients = raw.clients.as_ref().map_or(0, Vec::len);
        let base = path.parent().unwrap_or(Path::new("."));
        match validate::validate_with_warnings(raw, base, &SkipFiles) {
            (Ok(config), _, _) => Ok((config.clients.len(), config.warnings)),
            (Err(ConfigError::Invalid(problems)), _, warnings) if problems.is_empty() => {
                Ok((clients, warnings))
            }
            (Err(e), _, _) => Err(e),
        }
    }

    /// Parses and validates YAML text; `base_dir` anchors relative file paths.
    pub fn from_yaml(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        Self::from_yaml_in(text, base_dir, &FileSystem)
    }

    /// [`Config::from_yaml`], reading the files the config names from `files` (a
    /// [`MemoryFiles`] in the fuzzer and in unit tests).
    pub fn from_yaml_in(
        text: &str,
        base_dir: &Path,
        files: &dyn Files,
    ) -> Result<Config, ConfigError> {
        Self::from_yaml_traced(text, base_dir, files).0
    }

    fn from_yaml_traced(
        text: &str,
        base_dir: &Path,
        files: &dyn Files,
    ) -> (Result<Config, ConfigError>, Vec<Source>) {
        let raw: raw::RawConfig = match serde_saphyr::from_str(text) {
            Ok(raw) => raw,
            Err(e) => return (Err(ConfigError::Syntax(e)), Vec::new()),
        };
        validate::validate(raw, base_dir, files)
    }

    /// The URL a client calls for `path` (the `htu` claim and an accepted `aud`).
    pub fn public_endpoint(&self, path: &str) -> String {
        format!("{}{}", self.public_url, path)
    }
}

#[cfg(test)]
mod tests;
