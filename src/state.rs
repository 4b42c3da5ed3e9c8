//! State shared by every replica: the Redis (or Valkey) client behind the shared replay
//! store and throttle (`state.backend: redis`, docs/design.md §2.9, §2.10, §8.8).
//!
//! - One multiplexed connection per worker thread, made on that worker's event loop the
//!   first time it needs one, so a command never crosses threads; the connection
//!   reconnects by itself after Redis comes back. With `cluster: true`, a cluster
//!   connection per worker instead, and every key that a command touches together shares
//!   a hash tag.
//! - Every command is bounded by `state.redis.timeout` (connecting included): a Redis that
//!   is down or slow costs a request at most that long, never a hang.
//! - Failures are counted per operation, `secretgate_state_up` says whether the last
//!   command worked, and warnings are rate-limited (one per operation per 10 s, with the
//!   count of the ones held back), so a Redis outage does not flood the log. An
//!   authentication failure names `state.redis.password`. No password is ever logged: the
//!   URL holds none (config refuses it there) and the client redacts its own.
//! - Pub/sub (for the throttle's local view) runs on one more connection, in a loop that
//!   reconnects and reports whether it is subscribed.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{FromRedisValue, IntoConnectionInfo, RedisError, TlsCertificates};

use crate::config::RedisConfig;
use crate::metrics::{Metrics, StateOp};

/// Why a state operation could not be done.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("Redis did not answer within state.redis.timeout")]
    Timeout,
    #[error("state.redis.password: Redis refused the credentials")]
    Authentication(#[source] RedisError),
    #[error("Redis failed")]
    Redis(#[source] RedisError),
    #[error("cannot set up the Redis client")]
    Setup(#[source] RedisError),
}

impl From<RedisError> for StateError {
    fn from(e: RedisError) -> Self {
        let auth = e.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(e.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"));
        if auth {
            StateError::Authentication(e)
        } else if e.is_timeout() {
            StateError::Timeout
        } else {
            StateError::Redis(e)
        }
    }
}

/// The clients to connect with. Made once per gateway: the size difference of the
/// variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Clients {
    Single(redis::Client),
    Cluster(ClusterClient),
}

/// A connection of one worker thread.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Something Redis runs: one command, or an atomic pipeline.
pub enum Query<'a> {
    Cmd(&'a redis::Cmd),
    Pipe(&'a redis::Pipeline),
}

thread_local! {
    /// This thread's connections, by [`RedisState::id`] (several gateways can share a
    /// process in tests).
    static CONNECTIONS: RefCell<Vec<(u64, Conn)>> = const { RefCell::new(Vec::new()) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// How often a warning per operation may be logged.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The Redis client of one gateway.
pub struct RedisState {
    id: u64,
    clients: Clients,
    /// For pub/sub: classic pub/sub is broadcast to every node of a cluster, so one node
    /// (the URL's) is enough.
    pubsub: redis::Client,
    prefix: String,
    timeout: Duration,
    connect_timeout: Duration,
    metrics: Arc<Metrics>,
    start: Instant,
    /// Per operation: milliseconds since `start` of the last warning, and warnings held
    /// back since.
    last_warning: [AtomicU64; StateOp::COUNT],
    held_back: [AtomicU64; StateOp::COUNT],
    /// Milliseconds since `start` (plus one) of the last failed and last good command.
    last_failure: AtomicU64,
    last_success: AtomicU64,
    /// For logs: it holds no password (config refuses one there).
    url: String,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn password_text(cfg: &RedisConfig) -> Result<Option<String>, StateError> {
    match &cfg.password {
        None => Ok(None),
        Some(p) => String::from_utf8(p.expose().to_vec())
            .map(Some)
            .map_err(|_| {
                StateError::Setup(RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "state.redis.password is not UTF-8",
                )))
            }),
    }
}

impl RedisState {
    /// The client for `cfg`. Connects nothing yet: a gateway starts while Redis is down
    /// and uses it once it is up.
    pub fn new(cfg: &RedisConfig, metrics: Arc<Metrics>) -> Result<RedisState, StateError> {
        let password = password_text(cfg)?;
        let certs = || TlsCertificates {
            client_tls: None,
            root_cert: cfg.ca_pem.clone(),
        };
        let single = || -> Result<redis::Client, StateError> {
            let mut info = cfg
                .url
                .as_str()
                .into_connection_info()
                .map_err(StateError::Setup)?;
            if let Some(p) = &password {
                let settings = info.redis_settings().clone().set_password(p);
                info = info.set_redis_settings(settings);
            }
            let client = if cfg.url.starts_with("rediss://") {
                redis::Client::build_with_tls(info, certs())
            } else {
                redis::Client::open(info)
            };
            client.map_err(StateError::Setup)
        };
        let clients = if cfg.cluster {
            let mut builder = ClusterClient::builder(vec![cfg.url.as_str()])
                .connection_timeout(cfg.connect_timeout)
                .response_timeout(cfg.timeout);
            if let Some(p) = &password {
                builder = builder.password(p);
            }
            if cfg.url.starts_with("rediss://") {
                builder = builder.certs(certs());
            }
            Clients::Cluster(builder.build().map_err(StateError::Setup)?)
        } else {
            Clients::Single(single()?)
        };
        Ok(RedisState {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            clients,
            pubsub: single()?,
            prefix: cfg.key_prefix.clone(),
            timeout: cfg.timeout,
            connect_timeout: cfg.connect_timeout,
            metrics,
            start: Instant::now(),
            last_warning: Default::default(),
            held_back: Default::default(),
            last_failure: AtomicU64::new(0),
            last_success: AtomicU64::new(0),
            url: cfg.url.clone(),
        })
    }

    /// `state.redis.key_prefix` followed by `rest`.
    pub fn key(&self, rest: std::fmt::Arguments<'_>) -> String {
        let mut key = self.prefix.clone();
        std::fmt::Write::write_fmt(&mut key, rest).unwrap_or_default();
        key
    }

    /// This thread's connection, made the first time.
    async fn connection(&self) -> Result<Conn, StateError> {
        let cached = CONNECTIONS.with(|c| {
            c.borrow()
                .iter()
                .find(|(id, _)| *id == self.id)
                .map(|(_, conn)| conn.clone())
        });
        if let Some(conn) = cached {
            return Ok(conn);
        }
        let conn = match &self.clients {
            // Lazy: it connects on its first command and reconnects by itself.
            Clients::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_secs(1));
                Conn::Single(ConnectionManager::new_lazy_with_config(
                    client.clone(),
                    config,
                )?)
            }
            Clients::Cluster(client) => Conn::Cluster(client.get_async_connection().await?),
        };
        CONNECTIONS.with(|c| c.borrow_mut().push((self.id, conn.clone())));
        Ok(conn)
    }

    /// Runs `query` on this thread's connection within `state.redis.timeout`, and counts
    /// and logs the outcome under `op`.
    pub async fn run<T: FromRedisValue>(
        &self,
        op: StateOp,
        query: Query<'_>,
    ) -> Result<T, StateError> {
        let start = Instant::now();
        let result = match tokio::time::timeout(self.timeout, self.execute(query)).await {
            Ok(result) => result,
            Err(_) => Err(StateError::Timeout),
        };
        self.metrics
            .state_command(op, start.elapsed(), result.is_ok());
        let now = self.start.elapsed().as_millis() as u64 + 1;
        match &result {
            Ok(_) => self.last_success.fetch_max(now, Ordering::Relaxed),
            Err(e) => {
                self.warn(op, e);
                self.last_failure.fetch_max(now, Ordering::Relaxed)
            }
        };
        if let Err(StateError::Authentication(_)) = &result {
            // The connection manager reconnects only after an I/O error: once a handshake
            // was refused, it would fail every command for good, even after Redis accepts
            // the password again. The next command on this thread connects afresh.
            self.forget_connection();
        }
        result
    }

    /// Drops this thread's connection: the next command makes a new one.
    fn forget_connection(&self) {
        CONNECTIONS.with(|c| c.borrow_mut().retain(|(id, _)| *id != self.id));
    }

    /// Whether the last command failed less than a second ago: callers that have a
    /// fallback use it without waiting for another timeout (one command a second still
    /// probes).
    pub fn recently_failed(&self) -> bool {
        let failure = self.last_failure.load(Ordering::Relaxed);
        let now = self.start.elapsed().as_millis() as u64 + 1;
        failure > self.last_success.load(Ordering::Relaxed) && now.saturating_sub(failure) < 1000
    }

    async fn execute<T: FromRedisValue>(&self, query: Query<'_>) -> Result<T, StateError> {
        let conn = self.connection().await?;
        let result = match (conn, query) {
            (Conn::Single(mut c), Query::Cmd(cmd)) => cmd.query_async(&mut c).await,
            (Conn::Single(mut c), Query::Pipe(pipe)) => pipe.query_async(&mut c).await,
            (Conn::Cluster(mut c), Query::Cmd(cmd)) => cmd.query_async(&mut c).await,
            (Conn::Cluster(mut c), Query::Pipe(pipe)) => pipe.query_async(&mut c).await,
        };
        Ok(result?)
    }

    /// A warning for `op`, unless one was logged in the last [`WARN_EVERY`].
    fn warn(&self, op: StateOp, e: &StateError) {
        let i = op as usize;
        let now = self.start.elapsed().as_millis() as u64 + 1;
        let last = self.last_warning[i].load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        if due
            && self.last_warning[i]
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let held_back = self.held_back[i].swap(0, Ordering::Relaxed);
            tracing::warn!(
                url = %self.url,
                op = op.as_str(),
                error = %crate::error::error_chain(e),
                held_back,
                "shared state (Redis) unavailable"
            );
        } else {
            self.held_back[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Subscribes to `channel` and hands every message to `on_message`, reconnecting until
    /// the task is aborted. `subscribed` says whether messages are flowing; every time it
    /// turns true, `on_subscribed` runs (messages may have been missed before).
    pub async fn subscribe(
        self: Arc<Self>,
        channel: String,
        subscribed: Arc<AtomicBool>,
        on_subscribed: impl Fn(),
        on_message: impl Fn(&[u8]),
    ) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let attempt = async {
                let mut pubsub = self.pubsub.get_async_pubsub().await?;
                pubsub.subscribe(&channel).await?;
                Ok::<_, RedisError>(pubsub)
            };
            let start = Instant::now();
            match tokio::time::timeout(self.connect_timeout.max(self.timeout), attempt).await {
                Ok(Ok(mut pubsub)) => {
                    self.metrics
                        .state_command(StateOp::subscribe, start.elapsed(), true);
                    backoff = Duration::from_millis(100);
                    subscribed.store(true, Ordering::Release);
                    on_subscribed();
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        on_message(msg.get_payload_bytes());
                    }
                    subscribed.store(false, Ordering::Release);
                    self.warn(
                        StateOp::subscribe,
                        &StateError::Redis(RedisError::from((
                            redis::ErrorKind::Io,
                            "subscription ended",
                        ))),
                    );
                }
                Ok(Err(e)) => {
                    subscribed.store(false, Ordering::Release);
                    self.metrics
                        .state_command(StateOp::subscribe, Duration::ZERO, false);
                    self.warn(StateOp::subscribe, &e.into());
                }
                Err(_) => {
                    subscribed.store(false, Ordering::Release);
                    self.metrics
                        .state_command(StateOp::subscribe, Duration::ZERO, false);
                    self.warn(StateOp::subscribe, &StateError::Timeout);
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}
