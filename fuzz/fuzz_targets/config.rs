//! Config YAML → `Config::from_yaml`, what `run`, `check` and every reload go through.
//! Relative file names resolve in `fuzz/target/config-fixture`, holding a valid certificate
//! (`tls.crt`, `tls.key`), a signing key (`k1.key`) and a client secret (`s1`), so that the
//! seeds in `fuzz/seeds/config` validate completely and mutations reach every check.
//! Checks: never panics; an invalid config reports at least one problem; a valid one has the
//! properties validation promises (docs/design.md §2, §5, §6): at least one protected path, at
//! least one client, unique VSCHAR client ids, each with at least one VSCHAR secret,
//! `client_secret_jwt` secrets of at least 32 bytes, at least one internal-header key, every
//! key at least 32 bytes with a unique id.
//! Inputs that could name device or proc files (`dev`, `proc`, `sys`, `run`) or spell names
//! with YAML escapes (`\`) are skipped: `file: /dev/zero` would make the run hang, not the
//! code under test.
#![no_main]
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use secretgate::config::{ClientSecret, ConfigError, MIN_HMAC_KEY_LEN};
use secretgate::oauth::AuthMethod;
use secretgate::Config;

fn base_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Under the (git-ignored) target directory; made once, shared by later runs.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/config-fixture");
        if !dir.join("s1").exists() {
            std::fs::create_dir_all(&dir).expect("fixture dir");
            let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
                .expect("self-signed certificate");
            let files = [
                ("tls.crt", cert.cert.pem().into_bytes()),
                ("tls.key", cert.signing_key.serialize_pem().into_bytes()),
                ("k1.key", vec![b'k'; 32]),
                ("s1", b"client-secret-from-a-file-0123456789\n".to_vec()),
            ];
            // Write-then-rename, so parallel jobs never read a half-written file.
            for (name, bytes) in files {
                let tmp = dir.join(format!("{name}.{}", std::process::id()));
                std::fs::write(&tmp, bytes).expect("write fixture");
                std::fs::rename(&tmp, dir.join(name)).expect("rename fixture");
            }
        }
        dir
    })
}

fn vschar(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if ["dev", "proc", "sys", "run", "\\"]
        .iter()
        .any(|s| text.contains(s))
    {
        return;
    }
    let config = match Config::from_yaml(text, base_dir()) {
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
