//! Validation of `clients`: who may authenticate, with which method and which secrets.
//!
//! Rules: a client id is non-empty VSCHAR and unique (RFC 6749 Appendix A.1); exactly one
//! `auth_method` from the methods the gateway enforces; `algorithms` only on
//! client_secret_jwt clients; at least one secret, each VSCHAR (Appendix A.2), and for
//! client_secret_jwt at least as long as the HMAC key it is used as (RFC 7518 §3.2: the
//! hash output size of every algorithm the client may use) and never a hash (the secret
//! is the HMAC key itself, RFC 7523 §3). Basic and post clients may mix hashes and
//! secrets, for a migration window.

use std::collections::HashSet;

use super::raw::{RawClient, RawSecretSource};
use super::validate::Validator;
use super::{ClientConfig, ClientSecret, MIN_HMAC_KEY_LEN};
use crate::oauth::{is_vschar, Algorithm, AuthMethod, ClientId};

impl Validator<'_> {
    pub(super) fn clients(
        &mut self,
        raw: Option<Vec<RawClient>>,
        default_algs: &[Algorithm],
    ) -> Vec<ClientConfig> {
        let raw = raw.unwrap_or_default();
        if raw.is_empty() {
            self.problem("clients", "register at least one client");
        }
        let mut seen = HashSet::new();
        raw.into_iter()
            .enumerate()
            .filter_map(|(i, c)| self.client(c, &format!("clients[{i}]"), default_algs, &mut seen))
            .collect()
    }

    fn client(
        &mut self,
        c: RawClient,
        path: &str,
        default_algs: &[Algorithm],
        seen: &mut HashSet<String>,
    ) -> Option<ClientConfig> {
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
        let methods: Vec<(&str, AuthMethod)> =
            AuthMethod::ALL.iter().map(|m| (m.as_str(), *m)).collect();
        let method = self
            .required(c.auth_method, &format!("{path}.auth_method"))
            .and_then(|m| {
                let found = methods.iter().find(|(n, _)| *n == m).map(|(_, v)| *v);
                if found.is_none() {
                    let names: Vec<&str> = methods.iter().map(|(n, _)| *n).collect();
                    self.problem(
                        format!("{path}.auth_method"),
                        format!("`{m}` is not one of: {}", names.join(", ")),
                    );
                }
                found
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
        let who = client_id.as_deref().unwrap_or("?");
        let secrets = self.client_secrets(c.secrets, path, who, method, &algorithms);
        Some(ClientConfig {
            client_id: ClientId::new(client_id?),
            auth_method: method?,
            algorithms,
            secrets,
        })
    }

    fn client_secrets(
        &mut self,
        raw: Option<Vec<RawSecretSource>>,
        path: &str,
        who: &str,
        method: Option<AuthMethod>,
        algorithms: &[Algorithm],
    ) -> Vec<ClientSecret> {
        let raw = self
            .required(raw, &format!("{path}.secrets"))
            .unwrap_or_default();
        // RFC 7518 §3.2: an HMAC key at least as long as the hash output.
        let min_key = algorithms
            .iter()
            .map(|a| match a {
                Algorithm::Hs256 => MIN_HMAC_KEY_LEN,
                Algorithm::Hs384 => 48,
                Algorithm::Hs512 => 64,
            })
            .max()
            .unwrap_or(MIN_HMAC_KEY_LEN);
        let mut secrets = Vec::new();
        for (j, s) in raw.into_iter().enumerate() {
            let spath = format!("{path}.secrets[{j}]");
            let Some(secret) = self.client_secret(s, &spath) else {
                continue;
            };
            match (&secret, method) {
                (ClientSecret::Hashed(_), Some(AuthMethod::ClientSecretJwt)) => self.problem(
                    spath.clone(),
                    format!(
                        "client `{who}` uses client_secret_jwt, which needs the secret itself: it is the HMAC key of its assertions (RFC 7523 §3); give `file`, `env` or `value`"
                    ),
                ),
                (ClientSecret::Hashed(_), _) => {}
                (ClientSecret::Plain(plain), _) => {
                    // RFC 6749 Appendix A.2: client-secret = *VSCHAR.
                    if !plain.expose().iter().copied().all(is_vschar) {
                        self.problem(
                            spath.clone(),
                            "secret must be visible ASCII (VSCHAR), per RFC 6749 Appendix A.2",
                        );
                    }
                    if method == Some(AuthMethod::ClientSecretJwt) && plain.len() < min_key {
                        self.problem(
                            spath.clone(),
                            format!(
                                "client `{who}` uses client_secret_jwt and its secret is {} bytes; HMAC keys for {} need at least {min_key} (RFC 7518 §3.2)",
                                plain.len(),
                                algorithms.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
                            ),
                        );
                    }
                }
            }
            secrets.push(secret);
        }
        let secrets_path = format!("{path}.secrets");
        if secrets.is_empty() && !self.has_problem_under(&secrets_path) {
            self.problem(secrets_path, "list at least one secret");
        }
        secrets
    }
}
