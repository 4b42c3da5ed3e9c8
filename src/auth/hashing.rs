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
//! - Every hash of a client is tried, with no early exit, as with plain secrets.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hmac::{Hmac, Mac};
use moka::sync::Cache;
use rand::RngCore;
use sha2::Sha256;
use tokio::sync::Semaphore;

use crate::config::HashingConfig;
use crate::hashes::StoredHash;
use crate::metrics::{HashOutcome, Metrics};
use crate::secret::Secret;

/// Most verifications remembered at once.
const CACHE_CAPACITY: u64 = 100_000;

/// The pool of hash verifications was full: the request is refused (503).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("hash verifications at capacity")]
pub struct Saturated;

/// Process-wide: the cache and the pool outlive config generations (rebuilt only when
/// the `hashing` settings change).
pub struct Hasher {
    cache: Option<Cache<[u8; 32], ()>>,
    cache_key: Hmac<Sha256>,
    permits: Arc<Semaphore>,
    /// Verifications running or waiting.
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
            permits: Arc::new(Semaphore::new(cfg.max_concurrent.max(1))),
            pending: AtomicUsize::new(0),
            max_pending: cfg.max_concurrent.max(1) + cfg.max_queued,
            metrics,
        }
    }

    /// The cache key: nothing in it can be turned back into the secret.
    fn cache_key(
        &self,
        client_id: &str,
        hashes: &[Arc<StoredHash>],
        presented: &Secret,
    ) -> [u8; 32] {
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
    /// `hashes` and decoys, registry.rs). `client_id` is `Some` for a registered client with
    /// hashes of its own, whose success is cached under them.
    pub async fn verify(
        &self,
        client_id: Option<&str>,
        hashes: &[Arc<StoredHash>],
        work: &[Arc<StoredHash>],
        presented: &Secret,
    ) -> Result<bool, Saturated> {
        let key = client_id
            .filter(|_| !hashes.is_empty())
            .map(|id| self.cache_key(id, hashes, presented));
        if let (Some(cache), Some(key)) = (&self.cache, &key) {
            if cache.contains_key(key) {
                self.metrics.hash_cache(true);
                return Ok(true);
            }
            self.metrics.hash_cache(false);
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
            return Err(Saturated);
        }
        let _pending = Pending(&self.pending);
        let Ok(_permit) = self.permits.acquire().await else {
            return Err(Saturated);
        };
        let work: Vec<Arc<StoredHash>> = work.to_vec();
        let secret = presented.clone();
        // Off the event loop: a verification takes tens of milliseconds of CPU.
        let matched = tokio::task::spawn_blocking(move || {
            work.iter()
                .fold(false, |ok, h| h.verify(secret.expose()) | ok)
        })
        .await
        .unwrap_or(false);
        self.metrics.hash_verification(if matched {
            HashOutcome::matched
        } else {
            HashOutcome::mismatched
        });
        // Only successes are remembered; an unknown client never is.
        if let (true, Some(cache), Some(key)) = (matched, &self.cache, key) {
            cache.insert(key, ());
        }
        Ok(matched)
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

    use super::*;
    use crate::hashes::{make_hash, HashParams};

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

    #[tokio::test]
    async fn successes_are_cached_failures_are_not_and_a_new_hash_misses() {
        let h = hasher(Duration::from_secs(60), 2, 8);
        let old = [hash("right")];
        let right = Secret::new("right");
        assert_eq!(h.verify(Some("c"), &old, &old, &right).await, Ok(true));
        assert_eq!(
            h.verify(Some("c"), &old, &old, &Secret::new("wrong")).await,
            Ok(false)
        );
        let cached = h.cache_key("c", &old, &right);
        let cache = h.cache.as_ref().unwrap();
        assert!(cache.contains_key(&cached));
        cache.run_pending_tasks();
        assert_eq!(cache.entry_count(), 1, "the failure was not cached");
        // The hash changed (a reload): the old verification does not count.
        let new = [hash("other")];
        assert_eq!(h.verify(Some("c"), &new, &new, &right).await, Ok(false));
        // Unknown clients (the decoy) are never cached.
        let _ = h.verify(None, &[], &old, &right).await;
        assert!(!h
            .cache
            .as_ref()
            .unwrap()
            .contains_key(&h.cache_key("c", &new, &right)));
    }

    #[tokio::test]
    async fn past_the_bound_verifications_are_refused_at_once() {
        let h = Arc::new(hasher(Duration::ZERO, 1, 0));
        let hashes = [hash("right")];
        // Hold the only slot while another request arrives.
        h.pending.store(h.max_pending, Ordering::Release);
        assert_eq!(
            h.verify(Some("c"), &hashes, &hashes, &Secret::new("x"))
                .await,
            Err(Saturated)
        );
        h.pending.store(0, Ordering::Release);
        assert_eq!(
            h.verify(Some("c"), &hashes, &hashes, &Secret::new("right"))
                .await,
            Ok(true)
        );
        assert_eq!(h.pending.load(Ordering::Acquire), 0, "the slot came back");
    }
}
