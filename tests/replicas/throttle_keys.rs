//! The shared throttle's keys: IPv6 per /64, IPv4 per address.

use super::*;

/// The Redis backend counts an IPv6 source per /64 and an IPv4 source per address, as the
/// memory one does (`auth::throttle`'s unit tests): failures recorded by one replica from
/// `2001:db8::1` throttle another replica's requests from `2001:db8::2` (rotating through
/// the /64 does not reset the counters), not from the next /64; an IPv4 address is its own
/// source, also written as IPv4-mapped IPv6. The second replica has no failures of its own,
/// so only the shared counters can decide; Redis holds one hash tag per source. (The
/// addresses are values passed to the throttle: nothing is sent from them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_throttle_counts_ipv6_per_slash_64_and_ipv4_per_address() {
    use secretgate::auth::throttle::{SharedView, Throttle};
    use secretgate::config::{RedisConfig, ThrottleConfig};
    use secretgate::metrics::Metrics;
    use secretgate::state::RedisState;
    use std::collections::BTreeMap;
    use std::net::IpAddr;

    let redis = RedisServer::start();
    let redis_config = RedisConfig {
        url: redis.url(),
        password: None,
        ca_pem: None,
        cluster: false,
        key_prefix: "sg-src:".to_owned(),
        // Generous: this is about keys, not latency.
        timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
    };
    let throttle_config = ThrottleConfig {
        max_failures: 3,
        max_failures_per_address: 5,
        window: Duration::from_secs(60),
    };
    // A replica: its own client and metrics. Never subscribed, so every check reads the
    // shared counters.
    let replica = || {
        let metrics = Arc::new(Metrics::new());
        let state = Arc::new(RedisState::new(&redis_config, metrics.clone()).unwrap());
        let view = SharedView::new(state, metrics.clone());
        (Throttle::with_shared(&throttle_config, Some(view)), metrics)
    };
    let (a, _) = replica();
    let (b, b_metrics) = replica();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();

    for host in ["2001:db8::1", "2001:db8::1", "2001:db8::1"] {
        assert!(b.check("billing", ip(host)).await.is_ok(), "{host}");
        a.record_failure("billing", ip(host)).await;
    }
    for rotated in [
        "2001:db8::1",
        "2001:db8::2",
        "2001:db8::ffff:ffff:ffff:fffe",
    ] {
        assert!(
            b.check("billing", ip(rotated)).await.is_err(),
            "billing from {rotated}, in the /64 with 3 failures, is let through"
        );
    }
    for other in ["2001:db8:0:1::1", "2001:db8:1::1"] {
        assert!(
            b.check("billing", ip(other)).await.is_ok(),
            "billing from {other}, another /64, is throttled"
        );
    }
    // The per-source limit (5) counts every client of the /64 too.
    assert!(b.check("reports", ip("2001:db8::3")).await.is_ok());
    a.record_failure("reports", ip("2001:db8::3")).await;
    a.record_failure("other", ip("2001:db8::ab:cdef")).await;
    assert!(
        b.check("third", ip("2001:db8::4")).await.is_err(),
        "the /64 reached the per-source limit"
    );
    assert!(b.check("third", ip("2001:db8:0:1::4")).await.is_ok());

    for _ in 0..3 {
        a.record_failure("billing", ip("192.0.2.1")).await;
    }
    for same in ["192.0.2.1", "::ffff:192.0.2.1"] {
        assert!(
            b.check("billing", ip(same)).await.is_err(),
            "billing from {same} is let through"
        );
    }
    assert!(
        b.check("billing", ip("192.0.2.2")).await.is_ok(),
        "192.0.2.2 is throttled for 192.0.2.1's failures"
    );

    let metrics = b_metrics.encode(None);
    assert_eq!(exposed(&metrics, FALLBACKS), 0.0, "{metrics}");

    // In Redis: per source, its count, under the hash tag `{source}`.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("sg-src:throttle:*:source")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut counts = BTreeMap::new();
    for key in keys {
        let tag = key
            .strip_prefix("sg-src:throttle:{")
            .and_then(|rest| rest.strip_suffix("}:source"))
            .unwrap_or_else(|| panic!("unexpected key {key}"))
            .to_owned();
        let n: u32 = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        counts.insert(tag, n);
    }
    assert_eq!(
        counts,
        BTreeMap::from([("192.0.2.1".to_owned(), 3), ("2001:db8::/64".to_owned(), 5)])
    );
}
