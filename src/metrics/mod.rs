//! Prometheus metrics, served as text on the admin listener at `/metrics`.
//!
//! Every series is documented in README.md ("Metrics"). Labels are closed sets chosen
//! here (route class, status code, method, outcome, error kind), never request data, so a
//! client cannot grow the series count. Client ids appear only in the separate
//! `secretgate_client_authentications_total` family, only when `metrics.client_id_label`
//! is on, and only for *registered* ids (an unknown id is never a label). No secret, no
//! header value and no body byte ever becomes a label.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

mod labels;
mod latency;
mod operations;
mod rollout;

pub use labels::*;
pub use operations::Operations;

use std::sync::OnceLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::clock::Clock;
use crate::oauth::{AuthMethod, ClientId};
use latency::LatencyHistogram;

/// All series. One instance per process, shared by every config generation, so counters
/// survive reloads.
pub struct Metrics {
    registry: Registry,
    client_id_label: AtomicBool,
    requests: Family<RequestLabels, Counter>,
    /// `requests` for status 200, by route class: the series nearly every request adds
    /// to, looked up once (a family lookup takes a lock and hashes the labels).
    requests_ok: [OnceLock<Counter>; 5],
    request_duration: LatencyHistogram,
    authentications: Family<AuthLabels, Counter>,
    /// `authentications` with outcome `ok`, by method: looked up once.
    authentications_ok: [OnceLock<Counter>; 8],
    client_authentications: Family<ClientAuthLabels, Counter>,
    upstream_duration: LatencyHistogram,
    upstream_connections: Counter,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    replay_entries: Gauge,
    replay_rejections: Family<ReplayLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    last_reload_ok: Gauge,
    last_reload_success: Gauge,
    tls_handshake_failures: Family<HandshakeLabels, Counter>,
    connections: Gauge,
    connections_refused: Family<RefusalLabels, Counter>,
    state_up: Gauge,
    state_duration: Family<StateLabels, Histogram>,
    state_errors: Family<StateLabels, Counter>,
    throttle_fallbacks: Counter,
    hash_verifications: Family<HashLabels, Counter>,
    hash_cache: Family<CacheLabels, Counter>,
    client_certificates: Family<CertificateLabels, Counter>,
    bound_headers: Counter,
    metadata: Family<MetadataLabels, Counter>,
    pkce_refusals: Family<PkceLabels, Counter>,
    jwks_fetches: Family<JwksFetchLabels, Counter>,
    jwks_keys: Family<JwksKeysLabels, Gauge>,
    jwks_keys_ignored: Counter,
    /// Certificate expiry and upstream probe series (operations.rs).
    ops: Operations,
    rollout: rollout::RolloutMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Latency buckets from 100 µs to ~13 s, doubling.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0001, 2.0, 18)
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("secretgate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by route class and HTTP status",
            requests.clone(),
        );
        let request_duration = LatencyHistogram::new(latency_buckets());
        registry.register_with_unit(
            "request_duration",
            "Time from request head to response head, all routes",
            prometheus_client::registry::Unit::Seconds,
            request_duration.clone(),
        );
        let authentications = Family::<AuthLabels, Counter>::default();
        registry.register(
            "authentications",
            "Client authentications on protected paths, by method and outcome",
            authentications.clone(),
        );
        let client_authentications = Family::<ClientAuthLabels, Counter>::default();
        registry.register(
            "client_authentications",
            "Client authentications by registered client id (only with metrics.client_id_label)",
            client_authentications.clone(),
        );
        let upstream_duration = LatencyHistogram::new(latency_buckets());
        registry.register_with_unit(
            "upstream_duration",
            "Time from sending a request upstream to its response head",
            prometheus_client::registry::Unit::Seconds,
            upstream_duration.clone(),
        );
        let upstream_connections = Counter::default();
        registry.register(
            "upstream_connections_opened",
            "Connections opened to the upstream (each then serves many requests, kept alive)",
            upstream_connections.clone(),
        );
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Upstream failures answered with 502 (unavailable) or 504 (timeout)",
            upstream_errors.clone(),
        );
        let replay_entries = Gauge::default();
        registry.register(
            "replay_store_entries",
            "Live (client_id, jti) entries in the assertion replay store",
            replay_entries.clone(),
        );
        let replay_rejections = Family::<ReplayLabels, Counter>::default();
        registry.register(
            "replay_rejections",
            "Assertions refused by the replay store: jti reused, or store full",
            replay_rejections.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "reloads",
            "Configuration reloads (SIGHUP or file change), by outcome",
            reloads.clone(),
        );
        let last_reload_ok = Gauge::default();
        last_reload_ok.set(1);
        registry.register(
            "config_last_reload_successful",
            "1 if the last reload attempt succeeded (or none was made), else 0",
            last_reload_ok.clone(),
        );
        let last_reload_success = Gauge::default();
        registry.register(
            "config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config load",
            last_reload_success.clone(),
        );
        let tls_handshake_failures = Family::<HandshakeLabels, Counter>::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out",
            tls_handshake_failures.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "connections",
            "Client connections open (TLS established)",
            connections.clone(),
        );
        let connections_refused = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections closed before the TLS handshake, by reason",
            connections_refused.clone(),
        );
        let state_up = Gauge::default();
        state_up.set(1);
        registry.register(
            "state_up",
            "0 if the last command or connection to the shared state (Redis) failed, else 1 (always 1 with state.backend: memory)",
            state_up.clone(),
        );
        let state_duration = Family::<StateLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.00005, 2.0, 16))
        });
        registry.register_with_unit(
            "state_command_duration",
            "Time of commands to the shared state (Redis), by operation",
            prometheus_client::registry::Unit::Seconds,
            state_duration.clone(),
        );
        let state_errors = Family::<StateLabels, Counter>::default();
        registry.register(
            "state_errors",
            "Commands to the shared state (Redis) that failed or timed out, by operation",
            state_errors.clone(),
        );
        let throttle_fallbacks = Counter::default();
        registry.register(
            "throttle_local_fallbacks",
            "Throttle decisions made on this process's own counters because Redis was unavailable",
            throttle_fallbacks.clone(),
        );
        let hash_verifications = Family::<HashLabels, Counter>::default();
        registry.register(
            "hash_verifications",
            "Verifications of hashed client secrets, by outcome (saturated: refused with 503, the pool was full)",
            hash_verifications.clone(),
        );
        let hash_cache = Family::<CacheLabels, Counter>::default();
        registry.register(
            "hash_verify_cache",
            "Lookups of the cache of successful hash verifications, by result",
            hash_cache.clone(),
        );
        let client_certificates = Family::<CertificateLabels, Counter>::default();
        registry.register(
            "client_certificates",
            "Client certificates checked as tls_client_auth / self_signed_tls_client_auth credentials, by method and outcome",
            client_certificates.clone(),
        );
        let bound_headers = Counter::default();
        registry.register(
            "certificate_bound_headers",
            "Internal headers carrying cnf.x5t#S256 (a verified client certificate tokens can be bound to)",
            bound_headers.clone(),
        );
        let jwks_fetches = Family::<JwksFetchLabels, Counter>::default();
        registry.register(
            "jwks_fetches",
            "Fetches of private_key_jwt clients' jwks_uri, by outcome",
            jwks_fetches.clone(),
        );
        let jwks_keys = Family::<JwksKeysLabels, Gauge>::default();
        registry.register(
            "jwks_keys",
            "Public keys held per private_key_jwt client (registered ids only)",
            jwks_keys.clone(),
        );
        let jwks_keys_ignored = Counter::default();
        registry.register(
            "jwks_keys_ignored",
            "Keys in fetched JWK Sets that were dropped (private, not for signatures, unsupported, repeated kid)",
            jwks_keys_ignored.clone(),
        );
        let pkce_refusals = Family::<PkceLabels, Counter>::default();
        registry.register(
            "pkce_refusals",
            "Requests refused for PKCE (RFC 7636), by endpoint kind and reason",
            pkce_refusals.clone(),
        );
        let metadata = Family::<MetadataLabels, Counter>::default();
        registry.register(
            "metadata_responses",
            "Discovery metadata documents from the upstream, rewritten or passed through unchanged",
            metadata.clone(),
        );
        let ops = Operations::default();
        ops.register(&mut registry);
        registry.register(
            "build",
            "Build information",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let rollout = rollout::RolloutMetrics::register(&mut registry);
        let m = Metrics {
            rollout,
            registry,
            client_id_label: AtomicBool::new(false),
            requests_ok: Default::default(),
            authentications_ok: Default::default(),
            requests,
            request_duration,
            authentications,
            client_authentications,
            upstream_duration,
            upstream_connections,
            upstream_errors,
            replay_entries,
            replay_rejections,
            reloads,
            last_reload_ok,
            last_reload_success,
            tls_handshake_failures,
            connections,
            connections_refused,
            state_up,
            state_duration,
            state_errors,
            throttle_fallbacks,
            hash_verifications,
            hash_cache,
            client_certificates,
            bound_headers,
            metadata,
            pkce_refusals,
            jwks_fetches,
            jwks_keys,
            jwks_keys_ignored,
            ops,
        };
        m.config_loaded();
        m
    }

    /// The operations series: certificate expiry, the upstream probe.
    pub fn ops(&self) -> &Operations {
        &self.ops
    }

    /// Whether client ids become labels (`metrics.client_id_label`); set on every load.
    pub fn set_client_id_label(&self, on: bool) {
        self.client_id_label.store(on, Ordering::Relaxed);
    }

    pub fn request(&self, route: RouteClass, status: u16, elapsed: Duration) {
        // (A variant beyond the array takes the family path.)
        if let Some(cell) = self
            .requests_ok
            .get(route as usize)
            .filter(|_| status == 200)
        {
            cell.get_or_init(|| {
                self.requests
                    .get_or_create(&RequestLabels { route, status })
                    .clone()
            })
            .inc();
        } else {
            self.requests
                .get_or_create(&RequestLabels { route, status })
                .inc();
        }
        self.request_duration.observe(elapsed);
    }

    /// Counts one authentication. `client_id` must be a registered id or `None`.
    pub fn authentication(
        &self,
        method: Option<AuthMethod>,
        outcome: Outcome,
        client_id: Option<&ClientId>,
    ) {
        let method = MethodLabel::from(method);
        let hot = (outcome == Outcome::ok)
            .then(|| self.authentications_ok.get(method as usize))
            .flatten();
        if let Some(cell) = hot {
            cell.get_or_init(|| {
                self.authentications
                    .get_or_create(&AuthLabels { method, outcome })
                    .clone()
            })
            .inc();
        } else {
            self.authentications
                .get_or_create(&AuthLabels { method, outcome })
                .inc();
        }
        if let Some(id) = client_id.filter(|_| self.client_id_label.load(Ordering::Relaxed)) {
            self.client_authentications
                .get_or_create(&ClientAuthLabels {
                    client_id: id.to_string(),
                    method,
                    outcome,
                })
                .inc();
        }
    }

    pub fn upstream_response(&self, elapsed: Duration) {
        self.upstream_duration.observe(elapsed);
    }

    pub fn upstream_connection_opened(&self) {
        self.upstream_connections.inc();
    }

    pub fn upstream_error(&self, kind: UpstreamError) {
        self.upstream_errors
            .get_or_create(&UpstreamErrorLabels { kind })
            .inc();
    }

    pub fn replay_rejected(&self, reason: ReplayRejection) {
        self.replay_rejections
            .get_or_create(&ReplayLabels { reason })
            .inc();
    }

    pub fn reload(&self, outcome: ReloadOutcome) {
        self.reloads.get_or_create(&ReloadLabels { outcome }).inc();
        self.last_reload_ok
            .set(i64::from(outcome == ReloadOutcome::ok));
        if outcome == ReloadOutcome::ok {
            self.config_loaded();
        }
    }

    fn config_loaded(&self) {
        self.last_reload_success.set(Clock::system().now());
    }

    pub fn tls_handshake_failed(&self, reason: HandshakeFailure) {
        self.tls_handshake_failures
            .get_or_create(&HandshakeLabels { reason })
            .inc();
    }

    pub fn connection_refused(&self, reason: ConnectionRefusal) {
        self.connections_refused
            .get_or_create(&RefusalLabels { reason })
            .inc();
    }

    /// One command to the shared state, and whether it worked.
    pub fn state_command(&self, op: StateOp, elapsed: Duration, ok: bool) {
        let labels = StateLabels { op };
        if ok {
            self.state_duration
                .get_or_create(&labels)
                .observe(elapsed.as_secs_f64());
        } else {
            self.state_errors.get_or_create(&labels).inc();
        }
        self.state_up.set(i64::from(ok));
    }

    pub fn hash_verification(&self, outcome: HashOutcome) {
        self.hash_verifications
            .get_or_create(&HashLabels { outcome })
            .inc();
    }

    pub fn hash_cache(&self, hit: bool) {
        let result = if hit {
            CacheResult::hit
        } else {
            CacheResult::miss
        };
        self.hash_cache.get_or_create(&CacheLabels { result }).inc();
    }

    /// A client certificate checked as the credential of a `method` client.
    pub fn client_certificate(&self, method: AuthMethod, outcome: CertificateOutcome) {
        self.client_certificates
            .get_or_create(&CertificateLabels {
                method: MethodLabel::from(Some(method)),
                outcome,
            })
            .inc();
    }

    /// An internal header signed with `cnf` (RFC 8705 §3).
    pub fn certificate_bound(&self) {
        self.bound_headers.inc();
    }

    pub fn metadata(&self, outcome: MetadataOutcome) {
        self.metadata
            .get_or_create(&MetadataLabels { outcome })
            .inc();
    }

    /// A throttle decision made on local counters because Redis was unavailable.
    pub fn pkce_refused(&self, endpoint: crate::oauth::EndpointKind, reason: PkceRefusal) {
        self.pkce_refusals
            .get_or_create(&PkceLabels {
                endpoint: endpoint.into(),
                reason,
            })
            .inc();
    }

    pub fn jwks_fetched(&self, outcome: JwksFetchOutcome, ignored: usize) {
        self.jwks_fetches
            .get_or_create(&JwksFetchLabels { outcome })
            .inc();
        self.jwks_keys_ignored.inc_by(ignored as u64);
    }

    /// The number of public keys a `private_key_jwt` client (a registered id) has now;
    /// `None` removes the series (the client is gone).
    pub fn jwks_keys(&self, client_id: &str, keys: Option<usize>) {
        let labels = JwksKeysLabels {
            client_id: client_id.to_owned(),
        };
        match keys {
            Some(n) => {
                self.jwks_keys.get_or_create(&labels).set(n as i64);
            }
            None => {
                self.jwks_keys.remove(&labels);
            }
        }
    }

    pub fn throttle_fell_back(&self) {
        self.throttle_fallbacks.inc();
    }

    /// Counts an open connection until the guard drops.
    pub fn connection(&self) -> ConnectionGuard {
        self.connections.inc();
        ConnectionGuard(self.connections.clone())
    }

    /// Prometheus text exposition. `replay_entries` is sampled now, where it can be (the
    /// memory store).
    pub fn encode(&self, replay_entries: Option<u64>) -> String {
        if let Some(n) = replay_entries {
            self.replay_entries.set(n as i64);
        }
        let mut out = String::with_capacity(8 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Decrements the open-connection gauge when the connection ends.
pub struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_named_as_documented() {
        let m = Metrics::new();
        m.request(RouteClass::protected, 200, Duration::from_millis(3));
        m.authentication(
            Some(AuthMethod::ClientSecretBasic),
            Outcome::ok,
            Some(&ClientId::new("billing")),
        );
        m.upstream_error(UpstreamError::timeout);
        let text = m.encode(Some(7));
        for line in [
            "secretgate_requests_total{route=\"protected\",status=\"200\"} 1",
            "secretgate_authentications_total{method=\"client_secret_basic\",outcome=\"ok\"} 1",
            "secretgate_upstream_errors_total{kind=\"timeout\"} 1",
            "secretgate_replay_store_entries 7",
            "secretgate_config_last_reload_successful 1",
            "secretgate_request_duration_seconds_count 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        // Client ids are off by default.
        assert!(!text.contains("billing"));
        m.set_client_id_label(true);
        m.authentication(
            Some(AuthMethod::ClientSecretBasic),
            Outcome::ok,
            Some(&ClientId::new("billing")),
        );
        assert!(m.encode(None).contains(
            "secretgate_client_authentications_total{client_id=\"billing\",method=\"client_secret_basic\",outcome=\"ok\"} 1"
        ));
    }
}
