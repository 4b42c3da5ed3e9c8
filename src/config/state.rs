//! Validation of `state`: where the replay store and the throttle counters live. `memory`
//! (the default) keeps them in each process; `redis` shares them between every replica
//! pointed at the same Redis (or Valkey), so single-use assertions and failure limits
//! hold across all of them.

use std::time::Duration;

use rustls_pki_types::pem::PemObject;

use super::raw::{RawRedis, RawState};
use super::validate::Validator;
use super::{RedisConfig, StateConfig};

impl Validator<'_> {
    pub(super) fn state(&mut self, raw: Option<RawState>) -> StateConfig {
        let raw = raw.unwrap_or_default();
        let redis = self.choice(
            raw.backend,
            "state.backend",
            &[("memory", false), ("redis", true)],
            false,
        );
        match (redis, raw.redis) {
            (false, None) => StateConfig::Memory,
            (false, Some(raw)) => {
                // Its URL is checked all the same; its password and CA files are not read,
                // so that a config for one replica runs where the Redis secrets are absent.
                if let Some(url) = raw.url {
                    if let Err(e) = check_redis_url(&url) {
                        self.problem("state.redis.url", e);
                    }
                }
                self.warnings.push(
                    "state.redis: not used while state.backend is memory (its files are not read)"
                        .to_owned(),
                );
                StateConfig::Memory
            }
            (true, raw) => {
                let raw = self.required(raw, "state.redis").unwrap_or_default();
                self.redis(raw)
                    .map_or(StateConfig::Memory, StateConfig::Redis)
            }
        }
    }

    fn redis(&mut self, raw: RawRedis) -> Option<RedisConfig> {
        let url = self.parsed(raw.url, "state.redis.url", check_redis_url);
        let password = raw
            .password
            .and_then(|p| self.secret(p, "state.redis.password"));
        let cluster = raw.cluster.unwrap_or(false);
        let key_prefix = raw.key_prefix.unwrap_or_else(|| "secretgate:".to_owned());
        if cluster && key_prefix.contains(['{', '}']) {
            // The first `{…}` of a key is its hash tag: one in the prefix would put every
            // key in one slot.
            self.problem(
                "state.redis.key_prefix",
                "must not contain `{` or `}` with `cluster: true` (they would make every key's hash tag)",
            );
        }
        if key_prefix.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
            self.problem(
                "state.redis.key_prefix",
                "must be visible ASCII without spaces",
            );
        }
        let timeout = self.duration(
            raw.timeout,
            "state.redis.timeout",
            Duration::from_millis(100),
        );
        let connect_timeout =
            self.duration(raw.connect_timeout, "state.redis.connect_timeout", timeout);
        for (key, value) in [
            ("state.redis.timeout", timeout),
            ("state.redis.connect_timeout", connect_timeout),
        ] {
            if value < Duration::from_millis(1) {
                self.problem(key, "must be at least 1ms");
            }
        }
        let ca_pem = match raw.ca_file {
            None => None,
            Some(file) => {
                if url.as_deref().is_some_and(|u| !u.starts_with("rediss://")) {
                    self.problem("state.redis.ca_file", "only used with a `rediss://` URL");
                }
                let path = self.base_dir.join(&file);
                match self.read(&path) {
                    Ok(pem) => {
                        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
                            .collect::<Result<Vec<_>, _>>();
                        match certs {
                            Ok(c) if !c.is_empty() => Some(pem),
                            _ => {
                                self.problem(
                                    "state.redis.ca_file",
                                    format!("{} holds no PEM certificate", path.display()),
                                );
                                None
                            }
                        }
                    }
                    Err(e) => {
                        self.problem(
                            "state.redis.ca_file",
                            format!("cannot read {}: {e}", path.display()),
                        );
                        None
                    }
                }
            }
        };
        Some(RedisConfig {
            url: url?,
            password,
            ca_pem,
            cluster,
            key_prefix,
            timeout,
            connect_timeout,
        })
    }
}

/// A `redis://` or `rediss://` URL the client can use, with no password in it (the
/// password belongs in `state.redis.password`, read from a file or the environment, so
/// that the URL can be shown and logged).
fn check_redis_url(url: &str) -> Result<String, String> {
    use redis::IntoConnectionInfo;
    if !url.starts_with("redis://") && !url.starts_with("rediss://") {
        return Err("must start with redis:// or rediss://".to_owned());
    }
    let info = url
        .into_connection_info()
        .map_err(|_| "is not a Redis URL (redis://[user@]host[:port][/db])".to_owned())?;
    if info.redis_settings().password().is_some() {
        return Err(
            "has a password in it: give it in `state.redis.password` (file or env) instead"
                .to_owned(),
        );
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        for ok in [
            "redis://127.0.0.1:6379/0",
            "redis://localhost",
            "rediss://redis.example.com:6380/2",
            "redis://app-user@127.0.0.1:6379",
        ] {
            assert!(check_redis_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://127.0.0.1:6379",
            "127.0.0.1:6379",
            "redis://:hunter2@127.0.0.1",
            "redis://user:hunter2@127.0.0.1",
        ] {
            let e = check_redis_url(bad).unwrap_err();
            assert!(
                !e.contains("hunter2"),
                "the message must not repeat a password: {e}"
            );
        }
    }
}
