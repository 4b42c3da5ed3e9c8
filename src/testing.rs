//! Fixtures for the in-process tests of the layers (compiled for tests only): a valid
//! configuration with one client per method, a certificate made at run time with rcgen,
//! and the parts the stack is built from, on a pinned clock.

use std::path::Path;
use std::sync::Arc;

use crate::auth::hashing::Hasher;
use crate::auth::replay::{MemoryReplayStore, ReplayStore};
use crate::auth::throttle::Throttle;
use crate::auth::{AuthState, Authenticator};
use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::sign::Signer;
use crate::stack::Parts;

pub const BASIC_ID: &str = "billing";
pub const BASIC_SECRET: &str = "basic-secret-0123456789";
pub const POST_ID: &str = "reports";
pub const POST_SECRET: &str = "post-secret-0123456789";
pub const JWT_ID: &str = "mobile";
pub const JWT_SECRET: &str = "jwt-secret-0123456789abcdefghijklmnop";
/// A public client (`auth_method: none`).
pub const SPA_ID: &str = "spa";
pub const SIGNING_KEY: &str = "internal-signing-key-0123456789abcdef";
pub const PUBLIC_URL: &str = "https://auth.example.com";
pub const ISSUER: &str = "https://auth.example.com/acme";
pub const NOW: i64 = 1_900_000_000;

/// A valid config (with `extra` YAML appended at top level) and the directory holding its
/// certificate, which must outlive it.
pub fn config(extra: &str) -> (Config, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    write_certificate(dir.path());
    let yaml = format!(
        r#"
listen: "127.0.0.1:0"
tls: {{ cert_file: tls.crt, key_file: tls.key }}
upstream: {{ url: "http://127.0.0.1:9" }}
public_url: "{PUBLIC_URL}"
issuer: "{ISSUER}"
internal_header:
  keys: [{{ id: k1, value: "{SIGNING_KEY}" }}]
workers: 1
clients:
  - {{ client_id: {BASIC_ID}, auth_method: client_secret_basic, secrets: [{{ value: "{BASIC_SECRET}" }}] }}
  - {{ client_id: {POST_ID}, auth_method: client_secret_post, secrets: [{{ value: "{POST_SECRET}" }}] }}
  - {{ client_id: {JWT_ID}, auth_method: client_secret_jwt, secrets: [{{ value: "{JWT_SECRET}" }}] }}
  - {{ client_id: {SPA_ID}, auth_method: none }}
{extra}"#
    );
    let config = Config::from_yaml(&yaml, dir.path()).expect("fixture config is valid");
    (config, dir)
}

fn write_certificate(dir: &Path) {
    let key = rcgen::KeyPair::generate().expect("key pair");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    std::fs::write(dir.join("tls.crt"), cert.pem()).expect("write certificate");
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).expect("write key");
}

/// The parts of a stack for `config`, on a clock pinned at [`NOW`].
pub fn parts(config: &Config) -> Parts {
    let clock = Clock::manual(NOW);
    let metrics = Arc::new(Metrics::new());
    let state = AuthState {
        replay: Arc::new(ReplayStore::Memory(MemoryReplayStore::new(
            config.assertion.replay_capacity,
        ))),
        throttle: Arc::new(Throttle::new(&config.throttle)),
        hasher: Arc::new(Hasher::new(&config.hashing, metrics.clone())),
        key_sets: crate::auth::jwks::KeySets::new(config, metrics.clone()),
        metrics: metrics.clone(),
    };
    Parts {
        rate_limiter: crate::auth::rate_limit::RateLimiter::new(None, metrics.clone()),
        authenticator: Arc::new(Authenticator::new(config, state, clock.clone())),
        signer: Arc::new(
            Signer::new(&config.internal_header, &config.public_url, clock).expect("a signing key"),
        ),
        metrics,
    }
}
