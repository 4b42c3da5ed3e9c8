//! Brute-force protection for client authentication (RFC 6749 §2.3.1: "the authorization
//! server MUST protect any endpoint utilizing it against brute force attacks").
//!
//! Failed authentications are counted per (client_id, source address) and per source
//! address within a fixed window that starts at the first failure. Over either threshold,
//! requests are refused with `429 slow_down` before any secret is checked. Keying by
//! address too means an attacker elsewhere cannot lock a legitimate client out.
//! Successful authentications do not reset the counters: an attacker who also owns a
//! valid credential must not be able to clear them.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use crate::config::ThrottleConfig;
use crate::error::Throttled;

/// Most distinct keys tracked at once; beyond that the oldest counters are dropped first.
const MAX_KEYS: u64 = 200_000;

pub struct Throttle {
    per_client: Cache<(String, IpAddr), Arc<AtomicU32>>,
    per_address: Cache<IpAddr, Arc<AtomicU32>>,
    max_failures: u32,
    max_failures_per_address: u32,
    window: Duration,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("max_failures", &self.max_failures)
            .field("max_failures_per_address", &self.max_failures_per_address)
            .field("window", &self.window)
            .finish()
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

impl Throttle {
    pub fn new(cfg: &ThrottleConfig) -> Self {
        Self {
            per_client: counters(cfg.window),
            per_address: counters(cfg.window),
            max_failures: cfg.max_failures,
            max_failures_per_address: cfg.max_failures_per_address,
            window: cfg.window,
        }
    }

    fn count<K>(cache: &Cache<K, Arc<AtomicU32>>, key: &K) -> u32
    where
        K: std::hash::Hash + Eq + Send + Sync + Clone + 'static,
    {
        cache
            .get(key)
            .map(|c| c.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Refuses when this client and address, or this address alone, failed too often.
    pub fn check(&self, client_id: &str, addr: IpAddr) -> Result<(), Throttled> {
        let throttled = Self::count(&self.per_address, &addr) >= self.max_failures_per_address
            || Self::count(&self.per_client, &(client_id.to_owned(), addr)) >= self.max_failures;
        if throttled {
            Err(Throttled {
                retry_after: self.window,
            })
        } else {
            Ok(())
        }
    }

    /// Records one failed authentication.
    pub fn record_failure(&self, client_id: &str, addr: IpAddr) {
        self.per_address
            .get_with(addr, || Arc::new(AtomicU32::new(0)))
            .fetch_add(1, Ordering::Relaxed);
        self.per_client
            .get_with((client_id.to_owned(), addr), || Arc::new(AtomicU32::new(0)))
            .fetch_add(1, Ordering::Relaxed);
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

    #[test]
    fn client_and_address_thresholds() {
        let t = throttle();
        let attacker: IpAddr = "10.0.0.66".parse().unwrap();
        let user: IpAddr = "10.0.0.7".parse().unwrap();
        for _ in 0..3 {
            assert!(t.check("billing", attacker).is_ok());
            t.record_failure("billing", attacker);
        }
        assert_eq!(
            t.check("billing", attacker),
            Err(Throttled {
                retry_after: Duration::from_secs(60)
            })
        );
        // The legitimate client elsewhere is not locked out.
        assert!(t.check("billing", user).is_ok());
        // Another client from the attacker's address: allowed until the address limit.
        assert!(t.check("reports", attacker).is_ok());
        t.record_failure("reports", attacker);
        t.record_failure("other", attacker);
        assert!(
            t.check("third", attacker).is_err(),
            "address limit of 5 reached"
        );
    }
}
