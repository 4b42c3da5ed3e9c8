//! The rollout series: shadow verdicts and per-client rate limits (docs/design.md §10).
//!
//! `secretgate_shadow_decisions_total{outcome}` takes the outcome values of
//! `secretgate_authentications_total`, which does not count shadow requests (nothing was
//! enforced). `secretgate_rate_limited_total{client_id}` has one series per *registered*
//! client at most: a request is rate limited only after it authenticated.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::{Metrics, Outcome};
use crate::oauth::ClientId;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ShadowLabels {
    outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct RateLimitedLabels {
    client_id: String,
}

/// The series of this file, registered once with the others.
pub(super) struct RolloutMetrics {
    shadow_decisions: Family<ShadowLabels, Counter>,
    rate_limited: Family<RateLimitedLabels, Counter>,
    rate_limit_fallbacks: Counter,
}

impl RolloutMetrics {
    pub(super) fn register(registry: &mut Registry) -> RolloutMetrics {
        let shadow_decisions = Family::<ShadowLabels, Counter>::default();
        registry.register(
            "shadow_decisions",
            "Verdicts on protected requests in shadow (rollout: shadow), forwarded as sent whatever the outcome",
            shadow_decisions.clone(),
        );
        let rate_limited = Family::<RateLimitedLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Authenticated requests refused with 429 by the client's rate_limit, by registered client id",
            rate_limited.clone(),
        );
        let rate_limit_fallbacks = Counter::default();
        registry.register(
            "rate_limit_local_fallbacks",
            "Rate-limit decisions made on this process's own buckets because Redis was unavailable",
            rate_limit_fallbacks.clone(),
        );
        RolloutMetrics {
            shadow_decisions,
            rate_limited,
            rate_limit_fallbacks,
        }
    }
}

impl Metrics {
    /// The verdict on one request forwarded in shadow.
    pub fn shadow_decision(&self, outcome: Outcome) {
        self.rollout
            .shadow_decisions
            .get_or_create(&ShadowLabels { outcome })
            .inc();
    }

    /// One request refused by `client_id`'s rate limit (a registered, authenticated id).
    pub fn rate_limited(&self, client_id: &ClientId) {
        self.rollout
            .rate_limited
            .get_or_create(&RateLimitedLabels {
                client_id: client_id.to_string(),
            })
            .inc();
    }

    /// A rate-limit decision made locally because Redis was unavailable.
    pub fn rate_limit_fell_back(&self) {
        self.rollout.rate_limit_fallbacks.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_named_as_documented() {
        let m = Metrics::new();
        m.shadow_decision(Outcome::invalid_client);
        m.rate_limited(&ClientId::new("billing"));
        m.rate_limit_fell_back();
        let text = m.encode(None);
        for line in [
            "secretgate_shadow_decisions_total{outcome=\"invalid_client\"} 1",
            "secretgate_rate_limited_total{client_id=\"billing\"} 1",
            "secretgate_rate_limit_local_fallbacks_total 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
