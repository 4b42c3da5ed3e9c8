//! Validation of `limits`: the bounds on connections and requests (docs/design.md §6.2,
//! §8.7). Every timeout that guards a connection must be greater than zero: a zero would
//! close every connection at once.

use super::raw::RawLimits;
use super::validate::{secs, Validator};
use super::LimitsConfig;

/// Default `limits.max_connections`: at about 20 KiB per idle TLS connection (see
/// BENCHMARKS.md), 10,000 connections stay near 200 MiB.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

impl Validator<'_> {
    pub(super) fn limits(&mut self, raw: RawLimits) -> LimitsConfig {
        let max_connections = match raw.max_connections {
            None => DEFAULT_MAX_CONNECTIONS,
            Some(0) => {
                self.problem("limits.max_connections", "must be at least 1");
                DEFAULT_MAX_CONNECTIONS
            }
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let limits = LimitsConfig {
            max_body: self.size(raw.max_body, "limits.max_body", 64 * 1024, 1),
            // hyper needs a read buffer of at least 8 KiB; the head must fit in it.
            max_header_size: self.size(
                raw.max_header_size,
                "limits.max_header_size",
                16 * 1024,
                8 * 1024,
            ),
            header_read_timeout: self.duration(
                raw.header_read_timeout,
                "limits.header_read_timeout",
                secs(5),
            ),
            keepalive_timeout: self.duration(
                raw.keepalive_timeout,
                "limits.keepalive_timeout",
                secs(60),
            ),
            body_read_timeout: self.duration(
                raw.body_read_timeout,
                "limits.body_read_timeout",
                secs(10),
            ),
            idle_timeout: self.duration(raw.idle_timeout, "limits.idle_timeout", secs(60)),
            max_connections,
        };
        if limits.max_header_size > 1024 * 1024 {
            self.problem("limits.max_header_size", "must be at most 1MiB");
        }
        if limits.idle_timeout.is_zero() {
            self.problem("limits.idle_timeout", "must be greater than zero");
        }
        if limits.keepalive_timeout.is_zero() {
            self.problem("limits.keepalive_timeout", "must be greater than zero");
        }
        if limits.header_read_timeout.is_zero() {
            self.problem("limits.header_read_timeout", "must be greater than zero");
        }
        limits
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::super::validate::tests::validator;
    use super::*;

    #[test]
    fn limits_timeouts_default_and_must_not_be_zero() {
        let mut v = validator(Path::new("."));
        let l = v.limits(RawLimits::default());
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        assert_eq!(l.keepalive_timeout, Duration::from_secs(60));
        assert_eq!(l.header_read_timeout, Duration::from_secs(5));
        let l = v.limits(RawLimits {
            keepalive_timeout: Some("90s".into()),
            ..RawLimits::default()
        });
        assert_eq!(l.keepalive_timeout, Duration::from_secs(90));
        v.limits(RawLimits {
            keepalive_timeout: Some("0s".into()),
            header_read_timeout: Some("0ms".into()),
            ..RawLimits::default()
        });
        let texts: Vec<String> = v.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "limits.keepalive_timeout: must be greater than zero",
                "limits.header_read_timeout: must be greater than zero"
            ]
        );
    }
}
