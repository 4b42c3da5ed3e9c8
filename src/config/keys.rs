//! Validation of `internal_header`: the header's name, claims and lifetime, and the keys
//! it is signed with (docs/design.md §5.3).
//!
//! Each key has an `id` (the `kid`: letters, digits, `-_.`, unique) and an `algorithm`:
//! `HS256` (default; a shared key of at least 32 bytes, RFC 7518 §3.2), `ES256` (a P-256
//! PKCS#8 PEM private key) or `EdDSA` (an Ed25519 one). A key that does not fit its
//! algorithm is a problem naming it. `publish_only` keys are published in the JWK Set
//! but never sign (to publish the next key before rotating to it); the first other key
//! signs, and there must be one. HS256 keys are never published, so they cannot be
//! `publish_only`. `jwks_file` names where the public keys are also written.

use std::collections::HashSet;
use std::sync::Arc;

use http::header::HeaderName;

use super::raw::{RawInternalHeader, RawKey, RawSecretSource};
use super::validate::Validator;
use super::{InternalHeaderConfig, KeyMaterial, SigningKey, MIN_HMAC_KEY_LEN};
use crate::keys::PrivateKey;
use crate::oauth::AsymmetricAlgorithm;

fn is_kid_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// `algorithm` of an internal-header key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyAlgorithm {
    Hs256,
    Asymmetric(AsymmetricAlgorithm),
}

fn secs(n: u64) -> std::time::Duration {
    std::time::Duration::from_secs(n)
}

impl Validator<'_> {
    pub(super) fn internal_header(
        &mut self,
        raw: Option<RawInternalHeader>,
    ) -> Option<InternalHeaderConfig> {
        let raw = self.required(raw, "internal_header").unwrap_or_default();
        let name_text = raw
            .name
            .unwrap_or_else(|| "x-authenticated-client".to_owned());
        let name = HeaderName::from_bytes(name_text.as_bytes())
            .map_err(|_| {
                self.problem(
                    "internal_header.name",
                    format!("`{name_text}` is not a header name"),
                )
            })
            .ok();
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
            if let Some(k) = self.signing_key(key, &path, &mut ids) {
                keys.push(k);
            }
        }
        if keys.is_empty() && !self.has_problem_under("internal_header.keys") {
            self.problem("internal_header.keys", "list at least one key");
        } else if !keys.is_empty() && keys.iter().all(|k| k.publish_only) {
            self.problem(
                "internal_header.keys",
                "every key is publish_only: one must sign (the first without publish_only does)",
            );
        }
        let jwks_file = raw.jwks_file.and_then(|f| {
            let path = self.base_dir.join(&f);
            // Written after each (re)load: the directory must exist now.
            match path.parent() {
                Some(dir) if self.files.is_dir(dir) => Some(path),
                _ => {
                    self.problem(
                        "internal_header.jwks_file",
                        format!("no such directory for {}", path.display()),
                    );
                    None
                }
            }
        });
        Some(InternalHeaderConfig {
            name: name?,
            issuer,
            audience,
            ttl,
            keys,
            jwks_file,
        })
    }

    fn signing_key(
        &mut self,
        raw: RawKey,
        path: &str,
        ids: &mut HashSet<String>,
    ) -> Option<SigningKey> {
        let id = match raw.id {
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
        let algorithm = match raw.algorithm.as_deref() {
            None | Some("HS256") => Some(KeyAlgorithm::Hs256),
            Some(name @ ("ES256" | "EdDSA")) => {
                AsymmetricAlgorithm::from_name(name).map(KeyAlgorithm::Asymmetric)
            }
            Some(other) => {
                self.problem(
                    format!("{path}.algorithm"),
                    format!("`{other}` is not one of: HS256, ES256, EdDSA"),
                );
                None
            }
        };
        let publish_only = raw.publish_only.unwrap_or(false);
        if publish_only && algorithm == Some(KeyAlgorithm::Hs256) {
            self.problem(
                format!("{path}.publish_only"),
                "HS256 keys are shared, never published; to rotate, list the next key after the signing one",
            );
        }
        let source = RawSecretSource {
            hash: None,
            hash_file: None,
            file: raw.file,
            env: raw.env,
            value: raw.value,
        };
        let secret = self.secret(source, path)?;
        let who = id.as_deref().unwrap_or("?");
        let material = match algorithm? {
            KeyAlgorithm::Hs256 => {
                // RFC 7518 §3.2: an HS256 key of at least the hash output size.
                if secret.len() < MIN_HMAC_KEY_LEN {
                    self.problem(
                        path,
                        format!(
                            "key is {} bytes; HS256 needs at least {MIN_HMAC_KEY_LEN}",
                            secret.len()
                        ),
                    );
                }
                KeyMaterial::Hmac(secret)
            }
            KeyAlgorithm::Asymmetric(alg) => {
                match PrivateKey::for_algorithm(secret.expose(), alg) {
                    Ok(key) => KeyMaterial::Private {
                        alg,
                        key: Arc::new(key),
                    },
                    Err(e) => {
                        self.problem(path, format!("key `{who}` ({}): {e}", alg.name()));
                        return None;
                    }
                }
            }
        };
        Some(SigningKey {
            id: id?,
            material,
            publish_only,
        })
    }
}
