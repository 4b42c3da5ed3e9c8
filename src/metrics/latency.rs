//! A latency histogram that a request records into without a lock.
//!
//! prometheus-client's `Histogram` takes a mutex for every observation: two per request,
//! shared by every worker thread. This one is sharded: each thread adds to the atomic
//! counters of its own shard (a cache line or more of its own, so two workers never write
//! the same line), and a scrape sums the shards. Buckets, `_sum` and `_count` are what
//! the stock histogram exports; a scrape that races an observation may count it in
//! `_count` and not yet in its bucket, as Prometheus allows.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Shards: more than the workers of any machine this runs on makes sharing rare, not
/// impossible (threads beyond it share).
const SHARDS: usize = 16;

/// One thread's counters, on cache lines of their own.
#[repr(align(128))]
#[derive(Default)]
struct Shard {
    count: AtomicU64,
    sum_ns: AtomicU64,
    /// One per bound, then +Inf.
    buckets: Vec<AtomicU64>,
}

/// A latency histogram with fixed bucket bounds (seconds). Clones share the counts.
#[derive(Clone)]
pub struct LatencyHistogram(Arc<Inner>);

struct Inner {
    bounds: Vec<f64>,
    bounds_ns: Vec<u64>,
    shards: Box<[Shard]>,
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("bounds", &self.0.bounds)
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// This thread's shard, assigned on first use.
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS
    };
}

impl LatencyHistogram {
    pub fn new(bounds: impl Iterator<Item = f64>) -> Self {
        let bounds: Vec<f64> = bounds.collect();
        let bounds_ns = bounds.iter().map(|b| (b * 1e9).round() as u64).collect();
        let shards = (0..SHARDS)
            .map(|_| Shard {
                buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
                ..Shard::default()
            })
            .collect();
        Self(Arc::new(Inner {
            bounds,
            bounds_ns,
            shards,
        }))
    }

    pub fn observe(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = self.0.bounds_ns.partition_point(|&b| b < ns);
        let shard = &self.0.shards[SHARD.with(|s| *s)];
        shard.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        shard.sum_ns.fetch_add(ns, Ordering::Relaxed);
        shard.count.fetch_add(1, Ordering::Relaxed);
    }

    /// `(sum in seconds, count, per-bucket counts with their upper bound)`.
    fn totals(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut buckets: Vec<(f64, u64)> = self
            .0
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .map(|b| (b, 0))
            .collect();
        let (mut sum_ns, mut count) = (0u64, 0u64);
        for shard in self.0.shards.iter() {
            count += shard.count.load(Ordering::Relaxed);
            sum_ns = sum_ns.wrapping_add(shard.sum_ns.load(Ordering::Relaxed));
            for (total, b) in buckets.iter_mut().zip(&shard.buckets) {
                total.1 += b.load(Ordering::Relaxed);
            }
        }
        (sum_ns as f64 / 1e9, count, buckets)
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.totals();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    fn bounds() -> impl Iterator<Item = f64> {
        prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 18)
    }

    /// The same observations, from several threads, export as the stock histogram does.
    #[test]
    fn exports_what_the_stock_histogram_exports() {
        let ours = LatencyHistogram::new(bounds());
        let stock = Histogram::new(bounds());
        let samples: Vec<Duration> = (0..2000u64)
            .map(|i| Duration::from_micros(i * i % 20_000_000 + 1))
            .chain([Duration::from_secs(100), Duration::ZERO])
            .collect();
        for d in &samples {
            stock.observe(d.as_secs_f64());
        }
        std::thread::scope(|s| {
            for part in samples.chunks(500) {
                let ours = ours.clone();
                s.spawn(move || part.iter().for_each(|d| ours.observe(*d)));
            }
        });
        let text = |register: &dyn Fn(&mut Registry)| {
            let mut r = Registry::default();
            register(&mut r);
            let mut out = String::new();
            encode(&mut out, &r).unwrap();
            out
        };
        let a = text(&|r| r.register("latency", "h", stock.clone()));
        let b = text(&|r| r.register("latency", "h", ours.clone()));
        let strip_sum = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| !l.starts_with("latency_sum"))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(strip_sum(&b), strip_sum(&a));
        // The sum agrees to the nanosecond rounding of each sample.
        let sum = |t: &str| -> f64 {
            t.lines()
                .find_map(|l| l.strip_prefix("latency_sum "))
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!(
            (sum(&a) - sum(&b)).abs() < 1e-6,
            "{} vs {}",
            sum(&a),
            sum(&b)
        );
    }
}
