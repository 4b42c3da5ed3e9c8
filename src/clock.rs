//! The one clock: Unix seconds for every time claim the gateway checks or writes (assertion
//! `exp`/`nbf`/`iat`, the internal header's `iat`/`exp`, reload timestamps).
//!
//! It is a value, injected into the authenticator and the signer, so that tests can pin
//! time (`Clock::manual`) and the time-based conformance rows do not depend on the wall
//! clock. Durations inside the process (timeouts, replay-store expiry, throttle windows)
//! use monotonic time instead and are not affected.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The system clock, or a manual one that only moves when told to.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// Wall-clock time.
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock stopped at `unix_secs`; clones share it, so a test can move the clock a
    /// running gateway reads.
    pub fn manual(unix_secs: i64) -> Clock {
        Clock {
            manual: Some(Arc::new(AtomicI64::new(unix_secs))),
        }
    }

    /// Seconds since the Unix epoch (0 if the system clock is before it).
    pub fn now(&self) -> i64 {
        match &self.manual {
            Some(t) => t.load(Ordering::Relaxed),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        }
    }

    /// Sets a manual clock; returns false (and does nothing) on the system clock.
    pub fn set(&self, unix_secs: i64) -> bool {
        match &self.manual {
            Some(t) => {
                t.store(unix_secs, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clocks_are_shared_and_system_clocks_cannot_be_set() {
        let c = Clock::manual(1_800_000_000);
        let d = c.clone();
        assert!(c.set(1_800_000_042));
        assert_eq!(d.now(), 1_800_000_042);
        let s = Clock::system();
        assert!(!s.set(5));
        assert!(s.now() > 1_700_000_000);
    }
}
