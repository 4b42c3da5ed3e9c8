//! Config YAML → `Config::from_yaml_in`, what `run`, `check` and every reload go through,
//! over files held in memory (`MemoryFiles`): nothing here touches the file system, so a
//! run is as fast as validation itself. Relative names resolve in `/fuzz`, which holds a
//! valid certificate and key (`tls.crt`, `tls.key`), a client CA (`ca.crt`), a client
//! certificate (`client.crt`), a signing key (`k1.key`), a client secret (`s1`), a stored
//! argon2id hash (`h1.hash`) and a Redis password (`redis.password`), so that the seeds in
//! `fuzz/seeds/config` validate completely and mutations reach every check; any other
//! name does not exist.
//! Checks: never panics; an invalid config reports at least one problem; a valid one has the
//! properties validation promises (docs/design.md §2, §5, §6): at least one protected path, at
//! least one client, unique VSCHAR client ids, each with at least one VSCHAR secret,
//! `client_secret_jwt` secrets of at least 32 bytes, at least one internal-header key, every
//! key at least 32 bytes with a unique id.
#![no_main]
use std::collections::HashSet;
use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use secretgate::config::{ClientSecret, ConfigError, MemoryFiles, MIN_HMAC_KEY_LEN};
use secretgate::oauth::AuthMethod;
use secretgate::Config;

const BASE_DIR: &str = "/fuzz";

/// The files under [`BASE_DIR`], made once per process (certificates at run time, never
/// committed).
fn files() -> &'static MemoryFiles {
    static FILES: OnceLock<MemoryFiles> = OnceLock::new();
    FILES.get_or_init(|| {
        let server = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("server certificate");
        let ca = rcgen::generate_simple_self_signed(vec!["client-ca.example".to_owned()])
            .expect("client CA certificate");
        let client = rcgen::generate_simple_self_signed(vec!["device.example".to_owned()])
            .expect("client certificate");
        let dir = Path::new(BASE_DIR);
        MemoryFiles::new()
            .with(dir.join("tls.crt"), server.cert.pem())
            .with(dir.join("tls.key"), server.signing_key.serialize_pem())
            .with(dir.join("ca.crt"), ca.cert.pem())
            .with(dir.join("client.crt"), client.cert.pem())
            .with(dir.join("k1.key"), vec![b'k'; 32])
            .with(dir.join("s1"), b"client-secret-from-a-file-0123456789\n".to_vec())
            .with(
                dir.join("h1.hash"),
                "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g\n",
            )
            .with(dir.join("redis.password"), "redis-password\n")
    })
}

fn vschar(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match Config::from_yaml_in(text, Path::new(BASE_DIR), files()) {
        Err(ConfigError::Invalid(problems)) => {
            assert!(!problems.is_empty(), "invalid without a problem");
            return;
        }
        Err(_) => return,
        Ok(config) => config,
    };

    assert!(config
        .endpoints
        .routes
        .iter()
        .any(|(k, _)| k.authenticates()));
    // A path is one kind only: no two patterns of the config overlap.
    for (i, (_, a)) in config.endpoints.routes.iter().enumerate() {
        for (_, b) in &config.endpoints.routes[..i] {
            assert!(!a.overlaps(b), "{} overlaps {}", a.as_str(), b.as_str());
        }
    }
    assert!(!config.clients.is_empty());
    let mut ids = HashSet::new();
    for c in &config.clients {
        assert!(!c.client_id.is_empty() && c.client_id.bytes().all(vschar));
        assert!(
            ids.insert(c.client_id.as_str()),
            "client id registered twice"
        );
        // Certificate clients (RFC 8705) have no secret; a tls_client_auth client one
        // name, a self-signed one at least one registered certificate, and the
        // handshake asks for certificates.
        match c.auth_method {
            AuthMethod::TlsClientAuth => {
                assert!(c.secrets.is_empty() && c.tls_name.is_some());
                assert!(config
                    .tls
                    .client_auth
                    .as_ref()
                    .is_some_and(|a| !a.trust_anchors.is_empty()));
            }
            AuthMethod::SelfSignedTlsClientAuth => {
                assert!(c.secrets.is_empty() && !c.certificates.is_empty());
                assert!(config.tls.client_auth.is_some());
            }
            _ => {
                assert!(!c.secrets.is_empty());
                assert!(c.tls_name.is_none() && c.certificates.is_empty());
            }
        }
        for s in &c.secrets {
            match s {
                ClientSecret::Plain(s) => {
                    assert!(!s.is_empty() && s.expose().iter().copied().all(vschar));
                    if c.auth_method == AuthMethod::ClientSecretJwt {
                        assert!(s.len() >= MIN_HMAC_KEY_LEN, "short jwt secret accepted");
                    }
                }
                ClientSecret::Hashed(_) => assert!(
                    c.auth_method != AuthMethod::ClientSecretJwt,
                    "a jwt client with only a hash accepted"
                ),
            }
        }
    }
    let keys = &config.internal_header.keys;
    assert!(!keys.is_empty());
    let mut kids = HashSet::new();
    assert!(
        config.internal_header.signing_key().is_some(),
        "no key signs"
    );
    for k in keys {
        if let secretgate::config::KeyMaterial::Hmac(secret) = &k.material {
            assert!(
                secret.len() >= MIN_HMAC_KEY_LEN,
                "short signing key accepted"
            );
            assert!(!k.publish_only, "a publish_only HS256 key accepted");
        }
        assert!(kids.insert(k.id.as_str()), "key id used twice");
    }
});
