//! The public keys of `private_key_jwt` clients registered with a `jwks_uri`
//! (docs/design.md §2.14): fetched off the request path, kept across reloads.
//!
//! - Every configured URI has an entry holding its last good key set. At start-up, after
//!   a reload that adds a URI, and every `jwks_fetch.refresh` (a `Cache-Control: max-age`
//!   within [1 min, 1 h] wins), [`run`] fetches it in the background. A failed fetch keeps
//!   the last good set and is retried after `min_refetch_interval` (or `refresh` if
//!   shorter); failures are counted and logged at WARN at most once per 5 minutes per
//!   URI, recovery at INFO.
//! - A request whose assertion names an unknown `kid` may trigger one fetch
//!   ([`KeySets::refetch`]): at most one per URI per `min_refetch_interval` (the
//!   scheduled fetches do not count), and concurrent requests share it (single flight).
//! - A URI never fetched successfully has no set: its clients get 503 (the
//!   authenticator's decision; this module only says there is none).
//! - Entries outlive configuration generations (a reload keeps the set of an unchanged
//!   URI, drops removed ones); the fetch settings follow each reload.
//!
//! Invariant: nothing here runs on behalf of a request except a rate-limited refetch.

pub mod fetch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use secretgate_verify::Jwk;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::{ClientKeySet, Config, JwksFetchConfig};
use crate::metrics::{JwksFetchOutcome, Metrics};
use fetch::FetchError;

/// Bounds on how long a `max-age` may keep a set before it is fetched again.
const MIN_MAX_AGE: Duration = Duration::from_secs(60);
const MAX_MAX_AGE: Duration = Duration::from_secs(3600);
/// At most one WARN per URI in this long while fetches keep failing.
const WARN_EVERY: Duration = Duration::from_secs(300);

/// The fetch settings of the current configuration.
struct Settings {
    cfg: JwksFetchConfig,
    /// The TLS client configuration, or why there is none (no trust anchors).
    tls: Result<Arc<rustls::ClientConfig>, String>,
}

#[derive(Default)]
struct Schedule {
    /// When the last fetch, scheduled or not, started.
    last_attempt: Option<Instant>,
    /// When the last fetch on behalf of an unknown `kid` started: the one that
    /// `min_refetch_interval` limits.
    last_refetch: Option<Instant>,
    next_due: Option<Instant>,
    /// Whether the last attempt succeeded (for logging the transitions).
    healthy: Option<bool>,
    warned_at: Option<Instant>,
}

struct Entry {
    uri: String,
    /// The clients registered with this URI (for the per-client key gauge).
    clients: Mutex<Vec<String>>,
    keys: ArcSwapOption<Vec<Jwk>>,
    schedule: Mutex<Schedule>,
    /// Held while a fetch runs: concurrent refetches wait for it instead of fetching too.
    fetching: tokio::sync::Mutex<()>,
}

/// Every `jwks_uri` key set, shared by all generations.
pub struct KeySets {
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    settings: ArcSwap<Settings>,
    metrics: Arc<Metrics>,
    /// Wakes [`run`] when entries or settings change.
    changed: Notify,
}

impl std::fmt::Debug for KeySets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySets").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl KeySets {
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Arc<KeySets> {
        let sets = Arc::new(KeySets {
            entries: Mutex::new(HashMap::new()),
            settings: ArcSwap::from_pointee(settings(&config.jwks_fetch)),
            metrics,
            changed: Notify::new(),
        });
        sets.configure(config);
        sets
    }

    /// Applies a (re)loaded configuration: the fetch settings, an entry per configured
    /// URI (new ones fetched at once, unchanged ones keep their set), removed ones gone.
    /// Also sets the key gauge of the clients with a static `jwks`.
    pub fn configure(&self, config: &Config) {
        if self.settings.load().cfg != config.jwks_fetch {
            self.settings.store(Arc::new(settings(&config.jwks_fetch)));
        }
        let mut by_uri: HashMap<&str, Vec<String>> = HashMap::new();
        for c in &config.clients {
            match &c.key_set {
                Some(ClientKeySet::Uri(uri)) => {
                    by_uri.entry(uri).or_default().push(c.client_id.to_string())
                }
                Some(ClientKeySet::Static(keys)) => {
                    self.metrics.jwks_keys(&c.client_id, Some(keys.len()))
                }
                None => {}
            }
        }
        let mut entries = lock(&self.entries);
        entries.retain(|uri, entry| {
            let keep = by_uri.contains_key(uri.as_str());
            if !keep {
                for id in lock(&entry.clients).iter() {
                    self.metrics.jwks_keys(id, None);
                }
            }
            keep
        });
        for (uri, clients) in by_uri {
            let entry = entries.entry(uri.to_owned()).or_insert_with(|| {
                Arc::new(Entry {
                    uri: uri.to_owned(),
                    clients: Mutex::new(Vec::new()),
                    keys: ArcSwapOption::empty(),
                    schedule: Mutex::new(Schedule::default()),
                    fetching: tokio::sync::Mutex::new(()),
                })
            });
            let held = entry.keys.load().as_ref().map(|k| k.len());
            for id in &clients {
                if let Some(n) = held {
                    self.metrics.jwks_keys(id, Some(n));
                }
            }
            *lock(&entry.clients) = clients;
        }
        drop(entries);
        self.changed.notify_one();
    }

    fn entry(&self, uri: &str) -> Option<Arc<Entry>> {
        lock(&self.entries).get(uri).cloned()
    }

    /// The last good key set of `uri`, if it was ever fetched.
    pub fn keys(&self, uri: &str) -> Option<Arc<Vec<Jwk>>> {
        self.entry(uri)?.keys.load_full()
    }

    /// An assertion named a `kid` the set of `uri` does not have: fetch again, unless an
    /// unknown `kid` already caused a fetch less than `min_refetch_interval` ago, sharing a
    /// fetch in flight. Scheduled fetches do not count against the interval: a client that
    /// rotates its key just after a refresh must not wait for the interval to pass.
    /// Returns the set as it is afterwards.
    pub async fn refetch(&self, uri: &str) -> Option<Arc<Vec<Jwk>>> {
        let entry = self.entry(uri)?;
        let asked = Instant::now();
        let min = self.settings.load().cfg.min_refetch_interval;
        // At most one fetch per URI per interval on behalf of requests (§2.14): a flood
        // of made-up kids must not become a flood of fetches.
        let limited = |s: &Schedule| s.last_refetch.is_some_and(|t| asked < t + min);
        if limited(&lock(&entry.schedule)) {
            return entry.keys.load_full();
        }
        let _fetching = entry.fetching.lock().await;
        // A fetch that started while this request waited for the one in flight stands for
        // this one (so does the refetch it waited for, now recorded).
        let served = {
            let schedule = lock(&entry.schedule);
            limited(&schedule) || schedule.last_attempt.is_some_and(|t| t >= asked)
        };
        if served {
            return entry.keys.load_full();
        }
        let started = Instant::now();
        self.fetch_now(&entry).await;
        // Recorded once done, while still holding `fetching`: a request that arrives
        // meanwhile waits for this fetch rather than answering from the old set.
        lock(&entry.schedule).last_refetch = Some(started);
        entry.keys.load_full()
    }

    /// Fetches `entry` once (the caller holds `fetching`), records the outcome and
    /// schedules the next fetch.
    async fn fetch_now(&self, entry: &Entry) {
        let settings = self.settings.load_full();
        let started = Instant::now();
        let result = match &settings.tls {
            Ok(tls) => fetch::fetch(&entry.uri, &settings.cfg, tls.clone()).await,
            Err(e) => Err(FetchError::Roots(e.clone())),
        };
        let now = Instant::now();
        let mut schedule = lock(&entry.schedule);
        schedule.last_attempt = Some(started);
        match result {
            Ok(fetched) => {
                self.metrics
                    .jwks_fetched(JwksFetchOutcome::ok, fetched.ignored);
                if fetched.ignored > 0 {
                    tracing::warn!(uri = %entry.uri, ignored = fetched.ignored, "jwks_uri: keys dropped from the set (private, not for signatures, unsupported or a repeated kid)");
                }
                let every = fetched
                    .max_age
                    .map_or(settings.cfg.refresh, |a| a.clamp(MIN_MAX_AGE, MAX_MAX_AGE));
                schedule.next_due = Some(now + every);
                if schedule.healthy == Some(false) {
                    tracing::info!(uri = %entry.uri, keys = fetched.keys.len(), "jwks_uri fetched again");
                }
                schedule.healthy = Some(true);
                for id in lock(&entry.clients).iter() {
                    self.metrics.jwks_keys(id, Some(fetched.keys.len()));
                }
                entry.keys.store(Some(Arc::new(fetched.keys)));
            }
            Err(e) => {
                self.metrics.jwks_fetched(outcome_of(&e), 0);
                let retry = settings.cfg.min_refetch_interval.min(settings.cfg.refresh);
                schedule.next_due = Some(now + retry.max(Duration::from_secs(1)));
                let warn = schedule.healthy != Some(false)
                    || schedule.warned_at.is_none_or(|t| now >= t + WARN_EVERY);
                if warn {
                    schedule.warned_at = Some(now);
                    let kept = entry.keys.load().is_some();
                    tracing::warn!(
                        uri = %entry.uri,
                        error = %crate::error::error_chain(&e),
                        kept_last_good_set = kept,
                        "jwks_uri fetch failed"
                    );
                }
                schedule.healthy = Some(false);
            }
        }
    }

    /// Fetches every entry that is due; returns when the next one will be.
    async fn fetch_due(&self) -> Option<Instant> {
        let entries: Vec<Arc<Entry>> = lock(&self.entries).values().cloned().collect();
        let now = Instant::now();
        for entry in &entries {
            let due = lock(&entry.schedule).next_due.is_none_or(|t| t <= now);
            if due {
                let _fetching = entry.fetching.lock().await;
                // A refetch may have run meanwhile and rescheduled it.
                if lock(&entry.schedule)
                    .next_due
                    .is_none_or(|t| t <= Instant::now())
                {
                    self.fetch_now(entry).await;
                }
            }
        }
        entries
            .iter()
            .filter_map(|e| lock(&e.schedule).next_due)
            .min()
    }
}

/// Keeps every `jwks_uri` set fresh until the task is aborted: fetches what is due, then
/// sleeps until the next one is, or until a reload changes the entries.
pub async fn run(sets: Arc<KeySets>) {
    loop {
        let next = sets.fetch_due().await;
        let changed = sets.changed.notified();
        match next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = changed => {}
                }
            }
            None => changed.await,
        }
    }
}

fn settings(cfg: &JwksFetchConfig) -> Settings {
    Settings {
        cfg: cfg.clone(),
        tls: fetch::tls_config(cfg.ca_pem.as_deref()).map_err(|e| e.to_string()),
    }
}

fn outcome_of(e: &FetchError) -> JwksFetchOutcome {
    match e {
        FetchError::Redirect(_) => JwksFetchOutcome::redirect,
        FetchError::Status(_) => JwksFetchOutcome::status,
        FetchError::TooLarge => JwksFetchOutcome::too_large,
        FetchError::NotJwks => JwksFetchOutcome::invalid,
        FetchError::NotHttps
        | FetchError::Roots(_)
        | FetchError::Timeout
        | FetchError::Connect(_)
        | FetchError::Tls(_)
        | FetchError::Http(_) => JwksFetchOutcome::unreachable,
    }
}
