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
mod files;
pub mod path;
mod raw;
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
use crate::oauth::{Algorithm, AuthMethod, ClientId};
use crate::secret::Secret;
use crate::x509::{CertificateName, Thumbprint};
pub use files::{FileSystem, Files, MemoryFiles};
pub use path::PathPattern;

/// Minimum HMAC key length for client_secret_jwt secrets and internal-header keys, in
/// bytes: RFC 7518 §3.2 requires a key of at least the hash output size for HS256.
pub const MIN_HMAC_KEY_LEN: usize = 32;

/// A fully validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub tls: TlsConfig,
    pub upstream: UpstreamConfig,
    pub admin: Option<AdminConfig>,
    /// Origin clients use, without a trailing slash (`https://auth.example.com`).
    pub public_url: String,
    /// Issuer identifier accepted as an assertion audience.
    pub issuer: String,
    pub protected_paths: Vec<PathPattern>,
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
    pub reload: ReloadConfig,
    pub metrics: MetricsConfig,
    /// Where the replay store and the throttle counters live.
    pub state: StateConfig,
    pub hashing: HashingConfig,
    /// How discovery metadata from the upstream is rewritten.
    pub discovery: DiscoveryConfig,
    /// Non-fatal findings (inline secrets); printed at start and by `check`.
    pub warnings: Vec<String>,
    /// Every file this config was read from, with a digest of what was read (the config
    /// file first when loaded with [`Config::load`]): the reload watcher compares them with
    /// the files as they are now.
    pub sources: Vec<Source>,
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
    /// The first key signs; all are accepted by verifiers during rotation.
    pub keys: Vec<SigningKey>,
}

/// One internal-header key.
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub id: String,
    pub secret: Secret,
}

/// `limits`.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub max_body: usize,
    /// Largest request head (HTTP/1.1 request line and headers; HTTP/2 header list).
    pub max_header_size: usize,
    pub header_read_timeout: Duration,
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
    /// Every problem as `path: message` lines, for the CLI.
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Read { path, source } => {
                vec![format!("{}: {source}", path.display())]
            }
            ConfigError::Syntax(e) => vec![e.to_string()],
            ConfigError::Invalid(problems) => problems.iter().map(ToString::to_string).collect(),
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
mod tests {
    use super::*;

    /// The shipped example uses every key: it must parse (no unknown or misspelt key), and
    /// the only problems must be the files and variables it points to on a real host.
    #[test]
    fn example_config_has_only_missing_file_problems() {
        let text = include_str!("../../config/secretgate.yaml");
        let err = Config::from_yaml(text, Path::new("/nonexistent")).unwrap_err();
        let ConfigError::Invalid(problems) = err else {
            panic!("example config does not parse: {err}");
        };
        for p in &problems {
            assert!(
                p.message.starts_with("no such file")
                    || p.message.starts_with("cannot read")
                    || p.message.contains("is not set"),
                "unexpected problem in the example: {p}"
            );
        }
        assert!(problems.iter().any(|p| p.path == "tls.cert_file"));
        assert!(problems
            .iter()
            .any(|p| p.path == "clients[1].secrets[0].env"));
    }

    #[test]
    fn unknown_and_duplicate_keys_are_rejected() {
        let err = Config::from_yaml("listen: a\nlisten: b\n", Path::new(".")).unwrap_err();
        assert!(matches!(err, ConfigError::Syntax(_)), "{err}");
        let err = Config::from_yaml("lisen: a\n", Path::new(".")).unwrap_err();
        assert!(matches!(err, ConfigError::Syntax(_)), "{err}");
        assert!(err.problems()[0].contains("lisen"), "{:?}", err.problems());
        let err = Config::from_yaml("limits: { max_bdy: 1KiB }\n", Path::new(".")).unwrap_err();
        assert!(
            err.problems()[0].contains("max_bdy"),
            "{:?}",
            err.problems()
        );
    }

    #[test]
    fn missing_required_keys_are_all_listed() {
        let err = Config::from_yaml("{}", Path::new(".")).unwrap_err();
        let problems = err.problems();
        for key in [
            "listen",
            "tls",
            "upstream",
            "public_url",
            "issuer",
            "internal_header",
            "clients",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(key)),
                "{key} not reported in {problems:?}"
            );
        }
    }

    /// Certificate clients (RFC 8705): every misuse is a problem naming its key.
    #[test]
    fn certificate_clients_are_checked_with_their_key_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("not.pem"), "no certificate here").unwrap();
        let problems = |tls_extra: &str, clients: &str| {
            let yaml =
                format!("tls: {{ cert_file: c, key_file: k{tls_extra} }}\nclients:\n{clients}");
            Config::from_yaml(&yaml, dir.path()).unwrap_err().problems()
        };
        let has = |problems: &[String], want: &str| {
            assert!(
                problems.iter().any(|p| p.starts_with(want)),
                "{want} not in {problems:#?}"
            )
        };
        let p = problems(
            "",
            r#"  - { client_id: a, auth_method: tls_client_auth, tls_client_auth_subject_dn: "CN=a" }
  - { client_id: b, auth_method: self_signed_tls_client_auth, certificates: [{ file: not.pem }] }
  - { client_id: c, auth_method: client_secret_basic, secrets: [{ value: s }], tls_client_auth_san_dns: c.example, certificates: [{ file: x }] }
"#,
        );
        has(
            &p,
            "clients[0].auth_method: tls_client_auth needs `tls.client_auth.ca_file`",
        );
        has(
            &p,
            "clients[1].auth_method: self_signed_tls_client_auth needs `tls.client_auth`",
        );
        has(&p, "clients[1].certificates[0].file: ");
        assert!(p
            .iter()
            .any(|p| p.ends_with("not.pem holds no PEM certificate")));
        has(
            &p,
            "clients[2].tls_client_auth_san_dns: only tls_client_auth clients",
        );
        has(
            &p,
            "clients[2].certificates: only self_signed_tls_client_auth clients",
        );

        let p = problems(
            ", client_auth: { ca_file: not.pem }",
            r#"  - { client_id: a, auth_method: tls_client_auth }
  - { client_id: b, auth_method: tls_client_auth, tls_client_auth_san_dns: b, tls_client_auth_san_uri: "urn:b" }
  - { client_id: c, auth_method: tls_client_auth, tls_client_auth_subject_dn: "CN=c,XX=1" }
  - { client_id: d, auth_method: tls_client_auth, tls_client_auth_san_ip: "10.0.0.300" }
  - { client_id: e, auth_method: tls_client_auth, tls_client_auth_san_email: "nobody", secrets: [{ value: s }] }
  - { client_id: f, auth_method: self_signed_tls_client_auth }
"#,
        );
        has(&p, "tls.client_auth.ca_file: ");
        assert!(p
            .iter()
            .any(|p| p.ends_with("not.pem holds no PEM certificate")));
        has(
            &p,
            "clients[0]: give exactly one of `tls_client_auth_subject_dn`",
        );
        has(&p, "clients[1]: give exactly one of");
        has(
            &p,
            "clients[2].tls_client_auth_subject_dn: attribute type `XX`",
        );
        has(
            &p,
            "clients[3].tls_client_auth_san_ip: `10.0.0.300` is not an IPv4 or IPv6 address",
        );
        has(
            &p,
            "clients[4].tls_client_auth_san_email: must be an e-mail address",
        );
        has(
            &p,
            "clients[4].secrets: client `e` authenticates with its TLS certificate",
        );
        has(&p, "clients[5].certificates: required key is missing");
        assert!(
            !p.iter().any(|p| p.contains("needs `tls.client_auth")),
            "ca_file was given: {p:#?}"
        );
    }

    #[test]
    fn workers_is_auto_or_a_bounded_count() {
        let problems = |yaml: &str| {
            Config::from_yaml(yaml, Path::new("."))
                .unwrap_err()
                .problems()
                .into_iter()
                .filter(|p| p.starts_with("workers"))
                .collect::<Vec<_>>()
        };
        for ok in ["workers: auto", "workers: 1", "workers: 64"] {
            assert!(problems(ok).is_empty(), "{ok}: {:?}", problems(ok));
        }
        for bad in [
            "workers: 0",
            "workers: 5000",
            "workers: many",
            "workers: -1",
            "workers: 1.5",
        ] {
            let p = problems(bad);
            assert_eq!(p.len(), 1, "{bad}: {p:?}");
            assert!(p[0].contains("`auto` or a number from 1 to 1024"), "{p:?}");
        }
    }
}
