//! Validation of what `private_key_jwt` (RFC 7523 §2.2) needs: each client's public keys
//! (`jwks` or `jwks_uri`, exactly one), the algorithm allow-lists
//! (`assertion.asymmetric_algorithms`, `clients[].algorithms`), and `jwks_fetch`.
//!
//! A `jwks` set is read now (`file`, `env`, or inline `value` holding the JSON): every key
//! must be a public signature key of a supported type (RSA ≥ 2048 bits, P-256, Ed25519),
//! with a unique `kid`; one bad key refuses the config, naming the key. A `jwks_uri` must
//! be `https://` (the keys decide who the client is: they must come from whom they
//! claim). Public keys are not secrets: an inline `value` is fine.

use std::sync::Arc;
use std::time::Duration;

use super::raw::{RawJwks, RawJwksFetch, RawSecretSource};
use super::validate::Validator;
use super::{ClientKeySet, JwksFetchConfig};
use crate::oauth::{AsymmetricAlgorithm, AuthMethod};

/// The asymmetric algorithms a `private_key_jwt` client may use unless told otherwise
/// (FAPI 2.0 §5.4.1 allows PS256, ES256 and EdDSA; RS256 is what most libraries send).
pub(super) const DEFAULT_ASYMMETRIC: [AsymmetricAlgorithm; 4] = AsymmetricAlgorithm::ALL;

impl Validator<'_> {
    /// An allow-list of asymmetric algorithm names.
    pub(super) fn asymmetric_algorithms(
        &mut self,
        names: Vec<String>,
        path: &str,
    ) -> Vec<AsymmetricAlgorithm> {
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            match AsymmetricAlgorithm::from_name(name) {
                Some(alg) if !out.contains(&alg) => out.push(alg),
                Some(_) => self.problem(
                    format!("{path}[{i}]"),
                    format!("`{name}` is listed twice (EdDSA and Ed25519 are one algorithm)"),
                ),
                None => self.problem(
                    format!("{path}[{i}]"),
                    format!("`{name}` is not supported; use RS256, PS256, ES256 or EdDSA"),
                ),
            }
        }
        if names.is_empty() {
            self.problem(path, "list at least one algorithm");
        }
        out
    }

    /// A client's `jwks` / `jwks_uri`: required (exactly one) for `private_key_jwt`,
    /// refused on any other client.
    pub(super) fn client_key_set(
        &mut self,
        jwks: Option<RawJwks>,
        jwks_uri: Option<String>,
        path: &str,
        who: &str,
        method: Option<AuthMethod>,
    ) -> Option<ClientKeySet> {
        if method != Some(AuthMethod::PrivateKeyJwt) {
            if method.is_some() {
                for (key, given) in [("jwks", jwks.is_some()), ("jwks_uri", jwks_uri.is_some())] {
                    if given {
                        self.problem(
                            format!("{path}.{key}"),
                            "only private_key_jwt clients are registered with public keys",
                        );
                    }
                }
            }
            return None;
        }
        let (key, _) = self.exactly_one(
            path,
            vec![
                ("jwks", jwks.as_ref().map(|_| ())),
                ("jwks_uri", jwks_uri.as_ref().map(|_| ())),
            ],
        )?;
        if key == "jwks_uri" {
            let uri = jwks_uri?;
            return match uri.parse::<http::Uri>() {
                // The keys say who the client is: fetched only over TLS, from the named host.
                Ok(u) if u.scheme_str() == Some("https") && u.host().is_some() => {
                    Some(ClientKeySet::Uri(uri))
                }
                _ => {
                    self.problem(
                        format!("{path}.jwks_uri"),
                        format!("`{uri}` is not an https:// URL (the keys must come over TLS)"),
                    );
                    None
                }
            };
        }
        let raw = jwks?;
        let bytes = self.public_material(
            RawSecretSource {
                file: raw.file,
                env: raw.env,
                value: raw.value,
                hash: None,
                hash_file: None,
            },
            &format!("{path}.jwks"),
        )?;
        let keys = match secretgate_verify::jwk::parse_set(&bytes) {
            Ok(keys) => keys,
            Err(e) => {
                self.problem(format!("{path}.jwks"), e.to_string());
                return None;
            }
        };
        let mut out = Vec::new();
        for (i, key) in keys.into_iter().enumerate() {
            match key {
                Ok(k) => out.push(k),
                Err(e) => self.problem(
                    format!("{path}.jwks"),
                    format!("client `{who}`: key {i}: {e}"),
                ),
            }
        }
        if out.is_empty() && !self.has_problem_under(&format!("{path}.jwks")) {
            self.problem(format!("{path}.jwks"), "the set has no key");
        }
        Some(ClientKeySet::Static(Arc::new(out)))
    }

    /// `jwks_fetch`.
    pub(super) fn jwks_fetch(&mut self, raw: RawJwksFetch) -> JwksFetchConfig {
        let ca_pem = raw.ca_file.and_then(|f| {
            let path = self.base_dir.join(&f);
            match self.read(&path) {
                Ok(pem) => match crate::tls::certificates_from_pem(&pem, &path) {
                    Ok(_) => Some(pem),
                    Err(e) => {
                        self.problem("jwks_fetch.ca_file", crate::error::error_chain(&e));
                        None
                    }
                },
                Err(e) => {
                    self.problem(
                        "jwks_fetch.ca_file",
                        format!("cannot read {}: {e}", path.display()),
                    );
                    None
                }
            }
        });
        let secs = Duration::from_secs;
        let timeout = self.duration(raw.timeout, "jwks_fetch.timeout", secs(2));
        let refresh = self.duration(raw.refresh, "jwks_fetch.refresh", secs(300));
        let min_refetch_interval = self.duration(
            raw.min_refetch_interval,
            "jwks_fetch.min_refetch_interval",
            secs(30),
        );
        for (key, value, min) in [
            ("jwks_fetch.timeout", timeout, Duration::from_millis(1)),
            ("jwks_fetch.refresh", refresh, secs(1)),
        ] {
            if value < min {
                self.problem(key, "must be greater than zero");
            }
        }
        let max_size = self.size(raw.max_size, "jwks_fetch.max_size", 64 * 1024, 1);
        JwksFetchConfig {
            ca_pem,
            timeout,
            refresh,
            min_refetch_interval,
            max_size,
        }
    }
}
