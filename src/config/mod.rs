//! Configuration: YAML read through serde-saphyr, then validated into typed values.
//!
//! Two phases, as in pingora: [`Config::from_yaml`] parses text (unknown keys and duplicate
//! keys are errors: a typo in security configuration must never be silently ignored), then
//! validation turns every raw value into its typed form and collects *every* problem with
//! its key path (`clients[2].secrets[0].file: ...`) instead of stopping at the first.
//! Secret material is read from files or environment variables here, once, so the request
//! path never touches the filesystem.

pub mod units;

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use rustls::sign::CertifiedKey;
use serde::Deserialize;

use crate::auth::jwt::Algorithm;
use crate::auth::AuthMethod;
use crate::route::PathPattern;
use crate::secret::Secret;
use units::{parse_duration, parse_size};

/// The CPUs this process may use (affinity and cgroup quota included), at least 1.
fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Minimum HMAC key length for client_secret_jwt secrets and internal-header keys, in
/// bytes: RFC 7518 §3.2 requires a key of at least the hash output size for HS256.
pub const MIN_HMAC_KEY_LEN: usize = 32;

/// A fully validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub tls: TlsFiles,
    pub upstream: Upstream,
    pub admin: Option<Admin>,
    /// Origin clients use, without a trailing slash (`https://auth.example.com`).
    pub public_url: String,
    /// Issuer identifier accepted as an assertion audience.
    pub issuer: String,
    pub protected_paths: Vec<PathPattern>,
    pub unprotected: Unprotected,
    pub assertion: Assertion,
    pub internal_header: InternalHeader,
    pub limits: Limits,
    pub throttle: Throttle,
    pub shutdown_grace: Duration,
    /// Worker threads serving connections, each with its own event loop and upstream
    /// connection pool (`workers: auto` = the CPUs this process may use).
    pub workers: usize,
    /// Realm sent in `WWW-Authenticate: Basic realm="..."`.
    pub realm: String,
    pub clients: Vec<Client>,
    pub reload: Reload,
    pub metrics: Metrics,
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
    /// Reads `path`, returning its content and its record.
    pub fn read(path: &Path) -> (Source, std::io::Result<Vec<u8>>) {
        use sha2::{Digest, Sha256};
        let result = std::fs::read(path);
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

/// Hot reload (SIGHUP always reloads; this is about watching files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reload {
    /// Poll the config file and every file it names for changes.
    pub watch: bool,
    pub poll_interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    /// Also count authentications per registered client id (one series per client).
    pub client_id_label: bool,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The chain and key as read during validation, so that what was checked is what is
    /// served even if the files change in between.
    pub certified: Arc<CertifiedKey>,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    /// `http://host:port`, no path.
    pub authority: http::uri::Authority,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub pool_idle_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Admin {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unprotected {
    Forward,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudienceMode {
    /// Issuer or the exact endpoint URL, as a string or inside an array.
    Compat,
    /// draft-ietf-oauth-rfc7523bis: the issuer as the sole string value.
    Strict,
}

#[derive(Debug, Clone)]
pub struct Assertion {
    pub audience: AudienceMode,
    pub leeway: Duration,
    pub max_age: Duration,
    /// Default algorithm allow-list for jwt clients without their own list.
    pub algorithms: Vec<Algorithm>,
    /// Maximum live (client_id, jti) entries; beyond it new assertions are refused (503).
    pub replay_capacity: u64,
}

#[derive(Debug, Clone)]
pub struct InternalHeader {
    pub name: HeaderName,
    pub issuer: String,
    pub audience: String,
    pub ttl: Duration,
    /// The first key signs; all are accepted by verifiers during rotation.
    pub keys: Vec<SigningKey>,
}

#[derive(Debug, Clone)]
pub struct SigningKey {
    pub id: String,
    pub secret: Secret,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
}

/// Failed-authentication throttling (RFC 6749 §2.3.1 brute-force protection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    /// Failures allowed per (client_id, source address) within `window`.
    pub max_failures: u32,
    /// Failures allowed per source address, whatever the client, within `window`.
    pub max_failures_per_address: u32,
    pub window: Duration,
}

#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub auth_method: AuthMethod,
    pub algorithms: Vec<Algorithm>,
    pub secrets: Vec<Secret>,
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

// ---------------------------------------------------------------------------------------
// Raw (as written) configuration. Every field is optional so that validation, not serde,
// reports missing keys, and reports all of them at once.

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    tls: Option<RawTls>,
    upstream: Option<RawUpstream>,
    admin: Option<RawAdmin>,
    public_url: Option<String>,
    issuer: Option<String>,
    protected_paths: Option<Vec<String>>,
    unprotected: Option<String>,
    assertion: Option<RawAssertion>,
    internal_header: Option<RawInternalHeader>,
    limits: Option<RawLimits>,
    throttle: Option<RawThrottle>,
    shutdown_grace: Option<String>,
    workers: Option<RawWorkers>,
    realm: Option<String>,
    reload: Option<RawReload>,
    metrics: Option<RawMetrics>,
    clients: Option<Vec<RawClient>>,
}

/// `workers: 4` or `workers: auto`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawWorkers {
    Count(u64),
    Word(String),
    // Only so that these get the key's own message rather than a parse error.
    Negative(i64),
    Fraction(f64),
}

/// Most worker threads accepted: far beyond any machine this runs on, low enough that a
/// typo cannot start a million threads.
const MAX_WORKERS: u64 = 1024;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReload {
    watch: Option<bool>,
    poll_interval: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    client_id_label: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    url: Option<String>,
    connect_timeout: Option<String>,
    timeout: Option<String>,
    pool_idle_timeout: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAssertion {
    audience: Option<String>,
    leeway: Option<String>,
    max_age: Option<String>,
    algorithms: Option<Vec<String>>,
    replay_capacity: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawInternalHeader {
    name: Option<String>,
    issuer: Option<String>,
    audience: Option<String>,
    ttl: Option<String>,
    keys: Option<Vec<RawKey>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawKey {
    id: Option<String>,
    file: Option<String>,
    env: Option<String>,
    value: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSecretSource {
    file: Option<String>,
    env: Option<String>,
    value: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_body: Option<String>,
    header_read_timeout: Option<String>,
    body_read_timeout: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawThrottle {
    max_failures: Option<u32>,
    max_failures_per_address: Option<u32>,
    window: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawClient {
    client_id: Option<String>,
    auth_method: Option<String>,
    algorithms: Option<Vec<String>>,
    secrets: Option<Vec<RawSecretSource>>,
}

// ---------------------------------------------------------------------------------------

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
        let (mut result, mut sources) = Self::from_yaml_traced(&text, base);
        sources.insert(0, source);
        if let Ok(config) = &mut result {
            config.sources = sources.clone();
        }
        (result, sources)
    }

    /// Parses and validates YAML text; `base_dir` anchors relative file paths.
    pub fn from_yaml(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        Self::from_yaml_traced(text, base_dir).0
    }

    fn from_yaml_traced(text: &str, base_dir: &Path) -> (Result<Config, ConfigError>, Vec<Source>) {
        let raw: RawConfig = match serde_saphyr::from_str(text) {
            Ok(raw) => raw,
            Err(e) => return (Err(ConfigError::Syntax(e)), Vec::new()),
        };
        let mut v = Validator {
            base_dir,
            problems: Vec::new(),
            warnings: Vec::new(),
            sources: Vec::new(),
        };
        let result = v.validate(raw);
        let sources = std::mem::take(&mut v.sources);
        let result = result.map(|mut c| {
            c.warnings = std::mem::take(&mut v.warnings);
            c.sources = sources.clone();
            c
        });
        (result, sources)
    }

    /// The URL a client calls for `path` (the `htu` claim and an accepted `aud`).
    pub fn public_endpoint(&self, path: &str) -> String {
        format!("{}{}", self.public_url, path)
    }
}

struct Validator<'a> {
    base_dir: &'a Path,
    problems: Vec<Problem>,
    warnings: Vec<String>,
    sources: Vec<Source>,
}

impl Validator<'_> {
    /// Reads a file the config names, recording it for the reload watcher.
    fn read(&mut self, path: &Path) -> std::io::Result<Vec<u8>> {
        let (source, bytes) = Source::read(path);
        self.sources.push(source);
        bytes
    }

    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    fn required<T>(&mut self, value: Option<T>, path: &str) -> Option<T> {
        if value.is_none() {
            self.problem(path, "required key is missing");
        }
        value
    }

    fn duration(&mut self, value: Option<String>, path: &str, default: Duration) -> Duration {
        match value {
            None => default,
            Some(text) => match parse_duration(&text) {
                Ok(d) => d,
                Err(e) => {
                    self.problem(path, e);
                    default
                }
            },
        }
    }

    fn socket_addr(&mut self, value: Option<String>, path: &str) -> Option<SocketAddr> {
        let text = self.required(value, path)?;
        match text.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.problem(
                    path,
                    format!("`{text}` is not an address; use IP:PORT such as 0.0.0.0:8443"),
                );
                None
            }
        }
    }

    fn file_path(&mut self, value: Option<String>, path: &str) -> Option<PathBuf> {
        let text = self.required(value, path)?;
        let resolved = self.base_dir.join(text);
        if !resolved.is_file() {
            self.problem(path, format!("no such file: {}", resolved.display()));
            return None;
        }
        Some(resolved)
    }

    /// Reads secret material from exactly one of `file`, `env` or `value`.
    fn secret(&mut self, source: RawSecretSource, path: &str) -> Option<Secret> {
        let given = [&source.file, &source.env, &source.value]
            .iter()
            .filter(|s| s.is_some())
            .count();
        if given != 1 {
            self.problem(path, "give exactly one of `file`, `env` or `value`");
            return None;
        }
        let bytes = if let Some(file) = source.file {
            let resolved = self.base_dir.join(&file);
            match self.read(&resolved) {
                Ok(bytes) => strip_one_newline(bytes),
                Err(e) => {
                    self.problem(
                        format!("{path}.file"),
                        format!("cannot read {}: {e}", resolved.display()),
                    );
                    return None;
                }
            }
        } else if let Some(var) = source.env {
            match std::env::var_os(&var) {
                Some(value) => value.into_encoded_bytes(),
                None => {
                    self.problem(
                        format!("{path}.env"),
                        format!("environment variable {var} is not set"),
                    );
                    return None;
                }
            }
        } else {
            self.warnings.push(format!(
                "{path}.value: inline secret in the config file; use `file` or `env` outside demos"
            ));
            source.value.unwrap_or_default().into_bytes()
        };
        if bytes.is_empty() {
            self.problem(path, "secret is empty");
            return None;
        }
        Some(Secret::new(bytes))
    }

    fn algorithms(&mut self, names: Vec<String>, path: &str) -> Vec<Algorithm> {
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            match Algorithm::from_name(name) {
                Some(alg) if !out.contains(&alg) => out.push(alg),
                Some(_) => {
                    self.problem(format!("{path}[{i}]"), format!("`{name}` is listed twice"))
                }
                None => self.problem(
                    format!("{path}[{i}]"),
                    format!("`{name}` is not supported; use HS256, HS384 or HS512"),
                ),
            }
        }
        if names.is_empty() {
            self.problem(path, "list at least one algorithm");
        }
        out
    }

    fn validate(&mut self, raw: RawConfig) -> Result<Config, ConfigError> {
        let listen = self.socket_addr(raw.listen, "listen");

        let raw_tls = self.required(raw.tls, "tls").unwrap_or_default();
        let cert_file = self.file_path(raw_tls.cert_file, "tls.cert_file");
        let key_file = self.file_path(raw_tls.key_file, "tls.key_file");
        let certified = match (&cert_file, &key_file) {
            (Some(cert), Some(key)) => match (self.read(cert), self.read(key)) {
                (Ok(cert_pem), Ok(key_pem)) => {
                    match crate::tls::certified_key_from_pem(&cert_pem, &key_pem, cert, key) {
                        Ok(k) => Some(Arc::new(k)),
                        Err(e) => {
                            self.problem("tls", error_chain(&e));
                            None
                        }
                    }
                }
                (Err(e), _) => {
                    self.problem(
                        "tls.cert_file",
                        format!("cannot read {}: {e}", cert.display()),
                    );
                    None
                }
                (_, Err(e)) => {
                    self.problem(
                        "tls.key_file",
                        format!("cannot read {}: {e}", key.display()),
                    );
                    None
                }
            },
            _ => None,
        };

        let raw_up = self.required(raw.upstream, "upstream").unwrap_or_default();
        let authority = self.required(raw_up.url, "upstream.url").and_then(|url| {
            match parse_upstream_url(&url) {
                Ok(a) => Some(a),
                Err(e) => {
                    self.problem("upstream.url", e);
                    None
                }
            }
        });
        let upstream_connect =
            self.duration(raw_up.connect_timeout, "upstream.connect_timeout", secs(2));
        let upstream_timeout = self.duration(raw_up.timeout, "upstream.timeout", secs(15));
        let pool_idle = self.duration(
            raw_up.pool_idle_timeout,
            "upstream.pool_idle_timeout",
            secs(60),
        );

        let admin = match raw.admin {
            None => None,
            Some(a) => self
                .socket_addr(a.listen, "admin.listen")
                .map(|listen| Admin { listen }),
        };

        let public_url = self.required(raw.public_url, "public_url").and_then(|url| {
            match parse_public_url(&url) {
                Ok(u) => Some(u),
                Err(e) => {
                    self.problem("public_url", e);
                    None
                }
            }
        });
        let issuer = self.required(raw.issuer, "issuer");
        if issuer.as_deref() == Some("") {
            self.problem("issuer", "must not be empty");
        }

        let protected_paths = match raw.protected_paths {
            None => PathPattern::defaults(),
            Some(list) => {
                if list.is_empty() {
                    self.problem("protected_paths", "list at least one path");
                }
                let mut out = Vec::new();
                for (i, p) in list.iter().enumerate() {
                    match PathPattern::parse(p) {
                        Ok(pat) => out.push(pat),
                        Err(e) => self.problem(format!("protected_paths[{i}]"), e),
                    }
                }
                out
            }
        };

        let unprotected = match raw.unprotected.as_deref() {
            None | Some("forward") => Unprotected::Forward,
            Some("deny") => Unprotected::Deny,
            Some(other) => {
                self.problem(
                    "unprotected",
                    format!("`{other}` is not one of: forward, deny"),
                );
                Unprotected::Forward
            }
        };

        let raw_as = raw.assertion.unwrap_or_default();
        let audience = match raw_as.audience.as_deref() {
            None | Some("compat") => AudienceMode::Compat,
            Some("strict") => AudienceMode::Strict,
            Some(other) => {
                self.problem(
                    "assertion.audience",
                    format!("`{other}` is not one of: compat, strict"),
                );
                AudienceMode::Compat
            }
        };
        let assertion = Assertion {
            audience,
            leeway: self.duration(raw_as.leeway, "assertion.leeway", secs(30)),
            max_age: self.duration(raw_as.max_age, "assertion.max_age", secs(300)),
            algorithms: match raw_as.algorithms {
                None => vec![Algorithm::Hs256],
                Some(names) => self.algorithms(names, "assertion.algorithms"),
            },
            replay_capacity: raw_as.replay_capacity.unwrap_or(100_000),
        };
        if assertion.replay_capacity == 0 {
            self.problem("assertion.replay_capacity", "must be at least 1");
        }
        if assertion.max_age.is_zero() {
            self.problem("assertion.max_age", "must be greater than zero");
        }

        let internal_header = self.internal_header(raw.internal_header);

        let raw_limits = raw.limits.unwrap_or_default();
        let max_body = match raw_limits.max_body {
            None => 64 * 1024,
            Some(text) => match parse_size(&text) {
                Ok(0) => {
                    self.problem("limits.max_body", "must be greater than zero");
                    0
                }
                Ok(n) => n,
                Err(e) => {
                    self.problem("limits.max_body", e);
                    0
                }
            },
        };
        let limits = Limits {
            max_body,
            header_read_timeout: self.duration(
                raw_limits.header_read_timeout,
                "limits.header_read_timeout",
                secs(5),
            ),
            body_read_timeout: self.duration(
                raw_limits.body_read_timeout,
                "limits.body_read_timeout",
                secs(10),
            ),
        };
        let raw_throttle = raw.throttle.unwrap_or_default();
        let throttle = Throttle {
            max_failures: raw_throttle.max_failures.unwrap_or(10),
            max_failures_per_address: raw_throttle.max_failures_per_address.unwrap_or(100),
            window: self.duration(raw_throttle.window, "throttle.window", secs(60)),
        };
        if throttle.max_failures == 0 {
            self.problem("throttle.max_failures", "must be at least 1");
        }
        if throttle.max_failures_per_address == 0 {
            self.problem("throttle.max_failures_per_address", "must be at least 1");
        }
        if throttle.window.is_zero() {
            self.problem("throttle.window", "must be greater than zero");
        }
        let shutdown_grace = self.duration(raw.shutdown_grace, "shutdown_grace", secs(30));
        let workers = match raw.workers {
            None => available_cpus(),
            Some(RawWorkers::Word(w)) if w == "auto" => available_cpus(),
            Some(RawWorkers::Count(n)) if (1..=MAX_WORKERS).contains(&n) => n as usize,
            Some(other) => {
                let given = match other {
                    RawWorkers::Count(n) => n.to_string(),
                    RawWorkers::Word(w) => format!("`{w}`"),
                    RawWorkers::Negative(n) => n.to_string(),
                    RawWorkers::Fraction(f) => f.to_string(),
                };
                self.problem(
                    "workers",
                    format!("must be `auto` or a number from 1 to {MAX_WORKERS}, not {given}"),
                );
                1
            }
        };
        let realm = raw.realm.unwrap_or_else(|| "secretgate".to_owned());
        if !realm
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        {
            self.problem(
                "realm",
                "must be printable ASCII without quotes or backslashes",
            );
        }

        let raw_reload = raw.reload.unwrap_or_default();
        let reload = Reload {
            watch: raw_reload.watch.unwrap_or(true),
            poll_interval: self.duration(raw_reload.poll_interval, "reload.poll_interval", secs(5)),
        };
        if reload.poll_interval < Duration::from_millis(100) {
            self.problem("reload.poll_interval", "must be at least 100ms");
        }
        let metrics = Metrics {
            client_id_label: raw
                .metrics
                .unwrap_or_default()
                .client_id_label
                .unwrap_or(false),
        };

        let clients = self.clients(raw.clients, &assertion.algorithms);

        if self.problems.is_empty() {
            // Every `required` above recorded a problem when it returned None, so the
            // options below are all Some here; the match keeps this free of unwraps.
            if let (
                Some(listen),
                Some(cert_file),
                Some(key_file),
                Some(certified),
                Some(authority),
                Some(public_url),
                Some(issuer),
                Some(internal_header),
            ) = (
                listen,
                cert_file,
                key_file,
                certified,
                authority,
                public_url,
                issuer,
                internal_header,
            ) {
                return Ok(Config {
                    listen,
                    tls: TlsFiles {
                        cert_file,
                        key_file,
                        certified,
                    },
                    upstream: Upstream {
                        authority,
                        connect_timeout: upstream_connect,
                        timeout: upstream_timeout,
                        pool_idle_timeout: pool_idle,
                    },
                    admin,
                    public_url,
                    issuer,
                    protected_paths,
                    unprotected,
                    assertion,
                    internal_header,
                    limits,
                    throttle,
                    shutdown_grace,
                    workers,
                    realm,
                    clients,
                    reload,
                    metrics,
                    // Filled in by the caller, which owns the validator.
                    warnings: Vec::new(),
                    sources: Vec::new(),
                });
            }
        }
        Err(ConfigError::Invalid(std::mem::take(&mut self.problems)))
    }

    fn internal_header(&mut self, raw: Option<RawInternalHeader>) -> Option<InternalHeader> {
        let raw = self.required(raw, "internal_header").unwrap_or_default();
        let name_text = raw
            .name
            .unwrap_or_else(|| "x-authenticated-client".to_owned());
        let name = match HeaderName::from_bytes(name_text.as_bytes()) {
            Ok(n) => Some(n),
            Err(_) => {
                self.problem(
                    "internal_header.name",
                    format!("`{name_text}` is not a header name"),
                );
                None
            }
        };
        let issuer = raw.issuer.unwrap_or_else(|| "secretgate".to_owned());
        let audience = raw
            .audience
            .unwrap_or_else(|| "legacy-token-service".to_owned());
        let ttl = self.duration(raw.ttl, "internal_header.ttl", secs(30));
        if ttl < secs(1) {
            self.problem("internal_header.ttl", "must be at least 1s");
        }
        let raw_keys = self
            .required(raw.keys, "internal_header.keys")
            .unwrap_or_default();
        let mut keys = Vec::new();
        let mut ids = HashSet::new();
        for (i, key) in raw_keys.into_iter().enumerate() {
            let path = format!("internal_header.keys[{i}]");
            let id = match key.id {
                Some(id) if !id.is_empty() && id.bytes().all(is_kid_byte) => Some(id),
                Some(_) => {
                    self.problem(format!("{path}.id"), "use letters, digits, `-`, `_` or `.`");
                    None
                }
                None => {
                    self.problem(format!("{path}.id"), "required key is missing");
                    None
                }
            };
            if let Some(id) = &id {
                if !ids.insert(id.clone()) {
                    self.problem(format!("{path}.id"), format!("key id `{id}` is used twice"));
                }
            }
            let source = RawSecretSource {
                file: key.file,
                env: key.env,
                value: key.value,
            };
            let secret = self.secret(source, &path);
            if let Some(s) = &secret {
                if s.len() < MIN_HMAC_KEY_LEN {
                    self.problem(
                        path.clone(),
                        format!(
                            "key is {} bytes; HS256 needs at least {MIN_HMAC_KEY_LEN}",
                            s.len()
                        ),
                    );
                }
            }
            if let (Some(id), Some(secret)) = (id, secret) {
                keys.push(SigningKey { id, secret });
            }
        }
        if keys.is_empty()
            && !self
                .problems
                .iter()
                .any(|p| p.path.starts_with("internal_header.keys"))
        {
            self.problem("internal_header.keys", "list at least one key");
        }
        Some(InternalHeader {
            name: name?,
            issuer,
            audience,
            ttl,
            keys,
        })
    }

    fn clients(&mut self, raw: Option<Vec<RawClient>>, default_algs: &[Algorithm]) -> Vec<Client> {
        let raw = raw.unwrap_or_default();
        if raw.is_empty() {
            self.problem("clients", "register at least one client");
        }
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for (i, c) in raw.into_iter().enumerate() {
            let path = format!("clients[{i}]");
            let client_id = self.required(c.client_id, &format!("{path}.client_id"));
            if let Some(id) = &client_id {
                // RFC 6749 Appendix A.1: client-id = *VSCHAR; an id outside that could
                // never be presented in a Basic header.
                if id.is_empty() || !id.bytes().all(is_vschar) {
                    self.problem(
                        format!("{path}.client_id"),
                        "must be non-empty visible ASCII (VSCHAR)",
                    );
                } else if !seen.insert(id.clone()) {
                    self.problem(
                        format!("{path}.client_id"),
                        format!("client `{id}` is registered twice"),
                    );
                }
            }
            let method = self
                .required(c.auth_method, &format!("{path}.auth_method"))
                .and_then(|m| match AuthMethod::from_name(&m) {
                    Some(m) => Some(m),
                    None => {
                        self.problem(
                            format!("{path}.auth_method"),
                            format!("`{m}` is not one of: client_secret_basic, client_secret_post, client_secret_jwt"),
                        );
                        None
                    }
                });
            let algorithms = match c.algorithms {
                None => default_algs.to_vec(),
                Some(names) => {
                    if method.is_some() && method != Some(AuthMethod::ClientSecretJwt) {
                        self.problem(
                            format!("{path}.algorithms"),
                            "only client_secret_jwt clients take algorithms",
                        );
                    }
                    self.algorithms(names, &format!("{path}.algorithms"))
                }
            };
            let raw_secrets = self
                .required(c.secrets, &format!("{path}.secrets"))
                .unwrap_or_default();
            let mut secrets = Vec::new();
            for (j, s) in raw_secrets.into_iter().enumerate() {
                let spath = format!("{path}.secrets[{j}]");
                let Some(secret) = self.secret(s, &spath) else {
                    continue;
                };
                // RFC 6749 Appendix A.2: client-secret = *VSCHAR.
                if !secret.expose().iter().copied().all(is_vschar) {
                    self.problem(
                        spath.clone(),
                        "secret must be visible ASCII (VSCHAR), per RFC 6749 Appendix A.2",
                    );
                }
                // RFC 7518 §3.2: an HS256 key must be at least 256 bits.
                if method == Some(AuthMethod::ClientSecretJwt) && secret.len() < MIN_HMAC_KEY_LEN {
                    let who = client_id.as_deref().unwrap_or("?");
                    self.problem(
                        spath.clone(),
                        format!(
                            "client `{who}` uses client_secret_jwt and its secret is {} bytes; HMAC keys need at least {MIN_HMAC_KEY_LEN}",
                            secret.len()
                        ),
                    );
                }
                secrets.push(secret);
            }
            if secrets.is_empty()
                && !self
                    .problems
                    .iter()
                    .any(|p| p.path.starts_with(&format!("{path}.secrets")))
            {
                self.problem(format!("{path}.secrets"), "list at least one secret");
            }
            if let (Some(client_id), Some(auth_method)) = (client_id, method) {
                out.push(Client {
                    client_id,
                    auth_method,
                    algorithms,
                    secrets,
                });
            }
        }
        out
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// RFC 6749 Appendix A: VSCHAR = %x20-7E.
pub fn is_vschar(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

fn is_kid_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// Kubernetes Secret files made with `echo` end in a newline that is not part of the secret.
fn strip_one_newline(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.ends_with(b"\r\n") {
        bytes.truncate(bytes.len() - 2);
    } else if bytes.ends_with(b"\n") {
        bytes.truncate(bytes.len() - 1);
    }
    bytes
}

fn parse_upstream_url(url: &str) -> Result<http::uri::Authority, String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err("https upstreams are not supported yet; the upstream is expected on loopback or a private network (use http://)".to_owned())
        }
        _ => return Err(format!("`{url}` must start with http://")),
    }
    if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
        return Err(
            "give only scheme, host and port; request paths are forwarded as they come".to_owned(),
        );
    }
    uri.authority()
        .cloned()
        .ok_or_else(|| format!("`{url}` has no host"))
}

fn parse_public_url(url: &str) -> Result<String, String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    if uri.scheme_str() != Some("https") && uri.scheme_str() != Some("http") {
        return Err(format!("`{url}` must start with https://"));
    }
    if uri.authority().is_none() {
        return Err(format!("`{url}` has no host"));
    }
    if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
        return Err(
            "give only the origin (scheme, host, port); paths come from requests".to_owned(),
        );
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// An error and its sources on one line, for problem messages.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
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
        assert!(available_cpus() >= 1);
    }

    #[test]
    fn secrets_from_file_env_and_value() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s"), "from-file\n").unwrap();
        let mut v = Validator {
            base_dir: dir.path(),
            problems: Vec::new(),
            warnings: Vec::new(),
            sources: Vec::new(),
        };
        let file = v.secret(
            RawSecretSource {
                file: Some("s".into()),
                ..Default::default()
            },
            "x",
        );
        assert_eq!(file.unwrap().expose(), b"from-file");
        std::env::set_var("SECRETGATE_UNIT_TEST_SECRET", "from-env");
        let env = v.secret(
            RawSecretSource {
                env: Some("SECRETGATE_UNIT_TEST_SECRET".into()),
                ..Default::default()
            },
            "y",
        );
        assert_eq!(env.unwrap().expose(), b"from-env");
        let both = v.secret(
            RawSecretSource {
                env: Some("A".into()),
                value: Some("b".into()),
                ..Default::default()
            },
            "z",
        );
        assert!(both.is_none());
        assert_eq!(v.problems.len(), 1);
        assert_eq!(v.problems[0].path, "z");
        let _ = v.secret(
            RawSecretSource {
                value: Some("inline".into()),
                ..Default::default()
            },
            "w",
        );
        assert!(v.warnings[0].contains("inline secret"));
    }
}
