//! Per-client rate limits (`rate_limit`, docs/design.md §10.3): a token bucket per
//! registered client of `requests + burst` tokens, refilled at `requests` per `per`, one
//! token per successful authentication. Over it → `429 slow_down` with `Retry-After` (the
//! wait for the next token), before the upstream is called, counted in
//! `secretgate_rate_limited_total{client_id}`.
//!
//! Invariants:
//! - only an authenticated, enforced request is counted (an [`Authenticated`] extension,
//!   no [`Shadowed`]): the bucket key is a registered id, never request text, so neither
//!   memory, Redis keys nor the metric's `client_id` label can be grown by a caller;
//! - with `state.backend: redis` the bucket is shared by every replica: one atomic Lua
//!   script per request takes a token (the bucket's time is Redis's clock, so replicas'
//!   clocks do not matter); if Redis fails, or failed less than a second ago, this
//!   process's own bucket decides (counted in `secretgate_rate_limit_local_fallbacks_total`),
//!   as the throttle does. The local buckets are always kept, so they are warm then;
//! - buckets outlive reloads (the limiter is process-wide); a changed limit applies to
//!   the next request, to the tokens the bucket holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use tower::{Layer, Service};

use crate::auth::layer::{BoxFuture, ResponseFuture};
use crate::auth::shadow::Shadowed;
use crate::auth::Authenticated;
use crate::body::Body;
use crate::config::{RateLimitConfig, RolloutConfig};
use crate::error::{GatewayError, RateLimited};
use crate::metrics::{Metrics, StateOp};
use crate::oauth::ClientId;
use crate::state::{Query, RedisState};

/// The token bucket, in Redis: `KEYS[1]` a hash of `tokens` and `ts` (ms); `ARGV` the
/// capacity, `requests` and `per` in ms. Returns `{taken (0|1), wait in ms}`. Time is
/// Redis's own (`TIME`; scripts replicate their effects, Redis ≥ 5). The key expires
/// once the bucket would be full again.
const TAKE: &str = r"
local capacity = tonumber(ARGV[1])
local requests = tonumber(ARGV[2])
local per = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
if now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * requests / per)
end
tokens = math.min(tokens, capacity)
local taken = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
else
  wait = math.ceil((1 - tokens) * per / requests)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) * per / requests) + 1000)
return {taken, wait}
";

/// One bucket of this process.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Takes a token from `bucket` at `now`, or says how long until one is there.
fn take(bucket: &mut Bucket, limit: &RateLimitConfig, now: Instant) -> Result<(), Duration> {
    let capacity = limit.capacity() as f64;
    let rate = f64::from(limit.requests) / limit.per.as_secs_f64();
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
    bucket.at = now;
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        Ok(())
    } else {
        Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
    }
}

/// Every client's bucket; process-wide, shared by every config generation.
pub struct RateLimiter {
    local: Mutex<HashMap<ClientId, Bucket>>,
    redis: Option<Arc<RedisState>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("shared", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// Buckets in this process, and in `redis` when given.
    pub fn new(redis: Option<Arc<RedisState>>, metrics: Arc<Metrics>) -> Arc<RateLimiter> {
        Arc::new(RateLimiter {
            local: Mutex::new(HashMap::new()),
            redis,
            metrics,
        })
    }

    /// This process's decision (and the bucket is kept current either way).
    fn take_local(&self, client: &ClientId, limit: &RateLimitConfig) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(client.clone()).or_insert_with(|| Bucket {
            tokens: limit.capacity() as f64,
            at: now,
        });
        take(bucket, limit, now)
    }

    /// Takes one token for `client`, or refuses with the wait for the next one.
    pub async fn take(
        &self,
        client: &ClientId,
        limit: &RateLimitConfig,
    ) -> Result<(), RateLimited> {
        let local = self.take_local(client, limit);
        let refused = |wait: Duration| RateLimited {
            retry_after: Duration::from_secs(wait.as_secs_f64().ceil().max(1.0) as u64),
        };
        let Some(redis) = &self.redis else {
            return local.map_err(refused);
        };
        // Redis just failed: decide here rather than wait for another timeout.
        if redis.recently_failed() {
            self.metrics.rate_limit_fell_back();
            return local.map_err(refused);
        }
        use sha2::{Digest, Sha256};
        let tag = crate::jws::encode(&Sha256::digest(client.as_str())[..12]);
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(TAKE)
            .arg(1)
            .arg(redis.key(format_args!("ratelimit:{{{tag}}}")))
            .arg(limit.capacity())
            .arg(limit.requests)
            .arg(limit.per.as_millis().max(1) as u64);
        match redis
            .run::<(i64, i64)>(StateOp::rate_limit, Query::Cmd(&cmd))
            .await
        {
            Ok((1, _)) => Ok(()),
            Ok((_, wait_ms)) => Err(refused(Duration::from_millis(wait_ms.max(0) as u64))),
            Err(_) => {
                self.metrics.rate_limit_fell_back();
                local.map_err(refused)
            }
        }
    }
}

/// The rate limits of one config generation, over the process-wide buckets.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    limiter: Arc<RateLimiter>,
    limits: Arc<HashMap<ClientId, RateLimitConfig>>,
}

impl RateLimitLayer {
    pub fn new(limiter: Arc<RateLimiter>, rollout: &RolloutConfig) -> Self {
        let limits = rollout
            .clients
            .iter()
            .filter_map(|(id, c)| Some((id.clone(), c.rate_limit?)))
            .collect();
        Self {
            limiter,
            limits: Arc::new(limits),
        }
    }

    /// Whether any client is limited (otherwise the layer is not in the stack at all).
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            limiter: self.limiter.clone(),
            limits: self.limits.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    inner: S,
    limiter: Arc<RateLimiter>,
    limits: Arc<HashMap<ClientId, RateLimitConfig>>,
}

impl<S> Service<Request<Body>> for RateLimit<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = GatewayError>
        + Clone
        + Send
        + 'static,
{
    type Response = Response<Body>;
    type Error = GatewayError;
    type Future = ResponseFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let limited = req
            .extensions()
            .get::<Authenticated>()
            .filter(|_| req.extensions().get::<Shadowed>().is_none())
            .and_then(|who| Some((who.client_id.clone(), *self.limits.get(&who.client_id)?)));
        let Some((client, limit)) = limited else {
            return ResponseFuture::calling(self.inner.call(req));
        };
        let limiter = self.limiter.clone();
        let checking: BoxFuture<Result<Request<Body>, GatewayError>> = Box::pin(async move {
            limiter.take(&client, &limit).await.map_err(|e| {
                limiter.metrics.rate_limited(&client);
                GatewayError::RateLimited(e)
            })?;
            Ok(req)
        });
        // `inner` was polled ready: take it, leave a fresh clone behind (tower's contract).
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        ResponseFuture::preparing(checking, inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(requests: u32, per: u64, burst: u32) -> RateLimitConfig {
        RateLimitConfig {
            requests,
            per: Duration::from_secs(per),
            burst,
        }
    }

    #[test]
    fn a_bucket_holds_requests_plus_burst_and_refills_at_requests_per_per() {
        let l = limit(10, 60, 5);
        let t0 = Instant::now();
        let mut b = Bucket {
            tokens: l.capacity() as f64,
            at: t0,
        };
        for _ in 0..15 {
            assert!(take(&mut b, &l, t0).is_ok());
        }
        let wait = take(&mut b, &l, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(6), "one token every 6 s");
        // 12 s later: two tokens back, not more.
        let t1 = t0 + Duration::from_secs(12);
        assert!(take(&mut b, &l, t1).is_ok());
        assert!(take(&mut b, &l, t1).is_ok());
        assert!(take(&mut b, &l, t1).is_err());
        // Never above capacity, however long it rested.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..15 {
            assert!(take(&mut b, &l, t2).is_ok());
        }
        assert!(take(&mut b, &l, t2).is_err());
    }

    #[tokio::test]
    async fn the_local_limiter_refuses_with_the_wait_rounded_up() {
        let limiter = RateLimiter::new(None, Arc::new(Metrics::new()));
        let l = limit(2, 3600, 0);
        let a = ClientId::new("a");
        assert!(limiter.take(&a, &l).await.is_ok());
        assert!(limiter.take(&a, &l).await.is_ok());
        let refused = limiter.take(&a, &l).await.unwrap_err();
        assert!(
            (1799..=1800).contains(&refused.retry_after.as_secs()),
            "{refused:?}"
        );
        // Another client has its own bucket.
        assert!(limiter.take(&ClientId::new("b"), &l).await.is_ok());
    }
}
