//! Validation: raw structs (raw.rs) → a typed [`Config`], with every problem collected.
//!
//! One method per config section; each records problems under the section's key path and
//! returns what it could build, so that one bad key never hides another. The shared
//! shapes (a required key, a duration, a word from a closed set, exactly one of several
//! keys) are written once, below, and used by every section.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::sign::CertifiedKey;

use super::raw::*;
use super::units::{format_size, parse_duration, parse_size};
use super::*;
use crate::error::error_chain;
use crate::oauth::Algorithm;

/// Default `assertion.replay_capacity`: entries live at most max_age + leeway (5m30s by
/// default), so a million sustains about 3,000 jwt requests a second; an entry costs about
/// 40 bytes, so a full store about 40 MiB (docs/design.md §2.9 on sizing).
const DEFAULT_REPLAY_CAPACITY: u64 = 1_000_000;

/// Most worker threads accepted: far beyond any machine this runs on, low enough that a
/// typo cannot start a million threads.
const MAX_WORKERS: u64 = 1024;

/// The CPUs this process may use (affinity and cgroup quota included), at least 1.
fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(super) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Validates `raw`, reading the files it names, relative to `base_dir`, from `files`.
/// Returns the config (or every problem) and every file read, whatever the outcome.
pub(super) fn validate(
    raw: RawConfig,
    base_dir: &Path,
    files: &dyn Files,
) -> (Result<Config, ConfigError>, Vec<Source>) {
    let (result, sources, _) = validate_with_warnings(raw, base_dir, files);
    (result, sources)
}

/// [`validate`], also returning the warnings when the config is not built (with
/// [`SkipFiles`](super::SkipFiles), a config without problems is still not built).
pub(super) fn validate_with_warnings(
    raw: RawConfig,
    base_dir: &Path,
    files: &dyn Files,
) -> (Result<Config, ConfigError>, Vec<Source>, Vec<String>) {
    let mut v = Validator {
        base_dir,
        files,
        problems: Vec::new(),
        skipped: Vec::new(),
        warnings: Vec::new(),
        sources: Vec::new(),
        expiries: Vec::new(),
    };
    let result = v.config(raw);
    let sources = std::mem::take(&mut v.sources);
    let warnings = std::mem::take(&mut v.warnings);
    let result = match result {
        Some(mut config) if v.problems.is_empty() => {
            config.warnings = warnings.clone();
            config.certificate_expiry = std::mem::take(&mut v.expiries);
            config.sources = sources.clone();
            Ok(config)
        }
        _ => Err(ConfigError::Invalid(std::mem::take(&mut v.problems))),
    };
    (result, sources, warnings)
}

pub(super) struct Validator<'a> {
    pub(super) base_dir: &'a Path,
    /// Every file is read, and checked to exist, through this: nothing else here touches
    /// the file system.
    pub(super) files: &'a dyn Files,
    pub(super) problems: Vec<Problem>,
    /// Paths whose file or variable was not read (`check --skip-files`): not problems,
    /// but nothing under them is reported as missing either.
    pub(super) skipped: Vec<String>,
    pub(super) warnings: Vec<String>,
    pub(super) sources: Vec<Source>,
    /// Certificate expiries noted as files were read (expiry.rs).
    pub(super) expiries: Vec<CertificateExpiry>,
}

// ---------------------------------------------------------------------------------------
// Shapes shared by every section.

impl Validator<'_> {
    /// Reads a file the config names, recording it for the reload watcher.
    pub(super) fn read(&mut self, path: &Path) -> std::io::Result<Vec<u8>> {
        let (source, bytes) = Source::read_from(self.files, path);
        self.sources.push(source);
        bytes
    }

    pub(super) fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let (path, message) = (path.into(), message.into());
        // Only under `check --skip-files`: elsewhere a value that happens to contain the
        // marker text must still be reported.
        if self.files.skips() && files::is_skipped(&message) {
            self.skipped.push(path);
            return;
        }
        self.problems.push(Problem { path, message });
    }

    /// Whether a problem was already recorded at `path` or below it (or a file there
    /// was skipped).
    pub(super) fn has_problem_under(&self, path: &str) -> bool {
        self.problems.iter().any(|p| p.path.starts_with(path))
            || self.skipped.iter().any(|p| p.starts_with(path))
    }

    pub(super) fn required<T>(&mut self, value: Option<T>, path: &str) -> Option<T> {
        if value.is_none() {
            self.problem(path, "required key is missing");
        }
        value
    }

    /// A required text value turned into `T` by `parse`, whose error is the message.
    pub(super) fn parsed<T>(
        &mut self,
        value: Option<String>,
        path: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text = self.required(value, path)?;
        parse(&text).map_err(|e| self.problem(path, e)).ok()
    }

    pub(super) fn duration(
        &mut self,
        value: Option<String>,
        path: &str,
        default: Duration,
    ) -> Duration {
        match value {
            None => default,
            Some(text) => parse_duration(&text).unwrap_or_else(|e| {
                self.problem(path, e);
                default
            }),
        }
    }

    /// One word from a closed set, or `default` when absent.
    pub(super) fn choice<T: Copy>(
        &mut self,
        value: Option<String>,
        path: &str,
        options: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(word) = value else {
            return default;
        };
        match options.iter().find(|(name, _)| *name == word) {
            Some((_, v)) => *v,
            None => {
                let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
                self.problem(
                    path,
                    format!("`{word}` is not one of: {}", names.join(", ")),
                );
                default
            }
        }
    }

    /// Exactly one of several alternative keys: returns its name and value, or records
    /// "give exactly one of `a`, `b` or `c`" at `path`.
    pub(super) fn exactly_one<T>(
        &mut self,
        path: &str,
        options: Vec<(&'static str, Option<T>)>,
    ) -> Option<(&'static str, T)> {
        let names: Vec<String> = options.iter().map(|(n, _)| format!("`{n}`")).collect();
        let mut given = options
            .into_iter()
            .filter_map(|(name, v)| v.map(|v| (name, v)));
        match (given.next(), given.next()) {
            (Some(one), None) => Some(one),
            _ => {
                let list = match names.split_last() {
                    Some((last, rest)) if !rest.is_empty() => {
                        format!("{} or {last}", rest.join(", "))
                    }
                    _ => names.join(""),
                };
                self.problem(path, format!("give exactly one of {list}"));
                None
            }
        }
    }

    fn socket_addr(&mut self, value: Option<String>, path: &str) -> Option<SocketAddr> {
        self.parsed(value, path, |text| {
            text.parse().map_err(|_| {
                format!("`{text}` is not an address; use IP:PORT such as 0.0.0.0:8443")
            })
        })
    }

    pub(super) fn file_path(&mut self, value: Option<String>, path: &str) -> Option<PathBuf> {
        let text = self.required(value, path)?;
        let resolved = self.base_dir.join(text);
        if !self.files.is_file(&resolved) {
            if self.files.skips() {
                self.skipped.push(path.to_owned());
                return None;
            }
            self.problem(path, format!("no such file: {}", resolved.display()));
            return None;
        }
        Some(resolved)
    }

    pub(super) fn algorithms(&mut self, names: Vec<String>, path: &str) -> Vec<Algorithm> {
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
}

// ---------------------------------------------------------------------------------------
// Sections.

impl Validator<'_> {
    fn config(&mut self, mut raw: RawConfig) -> Option<Config> {
        let listen = self.socket_addr(raw.listen, "listen");
        let listen_proxy_protocol = self.proxy_protocol(raw.listen_proxy_protocol);
        let readiness = self.readiness(raw.readiness);
        // What `tls.client_auth` offers the clients: None (no certificates requested),
        // Some(false) (requested, no CA), Some(true) (requested, with `ca_file`).
        let client_auth = raw
            .tls
            .as_ref()
            .and_then(|t| t.client_auth.as_ref())
            .map(|c| c.ca_file.is_some());
        let tls = self.tls(raw.tls);
        let upstream = self.upstream(raw.upstream);
        let admin = raw
            .admin
            .and_then(|a| self.socket_addr(a.listen, "admin.listen"))
            .map(|listen| AdminConfig { listen });
        let public_url = self.parsed(raw.public_url, "public_url", parse_public_url);
        let issuer = self.issuer(raw.issuer);
        let endpoints = self.endpoints(raw.endpoints, raw.protected_paths);
        let pkce = self.pkce(raw.pkce.unwrap_or_default());
        let unprotected = self.choice(
            raw.unprotected,
            "unprotected",
            &[
                ("forward", UnprotectedPolicy::Forward),
                ("deny", UnprotectedPolicy::Deny),
            ],
            UnprotectedPolicy::Forward,
        );
        let protected_query = self.choice(
            raw.protected_query,
            "protected_query",
            &[("deny", QueryPolicy::Deny), ("allow", QueryPolicy::Allow)],
            QueryPolicy::Deny,
        );
        let assertion = self.assertion(raw.assertion.unwrap_or_default());
        let internal_header = self.internal_header(raw.internal_header);
        let limits = self.limits(raw.limits.unwrap_or_default());
        let throttle = self.throttle(raw.throttle.unwrap_or_default());
        let shutdown_grace = self.duration(raw.shutdown_grace, "shutdown_grace", secs(30));
        let workers = self.workers(raw.workers);
        let realm = self.realm(raw.realm);
        let reload = self.reload(raw.reload.unwrap_or_default());
        let metrics = MetricsConfig {
            client_id_label: raw
                .metrics
                .unwrap_or_default()
                .client_id_label
                .unwrap_or(false),
        };
        let state = self.state(raw.state);
        let hashing = self.hashing(raw.hashing.unwrap_or_default());
        let discovery = self.discovery(raw.discovery.unwrap_or_default());
        let containment = self.containment(raw.containment.unwrap_or_default());
        let jwks_fetch = self.jwks_fetch(raw.jwks_fetch.unwrap_or_default());
        let raw_rollouts = super::rollout::take_client_rollouts(&mut raw.clients);
        let clients = self.clients(raw.clients, &assertion, client_auth);
        let rollout = self.rollout(raw.rollout, raw.rate_limit, raw_rollouts, &clients);
        // Every `None` below recorded a problem when it was made.
        Some(Config {
            listen: listen?,
            listen_proxy_protocol,
            readiness,
            tls: tls?,
            upstream: upstream?,
            admin,
            public_url: public_url?,
            issuer: issuer?,
            endpoints,
            pkce,
            unprotected,
            protected_query,
            assertion,
            internal_header: internal_header?,
            limits,
            throttle,
            shutdown_grace,
            workers,
            realm,
            clients,
            rollout,
            reload,
            metrics,
            state,
            hashing,
            discovery,
            containment,
            jwks_fetch,
            // Filled in by `validate`, which owns the validator.
            warnings: Vec::new(),
            sources: Vec::new(),
            certificate_expiry: Vec::new(),
        })
    }

    fn tls(&mut self, raw: Option<RawTls>) -> Option<TlsConfig> {
        let raw = self.required(raw, "tls").unwrap_or_default();
        let cert_file = self.file_path(raw.cert_file, "tls.cert_file");
        let key_file = self.file_path(raw.key_file, "tls.key_file");
        let client_auth = raw.client_auth.map(|c| self.client_auth(c));
        let (cert_file, key_file) = (cert_file?, key_file?);
        let certified = self.certified_key(&cert_file, &key_file)?;
        Some(TlsConfig {
            cert_file,
            key_file,
            certified,
            client_auth: match client_auth {
                None => None,
                Some(c) => Some(c?),
            },
        })
    }

    /// `tls.client_auth`: the CA file, if given, read now (and watched for reloads).
    fn client_auth(&mut self, raw: RawClientAuth) -> Option<ClientAuthConfig> {
        const PATH: &str = "tls.client_auth.ca_file";
        let Some(text) = raw.ca_file else {
            return Some(ClientAuthConfig {
                ca_file: None,
                trust_anchors: Arc::new(Vec::new()),
            });
        };
        let path = self.file_path(Some(text), PATH)?;
        let pem = self
            .read(&path)
            .map_err(|e| self.problem(PATH, format!("cannot read {}: {e}", path.display())))
            .ok()?;
        if let Ok(certs) = crate::tls::certificates_from_pem(&pem, &path) {
            self.note_expiry(
                CertificateKind::ClientCa,
                None,
                certs.iter().map(|c| &c[..]),
            );
        }
        let anchors = match crate::tls::trust_anchors_from_pem(&pem, &path) {
            Ok(anchors) => anchors,
            Err(e) => {
                self.problem(PATH, error_chain(&e));
                return None;
            }
        };
        Some(ClientAuthConfig {
            ca_file: Some(path),
            trust_anchors: Arc::new(anchors),
        })
    }

    fn discovery(&mut self, raw: RawDiscovery) -> DiscoveryConfig {
        DiscoveryConfig {
            rewrite: raw.rewrite.unwrap_or(true),
            max_size: self.size(raw.max_size, "discovery.max_size", 256 * 1024, 1),
        }
    }

    fn certified_key(&mut self, cert: &Path, key: &Path) -> Option<Arc<CertifiedKey>> {
        let cert_pem = self
            .read(cert)
            .map_err(|e| {
                self.problem(
                    "tls.cert_file",
                    format!("cannot read {}: {e}", cert.display()),
                )
            })
            .ok();
        let key_pem = self
            .read(key)
            .map_err(|e| {
                self.problem(
                    "tls.key_file",
                    format!("cannot read {}: {e}", key.display()),
                )
            })
            .ok();
        match crate::tls::certified_key_from_pem(&cert_pem?, &key_pem?, cert, key) {
            Ok(k) => {
                self.note_expiry(CertificateKind::Server, None, k.cert.iter().map(|c| &c[..]));
                Some(Arc::new(k))
            }
            Err(e) => {
                self.problem("tls", error_chain(&e));
                None
            }
        }
    }

    fn upstream(&mut self, raw: Option<RawUpstream>) -> Option<UpstreamConfig> {
        let raw = self.required(raw, "upstream").unwrap_or_default();
        let authority = self.parsed(raw.url, "upstream.url", parse_upstream_url);
        let connect_timeout =
            self.duration(raw.connect_timeout, "upstream.connect_timeout", secs(2));
        let timeout = self.duration(raw.timeout, "upstream.timeout", secs(15));
        let pool_idle_timeout = self.duration(
            raw.pool_idle_timeout,
            "upstream.pool_idle_timeout",
            secs(60),
        );
        Some(UpstreamConfig {
            authority: authority?,
            connect_timeout,
            timeout,
            pool_idle_timeout,
        })
    }

    fn issuer(&mut self, raw: Option<String>) -> Option<String> {
        let issuer = self.required(raw, "issuer")?;
        if issuer.is_empty() {
            self.problem("issuer", "must not be empty");
        }
        Some(issuer)
    }

    fn assertion(&mut self, raw: RawAssertion) -> AssertionConfig {
        let audience = self.choice(
            raw.audience,
            "assertion.audience",
            &[
                ("compat", AudienceMode::Compat),
                ("strict", AudienceMode::Strict),
            ],
            AudienceMode::Compat,
        );
        let assertion = AssertionConfig {
            audience,
            leeway: self.duration(raw.leeway, "assertion.leeway", secs(30)),
            max_age: self.duration(raw.max_age, "assertion.max_age", secs(300)),
            algorithms: match raw.algorithms {
                None => vec![Algorithm::Hs256],
                Some(names) => self.algorithms(names, "assertion.algorithms"),
            },
            asymmetric_algorithms: match raw.asymmetric_algorithms {
                None => super::jwks::DEFAULT_ASYMMETRIC.to_vec(),
                Some(names) => self.asymmetric_algorithms(names, "assertion.asymmetric_algorithms"),
            },
            replay_capacity: raw.replay_capacity.unwrap_or(DEFAULT_REPLAY_CAPACITY),
        };
        if assertion.replay_capacity == 0 {
            self.problem("assertion.replay_capacity", "must be at least 1");
        }
        if assertion.max_age.is_zero() {
            self.problem("assertion.max_age", "must be greater than zero");
        }
        assertion
    }

    pub(super) fn size(
        &mut self,
        value: Option<String>,
        path: &str,
        default: usize,
        min: usize,
    ) -> usize {
        let Some(text) = value else {
            return default;
        };
        match parse_size(&text) {
            Ok(n) if n >= min => n,
            Ok(_) if min == 1 => {
                self.problem(path, "must be greater than zero");
                default
            }
            Ok(_) => {
                self.problem(path, format!("must be at least {}", format_size(min)));
                default
            }
            Err(e) => {
                self.problem(path, e);
                default
            }
        }
    }

    fn throttle(&mut self, raw: RawThrottle) -> ThrottleConfig {
        let throttle = ThrottleConfig {
            max_failures: raw.max_failures.unwrap_or(10),
            max_failures_per_address: raw.max_failures_per_address.unwrap_or(100),
            window: self.duration(raw.window, "throttle.window", secs(60)),
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
        throttle
    }

    fn workers(&mut self, raw: Option<RawWorkers>) -> usize {
        self.auto_count(raw, "workers")
    }

    /// `auto` (the CPUs this process may use) or a number from 1 to [`MAX_WORKERS`].
    fn auto_count(&mut self, raw: Option<RawWorkers>, path: &str) -> usize {
        match raw {
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
                    path,
                    format!("must be `auto` or a number from 1 to {MAX_WORKERS}, not {given}"),
                );
                1
            }
        }
    }

    fn hashing(&mut self, raw: RawHashing) -> HashingConfig {
        HashingConfig {
            verify_cache_ttl: self.duration(
                raw.verify_cache_ttl,
                "hashing.verify_cache_ttl",
                Duration::from_secs(300),
            ),
            max_concurrent: self.auto_count(raw.max_concurrent, "hashing.max_concurrent"),
            max_queued: raw.max_queued.map_or(64, |n| n.min(1 << 20) as usize),
        }
    }

    fn realm(&mut self, raw: Option<String>) -> String {
        let realm = raw.unwrap_or_else(|| "secretgate".to_owned());
        // It is sent inside a quoted-string (RFC 7617 §2): no quotes, no escapes.
        if !realm
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        {
            self.problem(
                "realm",
                "must be printable ASCII without quotes or backslashes",
            );
        }
        realm
    }

    fn reload(&mut self, raw: RawReload) -> ReloadConfig {
        let reload = ReloadConfig {
            watch: raw.watch.unwrap_or(true),
            poll_interval: self.duration(raw.poll_interval, "reload.poll_interval", secs(5)),
        };
        if reload.poll_interval < Duration::from_millis(100) {
            self.problem("reload.poll_interval", "must be at least 100ms");
        }
        reload
    }
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::config) fn validator(dir: &Path) -> Validator<'_> {
        Validator {
            base_dir: dir,
            files: &FileSystem,
            problems: Vec::new(),
            skipped: Vec::new(),
            warnings: Vec::new(),
            sources: Vec::new(),
            expiries: Vec::new(),
        }
    }

    #[test]
    fn exactly_one_names_every_alternative() {
        let mut v = validator(Path::new("."));
        assert_eq!(
            v.exactly_one("x", vec![("a", None), ("b", Some(2)), ("c", None)]),
            Some(("b", 2))
        );
        assert!(v.problems.is_empty());
        assert_eq!(
            v.exactly_one("y", vec![("a", Some(1)), ("b", Some(2)), ("c", None)]),
            None
        );
        assert_eq!(
            v.exactly_one::<u8>("z", vec![("a", None), ("b", None)]),
            None
        );
        let texts: Vec<String> = v.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "y: give exactly one of `a`, `b` or `c`",
                "z: give exactly one of `a` or `b`"
            ]
        );
    }

    #[test]
    fn choice_lists_the_accepted_words() {
        let mut v = validator(Path::new("."));
        let opts = [("forward", 1), ("deny", 2)];
        assert_eq!(v.choice(None, "u", &opts, 1), 1);
        assert_eq!(v.choice(Some("deny".into()), "u", &opts, 1), 2);
        assert_eq!(v.choice(Some("drop".into()), "u", &opts, 1), 1);
        assert_eq!(
            v.problems[0].to_string(),
            "u: `drop` is not one of: forward, deny"
        );
    }

    #[test]
    fn cpus_are_counted() {
        assert!(available_cpus() >= 1);
    }
}
