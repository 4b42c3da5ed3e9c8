//! The configuration as written: YAML deserialised by serde-saphyr into these structs.
//!
//! Every struct denies unknown keys (a typo in security configuration must fail, never be
//! ignored) and serde-saphyr refuses duplicate keys (a client registered twice under one
//! mapping key must not silently keep the last). Every field is optional so that
//! validation (validate.rs), not serde, reports missing keys, and reports all of them.

use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub listen: Option<String>,
    pub listen_proxy_protocol: Option<super::listen::RawProxyProtocol>,
    pub readiness: Option<super::readiness::RawReadiness>,
    pub tls: Option<RawTls>,
    pub upstream: Option<RawUpstream>,
    pub admin: Option<RawAdmin>,
    pub public_url: Option<String>,
    pub issuer: Option<String>,
    /// Replaced by `endpoints`: kept only to say how to write it (validate.rs).
    pub protected_paths: Option<Vec<String>>,
    pub endpoints: Option<RawEndpoints>,
    pub pkce: Option<RawPkce>,
    pub unprotected: Option<String>,
    pub protected_query: Option<String>,
    pub assertion: Option<RawAssertion>,
    pub internal_header: Option<RawInternalHeader>,
    pub limits: Option<RawLimits>,
    pub throttle: Option<RawThrottle>,
    pub shutdown_grace: Option<String>,
    pub workers: Option<RawWorkers>,
    pub realm: Option<String>,
    pub reload: Option<RawReload>,
    pub metrics: Option<RawMetrics>,
    pub state: Option<RawState>,
    pub hashing: Option<RawHashing>,
    pub discovery: Option<RawDiscovery>,
    pub jwks_fetch: Option<RawJwksFetch>,
    /// `enforce` or `shadow` (rollout.rs).
    pub rollout: Option<String>,
    pub rate_limit: Option<super::rollout::RawRateLimit>,
    pub containment: Option<RawContainment>,
    pub clients: Option<Vec<RawClient>>,
}

/// `endpoints`: kind → path patterns. An absent kind keeps its default path.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEndpoints {
    pub token: Option<Vec<String>>,
    pub introspection: Option<Vec<String>>,
    pub revocation: Option<Vec<String>>,
    pub par: Option<Vec<String>>,
    pub device_authorization: Option<Vec<String>>,
    pub authorization: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPkce {
    pub required: Option<String>,
    pub methods: Option<Vec<String>>,
}

/// `containment`: what the gateway does with requests that some server could read
/// differently from it (docs/design.md §4.3).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawContainment {
    pub underscore_headers: Option<String>,
    pub allow_authorization_schemes: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiscovery {
    pub rewrite: Option<bool>,
    pub max_size: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHashing {
    pub verify_cache_ttl: Option<String>,
    pub max_concurrent: Option<RawWorkers>,
    pub max_queued: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    pub backend: Option<String>,
    pub redis: Option<RawRedis>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedis {
    pub url: Option<String>,
    pub password: Option<RawSecretSource>,
    pub ca_file: Option<String>,
    pub cluster: Option<bool>,
    pub key_prefix: Option<String>,
    pub timeout: Option<String>,
    pub connect_timeout: Option<String>,
}

/// `workers: 4` or `workers: auto`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawWorkers {
    Count(u64),
    Word(String),
    // Only so that these get the key's own message rather than a parse error.
    Negative(i64),
    Fraction(f64),
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReload {
    pub watch: Option<bool>,
    pub poll_interval: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub client_id_label: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub client_auth: Option<RawClientAuth>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClientAuth {
    pub ca_file: Option<String>,
}

/// A registered certificate of a `self_signed_tls_client_auth` client.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCertificateFile {
    pub file: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    pub url: Option<String>,
    pub connect_timeout: Option<String>,
    pub timeout: Option<String>,
    pub pool_idle_timeout: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub listen: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAssertion {
    pub audience: Option<String>,
    pub leeway: Option<String>,
    pub max_age: Option<String>,
    pub algorithms: Option<Vec<String>>,
    pub asymmetric_algorithms: Option<Vec<String>>,
    pub replay_capacity: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInternalHeader {
    pub name: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub ttl: Option<String>,
    pub keys: Option<Vec<RawKey>>,
    pub jwks_file: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKey {
    pub id: Option<String>,
    pub algorithm: Option<String>,
    pub publish_only: Option<bool>,
    pub file: Option<String>,
    pub env: Option<String>,
    pub value: Option<String>,
}

/// Where a secret comes from: exactly one of the fields (checked in secret_source.rs).
/// `hash` and `hash_file` are accepted only for the secrets of Basic and post clients.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecretSource {
    pub file: Option<String>,
    pub env: Option<String>,
    pub value: Option<String>,
    pub hash: Option<String>,
    pub hash_file: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub max_body: Option<String>,
    pub max_header_size: Option<String>,
    pub header_read_timeout: Option<String>,
    pub keepalive_timeout: Option<String>,
    pub body_read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_connections: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawThrottle {
    pub max_failures: Option<u32>,
    pub max_failures_per_address: Option<u32>,
    pub window: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClient {
    pub client_id: Option<String>,
    pub auth_method: Option<String>,
    pub algorithms: Option<Vec<String>>,
    pub secrets: Option<Vec<RawSecretSource>>,
    pub tls_client_auth_subject_dn: Option<String>,
    pub tls_client_auth_san_dns: Option<String>,
    pub tls_client_auth_san_uri: Option<String>,
    pub tls_client_auth_san_ip: Option<String>,
    pub tls_client_auth_san_email: Option<String>,
    pub certificates: Option<Vec<RawCertificateFile>>,
    pub grant_types: Option<Vec<String>>,
    pub jwks: Option<RawJwks>,
    pub jwks_uri: Option<String>,
    /// The rollout keys (rollout.rs), taken out before the registry is validated.
    pub rollout: Option<String>,
    pub rate_limit: Option<super::rollout::RawRateLimit>,
    pub upstream_credential: Option<super::rollout::RawUpstreamCredential>,
}

/// Where a `private_key_jwt` client's JWK Set is: exactly one of these.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJwks {
    pub file: Option<String>,
    pub env: Option<String>,
    pub value: Option<String>,
}

/// `jwks_fetch`: how the keys at clients' `jwks_uri` are fetched.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJwksFetch {
    pub ca_file: Option<String>,
    pub timeout: Option<String>,
    pub refresh: Option<String>,
    pub min_refetch_interval: Option<String>,
    pub max_size: Option<String>,
}
