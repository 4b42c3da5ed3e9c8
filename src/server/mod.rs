//! The TLS listener and connection handling, and [`serve`], the entry point used by the
//! binary and the tests.
//!
//! `workers` threads, each with its own event loop, accept from one socket. Per connection
//! (connection.rs): the connection cap → TLS handshake (bounded by
//! `limits.header_read_timeout`) → hyper's HTTP/1.1 or HTTP/2 connection as ALPN chose
//! (HTTP/1 heads timed and hyper's own refusals replaced by the gateway's: head.rs,
//! refusal.rs) → the stack; idle connections are closed after `limits.idle_timeout`, and
//! every connection closes by lingering (linger.rs). On shutdown: stop accepting, mark
//! not-ready, ask every connection to finish gracefully (HTTP/1 closes after the in-flight
//! response, HTTP/2 sends GOAWAY) and wait up to `shutdown_grace`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::readiness::UpstreamHealth;
use crate::reload::{self, Generation, ReloadError, Reloader, Shared};
use crate::shutdown::Lifecycle;
use crate::tls::{self, TlsError};

mod connection;
mod ending;
mod head;
mod linger;
mod proxy;
mod refusal;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("TLS setup failed")]
    Tls(#[from] TlsError),
    #[error("internal_header.keys is empty")]
    NoSigningKey,
    #[error("cannot set up the shared state")]
    State(#[source] crate::state::StateError),
    #[error("cannot build the request stack")]
    Generation(#[source] ReloadError),
    #[error("cannot share the listening socket with the worker threads")]
    Listener(#[source] std::io::Error),
    #[error("cannot start a worker thread")]
    Worker(#[source] std::io::Error),
    #[error("worker thread {0} stopped unexpectedly")]
    WorkerStopped(usize),
    #[error("cannot bind {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A gateway ready to serve: certificates loaded, registry and keys prepared.
pub struct Gateway {
    tls: TlsAcceptor,
    current: Arc<ArcSwap<Generation>>,
    shared: Arc<Shared>,
    source: Option<PathBuf>,
    lifecycle: Arc<Lifecycle>,
    /// When the upstream last answered a readiness probe (`readiness.upstream`).
    upstream_health: Arc<UpstreamHealth>,
}

impl Gateway {
    pub fn new(config: Config) -> Result<Gateway, ServeError> {
        Self::with_clock(config, Clock::system())
    }

    /// A gateway whose authenticator and signer read `clock` (tests pin time with
    /// [`Clock::manual`]).
    pub fn with_clock(config: Config, clock: Clock) -> Result<Gateway, ServeError> {
        let shared = Arc::new(Shared::new(&config, clock).map_err(ServeError::State)?);
        let tls = TlsAcceptor::from(tls::server_config(
            shared.resolver.clone(),
            shared.client_certs.clone(),
        )?);
        let generation = shared.generation(config).map_err(|e| match e {
            ReloadError::NoSigningKey => ServeError::NoSigningKey,
            other => ServeError::Generation(other),
        })?;
        crate::reload::publish_jwks(&generation);
        Ok(Gateway {
            tls,
            current: Arc::new(ArcSwap::from_pointee(generation)),
            shared,
            source: None,
            lifecycle: Arc::new(Lifecycle::default()),
            upstream_health: Arc::new(UpstreamHealth::default()),
        })
    }

    /// Names the config file that reloads (SIGHUP, file watching) read again.
    pub fn reload_from(mut self, path: impl Into<PathBuf>) -> Self {
        self.source = Some(path.into());
        self
    }

    pub fn lifecycle(&self) -> Arc<Lifecycle> {
        self.lifecycle.clone()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// A handle that reloads this gateway's config while it serves.
    pub fn reloader(&self) -> Reloader {
        Reloader::new(
            self.current.clone(),
            self.shared.clone(),
            self.source.clone(),
        )
    }

    /// Serves TLS connections from `listener` (and admin requests from `admin`, if given)
    /// until `shutdown` resolves, then drains. Watches the config files for changes when
    /// started with [`Gateway::reload_from`] and `reload.watch` is on.
    ///
    /// Connections are served by `workers` threads, each running its own single-threaded
    /// event loop and accepting from the same socket, like nginx's worker processes: a
    /// request never crosses threads on its way to the upstream and back, which under
    /// load cost a multi-threaded work-stealing runtime a third of its throughput (see
    /// BENCHMARKS.md). The admin listener, the reload watcher and the drain coordination
    /// stay on the caller's runtime.
    pub async fn serve(
        self,
        listener: TcpListener,
        admin: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let local = listener.local_addr().ok();
        let listener = listener.into_std().map_err(ServeError::Listener)?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (exit_tx, mut exit_rx) = tokio::sync::mpsc::unbounded_channel();
        let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel();
        let workers = self.shared.workers;
        let slots = Arc::new(connection::Slots::default());
        for index in 0..workers {
            let worker = Worker {
                index,
                listener: listener.try_clone().map_err(ServeError::Listener)?,
                tls: self.tls.clone(),
                current: self.current.clone(),
                metrics: self.shared.metrics.clone(),
                slots: slots.clone(),
                stop: stop_rx.clone(),
                closed: closed_tx.clone(),
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(ServeError::Worker)?;
            let exited = ExitNotice {
                index,
                tx: exit_tx.clone(),
            };
            std::thread::Builder::new()
                .name(format!("secretgate-worker-{index}"))
                .spawn(move || {
                    let _exited = exited;
                    runtime.block_on(worker.run());
                })
                .map_err(ServeError::Worker)?;
        }
        drop((listener, exit_tx, closed_tx));

        let admin_task = admin.map(|l| {
            crate::admin::spawn(
                l,
                crate::admin::State {
                    lifecycle: self.lifecycle.clone(),
                    metrics: self.shared.metrics.clone(),
                    replay: self.shared.replay.clone(),
                    current: self.current.clone(),
                    upstream_health: self.upstream_health.clone(),
                },
            )
        });
        let watch_task = self
            .source
            .is_some()
            .then(|| tokio::spawn(reload::watch(self.reloader())));
        // readiness.upstream: probe the upstream for /readyz, off the request path.
        let probe_task = tokio::spawn(crate::readiness::run(
            self.current.clone(),
            self.upstream_health.clone(),
            self.shared.metrics.clone(),
        ));
        // private_key_jwt: keep the clients' jwks_uri sets fresh, off the request path.
        let jwks_task = tokio::spawn(crate::auth::jwks::run(self.shared.key_sets.clone()));
        // With Redis: hear of failures on every replica (the throttle's local view).
        let listen_task = self
            .shared
            .shared_view
            .clone()
            .map(|view| tokio::spawn(view.listen()));
        self.lifecycle.set_ready();
        if let Some(addr) = local {
            tracing::info!(%addr, workers, "listening (TLS, h2 + http/1.1)");
        }

        // Run until asked to stop, or until a worker stops on its own (it cannot, short of
        // a bug): then drain what the others have rather than serve at reduced capacity.
        let failed = tokio::select! {
            () = shutdown => None,
            index = exit_rx.recv() => index,
        };
        if let Some(index) = failed {
            tracing::error!(
                worker = index,
                "a worker stopped unexpectedly: shutting down"
            );
        }
        if let Some(task) = watch_task {
            task.abort();
        }
        // Stop accepting first: once every worker has closed its copy of the socket, new
        // connections are refused, and only then does /readyz turn false.
        let _ = stop_tx.send(true);
        let mut closed = 0;
        while closed < workers && closed_rx.recv().await.is_some() {
            closed += 1;
        }
        self.lifecycle.start_draining();
        let grace = self.current.load().config.shutdown_grace;
        tracing::info!(?grace, "draining in-flight requests");
        // Workers drain their connections within `grace`, then exit.
        while exit_rx.recv().await.is_some() {}
        if let Some(task) = admin_task {
            task.abort();
        }
        if let Some(task) = listen_task {
            task.abort();
        }
        jwks_task.abort();
        probe_task.abort();
        tracing::info!("stopped");
        match failed {
            Some(index) => Err(ServeError::WorkerStopped(index)),
            None => Ok(()),
        }
    }
}

/// How often each worker gives the allocator a chance to return freed memory.
const ALLOCATOR_HEARTBEAT: Duration = Duration::from_secs(1);

/// How the process's allocator returns freed memory to the system, as the binary that
/// chose the allocator says ([`release_memory_with`]).
static RELEASE_MEMORY: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Names the function every worker calls once a second to have the process's allocator
/// return what it freed (the binary: mimalloc's `mi_collect`). Only the first call counts;
/// without one, the workers leave the allocator alone.
///
/// Why a call and not the allocator's own timing: mimalloc returns freed pages only from
/// inside a later allocation or free, once its purge delay (1 s) has passed, so a worker
/// that went quiet after many connections closed would keep their memory; and mimalloc
/// 3.3.2 can lose an arena's purge deadline while pages are still waiting to be purged
/// (a free racing the purge that clears it), after which nothing in that arena is returned
/// until another free there sets it again. Allocating and freeing a large block, and the
/// exit of a short-lived thread, each left 10 MiB resident in about one run in three of
/// tests/memory.rs; a forced collection purges every arena whatever its deadline.
/// Measured with bench/idle.sh and tests/memory.rs: see BENCHMARKS.md §5.
pub fn release_memory_with(release: fn()) {
    let _ = RELEASE_MEMORY.set(release);
}

fn allocator_heartbeat() {
    if let Some(release) = RELEASE_MEMORY.get() {
        release();
    }
}

/// Tells the coordinator that a worker thread ended, however it ended (a panic included).
struct ExitNotice {
    index: usize,
    tx: tokio::sync::mpsc::UnboundedSender<usize>,
}

impl Drop for ExitNotice {
    fn drop(&mut self) {
        let _ = self.tx.send(self.index);
    }
}

/// One worker thread's share of the serving: accept, TLS, HTTP, the stack.
struct Worker {
    index: usize,
    listener: std::net::TcpListener,
    tls: TlsAcceptor,
    current: Arc<ArcSwap<Generation>>,
    metrics: Arc<Metrics>,
    slots: Arc<connection::Slots>,
    stop: tokio::sync::watch::Receiver<bool>,
    /// Told once this worker's copy of the listening socket is closed.
    closed: tokio::sync::mpsc::UnboundedSender<()>,
}

impl Worker {
    /// Accepts until told to stop, then lets in-flight requests finish within
    /// `shutdown_grace`.
    async fn run(self) {
        let Worker {
            index,
            listener,
            tls,
            current,
            metrics,
            slots,
            stop,
            closed,
        } = self;
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(worker = index, error = %e, "cannot register the listener");
                return;
            }
        };
        let ctx = Arc::new(connection::Context {
            worker: index,
            tls,
            current: current.clone(),
            metrics,
            slots,
            ids: crate::trace::MakeId::default(),
        });
        // Every connection task holds a sender; when all are gone, the drain is done.
        let (alive, mut ended) = tokio::sync::mpsc::channel::<()>(1);
        let mut stopping = stop.clone();
        let mut heartbeat = tokio::time::interval(ALLOCATOR_HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // This thread's log lines are batched, written out by this timer at the latest,
        // and when the worker ends (logsink.rs).
        let _batching = crate::logsink::buffer_this_thread();
        let mut log_flush = tokio::time::interval(crate::logsink::FLUSH_EVERY);
        log_flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let (tcp, peer) = tokio::select! {
                _ = heartbeat.tick() => {
                    allocator_heartbeat();
                    continue;
                }
                _ = log_flush.tick() => {
                    crate::logsink::flush();
                    continue;
                }
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // EMFILE and friends: keep serving what we have; retry shortly
                        // instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
                _ = stopping.wait_for(|stop| *stop) => break,
            };
            tokio::spawn(connection::serve(
                ctx.clone(),
                tcp,
                peer,
                stop.clone(),
                alive.clone(),
            ));
        }
        drop(listener);
        let _ = closed.send(());
        drop(alive);
        let grace = tokio::time::sleep(current.load().config.shutdown_grace);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                _ = ended.recv() => break,
                () = grace.as_mut() => {
                    tracing::warn!(
                        worker = index,
                        "shutdown_grace elapsed with connections still open"
                    );
                    break;
                }
                _ = log_flush.tick() => crate::logsink::flush(),
            }
        }
    }
}

/// Serves `config` on `listener` until `shutdown` resolves, then drains and returns.
/// The admin listener, if configured, is bound here.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let admin = match &config.admin {
        Some(a) => Some(
            TcpListener::bind(a.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: a.listen,
                    source,
                })?,
        ),
        None => None,
    };
    Gateway::new(config)?.serve(listener, admin, shutdown).await
}
