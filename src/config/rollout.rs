//! Validation of the rollout keys (docs/design.md §10): `rollout` (enforce or shadow),
//! `rate_limit` (a token bucket per client) and, per client, `upstream_credential` (the
//! legacy secret the gateway presents upstream for a client that authenticated).
//!
//! The top-level `rollout` and `rate_limit` are defaults; a client's own key wins, and
//! `rate_limit: off` turns the default off for one client. Each client's settings are
//! resolved here, once, into a [`ClientRollout`], so the request path never merges them.
//! Rules: a client with `upstream_credential` must be enforced (in shadow its own
//! credential goes upstream as sent, and the gateway must never add the legacy secret to a
//! request that did not authenticate); a rate limit needs `requests ≥ 1` and `per > 0`.
//! While any client is in shadow, a warning says so at every load (`check`, start,
//! reload), naming the clients.

use std::collections::HashMap;
use std::time::Duration;

use serde::de::{self, MapAccess, Visitor};
use serde::Deserialize;

use super::raw::{RawClient, RawSecretSource};
use super::units::parse_duration;
use super::validate::Validator;
use super::ClientConfig;
use crate::oauth::ClientId;
use crate::secret::Secret;

/// `rollout`: whether the gateway's verdict is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    /// Refuse what fails; forward only what authenticated, without its credential.
    Enforce,
    /// Judge and record, then forward the request as the client sent it.
    Shadow,
}

/// `rate_limit`: a token bucket of `requests + burst` tokens, refilled at `requests` per
/// `per`; one token per successful authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub requests: u32,
    pub per: Duration,
    pub burst: u32,
}

impl RateLimitConfig {
    /// Tokens the bucket holds when full.
    pub fn capacity(&self) -> u64 {
        u64::from(self.requests) + u64::from(self.burst)
    }
}

/// How the upstream credential is presented (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamMethod {
    /// `Authorization: Basic base64(urlencode(client_id) ":" urlencode(secret))`.
    ClientSecretBasic,
    /// `client_secret` (and `client_id`) in the forwarded form body.
    ClientSecretPost,
}

/// `clients[].upstream_credential`. `Debug` prints the secret as `***`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamCredentialConfig {
    pub method: UpstreamMethod,
    pub secret: Secret,
}

/// One client's resolved rollout settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRollout {
    pub mode: Rollout,
    /// `None`: not limited.
    pub rate_limit: Option<RateLimitConfig>,
    pub upstream_credential: Option<UpstreamCredentialConfig>,
}

/// The rollout section of a config: the defaults, and every registered client's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutConfig {
    /// `rollout` at the top level: for clients without their own, and for requests that
    /// name no registered client.
    pub default_mode: Rollout,
    /// `rate_limit` at the top level.
    pub default_rate_limit: Option<RateLimitConfig>,
    pub clients: HashMap<ClientId, ClientRollout>,
}

impl RolloutConfig {
    /// Everything enforced, nothing limited.
    pub fn enforce_all() -> RolloutConfig {
        RolloutConfig {
            default_mode: Rollout::Enforce,
            default_rate_limit: None,
            clients: HashMap::new(),
        }
    }

    /// The settings of a registered client.
    pub fn client(&self, id: &str) -> Option<&ClientRollout> {
        self.clients.get(id)
    }

    /// Whether any request at all can be in shadow.
    pub fn any_shadow(&self) -> bool {
        self.default_mode == Rollout::Shadow
            || self.clients.values().any(|c| c.mode == Rollout::Shadow)
    }

    /// Whether every request is in shadow, whichever client it names.
    pub fn all_shadow(&self) -> bool {
        self.default_mode == Rollout::Shadow
            && self.clients.values().all(|c| c.mode == Rollout::Shadow)
    }
}

/// `rate_limit` as written: a mapping, or `off` (per client: no limit for it).
#[derive(Debug)]
pub(super) enum RawRateLimit {
    Off,
    /// Any other word, reported by validation.
    Word(String),
    Limit(RawRateLimitTable),
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimitTable {
    pub requests: Option<u64>,
    pub per: Option<String>,
    pub burst: Option<u64>,
}

impl<'de> Deserialize<'de> for RawRateLimit {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawRateLimit;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`off` or a mapping `{ requests, per, burst }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawRateLimit, E> {
                Ok(if v == "off" {
                    RawRateLimit::Off
                } else {
                    RawRateLimit::Word(v.to_owned())
                })
            }
            // YAML 1.1 readers take `off` for false.
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawRateLimit, E> {
                Ok(if v {
                    RawRateLimit::Word("true".to_owned())
                } else {
                    RawRateLimit::Off
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawRateLimit, A::Error> {
                RawRateLimitTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawRateLimit::Limit)
            }
        }
        d.deserialize_any(V)
    }
}

/// `clients[].upstream_credential` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstreamCredential {
    pub method: Option<String>,
    pub secret: Option<RawSecretSource>,
}

/// A client's rollout keys, taken out of its raw entry before the registry is validated.
#[derive(Debug, Default)]
pub(super) struct RawClientRollout {
    pub rollout: Option<String>,
    pub rate_limit: Option<RawRateLimit>,
    pub upstream_credential: Option<RawUpstreamCredential>,
}

/// Takes every client's rollout keys out of its raw entry, with its id, in file order.
pub(super) fn take_client_rollouts(
    clients: &mut Option<Vec<RawClient>>,
) -> Vec<(Option<String>, RawClientRollout)> {
    clients
        .iter_mut()
        .flatten()
        .map(|c| {
            let raw = RawClientRollout {
                rollout: c.rollout.take(),
                rate_limit: c.rate_limit.take(),
                upstream_credential: c.upstream_credential.take(),
            };
            (c.client_id.clone(), raw)
        })
        .collect()
}

const MODES: [(&str, Rollout); 2] = [("enforce", Rollout::Enforce), ("shadow", Rollout::Shadow)];

impl Validator<'_> {
    /// The rollout section: the top-level defaults, and each client's settings
    /// (`raw_clients[i]` belongs to `clients[i]` of the file, `clients` are those that
    /// validated).
    pub(super) fn rollout(
        &mut self,
        mode: Option<String>,
        rate_limit: Option<RawRateLimit>,
        raw_clients: Vec<(Option<String>, RawClientRollout)>,
        clients: &[ClientConfig],
    ) -> RolloutConfig {
        let default_mode = self.choice(mode, "rollout", &MODES, Rollout::Enforce);
        let default_rate_limit = match rate_limit {
            None => None,
            Some(RawRateLimit::Off) => {
                self.problem(
                    "rate_limit",
                    "`off` is for one client; leave the top-level key out for no default limit",
                );
                None
            }
            Some(raw) => self.rate_limit(raw, "rate_limit"),
        };
        let mut out = RolloutConfig {
            default_mode,
            default_rate_limit,
            clients: HashMap::new(),
        };
        for (i, (id, raw)) in raw_clients.into_iter().enumerate() {
            let path = format!("clients[{i}]");
            let mode = self.choice(
                raw.rollout,
                &format!("{path}.rollout"),
                &MODES,
                default_mode,
            );
            let rate_limit = match raw.rate_limit {
                None => default_rate_limit,
                Some(RawRateLimit::Off) => None,
                Some(raw) => self.rate_limit(raw, &format!("{path}.rate_limit")),
            };
            let who = id.as_deref().unwrap_or("?");
            let client = clients
                .iter()
                .find(|c| Some(c.client_id.as_str()) == id.as_deref());
            let public = client.is_some_and(|c| c.auth_method.is_public());
            let upstream_credential = raw
                .upstream_credential
                .and_then(|c| self.upstream_credential(c, &path, who, mode, public));
            // Clients that failed validation are reported there; keep only the others.
            let Some(client) = client else {
                continue;
            };
            out.clients.insert(
                client.client_id.clone(),
                ClientRollout {
                    mode,
                    rate_limit,
                    upstream_credential,
                },
            );
        }
        self.shadow_warning(&out);
        out
    }

    /// Loud, at every load: what shadow means for the clients in it.
    fn shadow_warning(&mut self, rollout: &RolloutConfig) {
        if !rollout.any_shadow() {
            return;
        }
        let mut shadow: Vec<&str> = rollout
            .clients
            .iter()
            .filter(|(_, c)| c.mode == Rollout::Shadow)
            .map(|(id, _)| id.as_str())
            .collect();
        shadow.sort_unstable();
        let unknown = if rollout.default_mode == Rollout::Shadow {
            " and requests naming no registered client"
        } else {
            ""
        };
        self.warnings.push(format!(
            "SHADOW MODE (rollout: shadow): NOT ENFORCED for {} client(s) [{}]{unknown}: their \
             requests are judged and counted (secretgate_shadow_decisions_total), then \
             forwarded as sent, credentials included, even when authentication fails; the \
             token service must still authenticate them itself",
            shadow.len(),
            shadow.join(", "),
        ));
    }

    fn rate_limit(&mut self, raw: RawRateLimit, path: &str) -> Option<RateLimitConfig> {
        let table = match raw {
            RawRateLimit::Limit(t) => t,
            RawRateLimit::Off => return None,
            RawRateLimit::Word(w) => {
                self.problem(
                    path,
                    format!("`{w}` is not `off` or a mapping `{{ requests, per, burst }}`"),
                );
                return None;
            }
        };
        let requests = self.required(table.requests, &format!("{path}.requests"));
        let per = self.parsed(table.per, &format!("{path}.per"), parse_duration);
        let burst = table.burst.unwrap_or(0);
        let mut ok = true;
        let requests = requests.and_then(|n| match u32::try_from(n) {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                self.problem(
                    format!("{path}.requests"),
                    "must be between 1 and 4294967295",
                );
                None
            }
        });
        let burst = u32::try_from(burst).unwrap_or_else(|_| {
            self.problem(format!("{path}.burst"), "must be at most 4294967295");
            ok = false;
            0
        });
        if per.is_some_and(|p| p.is_zero()) {
            self.problem(format!("{path}.per"), "must be greater than zero");
            ok = false;
        }
        Some(RateLimitConfig {
            requests: requests?,
            per: per?,
            burst,
        })
        .filter(|_| ok)
    }

    fn upstream_credential(
        &mut self,
        raw: RawUpstreamCredential,
        path: &str,
        who: &str,
        mode: Rollout,
        public: bool,
    ) -> Option<UpstreamCredentialConfig> {
        let key = format!("{path}.upstream_credential");
        let method = self
            .required(raw.method, &format!("{key}.method"))
            .and_then(|m| {
                let options = [
                    ("client_secret_basic", UpstreamMethod::ClientSecretBasic),
                    ("client_secret_post", UpstreamMethod::ClientSecretPost),
                ];
                let found = options.iter().find(|(n, _)| *n == m).map(|(_, v)| *v);
                if found.is_none() {
                    self.problem(
                        format!("{key}.method"),
                        format!("`{m}` is not one of: client_secret_basic, client_secret_post"),
                    );
                }
                found
            });
        let secret = self
            .required(raw.secret, &format!("{key}.secret"))
            .and_then(|s| self.secret(s, &format!("{key}.secret")));
        if secret
            .as_ref()
            .is_some_and(|s| std::str::from_utf8(s.expose()).is_err())
        {
            self.problem(format!("{key}.secret"), "must be UTF-8 text");
        }
        if public {
            // A public client proves nothing (RFC 6749 §2.1): the legacy secret would
            // authenticate anyone who names it.
            self.problem(
                &key,
                format!(
                    "client `{who}` is public (auth_method: none): it proves nothing, so an \
                     upstream credential would let anyone who names it act as `{who}` upstream"
                ),
            );
        }
        if mode == Rollout::Shadow {
            // In shadow the client's own credential goes upstream as sent; the legacy
            // secret must never be added to a request the gateway did not authenticate.
            self.problem(
                &key,
                format!(
                    "client `{who}` is in shadow (rollout: shadow, its own or the default): an \
                     upstream credential needs `rollout: enforce` on this client"
                ),
            );
        }
        Some(UpstreamCredentialConfig {
            method: method?,
            secret: secret?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::{Config, MemoryFiles};

    const BASE: &str = r#"
listen: "127.0.0.1:8443"
tls: { cert_file: /c/tls.crt, key_file: /c/tls.key }
upstream: { url: "http://127.0.0.1:9" }
public_url: "https://auth.example.com"
issuer: "https://auth.example.com"
internal_header: { keys: [{ id: k1, value: "internal-signing-key-0123456789abcdef" }] }
"#;

    fn problems(yaml: &str) -> Vec<String> {
        let files = MemoryFiles::new().with("/c/legacy", "legacy-secret\n");
        match Config::from_yaml_in(&format!("{BASE}{yaml}"), Path::new("/c"), &files) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .problems()
                .into_iter()
                .filter(|p| !p.starts_with("tls"))
                .collect(),
        }
    }

    #[test]
    fn each_bad_key_is_named() {
        let p = problems(
            r#"
rollout: audit
rate_limit: { requests: 0, per: 0s }
clients:
  - client_id: a
    auth_method: client_secret_basic
    secrets: [{ value: "a-secret" }]
    rollout: shadow
    rate_limit: sometimes
    upstream_credential: { method: client_secret_jwt, secret: { file: legacy } }
  - client_id: b
    auth_method: client_secret_basic
    secrets: [{ value: "b-secret" }]
    upstream_credential: { method: client_secret_post }
"#,
        );
        let has = |prefix: &str, text: &str| {
            assert!(
                p.iter().any(|l| l.starts_with(prefix) && l.contains(text)),
                "{prefix} … {text} in {p:#?}"
            )
        };
        has("rollout: ", "`audit` is not one of: enforce, shadow");
        has("rate_limit.requests: ", "between 1");
        has("rate_limit.per: ", "greater than zero");
        has("clients[0].rate_limit: ", "`sometimes`");
        has(
            "clients[0].upstream_credential.method: ",
            "client_secret_jwt",
        );
        has(
            "clients[0].upstream_credential: ",
            "client `a` is in shadow",
        );
        has("clients[1].upstream_credential.secret: ", "required");
    }

    #[test]
    fn client_settings_win_over_the_defaults() {
        std::env::set_var("SECRETGATE_UNIT_TEST_LEGACY", "legacy-secret");
        let (config, _dir) = crate::testing::config(
            r#"  - client_id: b
    auth_method: client_secret_basic
    secrets: [{ value: "b-secret-0123" }]
    rollout: enforce
    rate_limit: off
    upstream_credential: { method: client_secret_post, secret: { env: SECRETGATE_UNIT_TEST_LEGACY } }
  - client_id: c
    auth_method: client_secret_basic
    secrets: [{ value: "c-secret-0123" }]
    rate_limit: { requests: 5, per: 1h }
rollout: shadow
rate_limit: { requests: 100, per: 1m, burst: 20 }
"#,
        );
        let r = &config.rollout;
        assert_eq!(r.default_mode, Rollout::Shadow);
        let billing = r.client(crate::testing::BASIC_ID).unwrap();
        assert_eq!(billing.mode, Rollout::Shadow);
        let default = RateLimitConfig {
            requests: 100,
            per: Duration::from_secs(60),
            burst: 20,
        };
        assert_eq!(billing.rate_limit, Some(default));
        assert_eq!(default.capacity(), 120);
        let b = r.client("b").unwrap();
        assert_eq!(b.mode, Rollout::Enforce);
        assert_eq!(b.rate_limit, None);
        let credential = b.upstream_credential.as_ref().unwrap();
        assert_eq!(credential.method, UpstreamMethod::ClientSecretPost);
        assert_eq!(credential.secret.expose(), b"legacy-secret");
        assert!(
            !format!("{b:?}").contains("legacy-secret"),
            "Debug prints ***"
        );
        let c = r.client("c").unwrap();
        assert_eq!(
            c.rate_limit,
            Some(RateLimitConfig {
                requests: 5,
                per: Duration::from_secs(3600),
                burst: 0
            })
        );
        assert!(r.any_shadow() && !r.all_shadow());
        let warning = config
            .warnings
            .iter()
            .find(|w| w.starts_with("SHADOW MODE"))
            .expect("a loud warning");
        assert!(
            warning.contains("[billing, c, mobile, reports, spa]"),
            "{warning}"
        );
        assert!(warning.contains("requests naming no registered client"));
    }

    #[test]
    fn enforce_by_default_and_no_warning() {
        let (config, _dir) = crate::testing::config("");
        assert!(!config.rollout.any_shadow());
        assert!(config
            .rollout
            .client("billing")
            .unwrap()
            .rate_limit
            .is_none());
        assert!(config.warnings.iter().all(|w| !w.contains("SHADOW")));
    }
}
