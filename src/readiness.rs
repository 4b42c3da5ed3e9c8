//! Whether the upstream answers, for the admin `/readyz` (`readiness`, docs/design.md §8.1).
//!
//! With `readiness.upstream` on, a background task probes the upstream every `window / 2`:
//! a TCP connection accepted (within `upstream.connect_timeout`), or with `path`, a
//! `GET path` answered with a 2xx (within `upstream.timeout`). `/readyz` fails while the
//! last success is older than `window`, so one lost probe does not flip it, two do.
//! Probes run on the caller's runtime, never on a worker's, and never on the request path.
//! The settings are read from the generation current at each probe, so a reload applies
//! from the next one.
//!
//! Invariant: before the first successful probe the upstream is not fresh, so a gateway
//! whose upstream never came up never reports ready.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{header, Request};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::config::UpstreamConfig;
use crate::metrics::Metrics;
use crate::reload::Generation;

/// When the upstream last answered a probe.
#[derive(Debug)]
pub struct UpstreamHealth {
    start: Instant,
    /// Milliseconds from `start` to the last success, plus one; 0: never.
    last_ok: AtomicU64,
}

impl Default for UpstreamHealth {
    fn default() -> Self {
        UpstreamHealth {
            start: Instant::now(),
            last_ok: AtomicU64::new(0),
        }
    }
}

impl UpstreamHealth {
    fn record_ok(&self) {
        let ms = self.start.elapsed().as_millis() as u64 + 1;
        self.last_ok.fetch_max(ms, Ordering::AcqRel);
    }

    /// Whether the upstream answered within the last `window`.
    pub fn fresh(&self, window: Duration) -> bool {
        match self.last_ok.load(Ordering::Acquire) {
            0 => false,
            at => {
                let age = self
                    .start
                    .elapsed()
                    .saturating_sub(Duration::from_millis(at - 1));
                age <= window
            }
        }
    }
}

/// Probes the upstream as the current generation's `readiness` says, until aborted.
pub async fn run(
    current: Arc<ArcSwap<Generation>>,
    health: Arc<UpstreamHealth>,
    metrics: Arc<Metrics>,
) {
    loop {
        let generation = current.load_full();
        let readiness = &generation.config.readiness;
        let pause = readiness.window / 2;
        if readiness.upstream {
            let up = probe(&generation.config.upstream, readiness.path.as_deref()).await;
            if up {
                health.record_ok();
            } else {
                tracing::debug!(
                    upstream = %generation.config.upstream.authority,
                    "readiness probe of the upstream failed"
                );
            }
            let upstream = generation.config.upstream.authority.as_str();
            metrics.ops().upstream_probe(upstream, up);
        }
        drop(generation);
        tokio::time::sleep(pause).await;
    }
}

/// One probe: a TCP connection, then with `path` a `GET` that must answer 2xx.
async fn probe(upstream: &UpstreamConfig, path: Option<&str>) -> bool {
    let authority = upstream.authority.as_str();
    let target = match upstream.authority.port_u16() {
        Some(_) => authority.to_owned(),
        None => format!("{authority}:80"),
    };
    let connected = tokio::time::timeout(upstream.connect_timeout, TcpStream::connect(target));
    let Ok(Ok(tcp)) = connected.await else {
        return false;
    };
    let Some(path) = path else {
        return true;
    };
    tokio::time::timeout(upstream.timeout, get(tcp, authority, path))
        .await
        .unwrap_or(false)
}

async fn get(tcp: TcpStream, authority: &str, path: &str) -> bool {
    let Ok((mut send, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await
    else {
        return false;
    };
    // Ends when the upstream closes, or once `send` is dropped below.
    tokio::spawn(conn);
    let Ok(req) = Request::get(path)
        .header(header::HOST, authority)
        .header(header::USER_AGENT, "secretgate-readiness")
        .body(Empty::<Bytes>::new())
    else {
        return false;
    };
    send.send_request(req)
        .await
        .is_ok_and(|res| res.status().is_success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fresh_only_within_the_window_after_a_success() {
        let h = UpstreamHealth::default();
        assert!(!h.fresh(Duration::from_secs(5)), "never probed");
        tokio::time::advance(Duration::from_secs(1)).await;
        h.record_ok();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(h.fresh(Duration::from_secs(5)));
        tokio::time::advance(Duration::from_millis(10)).await;
        assert!(!h.fresh(Duration::from_secs(5)));
        h.record_ok();
        assert!(h.fresh(Duration::from_secs(5)));
    }
}
