//! Hot reload: SIGHUP, or a change to the config file or any file it names, reads and
//! validates the whole config again, builds a new [`Generation`] (registry, secrets,
//! signing keys, routes, limits, upstream client) and swaps it in atomically.
//!
//! - Connections are never dropped: each *request* loads the current generation, so a
//!   kept-alive connection uses the new secrets from its next request on, while requests
//!   in flight finish on the generation they started with. New TLS handshakes get the new
//!   certificate through [`CertResolver`]; established sessions keep theirs. Client
//!   certificates are judged per request against the generation's `tls.client_auth.ca_file`
//!   and registered certificates, so a CA rotation applies to the next request, also on
//!   kept-alive connections; whether handshakes ask for one follows `tls.client_auth`.
//! - A bad reload (unreadable file, invalid YAML, a problem anywhere) changes nothing: the
//!   last good generation keeps serving, the problems are logged with their key paths,
//!   and `secretgate_reloads_total{outcome="failed"}` counts it.
//! - State that must outlive generations is shared, never rebuilt: used assertion jtis
//!   (forgetting them would reopen a replay window), throttle counters (unless the
//!   `throttle` settings change), metrics.
//! - Needs a restart: `listen`, `admin.listen` (sockets are bound once),
//!   `assertion.replay_capacity` (the store is kept) and `workers` (threads start once).
//!   A reload that changes them applies everything else and logs a warning naming the key.
//!
//! File watching polls (`reload.poll_interval`): it hashes the content of every file, so it
//! sees Kubernetes Secret and ConfigMap updates, which swap a `..data` symlink and leave
//! no useful mtime or inotify event on the path the config names.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::auth::hashing::Hasher;
use crate::auth::jwks::KeySets;
use crate::auth::rate_limit::RateLimiter;
use crate::auth::replay::{MemoryReplayStore, RedisReplayStore, ReplayStore};
use crate::auth::throttle::{SharedView, Throttle};
use crate::auth::{AuthState, Authenticator};
use crate::clock::Clock;
use crate::config::{Config, ConfigError, HashingConfig, Source, StateConfig, ThrottleConfig};
use crate::error::error_chain;
use crate::metrics::{Metrics, ReloadOutcome};
use crate::sign::Signer;
use crate::stack::{self, Stack};
use crate::state::{RedisState, StateError};
use crate::tls::{CertResolver, ClientCertRequest};
use crate::upstream::Upstream;

/// Everything one config serves with. Immutable; replaced whole on reload.
pub struct Generation {
    pub config: Config,
    /// One stack per worker thread: the same authenticator, signer and metrics, but each
    /// its own upstream connection pool, whose connections live on that worker's event
    /// loop. Never empty.
    stacks: Vec<Stack>,
    /// HTTP/1.1 and HTTP/2 connection settings, for new connections.
    pub http: Arc<HttpSettings>,
    /// The public keys of the internal header, as served at `/.well-known/jwks.json`.
    pub jwks: Arc<str>,
}

impl Generation {
    /// The stack of worker `worker`.
    pub fn stack(&self, worker: usize) -> &Stack {
        // `stacks` has `Shared::workers` (≥ 1) entries and workers are numbered below it.
        &self.stacks[worker % self.stacks.len()]
    }
}

/// How new connections speak HTTP: the protocol is the one ALPN chose (TLS requires ALPN
/// for HTTP/2, RFC 9113 §3.2), so no connection pays for guessing it.
pub struct HttpSettings {
    pub h1: hyper::server::conn::http1::Builder,
    pub h2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

/// State shared by all generations of one gateway.
pub struct Shared {
    pub metrics: Arc<Metrics>,
    pub resolver: Arc<CertResolver>,
    /// Whether handshakes ask for a client certificate (`tls.client_auth`).
    pub client_certs: Arc<ClientCertRequest>,
    pub replay: Arc<ReplayStore>,
    replay_capacity: u64,
    /// Where the replay store and the throttle counters live (`state` needs a restart).
    state: StateConfig,
    /// With Redis: the throttle's view of failures on every replica, which the gateway
    /// keeps current (`SharedView::listen`) while it serves.
    pub shared_view: Option<Arc<SharedView>>,
    /// Worker threads, fixed at start (`workers` needs a restart).
    pub workers: usize,
    throttle: Mutex<(ThrottleConfig, Arc<Throttle>)>,
    hasher: Mutex<(HashingConfig, Arc<Hasher>)>,
    /// The clock every generation's authenticator and signer read.
    pub clock: Clock,
    /// `private_key_jwt` clients' fetched key sets (kept across reloads).
    pub key_sets: Arc<KeySets>,
    /// Per-client rate-limit buckets (kept across reloads; in Redis when it is the state).
    rate_limiter: Arc<RateLimiter>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the gateway was started without a config file, so there is nothing to reload")]
    NoSource,
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("internal_header.keys is empty")]
    NoSigningKey,
    #[error("the reload task failed")]
    Task(#[from] tokio::task::JoinError),
}

impl Shared {
    pub fn new(config: &Config, clock: Clock) -> Result<Shared, StateError> {
        let metrics = Arc::new(Metrics::new());
        let (replay, shared_view, redis) = match &config.state {
            StateConfig::Memory => (
                ReplayStore::Memory(MemoryReplayStore::new(config.assertion.replay_capacity)),
                None,
                None,
            ),
            StateConfig::Redis(redis) => {
                let redis = Arc::new(RedisState::new(redis, metrics.clone())?);
                (
                    ReplayStore::Redis(RedisReplayStore::new(redis.clone())),
                    Some(SharedView::new(redis.clone(), metrics.clone())),
                    Some(redis),
                )
            }
        };
        let throttle = Arc::new(Throttle::with_shared(&config.throttle, shared_view.clone()));
        Ok(Shared {
            metrics: metrics.clone(),
            resolver: Arc::new(CertResolver::new(config.tls.certified.clone())),
            client_certs: Arc::new(ClientCertRequest::new(config.tls.client_auth.is_some())),
            replay: Arc::new(replay),
            replay_capacity: config.assertion.replay_capacity,
            state: config.state.clone(),
            shared_view,
            workers: config.workers.max(1),
            throttle: Mutex::new((config.throttle.clone(), throttle)),
            hasher: Mutex::new((
                config.hashing.clone(),
                Arc::new(Hasher::new(&config.hashing, metrics.clone())),
            )),
            key_sets: KeySets::new(config, metrics.clone()),
            rate_limiter: RateLimiter::new(redis, metrics.clone()),
            clock,
        })
    }

    /// The throttle for `cfg`: the current one, or a fresh one if the settings changed
    /// (its shared counters, in Redis, are kept either way).
    fn throttle(&self, cfg: &ThrottleConfig) -> Arc<Throttle> {
        let mut slot = self.throttle.lock().unwrap_or_else(|p| p.into_inner());
        if slot.0 != *cfg {
            tracing::info!(
                "throttle settings changed: this process's failure counters start afresh"
            );
            *slot = (
                cfg.clone(),
                Arc::new(Throttle::with_shared(cfg, self.shared_view.clone())),
            );
        }
        slot.1.clone()
    }

    /// The hasher for `cfg`: the current one (its verify cache kept), or a fresh one if
    /// the `hashing` settings changed.
    fn hasher(&self, cfg: &HashingConfig) -> Arc<Hasher> {
        let mut slot = self.hasher.lock().unwrap_or_else(|p| p.into_inner());
        if slot.0 != *cfg {
            tracing::info!("hashing settings changed: the verify cache starts afresh");
            *slot = (
                cfg.clone(),
                Arc::new(Hasher::new(cfg, self.metrics.clone())),
            );
        }
        slot.1.clone()
    }

    /// Builds a generation from a validated config.
    pub fn generation(&self, config: Config) -> Result<Generation, ReloadError> {
        let state = AuthState {
            replay: self.replay.clone(),
            throttle: self.throttle(&config.throttle),
            hasher: self.hasher(&config.hashing),
            key_sets: self.key_sets.clone(),
            metrics: self.metrics.clone(),
        };
        self.key_sets.configure(&config);
        let parts = stack::Parts {
            rate_limiter: self.rate_limiter.clone(),
            authenticator: Arc::new(Authenticator::new(&config, state, self.clock.clone())),
            signer: Arc::new(
                Signer::new(
                    &config.internal_header,
                    &config.public_url,
                    self.clock.clone(),
                )
                .ok_or(ReloadError::NoSigningKey)?,
            ),
            metrics: self.metrics.clone(),
        };
        let stacks = (0..self.workers)
            .map(|_| {
                let upstream = Upstream::new(&config.upstream, self.metrics.clone());
                stack::build(&config, parts.clone(), upstream)
            })
            .collect();
        let limits = &config.limits;
        // HTTP/1.1: a request head that does not fit in `max_header_size` is refused by
        // hyper (the read buffer is the bound) and answered by the gateway (server/head.rs,
        // server/refusal.rs). The wait for a head and the head itself are timed by the
        // connection (keepalive_timeout, header_read_timeout, server/head.rs); hyper's own
        // head timer, which runs over both, is a backstop behind them.
        let mut h1 = hyper::server::conn::http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(limits.keepalive_timeout + limits.header_read_timeout)
            .max_buf_size(limits.max_header_size);
        // HTTP/2: h2 decodes header lists up to twice `max_header_size` (its memory bound,
        // advertised as SETTINGS_MAX_HEADER_LIST_SIZE), so that a list over
        // `max_header_size` reaches the stack and gets the gateway's own 431 (head.rs);
        // beyond that h2 answers on its own. Pings, so that a peer that is gone is
        // noticed; `idle_timeout` (server/connection.rs) closes connections with nothing in
        // flight.
        let h2_header_list = limits.max_header_size.saturating_mul(2);
        let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(h2_header_list).unwrap_or(u32::MAX))
            .keep_alive_interval(limits.idle_timeout / 2)
            .keep_alive_timeout(limits.header_read_timeout);
        let http = HttpSettings { h1, h2 };
        self.metrics
            .set_client_id_label(config.metrics.client_id_label);
        self.metrics
            .ops()
            .certificates_loaded(&config.certificate_expiry);
        let jwks = crate::sign::jwks(&config.internal_header.keys).into();
        Ok(Generation {
            config,
            stacks,
            http: Arc::new(http),
            jwks,
        })
    }
}

/// Reloads a running gateway. Cheap to clone; reloads are serialised.
#[derive(Clone)]
pub struct Reloader {
    current: Arc<ArcSwap<Generation>>,
    shared: Arc<Shared>,
    source: Option<PathBuf>,
    serial: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    pub fn new(
        current: Arc<ArcSwap<Generation>>,
        shared: Arc<Shared>,
        source: Option<PathBuf>,
    ) -> Self {
        Self {
            current,
            shared,
            source,
            serial: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The config file reloads read, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// The generation serving now.
    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// Reads the config file again and swaps it in. On any error nothing changes; the
    /// error is logged, counted and returned.
    pub async fn reload(&self) -> Result<(), ReloadError> {
        self.reload_traced().await.0
    }

    /// [`Reloader::reload`], also returning the files the attempt read, as it read them.
    async fn reload_traced(&self) -> (Result<(), ReloadError>, Vec<Source>) {
        let _serial = self.serial.lock().await;
        let (result, sources) = self.load_and_apply().await;
        match &result {
            Ok(()) => {
                self.shared.metrics.reload(ReloadOutcome::ok);
                tracing::info!("configuration reloaded");
            }
            Err(e) => {
                self.shared.metrics.reload(ReloadOutcome::failed);
                match e {
                    ReloadError::Config(c) => {
                        for problem in c.problems() {
                            tracing::error!(%problem, "reload: invalid configuration");
                        }
                    }
                    other => tracing::error!(error = %error_chain(other), "reload failed"),
                }
                tracing::error!("reload failed: still serving the last good configuration");
            }
        }
        (result, sources)
    }

    async fn load_and_apply(&self) -> (Result<(), ReloadError>, Vec<Source>) {
        let Some(path) = self.source.clone() else {
            return (Err(ReloadError::NoSource), Vec::new());
        };
        // Reading files blocks: keep it off the request threads.
        match tokio::task::spawn_blocking(move || Config::load_traced(&path)).await {
            Err(e) => (Err(e.into()), Vec::new()),
            Ok((Err(e), sources)) => (Err(e.into()), sources),
            Ok((Ok(config), sources)) => (self.apply(config), sources),
        }
    }

    /// Swaps in an already validated config.
    fn apply(&self, config: Config) -> Result<(), ReloadError> {
        let old = self.current.load();
        for w in &config.warnings {
            tracing::warn!("{w}");
        }
        let restart = [
            ("listen", old.config.listen != config.listen),
            (
                "admin.listen",
                old.config.admin.as_ref().map(|a| a.listen)
                    != config.admin.as_ref().map(|a| a.listen),
            ),
            (
                "assertion.replay_capacity",
                self.shared.replay_capacity != config.assertion.replay_capacity,
            ),
            ("workers", self.shared.workers != config.workers.max(1)),
            ("state", !same_state(&self.shared.state, &config.state)),
        ];
        for (key, changed) in restart {
            if changed {
                tracing::warn!(
                    key,
                    "changed in the config file, but takes effect only after a restart"
                );
            }
        }
        let generation = self.shared.generation(config)?;
        // Certificate first: a client that sees the new generation's behaviour can then
        // already get the new certificate on its next handshake.
        self.shared
            .resolver
            .set(generation.config.tls.certified.clone());
        // Trust anchors and registered certificates are part of the generation (checked
        // per request); only whether to ask for a certificate lives in the TLS config.
        self.shared
            .client_certs
            .set(generation.config.tls.client_auth.is_some());
        publish_jwks(&generation);
        self.current.store(Arc::new(generation));
        Ok(())
    }
}

/// Writes the generation's JWK Set to `internal_header.jwks_file`, if set, for upstreams
/// that read keys from a shared volume: to a temporary file in the same directory, then
/// renamed over it, so a reader never sees half a set. A failure is logged; the keys are
/// still served by the admin listener.
pub fn publish_jwks(generation: &Generation) {
    let Some(path) = &generation.config.internal_header.jwks_file else {
        return;
    };
    let tmp = path.with_extension("tmp-secretgate");
    let written =
        std::fs::write(&tmp, generation.jwks.as_bytes()).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        tracing::error!(path = %path.display(), error = %e, "cannot write internal_header.jwks_file");
    }
}

fn same_state(a: &StateConfig, b: &StateConfig) -> bool {
    match (a, b) {
        (StateConfig::Memory, StateConfig::Memory) => true,
        (StateConfig::Redis(a), StateConfig::Redis(b)) => a == b,
        _ => false,
    }
}

/// The watched files as they are now.
async fn look(files: &[Source]) -> Vec<Source> {
    let files = files.to_vec();
    tokio::task::spawn_blocking(move || files.iter().map(Source::now).collect())
        .await
        .unwrap_or_default()
}

/// Polls the config file and every file it names, and reloads when any differs from what
/// the last load (or failed attempt) read. Runs until aborted. A failed reload is retried
/// only once something changes again, including a file that was missing appearing.
pub async fn watch(reloader: Reloader) {
    let Some(path) = reloader.source.clone() else {
        return;
    };
    // Exactly what the serving config was built from: a change made at any moment after
    // a file was read shows up as a difference, whatever the timing.
    let mut generation = reloader.current();
    let mut loaded = generation.config.sources.clone();
    if !loaded.iter().any(|s| s.path == path) {
        // Built from text rather than loaded from the file: watch the file from now on.
        loaded.insert(0, Source::read(&path).0);
    }
    loop {
        let (watch, interval) = (
            generation.config.reload.watch,
            generation.config.reload.poll_interval,
        );
        tokio::time::sleep(interval).await;
        let now = reloader.current();
        if !Arc::ptr_eq(&now, &generation) {
            // Reloaded meanwhile (SIGHUP): compare with what that reload read.
            loaded = now.config.sources.clone();
            generation = now;
        }
        if !watch {
            // SIGHUP may turn watching back on; check again later.
            continue;
        }
        if look(&loaded).await == loaded {
            continue;
        }
        tracing::info!("a watched file changed: reloading");
        let (_, read) = reloader.reload_traced().await;
        loaded = read;
        generation = reloader.current();
    }
}

/// Reloads on every SIGHUP. Runs until aborted.
#[cfg(unix)]
pub async fn on_sighup(reloader: Reloader) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload by file change only");
            return;
        }
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading");
        let _ = reloader.reload().await;
    }
}
