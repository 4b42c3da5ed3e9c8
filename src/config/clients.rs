//! Validation of `clients`: who may authenticate, with which method and which secrets.
//!
//! Rules: a client id is non-empty VSCHAR and unique (RFC 6749 Appendix A.1); exactly one
//! `auth_method` from the methods the gateway enforces; `algorithms` only on
//! client_secret_jwt clients; at least one secret, each VSCHAR (Appendix A.2), and for
//! client_secret_jwt at least as long as the HMAC key it is used as (RFC 7518 §3.2: the
//! hash output size of every algorithm the client may use) and never a hash (the secret
//! is the HMAC key itself, RFC 7523 §3). Basic and post clients may mix hashes and
//! secrets, for a migration window.
//!
//! Certificate clients (RFC 8705 §2) have no secret: a `tls_client_auth` client has
//! exactly one of the five names of RFC 8705 §2.1.2 and needs `tls.client_auth.ca_file`;
//! a `self_signed_tls_client_auth` client has `certificates` (files read now, registered
//! by the SHA-256 of their DER) and needs `tls.client_auth`. Neither key is accepted on
//! any other client.
//!
//! Public clients (`auth_method: none`, RFC 6749 §2.1) hold no credential: no `secrets`,
//! no certificate name, no `certificates`. `grant_types` (any client) restricts the
//! token endpoint's `grant_type`s; a public client defaults to the authorization code,
//! refresh token and device code grants, and may never have `client_credentials`
//! (RFC 6749 §4.4: confidential clients only).

use std::collections::HashSet;
use std::net::IpAddr;

use super::raw::{RawCertificateFile, RawClient, RawSecretSource};
use super::validate::Validator;
use super::{AssertionConfig, CertificateKind, ClientConfig, ClientSecret, MIN_HMAC_KEY_LEN};
use crate::error::error_chain;
use crate::oauth::{
    is_vschar, Algorithm, AuthMethod, ClientId, AUTHORIZATION_CODE, CLIENT_CREDENTIALS,
    DEVICE_CODE, JWT_BEARER, PASSWORD, PUBLIC_CLIENT_GRANTS, REFRESH_TOKEN, TOKEN_EXCHANGE,
};

/// Whether `name` can be a `grant_type`: a known one, or an absolute URI.
fn is_grant_type(name: &str) -> bool {
    KNOWN_GRANTS.contains(&name)
        || (name.contains(':') && name.bytes().all(|b| b.is_ascii_graphic()))
}

/// `grant_type` names accepted in `grant_types` without a `:`; anything else must be an
/// absolute URI (an extension grant, RFC 6749 §4.5), so a typo fails `check`.
const KNOWN_GRANTS: [&str; 7] = [
    AUTHORIZATION_CODE,
    REFRESH_TOKEN,
    CLIENT_CREDENTIALS,
    PASSWORD,
    DEVICE_CODE,
    JWT_BEARER,
    TOKEN_EXCHANGE,
];
use crate::x509::{CertificateName, DistinguishedName, Thumbprint};

/// What `tls.client_auth` gives clients: `None` (no certificates requested), `Some(false)`
/// (requested, no CA file), `Some(true)` (requested, with a CA file).
pub(super) type ClientAuthOffer = Option<bool>;

impl Validator<'_> {
    pub(super) fn clients(
        &mut self,
        raw: Option<Vec<RawClient>>,
        assertion: &AssertionConfig,
        offer: ClientAuthOffer,
    ) -> Vec<ClientConfig> {
        let raw = raw.unwrap_or_default();
        if raw.is_empty() {
            self.problem("clients", "register at least one client");
        }
        let mut seen = HashSet::new();
        raw.into_iter()
            .enumerate()
            .filter_map(|(i, c)| {
                self.client(c, &format!("clients[{i}]"), assertion, offer, &mut seen)
            })
            .collect()
    }

    fn client(
        &mut self,
        c: RawClient,
        path: &str,
        assertion: &AssertionConfig,
        offer: ClientAuthOffer,
        seen: &mut HashSet<String>,
    ) -> Option<ClientConfig> {
        let default_algs = &assertion.algorithms;
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
        // `algorithms`: HMAC names for client_secret_jwt, asymmetric ones for
        // private_key_jwt (RFC 8725 §3.1: the client's own allow-list).
        let private_key = method == Some(AuthMethod::PrivateKeyJwt);
        let mut asymmetric_algorithms = assertion.asymmetric_algorithms.clone();
        let algorithms = match c.algorithms {
            None => default_algs.to_vec(),
            Some(names) if private_key => {
                asymmetric_algorithms =
                    self.asymmetric_algorithms(names, &format!("{path}.algorithms"));
                default_algs.to_vec()
            }
            Some(names) => {
                if method.is_some() && method != Some(AuthMethod::ClientSecretJwt) {
                    self.problem(
                        format!("{path}.algorithms"),
                        "only client_secret_jwt and private_key_jwt clients take algorithms",
                    );
                }
                self.algorithms(names, &format!("{path}.algorithms"))
            }
        };
        let who = client_id.as_deref().unwrap_or("?");
        let names = vec![
            ("tls_client_auth_subject_dn", c.tls_client_auth_subject_dn),
            ("tls_client_auth_san_dns", c.tls_client_auth_san_dns),
            ("tls_client_auth_san_uri", c.tls_client_auth_san_uri),
            ("tls_client_auth_san_ip", c.tls_client_auth_san_ip),
            ("tls_client_auth_san_email", c.tls_client_auth_san_email),
        ];
        let tls_name = self.tls_name(names, path, method, offer);
        let certificates = self.registered_certificates(c.certificates, (path, who), method, offer);
        let secrets = if method.is_some_and(AuthMethod::uses_certificate) {
            if c.secrets.is_some() {
                self.problem(
                    format!("{path}.secrets"),
                    format!("client `{who}` authenticates with its TLS certificate and has no secret; remove `secrets`"),
                );
            }
            Vec::new()
        } else if private_key {
            // RFC 7523 §2.2: the client holds a private key; the gateway only its public
            // keys, never a secret.
            if c.secrets.is_some() {
                self.problem(
                    format!("{path}.secrets"),
                    format!("client `{who}` uses private_key_jwt: register its public keys (`jwks` or `jwks_uri`), not a secret"),
                );
            }
            Vec::new()
        } else if method == Some(AuthMethod::None) {
            // RFC 6749 §2.1: a public client holds no credential; a secret registered for
            // it would be one nobody checks.
            if c.secrets.is_some() {
                self.problem(
                    format!("{path}.secrets"),
                    format!("client `{who}` is public (auth_method: none) and has no secret; remove `secrets`, or register it as a confidential client"),
                );
            }
            Vec::new()
        } else {
            self.client_secrets(c.secrets, path, who, method, &algorithms)
        };
        let grant_types = self.grant_types(c.grant_types, path, who, method);
        let key_set = self.client_key_set(c.jwks, c.jwks_uri, path, who, method);
        Some(ClientConfig {
            client_id: ClientId::new(client_id?),
            auth_method: method?,
            algorithms,
            secrets,
            tls_name,
            certificates,
            grant_types,
            key_set,
            asymmetric_algorithms,
        })
    }

    /// `grant_types`: the grants the client may use at the token endpoint (`None`: any).
    fn grant_types(
        &mut self,
        raw: Option<Vec<String>>,
        path: &str,
        who: &str,
        method: Option<AuthMethod>,
    ) -> Option<Vec<String>> {
        let public = method == Some(AuthMethod::None);
        let Some(list) = raw else {
            return public.then(|| PUBLIC_CLIENT_GRANTS.map(str::to_owned).to_vec());
        };
        let key = format!("{path}.grant_types");
        if list.is_empty() {
            self.problem(&key, "list at least one grant type (or leave the key out)");
        }
        let mut out: Vec<String> = Vec::new();
        for (i, name) in list.into_iter().enumerate() {
            let entry = format!("{key}[{i}]");
            if out.contains(&name) {
                self.problem(entry, format!("`{name}` is listed twice"));
            } else if !is_grant_type(&name) {
                self.problem(
                    entry,
                    format!(
                        "`{name}` is not a grant type; use {} or an extension grant's absolute URI",
                        KNOWN_GRANTS.join(", ")
                    ),
                );
            } else if public && name == CLIENT_CREDENTIALS {
                // RFC 6749 §4.4: the client credentials grant needs a confidential client.
                self.problem(
                    entry,
                    format!("client `{who}` is public (auth_method: none): client_credentials needs a confidential client (RFC 6749 §4.4)"),
                );
            } else {
                out.push(name);
            }
        }
        Some(out)
    }

    /// The RFC 8705 §2.1.2 name of a `tls_client_auth` client: exactly one, parsed.
    fn tls_name(
        &mut self,
        names: Vec<(&'static str, Option<String>)>,
        path: &str,
        method: Option<AuthMethod>,
        offer: ClientAuthOffer,
    ) -> Option<CertificateName> {
        if method != Some(AuthMethod::TlsClientAuth) {
            for (key, value) in &names {
                if value.is_some() && method.is_some() {
                    self.problem(
                        format!("{path}.{key}"),
                        "only tls_client_auth clients are registered with a certificate name",
                    );
                }
            }
            return None;
        }
        if offer != Some(true) {
            self.problem(
                format!("{path}.auth_method"),
                "tls_client_auth needs `tls.client_auth.ca_file`: the CA its certificates are issued by",
            );
        }
        let (key, value) = self.exactly_one(path, names)?;
        let written = value.clone();
        let name = match key {
            "tls_client_auth_subject_dn" => DistinguishedName::parse(&value)
                .map(CertificateName::SubjectDn)
                .map_err(|e| e.to_string()),
            "tls_client_auth_san_dns" if !value.is_empty() && value.is_ascii() => {
                Ok(CertificateName::SanDns(value))
            }
            "tls_client_auth_san_dns" => Err("must be a non-empty ASCII host name".to_owned()),
            "tls_client_auth_san_uri" if !value.is_empty() => Ok(CertificateName::SanUri(value)),
            "tls_client_auth_san_uri" => Err("must not be empty".to_owned()),
            "tls_client_auth_san_ip" => value
                .parse::<IpAddr>()
                .map(CertificateName::SanIp)
                .map_err(|_| format!("`{value}` is not an IPv4 or IPv6 address")),
            _ if value
                .rsplit_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty()) =>
            {
                Ok(CertificateName::SanEmail(value))
            }
            _ => Err("must be an e-mail address (local@domain)".to_owned()),
        };
        if let Ok(CertificateName::SubjectDn(dn)) = &name {
            if dn.looks_most_general_first() {
                self.warnings.push(format!(
                    "{path}.{key}: `{written}` is written most general first, as `openssl x509 -subject` prints it; RFC 4514 (and this key) writes the most specific RDN first (`CN=…,O=…,C=…`), so this only matches a certificate whose subject is stored in reverse. Print the subject with `openssl x509 -noout -subject -nameopt RFC2253`"
                ));
            }
        }
        name.map_err(|message| self.problem(format!("{path}.{key}"), message))
            .ok()
    }

    /// The registered certificates of a `self_signed_tls_client_auth` client.
    fn registered_certificates(
        &mut self,
        raw: Option<Vec<RawCertificateFile>>,
        (path, who): (&str, &str),
        method: Option<AuthMethod>,
        offer: ClientAuthOffer,
    ) -> Vec<Thumbprint> {
        let key = format!("{path}.certificates");
        if method != Some(AuthMethod::SelfSignedTlsClientAuth) {
            if raw.is_some() && method.is_some() {
                self.problem(
                    key,
                    "only self_signed_tls_client_auth clients are registered with certificates",
                );
            }
            return Vec::new();
        }
        if offer.is_none() {
            self.problem(
                format!("{path}.auth_method"),
                "self_signed_tls_client_auth needs `tls.client_auth` (client certificates are requested only when it is set; `client_auth: {}` is enough)",
            );
        }
        let raw = self.required(raw, &key).unwrap_or_default();
        let mut out = Vec::new();
        for (i, entry) in raw.into_iter().enumerate() {
            let entry_path = format!("{key}[{i}].file");
            let Some(file) = self.file_path(entry.file, &entry_path) else {
                continue;
            };
            let pem = match self.read(&file) {
                Ok(pem) => pem,
                Err(e) => {
                    self.problem(entry_path, format!("cannot read {}: {e}", file.display()));
                    continue;
                }
            };
            match crate::tls::certificates_from_pem(&pem, &file) {
                Ok(certs) => {
                    out.extend(certs.iter().map(|der| Thumbprint::of(der)));
                    let ders = certs.iter().map(|c| &c[..]);
                    self.note_expiry(CertificateKind::ClientCertificate, Some(who), ders);
                }
                Err(e) => self.problem(entry_path, error_chain(&e)),
            }
        }
        if out.is_empty() && !self.has_problem_under(&key) {
            self.problem(key, "list at least one certificate");
        }
        out
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
            let Some(secret) = self.client_secret(s, &spath, who) else {
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    /// A stored hash over a cost ceiling (docs/design.md §2.7) is a problem at its key
    /// path that names the client and the ceiling; one at the ceilings is none.
    #[test]
    fn hash_ceilings_are_config_errors_naming_the_client() {
        const SALT_AND_HASH: &str = "c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        // A cost-10 bcrypt hash of "s3cret-value", its cost rewritten: parsing never
        // verifies.
        const BCRYPT_15: &str = "$2b$15$yxVQTuuDFvhJQOI6sxOGQ.Mj8tCfMg8HzzCJNEUK4NAkpwuFJ4YOy";
        let yaml = format!(
            r#"clients:
  - client_id: billing
    auth_method: client_secret_basic
    secrets: [{{ hash: "$argon2id$v=19$m=262145,t=2,p=1${SALT_AND_HASH}" }}]
  - client_id: reports
    auth_method: client_secret_post
    secrets: [{{ value: "plain-secret" }}, {{ hash: "{BCRYPT_15}" }}]
  - client_id: ledger
    auth_method: client_secret_basic
    secrets: [{{ hash: "$pbkdf2-sha256$i=5000001,l=32${SALT_AND_HASH}" }}]
  - client_id: at-the-ceilings
    auth_method: client_secret_basic
    secrets: [{{ hash: "$argon2id$v=19$m=262144,t=10,p=16${SALT_AND_HASH}" }}]
"#
        );
        let problems = Config::from_yaml(&yaml, Path::new("/nonexistent"))
            .unwrap_err()
            .problems();
        let at = |path: &str| -> Vec<&String> {
            problems.iter().filter(|p| p.starts_with(path)).collect()
        };
        for (path, client, ceiling) in [
            ("clients[0].secrets[0].hash: ", "billing", "m ≤ 262144 KiB"),
            ("clients[1].secrets[1].hash: ", "reports", "ceiling of 14"),
            (
                "clients[2].secrets[0].hash: ",
                "ledger",
                "ceiling of 5000000",
            ),
        ] {
            let found = at(path);
            assert_eq!(found.len(), 1, "{path} in {problems:#?}");
            assert!(
                found[0].starts_with(&format!("{path}client `{client}`: ")),
                "{}",
                found[0]
            );
            assert!(found[0].contains(ceiling), "{}", found[0]);
        }
        assert!(at("clients[3]").is_empty(), "{problems:#?}");
        assert!(at("clients[1].secrets[0]").is_empty(), "{problems:#?}");
    }
}
