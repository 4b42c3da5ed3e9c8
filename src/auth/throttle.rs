//! Brute-force protection for client authentication (RFC 6749 §2.3.1: "the authorization
//! server MUST protect any endpoint utilizing it against brute force attacks").
//!
//! Failed authentications are counted per (client_id, source) and per source within a
//! fixed window that starts at the first failure. Over either threshold, requests are
//! refused with `429 slow_down` before any secret is checked. Keying by source too means
//! an attacker elsewhere cannot lock a legitimate client out. A source is an IPv4 address
//! or an IPv6 /64: one host holds a whole /64, so rotating addresses inside it must not
//! reset the counters. Successful authentications do not reset the counters: an attacker
//! who also owns a valid credential must not be able to clear them.
//!
//! With `state.backend: redis` the counters live in Redis, shared by every replica: a
//! failure is counted there (`SET NX EX window`, `INCR`, for both keys, atomically, the
//! keys sharing the source as hash tag) and announced on a pub/sub channel. Each replica
//! keeps a local view of the sources with recent failures anywhere (its own, and those it
//! heard of), so a request from a source with none costs no round trip; a request from a
//! suspect source reads the shared counters first. While the subscription is down, or for
//! one window after it (re)starts (messages may have been missed), every source counts as
//! suspect. If Redis cannot be reached, decisions fall back to this process's own
//! counters, which are always kept (logged, and counted in
//! `secretgate_throttle_local_fallbacks_total`).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;

use crate::config::ThrottleConfig;
use crate::error::Throttled;
use crate::metrics::{Metrics, StateOp};
use crate::state::{Query, RedisState};

/// Most distinct keys tracked at once; beyond that the oldest counters are dropped first.
const MAX_KEYS: u64 = 200_000;

/// Where failures come from: an IPv4 address, or the /64 an IPv6 address is in (an IPv4
/// address mapped into IPv6 counts as IPv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    V4(u32),
    V6(u64),
}

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(u32::from(v4)),
                None => Source::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Source::V4(a) => write!(f, "{}", std::net::Ipv4Addr::from(a)),
            Source::V6(p) => write!(f, "{}/64", std::net::Ipv6Addr::from(u128::from(p) << 64)),
        }
    }
}

/// Counters that expire `window` after their first failure (a fixed window).
fn counters<K>(window: Duration) -> Cache<K, Arc<AtomicU32>>
where
    K: std::hash::Hash + Eq + Send + Sync + Clone + 'static,
{
    Cache::builder()
        .max_capacity(MAX_KEYS)
        .time_to_live(window)
        .build()
}

/// This process's own counters: the whole throttle with `state.backend: memory`, and the
/// fallback with Redis.
struct Local {
    per_client: Cache<(String, Source), Arc<AtomicU32>>,
    per_source: Cache<Source, Arc<AtomicU32>>,
    window: Duration,
    /// When the last failure was recorded (ms since `start`, 0 for never). A counter lives
    /// `window` from its creation, at a failure: with no failure for a window, every
    /// counter is gone, and a check needs no lookup (no key built, nothing hashed).
    last_failure_ms: AtomicU64,
    start: Instant,
}

impl Local {
    fn new(window: Duration) -> Self {
        Self {
            per_client: counters(window),
            per_source: counters(window),
            window,
            last_failure_ms: AtomicU64::new(0),
            start: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        // +1: 0 stands for "never".
        self.start.elapsed().as_millis() as u64 + 1
    }

    fn counts(&self, client_id: &str, source: Source) -> (u32, u32) {
        let last = self.last_failure_ms.load(Ordering::Acquire);
        if last == 0 || self.now_ms().saturating_sub(last) > self.window.as_millis() as u64 {
            return (0, 0);
        }
        let get = |c: Option<Arc<AtomicU32>>| c.map_or(0, |c| c.load(Ordering::Relaxed));
        (
            get(self.per_source.get(&source)),
            get(self.per_client.get(&(client_id.to_owned(), source))),
        )
    }

    fn record(&self, client_id: &str, source: Source) {
        self.last_failure_ms
            .fetch_max(self.now_ms(), Ordering::AcqRel);
        self.per_source
            .get_with(source, || Arc::new(AtomicU32::new(0)))
            .fetch_add(1, Ordering::Relaxed);
        self.per_client
            .get_with((client_id.to_owned(), source), || {
                Arc::new(AtomicU32::new(0))
            })
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// What one replica knows of failures anywhere, kept current by pub/sub. Process-wide:
/// it outlives throttles rebuilt on reload.
pub struct SharedView {
    redis: Arc<RedisState>,
    /// Sources with a recent failure on some replica, and until when (ms since `start`).
    suspects: Cache<Source, u64>,
    /// The latest `until` of any suspect: past it, no source is suspect, and a check
    /// needs no lookup.
    suspects_until: AtomicU64,
    subscribed: Arc<AtomicBool>,
    /// Until when (ms since `start`) every source counts as suspect: one window after the
    /// subscription (re)started.
    distrust_until: AtomicU64,
    /// The current `throttle.window`, in ms.
    window_ms: AtomicU64,
    start: Instant,
    metrics: Arc<Metrics>,
}

impl SharedView {
    pub fn new(redis: Arc<RedisState>, metrics: Arc<Metrics>) -> Arc<SharedView> {
        Arc::new(SharedView {
            redis,
            suspects: Cache::builder()
                .max_capacity(MAX_KEYS)
                .time_to_live(Duration::from_secs(24 * 3600))
                .build(),
            subscribed: Arc::new(AtomicBool::new(false)),
            distrust_until: AtomicU64::new(u64::MAX),
            suspects_until: AtomicU64::new(0),
            window_ms: AtomicU64::new(60_000),
            start: Instant::now(),
            metrics,
        })
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn channel(&self) -> String {
        self.redis.key(format_args!("throttle"))
    }

    /// Keeps the view current until aborted: subscribes to the failure announcements of
    /// every replica (reconnecting as needed).
    pub async fn listen(self: Arc<Self>) {
        let view = self.clone();
        let on_subscribed = {
            let view = self.clone();
            move || {
                let until = view.now_ms() + view.window_ms.load(Ordering::Relaxed);
                view.distrust_until.store(until, Ordering::Release);
            }
        };
        let on_message = move |payload: &[u8]| {
            if let Some(source) = parse_announcement(payload) {
                view.suspect(source);
            }
        };
        self.redis
            .clone()
            .subscribe(
                self.channel(),
                self.subscribed.clone(),
                on_subscribed,
                on_message,
            )
            .await;
    }

    fn suspect(&self, source: Source) {
        let until = self.now_ms() + self.window_ms.load(Ordering::Relaxed);
        self.suspects_until.fetch_max(until, Ordering::AcqRel);
        self.suspects.insert(source, until);
    }

    /// Whether a request from `source` must read the shared counters: some replica may
    /// have seen failures from it.
    fn must_ask(&self, source: Source) -> bool {
        let now = self.now_ms();
        !self.subscribed.load(Ordering::Acquire)
            || now < self.distrust_until.load(Ordering::Acquire)
            || (now < self.suspects_until.load(Ordering::Acquire)
                && self.suspects.get(&source).is_some_and(|until| until > now))
    }

    fn keys(&self, client_id: &str, source: Source) -> (String, String) {
        use sha2::{Digest, Sha256};
        let client = crate::jws::encode(&Sha256::digest(client_id)[..12]);
        // `{source}` is the hash tag: both keys of one source are in one cluster slot, so
        // one transaction can touch both.
        (
            self.redis.key(format_args!("throttle:{{{source}}}:source")),
            self.redis
                .key(format_args!("throttle:{{{source}}}:client:{client}")),
        )
    }
}

/// `"<source>"` as announced: `a.b.c.d` or `<v6 prefix>/64`.
fn parse_announcement(payload: &[u8]) -> Option<Source> {
    let text = std::str::from_utf8(payload).ok()?;
    match text.strip_suffix("/64") {
        Some(v6) => v6
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|a| Source::of(a.into())),
        None => text
            .parse::<std::net::Ipv4Addr>()
            .ok()
            .map(|a| Source::of(a.into())),
    }
}

pub struct Throttle {
    local: Local,
    shared: Option<Arc<SharedView>>,
    max_failures: u32,
    max_failures_per_source: u32,
    window: Duration,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("max_failures", &self.max_failures)
            .field("max_failures_per_address", &self.max_failures_per_source)
            .field("window", &self.window)
            .field("shared", &self.shared.is_some())
            .finish()
    }
}

impl Throttle {
    /// A throttle with this process's counters only.
    pub fn new(cfg: &ThrottleConfig) -> Self {
        Self::with_shared(cfg, None)
    }

    /// A throttle whose counters are shared through `shared` (Redis), with this process's
    /// own as the fallback.
    pub fn with_shared(cfg: &ThrottleConfig, shared: Option<Arc<SharedView>>) -> Self {
        if let Some(view) = &shared {
            view.window_ms
                .store(cfg.window.as_millis() as u64, Ordering::Relaxed);
        }
        Self {
            local: Local::new(cfg.window),
            shared,
            max_failures: cfg.max_failures,
            max_failures_per_source: cfg.max_failures_per_address,
            window: cfg.window,
        }
    }

    fn decide(&self, (per_source, per_client): (u32, u32)) -> Result<(), Throttled> {
        if per_source >= self.max_failures_per_source || per_client >= self.max_failures {
            Err(Throttled {
                retry_after: self.window,
            })
        } else {
            Ok(())
        }
    }

    /// Refuses when this client and source, or this source alone, failed too often.
    pub async fn check(&self, client_id: &str, addr: IpAddr) -> Result<(), Throttled> {
        let source = Source::of(addr);
        let Some(view) = &self.shared else {
            return self.decide(self.local.counts(client_id, source));
        };
        // No failure from this source anywhere that this replica knows of: no round trip.
        if !view.must_ask(source) {
            return Ok(());
        }
        // Redis just failed: decide on this process's counters rather than wait again.
        if view.redis.recently_failed() {
            view.metrics.throttle_fell_back();
            return self.decide(self.local.counts(client_id, source));
        }
        let (source_key, client_key) = view.keys(client_id, source);
        let mut cmd = redis::cmd("MGET");
        cmd.arg(source_key).arg(client_key);
        match view
            .redis
            .run::<(Option<u32>, Option<u32>)>(StateOp::throttle_check, Query::Cmd(&cmd))
            .await
        {
            Ok((s, c)) => self.decide((s.unwrap_or(0), c.unwrap_or(0))),
            Err(_) => {
                view.metrics.throttle_fell_back();
                self.decide(self.local.counts(client_id, source))
            }
        }
    }

    /// Records one failed authentication, here and (with Redis) for every replica.
    pub async fn record_failure(&self, client_id: &str, addr: IpAddr) {
        let source = Source::of(addr);
        self.local.record(client_id, source);
        let Some(view) = &self.shared else {
            return;
        };
        view.suspect(source);
        let (source_key, client_key) = view.keys(client_id, source);
        let window = self.window.as_secs().max(1);
        let mut pipe = redis::pipe();
        // The window starts at the first failure: the expiry is set only with the key.
        pipe.atomic()
            .cmd("SET")
            .arg(&source_key)
            .arg(0)
            .arg("NX")
            .arg("EX")
            .arg(window)
            .ignore()
            .cmd("INCR")
            .arg(&source_key)
            .ignore()
            .cmd("SET")
            .arg(&client_key)
            .arg(0)
            .arg("NX")
            .arg("EX")
            .arg(window)
            .ignore()
            .cmd("INCR")
            .arg(&client_key)
            .ignore();
        let recorded = view
            .redis
            .run::<()>(StateOp::throttle_record, Query::Pipe(&pipe))
            .await;
        if recorded.is_ok() {
            // Tell every replica to ask Redis about this source from now on.
            let mut publish = redis::cmd("PUBLISH");
            publish.arg(view.channel()).arg(source.to_string());
            let _ = view
                .redis
                .run::<i64>(StateOp::throttle_record, Query::Cmd(&publish))
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        Throttle::new(&ThrottleConfig {
            max_failures: 3,
            max_failures_per_address: 5,
            window: Duration::from_secs(60),
        })
    }

    #[tokio::test]
    async fn client_and_address_thresholds() {
        let t = throttle();
        let attacker: IpAddr = "10.0.0.66".parse().unwrap();
        let user: IpAddr = "10.0.0.7".parse().unwrap();
        for _ in 0..3 {
            assert!(t.check("billing", attacker).await.is_ok());
            t.record_failure("billing", attacker).await;
        }
        assert_eq!(
            t.check("billing", attacker).await,
            Err(Throttled {
                retry_after: Duration::from_secs(60)
            })
        );
        // The legitimate client elsewhere is not locked out.
        assert!(t.check("billing", user).await.is_ok());
        // Another client from the attacker's address: allowed until the address limit.
        assert!(t.check("reports", attacker).await.is_ok());
        t.record_failure("reports", attacker).await;
        t.record_failure("other", attacker).await;
        assert!(
            t.check("third", attacker).await.is_err(),
            "address limit of 5 reached"
        );
    }

    #[tokio::test]
    async fn an_ipv6_host_counts_as_its_slash_64() {
        let t = throttle();
        for i in 0..3u16 {
            let ip: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
            t.record_failure("billing", ip).await;
        }
        // Rotating through the /64 does not reset the counters.
        let rotated: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:fffe".parse().unwrap();
        assert!(t.check("billing", rotated).await.is_err());
        // The next /64 is another source.
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(t.check("billing", other).await.is_ok());
    }

    #[test]
    fn sources_are_v4_addresses_or_v6_prefixes() {
        let mapped: IpAddr = "::ffff:203.0.113.5".parse().unwrap();
        assert_eq!(
            Source::of(mapped),
            Source::of("203.0.113.5".parse().unwrap())
        );
        let v6 = Source::of("2001:db8:1:2:3:4:5:6".parse().unwrap());
        assert_eq!(v6.to_string(), "2001:db8:1:2::/64");
        assert_eq!(parse_announcement(b"2001:db8:1:2::/64"), Some(v6));
        assert_eq!(parse_announcement(b"203.0.113.5"), Some(Source::of(mapped)));
        assert_eq!(parse_announcement(b"2001:db8::1"), None);
        assert_eq!(parse_announcement(b"nonsense"), None);
    }
}
