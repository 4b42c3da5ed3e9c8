//! Single use of assertion `jti`s (RFC 7523 §3 item 7, OIDC Core §9).
//!
//! Each accepted (client_id, jti) is remembered until the assertion could no longer be
//! accepted anyway (its exp, or iat + max_age, plus leeway). The store never forgets a
//! live entry to make room: when it holds `capacity` entries it fails closed and the
//! request gets 503, because evicting would reopen a replay window.
//! The trait keeps the door open for a store shared by several replicas.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use moka::sync::Cache;
use moka::Expiry;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("jti already used")]
    Replayed,
    #[error("replay store full")]
    Full,
}

pub trait ReplayStore: Send + Sync + 'static {
    /// Records (client_id, jti) for `ttl`; fails if it is already recorded or there is no room.
    fn check_and_record(
        &self,
        client_id: &str,
        jti: &str,
        ttl: Duration,
    ) -> Result<(), ReplayError>;
    /// Live entries (approximate while expiries are pending).
    fn len(&self) -> u64;
    /// Refusals because the store was full, since start.
    fn full_rejections(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

type Key = (String, String);

struct EntryTtl;

impl Expiry<Key, Duration> for EntryTtl {
    fn expire_after_create(&self, _key: &Key, ttl: &Duration, _now: Instant) -> Option<Duration> {
        Some(*ttl)
    }
}

/// In-process store on moka with per-entry expiry.
pub struct MokaReplayStore {
    cache: Cache<Key, Duration>,
    live: Arc<AtomicU64>,
    capacity: u64,
    full_rejections: AtomicU64,
}

impl MokaReplayStore {
    pub fn new(capacity: u64) -> Self {
        let live = Arc::new(AtomicU64::new(0));
        let counter = live.clone();
        let cache = Cache::builder()
            // Our own count refuses new entries at `capacity`; moka's bound sits well above
            // it so that moka itself never evicts a live entry.
            .max_capacity(capacity.saturating_mul(2).saturating_add(1024))
            .expire_after(EntryTtl)
            .eviction_listener(move |_key, _value, cause| {
                if cause != RemovalCause::Replaced {
                    counter.fetch_sub(1, Ordering::Relaxed);
                }
            })
            .build();
        Self {
            cache,
            live,
            capacity,
            full_rejections: AtomicU64::new(0),
        }
    }
}

impl ReplayStore for MokaReplayStore {
    fn check_and_record(
        &self,
        client_id: &str,
        jti: &str,
        ttl: Duration,
    ) -> Result<(), ReplayError> {
        let key = (client_id.to_owned(), jti.to_owned());
        if self.cache.contains_key(&key) {
            return Err(ReplayError::Replayed);
        }
        if self.live.load(Ordering::Relaxed) >= self.capacity {
            // Expired entries are only counted out when moka runs its maintenance.
            self.cache.run_pending_tasks();
            if self.live.load(Ordering::Relaxed) >= self.capacity {
                self.full_rejections.fetch_add(1, Ordering::Relaxed);
                return Err(ReplayError::Full);
            }
        }
        // `or_insert_with` is atomic per key: of two concurrent uses of one jti, exactly
        // one sees a fresh entry.
        let entry = self.cache.entry(key).or_insert_with(|| ttl);
        if entry.is_fresh() {
            self.live.fetch_add(1, Ordering::Relaxed);
            Ok(())
        } else {
            Err(ReplayError::Replayed)
        }
    }

    fn len(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }

    fn full_rejections(&self) -> u64 {
        self.full_rejections.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_use_is_a_replay_j21() {
        let s = MokaReplayStore::new(10);
        let ttl = Duration::from_secs(60);
        assert_eq!(s.check_and_record("a", "j1", ttl), Ok(()));
        assert_eq!(
            s.check_and_record("a", "j1", ttl),
            Err(ReplayError::Replayed)
        );
        // The same jti from another client is a different key.
        assert_eq!(s.check_and_record("b", "j1", ttl), Ok(()));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn full_store_fails_closed_and_keeps_live_entries() {
        let s = MokaReplayStore::new(3);
        let ttl = Duration::from_secs(600);
        for j in ["1", "2", "3"] {
            assert_eq!(s.check_and_record("a", j, ttl), Ok(()));
        }
        assert_eq!(s.check_and_record("a", "4", ttl), Err(ReplayError::Full));
        assert_eq!(s.full_rejections(), 1);
        // Nothing was evicted to make room: the old jtis are still replays.
        for j in ["1", "2", "3"] {
            assert_eq!(s.check_and_record("a", j, ttl), Err(ReplayError::Replayed));
        }
    }

    #[test]
    fn concurrent_uses_of_one_jti_accept_exactly_one() {
        let s2 = Arc::new(MokaReplayStore::new(1000));
        let oks: usize = (0..8)
            .map(|_| {
                let s = s2.clone();
                std::thread::spawn(move || {
                    usize::from(
                        s.check_and_record("a", "same", Duration::from_secs(60))
                            .is_ok(),
                    )
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(oks, 1);
    }
}
