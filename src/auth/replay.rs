//! Single use of assertion `jti`s (RFC 7523 §3 item 7, OIDC Core §9).
//!
//! Each accepted (client_id, jti) is remembered until the assertion could no longer be
//! accepted anyway (its exp, or iat + max_age, plus leeway). The store never forgets a
//! live entry to make room: when it holds `capacity` entries it fails closed and the
//! request gets 503, because evicting would reopen a replay window.
//!
//! Two stores: [`MemoryReplayStore`] (one per process, the default) and
//! [`RedisReplayStore`] (`state.backend: redis`, shared by every replica: an assertion is
//! single-use across all of them). The Redis store records with one atomic command,
//! `SET key 1 NX EXAT <bound>`, and fails closed: if Redis cannot be reached, times out
//! or errs, the assertion is refused (503), never accepted unrecorded.
//!
//! [`MemoryReplayStore`] is an expiring set, not a cache: sharded mutex-guarded hash sets
//! of 128-bit keyed fingerprints, each shard with its entries bucketed by expiry second
//! and forgotten lazily when the shard is next touched. It replaced a moka cache, which
//! cost 1–3 µs per insert (timer wheel, eviction sketch, String keys) for an eviction
//! policy this store must never use; see BENCHMARKS.md.
//! Invariants: the count of live entries never exceeds `capacity` (reserved with a
//! compare-and-swap before insertion); an entry is kept at least its TTL (expiry is
//! rounded up to the next whole second); a fingerprint collision can only refuse an
//! assertion (fail closed), never accept a replay.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::metrics::StateOp;
use crate::state::{Query, RedisState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("jti already used")]
    Replayed,
    #[error("replay store full")]
    Full,
    #[error("replay store unavailable")]
    Unavailable,
}

/// Where used `jti`s are recorded.
pub enum ReplayStore {
    Memory(MemoryReplayStore),
    Redis(RedisReplayStore),
}

impl ReplayStore {
    /// Records (client_id, jti) until `now` + `ttl` (Unix seconds, the gateway's clock);
    /// fails if it is already recorded, or cannot be recorded.
    pub async fn check_and_record(
        &self,
        client_id: &str,
        jti: &str,
        ttl: Duration,
        now: i64,
    ) -> Result<(), ReplayError> {
        match self {
            ReplayStore::Memory(m) => m.check_and_record(client_id, jti, ttl),
            ReplayStore::Redis(r) => r.check_and_record(client_id, jti, ttl, now).await,
        }
    }

    /// Live entries, where they can be counted cheaply (the memory store).
    pub fn entries(&self) -> Option<u64> {
        match self {
            ReplayStore::Memory(m) => Some(m.len()),
            ReplayStore::Redis(_) => None,
        }
    }
}

/// The store in Redis: one key per (client_id, jti), set only if absent, expiring when the
/// assertion could no longer be accepted anyway.
pub struct RedisReplayStore {
    redis: Arc<RedisState>,
}

impl RedisReplayStore {
    pub fn new(redis: Arc<RedisState>) -> Self {
        Self { redis }
    }

    /// `prefix` + `replay:` + a fingerprint of (client_id, jti): the same on every replica,
    /// of fixed length whatever the client sent, and no jti in clear in Redis.
    fn key(&self, client_id: &str, jti: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update((client_id.len() as u64).to_be_bytes());
        h.update(client_id);
        h.update(jti);
        let digest = h.finalize();
        self.redis
            .key(format_args!("replay:{}", crate::jws::encode(&digest[..16])))
    }

    async fn check_and_record(
        &self,
        client_id: &str,
        jti: &str,
        ttl: Duration,
        now: i64,
    ) -> Result<(), ReplayError> {
        // The entry outlives the assertion, never the reverse: a second more than the
        // bound, whole seconds rounded up.
        let expires = now + 1 + ttl.as_secs() as i64 + i64::from(ttl.subsec_nanos() > 0);
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(client_id, jti))
            .arg(1)
            .arg("NX")
            .arg("EXAT")
            .arg(expires);
        // RFC 7523 §3 item 7: one atomic command decides, across every replica, which of
        // several uses of one jti is the first.
        match self
            .redis
            .run::<Option<String>>(StateOp::replay, Query::Cmd(&cmd))
            .await
        {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(ReplayError::Replayed),
            // Fail closed: an assertion that could not be recorded is not accepted.
            Err(_) => Err(ReplayError::Unavailable),
        }
    }
}

/// Power of two, so a shard is picked by masking; enough that 2 × cores threads rarely
/// meet on one lock.
const SHARDS: usize = 64;

/// In-process store: see the module documentation.
pub struct MemoryReplayStore {
    shards: Box<[Mutex<Shard>]>,
    /// Two independent SipHash keys, random per process: a client cannot choose jtis
    /// that collide with another client's without knowing them.
    keys: [RandomState; 2],
    start: Instant,
    live: AtomicU64,
    capacity: u64,
    full_rejections: AtomicU64,
}

#[derive(Default)]
struct Shard {
    seen: HashSet<u128>,
    /// Expiry (whole seconds since `start`) → the fingerprints that expire then.
    expiring: BTreeMap<u64, Vec<u128>>,
}

impl Shard {
    /// Forgets every entry whose expiry second is `now` or earlier; returns how many.
    fn purge(&mut self, now: u64) -> u64 {
        let mut forgotten = 0;
        while let Some(bucket) = self.expiring.first_entry() {
            if *bucket.key() > now {
                break;
            }
            for key in bucket.remove() {
                self.seen.remove(&key);
                forgotten += 1;
            }
        }
        // Give memory back after a burst, so a long run stays flat.
        if forgotten > 0 && self.seen.capacity() > 4 * self.seen.len() + 1024 {
            self.seen.shrink_to(2 * self.seen.len());
        }
        forgotten
    }
}

impl MemoryReplayStore {
    pub fn new(capacity: u64) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            keys: [RandomState::new(), RandomState::new()],
            start: Instant::now(),
            live: AtomicU64::new(0),
            capacity,
            full_rejections: AtomicU64::new(0),
        }
    }

    fn fingerprint(&self, client_id: &str, jti: &str) -> u128 {
        // `str` hashing ends each string with a terminator, so ("ab", "c") ≠ ("a", "bc").
        let [a, b] = &self.keys;
        (u128::from(a.hash_one((client_id, jti))) << 64) | u128::from(b.hash_one((client_id, jti)))
    }

    fn shard(&self, key: u128) -> MutexGuard<'_, Shard> {
        // The critical sections below cannot panic half-way, so a poisoned lock still
        // guards a consistent shard.
        self.shards[(key as usize) & (SHARDS - 1)]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_secs()
    }

    fn purge_all(&self, now: u64) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            let forgotten = shard.purge(now);
            self.live.fetch_sub(forgotten, Ordering::Relaxed);
        }
    }

    /// Takes one unit of capacity, or reports that there is none.
    fn reserve(&self) -> bool {
        self.live
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok()
    }

    /// [`ReplayStore::check_and_record`] at a given time (seconds since `start`).
    fn record_at(&self, key: u128, ttl: Duration, now: u64) -> Result<(), ReplayError> {
        // `now` is whole seconds, so the real time may be up to 1 s later: with the TTL
        // rounded up too, the entry outlives the assertion, never the reverse.
        let expires = now + 1 + ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let mut shard = self.shard(key);
        let forgotten = shard.purge(now);
        self.live.fetch_sub(forgotten, Ordering::Relaxed);
        // RFC 7523 §3 item 7: the check and the insertion happen under one lock, so of two
        // concurrent uses of one jti exactly one succeeds.
        if shard.seen.contains(&key) {
            return Err(ReplayError::Replayed);
        }
        if !self.reserve() {
            // Other shards may hold entries that have expired but were not yet purged.
            drop(shard);
            self.purge_all(now);
            shard = self.shard(key);
            if shard.seen.contains(&key) {
                return Err(ReplayError::Replayed);
            }
            if !self.reserve() {
                // Fail closed: never evict a live entry to make room.
                self.full_rejections.fetch_add(1, Ordering::Relaxed);
                return Err(ReplayError::Full);
            }
        }
        shard.seen.insert(key);
        shard.expiring.entry(expires).or_default().push(key);
        Ok(())
    }
}

impl MemoryReplayStore {
    /// Records (client_id, jti) for `ttl`; fails if it is already recorded or there is no
    /// room.
    pub fn check_and_record(
        &self,
        client_id: &str,
        jti: &str,
        ttl: Duration,
    ) -> Result<(), ReplayError> {
        self.record_at(self.fingerprint(client_id, jti), ttl, self.now())
    }

    /// Live entries.
    pub fn len(&self) -> u64 {
        self.purge_all(self.now());
        self.live.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Refusals because the store was full, since start.
    pub fn full_rejections(&self) -> u64 {
        self.full_rejections.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_use_is_a_replay_j21() {
        let s = MemoryReplayStore::new(10);
        let ttl = Duration::from_secs(60);
        assert_eq!(s.check_and_record("a", "j1", ttl), Ok(()));
        assert_eq!(
            s.check_and_record("a", "j1", ttl),
            Err(ReplayError::Replayed)
        );
        // The same jti from another client is a different key.
        assert_eq!(s.check_and_record("b", "j1", ttl), Ok(()));
        // Client and jti boundaries are part of the key.
        assert_eq!(s.check_and_record("a", "bj1", ttl), Ok(()));
        assert_eq!(s.check_and_record("ab", "j1", ttl), Ok(()));
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn full_store_fails_closed_and_keeps_live_entries() {
        let s = MemoryReplayStore::new(3);
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
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn entries_live_their_ttl_then_free_their_room() {
        let s = MemoryReplayStore::new(1);
        let (a, b) = (s.fingerprint("c", "a"), s.fingerprint("c", "b"));
        let ttl = Duration::from_millis(10_500);
        assert_eq!(s.record_at(a, ttl, 100), Ok(()));
        // Still live at its TTL (rounded up), so still a replay and still taking room,
        // even when the other key lives in another shard.
        // (`now` 100 may be 100.99 s, so it lives until 111.49 s at least: second 111.)
        assert_eq!(s.record_at(a, ttl, 111), Err(ReplayError::Replayed));
        assert_eq!(s.record_at(b, ttl, 111), Err(ReplayError::Full));
        // Past it: forgotten (the assertion's own exp now refuses it) and room is free.
        assert_eq!(s.record_at(b, ttl, 112), Ok(()));
        assert_eq!(s.live.load(Ordering::Relaxed), 1);
        assert_eq!(s.record_at(a, ttl, 124), Ok(()));
        assert_eq!(s.full_rejections(), 1);
    }

    #[test]
    fn concurrent_uses_of_one_jti_accept_exactly_one() {
        let s2 = Arc::new(MemoryReplayStore::new(1000));
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

    #[test]
    fn concurrent_inserts_never_exceed_capacity() {
        let s2 = Arc::new(MemoryReplayStore::new(100));
        let oks: usize = (0..4)
            .map(|t| {
                let s = s2.clone();
                std::thread::spawn(move || {
                    (0..100)
                        .filter(|i| {
                            s.check_and_record("a", &format!("{t}-{i}"), Duration::from_secs(60))
                                .is_ok()
                        })
                        .count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(oks, 100);
        assert_eq!(s2.len(), 100);
        assert_eq!(s2.full_rejections(), 300);
    }
}
