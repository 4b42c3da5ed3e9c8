//! Verifying hashed client secrets without letting the slow path become a weapon
//! (docs/design.md §2.7).
//!
//! - A verification (argon2id, bcrypt, PBKDF2: tens to hundreds of milliseconds) runs on a
//!   blocking thread, never on an event loop. At most `hashing.max_concurrent` run at once
//!   over all workers, and at most `hashing.max_queued` wait for a turn; past that the
//!   request is refused at once with `503` (counted): a flood of wrong secrets costs the
//!   gateway a bounded amount of CPU and never stalls other requests. The throttle is
//!   checked before any of this (authenticator.rs).
//! - A successful verification is remembered for `hashing.verify_cache_ttl` (default 5 min),
//!   so the steady state of a client costs one HMAC, not one argon2. The cache key is an
//!   HMAC, under a random key of this process, of the client id, every hash the client has
//!   and the presented secret: it holds no secret, and a hash changed by a reload never
//!   matches a verification made against the old one. Failures are never cached.
//! - Single flight: requests with the same key (client id, the client's hashes, presented
//!   secret) that arrive while one of them verifies wait for its answer instead of
//!   verifying again, so an entry that expires, or a client's first requests, under load
//!   cost one verification, not one per request in flight. Waiting takes no slot of the
//!   bound (it costs no CPU). Only the answer of a finished verification is handed on, and
//!   only to requests of the same key, which would have computed that very answer; a
//!   leader whose verification did not finish (its request abandoned, its thread failed)
//!   hands on nothing, and a waiter then verifies itself. Unknown clients fly the same way,
//!   keyed by the id presented, so waiting says nothing about which ids exist.
//! - Every hash of a client is tried, with no early exit, as with plain secrets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use hmac::{Hmac, Mac};
use moka::sync::Cache;
use rand::RngCore;
use sha2::Sha256;
use tokio::sync::{watch, Semaphore};

use crate::config::HashingConfig;
use crate::hashes::StoredHash;
use crate::metrics::{HashOutcome, Metrics};
use crate::secret::Secret;

/// Most verifications remembered at once.
const CACHE_CAPACITY: u64 = 100_000;

/// A cache and single-flight key: an HMAC of the client id, its hashes and the secret.
type Key = [u8; 32];

/// Verifications in flight, by key: the leader's answer (`None` until it has one).
type Flights = Mutex<HashMap<Key, watch::Sender<Option<bool>>>>;

/// The pool of hash verifications was full: the request is refused (503).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("hash verifications at capacity")]
pub struct Saturated;

/// Process-wide: the cache and the pool outlive config generations (rebuilt only when
/// the `hashing` settings change).
pub struct Hasher {
    cache: Option<Cache<Key, ()>>,
    cache_key: Hmac<Sha256>,
    flights: Flights,
    permits: Arc<Semaphore>,
    /// Verifications running or waiting for a permit (leaders only).
    pending: AtomicUsize,
    max_pending: usize,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("cache", &self.cache.is_some())
            .field("max_pending", &self.max_pending)
            .finish_non_exhaustive()
    }
}

/// What a request does about its key ([`Hasher::join`]).
enum Flight<'a> {
    /// A verification of this key succeeded a moment ago.
    Cached,
    /// Another request verifies this key: wait for its answer.
    Wait(watch::Receiver<Option<bool>>),
    /// Verify, and hand the answer on.
    Lead(Leading<'a>),
    /// No verification of this key in flight and no slot for one.
    Saturated,
}

impl Hasher {
    pub fn new(cfg: &HashingConfig, metrics: Arc<Metrics>) -> Hasher {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Hasher {
            cache: (!cfg.verify_cache_ttl.is_zero()).then(|| {
                Cache::builder()
                    .max_capacity(CACHE_CAPACITY)
                    .time_to_live(cfg.verify_cache_ttl)
                    .build()
            }),
            cache_key: <Hmac<Sha256> as Mac>::new_from_slice(&key)
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
            flights: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(cfg.max_concurrent.max(1))),
            pending: AtomicUsize::new(0),
            max_pending: cfg.max_concurrent.max(1) + cfg.max_queued,
            metrics,
        }
    }

    /// The cache key: nothing in it can be turned back into the secret.
    fn cache_key(&self, client_id: &str, hashes: &[Arc<StoredHash>], presented: &Secret) -> Key {
        let mut mac = self.cache_key.clone();
        let mut field = |bytes: &[u8]| {
            mac.update(&(bytes.len() as u64).to_be_bytes());
            mac.update(bytes);
        };
        field(client_id.as_bytes());
        for h in hashes {
            field(h.text().as_bytes());
        }
        field(presented.expose());
        mac.finalize().into_bytes().into()
    }

    /// Whether `presented` matches one of `work`, all of which are verified (the client's
    /// `hashes` and decoys, registry.rs). `client_id` is the id the request presented;
    /// `hashes` are that client's own (none for an unknown client or one with plain
    /// secrets only). A success is cached under them when there are any.
    pub async fn verify(
        &self,
        client_id: &str,
        hashes: &[Arc<StoredHash>],
        work: &[Arc<StoredHash>],
        presented: &Secret,
    ) -> Result<bool, Saturated> {
        let key = self.cache_key(client_id, hashes, presented);
        // Only a registered client's own hashes are cached; an unknown client never is.
        let cache = self.cache.as_ref().filter(|_| !hashes.is_empty());
        if let Some(cache) = cache {
            if cache.contains_key(&key) {
                self.metrics.hash_cache(true);
                return Ok(true);
            }
            self.metrics.hash_cache(false);
        }
        loop {
            let mut answer = match self.join(key, cache) {
                Flight::Cached => return Ok(true),
                Flight::Saturated => return Err(Saturated),
                Flight::Lead(lead) => return Ok(self.run(lead, cache, work, presented).await),
                Flight::Wait(answer) => answer,
            };
            // A leader that did not finish hands on nothing (Err, or no value): this
            // request then leads, or waits for a newer leader, itself.
            if let Ok(Some(matched)) = answer.wait_for(Option::is_some).await.map(|a| *a) {
                return Ok(matched);
            }
        }
    }

    /// Joins the verification of `key` in flight, or leads a new one if a slot is free.
    fn join(&self, key: Key, cache: Option<&Cache<Key, ()>>) -> Flight<'_> {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = flights.get(&key) {
            return Flight::Wait(flight.subscribe());
        }
        // A leader caches its success before it leaves `flights`: one that just left is
        // seen here, not verified again.
        if cache.is_some_and(|c| c.contains_key(&key)) {
            return Flight::Cached;
        }
        // Bounded: past max_concurrent running and max_queued waiting, refuse at once.
        if self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_pending).then_some(n + 1)
            })
            .is_err()
        {
            self.metrics.hash_verification(HashOutcome::saturated);
            return Flight::Saturated;
        }
        flights.insert(key, watch::channel(None).0);
        Flight::Lead(Leading {
            flights: &self.flights,
            key,
            answer: None,
            _pending: Pending(&self.pending),
        })
    }

    /// Verifies as the leader of `lead`'s key; the answer goes to the waiters when `lead`
    /// is dropped (also when this future is).
    async fn run(
        &self,
        mut lead: Leading<'_>,
        cache: Option<&Cache<Key, ()>>,
        work: &[Arc<StoredHash>],
        presented: &Secret,
    ) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let work: Vec<Arc<StoredHash>> = work.to_vec();
        let secret = presented.clone();
        // Off the event loop: a verification takes tens of milliseconds of CPU.
        let verified = tokio::task::spawn_blocking(move || {
            work.iter()
                .fold(false, |ok, h| h.verify(secret.expose()) | ok)
        })
        .await
        .ok();
        // A verification that did not run to its end is a refusal, handed on to no one.
        let matched = verified.unwrap_or(false);
        self.metrics.hash_verification(if matched {
            HashOutcome::matched
        } else {
            HashOutcome::mismatched
        });
        // Only successes are remembered; an unknown client never is. Before the flight
        // ends, so that no request misses both.
        if let (true, Some(cache)) = (matched, cache) {
            cache.insert(lead.key, ());
        }
        lead.answer = verified;
        matched
    }

    /// Requests waiting for another one's verification of `key` (tests).
    #[cfg(test)]
    fn waiting(&self, key: &Key) -> usize {
        let flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        flights.get(key).map_or(0, |f| f.receiver_count())
    }
}

/// A verification being led: ends its flight when dropped, handing its answer, if it has
/// one, to the requests waiting for it.
struct Leading<'a> {
    flights: &'a Flights,
    key: Key,
    answer: Option<bool>,
    /// The leader's slot of the bound, given back after the flight ends.
    _pending: Pending<'a>,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if let (Some(flight), Some(answer)) = (flights.remove(&self.key), self.answer) {
            flight.send_replace(Some(answer));
        }
    }
}

/// Gives a pending slot back when dropped (also when the request is abandoned).
struct Pending<'a>(&'a AtomicUsize);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::task::JoinHandle;

    use super::*;
    use crate::hashes::{make_hash, HashParams};

    /// Requests sent at once in the single-flight tests.
    const CONCURRENT: usize = 32;

    fn hash(secret: &str) -> Arc<StoredHash> {
        let text = make_hash(secret.as_bytes(), HashParams::Argon2id(19456, 2, 1)).unwrap();
        Arc::new(StoredHash::parse(&text).unwrap())
    }

    fn hasher(ttl: Duration, concurrent: usize, queued: usize) -> Hasher {
        Hasher::new(
            &HashingConfig {
                verify_cache_ttl: ttl,
                max_concurrent: concurrent,
                max_queued: queued,
            },
            Arc::new(Metrics::new()),
        )
    }

    /// A series of `secretgate_hash_verifications_total` or `…_verify_cache_total`, as
    /// `/metrics` exports it.
    fn counted(h: &Hasher, series: &str) -> u64 {
        let text = h.metrics.encode(None);
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0)
    }

    fn verifications(h: &Hasher, outcome: &str) -> u64 {
        counted(
            h,
            &format!("secretgate_hash_verifications_total{{outcome=\"{outcome}\"}}"),
        )
    }

    /// Yields to the spawned requests until `done` holds (bounded: fails, never hangs).
    async fn until(what: &str, done: impl Fn() -> bool) {
        for _ in 0..100_000 {
            if done() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("never happened: {what}");
    }

    fn request(
        h: &Arc<Hasher>,
        hashes: &Arc<[Arc<StoredHash>]>,
        secret: &'static str,
    ) -> JoinHandle<Result<bool, Saturated>> {
        let (h, hashes) = (h.clone(), hashes.clone());
        tokio::spawn(async move { h.verify("c", &hashes, &hashes, &Secret::new(secret)).await })
    }

    #[tokio::test]
    async fn successes_are_cached_failures_are_not_and_a_new_hash_misses() {
        let h = hasher(Duration::from_secs(60), 2, 8);
        let old = [hash("right")];
        let right = Secret::new("right");
        assert_eq!(h.verify("c", &old, &old, &right).await, Ok(true));
        assert_eq!(
            h.verify("c", &old, &old, &Secret::new("wrong")).await,
            Ok(false)
        );
        let cached = h.cache_key("c", &old, &right);
        let cache = h.cache.as_ref().unwrap();
        assert!(cache.contains_key(&cached));
        cache.run_pending_tasks();
        assert_eq!(cache.entry_count(), 1, "the failure was not cached");
        // The hash changed (a reload): the old verification does not count.
        let new = [hash("other")];
        assert_eq!(h.verify("c", &new, &new, &right).await, Ok(false));
        // Unknown clients (the decoy) are never cached.
        let _ = h.verify("c", &[], &old, &right).await;
        assert!(!h
            .cache
            .as_ref()
            .unwrap()
            .contains_key(&h.cache_key("c", &new, &right)));
    }

    /// The stampede: many first requests of one client with its right secret, all in
    /// flight before any verification can start, cost one verification; every request
    /// gets the answer, and the next one is a cache hit.
    #[tokio::test]
    async fn concurrent_first_requests_cost_one_verification() {
        let h = Arc::new(hasher(Duration::from_secs(60), 1, 8));
        let hashes: Arc<[Arc<StoredHash>]> = Arc::from([hash("right")]);
        let key = h.cache_key("c", &hashes, &Secret::new("right"));
        // The only permit is held: the first request leads and waits for it.
        let permit = h.permits.clone().acquire_owned().await.unwrap();
        let requests: Vec<_> = (0..CONCURRENT)
            .map(|_| request(&h, &hashes, "right"))
            .collect();
        until("every other request waits for the leader", || {
            h.waiting(&key) == CONCURRENT - 1
        })
        .await;
        drop(permit);
        for r in requests {
            assert_eq!(r.await.unwrap(), Ok(true));
        }
        assert_eq!(verifications(&h, "matched"), 1);
        let misses = "secretgate_hash_verify_cache_total{result=\"miss\"}";
        assert_eq!(counted(&h, misses), CONCURRENT as u64);
        assert_eq!(
            h.verify("c", &hashes, &hashes, &Secret::new("right")).await,
            Ok(true)
        );
        let hits = "secretgate_hash_verify_cache_total{result=\"hit\"}";
        assert_eq!(counted(&h, hits), 1);
        assert_eq!(verifications(&h, "matched"), 1);
        assert_eq!(h.pending.load(Ordering::Acquire), 0, "the slot came back");
    }

    /// Wrong secrets in flight next to right ones change no right answer; a leader that
    /// is abandoned hands on nothing (a waiter verifies instead); failures are shared
    /// only with requests of the same secret, and never cached.
    #[tokio::test]
    async fn a_failure_or_an_abandoned_leader_poisons_no_waiter() {
        let h = Arc::new(hasher(Duration::from_secs(60), 1, 2 * CONCURRENT));
        let hashes: Arc<[Arc<StoredHash>]> = Arc::from([hash("right")]);
        let right = h.cache_key("c", &hashes, &Secret::new("right"));
        let wrong = h.cache_key("c", &hashes, &Secret::new("wrong"));

        // Wrong and right secrets of one client, all in flight at once.
        let permit = h.permits.clone().acquire_owned().await.unwrap();
        let mut requests = Vec::new();
        for _ in 0..CONCURRENT / 2 {
            requests.push((false, request(&h, &hashes, "wrong")));
            requests.push((true, request(&h, &hashes, "right")));
        }
        until("both flights have all their waiters", || {
            h.waiting(&right) == CONCURRENT / 2 - 1 && h.waiting(&wrong) == CONCURRENT / 2 - 1
        })
        .await;
        drop(permit);
        for (expected, r) in requests {
            assert_eq!(r.await.unwrap(), Ok(expected));
        }
        assert_eq!(verifications(&h, "matched"), 1);
        assert_eq!(verifications(&h, "mismatched"), 1);
        // The failure was not cached: the same wrong secret is verified again.
        assert_eq!(
            h.verify("c", &hashes, &hashes, &Secret::new("wrong")).await,
            Ok(false)
        );
        assert_eq!(verifications(&h, "mismatched"), 2);

        // A leader abandoned before its verification ran (its client went away).
        let h = Arc::new(hasher(Duration::from_secs(60), 1, 2 * CONCURRENT));
        let right = h.cache_key("c", &hashes, &Secret::new("right"));
        let permit = h.permits.clone().acquire_owned().await.unwrap();
        let leader = request(&h, &hashes, "right");
        until("the leader holds its slot", || {
            h.pending.load(Ordering::Acquire) == 1
        })
        .await;
        let waiters: Vec<_> = (0..CONCURRENT)
            .map(|_| request(&h, &hashes, "right"))
            .collect();
        until("every waiter waits for the leader", || {
            h.waiting(&right) == CONCURRENT
        })
        .await;
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        // One waiter leads now; the others wait for it.
        until("a waiter leads the others", || {
            h.waiting(&right) == CONCURRENT - 1
        })
        .await;
        drop(permit);
        for w in waiters {
            assert_eq!(w.await.unwrap(), Ok(true));
        }
        assert_eq!(verifications(&h, "matched"), 1);
        assert_eq!(verifications(&h, "mismatched"), 0);
        assert_eq!(h.pending.load(Ordering::Acquire), 0, "the slots came back");
    }

    #[tokio::test]
    async fn past_the_bound_verifications_are_refused_at_once() {
        let h = Arc::new(hasher(Duration::ZERO, 1, 0));
        let hashes = [hash("right")];
        // Hold the only slot while another request arrives.
        h.pending.store(h.max_pending, Ordering::Release);
        assert_eq!(
            h.verify("c", &hashes, &hashes, &Secret::new("x")).await,
            Err(Saturated)
        );
        assert_eq!(verifications(&h, "saturated"), 1);
        h.pending.store(0, Ordering::Release);
        assert_eq!(
            h.verify("c", &hashes, &hashes, &Secret::new("right")).await,
            Ok(true)
        );
        assert_eq!(h.pending.load(Ordering::Acquire), 0, "the slot came back");
    }
}
